//! `distinct: F`: the distinct labels of F among the matching events in the window that carry F.
//!
//! State: per label of F, the buckets it occurred in; per segment label, the buckets it occurred
//! in (a label is listed even when its events lack F) and its own labels of F. Pruned: per label
//! its newest bucket up to the settled one (later ones kept whole).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use ahash::AHashMap;
use serde_json::{Map, Value as Spec};

use super::{has, Aggregate, Change};
use crate::buckets::{entry, expire, BucketReader, BucketWriter};
use crate::codec::{put_str, put_uint, FormatError, Reader};
use crate::fields::FieldId;
use crate::json::Value;
use crate::label::label;
use crate::legacy::LegacyField;
use crate::spec::{field_name, SpecError};
use crate::summary::Part;
use crate::window::Span;

type Buckets = Vec<(i64, ())>;

#[derive(Default)]
struct Segment {
    present: AHashMap<String, Buckets>,
    values: AHashMap<(String, String), Buckets>,
}

pub struct Distinct {
    field: FieldId,
    total: AHashMap<String, Buckets>,
    segments: Vec<Segment>,
    touched: BTreeSet<Vec<u8>>,
}

pub fn build(
    spec: &Map<String, Spec>,
    segments: usize,
    field: &mut dyn FnMut(&str) -> FieldId,
) -> Option<Result<Box<dyn Aggregate>, SpecError>> {
    if !has(spec, "distinct") {
        return None;
    }
    Some(field_name(spec, "distinct").map(|name| {
        Box::new(Distinct {
            field: field(name),
            total: AHashMap::new(),
            segments: (0..segments).map(|_| Segment::default()).collect(),
            touched: BTreeSet::new(),
        }) as Box<dyn Aggregate>
    }))
}

fn total_key(value: &str) -> Vec<u8> {
    let mut key = vec![b't'];
    put_str(&mut key, value);
    key
}

fn present_key(segment: usize, label: &str) -> Vec<u8> {
    let mut key = vec![b'p'];
    put_uint(&mut key, segment as u64);
    put_str(&mut key, label);
    key
}

fn value_key(segment: usize, label: &str, value: &str) -> Vec<u8> {
    let mut key = vec![b's'];
    put_uint(&mut key, segment as u64);
    put_str(&mut key, label);
    put_str(&mut key, value);
    key
}

fn in_span(buckets: &Buckets, span: Span) -> bool {
    !crate::buckets::within(buckets, span).is_empty()
}

fn encode(buckets: &Buckets) -> Vec<u8> {
    let mut out = Vec::new();
    put_uint(&mut out, buckets.len() as u64);
    let mut writer = BucketWriter::new();
    for (bucket, ()) in buckets {
        writer.put(&mut out, *bucket);
    }
    out
}

fn decode(value: &[u8]) -> Result<Vec<i64>, FormatError> {
    let mut input = Reader::new(value);
    let n = input.len()?;
    let mut reader = BucketReader::new();
    (0..n).map(|_| reader.get(&mut input)).collect()
}

/// Keep each item's newest bucket up to `settled` and every later one.
fn prune_items<K>(items: &mut AHashMap<K, Buckets>, settled: i64) {
    for buckets in items.values_mut() {
        let settled_end = buckets.partition_point(|(b, _)| *b <= settled);
        if settled_end > 1 {
            buckets.drain(..settled_end - 1);
        }
    }
}

impl Distinct {
    fn note(&mut self, key: Vec<u8>) {
        self.touched.insert(key);
    }

    /// Where an item lives, from its stored key.
    fn item(&mut self, key: &[u8]) -> Result<&mut Buckets, FormatError> {
        let mut input = Reader::new(key.get(1..).unwrap_or_default());
        Ok(match key.first() {
            Some(b't') => self.total.entry(input.str()?.to_owned()).or_default(),
            Some(b'p') => {
                let segment = self.segment(input.uint()?)?;
                segment.present.entry(input.str()?.to_owned()).or_default()
            }
            Some(b's') => {
                let segment = self.segment(input.uint()?)?;
                let label = input.str()?.to_owned();
                segment.values.entry((label, input.str()?.to_owned())).or_default()
            }
            _ => return Err(FormatError::new("unknown stored distinct item")),
        })
    }

    fn segment(&mut self, index: u64) -> Result<&mut Segment, FormatError> {
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        self.segments
            .get_mut(index)
            .ok_or_else(|| FormatError::new("a stored segment is out of range"))
    }

    fn every_key(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self.total.keys().map(|v| total_key(v)).collect();
        for (index, segment) in self.segments.iter().enumerate() {
            keys.extend(segment.present.keys().map(|l| present_key(index, l)));
            keys.extend(segment.values.keys().map(|(l, v)| value_key(index, l, v)));
        }
        keys
    }

