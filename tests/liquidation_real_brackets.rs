//! Binance's liquidation formula over every real leverage bracket of the October 2024 snapshot
//! (`../shared/fixtures/binance/rest/freqtrade_real/`), and the worked example of PROTOCOL.md §10 on
//! the real BTCUSDT table.
//!
//! For each symbol, tier, side and a spread of leverages the liquidation price must be the price at
//! which the position's equity equals its maintenance margin, computed with the tier that holds the
//! notional *at that price*, and must lie on the losing side of the entry.

mod common;

use perpdesk::{
    domain::Side,
    risk::{BracketTable, SymbolBracketsWire, liquidation_price},
};

const DIR: &str = "fixtures/binance/rest/freqtrade_real";

fn load(file: &str) -> Option<Vec<SymbolBracketsWire>> {
    let path = common::shared_path(&format!("{DIR}/{file}"))?;
    let text = std::fs::read_to_string(&path).expect("readable");
    Some(serde_json::from_str(&text).expect("the venue's leverageBracket shape"))
}

fn check_all(entries: &[SymbolBracketsWire]) -> usize {
    let mut checked = 0;
    for wire in entries {
        let table = BracketTable::from_wire(wire).unwrap_or_else(|e| panic!("{e}"));
        let tiers = table.brackets();
        for w in tiers.windows(2) {
            // Binance's recurrence: the maintenance margin is continuous at every tier edge.
            let expected = w[0].cum + w[1].floor * (w[1].mmr - w[0].mmr);
            assert!(
                (w[1].cum - expected).abs() <= 1e-6 * expected.abs().max(1.0),
                "{}: cum {} ≠ {expected}",
                wire.symbol,
                w[1].cum
            );
        }
        for tier in tiers {
            let top = if tier.cap > 1e11 {
                tier.floor * 2.0 + 1.0
            } else {
                tier.cap
            };
            let notional = f64::midpoint(tier.floor, top);
            for entry in [0.005, 1.0, 30_000.0] {
                let qty = notional / entry;
                for leverage in [1, 2, 3, 5, tier.max_leverage / 2, tier.max_leverage] {
                    // Only leverages the tier allows are positions the venue would accept.
                    let leverage = leverage.clamp(1, tier.max_leverage);
                    let wallet = notional / f64::from(leverage);
                    for side in [Side::Long, Side::Short] {
                        let s = if side == Side::Long { 1.0 } else { -1.0 };
                        let Some(lp) = liquidation_price(side, qty, entry, wallet, &table) else {
                            // Only a long whose margin covers the notional is never liquidated.
                            assert!(
                                side == Side::Long && wallet >= notional * (1.0 - 1e-9),
                                "{}",
                                wire.symbol
                            );
                            continue;
                        };
                        assert!(
                            s * (lp - entry) < 0.0,
                            "{} {side:?} {leverage}x: {lp} vs {entry}",
                            wire.symbol
                        );
                        let at = table.for_notional(qty * lp);
                        let equity = wallet + s * qty * (lp - entry);
                        let maintenance = at.maintenance_margin(qty * lp);
                        assert!(
                            (equity - maintenance).abs() <= 1e-7 * notional,
                            "{} {side:?} {leverage}x tier {}: equity {equity} ≠ maintenance {maintenance}",
                            wire.symbol,
                            at.max_leverage
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    checked
}

#[test]
fn the_formula_holds_over_every_real_bracket() {
    for file in [
        "leverage_bracket_all_usdt_2024-10.json",
        "leverage_bracket_majors_2024-10.json",
    ] {
        let Some(entries) = load(file) else { return };
        assert!(!entries.is_empty());
        let checked = check_all(&entries);
        eprintln!(
            "{file}: {} symbols, {checked} liquidation prices checked",
            entries.len()
        );
        assert!(checked > entries.len() * 10);
    }
}

#[test]
fn the_worked_example_on_the_real_btcusdt_table() {
    let Some(entries) = load("leverage_bracket_majors_2024-10.json") else {
        return;
    };
    let btc = entries
        .iter()
        .find(|e| e.symbol == "BTCUSDT")
        .expect("BTCUSDT in the majors");
    let table = BracketTable::from_wire(btc).expect("valid");
    let tier1 = table.brackets()[0];
    assert_eq!(
        (tier1.floor, tier1.cap, tier1.max_leverage, tier1.mmr, tier1.cum),
        (0.0, 50_000.0, 125, 0.004, 0.0)
    );
    let lp = liquidation_price(Side::Long, 0.1, 30_000.0, 300.0, &table).expect("liquidable");
    assert_eq!(format!("{lp:.2}"), "27108.43");
}

/// The client's answer type of `GET /fapi/v1/leverageBracket` takes the real venue payload (every
/// USDT-M symbol of the snapshot), and the simulator's transcribed BTCUSDT/ETHUSDT/SOLUSDT tables
/// are exactly the snapshot's.
#[test]
fn the_real_payload_parses_and_the_simulators_tables_are_the_snapshots() {
    use perpdesk::{binance::trade_wire::LeverageBrackets, sim::brackets};
    let Some(path) = common::shared_path(&format!("{DIR}/leverage_bracket_all_usdt_2024-10.json")) else {
        return;
    };
    let text = std::fs::read_to_string(&path).expect("readable");
    let answer: LeverageBrackets = serde_json::from_str(&text).expect("the venue's shape");
    let all = answer.into_vec();
    assert!(all.len() > 200, "{} symbols", all.len());
    for wire in &all {
        BracketTable::from_wire(wire).unwrap_or_else(|e| panic!("{e}"));
    }
    let find = |s: &str| all.iter().find(|w| w.symbol == s).expect("in the snapshot");
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        assert_eq!(&brackets::wire_of(symbol), find(symbol), "{symbol}");
    }
    // Every other symbol of the simulator uses SOLUSDT's table.
    let default = brackets::wire_of("SOLUSDT");
    assert_eq!(default.brackets, find("SOLUSDT").brackets);
    assert_eq!(brackets::wire_of("ZELTAUSDT").brackets, default.brackets);
}
