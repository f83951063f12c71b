//! Table writes across shards (DESIGN.md "Ownership and routing across shards"): REGISTER,
//! UNREGISTER, SUBSCRIBE and UNSUBSCRIBE when the router has more than one shard.
//!
//! Three roles, often played by the same shard:
//! * the *origin* (the session's shard) starts an op with a ticket and answers the client when
//!   the op is complete — i.e. when every shard, itself included, has applied the owner's update
//!   (each shard that applies an update carrying `AckTo` reports `Applied` to the origin);
//! * the *owner* (`owner_shard(realm, uri)`) decides: conflicts, ids, the shard set of a
//!   subscription. It applies its decision to its own replica first, so its replica is the
//!   authority for the uris it owns, then broadcasts the update in decision order;
//! * every *replica* applies the owner's updates in the order they arrive (one FIFO channel per
//!   pair of shards, one owner per uri: per-uri order is the owner's order).
//!
//! A callee is invoked by its shard only once its REGISTERED went out (the registration is then
//! in the session's `registrations`), so no INVOCATION can precede REGISTERED; a CALL that
//! reaches the callee's shard earlier, or after UNREGISTER/leave started, gets
//! `wamp.error.no_such_procedure`. A shared registration is one entry (one id) whose callees
//! join and leave one by one through the same owner, so every replica lists them in the
//! owner's order. Subscribers of a topic wait in a `PendingJoin` while their
//! shard's first-subscriber `Join` is in flight, and become receivers together with their
//! SUBSCRIBED.

use std::sync::Arc;

use super::broker::Subscriber;
use super::dealer::{InvokePolicy, RegisterRefusal, Registrant};
use super::peer::{owner_shard, AckTo, PeerMsg, SessionRef};
use super::realm::RealmId;
use super::session::SessionState;
use super::{uri, Action, Router, SessionKey, ShardId};
use crate::wire::{code, Message};

/// An op this shard started for one of its sessions and has not answered yet.
pub(crate) struct InflightOp {
    /// Shards that reported having applied the owner's update (this one included).
    applied: usize,
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
    Join {
        realm: RealmId,
        topic: Arc<str>,
        subscription: Option<u64>,
    },
}

/// This shard's first subscribers of a topic, waiting for their `Join` to complete.
pub(crate) struct PendingJoin {
    ticket: u64,
    waiters: Vec<Waiter>,
}

struct Waiter {
    session: SessionKey,
    session_id: u64,
    request: u64,
}

fn bit(shard: ShardId) -> u64 {
    1 << shard
}

impl Router {
    fn new_ticket(&mut self) -> u64 {
        self.next_ticket += 1;
        self.next_ticket
    }

    /// True when `session` is still the established session `session_id` (a slab key may have
    /// been reused by a newer session since the op started).
    pub(super) fn session_alive(&self, session: SessionKey, session_id: u64) -> bool {
        self.sessions.get(session.0).is_some_and(|state| {
            state.state == SessionState::Established && state.id() == session_id
        })
    }

    /// Sends `msg` to shard `to`, or handles it at once when `to` is this shard.
    pub(super) fn send_peer(&mut self, to: ShardId, msg: PeerMsg, out: &mut Vec<Action>) {
        if to == self.shard {
            self.dispatch_peer(to, msg, out);
        } else {
            out.push(Action::Peer {
                to,
                msg: msg.into(),
            });
        }
    }

    /// Sends `msg` to every other shard.
    fn broadcast(&mut self, msg: PeerMsg, out: &mut Vec<Action>) {
        for to in (0..self.shards).filter(|&to| to != self.shard) {
            out.push(Action::Peer {
                to,
                msg: msg.clone().into(),
            });
        }
    }

    /// Reports to the origin that this shard applied an update.
    fn ack(&mut self, ack: AckTo, out: &mut Vec<Action>) {
        if ack.origin == self.shard {
            self.count_applied(ack.ticket, out);
        } else {
            out.push(Action::Peer {
                to: ack.origin,
                msg: PeerMsg::Applied { ticket: ack.ticket }.into(),
            });
        }
    }

