//! The engine: every metric of a catalogue with its state, and the routing of events to them.
//!
//! `nsm compute`, explain and evaluate, the replay and the worker all drive it the same way:
//! decode a message (`event::decode`), deduplicate (`dedup::Seen`), `apply` with the arrival
//! sequence number, and evaluate as of a time (`summarize`, then `finish`). State is per bucket
//! and complete unless `prune` is called, which keeps only what decides the windows that end at
//! or after a clock (docs/semantics.md, Compact state).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use ahash::AHashMap;

use crate::aggregate::{self, Aggregate, Change};
use crate::condition::Row;
use crate::entities::EntitiesMetric;
use crate::event::{event_type, Header, InputFormat};
use crate::fields::{Captured, FieldId, Paths};
use crate::filter::Filter;
use crate::finish::{self, MetricValue};
use crate::formula::Formula;
use crate::label::{label, segment_label, Label};
use crate::spec::{event_types, CatalogSpec, SpecError};
use crate::summary::{Number, Part, Summary};
use crate::traits::GROUP_CALL;
use crate::window::{Horizon, Span, Window};

/// Entities of one key field: rows shared by every metric keyed by that field, so that one
/// stored record holds all of an entity's metrics.
pub struct Table {
    pub key: String,
    pub field: FieldId,
    pub metrics: Vec<usize>,
    /// Row by entity label, the label kept inline (compared without another memory read).
    index: AHashMap<Label, Row>,
    labels: Vec<Option<Box<str>>>,
    free: Vec<Row>,
    dirty: Vec<Row>,
    is_dirty: Vec<bool>,
    /// Labels of rows released since the last `take_dirty` (their records are gone).
    gone: Vec<Box<str>>,
}

