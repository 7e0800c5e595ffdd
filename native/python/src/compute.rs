//! `nsm compute`: a stream of raw events through the engine, every metric as of a time out.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{mpsc, Arc};

use pyo3::prelude::*;

/// How much of a file is read at a time.
const CHUNK_BYTES: usize = 8 << 20;
use pyo3::types::PyBytes;

use nsm_engine::compute::{self, Verdict};
use nsm_engine::event::Reason;
use nsm_engine::fields::Captures;
use nsm_engine::spec::CatalogSpec;

use crate::catalog::Catalog;
use crate::values::{results, MetricResult};

/// Read a file as chunks of whole lines (the last may lack its newline), each about
/// `CHUNK_BYTES`, into buffers given back once worked on; stop when nobody takes them.
fn read_lines(
    mut file: std::fs::File,
    send: &mpsc::SyncSender<std::io::Result<Vec<u8>>>,
    spent: &mpsc::Receiver<Vec<u8>>,
) {
    let mut rest: Vec<u8> = Vec::new();
    loop {
        let mut buffer = spent.try_recv().unwrap_or_default();
        buffer.clear();
        buffer.append(&mut rest);
        let read = (&mut file).take(CHUNK_BYTES as u64).read_to_end(&mut buffer);
        let chunk = match read {
            Ok(0) if buffer.is_empty() => return,
            Ok(0) => buffer,
            Ok(_) => match memchr::memrchr(b'\n', &buffer) {
                Some(end) => {
                    rest.extend_from_slice(&buffer[end + 1..]);
                    buffer.truncate(end + 1);
                    buffer
                }
                None => {
                    rest = buffer; // a line longer than a chunk: read on
                    continue;
                }
            },
            Err(e) => {
                let _ = send.send(Err(e));
                return;
            }
        };
        if send.send(Ok(chunk)).is_err() {
            return;
        }
    }
}

/// Applies events in arrival order: `feed_lines` (JSON Lines, whole lines) or `feed` (one
/// message each). The work runs without the GIL.
#[pyclass(module = "nsm_native")]
pub struct Compute {
    inner: compute::Compute,
    names: Vec<String>,
    spec: Arc<CatalogSpec>,
}

