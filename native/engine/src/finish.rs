//! From merged parts to every metric's value: formulas over the parts, then the segment cap
//! (docs/semantics.md, The segment cap, Formulas).
//!
//! A breakdown holds one segment field's uncapped values and can give the value of any set of
//! labels taken together, which is what `other` is: a sum for counts, sums and entities, the size
//! of the union for a distinct aggregate, and for a formula the formula over each operand's value
//! for those labels taken together.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use crate::formula::Formula;
use crate::summary::{Number, Part};

/// The label the smallest values fold into.
pub const OTHER: &str = "other";

/// One segment field's capped values, labels in output order (None: no value).
pub type Breakdown = Vec<(String, Option<Number>)>;

/// A metric's value with its capped breakdowns. None: no value.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricValue {
    pub value: Option<Number>,
    pub segments: Vec<(String, Breakdown)>,
}

/// What `finish` needs to know of a metric.
pub struct Metric<'c> {
    pub name: &'c str,
    pub segments: &'c [String],
    pub max_segment_values: usize,
    pub kind: Kind<'c>,
}

pub enum Kind<'c> {
    /// A windowed metric; the part when none was given (an additive zero or an empty distinct).
    Windowed {
        empty: Part,
    },
    Formula {
        formula: &'c Formula,
        operands: &'c [String],
    },
}

enum Uncapped {
    Additive { values: BTreeMap<String, Number>, zero: Number },
    Distinct { sets: BTreeMap<String, BTreeSet<String>> },
    Formula { formula: Formula, operands: Vec<(String, Rc<Uncapped>)>, labels: BTreeSet<String> },
}

impl Uncapped {
    fn labels(&self) -> Vec<&String> {
        match self {
            Uncapped::Additive { values, .. } => values.keys().collect(),
            Uncapped::Distinct { sets } => sets.keys().collect(),
            Uncapped::Formula { labels, .. } => labels.iter().collect(),
        }
    }

    fn value(&self, label: &str) -> Option<Number> {
        match self {
            Uncapped::Additive { values, zero } => Some(values.get(label).unwrap_or(zero).clone()),
            Uncapped::Distinct { sets } => {
                Some(Number::Int(sets.get(label).map_or(0, |s| s.len() as i64)))
            }
            Uncapped::Formula { formula, operands, labels } => {
                if !labels.contains(label) {
                    return Some(Number::Int(0));
                }
                let operand = |name: &str| {
                    operands.iter().find(|(n, _)| n == name).and_then(|(_, b)| b.value(label))
                };
                formula.evaluate(&operand).map(Number::Dec)
            }
        }
    }

    fn fold(&self, chosen: &[String]) -> Option<Number> {
        match self {
            Uncapped::Additive { values, zero } => {
                let mut total = zero.clone();
                for label in chosen {
                    if let Some(n) = values.get(label) {
                        total = total.add(n);
                    }
                }
                Some(total)
            }
            Uncapped::Distinct { sets } => {
                let mut union: BTreeSet<&String> = BTreeSet::new();
                for label in chosen {
                    if let Some(set) = sets.get(label) {
                        union.extend(set);
                    }
                }
                Some(Number::Int(union.len() as i64))
            }
            Uncapped::Formula { formula, operands, labels } => {
                if !chosen.iter().any(|l| labels.contains(l)) {
                    return Some(Number::Int(0));
                }
                let operand = |name: &str| {
                    operands.iter().find(|(n, _)| n == name).and_then(|(_, b)| b.fold(chosen))
                };
                formula.evaluate(&operand).map(Number::Dec)
            }
        }
    }
}

/// A metric's value with its uncapped breakdowns.
struct Evaluated {
    value: Option<Number>,
    breakdowns: Vec<(String, Rc<Uncapped>)>,
}

fn evaluated_part(part: &Part, segments: &[String]) -> Evaluated {
    match part {
        Part::Additive { total, breakdowns } => Evaluated {
            value: Some(total.clone()),
            breakdowns: segments
                .iter()
                .zip(breakdowns)
                .map(|(s, v)| {
                    (
                        s.clone(),
                        Rc::new(Uncapped::Additive { values: v.clone(), zero: total.zero() }),
                    )
                })
                .collect(),
        },
        Part::Distinct { total, breakdowns } => Evaluated {
            value: Some(Number::Int(total.len() as i64)),
            breakdowns: segments
                .iter()
                .zip(breakdowns)
                .map(|(s, v)| (s.clone(), Rc::new(Uncapped::Distinct { sets: v.clone() })))
                .collect(),
        },
    }
}

fn rank(a: &(String, Option<Number>), b: &(String, Option<Number>)) -> Ordering {
    match (&a.1, &b.1) {
        (None, None) => a.0.cmp(&b.0),
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => y.decimal().cmp(&x.decimal()).then_with(|| a.0.cmp(&b.0)),
    }
}

