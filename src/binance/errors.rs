//! The error table: what a failed REST call means, and whether sending it again is safe.
//!
//! The costliest connector bugs are not refusals but *retries*: an order POST that timed out, or that
//! got HTTP 503 "Unknown error", may have been executed, and sending it again can double a position
//! (RELIABILITY.md §3). So every failure is classified before anyone retries, as one of
//!
//! * [`ErrorClass::Retry`]: the venue did **not** act on the request (nothing was sent, or the venue
//!   says so: 503 "Service Unavailable.", `-1021` after a clock re-sync, …); the same request may be sent
//!   again after a backoff. For an order this only happens where non-execution is certain, and the resend
//!   keeps its `newClientOrderId`, so a venue-side duplicate is refused (`-4116`), never doubled.
//! * [`ErrorClass::NeverRetry`]: a definitive refusal; the same request gets the same answer. Fix the
//!   request or the state first ([`Hint`] says what).
//! * [`ErrorClass::OutcomeUnknown`]: the request may have been executed (timeout after send, 5xx, 503
//!   "Unknown error…", `-1000`, `-1006`, `-1007`). Never resent blindly: resolve it by querying
//!   (`GET /fapi/v1/order?origClientOrderId=`) first. Only for requests that change state; an unknown
//!   outcome of a read is just a [`ErrorClass::Retry`].
//! * [`ErrorClass::BackOff`]: rate limit (429, `-1003`, `-1015`), IP ban (418) or system throttling
//!   (`-1008`): the request was not executed, and no REST (all of it for a ban) may go out until the
//!   `Retry-After` has passed; the governor enforces that.
//!
//! HTTP 503 has three meanings told apart by the message, exactly as PROTOCOL.md §3 quotes them:
//! [`MSG_503_UNKNOWN`] (outcome unknown), [`MSG_503_UNAVAILABLE`] (certain failure, retry with backoff
//! 200 → 400 → 800 ms) and [`MSG_THROTTLED`] / code `-1008` (failure, back off). Any other 5xx text is
//! treated as the unknown case for writes.

use super::wire::ApiErrorBody;

/// 503 body meaning "execution status unknown, may have succeeded".
pub const MSG_503_UNKNOWN: &str = "Unknown error, please check your request or try again later.";
/// 503 body meaning "certainly not executed, retry with backoff".
pub const MSG_503_UNAVAILABLE: &str = "Service Unavailable.";
/// `-1008` body (also sent with HTTP 503): system-level throttling, reduce-only/close orders exempt.
pub const MSG_THROTTLED: &str = "Request throttled by system-level protection. Reduce-only/close-position orders are exempt. Please try again.";

/// What the failed request was, which decides whether an ambiguous failure matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// A read (GET of market data, account, order status, …): sending it twice is harmless.
    Read,
    /// A request that creates an order (`POST /fapi/v1/order`, `/batchOrders`, `/algoOrder`).
    CreateOrder,
    /// Any other state change (cancel, modify, leverage, margin type, listenKey).
    Mutation,
}

/// How a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure<'a> {
    /// Nothing reached the venue (DNS, connection refused, TLS handshake): a connect error.
    NotSent,
    /// The request was or may have been sent, and no response came (timeout, reset, closed).
    NoResponse,
    /// The venue answered with an HTTP error status; `body` is the raw response body.
    Http { status: u16, body: &'a str },
    /// A 2xx response whose body could not be decoded.
    MalformedSuccess,
}

/// Why to stop sending for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackOff {
    /// HTTP 429 / `-1003` / `-1015`: a rate limit was broken. Stop until `Retry-After`.
    RateLimited,
    /// HTTP 418 or `-1003` "IP banned until …": no REST at all until `Retry-After` (or `until_ms`, the
    /// time in the message when the venue gives one). Alert the operator.
    IpBanned { until_ms: Option<i64> },
    /// `-1008` system-level throttling: back off; reduce-only and close-position orders are exempt.
    Throttled,
}

