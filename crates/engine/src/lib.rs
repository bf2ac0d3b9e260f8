//! The data-plane pipeline for one request against one compiled revision:
//! route → authenticate → validate → choose a response → render it.
//!
//! The engine knows nothing of HTTP frameworks or storage: the server hands
//! it a [`Request`] and a [`SandboxContext`] and writes back the [`Response`].
//! A [`CompiledRevision`] is built once per spec revision and shared by every
//! sandbox pinned to it.

mod behaviours;
mod compile;
mod pipeline;
mod request;
mod schema_view;
mod state;

pub use behaviours::{chaos, events, jobs};
pub use compile::{project, redaction};
pub use state::clock;

pub use behaviours::behaviour::{OperationBehaviour, OperationIndex, seed};
pub use behaviours::call::{EmittedEvent, Journal, StateChange};
pub use behaviours::forward::{
    CONNECTION_HEADERS, Upstream, UpstreamError, UpstreamRequest, UpstreamResponse,
};
pub use behaviours::functions::{
    Function, FunctionAnswer, FunctionCall, FunctionFailure, FunctionLanguage, FunctionSources,
    Functions,
};
pub use behaviours::scenarios::ScenarioSummary;
pub use behaviours::script::ScriptLimits;
pub use chaos::{ChaosEffect, ChaosSpec};
pub use compile::revision::{CompileError, CompiledRevision, OperationSummary};
pub use pipeline::cache::Synthesized;
pub use pipeline::drift::Drift;
pub use pipeline::problem::ProblemType;
pub use pipeline::trace::{Step, Verdict};
pub use pipeline::{
    AuthMode, BaseUrl, Decision, Outcome, RateLimited, Request, Response, SandboxContext, Yield,
    declared_error_for,
    failure::{Culprit, DOCS_PATH, Failure, FailureKind},
    handle,
};
pub use project::{FileProblem, ProjectFiles};
pub use request::auth::{Credential, KeyVerdict, bearer_error as bearer_challenge};
pub use request::headers::HeaderSource;
pub use request::near_miss::{NearMiss, near_misses};
pub use request::router::{RouteMatch, Router};
pub use state::{FixtureRecord, OverlayRow, ResourceChange, SandboxState};

/// A member or parameter name as APIs spell it loosely: lower case, without
/// `_` and `-` (`To`, `status-callback`, `errorCode` → `to`,
/// `statuscallback`, `errorcode`), for matching names across conventions.
pub(crate) fn loose_name(name: &str) -> String {
    loose_chars(name).collect()
}

/// Whether `a` and `b` have the same [`loose_name`], without allocating.
pub(crate) fn loosely_named(a: &str, b: &str) -> bool {
    loose_chars(a).eq(loose_chars(b))
}

fn loose_chars(name: &str) -> impl Iterator<Item = char> + '_ {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-'))
        .flat_map(char::to_lowercase)
}

/// What a sandbox's secret API key starts with.
pub const API_KEY_PREFIX: &str = "sk_test_";
/// What each kind of sandbox API key starts with (secret, restricted,
/// publishable); keys are found by these prefixes.
pub const API_KEY_PREFIXES: [&str; 3] = [API_KEY_PREFIX, "rk_test_", "pk_test_"];

/// Whether `token` starts like a sandbox API key.
pub fn is_key_like(token: &str) -> bool {
    API_KEY_PREFIXES
        .iter()
        .any(|prefix| token.starts_with(prefix))
}

/// Whether `text` holds something that starts like a sandbox API key.
pub fn mentions_key(text: &str) -> bool {
    memchr::memmem::find_iter(text.as_bytes(), b"_test_")
        .any(|at| at >= 2 && matches!(&text.as_bytes()[at - 2..at], b"sk" | b"rk" | b"pk"))
}
