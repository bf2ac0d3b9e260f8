//! `sbx session …` and `sbx exec`: code sessions from a terminal, over
//! the same API as every other client.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::client::{self, EventStream, ServerArgs, call, expect, percent_encode, print};

/// The language of one execution.
#[derive(Clone, Copy, ValueEnum)]
pub enum Template {
    Python,
    Node,
    Shell,
}

impl Template {
    fn name(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Node => "node",
            Self::Shell => "shell",
        }
    }
}

/// What a new session asks for.
#[derive(Args)]
pub struct SessionSpec {
    /// `python`, `node`, `shell`, or a template of yours with packages
    /// (`POST /api/v1/templates`).
    #[arg(long, default_value = "python")]
    template: String,
    /// Seconds it lives at most [default: 3600].
    #[arg(long)]
    lifetime: Option<u64>,
    /// Seconds without a request or a running execution before it ends
    /// [default: 600].
    #[arg(long)]
    idle_timeout: Option<u64>,
    /// Memory of the whole session in MiB, swap included [default: 512].
    #[arg(long)]
    memory_mib: Option<u64>,
    /// CPU of the whole session, in cores (0.5: half a core) [default: 1].
    #[arg(long)]
    cpu: Option<f64>,
    /// A variable every run sees, NAME=VALUE (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = pair)]
    env: Vec<(String, String)>,
    /// Start the workspace from this snapshot of yours.
    #[arg(long)]
    snapshot: Option<String>,
}

impl SessionSpec {
    fn body(&self) -> Value {
        let mut resources = Map::new();
        if let Some(mib) = self.memory_mib {
            resources.insert("memory_bytes".into(), json!(mib * 1024 * 1024));
        }
        if let Some(cpu) = self.cpu {
            resources.insert("cpu".into(), json!(cpu));
        }
        json!({
            "template": self.template,
            "lifetime_seconds": self.lifetime,
            "idle_timeout_seconds": self.idle_timeout,
            "resources": resources,
            "env": env_object(&self.env),
            "snapshot": self.snapshot,
        })
    }
}

fn pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE"))
}

fn env_object(env: &[(String, String)]) -> Value {
    Value::Object(
        env.iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect(),
    )
}

