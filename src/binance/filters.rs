//! Order rounding and local filter checks, in decimal arithmetic, from a symbol's exchangeInfo filters.
//!
//! The most reported Binance order bug is `-1111 Precision is over the maximum` from float prices such
//! as `0.34999999999999`, followed by `-4014`/`-4023` (off the tick/step grid) and `-4164` (notional too
//! small). All of them are knowable before sending, so orders are rounded and checked here with
//! `rust_decimal` (exact; `%` and `-` only, no division) and refused locally with the code the venue
//! would have answered, which also saves request weight and order count.
//!
//! Rounding policy (the "safe side"):
//! * **Price** moves to the tick grid `minPrice + k·tickSize` in the direction that favours us: a BUY
//!   rounds **down** (never pays more than asked), a SELL rounds **up** (never sells for less). For a
//!   protective stop trigger the same rule moves the trigger toward the market (a SELL stop below the
//!   price goes up, a BUY stop above it goes down), so it fires no later than asked. It never moves by
//!   a whole tick or more. A price outside `[minPrice, maxPrice]` is refused, not clamped.
//! * **Quantity** is **floored** to the grid `minQty + k·stepSize` (`LOT_SIZE`, or `MARKET_LOT_SIZE` for
//!   MARKET orders): an order is never larger than the sizing asked for. Outside `[minQty, maxQty]` it is
//!   refused, not clamped.
//! * **`MIN_NOTIONAL`**: price × qty ≥ notional, using the limit price, or the **mark price** for MARKET
//!   orders; reduce-only orders are exempt (the venue lets them close dust).
//! * **`PERCENT_PRICE`** (limit orders, against the mark price): BUY price ≤ mark × multiplierUp (`-4016`),
//!   SELL price ≥ mark × multiplierDown (`-4024`).
//!
//! Wire strings ([`to_wire_string`]) are plain decimals with no exponent and no trailing zeros, so they
//! never carry more digits than the tick or step that produced them.

use std::str::FromStr;

use rust_decimal::Decimal;

use super::{parse::ParseError, wire};

/// BUY or SELL, as the venue spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderSide {
    Buy,
    Sell,
}

impl OrderSide {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "BUY",
            Self::Sell => "SELL",
        }
    }
}

/// The order types whose checks differ: a LIMIT has its own price; a MARKET takes the mark price for
/// the notional check and `MARKET_LOT_SIZE` for its quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderKind {
    Limit,
    Market,
}

/// `PRICE_FILTER`: a zero `min`, `max` or `tick` disables that rule, as on the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriceRule {
    pub min: Decimal,
    pub max: Decimal,
    pub tick: Decimal,
}

/// `LOT_SIZE` / `MARKET_LOT_SIZE` (`step` is always positive; a zero `max` disables the cap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LotRule {
    pub min: Decimal,
    pub max: Decimal,
    pub step: Decimal,
}

/// `PERCENT_PRICE` multipliers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PercentPrice {
    pub up: Decimal,
    pub down: Decimal,
}

/// The filters of one symbol that orders are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolFilters {
    pub symbol: String,
    pub price: PriceRule,
    pub lot: LotRule,
    /// `MARKET_LOT_SIZE`; the `LOT_SIZE` rule when the symbol has none.
    pub market_lot: LotRule,
    /// `MIN_NOTIONAL`; zero when the symbol has none.
    pub min_notional: Decimal,
    pub percent_price: Option<PercentPrice>,
    /// `pricePrecision` / `quantityPrecision`: the most decimals the venue accepts (`-1111` beyond).
    pub price_precision: u32,
    pub quantity_precision: u32,
}

/// An order as sizing produced it, before rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderDraft {
    pub side: OrderSide,
    pub kind: OrderKind,
    /// Limit price; required for [`OrderKind::Limit`], ignored for [`OrderKind::Market`].
    pub price: Option<Decimal>,
    pub qty: Decimal,
    pub reduce_only: bool,
    /// Current mark price (`MIN_NOTIONAL` of MARKET orders, `PERCENT_PRICE` of LIMIT orders).
    pub mark_price: Decimal,
}

