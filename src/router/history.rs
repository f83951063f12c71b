//! Event history (digest §9.3, `event_history`): per configured realm, the topics (exact or
//! pattern, `[[realm.history]]`) whose events are kept, and the meta procedure
//! `wamp.subscription.get_events` that reads them back.
//!
//! History is kept per *subscription*, as the spec says: each configured (uri, match) is a
//! subscription whose id exists from the start, whether or not anyone subscribes (the spec's
//! "dummy" subscription, as Crossbar.io does it). Every shard derives the same ids from the
//! configuration (`reserve_ids`), the owner shard hands out the reserved id when a client
//! subscribes to that (uri, match), and so `get_events(subscription.id)` works with the id a
//! SUBSCRIBED gave. The events live at the owner shard of the configured uri (DESIGN.md: a
//! PUBLISH to a topic with history sends one extra copy there), in arrival order, bounded by the
//! entry's `limit` (events) and `max_bytes`: the oldest go first, and an event bigger than the
//! whole bound is not kept. Events published with session-id lists (`exclude`, `eligible`) are
//! not kept (the spec: those ids mean nothing to a later session); authid/authrole lists are
//! kept and re-applied to whoever asks.
//!
//! `get_events(subscription, [limit], **filters)`: the asking shard checks the arguments and
//! asks the owner (the gather primitive, aimed at one shard), which selects and returns the
//! events; the asking shard writes the RESULT in its caller's serializer. Two forms:
//! * the spec's: keyword filters `reverse`, `limit`, `from_time`/`after_time`/`before_time`/
//!   `until_time` (RFC 3339), `topic`, `from_publication`/`after_publication`/
//!   `before_publication`/`until_publication`, AND-combined, in order of arrival unless
//!   `reverse`;
//! * Crossbar.io's: `get_events(subscription, limit)` with `limit` positional, which returns the
//!   newest `limit` events newest first, as Crossbar.io does (keyword filters still apply).
//!
//! The answer is one argument, the list of events, each `{timestamp, subscription,
//! publication, topic, details, args?, kwargs?}` (`topic` also at the top, as Crossbar.io has
//! it); `details` are the EVENT's: `topic` for a pattern subscription, the publisher when it
//! was disclosed.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::admission::Admitted;
use super::dealer::MatchPolicy;
use super::gather::{Query, Then};
use super::patterns::PatternIndex;
use super::pubsub::{disclose_publisher, EventCopy};
use super::realm::RealmId;
use super::shard_msg::{owner_shard, AckTo, Applied, ShardMsgKind};
use super::{fast_map, uri, Action, FastMap, RealmConfig, Router, SessionKey, ShardId};
use crate::serializer::Serializer;
use crate::wire::{self, code, Dict, Message, OwnedPayload, Payload, Value};

/// One `[[realm.history]]` entry of the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryConfig {
    pub uri: String,
    pub matching: MatchPolicy,
    /// Events kept; past it the oldest goes.
    pub limit: usize,
    /// Bytes the kept events may hold (payload, topic and lists, as retention counts them).
    pub max_bytes: usize,
}

/// The error of `get_events` for a live subscription that keeps no history (Crossbar.io's URI;
/// the spec names none).
pub const HISTORY_UNAVAILABLE: &str = "wamp.error.history_unavailable";

/// One kept event: when it was published and what it was published with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HistoryRecord {
    /// Wall-clock time of the PUBLISH on the publisher's shard, ms since the Unix epoch.
    pub(crate) timestamp_ms: u64,
    pub(crate) event: EventCopy,
}

/// One configured history subscription of a realm.
struct HistoryTopic {
    id: u64,
    matching: MatchPolicy,
    owner: ShardId,
    limit: usize,
    max_bytes: usize,
    /// The kept events with their bytes, oldest first: on the owner shard only.
    log: VecDeque<(Arc<HistoryRecord>, usize)>,
    bytes: usize,
}

/// What became of an event offered to one history subscription.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Kept, and this many older events went to make room.
    Kept { evicted: usize },
    /// Bigger than the subscription's whole `max_bytes`: not kept.
    TooBig,
}

