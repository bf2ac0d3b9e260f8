//! A session's workspace as seen from outside the jail: listing, reading,
//! writing and removing files on a client's behalf.
//!
//! The server is root and the workspace is the jailed code's to shape, so
//! every path is resolved beneath the workspace by `cap-std` (the kernel's
//! `openat2(RESOLVE_BENEATH)` where it has it): `..`, absolute paths and
//! symlinks that lead outside are refused, whatever the code planted, and
//! whatever it changes while a request is served. What is written is owned
//! by the session's uid, so the code can use and remove it.

use std::{
    io,
    path::{Component, Path, PathBuf},
    time::UNIX_EPOCH,
};

use cap_std::{ambient_authority, fs::Dir};
use serde::Serialize;

/// Longest path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{0}")]
    BadPath(String),
    #[error("{0:?} does not exist in the workspace")]
    NotFound(String),
    #[error("{0:?} is a directory")]
    IsDirectory(String),
    #[error("{0:?} leads outside the workspace (a link or ..), which is not followed")]
    Outside(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub name: String,
    /// From the workspace's root, `/`-separated, without a leading `/`.
    pub path: String,
    /// `file`, `directory` or `symlink` (links are listed, not followed).
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: u64,
    /// Seconds since the Unix epoch.
    pub modified: u64,
}

/// What a path names.
#[derive(Debug)]
pub enum Found {
    File { file: std::fs::File, size: u64 },
    Directory(Vec<Entry>),
}

/// A workspace, opened for a client's requests.
#[derive(Debug)]
pub struct Workspace {
    root: Dir,
    uid: u32,
}

/// `path` made relative and checked: `/`-separated names, no `.` or `..`,
/// no NUL. The empty path is the workspace itself.
pub fn clean(path: &str) -> Result<PathBuf, FilesError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(FilesError::BadPath(format!(
            "a path is at most {MAX_PATH_BYTES} bytes"
        )));
    }
    if path.contains('\0') {
        return Err(FilesError::BadPath("a path must not contain NUL".into()));
    }
    let mut clean = PathBuf::new();
    for component in Path::new(path.trim_start_matches('/')).components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::CurDir => {}
            _ => {
                return Err(FilesError::BadPath(format!(
                    "{path:?}: a path is names under the workspace, without .."
                )));
            }
        }
    }
    Ok(clean)
}

fn shown(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Maps the errors cap-std gives for a path that escapes, and for a
/// missing one, to what a client is told.
fn resolved(path: &Path) -> impl FnOnce(io::Error) -> FilesError + '_ {
    move |error| match error.kind() {
        io::ErrorKind::NotFound => FilesError::NotFound(shown(path)),
        // cap-std's refusal of an escape; ELOOP for a link not followed.
        io::ErrorKind::PermissionDenied => FilesError::Outside(shown(path)),
        _ if error.raw_os_error() == Some(libc::ELOOP)
            || error.raw_os_error() == Some(libc::EXDEV) =>
        {
            FilesError::Outside(shown(path))
        }
        _ => FilesError::Io(error),
    }
}

impl Workspace {
    /// Opens the workspace at `root`, whose files belong to `uid`.
    pub fn open(root: &Path, uid: u32) -> io::Result<Self> {
        Ok(Self {
            root: Dir::open_ambient_dir(root, ambient_authority())?,
            uid,
        })
    }

    /// A file to read, or a directory's entries (sorted by name).
    pub fn get(&self, path: &str) -> Result<Found, FilesError> {
        let path = clean(path)?;
        let target = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path.as_path()
        };
        let metadata = self.root.metadata(target).map_err(resolved(&path))?;
        if metadata.is_dir() {
            return self.list(target, &path).map(Found::Directory);
        }
        let file = self.root.open(target).map_err(resolved(&path))?;
        let size = file.metadata().map_err(resolved(&path))?.len();
        Ok(Found::File {
            file: file.into_std(),
            size,
        })
    }

    fn list(&self, target: &Path, path: &Path) -> Result<Vec<Entry>, FilesError> {
        let mut entries = Vec::new();
        for entry in self.root.read_dir(target).map_err(resolved(path))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Links are described, never followed.
            let metadata = entry.metadata()?;
            let kind = if metadata.is_symlink() {
                "symlink"
            } else if metadata.is_dir() {
                "directory"
            } else {
                "file"
            };
            let modified = metadata
                .modified()
                .ok()
                .and_then(|t| t.into_std().duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            entries.push(Entry {
                path: shown(&path.join(&name)),
                name,
                kind,
                size: metadata.len(),
                modified,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// A new (or emptied) file at `path` to write, its missing parent
    /// directories made; all owned by the session's uid. A link on the way
    /// is followed only while it stays inside the workspace.
    pub fn create(&self, path: &str) -> Result<std::fs::File, FilesError> {
        let path = clean(path)?;
        let Some(name) = path.file_name() else {
            return Err(FilesError::BadPath("name a file to write".into()));
        };
        let mut directory = self.root.try_clone()?;
        let mut walked = PathBuf::new();
        for component in path.parent().into_iter().flat_map(Path::components) {
            walked.push(component);
            match directory.create_dir(component) {
                // Owned through its parent's handle, the name not followed.
                Ok(()) => rustix::fs::chownat(
                    &directory,
                    component.as_os_str(),
                    Some(self.owner()),
                    Some(self.group()),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(io::Error::from)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(resolved(&walked)(e)),
            }
            directory = directory.open_dir(component).map_err(resolved(&walked))?;
        }
        if directory.symlink_metadata(name).is_ok_and(|m| m.is_dir()) {
            return Err(FilesError::IsDirectory(shown(&path)));
        }
        let file = directory.create(name).map_err(resolved(&path))?.into_std();
        std::os::unix::fs::fchown(&file, Some(self.uid), Some(self.uid))?;
        Ok(file)
    }

    fn owner(&self) -> rustix::fs::Uid {
        rustix::fs::Uid::from_raw(self.uid)
    }

    fn group(&self) -> rustix::fs::Gid {
        rustix::fs::Gid::from_raw(self.uid)
    }

    /// Removes the file, link or directory (with its contents) at `path`.
    pub fn remove(&self, path: &str) -> Result<(), FilesError> {
        let path = clean(path)?;
        if path.as_os_str().is_empty() {
            return Err(FilesError::BadPath(
                "the workspace itself cannot be removed".into(),
            ));
        }
        let metadata = self.root.symlink_metadata(&path).map_err(resolved(&path))?;
        if metadata.is_dir() {
            self.root.remove_dir_all(&path).map_err(resolved(&path))
        } else {
            self.root.remove_file(&path).map_err(resolved(&path))
        }
    }
}
