//! Turns raw parameter text into JSON values, per the parameter's style,
//! `explode` flag and schema type, ready for schema validation.

use std::borrow::Cow;

use sbx_spec::{ParamLocation, ParamStyle, Parameter};
use serde_json::{Map, Value};

use crate::{
    HeaderSource,
    request::{
        form::{Fields, Leaf},
        headers::cookie,
    },
    schema_view::SchemaView,
};

/// The raw sources of a request's parameters.
pub struct RawParams<'a> {
    pub path: &'a [(String, String)],
    pub query: &'a [(String, String)],
    pub headers: &'a dyn HeaderSource,
    /// The document, for the `$ref`s inside nested parameter schemas.
    pub document: &'a Value,
}

/// The parameter's value, `None` when absent. Errors describe malformed text.
pub fn extract(param: &Parameter, raw: &RawParams<'_>) -> Result<Option<Value>, String> {
    let view = SchemaView::new(raw.document);
    let kind = schema_kind(view, &param.schema);
    if param.json_content {
        let Some(text) = single_raw(param, raw) else {
            return Ok(None);
        };
        return serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("is not valid JSON: {e}"));
    }
    match param.location {
        ParamLocation::Query => Ok(query_value(param, raw.query, kind, view)),
        _ => Ok(single_raw(param, raw).map(|text| from_text(param, &text, kind, view))),
    }
}

/// The parameter's text as sent (several header lines joined by commas).
fn single_raw<'r>(param: &Parameter, raw: &RawParams<'r>) -> Option<Cow<'r, str>> {
    match param.location {
        ParamLocation::Path => raw
            .path
            .iter()
            .find(|(n, _)| *n == param.name)
            .map(|(_, v)| v.as_str().into()),
        ParamLocation::Query => raw
            .query
            .iter()
            .find(|(n, _)| *n == param.name)
            .map(|(_, v)| v.as_str().into()),
        ParamLocation::Header => {
            let values = raw.headers.get_all(&param.name.to_ascii_lowercase());
            (!values.is_empty()).then(|| values.join(",").into())
        }
        ParamLocation::Cookie => cookie(raw.headers, &param.name).map(Into::into),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Array,
    Object,
    Scalar,
}

/// What the schema holds, through `$ref`s and combinators: `page` as
/// `oneOf: [integer, {number, size}]` is an object (or its scalar).
fn schema_kind(view: SchemaView<'_>, schema: &Value) -> Kind {
    // The common case, a plain `type: …`, without following anything.
    match schema.get("type").and_then(Value::as_str) {
        Some("array") => return Kind::Array,
        Some("object") => return Kind::Object,
        Some(_) => return Kind::Scalar,
        None => {}
    }
    if view.is_array(schema) {
        Kind::Array
    } else if view.is_object(schema) {
        Kind::Object
    } else {
        Kind::Scalar
    }
}

/// Whether some branch of the schema is a scalar (`page=2` for a page that
/// is `oneOf: [integer, object]`).
fn admits_scalar(view: SchemaView<'_>, schema: &Value) -> bool {
    view.types(schema)
        .iter()
        .any(|t| matches!(*t, "integer" | "number" | "string" | "boolean"))
}

