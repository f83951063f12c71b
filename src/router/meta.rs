//! Meta events (digest §10), the first reader of the fact list: the router publishes them
//! itself, without a publisher session, into the realm of the session they are about, from that
//! session's shard (`facts.rs` says who records what), so subscribers on every shard get them
//! in the order the facts happened for each session (one FIFO channel per pair of shards).
//!
//! * `wamp.session.on_join` (one dict: session, authid, authrole, authmethod, authprovider,
//!   transport) and `wamp.session.on_leave` (session, authid, authrole);
//! * `wamp.registration.on_create` (session, {id, created, uri, match, invoke}),
//!   `on_register`, `on_unregister`, `on_delete` (session, registration id);
//! * `wamp.subscription.on_create` (session, {id, created, uri, match}), `on_subscribe`,
//!   `on_unsubscribe`, `on_delete` (session, subscription id).
//!
//! A meta event is built only when someone subscribed to its topic or a `[[realm.history]]`
//! entry keeps it. The same publishing path carries a leaving session's testaments
//! (`testament.rs`), with their own lists and `retain`.

use std::borrow::Cow;
use std::sync::Arc;

use super::facts::Fact;
use super::history::rfc3339_millis;
use super::pubsub::EventCopy;
use super::shard_msg::{OwnedFilters, RemotePublication, ShardMsgKind};
use super::{Action, Router};
use crate::serializer::Serializer;
use crate::wire::{self, Dict, OwnedPayload, Value};

pub(crate) const ON_JOIN: &str = "wamp.session.on_join";
pub(crate) const ON_LEAVE: &str = "wamp.session.on_leave";
pub(crate) const REGISTRATION_ON_CREATE: &str = "wamp.registration.on_create";
pub(crate) const ON_REGISTER: &str = "wamp.registration.on_register";
pub(crate) const ON_UNREGISTER: &str = "wamp.registration.on_unregister";
pub(crate) const REGISTRATION_ON_DELETE: &str = "wamp.registration.on_delete";
pub(crate) const SUBSCRIPTION_ON_CREATE: &str = "wamp.subscription.on_create";
pub(crate) const ON_SUBSCRIBE: &str = "wamp.subscription.on_subscribe";
pub(crate) const ON_UNSUBSCRIBE: &str = "wamp.subscription.on_unsubscribe";
pub(crate) const SUBSCRIPTION_ON_DELETE: &str = "wamp.subscription.on_delete";

/// A router-built event to publish: its topic and payload, the lists it is published with,
/// and whether it becomes the topic's retained event.
pub(super) struct RouterEvent {
    pub(super) topic: Box<str>,
    pub(super) publication: u64,
    pub(super) payload: OwnedPayload,
    pub(super) filters: Option<OwnedFilters>,
    pub(super) retain: bool,
}

/// The realm and topic of the meta event of `fact`.
fn meta_topic(fact: &Fact) -> (&Arc<str>, &'static str) {
    match fact {
        Fact::SessionJoined { realm, .. } => (realm, ON_JOIN),
        Fact::SessionLeft { realm, .. } => (realm, ON_LEAVE),
        Fact::RegistrationCreated { realm, .. } => (realm, REGISTRATION_ON_CREATE),
        Fact::CalleeAdded { realm, .. } => (realm, ON_REGISTER),
        Fact::CalleeRemoved { realm, .. } => (realm, ON_UNREGISTER),
        Fact::RegistrationDeleted { realm, .. } => (realm, REGISTRATION_ON_DELETE),
        Fact::SubscriptionCreated { realm, .. } => (realm, SUBSCRIPTION_ON_CREATE),
        Fact::SubscriberAdded { realm, .. } => (realm, ON_SUBSCRIBE),
        Fact::SubscriberRemoved { realm, .. } => (realm, ON_UNSUBSCRIBE),
        Fact::SubscriptionDeleted { realm, .. } => (realm, SUBSCRIPTION_ON_DELETE),
    }
}

