//! Router core benchmarks, no sockets: one routed call (CALL -> INVOCATION, YIELD -> RESULT)
//! for a caller/callee pair per serializer, and PUBLISH -> EVENT fan-out to 1, 100 and 10,000
//! subscribers (the per-extra-subscriber cost is (t(10000) - t(1)) / 9999). Each iteration also
//! drops the produced actions, as the runtime would after writing them.
//!
//! Frames reach the router as `Bytes` split off one reused input buffer, as the runtime's
//! transports hand them over (`FrameBuf`); the allocator is the binary's (mimalloc).
//! `router_call_payload` shows how a call's cost grows with its payload. For instruction
//! counts, which do not move with the machine's load, see `router_instructions.rs`.
//!
//! Cross-shard (`router_shards`): 2 and 4 routers in one thread, `Action::ToShard` messages moved
//! between them by a plain loop (no channels, no threads): a call whose caller and callee live
//! on different shards, and a publish from shard 0 to 100 subscribers spread over all shards.
//!
//! `router_pattern_call`: a call resolved by the longest of 10,000 prefix registrations, by the
//! most specific of 10,000 wildcard registrations, and an exact call beside all of them.
//!
//! `router_pattern_publish`: a PUBLISH to 1,000 subscribers spread over one exact, one prefix
//! and one wildcard subscription of the topic; to 1,000 exact subscribers beside 10,000
//! pattern subscriptions that do not match; and to the two of 10,000 pattern subscriptions
//! that match (one subscriber each).
//!
//! Run briefly: `cargo bench --bench router -- --warm-up-time 1 --measurement-time 3`.

use std::borrow::Cow;
use std::hint::black_box;
use std::io::Write;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wampring::router::{Action, Router, RouterConfig, SessionKey, ShardId};
use wampring::wire::{self, Dict, Message, Payload, Serializer, Value};

mod support;

use support::{
    caller_and_callee, encode, join, messages_sent, publisher_and_subscribers, FrameBuf,
};

/// A YIELD `[70, id, {}, [30]]` written into `frame` without the codec (the client's cost is
/// not the router's): JSON via `write!`, MessagePack and CBOR with a fixed-width 64-bit id.
fn write_yield(frame: &mut Vec<u8>, ser: Serializer, invocation: u64) {
    frame.clear();
    match ser {
        Serializer::Json => write!(frame, "[70,{invocation},{{}},[30]]").unwrap(),
        Serializer::MsgPack => {
            frame.extend_from_slice(&[0x94, 70, 0xcf]);
            frame.extend_from_slice(&invocation.to_be_bytes());
            frame.extend_from_slice(&[0x80, 0x91, 30]);
        }
        Serializer::Cbor => {
            frame.extend_from_slice(&[0x84, 0x18, 70, 0x1b]);
            frame.extend_from_slice(&invocation.to_be_bytes());
            frame.extend_from_slice(&[0xa0, 0x81, 0x18, 30]);
        }
    }
}