/// An order on the venue's grid that passed every local check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundedOrder {
    pub side: OrderSide,
    pub kind: OrderKind,
    /// `None` for MARKET orders.
    pub price: Option<Decimal>,
    pub qty: Decimal,
}

impl RoundedOrder {
    /// The `price` parameter, if the order has one.
    pub fn price_wire(&self) -> Option<String> {
        self.price.map(to_wire_string)
    }

    /// The `quantity` parameter.
    pub fn qty_wire(&self) -> String {
        to_wire_string(self.qty)
    }
}

/// An order refused locally. [`FilterError::venue_code`] is the code the venue would have answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("price {price} is not positive (-4001)")]
    PriceNotPositive { price: Decimal },
    #[error("price {price} is below minPrice {min} (-4013)")]
    PriceBelowMin { price: Decimal, min: Decimal },
    #[error("price {price} is above maxPrice {max} (-4002)")]
    PriceAboveMax { price: Decimal, max: Decimal },
    #[error("price {price} is not minPrice + a multiple of tickSize {tick} (-4014)")]
    PriceOffTick { price: Decimal, tick: Decimal },
    #[error("quantity {qty} is not positive (-4003)")]
    QtyNotPositive { qty: Decimal },
    #[error("quantity {qty} is below minQty {min} (-4004)")]
    QtyBelowMin { qty: Decimal, min: Decimal },
    #[error("quantity {qty} is above maxQty {max} (-4005)")]
    QtyAboveMax { qty: Decimal, max: Decimal },
    #[error("quantity {qty} is not minQty + a multiple of stepSize {step} (-4023)")]
    QtyOffStep { qty: Decimal, step: Decimal },
    #[error("{what} {value} has more than {precision} decimals (-1111)")]
    TooPrecise {
        what: &'static str,
        value: Decimal,
        precision: u32,
    },
    #[error("notional {notional} is below MIN_NOTIONAL {min} (-4164; reduce-only orders are exempt)")]
    MinNotional { notional: Decimal, min: Decimal },
    #[error("BUY price {price} is above mark × multiplierUp = {cap} (-4016)")]
    AboveMarkCap { price: Decimal, cap: Decimal },
    #[error("SELL price {price} is below mark × multiplierDown = {floor} (-4024)")]
    BelowMarkFloor { price: Decimal, floor: Decimal },
    #[error("a LIMIT order needs a price (-1102)")]
    PriceMissing,
    #[error("mark price {0} is not positive; cannot check the order")]
    BadMarkPrice(Decimal),
    #[error("order values overflow decimal arithmetic")]
    Overflow,
}

impl FilterError {
    /// The venue's error code for the same refusal (`None` for the purely local checks).
    pub fn venue_code(&self) -> Option<i64> {
        Some(match self {
            Self::PriceNotPositive { .. } => -4001,
            Self::PriceBelowMin { .. } => -4013,
            Self::PriceAboveMax { .. } => -4002,
            Self::PriceOffTick { .. } => -4014,
            Self::QtyNotPositive { .. } => -4003,
            Self::QtyBelowMin { .. } => -4004,
            Self::QtyAboveMax { .. } => -4005,
            Self::QtyOffStep { .. } => -4023,
            Self::TooPrecise { .. } => -1111,
            Self::MinNotional { .. } => -4164,
            Self::AboveMarkCap { .. } => -4016,
            Self::BelowMarkFloor { .. } => -4024,
            Self::PriceMissing => -1102,
            Self::BadMarkPrice(_) | Self::Overflow => return None,
        })
    }
}

/// The venue's decimal text for `value`: no exponent, no trailing zeros (`0.00100` → `0.001`,
/// `1E+2`-style values → `100`).
pub fn to_wire_string(value: Decimal) -> String {
    value.normalize().to_string()
}

/// Decimals after the point of the normalised value.
fn decimals(value: Decimal) -> u32 {
    value.normalize().scale()
}

fn grid_remainder(value: Decimal, base: Decimal, step: Decimal) -> Result<Decimal, FilterError> {
    value
        .checked_sub(base)
        .and_then(|d| d.checked_rem(step))
        .ok_or(FilterError::Overflow)
}

