//! Scenario tests of the WAMP meta API of the sans-IO router (digest §10, §9.2, §9.3;
//! `/work/meta-contract.md`): every procedure of the session, registration and subscription meta
//! API with its answers and its errors, the meta events with their payloads and their order,
//! revocation of callees and subscribers (with and without the announced feature), and
//! testaments (both scopes, order, flush, lists and retain, bound, and publication however the
//! session goes). Each scenario runs at 1 shard and at 3 (the asker, the sessions asked about and
//! the watchers placed on different shards, so every answer is a gather or a replica read and
//! every event crosses the shard channels) through the shared harness of `tests/scenario`. The
//! WELCOME's feature announcement is checked in `router_scenarios`.

mod sansio;
#[macro_use]
mod scenario;

use std::collections::{BTreeMap, HashMap};

use scenario::*;
use wampring::router::{uri, CloseReason, RealmConfig, RouterConfig};
use wampring::wire::{self, code, Dict, Message, Payload, Serializer, Value};

use Serializer::{Json, MsgPack};

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

/// CALLs `procedure` with `call_args` (and `kwargs`); the RESULT's arguments, or the ERROR's URI.
fn call_kw(
    h: &mut Harness,
    client: &Client,
    procedure: &str,
    call_args: &[Value<'_>],
    kwargs: Option<&Dict<'_>>,
) -> Result<Vec<Value<'static>>, String> {
    let payload = match kwargs {
        Some(kwargs) => args_kw(client.ser, call_args, kwargs),
        None => args(client.ser, call_args),
    };
    let request = h.call(client, procedure, Dict::new(), payload.as_payload());
    let answer = match h.recv(client).msg() {
        Message::Result {
            request: r,
            payload,
            ..
        } => {
            assert_eq!(r, request);
            let (values, kwargs) = payload_values(&payload);
            assert_eq!(kwargs, None, "meta procedures answer by position");
            Ok(values)
        }
        Message::Error {
            request_type,
            request: r,
            error,
            details,
            ..
        } => {
            assert_eq!((request_type, r), (code::CALL, request));
            assert!(
                details.get_str("message").is_some_and(|m| !m.is_empty()),
                "{error} without a message"
            );
            Err(error.into_owned())
        }
        other => panic!("expected RESULT or ERROR, got {other:?}"),
    };
    h.expect_nothing(client);
    answer
}

fn call_router(
    h: &mut Harness,
    client: &Client,
    procedure: &str,
    call_args: &[Value<'_>],
) -> Result<Vec<Value<'static>>, String> {
    call_kw(h, client, procedure, call_args, None)
}

/// The one value a meta procedure answers.
fn meta(
    h: &mut Harness,
    client: &Client,
    procedure: &str,
    call_args: &[Value<'_>],
) -> Value<'static> {
    match call_router(h, client, procedure, call_args) {
        Ok(mut values) if values.len() == 1 => values.remove(0),
        other => panic!("{procedure}{call_args:?}: expected one value, got {other:?}"),
    }
}

/// The ERROR URI a meta CALL gets.
fn refused(h: &mut Harness, client: &Client, procedure: &str, call_args: &[Value<'_>]) -> String {
    match call_router(h, client, procedure, call_args) {
        Err(error) => error,
        Ok(values) => panic!("{procedure}{call_args:?}: expected an ERROR, got {values:?}"),
    }
}

fn refused_kw(
    h: &mut Harness,
    client: &Client,
    procedure: &str,
    call_args: &[Value<'_>],
    kwargs: &Dict<'_>,
) -> String {
    match call_kw(h, client, procedure, call_args, Some(kwargs)) {
        Err(error) => error,
        Ok(values) => panic!("{procedure}{call_args:?}: expected an ERROR, got {values:?}"),
    }
}

fn uint(id: u64) -> Value<'static> {
    Value::UInt(id)
}

/// A list of ids, in the given order.
fn id_list(ids: &[u64]) -> Value<'static> {
    Value::List(ids.iter().copied().map(Value::UInt).collect())
}

/// A list of ids, ascending.
fn sorted_ids(ids: &[u64]) -> Value<'static> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    id_list(&ids)
}

fn strings(items: &[&str]) -> Value<'static> {
    Value::List(items.iter().map(|item| s(item)).collect())
}

fn dict(entries: &[(&'static str, Value<'static>)]) -> Value<'static> {
    Value::Dict(opts(entries))
}

/// A dict's entries by key (key order does not matter to a client).
fn fields(value: &Value<'_>) -> BTreeMap<String, Value<'static>> {
    let Value::Dict(dict) = value else {
        panic!("expected a dict, got {value:?}")
    };
    dict.iter()
        .map(|(key, value)| (key.to_string(), value.clone().into_owned()))
        .collect()
}

fn expect_fields(value: &Value<'_>, expected: &[(&str, Value<'static>)]) {
    let want: BTreeMap<String, Value<'static>> = expected
        .iter()
        .map(|(key, value)| (key.to_string(), value.clone()))
        .collect();
    assert_eq!(fields(value), want);
}

/// The authid of an anonymous session: its id in decimal.
fn authid(client: &Client) -> String {
    client.id.to_string()
}

