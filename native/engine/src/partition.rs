//! One Kafka partition's state and how a batch of its messages changes it (the worker and the
//! replay). No I/O: a batch returns what to write, which the store writes in one atomic step with
//! the new offset.
//!
//! Per batch: messages at or below the stored offset are skipped (already applied before a
//! restart); each other one is decoded, deduplicated against the ids kept, and applied with its
//! offset as arrival sequence, late events counted per metric when `drop_late`. The lateness
//! clock is the wall clock, or with the event clock the newest event time of the partition.
//!
//! Then the state is pruned as of that clock (docs/semantics.md, Compact state), unless it keeps
//! its history (a replay, whose history sweep evaluates past times), and the records of the
//! entities the batch changed, the aggregate items it changed and its new ids are encoded.

use ahash::AHashMap;

use crate::codec::{FormatError, Reader};
use crate::dedup::Seen;
use crate::engine::Engine;
use crate::engine::MetricKind;
use crate::event::{decode, event_id_of, EventId, InputFormat, Reason};
use crate::fault;
use crate::fields::Captures;
use crate::legacy::{LegacyCell, LegacyField};
use crate::spec::{CatalogSpec, SpecError};
use crate::state::{
    aggregate_key, pack_ids, record, record_key, record_parts, split_aggregate_key,
    split_record_key, unpack_ids,
};
use crate::summary::Summary;

/// The item prefix of an account's trait history among a metric's stored items.
const TRAIT_ITEM: &[u8] = b"g";
/// The bucket the first format stored a metric's trait history under (below every real bucket;
/// the store hands it over as the smallest 64-bit integer).
pub const LEGACY_TRAITS_BUCKET: i64 = i64::MIN;

#[derive(Clone, Copy, Debug)]
pub struct BatchOptions {
    pub now_ms: i64,
    pub max_future_skew_ms: i64,
    pub event_clock: bool,
    pub drop_late: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidMessage {
    pub index: usize,
    pub offset: i64,
    pub reason: Reason,
    pub detail: String,
}

/// Stored items to write: (field, bytes) or (field, None) to delete.
pub type Items = Vec<(Vec<u8>, Option<Vec<u8>>)>;

#[derive(Default, Debug)]
pub struct Writes {
    pub records: Items,
    pub aggregates: Items,
}

impl Writes {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.aggregates.is_empty()
    }
}

/// The engine failed on a message while applying it (a panic, caught): the partition's state may
/// hold part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    pub index: usize,
    pub offset: i64,
    pub detail: String,
}

#[derive(Default, Debug)]
pub struct Outcome {
    pub applied: i64,
    pub skipped: i64,
    pub duplicates: i64,
    pub invalid: Vec<InvalidMessage>,
    /// Late events per metric (catalogue index).
    pub late: Vec<(usize, i64)>,
    pub previous_offset: Option<i64>,
    pub new_offset: Option<i64>,
    pub max_ts: Option<i64>,
    pub writes: Writes,
    /// The batch's new ids (state.rs), and the newest of their horizons.
    pub ids: Vec<u8>,
    pub newest_horizon: Option<i64>,
}

pub struct Partition {
    pub engine: Engine,
    seen: Seen,
    pub offset: Option<i64>,
    pub max_ts: Option<i64>,
    /// Keep complete state (no pruning): a replay's history evaluates past times.
    keep_history: bool,
    /// The latest clock the state was pruned as of: summaries are never taken before it.
    settled: Option<i64>,
    /// Per catalogue metric, its stored id (None: not stored yet).
    metric_ids: Vec<Option<u32>>,
    by_id: AHashMap<u32, usize>,
}

impl Partition {
    pub fn new(
        spec: &CatalogSpec,
        format: InputFormat,
        keep_history: bool,
    ) -> Result<Partition, SpecError> {
        let engine = Engine::new(spec, format)?;
        let metrics = engine.metrics.len();
        Ok(Partition {
            engine,
            seen: Seen::default(),
            offset: None,
            max_ts: None,
            keep_history,
            settled: None,
            metric_ids: vec![None; metrics],
            by_id: AHashMap::new(),
        })
    }

    /// The stored ids of the metrics (by name); a metric without one is not read from, nor
    /// written to, stored state.
    pub fn set_metric_ids(&mut self, ids: &[(String, u32)]) {
        self.metric_ids = vec![None; self.engine.metrics.len()];
        self.by_id.clear();
        for (name, id) in ids {
            if let Some(index) = self.engine.metrics.iter().position(|m| &m.name == name) {
                self.metric_ids[index] = Some(*id);
                self.by_id.insert(*id, index);
            }
        }
    }

