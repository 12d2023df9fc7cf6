//! Indicator benches: one `update` of a single indicator (EMA, ATR, RSI), one update and one `peek` of a
//! full `IndicatorSet`, and the fan-out of one bar close to 200 symbols × 3 timeframes (600 set updates),
//! which is what the engine does on the minute boundary where 5m, 15m and 1h bars all close.
//!
//! Every state is warmed up past its longest warm-up (EMA200) first, so the steady-state path is measured.
//! Inputs cycle through a precomputed random-walk series so the optimiser cannot fold them into constants.
//! Results and the machine they ran on are recorded in `benches/BENCHMARKS.md`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perpdesk::{
    domain::Bar,
    features::{Atr, Ema, EmaSeeding, Indicator, IndicatorSet, Rsi},
};

const INTERVAL_MS: i64 = 300_000;
const WARM_UP_BARS: i64 = 300;
const SERIES_LENGTH: usize = 1024;
const SYMBOLS: usize = 200;
const TIMEFRAMES: usize = 3;

/// A deterministic random walk (xorshift), around `start`.
fn closes(start: f64, seed: u64) -> Vec<f64> {
    let mut state = seed | 1;
    let mut close = start;
    (0..SERIES_LENGTH)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let step = (state % 2001) as f64 / 1000.0 - 1.0; // −1 ..= 1
            close *= 1.0 + step * 0.002;
            close
        })
        .collect()
}

fn bar(index: i64, close: f64) -> Bar {
    let open_time = index * INTERVAL_MS;
    Bar {
        open_time,
        close_time: open_time + INTERVAL_MS - 1,
        open: close * 0.999,
        high: close * 1.002,
        low: close * 0.997,
        close,
        volume: 1_000.0 + close,
        quote_volume: close * 1_000.0,
        trades: 100,
        closed: true,
    }
}

fn single_indicators(c: &mut Criterion) {
    let series = closes(100.0, 7);
    let bars: Vec<Bar> = series
        .iter()
        .enumerate()
        .map(|(i, &close)| bar(i as i64, close))
        .collect();
    let mut group = c.benchmark_group("indicator_update");

    let mut ema = Ema::new(21, EmaSeeding::SmaOfFirstPeriod).expect("valid period");
    for &close in &series[..WARM_UP_BARS as usize] {
        ema.update(close);
    }
    let mut next = 0;
    group.bench_function("ema21", |b| {
        b.iter(|| {
            next = (next + 1) % SERIES_LENGTH;
            black_box(ema.update(black_box(series[next])))
        });
    });

    let mut atr = Atr::new(14).expect("valid period");
    for &bar in &bars[..WARM_UP_BARS as usize] {
        atr.update(bar);
    }
    group.bench_function("atr14", |b| {
        b.iter(|| {
            next = (next + 1) % SERIES_LENGTH;
            black_box(atr.update(black_box(bars[next])))
        });
    });

    let mut rsi = Rsi::new(14).expect("valid period");
    for &close in &series[..WARM_UP_BARS as usize] {
        rsi.update(close);
    }
    group.bench_function("rsi14", |b| {
        b.iter(|| {
            next = (next + 1) % SERIES_LENGTH;
            black_box(rsi.update(black_box(series[next])))
        });
    });
    group.finish();
}

fn warmed_set(series: &[f64]) -> IndicatorSet {
    let mut set = IndicatorSet::default();
    for index in 0..WARM_UP_BARS {
        set.update(&bar(index, series[index as usize]))
            .expect("bars are in order, closed and finite");
    }
    set
}

fn indicator_set(c: &mut Criterion) {
    let series = closes(2_000.0, 11);
    let mut group = c.benchmark_group("indicator_set");

    let mut set = warmed_set(&series);
    let mut index = WARM_UP_BARS;
    group.bench_function("update", |b| {
        b.iter(|| {
            let close = series[index as usize % SERIES_LENGTH];
            let values = *set
                .update(black_box(&bar(index, close)))
                .expect("bars are in order");
            index += 1;
            black_box(values)
        });
    });

    let set = warmed_set(&series);
    let mut shift = 0_usize;
    group.bench_function("peek", |b| {
        b.iter(|| {
            shift = (shift + 1) % SERIES_LENGTH;
            let forming = Bar {
                closed: false,
                ..bar(WARM_UP_BARS, series[shift])
            };
            black_box(
                set.peek(black_box(&forming))
                    .expect("forming bar is after the last one"),
            )
        });
    });
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    let series: Vec<Vec<f64>> = (0..SYMBOLS)
        .map(|symbol| closes(10.0 + symbol as f64, symbol as u64 + 3))
        .collect();
    let mut sets: Vec<IndicatorSet> = (0..SYMBOLS * TIMEFRAMES)
        .map(|slot| warmed_set(&series[slot / TIMEFRAMES]))
        .collect();
    let mut index = WARM_UP_BARS;
    let mut group = c.benchmark_group("bar_close_fan_out");
    group.throughput(Throughput::Elements((SYMBOLS * TIMEFRAMES) as u64));
    group.bench_function("200_symbols_x_3_timeframes", |b| {
        b.iter(|| {
            for (slot, set) in sets.iter_mut().enumerate() {
                let close = series[slot / TIMEFRAMES][index as usize % SERIES_LENGTH];
                black_box(set.update(&bar(index, close)).expect("bars are in order"));
            }
            index += 1;
        });
    });
    group.finish();
}

criterion_group!(benches, single_indicators, indicator_set, fan_out);
criterion_main!(benches);
