//! A sandbox's timeline: requests, clock moves, jobs, state transitions,
//! events and delivery attempts in sandbox-time order, each linked to what
//! caused it, each summed up in a line.

use sbx_store::{Origin, TimelineKind, TimelineQuery, TimelineRecord};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{ServiceResult, caller::Caller, sandboxes::live};
use crate::app::{AppState, rfc3339};

/// What caused an entry: the `request` (its id, as in the request log),
/// the `job`, the `event`, or a `control`-plane call (its request id, as
/// in the audit log).
#[derive(Debug, Serialize, ToSchema)]
pub struct Cause {
    pub kind: String,
    pub id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// `clock`, `request`, `job`, `transition`, `event` or `delivery`.
    pub kind: &'static str,
    /// Sandbox time (the test clock's).
    pub at: String,
    /// Real time, for requests and clock moves.
    pub real_at: Option<String>,
    /// The request id, job id, `evt_…` event id, `collection/id` of the
    /// record, or `delivery/attempt`.
    pub id: String,
    /// In one line.
    pub summary: String,
    pub caused_by: Option<Cause>,
    #[schema(value_type = Object)]
    pub detail: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    /// Oldest first.
    pub items: Vec<TimelineEntry>,
    /// More entries match: ask again with `since` at the last entry's `at`.
    pub truncated: bool,
}

/// The entries of `query` (at most its limit), oldest first.
pub async fn timeline(
    state: &AppState,
    caller: &Caller,
    id: &str,
    mut query: TimelineQuery,
) -> ServiceResult<Timeline> {
    live(state, caller, id)?;
    let limit = query.limit as usize;
    query.limit += 1;
    let mut records = state.store.timeline(id, &query).await?;
    let truncated = records.len() > limit;
    records.truncate(limit);
    Ok(Timeline {
        items: records.into_iter().map(entry).collect(),
        truncated,
    })
}

fn entry(record: TimelineRecord) -> TimelineEntry {
    let detail = record.detail;
    let id = match record.kind {
        TimelineKind::Event => record
            .id
            .parse()
            .map_or_else(|_| record.id.clone(), |n| sbx_store::EventId(n).to_string()),
        _ => record.id,
    };
    TimelineEntry {
        kind: record.kind.name(),
        at: rfc3339(record.at_ms),
        real_at: record.real_at_ms.map(rfc3339),
        summary: summary(record.kind, &detail),
        caused_by: record.origin.as_ref().map(cause),
        id,
        detail,
    }
}

/// A request, job or call by its id; an event as `evt_12`.
fn cause(origin: &Origin) -> Cause {
    let id = match origin {
        Origin::Request(id) | Origin::Control(id) => id.to_string(),
        Origin::Job(id) => id.clone(),
        Origin::Event(event) => event.to_string(),
    };
    Cause {
        kind: origin.kind().to_owned(),
        id,
    }
}

fn summary(kind: TimelineKind, detail: &Value) -> String {
    let text = |name: &str| detail[name].as_str().unwrap_or("").to_owned();
    match kind {
        TimelineKind::Clock => {
            let to = detail["to_ms"].as_i64().map(rfc3339).unwrap_or_default();
            format!("clock: {} (now {to})", text("change"))
        }
        TimelineKind::Request => {
            let mut line = format!(
                "{} {} --> {}",
                text("method"),
                text("path"),
                detail["status"]
            );
            for (label, name) in [("", "operation"), ("scenario ", "scenario")] {
                if let Some(value) = detail[name].as_str() {
                    line.push_str(&format!(" ({label}{value})"));
                }
            }
            line
        }
        TimelineKind::Job => {
            let action = &detail["action"];
            let what = match action["kind"].as_str() {
                Some("transition") => format!(
                    "move {}/{} to {}",
                    action["collection"].as_str().unwrap_or(""),
                    action["id"].as_str().unwrap_or(""),
                    action["to"].as_str().unwrap_or("")
                ),
                Some(other) => other.to_owned(),
                None => "job".to_owned(),
            };
            match text("state").as_str() {
                "failed" => format!("job failed: {what}: {}", text("error")),
                "ran" => format!("job ran: {what}"),
                _ => format!("job due: {what}"),
            }
        }
        TimelineKind::Transition => {
            let from = detail["from"].as_str().unwrap_or("(new)");
            format!(
                "{}/{}: {from} -> {} ({})",
                text("collection"),
                text("id"),
                text("to"),
                text("cause")
            )
        }
        TimelineKind::Event => format!("event {}", text("type")),
        TimelineKind::Delivery => {
            let outcome = match detail["status"].as_i64() {
                Some(status) => format!("answered {status}"),
                None => format!("failed: {}", text("error")),
            };
            format!(
                "delivery attempt {} to {}: {outcome}",
                detail["attempt"],
                text("endpoint")
            )
        }
    }
}