/// The class of a failure (see the module docs for the contract of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Retry,
    NeverRetry,
    OutcomeUnknown,
    BackOff(BackOff),
}

/// What to do besides (or before) retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    None,
    /// `-1021`: re-sync the server-time offset before the next signed request.
    ResyncClock,
    /// `-1125`: create a new listenKey and reconnect the user stream.
    RecreateListenKey,
    /// Resolve by `GET /fapi/v1/order?origClientOrderId=` (unknown outcome, `-2011`, `-2013` on a
    /// cancel, `-4116` duplicate id).
    QueryOrder,
    /// `-2022` / `-4118`: re-read the position; the exit may already have filled.
    RequeryPosition,
    /// The request itself is wrong (precision, filters, parameters): a bug or stale filters.
    FixRequest,
    /// Key, signature, IP whitelist or permissions: stop trading and tell the operator.
    CheckCredentials,
    /// Needs a human (IP ban, WAF block).
    AlertOperator,
}

/// The classification of one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub class: ErrorClass,
    pub hint: Hint,
    /// The venue's error code, when the body had one.
    pub code: Option<i64>,
}

/// The venue's error body, read leniently: a JSON `{code, msg}`, a JSON object missing either, or
/// plain text (some 5xx bodies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub code: Option<i64>,
    pub msg: String,
}

impl ErrorBody {
    pub fn parse(body: &str) -> Self {
        if let Ok(b) = serde_json::from_str::<ApiErrorBody>(body) {
            return Self {
                code: Some(b.code),
                msg: b.msg,
            };
        }
        match serde_json::from_str::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(map)) => Self {
                code: map.get("code").and_then(serde_json::Value::as_i64),
                msg: map
                    .get("msg")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            },
            Ok(serde_json::Value::String(s)) => Self { code: None, msg: s },
            _ => Self {
                code: None,
                msg: body.trim().to_owned(),
            },
        }
    }
}

/// How a venue code behaves, independent of the request kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Definitive refusal.
    Refused(Hint),
    /// Not executed; resend after the hinted remedy.
    NotExecuted(Hint),
    /// Execution status unknown.
    Ambiguous,
    /// `-2013`: a read may be racing the venue's propagation (retry a few times); a cancel is done.
    NotFound,
    BackOff(BackOff),
}

