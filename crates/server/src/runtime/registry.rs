//! What the data plane reads on every request, held in memory: live
//! sandboxes, their key hashes, and compiled revisions shared between them.
//! The database is the source of truth; this is loaded from it at start and
//! kept in step by the control plane.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
};

use sbx_engine::{
    AuthMode, ChaosSpec, CompiledRevision, OverlayRow, SandboxState, project::RateLimits,
};
use sbx_spec::synth::seed_from;
use sbx_store::{AccountId, Isolation, Member, ProjectName, ResourceRow, SandboxId, SandboxRecord};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use crate::{
    runtime::clock::Clock,
    runtime::ids::KeyHash,
    runtime::keys::LiveKey,
    runtime::rate::Limiters,
    runtime::usage::{DailyCount, Owner},
    service::ServiceError,
};

/// The revision a sandbox serves, swapped whole on hot reload.
#[derive(Debug, Clone)]
pub struct Serving {
    pub revision: u32,
    pub compiled: Arc<CompiledRevision>,
    /// Its rate limits' buckets, as the revision sets them.
    pub limiters: Arc<Limiters>,
}

/// A chaos profile as it was set, and parsed.
#[derive(Debug)]
pub struct LiveChaos {
    pub text: String,
    pub spec: Arc<ChaosSpec>,
}

/// Kept small (every idle sandbox costs its size): rarely set fields are
/// boxed or shared.
#[derive(Debug)]
pub struct LiveSandbox {
    pub id: SandboxId,
    pub project: ProjectName,
    /// Stays on its revision; otherwise follows the project's latest.
    pub pinned: bool,
    serving: RwLock<Serving>,
    pub state: Arc<SandboxState>,
    env: RwLock<Arc<Map<String, Value>>>,
    chaos: RwLock<Option<Arc<LiveChaos>>>,
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
    /// The seed as given; `None`: its id.
    seed_text: Option<Box<str>>,
    pub seed: u64,
    pub auth: AuthMode,
    /// Its API keys in use (secret, restricted, publishable).
    keys: RwLock<Arc<[LiveKey]>>,
    pub label: Option<Box<str>>,
    pub created_at_ms: i64,
    /// When its time to live ends (`i64::MAX`: never).
    /// `i64::MAX`: never.
    expires_at_ms: AtomicI64,
    /// The account it belongs to, with the usage all its sandboxes share;
    /// `None`: the admin token's or the server's.
    pub owner: Option<Arc<Owner>>,
    /// When it last answered a request (or was made).
    last_active_ms: AtomicI64,
    /// Its data-plane requests today (UTC).
    pub requests: DailyCount,
    /// Served by another server (for this copy's life); boxed, so that a
    /// sandbox served here pays one word for it.
    elsewhere: Option<Box<Elsewhere>>,
}

