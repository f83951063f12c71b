//! Deterministic simulation of the multi-shard router: N `Router` shards in one process, one
//! FIFO queue per ordered pair of shards (what the runtime's channel mesh guarantees), and a
//! seeded scheduler that interleaves client operations with deliveries from randomly chosen
//! queues. Random scenarios over thousands of seeds check the dealer/broker properties across
//! shards, shared registrations included (callees on different shards joining, leaving and
//! unregistering under the policies `single`, `roundrobin`, `random`, `first`, `last`), and the
//! advanced RPC features: prefix and wildcard registrations beside exact ones, progressive
//! results, streamed calls, timeouts, cancels in every mode with INTERRUPT, and re-routing on
//! `wamp.error.unavailable` (one final answer per call, order per caller and callee, nothing
//! left pending or armed at the end); and on the broker side exact and pattern subscriptions,
//! retained events, and event history: the configured realm keeps the history of an exact topic,
//! a prefix and a wildcard pattern (two of them bounded so that the oldest events go), and
//! `wamp.subscription.get_events`, asked mid-run with filters and by newcomers once everything
//! settled, must answer exactly the PUBLISHes its subscription covers (none published with
//! session-id lists), the newest `limit` of each when evicted, each publisher's in its order,
//! under the reserved subscription id every shard hands out. Targeted scenarios pin the
//! cross-shard cases one by one.
//!
//! Replay a failing seed with `SEED=<n> cargo test --test shard_sim`; soak with
//! `SHARD_SIM_SEEDS=<count> cargo test --release --test shard_sim`.

use std::collections::{BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use wampring::router::{
    owner_shard, uri, HistoryConfig, MatchPolicy, RealmConfig, RouterConfig, HISTORY_UNAVAILABLE,
};
use wampring::wire::{self, Dict, Message, OwnedPayload, Serializer, Value};

// The cluster (N routers and the channel mesh between them) is the shared sans-IO harness.
mod sansio;

use sansio::{Cluster, Conn};

/// The realm of the seeds that run on an auto-created realm.
const AUTO_REALM: &str = "com.sim.auto";

fn hello_details() -> Dict<'static> {
    hello_announcing(&[])
}

/// HELLO.Details with all four roles and `callee_features` announced by the callee role.
fn hello_announcing(callee_features: &[&'static str]) -> Dict<'static> {
    hello_announcing_both(callee_features, false)
}

/// HELLO.Details as `hello_announcing`, the caller role announcing progressive_call_invocations
/// when `streams_calls`.
fn hello_announcing_both(callee_features: &[&'static str], streams_calls: bool) -> Dict<'static> {
    let mut roles = Dict::new();
    for role in ["publisher", "subscriber"] {
        roles.insert(role, Dict::new());
    }
    let mut caller = Dict::new();
    if streams_calls {
        let mut features = Dict::new();
        features.insert("progressive_call_invocations", true);
        caller.insert("features", features);
    }
    roles.insert("caller", caller);
    let mut features = Dict::new();
    for &feature in callee_features {
        features.insert(feature, true);
    }
    let mut callee = Dict::new();
    callee.insert("features", features);
    roles.insert("callee", callee);
    let mut details = Dict::new();
    details.insert("roles", roles);
    details
}

fn opts_get_retained() -> Dict<'static> {
    let mut options = Dict::new();
    options.insert("get_retained", true);
    options
}

fn progress_options() -> Dict<'static> {
    let mut options = Dict::new();
    options.insert("progress", true);
    options
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

/// What clients register: four exact procedures, a prefix and a wildcard pattern.
const PROCEDURES: [&str; 6] = ["com.p0", "com.p1", "com.p2", "com.p3", "com.q", "com..w"];
/// What callers call: the exact procedures, one URI only the prefix matches, one only the
/// wildcard matches, and one both match (the prefix wins while it is registered).
const CALLED: [&str; 7] = [
    "com.p0", "com.p1", "com.p2", "com.p3", "com.q.a", "com.z.w", "com.q.w",
];

/// REGISTER.Options.match of a registered URI.
fn match_of(procedure: &str) -> &'static str {
    match procedure {
        "com.q" => "prefix",
        "com..w" => "wildcard",
        _ => "exact",
    }
}

/// The registrations that can serve a CALL of `called`, in precedence order.
fn serving(called: &str) -> &'static [&'static str] {
    match called {
        "com.q.a" => &["com.q"],
        "com.z.w" => &["com..w"],
        "com.q.w" => &["com.q", "com..w"],
        "com.p0" => &["com.p0"],
        "com.p1" => &["com.p1"],
        "com.p2" => &["com.p2"],
        _ => &["com.p3"],
    }
}
const TOPICS: [&str; 4] = ["com.t0", "com.t1", "com.t2", "com.t3"];

/// What a client may subscribe to: (URI, match policy). Exact topics, patterns that cover
/// several topics, and patterns that share their URI with an exact subscription (a separate
/// subscription, so one PUBLISH reaches one session once per matching subscription).
const SUBS: [(&str, &str); 8] = [
    ("com.t0", "exact"),
    ("com.t1", "exact"),
    ("com.t2", "exact"),
    ("com.t3", "exact"),
    ("com.t", "prefix"),
    ("com.t1", "prefix"),
    ("com.", "wildcard"),
    ("com.t2", "wildcard"),
];

/// Index into `SUBS`.
type SubKey = usize;

/// `EVENT.Details.topic` names the published topic for a pattern subscription and is absent
/// for an exact one (digest §9.3), live or retained.
fn check_details_topic(sub: SubKey, details: &Dict<'_>, topic: &str) {
    let named = details.get_str("topic");
    if SUBS[sub].1 == "exact" {
        assert_eq!(named, None, "Details.topic for an exact subscription");
    } else {
        assert_eq!(named, Some(topic), "Details.topic of a pattern EVENT");
    }
}

/// Whether subscription `SUBS[sub]` covers a PUBLISH to `topic` (digest §9.3).
fn sub_matches(sub: SubKey, topic: &str) -> bool {
    let (uri, matching) = SUBS[sub];
    match matching {
        "exact" => uri == topic,
        "prefix" => topic.starts_with(uri),
        _ => {
            let (pattern, parts): (Vec<&str>, Vec<&str>) =
                (uri.split('.').collect(), topic.split('.').collect());
            pattern.len() == parts.len()
                && pattern
                    .iter()
                    .zip(&parts)
                    .all(|(want, part)| want.is_empty() || want == part)
        }
    }
}
const APP_ERROR: &str = "com.app.error";

/// The event history `realm1` keeps (`[[realm.history]]`): (index into `SUBS`, limit). An exact
/// topic bounded to 5 events and the wildcard `com.` (every topic) bounded to 8, so that the
/// oldest go in longer runs, and the prefix `com.t` (every topic too) with room for all.
const HISTORY: [(SubKey, usize); 3] = [(1, 5), (4, 100), (6, 8)];

/// Role of the `exclude_authrole` list some PUBLISHes carry: nobody has it, so it changes no
/// delivery, and history keeps such events (only session-id lists make it drop one).
const NOBODY_ROLE: &str = "com.sim.nobody";

fn history_config() -> Vec<HistoryConfig> {
    HISTORY
        .iter()
        .map(|&(sub, limit)| HistoryConfig {
            uri: SUBS[sub].0.into(),
            matching: match SUBS[sub].1 {
                "exact" => MatchPolicy::Exact,
                "prefix" => MatchPolicy::Prefix,
                _ => MatchPolicy::Wildcard,
            },
            limit,
            max_bytes: 1 << 20,
        })
        .collect()
}

/// `timestamp` of a history event published at `ms` on the cluster clock (the routers' wall
/// clock starts at the Unix epoch here): RFC 3339 with milliseconds.
fn rfc3339(ms: u64) -> String {
    assert!(
        ms < 27 * 86_400_000,
        "the simulated clock stays in January 1970"
    );
    let (day, rest) = (ms / 86_400_000, ms % 86_400_000);
    format!(
        "1970-01-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        day + 1,
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000
    )
}

/// One filter of a `get_events` call (besides `reverse` and `limit`), naming an event of an
/// earlier answer by index where it needs one.
#[derive(Clone, Copy, Debug)]
enum HistoryFilter {
    None,
    Topic(&'static str),
    /// (index in the full history, its publication id).
    FromPublication(usize, u64),
    AfterPublication(usize, u64),
    BeforePublication(usize, u64),
    UntilPublication(usize, u64),
    /// A publication id no history holds: `invalid_argument`.
    UnknownPublication,
    FromTime(u64),
    AfterTime(u64),
    BeforeTime(u64),
    UntilTime(u64),
}

/// A `get_events` call: which history entry (index into `HISTORY`) and how.
#[derive(Clone, Copy, Debug)]
struct HistoryAsk {
    entry: usize,
    subscription: u64,
    reverse: bool,
    limit: Option<usize>,
    /// The limit is positional (Crossbar.io's form: the newest first).
    positional: bool,
    filter: HistoryFilter,
    /// Asked by a newcomer once everything settled (judged by `check_history`).
    settled: bool,
}

/// One event of a `get_events` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HistoryEvent {
    subscription: u64,
    publication: u64,
    topic: String,
    timestamp: String,
    details_topic: Option<String>,
    /// The `[publisher, seq]` arguments of its PUBLISH.
    publisher: u64,
    seq: u64,
}

/// The invoke policy a first REGISTER of `procedure` asks for: p0 is always `single`, p1
/// always `roundrobin` (joins always match), p2 and p3 mix policies so that joins are refused
/// for a mismatch too.
fn policy_for(rng: &mut Rng, procedure: &str) -> &'static str {
    match procedure {
        "com.p0" => "single",
        "com.p1" => "roundrobin",
        "com.p2" | "com..w" => ["roundrobin", "first"][rng.below(2)],
        _ => ["last", "random", "single"][rng.below(3)],
    }
}

enum Request {
    Register {
        procedure: &'static str,
        policy: &'static str,
        disclose: bool,
        /// Sent while the client already held the procedure: must be refused.
        duplicate: bool,
        sent_at: u64,
        /// Index in `Scenario::fluxes` (none for a duplicate, which can never be applied).
        flux: Option<usize>,
    },
    Unregister {
        flux: usize,
    },
    /// With SUBSCRIBE.Options.get_retained.
    Subscribe(SubKey, bool),
    Unsubscribe,
    Call {
        seq: u64,
    },
    /// `wamp.subscription.get_events`.
    GetEvents(HistoryAsk),
}

struct SimClient {
    /// Unique over the run (payloads carry it).
    id: u64,
    conn: Conn,
    alive: bool,
    /// Said GOODBYE or is about to disconnect (the routers may already act on it).
    leaving: bool,
    welcomed: bool,
    next_request: u64,
    requests: HashMap<u64, Request>,
    /// WAMP session id, from WELCOME.
    session_id: u64,
    /// Registration id -> what was registered, from REGISTERED until UNREGISTER is sent.
    registrations: HashMap<u64, Held>,
    wanted_procedures: HashSet<&'static str>,
    /// Subscription id -> what was subscribed, from SUBSCRIBED until UNSUBSCRIBE is sent.
    subscriptions: HashMap<u64, SubKey>,
    wanted_topics: HashSet<SubKey>,
    /// INVOCATIONs received and not answered.
    invocations: Vec<Invocation>,
    /// INVOCATION ids this client answered or gave up: an INTERRUPT may still arrive for one
    /// (it crossed the answer).
    finished_invocations: HashSet<u64>,
    /// The callee features this client announced: it takes INTERRUPT, it streams results, it
    /// takes streamed calls (announced with call_canceling, as the spec wants).
    cancels: bool,
    streams: bool,
    takes_chunks: bool,
    /// It announced progressive_call_invocations as a caller.
    sends_chunks: bool,
    /// Its streamed calls whose last chunk is not sent yet: (request id, seq, chunks sent).
    open_streams: Vec<(u64, u64, u32)>,
    call_seq: u64,
    publish_seq: u64,
    last_invocation_from: HashMap<u64, u64>,
    last_event_from: HashMap<u64, u64>,
    /// Per subscription since its SUBSCRIBED: the topics of live EVENTs received (a retained
    /// event of such a topic must not follow), and of retained ones (one each), when it asked
    /// for retained events.
    live_topics: HashMap<u64, HashSet<&'static str>>,
    retained_topics: HashMap<u64, HashSet<&'static str>>,
}

