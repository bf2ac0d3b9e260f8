//! Accounts, tokens and invitations.

use super::{
    Db, DbRow,
    store::{SqlStore, column, is_unique_violation, row_key, touch_rows},
};
use async_trait::async_trait;

use crate::{
    AccountRecord, Accounts, InvitationRecord, Role, StoreError, TokenKind, TokenRecord,
    ids::TokenId,
};

fn role(row: &DbRow, table: &'static str) -> Result<Role, StoreError> {
    let text: String = column(row, table, "role")?;
    Role::parse(&text).ok_or_else(|| StoreError::Corrupt {
        table,
        key: row_key(row),
        column: "role",
        cause: format!("{text:?} is not a role"),
    })
}

fn account(row: &DbRow) -> Result<AccountRecord, StoreError> {
    const T: &str = "accounts";
    Ok(AccountRecord {
        id: column(row, T, "id")?,
        email: column(row, T, "email")?,
        password_hash: column(row, T, "password_hash")?,
        role: role(row, T)?,
        created_at_ms: column(row, T, "created_at_ms")?,
        disabled_at_ms: column(row, T, "disabled_at_ms")?,
    })
}

fn token(row: &DbRow) -> Result<TokenRecord, StoreError> {
    const T: &str = "access_tokens";
    let kind: String = column(row, T, "kind")?;
    Ok(TokenRecord {
        id: column(row, T, "id")?,
        account_id: column(row, T, "account_id")?,
        kind: TokenKind::parse(&kind).ok_or_else(|| StoreError::Corrupt {
            table: T,
            key: row_key(row),
            column: "kind",
            cause: format!("{kind:?} is not a token kind"),
        })?,
        name: column(row, T, "name")?,
        prefix: column(row, T, "prefix")?,
        token_hash: column(row, T, "token_hash")?,
        created_at_ms: column(row, T, "created_at_ms")?,
        last_used_at_ms: column(row, T, "last_used_at_ms")?,
        expires_at_ms: column(row, T, "expires_at_ms")?,
        revoked_at_ms: column(row, T, "revoked_at_ms")?,
    })
}

fn invitation(row: &DbRow) -> Result<InvitationRecord, StoreError> {
    const T: &str = "invitations";
    Ok(InvitationRecord {
        code_hash: column(row, T, "code_hash")?,
        email: column(row, T, "email")?,
        role: role(row, T)?,
        created_by: column(row, T, "created_by")?,
        created_at_ms: column(row, T, "created_at_ms")?,
        expires_at_ms: column(row, T, "expires_at_ms")?,
        accepted_at_ms: column(row, T, "accepted_at_ms")?,
    })
}

const INSERT_ACCOUNT: &str =
    "INSERT INTO accounts (id, email, password_hash, role, created_at_ms, disabled_at_ms)
     VALUES ($1, $2, $3, $4, $5, $6)";

fn taken(error: sqlx::Error, account: &AccountRecord) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict(format!("an account with email {:?}", account.email))
    } else {
        error.into()
    }
}

fn insert_account(
    a: &AccountRecord,
) -> sqlx::query::Query<'_, Db, <Db as sqlx::Database>::Arguments<'_>> {
    sqlx::query(INSERT_ACCOUNT)
        .bind(&a.id)
        .bind(&a.email)
        .bind(&a.password_hash)
        .bind(a.role.as_str())
        .bind(a.created_at_ms)
        .bind(a.disabled_at_ms)
}

