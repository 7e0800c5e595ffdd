//! Strict JSON (RFC 8259), judged exactly as the reference decoder, orjson, judges it
//! (docs/semantics.md, Strict JSON): UTF-8 without a byte order mark, no NaN or Infinity, no
//! number that overflows to infinity, no lone surrogate in an escape, no control character in a
//! string, nesting up to 1024 levels. Integers beyond 64 bits (signed below zero, unsigned above)
//! are read as floats, a repeated key's last value wins.
//!
//! Decoding an event reads every byte once: values the engine needs are captured, as borrowed
//! strings where they hold no escape, arrays and objects as their validated text; everything else
//! is checked and skipped without allocating.

use std::borrow::Cow;
use std::fmt;

/// The deepest nesting accepted (orjson's limit): `[[...]]` 1024 levels deep is valid, 1025 not.
pub const MAX_DEPTH: usize = 1024;

/// A JSON value as the engine reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX` and at most `u64::MAX`.
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An array, as its (validated) JSON text.
    Array(&'a str),
    /// An object, as its (validated) JSON text.
    Object(&'a str),
}

impl Value<'_> {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// Why a message is not JSON, and where (a byte offset).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: &'static str,
    pub position: usize,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.position)
    }
}

type Result<T> = std::result::Result<T, SyntaxError>;

