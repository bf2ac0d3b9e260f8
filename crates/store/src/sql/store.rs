//! The store written once in SQL both backends speak: compiled into
//! [`crate::sqlite`] and [`crate::postgres`], each of which names its
//! database (`Db`, `DbRow`), its dialect's few differences (`dialect`) and
//! how it opens.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use sbx_engine::{AuthMode, ProjectFiles};
use sbx_webhooks::ScheduleName;
use serde_json::{Value, json};
use sqlx::{Pool, QueryBuilder, Row};

use super::{Db, DbRow, dialect};
use crate::{
    AttemptRecord, AttemptView, AuditOutcome, AuditQuery, AuditRecord, ChangeSet, ClockChange,
    DeliveryClaim, DeliveryRecord, DueDelivery, EndpointRecord, EventId, EventRecord,
    IdempotentAnswer, JobRecord, LogQuery, LogRecord, Origin, ProjectRecord, ResourceRow,
    RevisionRecord, RevisionSummary, SandboxRecord, Sealer, Store, StoreError, TimelineQuery,
    TimelineRecord, Tombstone, TransitionRecord,
};

/// Rows per multi-row statement (SQLite binds at most 32,766 values,
/// PostgreSQL 65,535).
const ROWS_PER_STATEMENT: usize = 200;

/// The request log's insert, up to its rows (each backend's `dialect`
/// writes them its own way).
pub(super) const LOG_INSERT: &str = "INSERT INTO request_logs (sandbox_id, request_id, at_ms, method, path, query, operation, status, latency_us,
   scenario, chaos, replayed, request_headers, request_body, response_headers, response_body, trace, sandbox_at_ms, trace_id) ";

#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: Pool<Db>,
    /// Seals the secrets the server must use again (see [`Sealer`]).
    sealer: Arc<Sealer>,
}

impl SqlStore {
    /// A store over a migrated pool. Until [`Self::with_sealer`], secrets
    /// are sealed under a random key that lives as long as the process
    /// does (enough for tests).
    pub(super) fn over(pool: Pool<Db>) -> Self {
        let key = crate::sealed::parse_key(&crate::sealed::generate_key())
            .expect("a generated key parses");
        Self {
            pool,
            sealer: Arc::new(Sealer::new(&key, &[])),
        }
    }

    pub(crate) fn pool(&self) -> &Pool<Db> {
        &self.pool
    }

    pub(crate) fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// Seals secrets under `sealer` from now on.
    pub fn with_sealer(mut self, sealer: Arc<Sealer>) -> Self {
        self.sealer = sealer;
        self
    }
}

/// A column of a row, or an error naming both.
pub(crate) fn column<'r, T>(
    row: &'r DbRow,
    table: &'static str,
    name: &'static str,
) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Db> + sqlx::Type<Db>,
{
    row.try_get(name).map_err(|e| StoreError::Corrupt {
        table,
        key: row_key(row),
        column: name,
        cause: e.to_string(),
    })
}

/// A JSON column of a row, decoded.
pub(crate) fn json<T: serde::de::DeserializeOwned>(
    row: &DbRow,
    table: &'static str,
    name: &'static str,
) -> Result<T, StoreError> {
    let text: String = column(row, table, name)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        table,
        key: row_key(row),
        column: name,
        cause: e.to_string(),
    })
}

/// A nullable JSON column of a row, decoded.
fn json_or_null<T: serde::de::DeserializeOwned>(
    row: &DbRow,
    table: &'static str,
    name: &'static str,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = column(row, table, name)?;
    text.map(|text| {
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            table,
            key: row_key(row),
            column: name,
            cause: e.to_string(),
        })
    })
    .transpose()
}

/// The `origin` column of a row, parsed.
pub(crate) fn origin(row: &DbRow, table: &'static str) -> Result<Option<Origin>, StoreError> {
    let text: Option<String> = column(row, table, "origin")?;
    text.map(|text| {
        Origin::parse(&text).ok_or_else(|| StoreError::Corrupt {
            table,
            key: row_key(row),
            column: "origin",
            cause: format!("{text:?} is not an origin"),
        })
    })
    .transpose()
}

/// What names a row in an error: its id (and sandbox), as far as it has them.
pub(crate) fn row_key(row: &DbRow) -> String {
    let text = |name: &str| {
        row.try_get::<String, _>(name)
            .ok()
            .or_else(|| row.try_get::<i64, _>(name).ok().map(|n| n.to_string()))
    };
    match (text("sandbox_id"), text("id").or_else(|| text("name"))) {
        (Some(sandbox), Some(id)) => format!("{id} of sandbox {sandbox}"),
        (None, Some(id)) => id,
        (Some(sandbox), None) => format!("of sandbox {sandbox}"),
        (None, None) => "(unnamed)".to_owned(),
    }
}

fn project(row: &DbRow) -> Result<ProjectRecord, StoreError> {
    let get = |name| column::<i64>(row, "projects", name);
    Ok(ProjectRecord {
        name: column(row, "projects", "name")?,
        latest_revision: get("latest_revision")? as u32,
        created_at_ms: get("created_at_ms")?,
        updated_at_ms: get("updated_at_ms")?,
    })
}

fn sandbox(sealer: &Sealer, row: &DbRow) -> Result<SandboxRecord, StoreError> {
    const T: &str = "sandboxes";
    let created_at_ms = column(row, T, "created_at_ms")?;
    Ok(SandboxRecord {
        id: column(row, T, "id")?,
        project: column(row, T, "project")?,
        revision: column::<i64>(row, T, "revision")? as u32,
        key_hash: column(row, T, "key_hash")?,
        seed: column(row, T, "seed")?,
        auth: {
            let name: String = column(row, T, "auth")?;
            AuthMode::parse(&name).ok_or_else(|| StoreError::Corrupt {
                table: T,
                key: row_key(row),
                column: "auth",
                cause: format!("{name:?} is not an auth mode"),
            })?
        },
        label: column(row, T, "label")?,
        created_at_ms,
        expires_at_ms: column(row, T, "expires_at_ms")?,
        pinned: column::<i64>(row, T, "pinned")? != 0,
        env: json(row, T, "env")?,
        chaos: column(row, T, "chaos")?,
        scenario: column(row, T, "scenario")?,
        clock_offset_ms: column(row, T, "clock_offset_ms")?,
        clock_frozen_ms: column(row, T, "clock_frozen_ms")?,
        seeded_at_ms: column::<Option<i64>>(row, T, "seeded_at_ms")?.unwrap_or(created_at_ms),
        webhook_schedule: {
            let name: String = column(row, T, "webhook_schedule")?;
            ScheduleName::parse(&name).ok_or_else(|| StoreError::Corrupt {
                table: T,
                key: row_key(row),
                column: "webhook_schedule",
                cause: format!("{name:?} is not a schedule"),
            })?
        },
        owner: column(row, T, "owner")?,
        rate_limits: json_or_null(row, T, "rate_limits")?,
        last_active_at_ms: column(row, T, "last_active_at_ms")?,
        isolation: json_or_null::<crate::Isolation>(row, T, "isolation")?
            .map(|isolation| {
                Ok::<_, StoreError>(crate::Isolation {
                    instance_token: sealed(sealer, row, T, "isolation_token")?.unwrap_or_default(),
                    ..isolation
                })
            })
            .transpose()?,
    })
}

