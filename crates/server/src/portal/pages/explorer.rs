//! The API explorer: every operation of the revision a sandbox serves,
//! grouped by tag, with its docs and a request form made from the spec.
//! The browser sends the request itself (see `assets/explorer.js`), so
//! what it shows is what a client gets.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use sbx_spec::{Operation, ParamLocation, SecurityScheme, StatusKey, synth};
use serde::Serialize;
use serde_json::Value;

use super::{SandboxSummary, Visitor, shown};
use crate::{
    app::AppState,
    portal::{Base, templates::page},
    runtime::registry::LiveSandbox,
    service::sandboxes,
};

/// Longest docs text shown per operation, in characters.
const MAX_DOC_CHARS: usize = 2_000;
/// Rows of a body's text area, at most.
const MAX_BODY_ROWS: usize = 24;

#[derive(Serialize)]
struct Group {
    tag: String,
    operations: Vec<OperationForm>,
}

#[derive(Serialize)]
struct OperationForm {
    id: String,
    method: String,
    path: String,
    summary: Option<String>,
    description: Option<String>,
    parameters: Vec<ParameterField>,
    media_type: Option<String>,
    body: String,
    body_rows: usize,
    body_required: bool,
    scenarios: Vec<ScenarioChoice>,
    statuses: Vec<u16>,
    examples: Vec<String>,
    /// Where the key goes: `bearer`, `basic`, `header`, `query` or
    /// `cookie` (with `key_name`); empty when the operation needs none.
    key_in: &'static str,
    key_name: String,
}

#[derive(Serialize)]
struct ParameterField {
    name: String,
    location: &'static str,
    required: bool,
    r#type: Option<String>,
    description: Option<String>,
    example: String,
}

#[derive(Serialize)]
struct ScenarioChoice {
    name: String,
    status: u16,
    description: Option<String>,
}

#[derive(Serialize)]
struct ExplorerPage {
    #[serde(flatten)]
    base: Base,
    sandbox: SandboxSummary,
    title: String,
    groups: Vec<Group>,
}

pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Response {
    let sandbox = match shown(&state, &visitor, &id) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let serving = sandbox.serving();
    page(
        StatusCode::OK,
        "explorer.html",
        ExplorerPage {
            base: Base::of(&visitor, "sandboxes"),
            sandbox: SandboxSummary::of(&state, &sandbox),
            title: serving.compiled.model.title.clone(),
            groups: groups(&sandbox),
        },
    )
}

/// The operations by their first tag, in the spec's order of first use.
fn groups(sandbox: &LiveSandbox) -> Vec<Group> {
    let compiled = sandbox.serving().compiled;
    let scenarios = sandboxes::scenarios(sandbox);
    let patterns = synth::PatternCache::default();
    let mut groups: Vec<Group> = Vec::new();
    for op in &compiled.model.operations {
        let raw = sbx_spec::pointer::get(&compiled.model.document, &op.pointer);
        let tag = raw
            .and_then(|r| r.get("tags"))
            .and_then(|t| t.get(0))
            .and_then(Value::as_str)
            .unwrap_or("Operations")
            .to_owned();
        let mut form = operation_form(&compiled.model.document, op, raw, &patterns, &scenarios);
        (form.key_in, form.key_name) = key_placement(&compiled.model.security_schemes, op);
        match groups.iter_mut().find(|g| g.tag == tag) {
            Some(group) => group.operations.push(form),
            None => groups.push(Group {
                tag,
                operations: vec![form],
            }),
        }
    }
    groups
}

fn text_of(value: Option<&Value>, key: &str) -> Option<String> {
    let text = value?.get(key)?.as_str()?.trim();
    (!text.is_empty()).then(|| text.chars().take(MAX_DOC_CHARS).collect())
}

fn operation_form(
    document: &Value,
    op: &Operation,
    raw: Option<&Value>,
    patterns: &synth::PatternCache,
    scenarios: &[sandboxes::OperationScenarios],
) -> OperationForm {
    let parameters = op
        .parameters
        .iter()
        .filter(|p| p.location != ParamLocation::Cookie)
        .map(|p| ParameterField {
            name: p.name.clone(),
            location: p.location.as_str(),
            required: p.required,
            r#type: p
                .schema
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_owned),
            description: text_of(Some(&p.schema), "description"),
            example: ["example", "default"]
                .iter()
                .find_map(|k| p.schema.get(*k))
                .or_else(|| p.schema.get("enum").and_then(|e| e.get(0)))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .unwrap_or_default(),
        })
        .collect();
    let media = op.request_body.as_ref().and_then(|body| {
        body.content
            .iter()
            .find(|m| m.media_type.contains("json"))
            .or_else(|| body.content.first())
    });
    let body = media.map(|media| {
        let value = media.examples.first().map(|(_, v)| v.clone()).or_else(|| {
            media.schema_pointer.as_ref().map(|pointer| {
                let seed = synth::seed_from([op.id.as_bytes(), b"explorer"]);
                synth::synthesize_valid(document, pointer, seed, patterns, None).0
            })
        });
        match value {
            Some(Value::String(text)) => text,
            Some(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
            None => String::new(),
        }
    });
    let body = body.unwrap_or_default();
    let mut statuses: Vec<u16> = op
        .responses
        .iter()
        .filter_map(|r| match r.status {
            StatusKey::Code(code) => Some(code),
            _ => None,
        })
        .collect();
    statuses.sort_unstable();
    let mut examples: Vec<String> = op
        .responses
        .iter()
        .flat_map(|r| r.content.iter())
        .flat_map(|m| m.examples.iter().map(|(name, _)| name.clone()))
        .collect();
    examples.sort();
    examples.dedup();
    OperationForm {
        id: op.id.clone(),
        method: op.method.clone(),
        path: op.path.clone(),
        summary: text_of(raw, "summary"),
        description: text_of(raw, "description"),
        parameters,
        media_type: media.map(|m| m.media_type.clone()),
        body_rows: body.lines().count().clamp(3, MAX_BODY_ROWS),
        body,
        body_required: op.request_body.as_ref().is_some_and(|b| b.required),
        scenarios: scenarios
            .iter()
            .filter(|s| s.operation == op.id)
            .flat_map(|s| s.scenarios.iter())
            .map(|s| ScenarioChoice {
                name: s.name.clone(),
                status: s.status,
                description: s.description.clone(),
            })
            .collect(),
        statuses,
        examples,
        key_in: "",
        key_name: String::new(),
    }
}

/// Where a sandbox key satisfies the operation's first requirement that a
/// key can satisfy (an OAuth 2 scheme takes a token the same way).
fn key_placement(
    schemes: &std::collections::BTreeMap<String, SecurityScheme>,
    op: &Operation,
) -> (&'static str, String) {
    op.security
        .iter()
        .flat_map(|requirement| requirement.schemes.iter())
        .find_map(|name| match schemes.get(name)? {
            SecurityScheme::ApiKey { name, location } => Some((location.as_str(), name.clone())),
            SecurityScheme::Basic => Some(("basic", String::new())),
            SecurityScheme::Bearer | SecurityScheme::OAuth2 => Some(("bearer", String::new())),
            SecurityScheme::Unsupported(_) => None,
        })
        .unwrap_or(("", String::new()))
}
