//! A sandbox's API keys. Each is stored as the SHA-256 digest of the key
//! (long and random, so a fast hash suffices) with a redacted form to tell
//! it apart in lists.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreError, ids::KeyId};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// `sk_test_`: every operation.
    Secret,
    /// `rk_test_`: read-only, or only the operations listed.
    Restricted,
    /// `pk_test_`: for browsers; only operations the spec marks publishable.
    Publishable,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Restricted => "restricted",
            Self::Publishable => "publishable",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "secret" => Some(Self::Secret),
            "restricted" => Some(Self::Restricted),
            "publishable" => Some(Self::Publishable),
            _ => None,
        }
    }
}

/// A restricted key's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyPermissions {
    /// Only operations that read (GET, HEAD, OPTIONS).
    pub read_only: bool,
    /// Only these operations (by `operationId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operations: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub sandbox_id: crate::SandboxId,
    pub kind: KeyKind,
    pub name: Option<String>,
    /// SHA-256 of the key, hex.
    pub key_hash: String,
    /// Its prefix and last four characters, e.g. `sk_test_…a1b2`.
    pub redacted: String,
    pub permissions: KeyPermissions,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    /// A rolled key works until then.
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
}

impl KeyRecord {
    /// Whether it authenticates at `now_ms`.
    pub fn usable_at(&self, now_ms: i64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|at| now_ms < at)
    }
}

#[async_trait]
pub trait SandboxKeys: Send + Sync {
    async fn create_key(&self, key: &KeyRecord) -> Result<(), StoreError>;
    /// A sandbox's keys, oldest first, revoked ones included.
    async fn list_keys(&self, sandbox_id: &str) -> Result<Vec<KeyRecord>, StoreError>;
    /// Every key not revoked, of every sandbox: what start-up loads.
    async fn live_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Sets when a key stops working (a roll); false if the sandbox has
    /// no such key still in use.
    async fn expire_key(
        &self,
        sandbox_id: &str,
        key_id: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Revokes a key; false if the sandbox has no such key in use.
    async fn revoke_key(
        &self,
        sandbox_id: &str,
        key_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Notes when keys were last used, by their digests (hex).
    async fn touch_keys(&self, used: &[(String, i64)]) -> Result<(), StoreError>;
}
