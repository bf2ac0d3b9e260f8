//! One module per page (and the forms it posts).

pub mod account;
pub mod activity;
pub mod dashboard;
pub mod editor;
pub mod explorer;
pub mod logs;
pub mod projects;
pub mod sandbox;
pub mod sessions;
pub mod timeline;
pub mod webhooks;

use std::sync::Arc;

use axum::{http::HeaderMap, response::Response};
use serde::{Deserialize, Serialize};

use crate::{
    app::{AppState, now_ms, rfc3339},
    portal::{Base, Failure, forged, session},
    runtime::registry::LiveSandbox,
    service::sandboxes,
};

pub use session::Visitor;

/// A form that only confirms (its button is the whole of it).
#[derive(Deserialize)]
pub struct Confirmed {
    #[serde(default)]
    pub csrf: String,
}

/// A sandbox that is not there (or not the visitor's): the reason, and
/// the way back.
pub fn missing(visitor: &Visitor, failure: Failure) -> Response {
    let base = Base::of(visitor, "sandboxes").failed(&failure, &[]);
    crate::portal::message(failure.status, base)
}

/// The visitor's sandbox `id`, for a form they posted; or the answer
/// instead: 403 for a form not from our pages, 404 for a sandbox that is
/// not theirs.
pub fn posted_to(
    state: &AppState,
    headers: &HeaderMap,
    visitor: &Visitor,
    id: &str,
    csrf: &str,
) -> Result<Arc<LiveSandbox>, Box<Response>> {
    if !session::form_is_ours(state, headers, visitor, csrf) {
        return Err(Box::new(forged()));
    }
    shown(state, visitor, id)
}

/// The visitor's sandbox `id`, for a page; or the page saying why not.
pub fn shown(
    state: &AppState,
    visitor: &Visitor,
    id: &str,
) -> Result<Arc<LiveSandbox>, Box<Response>> {
    sandboxes::live(state, &visitor.caller, id)
        .map_err(|error| Box::new(missing(visitor, Failure::from(error))))
}

/// Headers one per line, `name: value`, as a request carries them.
pub fn header_lines(headers: impl IntoIterator<Item = (String, String)>) -> String {
    headers
        .into_iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A sandbox as its pages show it.
#[derive(Serialize)]
pub struct SandboxSummary {
    id: String,
    label: Option<String>,
    project: String,
    revision: u32,
    pinned: bool,
    /// Append operation paths to this (the API's base path included).
    base_path_url: String,
    host_url: String,
    oauth_issuer: String,
    expires_at: Option<String>,
    /// "in 6 days 23 hours": what a page shows before its script counts down.
    expires_in: Option<String>,
    requests_today: u64,
    owner: Option<String>,
    seed: String,
    auth: &'static str,
    chaos: Option<String>,
    scenario: Option<String>,
    resources: std::collections::BTreeMap<String, usize>,
}

impl SandboxSummary {
    pub fn of(state: &AppState, sandbox: &LiveSandbox) -> Self {
        let serving = sandbox.serving();
        let (base_path_url, host_url) = sandboxes::addresses(state, sandbox);
        let now = now_ms();
        Self {
            id: sandbox.id.to_string(),
            label: sandbox.label.as_deref().map(str::to_owned),
            project: sandbox.project.to_string(),
            revision: serving.revision,
            pinned: sandbox.pinned,
            base_path_url,
            host_url,
            oauth_issuer: crate::service::oauth::issuer(state, &sandbox.id),
            expires_at: sandbox.expires_at_ms().map(rfc3339),
            expires_in: sandbox
                .expires_at_ms()
                .map(|at| format!("in {}", duration_words(((at - now).max(0) / 1000) as u64))),
            requests_today: sandbox.requests.requests_on(now),
            owner: sandbox.owner_id().map(ToString::to_string),
            seed: sandbox.seed_text().to_owned(),
            auth: sandbox.auth.as_str(),
            chaos: sandbox.chaos().map(|chaos| chaos.text.clone()),
            scenario: sandbox.scenario().map(|s| s.to_string()),
            resources: sandbox.state.counts(),
        }
    }
}

/// Seconds in the two largest units that matter: "6 days 23 hours",
/// "12 minutes", "40 seconds".
pub fn duration_words(seconds: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let mut parts = Vec::new();
    let mut left = seconds;
    for (size, name) in UNITS {
        let count = left / size;
        if count > 0 || (parts.is_empty() && size == 1) {
            parts.push(format!(
                "{count} {name}{}",
                if count == 1 { "" } else { "s" }
            ));
            left -= count * size;
        }
        if parts.len() == 2 || (!parts.is_empty() && count == 0) {
            break;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::duration_words;

    #[test]
    fn durations_read_in_their_two_largest_units() {
        assert_eq!(duration_words(0), "0 seconds");
        assert_eq!(duration_words(40), "40 seconds");
        assert_eq!(duration_words(61), "1 minute 1 second");
        assert_eq!(duration_words(3_600), "1 hour");
        assert_eq!(duration_words(7 * 86_400 - 3_600), "6 days 23 hours");
        assert_eq!(duration_words(86_400 + 59), "1 day");
    }
}