/// HELLO details with all four roles, announcing `features` as (role, feature).
fn hello_with(features: &[(&str, &'static str)]) -> Dict<'static> {
    let mut roles = Dict::new();
    for role in ["caller", "callee", "publisher", "subscriber"] {
        let mut announced = Dict::new();
        for (_, feature) in features.iter().filter(|(r, _)| *r == role) {
            announced.insert(*feature, Value::Bool(true));
        }
        let mut details = Dict::new();
        if !announced.is_empty() {
            details.insert("features", announced);
        }
        roles.insert(role, details);
    }
    let mut details = Dict::new();
    details.insert("roles", roles);
    details
}

fn join_with(h: &mut Harness, shard: usize, ser: Serializer, details: Dict<'static>) -> Client {
    let client = h.connect_on(shard % h.shards(), ser);
    h.welcome_with(client, details)
}

/// Joins `realm` on `shard` (mod the number of shards).
fn join_realm(h: &mut Harness, shard: usize, ser: Serializer, realm: &str) -> Client {
    let mut client = h.connect_on(shard % h.shards(), ser);
    h.hello(&client, realm, hello_details());
    match h.recv(&client).msg() {
        Message::Welcome { session, .. } => client.id = session,
        other => panic!("expected WELCOME, got {other:?}"),
    }
    client
}

fn on(h: &mut Harness, shard: usize, ser: Serializer) -> Client {
    let shard = shard % h.shards();
    h.join_on(shard, ser)
}

fn two_realms() -> RouterConfig {
    RouterConfig {
        realms: vec![RealmConfig::new("realm1"), RealmConfig::new("realm2")],
        ..RouterConfig::default()
    }
}

fn register_with(h: &mut Harness, client: &Client, procedure: &str, options: Dict<'static>) -> u64 {
    let request = h.send_register(client, procedure, options);
    match h.recv(client).msg() {
        Message::Registered {
            request: r,
            registration,
        } if r == request => registration,
        other => panic!("expected REGISTERED, got {other:?}"),
    }
}

fn matching(policy: &str) -> Dict<'static> {
    opts(&[("match", s(policy))])
}

fn roundrobin() -> Dict<'static> {
    opts(&[("invoke", s("roundrobin"))])
}

fn unsubscribe(h: &mut Harness, client: &Client, subscription: u64) {
    let request = h.request();
    h.send(
        client,
        &Message::Unsubscribe {
            request,
            subscription,
        },
    );
    assert!(
        matches!(h.recv(client).msg(), Message::Unsubscribed { request: r, details: None } if r == request)
    );
}

fn goodbye(h: &mut Harness, client: &Client) {
    h.send(
        client,
        &Message::Goodbye {
            details: Dict::new(),
            reason: "wamp.close.close_realm".into(),
        },
    );
    match h.recv(client).msg() {
        Message::Goodbye { reason, .. } => assert_eq!(reason, uri::CLOSE_GOODBYE_AND_OUT),
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    assert!(h.was_closed(client));
}

/// Asserts `client` was told GOODBYE `reason` (with `message` in its Details, or none) and
/// closed, and that nothing else came.
fn assert_killed(h: &mut Harness, client: &Client, reason: &str, message: Option<&str>) {
    match h.recv(client).msg() {
        Message::Goodbye { details, reason: r } => {
            assert_eq!(r, reason);
            assert_eq!(details.get_str("message"), message, "{details:?}");
        }
        other => panic!("expected GOODBYE {reason}, got {other:?}"),
    }
    h.expect_nothing(client);
    assert_eq!(h.cluster.close_reason(client.conn), Some(CloseReason::Done));
}

/// CALLs `procedure`; exactly one of `callees` gets the INVOCATION, answers it, and the caller
/// gets the RESULT. Returns (the index of that callee, the INVOCATION's registration id).
fn call_reaches(
    h: &mut Harness,
    caller: &Client,
    procedure: &str,
    callees: &[Client],
) -> (usize, u64) {
    let request = h.call(caller, procedure, Dict::new(), Payload::empty(caller.ser));
    let mut invoked = None;
    for (index, callee) in callees.iter().enumerate() {
        let Some(received) = h.try_recv(callee) else {
            continue;
        };
        let Message::Invocation {
            request: invocation,
            registration,
            ..
        } = received.msg()
        else {
            panic!(
                "callee {index}: expected INVOCATION, got {:?}",
                received.msg()
            )
        };
        assert!(invoked.is_none(), "two callees invoked for one CALL");
        invoked = Some((index, registration));
        h.send(
            callee,
            &Message::Yield {
                request: invocation,
                options: Dict::new(),
                payload: Payload::empty(callee.ser),
            },
        );
        h.expect_nothing(callee);
    }
    let invoked = invoked.unwrap_or_else(|| panic!("no callee invoked for {procedure}"));
    assert!(matches!(h.recv(caller).msg(), Message::Result { request: r, .. } if r == request));
    invoked
}

/// A CALL nobody can answer.
fn assert_no_such_procedure(h: &mut Harness, caller: &Client, procedure: &str) {
    let request = h.call(caller, procedure, Dict::new(), Payload::empty(caller.ser));
    assert_error(&h.recv(caller), code::CALL, request, uri::NO_SUCH_PROCEDURE);
}

/// One EVENT as a subscriber saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    subscription: u64,
    publication: u64,
    publisher: Option<u64>,
    /// `Details.topic` (pattern subscriptions).
    topic: Option<String>,
    retained: bool,
    args: Vec<Value<'static>>,
    kwargs: Option<Dict<'static>>,
}

fn event(received: &Received) -> Seen {
    match received.msg() {
        Message::Event {
            subscription,
            publication,
            details,
            payload,
        } => {
            let (args, kwargs) = payload_values(&payload);
            Seen {
                subscription,
                publication,
                publisher: details.get_u64("publisher"),
                topic: details.get_str("topic").map(str::to_string),
                retained: details.get_bool("retained") == Some(true),
                args,
                kwargs,
            }
        }
        other => panic!("expected EVENT, got {other:?}"),
    }
}

/// Every EVENT waiting for `client`, and nothing else.
fn events(h: &mut Harness, client: &Client) -> Vec<Seen> {
    let mut seen = Vec::new();
    while let Some(received) = h.try_recv(client) {
        seen.push(event(&received));
    }
    seen
}

/// A session subscribed to some meta topics.
struct Watcher {
    client: Client,
    topics: HashMap<u64, &'static str>,
}

/// `client` subscribes to `topics`; what its own subscribing published (meta events about
/// its subscriptions to meta topics) is dropped, but each such EVENT must be for a
/// subscription it was already told about.
fn watch(h: &mut Harness, client: Client, topics: &[&'static str]) -> Watcher {
    let mut by_id = HashMap::new();
    for topic in topics {
        let request = h.request();
        h.send(
            &client,
            &Message::Subscribe {
                request,
                options: Dict::new(),
                topic: (*topic).into(),
            },
        );
        loop {
            let received = h.recv(&client);
            match received.msg() {
                Message::Subscribed {
                    request: r,
                    subscription,
                } if r == request => {
                    by_id.insert(subscription, *topic);
                    break;
                }
                Message::Event { subscription, .. } => assert!(
                    by_id.contains_key(&subscription),
                    "an EVENT for subscription {subscription} before its SUBSCRIBED"
                ),
                other => panic!("expected SUBSCRIBED, got {other:?}"),
            }
        }
    }
    events(h, &client);
    Watcher {
        client,
        topics: by_id,
    }
}

/// The meta events waiting for the watcher, as (topic, args), and nothing else.
fn seen(h: &mut Harness, watcher: &Watcher) -> Vec<(&'static str, Vec<Value<'static>>)> {
    events(h, &watcher.client)
        .into_iter()
        .map(|event| {
            assert_eq!(event.publisher, None, "the router publishes as nobody");
            assert_eq!(event.kwargs, None, "meta events carry positional arguments");
            let topic = watcher
                .topics
                .get(&event.subscription)
                .unwrap_or_else(|| panic!("an EVENT for no watched topic: {event:?}"));
            (*topic, event.args)
        })
        .collect()
}

/// Shard counters the harness does not sum: (testaments_published, sessions_killed,
/// revocations).
fn meta_stats(h: &Harness) -> (u64, u64, u64) {
    h.cluster
        .routers
        .iter()
        .fold((0, 0, 0), |(t, k, r), router| {
            let stats = router.stats();
            (
                t + stats.testaments_published,
                k + stats.sessions_killed,
                r + stats.revocations,
            )
        })
}

/// Unix ms of 2023-11-14T22:13:20.000Z, the wall clock at `now == 0` in the tests that check
/// `created`.
const ORIGIN_MS: u64 = 1_700_000_000_000;

fn set_wall_clock(h: &mut Harness) {
    for router in &mut h.cluster.routers {
        router.set_wall_clock_origin(ORIGIN_MS);
    }
}

/// The RFC 3339 `created` of an entry made at harness time `now` (< 1 s).
fn created_at(now: u64) -> Value<'static> {
    assert!(now < 1000);
    s(&format!("2023-11-14T22:13:20.{now:03}Z"))
}

fn no_gather_left(h: &Harness) {
    assert_eq!(h.stats().inflight_registry_ops, 0, "no gather left behind");
}

// ------------------------------------------------------------------------------------------
// Session meta API
// ------------------------------------------------------------------------------------------

fn session_count_and_list_are_the_same_from_every_shard_with_and_without_filter() {
    let mut h = Harness::with_config(two_realms());
    let clients: Vec<Client> = (0..5)
        .map(|i| on(&mut h, i, if i % 2 == 0 { Json } else { MsgPack }))
        .collect();
    let _waiting_for_hello = h.connect(Json);
    let elsewhere = join_realm(&mut h, 1, MsgPack, "realm2");
    let all: Vec<u64> = clients.iter().map(|c| c.id).collect();
    for client in &clients {
        assert_eq!(meta(&mut h, client, "wamp.session.count", &[]), uint(5));
        assert_eq!(
            meta(&mut h, client, "wamp.session.list", &[]),
            sorted_ids(&all),
            "ascending, the caller included"
        );
        assert_eq!(
            meta(&mut h, client, "wamp.session.count", &[Value::Null]),
            uint(5),
            "null is no filter"
        );
        assert_eq!(
            meta(
                &mut h,
                client,
                "wamp.session.list",
                &[strings(&["anonymous"])]
            ),
            sorted_ids(&all)
        );
        assert_eq!(
            meta(
                &mut h,
                client,
                "wamp.session.count",
                &[strings(&["admin", "anonymous"])]
            ),
            uint(5)
        );
        assert_eq!(
            meta(&mut h, client, "wamp.session.count", &[strings(&["admin"])]),
            uint(0)
        );
        assert_eq!(
            meta(&mut h, client, "wamp.session.list", &[strings(&["admin"])]),
            id_list(&[])
        );
        assert_eq!(
            meta(&mut h, client, "wamp.session.list", &[strings(&[])]),
            id_list(&[]),
            "an empty filter lets nobody through"
        );
    }
    // By keyword too.
    let by_keyword = opts(&[("filter_authroles", strings(&["anonymous"]))]);
    assert_eq!(
        call_kw(
            &mut h,
            &clients[2],
            "wamp.session.list",
            &[],
            Some(&by_keyword)
        ),
        Ok(vec![sorted_ids(&all)])
    );
    // The other realm sees itself only.
    assert_eq!(meta(&mut h, &elsewhere, "wamp.session.count", &[]), uint(1));
    assert_eq!(
        meta(&mut h, &elsewhere, "wamp.session.list", &[]),
        id_list(&[elsewhere.id])
    );
    // Bad arguments.
    for bad in [
        vec![s("anonymous")],
        vec![Value::List(vec![uint(1)])],
        vec![strings(&["anonymous"]), Value::Null],
    ] {
        for procedure in ["wamp.session.count", "wamp.session.list"] {
            assert_eq!(
                refused(&mut h, &clients[0], procedure, &bad),
                uri::INVALID_ARGUMENT,
                "{procedure}{bad:?}"
            );
        }
    }
    let unknown_keyword = opts(&[("authroles", strings(&["anonymous"]))]);
    assert_eq!(
        refused_kw(
            &mut h,
            &clients[0],
            "wamp.session.count",
            &[],
            &unknown_keyword
        ),
        uri::INVALID_ARGUMENT
    );
    assert_eq!(
        refused_kw(
            &mut h,
            &clients[0],
            "wamp.session.count",
            &[strings(&["anonymous"])],
            &by_keyword
        ),
        uri::INVALID_ARGUMENT,
        "by position and by keyword"
    );
    // Leaving is seen everywhere.
    h.disconnect(&clients[1]);
    goodbye(&mut h, &clients[3]);
    let left: Vec<u64> = [0, 2, 4].iter().map(|&i| clients[i].id).collect();
    for &i in &[0, 2, 4] {
        assert_eq!(
            meta(&mut h, &clients[i], "wamp.session.count", &[]),
            uint(3)
        );
        assert_eq!(
            meta(&mut h, &clients[i], "wamp.session.list", &[]),
            sorted_ids(&left)
        );
    }
    no_gather_left(&h);
}

fn session_get_gives_the_details_of_any_session_of_the_realm() {
    let mut h = Harness::with_config(two_realms());
    let asker = on(&mut h, 0, MsgPack);
    let json = on(&mut h, 1, Json);
    let msgpack = on(&mut h, 2, MsgPack);
    let elsewhere = join_realm(&mut h, 1, Json, "realm2");
    for about in [&json, &msgpack, &asker] {
        for by in [&asker, &json] {
            let details = meta(&mut h, by, "wamp.session.get", &[uint(about.id)]);
            let serializer = about.ser.name();
            expect_fields(
                &details,
                &[
                    ("session", uint(about.id)),
                    ("authid", s(&authid(about))),
                    ("authrole", s("anonymous")),
                    ("authmethod", s("anonymous")),
                    ("authprovider", s("static")),
                    (
                        "transport",
                        dict(&[
                            ("type", s("sim")),
                            ("serializer", s(serializer)),
                            ("peer", s(&format!("shard{}", about.conn.shard))),
                        ]),
                    ),
                ],
            );
        }
    }
    // By keyword.
    let kwargs = opts(&[("session_id", uint(json.id))]);
    let answer = call_kw(&mut h, &asker, "wamp.session.get", &[], Some(&kwargs)).unwrap();
    assert_eq!(fields(&answer[0])["session"], uint(json.id));
    // A session of another realm is no session of this one, and the other way round.
    assert_eq!(
        refused(&mut h, &asker, "wamp.session.get", &[uint(elsewhere.id)]),
        uri::NO_SUCH_SESSION
    );
    assert_eq!(
        refused(&mut h, &elsewhere, "wamp.session.get", &[uint(json.id)]),
        uri::NO_SUCH_SESSION
    );
    // A session that left.
    h.disconnect(&msgpack);
    assert_eq!(
        refused(&mut h, &json, "wamp.session.get", &[uint(msgpack.id)]),
        uri::NO_SUCH_SESSION
    );
    for bad in [
        vec![],
        vec![Value::Null],
        vec![s("1")],
        vec![Value::Int(-1)],
        vec![uint(json.id), uint(1)],
    ] {
        assert_eq!(
            refused(&mut h, &asker, "wamp.session.get", &bad),
            uri::INVALID_ARGUMENT,
            "{bad:?}"
        );
    }
    no_gather_left(&h);
}

fn session_kill_says_goodbye_closes_the_victim_and_removes_what_it_owned() {
    let mut h = Harness::with_config(two_realms());
    let admin = on(&mut h, 0, Json);
    let victim = on(&mut h, 1, MsgPack);
    let watcher = on(&mut h, 2, Json);
    let watcher = watch(
        &mut h,
        watcher,
        &["wamp.session.on_leave", "wamp.registration.on_unregister"],
    );
    let registration = h.register(&victim, "com.victim.proc");
    h.subscribe(&victim, "com.victim.topic");
    let listener = on(&mut h, 2, MsgPack);
    h.subscribe(&listener, "com.from.victim");

    // A call the victim is serving when it is killed.
    let pending = h.call(
        &listener,
        "com.victim.proc",
        Dict::new(),
        Payload::empty(listener.ser),
    );
    assert!(matches!(h.recv(&victim).msg(), Message::Invocation { .. }));

    assert_eq!(
        call_router(&mut h, &admin, "wamp.session.kill", &[uint(victim.id)]),
        Ok(vec![]),
        "kill answers no arguments"
    );
    assert_killed(&mut h, &victim, uri::CLOSE_KILLED, None);
    assert_error(&h.recv(&listener), code::CALL, pending, uri::CANCELED);
    assert_eq!(h.stats().pending_calls, 0);
    assert_eq!(
        seen(&mut h, &watcher),
        vec![
            (
                "wamp.registration.on_unregister",
                vec![uint(victim.id), uint(registration)]
            ),
            (
                "wamp.session.on_leave",
                vec![uint(victim.id), s(&authid(&victim)), s("anonymous")]
            ),
        ]
    );
    // What the victim still sends is ignored (the harness would fail on any answer to it).
    let payload = args(victim.ser, &[s("from beyond")]);
    h.publish(
        &victim,
        "com.from.victim",
        Dict::new(),
        payload.as_payload(),
    );
    h.register(&admin, "com.admin.proc");
    h.call(
        &victim,
        "com.admin.proc",
        Dict::new(),
        Payload::empty(victim.ser),
    );
    h.expect_nothing(&listener);
    h.expect_nothing(&admin);
    h.disconnect(&victim);
    // Its registration and subscription are gone.
    assert_no_such_procedure(&mut h, &admin, "com.victim.proc");
    assert_eq!(
        meta(
            &mut h,
            &admin,
            "wamp.registration.lookup",
            &[s("com.victim.proc")]
        ),
        Value::Null
    );
    assert_eq!(
        meta(
            &mut h,
            &admin,
            "wamp.subscription.lookup",
            &[s("com.victim.topic")]
        ),
        Value::Null
    );
    assert_eq!(meta(&mut h, &admin, "wamp.session.count", &[]), uint(3));
    // A gone session, or the caller itself, is no session to kill.
    assert_eq!(
        refused(&mut h, &admin, "wamp.session.kill", &[uint(victim.id)]),
        uri::NO_SUCH_SESSION
    );
    assert_eq!(
        refused(&mut h, &admin, "wamp.session.kill", &[uint(admin.id)]),
        uri::NO_SUCH_SESSION
    );
    assert!(!h.was_closed(&admin));
    let elsewhere = join_realm(&mut h, 1, Json, "realm2");
    assert_eq!(
        refused(&mut h, &admin, "wamp.session.kill", &[uint(elsewhere.id)]),
        uri::NO_SUCH_SESSION,
        "a session of another realm"
    );
    h.expect_nothing(&elsewhere);
    assert!(!h.was_closed(&elsewhere));

    // With a reason and a message, by position and by keyword.
    let second = on(&mut h, 1, Json);
    assert_eq!(
        call_router(
            &mut h,
            &admin,
            "wamp.session.kill",
            &[
                uint(second.id),
                s("com.example.maintenance"),
                s("back soon")
            ]
        ),
        Ok(vec![])
    );
    assert_killed(
        &mut h,
        &second,
        "com.example.maintenance",
        Some("back soon"),
    );
    let third = on(&mut h, 2, MsgPack);
    let kwargs = opts(&[("reason", s("com.example.bye")), ("message", s("so long"))]);
    assert_eq!(
        call_kw(
            &mut h,
            &admin,
            "wamp.session.kill",
            &[uint(third.id)],
            Some(&kwargs)
        ),
        Ok(vec![])
    );
    assert_killed(&mut h, &third, "com.example.bye", Some("so long"));
    let fourth = on(&mut h, 0, MsgPack);
    let message_only = opts(&[("message", s("just go"))]);
    assert_eq!(
        call_kw(
            &mut h,
            &admin,
            "wamp.session.kill",
            &[uint(fourth.id)],
            Some(&message_only)
        ),
        Ok(vec![])
    );
    assert_killed(&mut h, &fourth, uri::CLOSE_KILLED, Some("just go"));

    // Refusals leave the target alone.
    let target = on(&mut h, 1, Json);
    for (bad, error) in [
        (vec![uint(target.id), s("not a uri!")], uri::INVALID_URI),
        (vec![uint(target.id), s("")], uri::INVALID_URI),
        (vec![uint(target.id), uint(5)], uri::INVALID_ARGUMENT),
        (
            vec![uint(target.id), Value::Null, uint(5)],
            uri::INVALID_ARGUMENT,
        ),
        (vec![s(&authid(&target))], uri::INVALID_ARGUMENT),
        (vec![], uri::INVALID_ARGUMENT),
        (
            vec![uint(target.id), s("com.r"), s("m"), s("surplus")],
            uri::INVALID_ARGUMENT,
        ),
    ] {
        assert_eq!(
            refused(&mut h, &admin, "wamp.session.kill", &bad),
            error,
            "{bad:?}"
        );
    }
    let unknown_keyword = opts(&[("why", s("com.r"))]);
    assert_eq!(
        refused_kw(
            &mut h,
            &admin,
            "wamp.session.kill",
            &[uint(target.id)],
            &unknown_keyword
        ),
        uri::INVALID_ARGUMENT
    );
    h.expect_nothing(&target);
    assert!(!h.was_closed(&target));
    assert_eq!(meta_stats(&h).1, 4, "sessions_killed");
    for client in [&second, &third, &fourth] {
        h.disconnect(client);
    }
    no_gather_left(&h);
}

fn kill_by_authid_by_authrole_and_all_never_touch_the_caller_or_other_realms() {
    let mut h = Harness::with_config(two_realms());
    let admin = on(&mut h, 0, Json);
    let victims: Vec<Client> = (1..=4)
        .map(|i| on(&mut h, i, if i % 2 == 0 { Json } else { MsgPack }))
        .collect();
    let elsewhere = join_realm(&mut h, 1, Json, "realm2");
    let watcher = on(&mut h, 2, MsgPack);
    let watcher = watch(&mut h, watcher, &["wamp.session.on_leave"]);

    // By authid: the killed ids; the caller's own authid kills nobody.
    assert_eq!(
        meta(
            &mut h,
            &admin,
            "wamp.session.kill_by_authid",
            &[s(&authid(&victims[0]))]
        ),
        id_list(&[victims[0].id])
    );
    assert_killed(&mut h, &victims[0], uri::CLOSE_KILLED, None);
    assert_eq!(
        meta(
            &mut h,
            &admin,
            "wamp.session.kill_by_authid",
            &[s(&authid(&admin))]
        ),
        id_list(&[]),
        "never the caller"
    );
    assert_eq!(
        meta(
            &mut h,
            &admin,
            "wamp.session.kill_by_authid",
            &[s(&authid(&elsewhere))]
        ),
        id_list(&[]),
        "never another realm's"
    );
    assert_eq!(
        meta(
            &mut h,
            &admin,
            "wamp.session.kill_by_authid",
            &[s("nobody")]
        ),
        id_list(&[])
    );
    assert!(!h.was_closed(&admin) && !h.was_closed(&elsewhere));
    assert_eq!(
        seen(&mut h, &watcher),
        vec![(
            "wamp.session.on_leave",
            vec![uint(victims[0].id), s(&authid(&victims[0])), s("anonymous")]
        )]
    );

    // By authrole: a count, with reason and message by keyword.
    assert_eq!(
        meta(
            &mut h,
            &admin,
            "wamp.session.kill_by_authrole",
            &[s("admin")]
        ),
        uint(0)
    );
    let kwargs = opts(&[
        ("reason", s("com.example.purge")),
        ("message", s("all of you")),
    ]);
    assert_eq!(
        call_kw(
            &mut h,
            &admin,
            "wamp.session.kill_by_authrole",
            &[s("anonymous")],
            Some(&kwargs)
        ),
        Ok(vec![uint(4)]),
        "three victims and the watcher, not the caller"
    );
    for victim in &victims[1..] {
        assert_killed(&mut h, victim, "com.example.purge", Some("all of you"));
    }
    assert_killed(
        &mut h,
        &watcher.client,
        "com.example.purge",
        Some("all of you"),
    );
    assert!(!h.was_closed(&admin) && !h.was_closed(&elsewhere));
    h.expect_nothing(&elsewhere);
    assert_eq!(
        meta(&mut h, &admin, "wamp.session.list", &[]),
        id_list(&[admin.id])
    );

    // All: a count; the caller and the other realm stay.
    let more: Vec<Client> = (1..=3).map(|i| on(&mut h, i, MsgPack)).collect();
    assert_eq!(
        call_router(
            &mut h,
            &admin,
            "wamp.session.kill_all",
            &[s("com.example.shutdown"), s("closing time")]
        ),
        Ok(vec![uint(3)])
    );
    for client in &more {
        assert_killed(&mut h, client, "com.example.shutdown", Some("closing time"));
    }
    assert_eq!(meta(&mut h, &admin, "wamp.session.kill_all", &[]), uint(0));
    assert_eq!(meta(&mut h, &admin, "wamp.session.count", &[]), uint(1));
    assert_eq!(meta(&mut h, &elsewhere, "wamp.session.count", &[]), uint(1));
    assert!(!h.was_closed(&admin) && !h.was_closed(&elsewhere));
    h.expect_nothing(&elsewhere);
    // The default reason, for kill_all too.
    let last = on(&mut h, 2, Json);
    assert_eq!(meta(&mut h, &admin, "wamp.session.kill_all", &[]), uint(1));
    assert_killed(&mut h, &last, uri::CLOSE_KILLED, None);

    // Refusals.
    for (procedure, bad, error) in [
        ("wamp.session.kill_by_authid", vec![], uri::INVALID_ARGUMENT),
        (
            "wamp.session.kill_by_authid",
            vec![uint(1)],
            uri::INVALID_ARGUMENT,
        ),
        (
            "wamp.session.kill_by_authrole",
            vec![Value::Null],
            uri::INVALID_ARGUMENT,
        ),
        (
            "wamp.session.kill_by_authrole",
            vec![s("anonymous"), s("bad reason")],
            uri::INVALID_URI,
        ),
        (
            "wamp.session.kill_all",
            vec![s("bad reason")],
            uri::INVALID_URI,
        ),
        (
            "wamp.session.kill_all",
            vec![Value::Bool(true)],
            uri::INVALID_ARGUMENT,
        ),
        (
            "wamp.session.kill_all",
            vec![Value::Null, Value::Null, Value::Null],
            uri::INVALID_ARGUMENT,
        ),
    ] {
        assert_eq!(
            refused(&mut h, &admin, procedure, &bad),
            error,
            "{procedure}{bad:?}"
        );
    }
    assert_eq!(meta_stats(&h).1, 9, "sessions_killed");
    let killed = victims.iter().chain(&more).chain([&watcher.client, &last]);
    for client in killed {
        h.disconnect(client);
    }
    no_gather_left(&h);
}

// ------------------------------------------------------------------------------------------
// Registration meta API
// ------------------------------------------------------------------------------------------

fn registration_list_lookup_and_match_follow_the_match_policies() {
    let mut h = Harness::new();
    let callee = on(&mut h, 1, MsgPack);
    let asker = on(&mut h, 2, Json);
    let empty = dict(&[
        ("exact", id_list(&[])),
        ("prefix", id_list(&[])),
        ("wildcard", id_list(&[])),
    ]);
    assert_eq!(
        fields(&meta(&mut h, &asker, "wamp.registration.list", &[])),
        fields(&empty)
    );
    let exact = h.register(&callee, "com.a.b.c");
    let exact_other = h.register(&callee, "org.x");
    let short_prefix = register_with(&mut h, &callee, "com.a", matching("prefix"));
    let long_prefix = register_with(&mut h, &callee, "com.a.b", matching("prefix"));
    let any_first = register_with(&mut h, &callee, "com..b.c", matching("wildcard"));
    let org_a = register_with(&mut h, &callee, "org.a..d", matching("wildcard"));
    let org_any = register_with(&mut h, &callee, "org...d", matching("wildcard"));
    expect_fields(
        &meta(&mut h, &asker, "wamp.registration.list", &[]),
        &[
            ("exact", sorted_ids(&[exact, exact_other])),
            ("prefix", sorted_ids(&[short_prefix, long_prefix])),
            ("wildcard", sorted_ids(&[any_first, org_a, org_any])),
        ],
    );

    // lookup: the registration of that URI under that policy (exact when none is given).
    let lookup = |h: &mut Harness, procedure: &str, options: Option<&str>| {
        let mut call_args = vec![s(procedure)];
        if let Some(policy) = options {
            call_args.push(Value::Dict(matching(policy)));
        }
        meta(h, &asker, "wamp.registration.lookup", &call_args)
    };
    assert_eq!(lookup(&mut h, "com.a.b.c", None), uint(exact));
    assert_eq!(lookup(&mut h, "com.a.b.c", Some("exact")), uint(exact));
    assert_eq!(lookup(&mut h, "com.a", Some("prefix")), uint(short_prefix));
    assert_eq!(lookup(&mut h, "com.a.b", Some("prefix")), uint(long_prefix));
    assert_eq!(
        lookup(&mut h, "com..b.c", Some("wildcard")),
        uint(any_first)
    );
    assert_eq!(lookup(&mut h, "com.a", None), Value::Null, "no exact com.a");
    assert_eq!(lookup(&mut h, "com.a.b.c", Some("prefix")), Value::Null);
    assert_eq!(lookup(&mut h, "com..b.c", Some("prefix")), Value::Null);
    assert_eq!(lookup(&mut h, "com.nothing", None), Value::Null);
    assert_eq!(
        meta(
            &mut h,
            &asker,
            "wamp.registration.lookup",
            &[s("com.a.b.c"), Value::Dict(Dict::new())]
        ),
        uint(exact),
        "options without match"
    );
    let kwargs = opts(&[
        ("procedure", s("com.a")),
        ("options", Value::Dict(matching("prefix"))),
    ]);
    assert_eq!(
        call_kw(
            &mut h,
            &asker,
            "wamp.registration.lookup",
            &[],
            Some(&kwargs)
        ),
        Ok(vec![uint(short_prefix)])
    );

    // match: what a CALL would reach (exact, then the longest prefix, then the wildcard with
    // the longest leading concrete run), and a CALL reaches exactly that.
    for (procedure, expected) in [
        ("com.a.b.c", Some(exact)),
        ("com.a.b.x", Some(long_prefix)),
        ("com.a.bc", Some(long_prefix)),
        ("com.a.x.c", Some(short_prefix)),
        ("com.ab", Some(short_prefix)),
        ("com.z.b.c", Some(any_first)),
        ("org.a.x.d", Some(org_a)),
        ("org.b.x.d", Some(org_any)),
        ("org.x", Some(exact_other)),
        ("org.x.y", None),
        ("com.z.b", None),
    ] {
        let found = meta(&mut h, &asker, "wamp.registration.match", &[s(procedure)]);
        match expected {
            Some(id) => {
                assert_eq!(found, uint(id), "match {procedure}");
                assert_eq!(
                    call_reaches(&mut h, &asker, procedure, &[callee]),
                    (0, id),
                    "CALL {procedure}"
                );
            }
            None => {
                assert_eq!(found, Value::Null, "match {procedure}");
                assert_no_such_procedure(&mut h, &asker, procedure);
            }
        }
    }

    // Refusals.
    for (procedure, bad) in [
        ("wamp.registration.lookup", vec![]),
        ("wamp.registration.lookup", vec![uint(1)]),
        (
            "wamp.registration.lookup",
            vec![s("com.a"), Value::Dict(matching("fuzzy"))],
        ),
        ("wamp.registration.lookup", vec![s("com.a"), s("prefix")]),
        (
            "wamp.registration.lookup",
            vec![s("com.a"), Value::Dict(Dict::new()), Value::Null],
        ),
        ("wamp.registration.match", vec![]),
        ("wamp.registration.match", vec![uint(1)]),
        ("wamp.registration.match", vec![s("com.a"), s("com.b")]),
        ("wamp.registration.list", vec![Value::Null]),
    ] {
        assert_eq!(
            refused(&mut h, &asker, procedure, &bad),
            uri::INVALID_ARGUMENT,
            "{procedure}{bad:?}"
        );
    }
    h.disconnect(&callee);
    assert_eq!(
        fields(&meta(&mut h, &asker, "wamp.registration.list", &[])),
        fields(&empty)
    );
    h.assert_tables_empty();
}

fn registration_get_and_callees_of_a_shared_registration_on_every_shard() {
    let mut h = Harness::new();
    set_wall_clock(&mut h);
    let asker = on(&mut h, 0, Json);
    let callees: Vec<Client> = (0..3)
        .map(|i| on(&mut h, i + 1, if i % 2 == 0 { MsgPack } else { Json }))
        .collect();
    let registration = register_with(&mut h, &callees[0], "com.shared", roundrobin());
    let created = created_at(h.cluster.now);
    for callee in &callees[1..] {
        assert_eq!(
            register_with(&mut h, callee, "com.shared", roundrobin()),
            registration
        );
    }
    let single = register_with(&mut h, &callees[1], "com.p", matching("prefix"));
    let single_created = created_at(h.cluster.now);
    let ids: Vec<u64> = callees.iter().map(|c| c.id).collect();
    for by in [&asker, &callees[2]] {
        expect_fields(
            &meta(&mut h, by, "wamp.registration.get", &[uint(registration)]),
            &[
                ("id", uint(registration)),
                ("created", created.clone()),
                ("uri", s("com.shared")),
                ("match", s("exact")),
                ("invoke", s("roundrobin")),
            ],
        );
        expect_fields(
            &meta(&mut h, by, "wamp.registration.get", &[uint(single)]),
            &[
                ("id", uint(single)),
                ("created", single_created.clone()),
                ("uri", s("com.p")),
                ("match", s("prefix")),
                ("invoke", s("single")),
            ],
        );
        assert_eq!(
            meta(
                &mut h,
                by,
                "wamp.registration.list_callees",
                &[uint(registration)]
            ),
            id_list(&ids),
            "in registration order"
        );
        assert_eq!(
            meta(
                &mut h,
                by,
                "wamp.registration.count_callees",
                &[uint(registration)]
            ),
            uint(3)
        );
        assert_eq!(
            meta(
                &mut h,
                by,
                "wamp.registration.list_callees",
                &[uint(single)]
            ),
            id_list(&[callees[1].id])
        );
        assert_eq!(
            meta(
                &mut h,
                by,
                "wamp.registration.count_callees",
                &[uint(single)]
            ),
            uint(1)
        );
    }
    let kwargs = opts(&[("registration_id", uint(registration))]);
    assert_eq!(
        call_kw(
            &mut h,
            &asker,
            "wamp.registration.count_callees",
            &[],
            Some(&kwargs)
        ),
        Ok(vec![uint(3)])
    );
    // The first callee goes: the others stay, in order, and the id and creation time too.
    h.unregister(&callees[0], registration);
    assert_eq!(
        meta(
            &mut h,
            &asker,
            "wamp.registration.list_callees",
            &[uint(registration)]
        ),
        id_list(&ids[1..])
    );
    assert_eq!(
        meta(
            &mut h,
            &asker,
            "wamp.registration.count_callees",
            &[uint(registration)]
        ),
        uint(2)
    );
    assert_eq!(
        fields(&meta(
            &mut h,
            &asker,
            "wamp.registration.get",
            &[uint(registration)]
        ))["created"],
        created
    );
    // Unknown ids.
    h.disconnect(&callees[1]);
    h.disconnect(&callees[2]);
    for procedure in [
        "wamp.registration.get",
        "wamp.registration.list_callees",
        "wamp.registration.count_callees",
    ] {
        for id in [registration, single, 1] {
            assert_eq!(
                refused(&mut h, &asker, procedure, &[uint(id)]),
                uri::NO_SUCH_REGISTRATION,
                "{procedure} {id}"
            );
        }
        for bad in [vec![], vec![s("1")], vec![uint(1), uint(2)]] {
            assert_eq!(
                refused(&mut h, &asker, procedure, &bad),
                uri::INVALID_ARGUMENT,
                "{procedure}{bad:?}"
            );
        }
    }
    h.assert_tables_empty();
}

const REGISTRATION_EVENTS: [&str; 4] = [
    "wamp.registration.on_create",
    "wamp.registration.on_register",
    "wamp.registration.on_unregister",
    "wamp.registration.on_delete",
];

fn registration_meta_events_reach_a_watcher_on_another_shard_in_order() {
    let mut h = Harness::with_config(two_realms());
    set_wall_clock(&mut h);
    let watcher = on(&mut h, 0, Json);
    let watcher = watch(&mut h, watcher, &REGISTRATION_EVENTS);
    let first = on(&mut h, 1, MsgPack);
    let second = on(&mut h, 2, Json);
    let pair = |session: &Client, id: u64| vec![uint(session.id), uint(id)];

    let shared = register_with(&mut h, &first, "com.shared", roundrobin());
    let created = created_at(h.cluster.now);
    let got = seen(&mut h, &watcher);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "wamp.registration.on_create");
    assert_eq!(got[0].1.len(), 2, "{got:?}");
    assert_eq!(got[0].1[0], uint(first.id));
    expect_fields(
        &got[0].1[1],
        &[
            ("id", uint(shared)),
            ("created", created.clone()),
            ("uri", s("com.shared")),
            ("match", s("exact")),
            ("invoke", s("roundrobin")),
        ],
    );
    assert_eq!(
        fields(&got[0].1[1]),
        fields(&meta(
            &mut h,
            &watcher.client,
            "wamp.registration.get",
            &[uint(shared)]
        )),
        "on_create carries what get answers"
    );
    assert_eq!(
        got[1],
        ("wamp.registration.on_register", pair(&first, shared))
    );

    // A second callee of the shared registration: on_register only.
    register_with(&mut h, &second, "com.shared", roundrobin());
    assert_eq!(
        seen(&mut h, &watcher),
        vec![("wamp.registration.on_register", pair(&second, shared))]
    );
    // The same callee again is refused, and that publishes nothing.
    let request = h.send_register(&second, "com.shared", roundrobin());
    assert_error(
        &h.recv(&second),
        code::REGISTER,
        request,
        uri::PROCEDURE_ALREADY_EXISTS,
    );
    assert_eq!(seen(&mut h, &watcher), vec![]);
    // The first goes: on_unregister only, the registration stays.
    h.unregister(&first, shared);
    assert_eq!(
        seen(&mut h, &watcher),
        vec![("wamp.registration.on_unregister", pair(&first, shared))]
    );
    // The last goes (its transport lost): on_unregister, then on_delete.
    h.disconnect(&second);
    assert_eq!(
        seen(&mut h, &watcher),
        vec![
            ("wamp.registration.on_unregister", pair(&second, shared)),
            ("wamp.registration.on_delete", pair(&second, shared)),
        ]
    );

    // A pattern registration, registered and unregistered by one session.
    let pattern = register_with(&mut h, &first, "com.p.", matching("wildcard"));
    let created = created_at(h.cluster.now);
    h.unregister(&first, pattern);
    let got = seen(&mut h, &watcher);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0].0, "wamp.registration.on_create");
    assert_eq!(got[0].1[0], uint(first.id));
    expect_fields(
        &got[0].1[1],
        &[
            ("id", uint(pattern)),
            ("created", created),
            ("uri", s("com.p.")),
            ("match", s("wildcard")),
            ("invoke", s("single")),
        ],
    );
    assert_eq!(
        got[1..],
        [
            ("wamp.registration.on_register", pair(&first, pattern)),
            ("wamp.registration.on_unregister", pair(&first, pattern)),
            ("wamp.registration.on_delete", pair(&first, pattern)),
        ]
    );
    // Another realm's registrations are none of this realm's business.
    let elsewhere = join_realm(&mut h, 1, Json, "realm2");
    let other_realm = h.register(&elsewhere, "com.shared");
    h.unregister(&elsewhere, other_realm);
    h.disconnect(&elsewhere);
    assert_eq!(seen(&mut h, &watcher), vec![]);
    // A refused REGISTER publishes nothing.
    h.register(&first, "com.taken");
    seen(&mut h, &watcher);
    let refused_one = on(&mut h, 2, MsgPack);
    let request = h.send_register(&refused_one, "com.taken", Dict::new());
    assert_error(
        &h.recv(&refused_one),
        code::REGISTER,
        request,
        uri::PROCEDURE_ALREADY_EXISTS,
    );
    assert_eq!(seen(&mut h, &watcher), vec![]);
    goodbye(&mut h, &first);
    let got = seen(&mut h, &watcher);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "wamp.registration.on_unregister");
    assert_eq!(got[1].0, "wamp.registration.on_delete");
    no_gather_left(&h);
}

