//! Bar-close fan-out benches: one bar close fanned out to 200 symbols × 3 timeframes (600 series), each
//! with the full analysis stack, in steady state.
//!
//! * `smc_and_indicators`: every series owns an `IndicatorSet` and an `SmcEngine` with golden-like
//!   parameters (swing length 5 on every timeframe, liquidity pip range = 0.0005 × the series' first
//!   close, FVG join off, previous levels 4h/1D/W and the four sessions as the engine defaults).
//! * `smc_only`: the same engines without the indicator sets, to split the figure.
//! * `symbol_analysis`: 200 `SymbolAnalysis` (default config: 5m/15m/1h, swing length 3/5/5) fed through
//!   `on_closed_bar`, higher timeframe first, which is what the engine calls on the bar close.
//!
//! Every series is warmed with [`WARM_UP_BARS`] bars of a deterministic random walk (xorshift) first, so
//! the swing list, order-block table and pools look like a real history. One iteration then feeds *one*
//! bar to all 600 series.
//!
//! The raw engines keep their whole history (`history_window: None`, as `analyze` does), so it grows by
//! one bar per bar; `SymbolAnalysis` bounds it (1 000 bars by default), so its series prune during the
//! run. So that the measurement does not drift with the history, the state is rewound every
//! [`BARS_PER_EPOCH`] iterations: a clone of the warmed state is taken, room for the epoch's bars is
//! reserved (so no history reallocation lands in a timed iteration), and the next [`BARS_PER_EPOCH`]
//! precomputed bars are fed one per iteration. Cloning, reserving and dropping happen outside the timed
//! region (`iter_custom`). The raw history thus stays between 2 000 and 2 000 + [`BARS_PER_EPOCH`] bars
//! for every timed bar (`SymbolAnalysis`: between 1 000 and 1 252).
//!
//! Results and the machine they ran on are recorded in `benches/BENCHMARKS.md`.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perpdesk::{
    domain::{Bar, Interval},
    features::IndicatorSet,
    smc::{SmcConfig, SmcEngine, SmcEvent},
    strategy::analysis::{AnalysisConfig, DEFAULT_LIQUIDITY_TOLERANCE, SymbolAnalysis},
};

const SYMBOLS: usize = 200;
/// The default analysis timeframes, highest first (the order the engine feeds a simultaneous close).
const TIMEFRAMES: [Interval; 3] = [Interval::H1, Interval::M15, Interval::M5];
const SERIES: usize = SYMBOLS * TIMEFRAMES.len();
const WARM_UP_BARS: usize = 2_000;
/// Timed bars per warmed state before it is rewound.
const BARS_PER_EPOCH: usize = 256;
/// Monday 2026-01-05 00:00 UTC.
const START_MS: i64 = 1_767_571_200_000;

/// A deterministic random walk of OHLCV bars (xorshift), opening at the previous close.
struct Walk {
    state: u64,
    close: f64,
    open_time: i64,
    interval_ms: i64,
    /// Per-bar volatility (fraction of price), scaled with the square root of the timeframe.
    sigma: f64,
}

impl Walk {
    fn new(symbol: usize, interval: Interval) -> Self {
        let interval_ms = interval.fixed_millis().expect("fixed interval");
        // Prices from 0.05 to about 900, so the liquidity tolerance spans several scales.
        let start = 0.05 * 1.05_f64.powi(symbol as i32);
        Self {
            state: (symbol as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ interval_ms as u64 | 1,
            close: start,
            open_time: START_MS,
            interval_ms,
            sigma: 0.002 * (interval_ms as f64 / 300_000.0).sqrt(),
        }
    }

    /// Uniform in −1 ..= 1.
    fn uniform(&mut self) -> f64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % 2_001) as f64 / 1_000.0 - 1.0
    }

    fn next_bar(&mut self) -> Bar {
        let open = self.close;
        let close = open * (1.0 + self.uniform() * self.sigma);
        let upper_wick = self.uniform().abs() * self.sigma * 0.6;
        let lower_wick = self.uniform().abs() * self.sigma * 0.6;
        let volume = 1_000.0 * (1.5 + self.uniform());
        let bar = Bar {
            open_time: self.open_time,
            close_time: self.open_time + self.interval_ms - 1,
            open,
            high: open.max(close) * (1.0 + upper_wick),
            low: open.min(close) * (1.0 - lower_wick),
            close,
            volume,
            quote_volume: volume * close,
            trades: 100,
            closed: true,
        };
        self.close = close;
        self.open_time += self.interval_ms;
        bar
    }
}

/// One series of the raw fan-out: indicators, SMC engine and its event buffer.
#[derive(Clone)]
struct Series {
    indicators: IndicatorSet,
    smc: SmcEngine,
    events: Vec<SmcEvent>,
}

impl Series {
    fn new(first_close: f64) -> Self {
        let config = SmcConfig {
            swing_length: 5,
            liquidity_pip_range: DEFAULT_LIQUIDITY_TOLERANCE * first_close,
            fvg_join_consecutive: false,
            ..SmcConfig::default()
        };
        Self {
            indicators: IndicatorSet::default(),
            smc: SmcEngine::new(&config).expect("valid config"),
            events: Vec::with_capacity(32),
        }
    }

