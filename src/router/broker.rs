//! Broker tables: the subscriptions of one realm. One subscription per (topic, match policy),
//! shared by every subscriber (on every shard), so an EVENT is encoded once per serializer and
//! the same bytes go to all of them. Exact topics are found by a hash map, prefix and wildcard
//! patterns (pattern_based_subscription) by the [`PatternIndex`], which a PUBLISH consults only
//! when the realm has patterns. With several shards each entry also keeps the set of shards that
//! have local subscribers (written only by the owner's updates, see `cluster.rs`), and the entry
//! lives as long as that set is not empty, not as long as this shard has subscribers.

use slab::Slab;

use super::dealer::MatchPolicy;
use super::patterns::PatternIndex;
use super::{fast_map, is_sparse, FastMap, SessionKey};
use crate::serializer::Serializer;

/// What fan-out needs to know about a subscriber without touching the session table.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Subscriber {
    pub(crate) session: SessionKey,
    pub(crate) serializer: Serializer,
    /// WAMP session id (for the `exclude`/`eligible` lists).
    pub(crate) session_id: u64,
}

/// One subscription (a topic or pattern, with its match policy) and its subscribers.
pub(crate) struct Subscription {
    pub(crate) id: u64,
    pub(crate) topic: Box<str>,
    pub(crate) matching: MatchPolicy,
    /// When the owner created it (Unix ms), for the subscription meta API; every replica has
    /// the owner's value (`SubscriptionShards`).
    pub(crate) created: u64,
    /// Shards with local subscribers (bit k = shard k), as last broadcast by the owner; unused
    /// with one shard.
    pub(crate) shards: u64,
    /// This shard's subscribers. Dense for fast fan-out; `positions` makes removal O(1) (swap_remove).
    subscribers: Vec<Subscriber>,
    positions: FastMap<SessionKey, usize>,
    /// This shard's subscribers per serializer (index: `Serializer::index`).
    per_serializer: [u32; Serializer::COUNT],
}

impl Subscription {
    pub(crate) fn subscribers(&self) -> &[Subscriber] {
        &self.subscribers
    }

    /// True when a subscriber on this shard uses `serializer`.
    pub(crate) fn has_subscribers_in(&self, serializer: Serializer) -> bool {
        self.per_serializer[serializer.index()] > 0
    }

    fn remove(&mut self, session: SessionKey) -> bool {
        let Some(position) = self.positions.remove(&session) else {
            return false;
        };
        let removed = self.subscribers.swap_remove(position);
        self.per_serializer[removed.serializer.index()] -= 1;
        if let Some(moved) = self.subscribers.get(position) {
            self.positions.insert(moved.session, position);
        }
        true
    }
}

/// The subscriptions of one realm.
pub(crate) struct Subscriptions {
    entries: Slab<Subscription>,
    by_topic: FastMap<Box<str>, usize>,
    patterns: PatternIndex<usize>,
    by_id: FastMap<u64, usize>,
}

impl Subscriptions {
    pub(crate) fn new() -> Subscriptions {
        Subscriptions {
            entries: Slab::new(),
            by_topic: fast_map(),
            patterns: PatternIndex::new(),
            by_id: fast_map(),
        }
    }

    fn index_of(&self, topic: &str, matching: MatchPolicy) -> Option<usize> {
        match matching {
            MatchPolicy::Exact => self.by_topic.get(topic).copied(),
            MatchPolicy::Prefix => self.patterns.get_prefix(topic),
            MatchPolicy::Wildcard => self.patterns.get_wildcard(topic),
        }
    }

    fn create(&mut self, id: u64, topic: &str, matching: MatchPolicy, shards: u64) -> usize {
        let topic: Box<str> = topic.into();
        let index = self.entries.insert(Subscription {
            id,
            topic: topic.clone(),
            matching,
            created: 0,
            shards,
            subscribers: Vec::new(),
            positions: fast_map(),
            per_serializer: [0; Serializer::COUNT],
        });
        match matching {
            MatchPolicy::Exact => {
                self.by_topic.insert(topic, index);
            }
            MatchPolicy::Prefix => {
                self.patterns.insert_prefix(&topic, index);
            }
            MatchPolicy::Wildcard => {
                self.patterns.insert_wildcard(&topic, index);
            }
        }
        self.by_id.insert(id, index);
        index
    }

    fn delete(&mut self, index: usize) -> Subscription {
        let subscription = self.entries.remove(index);
        self.by_id.remove(&subscription.id);
        match subscription.matching {
            MatchPolicy::Exact => {
                self.by_topic.remove(&subscription.topic);
            }
            MatchPolicy::Prefix => {
                self.patterns.remove_prefix(&subscription.topic);
            }
            MatchPolicy::Wildcard => {
                self.patterns.remove_wildcard(&subscription.topic);
            }
        }
        if is_sparse(self.by_id.len(), self.by_id.capacity()) {
            self.shrink();
        }
        subscription
    }

