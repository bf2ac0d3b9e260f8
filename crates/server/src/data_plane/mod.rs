//! Requests addressed to a sandbox: resolve it, hand the request to the
//! engine, write the answer. Nothing here touches the database unless the
//! sandbox is unknown (to tell "expired" from "never existed").

pub mod drift;
pub mod egress;
pub mod error_docs;
pub mod idempotency;
pub mod mock;
pub mod oauth;

use std::sync::Arc;

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use base64::Engine;
use sbx_engine::{
    API_KEY_PREFIX, AuthMode, BaseUrl, ChaosEffect, ChaosSpec, CompiledRevision, Credential,
    Decision, Drift, HeaderSource, Journal, KeyVerdict, ProblemType, RouteMatch, SandboxContext,
    SandboxState, Upstream,
};
use sbx_store::IdempotentAnswer;
use serde_json::{Map, Value};

use crate::{
    app::{AppState, now_ms},
    data_plane::idempotency::{Check, Idempotency, Pending},
    runtime::ids::{KeyHash, parse_sandbox_id},
    runtime::keys::LiveKey,
    runtime::oauth::Verified,
    runtime::rate::{KeyTag, Limiters},
};
use crate::{runtime::registry::LiveSandbox, workers::user_work::UserWork};

static SANDBOX_ID: HeaderName = HeaderName::from_static("x-sandbox-id");
static CHAOS: HeaderName = HeaderName::from_static("x-sandbox-chaos");

/// What chaos did, for the `X-Sandbox-Chaos` header.
fn chaos_note(chaos: &ChaosEffect) -> Option<HeaderValue> {
    let mut parts = Vec::new();
    if !chaos.delay.is_zero() {
        parts.push(format!("latency={}ms", chaos.delay.as_millis()));
    }
    if let Some(status) = chaos.error {
        parts.push(format!("error={status}"));
    }
    if !chaos.slow.is_zero() {
        parts.push(format!("slow={}ms", chaos.slow.as_millis()));
    }
    HeaderValue::from_str(&parts.join(","))
        .ok()
        .filter(|_| !parts.is_empty())
}

/// An answer whose body fails before its first byte: hyper closes the
/// connection without sending anything (chaos `drop`).
fn dropped() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::other("dropped by chaos"))
    });
    Response::new(Body::from_stream(failing))
}

/// The same answer with its body sent in ten pieces spread over `over`.
async fn trickled(response: Response, over: std::time::Duration) -> Response {
    use futures_util::StreamExt as _;
    const PIECES: usize = 10;
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let piece = bytes.len().div_ceil(PIECES).max(1);
    let chunks: Vec<axum::body::Bytes> = bytes
        .chunks(piece)
        .map(axum::body::Bytes::copy_from_slice)
        .collect();
    let pause = over / u32::try_from(chunks.len().max(1)).unwrap_or(1);
    let stream = futures_util::stream::iter(chunks).then(move |chunk| async move {
        tokio::time::sleep(pause).await;
        Ok::<_, std::io::Error>(chunk)
    });
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from_stream(stream))
}

/// Up to this many headers, a lookup scans instead of hashing.
const SCANNED_HEADERS: usize = 8;

/// Header access for the engine over axum's map.
pub(crate) struct EngineHeaders<'a>(pub &'a HeaderMap);

impl HeaderSource for EngineHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        // The names the engine reads on every request, without parsing
        // them again each time.
        static PREFER: HeaderName = HeaderName::from_static("prefer");
        static CHAOS: HeaderName = HeaderName::from_static("x-chaos");
        static SCENARIO: HeaderName = HeaderName::from_static("x-sandbox-scenario");
        let known = match name {
            "content-type" => &header::CONTENT_TYPE,
            "accept" => &header::ACCEPT,
            "authorization" => &header::AUTHORIZATION,
            "prefer" => &PREFER,
            "x-chaos" => &CHAOS,
            "x-sandbox-scenario" => &SCENARIO,
            _ => return self.0.get(name).and_then(|v| v.to_str().ok()),
        };
        // A request has a handful of headers: comparing names (a tag for
        // the standard ones) costs less than hashing the one looked for.
        let found = if self.0.len() <= SCANNED_HEADERS {
            self.0.iter().find(|(n, _)| *n == known).map(|(_, v)| v)
        } else {
            self.0.get(known)
        };
        found.and_then(|v| v.to_str().ok())
    }

    fn get_all(&self, name: &str) -> Vec<&str> {
        self.0
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
            .collect()
    }
}

