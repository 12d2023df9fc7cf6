//! Market data as the engine sees it: the universe of symbols, per-timeframe bar series, and the REST
//! feed that back-fills them.

pub mod feed;
pub mod series;
pub mod universe;
