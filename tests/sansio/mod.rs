//! The shared sans-IO harness of the router tests: N `Router` shards in one process, one FIFO
//! queue per ordered pair of shards (what the runtime's channel mesh guarantees), a mailbox per
//! session, and the runtime contract checked on every action (nothing is sent to a session
//! after its Close or after `close_session`, no second Close, shard messages only to other
//! existing shards). With N = 1 it is one router and the queues stay empty.
//!
//! `router_scenarios` drives it eagerly (every queue drained after each client action), so the
//! same scenario bodies run at 1 and at 3 shards; `shard_sim` drives it step by step from a
//! seeded scheduler to interleave deliveries.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;
use wampring::metrics::ShardSnapshot;
use wampring::router::{
    Action, CloseReason, Millis, Router, RouterConfig, RouterStats, SessionKey, ShardMsg,
    TransportInfo,
};
use wampring::wire::{self, Frame, Message, Serializer};

/// A client connection: the shard it lives on and its key there.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Conn {
    pub shard: usize,
    pub key: SessionKey,
    pub ser: Serializer,
}

pub struct Cluster {
    pub routers: Vec<Router>,
    /// `queues[from * n + to]`: the FIFO channel from shard `from` to shard `to`.
    queues: Vec<VecDeque<ShardMsg>>,
    inbox: HashMap<(usize, SessionKey), VecDeque<Bytes>>,
    /// Sessions the router asked to close (with why), and sessions whose transport is gone.
    closed_by_router: HashMap<(usize, SessionKey), CloseReason>,
    gone: HashSet<(usize, SessionKey)>,
    out: Vec<Action>,
    /// Shard-to-shard messages sent so far.
    pub shard_messages: u64,
    /// The clock every input is stamped with (tests move it).
    pub now: Millis,
    /// Answers to metrics requests: (the shard asked, request, every shard's snapshot).
    pub metrics: Vec<(usize, u64, Vec<ShardSnapshot>)>,
}

impl Cluster {
    pub fn new(shards: usize, seed: u64) -> Cluster {
        Cluster::with_config(shards, seed, RouterConfig::default())
    }

    /// Shard k's router is seeded with `seed ^ k`, so a run replays exactly.
    pub fn with_config(shards: usize, seed: u64, config: RouterConfig) -> Cluster {
        Cluster {
            routers: (0..shards)
                .map(|shard| Router::new_shard(config.clone(), seed ^ shard as u64, shard, shards))
                .collect(),
            queues: (0..shards * shards).map(|_| VecDeque::new()).collect(),
            inbox: HashMap::new(),
            closed_by_router: HashMap::new(),
            gone: HashSet::new(),
            out: Vec::new(),
            shard_messages: 0,
            now: 0,
            metrics: Vec::new(),
        }
    }

    pub fn shards(&self) -> usize {
        self.routers.len()
    }

    /// A frame for `session` of `shard` reaches that session's inbox.
    fn receive(&mut self, shard: usize, session: SessionKey, frame: &Frame) {
        let at = (shard, session);
        assert!(
            !self.gone.contains(&at),
            "Send to {at:?} after close_session"
        );
        assert!(
            !self.closed_by_router.contains_key(&at),
            "Send to {at:?} after its Close"
        );
        self.inbox
            .get_mut(&at)
            .unwrap_or_else(|| panic!("Send to unknown session {at:?}"))
            .push_back(frame.to_bytes());
    }

    /// Moves the actions shard `shard` just produced into mailboxes and channels, checking the
    /// runtime contract.
    fn absorb(&mut self, shard: usize) {
        let mut checks = Vec::new();
        for action in std::mem::take(&mut self.out) {
            match action {
                Action::Check {
                    session,
                    token,
                    check,
                } => checks.push((session, token, check.run())),
                Action::Send { session, frame } | Action::SendEvent { session, frame } => {
                    self.receive(shard, session, &frame)
                }
                Action::SendEach { sessions, frame } => {
                    for session in sessions {
                        self.receive(shard, session, &frame);
                    }
                }
                Action::Close { session, reason } => {
                    let at = (shard, session);
                    assert!(
                        !self.gone.contains(&at),
                        "Close of {at:?} after close_session"
                    );
                    assert!(
                        self.closed_by_router.insert(at, reason).is_none(),
                        "second Close of {at:?}"
                    );
                }
                Action::ToShard { to, msg } => {
                    assert!(
                        to != shard && to < self.shards(),
                        "message to shard {to} from {shard}"
                    );
                    let n = self.shards();
                    self.queues[shard * n + to].push_back(msg);
                    self.shard_messages += 1;
                }
                Action::Metrics { request, shards } => self.metrics.push((shard, request, shards)),
            }
        }
        // The runtime answers a check later; here, right after the actions of its input.
        for (session, token, right) in checks {
            self.routers[shard].handle_checked(session, token, right, self.now, &mut self.out);
            self.absorb(shard);
        }
    }

