//! The per-project drift report: each distinct way answers departed from
//! the spec, with how often and when. Held in memory (bounded); a restart
//! starts a fresh report.

use std::{collections::HashMap, sync::Mutex};

use sbx_engine::Drift;
use serde::Serialize;
use utoipa::ToSchema;

/// Distinct findings kept per project; the least recently seen go first.
pub const MAX_FINDINGS: usize = 200;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DriftFinding {
    pub operation: String,
    pub status: u16,
    /// Where in the body (empty: the status or media type).
    pub pointer: String,
    pub message: String,
    pub revision: u32,
    pub count: u64,
    pub last_sandbox: String,
    pub first_seen: String,
    pub last_seen: String,
    #[serde(skip)]
    last_seen_ms: i64,
}

#[derive(Default)]
pub struct DriftReport {
    projects: Mutex<HashMap<String, Vec<DriftFinding>>>,
}

impl DriftReport {
    pub fn record(&self, project: &str, revision: u32, sandbox: &str, drift: &Drift, now_ms: i64) {
        let now = crate::app::rfc3339(now_ms);
        let mut projects = self.projects.lock().unwrap_or_else(|e| e.into_inner());
        let findings = projects.entry(project.to_owned()).or_default();
        let same = |f: &DriftFinding| {
            f.operation == drift.operation
                && f.status == drift.status
                && f.pointer == drift.pointer
                && f.message == drift.message
                && f.revision == revision
        };
        if let Some(found) = findings.iter_mut().find(|f| same(f)) {
            found.count += 1;
            found.last_sandbox = sandbox.to_owned();
            found.last_seen = now;
            found.last_seen_ms = now_ms;
            return;
        }
        if findings.len() >= MAX_FINDINGS
            && let Some(oldest) = findings
                .iter()
                .enumerate()
                .min_by_key(|(_, f)| f.last_seen_ms)
                .map(|(i, _)| i)
        {
            findings.swap_remove(oldest);
        }
        findings.push(DriftFinding {
            operation: drift.operation.clone(),
            status: drift.status,
            pointer: drift.pointer.clone(),
            message: drift.message.clone(),
            revision,
            count: 1,
            last_sandbox: sandbox.to_owned(),
            first_seen: now.clone(),
            last_seen: now,
            last_seen_ms: now_ms,
        });
    }

    /// Findings of `project`, most recently seen first.
    pub fn findings(&self, project: &str) -> Vec<DriftFinding> {
        let projects = self.projects.lock().unwrap_or_else(|e| e.into_inner());
        let mut findings = projects.get(project).cloned().unwrap_or_default();
        findings.sort_by_key(|f| std::cmp::Reverse(f.last_seen_ms));
        findings
    }

    pub fn forget(&self, project: &str) {
        self.projects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(project);
    }
}
