//! Choosing and rendering the answer: status, media type, body, headers.

use std::sync::Arc;

use bytes::Bytes;
use sbx_spec::{StatusKey, synth};
use serde_json::{Value, json};

use crate::{
    Response,
    compile::revision::{CompiledMedia, CompiledOperation, CompiledResponse, CompiledRevision},
    pipeline::cache::Synthesized,
    pipeline::conform,
    pipeline::failure::{self, Failure},
    pipeline::problem::ProblemType,
    request::body::{essence, is_json},
    request::negotiate,
    schema_view::SchemaView,
};

/// The `Prefer` preferences the sandbox honours (Prism's convention).
#[derive(Debug, Default)]
pub struct Prefer {
    pub code: Option<u16>,
    pub example: Option<String>,
}

/// Parses `Prefer: code=404, example=not_found`; unknown preferences are
/// ignored as RFC 7240 asks, malformed values of known ones are errors.
pub fn parse_prefer(header: Option<&str>) -> Result<Prefer, String> {
    let mut prefer = Prefer::default();
    let Some(header) = header else {
        return Ok(prefer);
    };
    for token in header.split([',', ';']) {
        let Some((name, value)) = token.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match name.trim().to_ascii_lowercase().as_str() {
            "code" => {
                let code = value
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| {
                        format!("`Prefer: code={value}` is not an HTTP status code (100-599)")
                    })?;
                prefer.code = Some(code);
            }
            "example" => prefer.example = Some(value.to_owned()),
            _ => {}
        }
    }
    Ok(prefer)
}

/// The declared response to answer with, and its concrete status.
pub fn select<'a>(
    operation: &'a CompiledOperation,
    prefer: &Prefer,
) -> Result<Option<(u16, &'a CompiledResponse)>, Response> {
    let responses = &operation.responses;
    if let Some(code) = prefer.code {
        let found = responses
            .iter()
            .find(|r| r.spec.status == StatusKey::Code(code))
            .or_else(|| {
                responses
                    .iter()
                    .find(|r| r.spec.status == StatusKey::Range(code / 100))
            })
            .or_else(|| {
                responses
                    .iter()
                    .find(|r| r.spec.status == StatusKey::Default)
            });
        return match found {
            Some(response) => Ok(Some((code, response))),
            None => Err(ProblemType::PreferUnknownCode.response(&format!(
                "`Prefer: code={code}` names no response of operation {}; it declares {}",
                operation.operation.id,
                declared_statuses(operation)
            ))),
        };
    }
    let success = responses
        .iter()
        .find(|r| matches!(r.spec.status, StatusKey::Code(200..=299)))
        .or_else(|| {
            responses
                .iter()
                .find(|r| r.spec.status == StatusKey::Range(2))
        });
    if let Some(response) = success {
        return Ok(Some((response.spec.status.code(), response)));
    }
    if let Some(response) = responses
        .iter()
        .find(|r| r.spec.status == StatusKey::Default)
    {
        return Ok(Some((200, response)));
    }
    Ok(responses.first().map(|r| (r.spec.status.code(), r)))
}

fn declared_statuses(operation: &CompiledOperation) -> String {
    let list: Vec<String> = operation
        .responses
        .iter()
        .map(|r| match r.spec.status {
            StatusKey::Code(c) => c.to_string(),
            StatusKey::Range(d) => format!("{d}XX"),
            StatusKey::Default => "default".to_owned(),
        })
        .collect();
    if list.is_empty() {
        "no responses".to_owned()
    } else {
        list.join(", ")
    }
}

/// Request facts that shape an answer.
pub struct Exchange<'a> {
    pub accept: Option<&'a str>,
    pub path_params: &'a [(String, String)],
    /// On an async worker: set when synthesis would be cold and costly,
    /// and the request must run again on the blocking pool.
    pub yielded: Option<&'a std::cell::Cell<bool>>,
}

