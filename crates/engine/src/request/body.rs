//! Request bodies: which declared media type a body is, and its JSON value.

use std::{borrow::Cow, convert::Infallible, future::Future, task::Poll};

use sbx_spec::{MediaTypeSpec, PropertyEncoding};
use serde_json::Value;

use crate::request::form::{Fields, Leaf};

/// `Application/JSON; charset=utf-8` → `application/json`.
pub fn essence(content_type: &str) -> Cow<'_, str> {
    // Read several times on every request with a body and every answer,
    // nearly always a declared type already in this form: one pass says so.
    let plain = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/+-._".contains(b);
    if content_type.as_bytes().iter().all(plain) {
        return Cow::Borrowed(content_type);
    }
    let end = content_type
        .bytes()
        .position(|b| b == b';')
        .unwrap_or(content_type.len());
    lower_case(content_type[..end].trim())
}

/// `text` in ASCII lower case, borrowed unless a client wrote capitals.
pub fn lower_case(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    }
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

/// Parses a body for validation. `Ok(None)` means "not validated"
/// (binary, XML); errors are messages for a 400. Form and multipart bodies
/// decode per the media type's encoding object (see [`form`]).
pub fn parse(
    content_type: &str,
    bytes: &[u8],
    media: &MediaTypeSpec,
    schema: &Value,
    document: &Value,
) -> Result<Option<Value>, String> {
    let essence = essence(content_type);
    if is_json(&essence) {
        return super::json::from_slice(bytes)
            .map(Some)
            .map_err(|e| format!("the body is not valid JSON: {e}"));
    }
    if essence == "application/x-www-form-urlencoded" {
        let mut fields = Fields::default();
        for (name, value) in form_urlencoded::parse(bytes) {
            fields.insert(&name, Leaf::Text(value.into_owned()));
        }
        return Ok(Some(fields.into_value(schema, &media.encoding, document)));
    }
    if essence == "multipart/form-data" {
        let fields = multipart_fields(content_type, bytes, &media.encoding)?;
        return Ok(Some(fields.into_value(schema, &media.encoding, document)));
    }
    if essence.ends_with("/xml") || essence.ends_with("+xml") {
        // Not decoded: a string would never meet the object schema it has.
        return Ok(None);
    }
    if essence.starts_with("text/") {
        return std::str::from_utf8(bytes)
            .map(|text| Some(Value::String(text.to_owned())))
            .map_err(|_| "the body is not valid UTF-8 text".to_owned());
    }
    Ok(None)
}

/// A multipart body's parts as fields: JSON parts (by their own
/// `Content-Type` or the encoding's `contentType`) parsed, files kept as
/// text, other parts typed by the schema.
fn multipart_fields(
    content_type: &str,
    bytes: &[u8],
    encoding: &[(String, PropertyEncoding)],
) -> Result<Fields, String> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| format!("the multipart body cannot be read: {e}"))?;
    match parse_parts(&boundary, bytes, encoding) {
        // A part named with control characters (`name="a\x03"`) is refused
        // by the strict header parser; servers read it, so the sandbox does.
        Err(message) if message.ends_with("failed to read headers") => {
            match without_header_controls(&boundary, bytes) {
                Some(cleaned) => parse_parts(&boundary, &cleaned, encoding),
                None => Err(message),
            }
        }
        parsed => parsed,
    }
}