fn log(row: &DbRow) -> Result<LogRecord, StoreError> {
    const T: &str = "request_log";
    Ok(LogRecord {
        seq: column(row, T, "seq")?,
        sandbox_id: column(row, T, "sandbox_id")?,
        request_id: column(row, T, "request_id")?,
        at_ms: column(row, T, "at_ms")?,
        method: column(row, T, "method")?,
        path: column(row, T, "path")?,
        query: column(row, T, "query")?,
        operation: column(row, T, "operation")?,
        status: column(row, T, "status")?,
        latency_us: column(row, T, "latency_us")?,
        scenario: column(row, T, "scenario")?,
        chaos: column(row, T, "chaos")?,
        replayed: column::<i64>(row, T, "replayed")? != 0,
        request_headers: json(row, T, "request_headers")?,
        request_body: column(row, T, "request_body")?,
        response_headers: json(row, T, "response_headers")?,
        response_body: column(row, T, "response_body")?,
        trace: json(row, T, "trace")?,
        sandbox_at_ms: column(row, T, "sandbox_at_ms")?,
        trace_id: column(row, T, "trace_id")?,
    })
}

fn event(row: &DbRow) -> Result<EventRecord, StoreError> {
    const T: &str = "events";
    Ok(EventRecord {
        id: column(row, T, "id")?,
        sandbox_id: column(row, T, "sandbox_id")?,
        event_type: column(row, T, "event_type")?,
        payload: json(row, T, "payload")?,
        created_at_ms: column(row, T, "created_at_ms")?,
    })
}

/// A sealed column, opened.
pub(crate) fn sealed(
    sealer: &Sealer,
    row: &DbRow,
    table: &'static str,
    name: &'static str,
) -> Result<Option<String>, StoreError> {
    column::<Option<String>>(row, table, name)?
        .map(|text| {
            sealer.open(&text).map_err(|e| StoreError::Corrupt {
                table,
                key: row_key(row),
                column: name,
                cause: e.to_string(),
            })
        })
        .transpose()
}

fn endpoint(sealer: &Sealer, row: &DbRow) -> Result<EndpointRecord, StoreError> {
    const T: &str = "webhook_endpoints";
    Ok(EndpointRecord {
        id: column(row, T, "id")?,
        sandbox_id: column(row, T, "sandbox_id")?,
        url: column(row, T, "url")?,
        events: json(row, T, "events")?,
        description: column(row, T, "description")?,
        secret: sealed(sealer, row, T, "secret")?.unwrap_or_default(),
        previous_secret: sealed(sealer, row, T, "previous_secret")?,
        previous_secret_expires_ms: column(row, T, "previous_secret_expires_ms")?,
        disabled_reason: column(row, T, "disabled_reason")?,
        failures_in_row: column(row, T, "failures_in_row")?,
        created_at_ms: column(row, T, "created_at_ms")?,
        faults: json_or_null(row, T, "faults")?,
    })
}

/// The columns [`endpoint`] reads, of `webhook_endpoints ep`.
macro_rules! endpoint_columns {
    () => {
        "ep.id, ep.sandbox_id, ep.url, ep.events, ep.description, ep.secret, ep.previous_secret, ep.previous_secret_expires_ms, ep.disabled_reason, ep.failures_in_row, ep.created_at_ms, ep.faults"
    };
}

const ENDPOINT_COLUMNS: &str = endpoint_columns!();

/// Deliveries with their events and endpoints, as [`due_delivery`] reads
/// them: add the `WHERE`.
const DUE_DELIVERIES: &str = concat!(
    "SELECT d.id AS delivery_id, d.attempts, d.next_attempt_ms, ev.id AS event_id, ev.event_type, ev.payload,
            ev.created_at_ms AS event_created_at_ms, ",
    endpoint_columns!(),
    " FROM deliveries d
     JOIN events ev ON ev.id = d.event_id
     JOIN webhook_endpoints ep ON ep.id = d.endpoint_id"
);

fn due_delivery(sealer: &Sealer, row: &DbRow) -> Result<DueDelivery, StoreError> {
    Ok(DueDelivery {
        id: column(row, "deliveries", "delivery_id")?,
        sandbox_id: column(row, "deliveries", "sandbox_id")?,
        attempts: column(row, "deliveries", "attempts")?,
        next_attempt_ms: column(row, "deliveries", "next_attempt_ms")?,
        event_id: column(row, "events", "event_id")?,
        event_type: column(row, "events", "event_type")?,
        payload: json(row, "events", "payload")?,
        event_created_at_ms: column(row, "events", "event_created_at_ms")?,
        endpoint: endpoint(sealer, row)?,
    })
}

fn job(row: &DbRow) -> Result<JobRecord, StoreError> {
    const T: &str = "jobs";
    Ok(JobRecord {
        id: column(row, T, "id")?,
        seq: column(row, T, "seq")?,
        due_at_ms: column(row, T, "due_at_ms")?,
        action: json(row, T, "action")?,
        payload: json(row, T, "payload")?,
        scheduled_at_ms: column(row, T, "scheduled_at_ms")?,
        error: column(row, T, "error")?,
        origin: origin(row, T)?,
    })
}

