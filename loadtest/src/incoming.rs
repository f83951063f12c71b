//! What the router sent, classified for the scenario loops, read where it lies in the link's
//! read buffer ([`crate::link::Link::next_message_with`]).
//!
//! The generator must spend far less CPU per operation than the router it measures, or the
//! numbers measure the tool. So the messages that carry the load — EVENT, RESULT, PUBLISHED,
//! INVOCATION — are read with [`wire::peek()`]: type code, ids and the Details dict checked, the
//! payload left unparsed except for the few bytes a scenario needs (an EVENT's stamp). Anything
//! else, or anything whose head does not look as expected (non-empty RESULT.Details, which may
//! say `progress`), goes through the full [`wire::decode`], which also names what is malformed.
//! Every classification owns its data, so the read buffer is free again when it returns.

use wampring::serializer::Serializer;
use wampring::wire::{self, code, Message, Payload};

use crate::outgoing;
use crate::payload::{self, Stamp};

/// Messages any session may receive outside its scenario's own traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Other {
    /// ABORT (reason URI): the session is over.
    Abort(String),
    /// GOODBYE (reason URI): the router closes the session.
    Goodbye(String),
    /// Decodable, but nothing this session expects (counted as a protocol error).
    Unexpected,
    /// Not a valid WAMP message.
    Undecodable,
}

fn other(message: Result<Message<'_>, wire::DecodeError>) -> Other {
    match message {
        Ok(Message::Abort { reason, .. }) => Other::Abort(reason.into_owned()),
        Ok(Message::Goodbye { reason, .. }) => Other::Goodbye(reason.into_owned()),
        Ok(_) => Other::Unexpected,
        Err(_) => Other::Undecodable,
    }
}

/// Payload count from peek's element count (MessagePack counts exactly; JSON says "some").
fn payload_of<'a>(ser: Serializer, head: &wire::Head<'a>) -> Payload<'a> {
    Payload {
        ser,
        count: head.rest_elements.min(2) as u8,
        raw: head.rest,
    }
}

/// What a caller receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToCaller {
    /// A final RESULT for `request`.
    Result(u64),
    /// A progressive RESULT (not final; ignored).
    Progress,
    /// ERROR for CALL `request`, with its error URI.
    Error {
        request: u64,
        error: String,
    },
    Other(Other),
}

pub fn to_caller(ser: Serializer, frame: &[u8]) -> ToCaller {
    if let Some(head) = wire::peek(ser, frame) {
        if head.code == code::RESULT && head.ids().len() == 1 && head.dict_is_empty() {
            return ToCaller::Result(head.ids()[0]);
        }
    }
    match wire::decode(ser, frame) {
        Ok(Message::Result {
            request, details, ..
        }) => {
            if details.get_bool("progress") == Some(true) {
                ToCaller::Progress
            } else {
                ToCaller::Result(request)
            }
        }
        Ok(Message::Error {
            request_type: code::CALL,
            request,
            error,
            ..
        }) => ToCaller::Error {
            request,
            error: error.into_owned(),
        },
        message => ToCaller::Other(other(message)),
    }
}

/// The answer of a meta procedure, as far as the session-list scenario checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaAnswer {
    /// A list of ids (`wamp.session.list`): how many, whether every element is an id in
    /// strictly ascending order (sorted, no duplicates), and whether `own` is among them.
    Ids {
        len: u64,
        ascending: bool,
        includes_own: bool,
    },
    /// A non-negative integer (`wamp.session.count`).
    Count(u64),
    /// Anything else: no first argument, or one of another type.
    Malformed,
}

/// What a session calling meta procedures receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToMetaCaller {
    /// A final RESULT for `request`, its first argument read.
    Result {
        request: u64,
        answer: MetaAnswer,
    },
    /// A progressive RESULT (not final; ignored).
    Progress,
    /// ERROR for CALL `request`, with its error URI.
    Error {
        request: u64,
        error: String,
    },
    Other(Other),
}

