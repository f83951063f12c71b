//! The channel mesh between shards: exactly one bounded, lock-free, FIFO channel per ordered
//! pair of shards, its sending side ([`ShardLink`]: never blocks, queues locally when the channel
//! is full) and its receiving side ([`drain_inbound`]: one task per inbound channel).
//!
//! The channels are glommio's `shared_channel`: a single-producer single-consumer ring buffer
//! (bounded, FIFO, lock-free: one atomic head and tail) that is wired into the reactor of each
//! side. A receiver with nothing to read parks its task; a sender that pushes while the
//! receiving executor sleeps writes that executor's eventfd, and only then (the sleeping side
//! announces itself with a flag, so a busy receiver costs the sender no syscall). A busy
//! receiver finds the new messages on its next reactor turn. So an idle shard burns no CPU on
//! the mesh, and a message costs no timer latency; a sleeping receiver costs one eventfd wake-up
//! (tens of microseconds on VMs; `spin_before_park_us` trades CPU for it). A crossbeam queue
//! would need the same eventfd beside it, and a second queue of notifications.
//!
//! Overflow: `try_send`; when the ring is full the message goes to a local queue for that
//! destination, and every later message to that destination goes behind it (FIFO per pair holds)
//! until a flusher task has moved the whole queue into the ring, waiting for room through the
//! channel's own wake-up. The queue does not drop (the router's protocol must not lose
//! messages); its depth is a metric (high-water mark) and a warning each time it doubles past
//! [`OVERFLOW_WARN_DEPTH`]. It is bounded by backpressure instead ([`Backpressure`]): when the
//! queue to any shard reaches `runtime.shard_backlog_limit`, the sending shard stops reading
//! from its own connections (their requests wait in the kernel's socket buffers, then in the
//! clients) until every queue is back to half of it. Messages from other shards are still
//! handled meanwhile, so two shards congested towards each other still drain each other.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::task::{Poll, Waker};

use glommio::channels::shared_channel::{self, ConnectedSender, SharedReceiver, SharedSender};
use glommio::{GlommioError, ResourceType};
use tracing::{debug, warn};

use crate::router::ShardMsg;

/// What travels between shards: router messages, and (round-robin placement) accepted
/// connections handed from the accepting shard to their owner.
#[derive(Debug)]
pub(crate) enum MeshMsg {
    Router(ShardMsg),
    /// A connected socket, to be served by the receiving shard on `listener` (index into the
    /// config's listeners). Owned, so a hand-off that is never delivered closes it. TCP or Unix
    /// stream socket: the listener's `bind` says which (and whether it speaks TLS), so the
    /// kind travels with the index.
    Adopt {
        socket: OwnedFd,
        listener: usize,
    },
    /// As `Adopt`, for an HTTP long-poll request that reached a shard other than its
    /// transport's owner: `prefix` is what was already read from the socket (the request and
    /// anything after it), parsed again by the receiving shard before it reads more.
    AdoptRequest {
        socket: OwnedFd,
        listener: usize,
        prefix: bytes::Bytes,
    },
}

/// Messages handled per wake-up of a drain task before it lets the shard's other tasks run.
pub(crate) const DRAIN_BATCH: usize = 64;

/// Overflow depth (messages to one shard) at which the first warning is logged; later warnings
/// come at each doubling.
pub(crate) const OVERFLOW_WARN_DEPTH: usize = 4096;

/// The backpressure one shard's outbound links share (see the module text).
pub(crate) struct Backpressure {
    /// Local queue depth (messages to one shard) at which reading pauses.
    limit: usize,
    /// Links whose queue reached `limit` and has not yet drained to half of it.
    congested_links: Cell<usize>,
    /// Incremented at every resume; a waiter registered in the current generation is not
    /// registered again (a paused connection task may be polled many times).
    generation: Cell<u64>,
    waiting: RefCell<Vec<Waker>>,
    pauses: Cell<u64>,
}

impl Backpressure {
    pub(crate) fn new(limit: usize) -> Rc<Backpressure> {
        Rc::new(Backpressure {
            limit: limit.max(2),
            congested_links: Cell::new(0),
            generation: Cell::new(0),
            waiting: RefCell::new(Vec::new()),
            pauses: Cell::new(0),
        })
    }

    /// True while the shard must not read from its connections.
    #[inline]
    pub(crate) fn paused(&self) -> bool {
        self.congested_links.get() != 0
    }

