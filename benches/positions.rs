//! Position monitoring benches: the check itself, the book's due-check round through the scheduler,
//! scheduler insert/pop, and the memory a position costs at 100 000 positions.
//!
//! Levels are set wide so no check closes its position: the steady state (range evaluation, trailing
//! stop, score, level, warnings) is what runs ten times a second per critical position. Marks cycle
//! through a precomputed list so the optimiser cannot fold them. Results: `benches/BENCHMARKS.md`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use perpdesk::{
    domain::{Side, SymbolId},
    positions::{
        Bands, BookConfig, Fees, Lane, LifecycleEvent, NewPosition, Position, PositionBook, PositionId,
        RunMode, Scheduler,
    },
    strategy::Mode,
};

const N: usize = 100_000;

fn new_position(i: usize) -> NewPosition {
    let side = if i.is_multiple_of(2) {
        Side::Long
    } else {
        Side::Short
    };
    let s = if side == Side::Long { 1.0 } else { -1.0 };
    NewPosition {
        symbol: SymbolId((i % 200) as u16),
        side,
        qty: 1.0,
        entry: 100.0,
        leverage: 5,
        take_profit: 100.0 + s * 50.0,
        stop_loss: 100.0 - s * 50.0,
        trailing: i.is_multiple_of(3).then_some(60.0),
        liquidation: Some(100.0 - s * 80.0),
        expires_at: i64::MAX,
        strategy: Mode::Ict,
        run_mode: RunMode::Paper,
        feature_slot: None,
    }
}

fn marks() -> Vec<f64> {
    (0..1024)
        .map(|i| 100.0 + f64::from((i * 37) % 41) * 0.25 - 5.0)
        .collect()
}

fn checks(c: &mut Criterion) {
    let fees = Fees::default();
    let bands = Bands::default();
    let marks = marks();
    let mut positions: Vec<Position> = (0..10_000)
        .map(|i| Position::open(PositionId(i as u64), &new_position(i), &fees, 0, Lane::S5))
        .collect();
    let mut out: Vec<LifecycleEvent> = Vec::with_capacity(100_000);
    let mut g = c.benchmark_group("positions");
    g.throughput(Throughput::Elements(positions.len() as u64));
    let mut k = 0usize;
    g.bench_function("check 10k positions (observe + check)", |b| {
        b.iter(|| {
            k = k.wrapping_add(1);
            for (i, p) in positions.iter_mut().enumerate() {
                p.observe(marks[(i + k) & 1023]);
                black_box(p.check(k as i64, &bands, &mut out));
            }
            out.clear();
        });
    });

    let mut book = PositionBook::new(BookConfig {
        max_positions: N,
        smart_monitoring: false,
        ..BookConfig::default()
    });
    for i in 0..N {
        book.open(&new_position(i), 0, 0, &mut out).expect("open");
    }
    out.clear();
    g.throughput(Throughput::Elements(N as u64));
    let mut now = 0;
    g.bench_function("book round: 100k due checks through the scheduler", |b| {
        b.iter(|| {
            now += 1_000;
            for s in 0..200u16 {
                book.on_mark(
                    SymbolId(s),
                    marks[(now as usize / 1000 + usize::from(s)) & 1023],
                    0.0,
                    0,
                    now,
                );
            }
            let n = book.run_due(now, now, &mut out);
            out.clear();
            black_box(n)
        });
    });
    g.finish();
}

fn scheduler(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("insert 100k then pop 100k (4 lanes)", |b| {
        b.iter_batched(
            Scheduler::new,
            |mut s| {
                for i in 0..N as u32 {
                    s.schedule(i, 0, Lane::ALL[(i % 4) as usize], i64::from(i % 1000));
                }
                let mut n = 0;
                while s.pop_due(i64::MAX).is_some() {
                    n += 1;
                }
                black_box(n)
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn memory(c: &mut Criterion) {
    let mut out = Vec::new();
    let mut book = PositionBook::new(BookConfig {
        max_positions: N,
        ..BookConfig::default()
    });
    for i in 0..N {
        book.open(&new_position(i), 0, 0, &mut out).expect("open");
    }
    let bytes = book.heap_bytes();
    eprintln!(
        "memory: {N} positions hold {bytes} heap bytes = {:.0} bytes per position (Position is {} bytes)",
        bytes as f64 / N as f64,
        size_of::<Position>()
    );
    let mut g = c.benchmark_group("book");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("open 100k positions", |b| {
        b.iter_batched(
            || {
                (
                    PositionBook::new(BookConfig {
                        max_positions: N,
                        ..BookConfig::default()
                    }),
                    Vec::with_capacity(N),
                )
            },
            |(mut book, mut out)| {
                for i in 0..N {
                    book.open(&new_position(i), 0, 0, &mut out).expect("open");
                }
                black_box(book.len())
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group!(benches, checks, scheduler, memory);
criterion_main!(benches);
