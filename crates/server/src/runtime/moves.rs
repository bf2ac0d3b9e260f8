//! Moving a live sandbox from the server serving it to another server
//! sharing the database (`spread_sandboxes`): to spread sandboxes over a
//! server that joined, and to empty a member that stops. The server
//! serving it moves it itself:
//!
//! 1. requests for it wait (here, before they touch it);
//! 2. the requests and work already on it finish (their request-log
//!    entries are written as they come: history, the database takes them
//!    from the former server too);
//! 3. the database hands it over (`served_by`, epoch + 1): from then on
//!    it refuses this server's writes for it;
//! 4. this server keeps a copy (the holder) or forgets it (a member), and
//!    the waiting requests go to the new server, which loads it from the
//!    database as a takeover does.
//!
//! Requests see a pause of a few milliseconds, not a failure.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use sbx_store::{Member, ServedBy};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{app::AppState, runtime::registry::LiveSandbox};

/// Longest wait for what is in flight on a sandbox to finish; past it the
/// move is given up (the sandbox stays here).
const QUIESCE: Duration = Duration::from_secs(3);
/// How long a request waits for a move before it goes on regardless.
const WAIT: Duration = Duration::from_secs(10);
/// How long where a sandbox went is remembered here: requests that were
/// sent here before other servers heard of the move are passed to it.
const REMEMBERED: Duration = Duration::from_secs(10);
/// How often a server looks at whether it serves more than its share.
const REBALANCE_EVERY: Duration = Duration::from_secs(2);
/// Most sandboxes one server hands over per look: sandboxes move in
/// small steps, and every server's view of the counts stays close.
const MOVES_PER_ROUND: usize = 16;
/// Longest a stopping member spends handing its sandboxes over; the
/// holder's sweep takes whatever is left.
const STOP_HANDOVER: Duration = Duration::from_secs(12);
/// How long a stopping member goes on answering once it handed its
/// sandboxes over, for requests sent before the news reached everyone.
const HEARD_OF: Duration = Duration::from_secs(1);

/// Sandboxes moving away from this server now, and where recent ones went.
#[derive(Default)]
pub struct Moves {
    /// How many are moving: while none is, requests skip the lookup.
    count: AtomicUsize,
    /// Each moving sandbox's signal: it ends (its sender is dropped) when
    /// the move does.
    moving: Mutex<HashMap<String, watch::Receiver<()>>>,
    moved: Mutex<HashMap<String, (Instant, ServedBy)>>,
    /// Whether `moved` may hold anything still remembered: requests for
    /// other servers' sandboxes skip its lock otherwise.
    remembering: AtomicBool,
}

/// A move under way; dropping it ends the wait of the requests it held.
struct Moving<'a> {
    moves: &'a Moves,
    id: String,
    _ended: watch::Sender<()>,
}

impl Drop for Moving<'_> {
    fn drop(&mut self) {
        lock(&self.moves.moving).remove(&self.id);
        self.moves.count.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Moves {
    /// Whether sandbox `id` is moving away from this server. A request
    /// asks once it holds the sandbox: a move waits for every holder.
    pub fn is_moving(&self, id: &str) -> bool {
        std::sync::atomic::fence(Ordering::SeqCst);
        self.count.load(Ordering::SeqCst) > 0 && lock(&self.moving).contains_key(id)
    }

    /// Waits while sandbox `id` moves away from this server; whether it
    /// was moving.
    pub async fn wait(&self, id: &str) -> bool {
        if self.count.load(Ordering::SeqCst) == 0 {
            return false;
        }
        let Some(mut ended) = lock(&self.moving).get(id).cloned() else {
            return false;
        };
        let _ = tokio::time::timeout(WAIT, ended.changed()).await;
        true
    }

    /// Where sandbox `id` went when it moved away from here lately.
    pub fn moved_to(&self, id: &str) -> Option<ServedBy> {
        if !self.remembering.load(Ordering::Acquire) {
            return None;
        }
        let mut moved = lock(&self.moved);
        moved.retain(|_, (at, _)| at.elapsed() < REMEMBERED);
        if moved.is_empty() {
            self.remembering.store(false, Ordering::Release);
        }
        moved.get(id).map(|(_, to)| to.clone())
    }

    fn begin(&self, id: &str) -> Option<Moving<'_>> {
        let mut moving = lock(&self.moving);
        if moving.contains_key(id) {
            return None;
        }
        let (ended, waiting) = watch::channel(());
        moving.insert(id.to_owned(), waiting);
        self.count.fetch_add(1, Ordering::SeqCst);
        Some(Moving {
            moves: self,
            id: id.to_owned(),
            _ended: ended,
        })
    }

    fn note_moved(&self, id: &str, to: ServedBy) {
        let mut moved = lock(&self.moved);
        moved.insert(id.to_owned(), (Instant::now(), to));
        self.remembering.store(true, Ordering::Release);
    }
}

