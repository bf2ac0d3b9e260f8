//! A sandbox's resources: collections of records held in memory (reads
//! never touch the database), changed through a journal that the server
//! persists after each request.
//!
//! Records come in two layers: the revision's fixtures, and what requests
//! changed on top of them (the overlay, which is all that is persisted).
//! Reset drops the overlay; a new revision swaps the fixture layer under it.

pub mod clock;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, MutexGuard},
};

use serde_json::Value;

use crate::pipeline::cache::Synthesized;

/// Most records one sandbox holds, fixtures included: past it, creating
/// answers 507 (a bound on what one client can make the server keep).
pub const MAX_RECORDS: usize = 100_000;

/// Most record data requests may make one sandbox hold, in bytes of JSON
/// (approximately; fixtures do not count): held in memory as values, records take several
/// times this, so a client creating large records hits this bound before
/// [`MAX_RECORDS`].
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// The sandbox holds as much as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error("the sandbox holds {MAX_RECORDS} records, its limit; delete some or reset it")]
    Records,
    #[error("the sandbox's records reach 64 MiB of JSON, its limit; delete some or reset it")]
    Bytes,
}

/// Sequence numbers of records created by requests start here, after any
/// fixture's (fixtures are numbered from 0 in file order).
pub const FIRST_CREATED_SEQ: u64 = 1_000_000;

/// One record: its id (the key in URLs), its parent scope for nested
/// collections (`customer=cus_1`), and its value.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub scope: String,
    pub seq: u64,
    pub value: Arc<Synthesized>,
}

/// A change made by a request, to be persisted in order of `version`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceChange {
    pub collection: String,
    pub id: String,
    pub scope: String,
    pub seq: u64,
    /// `None`: deleted. Shared with the record the sandbox holds.
    pub value: Option<Arc<Synthesized>>,
    /// Increases with every change of the sandbox; a store keeps the highest.
    pub version: u64,
}

/// A persisted overlay row, as loaded back.
pub type OverlayRow = ResourceChange;

#[derive(Debug, Default)]
struct Collection {
    rows: BTreeMap<u64, Row>,
    /// Hashed fast: read and written on every request that touches a record.
    by_id: HashMap<String, u64, foldhash::fast::RandomState>,
    /// The rows' sizes summed.
    bytes: usize,
    /// Highest sequence number ever used, deleted records included.
    max_seq: u64,
    /// Highest integer id ever used.
    max_int_id: i64,
    /// Ids of records requests deleted: with the rows marked `changed`,
    /// the overlay (what a reset drops and a rebase keeps).
    deleted: HashSet<String>,
}

/// A record, its size ([`record_bytes`]) and whether a request wrote it
/// (rather than the fixtures).
#[derive(Debug, Clone)]
struct Row {
    record: Record,
    size: usize,
    changed: bool,
}

impl Collection {
    /// Holds `record`, counted as `size` bytes (0 for fixtures: they are
    /// the project's, bounded by its file limits, and shared).
    fn put(&mut self, record: Record, size: usize, changed: bool) {
        // A replaced record keeps its key: no new `String` for it.
        match self.by_id.get_mut(&record.id) {
            Some(seq) => {
                let old = std::mem::replace(seq, record.seq);
                if old != record.seq {
                    self.remove_row(old);
                }
            }
            None => {
                self.by_id.insert(record.id.clone(), record.seq);
            }
        }
        self.max_seq = self.max_seq.max(record.seq);
        if let Ok(n) = record.id.parse::<i64>() {
            self.max_int_id = self.max_int_id.max(n);
        }
        self.bytes += size;
        let row = Row {
            record,
            size,
            changed,
        };
        if let Some(replaced) = self.rows.insert(row.record.seq, row) {
            self.bytes -= replaced.size;
        }
    }

    fn remove(&mut self, id: &str) -> Option<Record> {
        let seq = self.by_id.remove(id)?;
        self.remove_row(seq)
    }

    fn remove_row(&mut self, seq: u64) -> Option<Record> {
        let row = self.rows.remove(&seq)?;
        self.bytes -= row.size;
        Some(row.record)
    }

    /// The sequence number and size of the record `id`, if held.
    fn held(&self, id: &str) -> Option<(u64, usize)> {
        let seq = *self.by_id.get(id)?;
        Some((seq, self.rows.get(&seq).map_or(0, |row| row.size)))
    }

    fn record(&self, id: &str) -> Option<&Record> {
        self.rows.get(self.by_id.get(id)?).map(|row| &row.record)
    }

