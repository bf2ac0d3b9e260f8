//! Code sessions: a workspace where untrusted code runs, each run inside a
//! bubblewrap jail as the session's own host uid (or a Docker container, a
//! Kubernetes pod: see [`runtime`]), its output kept as numbered events
//! that a client can read again from any offset.
//!
//! The control plane (`sbx-server`) owns sessions, their lifetimes and who
//! may use them; this crate only knows how to jail and run a command.

pub mod cgroup;
pub mod files;
pub mod handler;
pub mod jail;
pub mod output;
pub mod reaper;
pub mod run;
pub mod runtime;
pub mod seccomp;
pub mod uids;
pub mod worker;
pub mod workspace;

pub use cgroup::{Cgroups, Group, GroupLimits, Usage};
pub use jail::{Jail, JailError, Limits};
pub use output::{Event, EventKind, HandlerResult, Output};
pub use run::{Ended, Language, Program, Status, run, run_in};
pub use runtime::{BoxSpec, Runtime, SessionBox};
pub use uids::{UidPool, UidSlot};
pub use worker::{Worker, WorkerError};