/// The venue codes this console knows: `(code, name, rule)`. Names as on the venue's Error Codes page.
const CODES: &[(i64, &str, Rule)] = &[
    (-1000, "UNKNOWN", Rule::Ambiguous),
    (-1001, "DISCONNECTED", Rule::Ambiguous),
    (-1003, "TOO_MANY_REQUESTS", Rule::BackOff(BackOff::RateLimited)),
    (-1006, "UNEXPECTED_RESP", Rule::Ambiguous),
    (-1007, "TIMEOUT", Rule::Ambiguous),
    (-1008, "REQUEST_THROTTLED", Rule::BackOff(BackOff::Throttled)),
    (-1015, "TOO_MANY_ORDERS", Rule::BackOff(BackOff::RateLimited)),
    (-1016, "SERVICE_SHUTTING_DOWN", Rule::NotExecuted(Hint::None)),
    (-1021, "INVALID_TIMESTAMP", Rule::NotExecuted(Hint::ResyncClock)),
    (-1022, "INVALID_SIGNATURE", Rule::Refused(Hint::CheckCredentials)),
    (
        -1102,
        "MANDATORY_PARAM_EMPTY_OR_MALFORMED",
        Rule::Refused(Hint::FixRequest),
    ),
    (-1111, "BAD_PRECISION", Rule::Refused(Hint::FixRequest)),
    (-1121, "BAD_SYMBOL", Rule::Refused(Hint::FixRequest)),
    (
        -1125,
        "INVALID_LISTEN_KEY",
        Rule::Refused(Hint::RecreateListenKey),
    ),
    (-2011, "CANCEL_REJECTED", Rule::Refused(Hint::QueryOrder)),
    (-2013, "NO_SUCH_ORDER", Rule::NotFound),
    (-2014, "BAD_API_KEY_FMT", Rule::Refused(Hint::CheckCredentials)),
    (-2015, "REJECTED_MBX_KEY", Rule::Refused(Hint::CheckCredentials)),
    (-2019, "MARGIN_NOT_SUFFICIEN", Rule::Refused(Hint::None)),
    (
        -2021,
        "ORDER_WOULD_IMMEDIATELY_TRIGGER",
        Rule::Refused(Hint::FixRequest),
    ),
    (-2022, "REDUCE_ONLY_REJECT", Rule::Refused(Hint::RequeryPosition)),
    (-4001, "PRICE_LESS_THAN_ZERO", Rule::Refused(Hint::FixRequest)),
    (
        -4002,
        "PRICE_GREATER_THAN_MAX_PRICE",
        Rule::Refused(Hint::FixRequest),
    ),
    (-4003, "QTY_LESS_THAN_ZERO", Rule::Refused(Hint::FixRequest)),
    (-4004, "QTY_LESS_THAN_MIN_QTY", Rule::Refused(Hint::FixRequest)),
    (-4005, "QTY_GREATER_THAN_MAX_QTY", Rule::Refused(Hint::FixRequest)),
    (
        -4013,
        "PRICE_LESS_THAN_MIN_PRICE",
        Rule::Refused(Hint::FixRequest),
    ),
    (
        -4014,
        "PRICE_NOT_INCREASED_BY_TICK_SIZE",
        Rule::Refused(Hint::FixRequest),
    ),
    (-4015, "INVALID_CL_ORD_ID_LEN", Rule::Refused(Hint::FixRequest)),
    (
        -4016,
        "PRICE_HIGHTER_THAN_MULTIPLIER_UP",
        Rule::Refused(Hint::FixRequest),
    ),
    (
        -4023,
        "QTY_NOT_INCREASED_BY_STEP_SIZE",
        Rule::Refused(Hint::FixRequest),
    ),
    (
        -4024,
        "PRICE_LOWER_THAN_MULTIPLIER_DOWN",
        Rule::Refused(Hint::FixRequest),
    ),
    (
        -4116,
        "DUPLICATED_CLIENT_ORDER_ID",
        Rule::Refused(Hint::QueryOrder),
    ),
    (
        -4118,
        "REDUCE_ONLY_MARGIN_CHECK_FAILED",
        Rule::Refused(Hint::RequeryPosition),
    ),
    (-4164, "MIN_NOTIONAL", Rule::Refused(Hint::FixRequest)),
    (-5022, "GTX_ORDER_REJECT", Rule::Refused(Hint::None)),
];

fn rule(code: i64) -> Option<Rule> {
    CODES.iter().find(|(c, _, _)| *c == code).map(|&(_, _, r)| r)
}

/// The venue's name for `code` (`-1021` → `INVALID_TIMESTAMP`), if this console knows it.
pub fn code_name(code: i64) -> Option<&'static str> {
    CODES.iter().find(|(c, _, _)| *c == code).map(|&(_, n, _)| n)
}

