//! The control plane's own OpenAPI document, generated from the handlers.

use axum::Json;
use utoipa::{
    Modify, OpenApi,
    openapi::{
        ResponseBuilder,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use super::{
    audit, clock, events, explain, har, logs, projects, replay, sandboxes, timeline, webhooks,
};
use crate::http::error::FieldError;

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
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
                if operation.security.is_some() {
                    answers.extend([
                        ("401", "the admin token is missing or wrong"),
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
    info(title = "SmartSandbox control plane", description = "Projects (OpenAPI specs and their revisions) and sandboxes."),
    paths(
        projects::create, projects::list, projects::show, projects::delete, projects::replace_spec,
        projects::put_file, projects::delete_file, projects::put_env, projects::put_settings,
        projects::files, projects::drift, projects::coverage,
        sandboxes::create, sandboxes::list, sandboxes::show, sandboxes::delete,
        sandboxes::reset, sandboxes::seed, sandboxes::put_env, events::list, events::trigger, events::types, events::stream, logs::list, logs::show, logs::stream, har::export, timeline::timeline, explain::in_sandbox, explain::anywhere, replay::snippets, replay::replay, audit::list,
        sandboxes::put_chaos, sandboxes::delete_chaos, sandboxes::scenarios, sandboxes::put_scenario,
        clock::clock, clock::change_clock, clock::history, clock::transition,
        webhooks::create, webhooks::list, webhooks::show, webhooks::update, webhooks::delete,
        webhooks::rotate_secret, webhooks::deliveries, webhooks::redeliver,
    ),
    components(schemas(FieldError, crate::service::projects::FileKind)),
    modifiers(&AdminToken),
)]
struct ControlPlaneDoc;

/// The document served at `/api/v1/openapi.json`.
pub fn control_plane_openapi() -> utoipa::openapi::OpenApi {
    ControlPlaneDoc::openapi()
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(control_plane_openapi())
}
