//! Startup and shared state.

use std::{net::SocketAddr, path::Path, sync::Arc, time::SystemTime};

use anyhow::Context;
use axum::extract::State;
use axum::http::HeaderValue;
use sbx_store::{PgStore, SqliteStore, Store};
use secrecy::ExposeSecret;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{
    config::Config,
    control, data_plane,
    data_plane::drift::DriftReport,
    data_plane::egress::HttpUpstream,
    data_plane::idempotency::Idempotency,
    http::front::{Front, SandboxHandler},
    observability::metrics::Metrics,
    runtime::ids::{generate_admin_token, hash_secret},
    runtime::registry::Registry,
    workers::Workers,
    workers::deliveries,
    workers::reaper,
    workers::request_log::RequestLog,
    workers::scheduler,
    workers::user_work::UserWork,
    workers::writer::Writer,
};

/// What every handler shares: one pointer, cloned per request (axum's
/// `State`), so a clone is one reference count however many parts it has.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl From<Arc<Shared>> for AppState {
    fn from(shared: Arc<Shared>) -> Self {
        Self(shared)
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub registry: Arc<Registry>,
    pub config: Arc<Config>,
    /// Where clients reach this server, e.g. `http://127.0.0.1:8080`.
    pub public_url: Arc<str>,
    pub admin_token_hash: Arc<str>,
    pub drift: Arc<DriftReport>,
    /// Forwarding and webhooks go out through here (the egress policy).
    pub upstream: Arc<HttpUpstream>,
    /// Serializes edits of projects: each edit reads the latest revision
    /// and writes the next.
    pub edits: Arc<tokio::sync::Mutex<()>>,
    /// Serializes the rounds that remove sandboxes (expired, inactive):
    /// a drain and the background workers never remove the same one at
    /// once, and a drain returns only once a round already under way has
    /// finished.
    pub removals: Arc<tokio::sync::Mutex<()>>,
    pub idempotency: Idempotency,
    /// Writes requests' changes in batches (group commit).
    pub writer: Writer,
    /// Every data-plane request, off the hot path.
    pub request_log: RequestLog,
    pub metrics: Arc<Metrics>,
    /// Traces to an OTLP collector, when one is configured.
    pub telemetry: Option<Arc<crate::observability::telemetry::Telemetry>>,
    /// Where scripts, templates, jobs and seeds run (bounded).
    pub user_work: UserWork,
    /// Refused control-plane calls, counted per client.
    pub refusals: crate::http::refusals::Refusals,
    /// Failed sign-ins, counted per account email.
    pub failed_sign_ins: crate::http::refusals::Refusals<String>,
    /// Each sandbox's OAuth provider: keys, codes, verified tokens.
    pub oauth: crate::runtime::oauth::OAuthRuntime,
    /// What each sandbox's built-in webhook receiver got.
    pub receiver: crate::runtime::receiver::Receiver,
    /// Live code sessions.
    pub sessions: crate::runtime::sessions::Sessions,
    /// Where sessions' workspaces are saved.
    pub snapshots: crate::runtime::snapshots::Snapshots,
    /// Session templates of users: records and package layers.
    pub templates: crate::runtime::templates::Templates,
    /// Where function behaviours run: a session per sandbox.
    pub functions: Arc<crate::service::functions::FunctionHosts>,
    /// Owns every background task, joined at shutdown.
    pub workers: Workers,
    /// This server among those sharing its database (`rep_` + random):
    /// what its claims on shared work are made under.
    pub replica: Arc<str>,
    /// Whether it took its database. `false` while another server holds
    /// it (it stands by) and once it lost its hold.
    pub active: std::sync::atomic::AtomicBool,
    /// Until when its hold is surely still its own.
    pub lease: crate::runtime::standby::LocalLease,
    /// Its hold on the database while active, let go at a graceful stop.
    pub hold: tokio::sync::Mutex<Option<Box<dyn sbx_store::DatabaseHold>>>,
    /// Set when it lost its hold: it stopped for that, and says so.
    pub lost_hold: std::sync::atomic::AtomicBool,
    /// The cluster sandboxes with namespaces of their own live in.
    pub namespaces: Option<Arc<crate::runtime::namespaces::Namespaces>>,
    /// Passes requests to the holder while this server stands by.
    pub forwarder: crate::runtime::standby::Forwarder,
    /// Its membership while it serves sandboxes without holding the
    /// database ([`crate::runtime::members`]), and until when it surely
    /// holds.
    pub membership: tokio::sync::Mutex<Option<Box<dyn sbx_store::Membership>>>,
    pub member_lease: crate::runtime::standby::LocalLease,
    /// Who serves the sandboxes a member passes requests on for.
    pub owners: crate::runtime::members::Owners,
    /// Sandboxes moving away from this server, and where recent ones went.
    pub moves: crate::runtime::moves::Moves,
    /// Set once the workers of the sandboxes it serves started.
    pub sandbox_workers: std::sync::Once,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A running server.
pub struct Server {
    pub local_addr: SocketAddr,
    pub public_url: String,
    /// Set when this start generated the admin token (print it once).
    pub generated_admin_token: Option<String>,
    pub(crate) state: AppState,
    /// Cancelled to stop: a member first hands its sandboxes over, then
    /// `shutdown` stops the listener and the workers.
    stop: CancellationToken,
    shutdown: CancellationToken,
    serve_task: JoinHandle<std::io::Result<()>>,
    /// The data dir is this server's while it runs.
    _data_dir_lock: std::fs::File,
}

impl Server {
    /// Cancelling this token starts a graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits until the server has stopped (after the token is cancelled):
    /// in-flight requests finished, background workers joined, and every
    /// change and request-log entry they produced written.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.serve_task.await.context("server task panicked")?;
        self.shutdown.cancel();
        self.state.workers.shut_down().await;
        // Last: a server standing by takes over once everything is written.
        crate::runtime::members::leave(&self.state).await;
        if let Some(hold) = self.state.hold.lock().await.take() {
            hold.release().await;
        }
        if let Some(telemetry) = self.state.telemetry.clone() {
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
        }
        if self
            .state
            .lost_hold
            .load(std::sync::atomic::Ordering::Acquire)
        {
            anyhow::bail!(
                "stopped: this server lost its hold on the database or on its sandboxes (another server took them over)"
            );
        }
        served.context("server failed")
    }

    /// Runs, now, what the background workers would do on their next
    /// rounds, and returns when it is done: expired and inactive sandboxes
    /// removed, how sandboxes were used saved, due
    /// jobs run, due webhook deliveries attempted, and every request-log
    /// entry queued so far written. For tests and tools that must not wait
    /// on a timer.
    pub async fn drain(&self) {
        let state = &self.state;
        reaper::reap_once(state).await;
        crate::workers::upkeep::once(state).await;
        scheduler::fire_due(state).await;
        deliveries::deliver_all_due(state).await;
        state.request_log.flush().await;
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.wait().await
    }
}

