//! What answers an operation besides the spec: stateful collections and
//! their lifecycles, scripts and templates (bounded), scenarios and their
//! rules, forwarding, jobs on the sandbox clock, events, and chaos.

pub(crate) mod behaviour;
pub(crate) mod call;
pub mod chaos;
pub(crate) mod conditions;
pub mod events;
pub(crate) mod fixtures;
pub(crate) mod forward;
pub mod functions;
pub mod jobs;
pub(crate) mod lifecycle;
pub(crate) mod scenarios;
pub(crate) mod script;
pub(crate) mod stateful;
pub(crate) mod template_bounds;
pub(crate) mod templates;
