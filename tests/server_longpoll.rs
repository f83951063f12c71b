//! HTTP long-poll against the real `wampring` binary, at 1 shard and at 2 shards with kernel
//! and round-robin placement: `open`, HELLO/WELCOME over `send`/`receive`, a call between a
//! long-poll session and a WebSocket session (both ways), a held `receive` answered 204 after
//! the poll timeout, a `receive` held until a message comes, `close`, unknown ids (404),
//! oversized bodies (413), wrong methods (405), the CORS preflight, a batched protocol, and the
//! session timeout. Every request goes on a new TCP connection, so at 2 shards the requests of
//! one transport land on both shards (round-robin: alternately) and are handed to the owner.
//! Every router is stopped by PID.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use wampring::net::TransportKind;
use wampring::wire::{Dict, Serializer, Value};

const POLL_TIMEOUT_MS: u64 = 700;
const SESSION_TIMEOUT_MS: u64 = 1500;

/// The debug line of a request handed to its transport's shard (`src/shard/longpoll.rs`).
const HANDED_LINE: &str = "long-poll request handed to its transport's shard";

/// Starts a router whose log shows the long-poll hand-offs (and the session lines).
fn start(args: &[&str]) -> RouterProcess {
    // Every test of this file wants the same filter, so setting it process-wide is harmless.
    std::env::set_var(
        "RUST_LOG",
        "info,wampring::session=debug,wampring::shard::longpoll=debug",
    );
    RouterProcess::start(&limits(), args)
}

fn limits() -> String {
    format!(
        "[limits]\nlongpoll_poll_timeout_ms = {POLL_TIMEOUT_MS}\nlongpoll_session_timeout_ms = {SESSION_TIMEOUT_MS}\n"
    )
}

/// An HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// One POST (or `method`) on a fresh connection that the server closes after its answer.
fn request(port: u16, method: &str, path: &str, headers: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: reading the answer: {e}"));
    let at = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP head in {raw:?}"))
        + 4;
    let head = String::from_utf8_lossy(&raw[..at]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head,
        body: raw[at..].to_vec(),
    }
}

fn post(port: u16, path: &str, body: &[u8]) -> Answer {
    request(port, "POST", path, "", body)
}

/// A long-poll client: its transport id and serializer.
struct Lp {
    port: u16,
    id: String,
    ser: Serializer,
}

impl Lp {
    fn open(port: u16, protocols: &str) -> (Lp, String) {
        let answer = post(
            port,
            "/ws/open?x=0.123",
            format!("{{\"protocols\": [{protocols}]}}").as_bytes(),
        );
        assert_eq!(answer.status, 200, "open: {answer:?}");
        let text = String::from_utf8(answer.body).unwrap();
        let field = |name: &str| {
            let key = format!("\"{name}\":\"");
            let at = text
                .find(&key)
                .unwrap_or_else(|| panic!("{name} in {text}"))
                + key.len();
            text[at..].split('"').next().unwrap().to_string()
        };
        let protocol = field("protocol");
        let ser = if protocol.starts_with("wamp.2.json") {
            Serializer::Json
        } else if protocol.starts_with("wamp.2.cbor") {
            Serializer::Cbor
        } else {
            Serializer::MsgPack
        };
        (
            Lp {
                port,
                id: field("transport"),
                ser,
            },
            protocol,
        )
    }

    fn path(&self, verb: &str) -> String {
        format!("/ws/{}/{verb}?x=42", self.id)
    }

    fn send(&self, msg: &wampring::wire::Message<'_>) {
        let answer = post(self.port, &self.path("send"), &encode(msg, self.ser));
        assert_eq!(answer.status, 204, "send: {answer:?}");
    }

    fn receive(&self) -> Answer {
        post(self.port, &self.path("receive"), b"")
    }

    /// Receives until a message comes (204s are polls that timed out).
    fn expect_message(&self) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = self.receive();
            match answer.status {
                200 => return answer.body,
                204 if Instant::now() < deadline => continue,
                _ => panic!("receive: {answer:?}"),
            }
        }
    }

    fn close(&self) -> Answer {
        post(self.port, &self.path("close"), b"")
    }
}

/// The JSON message's type code (`[code, ...`).
fn json_code(body: &[u8]) -> u64 {
    let text = std::str::from_utf8(body).unwrap();
    text.trim_start_matches('[')
        .split(',')
        .next()
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or_else(|| panic!("not a WAMP message: {text}"))
}

