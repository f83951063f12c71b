//! Event retention (digest §9.3, `event_retention`): the last event published with
//! `retain: true` per topic, kept at the topic's owner shard (DESIGN.md "Security, operations,
//! scale-out"): a retained PUBLISH sends one extra copy there. A `SUBSCRIBE {get_retained:
//! true}` gets, after its SUBSCRIBED, the retained events of every topic its subscription
//! matches (one topic for an exact subscription, any number for a pattern), each as an EVENT
//! with `Details.retained: true`, when the black/white lists it was published with admit the
//! subscriber. The events are fetched by a gather (`gather.rs`), since a pattern's topics have
//! owners everywhere.
//!
//! A live EVENT can overtake the fetch when the topic's owner is another shard. So that a
//! subscriber never gets an older value after a newer one, this shard notes the topics
//! delivered live to a subscription while a fetch for it is out, and leaves their retained
//! events out.
//!
//! Bounds: the retained bytes of a realm (topic, payload and lists) are capped by
//! `max_retained_bytes_per_realm`, split evenly over the shards, each of which owns a share of
//! the topics; a retained event that does not fit is declined (counted and logged), and the
//! topic keeps no retained event rather than an outdated one. Retained events keep their realm
//! on the owner shard, auto-created ones too: retained state outlives its subscribers.

use std::borrow::Cow;
use std::sync::Arc;

use super::broker::Subscriber;
use super::dealer::MatchPolicy;
use super::gather::{Query, Then};
use super::patterns::matches_pattern;
use super::realm::RealmId;
use super::shard_msg::{owner_shard, OwnedFilters, PublicIdentity, ShardMsgKind};
use super::{fast_map, is_sparse, Action, FastMap, Router, SessionKey};
use crate::wire::{Dict, Message, OwnedPayload, Value};

/// Topics noted per watched subscription before the watch gives up and drops every retained
/// event of the fetch (a subscription flooded with live events needs none).
const WATCH_TOPICS: usize = 256;

/// What a retained event was published with: what its later delivery needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RetainedCopy {
    pub(crate) topic: Box<str>,
    pub(crate) publication: u64,
    /// Present when the publisher was disclosed (by `disclose_me` or the realm's setting).
    pub(crate) publisher: Option<PublicIdentity>,
    /// The black/white lists of the PUBLISH, re-applied at delivery.
    pub(crate) filters: Option<OwnedFilters>,
    pub(crate) payload: OwnedPayload,
}

impl RetainedCopy {
    /// Bytes this event holds, as counted against the realm's bound.
    fn bytes(&self) -> usize {
        let strings = |list: &Option<Vec<Box<str>>>| {
            list.as_ref()
                .map_or(0, |list| list.iter().map(|item| item.len() + 16).sum())
        };
        let ids = |list: &Option<Vec<u64>>| list.as_ref().map_or(0, |list| list.len() * 8);
        let filters = self.filters.as_ref().map_or(0, |filters| {
            ids(&filters.exclude)
                + ids(&filters.eligible)
                + strings(&filters.exclude_authid)
                + strings(&filters.eligible_authid)
                + strings(&filters.exclude_authrole)
                + strings(&filters.eligible_authrole)
        });
        let publisher = self.publisher.as_ref().map_or(0, |publisher| {
            publisher.authid.len() + publisher.authrole.len() + 16
        });
        // The fixed part: the map entry and the event's own fields.
        const ENTRY: usize = 128;
        ENTRY + 2 * self.topic.len() + self.payload.raw.len() + filters + publisher
    }
}

/// The retained events of one realm on this shard (the topics it owns), by topic.
#[derive(Default)]
pub(crate) struct RetainedEvents {
    by_topic: FastMap<Box<str>, (RetainedCopy, usize)>,
    bytes: usize,
}

impl RetainedEvents {
    pub(crate) fn new() -> RetainedEvents {
        RetainedEvents {
            by_topic: fast_map(),
            bytes: 0,
        }
    }

