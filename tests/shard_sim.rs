//! Deterministic simulation of the multi-shard router: N `Router` shards in one process, one
//! FIFO queue per ordered pair of shards (what the runtime's channel mesh guarantees), and a
//! seeded scheduler that interleaves client operations with deliveries from randomly chosen
//! queues. Random scenarios over thousands of seeds check the dealer/broker properties across
//! shards; targeted scenarios pin the cross-shard cases one by one.
//!
//! Replay a failing seed with `SEED=<n> cargo test --test shard_sim`; soak with
//! `SHARD_SIM_SEEDS=<count> cargo test --release --test shard_sim`.

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use wampring::router::{
    owner_shard, uri, Action, Router, RouterConfig, SessionKey, ShardMsg, TransportInfo,
};
use wampring::wire::{self, Dict, Message, OwnedPayload, Serializer, Value};

// ------------------------------------------------------------------------------------------
// Cluster: N routers and the channel mesh between them
// ------------------------------------------------------------------------------------------

/// A client connection: the shard it lives on and its key there.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
struct Conn {
    shard: usize,
    key: SessionKey,
    ser: Serializer,
}

struct Cluster {
    routers: Vec<Router>,
    /// `queues[from * n + to]`: the FIFO channel from shard `from` to shard `to`.
    queues: Vec<VecDeque<ShardMsg>>,
    inbox: HashMap<(usize, SessionKey), VecDeque<Bytes>>,
    /// Sessions the router asked to close, and sessions whose transport is gone.
    closed_by_router: HashSet<(usize, SessionKey)>,
    gone: HashSet<(usize, SessionKey)>,
    out: Vec<Action>,
    peer_messages: u64,
}

impl Cluster {
    fn new(shards: usize, seed: u64) -> Cluster {
        Cluster {
            routers: (0..shards)
                .map(|shard| {
                    Router::new_shard(RouterConfig::default(), seed ^ shard as u64, shard, shards)
                })
                .collect(),
            queues: (0..shards * shards).map(|_| VecDeque::new()).collect(),
            inbox: HashMap::new(),
            closed_by_router: HashSet::new(),
            gone: HashSet::new(),
            out: Vec::new(),
            peer_messages: 0,
        }
    }

    fn shards(&self) -> usize {
        self.routers.len()
    }

    /// Moves the actions shard `shard` just produced into inboxes and channels, checking the
    /// runtime contract.
    fn absorb(&mut self, shard: usize) {
        for action in std::mem::take(&mut self.out) {
            match action {
                Action::Send { session, frame } => {
                    let at = (shard, session);
                    assert!(
                        !self.gone.contains(&at),
                        "Send to {at:?} after close_session"
                    );
                    assert!(
                        !self.closed_by_router.contains(&at),
                        "Send to {at:?} after its Close"
                    );
                    self.inbox.entry(at).or_default().push_back(frame);
                }
                Action::Close { session } => {
                    assert!(
                        self.closed_by_router.insert((shard, session)),
                        "second Close of {session:?}"
                    );
                }
                Action::Peer { to, msg } => {
                    assert!(
                        to != shard && to < self.shards(),
                        "Peer to {to} from {shard}"
                    );
                    let n = self.shards();
                    self.queues[shard * n + to].push_back(msg);
                    self.peer_messages += 1;
                }
            }
        }
    }

    fn open(&mut self, shard: usize, ser: Serializer) -> Conn {
        let key = self.routers[shard].open_session(TransportInfo {
            serializer: ser,
            kind: "sim",
            peer: format!("shard{shard}"),
        });
        self.closed_by_router.remove(&(shard, key));
        self.gone.remove(&(shard, key));
        self.inbox.insert((shard, key), VecDeque::new());
        Conn { shard, key, ser }
    }

    fn send(&mut self, conn: Conn, msg: &Message<'_>) {
        let mut frame = Vec::new();
        wire::encode(msg, conn.ser, &mut frame).unwrap();
        self.routers[conn.shard].handle_message(conn.key, &frame, 0, &mut self.out);
        self.absorb(conn.shard);
    }

    fn close(&mut self, conn: Conn) {
        self.routers[conn.shard].close_session(conn.key, 0, &mut self.out);
        self.absorb(conn.shard);
        self.gone.insert((conn.shard, conn.key));
        self.inbox.remove(&(conn.shard, conn.key));
    }

    fn recv(&mut self, conn: Conn) -> Option<Bytes> {
        self.inbox.get_mut(&(conn.shard, conn.key))?.pop_front()
    }

    /// Delivers the head of the channel `from -> to`; false when it is empty.
    fn deliver(&mut self, from: usize, to: usize) -> bool {
        let n = self.shards();
        let Some(msg) = self.queues[from * n + to].pop_front() else {
            return false;
        };
        self.routers[to].handle_peer(from, msg, 0, &mut self.out);
        self.absorb(to);
        true
    }

    fn busy_channels(&self) -> Vec<(usize, usize)> {
        let n = self.shards();
        (0..n * n)
            .filter(|&i| !self.queues[i].is_empty())
            .map(|i| (i / n, i % n))
            .collect()
    }