fn remove_callee_revokes_with_and_without_the_announced_feature() {
    let mut h = Harness::new();
    let admin = on(&mut h, 0, Json);
    let announces = join_with(
        &mut h,
        1,
        MsgPack,
        hello_with(&[("callee", "registration_revocation")]),
    );
    let silent = on(&mut h, 2, Json);
    let watcher = on(&mut h, 0, MsgPack);
    let watcher = watch(&mut h, watcher, &REGISTRATION_EVENTS);
    let shared = register_with(&mut h, &announces, "com.shared", roundrobin());
    register_with(&mut h, &silent, "com.shared", roundrobin());
    seen(&mut h, &watcher);
    let both = [announces, silent];

    // With a reason: the callee that announced the feature is told.
    assert_eq!(
        call_router(
            &mut h,
            &admin,
            "wamp.registration.remove_callee",
            &[uint(shared), uint(announces.id), s("com.example.revoked")]
        ),
        Ok(vec![])
    );
    match h.recv(&announces).msg() {
        Message::Unregistered {
            request,
            details: Some(details),
        } => {
            assert_eq!(request, 0);
            expect_fields(
                &Value::Dict(details.into_owned()),
                &[
                    ("registration", uint(shared)),
                    ("reason", s("com.example.revoked")),
                ],
            );
        }
        other => panic!("expected UNREGISTERED [67, 0, Details], got {other:?}"),
    }
    h.expect_nothing(&announces);
    assert_eq!(
        seen(&mut h, &watcher),
        vec![(
            "wamp.registration.on_unregister",
            vec![uint(announces.id), uint(shared)]
        )]
    );
    assert_eq!(
        meta(
            &mut h,
            &admin,
            "wamp.registration.list_callees",
            &[uint(shared)]
        ),
        id_list(&[silent.id])
    );
    for _ in 0..3 {
        assert_eq!(
            call_reaches(&mut h, &admin, "com.shared", &both),
            (1, shared)
        );
    }
    // It is no callee of it any more: its UNREGISTER and a second removal are refused.
    let request = h.request();
    h.send(
        &announces,
        &Message::Unregister {
            request,
            registration: shared,
        },
    );
    assert_error(
        &h.recv(&announces),
        code::UNREGISTER,
        request,
        uri::NO_SUCH_REGISTRATION,
    );
    assert_eq!(
        refused(
            &mut h,
            &admin,
            "wamp.registration.remove_callee",
            &[uint(shared), uint(announces.id)]
        ),
        uri::NO_SUCH_REGISTRATION
    );

    // Without the feature the callee is told nothing; the last callee removed deletes it.
    let kwargs = opts(&[
        ("registration_id", uint(shared)),
        ("callee_id", uint(silent.id)),
    ]);
    assert_eq!(
        call_kw(
            &mut h,
            &admin,
            "wamp.registration.remove_callee",
            &[],
            Some(&kwargs)
        ),
        Ok(vec![])
    );
    h.expect_nothing(&silent);
    assert_eq!(
        seen(&mut h, &watcher),
        vec![
            (
                "wamp.registration.on_unregister",
                vec![uint(silent.id), uint(shared)]
            ),
            (
                "wamp.registration.on_delete",
                vec![uint(silent.id), uint(shared)]
            ),
        ]
    );
    assert_no_such_procedure(&mut h, &admin, "com.shared");
    assert_eq!(
        refused(&mut h, &admin, "wamp.registration.get", &[uint(shared)]),
        uri::NO_SUCH_REGISTRATION
    );
    // The URI is free again.
    let again = h.register(&silent, "com.shared");
    assert_eq!(
        call_reaches(&mut h, &admin, "com.shared", &both),
        (1, again)
    );

    // Without a reason: Details carry the registration alone.
    let single = h.register(&announces, "com.single");
    assert_eq!(
        call_router(
            &mut h,
            &admin,
            "wamp.registration.remove_callee",
            &[uint(single), uint(announces.id), Value::Null]
        ),
        Ok(vec![])
    );
    match h.recv(&announces).msg() {
        Message::Unregistered {
            request: 0,
            details: Some(details),
        } => expect_fields(
            &Value::Dict(details.into_owned()),
            &[("registration", uint(single))],
        ),
        other => panic!("expected UNREGISTERED [67, 0, Details], got {other:?}"),
    }
    assert_no_such_procedure(&mut h, &admin, "com.single");
    seen(&mut h, &watcher);

    // Refusals.
    for (bad, error) in [
        (vec![uint(1), uint(silent.id)], uri::NO_SUCH_REGISTRATION),
        (vec![uint(again), uint(admin.id)], uri::NO_SUCH_REGISTRATION),
        (vec![uint(again), uint(1)], uri::NO_SUCH_REGISTRATION),
        (vec![uint(again)], uri::INVALID_ARGUMENT),
        (vec![s("x"), uint(silent.id)], uri::INVALID_ARGUMENT),
        (
            vec![uint(again), uint(silent.id), uint(3)],
            uri::INVALID_ARGUMENT,
        ),
        (
            vec![uint(again), uint(silent.id), s("com.r"), s("surplus")],
            uri::INVALID_ARGUMENT,
        ),
    ] {
        assert_eq!(
            refused(&mut h, &admin, "wamp.registration.remove_callee", &bad),
            error,
            "{bad:?}"
        );
    }
    // Refusals changed nothing.
    assert_eq!(
        call_reaches(&mut h, &admin, "com.shared", &both),
        (1, again)
    );
    assert_eq!(seen(&mut h, &watcher), vec![]);
    assert_eq!(meta_stats(&h).2, 3, "revocations");
    h.disconnect(&silent);
    no_gather_left(&h);
    h.assert_tables_empty_but_registrations(0);
}

