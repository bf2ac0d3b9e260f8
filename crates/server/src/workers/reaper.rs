//! Removes expired sandboxes (database rows and memory), leaving tombstones
//! so their addresses keep answering "expired" for a while.

use std::sync::atomic::{AtomicI64, Ordering};

use tokio_util::sync::CancellationToken;

use crate::{
    app::{AppState, now_ms},
    runtime::usage::day_of,
    service::sandboxes,
};

/// How often old request-log entries, audit entries and past days' request
/// counts are pruned (scans).
const LOG_PRUNE_INTERVAL_MS: i64 = 10 * 60 * 1000;

pub async fn run(state: AppState, shutdown: CancellationToken) {
    let logs_pruned_at = AtomicI64::new(0);
    let period = state.config.reaper_interval;
    super::every(period, shutdown, || reap(&state, &logs_pruned_at)).await;
}

/// One round of the reaper, log and audit pruning included.
pub async fn reap_once(state: &AppState) {
    reap(state, &AtomicI64::new(0)).await;
}

/// Removes what expired; prunes the logs when they were last pruned (real
/// time, `logs_pruned_at`) long enough ago.
async fn reap(state: &AppState, logs_pruned_at: &AtomicI64) {
    let now = now_ms();
    crate::service::sessions::reap(state, now).await;
    state.functions.sweep(state).await;
    {
        let _removing = state.removals.lock().await;
        if let Err(error) = sandboxes::expire(state, now).await {
            tracing::warn!(%error, "reaping expired sandboxes failed; retrying next tick");
        }
    }
    // Revoked and expired tokens stay listed for a month.
    if let Err(error) = state.store.prune_tokens(now - 30 * 24 * 3600 * 1000).await {
        tracing::warn!(%error, "pruning ended sessions and tokens failed");
    }
    if now - logs_pruned_at.load(Ordering::Relaxed) >= LOG_PRUNE_INTERVAL_MS {
        logs_pruned_at.store(now, Ordering::Relaxed);
        // Only today's requests count against quotas; yesterday's are kept
        // for a server that saves them late.
        let yesterday = i64::try_from(day_of(now)).unwrap_or(i64::MAX) - 1;
        if let Err(error) = state.store.prune_requests(yesterday).await {
            tracing::warn!(%error, "pruning past days' request counts failed");
        }
        if let Err(error) = state
            .store
            .prune_logs(now - state.config.request_log_limits.retention_ms())
            .await
        {
            tracing::warn!(%error, "pruning the request log failed");
        }
        let audit = &state.config.audit;
        if let Err(error) = state
            .store
            .prune_audit(now - audit.retention_ms(), audit.keep_entries)
            .await
        {
            tracing::warn!(%error, "pruning the audit log failed");
        }
    }
    let horizon = now - crate::data_plane::idempotency::KEY_TTL_MS;
    match state.store.prune_idempotent(horizon).await {
        Ok(_) => state.idempotency.forget_before(horizon),
        Err(error) => tracing::warn!(%error, "pruning idempotency keys failed"),
    }
}
