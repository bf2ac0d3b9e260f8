//! Projects: compiling a spec with its behaviour files, publishing it as a
//! new revision, editing one file at a time, and the compiled revisions
//! sandboxes serve.

use std::sync::Arc;

use sbx_engine::{CompiledRevision, FileProblem, OperationIndex, ProjectFiles, ScriptLimits};
use sbx_store::ProjectRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{FieldError, ServiceError, ServiceResult, caller::Caller};
use crate::{
    app::{AppState, now_ms, rfc3339},
    config::Limits,
    runtime::ids::valid_project_name,
};

/// Parses, checks and compiles a spec and its behaviour files; CPU-heavy,
/// so it runs on the blocking pool. Every problem comes back as a field
/// error with its file, pointer, line and column.
pub async fn compile(
    text: String,
    files: ProjectFiles,
    limits: &Limits,
    script_limits: &ScriptLimits,
) -> ServiceResult<Arc<CompiledRevision>> {
    let spec_limits = sbx_spec::Limits {
        max_spec_bytes: limits.max_spec_bytes,
        max_depth: limits.max_spec_depth,
    };
    let script_limits = script_limits.clone();
    let compiled = tokio::task::spawn_blocking(move || {
        let model = sbx_spec::load_api(&text, &spec_limits).map_err(|e| {
            if let sbx_spec::SpecError::TooLarge { .. } = e {
                return ServiceError::TooLarge(e.to_string());
            }
            let problems: Vec<FileProblem> = e
                .problems()
                .into_iter()
                .map(|p| FileProblem::new("spec", p.message).pointer(p.pointer))
                .collect();
            project_problems(&problems)
        })?;
        CompiledRevision::compile_project(model, &files, &script_limits)
            .map_err(|e| project_problems(&e.0))
    })
    .await
    .map_err(|e| anyhow::anyhow!("compiling a project: {e}"))??;
    Ok(Arc::new(compiled))
}

/// Problems of a project as one error: a detail that reads alone, and every
/// problem with its place.
pub fn project_problems(problems: &[FileProblem]) -> ServiceError {
    let errors: Vec<FieldError> = problems
        .iter()
        .map(|p| FieldError {
            location: p.file.clone(),
            pointer: p.pointer.clone(),
            message: p.message.clone(),
            line: p.line,
            column: p.column,
        })
        .collect();
    let detail = match problems {
        [one] if one.file == "spec" => format!(
            "the spec has a problem at {}: {}",
            if one.pointer.is_empty() {
                "the root"
            } else {
                &one.pointer
            },
            one.message
        ),
        [one] => format!("{one}"),
        many if many.iter().all(|p| p.file == "spec") => {
            format!("the spec has {} problems; see `errors`", many.len())
        }
        many => format!("the project has {} problems; see `errors`", many.len()),
    };
    ServiceError::InvalidProject { detail, errors }
}

/// A revision compiled from the store, shared through the registry.
pub async fn compiled_revision(
    state: &AppState,
    project: &str,
    revision: u32,
) -> ServiceResult<Arc<CompiledRevision>> {
    let store = state.store.clone();
    let limits = state.config.limits.clone();
    let script_limits = state.config.scripts.clone();
    let (name, number) = (project.to_owned(), revision);
    state
        .registry
        .compiled(project, revision, || async move {
            let record = store.get_revision(&name, number).await?.ok_or_else(|| {
                ServiceError::NotFound(format!("project {name} has no revision {number}"))
            })?;
            compile(record.spec, record.files, &limits, &script_limits).await
        })
        .await
}

fn missing(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("project \"{name}\" does not exist"))
}

/// The project's record.
pub async fn get(state: &AppState, name: &str) -> ServiceResult<ProjectRecord> {
    state
        .store
        .get_project(name)
        .await?
        .ok_or_else(|| missing(name))
}