// ------------------------------------------------------------------------------------------
// Subscription meta API
// ------------------------------------------------------------------------------------------

fn subscription_list_lookup_and_match_find_every_matching_subscription() {
    let mut h = Harness::new();
    let subscriber = on(&mut h, 1, MsgPack);
    let asker = on(&mut h, 2, Json);
    let exact = h.subscribe(&subscriber, "com.a.b");
    let prefix = h.subscribe_with(&subscriber, "com.a", matching("prefix"));
    let wildcard = h.subscribe_with(&subscriber, "com..b", matching("wildcard"));
    let other = h.subscribe(&asker, "org.x");
    expect_fields(
        &meta(&mut h, &asker, "wamp.subscription.list", &[]),
        &[
            ("exact", sorted_ids(&[exact, other])),
            ("prefix", id_list(&[prefix])),
            ("wildcard", id_list(&[wildcard])),
        ],
    );
    let lookup = |h: &mut Harness, topic: &str, options: Option<&str>| {
        let mut call_args = vec![s(topic)];
        if let Some(policy) = options {
            call_args.push(Value::Dict(matching(policy)));
        }
        meta(h, &subscriber, "wamp.subscription.lookup", &call_args)
    };
    assert_eq!(lookup(&mut h, "com.a.b", None), uint(exact));
    assert_eq!(lookup(&mut h, "com.a.b", Some("exact")), uint(exact));
    assert_eq!(lookup(&mut h, "com.a", Some("prefix")), uint(prefix));
    assert_eq!(lookup(&mut h, "com..b", Some("wildcard")), uint(wildcard));
    assert_eq!(lookup(&mut h, "com.a", None), Value::Null);
    assert_eq!(lookup(&mut h, "com.a.b", Some("prefix")), Value::Null);
    assert_eq!(lookup(&mut h, "com.a.b", Some("wildcard")), Value::Null);
    let kwargs = opts(&[
        ("topic", s("com..b")),
        ("options", Value::Dict(matching("wildcard"))),
    ]);
    assert_eq!(
        call_kw(
            &mut h,
            &asker,
            "wamp.subscription.lookup",
            &[],
            Some(&kwargs)
        ),
        Ok(vec![uint(wildcard)])
    );

    // match: every subscription an event to the topic would reach.
    let matched = |h: &mut Harness, topic: &str| -> Option<Vec<u64>> {
        match meta(h, &asker, "wamp.subscription.match", &[s(topic)]) {
            Value::Null => None,
            Value::List(ids) => {
                let mut ids: Vec<u64> = ids.iter().map(|id| id.as_u64().unwrap()).collect();
                ids.sort_unstable();
                Some(ids)
            }
            other => panic!("match answers ids or null, got {other:?}"),
        }
    };
    let sorted = |ids: &[u64]| {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        Some(ids)
    };
    assert_eq!(
        matched(&mut h, "com.a.b"),
        sorted(&[exact, prefix, wildcard])
    );
    assert_eq!(matched(&mut h, "com.a.x"), sorted(&[prefix]));
    assert_eq!(matched(&mut h, "com.ab"), sorted(&[prefix]));
    assert_eq!(matched(&mut h, "com.x.b"), sorted(&[wildcard]));
    assert_eq!(matched(&mut h, "org.x"), sorted(&[other]));
    assert_eq!(matched(&mut h, "org.y"), None);
    assert_eq!(matched(&mut h, "com.x.b.c"), None);

    for (procedure, bad) in [
        ("wamp.subscription.lookup", vec![]),
        ("wamp.subscription.lookup", vec![uint(1)]),
        (
            "wamp.subscription.lookup",
            vec![s("com.a"), Value::Dict(matching("regex"))],
        ),
        ("wamp.subscription.match", vec![]),
        ("wamp.subscription.match", vec![Value::Bool(true)]),
        ("wamp.subscription.list", vec![s("exact")]),
    ] {
        assert_eq!(
            refused(&mut h, &asker, procedure, &bad),
            uri::INVALID_ARGUMENT,
            "{procedure}{bad:?}"
        );
    }
    h.disconnect(&subscriber);
    h.disconnect(&asker);
    h.cluster.assert_tables_empty();
}

