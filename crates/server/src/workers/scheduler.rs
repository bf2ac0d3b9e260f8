//! Scheduled jobs on sandbox clocks: run every due job of a sandbox in
//! time order (when its clock is advanced, synchronously; when real time
//! reaches them, from the worker), each with the clock at its due time,
//! and commit their effects together.

use std::{cmp::Reverse, collections::BinaryHeap, sync::Arc, time::Duration};

use sbx_engine::{
    CompiledRevision,
    jobs::{JobSandbox, ScheduledJob},
};
use sbx_store::{ChangeSet, JobRecord, Origin};
use tokio_util::sync::CancellationToken;

use crate::{app::AppState, data_plane::change_set, runtime::registry::LiveSandbox};

/// Most jobs one run may execute: a job that keeps scheduling itself
/// inside the window being run stops here instead of looping forever.
pub const MAX_JOBS_PER_RUN: usize = 100_000;

/// How often the worker looks for jobs that fell due in real time.
const POLL: Duration = Duration::from_millis(200);

/// Why a run of due jobs did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunFailed {
    #[error(transparent)]
    Store(#[from] sbx_store::StoreError),
    #[error("the job runner failed: {0}")]
    Work(#[from] crate::workers::user_work::WorkFailed),
}

/// What a run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunReport {
    pub ran: usize,
    pub failed: usize,
    /// Set when the run stopped at [`MAX_JOBS_PER_RUN`]: the due time of
    /// the first job left waiting.
    pub stopped_at_ms: Option<i64>,
}

pub fn to_record(job: &ScheduledJob) -> JobRecord {
    JobRecord {
        id: job.id.as_str().into(),
        seq: 0,
        due_at_ms: job.due_ms,
        action: serde_json::to_value(&job.action).unwrap_or(serde_json::Value::Null),
        payload: job.payload.clone(),
        scheduled_at_ms: job.scheduled_at_ms,
        error: None,
        origin: None,
    }
}

/// A stored job as the engine runs it; its action must be one the engine knows.
pub fn from_record(record: &JobRecord) -> Result<ScheduledJob, serde_json::Error> {
    Ok(ScheduledJob {
        id: record.id.to_string(),
        due_ms: record.due_at_ms,
        action: serde::Deserialize::deserialize(&record.action)?,
        payload: record.payload.clone(),
        scheduled_at_ms: record.scheduled_at_ms,
    })
}

/// Runs every job of `sandbox` due by `until_ms` (sandbox time), jobs
/// they schedule inside that window included, and commits what they did
/// (at most [`MAX_JOBS_PER_RUN`]; see [`RunReport::stopped_at_ms`]).
/// The caller holds `sandbox.jobs`.
pub async fn run_due(
    state: &AppState,
    sandbox: &Arc<LiveSandbox>,
    until_ms: i64,
) -> Result<RunReport, RunFailed> {
    sandbox.next_job.begin();
    let limit = u32::try_from(MAX_JOBS_PER_RUN).unwrap_or(u32::MAX);
    let stored = state
        .store
        .pending_jobs(&sandbox.id, Some(until_ms), limit)
        .await?;
    let mut report = RunReport::default();
    if !stored.is_empty() {
        let compiled = sandbox.serving().compiled;
        let context = sandbox.background();
        let (changes, ran) = state
            .user_work
            .run(&sandbox.id, move || {
                run_in_order(&compiled, &context, &stored, until_ms)
            })
            .await?;
        report = ran;
        state.store.save_changes(&changes).await?;
        // Events the jobs emitted are due for delivery at once.
        if let Some(first) = changes.iter().flat_map(|c| &c.events).map(|e| e.2).min() {
            sandbox.next_delivery.note(first);
        }
    }
    let next = state.store.pending_jobs(&sandbox.id, None, 1).await?;
    let next = next.first().map(|job| job.due_at_ms);
    sandbox.next_job.set(next);
    if report.stopped_at_ms.is_none() {
        // More were due than one run loads.
        report.stopped_at_ms = next.filter(|due| *due <= until_ms);
    }
    Ok(report)
}

/// One job in the run queue: ordered by due time, then scheduling order
/// (stored jobs by their sequence, jobs scheduled during the run after).
struct Queued {
    job: ScheduledJob,
    /// What scheduled it, when it was scheduled during this run (and so is
    /// not stored yet).
    unstored_origin: Option<Origin>,
}

