//! Authentication of the simulated exchange's signed endpoints, with the venue's rules and codes.
//!
//! A client that passes here has proven it signs exactly as Binance checks: the API key travels in
//! `X-MBX-APIKEY`; `signature` = hex HMAC-SHA256(secret, query string ‖ body) with the `signature`
//! parameter itself removed, compared without regard to case; `timestamp` must satisfy
//! `timestamp < serverTime + 1000 && serverTime − timestamp ≤ recvWindow` (default 5000, at most
//! 60000). Failures answer what the venue answers (PROTOCOL.md §2–3): `-2014` for a missing or
//! malformed key, `-2015` for an unknown key, `-1102` for a missing `signature` / `timestamp`,
//! `-1022` for a wrong signature, `-1021` for a timestamp outside the window, `-1131` for a bad
//! `recvWindow`.
//!
//! The simulator accepts the key pairs it was started with ([`SimCredential`]); by default one
//! documented test pair, [`DEFAULT_API_KEY`] / [`DEFAULT_API_SECRET`], which is not a secret. HMAC
//! keys only: Ed25519 signing is verified against OpenSSL in `binance::sign`'s tests.

use std::fmt;

use axum::http::StatusCode;
use hmac::{KeyInit as _, Mac as _};

use crate::{binance::secret::SecretString, domain::TimestampMs};

/// The simulator's default API key (documented in the README; safe to publish, it opens nothing).
pub const DEFAULT_API_KEY: &str = "perpdesk-sim-key";
/// The simulator's default API secret (documented in the README; safe to publish).
pub const DEFAULT_API_SECRET: &str = "perpdesk-sim-secret";
/// Largest `recvWindow` the venue accepts.
pub const MAX_RECV_WINDOW_MS: i64 = 60_000;

/// One key pair the simulator accepts.
#[derive(Clone)]
pub struct SimCredential {
    pub api_key: String,
    pub secret: SecretString,
}

impl SimCredential {
    pub fn new(api_key: &str, secret: &str) -> Self {
        Self {
            api_key: api_key.to_owned(),
            secret: SecretString::new(secret.to_owned()),
        }
    }

    /// The documented test pair.
    pub fn default_pair() -> Self {
        Self::new(DEFAULT_API_KEY, DEFAULT_API_SECRET)
    }
}

impl fmt::Debug for SimCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCredential")
            .field("api_key", &self.api_key)
            .field("secret", &self.secret)
            .finish()
    }
}

/// A refusal: HTTP status, venue code, venue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: i64,
    pub msg: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: i64, msg: impl Into<String>) -> Self {
        Self {
            status,
            code,
            msg: msg.into(),
        }
    }

    pub fn bad_request(code: i64, msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, msg)
    }

    pub fn mandatory(name: &str) -> Self {
        Self::bad_request(
            -1102,
            format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
        )
    }
}

/// What an endpoint requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required {
    /// Key, signature and timestamp (TRADE, `USER_DATA`).
    Signed,
    /// The key only (`USER_STREAM`).
    ApiKey,
}

/// `raw` without its `signature=…` parameter, and the signature value if there was one.
fn strip_signature(raw: &str) -> (String, Option<&str>) {
    let mut sig = None;
    let mut kept: Vec<&str> = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        match part.strip_prefix("signature=") {
            Some(s) => sig = Some(s),
            None => kept.push(part),
        }
    }
    (kept.join("&"), sig)
}

