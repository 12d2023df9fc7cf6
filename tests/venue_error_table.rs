//! The error table (`binance::errors`) over every venue error fixture in
//! `../shared/fixtures/binance/rest/errors/`: one row per fixture file (and one per message of
//! `http_503_messages.json`), each with the HTTP status the venue sends it with and the expected class
//! for a read and for an order POST. The test fails if a fixture has no row or a row no fixture, so a
//! new fixture cannot go unclassified.
//!
//! When `../shared` is absent the test prints a `SKIP:` line and passes; see `tests/common`.

mod common;

use std::collections::BTreeSet;

use perpdesk::binance::errors::{
    BackOff, ErrorBody, ErrorClass, Failure, MSG_503_UNAVAILABLE, MSG_503_UNKNOWN, MSG_THROTTLED,
    RequestKind, classify,
};
use serde::Deserialize;

const DIR: &str = "fixtures/binance/rest/errors";

use ErrorClass::{NeverRetry, OutcomeUnknown, Retry};

const RATE: ErrorClass = ErrorClass::BackOff(BackOff::RateLimited);
const THROTTLED: ErrorClass = ErrorClass::BackOff(BackOff::Throttled);
const BANNED: ErrorClass = ErrorClass::BackOff(BackOff::IpBanned { until_ms: None });

/// `(file, HTTP status, class for a read, class for an order POST)`.
const ROWS: &[(&str, u16, ErrorClass, ErrorClass)] = &[
    ("error_-1000_unknown.json", 400, Retry, OutcomeUnknown),
    ("error_-1003_too_many_requests.json", 429, RATE, RATE),
    ("error_-1003_too_many_requests_banned.json", 418, BANNED, BANNED),
    ("error_-1008_request_throttled.json", 503, THROTTLED, THROTTLED),
    ("error_-1021_invalid_timestamp.json", 400, Retry, Retry),
    ("error_-1021_invalid_timestamp_ahead.json", 400, Retry, Retry),
    ("error_-1022_invalid_signature.json", 400, NeverRetry, NeverRetry),
    (
        "error_-1102_mandatory_param_empty_or_malformed.json",
        400,
        NeverRetry,
        NeverRetry,
    ),
    ("error_-1111_bad_precision.json", 400, NeverRetry, NeverRetry),
    ("error_-1121_bad_symbol.json", 400, NeverRetry, NeverRetry),
    ("error_-1125_invalid_listen_key.json", 400, NeverRetry, NeverRetry),
    ("error_-2011_cancel_rejected.json", 400, NeverRetry, NeverRetry),
    // A read of an order the venue has not propagated yet is retried (bounded by the resolver).
    ("error_-2013_no_such_order.json", 400, Retry, NeverRetry),
    ("error_-2015_rejected_mbx_key.json", 401, NeverRetry, NeverRetry),
    (
        "error_-2019_margin_not_sufficien.json",
        400,
        NeverRetry,
        NeverRetry,
    ),
    (
        "error_-2021_order_would_immediately_trigger.json",
        400,
        NeverRetry,
        NeverRetry,
    ),
    ("error_-2022_reduce_only_reject.json", 400, NeverRetry, NeverRetry),
    ("error_-4003_qty_less_than_zero.json", 400, NeverRetry, NeverRetry),
    (
        "error_-4014_price_not_increased_by_tick_size.json",
        400,
        NeverRetry,
        NeverRetry,
    ),
    (
        "error_-4016_price_highter_than_multiplier_up.json",
        400,
        NeverRetry,
        NeverRetry,
    ),
    (
        "error_-4023_qty_not_increased_by_step_size.json",
        400,
        NeverRetry,
        NeverRetry,
    ),
    ("error_-4164_min_notional.json", 400, NeverRetry, NeverRetry),
    (
        "error_-4164_min_notional_variant_100.json",
        400,
        NeverRetry,
        NeverRetry,
    ),
];

/// `(key in http_503_messages.json, class for a read, class for an order POST)`, all with HTTP 503.
const ROWS_503: &[(&str, ErrorClass, ErrorClass)] = &[
    ("unknown_execution_status", Retry, OutcomeUnknown),
    ("service_unavailable", Retry, Retry),
    ("internal_error_retry", Retry, OutcomeUnknown),
    ("http_5xx_generic", Retry, OutcomeUnknown),
];