    fn undelivered(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// Delivers everything, channel by channel in round-robin order.
    fn drain(&mut self) {
        while !self.busy_channels().is_empty() {
            for (from, to) in self.busy_channels() {
                self.deliver(from, to);
            }
        }
    }

    fn assert_tables_empty(&self) {
        for (shard, router) in self.routers.iter().enumerate() {
            let stats = router.stats();
            assert_eq!(
                (
                    stats.sessions,
                    stats.registrations,
                    stats.subscriptions,
                    stats.pending_calls,
                    stats.inflight_registry_ops
                ),
                (0, 0, 0, 0, 0),
                "shard {shard} tables not empty: {stats:?}"
            );
            assert_eq!(stats.protocol_violations, 0, "shard {shard}: {stats:?}");
            assert_eq!(stats.peer_messages_ignored, 0, "shard {shard}: {stats:?}");
        }
    }
}

fn hello_details() -> Dict<'static> {
    let mut roles = Dict::new();
    for role in ["caller", "callee", "publisher", "subscriber"] {
        roles.insert(role, Dict::new());
    }
    let mut details = Dict::new();
    details.insert("roles", roles);
    details
}

fn args(ser: Serializer, a: u64, b: u64) -> OwnedPayload {
    wire::payload_from_args(ser, &[Value::UInt(a), Value::UInt(b)], None).unwrap()
}

