//! Scenario tests of the metrics gather of the sans-IO router, the source of the admin
//! listener's `/metrics`, `/healthz` and status page: asked of any shard, it answers with one
//! snapshot per shard in shard order, each shard counting its own sessions; call latency is
//! timed on the caller's shard from CALL in to the final answer out (only when configured);
//! a gather started while a shard is shutting down still completes. Each scenario runs at 1
//! shard and at 3 (caller, callee and asker on different shards) through `tests/scenario`.

mod sansio;
#[macro_use]
mod scenario;

use scenario::*;
use wampring::metrics::LATENCY_BOUNDS_US;
use wampring::router::RouterConfig;
use wampring::wire::{Dict, Message, Payload, Serializer};

use Serializer::{Json, MsgPack};

fn measuring() -> RouterConfig {
    RouterConfig {
        measure_call_latency: true,
        ..RouterConfig::default()
    }
}

/// The bucket a latency of `micros` falls in.
fn bucket_of(micros: u64) -> usize {
    LATENCY_BOUNDS_US
        .iter()
        .position(|&bound| micros <= bound)
        .unwrap_or(LATENCY_BOUNDS_US.len())
}

/// One call from `caller` to `callee` (registered for `procedure`) answered after `took` µs.
fn timed_call(h: &mut Harness, caller: &Client, callee: &Client, procedure: &str, took: u64) {
    h.cluster.set_clock_us(1_000_000);
    let request = h.call(caller, procedure, Dict::new(), Payload::empty(caller.ser));
    let invocation = match h.recv(callee).msg() {
        Message::Invocation { request, .. } => request,
        other => panic!("expected INVOCATION, got {other:?}"),
    };
    h.cluster.set_clock_us(1_000_000 + took);
    h.send(
        callee,
        &Message::Yield {
            request: invocation,
            options: Dict::new(),
            payload: Payload::empty(callee.ser),
        },
    );
    match h.recv(caller).msg() {
        Message::Result { request: r, .. } => assert_eq!(r, request),
        other => panic!("expected RESULT, got {other:?}"),
    }
}

fn every_shard_answers_in_order_with_its_own_sessions() {
    let mut h = Harness::new();
    let shards = h.shards();
    let clients: Vec<Client> = (0..shards)
        .flat_map(|shard| (0..=shard).map(move |_| shard))
        .map(|shard| h.join_on(shard, Json))
        .collect();
    for asker in [0, shards - 1] {
        let snapshots = h.cluster.metrics_from(asker, 7 + asker as u64);
        let order: Vec<usize> = snapshots.iter().map(|s| s.shard).collect();
        assert_eq!(order, (0..shards).collect::<Vec<_>>());
        for snapshot in &snapshots {
            assert_eq!(
                snapshot.router.sessions,
                snapshot.shard + 1,
                "shard {} holds {} sessions",
                snapshot.shard,
                snapshot.shard + 1
            );
        }
        let total: usize = snapshots.iter().map(|s| s.router.sessions).sum();
        assert_eq!(total, clients.len());
    }
}

fn call_latency_is_timed_on_the_callers_shard_from_call_to_result() {
    let mut h = Harness::with_config(measuring());
    let last = h.shards() - 1;
    let callee = h.join_on(last, MsgPack);
    let caller = h.join_on(0, Json);
    h.register(&callee, "com.example.slow");
    timed_call(&mut h, &caller, &callee, "com.example.slow", 250);
    timed_call(&mut h, &caller, &callee, "com.example.slow", 40_000);
    let snapshots = h.cluster.metrics_from(last, 1);
    let latency = snapshots[0].latency;
    assert_eq!(latency.count, 2, "{latency:?}");
    assert_eq!(latency.sum_us, 40_250);
    assert_eq!(latency.buckets[bucket_of(250)], 1);
    assert_eq!(latency.buckets[bucket_of(40_000)], 1);
    for other in &snapshots[1..] {
        assert_eq!(other.latency.count, 0, "the callee's shard times nothing");
    }
}

fn without_measuring_no_call_is_timed() {
    let mut h = Harness::new();
    let callee = h.join_on(h.shards() - 1, Json);
    let caller = h.join_on(0, Json);
    h.register(&callee, "com.example.fast");
    timed_call(&mut h, &caller, &callee, "com.example.fast", 10);
    let snapshots = h.cluster.metrics_from(0, 1);
    assert!(snapshots.iter().all(|s| s.latency.count == 0));
    assert!(snapshots.iter().all(|s| s.router.calls_routed <= 1));
    assert_eq!(
        snapshots.iter().map(|s| s.router.calls_routed).sum::<u64>(),
        1
    );
}

fn a_gather_during_shutdown_still_completes() {
    let mut h = Harness::new();
    let client = h.join_on(h.shards() - 1, Json);
    h.shutdown();
    let snapshots = h.cluster.metrics_from(0, 3);
    assert_eq!(snapshots.len(), h.shards());
    assert!(h.was_closed(&client));
}

at_1_and_3_shards!(
    every_shard_answers_in_order_with_its_own_sessions,
    call_latency_is_timed_on_the_callers_shard_from_call_to_result,
    without_measuring_no_call_is_timed,
    a_gather_during_shutdown_still_completes,
);