/// The arguments of the meta event of `fact`.
fn meta_args(fact: &Fact) -> Vec<Value<'_>> {
    let pair = |session: u64, id: u64| vec![Value::UInt(session), Value::UInt(id)];
    match fact {
        Fact::SessionJoined {
            session,
            authid,
            authrole,
            authmethod,
            authprovider,
            transport,
            ..
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
            vec![Value::Dict(details)]
        }
        Fact::SessionLeft {
            session,
            authid,
            authrole,
            ..
        } => vec![
            Value::UInt(*session),
            Value::Str(Cow::Borrowed(authid)),
            Value::Str(Cow::Borrowed(authrole)),
        ],
        Fact::RegistrationCreated {
            registration,
            procedure,
            matching,
            invoke,
            created,
            session,
            ..
        } => {
            let details =
                registration_details(*registration, *created, procedure, matching, Some(invoke));
            vec![Value::UInt(*session), details]
        }
        Fact::CalleeAdded {
            registration,
            session,
            ..
        } => pair(*session, *registration),
        Fact::CalleeRemoved {
            registration,
            session,
            ..
        } => pair(*session, *registration),
        Fact::RegistrationDeleted {
            registration,
            session,
            ..
        } => pair(*session, *registration),
        Fact::SubscriptionCreated {
            subscription,
            topic,
            matching,
            created,
            session,
            ..
        } => {
            let details = registration_details(*subscription, *created, topic, matching, None);
            vec![Value::UInt(*session), details]
        }
        Fact::SubscriberAdded {
            subscription,
            session,
            ..
        } => pair(*session, *subscription),
        Fact::SubscriberRemoved {
            subscription,
            session,
            ..
        } => pair(*session, *subscription),
        Fact::SubscriptionDeleted {
            subscription,
            session,
            ..
        } => pair(*session, *subscription),
    }
}

/// `RegistrationDetails` `{id, created, uri, match, invoke}` (digest §10), or
/// `SubscriptionDetails` without `invoke`.
pub(super) fn registration_details<'a>(
    id: u64,
    created: u64,
    uri: &'a str,
    matching: &'static str,
    invoke: Option<&'static str>,
) -> Value<'a> {
    let mut details = Dict::with_capacity(5);
    details.insert("id", id);
    details.insert("created", Value::Str(Cow::Owned(rfc3339_millis(created))));
    details.insert("uri", Value::Str(Cow::Borrowed(uri)));
    details.insert("match", matching);
    if let Some(invoke) = invoke {
        details.insert("invoke", invoke);
    }
    Value::Dict(details)
}

impl Router {
    /// Publishes the meta event of `fact`, if someone subscribed to it or a history keeps it.
    pub(super) fn publish_meta_event(&mut self, fact: &Fact, out: &mut Vec<Action>) {
        let (realm, topic) = meta_topic(fact);
        let Some(realm_id) = self.realms.find(realm) else {
            return;
        };
        let subscriptions = &self.realms.get(realm_id).subscriptions;
        let mut subscribed = subscriptions.exact(topic).is_some();
        if !subscribed && subscriptions.has_patterns() {
            subscriptions.for_each_pattern_match(topic, |_| subscribed = true);
        }
        if !subscribed && !self.keeps_history(realm_id, topic) {
            return;
        }
        let args = meta_args(fact);
        // MessagePack carries every value; JSON subscribers get it transcoded once.
        match wire::payload_from_args(Serializer::MsgPack, &args, None) {
            Ok(payload) => {
                let event = RouterEvent {
                    topic: topic.into(),
                    publication: self.random_ids.next_id(),
                    payload,
                    filters: None,
                    retain: false,
                };
                self.publish_from_router(realm.clone(), event, out)
            }
            Err(error) => tracing::error!(topic, %error, "meta event not encodable"),
        }
    }

    /// PUBLISH by the router itself: no publisher session, so nobody is excluded by
    /// `exclude_me` and nothing is disclosed; to this shard's subscribers and one `Publish` per
    /// other shard with some, into the history subscriptions its topic falls under, and to the
    /// topic's owner when it is to be retained.
    pub(super) fn publish_from_router(
        &mut self,
        realm_name: Arc<str>,
        event: RouterEvent,
        out: &mut Vec<Action>,
    ) {
        let Some(realm) = self.realms.find(&realm_name) else {
            return;
        };
        let RouterEvent {
            topic,
            publication,
            payload,
            filters,
            retain,
        } = event;
        let history = self.history_matching(realm, &topic);
        if retain || !history.is_empty() {
            let event = EventCopy {
                topic: topic.clone(),
                publication,
                publisher: None,
                filters: filters.clone(),
                payload: payload.clone(),
            };
            if !history.is_empty() {
                self.keep_in_history(realm, history, event.clone(), None, out);
            }
            if retain {
                self.retain_event(realm, event, out);
            }
        }
        let subscriptions = &self.realms.get(realm).subscriptions;
        let exact = subscriptions.exact(&topic);
        let mut shards = exact.map_or(0, |subscription| subscription.shards);
        let mut patterns = Vec::new();
        subscriptions.for_each_pattern_match(&topic, |subscription| {
            shards |= subscription.shards;
            patterns.push(subscription.id);
        });
        if exact.is_none() && patterns.is_empty() {
            return;
        }
        let publication = Arc::new(RemotePublication {
            realm: realm_name,
            subscription: exact.map_or(0, |subscription| subscription.id),
            topic: (!patterns.is_empty()).then_some(topic),
            patterns: patterns.into_boxed_slice(),
            publication,
            publisher: None,
            filters,
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
