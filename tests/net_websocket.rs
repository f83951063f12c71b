//! WebSocket transport tests: the upgrade (every status we answer), the frame rules of RFC 6455
//! (masking, lengths, fragmentation, control frames, close handshake, size and UTF-8 limits),
//! server and client talking to each other in memory, and split-point invariance.

use bytes::BytesMut;
use wampring::net::websocket::{
    self, accept_key, decode_frame_header, opcode, parse_echo_upgrade_request,
    parse_upgrade_request, EchoUpgradeOutcome, UpgradeOutcome,
};
use wampring::net::{
    ClientConn, ConnEvent, SendError, Serializer, ServerConn, TransportConfig, TransportKind,
};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn config() -> TransportConfig {
    TransportConfig {
        max_message_size: 1024 * 1024,
        ..TransportConfig::default()
    }
}

fn request_with(protocol: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
    )
}

fn json_request() -> String {
    request_with("wamp.2.json")
}

/// A masked client frame as a browser would send it.
fn client_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; websocket::MAX_FRAME_HEADER_LEN];
    let n = websocket::encode_frame_header(&mut header, fin, op, payload.len() as u64, Some(MASK));
    let mut out = header[..n].to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    websocket::apply_mask(&mut out[start..], MASK);
    out
}

fn unmasked_frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; websocket::MAX_FRAME_HEADER_LEN];
    let n = websocket::encode_frame_header(&mut header, fin, op, payload.len() as u64, None);
    let mut out = header[..n].to_vec();
    out.extend_from_slice(payload);
    out
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

fn drain(events: &mut Vec<ConnEvent>, conn: &mut ServerConn) {
    while let Some(ev) = conn.poll_event() {
        events.push(ev);
    }
}

/// A server that completed the JSON upgrade; its 101 is already consumed from the output.
fn open_server(serializer: Serializer) -> ServerConn {
    let mut server = ServerConn::new(TransportKind::WebSocket, &config());
    server.receive(request_with(serializer.ws_subprotocol()).as_bytes());
    assert_eq!(server.poll_event(), Some(ConnEvent::Opened { serializer }));
    let n = server.output().len();
    server.consume_output(n);
    server
}

/// Decodes the unmasked frames a server wrote: (fin, opcode, payload).
fn server_frames(mut bytes: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let h = decode_frame_header(bytes)
            .unwrap()
            .expect("complete header");
        assert!(h.mask.is_none(), "server frames are never masked");
        let end = h.header_len + h.payload_len as usize;
        frames.push((h.fin, h.opcode, bytes[h.header_len..end].to_vec()));
        bytes = &bytes[end..];
    }
    frames
}

/// Feeds `input` to a fresh open JSON server and returns (events, close code the server sent).
fn feed_open(serializer: Serializer, input: &[u8]) -> (Vec<ConnEvent>, ServerConn) {
    let mut server = open_server(serializer);
    server.receive(input);
    let mut events = Vec::new();
    drain(&mut events, &mut server);
    (events, server)
}

fn sent_close_code(server: &ServerConn) -> Option<u16> {
    server_frames(server.output())
        .into_iter()
        .find(|(_, op, _)| *op == opcode::CLOSE)
        .map(|(_, _, p)| {
            if p.len() >= 2 {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                1005
            }
        })
}

fn assert_fails_with(serializer: Serializer, input: &[u8], code: u16) {
    let (events, server) = feed_open(serializer, input);
    assert!(
        matches!(events.last(), Some(ConnEvent::Closed { .. })),
        "expected Closed, got {events:?}"
    );
    assert_eq!(sent_close_code(&server), Some(code), "events {events:?}");
    assert!(server.wants_close());
}

fn response_of(request: &str, config: &TransportConfig) -> (u16, String) {
    match parse_upgrade_request(request.as_bytes(), config) {
        UpgradeOutcome::Accept { response, .. } => (101, String::from_utf8(response).unwrap()),
        UpgradeOutcome::Reject {
            status, response, ..
        } => (status, String::from_utf8(response).unwrap()),
        UpgradeOutcome::Partial => panic!("partial"),
    }
}

// ------------------------------------------------------------------------------------------
// Upgrade
// ------------------------------------------------------------------------------------------

