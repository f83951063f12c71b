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
//! cross-shard cases one by one; one of them sends random requests of authenticated sessions
//! of several roles under random interleavings, and checks each authorization decision
//! against a model of the roles' permissions. Configuration reloads (SIGHUP) land on one shard
//! at a time at random points (from their own random sequence, so the rest of a seed's run is
//! what it was without them): every property above still holds, and no session is closed by
//! a reload.
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
    hello_announcing_all(callee_features, streams_calls, false)
}

/// HELLO.Details as `hello_announcing_both`, the subscriber role announcing
/// subscription_revocation when `revocable_subscriber`.
fn hello_announcing_all(
    callee_features: &[&'static str],
    streams_calls: bool,
    revocable_subscriber: bool,
) -> Dict<'static> {
    let mut roles = Dict::new();
    roles.insert("publisher", Dict::new());
    let mut subscriber = Dict::new();
    if revocable_subscriber {
        let mut features = Dict::new();
        features.insert("subscription_revocation", true);
        subscriber.insert("features", features);
    }
    roles.insert("subscriber", subscriber);
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
    pattern_matches(uri, matching, topic)
}

/// Whether a subscription to `uri` with `matching` covers a PUBLISH to `topic`.
fn pattern_matches(uri: &str, matching: &str, topic: &str) -> bool {
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
    /// A meta procedure (`exact`: asked at a quiet point and compared with the truth).
    Meta {
        ask: MetaAsk,
        sent_at: u64,
        exact: bool,
    },
    /// `wamp.session.kill` of client index `victim`.
    Kill {
        victim: usize,
    },
    /// `wamp.registration.remove_callee` of client index `target` from `registration`.
    RemoveCallee {
        target: usize,
        registration: u64,
    },
    /// `wamp.subscription.remove_subscriber` of client index `target` from `subscription`.
    RemoveSubscriber {
        target: usize,
        subscription: u64,
    },
    /// `wamp.session.add_testament` of the client's testament `index`.
    AddTestament {
        index: usize,
    },
    /// `wamp.session.flush_testaments`, which must drop `expected` testaments.
    FlushTestaments {
        expected: u64,
    },
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
    /// Meta API: it announced registration_revocation / subscription_revocation.
    revocable_callee: bool,
    revocable_subscriber: bool,
    /// When WELCOME arrived, and when it left (said GOODBYE, lost its transport, was killed).
    welcomed_at: u64,
    gone_at: Option<u64>,
    /// It was killed (GOODBYE from the router without having said GOODBYE), and the reasons
    /// the kills asked of it said.
    killed: bool,
    kill_reasons: Vec<&'static str>,
    /// Registrations and subscriptions a `remove_callee`/`remove_subscriber` was sent for
    /// (removed from `registrations`/`subscriptions` then), with the reason given: what the
    /// client may still be invoked or sent EVENTs for, and be told of.
    revoked_registrations: HashMap<u64, (Held, Option<&'static str>)>,
    revoked_subscriptions: HashMap<u64, (SubKey, Option<&'static str>)>,
    /// Revocations it was told of (UNREGISTERED / UNSUBSCRIBED with request 0).
    told_registrations: HashSet<u64>,
    told_subscriptions: HashSet<u64>,
    /// Its testaments, in the order it added them.
    testaments: Vec<Will>,
    /// REGISTERED / SUBSCRIBED ids in the order they arrived (meta events must follow it).
    registered_log: Vec<u64>,
    subscribed_log: Vec<u64>,
}

/// One testament a client left with the router.
#[derive(Copy, Clone, Debug)]
struct Will {
    seq: u64,
    detached: bool,
    /// Published with `exclude: [watcher]`: the watcher must not get it.
    excluded: bool,
    flushed: bool,
    /// From the add_testament RESULT.
    publication: Option<u64>,
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
    /// REGISTERED arrived at this time; its REGISTER was sent at `sent_at`.
    since: u64,
    sent_at: u64,
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
    /// A revocation of the client's registration: ends at the next quiet point, when every
    /// replica has applied it, whether the client is alive or not.
    quiet_end: bool,
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
    /// Metrics gathers asked mid-run: (shard asked, request).
    metrics_asked: Vec<(usize, u64)>,
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
    /// The session watching meta events and testaments (realm1 only).
    watcher: Option<Watcher>,
    /// `time` when the current `pump` started (a kill carried out by the delivery before it
    /// is stamped with it).
    pump_started: u64,
    /// Mid-run meta answers, judged at the end of the pump that read them (once every
    /// GOODBYE of a kill that happened before was read too).
    midrun_meta: Vec<MidrunAnswer>,
    /// Answers to the calls of the running `probe_exact`.
    exact_answers: Vec<(MetaAsk, MetaAnswer)>,
    /// Answers to kills: (victim, ok).
    kill_answers: Vec<(usize, bool)>,
    /// Answers to revocations: (registration (else subscription), target, id, ok).
    removal_answers: Vec<(bool, usize, u64, bool)>,
    /// What the meta API did in this run.
    meta: MetaCounts,
    /// The configuration the run started with, and the reloads that land on one shard at a
    /// time (drawn from their own sequence): the shards that got a config with the extra
    /// realm hold it (retired or not) to the end.
    config: RouterConfig,
    reload_rng: Rng,
    reloads: usize,
    extra_realm_on: Vec<bool>,
}

/// A realm that some reloads add and others remove again (no client uses it).
const EXTRA_REALM: &str = "com.sim.extra";

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
            measure_call_latency: true,
            ..RouterConfig::default()
        };
        Scenario {
            metrics_asked: Vec::new(),
            rng: Rng(seed),
            cluster: Cluster::with_config(shards, seed, config.clone()),
            config,
            reload_rng: Rng(seed ^ 0x7265_6c6f_6164),
            reloads: 0,
            extra_realm_on: vec![false; shards],
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
            watcher: None,
            pump_started: 0,
            midrun_meta: Vec::new(),
            exact_answers: Vec::new(),
            kill_answers: Vec::new(),
            removal_answers: Vec::new(),
            meta: MetaCounts::default(),
        }
    }

    fn join(&mut self) {
        let shard = self.rng.below(self.cluster.shards());
        self.join_at(shard);
    }

    /// A new client on `shard` sends HELLO (and is welcomed at once).
    fn join_at(&mut self, shard: usize) {
        // Every serializer: payloads cross between all of them (transcoded once per receiver's
        // serializer, forwarded untouched between equal ones).
        let ser = Serializer::ALL[self.rng.below(Serializer::COUNT)];
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
        let revocable_callee = self.rng.chance(50);
        if revocable_callee {
            features.push("registration_revocation");
        }
        let revocable_subscriber = self.rng.chance(50);
        self.cluster.send(
            conn,
            &Message::Hello {
                realm: self.realm.into(),
                details: hello_announcing_all(&features, sends_chunks, revocable_subscriber),
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
            revocable_callee,
            revocable_subscriber,
            welcomed_at: 0,
            gone_at: None,
            killed: false,
            kill_reasons: Vec::new(),
            revoked_registrations: HashMap::new(),
            revoked_subscriptions: HashMap::new(),
            told_registrations: HashSet::new(),
            told_subscriptions: HashSet::new(),
            testaments: Vec::new(),
            registered_log: Vec::new(),
            subscribed_log: Vec::new(),
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
        match self.rng.below(110) {
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
                        quiet_end: false,
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
                    quiet_end: false,
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
            96..=99 => {
                self.leave(c);
                self.join();
            }
            100..=103 => self.ask_meta_midrun(c),
            104 => self.kill_one(c),
            105 => self.remove_callee(c),
            106 => self.remove_subscriber(c),
            107 | 108 => self.add_testament(c),
            _ => self.flush_testaments(c),
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
        self.end_span_at(procedure, callee, self.time);
    }

    fn end_span_at(&mut self, procedure: &'static str, callee: u64, time: u64) {
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
        self.clients[c].leaving = true;
        if self.rng.chance(50) {
            let msg = Message::Goodbye {
                details: Dict::new(),
                reason: "wamp.close.close_realm".into(),
            };
            self.cluster.send(conn, &msg);
            self.pump();
        }
        self.depart(c, self.time);
        self.cluster.close(conn);
    }

    /// Client `c` is gone (since `at`): the model forgets what it held.
    fn depart(&mut self, c: usize, at: u64) {
        let me = self.clients[c].id;
        self.clients[c].leaving = true;
        self.clients[c].alive = false;
        self.clients[c].gone_at = Some(at);
        let procedures: Vec<&'static str> = self.clients[c]
            .registrations
            .drain()
            .map(|(_, held)| held.procedure)
            .collect();
        for procedure in procedures {
            self.end_span_at(procedure, me, at);
            // Its removal travels to the owner and on to every replica: ends at the next
            // quiet point (see `step`). Its REGISTERs/UNREGISTERs in flight end there too.
            self.fluxes.push(Flux {
                procedure,
                client: me,
                start: at,
                end: None,
                applied: true,
                quiet_end: false,
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
    }

    /// Lets every live client (and the watcher) read what the routers sent it; then judges
    /// the mid-run meta answers read.
    fn pump(&mut self) {
        self.pump_started = self.time;
        for c in 0..self.clients.len() {
            if !self.clients[c].alive {
                continue;
            }
            while let Some(frame) = self.cluster.recv(self.clients[c].conn) {
                self.time += 1;
                self.on_frame(c, &frame);
                if !self.clients[c].alive {
                    break;
                }
            }
        }
        self.pump_watcher();
        for answer in std::mem::take(&mut self.midrun_meta) {
            self.check_midrun_meta(answer);
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
                self.clients[c].welcomed_at = self.time;
            }
            Message::Goodbye { .. } if self.clients[c].leaving => {}
            Message::Goodbye { details, reason } => self.on_killed(c, &details, &reason),
            Message::Unregistered {
                request: 0,
                details,
            } => self.on_revoked(c, true, details.as_ref()),
            Message::Unsubscribed {
                request: 0,
                details,
            } => self.on_revoked(c, false, details.as_ref()),
            Message::Result {
                request, payload, ..
            } if self.is_meta_request(c, request) => {
                let (args, kwargs) =
                    wire::decode_payload_values(&payload).expect("payload decodes");
                assert!(
                    kwargs.is_none(),
                    "meta procedures answer with arguments only"
                );
                let args = args.into_iter().map(Value::into_owned).collect();
                self.on_meta_answer(c, request, Ok(args));
            }
            Message::Error {
                request_type: wire::code::CALL,
                request,
                error,
                ..
            } if self.is_meta_request(c, request) => {
                self.on_meta_answer(c, request, Err(error.to_string()));
            }
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
                    sent_at,
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
                    since: self.time,
                    sent_at,
                };
                self.clients[c].registered_log.push(registration);
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
                self.clients[c].subscribed_log.push(subscription);
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
                let client = &self.clients[c];
                let Some(held) = client.registrations.get(&registration).or_else(|| {
                    let revoked = client.revoked_registrations.get(&registration);
                    revoked.map(|(held, _)| held)
                }) else {
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
                        // Canceled by its caller, or its callee left (or never got it). A killed
                        // callee may read its GOODBYE later in this pump than the caller this.
                        let call = &self.calls[&(me, seq)];
                        let callee_left = call.callee.map_or(true, |callee| {
                            let callee = &self.clients[callee as usize - 1];
                            callee.leaving || !callee.kill_reasons.is_empty()
                        });
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
                let client = &self.clients[c];
                let Some(&sub) = client.subscriptions.get(&subscription).or_else(|| {
                    let revoked = client.revoked_subscriptions.get(&subscription);
                    revoked.map(|(sub, _)| sub)
                }) else {
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
        self.cluster.set_clock_us(self.time * 10);
        if self.rng.chance(2) {
            // A scrape of the admin listener, at any point of the interleaving.
            let shard = self.rng.below(self.cluster.shards());
            self.cluster.ask_metrics(shard, self.time);
            self.metrics_asked.push((shard, self.time));
        }
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
        if self.reload_rng.chance(2) {
            self.reload_one_shard();
        }
        if self.cluster.undelivered() == 0 {
            self.quiet_point();
            if self.rng.chance(3) {
                self.probe_exact(false);
            }
        }
    }

    /// A configuration reload reaches one shard (the others get theirs at other points, as
    /// the runtime's shards do): the extra realm added or removed, the URI bound moved. No
    /// session may be closed by it.
    fn reload_one_shard(&mut self) {
        let shard = self.reload_rng.below(self.cluster.shards());
        let mut config = self.config.clone();
        if self.reload_rng.chance(50) {
            config.realms.push(RealmConfig::new(EXTRA_REALM));
            self.extra_realm_on[shard] = true;
        }
        config.max_uri_length = 1024 + self.reload_rng.below(1024);
        self.cluster.reconfigure_shard(shard, &config);
        self.reloads += 1;
        for client in &self.clients {
            if client.alive && !client.leaving {
                assert!(
                    !self.cluster.was_closed(client.conn),
                    "a reload of shard {shard} closed client {}",
                    client.id
                );
            }
        }
    }

    /// Every channel is empty: every replica has applied everything sent so far, so the
    /// fluxes of departed clients end here.
    fn quiet_point(&mut self) {
        let time = self.time;
        for flux in &mut self.fluxes {
            let alive = self.clients[flux.client as usize - 1].alive;
            if flux.end.is_none() && (!alive || flux.quiet_end) {
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

    /// Every metrics gather asked mid-run was answered once, with one snapshot per shard in
    /// shard order; calls were timed at most once each (a call refused before it was routed,
    /// e.g. no_such_procedure, is not timed).
    fn check_metrics(&mut self) {
        let shards = self.cluster.shards();
        let mut answered = std::mem::take(&mut self.cluster.metrics);
        for asked in &self.metrics_asked {
            let at = answered
                .iter()
                .position(|(shard, request, _)| (*shard, *request) == *asked)
                .unwrap_or_else(|| panic!("metrics gather {asked:?} never answered"));
            let (_, _, snapshots) = answered.swap_remove(at);
            let order: Vec<usize> = snapshots.iter().map(|s| s.shard).collect();
            assert_eq!(order, (0..shards).collect::<Vec<_>>());
        }
        assert!(
            answered.is_empty(),
            "metrics nobody asked for: {}",
            answered.len()
        );
        let now = self.cluster.metrics_from(0, u64::MAX);
        let timed: u64 = now.iter().map(|s| s.latency.count).sum();
        let made = self.calls.len() as u64;
        assert!(timed <= made, "{timed} calls timed, {made} made");
        // A call that reached a callee and was answered went through a pending entry on its
        // caller's shard, which timed it.
        let invoked = self
            .calls
            .values()
            .filter(|call| call.callee.is_some() && call.answers == 1 && !call.caller_left)
            .count() as u64;
        assert!(
            timed >= invoked,
            "{timed} calls timed, {invoked} invoked and answered"
        );
        assert!(now
            .iter()
            .all(|s| s.latency.sum_us <= s.latency.count * self.time * 10));
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
    meta: MetaCounts,
    /// Configuration reloads that landed on a shard mid-run.
    reloads: usize,
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
    if sim.realm == "realm1" {
        sim.add_watcher();
    }
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
    sim.probe_exact(true);
    sim.check_metrics();
    let must_receive_checks = sim.check_delivery();
    sim.check_kills_and_revocations();
    let shared_at_end = sim.check_replicas();
    let retained_topics = sim.check_retained();
    sim.check_history();
    let mut coverage = Coverage {
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
        meta: sim.meta,
        reloads: sim.reloads,
    };
    sim.everyone_leaves();
    sim.check_testaments();
    sim.check_meta_events();
    coverage.meta = sim.meta;
    sim.watcher_leaves();
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
    // A shard that was given the extra realm keeps it (retired when a later reload dropped it).
    let extra_realms = sim.extra_realm_on.iter().filter(|&&on| on).count();
    assert_eq!(
        sim.cluster.stats().realms,
        shards + auto_realms_kept + extra_realms,
        "only realm1 (and the extra realm a reload gave) on each shard, and an auto-created realm where it keeps retained events"
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
            total.meta.add(&coverage.meta);
            total.reloads += coverage.reloads;
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
    // One seed (a replay) may have no subscriber that had to receive anything.
    assert!(count < 50 || (total.answered > 0 && total.must_receive_checks > 0));
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
        count < 50 || total.meta.all_seen(),
        "meta API not exercised: {total:?}"
    );
    assert!(count < 50 || total.reloads > 0, "no reload: {total:?}");
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
// Meta API: session / registration / subscription procedures, kills, revocations, testaments
// and meta events in the random scenarios
// ------------------------------------------------------------------------------------------

/// The topic of every testament (no subscription of `SUBS` nor any history covers it).
const WILL_TOPIC: &str = "org.sim.will";
/// The meta events the watcher subscribes to.
const META_TOPICS: [&str; 8] = [
    "wamp.registration.on_create",
    "wamp.registration.on_register",
    "wamp.registration.on_unregister",
    "wamp.registration.on_delete",
    "wamp.subscription.on_create",
    "wamp.subscription.on_subscribe",
    "wamp.subscription.on_unsubscribe",
    "wamp.subscription.on_delete",
];
const KILL_REASON: &str = "com.sim.kicked";
const KILL_MESSAGE: &str = "out you go";
const REVOKE_REASON: &str = "com.sim.revoked";
/// An id no registration or subscription has (ids are random below 2^53).
const UNKNOWN_ID: u64 = (1 << 52) + 12_345;

/// One meta procedure call and what it asks about.
#[derive(Clone, Copy, Debug)]
enum MetaAsk {
    /// With `filter_authroles` = [role] when given.
    SessionCount(Option<&'static str>),
    SessionList(Option<&'static str>),
    RegistrationList,
    /// (procedure, options.match).
    RegistrationLookup(&'static str, &'static str),
    RegistrationMatch(&'static str),
    RegistrationGet(u64),
    ListCallees(u64),
    CountCallees(u64),
    SubscriptionList,
    SubscriptionLookup(&'static str, &'static str),
    SubscriptionMatch(&'static str),
    SubscriptionGet(u64),
    ListSubscribers(u64),
    CountSubscribers(u64),
}

/// A RESULT's arguments, or an ERROR's URI.
type MetaAnswer = Result<Vec<Value<'static>>, String>;

struct MidrunAnswer {
    client: usize,
    ask: MetaAsk,
    sent_at: u64,
    answer: MetaAnswer,
}

/// What the meta API did in one run.
#[derive(Default, Debug, Clone, Copy)]
struct MetaCounts {
    /// Answers compared with the truth at quiet points, and judged mid-run.
    exact_answers: usize,
    midrun_answers: usize,
    kills_sent: usize,
    killed: usize,
    callees_removed: usize,
    subscribers_removed: usize,
    /// UNREGISTERED / UNSUBSCRIBED with request 0 received.
    revocations_told: usize,
    testaments_added: usize,
    testaments_flushed: usize,
    testaments_received: usize,
    meta_events: usize,
}

impl MetaCounts {
    fn add(&mut self, other: &MetaCounts) {
        self.exact_answers += other.exact_answers;
        self.midrun_answers += other.midrun_answers;
        self.kills_sent += other.kills_sent;
        self.killed += other.killed;
        self.callees_removed += other.callees_removed;
        self.subscribers_removed += other.subscribers_removed;
        self.revocations_told += other.revocations_told;
        self.testaments_added += other.testaments_added;
        self.testaments_flushed += other.testaments_flushed;
        self.testaments_received += other.testaments_received;
        self.meta_events += other.meta_events;
    }

    fn all_seen(&self) -> bool {
        self.exact_answers > 0
            && self.midrun_answers > 0
            && self.kills_sent > 0
            && self.killed > 0
            && self.callees_removed > 0
            && self.subscribers_removed > 0
            && self.revocations_told > 0
            && self.testaments_added > 0
            && self.testaments_flushed > 0
            && self.testaments_received > 0
            && self.meta_events > 0
    }
}

/// A session of realm1 that subscribes to the registration and subscription meta events and
/// to the testaments' topic before anyone else joins, and stays to the end.
struct Watcher {
    conn: Conn,
    session_id: u64,
    /// Subscription id -> topic.
    subscriptions: HashMap<u64, &'static str>,
    /// SUBSCRIBE request -> topic.
    pending: HashMap<u64, &'static str>,
    /// Per session id, the meta events about it in arrival order: (topic, id).
    meta_log: HashMap<u64, Vec<(&'static str, u64)>>,
    /// Testaments received: (client id, seq, publication).
    wills: Vec<(u64, u64, u64)>,
}

/// Registrations, subscriptions and sessions as the model knows them.
#[derive(Default, Debug)]
struct Truth {
    /// Session ids, ascending.
    sessions: Vec<u64>,
    registrations: HashMap<u64, RegistrationTruth>,
    subscriptions: HashMap<u64, SubscriptionTruth>,
}

#[derive(Debug)]
struct RegistrationTruth {
    procedure: &'static str,
    policy: &'static str,
    /// (session id, REGISTERED at, REGISTER sent at).
    callees: Vec<(u64, u64, u64)>,
}

#[derive(Debug)]
struct SubscriptionTruth {
    uri: &'static str,
    matching: &'static str,
    subscribers: BTreeSet<u64>,
}

/// The single argument of a RESULT.
fn single<'v>(ask: &MetaAsk, answer: &'v MetaAnswer) -> &'v Value<'static> {
    match answer {
        Ok(args) if args.len() == 1 => &args[0],
        other => panic!("{ask:?}: expected one argument, got {other:?}"),
    }
}

/// A list of ids (session, registration, subscription).
fn id_list(ask: &MetaAsk, value: &Value<'_>) -> Vec<u64> {
    let list = value
        .as_list()
        .unwrap_or_else(|| panic!("{ask:?}: expected a list, got {value:?}"));
    list.iter()
        .map(|id| {
            id.as_u64()
                .unwrap_or_else(|| panic!("{ask:?}: {id:?} is no id"))
        })
        .collect()
}

fn ascending(ask: &MetaAsk, ids: &[u64]) {
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "{ask:?}: not strictly ascending: {ids:?}"
    );
}

/// `{exact, prefix, wildcard}` lists of ids, each ascending, none in two.
fn policy_lists(ask: &MetaAsk, value: &Value<'_>) -> HashMap<&'static str, Vec<u64>> {
    let dict = value
        .as_dict()
        .unwrap_or_else(|| panic!("{ask:?}: expected a dict, got {value:?}"));
    assert_eq!(dict.len(), 3, "{ask:?}: {dict:?}");
    let mut lists = HashMap::new();
    let mut all = HashSet::new();
    for policy in ["exact", "prefix", "wildcard"] {
        let ids = id_list(ask, dict.get(policy).expect("each policy listed"));
        ascending(ask, &ids);
        for &id in &ids {
            assert!(all.insert(id), "{ask:?}: {id} listed twice");
        }
        lists.insert(policy, ids);
    }
    lists
}

/// `{id, created, uri, match[, invoke]}` of `get`: checks the fields' types and the id,
/// answers (uri, match, invoke).
fn details_of(ask: &MetaAsk, value: &Value<'_>, id: u64) -> (String, String, Option<String>) {
    let dict = value
        .as_dict()
        .unwrap_or_else(|| panic!("{ask:?}: expected a dict, got {value:?}"));
    assert_eq!(dict.get_u64("id"), Some(id), "{ask:?}: {dict:?}");
    let created = dict.get_str("created").expect("created");
    assert!(
        created.len() == 24 && created.starts_with("1970-01-") && created.ends_with('Z'),
        "{ask:?}: created {created:?}"
    );
    let text = |key| dict.get_str(key).map(str::to_string);
    (
        text("uri").expect("uri"),
        text("match").expect("match"),
        text("invoke"),
    )
}

impl Scenario {
    /// The watcher joins realm1 and subscribes, everything delivered.
    fn add_watcher(&mut self) {
        let shard = self.rng.below(self.cluster.shards());
        // Every serializer: payloads cross between all of them (transcoded once per receiver's
        // serializer, forwarded untouched between equal ones).
        let ser = Serializer::ALL[self.rng.below(Serializer::COUNT)];
        let conn = self.cluster.open(shard, ser);
        self.cluster.send(
            conn,
            &Message::Hello {
                realm: "realm1".into(),
                details: hello_details(),
            },
        );
        let frame = self.cluster.recv(conn).expect("WELCOME");
        let Message::Welcome { session, .. } = wire::decode(ser, &frame).unwrap() else {
            panic!("the watcher is not welcomed");
        };
        let mut pending = HashMap::new();
        for (index, topic) in META_TOPICS.into_iter().chain([WILL_TOPIC]).enumerate() {
            let request = index as u64 + 1;
            pending.insert(request, topic);
            let msg = Message::Subscribe {
                request,
                options: Dict::new(),
                topic: topic.into(),
            };
            self.cluster.send(conn, &msg);
        }
        self.watcher = Some(Watcher {
            conn,
            session_id: session,
            subscriptions: HashMap::new(),
            pending,
            meta_log: HashMap::new(),
            wills: Vec::new(),
        });
        self.cluster.drain();
        self.pump();
        assert!(self.watcher.as_ref().unwrap().pending.is_empty());
    }

    /// The watcher reads what the routers sent it.
    fn pump_watcher(&mut self) {
        let Some(conn) = self.watcher.as_ref().map(|watcher| watcher.conn) else {
            return;
        };
        while let Some(frame) = self.cluster.recv(conn) {
            let watcher = self.watcher.as_mut().unwrap();
            match wire::decode(conn.ser, &frame).expect("router frames decode") {
                Message::Subscribed {
                    request,
                    subscription,
                } => {
                    let topic = watcher.pending.remove(&request).expect("a SUBSCRIBE");
                    watcher.subscriptions.insert(subscription, topic);
                }
                Message::Event {
                    subscription,
                    publication,
                    details,
                    payload,
                } => {
                    let topic = watcher.subscriptions[&subscription];
                    assert_eq!(
                        details.get("publisher"),
                        None,
                        "the router discloses nobody"
                    );
                    assert_eq!(details.get("topic"), None, "exact subscriptions");
                    let (args, kwargs) = wire::decode_payload_values(&payload).unwrap();
                    if topic == WILL_TOPIC {
                        assert!(kwargs.is_none() || kwargs.as_ref().is_some_and(Dict::is_empty));
                        let [Value::UInt(client), Value::UInt(seq)] = args.as_slice() else {
                            panic!("testament arguments {args:?}");
                        };
                        watcher.wills.push((*client, *seq, publication));
                        self.meta.testaments_received += 1;
                        continue;
                    }
                    assert!(kwargs.is_none(), "{topic}: no kwargs");
                    let (session, id) = match args.as_slice() {
                        [Value::UInt(session), Value::UInt(id)] => (*session, *id),
                        [Value::UInt(session), Value::Dict(details)] => {
                            let id = details.get_u64("id").expect("id");
                            let uri = details.get_str("uri").expect("uri");
                            let matching = details.get_str("match").expect("match");
                            if topic == META_TOPICS[0] {
                                if PROCEDURES.contains(&uri) {
                                    assert_eq!(matching, match_of(uri), "{details:?}");
                                }
                                assert!(details.get_str("invoke").is_some(), "{details:?}");
                            } else {
                                assert_eq!(details.get("invoke"), None, "{details:?}");
                            }
                            (*session, id)
                        }
                        other => panic!("{topic} arguments {other:?}"),
                    };
                    watcher
                        .meta_log
                        .entry(session)
                        .or_default()
                        .push((topic, id));
                    self.meta.meta_events += 1;
                }
                other => panic!("the watcher got unexpected {other:?}"),
            }
        }
    }

    fn is_meta_request(&self, c: usize, request: u64) -> bool {
        matches!(
            self.clients[c].requests.get(&request),
            Some(
                Request::Meta { .. }
                    | Request::Kill { .. }
                    | Request::RemoveCallee { .. }
                    | Request::RemoveSubscriber { .. }
                    | Request::AddTestament { .. }
                    | Request::FlushTestaments { .. }
            )
        )
    }

    fn on_meta_answer(&mut self, c: usize, request: u64, answer: MetaAnswer) {
        let me = self.clients[c].id;
        match self.clients[c].requests.remove(&request).unwrap() {
            Request::Meta {
                ask,
                sent_at,
                exact,
            } => {
                if exact {
                    self.exact_answers.push((ask, answer));
                } else {
                    self.midrun_meta.push(MidrunAnswer {
                        client: c,
                        ask,
                        sent_at,
                        answer,
                    });
                }
            }
            Request::Kill { victim } => {
                let ok = match answer {
                    Ok(args) => {
                        assert!(args.is_empty(), "kill answers no arguments: {args:?}");
                        true
                    }
                    Err(error) => {
                        assert_eq!(error, uri::NO_SUCH_SESSION, "kill of {victim} by {me}");
                        false
                    }
                };
                self.kill_answers.push((victim, ok));
            }
            Request::RemoveCallee {
                target,
                registration,
            } => {
                let ok = match answer {
                    Ok(args) => {
                        assert!(args.is_empty(), "remove_callee answers nothing: {args:?}");
                        true
                    }
                    Err(error) => {
                        assert_eq!(error, uri::NO_SUCH_REGISTRATION, "remove_callee by {me}");
                        false
                    }
                };
                self.meta.callees_removed += usize::from(ok);
                self.removal_answers.push((true, target, registration, ok));
            }
            Request::RemoveSubscriber {
                target,
                subscription,
            } => {
                let ok = match answer {
                    Ok(args) => {
                        assert!(
                            args.is_empty(),
                            "remove_subscriber answers nothing: {args:?}"
                        );
                        true
                    }
                    Err(error) => {
                        assert_eq!(
                            error,
                            uri::NO_SUCH_SUBSCRIPTION,
                            "remove_subscriber by {me}"
                        );
                        false
                    }
                };
                self.meta.subscribers_removed += usize::from(ok);
                self.removal_answers.push((false, target, subscription, ok));
            }
            Request::AddTestament { index } => match answer.as_deref() {
                Ok([Value::UInt(publication)]) => {
                    self.clients[c].testaments[index].publication = Some(*publication);
                }
                other => panic!("add_testament of {me} answered {other:?}"),
            },
            Request::FlushTestaments { expected } => match answer.as_deref() {
                Ok([Value::UInt(flushed)]) => {
                    assert_eq!(*flushed, expected, "flush_testaments of {me}");
                }
                other => panic!("flush_testaments of {me} answered {other:?}"),
            },
            _ => unreachable!("is_meta_request"),
        }
    }

    /// GOODBYE from the router to a client that did not say GOODBYE: a kill asked of it.
    fn on_killed(&mut self, c: usize, details: &Dict<'_>, reason: &str) {
        let me = self.clients[c].id;
        let client = &mut self.clients[c];
        assert!(
            client.kill_reasons.contains(&reason),
            "GOODBYE {reason} to {me}, which no kill asked with it: {:?}",
            client.kill_reasons
        );
        if let Some(message) = details.get("message") {
            assert_eq!(message.as_str(), Some(KILL_MESSAGE), "{details:?}");
        }
        client.killed = true;
        self.meta.killed += 1;
        let conn = client.conn;
        // The kill was carried out by the delivery just before this pump.
        self.depart(c, self.pump_started);
        self.cluster.close(conn);
    }

    /// UNREGISTERED / UNSUBSCRIBED with request 0: a revocation this client announced it
    /// takes, of something a revocation was sent for, with the reason it gave.
    fn on_revoked(&mut self, c: usize, registration: bool, details: Option<&Dict<'_>>) {
        let me = self.clients[c].id;
        let details = details.expect("a revocation has details");
        let client = &mut self.clients[c];
        let (kind, announced) = if registration {
            ("registration", client.revocable_callee)
        } else {
            ("subscription", client.revocable_subscriber)
        };
        assert!(
            announced,
            "{kind} revocation told to {me}, which did not announce it"
        );
        let id = details.get_u64(kind).expect("the revoked id");
        let reason = if registration {
            client
                .revoked_registrations
                .get(&id)
                .map(|(_, reason)| reason)
        } else {
            client
                .revoked_subscriptions
                .get(&id)
                .map(|(_, reason)| reason)
        };
        let Some(reason) = reason else {
            panic!("{me} told of the revocation of {kind} {id}, which nobody revoked");
        };
        assert_eq!(details.get_str("reason"), *reason, "{details:?}");
        if registration {
            client.told_registrations.insert(id);
        } else {
            client.told_subscriptions.insert(id);
        }
        self.meta.revocations_told += 1;
    }

    /// CALL a meta procedure for `ask`.
    fn send_meta(&mut self, c: usize, ask: MetaAsk, exact: bool) {
        let conn = self.clients[c].conn;
        let by_keyword = self.rng.chance(30);
        let mut args: Vec<Value<'static>> = Vec::new();
        let mut kwargs = Dict::new();
        let mut first = |name: &'static str, value: Value<'static>| {
            if by_keyword {
                kwargs.insert(name, value);
            } else {
                args.push(value);
            }
        };
        let procedure = match ask {
            MetaAsk::SessionCount(filter) | MetaAsk::SessionList(filter) => {
                if let Some(role) = filter {
                    first("filter_authroles", Value::List(vec![role.into()]));
                }
                if matches!(ask, MetaAsk::SessionCount(_)) {
                    "wamp.session.count"
                } else {
                    "wamp.session.list"
                }
            }
            MetaAsk::RegistrationList => "wamp.registration.list",
            MetaAsk::SubscriptionList => "wamp.subscription.list",
            MetaAsk::RegistrationLookup(uri, matching)
            | MetaAsk::SubscriptionLookup(uri, matching) => {
                let registration = matches!(ask, MetaAsk::RegistrationLookup(..));
                first(if registration { "procedure" } else { "topic" }, uri.into());
                if matching != "exact" || self.rng.chance(50) {
                    let mut options = Dict::new();
                    options.insert("match", matching);
                    kwargs.insert("options", options);
                }
                if registration {
                    "wamp.registration.lookup"
                } else {
                    "wamp.subscription.lookup"
                }
            }
            MetaAsk::RegistrationMatch(uri) => {
                first("procedure", uri.into());
                "wamp.registration.match"
            }
            MetaAsk::SubscriptionMatch(uri) => {
                first("topic", uri.into());
                "wamp.subscription.match"
            }
            MetaAsk::RegistrationGet(id) | MetaAsk::ListCallees(id) | MetaAsk::CountCallees(id) => {
                first("registration_id", Value::UInt(id));
                match ask {
                    MetaAsk::RegistrationGet(_) => "wamp.registration.get",
                    MetaAsk::ListCallees(_) => "wamp.registration.list_callees",
                    _ => "wamp.registration.count_callees",
                }
            }
            MetaAsk::SubscriptionGet(id)
            | MetaAsk::ListSubscribers(id)
            | MetaAsk::CountSubscribers(id) => {
                first("subscription_id", Value::UInt(id));
                match ask {
                    MetaAsk::SubscriptionGet(_) => "wamp.subscription.get",
                    MetaAsk::ListSubscribers(_) => "wamp.subscription.list_subscribers",
                    _ => "wamp.subscription.count_subscribers",
                }
            }
        };
        let request = self.request(
            c,
            Request::Meta {
                ask,
                sent_at: self.time,
                exact,
            },
        );
        self.call_meta(conn, request, procedure, &args, &kwargs);
    }

    fn call_meta(
        &mut self,
        conn: Conn,
        request: u64,
        procedure: &str,
        args: &[Value<'_>],
        kwargs: &Dict<'_>,
    ) {
        let payload =
            wire::payload_from_args(conn.ser, args, (!kwargs.is_empty()).then_some(kwargs))
                .unwrap();
        let msg = Message::Call {
            request,
            options: Dict::new(),
            procedure: procedure.into(),
            payload: payload.as_payload(),
        };
        self.cluster.send(conn, &msg);
    }

    /// A random meta question about the sessions, the ids in `registrations` and
    /// `subscriptions` (or an unknown one), the URIs of the scenario.
    fn random_meta_ask(&mut self, registrations: &[u64], subscriptions: &[u64]) -> MetaAsk {
        let filter = [None, None, Some("anonymous"), Some(NOBODY_ROLE)][self.rng.below(4)];
        let pick = |rng: &mut Rng, ids: &[u64]| {
            if ids.is_empty() || rng.chance(10) {
                UNKNOWN_ID
            } else {
                ids[rng.below(ids.len())]
            }
        };
        match self.rng.below(14) {
            0 => MetaAsk::SessionCount(filter),
            1 => MetaAsk::SessionList(filter),
            2 => MetaAsk::RegistrationList,
            3 => {
                let procedure = PROCEDURES[self.rng.below(PROCEDURES.len())];
                let matching = if self.rng.chance(80) {
                    match_of(procedure)
                } else {
                    ["exact", "prefix", "wildcard"][self.rng.below(3)]
                };
                MetaAsk::RegistrationLookup(procedure, matching)
            }
            4 => MetaAsk::RegistrationMatch(CALLED[self.rng.below(CALLED.len())]),
            5 => MetaAsk::RegistrationGet(pick(&mut self.rng, registrations)),
            6 => MetaAsk::ListCallees(pick(&mut self.rng, registrations)),
            7 => MetaAsk::CountCallees(pick(&mut self.rng, registrations)),
            8 => MetaAsk::SubscriptionList,
            9 => {
                let (uri, matching) = SUBS[self.rng.below(SUBS.len())];
                let matching = if self.rng.chance(80) {
                    matching
                } else {
                    ["exact", "prefix", "wildcard"][self.rng.below(3)]
                };
                MetaAsk::SubscriptionLookup(uri, matching)
            }
            10 => {
                let topics = [
                    TOPICS[0], TOPICS[1], TOPICS[2], TOPICS[3], WILL_TOPIC, "com.x",
                ];
                MetaAsk::SubscriptionMatch(topics[self.rng.below(topics.len())])
            }
            11 => MetaAsk::SubscriptionGet(pick(&mut self.rng, subscriptions)),
            12 => MetaAsk::ListSubscribers(pick(&mut self.rng, subscriptions)),
            _ => MetaAsk::CountSubscribers(pick(&mut self.rng, subscriptions)),
        }
    }

    /// Ids of registrations and subscriptions live clients hold now.
    fn held_ids(&self) -> (Vec<u64>, Vec<u64>) {
        let mut registrations = BTreeSet::new();
        let mut subscriptions = BTreeSet::new();
        for client in self.clients.iter().filter(|client| client.alive) {
            registrations.extend(client.registrations.keys());
            subscriptions.extend(client.subscriptions.keys());
        }
        if let Some(watcher) = &self.watcher {
            subscriptions.extend(watcher.subscriptions.keys());
        }
        (
            registrations.into_iter().collect(),
            subscriptions.into_iter().collect(),
        )
    }

    /// Client `c` asks a random meta question mid-run (judged by `check_midrun_meta`).
    fn ask_meta_midrun(&mut self, c: usize) {
        let (registrations, subscriptions) = self.held_ids();
        let ask = self.random_meta_ask(&registrations, &subscriptions);
        self.send_meta(c, ask, false);
    }

    /// What the model holds for certain: the sessions welcomed before `before` that have not
    /// left (nor started to), the registrations and subscriptions they hold since before it,
    /// and the watcher's. At a quiet point with `before` = MAX, exactly what the router holds.
    fn truth(&self, before: u64) -> Truth {
        let mut truth = Truth::default();
        if let Some(watcher) = &self.watcher {
            truth.sessions.push(watcher.session_id);
            for (&id, &topic) in &watcher.subscriptions {
                let subscription =
                    truth
                        .subscriptions
                        .entry(id)
                        .or_insert_with(|| SubscriptionTruth {
                            uri: topic,
                            matching: "exact",
                            subscribers: BTreeSet::new(),
                        });
                subscription.subscribers.insert(watcher.session_id);
            }
        }
        for client in &self.clients {
            if !client.alive || client.leaving || !client.welcomed || client.welcomed_at >= before {
                continue;
            }
            let session = client.session_id;
            truth.sessions.push(session);
            for (&id, held) in &client.registrations {
                if held.since >= before {
                    continue;
                }
                let registration =
                    truth
                        .registrations
                        .entry(id)
                        .or_insert_with(|| RegistrationTruth {
                            procedure: held.procedure,
                            policy: held.policy,
                            callees: Vec::new(),
                        });
                assert_eq!(
                    (registration.procedure, registration.policy),
                    (held.procedure, held.policy),
                    "registration {id}"
                );
                registration
                    .callees
                    .push((session, held.since, held.sent_at));
            }
            for (&id, &sub) in &client.subscriptions {
                if self.subscribed_since[&(client.id, sub)] >= before {
                    continue;
                }
                let (uri, matching) = SUBS[sub];
                let subscription =
                    truth
                        .subscriptions
                        .entry(id)
                        .or_insert_with(|| SubscriptionTruth {
                            uri,
                            matching,
                            subscribers: BTreeSet::new(),
                        });
                assert_eq!(
                    (subscription.uri, subscription.matching),
                    (uri, matching),
                    "subscription {id}"
                );
                subscription.subscribers.insert(session);
            }
        }
        truth.sessions.sort_unstable();
        truth
    }

    /// The sessions that may be in an answer computed between `sent_at` and now: welcomed by
    /// now, not gone before `sent_at`.
    fn possible_sessions(&self, sent_at: u64) -> BTreeSet<u64> {
        let mut sessions: BTreeSet<u64> = self
            .clients
            .iter()
            .filter(|client| client.welcomed && client.gone_at.map_or(true, |at| at >= sent_at))
            .map(|client| client.session_id)
            .collect();
        sessions.extend(self.watcher.as_ref().map(|watcher| watcher.session_id));
        sessions
    }

    fn check_midrun_meta(&mut self, answer: MidrunAnswer) {
        let truth = self.truth(answer.sent_at);
        let possible = self.possible_sessions(answer.sent_at);
        let caller = self.clients[answer.client].session_id;
        judge_meta(
            &answer.ask,
            &answer.answer,
            &truth,
            &possible,
            false,
            caller,
        );
        self.meta.midrun_answers += 1;
    }

    /// At a quiet point: a random client asks meta questions (all of them when `full`, else a
    /// few at random), everything is delivered, and every answer must be the truth.
    fn probe_exact(&mut self, full: bool) {
        let asking: Vec<usize> = (0..self.clients.len())
            .filter(|&c| {
                let client = &self.clients[c];
                client.alive && client.welcomed && !client.leaving
            })
            .collect();
        if asking.is_empty() {
            return;
        }
        assert_eq!(self.cluster.undelivered(), 0, "probes at quiet points");
        let c = asking[self.rng.below(asking.len())];
        let truth = self.truth(u64::MAX);
        let mut registrations: Vec<u64> = truth.registrations.keys().copied().collect();
        let mut subscriptions: Vec<u64> = truth.subscriptions.keys().copied().collect();
        registrations.sort_unstable();
        subscriptions.sort_unstable();
        let asks = if full {
            let mut asks = Vec::new();
            for filter in [None, Some("anonymous"), Some(NOBODY_ROLE)] {
                asks.push(MetaAsk::SessionCount(filter));
                asks.push(MetaAsk::SessionList(filter));
            }
            asks.push(MetaAsk::RegistrationList);
            asks.push(MetaAsk::SubscriptionList);
            for procedure in PROCEDURES {
                asks.push(MetaAsk::RegistrationLookup(procedure, match_of(procedure)));
            }
            asks.push(MetaAsk::RegistrationLookup("com.q", "exact"));
            for called in CALLED {
                asks.push(MetaAsk::RegistrationMatch(called));
            }
            for (uri, matching) in SUBS {
                asks.push(MetaAsk::SubscriptionLookup(uri, matching));
            }
            asks.push(MetaAsk::SubscriptionLookup("com.t0", "wildcard"));
            for topic in TOPICS.into_iter().chain([WILL_TOPIC, "com.x"]) {
                asks.push(MetaAsk::SubscriptionMatch(topic));
            }
            for &id in registrations.iter().chain([&UNKNOWN_ID]) {
                asks.push(MetaAsk::RegistrationGet(id));
                asks.push(MetaAsk::ListCallees(id));
                asks.push(MetaAsk::CountCallees(id));
            }
            for &id in subscriptions.iter().chain([&UNKNOWN_ID]) {
                asks.push(MetaAsk::SubscriptionGet(id));
                asks.push(MetaAsk::ListSubscribers(id));
                asks.push(MetaAsk::CountSubscribers(id));
            }
            asks
        } else {
            (0..4)
                .map(|_| self.random_meta_ask(&registrations, &subscriptions))
                .collect()
        };
        for &ask in &asks {
            self.send_meta(c, ask, true);
        }
        self.pump();
        while !self.cluster.busy_channels().is_empty() {
            self.time += 1;
            let busy = self.cluster.busy_channels();
            let (from, to) = busy[self.rng.below(busy.len())];
            self.cluster.deliver(from, to);
            self.pump();
        }
        let answers = std::mem::take(&mut self.exact_answers);
        assert_eq!(answers.len(), asks.len(), "every meta call answered");
        let possible: BTreeSet<u64> = truth.sessions.iter().copied().collect();
        let caller = self.clients[c].session_id;
        for (ask, answer) in &answers {
            judge_meta(ask, answer, &truth, &possible, true, caller);
        }
        self.meta.exact_answers += answers.len();
    }

    /// Client `c` kills another live client with `wamp.session.kill`.
    fn kill_one(&mut self, c: usize) {
        let victims: Vec<usize> = (0..self.clients.len())
            .filter(|&v| {
                let client = &self.clients[v];
                v != c && client.alive && client.welcomed && !client.leaving
            })
            .collect();
        if victims.is_empty() {
            return;
        }
        let victim = victims[self.rng.below(victims.len())];
        let reason = self.rng.chance(50).then_some(KILL_REASON);
        self.clients[victim]
            .kill_reasons
            .push(reason.unwrap_or(uri::CLOSE_KILLED));
        let mut args = vec![Value::UInt(self.clients[victim].session_id)];
        let mut kwargs = Dict::new();
        if let Some(reason) = reason {
            if self.rng.chance(50) {
                args.push(reason.into());
            } else {
                kwargs.insert("reason", reason);
            }
        }
        if self.rng.chance(50) {
            kwargs.insert("message", KILL_MESSAGE);
        }
        let request = self.request(c, Request::Kill { victim });
        let conn = self.clients[c].conn;
        self.call_meta(conn, request, "wamp.session.kill", &args, &kwargs);
        self.meta.kills_sent += 1;
    }

    /// Client `c` removes a live client from one of its registrations: the model forgets it
    /// at once (a flux of its procedure until the next quiet point).
    fn remove_callee(&mut self, c: usize) {
        let targets: Vec<usize> = (0..self.clients.len())
            .filter(|&t| {
                let client = &self.clients[t];
                client.alive && !client.leaving && !client.registrations.is_empty()
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let target = targets[self.rng.below(targets.len())];
        let mut ids: Vec<u64> = self.clients[target].registrations.keys().copied().collect();
        ids.sort_unstable();
        let registration = ids[self.rng.below(ids.len())];
        let held = self.clients[target]
            .registrations
            .remove(&registration)
            .unwrap();
        let reason = self.rng.chance(50).then_some(REVOKE_REASON);
        let client = &mut self.clients[target];
        client
            .revoked_registrations
            .insert(registration, (held, reason));
        let (callee, session) = (client.id, client.session_id);
        self.end_span(held.procedure, callee);
        self.fluxes.push(Flux {
            procedure: held.procedure,
            client: callee,
            start: self.time,
            end: None,
            applied: true,
            quiet_end: true,
        });
        let mut args = vec![Value::UInt(registration), Value::UInt(session)];
        if let Some(reason) = reason {
            args.push(reason.into());
        }
        let request = self.request(
            c,
            Request::RemoveCallee {
                target,
                registration,
            },
        );
        let conn = self.clients[c].conn;
        let procedure = "wamp.registration.remove_callee";
        self.call_meta(conn, request, procedure, &args, &Dict::new());
    }

    /// Client `c` removes a live client from one of its subscriptions: the model forgets it
    /// at once (EVENTs may still come under it for a while; none must).
    fn remove_subscriber(&mut self, c: usize) {
        let targets: Vec<usize> = (0..self.clients.len())
            .filter(|&t| {
                let client = &self.clients[t];
                client.alive && !client.leaving && !client.subscriptions.is_empty()
            })
            .collect();
        if targets.is_empty() {
            return;
        }
        let target = targets[self.rng.below(targets.len())];
        let mut ids: Vec<u64> = self.clients[target].subscriptions.keys().copied().collect();
        ids.sort_unstable();
        let subscription = ids[self.rng.below(ids.len())];
        let sub = self.clients[target]
            .subscriptions
            .remove(&subscription)
            .unwrap();
        let reason = self.rng.chance(50).then_some(REVOKE_REASON);
        let client = &mut self.clients[target];
        client
            .revoked_subscriptions
            .insert(subscription, (sub, reason));
        let (subscriber, session) = (client.id, client.session_id);
        self.subscribed_since.remove(&(subscriber, sub));
        let mut args = vec![Value::UInt(subscription), Value::UInt(session)];
        let mut kwargs = Dict::new();
        if let Some(reason) = reason {
            kwargs.insert("reason", reason);
        }
        let request = self.request(
            c,
            Request::RemoveSubscriber {
                target,
                subscription,
            },
        );
        let conn = self.clients[c].conn;
        let procedure = "wamp.subscription.remove_subscriber";
        if self.rng.chance(30) {
            let subscriber = args.pop().unwrap();
            kwargs.insert("subscriber_id", subscriber);
        }
        self.call_meta(conn, request, procedure, &args, &kwargs);
    }

    /// Client `c` leaves a testament: `[client id, seq]` to `WILL_TOPIC`, in a random scope,
    /// with publish options that change nothing for the watcher, or exclude it.
    fn add_testament(&mut self, c: usize) {
        if self.clients[c].testaments.len() >= 12 {
            return;
        }
        let seq = self.clients[c].testaments.len() as u64 + 1;
        let detached = self.rng.chance(30);
        let scope = if detached {
            Some("detached")
        } else {
            self.rng.chance(50).then_some("destroyed")
        };
        let mut options = Dict::new();
        let mut excluded = false;
        let watcher = self.watcher.as_ref().map(|watcher| watcher.session_id);
        match self.rng.below(6) {
            0 => {}
            1 => options.insert("exclude_authrole", Value::List(vec![NOBODY_ROLE.into()])),
            2 => options.insert("eligible_authrole", Value::List(vec!["anonymous".into()])),
            3 => options.insert("acknowledge", true),
            4 => {
                if let Some(watcher) = watcher {
                    options.insert("exclude", Value::List(vec![Value::UInt(watcher)]));
                    excluded = true;
                }
            }
            _ => {
                if self.realm == "realm1" {
                    options.insert("retain", true);
                }
            }
        }
        let me = self.clients[c].id;
        let will_args = Value::List(vec![Value::UInt(me), Value::UInt(seq)]);
        let (args, kwargs) = if self.rng.chance(50) {
            let mut args = vec![WILL_TOPIC.into(), will_args, Value::Null];
            if !options.is_empty() || scope.is_some() {
                args.push(Value::Dict(options));
            }
            args.extend(scope.map(Value::from));
            (args, Dict::new())
        } else {
            let mut kwargs = Dict::new();
            kwargs.insert("args", will_args);
            if self.rng.chance(50) {
                kwargs.insert("kwargs", Dict::new());
            }
            if !options.is_empty() {
                kwargs.insert("publish_options", options);
            }
            if let Some(scope) = scope {
                kwargs.insert("scope", scope);
            }
            (vec![WILL_TOPIC.into()], kwargs)
        };
        let index = self.clients[c].testaments.len();
        self.clients[c].testaments.push(Will {
            seq,
            detached,
            excluded,
            flushed: false,
            publication: None,
        });
        let request = self.request(c, Request::AddTestament { index });
        let conn = self.clients[c].conn;
        self.call_meta(conn, request, "wamp.session.add_testament", &args, &kwargs);
        self.meta.testaments_added += 1;
    }

    /// Client `c` flushes the testaments of a random scope.
    fn flush_testaments(&mut self, c: usize) {
        let detached = self.rng.chance(30);
        let mut expected = 0;
        for will in &mut self.clients[c].testaments {
            if will.detached == detached && !will.flushed {
                will.flushed = true;
                expected += 1;
            }
        }
        self.meta.testaments_flushed += expected as usize;
        let args: Vec<Value<'static>> = if detached {
            vec!["detached".into()]
        } else if self.rng.chance(50) {
            vec!["destroyed".into()]
        } else {
            Vec::new()
        };
        let request = self.request(c, Request::FlushTestaments { expected });
        let conn = self.clients[c].conn;
        self.call_meta(
            conn,
            request,
            "wamp.session.flush_testaments",
            &args,
            &Dict::new(),
        );
    }

    /// After everything settled: every kill answered OK killed its victim (once), one refused
    /// met a victim that was gone; every revocation answered OK was told to a target that
    /// announced the feature, one refused met a target that was gone; the counters agree.
    fn check_kills_and_revocations(&self) {
        let mut ok_kills: HashMap<usize, usize> = HashMap::new();
        for &(victim, ok) in &self.kill_answers {
            let client = &self.clients[victim];
            if ok {
                assert!(
                    client.killed,
                    "kill of {} answered, not carried out",
                    client.id
                );
                *ok_kills.entry(victim).or_default() += 1;
            } else {
                assert!(!client.alive, "kill of live {} refused", client.id);
            }
        }
        let unanswered: HashSet<usize> = self
            .clients
            .iter()
            .flat_map(|client| client.requests.values())
            .filter_map(|request| match request {
                Request::Kill { victim } => Some(*victim),
                _ => None,
            })
            .collect();
        for (v, client) in self.clients.iter().enumerate() {
            let oks = ok_kills.get(&v).copied().unwrap_or(0);
            assert!(oks <= 1, "{} killed {oks} times", client.id);
            if client.killed {
                assert!(
                    oks == 1 || unanswered.contains(&v),
                    "{} killed, no kill of it answered",
                    client.id
                );
            }
        }
        let (mut killed, mut revocations) = (0, 0);
        for router in &self.cluster.routers {
            killed += router.stats().sessions_killed;
            revocations += router.stats().revocations;
        }
        let victims = self.clients.iter().filter(|client| client.killed).count();
        assert_eq!(killed, victims as u64, "sessions_killed");
        let mut oks = 0;
        for &(registration, target, id, ok) in &self.removal_answers {
            let client = &self.clients[target];
            let (announced, told) = if registration {
                (
                    client.revocable_callee,
                    client.told_registrations.contains(&id),
                )
            } else {
                (
                    client.revocable_subscriber,
                    client.told_subscriptions.contains(&id),
                )
            };
            if ok {
                oks += 1;
                assert_eq!(
                    told, announced,
                    "revocation of {id} from {}: told iff announced",
                    client.id
                );
            } else {
                assert!(
                    !client.alive,
                    "revocation of {id} from live {} refused",
                    client.id
                );
            }
        }
        let unanswered = self
            .clients
            .iter()
            .flat_map(|client| client.requests.values())
            .filter(|request| {
                matches!(
                    request,
                    Request::RemoveCallee { .. } | Request::RemoveSubscriber { .. }
                )
            })
            .count();
        assert!(
            oks <= revocations && revocations <= oks + unanswered as u64,
            "revocations: {revocations} counted, {oks} answered OK, {unanswered} unanswered"
        );
    }

    /// After everyone left: the watcher got exactly each client's testaments that were not
    /// flushed nor excluded it, "detached" first then "destroyed", each in the order added,
    /// under the publication ids add_testament answered; the counter has every testament.
    fn check_testaments(&self) {
        let mut published = 0;
        for client in &self.clients {
            let kept = client.testaments.iter().filter(|will| !will.flushed);
            published += kept.clone().count() as u64;
            let Some(watcher) = &self.watcher else {
                continue;
            };
            let mut expected: Vec<(u64, u64)> = kept
                .clone()
                .filter(|will| will.detached && !will.excluded)
                .chain(kept.filter(|will| !will.detached && !will.excluded))
                .map(|will| (will.seq, will.publication.expect("add_testament answered")))
                .collect();
            let got: Vec<(u64, u64)> = watcher
                .wills
                .iter()
                .filter(|&&(from, ..)| from == client.id)
                .map(|&(_, seq, publication)| (seq, publication))
                .collect();
            if got != expected {
                expected.sort_unstable();
                panic!(
                    "testaments of {} (killed: {}): got {got:?}, expected {:?}",
                    client.id, client.killed, client.testaments
                );
            }
        }
        let counted: u64 = self
            .cluster
            .routers
            .iter()
            .map(|router| router.stats().testaments_published)
            .sum();
        assert_eq!(counted, published, "testaments_published");
    }

    /// After everyone left: per session, the registration and subscription meta events came
    /// in an order its operations allow (on_create before on_register/on_subscribe, which
    /// come in the order its REGISTERED/SUBSCRIBED did; on_unregister/on_unsubscribe only of
    /// what it held, on_delete after them), and nothing is left registered or subscribed.
    fn check_meta_events(&self) {
        let Some(watcher) = &self.watcher else {
            return;
        };
        for client in self.clients.iter().filter(|client| client.welcomed) {
            let session = client.session_id;
            let log = watcher
                .meta_log
                .get(&session)
                .map_or(&[][..], Vec::as_slice);
            for (kind, topics, ids) in [
                ("registration", &META_TOPICS[..4], &client.registered_log),
                ("subscription", &META_TOPICS[4..], &client.subscribed_log),
            ] {
                // 0: out, 1: created, 2: in, 3: removed (a deletion may follow).
                let mut state: HashMap<u64, u8> = HashMap::new();
                // A REGISTER/SUBSCRIBE still unanswered when the session went may have made
                // its shard hold the entry; that shard letting go of it can delete it, in this
                // session's name, without an on_register/on_subscribe before (documented in
                // `router/mod.rs`).
                let joining_when_gone = client.requests.values().any(|request| {
                    if kind == "registration" {
                        matches!(request, Request::Register { .. })
                    } else {
                        matches!(request, Request::Subscribe(..))
                    }
                });
                let mut added = Vec::new();
                for &(topic, id) in log {
                    let Some(event) = topics.iter().position(|&t| t == topic) else {
                        continue;
                    };
                    let now = state.entry(id).or_default();
                    let allowed = match event {
                        0 => matches!(*now, 0 | 3),
                        1 => matches!(*now, 0 | 1 | 3),
                        2 => *now == 2,
                        _ => matches!(*now, 1 | 3) || (*now == 0 && joining_when_gone),
                    };
                    assert!(
                        allowed,
                        "{topic} of {kind} {id} for session {session} (client {}) in state {now}: \
                         {log:?}; told {ids:?}, killed {}",
                        client.id, client.killed
                    );
                    *now = [1, 2, 3, 0][event];
                    if event == 1 {
                        added.push(id);
                    }
                }
                assert_eq!(
                    &added, ids,
                    "{kind} meta events of session {session} (client {}) vs what it was told: \
                     {log:?}",
                    client.id
                );
                assert!(
                    state.values().all(|&state| state != 2),
                    "{kind}s of session {session} (client {}) never removed: {log:?}",
                    client.id
                );
            }
        }
    }

    /// The watcher leaves last.
    fn watcher_leaves(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            self.cluster.close(watcher.conn);
            self.cluster.drain();
        }
    }
}

/// Judges one meta answer against `truth`: what the model holds for certain (exactly, when
/// `exact`, asked at a quiet point); `possible`: the sessions that may be listed.
fn judge_meta(
    ask: &MetaAsk,
    answer: &MetaAnswer,
    truth: &Truth,
    possible: &BTreeSet<u64>,
    exact: bool,
    caller: u64,
) {
    match *ask {
        MetaAsk::SessionCount(filter) => {
            let count = single(ask, answer).as_u64().expect("a count") as usize;
            if filter == Some(NOBODY_ROLE) {
                assert_eq!(count, 0, "{ask:?}");
            } else if exact {
                assert_eq!(count, truth.sessions.len(), "{ask:?}: {truth:?}");
            } else {
                assert!(
                    truth.sessions.len() <= count && count <= possible.len(),
                    "{ask:?}: {count} not within {} and {}",
                    truth.sessions.len(),
                    possible.len()
                );
            }
        }
        MetaAsk::SessionList(filter) => {
            let ids = id_list(ask, single(ask, answer));
            ascending(ask, &ids);
            if filter == Some(NOBODY_ROLE) {
                assert!(ids.is_empty(), "{ask:?}: {ids:?}");
            } else if exact {
                assert_eq!(ids, truth.sessions, "{ask:?}");
            } else {
                assert!(
                    ids.contains(&caller),
                    "{ask:?}: caller {caller} not in {ids:?}"
                );
                for session in &truth.sessions {
                    assert!(ids.contains(session), "{ask:?}: {session} missing: {ids:?}");
                }
                for session in &ids {
                    assert!(possible.contains(session), "{ask:?}: {session} was gone");
                }
            }
        }
        MetaAsk::RegistrationList => {
            let lists = policy_lists(ask, single(ask, answer));
            for (id, registration) in &truth.registrations {
                let policy = match_of(registration.procedure);
                assert!(lists[policy].contains(id), "{ask:?}: {id} not {policy}");
            }
            if exact {
                let listed: usize = lists.values().map(Vec::len).sum();
                assert_eq!(listed, truth.registrations.len(), "{ask:?}: {lists:?}");
            }
        }
        MetaAsk::SubscriptionList => {
            let lists = policy_lists(ask, single(ask, answer));
            for (id, subscription) in &truth.subscriptions {
                let policy = subscription.matching;
                assert!(lists[policy].contains(id), "{ask:?}: {id} not {policy}");
            }
            if exact {
                let listed: usize = lists.values().map(Vec::len).sum();
                assert_eq!(
                    listed,
                    truth.subscriptions.len(),
                    "{ask:?}: {lists:?} vs {:?}",
                    truth.subscriptions
                );
            }
        }
        MetaAsk::RegistrationLookup(procedure, matching) => {
            let value = single(ask, answer);
            let expected = truth
                .registrations
                .iter()
                .find(|(_, r)| r.procedure == procedure && match_of(procedure) == matching)
                .map(|(&id, _)| id);
            match expected {
                Some(id) => assert_eq!(value, &Value::UInt(id), "{ask:?}"),
                None if exact || match_of(procedure) != matching => {
                    assert_eq!(value, &Value::Null, "{ask:?}")
                }
                None => assert!(matches!(value, Value::Null | Value::UInt(_)), "{ask:?}"),
            }
        }
        MetaAsk::RegistrationMatch(called) => {
            let value = single(ask, answer);
            let id_of = |procedure: &str| {
                truth
                    .registrations
                    .iter()
                    .find(|(_, r)| r.procedure == procedure)
                    .map(|(&id, _)| id)
            };
            let serving = serving(called);
            if exact {
                let expected = serving.iter().find_map(|procedure| id_of(procedure));
                assert_eq!(value, &expected.map_or(Value::Null, Value::UInt), "{ask:?}");
            } else if let Some(id) = id_of(serving[0]) {
                assert_eq!(value, &Value::UInt(id), "{ask:?}");
            } else {
                assert!(matches!(value, Value::Null | Value::UInt(_)), "{ask:?}");
            }
        }
        MetaAsk::SubscriptionLookup(uri, matching) => {
            let value = single(ask, answer);
            let expected = truth
                .subscriptions
                .iter()
                .find(|(_, s)| s.uri == uri && s.matching == matching)
                .map(|(&id, _)| id);
            let possible = SUBS.contains(&(uri, matching)) || uri == WILL_TOPIC;
            match expected {
                Some(id) => assert_eq!(value, &Value::UInt(id), "{ask:?}"),
                None if exact || !possible => assert_eq!(value, &Value::Null, "{ask:?}"),
                None => assert!(matches!(value, Value::Null | Value::UInt(_)), "{ask:?}"),
            }
        }
        MetaAsk::SubscriptionMatch(topic) => {
            let value = single(ask, answer);
            let ids: BTreeSet<u64> = match value {
                Value::Null => BTreeSet::new(),
                value => {
                    let ids = id_list(ask, value);
                    assert!(!ids.is_empty(), "{ask:?}: an empty list, not null");
                    let set: BTreeSet<u64> = ids.iter().copied().collect();
                    assert_eq!(set.len(), ids.len(), "{ask:?}: {ids:?}");
                    set
                }
            };
            let expected: BTreeSet<u64> = truth
                .subscriptions
                .iter()
                .filter(|(_, s)| pattern_matches(s.uri, s.matching, topic))
                .map(|(&id, _)| id)
                .collect();
            if exact {
                assert_eq!(ids, expected, "{ask:?}");
            } else {
                assert!(
                    ids.is_superset(&expected),
                    "{ask:?}: {ids:?} vs {expected:?}"
                );
            }
        }
        MetaAsk::RegistrationGet(id) | MetaAsk::ListCallees(id) | MetaAsk::CountCallees(id) => {
            let Some(registration) = truth.registrations.get(&id) else {
                assert!(
                    !exact || id != UNKNOWN_ID || answer.is_err(),
                    "{ask:?}: {answer:?}"
                );
                if exact || answer.is_err() {
                    assert_eq!(
                        answer.as_ref().err().map(String::as_str),
                        Some(uri::NO_SUCH_REGISTRATION),
                        "{ask:?}"
                    );
                }
                return;
            };
            let value = single(ask, answer);
            match ask {
                MetaAsk::RegistrationGet(_) => {
                    let (uri, matching, invoke) = details_of(ask, value, id);
                    assert_eq!(
                        (uri.as_str(), matching.as_str(), invoke.as_deref()),
                        (
                            registration.procedure,
                            match_of(registration.procedure),
                            Some(registration.policy)
                        ),
                        "{ask:?}"
                    );
                }
                MetaAsk::ListCallees(_) => {
                    let ids = id_list(ask, value);
                    let position = |session: u64| {
                        ids.iter()
                            .position(|&id| id == session)
                            .unwrap_or_else(|| panic!("{ask:?}: {session} missing: {ids:?}"))
                    };
                    let set: BTreeSet<u64> = ids.iter().copied().collect();
                    assert_eq!(set.len(), ids.len(), "{ask:?}: {ids:?}");
                    if exact {
                        assert_eq!(ids.len(), registration.callees.len(), "{ask:?}: {ids:?}");
                    }
                    // Registration order: a callee REGISTERED before another sent REGISTER
                    // comes first.
                    for &(a, a_since, _) in &registration.callees {
                        for &(b, _, b_sent) in &registration.callees {
                            if a_since < b_sent {
                                assert!(
                                    position(a) < position(b),
                                    "{ask:?}: {a} registered before {b} asked: {ids:?}"
                                );
                            }
                        }
                        position(a);
                    }
                }
                _ => {
                    let count = value.as_u64().expect("a count") as usize;
                    if exact {
                        assert_eq!(count, registration.callees.len(), "{ask:?}");
                    } else {
                        assert!(count >= registration.callees.len(), "{ask:?}");
                    }
                }
            }
        }
        MetaAsk::SubscriptionGet(id)
        | MetaAsk::ListSubscribers(id)
        | MetaAsk::CountSubscribers(id) => {
            let Some(subscription) = truth.subscriptions.get(&id) else {
                if exact || answer.is_err() {
                    assert_eq!(
                        answer.as_ref().err().map(String::as_str),
                        Some(uri::NO_SUCH_SUBSCRIPTION),
                        "{ask:?}"
                    );
                }
                return;
            };
            let value = single(ask, answer);
            match ask {
                MetaAsk::SubscriptionGet(_) => {
                    let (uri, matching, invoke) = details_of(ask, value, id);
                    assert_eq!(
                        (uri.as_str(), matching.as_str(), invoke),
                        (subscription.uri, subscription.matching, None),
                        "{ask:?}"
                    );
                }
                MetaAsk::ListSubscribers(_) => {
                    let ids = id_list(ask, value);
                    ascending(ask, &ids);
                    let set: BTreeSet<u64> = ids.into_iter().collect();
                    if exact {
                        assert_eq!(set, subscription.subscribers, "{ask:?}");
                    } else {
                        assert!(
                            set.is_superset(&subscription.subscribers),
                            "{ask:?}: {set:?}"
                        );
                    }
                }
                _ => {
                    let count = value.as_u64().expect("a count") as usize;
                    if exact {
                        assert_eq!(count, subscription.subscribers.len(), "{ask:?}");
                    } else {
                        assert!(count >= subscription.subscribers.len(), "{ask:?}");
                    }
                }
            }
        }
    }
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

/// `on_delete` names the session whose leaving made the last shard let go of the
/// subscription. Here B's SUBSCRIBE is still joining shard 1 when B goes; A, the only
/// subscriber, unsubscribes; the join completes on shard 1 with nobody waiting and shard 1
/// leaves again, which deletes the subscription in B's name: B had no `on_subscribe` (it never
/// was a subscriber), and A's `on_unsubscribe` did not delete it (shard 1 still held it).
/// Found by the random scenarios (seed 2: `check_meta_events`), which allow exactly this.
#[test]
fn a_deletion_left_by_a_subscribe_whose_session_went_names_that_session() {
    let mut cluster = Cluster::new(3, 21);
    let watcher = cluster.client(0);
    let mut watched = HashMap::new();
    for (request, topic) in [
        "wamp.subscription.on_subscribe",
        "wamp.subscription.on_unsubscribe",
        "wamp.subscription.on_delete",
    ]
    .into_iter()
    .enumerate()
    {
        let request = request as u64 + 1;
        let msg = Message::Subscribe {
            request,
            options: Dict::new(),
            topic: topic.into(),
        };
        cluster.send(watcher, &msg);
        cluster.drain();
        // Its own on_subscribe events may come first.
        let id = loop {
            match cluster.next(watcher).msg() {
                Message::Subscribed {
                    request: r,
                    subscription,
                } if r == request => break subscription,
                Message::Event { .. } => {}
                other => panic!("expected SUBSCRIBED, got {other:?}"),
            }
        };
        watched.insert(id, topic);
    }
    let topic = uri_owned_by(2, 3, "com.gone");
    let a = cluster.client(0);
    let b = cluster.client(1);
    let subscription = cluster.subscribe(a, 1, &topic);
    cluster.send(
        b,
        &Message::Subscribe {
            request: 1,
            options: Dict::new(),
            topic: topic.clone().into(),
        },
    );
    // The owner adds shard 1 for B; B goes before its SUBSCRIBED.
    assert!(cluster.deliver(1, 2));
    cluster.close(b);
    cluster.send(
        a,
        &Message::Unsubscribe {
            request: 2,
            subscription,
        },
    );
    cluster.drain();
    let mut events = Vec::new();
    while let Some(frame) = cluster.recv(watcher) {
        let Message::Event {
            subscription: watching,
            payload,
            ..
        } = wire::decode(watcher.ser, &frame).unwrap()
        else {
            continue;
        };
        let (session, id) = read_args(&payload);
        if id == subscription {
            events.push((watched[&watching], session));
        }
    }
    let deleted: Vec<u64> = events
        .iter()
        .filter(|(topic, _)| *topic == "wamp.subscription.on_delete")
        .map(|&(_, session)| session)
        .collect();
    assert_eq!(deleted.len(), 1, "{events:?}");
    let subscribed: Vec<u64> = events
        .iter()
        .filter(|(topic, _)| *topic == "wamp.subscription.on_subscribe")
        .map(|&(_, session)| session)
        .collect();
    assert_eq!(subscribed.len(), 1, "only A subscribed: {events:?}");
    assert!(
        events.contains(&("wamp.subscription.on_unsubscribe", subscribed[0])),
        "A unsubscribed: {events:?}"
    );
    assert_ne!(
        deleted[0], subscribed[0],
        "the deletion is B's, whose join held the subscription last: {events:?}"
    );
    for conn in [watcher, a] {
        cluster.close(conn);
    }
    cluster.drain();
    cluster.assert_tables_empty();
}

/// A leaving session is not among the receivers of its own testaments: it said GOODBYE (or
/// its transport is gone, or it was killed), and nothing may follow. Found by the router
/// fuzz target (an EVENT sent after `close_session`); here with GOODBYE, where it shows as an
/// EVENT after the router's GOODBYE.
#[test]
fn a_leaving_session_gets_none_of_its_own_testaments() {
    let mut cluster = Cluster::new(2, 22);
    let a = cluster.client(0);
    let watcher = cluster.client(1);
    cluster.subscribe(a, 1, "com.will");
    cluster.subscribe(watcher, 1, "com.will");
    let will = [Value::UInt(7), Value::UInt(8)];
    let arguments = [Value::Str("com.will".into()), Value::List(will.to_vec())];
    let payload = wire::payload_from_args(a.ser, &arguments, None).unwrap();
    cluster.send(
        a,
        &Message::Call {
            request: 2,
            options: Dict::new(),
            procedure: "wamp.session.add_testament".into(),
            payload: payload.as_payload(),
        },
    );
    assert!(matches!(
        cluster.next(a).msg(),
        Message::Result { request: 2, .. }
    ));
    cluster.send(
        a,
        &Message::Goodbye {
            details: Dict::new(),
            reason: "wamp.close.close_realm".into(),
        },
    );
    cluster.drain();
    let mut got = Vec::new();
    while let Some(frame) = cluster.recv(a) {
        got.push(wire::decode(a.ser, &frame).unwrap().name());
    }
    assert_eq!(got, ["GOODBYE"], "what the leaving session got");
    match cluster.next(watcher).msg() {
        Message::Event { payload, .. } => assert_eq!(read_args(&payload), (7, 8)),
        other => panic!("expected the testament, got {other:?}"),
    }
    cluster.close(a);
    cluster.close(watcher);
    cluster.drain();
    cluster.assert_tables_empty();
}

/// An acknowledged PUBLISH into a history kept on another shard is PUBLISHED only once that
/// shard keeps the event, so a publisher told "published" (and anyone it tells) finds it with
/// `get_events` from any shard. Found by the interop `event_history` step at 2 cores, whose
/// query from another session missed the newest event about half the time.
#[test]
fn published_means_kept_in_a_history_on_another_shard() {
    let topic = uri_owned_by(2, 3, "com.kept");
    let mut realm1 = RealmConfig::new("realm1");
    realm1.history = vec![HistoryConfig {
        uri: topic.clone(),
        matching: MatchPolicy::Exact,
        limit: 10,
        max_bytes: 1 << 20,
    }];
    let config = RouterConfig {
        realms: vec![realm1],
        ..RouterConfig::default()
    };
    let mut cluster = Cluster::with_config(3, 23, config);
    let publisher = cluster.client(0);
    let mut options = Dict::new();
    options.insert("acknowledge", true);
    let payload = args(publisher.ser, 1, 2);
    cluster.send(
        publisher,
        &Message::Publish {
            request: 7,
            options,
            topic: topic.clone().into(),
            payload: payload.as_payload(),
        },
    );
    cluster.nothing_for(publisher);
    assert!(
        cluster.deliver(0, 2),
        "the event travels to the history's owner"
    );
    cluster.nothing_for(publisher);
    assert!(cluster.deliver(2, 0), "the owner reports it keeps it");
    let Message::Published { request, .. } = cluster.next(publisher).msg() else {
        panic!("expected PUBLISHED");
    };
    assert_eq!(request, 7);
    // Without acknowledge nothing waits.
    cluster.send(
        publisher,
        &Message::Publish {
            request: 8,
            options: Dict::new(),
            topic: topic.into(),
            payload: payload.as_payload(),
        },
    );
    cluster.drain();
    cluster.nothing_for(publisher);
    assert_eq!(cluster.stats().history_recorded, 2);
    assert_eq!(cluster.stats().inflight_registry_ops, 0);
    cluster.close(publisher);
    cluster.drain();
    cluster.assert_tables_empty();
}

/// UNSUBSCRIBE of a shard's last subscriber of a topic is answered once every shard applied
/// the owner's update, so the meta API no longer knows a subscription its last subscriber was
/// told is gone. Found by the interop `subscription_meta_procedures` step at 2 cores
/// (`wamp.subscription.lookup` right after UNSUBSCRIBED still found it).
#[test]
fn unsubscribed_of_the_last_subscriber_means_gone_everywhere() {
    let mut cluster = Cluster::new(3, 24);
    let topic = uri_owned_by(2, 3, "com.gone");
    let a = cluster.client(0);
    let asker = cluster.client(1);
    let subscription = cluster.subscribe(a, 1, &topic);
    cluster.send(
        a,
        &Message::Unsubscribe {
            request: 2,
            subscription,
        },
    );
    cluster.nothing_for(a);
    cluster.drain();
    assert!(matches!(
        cluster.next(a).msg(),
        Message::Unsubscribed { request: 2, .. }
    ));
    let payload = wire::payload_from_args(asker.ser, &[Value::Str(topic.clone().into())], None)
        .expect("encodes");
    cluster.send(
        asker,
        &Message::Call {
            request: 1,
            options: Dict::new(),
            procedure: "wamp.subscription.lookup".into(),
            payload: payload.as_payload(),
        },
    );
    let answer = cluster.next(asker);
    let Message::Result { payload, .. } = answer.msg() else {
        panic!("expected RESULT");
    };
    let (args, _) = wire::decode_payload_values(&payload).expect("decodes");
    assert_eq!(
        args,
        vec![Value::Null],
        "no subscription of {topic} any more"
    );
    for conn in [a, asker] {
        cluster.close(conn);
    }
    cluster.drain();
    cluster.assert_tables_empty();
}

/// `wamp.registration.remove_callee` answers once every shard applied the removal, so the meta
/// API (and a CALL) from any shard agrees with the RESULT. Found by the interop
/// `registration_revocation` step at 2 cores (`wamp.registration.get` right after the RESULT
/// still found the registration).
#[test]
fn remove_callee_answers_once_every_shard_removed_it() {
    let mut cluster = Cluster::new(3, 25);
    let procedure = uri_owned_by(2, 3, "com.revoked");
    let callee = cluster.client(0);
    let asker = cluster.client(1);
    let registration = cluster.register(callee, 1, &procedure);
    let session_of_callee = {
        // The callee's session id, from the meta API itself.
        let payload = wire::payload_from_args(asker.ser, &[Value::UInt(registration)], None)
            .expect("encodes");
        cluster.send(
            asker,
            &Message::Call {
                request: 1,
                options: Dict::new(),
                procedure: "wamp.registration.list_callees".into(),
                payload: payload.as_payload(),
            },
        );
        let answer = cluster.next(asker);
        let Message::Result { payload, .. } = answer.msg() else {
            panic!("expected RESULT");
        };
        let (args, _) = wire::decode_payload_values(&payload).expect("decodes");
        let Value::List(callees) = &args[0] else {
            panic!("a list: {args:?}");
        };
        callees[0].as_u64().expect("an id")
    };
    let payload = wire::payload_from_args(
        asker.ser,
        &[Value::UInt(registration), Value::UInt(session_of_callee)],
        None,
    )
    .expect("encodes");
    cluster.send(
        asker,
        &Message::Call {
            request: 2,
            options: Dict::new(),
            procedure: "wamp.registration.remove_callee".into(),
            payload: payload.as_payload(),
        },
    );
    // The callee's shard removes it, asks the owner and answers; with that answer in but the
    // owner's update not yet applied anywhere, the asker hears nothing.
    assert!(cluster.deliver(1, 0), "the question to the callee's shard");
    assert!(cluster.deliver(0, 1), "its answer");
    cluster.nothing_for(asker);
    cluster.drain();
    assert!(matches!(
        cluster.next(asker).msg(),
        Message::Result { request: 2, .. }
    ));
    let payload =
        wire::payload_from_args(asker.ser, &[Value::UInt(registration)], None).expect("encodes");
    cluster.send(
        asker,
        &Message::Call {
            request: 3,
            options: Dict::new(),
            procedure: "wamp.registration.get".into(),
            payload: payload.as_payload(),
        },
    );
    let answer = cluster.next(asker);
    let Message::Error { error, .. } = answer.msg() else {
        panic!("expected ERROR, got {:?}", answer.msg().name());
    };
    assert_eq!(error, uri::NO_SUCH_REGISTRATION);
    for conn in [callee, asker] {
        cluster.close(conn);
    }
    cluster.drain();
    cluster.assert_tables_empty();
}

/// Authorization under random interleavings: sessions of three roles, authenticated with
/// tickets on random shards, send random CALL/REGISTER/PUBLISH/SUBSCRIBE on a few URIs while
/// the shard channels deliver in random order. Every request the role's permissions deny gets
/// ERROR `wamp.error.not_authorized` and nothing else, and no allowed one ever does, on every
/// shard (each decides from its own cached copy of the roles).
#[test]
fn authorization_decides_alike_on_every_shard_under_any_interleaving() {
    use wampring::router::{
        AuthMethod, ListenerAuth, PermissionConfig, Perms, Principal, RoleConfig, Secret,
        TicketSecret,
    };
    let permission = |uri: &str, matching, allow| PermissionConfig {
        uri: uri.into(),
        matching,
        allow,
    };
    let roles = vec![
        RoleConfig {
            name: "reader".into(),
            authorizer: None,
            permissions: vec![
                permission("t.", MatchPolicy::Prefix, Perms::SUBSCRIBE),
                permission("p.a", MatchPolicy::Exact, Perms::CALL),
            ],
        },
        RoleConfig {
            name: "writer".into(),
            authorizer: None,
            permissions: vec![
                permission("q", MatchPolicy::Exact, Perms::CALL),
                permission("p.", MatchPolicy::Prefix, Perms::REGISTER.with(Perms::CALL)),
                permission("t..x", MatchPolicy::Wildcard, Perms::PUBLISH),
            ],
        },
        RoleConfig {
            name: "none".into(),
            authorizer: None,
            permissions: Vec::new(),
        },
    ];
    // What the model says, independently of the router's index: (role, action, uri).
    let allowed = |role: &str, action: &str, uri: &str| match (role, action) {
        ("reader", "subscribe") => uri.starts_with("t."),
        ("reader", "call") => uri == "p.a",
        ("writer", "call") => uri == "q" || uri.starts_with("p."),
        ("writer", "register") => uri.starts_with("p."),
        ("writer", "publish") => {
            let parts: Vec<&str> = uri.split('.').collect();
            parts.len() == 3 && parts[0] == "t" && parts[2] == "x"
        }
        _ => false,
    };
    let mut realm = RealmConfig::new("realm1");
    realm.roles = roles;
    for role in ["reader", "writer", "none"] {
        let mut principal = Principal::new(role, role);
        principal.ticket = Some(TicketSecret::Plain(Secret(format!("{role}-ticket"))));
        realm.principals.push(principal);
    }
    let config = RouterConfig {
        realms: vec![realm],
        listeners: vec![ListenerAuth {
            methods: vec![AuthMethod::Ticket],
            anonymous_role: "anonymous".into(),
        }],
        ..RouterConfig::default()
    };
    const URIS: [&str; 6] = ["p.a", "p.b", "t.y.x", "t.y", "t.y.z.x", "q"];
    const ACTIONS: [&str; 4] = ["call", "register", "publish", "subscribe"];
    let mut decided = 0;
    for seed in 0..300u64 {
        let mut rng = Rng(seed);
        let shards = 1 + (seed % 4) as usize;
        let mut cluster = Cluster::with_config(shards, seed, config.clone());
        let mut clients = Vec::new();
        for n in 0..6 {
            let role = ["reader", "writer", "none"][rng.below(3)];
            let conn = cluster.open(rng.below(shards), Serializer::Json);
            let mut details = hello_details();
            details.insert("authmethods", Value::List(vec![Value::from("ticket")]));
            details.insert("authid", Value::from(role.to_string()));
            cluster.send(
                conn,
                &Message::Hello {
                    realm: "realm1".into(),
                    details,
                },
            );
            assert!(
                matches!(cluster.next(conn).msg(), Message::Challenge { .. }),
                "seed {seed}"
            );
            let signature = format!("{role}-ticket");
            cluster.send(
                conn,
                &Message::Authenticate {
                    signature: signature.into(),
                    extra: Dict::new(),
                },
            );
            assert!(
                matches!(cluster.next(conn).msg(), Message::Welcome { .. }),
                "seed {seed}, client {n}"
            );
            clients.push((conn, role, HashMap::new()));
        }
        for request in 1..=40u64 {
            let (conn, role, expected) = &mut clients[rng.below(6)];
            let (action, uri) = (ACTIONS[rng.below(4)], URIS[rng.below(URIS.len())]);
            expected.insert(request, (action, uri, allowed(role, action, uri)));
            let (options, payload) = (Dict::new(), wire::Payload::empty(Serializer::Json));
            let msg = match action {
                "call" => Message::Call {
                    request,
                    options,
                    procedure: uri.into(),
                    payload,
                },
                "register" => Message::Register {
                    request,
                    options,
                    procedure: uri.into(),
                },
                "subscribe" => Message::Subscribe {
                    request,
                    options,
                    topic: uri.into(),
                },
                _ => {
                    let mut options = Dict::new();
                    options.insert("acknowledge", Value::Bool(true));
                    Message::Publish {
                        request,
                        options,
                        topic: uri.into(),
                        payload,
                    }
                }
            };
            cluster.send(*conn, &msg);
            while rng.chance(60) {
                let busy = cluster.busy_channels();
                if busy.is_empty() {
                    break;
                }
                let (from, to) = busy[rng.below(busy.len())];
                cluster.deliver(from, to);
            }
        }
        cluster.drain();
        for (conn, role, expected) in &clients {
            let mut refused = HashSet::new();
            while let Some(frame) = cluster.recv(*conn) {
                let msg = wire::decode(conn.ser, &frame).unwrap();
                let answered = match &msg {
                    Message::Error {
                        request,
                        error,
                        request_type,
                        ..
                    } if *request_type != wire::code::INVOCATION => {
                        let (action, uri, ok) = expected[request];
                        if error == uri::NOT_AUTHORIZED {
                            assert!(!ok, "seed {seed}: {role} refused {action} {uri}");
                            refused.insert(*request);
                        } else {
                            assert!(ok, "seed {seed}: {role} {action} {uri} denied with {error}");
                        }
                        None
                    }
                    Message::Registered { request, .. }
                    | Message::Subscribed { request, .. }
                    | Message::Published { request, .. }
                    | Message::Result { request, .. } => Some(*request),
                    _ => None,
                };
                if let Some(request) = answered {
                    let (action, uri, ok) = expected[&request];
                    assert!(ok, "seed {seed}: {role} was allowed {action} {uri}");
                }
            }
            for (request, (action, uri, ok)) in expected {
                if !ok {
                    assert!(
                        refused.contains(request),
                        "seed {seed}: {role} {action} {uri} not refused"
                    );
                    decided += 1;
                }
            }
        }
        for (conn, _, _) in clients {
            cluster.close(conn);
        }
        cluster.drain();
    }
    assert!(decided > 1000, "only {decided} denials were checked");
}
