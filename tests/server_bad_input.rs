//! Bad input over real sockets: broken transport handshakes, broken frames, oversize and
//! invalid messages, protocol violations. Each test checks the reply the spec names (HTTP
//! status, RawSocket error handshake, WebSocket close code, ABORT
//! `wamp.error.protocol_violation`) and that a well-behaved callee/caller pair joined before the
//! bad input (the "witness", tests/common) still completes a call afterwards, and that the
//! router process is still alive.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

use common::*;
use wampring::net::TransportKind;
use wampring::wire::{code, Dict, Serializer, Value};

const HELLO_JSON: &[u8] = br#"[1,"realm1",{"roles":{"caller":{},"callee":{}}}]"#;

/// After bad input: the witness still works and the router still runs.
fn survived(router: &mut RouterProcess, witness: &mut Witness, what: &str) {
    witness.check(&format!("after {what}"));
    router.assert_alive();
}

/// `log` has the line `needle` at least once and at most a few times (one per 10 s interval)
/// for `causes` occurrences of its cause.
fn assert_rate_limited(log: &str, needle: &str, causes: usize) {
    let lines = log.matches(needle).count();
    assert!(
        (1..=3).contains(&lines),
        "{needle:?}: {lines} log lines for {causes} occurrences, want 1 per 10 s:\n{log}"
    );
}

fn expect_tcp_end(stream: &mut std::net::TcpStream, what: &str) {
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    assert!(
        wait_eof(stream, deadline),
        "{what}: the router kept the connection open for {IO_TIMEOUT:?}"
    );
}

// ---- transport handshakes ---------------------------------------------------------------------

#[test]
fn ws_garbage_before_handshake_gets_400_and_close() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    let mut s = raw_tcp(router.ws_addr());
    s.write_all(b"\x16\x03\x01 this is not HTTP at all \x00\xff\r\n\r\n")
        .unwrap();
    let (head, _) =
        read_http_head(&mut s).unwrap_or_else(|e| panic!("garbage on the WebSocket port: {e}"));
    assert_eq!(
        http_status(&head).0,
        400,
        "garbage on the WebSocket port: {head}"
    );
    expect_tcp_end(&mut s, "garbage on the WebSocket port");
    survived(&mut router, &mut witness, "garbage on the WebSocket port");
}

#[test]
fn rawsocket_garbage_before_handshake_closes() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    let mut s = raw_tcp(router.raw_addr());
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    expect_tcp_end(&mut s, "HTTP on the RawSocket port");
    survived(&mut router, &mut witness, "garbage on the RawSocket port");
}

