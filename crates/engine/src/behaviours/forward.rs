//! Forwarding to an upstream (service virtualization). The engine builds
//! the upstream request; the server sends it through its egress policy.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::{
    Response,
    behaviours::call::Call,
    compile::project::ForwardRule,
    mentions_key,
    pipeline::problem::ProblemType,
    request::body::{essence, is_json},
};

#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
}

pub struct UpstreamResponse {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request did not reach its upstream, or its answer did not come
/// back whole; the text names the cause (and its causes, on one line).
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The egress policy does not send there (scheme, private address).
    #[error("{0}")]
    Refused(String),
    /// The connection or the exchange failed, or the answer was too large.
    #[error("{0}")]
    Failed(String),
}

/// Sends requests upstream. Called on a thread that may block (never an
/// async worker).
pub trait Upstream: Send + Sync {
    fn send(&self, request: UpstreamRequest) -> Result<UpstreamResponse, UpstreamError>;
}

/// Headers of one connection, never passed on in either direction by
/// whoever relays a request (RFC 9110 §7.6.1).
pub const CONNECTION_HEADERS: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Not passed upstream or back: the connection's headers, and the ones the
/// HTTP client sets itself.
fn hop_by_hop(name: &str) -> bool {
    CONNECTION_HEADERS.contains(&name) || name == "host" || name == "content-length"
}

/// Longest upstream wait allowed, whatever a rule or script asks.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// Replaces `{name}` by the path parameter (else the query parameter) and
/// `{env.KEY}` by an environment parameter; unknown names are left as written.
pub fn substitute(template: &str, call: &Call) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &rest[open + 1..open + close];
        let value = match name.strip_prefix("env.") {
            Some(key) => call.env_value(key).map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            }),
            // Path parameters as sent (still encoded), else query values.
            None => call
                .request
                .path_params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| {
                    let (_, value) = call
                        .request
                        .query
                        .iter()
                        .find(|(n, v)| n == name && !carries_key(v))?;
                    Some(
                        percent_encoding::utf8_percent_encode(
                            value,
                            percent_encoding::NON_ALPHANUMERIC,
                        )
                        .to_string(),
                    )
                }),
        };
        match value {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Whether `text` (a header value, or a `name=value` pair of a query)
/// holds a sandbox key: as written, percent-encoded, or inside HTTP Basic
/// credentials.
fn carries_key(text: &str) -> bool {
    use base64::Engine as _;
    if mentions_key(text) {
        return true;
    }
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    if mentions_key(&decoded) {
        return true;
    }
    text.split_whitespace().any(|word| {
        base64::engine::general_purpose::STANDARD
            .decode(word.trim_end_matches(','))
            .is_ok_and(|bytes| mentions_key(&String::from_utf8_lossy(&bytes)))
    })
}

/// The upstream request for `call` under `rule` (or to `url` with defaults).
pub fn build(call: &Call, rule: &ForwardRule) -> UpstreamRequest {
    let mut url = substitute(&rule.url, call);
    // The sandbox's own key is never sent anywhere: not in the query…
    let query: Vec<&str> = call
        .request
        .raw_query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && !carries_key(pair))
        .collect();
    if !query.is_empty() {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query.join("&"));
    }
    let removed = |name: &str| {
        hop_by_hop(name)
            // The server's own admin token never leaves it.
            || name.eq_ignore_ascii_case("x-sandbox-admin-token")
            || rule
                .remove_headers
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            || rule
                .set_headers
                .keys()
                .any(|s| s.eq_ignore_ascii_case(name))
    };
    let mut headers: Vec<(String, String)> = call
        .request
        .headers
        .iter()
        // …nor in a header, however encoded.
        .filter(|(name, value)| !removed(name) && !carries_key(value))
        .cloned()
        .collect();
    headers.extend(
        rule.set_headers
            .iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), substitute(value, call))),
    );
    UpstreamRequest {
        method: call.request.method.clone(),
        url,
        headers,
        body: call.request.raw_body.clone(),
        timeout: Duration::from_millis(rule.timeout_ms.clamp(1, MAX_TIMEOUT_MS)),
    }
}

/// Sends `request`; a failure becomes a 502 problem naming the upstream.
pub fn send(call: &Call, request: UpstreamRequest) -> Result<UpstreamResponse, Response> {
    let url = request.url.clone();
    let Some(upstream) = &call.sandbox.upstream else {
        return Err(ProblemType::UpstreamUnavailable.response_with(
            502,
            "forwarding is not available in this server",
            Some(json!({"upstream": url})),
        ));
    };
    upstream.send(request).map_err(|reason| {
        ProblemType::UpstreamUnavailable.response_with(
            502,
            &format!("forwarding to {url} failed: {reason}"),
            Some(json!({"upstream": url})),
        )
    })
}

/// The upstream's answer as the sandbox sends it on.
pub fn to_response(upstream: UpstreamResponse) -> Response {
    Response {
        status: upstream.status,
        headers: upstream
            .headers
            .into_iter()
            .filter(|(name, _)| !hop_by_hop(name))
            .collect(),
        body: upstream.body.into(),
    }
}

/// `#{status, headers, body}` for scripts: JSON bodies parsed, others as text.
pub fn to_value(response: &Response) -> Value {
    let content_type = response
        .headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let body = if response.body.is_empty() {
        Value::Null
    } else if is_json(&essence(content_type)) {
        serde_json::from_slice(&response.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&response.body).into_owned()))
    } else {
        Value::String(String::from_utf8_lossy(&response.body).into_owned())
    };
    let headers: Map<String, Value> = response
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), Value::String(v.clone())))
        .collect();
    json!({"status": response.status, "headers": headers, "body": body})
}
