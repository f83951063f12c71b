//! Several shards over real sockets: the `wampring` binary runs 2 shards (`--cores 2`) with
//! `placement = "round-robin"`, and every test puts its sessions on chosen shards — checked in
//! the router's log ("session <id> opened on shard <k>"), not assumed — so that caller and
//! callee, publisher and subscribers talk across the shard-to-shard channels: RPC both ways,
//! a callee leaving with a call pending, a caller leaving, PubSub fan-out to both shards with
//! one subscription id and publish order kept across topics, REGISTERED visible on every
//! shard at once, a shared (roundrobin) registration whose callees sit on both shards, and
//! SIGTERM saying GOODBYE on every shard, and a cross-shard flood held back by backpressure at
//! `runtime.shard_backlog_limit`.

mod common;

use common::*;
use wampring::net::TransportKind;
use wampring::wire::{code, Dict, Message, Serializer, Value};

const WS: TransportKind = TransportKind::WebSocket;
const RAW: TransportKind = TransportKind::RawSocket;
const JSON: Serializer = Serializer::Json;
const MSGPACK: Serializer = Serializer::MsgPack;

/// Shards in these tests: the machine has 2 cores (more would be refused where it has fewer).
const SHARDS: usize = 2;

fn ack() -> Dict<'static> {
    let mut options = Dict::new();
    options.insert("acknowledge", Value::Bool(true));
    options
}

#[test]
fn round_robin_places_consecutive_connections_on_consecutive_shards() {
    let router = RouterProcess::start_shards(SHARDS);
    let clients: Vec<TestClient> = (0..4)
        .map(|n| router.join(&format!("c{n}"), RAW, JSON))
        .collect();
    let shards: Vec<usize> = clients
        .iter()
        .map(|c| router.shard_of(c.session).expect("placement logged"))
        .collect();
    for pair in shards.windows(2) {
        assert_eq!(pair[1], (pair[0] + 1) % SHARDS, "placement {shards:?}");
    }
    // And sessions are served where they landed (a local round trip on each shard).
    drop(clients);
    for shard in 0..SHARDS {
        let mut callee = router.join_on_shard("callee", WS, JSON, shard);
        let procedure = format!("com.example.local{shard}");
        callee.register(&procedure);
        let mut caller = router.join_on_shard("caller", WS, JSON, shard);
        let request = caller.call(&procedure, &[u(7)], None);
        let invocation = callee.expect_invocation();
        callee.yield_(invocation.request, &[u(8)], None);
        assert_payload("RESULT", &caller.expect_result(request), &[u(8)], None);
    }
}

#[test]
fn cross_shard_call_round_trip_both_directions() {
    let router = RouterProcess::start_shards(SHARDS);
    let mut callee0 = router.join_on_shard("callee0", RAW, JSON, 0);
    let mut callee1 = router.join_on_shard("callee1", WS, MSGPACK, 1);
    callee0.register("com.example.on0");
    callee1.register("com.example.on1");
    let mut caller0 = router.join_on_shard("caller0", WS, JSON, 0);
    let mut caller1 = router.join_on_shard("caller1", RAW, MSGPACK, 1);

    for round in 0..5u64 {
        // shard 0 -> shard 1
        let request = caller0.call("com.example.on1", &[u(round), s("to 1")], None);
        let invocation = callee1.expect_invocation();
        assert_payload(
            "INVOCATION on 1",
            &invocation.payload,
            &[u(round), s("to 1")],
            None,
        );
        callee1.yield_(invocation.request, &[u(round + 100)], None);
        assert_payload(
            "RESULT on 0",
            &caller0.expect_result(request),
            &[u(round + 100)],
            None,
        );

        // shard 1 -> shard 0
        let mut kwargs = Dict::new();
        kwargs.insert("round", Value::UInt(round));
        let request = caller1.call("com.example.on0", &[s("to 0")], Some(&kwargs));
        let invocation = callee0.expect_invocation();
        assert_payload(
            "INVOCATION on 0",
            &invocation.payload,
            &[s("to 0")],
            Some(&kwargs),
        );
        callee0.yield_(invocation.request, &[s("back")], Some(&kwargs));
        assert_payload(
            "RESULT on 1",
            &caller1.expect_result(request),
            &[s("back")],
            Some(&kwargs),
        );
    }

    // An error from a callee on the other shard reaches the caller too.
    let request = caller0.call("com.example.on1", &[], None);
    let invocation = callee1.expect_invocation();
    callee1.error_invocation(invocation.request, "com.example.oops", &[s("no")], None);
    let error = caller0.expect_error_uri(code::CALL, request, "com.example.oops");
    assert_payload("ERROR", &error.payload, &[s("no")], None);
}

