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
        FilesError::BadPath(message) => {
            ServiceError::Invalid(vec![super::FieldError::query("path", message)])
        }
        FilesError::NotFound(_) => ServiceError::NotFound(error.to_string()),
        FilesError::IsDirectory(_) => ServiceError::Conflict(error.to_string()),
        FilesError::TooLarge(message) => ServiceError::TooLarge(message),
        FilesError::Outside(_) => ServiceError::Forbidden(error.to_string()),
        FilesError::Io(e) => {
            ServiceError::Internal(anyhow::Error::new(e).context("a workspace file"))
        }
    }
}

/// Runs `work` on the session's workspace off the async threads.
/// Why files cannot be reached in a session whose runtime keeps them away
/// from the server.
pub(super) const NO_SHARED_WORKSPACE: &str = "this server runs sessions on Kubernetes, whose pods keep their files: the files API, snapshots and handler mode need the bwrap or docker runtime";

async fn in_workspace<T: Send + 'static>(
    session: &LiveSession,
    work: impl FnOnce(&Workspace) -> Result<T, FilesError> + Send + 'static,
) -> ServiceResult<T> {
    if !session.boxed.shares_workspace() {
        return Err(ServiceError::Unavailable(NO_SHARED_WORKSPACE.into()));
    }
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
            file.write_all(&chunk).await.map_err(upload_failed)?;
        }
        file.flush().await.map_err(upload_failed)
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

/// A full workspace is the client's to clear; anything else is ours.
fn upload_failed(error: std::io::Error) -> ServiceError {
    if error.raw_os_error() == Some(libc::ENOSPC) {
        ServiceError::TooLarge(
            "the session's workspace is full (its disk_bytes): remove files first".into(),
        )
    } else {
        ServiceError::Internal(anyhow::Error::new(error).context("writing an upload"))
    }
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

/// The snapshot namespace of the caller: its account, or `admin`.
fn owner_key(caller: &Caller) -> String {
    caller
        .owner()
        .map_or_else(|| "admin".to_owned(), |owner| owner.to_string())
}

fn checked_name(name: &str, pointer: &str) -> ServiceResult<()> {
    let valid = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            pointer,
            "a snapshot name is 1 to 64 letters, digits, -, _ and ., starting with a letter or digit",
        ))
    }
}

/// A scratch file for an archive on its way in or out: root's, in the
/// sessions folder, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(state: &AppState) -> Self {
        Self(state.sessions.root.join(format!(
            ".snapshot-{}.tar",
            crate::runtime::ids::random_token(16)
        )))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn internal(context: &'static str) -> impl FnOnce(std::io::Error) -> ServiceError {
    move |e| ServiceError::Internal(anyhow::Error::new(e).context(context))
}

/// A saved snapshot.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SnapshotView {
    pub name: String,
    pub files: u64,
    /// Bytes of the files it holds.
    pub bytes: u64,
    /// Where it is kept (the store's location, without credentials).
    pub store: String,
}

/// Saves the session's folders and files (not links) as the caller's
/// snapshot `name` (the session's id when none), replacing one of that name.
pub async fn save_snapshot(
    state: &AppState,
    caller: &Caller,
    id: &str,
    name: Option<String>,
) -> ServiceResult<SnapshotView> {
    let session = live(state, caller, id)?;
    let name = name.unwrap_or_else(|| session.id.clone());
    checked_name(&name, "/name")?;
    let scratch = Scratch::new(state);
    let path = scratch.0.clone();
    let packed = in_workspace(&session, move |w| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        w.pack(std::io::BufWriter::new(file))
    })
    .await?;
    let file = tokio::fs::File::open(&scratch.0)
        .await
        .map_err(internal("reading a snapshot"))?;
    state
        .snapshots
        .save(&owner_key(caller), &name, file)
        .await
        .map_err(ServiceError::Internal)?;
    tracing::info!(session = %session.id, snapshot = %name, files = packed.files, "snapshot saved");
    Ok(SnapshotView {
        name,
        files: packed.files,
        bytes: packed.bytes,
        store: state.snapshots.location.clone(),
    })
}

/// The caller's snapshots.
pub async fn snapshots(
    state: &AppState,
    caller: &Caller,
) -> ServiceResult<Vec<crate::runtime::snapshots::Saved>> {
    state
        .snapshots
        .list(&owner_key(caller))
        .await
        .map_err(ServiceError::Internal)
}

/// Removes the caller's snapshot `name`.
pub async fn delete_snapshot(state: &AppState, caller: &Caller, name: &str) -> ServiceResult<()> {
    checked_name(name, "name")?;
    let removed = state
        .snapshots
        .delete(&owner_key(caller), name)
        .await
        .map_err(ServiceError::Internal)?;
    removed
        .then_some(())
        .ok_or_else(|| ServiceError::NotFound(format!("snapshot {name:?} does not exist")))
}

/// Fills a new session's workspace from the caller's snapshot `name`.
pub(super) async fn restore(
    state: &AppState,
    caller: &Caller,
    session: &LiveSession,
    name: &str,
) -> ServiceResult<sbx_sessions::files::Packed> {
    checked_name(name, "/snapshot")?;
    let scratch = Scratch::new(state);
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&scratch.0)
        .await
        .map_err(internal("downloading a snapshot"))?;
    let found = state
        .snapshots
        .load(&owner_key(caller), name, &mut file)
        .await
        .map_err(ServiceError::Internal)?;
    if !found {
        return Err(ServiceError::NotFound(format!(
            "snapshot {name:?} does not exist"
        )));
    }
    drop(file);
    let path = scratch.0.clone();
    in_workspace(session, move |w| {
        w.unpack(std::io::BufReader::new(std::fs::File::open(&path)?))
    })
    .await
}