    pub fn seen_ids(&self) -> usize {
        self.seen.len()
    }

    pub fn settled(&self) -> Option<i64> {
        self.settled
    }

    // ---- restoring stored state ------------------------------------------------------------

    /// One stored entity record (format 2). Parts of metrics without a current id are ignored
    /// (a definition that changed); they vanish when the record is next written.
    pub fn restore_record(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        let (key_field, label) = split_record_key(key)?;
        let Some(t) = self.engine.tables.iter().position(|t| t.key == key_field) else {
            return Ok(());
        };
        for (id, state) in record_parts(value)? {
            let Some(&index) = self.by_id.get(&id) else { continue };
            let MetricKind::Entities(m) = self.engine.metrics[index].kind else {
                return Err(FormatError::new(
                    "a stored entity record names another kind of metric",
                ));
            };
            if self.engine.table_of(m) != t {
                return Err(FormatError::new("a stored entity record is filed under another key"));
            }
            let row = self.engine.tables[t].row(label);
            let rows = self.engine.tables[t].rows();
            self.engine.entities[m].reserve(rows);
            self.engine.entities[m].decode(row, &mut Reader::new(state))?;
        }
        Ok(())
    }

    /// One stored aggregate item (format 2).
    pub fn restore_aggregate(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        let (id, item) = split_aggregate_key(key)?;
        let Some(&index) = self.by_id.get(&id) else { return Ok(()) };
        match self.engine.metrics[index].kind {
            MetricKind::Aggregate(a) => self.engine.aggregates[a].kind.load(item, value),
            MetricKind::Entities(m) => {
                let (Some(account), Some(traits)) =
                    (item.strip_prefix(TRAIT_ITEM), self.engine.entities[m].traits.as_mut())
                else {
                    return Err(FormatError::new(
                        "a stored item of an entities metric is no trait history",
                    ));
                };
                let account = std::str::from_utf8(account)
                    .map_err(|_| FormatError::new("a stored account is not UTF-8"))?;
                traits.decode(account, value)
            }
            MetricKind::Formula { .. } => Err(FormatError::new("a stored item of a formula")),
        }
    }

    /// One batch's stored ids (format 2).
    pub fn restore_ids(&mut self, packed: &[u8]) -> Result<(), FormatError> {
        for (id, horizon) in unpack_ids(packed)? {
            self.seen.keep(id, horizon);
        }
        Ok(())
    }

    /// An event id of the first format (its label), with its horizon.
    pub fn restore_legacy_id(&mut self, label: &str, horizon: i64) {
        self.seen.keep(event_id_of(label), horizon);
    }

    /// A field of a bucket hash of the first format, metric `name`: an entity's cell (the field
    /// is its label) or an aggregate's field.
    pub fn restore_legacy_field(
        &mut self,
        name: &str,
        bucket: i64,
        field: &[u8],
        value: &[u8],
    ) -> Result<(), FormatError> {
        let Some(index) = self.engine.metrics.iter().position(|m| m.name == name) else {
            return Ok(());
        };
        match self.engine.metrics[index].kind {
            MetricKind::Entities(m) if bucket == LEGACY_TRAITS_BUCKET => {
                let account = std::str::from_utf8(field)
                    .map_err(|_| FormatError::new("a stored account is not UTF-8"))?;
                match self.engine.entities[m].traits.as_mut() {
                    Some(traits) => traits.load_legacy(account, value),
                    None => Ok(()),
                }
            }
            MetricKind::Entities(m) => {
                let label = std::str::from_utf8(field)
                    .map_err(|_| FormatError::new("a stored entity label is not UTF-8"))?;
                let cell = LegacyCell::decode(value)?;
                let t = self.engine.table_of(m);
                let row = self.engine.tables[t].row(label);
                let rows = self.engine.tables[t].rows();
                self.engine.entities[m].reserve(rows);
                self.engine.entities[m].load_legacy(row, bucket, &cell)
            }
            MetricKind::Aggregate(a) => {
                let field = LegacyField::decode(field)?;
                let segments = self.engine.metrics[index].segments.clone();
                self.engine.aggregates[a].kind.load_legacy(bucket, &field, value, &segments)
            }
            MetricKind::Formula { .. } => Ok(()),
        }
    }

