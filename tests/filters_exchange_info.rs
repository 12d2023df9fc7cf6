//! Property tests of `binance::filters` over the real exchangeInfo capture of 2021-07-21 (122 contracts,
//! every one with the full futures filter set): for every symbol and random prices and quantities, a
//! prepared order is on the venue's grid, inside the bounds, rounded in the documented direction by less
//! than one tick/step, idempotent, never larger than asked, and its wire strings parse back to the same
//! decimal within the symbol's precision. Refusals are checked too: each must be justified by the input.
//!
//! When `../shared` is absent the test prints a `SKIP:` line and passes; see `tests/common`.

mod common;

use std::str::FromStr;

use perpdesk::binance::{
    filters::{FilterError, OrderDraft, OrderKind, OrderSide, RoundedOrder, SymbolFilters, to_wire_string},
    wire,
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use rust_decimal::Decimal;

const EXCHANGE_INFO_2021: &str = "fixtures/binance/rest/cryptofeed_real/exchange_info_full_2021-07-21.json";
const CASES_PER_SYMBOL: u32 = 300;

fn symbols() -> Option<Vec<SymbolFilters>> {
    let text = common::read_shared(EXCHANGE_INFO_2021)?;
    let info: wire::ExchangeInfo = serde_json::from_str(&text).expect("exchangeInfo decodes");
    let filters: Vec<SymbolFilters> = info
        .symbols
        .iter()
        .map(|s| SymbolFilters::from_symbol_info(s).unwrap_or_else(|e| panic!("{}: {e}", s.symbol)))
        .collect();
    assert_eq!(filters.len(), 122, "symbols in the 2021 capture");
    Some(filters)
}

/// A decimal in `[lo, hi]` with up to 18 random extra decimals (so most values are off the grid).
fn decimal_in(lo: Decimal, hi: Decimal) -> impl Strategy<Value = Decimal> {
    (0_u64..=1_000_000_000_000, 0_i64..1_000_000_000, 0_u32..=18).prop_map(move |(frac, jitter, scale)| {
        let span = hi - lo;
        let v = lo
            + span * Decimal::new(i64::try_from(frac).expect("fits"), 12)
            + Decimal::new(jitter, scale + 9);
        v.min(hi).max(lo)
    })
}

/// Prices: mostly in `[minPrice, min(maxPrice, 1000 × minPrice)]`, sometimes anywhere from 0 to twice
/// the max (to exercise the refusals).
fn price_for(f: &SymbolFilters) -> BoxedStrategy<Decimal> {
    let lo = f.price.min;
    let hi = f.price.max.min(lo * Decimal::from(1_000)).max(lo + Decimal::ONE);
    prop_oneof![
        9 => decimal_in(lo, hi),
        1 => decimal_in(Decimal::ZERO, f.price.max * Decimal::TWO),
    ]
    .boxed()
}

fn qty_for(f: &SymbolFilters) -> BoxedStrategy<Decimal> {
    let lo = f.lot.min;
    let hi = f.lot.max;
    prop_oneof![
        9 => decimal_in(lo, hi),
        1 => decimal_in(Decimal::ZERO, hi * Decimal::TWO),
    ]
    .boxed()
}

fn on_grid(value: Decimal, base: Decimal, step: Decimal) -> bool {
    step.is_zero() || ((value - base) % step).is_zero()
}

fn decimals_of(wire: &str) -> u32 {
    wire.split_once('.')
        .map_or(0, |(_, frac)| u32::try_from(frac.len()).expect("short"))
}

fn check_wire(value: Decimal, precision: u32) -> Result<(), TestCaseError> {
    let wire = to_wire_string(value);
    prop_assert!(
        wire.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
        "wire string {wire:?} is not plain digits"
    );
    prop_assert_eq!(Decimal::from_str(&wire).expect("parses"), value);
    prop_assert!(
        decimals_of(&wire) <= precision,
        "{wire} has more than {precision} decimals"
    );
    Ok(())
}

/// Checks one draft against one symbol; returns whether it was accepted.
fn check(f: &SymbolFilters, draft: &OrderDraft) -> Result<bool, TestCaseError> {
    let lot = match draft.kind {
        OrderKind::Limit => f.lot,
        OrderKind::Market => f.market_lot,
    };
    match f.prepare(draft) {
        Ok(o) => {
            // Quantity: on the step grid from minQty, in bounds, floored by less than one step, idempotent.
            prop_assert!(on_grid(o.qty, lot.min, lot.step), "qty {} off grid", o.qty);
            prop_assert!(o.qty >= lot.min && o.qty <= lot.max);
            prop_assert!(o.qty <= draft.qty, "qty increased: {} > {}", o.qty, draft.qty);
            prop_assert!(draft.qty - o.qty < lot.step);
            prop_assert_eq!(f.floor_qty(draft.kind, o.qty), Ok(o.qty));
            check_wire(o.qty, f.quantity_precision)?;
            // Price: on the tick grid from minPrice, in bounds, moved toward the safe side by < 1 tick.
            let notional_price = if let Some(p) = o.price {
                let asked = draft.price.expect("limit price");
                prop_assert!(on_grid(p, f.price.min, f.price.tick), "price {p} off grid");
                prop_assert!(p >= f.price.min && p <= f.price.max);
                match draft.side {
                    OrderSide::Buy => prop_assert!(p <= asked && asked - p < f.price.tick),
                    OrderSide::Sell => prop_assert!(p >= asked && p - asked < f.price.tick),
                }
                prop_assert_eq!(f.round_price(draft.side, p), Ok(p));
                check_wire(p, f.price_precision)?;
                if let Some(band) = f.percent_price {
                    match draft.side {
                        OrderSide::Buy => prop_assert!(p <= draft.mark_price * band.up),
                        OrderSide::Sell => prop_assert!(p >= draft.mark_price * band.down),
                    }
                }
                p
            } else {
                draft.mark_price
            };
            prop_assert!(draft.reduce_only || notional_price * o.qty >= f.min_notional);
            // What `prepare` produced passes `validate` unchanged (the venue's view).
            prop_assert_eq!(f.validate(&o, draft.reduce_only, draft.mark_price), Ok(()));
            let idempotent = f.prepare(&OrderDraft {
                price: o.price.or(draft.price),
                qty: o.qty,
                ..*draft
            });
            prop_assert_eq!(
                idempotent.map(|r: RoundedOrder| (r.price, r.qty)),
                Ok((o.price, o.qty))
            );
            Ok(true)
        }
        Err(e) => {
            let price = draft.price.unwrap_or_default();
            let justified = match &e {
                FilterError::PriceBelowMin { .. } => price < f.price.min,
                FilterError::PriceNotPositive { .. } => price <= Decimal::ZERO,
                FilterError::PriceAboveMax { price: rounded, .. } => {
                    *rounded > f.price.max && (price > f.price.max || draft.side == OrderSide::Sell)
                }
                FilterError::QtyNotPositive { .. } => draft.qty <= Decimal::ZERO,
                FilterError::QtyBelowMin { .. } => draft.qty < lot.min,
                FilterError::QtyAboveMax { .. } => draft.qty > lot.max,
                FilterError::MinNotional { notional, min } => !draft.reduce_only && notional < min,
                FilterError::AboveMarkCap { price, cap } => draft.side == OrderSide::Buy && price > cap,
                FilterError::BelowMarkFloor { price, floor } => {
                    draft.side == OrderSide::Sell && price < floor
                }
                _ => false,
            };
            prop_assert!(justified, "unjustified refusal {e} of {draft:?}");
            prop_assert!(e.venue_code().is_some(), "{e} has a venue code");
            Ok(false)
        }
    }
}

fn draft_for(f: &SymbolFilters) -> impl Strategy<Value = OrderDraft> {
    (
        any::<bool>(),
        prop::bool::weighted(0.8),
        price_for(f),
        qty_for(f),
        prop::bool::weighted(0.2),
        // Mark within ±25 % of the price, so the PERCENT_PRICE band (±15 %) is met and missed.
        75_i64..=125,
    )
        .prop_map(|(buy, limit, price, qty, reduce_only, mark_pct)| OrderDraft {
            side: if buy { OrderSide::Buy } else { OrderSide::Sell },
            kind: if limit {
                OrderKind::Limit
            } else {
                OrderKind::Market
            },
            price: limit.then_some(price),
            qty,
            reduce_only,
            mark_price: (price * Decimal::new(mark_pct, 2)).max(Decimal::new(1, 8)),
        })
}

#[test]
fn rounding_invariants_hold_for_every_symbol() {
    let Some(all) = symbols() else {
        return;
    };
    for f in &all {
        let mut runner = TestRunner::new(Config {
            cases: CASES_PER_SYMBOL,
            failure_persistence: None,
            ..Config::default()
        });
        let accepted = std::cell::Cell::new(0_u32);
        let result = runner.run(&draft_for(f), |draft| {
            if check(f, &draft)? {
                accepted.set(accepted.get() + 1);
            }
            Ok(())
        });
        let accepted = accepted.get();
        if let Err(e) = result {
            panic!("{}: {e}", f.symbol);
        }
        // The generator must mostly produce sendable orders, or the invariants above prove little.
        assert!(
            accepted >= CASES_PER_SYMBOL / 4,
            "{}: only {accepted} of {CASES_PER_SYMBOL} drafts accepted",
            f.symbol
        );
    }
}

#[test]
fn btcusdt_of_2021_rounds_as_the_venue_expects() {
    let Some(all) = symbols() else {
        return;
    };
    let btc = all
        .iter()
        .find(|f| f.symbol == "BTCUSDT")
        .expect("BTCUSDT listed");
    let d = |s: &str| Decimal::from_str(s).expect("decimal");
    let o = btc
        .prepare(&OrderDraft {
            side: OrderSide::Buy,
            kind: OrderKind::Limit,
            price: Some(d("32123.456789")),
            qty: d("0.34999999999999"),
            reduce_only: false,
            mark_price: d("32100"),
        })
        .expect("valid order");
    assert_eq!(o.price_wire().as_deref(), Some("32123.45"));
    assert_eq!(o.qty_wire(), "0.349");
}
