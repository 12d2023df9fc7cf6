//! A Binance USDT-M compatible exchange on 127.0.0.1, so that the demo, the tests and fault-injection
//! runs exercise the same client code that talks to Binance for real users.
//!
//! `source` is the market a simulator serves (the [`source::MarketSource`] trait); `synthetic` and
//! `replay` implement it; `calibration` measures real klines to set the synthetic model's figures;
//! `server` speaks the venue's REST and WebSocket protocols over any source. The signed side is
//! `auth` (API key, signature, timestamp and recvWindow checks with the venue's codes), `trading` (the
//! account: orders matched on mark prices, positions, margin, liquidation) and `user_stream`
//! (listenKeys and the `/ws/<listenKey>` user data stream); `brackets` holds the leverage brackets the
//! account is liquidated with and `GET /fapi/v1/leverageBracket` serves. `faults` is the seeded fault plan
//! (`perpdesk sim --faults`) the server consults to misbehave on purpose.

pub mod auth;
pub mod brackets;
pub mod calibration;
pub mod faults;
pub mod replay;
pub mod server;
pub mod source;
pub mod synthetic;
pub mod trading;
pub mod user_stream;
