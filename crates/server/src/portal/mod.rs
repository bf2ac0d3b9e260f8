//! The developer portal: server-rendered pages at `/` and under
//! `/portal/`, calling the same services as the control plane, as the
//! developer its session cookie names. Forms work without scripts; small
//! ES modules of our own add copying, countdowns and the API explorer.

mod assets;
mod pages;
mod session;
mod templates;

use std::collections::BTreeMap;

use axum::{
    Router,
    extract::Request,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Serialize;

use crate::{
    app::AppState,
    service::{ServiceError, audit, caller::Caller},
};

pub use session::Visitor;

/// Whether a request that names no sandbox is the portal's: `/` and
/// everything under `/portal`.
pub fn owns_path(path: &str) -> bool {
    path == "/"
        || path
            .strip_prefix("/portal")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub fn router() -> Router<AppState> {
    use pages::{
        account, activity, dashboard, editor, explorer, logs, projects, sandbox, sessions,
        timeline, webhooks,
    };
    Router::new()
        .route("/", get(dashboard::show))
        .route("/portal", get(|| async { Redirect::to("/") }))
        .route("/portal/assets/{name}", get(assets::serve))
        .route(
            "/portal/signin",
            get(account::sign_in_page).post(account::sign_in),
        )
        .route(
            "/portal/signup",
            get(account::sign_up_page).post(account::sign_up),
        )
        .route("/portal/signout", post(account::sign_out))
        .route("/portal/account", get(account::show))
        .route("/portal/activity", get(activity::show))
        .route(
            "/portal/projects",
            get(projects::list).post(projects::import),
        )
        .route(
            "/portal/projects/{name}",
            get(projects::show).post(projects::publish),
        )
        .route("/portal/projects/{name}/files", get(projects::open_file))
        .route("/portal/projects/{name}/diff", get(projects::diff))
        .route(
            "/portal/projects/{name}/files/{kind}/{item}",
            get(editor::show).post(editor::save),
        )
        .route("/portal/account/tokens", post(account::create_token))
        .route(
            "/portal/account/tokens/{token}/revoke",
            post(account::revoke_token),
        )
        .route(
            "/portal/sessions",
            get(sessions::list).post(sessions::create),
        )
        .route("/portal/sessions/{id}", get(sessions::show))
        .route("/portal/sessions/{id}/run", post(sessions::run))
        .route("/portal/sessions/{id}/end", post(sessions::end))
        .route("/portal/sandboxes", post(dashboard::create))
        .route("/portal/sandboxes/{id}", get(sandbox::show))
        .route("/portal/sandboxes/{id}/delete", post(dashboard::delete))
        .route("/portal/sandboxes/{id}/keys", post(sandbox::create_key))
        .route(
            "/portal/sandboxes/{id}/keys/{key}/roll",
            post(sandbox::roll_key),
        )
        .route(
            "/portal/sandboxes/{id}/keys/{key}/revoke",
            post(sandbox::revoke_key),
        )
        .route(
            "/portal/sandboxes/{id}/scenario",
            post(sandbox::set_scenario),
        )
        .route("/portal/sandboxes/{id}/clock", post(sandbox::move_clock))
        .route("/portal/sandboxes/{id}/chaos", post(sandbox::set_chaos))
        .route("/portal/sandboxes/{id}/reset", post(sandbox::reset))
        .route("/portal/sandboxes/{id}/ttl", post(sandbox::extend))
        .route("/portal/sandboxes/{id}/seed", post(sandbox::seed))
        .route(
            "/portal/sandboxes/{id}/oauth-clients",
            post(sandbox::create_client),
        )
        .route(
            "/portal/sandboxes/{id}/oauth-clients/{client}/delete",
            post(sandbox::delete_client),
        )
        .route("/portal/sandboxes/{id}/explorer", get(explorer::show))
        .route("/portal/sandboxes/{id}/logs", get(logs::list))
        .route("/portal/sandboxes/{id}/timeline", get(timeline::show))
        .route("/portal/sandboxes/{id}/logs/{request}", get(logs::show))
        .route(
            "/portal/sandboxes/{id}/logs/{request}/replay",
            post(logs::replay_request),
        )
        .route(
            "/portal/sandboxes/{id}/webhooks",
            get(webhooks::show).post(webhooks::create),
        )
        .route(
            "/portal/sandboxes/{id}/webhooks/test",
            post(webhooks::send_test),
        )
        .route(
            "/portal/sandboxes/{id}/webhooks/{endpoint}/enabled",
            post(webhooks::set_enabled),
        )
        .route(
            "/portal/sandboxes/{id}/webhooks/{endpoint}/rotate",
            post(webhooks::rotate),
        )
        .route(
            "/portal/sandboxes/{id}/webhooks/{endpoint}/edit",
            post(webhooks::edit),
        )
        .route(
            "/portal/sandboxes/{id}/webhooks/{endpoint}/redeliver",
            post(webhooks::redeliver),
        )
        .route(
            "/portal/sandboxes/{id}/webhooks/{endpoint}/delete",
            post(webhooks::delete),
        )
}

/// A path of the portal's with no page.
pub async fn not_found(request: Request) -> Response {
    let base = Base::anonymous().problem(format!("There is no page at {}.", request.uri().path()));
    message(StatusCode::NOT_FOUND, base)
}

/// A page that only says something (its base's notice or problem).
pub fn message(status: StatusCode, base: Base) -> Response {
    templates::page(status, "message.html", base)
}

/// What every page's layout reads: who is signed in, the CSRF token for
/// its forms, the section of the navigation, and one message.
#[derive(Serialize, Default)]
pub struct Base {
    me: Option<Me>,
    csrf: String,
    section: &'static str,
    notice: Option<String>,
    problem: Option<String>,
    /// Inline messages by form field.
    errors: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Me {
    email: String,
    admin: bool,
    role: &'static str,
    created_at: String,
}

impl Base {
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn of(visitor: &Visitor, section: &'static str) -> Self {
        Self {
            me: Some(Me {
                email: visitor.account.email.clone(),
                admin: visitor.caller.is_admin(),
                role: visitor.account.role.as_str(),
                created_at: crate::app::rfc3339(visitor.account.created_at_ms),
            }),
            csrf: visitor.csrf.clone(),
            section,
            ..Self::default()
        }
    }

    pub fn notice(mut self, notice: impl Into<String>) -> Self {
        self.notice = Some(notice.into());
        self
    }

    pub fn problem(mut self, problem: impl Into<String>) -> Self {
        self.problem = Some(problem.into());
        self
    }

    /// The failure shown on the page: a field's message beside the field
    /// its pointer names (`/ttl_seconds` → `ttl` through `fields`), the
    /// rest at the top.
    pub fn failed(mut self, failure: &Failure, fields: &[(&str, &str)]) -> Self {
        for (pointer, message) in &failure.fields {
            match fields.iter().find(|(p, _)| pointer.starts_with(p)) {
                Some((_, field)) => {
                    self.errors.insert((*field).to_owned(), message.clone());
                }
                None => self.problem = Some(message.clone()),
            }
        }
        if failure.fields.is_empty() {
            self.problem = Some(failure.message.clone());
        }
        self
    }
}

/// A service's refusal, as a page shows it: the status to answer with, a
/// sentence, and the messages of the fields at fault.
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

impl Failure {
    /// A form's own check failed (before any service was called).
    pub fn field(pointer: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            fields: vec![(pointer.to_owned(), message.clone())],
            message,
        }
    }
}

impl From<ServiceError> for Failure {
    fn from(error: ServiceError) -> Self {
        let status = match &error {
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::Invalid(_) | ServiceError::InvalidProject { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ServiceError::NoLifecycle(_) | ServiceError::Conflict(_) => StatusCode::CONFLICT,
            ServiceError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceError::Forbidden(_) | ServiceError::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            ServiceError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ServiceError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ServiceError::Unavailable(_) | ServiceError::Moving(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ServiceError::Store(_) | ServiceError::Internal(_) => {
                tracing::error!(error = %format!("{error:#}"), "a portal action failed");
                return Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    message: "The server failed to do this; the error has been logged.".into(),
                    fields: Vec::new(),
                };
            }
        };
        let fields = match &error {
            ServiceError::Invalid(errors) | ServiceError::InvalidProject { errors, .. } => errors
                .iter()
                .map(|e| (e.pointer.clone(), e.message.clone()))
                .collect(),
            _ => Vec::new(),
        };
        Self {
            status,
            message: sentence(&error.to_string()),
            fields,
        }
    }
}

/// A message as a sentence: capitalized, with a full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A post refused because it did not come from one of our pages.
pub fn forged() -> Response {
    (
        StatusCode::FORBIDDEN,
        "This form was not sent from a page of this server (or the page is from an earlier session): reload the page and try again.",
    )
        .into_response()
}

/// What a page says after a change it redirected to: fixed sentences by
/// code, so a link cannot make a page say what it likes.
const NOTICES: [(&str, &str); 22] = [
    ("created", "The sandbox is ready."),
    ("deleted", "The sandbox and its data are gone."),
    (
        "key-revoked",
        "The key is revoked: calls with it fail from now on.",
    ),
    (
        "scenario-set",
        "Scenario set: every call of its operation answers that way until you clear it.",
    ),
    (
        "scenario-cleared",
        "Scenario cleared: calls answer as usual.",
    ),
    (
        "clock-moved",
        "The clock moved; every job that fell due on the way has run.",
    ),
    ("clock-frozen", "The clock is frozen."),
    ("clock-resumed", "The clock runs again."),
    ("chaos-set", "The chaos profile is set."),
    ("chaos-cleared", "Chaos cleared."),
    ("reset", "The sandbox's data is back to how it was made."),
    ("extended", "The sandbox's time to live is extended."),
    ("token-revoked", "The token is revoked."),
    (
        "client-deleted",
        "The client is deleted: its refresh tokens stop working.",
    ),
    ("endpoint-enabled", "The endpoint is enabled."),
    (
        "endpoint-disabled",
        "The endpoint is disabled: nothing is delivered to it until you enable it.",
    ),
    (
        "endpoint-deleted",
        "The endpoint and its deliveries are gone.",
    ),
    ("endpoint-saved", "The endpoint is saved."),
    (
        "redelivering",
        "Queued again: the deliveries go out in a moment.",
    ),
    (
        "event-sent",
        "The test event is emitted: its deliveries go out in a moment.",
    ),
    (
        "session-started",
        "The session is ready: run code in it below.",
    ),
    (
        "session-ended",
        "The session ended: its processes and files are gone.",
    ),
];

/// The notice a page shows for `?done={code}`.
pub fn notice_of(code: Option<&str>) -> Option<&'static str> {
    let code = code?;
    NOTICES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, text)| *text)
}

