//! NSM's native core: the per-event work of a partition's `entities` metrics.
//!
//! The Python worker hands a batch of Kafka records to `Partition.run`, which decodes, validates,
//! deduplicates and applies them to the metrics it holds, exactly as processor/worker/partition.py
//! and processor/engine do. Whatever it cannot decide with certainty (an invalid event, a
//! timestamp of another shape, a label that needs Python's formatting) it stops at and returns,
//! and the Python engine handles that one event. Metrics it does not hold (aggregates, sums) stay
//! in Python: it lists the events they need.

mod cell;
mod json;
mod metric;
mod pack;
mod time;
mod values;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use ahash::{AHashMap, AHashSet};
use std::collections::hash_map::Entry;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use serde::Deserialize;

use cell::Cell;
use metric::{Kind, Metric, MetricSpec};
use json::{Json, Object};
use values::label;

#[derive(Deserialize)]
struct Spec {
    /// (bucket size, longest window in buckets) over every windowed metric: the dedup horizon.
    horizon: Vec<(i64, i64)>,
    /// The event types each metric kept in Python accepts (None: any).
    python_types: Vec<Option<Vec<String>>>,
    /// How a message reads: "nsm" (NSM's own events) or "segment" (Segment/RudderStack calls).
    #[serde(default)]
    input_format: InputFormat,
    metrics: Vec<MetricSpec>,
}

/// The message shapes of CONTRACT §1. The mapping of a Segment/RudderStack call is
/// processor/segment.py's: a track call's `event` is the type, any other call's type is its
/// call type, `messageId` is the event id.
#[derive(Deserialize, Default, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum InputFormat {
    #[default]
    Nsm,
    Segment,
}

const SEGMENT_CALLS: [&str; 6] = ["track", "identify", "group", "page", "screen", "alias"];

impl InputFormat {
    /// The event type and the event id's field of a decoded message; None when it has no type
    /// (the Python decoder then says why).
    fn type_and_id<'v, 'a>(self, data: &'v Object<'a>) -> Option<(&'v str, &'static str)> {
        let Some(Json::Str(kind)) = data.get("type") else { return None };
        match self {
            InputFormat::Nsm => Some((kind, "event_id")),
            InputFormat::Segment if kind == "track" => match data.get("event") {
                Some(Json::Str(name)) if !name.is_empty() => Some((name, "messageId")),
                _ => None,
            },
            InputFormat::Segment => {
                SEGMENT_CALLS.contains(&kind.as_ref()).then_some((kind.as_ref(), "messageId"))
            }
        }
    }
}

/// What one event type reaches: native metrics with the conditions accepting it, and whether a
/// Python metric needs it too.
struct Route {
    metrics: Vec<(usize, Vec<usize>)>,
    python: bool,
}

/// One native metric's share of an event, decided before anything changes.
struct Planned<'v> {
    metric: usize,
    late: bool,
    entity: Cow<'v, str>,
    labels: Vec<Cow<'v, str>>,
    /// Per matched condition: its kind, slot and cap, and the label it adds (none for a count).
    values: Vec<(Kind, usize, i64, Option<Cow<'v, str>>)>,
}

/// A batch's records, copied out of Python once so that the work runs without the GIL.
#[derive(Default)]
struct Records {
    offsets: Vec<i64>,
    /// Where each value lies in `bytes`; None for a value that is not bytes.
    spans: Vec<Option<(usize, usize)>>,
    bytes: Vec<u8>,
}

impl Records {
    /// The records' offsets and values, in buffers kept from the last batch.
    fn gather(records: &Bound<'_, PyList>, mut gathered: Records) -> PyResult<Records> {
        let py = records.py();
        gathered.offsets.clear();
        gathered.spans.clear();
        gathered.bytes.clear();
        for record in records.iter() {
            gathered.offsets.push(record.getattr(intern!(py, "offset"))?.extract()?);
            let value = record.getattr(intern!(py, "value"))?;
            let span = value.downcast::<PyBytes>().ok().map(|value| {
                let start = gathered.bytes.len();
                gathered.bytes.extend_from_slice(value.as_bytes());
                (start, gathered.bytes.len())
            });
            gathered.spans.push(span);
        }
        Ok(gathered)
    }

    fn len(&self) -> usize {
        self.offsets.len()
    }

    fn get(&self, index: usize) -> (i64, Option<&[u8]>) {
        (self.offsets[index], self.spans[index].map(|(from, to)| &self.bytes[from..to]))
    }
}