fn query_value(
    param: &Parameter,
    query: &[(String, String)],
    kind: Kind,
    view: SchemaView<'_>,
) -> Option<Value> {
    let own: Vec<&str> = query
        .iter()
        .filter(|(n, _)| *n == param.name)
        .map(|(_, v)| v.as_str())
        .collect();
    match (kind, param.style, param.explode) {
        (Kind::Object, ParamStyle::DeepObject, _) => {
            let prefix = format!("{}[", param.name);
            let mut fields = Fields::default();
            for (name, value) in query {
                if name.starts_with(&prefix) {
                    fields.insert(name, Leaf::Text(value.clone()));
                }
            }
            fields.into_member(&param.name, &param.schema, view.document())
        }
        (Kind::Object, ParamStyle::Form, true) => {
            if let Some(text) = own.last()
                && admits_scalar(view, &param.schema)
            {
                return Some(coerce(text, &param.schema, view));
            }
            // Exploded form objects spread their properties over the query.
            let branches = view.branches(&param.schema);
            let declares = |name: &str| {
                branches
                    .iter()
                    .any(|b| b.get("properties").and_then(|p| p.get(name)).is_some())
            };
            let mut object = Map::new();
            for (name, value) in query {
                if declares(name) {
                    let schema = view.property(&param.schema, name);
                    object.insert(name.clone(), coerce(value, schema, view));
                }
            }
            (!object.is_empty()).then_some(Value::Object(object))
        }
        (Kind::Array, ParamStyle::Form, true) if !own.is_empty() => {
            let items = view.items(&param.schema);
            Some(Value::Array(
                own.iter().map(|v| coerce(v, items, view)).collect(),
            ))
        }
        _ => own.last().map(|text| from_text(param, text, kind, view)),
    }
}

/// Interprets one serialized value (path, header, cookie, or a non-exploded query).
fn from_text(param: &Parameter, text: &str, kind: Kind, view: SchemaView<'_>) -> Value {
    let text: Cow<'_, str> = match param.style {
        ParamStyle::Label => Cow::Borrowed(text.strip_prefix('.').unwrap_or(text)),
        ParamStyle::Matrix => {
            let prefix = format!(";{}=", param.name);
            Cow::Owned(
                text.strip_prefix(&prefix)
                    .or_else(|| text.strip_prefix(';'))
                    .unwrap_or(text)
                    .to_owned(),
            )
        }
        _ => Cow::Borrowed(text),
    };
    let separator = match param.style {
        ParamStyle::SpaceDelimited => ' ',
        ParamStyle::PipeDelimited => '|',
        ParamStyle::Label if param.explode => '.',
        _ => ',',
    };
    let schema = &param.schema;
    match kind {
        Kind::Scalar => coerce(&text, schema, view),
        Kind::Object if !text.contains([separator, '=']) && admits_scalar(view, schema) => {
            coerce(&text, schema, view)
        }
        Kind::Array => {
            let items = view.items(schema);
            if text.is_empty() {
                return Value::Array(Vec::new());
            }
            Value::Array(
                text.split(separator)
                    .map(|v| coerce(v, items, view))
                    .collect(),
            )
        }
        Kind::Object => {
            let mut object = Map::new();
            let mut insert = |key: &str, value: &str| {
                let member = coerce(value, view.property(schema, key), view);
                object.insert(key.to_owned(), member);
            };
            if param.explode {
                for pair in text.split(separator) {
                    if let Some((key, value)) = pair.split_once('=') {
                        insert(key, value);
                    }
                }
            } else {
                let parts: Vec<&str> = text.split(separator).collect();
                for pair in parts.chunks(2) {
                    if let [key, value] = pair {
                        insert(key, value);
                    }
                }
            }
            Value::Object(object)
        }
    }
}

/// Text → the JSON type the schema expects (through `$ref`s and
/// combinators), when it parses as one. Text that does not parse stays a
/// string, so the validator names the mismatch.
fn coerce(text: &str, schema: &Value, view: SchemaView<'_>) -> Value {
    match schema.get("type") {
        Some(Value::String(t)) => coerce_to(text, &[t.as_str()]),
        _ => coerce_to(text, &view.types(schema)),
    }
}

