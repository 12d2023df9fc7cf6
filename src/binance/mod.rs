//! The venue adapter for Binance USDT-M futures.
//!
//! `wire` mirrors the venue's JSON, `parse` turns it into domain types, `rest` and `stream` are the
//! transports. The simulated exchange (`crate::sim`) serialises the same `wire` structs, so the client
//! and the simulator cannot drift apart.

pub mod parse;
pub mod rest;
pub mod stream;
pub mod wire;
