//! The simulated exchange's leverage brackets: the maintenance-margin tiers its liquidation engine
//! uses and `GET /fapi/v1/leverageBracket` serves, so that what the console loads from the venue is
//! exactly what the venue liquidates with.
//!
//! BTCUSDT and ETHUSDT carry Binance's real tables (the October 2024 snapshot of
//! `fixtures/binance/rest/freqtrade_real/`, transcribed here because the simulator must run without
//! the research bundle; `tests/liquidation_real_brackets.rs` checks the transcription against the
//! file). Every other symbol — the synthetic universe's generated tickers and the other majors — gets
//! Binance's real SOLUSDT table of the same snapshot as a typical large-cap alt table: 100x in the
//! first tier, stricter than BTC's, contiguous, with `cum` following the venue's recurrence.

use rust_decimal::Decimal;

use crate::risk::{BracketWire, SymbolBracketsWire};

/// `(bracket, initialLeverage, notionalFloor, notionalCap, maintMarginRatio, cum)`.
type Tier = (u32, u32, u64, u64, f64, f64);

/// BTCUSDT, October 2024.
const BTCUSDT: [Tier; 12] = [
    (1, 125, 0, 50_000, 0.004, 0.0),
    (2, 100, 50_000, 600_000, 0.005, 50.0),
    (3, 75, 600_000, 3_000_000, 0.0065, 950.0),
    (4, 50, 3_000_000, 12_000_000, 0.01, 11_450.0),
    (5, 25, 12_000_000, 70_000_000, 0.02, 131_450.0),
    (6, 20, 70_000_000, 100_000_000, 0.025, 481_450.0),
    (7, 10, 100_000_000, 230_000_000, 0.05, 2_981_450.0),
    (8, 5, 230_000_000, 480_000_000, 0.1, 14_481_450.0),
    (9, 4, 480_000_000, 600_000_000, 0.125, 26_481_450.0),
    (10, 3, 600_000_000, 800_000_000, 0.15, 41_481_450.0),
    (11, 2, 800_000_000, 1_200_000_000, 0.25, 121_481_450.0),
    (12, 1, 1_200_000_000, 1_800_000_000, 0.5, 421_481_450.0),
];

/// ETHUSDT, October 2024.
const ETHUSDT: [Tier; 12] = [
    (1, 125, 0, 50_000, 0.004, 0.0),
    (2, 100, 50_000, 600_000, 0.005, 50.0),
    (3, 75, 600_000, 3_000_000, 0.0065, 950.0),
    (4, 50, 3_000_000, 12_000_000, 0.01, 11_450.0),
    (5, 25, 12_000_000, 50_000_000, 0.02, 131_450.0),
    (6, 20, 50_000_000, 65_000_000, 0.025, 381_450.0),
    (7, 10, 65_000_000, 150_000_000, 0.05, 2_006_450.0),
    (8, 5, 150_000_000, 320_000_000, 0.1, 9_506_450.0),
    (9, 4, 320_000_000, 400_000_000, 0.125, 17_506_450.0),
    (10, 3, 400_000_000, 530_000_000, 0.15, 27_506_450.0),
    (11, 2, 530_000_000, 800_000_000, 0.25, 80_506_450.0),
    (12, 1, 800_000_000, 1_200_000_000, 0.5, 280_506_450.0),
];

/// SOLUSDT, October 2024: the table of every other symbol.
const DEFAULT: [Tier; 10] = [
    (1, 100, 0, 20_000, 0.005, 0.0),
    (2, 75, 20_000, 100_000, 0.0065, 30.0),
    (3, 50, 100_000, 800_000, 0.01, 380.0),
    (4, 25, 800_000, 4_000_000, 0.02, 8_380.0),
    (5, 20, 4_000_000, 8_000_000, 0.025, 28_380.0),
    (6, 10, 8_000_000, 40_000_000, 0.05, 228_380.0),
    (7, 5, 40_000_000, 80_000_000, 0.1, 2_228_380.0),
    (8, 4, 80_000_000, 100_000_000, 0.125, 4_228_380.0),
    (9, 2, 100_000_000, 200_000_000, 0.25, 16_728_380.0),
    (10, 1, 200_000_000, 400_000_000, 0.5, 66_728_380.0),
];

fn tiers_of(symbol: &str) -> &'static [Tier] {
    match symbol {
        "BTCUSDT" => &BTCUSDT,
        "ETHUSDT" => &ETHUSDT,
        _ => &DEFAULT,
    }
}

/// The table the simulator uses for `symbol`, in the venue's wire shape.
pub fn wire_of(symbol: &str) -> SymbolBracketsWire {
    SymbolBracketsWire {
        symbol: symbol.to_owned(),
        notional_coef: None,
        brackets: tiers_of(symbol)
            .iter()
            .map(|&(bracket, lev, floor, cap, mmr, cum)| BracketWire {
                bracket,
                initial_leverage: lev,
                notional_cap: cap as f64,
                notional_floor: floor as f64,
                maint_margin_ratio: mmr,
                cum,
            })
            .collect(),
    }
}