/// The value of a declared response body before serialization.
pub struct Rendered {
    pub response: Response,
    pub value: Option<Arc<Synthesized>>,
}

/// Where a rendered body comes from.
pub enum BodySource<'a> {
    /// The media type's first example, else synthesis.
    Default,
    /// A named example (`Prefer: example=…`).
    Example(&'a str),
    /// A value made by a behaviour (a script's body, a template's).
    Given(Arc<Synthesized>),
    /// A stored record: answered as it is when it meets the response
    /// schema, else repaired to meet it (see [`conform`]).
    Record(Arc<Synthesized>),
}

/// Renders `response` with `status`, honouring `Accept`; `seed` is the
/// sandbox's.
pub fn render(
    revision: &CompiledRevision,
    seed: u64,
    operation: &CompiledOperation,
    declared: Option<(u16, &CompiledResponse)>,
    exchange: &Exchange<'_>,
    body: BodySource<'_>,
) -> Result<Rendered, Response> {
    let Some((status, declared)) = declared else {
        return Ok(Rendered {
            response: Response {
                status: 200,
                headers: Vec::new(),
                body: Bytes::new(),
            },
            value: None,
        });
    };
    let available = || declared.content.iter().map(|m| m.spec.media_type.as_str());
    let chosen = match negotiate::choose(exchange.accept, available()) {
        Ok(chosen) => chosen,
        // An undocumented 406 would break the contract more than a type
        // the client did not ask for: the one it would get without `Accept`.
        Err(()) if !declares(operation, 406) => {
            negotiate::choose(None, available()).unwrap_or(None)
        }
        Err(()) => {
            let available: Vec<&str> = available().collect();
            return Err(ProblemType::NotAcceptable.response_with(
                406,
                &format!(
                    "`Accept: {}` matches none of {}",
                    exchange.accept.unwrap_or(""),
                    available.join(", ")
                ),
                Some(json!({"available": available})),
            ));
        }
    };
    let mut headers = Vec::new();
    // The synthesis seed is hashed only when something is synthesized; the
    // cache's key, cheaper, on every request.
    let sandbox_seed = seed;
    let seed = std::cell::OnceCell::new();
    let seed = || {
        *seed.get_or_init(|| {
            response_seed(
                sandbox_seed,
                &operation.operation.id,
                status,
                exchange.path_params,
            )
        })
    };
    let key = std::cell::OnceCell::new();
    let key =
        || *key.get_or_init(|| answer_key(revision, sandbox_seed, operation, status, exchange));
    for header in &declared.headers {
        let Some(pointer) = &header.schema_pointer else {
            continue;
        };
        let header_key = revision
            .synthesized
            .key([&key().to_le_bytes()[..], header.name.as_bytes()]);
        let Some(value) = revision.synthesized.get_or_try_insert_with(header_key, || {
            let header_seed = synth::seed_from([&seed().to_le_bytes()[..], header.name.as_bytes()]);
            let validator = header.validator.get();
            Some(settled(
                revision.plans.synthesize(pointer, header_seed, validator),
                &|| validator,
            ))
        }) else {
            continue;
        };
        headers.push((header.name.to_ascii_lowercase(), header_text(value.value())));
    }
    let Some(index) = chosen else {
        if let BodySource::Example(name) = body {
            return Err(unknown_example(operation, name, &[]));
        }
        return Ok(Rendered {
            response: Response {
                status,
                headers,
                body: Bytes::new(),
            },
            value: None,
        });
    };
    let media = &declared.content[index];
    let synthesized = matches!(body, BodySource::Default) && media.spec.examples.is_empty();
    let value = match body {
        BodySource::Given(value) => Some(value),
        BodySource::Example(name) => {
            let found = std::iter::once(media)
                .chain(&declared.content)
                .find_map(|m| Some((m, m.spec.examples.iter().position(|(n, _)| n == name)?)));
            match found {
                Some((owner, index)) => Some(served_example(revision, owner, index, exchange)?),
                None => {
                    let names: Vec<&str> = declared
                        .content
                        .iter()
                        .flat_map(|m| m.spec.examples.iter().map(|(n, _)| n.as_str()))
                        .collect();
                    return Err(unknown_example(operation, name, &names));
                }
            }
        }
        BodySource::Record(record) => match media.validator.get() {
            Some(validator) if !validator.is_valid(record.value()) => {
                let base = synthesized_body(revision, media, key(), &seed, exchange)?;
                let repaired =
                    conform::conformed(record.value(), base.as_ref().map(|b| b.value()), validator);
                Some(Arc::new(Synthesized::new(repaired)))
            }
            _ => Some(record),
        },
        BodySource::Default if !media.spec.examples.is_empty() => {
            Some(served_example(revision, media, 0, exchange)?)
        }
        BodySource::Default => synthesized_body(revision, media, key(), &seed, exchange)?,
    };
    // What behaviours and examples give may hold members the response
    // schema marks `writeOnly` (a stored card's CVC): never sent back.
    // Synthesized values never hold them.
    let plan = || media.order_plan(&revision.response_document);
    let value = match value {
        Some(given) if !synthesized && plan().hides_write_only() => {
            let mut stripped = given.value().clone();
            if plan().strip_write_only(&mut stripped) {
                Some(Arc::new(Synthesized::new(stripped)))
            } else {
                Some(given)
            }
        }
        other => other,
    };
    // 204 and 304 never carry a body (RFC 9110), whatever a spec declares.
    let value = value.filter(|_| !matches!(status, 204 | 304));
    let content_type = negotiate::concrete(&media.spec.media_type, exchange.accept);
    let body = match &value {
        Some(v) if is_json(&essence(&content_type)) => v.json().clone(),
        Some(v) => serialize(&content_type, v.value()).into(),
        None => Bytes::new(),
    };
    // An empty body is not JSON (or anything else) to label.
    if !body.is_empty() {
        headers.push(("content-type".to_owned(), content_type.into_owned()));
    }
    if let Some(how) = value.as_ref().and_then(|v| v.unsatisfied.as_ref()) {
        headers.push(("x-sandbox-drift".to_owned(), how.clone()));
    }
    Ok(Rendered {
        response: Response {
            status,
            headers,
            body,
        },
        value,
    })
}

