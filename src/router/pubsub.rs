//! PubSub routing (Broker): SUBSCRIBE/UNSUBSCRIBE over the realm's [`Subscriptions`], and the
//! hot path PUBLISH -> EVENT: the EVENT is encoded at most once per serializer that actually has
//! a receiver, and the same `Bytes` is cloned for every subscriber of that serializer.
//! Implemented options: `acknowledge`, `exclude_me` (publisher exclusion), `disclose_me`
//! (publisher identification), `exclude`/`eligible`/`exclude_authid`/`eligible_authid`/
//! `exclude_authrole`/`eligible_authrole` (subscriber black/white listing).
//!
//! Across shards: the publisher's shard delivers to its own subscribers, then sends one
//! `Publish` (one shared `Arc`, payload as `Bytes`) to each other shard in the subscription's
//! shard set; that shard builds the EVENT once per serializer for its subscribers.
//!
//! [`Subscriptions`]: super::broker::Subscriptions

use std::borrow::Cow;
use std::sync::Arc;

use super::admission::Admitted;
use super::broker::{Subscriber, Subscription, Subscriptions};
use super::cluster::LeaveAnswer;
use super::dealer::MatchPolicy;
use super::outbox::Outbox;
use super::session::Sessions;
use super::shard_msg::{Disclosed, OwnedFilters, PublicIdentity, RemotePublication, ShardMsgKind};
use super::{uri, Action, Router, RouterStats, SessionKey, ShardId};
use crate::serializer::Serializer;
use crate::wire::{code, Dict, Frame, Message, OwnedPayload, Payload, Value};

impl Router {
    /// SUBSCRIBE (admitted: options and URI are valid) joins this shard's subscribers of the
    /// topic, through the topic's owner when it is the first.
    pub(super) fn handle_subscribe(
        &mut self,
        me: Admitted,
        request: u64,
        options: &Dict<'_>,
        topic: &str,
        out: &mut Vec<Action>,
    ) {
        // Admission checked the per-session bound; until answered this one counts against it.
        self.sessions[me.key].subscribes_pending += 1;
        let matching = MatchPolicy::parse(options.get_str("match"));
        let get_retained = options.get_bool("get_retained") == Some(true);
        self.start_subscribe(me, (request, get_retained), (topic, matching), out);
    }

    pub(super) fn handle_unsubscribe(
        &mut self,
        me: Admitted,
        request: u64,
        subscription: u64,
        out: &mut Vec<Action>,
    ) {
        let (session, realm) = (me.key, me.realm);
        let answer = LeaveAnswer::Unsubscribed(request);
        let removed = self.sessions[session].subscriptions.remove(&subscription)
            && self
                .remove_local_subscriber(session, me.id, realm, subscription, answer, out)
                .is_some();
        if !removed {
            let text = format!("this session is not subscribed to {subscription}");
            self.send_error(
                out,
                me.key,
                code::UNSUBSCRIBE,
                request,
                uri::NO_SUCH_SUBSCRIPTION,
                text,
            );
        }
    }

