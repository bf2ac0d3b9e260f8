//! The bubblewrap jail a run happens in. The command is started as the
//! session's host uid (never root), at idle CPU priority (`chrt --idle`),
//! under resource limits set by `prlimit` before bubblewrap starts, and
//! bubblewrap then takes every
//! namespace away: no network, no other processes, no host files but a
//! read-only `/usr`, a private `/tmp` and the workspace.

use std::path::{Path, PathBuf};

use tokio::process::Command;

/// Where the jail's tools are looked for, in order.
const BWRAP: [&str; 2] = ["/usr/bin/bwrap", "/usr/local/bin/bwrap"];
const PRLIMIT: [&str; 2] = ["/usr/bin/prlimit", "/bin/prlimit"];
const CHRT: [&str; 2] = ["/usr/bin/chrt", "/bin/chrt"];
const TASKSET: [&str; 2] = ["/usr/bin/taskset", "/bin/taskset"];

/// The environment every run starts from (`--clearenv` drops the host's).
const BASE_ENV: [(&str, &str); 4] = [
    ("PATH", "/usr/local/bin:/usr/bin:/bin"),
    ("HOME", "/workspace"),
    ("LANG", "C.UTF-8"),
    ("PYTHONDONTWRITEBYTECODE", "1"),
];

/// Limits on one run, set as rlimits (per process; `processes` counts the
/// session's uid, so it bounds the whole session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub cpu_seconds: u64,
    pub file_bytes: u64,
    pub open_files: u64,
    pub processes: u64,
    pub tmp_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_seconds: 60,
            file_bytes: 256 * 1024 * 1024,
            open_files: 256,
            processes: 64,
            tmp_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JailError {
    #[error(
        "bubblewrap (bwrap) is not installed: install the Debian package `bubblewrap` (apt-get install bubblewrap)"
    )]
    NoBubblewrap,
    #[error("prlimit, chrt or taskset is not installed: install the Debian package `util-linux`")]
    NoUtilLinux,
    #[error(
        "environment variable name {0:?} is not valid: use letters, digits and _, not starting with a digit"
    )]
    BadEnvName(String),
}

/// A session's jail: its workspace, its uid, its limits.
#[derive(Debug, Clone)]
pub struct Jail {
    pub workspace: PathBuf,
    pub uid: u32,
    pub limits: Limits,
    /// CPUs the jail may run on (a `taskset -c` list such as `1-3`), so
    /// busy jails leave the others to the server; all when `None`.
    pub cpus: Option<String>,
    /// The seccomp program file ([`crate::seccomp::write`]) bubblewrap
    /// loads before the command runs; none when `None`.
    pub seccomp: Option<PathBuf>,
    /// The session's egress proxy socket, when it may reach the network
    /// (its allowlist is the proxy's to enforce); no network when `None`.
    pub egress: Option<PathBuf>,
    /// A template's package layer, bound read-only at [`LAYER`] with its
    /// packages on the interpreters' paths; none when `None`.
    pub layer: Option<PathBuf>,
}

/// Where a template's packages are inside the jail: Python's under
/// `python/` (`pip install --target`), Node's under `node/node_modules`.
pub const LAYER: &str = "/opt/template";

/// The variables that put a layer's packages (and their commands) on the
/// interpreters' paths.
const LAYER_ENV: [(&str, &str); 3] = [
    ("PYTHONPATH", "/opt/template/python"),
    ("NODE_PATH", "/opt/template/node/node_modules"),
    (
        "PATH",
        "/opt/template/python/bin:/opt/template/node/node_modules/.bin:/usr/local/bin:/usr/bin:/bin",
    ),
];

/// Where the egress proxy socket is inside the jail, and the port the
/// jail's own relay listens on.
pub(crate) const EGRESS_SOCKET: &str = "/run/sbx-egress.sock";
const EGRESS_PORT: &str = "3128";
const EGRESS_PROXY: &str = "http://127.0.0.1:3128";
const FORWARD: &str = include_str!("forward.py");

/// The command that runs a command behind the egress relay.
pub(crate) const EGRESS_RELAY: [&str; 5] = ["python3", "-c", FORWARD, EGRESS_PORT, EGRESS_SOCKET];

