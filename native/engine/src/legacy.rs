//! The first stored format (before format 2), read to migrate state written by earlier versions.
//!
//! An `entities` cell was one JSON array per (metric, bucket, entity):
//! `[latest_ts, latest_seq, labels, counts, sets, value_counts, sums]`, each of the last four a
//! list with one item per condition of that kind, in declaration order (`counts`: matching
//! events capped at N; `sets`: the N smallest labels; `value_counts`: {label: events capped at
//! K}; `sums`: exact decimal strings). Aggregate buckets were hash fields keyed by compact JSON
//! arrays (processor/store/codec.py of that version); see state.rs for their migration.

use std::collections::BTreeMap;

use crate::codec::FormatError;

#[derive(Debug, Clone, PartialEq)]
pub struct LegacyCell {
    pub ts: i64,
    pub seq: i64,
    pub labels: Vec<String>,
    pub counts: Vec<i64>,
    pub sets: Vec<Vec<String>>,
    pub value_counts: Vec<Vec<(String, i64)>>,
    pub sums: Vec<String>,
}

type Stored =
    (i64, i64, Vec<String>, Vec<i64>, Vec<Vec<String>>, Vec<BTreeMap<String, i64>>, Vec<String>);

impl LegacyCell {
    pub fn decode(raw: &[u8]) -> Result<LegacyCell, FormatError> {
        let (ts, seq, labels, counts, sets, value_counts, sums): Stored =
            serde_json::from_slice(raw).map_err(|e| {
                FormatError::new(format!("a stored cell of the first format is not readable: {e}"))
            })?;
        Ok(LegacyCell {
            ts,
            seq,
            labels,
            counts,
            sets,
            value_counts: value_counts.into_iter().map(|m| m.into_iter().collect()).collect(),
            sums,
        })
    }
}

/// A field name of an aggregate bucket of the first format: `["t"]`, `["t", value]`,
/// `["s", segment, label]` or `["s", segment, label, value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyField {
    Total,
    TotalValue(String),
    Segment(String, String),
    SegmentValue(String, String, String),
}

impl LegacyField {
    pub fn decode(raw: &[u8]) -> Result<LegacyField, FormatError> {
        let parts: Vec<String> = serde_json::from_slice(raw).map_err(|e| {
            FormatError::new(format!("a stored field of the first format is not readable: {e}"))
        })?;
        let mut parts = parts.into_iter();
        let field =
            match (parts.next().as_deref(), parts.next(), parts.next(), parts.next(), parts.next())
            {
                (Some("t"), None, ..) => LegacyField::Total,
                (Some("t"), Some(value), None, ..) => LegacyField::TotalValue(value),
                (Some("s"), Some(segment), Some(label), None, _) => {
                    LegacyField::Segment(segment, label)
                }
                (Some("s"), Some(segment), Some(label), Some(value), None) => {
                    LegacyField::SegmentValue(segment, label, value)
                }
                _ => {
                    return Err(FormatError::new(
                        "a stored field of the first format has an unknown shape",
                    ))
                }
            };
        Ok(field)
    }
}