fn routed_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_call");
    group.throughput(Throughput::Elements(1));
    for ser in Serializer::ALL {
        let (mut router, caller, callee) = caller_and_callee(ser, "com.bench.add2");
        let mut out = Vec::new();
        let args = wire::payload_from_args(
            ser,
            &[
                Value::UInt(23),
                Value::UInt(7),
                Value::Str(Cow::Borrowed("some text")),
            ],
            None,
        )
        .unwrap();
        let call = encode(
            &Message::Call {
                request: 1,
                options: Dict::new(),
                procedure: "com.bench.add2".into(),
                payload: args.as_payload(),
            },
            ser,
        );
        let mut yield_frame = Vec::with_capacity(64);
        let mut invocation = 0u64;
        let mut input = FrameBuf::new();
        group.bench_function(
            BenchmarkId::new("call_invocation_yield_result", ser.name()),
            |b| {
                b.iter(|| {
                    let frame = input.frame(&call);
                    router.handle_message(caller, black_box(frame), 0, &mut out);
                    invocation += 1;
                    write_yield(&mut yield_frame, ser, invocation);
                    let frame = input.frame(&yield_frame);
                    router.handle_message(callee, black_box(frame), 0, &mut out);
                    debug_assert_eq!(out.len(), 2);
                    out.clear();
                })
            },
        );
        // The codec's share of the above: decode CALL and YIELD, encode INVOCATION and RESULT
        // into exactly-sized frames, as the router does (the router's own cost is the rest).
        let mut scratch = Vec::with_capacity(256);
        group.bench_function(BenchmarkId::new("codec_floor", ser.name()), |b| {
            b.iter(|| {
                let Ok(Message::Call { payload, .. }) = wire::decode(ser, black_box(&call)) else {
                    unreachable!()
                };
                let invocation = Message::Invocation {
                    request: 1,
                    registration: 1,
                    details: Dict::new(),
                    payload,
                };
                scratch.clear();
                wire::encode(&invocation, ser, &mut scratch).unwrap();
                black_box(bytes::Bytes::copy_from_slice(&scratch));
                write_yield(&mut yield_frame, ser, 1);
                let Ok(Message::Yield { payload, .. }) = wire::decode(ser, black_box(&yield_frame))
                else {
                    unreachable!()
                };
                let result = Message::Result {
                    request: 1,
                    details: Dict::new(),
                    payload,
                };
                scratch.clear();
                wire::encode(&result, ser, &mut scratch).unwrap();
                black_box(bytes::Bytes::copy_from_slice(&scratch));
            })
        });
        assert_eq!(router.stats().pending_calls, 0);
        assert_eq!(router.stats().protocol_violations, 0);
    }
    group.finish();
}

/// One routed call whose CALL and YIELD carry a string of `len` bytes: how the cost grows with
/// the payload (the forwarded span is not copied by the router).
fn routed_call_payload(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_call_payload");
    for ser in Serializer::ALL {
        for len in [64usize, 512, 4096, 65536] {
            let (mut router, caller, callee) = caller_and_callee(ser, "com.bench.echo");
            let mut out = Vec::new();
            let text = "x".repeat(len);
            let args =
                wire::payload_from_args(ser, &[Value::Str(Cow::Borrowed(&text))], None).unwrap();
            let call = encode(
                &Message::Call {
                    request: 1,
                    options: Dict::new(),
                    procedure: "com.bench.echo".into(),
                    payload: args.as_payload(),
                },
                ser,
            );
            let mut yield_frame = Vec::with_capacity(len + 64);
            let mut invocation = 0u64;
            let mut input = FrameBuf::new();
            group.throughput(Throughput::Bytes(2 * len as u64));
            group.bench_function(BenchmarkId::new(ser.name(), len), |b| {
                b.iter(|| {
                    let frame = input.frame(&call);
                    router.handle_message(caller, black_box(frame), 0, &mut out);
                    invocation += 1;
                    yield_frame.clear();
                    let message = Message::Yield {
                        request: invocation,
                        options: Dict::new(),
                        payload: args.as_payload(),
                    };
                    wire::encode(&message, ser, &mut yield_frame).unwrap();
                    let frame = input.frame(&yield_frame);
                    router.handle_message(callee, black_box(frame), 0, &mut out);
                    debug_assert_eq!(out.len(), 2);
                    out.clear();
                })
            });
        }
    }
    group.finish();
}

fn event_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_publish");
    for ser in Serializer::ALL {
        for subscribers in [1usize, 100, 10_000] {
            let (mut router, publisher) =
                publisher_and_subscribers(ser, "com.bench.topic", subscribers);
            let mut out = Vec::with_capacity(subscribers + 1);
            let args = wire::payload_from_args(
                ser,
                &[Value::UInt(1), Value::Str(Cow::Borrowed("hello"))],
                None,
            )
            .unwrap();
            let publish = encode(
                &Message::Publish {
                    request: 1,
                    options: Dict::new(),
                    topic: "com.bench.topic".into(),
                    payload: Payload {
                        ser,
                        count: args.count,
                        raw: &args.raw,
                    },
                },
                ser,
            );
            let mut input = FrameBuf::new();
            group.throughput(Throughput::Elements(subscribers as u64));
            group.bench_function(
                BenchmarkId::new(format!("publish_event_{}", ser.name()), subscribers),
                |b| {
                    b.iter(|| {
                        let frame = input.frame(&publish);
                        router.handle_message(publisher, black_box(frame), 0, &mut out);
                        debug_assert_eq!(messages_sent(&out), subscribers);
                        out.clear();
                    })
                },
            );
            assert_eq!(router.stats().protocol_violations, 0);
        }
    }
    group.finish();
}

