//! Turning messages into [`Action::Send`]s: encode into one reusable scratch buffer, then copy
//! into an exactly-sized `Bytes` (one allocation per outgoing frame, none for the encoder). A
//! forwarded message (INVOCATION, RESULT, callee ERROR) with a large payload in the receiver's
//! serializer leaves the payload where it arrived: the [`Frame`] is the encoded head, a slice
//! of the received frame, and the closing bytes (DESIGN.md "Hot path rules"). Also the builders
//! for the router's own replies (ABORT, ERROR, GOODBYE) with a human-readable
//! `Details.message`.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

use super::{Action, SessionKey};
use crate::serializer::Serializer;
use crate::wire::{self, Dict, EncodeError, Frame, Message, Payload, Value};

/// Payload spans shorter than this are copied into the head: for them one buffer costs less
/// than a second part (an atomic reference count on the received frame). Measured with
/// `cargo bench --bench router -- router_call` (the 16-byte and 4-KiB payload rows).
pub(crate) const FORWARD_MIN_SPAN: usize = 512;

/// The scratch buffer may grow to the largest frame sent; past this it is given back so one
/// huge message does not pin memory forever.
const SCRATCH_KEEP: usize = 1 << 20;

/// Room the frame arena asks for when it runs out.
const ARENA_BYTES: usize = 64 * 1024;

pub(crate) struct Outbox {
    scratch: Vec<u8>,
    /// Outgoing frames are split off this buffer: no allocation per frame, and once the
    /// runtime has written and dropped them, the next `reserve` reuses the same memory.
    arena: BytesMut,
}

impl Outbox {
    pub(crate) fn new() -> Outbox {
        Outbox {
            scratch: Vec::with_capacity(4096),
            arena: BytesMut::with_capacity(ARENA_BYTES),
        }
    }

    /// Encodes `message` in `serializer` into a fresh, exactly-sized frame.
    pub(crate) fn frame(
        &mut self,
        message: &Message<'_>,
        serializer: Serializer,
    ) -> Result<Frame, EncodeError> {
        self.scratch.clear();
        let result = wire::encode(message, serializer, &mut self.scratch);
        let frame = result.map(|()| Frame::whole(self.copy_out()));
        self.give_back_scratch();
        frame
    }

    /// Encodes `message`, whose payload lies in `source` (the received frame), leaving a large
    /// payload in place: the frame's middle part is then a slice of `source`, not a copy.
    /// Inlined so the message's variant, known at each caller, folds the payload lookup away.
    #[inline]
    pub(crate) fn frame_forwarding(
        &mut self,
        message: &Message<'_>,
        serializer: Serializer,
        source: &Bytes,
    ) -> Result<Frame, EncodeError> {
        match message.payload() {
            Some(payload) if payload.ser == serializer && payload.raw.len() >= FORWARD_MIN_SPAN => {
                self.frame_in_parts(message, serializer, source, payload.raw)
            }
            // Small or to be transcoded: one buffer with the payload in it, as for one receiver.
            _ => self.frame_single(message, serializer),
        }
    }

    /// The head encoded around `raw` (the payload, in the target serializer), `raw` itself as a
    /// slice of `source` when it lies there, and the closing bytes.
    #[inline(never)]
    fn frame_in_parts(
        &mut self,
        message: &Message<'_>,
        serializer: Serializer,
        source: &Bytes,
        raw: &[u8],
    ) -> Result<Frame, EncodeError> {
        self.scratch.clear();
        let at =
            wire::encode_around_payload(message, serializer, &mut self.scratch, FORWARD_MIN_SPAN)?
                .expect("a payload in the target serializer past the minimum is left out");
        let tail: &'static [u8] = match &self.scratch[at..] {
            b"]" => b"]",
            b"" => b"",
            other => unreachable!("a message ends with its payload, then {other:?}"),
        };
        let span = match within(source, raw) {
            true => source.slice_ref(raw),
            false => Bytes::copy_from_slice(raw),
        };
        let frame = Frame::parts_of(Bytes::copy_from_slice(&self.scratch[..at]), span, tail);
        self.give_back_scratch();
        Ok(frame)
    }

    /// Encodes a message for one receiver: a plain exactly-sized buffer (an arena slice pays
    /// off only when the frame is shared).
    #[inline(never)]
    fn frame_single(
        &mut self,
        message: &Message<'_>,
        serializer: Serializer,
    ) -> Result<Frame, EncodeError> {
        self.scratch.clear();
        let result = wire::encode(message, serializer, &mut self.scratch);
        let frame = result.map(|()| Frame::whole(Bytes::copy_from_slice(&self.scratch)));
        self.give_back_scratch();
        frame
    }

    /// The scratch buffer's bytes as a `Bytes` of their own, split off the arena: already shared, so the
    /// clones of a fan-out are one atomic increment each.
    fn copy_out(&mut self) -> Bytes {
        let bytes = &self.scratch;
        if self.arena.capacity() - self.arena.len() < bytes.len() {
            self.arena.reserve(bytes.len().max(ARENA_BYTES));
        }
        self.arena.extend_from_slice(bytes);
        self.arena.split().freeze()
    }

    /// Whether `payload` can be written in each serializer `needed` names (its own always can);
    /// the text for the ERROR when not.
    pub(crate) fn payload_fits(
        &mut self,
        payload: &Payload<'_>,
        needed: impl Fn(Serializer) -> bool,
    ) -> Result<(), String> {
        for serializer in Serializer::ALL {
            if serializer == payload.ser || payload.count == 0 || !needed(serializer) {
                continue;
            }
            self.scratch.clear();
            let result = wire::transcode_payload(payload, serializer, &mut self.scratch);
            self.give_back_scratch();
            if let Err(error) = result {
                return Err(format!(
                    "the payload cannot be delivered to {serializer} subscribers: {error}"
                ));
            }
        }
        Ok(())
    }

    fn give_back_scratch(&mut self) {
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::with_capacity(4096);
        }
    }

    /// Encodes and queues `message` for `session`; an encode error is returned (the router
    /// counts and logs it, rate-limited).
    pub(crate) fn send(
        &mut self,
        out: &mut Vec<Action>,
        session: SessionKey,
        serializer: Serializer,
        message: &Message<'_>,
    ) -> Result<(), EncodeError> {
        let frame = self.frame(message, serializer)?;
        out.push(Action::Send { session, frame });
        Ok(())
    }
}

