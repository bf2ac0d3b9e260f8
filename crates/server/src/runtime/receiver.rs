//! The built-in webhook receiver: an endpoint URL for a developer without
//! a server of their own. Deliveries to a sandbox's receiver URL are not
//! sent over the network (the egress policy refuses this server's own
//! address); the delivery worker hands the exact request it would send —
//! headers, signature and body — to the receiver, which keeps the latest
//! of them in memory for the portal to show.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

/// Requests kept per sandbox, newest first.
const KEPT: usize = 50;
/// Body bytes kept per request.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Where the receiver lives, below the server's public URL.
const PATH: &str = "/portal/receiver/";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at_ms: i64,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Default)]
pub struct Receiver {
    by_sandbox: Mutex<HashMap<String, VecDeque<Received>>>,
}

/// The receiver URL of a sandbox.
pub fn url_of(public_url: &str, sandbox_id: &str) -> String {
    format!("{public_url}{PATH}{sandbox_id}")
}

impl Receiver {
    /// Keeps `request` if `url` is `sandbox_id`'s receiver; whether it was.
    pub fn take(
        &self,
        public_url: &str,
        sandbox_id: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        at_ms: i64,
    ) -> bool {
        if url != url_of(public_url, sandbox_id) {
            return false;
        }
        let kept = &body[..body.len().min(MAX_BODY_BYTES)];
        let received = Received {
            at_ms,
            headers: headers.to_vec(),
            body: String::from_utf8_lossy(kept).into_owned(),
        };
        let mut by_sandbox = self.by_sandbox.lock().unwrap_or_else(|e| e.into_inner());
        let kept = by_sandbox.entry(sandbox_id.to_owned()).or_default();
        kept.push_front(received);
        kept.truncate(KEPT);
        true
    }

    /// What `sandbox_id`'s receiver got, newest first.
    pub fn received(&self, sandbox_id: &str) -> Vec<Received> {
        let by_sandbox = self.by_sandbox.lock().unwrap_or_else(|e| e.into_inner());
        by_sandbox
            .get(sandbox_id)
            .map(|kept| kept.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Drops what a deleted sandbox's receiver kept.
    pub fn forget(&self, sandbox_id: &str) {
        let mut by_sandbox = self.by_sandbox.lock().unwrap_or_else(|e| e.into_inner());
        by_sandbox.remove(sandbox_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sandboxs_own_receiver_url_is_taken_and_it_keeps_the_latest() {
        let receiver = Receiver::default();
        let url = url_of("http://h:1", "sbx-a");
        assert!(!receiver.take("http://h:1", "sbx-b", &url, &[], b"{}", 1));
        assert!(!receiver.take("http://h:1", "sbx-a", "http://elsewhere/x", &[], b"{}", 1));
        for n in 0..(KEPT + 5) {
            assert!(receiver.take(
                "http://h:1",
                "sbx-a",
                &url,
                &[],
                n.to_string().as_bytes(),
                1
            ));
        }
        let got = receiver.received("sbx-a");
        assert_eq!(got.len(), KEPT);
        assert_eq!(got[0].body, (KEPT + 4).to_string(), "newest first");
        assert!(receiver.received("sbx-b").is_empty());
        receiver.forget("sbx-a");
        assert!(receiver.received("sbx-a").is_empty());
    }
}
