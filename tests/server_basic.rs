//! Basic Profile over real sockets: the `wampring` binary is started on loopback ports and
//! driven by blocking test clients (tests/common). Every session/RPC/PubSub rule is generated
//! for each of the six {WebSocket, RawSocket} x {JSON, MessagePack, CBOR} combinations (modules
//! `ws_json`, `ws_msgpack`, `ws_cbor`, `raw_json`, ...); the `mixed_*` tests check transcoding
//! between sessions that speak different serializers over different transports. Each test runs
//! its own router process so a crash is attributed to the test that caused it.

mod common;

use base64::Engine;
use common::*;
use wampring::net::TransportKind;
use wampring::wire::{code, Dict, Message, Serializer, Value};

const WS: TransportKind = TransportKind::WebSocket;
const RAW: TransportKind = TransportKind::RawSocket;
const JSON: Serializer = Serializer::Json;
const MSGPACK: Serializer = Serializer::MsgPack;
const CBOR: Serializer = Serializer::Cbor;

macro_rules! per_combo {
    ($($test:ident),* $(,)?) => {
        per_combo!(@mod ws_json, WS, JSON; $($test),*);
        per_combo!(@mod ws_msgpack, WS, MSGPACK; $($test),*);
        per_combo!(@mod ws_cbor, WS, CBOR; $($test),*);
        per_combo!(@mod raw_json, RAW, JSON; $($test),*);
        per_combo!(@mod raw_msgpack, RAW, MSGPACK; $($test),*);
        per_combo!(@mod raw_cbor, RAW, CBOR; $($test),*);
    };
    (@mod $m:ident, $kind:ident, $ser:ident; $($test:ident),*) => {
        mod $m {
            $(
                #[test]
                fn $test() {
                    super::$test(super::$kind, super::$ser)
                }
            )*
        }
    };
}

per_combo!(
    hello_gets_welcome_with_broker_and_dealer,
    unknown_realm_is_aborted,
    goodbye_is_answered_and_transport_closes,
    register_and_duplicate_register,
    unregister_known_and_unknown,
    call_yield_result_roundtrip,
    callee_error_reaches_caller,
    call_unknown_procedure,
    callee_leaving_cancels_pending_call,
    caller_leaving_discards_late_yield,
    subscribe_same_topic_shares_subscription_id,
    unsubscribe_unknown_subscription,
    publish_acknowledged_reaches_subscribers,
    publish_unacknowledged_sends_no_reply,
    publisher_exclusion,
    unsubscribe_stops_events,
    events_keep_publish_order_across_topics,
    invocations_keep_call_order_across_procedures,
);

fn hello_gets_welcome_with_broker_and_dealer(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut a = TestClient::connect(k, ser, router.addr(k));
    let details = a.hello_details(REALM);
    let roles = details
        .get_dict("roles")
        .unwrap_or_else(|| panic!("WELCOME.Details.roles missing: {details:?}"));
    assert!(
        roles.get_dict("broker").is_some(),
        "WELCOME roles lack a broker dict: {roles:?}"
    );
    assert!(
        roles.get_dict("dealer").is_some(),
        "WELCOME roles lack a dealer dict: {roles:?}"
    );
    // A second session gets a different id (ids are random over [1, 2^53]).
    let b = router.join("b", k, ser);
    assert_ne!(a.session, b.session, "two sessions got the same id");
}

fn unknown_realm_is_aborted(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut c = TestClient::connect(k, ser, router.addr(k));
    let reply = c.hello_reply("no.such.realm");
    match reply.get() {
        Message::Abort { reason, .. } => assert_eq!(reason, "wamp.error.no_such_realm"),
        _ => panic!("HELLO to an unknown realm: expected ABORT, got {reply:?}"),
    }
    // The router still serves the configured realm.
    router.join("ok", k, ser);
}

fn goodbye_is_answered_and_transport_closes(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut c = router.join("c", k, ser);
    c.goodbye();
    let m = c.recv();
    match m.get() {
        Message::Goodbye { reason, .. } => assert_eq!(reason, "wamp.close.goodbye_and_out"),
        _ => panic!("expected GOODBYE, got {m:?}"),
    }
    c.expect_closed();
}

