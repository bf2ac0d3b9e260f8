//! Function behaviours' runtime: each sandbox whose project has functions
//! gets a code session of its own, started at its first invocation, with
//! the project's `functions/` copied into its workspace, and workers that
//! keep handlers loaded between requests (one per overlapping request, up
//! to [`CONCURRENCY`]). The session is
//! an ordinary one (listed to admins with the `sandbox` it serves): it
//! ends when idle like any other, and the next invocation starts another.
//! A new revision's sources replace it; a deleted sandbox's is ended by the
//! reaper.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex, Weak, atomic::Ordering},
    time::Duration,
};

use bytes::Bytes;
use sbx_engine::{
    FunctionAnswer, FunctionCall, FunctionFailure, FunctionLanguage, FunctionSources, Functions,
};
use sbx_sessions::{Language, Worker, WorkerError, handler, worker::Invocation};

use super::{
    ServiceError, ServiceResult,
    caller::Caller,
    sessions::{self, NewSession, Resources},
};
use crate::{
    app::{AppState, Shared, now_ms},
    runtime::{
        ids::random_uuid,
        sessions::{EndReason, LiveSession},
    },
};

/// A function session ends after this long without an invocation.
pub const IDLE_SECONDS: u64 = 600;

/// Invocations of one sandbox's functions that run at once, each in a
/// worker of its own (a Lambda function's concurrency); more wait.
pub const CONCURRENCY: usize = 4;

/// The function sessions, by the sandbox they serve.
pub struct FunctionHosts {
    state: Weak<Shared>,
    runtime: tokio::runtime::Handle,
    hosts: Mutex<HashMap<String, Arc<Entry>>>,
}

/// One sandbox's: its session and idle workers, and the turns to invoke.
#[derive(Default)]
struct Entry {
    host: tokio::sync::Mutex<Option<Host>>,
    turns: Turns,
}

struct Turns(tokio::sync::Semaphore);

impl Default for Turns {
    fn default() -> Self {
        Self(tokio::sync::Semaphore::new(CONCURRENCY))
    }
}

/// One sandbox's session and its idle workers.
struct Host {
    session: Arc<LiveSession>,
    digest: u64,
    idle: HashMap<FunctionLanguage, Vec<Worker>>,
}

impl FunctionHosts {
    pub fn new(state: Weak<Shared>, runtime: tokio::runtime::Handle) -> Self {
        Self {
            state,
            runtime,
            hosts: Mutex::default(),
        }
    }

    fn entry(&self, sandbox: &str) -> Arc<Entry> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts.entry(sandbox.to_owned()).or_default().clone()
    }

    /// Ends the sessions of sandboxes that no longer exist, and forgets
    /// hosts whose session ended (idle, deleted).
    pub async fn sweep(&self, state: &AppState) {
        let entries: Vec<(String, Arc<Entry>)> = self
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(sandbox, entry)| (sandbox.clone(), entry.clone()))
            .collect();
        for (sandbox, entry) in entries {
            let Ok(mut slot) = entry.host.try_lock() else {
                continue; // starting a session now: alive
            };
            let gone = state.registry.get(&sandbox).is_none();
            let ended = slot
                .as_ref()
                .is_none_or(|h| state.sessions.get(&h.session.id).is_none());
            if !(gone || ended) {
                continue;
            }
            if let Some(host) = slot.take() {
                close(state, host, EndReason::Deleted).await;
            }
            drop(slot);
            self.hosts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&sandbox);
        }
    }

    /// The sandbox's session for `sources` (started, or replaced when it
    /// serves others or ended), and an idle worker of `language` in it.
    async fn checkout(
        state: &AppState,
        entry: &Entry,
        call: &FunctionCall,
    ) -> Result<(Arc<LiveSession>, Option<Worker>), FunctionFailure> {
        let mut slot = entry.host.lock().await;
        let current = slot
            .as_ref()
            .is_some_and(|h| h.digest == call.sources.digest && !h.session.stop.is_cancelled());
        if !current {
            if let Some(old) = slot.take() {
                close(state, old, EndReason::Deleted).await;
            }
            let opened = open(state, &call.sandbox, &call.sources).await;
            *slot = Some(opened.map_err(|e| unavailable(&e))?);
        }
        let Some(host) = slot.as_mut() else {
            return Err(FunctionFailure::Unavailable("no function session".into()));
        };
        let worker = host
            .idle
            .get_mut(&call.function.language)
            .and_then(Vec::pop);
        Ok((host.session.clone(), worker))
    }

    /// Hands `worker` back to idle, if its session still serves; else
    /// stops it.
    async fn checkin(
        entry: &Entry,
        session: &LiveSession,
        language: FunctionLanguage,
        worker: Worker,
    ) {
        let mut slot = entry.host.lock().await;
        match slot.as_mut() {
            Some(host) if host.session.id == session.id && !session.stop.is_cancelled() => {
                host.idle.entry(language).or_default().push(worker);
            }
            _ => {
                drop(slot);
                worker.stop().await;
            }
        }
    }

    async fn invoke_async(
        &self,
        state: &AppState,
        mut call: FunctionCall,
    ) -> Result<FunctionAnswer, FunctionFailure> {
        let request_id = random_uuid();
        if let Some(context) = call
            .event
            .get_mut("requestContext")
            .and_then(|c| c.as_object_mut())
        {
            context.insert("requestId".into(), request_id.clone().into());
        }
        let entry = self.entry(&call.sandbox);
        let _turn = entry
            .turns
            .0
            .acquire()
            .await
            .map_err(|_| FunctionFailure::Unavailable("the server is stopping".into()))?;
        let (session, idle) = Self::checkout(state, &entry, &call).await?;
        session.touch(now_ms());
        session.running.fetch_add(1, Ordering::Relaxed);
        let _running = Running(&session);
        let language = call.function.language;
        let mut worker = match idle {
            Some(worker) => worker,
            None => start_worker(&session, language).await?,
        };
        let invoked = worker
            .invoke(Invocation {
                id: &request_id,
                name: &call.function.name,
                event: &call.event,
                timeout: Duration::from_millis(call.sources.settings.timeout_ms),
            })
            .await;
        match invoked {
            Ok(answer) => {
                Self::checkin(&entry, &session, language, worker).await;
                match answer.outcome {
                    handler::Outcome::Response(response) => Ok(FunctionAnswer {
                        response,
                        logs: answer.logs,
                    }),
                    handler::Outcome::Error(error) => Err(FunctionFailure::Raised {
                        error,
                        logs: answer.logs,
                    }),
                }
            }
            Err(error @ WorkerError::Timeout(_)) => {
                Err(FunctionFailure::Timeout(error.to_string()))
            }
            Err(error @ WorkerError::Start(_)) => {
                Err(FunctionFailure::Unavailable(error.to_string()))
            }
            Err(error @ WorkerError::TooLarge(_)) => Err(FunctionFailure::Raised {
                error: serde_json::json!({
                    "errorType": "Function.ResponseSizeTooLarge",
                    "errorMessage": error.to_string(),
                    "stackTrace": [],
                }),
                logs: String::new(),
            }),
            Err(error) => Err(FunctionFailure::Crashed(error.to_string())),
        }
    }
}

