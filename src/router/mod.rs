//! router: the sans-IO WAMP state machine of one shard — sessions, realms, dealer, broker.
//!
//! Driven by plain calls with `now` passed in (`open_session`, `handle_message`,
//! `handle_shard_msg`, `handle_timeout`, `handle_reconfigure`, `close_session`, `shutdown`); it
//! answers by pushing
//! [`Action`]s that the runtime performs, and tells the runtime its next deadline
//! ([`Router::poll_timeout`]). No sockets, no executors, no clocks: every routing rule is
//! testable by calling it directly, at one shard or several in one process.
//!
//! # The kernel every feature plugs into (DESIGN.md "The router kernel")
//!
//! * `Router` is a small core over owned sub-states: `sessions` (`session.rs`, one phase type
//!   per lifecycle state), `realms` (each with its dealer and broker tables, `dealer.rs`,
//!   `broker.rs`), `pending` (the dealer's calls), `cluster` (this shard among the others:
//!   table-write ops in flight, gathers, `cluster.rs`), `timers` (`timers.rs`) and `facts`
//!   (`facts.rs`).
//! * One admission step (`admission.rs`) stands in front of every handler of an established
//!   session: which messages the phase accepts, request-id rules, URI rules, option checks,
//!   per-session bounds, and authorization by the realm's roles (`authz.rs`). Handlers get
//!   an `admission::Admitted` session.
//! * One write path: REGISTER/UNREGISTER/SUBSCRIBE/UNSUBSCRIBE/leave always go through the
//!   owner-shard protocol of `cluster.rs`; with one shard the owner is the shard itself and
//!   every step completes within the same call.
//! * Time is an input: the timer table, `handle_timeout(now)`, `poll_timeout()`.
//! * The router is a peer of itself: `internal.rs` answers `wamp.*` procedures, `meta.rs`
//!   publishes without a session, and the table code appends facts to one internal event list
//!   (`facts.rs`) that its readers (meta events now; metrics later) consume.
//! * Gather (`gather.rs`): a query that spans shards is one scatter with a ticket and a reduce.
//!
//! Other files: `handshake.rs` (HELLO -> WELCOME/ABORT), `authn.rs` (CHALLENGE/AUTHENTICATE,
//! principals, the dynamic authenticator), `authz.rs` (roles, permissions, the dynamic
//! authorizer), `internal_caller.rs` (the router's own sessions that call authenticators and
//! authorizers), `rpc.rs` (REGISTER/CALL/YIELD
//! routing), `pubsub.rs` (SUBSCRIBE/PUBLISH routing), `retention.rs` and `history.rs` (kept
//! events), `shard_msg.rs` (the messages between
//! shards and the owner rule), `realm.rs`, `reconfigure.rs` (a reloaded configuration taking
//! effect without dropping sessions), `ids.rs`, `outbox.rs` (encoding into
//! `Action::Send`), `uri.rs`, `log_limit.rs`.
//!
//! # Several shards
//!
//! A session lives on the shard that opened it; its global identity is (shard, `SessionKey`,
//! WAMP session id). Messages between shards (`shard_msg::ShardMsgKind`), who sends them and
//! when:
//! * Table writes go to the owner `owner_shard(realm, uri) % N`. The origin (session's shard)
//!   sends `Register{invoke, ticket}` / `Unregister{ack?}` / `Join{ticket}` (its local
//!   subscriber count of a topic went 0 -> 1) / `Leave` (1 -> 0). The owner decides (conflicts,
//!   ids `n * N + owner + 1`, a topic's shard set), applies to its own replica, then broadcasts
//!   `RegistrationAdded` / `RegistrationRemoved` / `SubscriptionShards` (whole shard bitset) to
//!   every other shard; a refused REGISTER gets `RegisterRefused` back to the origin instead.
//! * Acks go directly to the origin: every shard that applies an update carrying `AckTo` sends
//!   `Applied{ticket}` to the origin (the origin counts its own application). With N
//!   applications counted, REGISTERED / UNREGISTERED / SUBSCRIBED go out — so a client told
//!   "registered" can have a CALL from any shard find it. FIFO per pair plus one owner per uri
//!   makes every replica see the owner's decisions for a uri in decision order.
//! * A registration is invoked by its callee's shard only after REGISTERED went out and before
//!   UNREGISTER/leave started (the session's `registrations` set); a CALL arriving outside
//!   that window (raced with REGISTER/UNREGISTER/leave, or the callee left) gets
//!   `wamp.error.no_such_procedure`. This also keeps INVOCATION after REGISTERED.
//! * Shared registrations need no message of their own. `Register` carries the policy; the
//!   owner refuses a join (`RegisterRefused`) when either side is `single`, the policies
//!   differ, or the session already is a callee; otherwise it appends the callee under the
//!   existing id and broadcasts `RegistrationAdded`, which replicas apply by appending too, so
//!   every replica lists the callees in the owner's decision order. `Unregister` /
//!   `RegistrationRemoved` remove one callee; the entry and its id go with the last one.
//! * A CALL picks its callee in the caller's shard's replica. Local callees outside their
//!   session's window (above) are skipped, so the pick falls on a routable one; a remote pick
//!   that races with its callee's UNREGISTER/leave gets `wamp.error.no_such_procedure` from
//!   the callee's shard, as a single registration would. It is not re-dispatched: a second hop
//!   would break INVOCATION order per (caller, callee) and the `Reply` sender check.
//! * Subscribers wait (not yet receivers) while their shard's `Join` is in flight; a second
//!   local subscriber of a topic this shard already receives gets SUBSCRIBED at once with no
//!   cross-shard traffic. Delivery stops at once on UNSUBSCRIBE (it is filtered locally);
//!   UNSUBSCRIBED is immediate too unless the session was its shard's last subscriber of the
//!   topic: then it waits until every shard applied the owner's update (`Leave` with an ack),
//!   so the meta API agrees with what the client was told. A `Leave` of a session that went
//!   needs no ack: a later `Join` from the same shard follows it on the same channel. The
//!   subscription (and its id) disappears everywhere when its shard set becomes empty.
//! * CALL with the callee on shard B: the caller's shard keeps the pending entry (the
//!   pending-call bound is enforced there) and sends one `Invoke` (payload as `Bytes`). B
//!   assigns the INVOCATION id, keeps its own pending entry, and answers with `Reply{frame}`
//!   holding the RESULT/ERROR already encoded for the caller; the caller's shard forwards it if
//!   its entry (slab key + generation) is alive, else discards it (caller left or canceled).
//!   A `Reply` for a progressive result leaves the call pending. B finds its entry for a call
//!   by (caller's shard, caller's handle): `Interrupt` (cancel `kill`/`killnowait`, timeout,
//!   caller left, when the callee announced call_canceling) and `InvokeChunk` (the next chunk
//!   of a streamed call) name the call that way. A callee that leaves makes B send `Reply`
//!   canceled for each pending invocation; a callee's `wamp.error.unavailable` goes back as a
//!   `Reply` of that kind, and the caller's shard re-routes the call (it kept the arguments).
//! * PUBLISH: local subscribers as always, then one `Publish` (a shared `Arc`, payload as
//!   `Bytes`) per other shard in the subscription's shard set; each builds the EVENT once per
//!   serializer. PUBLISHED is sent at once. Order per (publisher, subscriber) and per (caller,
//!   callee) holds because each pair of shards has one FIFO channel.
//! * `Gather{ticket, query}` to every other shard, each answering `Gathered{ticket, partial}`
//!   (or to one shard: a history query goes to the history's owner alone, a `remove_callee`
//!   to the callee's shard). A kill or a revocation is a gather too: the shard holding the
//!   session carries it out while answering.
//! * A PUBLISH whose topic falls under history subscriptions: one `HistoryAppend` per owner
//!   shard of those subscriptions (none with session-id lists). When acknowledged, each other
//!   owner answers `Applied` and PUBLISHED waits for them, so "published" means "in the
//!   history" for a `get_events` from any shard.
//! * `shutdown` is per shard; shard messages arriving afterwards are still applied or answered
//!   (a late `Invoke` gets no_such_procedure). Unexpected messages never panic: they are logged
//!   and counted in `RouterStats::shard_messages_ignored`.
//!
//! Choices where the spec leaves room (see also `uri.rs`):
//! * Registration and subscription ids are router-scoped and sequential from 1 (one counter for
//!   both; with N shards the owner's id is n * N + owner + 1); session and publication ids are
//!   uniformly random in [1, 2^53] from the seeded RNG.
//! * INVOCATION request ids are sequential per callee session, from 1, wrapping at 2^53.
//! * Pattern-based registration: (URI, `match`) names a registration, so `com.a` may be
//!   registered exact, as a prefix and as a wildcard at once. A CALL takes the exact one, else
//!   the longest string prefix, else the wildcard that is concrete at the first component
//!   where matching wildcards differ (`patterns.rs`); patterns never match `wamp.*`. The index
//!   is in every replica, so a CALL is resolved on its caller's shard.
//! * Pattern-based subscription: (URI, `match`) names a subscription too. A PUBLISH goes to
//!   every subscription it matches (exact, each matching prefix, each matching wildcard), one
//!   EVENT per subscription with that subscription's id and the same publication id; pattern
//!   subscriptions' EVENTs carry `Details.topic`. A session subscribed twice in that way gets
//!   the event twice, as the spec says. Patterns may match the router's `wamp.*` meta topics.
//!   The publisher's shard resolves the matches and sends one `Publish` per other shard, naming
//!   the subscriptions that matched.
//! * Event retention (`retention.rs`): the last `retain: true` event per topic, whatever
//!   subscribers exist, decided by the topic's owner shard and replicated to every shard.
//!   `get_retained` delivers, right after SUBSCRIBED and from the subscriber's own shard, the
//!   retained event of every topic the subscription covers (patterns too, with
//!   `Details.topic`), each with `Details.retained: true` and the publication id it was
//!   published with; the black/white lists and disclosure it was published with apply,
//!   `exclude_me` does not (a publisher may fetch its own). One that does not fit the realm's
//!   bound is declined, and its topic keeps none rather than an outdated one.
//! * Event history (`history.rs`): each configured `[[realm.history]]` (uri, match) is a
//!   subscription whose id is reserved from the start (every shard derives the same ids from
//!   the config), so `get_events` works before and after anyone subscribes. Its events live at
//!   the owner shard of its uri (`HistoryAppend`), bounded by count and bytes. The answer is
//!   one argument, the list of events (as Crossbar.io answers), each with `topic` at the top
//!   too. `get_events(id, limit)` with `limit` positional is Crossbar.io's form: newest first.
//!   A `*_publication` filter naming an event the history does not hold (evicted, or never
//!   there) gets `wamp.error.invalid_argument`, unknown keyword arguments too; a live
//!   subscription without history gets `wamp.error.history_unavailable` (Crossbar.io's URI).
//! * Shared registration: REGISTER.Options.invoke is `single` (default), `roundrobin`,
//!   `random`, `first` or `last`; any other value, or a non-string, gets ERROR
//!   `wamp.error.invalid_argument`. The first registrant fixes the policy; a second REGISTER
//!   gets `wamp.error.procedure_already_exists` when either is `single`, the policies differ,
//!   or it comes from a session already registered for the procedure. All callees share one
//!   registration id (as in Crossbar): REGISTERED and INVOCATION carry it, and UNREGISTER of
//!   it removes only the sender. `disclose_caller` is each callee's own. `first`/`last` pick
//!   the oldest/newest callee still registered; `random` draws from the seeded RNG of the
//!   caller's shard (a test replays it). `roundrobin` cycles in registration order with a
//!   cursor per replica: calls from one shard visit every callee in turn, but shards do not
//!   coordinate, so N shards may each send their next call to the same callee (fairness over
//!   all calls, without a cross-shard message per CALL).
//! * Call re-routing: a callee's ERROR `wamp.error.unavailable` sends the call to the next
//!   callee of its registration by the policy, skipping those tried (the caller's shard kept
//!   the arguments; only calls to registrations with several callees keep them); none left,
//!   or a registration of one callee: ERROR `wamp.error.no_available_callee`. A re-routed call
//!   reaches its new callee after the caller's later calls to it: order per (caller, callee)
//!   holds for the calls that are not re-routed.
//! * REGISTER of a procedure under `wamp.` gets ERROR `wamp.error.invalid_uri` (reserved for the
//!   router, as in Crossbar).
//! * A caller over `max_pending_calls_per_session` gets ERROR
//!   `wampring.error.pending_call_limit_exceeded` (checked on admission, before the lookup).
//! * A session that sends no HELLO within `hello_timeout_ms` of its transport opening is closed
//!   (`Action::Close` with [`CloseReason::HelloTimeout`]), counted and logged (rate-limited).
//! * The router's own procedures (`wamp.*`, answered by its internal callee, `internal.rs`):
//!   the session, registration and subscription meta API, revocation, testaments and
//!   `get_events`; any other `wamp.*` procedure gets `wamp.error.no_such_procedure`. Session
//!   answers are gathered from every shard; registration and subscription answers come from
//!   the caller's shard's replica (subscribers are gathered). `kill*` never kills the caller
//!   (`kill` of its own id: `wamp.error.no_such_session`); `kill_by_authid` answers the
//!   killed ids, `kill_by_authrole` and `kill_all` a count (the spec's results). A callee or
//!   subscriber that is not one of the entry's: `wamp.error.no_such_registration` /
//!   `no_such_subscription`. `created` is RFC 3339 UTC with milliseconds, as the owner shard
//!   decided it.
//! * Meta events (`meta.rs`) leave from the shard of the session they are about (`facts.rs`),
//!   so per session they keep the order the facts happened in on every shard. A REGISTER or
//!   SUBSCRIBE whose session leaves before its answer may still create the entry (other shards
//!   saw it) and, when its shard was the last to hold it, delete it again: `on_create` /
//!   `on_delete` then name that session, with no `on_register` / `on_subscribe` between.
//! * Testaments (`testament.rs`): published in `leave`, whatever the way the session goes;
//!   bad scope: `wamp.error.testament_error` (Crossbar.io's URI).
//! * CANCEL without a mode is `killnowait` (as Crossbar.io does it). For a callee that did not
//!   announce call_canceling every mode is `skip` (Autobahn|JS closes its session on an
//!   INTERRUPT). A second CANCEL while a `kill` is under way, or one for a finished call, is
//!   ignored. A caller that leaves interrupts (`killnowait`) its calls' callees.
//! * call_timeout: CALL.Options.timeout (ms) is enforced by the caller's shard on the timer
//!   table, restarted by every progressive result; expiry answers `wamp.error.timeout` and
//!   interrupts the callee (`killnowait`, `reason: wamp.error.timeout`). A callee registered
//!   with `forward_timeout` gets the timeout in INVOCATION.Details and enforces it itself.
//! * Progressive results go only to callers that sent `receive_progress`; others get the final
//!   result alone (the progressive ones are counted and dropped). INVOCATION.Details carries
//!   `receive_progress` only to callees that announced progressive_call_results.
//! * Progressive call invocations: the first CALL with `progress` fixes callee and options;
//!   later CALLs under its request id are its chunks while it is pending. Chunks for a stream
//!   that is over are dropped (the last 64 streamed request ids per session are remembered;
//!   with `strict_request_ids`, any CALL at or below the highest id seen). Using `progress`
//!   without announcing the feature, or under the id of an ordinary pending call, is a
//!   violation; a callee without progressive_call_invocations (and call_canceling) makes the
//!   first chunk fail with `wamp.error.feature_not_supported`.
//! * Payload pass-through: `ppt_*` options go from CALL to INVOCATION and from YIELD to RESULT
//!   unchanged (a callee ERROR's Details pass whole); the payload is never looked into. A
//!   caller or callee using them without announcing payload_passthru_mode is a violation; a
//!   callee without it makes the call fail with `wamp.error.feature_not_supported`.
//! * A YIELD/ERROR for an invocation whose caller left, canceled or timed out is dropped
//!   silently (the last 4096 such ids are remembered per callee); any other unknown invocation
//!   id is a protocol violation.
//! * With `strict_request_ids`, a request id that is not the previous one + 1 is a protocol
//!   violation; by default any id in [1, 2^53] is accepted (many clients send random ids).
//! * Lifecycle contract with the runtime: call `close_session` exactly once per
//!   `open_session`, also after the router pushed `Action::Close` for it; between the two the
//!   router ignores the session's input. The key may be reused only after `close_session`.
//!   After every input, call [`Router::poll_timeout`] and arm one timer for the deadline it
//!   returns; call [`Router::handle_timeout`] when it fires.

