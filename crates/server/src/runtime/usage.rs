//! Requests per UTC day, counted in memory where the data plane can afford
//! it: for each developer over all its sandboxes (its quota), and for each
//! sandbox. Counts restart with the process.

use std::sync::atomic::{AtomicU64, Ordering};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A developer account as its sandboxes share it.
#[derive(Debug)]
pub struct Owner {
    pub id: sbx_store::AccountId,
    pub usage: DailyRequests,
}

/// One word, so that a new day and a count never race: the UTC day (days
/// since the epoch) in the high 32 bits, that day's requests in the low 32.
#[derive(Debug, Default)]
pub struct DailyRequests(AtomicU64);

const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

fn day_of(now_ms: i64) -> u64 {
    u64::try_from(now_ms.div_euclid(DAY_MS)).unwrap_or(0)
}

impl DailyRequests {
    /// Adds one request at `now_ms` unless `limit` requests were made that
    /// day; returns the count before, and whether it was added.
    fn add(&self, now_ms: i64, limit: u64) -> (u64, bool) {
        let day = day_of(now_ms);
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let made = if current >> COUNT_BITS == day {
                current & COUNT_MASK
            } else {
                0
            };
            if made >= limit.min(COUNT_MASK) {
                return (made, false);
            }
            let next = (day << COUNT_BITS) | (made + 1);
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return (made, true),
                Err(actual) => current = actual,
            }
        }
    }

    /// Counts a request at `now_ms`, without a limit.
    pub fn note(&self, now_ms: i64) {
        self.add(now_ms, u64::MAX);
    }

    /// Counts a request at `now_ms` against `limit`: `Err` with the
    /// requests made today and the seconds until the day ends when the
    /// limit is reached (the request is not counted).
    pub fn count(&self, now_ms: i64, limit: u64) -> Result<(), (u64, u64)> {
        let (made, added) = self.add(now_ms, limit);
        if added {
            return Ok(());
        }
        let left_ms = (now_ms.div_euclid(DAY_MS) + 1) * DAY_MS - now_ms;
        Err((made, u64::try_from(left_ms).unwrap_or(0).div_ceil(1000)))
    }

    /// Requests made on the UTC day of `now_ms`.
    pub fn requests_on(&self, now_ms: i64) -> u64 {
        let current = self.0.load(Ordering::Acquire);
        if current >> COUNT_BITS == day_of(now_ms) {
            current & COUNT_MASK
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
        let usage = DailyRequests::default();
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        assert!(usage.count(noon, 2).is_ok());
        assert!(usage.count(noon, 2).is_ok());
        assert_eq!(usage.count(noon, 2), Err((2, 12 * 3600)));
        assert_eq!(usage.requests_on(noon), 2);
        assert_eq!(usage.requests_on(noon + DAY_MS), 0);
        assert!(usage.count(noon + DAY_MS, 2).is_ok(), "a new day");
        assert_eq!(usage.requests_on(noon + DAY_MS), 1);
        usage.note(noon + DAY_MS);
        assert_eq!(usage.requests_on(noon + DAY_MS), 2);
        usage.note(noon + 2 * DAY_MS);
        assert_eq!(
            usage.requests_on(noon + 2 * DAY_MS),
            1,
            "counted without a limit, per day"
        );
    }
}