/// Several shard routers and an in-process stand-in for the channel mesh.
struct Mesh {
    routers: Vec<Router>,
    out: Vec<Action>,
    /// Shard messages not delivered yet, in send order (FIFO per pair holds a fortiori).
    wire: std::collections::VecDeque<(ShardId, ShardId, wampring::router::ShardMsg)>,
    /// Frames sent to sessions, dropped after counting (the runtime would write them).
    frames: usize,
    input: FrameBuf,
}

impl Mesh {
    fn new(shards: usize) -> Mesh {
        Mesh {
            routers: (0..shards)
                .map(|shard| Router::new_shard(RouterConfig::default(), 1, shard, shards))
                .collect(),
            out: Vec::new(),
            wire: std::collections::VecDeque::new(),
            frames: 0,
            input: FrameBuf::new(),
        }
    }

    fn absorb(&mut self, shard: ShardId) {
        for action in self.out.drain(..) {
            match action {
                Action::ToShard { to, msg } => self.wire.push_back((shard, to, msg)),
                Action::Send { .. } | Action::SendEvent { .. } => self.frames += 1,
                Action::SendEach { sessions, .. } => self.frames += sessions.len(),
                Action::Close { .. } | Action::Check { .. } | Action::Metrics { .. } => {}
            }
        }
    }

    fn handle(&mut self, shard: ShardId, session: SessionKey, frame: &[u8]) {
        let frame = self.input.frame(frame);
        self.routers[shard].handle_message(session, frame, 0, &mut self.out);
        self.absorb(shard);
    }

    fn run(&mut self) {
        while let Some((from, to, msg)) = self.wire.pop_front() {
            self.routers[to].handle_shard_msg(from, msg, 0, &mut self.out);
            self.absorb(to);
        }
    }

    fn join(&mut self, shard: ShardId, ser: Serializer) -> SessionKey {
        let key = join(&mut self.routers[shard], ser, &mut self.out);
        self.out.clear();
        key
    }
}

fn cross_shard(c: &mut Criterion) {
    let ser = Serializer::MsgPack;
    let mut group = c.benchmark_group("router_shards");
    for shards in [2usize, 4] {
        let mut mesh = Mesh::new(shards);
        let caller = mesh.join(0, ser);
        let callee = mesh.join(1, ser);
        let register = Message::Register {
            request: 1,
            options: Dict::new(),
            procedure: "com.bench.add2".into(),
        };
        mesh.handle(1, callee, &encode(&register, ser));
        mesh.run();
        let args = wire::payload_from_args(
            ser,
            &[
                Value::UInt(23),
                Value::UInt(7),
                Value::Str(Cow::Borrowed("some text")),
            ],
            None,
        )
        .unwrap();
        let call = encode(
            &Message::Call {
                request: 1,
                options: Dict::new(),
                procedure: "com.bench.add2".into(),
                payload: args.as_payload(),
            },
            ser,
        );
        let mut yield_frame = Vec::with_capacity(64);
        let mut invocation = 0u64;
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("call_other_shard", shards), |b| {
            b.iter(|| {
                mesh.handle(0, caller, black_box(&call));
                mesh.run();
                invocation += 1;
                write_yield(&mut yield_frame, ser, invocation);
                mesh.handle(1, callee, black_box(&yield_frame));
                mesh.run();
            })
        });
        for router in &mesh.routers {
            assert_eq!(router.stats().pending_calls, 0);
            assert_eq!(router.stats().protocol_violations, 0);
        }

        let subscribers = 100;
        let publisher = mesh.join(0, ser);
        for i in 0..subscribers {
            let shard = i % shards;
            let subscriber = mesh.join(shard, ser);
            let subscribe = Message::Subscribe {
                request: 1,
                options: Dict::new(),
                topic: "com.bench.topic".into(),
            };
            mesh.handle(shard, subscriber, &encode(&subscribe, ser));
            mesh.run();
        }
        let publish = encode(
            &Message::Publish {
                request: 1,
                options: Dict::new(),
                topic: "com.bench.topic".into(),
                payload: args.as_payload(),
            },
            ser,
        );
        mesh.frames = 0;
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_function(BenchmarkId::new("publish_100_spread", shards), |b| {
            b.iter(|| {
                mesh.handle(0, publisher, black_box(&publish));
                mesh.run();
            })
        });
        // Zero when a filter skipped the benchmark.
        assert_eq!(mesh.frames % subscribers, 0, "{}", mesh.frames);
    }
    group.finish();
}

