//! The control plane's own OpenAPI document, generated from the handlers.

use axum::Json;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{
    audit, clock, events, explain, har, logs, projects, replay, sandboxes, timeline, webhooks,
};
use crate::error::FieldError;

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
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
    components(schemas(FieldError, projects::FileKind)),
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
