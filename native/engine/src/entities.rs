//! `entities` metrics: the distinct entities for which every condition holds inside the window.
//!
//! Per entity (a row of the entity table of the metric's key field), the metric keeps, per
//! bucket, its newest matching event (time, arrival sequence, segment labels: the entity's
//! segment value is the label on its most recent matching event in the window), and each
//! condition keeps its own state (condition/). An entity takes part in the window when it has a
//! matching event there.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use ahash::AHashMap;

use crate::buckets::{entry, expire, within, BucketReader, BucketWriter};
use crate::codec::{put_int, put_str, put_uint, FormatError, Reader};
use crate::condition::{self, Condition, LegacyList, Row};
use crate::fields::{Captured, FieldId, Paths};
use crate::filter::Filter;
use crate::label::{segment_label, Label};
use crate::legacy::LegacyCell;
use crate::spec::{event_types, MetricSpec, SpecError};
use crate::summary::{Number, Part};
use crate::traits::{account_ref, is_trait, Traits, ACCOUNT_FIELDS, TRAITS};
use crate::window::{Span, Window};

/// A segment of an entities metric: a field of the event, or an account trait (`group.<path>`,
/// by its order among the metric's traits), looked up when the metric is evaluated.
#[derive(Clone, Copy, Debug)]
pub enum Segment {
    Field(FieldId),
    Trait(usize),
}

/// The newest matching event of an entity in one bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct Latest {
    pub ts: i64,
    pub seq: i64,
    pub labels: Vec<Label>,
}

impl Latest {
    fn is_after(&self, other: &Latest) -> bool {
        (self.ts, self.seq, &self.labels) > (other.ts, other.seq, &other.labels)
    }
}

/// An entity's window result: whether it qualifies, and its segment labels.
pub type Outcome = (bool, Vec<Label>);

pub struct EntitiesMetric {
    pub name: String,
    pub window: Window,
    pub key: FieldId,
    pub segments: Vec<Segment>,
    /// With trait segments: the fields an event's account is read from, and a call's traits.
    accounts: Option<([FieldId; 2], FieldId)>,
    pub traits: Option<Traits>,
    conditions: Vec<Box<dyn Condition>>,
    accepts: Vec<Option<HashSet<String>>>,
    filters: Vec<Filter>,
    latest: Vec<Vec<(i64, Latest)>>,
    tally: Tally,
    /// The first bucket of the window at the last expiry.
    expired_before: Option<i64>,
}

/// The metric's part as of the last summary, kept up to date entity by entity.
#[derive(Default)]
struct Tally {
    span: Option<Span>,
    results: Vec<Option<Outcome>>,
    total: i64,
    /// Per segment field: label -> (entities with it in the window, of which qualifying).
    labels: Vec<AHashMap<Label, (i64, i64)>>,
    dirty: Vec<Row>,
    is_dirty: Vec<bool>,
    /// The traits' version the results were labelled with.
    traits_version: u64,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome, sign: i64) {
        let hit = if outcome.0 { sign } else { 0 };
        self.total += hit;
        for (labels, label) in self.labels.iter_mut().zip(&outcome.1) {
            let counts = labels.entry(label.clone()).or_insert((0, 0));
            counts.0 += sign;
            counts.1 += hit;
            if counts.0 == 0 {
                labels.remove(label);
            }
        }
    }

    fn set(&mut self, row: Row, outcome: Option<Outcome>) {
        if self.results.len() <= row {
            self.results.resize(row + 1, None);
        }
        if let Some(old) = self.results[row].take() {
            self.add(&old, -1);
        }
        if let Some(new) = &outcome {
            self.add(new, 1);
        }
        self.results[row] = outcome;
    }
}

impl EntitiesMetric {
    pub fn new(
        spec: &MetricSpec,
        window: Window,
        field: &mut dyn FnMut(&str) -> FieldId,
    ) -> Result<EntitiesMetric, SpecError> {
        let entities =
            spec.entities.as_ref().ok_or_else(|| SpecError::new("not an entities metric"))?;
        if entities.all.len() > 64 {
            return Err(SpecError::new("an entities metric has at most 64 conditions"));
        }
        let key = field(&entities.key);
        let mut traits = Vec::new();
        let segments = spec
            .segments
            .iter()
            .map(|s| {
                if is_trait(s) {
                    traits.push(s.as_str());
                    Segment::Trait(traits.len() - 1)
                } else {
                    Segment::Field(field(s))
                }
            })
            .collect();
        let accounts = (!traits.is_empty())
            .then(|| ([field(ACCOUNT_FIELDS[0]), field(ACCOUNT_FIELDS[1])], field(TRAITS)));
        let mut conditions = Vec::new();
        let mut accepts = Vec::new();
        let mut filters = Vec::new();
        for written in &entities.all {
            accepts.push(event_types(written)?);
            filters.push(Filter::new(written.get("where"), &mut *field)?);
            conditions.push(condition::build(written, field)?);
        }
        Ok(EntitiesMetric {
            name: spec.name.clone(),
            window,
            key,
            segments,
            accounts,
            traits: (!traits.is_empty()).then(|| Traits::new(&traits)),
            conditions,
            accepts,
            filters,
            latest: Vec::new(),
            tally: Tally { labels: vec![AHashMap::new(); spec.segments.len()], ..Tally::default() },
            expired_before: None,
        })
    }

