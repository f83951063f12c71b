//! Scenario tests of the Advanced Profile PubSub features of the sans-IO router (digest §9.3):
//! prefix and wildcard subscriptions next to exact ones (one EVENT per matching subscription,
//! `Details.topic` on pattern ones, filters and disclosure applied to each), publisher
//! disclosure by realm policy, event retention (`retain`, `get_retained`, the lists a retained
//! event keeps, the bound on retained bytes), event history (`[[realm.history]]`,
//! `wamp.subscription.get_events` with its filters and Crossbar.io's signature, its bounds and
//! the lists it keeps), and the tables emptying again when subscribers go. Each
//! scenario runs at 1 shard and at 3 (clients dealt out round-robin, so publishers and
//! subscribers sit on different shards and every rule crosses the shard channels) through the
//! shared harness of `tests/scenario`.

mod sansio;
#[macro_use]
mod scenario;

use std::collections::BTreeMap;

use scenario::*;
use wampring::router::{
    uri, HistoryConfig, MatchPolicy, RealmConfig, RouterConfig, HISTORY_UNAVAILABLE,
};
use wampring::wire::{code, Dict, Message, Payload, Serializer, Value};

use Serializer::{Json, MsgPack};

fn prefix() -> Dict<'static> {
    opts(&[("match", s("prefix"))])
}

fn wildcard() -> Dict<'static> {
    opts(&[("match", s("wildcard"))])
}

/// One EVENT as a subscriber saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    subscription: u64,
    publication: u64,
    /// `Details.topic`, present for pattern subscriptions only.
    topic: Option<String>,
    /// `Details.publisher`.
    publisher: Option<u64>,
    args: Vec<Value<'static>>,
}

fn event(received: &Received) -> Seen {
    match received.msg() {
        Message::Event {
            subscription,
            publication,
            details,
            payload,
        } => Seen {
            subscription,
            publication,
            topic: details.get_str("topic").map(str::to_string),
            publisher: details.get_u64("publisher"),
            args: payload_values(&payload).0,
        },
        other => panic!("expected EVENT, got {other:?}"),
    }
}

/// Every EVENT waiting for `client`, and nothing else.
fn events(h: &mut Harness, client: &Client) -> Vec<Seen> {
    let mut seen = Vec::new();
    while let Some(received) = h.try_recv(client) {
        seen.push(event(&received));
    }
    seen
}

fn unsubscribe(h: &mut Harness, client: &Client, subscription: u64) {
    let request = h.request();
    h.send(
        client,
        &Message::Unsubscribe {
            request,
            subscription,
        },
    );
    assert!(
        matches!(h.recv(client).msg(), Message::Unsubscribed { request: r, .. } if r == request)
    );
}

fn publish_text(h: &mut Harness, client: &Client, topic: &str, text: &str) {
    let payload = args(client.ser, &[s(text)]);
    h.publish(client, topic, Dict::new(), payload.as_payload());
}

fn prefix_and_wildcard_subscriptions_receive_what_matches_them() {
    let mut h = Harness::new();
    let by_prefix = h.join(Json);
    let by_wildcard = h.join(MsgPack);
    let exact = h.join(Json);
    let publisher = h.join(MsgPack);
    let prefix_id = h.subscribe_with(&by_prefix, "com.a", prefix());
    let wildcard_id = h.subscribe_with(&by_wildcard, "com..b", wildcard());
    let exact_id = h.subscribe(&exact, "com.a.b");
    assert_eq!(
        [prefix_id, wildcard_id, exact_id].len(),
        [prefix_id, wildcard_id, exact_id]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        "three subscriptions, three ids"
    );

    publish_text(&mut h, &publisher, "com.a.b", "all three");
    let to_prefix = events(&mut h, &by_prefix);
    let to_wildcard = events(&mut h, &by_wildcard);
    let to_exact = events(&mut h, &exact);
    assert_eq!(to_prefix.len(), 1, "{to_prefix:?}");
    assert_eq!(to_wildcard.len(), 1, "{to_wildcard:?}");
    assert_eq!(to_exact.len(), 1, "{to_exact:?}");
    assert_eq!(to_prefix[0].subscription, prefix_id);
    assert_eq!(to_wildcard[0].subscription, wildcard_id);
    assert_eq!(to_exact[0].subscription, exact_id);
    let publication = to_exact[0].publication;
    assert_eq!(to_prefix[0].publication, publication, "one publication id");
    assert_eq!(
        to_wildcard[0].publication, publication,
        "one publication id"
    );
    assert_eq!(to_prefix[0].topic.as_deref(), Some("com.a.b"));
    assert_eq!(to_wildcard[0].topic.as_deref(), Some("com.a.b"));
    assert_eq!(to_exact[0].topic, None, "exact subscribers know the topic");
    assert_eq!(to_prefix[0].args, vec![s("all three")]);
    assert_eq!(to_wildcard[0].args, vec![s("all three")]);

    // Byte-wise prefix: `com.a` covers `com.ab` too; the wildcard needs three components.
    publish_text(&mut h, &publisher, "com.ab", "prefix only");
    assert_eq!(
        events(&mut h, &by_prefix)[0].topic.as_deref(),
        Some("com.ab")
    );
    publish_text(&mut h, &publisher, "com.x.b", "wildcard only");
    assert_eq!(
        events(&mut h, &by_wildcard)[0].topic.as_deref(),
        Some("com.x.b")
    );
    publish_text(&mut h, &publisher, "com.x.b.c", "nobody");
    publish_text(&mut h, &publisher, "org.a.b", "nobody");
    for client in [&by_prefix, &by_wildcard, &exact, &publisher] {
        h.expect_nothing(client);
    }
    assert_eq!(h.stats().events_sent, 5);
}