    fn update_smc(&mut self, bar: &Bar) {
        self.events.clear();
        black_box(self.smc.on_bar(bar, &mut self.events).expect("bars are in order"));
        black_box(self.events.len());
    }

    fn update(&mut self, bar: &Bar) {
        self.update_smc(bar);
        black_box(self.indicators.update(bar).expect("bars are in order"));
    }
}

/// Warmed state plus the next [`BARS_PER_EPOCH`] bars of every series (`tails[slot]`), slot =
/// symbol × 3 + timeframe.
struct Fixture<T> {
    warmed: Vec<T>,
    tails: Vec<Vec<Bar>>,
}

fn walks() -> Vec<Walk> {
    (0..SYMBOLS)
        .flat_map(|symbol| TIMEFRAMES.map(|interval| Walk::new(symbol, interval)))
        .collect()
}

fn tails(walks: &mut [Walk]) -> Vec<Vec<Bar>> {
    walks
        .iter_mut()
        .map(|walk| (0..BARS_PER_EPOCH).map(|_| walk.next_bar()).collect())
        .collect()
}

fn raw_fixture() -> Fixture<Series> {
    let mut walks = walks();
    let warmed = walks
        .iter_mut()
        .map(|walk| {
            let first = walk.next_bar();
            let mut series = Series::new(first.close);
            series.update(&first);
            for _ in 1..WARM_UP_BARS {
                series.update(&walk.next_bar());
            }
            series
        })
        .collect();
    Fixture {
        warmed,
        tails: tails(&mut walks),
    }
}

fn analysis_fixture() -> Fixture<SymbolAnalysis> {
    let mut walks = walks();
    let config = AnalysisConfig::default();
    let warmed = walks
        .chunks_mut(TIMEFRAMES.len())
        .map(|symbol_walks| {
            let mut analysis = SymbolAnalysis::new(&config).expect("default config is valid");
            for (walk, interval) in symbol_walks.iter_mut().zip(TIMEFRAMES) {
                for _ in 0..WARM_UP_BARS {
                    analysis
                        .on_closed_bar(interval, &walk.next_bar())
                        .expect("bars are in order");
                }
            }
            analysis
        })
        .collect();
    Fixture {
        warmed,
        tails: tails(&mut walks),
    }
}

/// Times `fan_out(state, bar step)` once per iteration, rewinding to a clone of the warmed state (with
/// `reserve` applied) every [`BARS_PER_EPOCH`] iterations, outside the timed region.
fn bench_epochs<T: Clone>(
    b: &mut criterion::Bencher<'_>,
    fixture: &Fixture<T>,
    reserve: impl Fn(&mut T),
    mut fan_out: impl FnMut(&mut [T], &[Vec<Bar>], usize),
) {
    let rewind = || {
        let mut state = fixture.warmed.clone();
        state.iter_mut().for_each(&reserve);
        state
    };
    let mut state = rewind();
    let mut step = 0;
    b.iter_custom(|iterations| {
        let mut total = Duration::ZERO;
        for _ in 0..iterations {
            if step == BARS_PER_EPOCH {
                state = rewind();
                step = 0;
            }
            let start = Instant::now();
            fan_out(&mut state, &fixture.tails, step);
            total += start.elapsed();
            step += 1;
        }
        total
    });
}

fn fan_out(c: &mut Criterion) {
    let raw = raw_fixture();
    let mut group = c.benchmark_group("bar_close_fan_out_full");
    group.throughput(Throughput::Elements(SERIES as u64));
    group.bench_function("smc_and_indicators_600_series", |b| {
        bench_epochs(
            b,
            &raw,
            |series| series.smc.reserve(BARS_PER_EPOCH),
            |state, tails, step| {
                for (series, tail) in state.iter_mut().zip(tails) {
                    series.update(&tail[step]);
                }
            },
        );
    });
    group.bench_function("smc_only_600_series", |b| {
        bench_epochs(
            b,
            &raw,
            |series| series.smc.reserve(BARS_PER_EPOCH),
            |state, tails, step| {
                for (series, tail) in state.iter_mut().zip(tails) {
                    series.update_smc(&tail[step]);
                }
            },
        );
    });
    drop(raw);

    let analysis = analysis_fixture();
    group.bench_function("symbol_analysis_200_symbols_x_3_timeframes", |b| {
        bench_epochs(
            b,
            &analysis,
            |symbol| symbol.reserve(BARS_PER_EPOCH),
            |state, tails, step| {
                for (symbol, symbol_tails) in state.iter_mut().zip(tails.chunks(TIMEFRAMES.len())) {
                    for (interval, tail) in TIMEFRAMES.into_iter().zip(symbol_tails) {
                        black_box(
                            symbol
                                .on_closed_bar(interval, &tail[step])
                                .expect("bars are in order"),
                        );
                    }
                }
            },
        );
    });
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