#[derive(Default)]
struct Batch {
    records: Records,
    stored_offset: Option<i64>,
    event_clock: bool,
    drop_late: bool,
    clock: Option<i64>,
    now_ms: i64,
    max_future_skew_ms: i64,
    applied: i64,
    skipped: i64,
    duplicates: i64,
    new_offset: Option<i64>,
    max_ts: Option<i64>,
    late: Vec<i64>,
    python_events: Vec<(usize, Option<i64>)>,
    ids: Vec<(String, i64)>,
    /// An id was registered again within the batch: `ids` may hold it twice.
    repeated_ids: bool,
}

/// Why an event goes to the Python engine instead.
struct Defer;

create_exception!(
    nsm_native,
    EventFailed,
    PyException,
    "The core failed on one record: args (index in the batch, what went wrong). The partition's \
     state may hold part of that record: restore it before going on."
);

/// Event types whose routes are kept at most: a topic of ever new types must not grow them
/// without end.
const MAX_ROUTES: usize = 10_000;

/// What a panic carried, as text.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic".to_owned()
    }
}

#[pyclass(module = "nsm_native")]
struct Partition {
    metrics: Vec<Metric>,
    by_name: HashMap<String, usize>,
    horizon: Vec<(i64, i64)>,
    python_types: Vec<Option<AHashSet<String>>>,
    input_format: InputFormat,
    route_of: AHashMap<String, usize>,
    routes: Vec<Route>,
    seen: AHashMap<String, i64>,
    batch: Batch,
    /// The last batch's buffers, kept for the next: growing fresh ones batch after batch had
    /// the kernel zeroing new pages for a fifth of the time.
    spare: Spare,
}

#[derive(Default)]
struct Spare {
    records: Records,
    items: Vec<u8>,
    ids: Vec<u8>,
}

fn error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}

impl Partition {
    fn metric_index(&self, name: &str) -> PyResult<usize> {
        self.by_name.get(name).copied().ok_or_else(|| error(format!("no native metric {name}")))
    }

    fn route(&mut self, event_type: &str) -> usize {
        if let Some(index) = self.route_of.get(event_type) {
            return *index;
        }
        let metrics = self
            .metrics
            .iter()
            .enumerate()
            .filter_map(|(m, metric)| {
                let accepting: Vec<usize> = (0..metric.conditions.len())
                    .filter(|c| metric.conditions[*c].accepts_type(event_type))
                    .collect();
                (!accepting.is_empty()).then_some((m, accepting))
            })
            .collect();
        let python =
            self.python_types.iter().any(|t| t.as_ref().is_none_or(|t| t.contains(event_type)));
        self.routes.push(Route { metrics, python });
        self.route_of.insert(event_type.to_owned(), self.routes.len() - 1);
        self.routes.len() - 1
    }

    /// When a repeat of an event at `ts` stops being a duplicate; None on overflow.
    fn horizon_of(&self, ts: i64) -> Option<i64> {
        let mut horizon: Option<i64> = None;
        for (b, n) in &self.horizon {
            let term = ts.div_euclid(*b).checked_add(*n)?.checked_mul(*b)?;
            horizon = Some(horizon.map_or(term, |h| h.max(term)));
        }
        horizon.or_else(|| ts.checked_add(1))
    }

