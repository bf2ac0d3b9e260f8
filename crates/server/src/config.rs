//! Server configuration: defaults here, overridden by a TOML file, `SBX_*`
//! environment variables and flags (the CLI layers them in that order).

use std::{net::SocketAddr, path::PathBuf};

use sbx_engine::ScriptLimits;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// How much the request log may hold and write: past these, entries are
/// dropped (and counted) rather than make requests wait.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLogLimits {
    /// Entries waiting to be written, at most.
    pub queue: usize,
    /// Entries written per second, at most.
    pub max_per_second: u32,
    /// Each sandbox keeps its latest this many requests…
    pub keep_per_sandbox: u32,
    /// …for this many days.
    pub keep_days: u32,
}

impl Default for RequestLogLimits {
    fn default() -> Self {
        Self {
            queue: 10_000,
            max_per_second: 2_000,
            keep_per_sandbox: 10_000,
            keep_days: 7,
        }
    }
}

impl RequestLogLimits {
    /// How long entries are kept, in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        i64::from(self.keep_days) * 24 * 3600 * 1000
    }

    /// The retention, in words for messages.
    pub fn retention(&self) -> String {
        format!(
            "logs keep a sandbox's latest {} requests, for {} days",
            self.keep_per_sandbox, self.keep_days
        )
    }
}

/// Explicit bounds on what one client can make the server hold or do.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest spec accepted on import, in bytes.
    pub max_spec_bytes: usize,
    /// Largest request body the data plane reads, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Largest total size of request headers, in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// Deepest nesting accepted in a spec document.
    pub max_spec_depth: usize,
    /// Longest sandbox TTL a client may ask for, in seconds.
    pub max_ttl_seconds: u64,
    /// How long a client may take to send a request's headers, from its
    /// first byte (or from the previous answer on a kept-alive
    /// connection), in milliseconds; then the connection is closed.
    pub header_read_timeout_ms: u64,
    /// How long a connection may stay open without a request in flight,
    /// in milliseconds.
    pub idle_timeout_ms: u64,
    /// Scripts, templates, jobs and seeds running on the blocking pool at
    /// once, at most (0: as many as cores, at least two), half of them
    /// for one sandbox at most; the rest wait their turn, so hostile
    /// scripts never take every core or slot from other sandboxes.
    pub max_parallel_scripts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_spec_bytes: 32 * 1024 * 1024,
            max_body_bytes: 1024 * 1024,
            max_header_bytes: 32 * 1024,
            max_spec_depth: 128,
            max_ttl_seconds: 90 * 24 * 3600,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_parallel_scripts: 0,
        }
    }
}

impl Limits {
    /// [`Limits::max_parallel_scripts`], with 0 resolved for this machine.
    pub fn parallel_scripts(&self) -> usize {
        match self.max_parallel_scripts {
            0 => std::thread::available_parallelism()
                .map_or(2, std::num::NonZero::get)
                .max(2),
            n => n,
        }
    }
}

/// How the audit log is bounded.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditLimits {
    /// Entries are kept this many days…
    pub keep_days: u32,
    /// …and only the latest this many.
    pub keep_entries: u64,
    /// Refused control-plane calls (a missing or wrong token) answered per
    /// client address per minute; past it, 429 and no audit entry.
    pub refused_per_minute: u32,
}

impl Default for AuditLimits {
    fn default() -> Self {
        Self {
            keep_days: 90,
            keep_entries: 100_000,
            refused_per_minute: 30,
        }
    }
}

impl AuditLimits {
    /// How long entries are kept, in milliseconds.
    pub fn retention_ms(&self) -> i64 {
        i64::from(self.keep_days) * 24 * 3600 * 1000
    }
}

/// Who may make a developer account without an admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignupMode {
    /// Anyone who reaches the server.
    Open,
    /// Whoever holds an admin's invitation.
    Invite,
    /// Nobody: admins create accounts.
    Closed,
}

