//! Where user code runs: scripts, templates, forwarding, scheduled jobs and
//! seeds go to the blocking pool, never an async worker, and at most
//! [`crate::Limits::parallel_scripts`] of them at once. The rest wait
//! their turn (asynchronously, holding no thread), so eight hostile
//! scripts neither take every core from other requests nor stretch each
//! other's wall-clock limits, which count from when a run starts.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// The bounded pool of user work.
#[derive(Clone)]
pub struct UserWork {
    permits: Arc<Semaphore>,
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
        Self {
            permits: Arc::new(Semaphore::new(parallel.max(1))),
        }
    }

    /// Runs `work` on the blocking pool once a slot is free. The slot is
    /// held until `work` returns, even when the caller stops waiting (a
    /// client that hangs up does not free a core its script still uses).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, WorkFailed> {
        let permit = self.permits.clone().acquire_owned().await?;
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await?;
        Ok(joined)
    }
}