/// Back to `to` after a change, with the notice of `code`.
pub fn done(to: &str, code: &str) -> Response {
    debug_assert!(notice_of(Some(code)).is_some(), "{code}");
    let separator = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{separator}done={code}")).into_response()
}

/// After a change a form asked for: audited as the API `call` (action,
/// target, status) that makes it, and back to `to` with the notice of
/// `code`.
pub async fn changed(
    state: &AppState,
    visitor: &Visitor,
    headers: &HeaderMap,
    call: (&str, String, u16),
    to: &str,
    code: &str,
) -> Response {
    let (action, target, status) = call;
    audited(state, &visitor.caller, headers, action, target, status).await;
    done(to, code)
}

/// Records a change made from the portal in the audit log, in the words
/// of the control-plane call that makes the same change.
pub async fn audited(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    action: &str,
    target: String,
    status: u16,
) {
    let mut entry = audit::by_system(action, target, status, "from the portal", None);
    entry.actor = caller.actor();
    entry.owner = caller.owner().cloned();
    entry.user_agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(audit::capped);
    audit::record(state, entry).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portal_owns_the_root_and_its_prefix_only() {
        for path in ["/", "/portal", "/portal/", "/portal/signin"] {
            assert!(owns_path(path), "{path}");
        }
        for path in ["/portals", "/v1/items", "/sbx/x/", "/api/v1", ""] {
            assert!(!owns_path(path), "{path}");
        }
    }

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(sentence("ttl_seconds must be 1"), "Ttl_seconds must be 1.");
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), ".");
    }
}