pub(crate) fn to_axum(response: sbx_engine::Response) -> Response {
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Room for what is added on the way out: the sandbox id, the request
    // id and CORS's two.
    out.headers_mut().reserve(response.headers.len() + 4);
    for (name, value) in response.headers {
        // Owned: the value's bytes move into the header, not copied.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::try_from(value),
        ) {
            out.headers_mut().append(name, value);
        }
    }
    out
}

/// What an access token sent for an OAuth scheme is, from its verdict
/// taken before the pipeline ran (`None`: no JWT was sent).
fn token_verdict(verdict: Option<&Result<Verified, String>>, scopes: &[String]) -> KeyVerdict {
    match verdict {
        Some(Ok(verified)) if verified.has_scopes(scopes) => KeyVerdict::Valid,
        Some(Ok(_)) => KeyVerdict::InsufficientScope,
        Some(Err(why)) => KeyVerdict::InvalidToken(why.clone()),
        None => KeyVerdict::InvalidToken(
            "an OAuth access token (a JWT) from the sandbox's /__sbx/oauth/token is expected; an API key is not one"
                .to_owned(),
        ),
    }
}

/// The bearer token of `Authorization` when it looks like a JWT (three
/// dot-separated parts; API keys never hold a dot).
fn bearer_jwt(headers: &HeaderMap) -> Option<&str> {
    crate::http::access::bearer_token(headers)
        .filter(|token| token.bytes().filter(|b| *b == b'.').count() == 2)
}

fn problem(kind: ProblemType, detail: &str) -> Response {
    to_axum(kind.response(detail))
}

/// Which API keys belong to a sandbox.
pub enum KeyCheck {
    /// Its keys in use, and the verdict on the access token sent, if any
    /// (checked before the pipeline runs: verifying may load the keys).
    Keys(Arc<[LiveKey]>, Option<Result<Verified, String>>),
    /// Any `sk_test_` key (`sbx mock`).
    AnyTestKey,
}

/// What a request is held to: the keys it may authenticate with, and
/// whether rate limits apply (not with the admin token).
pub struct Checks {
    pub keys: KeyCheck,
    pub unlimited: bool,
}

/// A sandbox as one request sees it: owned, because a request that runs a
/// script or forwards is served on the blocking pool.
pub struct Target {
    /// Shared: `sbx mock` makes it once, not per request.
    pub id: Arc<str>,
    /// The id as `X-Sandbox-Id` sends it.
    pub id_header: Option<HeaderValue>,
    pub seed: u64,
    pub auth: AuthMode,
    pub keys: KeyCheck,
    pub compiled: Arc<CompiledRevision>,
    pub state: Arc<SandboxState>,
    pub env: Arc<Map<String, Value>>,
    pub upstream: Option<Arc<dyn Upstream>>,
    /// Where function behaviours run; `None` answers them 503.
    pub functions: Option<Arc<dyn sbx_engine::Functions>>,
    /// The sandbox's chaos profile.
    pub chaos: Option<Arc<ChaosSpec>>,
    pub default_scenario: Option<Arc<str>>,
    /// The sandbox clock when the request arrived.
    pub now_ms: i64,
    /// Where a request that must block runs.
    pub work: UserWork,
    /// Its rate limits.
    pub limiters: Arc<Limiters>,
    /// The request carries the admin token in `X-Sandbox-Admin-Token`:
    /// rate limits do not apply.
    pub unlimited: bool,
    /// The rate limits' verdict, counted once however often the pipeline
    /// runs (a request that yields runs again on the blocking pool).
    pub rate_verdict: std::sync::OnceLock<Result<(), sbx_engine::RateLimited>>,
}

/// A response and what its request changed.
pub struct Served {
    pub response: Response,
    pub journal: Journal,
    pub drift: Option<Drift>,
    /// The idempotency key held until the answer is committed, and the
    /// answer to store for it.
    pub idempotent: Option<(Pending, Option<IdempotentAnswer>)>,
    /// The exchange, for the request log (when asked for).
    pub captured: Option<Captured>,
    /// The operation the engine routed to, when it ran.
    pub operation: Option<usize>,
}

