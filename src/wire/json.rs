//! JSON (RFC 8259) at the byte level: a zero-copy reader for message headers and values, a
//! validating skipper for payload spans, the reader that drives a [`Sink`] when a JSON payload
//! is transcoded, and a compact writer.
//!
//! The reader trusts nothing: input may be invalid UTF-8 (RawSocket JSON frames get no prior
//! check), so every string is validated, and bytes outside strings must be JSON grammar.
//! Strings without escapes are borrowed from the frame; escaped ones are unescaped into an
//! owned `String`. Hand-written rather than simd-json because simd-json rewrites its input in
//! place and, for a ~60-byte header, its setup costs more than the whole scan (see
//! `benches/wire.rs`, group `json_call_header_scanner`: full decode of a small CALL 151 ns vs
//! copy + simd-json tape + header fields 236 ns, criterion medians on the shared 2-core box;
//! simd-json also cannot hand back the payload's byte span).

use std::borrow::Cow;

use base64::Engine as _;

use super::sink::{JsonWriter, Sink};
use super::value::{Dict, Value};
use super::{check_large_dict, push_entry, EncodeError, Fail, BASE64, MAX_DEPTH};

/// Classes of bytes inside a JSON string, for the scanning loop.
const PLAIN: u8 = 0;
const QUOTE: u8 = 1;
const BACKSLASH: u8 = 2;
const CONTROL: u8 = 3;
const NON_ASCII: u8 = 4;

static STRING_CLASS: [u8; 256] = {
    let mut table = [PLAIN; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if i < 0x20 {
            CONTROL
        } else if i == b'"' as usize {
            QUOTE
        } else if i == b'\\' as usize {
            BACKSLASH
        } else if i >= 0x80 {
            NON_ASCII
        } else {
            PLAIN
        };
        i += 1;
    }
    table
};

/// A number as JSON wrote it: integers keep integer type, anything with a fraction or exponent
/// (or too large for 64 bits, or `-0`) is a float.
#[derive(Copy, Clone, Debug, PartialEq)]
pub(crate) enum Number {
    UInt(u64),
    Int(i64),
    Float(f64),
}

/// Where a scanned string lies in the buffer (between the quotes).
struct StrSpan {
    start: usize,
    end: usize,
    escaped: bool,
}

/// The value of the run of ASCII digits at the start of `digits` and its length (0 when it
/// starts with something else); `None` when the value does not fit in a u64. Takes eight digits
/// per step (SWAR): the ids, publication ids and timestamps a WAMP peer reads are mostly 10 to
/// 19 digits long. Every message starts with a one- or two-digit code, which is read without a
/// word step: that costs more than the whole code (and two bytes' look costs a long id little).
#[inline]
pub(crate) fn leading_digits(digits: &[u8]) -> Option<(u64, usize)> {
    let digit = |at: usize| {
        digits
            .get(at)
            .map(|d| d.wrapping_sub(b'0'))
            .filter(|d| *d <= 9)
            .map(u64::from)
    };
    match (digit(0), digit(1)) {
        (None, _) => return Some((0, 0)),
        (Some(first), None) => return Some((first, 1)),
        (Some(first), Some(second)) if digit(2).is_none() => {
            return Some((first * 10 + second, 2));
        }
        _ => {}
    }
    let mut value: u64 = 0;
    let mut i = 0;
    while let Some(chunk) = digits.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        if !eight_digits_in(word) {
            break;
        }
        value = value
            .checked_mul(100_000_000)?
            .checked_add(eight_digits_value(word))?;
        i += 8;
    }
    // Fewer than eight digits left: when eight bytes can still be loaded, count the digits
    // among them and take them in one step, as the tail of a digit-padded word.
    if let Some(chunk) = digits.get(i..i + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        let n = leading_digit_bytes(word);
        if n == 0 {
            return Some((value, i));
        }
        let shift = 8 * (8 - n as u32);
        let padded = (word << shift) | (0x3030_3030_3030_3030u64 >> (8 * n as u32));
        let tail = eight_digits_value(padded);
        let value = value.checked_mul(POWERS_OF_TEN[n])?.checked_add(tail)?;
        return Some((value, i + n));
    }
    while let Some(&d) = digits.get(i) {
        if !d.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        i += 1;
    }
    Some((value, i))
}

const POWERS_OF_TEN: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// How many of the eight bytes of `word` (loaded little-endian) are ASCII digits before the
/// first that is not; fewer than 8 (callers handle a full word with `eight_digits_in`).
#[inline]
fn leading_digit_bytes(word: u64) -> usize {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    // A byte is a digit when its high nibble is 3 before and after adding 6. A carry out of a
    // byte >= 0xFA only disturbs bytes after that (non-digit) byte, which are not counted.
    let not_digit =
        ((word & HIGH) ^ THREES) | ((word.wrapping_add(0x0606_0606_0606_0606) & HIGH) ^ THREES);
    (not_digit.trailing_zeros() / 8).min(7) as usize
}

