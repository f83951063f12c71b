//! The router target: 1 to 3 sans-IO `Router` shards in one process, joined by one FIFO queue
//! per ordered pair of shards (what the runtime's channel mesh guarantees, as in
//! `tests/sansio/mod.rs`), driven by a byte-driven program: open and close transports, send
//! WAMP messages (mostly well-formed: HELLO, REGISTER, CALL, YIELD, ERROR, SUBSCRIBE, PUBLISH,
//! UNSUBSCRIBE, UNREGISTER, CANCEL, GOODBYE, ABORT, with ids the client saw or random ones,
//! URIs and options from small pools), raw garbage and mutated frames, deliver shard messages
//! one at a time or all, move the clock, shut a shard down.
//!
//! Input layout: byte 0 is the router config (shards, realm creation, URI strictness, request-id
//! strictness, small bounds, short HELLO timeout, eager delivery), byte 1 the RNG seed, then one
//! operation per byte with its arguments after it (see [`Sim::step`]).
//!
//! What must hold for every input:
//! * no panic (the router must never panic on network input);
//! * the runtime contract: nothing is sent to a session after its Close or after
//!   `close_session`, no second Close, shard messages go only to other, existing shards;
//! * every frame the router sends decodes in the session's serializer, is a router-to-client
//!   message type, WELCOME comes once and before anything but ABORT, INVOCATIONs and EVENTs
//!   name a registration/subscription the session was told about;
//! * a metrics request (asked of any shard at any point, even after a shutdown) is answered
//!   exactly once, with one snapshot per shard in shard order, once the channels drain;
//! * after every input the clock's due timers are handled, and the counters agree
//!   (sessions open = opened - closed; events held in history = recorded - evicted, within
//!   the configured bounds);
//! * a RESULT of `wamp.subscription.get_events` (realm1 keeps the history of an exact topic
//!   and a prefix, in few events and bytes; the calls carry random, often wrong, arguments)
//!   is one list of events of the asked subscription, each publication once, at most the
//!   asked and the configured limit;
//! * the session, registration and subscription meta procedures, kills, revocations and
//!   testaments are called with hostile arguments (wrong types, huge or unknown ids, surplus
//!   positions, unknown keywords, odd `publish_options`): a RESULT has the shape of the
//!   procedure's answer (counts, ascending id lists, details of the asked id, nothing for a
//!   kill or removal), an ERROR one of the URIs the meta API answers with;
//! * at the end, with every channel drained and every transport closed, every shard's tables
//!   are empty (sessions, registrations, subscriptions, pending calls, in-flight writes,
//!   timers) and no shard ignored a shard message.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::Cursor;
use crate::router::history::FILTERS;
use crate::router::{
    Action, HistoryConfig, MatchPolicy, Millis, RealmConfig, Router, RouterConfig, SessionKey,
    ShardMsg, TransportInfo, UriCheck,
};
use crate::serializer::Serializer;
use crate::wire::{
    self, code, payload_from_args, payload_from_binary, Dict, Message, OwnedPayload, Payload,
    Value, MAX_ID,
};

/// Operations per input (keeps one run short).
const MAX_OPS: usize = 300;
/// Open transports at once.
const MAX_CONNS: usize = 8;
/// Ids remembered per kind per client.
const MAX_IDS: usize = 16;

const PROCEDURES: &[&str] = &[
    "com.a",
    "com.a",
    "com.b",
    "com.a.b",
    "wamp.session.count",
    "wamp.nope",
    "com..a",
    "",
    "Com A",
    "com.a.very.long.procedure.name.over.twenty.four",
];
const TOPICS: &[&str] = &[
    "t.a",
    "t.a",
    "t.b",
    "wamp.session.on_join",
    "wamp.session.on_leave",
    "t..a",
    "",
    "t.a.very.long.topic.name.over.twenty.four.bytes",
    "t.",
    "t",
    "wamp.session.",
];
const REALMS: &[&str] = &["realm1", "realm1", "realm1", "realm2", "", "wamp.x", "a..b"];
const ERRORS: &[&str] = &[
    "com.err",
    "wamp.error.canceled",
    "wamp.error.unavailable",
    "",
    "bad uri",
];

/// The event history realm1 keeps: an exact topic and a prefix over every `t.` topic, in few
/// events and `HISTORY_MAX_BYTES` each, so that eviction (by count and by bytes) and declines
/// (an event bigger than the whole bound) happen.
const HISTORY: &[(&str, MatchPolicy, usize)] = &[
    ("t.a", MatchPolicy::Exact, 3),
    ("t", MatchPolicy::Prefix, 8),
];
const HISTORY_MAX_BYTES: usize = 1024;

const GET_EVENTS: &str = "wamp.subscription.get_events";
/// The keyword arguments `get_events` takes, and two it does not.
const HISTORY_KEYS: [&str; 13] = {
    let mut keys = [""; 13];
    let mut index = 0;
    while index < FILTERS.len() {
        keys[index] = FILTERS[index];
        index += 1;
    }
    keys[11] = "x_bogus";
    keys
};
/// Timestamps for the time filters: RFC 3339 ones around the clock's range (it starts at the
/// Unix epoch), far ones, and strings that are not RFC 3339.
const TIMES: &[&str] = &[
    "1970-01-01T00:00:00.000Z",
    "1970-01-01T00:00:00.050Z",
    "1970-01-01T00:00:05Z",
    "1970-01-01T01:00:10.5+01:00",
    "2026-12-02T13:18:52.042Z",
    "9999-12-31T23:59:59.999999999Z",
    "yesterday",
    "",
    "1970-01-01T00:00:00",
    "-0001-01-01T00:00:00Z",
];

/// Client features a HELLO may announce (each role picks some at random).
const FEATURES: &[&str] = &[
    "call_canceling",
    "progressive_call_results",
    "progressive_call_invocations",
    "payload_passthru_mode",
];