impl Served {
    /// An answer made before the engine ran (a refusal, a kept idempotent
    /// answer, a docs page): nothing changed.
    fn before_engine(
        target: &Target,
        answer: sbx_engine::Response,
        captured: Option<Captured>,
    ) -> Self {
        let mut response = to_axum(answer);
        if let Some(id) = &target.id_header {
            response
                .headers_mut()
                .insert(SANDBOX_ID.clone(), id.clone());
        }
        Self {
            response,
            journal: Journal::default(),
            drift: None,
            idempotent: None,
            captured,
            operation: None,
        }
    }
}

/// A request and its answer as sent, for the request log.
#[derive(Default)]
pub struct Captured {
    pub request_headers: Vec<(String, String)>,
    pub request_body: axum::body::Bytes,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response_body: axum::body::Bytes,
    /// How the engine decided.
    pub trace: Vec<sbx_engine::Step>,
}

impl Captured {
    fn request(parts: &Parts, body: &axum::body::Bytes) -> Self {
        Self {
            request_headers: parts
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            request_body: body.clone(),
            ..Self::default()
        }
    }

    fn answer(mut self, response: &sbx_engine::Response) -> Self {
        self.status = response.status;
        self.response_headers = response.headers.clone();
        self.response_body = response.body.clone();
        self
    }
}

/// The engine's view of a request.
pub(crate) fn engine_request<'a>(
    parts: &'a Parts,
    path: &'a str,
    headers: &'a EngineHeaders<'a>,
    body: &'a [u8],
) -> sbx_engine::Request<'a> {
    sbx_engine::Request {
        method: parts.method.as_str(),
        path,
        query: parts.uri.query(),
        headers,
        body,
    }
}

/// The URL the client reached the sandbox's paths under: its `Host` and
/// the path prefix (`/sbx/{id}`) above `path`; empty without a `Host`.
fn base_url<'a>(parts: &'a Parts, path: &str) -> BaseUrl<'a> {
    let Some(host) = parts
        .headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', '"', '\\', ' ']))
    else {
        return BaseUrl::default();
    };
    let full = parts.uri.path();
    let prefix = full.strip_suffix(path).unwrap_or("");
    let scheme = match parts.headers.get("x-forwarded-proto").map(|p| p.as_bytes()) {
        Some(b"https") => "https",
        _ => "http",
    };
    BaseUrl::new(scheme, host, prefix)
}

/// One run of the pipeline; `may_block` on the blocking pool only, where a
/// yielded request runs again with its first run's chaos draw.
fn run(
    target: &Target,
    parts: &Parts,
    path: &str,
    body: &[u8],
    may_block: bool,
    chaos_draw: Option<u64>,
    trace: bool,
) -> Decision {
    // The key that authenticated, for its own rate limit.
    let authenticated = std::sync::OnceLock::new();
    let key_check =
        |sent: Credential<'_>, operation: &sbx_spec::Operation| match (&target.keys, sent) {
            (KeyCheck::Keys(_, verdict), Credential::Token { token, scopes }) => {
                let verdict = token_verdict(verdict.as_ref(), scopes);
                if verdict == KeyVerdict::Valid && target.limiters.per_key() {
                    let _ = authenticated.set(KeyTag::of_key(token));
                }
                verdict
            }
            (KeyCheck::Keys(keys, _), sent) => {
                let hash = KeyHash::of(sent.text());
                // Keys expire in real time, whatever the sandbox clock says.
                let verdict = crate::runtime::keys::verdict(keys, &hash, operation, now_ms());
                if verdict == KeyVerdict::Valid {
                    let _ = authenticated.set(KeyTag::of_digest(&hash));
                }
                verdict
            }
            (KeyCheck::AnyTestKey, sent) if sent.text().starts_with(API_KEY_PREFIX) => {
                if target.limiters.per_key() {
                    let _ = authenticated.set(KeyTag::of_key(sent.text()));
                }
                KeyVerdict::Valid
            }
            (KeyCheck::AnyTestKey, _) => KeyVerdict::Unknown,
        };
    let rate_check = || {
        if target.unlimited {
            return Ok(());
        }
        *target
            .rate_verdict
            .get_or_init(|| target.limiters.check(authenticated.get()))
    };
    let base_url = base_url(parts, path);
    let context = SandboxContext {
        id: &target.id,
        seed: target.seed,
        auth: target.auth,
        key_check: &key_check,
        rate_check: &rate_check,
        state: &target.state,
        env: &target.env,
        upstream: target.upstream.as_ref(),
        functions: target.functions.as_ref(),
        now_ms: target.now_ms,
        may_block,
        chaos: target.chaos.as_deref(),
        default_scenario: target.default_scenario.as_deref(),
        chaos_draw,
        trace,
        base_url,
    };
    let headers = EngineHeaders(&parts.headers);
    let request = engine_request(parts, path, &headers, body);
    sbx_engine::handle(&target.compiled, &context, &request)
}

