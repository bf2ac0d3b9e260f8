//! One active server per database. A server serves only while it holds
//! its database ([`sbx_store::DatabaseHold`]: a lease it renews every
//! second); another started on the same database stands by: it forwards
//! every request to the holder (at the address the holder wrote), so any
//! of them can sit behind a load balancer, and takes over when the holder
//! lets go (a graceful stop) or its lease runs out (it died, was paused or
//! was cut off), rebuilding every sandbox from the database as a restart
//! does. Two never serve at once: the holder stops answering when its
//! lease may have run out ([`LocalLease`]), the database refuses a former
//! holder's writes (fencing), and a server that finds its hold taken
//! stops.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{
    body::Bytes,
    extract::{Request, State},
    http::HeaderName,
    middleware::Next,
    response::{IntoResponse, Response},
};
use sbx_store::{DatabaseHold, Holder, StoreError};
use tokio_util::sync::CancellationToken;

use crate::{
    app::{AppState, load_registry},
    http::error::ApiError,
    workers::{deliveries, reaper, scheduler},
};

/// How often a server standing by tries to take the database, and how
/// often the holder checks that its hold is still there.
const EVERY: Duration = Duration::from_secs(1);

/// Makes this server the active one: re-seals stored secrets under the
/// current key, loads every sandbox, resumes code sessions, and starts the
/// background workers and the renewal of the hold.
///
/// `asked` is when the hold was asked for: its lease counts from then. The
/// lease is renewed from the start, however long loading takes.
pub async fn activate(
    state: &AppState,
    hold: Box<dyn DatabaseHold>,
    asked: Instant,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    // A member taking the database serves every sandbox it served, and
    // more, as the holder.
    crate::runtime::members::leave(state).await;
    state.lease.extend(asked, hold.lease());
    state.metrics.holding(hold.epoch());
    *state.hold.lock().await = Some(hold);
    let workers = &state.workers;
    workers.spawn(renew(state.clone(), shutdown.clone()));
    let resealed = state
        .store
        .reseal_secrets()
        .await
        .context("re-sealing stored secrets under the current secrets key")?;
    if resealed > 0 {
        tracing::info!(
            resealed,
            "stored secrets re-sealed under the current secrets key"
        );
    }
    load_registry(state).await?;
    crate::workers::note_pending(state).await;
    crate::service::sessions::resume(state).await;
    state
        .idempotency
        .load(None)
        .await
        .context("indexing idempotency keys")?;
    workers.spawn(reaper::run(state.clone(), workers.stopping()));
    start_sandbox_workers(state);
    workers.spawn(crate::runtime::members::sweep(
        state.clone(),
        workers.stopping(),
    ));
    if let Some(namespaces) = state.namespaces.clone() {
        workers.spawn(crate::workers::namespaces::run(
            state.clone(),
            namespaces,
            workers.stopping(),
        ));
    }
    // Unless its renewal found the database taken while it loaded.
    if !state.lost_hold.load(Ordering::Acquire) {
        state.active.store(true, Ordering::Release);
    }
    Ok(())
}

/// Starts the workers running the jobs, deliveries and upkeep of the
/// sandboxes this server serves, following other servers' changes, and spreading
/// sandboxes, once (as a member, then as the holder).
pub fn start_sandbox_workers(state: &AppState) {
    state.sandbox_workers.call_once(|| {
        let workers = &state.workers;
        workers.spawn(scheduler::run(state.clone(), workers.stopping()));
        workers.spawn(deliveries::run(state.clone(), workers.stopping()));
        workers.spawn(crate::workers::upkeep::run(
            state.clone(),
            workers.stopping(),
        ));
        workers.spawn(crate::runtime::members::follow(
            state.clone(),
            workers.stopping(),
        ));
        if state.config.spread_sandboxes {
            workers.spawn(crate::runtime::moves::rebalance(
                state.clone(),
                workers.stopping(),
            ));
        }
    });
}

