//! Scenario tests of the Advanced Profile RPC features of the sans-IO router (digest §9.2):
//! progressive call results, call timeouts (router-side and forwarded), the three cancel modes
//! with INTERRUPT, caller disclosure by realm policy, and what happens to all of these when a
//! caller or callee leaves. Each scenario runs at 1 shard and at 3 (clients dealt out
//! round-robin, so caller and callee sit on different shards and every rule crosses the shard
//! channels) through the shared harness of `tests/scenario`.

mod sansio;
#[macro_use]
mod scenario;

use scenario::*;
use wampring::router::{uri, RealmConfig, RouterConfig};
use wampring::wire::{code, Dict, Message, Payload, Serializer, Value};

use Serializer::{Json, MsgPack};

/// What the callee sessions of these scenarios announce in HELLO.
const CANCELS: &[&str] = &["call_canceling"];
const PROGRESSIVE_AND_CANCELS: &[&str] = &["progressive_call_results", "call_canceling"];

/// HELLO.Details announcing all four roles, with `callee_features` set true for the callee
/// and `caller_features` for the caller.
fn hello_with(callee_features: &[&str], caller_features: &[&str]) -> Dict<'static> {
    let role = |features: &[&str]| {
        let mut flags = Dict::new();
        for &feature in features {
            flags.insert(feature.to_string(), true);
        }
        let mut role = Dict::new();
        role.insert("features", flags);
        role
    };
    let mut roles = Dict::new();
    for name in ["publisher", "subscriber"] {
        roles.insert(name, Dict::new());
    }
    roles.insert("callee", role(callee_features));
    roles.insert("caller", role(caller_features));
    let mut details = Dict::new();
    details.insert("roles", roles);
    details
}

/// What a streaming caller announces.
const STREAMS: &[&str] = &["progressive_call_invocations"];
/// What a callee of streamed calls announces (the spec wants call_canceling with it).
const TAKES_STREAMS: &[&str] = &[
    "progressive_call_invocations",
    "progressive_call_results",
    "call_canceling",
];

impl Harness {
    /// Joins `realm1` announcing `callee_features`.
    fn join_announcing(&mut self, ser: Serializer, callee_features: &[&str]) -> Client {
        self.join_with(ser, callee_features, &[])
    }

    fn join_with(&mut self, ser: Serializer, callee: &[&str], caller: &[&str]) -> Client {
        let client = self.connect(ser);
        self.welcome_with(client, hello_with(callee, caller))
    }

    fn register_with(&mut self, client: &Client, procedure: &str, options: Dict<'static>) -> u64 {
        self.send_register(client, procedure, options);
        match self.recv(client).msg() {
            Message::Registered { registration, .. } => registration,
            other => panic!("expected REGISTERED, got {other:?}"),
        }
    }

    /// The next message to `callee` must be an INVOCATION: its id and Details.
    fn invocation(&mut self, callee: &Client) -> (u64, Dict<'static>) {
        match self.recv(callee).msg() {
            Message::Invocation {
                request, details, ..
            } => (request, details.into_owned()),
            other => panic!("expected INVOCATION, got {other:?}"),
        }
    }

    /// YIELD for `invocation` with one integer argument, progressive or final.
    fn yield_value(&mut self, callee: &Client, invocation: u64, value: u64, progress: bool) {
        let options = if progress {
            opts(&[("progress", Value::Bool(true))])
        } else {
            Dict::new()
        };
        let payload = args(callee.ser, &[Value::UInt(value)]);
        self.send(
            callee,
            &Message::Yield {
                request: invocation,
                options,
                payload: payload.as_payload(),
            },
        );
    }

    /// The callee's ERROR for `invocation` (as an interrupted Autobahn callee answers).
    fn invocation_error(&mut self, callee: &Client, invocation: u64, error: &str) {
        self.send(
            callee,
            &Message::Error {
                request_type: code::INVOCATION,
                request: invocation,
                details: Dict::new(),
                error: error.to_string().into(),
                payload: Payload::empty(callee.ser),
            },
        );
    }

    fn cancel(&mut self, caller: &Client, request: u64, mode: Option<&str>) {
        let options = match mode {
            Some(mode) => opts(&[("mode", s(mode))]),
            None => Dict::new(),
        };
        self.send(caller, &Message::Cancel { request, options });
    }

    /// Moves the clock of every shard by `ms` and runs the timers that are due.
    fn advance(&mut self, ms: u64) {
        let now = self.cluster.now + ms;
        self.cluster.advance_to(now);
        self.cluster.drain();
    }
}

/// The next message to `caller` must be a RESULT for `request`: its argument and progress flag.
fn expect_result(h: &mut Harness, caller: &Client, request: u64) -> (u64, bool) {
    let received = h.recv(caller);
    match received.msg() {
        Message::Result {
            request: r,
            details,
            payload,
        } => {
            assert_eq!(r, request);
            let (values, _) = payload_values(&payload);
            let progress = details.get_bool("progress") == Some(true);
            (values[0].as_u64().expect("an integer result"), progress)
        }
        other => panic!("expected RESULT, got {other:?}"),
    }
}

/// The next message to `callee` must be INTERRUPT for `invocation` in `mode`; returns its reason.
fn expect_interrupt(
    h: &mut Harness,
    callee: &Client,
    invocation: u64,
    mode: &str,
) -> Option<String> {
    match h.recv(callee).msg() {
        Message::Interrupt { request, options } => {
            assert_eq!(request, invocation);
            assert_eq!(options.get_str("mode"), Some(mode));
            options.get_str("reason").map(str::to_string)
        }
        other => panic!("expected INTERRUPT, got {other:?}"),
    }
}

fn receive_progress() -> Dict<'static> {
    opts(&[("receive_progress", Value::Bool(true))])
}

fn timeout(ms: u64) -> Dict<'static> {
    opts(&[("timeout", Value::UInt(ms))])
}

// ------------------------------------------------------------------------------------------
// Progressive call results
// ------------------------------------------------------------------------------------------