fn mul(a: Decimal, b: Decimal) -> Result<Decimal, FilterError> {
    a.checked_mul(b).ok_or(FilterError::Overflow)
}

impl SymbolFilters {
    /// Reads the filters of `exchangeInfo.symbols[i]`. `PRICE_FILTER` and `LOT_SIZE` are required;
    /// numbers must be non-negative decimals (no exponent) and `stepSize` positive.
    pub fn from_symbol_info(info: &wire::SymbolInfo) -> Result<Self, ParseError> {
        let name = info.symbol.as_str();
        let bad = |problem: String| ParseError::BadSymbol {
            symbol: name.to_owned(),
            problem,
        };
        // Plain digits with at most one point: `Decimal::from_str` would also take `1e-3`, and a
        // venue number in exponent form means the payload is not what we think it is.
        let dec = |field: &str, s: &str| -> Result<Decimal, ParseError> {
            let plain = !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && s.bytes().filter(|&b| b == b'.').count() <= 1;
            match Decimal::from_str(s) {
                Ok(d) if plain => Ok(d.normalize()),
                _ => Err(bad(format!("{field} {s:?} is not a non-negative plain decimal"))),
            }
        };
        let lot = |kind: &str, min: &str, max: &str, step: &str| -> Result<LotRule, ParseError> {
            let rule = LotRule {
                min: dec("minQty", min)?,
                max: dec("maxQty", max)?,
                step: dec("stepSize", step)?,
            };
            if rule.step.is_zero() {
                return Err(bad(format!("{kind} stepSize is zero")));
            }
            if !rule.max.is_zero() && rule.min > rule.max {
                return Err(bad(format!("{kind} minQty {min} is above maxQty {max}")));
            }
            Ok(rule)
        };
        let mut price = None;
        let mut lot_size = None;
        let mut market_lot = None;
        let mut min_notional = Decimal::ZERO;
        let mut percent_price = None;
        for f in &info.filters {
            match f {
                wire::SymbolFilter::PriceFilter {
                    min_price,
                    max_price,
                    tick_size,
                } => {
                    let rule = PriceRule {
                        min: dec("minPrice", min_price)?,
                        max: dec("maxPrice", max_price)?,
                        tick: dec("tickSize", tick_size)?,
                    };
                    if !rule.max.is_zero() && rule.min > rule.max {
                        return Err(bad(format!("minPrice {min_price} is above maxPrice {max_price}")));
                    }
                    price = Some(rule);
                }
                wire::SymbolFilter::LotSize {
                    min_qty,
                    max_qty,
                    step_size,
                } => lot_size = Some(lot("LOT_SIZE", min_qty, max_qty, step_size)?),
                wire::SymbolFilter::MarketLotSize {
                    min_qty,
                    max_qty,
                    step_size,
                } => market_lot = Some(lot("MARKET_LOT_SIZE", min_qty, max_qty, step_size)?),
                wire::SymbolFilter::MinNotional { notional } => min_notional = dec("notional", notional)?,
                wire::SymbolFilter::PercentPrice {
                    multiplier_up,
                    multiplier_down,
                    ..
                } => {
                    percent_price = Some(PercentPrice {
                        up: dec("multiplierUp", multiplier_up)?,
                        down: dec("multiplierDown", multiplier_down)?,
                    });
                }
                wire::SymbolFilter::MaxNumOrders { .. }
                | wire::SymbolFilter::MaxNumAlgoOrders { .. }
                | wire::SymbolFilter::Other => {}
            }
        }
        let price = price.ok_or_else(|| bad("no PRICE_FILTER filter".to_owned()))?;
        let lot = lot_size.ok_or_else(|| bad("no LOT_SIZE filter".to_owned()))?;
        Ok(Self {
            symbol: info.symbol.clone(),
            price,
            lot,
            market_lot: market_lot.unwrap_or(lot),
            min_notional,
            percent_price,
            price_precision: info.price_precision,
            quantity_precision: info.quantity_precision,
        })
    }

    fn lot_rule(&self, kind: OrderKind) -> &LotRule {
        match kind {
            OrderKind::Limit => &self.lot,
            OrderKind::Market => &self.market_lot,
        }
    }

