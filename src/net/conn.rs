//! The transport state machine of one connection, server side ([`ServerConn`]) and client side
//! ([`ClientConn`]), over WebSocket or RawSocket. It owns the connection's read buffer, its
//! handshake, its framing, and its bounded outbound byte buffer. The runtime only moves bytes.

use std::ops::ControlFlow;

use bytes::{Buf, Bytes, BytesMut};

use crate::net::batched;
use crate::net::longpoll::{self, LpParse, LpRequest};
use crate::net::rawsocket::{self, HandshakeRefusal, RawEvent, RawFramer, RawInPlace};
use crate::net::websocket::{self, close_code, Role, UpgradeOutcome, WsEvent, WsFramer, WsInPlace};
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
    /// WebSocket: most frames one message may arrive in; a message in more is closed with 1009,
    /// as an oversized one is. Values below 1 act as 1 (no fragmented message).
    pub max_ws_fragments: usize,
    /// Bound of the outbound buffer in bytes; [`SendError::Overflow`] past it.
    pub max_outbound_bytes: usize,
    /// Serializers offered/accepted, in preference order.
    pub serializers: Vec<Serializer>,
    /// WebSocket only: the request path served (server) or requested (client), e.g. "/ws".
    pub ws_path: String,
    /// WebSocket client only: the Host header.
    pub ws_host: String,
}

/// Default of [`TransportConfig::max_ws_fragments`]. Browsers and most client libraries send a
/// message in one frame; the ones that fragment do so at their write buffer size, 4 KiB in a
/// gorilla/websocket (Go) client, so a 16 MiB message (the default `max_message_size`) from it
/// comes in exactly 4096 fragments. Memory stays bounded by `max_message_size` whatever the count; the count
/// bounds the per-frame work one message can cost, which many tiny frames (a 16 MiB message in
/// 1-byte frames is 16 million frame headers) would otherwise multiply.
pub const DEFAULT_MAX_WS_FRAGMENTS: usize = 4096;

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_message_size: 16 * 1024 * 1024,
            max_ws_fragments: DEFAULT_MAX_WS_FRAGMENTS,
            max_outbound_bytes: 16 * 1024 * 1024,
            serializers: Serializer::ALL.to_vec(),
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

/// What `poll_with` produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Polled<R> {
    /// One complete WAMP message was shown to the visitor; this is what it returned.
    Message(R),
    /// Any other event (`Opened`, `Closed`); never `ConnEvent::Message`.
    Event(ConnEvent),
}

/// Where the next message of an open connection is.
enum Found {
    /// `input[skip..skip + len]`, still in the read buffer.
    InPlace {
        skip: usize,
        len: usize,
    },
    /// Reassembled from fragments.
    Owned(Bytes),
    Closed(ConnEvent),
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

/// How far control frames we owe the peer (pongs, close replies) may push the outbound buffer
/// past `max_outbound_bytes` before we decide the peer does not read and fail the connection.
pub const CONTROL_SLACK_BYTES: usize = 64 * 1024;

enum Framer {
    Ws(WsFramer),
    Raw(RawFramer),
    /// The virtual connection of one HTTP long-poll transport: input and output hold WAMP
    /// messages each behind a 4-byte big-endian length (internal framing; the HTTP bodies are
    /// made from it by [`ServerConn::take_longpoll_body`]).
    LongPoll,
}

enum Phase {
    /// Server WebSocket: waiting for the upgrade request; `scanned` bytes hold no `\r\n\r\n`.
    ServerWsUpgrade {
        scanned: usize,
    },
    /// Server RawSocket: waiting for the 4-octet handshake.
    ServerRawHandshake,
    /// Server WebSocket listener: a long-poll request was handed out and is not answered yet.
    HttpAwaitingAnswer,
    /// Client WebSocket: request sent, waiting for the 101.
    ClientWsUpgrade {
        key: String,
    },
    /// Client RawSocket: handshake sent, waiting for the reply.
    ClientRawHandshake,
    Open(Framer),
    /// Finished; `report` is the reason not yet handed out as [`ConnEvent::Closed`].
    Finished {
        report: Option<String>,
    },
}

/// The state shared by both sides: buffers, phase, limits.
struct Core {
    kind: TransportKind,
    phase: Phase,
    input: BytesMut,
    output: BytesMut,
    config: TransportConfig,
    /// Client side: the serializer asked for.
    wanted: Option<Serializer>,
    serializer: Option<Serializer>,
    /// Batched subprotocol: every message in and out is in batch framing of this serializer
    /// (`batched.rs`).
    batched: Option<Serializer>,
    /// What is left of the last received batch, already checked; messages are sliced off it.
    batch: Bytes,
    /// The JSON batch separator the peer uses, answered with (see `batched.rs`).
    json_separator: u8,
    /// Long-poll virtual connection: `Some(batched)` (the batch framing's serializer when the
    /// protocol is a batched one). Kept past the close, so the last messages can be taken.
    longpoll: Option<Option<Serializer>>,
    /// Server WebSocket listener: an HTTP long-poll request under the WebSocket path, parsed
    /// and not yet taken by the runtime ([`ServerConn::take_http_request`]).
    http_request: Option<LpRequest>,
    messages_received: u64,
    messages_sent: u64,
}

impl Core {
    fn new(kind: TransportKind, phase: Phase, config: &TransportConfig) -> Core {
        Core {
            kind,
            phase,
            input: BytesMut::with_capacity(4096),
            output: BytesMut::with_capacity(4096),
            config: config.clone(),
            wanted: None,
            serializer: None,
            batched: None,
            batch: Bytes::new(),
            json_separator: batched::JSON_SEPARATOR,
            longpoll: None,
            http_request: None,
            messages_received: 0,
            messages_sent: 0,
        }
    }

    fn finish(&mut self, reason: String) -> Option<ConnEvent> {
        self.phase = Phase::Finished { report: None };
        Some(ConnEvent::Closed { reason })
    }

    fn open(&mut self, serializer: Serializer, framer: Framer) -> Option<ConnEvent> {
        self.serializer = Some(serializer);
        self.phase = Phase::Open(framer);
        Some(ConnEvent::Opened { serializer })
    }

    fn control_overflow(&self) -> bool {
        self.output.len()
            > self
                .config
                .max_outbound_bytes
                .saturating_add(CONTROL_SLACK_BYTES)
    }

    fn poll_event(&mut self) -> Option<ConnEvent> {
        match &mut self.phase {
            Phase::Finished { report } => report.take().map(|reason| ConnEvent::Closed { reason }),
            Phase::Open(_) => self.poll_open(),
            Phase::ServerWsUpgrade { .. } => self.poll_server_ws_upgrade(),
            Phase::ServerRawHandshake => self.poll_server_raw_handshake(),
            Phase::HttpAwaitingAnswer => self.poll_http_awaiting_answer(),
            Phase::ClientWsUpgrade { .. } => self.poll_client_ws_upgrade(),
            Phase::ClientRawHandshake => self.poll_client_raw_handshake(),
        }
    }

