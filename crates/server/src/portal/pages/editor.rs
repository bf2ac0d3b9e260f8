//! The behaviour editor: a project's scripts, templates, modules, jobs and
//! data files (fixtures, scenarios, lifecycles, events), saved through the same service as `PUT /api/v1/projects/{name}/{kind}/
//! {item}` — each save a new revision, live at once — or, when the text
//! does not compile, shown again with each problem at its line.

use axum::{
    Form,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};

use super::Visitor;
use crate::{
    app::AppState,
    portal::{Base, Failure, audited, forged, session, templates::page},
    service::{
        ServiceError,
        projects::{self, FileKind},
    },
};

/// The kinds the editor opens, with the language each is written in.
pub const EDITABLE: [(&str, FileKind, &str); 9] = [
    ("behaviours", FileKind::Behaviours, "Rhai script"),
    ("templates", FileKind::Templates, "minijinja template"),
    ("modules", FileKind::Modules, "Rhai module"),
    ("jobs", FileKind::Jobs, "Rhai job"),
    ("fixtures", FileKind::Fixtures, "YAML records"),
    ("scenarios", FileKind::Scenarios, "YAML scenario pack"),
    ("lifecycles", FileKind::Lifecycles, "YAML state machine"),
    ("events", FileKind::Events, "YAML event type"),
    (
        "functions",
        FileKind::Functions,
        "Lambda handler (Python or Node.js)",
    ),
];

#[derive(Serialize)]
struct Problem {
    line: Option<usize>,
    column: Option<usize>,
    message: String,
}

#[derive(Serialize)]
struct EditorPage {
    #[serde(flatten)]
    base: Base,
    project: String,
    kind: &'static str,
    item: String,
    language: &'static str,
    exists: bool,
    text: String,
    problems: Vec<Problem>,
    lines: Vec<String>,
    bad_lines: Vec<usize>,
}

/// The editable files of the project's latest revision, as `(kind, item)`.
pub async fn files_of(
    state: &AppState,
    visitor: &Visitor,
    name: &str,
) -> Result<Vec<(&'static str, String)>, ServiceError> {
    let (_, files) = projects::latest(state, &visitor.caller, name).await?;
    Ok(EDITABLE
        .iter()
        .flat_map(|(kind, file_kind, _)| {
            let names: Vec<String> = match files.texts(file_kind.folder()) {
                Some(sources) => sources.keys().cloned().collect(),
                None => files
                    .data(kind)
                    .map(|data| data.keys().cloned().collect())
                    .unwrap_or_default(),
            };
            names.into_iter().map(|item| (*kind, item))
        })
        .collect())
}

fn kind_of(kind: &str) -> Option<(&'static str, FileKind, &'static str)> {
    EDITABLE.iter().copied().find(|(name, _, _)| *name == kind)
}

fn not_editable(visitor: &Visitor, kind: &str) -> Response {
    let failure = Failure {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "{kind:?} is not a kind of project file: the editor opens behaviours, templates, modules, jobs, fixtures, scenarios, lifecycles and events."
        ),
        fields: Vec::new(),
    };
    super::missing(visitor, failure)
}

async fn current_text(
    state: &AppState,
    visitor: &Visitor,
    name: &str,
    kind: FileKind,
    item: &str,
) -> Result<Option<String>, ServiceError> {
    let (_, files) = projects::latest(state, &visitor.caller, name).await?;
    Ok(match files.texts(kind.folder()) {
        Some(sources) => sources.get(item).cloned(),
        None => files.data_text(kind.folder(), item),
    })
}

pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((name, kind, item)): Path<(String, String, String)>,
) -> Response {
    let Some((kind, file_kind, language)) = kind_of(&kind) else {
        return not_editable(&visitor, &kind);
    };
    match current_text(&state, &visitor, &name, file_kind, &item).await {
        Ok(text) => page(
            StatusCode::OK,
            "editor.html",
            EditorPage {
                base: Base::of(&visitor, "projects"),
                project: name,
                kind,
                item,
                language,
                exists: text.is_some(),
                text: text.unwrap_or_default(),
                problems: Vec::new(),
                lines: Vec::new(),
                bad_lines: Vec::new(),
            },
        ),
        Err(error) => super::missing(&visitor, Failure::from(error)),
    }
}

#[derive(Deserialize)]
pub struct Saved {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
}

pub async fn save(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path((name, kind, item)): Path<(String, String, String)>,
    Form(form): Form<Saved>,
) -> Response {
    if !session::form_is_ours(&state, &headers, &visitor, &form.csrf) {
        return forged();
    }
    let Some((kind, file_kind, language)) = kind_of(&kind) else {
        return not_editable(&visitor, &kind);
    };
    // Browsers send text areas' line ends as CRLF.
    let text = form.text.replace("\r\n", "\n");
    let saved = projects::edit_file(
        &state,
        &visitor.caller,
        &name,
        file_kind,
        &item,
        Some(text.clone()),
    )
    .await;
    let (status, base, problems) = match saved {
        Ok((record, _)) => {
            let target = format!("/api/v1/projects/{name}/{kind}/{item}");
            audited(
                &state,
                &visitor.caller,
                &headers,
                "PUT /api/v1/projects/{name}/{kind}/{item}",
                target,
                200,
            )
            .await;
            let notice = format!("Saved: revision {} is live.", record.latest_revision);
            (
                StatusCode::OK,
                Base::of(&visitor, "projects").notice(notice),
                Vec::new(),
            )
        }
        Err(ServiceError::InvalidProject { errors, .. }) => {
            let problems: Vec<Problem> = errors
                .into_iter()
                .map(|e| Problem {
                    line: e.line,
                    column: e.column,
                    message: e.message,
                })
                .collect();
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Base::of(&visitor, "projects"),
                problems,
            )
        }
        Err(error) => {
            let failure = Failure::from(error);
            let base = Base::of(&visitor, "projects").failed(&failure, &[]);
            (failure.status, base, Vec::new())
        }
    };
    let lines: Vec<String> = if problems.is_empty() {
        Vec::new()
    } else {
        text.lines().map(str::to_owned).collect()
    };
    // A parser that ran out of text reports the line after the last one.
    let bad_lines = problems
        .iter()
        .filter_map(|p| p.line)
        .map(|line| line.min(lines.len().max(1)))
        .collect();
    page(
        status,
        "editor.html",
        EditorPage {
            base,
            project: name,
            kind,
            item,
            language,
            exists: true,
            text,
            problems,
            lines,
            bad_lines,
        },
    )
}