fn progressive_results_reach_the_caller_in_order_until_the_final_yield() {
    let mut h = Harness::new();
    let callee = h.join_announcing(Json, PROGRESSIVE_AND_CANCELS);
    let caller = h.join(MsgPack);
    h.register(&callee, "com.stream");
    let request = h.call(
        &caller,
        "com.stream",
        receive_progress(),
        Payload::empty(MsgPack),
    );
    let (invocation, details) = h.invocation(&callee);
    assert_eq!(details.get_bool("receive_progress"), Some(true));
    for value in 1..=3 {
        h.yield_value(&callee, invocation, value, true);
        assert_eq!(expect_result(&mut h, &caller, request), (value, true));
    }
    assert_eq!(
        h.stats().pending_calls,
        1,
        "progressive results keep the call"
    );
    h.yield_value(&callee, invocation, 4, false);
    assert_eq!(expect_result(&mut h, &caller, request), (4, false));
    h.expect_nothing(&caller);
    // The call is over: another YIELD for it is an unknown invocation.
    assert_eq!(h.stats().pending_calls, 0);
    assert_eq!(h.stats().pending_entries, 0);
    assert_eq!(h.stats().progress_results_routed, 3);
    h.yield_value(&callee, invocation, 5, true);
    assert_abort(&h.recv(&callee), uri::PROTOCOL_VIOLATION);
}

/// A progressive result the caller's serializer cannot carry (a CBOR tag for a JSON caller)
/// ends the call for both sides, wherever caller and callee are: ERROR invalid_argument to the
/// caller, INTERRUPT to the callee, and the callee's later answers are for a finished call.
fn a_progressive_result_the_caller_cannot_read_ends_the_call_for_both_sides() {
    let mut h = Harness::new();
    let callee = h.join_announcing(Serializer::Cbor, PROGRESSIVE_AND_CANCELS);
    let caller = h.join(Json);
    h.register(&callee, "com.stream");
    let request = h.call(
        &caller,
        "com.stream",
        receive_progress(),
        Payload::empty(Json),
    );
    let (invocation, _) = h.invocation(&callee);
    h.yield_value(&callee, invocation, 1, true);
    assert_eq!(expect_result(&mut h, &caller, request), (1, true));
    // [tag 4242 "only cbor"]
    let only_cbor: &[u8] = &[
        0x81, 0xd9, 0x10, 0x92, 0x69, b'o', b'n', b'l', b'y', b' ', b'c', b'b', b'o', b'r',
    ];
    h.send(
        &callee,
        &Message::Yield {
            request: invocation,
            options: opts(&[("progress", Value::Bool(true))]),
            payload: Payload {
                ser: Serializer::Cbor,
                count: 1,
                raw: only_cbor,
            },
        },
    );
    assert_error(&h.recv(&caller), code::CALL, request, uri::INVALID_ARGUMENT);
    expect_interrupt(&mut h, &callee, invocation, "killnowait");
    h.yield_value(&callee, invocation, 2, false);
    h.expect_nothing(&caller);
    assert!(!h.was_closed(&callee));
    assert_eq!(h.stats().pending_calls, 0);
}

fn progressive_results_go_only_to_callers_that_asked_and_only_to_callees_that_can() {
    let mut h = Harness::new();
    let plain_callee = h.join(Json);
    let streaming_callee = h.join_announcing(MsgPack, PROGRESSIVE_AND_CANCELS);
    let caller = h.join(Json);
    h.register(&plain_callee, "com.plain");
    h.register(&streaming_callee, "com.stream");

    // The caller asks, but this callee never announced progressive results: not told.
    h.call(
        &caller,
        "com.plain",
        receive_progress(),
        Payload::empty(Json),
    );
    let (_, details) = h.invocation(&plain_callee);
    assert!(details.get("receive_progress").is_none(), "{details:?}");

    // The callee streams although the caller did not ask: only the final result goes out.
    let request = h.call(&caller, "com.stream", Dict::new(), Payload::empty(Json));
    let (invocation, details) = h.invocation(&streaming_callee);
    assert!(details.get("receive_progress").is_none());
    h.yield_value(&streaming_callee, invocation, 1, true);
    h.expect_nothing(&caller);
    h.yield_value(&streaming_callee, invocation, 2, false);
    assert_eq!(expect_result(&mut h, &caller, request), (2, false));
    assert_eq!(h.stats().progress_results_dropped, 1);
    assert!(!h.was_closed(&streaming_callee));
}

fn progressive_results_after_a_cancel_are_discarded_without_a_violation() {
    let mut h = Harness::new();
    let callee = h.join_announcing(Json, PROGRESSIVE_AND_CANCELS);
    let caller = h.join(Json);
    h.register(&callee, "com.stream");
    let request = h.call(
        &caller,
        "com.stream",
        receive_progress(),
        Payload::empty(Json),
    );
    let (invocation, _) = h.invocation(&callee);
    h.yield_value(&callee, invocation, 1, true);
    assert_eq!(expect_result(&mut h, &caller, request), (1, true));
    h.cancel(&caller, request, Some("skip"));
    assert_error(&h.recv(&caller), code::CALL, request, uri::CANCELED);
    h.expect_nothing(&callee);
    // The callee goes on streaming until it finishes: all of it is dropped quietly.
    h.yield_value(&callee, invocation, 2, true);
    h.yield_value(&callee, invocation, 3, true);
    h.yield_value(&callee, invocation, 4, false);
    h.expect_nothing(&caller);
    assert!(!h.was_closed(&callee));
    h.assert_tables_empty_but_registrations(1);
}

// ------------------------------------------------------------------------------------------
// Call timeout
// ------------------------------------------------------------------------------------------

fn a_call_past_its_timeout_gets_timeout_and_the_callee_an_interrupt() {
    let mut h = Harness::new();
    let callee = h.join_announcing(MsgPack, CANCELS);
    let caller = h.join(Json);
    h.register(&callee, "com.slow");
    let request = h.call(&caller, "com.slow", timeout(1000), Payload::empty(Json));
    let (invocation, details) = h.invocation(&callee);
    assert!(
        details.get("timeout").is_none(),
        "the router enforces it, the callee is not told"
    );
    h.advance(999);
    h.expect_nothing(&caller);
    h.advance(1);
    assert_error(&h.recv(&caller), code::CALL, request, uri::TIMEOUT);
    let reason = expect_interrupt(&mut h, &callee, invocation, "killnowait");
    assert_eq!(reason.as_deref(), Some(uri::TIMEOUT));
    // The interrupted callee answers; that answer is discarded.
    h.invocation_error(&callee, invocation, uri::CANCELED);
    h.expect_nothing(&caller);
    assert!(!h.was_closed(&callee));
    assert_eq!(h.stats().calls_timed_out, 1);
    h.assert_tables_empty_but_registrations(1);
    assert_eq!(h.stats().timers, 0);
}