/// Developer accounts, sign-in and sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSettings {
    pub signup: SignupMode,
    /// Shortest password accepted, in characters.
    pub min_password_chars: usize,
    /// How long a browser session lasts, in hours.
    pub session_hours: u32,
    /// How long an invitation stays open, in days.
    pub invitation_days: u32,
    /// Failed sign-ins to one account per minute; past it, 429.
    pub failed_sign_ins_per_minute: u32,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            signup: SignupMode::Open,
            min_password_chars: 10,
            session_hours: 12,
            invitation_days: 7,
            failed_sign_ins_per_minute: 5,
        }
    }
}

/// What one developer may use; admins are exempt. Against cost explosions:
/// no developer's sandbox lives forever or idles forever.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Live sandboxes per developer.
    pub sandboxes: usize,
    /// Longest time to live a developer may ask for, in seconds…
    pub max_ttl_seconds: u64,
    /// …and what a developer's sandbox gets when it asks for none.
    pub default_ttl_seconds: u64,
    /// Data-plane requests per developer per UTC day, over all its sandboxes.
    pub requests_per_day: u64,
    /// Webhook endpoints per developer, over all its sandboxes.
    pub webhook_endpoints: usize,
    /// A developer's sandbox without a request for this many days is
    /// removed (0: never).
    pub inactive_days: u32,
    /// Live code sessions per developer.
    pub sessions: usize,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            sandboxes: 50,
            max_ttl_seconds: 30 * 24 * 3600,
            default_ttl_seconds: 7 * 24 * 3600,
            requests_per_day: 100_000,
            webhook_endpoints: 50,
            inactive_days: 14,
            sessions: 5,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where the embedded database and the generated admin token live.
    pub data_dir: PathBuf,
    /// `postgres://…` (what several servers share) or `sqlite:…`,
    /// instead of the SQLite file in the data dir.
    pub database_url: Option<String>,
    /// Sandboxes answer at `{id}.{base_domain}`.
    pub base_domain: String,
    /// Public URL clients use to reach the server; derived from `listen` when absent.
    pub public_url: Option<String>,
    /// Where other servers sharing the database reach this one, to
    /// forward requests to it; the public URL when absent.
    pub internal_url: Option<String>,
    pub admin_token: Option<SecretString>,
    /// Seals stored secrets (webhook signing secrets, OAuth signing keys):
    /// 32 bytes, base64. `None`: a key generated into the data dir.
    pub secrets_key: Option<SecretString>,
    /// Keys sealed under before a rotation; values are re-sealed under
    /// `secrets_key` at start.
    pub secrets_previous_keys: Vec<SecretString>,
    pub limits: Limits,
    /// How often expired sandboxes are removed.
    pub reaper_interval: std::time::Duration,
    /// Hard limits on behaviour scripts.
    pub scripts: ScriptLimits,
    /// Let forwarding reach loopback and private networks (refused by default).
    pub allow_private_egress: bool,
    /// Address ranges (CIDR) outbound calls may reach whatever they are:
    /// the only way to reach link-local and cloud-metadata addresses.
    pub egress_allow: Vec<String>,
    /// A webhook endpoint failing this many deliveries in a row is disabled.
    pub webhook_disable_after_failures: i64,
    /// Log every data-plane request (`GET /api/v1/sandboxes/{id}/logs`).
    pub request_log: bool,
    pub request_log_limits: RequestLogLimits,
    /// Export a span per sandbox request to this OTLP/HTTP collector.
    pub otlp_endpoint: Option<String>,
    pub audit: AuditLimits,
    /// Serve `/metrics` without the admin token (for a scraper that
    /// cannot send one); it names every project and operation.
    pub public_metrics: bool,
    /// Browser origins allowed to call the control plane (CORS); none by
    /// default. The data plane answers CORS for any origin, as a public
    /// API would.
    pub control_origins: Vec<String>,
    pub accounts: AccountSettings,
    pub quotas: Quotas,
    /// Host uids code sessions run as: `(first, count)`, one per live
    /// session, never shared with another user of the machine.
    pub session_uids: (u32, u32),
    /// Where session snapshots are kept: an object store URL
    /// (`s3://bucket/prefix`, `file:///path`), or `{data dir}/snapshots`.
    pub snapshot_store: Option<String>,
    /// Options of that store (`aws_endpoint`, `aws_allow_http`, …), besides
    /// those read from the `AWS_*` environment.
    pub snapshot_store_options: Vec<(String, String)>,
    /// A graceful stop keeps live sessions' workspaces and records (their
    /// processes end), so the next start resumes them as after a crash;
    /// by default it removes them and reports them `lost`.
    pub keep_sessions_on_stop: bool,
    /// Servers sharing a PostgreSQL database with its holder serve
    /// sandboxes of their own, spread evenly ([`crate::runtime::members`],
    /// [`crate::runtime::moves`]); off, the holder serves every sandbox
    /// and the others forward to it.
    pub spread_sandboxes: bool,
    /// What runs code sessions.
    pub session_runtime: SessionRuntime,
    /// Where sandboxes created with `isolation: namespace` get their own
    /// Kubernetes namespace; `None`: such sandboxes are refused.
    pub namespaces: Option<sbx_provision::NamespaceSettings>,
    /// Single-sandbox mode: the server serves the one sandbox of this
    /// bundle (a namespace's ConfigMap and Secret, mounted) and makes no
    /// other.
    pub sandbox_bundle: Option<PathBuf>,
}

