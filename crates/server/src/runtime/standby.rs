//! One active server per database. A server serves only while it holds
//! its database ([`sbx_store::DatabaseHold`]); another started on the same
//! database stands by: it forwards every request to the holder (at the
//! address the holder wrote), so any of them can sit behind a load
//! balancer, and takes over when the holder lets go (a graceful stop) or
//! dies, rebuilding every sandbox from the database as a restart does. A
//! server that loses its hold stops at once, so that two never write at
//! the same time.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

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
        let holder = Holder {
            since_ms: crate::app::now_ms(),
            ..holder.clone()
        };
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

/// How long the hold's check may take: a database that does not answer
/// (a partition drops packets, it does not refuse them) counts as lost —
/// well before PostgreSQL gives the lock to another (its keepalives on the
/// hold's connection notice a dead holder after about 11 s).
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Checks the hold every second; once it is lost (the database dropped
/// its connection, or does not answer on it), stops serving and stops the
/// server: another may hold the database by now.
async fn watch(state: AppState, shutdown: CancellationToken) {
    let stopping = state.workers.stopping();
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        let mut hold = state.hold.lock().await;
        let Some(held) = hold.as_mut() else { return };
        let checked = tokio::time::timeout(CHECK_TIMEOUT, held.check()).await;
        if let Some(error) = match checked {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
        } {
            state.active.store(false, Ordering::Release);
            state.lost_hold.store(true, Ordering::Release);
            hold.take();
            tracing::error!(%error, "lost the hold on the database: stopping, so that only its new holder writes");
            shutdown.cancel();
            return;
        }
    }
}

/// Marks a forwarded request (the value: who forwarded it): a server
/// standing by never forwards one again.
const FORWARDED_BY: &str = "x-sbx-forwarded-by";

/// How a server standing by reaches the holder: one connection pool, and
/// the holder as read at most a second ago.
pub struct Forwarder {
    client: reqwest::Client,
    holder: tokio::sync::Mutex<Option<(Instant, Holder)>>,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self {
            client: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a plain HTTP client builds"),
            holder: Default::default(),
        }
    }
}

impl Forwarder {
    /// The holder, read again once a second (or after a failed forward).
    async fn holder(&self, state: &AppState) -> Option<Holder> {
        let mut cached = self.holder.lock().await;
        if let Some((read, holder)) = cached.as_ref()
            && read.elapsed() < EVERY
        {
            return Some(holder.clone());
        }
        let holder = state.store.holder().await.ok().flatten()?;
        *cached = Some((Instant::now(), holder.clone()));
        Some(holder)
    }

    async fn forget(&self) {
        self.holder.lock().await.take();
    }
}

/// Passes `request` to the server holding the database and its answer
/// back, streamed both ways; 503 `standby` when there is none to reach.
pub async fn forward(state: &AppState, request: Request) -> Response {
    let forwarder = &state.forwarder;
    let holder = match forwarder.holder(state).await {
        Some(holder)
            if holder.replica != *state.replica
                && !request.headers().contains_key(FORWARDED_BY) =>
        {
            holder
        }
        _ => return refusal(None, "another server holds the database"),
    };
    let (parts, body) = request.into_parts();
    let target = format!(
        "{}{}",
        holder.address.trim_end_matches('/'),
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut headers = parts.headers;
    for name in sbx_engine::CONNECTION_HEADERS {
        headers.remove(name);
    }
    if let Ok(replica) = axum::http::HeaderValue::from_str(&state.replica) {
        headers.insert(FORWARDED_BY, replica);
    }
    let sent = forwarder
        .client
        .request(parts.method, &target)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    match sent {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if !sbx_engine::CONNECTION_HEADERS.contains(&name.as_str()) {
                    response = response.header(name, value);
                }
            }
            response
                .body(axum::body::Body::from_stream(answer.bytes_stream()))
                .unwrap_or_else(|_| {
                    ApiError::internal("the holder's answer could not be passed on").into_response()
                })
        }
        Err(error) => {
            forwarder.forget().await;
            tracing::warn!(%error, holder = %holder.replica, "forwarding to the holder failed");
            refusal(Some(&holder), "it does not answer")
        }
    }
}

/// 503 `standby`: this server does not serve, and why it cannot pass the
/// request on.
fn refusal(holder: Option<&Holder>, why: &str) -> Response {
    let detail = match holder {
        Some(holder) => format!(
            "this server is on standby: the database is served by {} at {} (since {}), but {why}",
            holder.replica,
            holder.address,
            crate::app::rfc3339(holder.since_ms)
        ),
        None => format!("this server is on standby: {why}"),
    };
    ApiError::standby(detail).into_response()
}

/// While the server does not serve, answers its own probes and metrics
/// and forwards everything else to the holder.
pub async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let own = matches!(
        request.uri().path(),
        "/healthz" | "/readyz" | "/api/v1/health" | "/metrics"
    );
    if own || state.active.load(Ordering::Acquire) {
        next.run(request).await
    } else {
        forward(&state, request).await
    }
}