/// Why a sandbox did not move.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("it is moving already")]
    Moving,
    #[error("what was in flight on it did not finish within {QUIESCE:?}")]
    Busy,
    #[error(
        "the database did not move it: it was deleted, is not served here, or its new server left"
    )]
    NotMoved,
    #[error(transparent)]
    Store(#[from] sbx_store::StoreError),
}

/// Hands `sandbox`, served here, to `to` (`None`: the holder), as the
/// module says.
pub async fn hand_over(
    state: &AppState,
    sandbox: Arc<LiveSandbox>,
    to: Option<Member>,
) -> Result<(), MoveError> {
    let id = sandbox.id.to_string();
    let moving = state.moves.begin(&id).ok_or(MoveError::Moving)?;
    quiesce(state, &sandbox).await?;
    // Its next server reads when it was last used, and its requests today.
    if let Err(error) = crate::service::usage::save(state).await {
        tracing::warn!(sandbox = %id, %error, "saving how the sandbox was used before it moves failed: its next server reads its last use and requests today as of the save before");
    }
    let holder = crate::runtime::standby::serves(state);
    let from = (!holder).then(|| state.replica.to_string());
    let target = to.as_ref().map(|m| m.replica.as_str());
    let epoch = state
        .store
        .hand_over(&id, from.as_deref(), target)
        .await?
        .ok_or(MoveError::NotMoved)?;
    if holder {
        // The holder keeps a copy for its views.
        if let Err(error) = crate::runtime::members::load(state, &id, to.clone()).await {
            tracing::warn!(sandbox = %id, error = %format!("{error:#}"), "keeping a copy of a sandbox moved away failed");
            crate::runtime::members::forget(state, &id);
        }
    } else {
        crate::runtime::members::forget(state, &id);
    }
    let served = ServedBy {
        member: to.clone(),
        epoch,
    };
    state.moves.note_moved(&id, served);
    drop(moving);
    state.metrics.moved();
    tracing::info!(sandbox = %id, to = to.as_ref().map_or("the holder", |m| m.replica.as_str()), epoch, "sandbox handed over");
    Ok(())
}