/// The listed values: the `max_values` largest kept (ties by label), the rest folded into `other`.
fn cap(breakdown: &Uncapped, max_values: usize) -> Breakdown {
    let mut values: Vec<(String, Option<Number>)> =
        breakdown.labels().into_iter().map(|l| (l.clone(), breakdown.value(l))).collect();
    if values.len() <= max_values {
        values.sort_by(|a, b| a.0.cmp(&b.0));
        return values;
    }
    values.sort_by(rank);
    let mut folded: Vec<String> =
        values.split_off(max_values).into_iter().map(|(l, _)| l).collect();
    let other_kept = values.iter().position(|(l, _)| l == OTHER);
    if other_kept.is_some() {
        folded.push(OTHER.to_owned());
    }
    let other = breakdown.fold(&folded);
    match other_kept {
        Some(at) => values[at].1 = other,
        None => values.push((OTHER.to_owned(), other)),
    }
    values
}

/// Every metric's value, in catalogue order: formulas over the parts (`parts[i]` for the i-th
/// metric, None for formulas and for metrics no state has), then the cap.
pub fn finish(metrics: &[Metric], parts: &[Option<Part>]) -> Vec<MetricValue> {
    let mut evaluated: Vec<Option<Rc<Evaluated>>> = metrics
        .iter()
        .zip(parts)
        .map(|(metric, part)| match (&metric.kind, part) {
            (Kind::Windowed { .. }, Some(part)) => {
                Some(Rc::new(evaluated_part(part, metric.segments)))
            }
            (Kind::Windowed { empty }, None) => {
                Some(Rc::new(evaluated_part(empty, metric.segments)))
            }
            (Kind::Formula { .. }, _) => None,
        })
        .collect();
    let mut visiting = vec![false; metrics.len()];
    for i in 0..metrics.len() {
        resolve(metrics, i, &mut evaluated, &mut visiting);
    }
    metrics
        .iter()
        .zip(evaluated)
        .map(|(metric, result)| {
            let result = result.expect("every metric is resolved");
            MetricValue {
                value: result.value.clone(),
                segments: result
                    .breakdowns
                    .iter()
                    .map(|(field, b)| (field.clone(), cap(b, metric.max_segment_values)))
                    .collect(),
            }
        })
        .collect()
}

/// A formula's result, computed once; a cycle or an unknown operand gives no value.
fn resolve(
    metrics: &[Metric],
    index: usize,
    evaluated: &mut Vec<Option<Rc<Evaluated>>>,
    visiting: &mut Vec<bool>,
) -> Option<Rc<Evaluated>> {
    if let Some(done) = &evaluated[index] {
        return Some(done.clone());
    }
    let Kind::Formula { formula, operands } = &metrics[index].kind else { return None };
    if visiting[index] {
        return None;
    }
    visiting[index] = true;
    let resolved: Vec<(String, Option<Rc<Evaluated>>)> = operands
        .iter()
        .map(|name| {
            let found = metrics.iter().position(|m| m.name == name);
            (name.clone(), found.and_then(|i| resolve(metrics, i, evaluated, visiting)))
        })
        .collect();
    visiting[index] = false;
    let totals = |name: &str| {
        resolved
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, e)| e.as_ref())
            .and_then(|e| e.value.clone())
    };
    let value = formula.evaluate(&totals).map(Number::Dec);
    let result = if resolved.iter().any(|(_, e)| e.is_none()) {
        Evaluated { value, breakdowns: Vec::new() }
    } else {
        let known: Vec<&Rc<Evaluated>> = resolved.iter().filter_map(|(_, e)| e.as_ref()).collect();
        let fields: Vec<String> = if !metrics[index].segments.is_empty() {
            metrics[index].segments.to_vec()
        } else if let Some(first) = known.first() {
            first
                .breakdowns
                .iter()
                .map(|(f, _)| f.clone())
                .filter(|f| known[1..].iter().all(|e| e.breakdowns.iter().any(|(g, _)| g == f)))
                .collect()
        } else {
            Vec::new()
        };
        let breakdowns = fields
            .into_iter()
            .map(|field| {
                let per_operand: Vec<(String, Rc<Uncapped>)> = resolved
                    .iter()
                    .map(|(name, e)| {
                        let e = e.as_ref().expect("every operand is known here");
                        let found =
                            e.breakdowns.iter().find(|(f, _)| *f == field).map(|(_, b)| b.clone());
                        let b = found.unwrap_or_else(|| {
                            Rc::new(Uncapped::Additive {
                                values: BTreeMap::new(),
                                zero: Number::Int(0),
                            })
                        });
                        (name.clone(), b)
                    })
                    .collect();
                let labels = per_operand.iter().flat_map(|(_, b)| b.labels()).cloned().collect();
                let b = Uncapped::Formula {
                    formula: (*formula).clone(),
                    operands: per_operand,
                    labels,
                };
                (field, Rc::new(b))
            })
            .collect();
        Evaluated { value, breakdowns }
    };
    let result = Rc::new(result);
    evaluated[index] = Some(result.clone());
    Some(result)
}
