//! The application payloads the generator sends, in the raw `Payload` layout of
//! `wampring::wire` (the encoded Arguments list, spliced into messages as is).
//!
//! * RPC: `[PAD]` — one string of `--payload` bytes (`x` repeated); no payload at all for 0.
//!   The echo callee returns the Arguments unchanged.
//! * PubSub: `[PUBLISHER, SEQ, SENT_NS, PAD]` — the publisher's index, its sequence number,
//!   the (intended) send time on the process clock, then the padding string. Subscribers parse
//!   the three integers back ([`parse_stamp`]) to detect loss and duplicates exactly and to
//!   measure delivery latency. The parser accepts any JSON spacing and any MessagePack integer
//!   width, so a router that re-encodes the payload is measured correctly. CBOR stamps are read
//!   at fixed places when they are laid out as the generator wrote them, and through the
//!   general `wire` payload decoder otherwise (any head width, indefinite lengths, ...).

use wampring::serializer::Serializer;
use wampring::wire::{self, Payload};

/// Writes the Arguments list `[PAD]` (a string of `size` bytes) into `out`; `size == 0` writes
/// nothing (a call without payload). Returns the element count for [`Payload::count`].
pub fn write_padding_args(serializer: Serializer, size: usize, out: &mut Vec<u8>) -> u8 {
    out.clear();
    if size == 0 {
        return 0;
    }
    match serializer {
        Serializer::Json => out.push(b'['),
        Serializer::MsgPack => out.push(0x91),
        Serializer::Cbor => out.push(0x81),
    }
    write_padding(serializer, size, out);
    if serializer == Serializer::Json {
        out.push(b']');
    }
    1
}

/// The identity of one publish, carried in its payload.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub publisher: u64,
    pub seq: u64,
    pub sent_ns: u64,
}

/// Writes the Arguments list `[PUBLISHER, SEQ, SENT_NS, PAD]` into `out` (cleared first).
pub fn write_stamped_args(serializer: Serializer, stamp: Stamp, pad: usize, out: &mut Vec<u8>) {
    out.clear();
    match serializer {
        Serializer::Json => {
            use std::io::Write;
            // Writing into a Vec cannot fail.
            let _ = write!(out, "[{},{},{},", stamp.publisher, stamp.seq, stamp.sent_ns);
            write_padding(serializer, pad, out);
            out.push(b']');
        }
        Serializer::MsgPack => {
            out.push(0x94);
            for value in [stamp.publisher, stamp.seq, stamp.sent_ns] {
                out.push(0xcf);
                out.extend_from_slice(&value.to_be_bytes());
            }
            write_padding(serializer, pad, out);
        }
        Serializer::Cbor => {
            // Three uint64 with eight-byte arguments (0x1b), not the shortest heads: every
            // stamp then has the same layout, which parse_own_cbor_stamp reads at fixed places.
            out.push(0x84);
            for value in [stamp.publisher, stamp.seq, stamp.sent_ns] {
                out.push(0x1b);
                out.extend_from_slice(&value.to_be_bytes());
            }
            write_padding(serializer, pad, out);
        }
    }
}

fn write_padding(serializer: Serializer, size: usize, out: &mut Vec<u8>) {
    match serializer {
        Serializer::Json => {
            out.push(b'"');
            out.resize(out.len() + size, b'x');
            out.push(b'"');
        }
        Serializer::MsgPack => {
            if size < 32 {
                out.push(0xa0 | size as u8);
            } else if size < 256 {
                out.extend_from_slice(&[0xd9, size as u8]);
            } else if size < 65536 {
                out.push(0xda);
                out.extend_from_slice(&(size as u16).to_be_bytes());
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(size as u32).to_be_bytes());
            }
            out.resize(out.len() + size, b'x');
        }
        Serializer::Cbor => {
            // A text string (major type 3), shortest head.
            crate::outgoing::write_cbor_head(3, size as u64, out);
            out.resize(out.len() + size, b'x');
        }
    }
}