    /// After restoring: whatever was loaded counts as written (nothing to write back), pruned as
    /// of `clock` unless the history is kept.
    pub fn restored(&mut self, clock: Option<i64>) {
        if let Some(clock) = clock.filter(|_| !self.keep_history) {
            self.prune_all(clock);
        }
        for t in 0..self.engine.tables.len() {
            self.engine.tables[t].take_dirty();
        }
        self.engine.aggregate_changes(false);
        for metric in &mut self.engine.entities {
            if let Some(traits) = metric.traits.as_mut() {
                traits.take_touched();
            }
        }
    }

    // ---- a rebuild handed over ---------------------------------------------------------------

    /// Merge what a rebuild of some metrics stored (its entity records and aggregate items,
    /// format 2, with its own metric ids: `ids` maps those of the metrics taken over to their
    /// names) into this state, as stored state of the same entities from another partition
    /// merges; returns what to write: the records of the entities it reached and every item of
    /// the metrics taken over. Nothing is pruned here: the trait histories merged were each
    /// pruned as the rebuild's batches wrote them, and are written whole.
    pub fn take_over(
        &mut self,
        records: &[(&[u8], &[u8])],
        aggregates: &[(&[u8], &[u8])],
        ids: &[(u32, String)],
    ) -> Result<Writes, FormatError> {
        let mut metric_of: AHashMap<u32, usize> = AHashMap::new();
        for (id, name) in ids {
            let index = self.engine.metrics.iter().position(|m| &m.name == name);
            let index = index.ok_or_else(|| {
                FormatError::new(format!("a rebuilt metric this state does not have: {name}"))
            })?;
            if self.metric_ids[index].is_none() {
                return Err(FormatError::new(format!("a rebuilt metric not stored here: {name}")));
            }
            metric_of.insert(*id, index);
        }
        for (key, value) in records {
            let (key_field, label) = split_record_key(key)?;
            for (id, state) in record_parts(value)? {
                let Some(&index) = metric_of.get(&id) else { continue };
                let MetricKind::Entities(m) = self.engine.metrics[index].kind else {
                    return Err(FormatError::new("a rebuilt entity record of another kind"));
                };
                let t = self.engine.table_of(m);
                if self.engine.tables[t].key != key_field {
                    return Err(FormatError::new("a rebuilt entity record under another key"));
                }
                let row = self.engine.tables[t].row(label);
                let rows = self.engine.tables[t].rows();
                self.engine.entities[m].reserve(rows);
                self.engine.entities[m].decode(row, &mut Reader::new(state))?;
                self.engine.tables[t].touch(row);
            }
        }
        let mut whole: Vec<usize> = Vec::new();
        for (key, value) in aggregates {
            let (id, item) = split_aggregate_key(key)?;
            let Some(&index) = metric_of.get(&id) else { continue };
            match self.engine.metrics[index].kind {
                MetricKind::Aggregate(a) => {
                    self.engine.aggregates[a].kind.load(item, value)?;
                    if !whole.contains(&a) {
                        whole.push(a);
                    }
                }
                MetricKind::Entities(m) => {
                    let (Some(account), Some(traits)) =
                        (item.strip_prefix(TRAIT_ITEM), self.engine.entities[m].traits.as_mut())
                    else {
                        return Err(FormatError::new("a rebuilt item is no trait history"));
                    };
                    let account = std::str::from_utf8(account)
                        .map_err(|_| FormatError::new("a stored account is not UTF-8"))?;
                    traits.decode(account, value)?;
                    traits.touch(account);
                }
                MetricKind::Formula { .. } => {
                    return Err(FormatError::new("a rebuilt item of a formula"));
                }
            }
        }
        let mut writes = self.writes(false, None);
        let written: ahash::AHashSet<Vec<u8>> =
            writes.aggregates.iter().map(|(k, _)| k.clone()).collect();
        for a in whole {
            let Some(id) = self.metric_ids[self.engine.aggregate_index(a)] else { continue };
            let mut items = Vec::new();
            self.engine.aggregates[a].kind.changes(true, &mut items);
            for (item, value) in items {
                let key = aggregate_key(id, &item);
                if !written.contains(&key) {
                    writes.aggregates.push((key, value));
                }
            }
        }
        Ok(writes)
    }

    // ---- one batch --------------------------------------------------------------------------

