//! What a state contributes to each metric as of a time (a part), mergeable across partitions:
//! numbers add (entities, counts, sums), distinct values unite. `finish.rs` turns the merged
//! parts into values (formulas, then the segment cap).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value as Json};

use crate::decimal::Decimal;
use crate::engine::MetricInfo;

/// Counts are integers, sums exact decimals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Number {
    Int(i64),
    Dec(Decimal),
}

impl Number {
    pub fn add(&self, other: &Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => match a.checked_add(*b) {
                Some(sum) => Number::Int(sum),
                None => Number::Dec(Decimal::from_i128(i128::from(*a) + i128::from(*b))),
            },
            _ => Number::Dec(self.decimal().add(&other.decimal())),
        }
    }

    pub fn sub(&self, other: &Number) -> Number {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => Number::Int(a - b),
            _ => Number::Dec(self.decimal().sub(&other.decimal())),
        }
    }

    pub fn decimal(&self) -> Decimal {
        match self {
            Number::Int(i) => Decimal::from_i128(i128::from(*i)),
            Number::Dec(d) => d.clone(),
        }
    }

    /// The zero of the same kind.
    pub fn zero(&self) -> Number {
        match self {
            Number::Int(_) => Number::Int(0),
            Number::Dec(_) => Number::Dec(Decimal::ZERO),
        }
    }
}

/// One metric's part. Breakdowns are per segment field, in the metric's order of segments.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Additive { total: Number, breakdowns: Vec<BTreeMap<String, Number>> },
    Distinct { total: BTreeSet<String>, breakdowns: Vec<BTreeMap<String, BTreeSet<String>>> },
}

impl Part {
    pub fn empty_additive(zero: Number, segments: usize) -> Part {
        Part::Additive { total: zero, breakdowns: vec![BTreeMap::new(); segments] }
    }

    pub fn empty_distinct(segments: usize) -> Part {
        Part::Distinct { total: BTreeSet::new(), breakdowns: vec![BTreeMap::new(); segments] }
    }

    /// Fold another part of the same metric into this one.
    pub fn merge(&mut self, other: &Part) {
        match (self, other) {
            (Part::Additive { total, breakdowns }, Part::Additive { total: t, breakdowns: b }) => {
                *total = total.add(t);
                for (mine, theirs) in breakdowns.iter_mut().zip(b) {
                    for (label, n) in theirs {
                        let zero = n.zero();
                        let entry = mine.entry(label.clone()).or_insert(zero);
                        *entry = entry.add(n);
                    }
                }
            }
            (Part::Distinct { total, breakdowns }, Part::Distinct { total: t, breakdowns: b }) => {
                total.extend(t.iter().cloned());
                for (mine, theirs) in breakdowns.iter_mut().zip(b) {
                    for (label, values) in theirs {
                        mine.entry(label.clone()).or_default().extend(values.iter().cloned());
                    }
                }
            }
            _ => panic!("parts of one metric are of one kind"),
        }
    }
}

/// Every windowed metric's part as of a time (None where a state has nothing of the metric), by
/// catalogue index.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub as_of: i64,
    pub parts: Vec<Option<Part>>,
}

impl Summary {
    /// Fold summaries of disjoint partitions into one (as of the first's time).
    pub fn merge_all<'s>(
        summaries: impl IntoIterator<Item = &'s Summary>,
        metrics: usize,
    ) -> Summary {
        let mut merged = Summary { as_of: i64::MIN, parts: vec![None; metrics] };
        for summary in summaries {
            merged.as_of = merged.as_of.max(summary.as_of);
            for (mine, theirs) in merged.parts.iter_mut().zip(&summary.parts) {
                match (mine.as_mut(), theirs) {
                    (_, None) => {}
                    (None, Some(part)) => *mine = Some(part.clone()),
                    (Some(part), Some(other)) => part.merge(other),
                }
            }
        }
        merged
    }
}

// ---- stored form: the JSON every partition's `summary` key holds --------------------------------
//
// `{"as_of": ms, "metrics": {name: part}}`, a part being `{"a": total, "i": is_integer, "b":
// {segment: {label: number}}}` (numbers as decimal strings) or `{"d": [values], "b": {segment:
// {label: [values]}}}`. Further top-level fields are kept as they are (`extras`).

fn number_text(n: &Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Dec(d) => d.to_string(),
    }
}

fn number_of(text: &str, integer: bool) -> Option<Number> {
    if integer {
        text.parse().ok().map(Number::Int)
    } else {
        Decimal::parse(text).map(Number::Dec)
    }
}