/// Runs `sql` (binding a time, then a key) for each row, in one
/// transaction: the "last used" and "last active" marks, which only move
/// forward (the statement keeps the later).
pub(crate) async fn touch_rows(
    pool: &Pool<Db>,
    sql: &str,
    rows: &[(&str, i64)],
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    for (key, at_ms) in rows {
        sqlx::query(sql)
            .bind(at_ms)
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Items of every change set in `batch`, each with its sandbox id.
fn per_sandbox<'a, T>(
    batch: &'a [ChangeSet],
    items: impl Fn(&'a ChangeSet) -> &'a [T],
) -> Vec<(&'a ChangeSet, &'a T)> {
    batch
        .iter()
        .flat_map(|c| items(c).iter().map(move |item| (c, item)))
        .collect()
}

/// Takes `deleted` entries off a sandbox's request log count.
async fn forget_logs(
    tx: &mut sqlx::Transaction<'_, Db>,
    sandbox_id: &str,
    deleted: u64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE request_log_counts SET held = held - $1 WHERE sandbox_id = $2")
        .bind(i64::try_from(deleted).unwrap_or(i64::MAX))
        .bind(sandbox_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The batch's records, each once, at its highest version: one upsert
/// may not touch a row twice (PostgreSQL refuses it), and only the latest
/// write of a record would stay anyway.
fn latest_rows(batch: &[ChangeSet]) -> Vec<(&ChangeSet, &ResourceRow)> {
    let mut latest: HashMap<(&str, &str, &str), (&ChangeSet, &ResourceRow)> = HashMap::new();
    for (change, row) in per_sandbox(batch, |c| &c.rows) {
        let key = (
            change.sandbox_id.as_str(),
            row.collection.as_str(),
            row.id.as_str(),
        );
        match latest.get(&key) {
            Some((_, kept)) if kept.version >= row.version => {}
            _ => {
                latest.insert(key, (change, row));
            }
        }
    }
    latest.into_values().collect()
}

/// Writes records, each unless the stored one is as new (by version).
async fn upsert_records<'e>(
    executor: impl sqlx::Executor<'e, Database = Db>,
    rows: &[(&ChangeSet, &ResourceRow)],
) -> Result<(), StoreError> {
    let mut insert = QueryBuilder::<Db>::new(
        "INSERT INTO resources (sandbox_id, collection, id, scope, seq, value, version) ",
    );
    insert.push_values(rows, |mut values, (change, row)| {
        values
            .push_bind(&change.sandbox_id)
            .push_bind(&row.collection)
            .push_bind(&row.id)
            .push_bind(&row.scope)
            .push_bind(row.seq as i64)
            .push_bind(&row.value)
            .push_bind(row.version as i64);
    });
    insert.push(
        " ON CONFLICT (sandbox_id, collection, id) DO UPDATE SET
           scope = excluded.scope, seq = excluded.seq, value = excluded.value, version = excluded.version
         WHERE excluded.version > resources.version",
    );
    insert.build().execute(executor).await?;
    Ok(())
}

/// The outbox: the events `ids` (this transaction's own), each to every
/// enabled endpoint of its sandbox that listens to its type. Only its
/// own: events other transactions committed meanwhile (another server's,
/// or this one's on another connection) are theirs to fan out.
async fn fan_out(tx: &mut sqlx::Transaction<'_, Db>, ids: &[i64]) -> Result<(), StoreError> {
    let (delay, listens) = (dialect::FAULT_DELAY, dialect::LISTENS);
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Db>::new(format!(
            "INSERT INTO deliveries (sandbox_id, endpoint_id, event_id, state, next_attempt_ms)
             SELECT ev.sandbox_id, ep.id, ev.id, 'pending', ev.created_at_ms + COALESCE({delay}, 0)
             FROM events ev JOIN webhook_endpoints ep ON ep.sandbox_id = ev.sandbox_id
             WHERE ep.disabled_reason IS NULL AND {listens} AND ev.id IN ("
        ));
        let mut listed = insert.separated(", ");
        for id in chunk {
            listed.push_bind(*id);
        }
        insert.push(") ORDER BY ev.id");
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes the batch's scheduled and finished jobs and its transitions, in
/// multi-row statements (jobs scheduled first: a job can be scheduled and
/// finished in one batch).
async fn save_jobs(
    tx: &mut sqlx::Transaction<'_, Db>,
    batch: &[ChangeSet],
) -> Result<(), StoreError> {
    let jobs = per_sandbox(batch, |c| &c.jobs);
    for chunk in jobs.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Db>::new(
            "INSERT INTO jobs (sandbox_id, id, due_at_ms, action, payload, scheduled_at_ms, origin) ",
        );
        insert.push_values(chunk, |mut values, (change, job)| {
            values
                .push_bind(&change.sandbox_id)
                .push_bind(&job.id)
                .push_bind(job.due_at_ms)
                .push_bind(job.action.to_string())
                .push_bind(job.payload.to_string())
                .push_bind(job.scheduled_at_ms)
                .push_bind(
                    job.origin
                        .as_ref()
                        .or(change.origin.as_ref())
                        .map(Origin::to_string),
                );
        });
        insert.push(" ON CONFLICT (sandbox_id, id) DO NOTHING");
        insert.build().execute(&mut **tx).await?;
    }
    for change in batch {
        let (done, failed): (Vec<_>, Vec<_>) = change
            .finished_jobs
            .iter()
            .partition(|(_, error)| error.is_none());
        // Run jobs stay, for the timeline; a job runs at its due time.
        for chunk in done.chunks(ROWS_PER_STATEMENT) {
            let mut ran = QueryBuilder::<Db>::new(
                "UPDATE jobs SET ran_at_ms = due_at_ms WHERE sandbox_id = ",
            );
            ran.push_bind(&change.sandbox_id).push(" AND id IN (");
            let mut ids = ran.separated(", ");
            for (id, _) in chunk {
                ids.push_bind(id);
            }
            ran.push(")");
            ran.build().execute(&mut **tx).await?;
        }
        for (id, error) in failed {
            sqlx::query("UPDATE jobs SET error = $1 WHERE sandbox_id = $2 AND id = $3")
                .bind(error)
                .bind(&change.sandbox_id)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
    }
    let transitions = per_sandbox(batch, |c| &c.transitions);
    for chunk in transitions.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Db>::new(
            "INSERT INTO transitions (sandbox_id, collection, resource_id, from_state, to_state, at_ms, cause, origin) ",
        );
        insert.push_values(chunk, |mut values, (change, t)| {
            values
                .push_bind(&change.sandbox_id)
                .push_bind(&t.collection)
                .push_bind(&t.resource_id)
                .push_bind(&t.from)
                .push_bind(&t.to)
                .push_bind(t.at_ms)
                .push_bind(&t.cause)
                .push_bind(change.origin.as_ref().map(Origin::to_string));
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqlStore {
    async fn create_project(
        &self,
        name: &str,
        spec: &str,
        files: &ProjectFiles,
        author: &str,
        now_ms: i64,
    ) -> Result<ProjectRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO projects (name, latest_revision, created_at_ms, updated_at_ms) VALUES ($1, 1, $2, $3)",
        )
        .bind(name)
        .bind(now_ms)
        .bind(now_ms)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("project \"{name}\"")));
            }
            other => other?,
        };
        sqlx::query(
            "INSERT INTO revisions (project, revision, spec, files, created_at_ms, author) VALUES ($1, 1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(spec)
        .bind(json!(files).to_string())
        .bind(now_ms)
        .bind(author)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ProjectRecord {
            name: name.into(),
            latest_revision: 1,
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        })
    }

    async fn add_revision(
        &self,
        name: &str,
        spec: &str,
        files: &ProjectFiles,
        author: &str,
        now_ms: i64,
    ) -> Result<u32, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE projects SET latest_revision = latest_revision + 1, updated_at_ms = $1 WHERE name = $2 RETURNING latest_revision",
        )
        .bind(now_ms)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("project \"{name}\"")))?;
        let revision: i64 = row.get(0);
        sqlx::query(
            "INSERT INTO revisions (project, revision, spec, files, created_at_ms, author) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(name)
        .bind(revision)
        .bind(spec)
        .bind(json!(files).to_string())
        .bind(now_ms)
        .bind(author)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(revision as u32)
    }

    async fn get_project(&self, name: &str) -> Result<Option<ProjectRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(project).transpose()
    }

    async fn list_projects(&self) -> Result<Vec<ProjectRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM projects ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(project).collect()
    }

    async fn delete_project(&self, name: &str) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = sqlx::query("DELETE FROM sandboxes WHERE project = $1 RETURNING id")
            .bind(name)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let deleted = sqlx::query("DELETE FROM projects WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("project \"{name}\"")));
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn get_revision(
        &self,
        name: &str,
        revision: u32,
    ) -> Result<Option<RevisionRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM revisions WHERE project = $1 AND revision = $2")
            .bind(name)
            .bind(i64::from(revision))
            .fetch_optional(&self.pool)
            .await?;
        const T: &str = "revisions";
        row.map(|row| {
            Ok(RevisionRecord {
                project: column(&row, T, "project")?,
                revision: column::<i64>(&row, T, "revision")? as u32,
                spec: column(&row, T, "spec")?,
                files: json(&row, T, "files")?,
                created_at_ms: column(&row, T, "created_at_ms")?,
                author: column(&row, T, "author")?,
            })
        })
        .transpose()
    }

    async fn list_revisions(&self, name: &str) -> Result<Vec<RevisionSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT revision, created_at_ms, author FROM revisions WHERE project = $1 ORDER BY revision DESC",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        const T: &str = "revisions";
        rows.iter()
            .map(|row| {
                Ok(RevisionSummary {
                    revision: column::<i64>(row, T, "revision")? as u32,
                    created_at_ms: column(row, T, "created_at_ms")?,
                    author: column(row, T, "author")?,
                })
            })
            .collect()
    }

    async fn create_sandbox(
        &self,
        s: &SandboxRecord,
        keys: &[crate::KeyRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO sandboxes (id, project, revision, key_hash, seed, auth, label, created_at_ms, expires_at_ms, pinned, env, chaos, seeded_at_ms, webhook_schedule, owner, rate_limits, isolation, isolation_token)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
        )
        .bind(&s.id)
        .bind(&s.project)
        .bind(i64::from(s.revision))
        .bind(&s.key_hash)
        .bind(&s.seed)
        .bind(s.auth.as_str())
        .bind(&s.label)
        .bind(s.created_at_ms)
        .bind(s.expires_at_ms)
        .bind(i64::from(s.pinned))
        .bind(Value::Object(s.env.clone()).to_string())
        .bind(&s.chaos)
        .bind(s.seeded_at_ms)
        .bind(s.webhook_schedule.as_str())
        .bind(&s.owner)
        .bind(s.rate_limits.as_ref().map(|l| json!(l).to_string()))
        .bind(s.isolation.as_ref().map(|i| json!(i).to_string()))
        .bind(
            s.isolation
                .as_ref()
                .map(|i| self.sealer.seal(&i.instance_token)),
        )
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!("sandbox \"{}\"", s.id)));
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        for key in keys {
            super::keys::insert_key(key)?.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_sandbox(&self, id: &str) -> Result<Option<SandboxRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM sandboxes WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(|row| sandbox(&self.sealer, row))
            .transpose()
    }

    async fn list_sandboxes(&self) -> Result<Vec<SandboxRecord>, StoreError> {
        let rows = sqlx::query("SELECT * FROM sandboxes ORDER BY created_at_ms, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| sandbox(&self.sealer, row)).collect()
    }

    async fn delete_sandbox(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM sandboxes WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn touch_sandboxes(&self, active: &[(crate::SandboxId, i64)]) -> Result<(), StoreError> {
        let rows: Vec<(&str, i64)> = active.iter().map(|(id, at)| (id.as_str(), *at)).collect();
        touch_rows(
            &self.pool,
            "UPDATE sandboxes SET last_active_at_ms = CASE WHEN last_active_at_ms > $1 THEN last_active_at_ms ELSE $1 END WHERE id = $2",
            &rows,
        )
        .await
    }

    async fn expire_sandboxes(&self, now_ms: i64) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "DELETE FROM sandboxes WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= $1 RETURNING id, project, expires_at_ms",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.get(0);
            sqlx::query("INSERT INTO sandbox_tombstones (id, project, expired_at_ms) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET project = excluded.project, expired_at_ms = excluded.expired_at_ms")
                .bind(&id)
                .bind(row.get::<String, _>(1))
                .bind(row.get::<i64, _>(2))
                .execute(&mut *tx)
                .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn get_tombstone(&self, id: &str) -> Result<Option<Tombstone>, StoreError> {
        let row = sqlx::query("SELECT * FROM sandbox_tombstones WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| Tombstone {
            id: row.get("id"),
            project: row.get("project"),
            expired_at_ms: row.get("expired_at_ms"),
        }))
    }

    async fn prune_tombstones(&self, before_ms: i64) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM sandbox_tombstones WHERE expired_at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }

    async fn set_sandbox_env(
        &self,
        id: &str,
        env: &serde_json::Map<String, Value>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE sandboxes SET env = $1 WHERE id = $2")
            .bind(json!(env).to_string())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn set_sandbox_scenario(
        &self,
        id: &str,
        scenario: Option<&str>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE sandboxes SET scenario = $1 WHERE id = $2")
            .bind(scenario)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn set_sandbox_expiry(
        &self,
        id: &str,
        expires_at_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE sandboxes SET expires_at_ms = $1 WHERE id = $2")
            .bind(expires_at_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn set_sandbox_chaos(&self, id: &str, chaos: Option<&str>) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE sandboxes SET chaos = $1 WHERE id = $2")
            .bind(chaos)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn set_sandbox_isolation(
        &self,
        id: &str,
        isolation: &crate::Isolation,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE sandboxes SET isolation = $1 WHERE id = $2")
            .bind(json!(isolation).to_string())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn set_sandbox_rate_limits(
        &self,
        id: &str,
        limits: Option<&sbx_engine::project::RateLimits>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query("UPDATE sandboxes SET rate_limits = $1 WHERE id = $2")
            .bind(limits.map(|l| json!(l).to_string()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn load_resources(&self, sandbox_id: &str) -> Result<Vec<ResourceRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM resources WHERE sandbox_id = $1 ORDER BY version")
            .bind(sandbox_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|row| ResourceRow {
                collection: row.get("collection"),
                id: row.get("id"),
                scope: row.get("scope"),
                seq: row.get::<i64, _>("seq") as u64,
                value: row.get("value"),
                version: row.get::<i64, _>("version") as u64,
            })
            .collect())
    }

    async fn save_changes(&self, batch: &[ChangeSet]) -> Result<(), StoreError> {
        if batch.iter().all(ChangeSet::is_empty) {
            return Ok(());
        }
        // Each statement is a round trip to the database: rows of every
        // request in the batch go in multi-row statements.
        let rows = latest_rows(batch);
        if rows.len() <= ROWS_PER_STATEMENT && batch.iter().all(ChangeSet::only_records) {
            // One statement is atomic on its own: no BEGIN and COMMIT, one
            // round trip instead of three (most writes only change records).
            return upsert_records(&self.pool, &rows).await;
        }
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            upsert_records(&mut *tx, chunk).await?;
        }
        let events = per_sandbox(batch, |c| &c.events);
        // The new events' ids come from the inserts themselves: reading
        // before writing would make the transaction upgrade its lock,
        // which SQLite refuses outright (SQLITE_BUSY) under concurrent
        // writers.
        let mut new_events = Vec::with_capacity(events.len());
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Db>::new(
                "INSERT INTO events (sandbox_id, event_type, payload, created_at_ms, origin) ",
            );
            insert.push_values(chunk, |mut values, (change, (event_type, payload, at))| {
                values
                    .push_bind(&change.sandbox_id)
                    .push_bind(event_type)
                    .push_bind(payload)
                    .push_bind(*at)
                    .push_bind(change.origin.as_ref().map(Origin::to_string));
            });
            insert.push(" RETURNING id");
            let ids: Vec<i64> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
            new_events.extend(ids);
        }
        fan_out(&mut tx, &new_events).await?;
        let answers = per_sandbox(batch, |c| &c.answers);
        for chunk in answers.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Db>::new(
                "INSERT INTO idempotency_keys (sandbox_id, key, fingerprint, status, headers, body, created_at_ms) ",
            );
            insert.push_values(chunk, |mut values, (change, answer)| {
                values
                    .push_bind(&change.sandbox_id)
                    .push_bind(&answer.key)
                    .push_bind(&answer.fingerprint)
                    .push_bind(i64::from(answer.status))
                    .push_bind(json!(answer.headers).to_string())
                    .push_bind(&answer.body)
                    .push_bind(answer.created_at_ms);
            });
            // The first answer to a key wins.
            insert.push(" ON CONFLICT (sandbox_id, key) DO NOTHING");
            insert.build().execute(&mut *tx).await?;
        }
        save_jobs(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear_resources(&self, sandbox_id: &str, seeded_at_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for table in ["resources", "jobs", "transitions"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE sandbox_id = $1"))
                .bind(sandbox_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE sandboxes SET seeded_at_ms = $1 WHERE id = $2")
            .bind(seeded_at_ms)
            .bind(sandbox_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn pending_jobs(
        &self,
        sandbox_id: &str,
        until_ms: Option<i64>,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE sandbox_id = $1 AND error IS NULL AND ran_at_ms IS NULL AND due_at_ms <= $2
             ORDER BY due_at_ms, seq LIMIT $3",
        )
        .bind(sandbox_id)
        .bind(until_ms.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job).collect()
    }

    async fn failed_jobs(
        &self,
        sandbox_id: &str,
        limit: u32,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM jobs WHERE sandbox_id = $1 AND error IS NOT NULL ORDER BY seq DESC LIMIT $2",
        )
        .bind(sandbox_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job).collect()
    }

    async fn next_jobs(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT sandbox_id, MIN(due_at_ms) FROM jobs WHERE error IS NULL AND ran_at_ms IS NULL GROUP BY sandbox_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn list_transitions(
        &self,
        sandbox_id: &str,
        collection: &str,
        resource_id: &str,
    ) -> Result<Vec<TransitionRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM transitions WHERE sandbox_id = $1 AND collection = $2 AND resource_id = $3 ORDER BY seq",
        )
        .bind(sandbox_id)
        .bind(collection)
        .bind(resource_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| TransitionRecord {
                collection: row.get("collection"),
                resource_id: row.get("resource_id"),
                from: row.get("from_state"),
                to: row.get("to_state"),
                at_ms: row.get("at_ms"),
                cause: row.get("cause"),
            })
            .collect())
    }

    async fn emit_event(
        &self,
        sandbox_id: &str,
        event_type: &str,
        payload: &str,
        created_at_ms: i64,
        origin: Option<&Origin>,
    ) -> Result<EventId, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO events (sandbox_id, event_type, payload, created_at_ms, origin) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(sandbox_id)
        .bind(event_type)
        .bind(payload)
        .bind(created_at_ms)
        .bind(origin.map(Origin::to_string))
        .fetch_one(&mut *tx)
        .await?;
        fan_out(&mut tx, &[id]).await?;
        tx.commit().await?;
        Ok(EventId(id))
    }

    async fn events_after(
        &self,
        sandbox_id: &str,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM events WHERE sandbox_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(sandbox_id)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event).collect()
    }

    async fn list_events(
        &self,
        sandbox_id: &str,
        limit: u32,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM events WHERE sandbox_id = $1 ORDER BY id DESC LIMIT $2")
                .bind(sandbox_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(event).collect()
    }

    async fn get_idempotent(
        &self,
        sandbox_id: &str,
        key: &str,
    ) -> Result<Option<IdempotentAnswer>, StoreError> {
        let row = sqlx::query("SELECT * FROM idempotency_keys WHERE sandbox_id = $1 AND key = $2")
            .bind(sandbox_id)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        const T: &str = "idempotency_keys";
        row.map(|row| {
            Ok(IdempotentAnswer {
                key: column(&row, T, "key")?,
                fingerprint: column(&row, T, "fingerprint")?,
                status: column::<i64>(&row, T, "status")? as u16,
                headers: json(&row, T, "headers")?,
                body: column(&row, T, "body")?,
                created_at_ms: column(&row, T, "created_at_ms")?,
            })
        })
        .transpose()
    }

    async fn idempotency_keys(
        &self,
        sandbox_id: Option<&str>,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT sandbox_id, key, created_at_ms FROM idempotency_keys
             WHERE CAST($1 AS TEXT) IS NULL OR sandbox_id = $1",
        )
        .bind(sandbox_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect())
    }

    async fn create_endpoint(&self, e: &EndpointRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, sandbox_id, url, events, description, secret, previous_secret, previous_secret_expires_ms, disabled_reason, failures_in_row, created_at_ms, faults)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&e.id)
        .bind(&e.sandbox_id)
        .bind(&e.url)
        .bind(json!(e.events).to_string())
        .bind(&e.description)
        .bind(self.sealer.seal(&e.secret))
        .bind(e.previous_secret.as_deref().map(|s| self.sealer.seal(s)))
        .bind(e.previous_secret_expires_ms)
        .bind(&e.disabled_reason)
        .bind(e.failures_in_row)
        .bind(e.created_at_ms)
        .bind(e.faults.as_ref().map(|f| json!(f).to_string()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_endpoints(&self, sandbox_id: &str) -> Result<Vec<EndpointRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ep WHERE ep.sandbox_id = $1 ORDER BY ep.created_at_ms, ep.id"
        ))
        .bind(sandbox_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| endpoint(&self.sealer, row)).collect()
    }

    async fn get_endpoint(
        &self,
        sandbox_id: &str,
        id: &str,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ep WHERE ep.sandbox_id = $1 AND ep.id = $2"
        ))
        .bind(sandbox_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|row| endpoint(&self.sealer, row))
            .transpose()
    }

    async fn update_endpoint(&self, e: &EndpointRecord) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE webhook_endpoints SET url = $1, events = $2, description = $3, secret = $4, previous_secret = $5,
               previous_secret_expires_ms = $6, disabled_reason = $7, failures_in_row = $8, faults = $9
             WHERE sandbox_id = $10 AND id = $11",
        )
        .bind(&e.url)
        .bind(json!(e.events).to_string())
        .bind(&e.description)
        .bind(self.sealer.seal(&e.secret))
        .bind(e.previous_secret.as_deref().map(|s| self.sealer.seal(s)))
        .bind(e.previous_secret_expires_ms)
        .bind(&e.disabled_reason)
        .bind(e.failures_in_row)
        .bind(e.faults.as_ref().map(|f| json!(f).to_string()))
        .bind(&e.sandbox_id)
        .bind(&e.id)
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected() > 0)
    }

    async fn delete_endpoint(&self, sandbox_id: &str, id: &str) -> Result<bool, StoreError> {
        let deleted =
            sqlx::query("DELETE FROM webhook_endpoints WHERE sandbox_id = $1 AND id = $2")
                .bind(sandbox_id)
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn due_deliveries(
        &self,
        sandbox_id: &str,
        until_ms: i64,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let rows = sqlx::query(&format!(
            "{DUE_DELIVERIES}
             WHERE d.sandbox_id = $1 AND d.state = 'pending' AND d.next_attempt_ms <= $2
               AND ep.disabled_reason IS NULL
             ORDER BY d.next_attempt_ms, d.id LIMIT $3"
        ))
        .bind(sandbox_id)
        .bind(until_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| due_delivery(&self.sealer, row))
            .collect()
    }

    async fn claim_deliveries(
        &self,
        sandbox_id: &str,
        until_ms: i64,
        limit: u32,
        claim: &DeliveryClaim,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let lock = dialect::SKIP_LOCKED;
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE deliveries SET claimed_by = $1, claimed_until_ms = $2
             WHERE id IN (
               SELECT d.id FROM deliveries d JOIN webhook_endpoints ep ON ep.id = d.endpoint_id
               WHERE d.sandbox_id = $3 AND d.state = 'pending' AND d.next_attempt_ms <= $4
                 AND ep.disabled_reason IS NULL
                 AND (d.claimed_until_ms IS NULL OR d.claimed_until_ms <= $5 OR d.claimed_by = $1)
               ORDER BY d.next_attempt_ms, d.id LIMIT $6{lock})
             RETURNING id"
        ))
        .bind(&claim.claimer)
        .bind(claim.until_ms)
        .bind(sandbox_id)
        .bind(until_ms)
        .bind(claim.now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut select = QueryBuilder::<Db>::new(format!("{DUE_DELIVERIES} WHERE d.id IN ("));
        let mut listed = select.separated(", ");
        for id in ids {
            listed.push_bind(id);
        }
        select.push(") ORDER BY d.next_attempt_ms, d.id");
        let rows = select.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| due_delivery(&self.sealer, row))
            .collect()
    }

    async fn next_deliveries(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT sandbox_id, MIN(next_attempt_ms) FROM deliveries WHERE state = 'pending' GROUP BY sandbox_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn record_attempt(&self, a: &AttemptRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO delivery_attempts (delivery_id, attempt, at_ms, request_headers, status, body_excerpt, latency_ms, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(a.delivery_id)
        .bind(a.attempt)
        .bind(a.at_ms)
        .bind(&a.request_headers)
        .bind(a.status.map(i64::from))
        .bind(&a.body_excerpt)
        .bind(a.latency_ms)
        .bind(&a.error)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deliveries SET state = $1, attempts = $2, next_attempt_ms = $3, last_status = $4, last_error = $5,
               claimed_by = NULL, claimed_until_ms = NULL
             WHERE id = $6",
        )
        .bind(a.state)
        .bind(a.attempt)
        .bind(a.next_attempt_ms)
        .bind(a.status.map(i64::from))
        .bind(&a.error)
        .bind(a.delivery_id)
        .execute(&mut *tx)
        .await?;
        let delivered = a.state == "delivered";
        sqlx::query(
            "UPDATE webhook_endpoints SET
               failures_in_row = CASE WHEN $1 THEN 0 ELSE failures_in_row + 1 END,
               disabled_reason = COALESCE($2, disabled_reason)
             WHERE id = $3",
        )
        .bind(delivered)
        .bind(&a.disable_endpoint)
        .bind(&a.endpoint_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_deliveries(
        &self,
        sandbox_id: &str,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id, d.endpoint_id, d.event_id, ev.event_type, d.state, d.attempts, d.next_attempt_ms, d.last_status, d.last_error
             FROM deliveries d JOIN events ev ON ev.id = d.event_id
             WHERE d.sandbox_id = $1 AND d.endpoint_id = $2 ORDER BY d.id DESC LIMIT $3",
        )
        .bind(sandbox_id)
        .bind(endpoint_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|row| DeliveryRecord {
                id: row.get("id"),
                endpoint_id: row.get("endpoint_id"),
                event_id: row.get("event_id"),
                event_type: row.get("event_type"),
                state: row.get("state"),
                attempts: row.get("attempts"),
                next_attempt_ms: row.get("next_attempt_ms"),
                last_status: row.get("last_status"),
                last_error: row.get("last_error"),
            })
            .collect())
    }

    async fn list_attempts(&self, delivery_id: i64) -> Result<Vec<AttemptView>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt, id",
        )
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await?;
        const T: &str = "delivery_attempts";
        rows.iter()
            .map(|row| {
                Ok(AttemptView {
                    attempt: column(row, T, "attempt")?,
                    at_ms: column(row, T, "at_ms")?,
                    request_headers: json(row, T, "request_headers")?,
                    status: column(row, T, "status")?,
                    body_excerpt: column(row, T, "body_excerpt")?,
                    latency_ms: column(row, T, "latency_ms")?,
                    error: column(row, T, "error")?,
                })
            })
            .collect()
    }

    async fn requeue_deliveries(
        &self,
        sandbox_id: &str,
        endpoint_id: &str,
        event_id: Option<EventId>,
        at_ms: i64,
    ) -> Result<u64, StoreError> {
        let updated = match event_id {
            Some(event_id) => sqlx::query(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_ms = $1, claimed_by = NULL, claimed_until_ms = NULL
                 WHERE sandbox_id = $2 AND endpoint_id = $3 AND event_id = $4",
            )
            .bind(at_ms)
            .bind(sandbox_id)
            .bind(endpoint_id)
            .bind(event_id),
            None => sqlx::query(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_ms = $1, claimed_by = NULL, claimed_until_ms = NULL
                 WHERE sandbox_id = $2 AND endpoint_id = $3 AND state = 'dead'",
            )
            .bind(at_ms)
            .bind(sandbox_id)
            .bind(endpoint_id),
        }
        .execute(&self.pool)
        .await?;
        Ok(updated.rows_affected())
    }

    async fn pending_delivery_count(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn save_logs(&self, logs: &[LogRecord], keep: u32) -> Result<(), StoreError> {
        if logs.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        dialect::insert_logs(&mut tx, logs).await?;
        // Each sandbox's count is a row, kept in the same transaction:
        // right whichever server writes, and retention deletes only the
        // excess instead of counting `keep` entries per batch. Sandboxes
        // in id order, so that concurrent writers lock their rows in one
        // order (never a deadlock).
        let mut added: std::collections::BTreeMap<&str, i64> = Default::default();
        for log in logs {
            *added.entry(&log.sandbox_id).or_default() += 1;
        }
        for (sandbox_id, added) in added {
            let held: i64 = sqlx::query_scalar(
                "INSERT INTO request_log_counts (sandbox_id, held) VALUES ($1, $2)
                 ON CONFLICT (sandbox_id) DO UPDATE SET held = request_log_counts.held + excluded.held
                 RETURNING held",
            )
            .bind(sandbox_id)
            .bind(added)
            .fetch_one(&mut *tx)
            .await?;
            let excess = held - i64::from(keep);
            if excess > 0 {
                let deleted = sqlx::query(
                    "DELETE FROM request_logs WHERE seq IN (
                       SELECT seq FROM request_logs WHERE sandbox_id = $1 ORDER BY seq LIMIT $2)",
                )
                .bind(sandbox_id)
                .bind(excess)
                .execute(&mut *tx)
                .await?;
                forget_logs(&mut tx, sandbox_id, deleted.rows_affected()).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_logs(
        &self,
        sandbox_id: &str,
        q: &LogQuery,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let mut select = QueryBuilder::<Db>::new("SELECT * FROM request_logs WHERE sandbox_id = ");
        select.push_bind(sandbox_id);
        if let Some((lowest, highest)) = q.status {
            select
                .push(" AND status BETWEEN ")
                .push_bind(lowest)
                .push(" AND ")
                .push_bind(highest);
        }
        if let Some(method) = &q.method {
            select.push(" AND method = ").push_bind(method);
        }
        if let Some(operation) = &q.operation {
            select.push(" AND operation = ").push_bind(operation);
        }
        if let Some(since) = q.since_ms {
            select.push(" AND at_ms >= ").push_bind(since);
        }
        if let Some(before) = q.before_seq {
            select.push(" AND seq < ").push_bind(before);
        }
        if let Some(text) = &q.text {
            let pattern = like_pattern(text);
            select
                .push(" AND (path ")
                .push(dialect::LIKE)
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR COALESCE(query, '') ")
                .push(dialect::LIKE)
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR request_body ")
                .push(dialect::LIKE)
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR response_body ")
                .push(dialect::LIKE)
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        match q.after_seq {
            Some(after) => select
                .push(" AND seq > ")
                .push_bind(after)
                .push(" ORDER BY seq ASC"),
            None => select.push(" ORDER BY seq DESC"),
        };
        select.push(" LIMIT ").push_bind(i64::from(q.limit));
        let rows = select.build().fetch_all(&self.pool).await?;
        rows.iter().map(log).collect()
    }

    async fn get_log(
        &self,
        sandbox_id: Option<&str>,
        request_id: &str,
    ) -> Result<Option<LogRecord>, StoreError> {
        let row = match sandbox_id {
            Some(sandbox_id) => sqlx::query(
                "SELECT * FROM request_logs WHERE sandbox_id = $1 AND request_id = $2 ORDER BY seq DESC LIMIT 1",
            )
            .bind(sandbox_id),
            None => sqlx::query(
                "SELECT * FROM request_logs WHERE request_id = $1 ORDER BY seq DESC LIMIT 1",
            ),
        }
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(log).transpose()
    }

    async fn prune_logs(&self, before_ms: i64) -> Result<u64, StoreError> {
        // Sandbox by sandbox, each delete's own count taken off its row:
        // exact however many servers prune at once.
        let sandboxes: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT sandbox_id FROM request_logs WHERE at_ms < $1 ORDER BY sandbox_id",
        )
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut pruned = 0;
        for sandbox_id in sandboxes {
            let mut tx = self.pool.begin().await?;
            let deleted =
                sqlx::query("DELETE FROM request_logs WHERE sandbox_id = $1 AND at_ms < $2")
                    .bind(&sandbox_id)
                    .bind(before_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            forget_logs(&mut tx, &sandbox_id, deleted).await?;
            tx.commit().await?;
            pruned += deleted;
        }
        Ok(pruned)
    }

    async fn add_audit(&self, e: &AuditRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit (at_ms, actor, action, target, status, request_id, client, user_agent, resource, detail, owner)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(e.at_ms)
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.target)
        .bind(e.status)
        .bind(&e.request_id)
        .bind(&e.client)
        .bind(&e.user_agent)
        .bind(&e.resource)
        .bind(&e.detail)
        .bind(&e.owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn prune_audit(&self, before_ms: i64, keep: u64) -> Result<u64, StoreError> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        let deleted = sqlx::query(
            "DELETE FROM audit WHERE at_ms < $1
                OR seq <= (SELECT seq FROM audit ORDER BY seq DESC LIMIT 1 OFFSET $2)",
        )
        .bind(before_ms)
        .bind(keep)
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }

    async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let mut select = QueryBuilder::<Db>::new("SELECT * FROM audit WHERE seq < ");
        select.push_bind(q.before_seq.unwrap_or(i64::MAX));
        if let Some(owner) = &q.owner {
            select.push(" AND owner = ").push_bind(owner);
        }
        if let Some(actor) = &q.actor {
            select.push(" AND actor = ").push_bind(actor);
        }
        if let Some(action) = &q.action {
            select
                .push(" AND action ")
                .push(dialect::LIKE)
                .push_bind(like_pattern(action))
                .push(" ESCAPE '\\'");
        }
        if let Some(target) = &q.target {
            let pattern = like_pattern(target);
            select
                .push(" AND (target ")
                .push(dialect::LIKE)
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR COALESCE(resource, '') ")
                .push(dialect::LIKE)
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
        select.push(match q.outcome {
            None => "",
            Some(AuditOutcome::Succeeded) => " AND status < 400",
            Some(AuditOutcome::Refused) => " AND status IN (401, 403)",
            Some(AuditOutcome::Failed) => " AND status >= 400 AND status NOT IN (401, 403)",
        });
        if let Some(since) = q.since_ms {
            select.push(" AND at_ms >= ").push_bind(since);
        }
        if let Some(until) = q.until_ms {
            select.push(" AND at_ms < ").push_bind(until);
        }
        select
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::from(q.limit));
        let rows = select.build().fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|row| AuditRecord {
                seq: row.get("seq"),
                at_ms: row.get("at_ms"),
                actor: row.get("actor"),
                action: row.get("action"),
                target: row.get("target"),
                status: row.get("status"),
                request_id: row.get("request_id"),
                client: row.get("client"),
                user_agent: row.get("user_agent"),
                resource: row.get("resource"),
                detail: row.get("detail"),
                owner: row.get("owner"),
            })
            .collect())
    }

    async fn prune_idempotent(&self, before_ms: i64) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM idempotency_keys WHERE created_at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }

    async fn move_clock(&self, change: &ClockChange) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE sandboxes SET clock_offset_ms = $1, clock_frozen_ms = $2 WHERE id = $3",
        )
        .bind(change.offset_ms)
        .bind(change.frozen_ms)
        .bind(&change.sandbox_id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO clock_changes (sandbox_id, at_ms, from_ms, to_ms, change, request_id) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&change.sandbox_id)
        .bind(change.at_ms)
        .bind(change.from_ms)
        .bind(change.to_ms)
        .bind(&change.change)
        .bind(&change.request_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn timeline(
        &self,
        sandbox_id: &str,
        query: &TimelineQuery,
    ) -> Result<Vec<TimelineRecord>, StoreError> {
        super::timeline::timeline(&self.pool, sandbox_id, query).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn try_hold(
        &self,
        holder: &crate::Holder,
    ) -> Result<Option<Box<dyn crate::DatabaseHold>>, StoreError> {
        super::hold::try_hold(&self.pool, holder).await
    }

    async fn holder(&self) -> Result<Option<crate::Holder>, StoreError> {
        super::hold::holder(&self.pool).await
    }

    async fn watch_releases(&self) -> Result<Option<Box<dyn crate::ReleaseWatch>>, StoreError> {
        super::hold::watch_releases(&self.pool).await
    }

    async fn watch_changes(&self) -> Result<Option<Box<dyn crate::ChangeWatch>>, StoreError> {
        super::hold::watch_changes(&self.pool).await
    }

    async fn join(
        &self,
        member: &crate::Member,
    ) -> Result<Option<Box<dyn crate::Membership>>, StoreError> {
        super::hold::join(&self.pool, member).await
    }

    async fn members(&self) -> Result<Vec<crate::Member>, StoreError> {
        super::hold::members(&self.pool).await
    }

    async fn served_by(&self, sandbox_id: &str) -> Result<Option<crate::ServedBy>, StoreError> {
        super::hold::served_by(&self.pool, sandbox_id).await
    }

    async fn served_by_members(&self) -> Result<Vec<(String, crate::ServedBy)>, StoreError> {
        super::hold::served_by_members(&self.pool).await
    }

    async fn hand_over(
        &self,
        sandbox_id: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        super::hold::hand_over(&self.pool, sandbox_id, from, to).await
    }

    async fn sandboxes_per_server(&self) -> Result<Vec<(Option<String>, u64)>, StoreError> {
        super::hold::sandboxes_per_server(&self.pool).await
    }

    async fn sweep_members(&self) -> Result<Vec<String>, StoreError> {
        super::hold::sweep_members(&self.pool).await
    }

    async fn reseal_secrets(&self) -> Result<usize, StoreError> {
        self.reseal_all().await
    }
}

/// A `LIKE … ESCAPE '\'` pattern matching values that contain `text`
/// (case-insensitively: see [`dialect::LIKE`]).
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}