/// CALLs routed through a pattern registration among 10,000 of its kind (`prefix`: the longest
/// prefix among 10,000; `wildcard`: the most specific among 10,000), and the exact-match call
/// with those 20,000 pattern registrations beside it: the exact lookup comes first, so it must
/// cost what `router_call` costs without them. One full round trip each, as `router_call`.
fn pattern_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_pattern_call");
    group.throughput(Throughput::Elements(1));
    let ser = Serializer::MsgPack;
    let config = RouterConfig {
        max_registrations_per_session: 30_000,
        ..RouterConfig::default()
    };
    let mut router = Router::new(config, 1);
    let mut out = Vec::new();
    let caller = join(&mut router, ser, &mut out);
    let callee = join(&mut router, ser, &mut out);
    let mut register = |procedure: String, matching: &'static str| {
        let mut options = Dict::new();
        if matching != "exact" {
            options.insert("match", matching);
        }
        let register = Message::Register {
            request: 1,
            options,
            procedure: procedure.into(),
        };
        router.handle_message(callee, encode(&register, ser).into(), 0, &mut out);
        assert!(
            matches!(out.last(), Some(Action::Send { .. })),
            "REGISTERED"
        );
        out.clear();
    };
    register("com.bench.add2".into(), "exact");
    for i in 0..10_000 {
        register(format!("com.bench.svc{i}."), "prefix");
        register(format!("com.bench.item{i}..get"), "wildcard");
    }
    let args = wire::payload_from_args(ser, &[Value::UInt(23), Value::UInt(7)], None).unwrap();
    let mut yield_frame = Vec::with_capacity(64);
    let mut invocation = 0u64;
    let mut input = FrameBuf::new();
    for (name, procedure) in [
        ("exact_beside_20000_patterns", "com.bench.add2"),
        ("prefix_among_10000", "com.bench.svc5000.method"),
        ("wildcard_among_10000", "com.bench.item5000.x.get"),
    ] {
        let call = encode(
            &Message::Call {
                request: 1,
                options: Dict::new(),
                procedure: procedure.into(),
                payload: args.as_payload(),
            },
            ser,
        );
        group.bench_function(BenchmarkId::new(name, ser.name()), |b| {
            b.iter(|| {
                let frame = input.frame(&call);
                router.handle_message(caller, black_box(frame), 0, &mut out);
                invocation += 1;
                write_yield(&mut yield_frame, ser, invocation);
                let frame = input.frame(&yield_frame);
                router.handle_message(callee, black_box(frame), 0, &mut out);
                debug_assert_eq!(out.len(), 2);
                out.clear();
            })
        });
    }
    assert_eq!(router.stats().pending_calls, 0);
    assert_eq!(router.stats().registrations, 20_001);
    group.finish();
}