/// Classifies one message for a meta caller whose own session id is `own`. The whole RESULT is
/// decoded: its answer is what is measured, and a list of ten thousand ids is read in far less
/// time than the router takes to gather it (the latency is taken before this runs).
pub fn to_meta_caller(ser: Serializer, frame: &[u8], own: u64) -> ToMetaCaller {
    match wire::decode(ser, frame) {
        Ok(Message::Result {
            request,
            details,
            payload,
        }) => {
            if details.get_bool("progress") == Some(true) {
                return ToMetaCaller::Progress;
            }
            let answer = match wire::decode_payload_values(&payload) {
                Ok((args, _)) => meta_answer(args.first(), own),
                Err(_) => MetaAnswer::Malformed,
            };
            ToMetaCaller::Result { request, answer }
        }
        Ok(Message::Error {
            request_type: code::CALL,
            request,
            error,
            ..
        }) => ToMetaCaller::Error {
            request,
            error: error.into_owned(),
        },
        message => ToMetaCaller::Other(other(message)),
    }
}

fn meta_answer(first: Option<&wire::Value<'_>>, own: u64) -> MetaAnswer {
    match first {
        Some(wire::Value::UInt(n)) => MetaAnswer::Count(*n),
        Some(wire::Value::List(items)) => {
            let mut ascending = true;
            let mut includes_own = false;
            let mut previous = 0u64;
            for item in items {
                match item {
                    wire::Value::UInt(id) if *id > previous => {
                        includes_own |= *id == own;
                        previous = *id;
                    }
                    _ => ascending = false,
                }
            }
            MetaAnswer::Ids {
                len: items.len() as u64,
                ascending,
                includes_own,
            }
        }
        _ => MetaAnswer::Malformed,
    }
}

/// What a callee receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToCallee {
    /// An INVOCATION; its echo YIELD was written to the `reply` buffer given.
    Invocation,
    /// INTERRUPT and anything else a callee has nothing to answer to.
    Ignored,
    Other(Other),
}

/// Classifies one message for an echo callee; for an INVOCATION, writes the YIELD with the same
/// arguments into `reply` (cleared first).
pub fn to_callee(ser: Serializer, frame: &[u8], reply: &mut Vec<u8>) -> ToCallee {
    if let Some(head) = wire::peek(ser, frame) {
        if head.code == code::INVOCATION && head.ids().len() == 2 && head.has_dict() {
            outgoing::echo_yield(ser, head.ids()[0], &head, reply);
            return ToCallee::Invocation;
        }
    }
    match wire::decode(ser, frame) {
        Ok(Message::Invocation {
            request, payload, ..
        }) => {
            let answer = Message::Yield {
                request,
                options: wire::Dict::new(),
                payload,
            };
            reply.clear();
            match wire::encode(&answer, ser, reply) {
                Ok(()) => ToCallee::Invocation,
                Err(_) => ToCallee::Other(Other::Undecodable),
            }
        }
        Ok(Message::Abort { reason, .. }) => ToCallee::Other(Other::Abort(reason.into_owned())),
        Ok(Message::Goodbye { reason, .. }) => ToCallee::Other(Other::Goodbye(reason.into_owned())),
        Ok(_) => ToCallee::Ignored,
        Err(_) => ToCallee::Other(Other::Undecodable),
    }
}

/// What a publisher receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToPublisher {
    Published(u64),
    Error { request: u64, error: String },
    Other(Other),
}

pub fn to_publisher(ser: Serializer, frame: &[u8]) -> ToPublisher {
    if let Some(head) = wire::peek(ser, frame) {
        if head.code == code::PUBLISHED && head.ids().len() == 2 && !head.has_dict() {
            return ToPublisher::Published(head.ids()[0]);
        }
    }
    match wire::decode(ser, frame) {
        Ok(Message::Published { request, .. }) => ToPublisher::Published(request),
        Ok(Message::Error {
            request_type: code::PUBLISH,
            request,
            error,
            ..
        }) => ToPublisher::Error {
            request,
            error: error.into_owned(),
        },
        message => ToPublisher::Other(other(message)),
    }
}

/// What a subscriber receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToSubscriber {
    /// An EVENT for `subscription`; `stamp` is `None` when the payload is not one the
    /// generator published.
    Event {
        subscription: u64,
        stamp: Option<Stamp>,
    },
    Other(Other),
}

