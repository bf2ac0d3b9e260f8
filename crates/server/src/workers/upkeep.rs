//! What every server does for the sandboxes it serves itself, holder or
//! member: saves how they are used (`service::usage`) and removes its
//! developers' sandboxes left inactive. The holder's reaper does the
//! database-wide rest.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    app::{AppState, now_ms},
    service::{sandboxes, usage},
};

/// At most this long between saves: how far past a quota the requests
/// on several servers can go, and what a crash loses of the counts.
const SAVE_EVERY: Duration = Duration::from_secs(1);

pub async fn run(state: AppState, stopping: CancellationToken) {
    let period = state.config.reaper_interval.min(SAVE_EVERY);
    super::every(period, stopping, || once(&state)).await;
    // What the last round did not see.
    save(&state).await;
}

/// One round: what changed is saved, inactive sandboxes removed.
pub async fn once(state: &AppState) {
    save(state).await;
    let _removing = state.removals.lock().await;
    if let Err(error) = sandboxes::remove_inactive(state, now_ms()).await {
        tracing::warn!(%error, "removing inactive sandboxes failed; retrying next round");
    }
}

async fn save(state: &AppState) {
    if let Err(error) = usage::save(state).await {
        tracing::warn!(%error, "saving sandboxes' last use and request counts failed; retrying next round");
    }
}