/// The environment a run starts with: the base, the proxy's variables
/// (with egress), the layer's paths (with a layer), then `env`.
pub(crate) fn environment(
    egress: bool,
    layer: bool,
    env: &[(String, String)],
) -> Vec<(String, String)> {
    let proxy_env: &[(&str, &str)] = if egress {
        &[
            ("HTTP_PROXY", EGRESS_PROXY),
            ("HTTPS_PROXY", EGRESS_PROXY),
            ("http_proxy", EGRESS_PROXY),
            ("https_proxy", EGRESS_PROXY),
            ("NO_PROXY", "localhost,127.0.0.1"),
            ("no_proxy", "localhost,127.0.0.1"),
            // Node trusts the system's certificates, as Python does
            // (npm's `cafile` does not reach its proxy agent).
            ("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt"),
        ]
    } else {
        &[]
    };
    let layer_env: &[(&str, &str)] = if layer { &LAYER_ENV } else { &[] };
    BASE_ENV
        .iter()
        .chain(proxy_env)
        .chain(layer_env)
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .chain(env.iter().cloned())
        .collect()
}

/// The descriptor the seccomp program reaches bubblewrap on.
const SECCOMP_FD: &str = "3";

fn first_present(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|path| path.is_file())
}

/// Whether the jail can be built on this machine (bubblewrap, prlimit and
/// chrt, taskset present), saying what to install when not.
pub fn check() -> Result<(), JailError> {
    first_present(&BWRAP).ok_or(JailError::NoBubblewrap)?;
    first_present(&PRLIMIT).ok_or(JailError::NoUtilLinux)?;
    first_present(&CHRT).ok_or(JailError::NoUtilLinux)?;
    first_present(&TASKSET).ok_or(JailError::NoUtilLinux)?;
    Ok(())
}

/// A variable name a jail accepts: letters, digits and `_`, not starting
/// with a digit.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Refuses an environment with a name [`valid_env_name`] does not accept,
/// before anything runs.
pub fn check_env(env: &[(String, String)]) -> Result<(), JailError> {
    match env.iter().find(|(name, _)| !valid_env_name(name)) {
        Some((name, _)) => Err(JailError::BadEnvName(name.clone())),
        None => Ok(()),
    }
}

impl Jail {
    /// The command running `argv` in the jail with `env` added to the base
    /// environment. It starts once a line is written to its stdin (see
    /// [`crate::run`]); stdout and stderr are piped.
    pub fn command(&self, argv: &[String], env: &[(String, String)]) -> Result<Command, JailError> {
        self.build(argv, env, false)
    }

    /// The command starting the session's agent in the jail: its stdin is
    /// the agent's socket (the caller's to set), moved to
    /// [`crate::runtime::agent::AGENT_FD`] once the release line is read.
    pub(crate) fn agent_command(&self) -> Result<Command, JailError> {
        let argv = crate::runtime::agent::AGENT.map(str::to_owned);
        self.build(&argv, &[], true)
    }