/// Who serves a sandbox the database's holder knows of but does not serve.
#[derive(Debug)]
enum Elsewhere {
    /// Its own server, in a namespace of its own, and how that stands.
    Namespace(RwLock<Arc<Isolation>>),
    /// A member sharing the database: this copy keeps what the holder's
    /// views need (listing, quotas, time to live).
    Member(Member),
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
    fn from_record(
        record: SandboxRecord,
        compiled: Arc<CompiledRevision>,
        rows: Vec<ResourceRow>,
        owner: Option<Arc<Owner>>,
        served_by: Option<Member>,
    ) -> Self {
        let state = SandboxState::load(
            &compiled.behaviours.fixtures,
            overlay(rows),
            record.seeded_at_ms,
        );
        let env = record.env;
        // Stored profiles were checked when set; one that no longer parses is dropped.
        let chaos = record.chaos.as_ref().and_then(|text| {
            let spec = Arc::new(ChaosSpec::parse(text).ok()?);
            Some(Arc::new(LiveChaos {
                text: text.clone(),
                spec,
            }))
        });
        let limiters = match record.rate_limits {
            Some(own) => Limiters::own(own),
            None => Limiters::of(compiled.behaviours.settings.rate_limits),
        };
        Self {
            pinned: record.pinned,
            serving: RwLock::new(Serving {
                revision: record.revision,
                compiled,
                limiters,
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
            seed_text: (record.seed != record.id.as_str()).then(|| record.seed.into()),
            auth: record.auth,
            id: record.id,
            project: record.project,
            keys: RwLock::new(Arc::from([])),
            label: record.label.map(String::into_boxed_str),
            created_at_ms: record.created_at_ms,
            expires_at_ms: AtomicI64::new(record.expires_at_ms.unwrap_or(i64::MAX)),
            owner,
            last_active_ms: AtomicI64::new(
                record.last_active_at_ms.unwrap_or(record.created_at_ms),
            ),
            requests: DailyCount::default(),
            elsewhere: match (record.isolation, served_by) {
                (Some(isolation), _) => Some(Box::new(Elsewhere::Namespace(RwLock::new(
                    Arc::new(isolation),
                )))),
                (None, Some(member)) => Some(Box::new(Elsewhere::Member(member))),
                (None, None) => None,
            },
        }
    }

    /// Its namespace's standing, when it has one of its own.
    pub fn isolation(&self) -> Option<Arc<Isolation>> {
        match self.elsewhere.as_deref()? {
            Elsewhere::Namespace(standing) => {
                Some(standing.read().unwrap_or_else(|e| e.into_inner()).clone())
            }
            Elsewhere::Member(_) => None,
        }
    }

    /// A new standing of its namespace (nothing for a shared sandbox).
    pub fn set_isolation(&self, isolation: Isolation) {
        if let Some(Elsewhere::Namespace(standing)) = self.elsewhere.as_deref() {
            *standing.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(isolation);
        }
    }

    /// The member serving it, when the holder's copy is only a copy.
    pub fn member(&self) -> Option<&Member> {
        match self.elsewhere.as_deref()? {
            Elsewhere::Member(member) => Some(member),
            Elsewhere::Namespace(_) => None,
        }
    }

    /// Whether this server answers its requests and runs its work.
    pub fn served_here(&self) -> bool {
        self.elsewhere.is_none()
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
        self.expires_at_ms().filter(|at| *at <= now_ms)
    }

    /// When its time to live ends, if it does.
    pub fn expires_at_ms(&self) -> Option<i64> {
        Some(self.expires_at_ms.load(Ordering::Relaxed)).filter(|at| *at != i64::MAX)
    }

    /// A new end to its time to live (`None`: never), as stored.
    pub fn set_expires_at_ms(&self, at: Option<i64>) {
        self.expires_at_ms
            .store(at.unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// The revision to serve a request with; the request keeps it to the
    /// end even if a new one is swapped in meanwhile.
    pub fn serving(&self) -> Serving {
        self.serving
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Its own rate limits, when it has some.
    pub fn own_rate_limits(&self) -> Option<RateLimits> {
        self.serving().limiters.own
    }

    /// Sets (or drops, back to the revision's) its own rate limits; the
    /// buckets start full.
    pub fn set_own_rate_limits(&self, limits: Option<RateLimits>) {
        let mut serving = self.serving.write().unwrap_or_else(|e| e.into_inner());
        serving.limiters = match limits {
            Some(own) => Limiters::own(own),
            None => Limiters::of(serving.compiled.behaviours.settings.rate_limits),
        };
    }

    /// The seed its synthesized data follows.
    pub fn seed_text(&self) -> &str {
        self.seed_text.as_deref().unwrap_or(self.id.as_str())
    }

    /// The account it belongs to.
    pub fn owner_id(&self) -> Option<&AccountId> {
        self.owner.as_ref().map(|owner| &owner.id)
    }

    /// Swaps in a new revision; the fixture layer of the state follows, and
    /// the rate limits when they changed.
    pub fn swap(&self, revision: u32, compiled: Arc<CompiledRevision>) {
        let limits = compiled.behaviours.settings.rate_limits;
        let serving = self.serving();
        let same = serving.compiled.behaviours.settings.rate_limits == limits;
        let limiters = if same || serving.limiters.own.is_some() {
            serving.limiters
        } else {
            Limiters::of(limits)
        };
        self.state
            .rebase(&compiled.behaviours.fixtures, self.seeded_at_ms());
        *self.serving.write().unwrap_or_else(|e| e.into_inner()) = Serving {
            revision,
            compiled,
            limiters,
        };
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
    pub fn chaos(&self) -> Option<Arc<LiveChaos>> {
        self.chaos.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_chaos(&self, chaos: Option<Arc<LiveChaos>>) {
        *self.chaos.write().unwrap_or_else(|e| e.into_inner()) = chaos;
    }
}

type RevisionKey = (ProjectName, u32);

/// A live sandbox in the registry's set, found by its id (no second copy
/// of the id as a key).
#[derive(Clone)]
struct ById(Arc<LiveSandbox>);

impl std::borrow::Borrow<str> for ById {
    fn borrow(&self) -> &str {
        self.0.id.as_str()
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for ById {}

impl std::hash::Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id.as_str().hash(state);
    }
}

#[derive(Default)]
pub struct Registry {
    sandboxes: RwLock<HashSet<ById>>,
    by_key_hash: RwLock<HashMap<KeyHash, Arc<LiveSandbox>>>,
    owners: Mutex<HashMap<AccountId, Arc<Owner>>>,
    /// Activity and key uses up to then are in the store (the reaper
    /// writes what is newer).
    pub saved_at_ms: AtomicI64,
    revisions: Mutex<HashMap<RevisionKey, Arc<OnceCell<Arc<CompiledRevision>>>>>,
}

impl Registry {
    /// Makes the sandbox of `record` live, serving `compiled` with the
    /// records its requests changed (`rows`) and its `keys` — or, when a
    /// member serves it (`served_by`), a copy of it; returns it as the
    /// registry shares it, in place of any earlier copy.
    pub fn insert(
        &self,
        record: SandboxRecord,
        compiled: Arc<CompiledRevision>,
        rows: Vec<ResourceRow>,
        keys: Vec<LiveKey>,
        served_by: Option<Member>,
    ) -> Arc<LiveSandbox> {
        let owner = record.owner.as_ref().map(|owner| self.owner(owner));
        let sandbox = Arc::new(LiveSandbox::from_record(
            record, compiled, rows, owner, served_by,
        ));
        if let Ok(mut sandboxes) = self.sandboxes.write() {
            sandboxes.replace(ById(sandbox.clone()));
        }
        self.set_keys(&sandbox, keys);
        sandbox
    }

    /// The account `id`, with what it uses, shared by its sandboxes.
    pub fn owner(&self, id: &AccountId) -> Arc<Owner> {
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(Owner {
                    id: id.clone(),
                    usage: Default::default(),
                })
            })
            .clone()
    }

    /// Every owner, as known since start.
    pub fn owners(&self) -> Vec<Arc<Owner>> {
        let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.values().cloned().collect()
    }

    /// Replaces `sandbox`'s keys: requests see the new set at once.
    pub fn set_keys(&self, sandbox: &Arc<LiveSandbox>, keys: Vec<LiveKey>) {
        if let Ok(mut index) = self.by_key_hash.write() {
            for old in sandbox.keys().iter() {
                index.remove(&old.hash);
            }
            for key in &keys {
                index.insert(key.hash, sandbox.clone());
            }
        }
        sandbox.set_keys(keys);
    }

    pub fn get(&self, id: &str) -> Option<Arc<LiveSandbox>> {
        Some(self.sandboxes.read().ok()?.get(id)?.0.clone())
    }

    pub fn by_key_hash(&self, hash: &KeyHash) -> Option<Arc<LiveSandbox>> {
        self.by_key_hash.read().ok()?.get(hash).cloned()
    }

    /// How many references to `sandbox` the registry itself holds: the
    /// rest are requests and work in flight on it.
    pub fn shares(&self, sandbox: &Arc<LiveSandbox>) -> usize {
        let listed = self
            .sandboxes
            .read()
            .ok()
            .and_then(|set| {
                set.get(sandbox.id.as_str())
                    .map(|s| Arc::ptr_eq(&s.0, sandbox))
            })
            .unwrap_or(false);
        let by_key = self.by_key_hash.read().map_or(0, |index| {
            sandbox
                .keys()
                .iter()
                .filter(|key| {
                    index
                        .get(&key.hash)
                        .is_some_and(|s| Arc::ptr_eq(s, sandbox))
                })
                .count()
        });
        usize::from(listed) + by_key
    }

    pub fn remove(&self, id: &str) -> Option<Arc<LiveSandbox>> {
        let removed = self.sandboxes.write().ok()?.take(id)?.0;
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
            .map(|s| s.iter().map(|s| s.0.clone()).collect())
            .unwrap_or_default();
        all.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        all
    }

    /// How many sandboxes this server serves itself (not the holder's
    /// copies of sandboxes served elsewhere).
    pub fn served_here_count(&self) -> usize {
        self.sandboxes
            .read()
            .map_or(0, |set| set.iter().filter(|s| s.0.served_here()).count())
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
                s.iter()
                    .filter(|s| s.0.project == project && !s.0.pinned)
                    .map(|s| s.0.clone())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// 100,000 idle sandboxes must fit in 100 MB: the allocator rounds a
    /// sandbox, with its `Arc`'s two counts, up to its size class (448
    /// bytes), so growing past it costs every idle sandbox 64 more bytes.
    #[test]
    fn a_live_sandbox_fits_its_size_class() {
        let size = std::mem::size_of::<LiveSandbox>() + 2 * std::mem::size_of::<usize>();
        assert!(size <= 448, "LiveSandbox in its Arc is {size} bytes");
    }
}