impl Table {
    fn new(key: &str, field: FieldId) -> Table {
        Table {
            key: key.to_owned(),
            field,
            metrics: Vec::new(),
            index: AHashMap::new(),
            labels: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            is_dirty: Vec::new(),
            gone: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    pub fn find(&self, label: &str) -> Option<Row> {
        self.index.get(label).copied()
    }

    /// The entity's row, made when new.
    pub fn row(&mut self, label: &str) -> Row {
        if let Some(row) = self.index.get(label) {
            return *row;
        }
        let row = match self.free.pop() {
            Some(row) => {
                self.labels[row] = Some(label.into());
                row
            }
            None => {
                self.labels.push(Some(label.into()));
                self.labels.len() - 1
            }
        };
        self.index.insert(Label::from(label), row);
        row
    }

    pub fn label(&self, row: Row) -> Option<&str> {
        self.labels.get(row).and_then(|l| l.as_deref())
    }

    pub fn touch(&mut self, row: Row) {
        if self.is_dirty.len() <= row {
            self.is_dirty.resize(row + 1, false);
        }
        if !self.is_dirty[row] {
            self.is_dirty[row] = true;
            self.dirty.push(row);
        }
    }

    fn release(&mut self, row: Row) {
        if let Some(label) = self.labels[row].take() {
            self.index.remove(&*label);
            self.gone.push(label);
            self.free.push(row);
        }
    }

    /// The rows changed since the last `take_dirty` (some may be released since).
    pub fn dirty_rows(&self) -> &[Row] {
        &self.dirty
    }

    /// The rows changed since the last call, and the labels of the entities gone meanwhile.
    pub fn take_dirty(&mut self) -> (Vec<Row>, Vec<Box<str>>) {
        let dirty = std::mem::take(&mut self.dirty);
        for &row in &dirty {
            self.is_dirty[row] = false;
        }
        let gone = std::mem::take(&mut self.gone);
        (dirty.into_iter().filter(|r| self.labels[*r].is_some()).collect(), gone)
    }

    /// Every row holding an entity.
    pub fn live_rows(&self) -> impl Iterator<Item = Row> + '_ {
        self.labels.iter().enumerate().filter(|(_, l)| l.is_some()).map(|(r, _)| r)
    }
}

/// An aggregate metric: which events it takes, and its kind's state.
pub struct AggregateMetric {
    pub name: String,
    pub window: Window,
    accepts: Option<HashSet<String>>,
    filter: Filter,
    segments: Vec<FieldId>,
    pub kind: Box<dyn Aggregate>,
}

/// What a metric is, in catalogue order.
pub enum MetricKind {
    Entities(usize),
    Aggregate(usize),
    Formula { formula: Formula, operands: Vec<String> },
}

pub struct MetricInfo {
    pub name: String,
    pub kind: MetricKind,
    pub window: Option<Window>,
    pub segments: Vec<String>,
    pub max_segment_values: usize,
    /// A windowed metric's part when no state holds any of its events.
    pub empty: Option<Part>,
}

#[derive(Default)]
struct Route {
    entities: Vec<(usize, u64)>,
    aggregates: Vec<usize>,
}

pub struct Engine {
    pub metrics: Vec<MetricInfo>,
    pub paths: Arc<Paths>,
    pub horizon: Horizon,
    pub tables: Vec<Table>,
    pub entities: Vec<EntitiesMetric>,
    pub aggregates: Vec<AggregateMetric>,
    /// Per entities metric: its table, and its index in the catalogue.
    entity_table: Vec<usize>,
    entity_metric: Vec<usize>,
    aggregate_metric: Vec<usize>,
    route_of: AHashMap<Box<str>, usize>,
    routes: Vec<Route>,
    /// Per metric (catalogue index): events too late for its window, since the last `take_late`.
    late: Vec<i64>,
    /// Whether a metric has account-trait segments (group calls matter).
    has_traits: bool,
}

impl Engine {
    pub fn new(spec: &CatalogSpec, format: InputFormat) -> Result<Engine, SpecError> {
        let mut names: Vec<String> = Vec::new();
        let mut field = |name: &str| match names.iter().position(|n| n == name) {
            Some(id) => id,
            None => {
                names.push(name.to_owned());
                names.len() - 1
            }
        };
        let mut metrics = Vec::new();
        let mut tables: Vec<Table> = Vec::new();
        let (mut entities, mut aggregates) = (Vec::new(), Vec::new());
        let (mut entity_table, mut entity_metric, mut aggregate_metric) =
            (Vec::new(), Vec::new(), Vec::new());
        for (index, m) in spec.metrics.iter().enumerate() {
            let windowed = m.entities.is_some() || m.aggregate.is_some();
            let window = if windowed {
                if m.bucket_ms <= 0 || m.window_ms < m.bucket_ms {
                    return Err(
                        SpecError::new("a window of at least one bucket").of_metric(&m.name)
                    );
                }
                Some(Window { bucket_ms: m.bucket_ms, buckets: m.window_ms / m.bucket_ms })
            } else {
                None
            };
            let mut empty = None;
            let kind = if let (Some(e), Some(window)) = (&m.entities, window) {
                empty = Some(Part::empty_additive(Number::Int(0), m.segments.len()));
                let metric =
                    EntitiesMetric::new(m, window, &mut field).map_err(|e| e.of_metric(&m.name))?;
                let table = match tables.iter().position(|t| t.key == e.key) {
                    Some(t) => t,
                    None => {
                        tables.push(Table::new(&e.key, metric.key));
                        tables.len() - 1
                    }
                };
                tables[table].metrics.push(entities.len());
                entity_table.push(table);
                entity_metric.push(index);
                entities.push(metric);
                MetricKind::Entities(entities.len() - 1)
            } else if let (Some(a), Some(window)) = (&m.aggregate, window) {
                let built = (|| {
                    let accepts = event_types(a)?;
                    let filter = Filter::new(a.get("where"), &mut field)?;
                    let segments = m.segments.iter().map(|s| field(s)).collect();
                    let kind = aggregate::build(a, m.segments.len(), &mut field)?;
                    Ok(AggregateMetric {
                        name: m.name.clone(),
                        window,
                        accepts,
                        filter,
                        segments,
                        kind,
                    })
                })()
                .map_err(|e: SpecError| e.of_metric(&m.name))?;
                empty = Some(built.kind.part(Span { first: 1, last: 0 }));
                aggregate_metric.push(index);
                aggregates.push(built);
                MetricKind::Aggregate(aggregates.len() - 1)
            } else if let Some(f) = &m.formula {
                MetricKind::Formula {
                    formula: Formula::new(&f.tree).map_err(|e| e.of_metric(&m.name))?,
                    operands: f.operands.clone(),
                }
            } else {
                return Err(
                    SpecError::new("one of entities, aggregate, formula").of_metric(&m.name)
                );
            };
            metrics.push(MetricInfo {
                name: m.name.clone(),
                kind,
                window,
                segments: m.segments.clone(),
                max_segment_values: m.max_segment_values,
                empty,
            });
        }
        let horizon = match &spec.horizon {
            Some(terms) => Horizon::of_terms(terms),
            None => Horizon::new(metrics.iter().filter_map(|m| m.window)),
        };
        let late = vec![0; metrics.len()];
        let has_traits = entities.iter().any(|m: &EntitiesMetric| m.traits.is_some());
        Ok(Engine {
            has_traits,
            metrics,
            paths: Arc::new(Paths::for_format(names.iter().map(String::as_str), format)),
            horizon,
            tables,
            entities,
            aggregates,
            entity_table,
            entity_metric,
            aggregate_metric,
            route_of: AHashMap::new(),
            routes: Vec::new(),
            late,
        })
    }

