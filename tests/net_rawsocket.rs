//! RawSocket transport tests: every handshake answer, the frame header rules (reserved bits and
//! types, the X bit at 2^24), size limits both ways, ping/pong, server and client talking to each
//! other in memory, and split-point invariance.

use wampring::net::conn::open_in_memory;
use wampring::net::rawsocket::{
    self, decode_frame_header, encode_frame_header, frame_type, length_nibble, RawProtocolError,
    MAX_FRAME_PAYLOAD,
};
use wampring::net::{
    ClientConn, ConnEvent, SendError, Serializer, ServerConn, TransportConfig, TransportKind,
};

fn config() -> TransportConfig {
    TransportConfig {
        max_message_size: 64 * 1024,
        ..TransportConfig::default()
    }
}

fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = encode_frame_header(ty, payload.len()).to_vec();
    out.extend_from_slice(payload);
    out
}

fn drain(events: &mut Vec<ConnEvent>, conn: &mut ServerConn) {
    while let Some(ev) = conn.poll_event() {
        events.push(ev);
    }
}

/// Server after a JSON handshake from a client announcing `client_nibble`; output consumed.
fn open_server(client_nibble: u8) -> ServerConn {
    let mut server = ServerConn::new(TransportKind::RawSocket, &config());
    server.receive(&[0x7F, client_nibble << 4 | 1, 0, 0]);
    assert_eq!(
        server.poll_event(),
        Some(ConnEvent::Opened {
            serializer: Serializer::Json
        })
    );
    let n = server.output().len();
    server.consume_output(n);
    server
}

fn handshake_reply(request: [u8; 4], config: &TransportConfig) -> (Option<ConnEvent>, Vec<u8>) {
    let mut server = ServerConn::new(TransportKind::RawSocket, config);
    server.receive(&request);
    let ev = server.poll_event();
    (ev, server.output().to_vec())
}

// ------------------------------------------------------------------------------------------
// Handshake
// ------------------------------------------------------------------------------------------

#[test]
fn handshake_success_echoes_serializer_and_announces_our_limit() {
    let (ev, reply) = handshake_reply([0x7F, 0xF2, 0, 0], &config());
    assert_eq!(
        ev,
        Some(ConnEvent::Opened {
            serializer: Serializer::MsgPack
        })
    );
    // 64 KiB = 2^16 = 2^(9+7).
    assert_eq!(reply, vec![0x7F, 0x72, 0, 0]);
    // CBOR is serializer 3 (digest §8.2: CBOR + 1 MiB is 0x7F 0xB3 0 0).
    let (ev, reply) = handshake_reply([0x7F, 0xB3, 0, 0], &config());
    assert_eq!(
        ev,
        Some(ConnEvent::Opened {
            serializer: Serializer::Cbor
        })
    );
    assert_eq!(reply, vec![0x7F, 0x73, 0, 0]);
}

#[test]
fn announced_limit_rounds_down_to_a_power_of_two() {
    assert_eq!(length_nibble(16 * 1024 * 1024), 15);
    assert_eq!(length_nibble(64 * 1024 * 1024), 15);
    assert_eq!(length_nibble(16 * 1024 * 1024 - 1), 14);
    assert_eq!(length_nibble(1_000_000), 10);
    assert_eq!(length_nibble(512), 0);
    assert_eq!(length_nibble(100), 0);
    assert_eq!(length_nibble(1023), 0);
    assert_eq!(length_nibble(1024), 1);
    for l in 0..16u8 {
        assert_eq!(length_nibble(rawsocket::nibble_to_max_len(l)), l);
    }
}

#[test]
fn non_rawsocket_first_octet_closes_without_reply() {
    let mut server = ServerConn::new(TransportKind::RawSocket, &config());
    server.receive(b"G");
    assert!(matches!(
        server.poll_event(),
        Some(ConnEvent::Closed { .. })
    ));
    assert!(server.output().is_empty());
    assert!(server.wants_close());
    assert_eq!(server.poll_event(), None);
}

