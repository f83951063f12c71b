//! Scenario tests of the sans-IO router: several sessions (JSON and MessagePack mixed) driven
//! by encoded client frames, checked by decoding the `Action::Send`s. Every Basic Profile rule
//! the router implements has a scenario here, and shared registration too (the other Advanced
//! Profile RPC features: `router_advanced_rpc.rs`). Every scenario runs twice
//! (`at_1_and_3_shards!` at the end): on one shard, and on three shards with the clients dealt
//! out round-robin, through the shared harness (`tests/scenario`, over `tests/sansio`), which
//! delivers every shard-to-shard message after each client action and asserts the runtime
//! contract (nothing is sent to a session after its Close or after `close_session`).

mod sansio;
#[macro_use]
mod scenario;

use std::borrow::Cow;
use std::collections::HashSet;

use sansio::Conn;
use scenario::*;
use wampring::router::{
    uri, CloseReason, Fact, RealmConfig, RouterConfig, SessionKey, TransportInfo, UriCheck,
};
use wampring::wire::{self, Dict, Message, OwnedPayload, Payload, Serializer, Value, MAX_ID};

use Serializer::{Cbor, Json, MsgPack};

// ------------------------------------------------------------------------------------------
// Session opening
// ------------------------------------------------------------------------------------------

fn welcome_announces_exactly_the_implemented_features_and_anonymous_identity() {
    let mut h = Harness::new();
    for ser in Serializer::ALL {
        let client = h.connect(ser);
        h.hello(&client, "realm1", hello_details());
        let received = h.recv(&client);
        let Message::Welcome { session, details } = received.msg() else {
            panic!("expected WELCOME")
        };
        assert!((1..=MAX_ID).contains(&session));
        let roles = details.get_dict("roles").unwrap();
        assert_eq!(roles.len(), 2);
        let features = |role: &str| {
            let features = roles.get_dict(role).unwrap().get_dict("features").unwrap();
            let mut names: Vec<String> = features
                .iter()
                .map(|(name, value)| {
                    assert_eq!(value, &Value::Bool(true));
                    name.to_string()
                })
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            features("broker"),
            [
                "event_history",
                "event_retention",
                "pattern_based_subscription",
                "publisher_exclusion",
                "publisher_identification",
                "session_meta_api",
                "subscriber_blackwhite_listing",
                "subscription_meta_api",
                "subscription_revocation"
            ]
        );
        assert_eq!(
            features("dealer"),
            [
                "call_canceling",
                "call_reroute",
                "call_timeout",
                "caller_identification",
                "pattern_based_registration",
                "payload_passthru_mode",
                "progressive_call_invocations",
                "progressive_call_results",
                "registration_meta_api",
                "registration_revocation",
                "session_meta_api",
                "shared_registration",
                "testament_meta_api"
            ]
        );
        assert_eq!(
            details.get_str("authid"),
            Some(session.to_string().as_str())
        );
        assert_eq!(details.get_str("authrole"), Some("anonymous"));
        assert_eq!(details.get_str("authmethod"), Some("anonymous"));
        assert_eq!(details.get_str("authprovider"), Some("static"));
        assert_eq!(details.get_str("realm"), Some("realm1"));
        assert_eq!(
            details.get_str("agent"),
            Some(concat!("wampring-", env!("CARGO_PKG_VERSION")))
        );
        assert!(!h.was_closed(&client));
        assert_eq!(h.wamp_session_id(&client), Some(session));
    }
    assert_eq!(h.stats().sessions_established, Serializer::COUNT as u64);
}

fn session_ids_are_distinct_and_replay_with_the_seed() {
    let ids = |seed| {
        let mut h = Harness::new();
        h.reseed(seed);
        (0..50).map(|_| h.join(Json).id).collect::<Vec<_>>()
    };
    let first = ids(1);
    assert_eq!(first, ids(1));
    assert_ne!(first, ids(2));
    assert_eq!(first.iter().collect::<HashSet<_>>().len(), first.len());
}

fn unknown_realm_is_aborted_with_no_such_realm() {
    let mut h = Harness::new();
    let client = h.connect(MsgPack);
    h.hello(&client, "nowhere", hello_details());
    assert_abort(&h.recv(&client), uri::NO_SUCH_REALM);
    assert!(h.was_closed(&client));
    assert_eq!(h.stats().hellos_rejected, 1);
    // Input after the ABORT is ignored.
    h.hello(&client, "realm1", hello_details());
    h.expect_nothing(&client);
    h.disconnect(&client);
    assert_eq!(h.session_count(), 0);
}

fn unknown_realm_is_created_with_auto_create_realms() {
    let mut h = Harness::with_config(RouterConfig {
        auto_create_realms: true,
        ..RouterConfig::default()
    });
    let a = h.connect(Json);
    h.hello(&a, "com.example.new", hello_details());
    match h.recv(&a).msg() {
        Message::Welcome { details, .. } => {
            assert_eq!(details.get_str("realm"), Some("com.example.new"))
        }
        other => panic!("expected WELCOME, got {other:?}"),
    }
    // Realms are separate: a procedure in the new realm is not visible in realm1.
    h.register(&a, "com.p");
    let b = h.join(Json);
    let request = h.call(&b, "com.p", Dict::new(), Payload::empty(Json));
    assert_error(&h.recv(&b), 48, request, uri::NO_SUCH_PROCEDURE);
}

/// Joins `realm` from a client on shard 0 (the auto-created realm bound is per shard); the
/// WELCOME or ABORT is returned.
fn hello_on_shard_0(h: &mut Harness, realm: &str) -> (Client, Received) {
    let mut client = h.connect_on(0, Json);
    h.hello(&client, realm, hello_details());
    let reply = h.recv(&client);
    if let Message::Welcome { session, .. } = reply.msg() {
        client.id = session;
    }
    (client, reply)
}

fn auto_created_realms_are_bounded_and_go_when_unused() {
    let mut h = Harness::with_config(RouterConfig {
        auto_create_realms: true,
        max_auto_created_realms: 2,
        ..RouterConfig::default()
    });
    let configured = h.stats().realms;
    // A client creating realms and leaving them in a loop never meets the bound: a realm with
    // nothing left in it goes with its last session, not at the next sweep.
    for n in 0..6 {
        let (client, welcome) = hello_on_shard_0(&mut h, &format!("com.auto.loop{n}"));
        assert!(matches!(welcome.msg(), Message::Welcome { .. }), "loop {n}");
        h.disconnect(&client);
    }
    assert_eq!(h.stats().realms, configured);
    let (a, welcome) = hello_on_shard_0(&mut h, "com.auto.one");
    assert!(matches!(welcome.msg(), Message::Welcome { .. }));
    let (b, welcome) = hello_on_shard_0(&mut h, "com.auto.two");
    assert!(matches!(welcome.msg(), Message::Welcome { .. }));
    let (late, refused) = hello_on_shard_0(&mut h, "com.auto.three");
    let Message::Abort {
        reason, details, ..
    } = refused.msg()
    else {
        panic!("expected ABORT, got {:?}", refused.msg())
    };
    assert_eq!(reason, uri::NO_SUCH_REALM);
    assert!(details
        .get_str("message")
        .unwrap()
        .contains("max_auto_created_realms"));

    // Tables in the realms, on their owner shards too.
    for topic in ["com.t.1", "com.t.2", "com.t.3"] {
        h.register(&a, topic);
        h.subscribe(&b, topic);
    }
    // A realm in use stays, however long.
    h.cluster.advance_to(h.cluster.now + 5_000);
    h.cluster.drain();
    h.call(&a, "com.t.1", Dict::new(), Payload::empty(Json));
    let Message::Invocation { .. } = h.recv(&a).msg() else {
        panic!("the realm of a live session was removed")
    };

    h.disconnect(&a);
    h.disconnect(&b);
    h.disconnect(&late);
    // Swept within a second of being unused, on every shard.
    h.cluster.advance_to(h.cluster.now + 2_000);
    h.cluster.drain();
    h.cluster.advance_to(h.cluster.now + 2_000);
    h.cluster.drain();
    let stats = h.stats();
    assert_eq!(stats.realms, configured, "{stats:?}");
    assert!(stats.realms_removed >= 2, "{stats:?}");
    h.cluster.assert_tables_empty();
    let (c, welcome) = hello_on_shard_0(&mut h, "com.auto.three");
    assert!(matches!(welcome.msg(), Message::Welcome { .. }));
    h.register(&c, "com.t.1");
}

