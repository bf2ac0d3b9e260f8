//! The admin's projects: each with its revision, live sandboxes, error
//! coverage and drift; importing a project and publishing a revision from
//! a pasted (or file-read) OpenAPI document, its problems listed inline.

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};

use super::Visitor;
use crate::{
    app::{AppState, rfc3339},
    portal::{Base, Failure, audited, forged, session, templates::page},
    service::{ServiceError, projects, sandboxes},
};

/// What the form was sent with, shown again beside its errors.
#[derive(Serialize, Deserialize, Default)]
pub struct ProjectForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    spec: String,
    /// Where to fetch the document from, when `spec` is empty.
    #[serde(default)]
    url: String,
}

#[derive(Serialize)]
struct Problem {
    pointer: String,
    message: String,
}

#[derive(Serialize)]
struct ProjectRow {
    name: String,
    revision: u32,
    sandboxes: usize,
    updated_at: String,
}

#[derive(Serialize)]
struct ProjectsPage {
    #[serde(flatten)]
    base: Base,
    projects: Vec<ProjectRow>,
    form: ProjectForm,
    problems: Vec<Problem>,
}

/// A refusal as the form shows it: its field messages, and each problem
/// of a document that does not compile.
fn refusal(visitor: &Visitor, error: ServiceError) -> (Failure, Base, Vec<Problem>) {
    let problems = match &error {
        ServiceError::InvalidProject { errors, .. } => errors
            .iter()
            .map(|e| Problem {
                pointer: e.pointer.clone(),
                message: e.message.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let failure = Failure::from(error);
    let base = Base::of(visitor, "projects").failed(
        &failure,
        &[("/name", "name"), ("/spec", "spec"), ("/url", "url")],
    );
    (failure, base, problems)
}

pub async fn list(State(state): State<AppState>, visitor: Visitor) -> Response {
    projects_page(
        &state,
        &visitor,
        StatusCode::OK,
        Base::of(&visitor, "projects"),
        ProjectForm::default(),
        Vec::new(),
    )
    .await
}

async fn projects_page(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    base: Base,
    form: ProjectForm,
    problems: Vec<Problem>,
) -> Response {
    let records = match projects::list(state, &visitor.caller).await {
        Ok(records) => records,
        Err(error) => return super::missing(visitor, Failure::from(error)),
    };
    let projects = records
        .into_iter()
        .map(|p| ProjectRow {
            sandboxes: sandboxes::list(state, &visitor.caller, Some(&p.name)).len(),
            name: p.name.to_string(),
            revision: p.latest_revision,
            updated_at: rfc3339(p.updated_at_ms),
        })
        .collect();
    page(
        status,
        "projects.html",
        ProjectsPage {
            base,
            projects,
            form,
            problems,
        },
    )
}

#[derive(Deserialize)]
pub struct Posted {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: ProjectForm,
}

pub async fn import(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Form(Posted { csrf, form }): Form<Posted>,
) -> Response {
    if !session::form_is_ours(&state, &headers, &visitor, &csrf) {
        return forged();
    }
    let name = form.name.trim().to_owned();
    let spec = match (form.spec.trim().is_empty(), form.url.trim()) {
        (true, url) if !url.is_empty() => projects::fetch_spec(&state, url).await,
        _ => Ok(form.spec.clone()),
    };
    let imported = match spec {
        Ok(spec) => {
            projects::import(&state, &visitor.caller, &name, spec, Default::default()).await
        }
        Err(error) => Err(error),
    };
    match imported {
        Ok((record, _)) => {
            audited(
                &state,
                &visitor.caller,
                &headers,
                "POST /api/v1/projects",
                format!("/api/v1/projects/{}", record.name),
                201,
            )
            .await;
            let base = Base::of(&visitor, "projects").notice(format!(
                "Project {} is published (revision 1).",
                record.name
            ));
            project_page(
                &state,
                &visitor,
                &record.name,
                StatusCode::CREATED,
                base,
                ProjectForm::default(),
                Vec::new(),
            )
            .await
        }
        Err(error) => {
            let (failure, base, problems) = refusal(&visitor, error);
            projects_page(&state, &visitor, failure.status, base, form, problems).await
        }
    }
}

#[derive(Serialize)]
struct ProjectView {
    name: String,
    revision: u32,
    title: String,
    operations: usize,
    sandboxes: usize,
    warnings: Vec<Problem>,
}

#[derive(Serialize)]
struct FileLink {
    kind: &'static str,
    item: String,
}

#[derive(Serialize)]
struct ProjectPage {
    #[serde(flatten)]
    base: Base,
    project: ProjectView,
    coverage: projects::Coverage,
    drift: Vec<crate::data_plane::drift::DriftFinding>,
    history: Vec<projects::RevisionEntry>,
    files: Vec<FileLink>,
    form: ProjectForm,
    problems: Vec<Problem>,
}

pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
) -> Response {
    let base = Base::of(&visitor, "projects");
    project_page(
        &state,
        &visitor,
        &name,
        StatusCode::OK,
        base,
        ProjectForm::default(),
        Vec::new(),
    )
    .await
}

async fn project_page(
    state: &AppState,
    visitor: &Visitor,
    name: &str,
    status: StatusCode,
    base: Base,
    form: ProjectForm,
    problems: Vec<Problem>,
) -> Response {
    let found = async {
        let coverage = projects::coverage(state, &visitor.caller, name).await?;
        let drift = projects::drift(state, &visitor.caller, name).await?;
        let history = projects::history(state, &visitor.caller, name).await?;
        let (record, compiled) = projects::latest_compiled(state, name).await?;
        Ok::<_, ServiceError>((coverage, drift, history, record, compiled))
    };
    let files = match super::editor::files_of(state, visitor, name).await {
        Ok(files) => files
            .into_iter()
            .map(|(kind, item)| FileLink { kind, item })
            .collect(),
        Err(error) => return super::missing(visitor, Failure::from(error)),
    };
    let (coverage, drift, history, record, compiled) = match found.await {
        Ok(found) => found,
        Err(error) => return super::missing(visitor, Failure::from(error)),
    };
    let project = ProjectView {
        name: record.name.to_string(),
        revision: record.latest_revision,
        title: compiled.model.title.clone(),
        operations: compiled.operations.len(),
        sandboxes: sandboxes::list(state, &visitor.caller, Some(name)).len(),
        warnings: compiled
            .model
            .warnings
            .iter()
            .map(|w| Problem {
                pointer: w.pointer.clone(),
                message: w.message.clone(),
            })
            .collect(),
    };
    page(
        status,
        "project.html",
        ProjectPage {
            base,
            project,
            coverage,
            drift,
            history,
            files,
            form,
            problems,
        },
    )
}

pub async fn publish(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(Posted { csrf, form }): Form<Posted>,
) -> Response {
    if !session::form_is_ours(&state, &headers, &visitor, &csrf) {
        return forged();
    }
    match projects::replace_spec(&state, &visitor.caller, &name, form.spec.clone(), None).await {
        Ok((record, _)) => {
            audited(
                &state,
                &visitor.caller,
                &headers,
                "PUT /api/v1/projects/{name}/spec",
                format!("/api/v1/projects/{name}/spec"),
                200,
            )
            .await;
            let base = Base::of(&visitor, "projects")
                .notice(format!("Revision {} is published.", record.latest_revision));
            project_page(
                &state,
                &visitor,
                &name,
                StatusCode::OK,
                base,
                ProjectForm::default(),
                Vec::new(),
            )
            .await
        }
        Err(error) => {
            let (failure, base, problems) = refusal(&visitor, error);
            project_page(
                &state,
                &visitor,
                &name,
                failure.status,
                base,
                form,
                problems,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct OpenFile {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    item: String,
}

/// The "open the editor" form: on to the file's page.
pub async fn open_file(
    visitor: Visitor,
    Path(name): Path<String>,
    axum::extract::Query(open): axum::extract::Query<OpenFile>,
) -> Response {
    let item = open.item.trim();
    if item.is_empty() || item.contains('/') {
        let failure = Failure::field("/item", "name the file to open (no slashes)");
        let base = Base::of(&visitor, "projects").failed(&failure, &[]);
        return crate::portal::message(failure.status, base);
    }
    let item: String = form_urlencoded::byte_serialize(item.as_bytes()).collect();
    let kind: String = form_urlencoded::byte_serialize(open.kind.as_bytes()).collect();
    axum::response::IntoResponse::into_response(axum::response::Redirect::to(&format!(
        "/portal/projects/{name}/files/{kind}/{item}"
    )))
}

#[derive(Deserialize)]
pub struct Compared {
    from: Option<u32>,
    to: Option<u32>,
}

#[derive(Serialize)]
struct DiffPage {
    #[serde(flatten)]
    base: Base,
    project: String,
    from: u32,
    to: u32,
    changes: projects::RevisionDiff,
}

/// The operations two revisions differ by.
pub async fn diff(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    axum::extract::Query(compared): axum::extract::Query<Compared>,
) -> Response {
    let (Some(from), Some(to)) = (compared.from, compared.to) else {
        let failure = Failure::field("/from", "choose two revisions to compare");
        let base = Base::of(&visitor, "projects").failed(&failure, &[]);
        return crate::portal::message(failure.status, base);
    };
    match projects::diff(&state, &visitor.caller, &name, from, to).await {
        Ok(changes) => page(
            StatusCode::OK,
            "diff.html",
            DiffPage {
                base: Base::of(&visitor, "projects"),
                project: name,
                from,
                to,
                changes,
            },
        ),
        Err(error) => super::missing(&visitor, Failure::from(error)),
    }
}