fn register_and_duplicate_register(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut a = router.join("a", k, ser);
    let mut b = router.join("b", k, ser);
    let reg = a.register("com.example.proc");
    // Another session: procedure_already_exists.
    let req = b.send_register("com.example.proc");
    b.expect_error_uri(code::REGISTER, req, "wamp.error.procedure_already_exists");
    // The same session again: also procedure_already_exists.
    let req = a.send_register("com.example.proc");
    a.expect_error_uri(code::REGISTER, req, "wamp.error.procedure_already_exists");
    // A different procedure gets a different registration id.
    let reg2 = b.register("com.example.other");
    assert_ne!(reg, reg2, "two procedures share a registration id");
    // The failed attempts did not disturb the original registration: calls reach `a`.
    let mut caller = router.join("caller", k, ser);
    let call = caller.call("com.example.proc", &[u(1)], None);
    let inv = a.expect_invocation();
    assert_eq!(inv.registration, reg);
    a.yield_(inv.request, &[u(2)], None);
    assert_payload("RESULT", &caller.expect_result(call), &[u(2)], None);
    b.expect_no_message(QUIET);
}

fn unregister_known_and_unknown(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut a = router.join("a", k, ser);
    let req = a.send_unregister(123_456);
    a.expect_error_uri(code::UNREGISTER, req, "wamp.error.no_such_registration");
    let reg = a.register("com.example.proc");
    // Someone else's registration id is "no such registration" for this session.
    let mut b = router.join("b", k, ser);
    let req = b.send_unregister(reg);
    b.expect_error_uri(code::UNREGISTER, req, "wamp.error.no_such_registration");
    // The owner unregisters; calls then fail; unregistering again fails.
    let req = a.send_unregister(reg);
    let m = a.recv();
    match m.get() {
        Message::Unregistered {
            request,
            details: None,
        } => assert_eq!(request, req),
        _ => panic!("expected UNREGISTERED {req}, got {m:?}"),
    }
    let call = b.call("com.example.proc", &[], None);
    b.expect_error_uri(code::CALL, call, "wamp.error.no_such_procedure");
    let req = a.send_unregister(reg);
    a.expect_error_uri(code::UNREGISTER, req, "wamp.error.no_such_registration");
}

fn call_yield_result_roundtrip(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut callee = router.join("callee", k, ser);
    let reg = callee.register("com.example.echo");
    let mut caller = router.join("caller", k, ser);
    let mut caller2 = router.join("caller2", k, ser);
    let (args, kwargs) = rich_payload();

    // Three calls from two callers: INVOCATION ids are sequential per callee (1, 2, 3).
    let mut expected_inv = 1;
    for round in 0..3u64 {
        let c = if round == 1 {
            &mut caller2
        } else {
            &mut caller
        };
        let tag = [u(round), s("round")];
        let mut call_args = args.clone();
        call_args.extend_from_slice(&tag);
        let req = c.call("com.example.echo", &call_args, Some(&kwargs));
        let inv = callee.expect_invocation();
        assert_eq!(
            inv.request, expected_inv,
            "INVOCATION request ids must be sequential per callee"
        );
        assert_eq!(inv.registration, reg, "INVOCATION names the registration");
        assert_payload("INVOCATION", &inv.payload, &call_args, Some(&kwargs));
        // The callee answers with its own args and kwargs.
        let reply_kwargs = dict(vec![
            ("answer", Value::Dict(kwargs.clone())),
            ("round", u(round)),
        ]);
        callee.yield_(inv.request, &tag, Some(&reply_kwargs));
        let got = c.expect_result(req);
        assert_payload("RESULT", &got, &tag, Some(&reply_kwargs));
        expected_inv += 1;
    }

    // Empty payload both ways.
    let req = caller.call("com.example.echo", &[], None);
    let inv = callee.expect_invocation();
    assert_eq!(inv.request, expected_inv);
    assert_payload("empty INVOCATION", &inv.payload, &[], None);
    callee.yield_(inv.request, &[], None);
    assert_payload("empty RESULT", &caller.expect_result(req), &[], None);
    caller2.expect_no_message(QUIET);
}

fn callee_error_reaches_caller(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut callee = router.join("callee", k, ser);
    callee.register("com.example.fail");
    let mut caller = router.join("caller", k, ser);
    let req = caller.call("com.example.fail", &[u(7)], None);
    let inv = callee.expect_invocation();
    let (args, kwargs) = rich_payload();
    callee.error_invocation(
        inv.request,
        "com.example.error.custom",
        &args,
        Some(&kwargs),
    );
    let err = caller.expect_error_uri(code::CALL, req, "com.example.error.custom");
    assert_payload("ERROR", &err.payload, &args, Some(&kwargs));
    // The callee is still serving.
    let req = caller.call("com.example.fail", &[], None);
    let inv = callee.expect_invocation();
    callee.yield_(inv.request, &[s("ok")], None);
    assert_payload(
        "RESULT after ERROR",
        &caller.expect_result(req),
        &[s("ok")],
        None,
    );
}

