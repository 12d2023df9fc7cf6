//! Wire structs of the signed (trading) side: REST order, position and account payloads, and the user
//! data stream events.
//!
//! Like `wire`, these mirror the venue's JSON field for field and are shared with the simulated
//! exchange, which serialises the very same structs. They are owned (`String`), not borrowed: trading
//! traffic is a few messages a minute, and owned values can be kept in the order book and journal.
//! Decimal values stay strings as the venue sends them; `orders` parses them with `rust_decimal`.
//! Fields the venue added over the years are `#[serde(default)]`, and no struct denies unknown fields,
//! so an older or newer payload still decodes.

use serde::{Deserialize, Serialize};

/// `GET /fapi/v1/leverageBracket`: every symbol's brackets in an array, or — when `symbol` was sent —
/// that symbol's entry as a bare object (the venue documents both shapes). Each entry is the risk
/// module's [`SymbolBracketsWire`](crate::risk::SymbolBracketsWire); numbers are JSON numbers.
///
/// ```json
/// [{"symbol": "ETHUSDT", "notionalCoef": 1.50, "brackets": [
///   {"bracket": 1, "initialLeverage": 75, "notionalCap": 10000, "notionalFloor": 0,
///    "maintMarginRatio": 0.0065, "cum": 0.0}]}]
/// ```
/// or, for `symbol=ETHUSDT`:
/// ```json
/// {"symbol": "ETHUSDT", "notionalCoef": 1.50, "brackets": [
///   {"bracket": 1, "initialLeverage": 75, "notionalCap": 10000, "notionalFloor": 0,
///    "maintMarginRatio": 0.0065, "cum": 0}]}
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum LeverageBrackets {
    All(Vec<crate::risk::SymbolBracketsWire>),
    One(crate::risk::SymbolBracketsWire),
}

impl LeverageBrackets {
    /// The entries, whichever shape the venue sent.
    pub fn into_vec(self) -> Vec<crate::risk::SymbolBracketsWire> {
        match self {
            Self::All(v) => v,
            Self::One(one) => vec![one],
        }
    }
}

/// `POST /fapi/v1/order`, `GET /fapi/v1/order`, `DELETE /fapi/v1/order` and each entry of
/// `GET /fapi/v1/openOrders`.
///
/// ```json
/// {"orderId": 12345678, "symbol": "BTCUSDT", "status": "NEW", "clientOrderId": "testOrder123",
///  "price": "50000.00", "avgPrice": "0.00", "origQty": "0.001", "executedQty": "0.000",
///  "cumQuote": "0.00", "timeInForce": "GTC", "type": "LIMIT", "reduceOnly": false,
///  "closePosition": false, "side": "BUY", "positionSide": "BOTH", "stopPrice": "0.00",
///  "workingType": "CONTRACT_PRICE", "priceProtect": false, "origType": "LIMIT", "priceMatch": "NONE",
///  "selfTradePreventionMode": "NONE", "goodTillDate": 0, "time": 1625474304765,
///  "updateTime": 1625474304765}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderResponse {
    pub order_id: i64,
    pub symbol: String,
    pub status: String,
    pub client_order_id: String,
    pub price: String,
    #[serde(default, deserialize_with = "nullable")]
    pub avg_price: String,
    pub orig_qty: String,
    pub executed_qty: String,
    #[serde(default, deserialize_with = "nullable")]
    pub cum_quote: String,
    pub time_in_force: String,
    #[serde(rename = "type")]
    pub order_type: String,
    #[serde(default)]
    pub reduce_only: bool,
    #[serde(default)]
    pub close_position: bool,
    pub side: String,
    #[serde(default = "both")]
    pub position_side: String,
    #[serde(default, deserialize_with = "nullable")]
    pub stop_price: String,
    #[serde(default, deserialize_with = "nullable")]
    pub working_type: String,
    #[serde(default, deserialize_with = "nullable")]
    pub orig_type: String,
    #[serde(default)]
    pub time: i64,
    #[serde(default)]
    pub update_time: i64,
}

fn both() -> String {
    "BOTH".to_owned()
}

/// A string field the venue sometimes sends as `null` (e.g. `"sp": null` on ADL orders): read as "".
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Option::<String>::deserialize(d).map(Option::unwrap_or_default)
}

