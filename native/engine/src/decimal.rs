//! Exact decimals: sums of JSON numbers, each taken as the decimal it is written as
//! (docs/semantics.md, Numbers), and formula arithmetic, where only a division rounds (to 28
//! significant digits, half to even, as Python's default decimal context).
//!
//! A value is `coefficient × 10^exponent`; the coefficient stays a machine integer while it fits
//! and becomes arbitrary-precision when it does not, so no sum is ever rounded.

use std::cmp::Ordering;
use std::fmt;

use num_bigint::{BigInt, Sign};
use num_integer::Integer;
use num_traits::{Signed, ToPrimitive, Zero};

use crate::number::shortest_digits;

#[derive(Clone, Debug)]
enum Coefficient {
    Small(i128),
    Big(BigInt),
}

/// An exact decimal number.
#[derive(Clone, Debug)]
pub struct Decimal {
    coefficient: Coefficient,
    exponent: i32,
}

/// Significant digits kept by a division (Python's default context).
pub const DIVISION_DIGITS: u32 = 28;

fn pow10_small(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

fn pow10_big(n: u32) -> BigInt {
    BigInt::from(10u8).pow(n)
}

impl Default for Decimal {
    fn default() -> Self {
        Decimal::ZERO
    }
}

impl Decimal {
    pub const ZERO: Decimal = Decimal { coefficient: Coefficient::Small(0), exponent: 0 };

    pub fn from_i128(value: i128) -> Decimal {
        Decimal { coefficient: Coefficient::Small(value), exponent: 0 }
    }

    /// The decimal a float is written as: `Decimal(repr(x))`. None for a non-finite float.
    pub fn from_f64(value: f64) -> Option<Decimal> {
        if !value.is_finite() {
            return None;
        }
        if value == 0.0 {
            return Some(Decimal::ZERO);
        }
        let (negative, digits, exponent) = shortest_digits(value);
        let mut coefficient: i128 = digits.parse().expect("at most 17 digits");
        if negative {
            coefficient = -coefficient;
        }
        Some(Decimal {
            coefficient: Coefficient::Small(coefficient),
            exponent: exponent - (digits.len() as i32 - 1),
        })
    }

    /// A decimal string: `12`, `-0.5`, `1e-7`, `2.5E+3` (what `Display` writes reads back).
    pub fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        let (mantissa, exponent) = match text.find(['e', 'E']) {
            Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
            None => (text, 0),
        };
        let (negative, mantissa) = match mantissa.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        if !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = format!("{whole}{fraction}");
        let mut magnitude: BigInt = digits.parse().ok()?;
        if negative {
            magnitude = -magnitude;
        }
        let exponent = exponent.checked_sub(i32::try_from(fraction.len()).ok()?)?;
        Some(Decimal::from_big(magnitude, exponent))
    }

    fn from_big(value: BigInt, exponent: i32) -> Decimal {
        let coefficient = match value.to_i128() {
            Some(small) => Coefficient::Small(small),
            None => Coefficient::Big(value),
        };
        Decimal { coefficient, exponent }
    }

    fn big(&self) -> BigInt {
        match &self.coefficient {
            Coefficient::Small(s) => BigInt::from(*s),
            Coefficient::Big(b) => b.clone(),
        }
    }

    pub fn is_zero(&self) -> bool {
        match &self.coefficient {
            Coefficient::Small(s) => *s == 0,
            Coefficient::Big(b) => b.is_zero(),
        }
    }

    fn signum(&self) -> i32 {
        match &self.coefficient {
            Coefficient::Small(s) => s.signum() as i32,
            Coefficient::Big(b) => match b.sign() {
                Sign::Minus => -1,
                Sign::NoSign => 0,
                Sign::Plus => 1,
            },
        }
    }

    /// Both coefficients at the smaller exponent, as machine integers when they fit.
    fn aligned(&self, other: &Decimal) -> Aligned {
        let exponent = self.exponent.min(other.exponent);
        let shift = |d: &Decimal| (d.exponent - exponent) as u32;
        if let (Coefficient::Small(a), Coefficient::Small(b)) =
            (&self.coefficient, &other.coefficient)
        {
            let scaled = |c: i128, s: u32| pow10_small(s).and_then(|p| c.checked_mul(p));
            if let (Some(a), Some(b)) = (scaled(*a, shift(self)), scaled(*b, shift(other))) {
                return Aligned::Small(a, b, exponent);
            }
        }
        let scaled = |d: &Decimal| d.big() * pow10_big(shift(d));
        Aligned::Big(scaled(self), scaled(other), exponent)
    }

    pub fn add(&self, other: &Decimal) -> Decimal {
        if other.is_zero() {
            return self.clone();
        }
        if self.is_zero() {
            return other.clone();
        }
        match self.aligned(other) {
            Aligned::Small(a, b, e) => match a.checked_add(b) {
                Some(sum) => Decimal { coefficient: Coefficient::Small(sum), exponent: e },
                None => Decimal::from_big(BigInt::from(a) + BigInt::from(b), e),
            },
            Aligned::Big(a, b, e) => Decimal::from_big(a + b, e),
        }
    }

    pub fn neg(&self) -> Decimal {
        let coefficient = match &self.coefficient {
            Coefficient::Small(s) => match s.checked_neg() {
                Some(n) => Coefficient::Small(n),
                None => Coefficient::Big(-BigInt::from(*s)),
            },
            Coefficient::Big(b) => Coefficient::Big(-b),
        };
        Decimal { coefficient, exponent: self.exponent }
    }

    pub fn sub(&self, other: &Decimal) -> Decimal {
        self.add(&other.neg())
    }

    pub fn mul(&self, other: &Decimal) -> Decimal {
        let exponent = self.exponent + other.exponent;
        if let (Coefficient::Small(a), Coefficient::Small(b)) =
            (&self.coefficient, &other.coefficient)
        {
            if let Some(product) = a.checked_mul(*b) {
                return Decimal { coefficient: Coefficient::Small(product), exponent };
            }
        }
        Decimal::from_big(self.big() * other.big(), exponent)
    }

    /// `self / other` rounded to 28 significant digits, half to even; None when `other` is 0.
    pub fn div(&self, other: &Decimal) -> Option<Decimal> {
        if other.is_zero() {
            return None;
        }
        if self.is_zero() {
            return Some(Decimal::ZERO);
        }
        let negative = self.signum() != other.signum();
        let (a, b) = (self.big().abs(), other.big().abs());
        let digits = |n: &BigInt| n.to_string().len() as i64;
        // A quotient of at least 29 digits, so that rounding sees the digit after the 28th.
        let shift = (i64::from(DIVISION_DIGITS) + 1 + digits(&b) - digits(&a)).max(0) as u32;
        let (quotient, remainder) = (a * pow10_big(shift)).div_rem(&b);
        let extra = (digits(&quotient) - i64::from(DIVISION_DIGITS)).max(0) as u32;
        let unit = pow10_big(extra);
        let (mut kept, dropped) = quotient.div_rem(&unit);
        let twice = &dropped * 2u8;
        let round_up = match twice.cmp(&unit) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal if extra == 0 => false,
            Ordering::Equal => !remainder.is_zero() || kept.is_odd(),
        };
        if extra > 0 && round_up {
            kept += 1u8;
        }
        if negative {
            kept = -kept;
        }
        let exponent = self.exponent as i64 - other.exponent as i64 - shift as i64 + extra as i64;
        Some(Decimal::from_big(kept, i32::try_from(exponent).ok()?))
    }

    /// The nearest float (correctly rounded, as Python's `float(Decimal)`).
    pub fn to_f64(&self) -> f64 {
        format!("{}e{}", self.coefficient_text(), self.exponent).parse().unwrap_or(f64::NAN)
    }

    fn coefficient_text(&self) -> String {
        match &self.coefficient {
            Coefficient::Small(s) => s.to_string(),
            Coefficient::Big(b) => b.to_string(),
        }
    }

    /// The same value with no trailing zero in the coefficient (zero has exponent 0).
    pub fn normalized(&self) -> Decimal {
        if self.is_zero() {
            return Decimal::ZERO;
        }
        match &self.coefficient {
            Coefficient::Small(s) => {
                let (mut c, mut e) = (*s, self.exponent);
                while c % 10 == 0 {
                    c /= 10;
                    e += 1;
                }
                Decimal { coefficient: Coefficient::Small(c), exponent: e }
            }
            Coefficient::Big(b) => {
                let (mut c, mut e) = (b.clone(), self.exponent);
                let ten = BigInt::from(10u8);
                loop {
                    let (q, r) = c.div_rem(&ten);
                    if !r.is_zero() {
                        break;
                    }
                    c = q;
                    e += 1;
                }
                Decimal::from_big(c, e)
            }
        }
    }

    /// The coefficient and exponent of the normalized value (for stored formats).
    pub fn parts(&self) -> (BigInt, i32) {
        let n = self.normalized();
        (n.big(), n.exponent)
    }

    pub fn from_parts(coefficient: BigInt, exponent: i32) -> Decimal {
        Decimal::from_big(coefficient, exponent)
    }

    /// The small form of the normalized value, when its coefficient fits in 64 bits.
    pub fn small_parts(&self) -> Option<(i64, i32)> {
        let n = self.normalized();
        match n.coefficient {
            Coefficient::Small(s) => i64::try_from(s).ok().map(|s| (s, n.exponent)),
            Coefficient::Big(_) => None,
        }
    }
}

