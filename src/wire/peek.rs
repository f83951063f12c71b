//! peek: the head of a WAMP message — its type code, the ids that follow it, and where the
//! elements after its first Options/Details dict begin — without decoding the rest.
//!
//! For a receiver that only needs to know which message arrived and for which request, such as
//! a load generator taking in millions of EVENTs, RESULTs and INVOCATIONs, a full [`decode`]
//! spends most of its time on parts it then throws away (building the dict, validating the
//! payload). `peek` reads and checks only what it returns; the remaining elements are handed
//! back as raw bytes in the message's own serializer and are NOT validated. Anything that is
//! not shaped `[code, id*, dict?, ...]` gives `None`, and the caller falls back to [`decode`].
//!
//! [`decode`]: crate::wire::decode

use super::cbor::CborReader;
use super::json::JsonReader;
use super::msgpack::MsgPackReader;
use crate::serializer::Serializer;

/// Most ids any message carries between its code and its first dict (EVENT, INVOCATION: two;
/// ERROR: request type and request).
const MAX_IDS: usize = 3;

/// What [`peek`] read from the front of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head<'a> {
    pub code: u64,
    /// The non-negative integers directly after the code, in order (EVENT: subscription,
    /// publication; RESULT: request; INVOCATION: request, registration; PUBLISHED: request,
    /// publication; ERROR: request type, request).
    ids: [u64; MAX_IDS],
    id_count: usize,
    /// The raw bytes of the dict that followed the ids (skipped, and checked to be
    /// well-formed); empty when there is none.
    pub dict: &'a [u8],
    /// The elements after the dict, undecoded. MessagePack and CBOR: those elements back to back.
    /// JSON: from the first of them to the end of the frame, the message's closing `]`
    /// included. Empty when the message ends after the dict (or has no dict).
    pub rest: &'a [u8],
    /// How many elements `rest` holds. MessagePack counts them; JSON: 1 means "one or more".
    pub rest_elements: usize,
}

impl Head<'_> {
    fn new(code: u64) -> Self {
        Head {
            code,
            ids: [0; MAX_IDS],
            id_count: 0,
            dict: &[],
            rest: &[],
            rest_elements: 0,
        }
    }

    /// Whether a dict followed the ids.
    pub fn has_dict(&self) -> bool {
        !self.dict.is_empty()
    }

    /// The ids after the code (see the field's doc).
    pub fn ids(&self) -> &[u64] {
        &self.ids[..self.id_count]
    }

    /// Whether the dict is there and has no entries: `{}` (any spacing), MessagePack 0x80 or
    /// CBOR 0xa0.
    /// Lets a receiver skip looking into Details it does not use, e.g. RESULT's `progress`.
    pub fn dict_is_empty(&self) -> bool {
        match self.dict {
            [0x80] | [0xa0] => true,
            [b'{', inner @ .., b'}'] => inner
                .iter()
                .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')),
            _ => false,
        }
    }

    /// The `i`-th id after the code.
    pub fn id(&self, i: usize) -> Option<u64> {
        self.ids().get(i).copied()
    }
}

/// The value of the ASCII digits `bytes` starts with, and how many there are (0 when it starts
/// with something else); `None` when the value does not fit in a u64. For readers of JSON
/// payloads that need a few integers out of them (the JSON decoder's own integer reader).
#[inline]
pub fn leading_decimal(bytes: &[u8]) -> Option<(u64, usize)> {
    super::json::leading_digits(bytes)
}