    /// The conditions that accept an event type, as a bit mask.
    pub fn accepting(&self, event_type: &str) -> u64 {
        let mut mask = 0;
        for (i, types) in self.accepts.iter().enumerate() {
            if types.as_ref().is_none_or(|t| t.contains(event_type)) {
                mask |= 1 << i;
            }
        }
        mask
    }

    /// Of the conditions in `accepting`, those whose `where` holds for the event.
    pub fn matching(&self, accepting: u64, paths: &Paths, captures: &Captured) -> u64 {
        let mut matched = 0;
        let mut rest = accepting;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            if self.filters[i].holds(paths, captures) {
                matched |= 1 << i;
            }
        }
        matched
    }

    pub fn reserve(&mut self, rows: usize) {
        if self.latest.len() < rows {
            self.latest.resize_with(rows, Vec::new);
            for c in &mut self.conditions {
                c.reserve(rows);
            }
        }
    }

    /// Apply a matching event of the entity (`matched`: the conditions it matches).
    pub fn apply(
        &mut self,
        row: Row,
        ts: i64,
        seq: i64,
        matched: u64,
        paths: &Paths,
        captures: &Captured,
    ) {
        let bucket = self.window.bucket(ts);
        let account = self.account_of(paths, captures);
        let segments = &self.segments;
        let of = |segment: &Segment| -> Cow<'_, str> {
            match segment {
                Segment::Field(f) => segment_label(paths.get(captures, *f)),
                Segment::Trait(_) => Cow::Owned(account_ref(account)),
            }
        };
        let labels = || segments.iter().map(|s| Label::from(of(s).as_ref())).collect();
        let mut created = false;
        let latest = entry(&mut self.latest[row], bucket, || {
            created = true;
            Latest { ts, seq, labels: labels() }
        });
        if !created && (ts, seq) > (latest.ts, latest.seq) {
            latest.ts = ts;
            latest.seq = seq;
            for (kept, segment) in latest.labels.iter_mut().zip(segments) {
                let now = of(segment);
                if kept.as_str() != now.as_ref() {
                    *kept = Label::from(now.as_ref());
                }
            }
        }
        let mut rest = matched;
        while rest != 0 {
            let i = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            let condition = &mut self.conditions[i];
            let value = condition.field().and_then(|f| paths.get(captures, f));
            condition.apply(row, bucket, value);
        }
        self.touch(row);
    }

    /// An event's account: its `groupId`, else its `context.groupId` (None without trait segments).
    fn account_of<'c, 'a>(
        &self,
        paths: &Paths,
        captures: &'c Captured<'a>,
    ) -> Option<&'c crate::json::Value<'a>> {
        let ([group, context], _) = self.accounts?;
        paths.get(captures, group).or_else(|| paths.get(captures, context))
    }

    /// A group call: its account's traits join the metric's history (never late).
    pub fn record_group_call(&mut self, ts: i64, seq: i64, paths: &Paths, captures: &Captured) {
        let Some(account) = self.account_of(paths, captures) else { return };
        let account = account_ref(Some(account));
        let Some((_, traits_field)) = self.accounts else { return };
        let value = paths.get(captures, traits_field);
        if let Some(traits) = &mut self.traits {
            traits.record(&account, ts, seq, value);
        }
    }

    /// An entity's segment labels from its newest event: trait segments looked up as of its time.
    fn resolve<'l>(&self, newest: &'l Latest) -> Cow<'l, [Label]> {
        let Some(traits) = &self.traits else { return Cow::Borrowed(&newest.labels) };
        Cow::Owned(
            self.segments
                .iter()
                .zip(&newest.labels)
                .map(|(segment, held)| match segment {
                    Segment::Trait(_) if held.is_empty() => Label::from(crate::label::UNKNOWN),
                    Segment::Trait(i) => Label::from(traits.value(held, *i, newest.ts)),
                    Segment::Field(_) => held.clone(),
                })
                .collect(),
        )
    }

    /// The trait histories to write: of the accounts changed since the last call (or of all),
    /// each pruned first to what the window as of `clock_ms` can still need. Pruned here and
    /// nowhere else (not by expiry), the store holds exactly what is kept, so a partition
    /// restored from it goes on as one that was not (docs/semantics.md, Account traits). No
    /// clock (late events applied: a replay) prunes nothing.
    pub fn trait_writes(
        &mut self,
        clock_ms: Option<i64>,
        everything: bool,
    ) -> Vec<(String, Option<Vec<u8>>)> {
        let window = &self.window;
        let first_ms = clock_ms.map(|c| window.start_ms(c));
        let Some(traits) = self.traits.as_mut() else { return Vec::new() };
        let touched = traits.take_touched();
        let accounts = if everything { traits.accounts() } else { touched };
        accounts
            .into_iter()
            .map(|account| {
                if let Some(first_ms) = first_ms {
                    traits.prune(&account, first_ms);
                }
                let encoded = traits.encode(&account);
                (account, encoded)
            })
            .collect()
    }

    /// Whether the metric holds anything of the entity.
    pub fn has(&self, row: Row) -> bool {
        self.latest.get(row).is_some_and(|l| !l.is_empty())
    }

    /// The entity's result over a window; None when it has no matching event there.
    pub fn evaluate(&self, row: Row, span: Span) -> Option<Outcome> {
        let (_, newest) = within(self.latest.get(row)?, span).last()?;
        let qualifies = self.conditions.iter().all(|c| c.holds(row, span));
        Some((qualifies, self.resolve(newest).into_owned()))
    }

    /// Keep only what decides the windows that end at or after the bucket of `settled_ms`.
    pub fn prune(&mut self, row: Row, settled_ms: i64) {
        let settled = self.window.bucket(settled_ms);
        let latest = &mut self.latest[row];
        let settled_end = latest.partition_point(|(b, _)| *b <= settled);
        if settled_end > 1 {
            latest.drain(..settled_end - 1);
        }
        for c in &mut self.conditions {
            c.prune(row, settled);
        }
    }

    /// Drop everything before the window as of `clock_ms`; the entity leaves the metric when
    /// nothing of it is left in the window. True when something was dropped.
    pub fn expire(&mut self, row: Row, clock_ms: i64) -> bool {
        let first = self.window.span(clock_ms).first;
        let mut dropped = expire(&mut self.latest[row], first);
        for c in &mut self.conditions {
            dropped |= c.expire(row, first);
        }
        if self.latest[row].is_empty() {
            self.clear(row);
        }
        if dropped {
            self.touch(row);
        }
        dropped
    }

    /// The first bucket of the window as of `clock_ms`, when it moved since the last call
    /// (expiry has nothing to do otherwise).
    pub fn window_moved(&mut self, clock_ms: i64) -> bool {
        let first = self.window.span(clock_ms).first;
        let moved = self.expired_before.is_none_or(|before| first > before);
        if moved {
            self.expired_before = Some(first);
        }
        moved
    }

    pub fn clear(&mut self, row: Row) {
        if row < self.latest.len() {
            self.latest[row].clear();
            for c in &mut self.conditions {
                c.clear(row);
            }
            self.touch(row);
        }
    }

    /// The first bucket holding anything of any entity.
    pub fn first_bucket(&self) -> Option<i64> {
        self.latest.iter().filter_map(|l| l.first().map(|(b, _)| *b)).min()
    }

    /// The buckets with a matching event of the entity (the moments its result may change).
    pub fn buckets(&self, row: Row) -> impl Iterator<Item = i64> + '_ {
        self.latest[row].iter().map(|(b, _)| *b)
    }

    /// The entity's result over windows whose ends never move backwards (None: not in it);
    /// the labels borrowed from its state.
    pub fn evaluate_over(&self, row: Row, spans: &[Span]) -> Vec<Option<(bool, Cow<'_, [Label]>)>> {
        let mut holds = vec![true; spans.len()];
        let mut one = Vec::with_capacity(spans.len());
        for c in &self.conditions {
            one.clear();
            c.holds_over(row, spans, &mut one);
            for (all, this) in holds.iter_mut().zip(&one) {
                *all &= *this;
            }
        }
        let latest = &self.latest[row];
        spans
            .iter()
            .zip(holds)
            .map(|(span, qualifies)| {
                within(latest, *span).last().map(|(_, newest)| (qualifies, self.resolve(newest)))
            })
            .collect()
    }

    // ---- stored form ------------------------------------------------------------------------

    /// The entity's state: its newest events per bucket, then each condition's state.
    pub fn encode(&self, row: Row, out: &mut Vec<u8>) {
        let latest = &self.latest[row];
        put_uint(out, latest.len() as u64);
        let mut buckets = BucketWriter::new();
        let mut previous: Option<&Vec<Label>> = None;
        for (bucket, newest) in latest {
            buckets.put(out, *bucket);
            // The time within its bucket. The bucket's start may lie beyond 64 bits for a time
            // near either end (a bucket is floored): wrapping gives the exact offset all the same.
            put_int(out, newest.ts.wrapping_sub(bucket.wrapping_mul(self.window.bucket_ms)));
            put_int(out, newest.seq);
            if previous == Some(&newest.labels) {
                out.push(0);
            } else {
                out.push(1);
                for label in &newest.labels {
                    put_str(out, label);
                }
            }
            previous = Some(&newest.labels);
        }
        for c in &self.conditions {
            c.encode(row, out);
        }
    }

    /// Add stored state of the entity (into an empty row: load it).
    pub fn decode(&mut self, row: Row, input: &mut Reader) -> Result<(), FormatError> {
        let n = input.len()?;
        let mut buckets = BucketReader::new();
        let mut labels: Vec<Label> = Vec::new();
        for _ in 0..n {
            let bucket = buckets.get(input)?;
            let start = i128::from(bucket) * i128::from(self.window.bucket_ms);
            let ts = i64::try_from(start + i128::from(input.int()?))
                .map_err(|_| FormatError::new("a stored event time is out of range"))?;
            let seq = input.int()?;
            if input.byte()? == 1 {
                labels = (0..self.segments.len())
                    .map(|_| input.str().map(Label::from))
                    .collect::<Result<_, _>>()?;
            }
            self.see(row, bucket, Latest { ts, seq, labels: labels.clone() });
        }
        for c in &mut self.conditions {
            c.decode(row, input)?;
        }
        self.touch(row);
        Ok(())
    }

    fn see(&mut self, row: Row, bucket: i64, newest: Latest) {
        let mut fresh = Some(newest);
        let kept = entry(&mut self.latest[row], bucket, || fresh.take().expect("taken once"));
        if let Some(newest) = fresh {
            if newest.is_after(kept) {
                *kept = newest;
            }
        }
    }

    /// Add a cell of the first stored format (one entity, one bucket).
    pub fn load_legacy(
        &mut self,
        row: Row,
        bucket: i64,
        cell: &LegacyCell,
    ) -> Result<(), FormatError> {
        if cell.labels.len() != self.segments.len() {
            return Err(FormatError::new("a stored cell does not have the metric's segments"));
        }
        let labels = cell.labels.iter().map(|l| Label::from(l.as_str())).collect();
        self.see(row, bucket, Latest { ts: cell.ts, seq: cell.seq, labels });
        let mut slots: BTreeMap<LegacyList, usize> = BTreeMap::new();
        for c in &mut self.conditions {
            let Some(list) = c.legacy_list() else {
                return Err(FormatError::new("a condition kind the first format did not have"));
            };
            let slot = slots.entry(list).or_insert(0);
            c.load_legacy(row, bucket, cell, *slot)?;
            *slot += 1;
        }
        self.touch(row);
        Ok(())
    }

    // ---- the part, incrementally ------------------------------------------------------------

    /// Mark an entity to evaluate again at the next part.
    pub fn touch(&mut self, row: Row) {
        let tally = &mut self.tally;
        if tally.is_dirty.len() <= row {
            tally.is_dirty.resize(row + 1, false);
        }
        if !tally.is_dirty[row] {
            tally.is_dirty[row] = true;
            tally.dirty.push(row);
        }
    }

    /// The metric's part over a window: every entity again when the window moved, else only the
    /// entities changed since the last part.
    pub fn part(&mut self, span: Span) -> Part {
        let version = self.traits.as_ref().map_or(0, |t| t.version);
        if self.tally.span != Some(span) || self.tally.traits_version != version {
            // The window moved, or a group call may have relabelled any entity: all again.
            let segments = self.tally.labels.len();
            self.tally = Tally {
                labels: vec![AHashMap::new(); segments],
                span: Some(span),
                traits_version: version,
                ..Tally::default()
            };
            for row in 0..self.latest.len() {
                if !self.latest[row].is_empty() {
                    let outcome = self.evaluate(row, span);
                    self.tally.set(row, outcome);
                }
            }
            self.tally.is_dirty.clear();
        } else {
            let dirty = std::mem::take(&mut self.tally.dirty);
            for &row in &dirty {
                self.tally.is_dirty[row] = false;
                let outcome = if self.has(row) { self.evaluate(row, span) } else { None };
                self.tally.set(row, outcome);
            }
        }
        self.tally.dirty.clear();
        let breakdowns = self
            .tally
            .labels
            .iter()
            .map(|labels| {
                labels.iter().map(|(l, (_, q))| (l.to_string(), Number::Int(*q))).collect()
            })
            .collect();
        Part::Additive { total: Number::Int(self.tally.total), breakdowns }
    }
}
