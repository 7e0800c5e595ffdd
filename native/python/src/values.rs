//! Engine values as Python objects: counts `int`, sums and formulas `decimal.Decimal`, no value
//! `None`; named result types instead of positional tuples.

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyType};

use nsm_engine::finish::MetricValue;
use nsm_engine::summary::Number;

static DECIMAL: GILOnceCell<Py<PyType>> = GILOnceCell::new();

pub fn number<'py>(py: Python<'py>, n: &Number) -> PyResult<Bound<'py, PyAny>> {
    match n {
        Number::Int(i) => Ok(i.into_pyobject(py)?.into_any()),
        Number::Dec(d) => DECIMAL.import(py, "decimal", "Decimal")?.call1((d.to_string(),)),
    }
}

pub fn value<'py>(py: Python<'py>, n: &Option<Number>) -> PyResult<Bound<'py, PyAny>> {
    match n {
        None => Ok(py.None().into_bound(py)),
        Some(n) => number(py, n),
    }
}

/// One metric's value: `value` (int, Decimal or None) and `segments`
/// ({field: {label: value}}, labels in output order, capped).
#[pyclass(module = "nsm_native", frozen, get_all)]
pub struct MetricResult {
    pub name: String,
    pub value: PyObject,
    pub segments: PyObject,
}

#[pymethods]
impl MetricResult {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "MetricResult(name={:?}, value={}, segments={})",
            self.name,
            self.value.bind(py),
            self.segments.bind(py)
        )
    }
}

pub fn results(
    py: Python<'_>,
    names: impl IntoIterator<Item = String>,
    values: &[MetricValue],
) -> PyResult<Vec<MetricResult>> {
    names
        .into_iter()
        .zip(values)
        .map(|(name, v)| {
            let segments = PyDict::new(py);
            for (field, labels) in &v.segments {
                let inner = PyDict::new(py);
                for (label, n) in labels {
                    inner.set_item(label, value(py, n)?)?;
                }
                segments.set_item(field, inner)?;
            }
            Ok(MetricResult {
                name,
                value: value(py, &v.value)?.unbind(),
                segments: segments.into_any().unbind(),
            })
        })
        .collect()
}