    /// The ids the overlay holds: records requests wrote or deleted.
    fn overlay(&self) -> impl Iterator<Item = &str> {
        let written = self.rows.values().filter(|row| row.changed);
        written
            .map(|row| row.record.id.as_str())
            .chain(self.deleted.iter().map(String::as_str))
    }
}

/// The length of a record's JSON, or about that when it was not written
/// (reading no JSON back into a tree).
fn record_bytes(value: &Synthesized) -> usize {
    value
        .made_json()
        .map_or_else(|| json_bytes(value.value()), bytes::Bytes::len)
}

/// About the length of `value` as JSON, without writing it.
fn json_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(text) => text.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| json_bytes(v) + 1).sum::<usize>(),
        Value::Object(members) => {
            2 + members
                .iter()
                .map(|(k, v)| k.len() + 4 + json_bytes(v))
                .sum::<usize>()
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    collections: HashMap<String, Collection, foldhash::fast::RandomState>,
    version: u64,
}

/// The records of one sandbox, and its other runtime counters.
#[derive(Debug, Default)]
pub struct SandboxState {
    inner: Mutex<Inner>,
    /// Held by whatever may change records (a request, a job, a seed) for
    /// all of its reads and writes: a create reads the next id and writes
    /// the record, an update reads the record and writes it back, and two
    /// of those interleaved would mint one id twice or lose a write.
    writes: Mutex<()>,
    /// Requests that drew a chaos outcome: seeded chaos replays in order.
    chaos_draws: std::sync::atomic::AtomicU64,
}

/// Exclusive right to change a sandbox's records, until dropped (see
/// [`SandboxState::write_turn`]).
#[must_use = "the turn ends when dropped"]
pub struct WriteTurn<'a> {
    _held: MutexGuard<'a, ()>,
}

/// A fixture record ready to load.
#[derive(Debug, Clone)]
pub struct FixtureRecord {
    pub collection: String,
    pub id: String,
    pub seq: u64,
    pub value: Arc<Synthesized>,
    /// Dates resolved against the sandbox clock when it is seeded.
    pub relative: Vec<crate::behaviours::fixtures::RelativeDate>,
}

impl FixtureRecord {
    /// The value in a sandbox seeded at `seeded_at_ms` (sandbox clock).
    fn value_at(&self, seeded_at_ms: i64) -> Arc<Synthesized> {
        if self.relative.is_empty() {
            return self.value.clone();
        }
        let mut value = self.value.value().clone();
        for date in &self.relative {
            if let Some(slot) = value.pointer_mut(&date.pointer) {
                *slot = date.resolve(seeded_at_ms);
            }
        }
        Arc::new(Synthesized::new(value))
    }
}

