//! CBOR (RFC 8949) at the byte level: a bounds-checked zero-copy reader for message headers and
//! values, a validating skipper for payload spans, the reader that drives a [`Sink`] when a
//! CBOR payload is transcoded, and the CBOR writer (preferred, shortest heads; floats as
//! float64).
//!
//! What the reader accepts, where RFC 8949 leaves it to the application: every head width
//! (shortest form is not required), indefinite-length strings, arrays and maps, half, single and
//! double floats, `undefined` (read as null, as node-cbor writes JavaScript `undefined`), the
//! self-describe tag 55799, and bignums (tags 2 and 3) that fit in 64 bits. Any other tag, a
//! simple value other than false/true/null/undefined, a non-text map key, or an integer outside
//! [-2^63, 2^64) cannot become a [`Value`]: it is refused when values are read or a payload is
//! transcoded, but a payload forwarded from one CBOR session to another is only validated
//! (well-formed, UTF-8 text, bounded depth) and passes through untouched, tags and all.

use std::borrow::Cow;

use super::sink::{CborWriter, Sink};
use super::value::{Dict, Value};
use super::{check_large_dict, push_entry, EncodeError, Fail, MAX_DEPTH};

/// The "break" stop code that ends an indefinite-length item.
const BREAK: u8 = 0xff;

/// Additional information 31: indefinite length (major types 2-5) or break (major type 7).
const INDEFINITE: u8 = 31;

const MAJOR_UINT: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;

/// The self-describe tag (RFC 8949 §3.4.6): marks CBOR, means nothing else.
const TAG_SELF_DESCRIBE: u64 = 55799;
const TAG_POSITIVE_BIGNUM: u64 = 2;
const TAG_NEGATIVE_BIGNUM: u64 = 3;

/// A data item's initial byte and argument. `len` is `None` for indefinite length.
#[derive(Copy, Clone, Debug)]
struct ItemHead {
    major: u8,
    info: u8,
    arg: Option<u64>,
}

/// A cursor over CBOR bytes. `remaining` counts the message array's elements not yet read
/// (`None`: the array has indefinite length and ends at a break), for the message decoder.
pub(crate) struct CborReader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) remaining: Option<usize>,
}

