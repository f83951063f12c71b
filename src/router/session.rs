//! One session as the router sees it: its transport facts, its lifecycle phase (a type per
//! phase, each holding what only that phase has: the HELLO deadline before WELCOME, the identity
//! after), and the lists of what it owns (registrations, subscriptions, pending calls in both
//! directions) so that cleanup costs O(owned), not O(tables). [`Sessions`] is the router's
//! table of them.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::{Index, IndexMut};

use slab::Slab;

use super::authn::Authenticating;
use super::authz::{RoleId, SessionAuthz};
use super::dealer::PendingKey;
use super::ids::next_sequential;
use super::realm::RealmId;
use super::testament::Testaments;
use super::timers::TimerId;
use super::{fast_map, fast_set, FastMap, FastSet, SessionKey, TransportInfo};
use crate::serializer::Serializer;
use crate::wire::Dict;

/// Hashing for keys the router assigns itself (slab handles, sequential invocation ids), which a
/// client cannot choose: a multiply per word instead of a keyed hash, on the per-call path. The
/// low bits of the product spread sequential keys over distinct buckets, the high bits (the
/// table's tag) are well mixed. A client can only look up ids, not pick the stored ones.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Where a session is in the WAMP lifecycle (digest §5, router view). Each phase accepts only
/// its own messages: HELLO or ABORT before WELCOME, routing messages once established (through
/// the admission step), nothing while closing. Between the first two, a session that
/// authenticates with a challenge accepts AUTHENTICATE or ABORT (`authn.rs`).
#[derive(Clone, Debug)]
pub(crate) enum Phase {
    /// Transport is up; the next message must be HELLO, before the deadline `deadline` fires.
    ExpectHello { deadline: TimerId },
    /// CHALLENGE sent; the next message must be AUTHENTICATE (or ABORT), before the deadline.
    Authenticating(Box<Authenticating>),
    /// WELCOME sent; routing messages are accepted.
    Established(Identity),
    /// ABORT/GOODBYE exchanged, a violation happened or the HELLO deadline passed; tables are
    /// already cleaned, input is ignored until the runtime calls `close_session`.
    Closing,
}

/// Who a session is after WELCOME.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) id: u64,
    pub(crate) realm: RealmId,
    pub(crate) authid: Box<str>,
    pub(crate) authrole: Box<str>,
    /// `authrole` in the realm's roles; `RoleId::UNRESTRICTED` when the realm defines none.
    pub(crate) role: RoleId,
    /// How it authenticated, and who vouched for it (WELCOME, `wamp.session.get`).
    pub(crate) authmethod: &'static str,
    pub(crate) authprovider: &'static str,
}

pub(crate) struct Session {
    pub(crate) serializer: Serializer,
    pub(crate) transport: TransportInfo,
    pub(crate) phase: Phase,
    /// Last request id received from the client (for `strict_request_ids`).
    pub(crate) last_request_id: u64,
    /// Last INVOCATION request id sent to this session as a callee.
    last_invocation_id: u64,
    /// The invocation ids went past 2^53 and started again at 1: a new id may then still be
    /// pending.
    invocation_ids_wrapped: bool,
    /// Registration ids this session owns (REGISTERED went out, UNREGISTER not started).
    pub(crate) registrations: FastSet<u64>,
    /// Subscription ids this session is a subscriber of.
    pub(crate) subscriptions: FastSet<u64>,
    /// REGISTERs admitted and not yet answered (with several shards they wait for the
    /// owner): they count against `max_registrations_per_session` too, so pipelining cannot
    /// get past it.
    pub(crate) registers_pending: u32,
    /// SUBSCRIBEs admitted and not yet answered, likewise.
    pub(crate) subscribes_pending: u32,
    /// Calls this session made that are still waiting for their final answer, by the CALL's
    /// request id (what CANCEL and progressive CALL chunks name).
    pub(crate) calls_waiting: IdMap<u64, PendingKey>,
    /// The advanced features this session's HELLO announced that the dealer acts on.
    pub(crate) features: PeerFeatures,
    /// Request ids of this session's streamed calls (progressive_call_invocations) that are
    /// over: chunks still arriving under them are dropped silently.
    pub(crate) finished_streams: FinishedStreams,
    /// Invocations sent to this session (as callee) and not answered: invocation id -> call.
    pub(crate) invocations: IdMap<u64, PendingKey>,
    /// Invocation ids whose caller left or canceled: a late YIELD/ERROR for them is dropped
    /// silently instead of being a protocol violation.
    pub(crate) discarded_invocations: DiscardedIds,
    /// Events to publish when the session goes away (`testament.rs`).
    pub(crate) testaments: Testaments,
    /// A message waits for the dynamic authorizer: the next ones wait behind it.
    pub(crate) held: bool,
    /// Its dynamic authorizer's answers and the messages waiting (`authz.rs`); only for
    /// sessions whose role has one.
    pub(crate) authz: Option<Box<SessionAuthz>>,
}

