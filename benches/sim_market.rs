//! Simulated-exchange benches: how fast the synthetic market answers the start-up back-fill (the
//! console asks for 500 bars × 3 timeframes × 200 symbols at once), and the per-push cost of a kline
//! stream frame (bar lookup + venue formatting).
//!
//! Results and the machine they ran on are recorded in `benches/BENCHMARKS.md`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use perpdesk::{
    domain::Interval,
    sim::{server::kline_row, source::MarketSource, synthetic::SyntheticMarket},
};

const START: i64 = 1_764_000_000_000; // 2025-11-24 16:00 UTC
const HISTORY_MS: i64 = 30 * 86_400_000;

fn backfill(c: &mut Criterion) {
    let mut g = c.benchmark_group("synthetic_backfill");
    g.sample_size(10);
    // 1500 bars (500 × 5m, 15m, 1h) of 10 fresh symbols per iteration, from a freshly built market so
    // the hourly caches start cold, as at start-up.
    g.throughput(Throughput::Elements(10 * 1500));
    g.bench_function("cold_10_symbols_x_1500_bars", |b| {
        b.iter_batched(
            || SyntheticMarket::new(1, 260, START, HISTORY_MS),
            |market| {
                let now = START + 1_234;
                let mut n = 0usize;
                for symbol in 0..10 {
                    for interval in [Interval::M5, Interval::M15, Interval::H1] {
                        let step = interval.fixed_millis().unwrap_or(60_000);
                        let last = interval.open_time_of(now);
                        for k in 0..500 {
                            n += usize::from(market.bar(symbol, interval, last - k * step, now).is_some());
                        }
                    }
                }
                black_box(n)
            },
            BatchSize::PerIteration,
        );
    });
    g.finish();
}

fn stream_push(c: &mut Criterion) {
    let market = SyntheticMarket::new(1, 260, START, HISTORY_MS);
    let spec = market.symbols()[0].clone();
    let mut g = c.benchmark_group("sim_stream");
    g.throughput(Throughput::Elements(1));
    let mut now = START + 1_000;
    g.bench_function("forming_5m_bar_and_row", |b| {
        b.iter(|| {
            now += 250;
            let open = Interval::M5.open_time_of(now);
            let bar = market.bar(0, Interval::M5, open, now).expect("bar exists");
            black_box(kline_row(&bar, spec.price_precision, spec.quantity_precision))
        });
    });
    g.finish();
}

criterion_group!(benches, backfill, stream_push);
criterion_main!(benches);
