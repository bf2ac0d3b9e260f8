//! Persistence behind one interface.
//!
//! [`Store`] is what the server talks to; [`SqliteStore`] is the embedded
//! default and [`PgStore`] what several replicas share. Both are the same
//! SQL (`src/sql/`), compiled once per database, and pass the same contract
//! suite. Every sandbox query is keyed by the sandbox id; nothing reads
//! across tenants.

mod accounts;
mod counts;
pub mod ids;
mod keys;
pub mod oauth;
#[allow(
    clippy::duplicate_mod,
    reason = "src/sql is the store written once, compiled for each database"
)]
mod postgres;
pub mod sealed;
mod sqlite;

use async_trait::async_trait;
use sbx_engine::{AuthMode, ProjectFiles};
use sbx_webhooks::{Faults, ScheduleName};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use accounts::{AccountRecord, Accounts, InvitationRecord, Role, TokenKind, TokenRecord};
pub use counts::{DayCounts, RequestCounts};
pub use ids::{
    AccountId, EndpointId, EventId, JobId, KeyId, ProjectName, RequestId, SandboxId, TokenId,
};
pub use keys::{KeyKind, KeyPermissions, KeyRecord, SandboxKeys};
pub use postgres::PgStore;
pub use sealed::{SealError, Sealer};
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} does not exist")]
    NotFound(String),
    /// Text the database cannot hold: PostgreSQL refuses U+0000 (NUL).
    #[error("{0}")]
    Unstorable(String),
    /// Another server holds the database: this one may no longer write.
    #[error("{0}")]
    Fenced(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored row that does not decode: named, never read as a default.
    #[error("{table} {key}: column {column} does not decode: {cause}")]
    Corrupt {
        table: &'static str,
        key: String,
        column: &'static str,
        cause: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

/// The SQLSTATE of a write the fence refused.
const FENCED: &str = "SBX01";

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            // 22021: a character not in the encoding (PostgreSQL's answer
            // to a NUL in text), 22P05: one it cannot translate.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("22021" | "22P05")) =>
            {
                Self::Unstorable(
                    "text with a NUL character (U+0000) cannot be stored: remove it".to_owned(),
                )
            }
            // Raised by the fence on every write (`sbx_fence()`).
            sqlx::Error::Database(db) if db.code().as_deref() == Some(FENCED) => {
                Self::Fenced(db.message().to_owned())
            }
            _ => Self::Database(error),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectRecord {
    pub name: ProjectName,
    pub latest_revision: u32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RevisionRecord {
    pub project: ProjectName,
    pub revision: u32,
    /// The spec text as imported (bundled when it came from several files).
    pub spec: String,
    /// The behaviour files (stored as one JSON document).
    pub files: ProjectFiles,
    pub created_at_ms: i64,
    /// Who published it: an account id, `admin` (the token) or `system`;
    /// empty for revisions stored before authors were kept.
    pub author: String,
}

/// A revision without its text, for listing a project's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevisionSummary {
    pub revision: u32,
    pub created_at_ms: i64,
    pub author: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRecord {
    pub id: SandboxId,
    pub project: ProjectName,
    pub revision: u32,
    /// SHA-256 of the API key, hex; the key itself is never stored.
    pub key_hash: String,
    pub seed: String,
    /// Whether it checks the spec's security schemes.
    pub auth: AuthMode,
    pub label: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    /// Stays on `revision`; otherwise follows the project's latest.
    pub pinned: bool,
    /// Overrides of the project's environment parameters.
    pub env: Map<String, Value>,
    /// The chaos profile, as `X-Chaos` would say it.
    pub chaos: Option<String>,
    /// The default scenario.
    pub scenario: Option<String>,
    /// The sandbox clock: real time plus this offset…
    pub clock_offset_ms: i64,
    /// …or frozen here.
    pub clock_frozen_ms: Option<i64>,
    /// Sandbox time of the last seeding (creation or reset), which
    /// relative fixture dates resolve against.
    pub seeded_at_ms: i64,
    /// The retry schedule of its webhook deliveries.
    pub webhook_schedule: ScheduleName,
    /// The account it belongs to; `None`: the admin token's or the server's.
    pub owner: Option<AccountId>,
    /// When it last answered a request, as last written.
    pub last_active_at_ms: Option<i64>,
    /// Its own rate limits, replacing its project's.
    pub rate_limits: Option<sbx_engine::project::RateLimits>,
    /// Served from a Kubernetes namespace of its own; `None`: by the servers.
    pub isolation: Option<Isolation>,
}

/// A sandbox with `isolation: namespace`: its own namespace and `sbx`,
/// which the servers forward its requests to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Isolation {
    pub state: IsolationState,
    /// Why it is in that state, as the cluster says.
    pub message: Option<String>,
    pub changed_at_ms: i64,
    /// The admin token of its `sbx` (stored sealed), which the servers
    /// forward its control-plane calls with.
    #[serde(skip)]
    pub instance_token: String,
}

/// Where a sandbox's namespace stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IsolationState {
    /// Applied (or being applied); its `sbx` not ready yet.
    Provisioning,
    Ready,
    /// It will not become ready without help (`message` says why).
    Failed,
}

impl IsolationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Ready => "ready",
            Self::Failed => "failed",
        }
    }
}

