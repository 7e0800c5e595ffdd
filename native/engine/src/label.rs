//! Labels (docs/semantics.md, Labels): what entity ids, distinct values, segment values and event
//! ids are compared and reported by. A string is itself; `true`/`false`; an integer, or a float
//! with an integral value, its decimal integer; another float Python's shortest `repr`; an array
//! or object its compact JSON with sorted keys.

use std::borrow::Cow;

use crate::json::{canonical, Value};
use crate::number::float_label;

/// A label as the state keeps it: inline up to 24 bytes (ids, plans, regions mostly are), so
/// that keeping one allocates nothing and comparing it reads no other memory.
pub type Label = compact_str::CompactString;

/// Segment values of events that lack the field.
pub const UNKNOWN: &str = "unknown";

/// The label of a present value (not null).
pub fn label<'v>(value: &'v Value<'_>) -> Cow<'v, str> {
    match value {
        Value::Str(s) => Cow::Borrowed(s.as_ref()),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::Int(i) => Cow::Owned(i.to_string()),
        Value::UInt(u) => Cow::Owned(u.to_string()),
        Value::Float(f) => Cow::Owned(float_label(*f)),
        Value::Array(text) | Value::Object(text) => Cow::Owned(canonical(text)),
        Value::Null => Cow::Borrowed("null"),
    }
}

/// The label of a segment field's value: `unknown` when it is missing.
pub fn segment_label<'v>(value: Option<&'v Value<'_>>) -> Cow<'v, str> {
    match value {
        None => Cow::Borrowed(UNKNOWN),
        Some(v) => label(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Scanner;

    fn of(text: &str) -> String {
        label(&Scanner::new(text).value(0).unwrap()).into_owned()
    }

    #[test]
    fn labels_follow_the_semantics() {
        assert_eq!(of("\"7\""), "7");
        assert_eq!(of("7"), "7");
        assert_eq!(of("7.0"), "7");
        assert_eq!(of("true"), "true");
        assert_eq!(of("2.5"), "2.5");
        assert_eq!(of("1e-7"), "1e-07");
        assert_eq!(of("1.5e16"), "15000000000000000");
        assert_eq!(of("1.5e300").len(), 301);
        assert_eq!(of("{\"b\": 1, \"a\": [2]}"), "{\"a\":[2],\"b\":1}");
        assert_eq!(of("18446744073709551616"), "18446744073709551616");
        assert_eq!(of("-0"), "0");
    }
}