/// The meta procedures (and one the router does not have), each with its parameters in
/// positional order (as `wamp.session.*`/`wamp.registration.*`/`wamp.subscription.*` take
/// them, contract of issue 5/8).
const META_PROCEDURES: &[(&str, &[&str])] = &[
    ("wamp.session.count", &["filter_authroles"]),
    ("wamp.session.list", &["filter_authroles"]),
    ("wamp.session.get", &["session_id"]),
    ("wamp.session.kill", &["session_id", "reason", "message"]),
    (
        "wamp.session.kill_by_authid",
        &["authid", "reason", "message"],
    ),
    (
        "wamp.session.kill_by_authrole",
        &["authrole", "reason", "message"],
    ),
    ("wamp.session.kill_all", &["reason", "message"]),
    (
        "wamp.session.add_testament",
        &["topic", "args", "kwargs", "publish_options", "scope"],
    ),
    ("wamp.session.flush_testaments", &["scope"]),
    ("wamp.registration.list", &[]),
    ("wamp.registration.lookup", &["procedure", "options"]),
    ("wamp.registration.match", &["procedure"]),
    ("wamp.registration.get", &["registration_id"]),
    ("wamp.registration.list_callees", &["registration_id"]),
    ("wamp.registration.count_callees", &["registration_id"]),
    (
        "wamp.registration.remove_callee",
        &["registration_id", "callee_id", "reason"],
    ),
    ("wamp.subscription.list", &[]),
    ("wamp.subscription.lookup", &["topic", "options"]),
    ("wamp.subscription.match", &["topic"]),
    ("wamp.subscription.get", &["subscription_id"]),
    ("wamp.subscription.list_subscribers", &["subscription_id"]),
    ("wamp.subscription.count_subscribers", &["subscription_id"]),
    (
        "wamp.subscription.remove_subscriber",
        &["subscription_id", "subscriber_id", "reason"],
    ),
    ("wamp.session.nope", &["session_id"]),
];
/// Keys of a testament's `publish_options`: the ones it takes, and some it does not.
const PUBLISH_OPTIONS: &[&str] = &[
    "exclude",
    "exclude_authid",
    "exclude_authrole",
    "eligible",
    "eligible_authid",
    "eligible_authrole",
    "retain",
    "acknowledge",
    "exclude_me",
    "disclose_me",
    "x_custom",
];
/// What an ERROR to a meta CALL may say (the last ones: admission of any CALL).
const META_ERRORS: &[&str] = &[
    "wamp.error.invalid_argument",
    "wamp.error.invalid_uri",
    "wamp.error.no_such_session",
    "wamp.error.no_such_registration",
    "wamp.error.no_such_subscription",
    "wamp.error.no_such_procedure",
    "wamp.error.testament_error",
    "wampring.error.too_many_testaments",
    "wampring.error.pending_call_limit_exceeded",
    "wamp.error.option_not_allowed",
    "wamp.error.feature_not_supported",
];

/// A client: one transport to one shard, and what it learned from the router.
struct Conn {
    shard: usize,
    key: SessionKey,
    ser: Serializer,
    /// The router pushed `Action::Close` for it; the transport is not closed yet.
    closed_by_router: bool,
    session_id: Option<u64>,
    next_request: u64,
    registrations: Vec<u64>,
    subscriptions: Vec<u64>,
    invocations: Vec<u64>,
    calls: Vec<u64>,
    /// Publication ids it saw (PUBLISHED, EVENT), for the history filters.
    publications: Vec<u64>,
    /// CALL request ids it used: `Some` for one well-formed `get_events` or meta call and
    /// nothing else under that id (its answer is checked), `None` for any other use.
    call_ids: HashMap<u64, Option<Asked>>,
    /// It sent raw or mutated frames, which may be CALLs under any id: no RESULT is checked.
    unsure: bool,
}

/// A `get_events` call whose RESULT is checked.
#[derive(Copy, Clone, Debug)]
struct HistoryCall {
    subscription: u64,
    limit: Option<u64>,
}

/// A call whose answer is checked.
#[derive(Copy, Clone, Debug)]
enum Asked {
    History(HistoryCall),
    /// A meta procedure, and the id it names first when that is an integer.
    Meta(&'static str, Option<u64>),
}

struct Sim {
    routers: Vec<Router>,
    /// `queues[from * n + to]`: the FIFO channel from shard `from` to shard `to`.
    queues: Vec<VecDeque<ShardMsg>>,
    conns: Vec<Conn>,
    out: Vec<Action>,
    now: Millis,
    /// Realms in the configuration: all that may be left at the end.
    configured_realms: usize,
    /// Metrics requests not answered yet: (shard asked, request).
    metrics_asked: Vec<(usize, u64)>,
    next_metrics_request: u64,
}

pub(crate) fn check(data: &[u8]) {
    let mut c = Cursor::new(data);
    let cfg = c.byte();
    let shards = 1 + usize::from(cfg & 3) % 3;
    let small = cfg & 0x20 != 0;
    let defaults = RouterConfig::default();
    let config = RouterConfig {
        auto_create_realms: cfg & 0x04 != 0,
        uri_check: if cfg & 0x08 != 0 {
            UriCheck::Strict
        } else {
            UriCheck::Loose
        },
        strict_request_ids: cfg & 0x10 != 0,
        max_pending_calls_per_session: if small {
            2
        } else {
            defaults.max_pending_calls_per_session
        },
        max_uri_length: if small { 24 } else { defaults.max_uri_length },
        max_registrations_per_session: if small {
            3
        } else {
            defaults.max_registrations_per_session
        },
        max_subscriptions_per_session: if small {
            3
        } else {
            defaults.max_subscriptions_per_session
        },
        max_auto_created_realms: if small {
            2
        } else {
            defaults.max_auto_created_realms
        },
        max_options_entries: if small {
            16
        } else {
            defaults.max_options_entries
        },
        // Small: room for a retained event or two per shard, so declines happen too.
        max_retained_bytes_per_realm: if small {
            600
        } else {
            defaults.max_retained_bytes_per_realm
        },
        hello_timeout_ms: if cfg & 0x40 != 0 { 100 } else { 10_000 },
        ..defaults
    };
    let eager = cfg & 0x80 != 0;
    let seed = u64::from(c.byte());
    let mut realm1 = RealmConfig::new("realm1");
    realm1.history = HISTORY
        .iter()
        .map(|&(uri, matching, limit)| HistoryConfig {
            uri: uri.into(),
            matching,
            limit,
            max_bytes: HISTORY_MAX_BYTES,
        })
        .collect();
    let config = RouterConfig {
        realms: vec![realm1],
        ..config
    };
    let configured_realms = config.realms.len();
    let mut sim = Sim {
        configured_realms,
        routers: (0..shards)
            .map(|shard| Router::new_shard(config.clone(), seed ^ shard as u64, shard, shards))
            .collect(),
        queues: (0..shards * shards).map(|_| VecDeque::new()).collect(),
        conns: Vec::new(),
        out: Vec::new(),
        now: 0,
        metrics_asked: Vec::new(),
        next_metrics_request: 1,
    };
    let mut ops = 0;
    while !c.is_empty() && ops < MAX_OPS {
        ops += 1;
        sim.step(&mut c);
        if eager {
            sim.drain();
        }
        sim.check_counters();
    }
    sim.finish();
}

impl Sim {
    fn shards(&self) -> usize {
        self.routers.len()
    }

    /// One operation: the next byte says which, the bytes after it how.
    fn step(&mut self, c: &mut Cursor<'_>) {
        let op = c.byte();
        match op % 32 {
            _ if self.conns.is_empty() => self.open(c),
            0..=2 if self.conns.len() < MAX_CONNS => self.open(c),
            3 => {
                let i = c.below(self.conns.len());
                self.close(i);
            }
            4..=6 => self.deliver_one(c),
            7 => self.drain(),
            8 => {
                let step = *c.pick(&[1, 50, 99, 101, 5_000, 10_001]);
                self.advance(step);
            }
            9 if op == 9 => {
                let shard = c.below(self.shards());
                self.routers[shard].shutdown(self.now, &mut self.out);
                self.absorb(shard);
            }
            10 if op == 10 => {
                let shard = c.below(self.shards());
                let request = self.next_metrics_request;
                self.next_metrics_request += 1;
                self.metrics_asked.push((shard, request));
                self.routers[shard].handle_metrics_request(request, &mut self.out);
                self.absorb(shard);
            }
            _ => {
                let i = c.below(self.conns.len());
                let frame = self.message(c, i);
                let conn = &self.conns[i];
                let (shard, key) = (conn.shard, conn.key);
                self.routers[shard].handle_message(
                    key,
                    Bytes::from(frame),
                    self.now,
                    &mut self.out,
                );
                self.absorb(shard);
            }
        }
    }