#[test]
fn reserved_octets_are_error_3() {
    for request in [[0x7F, 0xF1, 1, 0], [0x7F, 0xF1, 0, 0x80]] {
        let (ev, reply) = handshake_reply(request, &config());
        assert!(matches!(ev, Some(ConnEvent::Closed { .. })));
        assert_eq!(reply, vec![0x7F, 0x30, 0, 0]);
    }
}

#[test]
fn unsupported_or_illegal_serializer_is_error_1() {
    // 0 illegal, 4 UBJSON, 5 FlatBuffers, 15 reserved.
    for ser in [0u8, 4, 5, 15] {
        let (ev, reply) = handshake_reply([0x7F, 0xF0 | ser, 0, 0], &config());
        assert!(
            matches!(ev, Some(ConnEvent::Closed { .. })),
            "serializer {ser}"
        );
        assert_eq!(reply, vec![0x7F, 0x10, 0, 0], "serializer {ser}");
    }
    // Known but not allowed by config.
    let json_only = TransportConfig {
        serializers: vec![Serializer::Json],
        ..config()
    };
    for known in [0xF2, 0xF3] {
        let (_, reply) = handshake_reply([0x7F, known, 0, 0], &json_only);
        assert_eq!(reply, vec![0x7F, 0x10, 0, 0]);
    }
}

#[test]
fn refuse_overloaded_is_error_4() {
    let mut server = ServerConn::new(TransportKind::RawSocket, &config());
    server.refuse_overloaded();
    assert_eq!(server.output(), &[0x7F, 0x40, 0, 0]);
    assert!(matches!(
        server.poll_event(),
        Some(ConnEvent::Closed { .. })
    ));
    assert!(server.wants_close());
}