    fn route(&mut self, event_type: &str) -> usize {
        if let Some(route) = self.route_of.get(event_type) {
            return *route;
        }
        let mut route = Route::default();
        for (m, metric) in self.entities.iter().enumerate() {
            let accepting = metric.accepting(event_type);
            if accepting != 0 {
                route.entities.push((m, accepting));
            }
        }
        for (a, metric) in self.aggregates.iter().enumerate() {
            if metric.accepts.as_ref().is_none_or(|t| t.contains(event_type)) {
                route.aggregates.push(a);
            }
        }
        self.routes.push(route);
        self.route_of.insert(event_type.into(), self.routes.len() - 1);
        self.routes.len() - 1
    }

    /// Whether any metric takes events of this type.
    pub fn reads(&mut self, event_type: &str) -> bool {
        let route = self.route(event_type);
        let route = &self.routes[route];
        !(route.entities.is_empty() && route.aggregates.is_empty())
    }

    /// Apply one deduplicated event; `seq` is its arrival order (ties of event time). With
    /// `lateness_clock`, a metric whose window as of the clock has passed the event's bucket does
    /// not take it (counted in `take_late`).
    pub fn apply(
        &mut self,
        captures: &Captured,
        header: Header,
        seq: i64,
        lateness_clock: Option<i64>,
    ) {
        let ts = header.ts;
        let kind = event_type(&self.paths, captures);
        if kind == GROUP_CALL && self.has_traits {
            // Traits are never late: an old call can still be an account's latest.
            for metric in self.entities.iter_mut().filter(|m| m.traits.is_some()) {
                metric.record_group_call(ts, seq, &self.paths, captures);
            }
        }
        let route = self.route(kind);
        let mut rows: [Option<Row>; 8] = [None; 8];
        for &(m, accepting) in &self.routes[route].entities {
            let metric = &self.entities[m];
            if lateness_clock.is_some_and(|clock| metric.window.is_late(ts, clock)) {
                self.late[self.entity_metric[m]] += 1;
                continue;
            }
            let matched = metric.matching(accepting, &self.paths, captures);
            if matched == 0 {
                continue;
            }
            let Some(key) = self.paths.get(captures, metric.key) else { continue };
            let t = self.entity_table[m];
            let cached = rows.get(t).copied().flatten();
            let row = match cached {
                Some(row) => row,
                None => {
                    let table = &mut self.tables[t];
                    let row = table.row(&label(key));
                    let wanted = table.rows();
                    for &other in &table.metrics {
                        self.entities[other].reserve(wanted);
                    }
                    if let Some(slot) = rows.get_mut(t) {
                        *slot = Some(row);
                    }
                    row
                }
            };
            self.entities[m].apply(row, ts, seq, matched, &self.paths, captures);
            self.tables[t].touch(row);
        }
        for &a in &self.routes[route].aggregates {
            let metric = &mut self.aggregates[a];
            if lateness_clock.is_some_and(|clock| metric.window.is_late(ts, clock)) {
                self.late[self.aggregate_metric[a]] += 1;
                continue;
            }
            if !metric.filter.holds(&self.paths, captures) {
                continue;
            }
            let labels: Vec<Cow<str>> = metric
                .segments
                .iter()
                .map(|s| segment_label(self.paths.get(captures, *s)))
                .collect();
            let value = metric.kind.field().and_then(|f| self.paths.get(captures, f));
            metric.kind.apply(metric.window.bucket(ts), value, &labels);
        }
    }

