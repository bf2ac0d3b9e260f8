//! The bundled demo project, for `sbx serve --demo`: the example project
//! of `examples/payments`, compiled into the binary.

use sbx_engine::ProjectFiles;

use crate::{
    Server,
    service::caller::Caller,
    service::{
        accounts, audit,
        projects::{self, Publish},
        sandboxes::{self, NewSandbox},
    },
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

/// The demo developer's email address.
pub const DEMO_EMAIL: &str = "developer@example.com";

/// A sandbox ready to call, and the developer who owns it.
pub struct DemoSandbox {
    pub id: String,
    pub base_url: String,
    pub api_key: String,
    /// The portal's address.
    pub portal_url: String,
    pub email: String,
    /// New at every start.
    pub password: String,
}

/// Imports the demo project (or a new revision when the bundled files
/// changed) and creates a fresh sandbox of it.
pub async fn prepare(server: &Server) -> anyhow::Result<DemoSandbox> {
    let state = &server.state;
    let caller = &Caller::System;
    let files = demo_files()?;
    let published = match state.store.get_project(DEMO_PROJECT).await? {
        None => Some((
            Publish::NewProject,
            "POST /api/v1/projects",
            format!("/api/v1/projects/{DEMO_PROJECT}"),
            201,
            "sbx serve --demo: the bundled demo project",
        )),
        Some(_) => {
            let (spec, latest) = projects::latest(state, caller, DEMO_PROJECT).await?;
            (spec != DEMO_SPEC || latest != files).then(|| {
                (
                    Publish::NewRevision,
                    "PUT /api/v1/projects/{name}/spec",
                    format!("/api/v1/projects/{DEMO_PROJECT}/spec"),
                    200,
                    "sbx serve --demo: the bundled demo project changed",
                )
            })
        }
    };
    if let Some((kind, action, path, status, why)) = published {
        let _edit = state.edits.lock().await;
        projects::publish(
            state,
            &Caller::System,
            DEMO_PROJECT,
            DEMO_SPEC.to_owned(),
            files,
            kind,
        )
        .await?;
        audit::record(state, audit::by_system(action, path, status, why, None)).await;
    }
    let (account, password) = accounts::demo_account(state, DEMO_EMAIL).await?;
    let developer = Caller::Account {
        id: account.id.clone(),
        role: account.role,
    };
    // One demo sandbox at a time: the last start's goes.
    for old in sandboxes::list(state, &developer, Some(DEMO_PROJECT)) {
        if old.label.as_deref() == Some("demo") {
            sandboxes::delete(state, &developer, &old.id).await?;
        }
    }
    let new = NewSandbox {
        seed: Some("demo".to_owned()),
        label: Some("demo".to_owned()),
        ..NewSandbox::of(DEMO_PROJECT)
    };
    let made = sandboxes::create(state, &developer, new).await?;
    let id = made.sandbox.id.clone();
    let entry = audit::by_system(
        "POST /api/v1/sandboxes",
        format!("/api/v1/sandboxes/{id}"),
        201,
        "sbx serve --demo: the demo sandbox",
        Some(account.id.clone()),
    );
    audit::record(state, entry).await;
    Ok(DemoSandbox {
        base_url: sandboxes::addresses(state, &made.sandbox).0,
        id: id.to_string(),
        api_key: made.api_key,
        portal_url: format!("{}/", state.public_url),
        email: account.email,
        password,
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
