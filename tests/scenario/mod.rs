//! The scenario harness shared by the router's scenario tests (`router_scenarios`,
//! `router_advanced_rpc`, `router_advanced_pubsub`): clients joined to 1 or N sans-IO router shards (`tests/sansio`),
//! driven by encoded client frames and checked by decoding what the routers send, plus
//! `at_1_and_3_shards!`, which runs each scenario on one shard and on three.

#![allow(dead_code)]

use std::borrow::Cow;
use std::cell::Cell;

use bytes::Bytes;
use wampring::router::{uri, RegistrationInfo, RouterConfig, RouterStats, SessionKey};
use wampring::wire::{self, Dict, Message, OwnedPayload, Payload, Serializer, Value};

use crate::sansio::{Cluster, Conn};

thread_local! {
    /// Shards of every `Harness` this test thread builds (set by `at_1_and_3_shards!`).
    pub static SHARDS: Cell<usize> = const { Cell::new(1) };
}

/// Runs `scenario` with every harness it builds spread over `shards` shards.
pub fn with_shards(shards: usize, scenario: fn()) {
    SHARDS.with(|cell| cell.set(shards));
    scenario();
}

/// A frame the router sent, with the serializer to decode it in.
pub struct Received {
    pub frame: Bytes,
    pub ser: Serializer,
}

impl Received {
    pub fn msg(&self) -> Message<'_> {
        wire::decode(self.ser, &self.frame)
            .unwrap_or_else(|e| panic!("router sent an undecodable frame: {e}"))
    }
}

#[derive(Copy, Clone, Debug)]
pub struct Client {
    pub conn: Conn,
    pub key: SessionKey,
    pub ser: Serializer,
    /// WAMP session id once welcomed.
    pub id: u64,
}

