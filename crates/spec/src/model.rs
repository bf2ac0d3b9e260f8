//! The normalized operation model: what a compiled revision is built from.

use std::{collections::BTreeMap, sync::Arc};

use serde::Serialize;
use serde_json::Value;

use crate::{
    MAX_PROBLEMS, Problem, SpecError, SpecVersion,
    pointer::{join, resolve},
};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A spec after conversion and checks: every pointer in it resolves.
#[derive(Debug, Clone)]
pub struct ApiModel {
    pub version: SpecVersion,
    /// The normalized document (OAS 3.x with JSON Schema 2020-12 schemas).
    pub document: Arc<Value>,
    pub title: String,
    /// Path prefix from `servers[0]`, e.g. `/v1`; empty for the root.
    pub base_path: String,
    pub operations: Vec<Operation>,
    pub security_schemes: BTreeMap<String, SecurityScheme>,
    /// What was ignored to make the spec usable (invalid regular expressions).
    pub warnings: Vec<Problem>,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub id: String,
    /// Upper-case HTTP method.
    pub method: String,
    /// The path template as the spec writes it, without the base path.
    pub path: String,
    pub pointer: String,
    pub parameters: Vec<Parameter>,
    pub request_body: Option<RequestBody>,
    pub responses: Vec<ResponseSpec>,
    /// Alternatives, any one of which authenticates; empty means no auth.
    pub security: Vec<SecurityRequirement>,
    /// `x-sandbox-publishable: true`: a sandbox's publishable key
    /// (`pk_test_`, for browsers) may call it, as a secret key would.
    pub publishable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamLocation {
    Path,
    Query,
    Header,
    Cookie,
}

impl ParamLocation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Query => "query",
            Self::Header => "header",
            Self::Cookie => "cookie",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamStyle {
    Simple,
    Form,
    Label,
    Matrix,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub location: ParamLocation,
    pub required: bool,
    pub style: ParamStyle,
    pub explode: bool,
    /// Pointer to the parameter's schema in the document.
    pub schema_pointer: Option<String>,
    /// The schema itself, `$ref`s at the top resolved, for type coercion.
    pub schema: Value,
    /// Declared with `content` instead of `schema`: the value is JSON text.
    pub json_content: bool,
}

#[derive(Debug, Clone)]
pub struct RequestBody {
    pub required: bool,
    pub content: Vec<MediaTypeSpec>,
}

#[derive(Debug, Clone)]
pub struct MediaTypeSpec {
    /// Lower-case media range as declared, e.g. `application/json` or `*/*`.
    pub media_type: String,
    pub schema_pointer: Option<String>,
    /// Named examples; a lone `example` is named "example".
    pub examples: Vec<(String, Value)>,
    /// The encoding object of a form or multipart body, by property name.
    pub encoding: Vec<(String, PropertyEncoding)>,
}

/// How one property of a form or multipart body is serialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyEncoding {
    pub style: ParamStyle,
    pub explode: bool,
    /// The part's declared media type (`application/json` parts hold JSON).
    pub content_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusKey {
    Code(u16),
    /// `2XX` and friends; holds the leading digit.
    Range(u16),
    Default,
}

impl StatusKey {
    fn parse(key: &str) -> Option<Self> {
        if key == "default" {
            return Some(Self::Default);
        }
        let bytes = key.as_bytes();
        if bytes.len() == 3
            && bytes[1..].eq_ignore_ascii_case(b"xx")
            && (b'1'..=b'5').contains(&bytes[0])
        {
            return Some(Self::Range(u16::from(bytes[0] - b'0')));
        }
        key.parse()
            .ok()
            .filter(|code| (100..=599).contains(code))
            .map(Self::Code)
    }

    /// The concrete status this key answers with.
    pub fn code(self) -> u16 {
        match self {
            Self::Code(code) => code,
            Self::Range(digit) => digit * 100,
            Self::Default => 500,
        }
    }

