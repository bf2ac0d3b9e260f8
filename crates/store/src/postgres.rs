//! The PostgreSQL store: what several replicas share. The same SQL as the
//! SQLite store (`sql/`), over a connection pool, with its own migrations.

use std::{str::FromStr, time::Duration};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};

use crate::StoreError;

type Db = sqlx::Postgres;
type DbRow = PgRow;

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

pub use store::SqlStore as PgStore;

/// One active server per database, under a lease in `database_holder`
/// (the database's clock decides when it has run out) and fenced: every
/// write checks that its server is the holder (`sbx_fence()` in the
/// migrations), so a holder paused or cut off past its lease cannot write
/// once another took over.
mod hold {
    use std::time::Duration;

    use sqlx::{Connection, PgConnection, PgPool, Row, postgres::PgConnectOptions};

    use crate::{DatabaseHold, Holder, StoreError};

    /// How long a renewal holds the database: renewed every second, it
    /// outlasts a PostgreSQL restart, and a dead holder's sandboxes are
    /// served again within about four seconds.
    const LEASE: Duration = Duration::from_secs(3);
    /// Longest a renewal may take before its connection is dropped (a
    /// database that does not answer: a partition drops packets).
    const RENEWAL_TIMEOUT: Duration = Duration::from_secs(1);
    /// The advisory lock a takeover takes exclusively and every fenced
    /// write shares ("sbx" and 1, as in `sbx_fence()`).
    const FENCE: i64 = 0x7362_7800_0000_0001;

    struct Lease {
        options: PgConnectOptions,
        /// Its own connection: renewals never wait behind a busy pool.
        connection: Option<PgConnection>,
        replica: String,
        epoch: i64,
    }