/// The spec's example `index` of `media` as answered: a spec's example that
/// breaks its own schema (a date shorter than its `minLength`) is repaired
/// like a record, from a value synthesized for the example's name, so
/// every answer keeps the contract. Checked once per revision.
fn served_example(
    revision: &CompiledRevision,
    media: &CompiledMedia,
    index: usize,
    exchange: &Exchange<'_>,
) -> Result<Arc<Synthesized>, Response> {
    media.served_example(index, |example| {
        let repaired = match media.validator.get() {
            Some(validator) if !validator.is_valid(example) => {
                // Unique to this media type and example: the synthesis
                // cache is shared by every operation of the revision.
                let name = &media.spec.examples[index].0;
                let schema = media.spec.schema_pointer.as_deref().unwrap_or_default();
                let seed =
                    synth::seed_from([b"example".as_slice(), schema.as_bytes(), name.as_bytes()]);
                let base = synthesized_body(revision, media, seed, &|| seed, exchange)?;
                conform::conformed(example, base.as_ref().map(|b| b.value()), validator)
            }
            _ => example.clone(),
        };
        Ok(Arc::new(Synthesized::new(repaired)))
    })
}

/// The media type's schema synthesized for `seed` (cached under `key`, what
/// the seed is a function of); `None` without a schema. A cold value of a
/// costly schema yields (see [`Exchange::yielded`]) with a placeholder error
/// the caller never sends.
fn synthesized_body(
    revision: &CompiledRevision,
    media: &CompiledMedia,
    key: u64,
    seed: &dyn Fn() -> u64,
    exchange: &Exchange<'_>,
) -> Result<Option<Arc<Synthesized>>, Response> {
    let Some(pointer) = &media.spec.schema_pointer else {
        return Ok(None);
    };
    let media_key = revision
        .synthesized
        .key([&key.to_le_bytes()[..], media.spec.media_type.as_bytes()]);
    let made = revision.synthesized.get_or_try_insert_with(media_key, || {
        // A cold value of a schema whose synthesis is costly (or
        // not measured yet) is made on the blocking pool.
        if let Some(yielded) = exchange.yielded
            && !media.cheap_to_synthesize()
        {
            yielded.set(true);
            return None;
        }
        // The plan compiles on first use: not part of the cost. The
        // validator compiles only if a value needs checking.
        let validator = || media.validator.get();
        let plan = media.plan(&revision.plans);
        let media_seed =
            synth::seed_from([&seed().to_le_bytes()[..], media.spec.media_type.as_bytes()]);
        let started = media.times_synthesis().then(std::time::Instant::now);
        let made = match plan {
            Some(plan) => match revision.plans.synthesize_json(plan, media_seed, &validator) {
                synth::Made::Json(json) => Synthesized::from_json(json.into(), None),
                synth::Made::Checked(value, json) => {
                    Synthesized::from_json(json.into(), Some(value))
                }
                synth::Made::Value(made) => settled(made, &validator),
            },
            // The pointer names no schema: nothing to check.
            None => settled(
                revision.plans.synthesize(pointer, media_seed, None),
                &validator,
            ),
        };
        if let Some(started) = started {
            media.synthesized_in(started.elapsed());
        }
        Some(made)
    });
    match made {
        Some(value) => Ok(Some(value)),
        None => Err(Response {
            status: 503,
            headers: Vec::new(),
            body: Bytes::new(),
        }),
    }
}