    /// `price` on the tick grid, BUY down and SELL up (see the module docs), within the price bounds.
    pub fn round_price(&self, side: OrderSide, price: Decimal) -> Result<Decimal, FilterError> {
        let PriceRule { min, max, tick } = self.price;
        if price <= Decimal::ZERO {
            return Err(FilterError::PriceNotPositive { price });
        }
        if price < min {
            return Err(FilterError::PriceBelowMin { price, min });
        }
        let rounded = if tick.is_zero() {
            price
        } else {
            let r = grid_remainder(price, min, tick)?;
            let down = price - r;
            match side {
                OrderSide::Buy => down,
                OrderSide::Sell if r.is_zero() => down,
                OrderSide::Sell => down.checked_add(tick).ok_or(FilterError::Overflow)?,
            }
        }
        .normalize();
        if !max.is_zero() && rounded > max {
            return Err(FilterError::PriceAboveMax { price: rounded, max });
        }
        Ok(rounded)
    }

    /// `qty` floored to the step grid of the lot rule for `kind`, within the quantity bounds.
    pub fn floor_qty(&self, kind: OrderKind, qty: Decimal) -> Result<Decimal, FilterError> {
        let LotRule { min, max, step } = *self.lot_rule(kind);
        if qty <= Decimal::ZERO {
            return Err(FilterError::QtyNotPositive { qty });
        }
        if qty < min {
            return Err(FilterError::QtyBelowMin { qty, min });
        }
        let floored = (qty - grid_remainder(qty, min, step)?).normalize();
        if !max.is_zero() && floored > max {
            return Err(FilterError::QtyAboveMax { qty: floored, max });
        }
        Ok(floored)
    }

    /// Rounds a draft to the grid and checks it against every filter.
    pub fn prepare(&self, draft: &OrderDraft) -> Result<RoundedOrder, FilterError> {
        let price = match draft.kind {
            OrderKind::Limit => {
                Some(self.round_price(draft.side, draft.price.ok_or(FilterError::PriceMissing)?)?)
            }
            OrderKind::Market => None,
        };
        let order = RoundedOrder {
            side: draft.side,
            kind: draft.kind,
            price,
            qty: self.floor_qty(draft.kind, draft.qty)?,
        };
        self.validate(&order, draft.reduce_only, draft.mark_price)?;
        Ok(order)
    }

    /// Checks an order as it would be sent, without changing it: grid, bounds, precision, notional and
    /// mark-price band. Use it on prices and quantities that did not come from [`Self::prepare`]
    /// (typed by the operator, read back from the journal).
    pub fn validate(
        &self,
        order: &RoundedOrder,
        reduce_only: bool,
        mark_price: Decimal,
    ) -> Result<(), FilterError> {
        if mark_price <= Decimal::ZERO {
            return Err(FilterError::BadMarkPrice(mark_price));
        }
        let lot = self.lot_rule(order.kind);
        let qty = order.qty;
        if qty <= Decimal::ZERO {
            return Err(FilterError::QtyNotPositive { qty });
        }
        if qty < lot.min {
            return Err(FilterError::QtyBelowMin { qty, min: lot.min });
        }
        if !lot.max.is_zero() && qty > lot.max {
            return Err(FilterError::QtyAboveMax { qty, max: lot.max });
        }
        if !grid_remainder(qty, lot.min, lot.step)?.is_zero() {
            return Err(FilterError::QtyOffStep { qty, step: lot.step });
        }
        if decimals(qty) > self.quantity_precision {
            return Err(FilterError::TooPrecise {
                what: "quantity",
                value: qty,
                precision: self.quantity_precision,
            });
        }
        let notional_price = match (order.kind, order.price) {
            (OrderKind::Limit, None) => return Err(FilterError::PriceMissing),
            (OrderKind::Limit, Some(price)) => {
                self.validate_price(order.side, price, mark_price)?;
                price
            }
            (OrderKind::Market, _) => mark_price,
        };
        let notional = mul(notional_price, qty)?;
        if !reduce_only && notional < self.min_notional {
            return Err(FilterError::MinNotional {
                notional,
                min: self.min_notional,
            });
        }
        Ok(())
    }

