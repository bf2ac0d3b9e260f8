//! The code console: a developer's code sessions — start one from a
//! template, run code in it and watch its output arrive (the execution's
//! event stream), see its files and earlier runs, end it. Each form posts
//! to the same services as `/api/v1/sessions`.

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, Serialize};

use super::Confirmed;
use crate::{
    portal::{
        Base, Failure, audited, changed, forged, notice_of,
        session::{self, Visitor},
        templates::page,
    },
    service::{
        session_files::{self, Fetched},
        sessions::{self, ExecutionView, NewExecution, NewSession, SessionView},
        templates,
    },
};

/// Runs listed on a session's page, newest first.
const LISTED_RUNS: usize = 20;

#[derive(Deserialize, Default)]
pub struct Shown {
    done: Option<String>,
    /// The run whose output the page shows (the newest by default).
    run: Option<String>,
}

#[derive(Serialize)]
struct SessionsPage {
    #[serde(flatten)]
    base: Base,
    sessions: Vec<SessionView>,
    templates: Vec<String>,
    chosen: String,
}

/// The templates a session can start from: the built-ins and the
/// visitor's own that are ready, with the language their code is in.
fn template_languages(state: &crate::app::AppState, visitor: &Visitor) -> Vec<(String, String)> {
    templates::list(state, &visitor.caller)
        .into_iter()
        .filter(|t| t.status == templates::TemplateStatus::Ready)
        .map(|t| (t.name, t.base))
        .collect()
}

fn sessions_page(
    state: &crate::app::AppState,
    visitor: &Visitor,
    status: StatusCode,
    base: Base,
    chosen: String,
) -> Response {
    let mut sessions = sessions::list(state, &visitor.caller);
    // Function sessions are the server's, not a console's.
    sessions.retain(|s| s.sandbox.is_none());
    page(
        status,
        "sessions.html",
        SessionsPage {
            base,
            sessions,
            templates: template_languages(state, visitor)
                .into_iter()
                .map(|(name, _)| name)
                .collect(),
            chosen,
        },
    )
}

pub async fn list(
    State(state): State<crate::app::AppState>,
    visitor: Visitor,
    Query(shown): Query<Shown>,
) -> Response {
    let mut base = Base::of(&visitor, "sessions");
    if let Some(notice) = notice_of(shown.done.as_deref()) {
        base = base.notice(notice);
    }
    sessions_page(&state, &visitor, StatusCode::OK, base, "python".into())
}

#[derive(Deserialize)]
pub struct Create {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    template: String,
}

pub async fn create(
    State(state): State<crate::app::AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Form(form): Form<Create>,
) -> Response {
    if !session::form_is_ours(&state, &headers, &visitor, &form.csrf) {
        return forged();
    }
    let new = NewSession {
        template: form.template.trim().to_owned(),
        lifetime_seconds: None,
        idle_timeout_seconds: None,
        resources: sessions::Resources::default(),
        env: Default::default(),
        snapshot: None,
        network: None,
    };
    match sessions::create(&state, &visitor.caller, new).await {
        Ok(made) => {
            let path = format!("/api/v1/sessions/{}", made.id);
            let call = ("POST /api/v1/sessions", path, 201);
            let to = format!("/portal/sessions/{}", made.id);
            changed(&state, &visitor, &headers, call, &to, "session-started").await
        }
        Err(error) => {
            let failure = Failure::from(error);
            let base =
                Base::of(&visitor, "sessions").failed(&failure, &[("/template", "template")]);
            sessions_page(&state, &visitor, failure.status, base, form.template)
        }
    }
}

/// A page saying why a session could not be shown or changed (404 for
/// one that is not the visitor's).
fn refused(visitor: &Visitor, error: crate::service::ServiceError) -> Response {
    let failure = Failure::from(error);
    let base = Base::of(visitor, "sessions").failed(&failure, &[]);
    crate::portal::message(failure.status, base)
}

#[derive(Serialize)]
struct SessionPage {
    #[serde(flatten)]
    base: Base,
    session: SessionView,
    live: bool,
    files: Vec<sbx_sessions::files::Entry>,
    runs: Vec<ExecutionView>,
    /// The run shown, with its stream when it is still going.
    shown: Option<ExecutionView>,
    code: String,
    language: String,
}

