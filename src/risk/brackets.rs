//! Leverage brackets (maintenance-margin tiers) and Binance's one-way liquidation price.
//!
//! Every USDT-M contract has a table of notional tiers; each tier caps the leverage and sets the
//! maintenance-margin ratio (MMR) with a cumulative "maintenance amount" (`cum`) that keeps the
//! maintenance margin continuous across tier edges. Leverage caps and the liquidation price both come
//! from this table, so it is parsed exactly as the venue sends it (`GET /fapi/v1/leverageBracket`) and
//! kept per symbol. The endpoint is signed, so paper and demo runs use
//! [`BracketTable::conservative_default`]; in live mode the executor loads the account's tables after
//! its first reconciliation (the simulator serves the tables it liquidates with, `sim::brackets`).

use serde::{Deserialize, Serialize};

use crate::domain::Side;

/// One symbol's entry of `GET /fapi/v1/leverageBracket` (numbers are JSON numbers, not strings).
///
/// ```json
/// {"symbol": "BTCUSDT", "notionalCoef": 1.0, "brackets": [
///   {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
///    "maintMarginRatio": 0.004, "cum": 0.0},
///   {"bracket": 2, "initialLeverage": 100, "notionalCap": 600000, "notionalFloor": 50000,
///    "maintMarginRatio": 0.005, "cum": 50.0}]}
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolBracketsWire {
    pub symbol: String,
    /// Present only for users with an adjusted bracket; absent in the public snapshots.
    #[serde(default)]
    pub notional_coef: Option<f64>,
    pub brackets: Vec<BracketWire>,
}

/// One tier of [`SymbolBracketsWire::brackets`].
///
/// ```json
/// {"bracket": 3, "initialLeverage": 75, "notionalCap": 3000000, "notionalFloor": 600000,
///  "maintMarginRatio": 0.0065, "cum": 950.0}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BracketWire {
    pub bracket: u32,
    pub initial_leverage: u32,
    pub notional_cap: f64,
    pub notional_floor: f64,
    pub maint_margin_ratio: f64,
    pub cum: f64,
}

/// One maintenance-margin tier, notional in `[floor, cap)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bracket {
    pub floor: f64,
    pub cap: f64,
    pub max_leverage: u32,
    pub mmr: f64,
    pub cum: f64,
}

impl Bracket {
    /// Maintenance margin of a position of `notional` in this tier: `notional × mmr − cum`.
    pub fn maintenance_margin(&self, notional: f64) -> f64 {
        notional * self.mmr - self.cum
    }
}

/// Why a bracket table was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BracketError {
    #[error("{symbol}: no brackets")]
    Empty { symbol: String },
    #[error(
        "{symbol}: bracket {bracket} does not start where the previous one ends ({floor} after {prev_cap})"
    )]
    NotContiguous {
        symbol: String,
        bracket: u32,
        floor: f64,
        prev_cap: f64,
    },
    #[error("{symbol}: bracket {bracket} has a non-positive leverage, a negative ratio or cap ≤ floor")]
    Invalid { symbol: String, bracket: u32 },
}

/// The tiers of one symbol in increasing notional order, contiguous from 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BracketTable {
    brackets: Vec<Bracket>,
}

impl BracketTable {
    /// Validates and converts the venue's entry. Tiers are sorted by `bracket` first.
    pub fn from_wire(wire: &SymbolBracketsWire) -> Result<Self, BracketError> {
        let mut tiers = wire.brackets.clone();
        tiers.sort_by_key(|b| b.bracket);
        let symbol = || wire.symbol.clone();
        if tiers.is_empty() {
            return Err(BracketError::Empty { symbol: symbol() });
        }
        let mut prev_cap = 0.0;
        let mut brackets = Vec::with_capacity(tiers.len());
        for b in &tiers {
            if b.initial_leverage == 0 || b.maint_margin_ratio < 0.0 || b.notional_cap <= b.notional_floor {
                return Err(BracketError::Invalid {
                    symbol: symbol(),
                    bracket: b.bracket,
                });
            }
            if (b.notional_floor - prev_cap).abs() > 1e-9 * prev_cap.max(1.0) {
                return Err(BracketError::NotContiguous {
                    symbol: symbol(),
                    bracket: b.bracket,
                    floor: b.notional_floor,
                    prev_cap,
                });
            }
            prev_cap = b.notional_cap;
            brackets.push(Bracket {
                floor: b.notional_floor,
                cap: b.notional_cap,
                max_leverage: b.initial_leverage,
                mmr: b.maint_margin_ratio,
                cum: b.cum,
            });
        }
        Ok(Self { brackets })
    }

