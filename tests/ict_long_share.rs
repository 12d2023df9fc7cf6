//! Replays every real kline series in `../shared/data/klines/usdm_alpergulsen/` bar by bar through the
//! analysis, the ICT strategy and the quality filter, and checks that the strategy has no structural side
//! bias (LONG share of all signals in [35 %, 65 %]), that it speaks for most symbols, and that every signal
//! is well formed (stop and target on the right sides, R:R at least the minimum, two or more confluences).
//!
//! Setup bars are 15m: from the 15m file where one exists (BTC, ETH), else aggregated from the 5m file.
//! Higher bars come from the 1h files. Bars of all timeframes are merged by close time, higher timeframes
//! first at equal close times, and the strategy is evaluated after every 5m bar.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;

use perpdesk::{
    domain::{Bar, Interval, Side, SymbolId},
    sim::replay::{KlineFile, KlineRow, read_kline_file},
    strategy::{AnalysisConfig, Evaluation, IctParams, Mode, SymbolAnalysis, strategy_for},
};

const DIR: &str = "data/klines/usdm_alpergulsen";
const SYMBOLS: [&str; 7] = [
    "ADAUSDT", "BNBUSDT", "BTCUSDT", "DOGEUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT",
];

fn bar(row: &KlineRow, interval: Interval) -> Bar {
    Bar {
        open_time: row.open_time,
        close_time: interval.close_time(row.open_time),
        open: row.open,
        high: row.high,
        low: row.low,
        close: row.close,
        volume: row.volume,
        quote_volume: row.quote_volume.unwrap_or(0.0),
        trades: row.trades.unwrap_or(0),
        closed: true,
    }
}

/// 15m bars from complete, contiguous triples of 5m bars aligned to the quarter hour.
fn aggregate_15m(five: &[Bar]) -> Vec<Bar> {
    let mut out = Vec::with_capacity(five.len() / 3 + 1);
    let mut i = 0;
    while i + 3 <= five.len() {
        let open = Interval::M15.open_time_of(five[i].open_time);
        let group = &five[i..i + 3];
        let contiguous = five[i].open_time == open
            && group
                .iter()
                .enumerate()
                .all(|(k, b)| b.open_time == open + 300_000 * i64::try_from(k).unwrap());
        if !contiguous {
            i += 1;
            continue;
        }
        out.push(Bar {
            open_time: open,
            close_time: Interval::M15.close_time(open),
            open: group[0].open,
            high: group.iter().map(|b| b.high).fold(f64::NEG_INFINITY, f64::max),
            low: group.iter().map(|b| b.low).fold(f64::INFINITY, f64::min),
            close: group[2].close,
            volume: group.iter().map(|b| b.volume).sum(),
            quote_volume: group.iter().map(|b| b.quote_volume).sum(),
            trades: group.iter().map(|b| b.trades).sum(),
            closed: true,
        });
        i += 3;
    }
    out
}

fn load(path: &std::path::Path, symbol: &str, interval: Interval) -> Vec<Bar> {
    let file: KlineFile = read_kline_file(path, symbol, interval).unwrap();
    file.rows.iter().map(|r| bar(r, interval)).collect()
}

#[derive(Default)]
struct Counts {
    long: usize,
    short: usize,
}