mod admission;
mod authn;
mod authz;
mod broker;
mod cluster;
mod dealer;
mod facts;
mod gather;
mod handshake;
pub(crate) mod history;
mod ids;
mod internal;
mod internal_caller;
mod log_limit;
mod meta;
mod outbox;
#[doc(hidden)]
pub mod patterns;
mod pubsub;
mod realm;
mod reconfigure;
mod retention;
mod rpc;
mod session;
mod shard_msg;
mod telemetry;
mod testament;
mod timers;
pub mod uri;

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use crate::serializer::Serializer;
use crate::wire::{self, Dict, Frame, Message};

use admission::Admitted;
use cluster::Cluster;
use dealer::{Callee, Caller, CancelMode, PendingCalls};
use ids::{RandomIds, ScopedIds};
pub(crate) use log_limit::LogLimit;
use outbox::Outbox;
use realm::{RealmId, Realms};
use session::{Phase, Session, Sessions};
use shard_msg::ShardMsgKind;
use timers::{Timeout, Timers};

pub use authn::{
    AuthMethod, AuthenticatorConfig, ListenerAuth, Principal, Secret, SecretCheck, TicketSecret,
    WampCraSecret,
};
pub use authz::{PermissionConfig, Perms, RoleConfig};
pub use dealer::MatchPolicy;
pub use facts::Fact;
pub use history::{HistoryConfig, HISTORY_UNAVAILABLE};
pub use shard_msg::{owner_shard, ShardMsg, MAX_SHARDS};
pub use telemetry::RuntimeCounters;

