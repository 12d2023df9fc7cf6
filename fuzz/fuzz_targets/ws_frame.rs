//! Fuzzes the combined-stream frame decoder (`binance::stream::decode_frame`): any bytes the venue
//! (or a man in the middle) sends must decode or be a counted error, never a panic or a non-finite bar.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use perpdesk::{
    binance::{
        parse::SymbolTable,
        stream::{StreamEvent, decode_frame},
    },
    domain::{Symbol, SymbolId, SymbolStatus},
};
use rust_decimal::Decimal;

fn table() -> &'static SymbolTable {
    static TABLE: OnceLock<SymbolTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = SymbolTable::default();
        for name in ["BTCUSDT", "ETHUSDT"] {
            t.insert(Symbol {
                id: SymbolId(0),
                name: name.to_owned(),
                base_asset: name.trim_end_matches("USDT").to_owned(),
                quote_asset: "USDT".to_owned(),
                contract_type: "PERPETUAL".to_owned(),
                status: SymbolStatus::Trading,
                price_precision: 2,
                quantity_precision: 3,
                // Filters: the decoder under test never reads them.
                tick_size: Decimal::new(1, 2),
                step_size: Decimal::new(1, 3),
                min_qty: Decimal::new(1, 3),
                min_notional: Decimal::new(5, 0),
            });
        }
        t
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut out = Vec::new();
    if decode_frame(text, table(), &mut out).is_ok() {
        for ev in &out {
            if let StreamEvent::Kline(k) = ev {
                let b = k.bar;
                assert!([b.open, b.high, b.low, b.close, b.volume].iter().all(|v| v.is_finite()));
                assert!(b.low <= b.high);
            }
        }
    }
});
