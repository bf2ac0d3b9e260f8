//! Webhooks as the Standard Webhooks specification defines them: endpoint
//! secrets (`whsec_…`), the `webhook-id` / `webhook-timestamp` /
//! `webhook-signature` headers (signed by the specification's own
//! reference library), and the retry schedule deliveries follow.
//!
//! Storage, the outbox and the delivery worker live with the server; this
//! crate knows nothing of HTTP frameworks or databases.

mod faults;
mod schedule;
mod signing;

pub use faults::Faults;
pub use schedule::{RetrySchedule, ScheduleName};
pub use signing::{SECRET_PREFIX, SignError, generate_secret, sign, signature_header};
