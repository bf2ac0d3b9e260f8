//! The data-plane pipeline for one request against one compiled revision:
//! route → authenticate → validate → choose a response → render it.
//!
//! The engine knows nothing of HTTP frameworks or storage: the server hands
//! it a [`Request`] and a [`SandboxContext`] and writes back the [`Response`].
//! A [`CompiledRevision`] is built once per spec revision and shared by every
//! sandbox pinned to it.

mod auth;
mod body;
mod cache;
mod headers;
mod negotiate;
mod params;
mod pipeline;
mod problem;
mod respond;
mod revision;
mod router;
#[cfg(test)]
mod test_support;

pub use headers::HeaderSource;
pub use pipeline::{AuthMode, Request, Response, SandboxContext, handle};
pub use problem::problem_response;
pub use revision::{CompileError, CompiledRevision, OperationSummary};
pub use router::{RouteMatch, Router};

/// Everything a sandbox API key starts with; keys are found by this prefix.
pub const API_KEY_PREFIX: &str = "sk_test_";
