//! Reading an event's fields, their labels and `where` tests, as docs/semantics.md defines them
//! and processor/engine/fields.py implements them.
//!
//! Where a value's label needs Python's own formatting (a float, an object, a list), `label`
//! answers None and the caller hands the whole event to the Python engine.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde::Deserialize;
use serde_json::Number;

use crate::legacy::json::{Json, Object};

/// A field a metric reads: a plain name (top level, then `properties`) or a dotted path.
pub enum Field {
    Plain(String),
    Path(Vec<String>),
}

impl Field {
    pub fn new(name: &str) -> Field {
        if name.contains('.') {
            Field::Path(name.split('.').map(str::to_owned).collect())
        } else {
            Field::Plain(name.to_owned())
        }
    }

    /// The value, or None when missing or null.
    pub fn get<'v, 'a>(
        &self,
        data: &'v Object<'a>,
        properties: Option<&'v Object<'a>>,
    ) -> Option<&'v Json<'a>> {
        let found = match self {
            Field::Plain(name) => match data.get(name) {
                Some(Json::Null) | None => properties.and_then(|p| p.get(name)),
                found => found,
            },
            Field::Path(parts) => {
                let mut value: Option<&Json> = None;
                let mut object = data;
                for (i, part) in parts.iter().enumerate() {
                    value = object.get(part);
                    if i + 1 < parts.len() {
                        match value {
                            Some(Json::Object(inner)) => object = inner,
                            _ => return None,
                        }
                    }
                }
                value
            }
        };
        found.filter(|v| !matches!(v, Json::Null))
    }
}

/// The label of a present value, when it is a string, a boolean or an integer.
pub fn label<'v>(value: &'v Json<'_>) -> Option<Cow<'v, str>> {
    match value {
        Json::Str(s) => Some(Cow::Borrowed(s)),
        Json::Bool(true) => Some(Cow::Borrowed("true")),
        Json::Bool(false) => Some(Cow::Borrowed("false")),
        Json::Int(i) => Some(Cow::Owned(i.to_string())),
        Json::UInt(u) => Some(Cow::Owned(u.to_string())),
        _ => None,
    }
}

/// A number as Python holds it: an int or a float, compared exactly with each other.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    /// A JSON number of an event; None for anything else.
    pub fn of_json(value: &Json) -> Option<Num> {
        match value {
            Json::Int(i) => Some(Num::Int(i128::from(*i))),
            Json::UInt(u) => Some(Num::Int(i128::from(*u))),
            Json::Float(f) => Some(Num::Float(*f)),
            _ => None,
        }
    }

    /// A number of a definition.
    pub fn of(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }
}

fn cmp_int_float(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f.is_infinite() {
        return Some(if f > 0.0 { Ordering::Less } else { Ordering::Greater });
    }
    let whole = f.trunc();
    // Saturates beyond i128, where any 64-bit integer compares the same way.
    match i.cmp(&(whole as i128)) {
        Ordering::Equal => (0.0).partial_cmp(&(f - whole)),
        other => Some(other),
    }
}

/// Python's comparison of two numbers: exact, also between an int and a float.
pub fn compare(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y),
        (Num::Int(x), Num::Float(y)) => cmp_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => cmp_int_float(y, x).map(Ordering::reverse),
    }
}

/// A scalar of a definition (`where` values), as the Python side sends it.
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub enum Scalar {
    Null,
    Bool(bool),
    Number(Number),
    Str(String),
}

fn equals(expected: &Scalar, value: Option<&Json>) -> bool {
    match (expected, value) {
        (Scalar::Bool(e), Some(Json::Bool(v))) => e == v,
        (Scalar::Str(e), Some(Json::Str(v))) => e == v,
        (Scalar::Number(e), Some(v)) => {
            Num::of_json(v).is_some_and(|v| compare(v, Num::of(e)) == Some(Ordering::Equal))
        }
        _ => false,
    }
}

fn equals_any(options: &[Scalar], value: Option<&Json>) -> bool {
    options.iter().any(|option| equals(option, value))
}

/// One operator of a `where` entry; an entry holds when all of its operators hold.
#[derive(Deserialize, Clone, Debug)]
#[serde(tag = "op", content = "value", rename_all = "snake_case")]
pub enum Test {
    Eq(Scalar),
    In(Vec<Scalar>),
    NotIn(Vec<Scalar>),
    Not(Scalar),
    Gt(Number),
    Gte(Number),
    Lt(Number),
    Lte(Number),
    Exists(bool),
}

impl Test {
    pub fn holds(&self, value: Option<&Json>) -> bool {
        let ordered = |bound: &Number, wanted: &[Ordering]| match value.and_then(Num::of_json) {
            Some(v) => compare(v, Num::of(bound)).is_some_and(|o| wanted.contains(&o)),
            None => false,
        };
        match self {
            Test::Eq(expected) => equals(expected, value),
            Test::In(options) => equals_any(options, value),
            Test::NotIn(options) => value.is_some() && !equals_any(options, value),
            Test::Not(expected) => value.is_some() && !equals(expected, value),
            Test::Gt(bound) => ordered(bound, &[Ordering::Greater]),
            Test::Gte(bound) => ordered(bound, &[Ordering::Greater, Ordering::Equal]),
            Test::Lt(bound) => ordered(bound, &[Ordering::Less]),
            Test::Lte(bound) => ordered(bound, &[Ordering::Less, Ordering::Equal]),
            Test::Exists(wanted) => value.is_some() == *wanted,
        }
    }
}
