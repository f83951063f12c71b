//! Meta events (digest §10), the first reader of the fact list: the router publishes them
//! itself, without a publisher session, into the realm of the session they are about, from that
//! session's shard, so subscribers on every shard get them in the order the facts happened for
//! each session (one FIFO channel per pair of shards). Today: `wamp.session.on_join` (one
//! positional dict: session, authid, authrole, authmethod, authprovider, transport) and
//! `wamp.session.on_leave` (session, authid, authrole). The session meta API is not announced in
//! WELCOME until all of it is there (step 5 of the plan). A `[[realm.history]]` entry may keep
//! meta events too.

use std::borrow::Cow;
use std::sync::Arc;

use super::facts::Fact;
use super::pubsub::EventCopy;
use super::shard_msg::{RemotePublication, ShardMsgKind};
use super::{Action, Router};
use crate::serializer::Serializer;
use crate::wire::{self, Dict, OwnedPayload, Value};

pub(crate) const ON_JOIN: &str = "wamp.session.on_join";
pub(crate) const ON_LEAVE: &str = "wamp.session.on_leave";

impl Router {
    /// Publishes the meta event of `fact`, if it has one and someone subscribed to it.
    pub(super) fn publish_meta_event(&mut self, fact: &Fact, out: &mut Vec<Action>) {
        let (realm, topic, args) = match fact {
            Fact::SessionJoined {
                realm,
                session,
                authid,
                authrole,
                authmethod,
                authprovider,
                transport,
            } => {
                let mut transport_details = Dict::with_capacity(3);
                transport_details.insert("type", transport.kind);
                transport_details.insert("serializer", transport.serializer.name());
                transport_details.insert("peer", Value::Str(Cow::Borrowed(&transport.peer)));
                let mut details = Dict::with_capacity(6);
                details.insert("session", *session);
                details.insert("authid", Value::Str(Cow::Borrowed(authid)));
                details.insert("authrole", Value::Str(Cow::Borrowed(authrole)));
                details.insert("authmethod", *authmethod);
                details.insert("authprovider", *authprovider);
                details.insert("transport", Value::Dict(transport_details));
                (realm, ON_JOIN, vec![Value::Dict(details)])
            }
            Fact::SessionLeft {
                realm,
                session,
                authid,
                authrole,
            } => (
                realm,
                ON_LEAVE,
                vec![
                    Value::UInt(*session),
                    Value::Str(Cow::Borrowed(authid)),
                    Value::Str(Cow::Borrowed(authrole)),
                ],
            ),
            _ => return,
        };
        let Some(realm_id) = self.realms.find(realm) else {
            return;
        };
        let subscriptions = &self.realms.get(realm_id).subscriptions;
        let mut subscribed = subscriptions.exact(topic).is_some();
        subscriptions.for_each_pattern_match(topic, |_| subscribed = true);
        if !subscribed && !self.keeps_history(realm_id, topic) {
            return;
        }
        // MessagePack carries every value; JSON subscribers get it transcoded once.
        match wire::payload_from_args(Serializer::MsgPack, &args, None) {
            Ok(payload) => self.publish_from_router(realm.clone(), topic, payload, out),
            Err(error) => tracing::error!(topic, %error, "meta event not encodable"),
        }
    }

    /// PUBLISH by the router itself: no publisher session, so nobody is excluded and nothing is
    /// disclosed; to this shard's subscribers and one `Publish` per other shard with some, and
    /// into the history subscriptions its topic falls under.
    pub(super) fn publish_from_router(
        &mut self,
        realm_name: Arc<str>,
        topic: &str,
        payload: OwnedPayload,
        out: &mut Vec<Action>,
    ) {
        let Some(realm) = self.realms.find(&realm_name) else {
            return;
        };
        let publication = self.random_ids.next_id();
        let history = self.history_matching(realm, topic);
        if !history.is_empty() {
            let event = EventCopy {
                topic: topic.into(),
                publication,
                publisher: None,
                filters: None,
                payload: payload.clone(),
            };
            self.keep_in_history(realm, history, event, out);
        }
        let subscriptions = &self.realms.get(realm).subscriptions;
        let exact = subscriptions.exact(topic);
        let mut shards = exact.map_or(0, |subscription| subscription.shards);
        let mut patterns = Vec::new();
        subscriptions.for_each_pattern_match(topic, |subscription| {
            shards |= subscription.shards;
            patterns.push(subscription.id);
        });
        if exact.is_none() && patterns.is_empty() {
            return;
        }
        let publication = Arc::new(RemotePublication {
            realm: realm_name,
            subscription: exact.map_or(0, |subscription| subscription.id),
            topic: (!patterns.is_empty()).then(|| topic.into()),
            patterns: patterns.into_boxed_slice(),
            publication,
            publisher: None,
            filters: None,
            payload,
        });
        self.stats.publishes += 1;
        self.handle_remote_publish(&publication, out);
        let me = self.cluster.shard;
        for to in (0..self.cluster.shards).filter(|&to| to != me && shards & (1u64 << to) != 0) {
            out.push(Action::ToShard {
                to,
                msg: ShardMsgKind::Publish(publication.clone()).into(),
            });
        }
    }
}
