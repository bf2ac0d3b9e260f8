//! What the data plane reads on every request, held in memory: live
//! sandboxes, their key hashes, and compiled revisions shared between them.
//! The database is the source of truth; this is loaded from it at start and
//! kept in step by the control plane.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
};

use sbx_engine::{AuthMode, ChaosSpec, CompiledRevision, OverlayRow, SandboxState};
use sbx_spec::synth::seed_from;
use sbx_store::{AccountId, ProjectName, ResourceRow, SandboxId, SandboxRecord};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::{
    runtime::clock::Clock, runtime::ids::KeyHash, runtime::keys::LiveKey, runtime::rate::Limiters,
    runtime::usage::OwnerUsage, service::ServiceError,
};

/// The revision a sandbox serves, swapped whole on hot reload.
#[derive(Debug, Clone)]
pub struct Serving {
    pub revision: u32,
    pub compiled: Arc<CompiledRevision>,
}

#[derive(Debug)]
pub struct LiveSandbox {
    pub id: SandboxId,
    pub project: ProjectName,
    /// Stays on its revision; otherwise follows the project's latest.
    pub pinned: bool,
    serving: RwLock<Serving>,
    pub state: Arc<SandboxState>,
    env: RwLock<Arc<Map<String, Value>>>,
    chaos: RwLock<Option<(String, Arc<ChaosSpec>)>>,
    scenario: RwLock<Option<Arc<str>>>,
    clock: RwLock<Clock>,
    /// Sandbox time the fixtures were seeded at.
    seeded_at_ms: AtomicI64,
    /// When the earliest pending job falls due.
    pub next_job: DueAt,
    /// When the earliest pending webhook delivery is due.
    pub next_delivery: DueAt,
    /// Held while the sandbox's due deliveries are being sent.
    pub delivering: Arc<tokio::sync::Mutex<()>>,
    pub webhook_schedule: sbx_webhooks::ScheduleName,
    /// Held while the sandbox's due jobs run, so each runs once.
    pub jobs: tokio::sync::Mutex<()>,
    pub seed_text: String,
    pub seed: u64,
    pub auth: AuthMode,
    /// Its API keys in use (secret, restricted, publishable).
    keys: RwLock<Arc<[LiveKey]>>,
    /// Its rate limits, as the revision it serves sets them.
    limiters: RwLock<Arc<Limiters>>,
    pub label: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// The account it belongs to; `None`: the admin token's or the server's.
    pub owner: Option<AccountId>,
    /// Its owner's usage, shared by all the owner's sandboxes.
    pub usage: Option<Arc<OwnerUsage>>,
    /// When it last answered a request (or was made).
    last_active_ms: AtomicI64,
}

/// Sandbox time something pending next falls due (a job, a delivery), kept
/// in memory so the workers find due work without asking the store.
#[derive(Debug)]
pub struct DueAt {
    at: AtomicI64,
    /// Set by `note`: something was added since the runner last looked.
    noted: AtomicBool,
}

impl Default for DueAt {
    fn default() -> Self {
        Self {
            at: AtomicI64::new(i64::MAX),
            noted: AtomicBool::new(false),
        }
    }
}

impl DueAt {
    pub fn get(&self) -> Option<i64> {
        Some(self.at.load(Ordering::Relaxed)).filter(|at| *at != i64::MAX)
    }

    /// Notes something due at `ms` (the earliest wins).
    pub fn note(&self, ms: i64) {
        self.at.fetch_min(ms, Ordering::Relaxed);
        self.noted.store(true, Ordering::Release);
    }

    /// A runner starts reading the store: later notes are kept in mind.
    pub fn begin(&self) {
        self.noted.store(false, Ordering::Release);
    }

    /// Sets it as the store said; if something was noted since `begin`
    /// (the store may not have shown it yet), the runner looks again.
    pub fn set(&self, ms: Option<i64>) {
        self.at.store(ms.unwrap_or(i64::MAX), Ordering::Relaxed);
        if self.noted.swap(false, Ordering::AcqRel) {
            self.at.store(i64::MIN, Ordering::Relaxed);
        }
    }
}