/// The message as text: valid UTF-8, no byte order mark.
pub fn text(bytes: &[u8]) -> Result<&str> {
    // The fast check first; the standard one only to say where a bad text goes wrong.
    let checked = match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(_) => std::str::from_utf8(bytes),
    };
    match checked {
        Ok(text) if text.starts_with('\u{feff}') => {
            Err(SyntaxError { message: "a UTF-8 byte order mark is not allowed", position: 0 })
        }
        Ok(text) => Ok(text),
        Err(e) => Err(SyntaxError { message: "not valid UTF-8", position: e.valid_up_to() }),
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The first quote, backslash or control character, eight bytes at a time. In each mask the
/// lowest flagged byte is exact (a borrow can only flag bytes above a true one), so the lowest
/// of the three is the first such byte.
#[inline(always)]
fn first_special(bytes: &[u8]) -> Option<usize> {
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let found = below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1)
            | below(word, 0x20);
        if found != 0 {
            return Some(at + found.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    bytes[at..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).map(|n| at + n)
}

/// A cursor over one JSON text.
pub struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

fn hex(b: u8) -> Option<u16> {
    match b {
        b'0'..=b'9' => Some(u16::from(b - b'0')),
        b'a'..=b'f' => Some(u16::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u16::from(b - b'A' + 10)),
        _ => None,
    }
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Scanner<'a> {
        Scanner { text, bytes: text.as_bytes(), pos: 0 }
    }

    fn error<T>(&self, message: &'static str) -> Result<T> {
        Err(SyntaxError { message, position: self.pos })
    }

    pub fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// The text from `start` to the cursor.
    pub fn since(&self, start: usize) -> &'a str {
        &self.text[start..self.pos]
    }

    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// After the document: only whitespace may follow.
    pub fn end(&mut self) -> Result<()> {
        self.ws();
        if self.pos != self.bytes.len() {
            return self.error("unexpected content after the document");
        }
        Ok(())
    }

    fn expect(&mut self, byte: u8, message: &'static str) -> Result<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            self.error(message)
        }
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<()> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.error("invalid literal")
        }
    }

    /// One value, captured: strings unescaped, containers as their text (validated).
    pub fn value(&mut self, depth: usize) -> Result<Value<'a>> {
        self.ws();
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'{') => {
                let start = self.pos;
                self.skip_object(depth + 1)?;
                Ok(Value::Object(&self.text[start..self.pos]))
            }
            Some(b'[') => {
                let start = self.pos;
                self.skip_array(depth + 1)?;
                Ok(Value::Array(&self.text[start..self.pos]))
            }
            Some(b't') => self.literal(b"true").map(|()| Value::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Value::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            None => self.error("unexpected end of data"),
            Some(_) => self.error("unexpected character"),
        }
    }

    /// One value, checked and passed over.
    pub fn skip(&mut self, depth: usize) -> Result<()> {
        self.ws();
        match self.peek() {
            Some(b'"') => self.skip_string(),
            Some(b'{') => self.skip_object(depth + 1),
            Some(b'[') => self.skip_array(depth + 1),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.skip_number(),
            None => self.error("unexpected end of data"),
            Some(_) => self.error("unexpected character"),
        }
    }

    fn skip_array(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return self.error("depth limit exceeded");
        }
        self.pos += 1; // [
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip(depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        return self.error("trailing comma is not allowed");
                    }
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return self.error("unexpected end of data"),
                Some(_) => return self.error("expected ',' or ']'"),
            }
        }
    }

    fn skip_object(&mut self, depth: usize) -> Result<()> {
        self.object(depth, |scanner, _key, depth| scanner.skip(depth))
    }

    /// An object at the cursor, `{` included, calling `member(self, key, depth)` for each member
    /// with the cursor before its value, which `member` must consume. `depth` is the object's.
    pub fn object(
        &mut self,
        depth: usize,
        mut member: impl FnMut(&mut Self, Cow<'a, str>, usize) -> Result<()>,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return self.error("depth limit exceeded");
        }
        self.pos += 1; // {
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return match self.peek() {
                    None => self.error("unexpected end of data"),
                    Some(b'}') => self.error("trailing comma is not allowed"),
                    Some(_) => self.error("expected a string key"),
                };
            }
            let key = self.string()?;
            self.ws();
            self.expect(b':', "expected ':' after a key")?;
            member(self, key, depth)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return self.error("unexpected end of data"),
                Some(_) => return self.error("expected ',' or '}'"),
            }
        }
    }

    /// The characters of a string up to its closing quote or first backslash; errors on a
    /// control character or the end of data.
    #[inline(always)]
    fn plain_run(&mut self) -> Result<()> {
        let rest = &self.bytes[self.pos..];
        match first_special(rest) {
            Some(n) if rest[n] < 0x20 => {
                self.pos += n;
                self.error("unexpected control character in string")
            }
            Some(n) => {
                self.pos += n;
                Ok(())
            }
            None => {
                self.pos = self.bytes.len();
                self.error("unexpected end of data in a string")
            }
        }
    }

    /// One escape after its backslash; returns the character (None for an escape this cursor
    /// only checks).
    fn escape(&mut self) -> Result<char> {
        let Some(&b) = self.bytes.get(self.pos) else {
            return self.error("unexpected end of data in an escape");
        };
        self.pos += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                match first {
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return self.error("no low surrogate in string");
                        }
                        self.pos += 2;
                        let second = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return self.error("invalid low surrogate in string");
                        }
                        let code = 0x10000
                            + ((u32::from(first) - 0xD800) << 10)
                            + (u32::from(second) - 0xDC00);
                        char::from_u32(code).expect("a surrogate pair is a character")
                    }
                    0xDC00..=0xDFFF => return self.error("invalid high surrogate in string"),
                    _ => char::from_u32(u32::from(first)).expect("not a surrogate"),
                }
            }
            _ => return self.error("invalid escape"),
        })
    }

    fn hex4(&mut self) -> Result<u16> {
        let Some(digits) = self.bytes.get(self.pos..self.pos + 4) else {
            return self.error("unexpected end of data in an escape");
        };
        let mut value = 0u16;
        for &d in digits {
            match hex(d) {
                Some(h) => value = value * 16 + h,
                None => return self.error("invalid \\u escape"),
            }
        }
        self.pos += 4;
        Ok(value)
    }

    /// A string at the cursor (`"` included): borrowed when it holds no escape.
    pub fn string(&mut self) -> Result<Cow<'a, str>> {
        self.pos += 1; // "
        let start = self.pos;
        self.plain_run()?;
        if self.bytes[self.pos] == b'"' {
            self.pos += 1;
            return Ok(Cow::Borrowed(&self.text[start..self.pos - 1]));
        }
        let mut owned = String::from(&self.text[start..self.pos]);
        loop {
            // At a backslash or a quote.
            if self.bytes[self.pos] == b'"' {
                self.pos += 1;
                return Ok(Cow::Owned(owned));
            }
            self.pos += 1; // \
            owned.push(self.escape()?);
            let run = self.pos;
            self.plain_run()?;
            owned.push_str(&self.text[run..self.pos]);
        }
    }

    fn skip_string(&mut self) -> Result<()> {
        self.pos += 1; // "
        loop {
            self.plain_run()?;
            if self.bytes[self.pos] == b'"' {
                self.pos += 1;
                return Ok(());
            }
            self.pos += 1; // \
            self.escape()?;
        }
    }

    /// The extent of a number at the cursor, checked against the grammar; whether it is an
    /// integer (no fraction, no exponent).
    fn number_span(&mut self) -> Result<(usize, bool)> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return self.error("number with leading zero is not allowed");
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return self.error("no digit after sign"),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.error("no digit after the decimal point");
            }
            self.digits();
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return self.error("no digit in the exponent");
            }
            self.digits();
            integer = false;
        }
        Ok((start, integer))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn number(&mut self) -> Result<Value<'a>> {
        let (start, integer) = self.number_span()?;
        let text = &self.text[start..self.pos];
        if integer {
            if let Some(value) = parse_integer(text) {
                return Ok(value);
            }
        }
        // A fraction, an exponent, or an integer beyond 64 bits: a float, as orjson reads it.
        let float: f64 = text.parse().expect("the grammar was checked");
        if float.is_infinite() {
            self.pos = start;
            return self.error("number is infinity when parsed as double");
        }
        Ok(Value::Float(float))
    }

    fn skip_number(&mut self) -> Result<()> {
        let (start, integer) = self.number_span()?;
        // Only an exponent or a long integer can overflow to infinity.
        if !integer || self.pos - start > 18 {
            let end = self.pos;
            self.pos = start;
            self.number()?;
            debug_assert_eq!(self.pos, end);
        }
        Ok(())
    }

    /// A whole value as a tree (for canonical labels of arrays and objects).
    pub fn tree(&mut self, depth: usize) -> Result<Tree> {
        self.ws();
        Ok(match self.peek() {
            Some(b'{') => {
                let mut members = Vec::new();
                self.object(depth + 1, |scanner, key, depth| {
                    members.push((key.into_owned(), scanner.tree(depth)?));
                    Ok(())
                })?;
                Tree::Object(members)
            }
            Some(b'[') => {
                if depth + 1 > MAX_DEPTH {
                    return self.error("depth limit exceeded");
                }
                self.pos += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        items.push(self.tree(depth + 1)?);
                        self.ws();
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return self.error("expected ',' or ']'"),
                        }
                    }
                }
                Tree::Array(items)
            }
            _ => match self.value(depth)? {
                Value::Null => Tree::Null,
                Value::Bool(b) => Tree::Bool(b),
                Value::Int(i) => Tree::Int(i),
                Value::UInt(u) => Tree::UInt(u),
                Value::Float(f) => Tree::Float(f),
                Value::Str(s) => Tree::Str(s.into_owned()),
                Value::Array(_) | Value::Object(_) => unreachable!("containers are matched above"),
            },
        })
    }
}

