//! Contract validation of answers: what a script, template, stateful
//! resource or upstream produced, checked against the response the spec
//! declares for its status and media type.

use serde::Serialize;
use serde_json::{Value, json};

use crate::{
    Response,
    compile::revision::CompiledOperation,
    pipeline::problem::ProblemType,
    request::body::{essence, is_json, match_declared},
};

/// How an answer departs from the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub operation: String,
    pub status: u16,
    /// Where in the body (empty: the status or media type itself).
    pub pointer: String,
    pub message: String,
}

impl Drift {
    /// One line for the `X-Sandbox-Drift` header.
    pub fn summary(&self) -> String {
        summary(&self.pointer, &self.message)
    }

    /// The 500 problem strict projects answer instead.
    pub fn response(&self) -> Response {
        ProblemType::ResponseDrift.response_with(
            500,
            &format!(
                "the answer of {} (status {}) breaks the spec at {}: {}",
                self.operation,
                self.status,
                if self.pointer.is_empty() {
                    "the root"
                } else {
                    &self.pointer
                },
                self.message
            ),
            Some(json!({"pointer": self.pointer, "operation": self.operation})),
        )
    }
}

/// `pointer: message` as one header-safe line of at most 300 characters.
pub fn summary(pointer: &str, message: &str) -> String {
    let text = if pointer.is_empty() {
        message.to_owned()
    } else {
        format!("{pointer}: {message}")
    };
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// The first way `response` departs from what `operation` declares.
pub fn check(
    operation: &CompiledOperation,
    response: &Response,
    value: Option<&Value>,
) -> Option<Drift> {
    let drift = |pointer: String, message: String| {
        Some(Drift {
            operation: operation.operation.id.clone(),
            status: response.status,
            pointer,
            message,
        })
    };
    let status = response.status;
    let declared = operation
        .responses
        .iter()
        .find(|r| r.spec.status == sbx_spec::StatusKey::Code(status))
        .or_else(|| {
            operation
                .responses
                .iter()
                .find(|r| r.spec.status == sbx_spec::StatusKey::Range(status / 100))
        })
        .or_else(|| {
            operation
                .responses
                .iter()
                .find(|r| r.spec.status == sbx_spec::StatusKey::Default)
        });
    let Some(declared) = declared else {
        return drift(String::new(), format!("status {status} is not declared"));
    };
    if response.body.is_empty() {
        return None;
    }
    if declared.content.is_empty() {
        return drift(
            String::new(),
            format!("status {status} declares no body, but one was sent"),
        );
    }
    let content_type = response
        .headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map_or("application/octet-stream", |(_, v)| v.as_str());
    let media_types = declared.content.iter().map(|m| m.spec.media_type.as_str());
    let Some(index) = match_declared(media_types, content_type) else {
        return drift(
            String::new(),
            format!("media type {content_type} is not declared for status {status}"),
        );
    };
    if !is_json(&essence(content_type)) {
        return None;
    }
    let parsed;
    let value = match value {
        Some(value) => value,
        None => match serde_json::from_slice::<Value>(&response.body) {
            Ok(v) => {
                parsed = v;
                &parsed
            }
            Err(error) => {
                return drift(
                    String::new(),
                    format!("the body is not valid JSON: {error}"),
                );
            }
        },
    };
    let validator = declared.content[index].validator.get()?;
    if validator.is_valid(value) {
        return None;
    }
    let first = validator.violations(value).into_iter().next()?;
    drift(first.pointer, first.message)
}
