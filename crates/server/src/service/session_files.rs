//! A session's files, for its owner: list, download, upload and remove
//! inside its workspace (resolved beneath it; links never followed out).

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sbx_sessions::files::{Entry, FilesError, Found, Workspace};
use tokio::io::AsyncWriteExt;

use super::{ServiceError, ServiceResult, caller::Caller, sessions::live};
use crate::{app::AppState, runtime::sessions::LiveSession};

/// Largest file uploaded at once (the session's `disk_bytes` may be less).
pub const MAX_UPLOAD_BYTES: u64 = 1024 * 1024 * 1024;

/// What a path names.
#[derive(Debug)]
pub enum Fetched {
    File { file: tokio::fs::File, size: u64 },
    Listing(Vec<Entry>),
}

fn refused(error: FilesError) -> ServiceError {
    match error {
        FilesError::BadPath(message) => ServiceError::Invalid(vec![super::FieldError {
            location: "query".into(),
            pointer: "path".into(),
            message,
            line: None,
            column: None,
        }]),
        FilesError::NotFound(_) => ServiceError::NotFound(error.to_string()),
        FilesError::IsDirectory(_) => ServiceError::Conflict(error.to_string()),
        FilesError::Outside(_) => ServiceError::Forbidden(error.to_string()),
        FilesError::Io(e) => {
            ServiceError::Internal(anyhow::Error::new(e).context("a workspace file"))
        }
    }
}

/// Runs `work` on the session's workspace off the async threads.
async fn in_workspace<T: Send + 'static>(
    session: &LiveSession,
    work: impl FnOnce(&Workspace) -> Result<T, FilesError> + Send + 'static,
) -> ServiceResult<T> {
    let (root, uid) = (session.workspace.clone(), session.uid.uid());
    tokio::task::spawn_blocking(move || {
        let workspace = Workspace::open(&root, uid)?;
        work(&workspace)
    })
    .await
    .map_err(|e| ServiceError::Internal(e.into()))?
    .map_err(refused)
}

/// The file at `path` to read, or the directory's entries.
pub async fn fetch(
    state: &AppState,
    caller: &Caller,
    id: &str,
    path: String,
) -> ServiceResult<Fetched> {
    let session = live(state, caller, id)?;
    let found = in_workspace(&session, move |w| w.get(&path)).await?;
    Ok(match found {
        Found::File { file, size } => Fetched::File {
            file: tokio::fs::File::from_std(file),
            size,
        },
        Found::Directory(entries) => Fetched::Listing(entries),
    })
}

/// What an upload wrote.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Stored {
    pub path: String,
    pub size: u64,
}

/// Writes `body` to `path` (replacing what was there), its parents made.
/// Past the session's `disk_bytes` (or 1 GiB) nothing is kept.
pub async fn store<E: std::fmt::Display>(
    state: &AppState,
    caller: &Caller,
    id: &str,
    path: String,
    mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
) -> ServiceResult<Stored> {
    let session = live(state, caller, id)?;
    let limit = session.limits.file_bytes.min(MAX_UPLOAD_BYTES);
    let clean = sbx_sessions::files::clean(&path).map_err(refused)?;
    let target = path.clone();
    let file = in_workspace(&session, move |w| w.create(&target)).await?;
    let mut file = tokio::fs::File::from_std(file);
    let mut size: u64 = 0;
    let outcome = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk
                .map_err(|e| ServiceError::invalid("", format!("the upload broke off: {e}")))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(ServiceError::TooLarge(format!(
                    "a file uploaded to this session is at most {limit} bytes (its disk_bytes)"
                )));
            }
            file.write_all(&chunk).await.map_err(|e| {
                ServiceError::Internal(anyhow::Error::new(e).context("writing an upload"))
            })?;
        }
        file.flush()
            .await
            .map_err(|e| ServiceError::Internal(anyhow::Error::new(e).context("writing an upload")))
    }
    .await;
    if let Err(error) = outcome {
        let _ = in_workspace(&session, move |w| w.remove(&path)).await;
        return Err(error);
    }
    Ok(Stored {
        path: clean.to_string_lossy().into_owned(),
        size,
    })
}

/// Removes the file, link or directory at `path`.
pub async fn remove(
    state: &AppState,
    caller: &Caller,
    id: &str,
    path: String,
) -> ServiceResult<()> {
    let session = live(state, caller, id)?;
    in_workspace(&session, move |w| w.remove(&path)).await
}