/// The history subscriptions of one realm (every shard knows them; only each one's owner
/// holds its events).
#[derive(Default)]
pub(crate) struct HistoryTopics {
    topics: Vec<HistoryTopic>,
    exact: FastMap<Box<str>, usize>,
    patterns: PatternIndex<usize>,
    by_id: FastMap<u64, usize>,
}

impl HistoryTopics {
    pub(crate) fn new(configs: &[HistoryConfig], reserved: &[(u64, ShardId)]) -> HistoryTopics {
        assert_eq!(configs.len(), reserved.len(), "one reserved id per entry");
        let mut topics = HistoryTopics {
            topics: Vec::with_capacity(configs.len()),
            exact: fast_map(),
            patterns: PatternIndex::new(),
            by_id: fast_map(),
        };
        for (index, (config, &(id, owner))) in configs.iter().zip(reserved).enumerate() {
            topics.topics.push(HistoryTopic {
                id,
                matching: config.matching,
                owner,
                limit: config.limit,
                max_bytes: config.max_bytes,
                log: VecDeque::new(),
                bytes: 0,
            });
            match config.matching {
                MatchPolicy::Exact => {
                    topics.exact.insert(config.uri.as_str().into(), index);
                }
                MatchPolicy::Prefix => {
                    topics.patterns.insert_prefix(&config.uri, index);
                }
                MatchPolicy::Wildcard => {
                    topics.patterns.insert_wildcard(&config.uri, index);
                }
            }
            topics.by_id.insert(id, index);
        }
        topics
    }

    /// No history configured: a PUBLISH need not look further.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// The reserved id of (`uri`, `matching`), when it keeps history.
    pub(crate) fn reserved_id(&self, uri: &str, matching: MatchPolicy) -> Option<u64> {
        let index = match matching {
            MatchPolicy::Exact => self.exact.get(uri).copied(),
            MatchPolicy::Prefix => self.patterns.get_prefix(uri),
            MatchPolicy::Wildcard => self.patterns.get_wildcard(uri),
        };
        index.map(|index| self.topics[index].id)
    }