#[test]
fn accept_key_matches_rfc_example() {
    assert_eq!(accept_key(KEY.as_bytes()), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn upgrade_answers_101_with_accept_and_protocol() {
    let mut server = ServerConn::new(TransportKind::WebSocket, &config());
    server.receive(json_request().as_bytes());
    assert_eq!(
        server.poll_event(),
        Some(ConnEvent::Opened {
            serializer: Serializer::Json
        })
    );
    let response = String::from_utf8(server.output().to_vec()).unwrap();
    assert!(response.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(response.contains("Sec-WebSocket-Protocol: wamp.2.json\r\n"));
    assert!(response.ends_with("\r\n\r\n"));
    assert_eq!(server.serializer(), Some(Serializer::Json));
    assert!(!server.wants_close());
    assert_eq!(server.poll_event(), None);
}

#[test]
fn upgrade_declines_permessage_deflate() {
    let request = json_request().replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
    );
    let (status, response) = response_of(&request, &config());
    assert_eq!(status, 101);
    assert!(!response.to_ascii_lowercase().contains("extensions"));
    assert!(!response.contains("deflate"));
}

#[test]
fn upgrade_takes_first_acceptable_client_protocol() {
    let cfg = config();
    let (status, response) = response_of(
        &request_with("wamp.2.ubjson, wamp.2.msgpack, wamp.2.json"),
        &cfg,
    );
    assert_eq!(status, 101);
    assert!(response.contains("Sec-WebSocket-Protocol: wamp.2.msgpack\r\n"));
    let (status, response) = response_of(
        &request_with("wamp.2.cbor, wamp.2.msgpack, wamp.2.json"),
        &cfg,
    );
    assert_eq!(status, 101);
    assert!(response.contains("Sec-WebSocket-Protocol: wamp.2.cbor\r\n"));

    // Offer spread over two header lines.
    let request = request_with("wamp.2.ubjson").replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Protocol: wamp.2.json, wamp.2.msgpack\r\n\r\n",
    );
    let (status, response) = response_of(&request, &cfg);
    assert_eq!(status, 101);
    assert!(response.contains("Sec-WebSocket-Protocol: wamp.2.json\r\n"));
}

#[test]
fn upgrade_skips_protocols_the_config_disallows() {
    let cfg = TransportConfig {
        serializers: vec![Serializer::Json],
        ..config()
    };
    let (status, response) = response_of(&request_with("wamp.2.msgpack, wamp.2.json"), &cfg);
    assert_eq!(status, 101);
    assert!(response.contains("Sec-WebSocket-Protocol: wamp.2.json\r\n"));

    let (status, response) = response_of(&request_with("wamp.2.msgpack"), &cfg);
    assert_eq!(status, 400);
    assert!(response.contains("no acceptable WebSocket subprotocol"));
}

#[test]
fn upgrade_without_acceptable_protocol_is_400() {
    let (status, response) = response_of(&request_with("wamp.2.ubjson, mqtt"), &config());
    assert_eq!(status, 400);
    assert!(response.contains("wamp.2.json"));
}

#[test]
fn upgrade_without_protocol_header_is_400() {
    let request = json_request().replace("Sec-WebSocket-Protocol: wamp.2.json\r\n", "");
    let (status, response) = response_of(&request, &config());
    assert_eq!(status, 400);
    assert!(response.contains("missing Sec-WebSocket-Protocol"));
}

#[test]
fn only_the_echo_upgrade_takes_a_client_without_wamp_subprotocol() {
    let plain = json_request().replace("Sec-WebSocket-Protocol: wamp.2.json\r\n", "");
    let other = request_with("chat");
    for request in [&plain, &other] {
        assert_eq!(response_of(request, &config()).0, 400);
        // The router's own connection, with the default config, answers 400 as well.
        let mut server = ServerConn::new(TransportKind::WebSocket, &TransportConfig::default());
        server.receive(request.as_bytes());
        assert!(matches!(
            server.poll_event(),
            Some(ConnEvent::Closed { .. })
        ));
        assert!(server.output().starts_with(b"HTTP/1.1 400 "));

        match parse_echo_upgrade_request(request.as_bytes(), &config()) {
            EchoUpgradeOutcome::Accept { consumed, response } => {
                assert_eq!(consumed, request.len());
                let response = String::from_utf8(response).unwrap();
                assert!(response.starts_with("HTTP/1.1 101 "), "{response}");
                assert!(response.contains(&accept_key(KEY.as_bytes())), "{response}");
                assert!(!response.contains("Sec-WebSocket-Protocol"), "{response}");
            }
            other => panic!("{other:?}"),
        }
    }
    // A WAMP subprotocol it is offered is named, as the router does.
    match parse_echo_upgrade_request(json_request().as_bytes(), &config()) {
        EchoUpgradeOutcome::Accept { response, .. } => {
            let response = String::from_utf8(response).unwrap();
            assert!(response.contains("Sec-WebSocket-Protocol: wamp.2.json\r\n"));
        }
        other => panic!("{other:?}"),
    }
    // Every other rule still holds.
    let bad_path = plain.replace("GET /ws ", "GET /other ");
    assert!(matches!(
        parse_echo_upgrade_request(bad_path.as_bytes(), &config()),
        EchoUpgradeOutcome::Reject { status: 404, .. }
    ));
    let no_key = plain.replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "");
    assert!(matches!(
        parse_echo_upgrade_request(no_key.as_bytes(), &config()),
        EchoUpgradeOutcome::Reject { status: 400, .. }
    ));
    assert_eq!(
        parse_echo_upgrade_request(&plain.as_bytes()[..20], &config()),
        EchoUpgradeOutcome::Partial
    );
}