    fn poll_open(&mut self) -> Option<ConnEvent> {
        match self.next_open_message()? {
            Found::InPlace { skip, len } => {
                self.input.advance(skip);
                Some(ConnEvent::Message(self.input.split_to(len).freeze()))
            }
            Found::Owned(message) => Some(ConnEvent::Message(message)),
            Found::Closed(event) => Some(event),
        }
    }

    fn poll_with<R>(&mut self, visit: impl FnOnce(&[u8]) -> R) -> Option<Polled<R>> {
        if !matches!(self.phase, Phase::Open(_)) {
            return self.poll_event().map(|event| match event {
                ConnEvent::Message(message) => Polled::Message(visit(&message)),
                other => Polled::Event(other),
            });
        }
        match self.next_open_message()? {
            Found::InPlace { skip, len } => {
                let answer = visit(&self.input[skip..skip + len]);
                self.input.advance(skip + len);
                Some(Polled::Message(answer))
            }
            Found::Owned(message) => Some(Polled::Message(visit(&message))),
            Found::Closed(event) => Some(Polled::Event(event)),
        }
    }

    fn poll_each(&mut self, mut visit: impl FnMut(&[u8]) -> ControlFlow<()>) -> Option<ConnEvent> {
        loop {
            // A run of small single-frame WebSocket messages is walked without consuming each
            // one from the buffer: one `advance` for the whole run.
            let mut run = 0;
            let mut stop = false;
            if let (Phase::Open(Framer::Ws(ws)), None) = (&self.phase, self.batched) {
                while let Some(WsInPlace::Message { skip, len }) =
                    ws.small_server_message(&self.input[run..])
                {
                    let message = &self.input[run + skip..run + skip + len];
                    run += skip + len;
                    self.messages_received += 1;
                    if visit(message).is_break() {
                        stop = true;
                        break;
                    }
                }
            }
            self.input.advance(run);
            if stop {
                return None;
            }
            let flow = match self.poll_with(&mut visit)? {
                Polled::Message(flow) => flow,
                Polled::Event(event) => return Some(event),
            };
            if flow.is_break() {
                return None;
            }
        }
    }

    /// The next complete message of an open connection, left in the input when it came in one
    /// frame.
    fn next_open_message(&mut self) -> Option<Found> {
        if self.control_overflow() {
            return self
                .finish(
                    "peer does not read: owed control frames exceed the outbound bound".to_string(),
                )
                .map(Found::Closed);
        }
        if let Some(serializer) = self.batched {
            return self.next_batched_message(serializer);
        }
        self.next_framed_message()
    }

    /// Batched subprotocol: the next message of the current batch, or of the next WebSocket
    /// message once it is used up. A new batch is checked whole before any of it is handed out
    /// (a bad batch is refused as a whole: 1007, or 1009 for a message over the size bound).
    fn next_batched_message(&mut self, serializer: Serializer) -> Option<Found> {
        if let Some(message) = batched::take_next(serializer, self.json_separator, &mut self.batch)
        {
            self.messages_received += 1;
            return Some(Found::Owned(message));
        }
        let batch = match self.next_framed_message()? {
            Found::InPlace { skip, len } => {
                self.input.advance(skip);
                self.input.split_to(len).freeze()
            }
            Found::Owned(batch) => batch,
            closed @ Found::Closed(_) => return Some(closed),
        };
        // next_framed_message counted the WebSocket message; the batch's messages count.
        self.messages_received -= 1;
        if serializer == Serializer::Json {
            if let Some(separator) = batched::json_separator_of(&batch) {
                self.json_separator = separator;
            }
        }
        if let Err(error) = batched::check(
            serializer,
            self.json_separator,
            &batch,
            self.config.max_message_size,
        ) {
            let code = match error {
                batched::BatchError::TooLarge => close_code::MESSAGE_TOO_BIG,
                _ => close_code::INVALID_PAYLOAD,
            };
            if let Phase::Open(Framer::Ws(ws)) = &mut self.phase {
                ws.close(code, error.reason(), &mut self.output);
            }
            return self
                .finish(format!("bad batch: {}", error.reason()))
                .map(Found::Closed);
        }
        self.batch = batch;
        let message = batched::take_next(serializer, self.json_separator, &mut self.batch)?;
        self.messages_received += 1;
        Some(Found::Owned(message))
    }

    /// The next complete transport message (for a batched subprotocol, a whole batch).
    fn next_framed_message(&mut self) -> Option<Found> {
        let max_outbound = self.config.max_outbound_bytes;
        let Phase::Open(framer) = &mut self.phase else {
            return None;
        };
        let found = match framer {
            Framer::LongPoll => {
                let prefix = self.input.get(..4)?;
                let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                Found::InPlace {
                    skip: 4,
                    len: len as usize,
                }
            }
            Framer::Ws(ws) => match ws.decode_in_place(&mut self.input, &mut self.output)? {
                WsInPlace::Message { skip, len } => Found::InPlace { skip, len },
                WsInPlace::Event(WsEvent::Message(message)) => Found::Owned(message),
                WsInPlace::Event(WsEvent::Closed(reason)) => {
                    return self.finish(reason).map(Found::Closed)
                }
            },
            Framer::Raw(raw) => {
                let pong_allowed = |len: usize, out: &BytesMut| {
                    len <= websocket::MAX_CONTROL_PAYLOAD
                        || out.len() + rawsocket::HEADER_LEN + len <= max_outbound
                };
                match raw.decode_in_place(&mut self.input, &mut self.output, pong_allowed)? {
                    RawInPlace::Message { len } => Found::InPlace {
                        skip: rawsocket::HEADER_LEN,
                        len,
                    },
                    RawInPlace::Event(RawEvent::Message(message)) => Found::Owned(message),
                    RawInPlace::Event(RawEvent::Closed(reason)) => {
                        return self.finish(reason).map(Found::Closed)
                    }
                }
            }
        };
        self.messages_received += 1;
        Some(found)
    }

