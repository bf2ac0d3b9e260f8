//! The in-session agent of function behaviours: one long-lived interpreter
//! in a session's jail that loads `functions/<name>.py` (or `.js`) once and
//! calls its Lambda handler for each invocation, so a request pays a pipe's
//! round trip, not a jail's and an interpreter's start — a warm Lambda
//! execution environment, module-level state included.
//!
//! The worker reads one JSON invocation per line on stdin and answers one
//! JSON line on stdout; what the handler prints comes back as the
//! invocation's logs. It serves one invocation at a time. A worker that
//! outlives an invocation's timeout, or dies, is ended whole (its jail and
//! control group) and the caller starts another.

use std::{pin::Pin, time::Duration};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::{
    handler::{self, NODE_LAMBDA, PYTHON_LAMBDA},
    run::{Language, Program},
    runtime::{Control, SessionBox},
};

const PYTHON_WORKER: &str = include_str!("handler/worker.py");
const NODE_WORKER: &str = include_str!("handler/worker.cjs");

/// Longest answer line read: Lambda's 6 MiB response, its logs, framing.
const MAX_ANSWER_BYTES: u64 = handler::MAX_RESULT_BYTES + 1024 * 1024;

/// Most stray output lines (not an answer) skipped per invocation.
const MAX_STRAY_LINES: usize = 1000;

/// Why an invocation has no answer; the worker is ended.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorkerError {
    #[error("the function ran past its timeout of {0} ms")]
    Timeout(u64),
    #[error("the function's process ran out of memory (its session has {0} MiB) and was killed")]
    OutOfMemory(u64),
    #[error("the function's process ended: {0}")]
    Ended(String),
    #[error(
        "the function's answer is larger than {0} bytes (Lambda's response limit is 6 MiB); its worker was ended"
    )]
    TooLarge(u64),
    #[error("the function's process could not start: {0}")]
    Start(String),
}

/// One call of a handler.
#[derive(Debug, Clone, Copy)]
pub struct Invocation<'a> {
    /// `context.aws_request_id`, and the answer's id.
    pub id: &'a str,
    /// The function: `functions/{name}.py` or `.js`, `.mjs`, `.cjs`.
    pub name: &'a str,
    /// The API Gateway HTTP API event (payload 2.0).
    pub event: &'a Value,
    pub timeout: Duration,
}

/// What an invocation came to, with what the handler printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub outcome: handler::Outcome,
    pub logs: String,
}

/// A started worker.
pub struct Worker {
    stdin: Pin<Box<dyn AsyncWrite + Send>>,
    answers: BufReader<Pin<Box<dyn AsyncRead + Send>>>,
    /// Taken when it ends.
    control: Option<Box<dyn Control>>,
    memory_mb: u64,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("memory_mb", &self.memory_mb)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Starts a `language` worker in a session's box.
    pub async fn start(
        boxed: &dyn SessionBox,
        language: Language,
        memory_mb: u64,
    ) -> Result<Self, WorkerError> {
        let prelude = format!("MEMORY_MB = {memory_mb}\n");
        let argv = match language {
            Language::Python => [
                "python3".to_owned(),
                "-c".to_owned(),
                prelude + PYTHON_LAMBDA + PYTHON_WORKER,
            ],
            Language::Node => [
                "node".to_owned(),
                "-e".to_owned(),
                format!("const {prelude}") + NODE_LAMBDA + NODE_WORKER,
            ],
            Language::Shell => {
                return Err(WorkerError::Start(
                    "functions are Python or Node.js, not shell".into(),
                ));
            }
        };
        let program = Program {
            argv: argv.to_vec(),
            ..Program::default()
        };
        let mut process = boxed.start(program).await.map_err(WorkerError::Start)?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (
            process.stdin.take(),
            process.stdout.take(),
            process.stderr.take(),
        ) else {
            let _ = process.control.kill().await;
            let _ = process.control.finish().await;
            return Err(WorkerError::Start("the process has no pipes".into()));
        };
        tokio::spawn(log_stderr(stderr));
        Ok(Self {
            stdin,
            answers: BufReader::new(stdout),
            control: Some(process.control),
            memory_mb,
        })
    }

