//! JSON request bodies read into `serde_json::Value` with every object and
//! array allocated once at its final size. JSON gives no length up front,
//! so serde_json's own reader grows each map and vector as it goes (for a
//! four-key object: two table allocations and a rehash); here members are
//! gathered on a per-thread scratch stack and moved into place when their
//! container closes. Same values, same errors, same depth limit.

use std::{cell::RefCell, fmt};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

thread_local! {
    /// Members of the objects and arrays still open, innermost last.
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

#[derive(Default)]
struct Scratch {
    members: Vec<(String, Value)>,
    items: Vec<Value>,
}

/// The scratch kept between bodies; a larger one is given back, so one
/// huge body does not hold its memory.
const SCRATCH_KEPT: usize = 256;

/// Parses `bytes` as one JSON document, as `serde_json::from_slice` does.
pub fn from_slice(bytes: &[u8]) -> serde_json::Result<Value> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = AnyValue.deserialize(&mut deserializer);
    SCRATCH.with_borrow_mut(|scratch| {
        scratch.members.shrink_to(SCRATCH_KEPT);
        scratch.items.shrink_to(SCRATCH_KEPT);
    });
    let value = value?;
    deserializer.end()?;
    Ok(value)
}

/// Reads whatever value comes next.
struct AnyValue;

impl<'de> DeserializeSeed<'de> for AnyValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValue {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // serde_json only hands finite numbers to a visitor.
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let start = SCRATCH.with_borrow(|scratch| scratch.items.len());
        let gathered = (|| {
            while let Some(item) = seq.next_element_seed(AnyValue)? {
                SCRATCH.with_borrow_mut(|scratch| scratch.items.push(item));
            }
            Ok(())
        })();
        let items = SCRATCH.with_borrow_mut(|scratch| scratch.items.drain(start..).collect());
        gathered.map(|()| Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let start = SCRATCH.with_borrow(|scratch| scratch.members.len());
        let gathered = (|| {
            while let Some(key) = map.next_key::<String>()? {
                let value = map.next_value_seed(AnyValue)?;
                SCRATCH.with_borrow_mut(|scratch| scratch.members.push((key, value)));
            }
            Ok(())
        })();
        let object = SCRATCH
            .with_borrow_mut(|scratch| scratch.members.drain(start..).collect::<Map<_, _>>());
        gathered.map(|()| Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn same_as_serde_json(text: &str) {
        let ours = from_slice(text.as_bytes()).map_err(|e| e.to_string());
        let theirs = serde_json::from_str::<Value>(text).map_err(|e| e.to_string());
        assert_eq!(ours, theirs, "{text}");
        if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
            // Key order too, which `==` ignores.
            assert_eq!(ours.to_string(), theirs.to_string());
        }
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"name": "Widget", "price": 1999, "tags": ["a", "b"], "n": null}"#,
            r#"{"b": 1, "a": {"c": [1, -2, 3.5, {"d": true}], "e": {}}, "b": 2}"#,
            r#"[[], [[]], {}, "\u00e9\n", 1e3, -0, 18446744073709551615]"#,
            r#"{"a": [1, 2, {"b": [3, 4]}], "c": 5}"#,
        ] {
            same_as_serde_json(text);
        }
    }

    #[test]
    fn arrays_are_made_at_their_final_size() {
        let Ok(Value::Array(outer)) = from_slice(b"[1, [2, 3, 4], 5]") else {
            panic!("not an array");
        };
        let Value::Array(inner) = &outer[1] else {
            panic!("not an array");
        };
        assert_eq!((outer.len(), outer.capacity()), (3, 3));
        assert_eq!((inner.len(), inner.capacity()), (3, 3));
    }

    #[test]
    fn fails_as_serde_json_fails_and_leaves_no_scratch() {
        for text in [
            r#"{"a": [1, 2, {"b": "#,
            r#"{"a": 1,}"#,
            r#"[1, 2"#,
            r#"{"a": 1} trailing"#,
            &"[".repeat(200),
        ] {
            same_as_serde_json(text);
        }
        SCRATCH.with_borrow(|scratch| {
            assert!(scratch.members.is_empty() && scratch.items.is_empty());
        });
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "[a-z\u{e9}\"\\\\]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..6)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_document_reads_the_same(value in json()) {
            same_as_serde_json(&value.to_string());
            same_as_serde_json(&serde_json::to_string_pretty(&value).unwrap());
        }
    }
}
