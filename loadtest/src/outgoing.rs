//! The messages the generator sends on its hot paths, written without going through
//! [`wire::encode`] each time: a CALL is a pre-encoded template with the request id spliced in
//! ([`CallTemplate`]), and an echo YIELD copies the INVOCATION's raw arguments behind a new head
//! ([`echo_yield`]). The tests check both byte for byte against `wire::encode`.

use wampring::serializer::Serializer;
use wampring::wire::{self, code, Head, Message};

/// One CALL encoded once, split around its request id (the message's second element).
#[derive(Clone, Debug)]
pub struct CallTemplate {
    ser: Serializer,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
}

impl CallTemplate {
    /// Encodes `call` (a [`Message::Call`]; its request id is replaced on every use).
    pub fn new(ser: Serializer, call: &Message<'_>) -> Result<CallTemplate, wire::EncodeError> {
        let Message::Call {
            options,
            procedure,
            payload,
            ..
        } = call
        else {
            return Err(wire::EncodeError {
                message: "a CALL template needs a CALL".into(),
            });
        };
        // Request id 1 encodes as one byte in every serializer ("1" / 0x01 / 0x01), right after
        // the array header and the code: `[48,`, MessagePack 0x9N 0x30, CBOR 0x8N 0x18 0x30
        // (48 is past CBOR's inline range 0-23, so it takes a one-byte argument).
        let mut frame = Vec::new();
        wire::encode(
            &Message::Call {
                request: 1,
                options: options.clone(),
                procedure: procedure.clone(),
                payload: *payload,
            },
            ser,
            &mut frame,
        )?;
        let at = match ser {
            Serializer::Json => 4,
            Serializer::MsgPack => 2,
            Serializer::Cbor => 3,
        };
        let head_ok = match ser {
            Serializer::Json => frame.starts_with(b"[48,1,"),
            Serializer::MsgPack => frame.get(1..3) == Some(&[code::CALL as u8, 0x01]),
            Serializer::Cbor => {
                matches!(frame.first(), Some(0x84..=0x86))
                    && frame.get(1..4) == Some(&[0x18, code::CALL as u8, 0x01])
            }
        };
        if !head_ok {
            return Err(wire::EncodeError {
                message: "unexpected CALL layout".into(),
            });
        }
        Ok(CallTemplate {
            ser,
            prefix: frame[..at].to_vec(),
            suffix: frame[at + 1..].to_vec(),
        })
    }

    /// Writes the CALL with `request` into `out` (cleared first).
    pub fn write(&self, request: u64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.prefix);
        write_id(self.ser, request, out);
        out.extend_from_slice(&self.suffix);
    }
}

/// Writes a YIELD for invocation `request` carrying the INVOCATION's own arguments (`head.rest`,
/// as peeked) into `out` (cleared first).
pub fn echo_yield(ser: Serializer, request: u64, head: &Head<'_>, out: &mut Vec<u8>) {
    out.clear();
    match ser {
        Serializer::Json => {
            out.extend_from_slice(b"[70,");
            write_id(ser, request, out);
            if head.rest.is_empty() {
                out.extend_from_slice(b",{}]");
            } else {
                // rest runs to the INVOCATION's closing bracket, which closes the YIELD too.
                out.extend_from_slice(b",{},");
                out.extend_from_slice(head.rest);
            }
        }
        Serializer::MsgPack => {
            let elements = 3 + head.rest_elements;
            if elements < 16 {
                out.push(0x90 | elements as u8);
            } else {
                out.push(0xdc);
                out.extend_from_slice(&(elements as u16).to_be_bytes());
            }
            out.push(code::YIELD as u8);
            write_id(ser, request, out);
            out.push(0x80);
            out.extend_from_slice(head.rest);
        }
        Serializer::Cbor => {
            // The INVOCATION was peeked, so its array had a definite length: rest_elements
            // counts Arguments and ArgumentsKw exactly.
            let elements = 3 + head.rest_elements;
            if elements < 24 {
                out.push(0x80 | elements as u8);
            } else if elements < 256 {
                out.extend_from_slice(&[0x98, elements as u8]);
            } else {
                out.push(0x99);
                out.extend_from_slice(&(elements as u16).to_be_bytes());
            }
            out.extend_from_slice(&[0x18, code::YIELD as u8]);
            write_id(ser, request, out);
            out.push(0xa0);
            out.extend_from_slice(head.rest);
        }
    }
}