/// Opens the configured database; on PostgreSQL, its connections name
/// `replica`, whose writes the database fences.
async fn open_store(config: &Config, replica: &str) -> anyhow::Result<Arc<dyn Store>> {
    let sealer = Arc::new(sealer(config)?);
    let store: Arc<dyn Store> = match config.database_url.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Arc::new(
                PgStore::open_url_as(url, replica)
                    .await
                    .with_context(|| format!("opening {}", redacted_url(url)))?
                    .with_sealer(sealer),
            )
        }
        Some(url) if url.starts_with("sqlite:") => Arc::new(
            SqliteStore::open_url(url)
                .await
                .with_context(|| format!("opening {url}"))?
                .with_sealer(sealer),
        ),
        Some(url) => anyhow::bail!(
            "unsupported --database-url {:?}: expected postgres://… or sqlite:…",
            redacted_url(url)
        ),
        // The store creates the data dir, readable by its owner only.
        None => Arc::new(
            SqliteStore::open_dir(&config.data_dir)
                .await
                .with_context(|| format!("opening the database in {}", config.data_dir.display()))?
                .with_sealer(sealer),
        ),
    };
    Ok(store)
}

/// Creates the data dir when missing and makes it its owner's only
/// (0700), whichever database holds the data: it keeps the keys, the
/// admin token and the sessions' records.
fn secure_data_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).create(dir)?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