    /// Wakes `waker` at the resume. `registered` is the caller's own cell (start it at
    /// `u64::MAX`): it keeps one registration per caller and pause.
    pub(crate) fn wait(&self, registered: &Cell<u64>, waker: &Waker) {
        let generation = self.generation.get();
        if registered.replace(generation) != generation {
            self.waiting.borrow_mut().push(waker.clone());
        }
    }

    /// Times reading was paused so far.
    pub(crate) fn pauses(&self) -> u64 {
        self.pauses.get()
    }

    fn congest(&self) {
        if self.congested_links.get() == 0 {
            self.pauses.set(self.pauses.get() + 1);
        }
        self.congested_links.set(self.congested_links.get() + 1);
    }

    fn relieve(&self) {
        let left = self.congested_links.get().saturating_sub(1);
        self.congested_links.set(left);
        if left == 0 {
            self.generation.set(self.generation.get().wrapping_add(1));
            let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
            for waker in waiting {
                waker.wake();
            }
        }
    }
}

/// Capacity an emptied overflow queue keeps.
const BACKLOG_KEEP_CAPACITY: usize = 1024;

/// One shard's ends of the mesh, not yet connected to its executor (so they can move to the
/// shard's thread). Index = the other shard; `None` at the shard's own index.
pub struct MeshEnds<T: Send + 'static> {
    pub(crate) outbound: Vec<Option<SharedSender<T>>>,
    pub(crate) inbound: Vec<Option<SharedReceiver<T>>>,
}

/// The whole mesh for `shards` shards: entry k holds shard k's ends. Every channel holds
/// `capacity` messages (glommio rounds up to a power of two; config demands one).
pub fn build_mesh<T: Send + 'static>(shards: usize, capacity: usize) -> Vec<MeshEnds<T>> {
    let mut ends: Vec<MeshEnds<T>> = (0..shards)
        .map(|_| MeshEnds {
            outbound: (0..shards).map(|_| None).collect(),
            inbound: (0..shards).map(|_| None).collect(),
        })
        .collect();
    for from in 0..shards {
        for to in 0..shards {
            if from != to {
                let (sender, receiver) = shared_channel::new_bounded(capacity);
                ends[from].outbound[to] = Some(sender);
                ends[to].inbound[from] = Some(receiver);
            }
        }
    }
    ends
}

/// Counters of one outbound link (read into the shard's metrics).
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct LinkStats {
    pub(crate) sent: u64,
    pub(crate) channel_full: u64,
    pub(crate) overflow_high_water: u64,
    pub(crate) dropped: u64,
}

/// The sending side of the channel from this shard to shard `to`, with its local overflow
/// queue. Single-threaded (lives in the shard's `Rc`s).
pub(crate) struct ShardLink<T: Send + 'static> {
    to: usize,
    /// Set once the channel is connected; until then everything queues in `backlog`.
    sender: OnceCell<ConnectedSender<T>>,
    /// Messages waiting for room in the channel, oldest first.
    backlog: RefCell<VecDeque<T>>,
    /// The flusher has taken the oldest backlog message and is waiting to push it: the backlog
    /// is not empty in spirit, so new messages still go behind it.
    in_flight: Cell<bool>,
    /// The receiving shard has stopped: drop, count, never block.
    closed: Cell<bool>,
    flusher: RefCell<Option<Waker>>,
    next_warn_depth: Cell<usize>,
    stats: Cell<LinkStats>,
    /// The shard's backpressure (none in benchmarks of the link alone).
    backpressure: Option<Rc<Backpressure>>,
    /// This link counts as congested in `backpressure`.
    congested: Cell<bool>,
}

