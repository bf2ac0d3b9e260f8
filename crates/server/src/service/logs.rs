//! A sandbox's request log as the developer reads it: one request, an
//! export of many, or the new ones as they come.

use std::{collections::VecDeque, time::Duration};

use futures_util::Stream;
use sbx_store::{LogQuery, LogRecord};

use super::{ServiceError, ServiceResult, caller::Caller, sandboxes::live};
use crate::app::AppState;

/// Log entries read per store query.
const BATCH: u32 = 200;
/// The most bytes of headers and bodies one export holds.
pub const MAX_EXPORT_BYTES: usize = 64 * 1024 * 1024;
/// How often a follower looks for new entries when it has seen them all.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

fn no_request(state: &AppState, request_id: &str, scope: &str) -> ServiceError {
    ServiceError::NotFound(format!(
        "{scope} has no request {request_id:?} ({})",
        state.config.request_log_limits.retention()
    ))
}

/// A live sandbox's logged requests that match `query`, newest first.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    id: &str,
    query: &LogQuery,
) -> ServiceResult<Vec<LogRecord>> {
    live(state, caller, id)?;
    Ok(state.store.list_logs(id, query).await?)
}

/// A status filter's range: a status (`404`) or a class (`4xx`).
pub fn status_range(text: &str) -> Option<(i64, i64)> {
    let class = text
        .strip_suffix("xx")
        .or_else(|| text.strip_suffix("XX"))
        .and_then(|digit| digit.parse::<i64>().ok())
        .filter(|digit| (1..=5).contains(digit))
        .map(|digit| (digit * 100, digit * 100 + 99));
    let exact = text
        .parse::<i64>()
        .ok()
        .filter(|status| (100..=599).contains(status))
        .map(|status| (status, status));
    class.or(exact)
}

/// The decisive step of a logged request in one sentence: the first that
/// failed, else the last (the answer).
pub fn verdict(record: &LogRecord) -> String {
    let steps = record
        .trace
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    steps
        .iter()
        .find(|s| s["verdict"] == "failed")
        .or_else(|| steps.last())
        .and_then(|step| step["summary"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("answered {}", record.status))
}

/// The detail of the step `stage` when it failed.
pub fn failed_step(record: &LogRecord, stage: &str) -> Option<serde_json::Value> {
    record
        .trace
        .as_array()?
        .iter()
        .find(|s| s["stage"] == stage && s["verdict"] == "failed")
        .map(|s| s["detail"].clone())
}

/// Each violation of the contract the request or its answer made.
pub fn violations(record: &LogRecord) -> Vec<serde_json::Value> {
    match failed_step(record, "validate") {
        Some(serde_json::Value::Array(violations)) => violations,
        _ => Vec::new(),
    }
}

/// One logged request of a live sandbox.
pub async fn logged(
    state: &AppState,
    caller: &Caller,
    id: &str,
    request_id: &str,
) -> ServiceResult<LogRecord> {
    live(state, caller, id)?;
    state
        .store
        .get_log(Some(id), request_id)
        .await?
        .ok_or_else(|| no_request(state, request_id, &format!("the log of {id}")))
}

/// The latest logged request with this id, in any sandbox the caller
/// sees (a developer's own; an admin's, all).
pub async fn logged_anywhere(
    state: &AppState,
    caller: &Caller,
    request_id: &str,
) -> ServiceResult<LogRecord> {
    let found = if caller.is_admin() {
        state.store.get_log(None, request_id).await?
    } else {
        let mut latest: Option<LogRecord> = None;
        for sandbox in super::sandboxes::list(state, caller, None) {
            if let Some(record) = state.store.get_log(Some(&sandbox.id), request_id).await?
                && latest.as_ref().is_none_or(|l| record.at_ms > l.at_ms)
            {
                latest = Some(record);
            }
        }
        latest
    };
    found.ok_or_else(|| no_request(state, request_id, "no sandbox's log"))
}

/// Entries of an export, newest first.
pub struct Export {
    pub records: Vec<LogRecord>,
    /// The export stopped at [`MAX_EXPORT_BYTES`] before `wanted` entries.
    pub cut_at_budget: bool,
}

/// The newest `wanted` entries that match `filter`, as many as fit in
/// [`MAX_EXPORT_BYTES`].
pub async fn export(
    state: &AppState,
    caller: &Caller,
    id: &str,
    mut filter: LogQuery,
    wanted: usize,
) -> ServiceResult<Export> {
    live(state, caller, id)?;
    filter.limit = BATCH;
    let mut records = Vec::new();
    let mut bytes = 0;
    loop {
        let page = state.store.list_logs(id, &filter).await?;
        let more = page.len() == BATCH as usize;
        filter.before_seq = page.last().map(|r| r.seq);
        for record in page {
            bytes += size(&record);
            if records.len() == wanted || bytes > MAX_EXPORT_BYTES {
                let cut_at_budget = bytes > MAX_EXPORT_BYTES;
                return Ok(Export {
                    records,
                    cut_at_budget,
                });
            }
            records.push(record);
        }
        if !more {
            return Ok(Export {
                records,
                cut_at_budget: false,
            });
        }
    }
}

/// The bytes an entry's headers and bodies take.
fn size(record: &LogRecord) -> usize {
    let text = |value: &serde_json::Value| value.to_string().len();
    text(&record.request_headers)
        + record.request_body.len()
        + text(&record.response_headers)
        + record.response_body.len()
}

/// Every entry logged from now on that matches `filter`, oldest first,
/// none skipped however fast they come.
pub async fn follow(
    state: &AppState,
    caller: &Caller,
    id: &str,
    mut filter: LogQuery,
) -> ServiceResult<impl Stream<Item = LogRecord> + use<>> {
    live(state, caller, id)?;
    filter.limit = BATCH;
    let newest = LogQuery {
        limit: 1,
        ..LogQuery::default()
    };
    let last = state
        .store
        .list_logs(id, &newest)
        .await?
        .first()
        .map_or(0, |r| r.seq);
    filter.after_seq = Some(last);
    let tail = (state.clone(), id.to_owned(), filter, VecDeque::new());
    Ok(futures_util::stream::unfold(
        tail,
        |(state, id, mut filter, mut queued)| async move {
            loop {
                if let Some(record) = queued.pop_front() {
                    return Some((record, (state, id, filter, queued)));
                }
                // Oldest first after the last one sent, until none is left;
                // then wait for more. A store error ends nothing: the next
                // poll tries again.
                let found = match state.store.list_logs(&id, &filter).await {
                    Ok(found) if !found.is_empty() => found,
                    _ => {
                        tokio::time::sleep(FOLLOW_POLL).await;
                        continue;
                    }
                };
                filter.after_seq = found.last().map(|r| r.seq);
                queued.extend(found);
            }
        },
    ))
}