fn scenario(router: &RouterProcess) {
    let port = router.ws_port;

    // open + HELLO/WELCOME.
    let (lp, protocol) = Lp::open(port, "\"wamp.2.ubjson\", \"wamp.2.json\"");
    assert_eq!(protocol, "wamp.2.json");
    assert_eq!(lp.id.len(), 34);
    lp.send(&TestClient::hello_msg(REALM));
    let welcome = lp.expect_message();
    assert_eq!(
        json_code(&welcome),
        2,
        "{}",
        String::from_utf8_lossy(&welcome)
    );

    // A call from the long-poll session to a WebSocket callee.
    let mut callee = router.join("callee", TransportKind::WebSocket, Serializer::Json);
    callee.register("com.lp.add");
    lp.send(&wampring::wire::Message::Call {
        request: 1,
        options: Dict::new(),
        procedure: "com.lp.add".into(),
        payload: payload(Serializer::Json, &[u(2), u(3)], None).as_payload(),
    });
    let invocation = callee.expect_invocation();
    callee.yield_(invocation.request, &[u(5)], None);
    let result = lp.expect_message();
    assert_eq!(
        json_code(&result),
        50,
        "{}",
        String::from_utf8_lossy(&result)
    );
    assert!(
        String::from_utf8_lossy(&result).contains("[5]"),
        "{}",
        String::from_utf8_lossy(&result)
    );

    // A held receive without a message is answered 204 after the poll timeout.
    let started = Instant::now();
    let empty = lp.receive();
    assert_eq!(empty.status, 204, "{empty:?}");
    assert!(empty.body.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(POLL_TIMEOUT_MS / 2),
        "answered after {:?}",
        started.elapsed()
    );

    // At most one receive is held: a second one answers the first 204 at once and takes its
    // place (and gets the next message, an EVENT).
    lp.send(&wampring::wire::Message::Subscribe {
        request: 2,
        options: Dict::new(),
        topic: "com.lp.topic".into(),
    });
    assert_eq!(json_code(&lp.expect_message()), 33, "SUBSCRIBED");
    let first = {
        let path = lp.path("receive");
        std::thread::spawn(move || {
            let started = Instant::now();
            (post(port, &path, b""), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    let second = {
        let path = lp.path("receive");
        std::thread::spawn(move || post(port, &path, b""))
    };
    let (first, waited) = first.join().unwrap();
    assert_eq!(first.status, 204, "{first:?}");
    assert!(
        waited < Duration::from_millis(POLL_TIMEOUT_MS - 100),
        "the first receive was answered after {waited:?}, not when the second came"
    );
    std::thread::sleep(Duration::from_millis(100));
    callee.publish("com.lp.topic", Dict::new(), &[s("news")], None);
    let second = second.join().unwrap();
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(json_code(&second.body), 36, "an EVENT");

    // The long-poll session as callee: its INVOCATION comes to a held receive.
    lp.send(&wampring::wire::Message::Register {
        request: 3,
        options: Dict::new(),
        procedure: "com.lp.echo".into(),
    });
    assert_eq!(json_code(&lp.expect_message()), 65);
    let mut caller = router.join("caller", TransportKind::WebSocket, Serializer::Json);
    let call = caller.call("com.lp.echo", &[s("hi")], None);
    let invocation = lp.expect_message();
    let text = String::from_utf8_lossy(&invocation).into_owned();
    assert_eq!(json_code(&invocation), 68, "{text}");
    let invocation_id: u64 = text.split(',').nth(1).unwrap().trim().parse().unwrap();
    lp.send(&wampring::wire::Message::Yield {
        request: invocation_id,
        options: Dict::new(),
        payload: payload(Serializer::Json, &[s("hi back")], None).as_payload(),
    });
    let (args, _) = caller.expect_result(call);
    assert_eq!(args, vec![Value::from("hi back")]);

    // close: 204, then the transport is gone.
    assert_eq!(lp.close().status, 204);
    assert_eq!(lp.receive().status, 404);

    // Unknown ids, bad methods, oversized bodies, the preflight.
    let unknown = format!("/ws/{}/receive", "00".repeat(17));
    assert_eq!(post(port, &unknown, b"").status, 404);
    assert_eq!(post(port, "/ws/nonsense/receive", b"").status, 404);
    assert_eq!(request(port, "GET", "/ws/open", "", b"").status, 405);
    let big = request(
        port,
        "POST",
        &lp.path("send"),
        &format!("X-Pad: {}\r\n", "a".repeat(10)),
        &vec![b' '; MAX_MESSAGE_SIZE + 1],
    );
    assert_eq!(big.status, 413, "{big:?}");
    let huge_head = request(
        port,
        "POST",
        "/ws/open",
        &format!("X-Pad: {}\r\n", "a".repeat(9000)),
        b"",
    );
    assert_eq!(huge_head.status, 431, "{huge_head:?}");
    let preflight = request(
        port,
        "OPTIONS",
        "/ws/open",
        "Origin: http://app.example\r\nAccess-Control-Request-Method: POST\r\n",
        b"",
    );
    assert_eq!(preflight.status, 204);
    assert!(preflight
        .head
        .contains("Access-Control-Allow-Origin: http://app.example\r\n"));
    assert!(preflight
        .head
        .contains("Access-Control-Allow-Credentials: true\r\n"));
    // The WebSocket path itself still answers 426 to a plain GET.
    assert_eq!(request(port, "GET", "/ws", "", b"").status, 426);

    // MsgPack unbatched: binary bodies, one message each.
    let (packed, protocol) = Lp::open(port, "\"wamp.2.msgpack\"");
    assert_eq!(protocol, "wamp.2.msgpack");
    packed.send(&TestClient::hello_msg(REALM));
    let welcome = packed.expect_message();
    assert_eq!(&welcome[..2], &[0x93, 2], "a MsgPack WELCOME: {welcome:?}");
    assert_eq!(packed.close().status, 204);

    // CBOR batched: length prefixes, as for MsgPack.
    let (cbor, protocol) = Lp::open(port, "\"wamp.2.cbor.batched\"");
    assert_eq!(protocol, "wamp.2.cbor.batched");
    let hello = encode(&TestClient::hello_msg(REALM), Serializer::Cbor);
    let mut body = (hello.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(&hello);
    assert_eq!(post(port, &cbor.path("send"), &body).status, 204);
    let welcome = cbor.expect_message();
    assert_eq!(
        &welcome[4..6],
        &[0x83, 2],
        "a CBOR WELCOME in a batch: {welcome:?}"
    );
    assert_eq!(cbor.close().status, 204);

    // A batched protocol: MsgPack bodies with length prefixes.
    let (batched, protocol) = Lp::open(port, "\"wamp.2.msgpack.batched\"");
    assert_eq!(protocol, "wamp.2.msgpack.batched");
    let hello = encode(&TestClient::hello_msg(REALM), Serializer::MsgPack);
    let mut body = (hello.len() as u32).to_be_bytes().to_vec();
    body.extend_from_slice(&hello);
    assert_eq!(post(port, &batched.path("send"), &body).status, 204);
    let answer = batched.expect_message();
    let len = u32::from_be_bytes([answer[0], answer[1], answer[2], answer[3]]) as usize;
    assert_eq!(answer.len(), 4 + len, "one message in the batch");
    assert_eq!(answer[4], 0x93, "WELCOME is a 3-element array");
    assert_eq!(answer[5], 2, "WELCOME");
    // A malformed batch fails the transport.
    assert_eq!(
        post(port, &batched.path("send"), &[0, 0, 0, 9, 1]).status,
        400
    );
    assert_eq!(batched.receive().status, 404);

    // Session timeout: a transport nobody polls is closed and its session ended.
    let (idle, _) = Lp::open(port, "\"wamp.2.json\"");
    idle.send(&TestClient::hello_msg(REALM));
    let welcome = idle.expect_message();
    assert_eq!(json_code(&welcome), 2);
    let session: u64 = String::from_utf8_lossy(&welcome)
        .split(',')
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let closed_line = format!("session {session} closed on shard");
    assert!(!router.log().contains(&closed_line));
    std::thread::sleep(Duration::from_millis(SESSION_TIMEOUT_MS + 1000));
    assert!(
        router.log().contains(&closed_line),
        "the idle transport's session did not end:\n{}",
        router.log()
    );
    assert_eq!(idle.receive().status, 404);

    // The WebSocket sessions are unharmed.
    let _ = caller.call("com.lp.add", &[u(1), u(1)], None);
    let invocation = callee.expect_invocation();
    callee.yield_(invocation.request, &[u(2)], None);
}

#[test]
fn longpoll_one_shard() {
    let mut router = start(&["--cores", "1"]);
    scenario(&router);
    router.assert_alive();
    assert!(!router.log().contains(HANDED_LINE));
}

#[test]
fn longpoll_two_shards_round_robin() {
    let mut router = start(&["--cores", "2", "--placement", "round-robin"]);
    scenario(&router);
    router.assert_alive();
    // Consecutive connections alternate shards: about half of each transport's requests came
    // in on the other shard and were handed over.
    assert!(
        router.log().contains(HANDED_LINE),
        "no request was handed to its transport's shard:\n{}",
        router.log()
    );
}

#[test]
fn longpoll_two_shards_kernel() {
    let mut router = start(&["--cores", "2", "--placement", "kernel"]);
    scenario(&router);
    router.assert_alive();
}

/// A router stop tells a long-poll session GOODBYE `wamp.close.system_shutdown` through its held
/// `receive`, and still exits 0 in time.
fn shutdown_scenario(args: &[&str]) {
    let mut router = start(args);
    let port = router.ws_port;
    let (lp, _) = Lp::open(port, "\"wamp.2.json\"");
    lp.send(&TestClient::hello_msg(REALM));
    assert_eq!(json_code(&lp.expect_message()), 2);
    let held = {
        let path = lp.path("receive");
        std::thread::spawn(move || post(port, &path, b""))
    };
    std::thread::sleep(Duration::from_millis(200));
    let status = router.terminate(Duration::from_secs(5));
    assert!(
        matches!(status, Some(s) if s.success()),
        "the router did not exit 0 in time: {status:?}\n{}",
        router.log()
    );
    let answer = held.join().unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    let text = String::from_utf8_lossy(&answer.body).into_owned();
    assert_eq!(json_code(&answer.body), 6, "GOODBYE: {text}");
    assert!(text.contains("wamp.close.system_shutdown"), "{text}");
}

#[test]
fn longpoll_shutdown_says_goodbye() {
    shutdown_scenario(&["--cores", "1"]);
}

#[test]
fn longpoll_shutdown_says_goodbye_two_shards() {
    shutdown_scenario(&["--cores", "2", "--placement", "round-robin"]);
}

/// One request on a kept-alive connection; reads exactly its answer (Content-Length, or none
/// for 204).
fn keep_alive_request(stream: &mut TcpStream, path: &str, body: &[u8]) -> Answer {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://app.example\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        stream
            .read_exact(&mut byte)
            .unwrap_or_else(|e| panic!("{path}: reading the head: {e} after {raw:?}"));
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    Answer { status, head, body }
}

/// Browsers keep the connection: HELLO, WELCOME, GOODBYE and close on ONE connection, each
/// answer with the CORS headers, after `open` on another one. At 2 shards (round-robin) the two
/// connections land on different shards: the first request on the second is handed, with its
/// socket, to the transport's shard, which then serves the rest of that connection.
fn keep_alive_scenario(args: &[&str]) {
    let router = start(args);
    let port = router.ws_port;
    let connect = || {
        let stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        stream
    };
    for _ in 0..2 {
        let mut first = connect();
        let open = keep_alive_request(
            &mut first,
            "/ws/open",
            b"{\"protocols\": [\"wamp.2.json\"]}",
        );
        assert_eq!(open.status, 200, "{open:?}");
        assert!(open
            .head
            .contains("Access-Control-Allow-Origin: http://app.example\r\n"));
        let text = String::from_utf8(open.body).unwrap();
        let id = text
            .split("\"transport\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let mut stream = connect();
        let hello = encode(&TestClient::hello_msg(REALM), Serializer::Json);
        let sent = keep_alive_request(&mut stream, &format!("/ws/{id}/send"), &hello);
        assert_eq!(sent.status, 204, "{sent:?}");
        let welcome = keep_alive_request(&mut stream, &format!("/ws/{id}/receive"), b"");
        assert_eq!(welcome.status, 200, "{welcome:?}");
        assert_eq!(json_code(&welcome.body), 2);
        assert!(welcome
            .head
            .contains("Access-Control-Allow-Credentials: true\r\n"));
        let goodbye = br#"[6,{},"wamp.close.close_realm"]"#;
        let sent = keep_alive_request(&mut stream, &format!("/ws/{id}/send"), goodbye);
        assert_eq!(sent.status, 204);
        let reply = keep_alive_request(&mut stream, &format!("/ws/{id}/receive"), b"");
        assert_eq!(json_code(&reply.body), 6, "GOODBYE answered: {reply:?}");
        let closed = keep_alive_request(&mut stream, &format!("/ws/{id}/close"), b"");
        assert_eq!(closed.status, 204);
        // The first connection is still served too.
        let gone = keep_alive_request(&mut first, &format!("/ws/{id}/receive"), b"");
        assert_eq!(gone.status, 404);
    }
    if args.contains(&"round-robin") {
        assert!(router.log().contains(HANDED_LINE), "{}", router.log());
    }
}

#[test]
fn longpoll_keep_alive() {
    keep_alive_scenario(&["--cores", "1"]);
}

#[test]
fn longpoll_keep_alive_two_shards() {
    keep_alive_scenario(&["--cores", "2", "--placement", "round-robin"]);
}
