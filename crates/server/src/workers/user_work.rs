//! Where user code runs: scripts, templates and forwarding that outgrow
//! their slice of an async worker, scheduled jobs and seeds go to the
//! blocking pool, at most [`crate::Limits::parallel_scripts`] at once and
//! at most half of those for one sandbox. The rest wait their turn
//! (asynchronously, holding no thread), so a sandbox running hostile
//! scripts neither takes every core nor every slot from the others, and
//! each run's wall-clock limit counts from when it starts, not from when
//! it queued.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::Semaphore;

/// Sandboxes whose slot counters are kept while idle, at most.
const IDLE_OWNERS: usize = 1024;

/// The bounded pool of user work.
#[derive(Clone)]
pub struct UserWork {
    permits: Arc<Semaphore>,
    /// Slots one sandbox may hold at once.
    per_owner: usize,
    owners: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// Why a piece of user work has no result.
#[derive(Debug, thiserror::Error)]
pub enum WorkFailed {
    #[error("the work panicked: {0}")]
    Panicked(#[from] tokio::task::JoinError),
    #[error("the server is shutting down")]
    Closed(#[from] tokio::sync::AcquireError),
}

impl UserWork {
    pub fn new(parallel: usize) -> Self {
        let parallel = parallel.max(1);
        Self {
            permits: Arc::new(Semaphore::new(parallel)),
            per_owner: (parallel / 2).max(1),
            owners: Arc::default(),
        }
    }

    fn owner(&self, owner: &str) -> Arc<Semaphore> {
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        if owners.len() >= IDLE_OWNERS && !owners.contains_key(owner) {
            owners.retain(|_, slots| Arc::strong_count(slots) > 1);
        }
        owners
            .entry(owner.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_owner)))
            .clone()
    }

    /// Runs `work` for `owner` (a sandbox id) on the blocking pool once a
    /// slot is free. The slot is held until `work` returns, even when the
    /// caller stops waiting (a client that hangs up does not free a core
    /// its script still uses).
    pub async fn run<T: Send + 'static>(
        &self,
        owner: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, WorkFailed> {
        let own = self.owner(owner).acquire_owned().await?;
        let shared = self.permits.clone().acquire_owned().await?;
        let joined = tokio::task::spawn_blocking(move || {
            let _slots = (own, shared);
            work()
        })
        .await?;
        Ok(joined)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_sandbox_holds_at_most_half_the_slots() {
        let work = UserWork::new(2);
        let (started, mut waiting) = tokio::sync::mpsc::unbounded_channel();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        let mut busy = Vec::new();
        for _ in 0..2 {
            let (work, started, gate) = (work.clone(), started.clone(), gate.clone());
            busy.push(tokio::spawn(async move {
                work.run("sbx-hog", move || {
                    let _ = started.send(());
                    let _ = gate.lock().unwrap().recv();
                })
                .await
            }));
        }
        waiting.recv().await.unwrap();
        // The hog's second run waits for its own slot; another sandbox runs.
        let other = tokio::time::timeout(Duration::from_secs(5), work.run("sbx-other", || 7));
        assert_eq!(other.await.unwrap().unwrap(), 7);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), waiting.recv())
                .await
                .is_err(),
            "the hog's second run started beside its first"
        );
        release.send(()).unwrap();
        release.send(()).unwrap();
        for run in busy {
            run.await.unwrap().unwrap();
        }
    }
}
