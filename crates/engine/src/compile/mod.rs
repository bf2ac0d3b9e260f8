//! Compilation: a spec and its project files become a [`revision::CompiledRevision`]
//! once per revision — resources inferred, behaviours, templates and rules
//! compiled, every problem reported with its place.

pub mod project;
pub mod redaction;
pub(crate) mod resources;
pub(crate) mod revision;
