//! Sandbox API keys.

use super::{
    Db, DbRow,
    store::{SqlStore, column, json, row_key, touch_rows},
};
use async_trait::async_trait;

use crate::{KeyKind, KeyRecord, SandboxKeys, StoreError};

fn key(row: &DbRow) -> Result<KeyRecord, StoreError> {
    const T: &str = "sandbox_keys";
    let kind: String = column(row, T, "kind")?;
    Ok(KeyRecord {
        id: column(row, T, "id")?,
        sandbox_id: column(row, T, "sandbox_id")?,
        kind: KeyKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
            table: T,
            key: row_key(row),
            column: "kind",
            cause: format!("{kind:?} is not a key kind"),
        })?,
        name: column(row, T, "name")?,
        key_hash: column(row, T, "key_hash")?,
        redacted: column(row, T, "redacted")?,
        permissions: json(row, T, "permissions")?,
        created_at_ms: column(row, T, "created_at_ms")?,
        last_used_at_ms: column(row, T, "last_used_at_ms")?,
        expires_at_ms: column(row, T, "expires_at_ms")?,
        revoked_at_ms: column(row, T, "revoked_at_ms")?,
    })
}

/// The insert of a key (also run inside a sandbox's creation).
pub(crate) fn insert_key(
    k: &KeyRecord,
) -> Result<sqlx::query::Query<'_, Db, <Db as sqlx::Database>::Arguments<'_>>, StoreError> {
    let permissions = serde_json::to_string(&k.permissions).map_err(|e| StoreError::Corrupt {
        table: "sandbox_keys",
        key: k.id.to_string(),
        column: "permissions",
        cause: e.to_string(),
    })?;
    Ok(sqlx::query(
        "INSERT INTO sandbox_keys (id, sandbox_id, kind, name, key_hash, redacted, permissions, created_at_ms, last_used_at_ms, expires_at_ms, revoked_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&k.id)
    .bind(&k.sandbox_id)
    .bind(k.kind.as_str())
    .bind(&k.name)
    .bind(&k.key_hash)
    .bind(&k.redacted)
    .bind(permissions)
    .bind(k.created_at_ms)
    .bind(k.last_used_at_ms)
    .bind(k.expires_at_ms)
    .bind(k.revoked_at_ms))
}

#[async_trait]
impl SandboxKeys for SqlStore {
    async fn create_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        insert_key(k)?.execute(self.pool()).await?;
        Ok(())
    }

    async fn list_keys(&self, sandbox_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM sandbox_keys WHERE sandbox_id = $1 ORDER BY created_at_ms, rowid",
        )
        .bind(sandbox_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(key).collect()
    }

    async fn live_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM sandbox_keys WHERE revoked_at_ms IS NULL ORDER BY created_at_ms, rowid",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(key).collect()
    }

    async fn expire_key(
        &self,
        sandbox_id: &str,
        key_id: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE sandbox_keys SET expires_at_ms = CASE WHEN expires_at_ms < $1 THEN expires_at_ms ELSE $2 END
             WHERE id = $3 AND sandbox_id = $4 AND revoked_at_ms IS NULL",
        )
        .bind(at_ms)
        .bind(at_ms)
        .bind(key_id)
        .bind(sandbox_id)
        .execute(self.pool())
        .await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn revoke_key(
        &self,
        sandbox_id: &str,
        key_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE sandbox_keys SET revoked_at_ms = $1
             WHERE id = $2 AND sandbox_id = $3 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(key_id)
        .bind(sandbox_id)
        .execute(self.pool())
        .await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn touch_keys(&self, used: &[(String, i64)]) -> Result<(), StoreError> {
        let rows: Vec<(&str, i64)> = used.iter().map(|(hash, at)| (hash.as_str(), *at)).collect();
        touch_rows(
            self.pool(),
            "UPDATE sandbox_keys SET last_used_at_ms = CASE WHEN last_used_at_ms > $1 THEN last_used_at_ms ELSE $1 END WHERE key_hash = $2",
            &rows,
        )
        .await
    }
}
