//! Requests per UTC day, counted in memory where the data plane can afford
//! it: for each developer over all its sandboxes (its quota), and for each
//! sandbox. Every second or so a server saves what it counted to the
//! database and reads back every server's totals (`service::usage`), so a
//! quota holds over all servers, and counts outlive restarts and moves.

use std::sync::atomic::{AtomicU64, Ordering};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A developer account as its sandboxes share it.
#[derive(Debug)]
pub struct Owner {
    pub id: sbx_store::AccountId,
    pub usage: DailyRequests,
}

/// One day's requests as this server knows them: the total over every
/// server when it last read the database (`known`), and what it counted
/// since (`unsaved`). Each is one word, so that a new day and a count
/// never race: the UTC day (days since the epoch) in the high 32 bits,
/// that day's requests in the low 32.
#[derive(Debug, Default)]
pub struct DailyRequests {
    known: AtomicU64,
    unsaved: AtomicU64,
}

const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The UTC day of `now_ms`, in days since the epoch.
pub fn day_of(now_ms: i64) -> u64 {
    u64::try_from(now_ms.div_euclid(DAY_MS)).unwrap_or(0)
}

/// The requests `word` holds for `day`.
fn on(word: u64, day: u64) -> u64 {
    if word >> COUNT_BITS == day {
        word & COUNT_MASK
    } else {
        0
    }
}

fn word(day: u64, count: u64) -> u64 {
    (day << COUNT_BITS) | count.min(COUNT_MASK)
}

/// Sets `cell` to `change(day's count)` for `day`, unless it holds a
/// later day.
fn update(cell: &AtomicU64, day: u64, change: impl Fn(u64) -> u64) {
    let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
        (current >> COUNT_BITS <= day).then(|| word(day, change(on(current, day))))
    });
}

/// Set in a [`DailyCount`] by every request, cleared when it is saved.
const CHANGED: u64 = 1 << 63;

/// One sandbox's requests of the day, in one word (every idle sandbox
/// pays for it): the UTC day and its count as [`DailyRequests`] keeps
/// them, and the top bit set while the count has changed since it was
/// last saved.
#[derive(Debug, Default)]
pub struct DailyCount(AtomicU64);

impl DailyCount {
    /// Counts a request at `now_ms`.
    pub fn note(&self, now_ms: i64) {
        let day = day_of(now_ms);
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                Some(CHANGED | word(day, on(current & !CHANGED, day) + 1))
            });
    }

    /// Requests made on the UTC day of `now_ms`.
    pub fn requests_on(&self, now_ms: i64) -> u64 {
        on(self.0.load(Ordering::Acquire) & !CHANGED, day_of(now_ms))
    }

    /// The day and its count when they changed since this was last
    /// called, to save.
    pub fn take_change(&self) -> Option<(u64, u64)> {
        let taken = self.0.fetch_and(!CHANGED, Ordering::AcqRel);
        (taken & CHANGED != 0).then(|| {
            let taken = taken & !CHANGED;
            (taken >> COUNT_BITS, taken & COUNT_MASK)
        })
    }

    /// Marks the count changed again: its save failed.
    pub fn keep_change(&self) {
        self.0.fetch_or(CHANGED, Ordering::AcqRel);
    }

    /// Raises `day`'s count to `total`, as saved (by this server before
    /// a restart, or by the server the sandbox moved from).
    pub fn raise(&self, day: u64, total: u64) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                let (changed, count) = (current & CHANGED, current & !CHANGED);
                (count >> COUNT_BITS <= day).then(|| changed | word(day, on(count, day).max(total)))
            });
    }
}

