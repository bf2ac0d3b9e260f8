//! Error answers the sandbox makes itself (validation, auth, not found,
//! conflicts, idempotency, chaos, scenarios, `fail()`), shaped by the
//! operation's declared error schema with every member chosen by meaning:
//! SDKs classify errors by exactly these members, so none is lorem.
//!
//! A `type`/`code`-like member takes the enum value that best matches the
//! failure (else a canonical code), `param`/`field` the offending
//! parameter, `pointer` its JSON pointer, `message`/`detail` the reason,
//! `status` the status; optional members without a meaning are left out.
//! A project maps failures to exact member values (`errors:` in
//! `project.yaml`). Link members (`doc_url`, a problem's URI `type`) point
//! at the sandbox's own page about the failure ([`DOCS_PATH`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::schema_view::SchemaView;

/// Where below a sandbox's root its pages about failures are served
/// (`/__sbx/errors/missing_parameter`): what error bodies link to.
pub const DOCS_PATH: &str = "/__sbx/errors";

/// Deepest nesting of error objects filled (`{error: {errors: [{…}]}}`).
const MAX_DEPTH: usize = 6;

/// What went wrong, as far as an error body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A parameter or body member breaks the contract.
    InvalidRequest,
    /// A required parameter or body member is absent.
    MissingParameter,
    Authentication,
    Permission,
    NotFound,
    /// The record exists already, or its state forbids the operation.
    Conflict,
    RateLimit,
    /// An `Idempotency-Key` reused with another request, or still in flight.
    Idempotency,
    Server,
    Unavailable,
}

impl FailureKind {
    /// The failure an answer of `status` reports (chaos, scenarios, `fail()`).
    pub fn of_status(status: u16) -> Self {
        match status {
            401 => Self::Authentication,
            403 => Self::Permission,
            404 | 410 => Self::NotFound,
            409 => Self::Conflict,
            429 => Self::RateLimit,
            502..=504 => Self::Unavailable,
            500..=599 => Self::Server,
            _ => Self::InvalidRequest,
        }
    }

