//! perpdesk: a terminal trading console for Binance USDT-M perpetual futures.
//!
//! This crate is the engine library behind the `perpdesk` binary. Modules are listed in the order data
//! flows through them (see `ARCHITECTURE.md`): the venue adapter and the simulated exchange produce
//! market data, `market` keeps the universe and bar series, `engine` owns all state in one task, and
//! `console` turns that state into the view the `perpdesk-ui` crate draws.

pub mod cli;
pub mod config;
pub mod domain;

pub mod binance;
pub mod sim;

pub mod market;

pub mod features;
pub mod smc;

pub mod analyze;

pub mod strategy;

pub mod ml;

pub mod journal;
pub mod notify;
pub mod risk;

pub mod positions;

pub mod execution;

pub mod engine;

pub mod console;

pub mod app;
