//! The transport targets: one server connection (`net::ServerConn`, WebSocket or RawSocket) fed
//! a byte stream split into chunks where the input says, polled the way the input says
//! (`poll_event`, `poll_with` or `poll_each`), answering each message (echo, echo in two parts,
//! or an extra message) and closing after the k-th one, so the outbound framing runs too.
//!
//! Input layout: byte 0 configures the connection, byte 1 the driving, bytes 2..8 are chunk
//! sizes (used in turn), the rest is the stream — a transport handshake (or, with
//! [`CANNED`], a valid one is put in front) followed by frames.
//!
//! What must hold for every input:
//! * no panic; no message before `Opened` or after `Closed`; at most one of each;
//! * a message is within the size limit (and UTF-8 for a JSON WebSocket);
//! * the outbound buffer stays within `max_outbound_bytes` + [`CONTROL_SLACK_BYTES`] + what the
//!   last chunk could have made us owe;
//! * everything written parses as the reply the spec names: an HTTP response (101 then server
//!   frames: unmasked, our data frames carry exactly the messages sent, in order, nothing after
//!   our close frame) or a RawSocket handshake reply (then frames carrying the messages sent);
//! * with limits that cannot be hit, the same stream fed in one piece gives the same events
//!   and the same output bytes, whatever the chunking.

use std::ops::ControlFlow;

use super::Cursor;
use crate::net::conn::CONTROL_SLACK_BYTES;
use crate::net::websocket::{self, opcode};
use crate::net::{rawsocket, ConnEvent, Polled, SendError, ServerConn};
use crate::net::{TransportConfig, TransportKind};
use crate::serializer::Serializer;
use crate::wire::is_utf8;

/// Config byte: max_message_size (bits 0-1), small outbound bound (bit 2), accepted serializers
/// (bits 3-4), canned handshake (bit 5) offering MessagePack (bit 6) instead of JSON, refuse
/// the connection as overloaded first (bit 7).
const CANNED: u8 = 0x20;
const CANNED_MSGPACK: u8 = 0x40;
const SMALL_OUTBOUND: u8 = 0x04;
const REFUSE: u8 = 0x80;
/// Header bytes before the stream.
const HEADER: usize = 8;
const SMALL_OUTBOUND_BYTES: usize = 600;

#[derive(Copy, Clone, PartialEq, Eq)]
enum Mode {
    Event,
    With,
    Each,
}

#[derive(Copy, Clone, PartialEq, Eq)]
enum Reply {
    None,
    Echo,
    EchoInParts,
    EchoAndMore,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Opened(Serializer),
    Message(Vec<u8>),
    Closed(String),
}

struct Plan {
    kind: TransportKind,
    config: TransportConfig,
    refuse: bool,
    mode: Mode,
    reply: Reply,
    /// Close locally after this many messages (0: never).
    close_after: usize,
    chunks: Vec<usize>,
}

