//! A Kafka partition's state in the engine: batches in, what to write out (the worker and the
//! replay; processor/worker/partition.py wraps it).

use std::collections::HashMap;

use ahash::AHashMap;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use nsm_engine::partition::{self, BatchOptions, Items, Writes};

use crate::catalog::Catalog;
use crate::summary::Summary;

create_exception!(
    nsm_native,
    EventFailed,
    PyException,
    "The engine failed on one record while applying it: args (index in the batch, offset, what \
     went wrong). The partition's state may hold part of that record: restore it from what is \
     stored, then apply the batch again with the record among `unprocessable`."
);

fn error(e: impl ToString) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A batch's records copied out of Python once, so that the work runs without the GIL.
#[derive(Default)]
struct Records {
    offsets: Vec<i64>,
    spans: Vec<Option<(usize, usize)>>,
    bytes: Vec<u8>,
}

impl Records {
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

    fn views(&self) -> Vec<(i64, Option<&[u8]>)> {
        self.offsets
            .iter()
            .zip(&self.spans)
            .map(|(offset, span)| (*offset, span.map(|(from, to)| &self.bytes[from..to])))
            .collect()
    }
}

fn msgpack_str(out: &mut Vec<u8>, bytes: &[u8]) {
    rmp::encode::write_str_len(out, u32::try_from(bytes.len()).expect("under 4 GiB"))
        .expect("in memory");
    out.extend_from_slice(bytes);
}

fn msgpack_array(out: &mut Vec<u8>, len: usize) {
    rmp::encode::write_array_len(out, u32::try_from(len).expect("under 2^32 items"))
        .expect("in memory");
}

/// Items as the store's script takes them: `[field, value, ...]` to set and `[field, ...]` to
/// delete, each a msgpack array of strings (Redis's Lua reads them as byte strings).
fn pack_items(items: &Items) -> (Vec<u8>, Vec<u8>, usize) {
    let set: Vec<&(Vec<u8>, Option<Vec<u8>>)> = items.iter().filter(|(_, v)| v.is_some()).collect();
    let gone: Vec<&(Vec<u8>, Option<Vec<u8>>)> =
        items.iter().filter(|(_, v)| v.is_none()).collect();
    let mut sets = Vec::new();
    msgpack_array(&mut sets, 2 * set.len());
    for (field, value) in &set {
        msgpack_str(&mut sets, field);
        msgpack_str(&mut sets, value.as_deref().expect("a value"));
    }
    let mut dels = Vec::new();
    msgpack_array(&mut dels, gone.len());
    for (field, _) in &gone {
        msgpack_str(&mut dels, field);
    }
    (sets, dels, items.len())
}

/// State changes to store: entity records and aggregate items to set or delete, packed.
#[pyclass(module = "nsm_native", frozen, get_all)]
pub struct StateWrites {
    pub records: Py<PyBytes>,
    pub record_deletes: Py<PyBytes>,
    pub aggregates: Py<PyBytes>,
    pub aggregate_deletes: Py<PyBytes>,
    /// How many fields change.
    pub changes: usize,
}

impl StateWrites {
    fn of(py: Python<'_>, writes: &Writes) -> StateWrites {
        let (records, record_deletes, r) = pack_items(&writes.records);
        let (aggregates, aggregate_deletes, a) = pack_items(&writes.aggregates);
        StateWrites {
            records: PyBytes::new(py, &records).unbind(),
            record_deletes: PyBytes::new(py, &record_deletes).unbind(),
            aggregates: PyBytes::new(py, &aggregates).unbind(),
            aggregate_deletes: PyBytes::new(py, &aggregate_deletes).unbind(),
            changes: r + a,
        }
    }
}

/// An invalid message of a batch: its index in the batch, offset, reason and detail.
#[pyclass(module = "nsm_native", frozen, get_all)]
pub struct InvalidMessage {
    pub index: usize,
    pub offset: i64,
    pub reason: &'static str,
    pub detail: String,
}

/// What a batch did and what to store with its offset.
#[pyclass(module = "nsm_native", frozen, get_all)]
pub struct BatchResult {
    pub applied: i64,
    pub skipped: i64,
    pub duplicates: i64,
    pub invalid: Vec<Py<InvalidMessage>>,
    /// Late events per metric.
    pub late: HashMap<String, i64>,
    pub previous_offset: Option<i64>,
    pub new_offset: Option<i64>,
    pub max_ts: Option<i64>,
    pub writes: Py<StateWrites>,
    /// The batch's new event ids, packed (format 2), and the newest of their horizons.
    pub ids: Py<PyBytes>,
    pub newest_horizon: Option<i64>,
}

#[pyclass(module = "nsm_native")]
pub struct Partition {
    inner: partition::Partition,
    names: Vec<String>,
    spare: Records,
}