/// Whether all eight bytes of `word` are ASCII digits: each byte's high nibble is 3, and stays 3
/// after adding 6 (which moves ':'..='?' to 0x40 and up).
#[inline]
fn eight_digits_in(word: u64) -> bool {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    (word & HIGH) | ((word.wrapping_add(0x0606_0606_0606_0606) & HIGH) >> 4)
        == 0x3333_3333_3333_3333
}

/// The value of eight ASCII digits loaded little-endian (first digit in the lowest byte):
/// pairs, then quads, then the whole, by multiply-and-shift.
#[inline]
fn eight_digits_value(word: u64) -> u64 {
    const MASK: u64 = 0x0000_00FF_0000_00FF;
    const MUL1: u64 = 100 + (1_000_000 << 32);
    const MUL2: u64 = 1 + (10_000 << 32);
    let mut v = word - 0x3030_3030_3030_3030;
    v = v.wrapping_mul(10).wrapping_add(v >> 8);
    ((v & MASK)
        .wrapping_mul(MUL1)
        .wrapping_add(((v >> 16) & MASK).wrapping_mul(MUL2)))
        >> 32
}

/// A cursor over JSON text. `elements` counts the top-level message array's elements read so
/// far (used by the message decoder to place separators).
pub(crate) struct JsonReader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) elements: usize,
}

