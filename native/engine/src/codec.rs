//! The bytes of stored state: unsigned and zigzag varints, length-prefixed strings, exact
//! decimals. Every stored format (state.rs) is built from these.

use num_bigint::{BigInt, Sign};

use crate::decimal::Decimal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl FormatError {
    pub fn new(message: impl Into<String>) -> FormatError {
        FormatError(message.into())
    }
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormatError {}

pub fn put_uint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub fn put_int(out: &mut Vec<u8>, value: i64) {
    put_uint(out, ((value << 1) ^ (value >> 63)) as u64);
}

pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub fn put_str(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

/// A decimal: its exponent, then its coefficient as a zigzag varint when it fits in 64 bits
/// (tag 0), else as sign and big-endian magnitude bytes (tag 1).
pub fn put_decimal(out: &mut Vec<u8>, value: &Decimal) {
    match value.small_parts() {
        Some((coefficient, exponent)) => {
            out.push(0);
            put_int(out, i64::from(exponent));
            put_int(out, coefficient);
        }
        None => {
            let (coefficient, exponent) = value.parts();
            out.push(1);
            put_int(out, i64::from(exponent));
            let (sign, magnitude) = coefficient.to_bytes_be();
            out.push(u8::from(sign == Sign::Minus));
            put_bytes(out, &magnitude);
        }
    }
}

/// A cursor over stored bytes.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn truncated<T>(&self) -> Result<T, FormatError> {
        Err(FormatError::new(format!("stored state ends early (at byte {})", self.pos)))
    }

    pub fn byte(&mut self) -> Result<u8, FormatError> {
        let Some(&b) = self.bytes.get(self.pos) else { return self.truncated() };
        self.pos += 1;
        Ok(b)
    }

    pub fn uint(&mut self) -> Result<u64, FormatError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err(FormatError::new("a stored number is too long"))
    }

    pub fn len(&mut self) -> Result<usize, FormatError> {
        let n = self.uint()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.bytes.len())
            .ok_or_else(|| FormatError::new("a stored length is too large"))
    }

    pub fn int(&mut self) -> Result<i64, FormatError> {
        let raw = self.uint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], FormatError> {
        let n = self.len()?;
        let Some(slice) = self.bytes.get(self.pos..self.pos + n) else { return self.truncated() };
        self.pos += n;
        Ok(slice)
    }

    pub fn str(&mut self) -> Result<&'a str, FormatError> {
        std::str::from_utf8(self.bytes()?)
            .map_err(|_| FormatError::new("a stored label is not UTF-8"))
    }

    pub fn decimal(&mut self) -> Result<Decimal, FormatError> {
        let tag = self.byte()?;
        let exponent = i32::try_from(self.int()?)
            .map_err(|_| FormatError::new("a stored exponent is out of range"))?;
        match tag {
            0 => Ok(Decimal::from_parts(BigInt::from(self.int()?), exponent)),
            1 => {
                let negative = self.byte()? == 1;
                let magnitude = self.bytes()?;
                let sign = if negative { Sign::Minus } else { Sign::Plus };
                Ok(Decimal::from_parts(BigInt::from_bytes_be(sign, magnitude), exponent))
            }
            _ => Err(FormatError::new("unknown stored decimal tag")),
        }
    }

    /// The rest of the bytes.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.bytes[self.pos.min(self.bytes.len())..];
        self.pos = self.bytes.len();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(values in proptest::collection::vec(any::<i64>(), 0..20)) {
            let mut out = Vec::new();
            for v in &values {
                put_int(&mut out, *v);
            }
            let mut reader = Reader::new(&out);
            for v in &values {
                prop_assert_eq!(reader.int().unwrap(), *v);
            }
            prop_assert!(reader.is_empty());
        }

        #[test]
        fn decimals_round_trip(c in any::<i64>(), e in -400i32..400, big in any::<bool>()) {
            let mut value = Decimal::from_parts(BigInt::from(c), e);
            if big {
                value = value.mul(&Decimal::parse("123456789012345678901234567890").unwrap());
            }
            let mut out = Vec::new();
            put_decimal(&mut out, &value);
            prop_assert_eq!(Reader::new(&out).decimal().unwrap(), value);
        }
    }
}