fn a_timeout_without_call_canceling_sends_no_interrupt_and_an_answer_in_time_disarms_it() {
    let mut h = Harness::new();
    let callee = h.join(Json);
    let caller = h.join(MsgPack);
    h.register(&callee, "com.slow");
    // Answered in time: the timer goes with the call.
    let request = h.call(&caller, "com.slow", timeout(500), Payload::empty(MsgPack));
    let (invocation, _) = h.invocation(&callee);
    assert_eq!(h.stats().timers, 1);
    h.yield_value(&callee, invocation, 7, false);
    assert_eq!(expect_result(&mut h, &caller, request), (7, false));
    assert_eq!(h.stats().timers, 0);
    h.advance(1000);
    h.expect_nothing(&caller);

    // Not answered: timeout, and no INTERRUPT for a callee that cannot take one.
    let request = h.call(&caller, "com.slow", timeout(500), Payload::empty(MsgPack));
    let (invocation, _) = h.invocation(&callee);
    h.advance(500);
    assert_error(&h.recv(&caller), code::CALL, request, uri::TIMEOUT);
    h.expect_nothing(&callee);
    h.yield_value(&callee, invocation, 8, false);
    h.expect_nothing(&caller);
    assert!(!h.was_closed(&callee));
    h.assert_tables_empty_but_registrations(1);
}

fn the_timeout_bounds_each_gap_between_progressive_results() {
    let mut h = Harness::new();
    let callee = h.join_announcing(Json, PROGRESSIVE_AND_CANCELS);
    let caller = h.join(Json);
    h.register(&callee, "com.stream");
    let mut options = receive_progress();
    options.insert("timeout", 1000u64);
    let request = h.call(&caller, "com.stream", options, Payload::empty(Json));
    let (invocation, _) = h.invocation(&callee);
    // Three results 800 ms apart: 2400 ms in all, but no gap reaches 1000 ms.
    for value in 1..=3 {
        h.advance(800);
        h.yield_value(&callee, invocation, value, true);
        assert_eq!(expect_result(&mut h, &caller, request), (value, true));
    }
    h.advance(999);
    h.expect_nothing(&caller);
    h.advance(1);
    assert_error(&h.recv(&caller), code::CALL, request, uri::TIMEOUT);
    expect_interrupt(&mut h, &callee, invocation, "killnowait");
    h.yield_value(&callee, invocation, 4, true);
    h.yield_value(&callee, invocation, 5, false);
    h.expect_nothing(&caller);
    h.assert_tables_empty_but_registrations(1);
}

fn forward_timeout_tells_the_callee_and_the_router_does_not_time_out() {
    let mut h = Harness::new();
    let callee = h.join_announcing(MsgPack, CANCELS);
    let caller = h.join(Json);
    h.register_with(
        &callee,
        "com.own_timeout",
        opts(&[("forward_timeout", Value::Bool(true))]),
    );
    let request = h.call(
        &caller,
        "com.own_timeout",
        timeout(300),
        Payload::empty(Json),
    );
    let (invocation, details) = h.invocation(&callee);
    assert_eq!(details.get_u64("timeout"), Some(300));
    assert_eq!(h.stats().timers, 0);
    h.advance(5_000);
    h.expect_nothing(&caller);
    h.expect_nothing(&callee);
    h.invocation_error(&callee, invocation, uri::TIMEOUT);
    assert_error(&h.recv(&caller), code::CALL, request, uri::TIMEOUT);
    assert_eq!(h.stats().calls_timed_out, 0);
}

// ------------------------------------------------------------------------------------------
// Call canceling
// ------------------------------------------------------------------------------------------

fn cancel_skip_answers_now_and_leaves_the_callee_alone() {
    let mut h = Harness::new();
    let callee = h.join_announcing(Json, CANCELS);
    let caller = h.join(MsgPack);
    h.register(&callee, "com.slow");
    let request = h.call(&caller, "com.slow", Dict::new(), Payload::empty(MsgPack));
    let (invocation, _) = h.invocation(&callee);
    h.cancel(&caller, request, Some("skip"));
    assert_error(&h.recv(&caller), code::CALL, request, uri::CANCELED);
    h.expect_nothing(&callee);
    h.yield_value(&callee, invocation, 1, false);
    h.expect_nothing(&caller);
    assert!(!h.was_closed(&callee));
    h.assert_tables_empty_but_registrations(1);
}

fn cancel_killnowait_answers_now_and_interrupts_the_callee() {
    let mut h = Harness::new();
    let callee = h.join_announcing(MsgPack, CANCELS);
    let caller = h.join(Json);
    h.register(&callee, "com.slow");
    // An explicit killnowait, and a CANCEL without a mode, which means the same.
    for mode in [Some("killnowait"), None] {
        let request = h.call(&caller, "com.slow", Dict::new(), Payload::empty(Json));
        let (invocation, _) = h.invocation(&callee);
        h.cancel(&caller, request, mode);
        assert_error(&h.recv(&caller), code::CALL, request, uri::CANCELED);
        let reason = expect_interrupt(&mut h, &callee, invocation, "killnowait");
        assert_eq!(reason, None);
        h.invocation_error(&callee, invocation, uri::CANCELED);
        h.expect_nothing(&caller);
        assert!(!h.was_closed(&callee));
        h.assert_tables_empty_but_registrations(1);
    }
}