impl Session {
    pub(crate) fn new(transport: TransportInfo, deadline: TimerId) -> Session {
        Session {
            serializer: transport.serializer,
            transport,
            phase: Phase::ExpectHello { deadline },
            last_request_id: 0,
            last_invocation_id: 0,
            invocation_ids_wrapped: false,
            registrations: fast_set(),
            subscriptions: fast_set(),
            registers_pending: 0,
            subscribes_pending: 0,
            calls_waiting: IdMap::default(),
            features: PeerFeatures::NONE,
            finished_streams: FinishedStreams::default(),
            invocations: IdMap::default(),
            discarded_invocations: DiscardedIds::default(),
            testaments: Testaments::default(),
            held: false,
            authz: None,
        }
    }

    /// The router's own session in a realm (`internal_caller.rs`), established from the start.
    pub(crate) fn internal(transport: TransportInfo, phase: Phase) -> Session {
        let mut session = Session::new(transport, TimerId::NONE);
        session.phase = phase;
        session
    }

    /// The identity, once established (and until the session starts closing).
    pub(crate) fn identity(&self) -> Option<&Identity> {
        match &self.phase {
            Phase::Established(identity) => Some(identity),
            Phase::ExpectHello { .. } | Phase::Authenticating(_) | Phase::Closing => None,
        }
    }

    /// The WAMP session id while established, else 0.
    pub(crate) fn id(&self) -> u64 {
        self.identity().map_or(0, |identity| identity.id)
    }

    pub(crate) fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Established(_))
    }

    /// True when this is still the established session `session_id` (a slab key may have been
    /// reused by a newer session since an op started).
    pub(crate) fn is(&self, session_id: u64) -> bool {
        self.identity()
            .is_some_and(|identity| identity.id == session_id)
    }

    /// Checks a client request id against the sequential rule and records it.
    pub(crate) fn accept_request_id(&mut self, request: u64, strict: bool) -> bool {
        if strict && request != next_sequential(self.last_request_id) {
            return false;
        }
        self.last_request_id = request;
        true
    }

    /// The id the next INVOCATION to this session would carry (not yet consumed).
    #[inline]
    pub(crate) fn peek_invocation_id(&self) -> u64 {
        let mut id = next_sequential(self.last_invocation_id);
        // Ids only grow until they wrap at 2^53, so before that none can still be pending.
        if !self.invocation_ids_wrapped && id > self.last_invocation_id {
            return id;
        }
        while self.invocations.contains_key(&id) {
            id = next_sequential(id);
        }
        id
    }

    /// Records that INVOCATION `id` (from `peek_invocation_id`) went out.
    #[inline]
    pub(crate) fn consume_invocation_id(&mut self, id: u64) {
        if id <= self.last_invocation_id {
            self.invocation_ids_wrapped = true;
        }
        self.last_invocation_id = id;
    }

    /// True when the session owns no table entries any more (cleanup is complete).
    pub(crate) fn owns_nothing(&self) -> bool {
        self.registrations.is_empty()
            && self.subscriptions.is_empty()
            && self.calls_waiting.is_empty()
            && self.invocations.is_empty()
    }
}

/// The sessions of one shard, by key, and the WAMP session ids in use (for uniqueness, and the
/// meta API).
pub(crate) struct Sessions {
    slab: Slab<Session>,
    by_id: FastMap<u64, SessionKey>,
}

impl Sessions {
    pub(crate) fn new() -> Sessions {
        Sessions {
            slab: Slab::new(),
            by_id: fast_map(),
        }
    }

