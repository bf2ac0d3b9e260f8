//! The HTTP edge both planes share: the listener and its timeouts, the
//! edge middleware, the control plane's problem type, and who may call.

pub mod access;
pub mod error;
pub mod front;
pub mod listener;
pub mod middleware;
pub mod proxy;
pub mod refusals;
