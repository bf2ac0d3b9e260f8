//! Session templates: the built-in `python`, `node` and `shell`, and
//! templates of the caller's: a base with packages (pip requirements or npm
//! packages) installed once into a read-only layer that every session of
//! the template sees at `/opt/template`. The install runs in a code session
//! of its own that may reach only the package registry; a package list that
//! does not install fails the build with its log, never a session.

use std::{
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::Instant,
};

use sbx_sessions::Language;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{
    ServiceError, ServiceResult,
    caller::Caller,
    sessions::{self, Network, NewExecution, NewSession, Resources},
};
use crate::{
    app::{AppState, now_ms, rfc3339},
    runtime::templates::TemplateRecord,
};

/// The built-in templates.
pub const BUILT_IN: [(&str, Language); 3] = [
    ("python", Language::Python),
    ("node", Language::Node),
    ("shell", Language::Shell),
];
pub const MAX_PACKAGES: usize = 100;
pub const MAX_PACKAGE_BYTES: usize = 200;
/// How long an install may run.
pub const BUILD_SECONDS: u64 = 600;
/// A layer's largest size (the build session's workspace).
pub const MAX_LAYER_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateStatus {
    Building,
    Ready,
    Failed,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTemplate {
    /// 1–63 of `[a-z0-9-]`, starting with a letter; not a built-in's name.
    pub name: String,
    /// `python` (pip requirements) or `node` (npm packages).
    pub base: String,
    /// Python: requirement lines (`requests==2.32.3`, `numpy>=2`); Node:
    /// npm package specs (`lodash@4.17.21`). At most 100, each at most
    /// 200 bytes, without spaces or a leading `-`.
    #[serde(default)]
    pub packages: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TemplateView {
    pub name: String,
    /// `python`, `node` or `shell`.
    pub base: String,
    pub packages: Vec<String>,
    pub status: TemplateStatus,
    /// Names the definition (base and packages): templates defining the
    /// same packages share one layer, built once.
    pub digest: String,
    /// Why the build failed.
    pub error: Option<String>,
    /// The layer's size, once built.
    pub size_bytes: Option<u64>,
    pub created_at: String,
    pub built_at: Option<String>,
    pub build_ms: Option<u64>,
    pub builtin: bool,
}

/// What a session of a template runs with.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub name: String,
    pub language: Language,
    pub layer: Option<PathBuf>,
}

fn unknown(name: &str) -> String {
    format!(
        "no template named {name:?}: python, node, shell, or one of yours (GET /api/v1/templates)"
    )
}

fn missing(name: &str) -> ServiceError {
    ServiceError::NotFound(unknown(name))
}

/// Whether the caller may see and use `record`: its own, or an admin's
/// (which every developer may use).
fn usable(caller: &Caller, record: &TemplateRecord) -> bool {
    record.owner.is_none() || caller.sees(record.owner.as_ref())
}

/// The template a session names, ready to run.
pub fn resolve(state: &AppState, caller: &Caller, name: &str) -> ServiceResult<Resolved> {
    if let Some((name, language)) = BUILT_IN.iter().find(|(n, _)| *n == name) {
        return Ok(Resolved {
            name: (*name).to_owned(),
            language: *language,
            layer: None,
        });
    }
    let record = state
        .templates
        .get(name)
        .filter(|r| usable(caller, r))
        .ok_or_else(|| ServiceError::invalid("/template", unknown(name)))?;
    let view = &record.view;
    match view.status {
        TemplateStatus::Building => Err(ServiceError::Conflict(format!(
            "template {name:?} is still building; GET /api/v1/templates/{name} says when it is ready"
        ))),
        TemplateStatus::Failed => Err(ServiceError::Conflict(format!(
            "template {name:?} failed to build: {}; its log: GET /api/v1/templates/{name}/log",
            view.error.as_deref().unwrap_or("see its log")
        ))),
        TemplateStatus::Ready => Ok(Resolved {
            name: name.to_owned(),
            language: language_of(&view.base),
            layer: Some(state.templates.layer_path(&view.digest)),
        }),
    }
}

fn language_of(base: &str) -> Language {
    match base {
        "node" => Language::Node,
        "shell" => Language::Shell,
        _ => Language::Python,
    }
}

fn built_in_view(name: &str) -> TemplateView {
    TemplateView {
        name: name.to_owned(),
        base: name.to_owned(),
        packages: Vec::new(),
        status: TemplateStatus::Ready,
        digest: String::new(),
        error: None,
        size_bytes: None,
        created_at: rfc3339(0),
        built_at: None,
        build_ms: None,
        builtin: true,
    }
}

/// The built-in templates, then the caller's and the admins'.
pub fn list(state: &AppState, caller: &Caller) -> Vec<TemplateView> {
    let mut views: Vec<TemplateView> = BUILT_IN.iter().map(|(n, _)| built_in_view(n)).collect();
    views.extend(
        state
            .templates
            .all()
            .into_iter()
            .filter(|r| usable(caller, r))
            .map(|r| r.view),
    );
    views
}

pub fn get(state: &AppState, caller: &Caller, name: &str) -> ServiceResult<TemplateView> {
    if BUILT_IN.iter().any(|(n, _)| *n == name) {
        return Ok(built_in_view(name));
    }
    state
        .templates
        .get(name)
        .filter(|r| usable(caller, r))
        .map(|r| r.view)
        .ok_or_else(|| missing(name))
}

/// The last build's log (pip's or npm's output).
pub fn log(state: &AppState, caller: &Caller, name: &str) -> ServiceResult<String> {
    get(state, caller, name)?;
    Ok(std::fs::read_to_string(state.templates.log_path(name)).unwrap_or_default())
}

/// Removes a template of the caller's (an admin: any). Its layer is
/// removed when no other template names it and no live session runs it
/// (else at the server's next start).
pub fn delete(state: &AppState, caller: &Caller, name: &str) -> ServiceResult<()> {
    let record = state
        .templates
        .get(name)
        .filter(|r| caller.sees(r.owner.as_ref()))
        .ok_or_else(|| missing(name))?;
    if record.view.status == TemplateStatus::Building {
        return Err(ServiceError::Conflict(format!(
            "template {name:?} is building; delete it once the build ends"
        )));
    }
    state.templates.remove(name);
    let digest = &record.view.digest;
    let layer = state.templates.layer_path(digest);
    let named = state
        .templates
        .all()
        .iter()
        .any(|r| &r.view.digest == digest);
    let running = state
        .sessions
        .all()
        .iter()
        .any(|s| s.layer.as_ref() == Some(&layer));
    if !named && !running {
        let _ = std::fs::remove_dir_all(&layer);
    }
    Ok(())
}

fn check(new: &NewTemplate) -> ServiceResult<()> {
    let name = &new.name;
    let well_formed = (1..=63).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !well_formed {
        return Err(ServiceError::invalid(
            "/name",
            "1–63 of a-z, 0-9 and -, starting with a letter",
        ));
    }
    if BUILT_IN.iter().any(|(n, _)| n == name) {
        return Err(ServiceError::invalid(
            "/name",
            "is a built-in template's name",
        ));
    }
    if new.base != "python" && new.base != "node" {
        return Err(ServiceError::invalid("/base", "\"python\" or \"node\""));
    }
    if new.packages.len() > MAX_PACKAGES {
        return Err(ServiceError::invalid(
            "/packages",
            format!("at most {MAX_PACKAGES} packages"),
        ));
    }
    for (i, package) in new.packages.iter().enumerate() {
        let refused = if package.is_empty() || package.len() > MAX_PACKAGE_BYTES {
            Some(format!("must be 1 to {MAX_PACKAGE_BYTES} bytes"))
        } else if package.starts_with('-') {
            Some("must not start with - (options are not packages)".to_owned())
        } else if package
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "*?[".contains(c))
        {
            Some("must hold no spaces, control or glob characters".to_owned())
        } else {
            None
        };
        if let Some(why) = refused {
            return Err(ServiceError::invalid(&format!("/packages/{i}"), why));
        }
    }
    Ok(())
}