/// A record a request changed, as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRow {
    pub collection: String,
    pub id: String,
    pub scope: String,
    pub seq: u64,
    /// JSON text; `None` once deleted.
    pub value: Option<String>,
    /// Orders writes of one sandbox: the highest wins.
    pub version: u64,
}

/// What one request changed in one sandbox: records, and emitted events
/// `(type, payload JSON, created_at_ms)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    pub sandbox_id: String,
    pub rows: Vec<ResourceRow>,
    pub events: Vec<(String, String, i64)>,
    /// Answers to replay to retries of idempotent requests.
    pub answers: Vec<IdempotentAnswer>,
    /// Jobs scheduled.
    pub jobs: Vec<JobRecord>,
    /// Jobs run: `(id, None)` is forgotten, `(id, Some(error))` kept as failed.
    pub finished_jobs: Vec<(String, Option<String>)>,
    /// Lifecycle state changes.
    pub transitions: Vec<TransitionRecord>,
    /// What made these changes, stamped on the events, jobs and
    /// transitions (see [`Origin`]).
    pub origin: Option<Origin>,
}

/// What caused a change, as the timeline links it; stored as
/// `request:<request id>`, `job:<job id>`, `control:<request id>` or
/// `event:<number>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A data-plane request.
    Request(RequestId),
    /// A job on the sandbox clock.
    Job(String),
    /// A control-plane call.
    Control(RequestId),
    /// An event (what a delivery attempt delivers).
    Event(EventId),
}

impl Origin {
    /// `request`, `job`, `control` or `event`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Request(_) => "request",
            Self::Job(_) => "job",
            Self::Control(_) => "control",
            Self::Event(_) => "event",
        }
    }

    /// The origin as stored, e.g. `request:req_1`.
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, id) = text.split_once(':')?;
        let id = id.to_owned();
        match kind {
            "request" => Some(Self::Request(id.into())),
            "job" => Some(Self::Job(id)),
            "control" => Some(Self::Control(id.into())),
            "event" => id.parse().ok().map(|n| Self::Event(EventId(n))),
            _ => None,
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Request(id) | Self::Control(id) => write!(f, "{}:{id}", self.kind()),
            Self::Job(id) => write!(f, "job:{id}"),
            Self::Event(event) => write!(f, "event:{}", event.0),
        }
    }
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
            && self.events.is_empty()
            && self.answers.is_empty()
            && self.jobs.is_empty()
            && self.finished_jobs.is_empty()
            && self.transitions.is_empty()
    }

    /// Whether only records changed (nothing else to write with them).
    pub fn only_records(&self) -> bool {
        self.events.is_empty()
            && self.answers.is_empty()
            && self.jobs.is_empty()
            && self.finished_jobs.is_empty()
            && self.transitions.is_empty()
    }
}

