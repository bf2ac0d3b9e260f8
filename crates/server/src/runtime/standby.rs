//! One active server per database. A server serves only while it holds
//! its database ([`sbx_store::DatabaseHold`]); another started on the same
//! database stands by — its probes say so, every other request answers
//! 503 `standby` naming the holder — and takes over when the holder lets
//! go (a graceful stop) or dies, rebuilding every sandbox from the
//! database as a restart does. A server that loses its hold stops at once,
//! so that two never write at the same time.

use std::{sync::atomic::Ordering, time::Duration};

use anyhow::Context;
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sbx_store::{DatabaseHold, Holder};
use tokio_util::sync::CancellationToken;

use crate::{
    app::{AppState, load_registry},
    http::error::ApiError,
    workers::{deliveries, reaper, scheduler},
};

/// How often a server standing by tries to take the database, and how
/// often the holder checks that its hold is still there.
const EVERY: Duration = Duration::from_secs(1);

/// Makes this server the active one: loads every sandbox, resumes code
/// sessions, and starts the background workers and the watch on the hold.
pub async fn activate(
    state: &AppState,
    hold: Box<dyn DatabaseHold>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    *state.hold.lock().await = Some(hold);
    load_registry(state).await?;
    crate::service::sessions::resume(state).await;
    state
        .idempotency
        .load()
        .await
        .context("indexing idempotency keys")?;
    let workers = &state.workers;
    workers.spawn(reaper::run(state.clone(), workers.stopping()));
    workers.spawn(scheduler::run(state.clone(), workers.stopping()));
    workers.spawn(deliveries::run(state.clone(), workers.stopping()));
    workers.spawn(watch(state.clone(), shutdown.clone()));
    state.active.store(true, Ordering::Release);
    Ok(())
}

/// Tries to take the database every second until it is this server's,
/// then activates it; stops trying when the server stops.
pub async fn stand_by(state: AppState, holder: Holder, shutdown: CancellationToken) {
    let stopping = state.workers.stopping();
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        let hold = match state.store.try_hold(&holder).await {
            Ok(Some(hold)) => hold,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, "taking the database failed; trying again");
                continue;
            }
        };
        tracing::info!(replica = %state.replica, "took the database: serving");
        if let Err(error) = activate(&state, hold, &shutdown).await {
            tracing::error!(error = %format!("{error:#}"), "taking over failed: stopping");
            shutdown.cancel();
        }
        return;
    }
}

/// Checks the hold every second; once it is lost (the database dropped
/// its connection), stops serving and stops the server: another may hold
/// the database by now.
async fn watch(state: AppState, shutdown: CancellationToken) {
    let stopping = state.workers.stopping();
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        let mut hold = state.hold.lock().await;
        let Some(held) = hold.as_mut() else { return };
        if let Err(error) = held.check().await {
            state.active.store(false, Ordering::Release);
            state.lost_hold.store(true, Ordering::Release);
            hold.take();
            tracing::error!(%error, "lost the hold on the database: stopping, so that only its new holder writes");
            shutdown.cancel();
            return;
        }
    }
}

/// The answer of a server that does not serve: 503 naming the server
/// that holds the database, if it said.
pub async fn refusal(state: &AppState) -> Response {
    let detail = match state.store.holder().await {
        Ok(Some(holder)) => format!(
            "this server is on standby: the database is served by {} at {} (since {})",
            holder.replica,
            holder.address,
            crate::app::rfc3339(holder.since_ms)
        ),
        _ => "this server is on standby: another server holds the database".to_owned(),
    };
    let mut response = ApiError::new(sbx_engine::ProblemType::Standby, detail).into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

/// Lets only the probes through while the server does not serve.
pub async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let probe = matches!(
        request.uri().path(),
        "/healthz" | "/readyz" | "/api/v1/health"
    );
    if probe || state.active.load(Ordering::Acquire) {
        next.run(request).await
    } else {
        refusal(&state).await
    }
}
