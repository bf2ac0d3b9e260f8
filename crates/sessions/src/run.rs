//! One run: a command in the jail, in a control group of its own, its
//! output streamed into [`Output`] as it comes, its end classified (`ok`,
//! `error`, `timeout`, `oom`, `cpu_limit`, `file_limit`, `killed`) so a
//! client never has to guess from an exit code why it stopped.

use std::{os::unix::process::ExitStatusExt, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::{
    cgroup::{Group, Usage},
    handler,
    jail::{Jail, JailError},
    output::{EventKind, Output},
};

/// What code is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Node,
    Shell,
}

impl Language {
    /// The program running `code`: Python and Node read it on stdin (no
    /// command-line length limit), a shell command is its `-c` argument.
    pub fn program(self, code: &str) -> Program {
        let (argv, stdin): (&[&str], &str) = match self {
            Self::Python => (&["python3", "-"], code),
            Self::Node => (&["node", "-"], code),
            Self::Shell => (&["sh", "-c", code], ""),
        };
        Program {
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            stdin: stdin.as_bytes().to_vec(),
            ..Program::default()
        }
    }
}

/// What a run starts: its command line, extra environment, what it reads
/// on stdin, and (handler mode) the workspace file its result is written to.
#[derive(Debug, Clone, Default)]
pub struct Program {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
    pub result_file: Option<String>,
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Exited with 0.
    Ok,
    /// Exited with another code.
    Error,
    /// Ran past its wall-clock timeout and was killed.
    Timeout,
    /// Killed by the kernel for using more memory than the session has.
    Oom,
    /// Used up its CPU seconds (`SIGXCPU`).
    CpuLimit,
    /// Wrote a file past its size limit (`SIGXFSZ`).
    FileLimit,
    /// Stopped from outside: the session was deleted or expired.
    Killed,
    /// Could not start (the jail could not be built).
    Failed,
}

/// How a run ended: the last event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ended {
    pub status: Status,
    pub exit_code: Option<i32>,
    /// The signal that ended the jailed command, if one did.
    pub signal: Option<i32>,
    pub duration_ms: u64,
    /// Most memory its processes held at once (from its control group).
    pub peak_memory_bytes: Option<u64>,
    /// CPU time its processes used, user and system.
    pub cpu_ms: Option<u64>,
    /// Output past the kept limit, counted but not kept.
    pub dropped_output_bytes: u64,
    /// Why it could not start, for [`Status::Failed`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;
const SIGXFSZ: i32 = 25;

/// Runs `argv` in `jail`, writing every event to `output`, until it ends,
/// `timeout` passes or `stop` completes; returns (and records) how it ended.
/// With a `group` (made here, removed at the end) every process of the run
/// is in it from the first, and its usage is reported.
pub async fn run(
    jail: &Jail,
    group: Option<&Group>,
    program: Program,
    timeout: Duration,
    output: &Output,
    stop: impl std::future::Future<Output = ()>,
) -> Ended {
    let started = tokio::time::Instant::now();
    let result_file = program.result_file.clone();
    let child = start(jail, group, program, false).await;
    conclude(
        child,
        Launch {
            workspace: &jail.workspace,
            group,
            result_file,
            cpu_before: 0,
        },
        timeout,
        output,
        stop,
        started,
    )
    .await
}

/// A jail started ahead of its run: namespaces made, mounts done, in its
/// own control group, its launcher waiting on stdin for what to run. A
/// run in it starts without bubblewrap's setup; each is used once.
#[derive(Debug)]
pub struct Warm {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    group: Option<Group>,
    workspace: std::path::PathBuf,
}

