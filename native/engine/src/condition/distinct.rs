//! `distinct: F, at_least: N`: at least N distinct labels of F among the matching events that
//! carry F (a fractional N needs the next whole number); with `each_count_at_least: K`, only
//! labels that have at least K matching events themselves count ("7+ seats each completing 3+
//! key workflows"). Plain `distinct` is the case K = 1.
//!
//! State: per label of F, the buckets it occurred in, with its matching events there (capped at
//! K). Pruned (docs/semantics.md, Compact state): per label, the buckets of its K newest events up
//! to the settled bucket; once N labels are complete, the bucket of the N-th best label's K-th
//! newest event decides every window that holds it, so everything before that bucket goes. For
//! plain `distinct` that keeps the labels with the newest buckets.

use ahash::AHashMap;
use compact_str::CompactString;
use serde_json::{Map, Value as Spec};

use super::{reserve_rows, Condition, LegacyList, Row};
use crate::buckets::{self, entry, expire, within};
use crate::codec::{put_str, put_uint, FormatError, Reader};
use crate::fields::FieldId;
use crate::json::Value;
use crate::label::label;
use crate::legacy::LegacyCell;
use crate::spec::{count, field_name, SpecError};
use crate::window::Span;

pub struct Distinct {
    field: FieldId,
    values: Occurrences,
    /// Where the first stored format kept it: `sets` (plain) or `value_counts` (with K).
    legacy: LegacyList,
}

/// Labels needed for `at_least` (at least 1; `2.5` needs 3).
fn needed(spec: &Map<String, Spec>) -> Result<i64, SpecError> {
    let at_least =
        spec.get("at_least").ok_or_else(|| SpecError::new("distinct needs at_least: N"))?;
    if let Some(i) = at_least.as_i64() {
        return Ok(i.max(1));
    }
    match at_least.as_f64() {
        Some(f) if f >= 9.0e18 => Ok(i64::MAX),
        Some(f) if !f.is_nan() => Ok((f.ceil() as i64).max(1)),
        _ => Err(SpecError::new("at_least is a number")),
    }
}

pub fn build(
    spec: &Map<String, Spec>,
    field: &mut dyn FnMut(&str) -> FieldId,
) -> Option<Result<Box<dyn Condition>, SpecError>> {
    spec.get("distinct")?;
    Some((|| {
        let field = field(field_name(spec, "distinct")?);
        let (each, legacy) = match spec.get("each_count_at_least") {
            Some(k) if !k.is_null() => {
                (count(spec, "each_count_at_least")?, LegacyList::ValueCounts)
            }
            _ => (1, LegacyList::Sets),
        };
        let values = Occurrences { each, needed: needed(spec)?, rows: Vec::new() };
        Ok(Box::new(Distinct { field, values, legacy }) as Box<dyn Condition>)
    })())
}

impl Condition for Distinct {
    fn field(&self) -> Option<FieldId> {
        Some(self.field)
    }

    fn reserve(&mut self, rows: usize) {
        reserve_rows(&mut self.values.rows, rows);
    }

    fn apply(&mut self, row: Row, bucket: i64, value: Option<&Value>) {
        if let Some(value) = value {
            self.values.add(row, bucket, &label(value), 1);
        }
    }

    fn holds(&self, row: Row, span: Span) -> bool {
        self.values.holds(row, span)
    }

    fn holds_over(&self, row: Row, spans: &[Span], out: &mut Vec<bool>) {
        self.values.holds_over(row, spans, out);
    }

    fn prune(&mut self, row: Row, settled: i64) {
        self.values.prune(row, settled);
    }

    fn expire(&mut self, row: Row, first: i64) -> bool {
        self.values.expire(row, first)
    }

    fn clear(&mut self, row: Row) {
        self.values.rows[row] = AHashMap::new();
    }

    fn encode(&self, row: Row, out: &mut Vec<u8>) {
        self.values.encode(row, out);
    }

    fn decode(&mut self, row: Row, input: &mut Reader) -> Result<(), FormatError> {
        self.values.decode(row, input)
    }

    fn legacy_list(&self) -> Option<LegacyList> {
        Some(self.legacy)
    }

    fn load_legacy(
        &mut self,
        row: Row,
        bucket: i64,
        cell: &LegacyCell,
        slot: usize,
    ) -> Result<(), FormatError> {
        let missing = || FormatError::new("a stored cell lacks a condition's state");
        if self.legacy == LegacyList::Sets {
            for label in cell.sets.get(slot).ok_or_else(missing)? {
                self.values.add(row, bucket, label, 1);
            }
        } else {
            for (label, n) in cell.value_counts.get(slot).ok_or_else(missing)? {
                if *n > 0 {
                    self.values.add(row, bucket, label, *n);
                }
            }
        }
        Ok(())
    }
}

