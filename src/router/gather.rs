//! Gather across shards as a primitive (DESIGN.md "The router kernel"), as Seastar's
//! `map_reduce`: a query that spans shards is answered by every shard from its own tables
//! ([`Router::answer`], the map), and the partial answers are merged ([`Partial::merge`], the
//! reduce) on the shard that asked, under one ticket; when the last one is in, the completion
//! ([`Then`]) runs. One scatter message and one answer per other shard, whatever the query: a
//! new question adds a `Query` variant, its `Partial`, and an `answer` arm, never a message pair.
//!
//! With one shard the answer is complete at once. Shards answer even while shutting down, and
//! the mesh never drops, so a gather always completes; a caller that left meanwhile just gets
//! nothing.

use std::sync::Arc;

use super::history::{HistoryQuery, HistoryRecord};
use super::shard_msg::{Gather, Gathered, ShardMsgKind};
use super::{Action, Router, SessionKey, ShardId};
use crate::wire::{Message, Value};

/// A question every shard answers from its own tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Query {
    /// Established sessions of `realm`, only those whose authrole is listed when `authroles`
    /// is present (`wamp.session.count`, digest §10).
    SessionCount {
        realm: Arc<str>,
        authroles: Option<Vec<Box<str>>>,
    },
    /// The events of history subscription `subscription` that `query` selects for a session
    /// with this authid and authrole (`wamp.subscription.get_events`); asked of the history's
    /// owner shard alone.
    History {
        realm: Arc<str>,
        subscription: u64,
        query: Box<HistoryQuery>,
        authid: Box<str>,
        authrole: Box<str>,
    },
}

/// One shard's answer, and the merged answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Partial {
    Count(u64),
    /// The owner's selection, or why the query cannot be answered.
    History(Result<Vec<Arc<HistoryRecord>>, String>),
}

impl Partial {
    /// Folds another shard's answer into this one; false when the two do not fit (a broken
    /// shard), which leaves `self` unchanged.
    fn merge(&mut self, other: Partial) -> bool {
        match (self, other) {
            (Partial::Count(total), Partial::Count(count)) => {
                *total += count;
                true
            }
            // Asked of one shard: a second answer does not fit.
            _ => false,
        }
    }
}

/// What to do with the complete answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// RESULT for CALL `request` of the local session `caller` (if it is still session
    /// `session_id`), the answer as its only argument.
    CallResult {
        caller: SessionKey,
        session_id: u64,
        request: u64,
    },
    /// The RESULT of `get_events` for history subscription `subscription` (`pattern`: its
    /// events' Details name their topic).
    HistoryResult {
        caller: SessionKey,
        session_id: u64,
        request: u64,
        subscription: u64,
        pattern: bool,
    },
}

/// A gather this shard started and not all shards answered yet.
pub(crate) struct Gathering {
    awaiting: usize,
    /// The answers merged so far (`None` before the first).
    merged: Option<Partial>,
    then: Then,
}

impl Router {
    /// Asks every shard `query` (this one at once) and runs `then` with the merged answer.
    /// This shard's answer is merged like any other's, so with one shard the gather completes
    /// right here.
    pub(super) fn gather(&mut self, query: Query, then: Then, out: &mut Vec<Action>) {
        let ticket = self.cluster.new_ticket();
        self.cluster.gathers.insert(
            ticket,
            Gathering {
                awaiting: self.cluster.shards,
                merged: None,
                then,
            },
        );
        let query = Arc::new(query);
        self.broadcast(
            ShardMsgKind::Gather(Gather {
                ticket,
                query: query.clone(),
            }),
            out,
        );
        let partial = self.answer(&query);
        let me = self.cluster.shard;
        self.handle_gathered(me, Gathered { ticket, partial }, out);
    }

    /// Asks `query` of shard `shard` alone (this one at once), and runs `then` with its
    /// answer: the gather of one.
    pub(super) fn ask(&mut self, shard: ShardId, query: Query, then: Then, out: &mut Vec<Action>) {
        let ticket = self.cluster.new_ticket();
        let gathering = Gathering {
            awaiting: 1,
            merged: None,
            then,
        };
        self.cluster.gathers.insert(ticket, gathering);
        if shard == self.cluster.shard {
            let partial = self.answer(&query);
            self.handle_gathered(shard, Gathered { ticket, partial }, out);
        } else {
            let query = Arc::new(query);
            self.send_to_shard(shard, ShardMsgKind::Gather(Gather { ticket, query }), out);
        }
    }