/// `{message: text}`, the Details of router-generated ABORT/ERROR replies.
pub(crate) fn details_with_message(text: impl Into<Cow<'static, str>>) -> Dict<'static> {
    let mut details = Dict::with_capacity(1);
    details.insert("message", Value::Str(text.into()));
    details
}

pub(crate) fn abort(
    reason: &'static str,
    text: impl Into<Cow<'static, str>>,
    serializer: Serializer,
) -> Message<'static> {
    Message::Abort {
        details: details_with_message(text),
        reason: Cow::Borrowed(reason),
        payload: Payload::empty(serializer),
    }
}

pub(crate) fn error(
    request_type: u64,
    request: u64,
    uri: &'static str,
    text: impl Into<Cow<'static, str>>,
    serializer: Serializer,
) -> Message<'static> {
    Message::Error {
        request_type,
        request,
        details: details_with_message(text),
        error: Cow::Borrowed(uri),
        payload: Payload::empty(serializer),
    }
}

pub(crate) fn goodbye(reason: &'static str) -> Message<'static> {
    Message::Goodbye {
        details: Dict::new(),
        reason: Cow::Borrowed(reason),
    }
}

/// True when `part` lies inside `source`'s bytes (so a slice of `source` can stand for it).
fn within(source: &Bytes, part: &[u8]) -> bool {
    let (base, start) = (source.as_ptr() as usize, part.as_ptr() as usize);
    start >= base && start + part.len() <= base + source.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation_with(payload: Payload<'_>) -> Message<'_> {
        Message::Invocation {
            request: 1,
            registration: 2,
            details: Dict::new(),
            payload,
        }
    }

    #[test]
    fn a_large_payload_is_sent_from_the_received_frame_a_small_one_copied() {
        let mut outbox = Outbox::new();
        for ser in Serializer::ALL {
            for (len, forwarded) in [(8, false), (FORWARD_MIN_SPAN, true)] {
                let text = Value::Str("x".repeat(len).into());
                let owned = wire::payload_from_args(ser, &[text], None).unwrap();
                let source = owned.raw.clone();
                let message = invocation_with(owned.as_payload());
                let frame = outbox.frame_forwarding(&message, ser, &source).unwrap();
                let mut expected = Vec::new();
                wire::encode(&message, ser, &mut expected).unwrap();
                assert_eq!(&frame.to_bytes()[..], &expected[..], "{ser} {len}");
                assert_eq!(!frame.is_whole(), forwarded, "{ser} {len}");
                if forwarded {
                    assert_eq!(frame.parts()[1].as_ptr(), source.as_ptr(), "not copied");
                }
                // A payload from elsewhere is copied, never sliced out of the wrong buffer.
                let elsewhere = outbox
                    .frame_forwarding(&message, ser, &Bytes::from_static(b"other"))
                    .unwrap();
                assert_eq!(&elsewhere.to_bytes()[..], &expected[..]);
            }
        }
    }

    #[test]
    fn a_payload_to_transcode_is_never_forwarded() {
        let mut outbox = Outbox::new();
        let text = Value::Str("x".repeat(4 * FORWARD_MIN_SPAN).into());
        let owned = wire::payload_from_args(Serializer::Json, &[text], None).unwrap();
        let message = invocation_with(owned.as_payload());
        let frame = outbox
            .frame_forwarding(&message, Serializer::MsgPack, &owned.raw)
            .unwrap();
        assert!(frame.is_whole());
        let bytes = frame.to_bytes();
        let decoded = wire::decode(Serializer::MsgPack, &bytes).unwrap();
        assert_eq!(decoded.name(), "INVOCATION");
    }
}