pub fn to_subscriber(ser: Serializer, frame: &[u8]) -> ToSubscriber {
    if let Some((subscription, stamp)) = plain_event(ser, frame) {
        return ToSubscriber::Event {
            subscription,
            stamp: Some(stamp),
        };
    }
    if let Some(head) = wire::peek(ser, frame) {
        if head.code == code::EVENT && head.ids().len() == 2 && head.has_dict() {
            return ToSubscriber::Event {
                subscription: head.ids()[0],
                stamp: payload::parse_stamp(&payload_of(ser, &head)),
            };
        }
    }
    match wire::decode(ser, frame) {
        Ok(Message::Event {
            subscription,
            payload,
            ..
        }) => ToSubscriber::Event {
            subscription,
            stamp: payload::parse_stamp(&payload),
        },
        message => ToSubscriber::Other(other(message)),
    }
}

/// The EVENTs a thread's subscribers received most recently, by their exact bytes. Every
/// subscriber of a topic receives byte-identical EVENTs for one publish (same subscription id,
/// publication id and payload), so with many subscribers on a thread each EVENT is read once
/// and recognised by comparison afterwards. A hit requires the same bytes, so it returns what
/// reading them would: the cache changes the cost, never the result.
pub struct EventCache {
    slots: Vec<CachedEvent>,
}

struct CachedEvent {
    len: usize,
    bytes: [u8; EventCache::MAX_FRAME],
    subscription: u64,
    stamp: Stamp,
}

impl Default for EventCache {
    fn default() -> Self {
        EventCache::new()
    }
}

impl EventCache {
    /// Frames longer than this are read every time (large payloads: reading is not the cost).
    pub const MAX_FRAME: usize = 96;
    /// Slots, a power of two: a few windows of publishes in flight.
    const SLOTS: usize = 4096;

    pub fn new() -> EventCache {
        EventCache {
            slots: (0..Self::SLOTS)
                .map(|_| CachedEvent {
                    len: usize::MAX,
                    bytes: [0; Self::MAX_FRAME],
                    subscription: 0,
                    stamp: Stamp {
                        publisher: 0,
                        seq: 0,
                        sent_ns: 0,
                    },
                })
                .collect(),
        }
    }

    /// A cache that remembers nothing, for threads without subscribers.
    pub fn empty() -> EventCache {
        EventCache { slots: Vec::new() }
    }

    /// As [`to_subscriber`], remembering compact EVENTs.
    #[inline]
    pub fn to_subscriber(&mut self, ser: Serializer, frame: &[u8]) -> ToSubscriber {
        // MessagePack and CBOR EVENTs are read at fixed places about as fast as they are hashed.
        if ser != Serializer::Json
            || frame.len() > Self::MAX_FRAME
            || frame.len() < 16
            || self.slots.is_empty()
        {
            return to_subscriber(ser, frame);
        }
        let slot = &mut self.slots[Self::slot_of(frame)];
        if slot.len == frame.len() && slot.bytes[..frame.len()] == *frame {
            return ToSubscriber::Event {
                subscription: slot.subscription,
                stamp: Some(slot.stamp),
            };
        }
        match plain_event(ser, frame) {
            Some((subscription, stamp)) => {
                slot.len = frame.len();
                slot.bytes[..frame.len()].copy_from_slice(frame);
                slot.subscription = subscription;
                slot.stamp = stamp;
                ToSubscriber::Event {
                    subscription,
                    stamp: Some(stamp),
                }
            }
            None => to_subscriber(ser, frame),
        }
    }

