//! The OAuth test provider's rows.

use async_trait::async_trait;
use sqlx::Row;

use super::{
    DbRow,
    store::{SqlStore, column, json, sealed},
};

use crate::{
    StoreError,
    oauth::{
        ClientRecord, OAuthStore, RefreshTokenRecord, SigningKeyRecord, Spent, TestUserRecord,
    },
};

fn signing_key(store: &SqlStore, row: &DbRow) -> Result<SigningKeyRecord, StoreError> {
    const T: &str = "oauth_keys";
    Ok(SigningKeyRecord {
        sandbox_id: column(row, T, "sandbox_id")?,
        kid: column(row, T, "kid")?,
        private_key: sealed(store.sealer(), row, T, "private_key")?.unwrap_or_default(),
        public_jwk: column(row, T, "public_jwk")?,
        created_at_ms: column(row, T, "created_at_ms")?,
        retired_at_ms: column(row, T, "retired_at_ms")?,
    })
}

fn client(row: &DbRow) -> Result<ClientRecord, StoreError> {
    const T: &str = "oauth_clients";
    Ok(ClientRecord {
        id: column(row, T, "id")?,
        sandbox_id: column(row, T, "sandbox_id")?,
        name: column(row, T, "name")?,
        secret_hash: column(row, T, "secret_hash")?,
        redirect_uris: json(row, T, "redirect_uris")?,
        scopes: json(row, T, "scopes")?,
        created_at_ms: column(row, T, "created_at_ms")?,
    })
}

fn test_user(row: &DbRow) -> Result<TestUserRecord, StoreError> {
    const T: &str = "oauth_users";
    Ok(TestUserRecord {
        sandbox_id: column(row, T, "sandbox_id")?,
        sub: column(row, T, "sub")?,
        claims: json(row, T, "claims")?,
        created_at_ms: column(row, T, "created_at_ms")?,
    })
}