/// A session's handle inside one router (a slab key; never sent on the wire).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub usize);

/// Milliseconds on the runtime's monotonic clock.
pub type Millis = u64;

/// Why the router closes a session's transport.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The WAMP conversation is over (GOODBYE, ABORT or a protocol violation was sent, or the
    /// router shuts down): flush and close normally.
    Done,
    /// No HELLO arrived within `hello_timeout_ms`: nothing was said, the client is told by the
    /// transport (WebSocket close code 1008).
    HelloTimeout,
}

/// What the runtime must do on the router's behalf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write this encoded WAMP message to the session's transport (its parts back to back).
    Send { session: SessionKey, frame: Frame },
    /// Write this EVENT to the session's transport. An EVENT may be dropped for a session
    /// that does not keep up (slow-consumer policy `drop_events`); nothing else may.
    SendEvent { session: SessionKey, frame: Frame },
    /// Write the same EVENT to each of `sessions`, in order (fan-out: one frame, and no
    /// reference count taken and dropped per recipient); droppable as for `SendEvent`.
    SendEach {
        sessions: Vec<SessionKey>,
        frame: Frame,
    },
    /// Flush what was queued for the session, then close its transport. The router has already
    /// forgotten the session (or will ignore anything more from it).
    Close {
        session: SessionKey,
        reason: CloseReason,
    },
    /// Run `check` (an argon2id ticket hash: tens of milliseconds) away from the shard's thread,
    /// then call [`Router::handle_checked`] with `session`, `token` and its outcome.
    Check {
        session: SessionKey,
        token: u64,
        check: SecretCheck,
    },
    /// Deliver `msg` to shard `to` (never this shard) through the one FIFO channel from this
    /// shard to `to`; the runtime there calls [`Router::handle_shard_msg`] with `from` = this
    /// shard. The runtime must never drop or reorder these (overflow is queued, not discarded).
    ToShard { to: ShardId, msg: ShardMsg },
    /// The answer to [`Router::handle_metrics_request`] `request`: every shard's snapshot, in
    /// shard order.
    Metrics {
        request: u64,
        shards: Vec<crate::metrics::ShardSnapshot>,
    },
}

/// Index of a shard, in `0..shards`.
pub type ShardId = usize;

/// URI validation strictness (digest §4).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum UriCheck {
    #[default]
    Loose,
    Strict,
}

/// One realm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealmConfig {
    pub name: String,
    /// Every INVOCATION in this realm carries the caller's identity (`caller`, `caller_authid`,
    /// `caller_authrole`), whatever the caller and callee asked: Crossbar.io's `disclose`
    /// setting, for callers whose client can no longer send `disclose_me`.
    pub disclose_caller: bool,
    /// Every EVENT in this realm carries the publisher's identity (`publisher`,
    /// `publisher_authid`, `publisher_authrole`), whatever the publisher asked: the same setting
    /// for publishers.
    pub disclose_publisher: bool,
    /// Topics whose events are kept for `wamp.subscription.get_events` (`history.rs`).
    pub history: Vec<HistoryConfig>,
    /// Roles and their permissions (`authz.rs`); none: every session may do everything.
    pub roles: Vec<RoleConfig>,
    /// The procedure that tells who a session is, for some methods (`authn.rs`).
    pub authenticator: Option<AuthenticatorConfig>,
    /// Who may authenticate into this realm, and with which secrets (`authn.rs`).
    pub principals: Vec<Principal>,
}

impl RealmConfig {
    /// A realm with the default policies.
    pub fn new(name: impl Into<String>) -> RealmConfig {
        RealmConfig {
            name: name.into(),
            disclose_caller: false,
            disclose_publisher: false,
            history: Vec::new(),
            roles: Vec::new(),
            authenticator: None,
            principals: Vec::new(),
        }
    }
}

/// Router configuration (built by `config.rs` from TOML).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    pub realms: Vec<RealmConfig>,
    /// Authentication per listener, by `TransportInfo::listener`; a listener beyond the list
    /// accepts anonymous sessions only (`ListenerAuth::default`).
    pub listeners: Vec<ListenerAuth>,
    /// Time a challenged session has to send AUTHENTICATE.
    pub authenticate_timeout_ms: Millis,
    /// Create unknown realms on first HELLO instead of ABORT `wamp.error.no_such_realm`.
    pub auto_create_realms: bool,
    pub uri_check: UriCheck,
    /// Pending (unanswered) calls a caller may have; more get ERROR
    /// `wampring.error.pending_call_limit_exceeded`.
    pub max_pending_calls_per_session: usize,
    /// Enforce sequential client request ids (digest §3): a gap is a protocol violation. Off by
    /// default because many clients still send random ids.
    pub strict_request_ids: bool,
    /// A session that has not sent HELLO this long after its transport opened is closed.
    pub hello_timeout_ms: Millis,
    /// Longest realm, procedure or topic URI accepted (bytes); longer ones are refused with
    /// `wamp.error.invalid_uri`.
    pub max_uri_length: usize,
    /// Entries (nested ones included) a request's Options may hold; more gets
    /// `wamp.error.invalid_argument`.
    pub max_options_entries: usize,
    /// Realms a HELLO may create (`auto_create_realms`) that may exist on one shard at once;
    /// past it the HELLO gets `wamp.error.no_such_realm`. Realms go when unused.
    pub max_auto_created_realms: usize,
    /// Procedures one session may have registered; one more gets
    /// `wampring.error.too_many_registrations`.
    pub max_registrations_per_session: usize,
    /// Topics one session may be subscribed to; one more gets
    /// `wampring.error.too_many_subscriptions`.
    pub max_subscriptions_per_session: usize,
    /// Testaments (`wamp.session.add_testament`) one session may hold over both scopes; one
    /// more gets `wampring.error.too_many_testaments`. Each is at most one message's size.
    pub max_testaments_per_session: usize,
    /// Bytes the retained events of one realm may hold (topic, payload and black/white lists);
    /// every shard holds a copy of them. A retained event beyond it is declined.
    pub max_retained_bytes_per_realm: usize,
    /// Time every call (CALL in to its final answer out) into the shard's latency histogram,
    /// for the admin listener's metrics; off, calls cost no clock reads for it.
    pub measure_call_latency: bool,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            realms: vec![RealmConfig::new("realm1")],
            listeners: Vec::new(),
            authenticate_timeout_ms: 10_000,
            auto_create_realms: false,
            uri_check: UriCheck::Loose,
            max_pending_calls_per_session: 65_536,
            strict_request_ids: false,
            hello_timeout_ms: 10_000,
            max_uri_length: 1024,
            max_auto_created_realms: 1000,
            max_options_entries: 256,
            max_registrations_per_session: 10_000,
            max_subscriptions_per_session: 10_000,
            max_testaments_per_session: 64,
            max_retained_bytes_per_realm: 16 * 1024 * 1024,
            measure_call_latency: false,
        }
    }
}

