//! RawSocket (digest §8.2): the 4-octet handshake (server checks the client's and answers; client
//! builds its own and checks the reply) and the framing after it ([`RawFramer`]): 4-octet headers
//! `RRRR X TTT` + 24-bit length, PING answered by PONG, size limits both ways.
//!
//! Decisions where the spec leaves room:
//! - A first octet other than 0x7F gets no reply at all: the peer is not speaking RawSocket, so
//!   there is nobody to tell; the connection is closed.
//! - Reserved octets are checked before the serializer, so a request wrong in both gets code 3.
//! - Our receive limit is `max_message_size` rounded down to a power of two and clamped to
//!   [2^9, 2^24]: what we announce is exactly what we enforce.
//! - There is no error frame after the handshake: a protocol violation or an over-limit message
//!   closes the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::net::conn::TransportConfig;
use crate::serializer::Serializer;

/// First octet of every handshake.
pub const MAGIC: u8 = 0x7F;

/// Length of the handshake and of a frame header.
pub const HEADER_LEN: usize = 4;

/// Largest payload a frame can carry: 2^24 (the X bit set, 24 length bits zero).
pub const MAX_FRAME_PAYLOAD: usize = 1 << 24;

/// Frame types (the TTT bits).
pub mod frame_type {
    pub const MESSAGE: u8 = 0;
    pub const PING: u8 = 1;
    pub const PONG: u8 = 2;
}

/// Handshake error codes (the EEEE nibble of an error reply).
pub mod handshake_error {
    pub const SERIALIZER_UNSUPPORTED: u8 = 1;
    pub const MAX_LENGTH_UNACCEPTABLE: u8 = 2;
    pub const RESERVED_BITS_USED: u8 = 3;
    pub const MAX_CONNECTION_COUNT: u8 = 4;
}

/// What a handshake error code means, for log lines and close reasons.
pub fn handshake_error_text(code: u8) -> &'static str {
    match code {
        handshake_error::SERIALIZER_UNSUPPORTED => "serializer unsupported",
        handshake_error::MAX_LENGTH_UNACCEPTABLE => "maximum message length unacceptable",
        handshake_error::RESERVED_BITS_USED => "use of reserved bits (unsupported feature)",
        handshake_error::MAX_CONNECTION_COUNT => "maximum connection count reached",
        _ => "unknown handshake error",
    }
}

/// The LENGTH nibble announcing `max_message_size` rounded down to 2^(9+L), L in 0..=15.
pub fn length_nibble(max_message_size: usize) -> u8 {
    let clamped = max_message_size.clamp(1 << 9, MAX_FRAME_PAYLOAD);
    (usize::BITS - 1 - clamped.leading_zeros() - 9) as u8
}

/// The message size a LENGTH nibble announces: 2^(9+L).
pub fn nibble_to_max_len(nibble: u8) -> usize {
    1usize << (9 + (nibble & 0x0F) as u32)
}

/// A success handshake (request or reply): serializer and our receive-limit nibble.
pub fn encode_handshake(serializer: Serializer, length_nibble: u8) -> [u8; 4] {
    [
        MAGIC,
        (length_nibble & 0x0F) << 4 | serializer.rawsocket_id(),
        0,
        0,
    ]
}

/// An error reply with one of [`handshake_error`]'s codes.
pub fn encode_handshake_error(code: u8) -> [u8; 4] {
    [MAGIC, (code & 0x0F) << 4, 0, 0]
}

/// Why the server refuses a client handshake.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// First octet is not 0x7F: close without reply.
    NotRawSocket,
    /// Answer with this error code, then close.
    Error(u8),
}

/// A client handshake the server accepts.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct AcceptedHandshake {
    pub serializer: Serializer,
    /// The client's receive limit: we never send it a larger message.
    pub peer_max_len: usize,
}

/// Server side: checks the client's 4-octet handshake against our config.
pub fn parse_client_handshake(
    request: [u8; 4],
    config: &TransportConfig,
) -> Result<AcceptedHandshake, HandshakeRefusal> {
    if request[0] != MAGIC {
        return Err(HandshakeRefusal::NotRawSocket);
    }
    if request[2] != 0 || request[3] != 0 {
        return Err(HandshakeRefusal::Error(handshake_error::RESERVED_BITS_USED));
    }
    let serializer = Serializer::from_rawsocket_id(request[1] & 0x0F)
        .filter(|s| config.serializers.contains(s))
        .ok_or(HandshakeRefusal::Error(
            handshake_error::SERIALIZER_UNSUPPORTED,
        ))?;
    Ok(AcceptedHandshake {
        serializer,
        peer_max_len: nibble_to_max_len(request[1] >> 4),
    })
}