/// Takes the data dir for this server: its SQLite file, code sessions'
/// workspaces and generated keys must have one server, and a second one
/// started on the same folder by mistake would serve the same sandboxes
/// beside the first. An advisory lock on `{data_dir}/server.lock`, held
/// until the server stops (the kernel lets it go if the process dies),
/// naming the holding process for the message.
fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::Write;
    let path = dir.join("server.lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let process = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "another server (process {}) is running on the data dir {}: stop it, or give this one a --data-dir of its own",
                process.trim(),
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// A database URL fit for a message: its password replaced by `***`.
fn redacted_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((credentials, host)) if credentials.contains(':') => {
                let user = credentials.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Seals stored secrets: the configured key (`SBX_SECRETS_KEY`, with
/// `SBX_SECRETS_PREVIOUS_KEYS` during a rotation), else a key generated
/// into the data dir (readable by the owner only).
fn sealer(config: &Config) -> anyhow::Result<sbx_store::Sealer> {
    use sbx_store::sealed::{generate_key, parse_key};
    let previous = config
        .secrets_previous_keys
        .iter()
        .map(|key| parse_key(key.expose_secret()))
        .collect::<Result<Vec<_>, _>>()
        .context("SBX_SECRETS_PREVIOUS_KEYS")?;
    let current = match &config.secrets_key {
        Some(key) => parse_key(key.expose_secret()).context("SBX_SECRETS_KEY")?,
        None => {
            let path = config.data_dir.join("secrets-key");
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(_) => {
                    let text = generate_key();
                    let mut folder = std::fs::DirBuilder::new();
                    folder.recursive(true);
                    #[cfg(unix)]
                    std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
                    folder.create(&config.data_dir)?;
                    write_private(&path, &text)
                        .with_context(|| format!("saving the secrets key to {}", path.display()))?;
                    text
                }
            };
            parse_key(&text).with_context(|| format!("the secrets key in {}", path.display()))?
        }
    };
    Ok(sbx_store::Sealer::new(&current, &previous))
}

/// The admin token: configured, else read from the data dir, else generated
/// and saved there (readable by the owner only). Returns (token, generated).
fn admin_token(config: &Config) -> anyhow::Result<(String, bool)> {
    if let Some(token) = &config.admin_token {
        return Ok((token.expose_secret().to_owned(), false));
    }
    let path = config.data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_owned();
        if !token.is_empty() {
            return Ok((token, false));
        }
    }
    let token = generate_admin_token();
    let mut folder = std::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut folder, 0o700);
    folder.create(&config.data_dir)?;
    write_private(&path, &token)
        .with_context(|| format!("saving the admin token to {}", path.display()))?;
    Ok((token, true))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// Loads every live sandbox, compiling the revisions they are pinned to.
pub(crate) async fn load_registry(state: &AppState) -> anyhow::Result<()> {
    let now = now_ms();
    let mut keys: std::collections::HashMap<sbx_store::SandboxId, Vec<_>> = Default::default();
    for record in state.store.live_keys().await? {
        if let Some(key) = crate::runtime::keys::LiveKey::of(&record) {
            keys.entry(record.sandbox_id).or_default().push(key);
        }
    }
    let members: std::collections::HashMap<String, sbx_store::Member> = state
        .store
        .served_by_members()
        .await?
        .into_iter()
        .filter_map(|(id, served)| Some((id, served.member?)))
        .collect();
    for record in state.store.list_sandboxes().await? {
        if record.expires_at_ms.is_some_and(|at| at <= now) {
            continue; // the reaper removes it on its first pass
        }
        if state
            .registry
            .get(&record.id)
            .is_some_and(|live| live.served_here())
        {
            continue; // served here as a member already, and kept live
        }
        let keys = keys.remove(&record.id).unwrap_or_default();
        let served_by = members
            .get(record.id.as_str())
            .filter(|member| *member.replica != *state.replica)
            .cloned();
        load_sandbox(state, record, keys, served_by).await?;
    }
    crate::service::usage::load_request_counts(state, None).await?;
    Ok(())
}

/// Makes one stored sandbox live (on the revision it follows): served
/// here, or the holder's copy of a member's (`served_by`, without its
/// records: the member serves them).
pub(crate) async fn load_sandbox(
    state: &AppState,
    record: sbx_store::SandboxRecord,
    keys: Vec<crate::runtime::keys::LiveKey>,
    served_by: Option<sbx_store::Member>,
) -> anyhow::Result<Arc<crate::runtime::registry::LiveSandbox>> {
    let revision = if record.pinned {
        record.revision
    } else {
        state
            .store
            .get_project(&record.project)
            .await?
            .map_or(record.revision, |p| p.latest_revision)
    };
    let compiled = crate::service::projects::compiled_revision(state, &record.project, revision)
        .await
        .with_context(|| format!("compiling {} revision {revision}", record.project))?;
    let rows = match served_by {
        Some(_) => Vec::new(),
        None => state.store.load_resources(&record.id).await?,
    };
    let record = sbx_store::SandboxRecord { revision, ..record };
    Ok(state
        .registry
        .insert(record, compiled, rows, keys, served_by))
}

/// Every entry point of `sbx serve`: the control plane under `/api/v1`,
/// metrics, and the sandboxes everywhere else.
pub fn front(state: AppState) -> Front {
    // The data plane is a public API: any origin may call it. The control
    // plane answers browsers only from the origins configured.
    let control_origins: Vec<HeaderValue> = state
        .config
        .control_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    let control = control::router(state.clone()).layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(control_origins))
            .allow_methods(tower_http::cors::Any)
            .allow_headers(tower_http::cors::Any),
    );
    let control = control
        .route(
            "/metrics",
            axum::routing::get(crate::observability::metrics::scrape),
        )
        .merge(crate::portal::router())
        .fallback(|request: axum::extract::Request| async move {
            if crate::portal::owns_path(request.uri().path()) {
                crate::portal::not_found(request).await
            } else {
                axum::response::IntoResponse::into_response(control::no_route(request).await)
            }
        })
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::runtime::standby::gate,
        ));
    let portal_state = state.clone();
    // The portal and the probes, unless the request names a sandbox (whose
    // spec may have a `/healthz` of its own).
    let own_pages: crate::http::front::OwnPage = Arc::new(move |request| {
        let path = request.uri().path();
        (crate::portal::owns_path(path) || matches!(path, "/healthz" | "/readyz"))
            && !data_plane::names_a_sandbox(&portal_state, request)
    });
    let header_limit = state.config.limits.max_header_bytes;
    let sandboxes: SandboxHandler = Arc::new(move |request| {
        let state = state.clone();
        Box::pin(async move { data_plane::handler(State(state), request).await })
    });
    Front::new(header_limit, Some(control), sandboxes).with_own_pages(own_pages)
}

