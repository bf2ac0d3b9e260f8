//! Memoized synthesis. A synthesized value is a pure function of its seed
//! (sandbox seed, operation, status, path parameters, media type), so it is
//! computed once and shared. The cache is bounded; once full, each insert
//! evicts the oldest entry. A value is stored the second time it is asked
//! for: a stream of answers that never repeat (a new id on every request)
//! costs no insert and evicts none of the answers that do.

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, Hasher, RandomState},
    sync::{
        Arc, OnceLock, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use serde_json::Value;

/// A synthesized value as a tree, its JSON bytes, or both: each is made
/// from the other when first asked for. A value written straight out as
/// JSON is usually only sent, never read as a tree.
#[derive(Debug)]
pub struct Synthesized {
    value: OnceLock<Value>,
    json: OnceLock<Bytes>,
    /// How the value breaks its schema, when synthesis could not satisfy
    /// it (an answer carrying it is flagged as drift).
    pub unsatisfied: Option<String>,
}

/// Equal when their values are: the bytes are only a cache.
impl PartialEq for Synthesized {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value() && self.unsatisfied == other.unsatisfied
    }
}

impl Eq for Synthesized {}

impl Synthesized {
    pub fn new(value: Value) -> Self {
        Self {
            value: OnceLock::from(value),
            json: OnceLock::new(),
            unsatisfied: None,
        }
    }

    /// A value known by its JSON (and its tree, when it was read back).
    pub fn from_json(json: Bytes, value: Option<Value>) -> Self {
        Self {
            value: value.map_or_else(OnceLock::new, OnceLock::from),
            json: OnceLock::from(json),
            unsatisfied: None,
        }
    }

    /// A new value, to share.
    pub fn shared(value: Value) -> Arc<Self> {
        Arc::new(Self::new(value))
    }

    /// A value that breaks its schema, and how.
    pub fn unsatisfied(value: Value, how: String) -> Self {
        Self {
            unsatisfied: Some(how),
            ..Self::new(value)
        }
    }

    /// The same value holding only its JSON, when that was made. For what
    /// is kept long and mostly sent (a record): its tree, several times the
    /// size of its JSON, is freed now and made again only if read.
    pub fn json_only(self: &Arc<Self>) -> Arc<Self> {
        match (self.json.get(), self.value.get()) {
            (Some(json), Some(_)) => Arc::new(Self {
                value: OnceLock::new(),
                json: OnceLock::from(json.clone()),
                unsatisfied: self.unsatisfied.clone(),
            }),
            _ => self.clone(),
        }
    }

    /// The JSON, if it was made (asking for it does not make it).
    pub fn made_json(&self) -> Option<&Bytes> {
        self.json.get()
    }

    /// The value as a tree; read from its JSON the first time when it was
    /// written as JSON.
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            self.json
                .get()
                .and_then(|json| crate::request::json::from_slice(json).ok())
                .unwrap_or_default()
        })
    }

    /// Serialized once; every answer after shares the bytes.
    pub fn json(&self) -> &Bytes {
        self.json
            .get_or_init(|| serde_json::to_vec(self.value()).unwrap_or_default().into())
    }
}

/// Entries kept per compiled revision before the cache starts over.
const CAPACITY: usize = 16_384;

/// Bits of the record of keys asked for once (32 KiB per revision): it
/// starts over after `SEEN_BITS / 4` first sightings, at most 39% full.
const SEEN_BITS: usize = 1 << 18;

pub struct SynthCache {
    entries: RwLock<Entries>,
    /// Keys the cache's hash, per process: a client choosing path
    /// parameters cannot make two answers share an entry.
    keys: RandomState,
    /// Keys asked for once (a shared bit only admits a value early);
    /// cleared as it fills, so it keeps to recent requests.
    seen: Box<[AtomicU64]>,
    first_sightings: AtomicUsize,
}

impl std::fmt::Debug for SynthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stored = self.entries.read().map_or(0, |e| e.values.len());
        f.debug_struct("SynthCache")
            .field("stored", &stored)
            .finish()
    }
}