impl<'a> JsonReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        JsonReader {
            buf,
            pos: 0,
            elements: 0,
        }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    pub(crate) fn skip_ws(&mut self) {
        while let Some(&b) = self.buf.get(self.pos) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[cold]
    pub(crate) fn bad(&self, what: &str) -> Fail {
        self.bad_at(self.pos, what)
    }

    #[cold]
    fn bad_at(&self, pos: usize, what: &str) -> Fail {
        Fail::Bad(format!("malformed JSON at byte {pos}: {what}").into())
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), Fail> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.bad(what))
        }
    }

    /// Scans a string whose opening quote is at `pos`: checks escapes, control characters and
    /// UTF-8, and leaves `pos` after the closing quote.
    #[inline]
    fn scan_str(&mut self) -> Result<StrSpan, Fail> {
        let buf = self.buf;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        let mut ascii = true;
        loop {
            // Fast path: skip plain ASCII eight bytes at a time (most URIs and keys are). The
            // lowest flagged byte of the SWAR mask is exactly the first special byte.
            while let Some(chunk) = buf.get(i..i + 8) {
                let Ok(word) = <[u8; 8]>::try_from(chunk) else {
                    break;
                };
                let special = special_bytes(u64::from_le_bytes(word));
                if special != 0 {
                    i += (special.trailing_zeros() / 8) as usize;
                    break;
                }
                i += 8;
            }
            let Some(&b) = buf.get(i) else {
                return Err(self.bad_at(i, "unterminated string"));
            };
            match STRING_CLASS[b as usize] {
                PLAIN => i += 1,
                QUOTE => break,
                BACKSLASH => {
                    escaped = true;
                    match buf.get(i + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                        Some(b'u') => {
                            let hex_ok = buf
                                .get(i + 2..i + 6)
                                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
                            if !hex_ok {
                                return Err(self.bad_at(i, "invalid \\u escape"));
                            }
                            i += 6;
                        }
                        _ => return Err(self.bad_at(i, "invalid escape in string")),
                    }
                }
                CONTROL => return Err(self.bad_at(i, "unescaped control character in string")),
                _ => {
                    ascii = false;
                    i += 1;
                }
            }
        }
        if !ascii && std::str::from_utf8(&buf[start..i]).is_err() {
            return Err(self.bad_at(start, "invalid UTF-8 in string"));
        }
        self.pos = i + 1;
        Ok(StrSpan {
            start,
            end: i,
            escaped,
        })
    }

    /// Reads a string (opening quote at `pos`) as text: borrowed unless it has escapes. No
    /// binary interpretation (used for keys and header fields).
    #[inline]
    pub(crate) fn read_str(&mut self) -> Result<Cow<'a, str>, Fail> {
        let span = self.scan_str()?;
        let raw = &self.buf[span.start..span.end];
        // SAFETY: scan_str accepted these bytes only if they are ASCII or valid UTF-8.
        let text = unsafe { std::str::from_utf8_unchecked(raw) };
        if span.escaped {
            unescape(text)
                .map(Cow::Owned)
                .map_err(|what| self.bad_at(span.start, what))
        } else {
            Ok(Cow::Borrowed(text))
        }
    }

    /// Reads a string value: text, or binary when it starts with NUL (`"\u0000"+base64`).
    fn read_str_value(&mut self) -> Result<Value<'a>, Fail> {
        let start = self.pos;
        match self.read_str()? {
            Cow::Owned(text) if text.starts_with('\0') => BASE64
                .decode(&text.as_bytes()[1..])
                .map(|bytes| Value::Bin(Cow::Owned(bytes)))
                .map_err(|_| self.bad_at(start, "invalid base64 in binary string")),
            text => Ok(Value::Str(text)),
        }
    }

    /// Scans a number at `pos` per the RFC 8259 grammar (no leading zeros, no `+`, digits after
    /// `.` and `e`); returns where it started and whether it is integral.
    fn scan_number(&mut self) -> Result<(usize, bool), Fail> {
        let buf = self.buf;
        let start = self.pos;
        let mut i = start;
        if buf.get(i) == Some(&b'-') {
            i += 1;
        }
        match buf.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                i += 1;
                while buf.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return Err(self.bad_at(i, "invalid number")),
        }
        let mut integral = true;
        if buf.get(i) == Some(&b'.') {
            integral = false;
            i += 1;
            if !buf.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(self.bad_at(i, "invalid number: digit expected after '.'"));
            }
            while buf.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        if matches!(buf.get(i), Some(b'e' | b'E')) {
            integral = false;
            i += 1;
            if matches!(buf.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !buf.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(self.bad_at(i, "invalid number: digit expected in exponent"));
            }
            while buf.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        self.pos = i;
        Ok((start, integral))
    }

    /// Reads a number at `pos`.
    pub(crate) fn read_number(&mut self) -> Result<Number, Fail> {
        let (start, integral) = self.scan_number()?;
        let text = &self.buf[start..self.pos];
        if integral {
            let (negative, digits) = match text.split_first() {
                Some((b'-', rest)) => (true, rest),
                _ => (false, text),
            };
            if let Some(magnitude) = parse_digits(digits) {
                if !negative {
                    return Ok(Number::UInt(magnitude));
                }
                if magnitude != 0 && magnitude <= 1 << 63 {
                    // 2^63 as i64 is i64::MIN, whose negation wraps to itself: exactly -2^63.
                    return Ok(Number::Int((magnitude as i64).wrapping_neg()));
                }
            }
        }
        // Fractions, exponents, -0 and integers beyond 64 bits are floats.
        let text = std::str::from_utf8(text).map_err(|_| self.bad_at(start, "invalid number"))?;
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Number::Float(f)),
            _ => Err(self.bad_at(start, "number out of range")),
        }
    }

    /// Reads a non-negative integer (an id or a type code). Anything else is `WrongType`.
    #[inline]
    pub(crate) fn read_uint(&mut self) -> Result<u64, Fail> {
        let buf = self.buf;
        let start = self.pos;
        let mut i = start;
        let mut value: u64 = 0;
        match buf.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                let (parsed, len) = leading_digits(&buf[i..]).ok_or(Fail::WrongType)?;
                value = parsed;
                i += len;
            }
            Some(b'-' | b'"' | b'[' | b'{' | b't' | b'f' | b'n') => return Err(Fail::WrongType),
            _ => return Err(self.bad("value expected")),
        }
        // A fraction or exponent makes it a float, and floats are never ids.
        if matches!(buf.get(i), Some(b'.' | b'e' | b'E')) {
            return Err(Fail::WrongType);
        }
        self.pos = i;
        Ok(value)
    }

    /// Reads any value at `pos`; `depth` is the nesting level a container here would have.
    pub(crate) fn read_value(&mut self, depth: usize) -> Result<Value<'a>, Fail> {
        match self.peek() {
            Some(b'{') => self.read_object(depth, false).map(Value::Dict),
            Some(b'[') => self.read_array(depth).map(Value::List),
            Some(b'"') => self.read_str_value(),
            Some(b't') => self.literal(b"true").map(|_| Value::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|_| Value::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|_| Value::Null),
            Some(b'-' | b'0'..=b'9') => Ok(match self.read_number()? {
                Number::UInt(u) => Value::UInt(u),
                Number::Int(i) => Value::Int(i),
                Number::Float(f) => Value::Float(f),
            }),
            _ => Err(self.bad("value expected")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Fail> {
        if self.buf.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.bad("invalid literal"))
        }
    }

    fn enter(&self, depth: usize) -> Result<(), Fail> {
        if depth > MAX_DEPTH {
            Err(self.bad("nesting too deep"))
        } else {
            Ok(())
        }
    }

    fn read_array(&mut self, depth: usize) -> Result<Vec<Value<'a>>, Fail> {
        self.enter(depth)?;
        self.pos += 1;
        let mut list = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(list);
        }
        loop {
            self.skip_ws();
            list.push(self.read_value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(list);
                }
                _ => return Err(self.bad("expected ',' or ']'")),
            }
        }
    }

    /// Reads an object (opening brace at `pos`) into a [`Dict`]. With `drop_null`, keys whose
    /// value is `null` are left out (Options/Details: null means absent).
    pub(crate) fn read_object(&mut self, depth: usize, drop_null: bool) -> Result<Dict<'a>, Fail> {
        self.enter(depth)?;
        self.pos += 1;
        let mut dict = Dict::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(dict);
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.bad("string key expected"));
            }
            let key = self.read_str()?;
            self.skip_ws();
            self.expect(b':', "':' expected")?;
            self.skip_ws();
            let value = self.read_value(depth + 1)?;
            if !(drop_null && value == Value::Null) {
                push_entry(&mut dict, key, value)?;
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.bad("expected ',' or '}'")),
            }
        }
        check_large_dict(&dict)?;
        Ok(dict)
    }

    /// Skips one value at `pos`, validating it fully (grammar, escapes, UTF-8, depth).
    pub(crate) fn skip_value(&mut self, depth: usize) -> Result<(), Fail> {
        match self.peek() {
            Some(b'{') => {
                self.enter(depth)?;
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.bad("string key expected"));
                    }
                    self.scan_str()?;
                    self.skip_ws();
                    self.expect(b':', "':' expected")?;
                    self.skip_ws();
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.bad("expected ',' or '}'")),
                    }
                }
            }
            Some(b'[') => {
                self.enter(depth)?;
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(self.bad("expected ',' or ']'")),
                    }
                }
            }
            Some(b'"') => self.scan_str().map(|_| ()),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.scan_number().map(|_| ()),
            _ => Err(self.bad("value expected")),
        }
    }

    /// Pass 1 of JSON -> MessagePack: validates a value and records, in pre-order, the
    /// element count of every container (MessagePack headers need it before the elements).
    fn count_containers(&mut self, depth: usize, counts: &mut Vec<u32>) -> Result<(), Fail> {
        let open = match self.peek() {
            Some(b'[') => b']',
            Some(b'{') => b'}',
            _ => return self.skip_value(depth),
        };
        self.enter(depth)?;
        self.pos += 1;
        let slot = counts.len();
        counts.push(0);
        self.skip_ws();
        if self.peek() == Some(open) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if open == b'}' {
                if self.peek() != Some(b'"') {
                    return Err(self.bad("string key expected"));
                }
                self.scan_str()?;
                self.skip_ws();
                self.expect(b':', "':' expected")?;
                self.skip_ws();
            }
            self.count_containers(depth + 1, counts)?;
            counts[slot] += 1;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b) if b == open => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.bad("expected ',' or the end of the container")),
            }
        }
    }

    /// Pass 2 of transcoding: drives `sink` with one value, taking container sizes from
    /// `counts` (pass 1 validated the text, so separators are only stepped over).
    fn drive<S: Sink>(
        &mut self,
        sink: &mut S,
        counts: &[u32],
        next: &mut usize,
    ) -> Result<(), EncodeError> {
        let fail = |f: Fail| EncodeError::new(format!("payload: {}", f.describe()));
        let is_object = match self.peek() {
            Some(b'[') => false,
            Some(b'{') => true,
            Some(b'"') => {
                return match self.read_str_value().map_err(fail)? {
                    Value::Bin(bytes) => sink.bin(&bytes),
                    Value::Str(text) => sink.str(&text),
                    _ => Err(fail(self.bad("string expected"))),
                };
            }
            Some(b't') => {
                return self
                    .literal(b"true")
                    .map_err(fail)
                    .and_then(|()| sink.bool(true))
            }
            Some(b'f') => {
                return self
                    .literal(b"false")
                    .map_err(fail)
                    .and_then(|()| sink.bool(false))
            }
            Some(b'n') => {
                return self
                    .literal(b"null")
                    .map_err(fail)
                    .and_then(|()| sink.null())
            }
            Some(b'-' | b'0'..=b'9') => {
                return match self.read_number().map_err(fail)? {
                    Number::UInt(u) => sink.uint(u),
                    Number::Int(i) => sink.int(i),
                    Number::Float(f) => sink.float(f),
                };
            }
            _ => return Err(fail(self.bad("value expected"))),
        };
        let count = *counts
            .get(*next)
            .ok_or_else(|| fail(self.bad("container count missing")))?;
        *next += 1;
        if is_object {
            sink.begin_dict(count)?;
        } else {
            sink.begin_list(count)?;
        }
        self.pos += 1;
        for index in 0..count {
            self.skip_ws();
            if index > 0 {
                self.pos += 1; // the ',' checked in pass 1
                self.skip_ws();
            }
            if is_object {
                let key = self.read_str().map_err(fail)?;
                sink.key(index, &key)?;
                self.skip_ws();
                self.pos += 1; // the ':' checked in pass 1
                self.skip_ws();
            } else {
                sink.item(index);
            }
            self.drive(sink, counts, next)?;
        }
        self.skip_ws();
        self.pos += 1; // the closing bracket, checked in pass 1
        if is_object {
            sink.end_dict();
        } else {
            sink.end_list();
        }
        Ok(())
    }
}

