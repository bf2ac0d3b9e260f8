//! What a developer uses against its quotas (`[quotas]`): shown on
//! `GET /api/v1/me` and in `/metrics`. Admins are exempt.

use serde::Serialize;
use utoipa::ToSchema;

use super::{ServiceResult, caller::Caller};
use crate::app::AppState;

/// One quota: what is used of what is allowed.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Use {
    pub used: u64,
    pub limit: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// Live sandboxes.
    pub sandboxes: Use,
    /// Data-plane requests today (UTC) over all the developer's sandboxes.
    pub requests_today: Use,
    /// Webhook endpoints over all the developer's sandboxes.
    pub webhook_endpoints: Use,
    /// Live code sessions.
    pub sessions: Use,
    /// Longest time to live a sandbox may ask for.
    pub max_ttl_seconds: u64,
    /// A sandbox without a request for this many days is removed (0: never).
    pub inactive_days: u32,
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// The caller's usage; `None` for admins, who have no quotas.
pub async fn usage(state: &AppState, caller: &Caller) -> ServiceResult<Option<Usage>> {
    let Some(owner) = caller.owner().filter(|_| !caller.is_admin()) else {
        return Ok(None);
    };
    let quotas = &state.config.quotas;
    let sandboxes = super::sandboxes::list(state, caller, None).len();
    let endpoints = super::webhooks::endpoints_of(state, caller).await?;
    let requests = super::usage::requests_today(state, owner).await?;
    Ok(Some(Usage {
        sandboxes: Use {
            used: count(sandboxes),
            limit: count(quotas.sandboxes),
        },
        requests_today: Use {
            used: requests,
            limit: quotas.requests_per_day,
        },
        webhook_endpoints: Use {
            used: count(endpoints),
            limit: count(quotas.webhook_endpoints),
        },
        sessions: Use {
            used: count(super::sessions::list(state, caller).len()),
            limit: count(quotas.sessions),
        },
        max_ttl_seconds: quotas.max_ttl_seconds,
        inactive_days: quotas.inactive_days,
    }))
}