/// A synthesized value as answered; when no attempt satisfied its schema
/// (rules that contradict each other, or beyond what synthesis reaches),
/// it says how it breaks the schema, so that the answer is flagged as
/// drift rather than sent as if it were valid.
fn settled<'v>(
    made: synth::Synthesis,
    validator: &dyn Fn() -> Option<&'v sbx_spec::SchemaValidator>,
) -> Synthesized {
    let synth::Synthesis { value, valid, .. } = made;
    if valid {
        return Synthesized::new(value);
    }
    match validator().and_then(|v| v.violations(&value).into_iter().next()) {
        Some(violation) => {
            let message = format!(
                "synthesis could not satisfy the schema: {}",
                violation.message
            );
            let how = crate::pipeline::drift::summary(&violation.pointer, &message);
            Synthesized::unsatisfied(value, how)
        }
        None => Synthesized::new(value),
    }
}

fn unknown_example(operation: &CompiledOperation, name: &str, names: &[&str]) -> Response {
    ProblemType::PreferUnknownExample.response_with(
        400,
        &format!(
            "`Prefer: example={name}` names no example of operation {}; {}",
            operation.operation.id,
            if names.is_empty() {
                "it declares none".to_owned()
            } else {
                format!("it declares {}", names.join(", "))
            }
        ),
        Some(json!({"examples": names})),
    )
}

/// Seeds synthesis from (sandbox seed, operation, status, path parameters):
/// the determinism contract of ARCHITECTURE.md.
fn response_seed(
    sandbox_seed: u64,
    operation_id: &str,
    status: u16,
    path_params: &[(String, String)],
) -> u64 {
    let mut seed = synth::SeedHasher::default();
    seed.part(&[&sandbox_seed.to_le_bytes()]);
    seed.part(&[operation_id.as_bytes()]);
    seed.part(&[itoa::Buffer::new().format(status).as_bytes()]);
    // Parameters as `name=value` texts in sorted order.
    fn text((name, value): &(String, String)) -> [&[u8]; 3] {
        [name.as_bytes(), b"=", value.as_bytes()]
    }
    if let [param] = path_params {
        seed.part(&text(param));
    } else {
        let mut sorted: Vec<&(String, String)> = path_params.iter().collect();
        sorted.sort_by(|a, b| {
            text(a)
                .iter()
                .copied()
                .flatten()
                .cmp(text(b).iter().copied().flatten())
        });
        for param in sorted {
            seed.part(&text(param));
        }
    }
    seed.finish()
}