/// Flags (high bit of each byte) the bytes of `word` that need the careful path of the string
/// scanner: a quote, a backslash, a control character or a non-ASCII byte. SWAR "has zero
/// byte" tricks: higher flags may be false positives after a true one, the lowest is exact.
#[inline]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let quote = zero_bytes(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_bytes(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    quote | backslash | control | (word & HIGHS)
}

/// Parses ASCII digits into a u64; `None` on overflow.
#[inline]
fn parse_digits(digits: &[u8]) -> Option<u64> {
    let mut value: u64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(d.wrapping_sub(b'0')))?;
    }
    Some(value)
}

fn hex4(bytes: Option<&[u8]>) -> Option<u32> {
    let bytes = bytes?;
    let text = std::str::from_utf8(bytes).ok()?;
    u32::from_str_radix(text, 16).ok()
}

/// Unescapes the text between the quotes of a scanned (so syntactically valid) JSON string.
fn unescape(raw: &str) -> Result<String, &'static str> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(raw.get(run_start..i).ok_or("invalid escape")?);
        let kind = bytes.get(i + 1).copied().ok_or("invalid escape")?;
        i += 2;
        match kind {
            b'"' => out.push('"'),
            b'\\' => out.push('\\'),
            b'/' => out.push('/'),
            b'b' => out.push('\u{8}'),
            b'f' => out.push('\u{c}'),
            b'n' => out.push('\n'),
            b'r' => out.push('\r'),
            b't' => out.push('\t'),
            b'u' => {
                let first = hex4(bytes.get(i..i + 4)).ok_or("invalid \\u escape")?;
                i += 4;
                let code = match first {
                    0xD800..=0xDBFF => {
                        if bytes.get(i) != Some(&b'\\') || bytes.get(i + 1) != Some(&b'u') {
                            return Err("lone surrogate in \\u escape");
                        }
                        let second = hex4(bytes.get(i + 2..i + 6)).ok_or("invalid \\u escape")?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err("lone surrogate in \\u escape");
                        }
                        i += 6;
                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err("lone surrogate in \\u escape"),
                    _ => first,
                };
                out.push(char::from_u32(code).ok_or("invalid \\u escape")?);
            }
            _ => return Err("invalid escape"),
        }
        run_start = i;
    }
    out.push_str(raw.get(run_start..).ok_or("invalid escape")?);
    Ok(out)
}