    fn poll_server_ws_upgrade(&mut self) -> Option<ConnEvent> {
        let Phase::ServerWsUpgrade { scanned } = &mut self.phase else {
            return None;
        };
        // Empty lines before the request line are dropped: the `\r\n\r\n` they may form is not
        // the end of the headers (httparse would answer Partial, and a request split after them
        // would then not be parsed again before the next terminator or the size limit).
        let lead = websocket::leading_empty_lines(&self.input);
        if lead > 0 {
            self.input.advance(lead);
            *scanned = scanned.saturating_sub(lead);
        }
        // Re-parse only once the header terminator arrived (or the size limit is hit), so a
        // request fed byte by byte costs linear time.
        if websocket::find_headers_end(&self.input, *scanned).is_none()
            && self.input.len() <= websocket::MAX_HANDSHAKE_LEN
        {
            *scanned = self.input.len();
            return None;
        }
        match longpoll::read_request(&self.input, &self.config) {
            LpParse::NotLongPoll => {}
            LpParse::Partial => return None,
            LpParse::Request {
                action,
                origin,
                keep_alive,
                head_len,
                len,
            } => {
                let raw = self.input.split_to(len).freeze();
                let body = raw.slice(head_len..);
                self.phase = Phase::HttpAwaitingAnswer;
                self.http_request = Some(LpRequest {
                    action,
                    origin,
                    keep_alive,
                    body,
                    raw,
                });
                return None;
            }
            LpParse::Reply {
                status,
                response,
                keep_alive,
            } => {
                self.output.extend_from_slice(&response);
                if keep_alive {
                    // Only an OPTIONS preflight is answered and kept: it has no body.
                    let consumed =
                        websocket::find_headers_end(&self.input, 0).unwrap_or(self.input.len());
                    self.input.advance(consumed);
                    if let Phase::ServerWsUpgrade { scanned } = &mut self.phase {
                        *scanned = 0;
                    }
                    return self.poll_server_ws_upgrade();
                }
                self.input.clear();
                return self.finish(format!("long-poll request answered with {status}"));
            }
        }
        match websocket::parse_upgrade_request(&self.input, &self.config) {
            UpgradeOutcome::Partial => {
                if let Phase::ServerWsUpgrade { scanned } = &mut self.phase {
                    *scanned = self.input.len();
                }
                None
            }
            UpgradeOutcome::Accept {
                serializer,
                batched,
                consumed,
                response,
            } => {
                self.input.advance(consumed);
                self.output.extend_from_slice(&response);
                self.batched = batched.then_some(serializer);
                let framer = WsFramer::new(Role::Server, serializer, &self.config);
                self.open(serializer, Framer::Ws(framer))
            }
            UpgradeOutcome::Reject {
                status,
                reason,
                response,
            } => {
                self.input.clear();
                self.output.extend_from_slice(&response);
                self.finish(format!("websocket upgrade refused with {status}: {reason}"))
            }
        }
    }

    /// While a long-poll request waits for its answer the socket is still read (to see the
    /// client leave); what a client sends meanwhile (HTTP clients do not pipeline after a
    /// POST, but nothing stops one) is bounded by one more request.
    fn poll_http_awaiting_answer(&mut self) -> Option<ConnEvent> {
        let bound = websocket::MAX_HANDSHAKE_LEN + self.config.max_message_size;
        if self.input.len() <= bound {
            return None;
        }
        self.input.clear();
        self.http_request = None;
        self.finish("HTTP client sent too much while its request was pending".to_string())
    }

    fn poll_server_raw_handshake(&mut self) -> Option<ConnEvent> {
        if let Some(&first) = self.input.first() {
            if first != rawsocket::MAGIC {
                self.input.clear();
                return self.finish(format!("not a rawsocket client: first octet {first:#04x}"));
            }
        }
        let request = match self.input.get(..4) {
            Some(h) => [h[0], h[1], h[2], h[3]],
            None => return None,
        };
        match rawsocket::parse_client_handshake(request, &self.config) {
            Ok(accepted) => {
                self.input.advance(4);
                let nibble = rawsocket::length_nibble(self.config.max_message_size);
                let reply = rawsocket::encode_handshake(accepted.serializer, nibble);
                self.output.extend_from_slice(&reply);
                let framer =
                    RawFramer::new(rawsocket::nibble_to_max_len(nibble), accepted.peer_max_len);
                self.open(accepted.serializer, Framer::Raw(framer))
            }
            Err(HandshakeRefusal::NotRawSocket) => {
                self.input.clear();
                self.finish("not a rawsocket client".to_string())
            }
            Err(HandshakeRefusal::Error(code)) => {
                self.input.clear();
                self.output
                    .extend_from_slice(&rawsocket::encode_handshake_error(code));
                self.finish(format!(
                    "rawsocket handshake refused with error {code}: {}",
                    rawsocket::handshake_error_text(code)
                ))
            }
        }
    }

    fn poll_client_ws_upgrade(&mut self) -> Option<ConnEvent> {
        let Phase::ClientWsUpgrade { key } = &self.phase else {
            return None;
        };
        let wanted = self.wanted?;
        match websocket::parse_upgrade_response(&self.input, key, wanted) {
            Ok(None) => None,
            Ok(Some(consumed)) => {
                self.input.advance(consumed);
                let framer = WsFramer::new(Role::Client, wanted, &self.config);
                self.open(wanted, Framer::Ws(framer))
            }
            Err(reason) => {
                self.input.clear();
                self.finish(reason)
            }
        }
    }

    fn poll_client_raw_handshake(&mut self) -> Option<ConnEvent> {
        let wanted = self.wanted?;
        let reply = match self.input.get(..4) {
            Some(h) => [h[0], h[1], h[2], h[3]],
            None => return None,
        };
        match rawsocket::parse_server_handshake(reply, wanted) {
            Ok(peer_max_len) => {
                self.input.advance(4);
                let nibble = rawsocket::length_nibble(self.config.max_message_size);
                let framer = RawFramer::new(rawsocket::nibble_to_max_len(nibble), peer_max_len);
                self.open(wanted, Framer::Raw(framer))
            }
            Err(reason) => {
                self.input.clear();
                self.finish(reason)
            }
        }
    }

    /// Largest message we may send now, and whether sending is allowed at all.
    fn send_limit(&self) -> Result<usize, SendError> {
        match &self.phase {
            Phase::Open(Framer::Ws(ws)) if ws.is_open() => Ok(self
                .config
                .max_message_size
                .saturating_sub(self.batched.map_or(0, batched::overhead))),
            Phase::Open(Framer::Raw(raw)) => {
                Ok(raw.peer_max_len().min(self.config.max_message_size))
            }
            Phase::Open(Framer::LongPoll) => Ok(self.config.max_message_size),
            _ => Err(SendError::NotOpen),
        }
    }

    /// Bytes a message of `len` bytes takes once framed.
    fn framed_len(&self, len: usize) -> usize {
        match &self.phase {
            Phase::Open(Framer::Ws(ws)) => {
                ws.framed_len(len + self.batched.map_or(0, batched::overhead))
            }
            _ => rawsocket::HEADER_LEN + len,
        }
    }

    #[inline]
    fn send_parts(&mut self, parts: &[&[u8]]) -> Result<(), SendError> {
        self.send_parts_within(parts, self.config.max_outbound_bytes)
    }

    #[inline]
    fn send_parts_within(&mut self, parts: &[&[u8]], bound: usize) -> Result<(), SendError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let limit = self.send_limit()?;
        if len > limit {
            return Err(SendError::TooLarge);
        }
        if self.output.len() + self.framed_len(len) > bound {
            return Err(SendError::Overflow);
        }
        match &mut self.phase {
            Phase::Open(Framer::Ws(ws)) => match self.batched {
                // A batch of one per WebSocket message: spec-compliant, and the turn's one
                // write still carries every queued message.
                Some(serializer) => {
                    ws.encode_batched(serializer, self.json_separator, parts, &mut self.output)
                }
                None => ws.encode_message(parts, &mut self.output),
            },
            Phase::Open(Framer::Raw(raw)) => raw.encode_message(parts, &mut self.output),
            Phase::Open(Framer::LongPoll) => {
                self.output.extend_from_slice(&(len as u32).to_be_bytes());
                for part in parts {
                    self.output.extend_from_slice(part);
                }
            }
            _ => return Err(SendError::NotOpen),
        }
        self.messages_sent += 1;
        Ok(())
    }

