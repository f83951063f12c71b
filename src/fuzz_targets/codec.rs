//! The codec targets: one frame of untrusted bytes through everything `wire` does with a
//! received message — `peek`, `decode`, the payload readers — and, when it decodes, through the
//! encoders the router answers with: re-encoding in the same serializer must be a fixed point
//! (bytes -> message -> bytes -> message -> the same bytes), splicing the payload around a
//! header (`encode_around_payload`) must give the same bytes as `encode`, and a message that
//! encodes in another serializer must decode there as the same message type.

use crate::serializer::Serializer;
use crate::wire::{self, Payload};

pub(crate) fn check(ser: Serializer, data: &[u8]) {
    let head = wire::peek(ser, data);
    let Ok(msg) = wire::decode(ser, data) else {
        return;
    };
    if let Some(head) = head {
        assert_eq!(
            head.code,
            msg.code(),
            "peek and decode disagree on the type"
        );
    }
    if let Some(payload) = msg.payload() {
        read_payload(payload);
    }

    let mut once = Vec::new();
    if wire::encode(&msg, ser, &mut once).is_ok() {
        let again = wire::decode(ser, &once)
            .unwrap_or_else(|e| panic!("re-encoded {} does not decode: {e}", msg.name()));
        assert_eq!(again.code(), msg.code());
        let mut twice = Vec::new();
        wire::encode(&again, ser, &mut twice).expect("a re-decoded message encodes");
        assert_eq!(once, twice, "re-encoding is not a fixed point");
        for min_span in [0, 1, 16] {
            let mut head = Vec::new();
            let spliced = match wire::encode_around_payload(&msg, ser, &mut head, min_span) {
                Ok(Some(at)) => {
                    let raw = msg.payload().expect("only a payload is left out").raw;
                    [&head[..at], raw, &head[at..]].concat()
                }
                Ok(None) => head,
                Err(e) => panic!("encode succeeded, encode_around_payload failed: {e}"),
            };
            assert_eq!(spliced, once, "payload splice at min_span {min_span}");
        }
    }

    for other in Serializer::ALL.into_iter().filter(|&other| other != ser) {
        transcoded_decodes(&msg, other);
    }
}

/// A message that encodes in serializer `other` decodes there as the same message type.
fn transcoded_decodes(msg: &wire::Message<'_>, other: Serializer) {
    let mut transcoded = Vec::new();
    if wire::encode(msg, other, &mut transcoded).is_ok() {
        let decoded = wire::decode(other, &transcoded).unwrap_or_else(|e| {
            panic!(
                "{} encoded in {other} does not decode: {e}: {:?}",
                msg.name(),
                String::from_utf8_lossy(&transcoded)
            )
        });
        assert_eq!(decoded.code(), msg.code());
        if let Some(payload) = decoded.payload() {
            read_payload(payload);
        }
    }
}

/// The payload readers of the router and the clients never panic on what `decode` accepted.
fn read_payload(payload: &Payload<'_>) {
    let _ = wire::decode_payload_values(payload);
    let _ = wire::transparent_payload(payload);
    for to in Serializer::ALL {
        let mut out = Vec::new();
        let _ = wire::transcode_payload(payload, to, &mut out);
    }
}
