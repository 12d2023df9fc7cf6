//! Every user-data-stream fixture in `../shared/fixtures/binance/ws/` decodes, and applying it to a
//! `UserBook` never fails a lookup: liquidation (`autoclose-`), ADL (`adl_autoclose`) and settlement
//! (`settlement_autoclose-`, `delivery_autoclose-`) orders move the position as external fills. The
//! REST fixtures of the trading side decode into the `trade_wire` structs.

mod common;

use std::{path::Path, str::FromStr};

use perpdesk::binance::{
    trade_wire::{AccountInfo, Balance, LeverageResponse, ListenKey, OrderResponse, PositionRisk},
    user_stream::{BookChange, OrderOrigin, UserBook, UserEvent, decode_user_event},
};
use rust_decimal::Decimal;

fn is_user_fixture(name: &str) -> bool {
    name.starts_with("crate_user_")
        || name.starts_with("py_ws_futures_order_update")
        || name.starts_with("py_ws_futures_algo_update")
        || name.starts_with("py_ws_futures_trade_lite")
        || name.starts_with("user_listen_key")
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("read fixture dir")
        .map(|e| e.expect("entry").path())
        .collect();
    out.sort();
    out
}

#[test]
fn every_user_data_fixture_decodes_and_applies() {
    let Some(ws) = common::shared_path("fixtures/binance/ws") else {
        return;
    };
    let mut decoded = 0;
    let mut venue_fills = 0;
    for dir in ["nautilus", "docs_misc"] {
        for path in files(&ws.join(dir)) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if !is_user_fixture(&name) {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read");
            let ev = decode_user_event(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            decoded += 1;
            match (&ev, name.as_str()) {
                (UserEvent::OrderTradeUpdate(_), n) => assert!(n.contains("order_update"), "{n}"),
                (UserEvent::AccountUpdate(_), n) => assert!(n.contains("account_update"), "{n}"),
                (UserEvent::ListenKeyExpired(_), n) => assert!(n.contains("listen_key"), "{n}"),
                (UserEvent::Other(e), _) => assert!(e == "ALGO_UPDATE" || e == "TRADE_LITE", "{name}: {e}"),
            }
            let mut book = UserBook::new();
            let change = book.apply(&ev).unwrap_or_else(|e| panic!("{name}: {e}"));
            if let UserEvent::OrderTradeUpdate(u) = &ev {
                let origin = OrderOrigin::of(&u.order.client_order_id);
                let venue_made = name.contains("adl")
                    || name.contains("calculated")
                    || name.contains("liquidation")
                    || name.contains("settlement")
                    || name.contains("delivery")
                    || name.contains("insurance");
                assert_eq!(origin != OrderOrigin::Client, venue_made, "{name}: {origin:?}");
                if let BookChange::Fill {
                    signed_qty, origin, ..
                } = change
                {
                    assert_eq!(
                        book.position(
                            &u.order.symbol,
                            perpdesk::binance::orders::PositionSide::from_venue(&u.order.position_side)
                                .unwrap_or(perpdesk::binance::orders::PositionSide::Both)
                        ),
                        signed_qty
                    );
                    if origin != OrderOrigin::Client {
                        venue_fills += 1;
                        assert_eq!(book.external_fills, 1, "{name}");
                    }
                }
            }
        }
    }
    assert!(decoded >= 30, "only {decoded} user fixtures");
    assert!(venue_fills >= 5, "only {venue_fills} venue-generated fills");
}

#[test]
fn trading_rest_fixtures_decode() {
    let Some(rest) = common::shared_path("fixtures/binance/rest") else {
        return;
    };
    let read = |rel: &str| std::fs::read_to_string(rest.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let o: OrderResponse = serde_json::from_str(&read("nautilus/crate_order_response.json")).expect("order");
    assert_eq!(
        (o.order_id, o.status.as_str(), o.position_side.as_str()),
        (12_345_678, "NEW", "BOTH")
    );
    for rel in [
        "binance_connector_rust/new_order.json",
        "binance_connector_rust/query_order.json",
        "binance_connector_rust/cancel_order.json",
    ] {
        let o: OrderResponse = serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert!(!o.client_order_id.is_empty(), "{rel}");
    }
    let open: Vec<OrderResponse> =
        serde_json::from_str(&read("binance_connector_rust/current_all_open_orders.json"))
            .expect("open orders");
    assert!(!open.is_empty());
    let risk: Vec<PositionRisk> =
        serde_json::from_str(&read("nautilus/crate_position_risk.json")).expect("risk");
    assert_eq!(
        Decimal::from_str(&risk[0].position_amt).expect("d"),
        Decimal::new(1, 3)
    );
    let risk_v2: Vec<PositionRisk> =
        serde_json::from_str(&read("binance_connector_rust/position_information_v2.json")).expect("risk v2");
    assert!(!risk_v2.is_empty());
    let bal: Vec<Balance> = serde_json::from_str(&read("nautilus/crate_balance.json")).expect("balance");
    assert_eq!(bal[0].asset, "USDT");
    let acct: AccountInfo =
        serde_json::from_str(&read("binance_connector_rust/account_information_v2.json")).expect("account");
    assert!(!acct.total_wallet_balance.is_empty());
    let lev: LeverageResponse =
        serde_json::from_str(&read("binance_connector_rust/change_initial_leverage.json")).expect("leverage");
    assert_eq!(lev.leverage, 21);
    let key: ListenKey =
        serde_json::from_str(&read("binance_connector_rust/start_user_data_stream.json")).expect("listenKey");
    assert!(!key.listen_key.is_empty());
}
