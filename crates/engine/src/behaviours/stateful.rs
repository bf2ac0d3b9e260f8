//! CRUD on a sandbox's collections, for operations bound to one (see
//! [`crate::compile::resources`]) and for the data API of scripts.

use std::{borrow::Cow, sync::Arc};

use sbx_spec::synth;
use serde_json::{Map, Value, json};

use crate::{
    Response,
    behaviours::call::Call,
    compile::resources::{Action, Binding, CollectionSpec, IdKind, ListShape, Page},
    pipeline::cache::Synthesized,
    pipeline::failure::{Culprit, Failure, FailureKind},
    pipeline::order::Plan,
    pipeline::problem::ProblemType,
    pipeline::respond::{self, BodySource, Prefer, Rendered},
    state::Record,
};

/// Answers an operation bound to a collection.
pub fn answer(call: &Call, binding: &Binding) -> Result<Rendered, Response> {
    let revision = &call.revision;
    let spec = &revision.behaviours.resources.collections[binding.collection];
    let scope = scope_of(call, binding);
    let id = binding.id_param.as_ref().and_then(|p| call.path_param(p));
    match (binding.action, id) {
        (Action::Create, _) => {
            let body = request_body(call, spec);
            create(call, spec, &scope, body.as_deref())
        }
        (Action::List, _) => list(call, spec, &scope, binding.list.as_ref()),
        (Action::Get, Some(id)) => match find_in_scope(call, spec, &scope, &id) {
            Some(record) => success(
                call,
                BodySource::Record(linked(call, binding.collection, record)),
            ),
            None if materializes(call, spec, &id) => {
                let value = materialized(call, spec, binding.collection, &id)?;
                success(call, BodySource::Record(Arc::new(Synthesized::new(value))))
            }
            None => Err(not_found(call, spec, &id)),
        },
        (Action::Replace, Some(id)) => match find_in_scope(call, spec, &scope, &id) {
            Some(record) => {
                let body = request_body(call, spec);
                let mut value = merged(record.value.value(), body.as_deref(), false);
                keep_declared(&mut value, closed_answer(call));
                let stored = store(
                    call,
                    spec,
                    &id,
                    &scope,
                    Some(record.seq),
                    Synthesized::shared(value),
                )?;
                success(
                    call,
                    BodySource::Record(linked(call, binding.collection, stored)),
                )
            }
            None if declares(call, 201) || materializes(call, spec, &id) => {
                let mut body = request_body(call, spec).map_or_else(|| json!({}), Cow::into_owned);
                set_id(
                    &mut body,
                    spec,
                    Value::String(id.clone()),
                    spec.id_kind == IdKind::Integer,
                );
                create(call, spec, &scope, Some(&body))
            }
            None => Err(not_found(call, spec, &id)),
        },
        (Action::Update, Some(id)) => {
            let (current, seq) = match find_in_scope(call, spec, &scope, &id) {
                Some(record) => (record.value.value().clone(), Some(record.seq)),
                None if materializes(call, spec, &id) => {
                    (materialized(call, spec, binding.collection, &id)?, None)
                }
                None => return Err(not_found(call, spec, &id)),
            };
            let mut value = merged(&current, request_body(call, spec).as_deref(), true);
            keep_declared(&mut value, closed_answer(call));
            let stored = store(call, spec, &id, &scope, seq, Synthesized::shared(value))?;
            success(
                call,
                BodySource::Record(linked(call, binding.collection, stored)),
            )
        }
        (Action::Delete, Some(id)) => {
            if find_in_scope(call, spec, &scope, &id).is_none() {
                if materializes(call, spec, &id) {
                    let value = materialized(call, spec, binding.collection, &id)?;
                    return success(call, BodySource::Record(Arc::new(Synthesized::new(value))));
                }
                // DELETE is idempotent (RFC 9110, 9.2.2): deleting again
                // answers the success again where no 404 is documented.
                if !strict_not_found(call) && !respond::declares(call.operation(), 404) {
                    return success(call, BodySource::Default);
                }
            }
            existing(call, spec, &scope, &id)?;
            let removed =
                call.sandbox
                    .state
                    .delete(&spec.name, &id, &mut call.journal.borrow_mut().changes);
            match removed {
                Some(record) => success(call, BodySource::Record(record.value)),
                None => Err(not_found(call, spec, &id)),
            }
        }
        // The id parameter is optional and absent: the spec's own answer.
        (_, None) => success(call, BodySource::Default),
    }
}

