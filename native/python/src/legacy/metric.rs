//! One `entities` metric of one partition: its compiled conditions, its buckets of cells, what
//! a batch touched, and its window summary kept incrementally (processor/engine/summary.py's
//! EntitiesCache).

use std::borrow::Cow;
use std::collections::BTreeMap;

use ahash::{AHashMap as HashMap, AHashSet as HashSet};

use serde::Deserialize;

use crate::legacy::cell::{Cell, Shape};
use crate::legacy::pack;
use crate::legacy::values::{Field, Test};

#[derive(Deserialize)]
pub struct ConditionSpec {
    pub types: Option<Vec<String>>,
    #[serde(rename = "where")]
    pub filters: Vec<(String, Vec<Test>)>,
    pub kind: String,
    pub slot: usize,
    pub field: String,
    pub cap: i64,
    pub needed: i64,
}

#[derive(Deserialize)]
pub struct MetricSpec {
    pub name: String,
    pub bucket_ms: i64,
    pub buckets: i64,
    pub key: String,
    pub segments: Vec<String>,
    pub conditions: Vec<ConditionSpec>,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Count,
    Distinct,
    ValueCounts,
}

pub struct Condition {
    pub types: Option<HashSet<String>>,
    pub filters: Vec<(Field, Vec<Test>)>,
    pub kind: Kind,
    pub slot: usize,
    pub field: Option<Field>,
    pub cap: i64,
    pub needed: i64,
}

impl Condition {
    pub fn accepts_type(&self, event_type: &str) -> bool {
        self.types.as_ref().is_none_or(|t| t.contains(event_type))
    }
}

#[derive(Default)]
struct Summary {
    results: HashMap<String, (bool, Vec<String>)>,
    window: Option<(i64, i64)>,
    dirty: HashSet<String>,
}

pub struct Metric {
    pub name: String,
    pub bucket_ms: i64,
    pub buckets_in_window: i64,
    pub key: Field,
    pub segments: Vec<Field>,
    pub conditions: Vec<Condition>,
    pub shape: Shape,
    pub buckets: HashMap<i64, HashMap<String, Cell>>,
    /// The cells the current batch changed, by bucket: what the batch writes.
    pub touched: HashMap<i64, Vec<String>>,
    summary: Summary,
}

impl Metric {
    pub fn new(spec: MetricSpec) -> Result<Metric, String> {
        let mut shape = Shape::default();
        let mut conditions = Vec::new();
        for c in spec.conditions {
            let kind = match c.kind.as_str() {
                "count" => Kind::Count,
                "distinct" => Kind::Distinct,
                "value_counts" => Kind::ValueCounts,
                other => return Err(format!("{}: no native condition kind {other}", spec.name)),
            };
            let slots = match kind {
                Kind::Count => {
                    shape.count_caps.push(c.cap);
                    shape.count_caps.len()
                }
                Kind::Distinct => {
                    shape.set_caps.push(usize::try_from(c.cap).map_err(|e| e.to_string())?);
                    shape.set_caps.len()
                }
                Kind::ValueCounts => {
                    shape.value_count_caps.push(c.cap);
                    shape.value_count_caps.len()
                }
            };
            if c.slot + 1 != slots {
                return Err(format!("{}: condition slots out of order", spec.name));
            }
            conditions.push(Condition {
                types: c.types.map(|t| t.into_iter().collect()),
                filters: c.filters.into_iter().map(|(f, t)| (Field::new(&f), t)).collect(),
                kind,
                slot: c.slot,
                field: (kind != Kind::Count).then(|| Field::new(&c.field)),
                cap: c.cap,
                needed: c.needed,
            });
        }
        Ok(Metric {
            name: spec.name,
            bucket_ms: spec.bucket_ms,
            buckets_in_window: spec.buckets,
            key: Field::new(&spec.key),
            segments: spec.segments.iter().map(|s| Field::new(s)).collect(),
            conditions,
            shape,
            buckets: HashMap::new(),
            touched: HashMap::new(),
            summary: Summary::default(),
        })
    }

    /// The first bucket of the window as of `ms`.
    pub fn first_bucket(&self, ms: i64) -> i64 {
        ms.div_euclid(self.bucket_ms) - self.buckets_in_window + 1
    }

    pub fn is_late(&self, ts: i64, clock: i64) -> bool {
        ts.div_euclid(self.bucket_ms) < self.first_bucket(clock)
    }

