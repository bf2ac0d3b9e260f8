//! What each developer uses, counted in memory where the data plane can
//! afford it: requests per UTC day over all its sandboxes. Counts restart
//! with the process.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A developer account as its sandboxes share it.
#[derive(Debug)]
pub struct Owner {
    pub id: sbx_store::AccountId,
    pub usage: OwnerUsage,
}

#[derive(Debug, Default)]
pub struct OwnerUsage {
    /// The UTC day `requests` counts (days since the epoch).
    day: AtomicI64,
    requests: AtomicU64,
}

impl OwnerUsage {
    /// Counts a request at `now_ms` against `limit`: `Err` with the
    /// requests made today and the seconds until the day ends when the
    /// limit is reached (the request is not counted).
    pub fn count(&self, now_ms: i64, limit: u64) -> Result<(), (u64, u64)> {
        let day = now_ms.div_euclid(DAY_MS);
        if self.day.swap(day, Ordering::AcqRel) != day {
            self.requests.store(0, Ordering::Release);
        }
        let made = self.requests.fetch_add(1, Ordering::AcqRel);
        if made < limit {
            return Ok(());
        }
        self.requests.fetch_sub(1, Ordering::AcqRel);
        let left_ms = (day + 1) * DAY_MS - now_ms;
        Err((made, u64::try_from(left_ms).unwrap_or(0).div_ceil(1000)))
    }

    /// Requests made on the UTC day of `now_ms`.
    pub fn requests_on(&self, now_ms: i64) -> u64 {
        if self.day.load(Ordering::Acquire) == now_ms.div_euclid(DAY_MS) {
            self.requests.load(Ordering::Acquire)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_utc_day_up_to_the_limit() {
        let usage = OwnerUsage::default();
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        assert!(usage.count(noon, 2).is_ok());
        assert!(usage.count(noon, 2).is_ok());
        assert_eq!(usage.count(noon, 2), Err((2, 12 * 3600)));
        assert_eq!(usage.requests_on(noon), 2);
        assert_eq!(usage.requests_on(noon + DAY_MS), 0);
        assert!(usage.count(noon + DAY_MS, 2).is_ok(), "a new day");
        assert_eq!(usage.requests_on(noon + DAY_MS), 1);
    }
}