    fn open(&mut self, c: &mut Cursor<'_>) {
        let shard = c.below(self.shards());
        let ser = Serializer::ALL[c.below(Serializer::COUNT)];
        let transport = TransportInfo {
            serializer: ser,
            kind: "fuzz",
            peer: "fuzz".to_string(),
            listener: 0,
            secure: false,
        };
        let key = self.routers[shard].open_session(transport, self.now, &mut self.out);
        assert!(
            !self.conns.iter().any(|x| (x.shard, x.key) == (shard, key)),
            "key {key:?} of shard {shard} handed out twice"
        );
        self.conns.push(Conn {
            shard,
            key,
            ser,
            closed_by_router: false,
            session_id: None,
            next_request: 0,
            registrations: Vec::new(),
            subscriptions: Vec::new(),
            invocations: Vec::new(),
            calls: Vec::new(),
            publications: Vec::new(),
            call_ids: HashMap::new(),
            unsure: false,
        });
        self.absorb(shard);
    }

    /// The transport of conn `i` is gone (the runtime calls `close_session` exactly once).
    fn close(&mut self, i: usize) {
        let conn = self.conns.remove(i);
        self.routers[conn.shard].close_session(conn.key, self.now, &mut self.out);
        self.absorb(conn.shard);
    }

    fn busy_channels(&self) -> Vec<usize> {
        (0..self.queues.len())
            .filter(|&i| !self.queues[i].is_empty())
            .collect()
    }

    fn deliver(&mut self, channel: usize) {
        let n = self.shards();
        let (from, to) = (channel / n, channel % n);
        if let Some(msg) = self.queues[channel].pop_front() {
            self.routers[to].handle_shard_msg(from, msg, self.now, &mut self.out);
            self.absorb(to);
        }
    }

    fn deliver_one(&mut self, c: &mut Cursor<'_>) {
        let busy = self.busy_channels();
        if !busy.is_empty() {
            let channel = *c.pick(&busy);
            self.deliver(channel);
        }
    }

    fn drain(&mut self) {
        loop {
            let busy = self.busy_channels();
            if busy.is_empty() {
                return;
            }
            for channel in busy {
                self.deliver(channel);
            }
        }
    }

    fn advance(&mut self, by: Millis) {
        self.now += by;
        for shard in 0..self.shards() {
            if self.routers[shard]
                .poll_timeout()
                .is_some_and(|at| at <= self.now)
            {
                self.routers[shard].handle_timeout(self.now, &mut self.out);
                self.absorb(shard);
            }
            if let Some(at) = self.routers[shard].poll_timeout() {
                assert!(at > self.now, "a due timer was left after handle_timeout");
            }
        }
    }

    /// Moves the actions shard `shard` just produced to clients and channels, checking the
    /// runtime contract and every frame.
    fn absorb(&mut self, shard: usize) {
        let mut checks = Vec::new();
        for action in std::mem::take(&mut self.out) {
            match action {
                Action::Check {
                    session,
                    token,
                    check,
                } => checks.push((session, token, check.run())),
                Action::Send { session, frame } => {
                    self.receive(shard, session, &frame.to_bytes(), false)
                }
                Action::SendEvent { session, frame } => {
                    self.receive(shard, session, &frame.to_bytes(), true)
                }
                Action::SendEach { sessions, frame } => {
                    let frame = frame.to_bytes();
                    for session in sessions {
                        self.receive(shard, session, &frame, true);
                    }
                }
                Action::Close { session, .. } => {
                    let conn = self.conn_mut(shard, session, "Close");
                    assert!(!conn.closed_by_router, "second Close of {session:?}");
                    conn.closed_by_router = true;
                }
                Action::ToShard { to, msg } => {
                    let n = self.shards();
                    assert!(to != shard && to < n, "message to shard {to} from {shard}");
                    self.queues[shard * n + to].push_back(msg);
                }
                Action::Metrics { request, shards } => {
                    let asked = self
                        .metrics_asked
                        .iter()
                        .position(|&at| at == (shard, request));
                    let asked = asked.unwrap_or_else(|| {
                        panic!("metrics {request} from shard {shard}, which was not asked")
                    });
                    self.metrics_asked.swap_remove(asked);
                    let order: Vec<usize> = shards.iter().map(|snapshot| snapshot.shard).collect();
                    let every: Vec<usize> = (0..self.shards()).collect();
                    assert_eq!(
                        order, every,
                        "metrics answer: one snapshot per shard, in order"
                    );
                }
            }
        }
        // The runtime answers a check later; here, right after the actions of its input.
        for (session, token, right) in checks {
            self.routers[shard].handle_checked(session, token, right, self.now, &mut self.out);
            self.absorb(shard);
        }
    }

    fn conn_mut(&mut self, shard: usize, key: SessionKey, what: &str) -> &mut Conn {
        self.conns
            .iter_mut()
            .find(|conn| (conn.shard, conn.key) == (shard, key))
            .unwrap_or_else(|| panic!("{what} for {key:?} of shard {shard}: not open"))
    }