#[test]
fn cross_shard_callee_leaving_with_a_pending_call_cancels_it() {
    let router = RouterProcess::start_shards(SHARDS);
    let mut callee = router.join_on_shard("callee", RAW, MSGPACK, 1);
    callee.register("com.example.slow");
    let mut caller = router.join_on_shard("caller", WS, JSON, 0);
    let request = caller.call("com.example.slow", &[u(1)], None);
    callee.expect_invocation();
    callee.disconnect();
    caller.expect_error_uri(code::CALL, request, "wamp.error.canceled");
    // The registration went with its callee, on every shard.
    let request = caller.call("com.example.slow", &[], None);
    caller.expect_error_uri(code::CALL, request, "wamp.error.no_such_procedure");
}

#[test]
fn cross_shard_caller_leaving_leaves_the_callee_working() {
    let router = RouterProcess::start_shards(SHARDS);
    let mut callee = router.join_on_shard("callee", WS, JSON, 1);
    callee.register("com.example.slow");
    let mut caller = router.join_on_shard("caller", RAW, JSON, 0);
    caller.call("com.example.slow", &[u(1)], None);
    let first = callee.expect_invocation();
    caller.disconnect();
    // The callee announced no call_canceling: no INTERRUPT; the late YIELD goes nowhere.
    callee.expect_no_message(QUIET);
    callee.yield_(first.request, &[s("too late")], None);
    callee.expect_no_message(QUIET);

    for shard in 0..SHARDS {
        let mut next = router.join_on_shard("next caller", RAW, JSON, shard);
        let request = next.call("com.example.slow", &[u(2)], None);
        let invocation = callee.expect_invocation();
        assert_payload("INVOCATION", &invocation.payload, &[u(2)], None);
        callee.yield_(invocation.request, &[s("on time")], None);
        assert_payload(
            "RESULT",
            &next.expect_result(request),
            &[s("on time")],
            None,
        );
    }
}

#[test]
fn publish_reaches_each_subscriber_on_both_shards_once_in_order() {
    let router = RouterProcess::start_shards(SHARDS);
    let mut local = router.join_on_shard("subscriber on 0", RAW, JSON, 0);
    let mut remote = router.join_on_shard("subscriber on 1", WS, MSGPACK, 1);
    let mut remote_too = router.join_on_shard("second subscriber on 1", RAW, JSON, 1);
    let topics = ["com.example.a", "com.example.b", "com.example.c"];
    let ids: Vec<u64> = topics.iter().map(|t| local.subscribe(t)).collect();
    for subscriber in [&mut remote, &mut remote_too] {
        let theirs: Vec<u64> = topics.iter().map(|t| subscriber.subscribe(t)).collect();
        assert_eq!(theirs, ids, "one subscription id per topic, on every shard");
    }
    let mut publisher = router.join_on_shard("publisher", WS, JSON, 0);
    const EVENTS: u64 = 60;
    for n in 0..EVENTS {
        let topic = topics[(n % 3) as usize];
        if n + 1 == EVENTS {
            let request = publisher.publish(topic, ack(), &[u(n)], None);
            publisher.expect_published(request);
        } else {
            publisher.publish(topic, Dict::new(), &[u(n)], None);
        }
    }
    for subscriber in [&mut local, &mut remote, &mut remote_too] {
        let mut publication = None;
        for n in 0..EVENTS {
            let event = subscriber.expect_event();
            assert_eq!(
                event.subscription,
                ids[(n % 3) as usize],
                "{}: event {n}: wrong subscription",
                subscriber.name
            );
            assert_payload(
                &format!("{}: event {n}", subscriber.name),
                &event.payload,
                &[u(n)],
                None,
            );
            assert_ne!(
                publication,
                Some(event.publication),
                "publication ids differ"
            );
            publication = Some(event.publication);
        }
        // Exactly one EVENT each: nothing more.
        subscriber.expect_no_message(QUIET);
    }
    // The publisher (a subscriber to nothing) got no event.
    publisher.expect_no_message(QUIET);
}

