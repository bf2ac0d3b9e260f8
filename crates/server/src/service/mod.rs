//! The domain operations every entry point calls: the control plane's
//! handlers, `sbx serve --demo`, the reaper, `sbx mock` — and the portal,
//! OAuth and MCP entry points to come. A service takes what it needs from
//! the runtime, checks its input against the domain's rules and limits,
//! changes the store and the registry together, and says what went wrong
//! as a [`ServiceError`], never as an HTTP answer.

pub mod accounts;
pub mod audit;
pub mod caller;
pub mod clock;
pub mod events;
pub mod functions;
pub mod isolation;
pub mod keys;
pub mod logs;
pub mod oauth;
pub mod projects;
pub mod quotas;
pub mod replay;
pub mod sandboxes;
pub mod session_files;
pub mod sessions;
pub mod snippets;
pub mod templates;
pub mod timeline;
pub mod usage;
pub mod webhooks;

use sbx_store::StoreError;
use serde::Serialize;

/// A problem with one field of the input or one place in a project file.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where the problem is: `body`, `spec`, `query`, a project file, …
    pub location: String,
    /// JSON pointer inside that location.
    pub pointer: String,
    pub message: String,
    /// Line and column in a project file (scripts, templates, data files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl FieldError {
    /// A problem with the input's member at `pointer`.
    pub fn body(pointer: &str, message: impl Into<String>) -> Self {
        Self {
            location: "body".into(),
            pointer: pointer.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }

    /// A problem with the query parameter `parameter`.
    pub fn query(parameter: &str, message: impl Into<String>) -> Self {
        Self {
            location: "query".into(),
            pointer: parameter.into(),
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

/// Why a domain operation did not happen. Every variant but `Store` and
/// `Internal` is the caller's to fix, and says how.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// A named project, sandbox, record, endpoint or event does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The collection declares no lifecycle.
    #[error("{0}")]
    NoLifecycle(String),
    /// Members of the input break the domain's rules.
    #[error("{}", messages(.0))]
    Invalid(Vec<FieldError>),
    /// The project (spec and files) does not compile: nothing changed.
    #[error("{detail}")]
    InvalidProject {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// The input is over a configured size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The change contradicts the present state.
    #[error("{0}")]
    Conflict(String),
    /// The caller is known but may not do this (a developer publishing a
    /// project). Another tenant's object is [`Self::NotFound`] instead.
    #[error("{0}")]
    Forbidden(String),
    /// A developer's quota is reached: which, and its use.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The credentials are wrong (a sign-in).
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many failed attempts; the caller waits `retry_after` seconds.
    #[error("{detail}")]
    TooManyAttempts { detail: String, retry_after: u64 },
    /// What is needed to do it is missing on this server (bubblewrap for
    /// code sessions), said with what to install.
    #[error("{0}")]
    Unavailable(String),
    /// The sandbox is moving to another server that shares the database
    /// (for milliseconds): the request is to be sent again.
    #[error("{0}")]
    Moving(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A failure of the server itself (a worker gone, a corrupt row).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn messages(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

impl ServiceError {
    /// One invalid member of the input, at `pointer`.
    pub fn invalid(pointer: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::body(pointer, message)])
    }

    /// The error as text for a terminal: what went wrong, then one line
    /// per problem of a project that does not compile.
    pub fn describe(&self) -> String {
        let mut text = format!("{self:#}");
        if let Self::InvalidProject { errors, .. } = self {
            for error in errors {
                let at = if error.pointer.is_empty() {
                    "(root)"
                } else {
                    &error.pointer
                };
                text.push_str(&format!("\n  {at}: {}", error.message));
            }
        }
        text
    }
}

impl From<crate::workers::writer::WriteFailed> for ServiceError {
    fn from(error: crate::workers::writer::WriteFailed) -> Self {
        match &error {
            crate::workers::writer::WriteFailed::Store(refused)
                if let StoreError::Fenced(why) = &**refused =>
            {
                Self::Store(StoreError::Fenced(why.clone()))
            }
            _ => Self::Internal(anyhow::Error::new(error).context("saving the changes")),
        }
    }
}

impl From<crate::workers::user_work::WorkFailed> for ServiceError {
    fn from(error: crate::workers::user_work::WorkFailed) -> Self {
        Self::Internal(anyhow::Error::new(error).context("running user work"))
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Saves what a control-plane call changed in a sandbox's records, linked
/// on its timeline to the call.
async fn persist_call(
    state: &crate::app::AppState,
    sandbox_id: &str,
    journal: sbx_engine::Journal,
    request_id: &str,
) -> ServiceResult<()> {
    let origin = sbx_store::Origin::Control(request_id.into());
    crate::data_plane::persist(state, sandbox_id, journal, None, origin).await?;
    Ok(())
}