impl Default for SynthCache {
    fn default() -> Self {
        Self {
            entries: RwLock::default(),
            keys: RandomState::default(),
            seen: (0..SEEN_BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            first_sightings: AtomicUsize::new(0),
        }
    }
}

/// The values, and their seeds in insertion order for first-in-first-out eviction.
#[derive(Debug, Default)]
struct Entries {
    /// Keyed by [`SynthCache::key`]'s seeded hashes: rehashed cheaply.
    values: HashMap<u64, Arc<Synthesized>, foldhash::fast::RandomState>,
    order: VecDeque<u64>,
}

impl SynthCache {
    /// The entry for what a value is a function of. Computed on every
    /// request, so a keyed SipHash rather than the synthesis seed's SHA-256,
    /// which is paid only when the value is made.
    pub fn key<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
        let mut hasher = self.keys.build_hasher();
        for part in parts {
            hasher.write_usize(part.len());
            hasher.write(part);
        }
        hasher.finish()
    }

    /// A read never recomputes a stored value: readers share the lock and
    /// wait only for an insert in progress (a few map operations; the value
    /// an insert evicts is freed after the lock is released). An insert
    /// never waits: when the lock is taken, the value is answered unstored.
    ///
    /// `key` comes from [`Self::key`]. `make` may decline (`None`: the value is to be made elsewhere).
    pub fn get_or_try_insert_with(
        &self,
        seed: u64,
        make: impl FnOnce() -> Option<Synthesized>,
    ) -> Option<Arc<Synthesized>> {
        if let Some(found) = self
            .entries
            .read()
            .ok()
            .and_then(|e| e.values.get(&seed).cloned())
        {
            return Some(found);
        }
        let value = Arc::new(make()?);
        if !self.seen_before(seed) {
            return Some(value);
        }
        let evicted = self.entries.try_write().ok().and_then(|mut entries| {
            if entries.values.insert(seed, value.clone()).is_some() {
                return None;
            }
            entries.order.push_back(seed);
            // One eviction per insert once full: clearing 16k values at
            // once would stall this thread's requests for milliseconds.
            if entries.order.len() > CAPACITY {
                let oldest = entries.order.pop_front()?;
                return entries.values.remove(&oldest);
            }
            None
        });
        // Freed once the lock is released: other readers need not wait.
        drop(evicted);
        Some(value)
    }

    /// Whether `key` was asked for before; records it if not. Two bits per
    /// key (a Bloom filter), from the key's two halves: a stream of answers
    /// that never repeat is mistaken for a repeat ~6% of the time on
    /// average, rather than ~20% with one bit, and each mistake is an
    /// insert and an eviction.
    fn seen_before(&self, key: u64) -> bool {
        let mut seen = true;
        for half in [key as u32, (key >> 32) as u32] {
            let bit = half as usize % SEEN_BITS;
            let mask = 1u64 << (bit % 64);
            let previous = self.seen[bit / 64].fetch_or(mask, Ordering::Relaxed);
            seen &= previous & mask != 0;
        }
        if !seen && self.first_sightings.fetch_add(1, Ordering::Relaxed) >= SEEN_BITS / 4 {
            self.first_sightings.store(0, Ordering::Relaxed);
            for word in &self.seen {
                word.store(0, Ordering::Relaxed);
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde_json::json;

    use super::*;

    fn ask(cache: &SynthCache, key: u64, made: &Cell<u32>) -> Arc<Synthesized> {
        cache
            .get_or_try_insert_with(key, || {
                made.set(made.get() + 1);
                Some(Synthesized::new(json!({"n": made.get()})))
            })
            .expect("made")
    }

    /// A one-off answer is not stored; one asked for again is, and is then
    /// shared without being made a third time.
    #[test]
    fn a_value_is_kept_the_second_time_it_is_asked_for() {
        let cache = SynthCache::default();
        let made = Cell::new(0);
        let key = cache.key([b"op".as_slice(), b"42"]);
        let first = ask(&cache, key, &made);
        let second = ask(&cache, key, &made);
        let third = ask(&cache, key, &made);
        assert_eq!(made.get(), 2);
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(Arc::ptr_eq(&second, &third));

        let other = cache.key([b"op".as_slice(), b"43"]);
        ask(&cache, other, &made);
        assert_eq!(made.get(), 3, "a new key is made");
        assert_eq!(format!("{cache:?}"), "SynthCache { stored: 1 }");
    }

    /// Answers that never repeat are rarely taken for repeats: each mistake
    /// would store a value nobody asks for again and evict one that might be.
    #[test]
    fn a_stream_of_one_off_answers_is_mostly_not_stored() {
        let cache = SynthCache::default();
        let made = Cell::new(0);
        for n in 0u32..50_000 {
            ask(&cache, cache.key([n.to_le_bytes().as_slice()]), &made);
        }
        let stored = cache.entries.read().expect("lock").values.len();
        assert!(stored < 2_500, "{stored} of 50,000 one-off answers stored");
    }
}
