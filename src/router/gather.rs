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

use std::borrow::Cow;

use super::history::{HistoryQuery, HistoryRecord};
use super::internal::Revoked;
use super::shard_msg::{AckTo, Gather, Gathered, ShardMsgKind};
use super::{uri, Action, Router, SessionKey, ShardId, TransportInfo};
use crate::wire::{code, Dict, Value};

/// A question every shard answers from its own tables (a kill or removal is carried out by
/// the shard that holds the session, and answered with what it did).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Query {
    /// Established sessions of `realm`, only those whose authrole is listed when `authroles`
    /// is present: their ids when `list` (`wamp.session.list`), else their count
    /// (`wamp.session.count`, digest §10).
    Sessions {
        realm: Arc<str>,
        authroles: Option<Vec<Box<str>>>,
        list: bool,
    },
    /// The details of session `session` of `realm` (`wamp.session.get`).
    Session { realm: Arc<str>, session: u64 },
    /// Close the established sessions of `realm` that `target` names, except `except` (the
    /// caller), with GOODBYE `reason` and `message`; answers their ids (`wamp.session.kill*`).
    Kill {
        realm: Arc<str>,
        target: KillTarget,
        except: u64,
        reason: Box<str>,
        message: Option<Box<str>>,
    },
    /// The local subscribers of subscription `subscription` (`list_subscribers`,
    /// `count_subscribers`).
    Subscribers { realm: Arc<str>, subscription: u64 },
    /// Remove callee `session` from `registration`, asked of the callee's shard
    /// (`wamp.registration.remove_callee`); the owner's update is acked to `ack`.
    RemoveCallee {
        realm: Arc<str>,
        registration: u64,
        session: u64,
        reason: Option<Box<str>>,
        ack: AckTo,
    },
    /// Remove subscriber `session` from `subscription`, on whichever shard holds it
    /// (`wamp.subscription.remove_subscriber`); an owner's update is acked to `ack`.
    RemoveSubscriber {
        realm: Arc<str>,
        subscription: u64,
        session: u64,
        reason: Option<Box<str>>,
        ack: AckTo,
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
    /// Every shard's metrics snapshot (the admin listener's `/metrics`).
    Metrics,
}

/// Which sessions a kill names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KillTarget {
    Session(u64),
    Authid(Box<str>),
    Authrole(Box<str>),
    All,
}

/// What `wamp.session.get` answers about one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionDetails {
    pub(crate) session: u64,
    pub(crate) authid: Box<str>,
    pub(crate) authrole: Box<str>,
    pub(crate) authmethod: &'static str,
    pub(crate) authprovider: &'static str,
    pub(crate) transport: TransportInfo,
}

/// One shard's answer, and the merged answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Partial {
    Count(u64),
    /// Session ids, ascending: each shard sorts its own (on its own core), the reduce merges.
    Ids(Vec<u64>),
    /// The session, if this shard has it.
    Session(Option<Box<SessionDetails>>),
    /// Sessions removed by a revocation, and the `Applied` reports its owner's update brings.
    Revoked {
        removed: u64,
        acks: u64,
    },
    /// The owner's selection, or why the query cannot be answered.
    History(Result<Vec<Arc<HistoryRecord>>, String>),
    /// Shards' metrics snapshots, in shard order.
    Metrics(Vec<crate::metrics::ShardSnapshot>),
}

impl Partial {
    /// A shard's ids, sorted.
    fn ids(mut ids: Vec<u64>) -> Partial {
        ids.sort_unstable();
        Partial::Ids(ids)
    }

    /// Folds another shard's answer into this one; false when the two do not fit (a broken
    /// shard), which leaves `self` unchanged.
    fn merge(&mut self, other: Partial) -> bool {
        match (self, other) {
            (Partial::Count(total), Partial::Count(count)) => {
                *total += count;
                true
            }
            (Partial::Ids(all), Partial::Ids(ids)) => {
                *all = merge_ascending(std::mem::take(all), ids);
                true
            }
            (
                Partial::Revoked { removed, acks },
                Partial::Revoked {
                    removed: more,
                    acks: more_acks,
                },
            ) => {
                *removed += more;
                *acks += more_acks;
                true
            }
            (Partial::Metrics(all), Partial::Metrics(more)) => {
                all.extend(more);
                all.sort_by_key(|snapshot| snapshot.shard);
                true
            }
            (Partial::Session(found), Partial::Session(session)) => {
                if found.is_none() {
                    *found = session;
                }
                true
            }
            // Asked of one shard: a second answer does not fit.
            _ => false,
        }
    }
}