    /// A deliberately strict table for when the venue's brackets are unknown (paper and demo runs:
    /// `leverageBracket` is a signed endpoint). Its tiers are stricter than those of any of the 2024
    /// top-volume contracts at the same notional, and its `cum` column follows Binance's recurrence
    /// `cum_n = cum_{n−1} + floor_n × (mmr_n − mmr_{n−1})`.
    pub fn conservative_default() -> Self {
        // (floor, cap, max leverage, mmr)
        const TIERS: [(f64, f64, u32, f64); 6] = [
            (0.0, 5_000.0, 50, 0.01),
            (5_000.0, 25_000.0, 25, 0.025),
            (25_000.0, 100_000.0, 20, 0.05),
            (100_000.0, 250_000.0, 10, 0.1),
            (250_000.0, 1_000_000.0, 5, 0.125),
            (1_000_000.0, 1e12, 2, 0.25),
        ];
        let mut cum = 0.0;
        let mut prev_mmr = 0.0;
        let brackets = TIERS
            .iter()
            .map(|&(floor, cap, max_leverage, mmr)| {
                cum += floor * (mmr - prev_mmr);
                prev_mmr = mmr;
                Bracket {
                    floor,
                    cap,
                    max_leverage,
                    mmr,
                    cum,
                }
            })
            .collect();
        Self { brackets }
    }

    pub fn brackets(&self) -> &[Bracket] {
        &self.brackets
    }

    /// The tier holding `notional` (the last one beyond the top cap, the first one below zero).
    pub fn for_notional(&self, notional: f64) -> &Bracket {
        let i = self.brackets.partition_point(|b| b.cap <= notional);
        &self.brackets[i.min(self.brackets.len() - 1)]
    }

    /// The highest leverage the venue allows for a position of `notional`.
    pub fn max_leverage(&self, notional: f64) -> u32 {
        self.for_notional(notional).max_leverage
    }
}