    /// PUBLISH -> EVENT to every eligible subscriber of every subscription the topic matches
    /// (hot path): its exact subscription, then its prefix and wildcard ones, each EVENT with
    /// its own subscription id and the same publication id. Out of line so that the dispatcher
    /// of every established message (and so the CALL path) stays small.
    #[inline(never)]
    pub(super) fn handle_publish(
        &mut self,
        me: Admitted,
        request: u64,
        options: &Dict<'_>,
        topic: &str,
        payload: Payload<'_>,
        out: &mut Vec<Action>,
    ) {
        let (publisher, publisher_serializer) = (me.key, me.serializer);
        // The publisher's role may disclose it (a permission's `disclose_publisher`).
        let asked = PublishAsk::read(options, me.disclose);
        let acknowledge = asked.acknowledge;
        // The router's meta events are its own (as Crossbar.io: clients may subscribe to them).
        if uri::is_reserved(topic) {
            let text =
                format!("publish to {topic:?}: the wamp. namespace is reserved for the router");
            let refusal = (PublishRefusal::ReservedTopic, uri::INVALID_URI, text);
            return self.refuse_publish(me, request, acknowledge, refusal, out);
        }
        let realm = self.realms.get(me.realm);
        let keeps_history = !realm.history.is_empty();
        let subscriptions = &realm.subscriptions;
        let subscription = subscriptions.exact(topic);
        // Subscribed topics passed the same URI check, so only a miss needs validating.
        if subscription.is_none() && !self.uri_is_valid(topic) {
            let text = format!("invalid topic URI {topic:?}");
            let refusal = (PublishRefusal::InvalidTopic, uri::INVALID_URI, text);
            return self.refuse_publish(me, request, acknowledge, refusal, out);
        }
        let patterns = subscriptions.has_patterns();
        // Acknowledged: delivered to every subscriber or refused, never in part.
        if acknowledge && (subscription.is_some() || patterns) {
            let shard = self.cluster.shard;
            let fits =
                payload_fits_subscribers(&mut self.outbox, subscriptions, shard, topic, &payload);
            if let Err(text) = fits {
                let refusal = (PublishRefusal::NotDeliverable, uri::INVALID_ARGUMENT, text);
                return self.refuse_publish(me, request, acknowledge, refusal, out);
            }
        }
        let publication = self.random_ids.next_id();
        self.stats.publishes += 1;

        let mut missed = Undeliverable::NONE;
        let mut missed_by_patterns = Undeliverable::NONE;
        let mut remote_shards = 0;
        let mut matched_patterns: Vec<u64> = Vec::new();
        if subscription.is_some() || patterns {
            let exclude_me = asked.exclude_me;
            let filters = ReceiverFilters::from_options(options);
            let disclose = realm.disclose_publisher || asked.disclose_me;
            // Looked up only when disclosed: most PUBLISHes are not.
            let identity = disclose.then(|| {
                self.sessions[publisher]
                    .identity()
                    .expect("admitted sessions are established")
            });
            let mut details = Dict::new();
            if let Some(identity) = identity {
                disclose_publisher(&mut details, identity);
            }
            // The publisher, when it does not get its own events (and no session when it does).
            let excluded = exclude_me.then_some(publisher);
            let (outbox, stats) = (&mut self.outbox, &mut self.stats);
            let delivery = Delivery {
                sessions: &self.sessions,
                excluded,
                filters: &filters,
                publication,
                payload: &payload,
            };
            if patterns {
                // First, while the plain Details can still be lent: the exact EVENT below
                // takes them (moved, not copied, in the common case without patterns).
                let reached = deliver_to_patterns(
                    (outbox, stats),
                    &delivery,
                    (subscriptions, topic),
                    &details,
                    out,
                );
                missed_by_patterns = reached.missed;
                remote_shards = reached.shards;
                matched_patterns = reached.subscriptions;
            }
            if let Some(subscription) = subscription {
                let event = Message::Event {
                    subscription: subscription.id,
                    publication,
                    details,
                    payload,
                };
                let subscribers = subscription.subscribers();
                let reached = delivery.fan_out(outbox, stats, subscribers, &event, out);
                missed = reached;
                remote_shards |= subscription.shards;
                // Only the Details own memory: dropping them alone spares the generic drop of
                // every message type.
                if let Message::Event { details, .. } = event {
                    drop(details);
                }
            }
            remote_shards &= !(1u64 << self.cluster.shard);
            if remote_shards != 0 {
                let publication = Arc::new(RemotePublication {
                    realm: realm.name.clone(),
                    subscription: subscription.map_or(0, |subscription| subscription.id),
                    topic: (!matched_patterns.is_empty()).then(|| topic.into()),
                    patterns: matched_patterns.into_boxed_slice(),
                    publication,
                    publisher: identity.map(PublicIdentity::of),
                    filters: filters.is_active().then(|| filters.to_owned_filters()),
                    payload: payload.to_owned_payload(),
                });
                for shard in
                    (0..self.cluster.shards).filter(|&shard| remote_shards & (1u64 << shard) != 0)
                {
                    out.push(Action::ToShard {
                        to: shard,
                        msg: ShardMsgKind::Publish(publication.clone()).into(),
                    });
                }
            }
        }
        self.note_undeliverable(topic, missed);
        self.note_undeliverable(topic, missed_by_patterns);
        if asked.retain {
            let event = self.event_copy(me, options, topic, (publication, &payload));
            self.retain_event(me.realm, event, out);
        }
        if keeps_history {
            // Acknowledged: PUBLISHED waits until the other shards keeping the event have it.
            let ticket = acknowledge.then(|| self.cluster.new_ticket());
            let event = (publication, &payload);
            let acks = self.record_history(me, options, topic, event, ticket, out);
            if let (Some(ticket), 1..) = (ticket, acks) {
                self.publish_after_history(me, ticket, acks, (request, publication));
                return;
            }
        }

        if acknowledge {
            self.send(
                out,
                publisher,
                publisher_serializer,
                &Message::Published {
                    request,
                    publication,
                },
            );
        }
    }