/// The definition's digest: the layer's name.
fn digest(base: &str, packages: &[String]) -> String {
    let mut hash = Sha256::new();
    hash.update(base.as_bytes());
    for package in packages {
        hash.update(b"\n");
        hash.update(package.as_bytes());
    }
    hex::encode(&hash.finalize()[..16])
}

/// Defines a template and starts its build; a layer already built for
/// the same packages makes it ready at once. Defining an existing
/// template of the caller's again rebuilds it unless nothing changed.
/// Whether the template is new.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    new: NewTemplate,
) -> ServiceResult<(TemplateView, bool)> {
    check(&new)?;
    let digest = digest(&new.base, &new.packages);
    let existing = state.templates.get(&new.name);
    if let Some(existing) = &existing {
        if !caller.sees(existing.owner.as_ref()) {
            return Err(ServiceError::Conflict(format!(
                "the template name {:?} is taken",
                new.name
            )));
        }
        let same = existing.view.digest == digest && existing.view.status != TemplateStatus::Failed;
        if same || existing.view.status == TemplateStatus::Building {
            return Ok((existing.view.clone(), false));
        }
    }
    let layer = state.templates.layer_path(&digest);
    if new.packages.is_empty() {
        // Nothing to install: an empty layer.
        keep_layer(None, &layer)
            .map_err(|e| ServiceError::Internal(anyhow::Error::new(e).context("making a layer")))?;
    }
    let cached = layer.is_dir();
    let view = TemplateView {
        name: new.name.clone(),
        base: new.base.clone(),
        packages: new.packages.clone(),
        status: if cached {
            TemplateStatus::Ready
        } else {
            TemplateStatus::Building
        },
        digest,
        error: None,
        size_bytes: cached.then(|| tree_size(&layer)),
        created_at: rfc3339(now_ms()),
        built_at: cached.then(|| rfc3339(now_ms())),
        build_ms: cached.then_some(0),
        builtin: false,
    };
    let record = TemplateRecord {
        owner: caller.owner().cloned(),
        view: view.clone(),
    };
    state.templates.put(record.clone()).map_err(|e| {
        ServiceError::Internal(anyhow::Error::new(e).context("writing the template's record"))
    })?;
    if !cached {
        let state = state.clone();
        tokio::spawn(async move { build(&state, record).await });
    }
    tracing::info!(template = %view.name, cached, "template defined");
    Ok((view, existing.is_none()))
}