/// Facts about the transport a session arrived on (shown in meta API later, logged now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportInfo {
    pub serializer: Serializer,
    /// e.g. "websocket" or "rawsocket".
    pub kind: &'static str,
    /// Peer address as text, e.g. "127.0.0.1:50312".
    pub peer: String,
    /// Index of the listener (`RouterConfig::listeners`) the connection came in on: it decides
    /// which authentication methods the session may use.
    pub listener: usize,
    /// The bytes cannot be read on the way (TLS, or a Unix domain socket): secrets sent in the
    /// clear (tickets) are not exposed.
    pub secure: bool,
}

/// Tables smaller than this never shrink (growing again would cost more than they hold).
const SHRINK_FLOOR: usize = 1024;

/// True when a table of `len` entries in `capacity` slots should give memory back; shrinking to
/// twice `len` keeps this amortized O(1) per removal.
pub(crate) fn is_sparse(len: usize, capacity: usize) -> bool {
    capacity > SHRINK_FLOOR && len.saturating_mul(4) < capacity
}

/// How often unused auto-created realms are looked for, while there may be some.
const REALM_SWEEP_MS: Millis = 1000;

/// Counters (monotonic) and table sizes (current) of one router, for metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouterStats {
    pub sessions_opened: u64,
    pub sessions_established: u64,
    pub sessions_closed: u64,
    /// HELLOs answered with ABORT (unknown realm, bad URI, auth method, shutdown).
    pub hellos_rejected: u64,
    /// Sessions closed because no HELLO came within `hello_timeout_ms`.
    pub hello_timeouts: u64,
    /// CHALLENGEs sent, and authentications that ended in ABORT (denied, refused, timed out).
    pub challenges_sent: u64,
    pub authentications_denied: u64,
    /// Challenged sessions closed because no AUTHENTICATE came in time (also denied).
    pub authentication_timeouts: u64,
    /// Requests refused with `wamp.error.not_authorized`.
    pub authorizations_denied: u64,
    pub messages_in: u64,
    /// Frames the codec rejected (each also counts as a protocol violation).
    pub decode_errors: u64,
    pub protocol_violations: u64,
    /// Messages that could not be encoded for their receiver (payload not transcodable).
    pub encode_errors: u64,
    pub calls_routed: u64,
    /// RESULTs and callee ERRORs forwarded to callers.
    pub replies_routed: u64,
    /// Calls answered with `wamp.error.canceled` (callee left, or CANCEL).
    pub calls_canceled: u64,
    /// Calls answered with `wamp.error.timeout` by the router (call_timeout).
    pub calls_timed_out: u64,
    /// Calls sent to another callee after one answered `wamp.error.unavailable`.
    pub calls_rerouted: u64,
    /// Chunks of streamed calls (progressive_call_invocations) forwarded to callees.
    pub call_chunks_routed: u64,
    /// Chunks of streamed calls dropped because the call was over.
    pub late_call_chunks_discarded: u64,
    /// Progressive RESULTs forwarded to callers.
    pub progress_results_routed: u64,
    /// Progressive YIELDs not forwarded: the caller did not ask for them, or is killing the call.
    pub progress_results_dropped: u64,
    /// Late YIELD/ERRORs dropped because the caller left or canceled.
    pub late_replies_discarded: u64,
    pub publishes: u64,
    /// PUBLISHes not routed: to a reserved (`wamp.`) or invalid topic, or acknowledged with a
    /// payload some subscriber's serializer cannot carry.
    pub publishes_refused: u64,
    pub events_sent: u64,
    /// EVENTs not sent because the subscriber's serializer cannot carry the payload.
    pub events_undeliverable: u64,
    /// Events kept as their topic's retained event (`retain: true`), and those declined
    /// because the realm's retained bytes would exceed their bound.
    pub events_retained: u64,
    pub retained_declined: u64,
    /// Retained events sent on `SUBSCRIBE {get_retained: true}`, and those withheld (their
    /// lists exclude the subscriber, or a live EVENT of their topic overtook them).
    pub retained_delivered: u64,
    pub retained_withheld: u64,
    /// Retained events held on this shard now, and their bytes.
    pub retained_now: usize,
    pub retained_bytes: usize,
    /// Events kept in a history subscription (one per subscription that keeps it), older ones
    /// dropped to make room, events bigger than a subscription's whole `max_bytes`, and
    /// events not kept because they were published with session-id lists or with a payload
    /// that cannot be read back as values (transparent, or a CBOR tag or non-text map key).
    pub history_recorded: u64,
    pub history_evicted: u64,
    pub history_declined: u64,
    pub history_skipped: u64,
    /// `wamp.subscription.get_events` calls asked of a history's owner.
    pub history_queries: u64,
    /// Testaments published for sessions that went away.
    pub testaments_published: u64,
    /// Sessions closed by `wamp.session.kill*`.
    pub sessions_killed: u64,
    /// Callees and subscribers removed by `wamp.registration.remove_callee` and
    /// `wamp.subscription.remove_subscriber`.
    pub revocations: u64,
    /// History events held on this shard now, and their bytes.
    pub history_now: usize,
    pub history_bytes: usize,
    /// Realms on this shard now, and auto-created realms removed again so far.
    pub realms: usize,
    pub realms_removed: u64,
    /// REGISTERs/SUBSCRIBEs refused at a per-session limit.
    pub session_limit_refusals: u64,
    /// Client-caused log lines not written (rate limits per cause).
    pub log_lines_suppressed: u64,
    /// Clients' sessions currently open (any phase; the router's own internal sessions are not
    /// counted).
    pub sessions: usize,
    pub registrations: usize,
    pub subscriptions: usize,
    /// Calls made by this shard's sessions that wait for an answer.
    pub pending_calls: usize,
    /// Pending-call entries on this shard: calls of its sessions, and invocations of its
    /// callees for callers on other shards.
    pub pending_entries: usize,
    /// REGISTER/UNREGISTER/first-SUBSCRIBE ops this shard started and not yet completed, topics
    /// whose first local subscribers wait, and gathers in flight.
    pub inflight_registry_ops: usize,
    /// Armed timers (HELLO deadlines, ...).
    pub timers: usize,
    /// Messages received from other shards.
    pub shard_messages_in: u64,
    /// Messages from other shards that did not fit the receiver's state (unknown ticket, bad
    /// sender); each is logged and otherwise ignored.
    pub shard_messages_ignored: u64,
}

/// One registration as this shard's table (or read replica) holds it: for tests and the
/// runtime's introspection, and the shape the registration meta API will need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationInfo {
    pub id: u64,
    /// REGISTER.Options.match: "exact", "prefix" or "wildcard".
    pub matching: &'static str,
    /// REGISTER.Options.invoke, as fixed by the first registrant.
    pub invoke: &'static str,
    /// WAMP session ids of the callees, in registration order (oldest first).
    pub callees: Vec<u64>,
}

/// Hash maps and sets with fixed seeds: iteration order (and so the order of actions during
/// cleanup) replays exactly for a given input.
pub(crate) type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;
pub(crate) type FastSet<K> = HashSet<K, ahash::RandomState>;

fn fixed_hasher() -> ahash::RandomState {
    ahash::RandomState::with_seeds(0x5741_4d50, 0x7269_6e67, 0x726f_7574, 0x6572_2121)
}

pub(crate) fn fast_map<K, V>() -> FastMap<K, V> {
    HashMap::with_hasher(fixed_hasher())
}