    /// The event of a PUBLISH as kept for later (retention, history): with the lists and the
    /// disclosure it was published with.
    #[cold]
    pub(super) fn event_copy(
        &self,
        me: Admitted,
        options: &Dict<'_>,
        topic: &str,
        (publication, payload): (u64, &Payload<'_>),
    ) -> EventCopy {
        let realm = self.realms.get(me.realm);
        let disclose = realm.disclose_publisher
            || me.disclose
            || options.get_bool("disclose_me") == Some(true);
        let identity = self.sessions[me.key]
            .identity()
            .expect("admitted sessions are established");
        let filters = ReceiverFilters::from_options(options);
        EventCopy {
            topic: topic.into(),
            publication,
            publisher: disclose.then(|| PublicIdentity::of(identity)),
            filters: filters.is_active().then(|| filters.to_owned_filters()),
            payload: payload.to_owned_payload(),
        }
    }
}

/// A published event as kept for later (retention, history): what its later delivery needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EventCopy {
    pub(crate) topic: Box<str>,
    pub(crate) publication: u64,
    /// Present when the publisher was disclosed (by `disclose_me` or the realm's setting).
    pub(crate) publisher: Option<PublicIdentity>,
    /// The black/white lists of the PUBLISH, re-applied at delivery.
    pub(crate) filters: Option<OwnedFilters>,
    pub(crate) payload: OwnedPayload,
}