/// Every project (admins only: developers choose from the published ones
/// when they create a sandbox, through [`published`]).
pub async fn list(state: &AppState, caller: &Caller) -> ServiceResult<Vec<ProjectRecord>> {
    caller.must_be_admin("manage projects")?;
    published(state).await
}

/// The projects a sandbox can be made of.
pub async fn published(state: &AppState) -> ServiceResult<Vec<ProjectRecord>> {
    Ok(state.store.list_projects().await?)
}

/// The project's record and its latest revision, compiled.
pub async fn latest_compiled(
    state: &AppState,
    name: &str,
) -> ServiceResult<(ProjectRecord, Arc<CompiledRevision>)> {
    let record = get(state, name).await?;
    let compiled = compiled_revision(state, name, record.latest_revision).await?;
    Ok((record, compiled))
}

/// The latest revision's spec text and files.
pub async fn latest(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ServiceResult<(String, ProjectFiles)> {
    caller.must_be_admin("read a project's files")?;
    let project = get(state, name).await?;
    let revision = state
        .store
        .get_revision(name, project.latest_revision)
        .await?
        .ok_or_else(|| missing(name))?;
    Ok((revision.spec, revision.files))
}

/// One revision in a project's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevisionEntry {
    pub revision: u32,
    /// When it was published (RFC 3339).
    pub published_at: String,
    /// Who published it: the account's email, `admin` (the token) or
    /// `system` (the demo set-up); empty for revisions older than authors.
    pub author: String,
}

/// A project's revisions, newest first, each with when and by whom.
pub async fn history(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ServiceResult<Vec<RevisionEntry>> {
    caller.must_be_admin("read a project's history")?;
    get(state, name).await?;
    let mut emails = std::collections::HashMap::new();
    let mut entries = Vec::new();
    for summary in state.store.list_revisions(name).await? {
        let author = match emails.get(&summary.author) {
            Some(email) => String::clone(email),
            None => {
                let email = match state.store.get_account(&summary.author).await? {
                    Some(account) => account.email,
                    None => summary.author.clone(),
                };
                emails.insert(summary.author, email.clone());
                email
            }
        };
        entries.push(RevisionEntry {
            revision: summary.revision,
            published_at: rfc3339(summary.created_at_ms),
            author,
        });
    }
    Ok(entries)
}

/// Whether a publish makes a project or a revision of an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    NewProject,
    NewRevision,
}

/// Compiles a spec and its files, then stores them as a new revision (or a
/// new project) and swaps it into every sandbox that follows the project.
/// A revision that does not compile is rejected whole: nothing changes.
/// The caller holds the edit lock ([`AppState::edits`]).
pub async fn publish(
    state: &AppState,
    caller: &Caller,
    name: &str,
    spec: String,
    files: ProjectFiles,
    kind: Publish,
) -> ServiceResult<(ProjectRecord, Arc<CompiledRevision>)> {
    let compiled = compile(
        spec.clone(),
        files.clone(),
        &state.config.limits,
        &state.config.scripts,
    )
    .await?;
    let record = match kind {
        Publish::NewProject => {
            state
                .store
                .create_project(name, &spec, &files, &caller.actor(), now_ms())
                .await?
        }
        Publish::NewRevision => {
            state
                .store
                .add_revision(name, &spec, &files, &caller.actor(), now_ms())
                .await?;
            get(state, name).await?
        }
    };
    state
        .registry
        .put_compiled(name, record.latest_revision, compiled.clone());
    let swapped = state
        .registry
        .swap_project(name, record.latest_revision, &compiled);
    tracing::info!(project = %name, revision = record.latest_revision, sandboxes = swapped, "revision live");
    Ok((record, compiled))
}

/// Checks a new project's name.
fn check_name(name: &str) -> ServiceResult<()> {
    if valid_project_name(name) {
        return Ok(());
    }
    Err(ServiceError::invalid(
        "/name",
        format!(
            "project name {name:?} must be 1-64 of a-z, 0-9, '-', '_', '.', starting with a letter or digit"
        ),
    ))
}

