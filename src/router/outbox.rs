//! Turning messages into [`Action::Send`]s: encode into one reusable scratch buffer, then copy
//! into an exactly-sized `Bytes` (one allocation per outgoing frame, none for the encoder). Also
//! the builders for the router's own replies (ABORT, ERROR, GOODBYE) with a human-readable
//! `Details.message`.

use std::borrow::Cow;

use bytes::Bytes;

use super::{Action, SessionKey};
use crate::serializer::Serializer;
use crate::wire::{self, Dict, EncodeError, Message, Payload, Value};

/// The scratch buffer may grow to the largest frame sent; past this it is given back so one
/// huge message does not pin memory forever.
const SCRATCH_KEEP: usize = 1 << 20;

pub(crate) struct Outbox {
    scratch: Vec<u8>,
}

impl Outbox {
    pub(crate) fn new() -> Outbox {
        Outbox {
            scratch: Vec::with_capacity(4096),
        }
    }

    /// Encodes `message` in `serializer` into a fresh, exactly-sized frame.
    pub(crate) fn frame(
        &mut self,
        message: &Message<'_>,
        serializer: Serializer,
    ) -> Result<Bytes, EncodeError> {
        self.scratch.clear();
        let result = wire::encode(message, serializer, &mut self.scratch);
        let frame = result.map(|()| Bytes::copy_from_slice(&self.scratch));
        if self.scratch.capacity() > SCRATCH_KEEP {
            self.scratch = Vec::with_capacity(4096);
        }
        frame
    }

    /// Encodes and queues `message` for `session`; an encode error is logged and returned.
    pub(crate) fn send(
        &mut self,
        out: &mut Vec<Action>,
        session: SessionKey,
        serializer: Serializer,
        message: &Message<'_>,
    ) -> Result<(), EncodeError> {
        match self.frame(message, serializer) {
            Ok(frame) => {
                out.push(Action::Send { session, frame });
                Ok(())
            }
            Err(error) => {
                tracing::warn!(?session, message = message.name(), %error, "cannot encode message");
                Err(error)
            }
        }
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