    fn close(&mut self, ws_code: u16, reason: &str) {
        let code = if websocket::is_valid_close_code(ws_code) {
            ws_code
        } else {
            close_code::NORMAL
        };
        match &mut self.phase {
            Phase::Open(Framer::Ws(ws)) => {
                ws.close(code, reason, &mut self.output);
            }
            Phase::Finished { .. } => {}
            _ => {
                self.phase = Phase::Finished {
                    report: Some(format!("closed locally: {reason}")),
                };
            }
        }
    }

    fn consume_output(&mut self, n: usize) {
        let n = n.min(self.output.len());
        self.output.advance(n);
    }

    fn wants_close(&self) -> bool {
        matches!(self.phase, Phase::Finished { .. })
    }

    fn is_open(&self) -> bool {
        match &self.phase {
            Phase::Open(Framer::Ws(ws)) => ws.is_open(),
            Phase::Open(Framer::Raw(_)) | Phase::Open(Framer::LongPoll) => true,
            _ => false,
        }
    }

    fn peer_max_message_size(&self) -> Option<usize> {
        match &self.phase {
            Phase::Open(Framer::Raw(raw)) => Some(raw.peer_max_len()),
            _ => None,
        }
    }
}

/// Server side of one accepted connection.
pub struct ServerConn {
    core: Core,
}

/// Client side of one connection (load generator, test client).
pub struct ClientConn {
    core: Core,
}

/// Methods both sides share, written once.
macro_rules! common_conn_methods {
    () => {
        /// Appends bytes read from the socket. Call `poll_event` until it returns `None`
        /// afterwards.
        pub fn receive(&mut self, data: &[u8]) {
            if !self.core.wants_close() {
                self.core.input.extend_from_slice(data);
            }
        }

        /// The next event, or `None` when more bytes are needed. After `Closed`, always `None`.
        pub fn poll_event(&mut self) -> Option<ConnEvent> {
            self.core.poll_event()
        }

        /// As `poll_event`, but a message is shown to `visit` where it lies in the read buffer
        /// (no `Bytes` per message) and `visit`'s answer is returned. For receivers of many
        /// small messages that only need to look at them.
        pub fn poll_with<R>(&mut self, visit: impl FnOnce(&[u8]) -> R) -> Option<Polled<R>> {
            self.core.poll_with(visit)
        }

        /// Shows every complete message to `visit`, in order, where it lies in the read buffer,
        /// until `visit` breaks or more bytes are needed (`None` either way); a non-message event
        /// (`Closed`) ends the walk and is returned. The cheapest way to take in a burst of small
        /// messages.
        pub fn poll_each(
            &mut self,
            visit: impl FnMut(&[u8]) -> std::ops::ControlFlow<()>,
        ) -> Option<ConnEvent> {
            self.core.poll_each(visit)
        }

        /// Frames one WAMP message and appends it to the outbound buffer with one copy.
        pub fn send_message(&mut self, message: &[u8]) -> Result<(), SendError> {
            self.core.send_parts(&[message])
        }

        /// Frames one WAMP message given as consecutive pieces (e.g. a rebuilt header and a
        /// forwarded payload span), copying each piece once into the outbound buffer.
        pub fn send_message_parts(&mut self, parts: &[&[u8]]) -> Result<(), SendError> {
            self.core.send_parts(parts)
        }

        /// Frames a last message even when the outbound buffer is at its bound, using the
        /// control-frame slack (so at most `max_outbound_bytes + CONTROL_SLACK_BYTES` are ever
        /// buffered): the ABORT that tells a slow consumer why it is disconnected. Call
        /// `close` right after; nothing else can follow it.
        pub fn send_final_message(&mut self, message: &[u8]) -> Result<(), SendError> {
            let bound = self
                .core
                .config
                .max_outbound_bytes
                .saturating_add(CONTROL_SLACK_BYTES / 2);
            self.core.send_parts_within(&[message], bound)
        }

        /// Starts an orderly close. WebSocket: sends a close frame with `ws_code` (1000 when the
        /// code may not be sent) and waits for the peer's reply; `wants_close` turns true when it
        /// arrives (the runtime enforces a timeout). RawSocket, or before the handshake
        /// finished: finished at once; `poll_event` reports `Closed`.
        pub fn close(&mut self, ws_code: u16, reason: &str) {
            self.core.close(ws_code, reason)
        }

        /// Bytes waiting to be written to the socket.
        pub fn output(&self) -> &[u8] {
            &self.core.output
        }

        /// Marks `n` bytes of `output` as written.
        pub fn consume_output(&mut self, n: usize) {
            self.core.consume_output(n)
        }

        /// Bytes buffered and not yet written; `send_message` keeps it within
        /// `max_outbound_bytes`.
        pub fn outbound_len(&self) -> usize {
            self.core.output.len()
        }

        /// True when the connection is finished and, once the output is flushed, the socket
        /// should be closed.
        pub fn wants_close(&self) -> bool {
            self.core.wants_close()
        }

        /// True when WAMP messages may be sent (handshake done, no close started).
        pub fn is_open(&self) -> bool {
            self.core.is_open()
        }

        /// The negotiated serializer, once open.
        pub fn serializer(&self) -> Option<Serializer> {
            self.core.serializer
        }

        /// The subprotocol is a batched one (`wamp.2.json.batched`, ...).
        pub fn is_batched(&self) -> bool {
            self.core.batched.is_some()
        }

        /// Which transport this connection speaks.
        pub fn kind(&self) -> TransportKind {
            self.core.kind
        }

        /// RawSocket: the largest message the peer announced it accepts.
        pub fn peer_max_message_size(&self) -> Option<usize> {
            self.core.peer_max_message_size()
        }

        /// Bytes a message of `len` bytes occupies in the outbound buffer once framed.
        pub fn framed_len(&self, len: usize) -> usize {
            self.core.framed_len(len)
        }

        /// WAMP messages handed out by `poll_event` so far.
        pub fn messages_received(&self) -> u64 {
            self.core.messages_received
        }

        /// WAMP messages queued by `send_message` so far.
        pub fn messages_sent(&self) -> u64 {
            self.core.messages_sent
        }
    };
}

impl ServerConn {
    pub fn new(kind: TransportKind, config: &TransportConfig) -> ServerConn {
        let phase = match kind {
            TransportKind::WebSocket => Phase::ServerWsUpgrade { scanned: 0 },
            TransportKind::RawSocket => Phase::ServerRawHandshake,
        };
        ServerConn {
            core: Core::new(kind, phase, config),
        }
    }

    /// Refuses a connection the runtime cannot take (connection limit): RawSocket error 4,
    /// WebSocket HTTP 503. Only before the handshake completed; afterwards use `close`.
    pub fn refuse_overloaded(&mut self) {
        match self.core.phase {
            Phase::ServerRawHandshake => {
                self.core
                    .output
                    .extend_from_slice(&rawsocket::encode_handshake_error(
                        rawsocket::handshake_error::MAX_CONNECTION_COUNT,
                    ));
            }
            Phase::ServerWsUpgrade { .. } => {
                self.core
                    .output
                    .extend_from_slice(&websocket::http_error_response(
                        503,
                        "router at its connection limit",
                        "",
                    ));
            }
            _ => return,
        }
        self.core.input.clear();
        self.core.phase = Phase::Finished {
            report: Some("refused: connection limit".to_string()),
        };
    }