pub(crate) fn fast_set<K>() -> FastSet<K> {
    HashSet::with_hasher(fixed_hasher())
}

/// Client-caused log lines, each limited per cause (`log_limit.rs`).
#[derive(Default)]
struct LogLimits {
    hello_timeout: LogLimit,
    hello_rejected: LogLimit,
    authentication_denied: LogLimit,
    authorization_denied: LogLimit,
    protocol_violation: LogLimit,
    publish_reserved_topic: LogLimit,
    publish_invalid_topic: LogLimit,
    publish_invalid_options: LogLimit,
    publish_not_deliverable: LogLimit,
    event_not_deliverable: LogLimit,
    retained_declined: LogLimit,
    history_declined: LogLimit,
    history_unreadable: LogLimit,
    encode_error: LogLimit,
}

impl LogLimits {
    /// Lines not written so far, over every cause.
    fn suppressed(&self) -> u64 {
        [
            &self.hello_timeout,
            &self.hello_rejected,
            &self.authentication_denied,
            &self.authorization_denied,
            &self.protocol_violation,
            &self.publish_reserved_topic,
            &self.publish_invalid_topic,
            &self.publish_invalid_options,
            &self.publish_not_deliverable,
            &self.event_not_deliverable,
            &self.retained_declined,
            &self.history_declined,
            &self.history_unreadable,
            &self.encode_error,
        ]
        .iter()
        .map(|limit| limit.suppressed_total())
        .sum()
    }
}

/// The WAMP router of one shard.
pub struct Router {
    config: RouterConfig,
    sessions: Sessions,
    realms: Realms,
    pending: PendingCalls,
    cluster: Cluster,
    timers: Timers,
    facts: facts::Facts,
    random_ids: RandomIds,
    scoped_ids: ScopedIds,
    outbox: Outbox,
    /// `WELCOME.Details.roles`, built once.
    welcome_roles: Dict<'static>,
    shutting_down: bool,
    stats: RouterStats,
    logs: LogLimits,
    /// The time of the input being handled (what the runtime passed in).
    now: Millis,
    /// Unix time (ms) at `now == 0`, set by the runtime: `now` is a monotonic clock, event
    /// history needs the wall clock.
    wall_clock_origin_ms: u64,
    /// The armed `Timeout::RealmSweep`, while some auto-created realm may have become unused.
    realm_sweep: Option<timers::TimerId>,
    /// Decoy challenges for unknown principals are made from this (`authn::decoy_key`).
    decoy_key: [u8; 32],
    /// Token of the next offloaded secret check (`Action::Check`) or authenticator call.
    next_check: u64,
    /// The router's own sessions, which call authenticators and authorizers.
    internal: internal_caller::InternalCallers,
    /// Call latencies and the runtime's counters, for metrics (`telemetry.rs`).
    telemetry: telemetry::Telemetry,
}

impl Router {
    /// A single-shard router (the shard owns every URI).
    pub fn new(config: RouterConfig, seed: u64) -> Router {
        Router::new_shard(config, seed, 0, 1)
    }

    /// The router of shard `shard` out of `shards` (DESIGN.md "Ownership and routing across
    /// shards"): it owns the sessions its runtime opens, and talks to the other shards only
    /// through [`Action::ToShard`] / [`Router::handle_shard_msg`].
    pub fn new_shard(config: RouterConfig, seed: u64, shard: ShardId, shards: usize) -> Router {
        assert!(
            shards >= 1 && shard < shards,
            "shard {shard} out of {shards}"
        );
        assert!(shards <= MAX_SHARDS, "at most {MAX_SHARDS} shards");
        let (history_ids, handed_out) = history::reserve_ids(&config.realms, shards);
        let realms = Realms::new(&config.realms, &history_ids);
        let config_realms = config.realms.clone();
        let mut scoped_ids = ScopedIds::new(shard, shards);
        scoped_ids.skip(handed_out[shard]);
        let mut router = Router {
            config,
            sessions: Sessions::new(),
            realms,
            pending: PendingCalls::new(),
            cluster: Cluster::new(shard, shards),
            timers: Timers::new(),
            facts: facts::Facts::new(),
            random_ids: RandomIds::new(seed),
            scoped_ids,
            outbox: Outbox::new(),
            welcome_roles: handshake::welcome_roles(),
            shutting_down: false,
            stats: RouterStats::default(),
            logs: LogLimits::default(),
            now: 0,
            wall_clock_origin_ms: 0,
            realm_sweep: None,
            decoy_key: authn::decoy_key(&config_realms),
            next_check: 1,
            internal: internal_caller::InternalCallers::default(),
            telemetry: telemetry::Telemetry::default(),
        };
        let callers = reconfigure::internal_caller_realms(&config_realms);
        router.open_internal_callers(&callers);
        router
    }

    /// Tells the router the wall-clock time at `now == 0` (Unix ms): the timestamps of event
    /// history. Without it they count from the Unix epoch (deterministic tests).
    pub fn set_wall_clock_origin(&mut self, unix_ms: u64) {
        self.wall_clock_origin_ms = unix_ms;
    }

    /// Wall-clock time of the input being handled, Unix ms.
    fn wall_clock_ms(&self) -> u64 {
        self.wall_clock_origin_ms.saturating_add(self.now)
    }

    /// A transport is connected and handshaken; the session now waits for HELLO, until
    /// `now + hello_timeout_ms`.
    pub fn open_session(
        &mut self,
        transport: TransportInfo,
        now: Millis,
        out: &mut Vec<Action>,
    ) -> SessionKey {
        self.now = now;
        self.stats.sessions_opened += 1;
        let key = self.sessions.next_key();
        let deadline = now.saturating_add(self.config.hello_timeout_ms);
        let timer = self.timers.arm(deadline, Timeout::Hello { session: key });
        let inserted = self.sessions.insert(Session::new(transport, timer));
        debug_assert_eq!(inserted, key);
        self.settle(out);
        key
    }

    /// Handles one received frame of `session`.
    pub fn handle_message(
        &mut self,
        session: SessionKey,
        frame: Bytes,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        self.now = now;
        self.stats.messages_in += 1;
        let Some(state) = self.sessions.get(session) else {
            tracing::warn!(?session, "message for a session that is not open");
            return;
        };
        let serializer = state.serializer;
        match state.phase {
            Phase::Established(_) if !state.held => {}
            Phase::Established(_) => return self.hold(session, frame, out),
            Phase::ExpectHello { .. } | Phase::Authenticating(_) => {
                return self.handle_message_before_welcome(session, frame, out)
            }
            Phase::Closing => return,
        }
        self.route_frame(session, serializer, frame, out);
        self.settle(out);
    }

    /// Decodes, admits and routes one frame of an established session.
    #[inline(always)]
    fn route_frame(
        &mut self,
        session: SessionKey,
        serializer: Serializer,
        frame: Bytes,
        out: &mut Vec<Action>,
    ) {
        let message = match wire::decode(serializer, &frame) {
            Ok(message) => message,
            Err(error) => return self.undecodable(session, error, out),
        };
        if let Some(me) = self.admit(session, &message, &frame, out) {
            self.handle_established(me, message, &frame, out);
        }
    }

    /// A message before WELCOME (out of the established path's way).
    #[inline(never)]
    fn handle_message_before_welcome(
        &mut self,
        session: SessionKey,
        frame: Bytes,
        out: &mut Vec<Action>,
    ) {
        match wire::decode(self.sessions[session].serializer, &frame) {
            Ok(message) => self.handle_before_welcome(session, message, out),
            Err(error) => return self.undecodable(session, error, out),
        }
        self.settle(out);
    }

    #[cold]
    fn undecodable(
        &mut self,
        session: SessionKey,
        error: wire::DecodeError,
        out: &mut Vec<Action>,
    ) {
        self.stats.decode_errors += 1;
        self.protocol_violation(session, error.message, out);
        self.settle(out);
    }