impl<'a> CborReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        CborReader {
            buf,
            pos: 0,
            remaining: Some(0),
        }
    }

    #[cold]
    pub(crate) fn bad(&self, what: &str) -> Fail {
        Fail::Bad(format!("malformed CBOR at byte {}: {what}", self.pos).into())
    }

    #[cold]
    fn bad_at(&self, at: usize, what: &str) -> Fail {
        Fail::Bad(format!("malformed CBOR at byte {at}: {what}").into())
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// The major type of the next item, without consuming it.
    #[inline]
    pub(crate) fn peek_major(&self) -> Option<u8> {
        self.peek().map(|b| b >> 5)
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Fail> {
        let b = self
            .peek()
            .ok_or_else(|| self.bad("unexpected end of input"))?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        match end {
            Some(end) => {
                let bytes = &self.buf[self.pos..end];
                self.pos = end;
                Ok(bytes)
            }
            None => Err(self.bad("length runs past the end of input")),
        }
    }

    #[inline(always)]
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Fail> {
        let bytes = self.take(N)?;
        Ok(bytes.try_into().expect("take returns exactly N bytes"))
    }

    /// Reads an item's head. Indefinite length is only well-formed for strings, arrays and maps;
    /// a break (0xff) is returned as major 7 / info 31 for the caller to place.
    #[inline]
    fn head(&mut self) -> Result<ItemHead, Fail> {
        let at = self.pos;
        let initial = self.byte()?;
        let major = initial >> 5;
        let info = initial & 0x1f;
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24 => Some(u64::from(self.byte()?)),
            25 => Some(u64::from(u16::from_be_bytes(self.fixed()?))),
            26 => Some(u64::from(u32::from_be_bytes(self.fixed()?))),
            27 => Some(u64::from_be_bytes(self.fixed()?)),
            28..=30 => return Err(self.bad_at(at, "reserved additional information")),
            _ => {
                if matches!(major, MAJOR_UINT | MAJOR_NEGATIVE | MAJOR_TAG) {
                    return Err(self.bad_at(at, "indefinite length on a type that has none"));
                }
                None
            }
        };
        Ok(ItemHead { major, info, arg })
    }

    /// A length argument as `usize`.
    #[inline]
    fn length(&self, arg: u64) -> Result<usize, Fail> {
        usize::try_from(arg).map_err(|_| self.bad("length too large"))
    }

    fn enter(&self, depth: usize) -> Result<(), Fail> {
        if depth > MAX_DEPTH {
            Err(self.bad("nesting too deep"))
        } else {
            Ok(())
        }
    }

    /// Reads a non-negative integer (major type 0, any width). Anything else is `WrongType`.
    #[inline]
    pub(crate) fn read_uint(&mut self) -> Result<u64, Fail> {
        // The one- and two-byte forms first: request ids and message codes are read this way on
        // every frame.
        match self.peek() {
            Some(b @ 0x00..=0x17) => {
                self.pos += 1;
                return Ok(u64::from(b));
            }
            Some(0x18) => {
                self.pos += 1;
                return Ok(u64::from(self.byte()?));
            }
            Some(b) if b >> 5 != MAJOR_UINT => {
                // Consume it so errors point past the value, as the other readers do.
                self.pos += 1;
                return Err(Fail::WrongType);
            }
            _ => {}
        }
        let head = self.head()?;
        head.arg.ok_or(Fail::WrongType)
    }

    /// Reads a text string (validated UTF-8; borrowed unless it came in chunks). Anything else
    /// is `WrongType`.
    #[inline]
    pub(crate) fn read_str(&mut self) -> Result<Cow<'a, str>, Fail> {
        let head = self.head()?;
        if head.major != MAJOR_TEXT {
            return Err(Fail::WrongType);
        }
        self.text_body(head)
    }

    #[inline]
    fn text_body(&mut self, head: ItemHead) -> Result<Cow<'a, str>, Fail> {
        let Some(arg) = head.arg else {
            let mut text = String::new();
            self.chunks(MAJOR_TEXT, |chunk| {
                text.push_str(
                    std::str::from_utf8(chunk).map_err(|_| "invalid UTF-8 in a text chunk")?,
                );
                Ok(())
            })?;
            return Ok(Cow::Owned(text));
        };
        let len = self.length(arg)?;
        let start = self.pos;
        let bytes = self.take(len)?;
        if super::utf8::is_ascii(bytes) {
            // SAFETY: ASCII is valid UTF-8 (checked first: cheaper than from_utf8 for the
            // short ASCII URIs that dominate).
            return Ok(Cow::Borrowed(unsafe {
                std::str::from_utf8_unchecked(bytes)
            }));
        }
        std::str::from_utf8(bytes)
            .map(Cow::Borrowed)
            .map_err(|_| self.bad_at(start, "invalid UTF-8 in a text string"))
    }

    #[inline]
    fn bytes_body(&mut self, head: ItemHead) -> Result<Cow<'a, [u8]>, Fail> {
        let Some(arg) = head.arg else {
            let mut bytes = Vec::new();
            self.chunks(MAJOR_BYTES, |chunk| {
                bytes.extend_from_slice(chunk);
                Ok(())
            })?;
            return Ok(Cow::Owned(bytes));
        };
        let len = self.length(arg)?;
        Ok(Cow::Borrowed(self.take(len)?))
    }

    /// The chunks of an indefinite-length string up to its break: each must be a definite
    /// string of the same major type (RFC 8949 §3.2.3).
    fn chunks(
        &mut self,
        major: u8,
        mut each: impl FnMut(&'a [u8]) -> Result<(), &'static str>,
    ) -> Result<(), Fail> {
        loop {
            if self.peek() == Some(BREAK) {
                self.pos += 1;
                return Ok(());
            }
            let at = self.pos;
            let head = self.head()?;
            let arg = match head.arg {
                Some(arg) if head.major == major => arg,
                _ => return Err(self.bad_at(at, "a string chunk must be a definite string")),
            };
            let len = self.length(arg)?;
            let chunk = self.take(len)?;
            each(chunk).map_err(|what| self.bad_at(at, what))?;
        }
    }

    /// The length of an array or map header at `pos` (`None`: indefinite), or `WrongType`.
    pub(crate) fn container_header(&mut self, major: u8) -> Result<Option<usize>, Fail> {
        if self.peek_major() != Some(major) {
            return Err(Fail::WrongType);
        }
        match self.head()?.arg {
            Some(arg) => self.length(arg).map(Some),
            None => Ok(None),
        }
    }

    /// Whether the container being read has another element: a definite one counts down
    /// `left`, an indefinite one (`left` is `None`) ends at a break, which this consumes.
    #[inline]
    fn another(&mut self, left: &mut Option<usize>) -> Result<bool, Fail> {
        match left {
            Some(0) => Ok(false),
            Some(n) => {
                *n -= 1;
                Ok(true)
            }
            None => match self.peek() {
                Some(BREAK) => {
                    self.pos += 1;
                    Ok(false)
                }
                Some(_) => Ok(true),
                None => Err(self.bad("unexpected end of input (missing break)")),
            },
        }
    }

    /// A bignum's magnitude (tags 2 and 3) when it fits in 64 bits.
    fn bignum(&mut self) -> Result<u64, Fail> {
        let at = self.pos;
        let head = self.head()?;
        if head.major != MAJOR_BYTES {
            return Err(self.bad_at(at, "a bignum must be a byte string"));
        }
        let bytes = self.bytes_body(head)?;
        let leading_zeros = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = &bytes[leading_zeros..];
        if significant.len() > 8 {
            return Err(self.bad_at(at, "integer out of range (a bignum past 64 bits)"));
        }
        Ok(significant
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// -1 - `n` (major type 1, negative bignum), when it fits in an i64.
    fn negative(&self, n: u64) -> Result<i64, Fail> {
        i64::try_from(n)
            .map(|n| -1 - n)
            .map_err(|_| self.bad("integer out of range (below -2^63)"))
    }

    /// Reads any value; `depth` is the nesting level a container here would have.
    pub(crate) fn read_value(&mut self, depth: usize) -> Result<Value<'a>, Fail> {
        let at = self.pos;
        let head = self.head()?;
        Ok(match head.major {
            MAJOR_UINT => Value::UInt(head.arg.unwrap_or_default()),
            MAJOR_NEGATIVE => Value::Int(self.negative(head.arg.unwrap_or_default())?),
            MAJOR_BYTES => Value::Bin(self.bytes_body(head)?),
            MAJOR_TEXT => Value::Str(self.text_body(head)?),
            MAJOR_ARRAY => {
                self.enter(depth)?;
                let mut left = head.arg.map(|arg| self.length(arg)).transpose()?;
                // Every element takes at least one byte: never trust the header for capacity.
                let capacity = left.unwrap_or(0).min(self.buf.len() - self.pos);
                let mut list = Vec::with_capacity(capacity);
                while self.another(&mut left)? {
                    list.push(self.read_value(depth + 1)?);
                }
                Value::List(list)
            }
            MAJOR_MAP => {
                self.enter(depth)?;
                let left = head.arg.map(|arg| self.length(arg)).transpose()?;
                Value::Dict(self.map_body(left, depth, false)?)
            }
            MAJOR_TAG => match head.arg.unwrap_or_default() {
                TAG_SELF_DESCRIBE => {
                    self.enter(depth)?;
                    self.read_value(depth + 1)?
                }
                TAG_POSITIVE_BIGNUM => Value::UInt(self.bignum()?),
                TAG_NEGATIVE_BIGNUM => {
                    let n = self.bignum()?;
                    Value::Int(self.negative(n)?)
                }
                tag => return Err(self.bad_at(at, &format!("unsupported tag {tag}"))),
            },
            _ => self.simple(at, head)?,
        })
    }

    /// Major type 7: false, true, null, undefined and floats; breaks and other simple values
    /// are refused.
    fn simple(&self, at: usize, head: ItemHead) -> Result<Value<'a>, Fail> {
        let arg = head.arg.unwrap_or_default();
        Ok(match head.info {
            20 => Value::Bool(false),
            21 => Value::Bool(true),
            22 | 23 => Value::Null,
            25 => Value::Float(half_to_f64(arg as u16)),
            26 => Value::Float(f64::from(f32::from_bits(arg as u32))),
            27 => Value::Float(f64::from_bits(arg)),
            INDEFINITE => return Err(self.bad_at(at, "break outside an indefinite-length item")),
            _ => return Err(self.bad_at(at, &format!("unsupported simple value {arg}"))),
        })
    }

    /// Reads a map's entries into a [`Dict`] (`left`: entries, `None` up to a break); keys must
    /// be text. With `drop_null`, keys whose value is null or undefined are left out
    /// (Options/Details: they mean absent).
    pub(crate) fn map_body(
        &mut self,
        mut left: Option<usize>,
        depth: usize,
        drop_null: bool,
    ) -> Result<Dict<'a>, Fail> {
        let capacity = left.unwrap_or(0).min(16).min(self.buf.len() - self.pos);
        let mut dict = Dict::with_capacity(capacity);
        while self.another(&mut left)? {
            let key = match self.read_str() {
                Ok(key) => key,
                Err(Fail::WrongType) => return Err(self.bad("map keys must be text strings")),
                Err(other) => return Err(other),
            };
            let value = self.read_value(depth + 1)?;
            if !(drop_null && value == Value::Null) {
                push_entry(&mut dict, key, value)?;
            }
        }
        check_large_dict(&dict)?;
        Ok(dict)
    }

    /// Skips one value, checking that it is well-formed, within bounds and depth, and that its
    /// text is UTF-8.
    pub(crate) fn skip_value(&mut self, depth: usize) -> Result<(), Fail> {
        self.walk(depth, None)
    }

    /// Skips one value as [`skip_value`](Self::skip_value) does; with `counts`, also records
    /// the element count of every indefinite-length array and map, in pre-order (sinks whose
    /// headers need the count before the elements get it from there).
    fn walk(&mut self, depth: usize, mut counts: Option<&mut Vec<u32>>) -> Result<(), Fail> {
        let at = self.pos;
        let head = self.head()?;
        match head.major {
            MAJOR_UINT | MAJOR_NEGATIVE => {}
            MAJOR_BYTES => {
                self.bytes_body(head)?;
            }
            MAJOR_TEXT => {
                self.skip_text(head)?;
            }
            MAJOR_ARRAY | MAJOR_MAP => {
                self.enter(depth)?;
                let per_entry = if head.major == MAJOR_MAP { 2 } else { 1 };
                match head.arg {
                    Some(arg) => {
                        let items = self
                            .length(arg)?
                            .checked_mul(per_entry)
                            .ok_or_else(|| self.bad("length too large"))?;
                        // The scalars payloads are mostly made of (small integers, false,
                        // true, null, short text) are stepped over here; only other items
                        // take the general path.
                        for _ in 0..items {
                            match self.peek() {
                                Some(0x00..=0x17 | 0x20..=0x37 | 0xf4..=0xf7) => self.pos += 1,
                                Some(b @ 0x60..=0x77) => {
                                    self.pos += 1;
                                    self.skip_text_bytes(usize::from(b & 0x1f))?;
                                }
                                _ => self.walk(depth + 1, counts.as_deref_mut())?,
                            }
                        }
                    }
                    None => {
                        let slot = counts.as_deref_mut().map(|counts| {
                            counts.push(0);
                            counts.len() - 1
                        });
                        let mut items: u64 = 0;
                        loop {
                            match self.peek() {
                                Some(BREAK) => {
                                    self.pos += 1;
                                    break;
                                }
                                Some(_) => self.walk(depth + 1, counts.as_deref_mut())?,
                                None => {
                                    return Err(self.bad("unexpected end of input (missing break)"))
                                }
                            }
                            items += 1;
                        }
                        if items % per_entry as u64 != 0 {
                            return Err(self.bad_at(at, "a map with a key but no value"));
                        }
                        let entries = u32::try_from(items / per_entry as u64)
                            .map_err(|_| self.bad_at(at, "container too large"))?;
                        if let (Some(slot), Some(counts)) = (slot, counts) {
                            counts[slot] = entries;
                        }
                    }
                }
            }
            MAJOR_TAG => {
                self.enter(depth)?;
                self.walk(depth + 1, counts)?;
            }
            _ => match head.info {
                INDEFINITE => {
                    return Err(self.bad_at(at, "break outside an indefinite-length item"))
                }
                // A two-byte simple value below 32 is not well-formed (RFC 8949 §3.3).
                24 if head.arg.unwrap_or_default() < 32 => {
                    return Err(self.bad_at(at, "simple value in the wrong form"))
                }
                _ => {}
            },
        }
        Ok(())
    }

    /// Skips a text string's bytes, which must be UTF-8 (as a JSON peer could not be given
    /// anything else).
    #[inline]
    fn skip_text(&mut self, head: ItemHead) -> Result<(), Fail> {
        let Some(arg) = head.arg else {
            return self.chunks(MAJOR_TEXT, |chunk| {
                if super::utf8::is_utf8(chunk) {
                    Ok(())
                } else {
                    Err("invalid UTF-8 in a text chunk")
                }
            });
        };
        let len = self.length(arg)?;
        self.skip_text_bytes(len)
    }

    /// The `len` bytes of a definite text string, which must be UTF-8.
    #[inline(always)]
    fn skip_text_bytes(&mut self, len: usize) -> Result<(), Fail> {
        let start = self.pos;
        let bytes = self.take(len)?;
        if !super::utf8::is_utf8(bytes) {
            return Err(self.bad_at(start, "invalid UTF-8 in a text string"));
        }
        Ok(())
    }

    /// Drives `sink` with one value that [`walk`](Self::walk) has validated (depth included);
    /// indefinite containers take their counts from `counts` (`next` is the one to use next).
    fn drive<S: Sink>(
        &mut self,
        sink: &mut S,
        counts: &[u32],
        next: &mut usize,
    ) -> Result<(), EncodeError> {
        let fail = |f: Fail| EncodeError::new(format!("payload: {}", f.describe()));
        let at = self.pos;
        let head = self.head().map_err(fail)?;
        match head.major {
            MAJOR_UINT => sink.uint(head.arg.unwrap_or_default()),
            MAJOR_NEGATIVE => sink.int(self.negative(head.arg.unwrap_or_default()).map_err(fail)?),
            MAJOR_BYTES => sink.bin(&self.bytes_body(head).map_err(fail)?),
            MAJOR_TEXT => sink.str(&self.text_body(head).map_err(fail)?),
            MAJOR_ARRAY | MAJOR_MAP => {
                let is_map = head.major == MAJOR_MAP;
                let len = match head.arg {
                    Some(arg) => u32::try_from(arg)
                        .map_err(|_| EncodeError::new("payload: container too large"))?,
                    None => {
                        let count = counts
                            .get(*next)
                            .copied()
                            .ok_or_else(|| EncodeError::new("payload: container count missing"))?;
                        *next += 1;
                        count
                    }
                };
                if is_map {
                    sink.begin_dict(len)?;
                } else {
                    sink.begin_list(len)?;
                }
                for index in 0..len {
                    if is_map {
                        let key = match self.read_str() {
                            Ok(key) => key,
                            Err(Fail::WrongType) => {
                                return Err(EncodeError::new(format!(
                                    "payload: a CBOR map key at byte {at}.. is not a text string and cannot be transcoded"
                                )))
                            }
                            Err(other) => return Err(fail(other)),
                        };
                        sink.key(index, &key)?;
                    } else {
                        sink.item(index);
                    }
                    self.drive(sink, counts, next)?;
                }
                if head.arg.is_none() {
                    self.pos += 1; // the break, checked by `walk`
                }
                if is_map {
                    sink.end_dict();
                } else {
                    sink.end_list();
                }
                Ok(())
            }
            MAJOR_TAG => match head.arg.unwrap_or_default() {
                TAG_SELF_DESCRIBE => self.drive(sink, counts, next),
                TAG_POSITIVE_BIGNUM => sink.uint(self.bignum().map_err(fail)?),
                TAG_NEGATIVE_BIGNUM => {
                    let n = self.bignum().map_err(fail)?;
                    sink.int(self.negative(n).map_err(fail)?)
                }
                tag => Err(EncodeError::new(format!(
                    "payload: CBOR tag {tag} cannot be transcoded to another serializer"
                ))),
            },
            _ => match self.simple(at, head).map_err(fail)? {
                Value::Bool(b) => sink.bool(b),
                Value::Float(f) => sink.float(f),
                _ => sink.null(),
            },
        }
    }
}

