//! Criterion benchmarks for the wire codec: decode and encode per message type, serializer and
//! payload size (~16 B and ~1 KiB), payload transcoding between every pair of serializers, and the JSON
//! header scanner comparison that chose the decoder (hand-written zero-copy scanner vs
//! simd-json run on a copy of the frame, as DESIGN.md requires since simd-json rewrites its
//! input). The simd-json variant lives only here, as the losing side of that comparison.
//!
//! Run briefly on the shared machine:
//! `cargo bench --bench wire -- --warm-up-time 1 --measurement-time 3 [filter]`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wampring::wire::{
    decode, encode, payload_from_args, transcode_payload, Dict, Message, OwnedPayload, Serializer,
    Value,
};

/// ~16 bytes of JSON payload: `["Hello, world!"]`.
fn small_args() -> Vec<Value<'static>> {
    vec![Value::Str("Hello, world!".into())]
}

/// ~1 KiB of JSON payload: a list of small records, mixed value types.
fn kib_args() -> Vec<Value<'static>> {
    let mut records = Vec::new();
    for i in 0..13u64 {
        let mut record = Dict::new();
        record.insert("id", Value::UInt(1000 + i));
        record.insert("name", Value::Str(format!("item-{i}").into()));
        record.insert("score", Value::Float(i as f64 * 1.25));
        record.insert("ok", Value::Bool(i % 2 == 0));
        record.insert(
            "tags",
            Value::List(vec![Value::Str("alpha".into()), Value::Str("beta".into())]),
        );
        records.push(Value::Dict(record));
    }
    records
}

fn payload(ser: Serializer, size: &str) -> OwnedPayload {
    let args = if size == "small" {
        small_args()
    } else {
        kib_args()
    };
    payload_from_args(ser, &args, None).expect("payload")
}

fn hello_details() -> Dict<'static> {
    let mut features = Dict::new();
    for f in [
        "progressive_call_results",
        "call_canceling",
        "caller_identification",
        "publisher_exclusion",
    ] {
        features.insert(f, Value::Bool(true));
    }
    let mut roles = Dict::new();
    for role in ["caller", "callee", "publisher", "subscriber"] {
        let mut r = Dict::new();
        r.insert("features", Value::Dict(features.clone()));
        roles.insert(role, Value::Dict(r));
    }
    let mut details = Dict::new();
    details.insert("roles", Value::Dict(roles));
    details.insert("agent", Value::Str("AutobahnPython-23.1.2".into()));
    details
}

const WITH_PAYLOAD: [&str; 6] = ["CALL", "INVOCATION", "YIELD", "RESULT", "PUBLISH", "EVENT"];
const WITHOUT_PAYLOAD: [&str; 3] = ["SUBSCRIBE", "REGISTER", "HELLO"];

fn message<'a>(name: &str, p: &'a OwnedPayload, hello: &Dict<'static>) -> Message<'a> {
    let payload = p.as_payload();
    match name {
        "CALL" => Message::Call {
            request: 7814135,
            options: Dict::new(),
            procedure: "com.myapp.myprocedure1".into(),
            payload,
        },
        "INVOCATION" => Message::Invocation {
            request: 6131533,
            registration: 9823526,
            details: Dict::new(),
            payload,
        },
        "YIELD" => Message::Yield {
            request: 6131533,
            options: Dict::new(),
            payload,
        },
        "RESULT" => Message::Result {
            request: 7814135,
            details: Dict::new(),
            payload,
        },
        "PUBLISH" => Message::Publish {
            request: 239714735,
            options: Dict::new(),
            topic: "com.myapp.mytopic1".into(),
            payload,
        },
        "EVENT" => Message::Event {
            subscription: 5512315355,
            publication: 4429313566,
            details: Dict::new(),
            payload,
        },
        "SUBSCRIBE" => Message::Subscribe {
            request: 713845233,
            options: Dict::new(),
            topic: "com.myapp.mytopic1".into(),
        },
        "REGISTER" => {
            let mut options = Dict::new();
            options.insert("invoke", Value::Str("roundrobin".into()));
            Message::Register {
                request: 25349185,
                options,
                procedure: "com.myapp.myprocedure1".into(),
            }
        }
        "HELLO" => Message::Hello {
            realm: "com.example.realm".into(),
            details: hello.clone(),
        },
        other => unreachable!("{other}"),
    }
}

/// (type, size) pairs: payload-carrying types in both sizes, the others once.
fn cases() -> Vec<(&'static str, &'static str)> {
    let mut cases = Vec::new();
    for name in WITH_PAYLOAD {
        cases.push((name, "small"));
        cases.push((name, "1KiB"));
    }
    for name in WITHOUT_PAYLOAD {
        cases.push((name, "-"));
    }
    cases
}

