//! The WAMP message catalogue (digest §2) as a borrowed view over received bytes.
//!
//! A decoded [`Message`] borrows from the frame it came from: URIs and strings are `Cow` (borrowed
//! unless the JSON source escaped them), Options/Details are small [`Dict`]s, and the
//! application payload (Arguments/ArgumentsKw) is a [`Payload`] — the raw bytes of the trailing
//! elements in the source serializer, never decoded on the way through.

use std::borrow::Cow;

use bytes::Bytes;

use super::value::Dict;
use crate::serializer::Serializer;

/// Message type codes (digest §2).
pub mod code {
    pub const HELLO: u64 = 1;
    pub const WELCOME: u64 = 2;
    pub const ABORT: u64 = 3;
    pub const CHALLENGE: u64 = 4;
    pub const AUTHENTICATE: u64 = 5;
    pub const GOODBYE: u64 = 6;
    pub const ERROR: u64 = 8;
    pub const PUBLISH: u64 = 16;
    pub const PUBLISHED: u64 = 17;
    pub const SUBSCRIBE: u64 = 32;
    pub const SUBSCRIBED: u64 = 33;
    pub const UNSUBSCRIBE: u64 = 34;
    pub const UNSUBSCRIBED: u64 = 35;
    pub const EVENT: u64 = 36;
    pub const CALL: u64 = 48;
    pub const CANCEL: u64 = 49;
    pub const RESULT: u64 = 50;
    pub const REGISTER: u64 = 64;
    pub const REGISTERED: u64 = 65;
    pub const UNREGISTER: u64 = 66;
    pub const UNREGISTERED: u64 = 67;
    pub const INVOCATION: u64 = 68;
    pub const INTERRUPT: u64 = 69;
    pub const YIELD: u64 = 70;
    /// Implementation-specific (Autobahn acknowledged event delivery), in the spec test vectors.
    pub const EVENT_RECEIVED: u64 = 337;
}

/// A URI or other string field: borrowed from the frame unless the source escaped it.
pub type Str<'a> = Cow<'a, str>;

/// The application payload of a message: the raw encoding of its trailing elements
/// (`Arguments` and optionally `ArgumentsKw`) in the serializer they arrived in.
///
/// * `count == 0`: no payload; `raw` is empty.
/// * `count == 1`: `raw` holds one element: the Arguments list, or — for payload transparency /
///   E2E encryption — a single binary (msgpack `bin`, JSON `"\u0000"+base64` string).
/// * `count == 2`: `raw` holds Arguments then ArgumentsKw.
///
/// JSON: `raw` is the exact source text from the first element's first byte to the last
/// element's last byte, separators included (e.g. `["a"],{"k":1}`), so it can be spliced after a
/// `,`. MessagePack: `raw` is the concatenation of the elements' encodings.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    pub ser: Serializer,
    pub count: u8,
    pub raw: &'a [u8],
}

impl<'a> Payload<'a> {
    /// No Arguments, no ArgumentsKw.
    pub const fn empty(ser: Serializer) -> Payload<'static> {
        Payload {
            ser,
            count: 0,
            raw: &[],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether this is a transparent payload (payload pass-through / E2E encryption): a single
    /// binary element rather than an Arguments list. Looks at one byte; never decodes.
    pub fn is_transparent(&self) -> bool {
        if self.count != 1 {
            return false;
        }
        match (self.ser, self.raw.first()) {
            (Serializer::Json, Some(&first)) => first != b'[',
            (Serializer::MsgPack, Some(&first)) => !matches!(first, 0x90..=0x9f | 0xdc | 0xdd),
            // Major type 4 is an array.
            (Serializer::Cbor, Some(&first)) => first >> 5 != 4,
            (_, None) => false,
        }
    }

    /// Copies the payload into an owned, cheaply clonable buffer (for queues and other shards).
    pub fn to_owned_payload(&self) -> OwnedPayload {
        OwnedPayload {
            ser: self.ser,
            count: self.count,
            raw: Bytes::copy_from_slice(self.raw),
        }
    }
}

/// A payload that outlives its frame: the same layout as [`Payload`], over shared [`Bytes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedPayload {
    pub ser: Serializer,
    pub count: u8,
    pub raw: Bytes,
}

impl OwnedPayload {
    pub fn empty(ser: Serializer) -> OwnedPayload {
        OwnedPayload {
            ser,
            count: 0,
            raw: Bytes::new(),
        }
    }

    pub fn as_payload(&self) -> Payload<'_> {
        Payload {
            ser: self.ser,
            count: self.count,
            raw: &self.raw,
        }
    }
}