    /// Calls the handler once. On an error the worker is ended and must be
    /// dropped ([`Self::stop`] is then a no-op).
    pub async fn invoke(&mut self, invocation: Invocation<'_>) -> Result<Answer, WorkerError> {
        let deadline_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
            + i128::try_from(invocation.timeout.as_millis()).unwrap_or(i128::MAX);
        let mut line = json!({
            "id": invocation.id,
            "name": invocation.name,
            "event": invocation.event,
            "deadline_ms": i64::try_from(deadline_ms).unwrap_or(i64::MAX),
        })
        .to_string()
        .into_bytes();
        line.push(b'\n');
        let exchange = async {
            self.stdin
                .write_all(&line)
                .await
                .map_err(|e| WorkerError::Ended(format!("it stopped reading: {e}")))?;
            self.read_answer(invocation.id).await
        };
        let outcome = tokio::time::timeout(invocation.timeout, exchange).await;
        let failure = match outcome {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(failure)) => failure,
            Err(_) => WorkerError::Timeout(
                u64::try_from(invocation.timeout.as_millis()).unwrap_or(u64::MAX),
            ),
        };
        let oom = self.end().await;
        Err(match failure {
            WorkerError::Ended(_) if oom => WorkerError::OutOfMemory(self.memory_mb),
            other => other,
        })
    }

    /// The answer to `id`: the first line that is one (stray lines some
    /// child process printed are skipped).
    async fn read_answer(&mut self, id: &str) -> Result<Answer, WorkerError> {
        let mut buffer = Vec::new();
        for _ in 0..MAX_STRAY_LINES {
            buffer.clear();
            let read = (&mut self.answers)
                .take(MAX_ANSWER_BYTES)
                .read_until(b'\n', &mut buffer)
                .await
                .map_err(|e| WorkerError::Ended(e.to_string()))?;
            if read == 0 {
                let waited = match self.control.as_mut() {
                    Some(control) => control.wait().await,
                    None => Err(std::io::Error::other("it was ended")),
                };
                return Err(WorkerError::Ended(match waited {
                    Ok(exit) => match (exit.code, exit.signal) {
                        (_, Some(signal)) => format!("it was killed by signal {signal}"),
                        (Some(code), None) => format!("it exited with {code}"),
                        (None, None) => "it exited".to_owned(),
                    },
                    Err(e) => e.to_string(),
                }));
            }
            if !buffer.ends_with(b"\n") {
                return Err(WorkerError::TooLarge(MAX_ANSWER_BYTES));
            }
            if let Some(answer) = parse_answer(&buffer, id) {
                return Ok(answer);
            }
            tracing::debug!(
                target: "sbx::function",
                line = %String::from_utf8_lossy(&buffer).trim_end(),
                "a function's process printed a line that is not an answer"
            );
        }
        Err(WorkerError::Ended(format!(
            "it printed {MAX_STRAY_LINES} lines that are not an answer"
        )))
    }

    /// Ends the worker's process and what it left; whether the kernel's
    /// OOM killer had killed one of its processes.
    async fn end(&mut self) -> bool {
        let Some(mut control) = self.control.take() else {
            return false;
        };
        let _ = control.kill().await;
        control.finish().await.oom_kills > 0
    }

    /// Ends the worker.
    pub async fn stop(mut self) {
        self.end().await;
    }
}

/// An answer line for `id`: `{id, ok | error, logs}`.
fn parse_answer(line: &[u8], id: &str) -> Option<Answer> {
    let Value::Object(mut answer) = serde_json::from_slice(line).ok()? else {
        return None;
    };
    if answer.get("id").and_then(Value::as_str) != Some(id) {
        return None;
    }
    let logs = match answer.remove("logs") {
        Some(Value::String(logs)) => logs,
        _ => String::new(),
    };
    let outcome = match (answer.remove("ok"), answer.remove("error")) {
        (Some(returned), None) => handler::Outcome::Response(handler::response(returned)),
        (None, Some(error)) => handler::Outcome::Error(error),
        _ => return None,
    };
    Some(Answer { outcome, logs })
}

/// What the worker writes to stderr outside an invocation (the runtime's
/// own failures), to the server log, line by line (long lines cut).
async fn log_stderr(stderr: Pin<Box<dyn AsyncRead + Send>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => tracing::info!(
                target: "sbx::function",
                "{}",
                String::from_utf8_lossy(&line).trim_end()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_answer_to_the_invocation_is_taken() {
        let answer = parse_answer(
            br#"{"id": "a", "ok": {"statusCode": 201, "body": "{}"}, "logs": "hi\n"}"#,
            "a",
        )
        .unwrap();
        assert_eq!(answer.logs, "hi\n");
        let handler::Outcome::Response(response) = answer.outcome else {
            panic!("a response");
        };
        assert_eq!(response["statusCode"], 201);
        assert!(parse_answer(br#"{"id": "b", "ok": 1}"#, "a").is_none());
        assert!(parse_answer(b"hello from a child process", "a").is_none());
        assert!(parse_answer(br#"{"id": "a"}"#, "a").is_none());
        let raised = parse_answer(br#"{"id": "a", "error": {"errorType": "KeyError"}}"#, "a");
        assert!(matches!(
            raised.unwrap().outcome,
            handler::Outcome::Error(error) if error["errorType"] == "KeyError"
        ));
    }
}