/// Runs one request through the engine. Forwarding runs on the blocking
/// pool; a script runs on the async worker only while it is quick and has
/// no side effects (see [`Execution::TryInline`]), else again on the pool,
/// so that a slow or hostile script never holds a worker for long.
///
/// `path` is the path below the sandbox's root; `None`: the request's own
/// (`sbx mock`, whose sandbox is at the root).
pub async fn serve(
    target: Target,
    request: Request,
    path: Option<String>,
    max_body_bytes: usize,
    idempotency: Option<&Idempotency>,
    capture: bool,
) -> Served {
    let (parts, body) = request.into_parts();
    if let Some(below) = error_docs::docs_path(below_root(&path, &parts)) {
        let accept = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let answer = error_docs::answer(parts.method.as_str(), below, accept);
        return Served::before_engine(&target, answer, None);
    }
    let body = match to_bytes(body, max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let refused = ProblemType::PayloadTooLarge.response(&format!(
                "the request body exceeds the limit of {max_body_bytes} bytes"
            ));
            let captured =
                capture.then(|| Captured::request(&parts, &Default::default()).answer(&refused));
            return Served::before_engine(&target, refused, captured);
        }
    };
    let captured = capture.then(|| Captured::request(&parts, &body));
    let sandbox_id = target.id_header.clone();
    // The rare awaits are boxed: their futures would otherwise make every
    // request's future larger, and it is moved (copied) on its way to the
    // connection's task.
    let keyed = parts.headers.contains_key("idempotency-key");
    let pending = match idempotency.filter(|_| keyed) {
        Some(idempotency) => match Box::pin(idempotency.check(
            &target,
            &parts,
            below_root(&path, &parts),
            &body,
            target.now_ms,
        ))
        .await
        {
            Check::Proceed(pending) => pending,
            Check::Answer(response) => {
                let captured = captured.map(|c| c.answer(&response));
                return Served::before_engine(&target, response, captured);
            }
        },
        None => None,
    };
    let now_ms = target.now_ms;
    // Every request starts on the worker; the engine yields the ones that
    // must block (forwarding, long or writing scripts) right where it knows.
    let below = below_root(&path, &parts);
    let mut outcome = match run(&target, &parts, below, &body, false, None, capture) {
        Decision::Answer(outcome) => outcome,
        Decision::Yield(pending) => {
            let work = target.work.clone();
            let owner = target.id.clone();
            let draw = pending.chaos_draw;
            let decided = Box::pin(work.run(&owner, move || {
                let below = below_root(&path, &parts);
                run(&target, &parts, below, &body, true, draw, capture)
            }))
            .await;
            match decided {
                Ok(Decision::Answer(outcome)) => outcome,
                Ok(Decision::Yield(again)) => {
                    tracing::error!(
                        reason = again.reason,
                        "a request yielded where it may block"
                    );
                    ProblemType::Internal
                        .response("the behaviour failed unexpectedly")
                        .into()
                }
                Err(error) => {
                    tracing::error!(%error, "behaviour task failed");
                    ProblemType::Internal
                        .response("the behaviour failed unexpectedly")
                        .into()
                }
            }
        }
    };
    let chaos = outcome.chaos.clone();
    if !chaos.delay.is_zero() {
        Box::pin(tokio::time::sleep(chaos.delay)).await;
    }
    let idempotent = pending.map(|pending| {
        let answer = pending.answer(&outcome, now_ms);
        (pending, answer)
    });
    let note = chaos_note(&chaos);
    let captured = captured.map(|c| {
        let mut c = c.answer(&outcome.response);
        c.trace = std::mem::take(&mut outcome.trace);
        if let Some(note) = note.as_ref().and_then(|n| n.to_str().ok()) {
            c.response_headers
                .push((CHAOS.as_str().to_owned(), note.to_owned()));
        }
        c
    });
    let mut response = if chaos.drop {
        dropped()
    } else {
        to_axum(outcome.response)
    };
    if !chaos.slow.is_zero() && !chaos.drop {
        response = Box::pin(trickled(response, chaos.slow)).await;
    }
    if let Some(id) = sandbox_id {
        response.headers_mut().insert(SANDBOX_ID.clone(), id);
    }
    if let Some(note) = note {
        response.headers_mut().insert(CHAOS.clone(), note);
    }
    Served {
        response,
        journal: outcome.journal,
        drift: outcome.drift,
        idempotent,
        captured,
        operation: outcome.operation,
    }
}