#[test]
fn ict_signals_have_no_side_bias_on_real_klines() {
    let Some(dir) = common::shared_path(DIR) else {
        return;
    };
    let params = IctParams::default();
    let mut per_symbol: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut funnel: BTreeMap<String, usize> = BTreeMap::new();
    let mut scanned = 0usize;
    let mut all_signals = Vec::new();

    for (id, symbol) in SYMBOLS.iter().enumerate() {
        let five = load(&dir.join(format!("{symbol}_5m.csv")), symbol, Interval::M5);
        let fifteen_path = dir.join(format!("{symbol}_15m.csv"));
        let fifteen = if fifteen_path.exists() {
            load(&fifteen_path, symbol, Interval::M15)
        } else {
            aggregate_15m(&five)
        };
        let hour = load(&dir.join(format!("{symbol}_1h.csv")), symbol, Interval::H1);
        assert!(
            !five.is_empty() && !fifteen.is_empty() && !hour.is_empty(),
            "{symbol}: empty series"
        );

        // Merge by close time; at equal close times the higher timeframe goes first (rank 0).
        let mut merged: Vec<(i64, u8, Interval, Bar)> =
            Vec::with_capacity(five.len() + fifteen.len() + hour.len());
        merged.extend(hour.iter().map(|b| (b.close_time, 0, Interval::H1, *b)));
        merged.extend(fifteen.iter().map(|b| (b.close_time, 1, Interval::M15, *b)));
        merged.extend(five.iter().map(|b| (b.close_time, 2, Interval::M5, *b)));
        merged.sort_by_key(|(t, rank, ..)| (*t, *rank));

        let mut analysis = SymbolAnalysis::new(&AnalysisConfig::default()).unwrap();
        analysis.reserve(five.len());
        let mut strategy = strategy_for(Mode::Ict, params).unwrap();
        let counts = per_symbol.entry(symbol).or_default();
        let symbol_id = SymbolId(u16::try_from(id).unwrap());
        for (close_time, _, interval, bar) in &merged {
            analysis.on_closed_bar(*interval, bar).unwrap();
            if *interval != Interval::M5 {
                continue;
            }
            scanned += 1;
            match strategy.evaluate(symbol_id, &analysis, *close_time) {
                Evaluation::Signal(signal) => {
                    match signal.side {
                        Side::Long => counts.long += 1,
                        Side::Short => counts.short += 1,
                    }
                    all_signals.push((*symbol, signal));
                }
                Evaluation::Rejected(rejected) => {
                    *funnel
                        .entry(format!("{:?}: {}", rejected.stage, rejected.reason.key()))
                        .or_default() += 1;
                }
            }
        }
    }

    println!("{:<10} {:>6} {:>6} {:>6}", "symbol", "LONG", "SHORT", "total");
    let (mut long, mut short) = (0, 0);
    for (symbol, c) in &per_symbol {
        println!(
            "{symbol:<10} {:>6} {:>6} {:>6}",
            c.long,
            c.short,
            c.long + c.short
        );
        long += c.long;
        short += c.short;
    }
    let total = long + short;
    println!("{:<10} {long:>6} {short:>6} {total:>6}", "all");
    println!("\nfunnel: {scanned} evaluations (one per closed 5m bar)");
    for (reason, n) in &funnel {
        println!("  {reason:<48} {n:>7}");
    }
    println!("  {:<48} {total:>7}", "signal");
    let mut confluence_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, s) in &all_signals {
        for c in &s.confluences {
            *confluence_counts.entry(c.name()).or_default() += 1;
        }
    }
    println!("\nconfluences over all signals: {confluence_counts:?}");
    for (symbol, s) in all_signals.iter().take(5) {
        println!(
            "example {symbol} {:?} entry {} stop {} tp {} rr {:.2} q {:.2} {:?}",
            s.side,
            s.entry,
            s.stop,
            s.take_profit,
            s.reward_risk,
            s.quality.total,
            s.confluences
                .iter()
                .map(perpdesk::strategy::Confluence::name)
                .collect::<Vec<_>>()
        );
    }

    assert_eq!(scanned, funnel.values().sum::<usize>() + total);
    assert!(total > 0, "no signals at all");
    #[allow(clippy::cast_precision_loss)]
    let long_share = long as f64 / total as f64;
    println!("LONG share: {:.1} %", long_share * 100.0);
    assert!(
        (0.35..=0.65).contains(&long_share),
        "LONG share {:.1} % outside [35 %, 65 %]",
        long_share * 100.0
    );
    let speaking = per_symbol.values().filter(|c| c.long + c.short > 0).count();
    assert!(speaking >= 5, "only {speaking} of 7 symbols produced a signal");
    for (symbol, s) in &all_signals {
        let ok_sides = match s.side {
            Side::Long => s.stop < s.entry && s.take_profit > s.entry,
            Side::Short => s.stop > s.entry && s.take_profit < s.entry,
        };
        assert!(ok_sides, "{symbol}: malformed {s:?}");
        assert!(s.reward_risk >= params.min_reward_risk, "{symbol}: R:R {s:?}");
        let rr = (s.take_profit - s.entry).abs() / (s.entry - s.stop).abs();
        assert!(
            (rr - s.reward_risk).abs() < 1e-9,
            "{symbol}: R:R inconsistent {s:?}"
        );
        assert!(s.confluences.len() >= 2, "{symbol}: too few confluences {s:?}");
        assert!(
            s.quality.total >= params.quality.threshold,
            "{symbol}: quality {s:?}"
        );
    }
}