/// A job on a sandbox clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: JobId,
    /// Orders jobs due at the same time (scheduling order); set by the store.
    pub seq: i64,
    /// Sandbox time, Unix milliseconds.
    pub due_at_ms: i64,
    /// What the job does.
    pub action: Value,
    pub payload: Value,
    pub scheduled_at_ms: i64,
    /// Why it failed, once it has.
    pub error: Option<String>,
    /// What scheduled it, when not its change set's origin (a job
    /// scheduled by another in the same run).
    pub origin: Option<Origin>,
}

/// A record's lifecycle state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionRecord {
    pub collection: String,
    pub resource_id: String,
    pub from: Option<String>,
    pub to: String,
    pub at_ms: i64,
    pub cause: String,
}

/// An event emitted by a behaviour, bound for the webhook outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRecord {
    pub id: EventId,
    pub sandbox_id: SandboxId,
    pub event_type: String,
    pub payload: Value,
    pub created_at_ms: i64,
}

/// A stored answer to a request sent with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentAnswer {
    pub key: String,
    /// Hex SHA-256 of the request it answered.
    pub fingerprint: String,
    pub status: u16,
    /// `[name, value]` pairs.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub created_at_ms: i64,
}

/// A sandbox's webhook endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRecord {
    pub id: EndpointId,
    pub sandbox_id: SandboxId,
    pub url: String,
    /// Event types; `["*"]` is every type.
    pub events: Vec<String>,
    pub description: Option<String>,
    pub secret: String,
    /// The secret before the last rotation, still signing until…
    pub previous_secret: Option<String>,
    /// …this real time.
    pub previous_secret_expires_ms: Option<i64>,
    /// `None`: enabled.
    pub disabled_reason: Option<String>,
    pub failures_in_row: i64,
    pub created_at_ms: i64,
    /// Delivery faults opted into, if any.
    pub faults: Option<Faults>,
}

/// A delivery due now, with what sending it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub id: i64,
    pub sandbox_id: SandboxId,
    /// Attempts made so far.
    pub attempts: i64,
    /// Sandbox time it is due.
    pub next_attempt_ms: i64,
    pub event_id: EventId,
    pub event_type: String,
    pub payload: Value,
    pub event_created_at_ms: i64,
    pub endpoint: EndpointRecord,
}

/// Who claims deliveries, and until when (real time, Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryClaim {
    /// The server claiming (its replica id).
    pub claimer: String,
    pub now_ms: i64,
    pub until_ms: i64,
}

/// One attempt at a delivery and what it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub delivery_id: i64,
    pub endpoint_id: EndpointId,
    /// 1-based.
    pub attempt: i64,
    /// Sandbox time.
    pub at_ms: i64,
    /// JSON object of the headers sent.
    pub request_headers: String,
    pub status: Option<u16>,
    pub body_excerpt: Option<String>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// `delivered`, `pending` (tried again at `next_attempt_ms`) or `dead`.
    pub state: &'static str,
    pub next_attempt_ms: Option<i64>,
    /// Disables the endpoint with this reason (too many failures in a row).
    pub disable_endpoint: Option<String>,
}

/// A delivery as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryRecord {
    pub id: i64,
    pub endpoint_id: EndpointId,
    pub event_id: EventId,
    pub event_type: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_ms: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// An attempt as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptView {
    pub attempt: i64,
    pub at_ms: i64,
    pub request_headers: Value,
    pub status: Option<i64>,
    pub body_excerpt: Option<String>,
    pub latency_ms: i64,
    pub error: Option<String>,
}

/// One logged request, redacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRecord {
    /// Orders the log; the cursor of its pages.
    pub seq: i64,
    pub sandbox_id: SandboxId,
    pub request_id: RequestId,
    /// Real time.
    pub at_ms: i64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub operation: Option<String>,
    pub status: i64,
    pub latency_us: i64,
    pub scenario: Option<String>,
    pub chaos: Option<String>,
    pub replayed: bool,
    /// JSON object.
    pub request_headers: Value,
    pub request_body: String,
    /// JSON object.
    pub response_headers: Value,
    pub response_body: String,
    /// How the pipeline decided: a JSON array of steps.
    pub trace: Value,
    /// The sandbox clock's time when it arrived (Unix ms).
    pub sandbox_at_ms: Option<i64>,
    /// The W3C trace id (32 hex digits) the request belongs to.
    pub trace_id: Option<String>,
}