#[test]
fn ws_plain_http_request_is_refused() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    let mut s = raw_tcp(router.ws_addr());
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: */*\r\n\r\n",
        router.ws_port
    );
    s.write_all(req.as_bytes()).unwrap();
    let (head, _) = read_http_head(&mut s).unwrap_or_else(|e| panic!("plain HTTP GET: {e}"));
    let (status, reason) = http_status(&head);
    assert!(
        status == 400 || status == 426,
        "plain HTTP GET: expected 400 or 426, got {head}"
    );
    assert!(
        !reason.is_empty(),
        "plain HTTP GET: the status line has no reason phrase: {head}"
    );
    expect_tcp_end(&mut s, "plain HTTP GET");
    survived(&mut router, &mut witness, "a plain HTTP request");
}

#[test]
fn ws_wrong_subprotocol_gets_400() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    for proto in [Some("wamp.2.ubjson"), Some("chat, superchat"), None] {
        let mut s = raw_tcp(router.ws_addr());
        s.write_all(ws_upgrade_request(router.ws_port, proto).as_bytes())
            .unwrap();
        let (head, _) =
            read_http_head(&mut s).unwrap_or_else(|e| panic!("subprotocol {proto:?}: {e}"));
        assert_eq!(http_status(&head).0, 400, "subprotocol {proto:?}: {head}");
        expect_tcp_end(&mut s, "wrong subprotocol");
    }
    survived(&mut router, &mut witness, "wrong subprotocols");
}

#[test]
fn rawsocket_valid_handshake_announces_limit() {
    let mut router = RouterProcess::default_start();
    for (ser, nibble) in [(Serializer::Json, 1u8), (Serializer::MsgPack, 2u8)] {
        let mut s = raw_tcp(router.raw_addr());
        s.write_all(&[0x7F, 0xF0 | nibble, 0, 0]).unwrap();
        let reply =
            read_exact_timeout(&mut s, 4).unwrap_or_else(|e| panic!("{ser} handshake: {e}"));
        // max_message_size 65536 = 2^(9+7).
        assert_eq!(
            reply,
            vec![0x7F, 0x70 | nibble, 0, 0],
            "{ser} handshake reply"
        );
    }
    router.assert_alive();
}

#[test]
fn rawsocket_reserved_bits_get_error_0x30() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    for hs in [[0x7F, 0xF1, 0x01, 0x00], [0x7F, 0xF2, 0x00, 0x80]] {
        let mut s = raw_tcp(router.raw_addr());
        s.write_all(&hs).unwrap();
        let reply =
            read_exact_timeout(&mut s, 4).unwrap_or_else(|e| panic!("handshake {hs:02x?}: {e}"));
        assert_eq!(reply, vec![0x7F, 0x30, 0, 0], "handshake {hs:02x?}: reply");
        expect_tcp_end(&mut s, "reserved bits");
    }
    survived(
        &mut router,
        &mut witness,
        "a RawSocket handshake with reserved bits",
    );
}

#[test]
fn rawsocket_unsupported_serializer_gets_error_0x10() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    // 4 = UBJSON, 0 = illegal, 15 = reserved.
    for ser in [4u8, 0, 15] {
        let mut s = raw_tcp(router.raw_addr());
        s.write_all(&[0x7F, 0xF0 | ser, 0, 0]).unwrap();
        let reply =
            read_exact_timeout(&mut s, 4).unwrap_or_else(|e| panic!("serializer {ser}: {e}"));
        assert_eq!(reply, vec![0x7F, 0x10, 0, 0], "serializer {ser}: reply");
        expect_tcp_end(&mut s, "unsupported serializer");
    }
    survived(
        &mut router,
        &mut witness,
        "an unsupported RawSocket serializer",
    );
}

// ---- truncated input --------------------------------------------------------------------------

#[test]
fn truncated_input_then_disconnect() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);

    // Half an HTTP upgrade request.
    let mut s = raw_tcp(router.ws_addr());
    let req = ws_upgrade_request(router.ws_port, Some("wamp.2.json"));
    s.write_all(&req.as_bytes()[..req.len() / 2]).unwrap();
    drop(s);
    survived(&mut router, &mut witness, "half an HTTP upgrade");

    // Half a RawSocket handshake.
    let mut s = raw_tcp(router.raw_addr());
    s.write_all(&[0x7F, 0xF1]).unwrap();
    drop(s);
    survived(&mut router, &mut witness, "half a RawSocket handshake");

    // Half a WebSocket frame after a joined session.
    let mut ws = RawWs::connect(router.ws_port, "wamp.2.json");
    ws.send_frame(true, 0x1, HELLO_JSON).unwrap();
    ws.read_frame().expect("WELCOME");
    let frame = RawWs::frame(
        true,
        0x1,
        br#"[48,1,{},"com.witness.echo",["never completed"]]"#,
    );
    ws.write(&frame[..frame.len() / 2]).unwrap();
    let _ = ws.stream.shutdown(Shutdown::Both);
    drop(ws);
    survived(&mut router, &mut witness, "half a WebSocket frame");

    // Half a RawSocket frame after a joined session.
    let mut s = raw_tcp(router.raw_addr());
    s.write_all(&[0x7F, 0xF1, 0, 0]).unwrap();
    read_exact_timeout(&mut s, 4).expect("RawSocket handshake reply");
    let mut frame = vec![0u8, 0, 0, HELLO_JSON.len() as u8];
    frame.extend_from_slice(HELLO_JSON);
    s.write_all(&frame).unwrap();
    let hdr = read_exact_timeout(&mut s, 4).expect("WELCOME frame header");
    let len = u32::from_be_bytes([0, hdr[1], hdr[2], hdr[3]]) as usize;
    read_exact_timeout(&mut s, len).expect("WELCOME frame body");
    s.write_all(&[0, 0, 0, 100]).unwrap(); // header promising 100 bytes
    s.write_all(b"[48,1,{},").unwrap();
    drop(s);
    survived(&mut router, &mut witness, "half a RawSocket frame");
}

#[test]
fn ws_truncated_frame_left_pending_does_not_block_others() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    let mut ws = RawWs::connect(router.ws_port, "wamp.2.json");
    ws.send_frame(true, 0x1, HELLO_JSON).unwrap();
    ws.read_frame().expect("WELCOME");
    let frame = RawWs::frame(true, 0x1, br#"[48,1,{},"com.witness.echo",["pending"]]"#);
    ws.write(&frame[..7]).unwrap();
    // The half frame is just pending: others are served meanwhile.
    for n in 0..3 {
        witness.check(&format!("while a frame is pending ({n})"));
        std::thread::sleep(Duration::from_millis(200));
    }
    // Completing the frame later delivers it as a normal CALL to the witness callee.
    ws.write(&frame[7..]).unwrap();
    let inv = witness.callee.expect_invocation();
    assert_payload(
        "INVOCATION from the completed frame",
        &inv.payload,
        &[s("pending")],
        None,
    );
    witness.callee.yield_(inv.request, &[s("done")], None);
    let res = ws.read_frame().expect("RESULT for the completed frame");
    let text = String::from_utf8_lossy(&res.payload).to_string();
    assert!(
        text.starts_with("[50,1,"),
        "expected RESULT for request 1, got {text}"
    );
    survived(&mut router, &mut witness, "a pending half frame");
}

// ---- oversize ---------------------------------------------------------------------------------

fn big_call_json(size: usize) -> Vec<u8> {
    let pad = "x".repeat(size);
    format!(r#"[48,1,{{}},"com.witness.echo",["{pad}"]]"#).into_bytes()
}

#[test]
fn ws_message_in_more_fragments_than_allowed_gets_close_1009() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    // The default bound is 4096 fragments: 4096 one-byte fragments still make a message...
    let call = br#"[48,1,{},"com.witness.echo",["fragments"]]"#;
    let mut ws = RawWs::connect(router.ws_port, "wamp.2.json");
    ws.send_frame(true, 0x1, HELLO_JSON).unwrap();
    ws.read_frame().expect("WELCOME");
    let mut padded = call.to_vec();
    padded.splice(1..1, std::iter::repeat_n(b' ', 4096 - call.len()));
    let mut stream = Vec::new();
    for (i, byte) in padded.iter().enumerate() {
        let opcode = if i == 0 { 0x1 } else { 0x0 };
        stream.extend_from_slice(&RawWs::frame(i == padded.len() - 1, opcode, &[*byte]));
    }
    ws.write(&stream).unwrap();
    let inv = witness.callee.expect_invocation();
    witness.callee.yield_(inv.request, &[s("ok")], None);
    let res = ws
        .read_frame()
        .expect("RESULT for the 4096-fragment message");
    assert!(String::from_utf8_lossy(&res.payload).starts_with("[50,1,"));

    // ... one more fragment is refused like an oversized message, on its arrival.
    let mut ws = RawWs::connect(router.ws_port, "wamp.2.json");
    ws.send_frame(true, 0x1, HELLO_JSON).unwrap();
    ws.read_frame().expect("WELCOME");
    let mut stream = Vec::new();
    for i in 0..4097 {
        let opcode = if i == 0 { 0x1 } else { 0x0 };
        stream.extend_from_slice(&RawWs::frame(false, opcode, b" "));
    }
    let _ = ws.write(&stream);
    assert_eq!(
        ws.expect_close_frame(),
        Some(1009),
        "too many fragments: close code"
    );
    ws.expect_eof();
    survived(&mut router, &mut witness, "a message in too many fragments");
}

#[test]
fn ws_oversize_message_gets_close_1009() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);

    // One frame.
    let mut ws = RawWs::connect(router.ws_port, "wamp.2.json");
    ws.send_frame(true, 0x1, HELLO_JSON).unwrap();
    ws.read_frame().expect("WELCOME");
    let _ = ws.send_frame(true, 0x1, &big_call_json(MAX_MESSAGE_SIZE + 1000));
    assert_eq!(
        ws.expect_close_frame(),
        Some(1009),
        "oversize frame: close code"
    );
    ws.expect_eof();
    survived(&mut router, &mut witness, "an oversize WebSocket frame");

    // Fragments that add up past the limit.
    let mut ws = RawWs::connect(router.ws_port, "wamp.2.json");
    ws.send_frame(true, 0x1, HELLO_JSON).unwrap();
    ws.read_frame().expect("WELCOME");
    let msg = big_call_json(MAX_MESSAGE_SIZE + 1000);
    let (a, b) = msg.split_at(msg.len() / 2);
    let _ = ws.send_frame(false, 0x1, a);
    let _ = ws.send_frame(true, 0x0, b);
    assert_eq!(
        ws.expect_close_frame(),
        Some(1009),
        "oversize fragmented message: close code"
    );
    ws.expect_eof();
    survived(
        &mut router,
        &mut witness,
        "an oversize fragmented WebSocket message",
    );

    // Exactly at the limit is fine: the call goes through to the witness callee.
    let mut c = TestClient::connect(TransportKind::WebSocket, Serializer::Json, router.ws_addr());
    c.hello(REALM);
    let overhead = big_call_json(0).len();
    let msg = big_call_json(MAX_MESSAGE_SIZE - overhead);
    assert_eq!(msg.len(), MAX_MESSAGE_SIZE);
    c.send_raw(&msg);
    let inv = witness.callee.expect_invocation();
    witness.callee.yield_(inv.request, &[], None);
    c.expect_result(1);
    survived(
        &mut router,
        &mut witness,
        "a message of exactly max_message_size",
    );
}

#[test]
fn rawsocket_oversize_message_closes() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    let mut s = raw_tcp(router.raw_addr());
    s.write_all(&[0x7F, 0xF1, 0, 0]).unwrap();
    read_exact_timeout(&mut s, 4).expect("RawSocket handshake reply");
    let mut frame = vec![0u8, 0, 0, HELLO_JSON.len() as u8];
    frame.extend_from_slice(HELLO_JSON);
    s.write_all(&frame).unwrap();
    let hdr = read_exact_timeout(&mut s, 4).expect("WELCOME frame header");
    let len = u32::from_be_bytes([0, hdr[1], hdr[2], hdr[3]]) as usize;
    read_exact_timeout(&mut s, len).expect("WELCOME frame body");
    let body = big_call_json(MAX_MESSAGE_SIZE + 1000);
    let n = body.len() as u32;
    let mut frame = vec![0u8, (n >> 16) as u8, (n >> 8) as u8, n as u8];
    frame.extend_from_slice(&body);
    let _ = s.write_all(&frame); // the router may close before reading it all
    expect_tcp_end(&mut s, "oversize RawSocket message");
    survived(&mut router, &mut witness, "an oversize RawSocket message");
}

#[test]
fn ws_invalid_utf8_text_frame_gets_close_1007() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    let mut ws = RawWs::connect(router.ws_port, "wamp.2.json");
    ws.send_frame(true, 0x1, HELLO_JSON).unwrap();
    ws.read_frame().expect("WELCOME");
    ws.send_frame(
        true,
        0x1,
        b"[48,1,{},\"com.witness.echo\",[\"\xff\xfe\xc3\"]]",
    )
    .unwrap();
    assert_eq!(
        ws.expect_close_frame(),
        Some(1007),
        "invalid UTF-8 text frame: close code"
    );
    ws.expect_eof();
    survived(&mut router, &mut witness, "invalid UTF-8 in a text frame");
}

// ---- protocol violations (every transport x serializer) ---------------------------------------

/// Runs `bad` on a fresh connection per combination and expects ABORT
/// `wamp.error.protocol_violation`, then the transport closing.
fn expect_violation(what: &str, joined_first: bool, bad: impl Fn(&mut TestClient)) {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    for (k, ser) in COMBOS {
        let mut c = TestClient::connect(k, ser, router.addr(k));
        c.name = format!("{what} over {k:?}/{ser}");
        if joined_first {
            c.hello(REALM);
        }
        bad(&mut c);
        let reason = c.expect_abort();
        assert_eq!(
            reason, "wamp.error.protocol_violation",
            "{}: ABORT reason",
            c.name
        );
        c.expect_closed();
        survived(
            &mut router,
            &mut witness,
            &format!("{what} over {k:?}/{ser}"),
        );
    }
}

#[test]
fn message_before_hello_is_a_protocol_violation() {
    expect_violation("CALL before HELLO", false, |c| {
        c.call(WITNESS_PROCEDURE, &[u(1)], None);
    });
}

#[test]
fn goodbye_before_hello_is_a_protocol_violation() {
    expect_violation("GOODBYE before HELLO", false, |c| c.goodbye());
}

#[test]
fn second_hello_is_a_protocol_violation() {
    expect_violation("second HELLO", true, |c| {
        c.send(&TestClient::hello_msg(REALM));
    });
}

#[test]
fn protocol_violation_drops_the_sessions_registrations() {
    let mut router = RouterProcess::default_start();
    let mut witness = Witness::new(&router);
    let mut bad = router.join("bad", TransportKind::RawSocket, Serializer::Json);
    bad.register("com.bad.proc");
    bad.subscribe("com.bad.topic");
    bad.send(&TestClient::hello_msg(REALM));
    assert_eq!(bad.expect_abort(), "wamp.error.protocol_violation");
    bad.expect_closed();
    let req = witness.caller.call("com.bad.proc", &[], None);
    witness
        .caller
        .expect_error_uri(code::CALL, req, "wamp.error.no_such_procedure");
    survived(&mut router, &mut witness, "a violation by a callee");
}

fn per_ser(
    json: &'static [u8],
    msgpack: &'static [u8],
    cbor: &'static [u8],
) -> impl Fn(&mut TestClient) {
    move |c: &mut TestClient| match c.ser {
        Serializer::Json => c.send_raw(json),
        Serializer::MsgPack => c.send_raw(msgpack),
        Serializer::Cbor => c.send_raw(cbor),
    }
}

#[test]
fn unknown_message_type_is_a_protocol_violation() {
    // [99, 1, {}]
    expect_violation(
        "unknown type 99",
        true,
        per_ser(
            b"[99,1,{}]",
            &[0x93, 0x63, 0x01, 0x80],
            &[0x83, 0x18, 0x63, 0x01, 0xA0],
        ),
    );
}

#[test]
fn unassigned_type_code_7_is_a_protocol_violation() {
    // [7, {}, "wamp.close.x"] (7 is unassigned)
    expect_violation(
        "unassigned type 7",
        true,
        per_ser(
            br#"[7,{},"wamp.close.x"]"#,
            &[
                0x93, 0x07, 0x80, 0xAC, b'w', b'a', b'm', b'p', b'.', b'c', b'l', b'o', b's', b'e',
                b'.', b'x',
            ],
            &[
                0x83, 0x07, 0xA0, 0x6C, b'w', b'a', b'm', b'p', b'.', b'c', b'l', b'o', b's', b'e',
                b'.', b'x',
            ],
        ),
    );
}

#[test]
fn non_array_message_is_a_protocol_violation() {
    // {"a": 1}
    expect_violation(
        "a non-array message",
        true,
        per_ser(
            br#"{"a":1}"#,
            &[0x81, 0xA1, b'a', 0x01],
            &[0xA1, 0x61, b'a', 0x01],
        ),
    );
}

#[test]
fn empty_array_is_a_protocol_violation() {
    expect_violation("an empty array", true, per_ser(b"[]", &[0x90], &[0x80]));
}

#[test]
fn undecodable_message_is_a_protocol_violation() {
    // Truncated array: JSON text cut short; MessagePack and CBOR array headers promising 3
    // elements, 1 given.
    expect_violation(
        "an undecodable message",
        true,
        per_ser(b"[48,1,{},", &[0x93, 0x30], &[0x83, 0x18, 0x30]),
    );
}

#[test]
fn wrong_arity_is_a_protocol_violation() {
    // CALL without a procedure: [48, 1, {}]
    expect_violation(
        "CALL without procedure",
        true,
        per_ser(
            b"[48,1,{}]",
            &[0x93, 0x30, 0x01, 0x80],
            &[0x83, 0x18, 0x30, 0x01, 0xA0],
        ),
    );
}

// ---- clients that say nothing ----------------------------------------------------------------

/// Connections that finish the transport handshake and then say nothing are closed at their
/// HELLO deadline (WebSocket close 1008, RawSocket: the connection ends), counted and logged
/// without one line each, so they cannot hold the connection limit: while they are open a new
/// client is refused (HTTP 503), once their deadline passed a new client joins.
#[test]
fn silent_connections_are_closed_at_the_hello_deadline_and_free_their_slots() {
    let mut router = RouterProcess::start(
        "[limits]\nhello_timeout_ms = 1000\nmax_connections_per_shard = 12\n",
        &["--cores", "1"],
    );
    let mut witness = Witness::new(&router);
    let port = router.ws_addr().port();
    let mut silent_ws: Vec<RawWs> = (0..5)
        .map(|_| RawWs::connect(port, "wamp.2.json"))
        .collect();
    let mut silent_raw: Vec<std::net::TcpStream> = (0..5)
        .map(|_| {
            let mut s = raw_tcp(router.raw_addr());
            s.write_all(&[0x7F, 0xF1, 0, 0]).unwrap();
            read_exact_timeout(&mut s, 4).expect("RawSocket handshake reply");
            s
        })
        .collect();
    // 2 witness + 10 silent connections: the shard is full.
    let mut refused = raw_tcp(router.ws_addr());
    refused
        .write_all(ws_upgrade_request(port, Some("wamp.2.json")).as_bytes())
        .unwrap();
    let (head, _) = read_http_head(&mut refused).expect("an HTTP answer");
    assert_eq!(http_status(&head).0, 503, "{head}");
    drop(refused);

    for ws in &mut silent_ws {
        assert_eq!(ws.expect_close_frame(), Some(1008), "WebSocket close code");
        ws.expect_eof();
    }
    for s in &mut silent_raw {
        expect_tcp_end(s, "silent RawSocket");
    }
    drop(silent_ws);
    drop(silent_raw);
    // The slots are free once the router has seen each connection end (bounded wait).
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    loop {
        let mut probe = raw_tcp(router.ws_addr());
        probe
            .write_all(ws_upgrade_request(port, Some("wamp.2.json")).as_bytes())
            .unwrap();
        let (head, _) = read_http_head(&mut probe).expect("an HTTP answer");
        match http_status(&head).0 {
            101 => break,
            503 if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            code => panic!("slots not freed after the HELLO deadline: HTTP {code}"),
        }
    }
    let mut late = router.join("late", TransportKind::WebSocket, Serializer::Json);
    late.goodbye();
    survived(&mut router, &mut witness, "silent connections");
    let log = router.log();
    let lines = log.matches("sent no HELLO").count();
    assert!(
        (1..10).contains(&lines),
        "one rate-limited line, not one per connection: {lines}"
    );
}

/// Floods of PUBLISHes the router cannot route (a NaN for a JSON subscriber, an invalid topic,
/// a `wamp.` topic) write a few rate-limited lines, not one per message; nothing reaches the
/// subscriber but what it can receive, and the sessions stay usable.
#[test]
fn publish_floods_write_one_log_line_per_cause_not_one_per_message() {
    const FLOOD: usize = 3_000;
    let mut router = RouterProcess::start("", &["--cores", "1"]);
    let mut witness = Witness::new(&router);
    let mut subscriber = router.join(
        "json subscriber",
        TransportKind::WebSocket,
        Serializer::Json,
    );
    let subscription = subscriber.subscribe("com.flood");
    let mut publisher = router.join(
        "msgpack publisher",
        TransportKind::RawSocket,
        Serializer::MsgPack,
    );
    for _ in 0..FLOOD {
        publisher.publish("com.flood", Dict::new(), &[Value::Float(f64::NAN)], None);
        publisher.publish("com..flood", Dict::new(), &[Value::UInt(1)], None);
        publisher.publish("wamp.session.on_join", Dict::new(), &[Value::UInt(1)], None);
    }
    // In order behind the flood: the first event the subscriber sees is this one.
    let mut ack = Dict::new();
    ack.insert("acknowledge", Value::Bool(true));
    let request = publisher.publish("com.flood", ack, &[Value::UInt(7)], None);
    publisher.expect_published(request);
    let event = subscriber.expect_event();
    assert_eq!(event.subscription, subscription);
    assert_eq!(event.payload.0, vec![Value::UInt(7)]);
    survived(&mut router, &mut witness, "publish floods");

    let log = router.log();
    for needle in [
        "EVENT not delivered",
        "PUBLISH dropped: invalid topic URI",
        "PUBLISH dropped: publish to \"wamp.session.on_join\"",
    ] {
        assert_rate_limited(&log, needle, FLOOD);
    }
}

/// Many clients with a HELLO the router refuses, or with garbage after joining, each get their
/// ABORT; the log gets a few rate-limited lines, not one per client.
#[test]
fn refused_hellos_and_protocol_violations_are_logged_rate_limited() {
    const CLIENTS: usize = 100;
    let mut router = RouterProcess::start("", &["--cores", "1"]);
    let mut witness = Witness::new(&router);
    for _ in 0..CLIENTS {
        let mut client = TestClient::connect(
            TransportKind::RawSocket,
            Serializer::Json,
            router.raw_addr(),
        );
        assert_eq!(client.hello_reply("com.no.such.realm").code(), code::ABORT);
    }
    for _ in 0..CLIENTS {
        let mut client = router.join("violator", TransportKind::RawSocket, Serializer::Json);
        client.send_raw(b"[999]");
        assert_eq!(client.recv().code(), code::ABORT);
    }
    survived(&mut router, &mut witness, "refused HELLOs and violations");
    let log = router.log();
    for needle in ["HELLO rejected", "protocol violation"] {
        assert_rate_limited(&log, needle, CLIENTS);
    }
}