/// The request's body, its members renamed as the project maps them onto
/// record members (`collections.<name>.members` in `project.yaml`).
fn request_body<'c>(call: &'c Call, spec: &CollectionSpec) -> Option<Cow<'c, Value>> {
    match call.request.body.as_ref()? {
        Value::Object(members) if !spec.request_members.is_empty() => {
            Some(Cow::Owned(Value::Object(
                members
                    .iter()
                    .map(|(name, value)| {
                        let name = spec.request_members.get(name).unwrap_or(name);
                        (name.clone(), value.clone())
                    })
                    .collect(),
            )))
        }
        body => Some(Cow::Borrowed(body)),
    }
}

fn scope_of(call: &Call, binding: &Binding) -> String {
    binding
        .scope_params
        .iter()
        .filter_map(|p| call.path_param(p))
        .collect::<Vec<_>>()
        .join("/")
}

fn declares(call: &Call, status: u16) -> bool {
    call.operation()
        .responses
        .iter()
        .any(|r| r.spec.status == sbx_spec::StatusKey::Code(status))
}

/// The operation's success answer with `body`.
fn success(call: &Call, body: BodySource<'_>) -> Result<Rendered, Response> {
    // A declared 204 has no content: the body is dropped by `render`.
    call.render(&Prefer::default(), body)
}

fn find_in_scope(call: &Call, spec: &CollectionSpec, scope: &str, id: &str) -> Option<Record> {
    call.sandbox
        .state
        .get(&spec.name, id)
        .filter(|r| scope.is_empty() || r.scope.is_empty() || r.scope == scope)
}

fn existing(call: &Call, spec: &CollectionSpec, scope: &str, id: &str) -> Result<Record, Response> {
    find_in_scope(call, spec, scope, id).ok_or_else(|| not_found(call, spec, id))
}

/// Whether an unknown id gets a record rather than a 404: when the
/// operation documents no 404 (nor `4XX`, nor a `default` error), an
/// undocumented 404 would break the contract; `strict_not_found` in
/// `project.yaml` asks for the 404 anyway, and a deleted record stays
/// gone (a 404, as the provider would answer).
fn materializes(call: &Call, spec: &CollectionSpec, id: &str) -> bool {
    !strict_not_found(call)
        && !respond::declares(call.operation(), 404)
        && !call.sandbox.state.was_deleted(&spec.name, id)
}

fn strict_not_found(call: &Call) -> bool {
    call.revision.behaviours.settings.strict_not_found
}

/// The record an unknown id reads as: the operation's synthesized answer
/// (the same for the same id, every time) with that id. Not stored: a
/// read changes nothing.
fn materialized(
    call: &Call,
    spec: &CollectionSpec,
    collection: usize,
    id: &str,
) -> Result<Value, Response> {
    let mut value = call.synthesized_object()?;
    set_id(
        &mut value,
        spec,
        Value::String(id.to_owned()),
        spec.id_kind == IdKind::Integer,
    );
    set_record_links(call, collection, id, &mut value);
    Ok(value)
}

/// The spec's declared 404 (shaped by its schema), else a problem.
pub fn not_found(call: &Call, spec: &CollectionSpec, id: &str) -> Response {
    let reason = format!("no {} record has id {id:?}", spec.name);
    let failure = Failure::new(FailureKind::NotFound, &reason).about(Some(Culprit {
        name: spec.id_field.clone(),
        pointer: format!("/{}", sbx_spec::pointer::escape(&spec.id_field)),
    }));
    error(call, &[404], &failure, ProblemType::NotFound)
}

/// The spec's declared error for the first of `statuses` it declares,
/// saying `failure`; else a `problem` with the first status.
pub fn error(
    call: &Call,
    statuses: &[u16],
    failure: &Failure<'_>,
    problem: ProblemType,
) -> Response {
    respond::declared_error(
        &call.revision,
        call.sandbox.seed,
        call.operation(),
        &call.exchange(),
        statuses,
        failure,
    )
    .unwrap_or_else(|| {
        let status = statuses.first().copied().unwrap_or(problem.status());
        problem.response_with(status, failure.reason, None)
    })
}