impl DailyRequests {
    /// Adds one request at `now_ms` unless `limit` requests were made that
    /// day; returns the count before, and whether it was added.
    fn add(&self, now_ms: i64, limit: u64) -> (u64, bool) {
        let day = day_of(now_ms);
        let known = on(self.known.load(Ordering::Acquire), day);
        let mut current = self.unsaved.load(Ordering::Acquire);
        loop {
            let counted = on(current, day);
            let made = known + counted;
            if made >= limit.min(COUNT_MASK) {
                return (made, false);
            }
            match self.unsaved.compare_exchange_weak(
                current,
                word(day, counted + 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return (made, true),
                Err(actual) => current = actual,
            }
        }
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

    /// Requests made on the UTC day of `now_ms`, on every server as far as
    /// this one knows.
    pub fn requests_on(&self, now_ms: i64) -> u64 {
        let day = day_of(now_ms);
        on(self.known.load(Ordering::Acquire), day) + on(self.unsaved.load(Ordering::Acquire), day)
    }

    /// Takes what was counted since the last take, to add to the
    /// database: (day, requests). Known meanwhile, so that no count goes
    /// missing while the database answers.
    pub fn take(&self) -> Option<(u64, u64)> {
        let taken = self.unsaved.swap(0, Ordering::AcqRel);
        let (day, count) = (taken >> COUNT_BITS, taken & COUNT_MASK);
        if count == 0 {
            return None;
        }
        update(&self.known, day, |known| known + count);
        Some((day, count))
    }

    /// Gives back what [`Self::take`] took when the database did not add it.
    pub fn put_back(&self, day: u64, count: u64) {
        update(&self.known, day, |known| known.saturating_sub(count));
        update(&self.unsaved, day, |unsaved| unsaved + count);
    }

    /// Raises what is known of `day` to `total` over every server, as the
    /// database has it. Never lowers it: a total read while this server's
    /// own save was under way does not hold that save's requests yet.
    pub fn raise(&self, day: u64, total: u64) {
        update(&self.known, day, |known| known.max(total));
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
    }

    #[test]
    fn counts_are_taken_for_the_database_and_raised_to_its_totals() {
        let usage = DailyRequests::default();
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        assert_eq!(usage.take(), None, "nothing counted");
        usage.raise(20_000, 5);
        assert_eq!(usage.requests_on(noon), 5, "other servers' requests");
        assert_eq!(usage.count(noon, 7), Ok(()));
        assert_eq!(usage.count(noon, 7), Ok(()));
        assert_eq!(usage.count(noon, 7), Err((7, 12 * 3600)));
        assert_eq!(usage.take(), Some((20_000, 2)));
        assert_eq!(usage.requests_on(noon), 7, "taken, still known");
        usage.put_back(20_000, 2);
        assert_eq!(usage.requests_on(noon), 7, "given back, still known");
        assert_eq!(usage.take(), Some((20_000, 2)), "taken again");
        usage.raise(20_000, 3);
        assert_eq!(usage.requests_on(noon), 7, "a stale total lowers nothing");
        usage.raise(20_000, 9);
        assert_eq!(usage.requests_on(noon), 9, "the database's total");
        usage.raise(19_999, 100);
        assert_eq!(
            usage.requests_on(noon),
            9,
            "an earlier day's total is ignored"
        );
        assert_eq!(usage.requests_on(noon + DAY_MS), 0, "a new day");
    }

    #[test]
    fn a_sandboxs_count_is_saved_when_it_changed() {
        let count = DailyCount::default();
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        assert_eq!(count.take_change(), None, "nothing counted");
        count.raise(20_000, 5);
        assert_eq!(count.requests_on(noon), 5, "as saved before");
        assert_eq!(count.take_change(), None, "what was saved is no change");
        count.note(noon);
        count.note(noon);
        assert_eq!(count.take_change(), Some((20_000, 7)));
        assert_eq!(count.take_change(), None, "saved");
        count.keep_change();
        assert_eq!(count.take_change(), Some((20_000, 7)), "a failed save");
        count.raise(20_000, 3);
        assert_eq!(count.requests_on(noon), 7, "never lowered");
        count.note(noon + DAY_MS);
        assert_eq!(count.requests_on(noon + DAY_MS), 1, "a new day");
        assert_eq!(count.take_change(), Some((20_001, 1)));
        count.raise(20_000, 100);
        assert_eq!(
            count.requests_on(noon + DAY_MS),
            1,
            "an earlier day's is ignored"
        );
    }
}
