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
//!
//! They are wired together in `signed` (the signed REST client), `orders` (order building, exactly-once
//! submission, the order state machine, reconciliation) and `user_stream` (listenKey life and the user
//! data stream); `trade_wire` holds the venue JSON of that side, shared with the simulator.

pub mod clock;
pub mod errors;
pub mod filters;
pub mod governor;
pub mod orders;
pub mod parse;
pub mod rest;
pub mod secret;
pub mod sign;
pub mod signed;
pub mod stream;
pub mod trade_wire;
pub mod user_stream;
pub mod wire;