    /// Late events per metric (catalogue index) since the last call.
    pub fn take_late(&mut self) -> Vec<(usize, i64)> {
        let late: Vec<(usize, i64)> =
            self.late.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, n)| (i, *n)).collect();
        self.late.iter_mut().for_each(|n| *n = 0);
        late
    }

    /// Keep, for the entities changed since the last prune (`rows` per table), and for every
    /// aggregate, only what decides the windows that end at or after `settled_ms`.
    pub fn prune_rows(&mut self, table: usize, rows: &[Row], settled_ms: i64) {
        for &m in &self.tables[table].metrics {
            let metric = &mut self.entities[m];
            for &row in rows {
                if metric.has(row) {
                    metric.prune(row, settled_ms);
                }
            }
        }
    }

    pub fn prune_aggregates(&mut self, settled_ms: i64) {
        for metric in &mut self.aggregates {
            let settled = metric.window.bucket(settled_ms);
            metric.kind.prune(settled);
        }
    }

    /// Drop every bucket before its metric's window as of `clock_ms`; entities with nothing left
    /// are released (their records deleted). Only metrics whose window moved have work. Trait
    /// histories are not pruned here but when they are written (EntitiesMetric::trait_writes).
    pub fn expire(&mut self, clock_ms: i64) {
        let moved: Vec<bool> = self.entities.iter_mut().map(|m| m.window_moved(clock_ms)).collect();
        for table in &mut self.tables {
            if !table.metrics.iter().any(|m| moved[*m]) {
                continue;
            }
            let rows: Vec<Row> = table.live_rows().collect();
            for row in rows {
                let (mut held, mut changed) = (false, false);
                for &m in &table.metrics {
                    let metric = &mut self.entities[m];
                    if moved[m] && metric.has(row) {
                        changed |= metric.expire(row, clock_ms);
                    }
                    held |= metric.has(row);
                }
                if changed {
                    table.touch(row);
                }
                if !held {
                    table.release(row);
                }
            }
        }
        for metric in &mut self.aggregates {
            metric.kind.expire(metric.window.span(clock_ms).first);
        }
    }

    /// Every windowed metric's part as of `as_of_ms` (entities evaluated incrementally).
    pub fn summarize(&mut self, as_of_ms: i64) -> Summary {
        let mut parts = vec![None; self.metrics.len()];
        for (m, metric) in self.entities.iter_mut().enumerate() {
            parts[self.entity_metric[m]] = Some(metric.part(metric.window.span(as_of_ms)));
        }
        for (a, metric) in self.aggregates.iter().enumerate() {
            parts[self.aggregate_metric[a]] = Some(metric.kind.part(metric.window.span(as_of_ms)));
        }
        Summary { as_of: as_of_ms, parts }
    }

    /// Every metric's value as of `as_of_ms`, in catalogue order, breakdowns capped.
    pub fn evaluate(&mut self, as_of_ms: i64) -> Vec<MetricValue> {
        let summary = self.summarize(as_of_ms);
        self.finish(&summary)
    }

    /// Formulas and the cap over a summary (this engine's, or several partitions' merged).
    pub fn finish(&self, summary: &Summary) -> Vec<MetricValue> {
        finish_with(&self.metrics, summary)
    }

    /// The earliest bucket start holding any state (where a history starts by default).
    pub fn first_bucket_ms(&self) -> Option<i64> {
        let entities =
            self.entities.iter().filter_map(|m| m.first_bucket().map(|b| b * m.window.bucket_ms));
        let aggregates = self
            .aggregates
            .iter()
            .filter_map(|m| m.kind.first_bucket().map(|b| b * m.window.bucket_ms));
        entities.chain(aggregates).min()
    }

    /// The catalogue index of an entities metric, and of an aggregate.
    pub fn entities_index(&self, m: usize) -> usize {
        self.entity_metric[m]
    }

    pub fn aggregate_index(&self, a: usize) -> usize {
        self.aggregate_metric[a]
    }

    pub fn table_of(&self, m: usize) -> usize {
        self.entity_table[m]
    }

    /// The stored items of every aggregate changed since the last call (all with `everything`),
    /// per aggregate index.
    pub fn aggregate_changes(&mut self, everything: bool) -> Vec<(usize, Vec<Change>)> {
        self.aggregates
            .iter_mut()
            .enumerate()
            .map(|(a, metric)| {
                let mut changes = Vec::new();
                metric.kind.changes(everything, &mut changes);
                (a, changes)
            })
            .filter(|(_, c)| !c.is_empty())
            .collect()
    }
}

/// Formulas and the cap over a summary of a catalogue's metrics.
pub fn finish_with(metrics: &[MetricInfo], summary: &Summary) -> Vec<MetricValue> {
    let described: Vec<finish::Metric> = metrics
        .iter()
        .map(|m| finish::Metric {
            name: &m.name,
            segments: &m.segments,
            max_segment_values: m.max_segment_values,
            kind: match &m.kind {
                MetricKind::Formula { formula, operands } => {
                    finish::Kind::Formula { formula, operands }
                }
                _ => finish::Kind::Windowed { empty: m.empty.clone().expect("a windowed metric") },
            },
        })
        .collect();
    finish::finish(&described, &summary.parts)
}