impl<T: Send + 'static> ShardLink<T> {
    pub(crate) fn new(to: usize) -> ShardLink<T> {
        Self::with_backpressure(to, None)
    }

    pub(crate) fn with_backpressure(
        to: usize,
        backpressure: Option<Rc<Backpressure>>,
    ) -> ShardLink<T> {
        ShardLink {
            to,
            sender: OnceCell::new(),
            backlog: RefCell::new(VecDeque::new()),
            in_flight: Cell::new(false),
            closed: Cell::new(false),
            flusher: RefCell::new(None),
            next_warn_depth: Cell::new(OVERFLOW_WARN_DEPTH),
            stats: Cell::new(LinkStats::default()),
            backpressure,
            congested: Cell::new(false),
        }
    }

    pub(crate) fn stats(&self) -> LinkStats {
        self.stats.get()
    }

    fn update_stats(&self, change: impl FnOnce(&mut LinkStats)) {
        let mut stats = self.stats.get();
        change(&mut stats);
        self.stats.set(stats);
    }

    /// Messages waiting locally (not yet in the channel).
    pub(crate) fn backlog_len(&self) -> usize {
        self.backlog.borrow().len() + usize::from(self.in_flight.get())
    }

    /// Sends `msg` to shard `to` without ever blocking: straight into the channel when nothing
    /// older waits and there is room, else behind the older messages in the local queue.
    pub(crate) fn send(&self, msg: T) {
        self.update_stats(|stats| stats.sent += 1);
        if self.closed.get() {
            self.update_stats(|stats| stats.dropped += 1);
            return;
        }
        let msg = match self.sender.get() {
            Some(sender) if self.backlog_len() == 0 => match sender.try_send(msg) {
                Ok(()) => return,
                Err(GlommioError::WouldBlock(ResourceType::Channel(msg))) => {
                    self.update_stats(|stats| stats.channel_full += 1);
                    msg
                }
                Err(GlommioError::Closed(ResourceType::Channel(_))) => {
                    self.mark_closed(1);
                    return;
                }
                Err(error) => {
                    // glommio returns only the two above for a channel; count and move on
                    // rather than panic.
                    warn!(to = self.to, %error, "unexpected error from a shard channel");
                    self.update_stats(|stats| stats.dropped += 1);
                    return;
                }
            },
            // Not connected yet, or older messages wait: keep the order.
            _ => msg,
        };
        self.backlog.borrow_mut().push_back(msg);
        let depth = self.backlog_len();
        self.update_stats(|stats| {
            stats.overflow_high_water = stats.overflow_high_water.max(depth as u64)
        });
        if let Some(backpressure) = &self.backpressure {
            if depth >= backpressure.limit && !self.congested.replace(true) {
                backpressure.congest();
            }
        }
        if depth >= self.next_warn_depth.get() {
            warn!(
                to = self.to,
                depth, "messages to shard {} are queueing locally: its channel is full", self.to
            );
            self.next_warn_depth.set(depth.saturating_mul(2));
        }
        if let Some(waker) = self.flusher.borrow_mut().take() {
            waker.wake();
        }
    }

    fn mark_closed(&self, lost: usize) {
        if !self.closed.replace(true) {
            debug!(
                to = self.to,
                "shard channel closed: the receiving shard has stopped"
            );
        }
        let lost = lost + self.backlog.borrow().len();
        self.backlog.borrow_mut().clear();
        self.update_stats(|stats| stats.dropped += lost as u64);
        self.relieve_if_drained();
    }

    /// Ends this link's congestion once its queue is down to half the limit.
    fn relieve_if_drained(&self) {
        if let Some(backpressure) = &self.backpressure {
            if self.congested.get() && self.backlog_len() <= backpressure.limit / 2 {
                self.congested.set(false);
                backpressure.relieve();
            }
        }
    }

    /// Connects the channel on this executor (waits until the receiving shard connected its
    /// end). Messages sent before stay queued until [`ShardLink::run_flusher`] runs.
    pub(crate) async fn connect(&self, sender: SharedSender<T>) {
        let sender = sender.connect().await;
        if self.sender.set(sender).is_err() {
            warn!(
                to = self.to,
                "shard channel connected twice; keeping the first"
            );
        }
    }

    /// The flusher task: whenever messages wait locally, moves them into the channel in order,
    /// waiting for room through the channel's own wake-up (the receiver's pop notifies us).
    /// Runs until the receiving shard stops (or the task is dropped with its shard).
    pub(crate) async fn run_flusher(self: Rc<Self>) {
        let Some(sender) = self.sender.get() else {
            warn!(
                to = self.to,
                "flusher started before its channel was connected"
            );
            return;
        };
        loop {
            poll_fn(|cx| {
                if self.closed.get() || !self.backlog.borrow().is_empty() {
                    Poll::Ready(())
                } else {
                    *self.flusher.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                }
            })
            .await;
            if self.closed.get() {
                return;
            }
            loop {
                let Some(msg) = self.backlog.borrow_mut().pop_front() else {
                    break;
                };
                self.in_flight.set(true);
                // With one producer (this shard), room seen by `send` cannot vanish before its
                // push, so it never reports WouldBlock. Caveat: if the receiving executor is
                // gone while the ring is full, glommio keeps waking this wait until our own
                // shard stops (bounded by the shutdown grace).
                let result = sender.send(msg).await;
                self.in_flight.set(false);
                if result.is_err() {
                    self.mark_closed(1);
                    return;
                }
                self.relieve_if_drained();
            }
            // A burst (a session leaving with thousands of subscriptions) grew the queue;
            // do not hold that memory once it is empty.
            let mut backlog = self.backlog.borrow_mut();
            if backlog.capacity() > BACKLOG_KEEP_CAPACITY {
                backlog.shrink_to(BACKLOG_KEEP_CAPACITY);
            }
        }
    }
}