impl EventCopy {
    /// Bytes this event holds, as counted against the bounds of retention and history.
    pub(crate) fn bytes(&self) -> usize {
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

/// Whether the payload can be written for every subscriber of every subscription `topic`
/// matches (other shards' subscribers may use any serializer); the ERROR's text when not.
#[cold]
fn payload_fits_subscribers(
    outbox: &mut Outbox,
    subscriptions: &Subscriptions,
    shard: ShardId,
    topic: &str,
    payload: &Payload<'_>,
) -> Result<(), String> {
    let mut needed = [false; Serializer::COUNT];
    let mut need = |subscription: &Subscription| {
        let remote = subscription.shards & !(1u64 << shard) != 0;
        for serializer in Serializer::ALL {
            needed[serializer.index()] |= remote || subscription.has_subscribers_in(serializer);
        }
    };
    if let Some(subscription) = subscriptions.exact(topic) {
        need(subscription);
    }
    subscriptions.for_each_pattern_match(topic, need);
    outbox.payload_fits(payload, |serializer| needed[serializer.index()])
}

/// The PUBLISH.Options the broker acts on, read in one pass (none, mostly).
#[derive(Copy, Clone)]
struct PublishAsk {
    acknowledge: bool,
    /// Default true: the publisher does not get its own event.
    exclude_me: bool,
    disclose_me: bool,
    retain: bool,
}

impl PublishAsk {
    /// The options of a PUBLISH; `role_discloses`: the publisher's role discloses it, as if it
    /// had asked with `disclose_me`.
    #[inline(always)]
    fn read(options: &Dict<'_>, role_discloses: bool) -> PublishAsk {
        let mut asked = PublishAsk {
            acknowledge: false,
            exclude_me: true,
            disclose_me: role_discloses,
            retain: false,
        };
        if options.is_empty() {
            return asked;
        }
        asked.acknowledge = options.get_bool("acknowledge") == Some(true);
        asked.exclude_me = options.get_bool("exclude_me").unwrap_or(true);
        asked.disclose_me |= options.get_bool("disclose_me") == Some(true);
        asked.retain = options.get_bool("retain") == Some(true);
        asked
    }
}

/// What every subscription of one publication shares when its EVENTs go out on this shard.
struct Delivery<'d, 'o, 'a> {
    sessions: &'d Sessions,
    excluded: Option<SessionKey>,
    filters: &'d ReceiverFilters<'o, 'a>,
    publication: u64,
    payload: &'d Payload<'a>,
}

impl Delivery<'_, '_, '_> {
    /// `event` to the eligible ones of `subscribers` (this shard's subscribers of one
    /// subscription). Always inlined: the exact-topic PUBLISH path pays no call for it.
    #[inline(always)]
    fn fan_out(
        &self,
        outbox: &mut Outbox,
        stats: &mut RouterStats,
        subscribers: &[Subscriber],
        event: &Message<'_>,
        out: &mut Vec<Action>,
    ) -> Undeliverable {
        let excluded = self.excluded;
        // Without black/white lists (the common case) the loop checks only the publisher.
        if self.filters.is_active() {
            let sessions = self.sessions;
            let admit = |subscriber: &Subscriber| {
                Some(subscriber.session) != excluded && self.filters.admits(subscriber, sessions)
            };
            fan_out(outbox, stats, subscribers, event, admit, out)
        } else {
            let admit = |subscriber: &Subscriber| Some(subscriber.session) != excluded;
            fan_out(outbox, stats, subscribers, event, admit, out)
        }
    }
}

/// What a publication's pattern subscriptions on this shard came to.
struct PatternsReached {
    missed: Undeliverable,
    /// Shards with subscribers of any of them.
    shards: u64,
    /// Their ids.
    subscriptions: Vec<u64>,
}

/// The EVENTs of a publication to `topic` for each prefix and wildcard subscription it
/// matches: one per subscription, with `details` and the topic. Out of line: the exact-topic
/// fan-out stays as small as it was before patterns.
#[inline(never)]
fn deliver_to_patterns(
    (outbox, stats): (&mut Outbox, &mut RouterStats),
    delivery: &Delivery<'_, '_, '_>,
    (subscriptions, topic): (&Subscriptions, &str),
    details: &Dict<'_>,
    out: &mut Vec<Action>,
) -> PatternsReached {
    let details = with_topic(details, topic);
    let mut reached = PatternsReached {
        missed: Undeliverable::NONE,
        shards: 0,
        subscriptions: Vec::new(),
    };
    subscriptions.for_each_pattern_match(topic, |subscription| {
        reached.shards |= subscription.shards;
        reached.subscriptions.push(subscription.id);
        let subscribers = subscription.subscribers();
        if subscribers.is_empty() {
            return;
        }
        let event = Message::Event {
            subscription: subscription.id,
            publication: delivery.publication,
            details: details.clone(),
            payload: *delivery.payload,
        };
        let missed = delivery.fan_out(outbox, stats, subscribers, &event, out);
        reached.missed.add(missed);
    });
    reached
}

/// EVENT.Details naming the publisher (`disclose_me`, or the realm's `disclose_publisher`).
pub(super) fn disclose_publisher<'d>(details: &mut Dict<'d>, publisher: &'d impl Disclosed) {
    let (id, authid, authrole) = publisher.parts();
    details.insert("publisher", id);
    details.insert("publisher_authid", Value::Str(Cow::Borrowed(authid)));
    details.insert("publisher_authrole", Value::Str(Cow::Borrowed(authrole)));
}

