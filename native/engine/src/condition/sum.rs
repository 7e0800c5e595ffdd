//! `sum: F, at_least: X`: the exact sum of F over the matching events in the window is at least X
//! (each number taken as the decimal it is written as; a missing or non-numeric F adds nothing).
//!
//! State: per bucket, the exact sum. Nothing is pruned: amounts may be negative, so no bucket
//! decides a window on its own.

use serde_json::{Map, Value as Spec};

use super::{reserve_rows, Condition, LegacyList, Row};
use crate::buckets::{self, entry, expire, within, Slide};
use crate::codec::{put_decimal, FormatError, Reader};
use crate::decimal::Decimal;
use crate::fields::FieldId;
use crate::json::Value;
use crate::legacy::LegacyCell;
use crate::spec::{field_name, number_of, SpecError};
use crate::window::Span;

pub struct Sum {
    field: FieldId,
    at_least: Decimal,
    rows: Vec<Vec<(i64, Decimal)>>,
}

/// The exact decimal a JSON number of an event is written as; None for anything else.
pub fn amount(value: &Value) -> Option<Decimal> {
    match value {
        Value::Int(i) => Some(Decimal::from_i128(i128::from(*i))),
        Value::UInt(u) => Some(Decimal::from_i128(i128::from(*u))),
        Value::Float(f) => Decimal::from_f64(*f),
        _ => None,
    }
}

/// A threshold of a definition, as the decimal it is written as.
pub fn threshold(spec: &Spec) -> Result<Decimal, SpecError> {
    match number_of(spec)? {
        crate::number::Num::Int(i) => Ok(Decimal::from_i128(i)),
        crate::number::Num::Float(f) => {
            Decimal::from_f64(f).ok_or_else(|| SpecError::new("at_least is a finite number"))
        }
    }
}

pub fn build(
    spec: &Map<String, Spec>,
    field: &mut dyn FnMut(&str) -> FieldId,
) -> Option<Result<Box<dyn Condition>, SpecError>> {
    spec.get("sum")?;
    Some((|| {
        let field = field(field_name(spec, "sum")?);
        let at_least = threshold(
            spec.get("at_least").ok_or_else(|| SpecError::new("sum needs at_least: X"))?,
        )?;
        Ok(Box::new(Sum { field, at_least, rows: Vec::new() }) as Box<dyn Condition>)
    })())
}

impl Sum {
    fn add(&mut self, row: Row, bucket: i64, amount: &Decimal) {
        let total = entry(&mut self.rows[row], bucket, Decimal::default);
        *total = total.add(amount);
    }
}

impl Condition for Sum {
    fn field(&self) -> Option<FieldId> {
        Some(self.field)
    }

    fn reserve(&mut self, rows: usize) {
        reserve_rows(&mut self.rows, rows);
    }

    fn apply(&mut self, row: Row, bucket: i64, value: Option<&Value>) {
        if let Some(amount) = value.and_then(amount) {
            self.add(row, bucket, &amount);
        }
    }

    fn holds(&self, row: Row, span: Span) -> bool {
        let mut total = Decimal::ZERO;
        for (_, amount) in within(&self.rows[row], span) {
            total = total.add(amount);
        }
        total >= self.at_least
    }

    fn holds_over(&self, row: Row, spans: &[Span], out: &mut Vec<bool>) {
        let entries = &self.rows[row];
        let mut slide = Slide::new();
        let mut total = Decimal::ZERO;
        for span in spans {
            slide.advance(entries, *span, |i, sign| {
                total = if sign > 0 { total.add(&entries[i].1) } else { total.sub(&entries[i].1) };
            });
            out.push(total >= self.at_least);
        }
    }

    fn prune(&mut self, _row: Row, _settled: i64) {}

    fn expire(&mut self, row: Row, first: i64) -> bool {
        expire(&mut self.rows[row], first)
    }

    fn clear(&mut self, row: Row) {
        self.rows[row].clear();
    }

    fn encode(&self, row: Row, out: &mut Vec<u8>) {
        buckets::encode(out, &self.rows[row], put_decimal);
    }

    fn decode(&mut self, row: Row, input: &mut Reader) -> Result<(), FormatError> {
        buckets::decode(input, |r| r.decimal(), |bucket, amount| self.add(row, bucket, &amount))
    }

    fn legacy_list(&self) -> Option<LegacyList> {
        Some(LegacyList::Sums)
    }

    fn load_legacy(
        &mut self,
        row: Row,
        bucket: i64,
        cell: &LegacyCell,
        slot: usize,
    ) -> Result<(), FormatError> {
        let text =
            cell.sums.get(slot).ok_or_else(|| FormatError::new("a stored cell lacks a sum"))?;
        let amount = Decimal::parse(text)
            .ok_or_else(|| FormatError::new("a stored sum is not a decimal"))?;
        self.add(row, bucket, &amount);
        Ok(())
    }
}