fn cancel_kill_interrupts_and_forwards_what_the_callee_answers() {
    let mut h = Harness::new();
    let callee = h.join_announcing(Json, PROGRESSIVE_AND_CANCELS);
    let caller = h.join(MsgPack);
    h.register(&callee, "com.slow");

    // The callee gives up: its ERROR is the caller's answer.
    let request = h.call(
        &caller,
        "com.slow",
        receive_progress(),
        Payload::empty(MsgPack),
    );
    let (invocation, _) = h.invocation(&callee);
    h.cancel(&caller, request, Some("kill"));
    expect_interrupt(&mut h, &callee, invocation, "kill");
    h.expect_nothing(&caller);
    // A second CANCEL changes nothing, and progressive results stop reaching the caller.
    h.cancel(&caller, request, Some("killnowait"));
    h.expect_nothing(&callee);
    h.expect_nothing(&caller);
    h.yield_value(&callee, invocation, 1, true);
    h.expect_nothing(&caller);
    h.invocation_error(&callee, invocation, uri::CANCELED);
    assert_error(&h.recv(&caller), code::CALL, request, uri::CANCELED);

    // The callee had its result ready: the caller gets the RESULT.
    let request = h.call(&caller, "com.slow", Dict::new(), Payload::empty(MsgPack));
    let (invocation, _) = h.invocation(&callee);
    h.cancel(&caller, request, Some("kill"));
    expect_interrupt(&mut h, &callee, invocation, "kill");
    h.yield_value(&callee, invocation, 9, false);
    assert_eq!(expect_result(&mut h, &caller, request), (9, false));
    h.assert_tables_empty_but_registrations(1);
}

fn a_caller_leaving_interrupts_its_calls_and_their_answers_are_discarded() {
    let mut h = Harness::new();
    let callee = h.join_announcing(Json, CANCELS);
    let caller = h.join(MsgPack);
    h.register(&callee, "com.slow");
    h.call(
        &caller,
        "com.slow",
        timeout(10_000),
        Payload::empty(MsgPack),
    );
    let (invocation, _) = h.invocation(&callee);
    h.disconnect(&caller);
    expect_interrupt(&mut h, &callee, invocation, "killnowait");
    h.yield_value(&callee, invocation, 1, false);
    assert!(!h.was_closed(&callee));
    h.assert_tables_empty_but_registrations(1);
    assert_eq!(h.stats().pending_entries, 0);
    assert_eq!(h.stats().timers, 0);
}

fn a_callee_leaving_cancels_pending_timed_calls_and_their_timers() {
    let mut h = Harness::new();
    let callee = h.join_announcing(Json, PROGRESSIVE_AND_CANCELS);
    let caller = h.join(Json);
    h.register(&callee, "com.slow");
    let request = h.call(&caller, "com.slow", timeout(1000), Payload::empty(Json));
    h.invocation(&callee);
    h.disconnect(&callee);
    assert_error(&h.recv(&caller), code::CALL, request, uri::CANCELED);
    h.advance(2000);
    h.expect_nothing(&caller);
    h.assert_tables_empty();
    assert_eq!(h.stats().timers, 0);
}

// ------------------------------------------------------------------------------------------
// Caller identification by realm policy
// ------------------------------------------------------------------------------------------

fn a_realm_may_disclose_every_caller() {
    let mut h = Harness::with_config(RouterConfig {
        realms: vec![RealmConfig {
            disclose_caller: true,
            ..RealmConfig::new("realm1")
        }],
        ..RouterConfig::default()
    });
    let callee = h.join(Json);
    let caller = h.join(MsgPack);
    h.register(&callee, "com.p");
    h.call(&caller, "com.p", Dict::new(), Payload::empty(MsgPack));
    let (_, details) = h.invocation(&callee);
    assert_eq!(details.get_u64("caller"), Some(caller.id));
    assert_eq!(
        details.get_str("caller_authid"),
        Some(caller.id.to_string().as_str())
    );
    assert_eq!(details.get_str("caller_authrole"), Some("anonymous"));
}

// ------------------------------------------------------------------------------------------
// Call re-routing (wamp.error.unavailable)
// ------------------------------------------------------------------------------------------

fn roundrobin(h: &mut Harness, callee: &Client, procedure: &str) -> u64 {
    h.register_with(callee, procedure, opts(&[("invoke", s("roundrobin"))]))
}

fn an_unavailable_callee_hands_the_call_to_the_next_one_with_the_same_arguments() {
    let mut h = Harness::new();
    let callees = [h.join(Json), h.join(MsgPack), h.join(Json)];
    let caller = h.join(MsgPack);
    let id = roundrobin(&mut h, &callees[0], "com.shared");
    for callee in &callees[1..] {
        assert_eq!(roundrobin(&mut h, callee, "com.shared"), id);
    }
    let payload = args(caller.ser, &[Value::UInt(41)]);
    let request = h.call(&caller, "com.shared", Dict::new(), payload.as_payload());
    // The first in turn declines; the call moves on to the second with the caller's payload.
    let (invocation, _) = h.invocation(&callees[0]);
    h.invocation_error(&callees[0], invocation, uri::UNAVAILABLE);
    h.expect_nothing(&caller);
    let received = h.recv(&callees[1]);
    let Message::Invocation {
        request: second,
        registration,
        payload,
        ..
    } = received.msg()
    else {
        panic!("expected INVOCATION at the next callee");
    };
    assert_eq!(registration, id);
    assert_eq!(payload_values(&payload).0, [Value::UInt(41)]);
    h.yield_value(&callees[1], second, 42, false);
    assert_eq!(expect_result(&mut h, &caller, request), (42, false));
    h.expect_nothing(&callees[2]);
    assert_eq!(h.stats().calls_rerouted, 1);
    h.assert_tables_empty_but_registrations(1);
}

fn when_every_callee_is_unavailable_the_caller_gets_no_available_callee() {
    let mut h = Harness::new();
    let callees = [h.join(MsgPack), h.join(Json)];
    let caller = h.join(Json);
    for callee in &callees {
        roundrobin(&mut h, callee, "com.shared");
    }
    let request = h.call(&caller, "com.shared", Dict::new(), Payload::empty(Json));
    for callee in &callees {
        let (invocation, _) = h.invocation(callee);
        h.invocation_error(callee, invocation, uri::UNAVAILABLE);
    }
    assert_error(
        &h.recv(&caller),
        code::CALL,
        request,
        uri::NO_AVAILABLE_CALLEE,
    );
    // Nobody is asked twice.
    for callee in &callees {
        h.expect_nothing(callee);
    }
    // A procedure with one callee (single) has nobody else to ask.
    let single = h.join(Json);
    h.register(&single, "com.single");
    let request = h.call(&caller, "com.single", Dict::new(), Payload::empty(Json));
    let (invocation, _) = h.invocation(&single);
    h.invocation_error(&single, invocation, uri::UNAVAILABLE);
    assert_error(
        &h.recv(&caller),
        code::CALL,
        request,
        uri::NO_AVAILABLE_CALLEE,
    );
    h.assert_tables_empty_but_registrations(2);
}

