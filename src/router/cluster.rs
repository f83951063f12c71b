//! This shard among the others (DESIGN.md "Ownership and routing across shards"): the one write
//! path for REGISTER, UNREGISTER, SUBSCRIBE, UNSUBSCRIBE and leave, whatever the number of
//! shards, and the [`Cluster`] sub-state it keeps (ops in flight, gathers in flight).
//!
//! Three roles, often played by the same shard (with one shard, always):
//! * the *origin* (the session's shard) starts an op with a ticket and answers the client when
//!   the op is complete — i.e. when every shard, itself included, has applied the owner's update
//!   (each shard that applies an update carrying `AckTo` reports `Applied` to the origin);
//! * the *owner* (`owner_shard(realm, uri)`) decides: conflicts, ids, the shard set of a
//!   subscription. It applies its decision to its own replica first, so its replica is the
//!   authority for the uris it owns, then broadcasts the update in decision order;
//! * every *replica* applies the owner's updates in the order they arrive (one FIFO channel per
//!   pair of shards, one owner per uri: per-uri order is the owner's order).
//!
//! A message to this shard itself is handled at once, so with one shard an op starts, is
//! decided, applied and completed within the call that started it.
//!
//! A callee is invoked by its shard only once its REGISTERED went out (the registration is then
//! in the session's `registrations`), so no INVOCATION can precede REGISTERED; a CALL that
//! reaches the callee's shard earlier, or after UNREGISTER/leave started, gets
//! `wamp.error.no_such_procedure`. A shared registration is one entry (one id) whose callees
//! join and leave one by one through the same owner, so every replica lists them in the
//! owner's order. Subscribers of a topic wait in a `PendingJoin` while their shard's
//! first-subscriber `Join` is in flight, and become receivers together with their SUBSCRIBED.
//!
//! Facts (`facts.rs`) are recorded by the shard of the session they are about: callees and
//! subscribers coming and going, and the creations and deletions they cause (on applying the
//! owner's update). So the meta events of one session leave from one shard, in the order its
//! facts happened: on_create before on_register, on_unregister before on_delete.

use std::sync::Arc;

use super::admission::Admitted;
use super::broker::Subscriber;
use super::dealer::{InvokePolicy, MatchPolicy, Registrant};
use super::facts::Fact;
use super::gather::Gathering;
use super::realm::RealmId;
use super::shard_msg::{
    owner_shard, AckTo, Applied, Join, Leave, Register, RegisterRefused, RegistrationAdded,
    RegistrationRemoved, SessionRef, ShardMsgKind, SubscriptionShards, Unregister,
};
use super::{fast_map, uri, Action, FastMap, Router, SessionKey, ShardId};
use crate::wire::{code, Message};

/// This shard's place among the shards and the cross-shard work it has in flight.
pub(crate) struct Cluster {
    pub(crate) shard: ShardId,
    pub(crate) shards: usize,
    /// Table-write ops started by this shard, by ticket.
    inflight: FastMap<u64, InflightOp>,
    /// Gathers started by this shard, by ticket.
    pub(crate) gathers: FastMap<u64, Gathering>,
    last_ticket: u64,
}

impl Cluster {
    pub(crate) fn new(shard: ShardId, shards: usize) -> Cluster {
        Cluster {
            shard,
            shards,
            inflight: fast_map(),
            gathers: fast_map(),
            last_ticket: 0,
        }
    }

    /// A ticket no other op or gather of this shard carries.
    pub(crate) fn new_ticket(&mut self) -> u64 {
        self.last_ticket += 1;
        self.last_ticket
    }

    fn me(&self, key: SessionKey, session_id: u64) -> SessionRef {
        SessionRef {
            shard: self.shard,
            key,
            session_id,
        }
    }
}

/// What an UNSUBSCRIBE-like removal of a local subscriber answers.
#[derive(Copy, Clone, Debug)]
pub(crate) enum LeaveAnswer {
    /// Nobody (the session left).
    Nobody,
    /// UNSUBSCRIBED for this request, when every shard knows.
    Unsubscribed(u64),
    /// A revocation asked elsewhere: the owner's update is acked to it.
    To(AckTo),
}

/// What `remove_local_subscriber` did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Removed {
    /// Other local subscribers remain: nothing went to the owner.
    Kept,
    /// It was this shard's last one: a `Leave` went to the owner.
    Left,
}

/// An op this shard started for one of its sessions and has not answered yet.
struct InflightOp {
    /// Shards that reported having applied the owner's update (this one included).
    applied: usize,
    /// Reports that complete the op: every shard for a table write.
    needed: usize,
    kind: OpKind,
}