#[pymethods]
impl Partition {
    /// `keep_history`: keep the state whole (a replay evaluates past times at its end).
    #[new]
    #[pyo3(signature = (catalog, keep_history=false, input_format="nsm"))]
    fn new(catalog: &Catalog, keep_history: bool, input_format: &str) -> PyResult<Partition> {
        let format = crate::catalog::input_format(input_format)?;
        let inner =
            partition::Partition::new(&catalog.spec, format, keep_history).map_err(error)?;
        Ok(Partition { inner, names: catalog.names(), spare: Records::default() })
    }

    /// The stored ids of the metrics whose stored state is this version's: [(name, id)].
    fn set_metric_ids(&mut self, ids: Vec<(String, u32)>) {
        self.inner.set_metric_ids(&ids);
    }

    /// Load stored state of format 2: entity records, aggregate items and batches of ids.
    fn restore(
        &mut self,
        py: Python<'_>,
        records: Vec<(Vec<u8>, Vec<u8>)>,
        aggregates: Vec<(Vec<u8>, Vec<u8>)>,
        ids: Vec<Vec<u8>>,
    ) -> PyResult<()> {
        py.allow_threads(|| {
            for (key, value) in &records {
                self.inner.restore_record(key, value)?;
            }
            for (key, value) in &aggregates {
                self.inner.restore_aggregate(key, value)?;
            }
            for packed in &ids {
                self.inner.restore_ids(packed)?;
            }
            Ok::<(), nsm_engine::codec::FormatError>(())
        })
        .map_err(error)
    }

    /// Merge what a rebuild of some metrics stored (format 2: its entity records and aggregate
    /// items, filed under its own metric ids; `ids` [(id, name)] names those taken over) into
    /// this state; returns what to write (the entities reached, every item of those metrics).
    fn take_over(
        &mut self,
        py: Python<'_>,
        records: Vec<(Vec<u8>, Vec<u8>)>,
        aggregates: Vec<(Vec<u8>, Vec<u8>)>,
        ids: Vec<(u32, String)>,
    ) -> PyResult<StateWrites> {
        let writes = py
            .allow_threads(|| {
                let records: Vec<(&[u8], &[u8])> =
                    records.iter().map(|(k, v)| (&k[..], &v[..])).collect();
                let aggregates: Vec<(&[u8], &[u8])> =
                    aggregates.iter().map(|(k, v)| (&k[..], &v[..])).collect();
                self.inner.take_over(&records, &aggregates, &ids)
            })
            .map_err(error)?;
        Ok(StateWrites::of(py, &writes))
    }

    /// Load stored state of the first format: the fields of its bucket hashes (metric, bucket,
    /// field, value) and its event ids (label, horizon).
    fn restore_legacy(
        &mut self,
        fields: Vec<(String, i64, Vec<u8>, Vec<u8>)>,
        ids: Vec<(String, i64)>,
    ) -> PyResult<()> {
        for (metric, bucket, field, value) in &fields {
            self.inner.restore_legacy_field(metric, *bucket, field, value).map_err(error)?;
        }
        for (label, horizon) in &ids {
            self.inner.restore_legacy_id(label, *horizon);
        }
        Ok(())
    }

    /// After restoring: the stored offset and newest event time; the state is pruned as of
    /// `clock` (None: not yet) and counts as written.
    #[pyo3(signature = (offset, max_ts, clock))]
    fn restored(&mut self, offset: Option<i64>, max_ts: Option<i64>, clock: Option<i64>) {
        self.inner.offset = offset;
        self.inner.max_ts = max_ts;
        self.inner.restored(clock);
    }