/// A half-precision float (RFC 8949 Appendix D).
fn half_to_f64(half: u16) -> f64 {
    let exponent = i32::from((half >> 10) & 0x1f);
    let mantissa = f64::from(half & 0x3ff);
    let magnitude = match exponent {
        0 => mantissa * 2f64.powi(-24),
        31 if mantissa == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (mantissa + 1024.0) * 2f64.powi(exponent - 25),
    };
    if half & 0x8000 != 0 {
        -magnitude
    } else {
        magnitude
    }
}

/// Drives `sink` with the `count` concatenated CBOR elements of a payload span: one pass
/// validates and counts indefinite containers, one drives.
pub(crate) fn drive_payload<S: Sink>(
    raw: &[u8],
    count: u8,
    sink: &mut S,
) -> Result<(), EncodeError> {
    let fail = |f: Fail| EncodeError::new(format!("payload: {}", f.describe()));
    let mut counts = Vec::new();
    let mut reader = CborReader::new(raw);
    for _ in 0..count {
        reader.walk(2, Some(&mut counts)).map_err(fail)?;
    }
    if reader.pos != raw.len() {
        return Err(EncodeError::new(
            "payload: unexpected bytes after the last element",
        ));
    }
    let mut reader = CborReader::new(raw);
    let mut next = 0;
    for index in 0..count {
        sink.item(u32::from(index));
        reader.drive(sink, &counts, &mut next)?;
    }
    Ok(())
}