/// EVENT.Details for a pattern subscription: `details` and the topic published to.
fn with_topic<'d>(details: &Dict<'d>, topic: &'d str) -> Dict<'d> {
    let mut details = details.clone();
    details.insert("topic", Value::Str(Cow::Borrowed(topic)));
    details
}

/// Sends `event` to every admitted subscriber: encoded at most once per serializer, and one
/// action per serializer carries that frame and its recipients. Returns the subscribers whose
/// serializer cannot carry the payload (they get nothing).
#[must_use]
#[inline(always)]
fn fan_out(
    outbox: &mut Outbox,
    stats: &mut RouterStats,
    subscribers: &[Subscriber],
    event: &Message<'_>,
    admit: impl Fn(&Subscriber) -> bool,
    out: &mut Vec<Action>,
) -> Undeliverable {
    match subscribers {
        [subscriber] => {
            // The one-to-one case, without the per-serializer bookkeeping.
            if !admit(subscriber) {
                return Undeliverable::NONE;
            }
            match encode_event(outbox, stats, event, subscriber) {
                Ok(frame) => {
                    stats.events_sent += 1;
                    out.push(Action::SendEvent {
                        session: subscriber.session,
                        frame,
                    });
                    Undeliverable::NONE
                }
                Err(_) => Undeliverable {
                    subscribers: 1,
                    serializer: subscriber.serializer,
                },
            }
        }
        _ => fan_out_to_many(outbox, stats, subscribers, event, admit, out),
    }
}

#[inline(never)]
fn fan_out_to_many(
    outbox: &mut Outbox,
    stats: &mut RouterStats,
    subscribers: &[Subscriber],
    event: &Message<'_>,
    admit: impl Fn(&Subscriber) -> bool,
    out: &mut Vec<Action>,
) -> Undeliverable {
    // Per serializer: the frame (not yet encoded, encoded, or not encodable because the
    // payload cannot be transcoded) and the sessions that get it.
    let mut targets: [(Option<Result<Frame, ()>>, Recipients); Serializer::COUNT] =
        Default::default();
    for (index, subscriber) in subscribers.iter().enumerate() {
        if !admit(subscriber) {
            continue;
        }
        let (frame, recipients) = &mut targets[subscriber.serializer.index()];
        let frame = frame.get_or_insert_with(|| encode_event(outbox, stats, event, subscriber));
        if frame.is_ok() {
            recipients.add(subscriber.session, subscribers.len() - index);
        }
    }
    let mut undeliverable = Undeliverable::NONE;
    for ((frame, recipients), serializer) in targets.into_iter().zip(Serializer::ALL) {
        match frame {
            Some(Ok(frame)) => recipients.send(frame, stats, out),
            // Rare: counted in a second pass, so the loop above stays as tight as it can be.
            Some(Err(())) => {
                undeliverable.serializer = serializer;
                undeliverable.subscribers += subscribers
                    .iter()
                    .filter(|subscriber| subscriber.serializer == serializer && admit(subscriber))
                    .count() as u64;
            }
            None => {}
        }
    }
    undeliverable
}

/// Subscribers a fan-out could not reach because their serializer cannot carry the payload.
#[derive(Copy, Clone)]
struct Undeliverable {
    subscribers: u64,
    /// The serializer that cannot carry it (one of them, if both).
    serializer: Serializer,
}

impl Undeliverable {
    const NONE: Undeliverable = Undeliverable {
        subscribers: 0,
        serializer: Serializer::Json,
    };

    /// Adds the subscribers `other` missed (a publication matching several subscriptions).
    fn add(&mut self, other: Undeliverable) {
        if other.subscribers > 0 {
            self.subscribers += other.subscribers;
            self.serializer = other.serializer;
        }
    }
}

/// The sessions one fan-out frame goes to. The first is kept aside, so that a single
/// recipient costs no allocation.
#[derive(Default)]
struct Recipients {
    first: Option<SessionKey>,
    /// Every recipient, the first included, once there are two or more.
    all: Vec<SessionKey>,
}

