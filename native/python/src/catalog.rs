//! A catalogue compiled by the engine (processor/engine/spec.py writes its spec).

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use nsm_engine::engine::Engine;
use nsm_engine::spec::CatalogSpec;

/// Definitions as the engine reads them; building one checks every metric compiles.
#[pyclass(module = "nsm_native", frozen)]
pub struct Catalog {
    pub spec: Arc<CatalogSpec>,
    /// An engine of the catalogue that holds no state: its metrics' descriptions.
    pub described: Arc<Engine>,
    names: Vec<String>,
    horizon_terms: Vec<(i64, i64)>,
    longest_window_ms: i64,
}

impl Catalog {
    pub fn engine(&self) -> PyResult<Engine> {
        Engine::new(&self.spec, Default::default())
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    pub fn names(&self) -> Vec<String> {
        self.names.clone()
    }
}

#[pymethods]
impl Catalog {
    #[new]
    fn new(spec: &str) -> PyResult<Catalog> {
        let spec: CatalogSpec = serde_json::from_str(spec)
            .map_err(|e| PyValueError::new_err(format!("catalogue spec: {e}")))?;
        let engine = Engine::new(&spec, Default::default())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(Catalog {
            names: engine.metrics.iter().map(|m| m.name.clone()).collect(),
            horizon_terms: engine.horizon.terms().to_vec(),
            longest_window_ms: engine.horizon.longest_window_ms(),
            spec: Arc::new(spec),
            described: Arc::new(engine),
        })
    }

    /// The metrics, in catalogue order.
    #[getter]
    fn metrics(&self) -> Vec<String> {
        self.names.clone()
    }

    /// (bucket size, longest window in buckets of that size): what the dedup horizon maximises.
    #[getter]
    fn horizon_terms(&self) -> Vec<(i64, i64)> {
        self.horizon_terms.clone()
    }

    #[getter]
    fn longest_window_ms(&self) -> i64 {
        self.longest_window_ms
    }
}

/// An input format by name (`nsm` or `segment`).
pub fn input_format(name: &str) -> PyResult<nsm_engine::event::InputFormat> {
    nsm_engine::event::InputFormat::parse(name)
        .ok_or_else(|| PyValueError::new_err(format!("input format {name:?}: nsm or segment")))
}

/// Where a window of `buckets` buckets of `bucket_ms` starts as of `as_of_ms` (its first
/// bucket's start): the engine's window rule, for what Python reports beside a value.
#[pyfunction]
pub fn window_start_ms(bucket_ms: i64, buckets: i64, as_of_ms: i64) -> PyResult<i64> {
    if bucket_ms <= 0 || buckets <= 0 {
        return Err(PyValueError::new_err("a window is at least one bucket of at least 1 ms"));
    }
    Ok(nsm_engine::window::Window { bucket_ms, buckets }.start_ms(as_of_ms))
}
