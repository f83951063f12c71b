//! Router core benchmarks, no sockets: one routed call (CALL -> INVOCATION, YIELD -> RESULT)
//! for a caller/callee pair per serializer, and PUBLISH -> EVENT fan-out to 1, 100 and 10,000
//! subscribers (the per-extra-subscriber cost is (t(10000) - t(1)) / 9999). Each iteration also
//! drops the produced actions, as the runtime would after writing them.
//!
//! Run briefly: `cargo bench --bench router -- --warm-up-time 1 --measurement-time 3`.

use std::borrow::Cow;
use std::hint::black_box;
use std::io::Write;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wampring::router::{Action, Router, RouterConfig, SessionKey, TransportInfo};
use wampring::wire::{self, Dict, Message, Payload, Serializer, Value};

fn encode(message: &Message<'_>, ser: Serializer) -> Vec<u8> {
    let mut frame = Vec::new();
    wire::encode(message, ser, &mut frame).unwrap();
    frame
}

fn join(router: &mut Router, ser: Serializer, out: &mut Vec<Action>) -> SessionKey {
    let key = router.open_session(TransportInfo {
        serializer: ser,
        kind: "bench",
        peer: "bench".into(),
    });
    let mut roles = Dict::new();
    for role in ["caller", "callee", "publisher", "subscriber"] {
        roles.insert(role, Dict::new());
    }
    let mut details = Dict::new();
    details.insert("roles", roles);
    router.handle_message(
        key,
        &encode(
            &Message::Hello {
                realm: "realm1".into(),
                details,
            },
            ser,
        ),
        0,
        out,
    );
    assert!(matches!(out.last(), Some(Action::Send { .. })));
    out.clear();
    key
}

/// A YIELD `[70, id, {}, [30]]` written into `frame` without the codec (the client's cost is
/// not the router's): JSON via `write!`, MessagePack with a fixed-width uint64 id.
fn write_yield(frame: &mut Vec<u8>, ser: Serializer, invocation: u64) {
    frame.clear();
    match ser {
        Serializer::Json => write!(frame, "[70,{invocation},{{}},[30]]").unwrap(),
        Serializer::MsgPack => {
            frame.extend_from_slice(&[0x94, 70, 0xcf]);
            frame.extend_from_slice(&invocation.to_be_bytes());
            frame.extend_from_slice(&[0x80, 0x91, 30]);
        }
    }
}

fn routed_call(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_call");
    group.throughput(Throughput::Elements(1));
    for ser in [Serializer::Json, Serializer::MsgPack] {
        let mut router = Router::new(RouterConfig::default(), 1);
        let mut out = Vec::new();
        let caller = join(&mut router, ser, &mut out);
        let callee = join(&mut router, ser, &mut out);
        let register = Message::Register {
            request: 1,
            options: Dict::new(),
            procedure: "com.bench.add2".into(),
        };
        router.handle_message(callee, &encode(&register, ser), 0, &mut out);
        out.clear();
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
        group.bench_function(
            BenchmarkId::new("call_invocation_yield_result", ser.name()),
            |b| {
                b.iter(|| {
                    router.handle_message(caller, black_box(&call), 0, &mut out);
                    invocation += 1;
                    write_yield(&mut yield_frame, ser, invocation);
                    router.handle_message(callee, black_box(&yield_frame), 0, &mut out);
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

fn event_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_publish");
    for ser in [Serializer::Json, Serializer::MsgPack] {
        for subscribers in [1usize, 100, 10_000] {
            let mut router = Router::new(RouterConfig::default(), 1);
            let mut out = Vec::with_capacity(subscribers + 1);
            let publisher = join(&mut router, ser, &mut out);
            for _ in 0..subscribers {
                let subscriber = join(&mut router, ser, &mut out);
                let subscribe = Message::Subscribe {
                    request: 1,
                    options: Dict::new(),
                    topic: "com.bench.topic".into(),
                };
                router.handle_message(subscriber, &encode(&subscribe, ser), 0, &mut out);
                out.clear();
            }
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
            group.throughput(Throughput::Elements(subscribers as u64));
            group.bench_function(
                BenchmarkId::new(format!("publish_event_{}", ser.name()), subscribers),
                |b| {
                    b.iter(|| {
                        router.handle_message(publisher, black_box(&publish), 0, &mut out);
                        debug_assert_eq!(out.len(), subscribers);
                        out.clear();
                    })
                },
            );
            assert_eq!(router.stats().protocol_violations, 0);
        }
    }
    group.finish();
}

criterion_group!(benches, routed_call, event_fanout);
criterion_main!(benches);
