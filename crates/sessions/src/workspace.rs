//! A session's workspace: a folder on the host that is a tmpfs of its
//! own, sized to the session's disk quota. Whatever the code writes there
//! stops at the quota (`ENOSPC`), so no session can fill the host's disk;
//! its pages count as memory of whoever wrote them (the session's control
//! group, for the code).

use std::{io, path::Path};

use rustix::mount::{MountFlags, UnmountFlags};

/// Makes `path` a tmpfs of `bytes`, owned by `uid` (mode 0700).
pub fn make(path: &Path, uid: u32, bytes: u64) -> io::Result<()> {
    std::fs::create_dir(path)?;
    let options = std::ffi::CString::new(format!("size={bytes},mode=0700,uid={uid},gid={uid}"))
        .map_err(io::Error::other)?;
    rustix::mount::mount(
        "sbx-workspace",
        path,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        options.as_c_str(),
    )
    .map_err(|e| {
        let _ = std::fs::remove_dir(path);
        io::Error::from(e)
    })
}

/// Unmounts and removes the workspace at `path` (a plain folder left by
/// an older server is removed too). Missing is fine.
pub fn remove(path: &Path) -> io::Result<()> {
    // Detached: a process still holding a file open cannot keep it busy.
    match rustix::mount::unmount(path, UnmountFlags::DETACH) {
        Ok(()) => {}
        // Not a mount point, or not there.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
