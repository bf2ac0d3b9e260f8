//! `Idempotency-Key` with Stripe's semantics: the first answer to a key is
//! stored per sandbox and replayed to retries (`Idempotent-Replayed: true`);
//! the same key with another request is an error naming the mismatch; a
//! duplicate while the first is still running answers 409. Answers are kept
//! 24 hours and survive restarts (they live in the store); `sbx mock` keeps
//! them in memory for as long as it runs.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

use axum::http::request::Parts;
use sbx_engine::{Outcome, ProblemType, Response};
use sbx_store::{IdempotentAnswer, Store};
use sha2::{Digest, Sha256};

use crate::data_plane::{EngineHeaders, Target, engine_request};

/// How long an answer is replayed.
pub const KEY_TTL_MS: i64 = 24 * 3600 * 1000;
/// Longest key accepted.
pub const MAX_KEY_CHARS: usize = 255;

/// What idempotency needs from the server.
#[derive(Clone)]
pub struct Idempotency {
    answers: Answers,
    /// Keys of requests still running, per sandbox.
    pub in_flight: Arc<Mutex<HashSet<(String, String)>>>,
    /// Every stored key, as a hash of `(sandbox, key)` with its creation
    /// time: a key not in here has no stored answer, so a request with a
    /// fresh key — the common case — is decided without reading the store.
    /// (One process owns the store; replicas sharing PostgreSQL will need
    /// the read back, or a shared index.)
    pub known: Arc<Mutex<HashMap<u64, i64>>>,
}

/// A key being answered; dropping it frees the key (even on cancellation).
pub struct Pending {
    key: (String, String),
    fingerprint: String,
    in_flight: Arc<Mutex<HashSet<(String, String)>>>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

pub enum Check {
    /// Run the request (and store its answer when `Some`).
    Proceed(Option<Pending>),
    /// Answer this instead: a replay or an error.
    Answer(Response),
}

fn fingerprint(parts: &Parts, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for part in [
        parts.method.as_str().as_bytes(),
        path.as_bytes(),
        parts.uri.query().unwrap_or("").as_bytes(),
        body,
    ] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    format!("{:x}", hasher.finalize())
}

/// The operation's declared error for `status` (else a problem).
fn error(target: &Target, parts: &Parts, path: &str, kind: ProblemType, reason: &str) -> Response {
    let headers = EngineHeaders(&parts.headers);
    let request = engine_request(parts, path, &headers, b"");
    sbx_engine::declared_error_for(
        &target.compiled,
        target.seed,
        &request,
        &[kind.status()],
        &sbx_engine::Failure::new(sbx_engine::FailureKind::Idempotency, reason),
    )
    .unwrap_or_else(|| kind.response(reason))
}

fn key_hash(sandbox_id: &str, key: &str) -> u64 {
    sbx_spec::synth::seed_from([sandbox_id.as_bytes(), key.as_bytes()])
}

/// Where answers are kept between a request and its retries.
#[derive(Clone)]
enum Answers {
    /// Written with the request's other changes; read back here.
    Store(Arc<dyn Store>),
    /// This process only, by `(sandbox, key)`; entries older than
    /// [`KEY_TTL_MS`] are swept when the map has doubled since the last sweep.
    Memory(Arc<Mutex<MemoryAnswers>>),
}

#[derive(Default)]
struct MemoryAnswers {
    by_key: HashMap<(String, String), IdempotentAnswer>,
    sweep_at_len: usize,
}

impl Idempotency {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with(Answers::Store(store))
    }

    /// Answers kept in memory, for a server without a store (`sbx mock`):
    /// [`Idempotency::keep`] holds each answer.
    pub fn in_memory() -> Self {
        Self::with(Answers::Memory(Arc::default()))
    }

    fn with(answers: Answers) -> Self {
        Self {
            answers,
            in_flight: Arc::default(),
            known: Arc::default(),
        }
    }

    /// Keeps `answer` for retries, when answers live in memory (a store
    /// gets it with the request's other changes instead).
    pub fn keep(&self, sandbox_id: &str, answer: IdempotentAnswer) {
        let Answers::Memory(memory) = &self.answers else {
            return;
        };
        let (key, created_at_ms) = (answer.key.clone(), answer.created_at_ms);
        {
            let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
            if memory.by_key.len() >= memory.sweep_at_len {
                let horizon = created_at_ms - KEY_TTL_MS;
                memory.by_key.retain(|_, a| a.created_at_ms >= horizon);
                memory.sweep_at_len = (memory.by_key.len() * 2).max(1024);
            }
            memory
                .by_key
                .insert((sandbox_id.to_owned(), key.clone()), answer);
        }
        self.remember(sandbox_id, &key, created_at_ms);
    }

