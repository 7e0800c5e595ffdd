//! What a state contributes to each metric as of a time (a part), mergeable across partitions:
//! numbers add (entities, counts, sums), distinct values unite. `finish.rs` turns the merged
//! parts into values (formulas, then the segment cap).

use std::collections::{BTreeMap, BTreeSet};

use crate::decimal::Decimal;

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
