//! Entry points for `benches/shard.rs`: the mesh's real pieces (glommio shared channel,
//! `ShardLink` with its overflow queue, the drain loop and its wake-ups) driven between two
//! executors pinned to two CPUs, so the bench measures the cross-core hop as shards pay it,
//! without the bench itself naming glommio. Not part of the router's API.

use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

use super::cpus;
use super::mesh::{self, MeshEnds, ShardLink};
use super::{startup, IO_MEMORY_BYTES, RING_DEPTH};

/// The message the benches move: about the size of a small router message header.
pub type BenchMsg = [u64; 4];

/// Tells the echo executor that the round trips are over. (A sending end dropped while its
/// executor is being torn down marks the channel closed without waking the receiver, so the
/// end is said in-band.)
const END_OF_RUN: u64 = u64::MAX;

/// Messages the throughput sender hands to its link before it yields (as a shard would after
/// routing one batch of client input).
const SEND_BURST: usize = 256;

/// The two CPUs the benches pin to: the first two allowed ones (`None`: run unpinned, on a
/// one-CPU machine).
pub fn bench_cpus() -> (Option<usize>, Option<usize>) {
    let allowed = cpus::allowed_cpus().unwrap_or_default();
    match allowed.as_slice() {
        [a, b, ..] => (Some(*a), Some(*b)),
        _ => (None, None),
    }
}

fn builder(cpu: Option<usize>, spin_before_park: Duration) -> LocalExecutorBuilder {
    let placement = match cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    let builder = LocalExecutorBuilder::new(placement)
        .io_memory(IO_MEMORY_BYTES)
        .ring_depth(RING_DEPTH);
    if spin_before_park.is_zero() {
        builder
    } else {
        builder.spin_before_park(spin_before_park)
    }
}

/// Connects `link` (this executor's sending end) and starts its flusher.
async fn connect_link(link: &Rc<ShardLink<BenchMsg>>, ends: &mut MeshEnds<BenchMsg>, to: usize) {
    if let Some(sender) = ends.outbound[to].take() {
        link.connect(sender).await;
        glommio::spawn_local(link.clone().run_flusher()).detach();
    }
}

/// `iterations` round trips shard 0 -> shard 1 -> shard 0, one message in flight: each hop is
/// a `ShardLink::send` and a receiver woken by the reactor (the executor may be parked, as an
/// idle shard is). Returns the time of the loop alone (executor start-up excluded).
pub fn round_trip(iterations: u64, capacity: usize, spin_before_park: Duration) -> Duration {
    let _ = startup::raise_memlock_limit(2);
    let (cpu_a, cpu_b) = bench_cpus();
    let mut mesh = mesh::build_mesh::<BenchMsg>(2, capacity).into_iter();
    let (mut ends_a, mut ends_b) = (mesh.next().unwrap(), mesh.next().unwrap());

    let echo = builder(cpu_b, spin_before_park)
        .name("bench-echo")
        .spawn(move || async move {
            let link = Rc::new(ShardLink::new(0));
            let receiver = ends_b.inbound[0].take().unwrap();
            let echo_link = link.clone();
            let drain = glommio::spawn_local(mesh::drain_inbound(receiver, move |msg| {
                if msg[0] == END_OF_RUN {
                    return false;
                }
                echo_link.send(msg);
                true
            }));
            connect_link(&link, &mut ends_b, 0).await;
            // Ends at END_OF_RUN.
            drain.await;
        })
        .expect("bench executor");
    let ping = builder(cpu_a, spin_before_park)
        .name("bench-ping")
        .spawn(move || async move {
            let link = Rc::new(ShardLink::new(1));
            let receiver = ends_a.inbound[1].take().unwrap();
            let receiver_task = glommio::spawn_local(async move { receiver.connect().await });
            connect_link(&link, &mut ends_a, 1).await;
            let receiver = receiver_task.await;
            let start = Instant::now();
            for i in 0..iterations {
                link.send([i; 4]);
                let reply = receiver.recv().await.expect("echo shard alive");
                assert_eq!(reply[0], i, "replies come back in order");
            }
            let elapsed = start.elapsed();
            link.send([END_OF_RUN; 4]);
            // Let the flusher hand over anything still queued before this executor ends.
            while link.backlog_len() > 0 {
                glommio::timer::sleep(Duration::from_micros(50)).await;
            }
            elapsed
        })
        .expect("bench executor");
    let elapsed = ping.join().expect("ping executor");
    echo.join().expect("echo executor");
    elapsed
}

/// `messages` messages one way, shard 0 -> shard 1, sent in bursts of `SEND_BURST` through
/// `ShardLink::send` (a full channel spills into the overflow queue) and drained in batches by
/// `drain_inbound`. Returns the time from the first send to the last receipt, and the overflow
/// queue's high-water mark.
pub fn one_way_throughput(messages: u64, capacity: usize) -> (Duration, u64) {
    let _ = startup::raise_memlock_limit(2);
    let (cpu_a, cpu_b) = bench_cpus();
    let mut mesh = mesh::build_mesh::<BenchMsg>(2, capacity).into_iter();
    let (mut ends_a, mut ends_b) = (mesh.next().unwrap(), mesh.next().unwrap());
    let started: Arc<OnceLock<Instant>> = Arc::new(OnceLock::new());
    let started_at_sender = started.clone();

    let receiver = builder(cpu_b, Duration::ZERO)
        .name("bench-sink")
        .spawn(move || async move {
            let inbound = ends_b.inbound[0].take().unwrap();
            drop(ends_b);
            let mut received = 0u64;
            let mut finished = None;
            mesh::drain_inbound(inbound, |msg: BenchMsg| {
                assert_eq!(msg[0], received, "FIFO through channel and overflow");
                received += 1;
                if received == messages {
                    finished = Some(Instant::now());
                }
                received < messages
            })
            .await;
            let finished = finished.expect("every message arrived");
            finished.duration_since(*started.get().expect("sender started"))
        })
        .expect("bench executor");
    let sender = builder(cpu_a, Duration::ZERO)
        .name("bench-source")
        .spawn(move || async move {
            let link = Rc::new(ShardLink::new(1));
            connect_link(&link, &mut ends_a, 1).await;
            let _ = started_at_sender.set(Instant::now());
            let mut sent = 0u64;
            while sent < messages {
                let burst_end = (sent + SEND_BURST as u64).min(messages);
                for i in sent..burst_end {
                    link.send([i; 4]);
                }
                sent = burst_end;
                futures_lite::future::yield_now().await;
            }
            // Let the flusher empty the overflow queue before this executor ends.
            while link.backlog_len() > 0 {
                glommio::timer::sleep(Duration::from_micros(50)).await;
            }
            link.stats().overflow_high_water
        })
        .expect("bench executor");
    let high_water = sender.join().expect("source executor");
    let elapsed = receiver.join().expect("sink executor");
    (elapsed, high_water)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_channel_spills_into_the_overflow_queue_and_keeps_fifo() {
        // 16-slot channel, bursts of 256: most messages wait locally; every one arrives, in
        // order (checked inside), and the spill is visible in the high-water mark.
        let (_, high_water) = one_way_throughput(20_000, 16);
        assert!(high_water > 0, "the overflow queue was never used");
    }

    #[test]
    fn round_trips_complete_parked_and_spinning() {
        assert!(round_trip(200, 16, Duration::ZERO) > Duration::ZERO);
        assert!(round_trip(200, 16, Duration::from_micros(20)) > Duration::ZERO);
    }
}