fn a_rerouted_call_skips_callees_that_left() {
    let mut h = Harness::new();
    let callees = [h.join(Json), h.join(Json), h.join(MsgPack)];
    let caller = h.join(MsgPack);
    for callee in &callees {
        roundrobin(&mut h, callee, "com.shared");
    }
    let request = h.call(&caller, "com.shared", Dict::new(), Payload::empty(MsgPack));
    let (invocation, _) = h.invocation(&callees[0]);
    h.disconnect(&callees[1]);
    h.invocation_error(&callees[0], invocation, uri::UNAVAILABLE);
    let (third, _) = h.invocation(&callees[2]);
    h.yield_value(&callees[2], third, 3, false);
    assert_eq!(expect_result(&mut h, &caller, request), (3, false));
}

// ------------------------------------------------------------------------------------------
// Pattern-based registration
// ------------------------------------------------------------------------------------------

fn matching(kind: &str) -> Dict<'static> {
    opts(&[("match", s(kind))])
}

impl Harness {
    /// Calls `procedure` and expects the INVOCATION at `callee`: its registration id and
    /// Details.procedure; answers it so the call ends.
    fn reached(
        &mut self,
        caller: &Client,
        callee: &Client,
        procedure: &str,
    ) -> (u64, Option<String>) {
        let request = self.call(caller, procedure, Dict::new(), Payload::empty(caller.ser));
        let received = self.recv(callee);
        let Message::Invocation {
            request: invocation,
            registration,
            details,
            ..
        } = received.msg()
        else {
            panic!("expected INVOCATION for {procedure}");
        };
        let named = details.get_str("procedure").map(str::to_string);
        self.yield_value(callee, invocation, 0, false);
        assert_eq!(expect_result(self, caller, request), (0, false));
        (registration, named)
    }

    /// Every shard's replica has the registration (`procedure`, `kind`) with the same id.
    fn replicated(&self, procedure: &str, kind: &str) -> Option<u64> {
        let views: Vec<_> = self
            .cluster
            .routers
            .iter()
            .map(|router| router.registration_matching("realm1", procedure, kind))
            .collect();
        assert!(views.iter().all(|view| view == &views[0]), "{views:?}");
        views[0].as_ref().map(|info| {
            assert_eq!(info.matching, kind);
            info.id
        })
    }
}

fn prefix_registrations_match_by_string_prefix_and_name_the_procedure() {
    let mut h = Harness::new();
    let callee = h.join(Json);
    let caller = h.join(MsgPack);
    let id = h.register_with(&callee, "com.app", matching("prefix"));
    assert_eq!(h.replicated("com.app", "prefix"), Some(id));
    assert_eq!(h.replicated("com.app", "exact"), None);
    for procedure in ["com.app.a.b", "com.app", "com.apple"] {
        assert_eq!(
            h.reached(&caller, &callee, procedure),
            (id, Some(procedure.to_string())),
            "{procedure}"
        );
    }
    let request = h.call(&caller, "com.ap", Dict::new(), Payload::empty(MsgPack));
    assert_error(
        &h.recv(&caller),
        code::CALL,
        request,
        uri::NO_SUCH_PROCEDURE,
    );
}

fn exact_then_longest_prefix_then_the_most_specific_wildcard() {
    let mut h = Harness::new();
    let callee = h.join(MsgPack);
    let caller = h.join(Json);
    let short = h.register_with(&callee, "com.a", matching("prefix"));
    let long = h.register_with(&callee, "com.a.b", matching("prefix"));
    let exact = h.register(&callee, "com.a.b.c");
    let wild_late = h.register_with(&callee, "org..c.d", matching("wildcard"));
    let wild_early = h.register_with(&callee, "org.b..d", matching("wildcard"));
    let wild_any = h.register_with(&callee, "org...", matching("wildcard"));
    let shadow = h.register_with(&callee, "org.b.", matching("prefix"));
    assert_eq!(h.reached(&caller, &callee, "com.a.b.c"), (exact, None));
    assert_eq!(
        h.reached(&caller, &callee, "com.a.b.d"),
        (long, Some("com.a.b.d".into()))
    );
    assert_eq!(
        h.reached(&caller, &callee, "com.a.x"),
        (short, Some("com.a.x".into()))
    );
    // A prefix wins over any wildcard.
    assert_eq!(
        h.reached(&caller, &callee, "org.b.c.d"),
        (shadow, Some("org.b.c.d".into()))
    );
    h.unregister(&callee, shadow);
    // Concrete at the first position where the patterns differ wins.
    assert_eq!(
        h.reached(&caller, &callee, "org.b.c.d"),
        (wild_early, Some("org.b.c.d".into()))
    );
    assert_eq!(
        h.reached(&caller, &callee, "org.x.c.d"),
        (wild_late, Some("org.x.c.d".into()))
    );
    assert_eq!(
        h.reached(&caller, &callee, "org.x.y.z"),
        (wild_any, Some("org.x.y.z".into()))
    );
    // A wildcard needs the same number of components.
    let request = h.call(&caller, "org.x.y.z.w", Dict::new(), Payload::empty(Json));
    assert_error(
        &h.recv(&caller),
        code::CALL,
        request,
        uri::NO_SUCH_PROCEDURE,
    );
}

fn a_uri_may_be_registered_once_per_match_policy_and_patterns_may_be_shared() {
    let mut h = Harness::new();
    let first = h.join(Json);
    let second = h.join(MsgPack);
    let caller = h.join(Json);
    let exact = h.register(&first, "com.x");
    let prefix = h.register_with(&first, "com.x", matching("prefix"));
    let wildcard = h.register_with(&first, "com.x", matching("wildcard"));
    assert!(exact != prefix && prefix != wildcard && exact != wildcard);
    // The same (uri, match) again: refused as for exact registrations.
    let request = h.send_register(&second, "com.x", matching("prefix"));
    assert_error(
        &h.recv(&second),
        code::REGISTER,
        request,
        uri::PROCEDURE_ALREADY_EXISTS,
    );
    // Shared pattern registrations share one id.
    let mut shared = matching("wildcard");
    shared.insert("invoke", "roundrobin");
    let id = h.register_with(&first, "com..s", shared.clone());
    assert_eq!(h.register_with(&second, "com..s", shared), id);
    assert_eq!(
        h.reached(&caller, &first, "com.a.s"),
        (id, Some("com.a.s".into()))
    );
    assert_eq!(
        h.reached(&caller, &second, "com.b.s"),
        (id, Some("com.b.s".into()))
    );
    // Unregistering the prefix leaves the exact one alone.
    h.unregister(&first, prefix);
    assert_eq!(h.replicated("com.x", "prefix"), None);
    assert_eq!(h.reached(&caller, &first, "com.x"), (exact, None));
    let request = h.call(&caller, "com.x.y", Dict::new(), Payload::empty(Json));
    assert_error(
        &h.recv(&caller),
        code::CALL,
        request,
        uri::NO_SUCH_PROCEDURE,
    );
}