fn part_json(part: &Part, segments: &[String]) -> Json {
    match part {
        Part::Additive { total, breakdowns } => {
            let b: Map<String, Json> = segments
                .iter()
                .zip(breakdowns)
                .map(|(s, values)| {
                    let inner: Map<String, Json> = values
                        .iter()
                        .map(|(l, n)| (l.clone(), Json::String(number_text(n))))
                        .collect();
                    (s.clone(), Json::Object(inner))
                })
                .collect();
            json!({"a": number_text(total), "i": matches!(total, Number::Int(_)), "b": b})
        }
        Part::Distinct { total, breakdowns } => {
            let b: Map<String, Json> = segments
                .iter()
                .zip(breakdowns)
                .map(|(s, values)| {
                    let inner: Map<String, Json> =
                        values.iter().map(|(l, set)| (l.clone(), json!(set))).collect();
                    (s.clone(), Json::Object(inner))
                })
                .collect();
            json!({"d": total, "b": b})
        }
    }
}

fn part_of(value: &Json, segments: &[String]) -> Option<Part> {
    let b = value.get("b")?.as_object()?;
    let field = |s: &String| b.get(s).and_then(Json::as_object);
    if let Some(values) = value.get("d") {
        let strings = |v: &Json| -> Option<BTreeSet<String>> {
            v.as_array()?.iter().map(|x| x.as_str().map(str::to_owned)).collect()
        };
        let breakdowns = segments
            .iter()
            .map(|s| match field(s) {
                None => Some(BTreeMap::new()),
                Some(labels) => {
                    labels.iter().map(|(l, v)| Some((l.clone(), strings(v)?))).collect()
                }
            })
            .collect::<Option<Vec<_>>>()?;
        return Some(Part::Distinct { total: strings(values)?, breakdowns });
    }
    let integer = value.get("i")?.as_bool()?;
    let total = number_of(value.get("a")?.as_str()?, integer)?;
    let breakdowns = segments
        .iter()
        .map(|s| match field(s) {
            None => Some(BTreeMap::new()),
            Some(labels) => labels
                .iter()
                .map(|(l, v)| Some((l.clone(), number_of(v.as_str()?, integer)?)))
                .collect(),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Part::Additive { total, breakdowns })
}

impl Summary {
    /// The stored JSON, with further top-level fields.
    pub fn encode(&self, metrics: &[MetricInfo], extras: &Map<String, Json>) -> String {
        let mut parts = Map::new();
        for (metric, part) in metrics.iter().zip(&self.parts) {
            if let Some(part) = part {
                parts.insert(metric.name.clone(), part_json(part, &metric.segments));
            }
        }
        let mut document = extras.clone();
        document.insert("as_of".into(), json!(self.as_of));
        document.insert("metrics".into(), Json::Object(parts));
        Json::Object(document).to_string()
    }

    /// A stored summary read for a catalogue (parts of other metrics are left out) and its
    /// further top-level fields; None when it is not one.
    pub fn decode(text: &[u8], metrics: &[MetricInfo]) -> Option<(Summary, Map<String, Json>)> {
        let Json::Object(mut document) = serde_json::from_slice(text).ok()? else { return None };
        let as_of = document.remove("as_of")?.as_i64()?;
        let stored = document.remove("metrics")?;
        let stored = stored.as_object()?;
        let parts = metrics
            .iter()
            .map(|m| match stored.get(&m.name) {
                Some(value) if m.window.is_some() => part_of(value, &m.segments),
                _ => None,
            })
            .collect();
        Some((Summary { as_of, parts }, document))
    }
}

// ---- positional form: a summary between processes of one catalogue (no names needed) -----------

impl Summary {
    /// `{"as_of": ms, "parts": [part or null, ...]}` by catalogue index, breakdowns by segment
    /// index: for the processes of one replay, which share the catalogue.
    pub fn to_positional(&self) -> String {
        let parts: Vec<Json> = self
            .parts
            .iter()
            .map(|part| match part {
                None => Json::Null,
                Some(part) => {
                    let segments: Vec<String> =
                        (0..segments_of(part)).map(|i| i.to_string()).collect();
                    part_json(part, &segments)
                }
            })
            .collect();
        json!({"as_of": self.as_of, "parts": parts}).to_string()
    }

    pub fn from_positional(text: &[u8]) -> Option<Summary> {
        let document: Json = serde_json::from_slice(text).ok()?;
        let as_of = document.get("as_of")?.as_i64()?;
        let parts = document
            .get("parts")?
            .as_array()?
            .iter()
            .map(|value| {
                if value.is_null() {
                    return Some(None);
                }
                let count = value.get("b")?.as_object()?.len();
                let segments: Vec<String> = (0..count).map(|i| i.to_string()).collect();
                part_of(value, &segments).map(Some)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Summary { as_of, parts })
    }
}

fn segments_of(part: &Part) -> usize {
    match part {
        Part::Additive { breakdowns, .. } => breakdowns.len(),
        Part::Distinct { breakdowns, .. } => breakdowns.len(),
    }
}