    fn build(
        &self,
        argv: &[String],
        env: &[(String, String)],
        agent: bool,
    ) -> Result<Command, JailError> {
        check_env(env)?;
        let bwrap = first_present(&BWRAP).ok_or(JailError::NoBubblewrap)?;
        let prlimit = first_present(&PRLIMIT).ok_or(JailError::NoUtilLinux)?;
        let chrt = first_present(&CHRT).ok_or(JailError::NoUtilLinux)?;
        let limits = &self.limits;
        // SCHED_IDLE: jailed code gets the CPU the server leaves, so
        // sessions never slow the sandboxes' answers down.
        let mut chain: Vec<std::ffi::OsString> = Vec::new();
        if let Some(cpus) = &self.cpus {
            let taskset = first_present(&TASKSET).ok_or(JailError::NoUtilLinux)?;
            chain.extend([taskset.into(), "-c".into(), cpus.into()]);
        }
        chain.extend([chrt.into(), "--idle".into(), "0".into(), prlimit.into()]);
        chain.extend(
            [
                "--core=0".to_owned(),
                // SIGXCPU at the soft limit names the reason; SIGKILL a
                // second later ends a process that ignores it.
                format!("--cpu={}:{}", limits.cpu_seconds, limits.cpu_seconds + 1),
                format!("--fsize={}", limits.file_bytes),
                format!("--nofile={}", limits.open_files),
                format!("--nproc={}", limits.processes),
                "--".to_owned(),
            ]
            .map(Into::into),
        );
        chain.push(bwrap.into());
        chain.extend(self.bwrap_args().into_iter().map(Into::into));
        if self.seccomp.is_some() {
            chain.extend(["--seccomp", SECCOMP_FD].map(Into::into));
        }
        for (name, value) in environment(self.egress.is_some(), self.layer.is_some(), env) {
            chain.extend(["--setenv".into(), name.into(), value.into()]);
        }
        chain.push("--".into());
        // With egress, a relay in the jail runs the command: it listens on
        // the jail's loopback for the proxy variables' clients.
        if self.egress.is_some() {
            chain.extend(EGRESS_RELAY.map(Into::into));
        }
        chain.extend(argv.iter().map(Into::into));
        // The shell waits for a line on stdin before it becomes the chain:
        // the caller moves it into the run's control group first, so no
        // process of the run ever starts outside it; what follows the line
        // is the program's stdin. It also opens the seccomp program as the
        // fd bubblewrap reads it from (not close-on-exec).
        // An agent's socket arrives as stdin and moves out of the way.
        let moved = if agent {
            format!(" {}<&0 </dev/null", crate::runtime::agent::AGENT_FD)
        } else {
            String::new()
        };
        let (script, first) = match &self.seccomp {
            Some(filter) => (
                format!("read -r _ && exec \"$@\" {SECCOMP_FD}<\"$0\"{moved}"),
                filter.as_os_str().to_owned(),
            ),
            None => (
                format!("read -r _ && exec \"$@\"{moved}"),
                "sbx-jail".into(),
            ),
        };
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(script).arg(first).args(chain);
        command
            .uid(self.uid)
            .gid(self.uid)
            .env_clear()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        Ok(command)
    }

    fn bwrap_args(&self) -> Vec<String> {
        let workspace = self.workspace.to_string_lossy().into_owned();
        let mut args: Vec<String> = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--clearenv",
            "--hostname",
            "sandbox",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/sbin",
            "/sbin",
            "--symlink",
            "usr/lib",
            "/lib",
        ]
        .map(str::to_owned)
        .to_vec();
        if Path::new("/usr/lib64").is_dir() {
            args.extend(["--symlink", "usr/lib64", "/lib64"].map(str::to_owned));
        }
        for shared in ["/etc/alternatives", "/etc/ssl/certs"] {
            args.extend(["--ro-bind-try", shared, shared].map(str::to_owned));
        }
        if let Some(layer) = &self.layer {
            let layer = layer.to_string_lossy().into_owned();
            args.extend(["--ro-bind".to_owned(), layer, LAYER.to_owned()]);
        }
        if let Some(socket) = &self.egress {
            let socket = socket.to_string_lossy().into_owned();
            args.extend(["--bind".to_owned(), socket, EGRESS_SOCKET.to_owned()]);
        }
        args.extend(
            [
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--size",
                &self.limits.tmp_bytes.to_string(),
                "--tmpfs",
                "/tmp",
                "--bind",
                &workspace,
                "/workspace",
                "--chdir",
                "/workspace",
                "--remount-ro",
                "/",
            ]
            .map(str::to_owned),
        );
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_are_checked_before_anything_runs() {
        let jail = Jail {
            workspace: "/tmp/w".into(),
            uid: 1000,
            limits: Limits::default(),
            cpus: None,
            seccomp: None,
            egress: None,
            layer: None,
        };
        for bad in ["A=B", "", "1X", "PATH\n"] {
            let refused = jail.command(&["true".into()], &[(bad.into(), "x".into())]);
            assert_eq!(refused.err(), Some(JailError::BadEnvName(bad.into())));
        }
        assert!(valid_env_name("_OK1") && valid_env_name("PYTHONPATH"));
    }
}