    /// The virtual connection of a new HTTP long-poll transport with `serializer` (`batched`:
    /// its bodies use the batch framing), open at once; the runtime opens its session.
    pub fn new_longpoll(
        serializer: Serializer,
        batched: bool,
        config: &TransportConfig,
    ) -> ServerConn {
        let mut core = Core::new(
            TransportKind::WebSocket,
            Phase::Open(Framer::LongPoll),
            config,
        );
        core.serializer = Some(serializer);
        core.longpoll = Some(batched.then_some(serializer));
        ServerConn { core }
    }

    /// Long-poll: takes in the body of a `send` request (one message, or a batch for a batched
    /// protocol). A bad body (empty, malformed batch, a message over `max_message_size`) is
    /// refused whole with the reason; the transport should then be failed.
    pub fn receive_longpoll_body(&mut self, body: &[u8]) -> Result<(), &'static str> {
        let core = &mut self.core;
        let Some(batching) = core.longpoll else {
            return Err("not a long-poll transport");
        };
        if core.wants_close() {
            return Err("the transport is closed");
        }
        let max = core.config.max_message_size;
        let push = |message: &[u8], input: &mut BytesMut| {
            input.extend_from_slice(&(message.len() as u32).to_be_bytes());
            input.extend_from_slice(message);
        };
        match batching {
            None if body.is_empty() => Err("empty message"),
            None if body.len() > max => Err("message larger than max_message_size"),
            None => {
                push(body, &mut core.input);
                Ok(())
            }
            Some(serializer) => {
                if serializer == Serializer::Json {
                    if let Some(separator) = batched::json_separator_of(body) {
                        core.json_separator = separator;
                    }
                }
                batched::check(serializer, core.json_separator, body, max)
                    .map_err(batched::BatchError::reason)?;
                let mut rest = Bytes::copy_from_slice(body);
                while let Some(message) =
                    batched::take_next(serializer, core.json_separator, &mut rest)
                {
                    push(&message, &mut core.input);
                }
                Ok(())
            }
        }
    }

    /// Long-poll: the body of the next `receive` answer, taken out of the outbound queue:
    /// one message, or (batched protocol) every queued message as one batch; `None` when
    /// nothing is queued.
    pub fn take_longpoll_body(&mut self) -> Option<Vec<u8>> {
        let core = &mut self.core;
        let batching = core.longpoll?;
        if core.output.len() < 4 {
            return None;
        }
        let next_len = |out: &[u8]| u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        match batching {
            None => {
                let len = next_len(&core.output);
                core.output.advance(4);
                Some(core.output.split_to(len).to_vec())
            }
            // The internal framing is the batch framing of the binary serializers.
            Some(serializer) if serializer != Serializer::Json => {
                let all = core.output.len();
                Some(core.output.split_to(all).to_vec())
            }
            Some(_) => {
                let mut body = Vec::with_capacity(core.output.len());
                while core.output.len() >= 4 {
                    let len = next_len(&core.output);
                    core.output.advance(4);
                    body.extend_from_slice(&core.output[..len]);
                    body.push(core.json_separator);
                    core.output.advance(len);
                }
                Some(body)
            }
        }
    }

    /// An HTTP long-poll request (`longpoll.rs`) that arrived under the WebSocket path, once
    /// `poll_event` returned `None`: nothing more is read until the runtime answers it with
    /// [`ServerConn::respond_http`]. (Not an event: clients and the WebSocket-only paths
    /// never see one.)
    pub fn take_http_request(&mut self) -> Option<LpRequest> {
        self.core.http_request.take()
    }

    /// Answers the long-poll request handed out by `take_http_request`: queues `response`
    /// and, with `keep_alive`, reads the next request; otherwise the connection finishes once
    /// the answer is written.
    pub fn respond_http(&mut self, response: &[u8], keep_alive: bool) {
        let core = &mut self.core;
        if !matches!(core.phase, Phase::HttpAwaitingAnswer) {
            return;
        }
        core.output.extend_from_slice(response);
        core.phase = if keep_alive {
            Phase::ServerWsUpgrade { scanned: 0 }
        } else {
            Phase::Finished {
                report: Some("long-poll request answered".to_string()),
            }
        };
    }

    /// True while a long-poll request was handed out and not answered yet.
    pub fn awaits_http_answer(&self) -> bool {
        matches!(self.core.phase, Phase::HttpAwaitingAnswer)
    }

    /// The bytes received and not parsed yet (what follows a request handed to another shard).
    pub fn unparsed_input(&self) -> &[u8] {
        &self.core.input
    }

    common_conn_methods!();
}

impl ClientConn {
    /// Queues the opening handshake (HTTP upgrade offering `serializer`, or the RawSocket
    /// 4-byte handshake) as output.
    pub fn new(
        kind: TransportKind,
        serializer: Serializer,
        config: &TransportConfig,
    ) -> ClientConn {
        let mut core = Core::new(kind, Phase::ClientRawHandshake, config);
        core.wanted = Some(serializer);
        match kind {
            TransportKind::WebSocket => {
                let key = websocket::random_client_key(&mut rand::thread_rng());
                let request = websocket::build_upgrade_request(
                    &config.ws_host,
                    &config.ws_path,
                    serializer,
                    &key,
                );
                core.output.extend_from_slice(&request);
                core.phase = Phase::ClientWsUpgrade { key };
            }
            TransportKind::RawSocket => {
                let nibble = rawsocket::length_nibble(config.max_message_size);
                core.output
                    .extend_from_slice(&rawsocket::encode_handshake(serializer, nibble));
            }
        }
        ClientConn { core }
    }

    common_conn_methods!();
}

