//! What a run says, as numbered events kept for the run's life: a client
//! reads them from any offset, again after a dropped connection, and waits
//! for the next ones.

use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::Notify;

use crate::run::Ended;

/// Most bytes of stdout and stderr together kept per run; past it the
/// rest is counted, not kept (the end event says how much was dropped).
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// One thing a run said, numbered from 0 in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub seq: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The jail is up; `pid` is the jail's process on the host.
    Start {
        pid: u32,
    },
    Stdout {
        data: String,
    },
    Stderr {
        data: String,
    },
    /// What a handler returned (`response`, as API Gateway answers it) or
    /// raised (`error`), before the end (handler mode only).
    Result(HandlerResult),
    /// The last event.
    End(Ended),
}

/// A handler's [`crate::handler::Outcome`], as an event says it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandlerResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

impl From<crate::handler::Outcome> for HandlerResult {
    fn from(outcome: crate::handler::Outcome) -> Self {
        match outcome {
            crate::handler::Outcome::Response(response) => Self {
                response: Some(response),
                error: None,
            },
            crate::handler::Outcome::Error(error) => Self {
                response: None,
                error: Some(error),
            },
        }
    }
}

/// The events of one run.
#[derive(Debug, Default)]
pub struct Output {
    log: Mutex<Log>,
    grew: Notify,
}

#[derive(Debug, Default)]
struct Log {
    events: Vec<Event>,
    kept_bytes: usize,
    dropped_bytes: u64,
}

impl Output {
    fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn push(&self, kind: EventKind) {
        let mut log = self.log();
        let seq = log.events.len() as u64;
        log.events.push(Event { seq, kind });
        drop(log);
        self.grew.notify_waiters();
    }

    /// Keeps output while under [`MAX_OUTPUT_BYTES`]; counts the rest.
    pub(crate) fn push_output(&self, stderr: bool, bytes: &[u8]) {
        let mut log = self.log();
        let room = MAX_OUTPUT_BYTES.saturating_sub(log.kept_bytes);
        let kept = &bytes[..bytes.len().min(room)];
        log.dropped_bytes += (bytes.len() - kept.len()) as u64;
        if kept.is_empty() {
            return;
        }
        log.kept_bytes += kept.len();
        drop(log);
        let data = String::from_utf8_lossy(kept).into_owned();
        self.push(if stderr {
            EventKind::Stderr { data }
        } else {
            EventKind::Stdout { data }
        });
    }

    pub(crate) fn dropped_bytes(&self) -> u64 {
        self.log().dropped_bytes
    }

    /// The events numbered `from` on, and whether the run has ended.
    pub fn since(&self, from: u64) -> (Vec<Event>, bool) {
        let log = self.log();
        let start = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(log.events.len());
        let ended = matches!(
            log.events.last(),
            Some(Event {
                kind: EventKind::End(_),
                ..
            })
        );
        (log.events[start..].to_vec(), ended)
    }

    /// Waits until there is an event numbered `from` or later, or the run
    /// has ended.
    pub async fn wait_for(&self, from: u64) {
        loop {
            let grew = self.grew.notified();
            tokio::pin!(grew);
            grew.as_mut().enable();
            let (events, ended) = self.since(from);
            if !events.is_empty() || ended {
                return;
            }
            grew.await;
        }
    }

    /// Waits until the run has ended.
    pub async fn wait_end(&self) {
        let mut seen = 0;
        loop {
            let (events, ended) = self.since(seen);
            if ended {
                return;
            }
            seen += events.len() as u64;
            self.wait_for(seen).await;
        }
    }

    /// How the run ended, once it has.
    pub fn ended(&self) -> Option<Ended> {
        match self.log().events.last() {
            Some(Event {
                kind: EventKind::End(ended),
                ..
            }) => Some(ended.clone()),
            _ => None,
        }
    }

    /// What the handler returned or raised, once known.
    pub fn result(&self) -> Option<HandlerResult> {
        self.log()
            .events
            .iter()
            .rev()
            .find_map(|event| match &event.kind {
                EventKind::Result(result) => Some(result.clone()),
                _ => None,
            })
    }

    /// Stdout and stderr as kept, each joined.
    pub fn texts(&self) -> (String, String) {
        let (mut out, mut err) = (String::new(), String::new());
        for event in &self.log().events {
            match &event.kind {
                EventKind::Stdout { data } => out.push_str(data),
                EventKind::Stderr { data } => err.push_str(data),
                _ => {}
            }
        }
        (out, err)
    }
}