    /// The kind's name, as `errors:` in `project.yaml` and its docs page
    /// name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::MissingParameter => "missing_parameter",
            Self::Authentication => "authentication",
            Self::Permission => "permission",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::RateLimit => "rate_limit",
            Self::Idempotency => "idempotency",
            Self::Server => "server",
            Self::Unavailable => "unavailable",
        }
    }

    /// The kind named `name` (see [`Self::name`]).
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// What the failure means and what a client does about it, for the
    /// docs page error bodies link to.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::InvalidRequest => {
                "A parameter, header or body member breaks the operation's contract: a wrong type or format, a value outside its enum or bounds, or a member the schema does not allow. The body's param/field/pointer member names the offending value; fix it and send the request again."
            }
            Self::MissingParameter => {
                "A parameter, header or body member the operation requires is absent. The body's param/field/pointer member names it; add it and send the request again."
            }
            Self::Authentication => {
                "The request carries no credential, or one the sandbox does not accept. Send the sandbox's API key (sk_test_…) the way the API's security scheme says: a bearer token, basic auth or the named header or query parameter."
            }
            Self::Permission => {
                "The credential is valid but may not do this. In a sandbox this answer comes from a scenario, chaos or a behaviour script that simulates it."
            }
            Self::NotFound => {
                "No record has this id: it was never created in this sandbox, or it was deleted. Create it first, or list the collection to find a valid id."
            }
            Self::Conflict => {
                "The request conflicts with the record's current state: it exists already, or its state forbids the operation."
            }
            Self::RateLimit => {
                "Too many requests in too short a time. Wait as long as Retry-After says (the RateLimit headers give the window), then retry."
            }
            Self::Idempotency => {
                "An Idempotency-Key was reused with a different request, or its first request is still running. Use a new key for a new request; retry the same request with the same key to get the first answer again."
            }
            Self::Server => {
                "The sandbox simulated a server failure (a scenario, chaos or a script), or a behaviour script failed. Retrying with backoff is what a client should do against production too."
            }
            Self::Unavailable => {
                "The sandbox simulated an unavailable or timed-out upstream. Retry with backoff."
            }
        }
    }

    /// Statuses a failure of this kind is usually answered with.
    pub fn statuses(self) -> &'static [u16] {
        match self {
            Self::InvalidRequest => &[400, 422],
            Self::MissingParameter => &[400, 422],
            Self::Authentication => &[401],
            Self::Permission => &[403],
            Self::NotFound => &[404, 410],
            Self::Conflict => &[409],
            Self::RateLimit => &[429],
            Self::Idempotency => &[400, 409, 422],
            Self::Server => &[500],
            Self::Unavailable => &[502, 503, 504],
        }
    }

    /// The link error bodies carry to this kind's docs page, on the
    /// synthesized origin that the pipeline rewrites to the sandbox's own.
    fn docs_link(self) -> String {
        format!(
            "{}{DOCS_PATH}/{}",
            crate::pipeline::links::SYNTHESIZED_ORIGIN,
            self.name()
        )
    }

    /// The code a free-form `code`/`type` member gets.
    fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "parameter_invalid",
            Self::MissingParameter => "parameter_missing",
            Self::Authentication => "authentication_required",
            Self::Permission => "permission_denied",
            Self::NotFound => "resource_missing",
            Self::Conflict => "conflict",
            Self::RateLimit => "rate_limited",
            Self::Idempotency => "idempotency_key_in_use",
            Self::Server => "internal_error",
            Self::Unavailable => "service_unavailable",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidRequest => "Invalid request",
            Self::MissingParameter => "Missing parameter",
            Self::Authentication => "Authentication required",
            Self::Permission => "Permission denied",
            Self::NotFound => "Not found",
            Self::Conflict => "Conflict",
            Self::RateLimit => "Too many requests",
            Self::Idempotency => "Idempotency key in use",
            Self::Server => "Internal error",
            Self::Unavailable => "Service unavailable",
        }
    }

    /// Words of an enum value that fit, best first (matched on lower-case
    /// text with `-`, `.` and spaces read as `_`).
    fn keywords(self) -> &'static [&'static str] {
        match self {
            Self::InvalidRequest => &[
                "invalid_request",
                "validation",
                "invalid",
                "bad_request",
                "malformed",
                "unprocessable",
                "parameter",
                "request",
            ],
            Self::MissingParameter => &[
                "missing",
                "required",
                "invalid_request",
                "validation",
                "invalid",
                "bad_request",
                "parameter",
                "request",
            ],
            Self::Authentication => &[
                "authentication",
                "unauthenticated",
                "unauthorized",
                "unauthorised",
                "credential",
                "auth",
                "api_key",
                "token",
            ],
            Self::Permission => &[
                "permission",
                "forbidden",
                "access_denied",
                "denied",
                "not_allowed",
                "authorization",
            ],
            Self::NotFound => &[
                "not_found",
                "notfound",
                "resource_missing",
                "no_such",
                "unknown",
                "missing",
                "invalid_request",
                "request",
            ],
            Self::Conflict => &[
                "conflict",
                "already",
                "exists",
                "duplicate",
                "state",
                "invalid_request",
                "request",
            ],
            Self::RateLimit => &[
                "rate_limit",
                "ratelimit",
                "too_many",
                "throttl",
                "quota",
                "limit",
            ],
            Self::Idempotency => &["idempoten", "conflict", "invalid_request", "request"],
            Self::Server => &["internal", "api_error", "server", "unexpected", "error"],
            Self::Unavailable => &[
                "unavailable",
                "timeout",
                "temporar",
                "internal",
                "server",
                "api_error",
            ],
        }
    }

    pub const ALL: [Self; 10] = [
        Self::InvalidRequest,
        Self::MissingParameter,
        Self::Authentication,
        Self::Permission,
        Self::NotFound,
        Self::Conflict,
        Self::RateLimit,
        Self::Idempotency,
        Self::Server,
        Self::Unavailable,
    ];
}

/// The parameter or body member a failure is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Culprit {
    /// As clients name it: `amount`, `metadata[order]`, `customer.email`.
    pub name: String,
    /// JSON pointer into the request body, or `/name` for a parameter.
    pub pointer: String,
}

/// One failure the sandbox answers itself.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub kind: FailureKind,
    /// Said in the body's message member and `X-Sandbox-Error`.
    pub reason: &'a str,
    pub culprit: Option<Culprit>,
}

impl<'a> Failure<'a> {
    pub fn new(kind: FailureKind, reason: &'a str) -> Self {
        Self {
            kind,
            reason,
            culprit: None,
        }
    }

    pub fn about(mut self, culprit: Option<Culprit>) -> Self {
        self.culprit = culprit;
        self
    }
}

/// What a member of an error object means, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Message,
    Title,
    Kind,
    Param,
    Pointer,
    Status,
    Link,
    Container,
}

