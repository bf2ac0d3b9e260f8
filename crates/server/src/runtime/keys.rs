//! A sandbox's API keys as the data plane checks them on every request:
//! digests in memory, each with what it may call and when it was last used
//! (written to the store now and then, never on the request path).

use std::sync::atomic::{AtomicI64, Ordering};

use sbx_engine::KeyVerdict;
use sbx_spec::Operation;
use sbx_store::{KeyKind, KeyPermissions, KeyRecord};

use crate::runtime::ids::KeyHash;

/// Uses closer together than this are noted once.
const USE_GRANULARITY_MS: i64 = 1_000;

/// Kept small: every sandbox holds at least one.
#[derive(Debug)]
pub struct LiveKey {
    pub hash: KeyHash,
    pub kind: KeyKind,
    /// A restricted key's limits.
    permissions: Option<Box<KeyPermissions>>,
    /// A rolled key works until then (`i64::MAX`: no end).
    expires_at_ms: i64,
    /// When it was last used (0: not since start).
    used_at_ms: AtomicI64,
}

impl LiveKey {
    /// The key of a stored record; `None` for a revoked one.
    pub fn of(record: &KeyRecord) -> Option<Self> {
        record.revoked_at_ms.is_none().then(|| Self {
            hash: KeyHash::from_hex(&record.key_hash),
            kind: record.kind,
            permissions: (record.kind == KeyKind::Restricted)
                .then(|| Box::new(record.permissions.clone())),
            expires_at_ms: record.expires_at_ms.unwrap_or(i64::MAX),
            used_at_ms: AtomicI64::new(record.last_used_at_ms.unwrap_or(0)),
        })
    }

    /// The same key carrying `earlier`'s last use (a reload keeps it).
    pub fn with_use_of(self, earlier: &LiveKey) -> Self {
        self.used_at_ms.fetch_max(
            earlier.used_at_ms.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self
    }

    fn usable_at(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms
    }

    /// When it was last used, as far as this process knows.
    pub fn used_at_ms(&self) -> Option<i64> {
        Some(self.used_at_ms.load(Ordering::Relaxed)).filter(|at| *at > 0)
    }

    /// Whether this key may call `operation`, and why not.
    fn allows(&self, operation: &Operation) -> KeyVerdict {
        let refuse = |why: String| KeyVerdict::NotAllowed(why);
        match self.kind {
            KeyKind::Secret => KeyVerdict::Valid,
            KeyKind::Restricted => {
                let Some(permissions) = &self.permissions else {
                    return KeyVerdict::Valid;
                };
                let reads = matches!(operation.method.as_str(), "GET" | "HEAD" | "OPTIONS");
                if permissions.read_only && !reads {
                    return refuse(format!(
                        "this restricted key may only read; {} is {} {}",
                        operation.id, operation.method, operation.path
                    ));
                }
                match &permissions.operations {
                    Some(allowed) if !allowed.contains(&operation.id) => refuse(format!(
                        "this restricted key may call only {}; not {}",
                        allowed.join(", "),
                        operation.id
                    )),
                    _ => KeyVerdict::Valid,
                }
            }
            KeyKind::Publishable if operation.publishable => KeyVerdict::Valid,
            KeyKind::Publishable => refuse(format!(
                "a publishable key may call only operations the API marks for browsers (x-sandbox-publishable); {} needs a secret key",
                operation.id
            )),
        }
    }
}

/// What the key with digest `hash` is among `keys`, for `operation` at
/// `now_ms`; a use of a key is noted.
pub fn verdict(keys: &[LiveKey], hash: &KeyHash, operation: &Operation, now_ms: i64) -> KeyVerdict {
    let Some(key) = keys
        .iter()
        .find(|key| key.hash == *hash && key.usable_at(now_ms))
    else {
        return KeyVerdict::Unknown;
    };
    if now_ms - key.used_at_ms.load(Ordering::Relaxed) >= USE_GRANULARITY_MS {
        key.used_at_ms.store(now_ms, Ordering::Relaxed);
    }
    key.allows(operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(id: &str, method: &str, publishable: bool) -> Operation {
        Operation {
            id: id.to_owned(),
            method: method.to_owned(),
            path: "/things".to_owned(),
            pointer: String::new(),
            parameters: Vec::new(),
            request_body: None,
            responses: Vec::new(),
            security: Vec::new(),
            publishable,
        }
    }

    fn key(
        secret: &str,
        kind: KeyKind,
        permissions: KeyPermissions,
        expires: Option<i64>,
    ) -> LiveKey {
        LiveKey::of(&KeyRecord {
            id: format!("key_{kind:?}").into(),
            sandbox_id: "sbx-a".into(),
            kind,
            name: None,
            key_hash: KeyHash::of(secret).to_hex(),
            redacted: String::new(),
            permissions,
            created_at_ms: 0,
            last_used_at_ms: None,
            expires_at_ms: expires,
            revoked_at_ms: None,
        })
        .unwrap()
    }

    #[test]
    fn each_kind_of_key_calls_what_it_may() {
        let read_only = KeyPermissions {
            read_only: true,
            operations: None,
        };
        let only_list = KeyPermissions {
            read_only: false,
            operations: Some(vec!["listThings".to_owned()]),
        };
        let keys = [
            key(
                "sk_test_a",
                KeyKind::Secret,
                KeyPermissions::default(),
                Some(100),
            ),
            key("rk_test_r", KeyKind::Restricted, read_only, None),
            key("rk_test_o", KeyKind::Restricted, only_list, None),
            key(
                "pk_test_p",
                KeyKind::Publishable,
                KeyPermissions::default(),
                None,
            ),
        ];
        let list = operation("listThings", "GET", false);
        let create = operation("createThing", "POST", false);
        let token = operation("createToken", "POST", true);
        let at = |key: &str, op: &Operation, now: i64| verdict(&keys, &KeyHash::of(key), op, now);
        assert_eq!(at("sk_test_a", &create, 99), KeyVerdict::Valid);
        assert_eq!(
            at("sk_test_a", &create, 100),
            KeyVerdict::Unknown,
            "expired"
        );
        assert_eq!(at("sk_test_other", &list, 0), KeyVerdict::Unknown);
        assert_eq!(at("rk_test_r", &list, 0), KeyVerdict::Valid);
        assert!(
            matches!(at("rk_test_r", &create, 0), KeyVerdict::NotAllowed(why) if why.contains("only read"))
        );
        assert_eq!(at("rk_test_o", &list, 0), KeyVerdict::Valid);
        assert!(matches!(
            at("rk_test_o", &token, 0),
            KeyVerdict::NotAllowed(_)
        ));
        assert_eq!(at("pk_test_p", &token, 0), KeyVerdict::Valid);
        assert!(
            matches!(at("pk_test_p", &list, 0), KeyVerdict::NotAllowed(why) if why.contains("x-sandbox-publishable"))
        );
        at("pk_test_p", &token, 5_000);
        assert_eq!(keys[3].used_at_ms(), Some(5_000));
    }
}