/// Installs the record's packages and records how that went.
async fn build(state: &AppState, mut record: TemplateRecord) {
    let started = Instant::now();
    let view = &mut record.view;
    let (outcome, log) = install(state, view).await;
    let _ = std::fs::write(state.templates.log_path(&view.name), &log);
    view.build_ms = Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    view.built_at = Some(rfc3339(now_ms()));
    match outcome {
        Ok(size) => {
            view.status = TemplateStatus::Ready;
            view.size_bytes = Some(size);
        }
        Err(error) => {
            view.status = TemplateStatus::Failed;
            view.error = Some(error);
        }
    }
    tracing::info!(template = %view.name, status = ?view.status, "template built");
    // Deleted meanwhile: its record stays deleted.
    if state.templates.get(&view.name).is_some()
        && let Err(error) = state.templates.put(record)
    {
        tracing::warn!(%error, "writing a template's record failed");
    }
}

/// Runs the install in a session that reaches only the registry, then
/// keeps what it installed as the layer; its size, or why it failed, and
/// the install's output.
async fn install(state: &AppState, view: &TemplateView) -> (Result<u64, String>, String) {
    let (hosts, command): (&[&str], &str) = match view.base.as_str() {
        "node" => (
            &["registry.npmjs.org"],
            "set -f; npm install --no-audit --no-fund --no-update-notifier --prefix /workspace/layer/node $(cat /workspace/packages.txt)",
        ),
        _ => (
            &["pypi.org", "files.pythonhosted.org"],
            "mkdir -p /workspace/layer/python && python3 -m pip install --no-cache-dir --disable-pip-version-check --no-input --target /workspace/layer/python -r /workspace/packages.txt",
        ),
    };
    let new = NewSession {
        template: view.base.clone(),
        lifetime_seconds: Some(BUILD_SECONDS + 60),
        idle_timeout_seconds: Some(BUILD_SECONDS + 60),
        resources: Resources {
            memory_bytes: Some(1024 * 1024 * 1024),
            disk_bytes: Some(MAX_LAYER_BYTES),
            pids: Some(sessions::MAX_PROCESSES),
            cpu_seconds: Some(BUILD_SECONDS),
            ..Resources::default()
        },
        env: Default::default(),
        snapshot: None,
        network: Some(Network::Allow {
            allow: hosts.iter().map(|h| (*h).to_owned()).collect(),
        }),
    };
    let session = match sessions::create(state, &Caller::System, new).await {
        Ok(session) => session,
        Err(error) => {
            return (
                Err(format!("the build session did not start: {error}")),
                String::new(),
            );
        }
    };
    let outcome = install_in(state, &session.id, view, command).await;
    let _ = sessions::delete(state, &Caller::System, &session.id);
    outcome
}

