//! Fixtures: records every sandbox starts with, under ids that are the same
//! in every sandbox, each checked against the spec at import.

use std::sync::Arc;

use sbx_spec::synth::{self, Plans};
use serde_json::{Map, Value};

use crate::{
    behaviours::lifecycle::Lifecycles,
    behaviours::stateful,
    compile::project::FileProblem,
    compile::resources::{Action, CollectionSpec, IdKind, Resources},
    compile::revision::{CompiledMedia, CompiledOperation},
    pipeline::cache::Synthesized,
    state::FixtureRecord,
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
                response.content.iter().find(|m| {
                    crate::request::body::is_json(&crate::request::body::essence(
                        &m.spec.media_type,
                    ))
                })
            })
    };
    of(Action::Get).or_else(|| of(Action::Create))
}

/// A record completed to the collection's schema: `given` merged over a
/// value synthesized for `(collection, id)`, then checked.
pub struct RecordMaker<'a> {
    pub plans: &'a Plans,
    pub media: Option<&'a CompiledMedia>,
}

/// A fixture date written relative to the sandbox clock (`now - P3D`),
/// resolved when a sandbox is seeded so that fixtures never rot.
#[derive(Debug, Clone, PartialEq)]
pub struct RelativeDate {
    /// Where in the record.
    pub pointer: String,
    /// `-1` (before now), `0` (now) or `1` (after).
    pub sign: i8,
    pub duration: String,
    /// An integer member holds Unix seconds; otherwise RFC 3339 text.
    pub unix_seconds: bool,
}

impl RelativeDate {
    /// `now`, `now - P3D`, `now + PT2H`: `(sign, duration)`.
    fn parse(text: &str) -> Option<Result<(i8, String), String>> {
        let rest = text.trim().strip_prefix("now")?;
        let rest = rest.trim_start();
        if rest.is_empty() {
            return Some(Ok((0, String::new())));
        }
        let (sign, duration) = match rest.split_at(1) {
            ("-", d) => (-1, d.trim()),
            ("+", d) => (1, d.trim()),
            _ => return None,
        };
        Some(
            crate::state::clock::add_duration(0, duration)
                .map(|_| (sign, duration.to_owned()))
                .map_err(|e| format!("{text:?}: {e}")),
        )
    }

    /// The value at `seeded_at_ms` (sandbox clock).
    pub fn resolve(&self, seeded_at_ms: i64) -> Value {
        let at = match self.sign {
            0 => Ok(seeded_at_ms),
            s if s < 0 => crate::state::clock::sub_duration(seeded_at_ms, &self.duration),
            _ => crate::state::clock::add_duration(seeded_at_ms, &self.duration),
        }
        .unwrap_or(seeded_at_ms);
        if self.unix_seconds {
            Value::from(at.div_euclid(1000))
        } else {
            Value::String(crate::state::clock::rfc3339(at))
        }
    }
}

