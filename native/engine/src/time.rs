//! Event times: RFC 3339 with a zone, read as docs/semantics.md says (Timestamps): `T`, `t` or a
//! space between date and time, `Z`, `z` or `±hh:mm`, any number of fraction digits floored to the
//! millisecond; no leap second, no impossible date, no offset beyond ±23:59, ASCII digits only.

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
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Epoch milliseconds of an RFC 3339 date-time with a zone, or None when it is not one.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    let mut at = 19;
    let mut fraction_ms = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        let kept = (at - start).min(3);
        fraction_ms = digits(b, start, kept)? * 10i64.pow(3 - kept as u32);
    }
    let offset_ms = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2], 0, 2)?;
            let minutes = digits(&[*m1, *m2], 0, 2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = (hours * 60 + minutes) * 60_000;
            if *sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ => return None,
    };
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let ms = ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + fraction_ms;
    Some(ms - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: i64 = 1_795_168_800_000; // 2026-11-20T10:00:00Z

    #[test]
    fn reads_every_accepted_shape() {
        for (text, ms) in [
            ("2026-11-20T10:00:00Z", BASE),
            ("2026-11-20t10:00:00z", BASE),
            ("2026-11-20 10:00:00Z", BASE),
            ("2026-11-20T10:00:00.123Z", BASE + 123),
            ("2026-11-20T10:00:00.1Z", BASE + 100),
            ("2026-11-20T10:00:00.12399999Z", BASE + 123),
            ("2026-11-20T12:00:00+02:00", BASE),
            ("2026-11-20T09:30:00-00:30", BASE),
            ("1969-12-31T23:59:59.999Z", -1),
            ("0001-01-01T00:00:00Z", -62_135_596_800_000),
            ("2024-02-29T00:00:00Z", 1_709_164_800_000),
        ] {
            assert_eq!(parse_rfc3339(text), Some(ms), "{text}");
        }
    }

    #[test]
    fn refuses_the_rest() {
        for text in [
            "2026-11-20T10:00:00",
            "2026-11-20T24:00:00Z",
            "2026-11-20T23:60:00Z",
            "2026-11-20T23:59:60Z",
            "2026-02-30T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-11-20T10:00:00+24:00",
            "2026-11-20T10:00:00+01:60",
            "2026-11-20T10:00:00.Z",
            "2026-11-20T10:00:00+0100",
            "2026-11-20X10:00:00Z",
            "2026-11-20T10:00:00ZZ",
            "26-11-20T10:00:00Z",
            "2026-11-20T10:00:00 Z",
            "２026-11-20T10:00:00Z",
            "2026-11-20T10:00:00.١Z",
        ] {
            assert_eq!(parse_rfc3339(text), None, "{text}");
        }
    }
}
