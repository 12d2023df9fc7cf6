//! Fuzzes the REST body decoders: klines (wire rows + `parse_kline_row`), the 24h ticker, the premium
//! index, server time and error bodies (typed and the classifier's lenient reader). The first byte
//! picks the decoder so one corpus covers them all.

#![no_main]

use libfuzzer_sys::fuzz_target;
use perpdesk::binance::{errors::ErrorBody, parse, wire};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    match which % 5 {
        0 => {
            if let Ok(rows) = serde_json::from_str::<Vec<wire::KlineRow>>(text) {
                for r in &rows {
                    if let Ok(b) = parse::parse_kline_row(r, i64::MAX) {
                        assert!(b.close.is_finite() && b.low <= b.high);
                    }
                }
            }
        }
        1 => {
            if let Ok(t) = serde_json::from_str::<wire::Ticker24hr>(text) {
                let _ = parse::parse_ticker_rest(&t);
            }
        }
        2 => {
            let _ = serde_json::from_str::<wire::PremiumIndex>(text);
        }
        3 => {
            let _ = serde_json::from_str::<wire::ServerTime>(text);
        }
        _ => {
            let _ = ErrorBody::parse(text);
            let _ = serde_json::from_str::<wire::ApiErrorBody>(text);
        }
    }
});