fn one_session_with_several_matching_subscriptions_gets_one_event_per_subscription() {
    let mut h = Harness::new();
    let subscriber = h.join(MsgPack);
    let publisher = h.join(Json);
    let ids = [
        h.subscribe(&subscriber, "com.a.b"),
        h.subscribe_with(&subscriber, "com.a", prefix()),
        h.subscribe_with(&subscriber, "com.a.", wildcard()),
        h.subscribe_with(&subscriber, "com..b", wildcard()),
    ];
    publish_text(&mut h, &publisher, "com.a.b", "x");
    let seen = events(&mut h, &subscriber);
    let mut by_subscription: BTreeMap<u64, Seen> = BTreeMap::new();
    for event in &seen {
        assert!(
            by_subscription
                .insert(event.subscription, event.clone())
                .is_none(),
            "one EVENT per subscription: {seen:?}"
        );
    }
    let mut expected = ids.to_vec();
    expected.sort_unstable();
    assert_eq!(
        by_subscription.keys().copied().collect::<Vec<_>>(),
        expected
    );
    assert!(seen
        .iter()
        .all(|event| event.publication == seen[0].publication));
    assert_eq!(by_subscription[&ids[0]].topic, None);
    for id in &ids[1..] {
        assert_eq!(by_subscription[id].topic.as_deref(), Some("com.a.b"));
    }
}

fn a_uri_subscribed_exact_and_as_a_pattern_is_two_subscriptions_and_subscribing_again_is_one() {
    let mut h = Harness::new();
    let a = h.join(Json);
    let b = h.join(MsgPack);
    let exact = h.subscribe(&a, "com.a");
    let as_prefix = h.subscribe_with(&a, "com.a", prefix());
    let as_wildcard = h.subscribe_with(&a, "com.a", wildcard());
    assert_ne!(exact, as_prefix);
    assert_ne!(as_prefix, as_wildcard);
    assert_eq!(
        h.subscribe_with(&b, "com.a", prefix()),
        as_prefix,
        "another session joins the same pattern subscription"
    );
    assert_eq!(
        h.subscribe_with(&a, "com.a", prefix()),
        as_prefix,
        "subscribing again is harmless"
    );
    // `com.a` itself: the exact one, the prefix and the one-component wildcard all match.
    publish_text(&mut h, &b, "com.a", "x");
    let mut got: Vec<u64> = events(&mut h, &a).iter().map(|e| e.subscription).collect();
    got.sort_unstable();
    let mut want = vec![exact, as_prefix, as_wildcard];
    want.sort_unstable();
    assert_eq!(got, want);
    h.expect_nothing(&b);
}

fn publisher_exclusion_black_white_lists_and_disclosure_apply_to_each_subscription() {
    let mut h = Harness::new();
    let publisher = h.join(MsgPack);
    let listed = h.join(Json);
    let other = h.join(MsgPack);
    for client in [&publisher, &listed, &other] {
        h.subscribe_with(client, "com.news", prefix());
        h.subscribe_with(client, "com..sport", wildcard());
    }
    let listed_id = h.wamp_session_id(&listed).unwrap();
    let publisher_id = h.wamp_session_id(&publisher).unwrap();

    // Excluded by default: the publisher gets neither EVENT; the others get both.
    let payload = args(MsgPack, &[Value::UInt(1)]);
    h.publish(
        &publisher,
        "com.news.sport",
        Dict::new(),
        payload.as_payload(),
    );
    h.expect_nothing(&publisher);
    assert_eq!(events(&mut h, &listed).len(), 2);
    assert_eq!(events(&mut h, &other).len(), 2);

    // `exclude_me: false` and an eligible list naming one subscriber and the publisher.
    let options = opts(&[
        ("exclude_me", Value::Bool(false)),
        (
            "eligible",
            Value::List(vec![Value::UInt(listed_id), Value::UInt(publisher_id)]),
        ),
        ("disclose_me", Value::Bool(true)),
    ]);
    h.publish(&publisher, "com.news.sport", options, payload.as_payload());
    let to_publisher = events(&mut h, &publisher);
    let to_listed = events(&mut h, &listed);
    assert_eq!(to_publisher.len(), 2, "{to_publisher:?}");
    assert_eq!(to_listed.len(), 2, "{to_listed:?}");
    h.expect_nothing(&other);
    for seen in to_publisher.iter().chain(&to_listed) {
        assert_eq!(
            seen.publisher,
            Some(publisher_id),
            "disclosed on every EVENT"
        );
        assert_eq!(seen.topic.as_deref(), Some("com.news.sport"));
    }

    // An exclude list, by session id.
    let options = opts(&[("exclude", Value::List(vec![Value::UInt(listed_id)]))]);
    h.publish(&publisher, "com.news.sport", options, payload.as_payload());
    h.expect_nothing(&listed);
    let to_other = events(&mut h, &other);
    assert_eq!(to_other.len(), 2);
    assert!(to_other.iter().all(|seen| seen.publisher.is_none()));
}

fn a_realm_may_disclose_every_publisher() {
    let mut realm = RealmConfig::new("realm1");
    realm.disclose_publisher = true;
    let config = RouterConfig {
        realms: vec![realm],
        ..RouterConfig::default()
    };
    let mut h = Harness::with_config(config);
    let publisher = h.join(Json);
    let exact = h.join(MsgPack);
    let by_prefix = h.join(Json);
    h.subscribe(&exact, "com.t");
    h.subscribe_with(&by_prefix, "com.", prefix());
    let publisher_id = h.wamp_session_id(&publisher).unwrap();
    publish_text(&mut h, &publisher, "com.t", "who?");
    assert_eq!(events(&mut h, &exact)[0].publisher, Some(publisher_id));
    let seen = h.recv(&by_prefix);
    let Message::Event { details, .. } = seen.msg() else {
        panic!("expected EVENT, got {:?}", seen.msg())
    };
    assert_eq!(details.get_u64("publisher"), Some(publisher_id));
    assert_eq!(details.get_str("publisher_authrole"), Some("anonymous"));
    assert!(details.get_str("publisher_authid").is_some());
}

fn unsubscribing_and_leaving_remove_pattern_subscriptions_everywhere() {
    let mut h = Harness::new();
    let a = h.join(Json);
    let b = h.join(MsgPack);
    let c = h.join(Json);
    let publisher = h.join(MsgPack);
    let pattern = h.subscribe_with(&a, "com..x", wildcard());
    assert_eq!(h.subscribe_with(&b, "com..x", wildcard()), pattern);
    h.subscribe_with(&c, "com.", prefix());
    unsubscribe(&mut h, &a, pattern);
    publish_text(&mut h, &publisher, "com.y.x", "after a left");
    h.expect_nothing(&a);
    assert_eq!(events(&mut h, &b)[0].subscription, pattern);
    assert_eq!(events(&mut h, &c).len(), 1);

    // The last subscriber's UNSUBSCRIBE deletes it; a new SUBSCRIBE makes a new one.
    unsubscribe(&mut h, &b, pattern);
    publish_text(&mut h, &publisher, "com.y.x", "nobody by wildcard");
    h.expect_nothing(&b);
    assert_eq!(events(&mut h, &c).len(), 1);
    let again = h.subscribe_with(&a, "com..x", wildcard());
    assert_ne!(again, pattern, "a deleted subscription's id is not reused");

    // Sessions that go away take their pattern subscriptions with them.
    h.disconnect(&a);
    h.disconnect(&c);
    publish_text(&mut h, &publisher, "com.y.x", "nobody");
    h.expect_nothing(&b);
    h.assert_tables_empty();
}

