//! The HTTP front of SmartSandbox: control plane (`/api/v1`), data plane
//! (everything addressed to a sandbox) and the in-memory registry that keeps
//! the data plane's hot path off the database.
//!
//! [`start`] takes a bound listener and returns a handle, so tests bind
//! port 0 and the CLI binds what the user asked for.

mod app;
pub mod config;
mod control;
mod data_plane;
pub mod demo;
mod http;
mod observability;
mod portal;
mod runtime;
mod service;
mod workers;

pub use app::{Server, start};
pub use config::{
    AccountSettings, AuditLimits, Config, ConfigError, Limits, Quotas, RequestLogLimits, SignupMode,
};
pub use control::openapi::control_plane_openapi;
pub use data_plane::mock::{MockOptions, MockServer, start_mock};
pub use sbx_engine::{AuthMode, ScriptLimits};