fn call_unknown_procedure(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut caller = router.join("caller", k, ser);
    let req = caller.call("com.example.nobody", &[u(1)], None);
    caller.expect_error_uri(code::CALL, req, "wamp.error.no_such_procedure");
    // The session survives the error.
    let req = caller.call("com.example.nobody.either", &[], None);
    caller.expect_error_uri(code::CALL, req, "wamp.error.no_such_procedure");
}

fn callee_leaving_cancels_pending_call(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut callee = router.join("callee", k, ser);
    callee.register("com.example.slow");
    let mut caller = router.join("caller", k, ser);
    let req = caller.call("com.example.slow", &[u(1)], None);
    callee.expect_invocation();
    callee.disconnect();
    caller.expect_error_uri(code::CALL, req, "wamp.error.canceled");
    // The gone callee's registration was removed.
    let req = caller.call("com.example.slow", &[], None);
    caller.expect_error_uri(code::CALL, req, "wamp.error.no_such_procedure");
}

fn caller_leaving_discards_late_yield(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut callee = router.join("callee", k, ser);
    callee.register("com.example.slow");
    let mut caller = router.join("caller", k, ser);
    caller.call("com.example.slow", &[u(1)], None);
    let first = callee.expect_invocation();
    caller.disconnect();
    // Give the router time to see the caller go (the callee announced no call_canceling, so it
    // must not get an INTERRUPT either).
    callee.expect_no_message(QUIET);
    callee.yield_(first.request, &[s("too late")], None);
    callee.expect_no_message(QUIET);
    // The callee session is fine and serves the next call.
    let mut caller2 = router.join("caller2", k, ser);
    let req = caller2.call("com.example.slow", &[u(2)], None);
    let inv = callee.expect_invocation();
    assert_eq!(
        inv.request,
        first.request + 1,
        "INVOCATION ids stay sequential"
    );
    assert_payload("INVOCATION", &inv.payload, &[u(2)], None);
    callee.yield_(inv.request, &[s("on time")], None);
    assert_payload("RESULT", &caller2.expect_result(req), &[s("on time")], None);
}

fn subscribe_same_topic_shares_subscription_id(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut a = router.join("a", k, ser);
    let mut b = router.join("b", k, ser);
    let sa = a.subscribe("com.example.topic");
    let sb = b.subscribe("com.example.topic");
    assert_eq!(
        sa, sb,
        "two sessions subscribing to the same topic get the same subscription id"
    );
    // The same session subscribing again gets the existing id too.
    let again = a.subscribe("com.example.topic");
    assert_eq!(again, sa);
    let other = a.subscribe("com.example.other");
    assert_ne!(other, sa, "different topics share a subscription id");
}

fn unsubscribe_unknown_subscription(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut a = router.join("a", k, ser);
    let req = a.send_unsubscribe(987_654);
    a.expect_error_uri(code::UNSUBSCRIBE, req, "wamp.error.no_such_subscription");
    // A subscription of another session is not this session's to drop.
    let mut b = router.join("b", k, ser);
    let sub = b.subscribe("com.example.topic");
    let req = a.send_unsubscribe(sub);
    a.expect_error_uri(code::UNSUBSCRIBE, req, "wamp.error.no_such_subscription");
    // Unsubscribing twice: the second is unknown.
    b.unsubscribe(sub);
    let req = b.send_unsubscribe(sub);
    b.expect_error_uri(code::UNSUBSCRIBE, req, "wamp.error.no_such_subscription");
}

fn ack() -> Dict<'static> {
    dict(vec![("acknowledge", Value::Bool(true))])
}