/// Which logged requests to list: newest first, before `before_seq`; or,
/// with `after_seq`, oldest first after it (a tail catching up).
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Statuses from the first to the second, inclusive (`4xx` is 400–499).
    pub status: Option<(i64, i64)>,
    pub method: Option<String>,
    pub operation: Option<String>,
    pub since_ms: Option<i64>,
    /// In the path, query or bodies.
    pub text: Option<String>,
    pub before_seq: Option<i64>,
    pub after_seq: Option<i64>,
    pub limit: u32,
}

/// A control-plane change, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    pub at_ms: i64,
    /// Who: `admin` (the admin token), an account (`usr_…`), `anonymous`
    /// (a refused attempt) or `system` (the server itself: the demo, expiry).
    pub actor: String,
    /// What: the method and route, e.g. `POST /api/v1/sandboxes/{id}/clock`.
    pub action: String,
    /// On what: the path as called.
    pub target: String,
    /// The outcome: the answer's status.
    pub status: i64,
    pub request_id: Option<RequestId>,
    /// From where: the caller's IP address.
    pub client: Option<String>,
    pub user_agent: Option<String>,
    /// What the change created (its `Location`), e.g. `/api/v1/sandboxes/sbx-…`.
    pub resource: Option<String>,
    /// Why it failed (the problem's detail), or why the system acted.
    pub detail: Option<String>,
    /// The account the entry concerns: the caller's, or the owner of the
    /// sandbox the server acted on.
    #[serde(skip)]
    pub owner: Option<AccountId>,
}

/// How a control-plane change ended, from its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// Below 400.
    Succeeded,
    /// 401 or 403: the caller was not allowed.
    Refused,
    /// Any other 4xx or 5xx.
    Failed,
}

impl AuditOutcome {
    pub fn of(status: i64) -> Self {
        match status {
            401 | 403 => Self::Refused,
            400.. => Self::Failed,
            _ => Self::Succeeded,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// Which audit entries to list: newest first, before `before_seq`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only entries that concern this account (a developer's own).
    pub owner: Option<AccountId>,
    pub actor: Option<String>,
    /// In the action (`DELETE`, `/clock`), case-insensitive.
    pub action: Option<String>,
    /// In the target or the resource (a sandbox id, a project name).
    pub target: Option<String>,
    pub outcome: Option<AuditOutcome>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// A move of a sandbox clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockChange {
    pub sandbox_id: SandboxId,
    /// Real time of the change.
    pub at_ms: i64,
    /// Sandbox time before and after.
    pub from_ms: i64,
    pub to_ms: i64,
    /// In words: `advance P2D`, `freeze`, `resume`.
    pub change: String,
    pub request_id: Option<String>,
    /// The clock's setting after the move: its distance from real time,
    /// and the instant it stands still at, when frozen.
    pub offset_ms: i64,
    pub frozen_ms: Option<i64>,
}

/// What a sandbox's timeline holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineKind {
    Clock,
    Request,
    Transition,
    Job,
    Event,
    Delivery,
}

impl TimelineKind {
    pub const ALL: [TimelineKind; 6] = [
        Self::Clock,
        Self::Request,
        Self::Transition,
        Self::Job,
        Self::Event,
        Self::Delivery,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Clock => "clock",
            Self::Request => "request",
            Self::Transition => "transition",
            Self::Job => "job",
            Self::Event => "event",
            Self::Delivery => "delivery",
        }
    }
}

/// Which timeline entries to list: sandbox time in `[since_ms, until_ms)`,
/// oldest first, at most `limit`.
#[derive(Debug, Clone)]
pub struct TimelineQuery {
    pub kinds: Vec<TimelineKind>,
    pub since_ms: i64,
    pub until_ms: i64,
    pub limit: u32,
}

/// One thing that happened in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRecord {
    pub kind: TimelineKind,
    /// Sandbox time.
    pub at_ms: i64,
    /// Real time, where known (requests and clock changes).
    pub real_at_ms: Option<i64>,
    /// The request id, event number, job id, `collection/id` of a
    /// transition, `delivery/attempt` of a delivery attempt.
    pub id: String,
    /// What caused it (see [`Origin`]; `event:<number>` for deliveries).
    pub origin: Option<Origin>,
    /// The kind's particulars, a JSON object.
    pub detail: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub id: String,
    pub project: String,
    pub expired_at_ms: i64,
}