#[derive(Debug, Deserialize)]
struct IndexEntry {
    file: String,
    code: i64,
}

fn read(rel: &str) -> Option<String> {
    common::read_shared(&format!("{DIR}/{rel}"))
}

#[test]
fn every_error_fixture_is_classified() {
    let Some(dir) = common::shared_path(DIR) else {
        return;
    };
    // Every file of the folder: the index, the 503 messages (tested below) and one row per error body.
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    let mut in_table: BTreeSet<String> = ROWS.iter().map(|r| r.0.to_owned()).collect();
    in_table.extend(["_index.json".to_owned(), "http_503_messages.json".to_owned()]);
    assert_eq!(on_disk, in_table, "fixture files and table rows differ");

    for &(file, status, read_class, create_class) in ROWS {
        let body = read(file).expect("fixture present");
        let parsed = ErrorBody::parse(&body);
        let code = parsed.code.expect("every fixture has a code");
        assert!(file.contains(&format!("_{code}_")), "{file} holds code {code}");
        let read_v = classify(RequestKind::Read, Failure::Http { status, body: &body });
        let create_v = classify(RequestKind::CreateOrder, Failure::Http { status, body: &body });
        assert_eq!(read_v.class, read_class, "{file} as a read");
        assert_eq!(create_v.class, create_class, "{file} as an order POST");
        assert_eq!(create_v.code, Some(code), "{file}");
        // A cancel/modify is never retried on a definitive refusal either.
        let mutation = classify(RequestKind::Mutation, Failure::Http { status, body: &body }).class;
        if create_class == NeverRetry {
            assert_eq!(mutation, NeverRetry, "{file} as a cancel");
        }
    }
}

#[test]
fn index_lists_the_same_codes_as_the_files() {
    let Some(index) = read("_index.json") else {
        return;
    };
    let index: Vec<IndexEntry> = serde_json::from_str(&index).expect("index json");
    assert!(!index.is_empty());
    for e in &index {
        let row = ROWS.iter().find(|r| r.0 == e.file);
        assert!(row.is_some(), "{} from _index.json has no table row", e.file);
        let body = read(&e.file).expect("indexed file present");
        assert_eq!(ErrorBody::parse(&body).code, Some(e.code), "{}", e.file);
    }
}

#[test]
fn the_three_meanings_of_503_by_message() {
    let Some(text) = read("http_503_messages.json") else {
        return;
    };
    let messages: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).expect("json");
    let keys: BTreeSet<&str> = messages.keys().map(String::as_str).collect();
    let rows: BTreeSet<&str> = ROWS_503.iter().map(|r| r.0).collect();
    assert_eq!(keys, rows, "http_503_messages.json keys and table rows differ");
    // The constants the classifier matches on are the fixture's text, byte for byte.
    assert_eq!(messages["unknown_execution_status"], MSG_503_UNKNOWN);
    assert_eq!(messages["service_unavailable"], MSG_503_UNAVAILABLE);

    for &(key, read_class, create_class) in ROWS_503 {
        let msg = messages[key].as_str().expect("string");
        // The venue sends these both as plain text and inside a JSON error body.
        let json = serde_json::json!({"code": -1000, "msg": msg}).to_string();
        let plain = msg.to_owned();
        for body in [plain.as_str(), json.as_str()] {
            let read_v = classify(RequestKind::Read, Failure::Http { status: 503, body });
            let create_v = classify(RequestKind::CreateOrder, Failure::Http { status: 503, body });
            assert_eq!(read_v.class, read_class, "{key} as a read: {body}");
            assert_eq!(create_v.class, create_class, "{key} as an order POST: {body}");
        }
    }

    // The third meaning: -1008 throttling, also sent with 503.
    let throttled = read("error_-1008_request_throttled.json").expect("fixture");
    assert_eq!(ErrorBody::parse(&throttled).msg, MSG_THROTTLED);
    assert_eq!(
        classify(
            RequestKind::CreateOrder,
            Failure::Http {
                status: 503,
                body: MSG_THROTTLED
            }
        )
        .class,
        THROTTLED
    );
}
