//! `count_at_least: N`: at least N matching events in the window.
//!
//! State: per bucket, the matching events (capped at N: a bucket with N decides any window that
//! holds it). Pruned: the buckets of the N newest events up to the settled bucket.

use serde_json::{Map, Value as Spec};

use super::{reserve_rows, Condition, LegacyList, Row};
use crate::buckets::{self, entry, expire, within, Slide};
use crate::codec::{put_uint, FormatError, Reader};
use crate::fields::FieldId;
use crate::json::Value;
use crate::legacy::LegacyCell;
use crate::spec::{count, SpecError};
use crate::window::Span;

pub struct Count {
    at_least: i64,
    rows: Vec<Vec<(i64, i64)>>,
}

pub fn build(
    spec: &Map<String, Spec>,
    _field: &mut dyn FnMut(&str) -> FieldId,
) -> Option<Result<Box<dyn Condition>, SpecError>> {
    spec.get("count_at_least")?;
    Some(
        count(spec, "count_at_least")
            .map(|at_least| Box::new(Count { at_least, rows: Vec::new() }) as Box<dyn Condition>),
    )
}

impl Count {
    fn add(&mut self, row: Row, bucket: i64, events: i64) {
        let cap = self.at_least;
        let n = entry(&mut self.rows[row], bucket, || 0);
        *n = n.saturating_add(events).min(cap);
    }
}

impl Condition for Count {
    fn field(&self) -> Option<FieldId> {
        None
    }

    fn reserve(&mut self, rows: usize) {
        reserve_rows(&mut self.rows, rows);
    }

    fn apply(&mut self, row: Row, bucket: i64, _value: Option<&Value>) {
        self.add(row, bucket, 1);
    }

    fn holds(&self, row: Row, span: Span) -> bool {
        let mut total = 0i64;
        for (_, n) in within(&self.rows[row], span) {
            total = total.saturating_add(*n);
        }
        total >= self.at_least
    }

    fn holds_over(&self, row: Row, spans: &[Span], out: &mut Vec<bool>) {
        let entries = &self.rows[row];
        let mut slide = Slide::new();
        let mut total = 0i64;
        for span in spans {
            slide.advance(entries, *span, |i, sign| total += sign * entries[i].1);
            out.push(total >= self.at_least);
        }
    }

    fn prune(&mut self, row: Row, settled: i64) {
        let entries = &mut self.rows[row];
        let settled_end = entries.partition_point(|(b, _)| *b <= settled);
        let mut total = 0i64;
        let mut keep_from = 0;
        for i in (0..settled_end).rev() {
            total = total.saturating_add(entries[i].1);
            if total >= self.at_least {
                entries[i].1 -= total - self.at_least;
                keep_from = i;
                break;
            }
        }
        entries.drain(..keep_from);
    }

    fn expire(&mut self, row: Row, first: i64) -> bool {
        expire(&mut self.rows[row], first)
    }

    fn clear(&mut self, row: Row) {
        self.rows[row].clear();
    }

    fn encode(&self, row: Row, out: &mut Vec<u8>) {
        buckets::encode(out, &self.rows[row], |out, n| put_uint(out, *n as u64));
    }

    fn decode(&mut self, row: Row, input: &mut Reader) -> Result<(), FormatError> {
        buckets::decode(input, buckets::get_count, |bucket, n| self.add(row, bucket, n))
    }

    fn legacy_list(&self) -> Option<LegacyList> {
        Some(LegacyList::Counts)
    }

    fn load_legacy(
        &mut self,
        row: Row,
        bucket: i64,
        cell: &LegacyCell,
        slot: usize,
    ) -> Result<(), FormatError> {
        let n = *cell
            .counts
            .get(slot)
            .ok_or_else(|| FormatError::new("a stored cell lacks a count"))?;
        if n > 0 {
            self.add(row, bucket, n);
        }
        Ok(())
    }
}