    fn validate_price(&self, side: OrderSide, price: Decimal, mark: Decimal) -> Result<(), FilterError> {
        let PriceRule { min, max, tick } = self.price;
        if price <= Decimal::ZERO {
            return Err(FilterError::PriceNotPositive { price });
        }
        if price < min {
            return Err(FilterError::PriceBelowMin { price, min });
        }
        if !max.is_zero() && price > max {
            return Err(FilterError::PriceAboveMax { price, max });
        }
        if !tick.is_zero() && !grid_remainder(price, min, tick)?.is_zero() {
            return Err(FilterError::PriceOffTick { price, tick });
        }
        if decimals(price) > self.price_precision {
            return Err(FilterError::TooPrecise {
                what: "price",
                value: price,
                precision: self.price_precision,
            });
        }
        if let Some(band) = self.percent_price {
            match side {
                OrderSide::Buy => {
                    let cap = mul(mark, band.up)?;
                    if price > cap {
                        return Err(FilterError::AboveMarkCap { price, cap });
                    }
                }
                OrderSide::Sell => {
                    let floor = mul(mark, band.down)?;
                    if price < floor {
                        return Err(FilterError::BelowMarkFloor { price, floor });
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("decimal")
    }

    /// BTCUSDT of the 2021-07-21 capture (PROTOCOL.md §7).
    fn btcusdt() -> SymbolFilters {
        let info: wire::SymbolInfo = serde_json::from_str(
            r#"{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT",
            "pricePrecision":2,"quantityPrecision":3,"filters":[
            {"minPrice":"556.72","maxPrice":"1000000","filterType":"PRICE_FILTER","tickSize":"0.01"},
            {"stepSize":"0.001","filterType":"LOT_SIZE","maxQty":"1000","minQty":"0.001"},
            {"stepSize":"0.001","filterType":"MARKET_LOT_SIZE","maxQty":"100","minQty":"0.001"},
            {"limit":200,"filterType":"MAX_NUM_ORDERS"},{"limit":10,"filterType":"MAX_NUM_ALGO_ORDERS"},
            {"notional":"5","filterType":"MIN_NOTIONAL"},
            {"multiplierDown":"0.8500","multiplierUp":"1.1500","multiplierDecimal":"4","filterType":"PERCENT_PRICE"}]}"#,
        )
        .expect("symbol json");
        SymbolFilters::from_symbol_info(&info).expect("filters")
    }

    fn limit(side: OrderSide, price: &str, qty: &str, mark: &str) -> OrderDraft {
        OrderDraft {
            side,
            kind: OrderKind::Limit,
            price: Some(d(price)),
            qty: d(qty),
            reduce_only: false,
            mark_price: d(mark),
        }
    }

    #[test]
    fn reads_the_filters() {
        let f = btcusdt();
        assert_eq!(f.price.tick, d("0.01"));
        assert_eq!(f.price.min, d("556.72"));
        assert_eq!(f.lot.step, d("0.001"));
        assert_eq!(f.market_lot.max, d("100"));
        assert_eq!(f.min_notional, d("5"));
        assert_eq!(
            f.percent_price,
            Some(PercentPrice {
                up: d("1.15"),
                down: d("0.85")
            })
        );
    }

    #[test]
    fn price_rounds_buy_down_sell_up_on_the_grid_from_min() {
        let f = btcusdt();
        assert_eq!(
            f.round_price(OrderSide::Buy, d("30000.349999999")),
            Ok(d("30000.34"))
        );
        assert_eq!(f.round_price(OrderSide::Sell, d("30000.341")), Ok(d("30000.35")));
        assert_eq!(f.round_price(OrderSide::Sell, d("30000.34")), Ok(d("30000.34")));
        assert_eq!(f.round_price(OrderSide::Buy, d("556.72")), Ok(d("556.72")));
        assert_eq!(
            f.round_price(OrderSide::Buy, d("556.71")),
            Err(FilterError::PriceBelowMin {
                price: d("556.71"),
                min: d("556.72")
            })
        );
        assert!(matches!(
            f.round_price(OrderSide::Sell, d("1000000.001")),
            Err(FilterError::PriceAboveMax { .. })
        ));
        assert!(matches!(
            f.round_price(OrderSide::Buy, d("-1")),
            Err(FilterError::PriceNotPositive { .. })
        ));
    }

    #[test]
    fn grid_is_anchored_at_min_not_at_zero() {
        let info: wire::SymbolInfo = serde_json::from_str(
            r#"{"symbol":"ODD","status":"TRADING","baseAsset":"O","quoteAsset":"USDT",
            "pricePrecision":2,"quantityPrecision":1,"filters":[
            {"minPrice":"0.03","maxPrice":"100","filterType":"PRICE_FILTER","tickSize":"0.05"},
            {"stepSize":"0.5","filterType":"LOT_SIZE","maxQty":"1000","minQty":"0.2"}]}"#,
        )
        .expect("json");
        let f = SymbolFilters::from_symbol_info(&info).expect("filters");
        assert_eq!(f.round_price(OrderSide::Buy, d("1.00")), Ok(d("0.98")));
        assert_eq!(f.round_price(OrderSide::Sell, d("1.00")), Ok(d("1.03")));
        assert_eq!(f.floor_qty(OrderKind::Limit, d("1.0")), Ok(d("0.7")));
        assert_eq!(f.market_lot, f.lot, "no MARKET_LOT_SIZE: LOT_SIZE applies");
        assert_eq!(f.min_notional, Decimal::ZERO);
        assert_eq!(f.percent_price, None);
    }

    #[test]
    fn qty_is_floored_never_increased() {
        let f = btcusdt();
        assert_eq!(
            f.floor_qty(OrderKind::Limit, d("0.34999999999999")),
            Ok(d("0.349"))
        );
        assert_eq!(f.floor_qty(OrderKind::Limit, d("0.001")), Ok(d("0.001")));
        assert!(matches!(
            f.floor_qty(OrderKind::Limit, d("0.0009")),
            Err(FilterError::QtyBelowMin { .. })
        ));
        assert!(matches!(
            f.floor_qty(OrderKind::Limit, d("0")),
            Err(FilterError::QtyNotPositive { .. })
        ));
        assert_eq!(f.floor_qty(OrderKind::Limit, d("500")), Ok(d("500")));
        // MARKET uses MARKET_LOT_SIZE (max 100 here).
        let err = f
            .floor_qty(OrderKind::Market, d("500"))
            .expect_err("above market max");
        assert_eq!(err.venue_code(), Some(-4005));
    }

    #[test]
    fn min_notional_uses_limit_or_mark_price_and_exempts_reduce_only() {
        let f = btcusdt();
        // 0.001 × 4000 = 4 < 5.
        let small = limit(OrderSide::Buy, "4000", "0.001", "4000");
        assert_eq!(
            f.prepare(&small).expect_err("too small").venue_code(),
            Some(-4164)
        );
        assert!(
            f.prepare(&OrderDraft {
                reduce_only: true,
                ..small
            })
            .is_ok()
        );
        // MARKET: the mark price decides, not the (absent) limit price.
        let market = OrderDraft {
            side: OrderSide::Sell,
            kind: OrderKind::Market,
            price: None,
            qty: d("0.001"),
            reduce_only: false,
            mark_price: d("4999"),
        };
        assert_eq!(f.prepare(&market).expect_err("4.999").venue_code(), Some(-4164));
        let ok = f
            .prepare(&OrderDraft {
                mark_price: d("5000"),
                ..market
            })
            .expect("5.000");
        assert_eq!(ok.price, None);
        assert_eq!(ok.qty_wire(), "0.001");
    }

    #[test]
    fn percent_price_band_against_mark() {
        let f = btcusdt();
        // cap 1.15 × 30000 = 34500.
        assert!(
            f.prepare(&limit(OrderSide::Buy, "34500.009", "0.01", "30000"))
                .is_ok()
        );
        let e = f
            .prepare(&limit(OrderSide::Buy, "34500.02", "0.01", "30000"))
            .expect_err("cap");
        assert_eq!(e.venue_code(), Some(-4016));
        // floor 0.85 × 30000 = 25500.
        assert!(
            f.prepare(&limit(OrderSide::Sell, "25499.991", "0.01", "30000"))
                .is_ok()
        );
        let e = f
            .prepare(&limit(OrderSide::Sell, "25499.98", "0.01", "30000"))
            .expect_err("floor");
        assert_eq!(e.venue_code(), Some(-4024));
        // The band is one-sided per side.
        assert!(
            f.prepare(&limit(OrderSide::Sell, "34000", "0.01", "30000"))
                .is_ok()
        );
    }

    #[test]
    fn validate_reports_off_grid_and_precision_with_venue_codes() {
        let f = btcusdt();
        let o = |price: &str, qty: &str| RoundedOrder {
            side: OrderSide::Buy,
            kind: OrderKind::Limit,
            price: Some(d(price)),
            qty: d(qty),
        };
        let mark = d("30000");
        assert_eq!(f.validate(&o("30000.01", "0.5"), false, mark), Ok(()));
        let code = |r: Result<(), FilterError>| r.expect_err("refused").venue_code();
        assert_eq!(code(f.validate(&o("30000.015", "0.5"), false, mark)), Some(-4014));
        assert_eq!(
            code(f.validate(&o("30000.01", "0.5005"), false, mark)),
            Some(-4023)
        );
        assert_eq!(code(f.validate(&o("30000.01", "1001"), false, mark)), Some(-4005));
        assert_eq!(
            code(f.validate(
                &RoundedOrder {
                    price: None,
                    ..o("1", "1")
                },
                false,
                mark
            )),
            Some(-1102)
        );
        assert!(matches!(
            f.validate(&o("30000.01", "0.5"), false, Decimal::ZERO),
            Err(FilterError::BadMarkPrice(_))
        ));
    }

    #[test]
    fn wire_strings_have_no_exponent_and_no_trailing_zeros() {
        assert_eq!(to_wire_string(d("0.00100")), "0.001");
        assert_eq!(to_wire_string(d("100.0")), "100");
        assert_eq!(to_wire_string(Decimal::new(1, 8)), "0.00000001");
        assert_eq!(
            to_wire_string(Decimal::from_scientific("1e2").expect("sci")),
            "100"
        );
        assert_eq!(
            to_wire_string(Decimal::from_scientific("5e-10").expect("sci")),
            "0.0000000005"
        );
        let f = btcusdt();
        let o = f
            .prepare(&limit(OrderSide::Buy, "30000.10", "0.0100", "30000"))
            .expect("ok");
        assert_eq!(o.price_wire().as_deref(), Some("30000.1"));
        assert_eq!(o.qty_wire(), "0.01");
    }

    #[test]
    fn malformed_filters_are_reported_not_fatal() {
        let json = |lot: &str| {
            format!(
                r#"{{"symbol":"BAD","status":"TRADING","baseAsset":"B","quoteAsset":"USDT",
                "pricePrecision":2,"quantityPrecision":3,"filters":[
                {{"minPrice":"0.01","maxPrice":"10","filterType":"PRICE_FILTER","tickSize":"0.01"}},{lot}]}}"#
            )
        };
        for (lot, problem) in [
            (
                r#"{"stepSize":"0","filterType":"LOT_SIZE","maxQty":"1","minQty":"0.1"}"#,
                "stepSize is zero",
            ),
            (
                r#"{"stepSize":"1e-3","filterType":"LOT_SIZE","maxQty":"1","minQty":"0.1"}"#,
                "stepSize \"1e-3\"",
            ),
            (
                r#"{"stepSize":"-0.1","filterType":"LOT_SIZE","maxQty":"1","minQty":"0.1"}"#,
                "stepSize \"-0.1\"",
            ),
            (
                r#"{"stepSize":"0.1","filterType":"LOT_SIZE","maxQty":"1","minQty":"2"}"#,
                "above maxQty",
            ),
            (r#"{"notional":"5","filterType":"MIN_NOTIONAL"}"#, "no LOT_SIZE"),
        ] {
            let info: wire::SymbolInfo = serde_json::from_str(&json(lot)).expect("json");
            let err = SymbolFilters::from_symbol_info(&info).expect_err("refused");
            assert!(err.to_string().contains("BAD"), "{err}");
            assert!(err.to_string().contains(problem), "{err} lacks {problem}");
        }
    }
}
