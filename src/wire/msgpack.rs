//! MessagePack (spec v5: str and bin distinct) at the byte level: a bounds-checked zero-copy
//! reader for message headers and values, a skipper for payload spans, the reader that drives a
//! [`Sink`] when a MessagePack payload is transcoded, and a writer that always picks the
//! smallest encoding.
//!
//! Hand-written (rather than `rmp`'s reader) so that every length is checked against the
//! bytes actually present before anything is allocated, and so that skipping a payload costs
//! one pass with no allocation. The ext value `d4 00 00` (fixext1, type 0, data 0) is how
//! wampy.js / msgpack-lite encode JavaScript `undefined`; it reads as `Null`.

use std::borrow::Cow;

use super::sink::{MsgPackWriter, Sink};
use super::value::{Dict, Value};
use super::{check_large_dict, push_entry, EncodeError, Fail, MAX_DEPTH};

/// What a marker byte announces.
#[derive(Copy, Clone, Debug, PartialEq)]
enum Kind {
    Nil,
    Bool(bool),
    /// A non-negative integer; `usize` is the number of big-endian bytes that follow (0 for
    /// positive fixint, whose value is the marker itself).
    UInt(usize),
    /// A signed encoding (int8..int64, negative fixint when 0 bytes follow).
    Int(usize),
    F32,
    F64,
    /// str with a length field of this many bytes (0 = fixstr, length in the marker).
    Str(usize),
    Bin(usize),
    Array(usize),
    Map(usize),
    /// fixext with this many data bytes.
    FixExt(usize),
    /// ext with a length field of this many bytes.
    Ext(usize),
    Unused,
}

#[inline]
fn kind(marker: u8) -> Kind {
    match marker {
        0x00..=0x7f => Kind::UInt(0),
        0x80..=0x8f => Kind::Map(0),
        0x90..=0x9f => Kind::Array(0),
        0xa0..=0xbf => Kind::Str(0),
        0xc0 => Kind::Nil,
        0xc1 => Kind::Unused,
        0xc2 => Kind::Bool(false),
        0xc3 => Kind::Bool(true),
        0xc4 => Kind::Bin(1),
        0xc5 => Kind::Bin(2),
        0xc6 => Kind::Bin(4),
        0xc7 => Kind::Ext(1),
        0xc8 => Kind::Ext(2),
        0xc9 => Kind::Ext(4),
        0xca => Kind::F32,
        0xcb => Kind::F64,
        0xcc => Kind::UInt(1),
        0xcd => Kind::UInt(2),
        0xce => Kind::UInt(4),
        0xcf => Kind::UInt(8),
        0xd0 => Kind::Int(1),
        0xd1 => Kind::Int(2),
        0xd2 => Kind::Int(4),
        0xd3 => Kind::Int(8),
        0xd4 => Kind::FixExt(1),
        0xd5 => Kind::FixExt(2),
        0xd6 => Kind::FixExt(4),
        0xd7 => Kind::FixExt(8),
        0xd8 => Kind::FixExt(16),
        0xd9 => Kind::Str(1),
        0xda => Kind::Str(2),
        0xdb => Kind::Str(4),
        0xdc => Kind::Array(2),
        0xdd => Kind::Array(4),
        0xde => Kind::Map(2),
        0xdf => Kind::Map(4),
        0xe0..=0xff => Kind::Int(0),
    }
}

/// A cursor over MessagePack bytes. `remaining` counts the top-level message array's elements
/// not yet read (used by the message decoder).
pub(crate) struct MsgPackReader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) remaining: usize,
}

/// An integer as MessagePack encoded it, sign-normalized.
enum Integer {
    UInt(u64),
    Int(i64),
}