/// The type code of `frame` alone, from its first few bytes, for counting messages by type
/// (`None`: not shaped `[code, ...`, or a code past 255). Checks nothing else.
#[inline]
pub fn peek_code(ser: Serializer, frame: &[u8]) -> Option<u8> {
    match ser {
        Serializer::Cbor => {
            // An array head (definite up to 2^16 elements, or indefinite), then the code.
            let at = match *frame.first()? {
                0x80..=0x97 | 0x9f => 1,
                0x98 => 2,
                0x99 => 3,
                _ => return None,
            };
            match *frame.get(at)? {
                code @ 0x00..=0x17 => Some(code),
                0x18 => frame.get(at + 1).copied(),
                _ => None,
            }
        }
        Serializer::MsgPack => {
            let at = match *frame.first()? {
                0x90..=0x9f => 1,
                0xdc => 3,
                0xdd => 5,
                _ => return None,
            };
            match *frame.get(at)? {
                code @ 0x00..=0x7f => Some(code),
                0xcc => frame.get(at + 1).copied(),
                _ => None,
            }
        }
        Serializer::Json => {
            let mut bytes = frame
                .iter()
                .copied()
                .skip_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
            if bytes.next()? != b'[' {
                return None;
            }
            let mut code: u32 = 0;
            let mut digits = 0;
            for b in bytes.skip_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
                match b {
                    b'0'..=b'9' if digits < 4 => {
                        code = code * 10 + u32::from(b - b'0');
                        digits += 1;
                    }
                    _ => break,
                }
            }
            if digits == 0 {
                return None;
            }
            u8::try_from(code).ok()
        }
    }
}

/// The request type and the error URI's bytes (as written: a JSON string's escapes are left
/// in) of an ERROR message, from its head alone; `None` for anything else.
pub fn error_uri(ser: Serializer, frame: &[u8]) -> Option<(u64, &[u8])> {
    let head = peek(ser, frame)?;
    if head.code != super::code::ERROR {
        return None;
    }
    let request_type = head.id(0)?;
    let rest = head.rest;
    let uri = match ser {
        Serializer::Json => {
            let inner = rest.strip_prefix(b"\"")?;
            let end = inner.iter().position(|&b| b == b'"')?;
            &inner[..end]
        }
        Serializer::MsgPack => {
            let (len, at) = match *rest.first()? {
                b @ 0xa0..=0xbf => (usize::from(b & 0x1f), 1),
                0xd9 => (usize::from(*rest.get(1)?), 2),
                0xda => (
                    usize::from(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?])),
                    3,
                ),
                _ => return None,
            };
            rest.get(at..at + len)?
        }
        Serializer::Cbor => {
            // A definite text string (major type 3) of up to 2^16 bytes.
            let (len, at) = match *rest.first()? {
                b @ 0x60..=0x77 => (usize::from(b & 0x1f), 1),
                0x78 => (usize::from(*rest.get(1)?), 2),
                0x79 => (
                    usize::from(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?])),
                    3,
                ),
                _ => return None,
            };
            rest.get(at..at + len)?
        }
    };
    Some((request_type, uri))
}

/// Reads the head of `frame`; `None` when it is not a well-formed `[code, id*, dict?, ...]`
/// head (the caller then decodes the message fully, which reports what is wrong).
#[inline]
pub fn peek(ser: Serializer, frame: &[u8]) -> Option<Head<'_>> {
    match ser {
        Serializer::Json => peek_json(frame),
        Serializer::MsgPack => peek_msgpack(frame),
        Serializer::Cbor => peek_cbor(frame),
    }
}

/// CBOR: a definite-length message array only (an indefinite one is decoded in full).
fn peek_cbor(frame: &[u8]) -> Option<Head<'_>> {
    let mut reader = CborReader::new(frame);
    let elements = reader.container_header(4).ok()??;
    let mut remaining = elements.checked_sub(1)?;
    let code = reader.read_uint().ok()?;
    let mut head = Head::new(code);
    while remaining > 0 {
        match reader.peek_major()? {
            0 if head.id_count < MAX_IDS => {
                head.ids[head.id_count] = reader.read_uint().ok()?;
                head.id_count += 1;
                remaining -= 1;
            }
            5 => {
                let start = reader.pos;
                reader.skip_value(2).ok()?;
                head.dict = &frame[start..reader.pos];
                remaining -= 1;
                break;
            }
            _ => return None,
        }
    }
    if head.has_dict() {
        head.rest = &frame[reader.pos..];
        head.rest_elements = remaining;
    } else if reader.pos != frame.len() {
        return None;
    }
    Some(head)
}