/// An integer of at most 64 bits (signed below zero, unsigned above), or None.
fn parse_integer(text: &str) -> Option<Value<'static>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut magnitude: u64 = 0;
    for b in digits.bytes() {
        magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    if negative {
        if magnitude <= i64::MAX as u64 {
            Some(Value::Int(-(magnitude as i64)))
        } else if magnitude == i64::MAX as u64 + 1 {
            Some(Value::Int(i64::MIN))
        } else {
            None
        }
    } else if magnitude <= i64::MAX as u64 {
        Some(Value::Int(magnitude as i64))
    } else {
        Some(Value::UInt(magnitude))
    }
}

/// A whole JSON value, owned: what labels of arrays and objects are made from.
#[derive(Clone, Debug, PartialEq)]
pub enum Tree {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Array(Vec<Tree>),
    /// Members in document order; a repeated key's last value wins when it is read.
    Object(Vec<(String, Tree)>),
}

/// Parse a whole document (validated, or a container's text from `Value`).
pub fn parse_tree(text: &str) -> Result<Tree> {
    let mut scanner = Scanner::new(text);
    let tree = scanner.tree(0)?;
    scanner.end()?;
    Ok(tree)
}

/// Append a string as Python's `json.dumps(..., ensure_ascii=False)` writes it.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escaped.is_empty() {
            out.push_str(&format!("\\u{b:04x}"));
        } else {
            out.push_str(escaped);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// Append a tree as compact JSON with sorted keys, exactly as Python's
/// `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes the
/// value orjson decoded: floats as `repr` (`2.0`, `1e-07`), a repeated key once, with its last value.
pub fn write_canonical(out: &mut String, tree: &Tree) {
    match tree {
        Tree::Null => out.push_str("null"),
        Tree::Bool(true) => out.push_str("true"),
        Tree::Bool(false) => out.push_str("false"),
        Tree::Int(i) => out.push_str(&i.to_string()),
        Tree::UInt(u) => out.push_str(&u.to_string()),
        Tree::Float(f) => out.push_str(&crate::number::python_repr(*f)),
        Tree::Str(s) => write_string(out, s),
        Tree::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Tree::Object(members) => {
            // Sorted by key (code points: the order of UTF-8 bytes), the last of equal keys kept.
            let mut order: Vec<usize> = (0..members.len()).collect();
            order.sort_by(|&a, &b| members[a].0.cmp(&members[b].0).then(a.cmp(&b)));
            out.push('{');
            let mut first = true;
            for (position, &index) in order.iter().enumerate() {
                let next_same = order
                    .get(position + 1)
                    .is_some_and(|&next| members[next].0 == members[index].0);
                if next_same {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                write_string(out, &members[index].0);
                out.push(':');
                write_canonical(out, &members[index].1);
            }
            out.push('}');
        }
    }
}

/// The canonical JSON of a container's text (see `write_canonical`).
pub fn canonical(text: &str) -> String {
    let tree = parse_tree(text).expect("a captured container was validated");
    let mut out = String::with_capacity(text.len());
    write_canonical(&mut out, &tree);
    out
}

/// Validate a whole document (no capture).
pub fn validate(bytes: &[u8]) -> Result<()> {
    let text = text(bytes)?;
    let mut scanner = Scanner::new(text);
    scanner.skip(0)?;
    scanner.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_first_special_byte_is_found_eight_at_a_time(
            bytes in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x20, 0x20u8..=0xff], 0..40),
            plain in 0usize..40,
        ) {
            let mut text = vec![b'a'; plain];
            text.extend(&bytes);
            let expected = text.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(first_special(&text), expected);
        }
    }

    fn judge(doc: &str) -> std::result::Result<(), &'static str> {
        validate(doc.as_bytes()).map_err(|e| e.message)
    }

    #[test]
    fn accepts_what_orjson_accepts() {
        for doc in [
            "1",
            " 1 ",
            "\t1\n",
            "-0",
            "0e5",
            "1E5",
            "1e+5",
            "1e-400",
            "18446744073709551616",
            "\"\\u00e9\"",
            "\"\\ud83d\\ude00\"",
            "\"\u{7f}\"",
            "{\"a\":1,\"a\":2}",
            "[]",
            "{}",
            "[1, 2 ,3]",
            "{\"a\" : [true, false, null]}",
        ] {
            assert_eq!(judge(doc), Ok(()), "{doc}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(judge(&deep), Ok(()));
    }

    #[test]
    fn refuses_what_orjson_refuses() {
        for doc in [
            "",
            " ",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "1e400",
            "-1e400",
            "nul",
            "[1,]",
            "{\"a\":1,}",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\u{1f}\"",
            "1\u{c}",
            "NaN",
            "Infinity",
            "[1] x",
            "{\"a\"}",
            "{1:2}",
            "\"\\x\"",
            "'a'",
        ] {
            assert!(judge(doc).is_err(), "{doc:?}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(judge(&deep), Err("depth limit exceeded"));
        assert!(validate(b"\xef\xbb\xbf{}").is_err());
        assert!(validate(b"\"\xed\xa0\x80\"").is_err());
        assert!(validate(b"\"a\xff\"").is_err());
        let long = format!("1{}", "0".repeat(400));
        assert_eq!(judge(&long), Err("number is infinity when parsed as double"));
        assert_eq!(judge(&format!("[{long}]")), Err("number is infinity when parsed as double"));
    }

    #[test]
    fn integers_beyond_64_bits_are_floats() {
        fn value(t: &str) -> Value<'_> {
            Scanner::new(t).value(0).unwrap()
        }
        assert_eq!(value("18446744073709551615"), Value::UInt(u64::MAX));
        assert_eq!(value("18446744073709551616"), Value::Float(1.8446744073709552e19));
        assert_eq!(value("-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(value("-9223372036854775809"), Value::Float(-9.223372036854776e18));
        assert_eq!(value("-0"), Value::Int(0));
        assert_eq!(value("\"a\\nb\""), Value::Str(Cow::Owned("a\nb".into())));
        assert!(matches!(value("\"ab\""), Value::Str(Cow::Borrowed("ab"))));
    }

    #[test]
    fn canonical_json_is_pythons() {
        assert_eq!(
            canonical("{\"b\": 1, \"a\": [2.0, 1e-7, 1e16, \"\\u00e9\\n\\u0001\"]}"),
            "{\"a\":[2.0,1e-07,1e+16,\"é\\n\\u0001\"],\"b\":1}"
        );
        assert_eq!(canonical("{\"a\":1,\"a\":2,\"A\":3}"), "{\"A\":3,\"a\":2}");
        assert_eq!(canonical("[-0.0, 18446744073709551616]"), "[-0.0,1.8446744073709552e+19]");
    }
}