    pub fn open(&mut self, shard: usize, ser: Serializer) -> Conn {
        self.open_on_listener(shard, ser, 0)
    }

    /// A connection that came in on listener `listener` (its authentication methods).
    pub fn open_on_listener(&mut self, shard: usize, ser: Serializer, listener: usize) -> Conn {
        let key = self.routers[shard].open_session(
            TransportInfo {
                serializer: ser,
                kind: "sim",
                peer: format!("shard{shard}"),
                listener,
                secure: false,
            },
            self.now,
            &mut self.out,
        );
        self.absorb(shard);
        self.closed_by_router.remove(&(shard, key));
        self.gone.remove(&(shard, key));
        self.inbox.insert((shard, key), VecDeque::new());
        Conn { shard, key, ser }
    }

    /// Hands one frame from `conn`'s client to its shard.
    pub fn send_frame(&mut self, conn: Conn, frame: &[u8]) {
        let frame = Bytes::copy_from_slice(frame);
        self.routers[conn.shard].handle_message(conn.key, frame, self.now, &mut self.out);
        self.absorb(conn.shard);
    }

    pub fn send(&mut self, conn: Conn, msg: &Message<'_>) {
        let mut frame = Vec::new();
        wire::encode(msg, conn.ser, &mut frame).expect("test message encodes");
        self.send_frame(conn, &frame);
    }

    /// The transport of `conn` goes away.
    pub fn close(&mut self, conn: Conn) {
        self.routers[conn.shard].close_session(conn.key, self.now, &mut self.out);
        self.absorb(conn.shard);
        self.gone.insert((conn.shard, conn.key));
        self.inbox.remove(&(conn.shard, conn.key));
    }

    /// Asks shard `shard` for every shard's metrics and delivers everything: the snapshots,
    /// once the gather completed.
    pub fn metrics_from(&mut self, shard: usize, request: u64) -> Vec<ShardSnapshot> {
        self.routers[shard].handle_metrics_request(request, &mut self.out);
        self.absorb(shard);
        self.drain();
        let at = self
            .metrics
            .iter()
            .position(|(asked, answered, _)| (*asked, *answered) == (shard, request))
            .unwrap_or_else(|| panic!("metrics request {request} of shard {shard} not answered"));
        self.metrics.remove(at).2
    }

    /// Asks shard `shard` for every shard's metrics without delivering anything: the answer
    /// lands in `metrics` once the channels deliver the other shards' parts.
    pub fn ask_metrics(&mut self, shard: usize, request: u64) {
        self.routers[shard].handle_metrics_request(request, &mut self.out);
        self.absorb(shard);
    }

    /// Every shard's clock for call latencies moves to `micros`.
    pub fn set_clock_us(&mut self, micros: u64) {
        for router in &mut self.routers {
            router.set_clock_us(micros);
        }
    }

    /// Shard `shard` shuts down (GOODBYE to its sessions, Close for all).
    pub fn shutdown(&mut self, shard: usize) {
        self.routers[shard].shutdown(self.now, &mut self.out);
        self.absorb(shard);
    }

    /// Every shard is handed a reloaded configuration (as the runtime does after SIGHUP: each
    /// shard on its own, between other inputs).
    pub fn reconfigure(&mut self, config: &RouterConfig) {
        for shard in 0..self.shards() {
            self.reconfigure_shard(shard, config);
        }
    }

    /// Shard `shard` alone takes a reloaded configuration (the others may take it later).
    pub fn reconfigure_shard(&mut self, shard: usize, config: &RouterConfig) {
        self.routers[shard].handle_reconfigure(config.clone(), self.now, &mut self.out);
        self.absorb(shard);
    }

    /// Every shard's timers fire up to `now`.
    pub fn advance_to(&mut self, now: Millis) {
        self.now = now;
        for shard in 0..self.shards() {
            self.routers[shard].handle_timeout(now, &mut self.out);
            self.absorb(shard);
        }
    }

    /// The next frame sent to `conn`, if any.
    pub fn recv(&mut self, conn: Conn) -> Option<Bytes> {
        self.inbox.get_mut(&(conn.shard, conn.key))?.pop_front()
    }

    pub fn was_closed(&self, conn: Conn) -> bool {
        self.closed_by_router.contains_key(&(conn.shard, conn.key))
    }

    /// Why the router closed `conn`, if it did.
    pub fn close_reason(&self, conn: Conn) -> Option<CloseReason> {
        self.closed_by_router.get(&(conn.shard, conn.key)).copied()
    }

