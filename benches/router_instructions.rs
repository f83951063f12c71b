//! Instruction counts of the router's hot paths, for callgrind: wall-clock benchmarks on a
//! shared machine move by ±20 % from run to run, instruction counts do not. Runs one scenario a
//! given number of times:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/deps/router_instructions-HASH call_json 20000
//! ```
//!
//! Run it twice with different counts: the difference of the two totals divided by the
//! difference of the counts is the cost of one iteration, set-up excluded. Scenarios:
//! `call_{json,msgpack}` (CALL -> INVOCATION, YIELD -> RESULT, small payload),
//! `call_msgpack_4k` (the same with 4 KiB of payload each way), `publish_{json,msgpack}_100`
//! (PUBLISH -> EVENT to 100 subscribers). Frames reach the router as `Bytes` split off a reused
//! input buffer, as from a transport.

use std::hint::black_box;

/// The allocator of the `wampring` binary, so allocation costs are the production ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bytes::{Bytes, BytesMut};
use wampring::router::{Action, Router, RouterConfig, SessionKey, TransportInfo};
use wampring::wire::{self, Dict, Message, Serializer, Value};

/// A transport's input buffer: frames are copied in and split off as `Bytes`.
struct Input(BytesMut);

impl Input {
    fn frame(&mut self, bytes: &[u8]) -> Bytes {
        self.0.reserve(bytes.len());
        self.0.extend_from_slice(bytes);
        self.0.split().freeze()
    }
}

fn encode(message: &Message<'_>, ser: Serializer) -> Vec<u8> {
    let mut frame = Vec::new();
    wire::encode(message, ser, &mut frame).unwrap();
    frame
}

fn feed(router: &mut Router, key: SessionKey, frame: Bytes, out: &mut Vec<Action>) {
    router.handle_message(key, frame, 0, out);
}

fn join(router: &mut Router, ser: Serializer, out: &mut Vec<Action>) -> SessionKey {
    let transport = TransportInfo {
        serializer: ser,
        kind: "bench",
        peer: "bench".into(),
    };
    let key = router.open_session(transport, 0, out);
    let mut roles = Dict::new();
    for role in ["caller", "callee", "publisher", "subscriber"] {
        roles.insert(role, Dict::new());
    }
    let mut details = Dict::new();
    details.insert("roles", roles);
    let hello = Message::Hello {
        realm: "realm1".into(),
        details,
    };
    feed(router, key, encode(&hello, ser).into(), out);
    out.clear();
    key
}

fn call(ser: Serializer, payload_len: usize, iterations: u64) {
    let mut router = Router::new(RouterConfig::default(), 1);
    let mut out = Vec::new();
    let caller = join(&mut router, ser, &mut out);
    let callee = join(&mut router, ser, &mut out);
    let register = Message::Register {
        request: 1,
        options: Dict::new(),
        procedure: "com.bench.add2".into(),
    };
    feed(&mut router, callee, encode(&register, ser).into(), &mut out);
    out.clear();
    let text = "x".repeat(payload_len);
    let args = [
        Value::UInt(23),
        Value::UInt(7),
        Value::Str(text.as_str().into()),
    ];
    let args = wire::payload_from_args(ser, &args, None).unwrap();
    let call = encode(
        &Message::Call {
            request: 1,
            options: Dict::new(),
            procedure: "com.bench.add2".into(),
            payload: args.as_payload(),
        },
        ser,
    );
    let mut input = Input(BytesMut::with_capacity(64 * 1024));
    let mut yield_frame = Vec::new();
    for invocation in 1..=iterations {
        feed(&mut router, caller, black_box(input.frame(&call)), &mut out);
        yield_frame.clear();
        let answer = Message::Yield {
            request: invocation,
            options: Dict::new(),
            payload: args.as_payload(),
        };
        wire::encode(&answer, ser, &mut yield_frame).unwrap();
        feed(
            &mut router,
            callee,
            black_box(input.frame(&yield_frame)),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        out.clear();
    }
}

fn publish(ser: Serializer, subscribers: usize, iterations: u64) {
    let mut router = Router::new(RouterConfig::default(), 1);
    let mut out = Vec::new();
    let publisher = join(&mut router, ser, &mut out);
    for _ in 0..subscribers {
        let subscriber = join(&mut router, ser, &mut out);
        let subscribe = Message::Subscribe {
            request: 1,
            options: Dict::new(),
            topic: "com.bench.topic".into(),
        };
        feed(
            &mut router,
            subscriber,
            encode(&subscribe, ser).into(),
            &mut out,
        );
        out.clear();
    }
    let args = [Value::UInt(1), Value::Str("hello".into())];
    let args = wire::payload_from_args(ser, &args, None).unwrap();
    let publish = encode(
        &Message::Publish {
            request: 1,
            options: Dict::new(),
            topic: "com.bench.topic".into(),
            payload: args.as_payload(),
        },
        ser,
    );
    let mut input = Input(BytesMut::with_capacity(64 * 1024));
    for _ in 0..iterations {
        feed(
            &mut router,
            publisher,
            black_box(input.frame(&publish)),
            &mut out,
        );
        assert_eq!(out.len(), subscribers);
        out.clear();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` runs every bench target with `--bench`: nothing to do then.
    let (Some(scenario), Some(iterations)) = (args.get(1), args.get(2)) else {
        return;
    };
    let Ok(iterations) = iterations.parse::<u64>() else {
        return;
    };
    match scenario.as_str() {
        "call_json" => call(Serializer::Json, 9, iterations),
        "call_msgpack" => call(Serializer::MsgPack, 9, iterations),
        "call_msgpack_4k" => call(Serializer::MsgPack, 4096, iterations),
        "publish_json_100" => publish(Serializer::Json, 100, iterations),
        "publish_msgpack_100" => publish(Serializer::MsgPack, 100, iterations),
        other => eprintln!("unknown scenario {other:?}"),
    }
}