    /// Gives memory back once the table is mostly empty (a session that held many
    /// subscriptions left): maps and slabs otherwise keep their largest capacity for good.
    #[cold]
    fn shrink(&mut self) {
        let keep = self.by_id.len() * 2;
        self.by_id.shrink_to(keep);
        self.by_topic.shrink_to(keep);
        self.entries.shrink_to_fit();
    }

    /// Applies the owner's shard set for `topic` (replica write): creates, updates or (with
    /// `shards == 0`) deletes the entry. Returns the local subscribers dropped by a delete or an
    /// id change, which the owner's ordering makes impossible (so callers only log them).
    pub(crate) fn set_shards(
        &mut self,
        id: u64,
        topic: &str,
        matching: MatchPolicy,
        shards: u64,
    ) -> usize {
        let mut dropped = 0;
        if let Some(index) = self.index_of(topic, matching) {
            if shards != 0 && self.entries[index].id == id {
                self.entries[index].shards = shards;
                return 0;
            }
            dropped += self.delete(index).subscribers.len();
        }
        if let Some(&index) = self.by_id.get(&id) {
            dropped += self.delete(index).subscribers.len();
        }
        if shards != 0 {
            self.create(id, topic, matching, shards);
        }
        dropped
    }

    /// Adds `subscriber` to the existing subscription of (`topic`, `matching`) (replicated
    /// tables); `None` when there is none.
    pub(crate) fn add_subscriber(
        &mut self,
        topic: &str,
        matching: MatchPolicy,
        subscriber: Subscriber,
    ) -> Option<u64> {
        let index = self.index_of(topic, matching)?;
        let subscription = &mut self.entries[index];
        if !subscription.positions.contains_key(&subscriber.session) {
            subscription
                .positions
                .insert(subscriber.session, subscription.subscribers.len());
            subscription.per_serializer[subscriber.serializer.index()] += 1;
            subscription.subscribers.push(subscriber);
        }
        Some(subscription.id)
    }

    /// Removes `session` from subscription `id` and keeps the entry (replicated tables):
    /// `Some(Some((topic, matching)))` when that was this shard's last subscriber of it,
    /// `Some(None)` when others remain, `None` when `session` was not a subscriber.
    pub(crate) fn remove_subscriber(
        &mut self,
        id: u64,
        session: SessionKey,
    ) -> Option<Option<(Box<str>, MatchPolicy)>> {
        let &index = self.by_id.get(&id)?;
        let subscription = &mut self.entries[index];
        if !subscription.remove(session) {
            return None;
        }
        Some(
            subscription
                .subscribers
                .is_empty()
                .then(|| (subscription.topic.clone(), subscription.matching)),
        )
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Subscription> {
        self.by_id.get(&id).map(|&index| &self.entries[index])
    }

    /// Records when the owner created subscription `id`.
    pub(crate) fn set_created(&mut self, id: u64, created: u64) {
        if let Some(&index) = self.by_id.get(&id) {
            self.entries[index].created = created;
        }
    }

    /// Every subscription, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Subscription> {
        self.entries.iter().map(|(_, subscription)| subscription)
    }

    /// The exact-match subscription of `topic` (the PUBLISH hot path).
    #[inline]
    pub(crate) fn exact(&self, topic: &str) -> Option<&Subscription> {
        self.by_topic.get(topic).map(|&index| &self.entries[index])
    }

    /// The subscription of (`topic`, `matching`).
    pub(crate) fn lookup(&self, topic: &str, matching: MatchPolicy) -> Option<&Subscription> {
        self.index_of(topic, matching)
            .map(|index| &self.entries[index])
    }

    /// Whether any prefix or wildcard subscription exists (else a PUBLISH needs no pattern
    /// walk).
    #[inline]
    pub(crate) fn has_patterns(&self) -> bool {
        !self.patterns.is_empty()
    }

    /// Calls `f` with each prefix and wildcard subscription whose pattern matches `topic`.
    pub(crate) fn for_each_pattern_match(&self, topic: &str, mut f: impl FnMut(&Subscription)) {
        self.patterns
            .for_each_match(topic, |index| f(&self.entries[index]));
    }

