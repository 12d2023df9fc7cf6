//! Wire structs: serde mirrors of Binance USDT-M JSON, field for field, with the venue's names.
//!
//! These are the only types that know the venue's spelling. `binance::parse` turns them into domain
//! types; the simulated exchange serialises the very same structs, so a field the client reads is by
//! construction a field the simulator writes. Hot-path payloads (stream frames) borrow `&str` from the
//! frame buffer; prices stay strings here, as the venue sends them, and become numbers in `parse`.

use std::fmt;

use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, IgnoredAny, MapAccess, Visitor},
};

/// Error body of every failed REST call.
///
/// ```json
/// {"code": -1121, "msg": "Invalid symbol."}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub code: i64,
    pub msg: String,
}

/// `GET /fapi/v1/time`.
///
/// ```json
/// {"serverTime": 1499827319559}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTime {
    pub server_time: i64,
}

/// `GET /fapi/v1/exchangeInfo` (abridged: `assets` and other unused fields are ignored).
///
/// ```json
/// {"timezone": "UTC", "serverTime": 1626858243909, "futuresType": "U_MARGINED",
///  "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}],
///  "exchangeFilters": [], "symbols": [ … ]}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeInfo {
    pub timezone: String,
    pub server_time: i64,
    #[serde(default)]
    pub futures_type: Option<String>,
    pub rate_limits: Vec<RateLimit>,
    #[serde(default)]
    pub exchange_filters: Vec<serde_json::Value>,
    pub symbols: Vec<SymbolInfo>,
}

/// One entry of `exchangeInfo.rateLimits`.
///
/// ```json
/// {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    pub rate_limit_type: String,
    pub interval: String,
    pub interval_num: u32,
    pub limit: u32,
}

/// One contract of `exchangeInfo.symbols`.
///
/// ```json
/// {"symbol": "BTCUSDT", "pair": "BTCUSDT", "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
///  "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
///  "requiredMarginPercent": "5.0000", "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT",
///  "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
///  "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
///  "liquidationFee": "0.012000", "marketTakeBound": "0.30",
///  "filters": [{"minPrice": "556.72", "maxPrice": "1000000", "filterType": "PRICE_FILTER", "tickSize": "0.01"}, …],
///  "orderTypes": ["LIMIT", "MARKET", …], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymbolInfo {
    pub symbol: String,
    #[serde(default)]
    pub pair: String,
    #[serde(default)]
    pub contract_type: String,
    #[serde(default)]
    pub delivery_date: i64,
    #[serde(default)]
    pub onboard_date: i64,
    pub status: String,
    #[serde(default)]
    pub maint_margin_percent: Option<String>,
    #[serde(default)]
    pub required_margin_percent: Option<String>,
    pub base_asset: String,
    pub quote_asset: String,
    #[serde(default)]
    pub margin_asset: String,
    pub price_precision: u32,
    pub quantity_precision: u32,
    #[serde(default)]
    pub base_asset_precision: u32,
    #[serde(default)]
    pub quote_precision: u32,
    #[serde(default)]
    pub underlying_type: Option<String>,
    #[serde(default)]
    pub underlying_sub_type: Vec<String>,
    #[serde(default)]
    pub settle_plan: Option<i64>,
    #[serde(default)]
    pub trigger_protect: Option<String>,
    #[serde(default)]
    pub liquidation_fee: Option<String>,
    #[serde(default)]
    pub market_take_bound: Option<String>,
    pub filters: Vec<SymbolFilter>,
    #[serde(default)]
    pub order_types: Vec<String>,
    #[serde(default)]
    pub time_in_force: Vec<String>,
}

/// A symbol filter, tagged by `filterType`. Filters this console does not use are kept as `Other`.
///
/// ```json
/// {"stepSize": "0.001", "filterType": "LOT_SIZE", "maxQty": "1000", "minQty": "0.001"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "filterType", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SymbolFilter {
    #[serde(rename_all = "camelCase")]
    PriceFilter {
        min_price: String,
        max_price: String,
        tick_size: String,
    },
    #[serde(rename_all = "camelCase")]
    LotSize {
        min_qty: String,
        max_qty: String,
        step_size: String,
    },
    #[serde(rename_all = "camelCase")]
    MarketLotSize {
        min_qty: String,
        max_qty: String,
        step_size: String,
    },
    MaxNumOrders {
        limit: u32,
    },
    MaxNumAlgoOrders {
        limit: u32,
    },
    MinNotional {
        notional: String,
    },
    #[serde(rename_all = "camelCase")]
    PercentPrice {
        multiplier_up: String,
        multiplier_down: String,
        multiplier_decimal: String,
    },
    #[serde(other)]
    Other,
}

