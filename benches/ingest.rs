//! Inbound market-data pipeline benches: a combined-stream kline frame → domain bar, split into
//! decode-only, parse-only (with symbol lookup) and end-to-end; and the bar-series update.
//!
//! Results and the machine they ran on are recorded in `benches/BENCHMARKS.md`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perpdesk::{
    binance::{
        parse::{SymbolTable, parse_kline_event},
        stream::{StreamEvent, decode_frame},
        wire::CombinedFrame,
    },
    domain::{Bar, Interval, Symbol, SymbolId, SymbolStatus},
    market::series::BarSeries,
};
use rust_decimal::Decimal;

/// A frame exactly as Binance (and the simulator) sends it on a combined stream.
const FRAME: &str = r#"{"stream":"ethusdt@kline_5m","data":{"e":"kline","E":1689678842123,"s":"ETHUSDT","k":{"t":1689678600000,"T":1689678899999,"s":"ETHUSDT","i":"5m","f":3172880123,"L":3172881456,"o":"1893.51","c":"1894.02","h":"1894.40","l":"1893.10","v":"1532.447","n":1334,"x":false,"q":"2901770.4411","V":"801.122","Q":"1517146.2300","B":"0"}}}"#;

fn table() -> SymbolTable {
    let mut t = SymbolTable::default();
    // A realistic table: the frame's symbol among 260 others, so the lookup is not trivially small.
    for i in 0..260 {
        let name = if i == 137 {
            "ETHUSDT".to_owned()
        } else {
            format!("SYM{i}USDT")
        };
        t.insert(Symbol {
            id: SymbolId(0),
            name,
            base_asset: "X".into(),
            quote_asset: "USDT".into(),
            contract_type: "PERPETUAL".into(),
            status: SymbolStatus::Trading,
            price_precision: 2,
            quantity_precision: 3,
            tick_size: Decimal::new(1, 2),
            step_size: Decimal::new(1, 3),
            min_qty: Decimal::new(1, 3),
            min_notional: Decimal::from(5),
        });
    }
    t
}

fn pipeline(c: &mut Criterion) {
    let table = table();
    let mut g = c.benchmark_group("kline_frame");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_only", |b| {
        b.iter(|| {
            let f: CombinedFrame<'_> = serde_json::from_str(black_box(FRAME)).expect("valid frame");
            black_box(f);
        });
    });
    let CombinedFrame::Kline(event) = serde_json::from_str::<CombinedFrame<'_>>(FRAME).expect("valid") else {
        panic!("fixture is a kline frame")
    };
    g.bench_function("parse_only", |b| {
        b.iter(|| black_box(parse_kline_event(black_box(&event), &table).expect("parses")));
    });
    let mut out: Vec<StreamEvent> = Vec::with_capacity(4);
    g.bench_function("end_to_end", |b| {
        b.iter(|| {
            out.clear();
            decode_frame(black_box(FRAME), &table, &mut out).expect("decodes");
            black_box(&out);
        });
    });
    g.finish();
}

fn bar_update(c: &mut Criterion) {
    let mut g = c.benchmark_group("bar_series");
    g.throughput(Throughput::Elements(1));
    let mut series = BarSeries::new(Interval::M5, 1000);
    let mut bar = Bar {
        open_time: 0,
        close_time: 299_999,
        open: 100.0,
        high: 101.0,
        low: 99.0,
        close: 100.5,
        volume: 10.0,
        quote_volume: 1000.0,
        trades: 10,
        closed: false,
    };
    // Steady state: a full ring, forming updates to the current bar (the 250 ms stream case).
    for i in 0..1000 {
        series.apply(Bar {
            open_time: i * 300_000,
            close_time: i * 300_000 + 299_999,
            closed: true,
            ..bar
        });
    }
    bar.open_time = 1000 * 300_000;
    g.bench_function("forming_update", |b| {
        b.iter(|| black_box(series.apply(black_box(bar))));
    });
    // Closing bars into a full ring (evicts the oldest).
    let mut t = 1001 * 300_000;
    g.bench_function("close_into_full_ring", |b| {
        b.iter(|| {
            t += 300_000;
            black_box(series.apply(Bar {
                open_time: t,
                close_time: t + 299_999,
                closed: true,
                ..bar
            }))
        });
    });
    g.finish();
}

criterion_group!(benches, pipeline, bar_update);
criterion_main!(benches);