/// The path below the sandbox's root: `path`, or the request's own.
fn below_root<'a>(path: &'a Option<String>, parts: &'a Parts) -> &'a str {
    path.as_deref().unwrap_or(parts.uri.path())
}

/// How the sandbox of a request was found.
enum Resolved {
    /// The sandbox, the path below its root, and how it was found.
    Found(Arc<LiveSandbox>, String, &'static str),
    Unknown(String),
    Unaddressed,
}

pub async fn handler(State(state): State<AppState>, mut request: Request) -> Response {
    if !crate::runtime::standby::serves(&state) {
        match crate::runtime::standby::answered_elsewhere(&state, request).await {
            Ok(mine) => request = mine,
            Err(response) => return response,
        }
    }
    let started = std::time::Instant::now();
    let raw_path = request.uri().path().to_owned();
    let resolved = resolve(&state, &request, &raw_path);
    let (sandbox, path, resolved_by) = match resolved {
        Resolved::Found(sandbox, path, resolved_by) => (sandbox, path, resolved_by),
        Resolved::Unknown(id) => return unknown_sandbox(&state, &id).await,
        Resolved::Unaddressed => {
            return problem(
                ProblemType::NoSandbox,
                &format!(
                    "address a sandbox by path (/sbx/{{id}}/…), by host ({{id}}.{}), or by sending its sk_test_ API key; the control plane is under /api/v1",
                    state.config.base_domain
                ),
            );
        }
    };
    if state.moves.is_moving(&sandbox.id) {
        // Moving to another server: asked again once the move ended.
        let id = sandbox.id.to_string();
        drop(sandbox);
        state.moves.wait(&id).await;
        return Box::pin(handler(State(state), request)).await;
    }
    let now = now_ms();
    sandbox.note_activity(now);
    if sandbox.member().is_none() {
        // A member counts the requests it answers.
        sandbox.requests.note(now);
    }
    if let Some(isolation) = sandbox.isolation() {
        // Served by its own server, in its namespace.
        return crate::runtime::namespaces::pass_on(&state, &sandbox, &isolation, request, false)
            .await;
    }
    if sandbox.member().is_some() {
        return match crate::runtime::members::pass_on(&state, &sandbox, request).await {
            Ok(answer) => answer,
            Err(request) => Box::pin(handler(State(state), request)).await,
        };
    }
    if let Some(below) = path.strip_prefix(oauth::PREFIX) {
        let below = below.to_owned();
        return Box::pin(oauth::serve(&state, &sandbox, &below, request)).await;
    }
    let unlimited = carries_admin_token(&state, &request);
    if let Some(usage) = sandbox
        .owner
        .as_ref()
        .map(|o| &o.usage)
        .filter(|_| !unlimited)
    {
        let limit = state.config.quotas.requests_per_day;
        if let Err((made, retry_after)) = usage.count(now, limit) {
            return quota_spent(made, limit, retry_after);
        }
    }
    let token = match bearer_jwt(request.headers()) {
        Some(token) if sandbox.auth == AuthMode::Spec => {
            Some(Box::pin(crate::service::oauth::verify(&state, &sandbox, token)).await)
        }
        _ => None,
    };
    let keys = KeyCheck::Keys(sandbox.keys(), token);
    let checks = Checks { keys, unlimited };
    answer(&state, sandbox, path, resolved_by, checks, request, started).await
}

/// Answers a request for a sandbox already found (`resolved_by` says how)
/// — logged, its changes persisted. Replays from the control plane enter
/// here, with a key check of their own.
pub async fn answer(
    state: &AppState,
    sandbox: Arc<LiveSandbox>,
    path: String,
    resolved_by: &'static str,
    checks: Checks,
    request: Request,
    started: std::time::Instant,
) -> Response {
    if let Some(expired_at) = sandbox.expired_at(crate::app::now_ms()) {
        return expired(&sandbox.id, expired_at);
    }
    let serving = sandbox.serving();
    // Only a revision with functions pays for the runner's handle.
    let functions = serving
        .compiled
        .behaviours
        .functions
        .is_some()
        .then(|| state.functions.clone() as Arc<dyn sbx_engine::Functions>);
    let target = Target {
        id: Arc::from(sandbox.id.as_str()),
        id_header: HeaderValue::from_str(&sandbox.id).ok(),
        seed: sandbox.seed,
        auth: sandbox.auth,
        keys: checks.keys,
        compiled: serving.compiled,
        state: sandbox.state.clone(),
        env: sandbox.env(),
        upstream: Some(state.upstream.clone()),
        functions,
        chaos: sandbox.chaos().map(|chaos| chaos.spec.clone()),
        default_scenario: sandbox.scenario(),
        now_ms: sandbox.now_ms(),
        work: state.user_work.clone(),
        limiters: serving.limiters,
        unlimited: checks.unlimited,
        rate_verdict: std::sync::OnceLock::new(),
    };
    let request_id = request
        .extensions()
        .get::<crate::http::middleware::RequestId>()
        .cloned()
        .unwrap_or_else(|| "".into());
    let method = request.method().as_str().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let trace_context = state
        .telemetry
        .as_ref()
        .map(|_| crate::observability::telemetry::trace_context(request.headers()));
    // With telemetry on, the exported span's trace id replaces it below.
    let mut trace_id = crate::observability::telemetry::incoming_trace_id(request.headers());
    let logged_path = path.clone();
    let revision = target.compiled.clone();
    let sandbox_at_ms = target.now_ms;
    let mut served = serve(
        target,
        request,
        Some(path),
        state.config.limits.max_body_bytes,
        Some(&state.idempotency),
        state.config.request_log && state.request_log.has_room(),
    )
    .await;
    let operation = served.operation.map_or_else(
        || match revision.route(&method, &logged_path, query.as_deref(), None) {
            RouteMatch::Found { operation, .. } => Some(operation),
            _ => None,
        },
        Some,
    );
    let declared = operation.map(|i| &revision.operations[i].operation);
    let status = served.response.status().as_u16();
    state.metrics.request(
        &sandbox.project,
        declared.map(|o| o.id.as_str()),
        status,
        started.elapsed().as_secs_f64(),
    );
    if let (Some(telemetry), Some(headers)) = (&state.telemetry, &trace_context) {
        trace_id = Some(telemetry.record(
            headers,
            crate::observability::telemetry::RequestSpan {
                started: std::time::SystemTime::now() - started.elapsed(),
                method: &method,
                route: declared.map_or(logged_path.as_str(), |o| o.path.as_str()),
                sandbox_id: &sandbox.id,
                project: &sandbox.project,
                revision: serving.revision,
                operation: declared.map(|o| o.id.as_str()),
                status,
                request_id: &request_id,
            },
        ));
    }
    if let Some(captured) = served.captured.take() {
        state
            .request_log
            .record(crate::workers::request_log::Entry {
                sandbox_id: sandbox.id.clone(),
                request_id: request_id.clone(),
                at_ms: crate::app::now_ms(),
                sandbox_at_ms,
                trace_id,
                method,
                path: logged_path,
                query,
                status: captured.status,
                latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                request_headers: captured.request_headers,
                request_body: captured.request_body.to_vec(),
                response_headers: captured.response_headers,
                response_body: captured.response_body,
                trace: captured.trace,
                resolved_by,
                operation,
                revision,
            });
    }
    if let Some(drift) = &served.drift {
        tracing::warn!(sandbox = %sandbox.id, operation = %drift.operation, status = drift.status, pointer = %drift.pointer, "response drift: {}", drift.message);
        state.drift.record(
            &sandbox.project,
            serving.revision,
            &sandbox.id,
            drift,
            crate::app::now_ms(),
        );
    }
    // The key stays held until its answer is committed with the changes.
    let (held, answer) = served.idempotent.unzip();
    let answer = answer.flatten();
    let remembered = answer.as_ref().map(|a| (a.key.clone(), a.created_at_ms));
    let origin = sbx_store::Origin::Request(request_id);
    if let Err(error) = persist(state, &sandbox.id, served.journal, answer, origin).await {
        tracing::error!(sandbox = %sandbox.id, %error, "persisting the request's changes failed");
        return problem(
            ProblemType::StorageUnavailable,
            "the change was applied in memory but could not be saved; retry the request",
        );
    }
    if let Some((key, created_at_ms)) = remembered {
        state.idempotency.remember(&sandbox.id, &key, created_at_ms);
    }
    drop(held);
    served.response
}

/// Saves what a request changed (resource rows, emitted events, jobs,
/// transitions), returning once it is committed; `origin` (see
/// [`sbx_store::Origin`]) links them to their cause on the timeline.
pub async fn persist(
    state: &AppState,
    sandbox_id: &str,
    journal: Journal,
    answer: Option<IdempotentAnswer>,
    origin: sbx_store::Origin,
) -> Result<(), crate::workers::writer::WriteFailed> {
    let first_job = journal.jobs.iter().map(|job| job.due_ms).min();
    let first_event = journal.events.iter().map(|e| e.created_at_ms).min();
    state
        .writer
        .save(change_set(sandbox_id, journal, answer, origin))
        .await?;
    // Most requests schedule and emit nothing: no registry lookup then.
    if (first_job.is_some() || first_event.is_some())
        && let Some(sandbox) = state.registry.get(sandbox_id)
    {
        if let Some(due_ms) = first_job {
            sandbox.next_job.note(due_ms);
        }
        // Its deliveries (if any endpoint listens) are due at once.
        if let Some(at_ms) = first_event {
            sandbox.next_delivery.note(at_ms);
        }
    }
    Ok(())
}

/// What a request or job changed, as the store writes it.
pub fn change_set(
    sandbox_id: &str,
    journal: Journal,
    answer: Option<IdempotentAnswer>,
    origin: sbx_store::Origin,
) -> sbx_store::ChangeSet {
    sbx_store::ChangeSet {
        sandbox_id: sandbox_id.to_owned(),
        origin: Some(origin),
        rows: journal
            .changes
            .into_iter()
            .map(|c| sbx_store::ResourceRow {
                collection: c.collection,
                id: c.id,
                scope: c.scope,
                seq: c.seq,
                // Serialized once: the answer shares these bytes.
                value: c
                    .value
                    .map(|v| String::from_utf8_lossy(v.json()).into_owned()),
                version: c.version,
            })
            .collect(),
        events: journal
            .events
            .into_iter()
            .map(|e| (e.event_type, e.payload.to_string(), e.created_at_ms))
            .collect(),
        answers: answer.into_iter().collect(),
        jobs: journal
            .jobs
            .iter()
            .map(crate::workers::scheduler::to_record)
            .collect(),
        finished_jobs: Vec::new(),
        transitions: journal
            .transitions
            .into_iter()
            .map(|t| sbx_store::TransitionRecord {
                collection: t.collection,
                resource_id: t.id,
                from: t.from,
                to: t.to,
                at_ms: t.at_ms,
                cause: t.cause,
            })
            .collect(),
    }
}

fn resolve(state: &AppState, request: &Request, raw_path: &str) -> Resolved {
    // 1. Path prefix.
    if let Some(rest) = raw_path.strip_prefix("/sbx/") {
        let (id, below) = rest
            .split_once('/')
            .map_or((rest, "/"), |(id, below)| (id, below));
        let below = if below == "/" {
            "/".to_owned()
        } else {
            format!("/{below}")
        };
        return match state.registry.get(id) {
            Some(sandbox) => Resolved::Found(sandbox, below, "its path prefix /sbx/{id}"),
            None => Resolved::Unknown(id.to_owned()),
        };
    }
    // 2. Host `{id}.{base_domain}`.
    if let Some(id) = host_sandbox_id(state, request) {
        return match state.registry.get(id) {
            Some(sandbox) => Resolved::Found(sandbox, raw_path.to_owned(), "the Host header"),
            None => Resolved::Unknown(id.to_owned()),
        };
    }
    // 3. An API key anywhere a client would send one.
    for key in candidate_keys(request) {
        if let Some(sandbox) = state.registry.by_key_hash(&KeyHash::of(&key)) {
            return Resolved::Found(sandbox, raw_path.to_owned(), "the API key sent");
        }
    }
    Resolved::Unaddressed
}

/// The sandbox id a `{id}.{base_domain}` Host header names.
pub(crate) fn host_sandbox_id<'a>(state: &AppState, request: &'a Request) -> Option<&'a str> {
    let host = request.headers().get(header::HOST)?.to_str().ok()?;
    let host = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    host.strip_suffix(state.config.base_domain.as_str())
        .and_then(|h| h.strip_suffix('.'))
        .filter(|id| !id.contains('.'))
}

