//! The project's redaction rules (`project.yaml` `redact:`): JSON paths
//! whose values never reach the request log, such as `card.number`.
//!
//! Rules are RFC 9535 JSONPath (`$.card.number`, `$..password`); a rule
//! without the leading `$` is taken from the root (`card.number`).

use serde_json::Value;
use serde_json_path::JsonPath;

use crate::compile::project::FileProblem;

/// What a masked value becomes.
pub const REDACTED: &str = "[redacted]";

/// The compiled rules of one revision.
#[derive(Debug, Default)]
pub struct Redactions {
    paths: Vec<JsonPath>,
    /// Each rule's last member name as it appears in JSON (`"number"`),
    /// when it ends in one: a body without any of them needs no parsing.
    needles: Option<Vec<String>>,
}

impl Redactions {
    /// Compiles `rules`, reporting each that does not parse.
    pub fn compile(rules: &[String], problems: &mut Vec<FileProblem>) -> Self {
        let mut paths = Vec::with_capacity(rules.len());
        let mut needles = Some(Vec::with_capacity(rules.len()));
        for (index, rule) in rules.iter().enumerate() {
            let text = if rule.starts_with('$') {
                rule.clone()
            } else {
                format!("$.{rule}")
            };
            match JsonPath::parse(&text) {
                Ok(path) => {
                    paths.push(path);
                    needles = needles.zip(last_name(&text)).map(|(mut all, name)| {
                        all.push(Value::String(name).to_string());
                        all
                    });
                }
                Err(error) => problems.push(
                    FileProblem::new(
                        "project.yaml",
                        format!("redact: {rule:?} is not a JSON path: {error}"),
                    )
                    .pointer(format!("/redact/{index}")),
                ),
            }
        }
        Self { paths, needles }
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Whether a rule may select something in the JSON text `body`: false
    /// only when no rule's member name appears in it (nor any `\u` escape
    /// that could spell one), so the body need not be parsed.
    pub fn may_match(&self, body: &[u8]) -> bool {
        if self.paths.is_empty() {
            return false;
        }
        let Some(needles) = &self.needles else {
            return true;
        };
        memchr::memmem::find(body, b"\\u").is_some()
            || needles
                .iter()
                .any(|needle| memchr::memmem::find(body, needle.as_bytes()).is_some())
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

    /// The values the rules select in `body`, to scrub from text that
    /// quotes them (a validation message, an error echoed in a response).
    pub fn secrets(&self, body: &Value) -> Secrets {
        let mut found = Vec::new();
        for path in &self.paths {
            for value in path.query(body).all() {
                collect_leaves(value, &mut found);
            }
        }
        found.sort();
        found.dedup();
        // Longest first, so a secret containing another is masked whole.
        found.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        Secrets(found)
    }
}

/// The member name a path ends in (`$.card.number`, `$..password`,
/// `$['a b']`), or `None` when it ends otherwise (`[*]`, a filter).
fn last_name(path: &str) -> Option<String> {
    for quote in ['\'', '"'] {
        if let Some(rest) = path.strip_suffix(&format!("{quote}]")) {
            let start = rest.rfind(&format!("[{quote}"))?;
            let name = &rest[start + 2..];
            return (!name.contains(['\\', quote])).then(|| name.to_owned());
        }
    }
    let name = &path[path.rfind('.')? + 1..];
    let plain = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    (!name.is_empty() && name.chars().all(plain)).then(|| name.to_owned())
}

fn collect_leaves(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) if !text.is_empty() && text != REDACTED => {
            found.push(text.clone());
            let escaped = Value::String(text.clone()).to_string();
            let escaped = &escaped[1..escaped.len() - 1];
            if escaped != text {
                found.push(escaped.to_owned());
            }
        }
        Value::Number(number) => found.push(number.to_string()),
        Value::Array(items) => items.iter().for_each(|item| collect_leaves(item, found)),
        Value::Object(fields) => fields.values().for_each(|item| collect_leaves(item, found)),
        _ => {}
    }
}

/// Values a request carried that the project masks, wherever they are
/// quoted again.
#[derive(Debug, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every secret masked.
    pub fn scrub_text(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |text, secret| {
            text.replace(secret, REDACTED)
        })
    }

    /// Masks secrets inside every string of `value`, and numbers equal to
    /// one; the document stays well formed.
    pub fn scrub(&self, value: &mut Value) {
        match value {
            Value::String(text) if self.0.iter().any(|secret| text.contains(secret.as_str())) => {
                *text = self.scrub_text(text);
            }
            Value::Number(number) if self.0.contains(&number.to_string()) => {
                *value = Value::String(REDACTED.to_owned());
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.scrub(item)),
            Value::Object(fields) => fields.values_mut().for_each(|item| self.scrub(item)),
            _ => {}
        }
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

    #[test]
    fn bodies_without_a_rule_s_member_name_need_no_parsing() {
        let rules = Redactions::compile(
            &[
                "card.number".into(),
                "$..password".into(),
                "$['api key']".into(),
            ],
            &mut Vec::new(),
        );
        assert!(!rules.may_match(br#"{"id": "cus_1", "name": "Alice"}"#));
        assert!(rules.may_match(br#"{"card": {"number": "4242"}}"#));
        assert!(rules.may_match(br#"{"user": {"password": "x"}}"#));
        assert!(rules.may_match(br#"{"api key": "x"}"#));
        assert!(
            rules.may_match(br#"{"\u006eumber": "4242"}"#),
            "an escape may spell one"
        );
        let wildcard = Redactions::compile(&["$.cards[*]".into()], &mut Vec::new());
        assert!(wildcard.may_match(br#"{"id": 1}"#), "no name to look for");
        assert!(!Redactions::default().may_match(br#"{"number": 1}"#));
    }

    #[test]
    fn secrets_are_scrubbed_wherever_they_are_quoted() {
        let rules = Redactions::compile(&["card".into(), "pin".into()], &mut Vec::new());
        let body = json!({"card": {"number": "4242 \"42\"", "cvc": 123}, "pin": ""});
        let secrets = rules.secrets(&body);
        let mut quoted = json!({
            "message": format!("{} is not valid", body["card"]),
            "got": body["card"].clone(),
            "count": 123,
            "other": 1234,
        });
        secrets.scrub(&mut quoted);
        assert_eq!(quoted["got"], json!({"number": REDACTED, "cvc": REDACTED}));
        assert_eq!(quoted["count"], REDACTED);
        assert_eq!(
            quoted["other"], 1234,
            "numbers are masked whole or not at all"
        );
        let message = quoted["message"].as_str().unwrap();
        assert!(!message.contains("4242"), "{message}");
        assert_eq!(
            secrets.scrub_text("card 4242 \"42\"!"),
            format!("card {REDACTED}!")
        );
    }
}
