//! RFC 9457 problem documents for answers the sandbox itself makes.

use serde_json::{Value, json};

use crate::Response;

/// A `application/problem+json` response. `slug` names the problem type
/// (`urn:sbx:problem:{slug}`) so clients can branch on it.
pub fn problem_response(
    status: u16,
    slug: &str,
    title: &str,
    detail: &str,
    extra: Option<Value>,
) -> Response {
    let mut body = json!({
        "type": format!("urn:sbx:problem:{slug}"),
        "title": title,
        "status": status,
        "detail": detail,
    });
    if let (Some(Value::Object(extra)), Value::Object(map)) = (extra, &mut body) {
        map.extend(extra);
    }
    Response {
        status,
        headers: vec![(
            "content-type".to_owned(),
            "application/problem+json".to_owned(),
        )],
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}
