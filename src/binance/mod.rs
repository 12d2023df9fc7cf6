//! The venue adapter for Binance USDT-M futures.
//!
//! `wire` mirrors the venue's JSON, `parse` turns it into domain types, `rest` and `stream` are the
//! transports. The simulated exchange (`crate::sim`) serialises the same `wire` structs, so the client
//! and the simulator cannot drift apart.
//!
//! The building blocks of signed trading are self-contained and pure: `secret` (redacted, zeroed
//! secrets from the environment or a 0600 file), `sign` (HMAC-SHA256 / Ed25519 request signatures),
//! `clock` (server-time offset and the trading gate on clock skew), `errors` (the venue's error codes
//! classified as retry / never-retry / outcome-unknown / back-off), `filters` (price and quantity
//! rounding and local checks against the symbol's filters) and `governor` (pre-emptive request-weight
//! and order-count budgets).

pub mod clock;
pub mod errors;
pub mod filters;
pub mod governor;
pub mod parse;
pub mod rest;
pub mod secret;
pub mod sign;
pub mod stream;
pub mod wire;
