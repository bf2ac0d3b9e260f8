//! `sbx`: the SmartSandbox command line. Parses arguments and hands off to
//! the server library or to the HTTP client.

/// `println!` that survives a closed stdout (`sbx mock spec | head -1`):
/// a server must not die because nobody reads its banner any more.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use out;

mod client;
mod env;
mod explain;
mod history;
mod login;
mod sessions;
mod settings;

/// The request path allocates many small, short-lived values (JSON, script
/// values); mimalloc serves those faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "sbx",
    version,
    about = "Production-like API sandboxes from an OpenAPI document"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the control plane and every sandbox's data plane.
    Serve(settings::ServeArgs),
    /// Serve one spec at the root: no control plane, no token (like `prism mock`).
    Mock(MockArgs),
    /// Import a spec file as a project, or add a revision when the project exists.
    Import(ImportArgs),
    /// Create, list, show and delete sandboxes.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Make, list, roll and revoke a sandbox's API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage a sandbox's OAuth 2 / OpenID Connect test provider.
    #[command(subcommand)]
    Oauth(OauthCommand),
    /// Fetch an access token for a sandbox with the client credentials
    /// grant; prints the token alone (handy in CI: `$(sbx token …)`).
    Token {
        #[arg(long)]
        sandbox: String,
        #[arg(long)]
        client_id: String,
        /// The client's secret (no flag: it would show in `ps`).
        #[arg(long, env = env::CLIENT_SECRET, hide_env_values = true)]
        client_secret: String,
        /// Space-separated scopes [default: those the client may have].
        #[arg(long)]
        scope: Option<String>,
        /// Print the whole token response (JSON).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Show or move a sandbox's test clock.
    #[command(subcommand)]
    Clock(ClockCommand),
    /// Fire an event in a sandbox: delivered to its webhook endpoints.
    Trigger {
        /// The event type, e.g. payment.succeeded.
        event_type: String,
        #[arg(long)]
        sandbox: String,
        /// The payload (JSON); the type's golden payload when absent.
        #[arg(long)]
        data: Option<String>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Print a sandbox's latest requests; with --follow, each new one as it
    /// comes; with --har, the whole log as HAR 1.2 (`> sandbox.har`).
    Logs {
        #[arg(long)]
        sandbox: String,
        /// How many recent requests to print first (1 to 200) [default: 20,
        /// or all with --har].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: Option<u32>,
        #[arg(long, short, conflicts_with = "har")]
        follow: bool,
        /// Print the log as an HTTP Archive that browsers, Postman or k6 open.
        #[arg(long)]
        har: bool,
        #[command(flatten)]
        filters: client::LogFilters,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// What happened in a sandbox, in sandbox-clock order: requests, clock
    /// moves, jobs, state transitions, events and webhook deliveries, each
    /// with what caused it.
    Timeline {
        #[arg(long)]
        sandbox: String,
        /// Only these kinds, comma-separated.
        #[arg(long, value_delimiter = ',')]
        kinds: Vec<TimelineKind>,
        /// From this sandbox time on (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Who changed what on the server, newest first: each control-plane
    /// change or refused attempt, its outcome, what it created, why it failed.
    Audit {
        /// Only changes whose path or created resource contains this (a
        /// sandbox id, a project name).
        #[arg(long)]
        target: Option<String>,
        /// Only this actor: admin, anonymous, system or an account id (usr_…).
        #[arg(long)]
        actor: Option<String>,
        /// Only changes that ended so.
        #[arg(long)]
        outcome: Option<AuditOutcome>,
        /// From this time on (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// How the sandbox decided a logged request: sandbox, route (or the
    /// near misses), auth, each validation error, scenario, chaos, script.
    Explain {
        /// The request's `X-Request-Id` (echoed on every answer).
        request_id: String,
        /// Look only in this sandbox's log [default: the latest request with
        /// that id in any sandbox].
        #[arg(long)]
        sandbox: Option<String>,
        /// Print the explanation as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Sign in to a server with an account's email and password: a
    /// personal access token is made and kept for the other commands.
    Login {
        /// The account's email address.
        #[arg(long)]
        email: String,
        /// Read the password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
        /// The server's URL.
        #[arg(long, env = env::URL, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Revoke the token `sbx login` kept for a server, and forget it.
    Logout {
        /// The server's URL.
        #[arg(long, env = env::URL, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Start, use and end code sessions: run code in jails, copy files in
    /// and out.
    #[command(subcommand)]
    Session(sessions::SessionCommand),
    /// Run a command (after `--`) or code (`-c`) in a new session, its
    /// output streamed, then end the session; exits with the run's code.
    Exec(sessions::ExecArgs),
    /// Forward a sandbox's events, signed, to a local URL (like `stripe listen`).
    Listen {
        #[arg(long)]
        sandbox: String,
        /// Where to post each event, e.g. http://localhost:3000/webhooks.
        #[arg(long)]
        forward_to: String,
        #[command(flatten)]
        server: client::ServerArgs,
    },
}

/// The sandbox a command is about: `--sandbox sbx-…`, as every command
/// names it (the id as the first argument, the earlier form, still works).
#[derive(Args)]
struct SandboxArg {
    /// The sandbox's id (sbx-…).
    #[arg(long = "sandbox", value_name = "ID", required_unless_present = "id")]
    sandbox: Option<String>,
    /// Same as --sandbox.
    #[arg(value_name = "ID", hide = true, conflicts_with = "sandbox")]
    id: Option<String>,
}

impl SandboxArg {
    fn id(self) -> String {
        self.sandbox.or(self.id).unwrap_or_default()
    }
}

/// Whether a sandbox checks the spec's security schemes.
#[derive(Clone, Copy, ValueEnum)]
enum Auth {
    Spec,
    None,
}

/// What serves a sandbox.
#[derive(Clone, Copy, ValueEnum)]
enum Isolation {
    /// The servers, with every other sandbox.
    Shared,
    /// A server of its own in a Kubernetes namespace of its own (admin only;
    /// the server needs `[namespaces]`).
    Namespace,
}

impl Auth {
    fn mode(self) -> sbx_server::AuthMode {
        match self {
            Self::Spec => sbx_server::AuthMode::Spec,
            Self::None => sbx_server::AuthMode::None,
        }
    }
}

/// How an audited change ended.
#[derive(Clone, Copy, ValueEnum)]
enum AuditOutcome {
    Succeeded,
    Refused,
    Failed,
}

/// What a timeline entry is.
#[derive(Clone, Copy, ValueEnum)]
enum TimelineKind {
    Clock,
    Request,
    Job,
    Transition,
    Event,
    Delivery,
}

/// A value's name on the command line, as the API takes it too.
fn name_of(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

#[derive(Subcommand)]
enum ClockCommand {
    /// The sandbox's time and the jobs waiting on it.
    Show {
        #[command(flatten)]
        sandbox: SandboxArg,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Move the clock forward by an ISO 8601 duration (P2D, PT1H, P1M);
    /// every job that falls due on the way has run when this returns.
    Advance {
        /// The sandbox's id (sbx-…).
        #[arg(long, value_name = "ID")]
        sandbox: Option<String>,
        /// The duration (`ID DURATION`, the earlier form, still works).
        #[arg(value_name = "DURATION", num_args = 1..=2, required = true)]
        words: Vec<String>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Stop the clock where it is, or at an RFC 3339 instant (--at).
    Freeze {
        #[command(flatten)]
        sandbox: SandboxArg,
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Run the clock again from where it stood.
    Resume {
        #[command(flatten)]
        sandbox: SandboxArg,
        #[command(flatten)]
        server: client::ServerArgs,
    },
}

/// The sandbox and duration of `sbx clock advance`, in either form.
fn advance_args(sandbox: Option<String>, words: Vec<String>) -> anyhow::Result<(String, String)> {
    match (sandbox, <[String; 2]>::try_from(words)) {
        (None, Ok([id, duration])) => Ok((id, duration)),
        (Some(id), Err(words)) if words.len() == 1 => {
            Ok((id, words.into_iter().next().unwrap_or_default()))
        }
        _ => anyhow::bail!(
            "name the sandbox and the duration: sbx clock advance --sandbox sbx-… P2D"
        ),
    }
}

#[derive(Args)]
struct MockArgs {
    /// The OpenAPI (3.0, 3.1) or Swagger 2.0 document (relative `$ref`
    /// files are read too), or a project folder (see docs/projects.md).
    spec: PathBuf,
    #[arg(long, default_value = "127.0.0.1:4010", env = env::MOCK_LISTEN)]
    listen: std::net::SocketAddr,
    /// `none` answers without credentials; `spec` enforces the spec's
    /// security schemes, accepting any `sk_test_` key.
    #[arg(long, value_enum, default_value_t = Auth::None)]
    auth: Auth,
    /// Let forwarding reach loopback and private addresses (refused by default).
    #[arg(long, env = env::ALLOW_PRIVATE_EGRESS)]
    allow_private_egress: bool,
}

#[derive(Args)]
struct ImportArgs {
    /// The spec file (YAML or JSON; relative `$ref` files are bundled in),
    /// or a project folder (see docs/projects.md). An existing project
    /// gets a new revision.
    file: PathBuf,
    /// Project name (1-64 of a-z, 0-9, '-', '_', '.').
    #[arg(long)]
    name: String,
    #[command(flatten)]
    server: client::ServerArgs,
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Create a sandbox; prints its base URL and API key (shown once).
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        revision: Option<u32>,
        /// Remove the sandbox this many seconds after creation.
        #[arg(long)]
        ttl: Option<u64>,
        /// Same seed, same answers (defaults to the sandbox id).
        #[arg(long)]
        seed: Option<String>,
        #[arg(long)]
        auth: Option<Auth>,
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        isolation: Option<Isolation>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    List {
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    Show {
        #[command(flatten)]
        sandbox: SandboxArg,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    Delete {
        #[command(flatten)]
        sandbox: SandboxArg,
        #[command(flatten)]
        server: client::ServerArgs,
    },
}

#[derive(Subcommand)]
enum OauthCommand {
    /// Register, list and delete OAuth clients.
    #[command(subcommand)]
    Clients(ClientsCommand),
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Register a client; prints it with its secret (shown once).
    Create {
        #[arg(long)]
        sandbox: String,
        #[arg(long)]
        name: String,
        /// Where users are sent back after authorizing (repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A scope it may be granted (repeatable) [default: any].
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// A public client (browser or native app): no secret, PKCE only.
        #[arg(long)]
        public: bool,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// The sandbox's clients (never their secrets).
    List {
        #[arg(long)]
        sandbox: String,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Delete a client; its refresh tokens stop working.
    Delete {
        /// The client's id (cli_…).
        client_id: String,
        #[arg(long)]
        sandbox: String,
        #[command(flatten)]
        server: client::ServerArgs,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a key; prints it (shown once).
    Create {
        #[arg(long)]
        sandbox: String,
        /// secret (sk_test_), restricted (rk_test_) or publishable (pk_test_).
        #[arg(long, value_parser = ["secret", "restricted", "publishable"], default_value = "secret")]
        kind: String,
        #[arg(long)]
        name: Option<String>,
        /// A restricted key that may only read.
        #[arg(long)]
        read_only: bool,
        /// A restricted key that may call only these operations (comma-separated ids).
        #[arg(long, value_delimiter = ',')]
        operations: Vec<String>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// The sandbox's keys, redacted, with their last use.
    List {
        #[arg(long)]
        sandbox: String,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Replace a key with a new one; the old one works for a grace period.
    Roll {
        /// The key's id (key_…).
        key: String,
        #[arg(long)]
        sandbox: String,
        /// Seconds the old key keeps working (0 to 604800) [default: 86400].
        #[arg(long)]
        expires_in: Option<u64>,
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Revoke a key: it stops working at once.
    Revoke {
        /// The key's id (key_…).
        key: String,
        #[arg(long)]
        sandbox: String,
        #[command(flatten)]
        server: client::ServerArgs,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env(env::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colours only for a terminal: a log file gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var(env::LOG_FORMAT).is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Cancels `token` on SIGINT or SIGTERM. The handlers are installed before
/// this returns, so a signal sent right after the ready message is caught.
fn cancel_on_signal(token: tokio_util::sync::CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
        token.cancel();
    });
    Ok(())
}

async fn serve(args: settings::ServeArgs) -> anyhow::Result<()> {
    let demo = args.demo;
    let config = settings::resolve(args)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let data_dir = config.data_dir.clone();
    let server = sbx_server::start(config, listener).await?;
    cancel_on_signal(server.shutdown_token())?;
    out!("SmartSandbox listening on {}", server.public_url);
    out!(
        "  control plane: {}/api/v1  (OpenAPI: {}/api/v1/openapi.json)",
        server.public_url,
        server.public_url
    );
    if let Some(token) = &server.generated_admin_token {
        out!(
            "  admin token (shown once, saved in {}): {token}",
            data_dir.join("admin-token").display()
        );
    }
    if demo {
        let sandbox = sbx_server::demo::prepare(&server).await?;
        out!();
        out!("Developer portal: {}", sandbox.portal_url);
        out!(
            "  sign in as {} with the password {} (new at every start)",
            sandbox.email,
            sandbox.password
        );
        out!();
        out!("Demo sandbox {} is ready:", sandbox.id);
        out!("  base URL: {}", sandbox.base_url);
        out!("  API key:  {}", sandbox.api_key);
        out!(
            "  try:      curl -H 'Authorization: Bearer {}' {}/accounts/acct_demo_gold",
            sandbox.api_key,
            sandbox.base_url
        );
    }
    server.wait().await
}

async fn mock(args: MockArgs) -> anyhow::Result<()> {
    let (spec, files) = client::load_project(&args.spec)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let options = sbx_server::MockOptions {
        auth: args.auth.mode(),
        limits: sbx_server::Limits::default(),
        scripts: sbx_server::ScriptLimits::default(),
        allow_private_egress: args.allow_private_egress,
    };
    let server = sbx_server::start_mock(spec, files.unwrap_or_default(), listener, options).await?;
    cancel_on_signal(server.shutdown_token())?;
    out!(
        "Mocking {} ({} operations) on http://{}",
        server.revision.model.title,
        server.revision.operations.len(),
        server.local_addr
    );
    for warning in &server.revision.model.warnings {
        eprintln!("warning: {}: {}", warning.pointer, warning.message);
    }
    for op in server.revision.summaries() {
        out!(
            "  {:7} http://{}{}{}",
            op.method,
            server.local_addr,
            server.revision.model.base_path,
            op.path
        );
    }
    server.wait().await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Mock(args) => mock(args).await,
        Command::Import(args) => client::import(&args.server, &args.file, &args.name).await,
        Command::Session(command) => sessions::session(command).await,
        Command::Exec(args) => sessions::exec_once(args).await,
        Command::Sandbox(command) => match command {
            SandboxCommand::Create {
                project,
                revision,
                ttl,
                seed,
                auth,
                label,
                isolation,
                server,
            } => {
                let body = serde_json::json!({
                    "project": project, "revision": revision, "ttl_seconds": ttl, "seed": seed,
                    "auth": auth.map(name_of), "label": label, "isolation": isolation.map(name_of),
                });
                client::create_sandbox(&server, body).await
            }
            SandboxCommand::List { project, server } => {
                client::list_sandboxes(&server, project.as_deref()).await
            }
            SandboxCommand::Show { sandbox, server } => {
                client::show_sandbox(&server, &sandbox.id()).await
            }
            SandboxCommand::Delete { sandbox, server } => {
                client::delete_sandbox(&server, &sandbox.id()).await
            }
        },
        Command::Keys(command) => match command {
            KeysCommand::Create {
                sandbox,
                kind,
                name,
                read_only,
                operations,
                server,
            } => {
                let mut permissions = serde_json::Map::new();
                if read_only {
                    permissions.insert("read_only".into(), true.into());
                }
                if !operations.is_empty() {
                    permissions.insert("operations".into(), operations.into());
                }
                let mut body = serde_json::json!({"kind": kind, "name": name});
                if !permissions.is_empty() {
                    body["permissions"] = permissions.into();
                }
                client::SandboxItems::new(&server, &sandbox, "keys")
                    .create(body)
                    .await
            }
            KeysCommand::List { sandbox, server } => {
                client::SandboxItems::new(&server, &sandbox, "keys")
                    .list()
                    .await
            }
            KeysCommand::Roll {
                key,
                sandbox,
                expires_in,
                server,
            } => {
                let body = serde_json::json!({"expires_in_seconds": expires_in});
                client::SandboxItems::new(&server, &sandbox, "keys")
                    .post(&format!("/{key}/roll"), body)
                    .await
            }
            KeysCommand::Revoke {
                key,
                sandbox,
                server,
            } => {
                client::SandboxItems::new(&server, &sandbox, "keys")
                    .delete(&key)
                    .await
            }
        },
        Command::Oauth(OauthCommand::Clients(command)) => match command {
            ClientsCommand::Create {
                sandbox,
                name,
                redirect_uris,
                scopes,
                public,
                server,
            } => {
                let kind = if public { "public" } else { "confidential" };
                let body = serde_json::json!({
                    "name": name, "redirect_uris": redirect_uris, "scopes": scopes, "kind": kind,
                });
                client::SandboxItems::new(&server, &sandbox, "oauth/clients")
                    .create(body)
                    .await
            }
            ClientsCommand::List { sandbox, server } => {
                client::SandboxItems::new(&server, &sandbox, "oauth/clients")
                    .list()
                    .await
            }
            ClientsCommand::Delete {
                client_id,
                sandbox,
                server,
            } => {
                client::SandboxItems::new(&server, &sandbox, "oauth/clients")
                    .delete(&client_id)
                    .await
            }
        },
        Command::Token {
            sandbox,
            client_id,
            client_secret,
            scope,
            json,
            server,
        } => {
            let client = client::OAuthClient {
                id: &client_id,
                secret: &client_secret,
            };
            client::token(&server, &sandbox, client, scope.as_deref(), json).await
        }
        Command::Trigger {
            event_type,
            sandbox,
            data,
            server,
        } => client::trigger(&server, &sandbox, &event_type, data.as_deref()).await,
        Command::Listen {
            sandbox,
            forward_to,
            server,
        } => client::listen(&server, &sandbox, &forward_to).await,
        Command::Login {
            email,
            password_stdin,
            url,
        } => login::login(&url, &email, password_stdin).await,
        Command::Logout { url } => login::logout(&url).await,
        Command::Logs {
            sandbox,
            limit,
            follow: _,
            har: true,
            filters,
            server,
        } => client::har(&server, &sandbox, limit, &filters).await,
        Command::Logs {
            sandbox,
            limit,
            follow,
            har: false,
            filters,
            server,
        } => client::logs(&server, &sandbox, limit.unwrap_or(20), follow, &filters).await,
        Command::Timeline {
            sandbox,
            kinds,
            since,
            server,
        } => {
            let kinds = kinds.into_iter().map(name_of).collect::<Vec<_>>().join(",");
            let kinds = Some(kinds.as_str()).filter(|k| !k.is_empty());
            history::timeline(&server, &sandbox, kinds, since.as_deref()).await
        }
        Command::Audit {
            target,
            actor,
            outcome,
            since,
            limit,
            server,
        } => {
            let outcome = outcome.map(name_of);
            let filters = history::AuditFilters {
                target: target.as_deref(),
                actor: actor.as_deref(),
                outcome: outcome.as_deref(),
                since: since.as_deref(),
                limit,
            };
            history::audit(&server, &filters).await
        }
        Command::Explain {
            request_id,
            sandbox,
            json,
            server,
        } => explain::explain(&server, &request_id, sandbox.as_deref(), json).await,
        Command::Clock(command) => match command {
            ClockCommand::Show { sandbox, server } => {
                client::clock(&server, &sandbox.id(), None).await
            }
            ClockCommand::Advance {
                sandbox,
                words,
                server,
            } => match advance_args(sandbox, words) {
                Ok((id, duration)) => {
                    client::clock(&server, &id, Some(json!({"advance": duration}))).await
                }
                Err(error) => Err(error),
            },
            ClockCommand::Freeze {
                sandbox,
                at,
                server,
            } => {
                let change = match at {
                    Some(at) => json!({"freeze_at": at}),
                    None => json!({"freeze": true}),
                };
                client::clock(&server, &sandbox.id(), Some(change)).await
            }
            ClockCommand::Resume { sandbox, server } => {
                client::clock(&server, &sandbox.id(), Some(json!({"resume": true}))).await
            }
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
