//! Scenario rules (`when`, `when_state`): Rhai expressions over `req` or
//! `record`. Most rules are a few comparisons of a member with a literal
//! (`req.body.card.number == "4000000000000002" && req.body.amount >= 5000`);
//! those are evaluated natively on the JSON, with Rhai's semantics, so that
//! choosing a scenario costs next to nothing. Anything else runs in Rhai.

use std::{borrow::Cow, cmp::Ordering, sync::LazyLock};

use regex::Regex;
use rhai::AST;
use serde_json::Value;

/// A compiled rule.
#[derive(Debug)]
pub enum Condition {
    /// A conjunction of comparisons, evaluated on the JSON directly.
    Native(Vec<Comparison>),
    Script(AST),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Body,
    Query,
    Headers,
    Params,
    Record,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug)]
pub struct Comparison {
    root: Root,
    /// Members below the root, each with whether it is read with `?.`.
    path: Vec<(String, bool)>,
    op: Op,
    literal: Value,
}

/// What a rule reads.
pub struct Inputs<'a> {
    pub body: Option<&'a Value>,
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    /// Decoded.
    pub params: &'a [(String, String)],
    pub record: Option<&'a Value>,
}

const TERM: &str = r#"\s*(req\.body|req\.query|req\.headers|req\.params|record)((?:\??\.[A-Za-z_][A-Za-z0-9_]*)*)\s*(==|!=|<=|>=|<|>)\s*("[^"\\]*"|-?[0-9]+(?:\.[0-9]+)?|true|false)\s*"#;

static WHOLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{TERM}(?:&&{TERM})*$")).expect("valid pattern"));
static ONE: LazyLock<Regex> = LazyLock::new(|| Regex::new(TERM).expect("valid pattern"));

/// The comparisons of `text` when it is only a conjunction of them.
pub fn native(text: &str) -> Option<Vec<Comparison>> {
    if !WHOLE.is_match(text) {
        return None;
    }
    ONE.captures_iter(text)
        .map(|c| {
            let root = match &c[1] {
                "req.body" => Root::Body,
                "req.query" => Root::Query,
                "req.headers" => Root::Headers,
                "req.params" => Root::Params,
                _ => Root::Record,
            };
            let mut path = Vec::new();
            let mut rest = &c[2];
            while !rest.is_empty() {
                let safe = rest.starts_with("?.");
                rest = &rest[if safe { 2 } else { 1 }..];
                let end = rest.find(['.', '?']).unwrap_or(rest.len());
                path.push((rest[..end].to_owned(), safe));
                rest = &rest[end..];
            }
            let op = match &c[3] {
                "==" => Op::Eq,
                "!=" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                _ => Op::Ge,
            };
            let literal = serde_json::from_str(&c[4]).ok()?;
            Some(Comparison {
                root,
                path,
                op,
                literal,
            })
        })
        .collect()
}

/// A member's value: `Ok(None)` is Rhai's `()` (a missing member),
/// `Err` an evaluation error (a member of `()` read without `?.`), which
/// makes the whole rule not hold.
fn resolve<'a>(comparison: &Comparison, inputs: &Inputs<'a>) -> Result<Option<Cow<'a, Value>>, ()> {
    let pairs = |pairs: &[(String, String)], name: &str| -> Option<Value> {
        let mut found = pairs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| Value::String(v.clone()));
        let first = found.next()?;
        let rest: Vec<Value> = found.collect();
        if rest.is_empty() {
            return Some(first);
        }
        Some(Value::Array(std::iter::once(first).chain(rest).collect()))
    };
    let path = &comparison.path[..];
    let (mut current, members) = match comparison.root {
        Root::Body => (inputs.body.map(Cow::Borrowed), path),
        Root::Record => (inputs.record.map(Cow::Borrowed), path),
        Root::Query | Root::Headers | Root::Params => {
            let source = match comparison.root {
                Root::Query => inputs.query,
                Root::Headers => inputs.headers,
                _ => inputs.params,
            };
            let ((name, _), rest) = path.split_first().ok_or(())?;
            (pairs(source, name).map(Cow::Owned), rest)
        }
    };
    for (member, safe) in members {
        // JSON null is Rhai's `()`.
        current = match current.filter(|v| !v.is_null()) {
            Some(Cow::Borrowed(Value::Object(map))) => map.get(member).map(Cow::Borrowed),
            Some(Cow::Owned(Value::Object(mut map))) => map.remove(member).map(Cow::Owned),
            None if *safe => None,
            // A member of `()` or of a non-map: Rhai fails.
            _ => return Err(()),
        };
    }
    Ok(current.filter(|v| !v.is_null()))
}

