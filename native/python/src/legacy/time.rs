//! Timestamps of the shape producers nearly always send, `YYYY-MM-DDTHH:MM:SS[.fff]Z`.
//!
//! Anything else (other zones, other fraction lengths, out-of-range fields) is not read here: the
//! caller hands the event to the Python parser, which decides. So this never has to agree with
//! the full RFC 3339 reader on anything but the one shape.

fn digits(bytes: &[u8], from: usize, count: usize) -> Option<i64> {
    let mut value = 0i64;
    for &b in bytes.get(from..from + count)? {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(b - b'0');
    }
    Some(value)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch milliseconds of a timestamp of the usual shape, or None for anything else.
pub fn parse_usual(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let fraction = match b.len() {
        24 if b[19] == b'.' => Some(digits(b, 20, 3)?),
        20 => None,
        _ => return None,
    };
    if b[b.len() - 1] != b'Z' || b[10] != b'T' || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let ms = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000;
    Some(ms + fraction.unwrap_or(0))
}