fn publish_acknowledged_reaches_subscribers(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut s1 = router.join("s1", k, ser);
    let mut s2 = router.join("s2", k, ser);
    let sub1 = s1.subscribe("com.example.topic");
    let sub2 = s2.subscribe("com.example.topic");
    let mut other = router.join("other", k, ser);
    other.subscribe("com.example.unrelated");
    let mut publisher = router.join("pub", k, ser);
    let (args, kwargs) = rich_payload();
    let req = publisher.publish("com.example.topic", ack(), &args, Some(&kwargs));
    let publication = publisher.expect_published(req);
    for (c, sub) in [(&mut s1, sub1), (&mut s2, sub2)] {
        let ev = c.expect_event();
        assert_eq!(ev.subscription, sub, "EVENT names the subscription");
        assert_eq!(
            ev.publication, publication,
            "EVENT and PUBLISHED share the publication id"
        );
        assert_payload("EVENT", &ev.payload, &args, Some(&kwargs));
        c.expect_no_message(QUIET);
    }
    other.expect_no_message(QUIET);
    // A second publication gets a different id.
    let req = publisher.publish("com.example.topic", ack(), &[], None);
    let publication2 = publisher.expect_published(req);
    assert_ne!(publication, publication2);
    assert_eq!(s1.expect_event().publication, publication2);
}

fn publish_unacknowledged_sends_no_reply(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut s1 = router.join("s1", k, ser);
    let sub = s1.subscribe("com.example.topic");
    let mut publisher = router.join("pub", k, ser);
    for n in 0..3u64 {
        publisher.publish("com.example.topic", Dict::new(), &[u(n)], None);
    }
    // Events arrive in publish order.
    for n in 0..3u64 {
        let ev = s1.expect_event();
        assert_eq!(ev.subscription, sub);
        assert_payload("EVENT", &ev.payload, &[u(n)], None);
    }
    publisher.expect_no_message(QUIET);
    // Publishing to a topic nobody subscribed is silent too.
    publisher.publish("com.example.nobody", Dict::new(), &[], None);
    publisher.expect_no_message(QUIET);
}

fn publisher_exclusion(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut publisher = TestClient::connect(k, ser, router.addr(k));
    let details = publisher.hello_details(REALM);
    let announces_exclusion = details
        .get_dict("roles")
        .and_then(|r| r.get_dict("broker"))
        .and_then(|b| b.get_dict("features"))
        .and_then(|f| f.get_bool("publisher_exclusion"))
        .unwrap_or(false);
    let mut other = router.join("other", k, ser);
    let own_sub = publisher.subscribe("com.example.topic");
    other.subscribe("com.example.topic");

    // Default: the publisher does not get its own event.
    let req = publisher.publish("com.example.topic", ack(), &[s("default")], None);
    publisher.expect_published(req);
    assert_payload(
        "EVENT",
        &other.expect_event().payload,
        &[s("default")],
        None,
    );
    publisher.expect_no_message(QUIET);

    if !announces_exclusion {
        eprintln!("router does not announce publisher_exclusion; only the default was checked");
        return;
    }
    let mut opts = ack();
    opts.insert("exclude_me", false);
    let req = publisher.publish("com.example.topic", opts, &[s("include me")], None);
    // PUBLISHED and the publisher's own EVENT may come in either order.
    let (mut published, mut event) = (false, false);
    for _ in 0..2 {
        let m = publisher.recv();
        match m.get() {
            Message::Published { request, .. } if request == req && !published => published = true,
            Message::Event { subscription, .. } if subscription == own_sub && !event => {
                assert_payload("own EVENT", &m.payload(), &[s("include me")], None);
                event = true;
            }
            _ => panic!("exclude_me=false: expected PUBLISHED and own EVENT, got {m:?}"),
        }
    }
    assert_payload(
        "EVENT",
        &other.expect_event().payload,
        &[s("include me")],
        None,
    );
    publisher.expect_no_message(QUIET);
}

fn unsubscribe_stops_events(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut s1 = router.join("s1", k, ser);
    let mut s2 = router.join("s2", k, ser);
    let sub = s1.subscribe("com.example.topic");
    s2.subscribe("com.example.topic");
    let mut publisher = router.join("pub", k, ser);
    let req = publisher.publish("com.example.topic", ack(), &[u(1)], None);
    publisher.expect_published(req);
    s1.expect_event();
    s2.expect_event();

    s1.unsubscribe(sub);
    let req = publisher.publish("com.example.topic", ack(), &[u(2)], None);
    publisher.expect_published(req);
    // s2 is still subscribed (the shared subscription survives one subscriber leaving).
    assert_payload("EVENT", &s2.expect_event().payload, &[u(2)], None);
    s1.expect_no_message(QUIET);

    // After the last subscriber leaves, nobody gets anything; a new subscribe works again.
    s2.unsubscribe(sub);
    let req = publisher.publish("com.example.topic", ack(), &[u(3)], None);
    publisher.expect_published(req);
    s2.expect_no_message(QUIET);
    let sub_again = s1.subscribe("com.example.topic");
    let req = publisher.publish("com.example.topic", ack(), &[u(4)], None);
    publisher.expect_published(req);
    let ev = s1.expect_event();
    assert_eq!(ev.subscription, sub_again);
    assert_payload("EVENT after resubscribe", &ev.payload, &[u(4)], None);
}