fn subscription_get_and_subscribers_gathered_from_every_shard() {
    let mut h = Harness::new();
    set_wall_clock(&mut h);
    let asker = on(&mut h, 0, MsgPack);
    let subscribers: Vec<Client> = (0..4)
        .map(|i| on(&mut h, i, if i % 2 == 0 { Json } else { MsgPack }))
        .collect();
    let subscription = h.subscribe(&subscribers[0], "com.t");
    let created = created_at(h.cluster.now);
    for subscriber in &subscribers[1..] {
        assert_eq!(h.subscribe(subscriber, "com.t"), subscription);
    }
    let prefix = h.subscribe_with(&subscribers[3], "com", matching("prefix"));
    let prefix_created = created_at(h.cluster.now);
    let ids: Vec<u64> = subscribers.iter().map(|c| c.id).collect();
    for by in [&asker, &subscribers[1]] {
        expect_fields(
            &meta(&mut h, by, "wamp.subscription.get", &[uint(subscription)]),
            &[
                ("id", uint(subscription)),
                ("created", created.clone()),
                ("uri", s("com.t")),
                ("match", s("exact")),
            ],
        );
        expect_fields(
            &meta(&mut h, by, "wamp.subscription.get", &[uint(prefix)]),
            &[
                ("id", uint(prefix)),
                ("created", prefix_created.clone()),
                ("uri", s("com")),
                ("match", s("prefix")),
            ],
        );
        assert_eq!(
            meta(
                &mut h,
                by,
                "wamp.subscription.list_subscribers",
                &[uint(subscription)]
            ),
            sorted_ids(&ids),
            "ascending, from every shard"
        );
        assert_eq!(
            meta(
                &mut h,
                by,
                "wamp.subscription.count_subscribers",
                &[uint(subscription)]
            ),
            uint(4)
        );
        assert_eq!(
            meta(
                &mut h,
                by,
                "wamp.subscription.list_subscribers",
                &[uint(prefix)]
            ),
            id_list(&[subscribers[3].id])
        );
    }
    let kwargs = opts(&[("subscription_id", uint(subscription))]);
    assert_eq!(
        call_kw(
            &mut h,
            &asker,
            "wamp.subscription.count_subscribers",
            &[],
            Some(&kwargs)
        ),
        Ok(vec![uint(4)])
    );
    unsubscribe(&mut h, &subscribers[1], subscription);
    h.disconnect(&subscribers[2]);
    assert_eq!(
        meta(
            &mut h,
            &asker,
            "wamp.subscription.list_subscribers",
            &[uint(subscription)]
        ),
        sorted_ids(&[ids[0], ids[3]])
    );
    assert_eq!(
        meta(
            &mut h,
            &asker,
            "wamp.subscription.count_subscribers",
            &[uint(subscription)]
        ),
        uint(2)
    );
    h.disconnect(&subscribers[0]);
    h.disconnect(&subscribers[3]);
    for procedure in [
        "wamp.subscription.get",
        "wamp.subscription.list_subscribers",
        "wamp.subscription.count_subscribers",
    ] {
        for id in [subscription, prefix, 1] {
            assert_eq!(
                refused(&mut h, &asker, procedure, &[uint(id)]),
                uri::NO_SUCH_SUBSCRIPTION,
                "{procedure} {id}"
            );
        }
        for bad in [vec![], vec![s("1")], vec![uint(1), uint(2)]] {
            assert_eq!(
                refused(&mut h, &asker, procedure, &bad),
                uri::INVALID_ARGUMENT,
                "{procedure}{bad:?}"
            );
        }
    }
    no_gather_left(&h);
    h.assert_tables_empty();
}

const SUBSCRIPTION_EVENTS: [&str; 4] = [
    "wamp.subscription.on_create",
    "wamp.subscription.on_subscribe",
    "wamp.subscription.on_unsubscribe",
    "wamp.subscription.on_delete",
];

fn subscription_meta_events_reach_a_watcher_on_another_shard_in_order() {
    let mut h = Harness::new();
    set_wall_clock(&mut h);
    let watcher = on(&mut h, 0, MsgPack);
    let watcher = watch(&mut h, watcher, &SUBSCRIPTION_EVENTS);
    let first = on(&mut h, 1, Json);
    let second = on(&mut h, 2, MsgPack);
    let pair = |session: &Client, id: u64| vec![uint(session.id), uint(id)];

    let subscription = h.subscribe(&first, "com.t");
    let created = created_at(h.cluster.now);
    let got = seen(&mut h, &watcher);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "wamp.subscription.on_create");
    assert_eq!(got[0].1.len(), 2, "{got:?}");
    assert_eq!(got[0].1[0], uint(first.id));
    expect_fields(
        &got[0].1[1],
        &[
            ("id", uint(subscription)),
            ("created", created),
            ("uri", s("com.t")),
            ("match", s("exact")),
        ],
    );
    assert_eq!(
        fields(&got[0].1[1]),
        fields(&meta(
            &mut h,
            &watcher.client,
            "wamp.subscription.get",
            &[uint(subscription)]
        )),
        "on_create carries what get answers"
    );
    assert_eq!(
        got[1],
        ("wamp.subscription.on_subscribe", pair(&first, subscription))
    );
    // A second subscriber: on_subscribe only.
    assert_eq!(h.subscribe(&second, "com.t"), subscription);
    assert_eq!(
        seen(&mut h, &watcher),
        vec![(
            "wamp.subscription.on_subscribe",
            pair(&second, subscription)
        )]
    );
    unsubscribe(&mut h, &first, subscription);
    assert_eq!(
        seen(&mut h, &watcher),
        vec![(
            "wamp.subscription.on_unsubscribe",
            pair(&first, subscription)
        )]
    );
    h.disconnect(&second);
    assert_eq!(
        seen(&mut h, &watcher),
        vec![
            (
                "wamp.subscription.on_unsubscribe",
                pair(&second, subscription)
            ),
            ("wamp.subscription.on_delete", pair(&second, subscription)),
        ]
    );
    // A pattern subscription, made and dropped by one session.
    let pattern = h.subscribe_with(&first, "com", matching("prefix"));
    let created = created_at(h.cluster.now);
    unsubscribe(&mut h, &first, pattern);
    let got = seen(&mut h, &watcher);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0].0, "wamp.subscription.on_create");
    assert_eq!(got[0].1[0], uint(first.id));
    expect_fields(
        &got[0].1[1],
        &[
            ("id", uint(pattern)),
            ("created", created),
            ("uri", s("com")),
            ("match", s("prefix")),
        ],
    );
    assert_eq!(
        got[1..],
        [
            ("wamp.subscription.on_subscribe", pair(&first, pattern)),
            ("wamp.subscription.on_unsubscribe", pair(&first, pattern)),
            ("wamp.subscription.on_delete", pair(&first, pattern)),
        ]
    );
    // Subscribing again to what it is subscribed to adds no subscriber: no event.
    let again = h.subscribe(&first, "com.again");
    seen(&mut h, &watcher);
    assert_eq!(h.subscribe(&first, "com.again"), again);
    assert_eq!(
        meta(
            &mut h,
            &first,
            "wamp.subscription.list_subscribers",
            &[uint(again)]
        ),
        id_list(&[first.id])
    );
    assert_eq!(seen(&mut h, &watcher), vec![], "no second on_subscribe");
    h.disconnect(&first);
    assert_eq!(
        seen(&mut h, &watcher),
        vec![
            ("wamp.subscription.on_unsubscribe", pair(&first, again)),
            ("wamp.subscription.on_delete", pair(&first, again)),
        ]
    );
    no_gather_left(&h);
}