    pub fn matches(self, status: u16) -> bool {
        match self {
            Self::Code(code) => code == status,
            Self::Range(digit) => status / 100 == digit,
            Self::Default => true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResponseSpec {
    pub status: StatusKey,
    pub pointer: String,
    pub content: Vec<MediaTypeSpec>,
    pub headers: Vec<ResponseHeader>,
}

#[derive(Debug, Clone)]
pub struct ResponseHeader {
    pub name: String,
    pub required: bool,
    pub schema_pointer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityScheme {
    ApiKey {
        name: String,
        location: ParamLocation,
    },
    Basic,
    /// HTTP bearer: a sandbox key in `Authorization`.
    Bearer,
    /// OAuth 2 and OpenID Connect: an access token from the sandbox's own
    /// authorization server in `Authorization: Bearer`, with the scopes
    /// the requirement names.
    OAuth2,
    /// Schemes a sandbox key cannot satisfy (mutual TLS, exotic HTTP schemes).
    Unsupported(String),
}

/// Scheme names that must all be satisfied together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityRequirement {
    pub schemes: Vec<String>,
    /// The scopes each scheme requires, in the order of `schemes` (OAuth 2
    /// and OpenID Connect; empty for the others).
    pub scopes: Vec<Vec<String>>,
}

struct Extractor<'a> {
    document: &'a Value,
    problems: Vec<Problem>,
}

pub fn extract(
    document: Arc<Value>,
    version: SpecVersion,
    warnings: Vec<Problem>,
) -> Result<ApiModel, SpecError> {
    let mut ex = Extractor {
        document: &document,
        problems: Vec::new(),
    };
    let security_schemes = ex.security_schemes();
    let global_security = ex.security(document.get("security"), "/security", &security_schemes);
    let operations = ex.operations(&global_security, &security_schemes);
    if !ex.problems.is_empty() {
        let mut problems = ex.problems;
        problems.truncate(MAX_PROBLEMS);
        return Err(SpecError::Invalid(problems));
    }
    let title = document
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("API")
        .to_owned();
    let base_path = base_path(&document);
    Ok(ApiModel {
        version,
        warnings,
        title,
        base_path,
        operations,
        security_schemes,
        document,
    })
}

/// A server's URL, variables replaced by their defaults.
fn server_url(server: &Value) -> String {
    let mut url = server
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_owned();
    if let Some(Value::Object(variables)) = server.get("variables") {
        for (name, variable) in variables {
            let default = variable
                .get("default")
                .and_then(Value::as_str)
                .unwrap_or("");
            url = url.replace(&format!("{{{name}}}"), default);
        }
    }
    url
}

/// The origins (`https://api.example.com`) of the document's absolute
/// server URLs: where the provider's own links point.
pub fn server_origins(document: &Value) -> Vec<String> {
    let mut origins: Vec<String> = Vec::new();
    for server in document
        .get("servers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let url = server_url(server);
        let Some(scheme_end) = url.find("://") else {
            continue;
        };
        let rest = &url[scheme_end + 3..];
        let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if host_end == 0 || rest[..host_end].contains(['{', '}', ' ']) {
            continue;
        }
        let origin = url[..scheme_end + 3 + host_end].to_ascii_lowercase();
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    origins
}

/// The path of `servers[0].url`, variables replaced by their defaults.
fn base_path(document: &Value) -> String {
    let Some(server) = document.pointer("/servers/0") else {
        return String::new();
    };
    let url = server_url(server);
    // `https://host/v1`, or scheme-relative `//host/v1`: the path after the host.
    let authority = url
        .find("://")
        .map(|scheme_end| scheme_end + 3)
        .or_else(|| url.starts_with("//").then_some(2));
    let path = match authority {
        Some(start) => {
            let rest = &url[start..];
            rest.find('/').map_or("", |slash| &rest[slash..])
        }
        None => url.as_str(),
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = path.trim_end_matches('/');
    if path.is_empty() || !path.starts_with('/') {
        String::new()
    } else {
        path.to_owned()
    }
}

impl<'a> Extractor<'a> {
    fn problem(&mut self, pointer: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            pointer: pointer.into(),
            message: message.into(),
        });
    }

    /// Resolves a `$ref`, recording a problem (and returning `None`) when it fails.
    fn resolved<'v>(&mut self, value: &'v Value, pointer: &str) -> Option<(&'v Value, String)>
    where
        'a: 'v,
    {
        match resolve(self.document, value, pointer) {
            Ok(found) => Some(found),
            Err(message) => {
                self.problem(pointer, message);
                None
            }
        }
    }

    fn security_schemes(&mut self) -> BTreeMap<String, SecurityScheme> {
        let mut schemes = BTreeMap::new();
        let Some(Value::Object(declared)) = self.document.pointer("/components/securitySchemes")
        else {
            return schemes;
        };
        for (name, scheme) in declared {
            let at = join("/components/securitySchemes", name);
            let Some((scheme, _)) = self.resolved(scheme, &at) else {
                continue;
            };
            let kind = scheme.get("type").and_then(Value::as_str).unwrap_or("");
            let parsed = match kind {
                "apiKey" => {
                    let key_name = scheme.get("name").and_then(Value::as_str);
                    let location = match scheme.get("in").and_then(Value::as_str) {
                        Some("header") => Some(ParamLocation::Header),
                        Some("query") => Some(ParamLocation::Query),
                        Some("cookie") => Some(ParamLocation::Cookie),
                        _ => None,
                    };
                    match (key_name, location) {
                        (Some(key_name), Some(location)) => SecurityScheme::ApiKey {
                            name: key_name.to_owned(),
                            location,
                        },
                        _ => {
                            self.problem(
                                at,
                                "an apiKey scheme needs `name` and `in` (header, query or cookie)",
                            );
                            continue;
                        }
                    }
                }
                "http" => match scheme
                    .get("scheme")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    Some("basic") => SecurityScheme::Basic,
                    Some("bearer") => SecurityScheme::Bearer,
                    Some(other) => SecurityScheme::Unsupported(format!("http {other}")),
                    None => {
                        self.problem(at, "an http scheme needs `scheme` (basic or bearer)");
                        continue;
                    }
                },
                "oauth2" | "openIdConnect" => SecurityScheme::OAuth2,
                other => SecurityScheme::Unsupported(other.to_owned()),
            };
            schemes.insert(name.clone(), parsed);
        }
        schemes
    }

    fn security(
        &mut self,
        value: Option<&Value>,
        at: &str,
        schemes: &BTreeMap<String, SecurityScheme>,
    ) -> Vec<SecurityRequirement> {
        let Some(Value::Array(requirements)) = value else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (index, requirement) in requirements.iter().enumerate() {
            let Some(requirement) = requirement.as_object() else {
                self.problem(
                    format!("{at}/{index}"),
                    "a security requirement must be an object",
                );
                continue;
            };
            let mut names = Vec::new();
            let mut scopes = Vec::new();
            for (name, required) in requirement {
                if schemes.contains_key(name) {
                    names.push(name.clone());
                    scopes.push(
                        required
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect(),
                    );
                } else {
                    self.problem(
                        join(&format!("{at}/{index}"), name),
                        format!("security scheme \"{name}\" is not declared in components.securitySchemes"),
                    );
                }
            }
            out.push(SecurityRequirement {
                schemes: names,
                scopes,
            });
        }
        out
    }

    fn operations(
        &mut self,
        global_security: &[SecurityRequirement],
        schemes: &BTreeMap<String, SecurityScheme>,
    ) -> Vec<Operation> {
        let mut operations = Vec::new();
        let Some(paths) = self.document.get("paths") else {
            return operations;
        };
        let Some(paths) = paths.as_object() else {
            self.problem("/paths", "`paths` must be an object");
            return operations;
        };
        let mut seen_ids = std::collections::HashSet::new();
        for (path, item) in paths {
            let item_at = join("/paths", path);
            if path.starts_with("x-") {
                continue; // a specification extension, not a path
            }
            if !path.starts_with('/') {
                self.problem(&item_at, format!("path \"{path}\" must start with '/'"));
                continue;
            }
            let Some((item, item_at)) = self.resolved(item, &item_at) else {
                continue;
            };
            let Some(item) = item.as_object() else {
                continue;
            };
            let shared_params = item.get("parameters");
            for method in METHODS {
                let Some(op) = item.get(*method) else {
                    continue;
                };
                let op_at = join(&item_at, method);
                if !op.is_object() {
                    self.problem(&op_at, "an operation must be an object");
                    continue;
                }
                let mut id = op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .map_or_else(|| generated_id(method, path), str::to_owned);
                // Duplicate operationIds break the spec's own rule, but real
                // documents have them; keep every operation addressable.
                let base_id = id.clone();
                let mut suffix = 2;
                while !seen_ids.insert(id.clone()) {
                    id = format!("{base_id}_{suffix}");
                    suffix += 1;
                }
                let parameters =
                    self.parameters(shared_params, &item_at, op.get("parameters"), &op_at, path);
                let request_body = op
                    .get("requestBody")
                    .and_then(|b| self.request_body(b, &join(&op_at, "requestBody")));
                let responses = self.responses(op.get("responses"), &join(&op_at, "responses"));
                let security = match op.get("security") {
                    Some(value) => self.security(Some(value), &join(&op_at, "security"), schemes),
                    None => global_security.to_vec(),
                };
                operations.push(Operation {
                    id,
                    method: method.to_ascii_uppercase(),
                    path: path.clone(),
                    pointer: op_at,
                    parameters,
                    request_body,
                    responses,
                    security,
                    publishable: op.get("x-sandbox-publishable").and_then(Value::as_bool)
                        == Some(true),
                });
            }
        }
        operations
    }

    fn parameters(
        &mut self,
        shared: Option<&Value>,
        shared_at: &str,
        own: Option<&Value>,
        own_at: &str,
        path: &str,
    ) -> Vec<Parameter> {
        let mut out: Vec<Parameter> = Vec::new();
        for (list, at) in [
            (shared, join(shared_at, "parameters")),
            (own, join(own_at, "parameters")),
        ] {
            let Some(list) = list else { continue };
            let Some(list) = list.as_array() else {
                self.problem(at, "`parameters` must be an array");
                continue;
            };
            for (index, param) in list.iter().enumerate() {
                let Some(param) = self.parameter(param, &format!("{at}/{index}")) else {
                    continue;
                };
                // Operation-level parameters override path-level ones.
                out.retain(|p| !(p.name == param.name && p.location == param.location));
                out.push(param);
            }
        }
        // Real specs often forget to declare a templated path segment; it is
        // still a path parameter, of type string.
        for name in template_names(path) {
            if !out
                .iter()
                .any(|p| p.location == ParamLocation::Path && p.name == name)
            {
                out.push(Parameter {
                    name,
                    location: ParamLocation::Path,
                    required: true,
                    style: ParamStyle::Simple,
                    explode: false,
                    schema_pointer: None,
                    schema: serde_json::json!({"type": "string"}),
                    json_content: false,
                });
            }
        }
        out
    }

    fn parameter(&mut self, param: &Value, at: &str) -> Option<Parameter> {
        let (param, at) = self.resolved(param, at)?;
        let name = param.get("name").and_then(Value::as_str);
        let location = match param.get("in").and_then(Value::as_str) {
            Some("path") => ParamLocation::Path,
            Some("query") => ParamLocation::Query,
            Some("header") => ParamLocation::Header,
            Some("cookie") => ParamLocation::Cookie,
            other => {
                self.problem(
                    join(&at, "in"),
                    format!(
                        "parameter location {other:?} is not one of path, query, header, cookie"
                    ),
                );
                return None;
            }
        };
        let Some(name) = name else {
            self.problem(&at, "a parameter needs a `name`");
            return None;
        };
        if location == ParamLocation::Header
            && ["accept", "content-type", "authorization"]
                .contains(&name.to_ascii_lowercase().as_str())
        {
            // OpenAPI says these are ignored as parameters.
            return None;
        }
        let style = match param.get("style").and_then(Value::as_str) {
            Some("form") => ParamStyle::Form,
            Some("label") => ParamStyle::Label,
            Some("matrix") => ParamStyle::Matrix,
            Some("spaceDelimited") => ParamStyle::SpaceDelimited,
            Some("pipeDelimited") => ParamStyle::PipeDelimited,
            Some("deepObject") => ParamStyle::DeepObject,
            Some("simple") => ParamStyle::Simple,
            Some(other) => {
                self.problem(
                    join(&at, "style"),
                    format!("unknown parameter style \"{other}\""),
                );
                return None;
            }
            None if matches!(location, ParamLocation::Query | ParamLocation::Cookie) => {
                ParamStyle::Form
            }
            None => ParamStyle::Simple,
        };
        let explode = param
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(style == ParamStyle::Form);
        let (schema_pointer, json_content) = if param.get("schema").is_some() {
            (Some(join(&at, "schema")), false)
        } else if let Some(Value::Object(content)) = param.get("content") {
            let media = content.keys().next().cloned().unwrap_or_default();
            let pointer = join(&join(&join(&at, "content"), &media), "schema");
            (self.document.pointer(&pointer).map(|_| pointer), true)
        } else {
            (None, false)
        };
        let schema = match &schema_pointer {
            Some(p) => {
                let raw = self.document.pointer(p).unwrap_or(&Value::Null);
                self.resolved(raw, p)
                    .map(|(s, _)| s.clone())
                    .unwrap_or(Value::Null)
            }
            None => Value::Null,
        };
        Some(Parameter {
            name: name.to_owned(),
            location,
            required: location == ParamLocation::Path
                || param
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            style,
            explode,
            schema_pointer,
            schema,
            json_content,
        })
    }

    fn request_body(&mut self, body: &Value, at: &str) -> Option<RequestBody> {
        let (body, at) = self.resolved(body, at)?;
        let content = self.content(body.get("content"), &join(&at, "content"));
        Some(RequestBody {
            required: body
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            content,
        })
    }

    fn content(&mut self, content: Option<&Value>, at: &str) -> Vec<MediaTypeSpec> {
        let Some(Value::Object(content)) = content else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (media_type, media) in content {
            let media_at = join(at, media_type);
            let schema_pointer = media.get("schema").map(|_| join(&media_at, "schema"));
            let mut examples = Vec::new();
            if let Some(example) = media.get("example") {
                examples.push(("example".to_owned(), example.clone()));
            }
            if let Some(Value::Object(named)) = media.get("examples") {
                for (name, example) in named {
                    let example_at = join(&join(&media_at, "examples"), name);
                    if let Some((example, _)) = self.resolved(example, &example_at)
                        && let Some(value) = example.get("value")
                    {
                        examples.push((name.clone(), value.clone()));
                    }
                }
            }
            if is_json_media(media_type) {
                for (_, example) in &mut examples {
                    decode_json_text(example);
                }
            }
            out.push(MediaTypeSpec {
                media_type: media_type.to_ascii_lowercase(),
                schema_pointer,
                examples,
                encoding: property_encodings(media.get("encoding")),
            });
        }
        out
    }

    fn responses(&mut self, responses: Option<&Value>, at: &str) -> Vec<ResponseSpec> {
        let Some(Value::Object(responses)) = responses else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, response) in responses {
            let response_at = join(at, key);
            if key.starts_with("x-") {
                continue;
            }
            let Some(status) = StatusKey::parse(key) else {
                self.problem(
                    &response_at,
                    format!("\"{key}\" is not a status code, a range like 4XX, or default"),
                );
                continue;
            };
            let Some((response, response_at)) = self.resolved(response, &response_at) else {
                continue;
            };
            let content = self.content(response.get("content"), &join(&response_at, "content"));
            let mut headers = Vec::new();
            if let Some(Value::Object(declared)) = response.get("headers") {
                for (name, header) in declared {
                    let header_at = join(&join(&response_at, "headers"), name);
                    let Some((header, header_at)) = self.resolved(header, &header_at) else {
                        continue;
                    };
                    if name.eq_ignore_ascii_case("content-type") {
                        continue;
                    }
                    headers.push(ResponseHeader {
                        name: name.clone(),
                        required: header
                            .get("required")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                        schema_pointer: header.get("schema").map(|_| join(&header_at, "schema")),
                    });
                }
            }
            out.push(ResponseSpec {
                status,
                pointer: response_at,
                content,
                headers,
            });
        }
        out.sort_by_key(|r| r.status);
        out
    }
}

fn generated_id(method: &str, path: &str) -> String {
    let mut id = String::from(method);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            segment
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

/// The `{names}` of a path template, in order.
pub fn template_names(path: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        names.push(rest[open + 1..open + close].to_owned());
        rest = &rest[open + close + 1..];
    }
    names
}

fn is_json_media(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// An example of a JSON body given as its JSON text (`"{\"id\": 1}"`, as
/// Jira's spec does) is the value that text holds.
fn decode_json_text(example: &mut Value) {
    if let Value::String(text) = example
        && text.trim_start().starts_with(['{', '['])
        && let Ok(value) = serde_json::from_str::<Value>(text)
    {
        *example = value;
    }
}

/// A media type's `encoding` map; unknown styles fall back to `form`, the
/// default for form bodies.
fn property_encodings(encoding: Option<&Value>) -> Vec<(String, PropertyEncoding)> {
    let Some(Value::Object(encoding)) = encoding else {
        return Vec::new();
    };
    encoding
        .iter()
        .map(|(name, entry)| {
            let style = match entry.get("style").and_then(Value::as_str) {
                Some("deepObject") => ParamStyle::DeepObject,
                Some("spaceDelimited") => ParamStyle::SpaceDelimited,
                Some("pipeDelimited") => ParamStyle::PipeDelimited,
                _ => ParamStyle::Form,
            };
            let explode = entry
                .get("explode")
                .and_then(Value::as_bool)
                .unwrap_or(style == ParamStyle::Form);
            let content_type = entry
                .get("contentType")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase);
            let property = PropertyEncoding {
                style,
                explode,
                content_type,
            };
            (name.clone(), property)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn base_path_comes_from_the_first_server_with_variable_defaults() {
        let doc = json!({"servers": [{"url": "https://{host}/api/{version}/", "variables": {
            "host": {"default": "example.com"}, "version": {"default": "v2"}}}]});
        assert_eq!(base_path(&doc), "/api/v2");
        assert_eq!(base_path(&json!({"servers": [{"url": "/v1"}]})), "/v1");
        assert_eq!(
            base_path(&json!({"servers": [{"url": "//kubernetes.local"}]})),
            ""
        );
        assert_eq!(
            base_path(&json!({"servers": [{"url": "//h.io/api/"}]})),
            "/api"
        );
        assert_eq!(
            server_origins(
                &json!({"servers": [{"url": "https://API.github.com/v3"}, {"url": "/v1"}, {"url": "https://api.github.com"}]})
            ),
            vec!["https://api.github.com"]
        );
        assert_eq!(
            base_path(&json!({"servers": [{"url": "https://x.io"}]})),
            ""
        );
    }

    #[test]
    fn json_examples_given_as_text_are_their_values() {
        let mut text = json!("{\"id\": 1, \"name\": \"scheme\"}");
        decode_json_text(&mut text);
        assert_eq!(text, json!({"id": 1, "name": "scheme"}));
        let mut prose = json!("{ not json");
        decode_json_text(&mut prose);
        assert_eq!(prose, json!("{ not json"));
        assert!(is_json_media("application/vnd.api+json; charset=utf-8"));
        assert!(!is_json_media("text/plain"));
    }

    #[test]
    fn status_keys_parse() {
        assert_eq!(StatusKey::parse("404"), Some(StatusKey::Code(404)));
        assert_eq!(StatusKey::parse("5xx"), Some(StatusKey::Range(5)));
        assert_eq!(StatusKey::parse("default"), Some(StatusKey::Default));
        assert_eq!(StatusKey::parse("999"), None);
    }
}