async fn install_in(
    state: &AppState,
    session: &str,
    view: &TemplateView,
    command: &str,
) -> (Result<u64, String>, String) {
    let mut list = view.packages.join("\n");
    list.push('\n');
    let body =
        futures_util::stream::iter([Ok::<_, std::convert::Infallible>(bytes::Bytes::from(list))]);
    let stored =
        super::session_files::store(state, &Caller::System, session, "packages.txt".into(), body)
            .await;
    if let Err(error) = stored {
        return (
            Err(format!("the package list could not be written: {error}")),
            String::new(),
        );
    }
    let run = sessions::execute(
        state,
        &Caller::System,
        session,
        NewExecution {
            mode: None,
            event: None,
            code: None,
            command: Some(command.to_owned()),
            language: None,
            timeout_seconds: Some(BUILD_SECONDS),
            env: Default::default(),
            wait: Some(true),
        },
    )
    .await;
    let run = match run {
        Ok(run) => run,
        Err(error) => {
            return (
                Err(format!("the install did not run: {error}")),
                String::new(),
            );
        }
    };
    let log = format!("$ {command}\n{}{}", run.stdout, run.stderr);
    if run.status != "ok" {
        let how = match run.exit_code {
            Some(code) => format!("{} (exit code {code})", run.status),
            None => run.status.clone(),
        };
        return (
            Err(format!("the package install ended {how}; see the log")),
            log,
        );
    }
    let Some(live) = state.sessions.get(session) else {
        return (
            Err("the build session ended before its files were kept".into()),
            log,
        );
    };
    let from = live.workspace.join("layer");
    let to = state.templates.layer_path(&view.digest);
    let kept = tokio::task::spawn_blocking(move || keep_layer(Some(&from), &to)).await;
    match kept {
        Ok(Ok(size)) => (Ok(size), log),
        Ok(Err(error)) => (
            Err(format!("the installed packages could not be kept: {error}")),
            log,
        ),
        Err(error) => (Err(error.to_string()), log),
    }
}

/// Copies what the install left in `from` (the jail's, untrusted) to the
/// layer `to` (empty without `from`): folders, regular files and links as
/// links, never followed; owned by root and read-only, without set-id
/// bits. Written beside `to` and renamed, so a layer is whole or absent.
fn keep_layer(from: Option<&Path>, to: &Path) -> std::io::Result<u64> {
    let partial = to.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)?;
    // Jails open the layer as their session's uid: passable, not listable.
    for folder in to.ancestors().skip(1).take(2) {
        set_mode(folder, 0o711)?;
    }
    let size = match from {
        Some(from) => copy_tree(from, &partial)?,
        None => 0,
    };
    set_mode(&partial, 0o755)?;
    let _ = std::fs::remove_dir_all(to);
    std::fs::rename(&partial, to)?;
    Ok(size)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::PermissionsExt;
    let mut size = 0;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(0); // nothing installed
    };
    for entry in entries {
        let entry = entry?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = std::fs::symlink_metadata(&source)?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&source)?, &target)?;
        } else if kind.is_dir() {
            std::fs::create_dir(&target)?;
            size += copy_tree(&source, &target)?;
            set_mode(&target, 0o755)?;
        } else if kind.is_file() {
            let mut input = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&source)?;
            let mut output = std::fs::File::create(&target)?;
            size += std::io::copy(&mut input, &mut output)?;
            let executable = kind.permissions().mode() & 0o111 != 0;
            set_mode(&target, if executable { 0o755 } else { 0o644 })?;
        }
        if size > MAX_LAYER_BYTES {
            return Err(std::io::Error::other(format!(
                "the packages take more than {MAX_LAYER_BYTES} bytes"
            )));
        }
    }
    Ok(size)
}

/// The bytes of the regular files beneath `path`.
fn tree_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| match std::fs::symlink_metadata(entry.path()) {
            Ok(kind) if kind.is_dir() => tree_size(&entry.path()),
            Ok(kind) if kind.is_file() => kind.len(),
            _ => 0,
        })
        .sum()
}