/// One entry of `GET /fapi/v2/positionRisk` (v3 has the same fields that matter here).
///
/// ```json
/// {"symbol": "BTCUSDT", "positionAmt": "0.001", "entryPrice": "50000.0", "markPrice": "51000.0",
///  "unRealizedProfit": "1.00000000", "liquidationPrice": "45000.0", "leverage": "20",
///  "maxNotionalValue": "250000", "marginType": "cross", "isolatedMargin": "0.00000000",
///  "isAutoAddMargin": "false", "positionSide": "BOTH", "notional": "51.0", "isolatedWallet": "0",
///  "updateTime": 1625474304765, "breakEvenPrice": "50100.0"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionRisk {
    pub symbol: String,
    pub position_amt: String,
    pub entry_price: String,
    pub mark_price: String,
    #[serde(rename = "unRealizedProfit")]
    pub unrealized_profit: String,
    pub liquidation_price: String,
    #[serde(default, deserialize_with = "nullable")]
    pub leverage: String,
    #[serde(default, deserialize_with = "nullable")]
    pub margin_type: String,
    #[serde(default, deserialize_with = "nullable")]
    pub isolated_margin: String,
    #[serde(default = "both")]
    pub position_side: String,
    #[serde(default, deserialize_with = "nullable")]
    pub notional: String,
    #[serde(default, deserialize_with = "nullable")]
    pub isolated_wallet: String,
    #[serde(default)]
    pub update_time: i64,
}

/// One entry of `GET /fapi/v2/balance`.
///
/// ```json
/// {"accountAlias": "SgsR", "asset": "USDT", "balance": "122.12345678",
///  "crossWalletBalance": "122.12345678", "crossUnPnl": "0.00000000",
///  "availableBalance": "122.12345678", "maxWithdrawAmount": "122.12345678",
///  "marginAvailable": true, "updateTime": 1617939110373}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    #[serde(default, deserialize_with = "nullable")]
    pub account_alias: String,
    pub asset: String,
    pub balance: String,
    #[serde(default, deserialize_with = "nullable")]
    pub cross_wallet_balance: String,
    #[serde(default, rename = "crossUnPnl")]
    pub cross_un_pnl: String,
    pub available_balance: String,
    #[serde(default, deserialize_with = "nullable")]
    pub max_withdraw_amount: String,
    #[serde(default)]
    pub margin_available: bool,
    #[serde(default)]
    pub update_time: i64,
}

/// `GET /fapi/v2/account` (abridged to the totals, assets and positions the console uses).
///
/// ```json
/// {"feeTier": 0, "canTrade": true, "totalWalletBalance": "23.72469206",
///  "totalUnrealizedProfit": "0.00000000", "totalMarginBalance": "23.72469206",
///  "availableBalance": "23.72469206", "maxWithdrawAmount": "23.72469206",
///  "assets": [{"asset": "USDT", "walletBalance": "23.72469206", "unrealizedProfit": "0.00000000",
///              "marginBalance": "23.72469206", "availableBalance": "23.72469206"}],
///  "positions": [{"symbol": "BTCUSDT", "positionAmt": "0.000", "entryPrice": "0.0",
///                 "unrealizedProfit": "0.00000000", "leverage": "100", "isolated": true,
///                 "positionSide": "BOTH"}]}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    #[serde(default)]
    pub can_trade: bool,
    pub total_wallet_balance: String,
    pub total_unrealized_profit: String,
    pub total_margin_balance: String,
    pub available_balance: String,
    #[serde(default)]
    pub assets: Vec<AccountAsset>,
    #[serde(default)]
    pub positions: Vec<AccountPosition>,
}

/// An entry of [`AccountInfo::assets`] (raw JSON in the parent's doc comment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountAsset {
    pub asset: String,
    pub wallet_balance: String,
    pub unrealized_profit: String,
    pub margin_balance: String,
    pub available_balance: String,
}

/// An entry of [`AccountInfo::positions`] (raw JSON in the parent's doc comment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountPosition {
    pub symbol: String,
    pub position_amt: String,
    pub entry_price: String,
    pub unrealized_profit: String,
    pub leverage: String,
    #[serde(default)]
    pub isolated: bool,
    #[serde(default = "both")]
    pub position_side: String,
}

/// `POST /fapi/v1/leverage`.
///
/// ```json
/// {"leverage": 21, "maxNotionalValue": "1000000", "symbol": "BTCUSDT"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeverageResponse {
    pub leverage: u32,
    pub max_notional_value: String,
    pub symbol: String,
}

/// `POST /fapi/v1/marginType`, `POST /fapi/v1/positionSide/dual` (a success "error body").
///
/// ```json
/// {"code": 200, "msg": "success"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeMsg {
    pub code: i64,
    pub msg: String,
}