fn patterns_never_reach_the_routers_own_procedures_and_need_a_uri() {
    let mut h = Harness::new();
    let callee = h.join(Json);
    let caller = h.join(MsgPack);
    for (procedure, kind) in [
        ("", "prefix"),
        ("wamp.session", "prefix"),
        ("wamp..count", "wildcard"),
    ] {
        let request = h.send_register(&callee, procedure, matching(kind));
        assert_error(&h.recv(&callee), code::REGISTER, request, uri::INVALID_URI);
    }
    h.register_with(&callee, "w", matching("prefix"));
    h.register_with(&callee, "..", matching("wildcard"));
    let request = h.call(
        &caller,
        "wamp.session.count",
        Dict::new(),
        Payload::empty(MsgPack),
    );
    match h.recv(&caller).msg() {
        Message::Result { request: r, .. } => assert_eq!(r, request),
        other => panic!("expected the router's own RESULT, got {other:?}"),
    }
    h.expect_nothing(&callee);
}

// ------------------------------------------------------------------------------------------
// Progressive call invocations (streamed calls)
// ------------------------------------------------------------------------------------------

impl Harness {
    /// One chunk of a streamed call: CALL under `request` with one integer argument.
    fn chunk(&mut self, caller: &Client, request: u64, procedure: &str, value: u64, more: bool) {
        let options = if more {
            opts(&[("progress", Value::Bool(true))])
        } else {
            Dict::new()
        };
        let payload = args(caller.ser, &[Value::UInt(value)]);
        self.send(
            caller,
            &Message::Call {
                request,
                options,
                procedure: procedure.to_string().into(),
                payload: payload.as_payload(),
            },
        );
    }

    /// The next message to `callee` must be an INVOCATION: its id, argument and progress flag.
    fn chunk_received(&mut self, callee: &Client) -> (u64, u64, bool) {
        match self.recv(callee).msg() {
            Message::Invocation {
                request,
                details,
                payload,
                ..
            } => {
                let (values, _) = payload_values(&payload);
                let progress = details.get_bool("progress") == Some(true);
                (request, values[0].as_u64().unwrap(), progress)
            }
            other => panic!("expected INVOCATION, got {other:?}"),
        }
    }
}

fn a_streamed_call_goes_chunk_by_chunk_to_the_callee_of_its_first_chunk() {
    let mut h = Harness::new();
    let callees = [
        h.join_announcing(Json, TAKES_STREAMS),
        h.join_announcing(MsgPack, TAKES_STREAMS),
    ];
    let caller = h.join_with(MsgPack, &[], STREAMS);
    for callee in &callees {
        roundrobin(&mut h, callee, "com.upload");
    }
    let request = h.request();
    h.chunk(&caller, request, "com.upload", 1, true);
    let (invocation, value, progress) = h.chunk_received(&callees[0]);
    assert_eq!((value, progress), (1, true));
    // Later chunks: same request id, same callee (round robin notwithstanding), same id.
    h.chunk(&caller, request, "com.upload", 2, true);
    assert_eq!(h.chunk_received(&callees[0]), (invocation, 2, true));
    h.chunk(&caller, request, "com.upload", 3, false);
    assert_eq!(h.chunk_received(&callees[0]), (invocation, 3, false));
    h.expect_nothing(&callees[1]);
    h.yield_value(&callees[0], invocation, 6, false);
    assert_eq!(expect_result(&mut h, &caller, request), (6, false));
    // A chunk after the call is over is dropped quietly.
    h.chunk(&caller, request, "com.upload", 4, true);
    h.expect_nothing(&callees[0]);
    h.expect_nothing(&callees[1]);
    assert!(!h.was_closed(&caller));
    assert_eq!(h.stats().late_call_chunks_discarded, 1);
    h.assert_tables_empty_but_registrations(1);
    // The next call goes on in round-robin order.
    let request = h.call(&caller, "com.upload", Dict::new(), Payload::empty(MsgPack));
    let (invocation, _) = h.invocation(&callees[1]);
    h.yield_value(&callees[1], invocation, 0, false);
    assert_eq!(expect_result(&mut h, &caller, request), (0, false));
}

fn streaming_both_ways_and_a_callee_that_answers_before_the_last_chunk() {
    let mut h = Harness::new();
    let callee = h.join_announcing(Json, TAKES_STREAMS);
    let caller = h.join_with(Json, &[], STREAMS);
    h.register(&callee, "com.echo");
    let request = h.request();
    let payload = args(Json, &[Value::UInt(1)]);
    let mut options = receive_progress();
    options.insert("progress", true);
    h.send(
        &caller,
        &Message::Call {
            request,
            options,
            procedure: "com.echo".into(),
            payload: payload.as_payload(),
        },
    );
    let (invocation, details) = h.invocation(&callee);
    assert_eq!(details.get_bool("receive_progress"), Some(true));
    assert_eq!(details.get_bool("progress"), Some(true));
    h.yield_value(&callee, invocation, 1, true);
    assert_eq!(expect_result(&mut h, &caller, request), (1, true));
    h.chunk(&caller, request, "com.echo", 2, true);
    assert_eq!(h.chunk_received(&callee), (invocation, 2, true));
    // The callee ends the call before the caller's last chunk: that chunk is dropped.
    h.yield_value(&callee, invocation, 3, false);
    assert_eq!(expect_result(&mut h, &caller, request), (3, false));
    h.chunk(&caller, request, "com.echo", 4, false);
    h.expect_nothing(&callee);
    h.assert_tables_empty_but_registrations(1);
}