impl<'a> MsgPackReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        MsgPackReader {
            buf,
            pos: 0,
            remaining: 0,
        }
    }

    #[cold]
    pub(crate) fn bad(&self, what: &str) -> Fail {
        Fail::Bad(format!("malformed MessagePack at byte {}: {what}", self.pos).into())
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
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

    /// The next `N` bytes.
    #[inline(always)]
    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Fail> {
        let bytes = self.take(N)?;
        Ok(bytes.try_into().expect("take returns exactly N bytes"))
    }

    /// Reads a big-endian unsigned number of `n` (1, 2, 4 or 8) bytes.
    #[inline]
    fn be(&mut self, n: usize) -> Result<u64, Fail> {
        let bytes = self.take(n)?;
        Ok(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// The length of a str/bin/array/map/ext whose marker was `marker` with an `n`-byte length
    /// field (0 = the length is in the marker's low bits, `mask`).
    #[inline]
    fn length(&mut self, marker: u8, n: usize, mask: u8) -> Result<usize, Fail> {
        if n == 0 {
            Ok(usize::from(marker & mask))
        } else {
            usize::try_from(self.be(n)?).map_err(|_| self.bad("length too large"))
        }
    }

    fn integer(&mut self, marker: u8, k: Kind) -> Result<Integer, Fail> {
        Ok(match k {
            Kind::UInt(0) => Integer::UInt(u64::from(marker)),
            Kind::UInt(n) => Integer::UInt(self.be(n)?),
            Kind::Int(0) => Integer::Int(i64::from(marker as i8)),
            Kind::Int(n) => {
                let raw = self.be(n)?;
                // Sign-extend from n bytes.
                let shift = 64 - 8 * n as u32;
                let signed = ((raw << shift) as i64) >> shift;
                if signed >= 0 {
                    Integer::UInt(signed as u64)
                } else {
                    Integer::Int(signed)
                }
            }
            _ => return Err(Fail::WrongType),
        })
    }

    /// Reads a non-negative integer in any encoding width (signed encodings included when the
    /// value is non-negative). Anything else is `WrongType`.
    #[inline]
    pub(crate) fn read_uint(&mut self) -> Result<u64, Fail> {
        let marker = self.byte()?;
        // The unsigned widths first, at fixed sizes: request and session ids are read this way
        // on every frame, and the generic byte loop costs several times as much.
        match marker {
            0x00..=0x7f => return Ok(u64::from(marker)),
            0xcc => return Ok(u64::from(self.fixed::<1>()?[0])),
            0xcd => return Ok(u64::from(u16::from_be_bytes(self.fixed()?))),
            0xce => return Ok(u64::from(u32::from_be_bytes(self.fixed()?))),
            0xcf => return Ok(u64::from_be_bytes(self.fixed()?)),
            _ => {}
        }
        match self.integer(marker, kind(marker))? {
            Integer::UInt(u) => Ok(u),
            Integer::Int(_) => Err(Fail::WrongType),
        }
    }

    /// Reads a str as text (validated UTF-8, borrowed). Anything else is `WrongType`.
    #[inline]
    pub(crate) fn read_str(&mut self) -> Result<Cow<'a, str>, Fail> {
        let marker = self.byte()?;
        match kind(marker) {
            Kind::Str(n) => self.str_body(marker, n).map(Cow::Borrowed),
            _ => Err(Fail::WrongType),
        }
    }

    #[inline(always)]
    fn str_body(&mut self, marker: u8, n: usize) -> Result<&'a str, Fail> {
        let len = self.length(marker, n, 0x1f)?;
        let start = self.pos;
        let bytes = self.take(len)?;
        if super::utf8::is_ascii(bytes) {
            // SAFETY: ASCII is valid UTF-8. Checked first because std's from_utf8 costs more
            // than the whole header for the short ASCII URIs that dominate.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        std::str::from_utf8(bytes).map_err(|_| {
            Fail::Bad(format!("malformed MessagePack at byte {start}: invalid UTF-8 in str").into())
        })
    }

    /// The header of a map at `pos`, or `WrongType`.
    pub(crate) fn map_header(&mut self) -> Result<usize, Fail> {
        let marker = self.byte()?;
        match kind(marker) {
            Kind::Map(n) => self.length(marker, n, 0x0f),
            _ => Err(Fail::WrongType),
        }
    }

    /// The header of an array at `pos`, or `WrongType`.
    pub(crate) fn array_header(&mut self) -> Result<usize, Fail> {
        let marker = self.byte()?;
        match kind(marker) {
            Kind::Array(n) => self.length(marker, n, 0x0f),
            _ => Err(Fail::WrongType),
        }
    }

    fn enter(&self, depth: usize) -> Result<(), Fail> {
        if depth > MAX_DEPTH {
            Err(self.bad("nesting too deep"))
        } else {
            Ok(())
        }
    }

    /// Reads an ext body after its marker: (ext type, data). Callers treat type 0 with the
    /// single data byte 0 as `undefined` (null) and reject every other ext.
    fn ext_body(&mut self, marker: u8, k: Kind) -> Result<(i8, &'a [u8]), Fail> {
        let len = match k {
            Kind::FixExt(n) => n,
            Kind::Ext(n) => self.length(marker, n, 0)?,
            _ => return Err(Fail::WrongType),
        };
        let ext_type = self.byte()? as i8;
        let data = self.take(len)?;
        Ok((ext_type, data))
    }

    /// Reads any value; `depth` is the nesting level a container here would have.
    pub(crate) fn read_value(&mut self, depth: usize) -> Result<Value<'a>, Fail> {
        let marker = self.byte()?;
        let k = kind(marker);
        Ok(match k {
            Kind::Nil => Value::Null,
            Kind::Bool(b) => Value::Bool(b),
            Kind::UInt(_) | Kind::Int(_) => match self.integer(marker, k)? {
                Integer::UInt(u) => Value::UInt(u),
                Integer::Int(i) => Value::Int(i),
            },
            Kind::F32 => Value::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            Kind::F64 => Value::Float(f64::from_bits(self.be(8)?)),
            Kind::Str(n) => Value::Str(Cow::Borrowed(self.str_body(marker, n)?)),
            Kind::Bin(n) => {
                let len = self.length(marker, n, 0)?;
                Value::Bin(Cow::Borrowed(self.take(len)?))
            }
            Kind::Array(n) => {
                self.enter(depth)?;
                let len = self.length(marker, n, 0x0f)?;
                // Every element takes at least one byte: never trust the header for capacity.
                let mut list = Vec::with_capacity(len.min(self.buf.len() - self.pos));
                for _ in 0..len {
                    list.push(self.read_value(depth + 1)?);
                }
                Value::List(list)
            }
            Kind::Map(n) => {
                self.enter(depth)?;
                let len = self.length(marker, n, 0x0f)?;
                Value::Dict(self.map_body(len, depth, false)?)
            }
            Kind::FixExt(_) | Kind::Ext(_) => {
                let at = self.pos;
                match self.ext_body(marker, k)? {
                    (0, [0]) => Value::Null,
                    (ext_type, _) => {
                        return Err(Fail::Bad(
                            format!(
                            "malformed MessagePack at byte {at}: unsupported ext type {ext_type}"
                        )
                            .into(),
                        ))
                    }
                }
            }
            Kind::Unused => return Err(self.bad("reserved marker 0xc1")),
        })
    }

    /// Reads `len` key/value pairs into a [`Dict`]; keys must be str. With `drop_null`, keys
    /// whose value is nil or undefined are left out (Options/Details: they mean absent).
    pub(crate) fn map_body(
        &mut self,
        len: usize,
        depth: usize,
        drop_null: bool,
    ) -> Result<Dict<'a>, Fail> {
        let mut dict = Dict::with_capacity(len.min(16).min(self.buf.len() - self.pos));
        for _ in 0..len {
            let key = match self.read_str() {
                Ok(key) => key,
                Err(Fail::WrongType) => return Err(self.bad("map keys must be strings")),
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

    /// Skips one value, checking that it is well-formed and within bounds, and that its strs
    /// are UTF-8.
    pub(crate) fn skip_value(&mut self, depth: usize) -> Result<(), Fail> {
        self.skip_values(1, depth)
    }

    /// Skips `count` values at `depth`. The scalars payloads are mostly made of (small ints,
    /// nil, bools, short strings) are stepped over in this loop; only other markers take a
    /// call, and containers recurse (bounded by `MAX_DEPTH`).
    #[inline]
    fn skip_values(&mut self, count: usize, depth: usize) -> Result<(), Fail> {
        for _ in 0..count {
            let marker = self.byte()?;
            match marker {
                0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => {}
                0xa0..=0xbf => self.skip_str_body(usize::from(marker & 0x1f))?,
                _ => self.skip_after_marker(marker, depth)?,
            }
        }
        Ok(())
    }

    /// A str's bytes, which must be UTF-8 (MessagePack says so, and a JSON peer could not be
    /// given anything else): refused here, as a JSON text frame with bad UTF-8 is.
    #[inline(always)]
    fn skip_str_body(&mut self, len: usize) -> Result<(), Fail> {
        let bytes = self.take(len)?;
        if !super::utf8::is_utf8(bytes) {
            return Err(self.bad("a str is not valid UTF-8"));
        }
        Ok(())
    }

    /// The rest of a value whose marker was just read.
    fn skip_after_marker(&mut self, marker: u8, depth: usize) -> Result<(), Fail> {
        let k = kind(marker);
        match k {
            Kind::Nil | Kind::Bool(_) => {}
            Kind::UInt(n) | Kind::Int(n) => {
                self.take(n)?;
            }
            Kind::F32 => {
                self.take(4)?;
            }
            Kind::F64 => {
                self.take(8)?;
            }
            Kind::Str(n) => {
                let len = self.length(marker, n, 0x1f)?;
                self.skip_str_body(len)?;
            }
            Kind::Bin(n) => {
                let len = self.length(marker, n, 0)?;
                self.take(len)?;
            }
            Kind::Array(n) | Kind::Map(n) => {
                self.enter(depth)?;
                let len = self.length(marker, n, 0x0f)?;
                let items = if matches!(k, Kind::Map(_)) {
                    len.checked_mul(2)
                } else {
                    Some(len)
                };
                let items = items.ok_or_else(|| self.bad("length too large"))?;
                self.skip_values(items, depth + 1)?;
            }
            Kind::FixExt(_) | Kind::Ext(_) => {
                self.ext_body(marker, k)?;
            }
            Kind::Unused => return Err(self.bad("reserved marker 0xc1")),
        }
        Ok(())
    }

    /// Whether the value at `pos` is an array / bin / map (without consuming it).
    pub(crate) fn peek_is_array(&self) -> bool {
        self.peek()
            .is_some_and(|m| matches!(kind(m), Kind::Array(_)))
    }

    /// A bin, or a str (the MessagePack form of a JSON transparent payload that was a plain
    /// string rather than `"\u0000"+base64`).
    pub(crate) fn peek_is_bin_or_str(&self) -> bool {
        self.peek()
            .is_some_and(|m| matches!(kind(m), Kind::Bin(_) | Kind::Str(_)))
    }

    pub(crate) fn peek_is_map(&self) -> bool {
        self.peek().is_some_and(|m| matches!(kind(m), Kind::Map(_)))
    }

    /// Drives `sink` with one value (payload transcoding MessagePack -> another serializer).
    fn drive<S: Sink>(&mut self, sink: &mut S, depth: usize) -> Result<(), EncodeError> {
        let fail = |f: Fail| EncodeError::new(format!("payload: {}", f.describe()));
        let at = self.pos;
        let marker = self.byte().map_err(fail)?;
        let k = kind(marker);
        match k {
            Kind::Nil => sink.null(),
            Kind::Bool(b) => sink.bool(b),
            Kind::UInt(_) | Kind::Int(_) => match self.integer(marker, k).map_err(fail)? {
                Integer::UInt(u) => sink.uint(u),
                Integer::Int(i) => sink.int(i),
            },
            Kind::F32 => sink.float(f64::from(f32::from_bits(
                self.be(4).map_err(fail)? as u32,
            ))),
            Kind::F64 => sink.float(f64::from_bits(self.be(8).map_err(fail)?)),
            Kind::Str(n) => sink.str(self.str_body(marker, n).map_err(fail)?),
            Kind::Bin(n) => {
                let len = self.length(marker, n, 0).map_err(fail)?;
                sink.bin(self.take(len).map_err(fail)?)
            }
            Kind::Array(n) => {
                self.enter(depth).map_err(fail)?;
                let len = self.length(marker, n, 0x0f).map_err(fail)?;
                let len = u32::try_from(len).map_err(|_| fail(self.bad("length too large")))?;
                sink.begin_list(len)?;
                for index in 0..len {
                    sink.item(index);
                    self.drive(sink, depth + 1)?;
                }
                sink.end_list();
                Ok(())
            }
            Kind::Map(n) => {
                self.enter(depth).map_err(fail)?;
                let len = self.length(marker, n, 0x0f).map_err(fail)?;
                let len = u32::try_from(len).map_err(|_| fail(self.bad("length too large")))?;
                sink.begin_dict(len)?;
                for index in 0..len {
                    match self.read_str() {
                        Ok(key) => sink.key(index, &key)?,
                        Err(Fail::WrongType) => {
                            return Err(EncodeError::new(format!(
                                "payload: MessagePack map key at byte {at}.. is not a string and cannot be transcoded"
                            )))
                        }
                        Err(other) => return Err(fail(other)),
                    }
                    self.drive(sink, depth + 1)?;
                }
                sink.end_dict();
                Ok(())
            }
            Kind::FixExt(_) | Kind::Ext(_) => match self.ext_body(marker, k).map_err(fail)? {
                (0, [0]) => sink.null(),
                (ext_type, _) => Err(EncodeError::new(format!(
                    "payload: MessagePack ext type {ext_type} cannot be transcoded to another serializer"
                ))),
            },
            Kind::Unused => Err(fail(self.bad("reserved marker 0xc1"))),
        }
    }
}

/// Drives `sink` with the `count` concatenated MessagePack elements of a payload span.
pub(crate) fn drive_payload<S: Sink>(
    raw: &[u8],
    count: u8,
    sink: &mut S,
) -> Result<(), EncodeError> {
    let mut reader = MsgPackReader::new(raw);
    for index in 0..count {
        sink.item(u32::from(index));
        reader.drive(sink, 2)?;
    }
    if reader.pos != raw.len() {
        return Err(EncodeError::new(
            "payload: unexpected bytes after the last element",
        ));
    }
    Ok(())
}

/// The MessagePack writer: smallest encodings, str8 for strings, bin for binary.
pub(crate) mod write {
    use super::super::sink::{self, MsgPackWriter};
    use super::super::value::Dict;
    use super::super::EncodeError;

    #[inline]
    pub(crate) fn nil(out: &mut Vec<u8>) {
        out.push(0xc0);
    }

    #[inline]
    pub(crate) fn bool(out: &mut Vec<u8>, b: bool) {
        out.push(if b { 0xc3 } else { 0xc2 });
    }

    #[inline]
    pub(crate) fn uint(out: &mut Vec<u8>, v: u64) {
        if v < 0x80 {
            out.push(v as u8);
        } else if v <= 0xff {
            out.extend_from_slice(&[0xcc, v as u8]);
        } else if v <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        } else if v <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    #[inline]
    pub(crate) fn int(out: &mut Vec<u8>, v: i64) {
        if v >= 0 {
            uint(out, v as u64);
        } else if v >= -32 {
            out.push(v as i8 as u8);
        } else if v >= i64::from(i8::MIN) {
            out.extend_from_slice(&[0xd0, v as i8 as u8]);
        } else if v >= i64::from(i16::MIN) {
            out.push(0xd1);
            out.extend_from_slice(&(v as i16).to_be_bytes());
        } else if v >= i64::from(i32::MIN) {
            out.push(0xd2);
            out.extend_from_slice(&(v as i32).to_be_bytes());
        } else {
            out.push(0xd3);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }

    #[inline]
    pub(crate) fn f64(out: &mut Vec<u8>, v: f64) {
        out.push(0xcb);
        out.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    /// A header whose small form puts the length in the marker (`fix`, up to `fix_max`), then
    /// 8/16/32-bit length forms (`m8` absent for array/map: pass 0).
    #[inline]
    fn header(out: &mut Vec<u8>, len: usize, fix: u8, fix_max: usize, m8: u8, m16: u8, m32: u8) {
        if len <= fix_max {
            out.push(fix | len as u8);
        } else if m8 != 0 && len <= 0xff {
            out.extend_from_slice(&[m8, len as u8]);
        } else if len <= 0xffff {
            out.push(m16);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(m32);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }

    #[inline]
    pub(crate) fn str(out: &mut Vec<u8>, s: &str) {
        header(out, s.len(), 0xa0, 31, 0xd9, 0xda, 0xdb);
        out.extend_from_slice(s.as_bytes());
    }

    #[inline]
    pub(crate) fn bin(out: &mut Vec<u8>, b: &[u8]) {
        // bin has no fix form: a "fix_max" that never matches.
        if b.len() <= 0xff {
            out.extend_from_slice(&[0xc4, b.len() as u8]);
        } else if b.len() <= 0xffff {
            out.push(0xc5);
            out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        } else {
            out.push(0xc6);
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        }
        out.extend_from_slice(b);
    }

    #[inline]
    pub(crate) fn array_len(out: &mut Vec<u8>, len: u32) {
        header(out, len as usize, 0x90, 15, 0, 0xdc, 0xdd);
    }

    /// An empty map (fixmap of length 0).
    pub(crate) const EMPTY_MAP: u8 = 0x80;

    #[inline]
    pub(crate) fn map_len(out: &mut Vec<u8>, len: u32) {
        header(out, len as usize, 0x80, 15, 0, 0xde, 0xdf);
    }

    /// Values are written through the MessagePack value sink, the one writer of its values;
    /// it cannot fail.
    pub(crate) fn dict(out: &mut Vec<u8>, dict: &Dict<'_>) -> Result<(), EncodeError> {
        sink::dict_into(dict, &mut MsgPackWriter { out })
    }
}

super::sink::binary_sink!(MsgPackWriter, write);

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Value<'_>, Fail> {
        let mut r = MsgPackReader::new(bytes);
        let v = r.read_value(1)?;
        assert_eq!(r.pos, bytes.len());
        Ok(v)
    }

    #[test]
    fn integers_all_widths() {
        assert_eq!(read(&[0x05]).unwrap(), Value::UInt(5));
        assert_eq!(read(&[0xcc, 0xff]).unwrap(), Value::UInt(255));
        assert_eq!(read(&[0xcd, 0x01, 0x00]).unwrap(), Value::UInt(256));
        assert_eq!(read(&[0xd0, 0x05]).unwrap(), Value::UInt(5));
        assert_eq!(read(&[0xd0, 0xff]).unwrap(), Value::Int(-1));
        assert_eq!(read(&[0xff]).unwrap(), Value::Int(-1));
        assert_eq!(read(&[0xe0]).unwrap(), Value::Int(-32));
        assert_eq!(
            read(&[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            Value::Int(i64::MIN)
        );
        for (bytes, expected) in [
            (&[0xcc, 0xff][..], 255u64),
            (&[0xcd, 0x01, 0x02], 0x0102),
            (&[0xce, 0x01, 0x02, 0x03, 0x04], 0x0102_0304),
            (&[0xcf, 0, 0x20, 0, 0, 0, 0, 0, 0], 1 << 53),
        ] {
            let mut r = MsgPackReader::new(bytes);
            assert_eq!(r.read_uint(), Ok(expected), "{bytes:x?}");
            assert_eq!(r.pos, bytes.len(), "{bytes:x?} read whole");
        }
        for truncated in [
            &[0xcc][..],
            &[0xcd, 0x01],
            &[0xce, 1, 2, 3],
            &[0xcf, 1, 2, 3, 4],
        ] {
            let mut r = MsgPackReader::new(truncated);
            assert!(
                matches!(r.read_uint(), Err(Fail::Bad(_))),
                "{truncated:x?} is cut short"
            );
        }
        let mut r = MsgPackReader::new(&[0xd2, 0x00, 0x00, 0x01, 0x00]);
        assert_eq!(r.read_uint().unwrap(), 256);
        let mut r = MsgPackReader::new(&[0xd2, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.read_uint(), Err(Fail::WrongType));
        let mut r = MsgPackReader::new(&[0xc3]);
        assert_eq!(
            r.read_uint(),
            Err(Fail::WrongType),
            "a bool is never an integer"
        );
    }

    #[test]
    fn writer_picks_smallest_encoding() {
        for (v, len) in [
            (0u64, 1),
            (127, 1),
            (128, 2),
            (255, 2),
            (256, 3),
            (65536, 5),
            (1 << 32, 9),
        ] {
            let mut out = Vec::new();
            write::uint(&mut out, v);
            assert_eq!(out.len(), len, "{v}");
            assert_eq!(read(&out).unwrap(), Value::UInt(v));
        }
        for v in [
            -1i64,
            -32,
            -33,
            -128,
            -129,
            -32768,
            -32769,
            i64::from(i32::MIN) - 1,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            write::int(&mut out, v);
            assert_eq!(read(&out).unwrap(), Value::Int(v));
        }
        let mut out = Vec::new();
        write::str(&mut out, &"x".repeat(40));
        assert_eq!(&out[..2], &[0xd9, 40]);
    }

    #[test]
    fn undefined_is_null_other_ext_fails() {
        assert_eq!(read(&[0xd4, 0x00, 0x00]).unwrap(), Value::Null);
        assert_eq!(read(&[0xc7, 0x01, 0x00, 0x00]).unwrap(), Value::Null);
        assert!(read(&[0xd4, 0x01, 0x00]).is_err());
        assert!(read(&[0xd6, 0xff, 0, 0, 0, 0]).is_err());
        let mut out = Vec::new();
        assert!(transcode_to_json(&[0xd4, 0x05, 0x00], 1, &mut out).is_err());
        let mut out = Vec::new();
        transcode_to_json(&[0x91, 0xd4, 0x00, 0x00], 1, &mut out).unwrap();
        assert_eq!(out, b"[null]");
    }

    #[test]
    fn bounds_are_checked_before_allocating() {
        assert!(read(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(read(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a']).is_err());
        assert!(read(&[0xdf, 0xff, 0xff, 0xff, 0xff]).is_err());
        let mut r = MsgPackReader::new(&[0xdf, 0xff, 0xff, 0xff, 0xff]);
        assert!(r.skip_value(1).is_err());
        assert!(read(&[0xc1]).is_err());
    }

    #[test]
    fn map_keys_must_be_strings_for_dicts_and_json() {
        assert!(read(&[0x81, 0x01, 0x02]).is_err());
        let mut out = Vec::new();
        assert!(transcode_to_json(&[0x81, 0x01, 0x02], 1, &mut out).is_err());
    }

    #[test]
    fn depth_is_bounded() {
        let deep = vec![0x91; 100];
        assert!(read(&deep).is_err());
        let mut r = MsgPackReader::new(&deep);
        assert!(r.skip_value(1).is_err());
    }

    fn transcode_to_json(raw: &[u8], count: u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        drive_payload(raw, count, &mut crate::wire::sink::JsonWriter { out })
    }

    #[test]
    fn transcode_to_json_values() {
        let mut out = Vec::new();
        let raw = [
            0x93, 0xc4, 0x02, 0x01, 0x02, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xa2, b'\n', b'"',
        ];
        transcode_to_json(&raw, 1, &mut out).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"["\u0000AQI=",1.5,"\n\""]"#
        );
        let nan = [0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0];
        assert!(transcode_to_json(&nan, 1, &mut Vec::new()).is_err()); // A string that JSON would read back as binary (found by the msgpack_decode fuzz target).
        let nul = [0x91, 0xa3, 0, b'a', b'b'];
        assert!(transcode_to_json(&nul, 1, &mut Vec::new()).is_err());
        let nul_key = [0x81, 0xa2, 0, b'k', 0x01];
        transcode_to_json(&nul_key, 1, &mut out).unwrap();
    }
}