fn create(
    call: &Call,
    spec: &CollectionSpec,
    scope: &str,
    body: Option<&Value>,
) -> Result<Rendered, Response> {
    let base = call.synthesized()?;
    let empty = Value::Object(Map::new());
    let base = base.as_ref().map_or(&empty, |b| b.value());
    // A wrapped resource (`{data: {type, attributes}}`) merges member by member.
    let mut value = merged(base, body, spec.wrapper.is_some());
    let closed = closed_answer(call);
    keep_declared(&mut value, closed);
    stamp_times(&mut value, call, body);
    // A record under a lifecycle starts in its initial state, whatever
    // the synthesized value or the client said.
    if let Some(lifecycle) = call.revision.behaviours.lifecycles.of(&spec.name)
        && let Some(object) = value.as_object_mut()
    {
        object.insert(
            lifecycle.field.clone(),
            Value::String(lifecycle.default_state().to_owned()),
        );
    }
    let requested = body
        .and_then(|b| spec.resource(b).get(&spec.id_field))
        .filter(|v| !v.is_null())
        .map(id_text);
    let id = match requested {
        // Where no 409 is documented, the client's id names the record it
        // writes (an upsert) rather than an undocumented conflict.
        Some(id)
            if respond::declares(call.operation(), 409)
                && call.sandbox.state.contains(&spec.name, &id) =>
        {
            let reason = format!("a {} record with id {id:?} already exists", spec.name);
            let failure = Failure::new(FailureKind::Conflict, &reason);
            return Err(error(call, &[409], &failure, ProblemType::Conflict));
        }
        Some(id) => id,
        None => {
            let id = new_id(call, spec);
            // A closed answer without the id field is kept by its key only.
            if closed.is_none_or(|plan| plan.declares(&spec.id_field)) {
                set_id(&mut value, spec, id.clone(), false);
            }
            id_text(&id)
        }
    };
    if let Some((collection, _)) = call.revision.behaviours.resources.collection(&spec.name) {
        set_record_links(call, collection, &id, &mut value);
    }
    // Stored as answered: repaired to the answer's schema (see `conform`).
    let record = Arc::new(Synthesized::new(value));
    let rendered = success(call, BodySource::Record(record.clone()))?;
    store(
        call,
        spec,
        &id,
        scope,
        None,
        rendered.value.clone().unwrap_or(record),
    )?;
    Ok(rendered)
}

/// The plan of the operation's success answer when its schema is closed
/// (`additionalProperties: false`): a record keeps only the members it
/// declares, so that what it answers stays within the contract (RPC-style
/// specs such as Slack's close every answer).
fn closed_answer(call: &Call) -> Option<&Plan> {
    let (_, declared) = respond::select(call.operation(), &Prefer::default())
        .ok()
        .flatten()?;
    let media = declared.content.iter().find(|m| {
        crate::request::body::is_json(&crate::request::body::essence(&m.spec.media_type))
    })?;
    let plan = media.order_plan(&call.revision.response_document);
    plan.is_closed().then_some(plan)
}

/// Drops the members of `value` that a closed answer does not declare.
fn keep_declared(value: &mut Value, closed: Option<&Plan>) {
    if let (Value::Object(map), Some(plan)) = (value, closed) {
        map.retain(|name, _| plan.declares(name));
    }
}

fn store(
    call: &Call,
    spec: &CollectionSpec,
    id: &str,
    scope: &str,
    seq: Option<u64>,
    value: Arc<Synthesized>,
) -> Result<Record, Response> {
    crate::behaviours::lifecycle::write_shared(call, &spec.name, id, scope, seq, value)
        .map_err(|refused| refused.response(call))
}

/// The text form of an id value (the key in URLs).
pub fn id_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Shortest id drawn from a pattern that allows longer ones.
const UNIQUE_ID_CHARS: usize = 18;

/// A new id for `spec`, deterministic in (sandbox seed, collection,
/// sequence), and not one a record has (a narrow pattern may repeat).
pub fn new_id(call: &Call, spec: &CollectionSpec) -> Value {
    let (seq, next_int) = call.sandbox.state.next_ids(&spec.name);
    let mut id = Value::Null;
    for attempt in 0..16 {
        id = id_at(
            call.sandbox.seed,
            spec,
            seq + attempt,
            next_int + attempt as i64,
        );
        if !call.sandbox.state.contains(&spec.name, &id_text(&id)) {
            break;
        }
    }
    id
}