/// One WAMP message. Field names follow the spec; ids are already range-checked to [1, 2^53]
/// (except where the spec allows 0: the revocation forms of UNREGISTERED/UNSUBSCRIBED).
#[derive(Clone, Debug, PartialEq)]
pub enum Message<'a> {
    Hello {
        realm: Str<'a>,
        details: Dict<'a>,
    },
    Welcome {
        session: u64,
        details: Dict<'a>,
    },
    Abort {
        details: Dict<'a>,
        reason: Str<'a>,
        payload: Payload<'a>,
    },
    Challenge {
        method: Str<'a>,
        extra: Dict<'a>,
    },
    Authenticate {
        signature: Str<'a>,
        extra: Dict<'a>,
    },
    Goodbye {
        details: Dict<'a>,
        reason: Str<'a>,
    },
    Error {
        request_type: u64,
        request: u64,
        details: Dict<'a>,
        error: Str<'a>,
        payload: Payload<'a>,
    },
    Publish {
        request: u64,
        options: Dict<'a>,
        topic: Str<'a>,
        payload: Payload<'a>,
    },
    Published {
        request: u64,
        publication: u64,
    },
    Subscribe {
        request: u64,
        options: Dict<'a>,
        topic: Str<'a>,
    },
    Subscribed {
        request: u64,
        subscription: u64,
    },
    Unsubscribe {
        request: u64,
        subscription: u64,
    },
    /// `details` is `Some` only in the revocation form `[35, 0, Details]`.
    Unsubscribed {
        request: u64,
        details: Option<Dict<'a>>,
    },
    Event {
        subscription: u64,
        publication: u64,
        details: Dict<'a>,
        payload: Payload<'a>,
    },
    Call {
        request: u64,
        options: Dict<'a>,
        procedure: Str<'a>,
        payload: Payload<'a>,
    },
    Cancel {
        request: u64,
        options: Dict<'a>,
    },
    Result {
        request: u64,
        details: Dict<'a>,
        payload: Payload<'a>,
    },
    Register {
        request: u64,
        options: Dict<'a>,
        procedure: Str<'a>,
    },
    Registered {
        request: u64,
        registration: u64,
    },
    Unregister {
        request: u64,
        registration: u64,
    },
    /// `details` is `Some` only in the revocation form `[67, 0, Details]`.
    Unregistered {
        request: u64,
        details: Option<Dict<'a>>,
    },
    Invocation {
        request: u64,
        registration: u64,
        details: Dict<'a>,
        payload: Payload<'a>,
    },
    Interrupt {
        request: u64,
        options: Dict<'a>,
    },
    Yield {
        request: u64,
        options: Dict<'a>,
        payload: Payload<'a>,
    },
    /// `[337, Publication]`: acknowledged event delivery (implementation-specific range).
    EventReceived {
        publication: u64,
        payload: Payload<'a>,
    },
}

impl<'a> Message<'a> {
    /// The message type code.
    pub fn code(&self) -> u64 {
        use code::*;
        match self {
            Message::Hello { .. } => HELLO,
            Message::Welcome { .. } => WELCOME,
            Message::Abort { .. } => ABORT,
            Message::Challenge { .. } => CHALLENGE,
            Message::Authenticate { .. } => AUTHENTICATE,
            Message::Goodbye { .. } => GOODBYE,
            Message::Error { .. } => ERROR,
            Message::Publish { .. } => PUBLISH,
            Message::Published { .. } => PUBLISHED,
            Message::Subscribe { .. } => SUBSCRIBE,
            Message::Subscribed { .. } => SUBSCRIBED,
            Message::Unsubscribe { .. } => UNSUBSCRIBE,
            Message::Unsubscribed { .. } => UNSUBSCRIBED,
            Message::Event { .. } => EVENT,
            Message::Call { .. } => CALL,
            Message::Cancel { .. } => CANCEL,
            Message::Result { .. } => RESULT,
            Message::Register { .. } => REGISTER,
            Message::Registered { .. } => REGISTERED,
            Message::Unregister { .. } => UNREGISTER,
            Message::Unregistered { .. } => UNREGISTERED,
            Message::Invocation { .. } => INVOCATION,
            Message::Interrupt { .. } => INTERRUPT,
            Message::Yield { .. } => YIELD,
            Message::EventReceived { .. } => EVENT_RECEIVED,
        }
    }

    /// The application payload of a payload-carrying message (ABORT, ERROR, PUBLISH, EVENT,
    /// CALL, RESULT, INVOCATION, YIELD, EVENT_RECEIVED); `None` for the others.
    #[inline]
    pub fn payload(&self) -> Option<&Payload<'a>> {
        match self {
            Message::Abort { payload, .. }
            | Message::Error { payload, .. }
            | Message::Publish { payload, .. }
            | Message::Event { payload, .. }
            | Message::Call { payload, .. }
            | Message::Result { payload, .. }
            | Message::Invocation { payload, .. }
            | Message::Yield { payload, .. }
            | Message::EventReceived { payload, .. } => Some(payload),
            _ => None,
        }
    }

    /// The spec's upper-case name, for logs and error texts.
    pub fn name(&self) -> &'static str {
        code_name(self.code())
    }
}

/// The spec's upper-case name of a message type code (`"UNKNOWN"` for unassigned codes).
pub fn code_name(code: u64) -> &'static str {
    use code::*;
    match code {
        HELLO => "HELLO",
        WELCOME => "WELCOME",
        ABORT => "ABORT",
        CHALLENGE => "CHALLENGE",
        AUTHENTICATE => "AUTHENTICATE",
        GOODBYE => "GOODBYE",
        ERROR => "ERROR",
        PUBLISH => "PUBLISH",
        PUBLISHED => "PUBLISHED",
        SUBSCRIBE => "SUBSCRIBE",
        SUBSCRIBED => "SUBSCRIBED",
        UNSUBSCRIBE => "UNSUBSCRIBE",
        UNSUBSCRIBED => "UNSUBSCRIBED",
        EVENT => "EVENT",
        CALL => "CALL",
        CANCEL => "CANCEL",
        RESULT => "RESULT",
        REGISTER => "REGISTER",
        REGISTERED => "REGISTERED",
        UNREGISTER => "UNREGISTER",
        UNREGISTERED => "UNREGISTERED",
        INVOCATION => "INVOCATION",
        INTERRUPT => "INTERRUPT",
        YIELD => "YIELD",
        EVENT_RECEIVED => "EVENT_RECEIVED",
        _ => "UNKNOWN",
    }
}
