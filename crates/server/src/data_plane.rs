//! Requests addressed to a sandbox: resolve it, hand the request to the
//! engine, write the answer. Nothing here touches the database unless the
//! sandbox is unknown (to tell "expired" from "never existed").

use std::sync::Arc;

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use sbx_engine::{
    API_KEY_PREFIX, CompiledRevision, HeaderSource, SandboxContext, problem_response,
};

use crate::{
    app::AppState,
    ids::{SandboxId, hash_secret},
    registry::LiveSandbox,
};

static SANDBOX_ID: HeaderName = HeaderName::from_static("x-sandbox-id");

/// Header access for the engine over axum's map.
struct Headers<'a>(&'a HeaderMap);

impl HeaderSource for Headers<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
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

fn to_axum(response: sbx_engine::Response) -> Response {
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            out.headers_mut().append(name, value);
        }
    }
    out
}

fn problem(status: u16, slug: &str, title: &str, detail: &str) -> Response {
    to_axum(problem_response(status, slug, title, detail, None))
}

/// Runs one request through the engine for `sandbox_id` on `compiled`.
pub async fn serve(
    compiled: &CompiledRevision,
    context: &SandboxContext<'_>,
    request: Request,
    path: &str,
    max_body_bytes: usize,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return problem(
                413,
                "payload-too-large",
                "Payload too large",
                &format!("the request body exceeds the limit of {max_body_bytes} bytes"),
            );
        }
    };
    let headers = Headers(&parts.headers);
    let engine_request = sbx_engine::Request {
        method: parts.method.as_str(),
        path,
        query: parts.uri.query(),
        headers: &headers,
        body: &body,
    };
    let mut response = to_axum(sbx_engine::handle(compiled, context, &engine_request));
    if let Ok(id) = HeaderValue::from_str(context.id) {
        response.headers_mut().insert(SANDBOX_ID.clone(), id);
    }
    response
}

/// How the sandbox of a request was found.
enum Resolved {
    Found(Arc<LiveSandbox>, String),
    Unknown(String),
    Unaddressed,
}

pub async fn handler(State(state): State<AppState>, request: Request) -> Response {
    let raw_path = request.uri().path().to_owned();
    let resolved = resolve(&state, &request, &raw_path);
    let (sandbox, path) = match resolved {
        Resolved::Found(sandbox, path) => (sandbox, path),
        Resolved::Unknown(id) => return unknown_sandbox(&state, &id).await,
        Resolved::Unaddressed => {
            return problem(
                404,
                "no-sandbox",
                "No sandbox addressed",
                &format!(
                    "address a sandbox by path (/sbx/{{id}}/…), by host ({{id}}.{}), or by sending its sk_test_ API key; the control plane is under /api/v1",
                    state.config.base_domain
                ),
            );
        }
    };
    if let Some(expired_at) = sandbox.expired_at(crate::app::now_ms()) {
        return expired(&sandbox.id, expired_at);
    }
    let key_hash = sandbox.key_hash.clone();
    let key_matches = move |key: &str| hash_secret(key) == key_hash;
    let context = SandboxContext {
        id: &sandbox.id,
        seed: sandbox.seed,
        auth: sandbox.auth,
        key_matches: &key_matches,
    };
    serve(
        &sandbox.compiled,
        &context,
        request,
        &path,
        state.config.limits.max_body_bytes,
    )
    .await
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
            Some(sandbox) => Resolved::Found(sandbox, below),
            None => Resolved::Unknown(id.to_owned()),
        };
    }
    // 2. Host `{id}.{base_domain}`.
    if let Some(host) = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    {
        let host = host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                name
            } else {
                host
            }
        });
        if let Some(id) = host
            .strip_suffix(&state.config.base_domain)
            .and_then(|h| h.strip_suffix('.'))
            && !id.contains('.')
        {
            return match state.registry.get(id) {
                Some(sandbox) => Resolved::Found(sandbox, raw_path.to_owned()),
                None => Resolved::Unknown(id.to_owned()),
            };
        }
    }
    // 3. An API key anywhere a client would send one.
    for key in candidate_keys(request) {
        if let Some(sandbox) = state.registry.by_key_hash(&hash_secret(&key)) {
            return Resolved::Found(sandbox, raw_path.to_owned());
        }
    }
    Resolved::Unaddressed
}

/// Every `sk_test_…` token in the headers (Bearer, Basic, custom), query and cookies.
fn candidate_keys(request: &Request) -> Vec<String> {
    let mut keys = Vec::new();
    let mut consider = |text: &str| {
        for token in text.split([' ', ',', ';', '=', '&', ':']) {
            if token.starts_with(API_KEY_PREFIX) && token.len() <= 128 {
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

fn expired(id: &str, expired_at_ms: i64) -> Response {
    problem(
        404,
        "sandbox-expired",
        "Sandbox expired",
        &format!(
            "sandbox {id} expired at {}; its data has been removed",
            crate::app::rfc3339(expired_at_ms)
        ),
    )
}

async fn unknown_sandbox(state: &AppState, id: &str) -> Response {
    if SandboxId::parse(id).is_none() {
        return problem(
            404,
            "unknown-sandbox",
            "Unknown sandbox",
            &format!("{id:?} is not a sandbox id (sbx-…)"),
        );
    }
    match state.store.get_tombstone(id).await {
        Ok(Some(tombstone)) => expired(id, tombstone.expired_at_ms),
        Ok(None) => problem(
            404,
            "unknown-sandbox",
            "Unknown sandbox",
            &format!("no sandbox {id} exists"),
        ),
        Err(error) => {
            tracing::error!(%error, "tombstone lookup failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}