fn invalid_patterns_are_refused() {
    let mut h = Harness::new();
    let client = h.join(Json);
    for (topic, options) in [
        ("", prefix()),
        ("", wildcard()),
        ("com. x", wildcard()),
        ("com#a", prefix()),
    ] {
        let request = h.request();
        h.send(
            &client,
            &Message::Subscribe {
                request,
                options,
                topic: topic.into(),
            },
        );
        assert_error(&h.recv(&client), code::SUBSCRIBE, request, uri::INVALID_URI);
    }
    // A pattern with empty components and a trailing-dot prefix are fine.
    h.subscribe_with(&client, "com..x.", wildcard());
    h.subscribe_with(&client, "com.", prefix());
    assert!(!h.was_closed(&client));
}

fn meta_events_reach_pattern_subscribers() {
    let mut h = Harness::new();
    let watcher = h.join(Json);
    let watch = h.subscribe_with(&watcher, "wamp.session.", prefix());
    let newcomer = h.join(MsgPack);
    let newcomer_id = h.wamp_session_id(&newcomer).unwrap();
    let seen = events(&mut h, &watcher);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].subscription, watch);
    assert_eq!(seen[0].topic.as_deref(), Some("wamp.session.on_join"));
    let Value::Dict(details) = &seen[0].args[0] else {
        panic!("on_join carries a dict: {:?}", seen[0].args)
    };
    assert_eq!(details.get_u64("session"), Some(newcomer_id));
    h.disconnect(&newcomer);
    let seen = events(&mut h, &watcher);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].topic.as_deref(), Some("wamp.session.on_leave"));
    assert_eq!(seen[0].args[0], Value::UInt(newcomer_id));
}

fn an_acknowledged_publish_is_refused_when_a_pattern_subscriber_cannot_receive_it() {
    let mut h = Harness::new();
    let publisher = h.join(MsgPack);
    let json_by_pattern = h.join(Json);
    h.subscribe_with(&json_by_pattern, "com.", prefix());
    // NaN has no JSON form.
    let nan = args(MsgPack, &[Value::Float(f64::NAN)]);
    let ack = opts(&[("acknowledge", Value::Bool(true))]);
    let request = h.publish(&publisher, "com.t", ack, nan.as_payload());
    assert_error(
        &h.recv(&publisher),
        code::PUBLISH,
        request,
        uri::INVALID_ARGUMENT,
    );
    h.expect_nothing(&json_by_pattern);
    h.publish(&publisher, "com.t", Dict::new(), nan.as_payload());
    h.expect_nothing(&json_by_pattern);
    assert_eq!(h.stats().events_undeliverable, 1);
}

fn a_publication_crosses_to_another_shard_once_however_many_subscriptions_match_there() {
    let mut h = Harness::new();
    let publisher = h.join(Json);
    // With three shards the next three clients land on shards 1, 2 and 0.
    let far = h.join(MsgPack);
    for options in [Dict::new(), prefix(), wildcard()] {
        let topic = if options.is_empty() {
            "com.a.b"
        } else {
            "com.a"
        };
        let topic = if options.get_str("match") == Some("wildcard") {
            "com..b"
        } else {
            topic
        };
        h.subscribe_with(&far, topic, options);
    }
    let before = h.cluster.shard_messages;
    publish_text(&mut h, &publisher, "com.a.b", "once");
    let crossings = h.cluster.shard_messages - before;
    assert_eq!(events(&mut h, &far).len(), 3);
    let expected = if h.shards() > 1 { 1 } else { 0 };
    assert_eq!(crossings, expected, "one Publish to the far shard");
}

fn events_keep_their_order_per_publisher_and_subscriber_across_subscriptions() {
    let mut h = Harness::new();
    let publisher = h.join(MsgPack);
    let subscriber = h.join(Json);
    let by_prefix = h.subscribe_with(&subscriber, "com.", prefix());
    let exact = h.subscribe(&subscriber, "com.t");
    for n in 0..20u64 {
        let topic = if n % 2 == 0 { "com.t" } else { "com.u" };
        let payload = args(MsgPack, &[Value::UInt(n)]);
        h.publish(&publisher, topic, Dict::new(), payload.as_payload());
    }
    let seen = events(&mut h, &subscriber);
    let numbers = |subscription: u64| -> Vec<Value<'static>> {
        seen.iter()
            .filter(|event| event.subscription == subscription)
            .map(|event| event.args[0].clone())
            .collect()
    };
    assert_eq!(
        numbers(by_prefix),
        (0..20).map(Value::UInt).collect::<Vec<_>>()
    );
    assert_eq!(
        numbers(exact),
        (0..20).step_by(2).map(Value::UInt).collect::<Vec<_>>()
    );
}

fn empty_payload_and_the_publisher_as_its_own_pattern_subscriber() {
    let mut h = Harness::new();
    let client = h.join(Json);
    let id = h.subscribe_with(&client, "com.self", prefix());
    h.publish(
        &client,
        "com.self.x",
        opts(&[("exclude_me", Value::Bool(false))]),
        Payload::empty(Json),
    );
    let seen = events(&mut h, &client);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].subscription, id);
    assert!(seen[0].args.is_empty());
}

// ---------------------------------------------------------------------------- retention

fn retain() -> Dict<'static> {
    opts(&[
        ("retain", Value::Bool(true)),
        ("acknowledge", Value::Bool(true)),
    ])
}

fn get_retained() -> Dict<'static> {
    opts(&[("get_retained", Value::Bool(true))])
}