pub(crate) fn check(kind: TransportKind, data: &[u8]) {
    let mut cursor = Cursor::new(data);
    let cfg = cursor.byte();
    let drive = cursor.byte();
    let chunks: Vec<usize> = cursor
        .take(HEADER - 2)
        .iter()
        .map(|&b| chunk_size(b))
        .collect();
    let rest = cursor.take(usize::MAX);

    let config = TransportConfig {
        max_message_size: [16 << 20, 64 << 10, 1000, 130][usize::from(cfg & 3)],
        max_outbound_bytes: if cfg & SMALL_OUTBOUND != 0 {
            SMALL_OUTBOUND_BYTES
        } else {
            16 << 20
        },
        serializers: match (cfg >> 3) & 3 {
            0 => vec![Serializer::Json, Serializer::MsgPack, Serializer::Cbor],
            1 => vec![Serializer::MsgPack, Serializer::Json],
            2 => vec![Serializer::Json],
            _ => vec![Serializer::MsgPack],
        },
        ..TransportConfig::default()
    };
    let mut stream = Vec::new();
    if cfg & CANNED != 0 {
        let ser = if cfg & CANNED_MSGPACK != 0 {
            Serializer::MsgPack
        } else {
            Serializer::Json
        };
        stream.extend_from_slice(&canned_handshake(kind, ser));
    }
    stream.extend_from_slice(rest);

    let mut plan = Plan {
        kind,
        config,
        refuse: cfg & REFUSE != 0,
        mode: [Mode::Event, Mode::With, Mode::Each, Mode::Event][usize::from(drive & 3)],
        reply: [
            Reply::None,
            Reply::Echo,
            Reply::EchoInParts,
            Reply::EchoAndMore,
        ][usize::from((drive >> 2) & 3)],
        close_after: usize::from(drive >> 4),
        chunks: if chunks.is_empty() { vec![1] } else { chunks },
    };
    let chunked = run(&plan, &stream);
    chunked.check_output(&plan);

    // Chunking must not matter while no bound can be reached (every byte of the stream could
    // become output, a few times over with replies and pongs: 16 MiB is far away) and while
    // replies go out right after their message (poll_each answers a batch at its end).
    let differential = cfg & SMALL_OUTBOUND == 0
        && plan.mode != Mode::Each
        && stream.len() <= websocket::MAX_HANDSHAKE_LEN;
    if differential {
        plan.chunks = vec![usize::MAX];
        let whole = run(&plan, &stream);
        assert_eq!(chunked.seen, whole.seen, "events depend on the chunking");
        assert_eq!(
            chunked.written, whole.written,
            "output depends on the chunking"
        );
    }
}

/// 1..=224 bytes, or 256..=8192 in steps of 256.
fn chunk_size(b: u8) -> usize {
    match b {
        0..=0xDF => usize::from(b) + 1,
        _ => (usize::from(b & 0x1F) + 1) * 256,
    }
}

fn canned_handshake(kind: TransportKind, ser: Serializer) -> Vec<u8> {
    match kind {
        TransportKind::WebSocket => {
            websocket::build_upgrade_request("localhost", "/ws", ser, "dGhlIHNhbXBsZSBub25jZQ==")
        }
        TransportKind::RawSocket => rawsocket::encode_handshake(ser, 0x0F).to_vec(),
    }
}

/// What one run saw and wrote.
struct Run {
    seen: Vec<Seen>,
    /// Every output byte, in order (what was consumed plus what is left).
    written: Vec<u8>,
    /// The messages `send_message*` accepted, in order.
    sent: Vec<Vec<u8>>,
    opened: Option<Serializer>,
    closed: bool,
    messages: usize,
}

fn run(plan: &Plan, stream: &[u8]) -> Run {
    let mut conn = ServerConn::new(plan.kind, &plan.config);
    let mut state = Run {
        seen: Vec::new(),
        written: Vec::new(),
        sent: Vec::new(),
        opened: None,
        closed: false,
        messages: 0,
    };
    if plan.refuse {
        conn.refuse_overloaded();
    }
    let mut rest = stream;
    let mut turn = 0;
    loop {
        let size = plan.chunks[turn % plan.chunks.len()].min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        conn.receive(chunk);
        pump(plan, &mut conn, &mut state);
        assert!(
            conn.outbound_len()
                <= plan.config.max_outbound_bytes + CONTROL_SLACK_BYTES + chunk.len() + 1024,
            "outbound buffer grew to {} bytes",
            conn.outbound_len()
        );
        // Write out part of the output, a different amount each turn.
        let n = plan.chunks[turn % plan.chunks.len()]
            .saturating_mul(3)
            .min(conn.output().len());
        state.written.extend_from_slice(&conn.output()[..n]);
        conn.consume_output(n);
        turn += 1;
        if rest.is_empty() {
            break;
        }
    }
    pump(plan, &mut conn, &mut state);
    if state.closed {
        assert!(
            conn.wants_close(),
            "Closed reported, but wants_close is false"
        );
        assert!(conn.poll_event().is_none(), "an event after Closed");
        assert!(!conn.is_open());
    }
    if conn.wants_close() {
        assert_eq!(
            conn.send_message(b"[1]"),
            Err(SendError::NotOpen),
            "sent on a finished connection"
        );
    }
    state.written.extend_from_slice(conn.output());
    state
}

