//! One run: a command in the jail, in a control group of its own, its
//! output streamed into [`Output`] as it comes, its end classified (`ok`,
//! `error`, `timeout`, `oom`, `cpu_limit`, `file_limit`, `killed`) so a
//! client never has to guess from an exit code why it stopped.

use std::{path::Path, time::Duration};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::{
    cgroup::Group,
    handler,
    jail::Jail,
    output::{EventKind, Output},
    runtime::{Exit, Process, SessionBox, bwrap},
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

/// Runs `program` in `jail` (a bwrap jail of its own, no session box),
/// writing every event to `output`, until it ends, `timeout` passes or
/// `stop` completes; returns (and records) how it ended. With a `group`
/// (made here, removed at the end) every process of the run is in it
/// from the first, and its usage is reported.
pub async fn run(
    jail: &Jail,
    group: Option<&Group>,
    program: Program,
    timeout: Duration,
    output: &Output,
    stop: impl std::future::Future<Output = ()>,
) -> Ended {
    let start = |program| bwrap::spawn(jail, group.cloned(), program);
    run_with(start, &jail.workspace, program, timeout, output, stop).await
}

/// Runs `program` in a session's box, as [`run`] does in a jail;
/// `workspace` is where a handler's result file is looked for.
pub async fn run_in(
    boxed: &dyn SessionBox,
    workspace: &Path,
    program: Program,
    timeout: Duration,
    output: &Output,
    stop: impl std::future::Future<Output = ()>,
) -> Ended {
    run_with(
        |program| boxed.start(program),
        workspace,
        program,
        timeout,
        output,
        stop,
    )
    .await
}

/// Starts `program` (its stdin taken out, to be written once it runs) with
/// `start`, then drives it.
pub(crate) async fn run_with<F>(
    start: impl FnOnce(Program) -> F,
    workspace: &Path,
    mut program: Program,
    timeout: Duration,
    output: &Output,
    stop: impl std::future::Future<Output = ()>,
) -> Ended
where
    F: std::future::Future<Output = Result<Process, String>>,
{
    let started = tokio::time::Instant::now();
    let stdin = std::mem::take(&mut program.stdin);
    let result = program.result_file.take().map(|name| (workspace, name));
    let process = start(program).await;
    drive(process, stdin, result, timeout, output, stop, started).await
}

/// Drives a started run to its end: hands it `stdin`, streams its output,
/// kills it at `timeout` or `stop`, then records what it used, its
/// handler result (the file `result` names in a workspace), and the end
/// event.
async fn drive(
    process: Result<Process, String>,
    stdin: Vec<u8>,
    result: Option<(&Path, String)>,
    timeout: Duration,
    output: &Output,
    stop: impl std::future::Future<Output = ()>,
    started: tokio::time::Instant,
) -> Ended {
    let mut ended = match process {
        Ok(mut process) => {
            // The rest is read as the program runs; a program that never
            // reads it (or dies first) just closes the pipe.
            if let Some(mut pipe) = process.stdin.take() {
                tokio::spawn(async move {
                    // Closed for writing, not just dropped: a stream to an
                    // engine stays open until its end is shut down.
                    let _ = pipe.write_all(&stdin).await;
                    let _ = pipe.shutdown().await;
                });
            }
            let mut ended = watch(&mut process, timeout, output, stop, started).await;
            let usage = process.control.finish().await;
            ended.peak_memory_bytes = usage.peak_memory_bytes;
            ended.cpu_ms = usage.cpu_ms;
            // The OOM killer's SIGKILL, or a process it killed failing the
            // run.
            if usage.oom_kills > 0 && matches!(ended.status, Status::Killed | Status::Error) {
                ended.status = Status::Oom;
            }
            ended
        }
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
    if let Some((workspace, name)) = result {
        let workspace = workspace.to_owned();
        let outcome = tokio::task::spawn_blocking(move || handler::take_result(&workspace, &name))
            .await
            .ok()
            .flatten();
        if let Some(outcome) = outcome {
            output.push(EventKind::Result(outcome.into()));
        }
    }
    ended.dropped_output_bytes = output.dropped_bytes();
    output.push(EventKind::End(ended.clone()));
    ended
}

async fn watch(
    process: &mut Process,
    timeout: Duration,
    output: &Output,
    stop: impl std::future::Future<Output = ()>,
    started: tokio::time::Instant,
) -> Ended {
    output.push(EventKind::Start { pid: process.pid });
    let stdout = process.stdout.take();
    let stderr = process.stderr.take();
    let control = &mut process.control;
    let outcome = {
        let finished = async {
            tokio::join!(pump(stdout, false, output), pump(stderr, true, output));
            control.wait().await
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
        Err(status) => (process.control.kill().await, Some(status)),
    };
    let Exit { code, signal } = waited.unwrap_or_default();
    // bubblewrap (and a container's shell) report a death by signal as
    // 128 + signal.
    let signal = signal.or_else(|| code.filter(|c| *c > 128 && *c < 160).map(|c| c - 128));
    let status = forced.unwrap_or(match (code, signal) {
        (_, Some(SIGXCPU)) => Status::CpuLimit,
        (_, Some(SIGXFSZ)) => Status::FileLimit,
        (_, Some(SIGKILL)) => Status::Killed,
        (Some(0), _) => Status::Ok,
        _ => Status::Error,
    });
    Ended {
        status,
        exit_code: if forced.is_some() { None } else { code },
        signal: if forced.is_some() {
            Some(SIGKILL)
        } else {
            signal
        },
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        peak_memory_bytes: None,
        cpu_ms: None,
        dropped_output_bytes: 0,
        error: None,
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