/// The routers of 1 or N shards plus per-session mailboxes; clients are placed round-robin.
pub struct Harness {
    pub cluster: Cluster,
    pub config: RouterConfig,
    pub next_request: u64,
    pub next_shard: usize,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(RouterConfig::default())
    }

    pub fn with_config(config: RouterConfig) -> Harness {
        Harness::seeded(config, 42)
    }

    pub fn seeded(config: RouterConfig, seed: u64) -> Harness {
        let shards = SHARDS.with(Cell::get);
        Harness {
            cluster: Cluster::with_config(shards, seed, config.clone()),
            config,
            next_request: 0,
            next_shard: 0,
        }
    }

    /// Starts over with routers seeded with `seed`.
    pub fn reseed(&mut self, seed: u64) {
        *self = Harness::seeded(self.config.clone(), seed);
    }

    pub fn shards(&self) -> usize {
        self.cluster.shards()
    }

    /// A fresh request id (sequential over the whole harness; per-session sequences are only
    /// needed with `strict_request_ids`, whose test counts itself).
    pub fn request(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    pub fn connect(&mut self, ser: Serializer) -> Client {
        let shard = self.next_shard % self.shards();
        self.next_shard += 1;
        self.connect_on(shard, ser)
    }

    /// Connects on the next shard, through listener `listener`.
    pub fn connect_via(&mut self, listener: usize, ser: Serializer) -> Client {
        let shard = self.next_shard % self.shards();
        self.next_shard += 1;
        let conn = self.cluster.open_on_listener(shard, ser, listener);
        Client {
            conn,
            key: conn.key,
            ser,
            id: 0,
        }
    }

    pub fn connect_on(&mut self, shard: usize, ser: Serializer) -> Client {
        let conn = self.cluster.open(shard, ser);
        Client {
            conn,
            key: conn.key,
            ser,
            id: 0,
        }
    }

    pub fn send_frame(&mut self, client: &Client, frame: &[u8]) {
        self.cluster.now += 1;
        self.cluster.send_frame(client.conn, frame);
        self.cluster.drain();
    }

    pub fn send(&mut self, client: &Client, msg: &Message<'_>) {
        let mut frame = Vec::new();
        wire::encode(msg, client.ser, &mut frame).expect("test message encodes");
        self.send_frame(client, &frame);
    }

    /// The next message sent to `client` (panics when there is none).
    pub fn recv(&mut self, client: &Client) -> Received {
        let frame = self.cluster.recv(client.conn);
        let frame = frame.unwrap_or_else(|| panic!("{client:?} expected a message, got nothing"));
        Received {
            frame,
            ser: client.ser,
        }
    }

    pub fn try_recv(&mut self, client: &Client) -> Option<Received> {
        let frame = self.cluster.recv(client.conn)?;
        Some(Received {
            frame,
            ser: client.ser,
        })
    }

    pub fn expect_nothing(&mut self, client: &Client) {
        if let Some(received) = self.try_recv(client) {
            panic!("{client:?} expected nothing, got {:?}", received.msg());
        }
    }

    pub fn was_closed(&self, client: &Client) -> bool {
        self.cluster.was_closed(client.conn)
    }

    /// The transport of `client` goes away.
    pub fn disconnect(&mut self, client: &Client) {
        self.cluster.now += 1;
        self.cluster.close(client.conn);
        self.cluster.drain();
    }

    /// Every shard takes a reloaded configuration (SIGHUP), then the channels are drained.
    pub fn reconfigure(&mut self, config: RouterConfig) {
        self.cluster.now += 1;
        self.cluster.reconfigure(&config);
        self.cluster.drain();
        self.config = config;
    }

    /// Every shard shuts down.
    pub fn shutdown(&mut self) {
        for shard in 0..self.shards() {
            self.cluster.shutdown(shard);
        }
        self.cluster.drain();
    }

    /// Counters summed over shards (see `Cluster::stats`).
    pub fn stats(&self) -> RouterStats {
        self.cluster.stats()
    }

    pub fn session_count(&self) -> usize {
        self.cluster
            .routers
            .iter()
            .map(|router| router.session_count())
            .sum()
    }

    /// The registration as every shard's replica sees it (they must agree).
    pub fn registration(&self, realm: &str, procedure: &str) -> Option<RegistrationInfo> {
        let first = self.cluster.routers[0].registration(realm, procedure);
        for router in &self.cluster.routers[1..] {
            assert_eq!(
                router.registration(realm, procedure),
                first,
                "replicas differ"
            );
        }
        first
    }

    pub fn wamp_session_id(&self, client: &Client) -> Option<u64> {
        self.cluster.routers[client.conn.shard].wamp_session_id(client.key)
    }

    pub fn hello(&mut self, client: &Client, realm: &str, details: Dict<'static>) {
        self.send(
            client,
            &Message::Hello {
                realm: Cow::Owned(realm.to_string()),
                details,
            },
        );
    }

    /// Connects and joins `realm1` with all four roles.
    pub fn join(&mut self, ser: Serializer) -> Client {
        let client = self.connect(ser);
        self.welcome(client)
    }

    pub fn join_on(&mut self, shard: usize, ser: Serializer) -> Client {
        let client = self.connect_on(shard, ser);
        self.welcome(client)
    }

    pub fn welcome(&mut self, client: Client) -> Client {
        self.welcome_with(client, hello_details())
    }

    /// HELLO to `realm1` with `details`; the WELCOME's session id goes into the client.
    pub fn welcome_with(&mut self, mut client: Client, details: Dict<'static>) -> Client {
        self.hello(&client, "realm1", details);
        match self.recv(&client).msg() {
            Message::Welcome { session, .. } => client.id = session,
            other => panic!("expected WELCOME, got {other:?}"),
        }
        client
    }

    pub fn register(&mut self, client: &Client, procedure: &str) -> u64 {
        let request = self.request();
        self.send(
            client,
            &Message::Register {
                request,
                options: Dict::new(),
                procedure: procedure.to_string().into(),
            },
        );
        match self.recv(client).msg() {
            Message::Registered {
                request: r,
                registration,
            } => {
                assert_eq!(r, request);
                registration
            }
            other => panic!("expected REGISTERED, got {other:?}"),
        }
    }

    pub fn subscribe(&mut self, client: &Client, topic: &str) -> u64 {
        self.subscribe_with(client, topic, Dict::new())
    }

    /// SUBSCRIBE with `options` (`match`, ...); returns the subscription id.
    pub fn subscribe_with(&mut self, client: &Client, topic: &str, options: Dict<'static>) -> u64 {
        let request = self.request();
        self.send(
            client,
            &Message::Subscribe {
                request,
                options,
                topic: topic.to_string().into(),
            },
        );
        match self.recv(client).msg() {
            Message::Subscribed {
                request: r,
                subscription,
            } => {
                assert_eq!(r, request);
                subscription
            }
            other => panic!("expected SUBSCRIBED, got {other:?}"),
        }
    }

    /// Sends CALL and returns its request id.
    pub fn call(
        &mut self,
        client: &Client,
        procedure: &str,
        options: Dict<'static>,
        payload: Payload<'_>,
    ) -> u64 {
        let request = self.request();
        self.send(
            client,
            &Message::Call {
                request,
                options,
                procedure: procedure.to_string().into(),
                payload,
            },
        );
        request
    }

    pub fn publish(
        &mut self,
        client: &Client,
        topic: &str,
        options: Dict<'static>,
        payload: Payload<'_>,
    ) -> u64 {
        let request = self.request();
        self.send(
            client,
            &Message::Publish {
                request,
                options,
                topic: topic.to_string().into(),
                payload,
            },
        );
        request
    }

    /// Sends REGISTER with `options` and returns the request id.
    pub fn send_register(
        &mut self,
        client: &Client,
        procedure: &str,
        options: Dict<'static>,
    ) -> u64 {
        let request = self.request();
        self.send(
            client,
            &Message::Register {
                request,
                options,
                procedure: procedure.to_string().into(),
            },
        );
        request
    }

    pub fn unregister(&mut self, client: &Client, registration: u64) {
        let request = self.request();
        self.send(
            client,
            &Message::Unregister {
                request,
                registration,
            },
        );
        match self.recv(client).msg() {
            Message::Unregistered { request: r, .. } if r == request => {}
            other => panic!("expected UNREGISTERED, got {other:?}"),
        }
    }

    /// No call is pending anywhere (entries of either side), and `registrations` remain.
    pub fn assert_tables_empty_but_registrations(&self, registrations: usize) {
        let stats = self.stats();
        assert_eq!(stats.registrations, registrations);
        assert_eq!(stats.pending_calls, 0, "{stats:?}");
        assert_eq!(stats.pending_entries, 0, "{stats:?}");
    }

    /// Registration, subscription and pending-call tables are empty.
    pub fn assert_tables_empty(&self) {
        let stats = self.stats();
        assert_eq!(stats.registrations, 0, "registrations left: {stats:?}");
        assert_eq!(stats.subscriptions, 0, "subscriptions left: {stats:?}");
        assert_eq!(stats.pending_calls, 0, "pending calls left: {stats:?}");
        assert_eq!(stats.inflight_registry_ops, 0, "ops in flight: {stats:?}");
    }
}