fn remove_subscriber_revokes_with_and_without_the_announced_feature() {
    let mut h = Harness::new();
    let admin = on(&mut h, 0, Json);
    let announces = join_with(
        &mut h,
        1,
        Json,
        hello_with(&[("subscriber", "subscription_revocation")]),
    );
    let silent = on(&mut h, 2, MsgPack);
    let stays = on(&mut h, 0, MsgPack);
    let watcher = on(&mut h, 1, MsgPack);
    let watcher = watch(&mut h, watcher, &SUBSCRIPTION_EVENTS);
    let subscription = h.subscribe(&announces, "com.t");
    for client in [&silent, &stays] {
        h.subscribe(client, "com.t");
    }
    seen(&mut h, &watcher);
    let publish = |h: &mut Harness, text: &str| {
        let payload = args(admin.ser, &[s(text)]);
        h.publish(&admin, "com.t", Dict::new(), payload.as_payload());
    };
    let reached = |h: &mut Harness, clients: &[&Client]| -> Vec<usize> {
        clients
            .iter()
            .map(|client| events(h, client).len())
            .collect()
    };
    let all = [&announces, &silent, &stays];
    publish(&mut h, "before");
    assert_eq!(reached(&mut h, &all), [1, 1, 1]);

    // With a reason, to the subscriber that announced the feature.
    assert_eq!(
        call_router(
            &mut h,
            &admin,
            "wamp.subscription.remove_subscriber",
            &[
                uint(subscription),
                uint(announces.id),
                s("com.example.revoked")
            ]
        ),
        Ok(vec![])
    );
    match h.recv(&announces).msg() {
        Message::Unsubscribed {
            request,
            details: Some(details),
        } => {
            assert_eq!(request, 0);
            expect_fields(
                &Value::Dict(details.into_owned()),
                &[
                    ("subscription", uint(subscription)),
                    ("reason", s("com.example.revoked")),
                ],
            );
        }
        other => panic!("expected UNSUBSCRIBED [35, 0, Details], got {other:?}"),
    }
    h.expect_nothing(&announces);
    assert_eq!(
        seen(&mut h, &watcher),
        vec![(
            "wamp.subscription.on_unsubscribe",
            vec![uint(announces.id), uint(subscription)]
        )]
    );
    publish(&mut h, "after the first");
    assert_eq!(reached(&mut h, &all), [0, 1, 1]);
    assert_eq!(
        meta(
            &mut h,
            &admin,
            "wamp.subscription.list_subscribers",
            &[uint(subscription)]
        ),
        sorted_ids(&[silent.id, stays.id])
    );
    let request = h.request();
    h.send(
        &announces,
        &Message::Unsubscribe {
            request,
            subscription,
        },
    );
    assert_error(
        &h.recv(&announces),
        code::UNSUBSCRIBE,
        request,
        uri::NO_SUCH_SUBSCRIPTION,
    );
    assert_eq!(
        refused(
            &mut h,
            &admin,
            "wamp.subscription.remove_subscriber",
            &[uint(subscription), uint(announces.id)]
        ),
        uri::NO_SUCH_SUBSCRIPTION,
        "no longer a subscriber"
    );

    // Without the feature: told nothing, by keyword.
    let kwargs = opts(&[
        ("subscription_id", uint(subscription)),
        ("subscriber_id", uint(silent.id)),
        ("reason", s("com.example.quiet")),
    ]);
    assert_eq!(
        call_kw(
            &mut h,
            &admin,
            "wamp.subscription.remove_subscriber",
            &[],
            Some(&kwargs)
        ),
        Ok(vec![])
    );
    h.expect_nothing(&silent);
    publish(&mut h, "after the second");
    assert_eq!(reached(&mut h, &all), [0, 0, 1]);
    // The last subscriber removed deletes the subscription.
    assert_eq!(
        call_router(
            &mut h,
            &admin,
            "wamp.subscription.remove_subscriber",
            &[uint(subscription), uint(stays.id)]
        ),
        Ok(vec![])
    );
    h.expect_nothing(&stays);
    assert_eq!(
        seen(&mut h, &watcher),
        vec![
            (
                "wamp.subscription.on_unsubscribe",
                vec![uint(silent.id), uint(subscription)]
            ),
            (
                "wamp.subscription.on_unsubscribe",
                vec![uint(stays.id), uint(subscription)]
            ),
            (
                "wamp.subscription.on_delete",
                vec![uint(stays.id), uint(subscription)]
            ),
        ]
    );
    publish(&mut h, "after all");
    assert_eq!(reached(&mut h, &all), [0, 0, 0]);
    assert_eq!(
        meta(&mut h, &admin, "wamp.subscription.lookup", &[s("com.t")]),
        Value::Null
    );
    assert_eq!(
        refused(
            &mut h,
            &admin,
            "wamp.subscription.get",
            &[uint(subscription)]
        ),
        uri::NO_SUCH_SUBSCRIPTION
    );

    // Without a reason: Details carry the subscription alone.
    let again = h.subscribe(&announces, "com.u");
    h.subscribe(&stays, "com.u");
    seen(&mut h, &watcher);
    assert_eq!(
        call_router(
            &mut h,
            &admin,
            "wamp.subscription.remove_subscriber",
            &[uint(again), uint(announces.id)]
        ),
        Ok(vec![])
    );
    match h.recv(&announces).msg() {
        Message::Unsubscribed {
            request: 0,
            details: Some(details),
        } => expect_fields(
            &Value::Dict(details.into_owned()),
            &[("subscription", uint(again))],
        ),
        other => panic!("expected UNSUBSCRIBED [35, 0, Details], got {other:?}"),
    }
    seen(&mut h, &watcher);

    // Refusals.
    for (bad, error) in [
        (vec![uint(1), uint(stays.id)], uri::NO_SUCH_SUBSCRIPTION),
        (
            vec![uint(subscription), uint(stays.id)],
            uri::NO_SUCH_SUBSCRIPTION,
        ),
        (vec![uint(again), uint(admin.id)], uri::NO_SUCH_SUBSCRIPTION),
        (vec![uint(again), uint(1)], uri::NO_SUCH_SUBSCRIPTION),
        (vec![uint(again)], uri::INVALID_ARGUMENT),
        (vec![s("x"), uint(stays.id)], uri::INVALID_ARGUMENT),
        (
            vec![uint(again), uint(stays.id), Value::Bool(false)],
            uri::INVALID_ARGUMENT,
        ),
    ] {
        assert_eq!(
            refused(&mut h, &admin, "wamp.subscription.remove_subscriber", &bad),
            error,
            "{bad:?}"
        );
    }
    assert_eq!(
        meta(
            &mut h,
            &admin,
            "wamp.subscription.list_subscribers",
            &[uint(again)]
        ),
        id_list(&[stays.id]),
        "refusals changed nothing"
    );
    assert_eq!(seen(&mut h, &watcher), vec![]);
    assert_eq!(meta_stats(&h).2, 4, "revocations");
    h.disconnect(&stays);
    no_gather_left(&h);
}

// ------------------------------------------------------------------------------------------
// Testaments
// ------------------------------------------------------------------------------------------

/// `wamp.session.add_testament(topic, args, kwargs, publish_options?, scope?)`: the publication
/// id it answers.
fn add_testament(
    h: &mut Harness,
    client: &Client,
    topic: &str,
    text: &str,
    publish_options: Option<Value<'static>>,
    scope: Option<&str>,
) -> u64 {
    let mut call_args = vec![s(topic), Value::List(vec![s(text)]), Value::Null];
    if publish_options.is_some() || scope.is_some() {
        call_args.push(publish_options.unwrap_or(Value::Null));
    }
    if let Some(scope) = scope {
        call_args.push(s(scope));
    }
    match meta(h, client, "wamp.session.add_testament", &call_args) {
        Value::UInt(publication) => publication,
        other => panic!("add_testament answers a publication id, got {other:?}"),
    }
}

/// The (publication, first argument) of every EVENT waiting for `client`, which must all be
/// for `subscription` and disclose no publisher.
fn testaments_seen(h: &mut Harness, client: &Client, subscription: u64) -> Vec<(u64, String)> {
    events(h, client)
        .into_iter()
        .map(|event| {
            assert_eq!(event.subscription, subscription, "{event:?}");
            assert_eq!(event.publisher, None, "a testament discloses no publisher");
            let text = event.args[0].as_str().expect("a text").to_string();
            (event.publication, text)
        })
        .collect()
}

fn a_testament_is_published_on_goodbye_with_the_publication_id_add_testament_answered() {
    let mut h = Harness::new();
    let testator = on(&mut h, 0, MsgPack);
    let json = on(&mut h, 1, Json);
    let msgpack = on(&mut h, 2, MsgPack);
    let to_json = h.subscribe(&json, "com.will");
    let to_msgpack = h.subscribe(&msgpack, "com.will");
    let mut kwargs = Dict::new();
    kwargs.insert("state", s("gone"));
    kwargs.insert("code", Value::UInt(7));
    let call_args = [
        s("com.will"),
        Value::List(vec![s("bye"), Value::UInt(42), Value::Bool(true)]),
        Value::Dict(kwargs.clone()),
    ];
    let publication = match meta(&mut h, &testator, "wamp.session.add_testament", &call_args) {
        Value::UInt(publication) => publication,
        other => panic!("expected a publication id, got {other:?}"),
    };
    // Nothing is published while the session lives.
    for client in [&json, &msgpack] {
        h.expect_nothing(client);
    }
    assert_eq!(meta_stats(&h).0, 0);
    goodbye(&mut h, &testator);
    for (client, subscription) in [(&json, to_json), (&msgpack, to_msgpack)] {
        let seen = events(&mut h, client);
        assert_eq!(seen.len(), 1, "{seen:?}");
        let event = &seen[0];
        assert_eq!(event.subscription, subscription);
        assert_eq!(
            event.publication, publication,
            "the id add_testament answered"
        );
        assert_eq!(event.publisher, None, "no publisher disclosed");
        assert_eq!(
            event.args,
            vec![s("bye"), Value::UInt(42), Value::Bool(true)]
        );
        assert_eq!(
            fields(&Value::Dict(event.kwargs.clone().expect("kwargs"))),
            fields(&Value::Dict(kwargs.clone()))
        );
    }
    assert_eq!(meta_stats(&h).0, 1, "testaments_published");

    // By keyword, without args or kwargs.
    let second = on(&mut h, 1, Json);
    let kwargs = opts(&[("topic", s("com.will")), ("scope", s("destroyed"))]);
    let answer = call_kw(
        &mut h,
        &second,
        "wamp.session.add_testament",
        &[],
        Some(&kwargs),
    );
    let Ok(values) = answer else {
        panic!("add_testament by keyword: {answer:?}")
    };
    let [Value::UInt(publication)] = values.as_slice() else {
        panic!("expected a publication id, got {values:?}")
    };
    goodbye(&mut h, &second);
    let seen = events(&mut h, &json);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].publication, *publication);
    assert_eq!(seen[0].args, Vec::<Value<'static>>::new());
    assert_eq!(seen[0].kwargs, None);
    events(&mut h, &msgpack);
    for client in [&testator, &second, &json, &msgpack] {
        h.disconnect(client);
    }
    h.cluster.assert_tables_empty();
}

fn testaments_are_published_detached_first_then_destroyed_each_in_insertion_order() {
    let mut h = Harness::new();
    let testator = on(&mut h, 1, Json);
    let subscriber = on(&mut h, 2, MsgPack);
    let subscription = h.subscribe(&subscriber, "com.will");
    let d1 = add_testament(&mut h, &testator, "com.will", "d1", None, None);
    let x1 = add_testament(&mut h, &testator, "com.will", "x1", None, Some("detached"));
    let d2 = add_testament(&mut h, &testator, "com.will", "d2", None, Some("destroyed"));
    let x2 = add_testament(
        &mut h,
        &testator,
        "com.will",
        "x2",
        Some(dict(&[])),
        Some("detached"),
    );
    let d3 = add_testament(&mut h, &testator, "com.will", "d3", Some(dict(&[])), None);
    let publications = [d1, x1, d2, x2, d3];
    let mut distinct = publications.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "one publication id each");
    h.disconnect(&testator);
    assert_eq!(
        testaments_seen(&mut h, &subscriber, subscription),
        vec![
            (x1, "x1".to_string()),
            (x2, "x2".to_string()),
            (d1, "d1".to_string()),
            (d2, "d2".to_string()),
            (d3, "d3".to_string()),
        ]
    );
    assert_eq!(meta_stats(&h).0, 5);
    h.disconnect(&subscriber);
    h.cluster.assert_tables_empty();
}