    /// Each native metric's share of an event, or Defer when a label needs Python.
    fn plan<'v>(
        &self,
        route: &Route,
        data: &'v Object<'_>,
        ts: i64,
        clock: Option<i64>,
    ) -> Result<Vec<Planned<'v>>, Defer> {
        let properties = match data.get("properties") {
            Some(Json::Object(p)) => Some(p),
            _ => None,
        };
        let mut planned = Vec::with_capacity(route.metrics.len());
        for (m, accepting) in &route.metrics {
            let metric = &self.metrics[*m];
            if self.batch.drop_late && clock.is_some_and(|c| metric.is_late(ts, c)) {
                planned.push(Planned {
                    metric: *m,
                    late: true,
                    entity: Cow::Borrowed(""),
                    labels: Vec::new(),
                    values: Vec::new(),
                });
                continue;
            }
            let matched: Vec<usize> = accepting
                .iter()
                .copied()
                .filter(|c| {
                    metric.conditions[*c].filters.iter().all(|(field, tests)| {
                        let value = field.get(data, properties);
                        tests.iter().all(|t| t.holds(value))
                    })
                })
                .collect();
            if matched.is_empty() {
                continue;
            }
            let Some(key) = metric.key.get(data, properties) else { continue };
            let entity = label(key).ok_or(Defer)?;
            let mut labels = Vec::with_capacity(metric.segments.len());
            for segment in &metric.segments {
                labels.push(match segment.get(data, properties) {
                    None => Cow::Borrowed("unknown"),
                    Some(v) => label(v).ok_or(Defer)?,
                });
            }
            let mut values = Vec::with_capacity(matched.len());
            for c in matched {
                let condition = &metric.conditions[c];
                let value = match &condition.field {
                    None => None,
                    Some(field) => match field.get(data, properties) {
                        None => continue,
                        Some(v) => Some(label(v).ok_or(Defer)?),
                    },
                };
                values.push((condition.kind, condition.slot, condition.cap, value));
            }
            planned.push(Planned { metric: *m, late: false, entity, labels, values });
        }
        Ok(planned)
    }

    fn apply_planned(&mut self, planned: Vec<Planned>, ts: i64, seq: i64) {
        for p in planned {
            if p.late {
                self.batch.late[p.metric] += 1;
                continue;
            }
            let metric = &mut self.metrics[p.metric];
            let bucket = ts.div_euclid(metric.bucket_ms);
            let cell = metric.cell(bucket, &p.entity, ts, seq, &p.labels);
            for (kind, slot, cap, value) in &p.values {
                let (slot, cap) = (*slot, *cap);
                match (kind, value) {
                    (Kind::Count, _) => cell.count(slot, cap),
                    (Kind::Distinct, Some(v)) => cell.add_distinct(slot, cap as usize, v),
                    (Kind::ValueCounts, Some(v)) => cell.add_value_count(slot, cap, v),
                    _ => {}
                }
            }
        }
    }

    /// Dedup by event id within the original's horizon; true when the event is new.
    fn first_time(&mut self, event_id: Option<String>, horizon: i64, ts: i64) -> bool {
        let Some(id) = event_id else { return true };
        match self.seen.entry(id) {
            Entry::Occupied(mut stored) => {
                if ts < *stored.get() {
                    self.batch.duplicates += 1;
                    return false;
                }
                stored.insert(horizon);
                self.batch.ids.push((stored.key().clone(), horizon));
                self.batch.repeated_ids = true;
            }
            Entry::Vacant(new) => {
                self.batch.ids.push((new.key().clone(), horizon));
                new.insert(horizon);
            }
        }
        true
    }

    /// The clock after an admitted event, and the clock its lateness is judged by.
    fn advance_clock(&mut self, ts: i64) -> Option<i64> {
        if self.batch.event_clock && self.batch.clock.is_none_or(|c| ts > c) {
            self.batch.clock = Some(ts);
        }
        self.batch.applied += 1;
        self.batch.max_ts = Some(self.batch.max_ts.map_or(ts, |m| m.max(ts)));
        if self.batch.drop_late {
            self.batch.clock
        } else {
            None
        }
    }

    /// Apply the batch's records from `start` on; returns the index of the first one deferred,
    /// or the number of records; Err((index, what)) when the core failed on a record.
    fn run_from(&mut self, start: usize) -> Result<usize, (usize, String)> {
        let records = std::mem::take(&mut self.batch.records);
        let mut failure = None;
        let stopped = (start..records.len()).find(|&index| {
            let (offset, value) = records.get(index);
            if self.batch.stored_offset.is_some_and(|s| offset <= s) {
                self.batch.skipped += 1;
                return false;
            }
            self.batch.new_offset = Some(offset);
            let Some(raw) = value else { return true };
            // A panic is a failure on this one record, which the caller reports; the others
            // go on once it has restored the state.
            match catch_unwind(AssertUnwindSafe(|| self.event(raw, offset, index))) {
                Ok(handled) => handled.is_err(),
                Err(panic) => {
                    failure = Some((index, format!("panic: {}", panic_text(panic.as_ref()))));
                    true
                }
            }
        });
        let end = records.len();
        self.batch.records = records;
        match failure {
            Some(failed) => Err(failed),
            None => Ok(stopped.unwrap_or(end)),
        }
    }

    /// One record: applied here, or Defer.
    fn event(&mut self, raw: &[u8], offset: i64, index: usize) -> Result<(), Defer> {
        let Some(Json::Object(data)) = json::parse(raw) else { return Err(Defer) };
        let (event_type, id_field) = self.input_format.type_and_id(&data).ok_or(Defer)?;
        let ts = match data.get("timestamp") {
            Some(Json::Int(i)) => *i,
            Some(Json::Str(s)) => time::parse_usual(s).ok_or(Defer)?,
            _ => return Err(Defer),
        };
        let limit = self.batch.now_ms.checked_add(self.batch.max_future_skew_ms).ok_or(Defer)?;
        if ts > limit {
            return Err(Defer);
        }
        let event_id = match data.get(id_field) {
            None | Some(Json::Null) => None,
            Some(v) => Some(label(v).ok_or(Defer)?.into_owned()),
        };
        let horizon = self.horizon_of(ts).ok_or(Defer)?;
        let route = self.route(event_type);
        let clock_after = if self.batch.event_clock {
            Some(self.batch.clock.map_or(ts, |c| c.max(ts)))
        } else {
            self.batch.clock
        };
        let planned = self.plan(&self.routes[route], &data, ts, clock_after)?;
        if !self.first_time(event_id, horizon, ts) {
            return Ok(());
        }
        let clock = self.advance_clock(ts);
        self.apply_planned(planned, ts, offset);
        if self.routes[route].python {
            self.batch.python_events.push((index, clock));
        }
        Ok(())
    }
}