enum Aligned {
    Small(i128, i128, i32),
    Big(BigInt, BigInt, i32),
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Decimal) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        let (a, b) = (self.signum(), other.signum());
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        match self.aligned(other) {
            Aligned::Small(x, y, _) => x.cmp(&y),
            Aligned::Big(x, y, _) => x.cmp(&y),
        }
    }
}

impl fmt::Display for Decimal {
    /// Positional notation while the exponent is modest (`1.5`, `-20`), else `<digits>E<exp>`;
    /// Python's `Decimal(text)` reads either exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.normalized();
        let digits = n.coefficient_text();
        let (sign, digits) = match digits.strip_prefix('-') {
            Some(rest) => ("-", rest.to_string()),
            None => ("", digits),
        };
        let e = n.exponent;
        if e >= 0 && digits.len() + e as usize <= 40 {
            write!(f, "{sign}{digits}{}", "0".repeat(e as usize))
        } else if (-40..0).contains(&e) {
            let point = -e as usize;
            if digits.len() > point {
                let whole = digits.len() - point;
                write!(f, "{sign}{}.{}", &digits[..whole], &digits[whole..])
            } else {
                write!(f, "{sign}0.{}{digits}", "0".repeat(point - digits.len()))
            }
        } else {
            write!(f, "{sign}{digits}E{e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn sums_are_exact_and_order_independent() {
        let a = Decimal::from_f64(0.1).unwrap().add(&Decimal::from_f64(0.2).unwrap());
        assert_eq!(a, d("0.3"));
        assert_eq!(a.to_string(), "0.3");
        let big = d("1e300").add(&d("1e-300")).sub(&d("1e300"));
        assert_eq!(big, d("1e-300"));
        let huge = Decimal::from_i128(i128::MAX).add(&Decimal::from_i128(i128::MAX));
        assert_eq!(huge.sub(&Decimal::from_i128(i128::MAX)), Decimal::from_i128(i128::MAX));
        assert_eq!(Decimal::from_f64(1e-7).unwrap(), d("0.0000001"));
        assert_eq!(Decimal::from_f64(2.5e16).unwrap().to_string(), "25000000000000000");
    }

    #[test]
    fn division_rounds_to_28_digits_half_even() {
        assert_eq!(d("1").div(&d("3")).unwrap().to_string(), "0.3333333333333333333333333333");
        assert_eq!(d("2").div(&d("3")).unwrap().to_string(), "0.6666666666666666666666666667");
        assert_eq!(d("1").div(&d("4")).unwrap(), d("0.25"));
        assert_eq!(d("-7").div(&d("2")).unwrap(), d("-3.5"));
        assert!(d("1").div(&d("0")).is_none());
        // Exactly half at the 29th digit: to even.
        let x = d("10000000000000000000000000005");
        assert_eq!(x.div(&d("10")).unwrap().to_string(), "1000000000000000000000000000");
        let y = d("10000000000000000000000000015");
        assert_eq!(y.div(&d("10")).unwrap().to_string(), "1000000000000000000000000002");
        assert_eq!(d("1").div(&d("7")).unwrap().to_string(), "0.1428571428571428571428571429");
    }

    #[test]
    fn floats_round_correctly() {
        assert_eq!(d("0.1").to_f64(), 0.1);
        assert_eq!(d("1e-300").to_f64(), 1e-300);
        assert_eq!(d("123456789012345678901234567890").to_f64(), 1.2345678901234568e29);
    }
}