fn streamed_calls_need_the_feature_on_both_sides() {
    let mut h = Harness::new();
    let plain_callee = h.join_announcing(Json, CANCELS);
    let streaming_caller = h.join_with(MsgPack, &[], STREAMS);
    h.register(&plain_callee, "com.plain");
    // The callee cannot take chunks: feature_not_supported, and the rest of the stream is
    // dropped quietly.
    let request = h.request();
    h.chunk(&streaming_caller, request, "com.plain", 1, true);
    assert_error(
        &h.recv(&streaming_caller),
        code::CALL,
        request,
        uri::FEATURE_NOT_SUPPORTED,
    );
    h.chunk(&streaming_caller, request, "com.plain", 2, false);
    h.expect_nothing(&streaming_caller);
    h.expect_nothing(&plain_callee);
    // A request id still pending with an ordinary call is not a stream.
    let request = h.call(
        &streaming_caller,
        "com.plain",
        Dict::new(),
        Payload::empty(MsgPack),
    );
    h.invocation(&plain_callee);
    h.chunk(&streaming_caller, request, "com.plain", 3, true);
    assert_abort(&h.recv(&streaming_caller), uri::PROTOCOL_VIOLATION);
    // A caller that did not announce the feature may not stream at all.
    let caller = h.join(Json);
    let request = h.request();
    h.chunk(&caller, request, "com.plain", 1, true);
    assert_abort(&h.recv(&caller), uri::PROTOCOL_VIOLATION);
}

fn with_strict_request_ids_a_chunk_below_the_watermark_is_dropped() {
    let mut h = Harness::with_config(RouterConfig {
        strict_request_ids: true,
        ..RouterConfig::default()
    });
    let callee = h.join_announcing(Json, TAKES_STREAMS);
    let caller = h.join_with(Json, &[], STREAMS);
    let register = Message::Register {
        request: 1,
        options: Dict::new(),
        procedure: "com.s".into(),
    };
    h.send(&callee, &register);
    h.recv(&callee);
    // Stream under id 1, then a plain call under id 2 while it still streams.
    h.chunk(&caller, 1, "com.s", 10, true);
    let (streamed, _, _) = h.chunk_received(&callee);
    h.chunk(&caller, 2, "com.s", 20, false);
    let (plain, _, _) = h.chunk_received(&callee);
    h.chunk(&caller, 1, "com.s", 11, false);
    assert_eq!(h.chunk_received(&callee), (streamed, 11, false));
    h.yield_value(&callee, streamed, 1, false);
    assert_eq!(expect_result(&mut h, &caller, 1), (1, false));
    // Id 1 is at or below the watermark (2) and its stream is over: dropped, no violation.
    h.chunk(&caller, 1, "com.s", 12, true);
    h.expect_nothing(&callee);
    assert!(!h.was_closed(&caller));
    h.yield_value(&callee, plain, 2, false);
    assert_eq!(expect_result(&mut h, &caller, 2), (2, false));
    // Past the watermark by more than one: a violation, as for any request.
    h.chunk(&caller, 4, "com.s", 13, false);
    assert_abort(&h.recv(&caller), uri::PROTOCOL_VIOLATION);
}

// ------------------------------------------------------------------------------------------
// Payload pass-through mode
// ------------------------------------------------------------------------------------------

const PASSTHRU: &[&str] = &["payload_passthru_mode"];

fn ppt_options() -> Dict<'static> {
    opts(&[
        ("ppt_scheme", s("x_custom")),
        ("ppt_serializer", s("cbor")),
        ("ppt_cipher", s("xsalsa20poly1305")),
        ("ppt_keyid", s("0x0123")),
    ])
}

fn assert_ppt(details: &Dict<'_>) {
    for (key, value) in ppt_options().iter() {
        assert_eq!(details.get(key), Some(value), "{key} in {details:?}");
    }
}

fn pass_through_options_and_the_opaque_payload_go_both_ways_unchanged() {
    let mut h = Harness::new();
    let callee = h.join_with(MsgPack, &["payload_passthru_mode", "call_canceling"], &[]);
    let caller = h.join_with(Json, &[], PASSTHRU);
    h.register(&callee, "com.e2e");
    let secret = [0u8, 1, 2, 0xfe, 0xff, b'[', b'"'];
    let payload = wampring::wire::payload_from_binary(Json, &secret);
    let request = h.call(&caller, "com.e2e", ppt_options(), payload.as_payload());
    let received = h.recv(&callee);
    let Message::Invocation {
        request: invocation,
        details,
        payload,
        ..
    } = received.msg()
    else {
        panic!("expected INVOCATION");
    };
    assert_ppt(&details);
    assert_eq!(
        wampring::wire::transparent_payload(&payload).unwrap(),
        Some(Value::Bin(secret.to_vec().into())),
        "the binary arrives as the same bytes, in the callee's serializer"
    );
    // The answer: a progressive and a final YIELD, both with pass-through options.
    for progress in [true, false] {
        let mut options = ppt_options();
        if progress {
            options.insert("progress", true);
        }
        let answer = wampring::wire::payload_from_binary(MsgPack, &secret[1..]);
        h.send(
            &callee,
            &Message::Yield {
                request: invocation,
                options,
                payload: answer.as_payload(),
            },
        );
        if progress {
            // The caller did not ask for progressive results: dropped.
            h.expect_nothing(&caller);
            continue;
        }
        let received = h.recv(&caller);
        let Message::Result {
            request: r,
            details,
            payload,
        } = received.msg()
        else {
            panic!("expected RESULT");
        };
        assert_eq!(r, request);
        assert_ppt(&details);
        assert_eq!(
            wampring::wire::transparent_payload(&payload).unwrap(),
            Some(Value::Bin(secret[1..].to_vec().into()))
        );
    }
    // A callee ERROR keeps its Details, pass-through options included.
    let request = h.call(&caller, "com.e2e", ppt_options(), Payload::empty(Json));
    let (invocation, _) = h.invocation(&callee);
    h.send(
        &callee,
        &Message::Error {
            request_type: code::INVOCATION,
            request: invocation,
            details: ppt_options(),
            error: "com.e2e.failed".into(),
            payload: Payload::empty(MsgPack),
        },
    );
    let received = h.recv(&caller);
    let Message::Error {
        request: r,
        details,
        ..
    } = received.msg()
    else {
        panic!("expected ERROR");
    };
    assert_eq!(r, request);
    assert_ppt(&details);
}