    /// Apply a batch: records with `offset` and `value` (bytes or None), in offset order.
    /// `unprocessable` ({offset: detail}) names records an earlier attempt failed on: they are
    /// invalid (`unprocessable`) and passed over. Raises EventFailed when the engine fails on a
    /// record while applying it.
    #[pyo3(signature = (records, now_ms, max_future_skew_ms, event_clock, drop_late=true,
                        unprocessable=None))]
    #[allow(clippy::too_many_arguments)]
    fn apply_batch(
        &mut self,
        py: Python<'_>,
        records: &Bound<'_, PyList>,
        now_ms: i64,
        max_future_skew_ms: i64,
        event_clock: bool,
        drop_late: bool,
        unprocessable: Option<HashMap<i64, String>>,
    ) -> PyResult<BatchResult> {
        let gathered = Records::gather(records, std::mem::take(&mut self.spare))?;
        let options = BatchOptions { now_ms, max_future_skew_ms, event_clock, drop_late };
        let unprocessable: AHashMap<i64, String> = unprocessable.into_iter().flatten().collect();
        let applied =
            py.allow_threads(|| self.inner.apply_batch(&gathered.views(), options, &unprocessable));
        self.spare = gathered;
        let outcome = applied
            .map_err(|failed| EventFailed::new_err((failed.index, failed.offset, failed.detail)))?;
        let invalid = outcome
            .invalid
            .into_iter()
            .map(|i| {
                Py::new(
                    py,
                    InvalidMessage {
                        index: i.index,
                        offset: i.offset,
                        reason: i.reason.as_str(),
                        detail: i.detail,
                    },
                )
            })
            .collect::<PyResult<_>>()?;
        Ok(BatchResult {
            applied: outcome.applied,
            skipped: outcome.skipped,
            duplicates: outcome.duplicates,
            invalid,
            late: outcome.late.iter().map(|(m, n)| (self.names[*m].clone(), *n)).collect(),
            previous_offset: outcome.previous_offset,
            new_offset: outcome.new_offset,
            max_ts: outcome.max_ts,
            writes: Py::new(py, StateWrites::of(py, &outcome.writes))?,
            ids: PyBytes::new(py, &outcome.ids).unbind(),
            newest_horizon: outcome.newest_horizon,
        })
    }

    /// Offsets up to `last_offset` hold nothing to apply (a record batch that cannot be read).
    fn pass_over(&mut self, last_offset: i64) {
        self.inner.pass_over(last_offset);
    }

    /// Expiry as of `clock_ms`: what to write (records trimmed or deleted, aggregate items gone).
    fn expire(&mut self, py: Python<'_>, clock_ms: i64) -> StateWrites {
        let writes = py.allow_threads(|| self.inner.expire(clock_ms));
        StateWrites::of(py, &writes)
    }

    /// The end of a replay: prune as of `clock_ms`, expire, and write every record and item.
    fn compact(&mut self, py: Python<'_>, clock_ms: i64) -> StateWrites {
        let writes = py.allow_threads(|| self.inner.compact(clock_ms));
        StateWrites::of(py, &writes)
    }

    /// Every record and item, as stored (a migration writes them all).
    fn all_writes(&mut self, py: Python<'_>) -> StateWrites {
        let writes = py.allow_threads(|| self.inner.all_writes());
        StateWrites::of(py, &writes)
    }

    /// Every metric's part as of `as_of_ms`, or as of the clock it was pruned at when later.
    fn summarize(&mut self, py: Python<'_>, as_of_ms: i64) -> Summary {
        Summary::new(py.allow_threads(|| self.inner.summarize(as_of_ms)))
    }

    fn forget_ids_until(&self, clock_ms: i64) -> i64 {
        self.inner.forget_ids_until(clock_ms)
    }

    #[getter]
    fn offset(&self) -> Option<i64> {
        self.inner.offset
    }

    #[getter]
    fn max_ts(&self) -> Option<i64> {
        self.inner.max_ts
    }

    #[getter]
    fn seen_ids(&self) -> usize {
        self.inner.seen_ids()
    }

    /// The start of the earliest bucket holding state (where a history starts by default).
    #[getter]
    fn first_bucket_ms(&self) -> Option<i64> {
        self.inner.engine.first_bucket_ms()
    }
}

/// The summaries of `partitions` (disjoint parts of one stream) at each of `times_ms`
/// (ascending), merged: the replay's history.
#[pyfunction]
pub fn sweep(
    py: Python<'_>,
    catalog: &Catalog,
    partitions: Vec<PyRef<'_, Partition>>,
    times_ms: Vec<i64>,
) -> PyResult<Vec<Summary>> {
    let engines: Vec<&nsm_engine::engine::Engine> =
        partitions.iter().map(|p| &p.inner.engine).collect();
    let spec = catalog.spec.clone();
    let swept = py
        .allow_threads(|| nsm_engine::history::sweep(&spec, &engines, &times_ms))
        .map_err(error)?;
    Ok(swept.into_iter().map(Summary::new).collect())
}

/// Event ids of the first stored format (their labels, with horizons) packed as format 2 stores a
/// batch's ids.
#[pyfunction]
pub fn pack_ids<'py>(py: Python<'py>, ids: Vec<(String, i64)>) -> Bound<'py, PyBytes> {
    let hashed: Vec<(nsm_engine::event::EventId, i64)> = ids
        .iter()
        .map(|(label, horizon)| (nsm_engine::event::event_id_of(label), *horizon))
        .collect();
    PyBytes::new(py, &nsm_engine::state::pack_ids(&hashed))
}

/// For tests of what follows a failure: from now on the engine fails after applying any message
/// whose bytes contain `marker` (None: never). Off by default.
#[pyfunction]
#[pyo3(signature = (marker))]
pub fn inject_fault(marker: Option<Vec<u8>>) {
    nsm_engine::fault::inject(marker);
}