/// A spec's text fetched from `url` through the egress policy (private
/// addresses refused unless the server allows them), at most
/// `MAX_UPSTREAM_BODY` bytes.
pub async fn fetch_spec(state: &AppState, url: &str) -> ServiceResult<String> {
    let refused = |message: String| ServiceError::invalid("/url", message);
    let parsed = url::Url::parse(url).map_err(|e| refused(format!("{url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refused("the URL must be http:// or https://".to_owned()));
    }
    let request = sbx_engine::UpstreamRequest {
        method: "GET".to_owned(),
        url: url.to_owned(),
        headers: vec![(
            "accept".to_owned(),
            "application/yaml, application/json, */*".to_owned(),
        )],
        body: Vec::new(),
        timeout: std::time::Duration::from_secs(30),
    };
    let answer = state
        .upstream
        .send_async(request)
        .await
        .map_err(|e| refused(format!("fetching {url}: {e}")))?;
    if !(200..300).contains(&answer.status) {
        return Err(refused(format!("{url} answered {}", answer.status)));
    }
    String::from_utf8(answer.body).map_err(|_| refused(format!("{url} did not answer UTF-8 text")))
}

/// Imports a new project: its first revision.
pub async fn import(
    state: &AppState,
    caller: &Caller,
    name: &str,
    spec: String,
    files: ProjectFiles,
) -> ServiceResult<(ProjectRecord, Arc<CompiledRevision>)> {
    caller.must_be_admin("publish projects")?;
    check_name(name)?;
    let _edit = state.edits.lock().await;
    let published = publish(state, caller, name, spec, files, Publish::NewProject).await?;
    tracing::info!(project = %name, operations = published.1.operations.len(), "project imported");
    Ok(published)
}

/// A new revision with a new spec; the files given replace the latest
/// revision's, which are kept when `files` is `None`.
pub async fn replace_spec(
    state: &AppState,
    caller: &Caller,
    name: &str,
    spec: String,
    files: Option<ProjectFiles>,
) -> ServiceResult<(ProjectRecord, Arc<CompiledRevision>)> {
    caller.must_be_admin("publish projects")?;
    let _edit = state.edits.lock().await;
    let (_, kept) = latest(state, caller, name).await?;
    let files = files.unwrap_or(kept);
    publish(state, caller, name, spec, files, Publish::NewRevision).await
}

/// A new revision with the latest revision's files changed by `change`.
pub async fn edit_files(
    state: &AppState,
    caller: &Caller,
    name: &str,
    change: impl FnOnce(&mut ProjectFiles) -> ServiceResult<()>,
) -> ServiceResult<(ProjectRecord, Arc<CompiledRevision>)> {
    caller.must_be_admin("change projects")?;
    let _edit = state.edits.lock().await;
    let (spec, mut files) = latest(state, caller, name).await?;
    change(&mut files)?;
    publish(state, caller, name, spec, files, Publish::NewRevision).await
}

/// The kinds of files editable one at a time.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    Behaviours,
    Templates,
    Modules,
    Fixtures,
    Scenarios,
    Jobs,
    Lifecycles,
    Events,
    Functions,
}

impl FileKind {
    /// The project folder its files live in.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Behaviours => "behaviours",
            Self::Templates => "templates",
            Self::Modules => "modules",
            Self::Fixtures => "fixtures",
            Self::Scenarios => "scenarios",
            Self::Jobs => "jobs",
            Self::Lifecycles => "lifecycles",
            Self::Events => "events",
            Self::Functions => "functions",
        }
    }
}

