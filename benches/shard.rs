//! Cross-shard messaging benchmarks: the real cost of one hop between two cores, as the shard
//! runtime pays it (glommio shared channel + `ShardLink` + drain loop, executors pinned to the
//! first two allowed CPUs, driven through `wampring::shard::bench_support`):
//! * `round_trip/*`: one message shard 0 -> 1 -> 0 at a time, receivers parked between hops
//!   (`park`: woken by eventfd, the default), or spinning 50 us before parking
//!   (`spin_50us`: `runtime.spin_before_park_us = 50`). Time per round trip = two hops.
//! * `round_trip/crossbeam_futex`: the same ping-pong over crossbeam-channel between two pinned
//!   plain threads blocking in `recv` (futex wake-up) — the alternative the mesh did not take.
//! * `one_way/*`: messages/s through one channel, sent in bursts and drained in batches;
//!   `cap64` forces the local overflow queue into play.
//!
//! Run briefly: `cargo bench --bench shard -- --warm-up-time 1 --measurement-time 3`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wampring::shard::bench_support::{self, BenchMsg};

const CAPACITY: usize = 4096;

/// Pins the calling thread to `cpu` (best effort).
fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    // SAFETY: cpu_set_t is plain data; sched_setaffinity reads it for this thread only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// `iterations` round trips over two crossbeam bounded channels between two pinned threads.
fn crossbeam_round_trip(iterations: u64) -> Duration {
    let (cpu_a, cpu_b) = bench_support::bench_cpus();
    let (to_echo, echo_in) = crossbeam_channel::bounded::<BenchMsg>(CAPACITY);
    let (to_ping, ping_in) = crossbeam_channel::bounded::<BenchMsg>(CAPACITY);
    let echo = std::thread::spawn(move || {
        pin(cpu_b);
        while let Ok(msg) = echo_in.recv() {
            if to_ping.send(msg).is_err() {
                break;
            }
        }
    });
    pin(cpu_a);
    let start = Instant::now();
    for i in 0..iterations {
        to_echo.send([i; 4]).unwrap();
        ping_in.recv().unwrap();
    }
    let elapsed = start.elapsed();
    drop(to_echo);
    echo.join().unwrap();
    elapsed
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("park", |b| {
        b.iter_custom(|iters| bench_support::round_trip(iters, CAPACITY, Duration::ZERO))
    });
    group.bench_function("spin_50us", |b| {
        b.iter_custom(|iters| bench_support::round_trip(iters, CAPACITY, Duration::from_micros(50)))
    });
    group.bench_function("crossbeam_futex", |b| b.iter_custom(crossbeam_round_trip));
    group.finish();
}

fn one_way(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_way");
    group.throughput(Throughput::Elements(1));
    group.bench_function("cap4096", |b| {
        b.iter_custom(|iters| bench_support::one_way_throughput(iters, CAPACITY).0)
    });
    group.bench_function("cap64", |b| {
        b.iter_custom(|iters| bench_support::one_way_throughput(iters, 64).0)
    });
    group.finish();
}

criterion_group!(benches, round_trip, one_way);
criterion_main!(benches);
