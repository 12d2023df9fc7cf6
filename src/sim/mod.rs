//! A Binance USDT-M compatible exchange on 127.0.0.1, so that the demo, the tests and fault-injection
//! runs exercise the same client code that talks to Binance for real users.

pub mod calibration;
pub mod replay;
pub mod source;
pub mod synthetic;