#[test]
fn error_responses_are_complete_plain_text() {
    let mut server = ServerConn::new(TransportKind::WebSocket, &config());
    server.receive(request_with("mqtt").as_bytes());
    match server.poll_event() {
        Some(ConnEvent::Closed { reason }) => assert!(reason.contains("400")),
        other => panic!("{other:?}"),
    }
    assert!(server.wants_close());
    assert_eq!(server.poll_event(), None);
    let response = String::from_utf8(server.output().to_vec()).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert!(head.contains("Content-Type: text/plain"));
    assert!(head.contains("Connection: close"));
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
    assert!(!body.trim().is_empty());
}

#[test]
fn wrong_websocket_version_is_426_naming_13() {
    let request = json_request().replace("Version: 13", "Version: 8");
    let (status, response) = response_of(&request, &config());
    assert_eq!(status, 426);
    assert!(response.contains("Sec-WebSocket-Version: 13\r\n"));

    let request = json_request().replace("Sec-WebSocket-Version: 13\r\n", "");
    let (status, response) = response_of(&request, &config());
    assert_eq!(status, 426);
    assert!(response.contains("Sec-WebSocket-Version: 13\r\n"));
}

#[test]
fn plain_get_is_426() {
    let (status, response) =
        response_of("GET /ws HTTP/1.1\r\nHost: example.com\r\n\r\n", &config());
    assert_eq!(status, 426);
    assert!(response.contains("Upgrade: websocket\r\n"));
}

#[test]
fn wrong_path_is_404() {
    let request = json_request().replace("GET /ws ", "GET /other ");
    assert_eq!(response_of(&request, &config()).0, 404);
    // The query string is not part of the path.
    let request = json_request().replace("GET /ws ", "GET /ws?x=1 ");
    assert_eq!(response_of(&request, &config()).0, 101);
}

#[test]
fn malformed_upgrades_are_400() {
    let cases = [
        json_request().replace("GET ", "POST "),
        json_request().replace("HTTP/1.1", "HTTP/1.0"),
        json_request().replace("Upgrade: websocket", "Upgrade: h2c"),
        json_request().replace("Connection: Upgrade", "Connection: keep-alive"),
        json_request().replace(KEY, "not base64!"),
        json_request().replace(KEY, "c2hvcnQ="),
        json_request().replace("Host: example.com\r\n", ""),
        json_request().replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        ),
        "\x16\x03\x01 garbage\r\n\r\n".to_string(),
    ];
    for request in cases {
        assert_eq!(response_of(&request, &config()).0, 400, "{request:?}");
    }
}

#[test]
fn upgrade_and_connection_accept_token_lists_any_case() {
    let request = json_request()
        .replace("Upgrade: websocket", "Upgrade: foo/1, WebSocket")
        .replace("Connection: Upgrade", "Connection: keep-alive, upgrade");
    assert_eq!(response_of(&request, &config()).0, 101);
}