    /// A frame reaches its client: it must be a well-formed router-to-client message.
    /// One frame for a session; `droppable` (the runtime may drop it for a slow consumer)
    /// must be an EVENT, and only an EVENT.
    fn receive(&mut self, shard: usize, key: SessionKey, frame: &[u8], droppable: bool) {
        let conn = self.conn_mut(shard, key, "Send");
        assert!(!conn.closed_by_router, "Send to {key:?} after its Close");
        let msg = wire::decode(conn.ser, frame).unwrap_or_else(|e| {
            panic!(
                "the router sent an undecodable {} frame: {e}: {:?}",
                conn.ser,
                String::from_utf8_lossy(frame)
            )
        });
        if !matches!(msg, Message::Welcome { .. } | Message::Abort { .. }) {
            assert!(conn.session_id.is_some(), "{} before WELCOME", msg.name());
        }
        assert_eq!(
            droppable,
            matches!(msg, Message::Event { .. }),
            "{} sent as droppable={droppable}",
            msg.name()
        );
        match msg {
            Message::Welcome { session, .. } => {
                assert!(conn.session_id.is_none(), "a second WELCOME");
                conn.session_id = Some(session);
            }
            Message::Registered { registration, .. } => {
                remember(&mut conn.registrations, registration)
            }
            Message::Subscribed { subscription, .. } => {
                remember(&mut conn.subscriptions, subscription)
            }
            Message::Invocation {
                request,
                registration,
                ..
            } => {
                assert!(
                    conn.registrations.contains(&registration),
                    "INVOCATION for registration {registration} the callee was not told of"
                );
                remember(&mut conn.invocations, request);
            }
            Message::Event {
                subscription,
                publication,
                ..
            } => {
                assert!(
                    conn.subscriptions.contains(&subscription),
                    "EVENT for subscription {subscription} the subscriber was not told of"
                );
                remember(&mut conn.publications, publication);
            }
            Message::Published { publication, .. } => remember(&mut conn.publications, publication),
            Message::Result {
                request, payload, ..
            } => match conn.call_ids.get(&request) {
                Some(Some(_)) if conn.unsure => {}
                Some(Some(Asked::History(call))) => check_history_result(call, &payload),
                Some(Some(Asked::Meta(procedure, id))) => {
                    check_meta_result(procedure, *id, &payload)
                }
                _ => {}
            },
            Message::Error {
                request_type: code::CALL,
                request,
                error,
                ..
            } => {
                if let Some(Some(Asked::Meta(procedure, _))) = conn.call_ids.get(&request) {
                    assert!(
                        conn.unsure || META_ERRORS.contains(&&*error),
                        "{procedure} answered ERROR {error}"
                    );
                }
            }
            Message::Abort { .. }
            | Message::Goodbye { .. }
            | Message::Error { .. }
            | Message::Unsubscribed { .. }
            | Message::Unregistered { .. }
            | Message::Interrupt { .. }
            | Message::Challenge { .. } => {}
            other => panic!("the router sent a client's message: {}", other.name()),
        }
    }

    /// Counters of every shard agree with its tables.
    fn check_counters(&self) {
        for router in &self.routers {
            let stats = router.stats();
            assert_eq!(
                stats.sessions as u64,
                stats.sessions_opened - stats.sessions_closed,
                "{stats:?}"
            );
            assert!(
                stats.decode_errors <= stats.protocol_violations,
                "{stats:?}"
            );
            assert!(
                stats.sessions_established <= stats.sessions_opened,
                "{stats:?}"
            );
        }
        for router in &self.routers {
            let stats = router.stats();
            assert_eq!(
                stats.history_now as u64,
                stats.history_recorded - stats.history_evicted,
                "{stats:?}"
            );
            assert!(
                stats.history_bytes <= HISTORY.len() * HISTORY_MAX_BYTES
                    && stats.history_now <= HISTORY.iter().map(|entry| entry.2).sum(),
                "history beyond its bounds: {stats:?}"
            );
        }
        let open: usize = self.routers.iter().map(Router::session_count).sum();
        assert_eq!(open, self.conns.len(), "sessions open vs transports open");
    }

    /// Every channel drained, every transport closed: nothing may be left anywhere.
    fn finish(&mut self) {
        self.drain();
        while !self.conns.is_empty() {
            self.close(0);
            self.drain();
        }
        // Timers still armed (the sweep of auto-created realms whose entries just went) fire
        // within seconds and leave nothing behind.
        for _ in 0..5 {
            if self
                .routers
                .iter_mut()
                .all(|router| router.poll_timeout().is_none())
            {
                break;
            }
            self.advance(2_000);
            self.drain();
        }
        for (shard, router) in self.routers.iter().enumerate() {
            let stats = router.stats();
            // Retained events keep their realm (an auto-created one too): at most one realm per
            // retained event may be left beside the configured ones.
            assert!(
                stats.realms >= self.configured_realms
                    && stats.realms - self.configured_realms <= stats.retained_now,
                "shard {shard}: auto-created realms left: {stats:?}"
            );
            assert_eq!(
                (
                    stats.sessions,
                    stats.registrations,
                    stats.subscriptions,
                    stats.pending_calls,
                    stats.inflight_registry_ops,
                    stats.timers,
                    stats.shard_messages_ignored,
                ),
                (0, 0, 0, 0, 0, 0, 0),
                "shard {shard} not empty at the end: {stats:?}"
            );
            assert_eq!(stats.sessions_opened, stats.sessions_closed);
        }
        assert!(
            self.metrics_asked.is_empty(),
            "metrics requests never answered: {:?}",
            self.metrics_asked
        );
    }

    /// The next frame client `i` sends: mostly a well-formed message, sometimes garbage.
    fn message(&mut self, c: &mut Cursor<'_>, i: usize) -> Vec<u8> {
        let peers: Vec<u64> = self.conns.iter().filter_map(|x| x.session_id).collect();
        let conn = &mut self.conns[i];
        let ser = conn.ser;
        match Kind::choose(c, conn) {
            Kind::Raw => {
                conn.unsure = true;
                let n = c.below(48);
                c.take(n).to_vec()
            }
            Kind::Mutated => {
                conn.unsure = true;
                let kind = match Kind::choose(c, conn) {
                    Kind::Raw | Kind::Mutated => Kind::Call,
                    kind => kind,
                };
                let mut frame = encode(ser, &well_formed(c, conn, &peers, kind));
                if !frame.is_empty() {
                    let at = c.below(256) % frame.len();
                    match c.below(3) {
                        0 => frame[at] = c.byte(),
                        1 => frame.truncate(at),
                        _ => frame.insert(at, c.byte()),
                    }
                }
                frame
            }
            kind => {
                let m = well_formed(c, conn, &peers, kind);
                if m.code == code::CALL {
                    // A RESULT under an id that two CALLs used may answer either.
                    let asked = kind == Kind::GetEvents || kind == Kind::Meta;
                    conn.call_ids
                        .entry(m.request)
                        .and_modify(|call| *call = None)
                        .or_insert(m.asks.filter(|_| asked));
                }
                encode(ser, &m)
            }
        }
    }
}

/// What a client sends next.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Kind {
    Hello,
    Register,
    Call,
    Yield,
    Error,
    Subscribe,
    Publish,
    Unsubscribe,
    Unregister,
    Cancel,
    /// CALL `wamp.subscription.get_events`, with arguments valid or not.
    GetEvents,
    /// CALL a session, registration or subscription meta procedure (kills, revocations and
    /// testaments among them), with arguments valid or not.
    Meta,
    /// GOODBYE, ABORT, or a message a client may not send here.
    Other,
    /// Raw bytes, as they come.
    Raw,
    /// A well-formed message, then broken: a byte changed, cut short, or a byte added.
    Mutated,
}

impl Kind {
    /// Mostly what makes sense in the client's state (HELLO first, YIELD/ERROR when invoked),
    /// so that sessions live long enough to reach the deep states; sometimes anything.
    fn choose(c: &mut Cursor<'_>, conn: &Conn) -> Kind {
        if conn.session_id.is_none() && !c.chance(3) {
            return Kind::Hello;
        }
        let invoked = !conn.invocations.is_empty();
        match c.below(72) {
            0 => Kind::Hello,
            1..=8 => Kind::Register,
            21..=30 if invoked => Kind::Yield,
            31..=34 if invoked => Kind::Error,
            9..=34 => Kind::Call,
            35..=40 => Kind::Subscribe,
            41..=50 => Kind::Publish,
            51 | 52 => Kind::Unsubscribe,
            53 | 54 => Kind::Unregister,
            55 | 56 => Kind::Cancel,
            57..=59 => Kind::Other,
            60 => Kind::Raw,
            61 => Kind::Mutated,
            62 | 63 => Kind::GetEvents,
            _ => Kind::Meta,
        }
    }
}