/// An INVOCATION a callee has not answered (finally) yet.
#[derive(Copy, Clone)]
struct Invocation {
    id: u64,
    caller: u64,
    seq: u64,
    /// INVOCATION.Details.receive_progress: the callee may send progressive results.
    receive_progress: bool,
    progress_sent: u32,
    /// Chunks of a streamed call received so far, and whether more are announced.
    chunks: u32,
    more_chunks: bool,
}

/// One registration as its callee holds it.
#[derive(Copy, Clone)]
struct Held {
    procedure: &'static str,
    policy: &'static str,
    disclose: bool,
}

/// A time window in which the replicas may disagree about a procedure's callees because of one
/// client: from its REGISTER until REGISTERED (or the refusal), from its UNREGISTER until
/// UNREGISTERED, from its leave until the channels were next all empty. A CALL racing with
/// such a window may pick a callee that is not (or no longer) invocable and get
/// `no_such_procedure`; outside them it must not.
struct Flux {
    procedure: &'static str,
    client: u64,
    start: u64,
    end: Option<u64>,
    /// False for a REGISTER that was refused (never applied anywhere).
    applied: bool,
}

struct CallRecord {
    procedure: &'static str,
    sent_at: u64,
    /// Final answers (RESULT without progress, or ERROR).
    answers: u32,
    caller_left: bool,
    receive_progress: bool,
    /// CALL.Options.timeout was set.
    timeout: bool,
    /// The caller sent CANCEL.
    canceled: bool,
    /// The callee it was invoked on (client id), once its INVOCATION arrived.
    callee: Option<u64>,
    /// Progressive RESULTs received.
    progress: u32,
    /// A callee answered `wamp.error.unavailable`: the dealer may have sent it to another
    /// callee, after later calls of the same caller.
    rerouted: bool,
    /// Sent as a stream of chunks (progressive_call_invocations).
    streamed: bool,
}

struct PublishRecord {
    topic: &'static str,
    sent_at: u64,
    /// PUBLISH.Options.retain.
    retain: bool,
    /// Published with a session-id list (`exclude`): no history keeps it.
    session_list: bool,
    /// The cluster clock when it was published (its history timestamp).
    at_ms: u64,
}

