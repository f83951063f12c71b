//! Batched WAMP framing (digest §8.1): how several WAMP messages share one WebSocket message
//! (subprotocols `wamp.2.json.batched`, `wamp.2.msgpack.batched`, `wamp.2.cbor.batched`) or one
//! HTTP long-poll body. JSON: each message is followed by the byte 0x1E (a JSON text never holds
//! a raw control character, so the separator cannot occur inside a message). Every binary
//! serializer: each message is preceded by its length as 4 bytes big-endian (the spec writes
//! this down for MsgPack; Autobahn uses the same for CBOR). Owns the subprotocol names, the
//! check of a received batch, its zero-copy split, and the framing of an outgoing message.
//!
//! Interop: Autobahn|Python writes `b"\30"` after each JSON message, which Python reads as
//! octal, so its separator is 0x18, not the spec's 0x1E (and it splits what it receives on
//! 0x18). Neither byte can occur raw in JSON text, so a received JSON batch is split on the
//! first of the two that appears in it, and a connection answers with the separator its peer
//! used ([`json_separator_of`]; 0x1E until the peer sent a batch, and a WAMP client always
//! speaks first).

use bytes::{Buf, Bytes};

use crate::serializer::Serializer;

/// What a batched subprotocol name adds to the unbatched one.
pub const SUFFIX: &str = ".batched";

/// The JSON separator of the spec, written after every message.
pub const JSON_SEPARATOR: u8 = 0x1E;

/// The JSON separator Autobahn|Python writes and expects (see the module text).
pub const AUTOBAHN_PY_JSON_SEPARATOR: u8 = 0x18;

/// The separator a received JSON batch uses: the first 0x1E or 0x18 in it.
pub fn json_separator_of(batch: &[u8]) -> Option<u8> {
    batch
        .iter()
        .copied()
        .find(|&b| b == JSON_SEPARATOR || b == AUTOBAHN_PY_JSON_SEPARATOR)
}

/// Length of the big-endian length prefix of binary serializers.
pub const LENGTH_PREFIX: usize = 4;

/// Parses a WebSocket subprotocol name, batched or not: `wamp.2.json.batched` is
/// `(Json, true)`. The serializer comes from [`Serializer::from_ws_subprotocol`] on the name
/// without the suffix, so every serializer it knows has a batched form.
pub fn parse_subprotocol(name: &str) -> Option<(Serializer, bool)> {
    match name.strip_suffix(SUFFIX) {
        Some(base) => Serializer::from_ws_subprotocol(base).map(|s| (s, true)),
        None => Serializer::from_ws_subprotocol(name).map(|s| (s, false)),
    }
}

/// The subprotocol name of `serializer`, batched or not.
pub fn subprotocol_name(serializer: Serializer, batched: bool) -> String {
    if batched {
        format!("{}{SUFFIX}", serializer.ws_subprotocol())
    } else {
        serializer.ws_subprotocol().to_string()
    }
}

/// Why a received batch was refused (the transport fails).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BatchError {
    /// A batch without a message (the spec says this MUST fail the transport).
    Empty,
    /// A message in it is larger than the transport's `max_message_size`.
    TooLarge,
    /// Bytes that are not a whole number of framed messages: a length past the end, trailing
    /// bytes without their separator, an empty message.
    Malformed(&'static str),
}

impl BatchError {
    /// Text for logs and close reasons.
    pub fn reason(self) -> &'static str {
        match self {
            BatchError::Empty => "empty batch",
            BatchError::TooLarge => "a message in the batch is larger than max_message_size",
            BatchError::Malformed(why) => why,
        }
    }
}

/// Extra bytes the framing adds to one message of `serializer`.
pub fn overhead(serializer: Serializer) -> usize {
    if serializer == Serializer::Json {
        1
    } else {
        LENGTH_PREFIX
    }
}

/// The bytes written before and after a message of `len` bytes: `(prefix, prefix_len,
/// suffix)`; `json_separator` is the byte a JSON message ends with.
pub fn framing(
    serializer: Serializer,
    json_separator: u8,
    len: usize,
) -> ([u8; LENGTH_PREFIX], usize, [u8; 1], usize) {
    if serializer == Serializer::Json {
        ([0; LENGTH_PREFIX], 0, [json_separator], 1)
    } else {
        ((len as u32).to_be_bytes(), LENGTH_PREFIX, [0], 0)
    }
}