fn remember(ids: &mut Vec<u64>, id: u64) {
    if !ids.contains(&id) {
        if ids.len() == MAX_IDS {
            ids.remove(0);
        }
        ids.push(id);
    }
}

fn encode(ser: Serializer, msg: &OwnedMessage) -> Vec<u8> {
    let mut frame = Vec::new();
    let payload = msg.payload.as_payload();
    let message = msg.view(payload);
    // Only a payload that cannot be carried fails; send the message without it then.
    if wire::encode(&message, ser, &mut frame).is_err() {
        wire::encode(&msg.view(Payload::empty(ser)), ser, &mut frame)
            .expect("a message without payload encodes");
    }
    frame
}

/// A message to send, owning its parts (`Message` borrows).
struct OwnedMessage {
    code: u64,
    request: u64,
    id: u64,
    uri: String,
    dict: Dict<'static>,
    payload: OwnedPayload,
    /// A well-formed `get_events` or meta call whose answer can be checked.
    asks: Option<Asked>,
}

impl OwnedMessage {
    fn view<'a>(&'a self, payload: Payload<'a>) -> Message<'a> {
        let uri = self.uri.as_str().into();
        let dict = self.dict.clone();
        let request = self.request;
        match self.code {
            code::HELLO => Message::Hello {
                realm: uri,
                details: dict,
            },
            code::REGISTER => Message::Register {
                request,
                options: dict,
                procedure: uri,
            },
            code::CALL => Message::Call {
                request,
                options: dict,
                procedure: uri,
                payload,
            },
            code::YIELD => Message::Yield {
                request,
                options: dict,
                payload,
            },
            code::ERROR => Message::Error {
                request_type: self.id,
                request,
                details: dict,
                error: uri,
                payload,
            },
            code::SUBSCRIBE => Message::Subscribe {
                request,
                options: dict,
                topic: uri,
            },
            code::PUBLISH => Message::Publish {
                request,
                options: dict,
                topic: uri,
                payload,
            },
            code::UNSUBSCRIBE => Message::Unsubscribe {
                request,
                subscription: self.id,
            },
            code::UNREGISTER => Message::Unregister {
                request,
                registration: self.id,
            },
            code::CANCEL => Message::Cancel {
                request,
                options: dict,
            },
            code::GOODBYE => Message::Goodbye {
                details: dict,
                reason: uri,
            },
            code::ABORT => Message::Abort {
                details: dict,
                reason: uri,
                payload,
            },
            code::AUTHENTICATE => Message::Authenticate {
                signature: uri,
                extra: dict,
            },
            code::EVENT_RECEIVED => Message::EventReceived {
                publication: request,
                payload,
            },
            // A message only a router sends.
            _ => Message::Result {
                request,
                details: dict,
                payload,
            },
        }
    }
}

/// A message of `kind` from client `conn`, with ids it saw (or random ones), URIs, options and
/// a payload from small pools.
fn well_formed(c: &mut Cursor<'_>, conn: &mut Conn, peers: &[u64], kind: Kind) -> OwnedMessage {
    let ser = conn.ser;
    let mut m = OwnedMessage {
        code: 0,
        request: 0,
        id: 0,
        uri: String::new(),
        dict: Dict::new(),
        payload: OwnedPayload::empty(ser),
        asks: None,
    };
    match kind {
        Kind::Hello => {
            m.code = code::HELLO;
            m.uri = if c.chance(85) {
                REALMS[0].to_string()
            } else {
                c.pick(REALMS).to_string()
            };
            if c.chance(97) {
                let mut roles = Dict::new();
                for role in ["caller", "callee", "publisher", "subscriber"] {
                    if c.chance(70) {
                        let mut announced = Dict::new();
                        for &feature in FEATURES {
                            if c.chance(40) {
                                announced.insert(feature, true);
                            }
                        }
                        // Without bytes of their own (the input layout stays): a callee or
                        // subscriber announcing call_canceling takes revocations too.
                        let revocation = match role {
                            "callee" => Some("registration_revocation"),
                            "subscriber" => Some("subscription_revocation"),
                            _ => None,
                        };
                        if let Some(revocation) = revocation {
                            if announced.contains_key("call_canceling") {
                                announced.insert(revocation, true);
                            }
                        }
                        let mut details = Dict::new();
                        details.insert("features", announced);
                        roles.insert(role, details);
                    }
                }
                m.dict.insert("roles", roles);
            }
            if c.chance(10) {
                let method = *c.pick(&["anonymous", "ticket", "wampcra"]);
                m.dict
                    .insert("authmethods", Value::List(vec![method.into()]));
            }
            if c.chance(10) {
                m.dict.insert("authid", "someone");
            }
        }
        Kind::Register => {
            m.code = code::REGISTER;
            m.request = request_id(c, conn);
            m.uri = uri(c, PROCEDURES);
            if c.chance(40) {
                let invoke: Value<'static> = match c.below(7) {
                    6 => Value::UInt(1),
                    i => ["roundrobin", "random", "first", "last", "single", "bogus"][i].into(),
                };
                m.dict.insert("invoke", invoke);
            }
            if c.chance(10) {
                let policy = *c.pick(&["exact", "prefix", "wildcard"]);
                m.dict.insert("match", policy);
            }
            if c.chance(20) {
                m.dict.insert("disclose_caller", c.bool());
            }
        }
        Kind::Call => {
            m.code = code::CALL;
            m.request = request_id(c, conn);
            remember(&mut conn.calls, m.request);
            m.uri = uri(c, PROCEDURES);
            if c.chance(20) {
                m.dict.insert("receive_progress", c.bool());
            }
            if c.chance(10) {
                m.dict
                    .insert("timeout", Value::UInt(*c.pick(&[0, 1, 1000])));
            }
            if c.chance(10) {
                m.dict.insert("disclose_me", c.bool());
            }
            if c.chance(10) {
                m.dict.insert("progress", c.bool());
            }
            if c.chance(5) {
                m.dict.insert("ppt_scheme", "x_fuzz");
            }
            m.payload = payload(c, ser);
        }
        Kind::Yield => {
            m.code = code::YIELD;
            m.request = known_or_random(c, &conn.invocations);
            let progress = c.chance(20) && c.bool();
            if progress {
                m.dict.insert("progress", true);
            } else {
                forget(c, &mut conn.invocations, m.request);
            }
            if c.chance(5) {
                m.dict.insert("ppt_scheme", "x_fuzz");
            }
            m.payload = payload(c, ser);
        }
        Kind::Error => {
            m.code = code::ERROR;
            m.id = if c.chance(85) {
                code::INVOCATION
            } else {
                *c.pick(&[code::CALL, code::REGISTER, 0, 999])
            };
            m.request = known_or_random(c, &conn.invocations);
            forget(c, &mut conn.invocations, m.request);
            m.uri = c.pick(ERRORS).to_string();
            m.payload = payload(c, ser);
        }
        Kind::Subscribe => {
            m.code = code::SUBSCRIBE;
            m.request = request_id(c, conn);
            m.uri = uri(c, TOPICS);
            if c.chance(35) {
                let policy = *c.pick(&["exact", "prefix", "prefix", "wildcard", "bogus"]);
                m.dict.insert("match", policy);
            }
            if c.chance(25) {
                m.dict.insert("get_retained", c.bool());
            }
        }
        Kind::Publish => {
            m.code = code::PUBLISH;
            m.request = request_id(c, conn);
            m.uri = uri(c, TOPICS);
            if c.chance(40) {
                m.dict.insert("acknowledge", c.bool());
            }
            if c.chance(30) {
                m.dict.insert("exclude_me", c.bool());
            }
            for key in ["eligible", "exclude"] {
                if c.chance(10) {
                    let ids = (0..c.below(3))
                        .map(|_| Value::UInt(known_or_random(c, peers)))
                        .collect();
                    m.dict.insert(key, Value::List(ids));
                }
            }
            if c.chance(20) {
                m.dict.insert("retain", c.bool());
            }
            if c.chance(10) {
                m.dict.insert("disclose_me", c.bool());
            }
            m.payload = payload(c, ser);
        }
        Kind::GetEvents => {
            m.code = code::CALL;
            m.request = request_id(c, conn);
            remember(&mut conn.calls, m.request);
            m.uri = GET_EVENTS.to_string();
            let (payload, call) = get_events_args(c, conn);
            (m.payload, m.asks) = (payload, call.map(Asked::History));
        }
        Kind::Meta => {
            m.code = code::CALL;
            m.request = request_id(c, conn);
            remember(&mut conn.calls, m.request);
            let (procedure, payload, id) = meta_args(c, conn, peers);
            m.uri = procedure.to_string();
            m.payload = payload;
            m.asks = Some(Asked::Meta(procedure, id));
        }
        Kind::Unsubscribe => {
            m.code = code::UNSUBSCRIBE;
            m.request = request_id(c, conn);
            m.id = known_or_random(c, &conn.subscriptions);
        }
        Kind::Unregister => {
            m.code = code::UNREGISTER;
            m.request = request_id(c, conn);
            m.id = known_or_random(c, &conn.registrations);
        }
        Kind::Cancel => {
            m.code = code::CANCEL;
            m.request = known_or_random(c, &conn.calls);
            if c.chance(50) {
                let mode = *c.pick(&["skip", "kill", "killnowait", "bogus"]);
                m.dict.insert("mode", mode);
            }
        }
        _ => {
            m.code = *c.pick(&[
                code::GOODBYE,
                code::GOODBYE,
                code::ABORT,
                code::AUTHENTICATE,
                code::EVENT_RECEIVED,
                code::RESULT,
            ]);
            m.request = request_id(c, conn);
            m.uri = c
                .pick(&["wamp.close.normal", "wamp.error.x", "", "bad uri"])
                .to_string();
            if c.chance(20) {
                m.dict.insert("message", "bye");
            }
        }
    }
    if c.chance(2) {
        // A key no table knows, or a known key with the wrong type.
        let key = *c.pick(&[
            "x_custom",
            "acknowledge",
            "receive_progress",
            "roles",
            "timeout",
        ]);
        m.dict.insert(key, Value::Str("?".into()));
    }
    m
}