/// Classifies a failed request.
pub fn classify(kind: RequestKind, failure: Failure<'_>) -> Verdict {
    let verdict = |class, hint, code| Verdict { class, hint, code };
    let ambiguous = |code| match kind {
        RequestKind::Read => verdict(ErrorClass::Retry, Hint::None, code),
        RequestKind::CreateOrder | RequestKind::Mutation => {
            verdict(ErrorClass::OutcomeUnknown, Hint::QueryOrder, code)
        }
    };
    // A success we could not read: a read would get the same bytes again (a bug or a venue change,
    // not a transient); a write was accepted in some form.
    let unreadable_success = |code| match kind {
        RequestKind::Read => verdict(ErrorClass::NeverRetry, Hint::FixRequest, code),
        RequestKind::CreateOrder | RequestKind::Mutation => ambiguous(code),
    };
    let (status, body) = match failure {
        Failure::NotSent => return verdict(ErrorClass::Retry, Hint::None, None),
        Failure::NoResponse => return ambiguous(None),
        Failure::MalformedSuccess => return unreadable_success(None),
        Failure::Http { status, body } => (status, ErrorBody::parse(body)),
    };
    let code = body.code;
    let msg = body.msg.trim();

    if status == 418 {
        return verdict(
            ErrorClass::BackOff(BackOff::IpBanned {
                until_ms: banned_until(msg),
            }),
            Hint::AlertOperator,
            code,
        );
    }
    if let Some(until_ms) = msg
        .starts_with("Way too many requests; IP banned until")
        .then(|| banned_until(msg))
    {
        return verdict(
            ErrorClass::BackOff(BackOff::IpBanned { until_ms }),
            Hint::AlertOperator,
            code,
        );
    }
    if status == 429 {
        return verdict(ErrorClass::BackOff(BackOff::RateLimited), Hint::None, code);
    }
    if code == Some(-1008) || msg == MSG_THROTTLED {
        return verdict(ErrorClass::BackOff(BackOff::Throttled), Hint::None, code);
    }
    if status == 503 && msg == MSG_503_UNAVAILABLE {
        return verdict(ErrorClass::Retry, Hint::None, code);
    }
    if status == 503 && msg == MSG_503_UNKNOWN {
        return ambiguous(code);
    }
    let by_code = code.and_then(rule).map(|r| match r {
        Rule::Refused(hint) => verdict(ErrorClass::NeverRetry, hint, code),
        Rule::NotExecuted(hint) => verdict(ErrorClass::Retry, hint, code),
        Rule::Ambiguous => ambiguous(code),
        Rule::NotFound => match kind {
            RequestKind::Read => verdict(ErrorClass::Retry, Hint::QueryOrder, code),
            RequestKind::CreateOrder | RequestKind::Mutation => {
                verdict(ErrorClass::NeverRetry, Hint::QueryOrder, code)
            }
        },
        Rule::BackOff(b) => verdict(ErrorClass::BackOff(b), Hint::None, code),
    });
    if let Some(v) = by_code {
        return v;
    }
    match status {
        // Backend timeout and every other 5xx without a code we know: may have executed.
        408 | 500.. => ambiguous(code),
        401 => verdict(ErrorClass::NeverRetry, Hint::CheckCredentials, code),
        403 => verdict(ErrorClass::NeverRetry, Hint::AlertOperator, code),
        // A 4xx we do not know: refused, and repeating an ununderstood request is never right.
        400..=499 => verdict(ErrorClass::NeverRetry, Hint::None, code),
        // A "failure" with a success or redirect status: an unreadable success.
        _ => unreadable_success(code),
    }
}