#[pymethods]
impl Partition {
    #[new]
    fn new(spec: &str) -> PyResult<Partition> {
        let spec: Spec = serde_json::from_str(spec).map_err(|e| error(e.to_string()))?;
        let mut metrics = Vec::new();
        for m in spec.metrics {
            metrics.push(Metric::new(m).map_err(error)?);
        }
        let by_name = metrics.iter().enumerate().map(|(i, m)| (m.name.clone(), i)).collect();
        Ok(Partition {
            metrics,
            by_name,
            horizon: spec.horizon,
            python_types: spec
                .python_types
                .into_iter()
                .map(|t| t.map(|t| t.into_iter().collect()))
                .collect(),
            input_format: spec.input_format,
            route_of: AHashMap::new(),
            routes: Vec::new(),
            seen: AHashMap::new(),
            batch: Batch::default(),
            spare: Spare::default(),
        })
    }

    /// Start a batch of records (anything with `offset` and `value`, in offset order): the stored
    /// offset, the clock it starts from and how lateness is judged. The records' values are
    /// copied here, with the GIL held, once per batch.
    #[pyo3(signature = (records, stored_offset, clock, event_clock, drop_late, now_ms, max_future_skew_ms))]
    #[allow(clippy::too_many_arguments)]
    fn begin(
        &mut self,
        records: &Bound<'_, PyList>,
        stored_offset: Option<i64>,
        clock: Option<i64>,
        event_clock: bool,
        drop_late: bool,
        now_ms: i64,
        max_future_skew_ms: i64,
    ) -> PyResult<()> {
        if self.routes.len() > MAX_ROUTES {
            self.route_of.clear();
            self.routes.clear();
        }
        self.batch = Batch {
            records: Records::gather(records, std::mem::take(&mut self.spare.records))?,
            stored_offset,
            event_clock,
            drop_late,
            clock,
            now_ms,
            max_future_skew_ms,
            late: vec![0; self.metrics.len()],
            ..Batch::default()
        };
        Ok(())
    }

    /// Apply the records from `start` on, without the GIL; returns the index of the first one
    /// the Python engine must handle, or the number of records when all were handled. Raises
    /// EventFailed when the core failed on a record.
    fn run(&mut self, py: Python<'_>, start: usize) -> PyResult<usize> {
        py.allow_threads(|| self.run_from(start)).map_err(|(index, what)| {
            EventFailed::new_err((index, what))
        })
    }

    /// A valid event the Python engine decoded: dedup and clock as for any other. Returns
    /// whether it is new, and the clock its lateness is judged by.
    #[pyo3(signature = (event_id, ts))]
    fn admit(&mut self, event_id: Option<String>, ts: i64) -> PyResult<(bool, Option<i64>)> {
        let horizon = self.horizon_of(ts).ok_or_else(|| error("timestamp out of range"))?;
        if !self.first_time(event_id, horizon, ts) {
            return Ok((false, None));
        }
        Ok((true, self.advance_clock(ts)))
    }