    /// Apply a batch (records in offset order, a value None for a message without one).
    ///
    /// A message the engine fails on while decoding it is invalid (`unprocessable`). One it fails
    /// on while applying it may have changed the state in part: the batch stops with `Failed`,
    /// and this partition must not be used any more. Restore it from what is stored and apply
    /// the batch again with that message among `unprocessable` (offset -> detail), which are
    /// then counted as such and passed over.
    pub fn apply_batch(
        &mut self,
        records: &[(i64, Option<&[u8]>)],
        options: BatchOptions,
        unprocessable: &AHashMap<i64, String>,
    ) -> Result<Outcome, Failed> {
        let mut outcome = Outcome { previous_offset: self.offset, ..Outcome::default() };
        let mut clock = if options.event_clock { self.max_ts } else { Some(options.now_ms) };
        let mut batch_ids: Vec<(EventId, i64)> = Vec::new();
        let mut captures = Captures::new();
        for (index, (offset, value)) in records.iter().enumerate() {
            if self.offset.is_some_and(|stored| *offset <= stored) {
                outcome.skipped += 1;
                continue;
            }
            outcome.new_offset = Some(*offset);
            let rejected =
                |reason, detail| InvalidMessage { index, offset: *offset, reason, detail };
            if let Some(detail) = unprocessable.get(offset) {
                outcome.invalid.push(rejected(Reason::Unprocessable, detail.clone()));
                continue;
            }
            let Some(raw) = value else {
                let detail = "the message has no value (a tombstone)".to_owned();
                outcome.invalid.push(rejected(Reason::NotJson, detail));
                continue;
            };
            let (now, skew) = (options.now_ms, options.max_future_skew_ms);
            let header =
                match fault::catch(|| decode(&self.engine.paths, raw, now, skew, &mut captures)) {
                    Ok(Ok(header)) => header,
                    Ok(Err(invalid)) => {
                        outcome.invalid.push(rejected(invalid.reason, invalid.detail));
                        continue;
                    }
                    Err(detail) => {
                        outcome.invalid.push(rejected(Reason::Unprocessable, detail));
                        continue;
                    }
                };
            let ts = header.ts;
            let applied = fault::catch(|| {
                if let Some(id) = header.id {
                    let horizon = self.engine.horizon.of(ts);
                    if !self.seen.first_time(id, ts, horizon) {
                        return false;
                    }
                    batch_ids.push((id, horizon));
                }
                if options.event_clock && clock.is_none_or(|c| ts > c) {
                    clock = Some(ts);
                }
                let lateness = if options.drop_late { clock } else { None };
                self.engine.apply(&captures, header, *offset, lateness);
                fault::check(raw);
                true
            });
            match applied {
                Ok(true) => {
                    outcome.applied += 1;
                    outcome.max_ts = Some(outcome.max_ts.map_or(ts, |m| m.max(ts)));
                }
                Ok(false) => outcome.duplicates += 1,
                Err(detail) => return Err(Failed { index, offset: *offset, detail }),
            }
        }
        outcome.late = self.engine.take_late();
        if outcome.new_offset.is_none() {
            return Ok(outcome);
        }
        let settled = clock.filter(|_| !self.keep_history);
        if let Some(clock) = settled {
            self.prune_dirty(clock);
        }
        // Trait histories are pruned as they are written, as of the batch's lateness clock;
        // with late events applied, an event of any age may need any value.
        outcome.writes = self.writes(false, settled.filter(|_| options.drop_late));
        // A repeat registered anew within the batch: its last registration is its horizon.
        let mut last: AHashMap<EventId, i64> = AHashMap::with_capacity(batch_ids.len());
        for (id, horizon) in &batch_ids {
            last.insert(*id, *horizon);
        }
        let ids: Vec<(EventId, i64)> =
            if last.len() == batch_ids.len() { batch_ids } else { last.into_iter().collect() };
        outcome.newest_horizon = ids.iter().map(|(_, h)| *h).max();
        outcome.ids = pack_ids(&ids);
        self.offset = outcome.new_offset;
        if let Some(ts) = outcome.max_ts {
            self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        }
        Ok(outcome)
    }

    /// Offsets up to `last_offset` hold nothing to apply (a record batch that cannot be read):
    /// they count as applied.
    pub fn pass_over(&mut self, last_offset: i64) {
        if self.offset.is_none_or(|offset| offset < last_offset) {
            self.offset = Some(last_offset);
        }
    }

    fn prune_dirty(&mut self, clock: i64) {
        for t in 0..self.engine.tables.len() {
            let rows: Vec<usize> = self.engine.tables[t].dirty_rows().to_vec();
            self.engine.prune_rows(t, &rows, clock);
        }
        self.engine.prune_aggregates(clock);
        self.settled = Some(self.settled.map_or(clock, |s| s.max(clock)));
    }

    fn prune_all(&mut self, clock: i64) {
        for t in 0..self.engine.tables.len() {
            let rows: Vec<usize> = self.engine.tables[t].live_rows().collect();
            self.engine.prune_rows(t, &rows, clock);
        }
        self.engine.prune_aggregates(clock);
        self.settled = Some(self.settled.map_or(clock, |s| s.max(clock)));
    }

