//! The generic value sink: what every serializer's reader drives when it transcodes a payload,
//! and what every serializer's writer implements. Transcoding from serializer A to B is A's
//! reader driving B's sink, so a new serializer adds one reader and one sink, not a transcoder
//! per pair; [`transcode_elements`] matches on both ends exhaustively, so a serializer without
//! either does not compile.
//!
//! Readers validate the whole span before they drive a sink (JSON and CBOR count container
//! sizes in that pass, for sinks whose headers need them), so a sink only sees well-formed input;
//! a sink can still refuse a value its format cannot carry (a float JSON has no number for, a
//! string that would read as binary in JSON) and the caller discards what was written.

use super::value::{Dict, Value};
use super::{cbor, json, msgpack, EncodeError};
use crate::serializer::Serializer;

/// Receives one value tree, depth first. Containers announce their length up front; between
/// them, `item`/`key` mark where each element starts (JSON writes its separators there).
pub(crate) trait Sink {
    fn null(&mut self) -> Result<(), EncodeError>;
    fn bool(&mut self, b: bool) -> Result<(), EncodeError>;
    fn uint(&mut self, u: u64) -> Result<(), EncodeError>;
    /// A negative integer (non-negative ones come as `uint`).
    fn int(&mut self, i: i64) -> Result<(), EncodeError>;
    fn float(&mut self, f: f64) -> Result<(), EncodeError>;
    fn str(&mut self, s: &str) -> Result<(), EncodeError>;
    fn bin(&mut self, b: &[u8]) -> Result<(), EncodeError>;
    fn begin_list(&mut self, len: u32) -> Result<(), EncodeError>;
    /// Before the `index`-th element of a list, and of the payload's top-level elements.
    fn item(&mut self, index: u32);
    fn end_list(&mut self);
    fn begin_dict(&mut self, len: u32) -> Result<(), EncodeError>;
    /// The `index`-th key of a dict; its value follows.
    fn key(&mut self, index: u32, key: &str) -> Result<(), EncodeError>;
    fn end_dict(&mut self);
}

/// The sink that writes JSON into a byte buffer (implemented in `json`).
pub(crate) struct JsonWriter<'o> {
    pub(crate) out: &'o mut Vec<u8>,
}

/// The sink that writes MessagePack into a byte buffer (implemented in `msgpack`).
pub(crate) struct MsgPackWriter<'o> {
    pub(crate) out: &'o mut Vec<u8>,
}

/// The sink that writes CBOR into a byte buffer (implemented in `cbor`).
pub(crate) struct CborWriter<'o> {
    pub(crate) out: &'o mut Vec<u8>,
}

/// The [`Sink`] of a binary serializer (MessagePack, CBOR), whose writer module `$write` has
/// one function per value kind: containers announce their length up front, elements need no
/// separators, and every value can be written, so nothing fails.
macro_rules! binary_sink {
    ($writer:ident, $($write:ident)::+) => {
        impl $crate::wire::sink::Sink for $writer<'_> {
            fn null(&mut self) -> Result<(), EncodeError> {
                $($write)::+::nil(self.out);
                Ok(())
            }
            fn bool(&mut self, b: bool) -> Result<(), EncodeError> {
                $($write)::+::bool(self.out, b);
                Ok(())
            }
            fn uint(&mut self, u: u64) -> Result<(), EncodeError> {
                $($write)::+::uint(self.out, u);
                Ok(())
            }
            fn int(&mut self, i: i64) -> Result<(), EncodeError> {
                $($write)::+::int(self.out, i);
                Ok(())
            }
            fn float(&mut self, f: f64) -> Result<(), EncodeError> {
                $($write)::+::f64(self.out, f);
                Ok(())
            }
            fn str(&mut self, s: &str) -> Result<(), EncodeError> {
                $($write)::+::str(self.out, s);
                Ok(())
            }
            fn bin(&mut self, b: &[u8]) -> Result<(), EncodeError> {
                $($write)::+::bin(self.out, b);
                Ok(())
            }
            fn begin_list(&mut self, len: u32) -> Result<(), EncodeError> {
                $($write)::+::array_len(self.out, len);
                Ok(())
            }
            fn item(&mut self, _index: u32) {}
            fn end_list(&mut self) {}
            fn begin_dict(&mut self, len: u32) -> Result<(), EncodeError> {
                $($write)::+::map_len(self.out, len);
                Ok(())
            }
            fn key(&mut self, _index: u32, key: &str) -> Result<(), EncodeError> {
                $($write)::+::str(self.out, key);
                Ok(())
            }
            fn end_dict(&mut self) {}
        }
    };
}
pub(crate) use binary_sink;

/// Writes `value` into `sink` (building payloads and messages from [`Value`]s).
pub(crate) fn value_into<S: Sink>(value: &Value<'_>, sink: &mut S) -> Result<(), EncodeError> {
    match value {
        Value::Null => sink.null(),
        Value::Bool(b) => sink.bool(*b),
        Value::Int(i) if *i >= 0 => sink.uint(*i as u64),
        Value::Int(i) => sink.int(*i),
        Value::UInt(u) => sink.uint(*u),
        Value::Float(f) => sink.float(*f),
        Value::Str(s) => sink.str(s),
        Value::Bin(b) => sink.bin(b),
        Value::List(items) => list_into(items, sink),
        Value::Dict(dict) => dict_into(dict, sink),
    }
}

pub(crate) fn list_into<S: Sink>(items: &[Value<'_>], sink: &mut S) -> Result<(), EncodeError> {
    sink.begin_list(container_len(items.len())?)?;
    for (index, item) in items.iter().enumerate() {
        sink.item(index as u32);
        value_into(item, sink)?;
    }
    sink.end_list();
    Ok(())
}

pub(crate) fn dict_into<S: Sink>(dict: &Dict<'_>, sink: &mut S) -> Result<(), EncodeError> {
    sink.begin_dict(container_len(dict.len())?)?;
    for (index, (key, value)) in dict.iter().enumerate() {
        sink.key(index as u32, key)?;
        value_into(value, sink)?;
    }
    sink.end_dict();
    Ok(())
}

fn container_len(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::new("container too large"))
}

/// Writes the `count` elements of payload span `raw` (in `from`) as `to` into `out`: JSON
/// elements comma-separated (no leading comma), binary serializers back to back. `from` and
/// `to` differ (the caller splices equal ones). On error `out` may hold a partial write.
pub(crate) fn transcode_elements(
    raw: &[u8],
    count: u8,
    from: Serializer,
    to: Serializer,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    match to {
        Serializer::Json => read_into(raw, count, from, &mut JsonWriter { out }),
        Serializer::MsgPack => read_into(raw, count, from, &mut MsgPackWriter { out }),
        Serializer::Cbor => read_into(raw, count, from, &mut CborWriter { out }),
    }
}

fn read_into<S: Sink>(
    raw: &[u8],
    count: u8,
    from: Serializer,
    sink: &mut S,
) -> Result<(), EncodeError> {
    match from {
        Serializer::Json => json::drive_payload(raw, count, sink),
        Serializer::MsgPack => msgpack::drive_payload(raw, count, sink),
        Serializer::Cbor => cbor::drive_payload(raw, count, sink),
    }
}