/// The cache's key for what [`response_seed`] hashes: the same parts, in
/// the router's (fixed) parameter order.
fn answer_key(
    revision: &CompiledRevision,
    sandbox_seed: u64,
    operation: &CompiledOperation,
    status: u16,
    exchange: &Exchange<'_>,
) -> u64 {
    let seed_bytes = sandbox_seed.to_le_bytes();
    let status_bytes = status.to_le_bytes();
    let head = [
        &seed_bytes[..],
        operation.operation.id.as_bytes(),
        &status_bytes[..],
    ];
    let params = exchange
        .path_params
        .iter()
        .flat_map(|(name, value)| [name.as_bytes(), value.as_bytes()]);
    revision.synthesized.key(head.into_iter().chain(params))
}

fn header_text(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(header_text).collect::<Vec<_>>().join(","),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k},{}", header_text(v)))
            .collect::<Vec<_>>()
            .join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    text.chars().filter(|c| !c.is_control()).collect()
}

/// Serializes per media type: JSON, text as is, XML from the JSON shape.
pub fn serialize(content_type: &str, value: &Value) -> Vec<u8> {
    let essence = essence(content_type);
    if is_json(&essence) {
        return serde_json::to_vec(value).unwrap_or_default();
    }
    if essence.ends_with("xml") {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        xml(&mut out, "root", value);
        return out.into_bytes();
    }
    match value {
        Value::String(text) => text.clone().into_bytes(),
        other => serde_json::to_vec(other).unwrap_or_default(),
    }
}

fn xml(out: &mut String, name: &str, value: &Value) {
    let tag: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match value {
        Value::Array(items) => items.iter().for_each(|item| xml(out, &tag, item)),
        Value::Object(map) => {
            out.push_str(&format!("<{tag}>"));
            map.iter().for_each(|(k, v)| xml(out, k, v));
            out.push_str(&format!("</{tag}>"));
        }
        Value::Null => out.push_str(&format!("<{tag}/>")),
        Value::String(s) => out.push_str(&format!("<{tag}>{}</{tag}>", escape_xml(s))),
        other => out.push_str(&format!("<{tag}>{other}</{tag}>")),
    }
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The spec's own error response for one of `statuses`, shaped by its
/// schema, with the reason in `X-Sandbox-Error` (and in the body's message
/// field when the schema has one). Without one of those codes, the first
/// status is answered in the shape of its declared range (`4XX`), else of
/// `default` when the operation declares a success beside it (a `default`
/// alone is the success of older specs).
pub fn declared_error(
    revision: &CompiledRevision,
    seed: u64,
    operation: &CompiledOperation,
    exchange: &Exchange<'_>,
    statuses: &[u16],
    failure: &Failure<'_>,
) -> Option<Response> {
    let (status, declared) = declared_for(operation, statuses)?;
    let rendered = render(
        revision,
        seed,
        operation,
        Some((status, declared)),
        exchange,
        BodySource::Default,
    )
    .ok()?;
    let mut response = rendered.response;
    if let Some(body) = rendered.value {
        let media = declared.content.iter().find(|m| {
            response
                .headers
                .iter()
                .any(|(n, v)| n == "content-type" && *v == m.spec.media_type)
        });
        if let Some(filled) = media.and_then(|m| said(revision, m, body.value(), failure, status)) {
            response.body = filled.into();
        }
    }
    let reason: String = failure
        .reason
        .chars()
        .filter(|c| !c.is_control())
        .take(512)
        .collect();
    response
        .headers
        .push(("x-sandbox-error".to_owned(), reason));
    Some(response)
}

/// The response the operation declares for the first of `statuses` it
/// names, else for its range (`4XX`), else its `default` when a success is
/// declared beside it (a `default` alone is the success of older specs).
fn declared_for<'a>(
    operation: &'a CompiledOperation,
    statuses: &[u16],
) -> Option<(u16, &'a CompiledResponse)> {
    let declared_as = |key: StatusKey| operation.responses.iter().find(|r| r.spec.status == key);
    let has_success = operation.responses.iter().any(|r| match r.spec.status {
        StatusKey::Code(code) => (200..300).contains(&code),
        StatusKey::Range(range) => range == 2,
        StatusKey::Default => false,
    });
    let first = *statuses.first()?;
    statuses
        .iter()
        .find_map(|status| declared_as(StatusKey::Code(*status)).map(|r| (*status, r)))
        .or_else(|| declared_as(StatusKey::Range(first / 100)).map(|r| (first, r)))
        .or_else(|| {
            has_success
                .then(|| declared_as(StatusKey::Default))
                .flatten()
                .map(|r| (first, r))
        })
}

