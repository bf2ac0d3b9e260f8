//! The control plane's own OpenAPI document, generated from the handlers.

use std::sync::OnceLock;

use axum::Json;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        ResponseBuilder,
        security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        },
    },
};

use crate::http::error::FieldError;

/// The credentials every signed-in call takes, and the answers any call
/// can give before its handler runs.
struct Credentials;

impl Modify for Credentials {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token, a personal access token (`sbx_pat_…`) or a session token",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "sbx_session",
                "The browser session of `POST /api/v1/auth/login` (`__Host-sbx_session` over HTTPS); changes also send its `X-CSRF-Token`",
            ))),
        );
        // The answers every call can give before its handler runs: 401
        // without the token (429 once a client was refused too often), 400
        // for a malformed parameter, and the body
        // extractor's 400, 413, 415 and 422.
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let mut answers = Vec::new();
                let signed_in = operation.security.as_ref().is_some_and(|alternatives| {
                    alternatives.iter().any(|requirement| {
                        serde_json::to_value(requirement)
                            .is_ok_and(|value| value.get("bearer").is_some())
                    })
                });
                if signed_in {
                    if let Some(alternatives) = operation.security.as_mut() {
                        alternatives
                            .push(SecurityRequirement::new("session", Vec::<String>::new()));
                    }
                    answers.extend([
                        ("401", "no credentials, or a wrong, revoked or expired token or session"),
                        (
                            "403",
                            "a developer asked what only admins may do, or a change made with the session cookie came without its `X-CSRF-Token`",
                        ),
                        (
                            "429",
                            "too many calls from this address were refused in the last minute; `Retry-After` says when to try again",
                        ),
                    ]);
                }
                if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    answers.push(("400", "a parameter is malformed (the problem names it)"));
                }
                if operation.request_body.is_some() {
                    answers.extend([
                        ("400", "the body is not JSON"),
                        ("413", "the body is too large"),
                        ("415", "the body is not labelled JSON"),
                        ("422", "the body does not have the documented shape"),
                    ]);
                }
                for (status, description) in answers {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(description)
                                .build()
                                .into()
                        });
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SmartSandbox control plane",
        description = "Accounts, projects (OpenAPI specs and their revisions) and sandboxes."
    ),
    components(schemas(FieldError, crate::service::projects::FileKind))
)]
struct ControlPlaneDoc;

/// The document of the routes in `paths`: title, shared schemas, the
/// credentials and the answers every call can give.
pub(super) fn finish(paths: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut document = ControlPlaneDoc::openapi();
    document.merge(paths);
    Credentials.modify(&mut document);
    document
}

/// The document served at `/api/v1/openapi.json`, made once.
pub fn control_plane_openapi() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(super::document)
}

pub async fn serve() -> Json<&'static utoipa::openapi::OpenApi> {
    Json(control_plane_openapi())
}
