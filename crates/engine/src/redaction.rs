//! The project's redaction rules (`project.yaml` `redact:`): JSON paths
//! whose values never reach the request log, such as `card.number`.
//!
//! Rules are RFC 9535 JSONPath (`$.card.number`, `$..password`); a rule
//! without the leading `$` is taken from the root (`card.number`).

use serde_json::Value;
use serde_json_path::JsonPath;

use crate::project::FileProblem;

/// What a masked value becomes.
pub const REDACTED: &str = "[redacted]";

/// The compiled rules of one revision.
#[derive(Debug, Default)]
pub struct Redactions {
    paths: Vec<JsonPath>,
}

impl Redactions {
    /// Compiles `rules`, reporting each that does not parse.
    pub fn compile(rules: &[String], problems: &mut Vec<FileProblem>) -> Self {
        let mut paths = Vec::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            let text = if rule.starts_with('$') {
                rule.clone()
            } else {
                format!("$.{rule}")
            };
            match JsonPath::parse(&text) {
                Ok(path) => paths.push(path),
                Err(error) => problems.push(
                    FileProblem::new(
                        "project.yaml",
                        format!("redact: {rule:?} is not a JSON path: {error}"),
                    )
                    .pointer(format!("/redact/{index}")),
                ),
            }
        }
        Self { paths }
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Masks every value a rule selects; whether any was.
    pub fn apply(&self, value: &mut Value) -> bool {
        let pointers: Vec<String> = self
            .paths
            .iter()
            .flat_map(|path| {
                path.query_located(value)
                    .locations()
                    .map(|location| location.to_json_pointer())
                    .collect::<Vec<_>>()
            })
            .collect();
        for pointer in &pointers {
            if let Some(target) = value.pointer_mut(pointer) {
                *target = Value::String(REDACTED.to_owned());
            }
        }
        !pointers.is_empty()
    }

    /// Whether the value at `pointer` (a JSON pointer into a body) is one a
    /// rule masks, or lies inside one.
    pub fn covers(&self, body_pointer: &str, body: &Value) -> bool {
        self.paths.iter().any(|path| {
            path.query_located(body).locations().any(|location| {
                let masked = location.to_json_pointer();
                body_pointer == masked || body_pointer.starts_with(&format!("{masked}/"))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rules_mask_what_they_select_and_bad_rules_are_reported() {
        let mut problems = Vec::new();
        let rules = Redactions::compile(
            &["card.number".into(), "$..password".into(), "$[".into()],
            &mut problems,
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].pointer, "/redact/2");
        let mut body = json!({
            "card": {"number": "4242424242424242", "exp": "12/30"},
            "users": [{"password": "a"}, {"password": "b"}],
        });
        assert!(rules.apply(&mut body));
        assert_eq!(body["card"]["number"], REDACTED);
        assert_eq!(body["card"]["exp"], "12/30");
        assert_eq!(body["users"][1]["password"], REDACTED);
        let mut untouched = json!({"amount": 5});
        assert!(!rules.apply(&mut untouched));
    }
}