#[async_trait]
impl Accounts for SqlStore {
    async fn create_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        insert_account(a)
            .execute(self.pool())
            .await
            .map_err(|e| taken(e, a))?;
        Ok(())
    }

    async fn create_invited_account(
        &self,
        a: &AccountRecord,
        code_hash: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let accepted = sqlx::query(
            "UPDATE invitations SET accepted_at_ms = $1
             WHERE code_hash = $2 AND email = $3 AND accepted_at_ms IS NULL AND expires_at_ms > $4",
        )
        .bind(a.created_at_ms)
        .bind(code_hash)
        .bind(&a.email)
        .bind(a.created_at_ms)
        .execute(&mut *tx)
        .await?;
        if accepted.rows_affected() == 0 {
            return Ok(false);
        }
        insert_account(a)
            .execute(&mut *tx)
            .await
            .map_err(|e| taken(e, a))?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(account).transpose()
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM accounts WHERE email = $1")
            .bind(email)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(account).transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM accounts ORDER BY created_at_ms, id")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(account).collect()
    }

    async fn update_account(&self, a: &AccountRecord) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE accounts SET password_hash = $1, role = $2, disabled_at_ms = $3 WHERE id = $4",
        )
        .bind(&a.password_hash)
        .bind(a.role.as_str())
        .bind(a.disabled_at_ms)
        .bind(&a.id)
        .execute(self.pool())
        .await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn create_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO access_tokens (id, account_id, kind, name, prefix, token_hash, created_at_ms, last_used_at_ms, expires_at_ms, revoked_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&t.id)
        .bind(&t.account_id)
        .bind(t.kind.as_str())
        .bind(&t.name)
        .bind(&t.prefix)
        .bind(&t.token_hash)
        .bind(t.created_at_ms)
        .bind(t.last_used_at_ms)
        .bind(t.expires_at_ms)
        .bind(t.revoked_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn token_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<(TokenRecord, AccountRecord)>, StoreError> {
        let Some(row) = sqlx::query("SELECT * FROM access_tokens WHERE token_hash = $1")
            .bind(hash)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let token = token(&row)?;
        let Some(owner) = self.get_account(&token.account_id).await? else {
            return Ok(None);
        };
        Ok(Some((token, owner)))
    }

    async fn list_tokens(
        &self,
        account_id: &str,
        kind: TokenKind,
    ) -> Result<Vec<TokenRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM access_tokens WHERE account_id = $1 AND kind = $2
             ORDER BY created_at_ms DESC, id DESC",
        )
        .bind(account_id)
        .bind(kind.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(token).collect()
    }

    async fn revoke_token(
        &self,
        account_id: &str,
        token_id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE access_tokens SET revoked_at_ms = $1
             WHERE id = $2 AND account_id = $3 AND revoked_at_ms IS NULL",
        )
        .bind(now_ms)
        .bind(token_id)
        .bind(account_id)
        .execute(self.pool())
        .await?;
        Ok(revoked.rows_affected() > 0)
    }

    async fn touch_tokens(&self, used: &[(TokenId, i64)]) -> Result<(), StoreError> {
        let rows: Vec<(&str, i64)> = used.iter().map(|(id, at)| (id.as_str(), *at)).collect();
        touch_rows(
            self.pool(),
            "UPDATE access_tokens SET last_used_at_ms = CASE WHEN last_used_at_ms > $1 THEN last_used_at_ms ELSE $1 END WHERE id = $2",
            &rows,
        )
        .await
    }

    async fn prune_tokens(&self, before_ms: i64) -> Result<u64, StoreError> {
        let deleted =
            sqlx::query("DELETE FROM access_tokens WHERE expires_at_ms < $1 OR revoked_at_ms < $1")
                .bind(before_ms)
                .execute(self.pool())
                .await?;
        Ok(deleted.rows_affected())
    }

    async fn create_invitation(&self, i: &InvitationRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO invitations (code_hash, email, role, created_by, created_at_ms, expires_at_ms, accepted_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&i.code_hash)
        .bind(&i.email)
        .bind(i.role.as_str())
        .bind(&i.created_by)
        .bind(i.created_at_ms)
        .bind(i.expires_at_ms)
        .bind(i.accepted_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn open_invitation(
        &self,
        code_hash: &str,
        now_ms: i64,
    ) -> Result<Option<InvitationRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT * FROM invitations
             WHERE code_hash = $1 AND accepted_at_ms IS NULL AND expires_at_ms > $2",
        )
        .bind(code_hash)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(invitation).transpose()
    }
}
