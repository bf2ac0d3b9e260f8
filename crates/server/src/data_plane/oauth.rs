//! The OAuth 2 / OpenID Connect provider's HTTP face, below a sandbox's
//! `/__sbx/oauth`: discovery, JWKS, the authorization endpoint (with its
//! consent page), the token endpoint and userinfo. Errors are RFC 6749's
//! JSON (token) or redirects (authorization); the logic is the service's.

use std::sync::Arc;

use axum::{
    Json,
    body::to_bytes,
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine;
use serde_json::{Value, json};

use crate::{
    app::AppState,
    runtime::registry::LiveSandbox,
    service::oauth::{
        self as service, AuthorizeRequest, Authorized, ClientAuth, Grant, OAuthError,
    },
};

/// Where the provider lives below a sandbox's root.
pub const PREFIX: &str = "/__sbx/oauth";
/// Token and consent requests are small forms.
const MAX_FORM_BYTES: usize = 64 * 1024;

pub async fn serve(
    state: &AppState,
    sandbox: &Arc<LiveSandbox>,
    below: &str,
    request: Request,
) -> Response {
    let method = request.method().as_str().to_owned();
    match (method.as_str(), below) {
        (
            "GET",
            "/.well-known/openid-configuration" | "/.well-known/oauth-authorization-server",
        ) => json_answer(StatusCode::OK, &service::discovery(state, &sandbox.id)),
        ("GET", "/jwks.json") => match service::signing_keys(state, &sandbox.id).await {
            Ok(keys) => {
                let mut response = json_answer(StatusCode::OK, &keys.jwks);
                response.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=60"),
                );
                response
            }
            Err(error) => oauth_error(&OAuthError {
                status: 500,
                error: "server_error",
                description: error.to_string(),
            }),
        },
        ("GET", "/authorize") => {
            let query = request.uri().query().unwrap_or("").to_owned();
            let params = match single_params(query.as_bytes()) {
                Ok(params) => params,
                Err(message) => return page(StatusCode::BAD_REQUEST, "Bad request", &message),
            };
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            let scenario = scenario(request.headers(), get("sandbox_scenario"), sandbox);
            let authorize = AuthorizeRequest {
                response_type: get("response_type"),
                client_id: get("client_id"),
                redirect_uri: get("redirect_uri"),
                scope: get("scope"),
                state: get("state"),
                code_challenge: get("code_challenge"),
                code_challenge_method: get("code_challenge_method"),
                nonce: get("nonce"),
                prompt: get("prompt"),
                login_hint: get("login_hint"),
            };
            match service::authorize(state, sandbox, authorize, scenario.as_deref()).await {
                Ok(outcome) => authorized(outcome),
                Err(error) => page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    &error.to_string(),
                ),
            }
        }
        ("POST", "/authorize") => {
            let form = match form(request).await {
                Ok(form) => form,
                Err(message) => return page(StatusCode::BAD_REQUEST, "Bad request", &message),
            };
            let get = |name: &str| {
                form.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            let approved_for = (get("decision") == Some("approve"))
                .then(|| get("sub"))
                .flatten();
            let id = get("consent").unwrap_or("");
            match service::consent(state, sandbox, id, approved_for).await {
                Ok(outcome) => authorized(outcome),
                Err(error) => page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    &error.to_string(),
                ),
            }
        }
        ("POST", "/token") => token(state, sandbox, request).await,
        ("POST", "/revoke") => revoke(state, sandbox, request).await,
        ("GET" | "POST", "/userinfo") => {
            let Some(token) = crate::http::access::bearer_token(request.headers()) else {
                return bearer_refusal(StatusCode::UNAUTHORIZED, None, "");
            };
            match service::userinfo(state, sandbox, token).await {
                Ok(claims) => json_answer(StatusCode::OK, &Value::Object(claims)),
                Err(why) if why == "insufficient_scope" => bearer_refusal(
                    StatusCode::FORBIDDEN,
                    Some("insufficient_scope"),
                    "userinfo needs the openid scope",
                ),
                Err(why) => bearer_refusal(StatusCode::UNAUTHORIZED, Some("invalid_token"), &why),
            }
        }
        (
            _,
            "/.well-known/openid-configuration"
            | "/.well-known/oauth-authorization-server"
            | "/jwks.json"
            | "/authorize"
            | "/token"
            | "/revoke"
            | "/userinfo",
        ) => oauth_error(&OAuthError {
            status: 405,
            error: "invalid_request",
            description: format!("{method} is not allowed on {PREFIX}{below}"),
        }),
        _ => oauth_error(&OAuthError {
            status: 404,
            error: "invalid_request",
            description: format!(
                "no endpoint {PREFIX}{below}; the provider's endpoints are listed at {PREFIX}/.well-known/openid-configuration"
            ),
        }),
    }
}