/// Opens storage, loads state, and serves on `listener` until shutdown.
pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Server> {
    config.validate().context("invalid configuration")?;
    let local_addr = listener.local_addr()?;
    let telemetry = match &config.otlp_endpoint {
        Some(endpoint) => Some(Arc::new(crate::observability::telemetry::Telemetry::new(
            endpoint,
        )?)),
        None => None,
    };
    secure_data_dir(&config.data_dir)
        .with_context(|| format!("securing the data dir {}", config.data_dir.display()))?;
    let data_dir_lock = lock_data_dir(&config.data_dir)?;
    let replica: Arc<str> = format!("rep_{}", crate::runtime::ids::random_token(12)).into();
    let store = open_store(&config, &replica).await?;
    let (token, generated) = admin_token(&config)?;
    let public_url = config.public_url(local_addr);
    let workers = Workers::default();
    let request_log = RequestLog::start(store.clone(), &config.request_log_limits, &workers);
    let sessions_root = config.data_dir.join("sessions");
    let runtime =
        crate::runtime::sessions::open_runtime(&config.session_runtime, &sessions_root).await;
    if let Err(error) = &runtime {
        tracing::info!(%error, "code sessions are unavailable");
    }
    let sessions = crate::runtime::sessions::Sessions::new(
        sessions_root,
        config.session_uids,
        runtime,
        now_ms(),
        workers.clone(),
        config.keep_sessions_on_stop,
    );
    let snapshots = crate::runtime::snapshots::Snapshots::open(
        config.snapshot_store.as_deref(),
        &config.snapshot_store_options,
        &config.data_dir,
    )?;
    let upstream = HttpUpstream::shared(config.egress_policy()?);
    let namespaces = match &config.namespaces {
        Some(settings) => Some(Arc::new(
            crate::runtime::namespaces::Namespaces::connect(settings.clone())
                .await
                .context("namespaces: connecting to the Kubernetes cluster")?,
        )),
        None => None,
    };
    let templates = crate::runtime::templates::Templates::open(config.data_dir.join("templates"));
    let state = AppState(Arc::new_cyclic(|shared| Shared {
        functions: Arc::new(crate::service::functions::FunctionHosts::new(
            shared.clone(),
            tokio::runtime::Handle::current(),
        )),
        telemetry,
        store: store.clone(),
        registry: Arc::new(Registry::default()),
        public_url: public_url.clone().into(),
        admin_token_hash: hash_secret(&token).into(),
        drift: Arc::new(DriftReport::default()),
        upstream,
        edits: Arc::new(tokio::sync::Mutex::new(())),
        removals: Arc::new(tokio::sync::Mutex::new(())),
        writer: Writer::start(store.clone(), &workers),
        idempotency: Idempotency::new(store.clone()),
        metrics: Arc::new(Metrics::new(request_log.dropped_counter(), &replica)),
        request_log,
        user_work: UserWork::new(config.limits.parallel_scripts()),
        refusals: crate::http::refusals::Refusals::new(config.audit.refused_per_minute),
        failed_sign_ins: crate::http::refusals::Refusals::new(
            config.accounts.failed_sign_ins_per_minute,
        ),
        config: Arc::new(config),
        oauth: Default::default(),
        receiver: Default::default(),
        sessions,
        snapshots,
        templates,
        workers: workers.clone(),
        replica,
        active: false.into(),
        lease: Default::default(),
        hold: Default::default(),
        lost_hold: false.into(),
        forwarder: Default::default(),
        membership: Default::default(),
        member_lease: Default::default(),
        owners: Default::default(),
        moves: Default::default(),
        sandbox_workers: std::sync::Once::new(),
        namespaces,
    }));
    let shutdown = CancellationToken::new();
    let holder = sbx_store::Holder {
        replica: state.replica.to_string(),
        address: state.config.internal_url.as_deref().map_or_else(
            || public_url.clone(),
            |url| url.trim_end_matches('/').to_owned(),
        ),
        since_ms: now_ms(),
        epoch: 0,
    };
    let asked = std::time::Instant::now();
    match state
        .store
        .try_hold(&holder)
        .await
        .context("taking the database")?
    {
        Some(hold) => crate::runtime::standby::activate(&state, hold, asked, &shutdown).await?,
        None => {
            if state.config.spread_sandboxes {
                tracing::info!(
                    replica = %state.replica,
                    "another server holds the database: serving sandboxes of its own beside it, and taking the database if it goes"
                );
            } else {
                tracing::warn!(
                    replica = %state.replica,
                    "another server holds the database: standing by until it lets go"
                );
            }
            crate::runtime::members::join(&state, &holder.address, &shutdown).await;
            workers.spawn(crate::runtime::standby::stand_by(
                state.clone(),
                holder,
                shutdown.clone(),
            ));
        }
    }
    if let Some(dir) = &state.config.sandbox_bundle {
        crate::service::isolation::load_bundle(&state, dir)
            .await
            .context("single-sandbox mode")?;
    }
    let app = front(state.clone());
    let token_for_serve = shutdown.clone();
    let timeouts = crate::http::listener::Timeouts::of(&state.config.limits);
    // The peer address is the audit log's `client`.
    let serve_task = tokio::spawn(crate::http::listener::serve(
        listener,
        app,
        timeouts,
        token_for_serve,
    ));
    tracing::info!(%local_addr, sandboxes = state.registry.count(), "serving");
    let stop = CancellationToken::new();
    tokio::spawn({
        let (state, stop, shutdown) = (state.clone(), stop.clone(), shutdown.clone());
        async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = shutdown.cancelled() => return,
            }
            // While it still answers: requests for them go on meanwhile.
            crate::runtime::moves::hand_over_all(&state).await;
            shutdown.cancel();
        }
    });
    Ok(Server {
        local_addr,
        public_url,
        generated_admin_token: generated.then_some(token),
        state,
        stop,
        shutdown,
        serve_task,
        _data_dir_lock: data_dir_lock,
    })
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn database_urls_lose_their_password_in_messages() {
        assert_eq!(
            redacted_url("postgres://sbx:s3cret@db:5432/sbx?sslmode=require"),
            "postgres://sbx:***@db:5432/sbx?sslmode=require"
        );
        assert_eq!(redacted_url("postgres://db/sbx"), "postgres://db/sbx");
        assert_eq!(redacted_url("mysql://u:p@h/d"), "mysql://u:***@h/d");
    }
}