impl Recipients {
    /// Adds `session`; at most `remaining` more (this one included) can follow.
    #[inline]
    fn add(&mut self, session: SessionKey, remaining: usize) {
        match self.first {
            None => self.first = Some(session),
            Some(first) => {
                if self.all.is_empty() {
                    self.all.reserve_exact(remaining + 1);
                    self.all.push(first);
                }
                self.all.push(session);
            }
        }
    }

    #[inline]
    fn send(self, frame: Frame, stats: &mut RouterStats, out: &mut Vec<Action>) {
        match self.first {
            None => {}
            Some(session) if self.all.is_empty() => {
                stats.events_sent += 1;
                out.push(Action::SendEvent { session, frame });
            }
            Some(_) => {
                stats.events_sent += self.all.len() as u64;
                out.push(Action::SendEach {
                    sessions: self.all,
                    frame,
                });
            }
        }
    }
}

/// The EVENT in `subscriber`'s serializer, once per fan-out and serializer (out of the loop's
/// way).
#[inline(never)]
fn encode_event(
    outbox: &mut Outbox,
    stats: &mut RouterStats,
    event: &Message<'_>,
    subscriber: &Subscriber,
) -> Result<Frame, ()> {
    outbox
        .frame(event, subscriber.serializer)
        .map_err(|_| stats.encode_errors += 1)
}

/// Why a PUBLISH is not routed (each cause has its own log limit).
#[derive(Copy, Clone, Debug)]
pub(super) enum PublishRefusal {
    /// The topic is in the router's `wamp.` namespace.
    ReservedTopic,
    InvalidTopic,
    /// Options with more entries than `max_options_entries`.
    InvalidOptions,
    /// Acknowledged, and some subscriber's serializer cannot carry the payload.
    NotDeliverable,
    /// The publisher's role may not publish to the topic.
    NotAuthorized,
}

