//! wire: one WAMP message <-> bytes, in JSON, MessagePack and CBOR; URI and id rules.
//!
//! Decoding borrows from the received frame and keeps the application payload as a raw byte
//! span ([`Payload`]); encoding writes into a caller-owned, reusable `Vec<u8>` and splices a
//! payload span in unchanged when the serializers match, or transcodes it once when they differ.
//! Nothing here does I/O or knows about sessions.
//!
//! Layout: `decode` (message layouts, shared by every serializer through the `Source` trait),
//! `encode` (the inverse), `frame` (an encoded message as parts: head, forwarded payload span,
//! tail), `json`, `msgpack` and `cbor` (byte-level readers and writers), `sink` (the value
//! sink every reader drives and every writer implements: payload transcoding between any two
//! serializers), `options` (the table of spec-known Options/Details keys and their types),
//! `payload` (building and inspecting payloads off the hot path), `uri` (URI rules), `utf8`
//! (the UTF-8 check for text from the network).

mod cbor;
mod decode;
mod encode;
mod frame;
mod json;
pub mod message;
mod msgpack;
pub mod options;
mod payload;
pub mod peek;
mod sink;
pub mod uri;
mod utf8;
pub mod value;

pub use crate::serializer::Serializer;
pub use decode::decode;
pub use encode::{encode, encode_around_payload};
pub use frame::Frame;
pub use message::{code, code_name, Message, OwnedPayload, Payload, Str};
pub use payload::{
    decode_payload_values, encode_value, payload_from_args, payload_from_binary, transcode_payload,
    transparent_payload,
};
pub use peek::{error_uri, peek, peek_code, Head};
pub use uri::validate_uri;
pub use utf8::{is_utf8, utf8_complete_prefix};
pub use value::{Dict, Value};

/// Largest WAMP id (2^53); ids live in [1, MAX_ID].
pub const MAX_ID: u64 = 1 << 53;

/// Deepest nesting of containers (the message array itself counts as one) a decoder accepts;
/// bounds recursion so hostile input cannot overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// Whether `id` is a valid WAMP id: an integer in [1, 2^53] (digest §3).
#[inline]
pub fn is_valid_id(id: u64) -> bool {
    (1..=MAX_ID).contains(&id)
}

/// Why a frame could not be decoded. Every variant is answered with ABORT
/// `wamp.error.protocol_violation` by the router; `message` is the human-readable reason it
/// puts into the ABORT (and a log line), e.g. `"CALL.Options.receive_progress must be a bool"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The message type code when it could be read (so the router can name it).
    pub code: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Why a message could not be encoded: only a payload that cannot be represented in the target
/// serializer (e.g. a MessagePack ext value or a non-string map key going to JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeError {
    pub message: String,
}

impl EncodeError {
    pub(crate) fn new(message: impl Into<String>) -> EncodeError {
        EncodeError {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EncodeError {}

/// Why a low-level read failed, before the message decoder says which field it was reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// Well-formed, but not the type the field needs.
    WrongType,
    /// The message array ended before this element.
    Missing,
    /// Malformed input or a broken rule; the text says which.
    Bad(std::borrow::Cow<'static, str>),
}

impl Fail {
    #[cold]
    pub(crate) fn bad(text: impl Into<std::borrow::Cow<'static, str>>) -> Fail {
        Fail::Bad(text.into())
    }

    /// The text for contexts that have no field name to add (payload transcoding).
    pub(crate) fn describe(&self) -> String {
        match self {
            Fail::WrongType => "unexpected value type".to_owned(),
            Fail::Missing => "missing element".to_owned(),
            Fail::Bad(text) => text.to_string(),
        }
    }
}

/// Dicts up to this size are checked for duplicate keys by a linear scan on insert; larger ones
/// by sorting once at the end (so a hostile 100k-key dict costs n log n, not n^2).
const LINEAR_DUPLICATE_CHECK: usize = 16;

/// Appends a decoded entry, rejecting a duplicate key while the dict is small.
#[inline]
pub(crate) fn push_entry<'a>(
    dict: &mut Dict<'a>,
    key: std::borrow::Cow<'a, str>,
    value: Value<'a>,
) -> Result<(), Fail> {
    if dict.len() < LINEAR_DUPLICATE_CHECK && dict.contains_key(&key) {
        return Err(duplicate_key(&key));
    }
    dict.push_unchecked(key, value);
    Ok(())
}

/// Finishes the duplicate-key check for dicts too large for the linear scan.
pub(crate) fn check_large_dict(dict: &Dict<'_>) -> Result<(), Fail> {
    if dict.len() <= LINEAR_DUPLICATE_CHECK {
        return Ok(());
    }
    let mut keys: Vec<&str> = dict.iter().map(|(k, _)| k).collect();
    keys.sort_unstable();
    match keys.windows(2).find(|pair| pair[0] == pair[1]) {
        Some(pair) => Err(duplicate_key(pair[0])),
        None => Ok(()),
    }
}

#[cold]
fn duplicate_key(key: &str) -> Fail {
    Fail::Bad(format!("duplicate key {key:?}").into())
}

/// Base64 for binary values in JSON (`"\u0000"+base64`, digest §7): standard alphabet, padded
/// on output, padding optional on input (some clients strip it).
pub(crate) const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_bounds() {
        assert!(!is_valid_id(0));
        assert!(is_valid_id(1));
        assert!(is_valid_id(MAX_ID));
        assert!(!is_valid_id(MAX_ID + 1));
        assert!(!is_valid_id(u64::MAX));
    }
}
