//! Signing and the rate governor: the per-request costs the signed REST client adds.
//!
//! * HMAC-SHA256 over the venue's example payload (keyed state built once, cloned per request);
//! * Ed25519 over the same payload;
//! * a whole order's wire form: `NewOrder::params` → form encoding → HMAC signature;
//! * `RateGovernor::acquire` in steady state (a sliding window holding ~1 000 entries) and
//!   `on_headers` with a response's `X-MBX-*` headers.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use perpdesk::binance::{
    filters::OrderSide, governor::RateGovernor, orders::NewOrder, secret::SecretString, sign::Signer,
    signed::encode_params,
};
use rust_decimal::Decimal;

const SECRET: &str = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";
const PAYLOAD: &str = "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC&recvWindow=5000&timestamp=1591702613943";

fn signing(c: &mut Criterion) {
    let hmac = Signer::hmac(&SecretString::new(SECRET.into())).expect("key");
    c.bench_function("sign/hmac_sha256_example_payload", |b| {
        b.iter(|| black_box(hmac.signature(black_box(PAYLOAD), "")));
    });
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let pem = ed25519_dalek::pkcs8::EncodePrivateKey::to_pkcs8_pem(
        &key,
        ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF,
    )
    .expect("pem");
    let ed = Signer::ed25519_from_pem(&SecretString::new(pem.to_string())).expect("ed25519");
    c.bench_function("sign/ed25519_example_payload", |b| {
        b.iter(|| black_box(ed.signature(black_box(PAYLOAD), "")));
    });
    let order = NewOrder::limit(
        "BTCUSDT",
        OrderSide::Buy,
        Decimal::new(123, 3),
        Decimal::new(650_001, 1),
    )
    .reduce_only();
    c.bench_function("sign/order_params_encode_and_hmac", |b| {
        b.iter(|| {
            let mut p = black_box(&order).params("pd-mx4fm10v-1f").expect("params");
            p.push(("recvWindow", "5000".to_owned()));
            p.push(("timestamp", "1591702613943".to_owned()));
            let q = encode_params(&p);
            black_box(hmac.signed_query(&q, ""))
        });
    });
}

fn governor(c: &mut Criterion) {
    c.bench_function("governor/acquire_steady_state", |b| {
        let mut g = RateGovernor::binance_defaults();
        let mut now = 0_i64;
        // Warm the sliding window: ~1 000 requests spread over the last minute.
        for _ in 0..1_000 {
            now += 60;
            let _ = g.acquire(1, 0, now);
        }
        b.iter(|| {
            now += 60;
            black_box(g.acquire(1, 0, now)).ok();
        });
    });
    c.bench_function("governor/on_headers_3_headers", |b| {
        let mut g = RateGovernor::binance_defaults();
        let headers = [
            ("x-mbx-used-weight-1m", "1234"),
            ("x-mbx-order-count-10s", "3"),
            ("x-mbx-order-count-1m", "17"),
        ];
        let mut now = 0_i64;
        b.iter(|| {
            now += 50;
            g.on_headers(black_box(headers), now);
        });
    });
}

criterion_group!(benches, signing, governor);
criterion_main!(benches);
