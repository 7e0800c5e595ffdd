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
#[pyo3(signature = (raw, now_ms, max_future_skew_ms, input_format="nsm"))]
pub fn check_event(
    raw: Option<&[u8]>,
    now_ms: i64,
    max_future_skew_ms: i64,
    input_format: &str,
) -> PyResult<EventCheck> {
    let format = crate::catalog::input_format(input_format)?;
    let Some(raw) = raw else {
        return Ok(EventCheck {
            reason: Some("not_json"),
            detail: Some("the message has no value (a tombstone)".into()),
            event_type: None,
            ts_ms: None,
            event_id: None,
        });
    };
    let paths = Paths::for_format([], format);
    let mut captures = Captures::new();
    Ok(match decode(&paths, raw, now_ms, max_future_skew_ms, &mut captures) {
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
    })
}

/// The label of an event's account (docs/semantics.md, Account traits from group calls): its
/// `groupId`, else its `context.groupId`; None when it names none or is not a JSON object.
#[pyfunction]
pub fn account_of(raw: &[u8]) -> Option<String> {
    let paths = Paths::new(nsm_engine::traits::ACCOUNT_FIELDS);
    let text = json::text(raw).ok()?;
    let mut scanner = Scanner::new(text);
    scanner.ws();
    (scanner.peek() == Some(b'{')).then_some(())?;
    let mut captures = Captures::new();
    paths.capture(&mut scanner, &mut captures).ok()?;
    let found = paths.get(&captures, 0).or_else(|| paths.get(&captures, 1))?;
    Some(nsm_engine::label::label(found).into_owned())
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

/// Epoch milliseconds of an RFC 3339 date-time with a zone, as event timestamps are read; None
/// when it is not one.
#[pyfunction]
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    nsm_engine::time::parse_rfc3339(text)
}

/// Python's `repr` of a float, as the engine writes it.
#[pyfunction]
pub fn float_repr(value: f64) -> String {
    nsm_engine::number::python_repr(value)
}

/// Reads fields of messages, as the engine looks them up (docs/semantics.md, Fields).
#[pyclass(module = "nsm_native", frozen)]
pub struct FieldReader {
    paths: Paths,
}

#[pymethods]
impl FieldReader {
    #[new]
    fn new(names: Vec<String>) -> FieldReader {
        FieldReader { paths: Paths::new(names.iter().map(String::as_str)) }
    }

    /// Per message, each field's label (None: missing or null, or the message is not a JSON
    /// object), and whether it is a JSON number, with its value as a float.
    #[allow(clippy::type_complexity)]
    fn read(
        &self,
        py: Python<'_>,
        messages: Vec<Vec<u8>>,
    ) -> Vec<Vec<(Option<String>, Option<f64>)>> {
        py.allow_threads(|| {
            let mut captures = Captures::new();
            let fields = self.paths.names().len();
            messages
                .iter()
                .map(|raw| {
                    let captured = json::text(raw).ok().and_then(|text| {
                        let mut scanner = Scanner::new(text);
                        scanner.ws();
                        (scanner.peek() == Some(b'{')).then_some(())?;
                        self.paths.capture(&mut scanner, &mut captures).ok()
                    });
                    (0..fields)
                        .map(|f| match captured.and_then(|()| self.paths.get(&captures, f)) {
                            None => (None, None),
                            Some(value) => {
                                let number = match value {
                                    json::Value::Int(i) => Some(*i as f64),
                                    json::Value::UInt(u) => Some(*u as f64),
                                    json::Value::Float(x) => Some(*x),
                                    _ => None,
                                };
                                (Some(nsm_engine::label::label(value).into_owned()), number)
                            }
                        })
                        .collect()
                })
                .collect()
        })
    }
}