    /// The transport is gone: clean up and tell the others (callers of its pending invocations
    /// get ERROR `wamp.error.canceled`). Nothing is sent to `session` itself.
    pub fn close_session(&mut self, session: SessionKey, now: Millis, out: &mut Vec<Action>) {
        self.now = now;
        let Some(state) = self.sessions.get(session) else {
            tracing::warn!(?session, "close of a session that is not open");
            return;
        };
        match state.phase {
            Phase::Closing => {}
            Phase::ExpectHello { .. } | Phase::Authenticating(_) => self.stop_waiting(session),
            Phase::Established(_) => self.leave(session, true, out),
        }
        self.sessions.remove(session);
        self.stats.sessions_closed += 1;
        self.settle(out);
    }

    /// GOODBYE `wamp.close.system_shutdown` to every established session, then Close every
    /// session. Later HELLOs are refused with ABORT `wamp.close.system_shutdown`.
    pub fn shutdown(&mut self, now: Millis, out: &mut Vec<Action>) {
        self.now = now;
        self.shutting_down = true;
        let keys: Vec<SessionKey> = self.sessions.iter().map(|(key, _)| key).collect();
        for session in keys {
            if self.internal.is_internal(session) {
                // The router's own: nobody to say goodbye to, no transport to close.
                continue;
            }
            let serializer = self.sessions[session].serializer;
            match self.sessions[session].phase {
                Phase::Closing => continue,
                Phase::Established(_) => {
                    let goodbye = outbox::goodbye(uri::CLOSE_SYSTEM_SHUTDOWN);
                    self.send(out, session, serializer, &goodbye);
                    // Everyone is leaving: no canceled ERRORs to callers that are closing too.
                    self.leave(session, false, out);
                }
                Phase::ExpectHello { .. } | Phase::Authenticating(_) => self.stop_waiting(session),
            }
            out.push(Action::Close {
                session,
                reason: CloseReason::Done,
            });
        }
        self.settle(out);
    }

    /// The earliest deadline of the router's timer table: the runtime arms one timer for it and
    /// calls [`Router::handle_timeout`] then. Ask again after every input.
    pub fn poll_timeout(&mut self) -> Option<Millis> {
        self.timers.next_deadline()
    }