/// The server that serves a database's sandboxes, as it wrote when it
/// took the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// Its replica id.
    pub replica: String,
    /// Where it is reached.
    pub address: String,
    pub since_ms: i64,
    /// The takeover it holds under (see [`DatabaseHold::epoch`]).
    pub epoch: i64,
}

/// A server's hold on its database: a lease it renews. While one holds
/// it, every other server sharing the database stands by (one active
/// server per database, until sandboxes are owned one by one).
#[async_trait]
pub trait DatabaseHold: Send + Sync {
    /// Renews the lease. [`StoreError::Fenced`] means another server took
    /// the database (this one was paused or cut off past its lease); any
    /// other error leaves the lease to run out unless a later renewal
    /// succeeds.
    async fn renew(&mut self) -> Result<(), StoreError>;
    /// How long a renewal holds the database, counted from before it was
    /// asked for; `None` for a database no other server can take.
    fn lease(&self) -> Option<std::time::Duration>;
    /// Which takeover this is: it grows each time a server takes the
    /// database.
    fn epoch(&self) -> i64;
    /// Lets the database go now (a graceful stop), so that a server
    /// standing by takes over at once.
    async fn release(self: Box<Self>);
}

/// A server other than the holder serving sandboxes of its own: where it
/// is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub replica: String,
    pub address: String,
}

/// Who serves a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedBy {
    /// `None`: the database's holder.
    pub member: Option<Member>,
    /// Grows each time the sandbox moves to another server.
    pub epoch: i64,
}

/// A member's lease, renewed every second; while it lasts, the member may
/// write for the sandboxes it serves.
#[async_trait]
pub trait Membership: Send + Sync {
    /// Renews the lease. [`StoreError::Fenced`] means the holder swept this
    /// member (it was paused or cut off past its lease): its sandboxes are
    /// served elsewhere now and it may no longer write.
    async fn renew(&mut self) -> Result<(), StoreError>;
    /// How long a renewal holds, counted from before it was asked for.
    fn lease(&self) -> std::time::Duration;
    /// Marks the member as stopping: it is given no sandboxes from now
    /// on (it hands its own over), while its lease still lets it write.
    async fn drain(&mut self) -> Result<(), StoreError>;
    /// Ends its lease now (a graceful stop, or it takes the database
    /// itself): the holder's next sweep takes its sandboxes over.
    async fn leave(self: Box<Self>);
}

/// A change another server made that a server keeping sandboxes in memory
/// follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The project has a new revision.
    Revision(String),
    /// The sandbox was deleted.
    SandboxGone(String),
    /// The sandbox moved to another server.
    SandboxMoved(String),
    /// Changes may have been missed (the listening connection dropped):
    /// everything is to be read again.
    Missed,
}

/// Changes as the database announces them (PostgreSQL's `LISTEN`).
#[async_trait]
pub trait ChangeWatch: Send {
    /// The next change; [`Change::Missed`] after a reconnection.
    async fn next(&mut self) -> Change;
}

/// Notice of a holder letting its database go, so that a server standing
/// by takes it at once instead of at its next try.
#[async_trait]
pub trait ReleaseWatch: Send {
    /// Returns at the next release — or after a second when the watch's
    /// connection is down: a wake-up too many, never one missed that
    /// matters (the server also tries every second).
    async fn next(&mut self);
}

