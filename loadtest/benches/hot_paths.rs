//! The generator's own CPU per operation, without sockets: what one subscriber spends per EVENT
//! (WebSocket framing, head and stamp, loss tracking, latency record) and what a caller plus an
//! echo callee spend per call (CALL written, INVOCATION read and YIELD written, RESULT read),
//! in every serializer. These are the user-space floors behind the `cpu µs per ...` figures the
//! tool reports; the rest of its CPU is the kernel's socket work.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::borrow::Cow;
use std::ops::ControlFlow;
use wampring::net::conn::open_in_memory;
use wampring::net::websocket::{self, opcode};
use wampring::net::{ClientConn, TransportConfig, TransportKind};
use wampring::serializer::Serializer;
use wampring::wire::{self, Dict, Message, Payload};
use wampring_load::incoming::{self, ToCallee, ToCaller, ToSubscriber};
use wampring_load::outgoing::CallTemplate;
use wampring_load::payload::{self, Stamp};
use wampring_load::seqtrack::{Seen, SeqTracker};
use wampring_load::stats::ThreadStats;

/// Messages per iteration: one burst as a subscriber reads it after a window of publishes.
const BURST: usize = 512;

/// A client connection past its WebSocket handshake.
fn open_client(serializer: Serializer) -> ClientConn {
    open_in_memory(
        TransportKind::WebSocket,
        serializer,
        &TransportConfig::default(),
    )
    .expect("handshake")
    .0
}

fn data_opcode(serializer: Serializer) -> u8 {
    match serializer {
        Serializer::Json => opcode::TEXT,
        Serializer::MsgPack | Serializer::Cbor => opcode::BINARY,
    }
}

/// `BURST` EVENTs as the router frames them: random-looking publication ids, stamps in order.
fn event_burst(serializer: Serializer) -> BytesMut {
    let mut wire_bytes = BytesMut::new();
    let mut args = Vec::new();
    let mut frame = Vec::new();
    for seq in 0..BURST as u64 {
        payload::write_stamped_args(
            serializer,
            Stamp {
                publisher: 0,
                seq,
                sent_ns: 5_000_000_000 + seq,
            },
            0,
            &mut args,
        );
        frame.clear();
        wire::encode(
            &Message::Event {
                subscription: 3,
                publication: 0x1f_ffff_ffff_ffff - seq * 7919,
                details: Dict::new(),
                payload: Payload {
                    ser: serializer,
                    count: 1,
                    raw: &args,
                },
            },
            serializer,
            &mut frame,
        )
        .expect("encodable");
        websocket::write_frame(&mut wire_bytes, data_opcode(serializer), &[&frame], None);
    }
    wire_bytes
}

fn subscriber_per_event(c: &mut Criterion) {
    let mut group = c.benchmark_group("generator_subscriber");
    group.throughput(Throughput::Elements(BURST as u64));
    for serializer in Serializer::ALL {
        let burst = event_burst(serializer);
        group.bench_function(format!("event_{serializer}"), |b| {
            let mut client = open_client(serializer);
            let mut stats = ThreadStats::default();
            let mut tracker = SeqTracker::new(0);
            let mut round = 0u64;
            b.iter(|| {
                client.receive(&burst);
                // Each round re-sends the same sequence numbers: shift them so they stay new.
                let offset = round * BURST as u64;
                round += 1;
                let mut new = 0;
                let end = client.poll_each(|frame| {
                    let ToSubscriber::Event {
                        stamp: Some(stamp), ..
                    } = incoming::to_subscriber(serializer, frame)
                    else {
                        panic!("not an event");
                    };
                    if tracker.record(stamp.seq + offset) == Seen::New {
                        new += 1;
                    }
                    stats.record_latency(6_000_000_000 - stamp.sent_ns, true);
                    ControlFlow::Continue(())
                });
                assert_eq!(end, None);
                assert_eq!(new, BURST);
            });
        });
    }
    group.finish();
}

fn call_round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("generator_rpc");
    group.throughput(Throughput::Elements(BURST as u64));
    for serializer in Serializer::ALL {
        let procedure = "wampload.echo.p1";
        let template = CallTemplate::new(
            serializer,
            &Message::Call {
                request: 1,
                options: Dict::new(),
                procedure: Cow::Borrowed(procedure),
                payload: Payload::empty(serializer),
            },
        )
        .expect("template");
        // What the router sends: INVOCATIONs to the callee, RESULTs to the caller.
        let mut invocations = BytesMut::new();
        let mut results = BytesMut::new();
        let mut frame = Vec::new();
        for request in 1..=BURST as u64 {
            frame.clear();
            wire::encode(
                &Message::Invocation {
                    request,
                    registration: 11,
                    details: Dict::new(),
                    payload: Payload::empty(serializer),
                },
                serializer,
                &mut frame,
            )
            .expect("encodable");
            websocket::write_frame(&mut invocations, data_opcode(serializer), &[&frame], None);
            frame.clear();
            wire::encode(
                &Message::Result {
                    request,
                    details: Dict::new(),
                    payload: Payload::empty(serializer),
                },
                serializer,
                &mut frame,
            )
            .expect("encodable");
            websocket::write_frame(&mut results, data_opcode(serializer), &[&frame], None);
        }
        group.bench_function(format!("call_{serializer}"), |b| {
            let mut caller = open_client(serializer);
            let mut callee = open_client(serializer);
            let mut call = Vec::new();
            let mut reply = Vec::new();
            b.iter(|| {
                for request in 1..=BURST as u64 {
                    template.write(request, &mut call);
                    caller.send_message(&call).expect("room");
                }
                callee.receive(&invocations);
                while let Some(polled) =
                    callee.poll_with(|frame| incoming::to_callee(serializer, frame, &mut reply))
                {
                    assert_eq!(polled, wampring::net::Polled::Message(ToCallee::Invocation));
                    callee.send_message(&reply).expect("room");
                }
                caller.receive(&results);
                let mut done = 0;
                while let Some(wampring::net::Polled::Message(ToCaller::Result(_))) =
                    caller.poll_with(|frame| incoming::to_caller(serializer, frame))
                {
                    done += 1;
                }
                assert_eq!(done, BURST);
                let (sent_calls, sent_yields) = (caller.output().len(), callee.output().len());
                caller.consume_output(sent_calls);
                callee.consume_output(sent_yields);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, subscriber_per_event, call_round_trip);
criterion_main!(benches);