/// The arguments of a `get_events` call: a subscription id (mostly one the client saw, often
/// a reserved one: they are the first ids), an optional positional limit, keyword filters with
/// values of the right type or not; and what its RESULT must respect, when one may come.
fn get_events_args(c: &mut Cursor<'_>, conn: &Conn) -> (OwnedPayload, Option<HistoryCall>) {
    let mut args = Vec::new();
    match c.below(10) {
        0 => {}
        1 => args.push(Value::Str("1".into())),
        2 => args.push(Value::Int(-1)),
        3 => args.push(Value::Float(1.0)),
        _ => args.push(Value::UInt(known_or_random(c, &conn.subscriptions))),
    }
    if !args.is_empty() && c.chance(25) {
        args.push(limit_value(c));
        if c.chance(5) {
            args.push(Value::UInt(1));
        }
    }
    let mut kwargs = Dict::new();
    for _ in 0..c.below(4) {
        let key = *c.pick(&HISTORY_KEYS);
        let value = if c.chance(15) {
            c.pick(&[
                Value::Null,
                Value::Int(-1),
                Value::Str("?".into()),
                Value::List(Vec::new()),
                Value::Float(f64::NAN),
                Value::Bool(true),
            ])
            .clone()
        } else {
            match key {
                "reverse" => Value::Bool(c.bool()),
                "limit" => limit_value(c),
                "topic" => Value::Str(c.pick(TOPICS).to_string().into()),
                key if key.ends_with("_time") => Value::Str(c.pick(TIMES).to_string().into()),
                key if key.ends_with("_publication") => {
                    Value::UInt(known_or_random(c, &conn.publications))
                }
                _ => Value::Null,
            }
        };
        kwargs.insert(key, value);
    }
    let subscription = match args.first() {
        Some(Value::UInt(id)) => Some(*id),
        _ => None,
    };
    let limit = match (args.get(1), kwargs.get("limit")) {
        (Some(Value::UInt(n)), _) | (None, Some(Value::UInt(n))) => Some(*n),
        _ => None,
    };
    let ser = conn.ser;
    let kwargs = (!kwargs.is_empty()).then_some(&kwargs);
    let payload =
        payload_from_args(ser, &args, kwargs).unwrap_or_else(|_| OwnedPayload::empty(ser));
    let call = subscription.map(|subscription| HistoryCall {
        subscription,
        limit,
    });
    (payload, call)
}

/// A meta procedure and its arguments: each parameter (and sometimes one too many) by
/// position or by keyword, mostly of the right type (ids the client saw, URIs and options from
/// the pools), sometimes of any type, huge ids, unknown keywords; and the first argument when
/// it is an id.
fn meta_args(
    c: &mut Cursor<'_>,
    conn: &Conn,
    peers: &[u64],
) -> (&'static str, OwnedPayload, Option<u64>) {
    let (procedure, params) = *c.pick(META_PROCEDURES);
    let mut args = Vec::new();
    let mut kwargs = Dict::new();
    let given = if c.chance(80) {
        c.below(params.len() + 1)
    } else {
        params.len() + 1
    };
    for index in 0..given {
        let name = params.get(index).copied();
        let value = meta_value(c, conn, peers, name);
        match name {
            // Mostly by keyword once one was (else positions shift: a wrong type, surely).
            Some(name) if c.chance(if kwargs.is_empty() { 30 } else { 90 }) => {
                kwargs.insert(name, value)
            }
            _ => args.push(value),
        }
    }
    if c.chance(8) {
        let key = *c.pick(&["x_bogus", "session_id", "reason", "options", "scope", ""]);
        let value = meta_value(c, conn, peers, None);
        kwargs.insert(key, value);
    }
    let first = args.first().or_else(|| {
        let name = params.first()?;
        kwargs.get(name)
    });
    let id = match first {
        Some(Value::UInt(id)) => Some(*id),
        _ => None,
    };
    let ser = conn.ser;
    let kwargs = (!kwargs.is_empty()).then_some(&kwargs);
    let payload =
        payload_from_args(ser, &args, kwargs).unwrap_or_else(|_| OwnedPayload::empty(ser));
    (procedure, payload, id)
}

