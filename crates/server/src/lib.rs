//! The HTTP front of SmartSandbox: control plane (`/api/v1`), data plane
//! (everything addressed to a sandbox) and the in-memory registry that keeps
//! the data plane's hot path off the database.
//!
//! [`start`] takes a bound listener and returns a handle, so tests bind
//! port 0 and the CLI binds what the user asked for.

mod app;
mod clock;
pub mod config;
mod control;
mod data_plane;
mod deliveries;
pub mod demo;
mod drift;
mod egress;
mod error;
mod idempotency;
mod ids;
mod listener;
mod metrics;
mod middleware;
mod mock;
mod reaper;
mod registry;
mod request_log;
mod scheduler;
mod service;
mod snippets;
mod telemetry;
mod user_work;
mod workers;
mod writer;

pub use app::{Server, start};
pub use config::{AuditLimits, Config, ConfigError, Limits, RequestLogLimits};
pub use control::openapi::control_plane_openapi;
pub use mock::{MockOptions, MockServer, start_mock};
pub use sbx_engine::{AuthMode, ScriptLimits};
