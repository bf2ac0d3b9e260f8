//! Orphans of jails. When a command ends by itself, bubblewrap's outer
//! process exits before it reaps its PID namespace's init, and the kernel
//! hands that init to the nearest subreaper, else to PID 1, which may
//! never reap it (a container whose PID 1 is the server). The server
//! makes itself the subreaper and reaps those inits itself.

use std::io;

/// Makes this process the subreaper of its descendants' orphans.
pub fn adopt_orphans() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).map_err(Into::into)
}

/// Reaps this process's zombie children that lived in a nested PID
/// namespace (jails' inits): never a child it spawned itself, which its
/// own waits reap. How many were reaped.
pub fn reap_orphans() -> usize {
    // Children of any of this process's threads (a reparented orphan
    // becomes the child of one of them).
    let children: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    let mut reaped = 0;
    for child in children {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{child}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .map(str::trim)
        };
        let orphaned_init = field("State:").is_some_and(|s| s.starts_with('Z'))
            && field("NSpid:").is_some_and(|ids| ids.split_whitespace().count() > 1);
        if let (true, Some(pid)) = (orphaned_init, rustix::process::Pid::from_raw(child))
            && rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG)
                .is_ok_and(|waited| waited.is_some())
        {
            reaped += 1;
        }
    }
    reaped
}
