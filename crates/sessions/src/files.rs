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
    TooLarge(String),
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

/// Most a snapshot of a workspace holds.
pub const MAX_SNAPSHOT_BYTES: u64 = 1024 * 1024 * 1024;
pub const MAX_SNAPSHOT_FILES: u64 = 100_000;

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Packed {
    pub files: u64,
    pub bytes: u64,
}

impl Packed {
    fn count(&mut self, bytes: u64) -> Result<(), FilesError> {
        self.files += 1;
        self.bytes += bytes;
        if self.files > MAX_SNAPSHOT_FILES || self.bytes > MAX_SNAPSHOT_BYTES {
            return Err(FilesError::TooLarge(format!(
                "a snapshot holds at most {MAX_SNAPSHOT_FILES} files and {MAX_SNAPSHOT_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

fn header(
    kind: tar::EntryType,
    path: &Path,
    size: u64,
    mode: u32,
    mtime: u64,
) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_path(path)?;
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_cksum();
    Ok(header)
}

fn pack_folder(
    folder: &Dir,
    prefix: &Path,
    archive: &mut tar::Builder<impl io::Write>,
    packed: &mut Packed,
) -> Result<(), FilesError> {
    let mut entries: Vec<_> = folder.entries()?.collect::<Result<_, _>>()?;
    entries.sort_by_key(cap_std::fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        let path = prefix.join(&name);
        // Not followed: a link is what the name is.
        let kind = entry.file_type()?;
        if kind.is_dir() {
            archive.append(
                &header(tar::EntryType::Directory, &path, 0, 0o755, 0)?,
                io::empty(),
            )?;
            let inner = folder.open_dir(&name).map_err(resolved(&path))?;
            pack_folder(&inner, &path, archive, packed)?;
        } else if kind.is_file() {
            let file = folder.open(&name).map_err(resolved(&path))?.into_std();
            let metadata = file.metadata()?;
            packed.count(metadata.len())?;
            let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions()) & 0o755;
            let mtime = metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let size = metadata.len();
            // Exactly `size` bytes, whatever the code does to the file
            // meanwhile: a tar entry is as long as its header says.
            let exact = io::Read::take(
                io::Read::chain(io::Read::take(file, size), io::repeat(0)),
                size,
            );
            archive.append(
                &header(tar::EntryType::Regular, &path, size, mode, mtime)?,
                exact,
            )?;
        }
    }
    Ok(())
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
        let directory = self.directory(path.parent().unwrap_or(Path::new("")))?;
        if directory.symlink_metadata(name).is_ok_and(|m| m.is_dir()) {
            return Err(FilesError::IsDirectory(shown(&path)));
        }
        let file = directory.create(name).map_err(resolved(&path))?.into_std();
        std::os::unix::fs::fchown(&file, Some(self.uid), Some(self.uid))?;
        Ok(file)
    }

    /// The folder at (clean) `path`, made with its parents where missing,
    /// each new one owned by the session.
    fn directory(&self, path: &Path) -> Result<Dir, FilesError> {
        let mut directory = self.root.try_clone()?;
        let mut walked = PathBuf::new();
        for component in path.components() {
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
        Ok(directory)
    }

    /// Writes the workspace's folders and files as a tar archive (links
    /// are left out: a snapshot restored anywhere holds only what it
    /// names itself).
    pub fn pack(&self, out: impl io::Write) -> Result<Packed, FilesError> {
        let mut archive = tar::Builder::new(out);
        let mut packed = Packed::default();
        pack_folder(&self.root, Path::new(""), &mut archive, &mut packed)?;
        archive.finish()?;
        Ok(packed)
    }

    /// Recreates the folders and files of a tar archive (as [`Self::pack`]
    /// writes it) in the workspace, owned by the session; links and other
    /// kinds of entry are skipped, paths checked like any other.
    pub fn unpack(&self, input: impl io::Read) -> Result<Packed, FilesError> {
        let mut archive = tar::Archive::new(input);
        let mut packed = Packed::default();
        for entry in archive.entries()? {
            let mut entry = entry?;
            let name = entry.path()?.to_string_lossy().into_owned();
            let path = clean(&name)?;
            match entry.header().entry_type() {
                tar::EntryType::Directory => {
                    self.directory(&path)?;
                }
                tar::EntryType::Regular => {
                    packed.count(entry.size())?;
                    let mut file = self.create(&name)?;
                    io::copy(&mut entry, &mut file)?;
                    if let Ok(mode) = entry.header().mode() {
                        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(
                            mode & 0o755,
                        ))?;
                    }
                }
                _ => {}
            }
        }
        Ok(packed)
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
