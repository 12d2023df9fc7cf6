//! Market data as the engine sees it: the universe of symbols, per-timeframe bar series, and the REST
//! feed that back-fills them; `export` is the closed-bar CSV that compares a run with the simulator.

pub mod export;
pub mod feed;
pub mod series;
pub mod universe;
