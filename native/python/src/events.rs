//! One message judged by the engine, and labels: what the Python tests hold against the
//! reference decoder (orjson) and the reference labels.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use nsm_engine::event::{decode, event_type};
use nsm_engine::fields::{Captures, Paths};
use nsm_engine::json::{self, Scanner};

/// A message as the engine judges it: valid (`reason` None, with its type, time and id hash), or
/// invalid with the reason and a detail.
#[pyclass(module = "nsm_native", frozen, get_all)]
pub struct EventCheck {
    pub reason: Option<&'static str>,
    pub detail: Option<String>,
    pub event_type: Option<String>,
    pub ts_ms: Option<i64>,
    /// The 128-bit hash of the event id's label, as 32 hex digits (None: no id).
    pub event_id: Option<String>,
}

#[pyfunction]
#[pyo3(signature = (raw, now_ms, max_future_skew_ms))]
pub fn check_event(raw: Option<&[u8]>, now_ms: i64, max_future_skew_ms: i64) -> EventCheck {
    let Some(raw) = raw else {
        return EventCheck {
            reason: Some("not_json"),
            detail: Some("the message has no value (a tombstone)".into()),
            event_type: None,
            ts_ms: None,
            event_id: None,
        };
    };
    let paths = Paths::new([]);
    let mut captures = Captures::new();
    match decode(&paths, raw, now_ms, max_future_skew_ms, &mut captures) {
        Ok(header) => EventCheck {
            reason: None,
            detail: None,
            event_type: Some(event_type(&paths, &captures).to_owned()),
            ts_ms: Some(header.ts),
            event_id: header.id.map(|id| format!("{id:032x}")),
        },
        Err(invalid) => EventCheck {
            reason: Some(invalid.reason.as_str()),
            detail: Some(invalid.detail),
            event_type: None,
            ts_ms: None,
            event_id: None,
        },
    }
}

/// The label of one JSON value (None for null). ValueError when it is not JSON.
#[pyfunction]
pub fn label(value: &[u8]) -> PyResult<Option<String>> {
    let text = json::text(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let mut scanner = Scanner::new(text);
    let parsed = scanner
        .value(0)
        .and_then(|v| scanner.end().map(|()| v))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok((!parsed.is_null()).then(|| nsm_engine::label::label(&parsed).into_owned()))
}

/// Python's `repr` of a float, as the engine writes it.
#[pyfunction]
pub fn float_repr(value: f64) -> String {
    nsm_engine::number::python_repr(value)
}
