//! [`Message`] -> bytes, appended to a caller-owned buffer. The layout is written once over the
//! [`Emit`] trait (JSON, MessagePack and CBOR emitters). A payload in the target serializer is
//! spliced in unchanged; one in another serializer is transcoded once (its reader driving the
//! target's value sink). Without transcoding
//! nothing is allocated beyond the growth of `out`. [`encode_around_payload`] leaves a large
//! same-serializer payload out altogether, so that it can be sent from where it was received
//! (a [`super::Frame`] of parts) instead of being copied.

use super::cbor::write as cb;
use super::json::write as js;
use super::message::{Message, Payload};
use super::msgpack::write as mp;
use super::sink::transcode_elements;
use super::value::Dict;
use super::EncodeError;
use crate::serializer::Serializer;

/// Appends the encoding of `msg` in `ser` to `out`. On error `out` is left as it was.
pub fn encode(msg: &Message<'_>, ser: Serializer, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_impl::<false>(msg, ser, out, usize::MAX).map(|_| ())
}

/// As [`encode`], except that a payload already in `ser` and at least `min_span` bytes long is
/// not written: `Some(at)` says its bytes belong at offset `at` of `out` (what follows `at` is
/// the end of the message, `]` in JSON, nothing in MessagePack). `None`: `out` holds all of it.
pub fn encode_around_payload(
    msg: &Message<'_>,
    ser: Serializer,
    out: &mut Vec<u8>,
    min_span: usize,
) -> Result<Option<usize>, EncodeError> {
    encode_impl::<true>(msg, ser, out, min_span)
}

/// The encoder behind both; with `SPLICE = false` the payload check compiles away, so plain
/// encoding costs what it did before splicing existed.
fn encode_impl<const SPLICE: bool>(
    msg: &Message<'_>,
    ser: Serializer,
    out: &mut Vec<u8>,
    min_span: usize,
) -> Result<Option<usize>, EncodeError> {
    let start = out.len();
    let mut splice = Splice { min_span, at: None };
    let result = match ser {
        Serializer::Json => encode_with(
            msg,
            &mut JsonEmit::<SPLICE> {
                out,
                splice: &mut splice,
            },
        ),
        Serializer::MsgPack => encode_with(
            msg,
            &mut MsgPackEmit::<SPLICE> {
                out,
                splice: &mut splice,
            },
        ),
        Serializer::Cbor => encode_with(
            msg,
            &mut CborEmit::<SPLICE> {
                out,
                splice: &mut splice,
            },
        ),
    };
    if result.is_err() {
        out.truncate(start);
    }
    result.map(|()| splice.at)
}

/// Whether (`min_span`) and where (`at`) the emitter left the payload out.
struct Splice {
    min_span: usize,
    at: Option<usize>,
}

impl Splice {
    /// Leaves `raw` out at `position` when it is long enough; true when it did.
    #[inline]
    fn defer(&mut self, raw: &[u8], position: usize) -> bool {
        if raw.len() < self.min_span {
            return false;
        }
        self.at = Some(position);
        true
    }
}

/// Element writers for one serializer.
trait Emit {
    /// Opens the message array and writes the type code; `elements` counts every element,
    /// the code and the payload's included.
    fn code(&mut self, code: u64, elements: usize);
    fn uint(&mut self, v: u64);
    fn str(&mut self, s: &str);
    fn dict(&mut self, d: &Dict<'_>) -> Result<(), EncodeError>;
    fn payload(&mut self, p: &Payload<'_>) -> Result<(), EncodeError>;
    fn close(&mut self);
}

struct JsonEmit<'o, const SPLICE: bool> {
    out: &'o mut Vec<u8>,
    splice: &'o mut Splice,
}

impl<const SPLICE: bool> Emit for JsonEmit<'_, SPLICE> {
    #[inline]
    fn code(&mut self, code: u64, _elements: usize) {
        self.out.push(b'[');
        js::uint(self.out, code);
    }

    #[inline]
    fn uint(&mut self, v: u64) {
        self.out.push(b',');
        js::uint(self.out, v);
    }

    #[inline]
    fn str(&mut self, s: &str) {
        self.out.push(b',');
        js::str(self.out, s);
    }