/// Takes every event the connection has now.
fn pump(plan: &Plan, conn: &mut ServerConn, state: &mut Run) {
    loop {
        match plan.mode {
            Mode::Event => match conn.poll_event() {
                None => return,
                Some(ConnEvent::Message(m)) => on_message(plan, conn, state, m.to_vec()),
                Some(event) => on_event(conn, state, event),
            },
            Mode::With => match conn.poll_with(<[u8]>::to_vec) {
                None => return,
                Some(Polled::Message(m)) => on_message(plan, conn, state, m),
                Some(Polled::Event(ConnEvent::Message(_))) => {
                    panic!("poll_with reported a message as an event")
                }
                Some(Polled::Event(event)) => on_event(conn, state, event),
            },
            Mode::Each => {
                let mut batch = Vec::new();
                let end = conn.poll_each(|m| {
                    batch.push(m.to_vec());
                    ControlFlow::Continue(())
                });
                for m in batch {
                    on_message(plan, conn, state, m);
                }
                match end {
                    None => return,
                    Some(ConnEvent::Message(_)) => panic!("poll_each returned a message"),
                    Some(event) => on_event(conn, state, event),
                }
            }
        }
    }
}

fn on_event(conn: &ServerConn, state: &mut Run, event: ConnEvent) {
    assert!(!state.closed, "{event:?} after Closed");
    match event {
        ConnEvent::Opened { serializer } => {
            assert!(state.opened.is_none(), "opened twice");
            assert_eq!(conn.serializer(), Some(serializer));
            state.opened = Some(serializer);
            state.seen.push(Seen::Opened(serializer));
        }
        ConnEvent::Closed { reason } => {
            state.closed = true;
            state.seen.push(Seen::Closed(reason));
        }
        ConnEvent::Message(_) => unreachable!("handled by on_message"),
    }
}

fn on_message(plan: &Plan, conn: &mut ServerConn, state: &mut Run, message: Vec<u8>) {
    assert!(!state.closed, "a message after Closed");
    let ser = state.opened.expect("a message before Opened");
    let limit = match plan.kind {
        TransportKind::WebSocket => plan.config.max_message_size,
        TransportKind::RawSocket => {
            rawsocket::nibble_to_max_len(rawsocket::length_nibble(plan.config.max_message_size))
        }
    };
    assert!(message.len() <= limit, "a message over the size limit");
    if plan.kind == TransportKind::WebSocket && ser == Serializer::Json {
        assert!(
            is_utf8(&message),
            "a JSON WebSocket message that is not UTF-8"
        );
    }
    state.messages += 1;
    let number = state.messages;
    state.seen.push(Seen::Message(message.clone()));

    match plan.reply {
        Reply::None => {}
        Reply::Echo => send(plan, conn, state, &[&message]),
        Reply::EchoInParts => {
            let (a, b) = message.split_at(message.len() / 2);
            send(plan, conn, state, &[a, b, &[]]);
        }
        Reply::EchoAndMore => {
            send(plan, conn, state, &[&message]);
            let more = vec![b'x'; (message.len() * 37) % 70_000];
            send(plan, conn, state, &[&more]);
        }
    }
    if number == plan.close_after {
        conn.close(999 + message.len() as u16 % 4100, "fuzz close");
    }
}

/// Sends one message, checking that a refusal has its reason.
fn send(plan: &Plan, conn: &mut ServerConn, state: &mut Run, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let was_open = conn.is_open();
    let before = conn.outbound_len();
    let framed = conn.framed_len(len);
    match conn.send_message_parts(parts) {
        Ok(()) => {
            assert!(was_open, "sent while not open");
            assert_eq!(conn.outbound_len(), before + framed, "framed_len is wrong");
            state.sent.push(parts.concat());
        }
        Err(SendError::NotOpen) => assert!(!was_open, "NotOpen on an open connection"),
        Err(SendError::TooLarge) => {
            let limit = conn
                .peer_max_message_size()
                .unwrap_or(usize::MAX)
                .min(plan.config.max_message_size);
            assert!(len > limit, "TooLarge for {len} bytes, limit {limit}");
        }
        Err(SendError::Overflow) => assert!(
            before + framed > plan.config.max_outbound_bytes,
            "Overflow at {before} + {framed} bytes"
        ),
    }
}

