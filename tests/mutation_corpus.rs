//! F2 of `RELIABILITY.md` §9: a mutation corpus over the venue fixtures, through every decoder the
//! client has (combined WebSocket frames; REST klines, exchangeInfo, 24h ticker, premium index, server
//! time, error bodies). Each fixture is truncated at every byte offset, and every JSON leaf is swapped
//! in turn for `""`, `"NaN"`, `"1e999"`, `1e999`, `"-0"`, a 400-digit number (quoted and bare), `null`
//! and nested arrays.
//!
//! Pass criteria: no decoder panics (each call runs under `catch_unwind`), every truncated payload is a
//! counted decode error, and whatever does decode is sane (finite, consistent bars). The fuzz targets
//! in `fuzz/` push the same decoders much further; this corpus runs in CI.

mod common;

use std::{
    collections::BTreeSet,
    panic::{AssertUnwindSafe, catch_unwind},
};

use perpdesk::{
    binance::{
        errors::ErrorBody,
        parse::{self, SymbolTable},
        stream::{StreamEvent, decode_frame},
        wire,
    },
    domain::{Symbol, SymbolId, SymbolStatus},
};
use rust_decimal::Decimal;
use serde_json::Value;

const FIXTURES: &str = "fixtures/binance";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    /// A combined-stream frame; the fixture is the `data` payload unless it is already wrapped.
    WsFrame(&'static str),
    RestKlines,
    RestExchangeInfo,
    RestTicker,
    RestPremium,
    RestServerTime,
    RestError,
}

const CORPUS: &[(&str, Decoder)] = &[
    (
        "ws/nautilus/crate_market_kline_stream_closed.json",
        Decoder::WsFrame("btcusdt@kline_1m"),
    ),
    (
        "ws/nautilus/crate_market_mark_price_stream.json",
        Decoder::WsFrame("btcusdt@markPrice"),
    ),
    (
        "ws/nautilus/crate_market_ticker_stream.json",
        Decoder::WsFrame("!ticker@arr"),
    ),
    (
        "ws/cryptofeed_real/combined_kline_closed.json",
        Decoder::WsFrame(""),
    ),
    (
        "ws/cryptofeed_real/combined_kline_open.json",
        Decoder::WsFrame(""),
    ),
    (
        "ws/docs_misc/DERIVED_combined_markPrice_wrapper.json",
        Decoder::WsFrame(""),
    ),
    (
        "ws/binance_connector_rust/stream_kline_candlestick_streams.json",
        Decoder::WsFrame("btcusdt@kline_1m"),
    ),
    (
        "ws/binance_connector_rust/stream_mark_price_stream.json",
        Decoder::WsFrame("btcusdt@markPrice"),
    ),
    (
        "ws/binance_connector_rust/stream_all_market_tickers_streams.json",
        Decoder::WsFrame("!ticker@arr"),
    ),
    (
        "rest/nautilus/py_http_futures_market_klines.json",
        Decoder::RestKlines,
    ),
    (
        "rest/nautilus/py_http_futures_market_exchange_info.json",
        Decoder::RestExchangeInfo,
    ),
    (
        "rest/cryptofeed_real/exchange_info_subset_2021-07-21.json",
        Decoder::RestExchangeInfo,
    ),
    (
        "rest/binance_connector_rust/ticker24hr_price_change_statistics.json",
        Decoder::RestTicker,
    ),
    (
        "rest/binance_connector_rust/mark_price.json",
        Decoder::RestPremium,
    ),
    (
        "rest/errors/error_-1003_too_many_requests_banned.json",
        Decoder::RestError,
    ),
    (
        "rest/errors/error_-1021_invalid_timestamp.json",
        Decoder::RestError,
    ),
    ("rest/errors/error_-1000_unknown.json", Decoder::RestError),
    (
        "rest/errors/error_-1102_mandatory_param_empty_or_malformed.json",
        Decoder::RestError,
    ),
    ("rest/errors/error_-4164_min_notional.json", Decoder::RestError),
    (
        "rest/errors/error_-2022_reduce_only_reject.json",
        Decoder::RestError,
    ),
    (
        "rest/errors/error_-1008_request_throttled.json",
        Decoder::RestError,
    ),
];

/// The replacements for one leaf, as raw JSON text.
fn swaps() -> Vec<String> {
    let long = "9".repeat(400);
    vec![
        "\"\"".into(),
        "\"NaN\"".into(),
        "\"1e999\"".into(),
        "1e999".into(),
        "\"-0\"".into(),
        format!("\"{long}\""),
        long,
        "null".into(),
        "[[[]]]".into(),
    ]
}