fn bench_decode(c: &mut Criterion) {
    let hello = hello_details();
    let mut group = c.benchmark_group("decode");
    for ser in Serializer::ALL {
        for (name, size) in cases() {
            let p = payload(ser, if size == "-" { "small" } else { size });
            let msg = message(name, &p, &hello);
            let mut frame = Vec::new();
            encode(&msg, ser, &mut frame).unwrap();
            group.throughput(Throughput::Bytes(frame.len() as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{ser}/{name}"), size),
                &frame,
                |b, frame| b.iter(|| decode(ser, black_box(frame)).unwrap()),
            );
        }
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let hello = hello_details();
    let mut group = c.benchmark_group("encode");
    for ser in Serializer::ALL {
        for (name, size) in cases() {
            let p = payload(ser, if size == "-" { "small" } else { size });
            let msg = message(name, &p, &hello);
            let mut out = Vec::with_capacity(4096);
            group.bench_with_input(
                BenchmarkId::new(format!("{ser}/{name}"), size),
                &msg,
                |b, msg| {
                    b.iter(|| {
                        out.clear();
                        encode(black_box(msg), ser, &mut out).unwrap();
                        out.len()
                    })
                },
            );
        }
    }
    group.finish();
}

fn bench_transcode(c: &mut Criterion) {
    let mut group = c.benchmark_group("transcode_1KiB");
    let pairs = Serializer::ALL
        .into_iter()
        .flat_map(|from| Serializer::ALL.into_iter().map(move |to| (from, to)))
        .filter(|(from, to)| from != to);
    for (from, to) in pairs {
        let p = payload(from, "1KiB");
        group.throughput(Throughput::Bytes(p.raw.len() as u64));
        let mut out = Vec::with_capacity(4096);
        group.bench_function(format!("{from}->{to}"), |b| {
            b.iter(|| {
                out.clear();
                transcode_payload(black_box(&p.as_payload()), to, &mut out).unwrap();
                out.len()
            })
        });
    }
    group.finish();
}

/// The simd-json alternative for a CALL header: copy the frame (simd-json mutates its input),
/// build a tape, read type, request, options and procedure from it. It cannot give the
/// payload's byte span, so it would still need a second scan to forward the payload.
fn simd_json_call_header(
    frame: &[u8],
    copy: &mut Vec<u8>,
    buffers: &mut simd_json::Buffers,
) -> Option<(u64, u64, usize, usize)> {
    use simd_json::{Node, StaticNode};
    copy.clear();
    copy.extend_from_slice(frame);
    let tape = simd_json::to_tape_with_buffers(copy, buffers).ok()?;
    let nodes = &tape.0;
    let id = |node: &Node<'_>| match node {
        Node::Static(StaticNode::U64(u)) => Some(*u),
        Node::Static(StaticNode::I64(i)) if *i >= 0 => Some(*i as u64),
        _ => None,
    };
    let Node::Array { len, .. } = nodes.first()? else {
        return None;
    };
    let code = id(nodes.get(1)?)?;
    let request = id(nodes.get(2)?)?;
    let Node::Object {
        len: options_len,
        count,
    } = nodes.get(3)?
    else {
        return None;
    };
    let Node::String(procedure) = nodes.get(4 + count)? else {
        return None;
    };
    black_box(len);
    Some((code, request, *options_len, procedure.len()))
}

fn bench_scanner(c: &mut Criterion) {
    let frame = br#"[48,7814135,{},"com.myapp.myprocedure1",["Hello, world!"]]"#;
    let mut group = c.benchmark_group("json_call_header_scanner");
    group.bench_function("hand_written", |b| {
        b.iter(|| decode(Serializer::Json, black_box(frame)).unwrap())
    });
    let mut copy = Vec::with_capacity(256);
    let mut buffers = simd_json::Buffers::default();
    assert!(simd_json_call_header(frame, &mut copy, &mut buffers).is_some());
    group.bench_function("simd_json_on_copy", |b| {
        b.iter(|| simd_json_call_header(black_box(frame), &mut copy, &mut buffers).unwrap())
    });
    let packed = {
        let p = payload(Serializer::MsgPack, "small");
        let mut out = Vec::new();
        encode(
            &message("CALL", &p, &Dict::new()),
            Serializer::MsgPack,
            &mut out,
        )
        .unwrap();
        out
    };
    group.bench_function("msgpack_hand_written", |b| {
        b.iter(|| decode(Serializer::MsgPack, black_box(&packed)).unwrap())
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_scanner,
    bench_decode,
    bench_encode,
    bench_transcode
);
criterion_main!(benches);
