//! The transport state machine of one connection, server side ([`ServerConn`]) and client side
//! ([`ClientConn`]), over WebSocket or RawSocket. It owns the connection's read buffer, its
//! handshake, its framing, and its bounded outbound byte buffer. The runtime only moves bytes.

use bytes::{Bytes, BytesMut};

use crate::serializer::Serializer;

/// Which transport a listener speaks.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TransportKind {
    WebSocket,
    RawSocket,
}

/// Limits and choices for one listener (server) or one connection (client).
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Largest WAMP message accepted, in bytes. WebSocket: a bigger message is closed with 1009.
    /// RawSocket: announced in the handshake, rounded down to a power of two in [2^9, 2^24].
    pub max_message_size: usize,
    /// Bound of the outbound buffer in bytes; [`SendError::Overflow`] past it.
    pub max_outbound_bytes: usize,
    /// Serializers offered/accepted, in preference order.
    pub serializers: Vec<Serializer>,
    /// WebSocket only: the request path served (server) or requested (client), e.g. "/ws".
    pub ws_path: String,
    /// WebSocket client only: the Host header.
    pub ws_host: String,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_message_size: 16 * 1024 * 1024,
            max_outbound_bytes: 16 * 1024 * 1024,
            serializers: vec![Serializer::Json, Serializer::MsgPack],
            ws_path: "/ws".to_string(),
            ws_host: "127.0.0.1".to_string(),
        }
    }
}

/// What a connection reports after bytes were fed to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnEvent {
    /// The transport handshake completed with this serializer; WAMP messages may flow.
    Opened { serializer: Serializer },
    /// One complete WAMP message (already unmasked/reassembled; UTF-8 checked for JSON).
    Message(Bytes),
    /// The transport is finished: the peer closed it, or a transport-level error happened (the
    /// reply the spec names — HTTP 400/426, RawSocket error handshake, WebSocket close code — has
    /// already been queued as output). Flush the output, then close the socket.
    Closed { reason: String },
}

/// Why a message could not be queued for sending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The outbound buffer would exceed `max_outbound_bytes`.
    Overflow,
    /// Larger than the peer's announced maximum (RawSocket) or our own configured maximum.
    TooLarge,
    /// The handshake has not completed, or the connection is closing.
    NotOpen,
}

/// Server side of one accepted connection.
pub struct ServerConn {
    _private: (),
}

impl ServerConn {
    pub fn new(kind: TransportKind, config: &TransportConfig) -> ServerConn {
        let _ = (kind, config);
        todo!("net helper")
    }

    /// Appends bytes read from the socket. Call [`ServerConn::poll_event`] until it returns
    /// `None` afterwards.
    pub fn receive(&mut self, data: &[u8]) {
        let _ = data;
        todo!("net helper")
    }

    /// The runtime may read straight into this buffer instead of calling `receive`.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        todo!("net helper")
    }

    /// The next event, or `None` when more bytes are needed.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        todo!("net helper")
    }

    /// Frames one WAMP message and appends it to the outbound buffer.
    pub fn send_message(&mut self, message: &[u8]) -> Result<(), SendError> {
        let _ = message;
        todo!("net helper")
    }

    /// Starts an orderly close: WebSocket close frame (1000 or the given code); RawSocket has no
    /// close frame. After the output is flushed, [`ServerConn::wants_close`] is true.
    pub fn close(&mut self, ws_code: u16, reason: &str) {
        let _ = (ws_code, reason);
        todo!("net helper")
    }

    /// Bytes waiting to be written to the socket.
    pub fn output(&self) -> &[u8] {
        todo!("net helper")
    }

    /// Marks `n` bytes of [`ServerConn::output`] as written.
    pub fn consume_output(&mut self, n: usize) {
        let _ = n;
        todo!("net helper")
    }

    /// True when the connection is finished and, once the output is flushed, the socket should be
    /// closed.
    pub fn wants_close(&self) -> bool {
        todo!("net helper")
    }

    /// The negotiated serializer, once open.
    pub fn serializer(&self) -> Option<Serializer> {
        todo!("net helper")
    }
}

/// Client side of one connection (load generator, test client).
pub struct ClientConn {
    _private: (),
}

impl ClientConn {
    /// Queues the opening handshake (HTTP upgrade offering `serializer`, or the RawSocket
    /// 4-byte handshake) as output.
    pub fn new(kind: TransportKind, serializer: Serializer, config: &TransportConfig) -> ClientConn {
        let _ = (kind, serializer, config);
        todo!("net helper")
    }

    pub fn receive(&mut self, data: &[u8]) {
        let _ = data;
        todo!("net helper")
    }

    pub fn read_buf(&mut self) -> &mut BytesMut {
        todo!("net helper")
    }

    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        todo!("net helper")
    }

    /// Frames (and, for WebSocket, masks) one WAMP message into the outbound buffer.
    pub fn send_message(&mut self, message: &[u8]) -> Result<(), SendError> {
        let _ = message;
        todo!("net helper")
    }

    pub fn close(&mut self, ws_code: u16, reason: &str) {
        let _ = (ws_code, reason);
        todo!("net helper")
    }

    pub fn output(&self) -> &[u8] {
        todo!("net helper")
    }

    pub fn consume_output(&mut self, n: usize) {
        let _ = n;
        todo!("net helper")
    }

    pub fn wants_close(&self) -> bool {
        todo!("net helper")
    }

    pub fn serializer(&self) -> Option<Serializer> {
        todo!("net helper")
    }
}