/// An id as the serializer writes a non-negative integer (MessagePack and CBOR: smallest
/// width).
fn write_id(ser: Serializer, id: u64, out: &mut Vec<u8>) {
    match ser {
        Serializer::Json => out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes()),
        Serializer::MsgPack => match id {
            0..=0x7f => out.push(id as u8),
            0x80..=0xff => out.extend_from_slice(&[0xcc, id as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(id as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(id as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&id.to_be_bytes());
            }
        },
        Serializer::Cbor => write_cbor_uint(id, out),
    }
}

/// A CBOR unsigned integer (major type 0) with the shortest head: 0-23 inline, then one, two,
/// four or eight argument bytes behind 0x18, 0x19, 0x1a, 0x1b.
pub fn write_cbor_uint(value: u64, out: &mut Vec<u8>) {
    write_cbor_head(0, value, out);
}

/// The shortest CBOR head of major type `major` (0-7) with argument `arg`.
pub fn write_cbor_head(major: u8, arg: u64, out: &mut Vec<u8>) {
    let major = major << 5;
    match arg {
        0..=0x17 => out.push(major | arg as u8),
        0x18..=0xff => out.extend_from_slice(&[major | 0x18, arg as u8]),
        0x100..=0xffff => {
            out.push(major | 0x19);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 0x1a);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 0x1b);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use wampring::wire::{Dict, Payload};

    /// Every width boundary of every serializer: JSON digit counts, MessagePack fixint/uint8/
    /// uint16/uint32/uint64, CBOR inline/1/2/4/8 argument bytes.
    const IDS: [u64; 16] = [
        1,
        9,
        10,
        23,
        24,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        0xffff_ffff,
        1 << 32,
        wire::MAX_ID - 1,
        wire::MAX_ID,
        1 << 40,
    ];

    #[test]
    fn call_template_matches_the_encoder() {
        for ser in Serializer::ALL {
            let mut args = Vec::new();
            let count = crate::payload::write_padding_args(ser, 40, &mut args);
            for payload in [
                Payload::empty(ser),
                Payload {
                    ser,
                    count,
                    raw: &args,
                },
            ] {
                let call = |request| Message::Call {
                    request,
                    options: Dict::new(),
                    procedure: Cow::Borrowed("wampload.echo.p1"),
                    payload,
                };
                let template = CallTemplate::new(ser, &call(1)).unwrap();
                let mut fast = Vec::new();
                for id in IDS {
                    template.write(id, &mut fast);
                    let mut slow = Vec::new();
                    wire::encode(&call(id), ser, &mut slow).unwrap();
                    assert_eq!(fast, slow, "{ser} id {id}");
                }
            }
        }
    }

    #[test]
    fn echo_yield_matches_the_encoder() {
        for ser in Serializer::ALL {
            let mut args = Vec::new();
            let count = crate::payload::write_padding_args(ser, 3, &mut args);
            for payload in [
                Payload::empty(ser),
                Payload {
                    ser,
                    count,
                    raw: &args,
                },
            ] {
                for id in IDS {
                    let invocation = {
                        let mut out = Vec::new();
                        let mut details = Dict::new();
                        details.insert("caller", 3u64);
                        wire::encode(
                            &Message::Invocation {
                                request: id,
                                registration: 7,
                                details,
                                payload,
                            },
                            ser,
                            &mut out,
                        )
                        .unwrap();
                        out
                    };
                    let head = wire::peek(ser, &invocation).unwrap();
                    let mut fast = Vec::new();
                    echo_yield(ser, id, &head, &mut fast);
                    let mut slow = Vec::new();
                    wire::encode(
                        &Message::Yield {
                            request: id,
                            options: Dict::new(),
                            payload,
                        },
                        ser,
                        &mut slow,
                    )
                    .unwrap();
                    assert_eq!(fast, slow, "{ser} id {id}");
                }
            }
        }
    }

    #[test]
    fn cbor_ids_take_the_shortest_head() {
        let cases: [(u64, &[u8]); 10] = [
            (0, &[0x00]),
            (23, &[0x17]),
            (24, &[0x18, 24]),
            (255, &[0x18, 0xff]),
            (256, &[0x19, 0x01, 0x00]),
            (65_535, &[0x19, 0xff, 0xff]),
            (65_536, &[0x1a, 0x00, 0x01, 0x00, 0x00]),
            (0xffff_ffff, &[0x1a, 0xff, 0xff, 0xff, 0xff]),
            (1 << 32, &[0x1b, 0, 0, 0, 1, 0, 0, 0, 0]),
            (wire::MAX_ID, &[0x1b, 0, 0x20, 0, 0, 0, 0, 0, 0]),
        ];
        for (id, bytes) in cases {
            let mut out = Vec::new();
            write_id(Serializer::Cbor, id, &mut out);
            assert_eq!(out, bytes, "id {id}");
        }
    }

    #[test]
    fn cbor_call_template_splices_at_byte_three() {
        let call = |request| Message::Call {
            request,
            options: Dict::new(),
            procedure: Cow::Borrowed("p"),
            payload: Payload::empty(Serializer::Cbor),
        };
        let template = CallTemplate::new(Serializer::Cbor, &call(1)).unwrap();
        let mut out = Vec::new();
        template.write(1, &mut out);
        // [48, 1, {}, "p"]
        assert_eq!(out, [0x84, 0x18, 0x30, 0x01, 0xa0, 0x61, b'p']);
        template.write(300, &mut out);
        assert_eq!(out, [0x84, 0x18, 0x30, 0x19, 0x01, 0x2c, 0xa0, 0x61, b'p']);
        // Anything but a CALL is refused.
        assert!(CallTemplate::new(
            Serializer::Cbor,
            &Message::Yield {
                request: 1,
                options: Dict::new(),
                payload: Payload::empty(Serializer::Cbor),
            }
        )
        .is_err());
    }
}
