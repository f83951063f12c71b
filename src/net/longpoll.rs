//! HTTP long-poll (digest §8.3), the sans-IO part: parsing the HTTP/1.1 requests Autobahn|JS's
//! `longpoll` transport sends to the WebSocket listener's path (`POST <ws_path>/open`,
//! `POST <ws_path>/<id>/send|receive|close`, the browsers' `OPTIONS` preflight), building the
//! answers (with CORS headers), and the transport ids. The runtime (`src/shard/longpoll.rs`)
//! owns the transports and decides what each request gets.
//!
//! Decisions: a request on the WebSocket path itself is not long-poll (it stays an upgrade,
//! or 426). Under `<ws_path>/`, any method but POST and OPTIONS answers 405, a body larger than
//! `max_message_size` 413 (before it is read), a chunked body 411, a path that names no
//! long-poll action 404; those answers close the connection. A `?query` (Autobahn's `?x=`
//! cache-buster) is ignored. Transport ids are two hex digits naming the owning shard followed by
//! 32 hex digits (128 bits) from the OS's CSPRNG: unguessable, and any shard can tell whose a
//! request is without a table.

use bytes::Bytes;
use rand::RngCore;

use crate::net::conn::TransportConfig;
use crate::net::websocket::MAX_HANDSHAKE_LEN;

/// What a long-poll request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LpAction {
    Open,
    Send(String),
    Receive(String),
    Close(String),
}

impl LpAction {
    /// The transport id the request names (`None` for `open`).
    pub fn transport_id(&self) -> Option<&str> {
        match self {
            LpAction::Open => None,
            LpAction::Send(id) | LpAction::Receive(id) | LpAction::Close(id) => Some(id),
        }
    }
}

/// One complete long-poll request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LpRequest {
    pub action: LpAction,
    /// The `Origin` header, echoed in the CORS answer headers.
    pub origin: Option<String>,
    /// The connection stays open after the answer (HTTP/1.1 without `Connection: close`).
    pub keep_alive: bool,
    /// The request body (a zero-copy slice of `raw`).
    pub body: Bytes,
    /// The whole request as received (head and body), so it can be handed to another shard
    /// and parsed there again.
    pub raw: Bytes,
}

/// What [`read_request`] made of the bytes at the start of a connection's input.
#[derive(Debug, PartialEq, Eq)]
pub enum LpParse {
    /// Not a long-poll request: the WebSocket upgrade path decides (upgrade, 426, 404, ...).
    NotLongPoll,
    /// A long-poll request whose body has not fully arrived.
    Partial,
    /// A complete request of `len` bytes (head and body).
    Request {
        action: LpAction,
        origin: Option<String>,
        keep_alive: bool,
        head_len: usize,
        len: usize,
    },
    /// Answered without the runtime: send `response`; close the connection unless
    /// `keep_alive`.
    Reply {
        status: u16,
        response: Vec<u8>,
        keep_alive: bool,
    },
}

/// Parses the request at the start of `buf` (its head is complete: the caller found the
/// `\r\n\r\n`). The head bound ([`MAX_HANDSHAKE_LEN`], 431) is the upgrade path's.
pub fn read_request(buf: &[u8], config: &TransportConfig) -> LpParse {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HANDSHAKE_LEN => n,
        _ => return LpParse::NotLongPoll,
    };
    let target = request.path.unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    let base = config.ws_path.trim_end_matches('/');
    let Some(rest) = path
        .strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return LpParse::NotLongPoll;
    };
    if rest.is_empty() {
        // `<ws_path>/` when ws_path has no trailing slash: still the WebSocket resource.
        return LpParse::NotLongPoll;
    }
    let mut origin = None;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut connection_close = request.version != Some(1);
    let mut preflight_headers = None;
    for header in request.headers.iter() {
        let name = header.name;
        let value = std::str::from_utf8(header.value).unwrap_or("").trim();
        if name.eq_ignore_ascii_case("origin") {
            origin = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<usize>() {
                Ok(n) if content_length.is_none_or_eq(n) => content_length = Some(n),
                _ => return reply(400, "bad Content-Length", None, false, ""),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    connection_close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && request.version == Some(0) {
                    connection_close = false;
                }
            }
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            preflight_headers = Some(value.to_string());
        }
    }
    let origin_ref = origin.as_deref();
    match request.method {
        Some("POST") => {}
        Some("OPTIONS") => {
            // CORS preflight (browsers, for the JSON Content-Type Autobahn sets).
            let allow_headers = preflight_headers.unwrap_or_else(|| "Content-Type".to_string());
            let extra = format!(
                "Access-Control-Allow-Methods: POST, OPTIONS\r\nAccess-Control-Allow-Headers: {}\r\nAccess-Control-Max-Age: 86400\r\n",
                sanitize(&allow_headers)
            );
            return LpParse::Reply {
                status: 204,
                response: response(204, "", b"", origin_ref, !connection_close, &extra),
                keep_alive: !connection_close,
            };
        }
        _ => {
            return reply(
                405,
                "long-poll takes POST only",
                origin_ref,
                false,
                "Allow: POST, OPTIONS\r\n",
            )
        }
    }
    if chunked {
        return reply(
            411,
            "a long-poll body needs a Content-Length",
            origin_ref,
            false,
            "",
        );
    }
    let body_len = content_length.unwrap_or(0);
    if body_len > config.max_message_size {
        return reply(
            413,
            "request body larger than max_message_size",
            origin_ref,
            false,
            "",
        );
    }
    let mut parts = rest.split('/');
    let action = match (parts.next(), parts.next(), parts.next()) {
        (Some("open"), None, _) => LpAction::Open,
        (Some(id), Some(verb), None) if is_transport_id(id) => {
            let id = id.to_string();
            match verb {
                "send" => LpAction::Send(id),
                "receive" => LpAction::Receive(id),
                "close" => LpAction::Close(id),
                _ => return reply(404, "no such long-poll action", origin_ref, false, ""),
            }
        }
        (Some(_), Some(_), None) => {
            return reply(404, "no such long-poll transport", origin_ref, false, "")
        }
        _ => return reply(404, "no such long-poll resource", origin_ref, false, ""),
    };
    if buf.len() < head_len + body_len {
        return LpParse::Partial;
    }
    LpParse::Request {
        action,
        origin,
        keep_alive: !connection_close,
        head_len,
        len: head_len + body_len,
    }
}

