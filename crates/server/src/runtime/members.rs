//! Sandboxes served by members: servers sharing the database with its
//! holder that serve sandboxes of their own (`spread_sandboxes`). The
//! holder still answers everything else (projects, accounts, the portal,
//! sandbox listings) and keeps a copy of each member's sandbox for those
//! views; a member serves its sandboxes' data plane and their
//! `/api/v1/sandboxes/{id}…` calls from memory, runs their jobs and
//! deliveries, and writes for them while its lease lasts. When a member's
//! lease runs out, the holder sweeps it (the database then refuses its
//! writes) and serves its sandboxes again, rebuilt from the database.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
};
use sbx_store::{Change, Member, ServedBy, StoreError};
use tokio_util::sync::CancellationToken;

use crate::{
    app::AppState,
    http::error::ApiError,
    runtime::{registry::LiveSandbox, standby::FORWARDED_BY},
};

/// How often leases are renewed and the holder sweeps lapsed members.
const EVERY: Duration = Duration::from_secs(1);

/// Joins the database's members, when it has any (PostgreSQL), and starts
/// serving the sandboxes the holder gives this server.
pub async fn join(state: &AppState, address: &str, shutdown: &CancellationToken) {
    let member = Member {
        replica: state.replica.to_string(),
        address: address.to_owned(),
    };
    let asked = Instant::now();
    let membership = match state.store.join(&member).await {
        Ok(Some(membership)) => membership,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "joining the members failed: forwarding every request to the holder");
            return;
        }
    };
    state.member_lease.extend(asked, Some(membership.lease()));
    *state.membership.lock().await = Some(membership);
    let workers = &state.workers;
    workers.spawn(renew(state.clone(), shutdown.clone()));
    crate::runtime::standby::start_sandbox_workers(state);
}

/// Leaves the members (a graceful stop, or this server took the
/// database): its sandboxes go back to the holder.
pub async fn leave(state: &AppState) {
    if let Some(membership) = state.membership.lock().await.take() {
        membership.leave().await;
    }
}

/// Renews the membership every second; once the holder swept this
/// server, it stops: its sandboxes are served elsewhere.
async fn renew(state: AppState, shutdown: CancellationToken) {
    let stopping = state.workers.stopping();
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        let mut membership = state.membership.lock().await;
        let Some(held) = membership.as_mut() else {
            return;
        };
        let asked = Instant::now();
        match held.renew().await {
            Ok(()) => {
                state.metrics.member_renewal("renewed");
                state.member_lease.extend(asked, Some(held.lease()));
            }
            Err(StoreError::Fenced(why)) => {
                state.metrics.member_renewal("fenced");
                membership.take();
                state
                    .lost_hold
                    .store(true, std::sync::atomic::Ordering::Release);
                tracing::error!(%why, "no longer a member: stopping, so that only the sandboxes' new server serves them");
                shutdown.cancel();
                return;
            }
            Err(error) => {
                state.metrics.member_renewal("failed");
                tracing::warn!(%error, "renewing the membership failed; trying again (serving nothing once its lease lapsed)");
            }
        }
    }
}

/// Follows the changes other servers make: a new revision is served by
/// this server's sandboxes that follow their project, a deleted sandbox
/// (or the holder's copy of it) is dropped, and after a reconnection
/// everything is read again. Nothing to follow on SQLite.
pub async fn follow(state: AppState, shutdown: CancellationToken) {
    let mut changes = match state.store.watch_changes().await {
        Ok(Some(changes)) => changes,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "listening for other servers' changes failed: new revisions reach this server's sandboxes when it restarts");
            return;
        }
    };
    loop {
        let change = tokio::select! {
            () = shutdown.cancelled() => return,
            change = changes.next() => change,
        };
        match change {
            Change::Revision(project) => follow_project(&state, &project).await,
            Change::SandboxGone(id) => forget(&state, &id),
            Change::SandboxMoved(id) => follow_move(&state, &id).await,
            Change::Missed => catch_up(&state).await,
        }
    }
}

/// Swaps this server's sandboxes that follow `project` to its latest
/// revision.
async fn follow_project(state: &AppState, project: &str) {
    let latest = match state.store.get_project(project).await {
        Ok(Some(record)) => record.latest_revision,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, %project, "reading a project's latest revision failed");
            return;
        }
    };
    match crate::service::projects::compiled_revision(state, project, latest).await {
        Ok(compiled) => {
            let swapped = state.registry.swap_project(project, latest, &compiled);
            tracing::info!(%project, revision = latest, sandboxes = swapped, "revision live");
        }
        Err(error) => tracing::warn!(%error, %project, "compiling a new revision failed"),
    }
}

