//! One message in, a valid event (its time, its id, the fields the catalogue reads) or the reason
//! it is invalid out (docs/semantics.md, Events). Pure: the clock is a parameter.

use xxhash_rust::xxh3::xxh3_128;

use crate::fields::{Captured, Captures, Paths};
use crate::json::{self, Scanner, Value};
use crate::label::label;
use crate::time::parse_rfc3339;

/// How a message reads (CONTRACT §1): NSM's own events, or Segment/RudderStack calls, where a
/// track call's `event` is the type, any other call's type is its call type, and `messageId` is
/// the event id (docs/semantics.md, Segment/RudderStack calls).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InputFormat {
    #[default]
    Nsm,
    Segment,
}

impl InputFormat {
    pub fn parse(name: &str) -> Option<InputFormat> {
        match name {
            "nsm" => Some(InputFormat::Nsm),
            "segment" => Some(InputFormat::Segment),
            _ => None,
        }
    }
}

/// The call types of the tracking spec.
pub const CALL_TYPES: [&str; 6] = ["track", "identify", "group", "page", "screen", "alias"];

/// Why a message is not an event: the `reason` label of `nsm_events_invalid_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    NotJson,
    NotObject,
    MissingType,
    MissingTimestamp,
    BadTimestamp,
    FutureTimestamp,
    /// Anything else the engine failed on with this one message (a defect: fault.rs).
    Unprocessable,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::NotJson,
        Reason::NotObject,
        Reason::MissingType,
        Reason::MissingTimestamp,
        Reason::BadTimestamp,
        Reason::FutureTimestamp,
        Reason::Unprocessable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotJson => "not_json",
            Reason::NotObject => "not_object",
            Reason::MissingType => "missing_type",
            Reason::MissingTimestamp => "missing_timestamp",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::Unprocessable => "unprocessable",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub reason: Reason,
    pub detail: String,
}

fn invalid<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid { reason, detail: detail.into() })
}

/// An event id: the 128-bit XXH3 hash of its label. Two different labels share a hash with a
/// probability of about n² / 2^129 among n ids kept at once (docs/semantics.md, Dedup).
pub type EventId = u128;

pub fn event_id_of(label: &str) -> EventId {
    xxh3_128(label.as_bytes())
}

/// What the engine needs of a valid event besides its fields (which stay in the captures).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub ts: i64,
    pub id: Option<EventId>,
}

/// Python's name of the type a JSON value decodes to (what the details have always said).
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::UInt(_) => "int",
        Value::Float(_) => "float",
        Value::Str(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// The longest string a detail quotes whole (a detail stays short whatever the message holds).
const SHOWN_CHARS: usize = 60;

/// A value as a detail shows it: strings quoted (a long one cut, with its length), long
/// containers cut.
fn shown(value: &Value) -> String {
    match value {
        Value::Str(s) if s.chars().count() > SHOWN_CHARS => {
            let start: String = s.chars().take(SHOWN_CHARS).collect();
            format!("{start:?}... ({} characters)", s.chars().count())
        }
        Value::Str(s) => format!("{s:?}"),
        Value::Array(t) | Value::Object(t) if t.chars().count() > 40 => {
            format!("{}...", t.chars().take(40).collect::<String>())
        }
        Value::Array(t) | Value::Object(t) => (*t).to_owned(),
        other => label(other).into_owned(),
    }
}

/// Decode and validate one message. `now_ms + max_future_skew_ms` is the latest valid time.
pub fn decode<'a>(
    paths: &Paths,
    raw: &'a [u8],
    now_ms: i64,
    max_future_skew_ms: i64,
    captures: &mut Captures<'a>,
) -> Result<Header, Invalid> {
    captures.clear();
    captures.resize(paths.slots(), None);
    decode_into(paths, raw, now_ms, max_future_skew_ms, captures)
}

/// `decode` into `paths.slots()` slots held elsewhere.
pub fn decode_into<'a>(
    paths: &Paths,
    raw: &'a [u8],
    now_ms: i64,
    max_future_skew_ms: i64,
    captures: &mut Captured<'a>,
) -> Result<Header, Invalid> {
    let text = json::text(raw).or_else(|e| invalid(Reason::NotJson, e.to_string()))?;
    let mut scanner = Scanner::new(text);
    scanner.ws();
    if scanner.peek() != Some(b'{') {
        let value = scanner.value(0).and_then(|v| scanner.end().map(|()| v));
        return match value {
            Err(e) => invalid(Reason::NotJson, e.to_string()),
            Ok(v) => {
                invalid(Reason::NotObject, format!("a JSON {} is not an object", python_type(&v)))
            }
        };
    }
    paths
        .capture_into(&mut scanner, captures)
        .and_then(|()| scanner.end())
        .or_else(|e| invalid(Reason::NotJson, e.to_string()))?;
    check_type(paths, captures)?;
    let parsed = match paths.timestamp(captures) {
        None | Some(Value::Null) => return invalid(Reason::MissingTimestamp, "no timestamp"),
        Some(Value::Int(i)) => Ok(i128::from(*i)),
        Some(Value::UInt(u)) => Ok(i128::from(*u)),
        Some(Value::Str(s)) => parse_rfc3339(s).map(i128::from).ok_or(()),
        Some(_) => Err(()),
    };
    let Ok(ts) = parsed else {
        let raw = paths.timestamp(captures).map(shown).unwrap_or_default();
        return invalid(
            Reason::BadTimestamp,
            format!(
                "timestamp {raw} is neither integer epoch milliseconds nor RFC 3339 with a zone"
            ),
        );
    };
    let latest = i128::from(now_ms) + i128::from(max_future_skew_ms);
    if ts > latest {
        return invalid(
            Reason::FutureTimestamp,
            format!("timestamp {ts} is more than {max_future_skew_ms} ms ahead of the clock ({now_ms} ms)"),
        );
    }
    let ts = i64::try_from(ts).expect("at most the clock plus the skew");
    let id = paths.event_id(captures).map(|v| event_id_of(&label(v)));
    Ok(Header { ts, id })
}

