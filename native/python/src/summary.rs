//! Summaries: what a partition contributes to every metric as of a time, mergeable across
//! partitions and processes, stored as JSON in each partition's `summary` key.

use std::collections::HashSet;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyType};

use nsm_engine::engine::{finish_with, Engine};
use nsm_engine::summary;

use crate::catalog::Catalog;
use crate::values::{results, MetricResult};

#[pyclass(module = "nsm_native", frozen)]
pub struct Summary {
    pub inner: summary::Summary,
}

fn engine_of(catalog: &Catalog) -> PyResult<&Engine> {
    Ok(&catalog.described)
}

#[pymethods]
impl Summary {
    /// As of when (epoch ms).
    #[getter]
    fn as_of_ms(&self) -> i64 {
        self.inner.as_of
    }

    /// The stored JSON; `extras` (a dict of JSON values) become further top-level fields, and
    /// `only` (metric names) keeps the parts of those metrics alone.
    #[pyo3(signature = (catalog, extras=None, only=None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        catalog: &Catalog,
        extras: Option<&Bound<'py, PyDict>>,
        only: Option<HashSet<String>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let engine = engine_of(catalog)?;
        let kept;
        let inner = match only {
            None => &self.inner,
            Some(names) => {
                let parts = engine.metrics.iter().zip(&self.inner.parts);
                kept = summary::Summary {
                    as_of: self.inner.as_of,
                    parts: parts
                        .map(|(m, part)| if names.contains(&m.name) { part.clone() } else { None })
                        .collect(),
                };
                &kept
            }
        };
        let extras = match extras {
            None => serde_json::Map::new(),
            Some(dict) => {
                let json = py.import("json")?.call_method1("dumps", (dict,))?;
                serde_json::from_str(&json.extract::<String>()?)
                    .map_err(|e| PyValueError::new_err(e.to_string()))?
            }
        };
        Ok(PyBytes::new(py, inner.encode(&engine.metrics, &extras).as_bytes()))
    }

    /// A stored summary, read for `catalog`; ValueError when it is not one.
    #[classmethod]
    fn decode(_cls: &Bound<'_, PyType>, catalog: &Catalog, raw: &[u8]) -> PyResult<Summary> {
        let engine = engine_of(catalog)?;
        summary::Summary::decode(raw, &engine.metrics)
            .map(|(inner, _)| Summary { inner })
            .ok_or_else(|| PyValueError::new_err("not a stored summary"))
    }

    /// The further top-level fields of a stored summary, as a JSON text.
    #[staticmethod]
    fn extras(raw: &[u8]) -> PyResult<String> {
        let Ok(serde_json::Value::Object(mut document)) = serde_json::from_slice(raw) else {
            return Err(PyValueError::new_err("not a stored summary"));
        };
        document.remove("as_of");
        document.remove("metrics");
        Ok(serde_json::Value::Object(document).to_string())
    }

    /// Summaries of disjoint partitions folded into one (numbers add, distinct values unite),
    /// as of the latest of their times.
    #[classmethod]
    fn merge(
        _cls: &Bound<'_, PyType>,
        catalog: &Catalog,
        summaries: Vec<PyRef<'_, Summary>>,
    ) -> Summary {
        let parts = catalog.names().len();
        let merged = summary::Summary::merge_all(summaries.iter().map(|s| &s.inner), parts);
        Summary { inner: merged }
    }

    /// Every metric's value: formulas over the parts, then the segment cap.
    fn finish(&self, py: Python<'_>, catalog: &Catalog) -> PyResult<Vec<MetricResult>> {
        let engine = engine_of(catalog)?;
        let values = finish_with(&engine.metrics, &self.inner);
        results(py, catalog.names(), &values)
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let rebuild = py.import("nsm_native")?.getattr("summary_from_positional")?;
        Ok((rebuild, (PyBytes::new(py, self.inner.to_positional().as_bytes()),)))
    }

    fn __eq__(&self, other: &Summary) -> bool {
        self.inner == other.inner
    }

    fn __repr__(&self) -> String {
        format!("Summary(as_of_ms={}, {} parts)", self.inner.as_of, self.inner.parts.len())
    }
}

impl Summary {
    pub fn new(inner: summary::Summary) -> Summary {
        Summary { inner }
    }
}

/// A summary from its positional form (what pickling writes: a replay's processes share the
/// catalogue).
#[pyfunction]
pub fn summary_from_positional(raw: &[u8]) -> PyResult<Summary> {
    summary::Summary::from_positional(raw)
        .map(Summary::new)
        .ok_or_else(|| PyValueError::new_err("not a summary's positional form"))
}