/// One symbol's entry as the venue sends it: notional edges as JSON integers, ratio and `cum` as
/// JSON decimals, no `notionalCoef` (the simulated account has no adjusted brackets).
pub fn json_of(symbol: &str) -> serde_json::Value {
    let brackets: Vec<serde_json::Value> = tiers_of(symbol)
        .iter()
        .map(|&(bracket, lev, floor, cap, mmr, cum)| {
            serde_json::json!({
                "bracket": bracket,
                "initialLeverage": lev,
                "notionalCap": cap,
                "notionalFloor": floor,
                "maintMarginRatio": mmr,
                "cum": cum,
            })
        })
        .collect();
    serde_json::json!({ "symbol": symbol, "brackets": brackets })
}

/// A tier in the simulator's decimal arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimTier {
    pub floor: Decimal,
    pub cap: Decimal,
    pub max_leverage: u32,
    pub mmr: Decimal,
    pub cum: Decimal,
}

fn sim_tier(t: &Tier) -> SimTier {
    SimTier {
        floor: Decimal::from(t.2),
        cap: Decimal::from(t.3),
        max_leverage: t.1,
        mmr: Decimal::from_f64_retain(t.4).map_or(Decimal::ZERO, |d| d.round_dp(6)),
        cum: Decimal::from_f64_retain(t.5).map_or(Decimal::ZERO, |d| d.round_dp(2)),
    }
}

/// Every tier of `symbol`, in increasing notional order.
pub fn tiers(symbol: &str) -> impl Iterator<Item = SimTier> {
    tiers_of(symbol).iter().map(sim_tier)
}

/// The tier holding `notional` for `symbol` (the top tier beyond its cap, as the risk module does).
pub fn tier_for(symbol: &str, notional: Decimal) -> SimTier {
    let tiers = tiers_of(symbol);
    let notional = notional.abs();
    tiers
        .iter()
        .find(|t| notional < Decimal::from(t.3))
        .or(tiers.last())
        .map_or_else(|| sim_tier(&(1, 125, 0, u64::MAX, 0.004, 0.0)), sim_tier)
}

/// Maintenance margin of a position of `notional` (absolute) in `symbol`: `notional × mmr − cum`.
pub fn maintenance_margin(symbol: &str, notional: Decimal) -> Decimal {
    let t = tier_for(symbol, notional);
    notional.abs() * t.mmr - t.cum
}

/// The highest leverage `symbol` allows at all (its first tier's): `POST /fapi/v1/leverage` refuses
/// more.
pub fn max_leverage(symbol: &str) -> u32 {
    tiers_of(symbol).first().map_or(125, |t| t.1)
}

/// The largest notional a position of `symbol` may reach at `leverage` (the cap of the last tier
/// that allows it; 0 when none does).
pub fn max_notional(symbol: &str, leverage: u32) -> Decimal {
    tiers_of(symbol)
        .iter()
        .filter(|t| t.1 >= leverage)
        .map(|t| Decimal::from(t.3))
        .max()
        .unwrap_or(Decimal::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::BracketTable;

    #[test]
    fn every_table_is_valid_and_continuous() {
        for symbol in ["BTCUSDT", "ETHUSDT", "ZELTAUSDT"] {
            let wire = wire_of(symbol);
            let table = BracketTable::from_wire(&wire).expect("a valid table");
            for w in table.brackets().windows(2) {
                // Binance's recurrence: the maintenance margin is continuous at every tier edge.
                let expected = w[0].cum + w[1].floor * (w[1].mmr - w[0].mmr);
                assert!((w[1].cum - expected).abs() < 1e-6, "{symbol}: {w:?}");
            }
            // The JSON the route serves parses back to the same wire struct.
            let parsed: SymbolBracketsWire = serde_json::from_value(json_of(symbol)).expect("parses");
            assert_eq!(parsed, wire);
        }
    }

    #[test]
    fn tiers_caps_and_maintenance_follow_the_notional() {
        let d = |s: &str| s.parse::<Decimal>().expect("decimal");
        // BTC tier 1 is the old flat rule: 0.4 %, no cum.
        assert_eq!(maintenance_margin("BTCUSDT", d("30000")), d("120"));
        // Tier 2: 100 000 × 0.5 % − 50.
        assert_eq!(maintenance_margin("BTCUSDT", d("100000")), d("450"));
        // Continuous at the edge.
        assert_eq!(maintenance_margin("BTCUSDT", d("50000")), d("50000") * d("0.004"));
        assert_eq!(tier_for("BTCUSDT", d("70000")).max_leverage, 100);
        assert_eq!(tier_for("SOMEUSDT", d("70000")).max_leverage, 75);
        assert_eq!(
            tier_for("BTCUSDT", Decimal::from(10_000_000_000_u64)).max_leverage,
            1,
            "the top tier beyond its cap"
        );
        assert_eq!((max_leverage("BTCUSDT"), max_leverage("XUSDT")), (125, 100));
        assert_eq!(max_notional("BTCUSDT", 100), d("600000"));
        assert_eq!(max_notional("BTCUSDT", 126), Decimal::ZERO);
    }
}