impl Functions for FunctionHosts {
    fn invoke(&self, call: FunctionCall) -> Result<FunctionAnswer, FunctionFailure> {
        let Some(shared) = self.state.upgrade() else {
            return Err(FunctionFailure::Unavailable(
                "the server is stopping".into(),
            ));
        };
        let state = AppState::from(shared);
        self.runtime.block_on(self.invoke_async(&state, call))
    }
}

/// Counts an invocation as a running execution: a session serving one is
/// never idle.
struct Running<'a>(&'a LiveSession);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
        self.0.touch(now_ms());
    }
}

fn unavailable(error: &ServiceError) -> FunctionFailure {
    FunctionFailure::Unavailable(format!("the function session could not start: {error}"))
}

/// Starts `sandbox`'s session with `sources` in `functions/`.
async fn open(state: &AppState, sandbox: &str, sources: &FunctionSources) -> ServiceResult<Host> {
    let language = if sources.files.keys().any(|name| name.ends_with(".py")) {
        "python"
    } else {
        "node"
    };
    let template = sources.settings.template.as_deref().unwrap_or(language);
    let new = NewSession {
        template: template.to_owned(),
        lifetime_seconds: Some(sessions::MAX_LIFETIME_SECONDS),
        idle_timeout_seconds: Some(IDLE_SECONDS),
        resources: Resources {
            memory_bytes: Some(sources.settings.memory_mib * 1024 * 1024),
            ..Resources::default()
        },
        env: Default::default(),
        snapshot: None,
        network: None,
    };
    let view =
        sessions::create_serving(state, &Caller::System, new, Some(sandbox.to_owned())).await?;
    let session = state
        .sessions
        .get(&view.id)
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("the session ended at once")))?;
    for (name, source) in &sources.files {
        let body = futures_util::stream::iter([Ok::<_, Infallible>(Bytes::from(source.clone()))]);
        let stored = super::session_files::store(
            state,
            &Caller::System,
            &view.id,
            format!("functions/{name}"),
            body,
        )
        .await;
        if let Err(error) = stored {
            sessions::end(state, &session, EndReason::Deleted);
            return Err(error);
        }
    }
    tracing::info!(%sandbox, session = %view.id, "function session started");
    Ok(Host {
        session,
        digest: sources.digest,
        idle: HashMap::new(),
    })
}

async fn start_worker(
    session: &LiveSession,
    language: FunctionLanguage,
) -> Result<Worker, FunctionFailure> {
    let language = match language {
        FunctionLanguage::Python => Language::Python,
        FunctionLanguage::Node => Language::Node,
    };
    Worker::start(
        session.boxed.as_ref(),
        language,
        session.memory_bytes / (1024 * 1024),
    )
    .await
    .map_err(|e| FunctionFailure::Unavailable(e.to_string()))
}

/// Stops `host`'s workers and ends its session.
async fn close(state: &AppState, host: Host, reason: EndReason) {
    for worker in host.idle.into_values().flatten() {
        worker.stop().await;
    }
    if state.sessions.get(&host.session.id).is_some() {
        sessions::end(state, &host.session, reason);
    }
}