/// Drives `sink` with the `count` comma-separated JSON elements of a payload span. Two passes
/// over the text: one validates and counts container sizes (binary serializers' headers need
/// them first), one drives; no value tree is built.
pub(crate) fn drive_payload<S: Sink>(
    raw: &[u8],
    count: u8,
    sink: &mut S,
) -> Result<(), EncodeError> {
    let fail = |f: Fail| EncodeError::new(format!("payload: {}", f.describe()));
    let mut counts = Vec::new();
    let mut reader = JsonReader::new(raw);
    for index in 0..count {
        reader.skip_ws();
        if index > 0 {
            reader
                .expect(b',', "',' expected between payload elements")
                .map_err(fail)?;
            reader.skip_ws();
        }
        reader.count_containers(2, &mut counts).map_err(fail)?;
    }
    reader.skip_ws();
    if reader.pos != raw.len() {
        return Err(fail(reader.bad("unexpected bytes after the payload")));
    }
    let mut reader = JsonReader::new(raw);
    let mut next = 0;
    for index in 0..count {
        reader.skip_ws();
        if index > 0 {
            reader.pos += 1; // the ',' checked in pass 1
            reader.skip_ws();
        }
        sink.item(u32::from(index));
        reader.drive(sink, &counts, &mut next)?;
    }
    Ok(())
}

/// The JSON writer: compact output, strings escaped per RFC 8259, non-ASCII passed through.
pub(crate) mod write {
    use base64::Engine as _;

    use super::super::sink::{self, JsonWriter};
    use super::super::value::Dict;
    #[cfg(test)]
    use super::super::value::Value;
    use super::super::{EncodeError, BASE64};