/// The body with control characters in its parts' header blocks replaced
/// by spaces; `None` when there are none.
fn without_header_controls(boundary: &str, bytes: &[u8]) -> Option<Vec<u8>> {
    let delimiter = format!("--{boundary}");
    let mut out = bytes.to_vec();
    let mut changed = false;
    for start in memchr::memmem::find_iter(bytes, delimiter.as_bytes()) {
        let headers = start + delimiter.len();
        let end = memchr::memmem::find(&bytes[headers..], b"\r\n\r\n")
            .map_or(bytes.len(), |at| headers + at);
        for byte in &mut out[headers..end] {
            if (*byte < 0x20 && !matches!(*byte, b'\r' | b'\n' | b'\t')) || *byte == 0x7f {
                *byte = b' ';
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

fn parse_parts(
    boundary: &str,
    bytes: &[u8],
    encoding: &[(String, PropertyEncoding)],
) -> Result<Fields, String> {
    let boundary = boundary.to_owned();
    let body = bytes::Bytes::copy_from_slice(bytes);
    let stream = futures_util::stream::once(std::future::ready(Ok::<_, Infallible>(body)));
    let mut multipart = multer::Multipart::new(stream, boundary);
    let parts = async move {
        let mut fields = Fields::default();
        while let Some(part) = multipart.next_field().await? {
            let name = part.name().unwrap_or_default().to_owned();
            let declared = encoding
                .iter()
                .find(|(property, _)| *property == name)
                .and_then(|(_, e)| e.content_type.clone());
            let part_type = part.content_type().map(|m| m.essence_str().to_owned());
            let is_file = part.file_name().is_some();
            let content = part.bytes().await?;
            let text = String::from_utf8_lossy(&content).into_owned();
            let json_part = part_type.or(declared).is_some_and(|t| is_json(&t));
            let leaf = if json_part {
                match serde_json::from_str(&text) {
                    Ok(value) => Leaf::Value(value),
                    Err(e) => return Ok(Err(format!("part \"{name}\" is not valid JSON: {e}"))),
                }
            } else if is_file {
                Leaf::Value(Value::String(text))
            } else {
                Leaf::Text(text)
            };
            fields.insert(&name, leaf);
        }
        Ok::<_, multer::Error>(Ok(fields))
    };
    // The whole body is in memory, so the parser never waits: one poll ends it.
    let mut parts = std::pin::pin!(parts);
    match parts
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        Poll::Ready(Ok(fields)) => fields,
        Poll::Ready(Err(e)) => Err(format!("the multipart body cannot be read: {e}")),
        Poll::Pending => Err("the multipart body cannot be read: it ended early".to_owned()),
    }
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

    fn media(media_type: &str) -> MediaTypeSpec {
        MediaTypeSpec {
            media_type: media_type.into(),
            schema_pointer: None,
            examples: Vec::new(),
            encoding: Vec::new(),
        }
    }

    #[test]
    fn multipart_parts_are_typed_and_nested() {
        let body = "--B\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\ndispute_evidence\r\n\
            --B\r\nContent-Disposition: form-data; name=\"file_link_data[create]\"\r\n\r\ntrue\r\n\
            --B\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{\"a\": [1]}\r\n\
            --B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\n123\r\n--B--\r\n";
        let schema = serde_json::json!({"properties": {
            "file_link_data": {"properties": {"create": {"type": "boolean"}}},
            "file": {"type": "string", "format": "binary"},
        }});
        let value = parse(
            "multipart/form-data; boundary=B",
            body.as_bytes(),
            &media("multipart/form-data"),
            &schema,
            &Value::Null,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            value,
            serde_json::json!({"purpose": "dispute_evidence", "file_link_data": {"create": true}, "meta": {"a": [1]}, "file": "123"})
        );
        // A part name with control characters is read, as servers read it.
        let odd = parse(
            "multipart/form-data; boundary=B",
            b"--B\r\nContent-Disposition: form-data; name=\"x\x03\x01\"\r\n\r\n1\r\n\
              --B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n\x03\r\n--B--\r\n",
            &media("multipart/form-data"),
            &schema,
            &Value::Null,
        );
        assert_eq!(
            odd,
            Ok(Some(serde_json::json!({"x  ": "1", "file": "\u{3}"})))
        );
        let broken = parse(
            "multipart/form-data; boundary=B",
            b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx",
            &media("multipart/form-data"),
            &schema,
            &Value::Null,
        );
        assert!(
            broken
                .unwrap_err()
                .starts_with("the multipart body cannot be read")
        );
        let unbounded = parse(
            "multipart/form-data",
            b"",
            &media("multipart/form-data"),
            &schema,
            &Value::Null,
        );
        assert!(unbounded.is_err());
    }

    #[test]
    fn forms_are_coerced_by_schema() {
        let schema = serde_json::json!({"properties": {"n": {"type": "integer"}, "t": {"type": "array", "items": {"type": "string"}}}});
        let value = parse(
            "application/x-www-form-urlencoded",
            b"n=3&t=a&t=b&x=y",
            &media("application/x-www-form-urlencoded"),
            &schema,
            &Value::Null,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            value,
            serde_json::json!({"n": 3, "t": ["a", "b"], "x": "y"})
        );
    }
}