    async fn stored(
        &self,
        sandbox_id: &str,
        key: &str,
    ) -> Result<Option<IdempotentAnswer>, sbx_store::StoreError> {
        match &self.answers {
            Answers::Store(store) => store.get_idempotent(sandbox_id, key).await,
            Answers::Memory(memory) => Ok(memory
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .by_key
                .get(&(sandbox_id.to_owned(), key.to_owned()))
                .cloned()),
        }
    }

    /// Indexes the stored keys of every sandbox (at start), or of one
    /// (a sandbox this server starts serving).
    pub async fn load(&self, sandbox_id: Option<&str>) -> Result<(), sbx_store::StoreError> {
        let Answers::Store(store) = &self.answers else {
            return Ok(());
        };
        let keys = store.idempotency_keys(sandbox_id).await?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for (sandbox_id, key, created_at_ms) in keys {
            known.insert(key_hash(&sandbox_id, &key), created_at_ms);
        }
        Ok(())
    }

    /// Notes an answer committed for `key`.
    pub fn remember(&self, sandbox_id: &str, key: &str, created_at_ms: i64) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_hash(sandbox_id, key), created_at_ms);
    }

    /// Drops the index entries of answers stored before `before_ms`.
    pub fn forget_before(&self, before_ms: i64) {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, created| *created >= before_ms);
    }

    fn may_be_stored(&self, sandbox_id: &str, key: &str) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&key_hash(sandbox_id, key))
    }

    /// Decides what a request with (or without) a key does.
    pub async fn check(
        &self,
        target: &Target,
        parts: &Parts,
        path: &str,
        body: &[u8],
        now_ms: i64,
    ) -> Check {
        let safe = matches!(parts.method.as_str(), "GET" | "HEAD" | "OPTIONS");
        let Some(key) = parts.headers.get("idempotency-key").filter(|_| !safe) else {
            return Check::Proceed(None);
        };
        let key = match key
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.chars().count() <= MAX_KEY_CHARS)
        {
            Some(key) => key.to_owned(),
            None => {
                let reason =
                    format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible characters");
                return Check::Answer(error(
                    target,
                    parts,
                    path,
                    ProblemType::IdempotencyKeyInvalid,
                    &reason,
                ));
            }
        };
        let fingerprint = fingerprint(parts, path, body);
        let stored = if self.may_be_stored(&target.id, &key) {
            self.stored(&target.id, &key).await
        } else {
            Ok(None)
        };
        match stored {
            Ok(Some(stored)) if stored.created_at_ms + KEY_TTL_MS > now_ms => {
                if stored.fingerprint == fingerprint {
                    return Check::Answer(replay(stored));
                }
                let reason = format!(
                    "Keys for idempotent requests can only be used with the same request they were first used with: key {key:?} was first used with a different method, path, query or body"
                );
                return Check::Answer(error(
                    target,
                    parts,
                    path,
                    ProblemType::IdempotencyKeyReused,
                    &reason,
                ));
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "idempotency lookup failed");
                return Check::Answer(
                    ProblemType::StorageUnavailable
                        .response("the idempotency key could not be checked; retry"),
                );
            }
        }
        let entry = (target.id.to_string(), key);
        let fresh = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(entry.clone());
        if !fresh {
            let reason = format!(
                "a request with Idempotency-Key {:?} is still being processed; retry when it has answered",
                entry.1
            );
            return Check::Answer(error(
                target,
                parts,
                path,
                ProblemType::IdempotencyKeyInUse,
                &reason,
            ));
        }
        Check::Proceed(Some(Pending {
            key: entry,
            fingerprint,
            in_flight: self.in_flight.clone(),
        }))
    }
}

impl Pending {
    /// The answer to store for retries (written with the request's other
    /// changes), when the operation answered: not a validation failure, an
    /// injected error or a server error.
    pub fn answer(&self, outcome: &Outcome, now_ms: i64) -> Option<IdempotentAnswer> {
        if !outcome.answered || outcome.response.status >= 500 {
            return None;
        }
        let headers = outcome.response.headers.clone();
        Some(IdempotentAnswer {
            key: self.key.1.clone(),
            fingerprint: self.fingerprint.clone(),
            status: outcome.response.status,
            headers,
            body: outcome.response.body.to_vec(),
            created_at_ms: now_ms,
        })
    }
}

fn replay(stored: IdempotentAnswer) -> Response {
    let mut headers = stored.headers;
    headers.push(("idempotent-replayed".to_owned(), "true".to_owned()));
    Response {
        status: stored.status,
        headers,
        body: stored.body.into(),
    }
}