/// The id the record numbered `seq` (or `next_int`) gets in a sandbox seeded `seed`.
pub fn id_at(seed: u64, spec: &CollectionSpec, seq: u64, next_int: i64) -> Value {
    let seed = synth::seed_from([
        &seed.to_le_bytes()[..],
        spec.name.as_bytes(),
        &seq.to_le_bytes(),
    ]);
    match &spec.id_kind {
        IdKind::Integer => Value::from(next_int),
        IdKind::Uuid => Value::String(synth::fake("uuid", seed)),
        IdKind::Prefixed(prefix) => {
            Value::String(format!("{prefix}{}", synth::alphanumeric(14, seed)))
        }
        IdKind::Pattern { pattern, min, max } => {
            // Long enough not to repeat when the pattern allows (`^pay_[a-z0-9]+$`).
            let roomy = (*min).max(UNIQUE_ID_CHARS).min(*max);
            // A few characters of spread, not up to a `maxLength` of 255.
            let concise = roomy.saturating_add(8).min(*max);
            Value::String(
                synth::matching(pattern, roomy, concise, seed)
                    .or_else(|| synth::matching(pattern, *min, *max, seed))
                    .unwrap_or_else(|| synth::alphanumeric(14, seed)),
            )
        }
    }
}

pub fn set_id(value: &mut Value, spec: &CollectionSpec, id: Value, numeric: bool) {
    let id = match (&id, numeric) {
        (Value::String(text), true) => text.parse::<i64>().map_or(id.clone(), Value::from),
        _ => id,
    };
    if let Value::Object(map) = spec.resource_mut(value) {
        map.insert(spec.id_field.clone(), id);
    }
}

/// `body` merged into `base`: members replace those of the same name
/// (a request's `To` or `status-callback` is the record's `to` or
/// `status_callback`: names match ignoring case, `_` and `-`); with
/// `patch`, objects merge recursively and `null` removes (RFC 7386).
pub fn merged(base: &Value, body: Option<&Value>, patch: bool) -> Value {
    let Some(body) = body else {
        return base.clone();
    };
    match (base, body) {
        (Value::Object(base), Value::Object(changes)) if !patch => {
            // What the body sets is not cloned from the base to be replaced.
            // Each member the body sets, and whether the base has it.
            let set: Vec<(&str, bool, &Value)> = changes
                .iter()
                .map(|(key, change)| {
                    let (member, held) = record_member(base, key);
                    (member, held, change)
                })
                .collect();
            // Two body members may name one base member loosely: the last wins.
            let last = |key: &str| set.iter().rev().find(|(k, ..)| *k == key).map(|(.., c)| *c);
            let mut out = Map::with_capacity(base.len() + set.len());
            for (key, value) in base {
                out.insert(key.clone(), last(key).unwrap_or(value).clone());
            }
            // The body's keys are distinct: one not in the base is new.
            for (key, _, change) in set.iter().filter(|(_, held, _)| !held) {
                out.insert((*key).to_owned(), (*change).clone());
            }
            Value::Object(out)
        }
        (Value::Object(base), Value::Object(changes)) => {
            let mut out = base.clone();
            for (key, change) in changes {
                let (key, _) = record_member(base, key);
                if change.is_null() {
                    out.remove(key);
                } else if let Some(old) = base.get(key).filter(|o| o.is_object()) {
                    out.insert(key.to_owned(), merged(old, Some(change), true));
                } else {
                    out.insert(key.to_owned(), change.clone());
                }
            }
            Value::Object(out)
        }
        _ => body.clone(),
    }
}

/// The member of `record` that a request's member `name` sets: the same
/// name, else the one equal to it ignoring case, `_` and `-`, else `name`;
/// and whether `record` has it.
fn record_member<'a>(record: &'a Map<String, Value>, name: &'a str) -> (&'a str, bool) {
    // A record of a few members is scanned faster than its key is hashed.
    let held = if record.len() <= 16 {
        record.keys().any(|key| key == name)
    } else {
        record.contains_key(name)
    };
    if held {
        return (name, true);
    }
    record
        .keys()
        .find(|key| crate::loosely_named(key, name))
        .map_or((name, false), |key| (key.as_str(), true))
}

