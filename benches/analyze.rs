//! `perpdesk analyze` throughput in bars per second: the whole analysis (both golden parameter sets, both
//! gap variants, three previous-range timeframes, four sessions, 29 indicator columns) over 50 000 bars,
//! then the same plus writing the CSV (to a sink, so the disk is not measured).
//!
//! The bars are a deterministic random walk (xorshift) of 5-minute candles with realistic wicks, generated
//! here so the bench needs nothing from `../shared`. Results are recorded in `benches/BENCHMARKS.md`.

use std::{hint::black_box, path::Path, time::Duration};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perpdesk::{
    analyze::{self, AnalyzeConfig, LiquidityTolerance, write::write_csv},
    domain::Bar,
};

const BARS: usize = 50_000;
const INTERVAL_MS: i64 = 300_000;

/// A random walk around 100 with wicks on both sides, 5-minute bars from 2024-01-01.
fn bars() -> Vec<Bar> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 2001) as f64 / 1000.0 - 1.0 // −1 ..= 1
    };
    let mut close = 100.0_f64;
    (0..BARS)
        .map(|i| {
            let open = close;
            close = open * (1.0 + next() * 0.003);
            let high = open.max(close) * (1.0 + (next() + 1.0) * 0.001);
            let low = open.min(close) * (1.0 - (next() + 1.0) * 0.001);
            let open_time = 1_704_067_200_000 + i as i64 * INTERVAL_MS;
            Bar {
                open_time,
                close_time: open_time + INTERVAL_MS - 1,
                open,
                high,
                low,
                close,
                volume: 1_000.0 * (2.0 + next()),
                quote_volume: 0.0,
                trades: 0,
                closed: true,
            }
        })
        .collect()
}

fn analyze_throughput(c: &mut Criterion) {
    let bars = bars();
    let mut config = AnalyzeConfig::default();
    // A fixed tolerance (0.05 % of the price) so the bench does not depend on the walk's range.
    for set in &mut config.structure {
        set.liquidity = LiquidityTolerance::PipRange(0.05);
    }
    let source = Path::new("synthetic");
    let mut group = c.benchmark_group("analyze");
    group.throughput(Throughput::Elements(BARS as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("columns_50k_bars", |b| {
        b.iter(|| black_box(analyze::analyze(black_box(&bars), &config, source, &mut |_| {})));
    });
    group.bench_function("columns_and_csv_50k_bars", |b| {
        b.iter(|| {
            let analysis =
                analyze::analyze(black_box(&bars), &config, source, &mut |_| {}).expect("valid bars");
            write_csv(&bars, &analysis, std::io::sink()).expect("a sink accepts everything");
        });
    });
    group.finish();
}

criterion_group!(benches, analyze_throughput);
criterion_main!(benches);