fn flushed_testaments_are_never_published() {
    let mut h = Harness::new();
    let testator = on(&mut h, 0, MsgPack);
    let subscriber = on(&mut h, 1, Json);
    let subscription = h.subscribe(&subscriber, "com.will");
    add_testament(&mut h, &testator, "com.will", "d1", None, None);
    add_testament(&mut h, &testator, "com.will", "d2", None, None);
    add_testament(&mut h, &testator, "com.will", "x1", None, Some("detached"));
    assert_eq!(
        meta(&mut h, &testator, "wamp.session.flush_testaments", &[]),
        uint(2),
        "destroyed by default"
    );
    assert_eq!(
        meta(
            &mut h,
            &testator,
            "wamp.session.flush_testaments",
            &[s("destroyed")]
        ),
        uint(0)
    );
    let kwargs = opts(&[("scope", s("detached"))]);
    assert_eq!(
        call_kw(
            &mut h,
            &testator,
            "wamp.session.flush_testaments",
            &[],
            Some(&kwargs)
        ),
        Ok(vec![uint(1)])
    );
    assert_eq!(
        meta(
            &mut h,
            &testator,
            "wamp.session.flush_testaments",
            &[s("detached")]
        ),
        uint(0)
    );
    for bad in ["forever", ""] {
        assert_eq!(
            refused(
                &mut h,
                &testator,
                "wamp.session.flush_testaments",
                &[s(bad)]
            ),
            uri::TESTAMENT_ERROR,
            "{bad:?}"
        );
    }
    assert_eq!(
        refused(
            &mut h,
            &testator,
            "wamp.session.flush_testaments",
            &[s("destroyed"), s("detached")]
        ),
        uri::INVALID_ARGUMENT
    );
    let kept = add_testament(&mut h, &testator, "com.will", "kept", None, None);
    h.disconnect(&testator);
    assert_eq!(
        testaments_seen(&mut h, &subscriber, subscription),
        vec![(kept, "kept".to_string())]
    );
    assert_eq!(meta_stats(&h).0, 1);
    h.disconnect(&subscriber);
    h.cluster.assert_tables_empty();
}

fn testaments_are_published_however_the_session_goes_before_its_on_leave() {
    for how in ["goodbye", "transport", "killed", "violation", "abort"] {
        let mut h = Harness::new();
        let admin = on(&mut h, 0, Json);
        let testator = on(&mut h, 1, Json);
        let subscriber = on(&mut h, 2, MsgPack);
        let will = h.subscribe(&subscriber, "com.will");
        let on_leave = h.subscribe(&subscriber, "wamp.session.on_leave");
        let unregistered = h.subscribe(&subscriber, "wamp.registration.on_unregister");
        h.register(&testator, "com.testator.proc");
        let detached = add_testament(&mut h, &testator, "com.will", how, None, Some("detached"));
        let destroyed = add_testament(&mut h, &testator, "com.will", how, None, None);
        match how {
            "goodbye" => goodbye(&mut h, &testator),
            "transport" => h.disconnect(&testator),
            "killed" => {
                assert_eq!(
                    call_router(&mut h, &admin, "wamp.session.kill", &[uint(testator.id)]),
                    Ok(vec![])
                );
                assert_killed(&mut h, &testator, uri::CLOSE_KILLED, None);
            }
            "violation" => {
                let welcome = Message::Welcome {
                    session: 1,
                    details: Dict::new(),
                };
                h.send(&testator, &welcome);
                assert_violation(&mut h, &testator);
            }
            "abort" => {
                h.send(
                    &testator,
                    &Message::Abort {
                        details: Dict::new(),
                        reason: "wamp.close.system_shutdown".into(),
                        payload: Payload::empty(Json),
                    },
                );
                h.expect_nothing(&testator);
            }
            _ => unreachable!(),
        }
        let seen = events(&mut h, &subscriber);
        let summary: Vec<(u64, u64)> = seen
            .iter()
            .map(|event| (event.subscription, event.publication))
            .collect();
        assert_eq!(summary.len(), 4, "{how}: {seen:?}");
        assert_eq!(
            summary[..2],
            [(will, detached), (will, destroyed)],
            "{how}: testaments first, in order"
        );
        assert_eq!(seen[0].args, vec![s(how)]);
        assert_eq!(summary[2].0, unregistered, "{how}: {seen:?}");
        assert_eq!(summary[3].0, on_leave, "{how}: {seen:?}");
        assert_eq!(meta_stats(&h).0, 2, "{how}");
        if how != "transport" {
            h.disconnect(&testator);
        }
        no_gather_left(&h);
        h.assert_tables_empty_but_registrations(0);
    }
}

fn testaments_are_published_with_their_lists_and_retained_when_asked() {
    let mut h = Harness::new();
    let testator = on(&mut h, 0, MsgPack);
    let subscribers: Vec<Client> = (0..3)
        .map(|i| on(&mut h, i + 1, if i % 2 == 0 { Json } else { MsgPack }))
        .collect();
    let subscription = h.subscribe(&subscribers[0], "com.will");
    for client in &subscribers[1..] {
        assert_eq!(h.subscribe(client, "com.will"), subscription);
    }
    let [first, second, third] = [subscribers[0], subscribers[1], subscribers[2]];
    let listed = |key: &'static str, values: Vec<Value<'static>>| (key, Value::List(values));
    let only_first = add_testament(
        &mut h,
        &testator,
        "com.will",
        "eligible first",
        Some(dict(&[listed("eligible", vec![uint(first.id)])])),
        None,
    );
    let only_third = add_testament(
        &mut h,
        &testator,
        "com.will",
        "not first, not second",
        Some(dict(&[
            listed("exclude", vec![uint(first.id)]),
            listed("exclude_authid", vec![s(&authid(&second))]),
        ])),
        None,
    );
    // Nobody may receive this one.
    add_testament(
        &mut h,
        &testator,
        "com.will",
        "no anonymous",
        Some(dict(&[listed("exclude_authrole", vec![s("anonymous")])])),
        None,
    );
    let second_and_third = add_testament(
        &mut h,
        &testator,
        "com.will",
        "by authid and authrole",
        Some(dict(&[
            listed("eligible_authrole", vec![s("anonymous")]),
            listed(
                "eligible_authid",
                vec![s(&authid(&second)), s(&authid(&third))],
            ),
            ("acknowledge", Value::Bool(true)),
            ("exclude_me", Value::Bool(false)),
        ])),
        None,
    );
    let retained = add_testament(
        &mut h,
        &testator,
        "com.status",
        "retained",
        Some(dict(&[("retain", Value::Bool(true))])),
        None,
    );
    let retained_for_third = add_testament(
        &mut h,
        &testator,
        "com.status.third",
        "retained for the third",
        Some(dict(&[
            ("retain", Value::Bool(true)),
            listed("eligible", vec![uint(third.id)]),
        ])),
        None,
    );
    add_testament(
        &mut h,
        &testator,
        "com.status.off",
        "not retained",
        Some(dict(&[("retain", Value::Bool(false))])),
        None,
    );
    h.disconnect(&testator);
    let text = |id: u64, t: &str| (id, t.to_string());
    assert_eq!(
        testaments_seen(&mut h, &first, subscription),
        vec![text(only_first, "eligible first")]
    );
    assert_eq!(
        testaments_seen(&mut h, &second, subscription),
        vec![text(second_and_third, "by authid and authrole")]
    );
    assert_eq!(
        testaments_seen(&mut h, &third, subscription),
        vec![
            text(only_third, "not first, not second"),
            text(second_and_third, "by authid and authrole"),
        ]
    );
    assert_eq!(meta_stats(&h).0, 7);
    assert_eq!(h.stats().retained_now, 2);

    // Later subscribers asking for retained events get the retained testaments they may see.
    let get_retained = || opts(&[("get_retained", Value::Bool(true))]);
    let late = on(&mut h, 2, Json);
    let status = h.subscribe_with(&late, "com.status", get_retained());
    let seen = events(&mut h, &late);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].subscription, status);
    assert_eq!(seen[0].publication, retained);
    assert!(seen[0].retained, "Details.retained");
    assert_eq!(seen[0].args, vec![s("retained")]);
    assert_eq!(seen[0].publisher, None);
    h.subscribe_with(&late, "com.status.third", get_retained());
    h.expect_nothing(&late);
    h.subscribe_with(&late, "com.status.off", get_retained());
    h.expect_nothing(&late);
    let for_third = h.subscribe_with(&third, "com.status.third", get_retained());
    let seen = events(&mut h, &third);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].subscription, seen[0].publication, seen[0].retained),
        (for_third, retained_for_third, true)
    );
    for client in subscribers.iter().chain([&late]) {
        h.disconnect(client);
    }
    h.cluster.assert_tables_empty();
}

