//! Counts and sums: per bucket, the total and each segment label's number. A label is listed as
//! soon as a matching event carries it, even when the event adds nothing (a sum whose field is
//! missing), because a label is listed when a matching event in the window has it. Nothing is
//! pruned (amounts may be negative); buckets go when they leave the window.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use ahash::AHashMap;

use super::{Aggregate, Change};
use crate::buckets::{entry, expire, within};
use crate::codec::{put_decimal, put_int, put_str, put_uint, FormatError, Reader};
use crate::condition::sum::amount;
use crate::decimal::Decimal;
use crate::fields::FieldId;
use crate::json::Value;
use crate::legacy::LegacyField;
use crate::summary::{Number, Part};
use crate::window::Span;

/// What a matching event adds.
#[derive(Clone, Copy, Debug)]
pub enum Measure {
    /// One (`count: true`).
    Count,
    /// The exact decimal of a numeric field (`sum: F`); nothing when it is missing or not a number.
    Sum(FieldId),
}

#[derive(Clone, Debug)]
struct Bucket {
    total: Number,
    labels: Vec<AHashMap<String, Number>>,
}

pub struct Additive {
    measure: Measure,
    zero: Number,
    segments: usize,
    buckets: Vec<(i64, Bucket)>,
    touched: BTreeSet<i64>,
    gone: Vec<i64>,
}

fn put_number(out: &mut Vec<u8>, n: &Number) {
    match n {
        Number::Int(i) => {
            out.push(0);
            put_int(out, *i);
        }
        Number::Dec(d) => {
            out.push(1);
            put_decimal(out, d);
        }
    }
}

fn get_number(input: &mut Reader) -> Result<Number, FormatError> {
    match input.byte()? {
        0 => Ok(Number::Int(input.int()?)),
        1 => Ok(Number::Dec(input.decimal()?)),
        _ => Err(FormatError::new("unknown stored number tag")),
    }
}

impl Additive {
    pub fn new(measure: Measure, segments: usize) -> Additive {
        let zero = match measure {
            Measure::Count => Number::Int(0),
            Measure::Sum(_) => Number::Dec(Decimal::ZERO),
        };
        Additive {
            measure,
            zero,
            segments,
            buckets: Vec::new(),
            touched: BTreeSet::new(),
            gone: Vec::new(),
        }
    }

    fn bucket(&mut self, bucket: i64) -> &mut Bucket {
        if self.touched.last() != Some(&bucket) {
            self.touched.insert(bucket);
        }
        let (zero, segments) = (self.zero.clone(), self.segments);
        entry(&mut self.buckets, bucket, || Bucket {
            total: zero,
            labels: vec![AHashMap::new(); segments],
        })
    }

    /// A matching event adding `amount` (None: it adds nothing but lists its labels).
    fn add(&mut self, bucket: i64, amount: Option<&Number>, labels: &[Cow<str>]) {
        let zero = self.zero.clone();
        let cell = self.bucket(bucket);
        if let Some(amount) = amount {
            cell.total = cell.total.add(amount);
        }
        for (values, label) in cell.labels.iter_mut().zip(labels) {
            let n = match values.get_mut(label.as_ref()) {
                Some(n) => n,
                None => values.entry(label.to_string()).or_insert_with(|| zero.clone()),
            };
            if let Some(amount) = amount {
                *n = n.add(amount);
            }
        }
    }

    fn part_inner(&self, span: Span) -> Part {
        let mut total = self.zero.clone();
        let mut breakdowns = vec![BTreeMap::new(); self.segments];
        for (_, cell) in within(&self.buckets, span) {
            total = total.add(&cell.total);
            for (into, values) in breakdowns.iter_mut().zip(&cell.labels) {
                for (label, n) in values {
                    let entry: &mut Number =
                        into.entry(label.clone()).or_insert_with(|| self.zero.clone());
                    *entry = entry.add(n);
                }
            }
        }
        Part::Additive { total, breakdowns }
    }

    fn parts_over_inner(&self, spans: &[Span], out: &mut Vec<Part>) {
        let mut total = self.zero.clone();
        // Per segment: label -> (buckets of the window holding it, its number).
        let mut labels: Vec<BTreeMap<String, (i64, Number)>> = vec![BTreeMap::new(); self.segments];
        let (mut from, mut to) = (0usize, 0usize);
        let entries = &self.buckets;
        for span in spans {
            let mut slide = |cell: &Bucket, sign: i64, total: &mut Number| {
                *total = if sign > 0 { total.add(&cell.total) } else { total.sub(&cell.total) };
                for (into, values) in labels.iter_mut().zip(&cell.labels) {
                    for (label, n) in values {
                        let present =
                            into.entry(label.clone()).or_insert_with(|| (0, self.zero.clone()));
                        present.0 += sign;
                        present.1 = if sign > 0 { present.1.add(n) } else { present.1.sub(n) };
                        if present.0 == 0 {
                            into.remove(label);
                        }
                    }
                }
            };
            while to < entries.len() && entries[to].0 <= span.last {
                slide(&entries[to].1, 1, &mut total);
                to += 1;
            }
            while from < to && entries[from].0 < span.first {
                slide(&entries[from].1, -1, &mut total);
                from += 1;
            }
            out.push(Part::Additive {
                total: total.clone(),
                breakdowns: labels
                    .iter()
                    .map(|m| m.iter().map(|(l, (_, n))| (l.clone(), n.clone())).collect())
                    .collect(),
            });
        }
    }