#[inline]
fn peek_msgpack(frame: &[u8]) -> Option<Head<'_>> {
    // Read byte by byte rather than through MsgPackReader: this runs once per message on a
    // load generator's hottest path, and the head is a handful of fixed-layout bytes.
    let (elements, mut at) = match *frame.first()? {
        b @ 0x90..=0x9f => (usize::from(b & 0x0f), 1),
        0xdc => (
            usize::from(u16::from_be_bytes(frame.get(1..3)?.try_into().ok()?)),
            3,
        ),
        _ => return None,
    };
    let mut remaining = elements.checked_sub(1)?;
    let code = msgpack_uint(frame, &mut at)?;
    let mut head = Head::new(code);
    while remaining > 0 {
        match *frame.get(at)? {
            0x00..=0x7f | 0xcc..=0xcf | 0xd0..=0xd3 if head.id_count < MAX_IDS => {
                head.ids[head.id_count] = msgpack_uint(frame, &mut at)?;
                head.id_count += 1;
                remaining -= 1;
            }
            0x80 => {
                head.dict = &frame[at..at + 1];
                at += 1;
                remaining -= 1;
                break;
            }
            0x81..=0x8f | 0xde | 0xdf => {
                let mut reader = MsgPackReader::new(frame);
                reader.pos = at;
                reader.skip_value(2).ok()?;
                head.dict = &frame[at..reader.pos];
                at = reader.pos;
                remaining -= 1;
                break;
            }
            _ => return None,
        }
    }
    if head.has_dict() {
        head.rest = &frame[at..];
        head.rest_elements = remaining;
    } else if at != frame.len() {
        return None;
    }
    Some(head)
}

/// A non-negative MessagePack integer of any width at `at`, which moves past it.
#[inline]
fn msgpack_uint(frame: &[u8], at: &mut usize) -> Option<u64> {
    let marker = *frame.get(*at)?;
    let width = match marker {
        0x00..=0x7f => {
            *at += 1;
            return Some(u64::from(marker));
        }
        0xcc | 0xd0 => 1,
        0xcd | 0xd1 => 2,
        0xce | 0xd2 => 4,
        0xcf | 0xd3 => 8,
        _ => return None,
    };
    let bytes = frame.get(*at + 1..*at + 1 + width)?;
    let value = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    // Signed encodings (0xd0..=0xd3) count when non-negative: top bit of their width clear.
    if marker >= 0xd0 && bytes[0] & 0x80 != 0 {
        return None;
    }
    *at += 1 + width;
    Some(value)
}

fn peek_json(frame: &[u8]) -> Option<Head<'_>> {
    let mut reader = JsonReader::new(frame);
    reader.skip_ws();
    if reader.peek()? != b'[' {
        return None;
    }
    reader.pos += 1;
    reader.skip_ws();
    let code = reader.read_uint().ok()?;
    let mut head = Head::new(code);
    // After each element: ',' and the next one, or ']' and the end.
    loop {
        reader.skip_ws();
        match reader.peek()? {
            b']' => return closes_frame(&mut reader).then_some(head),
            b',' => reader.pos += 1,
            _ => return None,
        }
        reader.skip_ws();
        match reader.peek()? {
            b'0'..=b'9' if head.id_count < MAX_IDS => {
                head.ids[head.id_count] = reader.read_uint().ok()?;
                head.id_count += 1;
            }
            b'{' => {
                let start = reader.pos;
                reader.skip_value(2).ok()?;
                head.dict = &frame[start..reader.pos];
                break;
            }
            _ => return None,
        }
    }
    reader.skip_ws();
    match reader.peek()? {
        b']' => closes_frame(&mut reader).then_some(head),
        b',' => {
            reader.pos += 1;
            reader.skip_ws();
            head.rest = &frame[reader.pos..];
            head.rest_elements = 1;
            Some(head)
        }
        _ => None,
    }
}