#[test]
fn registered_on_one_shard_is_callable_at_once_from_the_other() {
    let router = RouterProcess::start_shards(SHARDS);
    let mut callee = router.join_on_shard("callee", RAW, JSON, 1);
    let mut caller = router.join_on_shard("caller", RAW, MSGPACK, 0);
    for n in 0..20u64 {
        let procedure = format!("com.example.fresh{n}");
        callee.register(&procedure);
        // REGISTERED arrived: the registration must already be visible on shard 0.
        let request = caller.call(&procedure, &[u(n)], None);
        let invocation = callee.expect_invocation();
        callee.yield_(invocation.request, &[u(n)], None);
        assert_payload("RESULT", &caller.expect_result(request), &[u(n)], None);
    }
    // The same the other way round, subscriptions included.
    let mut subscriber = router.join_on_shard("subscriber", WS, JSON, 0);
    let mut publisher = router.join_on_shard("publisher", WS, MSGPACK, 1);
    for n in 0..10u64 {
        let topic = format!("com.example.topic{n}");
        let subscription = subscriber.subscribe(&topic);
        let request = publisher.publish(&topic, ack(), &[u(n)], None);
        publisher.expect_published(request);
        let event = subscriber.expect_event();
        assert_eq!(event.subscription, subscription);
        assert_payload("EVENT", &event.payload, &[u(n)], None);
    }
}

#[test]
fn sigterm_with_sessions_on_both_shards_says_goodbye_to_all_and_exits_zero() {
    let mut router = RouterProcess::start_shards(SHARDS);
    let mut clients = Vec::new();
    for shard in 0..SHARDS {
        clients.push(router.join_on_shard(&format!("ws on {shard}"), WS, JSON, shard));
        clients.push(router.join_on_shard(&format!("raw on {shard}"), RAW, MSGPACK, shard));
    }
    // Something shared across the shards, so that shutdown has cross-shard state to drop.
    clients[0].register("com.example.shared");
    clients[1].subscribe("com.example.topic");
    clients[2].subscribe("com.example.topic");

    let status = router
        .terminate(std::time::Duration::from_secs(2))
        .expect("still running 2 s after SIGTERM");
    let log = router.log();
    assert!(status.success(), "{status:?}\n{log}");
    for client in &mut clients {
        let message = client.recv();
        match message.get() {
            Message::Goodbye { reason, .. } => assert_eq!(
                reason, "wamp.close.system_shutdown",
                "{}: GOODBYE reason",
                client.name
            ),
            _ => panic!("{}: expected GOODBYE, got {message:?}", client.name),
        }
    }
    for shard in 0..SHARDS {
        assert!(
            log.contains(&format!("shard={shard}")) && log.contains("shutting down"),
            "shard {shard} did not shut down:\n{log}"
        );
    }
    assert!(log.contains("connections_handed_off="), "{log}");
}

/// REGISTER `procedure` with `invoke` = `policy` (request ids from 1000 up, apart from the
/// helper's own sequence) and return the REGISTERED id.
fn register_shared(client: &mut TestClient, request: u64, procedure: &str, policy: &str) -> u64 {
    let mut options = Dict::new();
    options.insert("invoke", s(policy));
    client.send(&Message::Register {
        request,
        options,
        procedure: procedure.into(),
    });
    let reply = client.recv();
    match reply.get() {
        Message::Registered {
            request: r,
            registration,
        } if r == request => registration,
        _ => panic!(
            "{}: expected REGISTERED {request}, got {reply:?}",
            client.name
        ),
    }
}