fn order(left: &Value, right: &Value) -> Option<Ordering> {
    match (left, right) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

impl Comparison {
    fn holds(&self, inputs: &Inputs<'_>) -> bool {
        let Ok(value) = resolve(self, inputs) else {
            return false;
        };
        let ordering = value.as_deref().and_then(|v| order(v, &self.literal));
        match self.op {
            // Values of different types are never equal in Rhai.
            Op::Eq => ordering == Some(Ordering::Equal),
            Op::Ne => ordering != Some(Ordering::Equal),
            // Ordering different types is an error: the rule does not hold.
            Op::Lt => ordering == Some(Ordering::Less),
            Op::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
            Op::Gt => ordering == Some(Ordering::Greater),
            Op::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        }
    }
}

/// Whether every comparison holds.
pub fn all_hold(comparisons: &[Comparison], inputs: &Inputs<'_>) -> bool {
    comparisons.iter().all(|c| c.holds(inputs))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn holds(rule: &str, body: Value, record: Value) -> bool {
        let comparisons = native(rule).unwrap_or_else(|| panic!("{rule} is native"));
        let query = [("page".to_owned(), "2".to_owned())];
        all_hold(
            &comparisons,
            &Inputs {
                body: Some(&body),
                query: &query,
                headers: &[],
                params: &[],
                record: Some(&record),
            },
        )
    }

    #[test]
    fn comparisons_follow_rhai() {
        let body = json!({"card": {"number": "4000000000000002"}, "amount": 5000, "ok": true});
        let yes = [
            r#"req.body.card.number == "4000000000000002""#,
            r#"req.body.card.number == "4000000000000002" && req.body.amount >= 5000"#,
            "req.body.amount > 4999.5 && req.body.ok == true",
            r#"req.body.missing != "x""#,
            r#"req.body.missing?.deeper != "x""#,
            r#"req.query.page == "2""#,
        ];
        for rule in yes {
            assert!(holds(rule, body.clone(), json!({})), "{rule}");
        }
        let no = [
            r#"req.body.card.number == "4242""#,
            "req.body.amount < 5000",
            r#"req.body.amount == "5000""#,
            // A member of a missing member fails in Rhai, even with `!=`.
            r#"req.body.missing.deeper != "x""#,
            r#"req.body.card.number > 5"#,
            r#"record.status == "frozen""#,
        ];
        for rule in no {
            assert!(
                !holds(rule, body.clone(), json!({"status": "active"})),
                "{rule}"
            );
        }
        assert!(holds(
            r#"record.status == "frozen""#,
            json!(null),
            json!({"status": "frozen"})
        ));
    }

    #[test]
    fn anything_else_is_left_to_rhai() {
        for rule in [
            r#"req.body.a == "x" || req.body.b == "y""#,
            "req.body.amount % 2 == 0",
            r#"req.body.note == "a \"quoted\" word""#,
            r#"req.body.name.contains("x")"#,
            "(req.body.a == 1)",
        ] {
            assert!(native(rule).is_none(), "{rule}");
        }
    }

    mod against_rhai {
        use proptest::prelude::*;

        use super::*;
        use crate::behaviours::script::{ScriptLimits, Scripts, dynamic_of};

        fn scalar() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                (-3i64..4).prop_map(Value::from),
                (-3i64..4).prop_map(|n| Value::from(n as f64 + 0.5)),
                prop::sample::select(vec!["a", "b", "frozen"]).prop_map(Value::from),
            ]
        }

        fn body() -> impl Strategy<Value = Value> {
            let member = prop::sample::select(vec!["x", "y", "z"]);
            let inner = prop::collection::btree_map(member.clone(), scalar(), 0..3).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            });
            let value = prop_oneof![scalar(), inner];
            prop::collection::btree_map(member, value, 0..3).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            })
        }

        fn rule() -> impl Strategy<Value = String> {
            let path = prop::collection::vec(
                (prop::sample::select(vec!["x", "y", "z"]), any::<bool>()),
                1..3,
            )
            .prop_map(|members| {
                members
                    .into_iter()
                    .map(|(m, safe)| format!("{}{m}", if safe { "?." } else { "." }))
                    .collect::<String>()
            });
            let op = prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]);
            let literal = prop::sample::select(vec![
                "\"a\"",
                "\"frozen\"",
                "1",
                "-2",
                "0.5",
                "true",
                "false",
            ]);
            let term = (path, op, literal).prop_map(|(p, o, l)| format!("req.body{p} {o} {l}"));
            prop::collection::vec(term, 1..3).prop_map(|terms| terms.join(" && "))
        }

        proptest! {
            /// Native evaluation agrees with Rhai on every rule and body.
            #[test]
            fn native_rules_agree_with_rhai(body in body(), rule in rule()) {
                let mut problems = Vec::new();
                let (scripts, _, _) = Scripts::compile(
                    &ScriptLimits::default(),
                    &Default::default(),
                    &[],
                    &Default::default(),
                    &mut problems,
                );
                let ast = scripts.compile_condition(&rule).unwrap();
                let comparisons = native(&rule).unwrap();
                let mut req = rhai::Map::new();
                req.insert("body".into(), dynamic_of(&body));
                let rhai = scripts.condition_holds(&ast, rhai::Dynamic::from_map(req), rhai::Dynamic::UNIT);
                let inputs = Inputs { body: Some(&body), query: &[], headers: &[], params: &[], record: None };
                prop_assert_eq!(all_hold(&comparisons, &inputs), rhai, "{} on {}", rule, body);
            }
        }
    }
}