    pub(crate) fn is_reserved(&self, id: u64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// (owner shard, is a pattern) of history subscription `id`.
    fn find(&self, id: u64) -> Option<(ShardId, bool)> {
        let topic = &self.topics[*self.by_id.get(&id)?];
        Some((topic.owner, topic.matching != MatchPolicy::Exact))
    }

    /// Whether `topic` falls under some history subscription.
    fn covers(&self, topic: &str) -> bool {
        if self.topics.is_empty() {
            return false;
        }
        let mut covered = self.exact.contains_key(topic);
        if !covered && !self.patterns.is_empty() {
            self.patterns.for_each_match(topic, |_| covered = true);
        }
        covered
    }

    /// (owner, id) of every history subscription `topic` falls under.
    fn matching(&self, topic: &str) -> Vec<(ShardId, u64)> {
        let mut matched = Vec::new();
        let mut push = |index: usize| {
            let entry = &self.topics[index];
            matched.push((entry.owner, entry.id));
        };
        if let Some(&index) = self.exact.get(topic) {
            push(index);
        }
        if !self.patterns.is_empty() {
            self.patterns.for_each_match(topic, push);
        }
        matched
    }

    /// Keeps `record` (of `bytes`) in history subscription `id`; `None` when this realm has no
    /// such subscription.
    fn append(&mut self, id: u64, record: &Arc<HistoryRecord>, bytes: usize) -> Option<Appended> {
        let topic = &mut self.topics[*self.by_id.get(&id)?];
        // (A zero limit, which the config refuses, keeps nothing.)
        if bytes > topic.max_bytes || topic.limit == 0 {
            return Some(Appended::TooBig);
        }
        let mut evicted = 0;
        while topic.log.len() >= topic.limit || topic.bytes + bytes > topic.max_bytes {
            let (_, old) = topic.log.pop_front().expect("a full log holds events");
            topic.bytes -= old;
            evicted += 1;
        }
        topic.log.push_back((record.clone(), bytes));
        topic.bytes += bytes;
        Some(Appended::Kept { evicted })
    }

    /// The events of history subscription `id` that `query` selects for (`authid`,
    /// `authrole`); `Err` with the reason when a `*_publication` filter names an event this
    /// history does not hold.
    fn select(
        &self,
        id: u64,
        query: &HistoryQuery,
        (authid, authrole): (&str, &str),
    ) -> Result<Vec<Arc<HistoryRecord>>, String> {
        let Some(&index) = self.by_id.get(&id) else {
            return Ok(Vec::new());
        };
        let log = &self.topics[index].log;
        let position = |publication: u64| {
            log.iter()
                .position(|(record, _)| record.event.publication == publication)
                .ok_or_else(|| {
                    format!("publication {publication} is not in the history of subscription {id}")
                })
        };
        // The `*_publication` filters cut the log to a range [low, high) of arrival order.
        let (mut low, mut high) = (0, log.len());
        if let Some(publication) = query.from_publication {
            low = low.max(position(publication)?);
        }
        if let Some(publication) = query.after_publication {
            low = low.max(position(publication)? + 1);
        }
        if let Some(publication) = query.before_publication {
            high = high.min(position(publication)?);
        }
        if let Some(publication) = query.until_publication {
            high = high.min(position(publication)? + 1);
        }
        if low >= high {
            return Ok(Vec::new());
        }
        let selected = |(record, _): &&(Arc<HistoryRecord>, usize)| {
            query.admits(record)
                && record
                    .event
                    .filters
                    .as_ref()
                    .map_or(true, |filters| filters.admits_identity(authid, authrole))
        };
        let limit = query.limit.unwrap_or(usize::MAX);
        let range = log.range(low..high);
        let picked: Vec<_> = if query.reverse {
            range
                .rev()
                .filter(selected)
                .take(limit)
                .map(|(record, _)| record.clone())
                .collect()
        } else {
            range
                .filter(selected)
                .take(limit)
                .map(|(record, _)| record.clone())
                .collect()
        };
        Ok(picked)
    }

    /// Events held here now, and their bytes.
    pub(crate) fn held(&self) -> (usize, usize) {
        self.topics.iter().fold((0, 0), |(events, bytes), topic| {
            (events + topic.log.len(), bytes + topic.bytes)
        })
    }
}

/// The ids of every realm's history subscriptions, as every shard derives them from the same
/// configuration: the owner of each entry hands out its next id in configuration order, so
/// no message is needed. Returns them per realm (config order) and, per shard, how many ids
/// it handed out (its id sequence continues after them).
pub(crate) fn reserve_ids(
    realms: &[RealmConfig],
    shards: usize,
) -> (Vec<Vec<(u64, ShardId)>>, Vec<u64>) {
    let mut handed_out = vec![0u64; shards];
    let reserved = realms
        .iter()
        .map(|realm| {
            realm
                .history
                .iter()
                .map(|entry| {
                    let owner = owner_shard(&realm.name, &entry.uri, shards);
                    // The scheme of `ScopedIds`: n * shards + shard + 1.
                    let id = handed_out[owner] * shards as u64 + owner as u64 + 1;
                    handed_out[owner] += 1;
                    (id, owner)
                })
                .collect()
        })
        .collect();
    (reserved, handed_out)
}

/// The filters of a `get_events` call (times in ns since the Unix epoch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HistoryQuery {
    reverse: bool,
    limit: Option<usize>,
    from_time: Option<i128>,
    after_time: Option<i128>,
    before_time: Option<i128>,
    until_time: Option<i128>,
    topic: Option<Box<str>>,
    from_publication: Option<u64>,
    after_publication: Option<u64>,
    before_publication: Option<u64>,
    until_publication: Option<u64>,
}

/// The keyword arguments `get_events` takes.
pub(crate) const FILTERS: [&str; 11] = [
    "reverse",
    "limit",
    "from_time",
    "after_time",
    "before_time",
    "until_time",
    "topic",
    "from_publication",
    "after_publication",
    "before_publication",
    "until_publication",
];