/// Creation and update times the client did not send become the sandbox
/// clock's now, in the form the synthesized value had (RFC 3339 or Unix seconds).
fn stamp_times(value: &mut Value, call: &Call, body: Option<&Value>) {
    const NAMES: [&str; 6] = [
        "created",
        "created_at",
        "createdAt",
        "updated",
        "updated_at",
        "updatedAt",
    ];
    let Value::Object(map) = value else { return };
    // One pass over the record's members: hashing six names into the
    // record and six into the body cost more than the stamping.
    for (name, slot) in map.iter_mut() {
        if !NAMES.contains(&name.as_str()) || body.is_some_and(|b| b.get(name).is_some()) {
            continue;
        }
        match slot {
            Value::String(_) => *slot = Value::String(call.now_rfc3339()),
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                *slot = Value::from(call.sandbox.now_ms / 1000);
            }
            _ => {}
        }
    }
}

/// Equality as a query string sees it: `"7"` matches `7` and `true` matches `"true"`.
pub fn loosely_equal(record: &Value, wanted: &Value) -> bool {
    if record == wanted {
        return true;
    }
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    };
    match (text(record), text(wanted)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Records of `collection` (in `scope` when not empty) whose members equal `filters`.
pub fn filtered(
    call: &Call,
    collection: &str,
    scope: &str,
    filters: &Map<String, Value>,
) -> Vec<Record> {
    let scope = (!scope.is_empty()).then_some(scope);
    call.sandbox.state.scan(collection, scope, |record| {
        filters.iter().all(|(name, wanted)| {
            record
                .value
                .value()
                .get(name)
                .is_some_and(|have| match wanted {
                    Value::Array(any) => any.iter().any(|w| loosely_equal(have, w)),
                    one => loosely_equal(have, one),
                })
        })
    })
}

fn query_value<'a>(call: &'a Call, name: Option<&String>) -> Option<&'a str> {
    let name = name?;
    call.request
        .query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn list(
    call: &Call,
    spec: &CollectionSpec,
    scope: &str,
    shape: Option<&ListShape>,
) -> Result<Rendered, Response> {
    let default_shape = ListShape {
        default_limit: crate::compile::resources::MAX_UNPAGED,
        ..ListShape::default()
    };
    let shape = shape.unwrap_or(&default_shape);
    let mut filters = Map::new();
    for name in &shape.filters {
        let values: Vec<Value> = call
            .request
            .query
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|v| Value::String(v.to_owned()))
            .collect();
        // `state=all` (GitHub) asks for no filter.
        let everything = values
            .iter()
            .any(|v| matches!(v.as_str(), Some("all" | "any" | "*")));
        if !values.is_empty() && !everything {
            filters.insert(name.clone(), Value::Array(values));
        }
    }
    let records = filtered(call, &spec.name, scope, &filters);
    let total = records.len();
    let limit = query_value(call, shape.limit_param.as_ref())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(shape.default_limit)
        .clamp(1, crate::compile::resources::MAX_UNPAGED);
    let mut start = query_value(call, shape.offset_param.as_ref())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if let Some(page) =
        query_value(call, shape.page_param.as_ref()).and_then(|v| v.parse::<usize>().ok())
    {
        start = page.saturating_sub(1).saturating_mul(limit);
    }
    if let Some(cursor) = query_value(call, shape.cursor_param.as_ref()).filter(|c| !c.is_empty()) {
        start = records
            .iter()
            .position(|r| r.id == cursor)
            .map_or(total, |i| i + 1);
    }
    let page: Vec<&Record> = records.iter().skip(start).take(limit).collect();
    let has_more = start.saturating_add(page.len()) < total;
    let collection = call
        .revision
        .behaviours
        .resources
        .collection(&spec.name)
        .map(|(index, _)| index);
    let items = Value::Array(
        page.iter()
            .map(|r| {
                let mut value = spec.resource(r.value.value()).clone();
                if let Some(collection) = collection {
                    set_self_links(call, collection, &r.id, &mut value);
                }
                value
            })
            .collect(),
    );
    let body = match &shape.items_field {
        None => items,
        Some(field) => envelope(call, shape, field, items, (has_more, total), &page)?,
    };
    let paging = Paging {
        call,
        shape,
        limit,
        start,
        total,
        last_id: page.last().filter(|_| has_more).map(|r| r.id.as_str()),
    };
    let body = paging.linked(body);
    let mut rendered = success(call, BodySource::Record(Arc::new(Synthesized::new(body))))?;
    if shape.link_header {
        let header = paging.link_header();
        let headers = &mut rendered.response.headers;
        headers.retain(|(name, _)| name != "link");
        if !header.is_empty() {
            headers.push(("link".to_owned(), header));
        }
    }
    Ok(rendered)
}