/// Reads the stamp back from a received EVENT payload; `None` when the payload is not one the
/// generator sent (counted as an error, never a panic).
#[inline]
pub fn parse_stamp(payload: &Payload<'_>) -> Option<Stamp> {
    if payload.count == 0 {
        return None;
    }
    let mut values = [0u64; 3];
    match payload.ser {
        Serializer::Json => {
            let mut cursor = JsonCursor {
                bytes: payload.raw,
                at: 0,
            };
            cursor.expect(b'[')?;
            for (i, value) in values.iter_mut().enumerate() {
                if i > 0 {
                    cursor.expect(b',')?;
                }
                *value = cursor.unsigned()?;
            }
            cursor.expect(b',')?;
        }
        Serializer::MsgPack => {
            let raw = payload.raw;
            if let Some(stamp) = parse_own_msgpack_stamp(raw) {
                return Some(stamp);
            }
            let (len, mut at) = match *raw.first()? {
                b @ 0x90..=0x9f => ((b & 0x0f) as usize, 1),
                0xdc => (
                    u16::from_be_bytes(raw.get(1..3)?.try_into().ok()?) as usize,
                    3,
                ),
                0xdd => (
                    u32::from_be_bytes(raw.get(1..5)?.try_into().ok()?) as usize,
                    5,
                ),
                _ => return None,
            };
            if len < 4 {
                return None;
            }
            for value in values.iter_mut() {
                let (v, used) = msgpack_unsigned(raw.get(at..)?)?;
                *value = v;
                at += used;
            }
        }
        Serializer::Cbor => {
            if let Some(stamp) = parse_own_cbor_stamp(payload.raw) {
                return Some(stamp);
            }
            return parse_cbor_stamp(payload);
        }
    }
    Some(Stamp {
        publisher: values[0],
        seq: values[1],
        sent_ns: values[2],
    })
}

/// The layout `write_stamped_args` itself produces (fixarray, three uint64 at fixed offsets):
/// what arrives from every router that forwards payloads unchanged, read without branching per
/// integer.
#[inline]
fn parse_own_msgpack_stamp(raw: &[u8]) -> Option<Stamp> {
    let head: &[u8; 28] = raw.get(..28)?.try_into().ok()?;
    if head[0] != 0x94 || head[1] != 0xcf || head[10] != 0xcf || head[19] != 0xcf {
        return None;
    }
    let at = |i: usize| u64::from_be_bytes(head[i..i + 8].try_into().unwrap_or_default());
    Some(Stamp {
        publisher: at(2),
        seq: at(11),
        sent_ns: at(20),
    })
}

/// The layout `write_stamped_args` writes in CBOR (array of four, three uint64 with 0x1b heads
/// at fixed offsets), as every router that forwards CBOR payloads unchanged delivers it.
#[inline]
fn parse_own_cbor_stamp(raw: &[u8]) -> Option<Stamp> {
    let head: &[u8; 28] = raw.get(..28)?.try_into().ok()?;
    if head[0] != 0x84 || head[1] != 0x1b || head[10] != 0x1b || head[19] != 0x1b {
        return None;
    }
    let at = |i: usize| u64::from_be_bytes(head[i..i + 8].try_into().unwrap_or_default());
    Some(Stamp {
        publisher: at(2),
        seq: at(11),
        sent_ns: at(20),
    })
}

/// Any other CBOR stamp (shortest heads, indefinite-length arrays, a self-describe tag, ...),
/// through the general payload decoder: at least four Arguments, the first three non-negative
/// integers. Slow, but only taken when a router re-encoded the payload.
#[cold]
fn parse_cbor_stamp(payload: &Payload<'_>) -> Option<Stamp> {
    let (args, _) = wire::decode_payload_values(payload).ok()?;
    if args.len() < 4 {
        return None;
    }
    let unsigned = |v: &wire::Value<'_>| match *v {
        wire::Value::UInt(n) => Some(n),
        wire::Value::Int(n) => u64::try_from(n).ok(),
        _ => None,
    };
    Some(Stamp {
        publisher: unsigned(&args[0])?,
        seq: unsigned(&args[1])?,
        sent_ns: unsigned(&args[2])?,
    })
}

struct JsonCursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl JsonCursor<'_> {
    fn skip_space(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    fn unsigned(&mut self) -> Option<u64> {
        self.skip_space();
        let (value, len) = wire::peek::leading_decimal(self.bytes.get(self.at..)?)?;
        self.at += len;
        // A router that turned the integer into a float ("5.0") or exponent form is not
        // supported: such a payload is reported as malformed.
        (len > 0 && !matches!(self.bytes.get(self.at), Some(b'.' | b'e' | b'E'))).then_some(value)
    }
}

/// A non-negative MessagePack integer of any width; returns the value and the bytes used.
#[inline]
pub fn msgpack_unsigned(raw: &[u8]) -> Option<(u64, usize)> {
    let tag = *raw.first()?;
    let be = |n: usize| -> Option<u64> {
        let bytes = raw.get(1..1 + n)?;
        Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    };
    let signed_ok = |v: u64, n: usize| -> Option<(u64, usize)> {
        // Signed encodings are accepted when non-negative (some encoders prefer them).
        let shift = 64 - 8 * n as u32;
        let as_signed = ((v << shift) as i64) >> shift;
        (as_signed >= 0).then_some((as_signed as u64, 1 + n))
    };
    match tag {
        0x00..=0x7f => Some((u64::from(tag), 1)),
        0xcc => Some((be(1)?, 2)),
        0xcd => Some((be(2)?, 3)),
        0xce => Some((be(4)?, 5)),
        0xcf => Some((be(8)?, 9)),
        0xd0 => signed_ok(be(1)?, 1),
        0xd1 => signed_ok(be(2)?, 2),
        0xd2 => signed_ok(be(4)?, 4),
        0xd3 => signed_ok(be(8)?, 8),
        _ => None,
    }
}