/// `GET /fapi/v1/positionSide/dual`.
///
/// ```json
/// {"dualSidePosition": true}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DualSide {
    pub dual_side_position: bool,
}

/// `POST /fapi/v1/listenKey` (and `PUT`, which answers the same shape on the current API).
///
/// ```json
/// {"listenKey": "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenKey {
    pub listen_key: String,
}

/// User data stream `ORDER_TRADE_UPDATE`.
///
/// ```json
/// {"e": "ORDER_TRADE_UPDATE", "T": 1568879465651, "E": 1568879465651,
///  "o": {"s": "BTCUSDT", "c": "TEST", "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "0.001",
///        "p": "7100.50", "ap": "7100.50", "sp": "0", "x": "TRADE", "X": "PARTIALLY_FILLED",
///        "i": 8886774, "l": "0.001", "z": "0.001", "L": "7100.50", "N": "USDT", "n": "0.01000000",
///        "T": 1568879465651, "t": 12345678, "b": "0", "a": "0", "m": true, "R": false,
///        "wt": "CONTRACT_PRICE", "ot": "LIMIT", "ps": "LONG", "cp": false, "AP": "0", "cr": "0",
///        "pP": false, "si": 0, "ss": 0, "rp": "12.34", "V": "EXPIRE_TAKER"}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTradeUpdate {
    #[serde(rename = "e")]
    pub event_type: String,
    #[serde(rename = "E")]
    pub event_time: i64,
    #[serde(rename = "T", default)]
    pub transaction_time: i64,
    #[serde(rename = "o")]
    pub order: OrderUpdate,
}

/// The `o` object of [`OrderTradeUpdate`] (raw JSON there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderUpdate {
    #[serde(rename = "s")]
    pub symbol: String,
    /// Client order id; venue-generated for liquidations (`autoclose-…`), ADL (`adl_autoclose…`) and
    /// delisting settlements (`settlement_autoclose-…`).
    #[serde(rename = "c")]
    pub client_order_id: String,
    #[serde(rename = "S")]
    pub side: String,
    #[serde(rename = "o")]
    pub order_type: String,
    #[serde(rename = "f", default, deserialize_with = "nullable")]
    pub time_in_force: String,
    #[serde(rename = "q")]
    pub orig_qty: String,
    #[serde(rename = "p", default, deserialize_with = "nullable")]
    pub price: String,
    #[serde(rename = "ap", default, deserialize_with = "nullable")]
    pub avg_price: String,
    #[serde(rename = "sp", default, deserialize_with = "nullable")]
    pub stop_price: String,
    /// Execution type: NEW, CANCELED, CALCULATED (liquidation), EXPIRED, TRADE, AMENDMENT.
    #[serde(rename = "x")]
    pub execution_type: String,
    /// Order status: `NEW`, `PARTIALLY_FILLED`, `FILLED`, `CANCELED`, `EXPIRED`, `EXPIRED_IN_MATCH`,
    /// `NEW_ADL`, …
    #[serde(rename = "X")]
    pub status: String,
    #[serde(rename = "i")]
    pub order_id: i64,
    #[serde(rename = "l", default, deserialize_with = "nullable")]
    pub last_qty: String,
    #[serde(rename = "z", default, deserialize_with = "nullable")]
    pub cum_qty: String,
    #[serde(rename = "L", default, deserialize_with = "nullable")]
    pub last_price: String,
    #[serde(rename = "N", default)]
    pub commission_asset: Option<String>,
    #[serde(rename = "n", default)]
    pub commission: Option<String>,
    #[serde(rename = "T", default)]
    pub trade_time: i64,
    #[serde(rename = "t", default)]
    pub trade_id: i64,
    #[serde(rename = "m", default)]
    pub maker: bool,
    #[serde(rename = "R", default)]
    pub reduce_only: bool,
    #[serde(rename = "wt", default, deserialize_with = "nullable")]
    pub working_type: String,
    #[serde(rename = "ot", default, deserialize_with = "nullable")]
    pub orig_type: String,
    #[serde(rename = "ps", default = "both")]
    pub position_side: String,
    #[serde(rename = "cp", default)]
    pub close_position: bool,
    #[serde(rename = "rp", default, deserialize_with = "nullable")]
    pub realized_profit: String,
}

