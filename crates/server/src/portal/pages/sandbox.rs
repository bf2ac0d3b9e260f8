//! A sandbox's page: addresses, keys, the scenario launcher, the test
//! clock, chaos, reset — each a form posted to the same services as the
//! control plane's routes.

use axum::{
    Extension, Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use sbx_store::{KeyKind, KeyPermissions};
use serde::{Deserialize, Serialize};

use super::{Confirmed, SandboxSummary, account::Done, duration_words, missing, posted_to};
use crate::{
    app::{AppState, now_ms, rfc3339},
    http::middleware::RequestId,
    portal::{Base, Failure, audited, changed, done, notice_of, session::Visitor, templates::page},
    runtime::registry::LiveSandbox,
    service::{
        ServiceError,
        clock::{self, ClockMove},
        keys::{self, NewKey},
        oauth::{self, NewClient},
        sandboxes,
    },
};

/// Jobs listed under the clock, at most.
const LISTED_JOBS: u32 = 20;

/// The clock's one-press moves.
const PRESETS: [(&str, &str); 4] = [
    ("PT1H", "+1 hour"),
    ("P1D", "+1 day"),
    ("P7D", "+7 days"),
    ("P30D", "+30 days"),
];

/// A secret shown once on the page that made it.
#[derive(Serialize)]
pub struct Revealed {
    kind: &'static str,
    secret: String,
}

impl Revealed {
    pub fn key(kind: &'static str, secret: String) -> Option<Self> {
        Some(Self { kind, secret })
    }
}

#[derive(Serialize)]
struct KeyRow {
    id: String,
    kind: &'static str,
    name: Option<String>,
    redacted: String,
    created_at: String,
    last_used_at: Option<String>,
    status: String,
    usable: bool,
}

#[derive(Serialize)]
struct Preset {
    duration: &'static str,
    label: &'static str,
}

#[derive(Serialize)]
struct JobRow {
    due_at: String,
    what: String,
}

#[derive(Serialize)]
struct ClockPanel {
    now: String,
    frozen: bool,
    /// How far ahead of real time, in words; `None` when it is not.
    ahead: Option<String>,
    presets: Vec<Preset>,
    pending: Vec<JobRow>,
}

#[derive(Serialize)]
struct ScenarioButton {
    name: String,
    status: u16,
    description: Option<String>,
}

#[derive(Serialize)]
struct OperationScenarios {
    operation: String,
    method: String,
    path: String,
    scenarios: Vec<ScenarioButton>,
}

/// What each form was sent with, shown again beside its error.
#[derive(Serialize, Default)]
pub struct Kept {
    key_form: KeyForm,
    clock_form: ClockForm,
    chaos_form: ChaosForm,
    client_form: ClientForm,
    ttl_form: TtlForm,
    seed_form: SeedForm,
    /// A client just registered, and its secret (shown once).
    client_secret: Option<ClientSecret>,
}

#[derive(Serialize, Deserialize, Default)]
struct SeedForm {
    #[serde(default)]
    records: String,
}

#[derive(Serialize, Deserialize, Default)]
struct TtlForm {
    #[serde(default)]
    ttl: String,
}

#[derive(Serialize, Deserialize, Default)]
struct ClientForm {
    #[serde(default)]
    client_name: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    public: Option<String>,
}

#[derive(Serialize)]
struct ClientSecret {
    id: String,
    secret: String,
}

#[derive(Serialize)]
struct ClientRow {
    id: String,
    name: String,
    kind: &'static str,
    redirect_uris: String,
    scopes: String,
}

#[derive(Serialize, Deserialize, Default)]
struct KeyForm {
    #[serde(default)]
    name: String,
}

#[derive(Serialize, Deserialize, Default)]
struct ClockForm {
    #[serde(default)]
    advance: String,
}

#[derive(Serialize, Deserialize, Default)]
struct ChaosForm {
    #[serde(default)]
    chaos: String,
}

#[derive(Serialize)]
struct SandboxPage {
    #[serde(flatten)]
    base: Base,
    sandbox: SandboxSummary,
    keys: Vec<KeyRow>,
    clients: Vec<ClientRow>,
    clock: ClockPanel,
    scenarios: Vec<OperationScenarios>,
    revealed: Option<Revealed>,
    #[serde(flatten)]
    kept: Kept,
}

fn here(id: &str) -> String {
    format!("/portal/sandboxes/{id}")
}

pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
    Query(query): Query<Done>,
) -> Response {
    let mut base = Base::of(&visitor, "sandboxes");
    if let Some(notice) = notice_of(query.done.as_deref()) {
        base = base.notice(notice);
    }
    match super::shown(&state, &visitor, &id) {
        Ok(sandbox) => sandbox_page(&state, &visitor, &sandbox, StatusCode::OK, base, None).await,
        Err(answer) => *answer,
    }
}