fn role(name: &str, value: &Value) -> Option<Role> {
    Some(match crate::loose_name(name).as_str() {
        "message" | "detail" | "errordescription" | "description" | "errormessage" | "msg"
        | "developermessage" | "usermessage" | "displaymessage" | "reasonphrase" => Role::Message,
        "title" => Role::Title,
        "error" | "errors" | "fault" | "problem" | "innererror" | "links"
            if value.is_object() || value.is_array() =>
        {
            Role::Container
        }
        // JSON:API's `source: {pointer, parameter}`; a payment `source` is not one.
        "source" if value.get("pointer").is_some() || value.get("parameter").is_some() => {
            Role::Container
        }
        "type" | "code" | "errorcode" | "errortype" | "kind" | "error" | "reason" | "subcode"
        | "errorkey" => Role::Kind,
        "param" | "parameter" | "field" | "fieldname" | "property" | "attribute" => Role::Param,
        "pointer" | "jsonpointer" => Role::Pointer,
        "status" | "statuscode" | "httpstatus" | "httpstatuscode" | "httpcode" => Role::Status,
        "docurl" | "documentationurl" | "docsurl" | "helpurl" | "moreinfo" | "url" | "href"
        | "link" | "links" | "requestlogurl" | "helplink" | "about" | "documentation" => Role::Link,
        _ => return None,
    })
}

/// How an error body was made, which decides what filling may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Synthesized from the schema: every member is filled or left out.
    Synthesized,
    /// The spec's example: the author's values stay, except the message,
    /// the culprit and the status, which are this failure's.
    Example,
}

/// Fills `body` (made from `schema`) to say `failure`; `overrides` are the
/// project's exact values for this kind of failure, by member name.
pub fn fill(
    body: &mut Value,
    (schema, origin): (&Value, Origin),
    view: SchemaView<'_>,
    failure: &Failure<'_>,
    status: u16,
    overrides: Option<&Map<String, Value>>,
) {
    let filler = Filler {
        view,
        failure,
        status,
        origin,
    };
    filler.object(body, schema, 0);
    if let Some(overrides) = overrides {
        for (name, value) in overrides {
            if let Some(slot) = member_slot(body, name, 0) {
                *slot = value.clone();
            } else if let Some(object) = message_holder(body, 0) {
                object.insert(name.clone(), value.clone());
            }
        }
    }
}

struct Filler<'a> {
    view: SchemaView<'a>,
    failure: &'a Failure<'a>,
    status: u16,
    origin: Origin,
}