/// At the message's closing `]`: whether only whitespace follows it.
fn closes_frame(reader: &mut JsonReader<'_>) -> bool {
    reader.pos += 1;
    reader.skip_ws();
    reader.pos == reader.buf.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, encode, Dict, Message, Payload};

    fn encoded(message: &Message<'_>, ser: Serializer) -> Vec<u8> {
        let mut out = Vec::new();
        encode(message, ser, &mut out).unwrap();
        out
    }

    fn payload(ser: Serializer) -> Vec<u8> {
        match ser {
            Serializer::Json => br#"[1,"two",{"x":[3]}],{"k":null}"#.to_vec(),
            Serializer::MsgPack => vec![
                0x93, 0x01, 0xa3, b't', b'w', b'o', 0x80, 0x81, 0xa1, b'k', 0xc0,
            ],
            Serializer::Cbor => vec![
                0x83, 0x01, 0x63, b't', b'w', b'o', 0xa0, 0xa1, 0x61, b'k', 0xf6,
            ],
        }
    }

    #[test]
    fn codes_and_error_uris_are_read_from_the_front_alone() {
        for ser in Serializer::ALL {
            let raw = payload(ser);
            let args = Payload {
                ser,
                count: 2,
                raw: &raw,
            };
            let error = Message::Error {
                request_type: 48,
                request: 9,
                details: Dict::new(),
                error: "wamp.error.no_such_procedure".into(),
                payload: args,
            };
            let frame = encoded(&error, ser);
            assert_eq!(peek_code(ser, &frame), Some(8), "{ser:?}");
            assert_eq!(
                error_uri(ser, &frame),
                Some((48, &b"wamp.error.no_such_procedure"[..])),
                "{ser:?}"
            );
            let goodbye = encoded(
                &Message::Goodbye {
                    details: Dict::new(),
                    reason: "wamp.close.normal".into(),
                },
                ser,
            );
            assert_eq!(peek_code(ser, &goodbye), Some(6));
            assert_eq!(error_uri(ser, &goodbye), None);
        }
        assert_eq!(peek_code(Serializer::Json, b" [ 70, 1]"), Some(70));
        assert_eq!(peek_code(Serializer::Json, b"[1234,1]"), None);
        assert_eq!(peek_code(Serializer::Json, b"{}"), None);
        assert_eq!(peek_code(Serializer::Json, b""), None);
        assert_eq!(
            peek_code(Serializer::MsgPack, &[0x92, 0xcc, 48, 1]),
            Some(48)
        );
        assert_eq!(peek_code(Serializer::MsgPack, &[0x92, 0xa1]), None);
        assert_eq!(peek_code(Serializer::MsgPack, &[0x80]), None);
    }

    #[test]
    fn heads_of_the_messages_a_client_receives() {
        for ser in Serializer::ALL {
            let raw = payload(ser);
            let args = Payload {
                ser,
                count: 2,
                raw: &raw,
            };
            let mut details = Dict::new();
            details.insert("publisher", 7u64);
            details.insert("topic", "a.b");
            let cases: Vec<(Message<'_>, u64, Vec<u64>, bool)> = vec![
                (
                    Message::Event {
                        subscription: 5,
                        publication: 1 << 52,
                        details: details.clone(),
                        payload: args,
                    },
                    36,
                    vec![5, 1 << 52],
                    true,
                ),
                (
                    Message::Result {
                        request: 300,
                        details: Dict::new(),
                        payload: args,
                    },
                    50,
                    vec![300],
                    true,
                ),
                (
                    Message::Invocation {
                        request: 1,
                        registration: 70_000,
                        details,
                        payload: args,
                    },
                    68,
                    vec![1, 70_000],
                    true,
                ),
                (
                    Message::Published {
                        request: 9,
                        publication: 10,
                    },
                    17,
                    vec![9, 10],
                    false,
                ),
            ];
            for (message, code, ids, with_rest) in cases {
                let frame = encoded(&message, ser);
                let head = peek(ser, &frame).unwrap_or_else(|| panic!("{ser} {message:?}"));
                assert_eq!(head.code, code, "{ser}");
                assert_eq!(head.ids(), &ids[..], "{ser} {message:?}");
                assert_eq!(head.has_dict(), with_rest);
                if with_rest {
                    // The raw rest, closed as its own array, decodes to the same payload.
                    let mut again = Vec::new();
                    match ser {
                        Serializer::Json => {
                            again.extend_from_slice(b"[50,1,{},");
                            again.extend_from_slice(head.rest);
                        }
                        Serializer::MsgPack => {
                            again.extend_from_slice(&[
                                0x90 | (3 + head.rest_elements as u8),
                                50,
                                1,
                                0x80,
                            ]);
                            again.extend_from_slice(head.rest);
                        }
                        Serializer::Cbor => {
                            again.extend_from_slice(&[
                                0x80 | (3 + head.rest_elements as u8),
                                0x18,
                                50,
                                1,
                                0xa0,
                            ]);
                            again.extend_from_slice(head.rest);
                        }
                    }
                    let Ok(Message::Result { payload: p, .. }) = decode(ser, &again) else {
                        panic!("{ser}: rest does not re-decode");
                    };
                    assert_eq!(p.raw, &raw[..], "{ser}");
                    assert_eq!(
                        head.rest_elements,
                        if ser == Serializer::Json { 1 } else { 2 }
                    );
                }
            }
            // Without payload the rest is empty.
            let bare = encoded(
                &Message::Result {
                    request: 4,
                    details: Dict::new(),
                    payload: Payload::empty(ser),
                },
                ser,
            );
            let head = peek(ser, &bare).unwrap();
            assert_eq!(
                (head.code, head.id(0), head.rest, head.rest_elements),
                (50, Some(4), &b""[..], 0)
            );
        }
    }

    #[test]
    fn msgpack_integers_of_every_width_and_long_arrays_are_read() {
        let frame = [
            0xdc, 0, 5, 36, 0xd1, 0x01, 0x00, 0xce, 0, 0, 0, 9, 0x80, 0xc0,
        ];
        let head = peek(Serializer::MsgPack, &frame).unwrap();
        assert_eq!((head.code, head.ids()), (36, &[256, 9][..]));
        assert!(head.dict_is_empty());
        assert_eq!((head.rest, head.rest_elements), (&[0xc0][..], 1));
        let wide = [
            0x93, 0xcc, 36, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 0x81, 0xa1, b'a', 1,
        ];
        let head = peek(Serializer::MsgPack, &wide).unwrap();
        assert_eq!((head.code, head.ids()), (36, &[1 << 32][..]));
        assert_eq!(head.dict, &[0x81, 0xa1, b'a', 1]);
    }

    #[test]
    fn json_spacing_is_accepted() {
        let frame = b" [ 36 , 2 ,\t3 , { \"a\" : [ 1 ] } , [ 4 ] ] ";
        let head = peek(Serializer::Json, frame).unwrap();
        assert_eq!((head.code, head.ids()), (36, &[2, 3][..]));
        assert_eq!(head.dict, br#"{ "a" : [ 1 ] }"#);
        assert!(!head.dict_is_empty());
        let empty = peek(Serializer::Json, b"[50,1,{ }]").unwrap();
        assert!(empty.dict_is_empty());
        assert_eq!(head.rest, b"[ 4 ] ] ");
    }

    #[test]
    fn malformed_heads_are_refused_not_panicked_on() {
        let json: [&[u8]; 12] = [
            b"",
            b"[",
            b"{}",
            b"[36",
            b"[36,",
            b"[-1,2]",
            b"[36,1.5,{}]",
            b"[36,1,{]",
            b"[36,1,{}",
            b"[36,1,{} x",
            b"[17,1,2] x",
            b"[36,\"a\",{}]",
        ];
        for frame in json {
            assert_eq!(
                peek(Serializer::Json, frame),
                None,
                "{:?}",
                String::from_utf8_lossy(frame)
            );
        }
        let msgpack: [&[u8]; 7] = [
            b"",
            &[0x90],
            &[0x93, 36, 1],
            &[0x93, 36, 0xd0, 0xff, 0x80],
            &[0x93, 36, 1, 0x81],
            &[0x92, 17, 1, 0xc0],
            &[0x93, 36, 0xa1, b'x', 0x80],
        ];
        for frame in msgpack {
            assert_eq!(peek(Serializer::MsgPack, frame), None, "{frame:?}");
        }
    }
}