    /// Runs every timer whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Millis, out: &mut Vec<Action>) {
        self.now = now;
        while let Some((timer, timeout)) = self.timers.pop_expired(now) {
            match timeout {
                Timeout::Hello { session } => self.hello_timed_out(session, timer, now, out),
                Timeout::Authenticate { session } => {
                    self.authentication_timed_out(session, timer, out)
                }
                Timeout::RealmSweep => self.sweep_realms(),
                Timeout::Call { call } => self.call_timed_out(call, out),
            }
        }
        self.settle(out);
    }

    /// Handles a message another shard's router sent to this one (see [`Action::ToShard`]).
    pub fn handle_shard_msg(
        &mut self,
        from: ShardId,
        msg: ShardMsg,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        self.now = now;
        self.stats.shard_messages_in += 1;
        if from >= self.cluster.shards || from == self.cluster.shard {
            self.stats.shard_messages_ignored += 1;
            tracing::error!(
                from,
                shard = self.cluster.shard,
                msg = msg.name(),
                "shard message from a bad sender"
            );
            return;
        }
        self.dispatch_shard_msg(from, *msg.kind, out);
        if self.realms.has_candidates() {
            self.arm_realm_sweep();
        }
        self.settle(out);
    }

    /// Handles a shard message; `from` may be this shard (the owner or origin role played
    /// locally, see `cluster.rs`).
    fn dispatch_shard_msg(&mut self, from: ShardId, msg: ShardMsgKind, out: &mut Vec<Action>) {
        match msg {
            ShardMsgKind::Register(msg) => self.owner_register(from, msg, out),
            ShardMsgKind::Unregister(msg) => self.owner_unregister(msg, out),
            ShardMsgKind::Join(msg) => self.owner_join(from, msg, out),
            ShardMsgKind::Leave(msg) => self.owner_leave(from, msg, out),
            ShardMsgKind::RegisterRefused(msg) => self.register_refused(msg, out),
            ShardMsgKind::RegistrationAdded(msg) => self.apply_registration_added(msg, out),
            ShardMsgKind::RegistrationRemoved(msg) => {
                self.apply_registration_removed(msg, out);
            }
            ShardMsgKind::SubscriptionShards(msg) => self.apply_subscription_shards(msg, out),
            ShardMsgKind::Applied(msg) => self.count_applied(msg.ticket, out),
            ShardMsgKind::Invoke(invoke) => self.handle_remote_invoke(from, invoke, out),
            ShardMsgKind::Reply(reply) => self.handle_remote_reply(from, reply, out),
            ShardMsgKind::Interrupt(msg) => self.handle_remote_interrupt(from, msg, out),
            ShardMsgKind::InvokeChunk(msg) => self.handle_remote_chunk(from, msg, out),
            ShardMsgKind::Publish(publication) => self.handle_remote_publish(&publication, out),
            ShardMsgKind::Retain(retain) => self.handle_retain(*retain, out),
            ShardMsgKind::RetainedUpdate(update) => self.apply_retained_update(*update),
            ShardMsgKind::HistoryAppend(append) => self.handle_history_append(*append, out),
            ShardMsgKind::Gather(gather) => self.handle_gather(from, gather, out),
            ShardMsgKind::Gathered(gathered) => self.handle_gathered(from, gathered, out),
        }
    }

    /// Keeps a copy of every fact from now on, for [`Router::take_facts`] (tests, inspection;
    /// at most `facts::RECORD_CAPACITY` are kept, the oldest dropped first).
    pub fn record_facts(&mut self, on: bool) {
        self.facts.record(on);
    }

    /// The facts recorded since the last call, oldest first.
    pub fn take_facts(&mut self) -> Vec<Fact> {
        self.facts.take_recorded()
    }

    /// Hands the facts of the input just handled to their readers (nothing to do on the hot
    /// paths, which record none: the check is inlined, the work is not).
    #[inline(always)]
    fn settle(&mut self, out: &mut Vec<Action>) {
        if !self.internal.is_empty() {
            self.take_internal_frames(out);
        }
        if !self.facts.is_empty() {
            self.read_facts(out);
        }
    }

    fn read_facts(&mut self, out: &mut Vec<Action>) {
        let facts = self.facts.take_new();
        for fact in &facts {
            self.publish_meta_event(fact, out);
        }
        self.facts.done(facts);
    }

    /// Sessions currently open (awaiting HELLO, established, or closing).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub fn stats(&self) -> RouterStats {
        let mut stats = self.stats.clone();
        // The router's own sessions (internal_caller.rs) are not clients' sessions.
        let internal = self
            .internal
            .keys()
            .filter(|key| self.sessions.get(**key).is_some())
            .count();
        stats.sessions = self.sessions.len() - internal;
        stats.registrations = self.realms.iter().map(|realm| realm.registry.len()).sum();
        stats.realms = self.realms.len();
        stats.subscriptions = self
            .realms
            .iter()
            .map(|realm| realm.subscriptions.len())
            .sum();
        stats.pending_calls = self
            .sessions
            .iter()
            .map(|(_, session)| session.calls_waiting.len())
            .sum();
        stats.pending_entries = self.pending.len();
        stats.retained_now = self.realms.iter().map(|realm| realm.retained.len()).sum();
        stats.retained_bytes = self.realms.iter().map(|realm| realm.retained.bytes()).sum();
        (stats.history_now, stats.history_bytes) = self
            .realms
            .iter()
            .map(|realm| realm.history.held())
            .fold((0, 0), |(events, bytes), (e, b)| (events + e, bytes + b));
        stats.inflight_registry_ops = self.inflight_ops() + self.gathers_in_flight();
        stats.timers = self.timers.len();
        stats.log_lines_suppressed = self.logs.suppressed();
        stats
    }

    /// The exact registration of `procedure` in `realm` as this shard sees it.
    pub fn registration(&self, realm: &str, procedure: &str) -> Option<RegistrationInfo> {
        self.registration_matching(realm, procedure, "exact")
    }

    /// The registration of URI `procedure` with REGISTER.Options.match `matching` in `realm`
    /// as this shard sees it (the registration itself, not what a call of `procedure` reaches).
    pub fn registration_matching(
        &self,
        realm: &str,
        procedure: &str,
        matching: &str,
    ) -> Option<RegistrationInfo> {
        let realm = self.realms.find(realm)?;
        let matching = dealer::MatchPolicy::parse(Some(matching));
        let registration = self
            .realms
            .get(realm)
            .registry
            .lookup(procedure, matching)?;
        Some(RegistrationInfo {
            id: registration.id,
            matching: registration.matching.name(),
            invoke: registration.invoke.name(),
            callees: registration
                .callees
                .iter()
                .map(|callee| callee.session.session_id)
                .collect(),
        })
    }

    /// The WAMP session id of an established session (for logs and the runtime's metrics).
    /// The encoded ABORT `reason` (with Details.message `text`) the runtime queues for a
    /// session it ends on its own (slow consumer).
    pub fn encode_abort(
        reason: &'static str,
        text: &'static str,
        serializer: Serializer,
    ) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(96);
        if let Err(error) = wire::encode(
            &outbox::abort(reason, text, serializer),
            serializer,
            &mut bytes,
        ) {
            // Static strings always encode; if not, the close frame alone must do.
            tracing::error!(%error, "router ABORT not encodable");
            bytes.clear();
        }
        bytes
    }

    pub fn wamp_session_id(&self, session: SessionKey) -> Option<u64> {
        self.sessions
            .get(session)?
            .identity()
            .map(|identity| identity.id)
    }

    /// Who a welcomed session is — (WAMP session id, realm, authid, authrole) — for the
    /// runtime's per-session log lines; `None` before WELCOME.
    pub fn session_identity(&self, session: SessionKey) -> Option<(u64, &str, &str, &str)> {
        let identity = self.sessions.get(session)?.identity()?;
        Some((
            identity.id,
            &self.realms.get(identity.realm).name,
            &identity.authid,
            &identity.authrole,
        ))
    }

    fn arm_realm_sweep(&mut self) {
        if self.realm_sweep.is_none() {
            let at = self.now.saturating_add(REALM_SWEEP_MS);
            self.realm_sweep = Some(self.timers.arm(at, Timeout::RealmSweep));
        }
    }

    /// No timer without a purpose: the sweep goes when no realm is left to look at.
    fn disarm_realm_sweep_if_idle(&mut self) {
        if !self.realms.has_candidates() {
            if let Some(timer) = self.realm_sweep.take() {
                self.timers.cancel(timer);
            }
        }
    }

    /// Removes the auto-created realms nothing uses any more on this shard: no session, no
    /// registration or subscription (replicas included), no op in flight. The others stay
    /// candidates while they have no session, and are looked at again in the next sweep.
    fn sweep_realms(&mut self) {
        self.realm_sweep = None;
        self.remove_unused_realms();
        if self.realms.has_candidates() {
            self.arm_realm_sweep();
        }
    }

    /// The sweep's work, also done when a HELLO finds the bound reached.
    pub(super) fn remove_unused_realms(&mut self) {
        for id in self.realms.take_candidates() {
            if self.remove_realm_if_unused(id) {
                continue;
            }
            let realm = self.realms.get(id);
            // Kept by retained events alone: `retention.rs` makes it a candidate again when
            // its last retained event goes.
            let held_by_retained_alone =
                realm.is_unused_but_retained() && !self.realm_has_ops_in_flight(id);
            let waiting = realm.sessions == 0 && !held_by_retained_alone;
            if waiting {
                self.realms.mark_candidate(id);
            }
        }
        self.disarm_realm_sweep_if_idle();
    }

    /// Removes auto-created realm `id` when nothing uses it on this shard: no session, no
    /// registration or subscription (replicas included), no op in flight. True when removed.
    fn remove_realm_if_unused(&mut self, id: RealmId) -> bool {
        let unused = self.realms.get(id).is_unused() && !self.realm_has_ops_in_flight(id);
        if unused {
            self.realms.remove(id);
            self.stats.realms_removed += 1;
        }
        unused
    }

    /// The HELLO deadline of `session` passed: close it, unless it said HELLO meanwhile (the
    /// timer is then cancelled) or the key now belongs to a newer session with its own timer.
    fn hello_timed_out(
        &mut self,
        session: SessionKey,
        timer: timers::TimerId,
        now: Millis,
        out: &mut Vec<Action>,
    ) {
        let Some(state) = self.sessions.get_mut(session) else {
            return;
        };
        if !matches!(state.phase, Phase::ExpectHello { deadline } if deadline == timer) {
            return;
        }
        state.phase = Phase::Closing;
        self.stats.hello_timeouts += 1;
        if let Some(suppressed) = self.logs.hello_timeout.allow(now) {
            tracing::info!(
                peer = %state.transport.peer,
                transport = state.transport.kind,
                suppressed,
                "closed a connection that sent no HELLO within {} ms ({suppressed} more since the last such line)",
                self.config.hello_timeout_ms
            );
        }
        out.push(Action::Close {
            session,
            reason: CloseReason::HelloTimeout,
        });
    }

    fn handle_before_welcome(
        &mut self,
        session: SessionKey,
        message: Message<'_>,
        out: &mut Vec<Action>,
    ) {
        let authenticating = matches!(self.sessions[session].phase, Phase::Authenticating(_));
        match message {
            Message::Hello { realm, details } if !authenticating => {
                self.handle_hello(session, &realm, &details, out)
            }
            Message::Authenticate { signature, extra } if authenticating => {
                self.handle_authenticate(session, &signature, &extra, out)
            }
            Message::Abort { .. } => {
                // ABORT is never answered.
                self.stop_waiting(session);
                out.push(Action::Close {
                    session,
                    reason: CloseReason::Done,
                });
            }
            other if authenticating => self.protocol_violation(
                session,
                format!("{} received instead of AUTHENTICATE", other.name()),
                out,
            ),
            other => self.protocol_violation(
                session,
                format!("{} received before HELLO", other.name()),
                out,
            ),
        }
    }

    /// Routes a message of an established session that passed admission; `frame` is the one it
    /// was decoded from (forwarded payloads are sliced from it).
    #[inline(always)]
    fn handle_established(
        &mut self,
        me: Admitted,
        message: Message<'_>,
        frame: &Bytes,
        out: &mut Vec<Action>,
    ) {
        let session = me.key;
        match message {
            Message::Publish {
                request,
                options,
                topic,
                payload,
            } => self.handle_publish(me, request, &options, &topic, payload, out),
            Message::Call {
                request,
                options,
                procedure,
                payload,
            } => {
                let carried = rpc::Carried {
                    payload,
                    source: frame,
                };
                if me.continues {
                    self.handle_call_chunk(me, request, &options, carried, out);
                } else {
                    self.handle_call(me, request, &options, &procedure, carried, out);
                }
            }
            Message::Yield {
                request,
                options,
                payload,
            } => {
                self.handle_yield(me, request, &options, payload, frame, out);
                // Dropped here, where its type is known, so the hot path inlines the drop.
                drop(options);
            }
            Message::Error {
                request,
                details,
                error,
                payload,
                ..
            } => {
                let carried = rpc::Carried {
                    payload,
                    source: frame,
                };
                self.handle_invocation_error(me, request, details, &error, carried, out)
            }
            Message::Subscribe {
                request,
                topic,
                options,
            } => self.handle_subscribe(me, request, &options, &topic, out),
            Message::Unsubscribe {
                request,
                subscription,
            } => self.handle_unsubscribe(me, request, subscription, out),
            Message::Register {
                request,
                options,
                procedure,
            } => self.handle_register(me, request, &options, &procedure, out),
            Message::Unregister {
                request,
                registration,
            } => self.handle_unregister(me, request, registration, out),
            Message::Cancel { request, options } => self.handle_cancel(me, request, &options, out),
            Message::Goodbye { .. } => {
                self.send(
                    out,
                    session,
                    me.serializer,
                    &outbox::goodbye(uri::CLOSE_GOODBYE_AND_OUT),
                );
                self.leave(session, true, out);
                out.push(Action::Close {
                    session,
                    reason: CloseReason::Done,
                });
            }
            Message::Abort { .. } => {
                self.leave(session, true, out);
                out.push(Action::Close {
                    session,
                    reason: CloseReason::Done,
                });
            }
            // Admission lets none of these through; should one slip, it is still a violation.
            other => self.protocol_violation(
                session,
                format!(
                    "{} is not accepted from an established session",
                    other.name()
                ),
                out,
            ),
        }
    }

    fn uri_is_valid(&self, uri: &str) -> bool {
        wire::validate_uri(uri, self.config.uri_check == UriCheck::Strict, false)
    }

    /// Encodes and queues a message; an encode error is counted and logged (rate-limited: the
    /// content can be a client's).
    fn send(
        &mut self,
        out: &mut Vec<Action>,
        session: SessionKey,
        serializer: Serializer,
        message: &Message<'_>,
    ) -> bool {
        match self.outbox.send(out, session, serializer, message) {
            Ok(()) => true,
            Err(error) => {
                self.note_encode_error(session, message.name(), &error);
                false
            }
        }
    }

    #[cold]
    pub(super) fn note_encode_error(
        &mut self,
        session: SessionKey,
        message: &str,
        error: &wire::EncodeError,
    ) {
        self.stats.encode_errors += 1;
        if let Some(suppressed) = self.logs.encode_error.allow(self.now) {
            tracing::warn!(
                wamp_session = self.sessions.get(session).map_or(0, |s| s.id()),
                message,
                suppressed,
                "cannot encode message: {error} ({suppressed} more since the last such line)"
            );
        }
    }

    /// ERROR for `session`'s request `request` (of type `request_type`) with `uri` and a
    /// human-readable Details.message, in the session's own serializer.
    fn send_error(
        &mut self,
        out: &mut Vec<Action>,
        session: SessionKey,
        request_type: u64,
        request: u64,
        uri: &'static str,
        text: impl Into<std::borrow::Cow<'static, str>>,
    ) -> bool {
        let serializer = self.sessions[session].serializer;
        let error = outbox::error(request_type, request, uri, text, serializer);
        self.send(out, session, serializer, &error)
    }

    /// ABORT `wamp.error.protocol_violation` with `text`, drop everything the session owns (as
    /// if it left), then Close. Further input from it is ignored.
    fn protocol_violation(
        &mut self,
        session: SessionKey,
        text: impl Into<std::borrow::Cow<'static, str>>,
        out: &mut Vec<Action>,
    ) {
        let text = text.into();
        self.stats.protocol_violations += 1;
        let state = &self.sessions[session];
        if let Some(suppressed) = self.logs.protocol_violation.allow(self.now) {
            tracing::warn!(
                wamp_session = state.id(),
                peer = %state.transport.peer,
                transport = state.transport.kind,
                suppressed,
                "protocol violation: {text}"
            );
        }
        let serializer = state.serializer;
        self.send(
            out,
            session,
            serializer,
            &outbox::abort(uri::PROTOCOL_VIOLATION, text, serializer),
        );
        self.leave(session, true, out);
        out.push(Action::Close {
            session,
            reason: CloseReason::Done,
        });
    }

    /// The session leaves its realm: its registrations and subscriptions go away (through their
    /// owner shards), calls it made are orphaned (late answers discarded), and callers of
    /// invocations it owed get ERROR `wamp.error.canceled` — local ones when `notify_callers`,
    /// callers on other shards always (their shard is not closing them). Marks the session
    /// Closing; a session still waiting for HELLO just stops waiting.
    fn leave(&mut self, session: SessionKey, notify_callers: bool, out: &mut Vec<Action>) {
        let state = &mut self.sessions[session];
        let phase = std::mem::replace(&mut state.phase, Phase::Closing);
        let identity = match phase {
            Phase::Established(identity) => identity,
            Phase::ExpectHello { deadline } => {
                self.timers.cancel(deadline);
                return;
            }
            Phase::Authenticating(auth) => {
                self.timers.cancel(auth.deadline);
                self.sessions.release_id(auth.id);
                return;
            }
            Phase::Closing => return,
        };
        let registrations = std::mem::replace(&mut state.registrations, fast_set());
        let subscriptions = std::mem::replace(&mut state.subscriptions, fast_set());
        let calls_waiting = std::mem::take(&mut state.calls_waiting);
        let invocations = std::mem::take(&mut state.invocations);
        let testaments = std::mem::take(&mut state.testaments);
        state.discarded_invocations.clear();

        // Sorted so the order of the messages (and so a simulation) replays exactly.
        let mut registrations: Vec<u64> = registrations.into_iter().collect();
        registrations.sort_unstable();
        for id in registrations {
            self.callee_removed(identity.realm, id, session, identity.id);
            self.send_unregister(session, identity.id, identity.realm, id, None, out);
        }
        let mut subscriptions: Vec<u64> = subscriptions.into_iter().collect();
        subscriptions.sort_unstable();
        for id in subscriptions {
            let nobody = cluster::LeaveAnswer::Nobody;
            self.remove_local_subscriber(session, identity.id, identity.realm, id, nobody, out);
        }
        // The session's last words: once it receives nothing more itself, and before its
        // meta events (published when the input settles) say it is gone.
        if testaments.len() > 0 {
            let realm = self.realms.get(identity.realm).name.clone();
            self.publish_testaments(realm, testaments, out);
        }
        self.realms.get_mut(identity.realm).sessions -= 1;

        // Calls the session made: their callees are interrupted (if they can be) and their
        // answers discarded.
        let mut calls_waiting: Vec<(u64, dealer::PendingKey)> = calls_waiting.into_iter().collect();
        calls_waiting.sort_unstable_by_key(|&(request, _)| request);
        for (_, key) in calls_waiting {
            self.interrupt_callee(key, CancelMode::KillNoWait, None, out);
            let Some(call) = self.finish_call(key) else {
                continue;
            };
            // A callee on another shard forgets its invocation on the INTERRUPT above, or
            // else its answer is discarded here.
            let Callee::Local {
                session: callee,
                invocation,
            } = call.callee
            else {
                continue;
            };
            if let Some(callee) = self.sessions.get_mut(callee) {
                callee.invocations.remove(&invocation);
                if callee.is_established() {
                    callee.discarded_invocations.remember(invocation);
                }
            }
        }
        let mut invocations: Vec<(u64, dealer::PendingKey)> = invocations.into_iter().collect();
        invocations.sort_unstable_by_key(|&(invocation, _)| invocation);
        for (_, key) in invocations {
            // A call the session made to itself was already removed above.
            let Some(call) = self.finish_call(key) else {
                continue;
            };
            let text = "the callee left before answering";
            match call.caller {
                Caller::Local(caller) => {
                    let Some(caller_state) = self.sessions.get_mut(caller) else {
                        continue;
                    };
                    caller_state.calls_waiting.remove(&call.caller_request);
                    if notify_callers && caller_state.is_established() {
                        self.stats.calls_canceled += 1;
                        self.send_error(
                            out,
                            caller,
                            wire::code::CALL,
                            call.caller_request,
                            uri::CANCELED,
                            text,
                        );
                    }
                }
                Caller::Remote(remote) => {
                    let error = outbox::error(
                        wire::code::CALL,
                        call.caller_request,
                        uri::CANCELED,
                        text,
                        remote.serializer,
                    );
                    self.reply_to_shard(remote, &error, &Bytes::new(), rpc::Answer::Canceled, out);
                }
            }
        }
        self.sessions.release_id(identity.id);
        self.facts.push(Fact::SessionLeft {
            realm: self.realms.get(identity.realm).name.clone(),
            session: identity.id,
            authid: identity.authid,
            authrole: identity.authrole,
        });
        debug_assert!(self.sessions[session].owns_nothing());
        if self.realms.get(identity.realm).sessions == 0 {
            self.realm_left_empty(identity.realm);
        }
    }

    /// The last local session of `realm` left. An auto-created realm with nothing else left
    /// here goes at once (a client creating and leaving realms in a loop must not fill the
    /// bound between sweeps); one still holding table entries or ops (other shards' sessions,
    /// updates in flight) is looked at again by the sweep.
    fn realm_left_empty(&mut self, realm: RealmId) {
        if !self.realms.get(realm).auto_created {
            return;
        }
        if self.remove_realm_if_unused(realm) {
            self.disarm_realm_sweep_if_idle();
        } else {
            self.realms.mark_candidate(realm);
            self.arm_realm_sweep();
        }
    }
}