/// After sandbox `id` moved between servers: this server serves it if it
/// is now its own, the holder's copy names its new server, and who
/// serves it is read again when next asked.
async fn follow_move(state: &AppState, id: &str) {
    state.owners.forget(id);
    let served = match state.store.served_by(id).await {
        Ok(Some(served)) => served,
        Ok(None) => return forget(state, id),
        Err(error) => {
            tracing::warn!(%error, sandbox = %id, "reading where a sandbox moved failed");
            return;
        }
    };
    let holder = crate::runtime::standby::serves(state);
    let mine = match &served.member {
        Some(member) => *member.replica == *state.replica,
        None => holder,
    };
    // Not held across the loads below: a move of it waits for holders.
    let stale_copy = state
        .registry
        .get(id)
        .is_none_or(|s| s.member() != served.member.as_ref());
    if mine {
        // Loaded now rather than at its first request.
        let _ = load_here(state, id).await;
    } else if holder
        && stale_copy
        && let Err(error) = load(state, id, served.member).await
    {
        tracing::warn!(sandbox = %id, error = %format!("{error:#}"), "refreshing the holder's copy failed");
    }
}

pub(crate) fn forget(state: &AppState, id: &str) {
    if state.registry.remove(id).is_some() {
        state.oauth.forget(id);
        state.receiver.forget(id);
    }
}

/// After changes may have been missed: drops what was deleted, follows
/// the copies of sandboxes that moved, and every project's latest
/// revision.
async fn catch_up(state: &AppState) {
    let mut projects = std::collections::BTreeSet::new();
    // Ids, not the sandboxes: a move waits for every holder of one.
    let known: Vec<_> = state
        .registry
        .all()
        .iter()
        .map(|s| (s.id.to_string(), s.project.to_string(), s.member().cloned()))
        .collect();
    for (id, project, member) in known {
        match state.store.served_by(&id).await {
            Ok(Some(served)) => {
                projects.insert(project);
                if member.is_some() && member != served.member {
                    follow_move(state, &id).await;
                }
            }
            Ok(None) => forget(state, &id),
            Err(error) => {
                tracing::warn!(%error, "catching up with the holder's changes failed");
                return;
            }
        }
    }
    for project in projects {
        follow_project(state, &project).await;
    }
}

/// Names the sandbox of a request the holder passes on to its member
/// (which may be yet to load it, and so to know its keys).
const PASSED_FOR: HeaderName = HeaderName::from_static("x-sbx-sandbox");

/// The sandbox a request addresses by its id: its path (`/sbx/{id}`,
/// `/api/v1/sandboxes/{id}…`) or Host, or as the holder passing it on
/// named it.
fn addressed<'a>(state: &AppState, request: &'a Request) -> Option<&'a str> {
    if request.headers().contains_key(FORWARDED_BY)
        && let Some(id) = request.headers().get(PASSED_FOR)
    {
        return id.to_str().ok();
    }
    let path = request.uri().path();
    let by_path = path
        .strip_prefix("/sbx/")
        .or_else(|| path.strip_prefix("/api/v1/sandboxes/"))
        .map(|rest| rest.split('/').next().unwrap_or(rest));
    by_path
        .or_else(|| crate::data_plane::host_sandbox_id(state, request))
        .filter(|id| !id.is_empty())
}

/// Whether this member answers `request` itself without waiting: its
/// lease holds and the request addresses a sandbox it serves that is not
/// moving — every request to it but the first, decided without the
/// [`route`] future.
pub fn answers_at_once(state: &AppState, request: &Request) -> bool {
    state.member_lease.holds()
        && addressed(state, request)
            .is_some_and(|id| !state.moves.is_moving(id) && state.registry.get(id).is_some())
}

/// Where a member sends a request it got.
pub enum Route {
    /// It answers it: the sandbox is its own (and its lease holds).
    Here,
    /// Straight to the member serving the sandbox.
    Member(ServedBy, String),
    /// To the holder: anything not one sandbox's, the holder's sandboxes,
    /// and everything once this member's lease may have run out.
    Holder,
    /// To the server this one just handed the sandbox to, even when it
    /// was passed on already: it is that server's now, and the others may
    /// not know yet.
    Moved(ServedBy, String),
}