/// `Option<usize>` helper: true when unset or equal (repeated equal Content-Length headers are
/// allowed, RFC 9110 §8.6).
trait NoneOrEq {
    fn is_none_or_eq(&self, n: usize) -> bool;
}

impl NoneOrEq for Option<usize> {
    fn is_none_or_eq(&self, n: usize) -> bool {
        self.map_or(true, |m| m == n)
    }
}

/// Header values echoed into an answer keep to visible ASCII (no header injection).
fn sanitize(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect()
}

fn reply(
    status: u16,
    reason: &str,
    origin: Option<&str>,
    keep_alive: bool,
    extra: &str,
) -> LpParse {
    LpParse::Reply {
        status,
        response: error_response(status, reason, origin, keep_alive, extra),
        keep_alive,
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// An HTTP answer. CORS: the request's `Origin` is echoed, with credentials allowed (Autobahn
/// sets `withCredentials`, and then `*` is not accepted by browsers). 204 carries no body and no
/// Content-Length (RFC 9110 §8.6).
pub fn response(
    status: u16,
    content_type: &str,
    body: &[u8],
    origin: Option<&str>,
    keep_alive: bool,
    extra_headers: &str,
) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", status_text(status));
    if status != 204 {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("Cache-Control: no-store\r\n");
    if let Some(origin) = origin {
        head.push_str(&format!(
            "Access-Control-Allow-Origin: {}\r\nAccess-Control-Allow-Credentials: true\r\nVary: Origin\r\n",
            sanitize(origin)
        ));
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str(extra_headers);
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if status != 204 {
        out.extend_from_slice(body);
    }
    out
}

/// An error answer with a plain text reason.
pub fn error_response(
    status: u16,
    reason: &str,
    origin: Option<&str>,
    keep_alive: bool,
    extra: &str,
) -> Vec<u8> {
    let body = format!("{reason}\n");
    response(
        status,
        "text/plain",
        body.as_bytes(),
        origin,
        keep_alive,
        extra,
    )
}

/// Length of a transport id: 2 hex digits of shard, 32 of randomness.
pub const TRANSPORT_ID_LEN: usize = 34;

/// A new transport id owned by `shard` (< 256), with 128 bits from the OS's CSPRNG.
pub fn new_transport_id(shard: usize) -> String {
    let mut random = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut random);
    format!("{:02x}{}", shard as u8, hex::encode(random))
}

fn is_transport_id(id: &str) -> bool {
    id.len() == TRANSPORT_ID_LEN && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The shard a well-formed transport id names.
pub fn transport_shard(id: &str) -> Option<usize> {
    if !is_transport_id(id) {
        return None;
    }
    usize::from_str_radix(&id[..2], 16).ok()
}

/// The protocols a `POST /open` body offers: `{"protocols": ["wamp.2.json", ...]}`.
pub fn parse_open_body(body: &[u8]) -> Option<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Open {
        protocols: Vec<String>,
    }
    // simd-json parses in place: run it on a copy.
    let mut copy = body.to_vec();
    simd_json::serde::from_slice::<Open>(&mut copy)
        .ok()
        .map(|open| open.protocols)
}

/// The answer to `open`: `{"protocol": ..., "transport": ...}`.
pub fn open_answer(protocol: &str, transport: &str) -> Vec<u8> {
    format!("{{\"protocol\":\"{protocol}\",\"transport\":\"{transport}\"}}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(request: &str) -> LpParse {
        read_request(request.as_bytes(), &TransportConfig::default())
    }

    fn status(parsed: &LpParse) -> u16 {
        match parsed {
            LpParse::Reply { status, .. } => *status,
            other => panic!("not a reply: {other:?}"),
        }
    }

    const ID: &str = "01000102030405060708090a0b0c0d0e0f";

    #[test]
    fn actions_are_parsed_and_the_query_ignored() {
        let body = "{\"protocols\":[\"wamp.2.json\"]}";
        let open = format!(
            "POST /ws/open?x=123 HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match parse(&open) {
            LpParse::Request {
                action,
                keep_alive,
                head_len,
                len,
                ..
            } => {
                assert_eq!(action, LpAction::Open);
                assert!(keep_alive);
                assert_eq!(&open.as_bytes()[head_len..len], body.as_bytes());
            }
            other => panic!("{other:?}"),
        }
        for (verb, want) in [
            ("send", LpAction::Send(ID.to_string())),
            ("receive", LpAction::Receive(ID.to_string())),
            ("close", LpAction::Close(ID.to_string())),
        ] {
            let request = format!(
                "POST /ws/{ID}/{verb}?x=0.5 HTTP/1.1\r\nHost: h\r\nOrigin: http://a.example\r\nConnection: close\r\n\r\n"
            );
            match parse(&request) {
                LpParse::Request {
                    action,
                    origin,
                    keep_alive,
                    ..
                } => {
                    assert_eq!(action, want);
                    assert_eq!(origin.as_deref(), Some("http://a.example"));
                    assert!(!keep_alive);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn other_paths_are_not_long_poll() {
        assert_eq!(
            parse("GET /ws HTTP/1.1\r\nHost: h\r\n\r\n"),
            LpParse::NotLongPoll
        );
        assert_eq!(
            parse("POST /other/open HTTP/1.1\r\nHost: h\r\n\r\n"),
            LpParse::NotLongPoll
        );
        assert_eq!(
            parse("POST /wsx/open HTTP/1.1\r\nHost: h\r\n\r\n"),
            LpParse::NotLongPoll
        );
    }

    #[test]
    fn a_body_still_arriving_is_partial() {
        assert_eq!(
            parse(&format!(
                "POST /ws/{ID}/send HTTP/1.1\r\nContent-Length: 10\r\n\r\n[1,2"
            )),
            LpParse::Partial
        );
    }

    #[test]
    fn bad_requests_get_their_status() {
        assert_eq!(status(&parse("GET /ws/open HTTP/1.1\r\n\r\n")), 405);
        assert_eq!(
            status(&parse(
                "POST /ws/open HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            )),
            411
        );
        assert_eq!(
            status(&parse(&format!(
                "POST /ws/open HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
                16 * 1024 * 1024 + 1
            ))),
            413
        );
        assert_eq!(
            status(&parse(
                "POST /ws/open HTTP/1.1\r\nContent-Length: x\r\n\r\n"
            )),
            400
        );
        assert_eq!(status(&parse("POST /ws/nothex/send HTTP/1.1\r\n\r\n")), 404);
        assert_eq!(
            status(&parse(&format!("POST /ws/{ID}/dance HTTP/1.1\r\n\r\n"))),
            404
        );
        assert_eq!(status(&parse("POST /ws/a/b/c HTTP/1.1\r\n\r\n")), 404);
    }

    #[test]
    fn preflight_echoes_the_origin_with_credentials() {
        let parsed = parse(
            "OPTIONS /ws/open HTTP/1.1\r\nOrigin: http://a.example\r\nAccess-Control-Request-Headers: content-type\r\n\r\n",
        );
        let LpParse::Reply {
            status, response, ..
        } = parsed
        else {
            panic!("{parsed:?}")
        };
        assert_eq!(status, 204);
        let text = String::from_utf8(response).unwrap();
        assert!(text.contains("Access-Control-Allow-Origin: http://a.example\r\n"));
        assert!(text.contains("Access-Control-Allow-Credentials: true\r\n"));
        assert!(text.contains("Access-Control-Allow-Headers: content-type\r\n"));
        assert!(!text.contains("Content-Length"));
    }

    #[test]
    fn transport_ids_name_their_shard_and_differ() {
        let a = new_transport_id(5);
        let b = new_transport_id(5);
        assert_ne!(a, b);
        assert_eq!(a.len(), TRANSPORT_ID_LEN);
        assert_eq!(transport_shard(&a), Some(5));
        assert_eq!(transport_shard("05"), None);
    }

    #[test]
    fn open_bodies_are_parsed() {
        assert_eq!(
            parse_open_body(br#"{"protocols": ["wamp.2.json", "wamp.2.msgpack"]}"#),
            Some(vec![
                "wamp.2.json".to_string(),
                "wamp.2.msgpack".to_string()
            ])
        );
        assert_eq!(parse_open_body(b"{}"), None);
        assert_eq!(parse_open_body(b"not json"), None);
    }
}