enum OpKind {
    Register {
        session: SessionKey,
        session_id: u64,
        request: u64,
        realm: RealmId,
        procedure: Arc<str>,
        /// The id the owner assigned, learnt when this shard applies the owner's update.
        registration: Option<u64>,
    },
    Unregister {
        session: SessionKey,
        session_id: u64,
        request: u64,
    },
    /// UNSUBSCRIBE of this shard's last local subscriber of a topic.
    Unsubscribe {
        session: SessionKey,
        session_id: u64,
        request: u64,
    },
    Join {
        realm: RealmId,
        topic: Arc<str>,
        matching: MatchPolicy,
        subscription: Option<u64>,
    },
    /// `remove_callee`/`remove_subscriber` asked here: RESULT once the session's shard removed
    /// it (`answered`) and every shard applied the owner's update (`needed` is set then).
    Revocation {
        caller: SessionKey,
        session_id: u64,
        request: u64,
        answered: bool,
    },
    /// An acknowledged PUBLISH waits until the other shards that keep its history have it.
    Published {
        session: SessionKey,
        session_id: u64,
        request: u64,
        publication: u64,
    },
}

/// This shard's first subscribers of a topic, waiting for their `Join` to complete.
pub(crate) struct PendingJoin {
    ticket: u64,
    waiters: Vec<Waiter>,
}

/// A realm's pending joins, by (topic, match policy): one map per policy, so that lookups
/// take the topic as it arrived.
#[derive(Default)]
pub(crate) struct PendingJoins {
    by_policy: [FastMap<Box<str>, PendingJoin>; 3],
}

impl PendingJoins {
    fn map(&mut self, matching: MatchPolicy) -> &mut FastMap<Box<str>, PendingJoin> {
        &mut self.by_policy[matching as usize]
    }

    fn get_mut(&mut self, topic: &str, matching: MatchPolicy) -> Option<&mut PendingJoin> {
        self.map(matching).get_mut(topic)
    }

    fn insert(&mut self, topic: &str, matching: MatchPolicy, join: PendingJoin) {
        self.map(matching).insert(topic.into(), join);
    }

    fn remove(&mut self, topic: &str, matching: MatchPolicy) -> Option<PendingJoin> {
        self.map(matching).remove(topic)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_policy.iter().map(|map| map.len()).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Copy, Clone)]
struct Waiter {
    session: SessionKey,
    session_id: u64,
    request: u64,
    /// SUBSCRIBE.Options.get_retained: the retained events follow SUBSCRIBED.
    get_retained: bool,
}

fn bit(shard: ShardId) -> u64 {
    1 << shard
}

impl Router {
    /// Sends `msg` to shard `to`, or handles it at once when `to` is this shard.
    pub(super) fn send_to_shard(&mut self, to: ShardId, msg: ShardMsgKind, out: &mut Vec<Action>) {
        if to == self.cluster.shard {
            self.dispatch_shard_msg(to, msg, out);
        } else {
            out.push(Action::ToShard {
                to,
                msg: msg.into(),
            });
        }
    }

    /// Sends `msg` to every other shard.
    pub(super) fn broadcast(&mut self, msg: ShardMsgKind, out: &mut Vec<Action>) {
        let me = self.cluster.shard;
        for to in (0..self.cluster.shards).filter(|&to| to != me) {
            out.push(Action::ToShard {
                to,
                msg: msg.clone().into(),
            });
        }
    }

    /// Reports to the origin that this shard applied an update.
    fn ack(&mut self, ack: AckTo, out: &mut Vec<Action>) {
        let applied = ShardMsgKind::Applied(Applied { ticket: ack.ticket });
        self.send_to_shard(ack.origin, applied, out);
    }

    fn owner_of(&self, realm: RealmId, uri: &str) -> ShardId {
        owner_shard(&self.realms.get(realm).name, uri, self.cluster.shards)
    }

    fn realm_name(&self, realm: RealmId) -> Arc<str> {
        self.realms.get(realm).name.clone()
    }

