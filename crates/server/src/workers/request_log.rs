//! The request log: every data-plane request a sandbox answered, redacted,
//! written off the hot path. Requests hand their entry to a bounded queue
//! and never wait on it; when the queue is full the entry is dropped and
//! counted. One task drains the queue in batches into the store.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use sbx_engine::{
    CompiledRevision, Step, Verdict,
    redaction::{Redactions, Secrets},
};
use sbx_store::{LogRecord, RequestId, SandboxId, Store};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{
    config::RequestLogLimits,
    workers::{Workers, next},
};

/// Entries written per transaction, at most.
const BATCH: usize = 500;
/// Longest body kept, in bytes.
const MAX_BODY: usize = 16 * 1024;
/// How a body cut at [`MAX_BODY`] ends in the log.
const CUT_MARK: &str = " bytes in all]";
use sbx_engine::redaction::REDACTED;

/// Whether a logged body was cut short (so it cannot be sent again as is).
pub fn is_cut(logged_body: &str) -> bool {
    logged_body.ends_with(CUT_MARK)
}

/// Headers never stored as sent.
const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-sandbox-admin-token",
];

/// A request and its answer, as the data plane saw them.
pub struct Entry {
    pub sandbox_id: SandboxId,
    pub request_id: RequestId,
    pub at_ms: i64,
    /// The sandbox clock's time when it arrived.
    pub sandbox_at_ms: i64,
    /// The W3C trace it belongs to, when there is one.
    pub trace_id: Option<String>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub latency_us: u64,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Vec<u8>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: axum::body::Bytes,
    /// How the engine decided.
    pub trace: Vec<Step>,
    /// How the sandbox was found, in words.
    pub resolved_by: &'static str,
    /// The operation answering (an index into the revision's), if any.
    pub operation: Option<usize>,
    /// To name the operation and apply the project's redaction rules.
    pub revision: Arc<CompiledRevision>,
}

/// What the writer task takes: an entry, or a request to say when every
/// entry queued before it is written.
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every item is an entry: boxing it would allocate once more per request"
)]
enum Item {
    Entry(Entry),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct RequestLog {
    sender: mpsc::Sender<Item>,
    dropped: Counter,
}

impl RequestLog {
    /// Starts the writer task. Past `limits.max_per_second` writes the
    /// queue fills and entries are dropped (counted), so a load test never
    /// pays for its log.
    pub fn start(store: Arc<dyn Store>, limits: &RequestLogLimits, workers: &Workers) -> Self {
        let (sender, receiver) = mpsc::channel(limits.queue.max(1));
        let pace = Pace {
            max_per_second: limits.max_per_second.max(1),
            keep_per_sandbox: limits.keep_per_sandbox.max(1),
        };
        workers.spawn_sink(write(store, receiver, pace, workers.closing()));
        Self {
            sender,
            dropped: Counter::default(),
        }
    }

    /// Whether an entry would be queued now; when not, the request skips
    /// capturing it (and it is counted as dropped).
    pub fn has_room(&self) -> bool {
        let room = self.sender.capacity() > 0;
        if !room {
            self.dropped.inc();
        }
        room
    }

    /// Queues an entry; never waits (a full queue drops it, counted).
    pub fn record(&self, entry: Entry) {
        if self.sender.try_send(Item::Entry(entry)).is_err() {
            self.dropped.inc();
        }
    }

    /// Returns once every entry queued before the call is written (or the
    /// log has stopped).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.sender.send(Item::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }

    /// Entries dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// The drop counter, for `/metrics`.
    pub fn dropped_counter(&self) -> Counter {
        self.dropped.clone()
    }
}

/// How fast the log is written, and how much of it is kept.
struct Pace {
    max_per_second: u32,
    keep_per_sandbox: u32,
}

async fn write(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<Item>,
    pace: Pace,
    closing: CancellationToken,
) {
    let mut records = Vec::with_capacity(BATCH);
    let mut flushed = Vec::new();
    while let Some(first) = next(&mut receiver, &closing).await {
        let mut item = Some(first);
        while let Some(taken) = item.take() {
            match taken {
                Item::Entry(entry) => records.push(record(entry)),
                Item::Flush(done) => flushed.push(done),
            }
            if records.len() < BATCH {
                item = receiver.try_recv().ok();
            }
        }
        if !records.is_empty()
            && let Err(error) = store.save_logs(&records, pace.keep_per_sandbox).await
        {
            tracing::warn!(%error, count = records.len(), "writing the request log failed; entries lost");
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
        let written = u32::try_from(records.len()).unwrap_or(u32::MAX);
        records.clear();
        // Paced to the rate allowed; a closing log writes what is left at once.
        if !closing.is_cancelled() {
            let pause = std::time::Duration::from_secs(1) * written / pace.max_per_second;
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = closing.cancelled() => {}
            }
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn record(entry: Entry) -> LogRecord {
    let operation = entry
        .operation
        .and_then(|index| entry.revision.operations.get(index))
        .map(|o| o.operation.id.clone());
    let response = &entry.response_headers;
    let replayed = header(response, "idempotent-replayed") == Some("true");
    let redactions = &entry.revision.behaviours.redactions;
    let request_json = maskable_json(redactions, &entry.request_body);
    // What the rules mask in the request is masked wherever it is quoted
    // again: validation messages and values, errors echoed in the answer.
    let secrets = match &request_json {
        Some(body) => redactions.secrets(body),
        None => Secrets::default(),
    };
    let mut trace = Value::Array(
        full_trace(&entry, replayed)
            .iter()
            .map(|step| serde_json::to_value(step).unwrap_or(Value::Null))
            .collect(),
    );
    secrets.scrub(&mut trace);
    redact_strings(&mut trace);
    LogRecord {
        seq: 0,
        scenario: header(response, "x-sandbox-scenario").map(str::to_owned),
        chaos: header(response, "x-sandbox-chaos").map(str::to_owned),
        replayed,
        request_headers: redacted_headers(&entry.request_headers, &secrets),
        request_body: redacted_body(&entry.request_body, request_json, redactions, &secrets),
        response_headers: redacted_headers(&entry.response_headers, &secrets),
        response_body: redacted_body(
            &entry.response_body,
            maskable_json(redactions, &entry.response_body),
            redactions,
            &secrets,
        ),
        trace,
        sandbox_id: entry.sandbox_id,
        request_id: entry.request_id,
        at_ms: entry.at_ms,
        sandbox_at_ms: Some(entry.sandbox_at_ms),
        trace_id: entry.trace_id,
        method: entry.method,
        path: entry.path,
        query: entry.query.map(|q| redact_text(&q)),
        operation,
        status: i64::from(entry.status),
        latency_us: i64::try_from(entry.latency_us).unwrap_or(i64::MAX),
    }
}

/// The engine's steps with the server's around them: how the sandbox was
/// found, and answers made before the engine ran (idempotent replays).
fn full_trace(entry: &Entry, replayed: bool) -> Vec<Step> {
    let mut steps = Vec::with_capacity(entry.trace.len() + 2);
    steps.push(Step::new(
        "resolve",
        Verdict::Passed,
        format!(
            "sandbox {} found by {}",
            entry.sandbox_id, entry.resolved_by
        ),
    ));
    if replayed {
        steps.push(Step::new(
            "idempotency",
            Verdict::Applied,
            "replayed the answer stored for this Idempotency-Key; the operation did not run again",
        ));
    } else if entry.trace.is_empty() {
        let detail = json_body(&entry.response_body)
            .and_then(|body| body.get("detail")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("answered {} before the operation ran", entry.status));
        steps.push(Step::new("server", Verdict::Failed, detail));
    }
    steps.extend(entry.trace.iter().cloned());
    steps
}

/// Sandbox keys (`sk_test_…`, `rk_test_…`, `pk_test_…`) anywhere in `text` masked.
/// [`redact_text`] applied to every string of `value`.
fn redact_strings(value: &mut Value) {
    match value {
        Value::String(text) if sbx_engine::mentions_key(text) => {
            *text = redact_text(text);
        }
        Value::Array(items) => items.iter_mut().for_each(redact_strings),
        Value::Object(members) => members.values_mut().for_each(redact_strings),
        _ => {}
    }
}

fn redact_text(text: &str) -> String {
    if !sbx_engine::mentions_key(text) {
        return text.to_owned();
    }
    text.split_inclusive(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(|token| {
            if sbx_engine::is_key_like(token) {
                let tail =
                    token.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
                format!("{REDACTED}{tail}")
            } else {
                token.to_owned()
            }
        })
        .collect()
}

fn redacted_headers(headers: &[(String, String)], secrets: &Secrets) -> Value {
    let map: Map<String, Value> = headers
        .iter()
        .map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let value = if SECRET_HEADERS.contains(&lower.as_str()) {
                // The scheme stays: replays and snippets send the key the same way.
                match value.split_once(' ') {
                    Some((scheme, _)) if lower.ends_with("authorization") => {
                        format!("{scheme} {REDACTED}")
                    }
                    _ => REDACTED.to_owned(),
                }
            } else {
                redact_text(&secrets.scrub_text(value))
            };
            (lower, Value::String(value))
        })
        .collect();
    Value::Object(map)
}

/// The body, parsed, when it is JSON and a project's rule may select in it
/// (the rest are never parsed).
fn maskable_json(redactions: &Redactions, body: &[u8]) -> Option<Value> {
    redactions
        .may_match(body)
        .then(|| json_body(body))
        .flatten()
}

/// The body, parsed, when it is JSON.
fn json_body(body: &[u8]) -> Option<Value> {
    matches!(body.first(), Some(b'{' | b'[')).then(|| serde_json::from_slice(body).ok())?
}

/// The body as text, keys, the project's redacted paths and the request's
/// secrets masked, cut at [`MAX_BODY`] bytes.
fn redacted_body(
    body: &[u8],
    json: Option<Value>,
    redactions: &Redactions,
    secrets: &Secrets,
) -> String {
    let masked = json.and_then(|mut value| {
        let masked = redactions.apply(&mut value);
        if !secrets.is_empty() {
            secrets.scrub(&mut value);
        }
        (masked || !secrets.is_empty()).then(|| serde_json::to_vec(&value).ok())?
    });
    let body = masked.as_deref().unwrap_or(body);
    // Text, as the log shows it: invalid UTF-8 and NUL (which PostgreSQL
    // cannot store) become U+FFFD.
    let mut text = String::from_utf8_lossy(&body[..body.len().min(MAX_BODY)]);
    if text.contains('\0') {
        text = text.replace('\0', "\u{FFFD}").into();
    }
    let mut text = redact_text(&secrets.scrub_text(&text));
    if body.len() > MAX_BODY {
        text.push_str(&format!("… [{}{CUT_MARK}", body.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_secret_headers_never_reach_the_log() {
        let headers = redacted_headers(
            &[
                ("Authorization".into(), "Bearer sk_test_abc123".into()),
                ("X-Custom".into(), "key=sk_test_zzz9;x=1".into()),
                ("Accept".into(), "application/json".into()),
            ],
            &Secrets::default(),
        )
        .to_string();
        assert!(!headers.contains("sk_test_"), "{headers}");
        assert!(headers.contains("key=[redacted];x=1"), "{headers}");
        assert!(headers.contains("application/json"));
        let none = Redactions::default();
        let body = redacted_body(
            br#"{"key": "sk_test_abc", "n": 1}"#,
            None,
            &none,
            &Secrets::default(),
        );
        assert_eq!(body, r#"{"key": "[redacted]", "n": 1}"#);
        let big = redacted_body(&vec![b'a'; MAX_BODY + 10], None, &none, &Secrets::default());
        assert!(big.ends_with(&format!("[{} bytes in all]", MAX_BODY + 10)));
    }
}
