//! WebSocket (RFC 6455): the HTTP/1.1 upgrade (server parses the request and answers 101 or an
//! error; client builds the request and checks the 101), and the frame codec ([`WsFramer`]):
//! header encode/decode, masking, fragmentation, control frames and the close handshake.
//! Everything is sans-IO: functions take byte slices and append bytes to a `BytesMut`.
//!
//! Decisions where the RFC or the WAMP spec leave room:
//! - A GET on the served path without any `Upgrade` header answers 426 (it is a plain HTTP
//!   request to a WebSocket-only resource, RFC 7231 §6.5.15); a request that tries to upgrade but
//!   gets a header wrong answers 400, except a missing or wrong `Sec-WebSocket-Version`, which
//!   answers 426 with `Sec-WebSocket-Version: 13` (RFC 6455 §4.4). Wrong path: 404. Headers
//!   longer than [`MAX_HANDSHAKE_LEN`]: 431.
//! - `permessage-deflate` and every other extension are declined by never naming them.
//! - `wamp.2.json` accepts text messages only, `wamp.2.msgpack` and `wamp.2.cbor` binary only; the other type
//!   fails the connection with 1003 (unsupported data). Only the echo framer of the
//!   conformance test ([`WsFramer::echo`], after [`parse_echo_upgrade_request`]) takes both.
//! - A message bigger than `max_message_size`, or in more frames than `max_ws_fragments`,
//!   fails with 1009, refused at the header of the frame that crosses the bound.
//! - Text that is not UTF-8 fails with 1007. A fragmented message is checked fragment by
//!   fragment, so it fails at the fragment with the bad byte; one frame is checked once it is
//!   complete (checking partial frames would cost every large text frame a second pass).
//! - Invalid close codes or a close reason that is not UTF-8 fail with 1002.
//! - After we sent a close frame we send nothing else (no pongs) and discard data frames until
//!   the peer's close arrives.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use sha1::{Digest, Sha1};

use crate::net::batched;
use crate::net::conn::TransportConfig;
use crate::serializer::Serializer;
use crate::wire::{is_utf8, utf8_complete_prefix};

/// The GUID of RFC 6455 §1.3, appended to the client's key to compute the accept value.
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Longest upgrade request or response we buffer before giving up (431 on the server side).
pub const MAX_HANDSHAKE_LEN: usize = 8 * 1024;

/// Longest frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
pub const MAX_FRAME_HEADER_LEN: usize = 14;

/// Largest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes (RFC 6455 §5.2).
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// Close status codes we send (RFC 6455 §7.4.1).
pub mod close_code {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// Which end of the connection a codec plays; decides the masking rules.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Receives masked frames, sends unmasked ones.
    Server,
    /// Receives unmasked frames, sends masked ones.
    Client,
}

/// A violation of RFC 6455 found in received bytes: the close code to send and why.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct WsProtocolError {
    pub code: u16,
    pub reason: &'static str,
}

impl WsProtocolError {
    const fn new(code: u16, reason: &'static str) -> WsProtocolError {
        WsProtocolError { code, reason }
    }
}

// ---------------------------------------------------------------------------------------------
// Server side upgrade
// ---------------------------------------------------------------------------------------------

/// Result of looking at the bytes a client sent before the upgrade completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpgradeOutcome {
    /// The request headers are not complete yet.
    Partial,
    /// A valid upgrade: send `response`, drop `consumed` bytes of input (any bytes after them
    /// are already WebSocket frames).
    Accept {
        serializer: Serializer,
        /// The batched form of the subprotocol was chosen (`wamp.2.json.batched`, ...).
        batched: bool,
        consumed: usize,
        response: Vec<u8>,
    },
    /// Not acceptable: send `response` (an HTTP error with a text body), then close.
    Reject {
        status: u16,
        reason: String,
        response: Vec<u8>,
    },
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`.
pub fn accept_key(client_key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(client_key);
    sha.update(WS_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// An HTTP error response with a plain text reason; `extra_headers` are complete lines with CRLF.
pub fn http_error_response(status: u16, reason: &str, extra_headers: &str) -> Vec<u8> {
    let body = format!("{reason}\n");
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        status_text(status),
        body.len()
    )
    .into_bytes()
}

/// An upgrade request refused with an HTTP error.
struct Refusal {
    status: u16,
    reason: String,
    response: Vec<u8>,
}

fn reject(status: u16, reason: impl Into<String>, extra_headers: &str) -> Refusal {
    let reason = reason.into();
    let response = http_error_response(status, &reason, extra_headers);
    Refusal {
        status,
        reason,
        response,
    }
}

impl From<Refusal> for UpgradeOutcome {
    fn from(r: Refusal) -> UpgradeOutcome {
        UpgradeOutcome::Reject {
            status: r.status,
            reason: r.reason,
            response: r.response,
        }
    }
}

impl From<Refusal> for EchoUpgradeOutcome {
    fn from(r: Refusal) -> EchoUpgradeOutcome {
        EchoUpgradeOutcome::Reject {
            status: r.status,
            reason: r.reason,
            response: r.response,
        }
    }
}

/// True when the comma-separated header value contains `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// An upgrade request that passed every rule but the subprotocol choice.
struct UpgradeRequest<'a> {
    consumed: usize,
    key: &'a [u8],
    /// The first offered WAMP subprotocol that `config.serializers` accepts (batched or not:
    /// a serializer's batched form is accepted with it).
    chosen: Option<(Serializer, bool)>,
    offered_any: bool,
}