    /// The key the next [`Sessions::insert`] returns.
    pub(crate) fn next_key(&self) -> SessionKey {
        SessionKey(self.slab.vacant_key())
    }

    pub(crate) fn insert(&mut self, session: Session) -> SessionKey {
        SessionKey(self.slab.insert(session))
    }

    pub(crate) fn remove(&mut self, key: SessionKey) -> Session {
        self.slab.remove(key.0)
    }

    pub(crate) fn get(&self, key: SessionKey) -> Option<&Session> {
        self.slab.get(key.0)
    }

    pub(crate) fn get_mut(&mut self, key: SessionKey) -> Option<&mut Session> {
        self.slab.get_mut(key.0)
    }

    /// True when `key` is still the established session `session_id`.
    pub(crate) fn alive(&self, key: SessionKey, session_id: u64) -> bool {
        self.get(key).is_some_and(|session| session.is(session_id))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (SessionKey, &Session)> {
        self.slab
            .iter()
            .map(|(key, session)| (SessionKey(key), session))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (SessionKey, &mut Session)> {
        self.slab
            .iter_mut()
            .map(|(key, session)| (SessionKey(key), session))
    }

    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }

    /// The key of the established session with WAMP session id `id`.
    pub(crate) fn key_of(&self, id: u64) -> Option<SessionKey> {
        self.by_id.get(&id).copied()
    }

    pub(crate) fn id_in_use(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    pub(crate) fn claim_id(&mut self, id: u64, key: SessionKey) {
        self.by_id.insert(id, key);
    }

    pub(crate) fn release_id(&mut self, id: u64) {
        self.by_id.remove(&id);
    }
}

impl Index<SessionKey> for Sessions {
    type Output = Session;

    fn index(&self, key: SessionKey) -> &Session {
        &self.slab[key.0]
    }
}

impl IndexMut<SessionKey> for Sessions {
    fn index_mut(&mut self, key: SessionKey) -> &mut Session {
        &mut self.slab[key.0]
    }
}

/// The client features (HELLO.Details.roles.<role>.features) the router must know about a
/// session, as bits. Only what changes routing is kept: what a callee can take (INTERRUPT,
/// progressive results, progressive invocations, pass-through payloads), and whether a callee
/// or subscriber is told of a revocation.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct PeerFeatures(u8);

impl PeerFeatures {
    pub(crate) const NONE: PeerFeatures = PeerFeatures(0);
    /// callee.features.call_canceling: it understands INTERRUPT.
    pub(crate) const CALLEE_CANCELING: PeerFeatures = PeerFeatures(1);
    /// callee.features.progressive_call_results.
    pub(crate) const CALLEE_PROGRESSIVE_RESULTS: PeerFeatures = PeerFeatures(2);
    /// callee.features.progressive_call_invocations.
    pub(crate) const CALLEE_PROGRESSIVE_INVOCATIONS: PeerFeatures = PeerFeatures(4);
    /// callee.features.payload_passthru_mode.
    pub(crate) const CALLEE_PASSTHRU: PeerFeatures = PeerFeatures(8);
    /// caller.features.progressive_call_invocations.
    pub(crate) const CALLER_PROGRESSIVE_INVOCATIONS: PeerFeatures = PeerFeatures(16);
    /// caller.features.payload_passthru_mode.
    pub(crate) const CALLER_PASSTHRU: PeerFeatures = PeerFeatures(32);
    /// callee.features.registration_revocation: it is told (UNREGISTERED with request 0).
    pub(crate) const CALLEE_REVOCATION: PeerFeatures = PeerFeatures(64);
    /// subscriber.features.subscription_revocation: it is told (UNSUBSCRIBED with request 0).
    pub(crate) const SUBSCRIBER_REVOCATION: PeerFeatures = PeerFeatures(128);

    pub(crate) fn has(self, feature: PeerFeatures) -> bool {
        self.0 & feature.0 == feature.0
    }

    /// Reads HELLO.Details.roles. The spellings the spec and clients use are all accepted:
    /// `call_cancelling` (spec typo) and Bondy's `progressive_calls` (digest §13).
    pub(crate) fn from_roles(roles: &Dict<'_>) -> PeerFeatures {
        let flag = |role: &str, names: &[&str]| {
            roles
                .get_dict(role)
                .and_then(|role| role.get_dict("features"))
                .is_some_and(|features| {
                    names
                        .iter()
                        .any(|&name| features.get_bool(name) == Some(true))
                })
        };
        let mut bits = 0;
        for (role, names, feature) in [
            (
                "callee",
                &["call_canceling", "call_cancelling"][..],
                Self::CALLEE_CANCELING,
            ),
            (
                "callee",
                &["progressive_call_results"],
                Self::CALLEE_PROGRESSIVE_RESULTS,
            ),
            (
                "callee",
                &["progressive_call_invocations", "progressive_calls"],
                Self::CALLEE_PROGRESSIVE_INVOCATIONS,
            ),
            ("callee", &["payload_passthru_mode"], Self::CALLEE_PASSTHRU),
            (
                "caller",
                &["progressive_call_invocations", "progressive_calls"],
                Self::CALLER_PROGRESSIVE_INVOCATIONS,
            ),
            ("caller", &["payload_passthru_mode"], Self::CALLER_PASSTHRU),
            (
                "callee",
                &["registration_revocation"],
                Self::CALLEE_REVOCATION,
            ),
            (
                "subscriber",
                &["subscription_revocation"],
                Self::SUBSCRIBER_REVOCATION,
            ),
        ] {
            if flag(role, names) {
                bits |= feature.0;
            }
        }
        PeerFeatures(bits)
    }
}

/// Invocation ids whose caller left or canceled. Kept small: an answer older than the bound is
/// then treated as unknown (a protocol violation), which only a callee that sits on thousands
/// of abandoned calls can hit.
pub(crate) type DiscardedIds = RecentIds<4096>;

/// Request ids of a caller's streamed calls that are over: the grace window in which their
/// late chunks are dropped quietly (digest §9.2). Looked through on each CALL of a session
/// that streams, so it is short.
pub(crate) type FinishedStreams = RecentIds<64>;

/// A bounded memory of the last `N` ids, oldest forgotten first.
#[derive(Default)]
pub(crate) struct RecentIds<const N: usize> {
    ids: VecDeque<u64>,
}

impl<const N: usize> RecentIds<N> {
    pub(crate) const CAPACITY: usize = N;

    pub(crate) fn remember(&mut self, id: u64) {
        if self.ids.len() == Self::CAPACITY {
            self.ids.pop_front();
        }
        self.ids.push_back(id);
    }

    /// True when `id` is remembered (a late progressive YIELD leaves it there for the final one).
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.ids.contains(&id)
    }

    /// Forgets `id` if remembered; true when it was (a late answer is expected once).
    pub(crate) fn take(&mut self, id: u64) -> bool {
        match self.ids.iter().rposition(|&known| known == id) {
            Some(index) => {
                self.ids.remove(index);
                true
            }
            None => false,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.ids = VecDeque::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_ids_skip_pending_ones_only_after_wrapping() {
        let transport = TransportInfo {
            serializer: Serializer::Json,
            kind: "test",
            peer: "test".into(),
            listener: 0,
            secure: false,
        };
        let mut session = Session::new(transport, TimerId::for_tests(1));
        assert_eq!(session.peek_invocation_id(), 1);
        session.consume_invocation_id(1);
        assert_eq!(session.peek_invocation_id(), 2);
        // Invocation 1 is still pending when the ids come round again.
        session.invocations.insert(1, PendingKey::for_tests(1));
        session.consume_invocation_id(crate::wire::MAX_ID - 1);
        session.consume_invocation_id(crate::wire::MAX_ID);
        assert_eq!(
            session.peek_invocation_id(),
            2,
            "after wrapping, pending id 1 is skipped"
        );
        session.consume_invocation_id(2);
        assert_eq!(session.peek_invocation_id(), 3);
    }

    #[test]
    fn discarded_ids_are_bounded_and_taken_once() {
        let mut ids = DiscardedIds::default();
        for id in 1..=(DiscardedIds::CAPACITY as u64 + 10) {
            ids.remember(id);
        }
        assert!(!ids.take(1), "the oldest ids are forgotten");
        assert!(ids.take(11));
        assert!(!ids.take(11), "a discarded id is taken once");
        assert!(ids.take(DiscardedIds::CAPACITY as u64 + 10));
    }
}
