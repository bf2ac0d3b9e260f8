//! Removes expired sandboxes (database rows and memory), leaving tombstones
//! so their addresses keep answering "expired" for a while.

use tokio_util::sync::CancellationToken;

use crate::{
    app::{AppState, now_ms},
    service::sandboxes,
};

/// How often old request-log entries are pruned (a scan of the log).
const LOG_PRUNE_INTERVAL_MS: i64 = 10 * 60 * 1000;

pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut interval = tokio::time::interval(state.config.reaper_interval);
    let mut logs_pruned_at = 0;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = interval.tick() => reap(&state, &mut logs_pruned_at).await,
        }
    }
}

/// One round of the reaper, log and audit pruning included.
pub async fn reap_once(state: &AppState) {
    reap(state, &mut 0).await;
}

async fn reap(state: &AppState, logs_pruned_at: &mut i64) {
    let now = now_ms();
    if let Err(error) = sandboxes::expire(state, now).await {
        tracing::warn!(%error, "reaping expired sandboxes failed; retrying next tick");
    }
    if now - *logs_pruned_at >= LOG_PRUNE_INTERVAL_MS {
        *logs_pruned_at = now;
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