/// A client and a server connection of `kind` joined in memory, the transport handshake done
/// (the client asked for `serializer`) and both output buffers empty; `None` when the handshake
/// did not open both sides (it does whenever `config` accepts `serializer`). For tests and
/// benchmarks that drive framing without sockets.
pub fn open_in_memory(
    kind: TransportKind,
    serializer: Serializer,
    config: &TransportConfig,
) -> Option<(ClientConn, ServerConn)> {
    let mut client = ClientConn::new(kind, serializer, config);
    let mut server = ServerConn::new(kind, config);
    server.receive(client.output());
    let n = client.output().len();
    client.consume_output(n);
    if !matches!(server.poll_event(), Some(ConnEvent::Opened { .. })) {
        return None;
    }
    client.receive(server.output());
    let n = server.output().len();
    server.consume_output(n);
    if !matches!(client.poll_event(), Some(ConnEvent::Opened { .. })) {
        return None;
    }
    Some((client, server))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::websocket::{apply_mask, decode_frame_header, opcode, write_frame};

    fn open_ws_server(config: &TransportConfig) -> ServerConn {
        let mut client = ClientConn::new(TransportKind::WebSocket, Serializer::Json, config);
        let mut server = ServerConn::new(TransportKind::WebSocket, config);
        server.receive(client.output());
        let n = client.output().len();
        client.consume_output(n);
        assert!(matches!(
            server.poll_event(),
            Some(ConnEvent::Opened { .. })
        ));
        let n = server.output().len();
        server.consume_output(n);
        server
    }

    #[test]
    fn peer_that_never_reads_its_pongs_is_dropped() {
        let config = TransportConfig {
            max_outbound_bytes: 1000,
            ..TransportConfig::default()
        };
        let mut server = open_ws_server(&config);
        let mut pings = BytesMut::new();
        for _ in 0..1000 {
            write_frame(&mut pings, opcode::PING, &[&[0u8; 125]], Some([1, 2, 3, 4]));
        }
        let mut closed = false;
        for chunk in pings.chunks(16 * 1024) {
            server.receive(chunk);
            while let Some(ev) = server.poll_event() {
                closed |= matches!(ev, ConnEvent::Closed { .. });
            }
        }
        assert!(closed);
        assert!(server.wants_close());
        assert!(server.outbound_len() <= 1000 + CONTROL_SLACK_BYTES + 16 * 1024);
    }

    /// Found by the websocket_server fuzz target: empty lines before the request line formed a
    /// `\r\n\r\n` that was taken for the end of the headers, so the answer to what followed
    /// depended on where the stream was split.
    #[test]
    fn empty_lines_before_the_request_line_do_not_end_the_headers() {
        let config = TransportConfig::default();
        let request = websocket::build_upgrade_request(
            "h",
            "/ws",
            Serializer::Json,
            "dGhlIHNhbXBsZSBub25jZQ==",
        );
        for tail in [&b"\x01 not http"[..], &request[..]] {
            let stream = [&b"\r\n\r\n\n"[..], tail].concat();
            let outcomes: Vec<Vec<ConnEvent>> = (0..=stream.len())
                .map(|split| {
                    let mut server = ServerConn::new(TransportKind::WebSocket, &config);
                    let mut events = Vec::new();
                    for chunk in [&stream[..split], &stream[split..]] {
                        server.receive(chunk);
                        events.extend(std::iter::from_fn(|| server.poll_event()));
                    }
                    events
                })
                .collect();
            assert!(outcomes.windows(2).all(|w| w[0] == w[1]), "{outcomes:?}");
            let opened = matches!(outcomes[0][..], [ConnEvent::Opened { .. }]);
            assert_eq!(opened, tail == &request[..], "{:?}", outcomes[0]);
        }
    }

    #[test]
    fn close_before_handshake_finishes_at_once() {
        let mut server = ServerConn::new(TransportKind::WebSocket, &TransportConfig::default());
        server.close(1000, "shutdown");
        assert!(server.wants_close());
        assert!(matches!(
            server.poll_event(),
            Some(ConnEvent::Closed { .. })
        ));
        assert_eq!(server.poll_event(), None);
    }

    #[test]
    fn close_with_unsendable_code_uses_1000() {
        let mut server = open_ws_server(&TransportConfig::default());
        server.close(1005, "");
        let h = decode_frame_header(server.output()).unwrap().unwrap();
        assert_eq!(h.opcode, opcode::CLOSE);
        assert_eq!(&server.output()[h.header_len..], &1000u16.to_be_bytes());
    }

    #[test]
    fn consume_output_clamps() {
        let mut client = ClientConn::new(
            TransportKind::RawSocket,
            Serializer::Json,
            &TransportConfig::default(),
        );
        client.consume_output(100);
        assert!(client.output().is_empty());
    }

    #[test]
    fn client_masks_with_a_fresh_key_per_frame() {
        let config = TransportConfig::default();
        let mut client = ClientConn::new(TransportKind::WebSocket, Serializer::Json, &config);
        let mut server = ServerConn::new(TransportKind::WebSocket, &config);
        server.receive(client.output());
        let n = client.output().len();
        client.consume_output(n);
        server.poll_event();
        client.receive(server.output());
        assert!(matches!(
            client.poll_event(),
            Some(ConnEvent::Opened { .. })
        ));
        client.send_message(b"[1]").unwrap();
        client.send_message(b"[1]").unwrap();
        let first = decode_frame_header(client.output()).unwrap().unwrap();
        let second_start = first.header_len + 3;
        let second = decode_frame_header(&client.output()[second_start..])
            .unwrap()
            .unwrap();
        assert_ne!(first.mask, second.mask);
        let mut payload = client.output()[first.header_len..second_start].to_vec();
        apply_mask(&mut payload, first.mask.unwrap());
        assert_eq!(payload, b"[1]");
    }
    fn open_pair(kind: TransportKind, serializer: Serializer) -> (ClientConn, ServerConn) {
        open_in_memory(kind, serializer, &TransportConfig::default()).expect("handshake")
    }

    fn drain_with(client: &mut ClientConn) -> (Vec<Vec<u8>>, Vec<ConnEvent>) {
        let mut messages = Vec::new();
        let mut events = Vec::new();
        while let Some(polled) = client.poll_with(|m| m.to_vec()) {
            match polled {
                Polled::Message(m) => messages.push(m),
                Polled::Event(e) => events.push(e),
            }
        }
        (messages, events)
    }

    #[test]
    fn poll_with_sees_the_messages_poll_event_sees_fed_in_any_split() {
        let messages: [&[u8]; 4] = [b"[1]", b"", &[b'x'; 300], &[b'y'; 70_000]];
        for kind in [TransportKind::WebSocket, TransportKind::RawSocket] {
            let (mut client, mut server) = open_pair(kind, Serializer::MsgPack);
            for m in messages {
                server.send_message(m).unwrap();
            }
            let wire = server.output().to_vec();
            for chunk_size in [1, 7, 4096, wire.len()] {
                let (mut client, _) = open_pair(kind, Serializer::MsgPack);
                let mut seen = Vec::new();
                for chunk in wire.chunks(chunk_size) {
                    client.receive(chunk);
                    let (got, events) = drain_with(&mut client);
                    assert!(events.is_empty(), "{kind:?}: {events:?}");
                    seen.extend(got);
                }
                assert_eq!(
                    seen,
                    messages.map(<[u8]>::to_vec),
                    "{kind:?} by {chunk_size}"
                );
                assert_eq!(client.messages_received(), messages.len() as u64);
            }
            client.receive(&wire);
            let mut by_event = Vec::new();
            while let Some(ConnEvent::Message(m)) = client.poll_event() {
                by_event.push(m.to_vec());
            }
            assert_eq!(by_event, messages.map(<[u8]>::to_vec), "{kind:?}");
        }
    }

    #[test]
    fn poll_each_walks_bursts_stops_when_asked_and_reports_the_end() {
        let messages: [&[u8]; 5] = [b"[1]", &[b'a'; 125], &[b'b'; 126], b"", &[b'c'; 70_000]];
        for kind in [TransportKind::WebSocket, TransportKind::RawSocket] {
            let (_, mut server) = open_pair(kind, Serializer::MsgPack);
            for m in messages {
                server.send_message(m).unwrap();
            }
            let wire = server.output().to_vec();
            for chunk_size in [1, 5, 130, wire.len()] {
                let (mut client, _) = open_pair(kind, Serializer::MsgPack);
                let mut seen = Vec::new();
                for chunk in wire.chunks(chunk_size) {
                    client.receive(chunk);
                    let end = client.poll_each(|m| {
                        seen.push(m.to_vec());
                        ControlFlow::Continue(())
                    });
                    assert_eq!(end, None);
                }
                assert_eq!(
                    seen,
                    messages.map(<[u8]>::to_vec),
                    "{kind:?} by {chunk_size}"
                );
                assert_eq!(client.messages_received(), messages.len() as u64);
            }
            // Breaking after the second message leaves the rest for the next call.
            let (mut client, _) = open_pair(kind, Serializer::MsgPack);
            client.receive(&wire);
            let mut first = Vec::new();
            client.poll_each(|m| {
                first.push(m.len());
                if first.len() == 2 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            assert_eq!(first, [3, 125]);
            let mut rest = Vec::new();
            client.poll_each(|m| {
                rest.push(m.len());
                ControlFlow::Continue(())
            });
            assert_eq!(rest, [126, 0, 70_000]);
        }
        let (mut client, _) = open_pair(TransportKind::WebSocket, Serializer::Json);
        let mut wire = BytesMut::new();
        write_frame(&mut wire, opcode::TEXT, &[b"[1]"], None);
        write_frame(&mut wire, opcode::TEXT, &[&[0xff]], None);
        client.receive(&wire);
        let mut seen = 0;
        let end = client.poll_each(|_| {
            seen += 1;
            ControlFlow::Continue(())
        });
        assert_eq!(seen, 1);
        assert!(matches!(end, Some(ConnEvent::Closed { .. })), "{end:?}");
    }

    #[test]
    fn poll_with_reassembles_fragments_and_answers_pings() {
        let (mut client, _) = open_pair(TransportKind::WebSocket, Serializer::Json);
        let mut wire = BytesMut::new();
        write_frame(&mut wire, opcode::TEXT & 0x0F, &[b"[1,"], None);
        wire[0] &= 0x7F; // not FIN: first fragment
        write_frame(&mut wire, opcode::PING, &[b"hi"], None);
        write_frame(&mut wire, opcode::CONTINUATION, &[b"2]"], None);
        write_frame(&mut wire, opcode::TEXT, &[b"[3]"], None);
        client.receive(&wire);
        let (messages, events) = drain_with(&mut client);
        assert_eq!(messages, vec![b"[1,2]".to_vec(), b"[3]".to_vec()]);
        assert!(events.is_empty());
        let pong = decode_frame_header(client.output()).unwrap().unwrap();
        assert_eq!(pong.opcode, opcode::PONG);
    }

    #[test]
    fn poll_with_reports_bad_text_and_close_as_events() {
        let (mut client, _) = open_pair(TransportKind::WebSocket, Serializer::Json);
        let mut wire = BytesMut::new();
        write_frame(&mut wire, opcode::TEXT, &[b"[1]"], None);
        write_frame(&mut wire, opcode::TEXT, &[&[0xff, 0xfe]], None);
        write_frame(&mut wire, opcode::TEXT, &[b"[2]"], None);
        client.receive(&wire);
        let (messages, events) = drain_with(&mut client);
        assert_eq!(messages, vec![b"[1]".to_vec()]);
        assert!(
            matches!(&events[..], [ConnEvent::Closed { reason }] if reason.contains("UTF-8")),
            "{events:?}"
        );
        assert!(client.wants_close());

        let (mut client, _) = open_pair(TransportKind::RawSocket, Serializer::Json);
        client.receive(&[0x0F, 0, 0, 1, b'x']);
        let (messages, events) = drain_with(&mut client);
        assert!(messages.is_empty());
        assert!(
            matches!(&events[..], [ConnEvent::Closed { .. }]),
            "{events:?}"
        );
    }

    /// A server connection upgraded with the batched subprotocol `protocol`.
    fn open_batched_server(protocol: &str, config: &TransportConfig) -> ServerConn {
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}, wamp.2.json\r\n\r\n"
        );
        let mut server = ServerConn::new(TransportKind::WebSocket, config);
        server.receive(request.as_bytes());
        assert!(matches!(
            server.poll_event(),
            Some(ConnEvent::Opened { .. })
        ));
        let answer = String::from_utf8(server.output().to_vec()).unwrap();
        assert!(
            answer.contains(&format!("Sec-WebSocket-Protocol: {protocol}\r\n")),
            "{answer}"
        );
        assert!(server.is_batched());
        let n = server.output().len();
        server.consume_output(n);
        server
    }

    fn events(server: &mut ServerConn) -> Vec<ConnEvent> {
        std::iter::from_fn(|| server.poll_event()).collect()
    }

    /// The close code of the close frame at the start of `out`.
    fn close_code_of(out: &[u8]) -> u16 {
        let header = decode_frame_header(out).unwrap().unwrap();
        assert_eq!(header.opcode, opcode::CLOSE);
        let at = header.header_len;
        u16::from_be_bytes([out[at], out[at + 1]])
    }

    #[test]
    fn batched_json_messages_are_split_and_framed() {
        let config = TransportConfig::default();
        let mut server = open_batched_server("wamp.2.json.batched", &config);
        let mut wire = BytesMut::new();
        write_frame(
            &mut wire,
            opcode::TEXT,
            &[b"[1,\"r\",{}]\x1e[6,{},\"x\"]\x1e"],
            Some([9, 8, 7, 6]),
        );
        server.receive(&wire);
        assert_eq!(
            events(&mut server),
            vec![
                ConnEvent::Message(Bytes::from_static(b"[1,\"r\",{}]")),
                ConnEvent::Message(Bytes::from_static(b"[6,{},\"x\"]")),
            ]
        );
        assert_eq!(server.messages_received(), 2);
        server.send_message(b"[2,1,{}]").unwrap();
        let out = server.output().to_vec();
        let header = decode_frame_header(&out).unwrap().unwrap();
        assert_eq!(header.opcode, opcode::TEXT);
        assert_eq!(&out[header.header_len..], b"[2,1,{}]\x1e");
        assert_eq!(server.framed_len(8), out.len());
    }

    #[test]
    fn batched_msgpack_messages_are_length_prefixed() {
        let config = TransportConfig::default();
        let mut server = open_batched_server("wamp.2.msgpack.batched", &config);
        let mut wire = BytesMut::new();
        write_frame(
            &mut wire,
            opcode::BINARY,
            &[&[0, 0, 0, 2, 0x91, 0x01, 0, 0, 0, 1, 0x90]],
            Some([1, 2, 3, 4]),
        );
        server.receive(&wire);
        assert_eq!(
            events(&mut server),
            vec![
                ConnEvent::Message(Bytes::from_static(&[0x91, 0x01])),
                ConnEvent::Message(Bytes::from_static(&[0x90])),
            ]
        );
        server
            .send_message_parts(&[&[0x92], &[0x02, 0x03]])
            .unwrap();
        let out = server.output().to_vec();
        let header = decode_frame_header(&out).unwrap().unwrap();
        assert_eq!(header.opcode, opcode::BINARY);
        assert_eq!(&out[header.header_len..], &[0, 0, 0, 3, 0x92, 0x02, 0x03]);
    }

    #[test]
    fn bad_batches_fail_the_transport_with_a_close_code() {
        let config = TransportConfig {
            max_message_size: 64,
            ..TransportConfig::default()
        };
        let cases: [(&str, u8, &[u8], u16); 5] = [
            ("wamp.2.json.batched", opcode::TEXT, b"", 1007),
            ("wamp.2.json.batched", opcode::TEXT, b"[1]\x1e[2]", 1007),
            (
                "wamp.2.msgpack.batched",
                opcode::BINARY,
                &[0, 0, 0, 9, 0x90],
                1007,
            ),
            (
                "wamp.2.msgpack.batched",
                opcode::BINARY,
                &[0, 0, 0, 65, 0x90],
                1009,
            ),
            (
                "wamp.2.msgpack.batched",
                opcode::BINARY,
                &[0, 0, 0, 1, 0x90, 0],
                1007,
            ),
        ];
        for (protocol, op, payload, code) in cases {
            let mut server = open_batched_server(protocol, &config);
            let mut wire = BytesMut::new();
            write_frame(&mut wire, op, &[payload], Some([1, 2, 3, 4]));
            server.receive(&wire);
            let events = events(&mut server);
            assert!(
                matches!(&events[..], [ConnEvent::Closed { .. }]),
                "{protocol} {payload:?}: {events:?}"
            );
            assert_eq!(
                close_code_of(server.output()),
                code,
                "{protocol} {payload:?}"
            );
        }
    }

    #[test]
    fn the_first_offered_subprotocol_wins() {
        let config = TransportConfig::default();
        let request = "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: wamp.2.json, wamp.2.json.batched\r\n\r\n";
        let mut server = ServerConn::new(TransportKind::WebSocket, &config);
        server.receive(request.as_bytes());
        assert!(matches!(
            server.poll_event(),
            Some(ConnEvent::Opened { .. })
        ));
        assert!(!server.is_batched());
    }

    fn lp_config() -> TransportConfig {
        TransportConfig {
            max_message_size: 1000,
            max_outbound_bytes: 100,
            ..TransportConfig::default()
        }
    }

    #[test]
    fn long_poll_requests_are_taken_answered_and_kept_alive() {
        let config = lp_config();
        let mut server = ServerConn::new(TransportKind::WebSocket, &config);
        let body = "{\"protocols\": [\"wamp.2.json\"]}";
        let open = format!(
            "POST /ws/open HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        // Fed in two pieces: the body arrives after the head.
        server.receive(&open.as_bytes()[..open.len() - 5]);
        assert_eq!(server.poll_event(), None);
        assert!(server.take_http_request().is_none());
        server.receive(&open.as_bytes()[open.len() - 5..]);
        assert_eq!(server.poll_event(), None);
        let request = server.take_http_request().expect("a request");
        assert_eq!(request.action, longpoll::LpAction::Open);
        assert_eq!(&request.body[..], body.as_bytes());
        assert_eq!(&request.raw[..], open.as_bytes());
        assert!(server.awaits_http_answer());
        // The next request waits for the answer to this one.
        let receive = "POST /ws/01000102030405060708090a0b0c0d0e0f/receive HTTP/1.1\r\n\r\n";
        server.receive(receive.as_bytes());
        assert_eq!(server.poll_event(), None);
        assert!(server.take_http_request().is_none());
        server.respond_http(b"HTTP/1.1 204 No Content\r\n\r\n", true);
        assert_eq!(server.output(), b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(server.poll_event(), None);
        let next = server
            .take_http_request()
            .expect("the kept-alive connection's next request");
        assert!(matches!(next.action, longpoll::LpAction::Receive(_)));
        // Without keep-alive the connection finishes after the answer.
        server.respond_http(b"HTTP/1.1 204 No Content\r\n\r\n", false);
        assert!(matches!(
            server.poll_event(),
            Some(ConnEvent::Closed { .. })
        ));
    }

    #[test]
    fn a_client_that_floods_a_pending_request_is_dropped() {
        let config = lp_config();
        let mut server = ServerConn::new(TransportKind::WebSocket, &config);
        server.receive(b"POST /ws/01000102030405060708090a0b0c0d0e0f/receive HTTP/1.1\r\n\r\n");
        assert_eq!(server.poll_event(), None);
        assert!(server.take_http_request().is_some());
        server.receive(&vec![b'x'; websocket::MAX_HANDSHAKE_LEN + 1001]);
        assert!(matches!(
            server.poll_event(),
            Some(ConnEvent::Closed { .. })
        ));
    }

    #[test]
    fn long_poll_bodies_queue_messages_in_and_out() {
        let config = lp_config();
        let mut plain = ServerConn::new_longpoll(Serializer::Json, false, &config);
        plain.receive_longpoll_body(b"[1,\"r\",{}]").unwrap();
        assert_eq!(plain.receive_longpoll_body(b""), Err("empty message"));
        assert_eq!(
            plain.poll_event(),
            Some(ConnEvent::Message(Bytes::from_static(b"[1,\"r\",{}]")))
        );
        assert_eq!(plain.poll_event(), None);
        plain.send_message(b"[2,1,{}]").unwrap();
        plain.send_message(b"[3,{},\"x\"]").unwrap();
        // One message per receive.
        assert_eq!(plain.take_longpoll_body().unwrap(), b"[2,1,{}]");
        assert_eq!(plain.take_longpoll_body().unwrap(), b"[3,{},\"x\"]");
        assert_eq!(plain.take_longpoll_body(), None);
        // The outbound bound holds (100 bytes, with the 4-byte internal prefix).
        assert_eq!(plain.send_message(&[b'1'; 96]), Ok(()));
        assert_eq!(plain.send_message(b"[1]"), Err(SendError::Overflow));

        let mut batched = ServerConn::new_longpoll(Serializer::Json, true, &config);
        batched.receive_longpoll_body(b"[1]\x1e[2]\x1e").unwrap();
        let got: Vec<ConnEvent> = std::iter::from_fn(|| batched.poll_event()).collect();
        assert_eq!(
            got,
            vec![
                ConnEvent::Message(Bytes::from_static(b"[1]")),
                ConnEvent::Message(Bytes::from_static(b"[2]")),
            ]
        );
        assert!(batched.receive_longpoll_body(b"[3]").is_err());
        batched.send_message(b"[4]").unwrap();
        batched.send_message(b"[5]").unwrap();
        // Every queued message in one batch.
        assert_eq!(batched.take_longpoll_body().unwrap(), b"[4]\x1e[5]\x1e");

        let mut packed = ServerConn::new_longpoll(Serializer::MsgPack, true, &config);
        packed.send_message(&[0x91, 0x01]).unwrap();
        assert_eq!(
            packed.take_longpoll_body().unwrap(),
            [0, 0, 0, 2, 0x91, 0x01]
        );
    }
}