/// What runs code sessions (`[session_runtime]` in the config file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SessionRuntime {
    /// bubblewrap jails on this machine.
    #[default]
    Bwrap,
    /// Containers on a Docker engine on this machine (its socket:
    /// `DOCKER_HOST`'s default when `None`). Without an image they are
    /// made of this machine's `/usr`, as jails are.
    Docker {
        socket: Option<String>,
        image: Option<String>,
    },
    /// A pod per session in `namespace` of the cluster the environment
    /// names (in-cluster, or `KUBECONFIG`), from `image`.
    Kubernetes { namespace: String, image: String },
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(".sbx"),
            database_url: None,
            base_domain: "sbx.localhost".to_owned(),
            public_url: None,
            internal_url: None,
            admin_token: None,
            secrets_key: None,
            secrets_previous_keys: Vec::new(),
            limits: Limits::default(),
            reaper_interval: std::time::Duration::from_secs(5),
            scripts: ScriptLimits::default(),
            allow_private_egress: false,
            egress_allow: Vec::new(),
            webhook_disable_after_failures: 100,
            request_log: true,
            request_log_limits: RequestLogLimits::default(),
            otlp_endpoint: None,
            audit: AuditLimits::default(),
            public_metrics: false,
            control_origins: Vec::new(),
            accounts: AccountSettings::default(),
            quotas: Quotas::default(),
            session_uids: (2_000_000, 1000),
            snapshot_store: None,
            snapshot_store_options: Vec::new(),
            keep_sessions_on_stop: false,
            spread_sandboxes: true,
            session_runtime: SessionRuntime::Bwrap,
            namespaces: None,
            sandbox_bundle: None,
        }
    }
}

/// A setting out of its range, named with what it must be.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {rule}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub rule: String,
}

fn check(ok: bool, setting: &'static str, rule: impl Into<String>) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError {
            setting,
            rule: rule.into(),
        })
    }
}

/// Most request-log entries queued, kept per sandbox, and days kept.
const MAX_LOG_QUEUE: usize = 1_000_000;
const MAX_LOG_KEEP: u32 = 1_000_000;
const MAX_LOG_DAYS: u32 = 3650;
/// Longest password accepted, in characters (hashing is the cost a
/// caller can make the server pay).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// Shortest admin token accepted.
const MIN_ADMIN_TOKEN_CHARS: usize = 16;

