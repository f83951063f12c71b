//! The router's internal event list: the facts the table code establishes (a session joined or
//! left, a registration or subscription was created or deleted, a callee or subscriber was
//! added or removed), appended in the order they happen on this shard. It is the one place that
//! the meta API, testaments and metrics read, instead of being called from every table
//! function (DESIGN.md "The router is a peer of itself").
//!
//! Who appends what, so that each fact is recorded exactly once in the whole router:
//! * the session's shard: `SessionJoined`, `SessionLeft`, `CalleeAdded` (when REGISTERED goes
//!   out), `CalleeRemoved` (UNREGISTER starts or the callee leaves), `SubscriberAdded` (when
//!   SUBSCRIBED goes out), `SubscriberRemoved`, and `RegistrationCreated`/`Deleted`,
//!   `SubscriptionCreated`/`Deleted` when the session's REGISTER/SUBSCRIBE created the entry
//!   or its removal deleted it (on applying the owner's update, see `cluster.rs`). So the facts
//!   of one session are in the order they happened for it: a creation before the callee or
//!   subscriber is added, a deletion after it was removed. With several shards a deletion
//!   that the session's leaving causes comes after its `SessionLeft` (the owner answers
//!   later).
//!
//! The list is handed over at the end of every router input (`Router::settle`) to its readers:
//! the meta events (`meta.rs`, published by the router itself), and a bounded recording for
//! inspection when it is on. Then it is cleared.

use std::collections::VecDeque;
use std::sync::Arc;

use super::TransportInfo;

/// Largest list kept for reuse between inputs.
const KEEP_CAPACITY: usize = 1024;

/// One fact, with the ids and names a reader needs without looking at the tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    SessionJoined {
        realm: Arc<str>,
        session: u64,
        authid: Box<str>,
        authrole: Box<str>,
        authmethod: &'static str,
        authprovider: &'static str,
        transport: TransportInfo,
    },
    SessionLeft {
        realm: Arc<str>,
        session: u64,
        authid: Box<str>,
        authrole: Box<str>,
    },
    /// `session` is the callee whose REGISTER created it.
    RegistrationCreated {
        realm: Arc<str>,
        registration: u64,
        procedure: Arc<str>,
        /// REGISTER.Options.match: "exact", "prefix" or "wildcard".
        matching: &'static str,
        invoke: &'static str,
        /// Unix ms, as the owner decided it.
        created: u64,
        session: u64,
    },
    /// `session` is the callee whose removal deleted it.
    RegistrationDeleted {
        realm: Arc<str>,
        registration: u64,
        session: u64,
    },
    CalleeAdded {
        realm: Arc<str>,
        registration: u64,
        session: u64,
    },
    CalleeRemoved {
        realm: Arc<str>,
        registration: u64,
        session: u64,
    },
    /// `session` is the subscriber whose SUBSCRIBE created it.
    SubscriptionCreated {
        realm: Arc<str>,
        subscription: u64,
        topic: Arc<str>,
        /// SUBSCRIBE.Options.match: "exact", "prefix" or "wildcard".
        matching: &'static str,
        /// Unix ms, as the owner decided it.
        created: u64,
        session: u64,
    },
    /// `session` is the last subscriber on the last shard, whose leaving deleted it.
    SubscriptionDeleted {
        realm: Arc<str>,
        subscription: u64,
        session: u64,
    },
    SubscriberAdded {
        realm: Arc<str>,
        subscription: u64,
        session: u64,
    },
    SubscriberRemoved {
        realm: Arc<str>,
        subscription: u64,
        session: u64,
    },
}

/// Recorded facts kept for inspection at most; older ones are dropped.
pub(crate) const RECORD_CAPACITY: usize = 65_536;

pub(crate) struct Facts {
    /// Facts of the input being handled, oldest first.
    new: Vec<Fact>,
    /// `Some` while recording for inspection (`Router::record_facts`).
    recorded: Option<VecDeque<Fact>>,
}

impl Facts {
    pub(crate) fn new() -> Facts {
        Facts {
            new: Vec::new(),
            recorded: None,
        }
    }

    pub(crate) fn push(&mut self, fact: Fact) {
        self.new.push(fact);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.new.is_empty()
    }

    /// The facts of the input just handled, for the readers; give the list back with
    /// [`Facts::done`].
    pub(crate) fn take_new(&mut self) -> Vec<Fact> {
        std::mem::take(&mut self.new)
    }

    /// The readers are done with `facts`: record them if asked to, and keep the list's memory.
    pub(crate) fn done(&mut self, mut facts: Vec<Fact>) {
        if let Some(recorded) = &mut self.recorded {
            for fact in facts.drain(..) {
                if recorded.len() == RECORD_CAPACITY {
                    recorded.pop_front();
                }
                recorded.push_back(fact);
            }
        }
        facts.clear();
        // A session that leaves with thousands of subscriptions makes one huge list; keeping
        // that would hold its memory for good.
        if self.new.is_empty() && facts.capacity() <= KEEP_CAPACITY {
            self.new = facts;
        }
    }

    pub(crate) fn record(&mut self, on: bool) {
        self.recorded = on.then(VecDeque::new);
    }

    pub(crate) fn take_recorded(&mut self) -> Vec<Fact> {
        self.recorded
            .as_mut()
            .map(|recorded| recorded.drain(..).collect())
            .unwrap_or_default()
    }
}