impl Router {
    /// A PUBLISH not routed: ERROR to the publisher when it asked for an acknowledgement,
    /// otherwise counted and logged (rate-limited per cause), as nothing goes back.
    #[cold]
    pub(super) fn refuse_publish(
        &mut self,
        me: Admitted,
        request: u64,
        acknowledge: bool,
        (refusal, error_uri, text): (PublishRefusal, &'static str, String),
        out: &mut Vec<Action>,
    ) {
        self.stats.publishes_refused += 1;
        if acknowledge {
            self.send_error(out, me.key, code::PUBLISH, request, error_uri, text);
            return;
        }
        let limit = match refusal {
            PublishRefusal::ReservedTopic => &mut self.logs.publish_reserved_topic,
            PublishRefusal::InvalidTopic => &mut self.logs.publish_invalid_topic,
            PublishRefusal::InvalidOptions => &mut self.logs.publish_invalid_options,
            PublishRefusal::NotDeliverable => &mut self.logs.publish_not_deliverable,
            PublishRefusal::NotAuthorized => &mut self.logs.authorization_denied,
        };
        if let Some(suppressed) = limit.allow(self.now) {
            tracing::info!(session = me.id, suppressed, "PUBLISH dropped: {text}");
        }
    }

    /// Counts (and logs, rate-limited) the subscribers a fan-out could not reach.
    #[inline]
    fn note_undeliverable(&mut self, topic: &str, undeliverable: Undeliverable) {
        if undeliverable.subscribers > 0 {
            self.undeliverable_events(topic, undeliverable);
        }
    }

    #[cold]
    fn undeliverable_events(&mut self, topic: &str, undeliverable: Undeliverable) {
        self.stats.events_undeliverable += undeliverable.subscribers;
        if let Some(suppressed) = self.logs.event_not_deliverable.allow(self.now) {
            tracing::warn!(
                topic,
                subscribers = undeliverable.subscribers,
                serializer = %undeliverable.serializer,
                suppressed,
                "EVENT not delivered: the payload cannot be written in the subscribers' serializer"
            );
        }
    }
}

impl Router {
    /// `Publish` from the publisher's shard: EVENT to this shard's subscribers of each
    /// subscription it names. Subscribers that left meanwhile (or a subscription that is gone)
    /// simply receive nothing, as with a local PUBLISH after UNSUBSCRIBE.
    pub(super) fn handle_remote_publish(
        &mut self,
        publication: &RemotePublication,
        out: &mut Vec<Action>,
    ) {
        let Some(realm) = self.realms.find(&publication.realm) else {
            return;
        };
        let subscriptions = &self.realms.get(realm).subscriptions;
        let mut details = Dict::new();
        if let Some(publisher) = &publication.publisher {
            disclose_publisher(&mut details, publisher);
        }
        let sessions = &self.sessions;
        let admit = |subscriber: &Subscriber| {
            publication
                .filters
                .as_ref()
                .map_or(true, |filters| filters.admits(subscriber, sessions))
        };
        let payload = publication.payload.as_payload();
        let (outbox, stats) = (&mut self.outbox, &mut self.stats);
        let mut deliver = |subscription: &Subscription, details: &Dict<'_>| {
            let event = Message::Event {
                subscription: subscription.id,
                publication: publication.publication,
                details: details.clone(),
                payload,
            };
            fan_out(
                outbox,
                stats,
                subscription.subscribers(),
                &event,
                admit,
                out,
            )
        };
        let mut missed = Undeliverable::NONE;
        if let Some(subscription) = subscriptions.get(publication.subscription) {
            missed.add(deliver(subscription, &details));
        }
        if let Some(topic) = &publication.topic {
            let details = with_topic(&details, topic);
            for &id in publication.patterns.iter() {
                if let Some(subscription) = subscriptions.get(id) {
                    missed.add(deliver(subscription, &details));
                }
            }
        }
        if missed.subscribers == 0 {
            return;
        }
        let topic = match &publication.topic {
            Some(topic) => topic.to_string(),
            None => subscriptions
                .get(publication.subscription)
                .map_or_else(String::new, |subscription| subscription.topic.to_string()),
        };
        self.note_undeliverable(&topic, missed);
    }
}

/// The authid and authrole of a subscriber, for the authid/authrole lists.
fn auth_of<'s>(subscriber: &Subscriber, sessions: &'s Sessions) -> Option<(&'s str, &'s str)> {
    let identity = sessions.get(subscriber.session)?.identity()?;
    Some((&identity.authid, &identity.authrole))
}

impl OwnedFilters {
    // Out of line: black/white lists are rare, and the fan-out loop's check stays small.
    #[inline(never)]
    pub(super) fn admits(&self, subscriber: &Subscriber, sessions: &Sessions) -> bool {
        let has_id = |list: &Vec<u64>| list.contains(&subscriber.session_id);
        if self.exclude.as_ref().is_some_and(has_id)
            || self.eligible.as_ref().is_some_and(|list| !has_id(list))
        {
            return false;
        }
        if self.exclude_authid.is_none()
            && self.eligible_authid.is_none()
            && self.exclude_authrole.is_none()
            && self.eligible_authrole.is_none()
        {
            return true;
        }
        let Some((authid, authrole)) = auth_of(subscriber, sessions) else {
            return false;
        };
        self.admits_identity(authid, authrole)
    }

    /// The authid and authrole lists alone (event history, where the asking session may live
    /// on another shard and session-id lists are never kept).
    pub(super) fn admits_identity(&self, authid: &str, authrole: &str) -> bool {
        let has = |list: &Option<Vec<Box<str>>>, wanted: &str| {
            list.as_ref()
                .map(|list| list.iter().any(|item| &**item == wanted))
        };
        !(has(&self.exclude_authid, authid) == Some(true)
            || has(&self.eligible_authid, authid) == Some(false)
            || has(&self.exclude_authrole, authrole) == Some(true)
            || has(&self.eligible_authrole, authrole) == Some(false))
    }
}