fn symbol(name: &str) -> Symbol {
    Symbol {
        id: SymbolId(0),
        name: name.to_owned(),
        base_asset: name.trim_end_matches("USDT").to_owned(),
        quote_asset: "USDT".into(),
        contract_type: "PERPETUAL".into(),
        status: SymbolStatus::Trading,
        price_precision: 2,
        quantity_precision: 3,
        tick_size: Decimal::new(1, 2),
        step_size: Decimal::new(1, 3),
        min_qty: Decimal::new(1, 3),
        min_notional: Decimal::new(5, 0),
    }
}

/// Every `"s"` symbol name in a payload, so the frames reach the parse layer (not only the lookup).
fn symbol_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if let (true, Value::String(s)) = (k == "s" || k == "symbol", x) {
                    out.insert(s.clone());
                }
                symbol_names(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| symbol_names(x, out)),
        _ => {}
    }
}

/// Decodes `text` with `decoder`: `Ok` if the client accepts it, `Err` if it counts a decode error.
/// Whatever decodes is checked for sanity here (a panic in the checks fails the test too).
fn decode(decoder: Decoder, text: &str, table: &SymbolTable) -> Result<(), String> {
    match decoder {
        Decoder::WsFrame(_) => {
            let mut out = Vec::new();
            decode_frame(text, table, &mut out)?;
            for ev in &out {
                if let StreamEvent::Kline(k) = ev {
                    let b = k.bar;
                    assert!(
                        [b.open, b.high, b.low, b.close, b.volume]
                            .iter()
                            .all(|v| v.is_finite()),
                        "a non-finite bar was accepted: {text}"
                    );
                    assert!(b.low <= b.high, "an inconsistent bar was accepted: {text}");
                }
                if let StreamEvent::Mark(m) = ev {
                    assert!(m.mark_price.is_finite(), "non-finite mark accepted: {text}");
                }
            }
            Ok(())
        }
        Decoder::RestKlines => {
            let rows: Vec<wire::KlineRow> = serde_json::from_str(text).map_err(|e| e.to_string())?;
            for r in &rows {
                let b = parse::parse_kline_row(r, i64::MAX).map_err(|e| e.to_string())?;
                assert!(b.close.is_finite() && b.low <= b.high, "{text}");
            }
            Ok(())
        }
        Decoder::RestExchangeInfo => {
            let info: wire::ExchangeInfo = serde_json::from_str(text).map_err(|e| e.to_string())?;
            // One odd listing is skipped and reported, never fatal: the table still builds.
            let (table, errors) = SymbolTable::from_exchange_info(&info);
            if table.is_empty() && !errors.is_empty() {
                return Err(errors[0].to_string());
            }
            Ok(())
        }
        Decoder::RestTicker => {
            let t: wire::Ticker24hr = serde_json::from_str(text).map_err(|e| e.to_string())?;
            let s = parse::parse_ticker_rest(&t).map_err(|e| e.to_string())?;
            assert!(s.quote_volume.is_finite(), "{text}");
            Ok(())
        }
        Decoder::RestPremium => {
            let _: wire::PremiumIndex = serde_json::from_str(text).map_err(|e| e.to_string())?;
            Ok(())
        }
        Decoder::RestServerTime => {
            let _: wire::ServerTime = serde_json::from_str(text).map_err(|e| e.to_string())?;
            Ok(())
        }
        Decoder::RestError => {
            // The classifier reads any body (it falls back to the raw text); the typed body is the
            // strict decoder.
            let _ = ErrorBody::parse(text);
            let _: wire::ApiErrorBody = serde_json::from_str(text).map_err(|e| e.to_string())?;
            Ok(())
        }
    }
}

/// The leaf paths of a JSON value, each with a copy of the document where that leaf is a placeholder.
fn leaf_variants(v: &Value) -> Vec<String> {
    const MARK: &str = "\u{1}MUTATE\u{1}";
    fn walk(v: &mut Value, root: &Value, path: &mut Vec<PathStep>, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                let keys: Vec<String> = m.keys().cloned().collect();
                for k in keys {
                    path.push(PathStep::Key(k.clone()));
                    if let Some(x) = m.get_mut(&k) {
                        walk(x, root, path, out);
                    }
                    path.pop();
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter_mut().enumerate() {
                    path.push(PathStep::Index(i));
                    walk(x, root, path, out);
                    path.pop();
                }
            }
            _ => {
                let mut copy = root.clone();
                let mut at = &mut copy;
                for step in path.iter() {
                    at = match step {
                        PathStep::Key(k) => &mut at[k.as_str()],
                        PathStep::Index(i) => &mut at[*i],
                    };
                }
                *at = Value::String(MARK.to_owned());
                out.push(copy.to_string());
            }
        }
    }
    enum PathStep {
        Key(String),
        Index(usize),
    }
    let mut out = Vec::new();
    walk(&mut v.clone(), v, &mut Vec::new(), &mut out);
    out.into_iter()
        .map(|s| s.replace(&format!("\"{MARK}\""), "\u{0}"))
        .collect()
}

