//! Data-plane requests per UTC day, added up over every server on the
//! database: by account (what its daily quota counts) and by sandbox. Each
//! server counts in memory and adds what it counted every second or so.

use async_trait::async_trait;

use crate::{AccountId, SandboxId, StoreError};

/// Requests of one day: by account, what a server answered since it last
/// saved (several servers count one account); by sandbox, how many it
/// answered in all (one server serves a sandbox at a time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub accounts: Vec<(AccountId, u64)>,
    pub sandboxes: Vec<(SandboxId, u64)>,
}

impl DayCounts {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.sandboxes.is_empty()
    }
}

#[async_trait]
pub trait RequestCounts: Send + Sync {
    /// Saves a server's counts of `day` (days since the epoch, UTC): adds
    /// the accounts' to their totals, and raises the sandboxes' to theirs
    /// (a server that served a sandbox before it moved may save late: the
    /// highest count stands). Returns that day's total of every account.
    async fn save_requests(
        &self,
        day: i64,
        counted: &DayCounts,
    ) -> Result<Vec<(AccountId, u64)>, StoreError>;
    /// The totals of `day` of every account, or of `account` only.
    async fn account_requests(
        &self,
        day: i64,
        account: Option<&str>,
    ) -> Result<Vec<(AccountId, u64)>, StoreError>;
    /// The totals of `day` of every sandbox, or of `sandbox_id` only.
    async fn sandbox_requests(
        &self,
        day: i64,
        sandbox_id: Option<&str>,
    ) -> Result<Vec<(SandboxId, u64)>, StoreError>;
    /// Forgets the days before `day`.
    async fn prune_requests(&self, before_day: i64) -> Result<u64, StoreError>;
}