/// A new revision with one file written (`text`) or removed (`None`);
/// removing a file that does not exist is `NotFound`.
pub async fn edit_file(
    state: &AppState,
    caller: &Caller,
    name: &str,
    kind: FileKind,
    item: &str,
    text: Option<String>,
) -> ServiceResult<(ProjectRecord, Arc<CompiledRevision>)> {
    let removing = text.is_none();
    edit_files(state, caller, name, |files| {
        let existed = apply_file(files, kind, item, text)?;
        if removing && !existed {
            return Err(ServiceError::NotFound(
                format!("project \"{name}\" has no {kind:?} file {item:?}").to_lowercase(),
            ));
        }
        Ok(())
    })
    .await
}

/// Writes or removes one file; whether it existed before.
fn apply_file(
    files: &mut ProjectFiles,
    kind: FileKind,
    item: &str,
    text: Option<String>,
) -> ServiceResult<bool> {
    let folder = kind.folder();
    if let Some(sources) = files.texts_mut(folder) {
        return Ok(match text {
            Some(text) => sources.insert(item.to_owned(), text).is_some(),
            None => sources.remove(item).is_some(),
        });
    }
    match text {
        None => Ok(files.remove_data(folder, item)),
        Some(text) => files
            .write_data(folder, item, &text)
            .map_err(|problems| project_problems(&problems)),
    }
}

