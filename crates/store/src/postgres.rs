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
