//! Sandboxes with `isolation: namespace`: what their own server is given
//! (the bundle: their project revision and settings, and their keys), and
//! single-sandbox mode, in which a server serves one such bundle.

use std::path::Path;

use anyhow::Context;
use sbx_engine::{AuthMode, ProjectFiles, project::RateLimits};
use sbx_store::{KeyKind, KeyPermissions, KeyRecord, SandboxRecord};
use sbx_webhooks::ScheduleName;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ServiceError, ServiceResult, caller::Caller, projects};
use crate::{
    app::{AppState, now_ms, rfc3339},
    runtime::{keys::LiveKey, registry::LiveSandbox},
};

/// The bundle's format; a server refuses one it does not know.
const BUNDLE_FORMAT: u32 = 1;
/// Largest bundle: a ConfigMap holds at most 1 MiB, metadata included.
pub const MAX_BUNDLE_BYTES: usize = 960 * 1024;

/// What a sandbox's own server serves (`sandbox.json`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: u32,
    pub project: String,
    pub spec: String,
    pub files: ProjectFiles,
    pub sandbox: BundledSandbox,
}

/// The sandbox's settings as it was made. Its server keeps it until the
/// namespace is deleted: the time to live is the servers' to keep.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundledSandbox {
    pub id: String,
    pub seed: String,
    pub auth: String,
    pub label: Option<String>,
    pub env: Map<String, Value>,
    pub webhook_schedule: String,
    pub rate_limits: Option<RateLimits>,
    pub created_at_ms: i64,
    pub seeded_at_ms: i64,
    pub clock_offset_ms: i64,
    pub clock_frozen_ms: Option<i64>,
    pub chaos: Option<String>,
    pub scenario: Option<String>,
}

/// One of its API keys (`keys.json`, in the Secret): its digest, never the key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundledKey {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    pub key_hash: String,
    pub redacted: String,
    pub permissions: KeyPermissions,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// The sandbox's instance, as its namespace is made of it.
pub async fn instance(
    state: &AppState,
    sandbox: &LiveSandbox,
) -> ServiceResult<sbx_provision::Instance> {
    let gone = || ServiceError::NotFound(format!("sandbox \"{}\" does not exist", sandbox.id));
    let record = state
        .store
        .get_sandbox(&sandbox.id)
        .await?
        .ok_or_else(gone)?;
    let isolation = record.isolation.as_ref().ok_or_else(|| {
        ServiceError::Conflict(format!(
            "sandbox \"{}\" has no namespace of its own",
            sandbox.id
        ))
    })?;
    let revision = state
        .store
        .get_revision(&record.project, record.revision)
        .await?
        .ok_or_else(gone)?;
    let bundle = Bundle {
        format: BUNDLE_FORMAT,
        project: record.project.to_string(),
        spec: revision.spec,
        files: revision.files,
        sandbox: BundledSandbox {
            id: record.id.to_string(),
            seed: record.seed.clone(),
            auth: record.auth.as_str().to_owned(),
            label: record.label.clone(),
            env: record.env.clone(),
            webhook_schedule: record.webhook_schedule.as_str().to_owned(),
            rate_limits: record.rate_limits,
            created_at_ms: record.created_at_ms,
            seeded_at_ms: record.seeded_at_ms,
            clock_offset_ms: record.clock_offset_ms,
            clock_frozen_ms: record.clock_frozen_ms,
            chaos: record.chaos.clone(),
            scenario: record.scenario.clone(),
        },
    };
    let bundle = serde_json::to_string(&bundle).unwrap_or_default();
    if bundle.len() > MAX_BUNDLE_BYTES {
        return Err(ServiceError::TooLarge(format!(
            "sandbox \"{}\"'s project is {} KiB as a bundle; a namespace's ConfigMap holds at most {} KiB",
            record.id,
            bundle.len() / 1024,
            MAX_BUNDLE_BYTES / 1024
        )));
    }
    let now = now_ms();
    let keys: Vec<BundledKey> = state
        .store
        .list_keys(&record.id)
        .await?
        .into_iter()
        .filter(|key| key.usable_at(now))
        .map(|key| BundledKey {
            id: key.id.to_string(),
            kind: key.kind.as_str().to_owned(),
            name: key.name,
            key_hash: key.key_hash,
            redacted: key.redacted,
            permissions: key.permissions,
            created_at_ms: key.created_at_ms,
            expires_at_ms: key.expires_at_ms,
        })
        .collect();
    Ok(sbx_provision::Instance {
        sandbox_id: record.id.to_string(),
        base_domain: state.config.base_domain.clone(),
        scheme: state
            .public_url
            .split_once("://")
            .map_or("http", |(scheme, _)| scheme)
            .to_owned(),
        bundle,
        keys: serde_json::to_string(&keys).unwrap_or_default(),
        admin_token: isolation.instance_token.clone(),
        expires_at: record.expires_at_ms.map(rfc3339),
    })
}

