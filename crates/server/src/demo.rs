//! The bundled demo project, for `sbx serve --demo`: the example project
//! of `examples/payments`, compiled into the binary.

use std::sync::Arc;

use sbx_engine::ProjectFiles;
use sbx_store::SandboxRecord;

use crate::{
    Server,
    app::{compiled_revision, now_ms, parse_files},
    control::{audit, projects::publish},
    ids::{SandboxId, generate_api_key, hash_secret},
    registry::LiveSandbox,
};

/// A small payments API: accounts, customers, payments, a balance; bearer auth.
pub const DEMO_SPEC: &str = include_str!("../../../examples/payments/openapi.yaml");
pub const DEMO_PROJECT: &str = "demo-payments";

/// The demo's behaviour files as `(path in the folder, text)`.
pub const DEMO_FILES: [(&str, &str); 15] = [
    (
        "behaviours/createPayment.rhai",
        include_str!("../../../examples/payments/behaviours/createPayment.rhai"),
    ),
    (
        "behaviours/refundPayment.rhai",
        include_str!("../../../examples/payments/behaviours/refundPayment.rhai"),
    ),
    (
        "events/charge.dispute.created.yaml",
        include_str!("../../../examples/payments/events/charge.dispute.created.yaml"),
    ),
    (
        "events/payment.processing.yaml",
        include_str!("../../../examples/payments/events/payment.processing.yaml"),
    ),
    (
        "events/payment.refunded.yaml",
        include_str!("../../../examples/payments/events/payment.refunded.yaml"),
    ),
    (
        "events/payment.succeeded.yaml",
        include_str!("../../../examples/payments/events/payment.succeeded.yaml"),
    ),
    (
        "jobs/review.rhai",
        include_str!("../../../examples/payments/jobs/review.rhai"),
    ),
    (
        "lifecycles/payments.yaml",
        include_str!("../../../examples/payments/lifecycles/payments.yaml"),
    ),
    (
        "modules/money.rhai",
        include_str!("../../../examples/payments/modules/money.rhai"),
    ),
    (
        "scenarios/payments.yaml",
        include_str!("../../../examples/payments/scenarios/payments.yaml"),
    ),
    (
        "templates/getBalance.json.j2",
        include_str!("../../../examples/payments/templates/getBalance.json.j2"),
    ),
    (
        "fixtures/accounts.yaml",
        include_str!("../../../examples/payments/fixtures/accounts.yaml"),
    ),
    (
        "fixtures/customers.yaml",
        include_str!("../../../examples/payments/fixtures/customers.yaml"),
    ),
    (
        "env.yaml",
        include_str!("../../../examples/payments/env.yaml"),
    ),
    (
        "project.yaml",
        include_str!("../../../examples/payments/project.yaml"),
    ),
];

/// The demo project's files.
pub fn demo_files() -> anyhow::Result<ProjectFiles> {
    sbx_engine::project::from_sources(DEMO_FILES).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("the bundled demo project is invalid:\n{}", lines.join("\n"))
    })
}

/// A sandbox ready to call.
pub struct DemoSandbox {
    pub id: String,
    pub base_url: String,
    pub api_key: String,
}

/// Imports the demo project (or a new revision when the bundled files
/// changed) and creates a fresh sandbox of it.
pub async fn prepare(server: &Server) -> anyhow::Result<DemoSandbox> {
    let state = &server.state;
    let files = demo_files()?;
    let describe = |e: crate::error::ApiError| anyhow::anyhow!("{}", e.describe());
    let revision = match state.store.get_project(DEMO_PROJECT).await? {
        None => {
            let (record, _) = publish(state, DEMO_PROJECT, DEMO_SPEC.to_owned(), files, true)
                .await
                .map_err(describe)?;
            let entry = audit::by_system(
                "POST /api/v1/projects",
                format!("/api/v1/projects/{DEMO_PROJECT}"),
                201,
                "sbx serve --demo: the bundled demo project",
            );
            audit::record(state, entry).await;
            record.latest_revision
        }
        Some(project) => {
            let latest = state
                .store
                .get_revision(DEMO_PROJECT, project.latest_revision)
                .await?;
            let unchanged = latest.is_some_and(|r| {
                r.spec == DEMO_SPEC && parse_files(&r.files).is_ok_and(|f| f == files)
            });
            if unchanged {
                project.latest_revision
            } else {
                let (record, _) = publish(state, DEMO_PROJECT, DEMO_SPEC.to_owned(), files, false)
                    .await
                    .map_err(describe)?;
                let entry = audit::by_system(
                    "PUT /api/v1/projects/{name}/spec",
                    format!("/api/v1/projects/{DEMO_PROJECT}/spec"),
                    200,
                    "sbx serve --demo: the bundled demo project changed",
                );
                audit::record(state, entry).await;
                record.latest_revision
            }
        }
    };
    let compiled = compiled_revision(state, DEMO_PROJECT, revision)
        .await
        .map_err(describe)?;
    let id = SandboxId::generate().to_string();
    let api_key = generate_api_key();
    let record = SandboxRecord {
        id: id.clone(),
        project: DEMO_PROJECT.to_owned(),
        revision,
        key_hash: hash_secret(&api_key),
        seed: "demo".to_owned(),
        auth: "spec".to_owned(),
        label: Some("demo".to_owned()),
        created_at_ms: now_ms(),
        expires_at_ms: None,
        pinned: false,
        env: "{}".to_owned(),
        chaos: None,
        scenario: None,
        clock_offset_ms: 0,
        clock_frozen_ms: None,
        seeded_at_ms: now_ms(),
        webhook_schedule: "standard".to_owned(),
    };
    state.store.create_sandbox(&record).await?;
    let entry = audit::by_system(
        "POST /api/v1/sandboxes",
        format!("/api/v1/sandboxes/{id}"),
        201,
        "sbx serve --demo: the demo sandbox",
    );
    audit::record(state, entry).await;
    let base_url = format!("{}/sbx/{id}{}", state.public_url, compiled.model.base_path);
    state.registry.insert(LiveSandbox::from_record(
        record,
        Arc::clone(&compiled),
        Vec::new(),
    ));
    Ok(DemoSandbox {
        id,
        base_url,
        api_key,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_bundled_demo_is_the_example_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/payments");
        let on_disk = sbx_engine::project::read_dir(&dir).expect("the example project reads");
        assert_eq!(
            super::demo_files().unwrap(),
            on_disk,
            "DEMO_FILES lists every file of examples/payments"
        );
        let spec = std::fs::read_to_string(dir.join("openapi.yaml")).unwrap();
        assert_eq!(super::DEMO_SPEC, spec);
    }
}