fn refresh_token(row: &DbRow) -> Result<RefreshTokenRecord, StoreError> {
    const T: &str = "oauth_refresh_tokens";
    Ok(RefreshTokenRecord {
        token_hash: column(row, T, "token_hash")?,
        sandbox_id: column(row, T, "sandbox_id")?,
        client_id: column(row, T, "client_id")?,
        sub: column(row, T, "sub")?,
        scope: column(row, T, "scope")?,
        family: column(row, T, "family")?,
        expires_at_ms: column(row, T, "expires_at_ms")?,
        used_at_ms: column(row, T, "used_at_ms")?,
    })
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

impl SqlStore {
    /// See [`crate::Store::reseal_secrets`].
    pub(super) async fn reseal_all(&self) -> Result<usize, StoreError> {
        let mut resealed = 0;
        let mut tx = self.pool().begin().await?;
        for (table, key_columns, columns) in [
            (
                "webhook_endpoints",
                "id",
                &["secret", "previous_secret"][..],
            ),
            ("sandboxes", "id", &["isolation_token"][..]),
            (
                "oauth_keys",
                "sandbox_id || ' ' || kid",
                &["private_key"][..],
            ),
        ] {
            for name in columns {
                let rows = sqlx::query(&format!(
                    "SELECT {key_columns} AS row_id, {name} AS value FROM {table} WHERE {name} IS NOT NULL"
                ))
                .fetch_all(&mut *tx)
                .await?;
                for row in rows {
                    let (id, value): (String, String) = (row.get(0), row.get(1));
                    let again = self
                        .sealer()
                        .reseal(&value)
                        .map_err(|e| StoreError::Corrupt {
                            table,
                            key: id.clone(),
                            column: name,
                            cause: e.to_string(),
                        })?;
                    if let Some(again) = again {
                        sqlx::query(&format!(
                            "UPDATE {table} SET {name} = $1 WHERE {key_columns} = $2"
                        ))
                        .bind(again)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                        resealed += 1;
                    }
                }
            }
        }
        tx.commit().await?;
        Ok(resealed)
    }
}

#[async_trait]
impl OAuthStore for SqlStore {
    async fn create_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_keys (sandbox_id, kid, private_key, public_jwk, created_at_ms, retired_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.sandbox_id)
        .bind(&key.kid)
        .bind(self.sealer().seal(&key.private_key))
        .bind(&key.public_jwk)
        .bind(key.created_at_ms)
        .bind(key.retired_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn retire_signing_keys(
        &self,
        sandbox_id: &str,
        keep: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE oauth_keys SET retired_at_ms = $1 WHERE sandbox_id = $2 AND kid <> $3 AND retired_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(sandbox_id)
        .bind(keep)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn signing_keys(&self, sandbox_id: &str) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM oauth_keys WHERE sandbox_id = $1 ORDER BY created_at_ms, kid",
        )
        .bind(sandbox_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| signing_key(self, row)).collect()
    }

    async fn create_client(&self, c: &ClientRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_clients (id, sandbox_id, name, secret_hash, redirect_uris, scopes, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(&c.sandbox_id)
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(to_json(&c.redirect_uris))
        .bind(to_json(&c.scopes))
        .bind(c.created_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn list_clients(&self, sandbox_id: &str) -> Result<Vec<ClientRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM oauth_clients WHERE sandbox_id = $1 ORDER BY created_at_ms, id",
        )
        .bind(sandbox_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(client).collect()
    }

    async fn get_client(
        &self,
        sandbox_id: &str,
        id: &str,
    ) -> Result<Option<ClientRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM oauth_clients WHERE sandbox_id = $1 AND id = $2")
            .bind(sandbox_id)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(client).transpose()
    }

    async fn delete_client(&self, sandbox_id: &str, id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM oauth_clients WHERE sandbox_id = $1 AND id = $2")
            .bind(sandbox_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn put_test_user(&self, u: &TestUserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_users (sandbox_id, sub, claims, created_at_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sandbox_id, sub) DO UPDATE SET claims = excluded.claims",
        )
        .bind(&u.sandbox_id)
        .bind(&u.sub)
        .bind(to_json(&u.claims))
        .bind(u.created_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn list_test_users(&self, sandbox_id: &str) -> Result<Vec<TestUserRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM oauth_users WHERE sandbox_id = $1 ORDER BY created_at_ms, sub",
        )
        .bind(sandbox_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(test_user).collect()
    }

    async fn delete_test_user(&self, sandbox_id: &str, sub: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM oauth_users WHERE sandbox_id = $1 AND sub = $2")
            .bind(sandbox_id)
            .bind(sub)
            .execute(self.pool())
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn create_refresh_token(&self, t: &RefreshTokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oauth_refresh_tokens (token_hash, sandbox_id, client_id, sub, scope, family, expires_at_ms, used_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.token_hash)
        .bind(&t.sandbox_id)
        .bind(&t.client_id)
        .bind(&t.sub)
        .bind(&t.scope)
        .bind(&t.family)
        .bind(t.expires_at_ms)
        .bind(t.used_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn spend_refresh_token(
        &self,
        sandbox_id: &str,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Spent, StoreError> {
        // Two statements, each atomic, each writing before it reads: a
        // transaction that read first could not take SQLite's write lock
        // once another writer had committed (SQLITE_BUSY, at once).
        let spent = sqlx::query(
            "UPDATE oauth_refresh_tokens SET used_at_ms = $1
             WHERE sandbox_id = $2 AND token_hash = $3 AND used_at_ms IS NULL RETURNING *",
        )
        .bind(now_ms)
        .bind(sandbox_id)
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        if let Some(row) = spent {
            return Ok(Spent::Fresh(refresh_token(&row)?));
        }
        // Unknown, or used before: a replay revokes its whole grant.
        let revoked = sqlx::query(
            "DELETE FROM oauth_refresh_tokens WHERE family IN
               (SELECT family FROM oauth_refresh_tokens WHERE sandbox_id = $1 AND token_hash = $2)",
        )
        .bind(sandbox_id)
        .bind(token_hash)
        .execute(self.pool())
        .await?;
        Ok(if revoked.rows_affected() > 0 {
            Spent::Replayed
        } else {
            Spent::Unknown
        })
    }

    async fn revoke_refresh_family(&self, family: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_refresh_tokens WHERE family = $1")
            .bind(family)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn revoke_refresh_token(
        &self,
        sandbox_id: &str,
        client_id: &str,
        token_hash: &str,
    ) -> Result<bool, StoreError> {
        let deleted = sqlx::query(
            "DELETE FROM oauth_refresh_tokens WHERE family IN
               (SELECT family FROM oauth_refresh_tokens WHERE sandbox_id = $1 AND client_id = $2 AND token_hash = $3)",
        )
        .bind(sandbox_id)
        .bind(client_id)
        .bind(token_hash)
        .execute(self.pool())
        .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn revoke_client_tokens(
        &self,
        sandbox_id: &str,
        client_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_refresh_tokens WHERE sandbox_id = $1 AND client_id = $2")
            .bind(sandbox_id)
            .bind(client_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