/// Checks key, signature and timestamp of a request. `param` looks a decoded parameter up (query
/// first, then body). Returns the index of the matching credential.
pub fn verify(
    creds: &[SimCredential],
    api_key: Option<&str>,
    raw_query: &str,
    raw_body: &str,
    param: impl Fn(&str) -> Option<String>,
    required: Required,
    server_now: TimestampMs,
) -> Result<usize, ApiError> {
    let key = api_key
        .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, -2014, "API-key format invalid."))?;
    let idx = creds.iter().position(|c| c.api_key == key).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        )
    })?;
    if required == Required::ApiKey {
        return Ok(idx);
    }
    let (query, sig_q) = strip_signature(raw_query);
    let (body, sig_b) = strip_signature(raw_body);
    let sig = sig_q
        .or(sig_b)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::mandatory("signature"))?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(creds[idx].secret.expose_secret().as_bytes())
        .map_err(|_| ApiError::bad_request(-1022, "Signature for this request is not valid."))?;
    mac.update(query.as_bytes());
    mac.update(body.as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    if !expected.eq_ignore_ascii_case(sig) {
        return Err(ApiError::bad_request(
            -1022,
            "Signature for this request is not valid.",
        ));
    }
    let ts = param("timestamp")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::mandatory("timestamp"))?
        .parse::<i64>()
        .map_err(|_| ApiError::mandatory("timestamp"))?;
    let window = match param("recvWindow") {
        None => 5_000,
        Some(v) => match v.parse::<i64>() {
            Ok(w) if (1..=MAX_RECV_WINDOW_MS).contains(&w) => w,
            _ => {
                return Err(ApiError::bad_request(-1131, "recvWindow must be less than 60000"));
            }
        },
    };
    if ts >= server_now + 1_000 {
        return Err(ApiError::bad_request(
            -1021,
            "Timestamp for this request was 1000ms ahead of the server's time.",
        ));
    }
    if server_now - ts > window {
        return Err(ApiError::bad_request(
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        ));
    }
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binance::sign::Signer;

    fn creds() -> Vec<SimCredential> {
        vec![SimCredential::default_pair()]
    }

    fn signed(query: &str) -> String {
        Signer::hmac(&SecretString::new(DEFAULT_API_SECRET.into()))
            .expect("key")
            .signed_query(query, "")
    }

    fn param(q: &str) -> impl Fn(&str) -> Option<String> + '_ {
        move |k| {
            q.split('&')
                .find_map(|p| p.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_owned)
        }
    }

    fn check(key: Option<&str>, q: &str, body: &str, now: i64) -> Result<usize, i64> {
        let all = format!("{q}&{body}");
        verify(&creds(), key, q, body, param(&all), Required::Signed, now).map_err(|e| e.code)
    }

    #[test]
    fn venue_codes_for_every_failure() {
        let now = 1_700_000_000_000;
        let good = signed(&format!("symbol=BTCUSDT&recvWindow=5000&timestamp={now}"));
        assert_eq!(check(Some(DEFAULT_API_KEY), &good, "", now), Ok(0));
        assert_eq!(check(None, &good, "", now), Err(-2014));
        assert_eq!(check(Some("other"), &good, "", now), Err(-2015));
        assert_eq!(
            check(Some(DEFAULT_API_KEY), &format!("timestamp={now}"), "", now),
            Err(-1102)
        );
        let tampered = good.replace("BTCUSDT", "ETHUSDT");
        assert_eq!(check(Some(DEFAULT_API_KEY), &tampered, "", now), Err(-1022));
        let (head, sig) = good.split_once("signature=").expect("signed");
        let upper = format!("{head}signature={}", sig.to_uppercase());
        assert_eq!(
            check(Some(DEFAULT_API_KEY), &upper, "", now),
            Ok(0),
            "case does not matter"
        );
        assert_eq!(check(Some(DEFAULT_API_KEY), &good, "", now + 5_001), Err(-1021));
        assert_eq!(check(Some(DEFAULT_API_KEY), &good, "", now - 1_000), Err(-1021));
        assert_eq!(check(Some(DEFAULT_API_KEY), &good, "", now - 999), Ok(0));
        let wide = signed(&format!("recvWindow=70000&timestamp={now}"));
        assert_eq!(check(Some(DEFAULT_API_KEY), &wide, "", now), Err(-1131));
    }

    #[test]
    fn query_and_body_are_concatenated_and_signature_may_sit_in_either() {
        let now = 1_700_000_000_000;
        let signer = Signer::hmac(&SecretString::new(DEFAULT_API_SECRET.into())).expect("key");
        let q = "symbol=BTCUSDT&side=BUY";
        let body = format!("quantity=1&timestamp={now}");
        let sig = signer.signature(q, &body);
        assert_eq!(
            check(Some(DEFAULT_API_KEY), q, &format!("{body}&signature={sig}"), now),
            Ok(0)
        );
        assert_eq!(
            check(Some(DEFAULT_API_KEY), &format!("{q}&signature={sig}"), &body, now),
            Ok(0)
        );
        let key_only = verify(
            &creds(),
            Some(DEFAULT_API_KEY),
            "",
            "",
            |_| None,
            Required::ApiKey,
            now,
        );
        assert_eq!(key_only, Ok(0));
        assert!(!format!("{:?}", creds()).contains(DEFAULT_API_SECRET));
    }
}