impl HistoryQuery {
    /// The time and topic filters (the publication ones cut the range before).
    fn admits(&self, record: &HistoryRecord) -> bool {
        let at = i128::from(record.timestamp_ms) * 1_000_000;
        self.from_time.map_or(true, |time| at >= time)
            && self.after_time.map_or(true, |time| at > time)
            && self.before_time.map_or(true, |time| at < time)
            && self.until_time.map_or(true, |time| at <= time)
            && self
                .topic
                .as_deref()
                .map_or(true, |topic| *record.event.topic == *topic)
    }

    /// `get_events`' arguments: the subscription id and the filters, or what is wrong with
    /// them.
    fn parse(payload: &Payload<'_>) -> Result<(u64, HistoryQuery), String> {
        let (args, kwargs) = wire::decode_payload_values(payload)
            .map_err(|error| format!("the arguments cannot be read: {error}"))?;
        let subscription = match args.first() {
            Some(value) => value
                .as_u64()
                .ok_or_else(|| format!("the subscription id must be an integer, got {value:?}"))?,
            None => return Err("get_events(subscription, ...) needs a subscription id".into()),
        };
        if args.len() > 2 {
            return Err(format!(
                "get_events takes (subscription, [limit]) positionally, got {} arguments",
                args.len()
            ));
        }
        let mut query = HistoryQuery::default();
        // Crossbar.io's form: the newest `limit` events, newest first.
        if let Some(limit) = args.get(1) {
            query.limit = Some(positive(limit, "limit")?);
            query.reverse = true;
        }
        for (key, value) in kwargs.iter().flat_map(|kwargs| kwargs.iter()) {
            match key {
                "reverse" => {
                    query.reverse = value
                        .as_bool()
                        .ok_or_else(|| format!("reverse must be a boolean, got {value:?}"))?;
                }
                "limit" if args.len() > 1 => {
                    return Err("limit is given both positionally and by keyword".into());
                }
                "limit" => query.limit = Some(positive(value, "limit")?),
                "from_time" => query.from_time = Some(time_of(value, key)?),
                "after_time" => query.after_time = Some(time_of(value, key)?),
                "before_time" => query.before_time = Some(time_of(value, key)?),
                "until_time" => query.until_time = Some(time_of(value, key)?),
                "topic" => {
                    let topic = value
                        .as_str()
                        .ok_or_else(|| format!("topic must be a URI string, got {value:?}"))?;
                    query.topic = Some(topic.into());
                }
                "from_publication" => query.from_publication = Some(id_of(value, key)?),
                "after_publication" => query.after_publication = Some(id_of(value, key)?),
                "before_publication" => query.before_publication = Some(id_of(value, key)?),
                "until_publication" => query.until_publication = Some(id_of(value, key)?),
                _ => {
                    return Err(format!(
                        "get_events has no argument {key:?} (it takes {})",
                        FILTERS.join(", ")
                    ))
                }
            }
        }
        Ok((subscription, query))
    }
}

fn positive(value: &Value<'_>, key: &str) -> Result<usize, String> {
    match value.as_u64() {
        Some(n) if n > 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => Err(format!("{key} must be a positive integer, got {value:?}")),
    }
}

fn id_of(value: &Value<'_>, key: &str) -> Result<u64, String> {
    value
        .as_u64()
        .filter(|&id| id > 0)
        .ok_or_else(|| format!("{key} must be a publication id, got {value:?}"))
}

fn time_of(value: &Value<'_>, key: &str) -> Result<i128, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("{key} must be an RFC 3339 timestamp string, got {value:?}"))?;
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|time| time.unix_timestamp_nanos())
        .map_err(|error| format!("{key}: {text:?} is not an RFC 3339 timestamp ({error})"))
}

/// `timestamp` of an answer: RFC 3339 in UTC with milliseconds, as the spec shows it
/// (`yyyy-MM-ddThh:mm:ss.SSSZ`).
pub(crate) fn rfc3339_millis(unix_ms: u64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|time| time.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_string())
}

