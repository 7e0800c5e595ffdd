//! Numbers as the definitions and docs/semantics.md use them: Python's shortest `repr` of a float
//! (labels are written with it), and exact comparison of integers with floats (filters).

use std::cmp::Ordering;

use num_bigint::BigInt;
use num_traits::FromPrimitive;

/// The shortest digits that read back as `value`, the closest to it among those (as Python's
/// `repr` chooses them: Ryū), and the decimal exponent of the first digit:
/// `value = ±d.ddd × 10^exponent`.
pub fn shortest_digits(value: f64) -> (bool, String, i32) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value);
    let (mantissa, exponent) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().expect("an integer exponent")),
        None => (text, 0),
    };
    let negative = mantissa.starts_with('-');
    let mantissa = mantissa.trim_start_matches('-');
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = format!("{whole}{fraction}");
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        return (negative, "0".into(), 0);
    }
    // The first digit is at position `leading` of `all`, whose point follows `whole`.
    let first = whole.len() as i32 - 1 - leading as i32 + exponent;
    (negative, digits.to_owned(), first)
}

/// Python's `repr(value)` of a finite float: fixed notation for exponents -4 to 15, otherwise
/// `d.ddde±XX` with at least two exponent digits; `.0` after an integral fixed value.
pub fn python_repr(value: f64) -> String {
    if value == 0.0 {
        return if value.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let (negative, digits, exponent) = shortest_digits(value);
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if (-4..16).contains(&exponent) {
        if exponent >= 0 {
            let whole = exponent as usize + 1;
            if digits.len() <= whole {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', whole - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..whole]);
                out.push('.');
                out.push_str(&digits[whole..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(&magnitude.to_string());
    }
    out
}

/// The label of a float (docs/semantics.md, Labels): an integral value as its decimal integer
/// (`3.0` → `3`, `1e16` → `10000000000000000`, exactly), any other as `python_repr`.
pub fn float_label(value: f64) -> String {
    if value.fract() == 0.0 {
        if value.abs() < 9.0e18 {
            return (value as i64).to_string();
        }
        return BigInt::from_f64(value).expect("a finite float").to_string();
    }
    python_repr(value)
}

/// A number as Python compares them: an integer or a float, exactly, also with each other.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Int(i128),
    Float(f64),
}

fn cmp_int_float(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f.is_infinite() {
        return Some(if f > 0.0 { Ordering::Less } else { Ordering::Greater });
    }
    let whole = f.trunc();
    // Saturates beyond i128, where any 64-bit integer compares the same way.
    match i.cmp(&(whole as i128)) {
        Ordering::Equal => 0.0f64.partial_cmp(&(f - whole)),
        other => Some(other),
    }
}

/// Python's comparison of two numbers: exact, also between an int and a float.
pub fn compare(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(&y),
        (Num::Int(x), Num::Float(y)) => cmp_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => cmp_int_float(y, x).map(Ordering::reverse),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_is_pythons() {
        for (value, expected) in [
            (0.1, "0.1"),
            (1e-7, "1e-07"),
            (1.5e16, "1.5e+16"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123.456, "123.456"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (2.0, "2.0"),
            (-2.5, "-2.5"),
            (1e22, "1e+22"),
            (1e100, "1e+100"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-0.0, "-0.0"),
            (0.30000000000000004, "0.30000000000000004"),
        ] {
            assert_eq!(python_repr(value), expected, "{value}");
        }
    }

    #[test]
    fn labels_of_integral_floats_are_exact_integers() {
        assert_eq!(float_label(3.0), "3");
        assert_eq!(float_label(-0.0), "0");
        assert_eq!(float_label(1e16), "10000000000000000");
        assert_eq!(float_label(1.5e16), "15000000000000000");
        assert_eq!(float_label(1e22), "10000000000000000000000");
        assert_eq!(float_label(1.8446744073709552e19), "18446744073709551616");
        assert_eq!(float_label(2.5), "2.5");
    }

    #[test]
    fn ints_and_floats_compare_exactly() {
        assert_eq!(compare(Num::Int(1), Num::Float(1.0)), Some(Ordering::Equal));
        assert_eq!(
            compare(Num::Int(9007199254740993), Num::Float(9007199254740992.0)),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(Num::Float(0.5), Num::Int(0)), Some(Ordering::Greater));
        assert_eq!(compare(Num::Int(-1), Num::Float(-0.5)), Some(Ordering::Less));
        assert_eq!(compare(Num::Int(1), Num::Float(f64::NAN)), None);
    }
}
