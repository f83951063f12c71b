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
//! `call_{json,msgpack,cbor}` (CALL -> INVOCATION, YIELD -> RESULT, small payload),
//! `call_msgpack_4k` (the same with 4 KiB of payload each way), `call_msgpack_timed` (as
//! `call_msgpack` with the call-latency histogram on, as with an admin listener), `publish_{json,msgpack,cbor}_1` and
//! `publish_{json,msgpack}_100` (PUBLISH -> EVENT to 1 and to 100 subscribers). Frames reach the
//! router as `Bytes` split off a reused input buffer, as from a transport, and its actions are
//! taken apart as the shard runtime does.

use std::hint::black_box;

use wampring::wire::{self, Dict, Message, Serializer, Value};

mod support;

use wampring::router::RouterConfig;

use support::{
    caller_and_callee_with, encode, messages_sent, perform, publisher_and_subscribers, FrameBuf,
};

fn call(ser: Serializer, payload_len: usize, iterations: u64) {
    call_with(RouterConfig::default(), ser, payload_len, iterations);
}

/// A call as the runtime drives it with the admin listener on: the clock told to the router
/// before each input, every call timed into the latency histogram.
fn timed_call(ser: Serializer, iterations: u64) {
    let config = RouterConfig {
        measure_call_latency: true,
        ..RouterConfig::default()
    };
    call_with(config, ser, 9, iterations);
}

fn call_with(config: RouterConfig, ser: Serializer, payload_len: usize, iterations: u64) {
    let timed = config.measure_call_latency;
    let (mut router, caller, callee) = caller_and_callee_with(config, ser, "com.bench.add2");
    let mut out = Vec::new();
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
    let mut input = FrameBuf::new();
    let mut yield_frame = Vec::new();
    for invocation in 1..=iterations {
        if timed {
            router.set_clock_us(black_box(invocation * 10));
        }
        router.handle_message(caller, black_box(input.frame(&call)), 0, &mut out);
        yield_frame.clear();
        let answer = Message::Yield {
            request: invocation,
            options: Dict::new(),
            payload: args.as_payload(),
        };
        wire::encode(&answer, ser, &mut yield_frame).unwrap();
        if timed {
            router.set_clock_us(black_box(invocation * 10 + 3));
        }
        router.handle_message(callee, black_box(input.frame(&yield_frame)), 0, &mut out);
        assert_eq!(out.len(), 2);
        perform(&mut out);
    }
}

fn publish(ser: Serializer, subscribers: usize, iterations: u64) {
    let (mut router, publisher) = publisher_and_subscribers(ser, "com.bench.topic", subscribers);
    let mut out = Vec::new();
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
    let mut input = FrameBuf::new();
    for _ in 0..iterations {
        router.handle_message(publisher, black_box(input.frame(&publish)), 0, &mut out);
        assert_eq!(messages_sent(&out), subscribers);
        perform(&mut out);
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
        "call_cbor" => call(Serializer::Cbor, 9, iterations),
        "call_msgpack_timed" => timed_call(Serializer::MsgPack, iterations),
        "publish_json_1" => publish(Serializer::Json, 1, iterations),
        "publish_msgpack_1" => publish(Serializer::MsgPack, 1, iterations),
        "publish_cbor_1" => publish(Serializer::Cbor, 1, iterations),
        "publish_json_100" => publish(Serializer::Json, 100, iterations),
        "publish_msgpack_100" => publish(Serializer::MsgPack, 100, iterations),
        other => eprintln!("unknown scenario {other:?}"),
    }
}