/// Parses an HTTP/1.1 upgrade request from the start of `buf` and checks everything but the
/// subprotocol. `Ok(None)`: the headers are not complete yet.
fn read_upgrade_request<'a>(
    buf: &'a [u8],
    config: &TransportConfig,
) -> Result<Option<UpgradeRequest<'a>>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let consumed = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HANDSHAKE_LEN {
                return Err(reject(431, "request headers too long", ""));
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(431, "too many request headers", ""))
        }
        Err(e) => return Err(reject(400, format!("malformed HTTP request: {e}"), "")),
    };
    if consumed > MAX_HANDSHAKE_LEN {
        return Err(reject(431, "request headers too long", ""));
    }
    if request.method != Some("GET") {
        return Err(reject(400, "a WebSocket upgrade must use GET", ""));
    }
    if request.version != Some(1) {
        return Err(reject(400, "a WebSocket upgrade needs HTTP/1.1", ""));
    }
    let target = request.path.unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    if path != config.ws_path {
        return Err(reject(404, format!("no WebSocket endpoint at {path}"), ""));
    }

    let mut host_seen = false;
    let mut upgrade_seen = false;
    let mut upgrade_websocket = false;
    let mut connection_upgrade = false;
    let mut version: Option<&[u8]> = None;
    let mut key: Option<&[u8]> = None;
    let mut key_count = 0;
    let mut chosen: Option<(Serializer, bool)> = None;
    let mut offered_any = false;
    for header in request.headers.iter() {
        let name = header.name;
        let value = header.value;
        if name.eq_ignore_ascii_case("host") {
            host_seen = true;
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade_seen = true;
            upgrade_websocket |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            version = Some(value.trim_ascii());
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value.trim_ascii());
            key_count += 1;
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            for offered in value.split(|&b| b == b',') {
                offered_any = true;
                if chosen.is_some() {
                    continue;
                }
                let offered = std::str::from_utf8(offered.trim_ascii()).unwrap_or("");
                if let Some((s, batched)) = batched::parse_subprotocol(offered) {
                    if config.serializers.contains(&s) {
                        chosen = Some((s, batched));
                    }
                }
            }
        }
    }

    const VERSION_HEADER: &str = "Sec-WebSocket-Version: 13\r\n";
    if !upgrade_seen {
        return Err(reject(
            426,
            "this endpoint speaks WebSocket only",
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
        ));
    }
    if !upgrade_websocket {
        return Err(reject(400, "Upgrade header does not name websocket", ""));
    }
    if !connection_upgrade {
        return Err(reject(400, "Connection header lacks the upgrade token", ""));
    }
    if !host_seen {
        return Err(reject(400, "missing Host header", ""));
    }
    match version {
        Some(b"13") => {}
        Some(_) => return Err(reject(426, "unsupported WebSocket version", VERSION_HEADER)),
        None => return Err(reject(426, "missing Sec-WebSocket-Version", VERSION_HEADER)),
    }
    let key = match (key, key_count) {
        (Some(k), 1) => k,
        (None, _) => return Err(reject(400, "missing Sec-WebSocket-Key", "")),
        _ => return Err(reject(400, "more than one Sec-WebSocket-Key", "")),
    };
    match BASE64.decode(key) {
        Ok(decoded) if decoded.len() == 16 => {}
        _ => {
            return Err(reject(
                400,
                "Sec-WebSocket-Key is not base64 of 16 bytes",
                "",
            ))
        }
    }
    Ok(Some(UpgradeRequest {
        consumed,
        key,
        chosen,
        offered_any,
    }))
}

/// The 101 answer; `subprotocol` is named when one was chosen.
fn switching_protocols(key: &[u8], subprotocol: Option<&str>) -> Vec<u8> {
    let protocol_line = match subprotocol {
        Some(p) => format!("Sec-WebSocket-Protocol: {p}\r\n"),
        None => String::new(),
    };
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{protocol_line}\r\n",
        accept_key(key),
    )
    .into_bytes()
}

/// Parses an HTTP/1.1 upgrade request from the start of `buf` and decides the answer. The
/// client must offer a WAMP subprotocol that `config.serializers` accepts.
pub fn parse_upgrade_request(buf: &[u8], config: &TransportConfig) -> UpgradeOutcome {
    let request = match read_upgrade_request(buf, config) {
        Ok(Some(request)) => request,
        Ok(None) => return UpgradeOutcome::Partial,
        Err(refusal) => return refusal.into(),
    };
    let (serializer, batched) = match request.chosen {
        Some(chosen) => chosen,
        None if !request.offered_any => {
            return reject(
                400,
                "missing Sec-WebSocket-Protocol; offer wamp.2.json or wamp.2.msgpack",
                "",
            )
            .into()
        }
        None => {
            let accepted: Vec<&str> = config
                .serializers
                .iter()
                .map(|s| s.ws_subprotocol())
                .collect();
            return reject(
                400,
                format!(
                    "no acceptable WebSocket subprotocol; this router accepts {}",
                    accepted.join(", ")
                ),
                "",
            )
            .into();
        }
    };
    UpgradeOutcome::Accept {
        serializer,
        batched,
        consumed: request.consumed,
        response: switching_protocols(
            request.key,
            Some(&batched::subprotocol_name(serializer, batched)),
        ),
    }
}

/// Result of [`parse_echo_upgrade_request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EchoUpgradeOutcome {
    /// The request headers are not complete yet.
    Partial,
    /// Send `response`, drop `consumed` bytes of input, then run a [`WsFramer::echo`].
    Accept { consumed: usize, response: Vec<u8> },
    /// As [`UpgradeOutcome::Reject`].
    Reject {
        status: u16,
        reason: String,
        response: Vec<u8>,
    },
}

/// For the WebSocket conformance test's echo server only (`tests/ws_conformance.rs`); the
/// router never calls it. Applies every rule of [`parse_upgrade_request`] except that no WAMP
/// subprotocol is needed: conformance suites offer none, and the router answers them 400. A
/// subprotocol is named in the answer only when the client offered one `config` accepts.
pub fn parse_echo_upgrade_request(buf: &[u8], config: &TransportConfig) -> EchoUpgradeOutcome {
    match read_upgrade_request(buf, config) {
        Ok(Some(request)) => EchoUpgradeOutcome::Accept {
            consumed: request.consumed,
            response: switching_protocols(
                request.key,
                request
                    .chosen
                    .map(|(s, batched)| batched::subprotocol_name(s, batched))
                    .as_deref(),
            ),
        },
        Ok(None) => EchoUpgradeOutcome::Partial,
        Err(refusal) => refusal.into(),
    }
}

/// How many bytes of empty lines (`\r\n` or `\n`) `buf` starts with. A server ignores them
/// before the request line (RFC 9112 §2.2; httparse skips them too), so they must not be taken
/// for the `\r\n\r\n` that ends the headers. A trailing lone `\r` is not counted yet.
pub fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut at = 0;
    loop {
        match &buf[at..] {
            [b'\r', b'\n', ..] => at += 2,
            [b'\n', ..] => at += 1,
            _ => return at,
        }
    }
}

/// Where `\r\n\r\n` ends in `buf`, searching from `from`; lets the server skip re-parsing a
/// request that cannot be complete yet.
pub fn find_headers_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    buf.get(start..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| start + p + 4)
}

// ---------------------------------------------------------------------------------------------
// Client side upgrade
// ---------------------------------------------------------------------------------------------

