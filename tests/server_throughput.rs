//! Correctness under pipelining over real sockets (not a timed test: the machine is shared, so
//! there is no speed assertion). One caller keeps a window of calls in flight to one callee over
//! WebSocket MessagePack; every call must get exactly one RESULT carrying its own payload. The
//! achieved calls/s is printed for information only.

mod common;

use std::collections::HashMap;
use std::time::Instant;

use common::*;
use wampring::net::TransportKind;
use wampring::wire::{Message, Serializer, Value};

const CALLS: u64 = 20_000;
const IN_FLIGHT: u64 = 100;
const PROCEDURE: &str = "com.example.pipeline";

#[test]
fn pipelined_calls_each_get_exactly_one_result() {
    let router = RouterProcess::default_start();
    let mut callee = router.join("callee", TransportKind::WebSocket, Serializer::MsgPack);
    callee.register(PROCEDURE);
    let mut caller = router.join("caller", TransportKind::WebSocket, Serializer::MsgPack);

    // The callee answers every INVOCATION with [n * 2, "r<n>"] for the call's args [n, "c<n>"].
    let callee_thread = std::thread::spawn(move || {
        for expected_inv in 1..=CALLS {
            let inv = callee.expect_invocation();
            assert_eq!(
                inv.request, expected_inv,
                "INVOCATION ids must be sequential"
            );
            let n = match inv.payload.0.as_slice() {
                [Value::UInt(n), Value::Str(tag)] if *tag == format!("c{n}") => *n,
                other => panic!("callee: unexpected INVOCATION args {other:?}"),
            };
            callee.yield_(inv.request, &[u(n * 2), s(&format!("r{n}"))], None);
        }
        callee.expect_no_message(QUIET);
    });

    let started = Instant::now();
    // request id -> n
    let mut outstanding: HashMap<u64, u64> = HashMap::new();
    let mut sent = 0u64;
    let mut done = 0u64;
    while done < CALLS {
        while sent < CALLS && (outstanding.len() as u64) < IN_FLIGHT {
            let req = caller.call(PROCEDURE, &[u(sent), s(&format!("c{sent}"))], None);
            assert!(
                outstanding.insert(req, sent).is_none(),
                "request id {req} reused"
            );
            sent += 1;
        }
        let m = caller.recv();
        let request = match m.get() {
            Message::Result { request, .. } => request,
            _ => panic!("caller: expected RESULT, got {m:?} after {done} results"),
        };
        let n = outstanding.remove(&request).unwrap_or_else(|| {
            panic!("RESULT for request {request} that is not outstanding (duplicate or unknown)")
        });
        assert_payload(
            &format!("RESULT {request}"),
            &m.payload(),
            &[u(n * 2), s(&format!("r{n}"))],
            None,
        );
        done += 1;
    }
    let elapsed = started.elapsed();
    assert!(outstanding.is_empty());
    caller.expect_no_message(QUIET);
    callee_thread.join().expect("callee thread panicked");
    eprintln!(
        "pipelined calls: {CALLS} calls, {IN_FLIGHT} in flight, {:.3} s, {:.0} calls/s (information only)",
        elapsed.as_secs_f64(),
        CALLS as f64 / elapsed.as_secs_f64()
    );
}