fn events_keep_publish_order_across_topics(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut sub = router.join("sub", k, ser);
    let topics = ["com.example.a", "com.example.b", "com.example.c"];
    let ids: Vec<u64> = topics.iter().map(|t| sub.subscribe(t)).collect();
    let mut publisher = router.join("pub", k, ser);
    for n in 0..30u64 {
        publisher.publish(topics[(n % 3) as usize], Dict::new(), &[u(n)], None);
    }
    // Per (publisher, subscriber), events arrive in publish order across all topics.
    for n in 0..30u64 {
        let ev = sub.expect_event();
        assert_eq!(
            ev.subscription,
            ids[(n % 3) as usize],
            "event {n}: wrong subscription"
        );
        assert_payload(&format!("event {n}"), &ev.payload, &[u(n)], None);
    }
    sub.expect_no_message(QUIET);
}

fn invocations_keep_call_order_across_procedures(k: TransportKind, ser: Serializer) {
    let router = RouterProcess::default_start();
    let mut callee = router.join("callee", k, ser);
    let procs = ["com.example.p1", "com.example.p2", "com.example.p3"];
    let regs: Vec<u64> = procs.iter().map(|p| callee.register(p)).collect();
    let mut caller = router.join("caller", k, ser);
    let reqs: Vec<u64> = (0..30u64)
        .map(|n| caller.call(procs[(n % 3) as usize], &[u(n)], None))
        .collect();
    // Per (caller, callee), INVOCATIONs arrive in CALL order across procedures.
    let mut invs = Vec::new();
    for n in 0..30u64 {
        let inv = callee.expect_invocation();
        assert_eq!(
            inv.registration,
            regs[(n % 3) as usize],
            "invocation {n}: wrong registration"
        );
        assert_eq!(inv.request, n + 1, "invocation ids are sequential");
        assert_payload(&format!("invocation {n}"), &inv.payload, &[u(n)], None);
        invs.push(inv.request);
    }
    // Answer in reverse order; each RESULT goes to its own call.
    for (n, inv) in invs.iter().enumerate().rev() {
        callee.yield_(*inv, &[u(n as u64 * 10)], None);
    }
    // Results of different calls are not ordered: match them by request id.
    let mut pending: std::collections::HashMap<u64, u64> = reqs
        .iter()
        .enumerate()
        .map(|(n, r)| (*r, n as u64))
        .collect();
    for _ in 0..30 {
        let m = caller.recv();
        let request = match m.get() {
            Message::Result { request, .. } => request,
            _ => panic!("expected RESULT, got {m:?}"),
        };
        let n = pending
            .remove(&request)
            .unwrap_or_else(|| panic!("unexpected RESULT {request}"));
        assert_payload("RESULT", &m.payload(), &[u(n * 10)], None);
    }
}

// ------------------------------------------------------------------------------------------
// Mixed serializers
// ------------------------------------------------------------------------------------------

/// Asserts a JSON frame carries `bytes` as the WAMP binary string `"\u0000" + base64`.
fn assert_json_binary(m: &Msg, bytes: &[u8]) {
    assert_eq!(m.ser, JSON);
    let text = String::from_utf8_lossy(&m.frame);
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let want = format!("\"\\u0000{b64}\"");
    assert!(
        text.contains(&want),
        "JSON frame should carry binary as {want}: {text}"
    );
}

fn binary_sample() -> Vec<u8> {
    vec![0, 1, 2, 127, 128, 253, 254, 255]
}