/// Whether the request carries the API key of a sandbox this server knows.
pub fn carries_known_key(state: &AppState, request: &Request) -> bool {
    candidate_keys(request)
        .iter()
        .any(|key| state.registry.by_key_hash(&KeyHash::of(key)).is_some())
}

/// Whether the request names a sandbox by its Host header or by a key it
/// carries: then a page of the portal's (`/`) is the sandbox's instead.
pub fn names_a_sandbox(state: &AppState, request: &Request) -> bool {
    host_sandbox_id(state, request).is_some() || carries_known_key(state, request)
}

/// Whether the request names a sandbox by its Host header: then even a
/// path the server itself serves (`/metrics`) is the sandbox's.
pub fn addressed_by_host(state: &AppState, request: &Request) -> bool {
    host_sandbox_id(state, request).is_some()
}

/// Every `sk_test_…` token in the headers (Bearer, Basic, custom), query and cookies.
fn candidate_keys(request: &Request) -> Vec<String> {
    let mut keys = Vec::new();
    let mut consider = |text: &str| {
        for token in text.split([' ', ',', ';', '=', '&', ':']) {
            if sbx_engine::is_key_like(token) && token.len() <= 128 {
                keys.push(token.to_owned());
            }
        }
    };
    for (name, value) in request.headers() {
        let Ok(value) = value.to_str() else { continue };
        if name == header::AUTHORIZATION
            && let Some(encoded) = value
                .strip_prefix("Basic ")
                .or_else(|| value.strip_prefix("basic "))
            && let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim())
        {
            consider(&String::from_utf8_lossy(&decoded));
        }
        consider(value);
    }
    if let Some(query) = request.uri().query() {
        for (_, value) in form_urlencoded::parse(query.as_bytes()) {
            consider(&value);
        }
    }
    keys
}