/// PUBLISH with `options` (acknowledged) and the publication id from PUBLISHED.
fn published(
    h: &mut Harness,
    client: &Client,
    topic: &str,
    options: Dict<'static>,
    text: &str,
) -> u64 {
    let payload = args(client.ser, &[s(text)]);
    let request = h.publish(client, topic, options, payload.as_payload());
    match h.recv(client).msg() {
        Message::Published {
            request: r,
            publication,
        } if r == request => publication,
        other => panic!("expected PUBLISHED, got {other:?}"),
    }
}

/// An EVENT flagged `Details.retained`.
fn retained_event(received: &Received) -> Seen {
    let Message::Event { details, .. } = received.msg() else {
        panic!("expected a retained EVENT, got {:?}", received.msg())
    };
    assert_eq!(details.get_bool("retained"), Some(true), "Details.retained");
    event(received)
}

fn a_retained_event_reaches_later_subscribers_that_ask_for_it() {
    let mut h = Harness::new();
    let publisher = h.join(MsgPack);
    let first = published(&mut h, &publisher, "com.r", retain(), "first");
    let latest = published(&mut h, &publisher, "com.r", retain(), "latest");
    assert_ne!(first, latest);
    // Not retained: does not replace the retained one.
    let ack = opts(&[("acknowledge", Value::Bool(true))]);
    published(&mut h, &publisher, "com.r", ack, "passing");
    assert_eq!(h.stats().events_retained, 2);

    let asks = h.join(Json);
    let id = h.subscribe_with(&asks, "com.r", get_retained());
    let seen = retained_event(&h.recv(&asks));
    assert_eq!(seen.subscription, id);
    assert_eq!(seen.publication, latest, "the last retained one");
    assert_eq!(seen.args, vec![s("latest")]);
    assert_eq!(seen.topic, None, "an exact subscription");
    h.expect_nothing(&asks);

    let does_not_ask = h.join(MsgPack);
    assert_eq!(h.subscribe(&does_not_ask, "com.r"), id);
    h.expect_nothing(&does_not_ask);

    // The publisher's own retained event is not excluded (exclude_me is about live events).
    assert_eq!(h.subscribe_with(&publisher, "com.r", get_retained()), id);
    assert_eq!(retained_event(&h.recv(&publisher)).publication, latest);

    // Live events after that are plain ones.
    published(&mut h, &publisher, "com.r", retain(), "live");
    for client in [&asks, &does_not_ask] {
        let received = h.recv(client);
        let Message::Event { details, .. } = received.msg() else {
            panic!("expected EVENT")
        };
        assert_eq!(details.get_bool("retained"), None);
    }
    assert_eq!(h.stats().retained_delivered, 2);
    // Retained events stay when every subscriber has gone.
    for client in [&asks, &does_not_ask, &publisher] {
        h.disconnect(client);
    }
    assert_eq!(h.stats().retained_now, 1);
    let late = h.join(Json);
    h.subscribe_with(&late, "com.r", get_retained());
    assert_eq!(retained_event(&h.recv(&late)).args, vec![s("live")]);
}

fn a_retained_event_keeps_the_lists_and_the_disclosure_it_was_published_with() {
    let mut h = Harness::new();
    let publisher = h.join(Json);
    let listed = h.join(MsgPack);
    let other = h.join(Json);
    let listed_id = h.wamp_session_id(&listed).unwrap();
    let publisher_id = h.wamp_session_id(&publisher).unwrap();
    let mut options = retain();
    options.insert("eligible", Value::List(vec![Value::UInt(listed_id)]));
    options.insert("disclose_me", true);
    let publication = published(&mut h, &publisher, "com.only", options, "for you");
    h.subscribe_with(&other, "com.only", get_retained());
    h.expect_nothing(&other);
    h.subscribe_with(&listed, "com.only", get_retained());
    let seen = retained_event(&h.recv(&listed));
    assert_eq!(seen.publication, publication);
    assert_eq!(seen.publisher, Some(publisher_id));
    assert_eq!(h.stats().retained_withheld, 1);
}

fn a_pattern_subscription_gets_the_retained_event_of_every_topic_it_matches() {
    let mut h = Harness::new();
    let publisher = h.join(MsgPack);
    for (topic, text) in [
        ("com.p.b", "b"),
        ("com.p.a", "a"),
        ("com.q.a", "qa"),
        ("org.p.a", "other"),
    ] {
        published(&mut h, &publisher, topic, retain(), text);
    }
    let by_prefix = h.join(Json);
    let id = h.subscribe_with(
        &by_prefix,
        "com.p",
        opts(&[("match", s("prefix")), ("get_retained", Value::Bool(true))]),
    );
    let seen: Vec<Seen> = (0..2)
        .map(|_| retained_event(&h.recv(&by_prefix)))
        .collect();
    h.expect_nothing(&by_prefix);
    let topics: Vec<&str> = seen
        .iter()
        .map(|seen| seen.topic.as_deref().unwrap())
        .collect();
    assert_eq!(
        topics,
        ["com.p.a", "com.p.b"],
        "in topic order, with Details.topic"
    );
    assert!(seen.iter().all(|seen| seen.subscription == id));

    let by_wildcard = h.join(MsgPack);
    h.subscribe_with(
        &by_wildcard,
        "com..a",
        opts(&[
            ("match", s("wildcard")),
            ("get_retained", Value::Bool(true)),
        ]),
    );
    let seen: Vec<Seen> = (0..2)
        .map(|_| retained_event(&h.recv(&by_wildcard)))
        .collect();
    let args: Vec<Value<'static>> = seen.iter().map(|seen| seen.args[0].clone()).collect();
    assert_eq!(args, vec![s("a"), s("qa")]);
    h.expect_nothing(&by_wildcard);
}