    fn expire_inner(&mut self, first: i64) {
        let cut = self.buckets.partition_point(|(b, _)| *b < first);
        self.gone.extend(self.buckets[..cut].iter().map(|(b, _)| *b));
        expire(&mut self.buckets, first);
        self.touched.retain(|b| *b >= first);
    }

    fn first_bucket_inner(&self) -> Option<i64> {
        self.buckets.first().map(|(b, _)| *b)
    }

    fn encode(&self, cell: &Bucket) -> Vec<u8> {
        let mut out = Vec::new();
        put_number(&mut out, &cell.total);
        for values in &cell.labels {
            put_uint(&mut out, values.len() as u64);
            let mut sorted: Vec<(&String, &Number)> = values.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (label, n) in sorted {
                put_str(&mut out, label);
                put_number(&mut out, n);
            }
        }
        out
    }

    fn changes_inner(&mut self, everything: bool, out: &mut Vec<Change>) {
        let key = |bucket: i64| {
            let mut k = Vec::new();
            put_int(&mut k, bucket);
            k
        };
        for bucket in self.gone.drain(..) {
            out.push((key(bucket), None));
        }
        let touched = std::mem::take(&mut self.touched);
        if everything {
            for (bucket, cell) in &self.buckets {
                out.push((key(*bucket), Some(self.encode(cell))));
            }
        } else {
            for bucket in touched {
                if let Ok(at) = self.buckets.binary_search_by_key(&bucket, |(b, _)| *b) {
                    out.push((key(bucket), Some(self.encode(&self.buckets[at].1))));
                }
            }
        }
    }

    fn load_inner(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        let bucket = Reader::new(key).int()?;
        let mut input = Reader::new(value);
        let total = get_number(&mut input)?;
        let mut labels: Vec<Vec<(String, Number)>> = Vec::new();
        for _ in 0..self.segments {
            let n = input.len()?;
            let mut values = Vec::with_capacity(n);
            for _ in 0..n {
                values.push((input.str()?.to_owned(), get_number(&mut input)?));
            }
            labels.push(values);
        }
        let cell = self.bucket(bucket);
        cell.total = cell.total.add(&total);
        for (into, values) in cell.labels.iter_mut().zip(labels) {
            for (label, n) in values {
                let zero = n.zero();
                let entry = into.entry(label).or_insert(zero);
                *entry = entry.add(&n);
            }
        }
        Ok(())
    }

    /// A first-format field: the total (`["t"]`) or one segment label's number.
    fn load_legacy_number(&mut self, bucket: i64, segment: Option<(usize, &str)>, n: Number) {
        let cell = self.bucket(bucket);
        match segment {
            None => cell.total = cell.total.add(&n),
            Some((index, label)) => {
                if let Some(values) = cell.labels.get_mut(index) {
                    let zero = n.zero();
                    let entry = values.entry(label.to_owned()).or_insert(zero);
                    *entry = entry.add(&n);
                }
            }
        }
    }
}

impl Aggregate for Additive {
    fn field(&self) -> Option<FieldId> {
        match self.measure {
            Measure::Count => None,
            Measure::Sum(field) => Some(field),
        }
    }

    fn apply(&mut self, bucket: i64, value: Option<&Value>, labels: &[Cow<str>]) {
        let added = match self.measure {
            Measure::Count => Some(Number::Int(1)),
            Measure::Sum(_) => value.and_then(amount).map(Number::Dec),
        };
        self.add(bucket, added.as_ref(), labels);
    }

    fn part(&self, span: Span) -> Part {
        self.part_inner(span)
    }

    fn parts_over(&self, spans: &[Span], out: &mut Vec<Part>) {
        self.parts_over_inner(spans, out);
    }

    fn expire(&mut self, first: i64) {
        self.expire_inner(first);
    }

    fn first_bucket(&self) -> Option<i64> {
        self.first_bucket_inner()
    }

    fn changes(&mut self, everything: bool, out: &mut Vec<Change>) {
        self.changes_inner(everything, out);
    }

    fn load(&mut self, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        self.load_inner(key, value)
    }

    fn load_legacy(
        &mut self,
        bucket: i64,
        field: &LegacyField,
        value: &[u8],
        segments: &[String],
    ) -> Result<(), FormatError> {
        let text = std::str::from_utf8(value).ok();
        let n = match self.measure {
            Measure::Count => text.and_then(|t| t.parse().ok()).map(Number::Int),
            Measure::Sum(_) => text.and_then(Decimal::parse).map(Number::Dec),
        };
        let n =
            n.ok_or_else(|| FormatError::new("a stored number of the first format is unreadable"))?;
        match field {
            LegacyField::Total => self.load_legacy_number(bucket, None, n),
            LegacyField::Segment(segment, label) => {
                if let Some(index) = segments.iter().position(|s| s == segment) {
                    self.load_legacy_number(bucket, Some((index, label)), n);
                }
            }
            _ => return Err(FormatError::new("a count or sum bucket holds a value set")),
        }
        Ok(())
    }
}