    /// This shard's part of the answer.
    pub(super) fn answer(&self, query: &Query) -> Partial {
        match query {
            Query::SessionCount { realm, authroles } => {
                let Some(realm) = self.realms.find(realm) else {
                    return Partial::Count(0);
                };
                let count = self
                    .sessions
                    .iter()
                    .filter_map(|(_, session)| session.identity())
                    .filter(|identity| identity.realm == realm)
                    .filter(|identity| {
                        authroles.as_ref().map_or(true, |roles| {
                            roles.iter().any(|role| **role == *identity.authrole)
                        })
                    })
                    .count();
                Partial::Count(count as u64)
            }
            Query::History {
                realm,
                subscription,
                query,
                authid,
                authrole,
            } => Partial::History(self.select_history(
                realm,
                *subscription,
                query,
                (authid, authrole),
            )),
        }
    }

    /// `Gather` from another shard: answer it.
    pub(super) fn handle_gather(&mut self, from: ShardId, gather: Gather, out: &mut Vec<Action>) {
        let partial = self.answer(&gather.query);
        let answer = ShardMsgKind::Gathered(Gathered {
            ticket: gather.ticket,
            partial,
        });
        self.send_to_shard(from, answer, out);
    }

    /// One shard's answer (this shard's own too): merge it; the last one completes the gather.
    pub(super) fn handle_gathered(
        &mut self,
        from: ShardId,
        gathered: Gathered,
        out: &mut Vec<Action>,
    ) {
        let Some(gathering) = self.cluster.gathers.get_mut(&gathered.ticket) else {
            self.stats.shard_messages_ignored += 1;
            tracing::warn!(
                from,
                ticket = gathered.ticket,
                "Gathered for an unknown gather"
            );
            return;
        };
        let fits = match &mut gathering.merged {
            None => {
                gathering.merged = Some(gathered.partial);
                true
            }
            Some(merged) => merged.merge(gathered.partial),
        };
        if !fits {
            self.stats.shard_messages_ignored += 1;
            tracing::error!(
                from,
                ticket = gathered.ticket,
                "Gathered answer of another kind"
            );
        }
        gathering.awaiting -= 1;
        if gathering.awaiting > 0 {
            return;
        }
        let gathering = self
            .cluster
            .gathers
            .remove(&gathered.ticket)
            .expect("found just above");
        let merged = gathering
            .merged
            .expect("every shard answered, this one included");
        self.complete_gather(gathering.then, merged, out);
    }

    fn complete_gather(&mut self, then: Then, answer: Partial, out: &mut Vec<Action>) {
        match then {
            Then::CallResult {
                caller,
                session_id,
                request,
            } => {
                if !self.sessions.alive(caller, session_id) {
                    return;
                }
                let value = match answer {
                    Partial::Count(count) => Value::UInt(count),
                    Partial::History(_) => {
                        tracing::error!("a count gather completed with events");
                        return;
                    }
                };
                let serializer = self.sessions[caller].serializer;
                let Ok(payload) = crate::wire::payload_from_args(serializer, &[value], None) else {
                    return;
                };
                let result = Message::Result {
                    request,
                    details: crate::wire::Dict::new(),
                    payload: payload.as_payload(),
                };
                self.send(out, caller, serializer, &result);
            }
            Then::HistoryResult {
                caller,
                session_id,
                request,
                subscription,
                pattern,
            } => {
                let Partial::History(selected) = answer else {
                    tracing::error!("a history query completed with a count");
                    return;
                };
                let call = (caller, session_id, request);
                self.answer_history(call, (subscription, pattern), selected, out);
            }
        }
    }

    /// Gathers this shard started and not complete.
    pub(super) fn gathers_in_flight(&self) -> usize {
        self.cluster.gathers.len()
    }
}