/// Splits the first message off `batch`; `Ok(None)` once it is empty. Every rule of
/// [`check`] is applied to the message taken.
fn split_first(
    serializer: Serializer,
    json_separator: u8,
    batch: &[u8],
    max_message_size: usize,
) -> Result<Option<(usize, usize, usize)>, BatchError> {
    if batch.is_empty() {
        return Ok(None);
    }
    if serializer == Serializer::Json {
        let Some(end) = batch.iter().position(|&b| b == json_separator) else {
            return Err(BatchError::Malformed(
                "batch ends with bytes that have no separator",
            ));
        };
        if end == 0 {
            return Err(BatchError::Malformed("empty message in the batch"));
        }
        if end > max_message_size {
            return Err(BatchError::TooLarge);
        }
        // (start, len, bytes consumed)
        Ok(Some((0, end, end + 1)))
    } else {
        let Some(prefix) = batch.get(..LENGTH_PREFIX) else {
            return Err(BatchError::Malformed("batch ends inside a length prefix"));
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len == 0 {
            return Err(BatchError::Malformed("empty message in the batch"));
        }
        if len > max_message_size {
            return Err(BatchError::TooLarge);
        }
        if batch.len() - LENGTH_PREFIX < len {
            return Err(BatchError::Malformed(
                "a length prefix points past the end of the batch",
            ));
        }
        Ok(Some((LENGTH_PREFIX, len, LENGTH_PREFIX + len)))
    }
}

/// Checks a whole received batch before any of it is delivered (so a bad batch is refused as
/// a whole); returns how many messages it holds. A JSON batch is split on `json_separator`.
pub fn check(
    serializer: Serializer,
    json_separator: u8,
    batch: &[u8],
    max_message_size: usize,
) -> Result<usize, BatchError> {
    if batch.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut at = 0;
    let mut count = 0;
    while let Some((_, _, consumed)) =
        split_first(serializer, json_separator, &batch[at..], max_message_size)?
    {
        at += consumed;
        count += 1;
    }
    Ok(count)
}

/// Takes the next message of a batch that passed [`check`], as a zero-copy slice of it;
/// `None` once the batch is used up (or, defensively, if it was not checked and is bad).
pub fn take_next(serializer: Serializer, json_separator: u8, rest: &mut Bytes) -> Option<Bytes> {
    match split_first(serializer, json_separator, rest, usize::MAX) {
        Ok(Some((start, len, consumed))) => {
            let message = rest.slice(start..start + len);
            rest.advance(consumed);
            Some(message)
        }
        _ => {
            rest.clear();
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(ser: Serializer, batch: &[u8], max: usize) -> Result<Vec<Vec<u8>>, BatchError> {
        let sep = json_separator_of(batch).unwrap_or(JSON_SEPARATOR);
        let count = check(ser, sep, batch, max)?;
        let mut rest = Bytes::copy_from_slice(batch);
        let mut out = Vec::new();
        while let Some(m) = take_next(ser, sep, &mut rest) {
            out.push(m.to_vec());
        }
        assert_eq!(out.len(), count);
        Ok(out)
    }

    fn lp(msg: &[u8]) -> Vec<u8> {
        let mut v = (msg.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(msg);
        v
    }

    #[test]
    fn names_are_parsed_by_stripping_the_suffix() {
        assert_eq!(
            parse_subprotocol("wamp.2.json.batched"),
            Some((Serializer::Json, true))
        );
        assert_eq!(
            parse_subprotocol("wamp.2.msgpack.batched"),
            Some((Serializer::MsgPack, true))
        );
        assert_eq!(
            parse_subprotocol("wamp.2.json"),
            Some((Serializer::Json, false))
        );
        assert_eq!(parse_subprotocol("wamp.2.json.batched.batched"), None);
        assert_eq!(parse_subprotocol(".batched"), None);
        assert_eq!(
            subprotocol_name(Serializer::MsgPack, true),
            "wamp.2.msgpack.batched"
        );
    }

    #[test]
    fn json_batches_split_at_each_separator() {
        let batch = b"[1,\"a\"]\x1e[2]\x1e";
        assert_eq!(
            split_all(Serializer::Json, batch, 100).unwrap(),
            vec![b"[1,\"a\"]".to_vec(), b"[2]".to_vec()]
        );
    }

    #[test]
    fn autobahn_python_json_batches_split_at_0x18() {
        let batch = b"[1]\x18[2]\x18";
        assert_eq!(json_separator_of(batch), Some(AUTOBAHN_PY_JSON_SEPARATOR));
        assert_eq!(
            split_all(Serializer::Json, batch, 100).unwrap(),
            vec![b"[1]".to_vec(), b"[2]".to_vec()]
        );
        // Mixed separators are not a batch.
        assert!(split_all(Serializer::Json, b"[1]\x18[2]\x1e", 100).is_err());
    }

    #[test]
    fn length_prefixed_batches_split_by_their_lengths() {
        let mut batch = lp(b"\x93\x01\x02\x03");
        batch.extend(lp(b"\x91\x05"));
        assert_eq!(
            split_all(Serializer::MsgPack, &batch, 100).unwrap(),
            vec![b"\x93\x01\x02\x03".to_vec(), b"\x91\x05".to_vec()]
        );
    }

    #[test]
    fn an_empty_batch_fails() {
        assert_eq!(
            check(Serializer::Json, JSON_SEPARATOR, b"", 100),
            Err(BatchError::Empty)
        );
        assert_eq!(
            check(Serializer::MsgPack, JSON_SEPARATOR, b"", 100),
            Err(BatchError::Empty)
        );
    }

    #[test]
    fn malformed_batches_fail() {
        // Trailing bytes without a separator.
        assert!(matches!(
            check(Serializer::Json, JSON_SEPARATOR, b"[1]\x1e[2]", 100),
            Err(BatchError::Malformed(_))
        ));
        // An empty message.
        assert!(matches!(
            check(Serializer::Json, JSON_SEPARATOR, b"\x1e", 100),
            Err(BatchError::Malformed(_))
        ));
        // A length past the end.
        assert!(matches!(
            check(
                Serializer::MsgPack,
                JSON_SEPARATOR,
                &[0, 0, 0, 9, 1, 2],
                100
            ),
            Err(BatchError::Malformed(_))
        ));
        // A truncated length prefix after a good message.
        let mut batch = lp(b"\x91\x05");
        batch.extend_from_slice(&[0, 0]);
        assert!(matches!(
            check(Serializer::MsgPack, JSON_SEPARATOR, &batch, 100),
            Err(BatchError::Malformed(_))
        ));
        // A zero length.
        assert!(matches!(
            check(Serializer::MsgPack, JSON_SEPARATOR, &[0, 0, 0, 0], 100),
            Err(BatchError::Malformed(_))
        ));
    }

    #[test]
    fn a_message_over_the_size_bound_fails() {
        assert_eq!(
            check(Serializer::Json, JSON_SEPARATOR, b"[1,2,3]\x1e", 6),
            Err(BatchError::TooLarge)
        );
        assert_eq!(
            check(Serializer::Json, JSON_SEPARATOR, b"[1,2,3]\x1e", 7),
            Ok(1)
        );
        let batch = lp(&[7u8; 10]);
        assert_eq!(
            check(Serializer::MsgPack, JSON_SEPARATOR, &batch, 9),
            Err(BatchError::TooLarge)
        );
        assert_eq!(
            check(Serializer::MsgPack, JSON_SEPARATOR, &batch, 10),
            Ok(1)
        );
    }

    #[test]
    fn framing_round_trips() {
        for ser in [Serializer::Json, Serializer::MsgPack] {
            let msg = b"[16,1]";
            let (prefix, prefix_len, suffix, suffix_len) = framing(ser, JSON_SEPARATOR, msg.len());
            let mut wire = prefix[..prefix_len].to_vec();
            wire.extend_from_slice(msg);
            wire.extend_from_slice(&suffix[..suffix_len]);
            assert_eq!(wire.len(), msg.len() + overhead(ser));
            assert_eq!(split_all(ser, &wire, 100).unwrap(), vec![msg.to_vec()]);
        }
    }
}