/// The drain task of one inbound channel: connects it, then hands every message to `handle`
/// in channel order. Handles up to [`DRAIN_BATCH`] messages per wake-up, then yields so the
/// shard's connections get their turn. Ends when the sending shard has gone, or when `handle`
/// returns false (this shard has terminated).
pub(crate) async fn drain_inbound<T: Send + 'static>(
    receiver: SharedReceiver<T>,
    mut handle: impl FnMut(T) -> bool,
) {
    let receiver = receiver.connect().await;
    let mut handled_since_yield = 0;
    // `recv` returns at once while messages are there; it parks the task only when the ring
    // is empty, and the reactor wakes it when a message arrives.
    while let Some(msg) = receiver.recv().await {
        if !handle(msg) {
            return;
        }
        handled_since_yield += 1;
        if handled_since_yield >= DRAIN_BATCH {
            handled_since_yield = 0;
            futures_lite::future::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use glommio::{LocalExecutorBuilder, Placement};

    use super::*;
    use crate::shard::{startup, IO_MEMORY_BYTES, RING_DEPTH};

    fn executor(name: &str) -> LocalExecutorBuilder {
        LocalExecutorBuilder::new(Placement::Unbound)
            .name(name)
            .io_memory(IO_MEMORY_BYTES)
            .ring_depth(RING_DEPTH)
    }

    #[test]
    fn a_full_backlog_pauses_reading_until_it_drains_to_half_and_loses_nothing() {
        const LIMIT: usize = 256;
        const MESSAGES: u64 = 1_000;
        let _ = startup::raise_memlock_limit(2);
        let mut mesh = build_mesh::<u64>(2, 16).into_iter();
        let (mut ends_a, mut ends_b) = (mesh.next().unwrap(), mesh.next().unwrap());
        // The sink starts draining only when the sender says so (after it saw the pause).
        let (go_tx, go_rx) = mpsc::channel::<()>();

        let sink = executor("test-sink")
            .spawn(move || async move {
                let inbound = ends_b.inbound[0].take().unwrap();
                drop(ends_b);
                let receiver = inbound.connect().await;
                while go_rx.try_recv().is_err() {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                }
                let mut received = Vec::new();
                while (received.len() as u64) < MESSAGES {
                    received.push(receiver.recv().await.expect("sender alive"));
                }
                received
            })
            .unwrap();
        let sender = executor("test-source")
            .spawn(move || async move {
                let backpressure = Backpressure::new(LIMIT);
                let link = Rc::new(ShardLink::with_backpressure(1, Some(backpressure.clone())));
                link.connect(ends_a.outbound[1].take().unwrap()).await;
                glommio::spawn_local(link.clone().run_flusher()).detach();
                let mut paused_at = None;
                for i in 0..MESSAGES {
                    link.send(i);
                    if paused_at.is_none() && backpressure.paused() {
                        paused_at = Some(link.backlog_len());
                    }
                }
                assert_eq!(paused_at, Some(LIMIT), "paused exactly at the limit");
                assert_eq!(backpressure.pauses(), 1);
                // Wait for the resume the way a connection task does.
                let registered = Cell::new(u64::MAX);
                let _ = go_tx.send(());
                poll_fn(|cx| {
                    if backpressure.paused() {
                        backpressure.wait(&registered, cx.waker());
                        backpressure.wait(&registered, cx.waker());
                        Poll::Pending
                    } else {
                        Poll::Ready(())
                    }
                })
                .await;
                let resumed_at = link.backlog_len();
                while link.backlog_len() > 0 {
                    glommio::timer::sleep(Duration::from_micros(100)).await;
                }
                resumed_at
            })
            .unwrap();
        let resumed_at = sender.join().unwrap();
        assert!(resumed_at <= LIMIT / 2, "resumed at {resumed_at}");
        let received = sink.join().unwrap();
        assert_eq!(received, (0..MESSAGES).collect::<Vec<_>>(), "all, in order");
    }
}
