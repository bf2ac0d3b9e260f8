//! The reconcile loop of namespace-isolated sandboxes: every live one has
//! its namespace applied and its standing read back into the sandbox;
//! every namespace of this installation whose sandbox is gone (deleted,
//! expired) is deleted. Level-triggered: a crash, a namespace deleted by
//! hand or a cluster that was unreachable is mended on a later round.

use std::{collections::HashSet, sync::Arc, time::Duration};

use sbx_provision::Phase;
use sbx_store::{Isolation, IsolationState};
use tokio_util::sync::CancellationToken;

use crate::{
    app::{AppState, now_ms},
    runtime::{namespaces::Namespaces, registry::LiveSandbox},
};

/// How often the loop looks without being woken.
const EVERY: Duration = Duration::from_secs(2);

pub async fn run(state: AppState, namespaces: Arc<Namespaces>, shutdown: CancellationToken) {
    // Applied by this server since it started: applying again is harmless
    // (server-side apply), but needless every round.
    let mut applied = HashSet::new();
    loop {
        reconcile(&state, &namespaces, &mut applied).await;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = namespaces.kick.notified() => {}
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// One round.
async fn reconcile(state: &AppState, namespaces: &Namespaces, applied: &mut HashSet<String>) {
    for changed in namespaces.take_changed() {
        applied.remove(&changed);
    }
    let now = now_ms();
    let isolated: Vec<Arc<LiveSandbox>> = state
        .registry
        .all()
        .into_iter()
        .filter(|s| s.isolation().is_some() && s.expired_at(now).is_none())
        .collect();
    let mut counts = [("provisioning", 0), ("ready", 0), ("failed", 0)];
    for sandbox in &isolated {
        let (state_now, message) = match converge(state, namespaces, sandbox, applied).await {
            Ok(phase) => standing(phase, applied, &sandbox.id),
            Err(why) => {
                state.metrics.namespace_operation("failed");
                applied.remove(sandbox.id.as_str());
                (IsolationState::Failed, Some(why))
            }
        };
        if let Some(count) = counts
            .iter_mut()
            .find(|(name, _)| *name == state_now.as_str())
        {
            count.1 += 1;
        }
        record(state, sandbox, state_now, message).await;
    }
    state.metrics.isolated_sandboxes(counts);
    let live: HashSet<&str> = isolated.iter().map(|s| s.id.as_str()).collect();
    match namespaces.provisioner.namespaced_sandboxes().await {
        Ok(present) => {
            for gone in present.iter().filter(|id| !live.contains(id.as_str())) {
                match namespaces.provisioner.delete(gone).await {
                    Ok(()) => {
                        state.metrics.namespace_operation("deleted");
                        applied.remove(gone);
                        tracing::info!(sandbox = %gone, "deleted the namespace of a sandbox that is gone");
                    }
                    Err(error) => {
                        state.metrics.namespace_operation("failed");
                        tracing::warn!(%error, sandbox = %gone, "deleting a namespace failed; retrying")
                    }
                }
            }
        }
        Err(error) => tracing::warn!(%error, "listing sandbox namespaces failed; retrying"),
    }
}

/// Applies the sandbox's namespace (unless this server already did) and
/// reads how it stands.
async fn converge(
    state: &AppState,
    namespaces: &Namespaces,
    sandbox: &LiveSandbox,
    applied: &mut HashSet<String>,
) -> Result<Phase, String> {
    if !applied.contains(sandbox.id.as_str()) {
        let instance = crate::service::isolation::instance(state, sandbox)
            .await
            .map_err(|e| e.to_string())?;
        namespaces
            .provisioner
            .apply(&instance)
            .await
            .map_err(|e| e.to_string())?;
        applied.insert(sandbox.id.to_string());
        state.metrics.namespace_operation("applied");
        tracing::info!(sandbox = %sandbox.id, "applied the sandbox's namespace");
    }
    namespaces
        .provisioner
        .phase(&sandbox.id)
        .await
        .map_err(|e| e.to_string())
}

/// What a phase means for the sandbox; a namespace gone (deleted by
/// hand) is made again next round.
fn standing(
    phase: Phase,
    applied: &mut HashSet<String>,
    id: &str,
) -> (IsolationState, Option<String>) {
    match phase {
        Phase::Ready => (IsolationState::Ready, None),
        Phase::Starting(why) => (IsolationState::Provisioning, Some(why)),
        Phase::Failed(why) => (IsolationState::Failed, Some(why)),
        Phase::Terminating => {
            applied.remove(id);
            (
                IsolationState::Provisioning,
                Some("its namespace is being deleted; it will be made again".to_owned()),
            )
        }
        Phase::Missing => {
            applied.remove(id);
            (
                IsolationState::Provisioning,
                Some("its namespace is missing; making it again".to_owned()),
            )
        }
    }
}

/// Saves a change of standing, and makes it live.
async fn record(
    state: &AppState,
    sandbox: &LiveSandbox,
    new_state: IsolationState,
    message: Option<String>,
) {
    let Some(current) = sandbox.isolation() else {
        return;
    };
    if current.state == new_state && current.message == message {
        return;
    }
    let changed = Isolation {
        state: new_state,
        message,
        changed_at_ms: now_ms(),
        instance_token: current.instance_token.clone(),
    };
    match state
        .store
        .set_sandbox_isolation(&sandbox.id, &changed)
        .await
    {
        Ok(_) => {
            tracing::info!(sandbox = %sandbox.id, state = new_state.as_str(), message = ?changed.message, "namespace standing changed");
            sandbox.set_isolation(changed);
        }
        Err(error) => {
            tracing::warn!(%error, sandbox = %sandbox.id, "saving a namespace's standing failed; retrying")
        }
    }
}