    /// An item's buckets, from its stored key (None: no such item).
    fn find(&self, key: &[u8]) -> Option<&Buckets> {
        let mut input = Reader::new(key.get(1..)?);
        match key.first()? {
            b't' => self.total.get(input.str().ok()?),
            b'p' => {
                let segment = self.segments.get(usize::try_from(input.uint().ok()?).ok()?)?;
                segment.present.get(input.str().ok()?)
            }
            b's' => {
                let segment = self.segments.get(usize::try_from(input.uint().ok()?).ok()?)?;
                let label = input.str().ok()?.to_owned();
                segment.values.get(&(label, input.str().ok()?.to_owned()))
            }
            _ => None,
        }
    }
}

impl Aggregate for Distinct {
    fn field(&self) -> Option<FieldId> {
        Some(self.field)
    }

    fn apply(&mut self, bucket: i64, value: Option<&Value>, labels: &[Cow<str>]) {
        let value = value.map(label);
        if let Some(value) = &value {
            entry(self.total.entry(value.to_string()).or_default(), bucket, || ());
            self.note(total_key(value));
        }
        for (index, label) in labels.iter().enumerate() {
            let segment = &mut self.segments[index];
            entry(segment.present.entry(label.to_string()).or_default(), bucket, || ());
            if let Some(value) = &value {
                let key = (label.to_string(), value.to_string());
                entry(segment.values.entry(key).or_default(), bucket, || ());
            }
            self.note(present_key(index, label));
            if let Some(value) = &value {
                self.note(value_key(index, label, value));
            }
        }
    }

    fn part(&self, span: Span) -> Part {
        let total: BTreeSet<String> =
            self.total.iter().filter(|(_, b)| in_span(b, span)).map(|(v, _)| v.clone()).collect();
        let breakdowns = self
            .segments
            .iter()
            .map(|segment| {
                let mut labels: BTreeMap<String, BTreeSet<String>> = segment
                    .present
                    .iter()
                    .filter(|(_, b)| in_span(b, span))
                    .map(|(l, _)| (l.clone(), BTreeSet::new()))
                    .collect();
                for ((label, value), buckets) in &segment.values {
                    if in_span(buckets, span) {
                        if let Some(values) = labels.get_mut(label) {
                            values.insert(value.clone());
                        }
                    }
                }
                labels
            })
            .collect();
        Part::Distinct { total, breakdowns }
    }

    fn prune(&mut self, settled: i64) {
        prune_items(&mut self.total, settled);
        for segment in &mut self.segments {
            prune_items(&mut segment.present, settled);
            prune_items(&mut segment.values, settled);
        }
    }

    fn expire(&mut self, first: i64) {
        let mut gone = Vec::new();
        self.total.retain(|v, b| {
            expire(b, first);
            if b.is_empty() {
                gone.push(total_key(v));
            }
            !b.is_empty()
        });
        for (index, segment) in self.segments.iter_mut().enumerate() {
            segment.present.retain(|l, b| {
                expire(b, first);
                if b.is_empty() {
                    gone.push(present_key(index, l));
                }
                !b.is_empty()
            });
            segment.values.retain(|(l, v), b| {
                expire(b, first);
                if b.is_empty() {
                    gone.push(value_key(index, l, v));
                }
                !b.is_empty()
            });
        }
        self.touched.extend(gone);
    }

    fn first_bucket(&self) -> Option<i64> {
        let mut first = self.total.values().filter_map(|b| b.first().map(|(b, _)| *b)).min();
        for segment in &self.segments {
            let present = segment.present.values().filter_map(|b| b.first().map(|(b, _)| *b)).min();
            first = match (first, present) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        first
    }

    fn changes(&mut self, everything: bool, out: &mut Vec<Change>) {
        let keys: Vec<Vec<u8>> = if everything {
            self.touched.clear();
            self.every_key()
        } else {
            std::mem::take(&mut self.touched).into_iter().collect()
        };
        for key in keys {
            let stored = self.find(&key).filter(|b| !b.is_empty()).map(encode);
            out.push((key, stored));
        }
    }

    fn load(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        let buckets = decode(value)?;
        let item = self.item(key)?;
        for bucket in buckets {
            entry(item, bucket, || ());
        }
        Ok(())
    }

    fn load_legacy(
        &mut self,
        bucket: i64,
        field: &LegacyField,
        _value: &[u8],
        segments: &[String],
    ) -> Result<(), FormatError> {
        let index = |segment: &str| segments.iter().position(|s| s == segment);
        match field {
            LegacyField::TotalValue(value) => {
                entry(self.total.entry(value.clone()).or_default(), bucket, || ());
            }
            LegacyField::Segment(segment, label) => {
                if let Some(i) = index(segment) {
                    entry(
                        self.segments[i].present.entry(label.clone()).or_default(),
                        bucket,
                        || (),
                    );
                }
            }
            LegacyField::SegmentValue(segment, label, value) => {
                if let Some(i) = index(segment) {
                    let s = &mut self.segments[i];
                    entry(s.present.entry(label.clone()).or_default(), bucket, || ());
                    entry(
                        s.values.entry((label.clone(), value.clone())).or_default(),
                        bucket,
                        || (),
                    );
                }
            }
            LegacyField::Total => {
                return Err(FormatError::new(
                    "a distinct bucket of the first format holds a number",
                ))
            }
        }
        Ok(())
    }
}
