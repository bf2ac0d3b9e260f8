//! Regular expressions a validator cannot compile.
//!
//! Real specs carry patterns that are not ECMA-262 (`\\p{Punct}`, ranges
//! like `[\\w-.]`, `{1-70}`). Refusing the whole spec for one of them helps
//! nobody: the pattern is dropped, and the import answer says so.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{Problem, pointer::join};

/// Removes every `pattern` (and `patternProperties` key) that does not
/// compile, returning a warning for each.
pub fn drop_invalid_patterns(document: &mut Value) -> Vec<Problem> {
    let mut verdicts = HashMap::new();
    let mut warnings = Vec::new();
    walk(document, String::new(), &mut verdicts, &mut warnings);
    warnings
}

fn compiles(pattern: &str, verdicts: &mut HashMap<String, bool>) -> bool {
    *verdicts
        .entry(pattern.to_owned())
        .or_insert_with(|| jsonschema::validator_for(&json!({"pattern": pattern})).is_ok())
}

fn walk(
    value: &mut Value,
    at: String,
    verdicts: &mut HashMap<String, bool>,
    warnings: &mut Vec<Problem>,
) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(pattern)) = map.get("pattern")
                && !compiles(pattern, verdicts)
            {
                warnings.push(Problem {
                    pointer: join(&at, "pattern"),
                    message: format!("pattern {pattern:?} is not a valid ECMA-262 regular expression; it is ignored"),
                });
                map.remove("pattern");
            }
            if let Some(Value::Object(properties)) = map.get_mut("patternProperties") {
                let invalid: Vec<String> = properties
                    .keys()
                    .filter(|k| !compiles(k, verdicts))
                    .cloned()
                    .collect();
                for key in invalid {
                    warnings.push(Problem {
                        pointer: join(&join(&at, "patternProperties"), &key),
                        message: format!("pattern {key:?} is not a valid ECMA-262 regular expression; it is ignored"),
                    });
                    properties.remove(&key);
                }
            }
            for (key, child) in map.iter_mut() {
                // Examples are data, not schemas.
                if key != "example" && key != "examples" {
                    walk(child, join(&at, key), verdicts, warnings);
                }
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter_mut().enumerate() {
                walk(child, format!("{at}/{index}"), verdicts, warnings);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_patterns_are_dropped_with_a_warning() {
        let mut doc = json!({"s": {"type": "string", "pattern": "[a-zA-Z]{1-70"}, "t": {"pattern": "^[a-z]+$"},
                             "e": {"example": {"pattern": "(("}}});
        let warnings = drop_invalid_patterns(&mut doc);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].pointer, "/s/pattern");
        assert!(doc["s"].get("pattern").is_none());
        assert_eq!(doc["t"]["pattern"], "^[a-z]+$");
        assert_eq!(doc["e"]["example"]["pattern"], "((");
    }
}