#[test]
fn oversized_request_headers_are_431() {
    let mut server = ServerConn::new(TransportKind::WebSocket, &config());
    let filler = format!(
        "GET /ws HTTP/1.1\r\nX-Filler: {}",
        "a".repeat(websocket::MAX_HANDSHAKE_LEN)
    );
    server.receive(filler.as_bytes());
    match server.poll_event() {
        Some(ConnEvent::Closed { reason }) => assert!(reason.contains("431"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(server.output().starts_with(b"HTTP/1.1 431 "));
}

#[test]
fn frames_pipelined_behind_the_upgrade_are_kept() {
    let mut server = ServerConn::new(TransportKind::WebSocket, &config());
    let mut bytes = json_request().into_bytes();
    bytes.extend(client_frame(true, opcode::TEXT, b"[1]"));
    server.receive(&bytes);
    assert!(matches!(
        server.poll_event(),
        Some(ConnEvent::Opened { .. })
    ));
    assert_eq!(
        server.poll_event(),
        Some(ConnEvent::Message(b"[1]".as_slice().into()))
    );
    assert_eq!(server.poll_event(), None);
}

#[test]
fn send_before_upgrade_is_not_open() {
    let mut server = ServerConn::new(TransportKind::WebSocket, &config());
    assert_eq!(server.send_message(b"[1]"), Err(SendError::NotOpen));
    assert_eq!(server.serializer(), None);
}

// ------------------------------------------------------------------------------------------
// Frame rules, server side
// ------------------------------------------------------------------------------------------

#[test]
fn masked_text_message_is_delivered() {
    let (events, server) = feed_open(
        Serializer::Json,
        &client_frame(true, opcode::TEXT, b"[1,{}]"),
    );
    assert_eq!(
        events,
        vec![ConnEvent::Message(b"[1,{}]".as_slice().into())]
    );
    assert!(server.output().is_empty());
}

#[test]
fn unmasked_client_frame_is_1002() {
    assert_fails_with(
        Serializer::Json,
        &unmasked_frame(true, opcode::TEXT, b"[1]"),
        1002,
    );
}

#[test]
fn rsv_bits_are_1002() {
    let mut frame = client_frame(true, opcode::TEXT, b"[1]");
    frame[0] |= 0x40;
    assert_fails_with(Serializer::Json, &frame, 1002);
}

#[test]
fn unknown_opcodes_are_1002() {
    for op in [3u8, 7, 0xB, 0xF] {
        assert_fails_with(Serializer::Json, &client_frame(true, op, b""), 1002);
    }
}

#[test]
fn control_frame_over_125_is_1002() {
    assert_fails_with(
        Serializer::Json,
        &client_frame(true, opcode::PING, &[0u8; 126]),
        1002,
    );
}

#[test]
fn fragmented_control_frame_is_1002() {
    assert_fails_with(
        Serializer::Json,
        &client_frame(false, opcode::PING, b"x"),
        1002,
    );
}

#[test]
fn sixteen_and_sixty_four_bit_lengths_round_trip() {
    for len in [125usize, 126, 200, 65535, 65536, 70000] {
        let payload = vec![b'a'; len];
        let frame = client_frame(true, opcode::TEXT, &payload);
        let expected_header = match len {
            0..=125 => 6,
            126..=65535 => 8,
            _ => 14,
        };
        assert_eq!(frame.len(), expected_header + len);
        let (events, _) = feed_open(Serializer::Json, &frame);
        assert_eq!(
            events,
            vec![ConnEvent::Message(payload.into())],
            "len {len}"
        );
    }
}

#[test]
fn server_encodes_the_three_length_forms() {
    for (len, header) in [(125usize, 2usize), (126, 4), (65535, 4), (65536, 10)] {
        let mut server = open_server(Serializer::MsgPack);
        server.send_message(&vec![7u8; len]).unwrap();
        assert_eq!(server.output().len(), header + len);
        let frames = server_frames(server.output());
        assert_eq!(frames, vec![(true, opcode::BINARY, vec![7u8; len])]);
    }
}

#[test]
fn non_minimal_lengths_are_1002() {
    // 100 bytes announced in the 16-bit form.
    let mut frame = vec![0x81, 0x80 | 126, 0, 100];
    frame.extend_from_slice(&MASK);
    frame.extend(vec![0u8; 100]);
    assert_fails_with(Serializer::Json, &frame, 1002);

    // 1000 bytes announced in the 64-bit form.
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&1000u64.to_be_bytes());
    frame.extend_from_slice(&MASK);
    assert_fails_with(Serializer::Json, &frame, 1002);

    // Most significant bit of the 64-bit length set.
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 63 | 70000).to_be_bytes());
    frame.extend_from_slice(&MASK);
    assert_fails_with(Serializer::Json, &frame, 1002);
}

#[test]
fn fragments_with_interleaved_ping_reassemble_and_pong() {
    let mut input = client_frame(false, opcode::TEXT, b"[1,");
    input.extend(client_frame(true, opcode::PING, b"hb"));
    input.extend(client_frame(false, opcode::CONTINUATION, b"\"caf\xc3"));
    input.extend(client_frame(true, opcode::PONG, b"unsolicited"));
    input.extend(client_frame(true, opcode::CONTINUATION, b"\xa9\"]"));
    let (events, server) = feed_open(Serializer::Json, &input);
    assert_eq!(
        events,
        vec![ConnEvent::Message(
            "[1,\"café\"]".as_bytes().to_vec().into()
        )]
    );
    assert_eq!(
        server_frames(server.output()),
        vec![(true, opcode::PONG, b"hb".to_vec())]
    );
}

#[test]
fn ping_gets_pong_with_same_payload() {
    let (events, server) = feed_open(
        Serializer::Json,
        &client_frame(true, opcode::PING, b"12345"),
    );
    assert!(events.is_empty());
    assert_eq!(
        server_frames(server.output()),
        vec![(true, opcode::PONG, b"12345".to_vec())]
    );
}

#[test]
fn continuation_without_start_is_1002() {
    assert_fails_with(
        Serializer::Json,
        &client_frame(true, opcode::CONTINUATION, b"x"),
        1002,
    );
}

#[test]
fn new_data_frame_inside_fragmented_message_is_1002() {
    let mut input = client_frame(false, opcode::TEXT, b"[1");
    input.extend(client_frame(true, opcode::TEXT, b"]"));
    assert_fails_with(Serializer::Json, &input, 1002);
}

#[test]
fn invalid_utf8_text_is_1007() {
    assert_fails_with(
        Serializer::Json,
        &client_frame(true, opcode::TEXT, b"[\xff]"),
        1007,
    );
    // Valid halves, invalid whole: a truncated sequence at the end.
    let mut input = client_frame(false, opcode::TEXT, b"[\"");
    input.extend(client_frame(true, opcode::CONTINUATION, b"\xc3\"]\xe2\x82"));
    assert_fails_with(Serializer::Json, &input, 1007);
}

#[test]
fn wrong_frame_type_for_subprotocol_is_1003() {
    assert_fails_with(
        Serializer::Json,
        &client_frame(true, opcode::BINARY, b"\x91\x01"),
        1003,
    );
    assert_fails_with(
        Serializer::MsgPack,
        &client_frame(true, opcode::TEXT, b"[1]"),
        1003,
    );
    assert_fails_with(
        Serializer::Cbor,
        &client_frame(true, opcode::TEXT, b"[1]"),
        1003,
    );
}