    /// Keeps `event` as its topic's retained event, replacing the one before; false when it
    /// does not fit in `limit` bytes (the one before is gone all the same: it is outdated).
    fn store(&mut self, event: RetainedCopy, limit: usize) -> bool {
        if let Some((_, bytes)) = self.by_topic.remove(&event.topic) {
            self.bytes -= bytes;
        }
        let bytes = event.bytes();
        if self.bytes + bytes > limit {
            if is_sparse(self.by_topic.len(), self.by_topic.capacity()) {
                self.by_topic.shrink_to(self.by_topic.len() * 2);
            }
            return false;
        }
        self.bytes += bytes;
        self.by_topic.insert(event.topic.clone(), (event, bytes));
        true
    }

    /// The retained events of the topics (`uri`, `matching`) covers.
    fn matching(&self, uri: &str, matching: MatchPolicy) -> Vec<RetainedCopy> {
        if matching == MatchPolicy::Exact {
            return self
                .by_topic
                .get(uri)
                .map(|(event, _)| event.clone())
                .into_iter()
                .collect();
        }
        self.by_topic
            .iter()
            .filter(|(topic, _)| matches_pattern(uri, matching, topic))
            .map(|(_, (event, _))| event.clone())
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_topic.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A retained PUBLISH on its way to the topic's owner shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RetainPublication {
    pub(crate) realm: Arc<str>,
    pub(crate) event: RetainedCopy,
}

/// Live deliveries to one subscription on this shard while fetches of its retained events
/// are out.
#[derive(Default)]
pub(crate) struct RetainedWatch {
    fetches: u32,
    /// The sessions whose SUBSCRIBE asked, one entry per fetch; an UNSUBSCRIBE drops its
    /// session's entries, so a fetch that arrives after it (even after a new SUBSCRIBE)
    /// delivers nothing to it.
    waiting: Vec<(SessionKey, u64)>,
    topics: Vec<Box<str>>,
    /// More than `WATCH_TOPICS` topics went by: every retained event of the fetches is dropped.
    overflow: bool,
}

impl Router {
    /// A PUBLISH with `retain: true` in `realm`: its event becomes the topic's retained one at
    /// the topic's owner shard.
    pub(super) fn retain_event(
        &mut self,
        realm: RealmId,
        event: RetainedCopy,
        out: &mut Vec<Action>,
    ) {
        let name = self.realms.get(realm).name.clone();
        let owner = owner_shard(&name, &event.topic, self.cluster.shards);
        let retain = RetainPublication { realm: name, event };
        if owner == self.cluster.shard {
            self.handle_retain(retain);
        } else {
            self.send_to_shard(owner, ShardMsgKind::Retain(Box::new(retain)), out);
        }
    }

    /// Stores a retained event of a topic this shard owns.
    pub(super) fn handle_retain(&mut self, retain: RetainPublication) {
        let limit = (self.config.max_retained_bytes_per_realm / self.cluster.shards).max(1);
        let realm = self.realms.get_or_create(&retain.realm);
        let topic = retain.event.topic.clone();
        if self
            .realms
            .get_mut(realm)
            .retained
            .store(retain.event, limit)
        {
            self.stats.events_retained += 1;
            return;
        }
        self.stats.retained_declined += 1;
        let realm_state = self.realms.get(realm);
        if realm_state.retained.len() == 0 && realm_state.sessions == 0 {
            // Its last retained event may have been what kept an auto-created realm.
            self.realm_left_empty(realm);
        }
        if let Some(suppressed) = self.logs.retained_declined.allow(self.now) {
            tracing::warn!(
                realm = %retain.realm,
                topic = %topic,
                limit,
                suppressed,
                "retained event declined: the realm's retained events would exceed \
                 limits.max_retained_bytes_per_realm (this shard's share)"
            );
        }
    }

