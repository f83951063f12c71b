//! wire: one WAMP message <-> bytes, in JSON and MessagePack; URI and id rules.
//!
//! Decoding borrows from the received frame and keeps the application payload as a raw byte
//! span ([`Payload`]); encoding writes into a caller-owned, reusable `Vec<u8>` and splices a
//! payload span in unchanged when the serializers match, or transcodes it once when they differ.
//! Nothing here does I/O or knows about sessions.

pub mod message;
pub mod value;

pub use crate::serializer::Serializer;
pub use message::{code, code_name, Message, OwnedPayload, Payload, Str};
pub use value::{Dict, Value};

/// Largest WAMP id (2^53); ids live in [1, MAX_ID].
pub const MAX_ID: u64 = 1 << 53;

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

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EncodeError {}
