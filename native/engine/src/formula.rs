//! `formula` metrics: `+ - * /` over numbers and other metrics of the same window, in exact
//! decimals where only a division rounds (28 significant digits). An operand without a value, or
//! a division by zero, gives no value.

use crate::decimal::Decimal;
use crate::spec::{FormulaSpec, SpecError};
use crate::summary::Number;

#[derive(Clone, Debug)]
pub enum Formula {
    Number(Decimal),
    Name(String),
    Neg(Box<Formula>),
    Add(Box<Formula>, Box<Formula>),
    Sub(Box<Formula>, Box<Formula>),
    Mul(Box<Formula>, Box<Formula>),
    Div(Box<Formula>, Box<Formula>),
}

impl Formula {
    pub fn new(spec: &FormulaSpec) -> Result<Formula, SpecError> {
        Ok(match spec {
            FormulaSpec::Number { number } => Formula::Number(
                Decimal::parse(number)
                    .ok_or_else(|| SpecError::new(format!("{number} is not a number")))?,
            ),
            FormulaSpec::Name { name } => Formula::Name(name.clone()),
            FormulaSpec::Neg { neg } => Formula::Neg(Box::new(Formula::new(neg)?)),
            FormulaSpec::Binary { op, left, right } => {
                let (l, r) = (Box::new(Formula::new(left)?), Box::new(Formula::new(right)?));
                match op.as_str() {
                    "+" => Formula::Add(l, r),
                    "-" => Formula::Sub(l, r),
                    "*" => Formula::Mul(l, r),
                    "/" => Formula::Div(l, r),
                    other => {
                        return Err(SpecError::new(format!("unknown formula operator {other}")))
                    }
                }
            }
        })
    }

    /// The value for these operand values (None: no value).
    pub fn evaluate(&self, operand: &dyn Fn(&str) -> Option<Number>) -> Option<Decimal> {
        Some(match self {
            Formula::Number(n) => n.clone(),
            Formula::Name(name) => operand(name)?.decimal(),
            Formula::Neg(inner) => inner.evaluate(operand)?.neg(),
            Formula::Add(l, r) => l.evaluate(operand)?.add(&r.evaluate(operand)?),
            Formula::Sub(l, r) => l.evaluate(operand)?.sub(&r.evaluate(operand)?),
            Formula::Mul(l, r) => l.evaluate(operand)?.mul(&r.evaluate(operand)?),
            Formula::Div(l, r) => {
                let (left, right) = (l.evaluate(operand)?, r.evaluate(operand)?);
                left.div(&right)?
            }
        })
    }
}
