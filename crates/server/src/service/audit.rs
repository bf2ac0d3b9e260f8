//! The audit log's writing side: entries for the changes the server makes
//! on its own, and storing an entry without ever failing the change.

use sbx_store::{AccountId, AuditQuery, AuditRecord};

use super::{ServiceError, ServiceResult, caller::Caller};

use crate::app::{AppState, now_ms};

/// Longest action, target, user agent and detail kept, in bytes: an
/// anonymous caller chooses them, and must not be able to store much.
const MAX_TEXT: usize = 512;

/// A change the server made on its own (the demo set-up, an expiry), in
/// the words of the call that would have made it: `action` and `status`
/// as that call, `path` its target (or what it created, for a 201), and
/// `why` in words; `owner`, the account whose object it changed.
pub fn by_system(
    action: &str,
    path: String,
    status: u16,
    why: &str,
    owner: Option<AccountId>,
) -> AuditRecord {
    let (target, resource) = match action.split_once(' ') {
        Some((_, route)) if status == 201 => (route.to_owned(), Some(path)),
        _ => (path, None),
    };
    AuditRecord {
        seq: 0,
        at_ms: now_ms(),
        actor: "system".to_owned(),
        action: action.to_owned(),
        target,
        status: i64::from(status),
        request_id: None,
        client: None,
        user_agent: None,
        resource,
        detail: Some(why.to_owned()),
        owner,
    }
}

/// The entries that match `query`, newest first: a developer's own only.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    mut query: AuditQuery,
) -> ServiceResult<Vec<AuditRecord>> {
    if !caller.is_admin() {
        query.owner =
            Some(caller.owner().cloned().ok_or_else(|| {
                ServiceError::Forbidden("only admins may read the audit log".into())
            })?);
    }
    Ok(state.store.list_audit(&query).await?)
}

/// Stores an entry; a failure is logged, never turned into the caller's.
pub async fn record(state: &AppState, entry: AuditRecord) {
    if let Err(error) = state.store.add_audit(&entry).await {
        tracing::error!(%error, action = %entry.action, "writing the audit log failed");
    }
}

/// `text` cut to [`MAX_TEXT`] bytes, marked with `…` when cut.
pub fn capped(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