pub async fn sandbox_page(
    state: &AppState,
    visitor: &Visitor,
    sandbox: &LiveSandbox,
    status: StatusCode,
    base: Base,
    revealed: Option<Revealed>,
) -> Response {
    with_kept(
        state,
        visitor,
        sandbox,
        status,
        base,
        revealed,
        Kept::default(),
    )
    .await
}

async fn with_kept(
    state: &AppState,
    visitor: &Visitor,
    sandbox: &LiveSandbox,
    status: StatusCode,
    base: Base,
    revealed: Option<Revealed>,
    kept: Kept,
) -> Response {
    let now = now_ms();
    let keys = match keys::list(state, &visitor.caller, &sandbox.id).await {
        Ok((_, records)) => records
            .into_iter()
            .filter(|k| k.revoked_at_ms.is_none())
            .map(|k| KeyRow {
                id: k.id.to_string(),
                kind: k.kind.as_str(),
                usable: k.usable_at(now),
                status: match k.expires_at_ms {
                    Some(at) if at > now => format!("rolled; works {}", in_words(at - now)),
                    Some(_) => "expired".to_owned(),
                    None => "active".to_owned(),
                },
                name: k.name,
                redacted: k.redacted,
                created_at: rfc3339(k.created_at_ms),
                last_used_at: k.last_used_at_ms.map(rfc3339),
            })
            .collect(),
        Err(error) => return missing(visitor, Failure::from(error)),
    };
    let clients = match oauth::list_clients(state, &visitor.caller, &sandbox.id).await {
        Ok(clients) => clients
            .into_iter()
            .map(|c| ClientRow {
                kind: if c.secret_hash.is_some() {
                    "confidential"
                } else {
                    "public"
                },
                id: c.id,
                name: c.name,
                redirect_uris: c.redirect_uris.join(" "),
                scopes: c.scopes.join(" "),
            })
            .collect(),
        Err(error) => return missing(visitor, Failure::from(error)),
    };
    let clock = sandbox.clock();
    let sandbox_now = clock.now_ms(now);
    let pending = state
        .store
        .pending_jobs(&sandbox.id, None, LISTED_JOBS)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|job| JobRow {
            due_at: rfc3339(job.due_at_ms),
            what: job_words(&job.action),
        })
        .collect();
    let ahead = sandbox_now - now;
    let clock = ClockPanel {
        now: rfc3339(sandbox_now),
        frozen: clock.frozen_ms.is_some(),
        ahead: (ahead >= 1000).then(|| duration_words((ahead / 1000) as u64)),
        presets: PRESETS
            .iter()
            .map(|(duration, label)| Preset { duration, label })
            .collect(),
        pending,
    };
    let scenarios = sandboxes::scenarios(sandbox)
        .into_iter()
        .map(|op| OperationScenarios {
            operation: op.operation,
            method: op.method,
            path: op.path,
            scenarios: op
                .scenarios
                .into_iter()
                .map(|s| ScenarioButton {
                    name: s.name,
                    status: s.status,
                    description: s.description,
                })
                .collect(),
        })
        .collect();
    page(
        status,
        "sandbox.html",
        SandboxPage {
            base,
            sandbox: SandboxSummary::of(state, sandbox),
            keys,
            clients,
            clock,
            scenarios,
            revealed,
            kept,
        },
    )
}

fn in_words(ms: i64) -> String {
    format!("{} more", duration_words((ms.max(0) / 1000) as u64))
}

/// A job's action in a few words: "emit payment.succeeded", "script review".
fn job_words(action: &serde_json::Value) -> String {
    let text = |key: &str| action.get(key).and_then(|v| v.as_str()).unwrap_or("");
    match text("kind") {
        "emit" => format!("emit {}", text("event_type")),
        "script" => format!("run {}", text("name")),
        "transition" => format!(
            "{} {}: {} → {}",
            text("collection"),
            text("id"),
            text("from"),
            text("to")
        ),
        "update" => format!("update {} {}", text("collection"), text("id")),
        other => other.to_owned(),
    }
}

