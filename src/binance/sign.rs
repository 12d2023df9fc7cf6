//! Request signing for SIGNED (TRADE / `USER_DATA`) endpoints: HMAC-SHA256 and Ed25519 keys.
//!
//! Binance authenticates a signed request by a `signature` parameter computed over `totalParams`, the
//! query string **concatenated with** the form body, with no separator (PROTOCOL.md §2). The signature
//! must be the last parameter; the API key travels in the `X-MBX-APIKEY` header. Getting one byte of
//! this wrong gives `-1022 INVALID_SIGNATURE` on every order, so this module is tested against the
//! venue's published vectors and against signatures made independently with OpenSSL.
//!
//! * HMAC keys: `signature` = lowercase hex of HMAC-SHA256(secret, totalParams). Hex needs no escaping.
//! * Ed25519 keys (PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes it): `signature` = base64
//!   of the 64-byte Ed25519 signature over totalParams, then percent-encoded, because base64 uses `+`,
//!   `/` and `=`.
//!
//! Key material stays inside [`Signer`] and [`ApiKey`]; their `Debug` prints only the key kind.

use std::fmt;

use base64::Engine as _;
use ed25519_dalek::{Signer as _, pkcs8::DecodePrivateKey as _};
use hmac::{KeyInit as _, Mac as _};

use super::secret::SecretString;

/// Name of the header that carries the API key.
pub const API_KEY_HEADER: &str = "X-MBX-APIKEY";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a key could not be used. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("the API secret is empty")]
    EmptySecret,
    #[error("the Ed25519 private key is not a PKCS#8 PEM Ed25519 key (\"-----BEGIN PRIVATE KEY-----\")")]
    BadEd25519Key,
    #[error("the API key contains characters that cannot go in an HTTP header")]
    BadApiKey,
}

/// The API key sent in `X-MBX-APIKEY`. Not a signing secret, but it identifies the account, so it is
/// kept out of logs as well: the header value is marked sensitive and `Debug` is redacted.
#[derive(Clone)]
pub struct ApiKey(reqwest::header::HeaderValue);

impl ApiKey {
    /// Validates that the key can be sent as a header value (non-empty, visible ASCII only).
    pub fn new(key: &SecretString) -> Result<Self, SignError> {
        let k = key.expose_secret();
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SignError::BadApiKey);
        }
        let mut value = reqwest::header::HeaderValue::from_str(k).map_err(|_| SignError::BadApiKey)?;
        value.set_sensitive(true);
        Ok(Self(value))
    }

    /// The header value, marked sensitive so that `reqwest`/`http` redact it in their `Debug` output.
    pub fn header_value(&self) -> &reqwest::header::HeaderValue {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", super::secret::REDACTED)
    }
}

/// A request signer over either key kind Binance accepts for USDT-M futures (RSA is not supported
/// here).
pub enum Signer {
    /// HMAC-SHA256 keyed with the API secret (the keyed state is built once; it is zeroed on drop).
    Hmac(Box<HmacSha256>),
    /// Ed25519 with a private key (the public half is registered with Binance).
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl Signer {
    /// An HMAC-SHA256 signer.
    pub fn hmac(secret: &SecretString) -> Result<Self, SignError> {
        if secret.expose_secret().is_empty() {
            return Err(SignError::EmptySecret);
        }
        // HMAC takes keys of any length; `new_from_slice` only fails for fixed-length MACs.
        HmacSha256::new_from_slice(secret.expose_secret().as_bytes())
            .map(|mac| Self::Hmac(Box::new(mac)))
            .map_err(|_| SignError::EmptySecret)
    }

    /// An Ed25519 signer from a PKCS#8 PEM private key.
    pub fn ed25519_from_pem(pem: &SecretString) -> Result<Self, SignError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem.expose_secret())
            .map(|k| Self::Ed25519(Box::new(k)))
            .map_err(|_| SignError::BadEd25519Key)
    }

    /// The value of the `signature` parameter for a request whose query string is `query` and whose
    /// form body is `body` (either may be empty; they are concatenated with no separator). Ready to be
    /// appended as `&signature=<value>`: hex for HMAC, percent-encoded base64 for Ed25519.
    pub fn signature(&self, query: &str, body: &str) -> String {
        match self {
            Self::Hmac(keyed) => {
                let mut mac = HmacSha256::clone(keyed);
                mac.update(query.as_bytes());
                mac.update(body.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            Self::Ed25519(key) => {
                let mut total = String::with_capacity(query.len() + body.len());
                total.push_str(query);
                total.push_str(body);
                let sig = key.sign(total.as_bytes());
                percent_encode(&base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()))
            }
        }
    }

    /// `query` with `signature` appended as its last parameter, for a request with form body `body`.
    /// With an empty query the result is `signature=…` alone.
    pub fn signed_query(&self, query: &str, body: &str) -> String {
        let sig = self.signature(query, body);
        if query.is_empty() {
            format!("signature={sig}")
        } else {
            format!("{query}&signature={sig}")
        }
    }

    /// The Ed25519 public key (for checking against the key registered with Binance), if any.
    pub fn ed25519_public_key(&self) -> Option<ed25519_dalek::VerifyingKey> {
        match self {
            Self::Hmac(_) => None,
            Self::Ed25519(k) => Some(k.verifying_key()),
        }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hmac(_) => write!(f, "Signer::Hmac({})", super::secret::REDACTED),
            Self::Ed25519(_) => write!(f, "Signer::Ed25519({})", super::secret::REDACTED),
        }
    }
}