pub fn hello_details() -> Dict<'static> {
    let mut roles = Dict::new();
    for role in ["caller", "callee", "publisher", "subscriber"] {
        roles.insert(role, Dict::new());
    }
    let mut details = Dict::new();
    details.insert("roles", roles);
    details
}

pub fn opts(entries: &[(&'static str, Value<'static>)]) -> Dict<'static> {
    let mut dict = Dict::new();
    for (key, value) in entries {
        dict.insert(*key, value.clone());
    }
    dict
}

pub fn s(text: &str) -> Value<'static> {
    Value::Str(Cow::Owned(text.to_string()))
}

pub fn args(ser: Serializer, values: &[Value<'_>]) -> OwnedPayload {
    wire::payload_from_args(ser, values, None).unwrap()
}

pub fn args_kw(ser: Serializer, values: &[Value<'_>], kwargs: &Dict<'_>) -> OwnedPayload {
    wire::payload_from_args(ser, values, Some(kwargs)).unwrap()
}

pub fn payload_values(payload: &Payload<'_>) -> (Vec<Value<'static>>, Option<Dict<'static>>) {
    let (args, kwargs) = wire::decode_payload_values(payload).unwrap();
    (
        args.into_iter().map(Value::into_owned).collect(),
        kwargs.map(Dict::into_owned),
    )
}

/// Asserts the message is ABORT with `reason` (and a human-readable Details.message).
pub fn assert_abort(received: &Received, reason: &str) {
    match received.msg() {
        Message::Abort {
            details, reason: r, ..
        } => {
            assert_eq!(r, reason);
            assert!(
                details.get_str("message").is_some_and(|m| !m.is_empty()),
                "ABORT without message"
            );
        }
        other => panic!("expected ABORT {reason}, got {other:?}"),
    }
}

/// Asserts the message is ERROR for (`request_type`, `request`) with `error`.
pub fn assert_error(received: &Received, request_type: u64, request: u64, error: &str) {
    match received.msg() {
        Message::Error {
            request_type: t,
            request: r,
            error: e,
            ..
        } => {
            assert_eq!((t, r, e.as_ref()), (request_type, request, error));
        }
        other => panic!("expected ERROR {error}, got {other:?}"),
    }
}

pub fn assert_violation(h: &mut Harness, client: &Client) {
    assert_abort(&h.recv(client), uri::PROTOCOL_VIOLATION);
    h.expect_nothing(client);
    assert!(h.was_closed(client), "a violation closes the session");
}

/// `at_1_and_3_shards!(scenario, ...)`: a `one_shard` and a `three_shards` test per scenario.
#[macro_export]
macro_rules! at_1_and_3_shards {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn one_shard() {
                    super::with_shards(1, super::$scenario);
                }

                #[test]
                fn three_shards() {
                    super::with_shards(3, super::$scenario);
                }
            }
        )*
    };
}