/// Whether this server answers requests itself: it took its database and
/// its lease has surely not run out.
pub fn serves(state: &AppState) -> bool {
    state.active.load(Ordering::Acquire) && state.lease.holds()
}

/// The holder's own view of its lease, in its monotonic clock: a renewal
/// asked for at `t` holds until `t + lease` less a margin for clock drift,
/// and the database's lease ends after that. A holder that was paused
/// (SIGSTOP, a stalled VM) wakes past it and answers nothing more until a
/// renewal succeeds — by then another server may have taken over, and the
/// renewal says so.
pub struct LocalLease {
    started: Instant,
    /// Milliseconds after `started` until which it holds; 0: never
    /// taken; `u64::MAX`: a database no other server can take.
    until_ms: AtomicU64,
}

/// Taken off the lease for clock drift between this host and the
/// database's.
const DRIFT_MARGIN: Duration = Duration::from_millis(250);

impl Default for LocalLease {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            until_ms: AtomicU64::new(0),
        }
    }
}

impl LocalLease {
    pub(crate) fn holds(&self) -> bool {
        let until = self.until_ms.load(Ordering::Acquire);
        until == u64::MAX || (self.started.elapsed().as_millis() as u64) < until
    }

    /// Extends the lease after a renewal asked for at `asked`.
    pub(crate) fn extend(&self, asked: Instant, lease: Option<Duration>) {
        let until = match lease {
            None => u64::MAX,
            Some(lease) => {
                let until =
                    (asked + lease.saturating_sub(DRIFT_MARGIN)).duration_since(self.started);
                until.as_millis() as u64
            }
        };
        self.until_ms.fetch_max(until, Ordering::AcqRel);
    }

    /// How long ago the lease ran out, if it did.
    fn lapsed_for(&self) -> Option<Duration> {
        let until = self.until_ms.load(Ordering::Acquire);
        (until != u64::MAX)
            .then(|| {
                self.started
                    .elapsed()
                    .checked_sub(Duration::from_millis(until))
            })
            .flatten()
    }
}

/// Tries to take the database every second, and at once when the holder
/// says it let go, until it is this server's; then activates it. Stops
/// trying when the server stops.
pub async fn stand_by(state: AppState, holder: Holder, shutdown: CancellationToken) {
    let stopping = state.workers.stopping();
    let mut releases = match state.store.watch_releases().await {
        Ok(releases) => releases,
        Err(error) => {
            tracing::warn!(%error, "listening for the holder's release failed: trying every second only");
            None
        }
    };
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
            () = released(releases.as_deref_mut()) => {}
        }
        let holder = Holder {
            since_ms: crate::app::now_ms(),
            ..holder.clone()
        };
        let asked = Instant::now();
        let hold = match state.store.try_hold(&holder).await {
            Ok(Some(hold)) => hold,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, "taking the database failed; trying again");
                continue;
            }
        };
        tracing::info!(replica = %state.replica, "took the database: serving");
        if let Err(error) = activate(&state, hold, asked, &shutdown).await {
            tracing::error!(error = %format!("{error:#}"), "taking over failed: stopping");
            shutdown.cancel();
        }
        return;
    }
}

/// Returns at the holder's next release; never without a watch.
async fn released(releases: Option<&mut (dyn sbx_store::ReleaseWatch + 'static)>) {
    match releases {
        Some(releases) => releases.next().await,
        None => std::future::pending().await,
    }
}

/// Renews the hold every second. A failed renewal (the database does not
/// answer, or restarts) is tried again each second, and the lease runs on
/// meanwhile; once the database says another server took the database,
/// stops serving and stops the server.
async fn renew(state: AppState, shutdown: CancellationToken) {
    let stopping = state.workers.stopping();
    let mut failing_since: Option<Instant> = None;
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        let mut hold = state.hold.lock().await;
        let Some(held) = hold.as_mut() else { return };
        let asked = Instant::now();
        match held.renew().await {
            Ok(()) => {
                state.lease.extend(asked, held.lease());
                state.metrics.hold_renewal("renewed");
                if let Some(since) = failing_since.take() {
                    tracing::info!(after = ?since.elapsed(), "renewed the hold on the database again");
                }
            }
            Err(StoreError::Fenced(why)) => {
                state.metrics.hold_renewal("fenced");
                state.metrics.holding(0);
                state.active.store(false, Ordering::Release);
                state.lost_hold.store(true, Ordering::Release);
                hold.take();
                tracing::error!(%why, "lost the hold on the database: stopping, so that only its new holder serves");
                shutdown.cancel();
                return;
            }
            Err(error) => {
                state.metrics.hold_renewal("failed");
                let since = *failing_since.get_or_insert(asked);
                let lapsed_for = state.lease.lapsed_for();
                tracing::warn!(%error, failing_for = ?since.elapsed(), ?lapsed_for, "renewing the hold on the database failed; trying again (serving nothing once its lease lapsed)");
            }
        }
    }
}