/// Whether the operation documents an answer of `status` (itself, its
/// range, or a `default` beside a success).
pub fn declares(operation: &CompiledOperation, status: u16) -> bool {
    declared_for(operation, &[status]).is_some()
}

/// `body` (the declared error, synthesized) filled to say `failure`, when
/// the result still validates; else with the reason in its message member
/// only, when that does; else `None` (the body stays as synthesized).
fn said(
    revision: &CompiledRevision,
    media: &CompiledMedia,
    body: &Value,
    failure: &Failure<'_>,
    status: u16,
) -> Option<Vec<u8>> {
    let valid = |value: &Value| media.validator.get().is_none_or(|v| v.is_valid(value));
    let document = &revision.response_document;
    let schema = media
        .spec
        .schema_pointer
        .as_deref()
        .and_then(|p| document.pointer(p))
        .unwrap_or(&Value::Null);
    let overrides = revision.behaviours.settings.errors.get(&failure.kind);
    let origin = if media.spec.examples.is_empty() {
        failure::Origin::Synthesized
    } else {
        failure::Origin::Example
    };
    let mut filled = body.clone();
    failure::fill(
        &mut filled,
        (schema, origin),
        SchemaView::new(document),
        failure,
        status,
        overrides,
    );
    if valid(&filled) {
        return serde_json::to_vec(&filled).ok();
    }
    let mut messaged = body.clone();
    let slot = message_slot(&mut messaged, 0)?;
    *slot = Value::String(failure.reason.to_owned());
    valid(&messaged)
        .then(|| serde_json::to_vec(&messaged).ok())
        .flatten()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed is `seed_from` of the sandbox seed, operation, status and
    /// the sorted `name=value` texts, whatever the parameters' order: every
    /// synthesized value depends on it staying so.
    #[test]
    fn the_response_seed_hashes_sorted_parameter_texts() {
        let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect()
        };
        let expected = |texts: &[&str]| {
            let head = [&7u64.to_le_bytes()[..], b"getItem", b"200"];
            synth::seed_from(head.into_iter().chain(texts.iter().map(|t| t.as_bytes())))
        };
        assert_eq!(response_seed(7, "getItem", 200, &[]), expected(&[]));
        assert_eq!(
            response_seed(7, "getItem", 200, &params(&[("id", "42")])),
            expected(&["id=42"])
        );
        let unsorted = params(&[("b", "2"), ("a", "10"), ("a", "1"), ("a=", "")]);
        assert_eq!(
            response_seed(7, "getItem", 200, &unsorted),
            expected(&["a=1", "a=10", "a==", "b=2"])
        );
        assert_ne!(
            response_seed(7, "getItem", 201, &[]),
            response_seed(7, "getItem", 200, &[])
        );
    }
}