/// A fresh random `Sec-WebSocket-Key` (base64 of 16 random bytes).
pub fn random_client_key(rng: &mut impl RngCore) -> String {
    let mut raw = [0u8; 16];
    rng.fill_bytes(&mut raw);
    BASE64.encode(raw)
}

/// The client's upgrade request offering exactly one WAMP subprotocol.
pub fn build_upgrade_request(host: &str, path: &str, serializer: Serializer, key: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {}\r\n\r\n",
        serializer.ws_subprotocol()
    )
    .into_bytes()
}

/// Checks the server's answer to [`build_upgrade_request`]. `Ok(None)`: incomplete;
/// `Ok(Some(n))`: accepted, the first `n` bytes were the response; `Err(reason)`: refused.
pub fn parse_upgrade_response(
    buf: &[u8],
    key: &str,
    serializer: Serializer,
) -> Result<Option<usize>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let consumed = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HANDSHAKE_LEN => {
            return Err("upgrade response headers too long".to_string())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("malformed upgrade response: {e}")),
    };
    let code = response.code.unwrap_or(0);
    if code != 101 {
        let body_start = consumed.min(buf.len());
        let body_end = buf.len().min(body_start + 200);
        let body = String::from_utf8_lossy(buf.get(body_start..body_end).unwrap_or(&[]));
        return Err(format!(
            "upgrade refused: {code} {}: {}",
            response.reason.unwrap_or(""),
            body.trim()
        ));
    }
    let expected_accept = accept_key(key.as_bytes());
    let mut accept_ok = false;
    let mut upgrade_ok = false;
    let mut connection_ok = false;
    let mut protocol: Option<&[u8]> = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept_ok = header.value.trim_ascii() == expected_accept.as_bytes();
        } else if header.name.eq_ignore_ascii_case("upgrade") {
            upgrade_ok |= has_token(header.value, "websocket");
        } else if header.name.eq_ignore_ascii_case("connection") {
            connection_ok |= has_token(header.value, "upgrade");
        } else if header.name.eq_ignore_ascii_case("sec-websocket-protocol") {
            protocol = Some(header.value.trim_ascii());
        } else if header.name.eq_ignore_ascii_case("sec-websocket-extensions") {
            return Err("server enabled an extension we did not offer".to_string());
        }
    }
    if !upgrade_ok || !connection_ok {
        return Err("101 response lacks Upgrade/Connection headers".to_string());
    }
    if !accept_ok {
        return Err("wrong or missing Sec-WebSocket-Accept".to_string());
    }
    if protocol != Some(serializer.ws_subprotocol().as_bytes()) {
        return Err(format!(
            "server did not select {} as subprotocol",
            serializer.ws_subprotocol()
        ));
    }
    Ok(Some(consumed))
}

// ---------------------------------------------------------------------------------------------
// Frame header and masking
// ---------------------------------------------------------------------------------------------

/// A decoded frame header. `payload_len` is what the header announces; the payload itself may
/// not have arrived yet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes taken by the header itself (2..=14).
    pub header_len: usize,
}