fn configured_realms_are_the_only_ones() {
    let config = RouterConfig {
        realms: vec![RealmConfig::new("a.b"), RealmConfig::new("c")],
        ..RouterConfig::default()
    };
    let mut h = Harness::with_config(config);
    for (realm, welcomed) in [("a.b", true), ("c", true), ("realm1", false)] {
        let client = h.connect(Json);
        h.hello(&client, realm, hello_details());
        match h.recv(&client).msg() {
            Message::Welcome { .. } => assert!(welcomed),
            Message::Abort { reason, .. } => {
                assert!(!welcomed);
                assert_eq!(reason, uri::NO_SUCH_REALM);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn invalid_realm_uri_is_aborted_with_invalid_uri() {
    let mut h = Harness::with_config(RouterConfig {
        auto_create_realms: true,
        ..RouterConfig::default()
    });
    for realm in ["", "a..b", "has space", "a.#"] {
        let client = h.connect(Json);
        h.hello(&client, realm, hello_details());
        assert_abort(&h.recv(&client), uri::INVALID_URI);
        assert!(h.was_closed(&client));
    }
}

fn authmethods_must_offer_anonymous() {
    let mut h = Harness::new();
    let client = h.connect(Json);
    let mut details = hello_details();
    details.insert("authmethods", Value::List(vec![s("ticket"), s("wampcra")]));
    h.hello(&client, "realm1", details);
    assert_abort(&h.recv(&client), uri::NO_MATCHING_AUTH_METHOD);
    assert!(h.was_closed(&client));

    let client = h.connect(MsgPack);
    let mut details = hello_details();
    details.insert(
        "authmethods",
        Value::List(vec![s("ticket"), s("anonymous")]),
    );
    details.insert("authid", "joe");
    h.hello(&client, "realm1", details);
    match h.recv(&client).msg() {
        Message::Welcome { details, .. } => {
            assert_eq!(details.get_str("authmethod"), Some("anonymous"))
        }
        other => panic!("expected WELCOME, got {other:?}"),
    }
}

fn hello_needs_a_known_role() {
    let mut h = Harness::new();
    let no_roles = Dict::new();
    let mut empty_roles = Dict::new();
    empty_roles.insert("roles", Dict::new());
    let mut unknown_role = Dict::new();
    let mut roles = Dict::new();
    roles.insert("dealer", Dict::new());
    unknown_role.insert("roles", roles);
    for details in [no_roles, empty_roles, unknown_role] {
        let client = h.connect(Json);
        h.hello(&client, "realm1", details);
        assert_violation(&mut h, &client);
    }
}

fn messages_before_hello_are_violations_with_a_readable_message() {
    let mut h = Harness::new();
    let client = h.connect(Json);
    h.call(&client, "com.p", Dict::new(), Payload::empty(Json));
    let received = h.recv(&client);
    let Message::Abort {
        details, reason, ..
    } = received.msg()
    else {
        panic!("expected ABORT")
    };
    assert_eq!(reason, uri::PROTOCOL_VIOLATION);
    assert_eq!(
        details.get_str("message"),
        Some("CALL received before HELLO")
    );
    assert!(h.was_closed(&client));

    let client = h.connect(MsgPack);
    h.send(
        &client,
        &Message::Goodbye {
            details: Dict::new(),
            reason: "wamp.close.close_realm".into(),
        },
    );
    assert_violation(&mut h, &client);
}

fn abort_before_hello_is_not_answered() {
    let mut h = Harness::new();
    let client = h.connect(Json);
    h.send(
        &client,
        &Message::Abort {
            details: Dict::new(),
            reason: "wamp.error.x".into(),
            payload: Payload::empty(Json),
        },
    );
    h.expect_nothing(&client);
    assert!(h.was_closed(&client));
}

fn second_hello_is_a_violation_and_drops_what_the_session_owned() {
    let mut h = Harness::new();
    let callee = h.join(Json);
    h.register(&callee, "com.p");
    h.subscribe(&callee, "com.t");
    h.hello(&callee, "realm1", hello_details());
    assert_violation(&mut h, &callee);
    h.assert_tables_empty();
    let caller = h.join(MsgPack);
    let request = h.call(&caller, "com.p", Dict::new(), Payload::empty(MsgPack));
    assert_error(&h.recv(&caller), 48, request, uri::NO_SUCH_PROCEDURE);
    assert_eq!(h.stats().protocol_violations, 1);
}

fn router_only_messages_from_a_client_are_violations() {
    let mut h = Harness::new();
    let empty = Payload::empty(Json);
    let messages = vec![
        Message::Welcome {
            session: 1,
            details: Dict::new(),
        },
        Message::Challenge {
            method: "ticket".into(),
            extra: Dict::new(),
        },
        Message::Published {
            request: 1,
            publication: 2,
        },
        Message::Subscribed {
            request: 1,
            subscription: 2,
        },
        Message::Unsubscribed {
            request: 1,
            details: None,
        },
        Message::Event {
            subscription: 1,
            publication: 2,
            details: Dict::new(),
            payload: empty,
        },
        Message::Result {
            request: 1,
            details: Dict::new(),
            payload: empty,
        },
        Message::Registered {
            request: 1,
            registration: 2,
        },
        Message::Unregistered {
            request: 1,
            details: None,
        },
        Message::Invocation {
            request: 1,
            registration: 2,
            details: Dict::new(),
            payload: empty,
        },
        Message::Interrupt {
            request: 1,
            options: Dict::new(),
        },
        Message::Authenticate {
            signature: "sig".into(),
            extra: Dict::new(),
        },
    ];
    for message in &messages {
        let client = h.join(Json);
        h.send(&client, message);
        assert_violation(&mut h, &client);
    }
    assert_eq!(h.stats().protocol_violations, messages.len() as u64);
}

fn undecodable_frames_are_violations_with_the_decoder_text() {
    let mut h = Harness::new();
    for (ser, frame) in [
        (Json, &b"not json"[..]),
        (Json, b"[]"),
        (Json, b"[48, 0, {}, \"com.p\"]"),
        (Json, b"[999, 1]"),
        (MsgPack, &[0xc1][..]),
        (MsgPack, &[0x91, 0x30][..]),
    ] {
        let client = h.join(ser);
        h.send_frame(&client, frame);
        assert_violation(&mut h, &client);
    }
    let stats = h.stats();
    assert_eq!(stats.decode_errors, 6);
    assert_eq!(stats.protocol_violations, 6);
}

fn garbage_before_hello_is_a_violation_too() {
    let mut h = Harness::new();
    let client = h.connect(MsgPack);
    h.send_frame(&client, &[0xff, 0x00, 0x13]);
    assert_violation(&mut h, &client);
}

fn goodbye_is_answered_and_cleans_up() {
    let mut h = Harness::new();
    let client = h.join(MsgPack);
    h.register(&client, "com.p");
    h.subscribe(&client, "com.t");
    h.send(
        &client,
        &Message::Goodbye {
            details: Dict::new(),
            reason: "wamp.close.close_realm".into(),
        },
    );
    match h.recv(&client).msg() {
        Message::Goodbye { details, reason } => {
            assert!(details.is_empty());
            assert_eq!(reason, uri::CLOSE_GOODBYE_AND_OUT);
        }
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    h.expect_nothing(&client);
    assert!(h.was_closed(&client));
    h.assert_tables_empty();
    h.disconnect(&client);
    assert_eq!(h.session_count(), 0);
}

fn abort_from_a_client_is_not_answered_and_cleans_up() {
    let mut h = Harness::new();
    let client = h.join(Json);
    h.register(&client, "com.p");
    h.send(
        &client,
        &Message::Abort {
            details: Dict::new(),
            reason: "wamp.error.x".into(),
            payload: Payload::empty(Json),
        },
    );
    h.expect_nothing(&client);
    assert!(h.was_closed(&client));
    h.assert_tables_empty();
}

fn client_error_for_anything_but_invocation_is_a_violation() {
    let mut h = Harness::new();
    for request_type in [16, 32, 48, 64, 8, 0] {
        let client = h.join(Json);
        h.send(
            &client,
            &Message::Error {
                request_type,
                request: 1,
                details: Dict::new(),
                error: "com.err".into(),
                payload: Payload::empty(Json),
            },
        );
        assert_violation(&mut h, &client);
    }
}

fn request_ids_may_be_random_by_default_but_must_be_sequential_when_strict() {
    let mut h = Harness::new();
    let client = h.join(Json);
    for request in [7, 3, MAX_ID, 1] {
        h.send(
            &client,
            &Message::Subscribe {
                request,
                options: Dict::new(),
                topic: "com.t".into(),
            },
        );
        assert!(
            matches!(h.recv(&client).msg(), Message::Subscribed { request: r, .. } if r == request)
        );
    }

    let mut h = Harness::with_config(RouterConfig {
        strict_request_ids: true,
        ..RouterConfig::default()
    });
    let client = h.join(MsgPack);
    for request in 1..=3 {
        h.send(
            &client,
            &Message::Subscribe {
                request,
                options: Dict::new(),
                topic: "com.t".into(),
            },
        );
        assert!(matches!(h.recv(&client).msg(), Message::Subscribed { .. }));
    }
    h.send(
        &client,
        &Message::Publish {
            request: 4,
            options: Dict::new(),
            topic: "com.t".into(),
            payload: Payload::empty(MsgPack),
        },
    );
    h.expect_nothing(&client);
    h.send(
        &client,
        &Message::Call {
            request: 6,
            options: Dict::new(),
            procedure: "com.p".into(),
            payload: Payload::empty(MsgPack),
        },
    );
    assert_violation(&mut h, &client);
    h.assert_tables_empty();
}

// ------------------------------------------------------------------------------------------
// Dealer
// ------------------------------------------------------------------------------------------

fn register_refusals() {
    let mut h = Harness::new();
    let a = h.join(Json);
    let b = h.join(MsgPack);
    h.register(&a, "com.p");
    let cases: Vec<(&Client, &str, Dict<'static>, &str)> = vec![
        (&b, "com.p", Dict::new(), uri::PROCEDURE_ALREADY_EXISTS),
        (&a, "com.p", Dict::new(), uri::PROCEDURE_ALREADY_EXISTS),
        (&b, "com..p", Dict::new(), uri::INVALID_URI),
        (&b, "com.#", Dict::new(), uri::INVALID_URI),
        (&b, "wamp.session.count", Dict::new(), uri::INVALID_URI),
        (&b, "wamp", Dict::new(), uri::INVALID_URI),
        // A pattern may have empty components, a plain URI may not; `#` is never allowed.
        (
            &b,
            "com.#",
            opts(&[("match", s("wildcard"))]),
            uri::INVALID_URI,
        ),
        (
            &b,
            "com.q",
            opts(&[("match", s("prefix")), ("invoke", s("round-robin"))]),
            uri::INVALID_ARGUMENT,
        ),
        (
            &b,
            "com.q",
            opts(&[("invoke", s("round-robin"))]),
            uri::INVALID_ARGUMENT,
        ),
        (
            &b,
            "com.q",
            opts(&[("invoke", s("Single"))]),
            uri::INVALID_ARGUMENT,
        ),
        (
            &b,
            "com.q",
            opts(&[("invoke", Value::UInt(1))]),
            uri::INVALID_ARGUMENT,
        ),
        (
            &b,
            "com.q",
            opts(&[("invoke", Value::List(vec![s("roundrobin")]))]),
            uri::INVALID_ARGUMENT,
        ),
        // A single registration admits no second callee, shared or not.
        (
            &b,
            "com.p",
            opts(&[("invoke", s("roundrobin"))]),
            uri::PROCEDURE_ALREADY_EXISTS,
        ),
    ];
    for (client, procedure, options, error) in cases {
        let request = h.request();
        h.send(
            client,
            &Message::Register {
                request,
                options,
                procedure: procedure.to_string().into(),
            },
        );
        assert_error(&h.recv(client), 64, request, error);
    }
    // Explicit defaults are fine.
    let request = h.request();
    let options = opts(&[("match", s("exact")), ("invoke", s("single"))]);
    h.send(
        &b,
        &Message::Register {
            request,
            options,
            procedure: "com.q".into(),
        },
    );
    assert!(matches!(h.recv(&b).msg(), Message::Registered { .. }));
    // "wampx" is not the reserved namespace.
    h.register(&b, "wampx.p");
}

fn registration_ids_are_router_scoped_and_unregister_checks_ownership() {
    let mut h = Harness::new();
    let a = h.join(Json);
    let b = h.join(MsgPack);
    let p = h.register(&a, "com.p");
    let q = h.register(&b, "com.q");
    assert_ne!(p, q);
    assert!((1..=MAX_ID).contains(&p) && (1..=MAX_ID).contains(&q));

    for (client, registration) in [(&b, p), (&a, 999_999)] {
        let request = h.request();
        h.send(
            client,
            &Message::Unregister {
                request,
                registration,
            },
        );
        assert_error(&h.recv(client), 66, request, uri::NO_SUCH_REGISTRATION);
    }
    let request = h.request();
    h.send(
        &a,
        &Message::Unregister {
            request,
            registration: p,
        },
    );
    assert!(
        matches!(h.recv(&a).msg(), Message::Unregistered { request: r, details: None } if r == request)
    );
    let request = h.request();
    h.send(
        &a,
        &Message::Unregister {
            request,
            registration: p,
        },
    );
    assert_error(&h.recv(&a), 66, request, uri::NO_SUCH_REGISTRATION);

    let request = h.call(&b, "com.p", Dict::new(), Payload::empty(MsgPack));
    assert_error(&h.recv(&b), 48, request, uri::NO_SUCH_PROCEDURE);
    // After unregistering, the procedure can be registered again (by anyone).
    let again = h.register(&b, "com.p");
    assert_ne!(again, p);
}

fn call_with_no_callee_or_bad_uri_is_refused() {
    let mut h = Harness::new();
    let client = h.join(Json);
    let request = h.call(&client, "com.nobody", Dict::new(), Payload::empty(Json));
    let received = h.recv(&client);
    assert_error(&received, 48, request, uri::NO_SUCH_PROCEDURE);
    let request = h.call(&client, "com. bad", Dict::new(), Payload::empty(Json));
    assert_error(&h.recv(&client), 48, request, uri::INVALID_URI);
    assert!(!h.was_closed(&client));
}

/// Full round trip between two sessions; returns the INVOCATION and RESULT as received.
fn round_trip(
    h: &mut Harness,
    caller: &Client,
    callee: &Client,
    call_payload: &OwnedPayload,
    yield_payload: &OwnedPayload,
) -> (Received, Received) {
    let request = h.call(caller, "com.echo", Dict::new(), call_payload.as_payload());
    let invocation = h.recv(callee);
    let Message::Invocation {
        request: invocation_id,
        details,
        ..
    } = invocation.msg()
    else {
        panic!("expected INVOCATION")
    };
    assert!(details.is_empty(), "basic INVOCATION.Details is empty");
    h.send(
        callee,
        &Message::Yield {
            request: invocation_id,
            options: Dict::new(),
            payload: yield_payload.as_payload(),
        },
    );
    let result = h.recv(caller);
    let Message::Result {
        request: r,
        details,
        ..
    } = result.msg()
    else {
        panic!("expected RESULT")
    };
    assert_eq!(r, request);
    assert!(details.is_empty());
    (invocation, result)
}

fn call_payload_passes_through_byte_exact_with_one_serializer() {
    // Small payloads are copied into the forwarded message; large ones are sent from the
    // received frame (a part of their own): both arrive unchanged.
    for (ser, filler) in [(Json, 0), (MsgPack, 0), (Json, 10_000), (MsgPack, 10_000)] {
        let mut h = Harness::new();
        let caller = h.join(ser);
        let callee = h.join(ser);
        let registration = h.register(&callee, "com.echo");
        let mut kwargs = Dict::new();
        kwargs.insert(
            "k",
            Value::List(vec![Value::UInt(1), Value::Float(2.5), Value::Null]),
        );
        let call_payload = args_kw(
            ser,
            &[
                s("héllo \"x\""),
                Value::Int(-3),
                Value::Bin(Cow::Borrowed(&[0, 1, 255])),
                s(&"z".repeat(filler)),
            ],
            &kwargs,
        );
        let yield_payload = args(ser, &[Value::UInt(30), s(&"y".repeat(filler))]);
        let (invocation, result) =
            round_trip(&mut h, &caller, &callee, &call_payload, &yield_payload);
        let Message::Invocation {
            registration: r,
            payload,
            ..
        } = invocation.msg()
        else {
            unreachable!()
        };
        assert_eq!(r, registration);
        assert_eq!(payload.count, 2);
        assert_eq!(
            payload.raw,
            &call_payload.raw[..],
            "INVOCATION carries the CALL payload bytes unchanged"
        );
        let Message::Result { payload, .. } = result.msg() else {
            unreachable!()
        };
        assert_eq!(payload.raw, &yield_payload.raw[..]);
        assert_eq!(h.stats().calls_routed, 1);
        assert_eq!(h.stats().replies_routed, 1);
        h.assert_tables_empty_but_registrations(1);
    }
}

fn call_payload_is_transcoded_between_every_pair_of_serializers_including_binary() {
    let pairs = Serializer::ALL
        .into_iter()
        .flat_map(|a| Serializer::ALL.into_iter().map(move |b| (a, b)))
        .filter(|(a, b)| a != b);
    for (caller_ser, callee_ser) in pairs {
        let mut h = Harness::new();
        let caller = h.join(caller_ser);
        let callee = h.join(callee_ser);
        h.register(&callee, "com.echo");
        let binary = Value::Bin(Cow::Owned(vec![0, 159, 146, 150, 255]));
        let mut kwargs = Dict::new();
        kwargs.insert("blob", binary.clone());
        kwargs.insert("text", "ok");
        let call_payload = args_kw(caller_ser, &[binary.clone(), Value::UInt(7)], &kwargs);
        let yield_payload = args(callee_ser, &[binary.clone(), s("done")]);
        let (invocation, result) =
            round_trip(&mut h, &caller, &callee, &call_payload, &yield_payload);
        let Message::Invocation { payload, .. } = invocation.msg() else {
            unreachable!()
        };
        assert_eq!(payload.ser, callee_ser);
        let (values, kw) = payload_values(&payload);
        assert_eq!(values, vec![binary.clone(), Value::UInt(7)]);
        let kw = kw.unwrap();
        assert_eq!(kw.get("blob"), Some(&binary));
        assert_eq!(kw.get_str("text"), Some("ok"));
        let Message::Result { payload, .. } = result.msg() else {
            unreachable!()
        };
        assert_eq!(
            payload_values(&payload),
            (vec![binary.clone(), s("done")], None)
        );
    }
}

/// The issue's mixed case: a JSON caller, a CBOR callee that publishes what it was given, a
/// MessagePack and a JSON subscriber; every hop changes serializer and keeps the values.
fn mixed_serializers_json_caller_cbor_callee_msgpack_subscriber() {
    let mut h = Harness::new();
    let caller = h.join(Json);
    let callee = h.join(Cbor);
    let subscriber = h.join(MsgPack);
    let json_subscriber = h.join(Json);
    h.register(&callee, "com.mixed.echo");
    h.subscribe(&subscriber, "com.mixed.news");
    h.subscribe(&json_subscriber, "com.mixed.news");
    let values = vec![
        Value::Bin(Cow::Owned(vec![0, 1, 2, 0xfe, 0xff])),
        s("żółw 🐢"),
        Value::UInt(MAX_ID),
        Value::Int(-(1 << 40)),
        Value::Float(-2.5),
        Value::List(vec![Value::Bool(true), Value::Null, Value::List(vec![])]),
    ];
    let mut kwargs = Dict::new();
    kwargs.insert(
        "nested",
        Value::Dict(opts(&[("bytes", Value::Bin(Cow::Borrowed(b"\x00x")))])),
    );
    kwargs.insert("empty", s(""));
    let request = h.call(
        &caller,
        "com.mixed.echo",
        Dict::new(),
        args_kw(Json, &values, &kwargs).as_payload(),
    );
    let invocation = h.recv(&callee);
    let Message::Invocation {
        request: invocation_id,
        payload,
        ..
    } = invocation.msg()
    else {
        panic!("expected INVOCATION")
    };
    assert_eq!(payload.ser, Cbor);
    assert_eq!(
        payload_values(&payload),
        (values.clone(), Some(kwargs.clone()))
    );
    // The callee publishes the payload it received, as received (CBOR bytes), acknowledged.
    let published = h.publish(
        &callee,
        "com.mixed.news",
        opts(&[("acknowledge", Value::Bool(true))]),
        payload,
    );
    let Message::Published { request: r, .. } = h.recv(&callee).msg() else {
        panic!("expected PUBLISHED")
    };
    assert_eq!(r, published);
    for (client, ser) in [(&subscriber, MsgPack), (&json_subscriber, Json)] {
        let event = h.recv(client);
        let Message::Event { payload, .. } = event.msg() else {
            panic!("expected EVENT")
        };
        assert_eq!(payload.ser, ser);
        assert_eq!(
            payload_values(&payload),
            (values.clone(), Some(kwargs.clone()))
        );
    }
    // The callee fails the call with an error carrying arguments: the JSON caller gets them.
    h.send(
        &callee,
        &Message::Error {
            request_type: 68,
            request: invocation_id,
            details: Dict::new(),
            error: "com.mixed.failed".into(),
            payload: args_kw(Cbor, &values, &kwargs).as_payload(),
        },
    );
    let received = h.recv(&caller);
    let Message::Error {
        request: r,
        error,
        payload,
        ..
    } = received.msg()
    else {
        panic!("expected ERROR")
    };
    assert_eq!((r, error.as_ref()), (request, "com.mixed.failed"));
    assert_eq!(payload.ser, Json);
    assert_eq!(payload_values(&payload), (values, Some(kwargs)));
}

/// Between CBOR sessions a payload is forwarded as it came (a tag, an integer map key, an
/// indefinite-length list: what only CBOR can say); the same payload for a JSON caller cannot
/// be transcoded, and the caller gets ERROR invalid_argument instead of a silent loss.
fn cbor_payloads_pass_between_cbor_sessions_untouched_and_an_untranscodable_one_is_refused() {
    let mut h = Harness::new();
    let cbor_caller = h.join(Cbor);
    let json_caller = h.join(Json);
    let callee = h.join(Cbor);
    h.register(&callee, "com.cbor.only");
    // [[tag 1 (epoch date) 1700000000, {1: 2}, indefinite [1, 2]]]
    let raw: &[u8] = &[
        0x81, 0x83, 0xc1, 0x1a, 0x65, 0x53, 0xf1, 0x00, 0xa1, 0x01, 0x02, 0x9f, 0x01, 0x02, 0xff,
    ];
    let only_cbor = Payload {
        ser: Cbor,
        count: 1,
        raw,
    };
    for caller in [&cbor_caller, &json_caller] {
        let request = h.call(
            caller,
            "com.cbor.only",
            Dict::new(),
            Payload::empty(caller.ser),
        );
        let received = h.recv(&callee);
        let Message::Invocation {
            request: invocation,
            payload,
            ..
        } = received.msg()
        else {
            panic!("expected INVOCATION")
        };
        assert!(payload.is_empty());
        h.send(
            &callee,
            &Message::Yield {
                request: invocation,
                options: Dict::new(),
                payload: only_cbor,
            },
        );
        let received = h.recv(caller);
        if caller.ser == Cbor {
            let Message::Result { payload, .. } = received.msg() else {
                panic!("expected RESULT")
            };
            assert_eq!(payload.raw, raw, "forwarded byte for byte");
        } else {
            assert_error(&received, 48, request, "wamp.error.invalid_argument");
        }
    }
}

fn callee_error_is_passed_to_the_caller_with_details_uri_and_payload() {
    let mut h = Harness::new();
    let caller = h.join(MsgPack);
    let callee = h.join(Json);
    h.register(&callee, "com.div");
    let request = h.call(
        &caller,
        "com.div",
        Dict::new(),
        args(MsgPack, &[Value::UInt(1), Value::UInt(0)]).as_payload(),
    );
    let Message::Invocation {
        request: invocation,
        ..
    } = h.recv(&callee).msg()
    else {
        panic!()
    };
    let mut kwargs = Dict::new();
    kwargs.insert("reason", "division by zero");
    let error_payload = args_kw(Json, &[s("bad"), Value::Int(-1)], &kwargs);
    h.send(
        &callee,
        &Message::Error {
            request_type: 68,
            request: invocation,
            details: opts(&[("hint", s("x"))]),
            error: "com.error.div_by_zero".into(),
            payload: error_payload.as_payload(),
        },
    );
    let received = h.recv(&caller);
    let Message::Error {
        request_type,
        request: r,
        details,
        error,
        payload,
    } = received.msg()
    else {
        panic!("expected ERROR")
    };
    assert_eq!(
        (request_type, r, error.as_ref()),
        (48, request, "com.error.div_by_zero")
    );
    assert_eq!(details.get_str("hint"), Some("x"));
    let (values, kw) = payload_values(&payload);
    assert_eq!(values, vec![s("bad"), Value::Int(-1)]);
    assert_eq!(kw.unwrap().get_str("reason"), Some("division by zero"));
    h.assert_tables_empty_but_registrations(1);
}

fn invocation_ids_are_sequential_per_callee() {
    let mut h = Harness::new();
    let callee_a = h.join(Json);
    let callee_b = h.join(MsgPack);
    let caller_1 = h.join(Json);
    let caller_2 = h.join(MsgPack);
    h.register(&callee_a, "com.a");
    h.register(&callee_a, "com.a2");
    h.register(&callee_b, "com.b");
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for (caller, procedure) in [
        (&caller_1, "com.a"),
        (&caller_2, "com.a2"),
        (&caller_2, "com.b"),
        (&caller_1, "com.a"),
        (&caller_1, "com.b"),
    ] {
        h.call(caller, procedure, Dict::new(), Payload::empty(caller.ser));
        let callee = if procedure == "com.b" {
            &callee_b
        } else {
            &callee_a
        };
        let Message::Invocation { request, .. } = h.recv(callee).msg() else {
            panic!()
        };
        if procedure == "com.b" {
            seen_b.push(request)
        } else {
            seen_a.push(request)
        }
    }
    assert_eq!(seen_a, [1, 2, 3]);
    assert_eq!(seen_b, [1, 2]);
    assert_eq!(h.stats().pending_calls, 5);
}

fn caller_and_callee_may_be_the_same_session() {
    let mut h = Harness::new();
    let client = h.join(Json);
    h.register(&client, "com.self");
    let request = h.call(
        &client,
        "com.self",
        Dict::new(),
        args(Json, &[Value::UInt(1)]).as_payload(),
    );
    let Message::Invocation {
        request: invocation,
        ..
    } = h.recv(&client).msg()
    else {
        panic!()
    };
    h.send(
        &client,
        &Message::Yield {
            request: invocation,
            options: Dict::new(),
            payload: Payload::empty(Json),
        },
    );
    assert!(matches!(h.recv(&client).msg(), Message::Result { request: r, .. } if r == request));
    // Leaving with a self-call pending: nothing is sent to the leaving session.
    h.call(&client, "com.self", Dict::new(), Payload::empty(Json));
    let _invocation = h.recv(&client);
    h.disconnect(&client);
    h.assert_tables_empty();
}

fn callee_leaving_cancels_its_pending_calls() {
    for how in ["disconnect", "goodbye", "violation"] {
        let mut h = Harness::new();
        let callee = h.join(MsgPack);
        let caller_1 = h.join(Json);
        let caller_2 = h.join(MsgPack);
        h.register(&callee, "com.slow");
        let r1 = h.call(&caller_1, "com.slow", Dict::new(), Payload::empty(Json));
        let r2 = h.call(&caller_2, "com.slow", Dict::new(), Payload::empty(MsgPack));
        let r3 = h.call(&caller_1, "com.slow", Dict::new(), Payload::empty(Json));
        for _ in 0..3 {
            h.recv(&callee);
        }
        match how {
            "disconnect" => h.disconnect(&callee),
            "goodbye" => {
                h.send(
                    &callee,
                    &Message::Goodbye {
                        details: Dict::new(),
                        reason: "wamp.close.close_realm".into(),
                    },
                );
                h.recv(&callee);
            }
            _ => {
                h.send(
                    &callee,
                    &Message::Yield {
                        request: 77,
                        options: Dict::new(),
                        payload: Payload::empty(MsgPack),
                    },
                );
                h.recv(&callee);
            }
        }
        let mut canceled_1 = [h.recv(&caller_1), h.recv(&caller_1)]
            .iter()
            .map(|received| match received.msg() {
                Message::Error {
                    request_type: 48,
                    request,
                    error,
                    ..
                } => {
                    assert_eq!(error, uri::CANCELED);
                    request
                }
                other => panic!("expected ERROR canceled, got {other:?}"),
            })
            .collect::<Vec<_>>();
        canceled_1.sort();
        assert_eq!(canceled_1, [r1, r3]);
        assert_error(&h.recv(&caller_2), 48, r2, uri::CANCELED);
        h.expect_nothing(&caller_1);
        h.assert_tables_empty();
        assert_eq!(h.stats().calls_canceled, 3, "{how}");
        // The procedure is gone.
        let request = h.call(&caller_2, "com.slow", Dict::new(), Payload::empty(MsgPack));
        assert_error(&h.recv(&caller_2), 48, request, uri::NO_SUCH_PROCEDURE);
    }
}

fn caller_leaving_makes_the_late_answer_silently_discarded() {
    let mut h = Harness::new();
    let callee = h.join(Json);
    let caller = h.join(MsgPack);
    h.register(&callee, "com.slow");
    h.call(&caller, "com.slow", Dict::new(), Payload::empty(MsgPack));
    h.call(&caller, "com.slow", Dict::new(), Payload::empty(MsgPack));
    let Message::Invocation { request: first, .. } = h.recv(&callee).msg() else {
        panic!()
    };
    let Message::Invocation {
        request: second, ..
    } = h.recv(&callee).msg()
    else {
        panic!()
    };
    h.disconnect(&caller);
    h.expect_nothing(&callee);
    assert_eq!(h.stats().pending_calls, 0);
    h.send(
        &callee,
        &Message::Yield {
            request: first,
            options: Dict::new(),
            payload: Payload::empty(Json),
        },
    );
    h.send(
        &callee,
        &Message::Error {
            request_type: 68,
            request: second,
            details: Dict::new(),
            error: "com.e".into(),
            payload: Payload::empty(Json),
        },
    );
    h.expect_nothing(&callee);
    assert!(!h.was_closed(&callee), "a late answer is not a violation");
    assert_eq!(h.stats().late_replies_discarded, 2);
    // Answering the same invocation once more is: it is neither pending nor remembered.
    h.send(
        &callee,
        &Message::Yield {
            request: first,
            options: Dict::new(),
            payload: Payload::empty(Json),
        },
    );
    assert_violation(&mut h, &callee);
}

fn yield_or_error_for_an_unknown_invocation_is_a_violation() {
    let mut h = Harness::new();
    let callee = h.join(Json);
    h.register(&callee, "com.p");
    h.send(
        &callee,
        &Message::Yield {
            request: 1,
            options: Dict::new(),
            payload: Payload::empty(Json),
        },
    );
    assert_violation(&mut h, &callee);
    h.assert_tables_empty();

    let callee = h.join(MsgPack);
    h.send(
        &callee,
        &Message::Error {
            request_type: 68,
            request: 5,
            details: Dict::new(),
            error: "com.e".into(),
            payload: Payload::empty(MsgPack),
        },
    );
    assert_violation(&mut h, &callee);
}

fn pending_calls_per_caller_are_bounded() {
    let mut h = Harness::with_config(RouterConfig {
        max_pending_calls_per_session: 2,
        ..RouterConfig::default()
    });
    let callee = h.join(Json);
    let caller = h.join(MsgPack);
    let other = h.join(Json);
    h.register(&callee, "com.p");
    h.call(&caller, "com.p", Dict::new(), Payload::empty(MsgPack));
    h.call(&caller, "com.p", Dict::new(), Payload::empty(MsgPack));
    let refused = h.call(&caller, "com.p", Dict::new(), Payload::empty(MsgPack));
    assert_error(&h.recv(&caller), 48, refused, uri::PENDING_CALL_LIMIT);
    // The bound is per caller.
    h.call(&other, "com.p", Dict::new(), Payload::empty(Json));
    let invocations: Vec<u64> = (0..3)
        .map(|_| match h.recv(&callee).msg() {
            Message::Invocation { request, .. } => request,
            other => panic!("expected INVOCATION, got {other:?}"),
        })
        .collect();
    h.expect_nothing(&callee);
    // Answering one frees a slot.
    h.send(
        &callee,
        &Message::Yield {
            request: invocations[0],
            options: Dict::new(),
            payload: Payload::empty(Json),
        },
    );
    assert!(matches!(h.recv(&caller).msg(), Message::Result { .. }));
    h.call(&caller, "com.p", Dict::new(), Payload::empty(MsgPack));
    assert!(matches!(h.recv(&callee).msg(), Message::Invocation { .. }));
}

/// The harness's clients announce no features: for a callee without call_canceling every
/// cancel mode is `skip` (no INTERRUPT). The modes themselves: `router_advanced_rpc.rs`.
fn cancel_of_a_call_to_a_callee_without_call_canceling_is_skip() {
    let mut h = Harness::new();
    let callee = h.join(Json);
    let caller = h.join(MsgPack);
    h.register(&callee, "com.p");
    let request = h.call(&caller, "com.p", Dict::new(), Payload::empty(MsgPack));
    let Message::Invocation {
        request: invocation,
        ..
    } = h.recv(&callee).msg()
    else {
        panic!()
    };
    h.send(
        &caller,
        &Message::Cancel {
            request,
            options: opts(&[("mode", s("kill"))]),
        },
    );
    assert_error(&h.recv(&caller), 48, request, uri::CANCELED);
    h.expect_nothing(&callee);
    h.send(
        &callee,
        &Message::Yield {
            request: invocation,
            options: Dict::new(),
            payload: Payload::empty(Json),
        },
    );
    h.expect_nothing(&caller);
    assert!(!h.was_closed(&callee));
    // Canceling a finished call is ignored.
    h.send(
        &caller,
        &Message::Cancel {
            request,
            options: Dict::new(),
        },
    );
    h.expect_nothing(&caller);
    h.assert_tables_empty_but_registrations(1);
}

fn caller_identification_on_request_or_by_registration() {
    let mut h = Harness::new();
    let callee = h.join(Json);
    let caller = h.join(MsgPack);
    h.register(&callee, "com.plain");
    let request = h.request();
    h.send(
        &callee,
        &Message::Register {
            request,
            options: opts(&[("disclose_caller", Value::Bool(true))]),
            procedure: "com.disclosed".into(),
        },
    );
    h.recv(&callee);

    let expect_caller = |h: &mut Harness, disclosed: bool| {
        let received = h.recv(&callee);
        let Message::Invocation { details, .. } = received.msg() else {
            panic!()
        };
        if disclosed {
            assert_eq!(details.get_u64("caller"), Some(caller.id));
            assert_eq!(
                details.get_str("caller_authid"),
                Some(caller.id.to_string().as_str())
            );
            assert_eq!(details.get_str("caller_authrole"), Some("anonymous"));
        } else {
            assert!(details.is_empty());
        }
    };
    h.call(&caller, "com.plain", Dict::new(), Payload::empty(MsgPack));
    expect_caller(&mut h, false);
    h.call(
        &caller,
        "com.plain",
        opts(&[("disclose_me", Value::Bool(true))]),
        Payload::empty(MsgPack),
    );
    expect_caller(&mut h, true);
    h.call(
        &caller,
        "com.disclosed",
        Dict::new(),
        Payload::empty(MsgPack),
    );
    expect_caller(&mut h, true);
}

// ------------------------------------------------------------------------------------------
// Shared registration (REGISTER.Options.invoke)
// ------------------------------------------------------------------------------------------

impl Harness {
    /// REGISTER with `invoke` = `policy`; returns the registration id from REGISTERED.
    fn register_shared(&mut self, client: &Client, procedure: &str, policy: &str) -> u64 {
        let request = self.send_register(client, procedure, opts(&[("invoke", s(policy))]));
        match self.recv(client).msg() {
            Message::Registered {
                request: r,
                registration,
            } if r == request => registration,
            other => panic!("expected REGISTERED, got {other:?}"),
        }
    }

    /// The callees' session ids of `procedure`, in registration order.
    fn callees_of(&self, procedure: &str) -> Vec<u64> {
        self.registration("realm1", procedure)
            .map_or_else(Vec::new, |info| info.callees)
    }

    /// CALLs `procedure` from `caller`; exactly one of `callees` must get the INVOCATION (for
    /// `registration`), which it answers; the caller must get the RESULT. Returns the index of
    /// the callee that was invoked.
    fn call_one(
        &mut self,
        caller: &Client,
        procedure: &str,
        registration: u64,
        callees: &[Client],
    ) -> usize {
        let request = self.call(caller, procedure, Dict::new(), Payload::empty(caller.ser));
        let mut invoked = None;
        for (index, callee) in callees.iter().enumerate() {
            let Some(received) = self.try_recv(callee) else {
                continue;
            };
            let Message::Invocation {
                request: invocation,
                registration: r,
                ..
            } = received.msg()
            else {
                panic!(
                    "callee {index} expected INVOCATION, got {:?}",
                    received.msg()
                )
            };
            assert_eq!(r, registration, "INVOCATION carries the shared id");
            assert!(invoked.is_none(), "two callees invoked for one CALL");
            invoked = Some(index);
            self.send(
                callee,
                &Message::Yield {
                    request: invocation,
                    options: Dict::new(),
                    payload: Payload::empty(callee.ser),
                },
            );
            self.expect_nothing(callee);
        }
        let invoked = invoked.unwrap_or_else(|| panic!("no callee invoked for {procedure}"));
        assert!(
            matches!(self.recv(caller).msg(), Message::Result { request: r, .. } if r == request)
        );
        invoked
    }
}

fn roundrobin_cycles_over_the_callees_in_registration_order_under_one_id() {
    let mut h = Harness::new();
    let callees = [h.join(Json), h.join(MsgPack), h.join(Json)];
    let caller = h.join(MsgPack);
    let ids: Vec<u64> = callees
        .iter()
        .map(|callee| h.register_shared(callee, "com.rr", "roundrobin"))
        .collect();
    assert!(ids.iter().all(|&id| id == ids[0]), "one id: {ids:?}");
    assert_eq!(h.stats().registrations, 1);
    let info = h.registration("realm1", "com.rr").unwrap();
    assert_eq!(info.invoke, "roundrobin");
    assert_eq!(info.callees, callees.map(|c| c.id));
    let order: Vec<usize> = (0..7)
        .map(|_| h.call_one(&caller, "com.rr", ids[0], &callees))
        .collect();
    assert_eq!(order, [0, 1, 2, 0, 1, 2, 0]);
}

fn first_and_last_pick_the_oldest_and_newest_and_move_on_when_it_goes() {
    for how in ["unregister", "disconnect", "goodbye"] {
        // first
        let mut h = Harness::new();
        let callees = [h.join(Json), h.join(MsgPack), h.join(Json)];
        let caller = h.join(Json);
        let id = h.register_shared(&callees[0], "com.hot", "first");
        for callee in &callees[1..] {
            assert_eq!(h.register_shared(callee, "com.hot", "first"), id);
        }
        for _ in 0..3 {
            assert_eq!(h.call_one(&caller, "com.hot", id, &callees), 0);
        }
        h.leave_by(&callees[0], id, how);
        assert_eq!(h.callees_of("com.hot"), [callees[1].id, callees[2].id]);
        for _ in 0..3 {
            assert_eq!(h.call_one(&caller, "com.hot", id, &callees), 1, "{how}");
        }
        // A newcomer goes to the back: the oldest remaining stays first.
        let late = h.join(MsgPack);
        assert_eq!(h.register_shared(&late, "com.hot", "first"), id);
        // (Not callees[0]: after a disconnect its key may be the newcomer's.)
        let all = [callees[1], callees[2], late];
        assert_eq!(h.call_one(&caller, "com.hot", id, &all), 0);

        // last
        let mut h = Harness::new();
        let callees = [h.join(Json), h.join(MsgPack), h.join(Json)];
        let caller = h.join(MsgPack);
        let id = h.register_shared(&callees[0], "com.standby", "last");
        for callee in &callees[1..] {
            assert_eq!(h.register_shared(callee, "com.standby", "last"), id);
        }
        for _ in 0..3 {
            assert_eq!(h.call_one(&caller, "com.standby", id, &callees), 2);
        }
        h.leave_by(&callees[2], id, how);
        for _ in 0..3 {
            assert_eq!(h.call_one(&caller, "com.standby", id, &callees), 1, "{how}");
        }
        // A newcomer is the newest: it takes over.
        let late = h.join(Json);
        assert_eq!(h.register_shared(&late, "com.standby", "last"), id);
        let all = [callees[0], callees[1], late];
        assert_eq!(h.call_one(&caller, "com.standby", id, &all), 2);
        assert_eq!(h.call_one(&caller, "com.standby", id, &all), 2);
    }
}

impl Harness {
    /// `callee` stops being a callee of `registration`: by UNREGISTER, transport loss or
    /// GOODBYE.
    fn leave_by(&mut self, callee: &Client, registration: u64, how: &str) {
        match how {
            "unregister" => self.unregister(callee, registration),
            "disconnect" => self.disconnect(callee),
            _ => {
                self.send(
                    callee,
                    &Message::Goodbye {
                        details: Dict::new(),
                        reason: "wamp.close.close_realm".into(),
                    },
                );
                assert!(matches!(self.recv(callee).msg(), Message::Goodbye { .. }));
            }
        }
    }
}

fn random_reaches_every_callee_and_replays_with_the_seed() {
    let picks = |seed: u64| {
        let mut h = Harness::new();
        h.reseed(seed);
        let callees = [h.join(Json), h.join(MsgPack), h.join(Json)];
        let caller = h.join(Json);
        let id = h.register_shared(&callees[0], "com.any", "random");
        for callee in &callees[1..] {
            assert_eq!(h.register_shared(callee, "com.any", "random"), id);
        }
        (0..90)
            .map(|_| h.call_one(&caller, "com.any", id, &callees))
            .collect::<Vec<usize>>()
    };
    let first = picks(7);
    for callee in 0..3 {
        let count = first.iter().filter(|&&c| c == callee).count();
        // 90 uniform draws over 3: 30 expected; under 10 has probability < 1e-6.
        assert!(
            count >= 10,
            "callee {callee} picked {count} times: {first:?}"
        );
    }
    assert_eq!(picks(7), first, "same seed, same picks");
    assert_ne!(picks(8), first, "another seed, other picks");
}

fn shared_registration_refusals_and_the_first_policy_wins() {
    let mut h = Harness::new();
    let a = h.join(Json);
    let b = h.join(MsgPack);
    let c = h.join(Json);
    let id = h.register_shared(&a, "com.shared", "roundrobin");
    h.register(&c, "com.single");
    let cases: Vec<(&Client, &str, Dict<'static>, &str)> = vec![
        // Another policy than the first registrant's.
        (
            &b,
            "com.shared",
            opts(&[("invoke", s("last"))]),
            uri::PROCEDURE_ALREADY_EXISTS,
        ),
        (
            &b,
            "com.shared",
            opts(&[("invoke", s("random"))]),
            uri::PROCEDURE_ALREADY_EXISTS,
        ),
        // `single` (explicit or default) never joins.
        (&b, "com.shared", Dict::new(), uri::PROCEDURE_ALREADY_EXISTS),
        (
            &b,
            "com.shared",
            opts(&[("invoke", s("single"))]),
            uri::PROCEDURE_ALREADY_EXISTS,
        ),
        // The same session twice, same policy.
        (
            &a,
            "com.shared",
            opts(&[("invoke", s("roundrobin"))]),
            uri::PROCEDURE_ALREADY_EXISTS,
        ),
        // A single registration stays single; its own callee cannot register it again either.
        (
            &b,
            "com.single",
            opts(&[("invoke", s("first"))]),
            uri::PROCEDURE_ALREADY_EXISTS,
        ),
        (&c, "com.single", Dict::new(), uri::PROCEDURE_ALREADY_EXISTS),
        // A bad policy is a bad argument even for an existing procedure.
        (
            &b,
            "com.shared",
            opts(&[("invoke", s("all"))]),
            uri::INVALID_ARGUMENT,
        ),
    ];
    for (client, procedure, options, error) in cases {
        let request = h.send_register(client, procedure, options);
        let received = h.recv(client);
        assert_error(&received, 64, request, error);
        let Message::Error { details, .. } = received.msg() else {
            unreachable!()
        };
        assert!(details.get_str("message").is_some_and(|m| !m.is_empty()));
    }
    // Nothing joined.
    assert_eq!(h.callees_of("com.shared"), [a.id]);
    assert_eq!(h.callees_of("com.single"), [c.id]);
    // The matching policy joins.
    assert_eq!(h.register_shared(&b, "com.shared", "roundrobin"), id);
    assert_eq!(h.callees_of("com.shared"), [a.id, b.id]);
    assert!(!h.was_closed(&a) && !h.was_closed(&b));
}

fn one_callee_unregistering_keeps_the_registration_and_its_id_for_the_others() {
    let mut h = Harness::new();
    let callees = [h.join(Json), h.join(MsgPack), h.join(Json)];
    let caller = h.join(MsgPack);
    let id = h.register_shared(&callees[0], "com.rr", "roundrobin");
    for callee in &callees[1..] {
        h.register_shared(callee, "com.rr", "roundrobin");
    }
    assert_eq!(h.call_one(&caller, "com.rr", id, &callees), 0);
    h.unregister(&callees[1], id);
    assert_eq!(h.registration("realm1", "com.rr").unwrap().id, id);
    assert_eq!(h.callees_of("com.rr"), [callees[0].id, callees[2].id]);
    let order: Vec<usize> = (0..4)
        .map(|_| h.call_one(&caller, "com.rr", id, &callees))
        .collect();
    assert_eq!(order, [2, 0, 2, 0]);
    // A second UNREGISTER by the one that left, or one by a non-callee, is refused.
    for client in [&callees[1], &caller] {
        let request = h.request();
        h.send(
            client,
            &Message::Unregister {
                request,
                registration: id,
            },
        );
        assert_error(&h.recv(client), 66, request, uri::NO_SUCH_REGISTRATION);
    }
    // It may join again, at the back.
    assert_eq!(h.register_shared(&callees[1], "com.rr", "roundrobin"), id);
    assert_eq!(
        h.callees_of("com.rr"),
        [callees[0].id, callees[2].id, callees[1].id]
    );
    h.assert_tables_empty_but_registrations(1);
}

fn last_callee_leaving_removes_the_shared_registration() {
    let mut h = Harness::new();
    let a = h.join(Json);
    let b = h.join(MsgPack);
    let caller = h.join(Json);
    let id = h.register_shared(&a, "com.rr", "roundrobin");
    h.register_shared(&b, "com.rr", "roundrobin");
    h.unregister(&a, id);
    assert_eq!(h.stats().registrations, 1);
    h.disconnect(&b);
    assert_eq!(h.stats().registrations, 0);
    assert!(h.registration("realm1", "com.rr").is_none());
    let request = h.call(&caller, "com.rr", Dict::new(), Payload::empty(Json));
    assert_error(&h.recv(&caller), 48, request, uri::NO_SUCH_PROCEDURE);
    // A new registration gets a new id and may choose another policy.
    let c = h.join(MsgPack);
    let again = h.register_shared(&c, "com.rr", "last");
    assert_ne!(again, id);
    assert_eq!(h.registration("realm1", "com.rr").unwrap().invoke, "last");
    h.disconnect(&c);
    h.disconnect(&a);
    h.disconnect(&caller);
    h.assert_tables_empty();
}

fn a_shared_callee_leaving_cancels_only_its_own_pending_calls() {
    let mut h = Harness::new();
    let a = h.join(Json);
    let b = h.join(MsgPack);
    let caller = h.join(Json);
    let id = h.register_shared(&a, "com.rr", "roundrobin");
    h.register_shared(&b, "com.rr", "roundrobin");
    let to_a = h.call(&caller, "com.rr", Dict::new(), Payload::empty(Json));
    let to_b = h.call(&caller, "com.rr", Dict::new(), Payload::empty(Json));
    assert!(
        matches!(h.recv(&a).msg(), Message::Invocation { registration, .. } if registration == id)
    );
    let Message::Invocation { request: for_b, .. } = h.recv(&b).msg() else {
        panic!("expected INVOCATION at b")
    };
    h.disconnect(&a);
    assert_error(&h.recv(&caller), 48, to_a, uri::CANCELED);
    h.expect_nothing(&caller);
    h.send(
        &b,
        &Message::Yield {
            request: for_b,
            options: Dict::new(),
            payload: Payload::empty(MsgPack),
        },
    );
    assert!(matches!(h.recv(&caller).msg(), Message::Result { request, .. } if request == to_b));
    // Every later call goes to b.
    for _ in 0..3 {
        assert_eq!(h.call_one(&caller, "com.rr", id, &[b]), 0);
    }
    assert_eq!(h.stats().calls_canceled, 1);
}

fn disclose_caller_is_each_callees_own_option() {
    let mut h = Harness::new();
    let discloses = h.join(Json);
    let private = h.join(MsgPack);
    let caller = h.join(Json);
    let options = opts(&[
        ("invoke", s("roundrobin")),
        ("disclose_caller", Value::Bool(true)),
    ]);
    let request = h.send_register(&discloses, "com.rr", options);
    assert!(
        matches!(h.recv(&discloses).msg(), Message::Registered { request: r, .. } if r == request)
    );
    h.register_shared(&private, "com.rr", "roundrobin");
    for _ in 0..2 {
        for (callee, disclosed) in [(&discloses, true), (&private, false)] {
            h.call(&caller, "com.rr", Dict::new(), Payload::empty(Json));
            let received = h.recv(callee);
            let Message::Invocation {
                request, details, ..
            } = received.msg()
            else {
                panic!("expected INVOCATION")
            };
            assert_eq!(details.get_u64("caller"), disclosed.then_some(caller.id));
            h.send(
                callee,
                &Message::Yield {
                    request,
                    options: Dict::new(),
                    payload: Payload::empty(callee.ser),
                },
            );
            assert!(matches!(h.recv(&caller).msg(), Message::Result { .. }));
        }
    }
}

// ------------------------------------------------------------------------------------------
// Broker
// ------------------------------------------------------------------------------------------

fn one_subscription_id_per_topic() {
    let mut h = Harness::new();
    let a = h.join(Json);
    let b = h.join(MsgPack);
    let t = h.subscribe(&a, "com.t");
    assert_eq!(h.subscribe(&b, "com.t"), t);
    assert_eq!(
        h.subscribe(&a, "com.t"),
        t,
        "subscribing twice returns the same id"
    );
    let u = h.subscribe(&a, "com.u");
    assert_ne!(u, t);
    assert_eq!(h.stats().subscriptions, 2);
    // Subscribing twice does not deliver twice.
    h.publish(
        &b,
        "com.t",
        opts(&[("exclude_me", Value::Bool(false))]),
        Payload::empty(MsgPack),
    );
    assert!(matches!(h.recv(&a).msg(), Message::Event { subscription, .. } if subscription == t));
    h.expect_nothing(&a);
    assert!(matches!(h.recv(&b).msg(), Message::Event { .. }));
}

fn subscribe_refusals() {
    let mut h = Harness::new();
    let client = h.join(Json);
    for (topic, options, error) in [
        ("com..t", Dict::new(), uri::INVALID_URI),
        ("", Dict::new(), uri::INVALID_URI),
        ("", opts(&[("match", s("prefix"))]), uri::INVALID_URI),
        (
            "com. t",
            opts(&[("match", s("wildcard"))]),
            uri::INVALID_URI,
        ),
    ] {
        let request = h.request();
        h.send(
            &client,
            &Message::Subscribe {
                request,
                options,
                topic: topic.into(),
            },
        );
        assert_error(&h.recv(&client), 32, request, error);
    }
    // Meta topics may be subscribed.
    h.subscribe(&client, "wamp.session.on_join");
}

fn unsubscribe_checks_membership_and_the_last_subscriber_removes_the_subscription() {
    let mut h = Harness::new();
    let a = h.join(Json);
    let b = h.join(MsgPack);
    let c = h.join(Json);
    let t = h.subscribe(&a, "com.t");
    h.subscribe(&b, "com.t");
    for (client, subscription) in [(&c, t), (&a, 4242)] {
        let request = h.request();
        h.send(
            client,
            &Message::Unsubscribe {
                request,
                subscription,
            },
        );
        assert_error(&h.recv(client), 34, request, uri::NO_SUCH_SUBSCRIPTION);
    }
    for client in [&a, &b] {
        let request = h.request();
        h.send(
            client,
            &Message::Unsubscribe {
                request,
                subscription: t,
            },
        );
        assert!(
            matches!(h.recv(client).msg(), Message::Unsubscribed { request: r, details: None } if r == request)
        );
    }
    h.assert_tables_empty();
    let request = h.request();
    h.send(
        &a,
        &Message::Unsubscribe {
            request,
            subscription: t,
        },
    );
    assert_error(&h.recv(&a), 34, request, uri::NO_SUCH_SUBSCRIPTION);
    // A new subscription to the topic gets a new id.
    assert_ne!(h.subscribe(&c, "com.t"), t);
}

fn publish_acknowledged_or_not() {
    let mut h = Harness::new();
    let publisher = h.join(MsgPack);
    let subscriber = h.join(Json);
    let subscription = h.subscribe(&subscriber, "com.t");
    let payload = args(MsgPack, &[Value::UInt(1)]);

    let request = h.publish(
        &publisher,
        "com.t",
        opts(&[("acknowledge", Value::Bool(true))]),
        payload.as_payload(),
    );
    let Message::Published {
        request: r,
        publication,
    } = h.recv(&publisher).msg()
    else {
        panic!("expected PUBLISHED")
    };
    assert_eq!(r, request);
    assert!((1..=MAX_ID).contains(&publication));
    let received = h.recv(&subscriber);
    let Message::Event {
        subscription: sub,
        publication: p,
        details,
        payload: event_payload,
    } = received.msg()
    else {
        panic!("expected EVENT")
    };
    assert_eq!((sub, p), (subscription, publication));
    assert!(details.is_empty());
    assert_eq!(payload_values(&event_payload).0, vec![Value::UInt(1)]);

    h.publish(&publisher, "com.t", Dict::new(), payload.as_payload());
    h.expect_nothing(&publisher);
    assert!(matches!(h.recv(&subscriber).msg(), Message::Event { .. }));

    // Nobody subscribed: still acknowledged.
    let request = h.publish(
        &publisher,
        "com.nobody",
        opts(&[("acknowledge", Value::Bool(true))]),
        Payload::empty(MsgPack),
    );
    assert!(
        matches!(h.recv(&publisher).msg(), Message::Published { request: r, .. } if r == request)
    );
    assert_eq!(h.stats().publishes, 3);
    assert_eq!(h.stats().events_sent, 2);
}

fn publish_to_an_invalid_topic_is_refused_only_when_acknowledged() {
    let mut h = Harness::new();
    let publisher = h.join(Json);
    let request = h.publish(
        &publisher,
        "com..t",
        opts(&[("acknowledge", Value::Bool(true))]),
        Payload::empty(Json),
    );
    assert_error(&h.recv(&publisher), 16, request, uri::INVALID_URI);
    h.publish(&publisher, "com..t", Dict::new(), Payload::empty(Json));
    h.expect_nothing(&publisher);
    assert!(!h.was_closed(&publisher));
}

fn publish_to_the_wamp_namespace_is_refused_and_subscribing_to_it_is_not() {
    let mut h = Harness::new();
    let watcher = h.join(Json);
    h.subscribe(&watcher, "wamp.session.on_join");
    let publisher = h.join(MsgPack);
    // The real meta event still arrives.
    assert!(matches!(h.recv(&watcher).msg(), Message::Event { .. }));
    let ack = || opts(&[("acknowledge", Value::Bool(true))]);
    for topic in ["wamp.session.on_join", "wamp.foo.bar", "wamp"] {
        let request = h.publish(&publisher, topic, ack(), Payload::empty(MsgPack));
        let refused = h.recv(&publisher);
        assert_error(&refused, 16, request, uri::INVALID_URI);
        let Message::Error { details, .. } = refused.msg() else {
            unreachable!()
        };
        assert!(details.get_str("message").unwrap().contains("reserved"));
    }
    // Without acknowledgement nothing comes back and nothing is delivered.
    h.publish(
        &publisher,
        "wamp.session.on_join",
        Dict::new(),
        Payload::empty(MsgPack),
    );
    h.expect_nothing(&publisher);
    h.expect_nothing(&watcher);
    assert!(!h.was_closed(&publisher));
    assert_eq!(h.stats().publishes_refused, 4);
}

fn an_event_some_subscribers_cannot_receive_is_refused_when_acknowledged_and_counted_when_not() {
    let mut h = Harness::new();
    let publisher = h.join(MsgPack);
    let json_subscriber = h.join(Json);
    let msgpack_subscriber = h.join(MsgPack);
    h.subscribe(&json_subscriber, "com.t");
    h.subscribe(&msgpack_subscriber, "com.t");
    // NaN has no JSON form.
    let nan = args(MsgPack, &[Value::Float(f64::NAN)]);
    let ack = || opts(&[("acknowledge", Value::Bool(true))]);

    // Acknowledged: all or nothing.
    let request = h.publish(&publisher, "com.t", ack(), nan.as_payload());
    assert_error(&h.recv(&publisher), 16, request, uri::INVALID_ARGUMENT);
    h.expect_nothing(&json_subscriber);
    h.expect_nothing(&msgpack_subscriber);

    // Not acknowledged: whoever can receive it does, the others are counted.
    h.publish(&publisher, "com.t", Dict::new(), nan.as_payload());
    h.expect_nothing(&publisher);
    assert!(matches!(
        h.recv(&msgpack_subscriber).msg(),
        Message::Event { .. }
    ));
    h.expect_nothing(&json_subscriber);
    let stats = h.stats();
    assert_eq!(stats.publishes_refused, 1);
    assert_eq!(stats.events_undeliverable, 1);
    assert_eq!(stats.events_sent, 1);

    // A payload both can carry is acknowledged and delivered to both.
    let fine = args(MsgPack, &[Value::Float(1.5)]);
    let request = h.publish(&publisher, "com.t", ack(), fine.as_payload());
    assert!(
        matches!(h.recv(&publisher).msg(), Message::Published { request: r, .. } if r == request)
    );
    assert!(matches!(
        h.recv(&json_subscriber).msg(),
        Message::Event { .. }
    ));
    assert!(matches!(
        h.recv(&msgpack_subscriber).msg(),
        Message::Event { .. }
    ));
}

fn invalid_utf8_in_a_msgpack_payload_str_is_a_violation() {
    let mut h = Harness::new();
    let publisher = h.join(MsgPack);
    // [16, 1, {}, "com.t", ["\xff\xfe"]]
    let frame = [
        0x95, 0x10, 0x01, 0x80, 0xa5, b'c', b'o', b'm', b'.', b't', 0x91, 0xa2, 0xff, 0xfe,
    ];
    h.send_frame(&publisher, &frame);
    assert_violation(&mut h, &publisher);
    assert_eq!(h.stats().decode_errors, 1);
}

fn request_options_with_too_many_entries_are_refused_with_invalid_argument() {
    let mut h = Harness::with_config(RouterConfig {
        max_options_entries: 20,
        ..RouterConfig::default()
    });
    let callee = h.join(Json);
    let client = h.join(MsgPack);
    h.register(&callee, "com.p");
    let flat = |n: usize| {
        let mut options = Dict::new();
        for i in 0..n {
            options.insert(format!("x_{i}"), Value::UInt(i as u64));
        }
        options
    };
    // Nested entries count: 1 + 19 inside = 20 is at the limit, one more is over.
    let nested = |n: usize| opts(&[("x_nested", Value::Dict(flat(n)))]);
    h.call(&client, "com.p", nested(19), Payload::empty(MsgPack));
    assert!(matches!(h.recv(&callee).msg(), Message::Invocation { .. }));
    for options in [flat(21), nested(20)] {
        let request = h.call(&client, "com.p", options, Payload::empty(MsgPack));
        assert_error(&h.recv(&client), 48, request, uri::INVALID_ARGUMENT);
    }
    h.expect_nothing(&callee);
    let request = h.request();
    h.send(
        &client,
        &Message::Subscribe {
            request,
            options: flat(21),
            topic: "com.t".into(),
        },
    );
    assert_error(&h.recv(&client), 32, request, uri::INVALID_ARGUMENT);
    let mut options = flat(20);
    options.insert("acknowledge", Value::Bool(true));
    let request = h.publish(&client, "com.t", options, Payload::empty(MsgPack));
    assert_error(&h.recv(&client), 16, request, uri::INVALID_ARGUMENT);
    h.publish(&client, "com.t", flat(21), Payload::empty(MsgPack));
    h.expect_nothing(&client);
    assert_eq!(h.stats().publishes_refused, 2);
    assert!(!h.was_closed(&client));
}

/// Sends `messages` from `client` back to back (pipelined: with several shards none is
/// answered before the next arrives), then lets everything settle; returns the replies.
fn pipelined(h: &mut Harness, client: &Client, messages: &[Message<'_>]) -> Vec<Received> {
    for message in messages {
        h.cluster.now += 1;
        h.cluster.send(client.conn, message);
    }
    h.cluster.drain();
    std::iter::from_fn(|| h.try_recv(client)).collect()
}

fn per_session_registration_and_subscription_limits_hold_even_when_pipelined() {
    let mut h = Harness::with_config(RouterConfig {
        max_registrations_per_session: 2,
        max_subscriptions_per_session: 3,
        ..RouterConfig::default()
    });
    let client = h.join(MsgPack);
    let other = h.join(Json);

    let subscribes: Vec<Message<'_>> = (1..=5u64)
        .map(|request| Message::Subscribe {
            request,
            options: Dict::new(),
            topic: format!("com.topic.{request}").into(),
        })
        .collect();
    let replies = pipelined(&mut h, &client, &subscribes);
    assert_eq!(replies.len(), 5);
    let mut subscriptions = Vec::new();
    for reply in &replies {
        match reply.msg() {
            Message::Subscribed { subscription, .. } => subscriptions.push(subscription),
            Message::Error { .. } => {
                assert_error(reply, 32, reply_request(reply), uri::TOO_MANY_SUBSCRIPTIONS)
            }
            other => panic!("expected SUBSCRIBED or ERROR, got {other:?}"),
        }
    }
    assert_eq!(subscriptions.len(), 3, "exactly the limit is accepted");
    // Room again after an UNSUBSCRIBE; another session has its own allowance.
    let request = h.request();
    h.send(
        &client,
        &Message::Unsubscribe {
            request,
            subscription: subscriptions[0],
        },
    );
    assert!(matches!(
        h.recv(&client).msg(),
        Message::Unsubscribed { .. }
    ));
    h.subscribe(&client, "com.topic.again");
    for topic in ["com.topic.1", "com.topic.2", "com.topic.4"] {
        h.subscribe(&other, topic);
    }

    // A REGISTER refused for another reason does not use up the allowance.
    h.register(&other, "com.taken");
    let request = h.request();
    h.send(
        &client,
        &Message::Register {
            request,
            options: Dict::new(),
            procedure: "com.taken".into(),
        },
    );
    assert_error(&h.recv(&client), 64, request, uri::PROCEDURE_ALREADY_EXISTS);
    let registers: Vec<Message<'_>> = (10..=12u64)
        .map(|request| Message::Register {
            request,
            options: Dict::new(),
            procedure: format!("com.proc.{request}").into(),
        })
        .collect();
    let replies = pipelined(&mut h, &client, &registers);
    assert_eq!(replies.len(), 3);
    let mut registrations = Vec::new();
    for reply in &replies {
        match reply.msg() {
            Message::Registered { registration, .. } => registrations.push(registration),
            Message::Error { .. } => {
                assert_error(reply, 64, reply_request(reply), uri::TOO_MANY_REGISTRATIONS)
            }
            other => panic!("expected REGISTERED or ERROR, got {other:?}"),
        }
    }
    assert_eq!(registrations.len(), 2);
    assert_eq!(h.stats().session_limit_refusals, 3);
    h.unregister(&client, registrations[0]);
    h.register(&client, "com.proc.again");
    assert!(!h.was_closed(&client));

    // Everything goes with the sessions.
    h.disconnect(&client);
    h.disconnect(&other);
    h.cluster.assert_tables_empty();
}

fn reply_request(reply: &Received) -> u64 {
    match reply.msg() {
        Message::Error { request, .. } => request,
        other => panic!("expected ERROR, got {other:?}"),
    }
}

fn uris_longer_than_the_limit_are_refused_with_invalid_uri() {
    let mut h = Harness::with_config(RouterConfig {
        auto_create_realms: true,
        max_uri_length: 32,
        ..RouterConfig::default()
    });
    let at_limit = format!("com.{}", "a".repeat(28));
    let over = format!("com.{}", "a".repeat(29));
    assert_eq!((at_limit.len(), over.len()), (32, 33));

    let late = h.connect(Json);
    h.hello(&late, &over, hello_details());
    let refused = h.recv(&late);
    let Message::Abort { reason, .. } = refused.msg() else {
        panic!("expected ABORT, got {:?}", refused.msg())
    };
    assert_eq!(reason, uri::INVALID_URI);

    let callee = h.join(Json);
    let client = h.join(MsgPack);
    for (request_type, message) in [
        (
            64,
            Message::Register {
                request: 1,
                options: Dict::new(),
                procedure: over.as_str().into(),
            },
        ),
        (
            32,
            Message::Subscribe {
                request: 2,
                options: Dict::new(),
                topic: over.as_str().into(),
            },
        ),
        (
            48,
            Message::Call {
                request: 3,
                options: Dict::new(),
                procedure: over.as_str().into(),
                payload: Payload::empty(MsgPack),
            },
        ),
        (
            16,
            Message::Publish {
                request: 4,
                options: opts(&[("acknowledge", Value::Bool(true))]),
                topic: over.as_str().into(),
                payload: Payload::empty(MsgPack),
            },
        ),
    ] {
        h.send(&client, &message);
        let request = match &message {
            Message::Register { request, .. }
            | Message::Subscribe { request, .. }
            | Message::Call { request, .. }
            | Message::Publish { request, .. } => *request,
            _ => unreachable!(),
        };
        assert_error(&h.recv(&client), request_type, request, uri::INVALID_URI);
    }
    // Unacknowledged: dropped without an answer, and counted.
    h.publish(&client, &over, Dict::new(), Payload::empty(MsgPack));
    h.expect_nothing(&client);
    assert_eq!(h.stats().publishes_refused, 2);
    assert!(!h.was_closed(&client));

    // At the limit everything works.
    h.register(&callee, &at_limit);
    h.subscribe(&callee, &at_limit);
    h.call(&client, &at_limit, Dict::new(), Payload::empty(MsgPack));
    assert!(matches!(h.recv(&callee).msg(), Message::Invocation { .. }));
}

fn strict_uri_check_refuses_what_loose_accepts() {
    let strict = RouterConfig {
        uri_check: UriCheck::Strict,
        ..RouterConfig::default()
    };
    for (config, accepted) in [(RouterConfig::default(), true), (strict, false)] {
        let mut h = Harness::with_config(config);
        let client = h.join(Json);
        for (request_type, message) in [
            (
                64,
                Message::Register {
                    request: 1,
                    options: Dict::new(),
                    procedure: "com.Upper-Case".into(),
                },
            ),
            (
                32,
                Message::Subscribe {
                    request: 2,
                    options: Dict::new(),
                    topic: "com.Upper-Case".into(),
                },
            ),
        ] {
            h.send(&client, &message);
            match h.recv(&client).msg() {
                Message::Error {
                    request_type: t,
                    error,
                    ..
                } => {
                    assert!(!accepted);
                    assert_eq!((t, error.as_ref()), (request_type, uri::INVALID_URI));
                }
                Message::Registered { .. } | Message::Subscribed { .. } => assert!(accepted),
                other => panic!("unexpected {other:?}"),
            }
        }
        h.send(
            &client,
            &Message::Call {
                request: 3,
                options: Dict::new(),
                procedure: "com.Not-Registered".into(),
                payload: Payload::empty(Json),
            },
        );
        assert!(
            matches!(h.recv(&client).msg(), Message::Error { error, .. } if (error == uri::INVALID_URI) != accepted)
        );
    }
}

fn publisher_is_excluded_unless_exclude_me_is_false() {
    let mut h = Harness::new();
    let publisher = h.join(Json);
    let other = h.join(MsgPack);
    h.subscribe(&publisher, "com.t");
    h.subscribe(&other, "com.t");
    h.publish(&publisher, "com.t", Dict::new(), Payload::empty(Json));
    h.expect_nothing(&publisher);
    assert!(matches!(h.recv(&other).msg(), Message::Event { .. }));
    h.publish(
        &publisher,
        "com.t",
        opts(&[("exclude_me", Value::Bool(true))]),
        Payload::empty(Json),
    );
    h.expect_nothing(&publisher);
    h.recv(&other);
    h.publish(
        &publisher,
        "com.t",
        opts(&[("exclude_me", Value::Bool(false))]),
        Payload::empty(Json),
    );
    assert!(matches!(h.recv(&publisher).msg(), Message::Event { .. }));
    assert!(matches!(h.recv(&other).msg(), Message::Event { .. }));
}

fn event_is_encoded_once_per_serializer_and_shared_by_its_subscribers() {
    let mut h = Harness::new();
    let publisher = h.join(Json);
    // The subscribers of each serializer share one shard (each shard encodes for its own).
    let shard = h.shards() - 1;
    let json_subscribers: Vec<Client> = (0..3).map(|_| h.join_on(shard, Json)).collect();
    let msgpack_subscribers: Vec<Client> = (0..3).map(|_| h.join_on(shard, MsgPack)).collect();
    let cbor_subscribers: Vec<Client> = (0..3).map(|_| h.join_on(shard, Cbor)).collect();
    for client in json_subscribers
        .iter()
        .chain(&msgpack_subscribers)
        .chain(&cbor_subscribers)
    {
        h.subscribe(client, "com.t");
    }
    let payload = args(Json, &[s("news"), Value::Bin(Cow::Borrowed(b"\x00\x01"))]);
    h.publish(&publisher, "com.t", Dict::new(), payload.as_payload());
    let frames =
        |h: &mut Harness, clients: &[Client]| clients.iter().map(|c| h.recv(c)).collect::<Vec<_>>();
    let json_frames = frames(&mut h, &json_subscribers);
    let msgpack_frames = frames(&mut h, &msgpack_subscribers);
    let cbor_frames = frames(&mut h, &cbor_subscribers);
    for group in [&json_frames, &msgpack_frames, &cbor_frames] {
        for received in group.iter() {
            assert_eq!(
                received.frame.as_ptr(),
                group[0].frame.as_ptr(),
                "one allocation per serializer"
            );
            let Message::Event { payload, .. } = received.msg() else {
                panic!()
            };
            assert_eq!(
                payload_values(&payload).0,
                vec![s("news"), Value::Bin(Cow::Borrowed(b"\x00\x01"))]
            );
        }
    }
    assert_ne!(
        json_frames[0].frame.as_ptr(),
        msgpack_frames[0].frame.as_ptr()
    );
    assert_ne!(
        cbor_frames[0].frame.as_ptr(),
        msgpack_frames[0].frame.as_ptr()
    );
    let Message::Event {
        payload: event_payload,
        ..
    } = json_frames[0].msg()
    else {
        panic!()
    };
    assert_eq!(
        event_payload.raw,
        &payload.raw[..],
        "same serializer: payload bytes passed through"
    );
    assert_eq!(h.stats().events_sent, 9);
}

fn publisher_identification_with_disclose_me() {
    let mut h = Harness::new();
    let publisher = h.join(MsgPack);
    let subscriber = h.join(Json);
    h.subscribe(&subscriber, "com.t");
    h.publish(
        &publisher,
        "com.t",
        opts(&[("disclose_me", Value::Bool(true))]),
        Payload::empty(MsgPack),
    );
    let received = h.recv(&subscriber);
    let Message::Event { details, .. } = received.msg() else {
        panic!()
    };
    assert_eq!(details.get_u64("publisher"), Some(publisher.id));
    assert_eq!(
        details.get_str("publisher_authid"),
        Some(publisher.id.to_string().as_str())
    );
    assert_eq!(details.get_str("publisher_authrole"), Some("anonymous"));
}

fn subscriber_black_and_white_listing() {
    let mut h = Harness::new();
    let publisher = h.join(Json);
    let subscribers: Vec<Client> = (0..4)
        .map(|i| h.join(if i % 2 == 0 { Json } else { MsgPack }))
        .collect();
    for client in &subscribers {
        h.subscribe(client, "com.t");
    }
    let ids = |indexes: &[usize]| {
        Value::List(
            indexes
                .iter()
                .map(|&i| Value::UInt(subscribers[i].id))
                .collect(),
        )
    };
    let authids = |indexes: &[usize]| {
        Value::List(
            indexes
                .iter()
                .map(|&i| s(&subscribers[i].id.to_string()))
                .collect(),
        )
    };
    let cases: Vec<(Dict<'static>, Vec<usize>)> = vec![
        (opts(&[("exclude", ids(&[0, 2]))]), vec![1, 3]),
        (opts(&[("eligible", ids(&[0, 1]))]), vec![0, 1]),
        (
            opts(&[("eligible", ids(&[0, 1])), ("exclude", ids(&[1]))]),
            vec![0],
        ),
        (opts(&[("exclude_authid", authids(&[3]))]), vec![0, 1, 2]),
        (
            opts(&[
                ("eligible_authid", authids(&[2, 3])),
                ("exclude", ids(&[3])),
            ]),
            vec![2],
        ),
        (
            opts(&[("eligible_authrole", Value::List(vec![s("anonymous")]))]),
            vec![0, 1, 2, 3],
        ),
        (
            opts(&[("exclude_authrole", Value::List(vec![s("anonymous")]))]),
            vec![],
        ),
        (opts(&[("eligible", Value::List(vec![]))]), vec![]),
    ];
    for (options, receivers) in cases {
        let description = format!("{options:?}");
        h.publish(&publisher, "com.t", options, Payload::empty(Json));
        for (index, client) in subscribers.iter().enumerate() {
            if receivers.contains(&index) {
                assert!(
                    matches!(h.recv(client).msg(), Message::Event { .. }),
                    "{description}: {index} receives"
                );
            } else {
                h.expect_nothing(client);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Lifecycle
// ------------------------------------------------------------------------------------------

fn tables_are_empty_after_everyone_leaves() {
    let mut h = Harness::new();
    let clients: Vec<Client> = (0..6)
        .map(|i| h.join(if i % 2 == 0 { Json } else { MsgPack }))
        .collect();
    for (i, client) in clients.iter().enumerate() {
        h.register(client, &format!("com.p{i}"));
        h.subscribe(client, "com.t");
        h.subscribe(client, &format!("com.t{i}"));
    }
    for (i, client) in clients.iter().enumerate() {
        h.call(
            client,
            &format!("com.p{}", (i + 1) % clients.len()),
            Dict::new(),
            Payload::empty(client.ser),
        );
    }
    let stats = h.stats();
    assert_eq!(
        (
            stats.registrations,
            stats.subscriptions,
            stats.pending_calls
        ),
        (6, 7, 6)
    );
    for client in &clients {
        h.disconnect(client);
    }
    h.assert_tables_empty();
    assert_eq!(h.session_count(), 0);
    let stats = h.stats();
    assert_eq!(stats.sessions_opened, stats.sessions_closed);
}

fn shutdown_says_goodbye_to_every_established_session_and_closes_all() {
    let mut h = Harness::new();
    let a = h.join(Json);
    let b = h.join(MsgPack);
    let waiting = h.connect(Json);
    h.register(&a, "com.p");
    h.call(&b, "com.p", Dict::new(), Payload::empty(MsgPack));
    h.recv(&a);
    h.shutdown();
    for client in [&a, &b] {
        match h.recv(client).msg() {
            Message::Goodbye { reason, .. } => assert_eq!(reason, uri::CLOSE_SYSTEM_SHUTDOWN),
            other => panic!("expected GOODBYE, got {other:?}"),
        }
        h.expect_nothing(client);
        assert!(h.was_closed(client));
    }
    h.expect_nothing(&waiting);
    assert!(h.was_closed(&waiting));
    h.assert_tables_empty();
    // New sessions are refused while shutting down.
    let late = h.connect(Json);
    h.hello(&late, "realm1", hello_details());
    assert_abort(&h.recv(&late), uri::CLOSE_SYSTEM_SHUTDOWN);
    for client in [&a, &b, &waiting, &late] {
        h.disconnect(client);
    }
    assert_eq!(h.session_count(), 0);
}

fn input_after_close_is_ignored_and_keys_are_reused_cleanly() {
    let mut h = Harness::new();
    let a = h.join(Json);
    h.register(&a, "com.p");
    h.disconnect(&a);
    // A new session may get the same slab key; it starts fresh.
    let b = h.join_on(a.conn.shard, MsgPack);
    assert_eq!(b.key, a.key);
    h.register(&b, "com.p");
    let stranger = Conn {
        key: SessionKey(12345),
        ..a.conn
    };
    h.cluster.send_frame(stranger, b"[1]");
    h.cluster.close(stranger);
    assert_eq!(h.cluster.undelivered(), 0);
}

// ------------------------------------------------------------------------------------------
// The router kernel: HELLO deadline, internal callee and gather, facts
// ------------------------------------------------------------------------------------------

fn a_session_without_hello_is_closed_at_its_deadline() {
    let mut h = Harness::with_config(RouterConfig {
        hello_timeout_ms: 5_000,
        ..RouterConfig::default()
    });
    h.cluster.now = 1_000;
    let silent = h.connect(Json);
    let greeted = h.connect(MsgPack);
    let aborted = h.connect(Json);
    let router = &mut h.cluster.routers[silent.conn.shard];
    assert_eq!(
        router.poll_timeout(),
        Some(6_000),
        "the runtime is told the deadline"
    );
    h.cluster.advance_to(2_000);
    let greeted = h.welcome(greeted);
    h.send(
        &aborted,
        &Message::Abort {
            details: Dict::new(),
            reason: "wamp.close.normal".into(),
            payload: Payload::empty(Json),
        },
    );
    h.cluster.advance_to(5_999);
    assert!(!h.was_closed(&silent), "closed before its deadline");
    h.cluster.advance_to(6_000);
    assert_eq!(
        h.cluster.close_reason(silent.conn),
        Some(CloseReason::HelloTimeout)
    );
    h.expect_nothing(&silent);
    assert!(!h.was_closed(&greeted), "a session that said HELLO stays");
    assert_eq!(
        h.cluster.close_reason(aborted.conn),
        Some(CloseReason::Done)
    );
    assert_eq!(h.stats().hello_timeouts, 1);
    assert_eq!(h.stats().timers, 0, "every deadline fired or was cancelled");
    // Input after the close is ignored; the key is reused by a session with its own deadline.
    h.hello(&silent, "realm1", hello_details());
    h.expect_nothing(&silent);
    h.disconnect(&aborted);
    h.disconnect(&silent);
    let next = h.connect_on(silent.conn.shard, Json);
    assert_eq!(next.key, silent.key);
    h.cluster.advance_to(11_000 + 1);
    assert!(
        !h.was_closed(&next),
        "an old deadline never closes a newer session"
    );
    h.cluster.advance_to(11_000 + 5_000);
    assert_eq!(
        h.cluster.close_reason(next.conn),
        Some(CloseReason::HelloTimeout)
    );
    assert_eq!(h.stats().hello_timeouts, 2);
    h.disconnect(&next);
    h.disconnect(&greeted);
    assert_eq!(h.stats().timers, 0);
}

fn a_session_closed_before_hello_leaves_no_deadline() {
    let mut h = Harness::new();
    let clients: Vec<Client> = (0..4).map(|_| h.connect(Json)).collect();
    assert_eq!(h.stats().timers, 4);
    for client in &clients {
        h.disconnect(client);
    }
    assert_eq!(h.stats().timers, 0);
    h.cluster.advance_to(u64::MAX);
    assert_eq!(h.stats().hello_timeouts, 0);
}

/// CALLs `procedure` with `args`; the RESULT's arguments, or the ERROR's URI.
fn call_router(
    h: &mut Harness,
    client: &Client,
    procedure: &str,
    call_args: &[Value<'_>],
) -> Result<Vec<Value<'static>>, String> {
    let payload = args(client.ser, call_args);
    let request = h.call(client, procedure, Dict::new(), payload.as_payload());
    match h.recv(client).msg() {
        Message::Result {
            request: r,
            payload,
            ..
        } => {
            assert_eq!(r, request);
            Ok(payload_values(&payload).0)
        }
        Message::Error {
            request: r, error, ..
        } => {
            assert_eq!(r, request);
            Err(error.into_owned())
        }
        other => panic!("expected RESULT or ERROR, got {other:?}"),
    }
}

fn wamp_session_count_is_the_same_from_every_shard() {
    let mut h = Harness::with_config(RouterConfig {
        realms: vec![RealmConfig::new("realm1"), RealmConfig::new("realm2")],
        ..RouterConfig::default()
    });
    let clients: Vec<Client> = (0..5)
        .map(|i| h.join(if i % 2 == 0 { Json } else { MsgPack }))
        .collect();
    let _waiting_for_hello = h.connect(Json);
    let elsewhere = h.connect(Json);
    h.hello(&elsewhere, "realm2", hello_details());
    assert!(matches!(h.recv(&elsewhere).msg(), Message::Welcome { .. }));
    let count = Value::UInt;
    let roles = |names: &[&str]| Value::List(names.iter().map(|name| s(name)).collect());
    for client in &clients {
        assert_eq!(
            call_router(&mut h, client, "wamp.session.count", &[]),
            Ok(vec![count(5)])
        );
        assert_eq!(
            call_router(
                &mut h,
                client,
                "wamp.session.count",
                &[roles(&["anonymous"])]
            ),
            Ok(vec![count(5)])
        );
        assert_eq!(
            call_router(
                &mut h,
                client,
                "wamp.session.count",
                &[roles(&["admin", "x"])]
            ),
            Ok(vec![count(0)])
        );
    }
    assert_eq!(
        call_router(&mut h, &elsewhere, "wamp.session.count", &[]),
        Ok(vec![count(1)])
    );
    assert_eq!(
        call_router(&mut h, &clients[0], "wamp.session.count", &[s("x")]),
        Err(uri::INVALID_ARGUMENT.to_string())
    );
    assert_eq!(
        call_router(&mut h, &clients[0], "wamp.session.frobnicate", &[]),
        Err(uri::NO_SUCH_PROCEDURE.to_string())
    );
    h.disconnect(&clients[1]);
    assert_eq!(
        call_router(&mut h, &clients[4], "wamp.session.count", &[]),
        Ok(vec![count(4)])
    );
    assert_eq!(h.stats().inflight_registry_ops, 0, "no gather left behind");
}

/// The facts every shard recorded since the last call, with creation times zeroed (they are
/// checked through the meta API).
fn take_facts(h: &mut Harness) -> Vec<Vec<Fact>> {
    h.cluster
        .routers
        .iter_mut()
        .map(|router| {
            let mut facts = router.take_facts();
            for fact in &mut facts {
                match fact {
                    Fact::RegistrationCreated { created, .. }
                    | Fact::SubscriptionCreated { created, .. } => *created = 0,
                    _ => {}
                }
            }
            facts
        })
        .collect()
}

/// The session a fact is about: each is recorded by that session's own shard.
fn subject(fact: &Fact) -> Option<u64> {
    match fact {
        Fact::SessionJoined { session, .. }
        | Fact::SessionLeft { session, .. }
        | Fact::CalleeAdded { session, .. }
        | Fact::CalleeRemoved { session, .. }
        | Fact::SubscriberAdded { session, .. }
        | Fact::SubscriberRemoved { session, .. }
        | Fact::RegistrationCreated { session, .. }
        | Fact::RegistrationDeleted { session, .. }
        | Fact::SubscriptionCreated { session, .. }
        | Fact::SubscriptionDeleted { session, .. } => Some(*session),
    }
}

/// A deletion: with several shards it may come after the `SessionLeft` of the session whose
/// leaving caused it (the owner answers later), but always after the removal before it.
fn is_deletion(fact: &Fact) -> bool {
    matches!(
        fact,
        Fact::RegistrationDeleted { .. } | Fact::SubscriptionDeleted { .. }
    )
}

/// The removal a deletion follows.
fn removal_before(deletion: &Fact) -> Option<Fact> {
    match deletion {
        Fact::RegistrationDeleted {
            realm,
            registration,
            session,
        } => Some(Fact::CalleeRemoved {
            realm: realm.clone(),
            registration: *registration,
            session: *session,
        }),
        Fact::SubscriptionDeleted {
            realm,
            subscription,
            session,
        } => Some(Fact::SubscriberRemoved {
            realm: realm.clone(),
            subscription: *subscription,
            session: *session,
        }),
        _ => None,
    }
}

/// The facts recorded since the last step are exactly `expected` (in any order across shards),
/// and the facts about one session came from one shard, in the order of `expected` (a
/// deletion only after its removal).
fn assert_facts(h: &mut Harness, step: &str, expected: Vec<Fact>) {
    let per_shard = take_facts(h);
    let mut got: Vec<String> = per_shard
        .iter()
        .flatten()
        .map(|f| format!("{f:?}"))
        .collect();
    let mut want: Vec<String> = expected.iter().map(|f| format!("{f:?}")).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{step}: facts");
    for session in expected.iter().filter_map(subject).collect::<HashSet<_>>() {
        let want: Vec<&Fact> = expected
            .iter()
            .filter(|f| subject(f) == Some(session))
            .collect();
        let on_shards: Vec<Vec<&Fact>> = per_shard
            .iter()
            .map(|facts| {
                facts
                    .iter()
                    .filter(|f| subject(f) == Some(session))
                    .collect()
            })
            .filter(|facts: &Vec<&Fact>| !facts.is_empty())
            .collect();
        assert_eq!(
            on_shards.len(),
            1,
            "{step}: facts of session {session} on one shard"
        );
        let got = &on_shards[0];
        let without_deletions = |facts: &[&Fact]| -> Vec<String> {
            facts
                .iter()
                .filter(|f| !is_deletion(f))
                .map(|f| format!("{f:?}"))
                .collect()
        };
        assert_eq!(
            without_deletions(got),
            without_deletions(&want),
            "{step}: facts of session {session}, in order"
        );
        for (at, deletion) in got.iter().enumerate().filter(|(_, f)| is_deletion(f)) {
            let removal = removal_before(deletion).expect("a deletion");
            assert!(
                got[..at].contains(&&removal),
                "{step}: {deletion:?} after {removal:?}"
            );
        }
    }
}

fn facts_are_recorded_once_complete_and_in_order() {
    let mut h = Harness::new();
    for router in &mut h.cluster.routers {
        router.record_facts(true);
    }
    let realm = || -> std::sync::Arc<str> { "realm1".into() };
    let joined = |client: &Client| Fact::SessionJoined {
        realm: realm(),
        session: client.id,
        authid: client.id.to_string().into(),
        authrole: "anonymous".into(),
        authmethod: "anonymous",
        authprovider: "static",
        transport: TransportInfo {
            serializer: client.ser,
            kind: "sim",
            peer: format!("shard{}", client.conn.shard),
            listener: 0,
            secure: false,
        },
    };
    let left = |client: &Client| Fact::SessionLeft {
        realm: realm(),
        session: client.id,
        authid: client.id.to_string().into(),
        authrole: "anonymous".into(),
    };
    let a = h.join(Json);
    assert_facts(&mut h, "a joins", vec![joined(&a)]);
    let b = h.join(MsgPack);
    assert_facts(&mut h, "b joins", vec![joined(&b)]);

    let p = h.register(&a, "com.p");
    let created = |registration, procedure: &str, session| Fact::RegistrationCreated {
        realm: realm(),
        registration,
        procedure: procedure.into(),
        matching: "exact",
        invoke: "single",
        created: 0,
        session,
    };
    let callee_added = |registration, session| Fact::CalleeAdded {
        realm: realm(),
        registration,
        session,
    };
    assert_facts(
        &mut h,
        "a registers",
        vec![created(p, "com.p", a.id), callee_added(p, a.id)],
    );
    // A refused REGISTER is no fact.
    let request = h.request();
    h.send(
        &b,
        &Message::Register {
            request,
            options: Dict::new(),
            procedure: "com.p".into(),
        },
    );
    assert_error(
        &h.recv(&b),
        wire::code::REGISTER,
        request,
        uri::PROCEDURE_ALREADY_EXISTS,
    );
    assert_facts(&mut h, "b is refused", vec![]);

    let t = h.subscribe(&b, "com.t");
    let subscriber_added = |subscription, session| Fact::SubscriberAdded {
        realm: realm(),
        subscription,
        session,
    };
    let subscriber_removed = |subscription, session| Fact::SubscriberRemoved {
        realm: realm(),
        subscription,
        session,
    };
    assert_facts(
        &mut h,
        "b subscribes",
        vec![
            Fact::SubscriptionCreated {
                realm: realm(),
                subscription: t,
                topic: "com.t".into(),
                matching: "exact",
                created: 0,
                session: b.id,
            },
            subscriber_added(t, b.id),
        ],
    );
    assert_eq!(h.subscribe(&a, "com.t"), t);
    assert_facts(&mut h, "a subscribes too", vec![subscriber_added(t, a.id)]);
    let request = h.request();
    h.send(
        &b,
        &Message::Unsubscribe {
            request,
            subscription: t,
        },
    );
    assert!(matches!(h.recv(&b).msg(), Message::Unsubscribed { .. }));
    assert_facts(&mut h, "b unsubscribes", vec![subscriber_removed(t, b.id)]);

    h.unregister(&a, p);
    assert_facts(
        &mut h,
        "a unregisters",
        vec![
            Fact::CalleeRemoved {
                realm: realm(),
                registration: p,
                session: a.id,
            },
            Fact::RegistrationDeleted {
                realm: realm(),
                registration: p,
                session: a.id,
            },
        ],
    );
    let q = h.register(&a, "com.q");
    assert_facts(
        &mut h,
        "a registers again",
        vec![created(q, "com.q", a.id), callee_added(q, a.id)],
    );

    h.disconnect(&a);
    assert_facts(
        &mut h,
        "a goes away",
        vec![
            Fact::CalleeRemoved {
                realm: realm(),
                registration: q,
                session: a.id,
            },
            Fact::RegistrationDeleted {
                realm: realm(),
                registration: q,
                session: a.id,
            },
            subscriber_removed(t, a.id),
            Fact::SubscriptionDeleted {
                realm: realm(),
                subscription: t,
                session: a.id,
            },
            left(&a),
        ],
    );
    h.disconnect(&b);
    assert_facts(&mut h, "b goes away", vec![left(&b)]);
    h.assert_tables_empty();
}

fn session_meta_events_reach_subscribers_on_every_shard_in_order() {
    let mut h = Harness::new();
    // Watchers on every shard (at 3 shards, one each).
    let watchers: Vec<Client> = (0..3)
        .map(|i| h.join(if i % 2 == 0 { Json } else { MsgPack }))
        .collect();
    let mut subscriptions = Vec::new();
    for watcher in &watchers {
        subscriptions.push((
            h.subscribe(watcher, "wamp.session.on_join"),
            h.subscribe(watcher, "wamp.session.on_leave"),
        ));
    }
    let newcomer = h.join(MsgPack);
    h.disconnect(&newcomer);
    for (watcher, (on_join, on_leave)) in watchers.iter().zip(&subscriptions) {
        let received = h.recv(watcher);
        let Message::Event {
            subscription,
            details,
            payload,
            ..
        } = received.msg()
        else {
            panic!("expected on_join EVENT")
        };
        assert_eq!(subscription, *on_join);
        assert!(
            details.get("publisher").is_none(),
            "the router publishes as nobody"
        );
        let (event_args, _) = payload_values(&payload);
        let [Value::Dict(joined)] = event_args.as_slice() else {
            panic!("on_join carries one dict: {event_args:?}")
        };
        assert_eq!(joined.get_u64("session"), Some(newcomer.id));
        assert_eq!(
            joined.get_str("authid"),
            Some(newcomer.id.to_string().as_str())
        );
        assert_eq!(joined.get_str("authrole"), Some("anonymous"));
        assert_eq!(joined.get_str("authmethod"), Some("anonymous"));
        assert_eq!(
            joined
                .get_dict("transport")
                .and_then(|t| t.get_str("serializer")),
            Some("msgpack")
        );
        let received = h.recv(watcher);
        let Message::Event {
            subscription,
            payload,
            ..
        } = received.msg()
        else {
            panic!("expected on_leave EVENT")
        };
        assert_eq!(subscription, *on_leave);
        assert_eq!(
            payload_values(&payload).0,
            vec![
                Value::UInt(newcomer.id),
                s(&newcomer.id.to_string()),
                s("anonymous")
            ]
        );
        h.expect_nothing(watcher);
    }
}

// ------------------------------------------------------------------------------------------
// Every scenario at 1 and at 3 shards
// ------------------------------------------------------------------------------------------

at_1_and_3_shards!(
    request_options_with_too_many_entries_are_refused_with_invalid_argument,
    auto_created_realms_are_bounded_and_go_when_unused,
    per_session_registration_and_subscription_limits_hold_even_when_pipelined,
    uris_longer_than_the_limit_are_refused_with_invalid_uri,
    publish_to_the_wamp_namespace_is_refused_and_subscribing_to_it_is_not,
    an_event_some_subscribers_cannot_receive_is_refused_when_acknowledged_and_counted_when_not,
    invalid_utf8_in_a_msgpack_payload_str_is_a_violation,
    session_meta_events_reach_subscribers_on_every_shard_in_order,
    a_session_without_hello_is_closed_at_its_deadline,
    a_session_closed_before_hello_leaves_no_deadline,
    wamp_session_count_is_the_same_from_every_shard,
    facts_are_recorded_once_complete_and_in_order,
    welcome_announces_exactly_the_implemented_features_and_anonymous_identity,
    session_ids_are_distinct_and_replay_with_the_seed,
    unknown_realm_is_aborted_with_no_such_realm,
    unknown_realm_is_created_with_auto_create_realms,
    configured_realms_are_the_only_ones,
    invalid_realm_uri_is_aborted_with_invalid_uri,
    authmethods_must_offer_anonymous,
    hello_needs_a_known_role,
    messages_before_hello_are_violations_with_a_readable_message,
    abort_before_hello_is_not_answered,
    second_hello_is_a_violation_and_drops_what_the_session_owned,
    router_only_messages_from_a_client_are_violations,
    undecodable_frames_are_violations_with_the_decoder_text,
    garbage_before_hello_is_a_violation_too,
    goodbye_is_answered_and_cleans_up,
    abort_from_a_client_is_not_answered_and_cleans_up,
    client_error_for_anything_but_invocation_is_a_violation,
    request_ids_may_be_random_by_default_but_must_be_sequential_when_strict,
    register_refusals,
    registration_ids_are_router_scoped_and_unregister_checks_ownership,
    call_with_no_callee_or_bad_uri_is_refused,
    call_payload_passes_through_byte_exact_with_one_serializer,
    call_payload_is_transcoded_between_every_pair_of_serializers_including_binary,
    mixed_serializers_json_caller_cbor_callee_msgpack_subscriber,
    cbor_payloads_pass_between_cbor_sessions_untouched_and_an_untranscodable_one_is_refused,
    callee_error_is_passed_to_the_caller_with_details_uri_and_payload,
    invocation_ids_are_sequential_per_callee,
    caller_and_callee_may_be_the_same_session,
    callee_leaving_cancels_its_pending_calls,
    caller_leaving_makes_the_late_answer_silently_discarded,
    yield_or_error_for_an_unknown_invocation_is_a_violation,
    pending_calls_per_caller_are_bounded,
    cancel_of_a_call_to_a_callee_without_call_canceling_is_skip,
    caller_identification_on_request_or_by_registration,
    roundrobin_cycles_over_the_callees_in_registration_order_under_one_id,
    first_and_last_pick_the_oldest_and_newest_and_move_on_when_it_goes,
    random_reaches_every_callee_and_replays_with_the_seed,
    shared_registration_refusals_and_the_first_policy_wins,
    one_callee_unregistering_keeps_the_registration_and_its_id_for_the_others,
    last_callee_leaving_removes_the_shared_registration,
    a_shared_callee_leaving_cancels_only_its_own_pending_calls,
    disclose_caller_is_each_callees_own_option,
    one_subscription_id_per_topic,
    subscribe_refusals,
    unsubscribe_checks_membership_and_the_last_subscriber_removes_the_subscription,
    publish_acknowledged_or_not,
    publish_to_an_invalid_topic_is_refused_only_when_acknowledged,
    strict_uri_check_refuses_what_loose_accepts,
    publisher_is_excluded_unless_exclude_me_is_false,
    event_is_encoded_once_per_serializer_and_shared_by_its_subscribers,
    publisher_identification_with_disclose_me,
    subscriber_black_and_white_listing,
    tables_are_empty_after_everyone_leaves,
    shutdown_says_goodbye_to_every_established_session_and_closes_all,
    input_after_close_is_ignored_and_keys_are_reused_cleanly,
);
