//! A catalogue as the definitions write it (processor/engine/spec.py sends the validated model,
//! as JSON). Each condition and aggregate kind reads its own keys (condition/, aggregate/).

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value as Spec};

use crate::number::Num;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError(pub String);

impl SpecError {
    pub fn new(message: impl Into<String>) -> SpecError {
        SpecError(message.into())
    }

    /// The same error, said of a metric.
    pub fn of_metric(self, metric: &str) -> SpecError {
        SpecError(format!("metric {metric}: {}", self.0))
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

/// Every metric, in catalogue order.
#[derive(Deserialize, Debug)]
pub struct CatalogSpec {
    pub metrics: Vec<MetricSpec>,
    /// The dedup horizon's terms (bucket ms, longest window in buckets), when the metrics are a
    /// part of a catalogue (a rebuild of some metrics): which repeats are duplicates is one rule
    /// for every metric of the catalogue. None: the metrics' own.
    #[serde(default)]
    pub horizon: Option<Vec<(i64, i64)>>,
}

#[derive(Deserialize, Debug)]
pub struct MetricSpec {
    pub name: String,
    #[serde(default)]
    pub window_ms: i64,
    #[serde(default)]
    pub bucket_ms: i64,
    #[serde(default)]
    pub segments: Vec<String>,
    #[serde(default = "default_cap")]
    pub max_segment_values: usize,
    pub entities: Option<EntitiesSpec>,
    pub aggregate: Option<Map<String, Spec>>,
    pub formula: Option<FormulaDef>,
}

/// A formula: its expression and its operands in order of first appearance.
#[derive(Deserialize, Debug, Clone)]
pub struct FormulaDef {
    pub tree: FormulaSpec,
    pub operands: Vec<String>,
}

fn default_cap() -> usize {
    50
}

#[derive(Deserialize, Debug)]
pub struct EntitiesSpec {
    pub key: String,
    pub all: Vec<Map<String, Spec>>,
}

/// A formula's expression tree (Python's parser, restricted to `+ - * /`, numbers and names).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum FormulaSpec {
    Number { number: String },
    Name { name: String },
    Neg { neg: Box<FormulaSpec> },
    Binary { op: String, left: Box<FormulaSpec>, right: Box<FormulaSpec> },
}

/// A number of a definition: a JSON number, or `{"$float": "inf" | "-inf" | "nan"}` for the
/// floats JSON cannot write.
pub fn number_of(spec: &Spec) -> Result<Num, SpecError> {
    match spec {
        Spec::Number(n) => Ok(if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }),
        Spec::Object(o) => match o.get("$float").and_then(Spec::as_str) {
            Some("inf") => Ok(Num::Float(f64::INFINITY)),
            Some("-inf") => Ok(Num::Float(f64::NEG_INFINITY)),
            Some("nan") => Ok(Num::Float(f64::NAN)),
            _ => Err(SpecError::new("expected a number")),
        },
        _ => Err(SpecError::new("expected a number")),
    }
}

/// The event types a condition or aggregate accepts; None: any (`"*"`).
pub fn event_types(spec: &Map<String, Spec>) -> Result<Option<HashSet<String>>, SpecError> {
    let types: Vec<String> = match spec.get("event") {
        Some(Spec::String(s)) => vec![s.clone()],
        Some(Spec::Array(items)) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| SpecError::new("an event type is a string"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(SpecError::new("`event` is a type or a list of types")),
    };
    Ok(if types.iter().any(|t| t == "*") { None } else { Some(types.into_iter().collect()) })
}

/// A whole number of at least 1 under `key` (counts and caps), as an i64 (larger ones saturate:
/// no window holds that many events).
pub fn count(spec: &Map<String, Spec>, key: &str) -> Result<i64, SpecError> {
    match spec.get(key) {
        Some(Spec::Number(n)) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) if i >= 1 => Ok(i),
            (_, Some(_)) => Ok(i64::MAX),
            _ if n.as_f64().is_some_and(|f| f >= 1.0 && f.fract() == 0.0) => Ok(i64::MAX),
            _ => Err(SpecError::new(format!("`{key}` is a whole number of at least 1"))),
        },
        _ => Err(SpecError::new(format!("`{key}` is a whole number of at least 1"))),
    }
}

/// A field name under `key`.
pub fn field_name<'s>(spec: &'s Map<String, Spec>, key: &str) -> Result<&'s str, SpecError> {
    spec.get(key)
        .and_then(Spec::as_str)
        .ok_or_else(|| SpecError::new(format!("`{key}` names a field")))
}