/// Waits until nothing but the registry holds `sandbox` (requests, jobs
/// and deliveries on it hold it while they run).
async fn quiesce(state: &AppState, sandbox: &Arc<LiveSandbox>) -> Result<(), MoveError> {
    let deadline = Instant::now() + QUIESCE;
    // Pairs with the fence in `is_moving`: a request that took the
    // sandbox before the move began is counted below, one that took it
    // after sees the move.
    std::sync::atomic::fence(Ordering::SeqCst);
    // The registry's own references, and this function's.
    while Arc::strong_count(sandbox) > state.registry.shares(sandbox) + 1 {
        if Instant::now() >= deadline {
            return Err(MoveError::Busy);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// A server's share of the sandboxes, as the database counts them.
struct Shares {
    /// Each server (`None`: the holder) and how many it serves.
    servers: Vec<(Option<Member>, u64)>,
}

impl Shares {
    async fn read(state: &AppState) -> Result<Self, sbx_store::StoreError> {
        let members = state.store.members().await?;
        let counts = state.store.sandboxes_per_server().await?;
        let count_of = |replica: Option<&str>| {
            counts
                .iter()
                .find(|(server, _)| server.as_deref() == replica)
                .map_or(0, |(_, count)| *count)
        };
        let mut servers = vec![(None, count_of(None))];
        for member in members {
            let count = count_of(Some(&member.replica));
            servers.push((Some(member), count));
        }
        Ok(Self { servers })
    }

    /// The most any server should serve: the sandboxes spread evenly.
    fn fair(&self) -> u64 {
        let total: u64 = self.servers.iter().map(|(_, count)| count).sum();
        total.div_ceil(self.servers.len() as u64)
    }

    fn position(&self, replica: Option<&str>) -> Option<usize> {
        self.servers
            .iter()
            .position(|(member, _)| member.as_ref().map(|m| m.replica.as_str()) == replica)
    }

    /// The server serving fewest, fewer than `below`, but `here`,
    /// counting it one more.
    fn take_fewest(&mut self, here: Option<usize>, below: u64) -> Option<Option<Member>> {
        let (index, _) = self
            .servers
            .iter()
            .enumerate()
            .filter(|(index, (_, count))| Some(*index) != here && *count < below)
            .min_by_key(|(_, (_, count))| *count)?;
        self.servers[index].1 += 1;
        Some(self.servers[index].0.clone())
    }
}

/// This server's replica as the database names its sandboxes' server:
/// `None` for the holder.
fn here(state: &AppState) -> Option<Option<String>> {
    if crate::runtime::standby::serves(state) {
        Some(None)
    } else if state.member_lease.holds() {
        Some(Some(state.replica.to_string()))
    } else {
        None
    }
}

/// The sandboxes this server serves that may move, the least recently
/// active first (moving them disturbs the fewest requests).
fn movable(state: &AppState) -> Vec<Arc<LiveSandbox>> {
    let mut sandboxes: Vec<_> = state
        .registry
        .all()
        .into_iter()
        .filter(|s| s.served_here())
        .collect();
    sandboxes.sort_by_key(|s| s.last_active_ms());
    sandboxes
}

/// Every few seconds, a server serving more than its share hands the
/// excess to the servers serving fewest (sandboxes are spread).
pub async fn rebalance(state: AppState, stopping: CancellationToken) {
    // Servers look at different moments, each at its own offset.
    let offset = state.replica.bytes().map(u64::from).sum::<u64>() % 1000;
    let every = REBALANCE_EVERY + Duration::from_millis(offset);
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        if let Err(error) = rebalance_once(&state).await {
            tracing::warn!(%error, "spreading sandboxes failed; trying again");
        }
    }
}

/// One look: how many sandboxes moved away from here.
pub async fn rebalance_once(state: &AppState) -> Result<usize, sbx_store::StoreError> {
    let Some(here) = here(state) else {
        return Ok(0);
    };
    let mut shares = Shares::read(state).await?;
    let (Some(position), fair) = (shares.position(here.as_deref()), shares.fair()) else {
        return Ok(0);
    };
    let mine = shares.servers[position].1;
    if mine <= fair {
        return Ok(0);
    }
    let excess = usize::try_from(mine - fair).unwrap_or(usize::MAX);
    let mut moved = 0;
    for sandbox in movable(state).into_iter().take(excess.min(MOVES_PER_ROUND)) {
        let Some(to) = shares.take_fewest(Some(position), fair) else {
            break;
        };
        // Handed over whole: a reference kept here would hold the move.
        let id = sandbox.id.to_string();
        match hand_over(state, sandbox, to).await {
            Ok(()) => moved += 1,
            Err(error) => tracing::info!(sandbox = %id, %error, "not moved this time"),
        }
    }
    Ok(moved)
}

/// A member stopping gracefully hands every sandbox it serves to the
/// other servers, spread evenly, so that none waits for the sweep.
pub async fn hand_over_all(state: &AppState) {
    let Some(Some(_)) = here(state) else {
        return;
    };
    // Given no more sandboxes from now on (spreading would hand it some).
    if let Some(membership) = state.membership.lock().await.as_mut()
        && let Err(error) = membership.drain().await
    {
        tracing::warn!(%error, "marking this server as stopping failed: the holder takes its sandboxes when its lease ends");
        return;
    }
    let started = Instant::now();
    let mut shares = match Shares::read(state).await {
        Ok(shares) => shares,
        Err(error) => {
            tracing::warn!(%error, "handing sandboxes over before stopping failed: the holder takes them when this server's lease ends");
            return;
        }
    };
    // Stopping, it is not among them.
    let (mut moved, mut left) = (0, 0);
    for sandbox in movable(state) {
        if started.elapsed() >= STOP_HANDOVER {
            left += 1;
            continue;
        }
        let to = shares.take_fewest(None, u64::MAX).unwrap_or(None);
        let id = sandbox.id.to_string();
        match hand_over(state, sandbox, to).await {
            Ok(()) => moved += 1,
            Err(error) => {
                left += 1;
                tracing::warn!(sandbox = %id, %error, "not handed over: the holder takes it when this server's lease ends");
            }
        }
    }
    tracing::info!(moved, left, "handed sandboxes over before stopping");
    if moved > 0 {
        // Still answering while the other servers hear of the moves (in
        // milliseconds): what they send here meanwhile is passed on.
        tokio::time::sleep(HEARD_OF).await;
    }
}