impl Queued {
    /// The job as stored, with what scheduled it.
    fn record(&self) -> JobRecord {
        JobRecord {
            origin: self.unstored_origin.clone(),
            ..to_record(&self.job)
        }
    }
}

fn run_in_order(
    compiled: &Arc<CompiledRevision>,
    sandbox: &JobSandbox,
    stored: &[JobRecord],
    until_ms: i64,
) -> (Vec<ChangeSet>, RunReport) {
    let mut queued: Vec<Queued> = Vec::new();
    let mut heap = BinaryHeap::new();
    let mut changes = Vec::new();
    let mut report = RunReport::default();
    for record in stored {
        match from_record(record) {
            Ok(job) => {
                heap.push(Reverse((job.due_ms, record.seq, queued.len())));
                queued.push(Queued {
                    job,
                    unstored_origin: None,
                });
            }
            Err(error) => {
                report.failed += 1;
                changes.push(ChangeSet {
                    sandbox_id: sandbox.id.clone(),
                    finished_jobs: vec![(
                        record.id.to_string(),
                        Some(format!("unreadable job action: {error}")),
                    )],
                    ..ChangeSet::default()
                });
            }
        }
    }
    let mut next_order = i64::MAX / 2;
    while let Some(Reverse((due_ms, _, index))) = heap.pop() {
        if report.ran == MAX_JOBS_PER_RUN {
            report.stopped_at_ms = Some(due_ms);
            // Jobs scheduled during the run and not run yet must be kept.
            let left = std::iter::once(index)
                .chain(heap.drain().map(|Reverse((_, _, i))| i))
                .filter(|i| queued[*i].unstored_origin.is_some())
                .map(|i| queued[i].record())
                .collect();
            changes.push(ChangeSet {
                sandbox_id: sandbox.id.clone(),
                jobs: left,
                ..ChangeSet::default()
            });
            break;
        }
        report.ran += 1;
        let job = &queued[index].job;
        let (mut journal, result) = sbx_engine::jobs::run(compiled, sandbox, job);
        if let Err(error) = &result {
            report.failed += 1;
            tracing::warn!(sandbox = %sandbox.id, job = %job.id, %error, "scheduled job failed");
        }
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut journal.jobs)
            .into_iter()
            .partition(|new| new.due_ms <= until_ms);
        journal.jobs = later;
        let origin = Origin::Job(job.id.clone());
        let mut change = change_set(&sandbox.id, journal, None, origin.clone());
        if queued[index].unstored_origin.is_some() {
            // Scheduled and run in this window: stored now, as run.
            change.jobs.push(queued[index].record());
        }
        change.finished_jobs.push((job.id.clone(), result.err()));
        changes.push(change);
        for new in now {
            heap.push(Reverse((new.due_ms, next_order, queued.len())));
            next_order += 1;
            queued.push(Queued {
                job: new,
                unstored_origin: Some(origin.clone()),
            });
        }
    }
    (changes, report)
}

/// Fires jobs that fall due in real time, until shutdown.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    super::every(POLL, shutdown, || fire_due(&state)).await;
}

/// Runs the due jobs of every sandbox (one round of the scheduler).
pub async fn fire_due(state: &AppState) {
    // Only the due ones are held while jobs run: moving a sandbox to
    // another server waits for whatever holds it.
    let due: Vec<_> = state
        .registry
        .all()
        .into_iter()
        .filter(|sandbox| {
            sandbox.served_here()
                && sandbox
                    .next_job
                    .get()
                    .is_some_and(|due_ms| due_ms <= sandbox.now_ms())
        })
        .collect();
    for sandbox in due {
        let now_ms = sandbox.now_ms();
        // An advance running them right now is as good.
        let Ok(_running) = sandbox.jobs.try_lock() else {
            continue;
        };
        if let Err(error) = run_due(state, &sandbox, now_ms).await {
            tracing::warn!(sandbox = %sandbox.id, %error, "running due jobs failed");
            // Retry later rather than spin on the same failure.
            sandbox.next_job.set(Some(now_ms.saturating_add(60_000)));
        }
    }
}