/// A PUBLISH's copy for the history subscriptions one owner shard keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HistoryAppend {
    pub(crate) realm: Arc<str>,
    pub(crate) subscriptions: Vec<u64>,
    pub(crate) record: Arc<HistoryRecord>,
    /// An acknowledged PUBLISH: its PUBLISHED waits for this `Applied`, so a publisher told
    /// "published" finds the event in the history from any session on any shard.
    pub(crate) ack: Option<AckTo>,
}

impl Router {
    /// A PUBLISH in a realm with history configured: a copy to the owner of each history
    /// subscription its topic falls under (one per owner shard), unless it carries session-id
    /// lists.
    ///
    /// With `ack` (an acknowledged PUBLISH: its ticket), each other owner shard reports when it
    /// has kept the event; answers how many will (0: PUBLISHED may go at once).
    pub(super) fn record_history(
        &mut self,
        me: Admitted,
        options: &Dict<'_>,
        topic: &str,
        (publication, payload): (u64, &Payload<'_>),
        ack: Option<u64>,
        out: &mut Vec<Action>,
    ) -> usize {
        let matched = self.history_matching(me.realm, topic);
        if matched.is_empty() {
            return 0;
        }
        let event = self.event_copy(me, options, topic, (publication, payload));
        self.keep_in_history(me.realm, matched, event, ack, out)
    }

    /// (owner shard, id) of each history subscription of `realm` that `topic` falls under.
    pub(super) fn history_matching(&self, realm: RealmId, topic: &str) -> Vec<(ShardId, u64)> {
        self.realms.get(realm).history.matching(topic)
    }

    /// Sends `event` to the owners of the history subscriptions `matched` (its topic's, from
    /// `history_matching`), one copy per owner shard (the router's own meta events come here
    /// too). With `ack` (a ticket of this shard), each other owner shard reports `Applied`;
    /// answers how many will.
    pub(super) fn keep_in_history(
        &mut self,
        realm: RealmId,
        mut matched: Vec<(ShardId, u64)>,
        event: EventCopy,
        ack: Option<u64>,
        out: &mut Vec<Action>,
    ) -> usize {
        if event
            .filters
            .as_ref()
            .is_some_and(|filters| filters.exclude.is_some() || filters.eligible.is_some())
        {
            self.stats.history_skipped += 1;
            return 0;
        }
        // A kept event is read back as values for whoever asks, in any serializer. What cannot
        // be read so (a transparent payload; what only CBOR says: a tag, a non-text map key)
        // is still forwarded between sessions that can take it, but not kept.
        let payload = event.payload.as_payload();
        if let Err(error) = readable_as_values(&payload) {
            self.stats.history_skipped += 1;
            if let Some(suppressed) = self.logs.history_unreadable.allow(self.now) {
                tracing::info!(
                    topic = %event.topic,
                    suppressed,
                    "event not kept in history: its payload cannot be read as values ({error})"
                );
            }
            return 0;
        }
        let me = self.cluster.shard;
        let mut acks = 0;
        let record = Arc::new(HistoryRecord {
            timestamp_ms: self.wall_clock_ms(),
            event,
        });
        matched.sort_unstable();
        let realm = self.realms.get(realm).name.clone();
        let mut rest = &matched[..];
        while let Some(&(owner, _)) = rest.first() {
            let count = rest.iter().take_while(|(shard, _)| *shard == owner).count();
            let remote_ack = ack
                .filter(|_| owner != me)
                .map(|ticket| AckTo { origin: me, ticket });
            acks += usize::from(remote_ack.is_some());
            let append = HistoryAppend {
                realm: realm.clone(),
                subscriptions: rest[..count].iter().map(|&(_, id)| id).collect(),
                record: record.clone(),
                ack: remote_ack,
            };
            rest = &rest[count..];
            let msg = ShardMsgKind::HistoryAppend(Box::new(append));
            self.send_to_shard(owner, msg, out);
        }
        acks
    }

    /// Whether `topic` in `realm` falls under a history subscription.
    pub(super) fn keeps_history(&self, realm: RealmId, topic: &str) -> bool {
        self.realms.get(realm).history.covers(topic)
    }

    /// The owner's part: each history subscription keeps the event within its bounds.
    pub(super) fn handle_history_append(&mut self, append: HistoryAppend, out: &mut Vec<Action>) {
        let ack = append.ack;
        self.store_history_append(append);
        if let Some(ack) = ack {
            let applied = ShardMsgKind::Applied(Applied { ticket: ack.ticket });
            self.send_to_shard(ack.origin, applied, out);
        }
    }

    fn store_history_append(&mut self, append: HistoryAppend) {
        let Some(realm) = self.realms.find(&append.realm) else {
            // History is configured only for configured realms, which every shard has.
            self.stats.shard_messages_ignored += 1;
            tracing::error!(realm = %append.realm, "history for a realm this shard lacks");
            return;
        };
        let bytes = append.record.event.bytes();
        let history = &mut self.realms.get_mut(realm).history;
        for id in append.subscriptions {
            match history.append(id, &append.record, bytes) {
                Some(Appended::Kept { evicted }) => {
                    self.stats.history_recorded += 1;
                    self.stats.history_evicted += evicted as u64;
                }
                Some(Appended::TooBig) => {
                    self.stats.history_declined += 1;
                    if let Some(suppressed) = self.logs.history_declined.allow(self.now) {
                        tracing::warn!(
                            realm = %append.realm,
                            subscription = id,
                            topic = %append.record.event.topic,
                            bytes,
                            suppressed,
                            "event not kept in history: bigger than the history's max_bytes"
                        );
                    }
                }
                None => {
                    self.stats.shard_messages_ignored += 1;
                    tracing::error!(
                        realm = %append.realm,
                        subscription = id,
                        "history for a subscription that keeps none"
                    );
                }
            }
        }
    }

    /// `wamp.subscription.get_events`: checks the arguments and the subscription here, and
    /// asks the history's owner shard.
    pub(super) fn get_events(
        &mut self,
        me: Admitted,
        request: u64,
        payload: Payload<'_>,
        out: &mut Vec<Action>,
    ) {
        let refuse = |router: &mut Router, out: &mut Vec<Action>, error, text: String| {
            router.send_error(out, me.key, code::CALL, request, error, text);
        };
        let (subscription, query) = match HistoryQuery::parse(&payload) {
            Ok(parsed) => parsed,
            Err(text) => return refuse(self, out, uri::INVALID_ARGUMENT, text),
        };
        let realm = self.realms.get(me.realm);
        let Some((owner, pattern)) = realm.history.find(subscription) else {
            if realm.subscriptions.get(subscription).is_some() {
                let text = format!("subscription {subscription} keeps no event history");
                return refuse(self, out, HISTORY_UNAVAILABLE, text);
            }
            let text = format!("no subscription {subscription} in this realm");
            return refuse(self, out, uri::NO_SUCH_SUBSCRIPTION, text);
        };
        let identity = self.sessions[me.key]
            .identity()
            .expect("admitted sessions are established");
        self.stats.history_queries += 1;
        let query = Query::History {
            realm: realm.name.clone(),
            subscription,
            query: Box::new(query),
            authid: identity.authid.clone(),
            authrole: identity.authrole.clone(),
        };
        let then = Then::HistoryResult {
            caller: me.key,
            session_id: me.id,
            request,
            subscription,
            pattern,
        };
        self.ask(owner, query, then, out);
    }

    /// The owner's answer to a history query.
    pub(super) fn select_history(
        &self,
        realm: &str,
        subscription: u64,
        query: &HistoryQuery,
        identity: (&str, &str),
    ) -> Result<Vec<Arc<HistoryRecord>>, String> {
        match self.realms.find(realm) {
            Some(realm) => self
                .realms
                .get(realm)
                .history
                .select(subscription, query, identity),
            None => Ok(Vec::new()),
        }
    }

    /// RESULT of `get_events` to the caller (if it is still session `session_id`): the
    /// selected events, in the caller's serializer.
    pub(super) fn answer_history(
        &mut self,
        (caller, session_id, request): (SessionKey, u64, u64),
        (subscription, pattern): (u64, bool),
        selected: Result<Vec<Arc<HistoryRecord>>, String>,
        out: &mut Vec<Action>,
    ) {
        if !self.sessions.alive(caller, session_id) {
            return;
        }
        let serializer = self.sessions[caller].serializer;
        match answer_payload(serializer, (subscription, pattern), selected) {
            Ok(payload) => {
                let result = Message::Result {
                    request,
                    details: Dict::new(),
                    payload: payload.as_payload(),
                };
                self.send(out, caller, serializer, &result);
            }
            Err(text) => {
                let error = uri::INVALID_ARGUMENT;
                self.send_error(out, caller, code::CALL, request, error, text);
            }
        }
    }
}

/// The RESULT's payload: one argument, the list of the selected events; or why there is none.
fn answer_payload(
    serializer: Serializer,
    (subscription, pattern): (u64, bool),
    selected: Result<Vec<Arc<HistoryRecord>>, String>,
) -> Result<OwnedPayload, String> {
    let records = selected?;
    let events = records
        .iter()
        .map(|record| event_value(record, subscription, pattern))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            // Kept payloads were read once already; a failure here is a router bug.
            tracing::error!(subscription, "a kept event cannot be read: {error}");
            "a kept event cannot be read".to_string()
        })?;
    wire::payload_from_args(serializer, &[Value::List(events)], None)
        .map_err(|error| format!("the events cannot be written for this session: {error}"))
}

