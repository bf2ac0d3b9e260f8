//! The engine driven as the server drives it, for the integration tests:
//! a compiled revision, one sandbox's state, requests through `handle()`.

use std::sync::Arc;

use sbx_engine::{
    AuthMode, CompiledRevision, Decision, Outcome, ProjectFiles, Request, SandboxContext,
    SandboxState, ScriptLimits, handle,
};
use serde_json::{Map, Value};

/// 2026-03-01T12:00:00Z on the sandbox clock.
pub const NOW_MS: i64 = 1_772_366_400_000;

pub fn compile(spec: &str, files: &ProjectFiles) -> Arc<CompiledRevision> {
    let model = sbx_spec::load_api(spec, &sbx_spec::Limits::default()).expect("the spec loads");
    Arc::new(
        CompiledRevision::compile_project(model, files, &ScriptLimits::default())
            .expect("the project compiles"),
    )
}

/// A sandbox of one revision: its records, and how it is set up.
pub struct Sandbox {
    pub revision: Arc<CompiledRevision>,
    pub state: Arc<SandboxState>,
    pub env: Arc<Map<String, Value>>,
    pub auth: AuthMode,
    pub default_scenario: Option<&'static str>,
}

impl Sandbox {
    pub fn of(revision: Arc<CompiledRevision>) -> Self {
        let state = SandboxState::load(&revision.behaviours.fixtures, Vec::new(), NOW_MS);
        Self {
            revision,
            state: Arc::new(state),
            env: Arc::new(Map::new()),
            auth: AuthMode::None,
            default_scenario: None,
        }
    }

    /// Sends a request where it may block (as the blocking pool runs it);
    /// the answer, or a panic when the pipeline yields anyway.
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Outcome {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let request = Request {
            method,
            path,
            query,
            headers: &headers,
            body: body.as_bytes(),
        };
        let key_check = |sent: sbx_engine::Credential<'_>, _: &sbx_spec::Operation| {
            if sent.text() == "sk_test_engine" {
                sbx_engine::KeyVerdict::Valid
            } else {
                sbx_engine::KeyVerdict::Unknown
            }
        };
        let context = SandboxContext {
            id: "sbx-engine",
            seed: 7,
            auth: self.auth,
            key_check: &key_check,
            rate_check: &|| Ok(()),
            state: &self.state,
            env: &self.env,
            upstream: None,
            functions: None,
            now_ms: NOW_MS,
            may_block: true,
            chaos: None,
            default_scenario: self.default_scenario,
            chaos_draw: None,
            trace: true,
            base_url: "http://sandbox.test".into(),
        };
        match handle(&self.revision, &context, &request) {
            Decision::Answer(outcome) => outcome,
            Decision::Yield(pending) => panic!("yielded where it may block: {}", pending.reason),
        }
    }
}