#[test]
fn message_at_the_limit_passes_one_over_is_1009() {
    let limit = config().max_message_size;
    let (events, _) = feed_open(
        Serializer::MsgPack,
        &client_frame(true, opcode::BINARY, &vec![1u8; limit]),
    );
    assert_eq!(events.len(), 1);
    assert!(matches!(&events[0], ConnEvent::Message(m) if m.len() == limit));

    // Refused on the header alone, before the payload arrives.
    let frame = client_frame(true, opcode::BINARY, &vec![1u8; limit + 1]);
    let (events, server) = feed_open(Serializer::MsgPack, &frame[..14]);
    assert!(matches!(events.as_slice(), [ConnEvent::Closed { .. }]));
    assert_eq!(sent_close_code(&server), Some(1009));
}

#[test]
fn fragmented_message_over_the_limit_is_1009() {
    let limit = config().max_message_size;
    let mut input = client_frame(false, opcode::BINARY, &vec![1u8; limit / 2]);
    input.extend(client_frame(
        false,
        opcode::CONTINUATION,
        &vec![1u8; limit / 2],
    ));
    input.extend(client_frame(true, opcode::CONTINUATION, b"x"));
    assert_fails_with(Serializer::MsgPack, &input, 1009);

    let mut input = client_frame(false, opcode::BINARY, &vec![1u8; limit / 2]);
    input.extend(client_frame(
        true,
        opcode::CONTINUATION,
        &vec![1u8; limit / 2],
    ));
    let (events, _) = feed_open(Serializer::MsgPack, &input);
    assert!(matches!(events.as_slice(), [ConnEvent::Message(m)] if m.len() == limit));
}

#[test]
fn message_in_more_fragments_than_the_bound_is_1009() {
    let cfg = TransportConfig {
        max_ws_fragments: 3,
        ..config()
    };
    let open = |cfg: &TransportConfig| {
        let mut server = ServerConn::new(TransportKind::WebSocket, cfg);
        server.receive(request_with("wamp.2.msgpack").as_bytes());
        assert!(matches!(
            server.poll_event(),
            Some(ConnEvent::Opened { .. })
        ));
        let n = server.output().len();
        server.consume_output(n);
        server
    };
    let mut three = client_frame(false, opcode::BINARY, b"\x93");
    three.extend(client_frame(false, opcode::CONTINUATION, b"\x01"));
    three.extend(client_frame(true, opcode::CONTINUATION, b"\x02\x03"));
    let mut server = open(&cfg);
    server.receive(&three);
    let mut events = Vec::new();
    drain(&mut events, &mut server);
    assert!(
        matches!(events.as_slice(), [ConnEvent::Message(m)] if m[..] == b"\x93\x01\x02\x03"[..]),
        "{events:?}"
    );

    let mut four = client_frame(false, opcode::BINARY, b"\x93");
    for piece in [b"\x01", b"\x02"] {
        four.extend(client_frame(false, opcode::CONTINUATION, piece));
    }
    four.extend(client_frame(true, opcode::CONTINUATION, b"\x03"));
    let mut server = open(&cfg);
    server.receive(&four);
    let mut events = Vec::new();
    drain(&mut events, &mut server);
    assert!(
        matches!(events.as_slice(), [ConnEvent::Closed { reason }]
            if reason.contains("1009") && reason.contains("fragments")),
        "{events:?}"
    );
    assert_eq!(sent_close_code(&server), Some(1009));
    assert!(server.wants_close());
}

#[test]
fn send_over_own_limit_is_too_large() {
    let mut server = open_server(Serializer::MsgPack);
    let limit = config().max_message_size;
    assert_eq!(
        server.send_message(&vec![0u8; limit + 1]),
        Err(SendError::TooLarge)
    );
    assert_eq!(server.send_message(&vec![0u8; limit]), Ok(()));
}

#[test]
fn outbound_bound_overflows_and_recovers() {
    let cfg = TransportConfig {
        max_outbound_bytes: 100,
        ..config()
    };
    let mut server = ServerConn::new(TransportKind::WebSocket, &cfg);
    server.receive(json_request().as_bytes());
    assert!(matches!(
        server.poll_event(),
        Some(ConnEvent::Opened { .. })
    ));
    let n = server.output().len();
    server.consume_output(n);
    // 48 payload + 2 header = 50 bytes each.
    assert_eq!(server.send_message(&[b'x'; 48]), Ok(()));
    assert_eq!(server.send_message(&[b'x'; 48]), Ok(()));
    assert_eq!(server.outbound_len(), 100);
    assert_eq!(server.send_message(b"1"), Err(SendError::Overflow));
    // Control frames are queued past the bound.
    server.receive(&client_frame(true, opcode::PING, b"p"));
    assert_eq!(server.poll_event(), None);
    assert_eq!(server.outbound_len(), 103);
    server.consume_output(60);
    assert_eq!(server.send_message(&[b'x'; 48]), Ok(()));
}