impl FrameHeader {
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// Decodes the frame header at the start of `buf`, checking every rule that needs only the
/// header: RSV bits, known opcode, control frame size and FIN, minimal length encoding.
/// `Ok(None)`: not enough bytes yet. Masking rules depend on the role and are checked by
/// [`WsFramer`].
pub fn decode_frame_header(buf: &[u8]) -> Result<Option<FrameHeader>, WsProtocolError> {
    let (b0, b1) = match buf {
        [b0, b1, ..] => (*b0, *b1),
        _ => return Ok(None),
    };
    if b0 & 0x70 != 0 {
        return Err(WsProtocolError::new(
            close_code::PROTOCOL_ERROR,
            "RSV bits set without an extension",
        ));
    }
    let fin = b0 & 0x80 != 0;
    let op = b0 & 0x0F;
    match op {
        opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {}
        opcode::CLOSE | opcode::PING | opcode::PONG => {
            if !fin {
                return Err(WsProtocolError::new(
                    close_code::PROTOCOL_ERROR,
                    "fragmented control frame",
                ));
            }
            if (b1 & 0x7F) as usize > MAX_CONTROL_PAYLOAD {
                return Err(WsProtocolError::new(
                    close_code::PROTOCOL_ERROR,
                    "control frame payload over 125 bytes",
                ));
            }
        }
        _ => {
            return Err(WsProtocolError::new(
                close_code::PROTOCOL_ERROR,
                "unknown opcode",
            ))
        }
    }
    let masked = b1 & 0x80 != 0;
    let (payload_len, mut header_len) = match b1 & 0x7F {
        126 => {
            let Some(ext) = buf.get(2..4) else {
                return Ok(None);
            };
            let len = u16::from_be_bytes([ext[0], ext[1]]) as u64;
            if len < 126 {
                return Err(WsProtocolError::new(
                    close_code::PROTOCOL_ERROR,
                    "non-minimal 16-bit length",
                ));
            }
            (len, 4)
        }
        127 => {
            let Some(ext) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut raw = [0u8; 8];
            raw.copy_from_slice(ext);
            let len = u64::from_be_bytes(raw);
            if len >> 63 != 0 {
                return Err(WsProtocolError::new(
                    close_code::PROTOCOL_ERROR,
                    "64-bit length with the top bit set",
                ));
            }
            if len <= 0xFFFF {
                return Err(WsProtocolError::new(
                    close_code::PROTOCOL_ERROR,
                    "non-minimal 64-bit length",
                ));
            }
            (len, 10)
        }
        small => (small as u64, 2),
    };
    let mask = if masked {
        let Some(m) = buf.get(header_len..header_len + 4) else {
            return Ok(None);
        };
        header_len += 4;
        Some([m[0], m[1], m[2], m[3]])
    } else {
        None
    };
    Ok(Some(FrameHeader {
        fin,
        opcode: op,
        mask,
        payload_len,
        header_len,
    }))
}

/// Writes a frame header into `out` and returns its length. The caller guarantees
/// `payload_len < 2^63`.
pub fn encode_frame_header(
    out: &mut [u8; MAX_FRAME_HEADER_LEN],
    fin: bool,
    op: u8,
    payload_len: u64,
    mask: Option<[u8; 4]>,
) -> usize {
    out[0] = if fin { 0x80 } else { 0 } | (op & 0x0F);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut len = if payload_len < 126 {
        out[1] = mask_bit | payload_len as u8;
        2
    } else if payload_len <= 0xFFFF {
        out[1] = mask_bit | 126;
        out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        out[1] = mask_bit | 127;
        out[2..10].copy_from_slice(&payload_len.to_be_bytes());
        10
    };
    if let Some(m) = mask {
        out[len..len + 4].copy_from_slice(&m);
        len += 4;
    }
    len
}

/// Header length for a payload of `payload_len` bytes.
pub fn frame_header_len(payload_len: usize, masked: bool) -> usize {
    let base = if payload_len < 126 {
        2
    } else if payload_len <= 0xFFFF {
        4
    } else {
        10
    };
    base + if masked { 4 } else { 0 }
}

/// XORs `data` with the repeating 4-byte `mask`, starting at mask offset 0. Works 8 bytes at a
/// time; masking is on the path of every byte a client sends.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word) ^ wide;
        chunk.copy_from_slice(&x.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Appends one complete frame whose payload is the concatenation of `parts`, copying each part
/// once; masks it in place when `mask` is given.
pub fn write_frame(out: &mut BytesMut, op: u8, parts: &[&[u8]], mask: Option<[u8; 4]>) {
    write_wrapped_frame(out, op, &[], parts, &[], mask)
}

/// As [`write_frame`], with `prefix` before the parts and `suffix` after them in the same
/// payload (the framing of a batched message).
pub fn write_wrapped_frame(
    out: &mut BytesMut,
    op: u8,
    prefix: &[u8],
    parts: &[&[u8]],
    suffix: &[u8],
    mask: Option<[u8; 4]>,
) {
    let payload_len: usize =
        prefix.len() + suffix.len() + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut header = [0u8; MAX_FRAME_HEADER_LEN];
    let header_len = encode_frame_header(&mut header, true, op, payload_len as u64, mask);
    out.reserve(header_len + payload_len);
    out.put_slice(&header[..header_len]);
    let payload_start = out.len();
    out.put_slice(prefix);
    for part in parts {
        out.put_slice(part);
    }
    out.put_slice(suffix);
    if let Some(m) = mask {
        apply_mask(&mut out[payload_start..], m);
    }
}

/// True for the close codes a peer may send (RFC 6455 §7.4.1/§7.4.2 plus the IANA-registered
/// 1012-1014; 3000-4999 are for libraries and applications).
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Cuts `reason` to fit a close frame (123 bytes after the code) at a char boundary.
fn truncate_reason(reason: &str) -> &str {
    let max = MAX_CONTROL_PAYLOAD - 2;
    if reason.len() <= max {
        return reason;
    }
    let mut end = max;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

// ---------------------------------------------------------------------------------------------
// Framer
// ---------------------------------------------------------------------------------------------

/// What the framer found in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsEvent {
    /// One complete message (unmasked, reassembled, UTF-8 checked when text).
    Message(Bytes),
    /// The connection is finished; any close frame owed has been appended to the output.
    Closed(String),
}

/// What [`WsFramer::decode_typed`] found: a message with the opcode it came with, or the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsTyped {
    /// One complete message; `opcode` is [`opcode::TEXT`] or [`opcode::BINARY`].
    Message { opcode: u8, payload: Bytes },
    /// As [`WsEvent::Closed`].
    Closed(String),
}

/// What [`WsFramer::decode_in_place`] found: either an event as from [`WsFramer::decode`], or
/// a complete single-frame message still in the input at `input[skip..skip + len]` (unmasked
/// and UTF-8 checked), which the caller reads and then consumes with `input.advance(skip +
/// len)`. Reading it there saves the split and the reference count of a `Bytes` per message,
/// which is most of the framing cost for a receiver of many small messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsInPlace {
    Event(WsEvent),
    Message { skip: usize, len: usize },
}

enum Delivery {
    Deliver,
    Discard,
    Failed(WsEvent),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum CloseState {
    Open,
    /// We sent a close frame with this code; waiting for the peer's.
    CloseSent(u16),
    Done,
}

/// The frame codec of one open WebSocket connection (after the upgrade).
pub struct WsFramer {
    role: Role,
    /// TEXT for JSON, BINARY for MessagePack.
    data_opcode: u8,
    /// Echo mode ([`WsFramer::echo`]): messages of either opcode are taken.
    any_data_opcode: bool,
    max_message_size: usize,
    /// Most frames one message may come in.
    max_fragments: usize,
    /// Opcode of the fragmented message being reassembled, if any.
    fragment_opcode: Option<u8>,
    fragments: BytesMut,
    /// Frames of the fragmented message so far.
    fragment_count: usize,
    /// Text being reassembled: how much of `fragments` is known UTF-8 ending on a char boundary.
    utf8_checked: usize,
    /// Opcode of the last reassembled message, for [`WsFramer::decode_typed`].
    reassembled_opcode: u8,
    state: CloseState,
    /// Client role only: mask keys need not be cryptographic, only unpredictable to scripts.
    rng: Option<SmallRng>,
}

impl WsFramer {
    /// A framer for WAMP with `serializer`, within `config`'s message size and fragment bounds.
    pub fn new(role: Role, serializer: Serializer, config: &TransportConfig) -> WsFramer {
        let data_opcode = match serializer {
            Serializer::Json => opcode::TEXT,
            Serializer::MsgPack | Serializer::Cbor => opcode::BINARY,
        };
        WsFramer::with_opcodes(role, data_opcode, false, config)
    }

    /// For the conformance test's echo server only (`tests/ws_conformance.rs`): takes text and
    /// binary messages alike (a WAMP framer fails the type its serializer does not use), to be
    /// read with [`WsFramer::decode_typed`] and answered with [`WsFramer::encode_typed`]. Every
    /// other rule is the WAMP framer's.
    pub fn echo(role: Role, config: &TransportConfig) -> WsFramer {
        WsFramer::with_opcodes(role, opcode::TEXT, true, config)
    }

    fn with_opcodes(
        role: Role,
        data_opcode: u8,
        any_data_opcode: bool,
        config: &TransportConfig,
    ) -> WsFramer {
        let rng = match role {
            Role::Client => Some(SmallRng::from_entropy()),
            Role::Server => None,
        };
        WsFramer {
            role,
            data_opcode,
            any_data_opcode,
            max_message_size: config.max_message_size,
            max_fragments: config.max_ws_fragments,
            fragment_opcode: None,
            fragments: BytesMut::new(),
            fragment_count: 0,
            utf8_checked: 0,
            reassembled_opcode: data_opcode,
            state: CloseState::Open,
            rng,
        }
    }

