//! Scenario tests of the Advanced Profile PubSub features of the sans-IO router (digest §9.3):
//! prefix and wildcard subscriptions next to exact ones (one EVENT per matching subscription,
//! `Details.topic` on pattern ones, filters and disclosure applied to each), publisher
//! disclosure by realm policy, event retention (`retain`, `get_retained`, the lists a retained
//! event keeps, the bound on retained bytes), and the tables emptying again when subscribers
//! go. Each
//! scenario runs at 1 shard and at 3 (clients dealt out round-robin, so publishers and
//! subscribers sit on different shards and every rule crosses the shard channels) through the
//! shared harness of `tests/scenario`.

mod sansio;
#[macro_use]
mod scenario;

use std::collections::BTreeMap;

use scenario::*;
use wampring::router::{uri, RealmConfig, RouterConfig};
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

at_1_and_3_shards!(
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
);