    fn owner_of(&self, realm: RealmId, uri: &str) -> ShardId {
        owner_shard(&self.realms.get(realm).name, uri, self.shards)
    }

    // ---------------------------------------------------------------------------------------
    // Origin side: starting ops for local sessions
    // ---------------------------------------------------------------------------------------

    // The arguments are the parts of the REGISTER being started.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_register(
        &mut self,
        session: SessionKey,
        request: u64,
        realm: RealmId,
        procedure: &str,
        invoke: InvokePolicy,
        disclose_caller: bool,
        out: &mut Vec<Action>,
    ) {
        let session_id = self.sessions[session.0].id();
        let procedure: Arc<str> = procedure.into();
        let ticket = self.new_ticket();
        self.inflight.insert(
            ticket,
            InflightOp {
                applied: 0,
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
        let msg = PeerMsg::Register {
            realm: self.realms.get(realm).name.clone(),
            procedure,
            callee: SessionRef {
                shard: self.shard,
                key: session,
                session_id,
            },
            invoke,
            disclose_caller,
            ticket,
        };
        self.send_peer(owner, msg, out);
    }

    /// UNREGISTER of an announced registration (the caller checked it is the session's and
    /// already took it out of the session's set, so the callee's shard stops routing to it).
    pub(super) fn start_unregister(
        &mut self,
        session: SessionKey,
        request: u64,
        realm: RealmId,
        registration: u64,
        out: &mut Vec<Action>,
    ) {
        let session_id = self.sessions[session.0].id();
        let ticket = self.new_ticket();
        self.inflight.insert(
            ticket,
            InflightOp {
                applied: 0,
                kind: OpKind::Unregister {
                    session,
                    session_id,
                    request,
                },
            },
        );
        self.send_unregister(session, session_id, realm, registration, Some(ticket), out);
    }

    /// Asks the owner to remove `registration` of the local session (with an ack for UNREGISTER,
    /// without when the session left).
    pub(super) fn send_unregister(
        &mut self,
        session: SessionKey,
        session_id: u64,
        realm: RealmId,
        registration: u64,
        ack: Option<u64>,
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
            if let Some(ticket) = ack {
                self.inflight.remove(&ticket);
            }
            return;
        };
        let owner = self.owner_of(realm, &procedure);
        let msg = PeerMsg::Unregister {
            realm: self.realms.get(realm).name.clone(),
            procedure,
            registration,
            callee: SessionRef {
                shard: self.shard,
                key: session,
                session_id,
            },
            ack,
        };
        self.send_peer(owner, msg, out);
    }

    /// SUBSCRIBE with several shards. Answers at once when this shard already receives the
    /// topic; otherwise the session waits for this shard's `Join`.
    pub(super) fn start_subscribe(
        &mut self,
        session: SessionKey,
        request: u64,
        realm: RealmId,
        topic: &str,
        out: &mut Vec<Action>,
    ) {
        let state = &self.sessions[session.0];
        let (serializer, session_id) = (state.serializer, state.id());
        let waiter = Waiter {
            session,
            session_id,
            request,
        };
        let realm_state = self.realms.get_mut(realm);
        if let Some(join) = realm_state.joins.get_mut(topic) {
            join.waiters.push(waiter);
            return;
        }
        // Local subscribers exist only between a completed Join and the Leave sent when the
        // last of them goes, so every shard knows this one receives the topic.
        let receiving = realm_state
            .subscriptions
            .lookup(topic)
            .is_some_and(|subscription| !subscription.subscribers().is_empty());
        if receiving {
            let subscriber = Subscriber {
                session,
                serializer,
                session_id,
            };
            let subscription = realm_state
                .subscriptions
                .add_subscriber(topic, subscriber)
                .expect("looked up just above");
            self.sessions[session.0].subscriptions.insert(subscription);
            let subscribed = Message::Subscribed {
                request,
                subscription,
            };
            self.send(out, session, serializer, &subscribed);
            return;
        }
        // Not `new_ticket()`: `realm_state` still borrows the realms.
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        let topic: Arc<str> = topic.into();
        realm_state.joins.insert(
            topic.as_ref().into(),
            PendingJoin {
                ticket,
                waiters: vec![waiter],
            },
        );
        self.inflight.insert(
            ticket,
            InflightOp {
                applied: 0,
                kind: OpKind::Join {
                    realm,
                    topic: topic.clone(),
                    subscription: None,
                },
            },
        );
        let owner = self.owner_of(realm, &topic);
        let msg = PeerMsg::Join {
            realm: self.realms.get(realm).name.clone(),
            topic,
            ticket,
        };
        self.send_peer(owner, msg, out);
    }

    /// Removes a local subscriber (UNSUBSCRIBE or leave); when it was this shard's last one of
    /// the topic, tells the owner. False when `session` was not subscribed.
    pub(super) fn remove_local_subscriber(
        &mut self,
        session: SessionKey,
        realm: RealmId,
        subscription: u64,
        out: &mut Vec<Action>,
    ) -> bool {
        let realm_state = self.realms.get_mut(realm);
        let Some(last) = realm_state
            .subscriptions
            .remove_subscriber(subscription, session)
        else {
            return false;
        };
        if let Some(topic) = last {
            let owner = self.owner_of(realm, &topic);
            let msg = PeerMsg::Leave {
                realm: self.realms.get(realm).name.clone(),
                topic: topic.as_ref().into(),
            };
            self.send_peer(owner, msg, out);
        }
        true
    }

    // ---------------------------------------------------------------------------------------
    // Owner side: deciding
    // ---------------------------------------------------------------------------------------

    /// Decides a REGISTER: a new registration, one more callee of a shared one (same id, so
    /// `RegistrationAdded` then extends the replicas' entry), or a refusal.
    // The arguments are the fields of the message being handled.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn owner_register(
        &mut self,
        from: ShardId,
        realm_name: Arc<str>,
        procedure: Arc<str>,
        invoke: InvokePolicy,
        callee: Registrant,
        ticket: u64,
        out: &mut Vec<Action>,
    ) {
        let realm = self.realms.get_or_create(&realm_name);
        let registry = &mut self.realms.get_mut(realm).registry;
        let registration = match registry.register(&mut self.scoped_ids, &procedure, invoke, callee)
        {
            Ok(registration) => registration,
            Err(refusal) => {
                let refused = PeerMsg::RegisterRefused {
                    ticket,
                    procedure,
                    refusal,
                    invoke,
                };
                return self.send_peer(from, refused, out);
            }
        };
        let ack = AckTo {
            origin: from,
            ticket,
        };
        if from == self.shard {
            self.set_op_result(ticket, registration);
        }
        self.ack(ack, out);
        self.broadcast(
            PeerMsg::RegistrationAdded {
                realm: realm_name,
                procedure,
                registration,
                callee: callee.session,
                invoke,
                disclose_caller: callee.disclose_caller,
                ack: Some(ack),
            },
            out,
        );
    }

    pub(super) fn owner_unregister(
        &mut self,
        from: ShardId,
        realm_name: Arc<str>,
        registration: u64,
        callee: SessionRef,
        ack: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        let ack = ack.map(|ticket| AckTo {
            origin: from,
            ticket,
        });
        // Broadcast even when the owner had nothing to remove, so an acked op still completes.
        self.apply_registration_removed(&realm_name, registration, callee, ack, out);
        self.broadcast(
            PeerMsg::RegistrationRemoved {
                realm: realm_name,
                registration,
                callee,
                ack,
            },
            out,
        );
    }

    pub(super) fn owner_join(
        &mut self,
        from: ShardId,
        realm_name: Arc<str>,
        topic: Arc<str>,
        ticket: u64,
        out: &mut Vec<Action>,
    ) {
        let realm = self.realms.get_or_create(&realm_name);
        let realm_state = self.realms.get(realm);
        let (subscription, shards) = match realm_state.subscriptions.lookup(&topic) {
            Some(entry) => (entry.id, entry.shards | bit(from)),
            None => {
                let in_use = |id| {
                    realm_state.subscriptions.get(id).is_some()
                        || realm_state.registry.get(id).is_some()
                };
                (self.scoped_ids.next_id(in_use), bit(from))
            }
        };
        let ack = AckTo {
            origin: from,
            ticket,
        };
        self.apply_subscription_shards(realm, &topic, subscription, shards, Some(ack), out);
        self.broadcast(
            PeerMsg::SubscriptionShards {
                realm: realm_name,
                topic,
                subscription,
                shards,
                ack: Some(ack),
            },
            out,
        );
    }

    pub(super) fn owner_leave(
        &mut self,
        from: ShardId,
        realm_name: Arc<str>,
        topic: Arc<str>,
        out: &mut Vec<Action>,
    ) {
        let realm = self.realms.get_or_create(&realm_name);
        let Some(entry) = self.realms.get(realm).subscriptions.lookup(&topic) else {
            self.stats.peer_messages_ignored += 1;
            tracing::warn!(from, %topic, "Leave for a topic without subscription");
            return;
        };
        let (subscription, shards) = (entry.id, entry.shards & !bit(from));
        self.apply_subscription_shards(realm, &topic, subscription, shards, None, out);
        self.broadcast(
            PeerMsg::SubscriptionShards {
                realm: realm_name,
                topic,
                subscription,
                shards,
                ack: None,
            },
            out,
        );
    }

    // ---------------------------------------------------------------------------------------
    // Replica side: applying the owner's updates
    // ---------------------------------------------------------------------------------------

    // The arguments are the fields of the message being handled.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn apply_registration_added(
        &mut self,
        realm_name: &str,
        procedure: &str,
        registration: u64,
        invoke: InvokePolicy,
        callee: Registrant,
        ack: Option<AckTo>,
        out: &mut Vec<Action>,
    ) {
        let realm = self.realms.get_or_create(realm_name);
        let registry = &mut self.realms.get_mut(realm).registry;
        if !registry.insert(registration, procedure, invoke, callee) {
            // Logged by the registry; applied anyway so the replica converges on the owner.
            self.stats.peer_messages_ignored += 1;
        }
        if let Some(ack) = ack {
            if ack.origin == self.shard {
                self.set_op_result(ack.ticket, registration);
            }
            self.ack(ack, out);
        }
    }

    pub(super) fn apply_registration_removed(
        &mut self,
        realm_name: &str,
        registration: u64,
        callee: SessionRef,
        ack: Option<AckTo>,
        out: &mut Vec<Action>,
    ) {
        let realm = self.realms.get_or_create(realm_name);
        let removed = self
            .realms
            .get_mut(realm)
            .registry
            .unregister(registration, callee);
        if removed.is_none() {
            // Each callee is removed once, by its own shard's request, after the owner added
            // it: a miss means a broken peer (or a bug), not a race.
            self.stats.peer_messages_ignored += 1;
            tracing::warn!(
                registration,
                callee = callee.session_id,
                "RegistrationRemoved for a callee the replica does not have"
            );
        }
        if let Some(ack) = ack {
            self.ack(ack, out);
        }
    }

    pub(super) fn apply_subscription_shards(
        &mut self,
        realm: RealmId,
        topic: &str,
        subscription: u64,
        shards: u64,
        ack: Option<AckTo>,
        out: &mut Vec<Action>,
    ) {
        let dropped =
            self.realms
                .get_mut(realm)
                .subscriptions
                .set_shards(subscription, topic, shards);
        if dropped > 0 {
            // The owner only clears this shard's bit after this shard's own Leave, sent when it
            // had no subscribers left; reaching here means a broken peer.
            tracing::error!(
                topic,
                subscription,
                dropped,
                "owner update dropped local subscribers"
            );
        }
        if let Some(ack) = ack {
            if ack.origin == self.shard {
                self.set_op_result(ack.ticket, subscription);
            }
            self.ack(ack, out);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Origin side: completing ops
    // ---------------------------------------------------------------------------------------

    fn set_op_result(&mut self, ticket: u64, id: u64) {
        match self.inflight.get_mut(&ticket).map(|op| &mut op.kind) {
            Some(OpKind::Register { registration, .. }) => *registration = Some(id),
            Some(OpKind::Join { subscription, .. }) => *subscription = Some(id),
            Some(OpKind::Unregister { .. }) | None => {
                self.stats.peer_messages_ignored += 1;
                tracing::warn!(ticket, "owner result for an unknown op");
            }
        }
    }

    pub(super) fn count_applied(&mut self, ticket: u64, out: &mut Vec<Action>) {
        let Some(op) = self.inflight.get_mut(&ticket) else {
            self.stats.peer_messages_ignored += 1;
            tracing::warn!(ticket, "Applied for an unknown op");
            return;
        };
        op.applied += 1;
        if op.applied < self.shards {
            return;
        }
        let op = self.inflight.remove(&ticket).expect("found just above");
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
                if self.session_alive(session, session_id) {
                    self.sessions[session.0].registrations.insert(registration);
                    let serializer = self.sessions[session.0].serializer;
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
                if self.session_alive(session, session_id) {
                    let serializer = self.sessions[session.0].serializer;
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
                subscription,
            } => self.complete_join(ticket, realm, &topic, subscription, out),
        }
    }

    /// Every shard now knows this one receives `topic`: the waiting subscribers become
    /// receivers and get SUBSCRIBED. If they all left meanwhile, this shard leaves again.
    fn complete_join(
        &mut self,
        ticket: u64,
        realm: RealmId,
        topic: &str,
        subscription: Option<u64>,
        out: &mut Vec<Action>,
    ) {
        let realm_state = self.realms.get_mut(realm);
        let Some(join) = realm_state.joins.remove(topic) else {
            tracing::error!(topic, "join op complete without its waiters");
            return;
        };
        debug_assert_eq!(join.ticket, ticket);
        let Some(subscription) = subscription else {
            tracing::error!(topic, "join op complete without a subscription id");
            return;
        };
        for waiter in join.waiters {
            if !self.session_alive(waiter.session, waiter.session_id) {
                continue;
            }
            let serializer = self.sessions[waiter.session.0].serializer;
            let subscriber = Subscriber {
                session: waiter.session,
                serializer,
                session_id: waiter.session_id,
            };
            let added = self
                .realms
                .get_mut(realm)
                .subscriptions
                .add_subscriber(topic, subscriber);
            debug_assert_eq!(added, Some(subscription));
            let Some(subscription) = added else { continue };
            self.sessions[waiter.session.0]
                .subscriptions
                .insert(subscription);
            let subscribed = Message::Subscribed {
                request: waiter.request,
                subscription,
            };
            self.send(out, waiter.session, serializer, &subscribed);
        }
        let receiving = self
            .realms
            .get(realm)
            .subscriptions
            .get(subscription)
            .is_some_and(|entry| !entry.subscribers().is_empty());
        if !receiving {
            let owner = self.owner_of(realm, topic);
            let msg = PeerMsg::Leave {
                realm: self.realms.get(realm).name.clone(),
                topic: topic.into(),
            };
            self.send_peer(owner, msg, out);
        }
    }

    pub(super) fn register_refused(
        &mut self,
        ticket: u64,
        procedure: &str,
        refusal: RegisterRefusal,
        invoke: InvokePolicy,
        out: &mut Vec<Action>,
    ) {
        let Some(InflightOp {
            kind:
                OpKind::Register {
                    session,
                    session_id,
                    request,
                    ..
                },
            ..
        }) = self.inflight.remove(&ticket)
        else {
            self.stats.peer_messages_ignored += 1;
            tracing::warn!(ticket, "RegisterRefused for an unknown op");
            return;
        };
        if self.session_alive(session, session_id) {
            let text = refusal.text(procedure, invoke);
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

    /// Ops started here and not complete (for `RouterStats::inflight_registry_ops`), plus
    /// topics with waiting subscribers.
    pub(super) fn inflight_ops(&self) -> usize {
        self.inflight.len()
            + self
                .realms
                .iter()
                .map(|realm| realm.joins.len())
                .sum::<usize>()
    }
}
