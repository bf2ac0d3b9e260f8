//! The control plane's one error type: RFC 9457 problem documents with a
//! stable `type`, and an `errors` array for field-level detail.

use axum::{
    Json,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Where the problem is: `body`, `spec`, `query`, …
    pub location: String,
    /// JSON pointer inside that location.
    pub pointer: String,
    pub message: String,
    /// Line and column in a project file (scripts, templates, data files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

/// A problem answer's detail, carried on the response for the audit log.
#[derive(Debug, Clone)]
pub struct ProblemDetail(pub String);

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// A client that was refused too often: it waits `retry_after` seconds.
    pub fn too_many_refusals(retry_after: u64, per_minute: u32) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-refusals",
                "Too many refused calls",
                format!(
                    "more than {per_minute} calls from this address were refused in a minute (a missing or wrong admin token); retry in {retry_after} s"
                ),
            )
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad request",
            detail,
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    pub fn not_found(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, slug, "Not found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            detail,
        )
    }

    pub fn invalid_spec(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-spec",
            "The spec has problems",
            detail,
        );
        error.errors = errors;
        error
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self::with_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
            "Invalid request",
            errors,
        )
    }

    /// A query parameter with a bad value (400, naming it).
    pub fn bad_query(errors: Vec<FieldError>) -> Self {
        Self::with_errors(
            StatusCode::BAD_REQUEST,
            "bad-query",
            "Bad query parameter",
            errors,
        )
    }

    /// A problem whose detail is its field errors' messages.
    fn with_errors(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        errors: Vec<FieldError>,
    ) -> Self {
        let detail = errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let mut error = Self::new(status, slug, title, detail);
        error.errors = errors;
        error
    }

    /// An unexpected failure: logged here, once, and opaque to the client.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "the server failed to handle this request; it has been logged",
        )
    }

    /// The problem as text for a terminal: the detail, then one line per field error.
    pub fn describe(&self) -> String {
        let mut text = self.detail.clone();
        for error in &self.errors {
            let at = if error.pointer.is_empty() {
                "(root)"
            } else {
                &error.pointer
            };
            text.push_str(&format!("\n  {at}: {}", error.message));
        }
        text
    }
}

impl From<sbx_store::StoreError> for ApiError {
    fn from(error: sbx_store::StoreError) -> Self {
        match error {
            sbx_store::StoreError::Conflict(what) => {
                Self::conflict(format!("{what} already exists"))
            }
            sbx_store::StoreError::NotFound(what) => {
                Self::not_found("not-found", format!("{what} does not exist"))
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("urn:sbx:problem:{}", self.slug),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ProblemDetail(self.detail));
        response
    }
}

/// `Json` whose rejections are problem documents naming what is wrong.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let media_type = parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        // `curl -d '{…}'` labels JSON as a form: the control plane takes
        // an unlabelled or form-labelled body as JSON (anything else is 415).
        if matches!(
            media_type.as_deref(),
            None | Some("application/x-www-form-urlencoded")
        ) {
            parts.headers.insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
        }
        let request = Request::from_parts(parts, body);
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::validation(vec![FieldError {
                location: "body".into(),
                pointer: String::new(),
                message: e.body_text(),
                line: None,
                column: None,
            }])),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as JSON with `Content-Type: application/json`",
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::payload_too_large(e.body_text()))
            }
            Err(other) => Err(ApiError::bad_request(other.body_text())),
        }
    }
}
