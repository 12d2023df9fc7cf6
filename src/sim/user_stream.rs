//! The simulated exchange's user data stream: listenKeys with the venue's lifetime rules, and the
//! `/ws/<listenKey>` WebSocket that pushes the account's `ORDER_TRADE_UPDATE` / `ACCOUNT_UPDATE`
//! events.
//!
//! Rules as documented (PROTOCOL.md §6): a key lives 60 minutes from creation or the last keep-alive;
//! `POST` while a key is active returns the same key and extends it; `PUT` of an unknown or expired
//! key is `-1125`. When a key expires, its connections receive `listenKeyExpired` and are closed, and
//! the next `POST` creates a new key. Key lifetime is measured on the wall clock (the venue's), not the
//! simulated market clock, which may run faster.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use tokio::sync::{broadcast, watch};

use crate::{binance::trade_wire::ListenKeyExpired, domain::TimestampMs};

/// Characters of a generated listenKey.
const KEY_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Listen keys of the (single) simulated account.
#[derive(Debug)]
pub struct ListenKeys {
    validity_ms: i64,
    active: Option<(String, TimestampMs)>,
    rng: rand_chacha::ChaCha8Rng,
}

impl ListenKeys {
    pub fn new(validity: Duration, seed: u64) -> Self {
        Self {
            validity_ms: i64::try_from(validity.as_millis()).unwrap_or(i64::MAX / 4),
            active: None,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn live(&mut self, now: TimestampMs) -> Option<&mut (String, TimestampMs)> {
        if self.active.as_ref().is_some_and(|(_, exp)| now >= *exp) {
            self.active = None;
        }
        self.active.as_mut()
    }

    /// `POST`: the active key, extended, or a new one.
    pub fn create(&mut self, now: TimestampMs) -> String {
        let validity = self.validity_ms;
        if let Some((k, exp)) = self.live(now) {
            *exp = now + validity;
            return k.clone();
        }
        let key: String = (0..64)
            .map(|_| char::from(KEY_CHARS[self.rng.random_range(0..KEY_CHARS.len())]))
            .collect();
        self.active = Some((key.clone(), now + validity));
        key
    }

    /// `PUT`: extends `key`; false (→ `-1125`) if it is not the live key.
    pub fn keepalive(&mut self, key: &str, now: TimestampMs) -> bool {
        let validity = self.validity_ms;
        match self.live(now) {
            Some((k, exp)) if k == key => {
                *exp = now + validity;
                true
            }
            _ => false,
        }
    }

    /// The live key, if any (the current API identifies the key by the API key alone).
    pub fn current(&mut self, now: TimestampMs) -> Option<String> {
        self.live(now).map(|(k, _)| k.clone())
    }

    /// `DELETE`: closes `key`.
    pub fn close(&mut self, key: &str) -> bool {
        if self.active.as_ref().is_some_and(|(k, _)| k == key) {
            self.active = None;
            true
        } else {
            false
        }
    }

    /// When `key` expires, if it is live.
    pub fn expires_at(&mut self, key: &str, now: TimestampMs) -> Option<TimestampMs> {
        self.live(now).filter(|(k, _)| k == key).map(|(_, exp)| *exp)
    }

    /// Expires the live key now (a fault for tests: the venue dropped it).
    pub fn expire_now(&mut self) {
        self.active = None;
    }
}

/// Serves one user-data connection: forwards account events until the key expires (then
/// `listenKeyExpired` and a close), the client leaves, or the server shuts down.
pub async fn serve(
    socket: WebSocket,
    key: String,
    mut events: broadcast::Receiver<String>,
    expires_at: impl Fn(&str) -> Option<TimestampMs> + Send,
    mut shutdown: watch::Receiver<bool>,
) {
    let (mut tx, mut rx) = socket.split();
    let mut check = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(text) => {
                    if tx.send(Message::text(text)).await.is_err() { return; }
                }
                // A slow reader missed events: the venue would not replay them either; the client
                // reconciles after its reconnect.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(Message::Close(Some(CloseFrame { code: 1011, reason: "lagged".into() }))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            msg = rx.next() => match msg {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            _ = check.tick() => {
                if expires_at(&key).is_none() {
                    let ev = ListenKeyExpired {
                        event_type: "listenKeyExpired".into(),
                        event_time: crate::domain::now_ms(),
                        listen_key: Some(key.clone()),
                    };
                    if let Ok(text) = serde_json::to_string(&ev) {
                        let _ = tx.send(Message::text(text)).await;
                    }
                    let _ = tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "listenKey expired".into() }))).await;
                    return;
                }
            }
            _ = shutdown.changed() => {
                let _ = tx.send(Message::Close(Some(CloseFrame { code: 1001, reason: "server shutting down".into() }))).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_venue_rules() {
        let mut keys = ListenKeys::new(Duration::from_secs(3600), 1);
        let k = keys.create(0);
        assert_eq!(k.len(), 64);
        assert_eq!(keys.create(1_000), k, "POST while active returns the same key");
        assert!(keys.keepalive(&k, 3_000_000));
        assert_eq!(keys.expires_at(&k, 3_000_000), Some(3_000_000 + 3_600_000));
        assert!(!keys.keepalive("other", 3_000_000));
        assert!(!keys.keepalive(&k, 3_000_000 + 3_600_000), "expired");
        let k2 = keys.create(3_000_000 + 3_600_000);
        assert_ne!(k2, k);
        assert!(keys.close(&k2));
        assert_eq!(keys.expires_at(&k2, 0), None);
    }
}