    pub(crate) fn len(&self) -> usize {
        debug_assert_eq!(self.entries.len(), self.by_id.len());
        debug_assert_eq!(
            self.entries.len(),
            self.by_topic.len() + self.patterns.len()
        );
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(key: usize) -> Subscriber {
        Subscriber {
            session: SessionKey(key),
            serializer: Serializer::Json,
            session_id: key as u64,
        }
    }

    #[test]
    fn a_topic_has_one_subscription_shared_by_its_subscribers() {
        let mut table = Subscriptions::new();
        assert_eq!(table.set_shards(7, "t", MatchPolicy::Exact, 0b1), 0);
        assert_eq!(
            table.add_subscriber("t", MatchPolicy::Exact, subscriber(1)),
            Some(7)
        );
        assert_eq!(
            table.add_subscriber("t", MatchPolicy::Exact, subscriber(2)),
            Some(7)
        );
        assert_eq!(
            table.add_subscriber("t", MatchPolicy::Exact, subscriber(1)),
            Some(7),
            "subscribing again is harmless"
        );
        assert_eq!(table.exact("t").unwrap().subscribers().len(), 2);
        assert_eq!(table.remove_subscriber(7, SessionKey(3)), None);
        assert_eq!(table.remove_subscriber(7, SessionKey(1)), Some(None));
        assert_eq!(table.exact("t").unwrap().subscribers(), &[subscriber(2)]);
    }

    #[test]
    fn swap_remove_keeps_positions_right() {
        let mut table = Subscriptions::new();
        table.set_shards(7, "t", MatchPolicy::Exact, 0b1);
        for key in 1..=5 {
            table.add_subscriber("t", MatchPolicy::Exact, subscriber(key));
        }
        for key in [2, 5, 1, 4] {
            assert_eq!(
                table.remove_subscriber(7, SessionKey(key)),
                Some(None),
                "removing {key}"
            );
        }
        assert_eq!(
            table.remove_subscriber(7, SessionKey(3)),
            Some(Some(("t".into(), MatchPolicy::Exact)))
        );
        assert!(table.exact("t").unwrap().subscribers().is_empty());
    }

    #[test]
    fn replicated_entries_follow_the_owner_not_the_local_subscribers() {
        let mut table = Subscriptions::new();
        assert_eq!(
            table.add_subscriber("t", MatchPolicy::Exact, subscriber(1)),
            None
        );
        assert_eq!(table.set_shards(7, "t", MatchPolicy::Exact, 0b01), 0);
        assert_eq!(
            table.add_subscriber("t", MatchPolicy::Exact, subscriber(1)),
            Some(7)
        );
        assert_eq!(
            table.remove_subscriber(7, SessionKey(1)),
            Some(Some(("t".into(), MatchPolicy::Exact)))
        );
        assert_eq!(table.remove_subscriber(7, SessionKey(1)), None);
        assert_eq!(
            table.exact("t").unwrap().shards,
            0b01,
            "kept until the owner says"
        );
        assert_eq!(table.set_shards(7, "t", MatchPolicy::Exact, 0b10), 0);
        assert_eq!(table.exact("t").unwrap().shards, 0b10);
        assert_eq!(table.set_shards(7, "t", MatchPolicy::Exact, 0), 0);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn a_topic_may_be_subscribed_exact_and_as_patterns_as_separate_subscriptions() {
        let mut table = Subscriptions::new();
        table.set_shards(1, "com.a", MatchPolicy::Exact, 0b1);
        table.set_shards(2, "com.a", MatchPolicy::Prefix, 0b1);
        table.set_shards(3, "com..b", MatchPolicy::Wildcard, 0b1);
        assert!(table.has_patterns());
        assert_eq!(table.exact("com.a").unwrap().id, 1);
        assert_eq!(table.lookup("com.a", MatchPolicy::Prefix).unwrap().id, 2);
        assert_eq!(table.lookup("com..b", MatchPolicy::Wildcard).unwrap().id, 3);
        assert!(table.lookup("com..b", MatchPolicy::Prefix).is_none());
        let matches = |topic: &str| {
            let mut ids = Vec::new();
            table.for_each_pattern_match(topic, |subscription| ids.push(subscription.id));
            ids.sort_unstable();
            ids
        };
        assert_eq!(matches("com.a.b"), vec![2, 3]);
        assert_eq!(
            matches("com.a"),
            vec![2],
            "the exact one is not a pattern match"
        );
        assert_eq!(matches("com.x.b"), vec![3]);
        assert_eq!(matches("org.a"), Vec::<u64>::new());
        assert_eq!(
            table.add_subscriber("com..b", MatchPolicy::Wildcard, subscriber(1)),
            Some(3)
        );
        assert_eq!(
            table.remove_subscriber(3, SessionKey(1)),
            Some(Some(("com..b".into(), MatchPolicy::Wildcard)))
        );
        table.set_shards(3, "com..b", MatchPolicy::Wildcard, 0);
        table.set_shards(2, "com.a", MatchPolicy::Prefix, 0);
        assert!(
            !table.has_patterns(),
            "deleting the patterns empties the index"
        );
        assert_eq!(table.len(), 1);
    }
}