/// Replaces relative dates in `given` by a stand-in of the right type
/// (the type the synthesized `base` has there), noting where they were.
fn take_relative_dates(
    given: &mut Value,
    base: &Value,
    pointer: &str,
    found: &mut Vec<RelativeDate>,
) -> Result<(), String> {
    match given {
        Value::String(text) => {
            if let Some(parsed) = RelativeDate::parse(text) {
                let (sign, duration) = parsed?;
                let unix_seconds = base.pointer(pointer).is_some_and(Value::is_number);
                let date = RelativeDate {
                    pointer: pointer.to_owned(),
                    sign,
                    duration,
                    unix_seconds,
                };
                *given = date.resolve(0);
                found.push(date);
            }
        }
        Value::Object(map) => {
            for (key, value) in map {
                take_relative_dates(value, base, &sbx_spec::pointer::join(pointer, key), found)?;
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter_mut().enumerate() {
                take_relative_dates(value, base, &format!("{pointer}/{i}"), found)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl RecordMaker<'_> {
    /// The record, and the relative dates to resolve per sandbox.
    pub fn make(
        &self,
        spec: &CollectionSpec,
        id: &Value,
        given: &Map<String, Value>,
    ) -> Result<(Value, Vec<RelativeDate>), String> {
        let seed = synth::seed_from([spec.name.as_bytes(), stateful::id_text(id).as_bytes()]);
        let base = self
            .media
            .and_then(|m| {
                let pointer = m.spec.schema_pointer.as_ref()?;
                Some(
                    self.plans
                        .synthesize(pointer, seed, m.validator.get())
                        .value,
                )
            })
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(Map::new()));
        let mut given = Value::Object(given.clone());
        let mut relative = Vec::new();
        take_relative_dates(&mut given, &base, "", &mut relative)?;
        let mut value = stateful::merged(&base, Some(&given), false);
        stateful::set_id(
            &mut value,
            spec,
            id.clone(),
            spec.id_kind == IdKind::Integer,
        );
        if let Some(validator) = self.media.and_then(|m| m.validator.get())
            && !validator.is_valid(&value)
        {
            return Err(format!(
                "does not match the spec: {}",
                summarize(&validator.violations(&value))
            ));
        }
        Ok((value, relative))
    }
}

/// Puts a record of a collection under a lifecycle in its initial state
/// unless it names a state; a state not declared is `(member, message)`.
pub fn start_state(
    lifecycles: &Lifecycles,
    collection: &str,
    record: &mut Map<String, Value>,
) -> Result<(), (String, String)> {
    let Some(lifecycle) = lifecycles.of(collection) else {
        return Ok(());
    };
    match record.get(&lifecycle.field) {
        None => {
            record.insert(
                lifecycle.field.clone(),
                Value::String(lifecycle.default_state().to_owned()),
            );
            Ok(())
        }
        Some(state)
            if lifecycle
                .states
                .iter()
                .any(|s| Some(s.as_str()) == state.as_str()) =>
        {
            Ok(())
        }
        Some(state) => Err((
            lifecycle.field.clone(),
            format!(
                "{state} is not a state of the {collection} lifecycle; states: {}",
                lifecycle.states.join(", ")
            ),
        )),
    }
}

/// The first three violations, on one line.
pub(crate) fn summarize(violations: &[sbx_spec::Violation]) -> String {
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
    text.join("; ")
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
        IdKind::Pattern { pattern, min, max } => {
            let seed = synth::seed_from([spec.name.as_bytes(), &index.to_le_bytes()]);
            Value::String(
                synth::matching(pattern, *min, *max, seed)
                    .unwrap_or_else(|| format!("fixture{}", index + 1)),
            )
        }
    }
}

/// Compiles `fixtures/<collection>.yaml` files into records.
pub fn compile<'a>(
    files: &std::collections::BTreeMap<String, Value>,
    resources: &Resources,
    lifecycles: &Lifecycles,
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
            let mut record = record.clone();
            if let Err((member, message)) = start_state(lifecycles, collection, &mut record) {
                problems.push(
                    FileProblem::new(&file, message)
                        .pointer(sbx_spec::pointer::join(&pointer, &member)),
                );
                continue;
            }
            match maker.make(spec, &id, &record) {
                Ok((value, relative)) => records.push(FixtureRecord {
                    collection: collection.clone(),
                    id: stateful::id_text(&id),
                    seq: position as u64,
                    value: Arc::new(Synthesized::new(value)),
                    relative,
                }),
                Err(message) => problems.push(FileProblem::new(&file, message).pointer(pointer)),
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn relative_dates_take_the_type_the_schema_gives_the_member() {
        let base = json!({"created": 1, "seen": "2020-01-01T00:00:00Z", "nested": {"at": 5}});
        let mut given = json!({
            "created": "now - P3D",
            "seen": "now",
            "nested": {"at": "now + PT1H"},
            "note": "nowhere near",
        });
        let mut found = Vec::new();
        take_relative_dates(&mut given, &base, "", &mut found).unwrap();
        assert_eq!(given["note"], "nowhere near", "only `now` expressions");
        let at = crate::state::clock::parse_instant("2030-01-10T00:00:00Z").unwrap();
        let resolved: Vec<(String, Value)> = found
            .iter()
            .map(|d| (d.pointer.clone(), d.resolve(at)))
            .collect();
        assert_eq!(
            resolved,
            [
                ("/created".to_owned(), json!(1_893_974_400)),
                ("/seen".to_owned(), json!("2030-01-10T00:00:00Z")),
                ("/nested/at".to_owned(), json!(1_894_237_200)),
            ]
        );
        let mut bad = json!({"created": "now - 3 days"});
        assert!(take_relative_dates(&mut bad, &base, "", &mut Vec::new()).is_err());
    }
}