/// Joins `subscribers` sessions to `router`, each subscribing (`topic`, `matching`).
fn subscribe_many(
    router: &mut Router,
    ser: Serializer,
    (topic, matching): (&str, &'static str),
    subscribers: usize,
) {
    let mut out = Vec::new();
    for _ in 0..subscribers {
        let subscriber = join(router, ser, &mut out);
        subscribe(router, subscriber, ser, (topic, matching));
    }
}

fn subscribe(router: &mut Router, session: SessionKey, ser: Serializer, sub: (&str, &'static str)) {
    let (topic, matching) = sub;
    let mut options = Dict::new();
    if matching != "exact" {
        options.insert("match", matching);
    }
    let subscribe = Message::Subscribe {
        request: 1,
        options,
        topic: topic.into(),
    };
    let mut out = Vec::new();
    router.handle_message(session, encode(&subscribe, ser).into(), 0, &mut out);
    assert!(
        matches!(out.last(), Some(Action::Send { .. })),
        "SUBSCRIBED to {topic} ({matching})"
    );
}

/// PUBLISH -> EVENT where pattern subscriptions are involved (MessagePack): see the module
/// doc. The exact fan-out beside 10,000 patterns shows what the pattern walk adds to it.
fn pattern_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_pattern_publish");
    let ser = Serializer::MsgPack;
    let config = RouterConfig {
        max_subscriptions_per_session: 20_000,
        ..RouterConfig::default()
    };
    let topic = "com.bench.news.sport";
    let args = wire::payload_from_args(
        ser,
        &[Value::UInt(1), Value::Str(Cow::Borrowed("hello"))],
        None,
    )
    .unwrap();
    let publish = encode(
        &Message::Publish {
            request: 1,
            options: Dict::new(),
            topic: topic.into(),
            payload: args.as_payload(),
        },
        ser,
    );
    let many_patterns = |router: &mut Router| {
        let mut out = Vec::new();
        let holder = join(router, ser, &mut out);
        for i in 0..5_000 {
            subscribe(router, holder, ser, (&format!("com.other{i}."), "prefix"));
            subscribe(
                router,
                holder,
                ser,
                (&format!("com.item{i}..sport"), "wildcard"),
            );
        }
    };

    let mut mixed = Router::new(config.clone(), 1);
    let mut out = Vec::new();
    let publisher = join(&mut mixed, ser, &mut out);
    subscribe_many(&mut mixed, ser, (topic, "exact"), 334);
    subscribe_many(&mut mixed, ser, ("com.bench.news", "prefix"), 333);
    subscribe_many(&mut mixed, ser, ("com.bench..sport", "wildcard"), 333);

    let mut beside = Router::new(config.clone(), 1);
    let beside_publisher = join(&mut beside, ser, &mut out);
    subscribe_many(&mut beside, ser, (topic, "exact"), 1_000);
    many_patterns(&mut beside);

    let mut among = Router::new(config, 1);
    let among_publisher = join(&mut among, ser, &mut out);
    many_patterns(&mut among);
    subscribe_many(&mut among, ser, ("com.bench.news.", "prefix"), 1);
    subscribe_many(&mut among, ser, ("com..news.sport", "wildcard"), 1);

    let mut input = FrameBuf::new();
    for (name, router, publisher, events) in [
        ("mixed_1000", &mut mixed, publisher, 1_000),
        (
            "exact_1000_beside_10000_patterns",
            &mut beside,
            beside_publisher,
            1_000,
        ),
        (
            "2_matching_among_10000_patterns",
            &mut among,
            among_publisher,
            2,
        ),
    ] {
        group.throughput(Throughput::Elements(events as u64));
        group.bench_function(BenchmarkId::new(name, ser.name()), |b| {
            b.iter(|| {
                let frame = input.frame(&publish);
                router.handle_message(publisher, black_box(frame), 0, &mut out);
                debug_assert_eq!(messages_sent(&out), events);
                out.clear();
            })
        });
        assert_eq!(router.stats().protocol_violations, 0);
        assert_eq!(router.stats().events_undeliverable, 0);
    }
    group.finish();
}

criterion_group!(
    benches,
    routed_call,
    routed_call_payload,
    pattern_call,
    event_fanout,
    pattern_publish,
    cross_shard
);
criterion_main!(benches);