/// What one execution runs, and how.
#[derive(Args)]
pub struct Run {
    /// Code in the session's language (or --language); without it, the
    /// command after `--` runs.
    #[arg(short = 'c', long)]
    code: Option<String>,
    /// The language of --code [default: the session's template].
    #[arg(long, value_enum)]
    language: Option<Template>,
    /// Seconds before it is killed [default: 30].
    #[arg(long)]
    timeout: Option<u64>,
    /// The command and its arguments, after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

impl Run {
    /// The execution's request, with `env` for this run only.
    fn body(&self, env: &[(String, String)]) -> anyhow::Result<Value> {
        let mut body = json!({
            "timeout_seconds": self.timeout,
            "env": env_object(env),
            "wait": false,
        });
        match (&self.code, self.command.is_empty()) {
            (Some(code), true) => {
                body["code"] = json!(code);
                body["language"] = json!(self.language.map(Template::name));
            }
            (None, false) => body["command"] = json!(shell_words(&self.command)),
            _ => anyhow::bail!("give either --code or a command after --"),
        }
        Ok(body)
    }
}

/// `argv` as one shell command line, each word single-quoted.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|word| format!("'{}'", word.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Subcommand)]
pub enum SessionCommand {
    /// Start a session; prints it (its `id` names it to the other commands).
    Create {
        #[command(flatten)]
        spec: SessionSpec,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Your live sessions.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// One session, live or ended (with why).
    Show {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run code or a command in a session, its output streamed as it comes;
    /// exits with the run's exit code.
    Exec {
        id: String,
        #[command(flatten)]
        run: Run,
        /// A variable for this run only, NAME=VALUE (repeatable).
        #[arg(long = "env", value_name = "NAME=VALUE", value_parser = pair)]
        env: Vec<(String, String)>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Copy a file into or out of a session: `sbx session cp data.csv
    /// ses_…:in/data.csv`, or `sbx session cp ses_…:out.txt out.txt`
    /// (`-` is standard input or output).
    Cp {
        from: String,
        to: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// A folder of a session's workspace (its root by default).
    Ls {
        id: String,
        path: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// End a session: its runs are killed, its workspace removed.
    Rm {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `sbx exec`: a session made for one run, ended after it.
#[derive(Args)]
pub struct ExecArgs {
    #[command(flatten)]
    spec: SessionSpec,
    #[command(flatten)]
    run: Run,
    #[command(flatten)]
    server: ServerArgs,
}

pub async fn session(command: SessionCommand) -> anyhow::Result<()> {
    match command {
        SessionCommand::Create { spec, server } => {
            print(&create(&server, &spec).await?);
            Ok(())
        }
        SessionCommand::List { server } => {
            print(&expect(
                call(&server, Method::GET, "/sessions", None).await?,
                StatusCode::OK,
            )?);
            Ok(())
        }
        SessionCommand::Show { id, server } => {
            let path = format!("/sessions/{}", percent_encode(&id));
            print(&expect(
                call(&server, Method::GET, &path, None).await?,
                StatusCode::OK,
            )?);
            Ok(())
        }
        SessionCommand::Exec {
            id,
            run,
            env,
            server,
        } => {
            let code = exec(&server, &id, &run, &env).await?;
            std::process::exit(code)
        }
        SessionCommand::Cp { from, to, server } => copy(&server, &from, &to).await,
        SessionCommand::Ls { id, path, server } => {
            let path = files_path(&id, path.as_deref().unwrap_or(""));
            let listing = expect(
                call(&server, Method::GET, &path, None).await?,
                StatusCode::OK,
            )?;
            for entry in listing["items"].as_array().into_iter().flatten() {
                let kind = match entry["type"].as_str() {
                    Some("directory") => "d",
                    Some("symlink") => "l",
                    _ => "-",
                };
                crate::out!(
                    "{kind} {:>12} {}",
                    entry["size"],
                    entry["path"].as_str().unwrap_or("")
                );
            }
            Ok(())
        }
        SessionCommand::Rm { id, server } => {
            remove(&server, &id).await?;
            eprintln!("ended {id}");
            Ok(())
        }
    }
}

/// `sbx exec`: create, run, end; exits with the run's exit code.
pub async fn exec_once(args: ExecArgs) -> anyhow::Result<()> {
    let session = create(&args.server, &args.spec).await?;
    let id = session["id"].as_str().unwrap_or_default().to_owned();
    let outcome = exec(&args.server, &id, &args.run, &[]).await;
    remove(&args.server, &id).await?;
    std::process::exit(outcome?)
}

async fn create(server: &ServerArgs, spec: &SessionSpec) -> anyhow::Result<Value> {
    expect(
        call(server, Method::POST, "/sessions", Some(spec.body())).await?,
        StatusCode::CREATED,
    )
}

async fn remove(server: &ServerArgs, id: &str) -> anyhow::Result<()> {
    let path = format!("/sessions/{}", percent_encode(id));
    expect(
        call(server, Method::DELETE, &path, None).await?,
        StatusCode::NO_CONTENT,
    )?;
    Ok(())
}

/// Starts a run and prints its stream as it comes: stdout to stdout,
/// stderr to stderr, how it ended (unless `ok`) to stderr. The exit code
/// to leave with: the run's, or 1 when it did not exit by itself.
async fn exec(
    server: &ServerArgs,
    id: &str,
    run: &Run,
    env: &[(String, String)],
) -> anyhow::Result<i32> {
    let path = format!("/sessions/{}/executions", percent_encode(id));
    let started = expect(
        call(server, Method::POST, &path, Some(run.body(env)?)).await?,
        StatusCode::ACCEPTED,
    )?;
    let stream_url = started["stream_url"].as_str().unwrap_or_default();
    let mut stream = EventStream::open(server, stream_url.trim_start_matches("/api/v1")).await?;
    while let Some((kind, data)) = stream.next().await? {
        let text = data["data"].as_str().unwrap_or_default();
        match kind.as_str() {
            "stdout" => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            "stderr" => {
                let mut err = std::io::stderr().lock();
                err.write_all(text.as_bytes())?;
                err.flush()?;
            }
            "result" => print(&data),
            "end" => {
                let status = data["status"].as_str().unwrap_or("unknown");
                if status != "ok" {
                    let detail = data["error"]
                        .as_str()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    eprintln!("sbx: the run ended {status}{detail}");
                }
                let code = data["exit_code"]
                    .as_i64()
                    .and_then(|c| i32::try_from(c).ok());
                return Ok(code.unwrap_or(1));
            }
            _ => {}
        }
    }
    anyhow::bail!("the server closed the stream before the run ended")
}

fn files_path(id: &str, path: &str) -> String {
    format!(
        "/sessions/{}/files?path={}",
        percent_encode(id),
        percent_encode(path)
    )
}

/// `ses_…:path` split, when it names a session.
fn remote(spec: &str) -> Option<(&str, &str)> {
    spec.split_once(':')
        .filter(|(id, _)| id.starts_with("ses_"))
}

async fn copy(server: &ServerArgs, from: &str, to: &str) -> anyhow::Result<()> {
    match (remote(from), remote(to)) {
        (None, Some((id, path))) => {
            let bytes = if from == "-" {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)?;
                bytes
            } else {
                std::fs::read(from).with_context(|| format!("reading {from}"))?
            };
            let stored =
                client::send_bytes(server, Method::PUT, &files_path(id, path), bytes).await?;
            let stored = expect(stored, StatusCode::CREATED)?;
            eprintln!(
                "{} bytes to {id}:{}",
                stored["size"],
                stored["path"].as_str().unwrap_or("")
            );
            Ok(())
        }
        (Some((id, path)), None) => {
            let bytes = client::fetch_bytes(server, &files_path(id, path)).await?;
            if to == "-" {
                std::io::stdout().lock().write_all(&bytes)?;
            } else {
                std::fs::write(to, &bytes).with_context(|| format!("writing {to}"))?;
            }
            Ok(())
        }
        _ => anyhow::bail!("copy between a local file and a session's: `ses_…:path` on one side"),
    }
}
