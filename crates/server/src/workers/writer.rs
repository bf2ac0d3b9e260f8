//! Group commit: what requests change is written by one task, many
//! requests per transaction. A request still waits until its own changes are
//! committed before it is answered, but under load a transaction's cost is
//! shared by every request that arrived while the previous one was written.

use std::sync::Arc;

use sbx_store::{ChangeSet, Store, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::workers::{Workers, next};

/// Most change sets written in one transaction.
const MAX_BATCH: usize = 512;
/// Change sets waiting for the writer before requests wait to queue.
const QUEUE: usize = 8192;

struct Job {
    change: ChangeSet,
    done: oneshot::Sender<Result<(), WriteFailed>>,
}

/// Why a change set was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteFailed {
    /// The store refused the batch the change set was in (shared by every
    /// change set of that batch).
    #[error("committing the batch failed: {0}")]
    Store(Arc<StoreError>),
    #[error("the writer has stopped")]
    Stopped,
}

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writing task; when the workers close, it commits what
    /// is queued and ends.
    pub fn start(store: Arc<dyn Store>, workers: &Workers) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        workers.spawn_sink(run(store, queue, workers.closing()));
        Self { jobs }
    }

    /// Writes `change`, returning once it is committed.
    pub async fn save(&self, change: ChangeSet) -> Result<(), WriteFailed> {
        if change.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        self.jobs
            .send(Job { change, done })
            .await
            .map_err(|_| WriteFailed::Stopped)?;
        committed.await.unwrap_or(Err(WriteFailed::Stopped))
    }
}

async fn run(store: Arc<dyn Store>, mut queue: mpsc::Receiver<Job>, closing: CancellationToken) {
    while let Some(first) = next(&mut queue, &closing).await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (changes, waiting): (Vec<ChangeSet>, Vec<_>) =
            jobs.into_iter().map(|job| (job.change, job.done)).unzip();
        let result = store
            .save_changes(&changes)
            .await
            .map_err(|e| WriteFailed::Store(Arc::new(e)));
        for done in waiting {
            let _ = done.send(result.clone());
        }
    }
}
