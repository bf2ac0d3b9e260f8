//! A sandbox's API keys: secret (`sk_test_`), restricted (`rk_test_`,
//! read-only or some operations) and publishable (`pk_test_`, for
//! browsers). Made, listed by their redacted form, rolled (the old key
//! works until a grace period ends) and revoked; stored as digests only.

use std::sync::Arc;

use sbx_store::{KeyId, KeyKind, KeyPermissions, KeyRecord, SandboxId};

use super::{ServiceError, ServiceResult, caller::Caller, sandboxes::live};
use crate::{
    app::{AppState, now_ms},
    runtime::{
        ids::{KeyHash, hash_secret, random_token},
        keys::LiveKey,
        registry::LiveSandbox,
    },
};

/// Keys in use per sandbox, at most.
pub const MAX_KEYS: usize = 20;
const MAX_NAME_CHARS: usize = 100;
/// How long a rolled key keeps working by default, and at most, in seconds.
pub const DEFAULT_ROLL_GRACE_SECONDS: u64 = 24 * 3600;
pub const MAX_ROLL_GRACE_SECONDS: u64 = 7 * 24 * 3600;

fn prefix(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Secret => sbx_engine::API_KEY_PREFIXES[0],
        KeyKind::Restricted => sbx_engine::API_KEY_PREFIXES[1],
        KeyKind::Publishable => sbx_engine::API_KEY_PREFIXES[2],
    }
}

/// A new key of `kind` for `sandbox`: its record and the secret (shown once).
pub fn mint(
    sandbox: &SandboxId,
    kind: KeyKind,
    name: Option<String>,
    permissions: KeyPermissions,
) -> (KeyRecord, String) {
    let secret = format!("{}{}", prefix(kind), random_token(32));
    let record = KeyRecord {
        id: KeyId::from(format!("key_{}", random_token(16))),
        sandbox_id: sandbox.clone(),
        kind,
        name,
        key_hash: hash_secret(&secret),
        redacted: format!("{}…{}", prefix(kind), &secret[secret.len() - 4..]),
        permissions,
        created_at_ms: now_ms(),
        last_used_at_ms: None,
        expires_at_ms: None,
        revoked_at_ms: None,
    };
    (record, secret)
}

/// What a new key is.
pub struct NewKey {
    pub kind: KeyKind,
    pub name: Option<String>,
    pub permissions: KeyPermissions,
}

fn check(sandbox: &LiveSandbox, new: &NewKey) -> ServiceResult<()> {
    if new
        .name
        .as_ref()
        .is_some_and(|n| n.is_empty() || n.chars().count() > MAX_NAME_CHARS)
    {
        return Err(ServiceError::invalid(
            "/name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters"),
        ));
    }
    let permissions = &new.permissions;
    let restricts = permissions.read_only || permissions.operations.is_some();
    match new.kind {
        KeyKind::Restricted if !restricts => Err(ServiceError::invalid(
            "/permissions",
            "a restricted key needs permissions: {\"read_only\": true}, or {\"operations\": [operationId, …]}",
        )),
        KeyKind::Secret | KeyKind::Publishable if restricts => Err(ServiceError::invalid(
            "/permissions",
            "only a restricted key takes permissions",
        )),
        _ => {
            let compiled = sandbox.serving().compiled;
            let operations = &compiled.model.operations;
            let listed = permissions.operations.iter().flatten();
            if let Some(unknown) = listed
                .clone()
                .find(|id| !operations.iter().any(|o| o.id == **id))
            {
                return Err(ServiceError::invalid(
                    "/permissions/operations",
                    format!("the sandbox's API has no operation {unknown:?}"),
                ));
            }
            if permissions.operations.as_ref().is_some_and(Vec::is_empty) {
                return Err(ServiceError::invalid(
                    "/permissions/operations",
                    "name at least one operation",
                ));
            }
            Ok(())
        }
    }
}