    /// Opcode used for WAMP messages on this connection.
    pub fn data_opcode(&self) -> u8 {
        self.data_opcode
    }

    /// True until a close frame was sent or the connection failed.
    pub fn is_open(&self) -> bool {
        self.state == CloseState::Open
    }

    /// True once the close handshake finished or the connection failed.
    pub fn is_done(&self) -> bool {
        self.state == CloseState::Done
    }

    fn next_mask(&mut self) -> Option<[u8; 4]> {
        self.rng.as_mut().map(|rng| rng.next_u32().to_ne_bytes())
    }

    /// Frames one message (concatenation of `parts`) as a single data frame into `out`.
    pub fn encode_message(&mut self, parts: &[&[u8]], out: &mut BytesMut) {
        let mask = self.next_mask();
        write_frame(out, self.data_opcode, parts, mask);
    }

    /// Frames one WAMP message as a batch of one, in the batch framing of `serializer` (JSON:
    /// ending with `json_separator`), in a single data frame.
    pub fn encode_batched(
        &mut self,
        serializer: Serializer,
        json_separator: u8,
        parts: &[&[u8]],
        out: &mut BytesMut,
    ) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let (prefix, prefix_len, suffix, suffix_len) =
            batched::framing(serializer, json_separator, len);
        let mask = self.next_mask();
        write_wrapped_frame(
            out,
            self.data_opcode,
            &prefix[..prefix_len],
            parts,
            &suffix[..suffix_len],
            mask,
        );
    }

    /// Frames one message of type `op` ([`opcode::TEXT`] or [`opcode::BINARY`]) as a single
    /// data frame; for the echo framer, whose messages have no one type.
    pub fn encode_typed(&mut self, op: u8, parts: &[&[u8]], out: &mut BytesMut) {
        debug_assert!(matches!(op, opcode::TEXT | opcode::BINARY));
        let mask = self.next_mask();
        write_frame(out, op, parts, mask);
    }

    /// Total bytes [`WsFramer::encode_message`] appends for a payload of `len` bytes.
    pub fn framed_len(&self, len: usize) -> usize {
        frame_header_len(len, self.role == Role::Client) + len
    }

    fn write_control(&mut self, op: u8, payload: &[&[u8]], out: &mut BytesMut) {
        let mask = self.next_mask();
        write_frame(out, op, payload, mask);
    }

    /// Starts the close handshake (no-op unless open).
    pub fn close(&mut self, code: u16, reason: &str, out: &mut BytesMut) {
        if self.state != CloseState::Open {
            return;
        }
        let code_bytes = code.to_be_bytes();
        self.write_control(
            opcode::CLOSE,
            &[&code_bytes, truncate_reason(reason).as_bytes()],
            out,
        );
        self.state = CloseState::CloseSent(code);
    }

    /// Marks the connection finished without any further frame (e.g. socket already gone).
    pub fn abort(&mut self) {
        self.state = CloseState::Done;
    }

    fn fail(&mut self, err: WsProtocolError, out: &mut BytesMut) -> Option<WsEvent> {
        if self.state == CloseState::Open {
            let code_bytes = err.code.to_be_bytes();
            self.write_control(opcode::CLOSE, &[&code_bytes, err.reason.as_bytes()], out);
        }
        self.state = CloseState::Done;
        Some(WsEvent::Closed(format!(
            "websocket failed with {}: {}",
            err.code, err.reason
        )))
    }