#[test]
fn mutated_fixtures_never_panic_and_errors_are_counted() {
    if common::shared_path(FIXTURES).is_none() {
        return;
    }
    let swaps = swaps();
    let (mut cases, mut errors, mut panics) = (0usize, 0usize, Vec::new());
    for (rel, decoder) in CORPUS {
        let Some(raw) = common::read_shared(&format!("{FIXTURES}/{rel}")) else {
            return;
        };
        let value: Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let mut names = BTreeSet::new();
        symbol_names(&value, &mut names);
        let mut table = SymbolTable::default();
        for n in &names {
            table.insert(symbol(n));
        }
        // The text the decoder sees: compact JSON, wrapped as a combined frame where needed.
        let frame = |payload: &str| match decoder {
            // `!ticker@arr` carries an array; a single-ticker fixture becomes a one-element array.
            Decoder::WsFrame(stream @ "!ticker@arr") if payload.starts_with('{') => {
                format!(r#"{{"stream":"{stream}","data":[{payload}]}}"#)
            }
            Decoder::WsFrame(stream) if !stream.is_empty() => {
                format!(r#"{{"stream":"{stream}","data":{payload}}}"#)
            }
            _ => payload.to_owned(),
        };
        let full = frame(&value.to_string());
        // Some documentation examples are themselves inconsistent (high below close): the client
        // rejects those too, which is the point; the mutations below run either way.
        let _ = decode(*decoder, &full, &table);
        let mut run = |text: &str| {
            cases += 1;
            match catch_unwind(AssertUnwindSafe(|| decode(*decoder, text, &table))) {
                Ok(Ok(())) => true,
                Ok(Err(_)) => {
                    errors += 1;
                    false
                }
                Err(_) => {
                    panics.push(format!("{rel}: {text}"));
                    false
                }
            }
        };
        // Truncation at every byte offset: never a valid document, always a counted error.
        for cut in 0..full.len() {
            if full.is_char_boundary(cut) {
                let accepted = run(&full[..cut]);
                assert!(!accepted, "{rel}: a frame truncated at {cut} was accepted");
            }
        }
        // Value swaps at every leaf.
        for variant in leaf_variants(&value) {
            for swap in &swaps {
                let text = frame(&variant.replace('\u{0}', swap));
                run(&text);
            }
        }
    }
    assert!(
        panics.is_empty(),
        "{} panics, first: {:?}",
        panics.len(),
        panics.first()
    );
    assert!(cases > 20_000, "only {cases} cases");
    assert!(errors > cases / 2, "{errors} decode errors in {cases} cases");
    eprintln!("mutation corpus: {cases} cases, {errors} counted decode errors, 0 panics");
}

#[test]
fn non_finite_and_absurd_numbers_are_rejected_by_the_kline_decoder() {
    let mut table = SymbolTable::default();
    table.insert(symbol("BTCUSDT"));
    let good = r#"{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":0,"T":59999,"s":"BTCUSDT","i":"1m","f":1,"L":2,"o":"1.0","c":"1.5","h":"2.0","l":"0.5","v":"10","n":2,"x":true,"q":"15","V":"5","Q":"7","B":"0"}}}"#;
    assert_eq!(decode(Decoder::WsFrame(""), good, &table), Ok(()));
    for bad in ["\"NaN\"", "\"1e999\"", "\"\"", "null", "[[[]]]", "\"inf\""] {
        let text = good.replace(r#""c":"1.5""#, &format!(r#""c":{bad}"#));
        assert!(
            decode(Decoder::WsFrame(""), &text, &table).is_err(),
            "close {bad} accepted"
        );
    }
}

#[test]
fn the_server_time_decoder_survives_its_mutations() {
    let table = SymbolTable::default();
    let full = r#"{"serverTime":1499827319559}"#;
    assert_eq!(decode(Decoder::RestServerTime, full, &table), Ok(()));
    for cut in 0..full.len() {
        assert!(decode(Decoder::RestServerTime, &full[..cut], &table).is_err());
    }
    for swap in swaps() {
        let text = full.replace("1499827319559", &swap);
        assert!(decode(Decoder::RestServerTime, &text, &table).is_err(), "{text}");
    }
}