/// The page again with `failure` beside the form's fields.
async fn refused(
    state: &AppState,
    visitor: &Visitor,
    sandbox: &LiveSandbox,
    failure: Failure,
    fields: &[(&str, &str)],
    kept: Kept,
) -> Response {
    let base = Base::of(visitor, "sandboxes").failed(&failure, fields);
    with_kept(state, visitor, sandbox, failure.status, base, None, kept).await
}

/// The page again with a refusal that concerns no field of a form.
async fn refused_plainly(
    state: &AppState,
    visitor: &Visitor,
    sandbox: &LiveSandbox,
    error: ServiceError,
) -> Response {
    refused(
        state,
        visitor,
        sandbox,
        Failure::from(error),
        &[],
        Kept::default(),
    )
    .await
}

#[derive(Deserialize)]
pub struct NewKeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

pub async fn create_key(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<NewKeyForm>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let kept = Kept {
        key_form: KeyForm {
            name: form.name.clone(),
        },
        ..Kept::default()
    };
    let fields = [("/name", "name")];
    let Some(kind) = KeyKind::parse(&form.kind).filter(|k| *k != KeyKind::Restricted) else {
        let failure = Failure::field("/kind", "choose a secret or a publishable key");
        return refused(&state, &visitor, &sandbox, failure, &fields, kept).await;
    };
    let new = NewKey {
        kind,
        name: Some(form.name.trim().to_owned()).filter(|n| !n.is_empty()),
        permissions: KeyPermissions::default(),
    };
    match keys::create(&state, &visitor.caller, &id, new).await {
        Ok((record, secret)) => {
            audited(
                &state,
                &visitor.caller,
                &headers,
                "POST /api/v1/sandboxes/{id}/keys",
                format!("/api/v1/sandboxes/{id}/keys/{}", record.id),
                201,
            )
            .await;
            let base = Base::of(&visitor, "sandboxes");
            sandbox_page(
                &state,
                &visitor,
                &sandbox,
                StatusCode::CREATED,
                base,
                Revealed::key(kind.as_str(), secret),
            )
            .await
        }
        Err(error) => {
            refused(
                &state,
                &visitor,
                &sandbox,
                Failure::from(error),
                &fields,
                kept,
            )
            .await
        }
    }
}

pub async fn roll_key(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
    Form(form): Form<Confirmed>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    match keys::roll(&state, &visitor.caller, &id, &key, None).await {
        Ok((record, secret, _)) => {
            audited(
                &state,
                &visitor.caller,
                &headers,
                "POST /api/v1/sandboxes/{id}/keys/{key}/roll",
                format!("/api/v1/sandboxes/{id}/keys/{key}/roll"),
                201,
            )
            .await;
            let base = Base::of(&visitor, "sandboxes")
                .notice("The key is rolled: the old one keeps working for a while, then stops.");
            sandbox_page(
                &state,
                &visitor,
                &sandbox,
                StatusCode::CREATED,
                base,
                Revealed::key(record.kind.as_str(), secret),
            )
            .await
        }
        Err(error) => refused_plainly(&state, &visitor, &sandbox, error).await,
    }
}

pub async fn revoke_key(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path((id, key)): Path<(String, String)>,
    Form(form): Form<Confirmed>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    match keys::revoke(&state, &visitor.caller, &id, &key).await {
        Ok(()) => {
            changed(
                &state,
                &visitor,
                &headers,
                (
                    "DELETE /api/v1/sandboxes/{id}/keys/{key}",
                    format!("/api/v1/sandboxes/{id}/keys/{key}"),
                    204,
                ),
                &here(&id),
                "key-revoked",
            )
            .await
        }
        Err(error) => refused_plainly(&state, &visitor, &sandbox, error).await,
    }
}

#[derive(Deserialize)]
pub struct ScenarioForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    scenario: String,
}

pub async fn set_scenario(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ScenarioForm>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let scenario = Some(form.scenario.trim()).filter(|s| !s.is_empty());
    match sandboxes::set_scenario(&state, &visitor.caller, &id, scenario).await {
        Ok(_) => {
            changed(
                &state,
                &visitor,
                &headers,
                (
                    "PUT /api/v1/sandboxes/{id}/scenario",
                    format!("/api/v1/sandboxes/{id}/scenario"),
                    200,
                ),
                &here(&id),
                if scenario.is_some() {
                    "scenario-set"
                } else {
                    "scenario-cleared"
                },
            )
            .await
        }
        Err(error) => refused_plainly(&state, &visitor, &sandbox, error).await,
    }
}

