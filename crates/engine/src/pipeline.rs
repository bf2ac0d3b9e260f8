//! One request through the data plane.

use serde_json::{Value, json};

use crate::{
    HeaderSource,
    auth::{self, AuthOutcome},
    body, params,
    problem::problem_response,
    respond::{self, Exchange},
    revision::{CompiledOperation, CompiledRevision},
    router::RouteMatch,
};

/// Whether a sandbox enforces the spec's security schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Spec,
    None,
}

/// The sandbox a request is served for.
pub struct SandboxContext<'a> {
    pub id: &'a str,
    /// Seed of all synthesized data (derived from the sandbox's seed string).
    pub seed: u64,
    pub auth: AuthMode,
    /// Does this credential belong to the sandbox?
    pub key_matches: &'a (dyn Fn(&str) -> bool + Sync),
}

pub struct Request<'a> {
    pub method: &'a str,
    /// The path below the sandbox root, still percent-encoded.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a dyn HeaderSource,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A violation of the request against the spec.
struct Violation {
    location: &'static str,
    pointer: String,
    message: String,
}

pub fn handle(
    revision: &CompiledRevision,
    context: &SandboxContext<'_>,
    request: &Request<'_>,
) -> Response {
    let (operation_index, path_params) = match revision.router.at(request.method, request.path) {
        RouteMatch::Found {
            operation,
            path_params,
        } => (operation, path_params),
        RouteMatch::MethodNotAllowed(allowed) => {
            let allow = allowed.join(", ");
            let mut response = if request.method.eq_ignore_ascii_case("OPTIONS") {
                Response {
                    status: 204,
                    headers: Vec::new(),
                    body: Vec::new(),
                }
            } else {
                problem_response(
                    405,
                    "method-not-allowed",
                    "Method not allowed",
                    &format!(
                        "{} is not declared for {}; allowed: {allow}",
                        request.method, request.path
                    ),
                    None,
                )
            };
            response.headers.push(("allow".to_owned(), allow));
            return response;
        }
        RouteMatch::NotFound => {
            let base = revision.router.base_path();
            let hint = if base.is_empty() {
                String::new()
            } else {
                format!(" (operation paths start with {base})")
            };
            return problem_response(
                404,
                "no-route",
                "No such operation",
                &format!(
                    "no operation matches {} {}{hint}",
                    request.method, request.path
                ),
                None,
            );
        }
    };
    let operation = &revision.operations[operation_index];
    let prefer = match respond::parse_prefer(request.headers.get("prefer")) {
        Ok(prefer) => prefer,
        Err(detail) => {
            return problem_response(
                400,
                "invalid-prefer",
                "Invalid Prefer header",
                &detail,
                None,
            );
        }
    };
    let exchange = Exchange {
        accept: request.headers.get("accept"),
        path_params: &path_params,
    };
    let query: Vec<(String, String)> = request
        .query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();

    if context.auth == AuthMode::Spec {
        let outcome = auth::check(
            &operation.operation,
            &revision.model.security_schemes,
            request.headers,
            &query,
            context.key_matches,
        );
        let (detail, challenge) = match outcome {
            AuthOutcome::Allowed => (None, None),
            AuthOutcome::Missing {
                expected,
                challenge,
            } => (
                Some(format!("this operation needs credentials: send {expected}")),
                challenge,
            ),
            AuthOutcome::Invalid { challenge } => (
                Some("the credentials sent are not this sandbox's API key".to_owned()),
                challenge,
            ),
        };
        if let Some(detail) = detail {
            let mut response =
                declared_error(revision, context, operation, &exchange, &[401], &detail)
                    .unwrap_or_else(|| {
                        problem_response(401, "unauthorized", "Unauthorized", &detail, None)
                    });
            if let Some(challenge) = challenge {
                response
                    .headers
                    .push(("www-authenticate".to_owned(), challenge.to_owned()));
            }
            return response;
        }
    }

    let violations = match validate(operation, request, &path_params, &query) {
        Ok(violations) => violations,
        Err(unsupported) => return unsupported,
    };
    if !violations.is_empty() {
        return validation_failure(revision, context, operation, &exchange, &violations);
    }

    let declared = match respond::select(operation, &prefer) {
        Ok(declared) => declared,
        Err(response) => return response,
    };
    match respond::render(
        revision,
        context,
        operation,
        declared,
        &exchange,
        prefer.example.as_deref(),
    ) {
        Ok(rendered) => rendered.response,
        Err(response) => response,
    }
}