/// `GET /fapi/v1/ticker/24hr` (one element; without `symbol` the endpoint returns an array).
///
/// ```json
/// {"symbol": "BTCUSDT", "priceChange": "-94.99999800", "priceChangePercent": "-95.960",
///  "weightedAvgPrice": "0.29628482", "lastPrice": "4.00000200", "lastQty": "200.00000000",
///  "openPrice": "99.00000000", "highPrice": "100.00000000", "lowPrice": "0.10000000",
///  "volume": "8913.30000000", "quoteVolume": "15.30000000", "openTime": 1499783499040,
///  "closeTime": 1499869899040, "firstId": 28385, "lastId": 28460, "count": 76}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticker24hr {
    pub symbol: String,
    pub price_change: String,
    pub price_change_percent: String,
    pub weighted_avg_price: String,
    pub last_price: String,
    pub last_qty: String,
    pub open_price: String,
    pub high_price: String,
    pub low_price: String,
    pub volume: String,
    pub quote_volume: String,
    pub open_time: i64,
    pub close_time: i64,
    pub first_id: i64,
    pub last_id: i64,
    pub count: i64,
}

/// One row of `GET /fapi/v1/klines`: a JSON array, prices and volumes as strings.
///
/// ```json
/// [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100", "148976.11427815",
///  1499644799999, "2434.19055334", 308, "1756.87402397", "28.46694368", "17928899.62484339"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KlineRow(
    pub i64,
    pub String,
    pub String,
    pub String,
    pub String,
    pub String,
    pub i64,
    pub String,
    pub u64,
    pub String,
    pub String,
    pub String,
);

/// `GET /fapi/v1/premiumIndex` (one element; without `symbol` the endpoint returns an array).
///
/// ```json
/// {"symbol": "BTCUSDT", "markPrice": "11793.63104562", "indexPrice": "11781.80495970",
///  "estimatedSettlePrice": "11781.16138815", "lastFundingRate": "0.00038246",
///  "nextFundingTime": 1597392000000, "interestRate": "0.00010000", "time": 1597370495002}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PremiumIndex {
    pub symbol: String,
    pub mark_price: String,
    pub index_price: String,
    pub estimated_settle_price: String,
    pub last_funding_rate: String,
    pub next_funding_time: i64,
    pub interest_rate: String,
    pub time: i64,
}

/// `<symbol>@kline_<interval>` stream event.
///
/// ```json
/// {"e": "kline", "E": 1638747660000, "s": "BTCUSDT",
///  "k": {"t": 1638747660000, "T": 1638747719999, "s": "BTCUSDT", "i": "1m", "f": 100, "L": 200,
///        "o": "0.0010", "c": "0.0020", "h": "0.0025", "l": "0.0010", "v": "1000", "n": 100, "x": true,
///        "q": "1.0000", "V": "500", "Q": "0.500", "B": "123456"}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KlineEvent<'a> {
    #[serde(rename = "e", borrow)]
    pub event_type: &'a str,
    #[serde(rename = "E")]
    pub event_time: i64,
    #[serde(rename = "s", borrow)]
    pub symbol: &'a str,
    #[serde(rename = "k", borrow)]
    pub kline: KlineData<'a>,
}

/// The `k` object of a kline event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KlineData<'a> {
    #[serde(rename = "t")]
    pub open_time: i64,
    #[serde(rename = "T")]
    pub close_time: i64,
    #[serde(rename = "s", borrow)]
    pub symbol: &'a str,
    #[serde(rename = "i", borrow)]
    pub interval: &'a str,
    #[serde(rename = "f")]
    pub first_trade_id: i64,
    #[serde(rename = "L")]
    pub last_trade_id: i64,
    #[serde(rename = "o", borrow)]
    pub open: &'a str,
    #[serde(rename = "c", borrow)]
    pub close: &'a str,
    #[serde(rename = "h", borrow)]
    pub high: &'a str,
    #[serde(rename = "l", borrow)]
    pub low: &'a str,
    #[serde(rename = "v", borrow)]
    pub volume: &'a str,
    #[serde(rename = "n")]
    pub trades: u64,
    #[serde(rename = "x")]
    pub closed: bool,
    #[serde(rename = "q", borrow)]
    pub quote_volume: &'a str,
    #[serde(rename = "V", borrow)]
    pub taker_buy_volume: &'a str,
    #[serde(rename = "Q", borrow)]
    pub taker_buy_quote_volume: &'a str,
    #[serde(rename = "B", borrow)]
    pub ignore: &'a str,
}

