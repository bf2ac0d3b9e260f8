//! A sandbox's timeline as a page: what happened, by the sandbox's clock,
//! each entry linked to what caused it (a request to its page).

use axum::{
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::Response,
};
use sbx_store::{TimelineKind, TimelineQuery};
use serde::Serialize;

use super::{SandboxSummary, Visitor, shown};
use crate::{
    app::AppState,
    portal::{Base, Failure, templates::page},
    service::timeline,
};

/// Entries shown.
const LISTED: u32 = 300;

#[derive(Serialize)]
struct KindBox {
    name: &'static str,
    shown: bool,
}

#[derive(Serialize)]
struct CauseLink {
    kind: String,
    id: String,
    /// The page of the cause, where the portal has one.
    page: Option<String>,
}

#[derive(Serialize)]
struct Row {
    kind: &'static str,
    at: String,
    id: String,
    summary: String,
    /// A request's own page.
    request_page: Option<String>,
    cause: Option<CauseLink>,
}

#[derive(Serialize)]
struct TimelinePage {
    #[serde(flatten)]
    base: Base,
    sandbox: SandboxSummary,
    kinds: Vec<KindBox>,
    entries: Vec<Row>,
    truncated: bool,
}

pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let sandbox = match shown(&state, &visitor, &id) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let asked: Vec<String> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "kind")
        .map(|(_, value)| value.into_owned())
        .collect();
    let kinds: Vec<TimelineKind> = TimelineKind::ALL
        .into_iter()
        .filter(|kind| asked.is_empty() || asked.iter().any(|a| a == kind.name()))
        .collect();
    let query = TimelineQuery {
        kinds: kinds.clone(),
        since_ms: i64::MIN,
        until_ms: i64::MAX,
        limit: LISTED,
    };
    let request_page = |request: &str| format!("/portal/sandboxes/{id}/logs/{request}");
    let (status, base, entries, truncated) =
        match timeline::timeline(&state, &visitor.caller, &id, query).await {
            Ok(found) => {
                let entries = found
                    .items
                    .into_iter()
                    .map(|e| Row {
                        request_page: (e.kind == "request").then(|| request_page(&e.id)),
                        cause: e.caused_by.map(|cause| CauseLink {
                            page: (cause.kind == "request").then(|| request_page(&cause.id)),
                            kind: cause.kind,
                            id: cause.id,
                        }),
                        kind: e.kind,
                        at: e.at,
                        id: e.id,
                        summary: e.summary,
                    })
                    .collect();
                (
                    StatusCode::OK,
                    Base::of(&visitor, "sandboxes"),
                    entries,
                    found.truncated,
                )
            }
            Err(error) => {
                let failure = Failure::from(error);
                let base = Base::of(&visitor, "sandboxes").failed(&failure, &[]);
                (failure.status, base, Vec::new(), false)
            }
        };
    page(
        status,
        "timeline.html",
        TimelinePage {
            base,
            sandbox: SandboxSummary::of(&state, &sandbox),
            kinds: TimelineKind::ALL
                .into_iter()
                .map(|kind| KindBox {
                    name: kind.name(),
                    shown: kinds.contains(&kind),
                })
                .collect(),
            entries,
            truncated,
        },
    )
}