/// A CBOR unsigned integer (major type 0) of any head width; returns the value and the bytes
/// used.
#[inline]
pub fn cbor_unsigned(raw: &[u8]) -> Option<(u64, usize)> {
    let tag = *raw.first()?;
    let be = |n: usize| -> Option<(u64, usize)> {
        let bytes = raw.get(1..1 + n)?;
        Some((
            bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
            1 + n,
        ))
    };
    match tag {
        0x00..=0x17 => Some((u64::from(tag), 1)),
        0x18 => be(1),
        0x19 => be(2),
        0x1a => be(4),
        0x1b => be(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(ser: Serializer, raw: &[u8]) -> Payload<'_> {
        Payload { ser, count: 1, raw }
    }

    #[test]
    fn padding_args() {
        let mut out = Vec::new();
        assert_eq!(write_padding_args(Serializer::Json, 0, &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(write_padding_args(Serializer::Json, 3, &mut out), 1);
        assert_eq!(out, b"[\"xxx\"]");
        write_padding_args(Serializer::MsgPack, 3, &mut out);
        assert_eq!(out, [0x91, 0xa3, b'x', b'x', b'x']);
        write_padding_args(Serializer::MsgPack, 300, &mut out);
        assert_eq!(&out[..4], &[0x91, 0xda, 0x01, 0x2c]);
        assert_eq!(out.len(), 4 + 300);
        write_padding_args(Serializer::MsgPack, 70_000, &mut out);
        assert_eq!(out[1], 0xdb);
        assert_eq!(out.len(), 6 + 70_000);
    }

    #[test]
    fn cbor_padding_args_take_the_shortest_text_head() {
        let mut out = Vec::new();
        assert_eq!(write_padding_args(Serializer::Cbor, 0, &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(write_padding_args(Serializer::Cbor, 3, &mut out), 1);
        assert_eq!(out, [0x81, 0x63, b'x', b'x', b'x']);
        write_padding_args(Serializer::Cbor, 23, &mut out);
        assert_eq!((out[1], out.len()), (0x77, 2 + 23));
        write_padding_args(Serializer::Cbor, 24, &mut out);
        assert_eq!(&out[..3], &[0x81, 0x78, 24]);
        assert_eq!(out.len(), 3 + 24);
        write_padding_args(Serializer::Cbor, 300, &mut out);
        assert_eq!(&out[..4], &[0x81, 0x79, 0x01, 0x2c]);
        assert_eq!(out.len(), 4 + 300);
        write_padding_args(Serializer::Cbor, 70_000, &mut out);
        assert_eq!(&out[..6], &[0x81, 0x7a, 0x00, 0x01, 0x11, 0x70]);
        assert_eq!(out.len(), 6 + 70_000);
        // What the router's decoder reads back: one string of that many x.
        for size in [1, 23, 24, 255, 256, 65_536] {
            write_padding_args(Serializer::Cbor, size, &mut out);
            let (args, kwargs) = wire::decode_payload_values(&Payload {
                ser: Serializer::Cbor,
                count: 1,
                raw: &out,
            })
            .unwrap();
            assert_eq!(kwargs, None);
            assert_eq!(args, vec![wire::Value::Str("x".repeat(size).into())]);
        }
    }

    #[test]
    fn stamps_round_trip_in_every_serializer() {
        let stamp = Stamp {
            publisher: 3,
            seq: 1 << 40,
            sent_ns: u64::MAX - 1,
        };
        for ser in Serializer::ALL {
            for pad in [0, 10, 1000] {
                let mut out = Vec::new();
                write_stamped_args(ser, stamp, pad, &mut out);
                assert_eq!(
                    parse_stamp(&payload(ser, &out)),
                    Some(stamp),
                    "{ser} pad {pad}"
                );
            }
        }
    }

    #[test]
    fn reencoded_payloads_still_parse() {
        let json = br#" [ 1 , 2,	3 , "xx" ] "#;
        assert_eq!(
            parse_stamp(&payload(Serializer::Json, json)),
            Some(Stamp {
                publisher: 1,
                seq: 2,
                sent_ns: 3
            })
        );
        // Minimal-width and signed MessagePack integers, array16 header.
        let msgpack = [
            0xdc, 0x00, 0x04, 0x01, 0xcd, 0x01, 0x00, 0xd2, 0, 0, 0, 7, 0xa0,
        ];
        assert_eq!(
            parse_stamp(&payload(Serializer::MsgPack, &msgpack)),
            Some(Stamp {
                publisher: 1,
                seq: 256,
                sent_ns: 7
            })
        );
    }

    /// Bytes, and the value and length `cbor_unsigned` must read from them.
    type UnsignedCase = (&'static [u8], Option<(u64, usize)>);

    #[test]
    fn cbor_unsigned_reads_every_head_width() {
        let cases: [UnsignedCase; 9] = [
            (&[0x00], Some((0, 1))),
            (&[0x17, 0xff], Some((23, 1))),
            (&[0x18, 0x30], Some((48, 2))),
            (&[0x19, 0x01, 0x00], Some((256, 3))),
            (&[0x1a, 0, 1, 0, 0], Some((65_536, 5))),
            (
                &[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Some((u64::MAX, 9)),
            ),
            // Truncated, negative (major type 1), indefinite/reserved.
            (&[0x19, 0x01], None),
            (&[0x20], None),
            (&[0x1f], None),
        ];
        for (raw, expected) in cases {
            assert_eq!(cbor_unsigned(raw), expected, "{raw:?}");
        }
        assert_eq!(cbor_unsigned(&[]), None);
    }

    #[test]
    fn reencoded_cbor_stamps_still_parse() {
        let stamp = |publisher, seq, sent_ns| Stamp {
            publisher,
            seq,
            sent_ns,
        };
        // Shortest heads: 1 inline, 256 as 0x19, 7 inline; padding "".
        let shortest = [0x84, 0x01, 0x19, 0x01, 0x00, 0x07, 0x60];
        assert_eq!(
            parse_stamp(&payload(Serializer::Cbor, &shortest)),
            Some(stamp(1, 256, 7))
        );
        // Indefinite-length array, a one-byte head for 24, a padding string and an extra element.
        let indefinite = [
            0x9f, 0x00, 0x18, 24, 0x1a, 0, 1, 0, 0, 0x61, b'x', 0xf6, 0xff,
        ];
        assert_eq!(
            parse_stamp(&payload(Serializer::Cbor, &indefinite)),
            Some(stamp(0, 24, 65_536))
        );
        // The generator's own layout, checked at its fixed offsets.
        let mut own = Vec::new();
        write_stamped_args(Serializer::Cbor, stamp(5, 6, u64::MAX), 2, &mut own);
        assert_eq!(own.len(), 1 + 3 * 9 + 1 + 2);
        assert_eq!((own[0], own[1], own[10], own[19]), (0x84, 0x1b, 0x1b, 0x1b));
        assert_eq!(parse_own_cbor_stamp(&own), Some(stamp(5, 6, u64::MAX)));
        assert_eq!(parse_own_cbor_stamp(&shortest), None);
    }

    #[test]
    fn foreign_payloads_are_rejected_not_panicked_on() {
        let bad_json: [&[u8]; 7] = [
            b"",
            b"[",
            b"[1,2]",
            b"[1,2,3]",
            b"[-1,2,3,\"\"]",
            b"[1.5,2,3,\"\"]",
            b"{\"a\":1}",
        ];
        for raw in bad_json {
            assert_eq!(
                parse_stamp(&payload(Serializer::Json, raw)),
                None,
                "{raw:?}"
            );
        }
        assert_eq!(
            parse_stamp(&payload(
                Serializer::Json,
                b"[99999999999999999999999,1,1,\"\"]"
            )),
            None
        );
        let bad_msgpack: [&[u8]; 5] = [
            b"",
            &[0x93, 1, 2, 3],
            &[0x94, 1, 2],
            &[0x94, 0xd0, 0xff, 1, 1],
            &[0xc0],
        ];
        for raw in bad_msgpack {
            assert_eq!(
                parse_stamp(&payload(Serializer::MsgPack, raw)),
                None,
                "{raw:?}"
            );
        }
        let bad_cbor: [&[u8]; 9] = [
            b"",
            // Three elements only.
            &[0x83, 1, 2, 3],
            // Truncated.
            &[0x84, 1, 2],
            &[0x84, 0x1b, 0, 0],
            // A negative integer (major type 1) as the publisher.
            &[0x84, 0x20, 1, 1, 0x60],
            // A float as the sequence number.
            &[0x84, 1, 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 2, 0x60],
            // Not an array; null.
            &[0xa0],
            &[0xf6],
            // Trailing bytes after the Arguments.
            &[0x84, 1, 2, 3, 0x60, 0x00],
        ];
        for raw in bad_cbor {
            assert_eq!(
                parse_stamp(&payload(Serializer::Cbor, raw)),
                None,
                "{raw:?}"
            );
        }
        assert_eq!(
            parse_stamp(&Payload {
                ser: Serializer::Json,
                count: 0,
                raw: b""
            }),
            None
        );
    }
}