/// One RPC roundtrip between a caller and a callee speaking different serializers.
fn mixed_call(caller_t: (TransportKind, Serializer), callee_t: (TransportKind, Serializer)) {
    let router = RouterProcess::default_start();
    let mut callee = router.join("callee", callee_t.0, callee_t.1);
    callee.register("com.example.mixed");
    let mut caller = router.join("caller", caller_t.0, caller_t.1);
    let (args, kwargs) = rich_payload();

    let req = caller.call("com.example.mixed", &args, Some(&kwargs));
    let raw_inv = callee.recv();
    let (inv_req, payload) = match raw_inv.get() {
        Message::Invocation { request, .. } => (request, raw_inv.payload()),
        _ => panic!("expected INVOCATION, got {raw_inv:?}"),
    };
    assert_payload("transcoded INVOCATION", &payload, &args, Some(&kwargs));
    if callee.ser == JSON {
        assert_json_binary(&raw_inv, &binary_sample());
    }

    // The callee answers with its own rich payload (plus a marker), transcoded back.
    let mut reply_args = args.clone();
    reply_args.push(s("from the callee"));
    let reply_kwargs = dict(vec![
        ("echo", Value::Dict(kwargs.clone())),
        ("blob", bin(&binary_sample())),
    ]);
    callee.yield_(inv_req, &reply_args, Some(&reply_kwargs));
    let raw_res = caller.recv();
    match raw_res.get() {
        Message::Result { request, .. } => assert_eq!(request, req),
        _ => panic!("expected RESULT {req}, got {raw_res:?}"),
    }
    assert_payload(
        "transcoded RESULT",
        &raw_res.payload(),
        &reply_args,
        Some(&reply_kwargs),
    );
    if caller.ser == JSON {
        assert_json_binary(&raw_res, &binary_sample());
    }

    // A callee ERROR with payload crosses serializers too.
    let req = caller.call("com.example.mixed", &[], None);
    let inv = callee.expect_invocation();
    callee.error_invocation(inv.request, "com.example.error.mixed", &args, Some(&kwargs));
    let err = caller.expect_error_uri(code::CALL, req, "com.example.error.mixed");
    assert_payload("transcoded ERROR", &err.payload, &args, Some(&kwargs));
}

#[test]
fn mixed_json_caller_msgpack_callee() {
    mixed_call((WS, JSON), (RAW, MSGPACK));
    mixed_call((WS, JSON), (WS, MSGPACK));
}

#[test]
fn mixed_msgpack_caller_json_callee() {
    mixed_call((RAW, MSGPACK), (WS, JSON));
    mixed_call((WS, MSGPACK), (RAW, JSON));
}

#[test]
fn mixed_cbor_with_json_and_msgpack_both_ways() {
    mixed_call((WS, JSON), (RAW, CBOR));
    mixed_call((RAW, CBOR), (WS, MSGPACK));
    mixed_call((WS, CBOR), (RAW, JSON));
    mixed_call((RAW, MSGPACK), (WS, CBOR));
}

#[test]
fn mixed_json_publisher_to_subscribers_of_every_serializer() {
    let router = RouterProcess::default_start();
    let subscribers: Vec<(TransportKind, Serializer)> = vec![
        (WS, MSGPACK),
        (RAW, MSGPACK),
        (WS, JSON),
        (RAW, JSON),
        (WS, CBOR),
        (RAW, CBOR),
    ];
    let mut subs: Vec<(TestClient, u64)> = subscribers
        .iter()
        .enumerate()
        .map(|(n, &(k, ser))| {
            let mut c = router.join(&format!("sub{n}-{k:?}-{ser}"), k, ser);
            let id = c.subscribe("com.example.mixed");
            (c, id)
        })
        .collect();
    let mut publisher = router.join("pub", RAW, JSON);
    let (args, kwargs) = rich_payload();
    let req = publisher.publish("com.example.mixed", ack(), &args, Some(&kwargs));
    let publication = publisher.expect_published(req);
    for (c, sub) in subs.iter_mut() {
        let m = c.recv();
        match m.get() {
            Message::Event {
                subscription,
                publication: p,
                ..
            } => {
                assert_eq!(subscription, *sub);
                assert_eq!(p, publication);
            }
            _ => panic!("{}: expected EVENT, got {m:?}", c.name),
        }
        assert_payload(
            &format!("EVENT at {}", c.name),
            &m.payload(),
            &args,
            Some(&kwargs),
        );
        if c.ser == JSON {
            assert_json_binary(&m, &binary_sample());
        }
    }
    // And from the other serializers: MessagePack and CBOR publishers to the same subscribers.
    for (name, kind, ser) in [("pub2", WS, MSGPACK), ("pub3", RAW, CBOR)] {
        let mut publisher = router.join(name, kind, ser);
        publisher.publish("com.example.mixed", Dict::new(), &args, Some(&kwargs));
        for (c, _) in subs.iter_mut() {
            let ev = c.expect_event();
            assert_payload(
                &format!("EVENT from {ser} at {}", c.name),
                &ev.payload,
                &args,
                Some(&kwargs),
            );
        }
    }
}
