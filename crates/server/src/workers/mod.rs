//! Every background task of a server, owned in one place so that shutdown
//! joins them all: first the periodic workers (reaper, upkeep, scheduler,
//! deliveries) and the tasks they start stop and finish what they are
//! doing; then the sinks (the group-commit writer, the request log) take
//! nothing new and write everything queued before they end.

pub mod deliveries;
pub mod namespaces;
pub mod reaper;
pub mod request_log;
pub mod scheduler;
pub mod upkeep;
pub mod user_work;
pub mod writer;

use std::{future::Future, time::Duration};

use sbx_store::StoreError;

use tokio::sync::mpsc;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    app::AppState,
    runtime::registry::{DueAt, LiveSandbox},
};

#[derive(Clone, Debug, Default)]
pub struct Workers {
    background: TaskTracker,
    sinks: TaskTracker,
    stop: CancellationToken,
    close: CancellationToken,
}

impl Workers {
    /// Runs a periodic worker, or a task one starts; it watches
    /// [`Self::stopping`].
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.background.spawn(task);
    }

    /// Runs a sink: it watches [`Self::closing`], then drains its queue.
    pub fn spawn_sink(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.sinks.spawn(task);
    }

    /// Cancelled when the periodic workers must stop.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Cancelled when the sinks must write what is queued and end.
    pub fn closing(&self) -> CancellationToken {
        self.close.clone()
    }

    /// Stops the workers, waits for them, then closes the sinks and waits
    /// until everything they had queued is written.
    pub async fn shut_down(&self) {
        self.stop.cancel();
        self.background.close();
        self.background.wait().await;
        self.close.cancel();
        self.sinks.close();
        self.sinks.wait().await;
    }
}

/// The next item of `queue`; once `closing` is cancelled the queue takes no
/// more, and this yields what it holds, then `None`.
pub async fn next<T>(queue: &mut mpsc::Receiver<T>, closing: &CancellationToken) -> Option<T> {
    tokio::select! {
        biased;
        item = queue.recv() => item,
        () = closing.cancelled() => {
            queue.close();
            queue.recv().await
        }
    }
}

/// Runs `round` every `period` until `stopping` is cancelled (a round in
/// progress finishes first).
pub async fn every<F>(period: Duration, stopping: CancellationToken, mut round: impl FnMut() -> F)
where
    F: Future<Output = ()>,
{
    let mut interval = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            _ = interval.tick() => round().await,
        }
    }
}

/// Tells each sandbox served here when its first stored job and delivery
/// fall due: after sandboxes were loaded from the database (at start, at a
/// takeover), the workers find their pending work.
pub async fn note_pending(state: &AppState) {
    let due = state.store.next_jobs().await;
    note_due(state, due, "jobs", |sandbox| &sandbox.next_job);
    let due = state.store.next_deliveries().await;
    note_due(state, due, "deliveries", |sandbox| &sandbox.next_delivery);
}

fn note_due(
    state: &AppState,
    due: Result<Vec<(String, i64)>, StoreError>,
    what: &str,
    at: impl Fn(&LiveSandbox) -> &DueAt,
) {
    match due {
        Ok(due) => {
            for (id, due_ms) in due {
                if let Some(sandbox) = state.registry.get(&id) {
                    at(&sandbox).note(due_ms);
                }
            }
        }
        Err(error) => tracing::warn!(%error, "loading pending {what} failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::Workers;

    #[tokio::test]
    async fn sinks_close_only_after_the_workers_stopped() {
        let workers = Workers::default();
        let order = Arc::new(AtomicUsize::new(0));
        let (stopping, seen) = (workers.stopping(), order.clone());
        workers.spawn(async move {
            stopping.cancelled().await;
            tokio::task::yield_now().await;
            // The sink has not been told to close yet.
            assert_eq!(seen.fetch_add(1, Ordering::SeqCst), 0);
        });
        let (closing, seen) = (workers.closing(), order.clone());
        workers.spawn_sink(async move {
            closing.cancelled().await;
            assert_eq!(seen.fetch_add(1, Ordering::SeqCst), 1);
        });
        workers.shut_down().await;
        assert_eq!(order.load(Ordering::SeqCst), 2, "both ran to their end");
    }
}