fn retained_events_are_bounded_per_realm() {
    // 1,000 bytes: room for one small event, never for a 2 KiB one.
    let config = RouterConfig {
        max_retained_bytes_per_realm: 1_000,
        ..RouterConfig::default()
    };
    let mut h = Harness::with_config(config);
    let publisher = h.join(MsgPack);
    let big = "x".repeat(2_048);
    published(&mut h, &publisher, "com.big", retain(), &big);
    published(&mut h, &publisher, "com.small", retain(), "small");
    let stats = h.stats();
    assert_eq!((stats.events_retained, stats.retained_declined), (1, 1));
    assert_eq!(stats.retained_now, 1);
    assert!(stats.retained_bytes <= 1_000, "{stats:?}");
    let subscriber = h.join(Json);
    h.subscribe_with(&subscriber, "com.big", get_retained());
    h.expect_nothing(&subscriber);
    h.subscribe_with(&subscriber, "com.small", get_retained());
    assert_eq!(retained_event(&h.recv(&subscriber)).args, vec![s("small")]);
    // A newer event that does not fit leaves its topic without a retained one, not with an
    // outdated one.
    published(&mut h, &publisher, "com.small", retain(), &big);
    h.recv(&subscriber);
    let again = h.join(MsgPack);
    h.subscribe_with(&again, "com.small", get_retained());
    h.expect_nothing(&again);
    assert_eq!(h.stats().retained_now, 0);
    assert_eq!(h.stats().retained_bytes, 0);
}

fn a_subscriber_gone_before_its_retained_events_arrive_gets_nothing_and_leaves_no_trace() {
    let mut h = Harness::new();
    let publisher = h.join(MsgPack);
    published(&mut h, &publisher, "com.gone", retain(), "x");
    let subscriber = h.join(Json);
    let request = h.request();
    // SUBSCRIBE and the transport's end in one go: the fetch may still be out.
    let mut frame = Vec::new();
    wampring::wire::encode(
        &Message::Subscribe {
            request,
            options: get_retained(),
            topic: "com.gone".into(),
        },
        subscriber.ser,
        &mut frame,
    )
    .unwrap();
    h.cluster.send_frame(subscriber.conn, &frame);
    h.cluster.close(subscriber.conn);
    h.cluster.drain();
    h.assert_tables_empty();
    assert_eq!(h.stats().inflight_registry_ops, 0, "no fetch left");
}

fn retained_events_come_right_after_subscribed_before_any_live_event() {
    let mut h = Harness::new();
    let publisher = h.join_on(0, MsgPack);
    let retained = published(&mut h, &publisher, "com.race", retain(), "old");
    let shard = h.shards() - 1;
    // Another subscriber on the same shard: the subscription is in place there, so SUBSCRIBED
    // comes at once, without a Join, and the live PUBLISH below reaches it.
    let holder = h.join_on(shard, MsgPack);
    h.subscribe(&holder, "com.race");
    let subscriber = h.join_on(shard, Json);
    let frame = |message: &Message<'_>, ser| {
        let mut frame = Vec::new();
        wampring::wire::encode(message, ser, &mut frame).unwrap();
        frame
    };
    // SUBSCRIBE, then at once a live PUBLISH, before any shard channel is delivered: every
    // shard answers get_retained from its own copy, so nothing can overtake the retained event.
    let request = h.request();
    let subscribe = frame(
        &Message::Subscribe {
            request,
            options: get_retained(),
            topic: "com.race".into(),
        },
        subscriber.ser,
    );
    h.cluster.send_frame(subscriber.conn, &subscribe);
    let payload = args(MsgPack, &[s("new")]);
    let live = frame(
        &Message::Publish {
            request: h.request(),
            options: Dict::new(),
            topic: "com.race".into(),
            payload: payload.as_payload(),
        },
        MsgPack,
    );
    h.cluster.send_frame(publisher.conn, &live);
    h.cluster.drain();
    assert!(matches!(
        h.recv(&subscriber).msg(),
        Message::Subscribed { request: r, .. } if r == request
    ));
    let first = retained_event(&h.recv(&subscriber));
    assert_eq!((first.publication, first.args), (retained, vec![s("old")]));
    let second = event(&h.recv(&subscriber));
    assert_eq!(second.args, vec![s("new")]);
    h.expect_nothing(&subscriber);
}

// ---- event history ----

fn history(uri: &str, matching: MatchPolicy, limit: usize) -> HistoryConfig {
    HistoryConfig {
        uri: uri.into(),
        matching,
        limit,
        max_bytes: 1 << 20,
    }
}

/// realm1 keeping the history of the spec's example (two exact topics and a prefix) and of a
/// wildcard pattern bounded to 3 events.
fn history_config() -> RouterConfig {
    let mut realm = RealmConfig::new("realm1");
    realm.history = vec![
        history("com.log.auth", MatchPolicy::Exact, 100),
        history("com.log.basket", MatchPolicy::Exact, 100),
        history("com.log", MatchPolicy::Prefix, 100),
        history("com..alarm", MatchPolicy::Wildcard, 3),
    ];
    RouterConfig {
        realms: vec![realm],
        ..RouterConfig::default()
    }
}

/// One event of a `get_events` answer.
#[derive(Debug, Clone, PartialEq)]
struct Kept {
    timestamp: String,
    subscription: u64,
    publication: u64,
    topic: String,
    /// `details.topic`.
    details_topic: Option<String>,
    /// `details.publisher`.
    publisher: Option<u64>,
    args: Vec<Value<'static>>,
    kwargs: Option<Dict<'static>>,
}

fn kept(value: &Value<'static>) -> Kept {
    let event = value.as_dict().expect("each event is a dict");
    let details = event.get_dict("details").expect("details");
    Kept {
        timestamp: event.get_str("timestamp").expect("timestamp").to_string(),
        subscription: event.get_u64("subscription").expect("subscription"),
        publication: event.get_u64("publication").expect("publication"),
        topic: event.get_str("topic").expect("topic").to_string(),
        details_topic: details.get_str("topic").map(str::to_string),
        publisher: details.get_u64("publisher"),
        args: event
            .get("args")
            .map_or_else(Vec::new, |args| args.as_list().expect("args").to_vec()),
        kwargs: event.get_dict("kwargs").cloned(),
    }
}

/// `wamp.subscription.get_events(*arguments, **filters)`: the events, or the ERROR's URI.
fn get_events(
    h: &mut Harness,
    client: &Client,
    arguments: &[Value<'_>],
    filters: &[(&'static str, Value<'static>)],
) -> Result<Vec<Kept>, String> {
    let payload = args_kw(client.ser, arguments, &opts(filters));
    let request = h.call(
        client,
        "wamp.subscription.get_events",
        Dict::new(),
        payload.as_payload(),
    );
    let received = h.recv(client);
    match received.msg() {
        Message::Result {
            request: r,
            payload,
            ..
        } if r == request => {
            let (args, kwargs) = payload_values(&payload);
            assert_eq!(
                kwargs, None,
                "one argument, the list, as Crossbar.io answers"
            );
            assert_eq!(args.len(), 1, "{args:?}");
            Ok(args[0]
                .as_list()
                .expect("a list")
                .iter()
                .map(kept)
                .collect())
        }
        Message::Error {
            request: r, error, ..
        } if r == request => Err(error.to_string()),
        other => panic!("expected RESULT or ERROR, got {other:?}"),
    }
}

fn publications(events: &[Kept]) -> Vec<u64> {
    events.iter().map(|event| event.publication).collect()
}

fn ack() -> Dict<'static> {
    opts(&[("acknowledge", Value::Bool(true))])
}

