//! Fuzzes the exchangeInfo decoder and the symbol table built from it: a malformed listing is skipped
//! and reported, never fatal, and never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use perpdesk::binance::{parse::SymbolTable, wire};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(info) = serde_json::from_str::<wire::ExchangeInfo>(text) {
        let (table, errors) = SymbolTable::from_exchange_info(&info);
        assert!(table.len() + errors.len() <= info.symbols.len());
        let mut merged = table.clone();
        let _ = merged.merge(&info);
        assert_eq!(merged.len(), table.len());
    }
});