/// The CBOR writer: shortest heads, definite lengths, floats as float64.
pub(crate) mod write {
    use super::super::sink::{self, CborWriter};
    use super::super::value::Dict;
    #[cfg(test)]
    use super::super::value::Value;
    use super::super::EncodeError;
    use super::{MAJOR_ARRAY, MAJOR_BYTES, MAJOR_MAP, MAJOR_NEGATIVE, MAJOR_TEXT, MAJOR_UINT};

    /// An empty map (major type 5, length 0).
    pub(crate) const EMPTY_MAP: u8 = 0xa0;

    #[inline]
    fn head(out: &mut Vec<u8>, major: u8, arg: u64) {
        let m = major << 5;
        if arg < 24 {
            out.push(m | arg as u8);
        } else if arg <= 0xff {
            out.extend_from_slice(&[m | 24, arg as u8]);
        } else if arg <= 0xffff {
            out.push(m | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        } else if arg <= 0xffff_ffff {
            out.push(m | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        } else {
            out.push(m | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }

    #[inline]
    pub(crate) fn nil(out: &mut Vec<u8>) {
        out.push(0xf6);
    }

    #[inline]
    pub(crate) fn bool(out: &mut Vec<u8>, b: bool) {
        out.push(if b { 0xf5 } else { 0xf4 });
    }

    #[inline]
    pub(crate) fn uint(out: &mut Vec<u8>, v: u64) {
        head(out, MAJOR_UINT, v);
    }

    #[inline]
    pub(crate) fn int(out: &mut Vec<u8>, v: i64) {
        if v >= 0 {
            uint(out, v as u64);
        } else {
            // -1 - v, which is !v in two's complement (no overflow at i64::MIN).
            head(out, MAJOR_NEGATIVE, !v as u64);
        }
    }

    #[inline]
    pub(crate) fn f64(out: &mut Vec<u8>, v: f64) {
        out.push(0xfb);
        out.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    #[inline]
    pub(crate) fn str(out: &mut Vec<u8>, s: &str) {
        head(out, MAJOR_TEXT, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }

    #[inline]
    pub(crate) fn bin(out: &mut Vec<u8>, b: &[u8]) {
        head(out, MAJOR_BYTES, b.len() as u64);
        out.extend_from_slice(b);
    }

    #[inline]
    pub(crate) fn array_len(out: &mut Vec<u8>, len: u32) {
        head(out, MAJOR_ARRAY, u64::from(len));
    }

    #[inline]
    pub(crate) fn map_len(out: &mut Vec<u8>, len: u32) {
        head(out, MAJOR_MAP, u64::from(len));
    }

    pub(crate) fn dict(out: &mut Vec<u8>, dict: &Dict<'_>) -> Result<(), EncodeError> {
        sink::dict_into(dict, &mut CborWriter { out })
    }

    #[cfg(test)]
    pub(crate) fn value(out: &mut Vec<u8>, v: &Value<'_>) -> Result<(), EncodeError> {
        sink::value_into(v, &mut CborWriter { out })
    }
}

super::sink::binary_sink!(CborWriter, write);

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Value<'_>, Fail> {
        let mut reader = CborReader::new(bytes);
        let value = reader.read_value(1)?;
        assert_eq!(reader.pos, bytes.len(), "{bytes:x?}");
        Ok(value)
    }

    fn written(v: &Value<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        write::value(&mut out, v).unwrap();
        out
    }

    /// Examples of RFC 8949 Appendix A (the ones a [`Value`] can hold).
    #[test]
    fn rfc_8949_appendix_a() {
        let cases: &[(&[u8], Value<'_>)] = &[
            (&[0x00], Value::UInt(0)),
            (&[0x17], Value::UInt(23)),
            (&[0x18, 0x18], Value::UInt(24)),
            (&[0x18, 0x64], Value::UInt(100)),
            (&[0x19, 0x03, 0xe8], Value::UInt(1000)),
            (&[0x1a, 0x00, 0x0f, 0x42, 0x40], Value::UInt(1_000_000)),
            (
                &[0x1b, 0x00, 0x00, 0x00, 0xe8, 0xd4, 0xa5, 0x10, 0x00],
                Value::UInt(1_000_000_000_000),
            ),
            (
                &[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Value::UInt(u64::MAX),
            ),
            (&[0x20], Value::Int(-1)),
            (&[0x29], Value::Int(-10)),
            (&[0x38, 0x63], Value::Int(-100)),
            (&[0x39, 0x03, 0xe7], Value::Int(-1000)),
            (
                &[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Value::Int(i64::MIN),
            ),
            (&[0xf9, 0x00, 0x00], Value::Float(0.0)),
            (&[0xf9, 0x3c, 0x00], Value::Float(1.0)),
            (
                &[0xfb, 0x3f, 0xf1, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a],
                Value::Float(1.1),
            ),
            (&[0xf9, 0x3e, 0x00], Value::Float(1.5)),
            (&[0xf9, 0x7b, 0xff], Value::Float(65504.0)),
            (&[0xfa, 0x47, 0xc3, 0x50, 0x00], Value::Float(100000.0)),
            (&[0xf9, 0x00, 0x01], Value::Float(5.960464477539063e-8)),
            (&[0xf9, 0x04, 0x00], Value::Float(0.00006103515625)),
            (&[0xf9, 0xc4, 0x00], Value::Float(-4.0)),
            (&[0xf9, 0x7c, 0x00], Value::Float(f64::INFINITY)),
            (&[0xf9, 0xfc, 0x00], Value::Float(f64::NEG_INFINITY)),
            (&[0xf4], Value::Bool(false)),
            (&[0xf5], Value::Bool(true)),
            (&[0xf6], Value::Null),
            (&[0xf7], Value::Null),
            (&[0xc2, 0x49, 0, 0, 0, 0, 0, 0, 0, 0, 0x01], Value::UInt(1)),
            (&[0x40], Value::Bin(Cow::Borrowed(&[]))),
            (
                &[0x44, 1, 2, 3, 4],
                Value::Bin(Cow::Borrowed(&[1, 2, 3, 4])),
            ),
            (&[0x60], Value::Str("".into())),
            (&[0x61, 0x61], Value::Str("a".into())),
            (&[0x64, 0x49, 0x45, 0x54, 0x46], Value::Str("IETF".into())),
            (&[0x62, 0x22, 0x5c], Value::Str("\"\\".into())),
            (&[0x62, 0xc3, 0xbc], Value::Str("\u{fc}".into())),
            (&[0x63, 0xe6, 0xb0, 0xb4], Value::Str("\u{6c34}".into())),
            (
                &[0x64, 0xf0, 0x90, 0x85, 0x91],
                Value::Str("\u{10151}".into()),
            ),
            (&[0x80], Value::List(vec![])),
            (
                &[0x83, 0x01, 0x02, 0x03],
                Value::List(vec![Value::UInt(1), Value::UInt(2), Value::UInt(3)]),
            ),
            (&[0xa0], Value::Dict(Dict::new())),
            (
                &[0x5f, 0x42, 0x01, 0x02, 0x43, 0x03, 0x04, 0x05, 0xff],
                Value::Bin(Cow::Owned(vec![1, 2, 3, 4, 5])),
            ),
            (
                &[
                    0x7f, 0x65, 0x73, 0x74, 0x72, 0x65, 0x61, 0x64, 0x6d, 0x69, 0x6e, 0x67, 0xff,
                ],
                Value::Str("streaming".into()),
            ),
            (&[0x9f, 0xff], Value::List(vec![])),
            (
                &[0x9f, 0x01, 0x82, 0x02, 0x03, 0x9f, 0x04, 0x05, 0xff, 0xff],
                Value::List(vec![
                    Value::UInt(1),
                    Value::List(vec![Value::UInt(2), Value::UInt(3)]),
                    Value::List(vec![Value::UInt(4), Value::UInt(5)]),
                ]),
            ),
        ];
        for (bytes, want) in cases {
            let got = read(bytes).unwrap_or_else(|e| panic!("{bytes:x?}: {e:?}"));
            match (want, &got) {
                (Value::Float(w), Value::Float(g)) => assert_eq!(w.to_bits(), g.to_bits()),
                _ => assert_eq!(&got, want, "{bytes:x?}"),
            }
            let mut skipper = CborReader::new(bytes);
            skipper.skip_value(1).unwrap();
            assert_eq!(skipper.pos, bytes.len());
        }
        let nan = read(&[0xf9, 0x7e, 0x00]).unwrap();
        assert!(matches!(nan, Value::Float(f) if f.is_nan()));
        // {"a": 1, "b": [2, 3]} and its indefinite form.
        for bytes in [
            &[0xa2, 0x61, 0x61, 0x01, 0x61, 0x62, 0x82, 0x02, 0x03][..],
            &[
                0xbf, 0x61, 0x61, 0x01, 0x61, 0x62, 0x9f, 0x02, 0x03, 0xff, 0xff,
            ],
        ] {
            let Value::Dict(d) = read(bytes).unwrap() else {
                panic!()
            };
            assert_eq!(d.get_u64("a"), Some(1));
            assert_eq!(
                d.get("b"),
                Some(&Value::List(vec![Value::UInt(2), Value::UInt(3)]))
            );
        }
    }

    #[test]
    fn writer_uses_shortest_heads() {
        let cases: &[(Value<'_>, &[u8])] = &[
            (Value::UInt(0), &[0x00]),
            (Value::UInt(23), &[0x17]),
            (Value::UInt(24), &[0x18, 0x18]),
            (Value::UInt(256), &[0x19, 0x01, 0x00]),
            (Value::UInt(65536), &[0x1a, 0, 1, 0, 0]),
            (Value::UInt(1 << 32), &[0x1b, 0, 0, 0, 1, 0, 0, 0, 0]),
            (Value::Int(-1), &[0x20]),
            (Value::Int(-25), &[0x38, 0x18]),
            (Value::Int(5), &[0x05]),
            (
                Value::Int(i64::MIN),
                &[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
            (Value::Null, &[0xf6]),
            (Value::Bool(true), &[0xf5]),
            (Value::Float(1.5), &[0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
            (Value::Str("a".into()), &[0x61, 0x61]),
            (Value::Bin(Cow::Borrowed(&[9])), &[0x41, 0x09]),
            (Value::List(vec![Value::UInt(1)]), &[0x81, 0x01]),
        ];
        for (value, want) in cases {
            assert_eq!(&written(value), want, "{value:?}");
            let back = read(want).unwrap();
            match value {
                // A non-negative Int is written as (and reads back as) an unsigned integer.
                Value::Int(i) if *i >= 0 => assert_eq!(back, Value::UInt(*i as u64)),
                _ => assert_eq!(&back, value),
            }
        }
        let long = "x".repeat(300);
        let bytes = written(&Value::Str(long.as_str().into()));
        assert_eq!(&bytes[..3], &[0x79, 0x01, 0x2c]);
    }

    #[test]
    fn malformed_input_is_refused() {
        for (bytes, what) in [
            (&[][..], "end of input"),
            (&[0x18], "end of input"),
            (&[0x1c], "reserved"),
            (&[0x1f], "indefinite"),
            (&[0x3f], "indefinite"),
            (&[0xdf, 0x01], "indefinite"),
            (&[0xff], "break"),
            (&[0x62, 0x61], "past the end"),
            (&[0x62, 0xc3, 0x28], "UTF-8"),
            (&[0x9f, 0x01], "missing break"),
            (&[0x5f, 0x61, 0x61, 0xff], "chunk"),
            (&[0x7f, 0x7f, 0xff, 0xff], "chunk"),
            (&[0xf8, 0x10], "simple value"),
            (
                &[0x7b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                "past the end",
            ),
        ] {
            let e = read(bytes).unwrap_err().describe();
            assert!(e.contains(what), "{bytes:x?}: {e}");
            let mut skipper = CborReader::new(bytes);
            assert!(skipper.skip_value(1).is_err(), "{bytes:x?}");
        }
        // Well-formed but not a value wampring can hold.
        for (bytes, what) in [
            (&[0xc1, 0x00][..], "tag 1"),
            (&[0xf0][..], "simple value 16"),
            (&[0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0][..], "out of range"),
            (&[0xc2, 0x49, 1, 0, 0, 0, 0, 0, 0, 0, 0][..], "out of range"),
            (&[0xa1, 0x01, 0x02][..], "keys"),
        ] {
            let e = read(bytes).unwrap_err().describe();
            assert!(e.contains(what), "{bytes:x?}: {e}");
        }
        // Tags and other simple values are well-formed: a CBOR-to-CBOR payload keeps them.
        for bytes in [&[0xc1, 0x00][..], &[0xf0], &[0xa1, 0x01, 0x02]] {
            let mut skipper = CborReader::new(bytes);
            skipper.skip_value(1).unwrap();
        }
    }

    #[test]
    fn depth_is_bounded() {
        let deep = [vec![0x81; 80], vec![0x00]].concat();
        assert!(read(&deep)
            .unwrap_err()
            .describe()
            .contains("nesting too deep"));
        assert!(CborReader::new(&deep).skip_value(1).is_err());
        let tags = [[0xd9, 0xd9, 0xf7].repeat(80), vec![0x00]].concat();
        assert!(read(&tags)
            .unwrap_err()
            .describe()
            .contains("nesting too deep"));
        assert!(CborReader::new(&tags).skip_value(1).is_err());
    }

    #[test]
    fn hostile_lengths_allocate_nothing_up_front() {
        // An array claiming 2^32 elements in five bytes fails at the first missing element.
        let bytes = [0x9b, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(read(&bytes).is_err());
        let bytes = [0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(read(&bytes).is_err());
        assert!(CborReader::new(&bytes).skip_value(1).is_err());
    }
}