    impl Lease {
        /// Runs `statement` (binding the replica and epoch) on the lease's
        /// connection, opening it if needed and dropping it on any
        /// failure; how many rows it changed.
        async fn run(&mut self, statement: &str) -> Result<u64, StoreError> {
            let attempt = async {
                if self.connection.is_none() {
                    self.connection = Some(PgConnection::connect_with(&self.options).await?);
                }
                let connection = self.connection.as_mut().expect("just connected");
                let done = sqlx::query(statement)
                    .bind(&self.replica)
                    .bind(self.epoch)
                    .bind(LEASE.as_secs_f64())
                    .execute(connection)
                    .await?;
                Ok::<_, StoreError>(done.rows_affected())
            };
            let outcome = match tokio::time::timeout(RENEWAL_TIMEOUT, attempt).await {
                Ok(outcome) => outcome,
                Err(_) => Err(StoreError::Io {
                    context: "renewing the hold on the database".to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {RENEWAL_TIMEOUT:?}"),
                    ),
                }),
            };
            if outcome.is_err() {
                self.connection = None;
            }
            outcome
        }
    }

    impl Lease {
        /// Runs a renewal `statement`: fenced, saying `why`, when it
        /// renewed nothing (the lease was taken).
        async fn renew_by(&mut self, statement: &str, why: String) -> Result<(), StoreError> {
            match self.run(statement).await? {
                1 => Ok(()),
                _ => Err(StoreError::Fenced(why)),
            }
        }
    }

    #[async_trait::async_trait]
    impl DatabaseHold for Lease {
        async fn renew(&mut self) -> Result<(), StoreError> {
            let why = format!(
                "another server took the database after takeover {} of {}",
                self.epoch, self.replica
            );
            self.renew_by(
                "UPDATE database_holder SET expires_at = clock_timestamp() + make_interval(secs => $3)
                 WHERE replica = $1 AND epoch = $2",
                why,
            )
            .await
        }

        fn lease(&self) -> Option<Duration> {
            Some(LEASE)
        }

        fn epoch(&self) -> i64 {
            self.epoch
        }

        async fn release(mut self: Box<Self>) {
            // Tried again once on a new connection: a release lost to a
            // slow connection would leave the next server waiting out the
            // lease.
            for _ in 0..2 {
                let released = self
                    .run(
                        "WITH released AS (
                             UPDATE database_holder SET expires_at = clock_timestamp() - make_interval(secs => $3)
                             WHERE replica = $1 AND epoch = $2 RETURNING epoch)
                         SELECT pg_notify('sbx_released', epoch::text) FROM released",
                    )
                    .await;
                if released.is_ok() {
                    break;
                }
            }
            if let Some(connection) = self.connection.take() {
                let _ = connection.close().await;
            }
        }
    }

    /// Ends the sessions of server `replica` in this database that hold the
    /// advisory lock `(classid, objid, objsubid)` (as `pg_locks` shows it):
    /// their transactions roll back, unacknowledged.
    async fn end_sessions_holding(
        pool: &PgPool,
        replica: &str,
        (class, object, subid): (i64, i64, i16),
    ) -> Result<(), StoreError> {
        sqlx::query(
            "SELECT COUNT(pg_terminate_backend(l.pid)) FROM pg_locks l
             JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.classid::bigint = $1 AND l.objid::bigint = $2
               AND l.objsubid = $3 AND l.granted AND a.application_name = $4
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(class)
        .bind(object)
        .bind(subid)
        .bind(super::application_name(Some(replica)))
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Takes the database for `holder` (its `epoch` is ignored) if no
    /// server holds it or its holder's lease ran out.
    pub(super) async fn try_hold(
        pool: &PgPool,
        holder: &Holder,
    ) -> Result<Option<Box<dyn DatabaseHold>>, StoreError> {
        // A look first: servers standing by ask every second, and a
        // takeover's lock waits for every write in flight.
        let current: Option<(String, bool)> =
            sqlx::query_as("SELECT replica, expires_at >= clock_timestamp() FROM database_holder")
                .fetch_optional(pool)
                .await?;
        let previous = match current {
            Some((_, true)) => return Ok(None),
            Some((previous, false)) => Some(previous),
            None => None,
        };
        // A holder paused in the middle of a write keeps its transaction,
        // and the fence's lock with it, open for as long as it is paused:
        // past its lease, its sessions holding the lock are ended (the
        // transaction rolls back, unacknowledged). Only its own, in this
        // database: another server may have taken over since the look
        // above, and other databases have holders of their own.
        if let Some(previous) = &previous {
            end_sessions_holding(pool, previous, (FENCE >> 32, FENCE & 0xFFFF_FFFF, 1)).await?;
        }
        let mut transaction = pool.begin().await?;
        // Never stuck behind a writer: tried again a second later.
        sqlx::query("SET LOCAL lock_timeout = '2s'")
            .execute(&mut *transaction)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(FENCE)
            .execute(&mut *transaction)
            .await?;
        let epoch: Option<i64> = sqlx::query_scalar(
            "INSERT INTO database_holder (only_row, replica, address, since_ms, epoch, expires_at)
             VALUES (1, $1, $2, $3, 1, clock_timestamp() + make_interval(secs => $4))
             ON CONFLICT (only_row) DO UPDATE SET replica = excluded.replica, address = excluded.address,
                 since_ms = excluded.since_ms, epoch = database_holder.epoch + 1, expires_at = excluded.expires_at
             WHERE database_holder.expires_at < clock_timestamp()
             RETURNING epoch",
        )
        .bind(&holder.replica)
        .bind(&holder.address)
        .bind(holder.since_ms)
        .bind(LEASE.as_secs_f64())
        .fetch_optional(&mut *transaction)
        .await?;
        if let (Some(_), Some(previous)) = (epoch, &previous) {
            release_claims(&mut transaction, previous).await?;
        }
        transaction.commit().await?;
        Ok(epoch.map(|epoch| {
            Box::new(Lease {
                options: pool.connect_options().as_ref().clone(),
                connection: None,
                replica: holder.replica.clone(),
                epoch,
            }) as Box<dyn DatabaseHold>
        }))
    }

    /// The advisory lock class of members: each member's writes share
    /// `(MEMBERS, hashtext(replica))`, its sweep takes it exclusively
    /// ("sbxr", as in `sbx_fence()`).
    const MEMBERS: i32 = 0x7362_7872;

    /// A member's lease: its row in `replicas`, this incarnation's by
    /// `since_ms` (in the epoch's place).
    struct MemberLease(Lease);

    #[async_trait::async_trait]
    impl crate::Membership for MemberLease {
        async fn renew(&mut self) -> Result<(), StoreError> {
            let why = format!(
                "the holder swept {} (its lease ran out): its sandboxes are served elsewhere",
                self.0.replica
            );
            self.0
                .renew_by(
                    "UPDATE replicas SET expires_at = clock_timestamp() + make_interval(secs => $3)
                     WHERE replica = $1 AND since_ms = $2",
                    why,
                )
                .await
        }

        fn lease(&self) -> Duration {
            LEASE
        }

        async fn drain(&mut self) -> Result<(), StoreError> {
            let why = format!("the holder swept {}", self.0.replica);
            self.0
                .renew_by(
                    "UPDATE replicas SET draining = true,
                         expires_at = clock_timestamp() + make_interval(secs => $3)
                     WHERE replica = $1 AND since_ms = $2",
                    why,
                )
                .await
        }

        async fn leave(mut self: Box<Self>) {
            // Its lease ends now: the holder's next sweep takes its
            // sandboxes over.
            let _ = self
                .0
                .run(
                    "UPDATE replicas SET expires_at = clock_timestamp() - make_interval(secs => $3)
                     WHERE replica = $1 AND since_ms = $2",
                )
                .await;
            if let Some(connection) = self.0.connection.take() {
                let _ = connection.close().await;
            }
        }
    }

    pub(super) async fn join(
        pool: &PgPool,
        member: &crate::Member,
    ) -> Result<Option<Box<dyn crate::Membership>>, StoreError> {
        let since_ms: i64 = sqlx::query_scalar(
            "INSERT INTO replicas (replica, address, since_ms, expires_at)
             VALUES ($1, $2, (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
                     clock_timestamp() + make_interval(secs => $3))
             RETURNING since_ms",
        )
        .bind(&member.replica)
        .bind(&member.address)
        .bind(LEASE.as_secs_f64())
        .fetch_one(pool)
        .await?;
        Ok(Some(Box::new(MemberLease(Lease {
            options: pool.connect_options().as_ref().clone(),
            connection: None,
            replica: member.replica.clone(),
            epoch: since_ms,
        }))))
    }

    pub(super) async fn members(pool: &PgPool) -> Result<Vec<crate::Member>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT replica, address FROM replicas
             WHERE expires_at >= clock_timestamp() AND NOT draining ORDER BY replica",
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(replica, address)| crate::Member { replica, address })
            .collect())
    }

    fn served(replica: Option<String>, address: Option<String>, epoch: i64) -> crate::ServedBy {
        crate::ServedBy {
            // A member being swept has no address for a moment: asked
            // again, its sandbox is the holder's.
            member: replica.map(|replica| crate::Member {
                replica,
                address: address.unwrap_or_default(),
            }),
            epoch,
        }
    }

    pub(super) async fn served_by(
        pool: &PgPool,
        sandbox_id: &str,
    ) -> Result<Option<crate::ServedBy>, StoreError> {
        let row: Option<(Option<String>, Option<String>, i64)> = sqlx::query_as(
            "SELECT s.served_by, r.address, s.served_epoch FROM sandboxes s
             LEFT JOIN replicas r ON r.replica = s.served_by WHERE s.id = $1",
        )
        .bind(sandbox_id)
        .fetch_optional(pool)
        .await?;
        Ok(row.map(|(replica, address, epoch)| served(replica, address, epoch)))
    }

    pub(super) async fn served_by_members(
        pool: &PgPool,
    ) -> Result<Vec<(String, crate::ServedBy)>, StoreError> {
        let rows: Vec<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
            "SELECT s.id, s.served_by, r.address, s.served_epoch FROM sandboxes s
             LEFT JOIN replicas r ON r.replica = s.served_by WHERE s.served_by IS NOT NULL",
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, replica, address, epoch)| (id, served(replica, address, epoch)))
            .collect())
    }

    pub(super) async fn hand_over(
        pool: &PgPool,
        sandbox_id: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let mut transaction = pool.begin().await?;
        // First, while the sandbox is still the writer's: its claims are
        // the new server's to take at once.
        sqlx::query(
            "UPDATE deliveries SET claimed_by = NULL, claimed_until_ms = NULL
             WHERE sandbox_id = $1 AND claimed_by IS NOT NULL
               AND EXISTS (SELECT 1 FROM sandboxes WHERE id = $1 AND served_by IS NOT DISTINCT FROM $2)",
        )
        .bind(sandbox_id)
        .bind(from)
        .execute(&mut *transaction)
        .await?;
        let epoch: Option<i64> = sqlx::query_scalar(
            "UPDATE sandboxes SET served_by = $3, served_epoch = served_epoch + 1
             WHERE id = $1 AND served_by IS NOT DISTINCT FROM $2
               AND ($3::text IS NULL OR EXISTS (
                   SELECT 1 FROM replicas
                   WHERE replica = $3 AND expires_at >= clock_timestamp() AND NOT draining))
             RETURNING served_epoch",
        )
        .bind(sandbox_id)
        .bind(from)
        .bind(to)
        .fetch_optional(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(epoch)
    }

    pub(super) async fn sandboxes_per_server(
        pool: &PgPool,
    ) -> Result<Vec<(Option<String>, u64)>, StoreError> {
        let rows: Vec<(Option<String>, i64)> = sqlx::query_as(
            "SELECT served_by, COUNT(*) FROM sandboxes WHERE isolation IS NULL GROUP BY served_by",
        )
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(server, count)| (server, u64::try_from(count).unwrap_or(0)))
            .collect())
    }

    /// The deliveries `replica` claimed are free again: it can no longer
    /// record an attempt (the fence refuses it), so they need not wait for
    /// their claims to run out.
    async fn release_claims(
        transaction: &mut sqlx::PgTransaction<'_>,
        replica: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET claimed_by = NULL, claimed_until_ms = NULL WHERE claimed_by = $1",
        )
        .bind(replica)
        .execute(&mut **transaction)
        .await?;
        Ok(())
    }

    pub(super) async fn sweep_members(pool: &PgPool) -> Result<Vec<String>, StoreError> {
        let lapsed: Vec<String> =
            sqlx::query_scalar("SELECT replica FROM replicas WHERE expires_at < clock_timestamp()")
                .fetch_all(pool)
                .await?;
        for member in &lapsed {
            // As a takeover does: a member paused mid-write holds its
            // lock until its sessions are ended.
            let object: i64 = sqlx::query_scalar("SELECT hashtext($1)::bigint & 4294967295")
                .bind(member)
                .fetch_one(pool)
                .await?;
            end_sessions_holding(pool, member, (i64::from(MEMBERS), object, 2)).await?;
            let mut transaction = pool.begin().await?;
            sqlx::query("SET LOCAL lock_timeout = '2s'")
                .execute(&mut *transaction)
                .await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .bind(MEMBERS)
                .bind(member)
                .execute(&mut *transaction)
                .await?;
            let swept = sqlx::query(
                "DELETE FROM replicas WHERE replica = $1 AND expires_at < clock_timestamp()",
            )
            .bind(member)
            .execute(&mut *transaction)
            .await?;
            if swept.rows_affected() == 1 {
                release_claims(&mut transaction, member).await?;
            }
            transaction.commit().await?;
        }
        // Sandboxes of every member gone (swept above, or earlier).
        Ok(sqlx::query_scalar(
            "UPDATE sandboxes s SET served_by = NULL, served_epoch = served_epoch + 1
             WHERE s.served_by IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.replica = s.served_by)
             RETURNING s.id",
        )
        .fetch_all(pool)
        .await?)
    }

    /// Waits on `LISTEN sbx_released`, which a holder's release notifies.
    struct Releases(sqlx::postgres::PgListener);

    #[async_trait::async_trait]
    impl crate::ReleaseWatch for Releases {
        async fn next(&mut self) {
            // The listener reconnects on its next call; meanwhile the
            // server's own tries every second go on.
            if self.0.recv().await.is_err() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    pub(super) async fn watch_releases(
        pool: &PgPool,
    ) -> Result<Option<Box<dyn crate::ReleaseWatch>>, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen("sbx_released").await?;
        Ok(Some(Box::new(Releases(listener))))
    }

    /// Waits on `LISTEN sbx_changes`, which the triggers of
    /// `sbx_notify_change()` notify.
    struct Changes(sqlx::postgres::PgListener);

    #[async_trait::async_trait]
    impl crate::ChangeWatch for Changes {
        async fn next(&mut self) -> crate::Change {
            loop {
                match self.0.try_recv().await {
                    Ok(Some(notice)) => match notice.payload().split_once(' ') {
                        Some(("revision", project)) => {
                            return crate::Change::Revision(project.to_owned());
                        }
                        Some(("sandbox", id)) => return crate::Change::SandboxGone(id.to_owned()),
                        Some(("moved", id)) => return crate::Change::SandboxMoved(id.to_owned()),
                        _ => continue,
                    },
                    // Reconnected on the next call.
                    Ok(None) => return crate::Change::Missed,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        return crate::Change::Missed;
                    }
                }
            }
        }
    }

    pub(super) async fn watch_changes(
        pool: &PgPool,
    ) -> Result<Option<Box<dyn crate::ChangeWatch>>, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen("sbx_changes").await?;
        Ok(Some(Box::new(Changes(listener))))
    }

    pub(super) async fn holder(pool: &PgPool) -> Result<Option<Holder>, StoreError> {
        let row = sqlx::query("SELECT replica, address, since_ms, epoch FROM database_holder")
            .fetch_optional(pool)
            .await?;
        Ok(row.map(|row| Holder {
            replica: row.get(0),
            address: row.get(1),
            since_ms: row.get(2),
            epoch: row.get(3),
        }))
    }
}