/// Where this member sends `request`: a sandbox it serves is answered
/// here (loaded from the database at its first request), another
/// member's goes straight to that member, the rest to the holder.
pub fn route(state: &AppState, request: &Request) -> impl Future<Output = Route> + Send + use<> {
    let state = state.clone();
    // Passed on once already: never again to another member.
    let passed_on = request.headers().contains_key(FORWARDED_BY);
    let addressed = if !state.member_lease.holds() {
        Err(Route::Holder)
    } else {
        match addressed(&state, request) {
            Some(id) => Ok(id.to_owned()),
            None if crate::data_plane::carries_known_key(&state, request) => Err(Route::Here),
            None => Err(Route::Holder),
        }
    };
    async move {
        let id = match addressed {
            Err(route) => return route,
            Ok(id) => id,
        };
        // Moving away from here: asked again once the move ended.
        state.moves.wait(&id).await;
        if state.registry.get(&id).is_some() {
            return Route::Here;
        }
        if let Some(to) = state.moves.moved_to(&id) {
            return Route::Moved(to, id);
        }
        // Passed on by a server that took it for this one's: what this
        // one knows may be older than the news.
        if passed_on {
            state.owners.forget(&id);
        }
        match state.owners.lookup(&state, &id).await {
            // The database does not answer: the holder may still.
            Err(()) => Route::Holder,
            // No such sandbox: this server says so (or that it expired).
            Ok(None) => Route::Here,
            Ok(Some(served)) => match &served.member {
                Some(member) if *member.replica == *state.replica => {
                    match load_here(&state, &id).await {
                        Ok(()) => Route::Here,
                        Err(()) => Route::Holder,
                    }
                }
                Some(_) if !passed_on => Route::Member(served, id),
                Some(_) | None => Route::Holder,
            },
        }
    }
}

/// Who serves which sandbox, as a member last read it from the database:
/// found ones kept until sending to them fails, unknown ids for a second
/// (so that a flood of made-up ids costs the database little).
#[derive(Default)]
pub struct Owners {
    known: std::sync::Mutex<std::collections::HashMap<String, (Instant, Option<ServedBy>)>>,
    /// Held while a sandbox is loaded to be served here: two first
    /// requests at once load it once (a second copy would miss what the
    /// first acknowledged meanwhile).
    loading: tokio::sync::Mutex<()>,
}

/// Most ids kept; past it, the cache starts again.
const OWNERS_KEPT: usize = 65_536;
/// How long an unknown id is remembered as such.
const UNKNOWN_FOR: Duration = Duration::from_secs(1);

impl Owners {
    /// Who serves sandbox `id`; `Ok(None)`: nobody, it does not exist.
    async fn lookup(&self, state: &AppState, id: &str) -> Result<Option<ServedBy>, ()> {
        if let Some((read, served)) = self.lock().get(id)
            && (served.is_some() || read.elapsed() < UNKNOWN_FOR)
        {
            return Ok(served.clone());
        }
        let served = state.store.served_by(id).await.map_err(|error| {
            tracing::warn!(%error, sandbox = %id, "reading who serves a sandbox failed");
        })?;
        let mut known = self.lock();
        if known.len() >= OWNERS_KEPT {
            known.clear();
        }
        known.insert(id.to_owned(), (Instant::now(), served.clone()));
        Ok(served)
    }

    fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (Instant, Option<ServedBy>)>>
    {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Loads sandbox `id`, which the database says this server serves, with
/// its pending work and the answers its idempotency keys stored, unless
/// it is served here already (or was deleted since: nothing to load).
async fn load_here(state: &AppState, id: &str) -> Result<(), ()> {
    if load_serving(state, id).await? {
        // Moved here from another server: its pending work, and the
        // answers its idempotency keys stored there.
        crate::workers::note_pending(state).await;
        if let Err(error) = state.idempotency.load(Some(id)).await {
            tracing::warn!(%error, sandbox = %id, "indexing a sandbox's idempotency keys failed");
        }
    }
    Ok(())
}

/// Loads sandbox `id` to serve it here, unless it is already; whether it
/// was loaded. One at a time: two loads of one sandbox would make two
/// copies, and the second would miss what the first acknowledged
/// meanwhile.
async fn load_serving(state: &AppState, id: &str) -> Result<bool, ()> {
    let _loading = state.owners.loading.lock().await;
    if state.registry.get(id).is_some_and(|s| s.served_here()) {
        return Ok(false);
    }
    match load(state, id, None).await {
        Ok(()) => {
            tracing::info!(sandbox = %id, "serving a sandbox given to this server");
            Ok(true)
        }
        Err(error) => {
            tracing::warn!(sandbox = %id, error = %format!("{error:#}"), "loading a sandbox to serve failed");
            Err(())
        }
    }
}

/// Loads sandbox `id` from the database into the registry: served here,
/// or (`served_by`) the holder's copy of a member's.
pub async fn load(state: &AppState, id: &str, served_by: Option<Member>) -> anyhow::Result<()> {
    let Some(record) = state.store.get_sandbox(id).await? else {
        state.registry.remove(id);
        return Ok(());
    };
    let keys = state
        .store
        .list_keys(id)
        .await?
        .iter()
        .filter_map(crate::runtime::keys::LiveKey::of)
        .collect();
    let sandbox = crate::app::load_sandbox(state, record, keys, served_by).await?;
    if sandbox.served_here() {
        // Moved here, or served here again: today's requests so far.
        crate::service::usage::load_request_counts(state, Some(&sandbox)).await?;
    }
    Ok(())
}

/// The member a new sandbox goes to: of the holder and the live members,
/// whichever serves the fewest; `None`: the holder.
pub async fn choose(state: &AppState) -> Option<Member> {
    if !state.config.spread_sandboxes {
        return None;
    }
    let members = match state.store.members().await {
        Ok(members) => members,
        Err(error) => {
            tracing::warn!(%error, "listing members failed: the holder serves the new sandbox");
            return None;
        }
    };
    let mut counts: std::collections::HashMap<&str, usize> =
        members.iter().map(|m| (m.replica.as_str(), 0)).collect();
    let mut here = 0;
    for sandbox in state.registry.all() {
        match sandbox.member() {
            Some(member) => {
                if let Some(count) = counts.get_mut(member.replica.as_str()) {
                    *count += 1;
                }
            }
            None => here += 1,
        }
    }
    let (fewest, count) = counts
        .into_iter()
        .min_by_key(|(replica, count)| (*count, *replica))?;
    let fewest = fewest.to_owned();
    // A tie goes to the member: the holder has everything global to do.
    (count <= here).then(|| members.into_iter().find(|m| m.replica == fewest))?
}

/// The holder sweeps lapsed members every second and serves their
/// sandboxes again, rebuilt from the database.
pub async fn sweep(state: AppState, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        let taken = match state.store.sweep_members().await {
            Ok(taken) => taken,
            Err(error) => {
                tracing::warn!(%error, "sweeping lapsed members failed; trying again");
                continue;
            }
        };
        if !taken.is_empty() {
            tracing::info!(
                count = taken.len(),
                "serving the sandboxes of lapsed members"
            );
        }
        let mut loaded = false;
        for id in &taken {
            // Once, whoever loads it first: this loop, or the notice of
            // the move. Its own from when it was a member stays as it is.
            match load_serving(&state, id).await {
                Ok(fresh) => loaded |= fresh,
                Err(()) => {
                    tracing::error!(sandbox = %id, "taking a lapsed member's sandbox over failed");
                }
            }
        }
        if loaded {
            // Their pending work, and the answers their idempotency keys
            // stored, as a restart finds them.
            crate::workers::note_pending(&state).await;
            if let Err(error) = state.idempotency.load(None).await {
                tracing::warn!(%error, "indexing the idempotency keys of sandboxes taken over failed");
            }
        }
    }
}

/// Passes a request for `sandbox` to the member serving it and its answer
/// back. A control-plane call that deleted it, or changed its time to
/// live, is mirrored on the holder's copy. `Err`: the request is back,
/// for the registry's new copy of the sandbox: the member the copy names
/// sent it here (it moved the sandbox, and the news is still on its way).
pub async fn pass_on(
    state: &AppState,
    sandbox: &Arc<LiveSandbox>,
    request: Request,
) -> Result<Response, Request> {
    let Some(member) = sandbox.member() else {
        return Ok(ApiError::standby("the sandbox is served here").into_response());
    };
    let sent_by_member = request
        .headers()
        .get(FORWARDED_BY)
        .is_some_and(|by| by.as_bytes() == member.replica.as_bytes());
    if sent_by_member {
        follow_move(state, &sandbox.id).await;
        let renewed = state
            .registry
            .get(&sandbox.id)
            .is_some_and(|now| !Arc::ptr_eq(&now, sandbox));
        return if renewed {
            Err(request)
        } else {
            Ok(ApiError::standby(format!(
                "sandbox \"{}\" is served by {}, which sent this request here; send it again",
                sandbox.id, member.replica
            ))
            .into_response())
        };
    }
    let (path, method) = (request.uri().path().to_owned(), request.method().clone());
    match send(state, member, &sandbox.id, request, moved(state, sandbox)).await {
        Ok(answer) => {
            let whole = path.trim_end_matches('/') == format!("/api/v1/sandboxes/{}", sandbox.id);
            // Changed through it, or gone (deleted through the member,
            // and the news missed): the copy is read again.
            let changed = (answer.status().is_success()
                && path.starts_with("/api/v1/sandboxes/")
                && method != Method::GET)
                || (whole && answer.status() == StatusCode::NOT_FOUND);
            if changed {
                mirror(state, &sandbox.id, &path, &method, answer.status()).await;
            }
            Ok(crate::http::proxy::answer(answer))
        }
        Err(refusal) => Ok(refusal),
    }
}

/// Sends a request for sandbox `id` from this member straight to the
/// server serving it, and its answer back.
pub async fn pass_to(state: &AppState, served: &ServedBy, id: &str, request: Request) -> Response {
    let member = match &served.member {
        Some(member) => member.clone(),
        // The holder, named as a member is.
        None => match crate::runtime::standby::holder(state).await {
            Some(holder) => Member {
                replica: holder.replica,
                address: holder.address,
            },
            None => {
                return ApiError::standby(format!(
                    "sandbox \"{id}\" is the holder's, and no server holds the database"
                ))
                .into_response();
            }
        },
    };
    match send(
        state,
        &member,
        id,
        request,
        moved_in_store(state, id, served.epoch),
    )
    .await
    {
        Ok(answer) => crate::http::proxy::answer(answer),
        Err(refusal) => {
            state.owners.forget(id);
            refusal
        }
    }
}

/// Sends a request for sandbox `id` to `member`, marked as passed on; 503
/// `standby` when the member does not answer, or once `moved` returns (a
/// paused member accepts connections and never answers: the wait ends
/// when the sandbox is taken over).
async fn send(
    state: &AppState,
    member: &Member,
    id: &str,
    request: Request,
    moved: impl Future<Output = ()>,
) -> Result<hyper::Response<hyper::body::Incoming>, Response> {
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers.clone();
    if let Ok(replica) = HeaderValue::from_str(&state.replica) {
        headers.insert(FORWARDED_BY, replica);
    }
    if let Ok(id) = HeaderValue::from_str(id) {
        headers.insert(PASSED_FOR, id);
    }
    let sent = crate::http::proxy::send(
        &state.forwarder.client,
        &member.address,
        &parts,
        headers,
        body,
    );
    tokio::select! {
        sent = sent => sent.map_err(|error| {
            tracing::warn!(%error, sandbox = %id, member = %member.replica, "the member serving the sandbox does not answer");
            ApiError::standby(format!(
                "sandbox \"{id}\" is served by {} at {}, which does not answer; once its lease runs out another server serves it",
                member.replica, member.address
            ))
            .into_response()
        }),
        () = moved => Err(ApiError::standby(format!(
            "sandbox \"{id}\" moved to another server while {} had this request; send it again",
            member.replica
        ))
        .into_response()),
    }
}

/// How long a request passed on waits before a move of its sandbox ends
/// the wait: a live move ends in milliseconds, and the server it left
/// passes the request on; a member that stopped answering is swept after
/// its lease.
const MOVE_GRACE: Duration = Duration::from_secs(2);

/// Returns once the database says sandbox `id` moved on from `epoch`,
/// checking every second from [`MOVE_GRACE`] on.
async fn moved_in_store(state: &AppState, id: &str, epoch: i64) {
    tokio::time::sleep(MOVE_GRACE).await;
    loop {
        match state.store.served_by(id).await {
            Ok(Some(served)) if served.epoch == epoch => {}
            // Unknown (the database does not answer) is not moved.
            Err(_) => {}
            _ => return,
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Returns once the registry holds another copy of `sandbox` (it was
/// taken over, or deleted), checking every second from [`MOVE_GRACE`] on.
async fn moved(state: &AppState, sandbox: &LiveSandbox) {
    tokio::time::sleep(MOVE_GRACE).await;
    loop {
        match state.registry.get(&sandbox.id) {
            Some(now) if std::ptr::eq(&*now, sandbox) => {}
            _ => return,
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Brings the holder's copy of a member's sandbox in line after a change
/// the member made.
async fn mirror(state: &AppState, id: &str, path: &str, method: &Method, status: StatusCode) {
    let served_by = state.registry.get(id).and_then(|s| s.member().cloned());
    let whole = path.trim_end_matches('/') == format!("/api/v1/sandboxes/{id}");
    if whole && *method == Method::DELETE && status == StatusCode::NO_CONTENT {
        state.registry.remove(id);
        return;
    }
    if let Err(error) = load(state, id, served_by).await {
        tracing::warn!(sandbox = %id, error = %format!("{error:#}"), "refreshing the holder's copy failed");
    }
}
