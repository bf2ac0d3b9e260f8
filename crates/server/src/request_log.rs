//! The request log: every data-plane request a sandbox answered, redacted,
//! written off the hot path. Requests hand their entry to a bounded queue
//! and never wait on it; when the queue is full the entry is dropped and
//! counted. One task drains the queue in batches into the store.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use sbx_engine::{CompiledRevision, RouteMatch};
use sbx_store::{LogRecord, Store};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// Entries waiting to be written, at most.
const QUEUE: usize = 10_000;
/// Entries written per transaction, at most.
const BATCH: usize = 500;
/// Entries written per second, at most: past it the queue fills and
/// entries are dropped (counted), so a load test never pays for its log.
pub const MAX_RATE: u32 = 2_000;
/// Entries kept per sandbox (older ones are forgotten).
pub const KEEP_PER_SANDBOX: u32 = 10_000;
/// How long entries are kept.
pub const RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;
/// Longest body kept, in bytes.
const MAX_BODY: usize = 16 * 1024;
const REDACTED: &str = "[redacted]";

/// Headers never stored as sent.
const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// A request and its answer, as the data plane saw them.
pub struct Entry {
    pub sandbox_id: String,
    pub request_id: String,
    pub at_ms: i64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub latency_us: u64,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Vec<u8>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Vec<u8>,
    /// To name the operation (routed by the writer, off the hot path).
    pub revision: Arc<CompiledRevision>,
}

#[derive(Clone)]
pub struct RequestLog {
    sender: mpsc::Sender<Entry>,
    dropped: Arc<AtomicU64>,
}

impl RequestLog {
    /// Starts the writer task.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, receiver));
        Self {
            sender,
            dropped: Arc::default(),
        }
    }

    /// Whether an entry would be queued now; when not, the request skips
    /// capturing it (and it is counted as dropped).
    pub fn has_room(&self) -> bool {
        let room = self.sender.capacity() > 0;
        if !room {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        room
    }

    /// Queues an entry; never waits (a full queue drops it, counted).
    pub fn record(&self, entry: Entry) {
        if self.sender.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Entries dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<Entry>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        let records: Vec<LogRecord> = batch.drain(..).map(record).collect();
        if let Err(error) = store.save_logs(&records, KEEP_PER_SANDBOX).await {
            tracing::warn!(%error, count = records.len(), "writing the request log failed; entries lost");
        }
        let pace = std::time::Duration::from_secs(1)
            * u32::try_from(records.len()).unwrap_or(u32::MAX)
            / MAX_RATE;
        tokio::time::sleep(pace).await;
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn record(entry: Entry) -> LogRecord {
    let operation = match entry.revision.router.at(&entry.method, &entry.path) {
        RouteMatch::Found { operation, .. } => entry
            .revision
            .operations
            .get(operation)
            .map(|o| o.operation.id.clone()),
        _ => None,
    };
    let response = &entry.response_headers;
    LogRecord {
        seq: 0,
        scenario: header(response, "x-sandbox-scenario").map(str::to_owned),
        chaos: header(response, "x-sandbox-chaos").map(str::to_owned),
        replayed: header(response, "idempotent-replayed") == Some("true"),
        request_headers: redacted_headers(&entry.request_headers),
        request_body: redacted_body(&entry.request_body),
        response_headers: redacted_headers(&entry.response_headers),
        response_body: redacted_body(&entry.response_body),
        sandbox_id: entry.sandbox_id,
        request_id: entry.request_id,
        at_ms: entry.at_ms,
        method: entry.method,
        path: entry.path,
        query: entry.query.map(|q| redact_text(&q)),
        operation,
        status: i64::from(entry.status),
        latency_us: i64::try_from(entry.latency_us).unwrap_or(i64::MAX),
    }
}

/// `sk_test_…` keys anywhere in `text` masked.
fn redact_text(text: &str) -> String {
    if !text.contains(sbx_engine::API_KEY_PREFIX) {
        return text.to_owned();
    }
    text.split_inclusive(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(|token| {
            if token.starts_with(sbx_engine::API_KEY_PREFIX) {
                let tail =
                    token.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
                format!("{REDACTED}{tail}")
            } else {
                token.to_owned()
            }
        })
        .collect()
}

fn redacted_headers(headers: &[(String, String)]) -> String {
    let map: Map<String, Value> = headers
        .iter()
        .map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let value = if SECRET_HEADERS.contains(&lower.as_str()) {
                REDACTED.to_owned()
            } else {
                redact_text(value)
            };
            (lower, Value::String(value))
        })
        .collect();
    Value::Object(map).to_string()
}

/// The body as text, keys masked, cut at [`MAX_BODY`] bytes.
fn redacted_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_BODY)]);
    let mut text = redact_text(&text);
    if body.len() > MAX_BODY {
        text.push_str(&format!("… [{} bytes in all]", body.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_secret_headers_never_reach_the_log() {
        let headers = redacted_headers(&[
            ("Authorization".into(), "Bearer sk_test_abc123".into()),
            ("X-Custom".into(), "key=sk_test_zzz9;x=1".into()),
            ("Accept".into(), "application/json".into()),
        ]);
        assert!(!headers.contains("sk_test_"), "{headers}");
        assert!(headers.contains("key=[redacted];x=1"), "{headers}");
        assert!(headers.contains("application/json"));
        let body = redacted_body(br#"{"key": "sk_test_abc", "n": 1}"#);
        assert_eq!(body, r#"{"key": "[redacted]", "n": 1}"#);
        let big = redacted_body(&vec![b'a'; MAX_BODY + 10]);
        assert!(big.ends_with(&format!("[{} bytes in all]", MAX_BODY + 10)));
    }
}