/// Percent-encodes everything but the RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`).
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Verifier as _, pkcs8::EncodePrivateKey as _};

    use super::*;

    /// PROTOCOL.md §2, docs "SIGNED Endpoint Examples" (apiKey and secretKey of the example).
    const DOC_SECRET: &str = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";
    const DOC_API_KEY: &str = "dbefbc809e3e83c283a984c3a1459732ea7db1360ca80c5c2c8867408d28cc83";
    const EXAMPLE_1: &str = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943";

    /// A throwaway key made for this test with `openssl genpkey -algorithm ed25519`.
    const TEST_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIK/SAevTr9ino5kMM7M/GnfSlXnu7GQCIoV46vweqqeG\n\
        -----END PRIVATE KEY-----\n";
    /// `openssl pkeyutl -sign -inkey test.pem -rawin -in <EXAMPLE_1> | base64`.
    const TEST_PEM_SIG_EXAMPLE_1: &str =
        "WUMXqSBsg+VW4lFL7jH+Cqqg5lnjmKu9dXUhDhUN5nVceJzL/+k/tobe1zEWoKOAKj6drJgrnn6DMRdJC9zdBg==";
    /// `openssl pkey -in test.pem -pubout` (the `SubjectPublicKeyInfo`, base64; the key is its last 32 bytes).
    const TEST_PEM_PUBLIC_SPKI_B64: &str = "MCowBQYDK2VwAyEA6e8nM2T3MvqhMc9nK0vKGj2A76EjFWoZjbgcw7NcVkA=";

    fn hmac_signer() -> Signer {
        Signer::hmac(&SecretString::new(DOC_SECRET.to_owned())).expect("non-empty")
    }

    fn percent_decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(h, 16).expect("hex"));
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn hmac_example_1_all_params_in_query() {
        assert_eq!(
            hmac_signer().signature(EXAMPLE_1, ""),
            "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
        );
        // All in the body instead: same totalParams, same signature.
        assert_eq!(
            hmac_signer().signature("", EXAMPLE_1),
            "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
        );
    }

    #[test]
    fn hmac_example_3_query_and_body_are_concatenated_without_separator() {
        let query = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC";
        // The docs' literal body, stray space included, reproduces the published value.
        let body_docs = "quantity=1&price=9000&recvWindow=5000&timestamp= 1591702613943";
        assert_eq!(
            hmac_signer().signature(query, body_docs),
            "f9d0ae5e813ef6ccf15c2b5a434047a0181cb5a342b903b367ca6d27a66e36f2"
        );
        let body = "quantity=1&price=9000&recvWindow=5000&timestamp=1591702613943";
        assert_eq!(
            hmac_signer().signature(query, body),
            "30baaf0fab549bbeda7f5ef201898b34122da25fd23c646cac2c529aebe670a4"
        );
        // With an `&` between them it would be a different message.
        assert_ne!(
            hmac_signer().signature(&format!("{query}&"), body),
            hmac_signer().signature(query, body)
        );
    }

    #[test]
    fn signature_is_the_last_parameter() {
        let signed = hmac_signer().signed_query(EXAMPLE_1, "");
        assert_eq!(
            signed,
            format!("{EXAMPLE_1}&signature=3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9")
        );
        let last = signed.rsplit('&').next().expect("has params");
        assert!(last.starts_with("signature="));
        assert_eq!(signed.matches("signature=").count(), 1);
        let alone = hmac_signer().signed_query("", EXAMPLE_1);
        assert_eq!(
            alone,
            "signature=3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
        );
    }

    #[test]
    fn ed25519_matches_openssl_and_verifies_with_the_public_key() {
        let signer = Signer::ed25519_from_pem(&SecretString::new(TEST_PEM.to_owned())).expect("pem loads");
        let sig = signer.signature(EXAMPLE_1, "");
        // URL-encoded: base64's `+`, `/`, `=` do not appear raw.
        assert!(!sig.contains(['+', '/', '=']), "{sig}");
        let b64 = percent_decode(&sig);
        assert_eq!(b64, TEST_PEM_SIG_EXAMPLE_1, "differs from OpenSSL's signature");

        let public = signer.ed25519_public_key().expect("ed25519");
        let spki = base64::engine::general_purpose::STANDARD
            .decode(TEST_PEM_PUBLIC_SPKI_B64)
            .expect("b64");
        assert_eq!(public.as_bytes().as_slice(), &spki[spki.len() - 32..]);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&b64)
            .expect("b64");
        let parsed = ed25519_dalek::Signature::from_slice(&raw).expect("64 bytes");
        public.verify(EXAMPLE_1.as_bytes(), &parsed).expect("verifies");
        assert!(public.verify(b"symbol=BTCUSDT", &parsed).is_err());

        let signed = signer.signed_query(EXAMPLE_1, "");
        assert!(signed.ends_with(&format!("&signature={sig}")));
    }

    #[test]
    fn ed25519_round_trip_with_a_generated_key_over_query_plus_body() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let pem = key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .expect("encode");
        let signer = Signer::ed25519_from_pem(&SecretString::new(pem.to_string())).expect("loads");
        let (query, body) = ("symbol=ETHUSDT&side=SELL", "quantity=0.5&timestamp=1");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(percent_decode(&signer.signature(query, body)))
            .expect("b64");
        let sig = ed25519_dalek::Signature::from_slice(&raw).expect("64 bytes");
        key.verifying_key()
            .verify(format!("{query}{body}").as_bytes(), &sig)
            .expect("signature over query+body");
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        let canary = "CANARY-sign-8d1f";
        let err = Signer::ed25519_from_pem(&SecretString::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{canary}\n-----END PRIVATE KEY-----\n"
        )))
        .expect_err("garbage");
        assert_eq!(err, SignError::BadEd25519Key);
        assert!(!err.to_string().contains(canary));
        assert_eq!(
            Signer::hmac(&SecretString::new(String::new())).expect_err("empty"),
            SignError::EmptySecret
        );
        let signer = Signer::hmac(&SecretString::new(canary.to_owned())).expect("ok");
        assert!(!format!("{signer:?}").contains(canary));
        let pem_signer = Signer::ed25519_from_pem(&SecretString::new(TEST_PEM.to_owned())).expect("ok");
        assert!(!format!("{pem_signer:?}").contains("MC4CAQAw"));
    }

    #[test]
    fn api_key_header_is_sensitive_and_redacted() {
        let key = ApiKey::new(&SecretString::new(DOC_API_KEY.to_owned())).expect("valid");
        let value = key.header_value();
        assert!(value.is_sensitive());
        assert_eq!(value.to_str().expect("ascii"), DOC_API_KEY);
        assert!(!format!("{key:?}").contains(DOC_API_KEY));
        assert!(!format!("{value:?}").contains(DOC_API_KEY));
        assert_eq!(API_KEY_HEADER, "X-MBX-APIKEY");
        for bad in ["", "has space", "line\nbreak", "ключ"] {
            assert_eq!(
                ApiKey::new(&SecretString::new(bad.to_owned())).expect_err("bad"),
                SignError::BadApiKey
            );
        }
    }

    #[test]
    fn percent_encoding_of_special_characters() {
        assert_eq!(percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(percent_encode("x y&z"), "x%20y%26z");
    }
}