impl Run {
    /// Parses everything written and checks it is the reply the spec names.
    fn check_output(&self, plan: &Plan) {
        let out = &self.written[..];
        match plan.kind {
            TransportKind::WebSocket => self.check_websocket_output(out),
            TransportKind::RawSocket => self.check_rawsocket_output(plan, out),
        }
    }

    fn check_websocket_output(&self, out: &[u8]) {
        if out.is_empty() {
            assert!(self.opened.is_none(), "opened without a 101");
            return;
        }
        let end = websocket::find_headers_end(out, 0).expect("output starts with an HTTP head");
        let head = std::str::from_utf8(&out[..end]).expect("the HTTP head is text");
        let Some(ser) = self.opened else {
            assert!(
                head.starts_with("HTTP/1.1 4") || head.starts_with("HTTP/1.1 5"),
                "refused with {head:?}"
            );
            // The error body, then nothing.
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("Content-Length")
                .parse()
                .expect("a number");
            assert_eq!(out.len(), end + length, "bytes after the HTTP error");
            return;
        };
        assert!(head.starts_with("HTTP/1.1 101 "), "opened with {head:?}");
        assert!(head.contains(ser.ws_subprotocol()));
        let data_opcode = match ser {
            Serializer::Json => opcode::TEXT,
            Serializer::MsgPack | Serializer::Cbor => opcode::BINARY,
        };
        let mut at = end;
        let mut sent = self.sent.iter();
        let mut close_sent = false;
        while at < out.len() {
            assert!(!close_sent, "a frame after our close frame");
            let header = websocket::decode_frame_header(&out[at..])
                .expect("we write valid frame headers")
                .expect("a whole frame header");
            assert!(header.fin && header.mask.is_none(), "{header:?}");
            let start = at + header.header_len;
            let stop = start + header.payload_len as usize;
            assert!(stop <= out.len(), "a frame cut short");
            let payload = &out[start..stop];
            match header.opcode {
                op if op == data_opcode => {
                    assert_eq!(
                        Some(&payload.to_vec()),
                        sent.next(),
                        "data frame not as sent"
                    )
                }
                opcode::PONG => {}
                opcode::CLOSE => {
                    close_sent = true;
                    assert!(payload.len() >= 2, "close frame without a code");
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    assert!(websocket::is_valid_close_code(code), "close code {code}");
                    assert!(is_utf8(&payload[2..]), "close reason not UTF-8");
                }
                op => panic!("we wrote opcode {op}"),
            }
            at = stop;
        }
        assert!(sent.next().is_none(), "a message sent but not written");
    }

    fn check_rawsocket_output(&self, plan: &Plan, out: &[u8]) {
        let Some(ser) = self.opened else {
            // Nothing, or the 4-octet error reply.
            if !out.is_empty() {
                assert_eq!(out.len(), 4, "more than an error handshake");
                assert_eq!((out[0], out[1] & 0x0F, out[2], out[3]), (0x7F, 0, 0, 0));
                assert!(
                    (1..=4).contains(&(out[1] >> 4)),
                    "error code {}",
                    out[1] >> 4
                );
            }
            return;
        };
        let nibble = rawsocket::length_nibble(plan.config.max_message_size);
        assert_eq!(out[..4], rawsocket::encode_handshake(ser, nibble));
        let mut at = 4;
        let mut sent = self.sent.iter();
        while at < out.len() {
            let header = out.get(at..at + 4).expect("a whole frame header");
            let (ty, len) =
                rawsocket::decode_frame_header([header[0], header[1], header[2], header[3]])
                    .expect("we write valid frame headers");
            let start = at + 4;
            let stop = start + len;
            assert!(stop <= out.len(), "a frame cut short");
            match ty {
                rawsocket::frame_type::MESSAGE => assert_eq!(
                    Some(&out[start..stop].to_vec()),
                    sent.next(),
                    "message frame not as sent"
                ),
                rawsocket::frame_type::PONG => {}
                ty => panic!("we wrote frame type {ty}"),
            }
            at = stop;
        }
        assert!(sent.next().is_none(), "a message sent but not written");
    }
}