/// What PostgreSQL says its own way.
mod dialect {
    use super::store::LOG_INSERT;
    use crate::LogRecord;

    /// Inserts request-log entries in one statement of 19 arrays,
    /// whatever their number: the same statement every time, parsed and
    /// planned once per connection (a `VALUES` list of bound rows is a new
    /// statement for each count, with 19 parameters a row to bind).
    pub async fn insert_logs(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        logs: &[LogRecord],
    ) -> Result<(), sqlx::Error> {
        let text = |field: fn(&LogRecord) -> &str| logs.iter().map(field).collect::<Vec<_>>();
        let maybe =
            |field: fn(&LogRecord) -> Option<&str>| logs.iter().map(field).collect::<Vec<_>>();
        let number = |field: fn(&LogRecord) -> i64| logs.iter().map(field).collect::<Vec<_>>();
        let json = |field: fn(&LogRecord) -> &serde_json::Value| {
            logs.iter()
                .map(|log| field(log).to_string())
                .collect::<Vec<_>>()
        };
        let statement = format!(
            "{LOG_INSERT} SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
               $8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::bigint[], $13::text[], $14::text[], $15::text[],
               $16::text[], $17::text[], $18::bigint[], $19::text[])"
        );
        sqlx::query(&statement)
            .bind(text(|log| log.sandbox_id.as_str()))
            .bind(text(|log| log.request_id.as_str()))
            .bind(number(|log| log.at_ms))
            .bind(text(|log| &log.method))
            .bind(text(|log| &log.path))
            .bind(maybe(|log| log.query.as_deref()))
            .bind(maybe(|log| log.operation.as_deref()))
            .bind(number(|log| log.status))
            .bind(number(|log| log.latency_us))
            .bind(maybe(|log| log.scenario.as_deref()))
            .bind(maybe(|log| log.chaos.as_deref()))
            .bind(number(|log| i64::from(log.replayed)))
            .bind(json(|log| &log.request_headers))
            .bind(text(|log| &log.request_body))
            .bind(json(|log| &log.response_headers))
            .bind(text(|log| &log.response_body))
            .bind(json(|log| &log.trace))
            .bind(logs.iter().map(|log| log.sandbox_at_ms).collect::<Vec<_>>())
            .bind(maybe(|log| log.trace_id.as_deref()))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

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

/// The `application_name` of server `replica`'s connections.
fn application_name(replica: Option<&str>) -> String {
    match replica {
        Some(replica) => format!("smartsandbox {replica}"),
        None => "smartsandbox".to_owned(),
    }
}

/// Connections each replica holds: writes are batched (group commit), so
/// a few carry a replica's load, and many replicas fit one server's
/// `max_connections`.
const CONNECTIONS: u32 = 8;

impl PgStore {
    /// Connects to a `postgres://` URL and migrates the database (under an
    /// advisory lock: replicas starting together migrate it once). Its
    /// writes are not fenced: for tools and tests.
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        Self::open(PgConnectOptions::from_str(url)?, None).await
    }

    /// [`Self::open_url`] for server `replica`: its connections name it, so
    /// that the database refuses its writes unless it holds the database.
    pub async fn open_url_as(url: &str, replica: &str) -> Result<Self, StoreError> {
        Self::open(PgConnectOptions::from_str(url)?, Some(replica)).await
    }

    async fn open(options: PgConnectOptions, replica: Option<&str>) -> Result<Self, StoreError> {
        // Naming the server, so that a takeover can tell its sessions.
        let mut options = options.application_name(&application_name(replica));
        // On a connection of their own that names no server: the
        // migrations write, and are not any server's writes.
        let mut migrating =
            <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&mut migrating)
            .await?;
        sqlx::Connection::close(migrating).await?;
        if let Some(replica) = replica {
            options = options.options([("sbx.replica", replica)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
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