#[test]
fn client_reports_every_handshake_error_code() {
    for code in 1u8..=4 {
        let mut client = ClientConn::new(TransportKind::RawSocket, Serializer::Json, &config());
        assert_eq!(client.output(), &[0x7F, 0x71, 0, 0]);
        client.receive(&rawsocket::encode_handshake_error(code));
        match client.poll_event() {
            Some(ConnEvent::Closed { reason }) => {
                assert!(reason.contains(&format!("error {code}")), "{reason}");
                assert!(
                    reason.contains(rawsocket::handshake_error_text(code)),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(client.wants_close());
    }
}

#[test]
fn client_rejects_bad_replies() {
    for reply in [
        [0x48, 0x54, 0x54, 0x50],
        [0x7F, 0xF2, 0, 0],
        [0x7F, 0xF1, 0, 1],
    ] {
        let mut client = ClientConn::new(TransportKind::RawSocket, Serializer::Json, &config());
        client.receive(&reply);
        assert!(
            matches!(client.poll_event(), Some(ConnEvent::Closed { .. })),
            "{reply:?}"
        );
    }
}

#[test]
fn send_before_handshake_is_not_open() {
    let mut client = ClientConn::new(TransportKind::RawSocket, Serializer::Json, &config());
    assert_eq!(client.send_message(b"[1]"), Err(SendError::NotOpen));
}

// ------------------------------------------------------------------------------------------
// Frame header
// ------------------------------------------------------------------------------------------

#[test]
fn x_bit_is_used_exactly_for_two_to_the_24() {
    assert_eq!(
        encode_frame_header(frame_type::MESSAGE, MAX_FRAME_PAYLOAD),
        [0x08, 0, 0, 0]
    );
    assert_eq!(
        encode_frame_header(frame_type::MESSAGE, MAX_FRAME_PAYLOAD - 1),
        [0x00, 0xFF, 0xFF, 0xFF]
    );
    assert_eq!(
        encode_frame_header(frame_type::PING, 0x010203),
        [0x01, 1, 2, 3]
    );
    assert_eq!(
        decode_frame_header([0x08, 0, 0, 0]),
        Ok((frame_type::MESSAGE, MAX_FRAME_PAYLOAD))
    );
    assert_eq!(
        decode_frame_header([0x00, 0xFF, 0xFF, 0xFF]),
        Ok((frame_type::MESSAGE, MAX_FRAME_PAYLOAD - 1))
    );
    assert!(matches!(
        decode_frame_header([0x08, 0, 0, 1]),
        Err(RawProtocolError(_))
    ));
}

#[test]
fn reserved_bits_close_the_connection() {
    for b0 in [0x10u8, 0x80, 0xF0] {
        let mut server = open_server(15);
        server.receive(&[b0, 0, 0, 1, b'x']);
        assert!(matches!(
            server.poll_event(),
            Some(ConnEvent::Closed { .. })
        ));
        assert!(
            server.output().is_empty(),
            "no error frame exists after the handshake"
        );
        assert!(server.wants_close());
    }
}

#[test]
fn reserved_frame_types_close_the_connection() {
    for ty in 3u8..=7 {
        let mut server = open_server(15);
        server.receive(&[ty, 0, 0, 0]);
        assert!(
            matches!(server.poll_event(), Some(ConnEvent::Closed { .. })),
            "type {ty}"
        );
    }
}

#[test]
fn x_bit_with_nonzero_length_closes() {
    let mut server = open_server(15);
    server.receive(&[0x08, 0, 0, 1]);
    assert!(matches!(
        server.poll_event(),
        Some(ConnEvent::Closed { .. })
    ));
}

#[test]
fn message_at_our_limit_passes_one_over_closes() {
    let limit = config().max_message_size;
    let mut server = open_server(15);
    server.receive(&frame(frame_type::MESSAGE, &vec![b'1'; limit]));
    assert!(matches!(server.poll_event(), Some(ConnEvent::Message(m)) if m.len() == limit));

    // Refused on the header alone.
    let mut server = open_server(15);
    server.receive(&encode_frame_header(frame_type::MESSAGE, limit + 1));
    match server.poll_event() {
        Some(ConnEvent::Closed { reason }) => assert!(reason.contains("exceeds"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ping_is_answered_with_pong_and_pong_is_ignored() {
    let mut server = open_server(15);
    let mut input = frame(frame_type::PING, b"keepalive");
    input.extend(frame(frame_type::PONG, b"whatever"));
    input.extend(frame(frame_type::MESSAGE, b"[1]"));
    server.receive(&input);
    assert_eq!(
        server.poll_event(),
        Some(ConnEvent::Message(b"[1]".as_slice().into()))
    );
    assert_eq!(server.poll_event(), None);
    assert_eq!(
        server.output(),
        frame(frame_type::PONG, b"keepalive").as_slice()
    );
}

#[test]
fn peer_announced_limit_is_respected_on_send() {
    // Client announced L=0: 512 bytes.
    let mut server = open_server(0);
    assert_eq!(server.peer_max_message_size(), Some(512));
    assert_eq!(server.send_message(&[0u8; 513]), Err(SendError::TooLarge));
    assert_eq!(server.outbound_len(), 0);
    assert_eq!(server.send_message(&[0u8; 512]), Ok(()));
    assert_eq!(server.outbound_len(), 516);
}

#[test]
fn own_limit_is_respected_on_send() {
    let mut server = open_server(15);
    let limit = config().max_message_size;
    assert_eq!(
        server.send_message(&vec![0u8; limit + 1]),
        Err(SendError::TooLarge)
    );
}

#[test]
fn outbound_bound_overflows() {
    let cfg = TransportConfig {
        max_outbound_bytes: 20,
        ..config()
    };
    let mut server = ServerConn::new(TransportKind::RawSocket, &cfg);
    server.receive(&[0x7F, 0xF1, 0, 0]);
    assert!(matches!(
        server.poll_event(),
        Some(ConnEvent::Opened { .. })
    ));
    let n = server.output().len();
    server.consume_output(n);
    assert_eq!(server.send_message(&[1u8; 16]), Ok(()));
    assert_eq!(server.send_message(&[]), Err(SendError::Overflow));
    server.consume_output(4);
    assert_eq!(server.send_message(&[]), Ok(()));
}

#[test]
fn local_close_finishes_at_once() {
    let mut server = open_server(15);
    server.close(1000, "shutdown");
    assert!(server.wants_close());
    assert!(server.output().is_empty());
    assert!(matches!(
        server.poll_event(),
        Some(ConnEvent::Closed { .. })
    ));
    assert_eq!(server.poll_event(), None);
    assert_eq!(server.send_message(b"[1]"), Err(SendError::NotOpen));
}

#[test]
fn real_two_to_the_24_message_round_trips() {
    let cfg = TransportConfig {
        max_message_size: MAX_FRAME_PAYLOAD,
        max_outbound_bytes: MAX_FRAME_PAYLOAD + 16,
        ..TransportConfig::default()
    };
    let (mut client, mut server) =
        open_in_memory(TransportKind::RawSocket, Serializer::MsgPack, &cfg).expect("handshake");
    assert_eq!(client.peer_max_message_size(), Some(MAX_FRAME_PAYLOAD));

    let payload = vec![0xA5u8; MAX_FRAME_PAYLOAD];
    client.send_message(&payload).unwrap();
    assert_eq!(&client.output()[..4], &[0x08, 0, 0, 0]);
    server.receive(client.output());
    match server.poll_event() {
        Some(ConnEvent::Message(m)) => assert!(m.len() == payload.len() && m[..] == payload[..]),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        client.send_message(&vec![0u8; MAX_FRAME_PAYLOAD + 1]),
        Err(SendError::TooLarge)
    );
}

#[test]
fn server_and_client_exchange_messages_both_serializers() {
    for serializer in Serializer::ALL {
        let mut client = ClientConn::new(TransportKind::RawSocket, serializer, &config());
        let mut server = ServerConn::new(TransportKind::RawSocket, &config());
        server.receive(client.output());
        let n = client.output().len();
        client.consume_output(n);
        assert_eq!(server.poll_event(), Some(ConnEvent::Opened { serializer }));
        client.receive(server.output());
        let n = server.output().len();
        server.consume_output(n);
        assert_eq!(client.poll_event(), Some(ConnEvent::Opened { serializer }));
        assert_eq!(client.serializer(), Some(serializer));

        let messages: Vec<Vec<u8>> = (0..40usize)
            .map(|i| vec![i as u8; [0usize, 1, 300, 65536][i % 4]])
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
    }
}

// ------------------------------------------------------------------------------------------
// Split-point invariance
// ------------------------------------------------------------------------------------------

fn session_bytes() -> Vec<u8> {
    let mut input = vec![0x7F, 0xF1, 0, 0];
    input.extend(frame(frame_type::MESSAGE, b"[1,\"realm1\",{}]"));
    input.extend(frame(frame_type::MESSAGE, &vec![b'7'; 300]));
    input.extend(frame(frame_type::PING, b"ping!"));
    input.extend(frame(frame_type::MESSAGE, b""));
    input.extend(frame(frame_type::PONG, b"x"));
    input.extend(frame(frame_type::MESSAGE, b"[]"));
    input.extend([0x05, 0, 0, 0]);
    input
}

fn run_chunks(chunks: &[&[u8]]) -> (Vec<ConnEvent>, Vec<u8>) {
    let mut server = ServerConn::new(TransportKind::RawSocket, &config());
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

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary bytes, handshake included, never panic; Closed comes at most once.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512),
                                    chunk in 1usize..64, handshake in any::<bool>()) {
            let mut server = ServerConn::new(TransportKind::RawSocket, &config());
            if handshake {
                server.receive(&[0x7F, 0xF1, 0, 0]);
            }
            let mut closed = 0;
            for piece in data.chunks(chunk) {
                server.receive(piece);
                while let Some(ev) = server.poll_event() {
                    if matches!(ev, ConnEvent::Closed { .. }) { closed += 1; }
                }
            }
            prop_assert!(closed <= 1);
        }
    }
}