/// The sandbox's keys as stored, oldest first (revoked ones included).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ServiceResult<(Arc<LiveSandbox>, Vec<KeyRecord>)> {
    let sandbox = live(state, caller, id)?;
    let mut records = state.store.list_keys(id).await?;
    // Uses not yet written are known here.
    let live = sandbox.keys();
    for record in &mut records {
        let hash = KeyHash::from_hex(&record.key_hash);
        if let Some(key) = live.iter().find(|k| k.hash == hash) {
            record.last_used_at_ms = record.last_used_at_ms.max(key.used_at_ms());
        }
    }
    Ok((sandbox, records))
}

/// Makes a key; the record and the secret (shown once).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    id: &str,
    new: NewKey,
) -> ServiceResult<(KeyRecord, String)> {
    let sandbox = live(state, caller, id)?;
    check(&sandbox, &new)?;
    let in_use = sandbox.keys().len();
    if in_use >= MAX_KEYS {
        return Err(ServiceError::Conflict(format!(
            "the sandbox has {in_use} keys in use, the most allowed; revoke one first"
        )));
    }
    let (record, secret) = mint(&sandbox.id, new.kind, new.name, new.permissions);
    state.store.create_key(&record).await?;
    reload(state, &sandbox).await?;
    Ok((record, secret))
}

/// Replaces a key with a new one of the same kind and permissions; the old
/// one keeps working for `grace_seconds` (0: stops now).
pub async fn roll(
    state: &AppState,
    caller: &Caller,
    id: &str,
    key_id: &str,
    grace_seconds: Option<u64>,
) -> ServiceResult<(KeyRecord, String, i64)> {
    let grace = grace_seconds.unwrap_or(DEFAULT_ROLL_GRACE_SECONDS);
    if grace > MAX_ROLL_GRACE_SECONDS {
        return Err(ServiceError::invalid(
            "/expires_in_seconds",
            format!("the old key may keep working at most {MAX_ROLL_GRACE_SECONDS} seconds"),
        ));
    }
    let (sandbox, records) = list(state, caller, id).await?;
    let now = now_ms();
    let old = records
        .into_iter()
        .find(|k| k.id == key_id && k.usable_at(now))
        .ok_or_else(|| no_key(id, key_id))?;
    let (record, secret) = mint(&sandbox.id, old.kind, old.name, old.permissions);
    state.store.create_key(&record).await?;
    let until = now.saturating_add(
        i64::try_from(grace)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000),
    );
    state.store.expire_key(id, key_id, until).await?;
    reload(state, &sandbox).await?;
    Ok((record, secret, until))
}

/// Revokes a key: it stops working at once.
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    id: &str,
    key_id: &str,
) -> ServiceResult<()> {
    let sandbox = live(state, caller, id)?;
    if !state.store.revoke_key(id, key_id, now_ms()).await? {
        return Err(no_key(id, key_id));
    }
    reload(state, &sandbox).await
}

fn no_key(id: &str, key_id: &str) -> ServiceError {
    ServiceError::NotFound(format!("sandbox \"{id}\" has no key \"{key_id}\" in use"))
}

/// The sandbox's keys in memory, as stored; uses noted here are kept.
async fn reload(state: &AppState, sandbox: &Arc<LiveSandbox>) -> ServiceResult<()> {
    let current = sandbox.keys();
    let keys = state
        .store
        .list_keys(&sandbox.id)
        .await?
        .iter()
        .filter_map(LiveKey::of)
        .map(|key| match current.iter().find(|k| k.hash == key.hash) {
            Some(earlier) => key.with_use_of(earlier),
            None => key,
        })
        .collect();
    state.registry.set_keys(sandbox, keys);
    Ok(())
}

/// Key uses since `since_ms` (the last save), by digest, for the store.
pub fn uses_since(state: &AppState, since_ms: i64) -> Vec<(String, i64)> {
    let mut used = Vec::new();
    for sandbox in state.registry.all() {
        for key in sandbox.keys().iter() {
            if let Some(at) = key.used_at_ms().filter(|at| *at >= since_ms) {
                used.push((key.hash.to_hex(), at));
            }
        }
    }
    used
}