impl Warm {
    /// Starts a jail whose launcher waits for a run, in `group` (made here).
    pub async fn start(jail: &Jail, group: Option<Group>) -> Result<Self, String> {
        let launcher = Program {
            argv: ["python3", "-c", LAUNCHER].map(str::to_owned).to_vec(),
            ..Program::default()
        };
        let mut child = start(jail, group.as_ref(), launcher, true).await?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| "the jail has no stdin".to_owned())?;
        Ok(Self {
            child,
            stdin,
            group,
            workspace: jail.workspace.clone(),
        })
    }

    /// Runs `program` in the waiting jail, as [`run`] would have.
    pub async fn run(
        mut self,
        program: Program,
        timeout: Duration,
        output: &Output,
        stop: impl std::future::Future<Output = ()>,
    ) -> Ended {
        let started = tokio::time::Instant::now();
        let cpu_before = self.group.as_ref().map_or(0, |g| g.usage().cpu_ms);
        let spec = serde_json::json!({"argv": program.argv, "env": program.env.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()});
        let mut line = spec.to_string().into_bytes();
        line.push(b'\n');
        let mut stdin = self.stdin;
        let launched = stdin.write_all(&line).await;
        let child = match launched {
            Ok(()) => {
                tokio::spawn(async move {
                    let _ = stdin.write_all(&program.stdin).await;
                });
                Ok(self.child)
            }
            Err(e) => {
                let _ = end_jail(&mut self.child).await;
                Err(format!("the warm jail did not take the run: {e}"))
            }
        };
        conclude(
            child,
            Launch {
                workspace: &self.workspace,
                group: self.group.as_ref(),
                result_file: program.result_file,
                cpu_before,
            },
            timeout,
            output,
            stop,
            started,
        )
        .await
    }

    /// Ends the waiting jail unused, its group removed.
    pub async fn discard(mut self) {
        drop(self.stdin);
        let _ = end_jail(&mut self.child).await;
        if let Some(group) = self.group {
            finish(&group).await;
        }
    }
}

/// Waits for a run's line of `{argv, env}` on stdin, then becomes it.
const LAUNCHER: &str = include_str!("jail/launch.py");

/// Where a started run's end is recorded.
struct Launch<'a> {
    workspace: &'a std::path::Path,
    group: Option<&'a Group>,
    result_file: Option<String>,
    /// CPU its group had used before the run (a warm jail's start).
    cpu_before: u64,
}

/// Watches a started run to its end, then records what it used, its
/// handler result, and the end event.
async fn conclude(
    child: Result<tokio::process::Child, String>,
    launch: Launch<'_>,
    timeout: Duration,
    output: &Output,
    stop: impl std::future::Future<Output = ()>,
    started: tokio::time::Instant,
) -> Ended {
    let mut ended = match child {
        Ok(child) => watch(child, timeout, output, stop, started).await,
        Err(error) => Ended {
            status: Status::Failed,
            exit_code: None,
            signal: None,
            duration_ms: 0,
            peak_memory_bytes: None,
            cpu_ms: None,
            dropped_output_bytes: 0,
            error: Some(error),
        },
    };
    if let Some(group) = launch.group {
        let usage = finish(group).await;
        ended.peak_memory_bytes = Some(usage.peak_memory_bytes);
        ended.cpu_ms = Some(usage.cpu_ms.saturating_sub(launch.cpu_before));
        // The OOM killer's SIGKILL, or a process it killed failing the run.
        if usage.oom_kills > 0 && matches!(ended.status, Status::Killed | Status::Error) {
            ended.status = Status::Oom;
        }
    }
    if let Some(name) = launch.result_file {
        let workspace = launch.workspace.to_owned();
        let outcome = tokio::task::spawn_blocking(move || handler::take_result(&workspace, &name))
            .await
            .ok()
            .flatten();
        if let Some(outcome) = outcome {
            output.push(EventKind::Result(outcome.into()));
        }
    }
    output.push(EventKind::End(ended.clone()));
    ended
}

/// Reads what the run's group used, then kills whatever is left in it and
/// removes it.
pub(crate) async fn finish(group: &Group) -> Usage {
    let group = group.clone();
    tokio::task::spawn_blocking(move || {
        let usage = group.usage();
        if let Err(error) = group.remove() {
            tracing::warn!(%error, "removing a run's control group failed");
        }
        usage
    })
    .await
    .unwrap_or_default()
}

