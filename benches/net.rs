//! Benchmarks of the net layer's per-byte work: WebSocket frame parsing on the server side
//! (masked client frames, unmasked in place), WebSocket frame encoding (server unmasked, client
//! masked), and RawSocket parse/encode, for 64 B, 1 KiB and 64 KiB payloads. Throughput is
//! reported in payload bytes.

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wampring::net::rawsocket::{RawEvent, RawFramer};
use wampring::net::websocket::{self, opcode, Role, WsEvent, WsFramer};
use wampring::net::{Serializer, TransportConfig};

const SIZES: [usize; 3] = [64, 1024, 64 * 1024];
/// Each iteration handles about this many payload bytes, so small frames are measured in bulk.
const BATCH_BYTES: usize = 256 * 1024;
const MAX_MESSAGE: usize = 1024 * 1024;

fn frames_per_batch(size: usize) -> usize {
    (BATCH_BYTES / size).max(1)
}

fn masked_client_frames(size: usize, count: usize) -> BytesMut {
    let payload = vec![0x5Au8; size];
    let mut out = BytesMut::new();
    for i in 0..count {
        let mask = (i as u32).wrapping_mul(0x9E37_79B9).to_ne_bytes();
        websocket::write_frame(&mut out, opcode::BINARY, &[&payload], Some(mask));
    }
    out
}

fn raw_frames(size: usize, count: usize) -> BytesMut {
    let payload = vec![0x5Au8; size];
    let framer = RawFramer::new(MAX_MESSAGE, MAX_MESSAGE);
    let mut out = BytesMut::new();
    for _ in 0..count {
        framer.encode_message(&[&payload], &mut out);
    }
    out
}

fn ws_config() -> TransportConfig {
    TransportConfig {
        max_message_size: MAX_MESSAGE,
        ..TransportConfig::default()
    }
}

fn websocket_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("ws_parse_server");
    for size in SIZES {
        let count = frames_per_batch(size);
        let template = masked_client_frames(size, count);
        group.throughput(Throughput::Bytes((size * count) as u64));
        group.bench_function(format!("{size}B"), |b| {
            let mut framer = WsFramer::new(Role::Server, Serializer::MsgPack, &ws_config());
            let mut out = BytesMut::new();
            b.iter_batched(
                || template.clone(),
                |mut input| {
                    let mut n = 0;
                    while let Some(WsEvent::Message(m)) = framer.decode(&mut input, &mut out) {
                        n += m.len();
                    }
                    assert_eq!(n, size * count);
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();

    for (name, role) in [
        ("ws_encode_server", Role::Server),
        ("ws_encode_client_masked", Role::Client),
    ] {
        let mut group = c.benchmark_group(name);
        for size in SIZES {
            let count = frames_per_batch(size);
            let payload = vec![0x5Au8; size];
            group.throughput(Throughput::Bytes((size * count) as u64));
            group.bench_function(format!("{size}B"), |b| {
                let mut framer = WsFramer::new(role, Serializer::MsgPack, &ws_config());
                let mut out = BytesMut::with_capacity(2 * BATCH_BYTES + size);
                b.iter(|| {
                    out.clear();
                    for _ in 0..count {
                        framer.encode_message(&[&payload], &mut out);
                    }
                    out.len()
                });
            });
        }
        group.finish();
    }
}

fn rawsocket_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw_parse");
    for size in SIZES {
        let count = frames_per_batch(size);
        let template = raw_frames(size, count);
        group.throughput(Throughput::Bytes((size * count) as u64));
        group.bench_function(format!("{size}B"), |b| {
            let mut framer = RawFramer::new(MAX_MESSAGE, MAX_MESSAGE);
            let mut out = BytesMut::new();
            b.iter_batched(
                || template.clone(),
                |mut input| {
                    let mut n = 0;
                    while let Some(RawEvent::Message(m)) =
                        framer.decode(&mut input, &mut out, |_, _| true)
                    {
                        n += m.len();
                    }
                    assert_eq!(n, size * count);
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();

    let mut group = c.benchmark_group("raw_encode");
    for size in SIZES {
        let count = frames_per_batch(size);
        let payload = vec![0x5Au8; size];
        group.throughput(Throughput::Bytes((size * count) as u64));
        group.bench_function(format!("{size}B"), |b| {
            let framer = RawFramer::new(MAX_MESSAGE, MAX_MESSAGE);
            let mut out = BytesMut::with_capacity(2 * BATCH_BYTES + size);
            b.iter(|| {
                out.clear();
                for _ in 0..count {
                    framer.encode_message(&[&payload], &mut out);
                }
                out.len()
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("mask");
    for size in SIZES {
        let mut data = vec![0x5Au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("{size}B"), |b| {
            b.iter(|| websocket::apply_mask(&mut data, [1, 2, 3, 4]));
        });
    }
    group.finish();
}

criterion_group!(benches, websocket_benches, rawsocket_benches);
criterion_main!(benches);