impl Filler<'_> {
    fn object(&self, value: &mut Value, schema: &Value, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        match value {
            Value::Array(items) => {
                items.truncate(1);
                let item_schema = self.view.items(schema).clone();
                for item in items {
                    self.object(item, &item_schema, depth + 1);
                }
            }
            Value::Object(map) => {
                let required: Vec<String> = self
                    .view
                    .required(schema)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                let names: Vec<String> = map.keys().cloned().collect();
                for name in names {
                    let member_schema = self.view.property(schema, &name).clone();
                    let is_required = self.origin == Origin::Example || required.contains(&name);
                    let Some(member) = map.get_mut(&name) else {
                        continue;
                    };
                    match role(&name, member) {
                        Some(Role::Container) => self.object(member, &member_schema, depth + 1),
                        Some(role) => match self.meaning(role, member, &member_schema) {
                            Some(meant) => *member = meant,
                            None if is_required => {}
                            None => {
                                map.shift_remove(&name);
                            }
                        },
                        None if is_required => self.object(member, &member_schema, depth + 1),
                        None => {
                            map.shift_remove(&name);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The value a member of `role` takes; `None` keeps a required
    /// member as synthesized and leaves an optional one out.
    fn meaning(&self, role: Role, current: &Value, schema: &Value) -> Option<Value> {
        let failure = self.failure;
        let authored = matches!(role, Role::Title | Role::Kind | Role::Link);
        if self.origin == Origin::Example && authored {
            return None;
        }
        let types = self.view.types(schema);
        let numeric =
            types.contains(&"integer") || types.contains(&"number") || current.is_number();
        match role {
            Role::Message => Some(Value::String(failure.reason.to_owned())),
            Role::Title => Some(Value::String(failure.kind.title().to_owned())),
            Role::Status if numeric => Some(Value::from(self.status)),
            Role::Status => Some(Value::String(self.status.to_string())),
            Role::Kind => Some(self.kind_value(current, schema, numeric)),
            Role::Param => failure
                .culprit
                .as_ref()
                .map(|c| Value::String(c.name.clone())),
            Role::Pointer => failure
                .culprit
                .as_ref()
                .map(|c| Value::String(c.pointer.clone())),
            Role::Link if current.is_string() => Some(Value::String(failure.kind.docs_link())),
            Role::Link | Role::Container => None,
        }
    }

    fn kind_value(&self, current: &Value, schema: &Value, numeric: bool) -> Value {
        let kind = self.failure.kind;
        let choices: Vec<&Value> = self
            .view
            .branches(schema)
            .into_iter()
            .filter_map(|b| b.get("enum").and_then(Value::as_array))
            .flatten()
            .collect();
        if !choices.is_empty() {
            return best_choice(kind, self.status, &choices).clone();
        }
        if numeric {
            return Value::from(self.status);
        }
        let uri_like = current
            .as_str()
            .is_some_and(|s| s.contains("://") || s.starts_with("urn:") || s.starts_with("about:"));
        if uri_like {
            // RFC 9457: a type URI leads to documentation about it.
            return Value::String(kind.docs_link());
        }
        Value::String(kind.code().to_owned())
    }
}

/// The enum value that fits `kind` best: the earliest keyword wins; a
/// value that names another kind loses to a neutral one.
fn best_choice<'a>(kind: FailureKind, status: u16, choices: &[&'a Value]) -> &'a Value {
    let text = |v: &Value| -> String {
        match v {
            Value::String(s) => s.to_ascii_lowercase().replace(['-', '.', ' '], "_"),
            other => other.to_string(),
        }
    };
    if let Some(exact) = choices
        .iter()
        .find(|v| v.as_u64() == Some(u64::from(status)))
    {
        return exact;
    }
    let keywords = kind.keywords();
    let rank = |v: &Value| {
        let text = text(v);
        keywords.iter().position(|k| text.contains(k))
    };
    if let Some(best) = choices
        .iter()
        .filter_map(|v| rank(v).map(|r| (r, *v)))
        .min_by_key(|(r, _)| *r)
    {
        return best.1;
    }
    let names_other_kind = |v: &Value| {
        let text = text(v);
        FailureKind::ALL
            .iter()
            .filter(|other| **other != kind)
            .any(|other| other.keywords().first().is_some_and(|k| text.contains(k)))
    };
    choices
        .iter()
        .find(|v| !names_other_kind(v))
        .unwrap_or(&choices[0])
}

/// The first member named `name`, searched breadth-first over objects.
fn member_slot<'v>(value: &'v mut Value, name: &str, depth: usize) -> Option<&'v mut Value> {
    let Value::Object(map) = value else {
        return None;
    };
    if map.contains_key(name) {
        return map.get_mut(name);
    }
    if depth >= MAX_DEPTH {
        return None;
    }
    map.values_mut()
        .find_map(|child| member_slot(child, name, depth + 1))
}