#[derive(Deserialize)]
pub struct ClockChange {
    #[serde(default)]
    csrf: String,
    /// An ISO 8601 duration to advance by…
    #[serde(default)]
    advance: String,
    /// …or `freeze` / `resume`.
    #[serde(default)]
    action: String,
}

pub async fn move_clock(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    Form(form): Form<ClockChange>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let kept = Kept {
        clock_form: ClockForm {
            advance: form.advance.clone(),
        },
        ..Kept::default()
    };
    let fields = [("/advance", "advance")];
    let (change, code) = match (form.action.as_str(), form.advance.trim()) {
        ("freeze", _) => (ClockMove::Freeze, "clock-frozen"),
        ("resume", _) => (ClockMove::Resume, "clock-resumed"),
        ("", "") => {
            let failure = Failure::field(
                "/advance",
                "write how far to advance, as an ISO 8601 duration: P30D, PT2H, P1M",
            );
            return refused(&state, &visitor, &sandbox, failure, &fields, kept).await;
        }
        ("", duration) => (ClockMove::Advance(duration.to_owned()), "clock-moved"),
        (other, _) => {
            let failure =
                Failure::field("/action", format!("{other:?} is not a move of the clock"));
            return refused(&state, &visitor, &sandbox, failure, &fields, kept).await;
        }
    };
    let request_id = request_id
        .map(|Extension(id)| id.to_string())
        .unwrap_or_default();
    match clock::move_clock(&state, &visitor.caller, &id, change, &request_id).await {
        Ok(_) => {
            changed(
                &state,
                &visitor,
                &headers,
                (
                    "POST /api/v1/sandboxes/{id}/clock",
                    format!("/api/v1/sandboxes/{id}/clock"),
                    200,
                ),
                &here(&id),
                code,
            )
            .await
        }
        Err(error) => {
            refused(
                &state,
                &visitor,
                &sandbox,
                Failure::from(error),
                &fields,
                kept,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct ChaosChange {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    chaos: String,
}

pub async fn set_chaos(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ChaosChange>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let profile = Some(form.chaos.trim().to_owned()).filter(|p| !p.is_empty());
    let cleared = profile.is_none();
    let kept = Kept {
        chaos_form: ChaosForm {
            chaos: form.chaos.clone(),
        },
        ..Kept::default()
    };
    match sandboxes::set_chaos(&state, &visitor.caller, &id, profile).await {
        Ok(_) => {
            let action = if cleared {
                "DELETE /api/v1/sandboxes/{id}/chaos"
            } else {
                "PUT /api/v1/sandboxes/{id}/chaos"
            };
            audited(
                &state,
                &visitor.caller,
                &headers,
                action,
                format!("/api/v1/sandboxes/{id}/chaos"),
                200,
            )
            .await;
            done(
                &here(&id),
                if cleared {
                    "chaos-cleared"
                } else {
                    "chaos-set"
                },
            )
        }
        Err(error) => {
            refused(
                &state,
                &visitor,
                &sandbox,
                Failure::from(error),
                &[("/profile", "chaos")],
                kept,
            )
            .await
        }
    }
}

pub async fn reset(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<Confirmed>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    match sandboxes::reset(&state, &visitor.caller, &id).await {
        Ok(_) => {
            changed(
                &state,
                &visitor,
                &headers,
                (
                    "POST /api/v1/sandboxes/{id}/reset",
                    format!("/api/v1/sandboxes/{id}/reset"),
                    200,
                ),
                &here(&id),
                "reset",
            )
            .await
        }
        Err(error) => refused_plainly(&state, &visitor, &sandbox, error).await,
    }
}

#[derive(Deserialize)]
pub struct NewClientForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: ClientForm,
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

pub async fn create_client(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(NewClientForm { csrf, form }): Form<NewClientForm>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let new = NewClient {
        name: form.client_name.trim().to_owned(),
        redirect_uris: words(&form.redirect_uris),
        scopes: words(&form.scopes),
        public: form.public.is_some(),
    };
    match oauth::create_client(&state, &visitor.caller, &id, new).await {
        Ok((client, secret)) => {
            let target = format!("/api/v1/sandboxes/{id}/oauth/clients/{}", client.id);
            audited(
                &state,
                &visitor.caller,
                &headers,
                "POST /api/v1/sandboxes/{id}/oauth/clients",
                target,
                201,
            )
            .await;
            let kept = Kept {
                client_secret: secret.map(|secret| ClientSecret {
                    id: client.id.clone(),
                    secret,
                }),
                ..Kept::default()
            };
            let base = Base::of(&visitor, "sandboxes")
                .notice(format!("Client {} is registered.", client.id));
            with_kept(
                &state,
                &visitor,
                &sandbox,
                StatusCode::CREATED,
                base,
                None,
                kept,
            )
            .await
        }
        Err(error) => {
            let fields = [
                ("/name", "client_name"),
                ("/redirect_uris", "redirect_uris"),
                ("/scopes", "scopes"),
            ];
            let kept = Kept {
                client_form: form,
                ..Kept::default()
            };
            refused(
                &state,
                &visitor,
                &sandbox,
                Failure::from(error),
                &fields,
                kept,
            )
            .await
        }
    }
}

pub async fn delete_client(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path((id, client)): Path<(String, String)>,
    Form(form): Form<Confirmed>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &form.csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    match oauth::delete_client(&state, &visitor.caller, &id, &client).await {
        Ok(()) => {
            let call = (
                "DELETE /api/v1/sandboxes/{id}/oauth/clients/{client_id}",
                format!("/api/v1/sandboxes/{id}/oauth/clients/{client}"),
                204,
            );
            changed(
                &state,
                &visitor,
                &headers,
                call,
                &here(&id),
                "client-deleted",
            )
            .await
        }
        Err(error) => refused_plainly(&state, &visitor, &sandbox, error).await,
    }
}

#[derive(Deserialize)]
pub struct NewTtl {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: TtlForm,
}

pub async fn extend(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(NewTtl { csrf, form }): Form<NewTtl>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let extended = match super::dashboard::ttl_seconds(&form.ttl) {
        Ok(ttl) => sandboxes::extend(&state, &visitor.caller, &id, ttl)
            .await
            .map_err(Failure::from),
        Err(failure) => Err(failure),
    };
    match extended {
        Ok(_) => {
            let call = (
                "PUT /api/v1/sandboxes/{id}/ttl",
                format!("/api/v1/sandboxes/{id}/ttl"),
                200,
            );
            changed(&state, &visitor, &headers, call, &here(&id), "extended").await
        }
        Err(failure) => {
            let kept = Kept {
                ttl_form: form,
                ..Kept::default()
            };
            refused(
                &state,
                &visitor,
                &sandbox,
                failure,
                &[("/ttl_seconds", "ttl")],
                kept,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct NewRecords {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: SeedForm,
}

pub async fn seed(
    State(state): State<AppState>,
    visitor: Visitor,
    headers: HeaderMap,
    request_id: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    Form(NewRecords { csrf, form }): Form<NewRecords>,
) -> Response {
    let sandbox = match posted_to(&state, &headers, &visitor, &id, &csrf) {
        Ok(sandbox) => sandbox,
        Err(answer) => return *answer,
    };
    let records = match serde_json::from_str::<serde_json::Value>(&form.records) {
        Ok(serde_json::Value::Object(records)) => Ok(records),
        _ => Err(Failure::field(
            "/records",
            "write a JSON object of records by collection: {\"customers\": [{\"name\": \"Ada\"}]}",
        )),
    };
    let request_id = request_id
        .map(|Extension(id)| id.to_string())
        .unwrap_or_default();
    let loaded = match records {
        Ok(records) => sandboxes::seed(&state, &visitor.caller, &id, records, &request_id)
            .await
            .map_err(Failure::from),
        Err(failure) => Err(failure),
    };
    match loaded {
        Ok(created) => {
            let target = format!("/api/v1/sandboxes/{id}/seed");
            audited(
                &state,
                &visitor.caller,
                &headers,
                "POST /api/v1/sandboxes/{id}/seed",
                target,
                201,
            )
            .await;
            let counts: Vec<String> = created
                .iter()
                .map(|(collection, ids)| format!("{collection} {}", ids.len()))
                .collect();
            let base =
                Base::of(&visitor, "sandboxes").notice(format!("Loaded: {}.", counts.join(", ")));
            with_kept(
                &state,
                &visitor,
                &sandbox,
                StatusCode::CREATED,
                base,
                None,
                Kept::default(),
            )
            .await
        }
        Err(failure) => {
            let kept = Kept {
                seed_form: form,
                ..Kept::default()
            };
            refused(
                &state,
                &visitor,
                &sandbox,
                failure,
                &[("/", "records")],
                kept,
            )
            .await
        }
    }
}