    // ---------------------------------------------------------------------------------------
    // Origin side: starting ops for local sessions
    // ---------------------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_register(
        &mut self,
        request: u64,
        realm: RealmId,
        procedure: &str,
        matching: MatchPolicy,
        callee: Registrant,
        invoke: InvokePolicy,
        out: &mut Vec<Action>,
    ) {
        let (session, session_id) = (callee.session.key, callee.session.session_id);
        let procedure: Arc<str> = procedure.into();
        let ticket = self.cluster.new_ticket();
        self.cluster.inflight.insert(
            ticket,
            InflightOp {
                applied: 0,
                needed: self.cluster.shards,
                kind: OpKind::Register {
                    session,
                    session_id,
                    request,
                    realm,
                    procedure: procedure.clone(),
                    registration: None,
                },
            },
        );
        let owner = self.owner_of(realm, &procedure);
        let msg = ShardMsgKind::Register(Register {
            realm: self.realm_name(realm),
            procedure,
            matching,
            callee: callee.session,
            invoke,
            options: callee.options,
            ticket,
        });
        self.send_to_shard(owner, msg, out);
    }

    /// UNREGISTER of an announced registration (the caller checked it is the session's and
    /// already took it out of the session's set, so the callee's shard stops routing to it).
    pub(super) fn start_unregister(
        &mut self,
        session: SessionKey,
        session_id: u64,
        request: u64,
        realm: RealmId,
        registration: u64,
        out: &mut Vec<Action>,
    ) {
        self.callee_removed(realm, registration, session, session_id);
        let ticket = self.cluster.new_ticket();
        self.cluster.inflight.insert(
            ticket,
            InflightOp {
                applied: 0,
                needed: self.cluster.shards,
                kind: OpKind::Unregister {
                    session,
                    session_id,
                    request,
                },
            },
        );
        let ack = AckTo {
            origin: self.cluster.shard,
            ticket,
        };
        self.send_unregister(session, session_id, realm, registration, Some(ack), out);
    }

    /// A local callee stops being invocable for `registration` (UNREGISTER or leave started):
    /// this shard stops routing to it at once, and the fact is recorded.
    pub(super) fn callee_removed(
        &mut self,
        realm: RealmId,
        registration: u64,
        session: SessionKey,
        session_id: u64,
    ) {
        let me = self.cluster.me(session, session_id);
        let found = self
            .realms
            .get_mut(realm)
            .registry
            .set_ready(registration, me, false);
        debug_assert!(found, "the callee's own replica lists it");
        self.facts.push(Fact::CalleeRemoved {
            realm: self.realm_name(realm),
            registration,
            session: session_id,
        });
    }

    /// Asks the owner to remove `registration` of the local session (with an ack for UNREGISTER,
    /// without when the session left).
    pub(super) fn send_unregister(
        &mut self,
        session: SessionKey,
        session_id: u64,
        realm: RealmId,
        registration: u64,
        ack: Option<AckTo>,
        out: &mut Vec<Action>,
    ) {
        let Some(procedure) = self
            .realms
            .get(realm)
            .registry
            .get(registration)
            .map(|entry| Arc::<str>::from(&*entry.procedure))
        else {
            // Only the callee's shard asks for removal, and only once; the owner cannot have
            // removed it meanwhile.
            tracing::error!(
                registration,
                "unregister of a registration missing from the replica"
            );
            if let Some(ack) = ack.filter(|ack| ack.origin == self.cluster.shard) {
                self.cluster.inflight.remove(&ack.ticket);
            }
            return;
        };
        let owner = self.owner_of(realm, &procedure);
        let msg = ShardMsgKind::Unregister(Unregister {
            realm: self.realm_name(realm),
            registration,
            callee: self.cluster.me(session, session_id),
            ack,
        });
        self.send_to_shard(owner, msg, out);
    }

    /// SUBSCRIBE: answered at once when this shard already receives the topic; otherwise the
    /// session waits for this shard's `Join`.
    pub(super) fn start_subscribe(
        &mut self,
        me: Admitted,
        (request, get_retained): (u64, bool),
        (topic, matching): (&str, MatchPolicy),
        out: &mut Vec<Action>,
    ) {
        let (session, session_id, realm, serializer) = (me.key, me.id, me.realm, me.serializer);
        let waiter = Waiter {
            session,
            session_id,
            request,
            get_retained,
        };
        let realm_state = self.realms.get_mut(realm);
        if let Some(join) = realm_state.joins.get_mut(topic, matching) {
            join.waiters.push(waiter);
            return;
        }
        // Local subscribers exist only between a completed Join and the Leave sent when the
        // last of them goes, so every shard knows this one receives the topic.
        let receiving = realm_state
            .subscriptions
            .lookup(topic, matching)
            .is_some_and(|subscription| !subscription.subscribers().is_empty());
        if receiving {
            let subscriber = Subscriber {
                session,
                serializer,
                session_id,
            };
            let subscription = realm_state
                .subscriptions
                .add_subscriber(topic, matching, subscriber)
                .expect("looked up just above");
            self.subscriber_added(realm, &waiter, subscription, (topic, matching), out);
            return;
        }
        let ticket = self.cluster.new_ticket();
        let topic: Arc<str> = topic.into();
        self.realms.get_mut(realm).joins.insert(
            &topic,
            matching,
            PendingJoin {
                ticket,
                waiters: vec![waiter],
            },
        );
        self.cluster.inflight.insert(
            ticket,
            InflightOp {
                applied: 0,
                needed: self.cluster.shards,
                kind: OpKind::Join {
                    realm,
                    topic: topic.clone(),
                    matching,
                    subscription: None,
                },
            },
        );
        let owner = self.owner_of(realm, &topic);
        let msg = ShardMsgKind::Join(Join {
            realm: self.realm_name(realm),
            topic,
            matching,
            session: session_id,
            ticket,
        });
        self.send_to_shard(owner, msg, out);
    }

    /// The local session of `waiter` is now a receiver of `subscription` (of `topic` and
    /// `matching`): record it and say SUBSCRIBED, then fetch the retained events if it asked.
    fn subscriber_added(
        &mut self,
        realm: RealmId,
        waiter: &Waiter,
        subscription: u64,
        (topic, matching): (&str, MatchPolicy),
        out: &mut Vec<Action>,
    ) {
        let Waiter {
            session,
            session_id,
            request,
            get_retained,
        } = *waiter;
        let state = &mut self.sessions[session];
        // A session subscribing again gets the same id, and is no new subscriber.
        let added = state.subscriptions.insert(subscription);
        state.subscribes_pending = state.subscribes_pending.saturating_sub(1);
        let serializer = state.serializer;
        if added {
            self.facts.push(Fact::SubscriberAdded {
                realm: self.realm_name(realm),
                subscription,
                session: session_id,
            });
        }
        let subscribed = Message::Subscribed {
            request,
            subscription,
        };
        self.send(out, session, serializer, &subscribed);
        if get_retained {
            let to = (session, session_id);
            self.deliver_retained(realm, to, subscription, (topic, matching), out);
        }
    }

    /// Removes a local subscriber (UNSUBSCRIBE, revocation or leave); when it was this shard's
    /// last one of the topic, tells the owner, whose update is acked as `answer` says (an
    /// UNSUBSCRIBE is answered at once when other local subscribers remain). `None` when
    /// `session` was not subscribed.
    pub(super) fn remove_local_subscriber(
        &mut self,
        session: SessionKey,
        session_id: u64,
        realm: RealmId,
        subscription: u64,
        answer: LeaveAnswer,
        out: &mut Vec<Action>,
    ) -> Option<Removed> {
        let realm_state = self.realms.get_mut(realm);
        let last = realm_state
            .subscriptions
            .remove_subscriber(subscription, session)?;
        self.facts.push(Fact::SubscriberRemoved {
            realm: self.realm_name(realm),
            subscription,
            session: session_id,
        });
        let Some((topic, matching)) = last else {
            if let LeaveAnswer::Unsubscribed(request) = answer {
                self.send_unsubscribed(session, request, out);
            }
            return Some(Removed::Kept);
        };
        let ack = match answer {
            LeaveAnswer::Nobody => None,
            LeaveAnswer::To(ack) => Some(ack),
            LeaveAnswer::Unsubscribed(request) => {
                let ticket = self.cluster.new_ticket();
                let kind = OpKind::Unsubscribe {
                    session,
                    session_id,
                    request,
                };
                let op = InflightOp {
                    applied: 0,
                    needed: self.cluster.shards,
                    kind,
                };
                self.cluster.inflight.insert(ticket, op);
                Some(AckTo {
                    origin: self.cluster.shard,
                    ticket,
                })
            }
        };
        self.send_leave(realm, (&topic, matching), session_id, ack, out);
        Some(Removed::Left)
    }

    fn send_unsubscribed(&mut self, session: SessionKey, request: u64, out: &mut Vec<Action>) {
        let serializer = self.sessions[session].serializer;
        let unsubscribed = Message::Unsubscribed {
            request,
            details: None,
        };
        self.send(out, session, serializer, &unsubscribed);
    }

    fn send_leave(
        &mut self,
        realm: RealmId,
        (topic, matching): (&str, MatchPolicy),
        session_id: u64,
        ack: Option<AckTo>,
        out: &mut Vec<Action>,
    ) {
        let owner = self.owner_of(realm, topic);
        let msg = ShardMsgKind::Leave(Leave {
            realm: self.realm_name(realm),
            topic: topic.into(),
            matching,
            session: session_id,
            ack,
        });
        self.send_to_shard(owner, msg, out);
    }

    // ---------------------------------------------------------------------------------------
    // Owner side: deciding
    // ---------------------------------------------------------------------------------------

    /// Decides a REGISTER: a new registration, one more callee of a shared one (same id, so
    /// `RegistrationAdded` then extends the replicas' entry), or a refusal.
    pub(super) fn owner_register(&mut self, from: ShardId, msg: Register, out: &mut Vec<Action>) {
        let Register {
            realm: realm_name,
            procedure,
            matching,
            callee,
            invoke,
            options,
            ticket,
        } = msg;
        let realm = self.realms.get_or_create(&realm_name);
        let now = self.wall_clock_ms();
        let registry = &mut self.realms.get_mut(realm).registry;
        let registrant = Registrant {
            session: callee,
            options,
            ready: false,
        };
        let existed = registry.lookup(&procedure, matching).is_some();
        let registration = match registry.register(
            &mut self.scoped_ids,
            &procedure,
            matching,
            invoke,
            registrant,
        ) {
            Ok(registration) => registration,
            Err(refusal) => {
                let refused = ShardMsgKind::RegisterRefused(RegisterRefused {
                    ticket,
                    procedure,
                    refusal,
                    invoke,
                });
                return self.send_to_shard(from, refused, out);
            }
        };
        let entry = registry
            .get_mut(registration)
            .expect("registered just above");
        if !existed {
            entry.created = now;
        }
        let created = entry.created;
        // The callee's shard records the creation (on applying the update, when it is another
        // shard), so the meta events of one session leave from one shard, in order.
        if !existed && from == self.cluster.shard {
            self.facts.push(Fact::RegistrationCreated {
                realm: realm_name.clone(),
                registration,
                procedure: procedure.clone(),
                matching: matching.name(),
                invoke: invoke.name(),
                created,
                session: callee.session_id,
            });
        }
        let ack = AckTo {
            origin: from,
            ticket,
        };
        if from == self.cluster.shard {
            self.set_op_result(ticket, registration);
        }
        self.ack(ack, out);
        self.broadcast(
            ShardMsgKind::RegistrationAdded(RegistrationAdded {
                realm: realm_name,
                procedure,
                matching,
                registration,
                callee,
                invoke,
                options,
                created,
                ack: Some(ack),
            }),
            out,
        );
    }

    pub(super) fn owner_unregister(&mut self, msg: Unregister, out: &mut Vec<Action>) {
        let removed = RegistrationRemoved {
            realm: msg.realm,
            registration: msg.registration,
            callee: msg.callee,
            ack: msg.ack,
        };
        // Broadcast even when the owner had nothing to remove, so an acked op still completes.
        self.apply_registration_removed(removed.clone(), out);
        self.broadcast(ShardMsgKind::RegistrationRemoved(removed), out);
    }

    pub(super) fn owner_join(&mut self, from: ShardId, msg: Join, out: &mut Vec<Action>) {
        let realm = self.realms.get_or_create(&msg.realm);
        let now = self.wall_clock_ms();
        let realm_state = self.realms.get(realm);
        let (subscription, shards, created) =
            match realm_state.subscriptions.lookup(&msg.topic, msg.matching) {
                Some(entry) => (entry.id, entry.shards | bit(from), entry.created),
                None => {
                    let in_use = |id| {
                        realm_state.subscriptions.get(id).is_some()
                            || realm_state.registry.get(id).is_some()
                            || realm_state.history.is_reserved(id)
                    };
                    // A topic that keeps history has had its id since the start.
                    let id = realm_state
                        .history
                        .reserved_id(&msg.topic, msg.matching)
                        .unwrap_or_else(|| self.scoped_ids.next_id(in_use));
                    (id, bit(from), now)
                }
            };
        let update = SubscriptionShards {
            realm: msg.realm,
            topic: msg.topic,
            matching: msg.matching,
            subscription,
            shards,
            created,
            cause: (from, msg.session),
            ack: Some(AckTo {
                origin: from,
                ticket: msg.ticket,
            }),
        };
        self.apply_subscription_shards(update.clone(), out);
        self.broadcast(ShardMsgKind::SubscriptionShards(update), out);
    }

    pub(super) fn owner_leave(&mut self, from: ShardId, msg: Leave, out: &mut Vec<Action>) {
        let realm = self.realms.get_or_create(&msg.realm);
        let Some(entry) = self
            .realms
            .get(realm)
            .subscriptions
            .lookup(&msg.topic, msg.matching)
        else {
            self.stats.shard_messages_ignored += 1;
            tracing::warn!(from, topic = %msg.topic, "Leave for a topic without subscription");
            return;
        };
        let (subscription, shards) = (entry.id, entry.shards & !bit(from));
        let update = SubscriptionShards {
            realm: msg.realm,
            topic: msg.topic,
            matching: msg.matching,
            subscription,
            shards,
            created: entry.created,
            cause: (from, msg.session),
            ack: msg.ack,
        };
        self.apply_subscription_shards(update.clone(), out);
        self.broadcast(ShardMsgKind::SubscriptionShards(update), out);
    }

    // ---------------------------------------------------------------------------------------
    // Replica side: applying the owner's updates
    // ---------------------------------------------------------------------------------------

    pub(super) fn apply_registration_added(
        &mut self,
        msg: RegistrationAdded,
        out: &mut Vec<Action>,
    ) {
        let realm = self.realms.get_or_create(&msg.realm);
        let registry = &mut self.realms.get_mut(realm).registry;
        let callee = Registrant {
            session: msg.callee,
            options: msg.options,
            ready: false,
        };
        let created = registry.get(msg.registration).is_none();
        if !registry.insert(
            msg.registration,
            &msg.procedure,
            msg.matching,
            msg.invoke,
            callee,
        ) {
            // Logged by the registry; applied anyway so the replica converges on the owner.
            self.stats.shard_messages_ignored += 1;
        }
        if let Some(entry) = registry.get_mut(msg.registration) {
            entry.created = msg.created;
        }
        if created && msg.callee.shard == self.cluster.shard {
            self.facts.push(Fact::RegistrationCreated {
                realm: msg.realm.clone(),
                registration: msg.registration,
                procedure: msg.procedure.clone(),
                matching: msg.matching.name(),
                invoke: msg.invoke.name(),
                created: msg.created,
                session: msg.callee.session_id,
            });
        }
        if let Some(ack) = msg.ack {
            if ack.origin == self.cluster.shard {
                self.set_op_result(ack.ticket, msg.registration);
            }
            self.ack(ack, out);
        }
    }

    /// Removes a callee from this replica. The callee's own shard records a deletion, after
    /// the `CalleeRemoved` it recorded when the removal started.
    pub(super) fn apply_registration_removed(
        &mut self,
        msg: RegistrationRemoved,
        out: &mut Vec<Action>,
    ) {
        let realm = self.realms.get_or_create(&msg.realm);
        let removed = self
            .realms
            .get_mut(realm)
            .registry
            .unregister(msg.registration, msg.callee);
        match removed {
            Some(removed) if removed.deleted && msg.callee.shard == self.cluster.shard => {
                self.facts.push(Fact::RegistrationDeleted {
                    realm: msg.realm.clone(),
                    registration: msg.registration,
                    session: msg.callee.session_id,
                });
            }
            Some(_) => {}
            None => {
                // Each callee is removed once, by its own shard's request, after the owner
                // added it: a miss means a broken shard (or a bug), not a race.
                self.stats.shard_messages_ignored += 1;
                tracing::warn!(
                    registration = msg.registration,
                    callee = msg.callee.session_id,
                    "RegistrationRemoved for a callee the replica does not have"
                );
            }
        }
        if let Some(ack) = msg.ack {
            self.ack(ack, out);
        }
    }

    pub(super) fn apply_subscription_shards(
        &mut self,
        msg: SubscriptionShards,
        out: &mut Vec<Action>,
    ) {
        let realm = self.realms.get_or_create(&msg.realm);
        let subscriptions = &mut self.realms.get_mut(realm).subscriptions;
        let created = subscriptions
            .lookup(&msg.topic, msg.matching)
            .map_or(true, |entry| entry.id != msg.subscription);
        let dropped =
            subscriptions.set_shards(msg.subscription, &msg.topic, msg.matching, msg.shards);
        subscriptions.set_created(msg.subscription, msg.created);
        let (cause_shard, session) = msg.cause;
        if cause_shard == self.cluster.shard {
            if msg.shards == 0 {
                self.facts.push(Fact::SubscriptionDeleted {
                    realm: msg.realm.clone(),
                    subscription: msg.subscription,
                    session,
                });
            } else if created {
                self.facts.push(Fact::SubscriptionCreated {
                    realm: msg.realm.clone(),
                    subscription: msg.subscription,
                    topic: msg.topic.clone(),
                    matching: msg.matching.name(),
                    created: msg.created,
                    session,
                });
            }
        }
        if dropped > 0 {
            // The owner only clears this shard's bit after this shard's own Leave, sent when it
            // had no subscribers left; reaching here means a broken shard.
            tracing::error!(
                topic = %msg.topic,
                subscription = msg.subscription,
                dropped,
                "owner update dropped local subscribers"
            );
        }
        if let Some(ack) = msg.ack {
            if ack.origin == self.cluster.shard {
                self.set_op_result(ack.ticket, msg.subscription);
            }
            self.ack(ack, out);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Origin side: completing ops
    // ---------------------------------------------------------------------------------------

    fn set_op_result(&mut self, ticket: u64, id: u64) {
        match self
            .cluster
            .inflight
            .get_mut(&ticket)
            .map(|op| &mut op.kind)
        {
            Some(OpKind::Register { registration, .. }) => *registration = Some(id),
            Some(OpKind::Join { subscription, .. }) => *subscription = Some(id),
            // A Leave's update (an UNSUBSCRIBE's, a revocation's) names what the op knows.
            Some(OpKind::Unsubscribe { .. } | OpKind::Revocation { .. }) => {}
            Some(OpKind::Unregister { .. } | OpKind::Published { .. }) | None => {
                self.stats.shard_messages_ignored += 1;
                tracing::warn!(ticket, "owner result for an unknown op");
            }
        }
    }

    pub(super) fn count_applied(&mut self, ticket: u64, out: &mut Vec<Action>) {
        let Some(op) = self.cluster.inflight.get_mut(&ticket) else {
            self.stats.shard_messages_ignored += 1;
            tracing::warn!(ticket, "Applied for an unknown op");
            return;
        };
        op.applied += 1;
        if op.applied < op.needed {
            return;
        }
        self.complete_op(ticket, out);
    }

    /// Every report op `ticket` waited for is in: answer its client.
    fn complete_op(&mut self, ticket: u64, out: &mut Vec<Action>) {
        let op = self
            .cluster
            .inflight
            .remove(&ticket)
            .expect("the callers found it");
        match op.kind {
            OpKind::Register {
                session,
                session_id,
                request,
                realm,
                procedure,
                registration,
            } => {
                let Some(registration) = registration else {
                    tracing::error!(ticket, %procedure, "register op complete without an id");
                    return;
                };
                if self.sessions.alive(session, session_id) {
                    let state = &mut self.sessions[session];
                    state.registrations.insert(registration);
                    state.registers_pending = state.registers_pending.saturating_sub(1);
                    let me = self.cluster.me(session, session_id);
                    let found =
                        self.realms
                            .get_mut(realm)
                            .registry
                            .set_ready(registration, me, true);
                    debug_assert!(found, "every shard applied the registration, this one too");
                    self.facts.push(Fact::CalleeAdded {
                        realm: self.realm_name(realm),
                        registration,
                        session: session_id,
                    });
                    let serializer = self.sessions[session].serializer;
                    let registered = Message::Registered {
                        request,
                        registration,
                    };
                    self.send(out, session, serializer, &registered);
                } else {
                    // The callee left while its REGISTER was in flight: undo it everywhere.
                    self.send_unregister(session, session_id, realm, registration, None, out);
                }
            }
            OpKind::Unregister {
                session,
                session_id,
                request,
            } => {
                if self.sessions.alive(session, session_id) {
                    let serializer = self.sessions[session].serializer;
                    let unregistered = Message::Unregistered {
                        request,
                        details: None,
                    };
                    self.send(out, session, serializer, &unregistered);
                }
            }
            OpKind::Join {
                realm,
                topic,
                matching,
                subscription,
            } => self.complete_join(ticket, realm, (&topic, matching), subscription, out),
            OpKind::Unsubscribe {
                session,
                session_id,
                request,
            } => {
                if self.sessions.alive(session, session_id) {
                    self.send_unsubscribed(session, request, out);
                }
            }
            OpKind::Revocation {
                caller,
                session_id,
                request,
                answered,
            } => {
                debug_assert!(answered, "needed is set when the answer comes");
                if self.sessions.alive(caller, session_id) {
                    self.call_result(out, caller, request, None);
                }
            }
            OpKind::Published {
                session,
                session_id,
                request,
                publication,
            } => {
                if self.sessions.alive(session, session_id) {
                    let serializer = self.sessions[session].serializer;
                    let published = Message::Published {
                        request,
                        publication,
                    };
                    self.send(out, session, serializer, &published);
                }
            }
        }
    }

    /// A revocation asked by local session `caller` (CALL `request`): its op's ticket, for the
    /// session's shard to name in the removal it sends to the owner.
    pub(super) fn start_revocation(
        &mut self,
        caller: SessionKey,
        session_id: u64,
        request: u64,
    ) -> AckTo {
        let ticket = self.cluster.new_ticket();
        let kind = OpKind::Revocation {
            caller,
            session_id,
            request,
            answered: false,
        };
        // Complete only once the answer says how many shards apply an update.
        let op = InflightOp {
            applied: 0,
            needed: usize::MAX,
            kind,
        };
        self.cluster.inflight.insert(ticket, op);
        AckTo {
            origin: self.cluster.shard,
            ticket,
        }
    }

    /// The session's shard answered revocation `ticket`: `removed` or not, and how many shards
    /// will report applying the owner's update. ERROR `missing` when nothing was removed, else
    /// RESULT once every report is in.
    pub(super) fn revocation_answered(
        &mut self,
        ticket: u64,
        (removed, acks): (bool, usize),
        missing: &'static str,
        out: &mut Vec<Action>,
    ) {
        let Some(op) = self.cluster.inflight.get_mut(&ticket) else {
            tracing::error!(ticket, "revocation answered without its op");
            return;
        };
        let OpKind::Revocation {
            caller,
            session_id,
            request,
            answered,
        } = &mut op.kind
        else {
            tracing::error!(ticket, "revocation answer for another op");
            return;
        };
        let (caller, session_id, request) = (*caller, *session_id, *request);
        if !removed {
            self.cluster.inflight.remove(&ticket);
            if self.sessions.alive(caller, session_id) {
                let text = "nothing to remove: no such callee or subscriber";
                self.send_error(out, caller, code::CALL, request, missing, text);
            }
            return;
        }
        *answered = true;
        op.needed = acks;
        if op.applied >= op.needed {
            // Every report came before the answer (or none was due).
            self.complete_op(ticket, out);
        }
    }

    /// PUBLISHED for `me`'s PUBLISH `request` goes out once `acks` other shards reported that
    /// they keep its event in their history (op `ticket`).
    pub(super) fn publish_after_history(
        &mut self,
        me: Admitted,
        ticket: u64,
        acks: usize,
        (request, publication): (u64, u64),
    ) {
        let kind = OpKind::Published {
            session: me.key,
            session_id: me.id,
            request,
            publication,
        };
        let op = InflightOp {
            applied: 0,
            needed: acks,
            kind,
        };
        self.cluster.inflight.insert(ticket, op);
    }

    /// Every shard now knows this one receives `topic`: the waiting subscribers become
    /// receivers and get SUBSCRIBED. If they all left meanwhile, this shard leaves again.
    fn complete_join(
        &mut self,
        ticket: u64,
        realm: RealmId,
        (topic, matching): (&str, MatchPolicy),
        subscription: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        let realm_state = self.realms.get_mut(realm);
        let Some(join) = realm_state.joins.remove(topic, matching) else {
            tracing::error!(topic, "join op complete without its waiters");
            return;
        };
        debug_assert_eq!(join.ticket, ticket);
        let Some(subscription) = subscription else {
            tracing::error!(topic, "join op complete without a subscription id");
            return;
        };
        let mut last_waiter = 0;
        for waiter in join.waiters {
            last_waiter = waiter.session_id;
            if !self.sessions.alive(waiter.session, waiter.session_id) {
                continue;
            }
            let serializer = self.sessions[waiter.session].serializer;
            let subscriber = Subscriber {
                session: waiter.session,
                serializer,
                session_id: waiter.session_id,
            };
            let added = self
                .realms
                .get_mut(realm)
                .subscriptions
                .add_subscriber(topic, matching, subscriber);
            debug_assert_eq!(added, Some(subscription));
            let Some(subscription) = added else { continue };
            self.subscriber_added(realm, &waiter, subscription, (topic, matching), out);
        }
        let receiving = self
            .realms
            .get(realm)
            .subscriptions
            .get(subscription)
            .is_some_and(|entry| !entry.subscribers().is_empty());
        if !receiving {
            self.send_leave(realm, (topic, matching), last_waiter, None, out);
        }
    }

    pub(super) fn register_refused(&mut self, msg: RegisterRefused, out: &mut Vec<Action>) {
        let Some(InflightOp {
            kind:
                OpKind::Register {
                    session,
                    session_id,
                    request,
                    ..
                },
            ..
        }) = self.cluster.inflight.remove(&msg.ticket)
        else {
            self.stats.shard_messages_ignored += 1;
            tracing::warn!(ticket = msg.ticket, "RegisterRefused for an unknown op");
            return;
        };
        if self.sessions.alive(session, session_id) {
            let state = &mut self.sessions[session];
            state.registers_pending = state.registers_pending.saturating_sub(1);
            let text = msg.refusal.text(&msg.procedure, msg.invoke);
            self.send_error(
                out,
                session,
                code::REGISTER,
                request,
                uri::PROCEDURE_ALREADY_EXISTS,
                text,
            );
        }
    }

    /// True while an op started here names `realm` (its id must stay valid).
    pub(super) fn realm_has_ops_in_flight(&self, realm: RealmId) -> bool {
        self.cluster.inflight.values().any(|op| match &op.kind {
            OpKind::Register { realm: r, .. } | OpKind::Join { realm: r, .. } => *r == realm,
            OpKind::Unregister { .. }
            | OpKind::Unsubscribe { .. }
            | OpKind::Published { .. }
            | OpKind::Revocation { .. } => false,
        })
    }

    /// Ops started here and not complete, plus topics with waiting subscribers.
    pub(super) fn inflight_ops(&self) -> usize {
        self.cluster.inflight.len()
            + self
                .realms
                .iter()
                .map(|realm| realm.joins.len())
                .sum::<usize>()
    }
}