/// The object holding the message member (`{error: {message}}`), else the top.
fn message_holder(value: &mut Value, depth: usize) -> Option<&mut Map<String, Value>> {
    let has_message = value
        .as_object()
        .is_some_and(|m| m.iter().any(|(k, v)| role(k, v) == Some(Role::Message)));
    if has_message || depth >= MAX_DEPTH {
        return value.as_object_mut();
    }
    let Value::Object(map) = value else {
        return None;
    };
    let child = map
        .iter()
        .find(|(k, v)| role(k, v) == Some(Role::Container) && v.is_object())
        .map(|(k, _)| k.clone());
    match child {
        Some(child) => message_holder(map.get_mut(&child)?, depth + 1),
        None => Some(map),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filled(body: Value, schema: Value, failure: &Failure<'_>, status: u16) -> Value {
        let mut body = body;
        let document = Value::Null;
        fill(
            &mut body,
            (&schema, Origin::Synthesized),
            SchemaView::new(&document),
            failure,
            status,
            None,
        );
        body
    }

    #[test]
    fn stripe_style_errors_say_what_failed() {
        let schema = json!({"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["type"], "properties": {
            "type": {"type": "string", "enum": ["api_error", "card_error", "idempotency_error", "invalid_request_error"]},
            "code": {"type": "string"}, "param": {"type": "string"}, "message": {"type": "string"},
            "doc_url": {"type": "string"}, "decline_code": {"type": "string"}, "charge": {"type": "string"},
        }}}});
        let body = json!({"error": {"type": "idempotency_error", "code": "omnis", "param": "qui", "message": "x",
            "doc_url": "https://example.com/impedit", "decline_code": "velit", "charge": "libero"}});
        let failure = Failure::new(FailureKind::MissingParameter, "amount is required").about(
            Some(Culprit {
                name: "amount".into(),
                pointer: "/amount".into(),
            }),
        );
        assert_eq!(
            filled(body.clone(), schema.clone(), &failure, 400),
            json!({"error": {"type": "invalid_request_error", "code": "parameter_missing", "param": "amount", "message": "amount is required",
                "doc_url": "https://example.com/__sbx/errors/missing_parameter"}})
        );
        let idempotency = Failure::new(FailureKind::Idempotency, "key reused");
        assert_eq!(
            filled(body, schema, &idempotency, 400)["error"]["type"],
            json!("idempotency_error")
        );
    }

    #[test]
    fn problem_and_json_api_errors() {
        let problem = json!({"type": "object", "required": ["type", "title", "status"], "properties": {
            "type": {"type": "string", "format": "uri"}, "title": {"type": "string"},
            "status": {"type": "integer"}, "detail": {"type": "string"}}});
        let failure = Failure::new(FailureKind::NotFound, "no pet 7");
        assert_eq!(
            filled(
                json!({"type": "https://example.com/x", "title": "lorem", "status": 500, "detail": "ipsum"}),
                problem,
                &failure,
                404
            ),
            json!({"type": "https://example.com/__sbx/errors/not_found", "title": "Not found", "status": 404, "detail": "no pet 7"})
        );
        let json_api = json!({"type": "object", "properties": {"errors": {"type": "array", "items": {
            "type": "object", "properties": {"status": {"type": "string"}, "code": {"type": "string"},
            "source": {"type": "object", "properties": {"pointer": {"type": "string"}}}, "detail": {"type": "string"}}}}}});
        let failure = Failure::new(FailureKind::InvalidRequest, "title must be a string").about(
            Some(Culprit {
                name: "title".into(),
                pointer: "/data/attributes/title".into(),
            }),
        );
        assert_eq!(
            filled(
                json!({"errors": [{"status": "x", "code": "y", "source": {"pointer": "z"}, "detail": "w"}, {"status": "v"}]}),
                json_api,
                &failure,
                422
            ),
            json!({"errors": [{"status": "422", "code": "parameter_invalid", "source": {"pointer": "/data/attributes/title"}, "detail": "title must be a string"}]})
        );
    }

    #[test]
    fn examples_keep_their_authored_codes() {
        let mut body = json!({"error": {"type": "authentication_error", "code": "api_key_invalid", "message": "Invalid API key.", "doc_url": "https://docs"}});
        let document = Value::Null;
        fill(
            &mut body,
            (&json!({}), Origin::Example),
            SchemaView::new(&document),
            &Failure::new(FailureKind::Authentication, "send a key"),
            401,
            None,
        );
        assert_eq!(
            body,
            json!({"error": {"type": "authentication_error", "code": "api_key_invalid", "message": "send a key", "doc_url": "https://docs"}})
        );
    }

    #[test]
    fn kinds_are_named_as_project_yaml_names_them() {
        for kind in FailureKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.name()));
            assert_eq!(FailureKind::named(kind.name()), Some(kind));
        }
        assert_eq!(FailureKind::named("nonsense"), None);
    }

    #[test]
    fn json_api_links_lead_to_the_failure_page() {
        let schema = json!({"type": "object", "properties": {"errors": {"type": "array", "items": {
            "type": "object", "properties": {"links": {"type": "object", "properties": {"about": {"type": "string"}}},
            "detail": {"type": "string"}}}}}});
        let body =
            json!({"errors": [{"links": {"about": "https://example.com/lorem"}, "detail": "x"}]});
        let failure = Failure::new(FailureKind::Conflict, "exists");
        assert_eq!(
            filled(body, schema, &failure, 409),
            json!({"errors": [{"links": {"about": "https://example.com/__sbx/errors/conflict"}, "detail": "exists"}]})
        );
    }

    #[test]
    fn enums_without_a_fitting_word_avoid_other_kinds() {
        let choices = [json!("rate_limit_error"), json!("api_error")];
        let refs: Vec<&Value> = choices.iter().collect();
        assert_eq!(
            best_choice(FailureKind::Conflict, 409, &refs),
            &json!("api_error")
        );
        let codes = [json!(400), json!(404)];
        let refs: Vec<&Value> = codes.iter().collect();
        assert_eq!(best_choice(FailureKind::NotFound, 404, &refs), &json!(404));
    }

    #[test]
    fn overrides_set_exact_values() {
        let mut body = json!({"error": {"message": "m"}});
        let overrides = json!({"code": "resource_missing", "message": "custom"});
        let document = Value::Null;
        fill(
            &mut body,
            (&json!({}), Origin::Synthesized),
            SchemaView::new(&document),
            &Failure::new(FailureKind::NotFound, "gone"),
            404,
            overrides.as_object(),
        );
        assert_eq!(
            body,
            json!({"error": {"message": "custom", "code": "resource_missing"}})
        );
    }
}