/// The event's type is readable, as its input format says; else why not (`missing_type`).
fn check_type(paths: &Paths, captures: &Captured) -> Result<(), Invalid> {
    let kind = paths.event_type(captures);
    if paths.format() == InputFormat::Nsm {
        return match kind {
            Some(Value::Str(_)) => Ok(()),
            None | Some(Value::Null) => invalid(Reason::MissingType, "no type"),
            Some(other) => {
                invalid(Reason::MissingType, format!("type {} is not a string", shown(other)))
            }
        };
    }
    match kind {
        Some(Value::Str(call)) if call == "track" => match paths.event_name(captures) {
            Some(Value::Str(name)) if !name.is_empty() => Ok(()),
            None | Some(Value::Null) => {
                invalid(Reason::MissingType, "a track call without an event name")
            }
            Some(other) => invalid(
                Reason::MissingType,
                format!("a track call's event {} is not a name", shown(other)),
            ),
        },
        Some(Value::Str(call)) if CALL_TYPES.contains(&call.as_ref()) => Ok(()),
        None | Some(Value::Null) => invalid(
            Reason::MissingType,
            "no call type (track, identify, group, page, screen or alias)",
        ),
        Some(other) => invalid(
            Reason::MissingType,
            format!("call type {} is not one of {}", shown(other), CALL_TYPES.join(", ")),
        ),
    }
}

/// The event type of a decoded event: its `type`, or a Segment track call's `event`.
pub fn event_type<'c>(paths: &Paths, captures: &'c Captured<'_>) -> &'c str {
    let value = match paths.event_type(captures) {
        Some(Value::Str(s)) if paths.format() == InputFormat::Segment && s == "track" => {
            paths.event_name(captures)
        }
        other => other,
    };
    match value {
        Some(Value::Str(s)) => s,
        _ => unreachable!("a valid event has a string type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_stays_short_whatever_the_message_holds() {
        let paths = Paths::for_format(std::iter::empty(), InputFormat::Nsm);
        let long = "9".repeat(100_000);
        for raw in [
            format!(r#"{{"type": "{long}", "timestamp": "{long}"}}"#),
            format!(r#"{{"type": [{long}], "timestamp": 1}}"#),
        ] {
            let mut captures = Captures::new();
            let invalid = decode(&paths, raw.as_bytes(), 0, 0, &mut captures).unwrap_err();
            assert!(invalid.detail.len() < 300, "{}", &invalid.detail[..300]);
        }
    }

    const NOW: i64 = 1_795_168_800_000;

    fn judge(raw: &[u8]) -> Result<Header, Reason> {
        let paths = Paths::new(["account_id"]);
        let mut captures = Vec::new();
        decode(&paths, raw, NOW, 300_000, &mut captures).map_err(|e| e.reason)
    }

    #[test]
    fn reasons_in_order() {
        use Reason::*;
        for (raw, expected) in [
            (&b"x"[..], Err(NotJson)),
            (b"", Err(NotJson)),
            (b"[1]", Err(NotObject)),
            (b"\"a\"", Err(NotObject)),
            (b"{\"type\": 1} x", Err(NotJson)),
            (b"{}", Err(MissingType)),
            (b"{\"type\": null, \"timestamp\": 1}", Err(MissingType)),
            (b"{\"type\": [\"a\"], \"timestamp\": 1}", Err(MissingType)),
            (b"{\"type\": \"a\"}", Err(MissingTimestamp)),
            (b"{\"type\": \"a\", \"timestamp\": null}", Err(MissingTimestamp)),
            (b"{\"type\": \"a\", \"timestamp\": 1.0}", Err(BadTimestamp)),
            (b"{\"type\": \"a\", \"timestamp\": true}", Err(BadTimestamp)),
            (b"{\"type\": \"a\", \"timestamp\": \"1795168800000\"}", Err(BadTimestamp)),
            (b"{\"type\": \"a\", \"timestamp\": \"2026-11-20T10:00:00\"}", Err(BadTimestamp)),
            (b"{\"type\": \"a\", \"timestamp\": 1795169100001}", Err(FutureTimestamp)),
            (b"{\"type\": \"a\", \"timestamp\": 18446744073709551615}", Err(FutureTimestamp)),
            (
                b"{\"type\": \"a\", \"timestamp\": 1795169100000}",
                Ok(Header { ts: 1795169100000, id: None }),
            ),
            (
                b"{\"type\": \"a\", \"timestamp\": \"2026-11-20T10:00:00Z\", \"event_id\": null}",
                Ok(Header { ts: NOW, id: None }),
            ),
        ] {
            assert_eq!(judge(raw), expected, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn ids_compare_by_label() {
        let id = |raw: &[u8]| judge(raw).unwrap().id;
        let seven = id(b"{\"type\": \"a\", \"timestamp\": 1, \"event_id\": 7}");
        assert_eq!(seven, id(b"{\"type\": \"a\", \"timestamp\": 1, \"event_id\": \"7\"}"));
        assert_eq!(seven, id(b"{\"type\": \"a\", \"timestamp\": 1, \"event_id\": 7.0}"));
        assert_ne!(seven, id(b"{\"type\": \"a\", \"timestamp\": 1, \"event_id\": 8}"));
        assert!(seven.is_some());
    }
}