/// The list envelope (synthesized) holding `items` and the paging facts.
fn envelope(
    call: &Call,
    shape: &ListShape,
    field: &str,
    items: Value,
    (has_more, total): (bool, usize),
    page: &[&Record],
) -> Result<Value, Response> {
    let mut envelope = call.synthesized_object()?;
    if let Value::Object(map) = &mut envelope {
        map.insert(field.to_owned(), items);
        if let Some(name) = &shape.has_more_field {
            map.insert(name.clone(), Value::Bool(has_more));
        }
        if let Some(name) = &shape.total_field {
            map.insert(name.clone(), Value::from(total));
        }
        if let Some(name) = &shape.next_cursor_field {
            match page.last().filter(|_| has_more) {
                Some(last) => map.insert(name.clone(), Value::String(last.id.clone())),
                None => map.remove(name),
            };
        }
    }
    Ok(envelope)
}

/// `record`'s value with its self links (`url`, `uri`, `self`, `href`,
/// `links.self`, `_links.self.href`) pointing at the operation that reads it.
fn linked(call: &Call, collection: usize, record: Record) -> Arc<Synthesized> {
    let spec = &call.revision.behaviours.resources.collections[collection];
    let has_links = |value: &Value| {
        value.as_object().is_some_and(|o| {
            SELF_LINKS.iter().any(|name| o.contains_key(*name))
                || o.contains_key("links")
                || o.contains_key("_links")
        })
    };
    let value = record.value.value();
    if !has_links(value) && !has_links(spec.resource(value)) {
        return record.value;
    }
    let mut value = value.clone();
    set_record_links(call, collection, &record.id, &mut value);
    Arc::new(Synthesized::new(value))
}

/// Self links of a record and, when it wraps its resource, of the resource.
fn set_record_links(call: &Call, collection: usize, id: &str, value: &mut Value) {
    set_self_links(call, collection, id, value);
    let spec = &call.revision.behaviours.resources.collections[collection];
    if spec.wrapper.is_some() {
        set_self_links(call, collection, id, spec.resource_mut(value));
    }
}

/// Members that hold a record's own URL (or path, as Twilio's `uri`).
const SELF_LINKS: [&str; 4] = ["url", "uri", "self", "href"];

fn set_self_links(call: &Call, collection: usize, id: &str, value: &mut Value) {
    let Value::Object(map) = value else {
        return;
    };
    // One pass over the members rather than six hashed lookups.
    let has_links = map
        .keys()
        .any(|key| SELF_LINKS.contains(&key.as_str()) || key == "links" || key == "_links");
    if !has_links {
        return;
    }
    let Some(path) = read_path(call, collection, id) else {
        return;
    };
    let url = format!("{}{path}", call.sandbox.base_url);
    for name in SELF_LINKS {
        if let Some(slot) = map.get_mut(name).filter(|v| v.is_string()) {
            // `uri` holds a path; the others the form the record's value has.
            let relative = name == "uri" || slot.as_str().is_some_and(|s| s.starts_with('/'));
            *slot = Value::String(if relative { path.clone() } else { url.clone() });
        }
    }
    if let Some(slot) = map
        .get_mut("links")
        .and_then(|l| l.get_mut("self"))
        .filter(|v| v.is_string())
    {
        *slot = Value::String(url.clone());
    }
    if let Some(slot) = map
        .get_mut("_links")
        .and_then(|l| l.get_mut("self"))
        .and_then(|s| s.get_mut("href"))
        .filter(|v| v.is_string())
    {
        *slot = Value::String(url);
    }
}

/// The path (below the sandbox's base URL) of the collection's read
/// operation for record `id`, its other path parameters taken from this
/// request (they scope the record); `None` without a base URL.
fn read_path(call: &Call, collection: usize, id: &str) -> Option<String> {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let revision = &call.revision;
    let (index, binding) = revision
        .behaviours
        .resources
        .bindings
        .iter()
        .enumerate()
        .find_map(|(i, b)| {
            b.as_ref()
                .filter(|b| b.collection == collection && b.action == Action::Get)
                .map(|b| (i, b))
        })?;
    let id_param = binding.id_param.as_deref()?;
    if call.sandbox.base_url.is_empty() {
        return None;
    }
    let template = &revision.operations[index].operation.path;
    let mut path = String::with_capacity(template.len() + id.len());
    let mut rest = template.as_str();
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}')?;
        let name = &rest[open + 1..close];
        let value = if name == id_param {
            id.to_owned()
        } else {
            call.path_param(name)?
        };
        path.push_str(&rest[..open]);
        path.extend(percent_encoding::utf8_percent_encode(&value, SEGMENT));
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    Some(format!("{}{path}", revision.model.base_path))
}