/// The ban end in "Way too many requests; IP banned until 1591702613943. …", if it is a number.
fn banned_until(msg: &str) -> Option<i64> {
    let rest = msg.split_once("banned until ")?.1;
    let digits: &str = &rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())];
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(kind: RequestKind, status: u16, body: &str) -> Verdict {
        classify(kind, Failure::Http { status, body })
    }

    fn err(code: i64, msg: &str) -> String {
        serde_json::json!({"code": code, "msg": msg}).to_string()
    }

    use ErrorClass::{NeverRetry, OutcomeUnknown, Retry};
    use RequestKind::{CreateOrder, Mutation, Read};

    /// The R4 table of RELIABILITY.md §9: (kind, status, body, class).
    #[test]
    fn table_of_http_and_code_cases() {
        let rows: Vec<(RequestKind, u16, String, ErrorClass)> = vec![
            (CreateOrder, 503, err(-1000, MSG_503_UNKNOWN), OutcomeUnknown),
            (CreateOrder, 503, MSG_503_UNKNOWN.to_owned(), OutcomeUnknown),
            (Mutation, 503, MSG_503_UNKNOWN.to_owned(), OutcomeUnknown),
            (Read, 503, MSG_503_UNKNOWN.to_owned(), Retry),
            (CreateOrder, 503, MSG_503_UNAVAILABLE.to_owned(), Retry),
            (Read, 503, MSG_503_UNAVAILABLE.to_owned(), Retry),
            (
                CreateOrder,
                503,
                err(-1008, MSG_THROTTLED),
                ErrorClass::BackOff(BackOff::Throttled),
            ),
            (
                CreateOrder,
                503,
                MSG_THROTTLED.to_owned(),
                ErrorClass::BackOff(BackOff::Throttled),
            ),
            (CreateOrder, 503, "upstream gone".to_owned(), OutcomeUnknown),
            (CreateOrder, 500, String::new(), OutcomeUnknown),
            (
                CreateOrder,
                502,
                "<html>Bad Gateway</html>".to_owned(),
                OutcomeUnknown,
            ),
            (CreateOrder, 504, String::new(), OutcomeUnknown),
            (CreateOrder, 408, String::new(), OutcomeUnknown),
            (Read, 502, String::new(), Retry),
            (Read, 408, String::new(), Retry),
            (
                CreateOrder,
                400,
                err(
                    -1007,
                    "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
                ),
                OutcomeUnknown,
            ),
            (
                CreateOrder,
                400,
                err(
                    -1006,
                    "An unexpected response was received from the message bus. Execution status unknown.",
                ),
                OutcomeUnknown,
            ),
            (
                CreateOrder,
                429,
                err(
                    -1003,
                    "Too many requests; current limit is 2400 requests per minute.",
                ),
                ErrorClass::BackOff(BackOff::RateLimited),
            ),
            (
                Read,
                429,
                String::new(),
                ErrorClass::BackOff(BackOff::RateLimited),
            ),
            (
                Read,
                418,
                String::new(),
                ErrorClass::BackOff(BackOff::IpBanned { until_ms: None }),
            ),
            (
                Read,
                418,
                err(
                    -1003,
                    "Way too many requests; IP banned until 1591702613943. Please use the websocket for live updates to avoid bans.",
                ),
                ErrorClass::BackOff(BackOff::IpBanned {
                    until_ms: Some(1_591_702_613_943),
                }),
            ),
            (
                CreateOrder,
                400,
                err(
                    -1015,
                    "Too many new orders; current limit is 300 orders per TEN_SECONDS.",
                ),
                ErrorClass::BackOff(BackOff::RateLimited),
            ),
            (
                CreateOrder,
                400,
                err(-1021, "Timestamp for this request is outside of the recvWindow."),
                Retry,
            ),
            (
                CreateOrder,
                400,
                err(-1022, "Signature for this request is not valid."),
                NeverRetry,
            ),
            (
                CreateOrder,
                401,
                err(-2015, "Invalid API-key, IP, or permissions for action."),
                NeverRetry,
            ),
            (CreateOrder, 401, String::new(), NeverRetry),
            (CreateOrder, 403, "WAF".to_owned(), NeverRetry),
            (
                CreateOrder,
                400,
                err(-1111, "Precision is over the maximum defined for this asset."),
                NeverRetry,
            ),
            (
                CreateOrder,
                400,
                err(-2019, "Margin is insufficient."),
                NeverRetry,
            ),
            (
                CreateOrder,
                400,
                err(-2022, "ReduceOnly Order is rejected."),
                NeverRetry,
            ),
            (
                CreateOrder,
                400,
                err(-4116, "ClientOrderId is duplicated."),
                NeverRetry,
            ),
            (
                CreateOrder,
                400,
                err(
                    -4164,
                    "Order's notional must be no smaller than 5.0 (unless you choose reduce only)",
                ),
                NeverRetry,
            ),
            (CreateOrder, 400, err(-9999, "Something new."), NeverRetry),
            (Mutation, 400, err(-2013, "Order does not exist."), NeverRetry),
            (Read, 400, err(-2013, "Order does not exist."), Retry),
            (Mutation, 400, err(-2011, "Unknown order sent."), NeverRetry),
            (
                Read,
                400,
                err(-1016, "This service is no longer available."),
                Retry,
            ),
        ];
        for (kind, status, body, class) in rows {
            assert_eq!(http(kind, status, &body).class, class, "{kind:?} {status} {body}");
        }
    }

    #[test]
    fn transport_failures() {
        for kind in [Read, CreateOrder, Mutation] {
            assert_eq!(classify(kind, Failure::NotSent).class, Retry);
        }
        assert_eq!(classify(Read, Failure::NoResponse).class, Retry);
        assert_eq!(classify(CreateOrder, Failure::NoResponse).class, OutcomeUnknown);
        assert_eq!(classify(CreateOrder, Failure::NoResponse).hint, Hint::QueryOrder);
        assert_eq!(classify(Mutation, Failure::NoResponse).class, OutcomeUnknown);
        assert_eq!(
            classify(CreateOrder, Failure::MalformedSuccess).class,
            OutcomeUnknown
        );
        assert_eq!(classify(Read, Failure::MalformedSuccess).class, NeverRetry);
    }

    /// An order POST is never classified `Retry` unless the venue guarantees non-execution: only
    /// connect failures, 503 "Service Unavailable." and the not-executed codes (-1016, -1021).
    #[test]
    fn create_order_is_retried_only_when_non_execution_is_certain() {
        let mut bodies: Vec<String> = vec![
            String::new(),
            "garbage".into(),
            MSG_503_UNKNOWN.into(),
            "Internal error; unable to process your request. Please try again.".into(),
            "Request occur unknown error.".into(),
        ];
        bodies.extend(CODES.iter().map(|&(c, _, _)| err(c, "x")));
        for status in [400, 401, 403, 404, 408, 409, 418, 429, 500, 502, 503, 504] {
            for body in &bodies {
                let v = http(CreateOrder, status, body);
                if v.class == Retry {
                    assert!(
                        matches!(v.code, Some(-1016 | -1021)),
                        "{status} {body} classified Retry"
                    );
                }
                if status >= 500 && v.code.is_none() {
                    assert_eq!(v.class, OutcomeUnknown, "{status} {body}");
                }
            }
        }
        assert_eq!(http(CreateOrder, 503, MSG_503_UNAVAILABLE).class, Retry);
    }

    #[test]
    fn hints_and_names() {
        assert_eq!(http(Read, 400, &err(-1021, "x")).hint, Hint::ResyncClock);
        assert_eq!(http(Read, 400, &err(-1125, "x")).hint, Hint::RecreateListenKey);
        assert_eq!(
            http(CreateOrder, 400, &err(-2022, "x")).hint,
            Hint::RequeryPosition
        );
        assert_eq!(http(Read, 418, "").hint, Hint::AlertOperator);
        assert_eq!(code_name(-1021), Some("INVALID_TIMESTAMP"));
        assert_eq!(code_name(-4164), Some("MIN_NOTIONAL"));
        assert_eq!(code_name(1), None);
    }

    #[test]
    fn error_bodies_are_read_leniently() {
        assert_eq!(
            ErrorBody::parse(r#"{"code":-1121,"msg":"Invalid symbol."}"#),
            ErrorBody {
                code: Some(-1121),
                msg: "Invalid symbol.".into()
            }
        );
        assert_eq!(ErrorBody::parse(r#"{"msg":"only msg"}"#).code, None);
        assert_eq!(ErrorBody::parse(r#"{"code":-1000}"#).msg, "");
        assert_eq!(
            ErrorBody::parse(" Service Unavailable.\n").msg,
            MSG_503_UNAVAILABLE
        );
        assert_eq!(
            ErrorBody::parse(r#""Service Unavailable.""#).msg,
            MSG_503_UNAVAILABLE
        );
        assert_eq!(banned_until("IP banned until %s. Please"), None);
    }
}