fn event_history_keeps_each_subscription_s_events_as_the_spec_example_says() {
    let mut h = Harness::with_config(history_config());
    let publisher = h.join(Json);
    // Published before anyone subscribed: history subscriptions exist from the start.
    let p1 = published(&mut h, &publisher, "com.log.auth", ack(), "1");
    let p2 = published(&mut h, &publisher, "com.log.basket", ack(), "2");

    let reader = h.join(MsgPack);
    let auth = h.subscribe(&reader, "com.log.auth");
    let basket = h.subscribe(&reader, "com.log.basket");
    let log = h.subscribe_with(&reader, "com.log", prefix());
    let other = h.join(Json);
    assert_eq!(
        h.subscribe(&other, "com.log.auth"),
        auth,
        "one subscription"
    );

    let p3 = published(&mut h, &publisher, "com.log.basket", ack(), "3");
    let p4 = published(&mut h, &publisher, "com.log.basket", ack(), "4");
    let p5 = published(&mut h, &publisher, "com.log.checkout", ack(), "5");
    // Live events are unaffected: the prefix subscriber got 3 to 5, the exact ones theirs.
    let live = events(&mut h, &reader);
    assert_eq!(live.len(), 5, "{live:?}");
    h.expect_nothing(&other);

    let of = |h: &mut Harness, subscription| {
        get_events(h, &reader, &[Value::UInt(subscription)], &[]).unwrap()
    };
    assert_eq!(publications(&of(&mut h, auth)), [p1]);
    assert_eq!(publications(&of(&mut h, basket)), [p2, p3, p4]);
    let all = of(&mut h, log);
    assert_eq!(publications(&all), [p1, p2, p3, p4, p5], "in arrival order");
    assert_eq!(all[4].topic, "com.log.checkout");
    assert_eq!(all[4].details_topic.as_deref(), Some("com.log.checkout"));
    assert_eq!(all[4].subscription, log);
    assert_eq!(
        all[4].args,
        vec![s("5")],
        "a JSON payload read back in MessagePack"
    );
    assert!(all[0].timestamp.ends_with('Z') && all[0].timestamp.len() == 24);
    assert!(all
        .windows(2)
        .all(|pair| pair[0].timestamp <= pair[1].timestamp));
    let exact = of(&mut h, basket);
    assert_eq!(
        exact[0].details_topic, None,
        "an exact subscription's EVENT has no topic"
    );
    assert_eq!(exact[0].topic, "com.log.basket");

    // Every subscriber gone: the ids and the history stay.
    for client in [&reader, &other] {
        h.disconnect(client);
    }
    let reader = h.join(Json);
    assert_eq!(h.subscribe_with(&reader, "com.log", prefix()), log);
    let again = get_events(&mut h, &reader, &[Value::UInt(log)], &[]).unwrap();
    assert_eq!(publications(&again), [p1, p2, p3, p4, p5]);
    assert_eq!(h.stats().history_now, 1 + 3 + 5);
    assert_eq!(h.stats().history_recorded, 9);
}

fn get_events_takes_the_spec_s_filters_and_crossbar_s_signature() {
    let mut h = Harness::with_config(history_config());
    let publisher = h.join(MsgPack);
    let reader = h.join(Json);
    let log = h.subscribe_with(&reader, "com.log", prefix());
    let mut all = Vec::new();
    for (index, topic) in [
        "com.log.a",
        "com.log.b",
        "com.log.a",
        "com.log.b",
        "com.log.a",
    ]
    .iter()
    .enumerate()
    {
        all.push(published(
            &mut h,
            &publisher,
            topic,
            ack(),
            &index.to_string(),
        ));
        // Ten seconds between publications, so the time filters can tell them apart.
        let later = h.cluster.now + 10_000;
        h.cluster.advance_to(later);
    }
    events(&mut h, &reader);
    let id = Value::UInt(log);
    let mut select = |filters: &[(&'static str, Value<'static>)]| {
        get_events(&mut h, &reader, std::slice::from_ref(&id), filters)
            .map(|events| publications(&events))
    };
    let at = |index: usize| Value::UInt(all[index]);
    assert_eq!(select(&[]).unwrap(), all);
    assert_eq!(select(&[("limit", Value::UInt(2))]).unwrap(), all[..2]);
    let newest_two = select(&[("reverse", Value::Bool(true)), ("limit", Value::UInt(2))]);
    assert_eq!(newest_two.unwrap(), [all[4], all[3]]);
    assert_eq!(
        select(&[("topic", s("com.log.b"))]).unwrap(),
        [all[1], all[3]]
    );
    // Paging forward with after_publication, backward with before_publication.
    let page = select(&[("after_publication", at(1)), ("limit", Value::UInt(2))]);
    assert_eq!(page.unwrap(), all[2..4]);
    let page = select(&[
        ("before_publication", at(3)),
        ("reverse", Value::Bool(true)),
    ]);
    assert_eq!(page.unwrap(), [all[2], all[1], all[0]]);
    let range = select(&[("from_publication", at(1)), ("until_publication", at(3))]);
    assert_eq!(range.unwrap(), all[1..4]);
    assert_eq!(
        select(&[("after_publication", at(4))]).unwrap(),
        Vec::<u64>::new()
    );
    let unknown = select(&[("after_publication", Value::UInt(12345))]);
    assert_eq!(unknown.unwrap_err(), uri::INVALID_ARGUMENT);

    // Time filters, with timestamps the router gave.
    let stamps: Vec<String> = get_events(&mut h, &reader, std::slice::from_ref(&id), &[])
        .unwrap()
        .into_iter()
        .map(|event| event.timestamp)
        .collect();
    let time = |index: usize| Value::Str(stamps[index].clone().into());
    let mut select = |filters: &[(&'static str, Value<'static>)]| {
        get_events(&mut h, &reader, std::slice::from_ref(&id), filters)
            .map(|events| publications(&events))
    };
    assert_eq!(select(&[("from_time", time(1))]).unwrap(), all[1..]);
    assert_eq!(select(&[("after_time", time(1))]).unwrap(), all[2..]);
    assert_eq!(select(&[("before_time", time(3))]).unwrap(), all[..3]);
    assert_eq!(select(&[("until_time", time(3))]).unwrap(), all[..4]);
    let and = select(&[
        ("after_time", time(0)),
        ("until_time", time(3)),
        ("topic", s("com.log.a")),
    ]);
    assert_eq!(and.unwrap(), [all[2]]);

    // Crossbar.io's form: get_events(subscription, limit), newest first.
    let crossbar = get_events(&mut h, &reader, &[id.clone(), Value::UInt(3)], &[]).unwrap();
    assert_eq!(publications(&crossbar), [all[4], all[3], all[2]]);

    // Bad arguments and unknown subscriptions.
    let mut error = |arguments: &[Value<'_>], filters: &[(&'static str, Value<'static>)]| {
        get_events(&mut h, &reader, arguments, filters).unwrap_err()
    };
    for filters in [
        &[("limit", Value::UInt(0))][..],
        &[("revers", Value::Bool(true))][..],
        &[("from_time", s("yesterday"))][..],
        &[("reverse", s("yes"))][..],
    ] {
        assert_eq!(
            error(std::slice::from_ref(&id), filters),
            uri::INVALID_ARGUMENT,
            "{filters:?}"
        );
    }
    assert_eq!(error(&[], &[]), uri::INVALID_ARGUMENT);
    assert_eq!(
        error(&[id.clone(), Value::UInt(2)], &[("limit", Value::UInt(2))]),
        uri::INVALID_ARGUMENT
    );
    assert_eq!(
        error(&[Value::UInt(987_654)], &[]),
        uri::NO_SUCH_SUBSCRIPTION
    );
    let plain = h.subscribe(&reader, "com.plain");
    assert_eq!(
        get_events(&mut h, &reader, &[Value::UInt(plain)], &[]).unwrap_err(),
        HISTORY_UNAVAILABLE
    );
    assert_eq!(
        h.stats().history_queries,
        16,
        "bad arguments never reach the owner"
    );
}