/// User data stream `ACCOUNT_UPDATE`: only the balances and positions that changed.
///
/// ```json
/// {"e": "ACCOUNT_UPDATE", "T": 1564745798939, "E": 1564745798939,
///  "a": {"m": "ORDER",
///        "B": [{"a": "USDT", "wb": "122624.12345678", "cw": "100.12345678", "bc": "50.12345678"}],
///        "P": [{"s": "BTCUSDT", "pa": "20", "ep": "6563.6", "bep": "6563.559", "cr": "0",
///               "up": "2850.21200", "mt": "isolated", "iw": "13200.70726908", "ps": "LONG"}]}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUpdate {
    #[serde(rename = "e")]
    pub event_type: String,
    #[serde(rename = "E")]
    pub event_time: i64,
    #[serde(rename = "T", default)]
    pub transaction_time: i64,
    #[serde(rename = "a")]
    pub data: AccountUpdateData,
}

/// The `a` object of [`AccountUpdate`] (raw JSON there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUpdateData {
    /// Reason: `ORDER`, `FUNDING_FEE`, `DEPOSIT`, `WITHDRAW`, `MARGIN_TRANSFER`, `MARGIN_TYPE_CHANGE`, …
    #[serde(rename = "m")]
    pub reason: String,
    #[serde(rename = "B", default)]
    pub balances: Vec<BalanceUpdate>,
    #[serde(rename = "P", default)]
    pub positions: Vec<PositionUpdate>,
}

/// An entry of `a.B` (raw JSON in [`AccountUpdate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceUpdate {
    #[serde(rename = "a")]
    pub asset: String,
    #[serde(rename = "wb")]
    pub wallet_balance: String,
    #[serde(rename = "cw", default, deserialize_with = "nullable")]
    pub cross_wallet_balance: String,
    #[serde(rename = "bc", default, deserialize_with = "nullable")]
    pub balance_change: String,
}

/// An entry of `a.P` (raw JSON in [`AccountUpdate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionUpdate {
    #[serde(rename = "s")]
    pub symbol: String,
    #[serde(rename = "pa")]
    pub position_amt: String,
    #[serde(rename = "ep")]
    pub entry_price: String,
    #[serde(rename = "bep", default, deserialize_with = "nullable")]
    pub break_even_price: String,
    #[serde(rename = "cr", default, deserialize_with = "nullable")]
    pub accumulated_realized: String,
    #[serde(rename = "up", default, deserialize_with = "nullable")]
    pub unrealized_pnl: String,
    #[serde(rename = "mt", default, deserialize_with = "nullable")]
    pub margin_type: String,
    #[serde(rename = "iw", default, deserialize_with = "nullable")]
    pub isolated_wallet: String,
    #[serde(rename = "ps", default = "both")]
    pub position_side: String,
}

/// User data stream `listenKeyExpired` (the older form has no `listenKey`).
///
/// ```json
/// {"e": "listenKeyExpired", "E": 1736996475556, "listenKey": "WsCMN0a4KHUPTQuX6IUnqEZfB1inxmv1qR4kbf1LuEjur5VdbzqvyxqG9TSjVVxv"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenKeyExpired {
    #[serde(rename = "e")]
    pub event_type: String,
    #[serde(rename = "E")]
    pub event_time: i64,
    #[serde(rename = "listenKey", default, skip_serializing_if = "Option::is_none")]
    pub listen_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leverage_brackets_parse_in_both_documented_shapes() {
        // The docs' examples: an array for all symbols, a bare object when `symbol` is sent (with
        // `cum` once as `0.0`, once as `0`).
        let all = r#"[{"symbol": "ETHUSDT", "notionalCoef": 1.50, "brackets": [
            {"bracket": 1, "initialLeverage": 75, "notionalCap": 10000, "notionalFloor": 0,
             "maintMarginRatio": 0.0065, "cum": 0.0}]}]"#;
        let one = r#"{"symbol": "ETHUSDT", "notionalCoef": 1.50, "brackets": [
            {"bracket": 1, "initialLeverage": 75, "notionalCap": 10000, "notionalFloor": 0,
             "maintMarginRatio": 0.0065, "cum": 0}]}"#;
        let all: LeverageBrackets = serde_json::from_str(all).expect("array shape");
        let one: LeverageBrackets = serde_json::from_str(one).expect("object shape");
        assert!(matches!(all, LeverageBrackets::All(_)));
        assert!(matches!(one, LeverageBrackets::One(_)));
        let (all, one) = (all.into_vec(), one.into_vec());
        assert_eq!(all, one);
        assert_eq!(all[0].notional_coef, Some(1.5));
        let b = all[0].brackets[0];
        assert_eq!(
            (b.initial_leverage, b.notional_cap, b.maint_margin_ratio),
            (75, 10_000.0, 0.0065)
        );
    }
}