type Entries = Vec<(i64, i64)>;

#[derive(Default)]
struct Occurrences {
    each: i64,
    needed: i64,
    /// Per row, per label: labels are mostly short ids, kept inline in the map's slots (one
    /// memory read to compare, no allocation).
    rows: Vec<AHashMap<CompactString, Entries>>,
}

impl Occurrences {
    fn add(&mut self, row: Row, bucket: i64, label: &str, events: i64) {
        let cap = self.each;
        let values = &mut self.rows[row];
        let entries = match values.get_mut(label) {
            Some(entries) => entries,
            None => values.entry(label.into()).or_default(),
        };
        let n = entry(entries, bucket, || 0);
        *n = n.saturating_add(events).min(cap);
    }

    fn holds(&self, row: Row, span: Span) -> bool {
        let mut complete = 0;
        for entries in self.rows[row].values() {
            let mut events = 0i64;
            for (_, n) in within(entries, span) {
                events = events.saturating_add(*n);
            }
            if events >= self.each {
                complete += 1;
                if complete >= self.needed {
                    return true;
                }
            }
        }
        false
    }

    fn holds_over(&self, row: Row, spans: &[Span], out: &mut Vec<bool>) {
        // Every (bucket, label, events) in bucket order, then one slide over them.
        let values: Vec<&Entries> = self.rows[row].values().collect();
        let mut all: Vec<(i64, usize, i64)> = Vec::new();
        for (index, entries) in values.iter().enumerate() {
            all.extend(entries.iter().map(|(b, n)| (*b, index, *n)));
        }
        all.sort_unstable();
        let mut in_window = vec![0i64; values.len()];
        let (mut from, mut to, mut complete) = (0usize, 0usize, 0i64);
        for span in spans {
            while to < all.len() && all[to].0 <= span.last {
                let (_, index, n) = all[to];
                let before = in_window[index];
                in_window[index] += n;
                if before < self.each && in_window[index] >= self.each {
                    complete += 1;
                }
                to += 1;
            }
            while from < to && all[from].0 < span.first {
                let (_, index, n) = all[from];
                let before = in_window[index];
                in_window[index] -= n;
                if before >= self.each && in_window[index] < self.each {
                    complete -= 1;
                }
                from += 1;
            }
            out.push(complete >= self.needed);
        }
    }

    fn prune(&mut self, row: Row, settled: i64) {
        let values = &mut self.rows[row];
        let mut complete_at: Vec<i64> = Vec::new();
        for entries in values.values_mut() {
            let settled_end = entries.partition_point(|(b, _)| *b <= settled);
            let mut events = 0i64;
            let mut keep_from = 0;
            for i in (0..settled_end).rev() {
                events = events.saturating_add(entries[i].1);
                if events >= self.each {
                    entries[i].1 -= events - self.each;
                    keep_from = i;
                    complete_at.push(entries[i].0);
                    break;
                }
            }
            entries.drain(..keep_from);
        }
        let needed = usize::try_from(self.needed).unwrap_or(usize::MAX);
        if complete_at.len() >= needed && needed > 0 {
            complete_at.sort_unstable_by(|a, b| b.cmp(a));
            let decided = complete_at[needed - 1];
            for entries in values.values_mut() {
                let settled_end = entries.partition_point(|(b, _)| *b <= settled);
                let cut = entries[..settled_end].partition_point(|(b, _)| *b < decided);
                entries.drain(..cut);
            }
        }
        values.retain(|_, entries| !entries.is_empty());
    }

    fn expire(&mut self, row: Row, first: i64) -> bool {
        let values = &mut self.rows[row];
        let mut dropped = false;
        for entries in values.values_mut() {
            dropped |= expire(entries, first);
        }
        values.retain(|_, entries| !entries.is_empty());
        dropped
    }

    fn encode(&self, row: Row, out: &mut Vec<u8>) {
        let values = &self.rows[row];
        let mut labels: Vec<&CompactString> = values.keys().collect();
        labels.sort_unstable();
        put_uint(out, labels.len() as u64);
        for label in labels {
            put_str(out, label);
            buckets::encode(out, &values[label], |out, n| put_uint(out, *n as u64));
        }
    }

    fn decode(&mut self, row: Row, input: &mut Reader) -> Result<(), FormatError> {
        let labels = input.len()?;
        for _ in 0..labels {
            let label = input.str()?;
            buckets::decode(input, buckets::get_count, |bucket, n| {
                self.add(row, bucket, label, n)
            })?;
        }
        Ok(())
    }
}
