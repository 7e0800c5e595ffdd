//! `count: true`: the matching events in the window (additive.rs keeps them per bucket).

use serde_json::{Map, Value as Spec};

use super::additive::{Additive, Measure};
use super::{has, Aggregate};
use crate::fields::FieldId;
use crate::spec::SpecError;

pub fn build(
    spec: &Map<String, Spec>,
    segments: usize,
    _field: &mut dyn FnMut(&str) -> FieldId,
) -> Option<Result<Box<dyn Aggregate>, SpecError>> {
    has(spec, "count")
        .then(|| Ok(Box::new(Additive::new(Measure::Count, segments)) as Box<dyn Aggregate>))
}
