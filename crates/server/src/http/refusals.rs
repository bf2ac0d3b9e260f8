//! Refused control-plane calls (no token, a wrong one), counted per client
//! address in one-minute windows: past the limit a client is answered 429
//! and its attempts are no longer audited one by one, so a flood of bad
//! calls can neither fill the disk through the audit log nor try tokens
//! at line rate. Failed sign-ins are counted the same way per account.

use std::{collections::HashMap, hash::Hash, net::IpAddr, sync::Mutex};

/// Clients tracked at most; past it, windows that ended are forgotten
/// first, then everything (a flood from many addresses resets counts
/// rather than growing memory).
const MAX_CLIENTS: usize = 10_000;
const WINDOW_MS: i64 = 60_000;

/// Counts per key (a client address, an account's email).
pub struct Refusals<K = IpAddr> {
    per_minute: u32,
    clients: Mutex<HashMap<K, Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    started_ms: i64,
    count: u32,
}

impl<K: Hash + Eq> Refusals<K> {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute: per_minute.max(1),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one refusal of `client` at `now_ms`: `Ok` while it is within
    /// the limit, else `Err` with the seconds until its window ends.
    pub fn count(&self, client: K, now_ms: i64) -> Result<(), u64> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
            clients.retain(|_, w| now_ms - w.started_ms < WINDOW_MS);
            if clients.len() >= MAX_CLIENTS {
                clients.clear();
            }
        }
        let window = clients.entry(client).or_insert(Window {
            started_ms: now_ms,
            count: 0,
        });
        if now_ms - window.started_ms >= WINDOW_MS {
            *window = Window {
                started_ms: now_ms,
                count: 0,
            };
        }
        window.count = window.count.saturating_add(1);
        self.verdict(*window, now_ms)
    }

    /// Whether `client` is past its limit at `now_ms`, without counting:
    /// `Err` with the seconds until its window ends.
    pub fn check(&self, client: &K, now_ms: i64) -> Result<(), u64> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        match clients.get(client) {
            Some(window) if now_ms - window.started_ms < WINDOW_MS => self.verdict(*window, now_ms),
            _ => Ok(()),
        }
    }

    fn verdict(&self, window: Window, now_ms: i64) -> Result<(), u64> {
        if window.count <= self.per_minute {
            Ok(())
        } else {
            let left_ms = WINDOW_MS - (now_ms - window.started_ms);
            let left_ms = u64::try_from(left_ms).unwrap_or(0);
            Err(left_ms.div_ceil(1000).max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_limit_waits_for_its_window_and_others_are_not_affected() {
        let refusals = Refusals::new(3);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..3 {
            assert!(refusals.count(a, 1_000).is_ok());
        }
        assert_eq!(refusals.count(a, 31_000), Err(30));
        assert!(refusals.count(b, 31_000).is_ok());
        assert!(refusals.count(a, 61_000).is_ok());
    }

    #[test]
    fn checking_does_not_count() {
        let refusals = Refusals::new(1);
        let key = "a@example.com".to_owned();
        assert!(refusals.count(key.clone(), 0).is_ok());
        for _ in 0..5 {
            assert!(refusals.check(&key, 1_000).is_ok());
        }
        assert_eq!(refusals.count(key.clone(), 1_000), Err(59));
        assert_eq!(refusals.check(&key, 2_000), Err(58));
        assert!(refusals.check(&key, 60_000).is_ok());
    }
}
