//! The bundled demo project, for `sbx serve --demo`.

use std::sync::Arc;

use sbx_store::SandboxRecord;

use crate::{
    Server,
    app::{compiled_revision, now_ms},
    ids::{SandboxId, generate_api_key, hash_secret},
    registry::{LiveSandbox, compile_spec},
};

/// A small payments API: accounts, customers, payments; bearer auth.
pub const DEMO_SPEC: &str = include_str!("demo/payments.yaml");
pub const DEMO_PROJECT: &str = "demo-payments";

/// A sandbox ready to call.
pub struct DemoSandbox {
    pub id: String,
    pub base_url: String,
    pub api_key: String,
}

/// Imports the demo project (or a new revision when the bundled spec
/// changed) and creates a fresh sandbox of it.
pub async fn prepare(server: &Server) -> anyhow::Result<DemoSandbox> {
    let state = &server.state;
    let revision = match state.store.get_project(DEMO_PROJECT).await? {
        None => {
            let compiled = compile_spec(DEMO_SPEC.to_owned(), &state.config.limits)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            state
                .store
                .create_project(DEMO_PROJECT, DEMO_SPEC, now_ms())
                .await?;
            state.registry.put_compiled(DEMO_PROJECT, 1, compiled);
            1
        }
        Some(project) => {
            let latest = state
                .store
                .get_revision(DEMO_PROJECT, project.latest_revision)
                .await?;
            if latest.is_some_and(|r| r.spec == DEMO_SPEC) {
                project.latest_revision
            } else {
                state
                    .store
                    .add_revision(DEMO_PROJECT, DEMO_SPEC, now_ms())
                    .await?
            }
        }
    };
    let compiled = compiled_revision(state, DEMO_PROJECT, revision)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
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
    };
    state.store.create_sandbox(&record).await?;
    let base_url = format!("{}/sbx/{id}{}", state.public_url, compiled.model.base_path);
    state
        .registry
        .insert(LiveSandbox::from_record(record, Arc::clone(&compiled)));
    Ok(DemoSandbox {
        id,
        base_url,
        api_key,
    })
}
