//! Integration tests: the real server on a random port, over HTTP.

mod addressing;
mod auth;
mod behaviours;
mod chaos;
mod clock;
mod concurrency;
mod contract;
mod control_plane;
mod explain;
mod forwarding;
mod helpers;
mod idempotency;
mod jobs;
mod lifecycle;
mod logs;
mod metrics;
mod mock;
mod replay;
mod resources;
mod responses;
mod scenarios;
mod states;
mod telemetry;
mod timeline;
mod validation;
mod webhooks;