#[pymethods]
impl Compute {
    /// `failed` ({position: detail}): messages an earlier run failed on (`failure`), which
    /// are invalid (`unprocessable`) in this one.
    #[new]
    #[pyo3(signature = (catalog, at_ms, now_ms, max_future_skew_ms, input_format="nsm",
                        failed=None))]
    fn new(
        catalog: &Catalog,
        at_ms: Option<i64>,
        now_ms: i64,
        max_future_skew_ms: i64,
        input_format: &str,
        failed: Option<HashMap<i64, String>>,
    ) -> PyResult<Compute> {
        let format = crate::catalog::input_format(input_format)?;
        let mut inner =
            compute::Compute::new(&catalog.spec, format, at_ms, now_ms, max_future_skew_ms)
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        inner.failed = failed.into_iter().flatten().collect();
        Ok(Compute { inner, names: catalog.names(), spec: catalog.spec.clone() })
    }

    /// Whole lines of JSON Lines; blank lines are not events.
    fn feed_lines(&mut self, py: Python<'_>, chunk: &Bound<'_, PyBytes>) {
        let bytes = chunk.as_bytes();
        py.allow_threads(|| self.inner.lines(bytes));
    }

    /// A JSON Lines file (blank lines are not events), read in chunks of about `CHUNK_BYTES` by
    /// another thread (`read_lines`) while the engine works on the previous one.
    fn feed_file(&mut self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<()> {
        py.allow_threads(|| {
            let file = std::fs::File::open(&path)?;
            if let Ok(size) = usize::try_from(file.metadata()?.len()) {
                self.inner.expect_bytes(size);
            }
            // The next chunk is read while this one is worked on.
            std::thread::scope(|scope| {
                let (send, chunks) = mpsc::sync_channel(1);
                let (give_back, spent) = mpsc::channel();
                scope.spawn(move || read_lines(file, &send, &spent));
                for chunk in chunks {
                    let chunk: Vec<u8> = chunk?;
                    self.inner.lines(&chunk);
                    if self.inner.failure.is_some() {
                        return Ok(()); // to be run again (`failure`)
                    }
                    let _ = give_back.send(chunk);
                }
                Ok(())
            })
        })
        .map_err(|e: std::io::Error| {
            pyo3::exceptions::PyOSError::new_err(format!("{}: {e}", path.display()))
        })
    }

    /// Messages, one each (None: a message without a value). Returns, per message, its event
    /// time when applied, else None.
    fn feed(&mut self, py: Python<'_>, messages: Vec<Option<Vec<u8>>>) -> Vec<Option<i64>> {
        py.allow_threads(|| {
            let mut captures = Captures::new();
            messages
                .iter()
                .map(|raw| {
                    match self.inner.message(raw.as_deref().unwrap_or(b"\xff"), &mut captures) {
                        Verdict::Applied(ts) => Some(ts),
                        _ => None,
                    }
                })
                .collect()
        })
    }

    /// Events already judged valid and new (a log's), with their arrival sequence numbers:
    /// applied without deduplication. Returns how many were valid.
    fn feed_kept(&mut self, py: Python<'_>, messages: Vec<Vec<u8>>, seqs: Vec<i64>) -> usize {
        py.allow_threads(|| {
            let mut captures = Captures::new();
            messages
                .iter()
                .zip(seqs)
                .filter(|(raw, seq)| self.inner.apply_kept(raw, *seq, &mut captures))
                .count()
        })
    }

    /// Every metric at each of `times_ms` (ascending), from the state kept whole.
    fn sweep(&self, py: Python<'_>, times_ms: Vec<i64>) -> PyResult<Vec<Vec<MetricResult>>> {
        let spec = self.spec.clone();
        let swept = py
            .allow_threads(|| self.inner.sweep(&spec, &times_ms))
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        swept.iter().map(|values| results(py, self.names.clone(), values)).collect()
    }

    #[getter]
    fn applied(&self) -> i64 {
        self.inner.applied
    }

    #[getter]
    fn duplicates(&self) -> i64 {
        self.inner.duplicates
    }

    /// Invalid messages per reason (only reasons that occurred).
    #[getter]
    fn invalid(&self) -> BTreeMap<&'static str, i64> {
        self.inner.invalid.iter().filter(|(_, n)| *n > 0).map(|(r, n)| (r.as_str(), *n)).collect()
    }

    /// Every invalid message, in order: (position from 0, line from 1 of the JSON Lines read,
    /// reason, detail).
    #[getter]
    fn rejected(&self) -> Vec<(i64, i64, &'static str, String)> {
        let inner = &self.inner;
        inner
            .rejected
            .iter()
            .map(|r| {
                (r.position, inner.line_number(r.position), r.reason.as_str(), r.detail.clone())
            })
            .collect()
    }

    /// The position of the message this run failed on while applying it, and what went wrong
    /// (None: it failed on none). Nothing after it was applied: run again with it in `failed`.
    #[getter]
    fn failure(&self) -> Option<(i64, String)> {
        self.inner.failure.clone()
    }

    #[getter]
    fn as_of_ms(&self) -> i64 {
        self.inner.as_of()
    }

    #[getter]
    fn newest_ms(&self) -> Option<i64> {
        self.inner.newest
    }

    /// Every metric as of `as_of_ms` (default: `as_of_ms`), in catalogue order.
    #[pyo3(signature = (as_of_ms=None))]
    fn evaluate(&mut self, py: Python<'_>, as_of_ms: Option<i64>) -> PyResult<Vec<MetricResult>> {
        let as_of = as_of_ms.unwrap_or_else(|| self.inner.as_of());
        let values = py.allow_threads(|| self.inner.engine.evaluate(as_of));
        results(py, self.names.clone(), &values)
    }
}

/// The reasons a message can be invalid, in the order of the checks.
#[pyfunction]
pub fn invalid_reasons() -> Vec<&'static str> {
    Reason::ALL.iter().map(|r| r.as_str()).collect()
}
