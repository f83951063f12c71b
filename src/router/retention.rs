//! Event retention (digest §9.3, `event_retention`): the last event published with
//! `retain: true` per topic. The topic's owner shard decides (DESIGN.md "Security, operations,
//! scale-out": a retained PUBLISH sends one extra copy there) and replicates its decision to
//! every shard in its order, as it does for subscriptions; so every shard holds the realm's
//! retained events and answers a `SUBSCRIBE {get_retained: true}` at once, from its own copy,
//! right after SUBSCRIBED and before any live EVENT of the subscription (no cross-shard round
//! trip a live EVENT could overtake). The subscriber gets the retained event of every topic its
//! subscription covers (one for an exact subscription, any number for a pattern, with
//! `Details.topic`), each as an EVENT with `Details.retained: true`, when the black/white lists
//! it was published with admit it.
//!
//! Bounds: the retained bytes of a realm (topic, payload and lists) are capped by
//! `max_retained_bytes_per_realm` on each shard; the owner declines a retained event that does
//! not fit (counted and logged), and the topic then keeps none rather than an outdated one.
//! Owners of different topics decide independently, so two decisions crossing each other may
//! overshoot the bound by one event each. Retained events keep their realm, auto-created ones
//! too: retained state outlives its subscribers.

use std::borrow::Cow;
use std::sync::Arc;

use super::broker::Subscriber;
use super::dealer::MatchPolicy;
use super::patterns::matches_pattern;
use super::pubsub::{disclose_publisher, EventCopy};
use super::realm::RealmId;
use super::shard_msg::{owner_shard, ShardMsgKind};
use super::{fast_map, is_sparse, Action, FastMap, Router, SessionKey};
use crate::wire::{Dict, Message, Value};

/// The retained events of one realm on this shard (the topics it owns), by topic.
#[derive(Default)]
pub(crate) struct RetainedEvents {
    by_topic: FastMap<Box<str>, (EventCopy, usize)>,
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
    fn store(&mut self, event: EventCopy, limit: usize) -> bool {
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

    /// The owner's decision for `topic` applied to a replica: `event` is its retained event
    /// now, or none.
    fn set(&mut self, topic: &str, event: Option<EventCopy>) {
        if let Some((_, bytes)) = self.by_topic.remove(topic) {
            self.bytes -= bytes;
        }
        if let Some(event) = event {
            let bytes = event.bytes();
            self.bytes += bytes;
            self.by_topic.insert(event.topic.clone(), (event, bytes));
        } else if is_sparse(self.by_topic.len(), self.by_topic.capacity()) {
            self.by_topic.shrink_to(self.by_topic.len() * 2);
        }
    }

    /// The retained events of the topics (`uri`, `matching`) covers.
    fn matching(&self, uri: &str, matching: MatchPolicy) -> Vec<EventCopy> {
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
    pub(crate) event: EventCopy,
}

/// The owner's decision for `topic`, replicated to every other shard: its retained event
/// now (`None`: none, after a decline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RetainedUpdate {
    pub(crate) realm: Arc<str>,
    pub(crate) topic: Box<str>,
    pub(crate) event: Option<EventCopy>,
}

impl Router {
    /// A PUBLISH with `retain: true` in `realm`: its event becomes the topic's retained one,
    /// decided by the topic's owner shard.
    pub(super) fn retain_event(&mut self, realm: RealmId, event: EventCopy, out: &mut Vec<Action>) {
        let name = self.realms.get(realm).name.clone();
        let owner = owner_shard(&name, &event.topic, self.cluster.shards);
        let retain = RetainPublication { realm: name, event };
        self.send_to_shard(owner, ShardMsgKind::Retain(Box::new(retain)), out);
    }

    /// The owner's part: keeps the event if it fits, and tells every other shard.
    pub(super) fn handle_retain(&mut self, retain: RetainPublication, out: &mut Vec<Action>) {
        let limit = self.config.max_retained_bytes_per_realm;
        let realm = self.realms.get_or_create(&retain.realm);
        let topic = retain.event.topic.clone();
        let kept = self
            .realms
            .get_mut(realm)
            .retained
            .store(retain.event.clone(), limit);
        if kept {
            self.stats.events_retained += 1;
        } else {
            self.stats.retained_declined += 1;
            if let Some(suppressed) = self.logs.retained_declined.allow(self.now) {
                tracing::warn!(
                    realm = %retain.realm,
                    topic = %topic,
                    limit,
                    suppressed,
                    "retained event declined: the realm's retained events would exceed \
                     limits.max_retained_bytes_per_realm"
                );
            }
            let realm_state = self.realms.get(realm);
            if realm_state.retained.len() == 0 && realm_state.sessions == 0 {
                // Its last retained event may have been what kept an auto-created realm.
                self.realm_left_empty(realm);
            }
        }
        let update = RetainedUpdate {
            realm: retain.realm,
            topic,
            event: kept.then_some(retain.event),
        };
        let me = self.cluster.shard;
        for to in (0..self.cluster.shards).filter(|&to| to != me) {
            let update = ShardMsgKind::RetainedUpdate(Box::new(update.clone()));
            self.send_to_shard(to, update, out);
        }
    }

    /// A replica applies its owner's decision.
    pub(super) fn apply_retained_update(&mut self, update: RetainedUpdate) {
        let realm = self.realms.get_or_create(&update.realm);
        let realm_state = self.realms.get_mut(realm);
        realm_state.retained.set(&update.topic, update.event);
        if realm_state.retained.len() == 0 && realm_state.sessions == 0 {
            self.realm_left_empty(realm);
        }
    }

    /// After SUBSCRIBED with `get_retained`: the retained events of what the subscription
    /// covers, from this shard's copy, to `session`, each as an EVENT with
    /// `Details.retained`, unless its lists do not admit the session.
    pub(super) fn deliver_retained(
        &mut self,
        realm: RealmId,
        (session, session_id): (SessionKey, u64),
        subscription: u64,
        (topic, matching): (&str, MatchPolicy),
        out: &mut Vec<Action>,
    ) {
        let mut events = self.realms.get(realm).retained.matching(topic, matching);
        if events.is_empty() {
            return;
        }
        let pattern = matching != MatchPolicy::Exact;
        let serializer = self.sessions[session].serializer;
        let subscriber = Subscriber {
            session,
            serializer,
            session_id,
        };
        events.sort_unstable_by(|a, b| a.topic.cmp(&b.topic));
        for event in events {
            let admitted = event
                .filters
                .as_ref()
                .map_or(true, |filters| filters.admits(&subscriber, &self.sessions));
            if !admitted {
                self.stats.retained_withheld += 1;
                continue;
            }
            let mut details = Dict::new();
            details.insert("retained", true);
            if pattern {
                details.insert("topic", Value::Str(Cow::Borrowed(&event.topic)));
            }
            if let Some(publisher) = &event.publisher {
                disclose_publisher(&mut details, publisher);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serializer::Serializer;
    use crate::wire::OwnedPayload;

    fn event(topic: &str, publication: u64, payload_len: usize) -> EventCopy {
        EventCopy {
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