/// Persisted overlay rows as the engine loads them (bad rows are skipped).
pub fn overlay(rows: Vec<ResourceRow>) -> Vec<OverlayRow> {
    rows.into_iter()
        .filter_map(|row| {
            let value = match row.value {
                // Kept as JSON, checked but not built into a tree: most
                // records are only ever sent again.
                Some(text) => {
                    serde_json::from_str::<serde::de::IgnoredAny>(&text).ok()?;
                    Some(Arc::new(sbx_engine::Synthesized::from_json(
                        text.into(),
                        None,
                    )))
                }
                None => None,
            };
            Some(OverlayRow {
                collection: row.collection,
                id: row.id,
                scope: row.scope,
                seq: row.seq,
                value,
                version: row.version,
            })
        })
        .collect()
}

/// A sandbox's environment; the empty one (most sandboxes') is shared, a
/// hundred bytes less for each of many idle sandboxes.
fn shared_env(env: Map<String, Value>) -> Arc<Map<String, Value>> {
    static EMPTY: std::sync::LazyLock<Arc<Map<String, Value>>> =
        std::sync::LazyLock::new(Arc::default);
    if env.is_empty() {
        EMPTY.clone()
    } else {
        Arc::new(env)
    }
}

impl LiveSandbox {
    /// A live sandbox from its stored row and the records its requests changed.
    pub fn from_record(
        record: SandboxRecord,
        compiled: Arc<CompiledRevision>,
        rows: Vec<ResourceRow>,
    ) -> Self {
        let state = SandboxState::load(
            &compiled.behaviours.fixtures,
            overlay(rows),
            record.seeded_at_ms,
        );
        let env = record.env;
        // Stored profiles were checked when set; one that no longer parses is dropped.
        let chaos = record
            .chaos
            .as_ref()
            .and_then(|text| Some((text.clone(), Arc::new(ChaosSpec::parse(text).ok()?))));
        let limiters = Limiters::of(compiled.behaviours.settings.rate_limits);
        Self {
            pinned: record.pinned,
            serving: RwLock::new(Serving {
                revision: record.revision,
                compiled,
            }),
            state: Arc::new(state),
            env: RwLock::new(shared_env(env)),
            chaos: RwLock::new(chaos),
            scenario: RwLock::new(record.scenario.as_deref().map(Arc::from)),
            clock: RwLock::new(Clock {
                offset_ms: record.clock_offset_ms,
                frozen_ms: record.clock_frozen_ms,
            }),
            seeded_at_ms: AtomicI64::new(record.seeded_at_ms),
            next_job: DueAt::default(),
            next_delivery: DueAt::default(),
            delivering: Arc::default(),
            webhook_schedule: record.webhook_schedule,
            jobs: tokio::sync::Mutex::new(()),
            seed: seed_from([record.seed.as_bytes()]),
            auth: record.auth,
            id: record.id,
            project: record.project,
            seed_text: record.seed,
            keys: RwLock::new(Arc::from([])),
            limiters: RwLock::new(limiters),
            label: record.label,
            created_at_ms: record.created_at_ms,
            expires_at_ms: record.expires_at_ms,
            owner: record.owner,
            usage: None,
            last_active_ms: AtomicI64::new(
                record.last_active_at_ms.unwrap_or(record.created_at_ms),
            ),
        }
    }

    /// Notes a request answered at `now_ms` (at most once a second).
    pub fn note_activity(&self, now_ms: i64) {
        if now_ms - self.last_active_ms.load(Ordering::Relaxed) >= 1_000 {
            self.last_active_ms.store(now_ms, Ordering::Relaxed);
        }
    }

    /// When it last answered a request (or was made).
    pub fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    /// Its keys in use, as a request checks them.
    pub fn keys(&self) -> Arc<[LiveKey]> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_keys(&self, keys: Vec<LiveKey>) {
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::from(keys);
    }

