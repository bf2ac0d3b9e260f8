//! What a running server holds in memory: live sandboxes and compiled
//! revisions (the registry), sandbox clocks, and the ids it mints.

pub mod clock;
pub mod ids;
pub mod keys;
pub mod members;
pub mod moves;
pub mod namespaces;
pub mod oauth;
pub mod rate;
pub mod receiver;
pub mod registry;
pub mod session_egress;
pub mod sessions;
pub mod snapshots;
pub mod standby;
pub mod templates;
pub mod usage;
