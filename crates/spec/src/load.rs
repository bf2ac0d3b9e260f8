use serde_json::{Map, Number, Value};

use crate::SpecError;

/// Bounds on what a spec may cost to load. Every field is a hard limit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted document, in bytes.
    pub max_spec_bytes: usize,
    /// Deepest accepted nesting of objects and arrays.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_spec_bytes: 32 * 1024 * 1024,
            // serde_json and the YAML parser both stop at 128 levels on their own.
            max_depth: 128,
        }
    }
}

/// Parses JSON or YAML text into a JSON value, within `limits`.
///
/// YAML is read through its own value type first because OpenAPI YAML uses
/// integer keys (`200:`) that a JSON map cannot hold; they become strings.
pub fn parse_document(text: &str, limits: &Limits) -> Result<Value, SpecError> {
    if text.len() > limits.max_spec_bytes {
        return Err(SpecError::TooLarge {
            size: text.len(),
            limit: limits.max_spec_bytes,
        });
    }
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.is_empty() {
        return Err(SpecError::single("", "the spec is empty"));
    }
    let value = if trimmed.starts_with('{') {
        serde_json::from_str(trimmed)
            .map_err(|e| SpecError::single("", format!("invalid JSON: {e}")))?
    } else {
        // The YAML parser's cost grows with the square of flow nesting, so
        // hostile nesting is refused before parsing rather than after.
        if flow_depth(trimmed) > limits.max_depth {
            return Err(too_deep(limits.max_depth));
        }
        let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(trimmed)
            .map_err(|e| SpecError::single("", format!("invalid YAML: {e}")))?;
        yaml.apply_merge()
            .map_err(|e| SpecError::single("", format!("invalid YAML merge key: {e}")))?;
        yaml_to_json(yaml, 0, limits.max_depth)?
    };
    check_depth(&value, limits.max_depth)?;
    Ok(value)
}

fn too_deep(limit: usize) -> SpecError {
    SpecError::single("", format!("the document nests deeper than {limit} levels"))
}

/// Deepest nesting of `[` and `{`, counting brackets inside strings too:
/// an over-estimate only for documents with many unbalanced brackets in text.
fn flow_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

fn check_depth(value: &Value, limit: usize) -> Result<(), SpecError> {
    // Iterative so that the check itself cannot overflow the stack.
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        if depth > limit {
            return Err(too_deep(limit));
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|v| (v, depth + 1))),
            Value::Object(map) => stack.extend(map.values().map(|v| (v, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

fn yaml_to_json(
    value: serde_yaml_ng::Value,
    depth: usize,
    limit: usize,
) -> Result<Value, SpecError> {
    use serde_yaml_ng::Value as Y;
    if depth > limit {
        return Err(too_deep(limit));
    }
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => yaml_number(&n),
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .map(|v| yaml_to_json(v, depth + 1, limit))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut map = Map::with_capacity(mapping.len());
            for (key, value) in mapping {
                map.insert(yaml_key(key), yaml_to_json(value, depth + 1, limit)?);
            }
            Value::Object(map)
        }
        Y::Tagged(tagged) => yaml_to_json(tagged.value, depth + 1, limit)?,
    })
}

fn yaml_number(n: &serde_yaml_ng::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Number(i.into())
    } else if let Some(u) = n.as_u64() {
        Value::Number(u.into())
    } else {
        // .inf and .nan have no JSON form; keep them visible as text.
        n.as_f64()
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(n.to_string()), Value::Number)
    }
}

fn yaml_key(key: serde_yaml_ng::Value) -> String {
    use serde_yaml_ng::Value as Y;
    match key {
        Y::String(s) => s,
        Y::Number(n) => n.to_string(),
        Y::Bool(b) => b.to_string(),
        Y::Null => "null".to_owned(),
        other => serde_yaml_ng::to_string(&other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_integer_keys_become_strings() {
        let v = parse_document(
            "responses:\n  200:\n    description: ok\n",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(v["responses"]["200"]["description"], "ok");
    }

    #[test]
    fn oversized_documents_are_refused_before_parsing() {
        let limits = Limits {
            max_spec_bytes: 10,
            ..Limits::default()
        };
        let err = parse_document("openapi: 3.0.0\n", &limits).unwrap_err();
        assert!(matches!(
            err,
            SpecError::TooLarge {
                size: 15,
                limit: 10
            }
        ));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_document(&json, &Limits::default()).is_err());
        let yaml = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse_document(&yaml, &Limits::default()).is_err());
    }

    #[test]
    fn yaml_alias_bombs_are_refused() {
        let mut yaml = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            yaml.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse_document(&yaml, &Limits::default()).is_err());
    }
}