/// Liquidation price of an isolated one-way position (PROTOCOL.md §10, freqtrade's one-way case):
///
/// `LP = (WB − side × qty × entry + cum) / (qty × MMR − side × qty)`
///
/// with `WB` the margin the position holds (its isolated wallet balance, or the cross wallet minus
/// the other positions' maintenance margin plus their unrealised P&L), `side` +1 long / −1 short,
/// and `MMR`/`cum` from the tier of the notional **at the liquidation price**: the tier of the entry
/// notional is the first guess and every tier is tried until the price lands in the tier that
/// produced it. Because `cum` makes the maintenance margin continuous in the notional, equity minus
/// maintenance margin is monotone in the price and exactly one tier is consistent.
///
/// Returns `None` when the position cannot be liquidated (a long whose margin covers the whole
/// notional: the formula gives a price ≤ 0).
pub fn liquidation_price(side: Side, qty: f64, entry: f64, wallet: f64, table: &BracketTable) -> Option<f64> {
    let s = match side {
        Side::Long => 1.0,
        Side::Short => -1.0,
    };
    let at = |b: &Bracket| (wallet - s * qty * entry + b.cum) / (qty * b.mmr - s * qty);
    let tiers = table.brackets();
    let last = tiers.len() - 1;
    // The notional at `lp` lies in tier `i` (the top tier has no cap: the venue refuses positions
    // above it, but a short's liquidation price can take the notional there).
    let consistent = |i: usize, lp: f64| {
        let (b, n) = (&tiers[i], qty * lp);
        (i == 0 || n >= b.floor * (1.0 - 1e-12)) && (i == last || n <= b.cap * (1.0 + 1e-12))
    };
    let first = tiers.partition_point(|b| b.cap <= qty * entry).min(last);
    let guess = at(&tiers[first]);
    let lp = if consistent(first, guess) {
        guess
    } else {
        (0..tiers.len())
            .map(|i| (i, at(&tiers[i])))
            .find(|(i, lp)| consistent(*i, *lp))
            .map_or(guess, |(_, lp)| lp)
    };
    (lp.is_finite() && lp > 0.0).then_some(lp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn btc() -> BracketTable {
        let wire: SymbolBracketsWire = serde_json::from_str(
            r#"{"symbol":"BTCUSDT","brackets":[
            {"bracket":1,"initialLeverage":125,"notionalCap":50000,"notionalFloor":0,"maintMarginRatio":0.004,"cum":0.0},
            {"bracket":2,"initialLeverage":100,"notionalCap":600000,"notionalFloor":50000,"maintMarginRatio":0.005,"cum":50.0},
            {"bracket":3,"initialLeverage":75,"notionalCap":3000000,"notionalFloor":600000,"maintMarginRatio":0.0065,"cum":950.0},
            {"bracket":4,"initialLeverage":50,"notionalCap":12000000,"notionalFloor":3000000,"maintMarginRatio":0.01,"cum":11450.0}]}"#,
        )
        .expect("wire");
        BracketTable::from_wire(&wire).expect("table")
    }

    #[test]
    fn the_worked_example_of_protocol_section_10() {
        // Isolated long, BTCUSDT tier 1: qty 0.1 @ 30 000 with 300 USDT of margin → 27 108.43.
        let lp = liquidation_price(Side::Long, 0.1, 30_000.0, 300.0, &btc()).expect("liquidable");
        assert_eq!((lp * 100.0).round() / 100.0, 27_108.43);
        // At that price the equity equals the maintenance margin: 10.84.
        let equity = 300.0 + 0.1 * (lp - 30_000.0);
        let mm = 0.1 * lp * 0.004;
        assert!((equity - mm).abs() < 1e-9);
        assert_eq!((equity * 100.0).round() / 100.0, 10.84);
    }

    #[test]
    fn a_short_liquidates_above_entry_and_a_fully_margined_long_never() {
        let lp = liquidation_price(Side::Short, 0.1, 30_000.0, 300.0, &btc()).expect("liquidable");
        assert!(lp > 30_000.0);
        let equity = 300.0 - 0.1 * (lp - 30_000.0);
        assert!((equity - 0.1 * lp * 0.004).abs() < 1e-9);
        assert_eq!(
            liquidation_price(Side::Long, 0.1, 30_000.0, 3_000.0, &btc()),
            None
        );
    }

    #[test]
    fn the_tier_is_the_one_at_the_liquidation_price() {
        // 55 000 notional at entry (tier 2) but a long at 2x liquidates near 27 600 notional (tier 1).
        let t = btc();
        let lp = liquidation_price(Side::Long, 1.0, 55_000.0, 27_500.0, &t).expect("liquidable");
        let b = t.for_notional(lp);
        assert_eq!(b.mmr, 0.004);
        assert!((27_500.0 + (lp - 55_000.0) - b.maintenance_margin(lp)).abs() < 1e-6);
    }

    #[test]
    fn tiers_are_found_by_notional_and_refused_when_broken() {
        let t = btc();
        assert_eq!(t.max_leverage(0.0), 125);
        assert_eq!(t.max_leverage(49_999.0), 125);
        assert_eq!(t.max_leverage(50_000.0), 100);
        assert_eq!(t.max_leverage(1e9), 50);
        let broken: SymbolBracketsWire = serde_json::from_str(
            r#"{"symbol":"X","brackets":[
            {"bracket":1,"initialLeverage":20,"notionalCap":100,"notionalFloor":0,"maintMarginRatio":0.01,"cum":0},
            {"bracket":2,"initialLeverage":10,"notionalCap":900,"notionalFloor":200,"maintMarginRatio":0.02,"cum":1}]}"#,
        )
        .expect("wire");
        assert!(matches!(
            BracketTable::from_wire(&broken),
            Err(BracketError::NotContiguous { bracket: 2, .. })
        ));
        let empty = SymbolBracketsWire {
            symbol: "X".into(),
            notional_coef: None,
            brackets: vec![],
        };
        assert_eq!(
            BracketTable::from_wire(&empty).map_err(|e| e.to_string()),
            Err("X: no brackets".into())
        );
    }

    #[test]
    fn the_default_table_follows_the_cum_recurrence() {
        let t = BracketTable::conservative_default();
        for w in t.brackets().windows(2) {
            assert_eq!(w[0].cap, w[1].floor);
            // Continuity at the edge is what the recurrence buys.
            let edge = w[1].floor;
            assert!((w[0].maintenance_margin(edge) - w[1].maintenance_margin(edge)).abs() < 1e-6);
        }
    }
}