/// An event whose payload only CBOR can carry (a tag) reaches a CBOR subscriber untouched but
/// is not kept: a kept event must be readable by whoever asks, in any serializer, and one that
/// is not must never make the rest of the history unreadable.
fn history_does_not_keep_what_cannot_be_read_back() {
    let mut h = Harness::with_config(history_config());
    let publisher = h.join(Serializer::Cbor);
    let cbor_reader = h.join(Serializer::Cbor);
    let json_reader = h.join(Json);
    let log = h.subscribe(&cbor_reader, "com.log.auth");
    let before = published(&mut h, &publisher, "com.log.auth", ack(), "before");
    events(&mut h, &cbor_reader);
    // [tag 1 1700000000], and a transparent (binary) payload.
    let only_cbor: &[u8] = &[0x81, 0xc1, 0x1a, 0x65, 0x53, 0xf1, 0x00];
    let transparent: &[u8] = &[0x43, 1, 2, 3];
    for raw in [only_cbor, transparent] {
        let payload = Payload {
            ser: Serializer::Cbor,
            count: 1,
            raw,
        };
        // Not acknowledged: with subscribers on other shards an acknowledged one is refused
        // when any serializer could not carry it (see the transcoding rules).
        h.publish(&publisher, "com.log.auth", Dict::new(), payload);
        let received = h.recv(&cbor_reader);
        let Message::Event { payload, .. } = received.msg() else {
            panic!("expected EVENT")
        };
        assert_eq!(payload.raw, raw, "forwarded untouched to a CBOR subscriber");
    }
    let after = published(&mut h, &publisher, "com.log.auth", ack(), "after");
    events(&mut h, &cbor_reader);
    assert_eq!(h.stats().history_skipped, 2);
    for reader in [&cbor_reader, &json_reader] {
        let kept = get_events(&mut h, reader, &[Value::UInt(log)], &[]).unwrap();
        let publications: Vec<u64> = kept.iter().map(|k| k.publication).collect();
        assert_eq!(
            publications,
            [before, after],
            "the readable events, in order"
        );
    }
}

fn history_is_bounded_skips_session_lists_and_reapplies_identity_lists() {
    let mut h = Harness::with_config(history_config());
    let publisher = h.join(Json);
    let reader = h.join(MsgPack);
    let reader_id = h.wamp_session_id(&reader).unwrap();
    let publisher_id = h.wamp_session_id(&publisher).unwrap();
    let alarms = h.subscribe_with(&reader, "com..alarm", wildcard());

    // The wildcard entry keeps 3 events: the oldest go.
    let mut kept = Vec::new();
    for index in 0..5 {
        let topic = if index % 2 == 0 {
            "com.fire.alarm"
        } else {
            "com.flood.alarm"
        };
        kept.push(published(&mut h, &publisher, topic, ack(), "x"));
    }
    events(&mut h, &reader);
    let of = |h: &mut Harness| {
        let events = get_events(h, &reader, &[Value::UInt(alarms)], &[]).unwrap();
        publications(&events)
    };
    assert_eq!(of(&mut h), kept[2..]);
    assert_eq!(h.stats().history_evicted, 2);

    // Session-id lists: not kept at all. Authrole lists: kept, applied to whoever asks.
    let with = |list: &'static str, value: Value<'static>| {
        let mut options = ack();
        options.insert(list, value);
        options
    };
    let ids = Value::List(vec![Value::UInt(reader_id)]);
    published(
        &mut h,
        &publisher,
        "com.fire.alarm",
        with("eligible", ids.clone()),
        "x",
    );
    published(
        &mut h,
        &publisher,
        "com.fire.alarm",
        with("exclude", ids),
        "x",
    );
    assert_eq!(h.stats().history_skipped, 2);
    let admins = Value::List(vec![s("admin")]);
    let for_admins = published(
        &mut h,
        &publisher,
        "com.fire.alarm",
        with("eligible_authrole", admins.clone()),
        "x",
    );
    let not_for_admins = published(
        &mut h,
        &publisher,
        "com.fire.alarm",
        with("exclude_authrole", admins),
        "x",
    );
    let anonymous = Value::List(vec![s("anonymous")]);
    let not_for_anonymous = published(
        &mut h,
        &publisher,
        "com.fire.alarm",
        with("exclude_authrole", anonymous),
        "x",
    );
    events(&mut h, &reader);
    assert_eq!(h.stats().history_now, 3);
    let seen = of(&mut h);
    assert_eq!(
        seen,
        [not_for_admins],
        "kept: {for_admins}, {not_for_anonymous} too"
    );

    // Disclosure is kept with the event.
    let disclosed = with("disclose_me", Value::Bool(true));
    let publication = published(&mut h, &publisher, "com.fire.alarm", disclosed, "x");
    events(&mut h, &reader);
    let events = get_events(&mut h, &reader, &[Value::UInt(alarms)], &[]).unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.publication, last.publisher),
        (publication, Some(publisher_id))
    );
    assert_eq!(last.details_topic.as_deref(), Some("com.fire.alarm"));
}