    #[inline]
    fn dict(&mut self, d: &Dict<'_>) -> Result<(), EncodeError> {
        if d.is_empty() {
            self.out.extend_from_slice(b",{}");
            return Ok(());
        }
        self.out.push(b',');
        js::dict(self.out, d)
    }

    #[inline]
    fn payload(&mut self, p: &Payload<'_>) -> Result<(), EncodeError> {
        if p.count == 0 {
            return Ok(());
        }
        self.out.push(b',');
        match p.ser {
            Serializer::Json => {
                if !(SPLICE && self.splice.defer(p.raw, self.out.len())) {
                    self.out.extend_from_slice(p.raw);
                }
                Ok(())
            }
            from => transcode_elements(p.raw, p.count, from, Serializer::Json, self.out),
        }
    }

    #[inline]
    fn close(&mut self) {
        self.out.push(b']');
    }
}

struct MsgPackEmit<'o, const SPLICE: bool> {
    out: &'o mut Vec<u8>,
    splice: &'o mut Splice,
}

impl<const SPLICE: bool> Emit for MsgPackEmit<'_, SPLICE> {
    #[inline]
    fn code(&mut self, code: u64, elements: usize) {
        mp::array_len(self.out, elements as u32);
        mp::uint(self.out, code);
    }

    #[inline]
    fn uint(&mut self, v: u64) {
        mp::uint(self.out, v);
    }

    #[inline]
    fn str(&mut self, s: &str) {
        mp::str(self.out, s);
    }

    #[inline]
    fn dict(&mut self, d: &Dict<'_>) -> Result<(), EncodeError> {
        // Most Details/Options are empty: one byte, as the JSON emitter's `{}`.
        if d.is_empty() {
            self.out.push(mp::EMPTY_MAP);
            return Ok(());
        }
        mp::dict(self.out, d)
    }

    #[inline]
    fn payload(&mut self, p: &Payload<'_>) -> Result<(), EncodeError> {
        if p.count == 0 {
            return Ok(());
        }
        match p.ser {
            Serializer::MsgPack => {
                if !(SPLICE && self.splice.defer(p.raw, self.out.len())) {
                    self.out.extend_from_slice(p.raw);
                }
                Ok(())
            }
            from => transcode_elements(p.raw, p.count, from, Serializer::MsgPack, self.out),
        }
    }

    #[inline]
    fn close(&mut self) {}
}

struct CborEmit<'o, const SPLICE: bool> {
    out: &'o mut Vec<u8>,
    splice: &'o mut Splice,
}

impl<const SPLICE: bool> Emit for CborEmit<'_, SPLICE> {
    #[inline]
    fn code(&mut self, code: u64, elements: usize) {
        cb::array_len(self.out, elements as u32);
        cb::uint(self.out, code);
    }

    #[inline]
    fn uint(&mut self, v: u64) {
        cb::uint(self.out, v);
    }

    #[inline]
    fn str(&mut self, s: &str) {
        cb::str(self.out, s);
    }

    #[inline]
    fn dict(&mut self, d: &Dict<'_>) -> Result<(), EncodeError> {
        if d.is_empty() {
            self.out.push(cb::EMPTY_MAP);
            return Ok(());
        }
        cb::dict(self.out, d)
    }

    #[inline]
    fn payload(&mut self, p: &Payload<'_>) -> Result<(), EncodeError> {
        if p.count == 0 {
            return Ok(());
        }
        match p.ser {
            Serializer::Cbor => {
                if !(SPLICE && self.splice.defer(p.raw, self.out.len())) {
                    self.out.extend_from_slice(p.raw);
                }
                Ok(())
            }
            from => transcode_elements(p.raw, p.count, from, Serializer::Cbor, self.out),
        }
    }

    #[inline]
    fn close(&mut self) {}
}