    /// Consumes complete frames from the front of `input` until one yields an event. Pongs and
    /// close replies are appended to `out`. `None`: more input needed (or already finished).
    pub fn decode(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Option<WsEvent> {
        match self.next_frame(input, out, false)? {
            WsInPlace::Event(event) => Some(event),
            // next_frame only answers Message when asked to leave messages in place.
            WsInPlace::Message { skip, len } => {
                input.advance(skip);
                Some(WsEvent::Message(input.split_to(len).freeze()))
            }
        }
    }

    /// As [`WsFramer::decode`], but a message that arrived in one frame is left in `input` and
    /// described by [`WsInPlace::Message`]; reassembled fragmented messages still come as
    /// [`WsEvent::Message`].
    pub fn decode_in_place(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Option<WsInPlace> {
        self.next_frame(input, out, true)
    }

    /// As [`WsFramer::decode`], with each message's opcode; for the echo framer.
    pub fn decode_typed(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Option<WsTyped> {
        match self.next_frame(input, out, true)? {
            WsInPlace::Message { skip, len } => {
                // A message left in place still has its frame header in front of it.
                let opcode = input[0] & 0x0F;
                input.advance(skip);
                let payload = input.split_to(len).freeze();
                Some(WsTyped::Message { opcode, payload })
            }
            WsInPlace::Event(WsEvent::Message(payload)) => Some(WsTyped::Message {
                opcode: self.reassembled_opcode,
                payload,
            }),
            WsInPlace::Event(WsEvent::Closed(reason)) => Some(WsTyped::Closed(reason)),
        }
    }

    fn next_frame(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
        in_place: bool,
    ) -> Option<WsInPlace> {
        let event = |e: Option<WsEvent>| e.map(WsInPlace::Event);
        loop {
            if in_place {
                if let Some(message) = self.small_server_message(input) {
                    return Some(message);
                }
            }
            if self.state == CloseState::Done {
                return None;
            }
            let header = match decode_frame_header(input) {
                Ok(Some(h)) => h,
                Ok(None) => return None,
                Err(e) => return event(self.fail(e, out)),
            };
            match (self.role, header.mask.is_some()) {
                (Role::Server, false) => {
                    return event(self.fail(
                        WsProtocolError::new(
                            close_code::PROTOCOL_ERROR,
                            "client frame is not masked",
                        ),
                        out,
                    ))
                }
                (Role::Client, true) => {
                    return event(self.fail(
                        WsProtocolError::new(close_code::PROTOCOL_ERROR, "server frame is masked"),
                        out,
                    ))
                }
                _ => {}
            }
            if let Err(e) = self.check_sequence(&header) {
                return event(self.fail(e, out));
            }
            // check_sequence bounded payload_len by max_message_size (or 125), so it fits.
            let payload_len = header.payload_len as usize;
            let total = header.header_len + payload_len;
            if input.len() < total {
                input.reserve(total - input.len());
                return None;
            }
            if let Some(mask) = header.mask {
                apply_mask(&mut input[header.header_len..total], mask);
            }
            if header.fin && matches!(header.opcode, opcode::TEXT | opcode::BINARY) {
                let payload = &input[header.header_len..total];
                match self.check_delivery(header.opcode, payload, out) {
                    Delivery::Deliver if in_place => {
                        return Some(WsInPlace::Message {
                            skip: header.header_len,
                            len: payload_len,
                        })
                    }
                    Delivery::Deliver => {
                        input.advance(header.header_len);
                        let payload = input.split_to(payload_len).freeze();
                        return Some(WsInPlace::Event(WsEvent::Message(payload)));
                    }
                    Delivery::Discard => {
                        input.advance(total);
                        continue;
                    }
                    Delivery::Failed(failure) => return Some(WsInPlace::Event(failure)),
                }
            }
            input.advance(header.header_len);
            match header.opcode {
                opcode::TEXT | opcode::BINARY | opcode::CONTINUATION => {
                    let taken = self.take_fragment(&header, &input[..payload_len], out);
                    input.advance(payload_len);
                    if let Some(event) = taken {
                        return Some(WsInPlace::Event(event));
                    }
                }
                opcode::PING => {
                    if self.state == CloseState::Open {
                        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
                        payload[..payload_len].copy_from_slice(&input[..payload_len]);
                        self.write_control(opcode::PONG, &[&payload[..payload_len]], out);
                    }
                    input.advance(payload_len);
                }
                opcode::PONG => input.advance(payload_len),
                opcode::CLOSE => {
                    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
                    payload[..payload_len].copy_from_slice(&input[..payload_len]);
                    input.advance(payload_len);
                    return event(self.on_close_frame(&payload[..payload_len], out));
                }
                _ => {
                    return event(self.fail(
                        WsProtocolError::new(close_code::PROTOCOL_ERROR, "unknown opcode"),
                        out,
                    ))
                }
            }
        }
    }

    /// Client side: a complete, unfragmented data frame of at most 125 bytes (the bulk of
    /// RESULTs and EVENTs) is recognised from its first two bytes, skipping the general path.
    /// Such a frame passes every rule the general path checks: FIN, the connection's data
    /// opcode, no RSV bits, unmasked, a minimal length below any size limit, no fragmented
    /// message open; text still gets its UTF-8 check.
    #[inline]
    pub fn small_server_message(&self, input: &[u8]) -> Option<WsInPlace> {
        let [b0, len, ..] = *input else {
            return None;
        };
        let len = usize::from(len);
        let fits = self.role == Role::Client
            && b0 == 0x80 | self.data_opcode
            && len <= MAX_CONTROL_PAYLOAD
            && len <= self.max_message_size
            && input.len() >= 2 + len
            && self.state == CloseState::Open
            && self.fragment_opcode.is_none();
        let valid = fits && (self.data_opcode == opcode::BINARY || is_utf8(&input[2..2 + len]));
        valid.then_some(WsInPlace::Message { skip: 2, len })
    }

    /// Rules about a frame's place in the message sequence and its size, checked as soon as the
    /// header is known so an oversized frame is refused before its payload is buffered.
    fn check_sequence(&self, header: &FrameHeader) -> Result<(), WsProtocolError> {
        match header.opcode {
            opcode::TEXT | opcode::BINARY => {
                if self.fragment_opcode.is_some() {
                    return Err(WsProtocolError::new(
                        close_code::PROTOCOL_ERROR,
                        "new data frame inside a fragmented message",
                    ));
                }
                if header.opcode != self.data_opcode
                    && !self.any_data_opcode
                    && self.state == CloseState::Open
                {
                    return Err(WsProtocolError::new(
                        close_code::UNSUPPORTED_DATA,
                        if self.data_opcode == opcode::TEXT {
                            "wamp.2.json takes text messages only"
                        } else {
                            "wamp.2.msgpack takes binary messages only"
                        },
                    ));
                }
                if header.payload_len > self.max_message_size as u64 {
                    return Err(WsProtocolError::new(
                        close_code::MESSAGE_TOO_BIG,
                        "message too big",
                    ));
                }
            }
            opcode::CONTINUATION => {
                if self.fragment_opcode.is_none() {
                    return Err(WsProtocolError::new(
                        close_code::PROTOCOL_ERROR,
                        "continuation frame without a message to continue",
                    ));
                }
                let so_far = self.fragments.len() as u64;
                if header.payload_len > (self.max_message_size as u64).saturating_sub(so_far) {
                    return Err(WsProtocolError::new(
                        close_code::MESSAGE_TOO_BIG,
                        "message too big",
                    ));
                }
                if self.fragment_count >= self.max_fragments {
                    return Err(WsProtocolError::new(
                        close_code::MESSAGE_TOO_BIG,
                        "message in too many fragments",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// One frame of a fragmented message (its payload unmasked): buffers it and, at the last
    /// one, hands out the message. Out of line: WAMP clients rarely fragment, and keeping this
    /// out of `next_frame` keeps the single-frame path as lean as it was.
    #[cold]
    #[inline(never)]
    fn take_fragment(
        &mut self,
        header: &FrameHeader,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Option<WsEvent> {
        if header.opcode == opcode::CONTINUATION {
            self.fragment_count += 1;
        } else {
            self.fragment_opcode = Some(header.opcode);
            self.fragment_count = 1;
            self.utf8_checked = 0;
            self.fragments.clear();
        }
        self.fragments.extend_from_slice(payload);
        if let Err(e) = self.check_fragment_utf8(header.fin) {
            return self.fail(e, out);
        }
        if !header.fin {
            return None;
        }
        let op = self.fragment_opcode.take().unwrap_or(self.data_opcode);
        self.reassembled_opcode = op;
        let message = self.fragments.split().freeze();
        // Text was checked fragment by fragment; only the close state is left.
        (self.state == CloseState::Open).then_some(WsEvent::Message(message))
    }

    /// Checks the text reassembled so far, so that a bad byte fails the message when its
    /// fragment arrives (RFC 6455 §8.1 fails it anyway; failing early saves buffering the
    /// rest). `fin`: the message is complete, so it must not end inside a char.
    fn check_fragment_utf8(&mut self, fin: bool) -> Result<(), WsProtocolError> {
        // After our close frame, data is dropped unread.
        if self.fragment_opcode != Some(opcode::TEXT) || self.state != CloseState::Open {
            return Ok(());
        }
        let unchecked = &self.fragments[self.utf8_checked..];
        match utf8_complete_prefix(unchecked) {
            Some(n) if !fin || n == unchecked.len() => {
                self.utf8_checked += n;
                Ok(())
            }
            _ => Err(WsProtocolError::new(
                close_code::INVALID_PAYLOAD,
                "text message is not UTF-8",
            )),
        }
    }

    /// Whether a complete data message may be handed out: not after we sent our close frame
    /// (the peer's late messages are dropped), and text must be UTF-8.
    fn check_delivery(&mut self, op: u8, payload: &[u8], out: &mut BytesMut) -> Delivery {
        if self.state != CloseState::Open {
            return Delivery::Discard;
        }
        if op == opcode::TEXT && !is_utf8(payload) {
            return match self.fail(
                WsProtocolError::new(close_code::INVALID_PAYLOAD, "text message is not UTF-8"),
                out,
            ) {
                Some(failure) => Delivery::Failed(failure),
                None => Delivery::Discard,
            };
        }
        Delivery::Deliver
    }

    fn on_close_frame(&mut self, payload: &[u8], out: &mut BytesMut) -> Option<WsEvent> {
        let (code, reason) = match payload {
            [] => (None, ""),
            [_] => {
                return self.fail(
                    WsProtocolError::new(close_code::PROTOCOL_ERROR, "close frame of one byte"),
                    out,
                )
            }
            [hi, lo, rest @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !is_valid_close_code(code) {
                    return self.fail(
                        WsProtocolError::new(close_code::PROTOCOL_ERROR, "invalid close code"),
                        out,
                    );
                }
                match std::str::from_utf8(rest) {
                    Ok(r) => (Some(code), r),
                    Err(_) => {
                        return self.fail(
                            WsProtocolError::new(
                                close_code::PROTOCOL_ERROR,
                                "close reason is not UTF-8",
                            ),
                            out,
                        )
                    }
                }
            }
        };
        let peer = match code {
            Some(c) if reason.is_empty() => format!("{c}"),
            Some(c) => format!("{c} {reason}"),
            None => "no status".to_string(),
        };
        let event = match self.state {
            CloseState::Open => {
                let echo = code.unwrap_or(close_code::NORMAL).to_be_bytes();
                self.write_control(opcode::CLOSE, &[&echo], out);
                WsEvent::Closed(format!("closed by peer ({peer})"))
            }
            CloseState::CloseSent(ours) => {
                WsEvent::Closed(format!("closed by us ({ours}); peer answered ({peer})"))
            }
            CloseState::Done => return None,
        };
        self.state = CloseState::Done;
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_message_size: usize, max_ws_fragments: usize) -> TransportConfig {
        TransportConfig {
            max_message_size,
            max_ws_fragments,
            ..TransportConfig::default()
        }
    }

    #[test]
    fn header_prefixes_are_incomplete_not_errors() {
        for (len, mask) in [
            (5u64, None),
            (300, Some([1, 2, 3, 4])),
            (70_000, Some([9; 4])),
        ] {
            let mut buf = [0u8; MAX_FRAME_HEADER_LEN];
            let n = encode_frame_header(&mut buf, true, opcode::BINARY, len, mask);
            assert_eq!(n, frame_header_len(len as usize, mask.is_some()));
            for cut in 0..n {
                assert_eq!(decode_frame_header(&buf[..cut]), Ok(None), "cut {cut}");
            }
            let h = decode_frame_header(&buf[..n]).unwrap().unwrap();
            assert_eq!((h.payload_len, h.mask, h.header_len), (len, mask, n));
        }
    }

    #[test]
    fn token_lists_are_split_and_trimmed() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(has_token(b"  WebSocket ", "websocket"));
        assert!(!has_token(b"upgrade-insecure", "upgrade"));
        assert!(!has_token(b"", "upgrade"));
    }

    #[test]
    fn headers_end_is_found_across_feeds() {
        let req = b"GET / HTTP/1.1\r\n\r\nrest";
        assert_eq!(find_headers_end(req, 0), Some(18));
        assert_eq!(find_headers_end(req, 17), Some(18));
        assert_eq!(find_headers_end(&req[..17], 0), None);
        assert_eq!(find_headers_end(b"", 10), None);
        assert_eq!(leading_empty_lines(b"\r\n\nGET"), 3);
        assert_eq!(leading_empty_lines(b"\r\n\r"), 2);
        assert_eq!(leading_empty_lines(b"GET\r\n"), 0);
    }

    #[test]
    fn close_codes_follow_rfc_7_4() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
        ] {
            assert!(is_valid_close_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert!(!is_valid_close_code(bad), "{bad}");
        }
    }

    #[test]
    fn reasons_are_cut_at_char_boundaries() {
        let long = "ü".repeat(100);
        let cut = truncate_reason(&long);
        assert_eq!(cut.len(), 122, "61 two-byte chars fit in 123 bytes");
        assert_eq!(truncate_reason("short"), "short");
    }

    #[test]
    fn refused_upgrade_response_is_reported_with_body() {
        let response = http_error_response(404, "no WebSocket endpoint at /x", "");
        let err = parse_upgrade_response(&response, "k", Serializer::Json).unwrap_err();
        assert!(err.contains("404") && err.contains("/x"), "{err}");
    }

    #[test]
    fn framer_after_done_stays_silent() {
        let mut framer = WsFramer::new(Role::Server, Serializer::Json, &limits(1024, 16));
        let mut out = BytesMut::new();
        let mut input = BytesMut::from(&[0x81u8, 0x01, b'x'][..]);
        assert!(matches!(
            framer.decode(&mut input, &mut out),
            Some(WsEvent::Closed(_))
        ));
        assert!(framer.is_done());
        let written = out.len();
        let mut input = BytesMut::from(&[0x89u8, 0x80, 0, 0, 0, 0][..]);
        assert_eq!(framer.decode(&mut input, &mut out), None);
        assert_eq!(out.len(), written);
    }

    /// A masked client frame.
    fn client_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut header = [0u8; MAX_FRAME_HEADER_LEN];
        let n = encode_frame_header(&mut header, fin, op, payload.len() as u64, Some(mask));
        let mut frame = header[..n].to_vec();
        frame.extend_from_slice(payload);
        apply_mask(&mut frame[n..], mask);
        frame
    }

    /// A message of `op` cut into the given pieces, one frame each.
    fn fragmented(op: u8, pieces: &[&[u8]]) -> Vec<u8> {
        let mut wire = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let fin = i + 1 == pieces.len();
            let frame_op = if i == 0 { op } else { opcode::CONTINUATION };
            wire.extend(client_frame(fin, frame_op, piece));
        }
        wire
    }

    /// Every event the framer yields for `wire`, and the close code it sent, if any.
    fn run(framer: &mut WsFramer, wire: &[u8]) -> (Vec<WsEvent>, Option<u16>) {
        let mut input = BytesMut::from(wire);
        let mut out = BytesMut::new();
        let mut events = Vec::new();
        while let Some(event) = framer.decode(&mut input, &mut out) {
            events.push(event);
        }
        let close = decode_frame_header(&out)
            .unwrap()
            .filter(|h| h.opcode == opcode::CLOSE)
            .map(|h| u16::from_be_bytes([out[h.header_len], out[h.header_len + 1]]));
        (events, close)
    }

    #[test]
    fn a_message_in_more_fragments_than_the_bound_is_1009() {
        let pieces: [&[u8]; 4] = [b"[", b"1", b",2", b"]"];
        let mut framer = WsFramer::new(Role::Server, Serializer::Json, &limits(1024, 4));
        let (events, close) = run(&mut framer, &fragmented(opcode::TEXT, &pieces));
        assert_eq!(events, [WsEvent::Message(Bytes::from_static(b"[1,2]"))]);
        assert_eq!(close, None);

        // Refused at the fifth frame's header, before its payload is buffered; empty frames
        // count as much as full ones.
        let mut framer = WsFramer::new(Role::Server, Serializer::Json, &limits(1024, 4));
        let mut wire = client_frame(false, opcode::TEXT, b"[");
        for piece in [&b""[..], b"", b"1"] {
            wire.extend(client_frame(false, opcode::CONTINUATION, piece));
        }
        // The fifth frame's header only (6 bytes with the mask).
        wire.extend(&client_frame(true, opcode::CONTINUATION, b"]")[..6]);
        let (events, close) = run(&mut framer, &wire);
        assert_eq!(
            events,
            [WsEvent::Closed(
                "websocket failed with 1009: message in too many fragments".to_string()
            )]
        );
        assert_eq!(close, Some(close_code::MESSAGE_TOO_BIG));

        // The count starts again with each message.
        let mut framer = WsFramer::new(Role::Server, Serializer::Json, &limits(1024, 2));
        let mut wire = fragmented(opcode::TEXT, &[b"[1", b"]"]);
        wire.extend(fragmented(opcode::TEXT, &[b"[2", b"]"]));
        let (events, close) = run(&mut framer, &wire);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(close, None);
    }

    #[test]
    fn default_fragment_bound_fits_a_largest_message_in_4_kib_frames() {
        let config = TransportConfig::default();
        assert!(config.max_ws_fragments * 4096 >= config.max_message_size);
    }

    #[test]
    fn fragmented_text_fails_at_the_fragment_with_the_bad_byte() {
        // No FIN yet: the failure does not wait for the end of the message.
        let mut framer = WsFramer::new(Role::Server, Serializer::Json, &limits(1024, 16));
        let mut wire = client_frame(false, opcode::TEXT, "[\"\u{3ba}".as_bytes());
        wire.extend(client_frame(
            false,
            opcode::CONTINUATION,
            b"\xf4\x90\x80\x80",
        ));
        let (events, close) = run(&mut framer, &wire);
        assert!(
            matches!(&events[..], [WsEvent::Closed(r)] if r.contains("UTF-8")),
            "{events:?}"
        );
        assert_eq!(close, Some(close_code::INVALID_PAYLOAD));

        // A char split over three fragments is fine...
        let euro = "\u{20ac}".as_bytes();
        let mut framer = WsFramer::new(Role::Server, Serializer::Json, &limits(1024, 16));
        let wire = fragmented(
            opcode::TEXT,
            &[b"[\"", &euro[..1], &euro[1..2], &euro[2..], b"\"]"],
        );
        let (events, close) = run(&mut framer, &wire);
        let expected = Bytes::from("[\"\u{20ac}\"]".as_bytes().to_vec());
        assert_eq!(events, [WsEvent::Message(expected)]);
        assert_eq!(close, None);

        // ...but not left unfinished at the end of the message.
        let mut framer = WsFramer::new(Role::Server, Serializer::Json, &limits(1024, 16));
        let wire = fragmented(opcode::TEXT, &[b"[\"", &euro[..2]]);
        let (_, close) = run(&mut framer, &wire);
        assert_eq!(close, Some(close_code::INVALID_PAYLOAD));

        // Binary fragments are not text.
        let mut framer = WsFramer::new(Role::Server, Serializer::MsgPack, &limits(1024, 16));
        let (events, close) = run(
            &mut framer,
            &fragmented(opcode::BINARY, &[b"\xff", b"\xfe"]),
        );
        assert_eq!(events, [WsEvent::Message(Bytes::from_static(b"\xff\xfe"))]);
        assert_eq!(close, None);
    }

    #[test]
    fn echo_framer_takes_both_types_and_tells_which() {
        let mut framer = WsFramer::echo(Role::Server, &limits(1024, 16));
        let mut input = BytesMut::new();
        input.extend(client_frame(true, opcode::BINARY, b"\x00\xff"));
        input.extend(client_frame(true, opcode::TEXT, b"hi"));
        input.extend(fragmented(opcode::BINARY, &[b"a", b"b"]));
        input.extend(fragmented(opcode::TEXT, &[b"c", b"d"]));
        input.extend(client_frame(true, opcode::TEXT, b"\xff"));
        let mut out = BytesMut::new();
        let mut seen = Vec::new();
        while let Some(event) = framer.decode_typed(&mut input, &mut out) {
            seen.push(event);
        }
        let message = |opcode, payload: &'static [u8]| WsTyped::Message {
            opcode,
            payload: Bytes::from_static(payload),
        };
        assert_eq!(
            seen,
            [
                message(opcode::BINARY, b"\x00\xff"),
                message(opcode::TEXT, b"hi"),
                message(opcode::BINARY, b"ab"),
                message(opcode::TEXT, b"cd"),
                WsTyped::Closed("websocket failed with 1007: text message is not UTF-8".into()),
            ]
        );

        let mut out = BytesMut::new();
        framer.encode_typed(opcode::BINARY, &[b"x"], &mut out);
        assert_eq!(&out[..], [0x82, 1, b'x']);
    }
}
