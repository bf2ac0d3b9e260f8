//! The control plane's one error type: RFC 9457 problem documents with a
//! stable `type`, and an `errors` array for field-level detail.

use axum::{
    Json,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sbx_engine::ProblemType;
use serde_json::json;

pub use crate::service::FieldError;
use crate::service::ServiceError;

/// A problem answer's detail, carried on the response for the audit log.
#[derive(Debug, Clone)]
pub struct ProblemDetail(pub String);

#[derive(Debug)]
pub struct ApiError {
    kind: ProblemType,
    detail: String,
    errors: Vec<FieldError>,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            kind,
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
                ProblemType::TooManyRefusals,
                format!(
                    "more than {per_minute} calls from this address were refused in a minute (a missing or wrong admin token); retry in {retry_after} s"
                ),
            )
        }
    }

    /// A server standing by that cannot pass a request on: asked again in
    /// a second, it may have taken over or reach the holder.
    pub fn standby(detail: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(ProblemType::Standby, detail)
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::BadRequest, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Unauthorized, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::NotFound, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Conflict, detail)
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self::with_errors(ProblemType::Validation, errors)
    }

    /// A query parameter with a bad value (400, naming it).
    pub fn bad_query(errors: Vec<FieldError>) -> Self {
        Self::with_errors(ProblemType::BadQuery, errors)
    }

    /// A problem whose detail is its field errors' messages.
    fn with_errors(kind: ProblemType, errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            errors,
            ..Self::new(kind, detail)
        }
    }

    /// An unexpected failure: logged here, once, and opaque to the client.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        Self::new(
            ProblemType::Internal,
            "the server failed to handle this request; it has been logged",
        )
    }
}

impl From<sbx_store::StoreError> for ApiError {
    fn from(error: sbx_store::StoreError) -> Self {
        match error {
            sbx_store::StoreError::Conflict(what) => {
                Self::conflict(format!("{what} already exists"))
            }
            sbx_store::StoreError::NotFound(what) => {
                Self::not_found(format!("{what} does not exist"))
            }
            sbx_store::StoreError::Unstorable(detail) => {
                Self::validation(vec![FieldError::body("", detail)])
            }
            sbx_store::StoreError::Fenced(detail) => Self::standby(format!(
                "this server no longer holds the database, and nothing was saved: {detail}"
            )),
            other => Self::internal(other),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NotFound(detail) => Self::not_found(detail),
            ServiceError::NoLifecycle(detail) => Self::new(ProblemType::NoLifecycle, detail),
            ServiceError::Invalid(errors) => Self::validation(errors),
            ServiceError::InvalidProject { detail, errors } => Self {
                errors,
                ..Self::new(ProblemType::InvalidSpec, detail)
            },
            ServiceError::TooLarge(detail) => Self::new(ProblemType::PayloadTooLarge, detail),
            ServiceError::Conflict(detail) => Self::conflict(detail),
            ServiceError::Forbidden(detail) => Self::new(ProblemType::Forbidden, detail),
            ServiceError::QuotaExceeded(detail) => Self::new(ProblemType::QuotaExceeded, detail),
            ServiceError::Unauthenticated(detail) => Self::unauthorized(detail),
            ServiceError::TooManyAttempts {
                detail,
                retry_after,
            } => Self {
                retry_after: Some(retry_after),
                ..Self::new(ProblemType::TooManyAttempts, detail)
            },
            ServiceError::Unavailable(detail) => Self::new(ProblemType::RuntimeUnavailable, detail),
            ServiceError::Moving(detail) => Self::standby(detail),
            ServiceError::Store(error) => error.into(),
            ServiceError::Internal(error) => Self::internal(format!("{error:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let mut body = self.kind.document(status, &self.detail);
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(body)).into_response();
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
                ProblemType::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(ProblemType::PayloadTooLarge, e.body_text()))
            }
            Err(other) => Err(ApiError::bad_request(other.body_text())),
        }
    }
}