/// Single-sandbox mode: makes the sandbox of the bundle in `dir` (its
/// `sandbox.json` and `keys.json`) on first start; later starts find it
/// in the store, with everything requests changed.
pub async fn load_bundle(state: &AppState, dir: &Path) -> anyhow::Result<()> {
    let read = |name: &str| -> anyhow::Result<String> {
        let path = dir.join(name);
        let size = std::fs::metadata(&path)
            .with_context(|| format!("reading the sandbox bundle {}", path.display()))?
            .len();
        anyhow::ensure!(
            size <= MAX_BUNDLE_BYTES as u64,
            "{} is {size} bytes; a bundle file holds at most {MAX_BUNDLE_BYTES}",
            path.display()
        );
        std::fs::read_to_string(&path)
            .with_context(|| format!("reading the sandbox bundle {}", path.display()))
    };
    let bundle: Bundle = serde_json::from_str(&read(sbx_provision::BUNDLE_FILE)?)
        .context("the sandbox bundle's sandbox.json is not a bundle")?;
    let keys: Vec<BundledKey> = serde_json::from_str(&read(sbx_provision::KEYS_FILE)?)
        .context("the sandbox bundle's keys.json is not a list of keys")?;
    anyhow::ensure!(
        bundle.format == BUNDLE_FORMAT,
        "the sandbox bundle is of format {}; this server reads format {BUNDLE_FORMAT}",
        bundle.format
    );
    let id = crate::runtime::ids::parse_sandbox_id(&bundle.sandbox.id)
        .with_context(|| format!("{:?} is not a sandbox id", bundle.sandbox.id))?;
    if state.registry.get(&id).is_some() {
        tracing::info!(sandbox = %id, "serving the bundle's sandbox, as stored");
        return Ok(());
    }
    let caller = Caller::System;
    let _edit = state.edits.lock().await;
    let kind = match state.store.get_project(&bundle.project).await? {
        None => projects::Publish::NewProject,
        Some(_) => projects::Publish::NewRevision,
    };
    let (project, compiled) = projects::publish(
        state,
        &caller,
        &bundle.project,
        bundle.spec,
        bundle.files,
        kind,
    )
    .await
    .context("the sandbox bundle's project does not compile")?;
    let sandbox = bundle.sandbox;
    let keys: Vec<KeyRecord> = keys
        .into_iter()
        .map(|key| {
            Ok(KeyRecord {
                id: key.id.into(),
                sandbox_id: id.clone(),
                kind: KeyKind::parse(&key.kind)
                    .with_context(|| format!("{:?} is not a kind of key", key.kind))?,
                name: key.name,
                key_hash: key.key_hash,
                redacted: key.redacted,
                permissions: key.permissions,
                created_at_ms: key.created_at_ms,
                last_used_at_ms: None,
                expires_at_ms: key.expires_at_ms,
                revoked_at_ms: None,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let record = SandboxRecord {
        id: id.clone(),
        project: project.name,
        revision: project.latest_revision,
        key_hash: keys.first().map(|k| k.key_hash.clone()).unwrap_or_default(),
        seed: sandbox.seed,
        auth: AuthMode::parse(&sandbox.auth)
            .with_context(|| format!("{:?} is not an auth mode", sandbox.auth))?,
        label: sandbox.label,
        created_at_ms: sandbox.created_at_ms,
        expires_at_ms: None,
        pinned: true,
        env: sandbox.env,
        chaos: sandbox.chaos,
        scenario: sandbox.scenario,
        clock_offset_ms: sandbox.clock_offset_ms,
        clock_frozen_ms: sandbox.clock_frozen_ms,
        seeded_at_ms: sandbox.seeded_at_ms,
        webhook_schedule: ScheduleName::parse(&sandbox.webhook_schedule)
            .with_context(|| format!("{:?} is not a webhook schedule", sandbox.webhook_schedule))?,
        owner: None,
        last_active_at_ms: None,
        rate_limits: sandbox.rate_limits,
        isolation: None,
    };
    state.store.create_sandbox(&record, &keys).await?;
    let live = keys.iter().filter_map(LiveKey::of).collect();
    state
        .registry
        .insert(record, compiled, Vec::new(), live, None);
    tracing::info!(sandbox = %id, "serving the bundle's sandbox");
    Ok(())
}
