//! Host uids handed to sessions: each live session runs as a uid of its
//! own from a dedicated range, so no two sessions (nor the server) share
//! file ownership, process limits or signals.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
};

/// The range `[first, first + count)` and which of it is in use.
#[derive(Debug)]
pub struct UidPool {
    first: u32,
    count: u32,
    used: Mutex<BTreeSet<u32>>,
}

/// A uid held by one session until dropped.
#[derive(Debug)]
pub struct UidSlot {
    uid: u32,
    pool: Arc<UidPool>,
}

impl UidPool {
    /// A pool of `count` uids from `first`; uid 0 (root) is never in it.
    pub fn new(first: u32, count: u32) -> Arc<Self> {
        let first = first.max(1);
        Arc::new(Self {
            first,
            count: count.min(u32::MAX - first),
            used: Mutex::new(BTreeSet::new()),
        })
    }

    /// The lowest free uid, or `None` when every one is held.
    pub fn take(self: &Arc<Self>) -> Option<UidSlot> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let uid = (self.first..self.first + self.count).find(|uid| !used.contains(uid))?;
        used.insert(uid);
        Some(UidSlot {
            uid,
            pool: self.clone(),
        })
    }

    /// `uid` itself, when it is in the range and free: a session taken up
    /// again after a restart keeps the uid that owns its files.
    pub fn take_uid(self: &Arc<Self>, uid: u32) -> Option<UidSlot> {
        if !(self.first..self.first + self.count).contains(&uid) {
            return None;
        }
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.insert(uid).then(|| UidSlot {
            uid,
            pool: self.clone(),
        })
    }

    /// How many uids are held.
    pub fn in_use(&self) -> usize {
        self.used.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// How many uids are free.
    pub fn free(&self) -> usize {
        (self.count as usize).saturating_sub(self.in_use())
    }
}

impl UidSlot {
    pub fn uid(&self) -> u32 {
        self.uid
    }
}

impl Drop for UidSlot {
    fn drop(&mut self) {
        let mut used = self.pool.used.lock().unwrap_or_else(|e| e.into_inner());
        used.remove(&self.uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_unique_while_held_and_come_back_when_dropped() {
        let pool = UidPool::new(0, 2);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        assert_eq!((a.uid(), b.uid()), (1, 2), "never root");
        assert!(pool.take().is_none(), "the range is exhausted");
        drop(a);
        assert_eq!(pool.take().unwrap().uid(), 1);
        assert_eq!(
            pool.in_use(),
            1,
            "the slot taken and dropped above is free again"
        );
    }

    #[test]
    fn a_named_uid_is_taken_only_when_free_and_in_range() {
        let pool = UidPool::new(10, 3);
        let held = pool.take_uid(11).unwrap();
        assert_eq!(held.uid(), 11);
        assert!(pool.take_uid(11).is_none(), "held already");
        assert!(
            pool.take_uid(13).is_none() && pool.take_uid(9).is_none(),
            "out of range"
        );
        assert_eq!(pool.take().unwrap().uid(), 10, "the lowest free one");
        drop(held);
        assert!(pool.take_uid(11).is_some());
    }
}