/// `<symbol>@markPrice` / `<symbol>@markPrice@1s` stream event.
///
/// ```json
/// {"e": "markPriceUpdate", "E": 1562305380000, "s": "BTCUSDT", "p": "11794.15000000",
///  "i": "11784.62659091", "P": "11784.25641265", "r": "0.00038167", "T": 1562306400000}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkPriceEvent<'a> {
    #[serde(rename = "e", borrow)]
    pub event_type: &'a str,
    #[serde(rename = "E")]
    pub event_time: i64,
    #[serde(rename = "s", borrow)]
    pub symbol: &'a str,
    #[serde(rename = "p", borrow)]
    pub mark_price: &'a str,
    #[serde(rename = "i", borrow)]
    pub index_price: &'a str,
    #[serde(rename = "P", borrow)]
    pub estimated_settle_price: &'a str,
    #[serde(rename = "r", borrow)]
    pub funding_rate: &'a str,
    #[serde(rename = "T")]
    pub next_funding_time: i64,
}

/// One element of `!ticker@arr` (and the `<symbol>@ticker` event).
///
/// ```json
/// {"e": "24hrTicker", "E": 123456789, "s": "BTCUSDT", "p": "0.0015", "P": "250.00", "w": "0.0018",
///  "c": "0.0025", "Q": "10", "o": "0.0010", "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18",
///  "O": 0, "C": 86400000, "F": 0, "L": 18150, "n": 18151}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickerEvent<'a> {
    #[serde(rename = "e", borrow)]
    pub event_type: &'a str,
    #[serde(rename = "E")]
    pub event_time: i64,
    #[serde(rename = "s", borrow)]
    pub symbol: &'a str,
    #[serde(rename = "p", borrow)]
    pub price_change: &'a str,
    #[serde(rename = "P", borrow)]
    pub price_change_percent: &'a str,
    #[serde(rename = "w", borrow)]
    pub weighted_avg_price: &'a str,
    #[serde(rename = "c", borrow)]
    pub last_price: &'a str,
    #[serde(rename = "Q", borrow)]
    pub last_qty: &'a str,
    #[serde(rename = "o", borrow)]
    pub open_price: &'a str,
    #[serde(rename = "h", borrow)]
    pub high_price: &'a str,
    #[serde(rename = "l", borrow)]
    pub low_price: &'a str,
    #[serde(rename = "v", borrow)]
    pub volume: &'a str,
    #[serde(rename = "q", borrow)]
    pub quote_volume: &'a str,
    #[serde(rename = "O")]
    pub open_time: i64,
    #[serde(rename = "C")]
    pub close_time: i64,
    #[serde(rename = "F")]
    pub first_trade_id: i64,
    #[serde(rename = "L")]
    pub last_trade_id: i64,
    #[serde(rename = "n")]
    pub count: i64,
}

/// A live subscription request sent over a stream connection.
///
/// ```json
/// {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@depth"], "id": 1}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRequest {
    pub method: String,
    #[serde(default)]
    pub params: Vec<String>,
    pub id: serde_json::Value,
}

/// Error object inside a stream reply.
///
/// ```json
/// {"code": 2, "msg": "Invalid request: unknown variant `SUBSCRIBEX`"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamErrorBody {
    pub code: i64,
    pub msg: String,
}

/// A frame on a combined-stream connection, decoded in one pass.
///
/// Data frames are wrapped as `{"stream": "<name>", "data": <payload>}`; replies to live requests are
/// `{"result": null, "id": 1}` or `{"error": {...}, "id": 1}`. Binance writes `stream` before `data`,
/// which lets the decoder pick the payload type from the stream name without buffering.
#[derive(Debug, Clone, PartialEq)]
pub enum CombinedFrame<'a> {
    Kline(KlineEvent<'a>),
    MarkPrice(MarkPriceEvent<'a>),
    Tickers(Vec<TickerEvent<'a>>),
    /// A reply to `SUBSCRIBE` / `UNSUBSCRIBE` / `LIST_SUBSCRIPTIONS`.
    Reply {
        id: serde_json::Value,
        result: serde_json::Value,
        error: Option<StreamErrorBody>,
    },
    /// A data frame for a stream this console does not decode (e.g. `@aggTrade`): counted, skipped.
    Unhandled,
}

/// Which payload a stream name carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    Kline,
    MarkPrice,
    TickerArr,
    Other,
}

fn stream_kind(name: &str) -> StreamKind {
    if name.contains("@kline_") {
        StreamKind::Kline
    } else if name.contains("@markPrice") && !name.starts_with('!') {
        StreamKind::MarkPrice
    } else if name == "!ticker@arr" {
        StreamKind::TickerArr
    } else {
        StreamKind::Other
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for CombinedFrame<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(CombinedFrameVisitor(std::marker::PhantomData))
    }
}

struct CombinedFrameVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for CombinedFrameVisitor<'a> {
    type Value = CombinedFrame<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a combined-stream frame or a request reply")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut kind: Option<StreamKind> = None;
        let mut frame: Option<CombinedFrame<'a>> = None;
        let mut deferred: Option<&'de serde_json::value::RawValue> = None;
        let mut id: Option<serde_json::Value> = None;
        let mut result: Option<serde_json::Value> = None;
        let mut error: Option<StreamErrorBody> = None;
        while let Some(key) = map.next_key::<&'de str>()? {
            match key {
                "stream" => {
                    let name: &'de str = map.next_value()?;
                    kind = Some(stream_kind(name));
                }
                "data" => match kind {
                    Some(k) => frame = Some(decode_payload(k, &mut map)?),
                    // `data` before `stream`: keep the raw text and decode it once the name is known.
                    None => deferred = Some(map.next_value()?),
                },
                "id" => id = Some(map.next_value()?),
                "result" => result = Some(map.next_value()?),
                "error" => error = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(frame) = frame {
            return Ok(frame);
        }
        if let (Some(raw), Some(k)) = (deferred, kind) {
            return decode_raw(k, raw.get()).map_err(de::Error::custom);
        }
        if let Some(id) = id {
            return Ok(CombinedFrame::Reply {
                id,
                result: result.unwrap_or(serde_json::Value::Null),
                error,
            });
        }
        Err(de::Error::custom("frame has neither stream+data nor id"))
    }
}

