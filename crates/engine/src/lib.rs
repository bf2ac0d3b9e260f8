//! The data-plane pipeline for one request against one compiled revision:
//! route → authenticate → validate → choose a response → render it.
//!
//! The engine knows nothing of HTTP frameworks or storage: the server hands
//! it a [`Request`] and a [`SandboxContext`] and writes back the [`Response`].
//! A [`CompiledRevision`] is built once per spec revision and shared by every
//! sandbox pinned to it.

mod auth;
mod behaviour;
mod body;
mod cache;
mod call;
pub mod chaos;
pub mod clock;
mod conditions;
mod drift;
pub mod events;
mod fixtures;
mod forward;
mod headers;
pub mod jobs;
mod lifecycle;
mod near_miss;
mod negotiate;
mod order;
mod params;
mod pipeline;
mod problem;
pub mod project;
pub mod redaction;
mod resources;
mod respond;
mod revision;
mod router;
mod scenarios;
mod script;
mod state;
mod stateful;
mod template_bounds;
mod templates;
mod trace;

pub use behaviour::seed;
pub use call::{EmittedEvent, Journal, StateChange};
pub use chaos::{ChaosEffect, ChaosSpec};
pub use drift::Drift;
pub use forward::{Upstream, UpstreamRequest, UpstreamResponse};
pub use headers::HeaderSource;
pub use near_miss::{NearMiss, near_misses};
pub use pipeline::{
    AuthMode, Decision, Outcome, Request, Response, SandboxContext, Yield, declared_error_for,
    handle,
};
pub use problem::ProblemType;
pub use project::{FileProblem, ProjectFiles};
pub use revision::{CompileError, CompiledRevision, OperationSummary};
pub use router::{RouteMatch, Router};
pub use scenarios::ScenarioSummary;
pub use script::ScriptLimits;
pub use state::{FixtureRecord, OverlayRow, ResourceChange, SandboxState};
pub use trace::{Step, Verdict};

/// Everything a sandbox API key starts with; keys are found by this prefix.
pub const API_KEY_PREFIX: &str = "sk_test_";