    /// The records of the entities changed since the last writes, and the aggregate items; the
    /// trait histories written are pruned as of `trait_clock` first (EntitiesMetric::trait_writes).
    fn writes(&mut self, everything: bool, trait_clock: Option<i64>) -> Writes {
        let mut writes = Writes::default();
        for t in 0..self.engine.tables.len() {
            let (mut rows, gone) = self.engine.tables[t].take_dirty();
            if everything {
                rows = self.engine.tables[t].live_rows().collect();
            }
            let key = self.engine.tables[t].key.clone();
            for label in gone {
                writes.records.push((record_key(&key, &label), None));
            }
            for row in rows {
                let mut parts = Vec::new();
                for &m in &self.engine.tables[t].metrics {
                    let metric = &self.engine.entities[m];
                    let Some(id) = self.metric_ids[self.engine.entities_index(m)] else { continue };
                    if metric.has(row) {
                        let mut state = Vec::new();
                        metric.encode(row, &mut state);
                        parts.push((id, state));
                    }
                }
                let label = self.engine.tables[t].label(row).expect("a live row");
                writes.records.push((record_key(&key, label), record(&parts)));
            }
        }
        for m in 0..self.engine.entities.len() {
            let id = self.metric_ids[self.engine.entities_index(m)];
            let histories = self.engine.entities[m].trait_writes(trait_clock, everything);
            let Some(id) = id else { continue };
            for (account, history) in histories {
                let item = [TRAIT_ITEM, account.as_bytes()].concat();
                writes.aggregates.push((aggregate_key(id, &item), history));
            }
        }
        for (a, changes) in self.engine.aggregate_changes(everything) {
            let Some(id) = self.metric_ids[self.engine.aggregate_index(a)] else { continue };
            for (item, value) in changes {
                writes.aggregates.push((aggregate_key(id, &item), value));
            }
        }
        writes
    }

    // ---- time passing -----------------------------------------------------------------------

    /// Expiry as of `clock`: buckets before every window go, entities with nothing left are
    /// deleted, ids two longest windows back are forgotten. Returns what to write.
    pub fn expire(&mut self, clock: i64) -> Writes {
        self.engine.expire(clock);
        if !self.keep_history {
            self.prune_dirty(clock);
        }
        self.seen.forget(self.engine.horizon.forget_until(clock));
        self.writes(false, None)
    }

    /// Stop keeping the history: prune everything as of `clock`, expire, and write it all (the
    /// end of a replay), the trait histories pruned as of `clock` as they are written.
    pub fn compact(&mut self, clock: i64) -> Writes {
        self.keep_history = false;
        self.prune_all(clock);
        self.engine.expire(clock);
        self.seen.forget(self.engine.horizon.forget_until(clock));
        self.writes(true, Some(clock))
    }

    /// Everything, as stored (migration from the first format).
    pub fn all_writes(&mut self) -> Writes {
        self.writes(true, None)
    }

    /// Ids whose horizon is at or before this may go at `clock` (docs/semantics.md, Dedup).
    pub fn forget_ids_until(&self, clock: i64) -> i64 {
        self.engine.horizon.forget_until(clock)
    }

