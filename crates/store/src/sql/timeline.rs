//! The sandbox timeline: one `UNION ALL` over the tables that record what
//! happened, in sandbox-time order.

use sqlx::{Pool, QueryBuilder};

use super::{
    Db, dialect,
    store::{column, json, origin},
};
use crate::{StoreError, TimelineKind, TimelineQuery, TimelineRecord};

/// Each kind's rows as `(kind, at_ms, real_at_ms, id, origin, detail, ord)`
/// (named in every part: any may come first), `at_ms` in sandbox time,
/// `detail` JSON text; `?S`, `?F`, `?U` stand for the sandbox id and the
/// time window, bound per part.
fn part(kind: TimelineKind) -> String {
    let object = dialect::JSON_OBJECT;
    match kind {
        TimelineKind::Clock => {
            format!(
                "SELECT 'clock' AS kind, from_ms AS at_ms, at_ms AS real_at_ms, CAST(seq AS TEXT) AS id,
                    CASE WHEN request_id IS NULL THEN NULL ELSE 'control:' || request_id END AS origin,
                    CAST({object}('change', change, 'from_ms', from_ms, 'to_ms', to_ms) AS TEXT) AS detail, seq AS ord
             FROM clock_changes WHERE sandbox_id = ?S AND from_ms >= ?F AND from_ms < ?U"
            )
        }
        TimelineKind::Request => {
            format!(
                "SELECT 'request' AS kind, COALESCE(sandbox_at_ms, at_ms) AS at_ms, at_ms AS real_at_ms,
                    request_id AS id, CAST(NULL AS TEXT) AS origin,
                    CAST({object}('method', method, 'path', path, 'status', status, 'operation', operation,
                                'scenario', scenario, 'chaos', chaos, 'latency_us', latency_us,
                                'idempotent_replay', replayed) AS TEXT) AS detail, seq AS ord
             FROM request_logs WHERE sandbox_id = ?S
               AND COALESCE(sandbox_at_ms, at_ms) >= ?F AND COALESCE(sandbox_at_ms, at_ms) < ?U"
            )
        }
        TimelineKind::Job => {
            format!(
                "SELECT 'job' AS kind, due_at_ms AS at_ms, CAST(NULL AS BIGINT) AS real_at_ms, id, origin,
                    CAST({object}('state', CASE WHEN error IS NOT NULL THEN 'failed'
                                              WHEN ran_at_ms IS NOT NULL THEN 'ran' ELSE 'pending' END,
                                'action', json(action), 'scheduled_at_ms', scheduled_at_ms, 'error', error) AS TEXT) AS detail,
                    seq AS ord
             FROM jobs WHERE sandbox_id = ?S AND due_at_ms >= ?F AND due_at_ms < ?U"
            )
        }
        TimelineKind::Transition => {
            format!(
                "SELECT 'transition' AS kind, at_ms, CAST(NULL AS BIGINT) AS real_at_ms, collection || '/' || resource_id AS id, origin,
                    CAST({object}('collection', collection, 'id', resource_id, 'from', from_state,
                                'to', to_state, 'cause', cause) AS TEXT) AS detail, seq AS ord
             FROM transitions WHERE sandbox_id = ?S AND at_ms >= ?F AND at_ms < ?U"
            )
        }
        TimelineKind::Event => {
            format!(
                "SELECT 'event' AS kind, created_at_ms AS at_ms, CAST(NULL AS BIGINT) AS real_at_ms, CAST(id AS TEXT) AS id, origin,
                    CAST({object}('type', event_type) AS TEXT) AS detail, id AS ord
             FROM events WHERE sandbox_id = ?S AND created_at_ms >= ?F AND created_at_ms < ?U"
            )
        }
        TimelineKind::Delivery => {
            format!(
                "SELECT 'delivery' AS kind, a.at_ms AS at_ms, CAST(NULL AS BIGINT) AS real_at_ms, d.id || '/' || a.attempt AS id,
                    'event:' || d.event_id AS origin,
                    CAST({object}('endpoint', d.endpoint_id, 'attempt', a.attempt, 'status', a.status,
                                'error', a.error, 'latency_ms', a.latency_ms) AS TEXT) AS detail, a.id AS ord
             FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.sandbox_id = ?S AND a.at_ms >= ?F AND a.at_ms < ?U"
            )
        }
    }
}

pub(crate) async fn timeline(
    pool: &Pool<Db>,
    sandbox_id: &str,
    query: &TimelineQuery,
) -> Result<Vec<TimelineRecord>, StoreError> {
    let mut sql = QueryBuilder::<Db>::new("SELECT * FROM (");
    for (index, kind) in query.kinds.iter().enumerate() {
        if index > 0 {
            sql.push(" UNION ALL ");
        }
        // Binds in the order the placeholders appear.
        let text = part(*kind);
        let mut rest = text.as_str();
        while let Some(at) = rest.find('?') {
            sql.push(&rest[..at]);
            match &rest[at + 1..at + 2] {
                "S" => sql.push_bind(sandbox_id.to_owned()),
                "F" => sql.push_bind(query.since_ms),
                _ => sql.push_bind(query.until_ms),
            };
            rest = &rest[at + 2..];
        }
        sql.push(rest);
    }
    // Same instant: in causal order — a request (or job), the transitions
    // and events it made, their deliveries; a clock move last, for on a
    // frozen clock what came before it shares its starting instant.
    sql.push(
        ") AS entries ORDER BY at_ms, CASE kind WHEN 'request' THEN 0 WHEN 'job' THEN 1 WHEN 'transition' THEN 2
           WHEN 'event' THEN 3 WHEN 'delivery' THEN 4 ELSE 5 END, ord LIMIT ",
    );
    sql.push_bind(i64::from(query.limit));
    let rows = sql.build().fetch_all(pool).await?;
    const T: &str = "timeline";
    rows.iter()
        .map(|row| {
            let kind: String = column(row, T, "kind")?;
            Ok(TimelineRecord {
                kind: TimelineKind::ALL
                    .into_iter()
                    .find(|k| k.name() == kind)
                    .ok_or_else(|| StoreError::Corrupt {
                        table: T,
                        key: kind.clone(),
                        column: "kind",
                        cause: "not a kind of entry".to_owned(),
                    })?,
                at_ms: column(row, T, "at_ms")?,
                real_at_ms: column(row, T, "real_at_ms")?,
                id: column(row, T, "id")?,
                origin: origin(row, T)?,
                detail: json(row, T, "detail")?,
            })
        })
        .collect()
}