fn history_respects_max_bytes_and_carries_kwargs_between_serializers() {
    let mut realm = RealmConfig::new("realm1");
    realm.history = vec![HistoryConfig {
        uri: "com.big".into(),
        matching: MatchPolicy::Exact,
        limit: 1000,
        max_bytes: 2048,
    }];
    let config = RouterConfig {
        realms: vec![realm],
        ..RouterConfig::default()
    };
    let mut h = Harness::with_config(config);
    let publisher = h.join(MsgPack);
    let reader = h.join(Json);
    let big = h.subscribe(&reader, "com.big");
    let mut kwargs = Dict::new();
    kwargs.insert("n", Value::UInt(7));
    kwargs.insert("bin", Value::Bin(vec![1, 2, 3].into()));
    let payload = args_kw(MsgPack, &[s(&"y".repeat(600))], &kwargs);
    let mut sent = Vec::new();
    for _ in 0..4 {
        let request = h.publish(&publisher, "com.big", ack(), payload.as_payload());
        match h.recv(&publisher).msg() {
            Message::Published {
                request: r,
                publication,
            } if r == request => sent.push(publication),
            other => panic!("expected PUBLISHED, got {other:?}"),
        }
    }
    // Too big for the whole bound: not kept.
    let huge = args(MsgPack, &[s(&"z".repeat(4000))]);
    h.publish(&publisher, "com.big", Dict::new(), huge.as_payload());
    events(&mut h, &reader);
    let stats = h.stats();
    assert_eq!(stats.history_declined, 1);
    assert!(stats.history_bytes <= 2048, "{}", stats.history_bytes);
    let kept = get_events(&mut h, &reader, &[Value::UInt(big)], &[]).unwrap();
    let count = kept.len();
    assert!(
        (1..4).contains(&count),
        "only what fits, the newest: {count}"
    );
    assert_eq!(publications(&kept), sent[4 - count..]);
    let kwargs = kept[0].kwargs.as_ref().expect("kwargs");
    assert_eq!(kwargs.get_u64("n"), Some(7));
    assert_eq!(
        kwargs.get("bin"),
        Some(&Value::Bin(vec![1u8, 2, 3].into())),
        "binary survives MessagePack -> JSON"
    );
}

fn the_router_s_meta_events_may_keep_history() {
    let mut realm = RealmConfig::new("realm1");
    realm.history = vec![history("wamp.session.on_join", MatchPolicy::Exact, 2)];
    let config = RouterConfig {
        realms: vec![realm],
        ..RouterConfig::default()
    };
    let mut h = Harness::with_config(config);
    // Nobody subscribed to the meta event: it is kept all the same.
    let joined: Vec<Client> = (0..3).map(|_| h.join(Json)).collect();
    let reader = h.join(MsgPack);
    let on_join = h.subscribe(&reader, "wamp.session.on_join");
    let kept = get_events(&mut h, &reader, &[Value::UInt(on_join)], &[]).unwrap();
    let sessions: Vec<Option<u64>> = kept
        .iter()
        .map(|event| {
            event.args[0]
                .as_dict()
                .and_then(|details| details.get_u64("session"))
        })
        .collect();
    let newest_two = [&joined[2], &reader].map(|client| h.wamp_session_id(client));
    assert_eq!(sessions, newest_two, "the newest 2 joins: {kept:?}");
}

at_1_and_3_shards!(
    history_does_not_keep_what_cannot_be_read_back,
    prefix_and_wildcard_subscriptions_receive_what_matches_them,
    one_session_with_several_matching_subscriptions_gets_one_event_per_subscription,
    a_uri_subscribed_exact_and_as_a_pattern_is_two_subscriptions_and_subscribing_again_is_one,
    publisher_exclusion_black_white_lists_and_disclosure_apply_to_each_subscription,
    a_realm_may_disclose_every_publisher,
    unsubscribing_and_leaving_remove_pattern_subscriptions_everywhere,
    invalid_patterns_are_refused,
    meta_events_reach_pattern_subscribers,
    an_acknowledged_publish_is_refused_when_a_pattern_subscriber_cannot_receive_it,
    a_publication_crosses_to_another_shard_once_however_many_subscriptions_match_there,
    events_keep_their_order_per_publisher_and_subscriber_across_subscriptions,
    empty_payload_and_the_publisher_as_its_own_pattern_subscriber,
    a_retained_event_reaches_later_subscribers_that_ask_for_it,
    a_retained_event_keeps_the_lists_and_the_disclosure_it_was_published_with,
    a_pattern_subscription_gets_the_retained_event_of_every_topic_it_matches,
    retained_events_are_bounded_per_realm,
    a_subscriber_gone_before_its_retained_events_arrive_gets_nothing_and_leaves_no_trace,
    retained_events_come_right_after_subscribed_before_any_live_event,
    event_history_keeps_each_subscription_s_events_as_the_spec_example_says,
    get_events_takes_the_spec_s_filters_and_crossbar_s_signature,
    history_is_bounded_skips_session_lists_and_reapplies_identity_lists,
    history_respects_max_bytes_and_carries_kwargs_between_serializers,
    the_router_s_meta_events_may_keep_history,
);