/// Whether a payload reads as Arguments/ArgumentsKw values, as [`event_value`] needs.
fn readable_as_values(payload: &Payload<'_>) -> Result<(), String> {
    if payload.is_transparent() {
        return Err("a transparent (binary) payload".into());
    }
    wire::decode_payload_values(payload)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// One event of the answer.
fn event_value(
    record: &HistoryRecord,
    subscription: u64,
    pattern: bool,
) -> Result<Value<'_>, wire::DecodeError> {
    let event = &record.event;
    let payload = event.payload.as_payload();
    let (args, kwargs) = wire::decode_payload_values(&payload)?;
    let mut details = Dict::new();
    if pattern {
        details.insert("topic", Value::Str(Cow::Borrowed(&event.topic)));
    }
    if let Some(publisher) = &event.publisher {
        disclose_publisher(&mut details, publisher);
    }
    let mut value = Dict::with_capacity(7);
    value.insert(
        "timestamp",
        Value::Str(rfc3339_millis(record.timestamp_ms).into()),
    );
    value.insert("subscription", Value::UInt(subscription));
    value.insert("publication", Value::UInt(event.publication));
    value.insert("topic", Value::Str(Cow::Borrowed(&event.topic)));
    value.insert("details", Value::Dict(details));
    if !args.is_empty() || kwargs.is_some() {
        value.insert("args", Value::List(args));
    }
    if let Some(kwargs) = kwargs {
        value.insert("kwargs", Value::Dict(kwargs));
    }
    Ok(Value::Dict(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serializer::Serializer;
    use crate::wire::OwnedPayload;

    fn record(topic: &str, publication: u64, timestamp_ms: u64) -> Arc<HistoryRecord> {
        Arc::new(HistoryRecord {
            timestamp_ms,
            event: EventCopy {
                topic: topic.into(),
                publication,
                publisher: None,
                filters: None,
                payload: OwnedPayload {
                    ser: Serializer::Json,
                    count: 1,
                    raw: b"[1]".to_vec().into(),
                },
            },
        })
    }

    fn topics(limit: usize, max_bytes: usize) -> HistoryTopics {
        let config = HistoryConfig {
            uri: "com.a".into(),
            matching: MatchPolicy::Prefix,
            limit,
            max_bytes,
        };
        HistoryTopics::new(&[config], &[(7, 0)])
    }

    fn publications(records: &[Arc<HistoryRecord>]) -> Vec<u64> {
        records
            .iter()
            .map(|record| record.event.publication)
            .collect()
    }

    #[test]
    fn the_oldest_events_go_past_the_count_and_the_bytes() {
        let mut history = topics(3, usize::MAX);
        for publication in 1..=5 {
            let record = record("com.a.x", publication, publication);
            history.append(7, &record, record.event.bytes());
        }
        let all = history.select(7, &HistoryQuery::default(), ("a", "r"));
        assert_eq!(publications(&all.unwrap()), [3, 4, 5]);

        let one = record("com.a.x", 1, 1).event.bytes();
        let mut history = topics(100, 2 * one);
        for publication in 1..=3 {
            let record = record("com.a.x", publication, publication);
            let appended = history.append(7, &record, record.event.bytes());
            let evicted = usize::from(publication == 3);
            assert_eq!(appended, Some(Appended::Kept { evicted }));
        }
        assert_eq!(history.held(), (2, 2 * one));
        let big = record("com.a.x", 9, 9);
        assert_eq!(history.append(7, &big, 2 * one + 1), Some(Appended::TooBig));
        assert_eq!(
            history.append(8, &big, 1),
            None,
            "not a history subscription"
        );
    }

    #[test]
    fn filters_combine() {
        let mut history = topics(100, usize::MAX);
        for publication in 1..=6 {
            let topic = if publication % 2 == 0 {
                "com.a.even"
            } else {
                "com.a.odd"
            };
            let record = record(topic, publication * 10, publication * 1000);
            history.append(7, &record, 1);
        }
        let select = |query: HistoryQuery| {
            history
                .select(7, &query, ("a", "r"))
                .map(|records| publications(&records))
        };
        assert_eq!(
            select(HistoryQuery::default()).unwrap(),
            [10, 20, 30, 40, 50, 60]
        );
        let newest_two = HistoryQuery {
            reverse: true,
            limit: Some(2),
            ..HistoryQuery::default()
        };
        assert_eq!(select(newest_two).unwrap(), [60, 50]);
        let window = HistoryQuery {
            after_publication: Some(20),
            until_publication: Some(50),
            topic: Some("com.a.odd".into()),
            ..HistoryQuery::default()
        };
        assert_eq!(select(window).unwrap(), [30, 50]);
        let times = HistoryQuery {
            from_time: Some(2_000_000_000),
            before_time: Some(5_000_000_000),
            ..HistoryQuery::default()
        };
        assert_eq!(select(times).unwrap(), [20, 30, 40]);
        let times = HistoryQuery {
            after_time: Some(2_000_000_000),
            until_time: Some(5_000_000_000),
            ..HistoryQuery::default()
        };
        assert_eq!(select(times).unwrap(), [30, 40, 50]);
        let page = HistoryQuery {
            reverse: true,
            before_publication: Some(40),
            from_publication: Some(20),
            ..HistoryQuery::default()
        };
        assert_eq!(select(page).unwrap(), [30, 20]);
        let unknown = HistoryQuery {
            after_publication: Some(99),
            ..HistoryQuery::default()
        };
        assert!(select(unknown).unwrap_err().contains("99"));
    }

    #[test]
    fn every_shard_derives_the_same_ids_and_continues_after_them() {
        let mut realm = RealmConfig::new("realm1");
        for uri in ["a", "b", "c", "d", "e"] {
            realm.history.push(HistoryConfig {
                uri: uri.into(),
                matching: MatchPolicy::Exact,
                limit: 1,
                max_bytes: 1,
            });
        }
        let (ids, handed_out) = reserve_ids(&[realm.clone()], 3);
        assert_eq!(ids, reserve_ids(&[realm], 3).0);
        let mut all: Vec<u64> = ids[0].iter().map(|&(id, _)| id).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 5, "distinct ids");
        for &(id, owner) in &ids[0] {
            assert_eq!((id - 1) % 3, owner as u64, "the owner's id scheme");
            assert!(
                (id - 1) / 3 < handed_out[owner],
                "below where the owner continues"
            );
        }
        assert_eq!(handed_out.iter().sum::<u64>(), 5);
    }

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_796_217_532_042),
            "2026-12-02T13:18:52.042Z"
        );
        let parsed = time_of(&Value::Str("2026-12-02T14:18:52.042+01:00".into()), "t");
        assert_eq!(parsed, Ok(1_796_217_532_042 * 1_000_000));
        assert!(time_of(&Value::Str("yesterday".into()), "t").is_err());
    }
}
