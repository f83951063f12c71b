//! One session as the router sees it: its transport facts, its lifecycle state, its identity
//! after WELCOME, and the lists of what it owns (registrations, subscriptions, pending calls in
//! both directions) so that cleanup costs O(owned), not O(tables).

use std::collections::VecDeque;

use super::dealer::PendingKey;
use super::ids::next_sequential;
use super::realm::RealmId;
use super::{fast_map, fast_set, FastMap, FastSet, TransportInfo};
use crate::serializer::Serializer;

/// Where a session is in the WAMP lifecycle (digest §5, router view).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum SessionState {
    /// Transport is up; the next message must be HELLO.
    AwaitingHello,
    /// WELCOME sent; routing messages are accepted.
    Established,
    /// ABORT/GOODBYE exchanged or a violation happened; tables are already cleaned, input is
    /// ignored until the runtime calls `close_session`.
    Closing,
}

/// Who a session is after WELCOME.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) id: u64,
    pub(crate) realm: RealmId,
    pub(crate) authid: Box<str>,
    pub(crate) authrole: Box<str>,
}

pub(crate) struct Session {
    pub(crate) serializer: Serializer,
    pub(crate) transport: TransportInfo,
    pub(crate) state: SessionState,
    pub(crate) identity: Option<Identity>,
    /// Last request id received from the client (for `strict_request_ids`).
    pub(crate) last_request_id: u64,
    /// Last INVOCATION request id sent to this session as a callee.
    pub(crate) last_invocation_id: u64,
    /// Registration ids this session owns.
    pub(crate) registrations: FastSet<u64>,
    /// Subscription ids this session is a subscriber of.
    pub(crate) subscriptions: FastSet<u64>,
    /// Calls this session made that are still waiting for a result.
    pub(crate) calls_waiting: FastSet<PendingKey>,
    /// Invocations sent to this session (as callee) and not answered: invocation id -> call.
    pub(crate) invocations: FastMap<u64, PendingKey>,
    /// Invocation ids whose caller left or canceled: a late YIELD/ERROR for them is dropped
    /// silently instead of being a protocol violation.
    pub(crate) discarded_invocations: DiscardedIds,
}

impl Session {
    pub(crate) fn new(transport: TransportInfo) -> Session {
        Session {
            serializer: transport.serializer,
            transport,
            state: SessionState::AwaitingHello,
            identity: None,
            last_request_id: 0,
            last_invocation_id: 0,
            registrations: fast_set(),
            subscriptions: fast_set(),
            calls_waiting: fast_set(),
            invocations: fast_map(),
            discarded_invocations: DiscardedIds::default(),
        }
    }

    /// The WAMP session id once established.
    pub(crate) fn id(&self) -> u64 {
        self.identity.as_ref().map_or(0, |identity| identity.id)
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
    pub(crate) fn peek_invocation_id(&self) -> u64 {
        let mut id = next_sequential(self.last_invocation_id);
        // Only after 2^53 invocations can an id still be pending; skip it then.
        while self.invocations.contains_key(&id) {
            id = next_sequential(id);
        }
        id
    }

    /// True when the session owns no table entries any more (cleanup is complete).
    pub(crate) fn owns_nothing(&self) -> bool {
        self.registrations.is_empty()
            && self.subscriptions.is_empty()
            && self.calls_waiting.is_empty()
            && self.invocations.is_empty()
    }
}

/// A bounded memory of discarded invocation ids, oldest forgotten first. Kept small: an answer
/// older than the bound is then treated as unknown (a protocol violation), which only a callee
/// that sits on thousands of abandoned calls can hit.
#[derive(Default)]
pub(crate) struct DiscardedIds {
    ids: VecDeque<u64>,
}

impl DiscardedIds {
    pub(crate) const CAPACITY: usize = 4096;

    pub(crate) fn remember(&mut self, id: u64) {
        if self.ids.len() == Self::CAPACITY {
            self.ids.pop_front();
        }
        self.ids.push_back(id);
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