/// Client side: checks the router's reply; `Ok(peer_max_len)` or the reason it refused.
pub fn parse_server_handshake(reply: [u8; 4], serializer: Serializer) -> Result<usize, String> {
    if reply[0] != MAGIC {
        return Err(format!(
            "rawsocket handshake reply starts with {:#04x}, not 0x7f",
            reply[0]
        ));
    }
    if reply[2] != 0 || reply[3] != 0 {
        return Err("rawsocket handshake reply uses reserved octets".to_string());
    }
    let ser_nibble = reply[1] & 0x0F;
    if ser_nibble == 0 {
        let code = reply[1] >> 4;
        return Err(format!(
            "router refused the rawsocket handshake: error {code} ({})",
            handshake_error_text(code)
        ));
    }
    if ser_nibble != serializer.rawsocket_id() {
        return Err(format!(
            "router answered serializer {ser_nibble}, we asked for {}",
            serializer.rawsocket_id()
        ));
    }
    Ok(nibble_to_max_len(reply[1] >> 4))
}

/// A frame header the sender wrote wrongly.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RawProtocolError(pub &'static str);

/// Encodes a frame header; `payload_len` must be at most 2^24 (the caller checks limits).
pub fn encode_frame_header(ty: u8, payload_len: usize) -> [u8; 4] {
    debug_assert!(payload_len <= MAX_FRAME_PAYLOAD);
    if payload_len == MAX_FRAME_PAYLOAD {
        [0x08 | (ty & 0x07), 0, 0, 0]
    } else {
        let len = (payload_len as u32).to_be_bytes();
        [ty & 0x07, len[1], len[2], len[3]]
    }
}

/// Decodes a frame header into (type, payload length), rejecting reserved bits, reserved types
/// and an X bit with a non-zero 24-bit length.
pub fn decode_frame_header(header: [u8; 4]) -> Result<(u8, usize), RawProtocolError> {
    let b0 = header[0];
    if b0 & 0xF0 != 0 {
        return Err(RawProtocolError("reserved bits set in frame header"));
    }
    let ty = b0 & 0x07;
    if ty > frame_type::PONG {
        return Err(RawProtocolError("reserved frame type"));
    }
    let len24 = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
    if b0 & 0x08 != 0 {
        if len24 != 0 {
            return Err(RawProtocolError(
                "X bit set with a non-zero 24-bit length (longer than 2^24)",
            ));
        }
        return Ok((ty, MAX_FRAME_PAYLOAD));
    }
    Ok((ty, len24))
}

/// What the framer found in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawEvent {
    Message(Bytes),
    /// The connection must be closed (protocol violation or over-limit message).
    Closed(String),
}

/// What [`RawFramer::decode_in_place`] found: an event, or a message still in the input after
/// its 4-octet header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawInPlace {
    Event(RawEvent),
    Message { len: usize },
}

/// The framing of one RawSocket connection after the handshake.
pub struct RawFramer {
    /// What we announced and enforce on receive.
    our_max_len: usize,
    /// What the peer announced; we never send more.
    peer_max_len: usize,
    failed: bool,
}

impl RawFramer {
    pub fn new(our_max_len: usize, peer_max_len: usize) -> RawFramer {
        RawFramer {
            our_max_len,
            peer_max_len,
            failed: false,
        }
    }

    pub fn peer_max_len(&self) -> usize {
        self.peer_max_len
    }

    pub fn our_max_len(&self) -> usize {
        self.our_max_len
    }