/// Every violation of the request; `Err` for an unsupported media type.
fn validate(
    operation: &CompiledOperation,
    request: &Request<'_>,
    path_params: &[(String, String)],
    query: &[(String, String)],
) -> Result<Vec<Violation>, Response> {
    let mut violations = Vec::new();
    let raw = params::RawParams {
        path: path_params,
        query,
        headers: request.headers,
    };
    for (param, validator) in operation
        .operation
        .parameters
        .iter()
        .zip(&operation.parameter_validators)
    {
        let location = param.location.as_str();
        // Built only on failure: the common path allocates nothing here.
        let at = || format!("/{}", sbx_spec::pointer::escape(&param.name));
        match params::extract(param, &raw) {
            Err(message) => violations.push(Violation {
                location,
                pointer: at(),
                message: format!("{location} parameter \"{}\" {message}", param.name),
            }),
            Ok(None) if param.required => violations.push(Violation {
                location,
                pointer: at(),
                message: format!("{location} parameter \"{}\" is required", param.name),
            }),
            Ok(None) => {}
            Ok(Some(value)) => {
                if let Some(validator) = validator.get()
                    && !validator.is_valid(&value)
                {
                    let prefix = at();
                    for v in validator.violations(&value) {
                        violations.push(Violation {
                            location,
                            pointer: format!("{prefix}{}", v.pointer),
                            message: format!(
                                "{location} parameter \"{}\": {}",
                                param.name, v.message
                            ),
                        });
                    }
                }
            }
        }
    }
    let Some(body_spec) = &operation.operation.request_body else {
        return Ok(violations);
    };
    if request.body.is_empty() {
        if body_spec.required {
            violations.push(Violation {
                location: "body",
                pointer: String::new(),
                message: "a request body is required".to_owned(),
            });
        }
        return Ok(violations);
    }
    if operation.request_content.is_empty() {
        return Ok(violations);
    }
    let content_type = request
        .headers
        .get("content-type")
        .unwrap_or("application/octet-stream");
    let Some(index) = body::match_declared(&body_spec.content, content_type) else {
        let supported: Vec<&str> = body_spec
            .content
            .iter()
            .map(|m| m.media_type.as_str())
            .collect();
        return Err(problem_response(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            &format!(
                "Content-Type `{content_type}` is not accepted here; send {}",
                supported.join(" or ")
            ),
            Some(json!({"supported": supported})),
        ));
    };
    let media = &operation.request_content[index];
    match body::parse(&body::essence(content_type), request.body, &media.schema) {
        Err(message) => violations.push(Violation {
            location: "body",
            pointer: String::new(),
            message,
        }),
        Ok(None) => {}
        Ok(Some(value)) => {
            if let Some(validator) = media.validator.get().filter(|v| !v.is_valid(&value)) {
                violations.extend(validator.violations(&value).into_iter().map(|v| Violation {
                    location: "body",
                    message: if v.pointer.is_empty() {
                        v.message
                    } else {
                        format!("{}: {}", v.pointer, v.message)
                    },
                    pointer: v.pointer,
                }));
            }
        }
    }
    Ok(violations)
}

fn validation_failure(
    revision: &CompiledRevision,
    context: &SandboxContext<'_>,
    operation: &CompiledOperation,
    exchange: &Exchange<'_>,
    violations: &[Violation],
) -> Response {
    let summary = match violations {
        [only] => only.message.clone(),
        [first, rest @ ..] => format!("{} (and {} more)", first.message, rest.len()),
        [] => String::new(),
    };
    if let Some(response) = declared_error(
        revision,
        context,
        operation,
        exchange,
        &[400, 422],
        &summary,
    ) {
        return response;
    }
    let errors: Vec<Value> = violations
        .iter()
        .map(|v| json!({"location": v.location, "pointer": v.pointer, "message": v.message}))
        .collect();
    problem_response(
        400,
        "validation",
        "The request does not match the API contract",
        &format!("{} violation(s): {summary}", violations.len()),
        Some(json!({"errors": errors})),
    )
}

/// The spec's own error response for one of `statuses`, shaped by its
/// schema, with the reason in `X-Sandbox-Error` (and in the body's message
/// field when the schema has one).
fn declared_error(
    revision: &CompiledRevision,
    context: &SandboxContext<'_>,
    operation: &CompiledOperation,
    exchange: &Exchange<'_>,
    statuses: &[u16],
    reason: &str,
) -> Option<Response> {
    let (status, declared) = statuses.iter().find_map(|status| {
        operation
            .responses
            .iter()
            .find(|r| r.spec.status == sbx_spec::StatusKey::Code(*status))
            .map(|r| (*status, r))
    })?;
    let rendered = respond::render(
        revision,
        context,
        operation,
        Some((status, declared)),
        exchange,
        None,
    )
    .ok()?;
    let mut response = rendered.response;
    if let Some(body) = rendered.value {
        let mut body = body.value.clone();
        let media = declared.content.iter().find(|m| {
            response
                .headers
                .iter()
                .any(|(n, v)| n == "content-type" && *v == m.spec.media_type)
        });
        if let Some(slot) = message_slot(&mut body, 0) {
            let original = std::mem::replace(slot, Value::String(reason.to_owned()));
            let still_valid = media
                .and_then(|m| m.validator.get())
                .is_none_or(|v| v.is_valid(&body));
            if still_valid {
                response.body = serde_json::to_vec(&body).unwrap_or_default();
            } else if let Some(slot) = message_slot(&mut body, 0) {
                *slot = original;
            }
        }
    }
    let reason: String = reason
        .chars()
        .filter(|c| !c.is_control())
        .take(512)
        .collect();
    response
        .headers
        .push(("x-sandbox-error".to_owned(), reason));
    Some(response)
}

/// The first string member named like a human-readable message, at most two
/// objects deep (`{"message": …}` or `{"error": {"message": …}}`).
fn message_slot(value: &mut Value, depth: usize) -> Option<&mut Value> {
    const NAMES: [&str; 5] = [
        "message",
        "detail",
        "error_description",
        "description",
        "title",
    ];
    let Value::Object(map) = value else {
        return None;
    };
    if let Some(name) = NAMES
        .iter()
        .find(|n| map.get(**n).is_some_and(Value::is_string))
    {
        return map.get_mut(*name);
    }
    if depth >= 1 {
        return None;
    }
    map.values_mut()
        .find_map(|child| message_slot(child, depth + 1))
}