/// One registration's life as the callee saw it.
struct RegistrationSpan {
    callee: u64,
    registration: u64,
    policy: &'static str,
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
    /// (subscriber, publisher, seq, subscription) -> EVENTs received.
    events: HashMap<(u64, u64, u64, SubKey), u32>,
    /// (client, subscription) -> since when it is continuously subscribed.
    subscribed_since: HashMap<(u64, SubKey), u64>,
    spans: HashMap<&'static str, Vec<RegistrationSpan>>,
    fluxes: Vec<Flux>,
    /// Checked once every flux has ended: (caller, seq, answered at) of calls answered
    /// `no_such_procedure`, and (client, procedure, sent at, refused at) of refused REGISTERs.
    no_such_procedure: Vec<(u64, u64, u64)>,
    refusals: Vec<(u64, &'static str, u64, u64)>,
    /// REGISTERED under an id another live client already held (shared joins).
    shared_joins: usize,
    /// What the advanced RPC features did in this run.
    rpc: RpcCounts,
    /// EVENTs received under prefix or wildcard subscriptions.
    pattern_events: usize,
    /// Retained EVENTs received: (subscriber, topic, publisher, seq).
    retained_events: Vec<(u64, &'static str, u64, u64)>,
    /// The realm every client joins: the configured `realm1`, or (one seed in three) a realm
    /// the first HELLO creates, which each shard removes when nothing of it is left there and
    /// re-creates when it is needed again, while the scheduler moves time on.
    realm: &'static str,
    /// The subscription id of each `HISTORY` entry, from the first SUBSCRIBED to it in
    /// `realm1` (reserved from the start: every later SUBSCRIBED to it must name it too).
    history_ids: [Option<u64>; HISTORY.len()],
    /// Publication id of (publisher, seq), as EVENTs and history answers named it.
    publication_ids: HashMap<(u64, u64), u64>,
    /// Answers to the `get_events` calls of `check_history`, in the order they arrived.
    settled_answers: Vec<(HistoryAsk, Result<Vec<HistoryEvent>, String>)>,
    /// What event history did in this run.
    history: HistoryCounts,
}

/// What event history did in one run, counted by the clients and the final check.
#[derive(Default, Debug, Clone, Copy)]
struct HistoryCounts {
    /// PUBLISHes with a session-id list (kept by no history).
    session_lists: usize,
    /// Mid-run `get_events` answers, and the events in them.
    midrun_answers: usize,
    midrun_events: usize,
    /// Events the settled check found in full histories, and the histories that had evicted.
    settled_events: usize,
    evicted_histories: usize,
    /// Filtered `get_events` answers compared with the filter applied to the full history.
    filtered: usize,
    /// `get_events` refused `history_unavailable` (subscriptions of an auto-created realm).
    unavailable: usize,
}

impl HistoryCounts {
    fn add(&mut self, other: &HistoryCounts) {
        self.session_lists += other.session_lists;
        self.midrun_answers += other.midrun_answers;
        self.midrun_events += other.midrun_events;
        self.settled_events += other.settled_events;
        self.evicted_histories += other.evicted_histories;
        self.filtered += other.filtered;
        self.unavailable += other.unavailable;
    }
}

impl Scenario {
    fn new(seed: u64, shards: usize) -> Scenario {
        let auto_realm = seed % 3 == 0;
        let mut realm1 = RealmConfig::new("realm1");
        realm1.history = history_config();
        let config = RouterConfig {
            realms: vec![realm1],
            auto_create_realms: auto_realm,
            ..RouterConfig::default()
        };
        Scenario {
            rng: Rng(seed),
            cluster: Cluster::with_config(shards, seed, config),
            realm: if auto_realm { AUTO_REALM } else { "realm1" },
            clients: Vec::new(),
            time: 0,
            calls: HashMap::new(),
            publishes: HashMap::new(),
            events: HashMap::new(),
            subscribed_since: HashMap::new(),
            spans: HashMap::new(),
            fluxes: Vec::new(),
            no_such_procedure: Vec::new(),
            refusals: Vec::new(),
            shared_joins: 0,
            rpc: RpcCounts::default(),
            pattern_events: 0,
            retained_events: Vec::new(),
            history_ids: [None; HISTORY.len()],
            publication_ids: HashMap::new(),
            settled_answers: Vec::new(),
            history: HistoryCounts::default(),
        }
    }

    fn join(&mut self) {
        let shard = self.rng.below(self.cluster.shards());
        self.join_at(shard);
    }

    /// A new client on `shard` sends HELLO (and is welcomed at once).
    fn join_at(&mut self, shard: usize) {
        let ser = if self.rng.chance(50) {
            Serializer::Json
        } else {
            Serializer::MsgPack
        };
        let conn = self.cluster.open(shard, ser);
        let (cancels, streams) = (self.rng.chance(60), self.rng.chance(60));
        let mut features = Vec::new();
        if cancels {
            features.push("call_canceling");
        }
        if streams {
            features.push("progressive_call_results");
        }
        let takes_chunks = self.rng.chance(80);
        if takes_chunks {
            features.push("progressive_call_invocations");
        }
        let sends_chunks = self.rng.chance(50);
        self.cluster.send(
            conn,
            &Message::Hello {
                realm: self.realm.into(),
                details: hello_announcing_both(&features, sends_chunks),
            },
        );
        let id = self.clients.len() as u64 + 1;
        self.clients.push(SimClient {
            id,
            conn,
            alive: true,
            leaving: false,
            welcomed: false,
            session_id: 0,
            next_request: 0,
            requests: HashMap::new(),
            registrations: HashMap::new(),
            wanted_procedures: HashSet::new(),
            subscriptions: HashMap::new(),
            wanted_topics: HashSet::new(),
            invocations: Vec::new(),
            finished_invocations: HashSet::new(),
            cancels,
            streams,
            takes_chunks: takes_chunks && cancels,
            sends_chunks,
            open_streams: Vec::new(),
            call_seq: 0,
            publish_seq: 0,
            last_invocation_from: HashMap::new(),
            last_event_from: HashMap::new(),
            live_topics: HashMap::new(),
            retained_topics: HashMap::new(),
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
                let held = self.clients[c]
                    .registrations
                    .values()
                    .find(|held| held.procedure == procedure)
                    .copied();
                let duplicate = !self.clients[c].wanted_procedures.insert(procedure);
                if duplicate && (held.is_none() || !self.rng.chance(30)) {
                    // Only a REGISTER of a procedure the client holds is certain to be refused
                    // (one in flight might still be refused itself).
                    return;
                }
                let policy = match held {
                    Some(held) => held.policy,
                    None => policy_for(&mut self.rng, procedure),
                };
                let disclose = self.rng.chance(30);
                let matching = match_of(procedure);
                let flux = (!duplicate).then(|| {
                    self.fluxes.push(Flux {
                        procedure,
                        client: me,
                        start: self.time,
                        end: None,
                        applied: true,
                    });
                    self.fluxes.len() - 1
                });
                let request = self.request(
                    c,
                    Request::Register {
                        procedure,
                        policy,
                        disclose,
                        duplicate,
                        sent_at: self.time,
                        flux,
                    },
                );
                let mut options = Dict::new();
                if policy != "single" || self.rng.chance(50) {
                    options.insert("invoke", Value::Str(policy.into()));
                }
                if disclose {
                    options.insert("disclose_caller", Value::Bool(true));
                }
                if matching != "exact" {
                    options.insert("match", matching);
                }
                let msg = Message::Register {
                    request,
                    options,
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
                let procedure = self.clients[c]
                    .registrations
                    .remove(&registration)
                    .unwrap()
                    .procedure;
                self.end_span(procedure, me);
                self.fluxes.push(Flux {
                    procedure,
                    client: me,
                    start: self.time,
                    end: None,
                    applied: true,
                });
                let flux = self.fluxes.len() - 1;
                let request = self.request(c, Request::Unregister { flux });
                let msg = Message::Unregister {
                    request,
                    registration,
                };
                self.cluster.send(conn, &msg);
            }
            14..=37 => {
                let procedure = CALLED[self.rng.below(CALLED.len())];
                self.clients[c].call_seq += 1;
                let seq = self.clients[c].call_seq;
                let request = self.request(c, Request::Call { seq });
                let receive_progress = self.rng.chance(30);
                let timeout = self
                    .rng
                    .chance(25)
                    .then(|| 200 + self.rng.below(2300) as u64);
                self.calls.insert(
                    (me, seq),
                    CallRecord {
                        procedure,
                        sent_at: self.time,
                        answers: 0,
                        caller_left: false,
                        receive_progress,
                        timeout: timeout.is_some(),
                        canceled: false,
                        callee: None,
                        progress: 0,
                        rerouted: false,
                        streamed: false,
                    },
                );
                let mut options = Dict::new();
                if receive_progress {
                    options.insert("receive_progress", true);
                }
                if self.clients[c].sends_chunks && self.rng.chance(25) {
                    options.insert("progress", true);
                    self.clients[c].open_streams.push((request, seq, 1));
                    self.calls.get_mut(&(me, seq)).unwrap().streamed = true;
                    self.rpc.streams_started += 1;
                }
                if let Some(timeout) = timeout {
                    options.insert("timeout", timeout);
                }
                let payload = args(ser, me, seq);
                let msg = Message::Call {
                    request,
                    options,
                    procedure: procedure.into(),
                    payload: payload.as_payload(),
                };
                self.cluster.send(conn, &msg);
            }
            38..=50 => self.answer_one(c),
            51..=53 => self.cancel_one(c),
            54..=57 => self.next_chunk(c),
            58..=65 => {
                let sub = self.rng.below(SUBS.len());
                if !self.clients[c].wanted_topics.insert(sub) {
                    return;
                }
                let get_retained = self.rng.chance(40);
                let request = self.request(c, Request::Subscribe(sub, get_retained));
                let (topic, matching) = SUBS[sub];
                let mut options = Dict::new();
                if matching != "exact" || self.rng.chance(20) {
                    options.insert("match", matching);
                }
                if get_retained {
                    options.insert("get_retained", true);
                }
                let msg = Message::Subscribe {
                    request,
                    options,
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
            70..=93 => {
                let topic = TOPICS[self.rng.below(TOPICS.len())];
                self.clients[c].publish_seq += 1;
                let seq = self.clients[c].publish_seq;
                let retain = self.rng.chance(25);
                // Lists that change no delivery: `exclude` of the publisher itself (excluded
                // anyway), which no history may keep, or a role nobody has, which it keeps.
                let list = if retain { 9 } else { self.rng.below(10) };
                let session_list = list == 0;
                self.history.session_lists += usize::from(session_list);
                self.publishes.insert(
                    (me, seq),
                    PublishRecord {
                        topic,
                        sent_at: self.time,
                        retain,
                        session_list,
                        at_ms: self.cluster.now,
                    },
                );
                self.clients[c].next_request += 1;
                let payload = args(ser, me, seq);
                let mut options = Dict::new();
                if retain {
                    options.insert("retain", true);
                }
                if session_list {
                    let own = Value::UInt(self.clients[c].session_id);
                    options.insert("exclude", Value::List(vec![own]));
                } else if list == 1 {
                    let role = Value::Str(NOBODY_ROLE.into());
                    options.insert("exclude_authrole", Value::List(vec![role]));
                }
                let msg = Message::Publish {
                    request: self.clients[c].next_request,
                    options,
                    topic: topic.into(),
                    payload: payload.as_payload(),
                };
                self.cluster.send(conn, &msg);
            }
            94..=95 => self.ask_history_midrun(c),
            _ => {
                self.leave(c);
                self.join();
            }
        }
    }

    /// Client `c` asks the history of an entry whose id it saw (realm1 only), newest first or
    /// not, limited or not: `check_history_answer` judges what holds at any time.
    fn ask_history_midrun(&mut self, c: usize) {
        let known: Vec<(usize, u64)> = (0..HISTORY.len())
            .filter_map(|entry| self.history_ids[entry].map(|id| (entry, id)))
            .collect();
        if self.realm != "realm1" || known.is_empty() {
            return;
        }
        let (entry, subscription) = known[self.rng.below(known.len())];
        let limit = self.rng.chance(60).then(|| 1 + self.rng.below(6));
        let ask = HistoryAsk {
            entry,
            subscription,
            reverse: self.rng.chance(50),
            limit,
            positional: limit.is_some() && self.rng.chance(30),
            filter: HistoryFilter::None,
            settled: false,
        };
        self.send_get_events(c, ask);
    }

    /// CALL `wamp.subscription.get_events` as `ask` says.
    fn send_get_events(&mut self, c: usize, ask: HistoryAsk) {
        let conn = self.clients[c].conn;
        let request = self.request(c, Request::GetEvents(ask));
        let mut arguments = vec![Value::UInt(ask.subscription)];
        let mut kwargs = Dict::new();
        match ask.limit {
            Some(limit) if ask.positional => arguments.push(Value::UInt(limit as u64)),
            Some(limit) => kwargs.insert("limit", Value::UInt(limit as u64)),
            None => {}
        }
        if ask.reverse && !ask.positional {
            kwargs.insert("reverse", true);
        }
        match ask.filter {
            HistoryFilter::None => {}
            HistoryFilter::Topic(topic) => kwargs.insert("topic", topic),
            HistoryFilter::FromPublication(_, id) => kwargs.insert("from_publication", id),
            HistoryFilter::AfterPublication(_, id) => kwargs.insert("after_publication", id),
            HistoryFilter::BeforePublication(_, id) => kwargs.insert("before_publication", id),
            HistoryFilter::UntilPublication(_, id) => kwargs.insert("until_publication", id),
            HistoryFilter::UnknownPublication => kwargs.insert("after_publication", 1u64),
            HistoryFilter::FromTime(ms) => kwargs.insert("from_time", rfc3339(ms)),
            HistoryFilter::AfterTime(ms) => kwargs.insert("after_time", rfc3339(ms)),
            HistoryFilter::BeforeTime(ms) => kwargs.insert("before_time", rfc3339(ms)),
            HistoryFilter::UntilTime(ms) => kwargs.insert("until_time", rfc3339(ms)),
        }
        let payload = wire::payload_from_args(
            conn.ser,
            &arguments,
            (!kwargs.is_empty()).then_some(&kwargs),
        )
        .unwrap();
        let msg = Message::Call {
            request,
            options: Dict::new(),
            procedure: "wamp.subscription.get_events".into(),
            payload: payload.as_payload(),
        };
        self.cluster.send(conn, &msg);
    }

    /// The client answers one of its pending INVOCATIONs: a progressive YIELD (when the
    /// caller asked for them, at most three), a final YIELD, or an application ERROR.
    fn answer_one(&mut self, c: usize) {
        if self.clients[c].invocations.is_empty() {
            return;
        }
        let index = self.rng.below(self.clients[c].invocations.len());
        let invocation = self.clients[c].invocations[index];
        let conn = self.clients[c].conn;
        let payload = args(conn.ser, invocation.caller, invocation.seq);
        let progress =
            invocation.receive_progress && invocation.progress_sent < 3 && self.rng.chance(50);
        let msg = if progress {
            self.clients[c].invocations[index].progress_sent += 1;
            Message::Yield {
                request: invocation.id,
                options: progress_options(),
                payload: payload.as_payload(),
            }
        } else if self.rng.chance(75) {
            Message::Yield {
                request: invocation.id,
                options: Dict::new(),
                payload: payload.as_payload(),
            }
        } else if self.rng.chance(40) {
            // Re-routed by the dealer to another callee of a shared registration.
            let call = self
                .calls
                .get_mut(&(invocation.caller, invocation.seq))
                .unwrap();
            call.rerouted = true;
            self.rpc.unavailable_sent += 1;
            Message::Error {
                request_type: wire::code::INVOCATION,
                request: invocation.id,
                details: Dict::new(),
                error: uri::UNAVAILABLE.into(),
                payload: payload.as_payload(),
            }
        } else {
            Message::Error {
                request_type: wire::code::INVOCATION,
                request: invocation.id,
                details: Dict::new(),
                error: APP_ERROR.into(),
                payload: payload.as_payload(),
            }
        };
        if !progress {
            self.clients[c].invocations.swap_remove(index);
            self.clients[c].finished_invocations.insert(invocation.id);
        }
        self.cluster.send(conn, &msg);
    }

    /// The client sends the next chunk of one of its streamed calls (the last one at the
    /// latest with the fourth chunk). It goes on even when the call was answered meanwhile:
    /// the router must drop such chunks quietly.
    fn next_chunk(&mut self, c: usize) {
        if self.clients[c].open_streams.is_empty() {
            return;
        }
        let index = self.rng.below(self.clients[c].open_streams.len());
        let (request, seq, sent) = self.clients[c].open_streams[index];
        let more = sent < 3 && self.rng.chance(60);
        if more {
            self.clients[c].open_streams[index].2 += 1;
        } else {
            self.clients[c].open_streams.swap_remove(index);
        }
        let conn = self.clients[c].conn;
        let me = self.clients[c].id;
        let payload = args(conn.ser, me, seq);
        let options = if more {
            progress_options()
        } else {
            Dict::new()
        };
        let msg = Message::Call {
            request,
            options,
            procedure: self.calls[&(me, seq)].procedure.into(),
            payload: payload.as_payload(),
        };
        self.cluster.send(conn, &msg);
    }

    /// The client cancels one of its unanswered calls, in a random mode (or none).
    fn cancel_one(&mut self, c: usize) {
        let me = self.clients[c].id;
        let mut pending: Vec<(u64, u64)> = self.clients[c]
            .requests
            .iter()
            .filter_map(|(&request, pending)| match pending {
                Request::Call { seq } => Some((request, *seq)),
                _ => None,
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        pending.sort_unstable();
        let (request, seq) = pending[self.rng.below(pending.len())];
        self.calls.get_mut(&(me, seq)).unwrap().canceled = true;
        let mode = [Some("skip"), Some("kill"), Some("killnowait"), None][self.rng.below(4)];
        let mut options = Dict::new();
        if let Some(mode) = mode {
            options.insert("mode", mode);
        }
        let conn = self.clients[c].conn;
        self.cluster
            .send(conn, &Message::Cancel { request, options });
        self.rpc.cancels_sent += 1;
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
        self.clients[c].leaving = true;
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
            .map(|(_, held)| held.procedure)
            .collect();
        for procedure in procedures {
            self.end_span(procedure, me);
            // Its removal travels to the owner and on to every replica: ends at the next
            // quiet point (see `step`). Its REGISTERs/UNREGISTERs in flight end there too.
            self.fluxes.push(Flux {
                procedure,
                client: me,
                start: self.time,
                end: None,
                applied: true,
            });
        }
        for sub in 0..SUBS.len() {
            self.subscribed_since.remove(&(me, sub));
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
            Message::Welcome { session, .. } => {
                self.clients[c].welcomed = true;
                self.clients[c].session_id = session;
            }
            Message::Goodbye { .. } => {}
            Message::Registered {
                request,
                registration,
            } => {
                let Some(Request::Register {
                    procedure,
                    policy,
                    disclose,
                    duplicate,
                    flux,
                    ..
                }) = self.clients[c].requests.remove(&request)
                else {
                    panic!("REGISTERED for an unknown request");
                };
                assert!(
                    !duplicate,
                    "{me} registered {procedure} a second time (registration {registration})"
                );
                if let Some(flux) = flux {
                    self.fluxes[flux].end = Some(self.time);
                }
                // Every other live holder: same registration, same shared policy.
                let mut joined = false;
                for span in self.spans.get(procedure).into_iter().flatten() {
                    if span.ended_at.is_some() {
                        continue;
                    }
                    assert!(
                        policy != "single" && span.policy == policy,
                        "{procedure} REGISTERED to {me} with invoke={policy} while {} holds it \
                         with invoke={}",
                        span.callee,
                        span.policy
                    );
                    assert_eq!(
                        span.registration, registration,
                        "{procedure}: {me} joined under another id than {}",
                        span.callee
                    );
                    joined = true;
                }
                self.shared_joins += usize::from(joined);
                self.spans
                    .entry(procedure)
                    .or_default()
                    .push(RegistrationSpan {
                        callee: me,
                        registration,
                        policy,
                        registered_at: self.time,
                        ended_at: None,
                    });
                let held = Held {
                    procedure,
                    policy,
                    disclose,
                };
                // Held implies wanted (an UNREGISTERED of something else may have dropped it
                // from `wanted_procedures` while this REGISTER was in flight).
                self.clients[c].wanted_procedures.insert(procedure);
                let before = self.clients[c].registrations.insert(registration, held);
                assert!(
                    before.is_none(),
                    "{me} got registration {registration} twice"
                );
            }
            Message::Unregistered { request, .. } => {
                let Some(Request::Unregister { flux }) = self.clients[c].requests.remove(&request)
                else {
                    panic!("UNREGISTERED for an unknown request");
                };
                self.fluxes[flux].end = Some(self.time);
                // Only now may this client register the procedure again (its own view).
                let held: HashSet<&'static str> = self.clients[c]
                    .registrations
                    .values()
                    .map(|held| held.procedure)
                    .collect();
                self.clients[c]
                    .wanted_procedures
                    .retain(|procedure| held.contains(procedure));
            }
            Message::Subscribed {
                request,
                subscription,
            } => {
                let Some(Request::Subscribe(sub, get_retained)) =
                    self.clients[c].requests.remove(&request)
                else {
                    panic!("SUBSCRIBED for an unknown request");
                };
                self.clients[c].subscriptions.insert(subscription, sub);
                self.subscribed_since.insert((me, sub), self.time);
                // A history entry's subscription has its id from the start, on every shard,
                // however often its subscribers all went.
                if let Some(entry) = HISTORY.iter().position(|&(key, _)| key == sub) {
                    if self.realm == "realm1" {
                        let id = *self.history_ids[entry].get_or_insert(subscription);
                        assert_eq!(
                            subscription, id,
                            "SUBSCRIBED to history {:?} under another id",
                            SUBS[sub]
                        );
                    }
                }
                let client = &mut self.clients[c];
                client.live_topics.insert(subscription, HashSet::new());
                if get_retained {
                    client.retained_topics.insert(subscription, HashSet::new());
                } else {
                    client.retained_topics.remove(&subscription);
                }
            }
            Message::Unsubscribed { request, .. } => {
                let Some(Request::Unsubscribe) = self.clients[c].requests.remove(&request) else {
                    panic!("UNSUBSCRIBED for an unknown request");
                };
                // Still wanted: what it holds, and what a SUBSCRIBE in flight asks for (so it
                // never has two SUBSCRIBEs of one subscription out).
                let mut held: HashSet<SubKey> =
                    self.clients[c].subscriptions.values().copied().collect();
                held.extend(self.clients[c].requests.values().filter_map(
                    |request| match request {
                        Request::Subscribe(sub, _) => Some(*sub),
                        _ => None,
                    },
                ));
                self.clients[c]
                    .wanted_topics
                    .retain(|topic| held.contains(topic));
            }
            Message::Invocation {
                request,
                registration,
                details,
                payload,
            } => {
                // A chunk of a streamed call it is still invoked for (possibly after it
                // unregistered: the invocation is pinned to it).
                let (caller, seq) = read_args(&payload);
                let more = details.get_bool("progress") == Some(true);
                if let Some(open) = self.clients[c]
                    .invocations
                    .iter_mut()
                    .find(|invocation| invocation.id == request)
                {
                    // The next chunk of a streamed call: same call, announced by the last one.
                    assert_eq!(
                        (open.caller, open.seq),
                        (caller, seq),
                        "chunk of another call"
                    );
                    assert!(open.more_chunks, "a chunk after the last one");
                    open.chunks += 1;
                    open.more_chunks = more;
                    self.rpc.chunks_received += 1;
                    return;
                }
                let Some(held) = self.clients[c].registrations.get(&registration) else {
                    panic!(
                        "INVOCATION for registration {registration} that client {me} does not hold"
                    );
                };
                let held = *held;
                assert!(
                    !self.clients[c].finished_invocations.contains(&request),
                    "a chunk for invocation {request} after {me} answered it"
                );
                if more {
                    assert!(
                        self.clients[c].takes_chunks,
                        "a streamed call reached {me}, which cannot take one"
                    );
                }
                let called = self.calls[&(caller, seq)].procedure;
                assert!(
                    serving(called).contains(&held.procedure),
                    "a call of {called} reached {} ({})",
                    held.procedure,
                    match_of(held.procedure)
                );
                let named = details.get_str("procedure");
                if match_of(held.procedure) == "exact" {
                    assert_eq!(named, None, "Details.procedure for an exact registration");
                } else {
                    assert_eq!(named, Some(called), "Details.procedure of a pattern call");
                    self.rpc.pattern_calls += 1;
                }
                // disclose_caller is the callee's own option (no CALL here asks disclose_me).
                assert_eq!(
                    details.get("caller").is_some(),
                    held.disclose,
                    "INVOCATION of {} at {me}: caller disclosure",
                    held.procedure
                );
                // A re-routed call comes after the caller's later ones: order holds for the rest.
                if !self.calls[&(caller, seq)].rerouted {
                    let last = self.clients[c].last_invocation_from.insert(caller, seq);
                    assert!(
                        last.map_or(true, |last| last < seq),
                        "INVOCATIONs from caller {caller} to callee {me} out of order: {last:?} then {seq}"
                    );
                }
                let call = self.calls.get_mut(&(caller, seq)).unwrap();
                call.callee = Some(me);
                let receive_progress = details.get_bool("receive_progress") == Some(true);
                assert_eq!(
                    receive_progress,
                    call.receive_progress && self.clients[c].streams,
                    "receive_progress reaches exactly the streaming callees of callers who asked"
                );
                assert_eq!(
                    details.get("timeout"),
                    None,
                    "no callee asked forward_timeout"
                );
                self.clients[c].invocations.push(Invocation {
                    id: request,
                    caller,
                    seq,
                    receive_progress,
                    progress_sent: 0,
                    chunks: 1,
                    more_chunks: more,
                });
            }
            Message::Result {
                request, payload, ..
            } if matches!(
                self.clients[c].requests.get(&request),
                Some(Request::GetEvents(_))
            ) =>
            {
                let Some(Request::GetEvents(ask)) = self.clients[c].requests.remove(&request)
                else {
                    unreachable!()
                };
                let events = self.read_history(&ask, &payload);
                self.on_history_answer(ask, Ok(events));
            }
            Message::Error {
                request_type: wire::code::CALL,
                request,
                error,
                ..
            } if matches!(
                self.clients[c].requests.get(&request),
                Some(Request::GetEvents(_))
            ) =>
            {
                let Some(Request::GetEvents(ask)) = self.clients[c].requests.remove(&request)
                else {
                    unreachable!()
                };
                self.on_history_answer(ask, Err(error.to_string()));
            }
            Message::Result {
                request,
                payload,
                details,
            } if details.get_bool("progress") == Some(true) => {
                let Some(Request::Call { seq }) = self.clients[c].requests.get(&request) else {
                    panic!("progressive RESULT for an unknown or answered CALL {request} at {me}");
                };
                let seq = *seq;
                let call = self.calls.get_mut(&(me, seq)).unwrap();
                assert!(
                    call.receive_progress,
                    "a progressive RESULT nobody asked for"
                );
                call.progress += 1;
                self.rpc.progress_results += 1;
                assert_eq!(
                    read_args(&payload),
                    (me, seq),
                    "progress carries the call's args"
                );
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
                match &*error {
                    APP_ERROR => assert_eq!(read_args(&payload), (me, seq)),
                    // Judged once every flux has ended (`check_no_such_procedure`).
                    uri::NO_SUCH_PROCEDURE => self.no_such_procedure.push((me, seq, self.time)),
                    uri::CANCELED => {
                        // Canceled by its caller, or its callee left (or never got it).
                        let call = &self.calls[&(me, seq)];
                        let callee_left = call
                            .callee
                            .map_or(true, |callee| self.clients[callee as usize - 1].leaving);
                        assert!(
                            call.canceled || callee_left,
                            "call ({me}, {seq}) canceled though neither its caller nor callee did"
                        );
                    }
                    // Every callee declined; or the call was being killed, when the callee's
                    // answer, whatever it is, is the caller's.
                    uri::NO_AVAILABLE_CALLEE | uri::UNAVAILABLE => {
                        assert!(
                            self.calls[&(me, seq)].rerouted,
                            "{error} without an unavailable callee"
                        );
                        self.rpc.no_available_callee += 1;
                    }
                    uri::FEATURE_NOT_SUPPORTED => {
                        assert!(self.calls[&(me, seq)].streamed, "{error} for a plain call");
                    }
                    uri::TIMEOUT => {
                        assert!(self.calls[&(me, seq)].timeout, "timeout without a timeout");
                        self.rpc.timeouts += 1;
                    }
                    other => panic!("unexpected CALL error {other}"),
                }
            }
            Message::Error {
                request_type: wire::code::REGISTER,
                request,
                error,
                details,
                ..
            } => {
                assert_eq!(error, uri::PROCEDURE_ALREADY_EXISTS);
                let Some(Request::Register {
                    procedure,
                    policy,
                    duplicate,
                    sent_at,
                    flux,
                    ..
                }) = self.clients[c].requests.remove(&request)
                else {
                    panic!("REGISTER error for an unknown request");
                };
                if duplicate {
                    // Still held: the client keeps wanting it.
                    return;
                }
                let flux = flux.expect("a first REGISTER has a flux");
                self.fluxes[flux].end = Some(self.time);
                self.fluxes[flux].applied = false;
                // Another holder with the same shared policy all along: joining cannot be
                // refused, unless this client itself was in the registration (or on its way
                // in or out) meanwhile: a REGISTER still in flight when an unrelated
                // UNREGISTERED arrived is forgotten by `wanted_procedures`, so a second one can
                // follow and meet the first.
                let own_flux = self.fluxes.iter().enumerate().any(|(index, other)| {
                    index != flux
                        && other.client == me
                        && other.procedure == procedure
                        && other.applied
                        && other.end.map_or(true, |end| end >= sent_at)
                });
                for span in self.spans.get(procedure).into_iter().flatten() {
                    assert!(
                        own_flux
                            || !(policy != "single"
                                && span.callee != me
                                && span.policy == policy
                                && span.registered_at < sent_at
                                && span.ended_at.is_none()),
                        "{me}'s REGISTER of {procedure} (invoke={policy}) refused while {} held \
                         it with the same policy since {}: {:?}",
                        span.callee,
                        span.registered_at,
                        details.get_str("message")
                    );
                }
                self.refusals.push((me, procedure, sent_at, self.time));
                self.clients[c].wanted_procedures.remove(procedure);
            }
            Message::Event {
                subscription,
                publication,
                details,
                payload,
            } => {
                let Some(&sub) = self.clients[c].subscriptions.get(&subscription) else {
                    panic!("EVENT for subscription {subscription} that client {me} does not hold");
                };
                let (publisher, seq) = read_args(&payload);
                self.note_publication((publisher, seq), publication);
                let publish = &self.publishes[&(publisher, seq)];
                assert!(
                    sub_matches(sub, publish.topic),
                    "EVENT for {} under subscription {:?}",
                    publish.topic,
                    SUBS[sub]
                );
                let topic = publish.topic;
                if details.get_bool("retained") == Some(true) {
                    return self.on_retained_event(
                        c,
                        subscription,
                        sub,
                        (publisher, seq),
                        &details,
                    );
                }
                self.clients[c]
                    .live_topics
                    .entry(subscription)
                    .or_default()
                    .insert(topic);
                check_details_topic(sub, &details, topic);
                if SUBS[sub].1 != "exact" {
                    self.pattern_events += 1;
                }
                assert_ne!(publisher, me, "exclude_me");
                let count = self.events.entry((me, publisher, seq, sub)).or_default();
                *count += 1;
                assert_eq!(
                    *count, 1,
                    "duplicate EVENT ({publisher}, {seq}) at {me} for {:?}",
                    SUBS[sub]
                );
                // A publication matching several of its subscriptions arrives once for each,
                // together: the order per (publisher, subscriber) never goes back.
                let last = self.clients[c].last_event_from.insert(publisher, seq);
                assert!(
                    last.map_or(true, |last| last <= seq),
                    "EVENTs from {publisher} to {me} out of order: {last:?} then {seq}"
                );
            }
            Message::Interrupt { request, options } => {
                assert!(
                    self.clients[c].cancels,
                    "INTERRUPT to {me}, which did not announce call_canceling"
                );
                let mode = options.get_str("mode").expect("INTERRUPT has a mode");
                assert!(mode == "kill" || mode == "killnowait", "mode {mode}");
                self.rpc.interrupts += 1;
                let client = &mut self.clients[c];
                match client.invocations.iter().position(|i| i.id == request) {
                    // Like an Autobahn callee: stop, answer ERROR canceled.
                    Some(index) => {
                        client.invocations.swap_remove(index);
                        client.finished_invocations.insert(request);
                        let msg = Message::Error {
                            request_type: wire::code::INVOCATION,
                            request,
                            details: Dict::new(),
                            error: uri::CANCELED.into(),
                            payload: wire::Payload::empty(ser),
                        };
                        self.cluster.send(client.conn, &msg);
                    }
                    None => assert!(
                        client.finished_invocations.contains(&request),
                        "INTERRUPT for invocation {request} that {me} never had"
                    ),
                }
            }
            other => panic!("client {me} got unexpected {other:?}"),
        }
    }

    /// A retained EVENT: only after a SUBSCRIBE that asked for it, of a retained PUBLISH to a
    /// topic the subscription covers, at most one per topic, and never after a live EVENT of
    /// its topic under the same subscription.
    fn on_retained_event(
        &mut self,
        c: usize,
        subscription: u64,
        sub: SubKey,
        (publisher, seq): (u64, u64),
        details: &Dict<'_>,
    ) {
        let me = self.clients[c].id;
        let publish = &self.publishes[&(publisher, seq)];
        let topic = publish.topic;
        assert!(
            publish.retain,
            "a retained EVENT of a PUBLISH without retain"
        );
        check_details_topic(sub, details, topic);
        let client = &mut self.clients[c];
        let Some(seen) = client.retained_topics.get_mut(&subscription) else {
            panic!("a retained EVENT to {me}, which did not ask for retained events");
        };
        assert!(seen.insert(topic), "two retained EVENTs of {topic} at {me}");
        let live = client
            .live_topics
            .get(&subscription)
            .is_some_and(|live| live.contains(topic));
        assert!(
            !live,
            "a retained EVENT of {topic} after a live one at {me} ({publisher}, {seq})"
        );
        self.retained_events.push((me, topic, publisher, seq));
    }

    /// The publication id of (publisher, seq) is one and the same wherever it shows.
    fn note_publication(&mut self, publish: (u64, u64), publication: u64) {
        let known = *self.publication_ids.entry(publish).or_insert(publication);
        assert_eq!(
            known, publication,
            "publish {publish:?} under two publication ids"
        );
    }

    /// The events of a `get_events` RESULT: one argument, the list of events.
    fn read_history(&self, ask: &HistoryAsk, payload: &wire::Payload<'_>) -> Vec<HistoryEvent> {
        let (list, kwargs) = wire::decode_payload_values(payload).expect("payload decodes");
        assert!(kwargs.is_none(), "get_events answers with arguments only");
        let [Value::List(events)] = list.as_slice() else {
            panic!("get_events answers one list, got {list:?}");
        };
        events
            .iter()
            .map(|event| {
                let event = event.as_dict().expect("each event is a dict");
                let details = event.get_dict("details").expect("details");
                let (publisher, seq) = match event.get("args").and_then(Value::as_list) {
                    Some([Value::UInt(a), Value::UInt(b)]) => (*a, *b),
                    other => panic!("history event args {other:?}"),
                };
                assert!(event.get("kwargs").is_none(), "no PUBLISH had kwargs");
                HistoryEvent {
                    subscription: event.get_u64("subscription").expect("subscription"),
                    publication: event.get_u64("publication").expect("publication"),
                    topic: event.get_str("topic").expect("topic").to_string(),
                    timestamp: event.get_str("timestamp").expect("timestamp").to_string(),
                    details_topic: details.get_str("topic").map(str::to_string),
                    publisher,
                    seq,
                }
            })
            .inspect(|event| {
                assert_eq!(
                    event.subscription, ask.subscription,
                    "{event:?} for {ask:?}"
                )
            })
            .collect()
    }

    fn on_history_answer(&mut self, ask: HistoryAsk, answer: Result<Vec<HistoryEvent>, String>) {
        if ask.settled {
            self.settled_answers.push((ask, answer));
            return;
        }
        // Asked in realm1 under an id a SUBSCRIBED named: never refused.
        let events = answer.unwrap_or_else(|error| panic!("{ask:?} refused: {error}"));
        self.check_history_answer(&ask, &events);
        self.history.midrun_answers += 1;
        self.history.midrun_events += events.len();
    }

    /// The next seq after `seq` of `publisher`'s PUBLISHes that history entry `sub` keeps.
    fn next_kept(&self, sub: SubKey, publisher: u64, seq: u64) -> Option<u64> {
        let last = self.clients[publisher as usize - 1].publish_seq;
        (seq + 1..=last).find(|next| {
            let publish = &self.publishes[&(publisher, *next)];
            sub_matches(sub, publish.topic) && !publish.session_list
        })
    }

    /// What holds for any answer at any time: each event is a PUBLISH the entry covers,
    /// published without session-id lists, once, with its timestamp, at most `limit` of them
    /// (the entry's and the call's); in arrival order (newest first reversed), each publisher's
    /// events are consecutive ones of the PUBLISHes it kept, in publish order (history keeps
    /// a window of arrival order, and each publisher's PUBLISHes arrive in order). A topic
    /// filter may leave gaps: order only then.
    fn check_history_answer(&mut self, ask: &HistoryAsk, events: &[HistoryEvent]) {
        let (sub, limit) = HISTORY[ask.entry];
        assert!(
            events.len() <= limit.min(ask.limit.unwrap_or(usize::MAX)),
            "{} events for {ask:?}",
            events.len()
        );
        let mut publishes = HashSet::new();
        let mut publications = HashSet::new();
        for event in events {
            let key = (event.publisher, event.seq);
            let Some(publish) = self.publishes.get(&key) else {
                panic!("history of {:?} has {event:?}, never published", SUBS[sub]);
            };
            assert_eq!(event.topic, publish.topic, "{event:?}");
            assert!(
                sub_matches(sub, publish.topic),
                "history of {:?} has {event:?}",
                SUBS[sub]
            );
            assert!(
                !publish.session_list,
                "history kept {event:?}, published with a session-id list"
            );
            assert_eq!(event.timestamp, rfc3339(publish.at_ms), "{event:?}");
            let details_topic = (SUBS[sub].1 != "exact").then_some(publish.topic);
            assert_eq!(event.details_topic.as_deref(), details_topic, "{event:?}");
            assert!(publishes.insert(key), "{key:?} twice in {ask:?}");
            assert!(publications.insert(event.publication), "{event:?} twice");
            self.note_publication(key, event.publication);
        }
        let newest_first = ask.reverse || ask.positional;
        let mut last: HashMap<u64, u64> = HashMap::new();
        for index in 0..events.len() {
            let event = &events[if newest_first {
                events.len() - 1 - index
            } else {
                index
            }];
            if let Some(&before) = last.get(&event.publisher) {
                if matches!(ask.filter, HistoryFilter::Topic(_)) {
                    assert!(before < event.seq, "{ask:?}: out of order: {events:?}");
                } else {
                    assert_eq!(
                        self.next_kept(sub, event.publisher, before),
                        Some(event.seq),
                        "{ask:?}: publisher {}'s events not consecutive or out of order: \
                         {events:?}",
                        event.publisher
                    );
                }
            }
            last.insert(event.publisher, event.seq);
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
        if self.rng.chance(3) {
            // Timers fire: realm sweeps among them.
            self.cluster.advance_to(self.cluster.now + 1_000);
        }
        let busy = self.cluster.busy_channels();
        if busy.is_empty() || self.rng.chance(35) {
            self.client_op();
        } else {
            let (from, to) = busy[self.rng.below(busy.len())];
            self.cluster.deliver(from, to);
        }
        self.pump();
        if self.cluster.undelivered() == 0 {
            self.quiet_point();
        }
    }

    /// Every channel is empty: every replica has applied everything sent so far, so the
    /// fluxes of departed clients end here.
    fn quiet_point(&mut self) {
        let time = self.time;
        for flux in &mut self.fluxes {
            let alive = self.clients[flux.client as usize - 1].alive;
            if flux.end.is_none() && !alive {
                flux.end = Some(time);
            }
        }
    }

    /// A flux of `procedure` that was applied somewhere and overlaps `[from, to]`.
    fn flux_overlaps(&self, procedure: &str, from: u64, to: u64) -> bool {
        self.fluxes.iter().any(|flux| {
            flux.procedure == procedure
                && flux.applied
                && flux.start <= to
                && flux.end.expect("fluxes have ended") >= from
        })
    }

    /// A call answered `no_such_procedure` while some callee held the procedure all along must
    /// have raced with another callee's REGISTER/UNREGISTER/leave (the replica picked a callee
    /// that was not invocable); with one callee that never happens.
    fn check_no_such_procedure(&self) {
        for &(caller, seq, answered_at) in &self.no_such_procedure {
            let call = &self.calls[&(caller, seq)];
            let serving = serving(call.procedure);
            let holder = serving
                .iter()
                .flat_map(|registered| self.spans.get(registered).into_iter().flatten())
                .find(|span| {
                    span.registered_at < call.sent_at
                        && span.ended_at.map_or(true, |end| end > answered_at)
                });
            if let Some(span) = holder {
                assert!(
                    serving.iter().any(|registered| self.flux_overlaps(
                        registered,
                        call.sent_at,
                        answered_at
                    )),
                    "call ({caller}, {seq}) to {} got no_such_procedure while callee {} held it \
                     since {} (call at {}, answered at {}) and no other callee came or went",
                    call.procedure,
                    span.callee,
                    span.registered_at,
                    call.sent_at,
                    answered_at
                );
            }
        }
    }

    /// A refused REGISTER met an existing registration: some client (another one, or this one
    /// through an earlier REGISTER) held the procedure, or was registering or unregistering
    /// it, while the REGISTER was in flight.
    fn check_refusals(&self) {
        for &(client, procedure, sent_at, refused_at) in &self.refusals {
            let held = self.spans.get(procedure).into_iter().flatten().any(|span| {
                span.registered_at <= refused_at && span.ended_at.map_or(true, |end| end >= sent_at)
            });
            let others_in_flux = self.fluxes.iter().any(|flux| {
                flux.procedure == procedure
                    && flux.applied
                    && flux.start <= refused_at
                    && flux.end.expect("fluxes have ended") >= sent_at
            });
            assert!(
                held || others_in_flux,
                "{client}'s REGISTER of {procedure} (sent {sent_at}) refused at {refused_at} with \
                 nobody else holding it"
            );
        }
    }

    /// After quiescence every replica holds the same registration for each procedure (id,
    /// policy, callees in the same order), and its callees are exactly the live clients that
    /// hold it.
    fn check_replicas(&self) -> usize {
        let mut shared = 0;
        for procedure in PROCEDURES {
            let views: Vec<_> = self
                .cluster
                .routers
                .iter()
                .map(|router| {
                    router.registration_matching(self.realm, procedure, match_of(procedure))
                })
                .collect();
            for (shard, view) in views.iter().enumerate() {
                assert_eq!(
                    view, &views[0],
                    "{procedure}: shard {shard} differs from shard 0"
                );
            }
            let holders: Vec<(u64, u64, &'static str)> = self
                .clients
                .iter()
                .filter(|client| client.alive)
                .flat_map(|client| {
                    client
                        .registrations
                        .iter()
                        .filter(|(_, held)| held.procedure == procedure)
                        .map(|(&id, held)| (client.session_id, id, held.policy))
                })
                .collect();
            let Some(view) = &views[0] else {
                assert!(
                    holders.is_empty(),
                    "{procedure} missing, held by {holders:?}"
                );
                continue;
            };
            let callees: BTreeSet<u64> = view.callees.iter().copied().collect();
            assert_eq!(
                callees.len(),
                view.callees.len(),
                "{procedure}: a callee twice"
            );
            let expected: BTreeSet<u64> = holders.iter().map(|&(session, ..)| session).collect();
            assert_eq!(callees, expected, "{procedure}: callees vs holders");
            for &(_, id, policy) in &holders {
                assert_eq!((view.id, view.invoke), (id, policy), "{procedure}");
            }
            shared += usize::from(view.callees.len() > 1);
        }
        shared
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
        self.check_no_such_procedure();
        self.check_refusals();
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
        // A matching subscription: SUBSCRIBED received before the PUBLISH was sent, and still
        // subscribed now (after everything was delivered); not the publisher (exclude_me).
        // Each one gets the publication exactly once, however many of the subscriber's
        // subscriptions match.
        for ((publisher, seq), publish) in &self.publishes {
            for (&(subscriber, sub), &since) in &self.subscribed_since {
                if !sub_matches(sub, publish.topic)
                    || subscriber == *publisher
                    || since >= publish.sent_at
                {
                    continue;
                }
                checked += 1;
                let got = self
                    .events
                    .get(&(subscriber, *publisher, *seq, sub))
                    .copied();
                assert_eq!(
                    got,
                    Some(1),
                    "subscriber {subscriber} (since {since}) missed publish ({publisher}, {seq}) \
                     to {} at {} under {:?}",
                    publish.topic,
                    publish.sent_at,
                    SUBS[sub]
                );
            }
        }
        checked
    }

    /// After everything settled: a newcomer subscribing to each topic with `get_retained` gets
    /// exactly one retained event where some PUBLISH retained one, none elsewhere, and it is
    /// the last retained PUBLISH of its publisher to that topic (each publisher's PUBLISHes
    /// reach the topic's owner in order). Returns the topics checked with an event.
    fn check_retained(&mut self) -> usize {
        self.join();
        let c = self.clients.len() - 1;
        assert!(self.clients[c].welcomed, "the newcomer is welcomed at once");
        let me = self.clients[c].id;
        let conn = self.clients[c].conn;
        for sub in 0..TOPICS.len() {
            assert_eq!(SUBS[sub], (TOPICS[sub], "exact"));
            self.clients[c].wanted_topics.insert(sub);
            let request = self.request(c, Request::Subscribe(sub, true));
            let options = opts_get_retained();
            let msg = Message::Subscribe {
                request,
                options,
                topic: TOPICS[sub].into(),
            };
            self.cluster.send(conn, &msg);
            self.pump();
        }
        self.quiesce();
        let mut with_event = 0;
        for topic in TOPICS {
            let got: Vec<(u64, u64)> = self
                .retained_events
                .iter()
                .filter(|&&(subscriber, t, _, _)| subscriber == me && t == topic)
                .map(|&(_, _, publisher, seq)| (publisher, seq))
                .collect();
            let retained: Vec<(u64, u64)> = self
                .publishes
                .iter()
                .filter(|(_, publish)| publish.retain && publish.topic == topic)
                .map(|(&key, _)| key)
                .collect();
            if retained.is_empty() {
                assert!(
                    got.is_empty(),
                    "a retained event of {topic} nobody retained: {got:?}"
                );
                continue;
            }
            assert_eq!(got.len(), 1, "one retained event of {topic}, got {got:?}");
            let (publisher, seq) = got[0];
            let last_of_publisher = retained
                .iter()
                .filter(|&&(p, _)| p == publisher)
                .map(|&(_, seq)| seq)
                .max();
            assert_eq!(
                last_of_publisher,
                Some(seq),
                "{topic}: the retained event is not its publisher's last retained one"
            );
            with_event += 1;
        }
        with_event
    }

    /// After everything settled: a newcomer on every shard subscribes to each history entry's
    /// (uri, match) and gets the same id everywhere (the reserved one, which every SUBSCRIBED
    /// of the run named). In realm1 `get_events` of each answers exactly the PUBLISHes the
    /// entry covers (none with a session-id list): all of them, or the newest `limit`, i.e.
    /// each publisher's last ones (`check_history_answer` holds too); a few filtered calls
    /// answer what the filter selects of that full history; the counters agree. In an
    /// auto-created realm nothing keeps history: `history_unavailable`.
    fn check_history(&mut self) {
        let mut newcomers = Vec::new();
        for shard in 0..self.cluster.shards() {
            self.join_at(shard);
            let c = self.clients.len() - 1;
            assert!(self.clients[c].welcomed, "the newcomer is welcomed at once");
            for &(sub, _) in &HISTORY {
                self.clients[c].wanted_topics.insert(sub);
                let request = self.request(c, Request::Subscribe(sub, false));
                let (topic, matching) = SUBS[sub];
                let mut options = Dict::new();
                if matching != "exact" {
                    options.insert("match", matching);
                }
                let msg = Message::Subscribe {
                    request,
                    options,
                    topic: topic.into(),
                };
                self.cluster.send(self.clients[c].conn, &msg);
            }
            newcomers.push(c);
        }
        self.pump();
        self.quiesce();
        let mut ids = Vec::new();
        for (entry, &(sub, _)) in HISTORY.iter().enumerate() {
            let mut named = newcomers.iter().map(|&c| {
                let subscriptions = &self.clients[c].subscriptions;
                let held = subscriptions.iter().find(|(_, &key)| key == sub);
                *held.expect("SUBSCRIBED to every history entry").0
            });
            let id = named.next().unwrap();
            assert!(
                named.all(|other| other == id),
                "{:?}: another id on another shard",
                SUBS[sub]
            );
            if self.realm == "realm1" {
                assert_eq!(*self.history_ids[entry].get_or_insert(id), id);
            }
            ids.push(id);
        }
        let c = newcomers[0];
        let stats = self.cluster.stats();
        if self.realm != "realm1" {
            for (entry, &subscription) in ids.iter().enumerate() {
                let ask = HistoryAsk {
                    entry,
                    subscription,
                    reverse: false,
                    limit: None,
                    positional: false,
                    filter: HistoryFilter::None,
                    settled: true,
                };
                let answer = self.ask_settled(c, ask);
                assert_eq!(answer, Err(HISTORY_UNAVAILABLE.to_string()), "{ask:?}");
                self.history.unavailable += 1;
            }
            assert_eq!(
                (
                    stats.history_recorded,
                    stats.history_now,
                    stats.history_skipped
                ),
                (0, 0, 0),
                "history in a realm that keeps none"
            );
            return;
        }
        let (mut recorded, mut evicted, mut now) = (0, 0, 0);
        for (entry, &subscription) in ids.iter().enumerate() {
            let (sub, limit) = HISTORY[entry];
            let full = HistoryAsk {
                entry,
                subscription,
                reverse: false,
                limit: None,
                positional: false,
                filter: HistoryFilter::None,
                settled: true,
            };
            let events = self
                .ask_settled(c, full)
                .unwrap_or_else(|error| panic!("{full:?} refused: {error}"));
            self.check_history_answer(&full, &events);
            let kept: Vec<(u64, u64)> = self
                .publishes
                .iter()
                .filter(|(_, publish)| sub_matches(sub, publish.topic) && !publish.session_list)
                .map(|(&key, _)| key)
                .collect();
            assert_eq!(
                events.len(),
                kept.len().min(limit),
                "history of {:?}: all of {} kept PUBLISHes or the newest {limit}: {events:?}",
                SUBS[sub],
                kept.len()
            );
            // Each publisher's events are consecutive (checked) and end with its last one.
            for event in &events {
                if let Some(next) = self.next_kept(sub, event.publisher, event.seq) {
                    assert!(
                        events
                            .iter()
                            .any(|other| (other.publisher, other.seq) == (event.publisher, next)),
                        "history of {:?} keeps ({}, {}) but lost the newer ({}, {next})",
                        SUBS[sub],
                        event.publisher,
                        event.seq,
                        event.publisher
                    );
                }
            }
            recorded += kept.len() as u64;
            evicted += kept.len().saturating_sub(limit) as u64;
            now += kept.len().min(limit);
            self.history.settled_events += events.len();
            self.history.evicted_histories += usize::from(kept.len() > limit);
            for _ in 0..2 {
                let ask = self.random_filter(full, &events);
                let expected = self.filtered(&ask, &events);
                let answer = self.ask_settled(c, ask);
                let got = answer.map(|events| {
                    self.check_history_answer(&ask, &events);
                    events
                        .iter()
                        .map(|e| (e.publisher, e.seq))
                        .collect::<Vec<_>>()
                });
                assert_eq!(got, expected, "{ask:?} of {events:?}");
                self.history.filtered += 1;
            }
        }
        let covered = |topic: &str| HISTORY.iter().any(|&(sub, _)| sub_matches(sub, topic));
        let skipped = self
            .publishes
            .values()
            .filter(|publish| publish.session_list && covered(publish.topic))
            .count();
        assert_eq!(
            (
                stats.history_recorded,
                stats.history_evicted,
                stats.history_now,
                stats.history_skipped as usize,
                stats.history_declined
            ),
            (recorded, evicted, now, skipped, 0),
            "history counters: {stats:?}"
        );
    }

    /// Client `c` asks `ask` once everything settled, and gets its answer.
    fn ask_settled(&mut self, c: usize, ask: HistoryAsk) -> Result<Vec<HistoryEvent>, String> {
        self.send_get_events(c, ask);
        self.pump();
        self.quiesce();
        let (asked, answer) = self.settled_answers.pop().expect("get_events answered");
        assert!(self.settled_answers.is_empty());
        assert_eq!(asked.entry, ask.entry);
        answer
    }

    /// `full` with a random filter, `reverse` and `limit`, naming events of `events` (the
    /// full answer, in arrival order).
    fn random_filter(&mut self, full: HistoryAsk, events: &[HistoryEvent]) -> HistoryAsk {
        let limit = self.rng.chance(50).then(|| 1 + self.rng.below(4));
        let mut ask = HistoryAsk {
            reverse: self.rng.chance(50),
            limit,
            positional: limit.is_some() && self.rng.chance(25),
            ..full
        };
        let choice = self.rng.below(12);
        ask.filter = if events.is_empty() || choice < 2 {
            [
                HistoryFilter::Topic(TOPICS[self.rng.below(TOPICS.len())]),
                HistoryFilter::UnknownPublication,
                HistoryFilter::None,
            ][self.rng.below(3)]
        } else {
            let index = self.rng.below(events.len());
            let (publication, key) = (
                events[index].publication,
                (events[index].publisher, events[index].seq),
            );
            let (ms, topic) = (self.publishes[&key].at_ms, self.publishes[&key].topic);
            match choice {
                2 => HistoryFilter::FromPublication(index, publication),
                3 => HistoryFilter::AfterPublication(index, publication),
                4 => HistoryFilter::BeforePublication(index, publication),
                5 => HistoryFilter::UntilPublication(index, publication),
                6 => HistoryFilter::FromTime(ms),
                7 => HistoryFilter::AfterTime(ms),
                8 => HistoryFilter::BeforeTime(ms),
                9 => HistoryFilter::UntilTime(ms),
                10 => HistoryFilter::Topic(topic),
                _ => HistoryFilter::None,
            }
        };
        ask
    }

    /// What `ask` selects of the full history `events` (arrival order): the model of the
    /// spec's filters.
    fn filtered(
        &self,
        ask: &HistoryAsk,
        events: &[HistoryEvent],
    ) -> Result<Vec<(u64, u64)>, String> {
        let at = |event: &HistoryEvent| self.publishes[&(event.publisher, event.seq)].at_ms;
        let mut selected: Vec<&HistoryEvent> = match ask.filter {
            HistoryFilter::None => events.iter().collect(),
            HistoryFilter::Topic(topic) => events.iter().filter(|e| e.topic == topic).collect(),
            HistoryFilter::FromPublication(i, _) => events[i..].iter().collect(),
            HistoryFilter::AfterPublication(i, _) => events[i + 1..].iter().collect(),
            HistoryFilter::BeforePublication(i, _) => events[..i].iter().collect(),
            HistoryFilter::UntilPublication(i, _) => events[..=i].iter().collect(),
            HistoryFilter::UnknownPublication => return Err(uri::INVALID_ARGUMENT.to_string()),
            HistoryFilter::FromTime(ms) => events.iter().filter(|e| at(e) >= ms).collect(),
            HistoryFilter::AfterTime(ms) => events.iter().filter(|e| at(e) > ms).collect(),
            HistoryFilter::BeforeTime(ms) => events.iter().filter(|e| at(e) < ms).collect(),
            HistoryFilter::UntilTime(ms) => events.iter().filter(|e| at(e) <= ms).collect(),
        };
        if ask.reverse || ask.positional {
            selected.reverse();
        }
        selected.truncate(ask.limit.unwrap_or(usize::MAX));
        Ok(selected.iter().map(|e| (e.publisher, e.seq)).collect())
    }

    /// Publications that reached one subscriber under two or more of its subscriptions.
    fn multi_matched(&self) -> usize {
        let mut per_receipt: HashMap<(u64, u64, u64), usize> = HashMap::new();
        for &(subscriber, publisher, seq, _) in self.events.keys() {
            *per_receipt.entry((subscriber, publisher, seq)).or_default() += 1;
        }
        per_receipt.values().filter(|&&count| count > 1).count()
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
    /// REGISTEREDs that joined a registration another live client held.
    shared_joins: usize,
    /// Procedures with several callees at the end of a run.
    shared_at_end: usize,
    register_refusals: usize,
    answered: usize,
    events: usize,
    must_receive_checks: usize,
    peer_messages: u64,
    /// Auto-created realms removed while clients were still joining and leaving.
    realms_removed_mid_run: u64,
    rpc: RpcCounts,
    /// Calls the dealer sent to another callee after `unavailable`.
    rerouted: u64,
    late_chunks_dropped: u64,
    /// EVENTs under prefix or wildcard subscriptions.
    pattern_events: usize,
    /// Publications that reached one subscriber under two or more subscriptions.
    multi_matched: usize,
    /// Retained EVENTs received, and topics the final check found a retained event for.
    retained_events: usize,
    retained_topics: usize,
    history: HistoryCounts,
}

/// What the advanced RPC features did, counted by the clients.
#[derive(Default, Debug, Clone, Copy)]
struct RpcCounts {
    cancels_sent: usize,
    interrupts: usize,
    timeouts: usize,
    progress_results: usize,
    unavailable_sent: usize,
    no_available_callee: usize,
    /// INVOCATIONs that a prefix or wildcard registration received.
    pattern_calls: usize,
    streams_started: usize,
    /// Later chunks of streamed calls received by callees.
    chunks_received: usize,
}

impl RpcCounts {
    fn add(&mut self, other: &RpcCounts) {
        self.cancels_sent += other.cancels_sent;
        self.interrupts += other.interrupts;
        self.timeouts += other.timeouts;
        self.progress_results += other.progress_results;
        self.unavailable_sent += other.unavailable_sent;
        self.no_available_callee += other.no_available_callee;
        self.pattern_calls += other.pattern_calls;
        self.streams_started += other.streams_started;
        self.chunks_received += other.chunks_received;
    }

    /// Every feature was exercised.
    fn all_seen(&self) -> bool {
        self.cancels_sent > 0
            && self.interrupts > 0
            && self.timeouts > 0
            && self.progress_results > 0
            && self.unavailable_sent > 0
            && self.no_available_callee > 0
            && self.pattern_calls > 0
            && self.streams_started > 0
            && self.chunks_received > 0
    }
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
    sim.quiet_point();
    let must_receive_checks = sim.check_delivery();
    let shared_at_end = sim.check_replicas();
    let retained_topics = sim.check_retained();
    sim.check_history();
    let coverage = Coverage {
        calls: sim.calls.len(),
        shared_joins: sim.shared_joins,
        shared_at_end,
        register_refusals: sim.refusals.len(),
        answered: sim.calls.values().filter(|call| call.answers == 1).count(),
        events: sim.events.len(),
        must_receive_checks,
        peer_messages: sim.cluster.shard_messages,
        realms_removed_mid_run: sim.cluster.stats().realms_removed,
        rpc: sim.rpc,
        rerouted: sim.cluster.stats().calls_rerouted,
        late_chunks_dropped: sim.cluster.stats().late_call_chunks_discarded,
        pattern_events: sim.pattern_events,
        multi_matched: sim.multi_matched(),
        retained_events: sim.retained_events.len(),
        retained_topics,
        history: sim.history,
    };
    sim.everyone_leaves();
    sim.cluster.assert_tables_empty();
    // Two sweeps later no auto-created realm is left anywhere; configured ones stay.
    for _ in 0..2 {
        let now = sim.cluster.now + 2_000;
        sim.cluster.advance_to(now);
        sim.cluster.drain();
    }
    // Retained events keep their realm on the topic's owner shard, an auto-created one too.
    let keeping_retained = sim
        .cluster
        .routers
        .iter()
        .filter(|router| router.stats().retained_now > 0)
        .count();
    let auto_realms_kept = if sim.realm == AUTO_REALM {
        keeping_retained
    } else {
        0
    };
    assert_eq!(
        sim.cluster.stats().realms,
        shards + auto_realms_kept,
        "only realm1 on each shard, and an auto-created realm where it keeps retained events"
    );
    assert_eq!(sim.cluster.stats().timers, 0, "no call timeout left armed");
    coverage
}

fn run_seeds(seeds: impl Iterator<Item = u64>) -> usize {
    let mut count = 0;
    let mut total = Coverage::default();
    for seed in seeds {
        let result = std::panic::catch_unwind(|| run_seed(seed));
        if let Ok(coverage) = &result {
            total.calls += coverage.calls;
            total.shared_joins += coverage.shared_joins;
            total.shared_at_end += coverage.shared_at_end;
            total.register_refusals += coverage.register_refusals;
            total.answered += coverage.answered;
            total.events += coverage.events;
            total.must_receive_checks += coverage.must_receive_checks;
            total.peer_messages += coverage.peer_messages;
            total.realms_removed_mid_run += coverage.realms_removed_mid_run;
            total.rpc.add(&coverage.rpc);
            total.rerouted += coverage.rerouted;
            total.late_chunks_dropped += coverage.late_chunks_dropped;
            total.pattern_events += coverage.pattern_events;
            total.multi_matched += coverage.multi_matched;
            total.retained_events += coverage.retained_events;
            total.retained_topics += coverage.retained_topics;
            total.history.add(&coverage.history);
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
    assert!(
        count < 50
            || (total.shared_joins > 0 && total.shared_at_end > 0 && total.register_refusals > 0),
        "shared registrations not exercised: {total:?}"
    );
    assert!(
        count < 50 || (total.pattern_events > 0 && total.multi_matched > 0),
        "pattern subscriptions not exercised: {total:?}"
    );
    assert!(
        count < 50 || (total.retained_events > total.retained_topics && total.retained_topics > 0),
        "retention not exercised: {total:?}"
    );
    let history = &total.history;
    assert!(
        count < 50
            || (history.settled_events > 0
                && history.evicted_histories > 0
                && history.midrun_events > history.midrun_answers
                && history.filtered > 0
                && history.unavailable > 0
                && history.session_lists > 0),
        "event history not exercised: {total:?}"
    );
    assert!(
        count < 50 || total.realms_removed_mid_run > 0,
        "auto-created realms never removed mid-run: {total:?}"
    );
    assert!(
        count < 50 || (total.rpc.all_seen() && total.rerouted > 0 && total.late_chunks_dropped > 0),
        "cancels, interrupts, timeouts or progressive results not exercised: {total:?}"
    );
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

/// A caller that does not stream calls may not have two pending calls under one request id
/// (a protocol violation, as for one that streams): the second used to replace the first in
/// the caller's table, so when the caller left the first stayed pending, and its callee's
/// answer reached a session that was gone (a panic, found by the router fuzz target).
#[test]
fn a_second_pending_call_under_one_request_id_is_a_violation() {
    let mut cluster = Cluster::new(2, 1);
    let procedure = uri_owned_by(1, 2, "com.dup");
    let caller = cluster.client(0);
    let callee = cluster.client(1);
    cluster.register(callee, 1, &procedure);
    cluster.call(caller, 7, &procedure, 40);
    cluster.drain();
    let (invocation, call_args) = cluster.invocation(callee);
    assert_eq!(call_args, (40, 7));
    cluster.call(caller, 7, &procedure, 41);
    match cluster.next(caller).msg() {
        Message::Abort { reason, .. } => assert_eq!(reason, uri::PROTOCOL_VIOLATION),
        other => panic!("expected ABORT, got {other:?}"),
    }
    cluster.close(caller);
    cluster.drain();
    cluster.yield_(callee, invocation, 42, 0);
    cluster.drain();
    cluster.nothing_for(callee);
    cluster.close(callee);
    cluster.drain();
    let stats = cluster.stats();
    assert_eq!(
        (stats.sessions, stats.pending_calls, stats.pending_entries),
        (0, 0, 0)
    );
    assert_eq!(stats.protocol_violations, 1);
    assert_eq!(stats.shard_messages_ignored, 0);
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
fn shard_messages_after_shutdown_are_harmless() {
    let mut cluster = Cluster::new(2, 9);
    let callee = cluster.client(1);
    cluster.register(callee, 1, "com.x");
    let caller = cluster.client(0);
    let subscriber = cluster.client(0);
    cluster.subscribe(subscriber, 1, "com.t");
    cluster.call(caller, 1, "com.x", 1);
    // Shard 1 shuts down with the Invoke still in flight.
    cluster.shutdown(1);
    cluster.close(callee);
    cluster.drain();
    match cluster.next(caller).msg() {
        Message::Error { error, .. } => assert_eq!(error, uri::NO_SUCH_PROCEDURE),
        other => panic!("expected ERROR, got {other:?}"),
    }
    cluster.shutdown(0);
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
    assert_eq!(cluster.shard_messages, 0);
    cluster.close(a);
    cluster.close(b);
    cluster.assert_tables_empty();
}

// ------------------------------------------------------------------------------------------
// Shared registrations across shards
// ------------------------------------------------------------------------------------------

impl Cluster {
    /// REGISTER with `invoke` = `policy`, everything delivered; the reply.
    fn register_shared_reply(
        &mut self,
        conn: Conn,
        request: u64,
        procedure: &str,
        policy: &str,
    ) -> Received {
        let mut options = Dict::new();
        options.insert("invoke", Value::Str(policy.to_string().into()));
        let msg = Message::Register {
            request,
            options,
            procedure: procedure.into(),
        };
        self.send(conn, &msg);
        self.drain();
        self.next(conn)
    }

    fn register_shared(&mut self, conn: Conn, request: u64, procedure: &str, policy: &str) -> u64 {
        match self
            .register_shared_reply(conn, request, procedure, policy)
            .msg()
        {
            Message::Registered {
                request: r,
                registration,
            } if r == request => registration,
            other => panic!("expected REGISTERED, got {other:?}"),
        }
    }

    /// Every shard's view of `procedure`; asserts they agree and returns it.
    fn agreed_registration(&self, procedure: &str) -> Option<wampring::router::RegistrationInfo> {
        let views: Vec<_> = self
            .routers
            .iter()
            .map(|router| router.registration("realm1", procedure))
            .collect();
        for view in &views {
            assert_eq!(view, &views[0], "replicas disagree on {procedure}");
        }
        views[0].clone()
    }

    /// Calls `procedure` from `caller`, lets the one invoked callee among `callees` answer, and
    /// returns its index (after checking the RESULT).
    fn call_shared(
        &mut self,
        caller: Conn,
        request: u64,
        procedure: &str,
        callees: &[Conn],
    ) -> usize {
        self.call(caller, request, procedure, 0);
        self.drain();
        let mut invoked = None;
        for (index, &callee) in callees.iter().enumerate() {
            if let Some(frame) = self.recv(callee) {
                let Message::Invocation {
                    request: invocation,
                    ..
                } = wire::decode(callee.ser, &frame).unwrap()
                else {
                    panic!("expected INVOCATION at callee {index}");
                };
                assert!(invoked.is_none(), "two callees invoked by one CALL");
                invoked = Some(index);
                self.yield_(callee, invocation, index as u64, 0);
                self.drain();
            }
        }
        match self.next(caller).msg() {
            Message::Result {
                request: r,
                payload,
                ..
            } => assert_eq!(
                (r, read_args(&payload).0),
                (request, invoked.unwrap() as u64)
            ),
            other => panic!("expected RESULT, got {other:?}"),
        }
        invoked.expect("a callee was invoked")
    }

    fn unregister(&mut self, conn: Conn, request: u64, registration: u64) {
        self.send(
            conn,
            &Message::Unregister {
                request,
                registration,
            },
        );
        self.drain();
        assert!(matches!(
            self.next(conn).msg(),
            Message::Unregistered { request: r, .. } if r == request
        ));
    }
}

#[test]
fn roundrobin_spreads_every_shards_calls_over_callees_on_every_shard() {
    for owner in 0..3 {
        let mut cluster = Cluster::new(3, 11);
        let procedure = uri_owned_by(owner, 3, "com.rr");
        let callees = [cluster.client(1), cluster.client(2), cluster.client(0)];
        let ids: Vec<u64> = callees
            .iter()
            .map(|&callee| cluster.register_shared(callee, 1, &procedure, "roundrobin"))
            .collect();
        assert!(ids.iter().all(|&id| id == ids[0]), "one id: {ids:?}");
        let view = cluster.agreed_registration(&procedure).unwrap();
        assert_eq!((view.id, view.invoke), (ids[0], "roundrobin"));
        assert_eq!(view.callees.len(), 3);
        // Each shard's cursor is its own, but from any one shard the calls cycle over all
        // three callees in registration order.
        for shard in 0..3 {
            let caller = cluster.client(shard);
            let order: Vec<usize> = (1..=6)
                .map(|request| cluster.call_shared(caller, request, &procedure, &callees))
                .collect();
            assert_eq!(order, [0, 1, 2, 0, 1, 2], "calls from shard {shard}");
            cluster.close(caller);
        }
        for callee in callees {
            cluster.close(callee);
        }
        cluster.drain();
        cluster.assert_tables_empty();
    }
}

#[test]
fn first_and_last_across_shards_move_on_when_their_callee_goes() {
    for policy in ["first", "last"] {
        let mut cluster = Cluster::new(3, 12);
        let callees = [cluster.client(1), cluster.client(2), cluster.client(0)];
        let id = cluster.register_shared(callees[0], 1, "com.hot", policy);
        for &callee in &callees[1..] {
            assert_eq!(cluster.register_shared(callee, 1, "com.hot", policy), id);
        }
        let caller = cluster.client(0);
        let (chosen, then) = if policy == "first" { (0, 1) } else { (2, 1) };
        for request in 1..=2 {
            assert_eq!(
                cluster.call_shared(caller, request, "com.hot", &callees),
                chosen
            );
        }
        // The chosen one unregisters: the registration and its id stay for the others.
        cluster.unregister(callees[chosen], 2, id);
        assert_eq!(cluster.agreed_registration("com.hot").unwrap().id, id);
        for request in 3..=4 {
            assert_eq!(
                cluster.call_shared(caller, request, "com.hot", &callees),
                then
            );
        }
        // The next one leaves abruptly: the last one remains.
        cluster.close(callees[then]);
        cluster.drain();
        let last = if policy == "first" { 2 } else { 0 };
        let remaining = [callees[last]];
        assert_eq!(cluster.call_shared(caller, 5, "com.hot", &remaining), 0);
        assert_eq!(
            cluster
                .agreed_registration("com.hot")
                .unwrap()
                .callees
                .len(),
            1
        );
        // And with it the registration goes, everywhere.
        cluster.close(callees[last]);
        cluster.drain();
        assert!(cluster.agreed_registration("com.hot").is_none());
        cluster.call(caller, 6, "com.hot", 0);
        cluster.drain();
        match cluster.next(caller).msg() {
            Message::Error { error, .. } => assert_eq!(error, uri::NO_SUCH_PROCEDURE),
            other => panic!("expected ERROR, got {other:?}"),
        }
        cluster.close(callees[chosen]);
        cluster.close(caller);
        cluster.drain();
        cluster.assert_tables_empty();
    }
}

#[test]
fn shared_joins_are_refused_across_shards_for_another_policy_or_the_same_session() {
    let mut cluster = Cluster::new(3, 13);
    let a = cluster.client(0);
    let b = cluster.client(1);
    let c = cluster.client(2);
    let id = cluster.register_shared(a, 1, "com.shared", "random");
    let refused = |cluster: &mut Cluster, conn, request, policy| match cluster
        .register_shared_reply(conn, request, "com.shared", policy)
        .msg()
    {
        Message::Error { error, .. } => assert_eq!(error, uri::PROCEDURE_ALREADY_EXISTS),
        other => panic!("expected ERROR, got {other:?}"),
    };
    refused(&mut cluster, b, 1, "roundrobin");
    refused(&mut cluster, b, 2, "single");
    refused(&mut cluster, a, 2, "random");
    assert_eq!(cluster.register_shared(c, 1, "com.shared", "random"), id);
    let view = cluster.agreed_registration("com.shared").unwrap();
    assert_eq!(view.invoke, "random");
    assert_eq!(view.callees.len(), 2);
    // A bad policy is refused on the session's own shard, before any cross-shard traffic.
    cluster.send(
        b,
        &Message::Register {
            request: 3,
            options: {
                let mut options = Dict::new();
                options.insert("invoke", Value::Str("everyone".into()));
                options
            },
            procedure: "com.shared".into(),
        },
    );
    assert_eq!(cluster.undelivered(), 0);
    match cluster.next(b).msg() {
        Message::Error { error, .. } => assert_eq!(error, uri::INVALID_ARGUMENT),
        other => panic!("expected ERROR, got {other:?}"),
    }
    for conn in [a, b, c] {
        cluster.close(conn);
    }
    cluster.drain();
    cluster.assert_tables_empty();
}

/// The documented race: the caller's replica still lists a remote callee whose UNREGISTER has
/// started, so the call gets `no_such_procedure` from the callee's shard (no re-dispatch); a
/// local callee in the same state is skipped instead, and the call reaches another callee.
#[test]
fn a_call_racing_with_a_callees_unregister_is_refused_remotely_and_rerouted_locally() {
    let mut cluster = Cluster::new(2, 14);
    // Owned by shard 1, so that shard 0's replica learns of a removal only by message.
    let procedure = uri_owned_by(1, 2, "com.hot");
    let remote = cluster.client(1);
    let local = cluster.client(0);
    let caller = cluster.client(0);
    let id = cluster.register_shared(remote, 1, &procedure, "first");
    cluster.register_shared(local, 1, &procedure, "first");
    // The oldest (remote) callee starts unregistering; shard 0 has not heard yet.
    cluster.send(
        remote,
        &Message::Unregister {
            request: 2,
            registration: id,
        },
    );
    cluster.call(caller, 1, &procedure, 0);
    cluster.drain();
    match cluster.next(caller).msg() {
        Message::Error { request, error, .. } => {
            assert_eq!((request, &*error), (1, uri::NO_SUCH_PROCEDURE))
        }
        other => panic!("expected ERROR, got {other:?}"),
    }
    assert!(matches!(
        cluster.next(remote).msg(),
        Message::Unregistered { request: 2, .. }
    ));
    cluster.nothing_for(local);
    // Now the other way round: the local callee is the oldest and starts unregistering.
    let newcomer = cluster.client(1);
    assert_eq!(
        cluster.register_shared(newcomer, 1, &procedure, "first"),
        id
    );
    cluster.send(
        local,
        &Message::Unregister {
            request: 2,
            registration: id,
        },
    );
    cluster.call(caller, 2, &procedure, 0);
    cluster.drain();
    // The local one only hears its UNREGISTERED; the call went to the newcomer.
    assert!(matches!(
        cluster.next(local).msg(),
        Message::Unregistered { request: 2, .. }
    ));
    cluster.nothing_for(local);
    let (invocation, _) = cluster.invocation(newcomer);
    cluster.yield_(newcomer, invocation, 0, 0);
    cluster.drain();
    assert!(matches!(
        cluster.next(caller).msg(),
        Message::Result { request: 2, .. }
    ));
    for conn in [remote, local, caller, newcomer] {
        cluster.close(conn);
    }
    cluster.drain();
    cluster.assert_tables_empty();
}

// ------------------------------------------------------------------------------------------
// Gather: wamp.session.count across shards
// ------------------------------------------------------------------------------------------

/// The RESULT's single integer argument, or the ERROR's URI.
fn count_answer(received: &Received) -> Result<(u64, u64), String> {
    match received.msg() {
        Message::Result {
            request, payload, ..
        } => {
            let (list, _) = wire::decode_payload_values(&payload).expect("payload decodes");
            match list.as_slice() {
                [Value::UInt(count)] => Ok((request, *count)),
                other => panic!("expected [count], got {other:?}"),
            }
        }
        Message::Error { error, .. } => Err(error.into_owned()),
        other => panic!("expected RESULT, got {other:?}"),
    }
}

#[test]
fn session_count_is_the_same_from_every_shard_under_any_interleaving() {
    for seed in 0..200u64 {
        let mut rng = Rng(seed);
        let shards = 2 + (seed % 3) as usize;
        let mut cluster = Cluster::new(shards, seed);
        let clients: Vec<Conn> = (0..7).map(|i| cluster.client(i % shards)).collect();
        // A session that never says HELLO is not counted.
        let _silent = cluster.open(0, Serializer::Json);
        // Every client asks at once; the gathers' messages interleave at random.
        for (i, &client) in clients.iter().enumerate() {
            let msg = Message::Call {
                request: 1 + i as u64,
                options: Dict::new(),
                procedure: "wamp.session.count".into(),
                payload: wire::Payload::empty(client.ser),
            };
            cluster.send(client, &msg);
            while rng.below(3) == 0 {
                let busy = cluster.busy_channels();
                if busy.is_empty() {
                    break;
                }
                let (from, to) = busy[rng.below(busy.len())];
                cluster.deliver(from, to);
            }
        }
        while !cluster.busy_channels().is_empty() {
            let busy = cluster.busy_channels();
            let (from, to) = busy[rng.below(busy.len())];
            cluster.deliver(from, to);
        }
        for (i, &client) in clients.iter().enumerate() {
            let answer = count_answer(&cluster.next(client));
            assert_eq!(answer, Ok((1 + i as u64, 7)), "seed {seed}, client {i}");
            cluster.nothing_for(client);
        }
        // A caller that leaves while its gather is in flight gets nothing (the harness checks
        // that nothing is sent to it), and the gather does not linger.
        let msg = Message::Call {
            request: 99,
            options: Dict::new(),
            procedure: "wamp.session.count".into(),
            payload: wire::Payload::empty(Serializer::Json),
        };
        cluster.send(clients[0], &msg);
        cluster.close(clients[0]);
        cluster.drain();
        for &client in &clients[1..] {
            cluster.close(client);
        }
        cluster.drain();
        assert_eq!(cluster.stats().inflight_registry_ops, 0, "seed {seed}");
    }
}