    /// Appends one message frame (payload = concatenation of `parts`). The caller checked the
    /// total against [`RawFramer::peer_max_len`].
    pub fn encode_message(&self, parts: &[&[u8]], out: &mut BytesMut) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        out.reserve(HEADER_LEN + len);
        out.put_slice(&encode_frame_header(frame_type::MESSAGE, len));
        for part in parts {
            out.put_slice(part);
        }
    }

    /// Consumes frames from `input` until one yields an event; PONGs for PINGs go to `out`.
    /// `pong_allowed(len)` tells whether a PONG of `len` payload bytes may still be queued.
    pub fn decode(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        pong_allowed: impl Fn(usize, &BytesMut) -> bool,
    ) -> Option<RawEvent> {
        match self.decode_in_place(input, out, pong_allowed)? {
            RawInPlace::Event(event) => Some(event),
            RawInPlace::Message { len } => {
                input.advance(HEADER_LEN);
                Some(RawEvent::Message(input.split_to(len).freeze()))
            }
        }
    }

    /// As [`RawFramer::decode`], but a message is left in `input` at
    /// `input[HEADER_LEN..HEADER_LEN + len]` for the caller to read and then consume with
    /// `input.advance(HEADER_LEN + len)`: no `Bytes` per message.
    pub fn decode_in_place(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        pong_allowed: impl Fn(usize, &BytesMut) -> bool,
    ) -> Option<RawInPlace> {
        loop {
            if self.failed {
                return None;
            }
            let header = match input.get(..HEADER_LEN) {
                Some(h) => [h[0], h[1], h[2], h[3]],
                None => return None,
            };
            let (ty, len) = match decode_frame_header(header) {
                Ok(v) => v,
                Err(RawProtocolError(reason)) => return self.fail_in_place(reason.to_string()),
            };
            if len > self.our_max_len {
                return self.fail_in_place(format!(
                    "incoming frame of {len} bytes exceeds our limit of {}",
                    self.our_max_len
                ));
            }
            let total = HEADER_LEN + len;
            if input.len() < total {
                input.reserve(total - input.len());
                return None;
            }
            if ty == frame_type::MESSAGE {
                return Some(RawInPlace::Message { len });
            }
            input.advance(HEADER_LEN);
            match ty {
                frame_type::PING => {
                    if len > self.peer_max_len {
                        return self
                            .fail_in_place("ping larger than the peer may receive as pong".into());
                    }
                    if !pong_allowed(len, out) {
                        return self.fail_in_place("peer does not read its pongs".into());
                    }
                    out.reserve(HEADER_LEN + len);
                    out.put_slice(&encode_frame_header(frame_type::PONG, len));
                    out.put_slice(&input[..len]);
                    input.advance(len);
                }
                _ => input.advance(len),
            }
        }
    }

    fn fail_in_place(&mut self, reason: String) -> Option<RawInPlace> {
        self.fail(reason).map(RawInPlace::Event)
    }

    fn fail(&mut self, reason: String) -> Option<RawEvent> {
        self.failed = true;
        Some(RawEvent::Closed(format!("rawsocket failed: {reason}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TransportConfig {
        TransportConfig::default()
    }

    #[test]
    fn client_handshake_reads_serializer_and_peer_limit() {
        let accepted = parse_client_handshake([MAGIC, 0x32, 0, 0], &config()).unwrap();
        assert_eq!(accepted.serializer, Serializer::MsgPack);
        assert_eq!(accepted.peer_max_len, 1 << 12);
        assert_eq!(
            parse_client_handshake([0x47, 0x32, 0, 0], &config()),
            Err(HandshakeRefusal::NotRawSocket)
        );
    }

    #[test]
    fn server_handshake_reply_round_trips() {
        let reply = encode_handshake(Serializer::Json, 15);
        assert_eq!(reply, [0x7F, 0xF1, 0, 0]);
        assert_eq!(parse_server_handshake(reply, Serializer::Json), Ok(1 << 24));
        assert!(parse_server_handshake(reply, Serializer::MsgPack).is_err());
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut framer = RawFramer::new(1024, 1024);
        let mut out = BytesMut::new();
        let mut bytes = BytesMut::new();
        framer.encode_message(&[b"hello"], &mut bytes);
        for cut in 0..bytes.len() {
            let mut input = BytesMut::from(&bytes[..cut]);
            assert_eq!(framer.decode(&mut input, &mut out, |_, _| true), None);
            assert_eq!(
                input.len(),
                cut,
                "nothing consumed before a frame is complete"
            );
        }
    }

    #[test]
    fn ping_the_peer_could_not_take_back_fails() {
        let mut framer = RawFramer::new(4096, 512);
        let mut out = BytesMut::new();
        let mut input = BytesMut::new();
        input.put_slice(&encode_frame_header(frame_type::PING, 513));
        input.put_slice(&[0u8; 513]);
        assert!(matches!(
            framer.decode(&mut input, &mut out, |_, _| true),
            Some(RawEvent::Closed(_))
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn large_pong_refused_when_outbound_is_full() {
        let mut framer = RawFramer::new(4096, 4096);
        let mut out = BytesMut::new();
        let mut input = BytesMut::new();
        input.put_slice(&encode_frame_header(frame_type::PING, 1000));
        input.put_slice(&[0u8; 1000]);
        assert!(matches!(
            framer.decode(&mut input, &mut out, |len, _| len <= 125),
            Some(RawEvent::Closed(_))
        ));
    }
}