fn add_testament_refusals_and_the_per_session_bound() {
    let mut h = Harness::with_config(RouterConfig {
        max_testaments_per_session: 2,
        ..RouterConfig::default()
    });
    let testator = on(&mut h, 0, Json);
    let subscriber = on(&mut h, 1, MsgPack);
    let subscription = h.subscribe(&subscriber, "com.will");
    let pattern = h.subscribe_with(&subscriber, "com", matching("prefix"));
    let listed = |values: Vec<Value<'static>>| Value::List(values);
    let text = || Value::List(vec![s("refused")]);
    for (bad, error) in [
        // The topic.
        (vec![s("wamp.session.on_leave"), text()], uri::INVALID_URI),
        (vec![s("wamp.anything"), text()], uri::INVALID_URI),
        (vec![s("com..will"), text()], uri::INVALID_URI),
        (vec![s("com.will#"), text()], uri::INVALID_URI),
        (vec![s(""), text()], uri::INVALID_URI),
        (vec![], uri::INVALID_ARGUMENT),
        (vec![Value::Null, text()], uri::INVALID_ARGUMENT),
        (vec![uint(1), text()], uri::INVALID_ARGUMENT),
        // args, kwargs.
        (vec![s("com.will"), s("not a list")], uri::INVALID_ARGUMENT),
        (
            vec![s("com.will"), text(), listed(vec![])],
            uri::INVALID_ARGUMENT,
        ),
        // publish_options.
        (
            vec![
                s("com.will"),
                text(),
                Value::Null,
                dict(&[("frobnicate", uint(1))]),
            ],
            uri::INVALID_ARGUMENT,
        ),
        (
            vec![
                s("com.will"),
                text(),
                Value::Null,
                dict(&[("disclose_me", Value::Bool(true))]),
            ],
            uri::INVALID_ARGUMENT,
        ),
        (
            vec![
                s("com.will"),
                text(),
                Value::Null,
                dict(&[("retain", s("yes"))]),
            ],
            uri::INVALID_ARGUMENT,
        ),
        (
            vec![s("com.will"), text(), Value::Null, s("retain")],
            uri::INVALID_ARGUMENT,
        ),
        // scope.
        (
            vec![
                s("com.will"),
                text(),
                Value::Null,
                Value::Null,
                s("forever"),
            ],
            uri::TESTAMENT_ERROR,
        ),
        (
            vec![
                s("com.will"),
                text(),
                Value::Null,
                Value::Null,
                s("DESTROYED"),
            ],
            uri::TESTAMENT_ERROR,
        ),
        // Surplus.
        (
            vec![
                s("com.will"),
                text(),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ],
            uri::INVALID_ARGUMENT,
        ),
    ] {
        assert_eq!(
            refused(&mut h, &testator, "wamp.session.add_testament", &bad),
            error,
            "{bad:?}"
        );
    }
    let unknown_keyword = opts(&[("topic", s("com.will")), ("options", dict(&[]))]);
    assert_eq!(
        refused_kw(
            &mut h,
            &testator,
            "wamp.session.add_testament",
            &[],
            &unknown_keyword
        ),
        uri::INVALID_ARGUMENT
    );
    // The bound counts both scopes; flushing makes room again.
    let first = add_testament(
        &mut h,
        &testator,
        "com.will",
        "first",
        None,
        Some("detached"),
    );
    add_testament(&mut h, &testator, "com.will", "second", None, None);
    for scope in ["destroyed", "detached"] {
        assert_eq!(
            refused(
                &mut h,
                &testator,
                "wamp.session.add_testament",
                &[s("com.will"), text(), Value::Null, Value::Null, s(scope)]
            ),
            uri::TOO_MANY_TESTAMENTS
        );
    }
    assert_eq!(
        meta(&mut h, &testator, "wamp.session.flush_testaments", &[]),
        uint(1)
    );
    let third = add_testament(&mut h, &testator, "com.will", "third", None, None);
    assert_eq!(
        refused(
            &mut h,
            &testator,
            "wamp.session.add_testament",
            &[s("com.will"), text()]
        ),
        uri::TOO_MANY_TESTAMENTS
    );
    h.expect_nothing(&subscriber);
    goodbye(&mut h, &testator);
    // Only the accepted ones, in order (the prefix subscription on "com" sees them too).
    let seen: Vec<(u64, u64, String)> = events(&mut h, &subscriber)
        .into_iter()
        .map(|event| {
            let topic = (event.subscription == pattern).then(|| "com.will".to_string());
            assert_eq!(
                event.topic, topic,
                "Details.topic for the pattern subscription"
            );
            (
                event.subscription,
                event.publication,
                event.args[0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut by_subscription: Vec<(u64, u64, String)> = seen.clone();
    by_subscription.sort_by_key(|(subscription, _, _)| *subscription == pattern);
    assert_eq!(
        by_subscription,
        vec![
            (subscription, first, "first".to_string()),
            (subscription, third, "third".to_string()),
            (pattern, first, "first".to_string()),
            (pattern, third, "third".to_string()),
        ],
        "{seen:?}"
    );
    assert_eq!(meta_stats(&h).0, 2);
    h.disconnect(&testator);
    h.disconnect(&subscriber);
    h.cluster.assert_tables_empty();
}

/// Wrong types in `publish_options` are refused (as a PUBLISH's options are checked): a list
/// of the wrong type would otherwise widen (an exclusion read as empty) or empty (an eligible
/// list) the audience silently.
fn testament_publish_options_of_the_wrong_type_are_refused() {
    let mut h = Harness::new();
    let testator = on(&mut h, 0, Json);
    let subscriber = on(&mut h, 1, MsgPack);
    h.subscribe(&subscriber, "com.will");
    for (key, value) in [
        ("exclude", uint(subscriber.id)),
        ("exclude", Value::List(vec![s(&authid(&subscriber))])),
        ("eligible", s("everyone")),
        ("exclude_authid", Value::List(vec![uint(subscriber.id)])),
        ("eligible_authid", s("someone")),
        ("exclude_authrole", s("anonymous")),
        ("eligible_authrole", Value::List(vec![Value::Bool(true)])),
    ] {
        let options = dict(&[(key, value.clone())]);
        assert_eq!(
            refused(
                &mut h,
                &testator,
                "wamp.session.add_testament",
                &[s("com.will"), Value::List(vec![]), Value::Null, options]
            ),
            uri::INVALID_ARGUMENT,
            "{key}: {value:?}"
        );
    }
    goodbye(&mut h, &testator);
    h.expect_nothing(&subscriber);
    assert_eq!(meta_stats(&h).0, 0);
    h.disconnect(&testator);
    h.disconnect(&subscriber);
    h.cluster.assert_tables_empty();
}

// ------------------------------------------------------------------------------------------
// Meta calls racing each other and the sessions they are about
// ------------------------------------------------------------------------------------------

/// The encoded CALL of `procedure` with `call_args`, and its request id.
fn call_frame(
    h: &mut Harness,
    client: &Client,
    procedure: &str,
    call_args: &[Value<'_>],
) -> (Vec<u8>, u64) {
    let request = h.request();
    let payload = args(client.ser, call_args);
    let call = Message::Call {
        request,
        options: Dict::new(),
        procedure: procedure.to_string().into(),
        payload: payload.as_payload(),
    };
    let mut frame = Vec::new();
    wire::encode(&call, client.ser, &mut frame).expect("test message encodes");
    (frame, request)
}

/// Whether `client`'s answer to `request` was a RESULT (true) or ERROR `error` (false).
fn succeeded(h: &mut Harness, client: &Client, request: u64, error: &str) -> bool {
    let received = h.recv(client);
    match received.msg() {
        Message::Result { request: r, .. } if r == request => true,
        _ => {
            assert_error(&received, code::CALL, request, error);
            false
        }
    }
}

fn kills_and_revocations_racing_each_other_take_effect_once() {
    let mut h = Harness::new();
    let admins = [on(&mut h, 0, Json), on(&mut h, 1, MsgPack)];
    let watcher = on(&mut h, 0, MsgPack);
    let watcher = watch(
        &mut h,
        watcher,
        &[
            "wamp.session.on_leave",
            "wamp.registration.on_unregister",
            "wamp.registration.on_delete",
            "wamp.subscription.on_unsubscribe",
            "wamp.subscription.on_delete",
        ],
    );

    // Two kills of one session from two shards before either is answered.
    let victim = on(&mut h, 2, Json);
    let frames: Vec<(Vec<u8>, u64)> = admins
        .iter()
        .map(|admin| call_frame(&mut h, admin, "wamp.session.kill", &[uint(victim.id)]))
        .collect();
    for (admin, (frame, _)) in admins.iter().zip(&frames) {
        h.cluster.send_frame(admin.conn, frame);
    }
    h.cluster.drain();
    let killed: Vec<bool> = admins
        .iter()
        .zip(&frames)
        .map(|(admin, (_, request))| succeeded(&mut h, admin, *request, uri::NO_SUCH_SESSION))
        .collect();
    assert_eq!(killed.iter().filter(|&&k| k).count(), 1, "{killed:?}");
    assert_killed(&mut h, &victim, uri::CLOSE_KILLED, None);
    assert_eq!(seen(&mut h, &watcher).len(), 1, "one on_leave");
    h.disconnect(&victim);

    // A callee unregistering while it is removed; a subscriber unsubscribing while it is
    // removed; and a kill_all racing a session's GOODBYE.
    let callee = join_with(
        &mut h,
        2,
        MsgPack,
        hello_with(&[
            ("callee", "registration_revocation"),
            ("subscriber", "subscription_revocation"),
        ]),
    );
    let registration = h.register(&callee, "com.raced");
    let subscription = h.subscribe(&callee, "com.raced");
    let (remove_callee, removing_callee) = call_frame(
        &mut h,
        &admins[1],
        "wamp.registration.remove_callee",
        &[uint(registration), uint(callee.id)],
    );
    let (remove_subscriber, removing_subscriber) = call_frame(
        &mut h,
        &admins[0],
        "wamp.subscription.remove_subscriber",
        &[uint(subscription), uint(callee.id)],
    );
    let (unregister, unsubscribe) = (h.request(), h.request());
    let mut own = Vec::new();
    for msg in [
        Message::Unregister {
            request: unregister,
            registration,
        },
        Message::Unsubscribe {
            request: unsubscribe,
            subscription,
        },
    ] {
        let mut frame = Vec::new();
        wire::encode(&msg, callee.ser, &mut frame).unwrap();
        own.push(frame);
    }
    h.cluster.send_frame(admins[1].conn, &remove_callee);
    h.cluster.send_frame(callee.conn, &own[0]);
    h.cluster.send_frame(callee.conn, &own[1]);
    h.cluster.send_frame(admins[0].conn, &remove_subscriber);
    h.cluster.drain();
    let callee_removed = succeeded(
        &mut h,
        &admins[1],
        removing_callee,
        uri::NO_SUCH_REGISTRATION,
    );
    let subscriber_removed = succeeded(
        &mut h,
        &admins[0],
        removing_subscriber,
        uri::NO_SUCH_SUBSCRIPTION,
    );
    // The callee hears about each removal once: its own answer, or the revocation (and then
    // the refusal of its own request).
    let mut heard = Vec::new();
    while let Some(received) = h.try_recv(&callee) {
        heard.push(match received.msg() {
            Message::Unregistered { request, details } => {
                format!("UNREGISTERED {request} {}", details.is_some())
            }
            Message::Unsubscribed { request, details } => {
                format!("UNSUBSCRIBED {request} {}", details.is_some())
            }
            Message::Error {
                request_type,
                request,
                error,
                ..
            } => format!("ERROR {request_type} {request} {error}"),
            other => panic!("unexpected {other:?}"),
        });
    }
    heard.sort();
    let mut expected = vec![
        if callee_removed {
            format!(
                "ERROR {} {unregister} {}",
                code::UNREGISTER,
                uri::NO_SUCH_REGISTRATION
            )
        } else {
            format!("UNREGISTERED {unregister} false")
        },
        if subscriber_removed {
            format!(
                "ERROR {} {unsubscribe} {}",
                code::UNSUBSCRIBE,
                uri::NO_SUCH_SUBSCRIPTION
            )
        } else {
            format!("UNSUBSCRIBED {unsubscribe} false")
        },
    ];
    if callee_removed {
        expected.push("UNREGISTERED 0 true".to_string());
    }
    if subscriber_removed {
        expected.push("UNSUBSCRIBED 0 true".to_string());
    }
    expected.sort();
    assert_eq!(heard, expected);
    let topics: Vec<&str> = seen(&mut h, &watcher)
        .iter()
        .map(|(topic, _)| *topic)
        .collect();
    assert_eq!(
        topics
            .iter()
            .filter(|t| t.starts_with("wamp.registration"))
            .collect::<Vec<_>>(),
        [
            &"wamp.registration.on_unregister",
            &"wamp.registration.on_delete"
        ]
    );
    assert_eq!(
        topics
            .iter()
            .filter(|t| t.starts_with("wamp.subscription"))
            .collect::<Vec<_>>(),
        [
            &"wamp.subscription.on_unsubscribe",
            &"wamp.subscription.on_delete"
        ]
    );
    assert_eq!(h.stats().registrations, 0);

    let leaving = [callee, on(&mut h, 1, Json)];
    let (kill_all, killing) = call_frame(&mut h, &admins[0], "wamp.session.kill_all", &[]);
    let goodbye_frame = {
        let mut frame = Vec::new();
        let msg = Message::Goodbye {
            details: Dict::new(),
            reason: "wamp.close.close_realm".into(),
        };
        wire::encode(&msg, callee.ser, &mut frame).unwrap();
        frame
    };
    h.cluster.send_frame(admins[0].conn, &kill_all);
    h.cluster.send_frame(callee.conn, &goodbye_frame);
    h.cluster.drain();
    let received = h.recv(&admins[0]);
    let Message::Result {
        request, payload, ..
    } = received.msg()
    else {
        panic!("expected RESULT, got {:?}", received.msg())
    };
    assert_eq!(request, killing);
    let count = payload_values(&payload).0;
    // The other admin, the watcher, the fresh session, and the callee unless its GOODBYE came
    // first.
    let callee_killed = match h.recv(&callee).msg() {
        Message::Goodbye { reason, .. } => reason == uri::CLOSE_KILLED,
        other => panic!("expected GOODBYE, got {other:?}"),
    };
    h.expect_nothing(&callee);
    assert_eq!(count, vec![uint(3 + u64::from(callee_killed))]);
    for client in leaving.iter().chain([&admins[1], &watcher.client]) {
        h.disconnect(client);
    }
    h.disconnect(&admins[0]);
    h.cluster.assert_tables_empty();
}

fn testaments_are_published_at_shutdown() {
    let mut h = Harness::new();
    let testators = [
        on(&mut h, 0, Json),
        on(&mut h, 1, MsgPack),
        on(&mut h, 2, Json),
    ];
    for testator in &testators {
        add_testament(
            &mut h,
            testator,
            "com.will",
            "detached",
            None,
            Some("detached"),
        );
        add_testament(&mut h, testator, "com.will", "destroyed", None, None);
    }
    h.shutdown();
    for testator in &testators {
        match h.recv(testator).msg() {
            Message::Goodbye { reason, .. } => assert_eq!(reason, uri::CLOSE_SYSTEM_SHUTDOWN),
            other => panic!("expected GOODBYE, got {other:?}"),
        }
        assert!(h.was_closed(testator));
    }
    assert_eq!(meta_stats(&h).0, 6, "testaments_published");
    for testator in &testators {
        h.disconnect(testator);
    }
    h.cluster.assert_tables_empty();
}

// ------------------------------------------------------------------------------------------
// Every scenario at 1 and at 3 shards
// ------------------------------------------------------------------------------------------

at_1_and_3_shards!(
    session_count_and_list_are_the_same_from_every_shard_with_and_without_filter,
    session_get_gives_the_details_of_any_session_of_the_realm,
    session_kill_says_goodbye_closes_the_victim_and_removes_what_it_owned,
    kill_by_authid_by_authrole_and_all_never_touch_the_caller_or_other_realms,
    registration_list_lookup_and_match_follow_the_match_policies,
    registration_get_and_callees_of_a_shared_registration_on_every_shard,
    registration_meta_events_reach_a_watcher_on_another_shard_in_order,
    remove_callee_revokes_with_and_without_the_announced_feature,
    subscription_list_lookup_and_match_find_every_matching_subscription,
    subscription_get_and_subscribers_gathered_from_every_shard,
    subscription_meta_events_reach_a_watcher_on_another_shard_in_order,
    remove_subscriber_revokes_with_and_without_the_announced_feature,
    a_testament_is_published_on_goodbye_with_the_publication_id_add_testament_answered,
    testaments_are_published_detached_first_then_destroyed_each_in_insertion_order,
    flushed_testaments_are_never_published,
    testaments_are_published_however_the_session_goes_before_its_on_leave,
    testaments_are_published_with_their_lists_and_retained_when_asked,
    add_testament_refusals_and_the_per_session_bound,
    testament_publish_options_of_the_wrong_type_are_refused,
    kills_and_revocations_racing_each_other_take_effect_once,
    testaments_are_published_at_shutdown,
);
