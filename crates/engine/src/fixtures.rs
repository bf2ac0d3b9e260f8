//! Fixtures: records every sandbox starts with, under ids that are the same
//! in every sandbox, each checked against the spec at import.

use std::sync::Arc;

use sbx_spec::synth::{self, PatternCache};
use serde_json::{Map, Value};

use crate::{
    cache::Synthesized,
    project::FileProblem,
    resources::{Action, CollectionSpec, IdKind, Resources},
    revision::{CompiledMedia, CompiledOperation},
    state::FixtureRecord,
    stateful,
};

/// The JSON media of a collection's records: the read operation's success
/// response, else the create operation's.
pub fn record_media<'a>(
    operations: &'a [CompiledOperation],
    resources: &Resources,
    collection: usize,
) -> Option<&'a CompiledMedia> {
    let of = |action: Action| {
        resources
            .bindings
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_ref().map(|b| (i, b)))
            .filter(|(_, b)| b.collection == collection && b.action == action)
            .find_map(|(i, _)| {
                let response = operations[i].responses.iter().find(|r| {
                    matches!(
                        r.spec.status,
                        sbx_spec::StatusKey::Code(200..=299) | sbx_spec::StatusKey::Range(2)
                    )
                })?;
                response
                    .content
                    .iter()
                    .find(|m| crate::body::is_json(&crate::body::essence(&m.spec.media_type)))
            })
    };
    of(Action::Get).or_else(|| of(Action::Create))
}

/// A record completed to the collection's schema: `given` merged over a
/// value synthesized for `(collection, id)`, then checked.
pub struct RecordMaker<'a> {
    pub document: &'a Value,
    pub patterns: &'a PatternCache,
    pub media: Option<&'a CompiledMedia>,
}

impl RecordMaker<'_> {
    pub fn make(
        &self,
        spec: &CollectionSpec,
        id: &Value,
        given: &Map<String, Value>,
    ) -> Result<Value, String> {
        let seed = synth::seed_from([spec.name.as_bytes(), stateful::id_text(id).as_bytes()]);
        let base = self
            .media
            .and_then(|m| {
                let pointer = m.spec.schema_pointer.as_ref()?;
                Some(
                    synth::synthesize_valid(
                        self.document,
                        pointer,
                        seed,
                        self.patterns,
                        m.validator.get(),
                    )
                    .0,
                )
            })
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(Map::new()));
        let mut value = stateful::merged(&base, Some(&Value::Object(given.clone())), false);
        stateful::set_id(
            &mut value,
            spec,
            id.clone(),
            spec.id_kind == IdKind::Integer,
        );
        if let Some(validator) = self.media.and_then(|m| m.validator.get())
            && !validator.is_valid(&value)
        {
            let violations = validator.violations(&value);
            let text: Vec<String> = violations
                .iter()
                .take(3)
                .map(|v| {
                    if v.pointer.is_empty() {
                        v.message.clone()
                    } else {
                        format!("{}: {}", v.pointer, v.message)
                    }
                })
                .collect();
            return Err(format!("does not match the spec: {}", text.join("; ")));
        }
        Ok(value)
    }
}

/// The id a fixture record states, or a stable one from its position.
fn fixture_id(
    spec: &CollectionSpec,
    record: &Map<String, Value>,
    key: Option<&str>,
    index: usize,
) -> Value {
    if let Some(id) = record.get(&spec.id_field).filter(|v| !v.is_null()) {
        return id.clone();
    }
    if let Some(key) = key {
        return Value::String(key.to_owned());
    }
    match &spec.id_kind {
        IdKind::Integer => Value::from(index as i64 + 1),
        IdKind::Uuid => Value::String(synth::fake(
            "uuid",
            synth::seed_from([spec.name.as_bytes(), &index.to_le_bytes()]),
        )),
        IdKind::Prefixed(prefix) => Value::String(format!("{prefix}fixture{}", index + 1)),
    }
}

/// Compiles `fixtures/<collection>.yaml` files into records.
pub fn compile<'a>(
    files: &std::collections::BTreeMap<String, Value>,
    resources: &Resources,
    operations: &'a [CompiledOperation],
    maker: impl Fn(Option<&'a CompiledMedia>) -> RecordMaker<'a>,
    problems: &mut Vec<FileProblem>,
) -> Vec<FixtureRecord> {
    let known: Vec<&str> = resources
        .collections
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let mut records = Vec::new();
    for (collection, content) in files {
        let file = format!("fixtures/{collection}.yaml");
        let Some((index, spec)) = resources.collection(collection) else {
            problems.push(FileProblem::new(
                file,
                format!(
                    "no operation of the spec serves a collection named {collection:?}; collections: {}",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            ));
            continue;
        };
        let maker = maker(record_media(operations, resources, index));
        let entries: Vec<(String, Option<&str>, &Value)> = match content {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("/{i}"), None, v))
                .collect(),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (sbx_spec::pointer::join("", k), Some(k.as_str()), v))
                .collect(),
            Value::Null => Vec::new(),
            _ => {
                problems.push(FileProblem::new(
                    file,
                    "must be a list of records or a map from id to record",
                ));
                continue;
            }
        };
        for (position, (pointer, key, record)) in entries.into_iter().enumerate() {
            let Value::Object(record) = record else {
                problems
                    .push(FileProblem::new(&file, "a record must be an object").pointer(pointer));
                continue;
            };
            let id = fixture_id(spec, record, key, position);
            match maker.make(spec, &id, record) {
                Ok(value) => records.push(FixtureRecord {
                    collection: collection.clone(),
                    id: stateful::id_text(&id),
                    seq: position as u64,
                    value: Arc::new(Synthesized::new(value)),
                }),
                Err(message) => problems.push(FileProblem::new(&file, message).pointer(pointer)),
            }
        }
    }
    records
}