fn pass_through_needs_the_feature_on_both_sides() {
    let mut h = Harness::new();
    let plain_callee = h.join_announcing(Json, CANCELS);
    let e2e_callee = h.join_with(Json, PASSTHRU, &[]);
    let e2e_caller = h.join_with(MsgPack, &[], PASSTHRU);
    h.register(&plain_callee, "com.plain");
    h.register(&e2e_callee, "com.e2e");
    let request = h.call(
        &e2e_caller,
        "com.plain",
        ppt_options(),
        Payload::empty(MsgPack),
    );
    assert_error(
        &h.recv(&e2e_caller),
        code::CALL,
        request,
        uri::FEATURE_NOT_SUPPORTED,
    );
    h.expect_nothing(&plain_callee);
    // A plain callee answering with ppt_* options, and a plain caller sending them: violations.
    h.call(
        &e2e_caller,
        "com.plain",
        Dict::new(),
        Payload::empty(MsgPack),
    );
    let (invocation, _) = h.invocation(&plain_callee);
    h.send(
        &plain_callee,
        &Message::Yield {
            request: invocation,
            options: ppt_options(),
            payload: Payload::empty(Json),
        },
    );
    assert_abort(&h.recv(&plain_callee), uri::PROTOCOL_VIOLATION);
    let plain_caller = h.join(Json);
    h.call(
        &plain_caller,
        "com.e2e",
        ppt_options(),
        Payload::empty(Json),
    );
    assert_abort(&h.recv(&plain_caller), uri::PROTOCOL_VIOLATION);
    h.expect_nothing(&e2e_callee);
}

// ------------------------------------------------------------------------------------------
// The spec's CANCEL and INTERRUPT test vectors, byte for byte
// ------------------------------------------------------------------------------------------

/// The JSON and MessagePack samples (bytes) and expected attributes of one advanced vector
/// file of `../shared/wamp-testvectors`.
fn vector_samples(name: &str) -> Vec<(Serializer, Vec<u8>, serde_json::Value)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/wamp-testvectors/singlemessage/advanced")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (shared/ must sit beside the crate)",
            path.display()
        )
    });
    let vector: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut samples = Vec::new();
    for sample in vector["samples"].as_array().unwrap() {
        let expected = sample["expected_attributes"].clone();
        for (ser, key) in [(Json, "json"), (MsgPack, "msgpack")] {
            for encoding in sample["serializers"][key].as_array().into_iter().flatten() {
                let bytes = hex::decode(encoding["bytes_hex"].as_str().unwrap()).unwrap();
                samples.push((ser, bytes, expected.clone()));
            }
        }
    }
    assert!(!samples.is_empty(), "{name} has no samples");
    samples
}

fn the_spec_cancel_vectors_cancel_and_interrupts_have_the_spec_shape() {
    let interrupt_shape = vector_samples("interrupt.json");
    for (ser, bytes, expected) in vector_samples("cancel.json") {
        let mut h = Harness::new();
        let callee = h.join_announcing(ser, CANCELS);
        let caller = h.join(ser);
        h.register(&callee, "com.slow");
        // The CALL the vector's CANCEL names, under the vector's request id.
        let request = expected["request_id"].as_u64().unwrap();
        h.send(
            &caller,
            &Message::Call {
                request,
                options: Dict::new(),
                procedure: "com.slow".into(),
                payload: Payload::empty(ser),
            },
        );
        let (invocation, _) = h.invocation(&callee);
        h.send_frame(&caller, &bytes);
        // No mode in the vector: killnowait, the router's default.
        assert_eq!(expected["options"], serde_json::json!({}));
        assert_error(&h.recv(&caller), code::CALL, request, uri::CANCELED);
        let received = h.recv(&callee);
        let message = received.msg();
        // The spec's INTERRUPT: [69, INVOCATION.Request|id, Options|dict], as in its vectors.
        let shape = &interrupt_shape[0].2;
        assert_eq!(shape["message_type"].as_u64(), Some(message.code()));
        let Message::Interrupt {
            request: r,
            options,
        } = message
        else {
            panic!("expected INTERRUPT");
        };
        assert_eq!(r, invocation);
        assert_eq!(options.get_str("mode"), Some("killnowait"));
    }
}

at_1_and_3_shards!(
    a_progressive_result_the_caller_cannot_read_ends_the_call_for_both_sides,
    pass_through_options_and_the_opaque_payload_go_both_ways_unchanged,
    pass_through_needs_the_feature_on_both_sides,
    the_spec_cancel_vectors_cancel_and_interrupts_have_the_spec_shape,
    a_streamed_call_goes_chunk_by_chunk_to_the_callee_of_its_first_chunk,
    streaming_both_ways_and_a_callee_that_answers_before_the_last_chunk,
    streamed_calls_need_the_feature_on_both_sides,
    with_strict_request_ids_a_chunk_below_the_watermark_is_dropped,
    prefix_registrations_match_by_string_prefix_and_name_the_procedure,
    exact_then_longest_prefix_then_the_most_specific_wildcard,
    a_uri_may_be_registered_once_per_match_policy_and_patterns_may_be_shared,
    patterns_never_reach_the_routers_own_procedures_and_need_a_uri,
    an_unavailable_callee_hands_the_call_to_the_next_one_with_the_same_arguments,
    when_every_callee_is_unavailable_the_caller_gets_no_available_callee,
    a_rerouted_call_skips_callees_that_left,
    progressive_results_reach_the_caller_in_order_until_the_final_yield,
    progressive_results_go_only_to_callers_that_asked_and_only_to_callees_that_can,
    progressive_results_after_a_cancel_are_discarded_without_a_violation,
    a_call_past_its_timeout_gets_timeout_and_the_callee_an_interrupt,
    a_timeout_without_call_canceling_sends_no_interrupt_and_an_answer_in_time_disarms_it,
    the_timeout_bounds_each_gap_between_progressive_results,
    forward_timeout_tells_the_callee_and_the_router_does_not_time_out,
    cancel_skip_answers_now_and_leaves_the_callee_alone,
    cancel_killnowait_answers_now_and_interrupts_the_callee,
    cancel_kill_interrupts_and_forwards_what_the_callee_answers,
    a_caller_leaving_interrupts_its_calls_and_their_answers_are_discarded,
    a_callee_leaving_cancels_pending_timed_calls_and_their_timers,
    a_realm_may_disclose_every_caller,
);
