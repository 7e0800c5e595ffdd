//! Condition kinds of `entities` metrics: one module per kind, behind one trait.
//!
//! A condition object holds its state for every entity (a row of the entity table) and decides,
//! for any window, whether the entity meets it. Adding a kind takes one module here (with one
//! line in `KINDS`), the definition model and the oracle.
//!
//! State is kept per bucket, so that any window can be decided (full state: `nsm compute`, the
//! replay's history). `prune(row, settled)` keeps only what decides the windows ending at or after
//! the bucket `settled` (windows only slide forward): the N newest events' buckets for a count,
//! the values with the newest buckets for a distinct count. Entries after `settled` (events up to
//! the future skew ahead) are always kept whole, since no window that ends before them counts them.

use serde_json::{Map, Value as Spec};

use crate::codec::{FormatError, Reader};
use crate::fields::FieldId;
use crate::json::Value;
use crate::legacy::LegacyCell;
use crate::spec::SpecError;
use crate::window::Span;

pub mod count;
pub mod distinct;
pub mod sum;

/// An entity: its row in the entity table of the metric's key field.
pub type Row = usize;

pub trait Condition: Send + Sync {
    /// The field whose value a matching event adds; None: the condition counts events.
    fn field(&self) -> Option<FieldId>;

    /// Make room for rows up to `rows - 1`.
    fn reserve(&mut self, rows: usize);

    /// A matching event of the entity, in `bucket`, with the value of `field` (None: missing).
    fn apply(&mut self, row: Row, bucket: i64, value: Option<&Value>);

    /// Whether the entity meets the condition over the window.
    fn holds(&self, row: Row, span: Span) -> bool;

    /// `holds` for windows whose ends never move backwards (the history sweep).
    fn holds_over(&self, row: Row, spans: &[Span], out: &mut Vec<bool>) {
        out.extend(spans.iter().map(|span| self.holds(row, *span)));
    }

    /// Keep only what decides the windows that end at or after bucket `settled`.
    fn prune(&mut self, row: Row, settled: i64);

    /// Drop everything before bucket `first`; true when something was dropped.
    fn expire(&mut self, row: Row, first: i64) -> bool;

    fn clear(&mut self, row: Row);

    /// The entity's state (state.rs stores it in the entity's record).
    fn encode(&self, row: Row, out: &mut Vec<u8>);

    /// Add stored state to the entity's (into an empty row: load it; else merge, as for the
    /// same entity's state from another partition).
    fn decode(&mut self, row: Row, input: &mut Reader) -> Result<(), FormatError>;

    /// The list of the first stored format's cells this kind was kept in (None: a kind that
    /// format never had).
    fn legacy_list(&self) -> Option<LegacyList> {
        None
    }

    /// Add the `slot`-th item of that list of a cell of the first format, for `bucket`.
    fn load_legacy(
        &mut self,
        _row: Row,
        _bucket: i64,
        _cell: &LegacyCell,
        _slot: usize,
    ) -> Result<(), FormatError> {
        Err(FormatError::new("this condition kind has no state in the first format"))
    }
}

/// The lists of a cell of the first stored format (processor/store/codec.py before format 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LegacyList {
    Counts,
    Sets,
    ValueCounts,
    Sums,
}

/// A kind's constructor: None when the condition is not of its kind.
type Build = fn(
    &Map<String, Spec>,
    &mut dyn FnMut(&str) -> FieldId,
) -> Option<Result<Box<dyn Condition>, SpecError>>;

/// Every condition kind. Each recognises its own conditions; exactly one must.
const KINDS: &[Build] = &[count::build, distinct::build, sum::build];

/// The condition of a definition (a mapping as the definitions write it).
pub fn build(
    spec: &Map<String, Spec>,
    field: &mut dyn FnMut(&str) -> FieldId,
) -> Result<Box<dyn Condition>, SpecError> {
    for kind in KINDS {
        if let Some(built) = kind(spec, field) {
            return built;
        }
    }
    let keys: Vec<&str> = spec.keys().map(String::as_str).collect();
    Err(SpecError::new(format!("no condition kind reads a condition with keys {keys:?}")))
}

/// Per-row storage, grown on demand.
pub fn reserve_rows<T: Default>(rows: &mut Vec<T>, wanted: usize) {
    if rows.len() < wanted {
        rows.resize_with(wanted, T::default);
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::codec::Reader;

    fn spec(kind: u8, n: i64, k: i64) -> Map<String, Spec> {
        let value = match kind {
            0 => json!({"event": "*", "count_at_least": n}),
            1 => json!({"event": "*", "distinct": "v", "at_least": n}),
            2 => json!({"event": "*", "distinct": "v", "at_least": n, "each_count_at_least": k}),
            _ => json!({"event": "*", "sum": "v", "at_least": n - 2}),
        };
        value.as_object().expect("an object").clone()
    }

    fn built(kind: u8, n: i64, k: i64) -> Box<dyn Condition> {
        let mut c = build(&spec(kind, n, k), &mut |_| 0).expect("a kind reads it");
        c.reserve(1);
        c
    }

    fn events() -> impl Strategy<Value = Vec<(i64, i64)>> {
        proptest::collection::vec((0i64..30, -2i64..6), 0..40)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Pruned as of a bucket, a condition decides every window ending at or after it as the
        /// complete state does, whatever the events and their order.
        #[test]
        fn pruning_keeps_every_later_window(
            kind in 0u8..4, n in 1i64..4, k in 1i64..4, events in events(), settled in 0i64..35,
            spans in proptest::collection::vec((0i64..40, 0i64..12), 1..12),
        ) {
            let mut full = built(kind, n, k);
            for (bucket, v) in &events {
                let value = Value::Int(*v);
                full.apply(0, *bucket, Some(&value));
            }
            let mut bytes = Vec::new();
            full.encode(0, &mut bytes);
            let mut pruned = built(kind, n, k);
            pruned.decode(0, &mut Reader::new(&bytes)).unwrap();
            pruned.prune(0, settled);
            // Events may keep arriving in any bucket after pruning: apply them to both.
            let later = events.iter().rev().take(3).collect::<Vec<_>>();
            for (bucket, v) in later {
                let value = Value::Str(Cow::Owned(format!("x{v}")));
                full.apply(0, *bucket, Some(&value));
                pruned.apply(0, *bucket, Some(&value));
            }
            for (last, length) in spans {
                let span = Span { first: settled + last - length, last: settled + last };
                prop_assert_eq!(pruned.holds(0, span), full.holds(0, span), "{:?}", span);
            }
        }

        /// The sliding evaluation gives what evaluating each window does.
        #[test]
        fn sliding_equals_one_by_one(
            kind in 0u8..4, n in 1i64..4, k in 1i64..4, events in events(),
            mut lasts in proptest::collection::vec(0i64..40, 1..20), length in 0i64..10,
        ) {
            let mut c = built(kind, n, k);
            for (bucket, v) in &events {
                c.apply(0, *bucket, Some(&Value::Int(*v)));
            }
            lasts.sort_unstable();
            let spans: Vec<Span> = lasts.iter().map(|l| Span { first: l - length, last: *l }).collect();
            let mut slid = Vec::new();
            c.holds_over(0, &spans, &mut slid);
            let one: Vec<bool> = spans.iter().map(|s| c.holds(0, *s)).collect();
            prop_assert_eq!(slid, one);
        }
    }
}