/// How a meta procedure answers with a complete gather.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Render {
    /// The count (of ids, when the answer is ids).
    Count,
    /// The ids, ascending.
    Ids,
    /// The session's details, or `wamp.error.no_such_session`.
    Session,
    /// No result when a session was killed, else `wamp.error.no_such_session`.
    Killed,
}

/// What to do with the complete answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// RESULT (or ERROR) for CALL `request` of the local session `caller` (if it is still
    /// session `session_id`), rendered from the answer.
    CallResult {
        caller: SessionKey,
        session_id: u64,
        request: u64,
        render: Render,
    },
    /// A revocation's answer: op `ticket` (`Cluster`) answers the caller, or ERROR `missing`.
    Revoked { ticket: u64, missing: &'static str },
    /// The RESULT of `get_events` for history subscription `subscription` (`pattern`: its
    /// events' Details name their topic).
    HistoryResult {
        caller: SessionKey,
        session_id: u64,
        request: u64,
        subscription: u64,
        pattern: bool,
    },
    /// [`Action::Metrics`] for the runtime's request `request`.
    Metrics { request: u64 },
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
        let partial = self.answer(&query, out);
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
            let partial = self.answer(&query, out);
            self.handle_gathered(shard, Gathered { ticket, partial }, out);
        } else {
            let query = Arc::new(query);
            self.send_to_shard(shard, ShardMsgKind::Gather(Gather { ticket, query }), out);
        }
    }

    /// This shard's part of the answer (and its part of a kill or removal).
    pub(super) fn answer(&mut self, query: &Query, out: &mut Vec<Action>) -> Partial {
        match query {
            Query::Sessions {
                realm,
                authroles,
                list,
            } => {
                let realm = self.realms.find(realm);
                if let (None, false) = (authroles, *list) {
                    // Every established session: the realm counts them.
                    let count = realm.map_or(0, |realm| self.realms.get(realm).sessions);
                    return Partial::Count(count as u64);
                }
                let internal = &self.internal;
                let selected = self
                    .sessions
                    .iter()
                    .filter(|(key, _)| !internal.is_internal(*key))
                    .filter_map(|(_, session)| session.identity())
                    .filter(|identity| Some(identity.realm) == realm)
                    .filter(|identity| {
                        authroles.as_ref().map_or(true, |roles| {
                            roles.iter().any(|role| **role == *identity.authrole)
                        })
                    });
                if *list {
                    Partial::ids(selected.map(|identity| identity.id).collect())
                } else {
                    Partial::Count(selected.count() as u64)
                }
            }
            Query::Session { realm, session } => {
                Partial::Session(self.session_details(realm, *session).map(Box::new))
            }
            Query::Kill {
                realm,
                target,
                except,
                reason,
                message,
            } => Partial::ids(self.kill_sessions(realm, target, *except, reason, message, out)),
            Query::Subscribers {
                realm,
                subscription,
            } => {
                let ids = self
                    .realms
                    .find(realm)
                    .and_then(|realm| self.realms.get(realm).subscriptions.get(*subscription))
                    .map(|entry| {
                        entry
                            .subscribers()
                            .iter()
                            .map(|subscriber| subscriber.session_id)
                            .collect()
                    })
                    .unwrap_or_default();
                Partial::ids(ids)
            }
            Query::RemoveCallee {
                realm,
                registration,
                session,
                reason,
                ack,
            } => {
                let member = (&**realm, *registration, *session);
                self.revoke(Revoked::Callee, member, (reason, *ack), out)
            }
            Query::RemoveSubscriber {
                realm,
                subscription,
                session,
                reason,
                ack,
            } => {
                let member = (&**realm, *subscription, *session);
                self.revoke(Revoked::Subscriber, member, (reason, *ack), out)
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
            Query::Metrics => Partial::Metrics(vec![self.snapshot()]),
        }
    }

    /// `Gather` from another shard: answer it.
    pub(super) fn handle_gather(&mut self, from: ShardId, gather: Gather, out: &mut Vec<Action>) {
        let partial = self.answer(&gather.query, out);
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
                render,
            } => {
                if !self.sessions.alive(caller, session_id) {
                    return;
                }
                match rendered(render, answer) {
                    Ok(value) => self.call_result(out, caller, request, value),
                    Err((error, text)) => {
                        self.send_error(out, caller, code::CALL, request, error, text);
                    }
                }
            }
            Then::Revoked { ticket, missing } => {
                let Partial::Revoked { removed, acks } = answer else {
                    tracing::error!("a revocation completed with another answer");
                    return;
                };
                let acks = usize::try_from(acks).unwrap_or(usize::MAX);
                self.revocation_answered(ticket, (removed > 0, acks), missing, out);
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
            Then::Metrics { request } => {
                let Partial::Metrics(shards) = answer else {
                    tracing::error!("a metrics gather completed with another answer");
                    return;
                };
                out.push(Action::Metrics { request, shards });
            }
        }
    }

    /// `wamp.session.get`'s answer about a local session.
    fn session_details(&self, realm: &str, session: u64) -> Option<SessionDetails> {
        let realm = self.realms.find(realm)?;
        let key = self.sessions.key_of(session)?;
        let state = &self.sessions[key];
        let identity = state
            .identity()
            .filter(|identity| identity.realm == realm)?;
        Some(SessionDetails {
            session,
            authid: identity.authid.clone(),
            authrole: identity.authrole.clone(),
            authmethod: identity.authmethod,
            authprovider: identity.authprovider,
            transport: state.transport.clone(),
        })
    }

    /// Gathers this shard started and not complete.
    pub(super) fn gathers_in_flight(&self) -> usize {
        self.cluster.gathers.len()
    }
}