// ------------------------------------------------------------------------------------------
// Close handshake
// ------------------------------------------------------------------------------------------

#[test]
fn peer_close_is_echoed_with_its_code() {
    let (events, server) = feed_open(
        Serializer::Json,
        &client_frame(true, opcode::CLOSE, &close_payload(1001, b"bye")),
    );
    match events.as_slice() {
        [ConnEvent::Closed { reason }] => assert!(reason.contains("1001"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(sent_close_code(&server), Some(1001));
    assert!(server.wants_close());
}

#[test]
fn empty_peer_close_is_answered_with_1000() {
    let (events, server) = feed_open(Serializer::Json, &client_frame(true, opcode::CLOSE, b""));
    assert!(matches!(events.as_slice(), [ConnEvent::Closed { .. }]));
    assert_eq!(sent_close_code(&server), Some(1000));
}

#[test]
fn invalid_close_frames_are_1002() {
    for payload in [
        vec![0x03],
        close_payload(999, b""),
        close_payload(1004, b""),
        close_payload(1005, b""),
        close_payload(1006, b""),
        close_payload(1015, b""),
        close_payload(2000, b""),
        close_payload(5000, b""),
        close_payload(1000, b"\xff\xfe"),
    ] {
        assert_fails_with(
            Serializer::Json,
            &client_frame(true, opcode::CLOSE, &payload),
            1002,
        );
    }
    for code in [1000u16, 1003, 1007, 1011, 1014, 3000, 4999] {
        let (_, server) = feed_open(
            Serializer::Json,
            &client_frame(true, opcode::CLOSE, &close_payload(code, b"")),
        );
        assert_eq!(sent_close_code(&server), Some(code));
    }
}

#[test]
fn local_close_waits_for_peer_and_ignores_data() {
    let mut server = open_server(Serializer::Json);
    server.close(1001, "shutting down");
    assert_eq!(
        server_frames(server.output()),
        vec![(true, opcode::CLOSE, close_payload(1001, b"shutting down"))]
    );
    assert!(!server.wants_close());
    assert_eq!(server.send_message(b"[1]"), Err(SendError::NotOpen));
    let n = server.output().len();
    server.consume_output(n);

    let mut input = client_frame(true, opcode::TEXT, b"[1]");
    input.extend(client_frame(true, opcode::PING, b"late"));
    server.receive(&input);
    assert_eq!(server.poll_event(), None);
    assert!(server.output().is_empty(), "no pong after our close");

    server.receive(&client_frame(
        true,
        opcode::CLOSE,
        &close_payload(1001, b""),
    ));
    match server.poll_event() {
        Some(ConnEvent::Closed { reason }) => assert!(reason.contains("closed by us")),
        other => panic!("{other:?}"),
    }
    assert!(server.output().is_empty(), "no second close frame");
    assert!(server.wants_close());
    assert_eq!(server.poll_event(), None);
    server.receive(&client_frame(true, opcode::TEXT, b"[1]"));
    assert_eq!(server.poll_event(), None);
}

#[test]
fn close_reason_is_truncated_to_fit_a_control_frame() {
    let mut server = open_server(Serializer::Json);
    server.close(1000, &"é".repeat(100));
    let frames = server_frames(server.output());
    assert!(frames[0].2.len() <= 125);
    assert!(std::str::from_utf8(&frames[0].2[2..]).is_ok());
}

// ------------------------------------------------------------------------------------------
// Client side
// ------------------------------------------------------------------------------------------

fn client_and_server(serializer: Serializer) -> (ClientConn, ServerConn) {
    let mut client = ClientConn::new(TransportKind::WebSocket, serializer, &config());
    let mut server = ServerConn::new(TransportKind::WebSocket, &config());
    server.receive(client.output());
    let n = client.output().len();
    client.consume_output(n);
    assert_eq!(server.poll_event(), Some(ConnEvent::Opened { serializer }));
    client.receive(server.output());
    let n = server.output().len();
    server.consume_output(n);
    assert_eq!(client.poll_event(), Some(ConnEvent::Opened { serializer }));
    (client, server)
}

#[test]
fn client_request_is_a_valid_upgrade() {
    let client = ClientConn::new(TransportKind::WebSocket, Serializer::MsgPack, &config());
    let request = String::from_utf8(client.output().to_vec()).unwrap();
    assert!(request.starts_with("GET /ws HTTP/1.1\r\n"));
    assert!(request.contains("Host: 127.0.0.1\r\n"));
    assert!(request.contains("Sec-WebSocket-Protocol: wamp.2.msgpack\r\n"));
    assert!(matches!(
        parse_upgrade_request(request.as_bytes(), &config()),
        UpgradeOutcome::Accept {
            serializer: Serializer::MsgPack,
            ..
        }
    ));
}

#[test]
fn client_frames_are_masked_and_server_frames_are_not() {
    let (mut client, mut server) = client_and_server(Serializer::Json);
    client.send_message(b"[1,\"realm\"]").unwrap();
    let h = decode_frame_header(client.output()).unwrap().unwrap();
    assert!(h.mask.is_some());
    assert_eq!(h.opcode, opcode::TEXT);
    server.receive(client.output());
    assert_eq!(
        server.poll_event(),
        Some(ConnEvent::Message(b"[1,\"realm\"]".as_slice().into()))
    );
    server.send_message(b"[2]").unwrap();
    assert!(decode_frame_header(server.output())
        .unwrap()
        .unwrap()
        .mask
        .is_none());
}

#[test]
fn client_refuses_masked_server_frames_with_1002() {
    let (mut client, _) = client_and_server(Serializer::Json);
    let n = client.output().len();
    client.consume_output(n);
    client.receive(&client_frame(true, opcode::TEXT, b"[1]"));
    assert!(matches!(
        client.poll_event(),
        Some(ConnEvent::Closed { .. })
    ));
    let h = decode_frame_header(client.output()).unwrap().unwrap();
    assert_eq!(h.opcode, opcode::CLOSE);
    let mut payload = client.output()[h.header_len..].to_vec();
    websocket::apply_mask(&mut payload, h.mask.unwrap());
    assert_eq!(&payload[..2], &1002u16.to_be_bytes());
}

#[test]
fn client_reports_refused_upgrade() {
    let mut client = ClientConn::new(TransportKind::WebSocket, Serializer::Json, &config());
    let mut server = ServerConn::new(
        TransportKind::WebSocket,
        &TransportConfig {
            serializers: vec![Serializer::MsgPack],
            ..config()
        },
    );
    server.receive(client.output());
    assert!(matches!(
        server.poll_event(),
        Some(ConnEvent::Closed { .. })
    ));
    client.receive(server.output());
    match client.poll_event() {
        Some(ConnEvent::Closed { reason }) => {
            assert!(reason.contains("400"), "{reason}");
            assert!(reason.contains("no acceptable"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(client.wants_close());
}

#[test]
fn client_checks_accept_value_and_protocol() {
    for response in [
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\nSec-WebSocket-Protocol: wamp.2.json\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\nSec-WebSocket-Protocol: wamp.2.msgpack\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n",
    ] {
        let client = ClientConn::new(TransportKind::WebSocket, Serializer::Json, &config());
        let request = String::from_utf8(client.output().to_vec()).unwrap();
        let key = request
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        let response = response.replace("{ACCEPT}", &accept_key(key.as_bytes()));
        let mut client = client;
        client.receive(response.as_bytes());
        assert!(
            matches!(client.poll_event(), Some(ConnEvent::Closed { .. })),
            "{response}"
        );
    }
}

#[test]
fn client_close_handshake_both_directions() {
    // Client starts.
    let (mut client, mut server) = client_and_server(Serializer::MsgPack);
    client.close(1000, "done");
    server.receive(client.output());
    let n = client.output().len();
    client.consume_output(n);
    assert!(matches!(
        server.poll_event(),
        Some(ConnEvent::Closed { .. })
    ));
    assert!(server.wants_close());
    client.receive(server.output());
    assert!(matches!(
        client.poll_event(),
        Some(ConnEvent::Closed { .. })
    ));
    assert!(client.wants_close());

    // Server starts.
    let (mut client, mut server) = client_and_server(Serializer::MsgPack);
    server.close(1001, "restart");
    client.receive(server.output());
    let n = server.output().len();
    server.consume_output(n);
    match client.poll_event() {
        Some(ConnEvent::Closed { reason }) => assert!(reason.contains("1001 restart"), "{reason}"),
        other => panic!("{other:?}"),
    }
    server.receive(client.output());
    assert!(matches!(
        server.poll_event(),
        Some(ConnEvent::Closed { .. })
    ));
    assert!(server.wants_close() && client.wants_close());
}

#[test]
fn server_and_client_exchange_messages_both_serializers() {
    for serializer in Serializer::ALL {
        let (mut client, mut server) = client_and_server(serializer);
        let messages: Vec<Vec<u8>> = (0..50usize)
            .map(|i| {
                let len = [0usize, 1, 125, 126, 65535, 65536][i % 6];
                vec![b'a' + (i % 26) as u8; len]
            })
            .collect();
        for m in &messages {
            client.send_message(m).unwrap();
            server.send_message(m).unwrap();
        }
        server.receive(client.output());
        client.receive(server.output());
        for m in &messages {
            assert_eq!(
                server.poll_event(),
                Some(ConnEvent::Message(m.clone().into()))
            );
            assert_eq!(
                client.poll_event(),
                Some(ConnEvent::Message(m.clone().into()))
            );
        }
        assert_eq!(server.poll_event(), None);
        assert_eq!(client.poll_event(), None);
        assert_eq!(server.messages_received(), 50);
    }
}

#[test]
fn send_message_parts_equals_one_piece() {
    let mut a = open_server(Serializer::Json);
    let mut b = open_server(Serializer::Json);
    a.send_message(b"[36,1,2,{},[\"x\"]]").unwrap();
    b.send_message_parts(&[b"[36,1,2,{}", b",[\"x\"]]"])
        .unwrap();
    assert_eq!(a.output(), b.output());
    assert_eq!(a.framed_len(17), a.output().len());
}

// ------------------------------------------------------------------------------------------
// Split-point invariance
// ------------------------------------------------------------------------------------------

fn session_bytes() -> Vec<u8> {
    let mut input = json_request().into_bytes();
    input.extend(client_frame(true, opcode::TEXT, b"[1,\"realm1\",{}]"));
    input.extend(client_frame(true, opcode::TEXT, &vec![b'7'; 300]));
    input.extend(client_frame(true, opcode::PING, b"ping!"));
    input.extend(client_frame(false, opcode::TEXT, b"[16,"));
    input.extend(client_frame(true, opcode::PING, b""));
    input.extend(client_frame(true, opcode::CONTINUATION, b"2]"));
    input.extend(client_frame(true, opcode::TEXT, b"[]"));
    input.extend(client_frame(
        true,
        opcode::CLOSE,
        &close_payload(1000, b"bye"),
    ));
    input
}

fn run_chunks(chunks: &[&[u8]]) -> (Vec<ConnEvent>, Vec<u8>) {
    let mut server = ServerConn::new(TransportKind::WebSocket, &config());
    let mut events = Vec::new();
    for chunk in chunks {
        server.receive(chunk);
        drain(&mut events, &mut server);
    }
    (events, server.output().to_vec())
}

#[test]
fn every_split_point_yields_the_same_events() {
    let input = session_bytes();
    let (expected_events, expected_output) = run_chunks(&[&input]);
    assert_eq!(expected_events.len(), 6, "{expected_events:?}");
    assert!(matches!(expected_events[0], ConnEvent::Opened { .. }));
    assert!(matches!(expected_events[5], ConnEvent::Closed { .. }));
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        let (events, output) = run_chunks(&[a, b]);
        assert_eq!(events, expected_events, "split at {split}");
        assert_eq!(output, expected_output, "split at {split}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let (events, output) = run_chunks(&bytes);
    assert_eq!(events, expected_events, "byte by byte");
    assert_eq!(output, expected_output, "byte by byte");
}

#[test]
fn closed_is_reported_once_then_none_forever() {
    let (events, mut server) = feed_open(Serializer::Json, &client_frame(true, opcode::CLOSE, b""));
    assert_eq!(events.len(), 1);
    for _ in 0..3 {
        server.receive(&client_frame(true, opcode::TEXT, b"[1]"));
        assert_eq!(server.poll_event(), None);
    }
}

#[test]
fn apply_mask_matches_bytewise_reference() {
    let mask = [1u8, 2, 3, 250];
    for len in 0..40 {
        let data: Vec<u8> = (0..len as u8).collect();
        let mut fast = data.clone();
        websocket::apply_mask(&mut fast, mask);
        let slow: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        assert_eq!(fast, slow);
    }
    let mut buf = BytesMut::new();
    websocket::write_frame(&mut buf, opcode::BINARY, &[b"ab", b"cd"], Some(mask));
    let h = decode_frame_header(&buf).unwrap().unwrap();
    let mut payload = buf[h.header_len..].to_vec();
    websocket::apply_mask(&mut payload, mask);
    assert_eq!(payload, b"abcd");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary bytes after a valid upgrade never panic, and Closed comes at most once.
        #[test]
        fn random_frames_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512),
                                     chunk in 1usize..64) {
            let mut server = open_server(Serializer::Json);
            let mut closed = 0;
            for piece in data.chunks(chunk) {
                server.receive(piece);
                while let Some(ev) = server.poll_event() {
                    if matches!(ev, ConnEvent::Closed { .. }) { closed += 1; }
                }
            }
            prop_assert!(closed <= 1);
        }

        /// Arbitrary bytes as an upgrade request never panic.
        #[test]
        fn random_requests_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut server = ServerConn::new(TransportKind::WebSocket, &config());
            let mut prefix = b"GET /ws HTTP/1.1\r\n".to_vec();
            prefix.extend(&data);
            prefix.extend(b"\r\n\r\n");
            server.receive(&prefix);
            while server.poll_event().is_some() {}
        }

        /// Valid messages cut into random chunks arrive whole and in order.
        #[test]
        fn random_chunking_preserves_messages(
            sizes in proptest::collection::vec(0usize..70_000, 1..6),
            chunk in 1usize..9000,
        ) {
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let payload = vec![b'a' + (i % 26) as u8; *size];
                input.extend(client_frame(true, opcode::TEXT, &payload));
                expected.push(ConnEvent::Message(payload.into()));
            }
            let mut server = open_server(Serializer::Json);
            let mut events = Vec::new();
            for piece in input.chunks(chunk) {
                server.receive(piece);
                drain(&mut events, &mut server);
            }
            prop_assert_eq!(events, expected);
        }
    }
}