/// A value for meta parameter `name`: mostly of its type, sometimes anything.
fn meta_value(
    c: &mut Cursor<'_>,
    conn: &Conn,
    peers: &[u64],
    name: Option<&str>,
) -> Value<'static> {
    if name.is_none() || c.chance(12) {
        let mut odd = Dict::new();
        odd.insert("x", Value::Int(-1));
        return c
            .pick(&[
                Value::Null,
                Value::Int(-1),
                Value::Str("?".into()),
                Value::List(vec![Value::Null]),
                Value::Float(f64::NAN),
                Value::Bool(true),
                Value::UInt(u64::MAX),
                Value::UInt(MAX_ID + 1),
                Value::Dict(odd),
            ])
            .clone();
    }
    fn string(s: &str) -> Value<'static> {
        Value::Str(s.to_string().into())
    }
    match name.unwrap_or_default() {
        "session_id" | "callee_id" | "subscriber_id" => Value::UInt(known_or_random(c, peers)),
        "registration_id" => Value::UInt(known_or_random(c, &conn.registrations)),
        "subscription_id" => Value::UInt(known_or_random(c, &conn.subscriptions)),
        "reason" => string(c.pick::<&str>(&[
            "wamp.close.killed",
            "com.reason",
            "wamp.error.x",
            "bad uri",
            "",
            "a..b",
        ])),
        "message" => string(c.pick::<&str>(&["bye", "", "\u{0}x"])),
        // Anonymous sessions' authid is their session id in decimal.
        "authid" if !peers.is_empty() && c.chance(50) => {
            string(&known_or_random(c, peers).to_string())
        }
        "authid" => string(c.pick::<&str>(&["someone", "", "1"])),
        "authrole" => string(c.pick::<&str>(&["anonymous", "nobody", ""])),
        "filter_authroles" => Value::List(match c.below(4) {
            0 => Vec::new(),
            1 => vec!["anonymous".into()],
            2 => vec!["anonymous".into(), "x".into()],
            _ => vec!["anonymous".into(), Value::UInt(1)],
        }),
        "procedure" => string(&uri(c, PROCEDURES)),
        "topic" => string(&uri(c, TOPICS)),
        "options" => {
            let mut options = Dict::new();
            if c.chance(80) {
                let matching = c
                    .pick(&[
                        Value::Str("exact".into()),
                        Value::Str("prefix".into()),
                        Value::Str("wildcard".into()),
                        Value::Str("bogus".into()),
                        Value::UInt(1),
                        Value::Null,
                    ])
                    .clone();
                options.insert("match", matching);
            } else {
                options.insert("x_custom", true);
            }
            Value::Dict(options)
        }
        "args" => Value::List(match c.below(4) {
            0 => Vec::new(),
            1 => vec![Value::UInt(1), "x".into()],
            2 => vec![Value::Bin(c.take(4).to_vec().into())],
            _ => vec![Value::Str("y".repeat(c.below(256) * 8).into())],
        }),
        "kwargs" => {
            let mut kwargs = Dict::new();
            if c.bool() {
                kwargs.insert("k", Value::List(vec![Value::Null]));
            }
            Value::Dict(kwargs)
        }
        "publish_options" => publish_options(c, peers),
        "scope" => c
            .pick(&[
                Value::Str("destroyed".into()),
                Value::Str("detached".into()),
                Value::Str("bogus".into()),
                Value::UInt(1),
            ])
            .clone(),
        _ => Value::UInt(1),
    }
}

/// A testament's `publish_options`: keys it takes (black/white lists of ids, authids and
/// authroles, retain, ignored ones) with values of the right type or not, and keys it does not.
fn publish_options(c: &mut Cursor<'_>, peers: &[u64]) -> Value<'static> {
    let mut options = Dict::new();
    for _ in 0..c.below(4) {
        let key = *c.pick(PUBLISH_OPTIONS);
        let value = match key {
            "exclude" | "eligible" if c.chance(85) => Value::List(
                (0..c.below(3))
                    .map(|_| Value::UInt(known_or_random(c, peers)))
                    .collect(),
            ),
            "exclude_authid" | "eligible_authid" | "exclude_authrole" | "eligible_authrole"
                if c.chance(85) =>
            {
                Value::List(vec![Value::Str(
                    c.pick(&["anonymous", "someone", "1", ""])
                        .to_string()
                        .into(),
                )])
            }
            _ if c.chance(70) => Value::Bool(c.bool()),
            _ => c
                .pick(&[Value::Str("yes".into()), Value::UInt(1), Value::Null])
                .clone(),
        };
        options.insert(key, value);
    }
    Value::Dict(options)
}

/// A RESULT of meta procedure `procedure` (asked about `id` when its first argument was an
/// integer): the shape of its answer (sessions gathered from other shards may have closed
/// since: no count is bounded by the transports open now).
fn check_meta_result(procedure: &str, id: Option<u64>, payload: &Payload<'_>) {
    let (args, kwargs) = wire::decode_payload_values(payload)
        .unwrap_or_else(|e| panic!("a {procedure} RESULT does not decode: {e}"));
    assert!(kwargs.is_none(), "{procedure} answered keyword arguments");
    let ids = |value: &Value<'_>| -> Vec<u64> {
        let list = value
            .as_list()
            .unwrap_or_else(|| panic!("{procedure} answered {value:?}, not a list"));
        list.iter()
            .map(|id| id.as_u64().expect("ids are integers"))
            .collect()
    };
    let ascending = |ids: &[u64]| {
        assert!(
            ids.windows(2).all(|pair| pair[0] < pair[1]),
            "{procedure} answered ids out of order: {ids:?}"
        );
    };
    match procedure {
        "wamp.session.kill"
        | "wamp.registration.remove_callee"
        | "wamp.subscription.remove_subscriber" => {
            assert!(args.is_empty(), "{procedure} answered {args:?}");
            return;
        }
        _ => {}
    }
    let [value] = args.as_slice() else {
        panic!("{procedure} answered {args:?}, not one argument");
    };
    match procedure {
        "wamp.session.count" | "wamp.session.kill_by_authrole" | "wamp.session.kill_all" => {
            value.as_u64().expect("a count");
        }
        "wamp.registration.count_callees"
        | "wamp.subscription.count_subscribers"
        | "wamp.session.flush_testaments"
        | "wamp.session.add_testament" => {
            value.as_u64().expect("an integer");
        }
        "wamp.session.list"
        | "wamp.session.kill_by_authid"
        | "wamp.subscription.list_subscribers" => {
            ascending(&ids(value));
        }
        "wamp.registration.list_callees" => {
            let mut ids = ids(value);
            ids.sort_unstable();
            ascending(&ids);
        }
        "wamp.registration.list" | "wamp.subscription.list" => {
            let dict = value.as_dict().expect("a dict of lists");
            for policy in ["exact", "prefix", "wildcard"] {
                ascending(&ids(dict.get(policy).expect("each policy")));
            }
        }
        "wamp.registration.lookup" | "wamp.registration.match" | "wamp.subscription.lookup" => {
            assert!(
                matches!(value, Value::Null | Value::UInt(_)),
                "{procedure} answered {value:?}"
            );
        }
        "wamp.subscription.match" => {
            if !matches!(value, Value::Null) {
                assert!(
                    !ids(value).is_empty(),
                    "{procedure}: an empty list, not null"
                );
            }
        }
        "wamp.registration.get" | "wamp.subscription.get" | "wamp.session.get" => {
            let dict = value.as_dict().expect("details");
            let key = if procedure == "wamp.session.get" {
                "session"
            } else {
                "id"
            };
            assert_eq!(dict.get_u64(key), id, "{procedure} of {id:?}: {dict:?}");
        }
        other => panic!("{other} answered RESULT {value:?}"),
    }
}