    /// What the batch did: (applied, skipped, duplicates, new offset, newest event time, late
    /// per metric, the (index, clock) of events Python metrics need, the new ids with their
    /// horizons as (msgpack `[id, horizon, ...]`, newest horizon), and every cell the batch
    /// changed packed for the Redis step as (members, items): msgpack `[expires_at, member,
    /// [entity, cell, ...]]` concatenated, one per member (src/pack.rs)). Marks the cells written.
    #[allow(clippy::type_complexity)]
    fn finish<'py>(
        &mut self,
        py: Python<'py>,
    ) -> (
        i64,
        i64,
        i64,
        Option<i64>,
        Option<i64>,
        HashMap<String, i64>,
        Vec<(usize, Option<i64>)>,
        (Bound<'py, PyBytes>, Option<i64>),
        (Vec<String>, Bound<'py, PyBytes>),
    ) {
        let mut batch = std::mem::take(&mut self.batch);
        let (newest_horizon, members) = py.allow_threads(|| {
            if batch.repeated_ids {
                // The last registration of an id is its horizon.
                let mut kept = AHashSet::new();
                batch.ids.reverse();
                batch.ids.retain(|(id, _)| kept.insert(id.clone()));
                batch.ids.reverse();
            }
            let newest_horizon = batch.ids.iter().map(|(_, horizon)| *horizon).max();
            let (mut members, items, ids) = (Vec::new(), &mut self.spare.items, &mut self.spare.ids);
            items.clear();
            pack::ids(&batch.ids, ids);
            for metric in &mut self.metrics {
                metric.pack_touched(&mut members, items);
            }
            (newest_horizon, members)
        });
        self.spare.records = std::mem::take(&mut batch.records);
        let late = batch
            .late
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(m, n)| (self.metrics[m].name.clone(), *n))
            .collect();
        (
            batch.applied,
            batch.skipped,
            batch.duplicates,
            batch.new_offset,
            batch.max_ts,
            late,
            batch.python_events,
            (PyBytes::new(py, &self.spare.ids), newest_horizon),
            (members, PyBytes::new(py, &self.spare.items)),
        )
    }

    /// Merge cells the Python engine built (encoded as in Redis) into a metric's bucket.
    fn merge_cells(&mut self, name: &str, bucket: i64, cells: Vec<(String, Vec<u8>)>) -> PyResult<()> {
        let m = self.metric_index(name)?;
        for (entity, raw) in cells {
            let cell = Cell::decode(&raw, &self.metrics[m].shape).map_err(error)?;
            self.metrics[m].merge_cell(bucket, entity, cell);
        }
        Ok(())
    }

    /// Put one stored bucket into a metric (at restore).
    fn load_bucket(&mut self, name: &str, bucket: i64, fields: HashMap<Vec<u8>, Vec<u8>>) -> PyResult<()> {
        let m = self.metric_index(name)?;
        let metric = &mut self.metrics[m];
        let cells = metric.buckets.entry(bucket).or_default();
        for (entity, raw) in fields {
            let entity = String::from_utf8(entity).map_err(|e| error(e.to_string()))?;
            cells.insert(entity, Cell::decode(&raw, &metric.shape).map_err(error)?);
        }
        Ok(())
    }

    /// Every cell of a metric, encoded: {bucket: {entity: cell}} (for tests and inspection).
    fn cells<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        let m = self.metric_index(name)?;
        let out = PyDict::new(py);
        for (bucket, cells) in &self.metrics[m].buckets {
            let encoded = PyDict::new(py);
            for (entity, cell) in cells {
                encoded.set_item(entity, PyBytes::new(py, &cell.encode()))?;
            }
            out.set_item(bucket, encoded)?;
        }
        Ok(out)
    }

    fn set_seen(&mut self, seen: Vec<(String, i64)>) {
        self.seen = seen.into_iter().collect();
    }

    /// Forget the ids whose horizon is at or before `until`.
    fn forget_ids(&mut self, until: i64) {
        self.seen.retain(|_, horizon| *horizon > until);
    }

    fn seen_count(&self) -> usize {
        self.seen.len()
    }

    /// Drop every bucket before its metric's window as of `clock_ms`.
    fn expire(&mut self, clock_ms: i64) {
        for metric in &mut self.metrics {
            let first = metric.first_bucket(clock_ms);
            metric.expire(first);
        }
    }

    /// Each metric's part as of a time: {name: (qualifying entities, [{label: n}] per segment)}.
    #[allow(clippy::type_complexity)]
    fn summarize(&mut self, as_of_ms: i64) -> HashMap<String, (i64, Vec<BTreeMap<String, i64>>)> {
        self.metrics.iter_mut().map(|m| (m.name.clone(), m.summarize(as_of_ms))).collect()
    }
}

// Decoding an event allocates many small short-lived objects; glibc's allocator spent a tenth of
// the time on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule]
fn nsm_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Partition>()?;
    module.add("EventFailed", module.py().get_type::<EventFailed>())?;
    Ok(())
}