impl SandboxState {
    /// Fixtures (their relative dates resolved at `seeded_at_ms`) with the
    /// persisted overlay on top.
    pub fn load(fixtures: &[FixtureRecord], overlay: Vec<OverlayRow>, seeded_at_ms: i64) -> Self {
        let state = Self::default();
        {
            let mut inner = state.lock();
            load_fixtures(&mut inner, fixtures, seeded_at_ms);
            for row in overlay {
                inner.version = inner.version.max(row.version);
                apply_overlay(&mut inner, row);
            }
        }
        state
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave records half-written
        // (each change is one insert or remove), so poison is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The sandbox's write turn, waiting for it: only where blocking is
    /// allowed (the blocking pool), as its holder may run a script.
    pub fn write_turn(&self) -> WriteTurn<'_> {
        WriteTurn {
            _held: self.writes.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// The write turn when it is free, for a caller that must not wait.
    pub fn try_write_turn(&self) -> Option<WriteTurn<'_>> {
        match self.writes.try_lock() {
            Ok(_held) => Some(WriteTurn { _held }),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(WriteTurn {
                _held: e.into_inner(),
            }),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Back to the fixtures alone, seeded at `seeded_at_ms`.
    pub fn reset(&self, fixtures: &[FixtureRecord], seeded_at_ms: i64) {
        let mut inner = self.lock();
        let version = inner.version;
        *inner = Inner {
            version,
            ..Inner::default()
        };
        load_fixtures(&mut inner, fixtures, seeded_at_ms);
    }

    /// Swaps the fixture layer (a new revision) and keeps the overlay.
    pub fn rebase(&self, fixtures: &[FixtureRecord], seeded_at_ms: i64) {
        let mut inner = self.lock();
        let old = std::mem::take(&mut *inner);
        inner.version = old.version;
        load_fixtures(&mut inner, fixtures, seeded_at_ms);
        for (name, c) in old.collections {
            let new = inner.collections.entry(name).or_default();
            for id in c.overlay() {
                new.remove(id);
            }
            for row in c.rows.into_values().filter(|row| row.changed) {
                new.put(row.record, row.size, true);
            }
            new.max_seq = new.max_seq.max(c.max_seq);
            new.max_int_id = new.max_int_id.max(c.max_int_id);
            new.deleted = c.deleted;
        }
    }

    /// The number of this sandbox's next chaos draw.
    pub fn next_chaos_draw(&self) -> u64 {
        self.chaos_draws
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts changes; part of what seeds a request's random draws.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    pub fn get(&self, collection: &str, id: &str) -> Option<Record> {
        let inner = self.lock();
        let c = inner.collections.get(collection)?;
        c.record(id).cloned()
    }

    /// Whether `collection` holds `id`, without copying the record.
    pub fn contains(&self, collection: &str, id: &str) -> bool {
        let inner = self.lock();
        inner
            .collections
            .get(collection)
            .is_some_and(|c| c.by_id.contains_key(id))
    }

    /// Records of `collection` in creation order, those of `scope` only
    /// when given, that `keep` accepts.
    pub fn scan(
        &self,
        collection: &str,
        scope: Option<&str>,
        mut keep: impl FnMut(&Record) -> bool,
    ) -> Vec<Record> {
        let inner = self.lock();
        let Some(c) = inner.collections.get(collection) else {
            return Vec::new();
        };
        c.rows
            .values()
            .map(|row| &row.record)
            .filter(|r| scope.is_none_or(|s| r.scope == s))
            .filter(|r| keep(r))
            .cloned()
            .collect()
    }

    /// The next sequence number and the next integer id of `collection`.
    pub fn next_ids(&self, collection: &str) -> (u64, i64) {
        let inner = self.lock();
        inner
            .collections
            .get(collection)
            .map_or((FIRST_CREATED_SEQ, 1), |c| {
                (c.max_seq.max(FIRST_CREATED_SEQ - 1) + 1, c.max_int_id + 1)
            })
    }

    /// Inserts or replaces a record, journaling the change.
    pub fn put(
        &self,
        collection: &str,
        id: &str,
        scope: &str,
        seq: Option<u64>,
        value: Arc<Synthesized>,
        journal: &mut Vec<ResourceChange>,
    ) -> Result<Record, Full> {
        let kept = value.json_only();
        let size = record_bytes(&kept);
        let mut inner = self.lock();
        let existing = inner.collections.get(collection).and_then(|c| c.held(id));
        let replaced = existing.map_or(0, |(_, size)| size);
        if existing.is_none()
            && inner
                .collections
                .values()
                .map(|c| c.rows.len())
                .sum::<usize>()
                >= MAX_RECORDS
        {
            return Err(Full::Records);
        }
        let bytes: usize = inner.collections.values().map(|c| c.bytes).sum();
        if bytes - replaced + size > MAX_RECORD_BYTES {
            return Err(Full::Bytes);
        }
        inner.version += 1;
        let version = inner.version;
        // Named by a new `String` only the first time.
        let c = match inner.collections.get_mut(collection) {
            Some(c) => c,
            None => inner.collections.entry(collection.to_owned()).or_default(),
        };
        let seq = seq
            .or(existing.map(|(seq, _)| seq))
            .unwrap_or_else(|| c.max_seq.max(FIRST_CREATED_SEQ - 1) + 1);
        let record = |value| Record {
            id: id.to_owned(),
            scope: scope.to_owned(),
            seq,
            value,
        };
        c.put(record(kept.clone()), size, true);
        journal.push(ResourceChange {
            collection: collection.to_owned(),
            id: id.to_owned(),
            scope: scope.to_owned(),
            seq,
            value: Some(kept),
            version,
        });
        // The caller answers with it: the tree it made is handed back.
        Ok(record(value))
    }

    /// Deletes a record, journaling the change; the removed record.
    pub fn delete(
        &self,
        collection: &str,
        id: &str,
        journal: &mut Vec<ResourceChange>,
    ) -> Option<Record> {
        let mut inner = self.lock();
        let c = inner.collections.get_mut(collection)?;
        let removed = c.remove(id)?;
        c.deleted.insert(id.to_owned());
        inner.version += 1;
        let version = inner.version;
        journal.push(ResourceChange {
            collection: collection.to_owned(),
            id: id.to_owned(),
            scope: removed.scope.clone(),
            seq: removed.seq,
            value: None,
            version,
        });
        Some(removed)
    }

    /// Whether `id` was held and deleted (reset forgets it).
    pub fn was_deleted(&self, collection: &str, id: &str) -> bool {
        let inner = self.lock();
        inner
            .collections
            .get(collection)
            .is_some_and(|c| !c.by_id.contains_key(id) && c.deleted.contains(id))
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.lock().collections.values().map(|c| c.rows.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of records per collection.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.lock()
            .collections
            .iter()
            .map(|(name, c)| (name.clone(), c.rows.len()))
            .collect()
    }
}

fn load_fixtures(inner: &mut Inner, fixtures: &[FixtureRecord], seeded_at_ms: i64) {
    for fixture in fixtures {
        inner
            .collections
            .entry(fixture.collection.clone())
            .or_default()
            .put(
                Record {
                    id: fixture.id.clone(),
                    scope: String::new(),
                    seq: fixture.seq,
                    value: fixture.value_at(seeded_at_ms),
                },
                0,
                false,
            );
    }
}

fn apply_overlay(inner: &mut Inner, row: OverlayRow) {
    let c = inner.collections.entry(row.collection.clone()).or_default();
    match row.value {
        Some(value) => {
            let size = record_bytes(&value);
            c.put(
                Record {
                    id: row.id,
                    scope: row.scope,
                    seq: row.seq,
                    value,
                },
                size,
                true,
            );
        }
        None => {
            c.remove(&row.id);
            c.max_seq = c.max_seq.max(row.seq);
            c.deleted.insert(row.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fixture(id: &str, seq: u64) -> FixtureRecord {
        FixtureRecord {
            collection: "pets".into(),
            id: id.into(),
            seq,
            value: Arc::new(Synthesized::new(json!({"id": id}))),
            relative: Vec::new(),
        }
    }

    #[test]
    fn overlay_survives_rebase_and_reset_drops_it() {
        let state = SandboxState::load(&[fixture("a", 0), fixture("b", 1)], Vec::new(), 0);
        let mut journal = Vec::new();
        state
            .put(
                "pets",
                "c",
                "",
                None,
                Synthesized::shared(json!({"id": "c"})),
                &mut journal,
            )
            .unwrap();
        state.delete("pets", "a", &mut journal);
        assert_eq!(journal.len(), 2);
        assert!(journal[1].version > journal[0].version);
        state.rebase(&[fixture("a", 0), fixture("b", 1), fixture("z", 2)], 0);
        let ids: Vec<String> = state
            .scan("pets", None, |_| true)
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["b", "z", "c"]);
        state.reset(&[fixture("a", 0)], 0);
        let ids: Vec<String> = state
            .scan("pets", None, |_| true)
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["a"]);
    }

    #[test]
    fn record_bytes_are_bounded_and_deleting_frees_them() {
        let state = SandboxState::default();
        let mut journal = Vec::new();
        let big = json!({"text": "x".repeat(MAX_RECORD_BYTES / 4)});
        for id in ["a", "b", "c"] {
            state
                .put(
                    "notes",
                    id,
                    "",
                    None,
                    Synthesized::shared(big.clone()),
                    &mut journal,
                )
                .unwrap();
        }
        // Replacing a record counts its new size, not both.
        state
            .put(
                "notes",
                "a",
                "",
                None,
                Synthesized::shared(big.clone()),
                &mut journal,
            )
            .unwrap();
        assert_eq!(
            state
                .put(
                    "notes",
                    "d",
                    "",
                    None,
                    Synthesized::shared(big.clone()),
                    &mut journal
                )
                .err(),
            Some(Full::Bytes)
        );
        assert!(state.get("notes", "d").is_none(), "nothing half-written");
        state.delete("notes", "b", &mut journal);
        state
            .put(
                "notes",
                "d",
                "",
                None,
                Synthesized::shared(big),
                &mut journal,
            )
            .unwrap();
        assert_eq!(
            Full::Bytes.to_string(),
            "the sandbox's records reach 64 MiB of JSON, its limit; delete some or reset it"
        );
    }

    #[test]
    fn persisted_overlay_replays_to_the_same_records() {
        let fixtures = [fixture("a", 0)];
        let state = SandboxState::load(&fixtures, Vec::new(), 0);
        let mut journal = Vec::new();
        state
            .put(
                "pets",
                "7",
                "",
                None,
                Synthesized::shared(json!({"id": 7})),
                &mut journal,
            )
            .unwrap();
        state.delete("pets", "a", &mut journal);
        let replayed = SandboxState::load(&fixtures, journal, 0);
        assert!(replayed.get("pets", "a").is_none());
        assert_eq!(
            replayed.get("pets", "7").map(|r| r.seq),
            Some(FIRST_CREATED_SEQ)
        );
        assert_eq!(replayed.next_ids("pets"), (FIRST_CREATED_SEQ + 1, 8));
    }
}
