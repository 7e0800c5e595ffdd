//! `sum: F`: the exact sum of F over the matching events in the window, each number the decimal
//! it is written as; a missing or non-numeric F adds nothing but lists the event's labels
//! (additive.rs keeps them per bucket).

use serde_json::{Map, Value as Spec};

use super::additive::{Additive, Measure};
use super::{has, Aggregate};
use crate::fields::FieldId;
use crate::spec::{field_name, SpecError};

pub fn build(
    spec: &Map<String, Spec>,
    segments: usize,
    field: &mut dyn FnMut(&str) -> FieldId,
) -> Option<Result<Box<dyn Aggregate>, SpecError>> {
    has(spec, "sum").then(|| {
        let measured = field(field_name(spec, "sum")?);
        Ok(Box::new(Additive::new(Measure::Sum(measured), segments)) as Box<dyn Aggregate>)
    })
}