/// The page of session `id`, or the page saying why there is none.
async fn session_page(
    state: &crate::app::AppState,
    visitor: &Visitor,
    id: &str,
    status: StatusCode,
    base: Base,
    run: Option<&str>,
    (code, language): (String, String),
) -> Response {
    let view = match sessions::get(state, &visitor.caller, id) {
        Ok(view) => view,
        Err(error) => return refused(visitor, error),
    };
    let live = view.ended_at.is_none();
    let mut runs = sessions::executions(state, &visitor.caller, id).unwrap_or_default();
    runs.reverse();
    runs.truncate(LISTED_RUNS);
    let shown = match run {
        Some(run) => runs.iter().find(|r| r.id == run).cloned(),
        None => runs.first().cloned(),
    };
    // A pod's files are its own: the page then lists none.
    let listed = session_files::fetch(state, &visitor.caller, id, String::new()).await;
    let files = match listed {
        Ok(Fetched::Listing(entries)) => entries,
        _ => Vec::new(),
    };
    page(
        status,
        "session.html",
        SessionPage {
            base,
            session: view,
            live,
            files,
            runs,
            shown,
            code,
            language,
        },
    )
}

pub async fn show(
    State(state): State<crate::app::AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(shown): Query<Shown>,
) -> Response {
    let mut base = Base::of(&visitor, "sessions");
    if let Some(notice) = notice_of(shown.done.as_deref()) {
        base = base.notice(notice);
    }
    let language = sessions::get(&state, &visitor.caller, &id)
        .ok()
        .and_then(|view| {
            template_languages(&state, &visitor)
                .into_iter()
                .find(|(name, _)| *name == view.template)
        })
        .map_or_else(|| "python".to_owned(), |(_, language)| language);
    let draft = (String::new(), language);
    session_page(
        &state,
        &visitor,
        &id,
        StatusCode::OK,
        base,
        shown.run.as_deref(),
        draft,
    )
    .await
}

#[derive(Deserialize)]
pub struct Run {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    language: String,
}

pub async fn run(
    State(state): State<crate::app::AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Run>,
) -> Response {
    if !session::form_is_ours(&state, &headers, &visitor, &form.csrf) {
        return forged();
    }
    let language = serde_json::from_value(serde_json::Value::String(form.language.clone()));
    let Ok(language) = language else {
        let failure = Failure::field("/language", "choose Python, Node.js or shell");
        let base = Base::of(&visitor, "sessions").failed(&failure, &[("/language", "language")]);
        let draft = (form.code, form.language);
        return session_page(&state, &visitor, &id, failure.status, base, None, draft).await;
    };
    let (code, command) = if form.language == "shell" {
        (None, Some(form.code.clone()))
    } else {
        (Some(form.code.clone()), None)
    };
    let new = NewExecution {
        mode: None,
        event: None,
        code,
        command,
        language: Some(language),
        timeout_seconds: None,
        env: Default::default(),
        wait: Some(false),
    };
    match sessions::execute(&state, &visitor.caller, &id, new).await {
        Ok(started) => {
            let target = format!("/api/v1/sessions/{id}/executions/{}", started.id);
            let action = "POST /api/v1/sessions/{id}/executions";
            audited(&state, &visitor.caller, &headers, action, target, 202).await;
            // Its page follows the run's stream; the code stays in the box.
            Redirect::to(&format!("/portal/sessions/{id}?run={}", started.id)).into_response()
        }
        Err(error) => {
            let failure = Failure::from(error);
            let fields = [
                ("/code", "code"),
                ("/command", "code"),
                ("/language", "language"),
            ];
            let base = Base::of(&visitor, "sessions").failed(&failure, &fields);
            let draft = (form.code, form.language);
            session_page(&state, &visitor, &id, failure.status, base, None, draft).await
        }
    }
}

pub async fn end(
    State(state): State<crate::app::AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Confirmed>,
) -> Response {
    if !session::form_is_ours(&state, &headers, &visitor, &form.csrf) {
        return forged();
    }
    match sessions::delete(&state, &visitor.caller, &id) {
        Ok(()) => {
            let call = (
                "DELETE /api/v1/sessions/{id}",
                format!("/api/v1/sessions/{id}"),
                204,
            );
            changed(
                &state,
                &visitor,
                &headers,
                call,
                "/portal/sessions",
                "session-ended",
            )
            .await
        }
        Err(error) => refused(&visitor, error),
    }
}