/// Text → the first of `types` it parses as; a string otherwise.
pub fn coerce_to(text: &str, types: &[&str]) -> Value {
    for t in types {
        match *t {
            "integer" => {
                if let Ok(i) = text.parse::<i64>() {
                    return Value::from(i);
                }
            }
            "number" => {
                if let Ok(i) = text.parse::<i64>() {
                    return Value::from(i);
                }
                if let Some(n) = text
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    return Value::Number(n);
                }
            }
            "boolean" => match text {
                "true" => return Value::Bool(true),
                "false" => return Value::Bool(false),
                _ => {}
            },
            "null" if text.is_empty() || text == "null" => return Value::Null,
            _ => {}
        }
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn param(
        location: ParamLocation,
        style: ParamStyle,
        explode: bool,
        schema: Value,
    ) -> Parameter {
        Parameter {
            name: "p".into(),
            location,
            required: false,
            style,
            explode,
            schema_pointer: None,
            schema,
            json_content: false,
        }
    }

    fn run(p: &Parameter, path: &[(String, String)], query: &[(String, String)]) -> Option<Value> {
        let headers: Vec<(String, String)> = vec![("x".into(), "1".into())];
        extract(
            p,
            &RawParams {
                path,
                query,
                headers: &headers,
                document: &Value::Null,
            },
        )
        .unwrap()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn query_styles() {
        let ints = json!({"type": "array", "items": {"type": "integer"}});
        let exploded = param(ParamLocation::Query, ParamStyle::Form, true, ints.clone());
        assert_eq!(
            run(&exploded, &[], &pairs(&[("p", "1"), ("p", "2")])),
            Some(json!([1, 2]))
        );
        let csv = param(ParamLocation::Query, ParamStyle::Form, false, ints.clone());
        assert_eq!(
            run(&csv, &[], &pairs(&[("p", "1,x")])),
            Some(json!([1, "x"]))
        );
        let pipes = param(ParamLocation::Query, ParamStyle::PipeDelimited, false, ints);
        assert_eq!(
            run(&pipes, &[], &pairs(&[("p", "3|4")])),
            Some(json!([3, 4]))
        );
        let deep = param(
            ParamLocation::Query,
            ParamStyle::DeepObject,
            true,
            json!({"type": "object", "properties": {"a": {"type": "integer"}}}),
        );
        assert_eq!(
            run(&deep, &[], &pairs(&[("p[a]", "5"), ("p[b]", "x")])),
            Some(json!({"a": 5, "b": "x"}))
        );
        let absent = param(
            ParamLocation::Query,
            ParamStyle::Form,
            true,
            json!({"type": "integer"}),
        );
        assert_eq!(run(&absent, &[], &[]), None);
    }

    #[test]
    fn one_of_a_scalar_and_an_object_reads_either() {
        // Pandascore: `page=2`, or `page` spread as `number=2&size=30`.
        let page = param(
            ParamLocation::Query,
            ParamStyle::Form,
            true,
            json!({"oneOf": [
                {"type": "integer"},
                {"type": "object", "properties": {"number": {"type": "integer"}, "size": {"type": "integer"}}}
            ]}),
        );
        assert_eq!(run(&page, &[], &pairs(&[("p", "2")])), Some(json!(2)));
        assert_eq!(
            run(
                &page,
                &[],
                &pairs(&[("number", "2"), ("size", "0.5"), ("q", "x")])
            ),
            Some(json!({"number": 2, "size": "0.5"}))
        );
        assert_eq!(run(&page, &[], &pairs(&[("q", "x")])), None);
    }

    #[test]
    fn path_styles() {
        let label = param(
            ParamLocation::Path,
            ParamStyle::Label,
            false,
            json!({"type": "array", "items": {"type": "string"}}),
        );
        assert_eq!(
            run(&label, &pairs(&[("p", ".a,b")]), &[]),
            Some(json!(["a", "b"]))
        );
        let matrix = param(
            ParamLocation::Path,
            ParamStyle::Matrix,
            false,
            json!({"type": "integer"}),
        );
        assert_eq!(run(&matrix, &pairs(&[("p", ";p=5")]), &[]), Some(json!(5)));
        let object = param(
            ParamLocation::Path,
            ParamStyle::Simple,
            true,
            json!({"type": "object"}),
        );
        assert_eq!(
            run(&object, &pairs(&[("p", "a=1,b=2")]), &[]),
            Some(json!({"a": "1", "b": "2"}))
        );
    }
}