/// The scenario a provider request runs: `X-Sandbox-Scenario`, the
/// authorization request's `sandbox_scenario`, or the sandbox's default.
fn scenario(headers: &HeaderMap, query: Option<String>, sandbox: &LiveSandbox) -> Option<String> {
    headers
        .get("x-sandbox-scenario")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query)
        .or_else(|| sandbox.scenario().map(|s| s.to_string()))
}

/// Form or query parameters, each at most once (RFC 6749 §3.1).
fn single_params(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut params: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        if params.iter().any(|(n, _)| *n == name) {
            return Err(format!("parameter {name:?} is sent more than once"));
        }
        params.push((name.into_owned(), value.into_owned()));
    }
    Ok(params)
}

async fn form(request: Request) -> Result<Vec<(String, String)>, String> {
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err("the body must be application/x-www-form-urlencoded".to_owned());
    }
    let body = to_bytes(request.into_body(), MAX_FORM_BYTES)
        .await
        .map_err(|_| format!("the body exceeds {MAX_FORM_BYTES} bytes"))?;
    single_params(&body)
}

/// `client_secret_basic` (id and secret form-encoded, then base64).
fn basic_client(headers: &HeaderMap) -> Option<Result<ClientAuth, ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decode = || -> Option<ClientAuth> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (id, secret) = text.split_once(':')?;
        let unescape = |part: &str| {
            form_urlencoded::parse(format!("v={part}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        // An empty password is a public client's way of saying none.
        let secret = unescape(secret)?;
        Some(ClientAuth {
            client_id: unescape(id)?,
            secret: (!secret.is_empty()).then_some(secret),
        })
    };
    Some(decode().ok_or(()))
}

fn invalid_request(description: &str) -> Response {
    oauth_error(&OAuthError {
        status: 400,
        error: "invalid_request",
        description: description.to_owned(),
    })
}

fn invalid_client(description: &str) -> Response {
    oauth_error(&OAuthError {
        status: 401,
        error: "invalid_client",
        description: description.to_owned(),
    })
}

/// A client's request to the token or revocation endpoint: its form and
/// how the client authenticated (Basic, or `client_id` and maybe
/// `client_secret` in the form), or the refusal.
async fn client_request(request: Request) -> Result<(Vec<(String, String)>, ClientAuth), Response> {
    let basic = basic_client(request.headers());
    let form = form(request).await.map_err(|m| invalid_request(&m))?;
    let get = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let client = match (basic, get("client_id"), get("client_secret")) {
        (Some(Ok(basic)), id, None) => {
            if id.is_some_and(|id| id != basic.client_id) {
                return Err(invalid_request(
                    "client_id differs from the one authenticated",
                ));
            }
            basic
        }
        (Some(Err(())), _, _) => return Err(invalid_client("the Basic credentials do not decode")),
        (Some(Ok(_)), _, Some(_)) => {
            return Err(invalid_request(
                "authenticate the client one way: Basic or client_secret, not both",
            ));
        }
        (None, Some(client_id), secret) => ClientAuth { client_id, secret },
        (None, None, _) => {
            return Err(invalid_client(
                "client authentication is required (Basic, or client_id)",
            ));
        }
    };
    Ok((form, client))
}

/// The revocation endpoint (RFC 7009): 200 whether or not the token was
/// known.
async fn revoke(state: &AppState, sandbox: &LiveSandbox, request: Request) -> Response {
    let (form, client) = match client_request(request).await {
        Ok(parts) => parts,
        Err(refusal) => return refusal,
    };
    let Some(token) = form.iter().find(|(n, _)| n == "token").map(|(_, v)| v) else {
        return invalid_request("token is required");
    };
    match service::revoke(state, sandbox, client, token).await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            no_store(response.headers_mut());
            response
        }
        Err(error) => oauth_error(&error),
    }
}

