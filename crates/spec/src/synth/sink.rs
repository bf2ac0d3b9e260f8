//! Where a generated value goes: built as a [`Value`], or written straight
//! out as JSON. A value that is only sent (a fresh answer nobody reads
//! again) never becomes a tree: no map per object, no hashing of member
//! names, nothing to free but the text.

use serde_json::{Map, Number, Value};

/// What a generator emits, in document order: an object is its start, then
/// each member's name followed by its value, then its end.
pub(super) trait Sink {
    fn value(&mut self, value: &Value);
    fn owned(&mut self, value: Value);
    fn string(&mut self, text: String);
    fn number(&mut self, number: Number);
    fn boolean(&mut self, value: bool);
    fn null(&mut self);
    fn begin_object(&mut self, members: usize);
    fn key(&mut self, key: &str);
    fn end_object(&mut self);
    fn begin_array(&mut self, items: usize);
    fn end_array(&mut self);
}

/// Builds the [`Value`].
#[derive(Default)]
pub(super) struct ValueSink {
    open: Vec<Open>,
    done: Option<Value>,
}

enum Open {
    Object(Map<String, Value>, Option<String>),
    Array(Vec<Value>),
}

impl ValueSink {
    pub(super) fn finish(self) -> Value {
        self.done.unwrap_or(Value::Null)
    }
}

impl Sink for ValueSink {
    fn value(&mut self, value: &Value) {
        self.owned(value.clone());
    }

    fn owned(&mut self, value: Value) {
        match self.open.last_mut() {
            Some(Open::Object(map, key)) => {
                map.insert(key.take().unwrap_or_default(), value);
            }
            Some(Open::Array(items)) => items.push(value),
            None => self.done = Some(value),
        }
    }

    fn string(&mut self, text: String) {
        self.owned(Value::String(text));
    }

    fn number(&mut self, number: Number) {
        self.owned(Value::Number(number));
    }

    fn boolean(&mut self, value: bool) {
        self.owned(Value::Bool(value));
    }

    fn null(&mut self) {
        self.owned(Value::Null);
    }

    fn begin_object(&mut self, members: usize) {
        self.open
            .push(Open::Object(Map::with_capacity(members), None));
    }

    fn key(&mut self, key: &str) {
        if let Some(Open::Object(_, pending)) = self.open.last_mut() {
            *pending = Some(key.to_owned());
        }
    }

    fn end_object(&mut self) {
        if let Some(Open::Object(map, _)) = self.open.pop() {
            self.owned(Value::Object(map));
        }
    }

    fn begin_array(&mut self, items: usize) {
        self.open.push(Open::Array(Vec::with_capacity(items)));
    }

    fn end_array(&mut self) {
        if let Some(Open::Array(items)) = self.open.pop() {
            self.owned(Value::Array(items));
        }
    }
}

/// Writes compact JSON, byte for byte what serializing the [`Value`] that
/// [`ValueSink`] builds would give.
pub(super) struct JsonSink {
    out: Vec<u8>,
    /// No member or item written yet at this level: no comma before the next.
    first: bool,
}

impl JsonSink {
    pub(super) fn with_capacity(bytes: usize) -> Self {
        Self {
            out: Vec::with_capacity(bytes),
            first: true,
        }
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.out
    }

    fn separate(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    fn write(&mut self, value: &(impl serde::Serialize + ?Sized)) {
        // Writing into a `Vec` fails only for a map with non-string keys,
        // which a `Value` cannot hold.
        let _ = serde_json::to_writer(&mut self.out, value);
    }
}

impl Sink for JsonSink {
    fn value(&mut self, value: &Value) {
        self.separate();
        self.write(value);
    }

    fn owned(&mut self, value: Value) {
        self.value(&value);
    }

    fn string(&mut self, text: String) {
        self.separate();
        self.write(text.as_str());
    }

    fn number(&mut self, number: Number) {
        self.separate();
        self.write(&number);
    }

    fn boolean(&mut self, value: bool) {
        self.separate();
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn null(&mut self) {
        self.separate();
        self.out.extend_from_slice(b"null");
    }

    fn begin_object(&mut self, _: usize) {
        self.separate();
        self.out.push(b'{');
        self.first = true;
    }

    fn key(&mut self, key: &str) {
        self.separate();
        self.write(key);
        self.out.push(b':');
        self.first = true;
    }

    fn end_object(&mut self) {
        self.out.push(b'}');
        self.first = false;
    }

    fn begin_array(&mut self, _: usize) {
        self.separate();
        self.out.push(b'[');
        self.first = true;
    }

    fn end_array(&mut self) {
        self.out.push(b']');
        self.first = false;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn emit(sink: &mut impl Sink) {
        sink.begin_object(3);
        sink.key("a\"b");
        sink.begin_array(2);
        sink.number(1.into());
        sink.begin_object(0);
        sink.end_object();
        sink.end_array();
        sink.key("c");
        sink.value(&json!({"x": [null, true, 1.5]}));
        sink.key("d");
        sink.string("é\n".into());
        sink.key("e");
        sink.begin_array(0);
        sink.end_array();
        sink.key("f");
        sink.boolean(false);
        sink.end_object();
    }

    #[test]
    fn both_sinks_make_the_same_json() {
        let mut value = ValueSink::default();
        emit(&mut value);
        let mut json = JsonSink::with_capacity(0);
        emit(&mut json);
        let value = value.finish();
        assert_eq!(
            value,
            json!({"a\"b": [1, {}], "c": {"x": [null, true, 1.5]}, "d": "é\n", "e": [], "f": false})
        );
        assert_eq!(json.finish(), serde_json::to_vec(&value).unwrap());
    }
}