/// The subscriber black/white lists of a PUBLISH, borrowed from its Options. A receiver must
/// pass all present filters. A list of the wrong type admits nobody (eligible) or excludes
/// nobody (exclude).
pub(super) struct ReceiverFilters<'o, 'a> {
    exclude: Option<&'o [Value<'a>]>,
    eligible: Option<&'o [Value<'a>]>,
    exclude_authid: Option<&'o [Value<'a>]>,
    eligible_authid: Option<&'o [Value<'a>]>,
    exclude_authrole: Option<&'o [Value<'a>]>,
    eligible_authrole: Option<&'o [Value<'a>]>,
}

impl<'o, 'a> ReceiverFilters<'o, 'a> {
    #[inline(always)]
    pub(super) fn from_options(options: &'o Dict<'a>) -> Self {
        // Most PUBLISHes carry no options at all.
        if options.is_empty() {
            return ReceiverFilters {
                exclude: None,
                eligible: None,
                exclude_authid: None,
                eligible_authid: None,
                exclude_authrole: None,
                eligible_authrole: None,
            };
        }
        let list = |key: &str| options.get(key).map(|value| value.as_list().unwrap_or(&[]));
        ReceiverFilters {
            exclude: list("exclude"),
            eligible: list("eligible"),
            exclude_authid: list("exclude_authid"),
            eligible_authid: list("eligible_authid"),
            exclude_authrole: list("exclude_authrole"),
            eligible_authrole: list("eligible_authrole"),
        }
    }

    /// The lists detached from the frame, for the other shards.
    pub(super) fn to_owned_filters(&self) -> OwnedFilters {
        let ids = |list: Option<&[Value<'_>]>| {
            list.map(|list| list.iter().filter_map(Value::as_u64).collect())
        };
        let strs = |list: Option<&[Value<'_>]>| {
            list.map(|list| {
                list.iter()
                    .filter_map(Value::as_str)
                    .map(Box::from)
                    .collect()
            })
        };
        OwnedFilters {
            exclude: ids(self.exclude),
            eligible: ids(self.eligible),
            exclude_authid: strs(self.exclude_authid),
            eligible_authid: strs(self.eligible_authid),
            exclude_authrole: strs(self.exclude_authrole),
            eligible_authrole: strs(self.eligible_authrole),
        }
    }

    pub(super) fn is_active(&self) -> bool {
        self.exclude.is_some()
            || self.eligible.is_some()
            || self.exclude_authid.is_some()
            || self.eligible_authid.is_some()
            || self.exclude_authrole.is_some()
            || self.eligible_authrole.is_some()
    }

    // Out of line: black/white lists are rare, and the fan-out loop's check stays small.
    #[inline(never)]
    fn admits(&self, subscriber: &Subscriber, sessions: &Sessions) -> bool {
        let has_id = |list: &[Value<'_>]| {
            list.iter()
                .any(|value| value.as_u64() == Some(subscriber.session_id))
        };
        let has_str = |list: &[Value<'_>], wanted: &str| {
            list.iter().any(|value| value.as_str() == Some(wanted))
        };
        if self.exclude.is_some_and(has_id) || self.eligible.is_some_and(|list| !has_id(list)) {
            return false;
        }
        if self.exclude_authid.is_none()
            && self.eligible_authid.is_none()
            && self.exclude_authrole.is_none()
            && self.eligible_authrole.is_none()
        {
            return true;
        }
        let Some(identity) = sessions.get(subscriber.session).and_then(|s| s.identity()) else {
            return false;
        };
        let authid = &*identity.authid;
        let authrole = &*identity.authrole;
        !(self
            .exclude_authid
            .is_some_and(|list| has_str(list, authid))
            || self
                .eligible_authid
                .is_some_and(|list| !has_str(list, authid))
            || self
                .exclude_authrole
                .is_some_and(|list| has_str(list, authrole))
            || self
                .eligible_authrole
                .is_some_and(|list| !has_str(list, authrole)))
    }
}
