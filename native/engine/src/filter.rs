//! `where` filters (docs/semantics.md, Filters), compiled from the definitions as written.
//!
//! `field: v` holds when the field exists and equals `v` (numbers by value, a boolean only a
//! boolean, a string only the same string); `in`, `not_in`, `not`; `gt|gte|lt|lte` when the field
//! is a number; `exists`. Every operator of a mapping, and every field, must hold.

use std::cmp::Ordering;

use serde_json::Value as Spec;

use crate::fields::{Captured, FieldId, Paths};
use crate::json::Value;
use crate::number::{compare, Num};
use crate::spec::{number_of, SpecError};

/// A value written in a definition.
#[derive(Clone, Debug)]
pub enum Scalar {
    /// `null`: equal to nothing (a null is missing).
    Null,
    Bool(bool),
    Number(Num),
    Str(String),
}

impl Scalar {
    fn of(spec: &Spec) -> Result<Scalar, SpecError> {
        Ok(match spec {
            Spec::Null => Scalar::Null,
            Spec::Bool(b) => Scalar::Bool(*b),
            Spec::String(s) => Scalar::Str(s.clone()),
            Spec::Number(_) | Spec::Object(_) => Scalar::Number(number_of(spec)?),
            Spec::Array(_) => return Err(SpecError::new("a filter value is a scalar, not a list")),
        })
    }

    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Scalar::Bool(e), Value::Bool(v)) => e == v,
            (Scalar::Str(e), Value::Str(v)) => e == v,
            (Scalar::Number(e), v) => {
                number(v).is_some_and(|v| compare(v, *e) == Some(Ordering::Equal))
            }
            _ => false,
        }
    }
}

/// A JSON number of an event as Python holds it; None for anything else.
pub fn number(value: &Value) -> Option<Num> {
    match value {
        Value::Int(i) => Some(Num::Int(i128::from(*i))),
        Value::UInt(u) => Some(Num::Int(i128::from(*u))),
        Value::Float(f) => Some(Num::Float(*f)),
        _ => None,
    }
}

/// One operator of a `where` entry.
#[derive(Clone, Debug)]
enum Test {
    Eq(Scalar),
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    Not(Scalar),
    /// gt, gte, lt, lte: holds when the comparison gives one of these orderings.
    Compare(Num, &'static [Ordering]),
    Exists(bool),
}

impl Test {
    fn holds(&self, value: Option<&Value>) -> bool {
        match self {
            Test::Eq(expected) => value.is_some_and(|v| expected.equals(v)),
            Test::In(options) => value.is_some_and(|v| options.iter().any(|o| o.equals(v))),
            Test::NotIn(options) => value.is_some_and(|v| !options.iter().any(|o| o.equals(v))),
            Test::Not(expected) => value.is_some_and(|v| !expected.equals(v)),
            Test::Compare(bound, wanted) => value
                .and_then(number)
                .and_then(|v| compare(v, *bound))
                .is_some_and(|o| wanted.contains(&o)),
            Test::Exists(wanted) => value.is_some() == *wanted,
        }
    }
}

/// A whole `where`: per field, operators that must all hold.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    checks: Vec<(FieldId, Vec<Test>)>,
}

fn scalars(spec: &Spec) -> Result<Vec<Scalar>, SpecError> {
    match spec {
        Spec::Array(items) => items.iter().map(Scalar::of).collect(),
        Spec::Null => Ok(Vec::new()),
        _ => Err(SpecError::new("`in` and `not_in` take a list")),
    }
}

fn tests(spec: &Spec) -> Result<Vec<Test>, SpecError> {
    let Spec::Object(ops) = spec else {
        return Ok(vec![Test::Eq(Scalar::of(spec)?)]);
    };
    if ops.contains_key("$float") {
        return Ok(vec![Test::Eq(Scalar::of(spec)?)]);
    }
    let mut tests = Vec::new();
    for (op, arg) in ops {
        tests.push(match op.as_str() {
            "in" => Test::In(scalars(arg)?),
            "not_in" => Test::NotIn(scalars(arg)?),
            "not" => Test::Not(Scalar::of(arg)?),
            "gt" => Test::Compare(number_of(arg)?, &[Ordering::Greater]),
            "gte" => Test::Compare(number_of(arg)?, &[Ordering::Greater, Ordering::Equal]),
            "lt" => Test::Compare(number_of(arg)?, &[Ordering::Less]),
            "lte" => Test::Compare(number_of(arg)?, &[Ordering::Less, Ordering::Equal]),
            "exists" => match arg {
                Spec::Bool(b) => Test::Exists(*b),
                _ => return Err(SpecError::new("`exists` takes true or false")),
            },
            other => return Err(SpecError::new(format!("unknown filter operator {other}"))),
        });
    }
    Ok(tests)
}

impl Filter {
    /// A `where` mapping as the definitions write it; `field` gives each field name its id.
    pub fn new(
        spec: Option<&Spec>,
        mut field: impl FnMut(&str) -> FieldId,
    ) -> Result<Filter, SpecError> {
        let mut checks = Vec::new();
        match spec {
            None | Some(Spec::Null) => {}
            Some(Spec::Object(fields)) => {
                for (name, spec) in fields {
                    checks.push((field(name), tests(spec)?));
                }
            }
            Some(_) => return Err(SpecError::new("`where` is a mapping of fields")),
        }
        Ok(Filter { checks })
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    pub fn holds(&self, paths: &Paths, captures: &Captured) -> bool {
        self.checks.iter().all(|(field, tests)| {
            let value = paths.get(captures, *field);
            tests.iter().all(|t| t.holds(value))
        })
    }
}
