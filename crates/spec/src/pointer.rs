//! JSON pointers and internal `$ref` resolution over a whole document.

use serde_json::Value;

use crate::Problem;

/// How many `$ref` hops are followed before a chain is declared circular.
pub(crate) const MAX_REF_HOPS: usize = 64;

/// Escapes one reference token of a JSON pointer (RFC 6901).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Unescapes one reference token of a JSON pointer (RFC 6901).
pub fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Appends a token to a pointer.
pub fn join(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", escape(token))
}

/// Turns a `$ref` value such as `#/components/schemas/Pet` into a JSON
/// pointer, undoing URI percent-encoding. `None` for external references.
pub fn ref_to_pointer(reference: &str) -> Option<String> {
    let fragment = reference.strip_prefix('#')?;
    Some(percent_decode(fragment))
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Percent-encodes a JSON pointer for use as a URI fragment.
pub fn pointer_to_fragment(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for byte in pointer.bytes() {
        if byte.is_ascii_alphanumeric() || b"/-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `document.pointer(pointer)` without allocating for tokens that need no
/// unescaping: `$ref`s are followed on every synthesized response.
pub fn get<'a>(document: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(document);
    }
    let mut current = document;
    for token in pointer.strip_prefix('/')?.split('/') {
        let unescaped;
        let token = if token.contains('~') {
            unescaped = unescape(token);
            unescaped.as_str()
        } else {
            token
        };
        current = match current {
            Value::Object(map) => map.get(token)?,
            Value::Array(items) => items.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The `$ref` string of a reference object, if `value` is one.
pub fn reference_of(value: &Value) -> Option<&str> {
    value.as_object()?.get("$ref")?.as_str()
}

/// Follows `$ref` chains from `value` to the object they name.
///
/// Returns the target and the pointer it was found at (the given pointer
/// when `value` is not a reference). Errors name the broken reference.
pub fn resolve<'a>(
    document: &'a Value,
    value: &'a Value,
    pointer: &str,
) -> Result<(&'a Value, String), String> {
    let mut current = value;
    let mut current_pointer = pointer.to_owned();
    for _ in 0..MAX_REF_HOPS {
        let Some(reference) = reference_of(current) else {
            return Ok((current, current_pointer));
        };
        let target_pointer = ref_to_pointer(reference).ok_or_else(|| {
            format!(
                "external reference \"{reference}\" is not supported here; bundle the spec first"
            )
        })?;
        current = get(document, &target_pointer)
            .ok_or_else(|| format!("reference \"{reference}\" points to nothing"))?;
        current_pointer = target_pointer;
    }
    Err(format!("reference chain at {pointer} is circular"))
}

/// [`resolve`] for the hot path: the target only, no allocation unless a
/// reference is percent-encoded; `None` for broken or circular chains.
pub fn follow<'a>(document: &'a Value, value: &'a Value) -> Option<&'a Value> {
    let mut current = value;
    for _ in 0..MAX_REF_HOPS {
        let Some(reference) = reference_of(current) else {
            return Some(current);
        };
        let fragment = reference.strip_prefix('#')?;
        current = if fragment.contains('%') {
            get(document, &percent_decode(fragment))?
        } else {
            get(document, fragment)?
        };
    }
    None
}

/// The loop, as `a → b → a`, when the reference object at `start` (a
/// pointer) is part of a chain of references that comes back to it
/// without reaching anything else. A reference that merely leads into
/// such a loop is not part of it (the loop is reported where it is).
fn reference_cycle(document: &Value, start: &str) -> Option<String> {
    let mut chain = vec![start.to_owned()];
    for _ in 0..MAX_REF_HOPS {
        let current = chain.last()?;
        let next = ref_to_pointer(reference_of(document.pointer(current)?)?)?;
        if next == start {
            chain.push(next);
            return Some(chain.join(" → "));
        }
        if chain.contains(&next) {
            return None;
        }
        chain.push(next);
    }
    Some(format!(
        "more than {MAX_REF_HOPS} references in a row from {start}"
    ))
}

/// Every `$ref` in the document that does not resolve or only leads to
/// more references in a loop, with where it is.
pub fn check_references(document: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut stack = vec![(document, String::new())];
    while let Some((value, pointer)) = stack.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    let ref_pointer = join(&pointer, "$ref");
                    match ref_to_pointer(reference) {
                        None => problems.push(Problem {
                            pointer: ref_pointer,
                            message: format!(
                                "external reference \"{reference}\" cannot be resolved on upload; import the spec from disk with `sbx import` (which bundles relative files) or inline it"
                            ),
                        }),
                        Some(target) if document.pointer(&target).is_none() => {
                            problems.push(Problem {
                                pointer: ref_pointer,
                                message: format!("reference \"{reference}\" points to nothing"),
                            });
                        }
                        Some(_) => {
                            if let Some(cycle) = reference_cycle(document, &pointer) {
                                problems.push(Problem {
                                    pointer: ref_pointer,
                                    message: format!(
                                        "reference \"{reference}\" is circular: {cycle} (a chain of references that never reaches a schema)"
                                    ),
                                });
                            }
                        }
                    }
                }
                for (key, child) in map {
                    if child.is_object() || child.is_array() {
                        stack.push((child, join(&pointer, key)));
                    }
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    if child.is_object() || child.is_array() {
                        stack.push((child, format!("{pointer}/{index}")));
                    }
                }
            }
            _ => {}
        }
    }
    problems.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    problems
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn resolves_chains_and_reports_cycles() {
        let doc = json!({
            "a": {"$ref": "#/b"},
            "b": {"$ref": "#/c"},
            "c": {"type": "string"},
            "x": {"$ref": "#/y"},
            "y": {"$ref": "#/x"}
        });
        let (target, at) = resolve(&doc, &doc["a"], "/a").unwrap();
        assert_eq!(target, &json!({"type": "string"}));
        assert_eq!(at, "/c");
        assert!(
            resolve(&doc, &doc["x"], "/x")
                .unwrap_err()
                .contains("circular")
        );
    }

    #[test]
    fn reports_pure_reference_cycles_but_not_recursive_schemas() {
        let document = json!({
            "components": {"schemas": {
                "A": {"$ref": "#/components/schemas/B"},
                "B": {"$ref": "#/components/schemas/A"},
                "Self": {"$ref": "#/components/schemas/Self"},
                "Tree": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}}}},
                "Alias": {"$ref": "#/components/schemas/Tree"}
            }}
        });
        let problems = check_references(&document);
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/components/schemas/A/$ref",
                "/components/schemas/B/$ref",
                "/components/schemas/Self/$ref"
            ]
        );
        assert!(
            problems[0]
                .message
                .contains("/components/schemas/A → /components/schemas/B → /components/schemas/A"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn reports_dangling_and_external_refs_with_their_location() {
        let doc = json!({"p": {"s": {"$ref": "#/nope"}, "t": {"$ref": "other.yaml#/X"}}});
        let problems = check_references(&doc);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].pointer, "/p/s/$ref");
        assert_eq!(problems[1].pointer, "/p/t/$ref");
    }

    #[test]
    fn percent_encoded_refs_decode() {
        assert_eq!(
            ref_to_pointer("#/paths/~1pets~1%7Bid%7D").unwrap(),
            "/paths/~1pets~1{id}"
        );
        assert_eq!(
            pointer_to_fragment("/paths/~1pets~1{id}"),
            "/paths/~1pets~1%7Bid%7D"
        );
    }
}