    /// A multiplicative hash of every eight-byte word of the frame (the last one overlapping):
    /// publishes of one batch share their send time and differ only in a few bytes (sequence,
    /// publication id), so no part of the frame can be left out.
    #[inline]
    fn slot_of(frame: &[u8]) -> usize {
        let word = |at: usize| u64::from_le_bytes(frame[at..at + 8].try_into().unwrap_or([0; 8]));
        let mut hash = frame.len() as u64;
        let mut at = 0;
        while at + 8 <= frame.len() {
            hash = (hash.rotate_left(5) ^ word(at)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            at += 8;
        }
        hash = (hash.rotate_left(5) ^ word(frame.len() - 8)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (hash >> 52) as usize & (Self::SLOTS - 1)
    }
}

/// The EVENT a compact encoder writes for one of the generator's publishes, read at fixed
/// places: `[36, subscription, publication, {}, [stamp...]...]` with no spacing (JSON) or any
/// integer widths (MessagePack, CBOR). A subscriber reads one of these per delivery, so this is the
/// generator's hottest path; any other shape (Details with entries, spacing, a payload that is
/// not a stamp) returns `None` and takes the general path.
#[inline]
fn plain_event(ser: Serializer, frame: &[u8]) -> Option<(u64, Stamp)> {
    let mut count = 1;
    let (subscription, args) = match ser {
        Serializer::MsgPack => {
            let [0x94..=0x96, 0x24, ..] = frame else {
                return None;
            };
            let (subscription, used) = payload::msgpack_unsigned(&frame[2..])?;
            let at = 2 + used;
            let (_, used) = payload::msgpack_unsigned(frame.get(at..)?)?;
            let at = at + used;
            if *frame.get(at)? != 0x80 {
                return None;
            }
            (subscription, &frame[at + 1..])
        }
        Serializer::Cbor => {
            // 0x85 (Arguments) or 0x86 (and ArgumentsKw), then 36 as 0x18 0x24.
            let [head @ 0x85..=0x86, 0x18, 0x24, ..] = frame else {
                return None;
            };
            count = head - 0x84;
            let (subscription, used) = payload::cbor_unsigned(&frame[3..])?;
            let at = 3 + used;
            let (_, used) = payload::cbor_unsigned(frame.get(at..)?)?;
            let at = at + used;
            if *frame.get(at)? != 0xa0 {
                return None;
            }
            (subscription, &frame[at + 1..])
        }
        Serializer::Json => {
            let rest = frame.strip_prefix(b"[36,")?;
            let (subscription, len) = wire::peek::leading_decimal(rest)?;
            let rest = rest.get(len..)?.strip_prefix(b",")?;
            // The publication id is not needed, but eight digits at a time is still the fastest
            // way past it.
            let (_, len) = wire::peek::leading_decimal(rest)?;
            if len == 0 || subscription == 0 {
                return None;
            }
            (subscription, rest.get(len..)?.strip_prefix(b",{},")?)
        }
    };
    let stamp = payload::parse_stamp(&Payload {
        ser,
        count,
        raw: args,
    })?;
    Some((subscription, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wampring::wire::Dict;

    fn encoded(message: &Message<'_>, ser: Serializer) -> Vec<u8> {
        let mut out = Vec::new();
        wire::encode(message, ser, &mut out).unwrap();
        out
    }

    fn stamp_args(ser: Serializer) -> (Stamp, Vec<u8>) {
        let stamp = Stamp {
            publisher: 2,
            seq: 99,
            sent_ns: 123_456_789,
        };
        let mut args = Vec::new();
        payload::write_stamped_args(ser, stamp, 5, &mut args);
        (stamp, args)
    }

    #[test]
    fn meta_answers_are_read_and_checked() {
        for ser in Serializer::ALL {
            let result = |request: u64, arg: wire::Value<'static>| {
                let mut args = Vec::new();
                wire::encode_value(&wire::Value::List(vec![arg]), ser, &mut args).unwrap();
                encoded(
                    &Message::Result {
                        request,
                        details: Dict::new(),
                        payload: Payload {
                            ser,
                            count: 1,
                            raw: &args,
                        },
                    },
                    ser,
                )
            };
            let ids = |ids: &[u64]| {
                wire::Value::List(ids.iter().map(|&id| wire::Value::UInt(id)).collect())
            };
            assert_eq!(
                to_meta_caller(ser, &result(3, ids(&[2, 5, 1 << 50])), 5),
                ToMetaCaller::Result {
                    request: 3,
                    answer: MetaAnswer::Ids {
                        len: 3,
                        ascending: true,
                        includes_own: true
                    }
                },
                "{ser}"
            );
            // Unsorted, duplicated, or not ids at all: not ascending; own id missing.
            for bad in [
                ids(&[5, 2]),
                ids(&[2, 2]),
                wire::Value::List(vec![wire::Value::Str("2".into())]),
            ] {
                let ToMetaCaller::Result {
                    answer: MetaAnswer::Ids { ascending, .. },
                    ..
                } = to_meta_caller(ser, &result(4, bad), 9)
                else {
                    panic!("{ser}")
                };
                assert!(!ascending, "{ser}");
            }
            assert_eq!(
                to_meta_caller(ser, &result(4, ids(&[1, 2])), 9),
                ToMetaCaller::Result {
                    request: 4,
                    answer: MetaAnswer::Ids {
                        len: 2,
                        ascending: true,
                        includes_own: false
                    }
                }
            );
            assert_eq!(
                to_meta_caller(ser, &result(6, wire::Value::UInt(10_001)), 1),
                ToMetaCaller::Result {
                    request: 6,
                    answer: MetaAnswer::Count(10_001)
                }
            );
            assert_eq!(
                to_meta_caller(ser, &result(7, wire::Value::Str("x".into())), 1),
                ToMetaCaller::Result {
                    request: 7,
                    answer: MetaAnswer::Malformed
                }
            );
            let no_args = encoded(
                &Message::Result {
                    request: 8,
                    details: Dict::new(),
                    payload: Payload::empty(ser),
                },
                ser,
            );
            assert_eq!(
                to_meta_caller(ser, &no_args, 1),
                ToMetaCaller::Result {
                    request: 8,
                    answer: MetaAnswer::Malformed
                }
            );
            let error = encoded(
                &Message::Error {
                    request_type: code::CALL,
                    request: 9,
                    details: Dict::new(),
                    error: "wamp.error.not_authorized".into(),
                    payload: Payload::empty(ser),
                },
                ser,
            );
            assert_eq!(
                to_meta_caller(ser, &error, 1),
                ToMetaCaller::Error {
                    request: 9,
                    error: "wamp.error.not_authorized".into()
                }
            );
            assert_eq!(
                to_meta_caller(ser, b"\xff\xff", 1),
                ToMetaCaller::Other(Other::Undecodable)
            );
        }
    }

    #[test]
    fn events_are_read_by_the_fast_path_and_the_full_decode_alike() {
        for ser in Serializer::ALL {
            let (stamp, args) = stamp_args(ser);
            let payload = Payload {
                ser,
                count: 1,
                raw: &args,
            };
            let mut details = Dict::new();
            details.insert("publisher", 77u64);
            for details in [Dict::new(), details] {
                let frame = encoded(
                    &Message::Event {
                        subscription: 41,
                        publication: 5,
                        details,
                        payload,
                    },
                    ser,
                );
                assert_eq!(
                    to_subscriber(ser, &frame),
                    ToSubscriber::Event {
                        subscription: 41,
                        stamp: Some(stamp)
                    },
                    "{ser}"
                );
            }
            let foreign = encoded(
                &Message::Event {
                    subscription: 41,
                    publication: 5,
                    details: Dict::new(),
                    payload: Payload::empty(ser),
                },
                ser,
            );
            assert_eq!(
                to_subscriber(ser, &foreign),
                ToSubscriber::Event {
                    subscription: 41,
                    stamp: None
                }
            );
        }
    }

    #[test]
    fn compact_events_take_the_fixed_layout_path_and_others_do_not() {
        for ser in Serializer::ALL {
            let (stamp, args) = stamp_args(ser);
            for (subscription, publication) in [(1, 1), (300, 1 << 52), (1 << 40, 70_000)] {
                let frame = encoded(
                    &Message::Event {
                        subscription,
                        publication,
                        details: Dict::new(),
                        payload: Payload {
                            ser,
                            count: 1,
                            raw: &args,
                        },
                    },
                    ser,
                );
                assert_eq!(
                    plain_event(ser, &frame),
                    Some((subscription, stamp)),
                    "{ser}"
                );
            }
        }
        let (stamp, _) = stamp_args(Serializer::Json);
        let spaced = format!(
            "[36, 4, 5, {{}}, [{}, {}, {}, \"\"]]",
            stamp.publisher, stamp.seq, stamp.sent_ns
        );
        assert_eq!(plain_event(Serializer::Json, spaced.as_bytes()), None);
        assert_eq!(
            to_subscriber(Serializer::Json, spaced.as_bytes()),
            ToSubscriber::Event {
                subscription: 4,
                stamp: Some(stamp)
            }
        );
        let truncated: [&[u8]; 6] = [
            b"[36,",
            b"[36,1,",
            b"[36,1,2,{}",
            b"[36,1,2,{},[",
            b"[36,,2,{},[1,2,3,\"\"]]",
            b"[36,0,2,{},[1,2,3,\"\"]]",
        ];
        for frame in truncated {
            assert_eq!(plain_event(Serializer::Json, frame), None, "{frame:?}");
        }
        let msgpack: [&[u8]; 4] = [
            &[0x95, 0x24],
            &[0x95, 0x24, 1, 2],
            &[0x95, 0x24, 1, 2, 0x81],
            &[0x95, 0x24, 1, 2, 0x80],
        ];
        for frame in msgpack {
            assert_eq!(plain_event(Serializer::MsgPack, frame), None, "{frame:?}");
        }
        let cbor: [&[u8]; 8] = [
            &[0x85, 0x18],
            &[0x85, 0x18, 0x24],
            &[0x85, 0x18, 0x24, 1, 2],
            // Details with an entry, then a stamp.
            &[
                0x85, 0x18, 0x24, 1, 2, 0xa1, 0x61, b'a', 1, 0x84, 1, 2, 3, 0x60,
            ],
            // Not an EVENT (RESULT is 50: 0x18 0x32).
            &[0x85, 0x18, 0x32, 1, 2, 0xa0, 0x84, 1, 2, 3, 0x60],
            // No Arguments: four elements only.
            &[0x84, 0x18, 0x24, 1, 2, 0xa0],
            // A negative subscription id.
            &[0x85, 0x18, 0x24, 0x20, 2, 0xa0, 0x84, 1, 2, 3, 0x60],
            // Arguments that are not a stamp.
            &[0x85, 0x18, 0x24, 1, 2, 0xa0, 0x81, 0x60],
        ];
        for frame in cbor {
            assert_eq!(plain_event(Serializer::Cbor, frame), None, "{frame:?}");
        }
        // Shortest heads for the stamp, and a sixth element (ArgumentsKw): still read here.
        let with_kwargs = [
            0x86, 0x18, 0x24, 0x19, 0x01, 0x00, 0x05, 0xa0, 0x84, 1, 2, 3, 0x60, 0xa0,
        ];
        assert_eq!(
            plain_event(Serializer::Cbor, &with_kwargs),
            Some((
                256,
                Stamp {
                    publisher: 1,
                    seq: 2,
                    sent_ns: 3
                }
            ))
        );
        // An indefinite-length message array is left to the general path, which reads it.
        let indefinite = [0x9f, 0x18, 0x24, 7, 8, 0xa0, 0x84, 1, 2, 3, 0x60, 0xff];
        assert_eq!(plain_event(Serializer::Cbor, &indefinite), None);
        assert_eq!(
            to_subscriber(Serializer::Cbor, &indefinite),
            ToSubscriber::Event {
                subscription: 7,
                stamp: Some(Stamp {
                    publisher: 1,
                    seq: 2,
                    sent_ns: 3
                })
            }
        );
    }

    #[test]
    fn the_event_cache_answers_exactly_what_reading_would() {
        let mut cache = EventCache::new();
        for ser in Serializer::ALL {
            let mut frames = Vec::new();
            for seq in 0..3000u64 {
                let mut args = Vec::new();
                let stamp = Stamp {
                    publisher: seq % 3,
                    seq,
                    sent_ns: 1_000_000 + seq / 7,
                };
                payload::write_stamped_args(ser, stamp, (seq % 5) as usize, &mut args);
                frames.push(encoded(
                    &Message::Event {
                        subscription: 9 + seq % 2,
                        publication: (seq * 0x9E37_79B9) % wire::MAX_ID + 1,
                        details: Dict::new(),
                        payload: Payload {
                            ser,
                            count: 1,
                            raw: &args,
                        },
                    },
                    ser,
                ));
            }
            // A near-miss: the same frame with one stamp digit/byte changed.
            let mut altered = frames[10].clone();
            let last = altered.len() - 3;
            altered[last] ^= 0x01;
            frames.push(altered);
            frames.push(b"[8,1,2,{},\"x\"]".to_vec());
            for round in 0..3 {
                for frame in &frames {
                    assert_eq!(
                        cache.to_subscriber(ser, frame),
                        to_subscriber(ser, frame),
                        "{ser} round {round}"
                    );
                }
            }
        }
    }

    #[test]
    fn results_errors_and_progress_reach_the_caller() {
        for ser in Serializer::ALL {
            let result = encoded(
                &Message::Result {
                    request: 1 << 40,
                    details: Dict::new(),
                    payload: Payload::empty(ser),
                },
                ser,
            );
            assert_eq!(to_caller(ser, &result), ToCaller::Result(1 << 40));
            let mut progress = Dict::new();
            progress.insert("progress", true);
            let partial = encoded(
                &Message::Result {
                    request: 3,
                    details: progress,
                    payload: Payload::empty(ser),
                },
                ser,
            );
            assert_eq!(to_caller(ser, &partial), ToCaller::Progress);
            let error = encoded(
                &Message::Error {
                    request_type: code::CALL,
                    request: 8,
                    details: Dict::new(),
                    error: "wamp.error.no_such_procedure".into(),
                    payload: Payload::empty(ser),
                },
                ser,
            );
            assert_eq!(
                to_caller(ser, &error),
                ToCaller::Error {
                    request: 8,
                    error: "wamp.error.no_such_procedure".into()
                }
            );
            let goodbye = encoded(
                &Message::Goodbye {
                    details: Dict::new(),
                    reason: "wamp.close.system_shutdown".into(),
                },
                ser,
            );
            assert_eq!(
                to_caller(ser, &goodbye),
                ToCaller::Other(Other::Goodbye("wamp.close.system_shutdown".into()))
            );
            assert_eq!(
                to_caller(ser, b"\xc1garbage"),
                ToCaller::Other(Other::Undecodable)
            );
        }
    }

    #[test]
    fn published_and_refused_publishes_reach_the_publisher() {
        for ser in Serializer::ALL {
            let ack = encoded(
                &Message::Published {
                    request: 12,
                    publication: 13,
                },
                ser,
            );
            assert_eq!(to_publisher(ser, &ack), ToPublisher::Published(12));
            let refused = encoded(
                &Message::Error {
                    request_type: code::PUBLISH,
                    request: 14,
                    details: Dict::new(),
                    error: "wamp.error.not_authorized".into(),
                    payload: Payload::empty(ser),
                },
                ser,
            );
            assert_eq!(
                to_publisher(ser, &refused),
                ToPublisher::Error {
                    request: 14,
                    error: "wamp.error.not_authorized".into()
                }
            );
        }
    }

    #[test]
    fn callee_echoes_every_invocation_and_ignores_interrupts() {
        for ser in Serializer::ALL {
            let (_, args) = stamp_args(ser);
            let mut details = Dict::new();
            details.insert("caller", 5u64);
            let invocation = encoded(
                &Message::Invocation {
                    request: 300,
                    registration: 2,
                    details,
                    payload: Payload {
                        ser,
                        count: 1,
                        raw: &args,
                    },
                },
                ser,
            );
            let mut reply = Vec::new();
            assert_eq!(
                to_callee(ser, &invocation, &mut reply),
                ToCallee::Invocation
            );
            let Ok(Message::Yield {
                request, payload, ..
            }) = wire::decode(ser, &reply)
            else {
                panic!("{ser}: not a YIELD");
            };
            assert_eq!((request, payload.raw), (300, &args[..]));
            let interrupt = encoded(
                &Message::Interrupt {
                    request: 300,
                    options: Dict::new(),
                },
                ser,
            );
            assert_eq!(to_callee(ser, &interrupt, &mut reply), ToCallee::Ignored);
            let abort = encoded(
                &Message::Abort {
                    details: Dict::new(),
                    reason: "wamp.error.protocol_violation".into(),
                    payload: Payload::empty(ser),
                },
                ser,
            );
            assert_eq!(
                to_callee(ser, &abort, &mut reply),
                ToCallee::Other(Other::Abort("wamp.error.protocol_violation".into()))
            );
        }
    }
}