#[test]
fn shared_roundrobin_registration_with_callees_on_both_shards_reaches_both() {
    let router = RouterProcess::start_shards(SHARDS);
    let procedure = "com.example.shared";
    let mut callees = [
        router.join_on_shard("callee on 0", RAW, JSON, 0),
        router.join_on_shard("callee on 1", WS, MSGPACK, 1),
    ];
    let id = register_shared(&mut callees[0], 1000, procedure, "roundrobin");
    assert_eq!(
        register_shared(&mut callees[1], 1000, procedure, "roundrobin"),
        id,
        "both callees share one registration id"
    );
    // Each shard keeps its own cursor over the callees in registration order, so calls from
    // either shard alternate 0, 1, 0, 1, ...
    for shard in 0..SHARDS {
        let mut caller = router.join_on_shard(&format!("caller on {shard}"), WS, JSON, shard);
        for n in 0..6u64 {
            let request = caller.call(procedure, &[u(n)], None);
            let callee = &mut callees[(n % 2) as usize];
            let invocation = callee.expect_invocation();
            assert_eq!(invocation.registration, id);
            assert_payload("INVOCATION", &invocation.payload, &[u(n)], None);
            callee.yield_(invocation.request, &[u(n + 100)], None);
            assert_payload(
                "RESULT",
                &caller.expect_result(request),
                &[u(n + 100)],
                None,
            );
        }
        for callee in &mut callees {
            callee.expect_no_message(QUIET);
        }
    }
    // The callee on shard 1 unregisters: the registration stays, and every call now goes to
    // the callee on shard 0.
    let request = callees[1].send_unregister(id);
    match callees[1].recv().get() {
        Message::Unregistered { request: r, .. } => assert_eq!(r, request),
        other => panic!("expected UNREGISTERED, got {other:?}"),
    }
    let mut caller = router.join_on_shard("caller on 1", RAW, MSGPACK, 1);
    for n in 0..3u64 {
        let request = caller.call(procedure, &[u(n)], None);
        let invocation = callees[0].expect_invocation();
        assert_eq!(invocation.registration, id);
        callees[0].yield_(invocation.request, &[u(n)], None);
        assert_payload("RESULT", &caller.expect_result(request), &[u(n)], None);
    }
    callees[1].expect_no_message(QUIET);
}

/// The number after `key=` in `line`.
fn metric(line: &str, key: &str) -> Option<u64> {
    let at = line.find(key)? + key.len();
    line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

/// A flood of calls from shard 0 to a callee on shard 1, through a 16-slot channel, builds a
/// backlog on shard 0; past `runtime.shard_backlog_limit` shard 0 stops reading from its
/// connections until it drains, so the backlog stays near the limit (without it: thousands),
/// and every call is still answered, in order.
#[test]
fn a_cross_shard_flood_is_held_back_at_the_backlog_limit_and_loses_nothing() {
    const CALLS: u64 = 20_000;
    const LIMIT: u64 = 256;
    let mut router = RouterProcess::start(
        &format!("[runtime]\nshard_channel_capacity = 16\nshard_backlog_limit = {LIMIT}\n"),
        &["--cores", "2", "--placement", "round-robin"],
    );
    let mut callee = router.join_on_shard("callee", RAW, MSGPACK, 1);
    callee.register("com.example.flooded");
    let mut caller = router.join_on_shard("caller", RAW, MSGPACK, 0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..CALLS {
                let invocation = callee.expect_invocation();
                let (args, _) = &invocation.payload;
                callee.yield_(invocation.request, args, None);
            }
        });
        let requests: Vec<u64> = (0..CALLS)
            .map(|n| caller.call("com.example.flooded", &[u(n)], None))
            .collect();
        for (n, request) in requests.into_iter().enumerate() {
            let result = caller.expect_result(request);
            assert_payload("RESULT", &result, &[u(n as u64)], None);
        }
    });
    router
        .terminate(std::time::Duration::from_secs(5))
        .expect("router exits on SIGTERM");
    let log = router.log();
    let high_water = log
        .lines()
        .filter_map(|line| metric(line, "shard_overflow_high_water="))
        .max()
        .expect("metrics lines at exit");
    let pauses = log
        .lines()
        .filter_map(|line| metric(line, "shard_backpressure_pauses="))
        .max()
        .expect("metrics lines at exit");
    assert!(pauses > 0, "the flood never reached the limit:\n{log}");
    assert!(
        high_water <= 2 * LIMIT,
        "backlog reached {high_water} messages, limit {LIMIT}:\n{log}"
    );
}