/// The `[a, b]` arguments of a received payload.
fn read_args(payload: &wire::Payload<'_>) -> (u64, u64) {
    let (list, _) = wire::decode_payload_values(payload).expect("payload decodes");
    match list.as_slice() {
        [Value::UInt(a), Value::UInt(b)] => (*a, *b),
        other => panic!("unexpected arguments {other:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// Seeded scheduler
// ------------------------------------------------------------------------------------------

/// splitmix64: tiny, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

// ------------------------------------------------------------------------------------------
// Random scenarios: client model and property checks
// ------------------------------------------------------------------------------------------

const PROCEDURES: [&str; 4] = ["com.p0", "com.p1", "com.p2", "com.p3"];
const TOPICS: [&str; 4] = ["com.t0", "com.t1", "com.t2", "com.t3"];
const APP_ERROR: &str = "com.app.error";

enum Request {
    Register(&'static str),
    Unregister,
    Subscribe(&'static str),
    Unsubscribe,
    Call { seq: u64 },
}

struct SimClient {
    /// Unique over the run (payloads carry it).
    id: u64,
    conn: Conn,
    alive: bool,
    welcomed: bool,
    next_request: u64,
    requests: HashMap<u64, Request>,
    /// Registration id -> procedure, from REGISTERED until UNREGISTER is sent.
    registrations: HashMap<u64, &'static str>,
    wanted_procedures: HashSet<&'static str>,
    /// Subscription id -> topic, from SUBSCRIBED until UNSUBSCRIBE is sent.
    subscriptions: HashMap<u64, &'static str>,
    wanted_topics: HashSet<&'static str>,
    /// INVOCATIONs received and not answered: (invocation id, caller, seq).
    invocations: Vec<(u64, u64, u64)>,
    call_seq: u64,
    publish_seq: u64,
    last_invocation_from: HashMap<u64, u64>,
    last_event_from: HashMap<u64, u64>,
}

struct CallRecord {
    procedure: &'static str,
    sent_at: u64,
    answers: u32,
    caller_left: bool,
}

struct PublishRecord {
    topic: &'static str,
    sent_at: u64,
}

/// One registration's life as the callee saw it.
struct RegistrationSpan {
    callee: u64,
    registered_at: u64,
    ended_at: Option<u64>,
}

struct Scenario {
    rng: Rng,
    cluster: Cluster,
    clients: Vec<SimClient>,
    time: u64,
    calls: HashMap<(u64, u64), CallRecord>,
    publishes: HashMap<(u64, u64), PublishRecord>,
    /// (subscriber, publisher, seq) -> EVENTs received.
    events: HashMap<(u64, u64, u64), u32>,
    /// (client, topic) -> since when it is continuously subscribed.
    subscribed_since: HashMap<(u64, &'static str), u64>,
    spans: HashMap<&'static str, Vec<RegistrationSpan>>,
}

impl Scenario {
    fn new(seed: u64, shards: usize) -> Scenario {
        Scenario {
            rng: Rng(seed),
            cluster: Cluster::new(shards, seed),
            clients: Vec::new(),
            time: 0,
            calls: HashMap::new(),
            publishes: HashMap::new(),
            events: HashMap::new(),
            subscribed_since: HashMap::new(),
            spans: HashMap::new(),
        }
    }

    fn join(&mut self) {
        let shard = self.rng.below(self.cluster.shards());
        let ser = if self.rng.chance(50) {
            Serializer::Json
        } else {
            Serializer::MsgPack
        };
        let conn = self.cluster.open(shard, ser);
        self.cluster.send(
            conn,
            &Message::Hello {
                realm: "realm1".into(),
                details: hello_details(),
            },
        );
        let id = self.clients.len() as u64 + 1;
        self.clients.push(SimClient {
            id,
            conn,
            alive: true,
            welcomed: false,
            next_request: 0,
            requests: HashMap::new(),
            registrations: HashMap::new(),
            wanted_procedures: HashSet::new(),
            subscriptions: HashMap::new(),
            wanted_topics: HashSet::new(),
            invocations: Vec::new(),
            call_seq: 0,
            publish_seq: 0,
            last_invocation_from: HashMap::new(),
            last_event_from: HashMap::new(),
        });
        self.pump();
    }

    fn request(&mut self, c: usize, request: Request) -> u64 {
        let client = &mut self.clients[c];
        client.next_request += 1;
        client.requests.insert(client.next_request, request);
        client.next_request
    }

    /// One random client operation.
    fn client_op(&mut self) {
        let alive: Vec<usize> = (0..self.clients.len())
            .filter(|&c| self.clients[c].alive && self.clients[c].welcomed)
            .collect();
        if alive.is_empty() {
            return;
        }
        let c = alive[self.rng.below(alive.len())];
        let conn = self.clients[c].conn;
        let ser = conn.ser;
        let me = self.clients[c].id;
        match self.rng.below(100) {
            0..=9 => {
                let procedure = PROCEDURES[self.rng.below(PROCEDURES.len())];
                if !self.clients[c].wanted_procedures.insert(procedure) {
                    return;
                }
                let request = self.request(c, Request::Register(procedure));
                let msg = Message::Register {
                    request,
                    options: Dict::new(),
                    procedure: procedure.into(),
                };
                self.cluster.send(conn, &msg);
            }
            10..=13 => {
                let mut owned: Vec<u64> = self.clients[c].registrations.keys().copied().collect();
                if owned.is_empty() {
                    return;
                }
                owned.sort_unstable();
                let registration = owned[self.rng.below(owned.len())];
                let procedure = self.clients[c].registrations.remove(&registration).unwrap();
                self.end_span(procedure, me);
                let request = self.request(c, Request::Unregister);
                let msg = Message::Unregister {
                    request,
                    registration,
                };
                self.cluster.send(conn, &msg);
            }
            14..=37 => {
                let procedure = PROCEDURES[self.rng.below(PROCEDURES.len())];
                self.clients[c].call_seq += 1;
                let seq = self.clients[c].call_seq;
                let request = self.request(c, Request::Call { seq });
                self.calls.insert(
                    (me, seq),
                    CallRecord {
                        procedure,
                        sent_at: self.time,
                        answers: 0,
                        caller_left: false,
                    },
                );
                let payload = args(ser, me, seq);
                let msg = Message::Call {
                    request,
                    options: Dict::new(),
                    procedure: procedure.into(),
                    payload: payload.as_payload(),
                };
                self.cluster.send(conn, &msg);
            }
            38..=55 => self.answer_one(c),
            56..=65 => {
                let topic = TOPICS[self.rng.below(TOPICS.len())];
                if !self.clients[c].wanted_topics.insert(topic) {
                    return;
                }
                let request = self.request(c, Request::Subscribe(topic));
                let msg = Message::Subscribe {
                    request,
                    options: Dict::new(),
                    topic: topic.into(),
                };
                self.cluster.send(conn, &msg);
            }
            66..=69 => {
                let mut owned: Vec<u64> = self.clients[c].subscriptions.keys().copied().collect();
                if owned.is_empty() {
                    return;
                }
                owned.sort_unstable();
                let subscription = owned[self.rng.below(owned.len())];
                let topic = self.clients[c].subscriptions.remove(&subscription).unwrap();
                self.subscribed_since.remove(&(me, topic));
                let request = self.request(c, Request::Unsubscribe);
                let msg = Message::Unsubscribe {
                    request,
                    subscription,
                };
                self.cluster.send(conn, &msg);
            }
            70..=95 => {
                let topic = TOPICS[self.rng.below(TOPICS.len())];
                self.clients[c].publish_seq += 1;
                let seq = self.clients[c].publish_seq;
                self.publishes.insert(
                    (me, seq),
                    PublishRecord {
                        topic,
                        sent_at: self.time,
                    },
                );
                self.clients[c].next_request += 1;
                let payload = args(ser, me, seq);
                let msg = Message::Publish {
                    request: self.clients[c].next_request,
                    options: Dict::new(),
                    topic: topic.into(),
                    payload: payload.as_payload(),
                };
                self.cluster.send(conn, &msg);
            }
            _ => {
                self.leave(c);
                self.join();
            }
        }
    }

    /// The client answers one of its pending INVOCATIONs (YIELD or application ERROR).
    fn answer_one(&mut self, c: usize) {
        if self.clients[c].invocations.is_empty() {
            return;
        }
        let index = self.rng.below(self.clients[c].invocations.len());
        let (invocation, caller, seq) = self.clients[c].invocations.swap_remove(index);
        let conn = self.clients[c].conn;
        let payload = args(conn.ser, caller, seq);
        let msg = if self.rng.chance(80) {
            Message::Yield {
                request: invocation,
                options: Dict::new(),
                payload: payload.as_payload(),
            }
        } else {
            Message::Error {
                request_type: wire::code::INVOCATION,
                request: invocation,
                details: Dict::new(),
                error: APP_ERROR.into(),
                payload: payload.as_payload(),
            }
        };
        self.cluster.send(conn, &msg);
    }

    fn end_span(&mut self, procedure: &'static str, callee: u64) {
        let time = self.time;
        if let Some(span) = self
            .spans
            .get_mut(procedure)
            .and_then(|spans| spans.iter_mut().rev().find(|s| s.callee == callee))
        {
            span.ended_at.get_or_insert(time);
        }
    }

    /// GOODBYE (then the transport closes) or an abrupt disconnect.
    fn leave(&mut self, c: usize) {
        let conn = self.clients[c].conn;
        let me = self.clients[c].id;
        if self.rng.chance(50) {
            let msg = Message::Goodbye {
                details: Dict::new(),
                reason: "wamp.close.close_realm".into(),
            };
            self.cluster.send(conn, &msg);
            self.pump();
        }
        self.clients[c].alive = false;
        let procedures: Vec<&'static str> = self.clients[c]
            .registrations
            .drain()
            .map(|(_, p)| p)
            .collect();
        for procedure in procedures {
            self.end_span(procedure, me);
        }
        for topic in TOPICS {
            self.subscribed_since.remove(&(me, topic));
        }
        for ((caller, _), call) in self.calls.iter_mut() {
            if *caller == me {
                call.caller_left = true;
            }
        }
        self.cluster.close(conn);
    }

    /// Lets every live client read what the routers sent it.
    fn pump(&mut self) {
        for c in 0..self.clients.len() {
            if !self.clients[c].alive {
                continue;
            }
            while let Some(frame) = self.cluster.recv(self.clients[c].conn) {
                self.time += 1;
                self.on_frame(c, &frame);
            }
        }
    }

    fn on_frame(&mut self, c: usize, frame: &[u8]) {
        let ser = self.clients[c].conn.ser;
        let me = self.clients[c].id;
        let msg = wire::decode(ser, frame).expect("router frames decode");
        match msg {
            Message::Welcome { .. } => self.clients[c].welcomed = true,
            Message::Goodbye { .. } => {}
            Message::Registered {
                request,
                registration,
            } => {
                let Some(Request::Register(procedure)) = self.clients[c].requests.remove(&request)
                else {
                    panic!("REGISTERED for an unknown request");
                };
                for span in self.spans.get(procedure).into_iter().flatten() {
                    assert!(
                        span.ended_at.is_some(),
                        "{procedure} REGISTERED to {me} while {} still holds it",
                        span.callee
                    );
                }
                self.spans
                    .entry(procedure)
                    .or_default()
                    .push(RegistrationSpan {
                        callee: me,
                        registered_at: self.time,
                        ended_at: None,
                    });
                self.clients[c]
                    .registrations
                    .insert(registration, procedure);
            }
            Message::Unregistered { request, .. } => {
                let Some(Request::Unregister) = self.clients[c].requests.remove(&request) else {
                    panic!("UNREGISTERED for an unknown request");
                };
                // Only now may this client register the procedure again (its own view).
                let held: HashSet<&'static str> =
                    self.clients[c].registrations.values().copied().collect();
                self.clients[c]
                    .wanted_procedures
                    .retain(|procedure| held.contains(procedure));
            }
            Message::Subscribed {
                request,
                subscription,
            } => {
                let Some(Request::Subscribe(topic)) = self.clients[c].requests.remove(&request)
                else {
                    panic!("SUBSCRIBED for an unknown request");
                };
                self.clients[c].subscriptions.insert(subscription, topic);
                self.subscribed_since.insert((me, topic), self.time);
            }
            Message::Unsubscribed { request, .. } => {
                let Some(Request::Unsubscribe) = self.clients[c].requests.remove(&request) else {
                    panic!("UNSUBSCRIBED for an unknown request");
                };
                let held: HashSet<&'static str> =
                    self.clients[c].subscriptions.values().copied().collect();
                self.clients[c]
                    .wanted_topics
                    .retain(|topic| held.contains(topic));
            }
            Message::Invocation {
                request,
                registration,
                payload,
                ..
            } => {
                assert!(
                    self.clients[c].registrations.contains_key(&registration),
                    "INVOCATION for registration {registration} that client {me} does not hold"
                );
                let (caller, seq) = read_args(&payload);
                let last = self.clients[c].last_invocation_from.insert(caller, seq);
                assert!(
                    last.map_or(true, |last| last < seq),
                    "INVOCATIONs from caller {caller} to callee {me} out of order: {last:?} then {seq}"
                );
                self.clients[c].invocations.push((request, caller, seq));
            }
            Message::Result {
                request, payload, ..
            } => {
                let seq = self.call_answered(c, request);
                assert_eq!(
                    read_args(&payload),
                    (me, seq),
                    "RESULT carries the call's args"
                );
            }
            Message::Error {
                request_type: wire::code::CALL,
                request,
                error,
                payload,
                ..
            } => {
                let seq = self.call_answered(c, request);
                let call = &self.calls[&(me, seq)];
                match &*error {
                    APP_ERROR => assert_eq!(read_args(&payload), (me, seq)),
                    uri::NO_SUCH_PROCEDURE => {
                        for span in self.spans.get(call.procedure).into_iter().flatten() {
                            assert!(
                                !(span.registered_at < call.sent_at
                                    && span.ended_at.map_or(true, |end| end > self.time)),
                                "call ({me}, {seq}) to {} got no_such_procedure while \
                                 callee {} held it since {} (call at {}, now {})",
                                call.procedure,
                                span.callee,
                                span.registered_at,
                                call.sent_at,
                                self.time
                            );
                        }
                    }
                    uri::CANCELED => {}
                    other => panic!("unexpected CALL error {other}"),
                }
            }
            Message::Error {
                request_type: wire::code::REGISTER,
                request,
                error,
                ..
            } => {
                assert_eq!(error, uri::PROCEDURE_ALREADY_EXISTS);
                let Some(Request::Register(procedure)) = self.clients[c].requests.remove(&request)
                else {
                    panic!("REGISTER error for an unknown request");
                };
                self.clients[c].wanted_procedures.remove(procedure);
            }
            Message::Event {
                subscription,
                payload,
                ..
            } => {
                let Some(&topic) = self.clients[c].subscriptions.get(&subscription) else {
                    panic!("EVENT for subscription {subscription} that client {me} does not hold");
                };
                let (publisher, seq) = read_args(&payload);
                let publish = &self.publishes[&(publisher, seq)];
                assert_eq!(publish.topic, topic, "EVENT under the wrong subscription");
                assert_ne!(publisher, me, "exclude_me");
                let count = self.events.entry((me, publisher, seq)).or_default();
                *count += 1;
                assert_eq!(*count, 1, "duplicate EVENT ({publisher}, {seq}) at {me}");
                let last = self.clients[c].last_event_from.insert(publisher, seq);
                assert!(
                    last.map_or(true, |last| last < seq),
                    "EVENTs from {publisher} to {me} out of order: {last:?} then {seq}"
                );
            }
            other => panic!("client {me} got unexpected {other:?}"),
        }
    }

    fn call_answered(&mut self, c: usize, request: u64) -> u64 {
        let me = self.clients[c].id;
        let Some(Request::Call { seq }) = self.clients[c].requests.remove(&request) else {
            panic!("answer to an unknown CALL request {request} at {me}");
        };
        let call = self.calls.get_mut(&(me, seq)).unwrap();
        call.answers += 1;
        assert_eq!(call.answers, 1, "second answer to call ({me}, {seq})");
        seq
    }

    /// One scheduler step: a client operation or one delivery from a random busy channel.
    fn step(&mut self) {
        self.time += 1;
        let busy = self.cluster.busy_channels();
        if busy.is_empty() || self.rng.chance(35) {
            self.client_op();
        } else {
            let (from, to) = busy[self.rng.below(busy.len())];
            self.cluster.deliver(from, to);
        }
        self.pump();
    }

    /// Delivers everything in random order, and lets callees answer all their invocations,
    /// until nothing moves.
    fn quiesce(&mut self) {
        loop {
            while !self.cluster.busy_channels().is_empty() {
                self.time += 1;
                let busy = self.cluster.busy_channels();
                let (from, to) = busy[self.rng.below(busy.len())];
                self.cluster.deliver(from, to);
                self.pump();
            }
            let waiting: Vec<usize> = (0..self.clients.len())
                .filter(|&c| self.clients[c].alive && !self.clients[c].invocations.is_empty())
                .collect();
            if waiting.is_empty() {
                return;
            }
            for c in waiting {
                while !self.clients[c].invocations.is_empty() {
                    self.answer_one(c);
                }
            }
            self.pump();
        }
    }

    /// Returns how many (publish, subscriber) pairs had to be delivered.
    fn check_delivery(&self) -> usize {
        let mut checked = 0;
        for ((caller, seq), call) in &self.calls {
            if !call.caller_left {
                assert_eq!(
                    call.answers, 1,
                    "call ({caller}, {seq}) to {} unanswered",
                    call.procedure
                );
            }
        }
        // A matching subscriber: SUBSCRIBED received before the PUBLISH was sent, and still
        // subscribed now (after everything was delivered); not the publisher (exclude_me).
        for ((publisher, seq), publish) in &self.publishes {
            for (&(subscriber, topic), &since) in &self.subscribed_since {
                if topic != publish.topic || subscriber == *publisher || since >= publish.sent_at {
                    continue;
                }
                checked += 1;
                let got = self.events.get(&(subscriber, *publisher, *seq)).copied();
                assert_eq!(
                    got,
                    Some(1),
                    "subscriber {subscriber} (since {since}) missed publish ({publisher}, {seq}) \
                     to {topic} at {}",
                    publish.sent_at
                );
            }
        }
        checked
    }

    fn everyone_leaves(&mut self) {
        for c in 0..self.clients.len() {
            if self.clients[c].alive {
                self.leave(c);
            }
        }
        self.cluster.drain();
        self.pump();
    }
}

/// What one run exercised, summed over seeds so the test shows it is not vacuous.
#[derive(Default, Debug)]
struct Coverage {
    calls: usize,
    answered: usize,
    events: usize,
    must_receive_checks: usize,
    peer_messages: u64,
}

fn run_seed(seed: u64) -> Coverage {
    let shards = 2 + (seed % 3) as usize;
    let mut sim = Scenario::new(seed, shards);
    let clients = 3 + sim.rng.below(3 * shards);
    for _ in 0..clients {
        sim.join();
    }
    let steps = 150 + sim.rng.below(250);
    for _ in 0..steps {
        sim.step();
    }
    sim.quiesce();
    let must_receive_checks = sim.check_delivery();
    let coverage = Coverage {
        calls: sim.calls.len(),
        answered: sim.calls.values().filter(|call| call.answers == 1).count(),
        events: sim.events.len(),
        must_receive_checks,
        peer_messages: sim.cluster.peer_messages,
    };
    sim.everyone_leaves();
    sim.cluster.assert_tables_empty();
    coverage
}

fn run_seeds(seeds: impl Iterator<Item = u64>) -> usize {
    let mut count = 0;
    let mut total = Coverage::default();
    for seed in seeds {
        let result = std::panic::catch_unwind(|| run_seed(seed));
        if let Ok(coverage) = &result {
            total.calls += coverage.calls;
            total.answered += coverage.answered;
            total.events += coverage.events;
            total.must_receive_checks += coverage.must_receive_checks;
            total.peer_messages += coverage.peer_messages;
        }
        if let Err(panic) = result {
            eprintln!(
                "shard_sim failed for seed {seed}; replay: SEED={seed} cargo test --test shard_sim random_interleavings"
            );
            std::panic::resume_unwind(panic);
        }
        count += 1;
    }
    eprintln!("shard_sim: {count} seeds, {total:?}");
    assert!(count == 0 || (total.answered > 0 && total.must_receive_checks > 0));
    count
}

#[test]
fn random_interleavings_keep_every_property() {
    if let Ok(seed) = std::env::var("SEED") {
        run_seeds(std::iter::once(seed.parse().expect("SEED is a u64")));
        return;
    }
    let count: u64 = std::env::var("SHARD_SIM_SEEDS").ok().map_or(2000, |count| {
        count.parse().expect("SHARD_SIM_SEEDS is a count")
    });
    assert_eq!(run_seeds(0..count), count as usize);
}

// ------------------------------------------------------------------------------------------
// Targeted scenarios
// ------------------------------------------------------------------------------------------

impl Cluster {
    fn client(&mut self, shard: usize) -> Conn {
        let conn = self.open(shard, Serializer::Json);
        self.send(
            conn,
            &Message::Hello {
                realm: "realm1".into(),
                details: hello_details(),
            },
        );
        let frame = self.recv(conn).expect("WELCOME");
        assert!(matches!(
            wire::decode(conn.ser, &frame).unwrap(),
            Message::Welcome { .. }
        ));
        conn
    }

    /// The next message to `conn`, decoded into an owned-enough summary.
    fn next(&mut self, conn: Conn) -> Received {
        let frame = self.recv(conn).expect("a message");
        Received {
            frame,
            ser: conn.ser,
        }
    }

    fn nothing_for(&mut self, conn: Conn) {
        if let Some(frame) = self.recv(conn) {
            panic!(
                "unexpected {:?}",
                wire::decode(conn.ser, &frame).unwrap().name()
            );
        }
    }

    fn register(&mut self, conn: Conn, request: u64, procedure: &str) -> u64 {
        let msg = Message::Register {
            request,
            options: Dict::new(),
            procedure: procedure.into(),
        };
        self.send(conn, &msg);
        self.drain();
        match self.next(conn).msg() {
            Message::Registered {
                request: r,
                registration,
            } if r == request => registration,
            other => panic!("expected REGISTERED, got {other:?}"),
        }
    }

    fn subscribe(&mut self, conn: Conn, request: u64, topic: &str) -> u64 {
        let msg = Message::Subscribe {
            request,
            options: Dict::new(),
            topic: topic.into(),
        };
        self.send(conn, &msg);
        self.drain();
        match self.next(conn).msg() {
            Message::Subscribed {
                request: r,
                subscription,
            } if r == request => subscription,
            other => panic!("expected SUBSCRIBED, got {other:?}"),
        }
    }

    fn call(&mut self, conn: Conn, request: u64, procedure: &str, a: u64) {
        let payload = args(conn.ser, a, request);
        let msg = Message::Call {
            request,
            options: Dict::new(),
            procedure: procedure.into(),
            payload: payload.as_payload(),
        };
        self.send(conn, &msg);
    }

    fn yield_(&mut self, conn: Conn, invocation: u64, a: u64, b: u64) {
        let payload = args(conn.ser, a, b);
        let msg = Message::Yield {
            request: invocation,
            options: Dict::new(),
            payload: payload.as_payload(),
        };
        self.send(conn, &msg);
    }

    fn invocation(&mut self, conn: Conn) -> (u64, (u64, u64)) {
        match self.next(conn).msg() {
            Message::Invocation {
                request, payload, ..
            } => (request, read_args(&payload)),
            other => panic!("expected INVOCATION, got {other:?}"),
        }
    }
}

struct Received {
    frame: Bytes,
    ser: Serializer,
}

impl Received {
    fn msg(&self) -> Message<'_> {
        wire::decode(self.ser, &self.frame).unwrap()
    }
}

/// A procedure/topic name whose owner is `owner` among `shards`.
fn uri_owned_by(owner: usize, shards: usize, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}.{i}"))
        .find(|uri| owner_shard("realm1", uri, shards) == owner)
        .unwrap()
}

#[test]
fn call_round_trip_between_shards() {
    for owner in 0..3 {
        let mut cluster = Cluster::new(3, 1);
        let procedure = uri_owned_by(owner, 3, "com.add");
        let caller = cluster.client(0);
        let callee = cluster.client(1);
        let registration = cluster.register(callee, 1, &procedure);
        cluster.call(caller, 7, &procedure, 40);
        assert_eq!(cluster.undelivered(), 1, "one Invoke, nothing else");
        cluster.drain();
        let (invocation, call_args) = cluster.invocation(callee);
        assert_eq!((invocation, call_args), (1, (40, 7)));
        cluster.yield_(callee, invocation, 42, 0);
        assert_eq!(cluster.undelivered(), 1, "one Reply");
        cluster.drain();
        match cluster.next(caller).msg() {
            Message::Result {
                request, payload, ..
            } => assert_eq!((request, read_args(&payload)), (7, (42, 0))),
            other => panic!("expected RESULT, got {other:?}"),
        }
        // The registration id is the same everywhere (it names the owner).
        assert!(registration >= 1);
        cluster.close(caller);
        cluster.close(callee);
        cluster.drain();
        cluster.assert_tables_empty();
    }
}

#[test]
fn registered_only_after_every_shard_applied() {
    for owner in 0..4 {
        let mut cluster = Cluster::new(4, 2);
        let procedure = uri_owned_by(owner, 4, "com.proc");
        let callee = cluster.client(1);
        cluster.send(
            callee,
            &Message::Register {
                request: 1,
                options: Dict::new(),
                procedure: procedure.clone().into(),
            },
        );
        // Deliver one message at a time (always the last busy channel, to vary the order); the
        // REGISTERED must not appear before every replica has the registration.
        let mut registered = false;
        loop {
            if let Some(frame) = cluster.recv(callee) {
                assert!(matches!(
                    wire::decode(callee.ser, &frame).unwrap(),
                    Message::Registered { request: 1, .. }
                ));
                for (shard, router) in cluster.routers.iter().enumerate() {
                    assert_eq!(
                        router.stats().registrations,
                        1,
                        "REGISTERED while shard {shard} has not applied it"
                    );
                }
                registered = true;
            }
            let Some(&(from, to)) = cluster.busy_channels().last() else {
                break;
            };
            cluster.deliver(from, to);
        }
        assert!(registered);
        // Then a CALL from any shard finds it.
        for shard in [0, 2, 3, 1] {
            let caller = cluster.client(shard);
            cluster.call(caller, 1, &procedure, shard as u64);
            cluster.drain();
            let (invocation, _) = cluster.invocation(callee);
            cluster.yield_(callee, invocation, 0, 0);
            cluster.drain();
            assert!(matches!(
                cluster.next(caller).msg(),
                Message::Result { request: 1, .. }
            ));
            cluster.close(caller);
        }
        cluster.close(callee);
        cluster.drain();
        cluster.assert_tables_empty();
    }
}

#[test]
fn second_register_is_refused_across_shards() {
    let mut cluster = Cluster::new(2, 3);
    let a = cluster.client(0);
    let b = cluster.client(1);
    cluster.register(a, 1, "com.once");
    cluster.send(
        b,
        &Message::Register {
            request: 1,
            options: Dict::new(),
            procedure: "com.once".into(),
        },
    );
    cluster.drain();
    match cluster.next(b).msg() {
        Message::Error { error, .. } => assert_eq!(error, uri::PROCEDURE_ALREADY_EXISTS),
        other => panic!("expected ERROR, got {other:?}"),
    }
    cluster.close(a);
    cluster.close(b);
    cluster.drain();
    cluster.assert_tables_empty();
}

#[test]
fn callee_leaving_cancels_calls_pending_on_other_shards() {
    for goodbye in [false, true] {
        let mut cluster = Cluster::new(3, 4);
        let callee = cluster.client(2);
        cluster.register(callee, 1, "com.slow");
        let callers = [cluster.client(0), cluster.client(1), cluster.client(2)];
        for (i, &caller) in callers.iter().enumerate() {
            cluster.call(caller, 1, "com.slow", i as u64);
        }
        cluster.drain();
        for _ in 0..3 {
            cluster.invocation(callee);
        }
        if goodbye {
            cluster.send(
                callee,
                &Message::Goodbye {
                    details: Dict::new(),
                    reason: "wamp.close.close_realm".into(),
                },
            );
        }
        cluster.close(callee);
        cluster.drain();
        for caller in callers {
            match cluster.next(caller).msg() {
                Message::Error { request, error, .. } => {
                    assert_eq!((request, &*error), (1, uri::CANCELED))
                }
                other => panic!("expected ERROR canceled, got {other:?}"),
            }
            // And the procedure is gone everywhere.
            cluster.call(caller, 2, "com.slow", 0);
            cluster.drain();
            match cluster.next(caller).msg() {
                Message::Error { error, .. } => assert_eq!(error, uri::NO_SUCH_PROCEDURE),
                other => panic!("expected ERROR no_such_procedure, got {other:?}"),
            }
            cluster.close(caller);
        }
        cluster.drain();
        cluster.assert_tables_empty();
    }
}

#[test]
fn caller_leaving_makes_the_late_yield_vanish() {
    let mut cluster = Cluster::new(2, 5);
    let callee = cluster.client(1);
    cluster.register(callee, 1, "com.slow");
    let caller = cluster.client(0);
    cluster.call(caller, 1, "com.slow", 1);
    cluster.drain();
    let (invocation, _) = cluster.invocation(callee);
    cluster.close(caller);
    cluster.drain();
    assert_eq!(
        cluster.routers[0].stats().pending_calls,
        0,
        "caller side forgot the call"
    );
    cluster.yield_(callee, invocation, 0, 0);
    cluster.drain();
    assert_eq!(cluster.routers[0].stats().late_replies_discarded, 1);
    assert_eq!(cluster.routers[1].stats().protocol_violations, 0);
    cluster.nothing_for(callee);
    cluster.close(callee);
    cluster.drain();
    cluster.assert_tables_empty();
}

#[test]
fn goodbye_with_calls_in_flight_both_ways() {
    let mut cluster = Cluster::new(2, 6);
    let a = cluster.client(0);
    let b = cluster.client(1);
    cluster.register(a, 1, "com.a");
    cluster.register(b, 1, "com.b");
    // Each calls the other; the Invokes are still in the channels when `a` says GOODBYE.
    cluster.call(a, 2, "com.b", 1);
    cluster.call(b, 2, "com.a", 2);
    cluster.send(
        a,
        &Message::Goodbye {
            details: Dict::new(),
            reason: "wamp.close.close_realm".into(),
        },
    );
    assert!(matches!(cluster.next(a).msg(), Message::Goodbye { .. }));
    cluster.close(a);
    cluster.drain();
    // b's call to the departed a is answered (no_such_procedure: a was gone when it arrived);
    // a's call reached b, whose YIELD is then discarded on a's shard.
    match cluster.next(b).msg() {
        Message::Invocation { request, .. } => {
            match cluster.next(b).msg() {
                Message::Error {
                    request: 2, error, ..
                } => {
                    assert_eq!(error, uri::NO_SUCH_PROCEDURE)
                }
                other => panic!("expected ERROR, got {other:?}"),
            }
            cluster.yield_(b, request, 0, 0);
        }
        other => panic!("expected INVOCATION, got {other:?}"),
    }
    cluster.drain();
    cluster.nothing_for(b);
    cluster.close(b);
    cluster.drain();
    cluster.assert_tables_empty();
}

#[test]
fn one_event_per_subscriber_on_every_shard_with_one_subscription_id() {
    let mut cluster = Cluster::new(3, 7);
    let publisher = cluster.client(0);
    let subscribers = [
        cluster.client(0),
        cluster.client(1),
        cluster.client(2),
        cluster.client(2),
    ];
    let ids: Vec<u64> = subscribers
        .iter()
        .map(|&s| cluster.subscribe(s, 1, "com.news"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "one subscription id: {ids:?}"
    );
    let payload = args(publisher.ser, 9, 9);
    cluster.send(
        publisher,
        &Message::Publish {
            request: 1,
            options: Dict::new(),
            topic: "com.news".into(),
            payload: payload.as_payload(),
        },
    );
    assert_eq!(
        cluster.undelivered(),
        2,
        "one Publish per other shard with subscribers"
    );
    cluster.drain();
    for subscriber in subscribers {
        match cluster.next(subscriber).msg() {
            Message::Event {
                subscription,
                payload,
                ..
            } => assert_eq!((subscription, read_args(&payload)), (ids[0], (9, 9))),
            other => panic!("expected EVENT, got {other:?}"),
        }
        cluster.nothing_for(subscriber);
    }
    cluster.nothing_for(publisher);
    // The subscription disappears everywhere with its last subscriber.
    for subscriber in subscribers {
        cluster.close(subscriber);
    }
    cluster.drain();
    for router in &cluster.routers {
        assert_eq!(router.stats().subscriptions, 0);
    }
    cluster.close(publisher);
    cluster.drain();
    cluster.assert_tables_empty();
}

#[test]
fn subscribed_only_after_every_shard_knows() {
    let mut cluster = Cluster::new(4, 8);
    let subscriber = cluster.client(3);
    cluster.send(
        subscriber,
        &Message::Subscribe {
            request: 1,
            options: Dict::new(),
            topic: "com.t".into(),
        },
    );
    loop {
        if cluster.recv(subscriber).is_some() {
            for router in &cluster.routers {
                assert_eq!(router.stats().subscriptions, 1);
            }
            break;
        }
        let (from, to) = cluster.busy_channels()[0];
        cluster.deliver(from, to);
    }
    // A second local subscriber needs no cross-shard traffic.
    cluster.drain();
    let second = cluster.client(3);
    cluster.send(
        second,
        &Message::Subscribe {
            request: 1,
            options: Dict::new(),
            topic: "com.t".into(),
        },
    );
    assert_eq!(cluster.undelivered(), 0);
    assert!(matches!(
        cluster.next(second).msg(),
        Message::Subscribed { .. }
    ));
    cluster.close(subscriber);
    cluster.close(second);
    cluster.drain();
    cluster.assert_tables_empty();
}

#[test]
fn peer_messages_after_shutdown_are_harmless() {
    let mut cluster = Cluster::new(2, 9);
    let callee = cluster.client(1);
    cluster.register(callee, 1, "com.x");
    let caller = cluster.client(0);
    let subscriber = cluster.client(0);
    cluster.subscribe(subscriber, 1, "com.t");
    cluster.call(caller, 1, "com.x", 1);
    // Shard 1 shuts down with the Invoke still in flight.
    cluster.routers[1].shutdown(0, &mut cluster.out);
    cluster.absorb(1);
    cluster.close(callee);
    cluster.drain();
    match cluster.next(caller).msg() {
        Message::Error { error, .. } => assert_eq!(error, uri::NO_SUCH_PROCEDURE),
        other => panic!("expected ERROR, got {other:?}"),
    }
    cluster.routers[0].shutdown(0, &mut cluster.out);
    cluster.absorb(0);
    cluster.close(caller);
    cluster.close(subscriber);
    cluster.drain();
    cluster.assert_tables_empty();
}

#[test]
fn single_shard_routers_never_talk_to_peers() {
    let mut cluster = Cluster::new(1, 10);
    let a = cluster.client(0);
    let b = cluster.client(0);
    assert_eq!(
        cluster.register(a, 1, "com.p"),
        1,
        "ids as before: 1, 2, ..."
    );
    assert_eq!(cluster.subscribe(b, 1, "com.t"), 2);
    cluster.call(b, 2, "com.p", 0);
    let (invocation, _) = cluster.invocation(a);
    cluster.yield_(a, invocation, 0, 0);
    assert!(matches!(cluster.next(b).msg(), Message::Result { .. }));
    assert_eq!(cluster.peer_messages, 0);
    cluster.close(a);
    cluster.close(b);
    cluster.assert_tables_empty();
}