fn encode_with<E: Emit>(msg: &Message<'_>, e: &mut E) -> Result<(), EncodeError> {
    let code = msg.code();
    let with_payload = |header: usize, p: &Payload<'_>| header + usize::from(p.count);
    match msg {
        Message::Hello { realm, details } => {
            e.code(code, 3);
            e.str(realm);
            e.dict(details)?;
        }
        Message::Welcome { session, details } => {
            e.code(code, 3);
            e.uint(*session);
            e.dict(details)?;
        }
        Message::Abort {
            details,
            reason,
            payload,
        } => {
            e.code(code, with_payload(3, payload));
            e.dict(details)?;
            e.str(reason);
            e.payload(payload)?;
        }
        Message::Challenge { method, extra } => {
            e.code(code, 3);
            e.str(method);
            e.dict(extra)?;
        }
        Message::Authenticate { signature, extra } => {
            e.code(code, 3);
            e.str(signature);
            e.dict(extra)?;
        }
        Message::Goodbye { details, reason } => {
            e.code(code, 3);
            e.dict(details)?;
            e.str(reason);
        }
        Message::Error {
            request_type,
            request,
            details,
            error,
            payload,
        } => {
            e.code(code, with_payload(5, payload));
            e.uint(*request_type);
            e.uint(*request);
            e.dict(details)?;
            e.str(error);
            e.payload(payload)?;
        }
        Message::Publish {
            request,
            options,
            topic,
            payload,
        } => {
            e.code(code, with_payload(4, payload));
            e.uint(*request);
            e.dict(options)?;
            e.str(topic);
            e.payload(payload)?;
        }
        Message::Published {
            request,
            publication,
        } => {
            e.code(code, 3);
            e.uint(*request);
            e.uint(*publication);
        }
        Message::Subscribe {
            request,
            options,
            topic,
        } => {
            e.code(code, 4);
            e.uint(*request);
            e.dict(options)?;
            e.str(topic);
        }
        Message::Subscribed {
            request,
            subscription,
        } => {
            e.code(code, 3);
            e.uint(*request);
            e.uint(*subscription);
        }
        Message::Unsubscribe {
            request,
            subscription,
        } => {
            e.code(code, 3);
            e.uint(*request);
            e.uint(*subscription);
        }
        Message::Unsubscribed { request, details } | Message::Unregistered { request, details } => {
            e.code(code, if details.is_some() { 3 } else { 2 });
            e.uint(*request);
            if let Some(details) = details {
                e.dict(details)?;
            }
        }
        Message::Event {
            subscription,
            publication,
            details,
            payload,
        } => {
            e.code(code, with_payload(4, payload));
            e.uint(*subscription);
            e.uint(*publication);
            e.dict(details)?;
            e.payload(payload)?;
        }
        Message::Call {
            request,
            options,
            procedure,
            payload,
        } => {
            e.code(code, with_payload(4, payload));
            e.uint(*request);
            e.dict(options)?;
            e.str(procedure);
            e.payload(payload)?;
        }
        Message::Cancel { request, options } | Message::Interrupt { request, options } => {
            e.code(code, 3);
            e.uint(*request);
            e.dict(options)?;
        }
        Message::Result {
            request,
            details,
            payload,
        } => {
            e.code(code, with_payload(3, payload));
            e.uint(*request);
            e.dict(details)?;
            e.payload(payload)?;
        }
        Message::Register {
            request,
            options,
            procedure,
        } => {
            e.code(code, 4);
            e.uint(*request);
            e.dict(options)?;
            e.str(procedure);
        }
        Message::Registered {
            request,
            registration,
        } => {
            e.code(code, 3);
            e.uint(*request);
            e.uint(*registration);
        }
        Message::Unregister {
            request,
            registration,
        } => {
            e.code(code, 3);
            e.uint(*request);
            e.uint(*registration);
        }
        Message::Invocation {
            request,
            registration,
            details,
            payload,
        } => {
            e.code(code, with_payload(4, payload));
            e.uint(*request);
            e.uint(*registration);
            e.dict(details)?;
            e.payload(payload)?;
        }
        Message::Yield {
            request,
            options,
            payload,
        } => {
            e.code(code, with_payload(3, payload));
            e.uint(*request);
            e.dict(options)?;
            e.payload(payload)?;
        }
        Message::EventReceived {
            publication,
            payload,
        } => {
            e.code(code, with_payload(2, payload));
            e.uint(*publication);
            e.payload(payload)?;
        }
    }
    e.close();
    Ok(())
}
