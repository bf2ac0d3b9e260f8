//! Requests per day, by account and by sandbox.

use async_trait::async_trait;

use super::{
    Db, DbRow,
    store::{SqlStore, column},
};
use crate::{AccountId, DayCounts, RequestCounts, SandboxId, StoreError};

/// A row's key (`key`) and its requests.
fn total<K>(row: &DbRow, table: &'static str, key: &'static str) -> Result<(K, u64), StoreError>
where
    K: for<'r> sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    let requests: i64 = column(row, table, "requests")?;
    Ok((
        column(row, table, key)?,
        u64::try_from(requests).unwrap_or(0),
    ))
}

impl SqlStore {
    /// The totals of `day` in `table`, keyed by `key`: of every row, or
    /// of `only`.
    async fn totals<K>(
        &self,
        table: &'static str,
        key: &'static str,
        day: i64,
        only: Option<&str>,
    ) -> Result<Vec<(K, u64)>, StoreError>
    where
        K: for<'r> sqlx::Decode<'r, Db> + sqlx::Type<Db>,
    {
        let rows = sqlx::query(&format!(
            "SELECT {key}, requests FROM {table}
             WHERE day = $1 AND (CAST($2 AS TEXT) IS NULL OR {key} = $2)"
        ))
        .bind(day)
        .bind(only)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| total(row, table, key)).collect()
    }
}

fn stored(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl RequestCounts for SqlStore {
    async fn save_requests(
        &self,
        day: i64,
        counted: &DayCounts,
    ) -> Result<Vec<(AccountId, u64)>, StoreError> {
        let mut tx = self.pool().begin().await?;
        for (account, requests) in &counted.accounts {
            sqlx::query(
                "INSERT INTO account_requests (day, account_id, requests) VALUES ($1, $2, $3)
                 ON CONFLICT (day, account_id) DO UPDATE SET requests = account_requests.requests + excluded.requests",
            )
            .bind(day)
            .bind(account)
            .bind(stored(*requests))
            .execute(&mut *tx)
            .await?;
        }
        for (sandbox, requests) in &counted.sandboxes {
            sqlx::query(
                "INSERT INTO sandbox_requests (day, sandbox_id, requests) VALUES ($1, $2, $3)
                 ON CONFLICT (day, sandbox_id) DO UPDATE SET requests = CASE
                     WHEN sandbox_requests.requests > excluded.requests THEN sandbox_requests.requests
                     ELSE excluded.requests END",
            )
            .bind(day)
            .bind(sandbox)
            .bind(stored(*requests))
            .execute(&mut *tx)
            .await?;
        }
        let accounts =
            sqlx::query("SELECT account_id, requests FROM account_requests WHERE day = $1")
                .bind(day)
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        accounts
            .iter()
            .map(|row| total(row, "account_requests", "account_id"))
            .collect()
    }

    async fn account_requests(
        &self,
        day: i64,
        account: Option<&str>,
    ) -> Result<Vec<(AccountId, u64)>, StoreError> {
        self.totals("account_requests", "account_id", day, account)
            .await
    }

    async fn sandbox_requests(
        &self,
        day: i64,
        sandbox_id: Option<&str>,
    ) -> Result<Vec<(SandboxId, u64)>, StoreError> {
        self.totals("sandbox_requests", "sandbox_id", day, sandbox_id)
            .await
    }

    async fn prune_requests(&self, before_day: i64) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let mut pruned = 0;
        for table in ["account_requests", "sandbox_requests"] {
            pruned += sqlx::query(&format!("DELETE FROM {table} WHERE day < $1"))
                .bind(before_day)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(pruned)
    }
}