    /// Every metric's part as of `as_of_ms`, or as of the clock the state was pruned at when that
    /// is later (a pruned state decides only windows ending at or after it). Its `as_of` says which.
    pub fn summarize(&mut self, as_of_ms: i64) -> Summary {
        let as_of = self.settled.map_or(as_of_ms, |s| s.max(as_of_ms));
        self.engine.summarize(as_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"metrics": [
        {"name": "sent", "window_ms": 604800000, "bucket_ms": 3600000,
         "aggregate": {"count": true, "event": "report.sent"}}]}"#;
    const MARKER: &str = ",\"partition-fault\":1";

    fn event(id: &str, extra: &str) -> Vec<u8> {
        format!(r#"{{"type":"report.sent","timestamp":1000,"event_id":"{id}"{extra}}}"#).into()
    }

    fn options() -> BatchOptions {
        BatchOptions { now_ms: 1000, max_future_skew_ms: 0, event_clock: true, drop_late: true }
    }

    #[test]
    fn a_failure_while_applying_names_the_message_and_a_named_one_is_passed_over() {
        let _one_at_a_time = fault::TESTS.lock().unwrap_or_else(|e| e.into_inner());
        let spec: CatalogSpec = serde_json::from_str(SPEC).unwrap();
        let (a, bad, c) = (event("a", ""), event("b", MARKER), event("c", ""));
        let records = [(7, Some(&a[..])), (8, Some(&bad[..])), (9, Some(&c[..]))];
        let mut partition = Partition::new(&spec, InputFormat::Nsm, false).unwrap();
        fault::inject(Some(MARKER.as_bytes().to_vec()));
        let failed = partition.apply_batch(&records, options(), &AHashMap::new()).unwrap_err();
        fault::inject(None);
        assert_eq!((failed.index, failed.offset), (1, 8));
        assert_eq!(failed.detail, "panic: injected fault");

        let mut fresh = Partition::new(&spec, InputFormat::Nsm, false).unwrap();
        let named: AHashMap<i64, String> = [(8, failed.detail)].into_iter().collect();
        let outcome = fresh.apply_batch(&records, options(), &named).unwrap();
        assert_eq!((outcome.applied, outcome.duplicates, outcome.new_offset), (2, 0, Some(9)));
        let invalid: Vec<(i64, Reason)> =
            outcome.invalid.iter().map(|i| (i.offset, i.reason)).collect();
        assert_eq!(invalid, [(8, Reason::Unprocessable)]);
        assert_eq!(fresh.seen_ids(), 2);
    }

    const TRAIT_SPEC: &str = r#"{"metrics": [
        {"name": "m0", "window_ms": 14400000, "bucket_ms": 3600000, "segments": ["group.plan"],
         "entities": {"key": "context.groupId",
                      "all": [{"event": "a", "count_at_least": 1}]}}]}"#;
    const NOW: i64 = 1_800_000_000_000;

    /// A partition of TRAIT_SPEC, the metric stored under id 1.
    fn trait_partition() -> Partition {
        let spec: CatalogSpec = serde_json::from_str(TRAIT_SPEC).unwrap();
        let mut partition = Partition::new(&spec, InputFormat::Segment, false).unwrap();
        partition.set_metric_ids(&[("m0".to_owned(), 1)]);
        partition
    }

    /// Apply group calls of one account a day before NOW, at these offsets, with the wall clock;
    /// returns the trait items written.
    fn group_calls(partition: &mut Partition, offsets: &[i64]) -> Items {
        let ts = NOW - 86_400_000;
        let calls: Vec<Vec<u8>> = offsets
            .iter()
            .map(|o| {
                let call = format!(
                    r#"{{"type":"group","groupId":"a1","traits":{{"plan":"free"}},"userId":"u1","timestamp":{ts},"messageId":"m{o}"}}"#
                );
                call.into_bytes()
            })
            .collect();
        let records: Vec<(i64, Option<&[u8]>)> =
            offsets.iter().zip(&calls).map(|(o, c)| (*o, Some(&c[..]))).collect();
        let options = BatchOptions {
            now_ms: NOW,
            max_future_skew_ms: 300_000,
            event_clock: false,
            drop_late: true,
        };
        partition.apply_batch(&records, options, &AHashMap::new()).unwrap().writes.aggregates
    }

    #[test]
    fn a_trait_history_is_pruned_as_it_is_written_so_a_restart_changes_nothing() {
        // Two calls; expiry; a restart from what was stored, or none; one more call. Expiry
        // writes no history, and each batch writes an account's history pruned to what the
        // window as of its clock needs: here only the latest call, all being before the window.
        let mut written = Vec::new();
        for restart in [false, true] {
            let mut partition = trait_partition();
            let mut stored: AHashMap<Vec<u8>, Vec<u8>> = AHashMap::new();
            for (key, value) in group_calls(&mut partition, &[0, 1]) {
                stored.insert(key, value.unwrap());
            }
            assert!(partition.expire(NOW).aggregates.is_empty());
            if restart {
                partition = trait_partition();
                for (key, value) in &stored {
                    partition.restore_aggregate(key, value).unwrap();
                }
                partition.restored(Some(NOW));
            }
            written.push(group_calls(&mut partition, &[2]));
        }
        let only_the_latest = group_calls(&mut trait_partition(), &[2]);
        assert_eq!(only_the_latest.len(), 1);
        assert_eq!(written, [only_the_latest.clone(), only_the_latest]);
    }

    #[test]
    fn a_replay_batch_prunes_no_trait_history() {
        // A worker's second batch writes only the latest call (the one a partition given only
        // that call writes); a replay's keeps both: a late event may need any value.
        let mut worker = trait_partition();
        group_calls(&mut worker, &[0]);
        let pruned = group_calls(&mut worker, &[1]);
        assert_eq!(pruned, group_calls(&mut trait_partition(), &[1]));
        let spec: CatalogSpec = serde_json::from_str(TRAIT_SPEC).unwrap();
        let mut replay = Partition::new(&spec, InputFormat::Segment, true).unwrap();
        replay.set_metric_ids(&[("m0".to_owned(), 1)]);
        group_calls(&mut replay, &[0]);
        let kept = group_calls(&mut replay, &[1]);
        assert_eq!(kept.len(), 1);
        assert_ne!(kept, pruned);
    }