/// Whether the request carries the admin token in `X-Sandbox-Admin-Token`
/// (rate limits and the daily quota do not apply to it).
fn carries_admin_token(state: &AppState, request: &Request) -> bool {
    request
        .headers()
        .get("x-sandbox-admin-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|token| crate::http::access::is_admin_secret(state, token))
}

/// The owner's requests for the day are spent: 429 until the UTC day ends.
fn quota_spent(made: u64, limit: u64, retry_after: u64) -> Response {
    let detail = format!(
        "quota requests_per_day: {made} of {limit} requests made today over the owner's sandboxes; the count starts again at 00:00 UTC"
    );
    let mut response = to_axum(ProblemType::QuotaExceeded.response_with(429, &detail, None));
    if let Ok(value) = HeaderValue::try_from(retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

fn expired(id: &str, expired_at_ms: i64) -> Response {
    problem(
        ProblemType::SandboxExpired,
        &format!(
            "sandbox {id} expired at {}; its data has been removed",
            crate::app::rfc3339(expired_at_ms)
        ),
    )
}

async fn unknown_sandbox(state: &AppState, id: &str) -> Response {
    if parse_sandbox_id(id).is_none() {
        return problem(
            ProblemType::UnknownSandbox,
            &format!("{id:?} is not a sandbox id (sbx-…)"),
        );
    }
    match state.store.get_tombstone(id).await {
        Ok(Some(tombstone)) => expired(id, tombstone.expired_at_ms),
        Ok(None) => problem(
            ProblemType::UnknownSandbox,
            &format!("no sandbox {id} exists"),
        ),
        Err(error) => {
            tracing::error!(%error, "tombstone lookup failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}
