//! `sbx serve` configuration, layered: built-in defaults → TOML file
//! (`--config` / `SBX_CONFIG`) → `SBX_*` environment → flags.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Args;
use sbx_server::{
    AccountSettings, AuditLimits, Config, Limits, Quotas, RequestLogLimits, ScriptLimits,
    SignupMode,
};
use serde::Deserialize;

/// Environment variables read by `sbx serve`, declared in one place.
use crate::env;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = env::LISTEN)]
    pub listen: Option<SocketAddr>,
    /// Directory for the embedded database and the admin token [default: .sbx].
    #[arg(long, env = env::DATA_DIR)]
    pub data_dir: Option<PathBuf>,
    /// `sqlite:` URL to use instead of the data directory's database.
    #[arg(long, env = env::DATABASE_URL)]
    pub database_url: Option<String>,
    /// Sandboxes also answer at `{id}.{base-domain}` [default: sbx.localhost].
    #[arg(long, env = env::BASE_DOMAIN)]
    pub base_domain: Option<String>,
    /// The URL clients use to reach this server [default: http://{listen}].
    #[arg(long, env = env::PUBLIC_URL)]
    pub public_url: Option<String>,
    /// The URL other servers sharing the database reach this one at, to
    /// forward requests [default: the public URL].
    #[arg(long, env = env::INTERNAL_URL)]
    pub internal_url: Option<String>,
    /// Serve only the sandbox of this bundle (a folder with `sandbox.json`
    /// and `keys.json`): what a sandbox's own namespace runs.
    #[arg(long, env = env::SANDBOX_BUNDLE)]
    pub sandbox_bundle: Option<PathBuf>,
    /// A TOML file of settings (see docs/configuration.md).
    #[arg(long, env = env::CONFIG)]
    pub config: Option<PathBuf>,
    /// Load the bundled demo project and print a ready sandbox.
    #[arg(long)]
    pub demo: bool,
    /// Let forwarding reach loopback and private addresses (refused by default).
    #[arg(long, env = env::ALLOW_PRIVATE_EGRESS)]
    pub allow_private_egress: bool,
    /// Keep no request log (for benchmarks; it is on by default).
    #[arg(long)]
    pub no_request_log: bool,
    /// Send a trace span per sandbox request to this OpenTelemetry
    /// collector (OTLP over HTTP, e.g. http://localhost:4318).
    #[arg(long, env = env::OTLP_ENDPOINT)]
    pub otlp_endpoint: Option<String>,
    /// Serve /metrics without the admin token (it names every project and
    /// operation; by default a scraper sends the token).
    #[arg(long, env = env::PUBLIC_METRICS)]
    pub public_metrics: bool,
    /// Who may make a developer account: anyone (`open`, the default),
    /// holders of an admin's invitation (`invite`), or nobody (`closed`).
    #[arg(long, env = env::SIGNUP, value_parser = ["open", "invite", "closed"])]
    pub signup: Option<String>,
    /// Where code sessions' snapshots are kept: an object store URL
    /// (`s3://bucket/prefix`, with `AWS_*` variables for credentials and
    /// endpoint) [default: {data dir}/snapshots].
    #[arg(long, env = env::SNAPSHOT_STORE)]
    pub snapshot_store: Option<String>,
}

/// The most request-log entries a server may hold in memory, a sandbox's
/// log may keep, and for the most days.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    base_domain: Option<String>,
    public_url: Option<String>,
    internal_url: Option<String>,
    reaper_interval_seconds: Option<u64>,
    limits: Option<Limits>,
    scripts: Option<ScriptLimits>,
    allow_private_egress: Option<bool>,
    egress_allow: Option<Vec<String>>,
    request_log: Option<bool>,
    request_log_limits: Option<RequestLogLimits>,
    otlp_endpoint: Option<String>,
    audit: Option<AuditLimits>,
    public_metrics: Option<bool>,
    control_origins: Option<Vec<String>>,
    accounts: Option<AccountSettings>,
    quotas: Option<Quotas>,
    snapshot_store: Option<String>,
    keep_sessions_on_stop: Option<bool>,
    spread_sandboxes: Option<bool>,
    session_runtime: Option<sbx_server::config::SessionRuntime>,
    namespaces: Option<sbx_provision::NamespaceSettings>,
}

