//! Memoized synthesis. A synthesized value is a pure function of its seed
//! (sandbox seed, operation, status, path parameters, media type), so it is
//! computed once and shared. The cache is bounded; once full, each insert
//! evicts an arbitrary entry.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, RwLock},
};

use serde_json::Value;

/// A synthesized value and, once asked for, its JSON bytes.
#[derive(Debug)]
pub struct Synthesized {
    pub value: Value,
    json: OnceLock<Vec<u8>>,
}

impl Synthesized {
    pub fn new(value: Value) -> Self {
        Self {
            value,
            json: OnceLock::new(),
        }
    }

    pub fn json(&self) -> &[u8] {
        self.json
            .get_or_init(|| serde_json::to_vec(&self.value).unwrap_or_default())
    }
}

/// Entries kept per compiled revision before the cache starts over.
const CAPACITY: usize = 16_384;

#[derive(Debug, Default)]
pub struct SynthCache {
    values: RwLock<HashMap<u64, Arc<Synthesized>>>,
}

impl SynthCache {
    /// Never blocks: when another thread holds the lock, the value is
    /// computed (or not stored) instead of waiting. A thread preempted while
    /// holding a lock would otherwise stall every request behind it for a
    /// whole scheduler slice.
    pub fn get_or_insert_with(&self, seed: u64, make: impl FnOnce() -> Value) -> Arc<Synthesized> {
        if let Some(found) = self
            .values
            .try_read()
            .ok()
            .and_then(|v| v.get(&seed).cloned())
        {
            return found;
        }
        let value = Arc::new(Synthesized::new(make()));
        if let Ok(mut values) = self.values.try_write() {
            // Evict one entry per insert once full: clearing 16k values at
            // once would stall this thread's requests for milliseconds.
            if values.len() >= CAPACITY
                && let Some(evicted) = values.keys().next().copied()
            {
                values.remove(&evicted);
            }
            values.insert(seed, value.clone());
        }
        value
    }
}
