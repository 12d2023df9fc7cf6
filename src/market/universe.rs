//! The trading universe: the top N USDT perpetuals that are open for trading, by 24h quote volume.
//!
//! Liquidity is what makes a symbol worth scanning (tight spreads, honest candles), so rank by quote
//! volume. The universe is re-ranked on a timer; the difference against the previous one is what the
//! stream layer subscribes and unsubscribes, so a refresh never tears down healthy connections.

use std::collections::{HashMap, HashSet};

use crate::{
    binance::parse::{SymbolTable, TickerStats},
    domain::SymbolId,
};

/// Selects the universe: tradable USDT perpetuals, highest 24h quote volume first, at most `size`.
/// Ties are broken by name so the ranking is deterministic.
pub fn select(table: &SymbolTable, tickers: &HashMap<SymbolId, TickerStats>, size: usize) -> Vec<SymbolId> {
    let mut ranked: Vec<(SymbolId, f64, &str)> = table
        .iter()
        .filter(|s| s.is_tradable_usdt_perpetual())
        .map(|s| {
            (
                s.id,
                tickers.get(&s.id).map_or(0.0, |t| t.quote_volume),
                s.name.as_str(),
            )
        })
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.2.cmp(b.2)));
    ranked.into_iter().take(size).map(|(id, _, _)| id).collect()
}

/// What changed between two universes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UniverseDiff {
    pub added: Vec<SymbolId>,
    pub removed: Vec<SymbolId>,
}

pub fn diff(old: &[SymbolId], new: &[SymbolId]) -> UniverseDiff {
    let old_set: HashSet<_> = old.iter().collect();
    let new_set: HashSet<_> = new.iter().collect();
    UniverseDiff {
        added: new.iter().filter(|s| !old_set.contains(s)).copied().collect(),
        removed: old.iter().filter(|s| !new_set.contains(s)).copied().collect(),
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;
    use crate::domain::{Symbol, SymbolStatus};

    fn sym(name: &str, quote: &str, contract: &str, status: SymbolStatus) -> Symbol {
        Symbol {
            id: SymbolId(0),
            name: name.into(),
            base_asset: name.trim_end_matches(quote).into(),
            quote_asset: quote.into(),
            contract_type: contract.into(),
            status,
            price_precision: 2,
            quantity_precision: 3,
            tick_size: Decimal::new(1, 2),
            step_size: Decimal::new(1, 3),
            min_qty: Decimal::new(1, 3),
            min_notional: Decimal::from(5),
        }
    }

    fn stats(qv: f64) -> TickerStats {
        TickerStats {
            last_price: 1.0,
            open_price: 1.0,
            change_pct: 0.0,
            quote_volume: qv,
            event_time: 0,
        }
    }

    #[test]
    fn selects_tradable_usdt_perpetuals_by_quote_volume() {
        let mut t = SymbolTable::default();
        let a = t.insert(sym("AAAUSDT", "USDT", "PERPETUAL", SymbolStatus::Trading));
        let b = t.insert(sym("BBBUSDT", "USDT", "PERPETUAL", SymbolStatus::Trading));
        let busd = t.insert(sym("CCCBUSD", "BUSD", "PERPETUAL", SymbolStatus::Trading));
        let quarterly = t.insert(sym(
            "DDDUSDT_261225",
            "USDT",
            "CURRENT_QUARTER",
            SymbolStatus::Trading,
        ));
        let settling = t.insert(sym("EEEUSDT", "USDT", "PERPETUAL", SymbolStatus::Settling));
        let c = t.insert(sym("FFFUSDT", "USDT", "PERPETUAL", SymbolStatus::Trading));
        let tickers: HashMap<_, _> = [
            (a, stats(10.0)),
            (b, stats(30.0)),
            (busd, stats(1e12)),
            (quarterly, stats(1e12)),
            (settling, stats(1e12)),
            (c, stats(20.0)),
        ]
        .into_iter()
        .collect();
        assert_eq!(select(&t, &tickers, 10), vec![b, c, a]);
        assert_eq!(select(&t, &tickers, 2), vec![b, c]);
    }

    #[test]
    fn diff_reports_added_and_removed() {
        let d = diff(&[SymbolId(1), SymbolId(2)], &[SymbolId(2), SymbolId(3)]);
        assert_eq!(d.added, vec![SymbolId(3)]);
        assert_eq!(d.removed, vec![SymbolId(1)]);
    }
}