    /// Delivers the head of the channel `from -> to`; false when it is empty.
    pub fn deliver(&mut self, from: usize, to: usize) -> bool {
        let n = self.shards();
        let Some(msg) = self.queues[from * n + to].pop_front() else {
            return false;
        };
        self.routers[to].handle_shard_msg(from, msg, self.now, &mut self.out);
        self.absorb(to);
        true
    }

    pub fn busy_channels(&self) -> Vec<(usize, usize)> {
        let n = self.shards();
        (0..n * n)
            .filter(|&i| !self.queues[i].is_empty())
            .map(|i| (i / n, i % n))
            .collect()
    }

    pub fn undelivered(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    /// Delivers everything, channel by channel in round-robin order.
    pub fn drain(&mut self) {
        while !self.busy_channels().is_empty() {
            for (from, to) in self.busy_channels() {
                self.deliver(from, to);
            }
        }
    }

    /// The router's counters summed over shards. Table sizes are a replica's (every shard holds
    /// the same registrations and subscriptions once the channels are drained), counts of
    /// sessions and pending calls are summed (each lives on one shard).
    pub fn stats(&self) -> RouterStats {
        let mut total = RouterStats::default();
        for router in &self.routers {
            let s = router.stats();
            total.sessions_opened += s.sessions_opened;
            total.sessions_established += s.sessions_established;
            total.sessions_closed += s.sessions_closed;
            total.hellos_rejected += s.hellos_rejected;
            total.hello_timeouts += s.hello_timeouts;
            total.challenges_sent += s.challenges_sent;
            total.authentications_denied += s.authentications_denied;
            total.authentication_timeouts += s.authentication_timeouts;
            total.authorizations_denied += s.authorizations_denied;
            total.messages_in += s.messages_in;
            total.decode_errors += s.decode_errors;
            total.protocol_violations += s.protocol_violations;
            total.encode_errors += s.encode_errors;
            total.calls_routed += s.calls_routed;
            total.replies_routed += s.replies_routed;
            total.calls_canceled += s.calls_canceled;
            total.calls_timed_out += s.calls_timed_out;
            total.calls_rerouted += s.calls_rerouted;
            total.call_chunks_routed += s.call_chunks_routed;
            total.late_call_chunks_discarded += s.late_call_chunks_discarded;
            total.progress_results_routed += s.progress_results_routed;
            total.progress_results_dropped += s.progress_results_dropped;
            total.late_replies_discarded += s.late_replies_discarded;
            total.publishes += s.publishes;
            total.publishes_refused += s.publishes_refused;
            total.session_limit_refusals += s.session_limit_refusals;
            total.events_sent += s.events_sent;
            total.events_undeliverable += s.events_undeliverable;
            total.events_retained += s.events_retained;
            total.retained_declined += s.retained_declined;
            total.retained_delivered += s.retained_delivered;
            total.retained_withheld += s.retained_withheld;
            // Every shard holds the realm's retained events.
            total.retained_now = total.retained_now.max(s.retained_now);
            total.retained_bytes = total.retained_bytes.max(s.retained_bytes);
            total.history_recorded += s.history_recorded;
            total.history_evicted += s.history_evicted;
            total.history_declined += s.history_declined;
            total.history_skipped += s.history_skipped;
            total.history_queries += s.history_queries;
            // Each history lives on its owner shard alone.
            total.history_now += s.history_now;
            total.history_bytes += s.history_bytes;
            total.log_lines_suppressed += s.log_lines_suppressed;
            total.sessions += s.sessions;
            total.realms += s.realms;
            total.realms_removed += s.realms_removed;
            total.registrations = total.registrations.max(s.registrations);
            total.subscriptions = total.subscriptions.max(s.subscriptions);
            total.pending_calls += s.pending_calls;
            total.pending_entries += s.pending_entries;
            total.inflight_registry_ops += s.inflight_registry_ops;
            total.timers += s.timers;
            total.shard_messages_in += s.shard_messages_in;
            total.shard_messages_ignored += s.shard_messages_ignored;
        }
        total
    }

    /// Every shard's tables are empty and nothing went wrong between shards.
    pub fn assert_tables_empty(&self) {
        for (shard, router) in self.routers.iter().enumerate() {
            let stats = router.stats();
            assert_eq!(
                (
                    stats.sessions,
                    stats.registrations,
                    stats.subscriptions,
                    stats.pending_calls,
                    stats.pending_entries,
                    stats.inflight_registry_ops
                ),
                (0, 0, 0, 0, 0, 0),
                "shard {shard} tables not empty: {stats:?}"
            );
            assert_eq!(stats.protocol_violations, 0, "shard {shard}: {stats:?}");
            assert_eq!(stats.shard_messages_ignored, 0, "shard {shard}: {stats:?}");
        }
    }
}