    const MIXED_SPEC: &str = r#"{"metrics": [
        {"name": "readers", "segments": ["plan"], "window_ms": 36000000, "bucket_ms": 3600000,
         "entities": {"key": "account_id",
                      "all": [{"event": "report.viewed", "distinct": "user_id", "at_least": 2}]}},
        {"name": "active", "window_ms": 18000000, "bucket_ms": 3600000,
         "entities": {"key": "account_id", "all": [{"event": "*", "count_at_least": 3}]}},
        {"name": "records", "segments": ["plan"], "window_ms": 36000000, "bucket_ms": 3600000,
         "aggregate": {"sum": "records", "event": "data.received"}}]}"#;

    /// Events out of order, with repeated ids, over about 40 hours.
    fn mixed_events() -> Vec<Vec<u8>> {
        (0..400)
            .map(|i: i64| {
                let ts = 1_000_000_000_000 + ((i * 7919) % 150) * 900_000;
                let (id, account, user) = (i % 353, i % 11, i % 5);
                let plan = ["free", "pro"][(i % 3 == 0) as usize];
                let line = if i % 4 == 0 {
                    format!(
                        r#"{{"type":"data.received","timestamp":{ts},"event_id":"e{id}","account_id":"a{account}","plan":"{plan}","records":{}}}"#,
                        i % 9
                    )
                } else {
                    format!(
                        r#"{{"type":"report.viewed","timestamp":{ts},"event_id":"e{id}","account_id":"a{account}","user_id":"u{user}","plan":"{plan}"}}"#
                    )
                };
                line.into_bytes()
            })
            .collect()
    }

    #[derive(Default)]
    struct Stored {
        records: AHashMap<Vec<u8>, Vec<u8>>,
        aggregates: AHashMap<Vec<u8>, Vec<u8>>,
        ids: Vec<Vec<u8>>,
    }

    impl Stored {
        fn write(&mut self, writes: Writes) {
            for (map, items) in
                [(&mut self.records, writes.records), (&mut self.aggregates, writes.aggregates)]
            {
                for (key, value) in items {
                    match value {
                        Some(value) => map.insert(key, value),
                        None => map.remove(&key),
                    };
                }
            }
        }

        fn pairs(map: &AHashMap<Vec<u8>, Vec<u8>>) -> Vec<(&[u8], &[u8])> {
            map.iter().map(|(k, v)| (&k[..], &v[..])).collect()
        }
    }

    fn apply_in_batches(partition: &mut Partition, events: &[Vec<u8>], first: i64) -> Stored {
        let mut stored = Stored::default();
        let options =
            BatchOptions { now_ms: NOW, max_future_skew_ms: 0, event_clock: true, drop_late: true };
        for (n, chunk) in events.chunks(17).enumerate() {
            let start = first + 17 * n as i64;
            let records: Vec<(i64, Option<&[u8]>)> =
                chunk.iter().enumerate().map(|(i, e)| (start + i as i64, Some(&e[..]))).collect();
            let outcome = partition.apply_batch(&records, options, &AHashMap::new()).unwrap();
            stored.write(outcome.writes);
            stored.ids.push(outcome.ids);
        }
        stored
    }

    #[test]
    fn a_rebuilt_metric_taken_over_equals_the_metric_applied_whole() {
        // A metric rebuilt from the offsets before L (in a state of that metric only, deduplicated
        // by the whole catalogue's horizon) and handed over to a live state that applied the
        // other metrics before L and every metric from L on: the live state then says what one
        // state that applied every event says, for every metric.
        let spec: CatalogSpec = serde_json::from_str(MIXED_SPEC).unwrap();
        let ids: Vec<(String, u32)> =
            spec.metrics.iter().zip(1..).map(|(m, id)| (m.name.clone(), id)).collect();
        let events = mixed_events();
        let split = 230;
        let mut whole = Partition::new(&spec, InputFormat::Nsm, false).unwrap();
        whole.set_metric_ids(&ids);
        apply_in_batches(&mut whole, &events, 0);
        for rebuilt in ["readers", "active", "records"] {
            let mut before = Partition::new(&spec, InputFormat::Nsm, false).unwrap();
            before.set_metric_ids(&ids);
            let stored = apply_in_batches(&mut before, &events[..split], 0);
            // The live state: the rebuilt metric under a new id, so its stored state is not read.
            let mut live = Partition::new(&spec, InputFormat::Nsm, false).unwrap();
            let renamed: Vec<(String, u32)> =
                ids.iter().map(|(n, id)| (n.clone(), if n == rebuilt { 9 } else { *id })).collect();
            live.set_metric_ids(&renamed);
            for (key, value) in &stored.records {
                live.restore_record(key, value).unwrap();
            }
            for (key, value) in &stored.aggregates {
                live.restore_aggregate(key, value).unwrap();
            }
            for packed in &stored.ids {
                live.restore_ids(packed).unwrap();
            }
            (live.offset, live.max_ts) = (before.offset, before.max_ts);
            live.restored(before.max_ts);
            apply_in_batches(&mut live, &events[split..], split as i64);

            let mut only: CatalogSpec = serde_json::from_str(MIXED_SPEC).unwrap();
            only.metrics.retain(|m| m.name == rebuilt);
            only.horizon = Some(whole.engine.horizon.terms().to_vec());
            let mut rebuild = Partition::new(&only, InputFormat::Nsm, false).unwrap();
            rebuild.set_metric_ids(&[(rebuilt.to_owned(), 1)]);
            let group = apply_in_batches(&mut rebuild, &events[..split], 0);
            let records = Stored::pairs(&group.records);
            let aggregates = Stored::pairs(&group.aggregates);
            let writes = live.take_over(&records, &aggregates, &[(1, rebuilt.to_owned())]).unwrap();
            assert!(!writes.is_empty());
            let as_of = whole.max_ts.unwrap();
            assert_eq!(live.summarize(as_of), whole.summarize(as_of), "{rebuilt}");
        }
    }

    #[test]
    fn a_catalogue_part_deduplicates_by_the_horizon_it_is_given() {
        let spec: CatalogSpec = serde_json::from_str(MIXED_SPEC).unwrap();
        let whole = Partition::new(&spec, InputFormat::Nsm, false).unwrap();
        let mut only: CatalogSpec = serde_json::from_str(MIXED_SPEC).unwrap();
        only.metrics.retain(|m| m.name == "active");
        let own = Partition::new(&only, InputFormat::Nsm, false).unwrap();
        assert_ne!(own.engine.horizon.terms(), whole.engine.horizon.terms());
        only.horizon = Some(whole.engine.horizon.terms().to_vec());
        let given = Partition::new(&only, InputFormat::Nsm, false).unwrap();
        assert_eq!(given.engine.horizon.terms(), whole.engine.horizon.terms());
    }

    #[test]
    fn an_entity_whose_newest_event_is_near_the_earliest_time_is_stored_and_read_back() {
        // Its bucket's start (floored) lies below the smallest 64-bit time.
        let spec: CatalogSpec = serde_json::from_str(MIXED_SPEC).unwrap();
        let ids: Vec<(String, u32)> =
            spec.metrics.iter().zip(1..).map(|(m, id)| (m.name.clone(), id)).collect();
        for ts in [i64::MIN, i64::MIN + 1, -1] {
            let event = format!(r#"{{"type":"report.viewed","timestamp":{ts},"account_id":"a"}}"#);
            let mut partition = Partition::new(&spec, InputFormat::Nsm, false).unwrap();
            partition.set_metric_ids(&ids);
            let stored = apply_in_batches(&mut partition, &[event.into_bytes()], 0);
            assert_eq!(stored.records.len(), 1);
            let mut again = Partition::new(&spec, InputFormat::Nsm, false).unwrap();
            again.set_metric_ids(&ids);
            for (key, value) in &stored.records {
                again.restore_record(key, value).unwrap();
            }
            let (mut a, mut b) = (Stored::default(), Stored::default());
            a.write(partition.all_writes());
            b.write(again.all_writes());
            assert_eq!(a.records, b.records, "{ts}");
        }
    }

    #[test]
    fn offsets_passed_over_count_as_applied() {
        let spec: CatalogSpec = serde_json::from_str(SPEC).unwrap();
        let mut partition = Partition::new(&spec, InputFormat::Nsm, false).unwrap();
        partition.pass_over(41);
        partition.pass_over(12);
        assert_eq!(partition.offset, Some(41));
        let a = event("a", "");
        let outcome = partition.apply_batch(&[(40, Some(&a[..]))], options(), &AHashMap::new());
        assert_eq!(outcome.unwrap().skipped, 1);
    }
}
