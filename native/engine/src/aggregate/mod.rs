//! Aggregate kinds: a number over the matching events in the window, unsegmented or per segment.
//! One module per kind, behind one trait.

use std::borrow::Cow;

use serde_json::{Map, Value as Spec};

use crate::codec::FormatError;
use crate::fields::FieldId;
use crate::json::Value;
use crate::legacy::LegacyField;
use crate::spec::SpecError;
use crate::summary::Part;
use crate::window::Span;

mod additive;
pub mod count;
pub mod distinct;
pub mod sum;

/// A stored item of an aggregate's state: its key within the metric, and its bytes (None: the
/// item is gone).
pub type Change = (Vec<u8>, Option<Vec<u8>>);

pub trait Aggregate: Send + Sync {
    /// The measured field (None for a count).
    fn field(&self) -> Option<FieldId>;

    /// A matching event in `bucket`: the measured field's value (None: missing) and the labels of
    /// its segment fields.
    fn apply(&mut self, bucket: i64, value: Option<&Value>, labels: &[Cow<str>]);

    /// The metric over the window.
    fn part(&self, span: Span) -> Part;

    /// `part` for windows whose ends never move backwards (the history sweep).
    fn parts_over(&self, spans: &[Span], out: &mut Vec<Part>) {
        out.extend(spans.iter().map(|span| self.part(*span)));
    }

    /// Keep only what decides the windows that end at or after bucket `settled`.
    fn prune(&mut self, _settled: i64) {}

    /// Drop everything before bucket `first`.
    fn expire(&mut self, first: i64);

    /// The earliest bucket holding anything.
    fn first_bucket(&self) -> Option<i64>;

    /// The stored items changed since the last call (all items with `everything`).
    fn changes(&mut self, everything: bool, out: &mut Vec<Change>);

    /// Add one stored item (into an empty state: load it).
    fn load(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError>;

    /// Add one field of a bucket of the first stored format.
    fn load_legacy(
        &mut self,
        bucket: i64,
        field: &LegacyField,
        value: &[u8],
        segments: &[String],
    ) -> Result<(), FormatError>;
}

type Build = fn(
    &Map<String, Spec>,
    usize,
    &mut dyn FnMut(&str) -> FieldId,
) -> Option<Result<Box<dyn Aggregate>, SpecError>>;

/// Every aggregate kind; exactly one recognises an aggregate.
const KINDS: &[Build] = &[count::build, sum::build, distinct::build];

/// The aggregate of a definition with `segments` segment fields.
pub fn build(
    spec: &Map<String, Spec>,
    segments: usize,
    field: &mut dyn FnMut(&str) -> FieldId,
) -> Result<Box<dyn Aggregate>, SpecError> {
    for kind in KINDS {
        if let Some(built) = kind(spec, segments, field) {
            return built;
        }
    }
    let keys: Vec<&str> = spec.keys().map(String::as_str).collect();
    Err(SpecError::new(format!("no aggregate kind reads an aggregate with keys {keys:?}")))
}

/// Whether a spec key is set (present and not null).
pub fn has(spec: &Map<String, Spec>, key: &str) -> bool {
    spec.get(key).is_some_and(|v| !v.is_null() && v != &Spec::Bool(false))
}