fn decode_payload<'de: 'a, 'a, M: MapAccess<'de>>(
    kind: StreamKind,
    map: &mut M,
) -> Result<CombinedFrame<'a>, M::Error> {
    Ok(match kind {
        StreamKind::Kline => CombinedFrame::Kline(map.next_value()?),
        StreamKind::MarkPrice => CombinedFrame::MarkPrice(map.next_value()?),
        StreamKind::TickerArr => CombinedFrame::Tickers(map.next_value()?),
        StreamKind::Other => {
            map.next_value::<IgnoredAny>()?;
            CombinedFrame::Unhandled
        }
    })
}

fn decode_raw(kind: StreamKind, raw: &str) -> Result<CombinedFrame<'_>, serde_json::Error> {
    Ok(match kind {
        StreamKind::Kline => CombinedFrame::Kline(serde_json::from_str(raw)?),
        StreamKind::MarkPrice => CombinedFrame::MarkPrice(serde_json::from_str(raw)?),
        StreamKind::TickerArr => CombinedFrame::Tickers(serde_json::from_str(raw)?),
        StreamKind::Other => CombinedFrame::Unhandled,
    })
}

/// Serialisable wrapper used by the simulator to write combined-stream frames.
#[derive(Debug, Serialize)]
pub struct CombinedOut<'a, T: Serialize> {
    pub stream: &'a str,
    pub data: &'a T,
}

/// Reply to a live stream request, as the simulator writes it.
///
/// ```json
/// {"result": null, "id": 1}
/// ```
#[derive(Debug, Serialize)]
pub struct StreamReplyOut<'a> {
    pub result: &'a serde_json::Value,
    pub id: &'a serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_kline_frame_decodes_in_one_pass() {
        let raw = r#"{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":0,"T":59999,"s":"BTCUSDT","i":"1m","f":1,"L":2,"o":"1.0","c":"2.0","h":"2.5","l":"0.5","v":"10","n":3,"x":false,"q":"15","V":"5","Q":"7","B":"0"}}}"#;
        let frame: CombinedFrame<'_> = serde_json::from_str(raw).expect("decodes");
        let CombinedFrame::Kline(k) = frame else {
            panic!("not a kline: {frame:?}")
        };
        assert_eq!(k.kline.close, "2.0");
        assert!(!k.kline.closed);
    }

    #[test]
    fn data_before_stream_still_decodes() {
        let raw = r#"{"data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1","i":"1","P":"1","r":"0.0001","T":2},"stream":"btcusdt@markPrice@1s"}"#;
        let frame: CombinedFrame<'_> = serde_json::from_str(raw).expect("decodes");
        assert!(matches!(frame, CombinedFrame::MarkPrice(m) if m.funding_rate == "0.0001"));
    }

    #[test]
    fn replies_and_unknown_streams() {
        let reply: CombinedFrame<'_> = serde_json::from_str(r#"{"result":null,"id":7}"#).expect("reply");
        assert!(matches!(reply, CombinedFrame::Reply { ref id, .. } if id == 7));
        let other: CombinedFrame<'_> =
            serde_json::from_str(r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade"}}"#).expect("other");
        assert_eq!(other, CombinedFrame::Unhandled);
        assert!(serde_json::from_str::<CombinedFrame<'_>>(r#"{"foo":1}"#).is_err());
    }
}