    /// After SUBSCRIBED with `get_retained`: fetches the retained events of what the
    /// subscription covers from every shard, to be delivered to `session`.
    pub(super) fn fetch_retained(
        &mut self,
        realm: RealmId,
        (session, session_id): (SessionKey, u64),
        subscription: u64,
        (topic, matching): (&str, MatchPolicy),
        out: &mut Vec<Action>,
    ) {
        let realm_state = self.realms.get_mut(realm);
        let watch = realm_state
            .retained_watches
            .entry(subscription)
            .or_default();
        watch.fetches += 1;
        watch.waiting.push((session, session_id));
        let query = Query::Retained {
            realm: realm_state.name.clone(),
            topic: topic.into(),
            matching,
        };
        let then = Then::DeliverRetained {
            realm: realm_state.name.clone(),
            session,
            session_id,
            subscription,
            pattern: matching != MatchPolicy::Exact,
        };
        self.gather(query, then, out);
    }

    /// This shard's retained events for a `Query::Retained`.
    pub(super) fn retained_matching(
        &self,
        realm: &str,
        topic: &str,
        matching: MatchPolicy,
    ) -> Vec<RetainedCopy> {
        self.realms
            .find(realm)
            .map(|realm| self.realms.get(realm).retained.matching(topic, matching))
            .unwrap_or_default()
    }

    /// The fetched retained events: to `session` if it is still there and subscribed, each as
    /// an EVENT with `Details.retained`, unless a live EVENT of its topic reached the
    /// subscription meanwhile or its lists do not admit the session.
    pub(super) fn deliver_retained(
        &mut self,
        realm: &str,
        (session, session_id): (SessionKey, u64),
        (subscription, pattern): (u64, bool),
        mut events: Vec<RetainedCopy>,
        out: &mut Vec<Action>,
    ) {
        // The watch kept the realm, so it is still here.
        let Some(realm) = self.realms.find(realm) else {
            debug_assert!(false, "a fetch's realm went away");
            return;
        };
        // The topics delivered live since the fetch went out (other fetches of the same
        // subscription still out keep watching).
        let (overflow, overtaking, last, asked) = {
            let watches = &mut self.realms.get_mut(realm).retained_watches;
            let Some(watch) = watches.get_mut(&subscription) else {
                debug_assert!(false, "a fetch without its watch");
                return;
            };
            watch.fetches -= 1;
            // Still subscribed by the SUBSCRIBE that asked (no UNSUBSCRIBE since).
            let waiter = watch
                .waiting
                .iter()
                .position(|&waiter| waiter == (session, session_id));
            if let Some(at) = waiter {
                watch.waiting.swap_remove(at);
            }
            let seen = (
                watch.overflow,
                watch.topics.clone(),
                watch.fetches == 0,
                waiter.is_some(),
            );
            if seen.2 {
                watches.remove(&subscription);
            }
            seen
        };
        if last && self.realms.get(realm).sessions == 0 {
            // The watch may have been the last thing of an auto-created realm here.
            self.realm_left_empty(realm);
        }
        if !asked || !self.sessions.alive(session, session_id) {
            return;
        }
        let serializer = self.sessions[session].serializer;
        let subscriber = Subscriber {
            session,
            serializer,
            session_id,
        };
        events.sort_unstable_by(|a, b| a.topic.cmp(&b.topic));
        for event in events {
            let overtaken = overflow || overtaking.contains(&event.topic);
            let admitted = event
                .filters
                .as_ref()
                .map_or(true, |filters| filters.admits(&subscriber, &self.sessions));
            if overtaken || !admitted {
                self.stats.retained_withheld += 1;
                continue;
            }
            let mut details = Dict::new();
            details.insert("retained", true);
            if pattern {
                details.insert("topic", Value::Str(Cow::Borrowed(&event.topic)));
            }
            if let Some(publisher) = &event.publisher {
                details.insert("publisher", publisher.session_id);
                details.insert(
                    "publisher_authid",
                    Value::Str(Cow::Borrowed(&publisher.authid)),
                );
                details.insert(
                    "publisher_authrole",
                    Value::Str(Cow::Borrowed(&publisher.authrole)),
                );
            }
            let message = Message::Event {
                subscription,
                publication: event.publication,
                details,
                payload: event.payload.as_payload(),
            };
            match self.outbox.frame(&message, serializer) {
                Ok(frame) => {
                    self.stats.events_sent += 1;
                    self.stats.retained_delivered += 1;
                    out.push(Action::SendEvent { session, frame });
                }
                Err(_) => {
                    self.stats.encode_errors += 1;
                    self.stats.events_undeliverable += 1;
                }
            }
        }
    }