/// The RESULT's argument (none for a kill), or the ERROR, of a complete answer.
fn rendered(
    render: Render,
    answer: Partial,
) -> Result<Option<Value<'static>>, (&'static str, String)> {
    let ids = |ids: Vec<u64>| Value::List(ids.into_iter().map(Value::UInt).collect());
    match (render, answer) {
        (Render::Count, Partial::Count(count)) => Ok(Some(Value::UInt(count))),
        (Render::Count, Partial::Ids(found)) => Ok(Some(Value::UInt(found.len() as u64))),
        (Render::Ids, Partial::Ids(found)) => Ok(Some(ids(found))),
        (Render::Session, Partial::Session(Some(details))) => {
            let mut transport = Dict::with_capacity(3);
            transport.insert("type", details.transport.kind);
            transport.insert("serializer", details.transport.serializer.name());
            transport.insert("peer", Value::Str(Cow::Owned(details.transport.peer)));
            let mut dict = Dict::with_capacity(6);
            dict.insert("session", details.session);
            dict.insert("authid", Value::Str(Cow::Owned(details.authid.into())));
            dict.insert("authrole", Value::Str(Cow::Owned(details.authrole.into())));
            dict.insert("authmethod", details.authmethod);
            dict.insert("authprovider", details.authprovider);
            dict.insert("transport", Value::Dict(transport));
            Ok(Some(Value::Dict(dict)))
        }
        (Render::Session, Partial::Session(None)) => {
            Err((uri::NO_SUCH_SESSION, "no such session in this realm".into()))
        }
        (Render::Killed, Partial::Ids(killed)) if killed.is_empty() => {
            Err((uri::NO_SUCH_SESSION, "no such session in this realm".into()))
        }
        (Render::Killed, Partial::Ids(_)) => Ok(None),
        (render, answer) => {
            tracing::error!(
                ?render,
                ?answer,
                "a gather completed with an answer of another kind"
            );
            Err((uri::INVALID_ARGUMENT, "the router could not answer".into()))
        }
    }
}

/// Two ascending lists as one.
fn merge_ascending(left: Vec<u64>, right: Vec<u64>) -> Vec<u64> {
    if left.is_empty() {
        return right;
    }
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let (mut left, mut right) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(&l), Some(&r)) = (left.peek(), right.peek()) {
        if l <= r {
            merged.push(l);
            left.next();
        } else {
            merged.push(r);
            right.next();
        }
    }
    merged.extend(left);
    merged.extend(right);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_shards_merge_ascending() {
        let mut merged = Partial::ids(vec![9, 1, 5]);
        assert!(merged.merge(Partial::ids(vec![4, 10, 2])));
        assert!(merged.merge(Partial::ids(Vec::new())));
        assert_eq!(merged, Partial::Ids(vec![1, 2, 4, 5, 9, 10]));
        let mut empty = Partial::ids(Vec::new());
        assert!(empty.merge(Partial::ids(vec![3, 1])));
        assert_eq!(empty, Partial::Ids(vec![1, 3]));
    }
}