    pub fn expired_at(&self, now_ms: i64) -> Option<i64> {
        self.expires_at_ms.filter(|at| *at <= now_ms)
    }

    /// The revision to serve a request with; the request keeps it to the
    /// end even if a new one is swapped in meanwhile.
    pub fn serving(&self) -> Serving {
        self.serving
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Its rate limits' buckets.
    pub fn limiters(&self) -> Arc<Limiters> {
        self.limiters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Swaps in a new revision; the fixture layer of the state follows, and
    /// the rate limits when they changed.
    pub fn swap(&self, revision: u32, compiled: Arc<CompiledRevision>) {
        let limits = compiled.behaviours.settings.rate_limits;
        if self.serving().compiled.behaviours.settings.rate_limits != limits {
            *self.limiters.write().unwrap_or_else(|e| e.into_inner()) = Limiters::of(limits);
        }
        self.state
            .rebase(&compiled.behaviours.fixtures, self.seeded_at_ms());
        *self.serving.write().unwrap_or_else(|e| e.into_inner()) = Serving { revision, compiled };
    }

    pub fn seeded_at_ms(&self) -> i64 {
        self.seeded_at_ms.load(Ordering::Relaxed)
    }

    /// Back to the fixtures, seeded at the sandbox's present time.
    pub fn reseed(&self, seeded_at_ms: i64) {
        self.seeded_at_ms.store(seeded_at_ms, Ordering::Relaxed);
        self.next_job.set(None);
        self.state
            .reset(&self.serving().compiled.behaviours.fixtures, seeded_at_ms);
    }

    /// The sandbox as work done outside a request (jobs, triggered
    /// transitions and events) sees it.
    pub fn background(&self) -> sbx_engine::jobs::JobSandbox {
        sbx_engine::jobs::JobSandbox {
            id: self.id.to_string(),
            seed: self.seed,
            state: self.state.clone(),
            env: self.env(),
        }
    }

    pub fn env(&self) -> Arc<Map<String, Value>> {
        self.env.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_env(&self, env: Map<String, Value>) {
        *self.env.write().unwrap_or_else(|e| e.into_inner()) = shared_env(env);
    }

    pub fn clock(&self) -> Clock {
        *self.clock.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_clock(&self, clock: Clock) {
        *self.clock.write().unwrap_or_else(|e| e.into_inner()) = clock;
    }

    /// The sandbox clock's time, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.clock().now_ms(crate::app::now_ms())
    }

    /// The default scenario.
    pub fn scenario(&self) -> Option<Arc<str>> {
        self.scenario
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_scenario(&self, scenario: Option<&str>) {
        *self.scenario.write().unwrap_or_else(|e| e.into_inner()) = scenario.map(Arc::from);
    }

    /// The chaos profile, as text and parsed.
    pub fn chaos(&self) -> Option<(String, Arc<ChaosSpec>)> {
        self.chaos.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_chaos(&self, chaos: Option<(String, Arc<ChaosSpec>)>) {
        *self.chaos.write().unwrap_or_else(|e| e.into_inner()) = chaos;
    }
}

type RevisionKey = (ProjectName, u32);

#[derive(Default)]
pub struct Registry {
    sandboxes: RwLock<HashMap<SandboxId, Arc<LiveSandbox>>>,
    by_key_hash: RwLock<HashMap<KeyHash, SandboxId>>,
    owners: Mutex<HashMap<AccountId, Arc<OwnerUsage>>>,
    /// Activity and key uses up to then are in the store (the reaper
    /// writes what is newer).
    pub saved_at_ms: AtomicI64,
    revisions: Mutex<HashMap<RevisionKey, Arc<OnceCell<Arc<CompiledRevision>>>>>,
}

impl Registry {
    /// Makes `sandbox` live with its `keys`; returns it as the registry
    /// shares it.
    pub fn insert(&self, mut sandbox: LiveSandbox, keys: Vec<LiveKey>) -> Arc<LiveSandbox> {
        sandbox.usage = sandbox.owner.as_ref().map(|owner| self.usage_of(owner));
        let sandbox = Arc::new(sandbox);
        if let Ok(mut sandboxes) = self.sandboxes.write() {
            sandboxes.insert(sandbox.id.clone(), sandbox.clone());
        }
        self.set_keys(&sandbox, keys);
        sandbox
    }

    /// What `owner` uses, shared by its sandboxes.
    pub fn usage_of(&self, owner: &AccountId) -> Arc<OwnerUsage> {
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.entry(owner.clone()).or_default().clone()
    }

    /// Every owner's usage, as known since start.
    pub fn owners(&self) -> Vec<(AccountId, Arc<OwnerUsage>)> {
        let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners
            .iter()
            .map(|(id, usage)| (id.clone(), usage.clone()))
            .collect()
    }

    /// Replaces `sandbox`'s keys: requests see the new set at once.
    pub fn set_keys(&self, sandbox: &LiveSandbox, keys: Vec<LiveKey>) {
        if let Ok(mut index) = self.by_key_hash.write() {
            for old in sandbox.keys().iter() {
                index.remove(&old.hash);
            }
            for key in &keys {
                index.insert(key.hash, sandbox.id.clone());
            }
        }
        sandbox.set_keys(keys);
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveSandbox>> {
        self.sandboxes.read().ok()?.get(id).cloned()
    }

    pub fn by_key_hash(&self, hash: &KeyHash) -> Option<Arc<LiveSandbox>> {
        let id = self.by_key_hash.read().ok()?.get(hash).cloned()?;
        self.get(&id)
    }

    pub fn remove(&self, id: &str) -> Option<Arc<LiveSandbox>> {
        let removed = self.sandboxes.write().ok()?.remove(id)?;
        if let Ok(mut index) = self.by_key_hash.write() {
            for key in removed.keys().iter() {
                index.remove(&key.hash);
            }
        }
        Some(removed)
    }

    pub fn all(&self) -> Vec<Arc<LiveSandbox>> {
        let mut all: Vec<_> = self
            .sandboxes
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        all
    }

    pub fn count(&self) -> usize {
        self.sandboxes.read().map(|s| s.len()).unwrap_or(0)
    }

    /// Serves `compiled` in every sandbox of `project` that follows the latest revision.
    pub fn swap_project(
        &self,
        project: &str,
        revision: u32,
        compiled: &Arc<CompiledRevision>,
    ) -> usize {
        let followers: Vec<Arc<LiveSandbox>> = self
            .sandboxes
            .read()
            .map(|s| {
                s.values()
                    .filter(|s| s.project == project && !s.pinned)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for sandbox in &followers {
            sandbox.swap(revision, compiled.clone());
        }
        followers.len()
    }

    /// Forgets compiled revisions of a deleted project.
    pub fn forget_project(&self, project: &str) {
        if let Ok(mut revisions) = self.revisions.lock() {
            revisions.retain(|(name, _), _| name != project);
        }
    }

    /// The compiled revision, compiling it (once, off the async threads) on first use.
    pub async fn compiled<F, Fut>(
        &self,
        project: &str,
        revision: u32,
        load: F,
    ) -> Result<Arc<CompiledRevision>, ServiceError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Arc<CompiledRevision>, ServiceError>>,
    {
        let cell = {
            let mut revisions = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
            revisions
                .entry((ProjectName::from(project), revision))
                .or_default()
                .clone()
        };
        cell.get_or_try_init(load).await.cloned()
    }

    /// Seeds the cache with a revision compiled elsewhere (at import).
    pub fn put_compiled(&self, project: &str, revision: u32, compiled: Arc<CompiledRevision>) {
        if let Ok(mut revisions) = self.revisions.lock() {
            let cell = OnceCell::new_with(Some(compiled));
            revisions.insert((ProjectName::from(project), revision), Arc::new(cell));
        }
    }
}