/// Deletes a project with its revisions and sandboxes.
pub async fn delete(state: &AppState, caller: &Caller, name: &str) -> ServiceResult<()> {
    caller.must_be_admin("delete projects")?;
    let removed = state.store.delete_project(name).await?;
    for id in &removed {
        state.registry.remove(id);
        state.oauth.forget(id);
    }
    state.registry.forget_project(name);
    state.drift.forget(name);
    tracing::info!(project = %name, sandboxes = removed.len(), "project deleted");
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OperationCoverage {
    pub operation: String,
    /// Error statuses the spec declares (4xx/5xx; `4XX`/`default` as written).
    pub declared: Vec<String>,
    /// Those a scenario answers with.
    pub covered: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Coverage {
    pub declared: usize,
    pub covered: usize,
    pub items: Vec<OperationCoverage>,
}

/// What one operation looks like to a diff: its method and path, the
/// parameters it takes and the statuses it declares.
fn shape(op: &sbx_spec::Operation) -> (String, Vec<String>, Vec<String>) {
    let mut parameters: Vec<String> = op
        .parameters
        .iter()
        .map(|p| {
            let required = if p.required { ", required" } else { "" };
            format!("{} ({}{required})", p.name, p.location.as_str())
        })
        .collect();
    parameters.sort();
    let mut statuses: Vec<String> = op
        .responses
        .iter()
        .map(|r| match r.status {
            sbx_spec::StatusKey::Code(code) => code.to_string(),
            sbx_spec::StatusKey::Range(digit) => format!("{digit}XX"),
            sbx_spec::StatusKey::Default => "default".to_owned(),
        })
        .collect();
    statuses.sort();
    (format!("{} {}", op.method, op.path), parameters, statuses)
}

/// How one operation changed between two revisions.
#[derive(Debug, Serialize, ToSchema)]
pub struct OperationChange {
    pub operation: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// Each difference in a line: `path: GET /a → GET /b`,
    /// `+ parameter limit (query)`, `- status 404`.
    pub details: Vec<String>,
}

/// How one project file changed between two revisions.
#[derive(Debug, Serialize, ToSchema)]
pub struct FileChange {
    /// `behaviours/createPet`, `fixtures/accounts`, `env`, `project`.
    pub file: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
}

/// What two revisions of a project differ by.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionDiff {
    /// The contract a client sees: routes, parameters, statuses, by
    /// operation id.
    pub operations: Vec<OperationChange>,
    /// The behaviour and data files.
    pub files: Vec<FileChange>,
}

/// What two revisions of a project differ by: operations and files.
pub async fn diff(
    state: &AppState,
    caller: &Caller,
    name: &str,
    from: u32,
    to: u32,
) -> ServiceResult<RevisionDiff> {
    caller.must_be_admin("compare a project's revisions")?;
    let files = |revision| async move {
        state
            .store
            .get_revision(name, revision)
            .await?
            .map(|r| r.files)
            .ok_or_else(|| {
                ServiceError::NotFound(format!("revision {revision} of project \"{name}\""))
            })
    };
    let files = files(to)
        .await?
        .changes_since(&files(from).await?)
        .into_iter()
        .map(|(file, change)| FileChange { file, change })
        .collect();
    Ok(RevisionDiff {
        operations: operation_changes(state, name, from, to).await?,
        files,
    })
}

async fn operation_changes(
    state: &AppState,
    name: &str,
    from: u32,
    to: u32,
) -> ServiceResult<Vec<OperationChange>> {
    let old = compiled_revision(state, name, from).await?;
    let new = compiled_revision(state, name, to).await?;
    let shapes = |revision: &CompiledRevision| -> std::collections::BTreeMap<String, _> {
        revision
            .model
            .operations
            .iter()
            .map(|op| (op.id.clone(), shape(op)))
            .collect()
    };
    let (before, after) = (shapes(&old), shapes(&new));
    let mut changes = Vec::new();
    for (id, (route, parameters, statuses)) in &before {
        let Some((new_route, new_parameters, new_statuses)) = after.get(id) else {
            changes.push(OperationChange {
                operation: id.clone(),
                change: "removed",
                details: vec![route.clone()],
            });
            continue;
        };
        let mut details = Vec::new();
        if route != new_route {
            details.push(format!("{route} → {new_route}"));
        }
        for (what, old, new) in [
            ("parameter", parameters, new_parameters),
            ("status", statuses, new_statuses),
        ] {
            details.extend(
                old.iter()
                    .filter(|x| !new.contains(x))
                    .map(|x| format!("- {what} {x}")),
            );
            details.extend(
                new.iter()
                    .filter(|x| !old.contains(x))
                    .map(|x| format!("+ {what} {x}")),
            );
        }
        if !details.is_empty() {
            changes.push(OperationChange {
                operation: id.clone(),
                change: "changed",
                details,
            });
        }
    }
    for (id, (route, _, _)) in &after {
        if !before.contains_key(id) {
            changes.push(OperationChange {
                operation: id.clone(),
                change: "added",
                details: vec![route.clone()],
            });
        }
    }
    Ok(changes)
}

/// How the project's answers departed from its spec, most recent first.
pub async fn drift(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ServiceResult<Vec<crate::data_plane::drift::DriftFinding>> {
    caller.must_be_admin("read a project's drift")?;
    get(state, name).await?;
    Ok(state.drift.findings(name))
}

/// Which declared error responses of the latest revision a scenario produces.
pub async fn coverage(state: &AppState, caller: &Caller, name: &str) -> ServiceResult<Coverage> {
    caller.must_be_admin("read a project's coverage")?;
    let (_, compiled) = latest_compiled(state, name).await?;
    let mut items = Vec::new();
    for (index, operation) in compiled.model.operations.iter().enumerate() {
        let scenarios = compiled.behaviours.scenarios_of(OperationIndex(index));
        let mut declared = Vec::new();
        let mut covered = Vec::new();
        for response in &operation.responses {
            let (label, is_error) = match response.status {
                sbx_spec::StatusKey::Code(code) => (code.to_string(), code >= 400),
                sbx_spec::StatusKey::Range(digit) => (format!("{digit}XX"), digit >= 4),
                sbx_spec::StatusKey::Default => ("default".to_owned(), true),
            };
            if !is_error {
                continue;
            }
            if scenarios.iter().any(|s| response.status.matches(s.status)) {
                covered.push(label.clone());
            }
            declared.push(label);
        }
        if !declared.is_empty() {
            items.push(OperationCoverage {
                operation: operation.id.clone(),
                declared,
                covered,
            });
        }
    }
    Ok(Coverage {
        declared: items.iter().map(|i| i.declared.len()).sum(),
        covered: items.iter().map(|i| i.covered.len()).sum(),
        items,
    })
}