async fn token(state: &AppState, sandbox: &LiveSandbox, request: Request) -> Response {
    let scenario = scenario(request.headers(), None, sandbox);
    let (form, client) = match client_request(request).await {
        Ok(parts) => parts,
        Err(refusal) => return refusal,
    };
    let get = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let invalid = invalid_request;
    let grant = match get("grant_type").as_deref() {
        Some("client_credentials") => Grant::ClientCredentials {
            scope: get("scope"),
        },
        Some("authorization_code") => {
            let Some(code) = get("code") else {
                return invalid("code is required");
            };
            Grant::AuthorizationCode {
                code,
                redirect_uri: get("redirect_uri"),
                code_verifier: get("code_verifier"),
            }
        }
        Some("refresh_token") => {
            let Some(refresh_token) = get("refresh_token") else {
                return invalid("refresh_token is required");
            };
            Grant::RefreshToken {
                refresh_token,
                scope: get("scope"),
            }
        }
        Some(other) => {
            return oauth_error(&OAuthError {
                status: 400,
                error: "unsupported_grant_type",
                description: format!("grant_type {other:?} is not supported"),
            });
        }
        None => return invalid("grant_type is required"),
    };
    match service::token(state, sandbox, client, grant, scenario.as_deref()).await {
        Ok(tokens) => {
            let mut response = Json(&tokens).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(error) => oauth_error(&error),
    }
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn json_answer(status: StatusCode, body: &Value) -> Response {
    (status, Json(body)).into_response()
}

/// An RFC 6749 §5.2 error.
fn oauth_error(error: &OAuthError) -> Response {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = json_answer(
        status,
        &json!({"error": error.error, "error_description": error.description}),
    );
    no_store(response.headers_mut());
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sandbox\""),
        );
    }
    response
}

/// An RFC 6750 refusal of a bearer token.
fn bearer_refusal(status: StatusCode, error: Option<&str>, description: &str) -> Response {
    let challenge = match error {
        Some(error) => sbx_engine::bearer_challenge(error, description, None),
        None => "Bearer realm=\"sandbox\"".to_owned(),
    };
    let mut response = json_answer(
        status,
        &json!({"error": error.unwrap_or("invalid_request"), "error_description": description}),
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn authorized(outcome: Authorized) -> Response {
    match outcome {
        Authorized::Redirect(url) => match HeaderValue::from_str(&url) {
            Ok(location) => {
                let mut response = StatusCode::FOUND.into_response();
                response.headers_mut().insert(header::LOCATION, location);
                no_store(response.headers_mut());
                response
            }
            Err(_) => page(
                StatusCode::BAD_REQUEST,
                "Bad request",
                "the redirect URI cannot be sent back",
            ),
        },
        Authorized::Refused(message) => {
            page(StatusCode::BAD_REQUEST, "Authorization refused", &message)
        }
        Authorized::Consent {
            id,
            client_name,
            scope,
            users,
        } => {
            let scopes: String = scope
                .split_whitespace()
                .map(|s| format!("<li><code>{}</code></li>", escape(s)))
                .collect();
            let choices: String = users
                .iter()
                .enumerate()
                .map(|(index, user)| {
                    let label = user
                        .claims
                        .get("email")
                        .or_else(|| user.claims.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    format!(
                        "<label><input type=\"radio\" name=\"sub\" value=\"{sub}\"{checked}> {sub} {label}</label><br>",
                        sub = escape(&user.sub),
                        checked = if index == 0 { " checked" } else { "" },
                        label = escape(label),
                    )
                })
                .collect();
            let body = format!(
                "<p><strong>{client}</strong> asks for access to this sandbox as a test user.</p>\
                 <p>Scopes:</p><ul>{scopes}</ul>\
                 <form method=\"post\" action=\"authorize\">\
                 <input type=\"hidden\" name=\"consent\" value=\"{id}\">\
                 <fieldset><legend>Sign in as</legend>{choices}</fieldset>\
                 <button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button> \
                 <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
                 </form>",
                client = escape(&client_name),
                id = escape(&id),
            );
            html(StatusCode::OK, "Authorize", &body)
        }
    }
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    html(status, title, &format!("<p>{}</p>", escape(message)))
}

fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let document = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · SmartSandbox</title></head>\
         <body><p><strong>TEST ONLY — a sandbox's test authorization server; no real accounts.</strong></p>\
         <h1>{title}</h1>{body}</body></html>",
        title = escape(title),
    );
    let mut response = (status, document).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    no_store(headers);
    response
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
