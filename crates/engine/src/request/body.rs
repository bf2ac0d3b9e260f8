//! Request bodies: which declared media type a body is, and its JSON value.

use serde_json::{Map, Value};

use crate::request::params::coerce;

/// `Application/JSON; charset=utf-8` → `application/json`.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub fn is_json(essence: &str) -> bool {
    essence == "application/json" || essence.ends_with("+json") || essence.ends_with("/json")
}

/// Does the media range `range` (possibly `type/*` or `*/*`) cover `essence`?
pub fn range_covers(range: &str, essence: &str) -> bool {
    let range = self::essence(range);
    if range == "*/*" || range == essence {
        return true;
    }
    match (range.split_once('/'), essence.split_once('/')) {
        (Some((rt, "*")), Some((et, _))) => rt == et,
        _ => false,
    }
}

/// The index of the declared media type that `content_type` is, preferring
/// exact matches over ranges.
pub fn match_declared<'a, I>(declared: I, content_type: &str) -> Option<usize>
where
    I: IntoIterator<Item = &'a str>,
    I::IntoIter: Clone,
{
    let essence = essence(content_type);
    let declared = declared.into_iter();
    declared
        .clone()
        .position(|m| self::essence(m) == essence)
        .or_else(|| declared.clone().position(|m| range_covers(m, &essence)))
}

/// Parses a body for validation. `Ok(None)` means "not validated" (binary,
/// multipart); errors are messages for a 400.
pub fn parse(essence: &str, bytes: &[u8], schema: &Value) -> Result<Option<Value>, String> {
    if is_json(essence) {
        return serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| format!("the body is not valid JSON: {e}"));
    }
    if essence == "application/x-www-form-urlencoded" {
        let mut object = Map::new();
        for (name, value) in form_urlencoded::parse(bytes) {
            let property = schema
                .get("properties")
                .and_then(|p| p.get(name.as_ref()))
                .cloned()
                .unwrap_or(Value::Null);
            let is_array = property.get("type").and_then(Value::as_str) == Some("array");
            if is_array {
                let items = property.get("items").cloned().unwrap_or(Value::Null);
                let entry = object
                    .entry(name.into_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(values) = entry {
                    values.push(coerce(&value, &items));
                }
            } else {
                object.insert(name.into_owned(), coerce(&value, &property));
            }
        }
        return Ok(Some(Value::Object(object)));
    }
    if essence.starts_with("text/") {
        return std::str::from_utf8(bytes)
            .map(|text| Some(Value::String(text.to_owned())))
            .map_err(|_| "the body is not valid UTF-8 text".to_owned());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_types_win_over_ranges() {
        let declared = ["application/*", "application/json"];
        assert_eq!(
            match_declared(declared, "application/json; charset=utf-8"),
            Some(1)
        );
        assert_eq!(match_declared(declared, "application/xml"), Some(0));
        assert_eq!(match_declared(["text/plain"], "application/json"), None);
    }

    #[test]
    fn forms_are_coerced_by_schema() {
        let schema = serde_json::json!({"properties": {"n": {"type": "integer"}, "t": {"type": "array", "items": {"type": "string"}}}});
        let value = parse(
            "application/x-www-form-urlencoded",
            b"n=3&t=a&t=b&x=y",
            &schema,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            value,
            serde_json::json!({"n": 3, "t": ["a", "b"], "x": "y"})
        );
    }
}
