//! Payloads off the hot path: building one from [`Value`]s (router-generated messages, the meta
//! API, tests), decoding one into values, and transcoding one between serializers. The routing
//! path never calls these except `transcode_payload` (via `encode`) when serializers differ.

use bytes::Bytes;

use super::cbor::CborReader;
use super::json::JsonReader;
use super::message::{OwnedPayload, Payload};
use super::msgpack::MsgPackReader;
use super::sink::{self, CborWriter, JsonWriter, MsgPackWriter, Sink};
use super::value::{Dict, Value};
use super::{DecodeError, EncodeError, Fail};
use crate::serializer::Serializer;

/// Writes one value in `ser` to `out`. Fails only for what JSON cannot carry (NaN, ±inf, a
/// string starting with NUL); `out` may then hold a partial write.
pub fn encode_value(v: &Value<'_>, ser: Serializer, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match ser {
        Serializer::Json => sink::value_into(v, &mut JsonWriter { out }),
        Serializer::MsgPack => sink::value_into(v, &mut MsgPackWriter { out }),
        Serializer::Cbor => sink::value_into(v, &mut CborWriter { out }),
    }
}

/// Writes the elements of a payload: Arguments, then ArgumentsKw when there is one.
fn args_into<S: Sink>(
    sink: &mut S,
    args: &[Value<'_>],
    kwargs: Option<&Dict<'_>>,
) -> Result<(), EncodeError> {
    sink.item(0);
    sink::list_into(args, sink)?;
    if let Some(kwargs) = kwargs {
        sink.item(1);
        sink::dict_into(kwargs, sink)?;
    }
    Ok(())
}

/// Builds a payload from positional and keyword arguments. Empty trailing parts are omitted as
/// the spec asks senders to (`[]` and `{}` are not sent): no args and no kwargs is no payload.
pub fn payload_from_args(
    ser: Serializer,
    args: &[Value<'_>],
    kwargs: Option<&Dict<'_>>,
) -> Result<OwnedPayload, EncodeError> {
    let kwargs = kwargs.filter(|kw| !kw.is_empty());
    if args.is_empty() && kwargs.is_none() {
        return Ok(OwnedPayload::empty(ser));
    }
    let mut raw = Vec::new();
    let out = &mut raw;
    match ser {
        Serializer::Json => args_into(&mut JsonWriter { out }, args, kwargs)?,
        Serializer::MsgPack => args_into(&mut MsgPackWriter { out }, args, kwargs)?,
        Serializer::Cbor => args_into(&mut CborWriter { out }, args, kwargs)?,
    }
    Ok(OwnedPayload {
        ser,
        count: if kwargs.is_some() { 2 } else { 1 },
        raw: Bytes::from(raw),
    })
}

/// Builds a transparent payload (payload pass-through / E2E encryption): one binary element.
pub fn payload_from_binary(ser: Serializer, bytes: &[u8]) -> OwnedPayload {
    let mut raw = Vec::with_capacity(bytes.len() * 4 / 3 + 12);
    let out = &mut raw;
    // Binary is representable in every serializer: these cannot fail.
    let _infallible = match ser {
        Serializer::Json => JsonWriter { out }.bin(bytes),
        Serializer::MsgPack => MsgPackWriter { out }.bin(bytes),
        Serializer::Cbor => CborWriter { out }.bin(bytes),
    };
    OwnedPayload {
        ser,
        count: 1,
        raw: Bytes::from(raw),
    }
}

/// Writes the payload's elements in `to` format: JSON elements separated by `,` (no leading
/// comma), binary serializers' elements concatenated. Same serializer: the raw bytes unchanged.
/// On error `out` is left as it was.
pub fn transcode_payload(
    p: &Payload<'_>,
    to: Serializer,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = if p.count == 0 {
        Ok(())
    } else if p.ser == to {
        out.extend_from_slice(p.raw);
        Ok(())
    } else {
        sink::transcode_elements(p.raw, p.count, p.ser, to, out)
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

#[cold]
fn payload_error(fail: Fail) -> DecodeError {
    DecodeError {
        code: None,
        message: format!("payload: {}", fail.describe()),
    }
}

/// Reads the payload's elements as values (at most two).
fn payload_elements<'a>(p: &Payload<'a>) -> Result<Vec<Value<'a>>, DecodeError> {
    let mut elements = Vec::with_capacity(usize::from(p.count));
    match p.ser {
        Serializer::Json => {
            let mut r = JsonReader::new(p.raw);
            for index in 0..p.count {
                r.skip_ws();
                if index > 0 {
                    if r.peek() != Some(b',') {
                        return Err(payload_error(
                            r.bad("',' expected between payload elements"),
                        ));
                    }
                    r.pos += 1;
                    r.skip_ws();
                }
                elements.push(r.read_value(2).map_err(payload_error)?);
            }
            r.skip_ws();
            if r.pos != p.raw.len() {
                return Err(payload_error(r.bad("unexpected bytes after the payload")));
            }
        }
        Serializer::MsgPack => {
            let mut r = MsgPackReader::new(p.raw);
            for _ in 0..p.count {
                elements.push(r.read_value(2).map_err(payload_error)?);
            }
            if r.pos != p.raw.len() {
                return Err(payload_error(r.bad("unexpected bytes after the payload")));
            }
        }
        Serializer::Cbor => {
            let mut r = CborReader::new(p.raw);
            for _ in 0..p.count {
                elements.push(r.read_value(2).map_err(payload_error)?);
            }
            if r.pos != p.raw.len() {
                return Err(payload_error(r.bad("unexpected bytes after the payload")));
            }
        }
    }
    Ok(elements)
}

/// Decodes a list/dict payload into (Arguments, ArgumentsKw). A missing Arguments is an empty
/// list. A transparent (binary) payload is an error here: use [`transparent_payload`].
pub fn decode_payload_values<'a>(
    p: &Payload<'a>,
) -> Result<(Vec<Value<'a>>, Option<Dict<'a>>), DecodeError> {
    let mut elements = payload_elements(p)?.into_iter();
    let args = match elements.next() {
        None => Vec::new(),
        Some(Value::List(list)) => list,
        Some(_) => {
            return Err(DecodeError {
                code: None,
                message: "payload: Arguments is not a list (transparent payload?)".to_owned(),
            })
        }
    };
    let kwargs = match elements.next() {
        None => None,
        Some(Value::Dict(dict)) => Some(dict),
        Some(_) => {
            return Err(DecodeError {
                code: None,
                message: "payload: ArgumentsKw is not a dict".to_owned(),
            })
        }
    };
    Ok((args, kwargs))
}

/// The single element of a transparent payload (payload pass-through / E2E encryption):
/// `Some(Value::Bin)` (or `Some(Value::Str)` for a JSON string that is not `"\u0000"`-prefixed),
/// `None` when the payload is empty or a normal list payload.
pub fn transparent_payload<'a>(p: &Payload<'a>) -> Result<Option<Value<'a>>, DecodeError> {
    if !p.is_transparent() {
        return Ok(None);
    }
    Ok(payload_elements(p)?.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_parts_are_omitted() {
        for ser in Serializer::ALL {
            assert_eq!(payload_from_args(ser, &[], None).unwrap().count, 0);
            assert_eq!(
                payload_from_args(ser, &[], Some(&Dict::new()))
                    .unwrap()
                    .count,
                0
            );
            assert_eq!(
                payload_from_args(ser, &[Value::UInt(1)], None)
                    .unwrap()
                    .count,
                1
            );
            let mut kw = Dict::new();
            kw.insert("a", Value::Bool(true));
            let p = payload_from_args(ser, &[], Some(&kw)).unwrap();
            assert_eq!(p.count, 2);
            let (args, kwargs) = decode_payload_values(&p.as_payload()).unwrap();
            assert!(args.is_empty());
            assert_eq!(kwargs.unwrap(), kw);
        }
        let p = payload_from_args(Serializer::Json, &["x".into()], None).unwrap();
        assert_eq!(&p.raw[..], br#"["x"]"#);
    }

    #[test]
    fn transparent_roundtrip_both_ways() {
        let bytes = [0u8, 1, 2, 250, 255];
        for ser in Serializer::ALL {
            let p = payload_from_binary(ser, &bytes);
            let value = transparent_payload(&p.as_payload()).unwrap().unwrap();
            assert_eq!(value, Value::Bin(bytes.to_vec().into()));
            for to in Serializer::ALL {
                let mut raw = Vec::new();
                transcode_payload(&p.as_payload(), to, &mut raw).unwrap();
                let q = Payload {
                    ser: to,
                    count: 1,
                    raw: &raw,
                };
                assert_eq!(
                    transparent_payload(&q).unwrap().unwrap(),
                    Value::Bin(bytes.to_vec().into())
                );
            }
        }
    }
}