    /// For each byte: 0 = copy, b'u' = `\u00XX`, else the character after the backslash.
    static ESCAPE: [u8; 256] = {
        let mut table = [0u8; 256];
        let mut i = 0;
        while i < 0x20 {
            table[i] = b'u';
            i += 1;
        }
        table[0x08] = b'b';
        table[0x0c] = b'f';
        table[b'\n' as usize] = b'n';
        table[b'\r' as usize] = b'r';
        table[b'\t' as usize] = b't';
        table[b'"' as usize] = b'"';
        table[b'\\' as usize] = b'\\';
        table
    };

    const HEX: &[u8; 16] = b"0123456789abcdef";

    #[inline]
    pub(crate) fn uint(out: &mut Vec<u8>, v: u64) {
        out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    #[inline]
    pub(crate) fn int(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }

    /// Floats keep a fraction or exponent (`1.0`, not `1`) so they stay floats when read back.
    pub(crate) fn f64(out: &mut Vec<u8>, v: f64) -> Result<(), EncodeError> {
        if !v.is_finite() {
            return Err(EncodeError::new(format!(
                "{v} cannot be represented in JSON"
            )));
        }
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
        Ok(())
    }

    pub(crate) fn str(out: &mut Vec<u8>, s: &str) {
        let bytes = s.as_bytes();
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        let mut run_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            // Jump over bytes that need no escape, eight at a time; the lowest flagged byte
            // is exactly the first one that does.
            if let Some(chunk) = bytes.get(i..i + 8) {
                if let Ok(word) = <[u8; 8]>::try_from(chunk) {
                    let flagged = needs_escape(u64::from_le_bytes(word));
                    if flagged == 0 {
                        i += 8;
                        continue;
                    }
                    i += (flagged.trailing_zeros() / 8) as usize;
                }
            }
            let b = bytes[i];
            let escape = ESCAPE[b as usize];
            if escape == 0 {
                i += 1;
                continue;
            }
            out.extend_from_slice(&bytes[run_start..i]);
            if escape == b'u' {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            } else {
                out.push(b'\\');
                out.push(escape);
            }
            i += 1;
            run_start = i;
        }
        out.extend_from_slice(&bytes[run_start..]);
        out.push(b'"');
    }

    /// A string in a value position (not a key or a header field): one that starts with NUL
    /// would read back as binary (`"\u0000"+base64`, digest §7), so JSON cannot carry it.
    pub(crate) fn str_value(out: &mut Vec<u8>, s: &str) -> Result<(), EncodeError> {
        if s.starts_with('\0') {
            return Err(EncodeError::new(
                "a string that starts with NUL cannot be represented in JSON (it would read as binary)",
            ));
        }
        str(out, s);
        Ok(())
    }

    /// Flags (high bit of each byte) the bytes of `word` JSON requires escaped: `"`, `\\` and
    /// control characters. Non-ASCII bytes pass through unflagged. Lowest flag exact.
    #[inline]
    fn needs_escape(word: u64) -> u64 {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGHS: u64 = 0x8080_8080_8080_8080;
        let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
        let quote = zero_bytes(word ^ (ONES * u64::from(b'"')));
        let backslash = zero_bytes(word ^ (ONES * u64::from(b'\\')));
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        quote | backslash | control
    }

    /// Binary as `"\u0000"+base64` (digest §7).
    pub(crate) fn bin(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(b"\"\\u0000");
        let start = out.len();
        out.resize(start + bytes.len().div_ceil(3) * 4, 0);
        let written = BASE64.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
        out.truncate(start + written);
        out.push(b'"');
    }

    /// Values are written through the JSON value sink, the one writer of JSON values.
    pub(crate) fn dict(out: &mut Vec<u8>, dict: &Dict<'_>) -> Result<(), EncodeError> {
        sink::dict_into(dict, &mut JsonWriter { out })
    }

    #[cfg(test)]
    pub(crate) fn value(out: &mut Vec<u8>, v: &Value<'_>) -> Result<(), EncodeError> {
        sink::value_into(v, &mut JsonWriter { out })
    }
}

