//! The HTTP edge both planes share: the listener and its timeouts, the
//! edge middleware, the control plane's problem type, and who may call.

pub mod access;
pub mod cors;
pub mod error;
pub mod listener;
pub mod middleware;
pub mod refusals;
