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
//! documented test pair, [`DEFAULT_API_KEY`] / [`DEFAULT_API_SECRET`], which is not a secret. A key
//! may instead be registered as an Ed25519 public key, as Binance allows: then `signature` is the
//! percent-encoded base64 of the Ed25519 signature over the same bytes, verified with the public
//! key (a malformed or wrong signature is `-1022` as well).

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

/// How the simulator checks a key's signatures.
#[derive(Clone)]
pub enum SimKey {
    /// HMAC-SHA256 with a shared secret (hex signature).
    Hmac(SecretString),
    /// Ed25519: the venue holds only the public key (base64 signature).
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl fmt::Debug for SimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hmac(secret) => f.debug_tuple("Hmac").field(secret).finish(),
            // A public key is not secret; its hex identifies which key was registered.
            Self::Ed25519(public) => f
                .debug_tuple("Ed25519")
                .field(&hex::encode(public.as_bytes()))
                .finish(),
        }
    }
}

/// Setting up the simulator's keys failed (unrecoverable: the simulator does not start).
#[derive(Debug, thiserror::Error)]
pub enum SimAuthError {
    #[error(
        "not an Ed25519 public key in PEM (\"-----BEGIN PUBLIC KEY-----\", as `openssl pkey -pubout` writes it)"
    )]
    BadPublicKey,
}

/// One key the simulator accepts.
#[derive(Clone, Debug)]
pub struct SimCredential {
    pub api_key: String,
    pub key: SimKey,
}

impl SimCredential {
    /// An HMAC key pair.
    pub fn new(api_key: &str, secret: &str) -> Self {
        Self {
            api_key: api_key.to_owned(),
            key: SimKey::Hmac(SecretString::new(secret.to_owned())),
        }
    }

    /// An API key registered with an Ed25519 public key.
    pub fn ed25519(api_key: &str, public: ed25519_dalek::VerifyingKey) -> Self {
        Self {
            api_key: api_key.to_owned(),
            key: SimKey::Ed25519(public),
        }
    }

    /// An API key registered with an Ed25519 public key in PEM (`SubjectPublicKeyInfo`), the form
    /// Binance's key registration takes.
    pub fn ed25519_from_pem(api_key: &str, pem: &str) -> Result<Self, SimAuthError> {
        use ed25519_dalek::pkcs8::DecodePublicKey as _;
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem.trim())
            .map(|k| Self::ed25519(api_key, k))
            .map_err(|_| SimAuthError::BadPublicKey)
    }

    /// The documented test pair.
    pub fn default_pair() -> Self {
        Self::new(DEFAULT_API_KEY, DEFAULT_API_SECRET)
    }

    /// Whether `sig` (as sent, still percent-encoded) signs `query ‖ body` under this key.
    fn signature_matches(&self, query: &str, body: &str, sig: &str) -> bool {
        match &self.key {
            SimKey::Hmac(secret) => {
                let Ok(mut mac) =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose_secret().as_bytes())
                else {
                    return false;
                };
                mac.update(query.as_bytes());
                mac.update(body.as_bytes());
                hex::encode(mac.finalize().into_bytes()).eq_ignore_ascii_case(sig)
            }
            SimKey::Ed25519(public) => {
                use base64::Engine as _;
                use ed25519_dalek::Verifier as _;
                let Some(b64) = percent_decode(sig) else {
                    return false;
                };
                let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) else {
                    return false;
                };
                let Ok(signature) = ed25519_dalek::Signature::from_slice(&bytes) else {
                    return false;
                };
                let mut message = Vec::with_capacity(query.len() + body.len());
                message.extend_from_slice(query.as_bytes());
                message.extend_from_slice(body.as_bytes());
                public.verify(&message, &signature).is_ok()
            }
        }
    }
}

/// `%XX` decoding of a parameter value (`+` stays `+`: base64 clients percent-encode it). `None` for
/// a malformed escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
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
    if !creds[idx].signature_matches(&query, &body, sig) {
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
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;

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

    /// The throwaway key of `binance::sign`'s tests (`openssl genpkey -algorithm ed25519`) and its
    /// public half (`openssl pkey -pubout`).
    const ED_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIK/SAevTr9ino5kMM7M/GnfSlXnu7GQCIoV46vweqqeG\n\
        -----END PRIVATE KEY-----\n";
    const ED_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEA6e8nM2T3MvqhMc9nK0vKGj2A76EjFWoZjbgcw7NcVkA=\n\
        -----END PUBLIC KEY-----\n";

    #[test]
    fn ed25519_keys_verify_with_the_registered_public_key() {
        let now = 1_700_000_000_000;
        let creds = vec![
            SimCredential::default_pair(),
            SimCredential::ed25519_from_pem("ed-key", ED_PUBLIC_PEM).expect("public key"),
        ];
        let signer = Signer::ed25519_from_pem(&SecretString::new(ED_PEM.into())).expect("private key");
        let q = format!("symbol=BTCUSDT&side=BUY&recvWindow=5000&timestamp={now}");
        let good = signer.signed_query(&q, "");
        let run = |key: &str, q: &str, body: &str| {
            let all = format!("{q}&{body}");
            verify(&creds, Some(key), q, body, param(&all), Required::Signed, now).map_err(|e| e.code)
        };
        assert_eq!(run("ed-key", &good, ""), Ok(1));
        // Signature in the body, the parameters in the query.
        let sig = signer.signature(&q, "");
        assert_eq!(run("ed-key", &q, &format!("signature={sig}")), Ok(1));
        // Tampered parameters, a signature by another key, garbage, an HMAC signature: -1022.
        assert_eq!(run("ed-key", &good.replace("BUY", "SELL"), ""), Err(-1022));
        let other = Signer::ed25519_from_pem(&SecretString::new(
            ed25519_dalek::SigningKey::from_bytes(&[7; 32])
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::default())
                .expect("pem")
                .to_string(),
        ))
        .expect("other key");
        assert_eq!(run("ed-key", &other.signed_query(&q, ""), ""), Err(-1022));
        assert_eq!(run("ed-key", &format!("{q}&signature=%zz"), ""), Err(-1022));
        assert_eq!(run("ed-key", &format!("{q}&signature=AAAA"), ""), Err(-1022));
        assert_eq!(run("ed-key", &signed(&q), ""), Err(-1022));
        // The Ed25519 signature does not pass for the HMAC key either.
        assert_eq!(run(DEFAULT_API_KEY, &good, ""), Err(-1022));
        assert!(SimCredential::ed25519_from_pem("k", "not a key").is_err());
        assert!(
            SimCredential::ed25519_from_pem("k", ED_PEM).is_err(),
            "a private key is not a public key"
        );
    }
}