    /// The cell of an entity in a bucket, created for an event at (ts, seq) when missing, and
    /// marked as changed by this batch.
    pub fn cell(
        &mut self,
        bucket: i64,
        entity: &str,
        ts: i64,
        seq: i64,
        labels: &[Cow<'_, str>],
    ) -> &mut Cell {
        let owned = || labels.iter().map(|l| l.to_string()).collect();
        let cells = self.buckets.entry(bucket).or_default();
        if !cells.contains_key(entity) {
            let cell = Cell::empty(&self.shape, ts, seq, owned());
            cells.insert(entity.to_owned(), cell);
        } else {
            cells.get_mut(entity).expect("present").see(ts, seq, owned);
        }
        let cell = cells.get_mut(entity).expect("present");
        if !cell.unwritten {
            // First change of this cell in the batch: it is written, and its entity evaluated
            // again at the next summary.
            cell.unwritten = true;
            self.touched.entry(bucket).or_default().push(entity.to_owned());
            self.summary.dirty.insert(entity.to_owned());
        }
        cell
    }

    pub fn merge_cell(&mut self, bucket: i64, entity: String, cell: Cell) {
        let cells = self.buckets.entry(bucket).or_default();
        let existing = match cells.get_mut(&entity) {
            Some(existing) => {
                existing.merge(&cell, &self.shape);
                existing
            }
            None => cells.entry(entity.clone()).or_insert(cell),
        };
        if !existing.unwritten {
            existing.unwritten = true;
            self.touched.entry(bucket).or_default().push(entity.clone());
            self.summary.dirty.insert(entity);
        }
    }

    /// The cells the batch changed, as the Redis step's bucket writes: per touched bucket, its
    /// member `<metric>:<bucket>` goes to `members` and the item `[expires_at, member,
    /// [entity, cell, ...]]` to `items`. Marks the cells written.
    pub fn pack_touched(&mut self, members: &mut Vec<String>, items: &mut Vec<u8>) {
        let mut encoded = Vec::new();
        for (bucket, entities) in std::mem::take(&mut self.touched) {
            let member = format!("{}:{}", self.name, bucket);
            // A string: Lua would print a large number in exponent notation.
            let expires_at = ((bucket + self.buckets_in_window) * self.bucket_ms).to_string();
            pack::array_len(items, 3);
            pack::str(items, expires_at.as_bytes());
            pack::str(items, member.as_bytes());
            pack::array_len(items, 2 * entities.len());
            let cells = self.buckets.get_mut(&bucket).expect("a touched bucket");
            for entity in entities {
                let cell = cells.get_mut(&entity).expect("a touched cell");
                cell.unwritten = false;
                encoded.clear();
                cell.encode_into(&mut encoded);
                pack::str(items, entity.as_bytes());
                pack::str(items, &encoded);
            }
            members.push(member);
        }
    }

    pub fn expire(&mut self, first_bucket: i64) {
        self.buckets.retain(|bucket, _| *bucket >= first_bucket);
    }

    fn qualifies(&self, cell: &Cell) -> bool {
        self.conditions.iter().all(|c| match c.kind {
            Kind::Count => cell.counts[c.slot] >= c.cap,
            Kind::Distinct => cell.sets[c.slot].len() as i64 >= c.needed,
            Kind::ValueCounts => {
                let complete = cell.value_counts[c.slot].values().filter(|n| **n >= c.cap).count();
                complete as i64 >= c.needed
            }
        })
    }

    /// An entity's cells in the window merged into one.
    fn merged(&self, entity: &str, first: i64, last: i64) -> Option<Cell> {
        let mut merged: Option<Cell> = None;
        for (bucket, cells) in &self.buckets {
            if *bucket < first || *bucket > last {
                continue;
            }
            if let Some(cell) = cells.get(entity) {
                match merged.as_mut() {
                    None => merged = Some(cell.clone()),
                    Some(m) => m.merge(cell, &self.shape),
                }
            }
        }
        merged
    }

    /// The metric's part as of a time: qualifying entities, and per segment field the
    /// qualifying entities under each label (a label of an entity that does not qualify is
    /// listed with 0).
    pub fn summarize(&mut self, as_of_ms: i64) -> (i64, Vec<BTreeMap<String, i64>>) {
        let last = as_of_ms.div_euclid(self.bucket_ms);
        let window = (last - self.buckets_in_window + 1, last);
        if self.summary.window != Some(window) {
            // Once per bucket boundary: every entity again, in one pass over the cells.
            let mut combined: HashMap<&String, Cell> = HashMap::new();
            for (bucket, cells) in &self.buckets {
                if *bucket < window.0 || *bucket > window.1 {
                    continue;
                }
                for (entity, cell) in cells {
                    match combined.get_mut(entity) {
                        Some(existing) => existing.merge(cell, &self.shape),
                        None => {
                            combined.insert(entity, cell.clone());
                        }
                    }
                }
            }
            let results = combined
                .into_iter()
                .map(|(entity, cell)| (entity.clone(), (self.qualifies(&cell), cell.labels)))
                .collect();
            self.summary.results = results;
            self.summary.window = Some(window);
        } else {
            let dirty: Vec<String> = self.summary.dirty.iter().cloned().collect();
            for entity in dirty {
                match self.merged(&entity, window.0, window.1) {
                    Some(cell) => {
                        let result = (self.qualifies(&cell), cell.labels);
                        self.summary.results.insert(entity, result);
                    }
                    None => {
                        self.summary.results.remove(&entity);
                    }
                }
            }
        }
        self.summary.dirty.clear();
        let mut total = 0;
        let mut per_field = vec![BTreeMap::new(); self.segments.len()];
        for (qualifies, labels) in self.summary.results.values() {
            let hit = i64::from(*qualifies);
            total += hit;
            for (values, label) in per_field.iter_mut().zip(labels) {
                *values.entry(label.clone()).or_insert(0) += hit;
            }
        }
        (total, per_field)
    }
}