/// Starts the jail's command, moved into `group` before it runs anything,
/// then hands it `program`'s stdin, and closes it unless `hold_stdin` (a
/// warm jail's launcher reads its run from it later).
pub(crate) async fn start(
    jail: &Jail,
    group: Option<&Group>,
    program: Program,
    hold_stdin: bool,
) -> Result<tokio::process::Child, String> {
    let mut command = jail
        .command(&program.argv, &program.env)
        .map_err(|e: JailError| e.to_string())?;
    if let Some(group) = group {
        group
            .create(None)
            .map_err(|e| format!("the run's control group could not be made: {e}"))?;
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("the jail did not start: {e}"))?;
    let entered = match (group, child.id()) {
        (Some(group), Some(pid)) => group
            .add(pid)
            .map_err(|e| format!("the jail could not join its control group: {e}")),
        _ => Ok(()),
    };
    let mut stdin = child.stdin.take();
    let released = match (&entered, &mut stdin) {
        (Ok(()), Some(stdin)) => stdin
            .write_all(b"\n")
            .await
            .map_err(|e| format!("the jail did not start: {e}")),
        _ => Ok(()),
    };
    if let Err(error) = entered.and(released) {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(error);
    }
    // The rest is read as the program runs; a program that never reads it
    // (or dies first) just closes the pipe.
    if hold_stdin {
        child.stdin = stdin;
    } else if let Some(mut stdin) = stdin {
        tokio::spawn(async move {
            let _ = stdin.write_all(&program.stdin).await;
        });
    }
    Ok(child)
}

async fn watch(
    mut child: tokio::process::Child,
    timeout: Duration,
    output: &Output,
    stop: impl std::future::Future<Output = ()>,
    started: tokio::time::Instant,
) -> Ended {
    output.push(EventKind::Start {
        pid: child.id().unwrap_or(0),
    });
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let outcome = {
        let finished = async {
            tokio::join!(pump(stdout, false, output), pump(stderr, true, output));
            child.wait().await
        };
        tokio::pin!(finished);
        tokio::pin!(stop);
        tokio::select! {
            waited = &mut finished => Ok(waited),
            () = tokio::time::sleep(timeout) => Err(Status::Timeout),
            () = &mut stop => Err(Status::Killed),
        }
    };
    let (waited, forced) = match outcome {
        Ok(waited) => (waited, None),
        Err(status) => (end_jail(&mut child).await, Some(status)),
    };
    let (exit_code, signal) = match &waited {
        Ok(status) => (status.code(), status.signal()),
        Err(_) => (None, None),
    };
    // bubblewrap reports its command's death by signal as 128 + signal.
    let signal = signal.or_else(|| exit_code.filter(|c| *c > 128 && *c < 160).map(|c| c - 128));
    let status = forced.unwrap_or(match (exit_code, signal) {
        (_, Some(SIGXCPU)) => Status::CpuLimit,
        (_, Some(SIGXFSZ)) => Status::FileLimit,
        (_, Some(SIGKILL)) => Status::Killed,
        (Some(0), _) => Status::Ok,
        _ => Status::Error,
    });
    Ended {
        status,
        exit_code: if forced.is_some() { None } else { exit_code },
        signal: if forced.is_some() {
            Some(SIGKILL)
        } else {
            signal
        },
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        peak_memory_bytes: None,
        cpu_ms: None,
        dropped_output_bytes: output.dropped_bytes(),
        error: None,
    }
}

/// Ends a jail whole. Killing the first process of its PID namespace
/// (bubblewrap's child) kills every process in it; bubblewrap then exits
/// and reaps it, leaving no zombie behind (killing bubblewrap first would
/// orphan that process to the host's init).
pub(crate) async fn end_jail(
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    if let Some(pid) = child.id() {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for inner in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if let Some(inner) = rustix::process::Pid::from_raw(inner) {
                let _ = rustix::process::kill_process(inner, rustix::process::Signal::KILL);
            }
        }
    }
    match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
        Ok(waited) => waited,
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await
        }
    }
}

async fn pump(stream: Option<impl AsyncRead + Unpin>, stderr: bool, output: &Output) {
    let Some(mut stream) = stream else { return };
    let mut buffer = vec![0; 8192];
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        output.push_output(stderr, &buffer[..read]);
    }
}