/// A `limit` for `get_events`: positive or not, huge, or not a number.
fn limit_value(c: &mut Cursor<'_>) -> Value<'static> {
    c.pick(&[
        Value::UInt(0),
        Value::UInt(1),
        Value::UInt(2),
        Value::UInt(5),
        Value::UInt(u64::MAX),
        Value::Int(-2),
        Value::Str("3".into()),
        Value::Null,
    ])
    .clone()
}

/// A RESULT of `get_events`: one list of events of the asked subscription, each with its
/// fields, each publication once, no more than asked or configured.
fn check_history_result(call: &HistoryCall, payload: &Payload<'_>) {
    let (args, kwargs) = wire::decode_payload_values(payload)
        .unwrap_or_else(|e| panic!("a get_events RESULT does not decode: {e}"));
    assert!(kwargs.is_none(), "get_events answered keyword arguments");
    let [Value::List(events)] = args.as_slice() else {
        panic!("get_events answered {args:?}");
    };
    let most = HISTORY.iter().map(|entry| entry.2).max().unwrap_or(0) as u64;
    assert!(
        events.len() as u64 <= call.limit.unwrap_or(u64::MAX).min(most),
        "{} events for {call:?}",
        events.len()
    );
    let mut publications = Vec::new();
    for event in events {
        let event = event.as_dict().expect("each history event is a dict");
        assert_eq!(
            event.get_u64("subscription"),
            Some(call.subscription),
            "{event:?} for {call:?}"
        );
        let publication = event.get_u64("publication").expect("a publication id");
        assert!(
            !publications.contains(&publication),
            "publication {publication} twice in one answer"
        );
        publications.push(publication);
        let timestamp = event.get_str("timestamp").expect("a timestamp");
        assert!(
            timestamp.len() == 24 && timestamp.ends_with('Z'),
            "timestamp {timestamp:?}"
        );
        assert!(event.get_str("topic").is_some(), "{event:?}");
        assert!(event.get_dict("details").is_some(), "{event:?}");
    }
}

/// Mostly the first of `pool` (so that sessions meet on one URI), else any.
fn uri(c: &mut Cursor<'_>, pool: &[&str]) -> String {
    if c.chance(50) {
        pool[0].to_string()
    } else {
        c.pick(pool).to_string()
    }
}

/// The client answered `id`; it usually no longer uses it (sometimes it answers twice).
fn forget(c: &mut Cursor<'_>, ids: &mut Vec<u64>, id: u64) {
    if c.chance(90) {
        ids.retain(|&x| x != id);
    }
}

/// A request id: mostly the next in sequence, sometimes a repeat, a jump or out of range.
fn request_id(c: &mut Cursor<'_>, conn: &mut Conn) -> u64 {
    match c.below(64) {
        0 => 0,
        1 => MAX_ID + 1,
        2 => MAX_ID,
        3 => conn.next_request.max(1),
        4 => u64::from(c.byte()) + 1,
        _ => {
            conn.next_request += 1;
            conn.next_request
        }
    }
}

/// Mostly one of `ids`, else a small id or an edge of the id range.
fn known_or_random(c: &mut Cursor<'_>, ids: &[u64]) -> u64 {
    if !ids.is_empty() && c.chance(85) {
        return *c.pick(ids);
    }
    match c.below(16) {
        0 => 0,
        1 => MAX_ID,
        2 => MAX_ID + 1,
        _ => u64::from(c.byte()) + 1,
    }
}

/// A payload in `ser` from a small pool of interesting shapes.
fn payload(c: &mut Cursor<'_>, ser: Serializer) -> OwnedPayload {
    let args = |values: &[Value<'_>]| payload_from_args(ser, values, None);
    let built = match c.below(12) {
        0..=2 => return OwnedPayload::empty(ser),
        3 => args(&[Value::UInt(1), "x".into()]),
        4 => {
            let mut kwargs = Dict::new();
            kwargs.insert("k", true);
            payload_from_args(ser, &[], Some(&kwargs))
        }
        5 => {
            let n = c.below(8);
            return payload_from_binary(ser, c.take(n));
        }
        6 => {
            let f = *c.pick(&[1.5, -0.0, f64::NAN, f64::INFINITY, 1e300]);
            args(&[Value::Float(f)])
        }
        7 => {
            let n = c.below(8);
            args(&[Value::Bin(c.take(n).to_vec().into())])
        }
        8 => {
            let mut inner = Dict::new();
            inner.insert("a", Value::Null);
            args(&[
                Value::Int(-5),
                Value::UInt(u64::MAX),
                Value::List(vec![Value::List(Vec::new())]),
                Value::Dict(inner),
            ])
        }
        9 => args(&["\u{0}not base64".into(), "é\u{1}\"\\".into()]),
        10 => args(&[Value::Str("y".repeat(c.below(256) * 4).into())]),
        // Raw bytes the router's validator must judge: a MessagePack or CBOR map with an integer
        // key (no JSON equivalent), a CBOR tag, JSON numbers at and past the edges of u64/i64/f64.
        _ => {
            let raw: &'static [u8] = match ser {
                Serializer::MsgPack => &[0x91, 0x81, 0x01, 0x02],
                // [{1: 2}, tag 1 (a date) 0]: well-formed, forwarded to CBOR peers only.
                Serializer::Cbor => &[0x82, 0xa1, 0x01, 0x02, 0xc1, 0x00],
                Serializer::Json => b"[18446744073709551616,-9223372036854775809,1e400]",
            };
            return OwnedPayload {
                ser,
                count: 1,
                raw: Bytes::from_static(raw),
            };
        }
    };
    built.unwrap_or_else(|_| OwnedPayload::empty(ser))
}