/// Where the pages around one list answer are.
struct Paging<'a> {
    call: &'a Call,
    shape: &'a ListShape,
    limit: usize,
    start: usize,
    total: usize,
    /// The last record answered, when more follow.
    last_id: Option<&'a str>,
}

impl Paging<'_> {
    /// `body` (an envelope) with its page links built from this page.
    fn linked(&self, mut body: Value) -> Value {
        if let Value::Object(map) = &mut body {
            for (name, link) in &self.shape.links {
                // `…uri` members hold paths; others the form the spec's own
                // value has (Stripe's `url` is `/v1/customers`).
                let absolute = link.absolute
                    && !map
                        .get(name)
                        .and_then(Value::as_str)
                        .is_some_and(|text| text.starts_with('/'));
                let url = self.url(link.page, absolute);
                map.insert(name.clone(), url.map_or(Value::Null, Value::String));
            }
        }
        body
    }

    /// The URL of `page` (a path when not `absolute`), by the operation's
    /// own paging parameters; `None` when there is no such page or no
    /// parameter reaches it.
    fn url(&self, page: Page, absolute: bool) -> Option<String> {
        let shape = self.shape;
        let mut set: Vec<(&String, String)> = Vec::new();
        let mut drop: Vec<&String> = Vec::new();
        let page_number = self.start / self.limit.max(1) + 1;
        match page {
            Page::Current => {}
            Page::First => {
                drop.extend(shape.offset_param.iter().chain(&shape.cursor_param));
                set.extend(shape.page_param.iter().map(|p| (p, "1".to_owned())));
            }
            Page::Next => {
                let last = self.last_id?;
                if let Some(cursor) = &shape.cursor_param {
                    set.push((cursor, last.to_owned()));
                    set.extend(
                        shape
                            .page_param
                            .iter()
                            .map(|p| (p, page_number.to_string())),
                    );
                } else if let Some(offset) = &shape.offset_param {
                    set.push((offset, (self.start + self.limit).to_string()));
                } else if let Some(number) = &shape.page_param {
                    set.push((number, (page_number + 1).to_string()));
                } else {
                    return None;
                }
            }
            Page::Last => {
                let last = self.total.div_ceil(self.limit.max(1)).max(1);
                if shape.cursor_param.is_some() {
                    return None;
                } else if let Some(offset) = &shape.offset_param {
                    set.push((offset, ((last - 1) * self.limit).to_string()));
                } else if let Some(number) = &shape.page_param {
                    set.push((number, last.to_string()));
                } else {
                    return None;
                }
            }
            Page::Previous => {
                if self.start == 0 {
                    return None;
                }
                if let Some(offset) = &shape.offset_param {
                    set.push((offset, self.start.saturating_sub(self.limit).to_string()));
                } else if let Some(number) = &shape.page_param {
                    set.push((number, (page_number - 1).max(1).to_string()));
                } else {
                    return None;
                }
            }
        }
        let request = &self.call.request;
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &request.query {
            if !drop.contains(&name) && !set.iter().any(|(n, _)| *n == name) {
                query.append_pair(name, value);
            }
        }
        for (name, value) in &set {
            query.append_pair(name, value);
        }
        let query = query.finish();
        let base = if absolute {
            self.call.sandbox.base_url.as_str()
        } else {
            ""
        };
        let separator = if query.is_empty() { "" } else { "?" };
        Some(format!("{base}{}{separator}{query}", request.path))
    }

    /// `Link` (RFC 8288): next, prev, first and, when pages are numbered or
    /// offset, last.
    fn link_header(&self) -> String {
        let mut links = Vec::new();
        let pages = [
            (Page::Next, "next"),
            (Page::Previous, "prev"),
            (Page::First, "first"),
            (Page::Last, "last"),
        ];
        for (page, rel) in pages {
            if let Some(url) = self.url(page, true) {
                links.push(format!("<{url}>; rel=\"{rel}\""));
            }
        }
        links.join(", ")
    }
}
