//! What the database keeps of how sandboxes are used — when each last
//! answered a request, when keys were last used, and requests per UTC day —
//! saved by every server for the sandboxes it serves (the upkeep worker,
//! every second), before a sandbox moves, and when the server stops; read
//! back where sandboxes are loaded. A restart or a move carries it, and a
//! developer's daily quota counts its requests on every server.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, atomic::Ordering},
};

use sbx_store::DayCounts;

use super::ServiceResult;
use crate::{
    app::{AppState, now_ms},
    runtime::{
        registry::LiveSandbox,
        usage::{DailyRequests, Owner, day_of},
    },
};

/// Saves what changed since the last save.
pub async fn save(state: &AppState) -> ServiceResult<()> {
    save_activity(state).await?;
    save_request_counts(state).await
}

/// Writes when sandboxes last answered a request and keys were last used,
/// since the last save (never on the request path). One mark for the whole
/// registry keeps each sandbox and key small.
pub async fn save_activity(state: &AppState) -> ServiceResult<()> {
    let since = state.registry.saved_at_ms.load(Ordering::Relaxed);
    let now = now_ms();
    let active: Vec<_> = state
        .registry
        .all()
        .into_iter()
        .filter(|s| s.served_here() && s.last_active_ms() >= since)
        .map(|s| (s.id.clone(), s.last_active_ms()))
        .collect();
    let used = super::keys::uses_since(state, since);
    if !active.is_empty() {
        state.store.touch_sandboxes(&active).await?;
    }
    if !used.is_empty() {
        state.store.touch_keys(&used).await?;
    }
    state.registry.saved_at_ms.store(now, Ordering::Relaxed);
    Ok(())
}

/// What one day's save takes from memory, to give back if the database
/// refuses it.
#[derive(Default)]
struct Unsaved<'a> {
    counted: DayCounts,
    owners: Vec<(&'a DailyRequests, u64)>,
    sandboxes: Vec<&'a LiveSandbox>,
}

impl Unsaved<'_> {
    fn give_back(&self, day: u64) {
        for (usage, requests) in &self.owners {
            usage.put_back(day, *requests);
        }
        for sandbox in &self.sandboxes {
            sandbox.requests.keep_change();
        }
    }
}

/// Saves the requests counted here since the last save, by day: added to
/// the owners' totals over every server, and each sandbox served here
/// with its count; takes back today's total of every account (for the
/// quotas checked here). The holder's copies of other servers' sandboxes
/// read their counts too.
pub async fn save_request_counts(state: &AppState) -> ServiceResult<()> {
    let owners = state.registry.owners();
    let sandboxes = state.registry.all();
    let mut days: BTreeMap<u64, Unsaved<'_>> = BTreeMap::new();
    for owner in &owners {
        if let Some((day, requests)) = owner.usage.take() {
            let unsaved = days.entry(day).or_default();
            unsaved.counted.accounts.push((owner.id.clone(), requests));
            unsaved.owners.push((&owner.usage, requests));
        }
    }
    for sandbox in sandboxes.iter().filter(|s| s.served_here()) {
        if let Some((day, requests)) = sandbox.requests.take_change() {
            let unsaved = days.entry(day).or_default();
            unsaved
                .counted
                .sandboxes
                .push((sandbox.id.clone(), requests));
            unsaved.sandboxes.push(sandbox.as_ref());
        }
    }
    let today = day_of(now_ms());
    if !owners.is_empty() {
        // Their totals, even with nothing to save.
        days.entry(today).or_default();
    }
    let days: Vec<_> = days.into_iter().collect();
    for (at, (day, unsaved)) in days.iter().enumerate() {
        match state
            .store
            .save_requests(stored_day(*day), &unsaved.counted)
            .await
        {
            Ok(totals) if *day == today => raise_accounts(state, today, &totals),
            Ok(_) => {}
            Err(error) => {
                // Given back, to be saved at the next round.
                for (day, unsaved) in &days[at..] {
                    unsaved.give_back(*day);
                }
                return Err(error.into());
            }
        }
    }
    if sandboxes.iter().any(|s| !s.served_here()) {
        let totals = state
            .store
            .sandbox_requests(stored_day(today), None)
            .await?;
        let copies: Vec<_> = sandboxes
            .iter()
            .filter(|s| !s.served_here())
            .cloned()
            .collect();
        raise_sandboxes(&copies, today, &totals);
    }
    Ok(())
}

/// Reads today's totals into the registry: of every account and sandbox
/// (`None`: at start), or of one sandbox loaded here and its owner.
pub async fn load_request_counts(
    state: &AppState,
    sandbox: Option<&Arc<LiveSandbox>>,
) -> ServiceResult<()> {
    let today = day_of(now_ms());
    let sandboxes = state
        .store
        .sandbox_requests(stored_day(today), sandbox.map(|s| s.id.as_str()))
        .await?;
    match sandbox {
        Some(sandbox) => {
            if let Some(owner) = sandbox.owner_id() {
                load_account_count(state, owner, today).await?;
            }
            raise_sandboxes(std::slice::from_ref(sandbox), today, &sandboxes);
        }
        None => {
            let accounts = state
                .store
                .account_requests(stored_day(today), None)
                .await?;
            raise_accounts(state, today, &accounts);
            raise_sandboxes(&state.registry.all(), today, &sandboxes);
        }
    }
    Ok(())
}

/// The requests `owner` made today over all its sandboxes and servers.
pub async fn requests_today(state: &AppState, owner: &sbx_store::AccountId) -> ServiceResult<u64> {
    let now = now_ms();
    let owner = load_account_count(state, owner, day_of(now)).await?;
    Ok(owner.usage.requests_on(now))
}

/// `owner` as the registry shares it, what it knows of the account's
/// requests on `day` raised to the database's total.
async fn load_account_count(
    state: &AppState,
    owner: &sbx_store::AccountId,
    day: u64,
) -> ServiceResult<Arc<Owner>> {
    let stored = state
        .store
        .account_requests(stored_day(day), Some(owner.as_str()))
        .await?;
    let owner = state.registry.owner(owner);
    owner
        .usage
        .raise(day, stored.first().map_or(0, |(_, n)| *n));
    Ok(owner)
}

/// Every account known here is raised to its total (one not listed has
/// none today).
fn raise_accounts(state: &AppState, day: u64, totals: &[(sbx_store::AccountId, u64)]) {
    let totals: HashMap<&str, u64> = totals.iter().map(|(id, n)| (id.as_str(), *n)).collect();
    for owner in state.registry.owners() {
        owner
            .usage
            .raise(day, totals.get(owner.id.as_str()).copied().unwrap_or(0));
    }
}

/// Each of `sandboxes` listed in `totals` counts at least its total.
fn raise_sandboxes(
    sandboxes: &[Arc<LiveSandbox>],
    day: u64,
    totals: &[(sbx_store::SandboxId, u64)],
) {
    let totals: HashMap<&str, u64> = totals.iter().map(|(id, n)| (id.as_str(), *n)).collect();
    for sandbox in sandboxes {
        if let Some(total) = totals.get(sandbox.id.as_str()) {
            sandbox.requests.raise(day, *total);
        }
    }
}

fn stored_day(day: u64) -> i64 {
    i64::try_from(day).unwrap_or(i64::MAX)
}
