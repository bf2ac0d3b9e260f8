//! How the pipeline decided a request, step by step, for `explain`.
//!
//! Built only when asked for (a request whose log entry will be kept), so
//! a request that is not logged pays nothing for it.

use serde::Serialize;
use serde_json::Value;

/// What became of one stage of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    /// The stage did not apply (no scenario declared, auth disabled…).
    Skipped,
    /// The stage changed the answer without failing it (chaos latency,
    /// a scenario outcome, an idempotent replay).
    Applied,
}

/// One stage and what it decided, in words for a developer who has never
/// seen the spec's internals.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub stage: &'static str,
    pub verdict: Verdict,
    pub summary: String,
    /// Structured particulars (violations, the script error's line…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl Step {
    pub fn new(stage: &'static str, verdict: Verdict, summary: impl Into<String>) -> Self {
        Self {
            stage,
            verdict,
            summary: summary.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// The steps of one request, when tracing is on.
#[derive(Debug, Default)]
pub struct Trace {
    enabled: bool,
    steps: Vec<Step>,
}

impl Trace {
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            steps: Vec::new(),
        }
    }

    /// Records a step; `step` runs only when tracing is on.
    pub fn note(&mut self, step: impl FnOnce() -> Step) {
        if self.enabled {
            self.steps.push(step());
        }
    }

    pub fn into_steps(self) -> Vec<Step> {
        self.steps
    }
}