#[async_trait]
pub trait Store:
    Accounts + SandboxKeys + RequestCounts + oauth::OAuthStore + Send + Sync + 'static
{
    /// Creates a project with its first revision.
    async fn create_project(
        &self,
        name: &str,
        spec: &str,
        files: &ProjectFiles,
        author: &str,
        now_ms: i64,
    ) -> Result<ProjectRecord, StoreError>;
    /// Appends a revision; returns its number.
    async fn add_revision(
        &self,
        name: &str,
        spec: &str,
        files: &ProjectFiles,
        author: &str,
        now_ms: i64,
    ) -> Result<u32, StoreError>;
    async fn get_project(&self, name: &str) -> Result<Option<ProjectRecord>, StoreError>;
    async fn list_projects(&self) -> Result<Vec<ProjectRecord>, StoreError>;
    /// Deletes a project, its revisions and its sandboxes; returns the sandbox ids removed.
    async fn delete_project(&self, name: &str) -> Result<Vec<String>, StoreError>;
    async fn get_revision(
        &self,
        name: &str,
        revision: u32,
    ) -> Result<Option<RevisionRecord>, StoreError>;
    /// A project's revisions, newest first; empty if it does not exist.
    async fn list_revisions(&self, name: &str) -> Result<Vec<RevisionSummary>, StoreError>;

    /// Stores a sandbox with its first keys, in one transaction.
    async fn create_sandbox(
        &self,
        sandbox: &SandboxRecord,
        keys: &[KeyRecord],
    ) -> Result<(), StoreError>;
    async fn get_sandbox(&self, id: &str) -> Result<Option<SandboxRecord>, StoreError>;
    async fn list_sandboxes(&self) -> Result<Vec<SandboxRecord>, StoreError>;
    async fn delete_sandbox(&self, id: &str) -> Result<bool, StoreError>;
    /// Notes when sandboxes last answered a request.
    async fn touch_sandboxes(&self, active: &[(SandboxId, i64)]) -> Result<(), StoreError>;
    /// Removes every sandbox expired at `now_ms`, leaving tombstones; returns their ids.
    async fn expire_sandboxes(&self, now_ms: i64) -> Result<Vec<String>, StoreError>;
    async fn get_tombstone(&self, id: &str) -> Result<Option<Tombstone>, StoreError>;
    /// Forgets tombstones older than `before_ms`.
    async fn prune_tombstones(&self, before_ms: i64) -> Result<u64, StoreError>;
    /// Replaces a sandbox's environment overrides; false if it does not exist.
    async fn set_sandbox_env(&self, id: &str, env: &Map<String, Value>)
    -> Result<bool, StoreError>;
    /// Sets or clears a sandbox's default scenario; false if it does not exist.
    async fn set_sandbox_scenario(
        &self,
        id: &str,
        scenario: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// Sets when a sandbox's time to live ends (`None`: never); false if it
    /// does not exist.
    async fn set_sandbox_expiry(
        &self,
        id: &str,
        expires_at_ms: Option<i64>,
    ) -> Result<bool, StoreError>;
    /// Sets or clears a sandbox's chaos profile; false if it does not exist.
    async fn set_sandbox_chaos(&self, id: &str, chaos: Option<&str>) -> Result<bool, StoreError>;
    /// Records where the sandbox's namespace stands (its token kept);
    /// false if it does not exist.
    async fn set_sandbox_isolation(
        &self,
        id: &str,
        isolation: &Isolation,
    ) -> Result<bool, StoreError>;
    /// Sets (or with `None` drops) the sandbox's own rate limits.
    async fn set_sandbox_rate_limits(
        &self,
        id: &str,
        limits: Option<&sbx_engine::project::RateLimits>,
    ) -> Result<bool, StoreError>;

    /// The records a sandbox's requests changed.
    async fn load_resources(&self, sandbox_id: &str) -> Result<Vec<ResourceRow>, StoreError>;
    /// Writes what requests changed, several requests' worth in one
    /// transaction (group commit); a row older (by version) than the stored
    /// one is ignored.
    async fn save_changes(&self, batch: &[ChangeSet]) -> Result<(), StoreError>;
    /// Forgets every change, pending job and transition (reset to the
    /// fixtures, seeded anew at sandbox time `seeded_at_ms`).
    async fn clear_resources(&self, sandbox_id: &str, seeded_at_ms: i64) -> Result<(), StoreError>;

    /// Pending jobs of a sandbox due by `until_ms` (all when `None`), in
    /// the order they run, at most `limit`.
    async fn pending_jobs(
        &self,
        sandbox_id: &str,
        until_ms: Option<i64>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError>;
    /// Jobs that failed, latest first.
    async fn failed_jobs(&self, sandbox_id: &str, limit: u32)
    -> Result<Vec<JobRecord>, StoreError>;
    /// The earliest pending job of every sandbox that has one.
    async fn next_jobs(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// A record's lifecycle history, oldest first.
    async fn list_transitions(
        &self,
        sandbox_id: &str,
        collection: &str,
        resource_id: &str,
    ) -> Result<Vec<TransitionRecord>, StoreError>;

    /// Stores one event (and its deliveries, in the same transaction);
    /// its id.
    async fn emit_event(
        &self,
        sandbox_id: &str,
        event_type: &str,
        payload: &str,
        created_at_ms: i64,
        origin: Option<&Origin>,
    ) -> Result<EventId, StoreError>;
    /// Events of a sandbox after `after_id`, oldest first, at most `limit`.
    async fn events_after(
        &self,
        sandbox_id: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// The latest `limit` events of a sandbox, newest first.
    async fn list_events(
        &self,
        sandbox_id: &str,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError>;

    async fn get_idempotent(
        &self,
        sandbox_id: &str,
        key: &str,
    ) -> Result<Option<IdempotentAnswer>, StoreError>;
    /// Every stored answer's `(sandbox id, key, created_at_ms)` (of one
    /// sandbox, or all), to index them in memory when sandboxes load.
    async fn idempotency_keys(
        &self,
        sandbox_id: Option<&str>,
    ) -> Result<Vec<(String, String, i64)>, StoreError>;
    async fn create_endpoint(&self, endpoint: &EndpointRecord) -> Result<(), StoreError>;
    async fn list_endpoints(&self, sandbox_id: &str) -> Result<Vec<EndpointRecord>, StoreError>;
    async fn get_endpoint(
        &self,
        sandbox_id: &str,
        id: &str,
    ) -> Result<Option<EndpointRecord>, StoreError>;
    /// Replaces an endpoint's url, events, description, secrets, disabled
    /// reason and failure count; false if it does not exist.
    async fn update_endpoint(&self, endpoint: &EndpointRecord) -> Result<bool, StoreError>;
    async fn delete_endpoint(&self, sandbox_id: &str, id: &str) -> Result<bool, StoreError>;
    /// Pending deliveries of a sandbox due by `until_ms` (sandbox time),
    /// earliest first, at most `limit`.
    async fn due_deliveries(
        &self,
        sandbox_id: &str,
        until_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// Claims up to `limit` pending deliveries of a sandbox due by
    /// `until_ms` (sandbox time) that no other server holds, earliest
    /// first: each is `claim`'s until its attempt is recorded or the
    /// claim runs out. Servers sharing a database never send one delivery
    /// at once; one that dies leaves its claims to run out and be taken
    /// again (at least once, the same `webhook-id` each time).
    async fn claim_deliveries(
        &self,
        sandbox_id: &str,
        until_ms: i64,
        limit: u32,
        claim: &DeliveryClaim,
    ) -> Result<Vec<DueDelivery>, StoreError>;
    /// The earliest pending delivery of every sandbox that has one.
    async fn next_deliveries(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// Records an attempt and moves its delivery (and endpoint) on, in one
    /// transaction.
    async fn record_attempt(&self, attempt: &AttemptRecord) -> Result<(), StoreError>;
    /// An endpoint's deliveries, latest first.
    async fn list_deliveries(
        &self,
        sandbox_id: &str,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    async fn list_attempts(&self, delivery_id: i64) -> Result<Vec<AttemptView>, StoreError>;
    /// Makes deliveries pending again, due at `at_ms` (redelivery of one
    /// event, or requeueing an endpoint's dead letters); how many.
    async fn requeue_deliveries(
        &self,
        sandbox_id: &str,
        endpoint_id: &str,
        event_id: Option<EventId>,
        at_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Deliveries waiting for an attempt, in every sandbox.
    async fn pending_delivery_count(&self) -> Result<u64, StoreError>;

    /// Appends logged requests (their `seq` is set by the store), keeping
    /// each sandbox's latest `keep`.
    async fn save_logs(&self, logs: &[LogRecord], keep: u32) -> Result<(), StoreError>;
    async fn list_logs(
        &self,
        sandbox_id: &str,
        query: &LogQuery,
    ) -> Result<Vec<LogRecord>, StoreError>;
    /// The latest request logged with `request_id`, in one sandbox or any.
    async fn get_log(
        &self,
        sandbox_id: Option<&str>,
        request_id: &str,
    ) -> Result<Option<LogRecord>, StoreError>;
    /// Forgets logged requests older than `before_ms`; how many.
    async fn prune_logs(&self, before_ms: i64) -> Result<u64, StoreError>;

    async fn add_audit(&self, entry: &AuditRecord) -> Result<(), StoreError>;
    /// The latest entries that match, newest first.
    async fn list_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
    /// Forgets entries older than `before_ms`, and all but the latest
    /// `keep`; how many.
    async fn prune_audit(&self, before_ms: i64, keep: u64) -> Result<u64, StoreError>;

    /// Sets a sandbox's clock and records the move, in one transaction;
    /// false (nothing recorded) if the sandbox does not exist.
    async fn move_clock(&self, change: &ClockChange) -> Result<bool, StoreError>;
    /// A sandbox's requests, clock moves, transitions, jobs, events and
    /// delivery attempts in sandbox-time order.
    async fn timeline(
        &self,
        sandbox_id: &str,
        query: &TimelineQuery,
    ) -> Result<Vec<TimelineRecord>, StoreError>;

    /// Forgets answers stored before `before_ms`; returns how many.
    async fn prune_idempotent(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Whether the database answers (a round trip), for readiness probes.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Takes the database for `holder` unless another server holds it
    /// (`None`). SQLite's file has one server by construction: always
    /// taken. Taking it frees the delivery claims of the servers gone
    /// before it, so their deliveries go out at once.
    async fn try_hold(&self, holder: &Holder) -> Result<Option<Box<dyn DatabaseHold>>, StoreError>;
    /// Who holds the database, if anyone wrote so.
    async fn holder(&self) -> Result<Option<Holder>, StoreError>;
    /// Wakes a server standing by when the holder lets the database go
    /// (PostgreSQL's `LISTEN`); `None` where no other server can hold it.
    async fn watch_releases(&self) -> Result<Option<Box<dyn ReleaseWatch>>, StoreError>;

    /// Announces changes other servers make; `None` where no other server
    /// shares the database (SQLite).
    async fn watch_changes(&self) -> Result<Option<Box<dyn ChangeWatch>>, StoreError>;
    /// Makes `member` a server of sandboxes of its own; `None` where no
    /// other server shares the database (SQLite).
    async fn join(&self, member: &Member) -> Result<Option<Box<dyn Membership>>, StoreError>;
    /// Members whose leases have not run out, but those stopping.
    async fn members(&self) -> Result<Vec<Member>, StoreError>;
    /// Who serves a sandbox; `None`: there is no such sandbox.
    async fn served_by(&self, sandbox_id: &str) -> Result<Option<ServedBy>, StoreError>;
    /// Every sandbox a member serves, with its member.
    async fn served_by_members(&self) -> Result<Vec<(String, ServedBy)>, StoreError>;
    /// Hands a sandbox from server `from` to server `to` (`None`: the
    /// holder) if `from` still serves it and `to` is the holder or a live
    /// member, freeing its delivery claims; its new epoch, `None` when it
    /// did not move. Once it moved, `from` can no longer write for it.
    async fn hand_over(
        &self,
        sandbox_id: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Option<i64>, StoreError>;
    /// How many sandboxes each server serves (`None`: the holder), those
    /// in namespaces of their own left out.
    async fn sandboxes_per_server(&self) -> Result<Vec<(Option<String>, u64)>, StoreError>;
    /// Removes every member whose lease ran out, waiting for its writes in
    /// flight, and gives its sandboxes to the holder; their ids.
    async fn sweep_members(&self) -> Result<Vec<String>, StoreError>;

    /// Re-wraps every sealed secret not under the current key (plain text
    /// from before sealing included); returns how many were.
    async fn reseal_secrets(&self) -> Result<usize, StoreError>;
}