/// Marks a forwarded request (the value: who forwarded it): a server
/// standing by never forwards one again.
pub(crate) const FORWARDED_BY: HeaderName = HeaderName::from_static("x-sbx-forwarded-by");

/// How a server standing by reaches the holder: one connection pool, and
/// the holder as read at most a second ago.
pub struct Forwarder {
    pub(crate) client: crate::http::proxy::Client,
    holder: tokio::sync::Mutex<Option<(Instant, Holder)>>,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self {
            client: crate::http::proxy::client(),
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

/// The server holding the database, as read at most a second ago.
pub async fn holder(state: &AppState) -> Option<Holder> {
    state.forwarder.holder(state).await
}

/// How long a request this server does not serve waits for a holder to
/// take it: a graceful handover (the holder stops, another takes over and
/// loads) takes about a second.
const HANDOVER: Duration = Duration::from_secs(5);
/// The largest request body kept so that the request can be sent again
/// when the holder could not be reached (nothing was sent); larger ones
/// are streamed, once.
const REPLAYABLE_BODY: usize = 1 << 20;
/// How often a waiting request looks for the holder again.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// What became of a request passed to [`forward`].
pub enum Forwarded {
    /// The answer: the holder's, or 503 `standby`.
    Answered(Response),
    /// This server took the database meanwhile and serves it: the request
    /// is to be handled here.
    Mine(Request),
}

/// Passes `request` to the server holding the database and its answer
/// back, streamed both ways. Through a handover — the holder stopped,
/// another is taking over — it waits up to [`HANDOVER`] and sends the
/// request again (when nothing of it was sent and its body is small):
/// to the new holder, or back to the caller when that is this server.
/// 503 `standby` when no holder answers.
pub async fn forward(state: &AppState, request: Request) -> Forwarded {
    let (parts, body) = request.into_parts();
    if parts.headers.contains_key(FORWARDED_BY) {
        // Sent here by a server that took this one for the holder: never
        // passed on again.
        return Forwarded::Answered(refusal(state, None, "another server holds the database"));
    }
    // Known from the framing (Content-Length, or an HTTP/2 stream's end).
    let length = axum::body::HttpBody::size_hint(&body).exact();
    let (mut streamed, replayable) = match length {
        Some(0) => (None, Some(Bytes::new())),
        Some(length) if length <= REPLAYABLE_BODY as u64 => {
            match axum::body::to_bytes(body, REPLAYABLE_BODY).await {
                Ok(bytes) => (None, Some(bytes)),
                Err(_) => {
                    return Forwarded::Answered(
                        ApiError::bad_request("the request body could not be read").into_response(),
                    );
                }
            }
        }
        _ => (Some(body), None),
    };
    let deadline = Instant::now() + HANDOVER;
    loop {
        let holder = state.forwarder.holder(state).await;
        match &holder {
            Some(holder) if holder.replica == *state.replica && serves(state) => {
                let body = replayable.map_or_else(axum::body::Body::empty, axum::body::Body::from);
                return Forwarded::Mine(Request::from_parts(parts, body));
            }
            // Taking over (loading its sandboxes), or renewing its lease.
            Some(holder) if holder.replica == *state.replica => {}
            Some(holder) => {
                // A streamed body goes once: a failure below returns.
                let body = match (&replayable, streamed.take()) {
                    (Some(bytes), _) => axum::body::Body::from(bytes.clone()),
                    (None, Some(body)) => body,
                    (None, None) => {
                        return Forwarded::Answered(refusal(
                            state,
                            Some(holder),
                            "its body was already sent",
                        ));
                    }
                };
                match send_to(state, &parts, holder, body).await {
                    Ok(response) => return Forwarded::Answered(response),
                    // Refused before anything was sent: the holder stopped.
                    Err(error) if error.is_connect() && replayable.is_some() => {
                        state.forwarder.forget().await;
                    }
                    Err(error) => {
                        state.forwarder.forget().await;
                        tracing::warn!(%error, holder = %holder.replica, "forwarding to the holder failed");
                        return Forwarded::Answered(refusal(
                            state,
                            Some(holder),
                            "it does not answer",
                        ));
                    }
                }
            }
            None => {}
        }
        if Instant::now() >= deadline {
            return Forwarded::Answered(refusal(
                state,
                holder.as_ref(),
                &format!("no server served it within {HANDOVER:?}"),
            ));
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// Sends `parts` and `body` to `holder` once: its answer streamed back, or
/// why none came.
async fn send_to(
    state: &AppState,
    parts: &axum::http::request::Parts,
    holder: &Holder,
    body: axum::body::Body,
) -> Result<Response, crate::http::proxy::ProxyError> {
    let mut headers = parts.headers.clone();
    if let Ok(replica) = axum::http::HeaderValue::from_str(&state.replica) {
        headers.insert(FORWARDED_BY, replica);
    }
    let sent = crate::http::proxy::send(
        &state.forwarder.client,
        &holder.address,
        parts,
        headers,
        body,
    );
    // A paused holder accepts connections and never answers: the wait
    // ends when another server takes the database.
    let answer = tokio::select! {
        sent = sent => sent?,
        () = replaced(state, holder) => {
            return Ok(refusal(state, Some(holder), "another server took the database while it had this request"));
        }
    };
    state.metrics.forwarding("forwarded");
    Ok(crate::http::proxy::answer(answer))
}

/// Returns once the database is held by another server than `holder`
/// (or under another takeover), checking every second.
async fn replaced(state: &AppState, holder: &Holder) {
    loop {
        tokio::time::sleep(EVERY).await;
        // Unknown (the database does not answer) is not replaced.
        if let Some(now) = state.forwarder.holder(state).await
            && (now.replica != holder.replica || now.epoch != holder.epoch)
        {
            return;
        }
    }
}

/// 503 `standby`: this server does not serve, and why it cannot pass the
/// request on.
fn refusal(state: &AppState, holder: Option<&Holder>, why: &str) -> Response {
    state.metrics.forwarding("refused");
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
/// and sends everything else where it is answered.
pub async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let own = matches!(
        request.uri().path(),
        "/healthz" | "/readyz" | "/api/v1/health" | "/metrics"
    );
    if own {
        return next.run(request).await;
    }
    match answered_elsewhere(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(response) => response,
    }
}

/// A request this server answers itself (`Ok`), or the answer of the
/// server that does: the holder answers everything, a member its own
/// sandboxes; a member sends another member's sandbox straight to it and
/// the rest to the holder.
pub async fn answered_elsewhere(state: &AppState, request: Request) -> Result<Request, Response> {
    use crate::runtime::members::{Route, answers_at_once, pass_to, route};
    if serves(state) || answers_at_once(state, &request) {
        return Ok(request);
    }
    match route(state, &request).await {
        Route::Here => Ok(request),
        Route::Member(served, id) | Route::Moved(served, id) => {
            Err(pass_to(state, &served, &id, request).await)
        }
        Route::Holder => match forward(state, request).await {
            Forwarded::Answered(response) => Err(response),
            Forwarded::Mine(request) => Ok(request),
        },
    }
}