    /// `session` unsubscribes from `subscription`: fetches of its retained events that are out
    /// no longer deliver to it.
    pub(super) fn forget_retained_fetches(
        &mut self,
        realm: RealmId,
        session: SessionKey,
        subscription: u64,
    ) {
        let watches = &mut self.realms.get_mut(realm).retained_watches;
        if let Some(watch) = watches.get_mut(&subscription) {
            watch.waiting.retain(|&(waiter, _)| waiter != session);
        }
    }

    /// A live EVENT of `topic` went to `subscriptions` of `realm` on this shard: fetches of
    /// their retained events that are out must leave that topic's out.
    #[cold]
    pub(super) fn note_live_delivery(
        &mut self,
        realm: RealmId,
        topic: &str,
        subscriptions: impl Iterator<Item = u64>,
    ) {
        let watches = &mut self.realms.get_mut(realm).retained_watches;
        for subscription in subscriptions {
            let Some(watch) = watches.get_mut(&subscription) else {
                continue;
            };
            if watch.overflow || watch.topics.iter().any(|seen| **seen == *topic) {
                continue;
            }
            if watch.topics.len() == WATCH_TOPICS {
                watch.overflow = true;
                watch.topics = Vec::new();
            } else {
                watch.topics.push(topic.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serializer::Serializer;

    fn event(topic: &str, publication: u64, payload_len: usize) -> RetainedCopy {
        RetainedCopy {
            topic: topic.into(),
            publication,
            publisher: None,
            filters: None,
            payload: OwnedPayload {
                ser: Serializer::Json,
                count: 1,
                raw: vec![b'1'; payload_len].into(),
            },
        }
    }

    #[test]
    fn the_last_event_per_topic_is_kept_within_the_bound() {
        let mut retained = RetainedEvents::new();
        assert!(retained.store(event("a", 1, 10), 1_000));
        assert!(retained.store(event("a", 2, 10), 1_000));
        assert!(retained.store(event("b", 3, 10), 1_000));
        assert_eq!(retained.len(), 2);
        let bytes = retained.bytes();
        assert_eq!(bytes, event("a", 2, 10).bytes() + event("b", 3, 10).bytes());
        let got = retained.matching("a", MatchPolicy::Exact);
        assert_eq!(got.iter().map(|e| e.publication).collect::<Vec<_>>(), [2]);
        // Too big: declined, and topic `a` keeps nothing rather than the outdated event.
        assert!(!retained.store(event("a", 4, 2_000), 1_000));
        assert!(retained.matching("a", MatchPolicy::Exact).is_empty());
        assert_eq!(retained.bytes(), event("b", 3, 10).bytes());
        assert_eq!(retained.len(), 1);
    }

    #[test]
    fn patterns_select_their_topics() {
        let mut retained = RetainedEvents::new();
        for (topic, publication) in [
            ("com.a.x", 1),
            ("com.b.x", 2),
            ("com.a.y", 3),
            ("org.a.x", 4),
        ] {
            retained.store(event(topic, publication, 1), usize::MAX);
        }
        let ids = |uri: &str, matching| {
            let mut ids: Vec<u64> = retained
                .matching(uri, matching)
                .iter()
                .map(|e| e.publication)
                .collect();
            ids.sort_unstable();
            ids
        };
        assert_eq!(ids("com.a", MatchPolicy::Prefix), [1, 3]);
        assert_eq!(ids("com..x", MatchPolicy::Wildcard), [1, 2]);
        assert_eq!(ids("com.", MatchPolicy::Wildcard), Vec::<u64>::new());
        assert_eq!(ids("org.a.x", MatchPolicy::Exact), [4]);
    }
}