pub fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            toml::from_str::<FileSettings>(&text)
                .with_context(|| format!("invalid config file {}", path.display()))?
        }
        None => FileSettings::default(),
    };
    let defaults = Config::default();
    let admin_token = std::env::var(env::ADMIN_TOKEN)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let secrets_key = std::env::var(env::SECRETS_KEY)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let secrets_previous_keys = std::env::var(env::SECRETS_PREVIOUS_KEYS)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(|key| key.to_owned().into())
        .collect();
    let reaper_seconds = file
        .reaper_interval_seconds
        .unwrap_or(defaults.reaper_interval.as_secs());
    let config = Config {
        listen: args.listen.or(file.listen).unwrap_or(defaults.listen),
        data_dir: args.data_dir.or(file.data_dir).unwrap_or(defaults.data_dir),
        database_url: args.database_url.or(file.database_url),
        base_domain: args
            .base_domain
            .or(file.base_domain)
            .unwrap_or(defaults.base_domain),
        public_url: args.public_url.or(file.public_url),
        internal_url: args.internal_url.or(file.internal_url),
        admin_token: admin_token.map(Into::into),
        secrets_key: secrets_key.map(Into::into),
        secrets_previous_keys,
        limits: file.limits.unwrap_or_default(),
        audit: file.audit.unwrap_or_default(),
        public_metrics: args.public_metrics || file.public_metrics.unwrap_or(false),
        control_origins: file.control_origins.unwrap_or_default(),
        accounts: {
            let mut accounts = file.accounts.unwrap_or_default();
            accounts.signup = match args.signup.as_deref() {
                Some("open") => SignupMode::Open,
                Some("invite") => SignupMode::Invite,
                Some(_) => SignupMode::Closed,
                None => accounts.signup,
            };
            accounts
        },
        quotas: file.quotas.unwrap_or_default(),
        reaper_interval: Duration::from_secs(reaper_seconds),
        scripts: file.scripts.unwrap_or_default(),
        allow_private_egress: args.allow_private_egress
            || file.allow_private_egress.unwrap_or(false),
        egress_allow: file.egress_allow.unwrap_or_default(),
        request_log: !args.no_request_log && file.request_log.unwrap_or(true),
        request_log_limits: file.request_log_limits.unwrap_or_default(),
        otlp_endpoint: args.otlp_endpoint.or(file.otlp_endpoint),
        snapshot_store: args.snapshot_store.or(file.snapshot_store),
        keep_sessions_on_stop: file.keep_sessions_on_stop.unwrap_or(false),
        spread_sandboxes: file.spread_sandboxes.unwrap_or(true),
        session_runtime: file.session_runtime.unwrap_or_default(),
        namespaces: file.namespaces,
        sandbox_bundle: args.sandbox_bundle,
        ..defaults
    };
    config.validate()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            listen: None,
            data_dir: Some(PathBuf::from("/flag/dir")),
            database_url: None,
            base_domain: None,
            public_url: None,
            internal_url: None,
            sandbox_bundle: None,
            config,
            demo: false,
            allow_private_egress: false,
            no_request_log: false,
            otlp_endpoint: None,
            public_metrics: false,
            signup: None,
            snapshot_store: None,
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sbx.toml");
        std::fs::write(
            &file,
            "listen = \"0.0.0.0:9000\"\ndata_dir = \"/file/dir\"\nbase_domain = \"sandbox.test\"\n[limits]\nmax_body_bytes = 2048\n[scripts]\ntimeout_ms = 250\n[accounts]\nsignup = \"invite\"\nsession_hours = 2\n[quotas]\nrequests_per_day = 10\n",
        )
        .unwrap();
        let config = resolve(args(Some(file.clone()))).unwrap();
        assert_eq!(config.accounts.signup, SignupMode::Invite);
        assert_eq!(config.accounts.session_hours, 2);
        assert_eq!(config.quotas.requests_per_day, 10);
        assert_eq!(config.quotas.sandboxes, Quotas::default().sandboxes);
        let closed = resolve(ServeArgs {
            signup: Some("closed".to_owned()),
            ..args(Some(file.clone()))
        })
        .unwrap();
        assert_eq!(closed.accounts.signup, SignupMode::Closed);
        assert_eq!(closed.accounts.session_hours, 2);
        assert_eq!(config.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(config.data_dir, PathBuf::from("/flag/dir"));
        assert_eq!(config.base_domain, "sandbox.test");
        assert_eq!(config.limits.max_body_bytes, 2048);
        assert_eq!(config.scripts.timeout_ms, 250);
        assert_eq!(
            config.scripts.max_operations,
            ScriptLimits::default().max_operations
        );
        assert_eq!(
            config.limits.max_header_bytes,
            Limits::default().max_header_bytes
        );
    }

    #[test]
    fn bad_files_and_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sbx.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let error = format!("{:#}", resolve(args(Some(file.clone()))).unwrap_err());
        assert!(error.contains("lisen"), "{error}");
        std::fs::write(&file, "public_url = \"ftp://x\"\n").unwrap();
        let error = format!("{:#}", resolve(args(Some(file))).unwrap_err());
        assert!(error.contains("public_url"), "{error}");
        let error = format!(
            "{:#}",
            resolve(args(Some(dir.path().join("missing.toml")))).unwrap_err()
        );
        assert!(error.contains("missing.toml"), "{error}");
        let file = dir.path().join("queue.toml");
        std::fs::write(
            &file,
            "[request_log_limits]\nqueue = 0\nmax_per_second = 10\n",
        )
        .unwrap();
        let error = format!("{:#}", resolve(args(Some(file))).unwrap_err());
        assert!(error.contains("request_log_limits"), "{error}");
        let file = dir.path().join("otlp.toml");
        std::fs::write(&file, "otlp_endpoint = \"http://collector:4318\"\n").unwrap();
        let config = resolve(args(Some(file))).unwrap();
        assert_eq!(
            config.otlp_endpoint.as_deref(),
            Some("http://collector:4318")
        );
    }

    #[test]
    fn namespace_isolation_is_set_up_in_the_file_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sbx.toml");
        assert_eq!(resolve(args(None)).unwrap().namespaces, None);
        std::fs::write(
            &file,
            "[namespaces]\nimage = \"smartsandbox/sbx:0.1.0\"\nmemory = \"1Gi\"\n",
        )
        .unwrap();
        let namespaces = resolve(args(Some(file.clone())))
            .unwrap()
            .namespaces
            .unwrap();
        assert_eq!(
            (
                namespaces.image.as_str(),
                namespaces.memory.as_str(),
                namespaces.cpu.as_str()
            ),
            ("smartsandbox/sbx:0.1.0", "1Gi", "500m")
        );
        for (bad, named) in [
            ("image = \"x\"\nmemory = \"lots\"\n", "namespaces.memory"),
            (
                "image = \"x\"\nservice_url = \"sbx:80\"\n",
                "namespaces.service_url",
            ),
            ("imgae = \"x\"\n", "imgae"),
        ] {
            std::fs::write(&file, format!("[namespaces]\n{bad}")).unwrap();
            let error = format!("{:#}", resolve(args(Some(file.clone()))).unwrap_err());
            assert!(error.contains(named), "{error}");
        }
    }

    #[test]
    fn the_session_runtime_is_chosen_in_the_file() {
        use sbx_server::config::SessionRuntime;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sbx.toml");
        assert_eq!(
            resolve(args(None)).unwrap().session_runtime,
            SessionRuntime::Bwrap
        );
        std::fs::write(
            &file,
            "[session_runtime]\nkind = \"docker\"\nimage = \"python:3.12-slim\"\n",
        )
        .unwrap();
        assert_eq!(
            resolve(args(Some(file.clone()))).unwrap().session_runtime,
            SessionRuntime::Docker {
                socket: None,
                image: Some("python:3.12-slim".to_owned())
            }
        );
        std::fs::write(
            &file,
            "[session_runtime]\nkind = \"kubernetes\"\nnamespace = \"sandboxes\"\nimage = \"python:3.12-slim\"\n",
        )
        .unwrap();
        assert!(matches!(
            resolve(args(Some(file.clone()))).unwrap().session_runtime,
            SessionRuntime::Kubernetes { namespace, .. } if namespace == "sandboxes"
        ));
        for (bad, named) in [
            ("kind = \"podman\"\n", "podman"),
            ("kind = \"kubernetes\"\n", "namespace"),
            ("kind = \"docker\"\nimgae = \"x\"\n", "imgae"),
        ] {
            std::fs::write(&file, format!("[session_runtime]\n{bad}")).unwrap();
            let error = format!("{:#}", resolve(args(Some(file.clone()))).unwrap_err());
            assert!(error.contains(named), "{bad}: {error}");
        }
    }
}
