//! The PostgreSQL store: what several replicas share. The same SQL as the
//! SQLite store (`sql/`), over a connection pool, with its own migrations.

use std::{str::FromStr, time::Duration};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};

use crate::StoreError;

type Db = sqlx::Postgres;
type DbRow = PgRow;

#[path = "sql/accounts.rs"]
mod accounts;
#[path = "sql/keys.rs"]
mod keys;
#[path = "sql/oauth.rs"]
mod oauth;
#[path = "sql/store.rs"]
mod store;
#[path = "sql/timeline.rs"]
mod timeline;

pub use store::SqlStore as PgStore;

/// One active server per database: the holder keeps a session-level
/// advisory lock on a connection of its own. PostgreSQL lets it go when
/// that connection ends — a graceful release, or the server's death —
/// and a server standing by takes it.
mod hold {
    use sqlx::{Connection, PgConnection, PgPool, Row};

    use crate::{DatabaseHold, Holder, StoreError};

    /// The advisory lock's key ("sbx" and 1).
    const LOCK: i64 = 0x0073_6278_0000_0001;

    struct Held(PgConnection);

    #[async_trait::async_trait]
    impl DatabaseHold for Held {
        async fn check(&mut self) -> Result<(), StoreError> {
            sqlx::query("SELECT 1").execute(&mut self.0).await?;
            Ok(())
        }

        async fn release(self: Box<Self>) {
            let _ = self.0.close().await;
        }
    }

    pub(super) async fn try_hold(
        pool: &PgPool,
        holder: &Holder,
    ) -> Result<Option<Box<dyn DatabaseHold>>, StoreError> {
        let mut connection = PgConnection::connect_with(&pool.connect_options()).await?;
        // The server's side notices a holder gone silent (a partition)
        // after about 11 s, and the lock goes with the connection.
        sqlx::query(
            "SELECT set_config('tcp_keepalives_idle', '5', false),
                    set_config('tcp_keepalives_interval', '2', false),
                    set_config('tcp_keepalives_count', '3', false)",
        )
        .execute(&mut connection)
        .await?;
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LOCK)
            .fetch_one(&mut connection)
            .await?;
        if !taken {
            let _ = connection.close().await;
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO database_holder (only_row, replica, address, since_ms) VALUES (1, $1, $2, $3)
             ON CONFLICT (only_row) DO UPDATE SET replica = excluded.replica, address = excluded.address, since_ms = excluded.since_ms",
        )
        .bind(&holder.replica)
        .bind(&holder.address)
        .bind(holder.since_ms)
        .execute(&mut connection)
        .await?;
        Ok(Some(Box::new(Held(connection))))
    }

    pub(super) async fn holder(pool: &PgPool) -> Result<Option<Holder>, StoreError> {
        let row = sqlx::query("SELECT replica, address, since_ms FROM database_holder")
            .fetch_optional(pool)
            .await?;
        Ok(row.map(|row| Holder {
            replica: row.get(0),
            address: row.get(1),
            since_ms: row.get(2),
        }))
    }
}

/// What PostgreSQL says its own way.
mod dialect {
    /// Contains, ignoring case.
    pub const LIKE: &str = "ILIKE ";
    /// Row locks for claims: rows another transaction holds are passed over.
    pub const SKIP_LOCKED: &str = " FOR UPDATE OF d SKIP LOCKED";
    /// A JSON object of key, value arguments.
    pub const JSON_OBJECT: &str = "json_build_object";
    /// An endpoint's `faults.delay_ms`, or NULL.
    pub const FAULT_DELAY: &str = "(ep.faults::json ->> 'delay_ms')::bigint";
    /// Whether endpoint `ep` listens to event `ev`'s type.
    pub const LISTENS: &str = "EXISTS (SELECT 1 FROM json_array_elements_text(ep.events::json) AS listened(value) WHERE value IN (ev.event_type, '*'))";
}

/// Connections each replica holds: writes are batched (group commit), so
/// a few carry a replica's load, and many replicas fit one server's
/// `max_connections`.
const CONNECTIONS: u32 = 8;

impl PgStore {
    /// Connects to a `postgres://` URL and migrates the database (under an
    /// advisory lock: replicas starting together migrate it once).
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("smartsandbox");
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self::over(pool))
    }

    /// Creates an empty database `name` on the server `url` reaches and
    /// returns its URL: how an operator bootstraps one, and how each test
    /// gets a clean one.
    pub async fn create_database(url: &str, name: &str) -> Result<String, StoreError> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                format!("a database name is letters, digits and _, not {name:?}").into(),
            )));
        }
        let admin = sqlx::PgPool::connect(url).await?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin)
            .await?;
        admin.close().await;
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let server = match base.split_once("://") {
            Some((scheme, rest)) => {
                format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest))
            }
            None => base.to_owned(),
        };
        Ok(match query {
            "" => format!("{server}/{name}"),
            query => format!("{server}/{name}?{query}"),
        })
    }
}
