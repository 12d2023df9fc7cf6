//! Strategies and the strategy mode.
//!
//! The engine holds the live [`Mode`]; switching it is a `Command` that takes effect at the next
//! evaluation and never touches open positions. The ICT strategy, the ML trader and the hybrid filter
//! plug in behind this mode (see ARCHITECTURE.md §2, `strategy`).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The three live-switchable strategy modes. (Doc comments of the variants are the `--mode` help.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Rule-based ICT / Smart Money Concepts: structure breaks, order blocks, fair value gaps,
    /// liquidity sweeps. Needs no model
    #[default]
    Ict,
    /// The machine-learning models alone
    #[value(name = "self_learning")]
    SelfLearning,
    /// ICT setups, scored and filtered by the machine-learning models
    Hybrid,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Self::Ict, Self::SelfLearning, Self::Hybrid];
    pub const NAMES: &'static [&'static str] = &["ict", "self_learning", "hybrid"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ict => "ict",
            Self::SelfLearning => "self_learning",
            Self::Hybrid => "hybrid",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mode name that is not one of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy mode `{0}` (expected one of ict, self_learning, hybrid)")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        assert_eq!("ICT".parse::<Mode>(), Err(UnknownMode("ICT".into())));
    }
}