impl Config {
    /// Checks every setting against its documented range. [`crate::start`]
    /// refuses a config that does not pass, whoever built it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let domain = &self.base_domain;
        check(
            !domain.is_empty() && !domain.starts_with('.') && !domain.contains('/'),
            "base_domain",
            format!("{domain:?} must be a host name such as sbx.localhost"),
        )?;
        for (name, url) in [
            ("public_url", &self.public_url),
            ("internal_url", &self.internal_url),
        ] {
            if let Some(url) = url {
                check(
                    url.starts_with("http://") || url.starts_with("https://"),
                    name,
                    format!("{url:?} must start with http:// or https://"),
                )?;
            }
        }
        if let Some(namespaces) = &self.namespaces {
            let problems = namespaces.problems();
            check(problems.is_empty(), "namespaces", problems.join("; "))?;
        }
        if let Some(token) = &self.admin_token {
            check(
                token.expose_secret().chars().count() >= MIN_ADMIN_TOKEN_CHARS,
                "admin_token",
                format!("must be at least {MIN_ADMIN_TOKEN_CHARS} characters"),
            )?;
        }
        check(
            !self.reaper_interval.is_zero(),
            "reaper_interval_seconds",
            "must be at least 1",
        )?;
        let scripts = &self.scripts;
        check(
            scripts.timeout_ms > 0
                && scripts.max_operations > 0
                && scripts.max_call_depth > 0
                && scripts.template_memory_bytes > 0,
            "scripts",
            "timeout_ms, max_operations, max_call_depth and template_memory_bytes must be at least 1",
        )?;
        let log = &self.request_log_limits;
        check(
            (1..=MAX_LOG_QUEUE).contains(&log.queue)
                && log.max_per_second > 0
                && (1..=MAX_LOG_KEEP).contains(&log.keep_per_sandbox)
                && (1..=MAX_LOG_DAYS).contains(&log.keep_days),
            "request_log_limits",
            format!(
                "queue must be 1 to {MAX_LOG_QUEUE}, max_per_second at least 1, keep_per_sandbox 1 to {MAX_LOG_KEEP} and keep_days 1 to {MAX_LOG_DAYS}"
            ),
        )?;
        check(
            self.limits.header_read_timeout_ms > 0 && self.limits.idle_timeout_ms > 0,
            "limits",
            "header_read_timeout_ms and idle_timeout_ms must be at least 1",
        )?;
        let audit = &self.audit;
        check(
            audit.keep_days > 0 && audit.keep_entries > 0 && audit.refused_per_minute > 0,
            "audit",
            "keep_days, keep_entries and refused_per_minute must be at least 1",
        )?;
        self.egress_policy()?;
        let quotas = &self.quotas;
        check(
            quotas.default_ttl_seconds > 0
                && quotas.default_ttl_seconds <= quotas.max_ttl_seconds
                && quotas.max_ttl_seconds <= self.limits.max_ttl_seconds,
            "quotas",
            "default_ttl_seconds must be at least 1 and at most max_ttl_seconds, which must be at most limits.max_ttl_seconds",
        )?;
        let accounts = &self.accounts;
        check(
            (8..=MAX_PASSWORD_CHARS).contains(&accounts.min_password_chars)
                && accounts.session_hours > 0
                && accounts.invitation_days > 0
                && accounts.failed_sign_ins_per_minute > 0,
            "accounts",
            format!(
                "min_password_chars must be 8 to {MAX_PASSWORD_CHARS}; session_hours, invitation_days and failed_sign_ins_per_minute at least 1"
            ),
        )?;
        if let Some(origin) = self
            .control_origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/'))
        {
            check(
                false,
                "control_origins",
                format!("{origin:?} must be an origin such as https://portal.example.com"),
            )?;
        }
        Ok(())
    }

    /// The egress policy of forwards and webhook deliveries.
    pub fn egress_policy(&self) -> Result<crate::data_plane::egress::EgressPolicy, ConfigError> {
        let allow = self
            .egress_allow
            .iter()
            .map(|text| {
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| ConfigError {
                        setting: "egress_allow",
                        rule: format!(
                            "{text:?} must be an address or a CIDR range such as 169.254.170.2/32"
                        ),
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(crate::data_plane::egress::EgressPolicy {
            allow_private: self.allow_private_egress,
            allow,
        })
    }

    /// The server's public base URL without a trailing slash.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }
}