impl Sink for JsonWriter<'_> {
    fn null(&mut self) -> Result<(), EncodeError> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn bool(&mut self, b: bool) -> Result<(), EncodeError> {
        self.out
            .extend_from_slice(if b { &b"true"[..] } else { &b"false"[..] });
        Ok(())
    }
    fn uint(&mut self, u: u64) -> Result<(), EncodeError> {
        write::uint(self.out, u);
        Ok(())
    }
    fn int(&mut self, i: i64) -> Result<(), EncodeError> {
        write::int(self.out, i);
        Ok(())
    }
    fn float(&mut self, f: f64) -> Result<(), EncodeError> {
        write::f64(self.out, f)
    }
    fn str(&mut self, s: &str) -> Result<(), EncodeError> {
        write::str_value(self.out, s)
    }
    fn bin(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        write::bin(self.out, b);
        Ok(())
    }
    fn begin_list(&mut self, _len: u32) -> Result<(), EncodeError> {
        self.out.push(b'[');
        Ok(())
    }
    fn item(&mut self, index: u32) {
        if index > 0 {
            self.out.push(b',');
        }
    }
    fn end_list(&mut self) {
        self.out.push(b']');
    }
    fn begin_dict(&mut self, _len: u32) -> Result<(), EncodeError> {
        self.out.push(b'{');
        Ok(())
    }
    /// Keys are never binary in JSON, so one starting with NUL is written as it is.
    fn key(&mut self, index: u32, key: &str) -> Result<(), EncodeError> {
        if index > 0 {
            self.out.push(b',');
        }
        write::str(self.out, key);
        self.out.push(b':');
        Ok(())
    }
    fn end_dict(&mut self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_runs_parse_like_the_standard_library() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut cases: Vec<String> = (0..2000)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let digits = 1 + (rng % 20) as usize;
                (rng >> 3).to_string()[..digits.min((rng >> 3).to_string().len())].to_string()
            })
            .collect();
        cases.extend(
            [
                "0",
                "9",
                "9999",
                "10000",
                "12345678",
                "123456789",
                "18446744073709551615",
                "18446744073709551616",
            ]
            .map(String::from),
        );
        cases.push("99999999999999999999".into());
        for digits in cases {
            let text = format!("{digits},:/ ");
            let expected = digits.parse::<u64>().ok().map(|v| (v, digits.len()));
            assert_eq!(leading_digits(text.as_bytes()), expected, "{digits}");
        }
        assert_eq!(leading_digits(b"x1"), Some((0, 0)));
        assert_eq!(leading_digits(b"1234567:"), Some((1_234_567, 7)));
        assert_eq!(leading_digits(b"12345678/"), Some((12_345_678, 8)));
        // Tails read as a padded word (eight bytes available) and digit by digit (fewer).
        for text in [
            "7,2,3,4,5,6,7,8",
            "1234567,abcdefgh",
            "123456789012,\"xx\"]]]]",
            "0000012]]]]]]]]",
            "18446744073709551615]]]]]]]]",
            "18446744073709551616]]]]]]]]",
            "9\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}\u{ff}",
        ] {
            let digits = text.bytes().take_while(u8::is_ascii_digit).count();
            let expected = text[..digits].parse::<u64>().ok().map(|v| (v, digits));
            assert_eq!(leading_digits(text.as_bytes()), expected, "{text}");
        }
    }

    fn value(text: &str) -> Result<Value<'_>, Fail> {
        let mut r = JsonReader::new(text.as_bytes());
        let v = r.read_value(1)?;
        assert_eq!(r.pos, text.len(), "value should consume all of {text:?}");
        Ok(v)
    }

    #[test]
    fn numbers_keep_their_kind() {
        assert_eq!(value("0").unwrap(), Value::UInt(0));
        assert_eq!(
            value("9007199254740993").unwrap(),
            Value::UInt(9007199254740993)
        );
        assert_eq!(
            value("18446744073709551615").unwrap(),
            Value::UInt(u64::MAX)
        );
        assert_eq!(
            value("18446744073709551616").unwrap(),
            Value::Float(18446744073709551616.0)
        );
        assert_eq!(value("-1").unwrap(), Value::Int(-1));
        assert_eq!(value("-9223372036854775808").unwrap(), Value::Int(i64::MIN));
        assert!(matches!(value("-0").unwrap(), Value::Float(f) if f == 0.0));
        assert_eq!(value("1.0").unwrap(), Value::Float(1.0));
        assert_eq!(value("1e3").unwrap(), Value::Float(1000.0));
        assert!(value("1e999").is_err());
    }

    #[test]
    fn number_grammar_is_strict() {
        for bad in ["+1", "1.", ".5", "1e", "-", "0x10", "1e+"] {
            let mut r = JsonReader::new(bad.as_bytes());
            let ok = r.read_value(1).is_ok() && r.pos == bad.len();
            assert!(!ok, "{bad:?} must not parse as a whole number");
        }
        // "01" parses "0" and stops: the caller then rejects the stray "1".
        let mut r = JsonReader::new(b"01");
        assert_eq!(r.read_value(1).unwrap(), Value::UInt(0));
        assert_eq!(r.pos, 1);
    }

    #[test]
    fn strings_borrow_or_unescape() {
        assert!(matches!(
            value(r#""abc""#).unwrap(),
            Value::Str(Cow::Borrowed("abc"))
        ));
        assert_eq!(
            value(r#""a\"b\\c\/\n\u00e9\ud83d\ude00""#).unwrap(),
            Value::Str("a\"b\\c/\né😀".into())
        );
        assert_eq!(
            value("\"h\u{e9}llo\"").unwrap(),
            Value::Str("h\u{e9}llo".into())
        );
        assert!(value(r#""\ud800""#).is_err(), "lone high surrogate");
        assert!(value(r#""\udc00x""#).is_err(), "lone low surrogate");
        assert!(value("\"a\tb\"").is_err(), "raw control character");
        assert!(value(r#""\x""#).is_err());
        assert!(value(r#""\u12""#).is_err());
        assert!(value("\"abc").is_err());
        let mut r = JsonReader::new(b"\"\xff\xfe\"");
        assert!(r.read_value(1).is_err(), "invalid UTF-8");
    }

    #[test]
    fn binary_strings() {
        assert_eq!(
            value(r#""\u0000AQID""#).unwrap(),
            Value::Bin(vec![1, 2, 3].into())
        );
        assert_eq!(value(r#""\u0000""#).unwrap(), Value::Bin(vec![].into()));
        assert!(value(r#""\u0000!!""#).is_err());
        let mut out = Vec::new();
        write::bin(&mut out, &[1, 2, 3]);
        assert_eq!(out, br#""\u0000AQID""#);
    }

    #[test]
    fn duplicate_keys_rejected_small_and_large() {
        assert!(value(r#"{"a":1,"a":2}"#).is_err());
        let mut big: String = (0..40).map(|i| format!("\"k{i}\":{i},")).collect();
        big.push_str("\"k7\":0");
        assert!(value(&format!("{{{big}}}")).is_err());
        let ok: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        assert!(value(&format!("{{{}}}", ok.join(","))).is_ok());
    }

    #[test]
    fn depth_is_bounded() {
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(value(&deep).is_err());
        let mut r = JsonReader::new(deep.as_bytes());
        assert!(r.skip_value(1).is_err());
        let ok = "[".repeat(64) + &"]".repeat(64);
        assert!(value(&ok).is_ok());
    }

    #[test]
    fn writer_escapes_at_every_offset_of_long_strings() {
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '😀'] {
            for at in 0..20 {
                let text: String = (0..20)
                    .map(|i| if i == at { special } else { 'x' })
                    .collect();
                let mut out = Vec::new();
                write::str(&mut out, &text);
                let mut r = JsonReader::new(&out);
                assert_eq!(
                    r.read_value(1).unwrap(),
                    Value::Str(text.clone().into()),
                    "{out:?}"
                );
                assert_eq!(r.pos, out.len());
            }
        }
    }

    #[test]
    fn writer_escapes() {
        let mut out = Vec::new();
        write::str(&mut out, "a\"b\\c\n\u{1}é");
        assert_eq!(std::str::from_utf8(&out).unwrap(), r#""a\"b\\c\n\u0001é""#);
        let mut out = Vec::new();
        write::f64(&mut out, 1.0).unwrap();
        assert_eq!(out, b"1.0");
        assert!(write::f64(&mut out, f64::NAN).is_err());
        assert!(write::f64(&mut out, f64::INFINITY).is_err());
    }

    /// Found by the msgpack_decode fuzz target: a MessagePack string starting with NUL was
    /// written to JSON as `"\u0000..."`, which every JSON reader takes for binary.
    #[test]
    fn a_string_value_starting_with_nul_is_not_written() {
        let mut out = Vec::new();
        assert!(write::value(&mut out, &Value::Str("\0AQI=".into())).is_err());
        assert!(write::value(&mut out, &Value::Str("a\0".into())).is_ok());
        let mut dict = Dict::new();
        dict.insert("\0key", Value::Str("v".into()));
        let mut out = Vec::new();
        write::dict(&mut out, &dict).unwrap();
        assert_eq!(out, br#"{"\u0000key":"v"}"#);
    }

    fn transcode_to_msgpack(raw: &[u8], count: u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        drive_payload(raw, count, &mut crate::wire::sink::MsgPackWriter { out })
    }

    #[test]
    fn transcode_counts_containers() {
        let mut out = Vec::new();
        transcode_to_msgpack(
            br#"[1,[],{"a":[true,null]}] , {"k":"\u0000AQ=="}"#,
            2,
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            [
                0x93, 0x01, 0x90, 0x81, 0xa1, b'a', 0x92, 0xc3, 0xc0, 0x81, 0xa1, b'k', 0xc4, 0x01,
                0x01
            ]
        );
        assert!(transcode_to_msgpack(b"[1,", 1, &mut Vec::new()).is_err());
        assert!(transcode_to_msgpack(b"[1] x", 1, &mut Vec::new()).is_err());
    }
}
