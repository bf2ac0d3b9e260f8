//! The embedded SQLite store: one file in the data directory, WAL mode.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};

use crate::StoreError;

type Db = sqlx::Sqlite;
type DbRow = SqliteRow;

#[path = "sql/accounts.rs"]
mod accounts;
#[path = "sql/counts.rs"]
mod counts;
#[path = "sql/keys.rs"]
mod keys;
#[path = "sql/oauth.rs"]
mod oauth;
#[path = "sql/store.rs"]
mod store;
#[path = "sql/timeline.rs"]
mod timeline;

pub use store::SqlStore as SqliteStore;

/// One server per SQLite file: the database is always this server's.
mod hold {
    use sqlx::SqlitePool;

    use crate::{DatabaseHold, Holder, StoreError};

    struct Sole;

    #[async_trait::async_trait]
    impl DatabaseHold for Sole {
        async fn renew(&mut self) -> Result<(), StoreError> {
            Ok(())
        }

        fn lease(&self) -> Option<std::time::Duration> {
            None
        }

        fn epoch(&self) -> i64 {
            1
        }

        async fn release(self: Box<Self>) {}
    }

    /// The file is this server's: whoever served it before is gone (a
    /// server killed mid-delivery, restarted), so the deliveries it had
    /// claimed are free at once rather than when their claims run out.
    pub(super) async fn try_hold(
        pool: &SqlitePool,
        holder: &Holder,
    ) -> Result<Option<Box<dyn DatabaseHold>>, StoreError> {
        sqlx::query(
            "UPDATE deliveries SET claimed_by = NULL, claimed_until_ms = NULL
             WHERE claimed_by IS NOT NULL AND claimed_by <> ?",
        )
        .bind(&holder.replica)
        .execute(pool)
        .await?;
        Ok(Some(Box::new(Sole)))
    }

    pub(super) async fn holder(_: &SqlitePool) -> Result<Option<Holder>, StoreError> {
        Ok(None)
    }

    pub(super) async fn watch_changes(
        _: &SqlitePool,
    ) -> Result<Option<Box<dyn crate::ChangeWatch>>, StoreError> {
        Ok(None)
    }

    /// One server per file: no members, and every sandbox is the holder's.
    pub(super) async fn join(
        _: &SqlitePool,
        _: &crate::Member,
    ) -> Result<Option<Box<dyn crate::Membership>>, StoreError> {
        Ok(None)
    }

    pub(super) async fn members(_: &SqlitePool) -> Result<Vec<crate::Member>, StoreError> {
        Ok(Vec::new())
    }

    pub(super) async fn served_by(
        pool: &SqlitePool,
        sandbox_id: &str,
    ) -> Result<Option<crate::ServedBy>, StoreError> {
        let found = sqlx::query("SELECT 1 FROM sandboxes WHERE id = ?")
            .bind(sandbox_id)
            .fetch_optional(pool)
            .await?;
        Ok(found.map(|_| crate::ServedBy {
            member: None,
            epoch: 0,
        }))
    }

    pub(super) async fn served_by_members(
        _: &SqlitePool,
    ) -> Result<Vec<(String, crate::ServedBy)>, StoreError> {
        Ok(Vec::new())
    }

    pub(super) async fn hand_over(
        pool: &SqlitePool,
        sandbox_id: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        match from.or(to) {
            None => Ok(served_by(pool, sandbox_id)
                .await?
                .map(|served| served.epoch)),
            Some(member) => Err(StoreError::Unstorable(format!(
                "sandbox {sandbox_id} cannot move to or from {member}: an SQLite file has one server"
            ))),
        }
    }

    pub(super) async fn sandboxes_per_server(
        pool: &SqlitePool,
    ) -> Result<Vec<(Option<String>, u64)>, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sandboxes WHERE isolation IS NULL")
                .fetch_one(pool)
                .await?;
        Ok(vec![(None, u64::try_from(count).unwrap_or(0))])
    }

    pub(super) async fn sweep_members(_: &SqlitePool) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    pub(super) async fn watch_releases(
        _: &SqlitePool,
    ) -> Result<Option<Box<dyn crate::ReleaseWatch>>, StoreError> {
        Ok(None)
    }
}

/// What SQLite says its own way.
mod dialect {
    use sqlx::QueryBuilder;

    use super::{Db, store::LOG_INSERT};
    use crate::LogRecord;

    /// Request-log entries per statement (19 values each; SQLite binds at
    /// most 32,766).
    const LOGS_PER_STATEMENT: usize = 100;

    /// Inserts request-log entries, as multi-row `VALUES` statements.
    pub async fn insert_logs(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        logs: &[LogRecord],
    ) -> Result<(), sqlx::Error> {
        for chunk in logs.chunks(LOGS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Db>::new(LOG_INSERT);
            insert.push_values(chunk, |mut values, log| {
                values
                    .push_bind(&log.sandbox_id)
                    .push_bind(&log.request_id)
                    .push_bind(log.at_ms)
                    .push_bind(&log.method)
                    .push_bind(&log.path)
                    .push_bind(&log.query)
                    .push_bind(&log.operation)
                    .push_bind(log.status)
                    .push_bind(log.latency_us)
                    .push_bind(&log.scenario)
                    .push_bind(&log.chaos)
                    .push_bind(i64::from(log.replayed))
                    .push_bind(log.request_headers.to_string())
                    .push_bind(&log.request_body)
                    .push_bind(log.response_headers.to_string())
                    .push_bind(&log.response_body)
                    .push_bind(log.trace.to_string())
                    .push_bind(log.sandbox_at_ms)
                    .push_bind(&log.trace_id);
            });
            insert.build().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Contains, ignoring ASCII case (SQLite's `LIKE` does).
    pub const LIKE: &str = "LIKE ";
    /// Row locks for claims: none (SQLite runs one writer at a time).
    pub const SKIP_LOCKED: &str = "";
    /// A JSON object of key, value arguments.
    pub const JSON_OBJECT: &str = "json_object";
    /// An endpoint's `faults.delay_ms`, or NULL.
    pub const FAULT_DELAY: &str = "json_extract(ep.faults, '$.delay_ms')";
    /// Whether endpoint `ep` listens to event `ev`'s type.
    pub const LISTENS: &str =
        "EXISTS (SELECT 1 FROM json_each(ep.events) WHERE value IN (ev.event_type, '*'))";
}

impl SqliteStore {
    /// Opens (creating if needed) `sbx.db` in `data_dir` and migrates it.
    ///
    /// The folder is made readable by its owner only (0700), and so are
    /// the database and its WAL and shared-memory files (0600): they hold
    /// every sandbox's data and request log.
    pub async fn open_dir(data_dir: &Path) -> Result<Self, StoreError> {
        let database = data_dir.join("sbx.db");
        make_private(data_dir, &database).map_err(|source| StoreError::Io {
            context: format!("securing the data dir {}", data_dir.display()),
            source,
        })?;
        let options = SqliteConnectOptions::new().filename(database);
        Self::open(options).await
    }

    /// Opens a `sqlite:` URL.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        Self::open(SqliteConnectOptions::from_str(url)?).await
    }

    async fn open(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes, and fast.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self::over(pool))
    }
}

/// Creates `dir` (0700) and `database` (0600) when missing, and takes
/// group and other access away from existing ones. SQLite creates the WAL
/// and shared-memory files with the database file's mode.
fn make_private(dir: &Path, database: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(database)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = database.as_os_str().to_owned();
            name.push(suffix);
            match std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}
