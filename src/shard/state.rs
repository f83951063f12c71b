//! The state one shard's tasks share, and the performing of router actions. A [`Shard`] owns
//! the router of this shard, the table SessionKey -> connection, every live connection, its
//! outbound links to the other shards, the metrics and the monotonic clock. Connection tasks
//! call in with what their transport reported (`open_session`, `handle_message`,
//! `end_session`), drain tasks with what another shard sent (`handle_shard_msg`), the main loop
//! with a reloaded configuration (`reconfigure`); the router's
//! answers are [`Action`]s, and [`Shard::perform`] carries them out: a `Send` appends the frame
//! to the target connection's bounded output and wakes that connection's task (which writes it
//! on its next turn), a `Close` starts the target's orderly close, a `Peer` goes into the link
//! to that shard (never blocking). No borrow is held across an await: everything here is
//! synchronous and runs inside one task's poll.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel::LocalSender;
use glommio::timer::Timer;

use slab::Slab;
use tracing::{debug, info, warn};

use crate::config::{Config, LimitsConfig, ListenerConfig, SlowConsumerAction, SlowConsumerPolicy};
use crate::metrics::{ShardMetrics, ShardSnapshot};
use crate::net::websocket::close_code;
use crate::net::{SendError, ServerConn};
use crate::router::uri;
use crate::router::LogLimit;
use crate::router::{
    Action, CloseReason, Millis, Router, SecretCheck, SessionKey, ShardId, ShardMsg, TransportInfo,
};
use crate::serializer::Serializer;
use crate::wire::{self, Frame};

use super::longpoll::LongPollTransport;
use super::mesh::{Backpressure, MeshMsg, ShardLink};
use super::refusal::Refusals;

/// Log target of the per-session open/close lines (debug): `RUST_LOG=info,wampring::session=debug`
/// shows them.
pub(crate) const SESSION_LOG: &str = "wampring::session";

/// Largest action list kept for reuse between inputs.
const SPARE_ACTIONS_KEEP: usize = 4096;

/// How often a shard may hand freed memory back to the OS (see `Shard::return_memory`).
const MEMORY_RETURN_INTERVAL: Duration = Duration::from_secs(1);

extern "C" {
    /// mimalloc (linked through the `mimalloc` crate, the binary's global allocator): frees the
    /// calling thread's unused pages and, with `force`, returns them to the OS at once.
    fn mi_collect(force: bool);
}

/// Size of the shard-wide buffer sockets are read into before the bytes are handed to their
/// transport. One per shard, not per connection: reads are synchronous within a poll.
pub(crate) const READ_SCRATCH_BYTES: usize = 64 * 1024;

/// The part of one connection that other tasks touch: its transport state machine (to append
/// frames), its session, and the waker of its task.
pub(crate) struct Connection {
    pub(crate) transport: RefCell<ServerConn>,
    /// The router session riding on this connection, from `Opened` until the session ends.
    session: Cell<Option<SessionKey>>,
    /// The session was welcomed (and its "opened on shard" line logged).
    welcomed: Cell<bool>,
    /// Who the welcomed session is, kept for its "closed" line (the router forgets the
    /// identity once the session starts closing). Only while session lines are logged.
    who: RefCell<Option<Box<SessionWho>>>,
    waker: RefCell<Option<Waker>>,
    /// True while this connection's own task is being polled: it writes its output before it
    /// returns, so waking it is unnecessary.
    pub(crate) polling: Cell<bool>,
    /// An orderly close was started (router `Close`, or shard shutdown).
    pub(crate) close_started: Cell<bool>,
    /// Shutdown: the session was told GOODBYE `wamp.close.system_shutdown`, and the client
    /// may close the transport itself (what WAMP clients do after GOODBYE) until the shard's
    /// peer-close window ends; only then does the router start the close. A client that closes
    /// first gets its WebSocket close code echoed (Autobahn|JS calls only 1000 clean), and
    /// nothing it sends after our GOODBYE meets a closed socket.
    pub(crate) awaiting_peer_close: Cell<bool>,
    /// Drop the socket now without flushing (slow consumer: its queue is what overflowed).
    pub(crate) aborted: Cell<bool>,
    /// Peer address, for logs.
    pub(crate) peer: String,
    /// Its registration with the shard's backpressure (see `Backpressure::wait`).
    pub(crate) backpressure_wait: Cell<u64>,
    /// Its listener's slow-consumer policy.
    pub(crate) slow_consumer: SlowConsumerPolicy,
    /// The session's serializer, once the transport handshake named it (counting by type).
    serializer: Cell<Option<Serializer>>,
    /// Its task saw the transport end (EOF, error, close): an HTTP answer queued now would not
    /// be read (long-poll does not hand a message to it).
    pub(crate) gone: Cell<bool>,
}

impl Connection {
    pub(crate) fn new(
        transport: ServerConn,
        peer: String,
        slow_consumer: SlowConsumerPolicy,
    ) -> Connection {
        Connection {
            transport: RefCell::new(transport),
            session: Cell::new(None),
            welcomed: Cell::new(false),
            who: RefCell::new(None),
            waker: RefCell::new(None),
            polling: Cell::new(false),
            close_started: Cell::new(false),
            awaiting_peer_close: Cell::new(false),
            aborted: Cell::new(false),
            peer,
            backpressure_wait: Cell::new(u64::MAX),
            slow_consumer,
            serializer: Cell::new(None),
            gone: Cell::new(false),
        }
    }

    /// True while a router session rides on this connection.
    pub(crate) fn has_session(&self) -> bool {
        self.session.get().is_some()
    }

    /// Remembers the waker of this connection's task (cloned only when it changed).
    pub(crate) fn register_waker(&self, waker: &Waker) {
        let mut slot = self.waker.borrow_mut();
        match slot.as_ref() {
            Some(current) if current.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Makes this connection's task run (and so write its output) on a later turn.
    pub(crate) fn wake(&self) {
        if self.polling.get() {
            return;
        }
        if let Some(waker) = self.waker.borrow().as_ref() {
            waker.wake_by_ref();
        }
    }

    /// Starts the transport's orderly close (WebSocket close frame; RawSocket ends at once).
    pub(crate) fn start_close(&self, ws_code: u16, reason: &str) {
        if !self.close_started.replace(true) {
            self.transport.borrow_mut().close(ws_code, reason);
        }
        self.wake();
    }
}

/// A welcomed session's identity, for the per-session log lines.
struct SessionWho {
    id: u64,
    realm: Box<str>,
    authid: Box<str>,
    authrole: Box<str>,
}

/// Everything one shard's tasks share. Lives in an `Rc`; single-threaded.
pub(crate) struct Shard {
    pub(crate) id: usize,
    router: RefCell<Router>,
    /// SessionKey.0 -> the connection carrying that session. Router keys are dense slab
    /// indexes, so a vector is the whole map.
    sessions: RefCell<Vec<Option<Rc<Connection>>>>,
    /// Every live connection, handshaking or open, for shutdown and the connection limit.
    connections: RefCell<Slab<Rc<Connection>>>,
    pub(crate) metrics: RefCell<ShardMetrics>,
    epoch: Instant,
    /// Replaced whole by a reload (`Shard::reconfigure`); read per new connection.
    pub(crate) limits: RefCell<LimitsConfig>,
    pub(crate) read_scratch: RefCell<Box<[u8]>>,
    /// A cleared action vector kept between messages, so routing allocates none.
    spare_actions: RefCell<Vec<Action>>,
    /// Index = destination shard; `None` at this shard's own index.
    links: Vec<Option<Rc<ShardLink<MeshMsg>>>>,
    stopping: Cell<bool>,
    /// When the stop began (`now()`), to end the peer-close window.
    stop_began: Cell<Millis>,
    /// The shard's main loop has returned; leftover tasks are being dropped.
    terminated: Cell<bool>,
    /// The router deadline the timer task sleeps towards (`None`: it waits for one).
    timer_armed: Cell<Option<Millis>>,
    /// Set when the router has an earlier deadline than `timer_armed`; wakes the timer task.
    timer_kicked: Cell<bool>,
    timer_waker: RefCell<Option<Waker>>,
    /// Rate limits of the lines about sessions that do not keep up.
    consumer_logs: RefCell<ConsumerLogLimits>,
    /// Pauses reading from this shard's connections while a queue to another shard is full.
    pub(crate) backpressure: Rc<Backpressure>,
    /// Sessions ended so far (tells `return_memory` whether there may be memory to return).
    sessions_ended: Cell<u64>,
    /// Refusals in flight, the spare descriptor, rate-limited accept/refusal logs.
    pub(crate) refusals: Refusals,
    /// Secret checks the router asked for (`Action::Check`), not yet handed to a blocking
    /// thread; one per session at most (a session awaits one answer), so bounded by sessions.
    checks: RefCell<Vec<(SessionKey, u64, SecretCheck)>>,
    checks_waker: RefCell<Option<Waker>>,
    /// Metrics gathers asked for by the admin listener, by request, awaiting their answer.
    metrics_waiters: RefCell<Vec<(u64, LocalSender<Vec<ShardSnapshot>>)>>,
    next_metrics_request: Cell<u64>,
    /// The HTTP long-poll transports this shard owns, by transport id (`longpoll.rs`).
    pub(crate) longpolls: RefCell<HashMap<String, Rc<LongPollTransport>>>,
    /// The listeners' configurations (long-poll requests need their transport limits).
    pub(crate) listener_configs: RefCell<Rc<[ListenerConfig]>>,
}

/// One log limit per cause of the delivery problems a client causes by not reading.
#[derive(Default)]
struct ConsumerLogLimits {
    disconnected: LogLimit,
    events_dropped: LogLimit,
    oversize: LogLimit,
}

impl Shard {
    pub(crate) fn new(
        id: usize,
        router: Router,
        limits: LimitsConfig,
        epoch: Instant,
        links: Vec<Option<Rc<ShardLink<MeshMsg>>>>,
        backpressure: Rc<Backpressure>,
    ) -> Shard {
        Shard {
            id,
            router: RefCell::new(router),
            sessions: RefCell::new(Vec::new()),
            connections: RefCell::new(Slab::new()),
            metrics: RefCell::new(ShardMetrics::default()),
            epoch,
            limits: RefCell::new(limits),
            read_scratch: RefCell::new(vec![0u8; READ_SCRATCH_BYTES].into_boxed_slice()),
            spare_actions: RefCell::new(Vec::new()),
            links,
            stopping: Cell::new(false),
            stop_began: Cell::new(0),
            terminated: Cell::new(false),
            timer_armed: Cell::new(None),
            timer_kicked: Cell::new(false),
            timer_waker: RefCell::new(None),
            consumer_logs: RefCell::new(ConsumerLogLimits::default()),
            backpressure,
            sessions_ended: Cell::new(0),
            refusals: Refusals::new(),
            checks: RefCell::new(Vec::new()),
            checks_waker: RefCell::new(None),
            metrics_waiters: RefCell::new(Vec::new()),
            next_metrics_request: Cell::new(1),
            longpolls: RefCell::new(HashMap::new()),
            listener_configs: RefCell::new(Rc::from(Vec::new())),
        }
    }

    /// Milliseconds since the process started, on the monotonic clock.
    pub(crate) fn now(&self) -> Millis {
        self.epoch.elapsed().as_millis() as Millis
    }

    /// `now`, and the same instant in microseconds told to the router (its call latencies),
    /// from one clock read.
    fn now_for_router(&self, router: &mut Router) -> Millis {
        let elapsed = self.epoch.elapsed();
        router.set_clock_us(elapsed.as_micros() as u64);
        elapsed.as_millis() as Millis
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Shutdown: the first half of `limits.shutdown_grace_ms` is over, in which clients told
    /// GOODBYE may close their transports themselves; the router closes the rest now, and the
    /// second half is for those close handshakes.
    pub(crate) fn peer_close_window_over(&self) -> bool {
        self.stopping.get()
            && self.now() >= self.stop_began.get() + self.limits.borrow().shutdown_grace_ms / 2
    }

    pub(crate) fn is_terminated(&self) -> bool {
        self.terminated.get()
    }

    /// Called when the shard's main loop is done: connections still alive are dropped without
    /// driving the router.
    pub(crate) fn terminate(&self) {
        self.terminated.set(true);
    }

    pub(crate) fn connection_count(&self) -> usize {
        self.connections.borrow().len()
    }

    /// True when a new connection must be refused (connection limit).
    pub(crate) fn at_connection_limit(&self) -> bool {
        self.connection_count() >= self.limits.borrow().max_connections_per_shard
    }

    /// Adds a connection to the live set; returns its slot.
    pub(crate) fn register_connection(&self, conn: Rc<Connection>) -> usize {
        self.connections.borrow_mut().insert(conn)
    }

    pub(crate) fn unregister_connection(&self, slot: usize) {
        self.connections.borrow_mut().try_remove(slot);
    }

    /// The transport handshake completed: open a router session for the connection.
    pub(crate) fn open_session(&self, conn: &Rc<Connection>, transport: TransportInfo) {
        let mut actions = self.spare_actions.take();
        conn.serializer.set(Some(transport.serializer));
        let session = self
            .router
            .borrow_mut()
            .open_session(transport, self.now(), &mut actions);
        {
            let mut sessions = self.sessions.borrow_mut();
            if sessions.len() <= session.0 {
                sessions.resize(session.0 + 1, None);
            }
            sessions[session.0] = Some(conn.clone());
        }
        conn.session.set(Some(session));
        self.metrics.borrow_mut().sessions_opened += 1;
        self.perform(&mut actions);
        self.give_back_actions(actions);
    }

    /// One WAMP message from the connection's session.
    pub(crate) fn handle_message(&self, conn: &Connection, frame: Bytes) {
        let Some(session) = conn.session.get() else {
            // The session ended (router Close) while the transport is still closing.
            return;
        };
        {
            let mut metrics = self.metrics.borrow_mut();
            metrics.messages_in += 1;
            let code = conn
                .serializer
                .get()
                .and_then(|ser| wire::peek_code(ser, &frame));
            metrics.traffic.count_in(code, frame.len());
        }
        let mut actions = self.spare_actions.take();
        let mut router = self.router.borrow_mut();
        let now = self.now_for_router(&mut router);
        router.handle_message(session, frame, now, &mut actions);
        drop(router);
        if !conn.welcomed.get() {
            self.log_if_welcomed(conn, session);
        }
        self.perform(&mut actions);
        self.give_back_actions(actions);
    }

    /// Logs "session <id> opened on shard <k>" (debug, target `wampring::session`: one line per
    /// session would flood an info log) once the router has given the session its WAMP id,
    /// with its realm, authid, authrole and peer: operators see who is where, and the
    /// multi-shard tests check placement by it. Written before the WELCOME leaves (the
    /// connection writes after this returns).
    fn log_if_welcomed(&self, conn: &Connection, session: SessionKey) {
        if let Some((id, realm, authid, authrole)) = self.router.borrow().session_identity(session)
        {
            conn.welcomed.set(true);
            if !tracing::enabled!(target: SESSION_LOG, tracing::Level::DEBUG) {
                return;
            }
            *conn.who.borrow_mut() = Some(Box::new(SessionWho {
                id,
                realm: realm.into(),
                authid: authid.into(),
                authrole: authrole.into(),
            }));
            debug!(
                target: SESSION_LOG,
                session_id = id,
                realm,
                authid,
                authrole,
                peer = %conn.peer,
                shard = self.id,
                "session {id} opened on shard {}",
                self.id
            );
        }
    }

    /// One message another shard's router sent to this one (from its drain task).
    pub(crate) fn handle_shard_msg(&self, from: ShardId, msg: ShardMsg) {
        self.metrics.borrow_mut().shard_messages_received += 1;
        let mut actions = self.spare_actions.take();
        let mut router = self.router.borrow_mut();
        let now = self.now_for_router(&mut router);
        router.handle_shard_msg(from, msg, now, &mut actions);
        drop(router);
        self.perform(&mut actions);
        self.give_back_actions(actions);
    }

    /// A reloaded configuration (`serve` checked it and kept what needs a restart): the router
    /// applies its part, and the limits checked per new connection are replaced. Sessions and
    /// connections stay as they are.
    pub(crate) fn reconfigure(&self, config: &Config) {
        self.limits.replace(config.limits.clone());
        let mut actions = self.spare_actions.take();
        self.router.borrow_mut().handle_reconfigure(
            config.router.clone(),
            self.now(),
            &mut actions,
        );
        self.perform(&mut actions);
        self.give_back_actions(actions);
    }

    /// How many shards the process runs (this one included).
    pub(crate) fn shard_count(&self) -> usize {
        self.links.len().max(1)
    }

    /// Queues `msg` for shard `to` (never blocks; see `mesh.rs`).
    pub(crate) fn send_to_shard(&self, to: ShardId, msg: MeshMsg) {
        match self.links.get(to).and_then(Option::as_ref) {
            Some(link) => link.send(msg),
            None => {
                // A router defect (itself or a shard that does not exist): log, do not panic.
                tracing::error!(
                    shard = self.id,
                    to,
                    "message for a shard that does not exist; dropped"
                );
                self.metrics.borrow_mut().undeliverable += 1;
            }
        }
    }

    /// The connection's transport is gone (EOF, error, close handshake done, timeout): end its
    /// session, if it still has one.
    pub(crate) fn end_session(&self, conn: &Connection) {
        let Some(session) = conn.session.get() else {
            return;
        };
        self.detach(session, "transport ended");
        let mut actions = self.spare_actions.take();
        self.router
            .borrow_mut()
            .close_session(session, self.now(), &mut actions);
        self.perform(&mut actions);
        self.give_back_actions(actions);
    }

    /// Forgets which connection carries `session`. Every detach is followed by exactly one
    /// `router.close_session` (the router's lifecycle contract), done by the caller. Every
    /// session ends here, so its "closed" line (debug, `wampring::session`) is written here,
    /// with `why` it ended and who it was (kept since its WELCOME: by now the router may have
    /// forgotten the identity of a session that is closing).
    fn detach(&self, session: SessionKey, why: &'static str) -> Option<Rc<Connection>> {
        let conn = self.sessions.borrow_mut().get_mut(session.0)?.take()?;
        if let Some(who) = conn.who.borrow_mut().take() {
            debug!(
                target: SESSION_LOG,
                session_id = who.id,
                realm = &*who.realm,
                authid = &*who.authid,
                authrole = &*who.authrole,
                peer = %conn.peer,
                shard = self.id,
                why,
                "session {} closed on shard {}: {why}",
                who.id,
                self.id
            );
        }
        conn.session.set(None);
        self.sessions_ended.set(self.sessions_ended.get() + 1);
        Some(conn)
    }

    /// Keeps the (empty) action list for the next input, unless one input made it huge (a
    /// session leaving with thousands of table entries): that memory goes back instead.
    fn give_back_actions(&self, actions: Vec<Action>) {
        if actions.capacity() <= SPARE_ACTIONS_KEEP {
            self.spare_actions.replace(actions);
        }
    }

    /// Carries out router actions, including the ones the resulting session closes produce.
    /// `actions` is empty afterwards.
    pub(crate) fn perform(&self, actions: &mut Vec<Action>) {
        let mut ended: Vec<SessionKey> = Vec::new();
        loop {
            for action in actions.drain(..) {
                match action {
                    Action::Send { session, frame } => {
                        self.deliver(session, &frame, false, &mut ended)
                    }
                    Action::SendEvent { session, frame } => {
                        self.deliver(session, &frame, true, &mut ended)
                    }
                    Action::SendEach { sessions, frame } => {
                        for session in sessions {
                            self.deliver(session, &frame, true, &mut ended);
                        }
                    }
                    Action::Close { session, reason } => {
                        let why = if self.stopping.get() {
                            "router shutdown"
                        } else {
                            "closed by the router"
                        };
                        if let Some(conn) = self.detach(session, why) {
                            if self.stopping.get() && conn.welcomed.get() {
                                // Told GOODBYE system_shutdown: the client closes first if it
                                // can (see `awaiting_peer_close`); the connection task starts
                                // our close once the window is over.
                                self.metrics.borrow_mut().protocol_closes += 1;
                                conn.awaiting_peer_close.set(true);
                                conn.wake();
                                ended.push(session);
                                continue;
                            }
                            let (code, text) = match reason {
                                _ if self.stopping.get() => (close_code::GOING_AWAY, ""),
                                CloseReason::Done => (close_code::NORMAL, ""),
                                CloseReason::HelloTimeout => {
                                    self.metrics.borrow_mut().hello_timeouts += 1;
                                    (close_code::POLICY_VIOLATION, "no HELLO in time")
                                }
                            };
                            self.metrics.borrow_mut().protocol_closes += 1;
                            conn.start_close(code, text);
                            ended.push(session);
                        }
                    }
                    Action::ToShard { to, msg } => self.send_to_shard(to, MeshMsg::Router(msg)),
                    Action::Check {
                        session,
                        token,
                        check,
                    } => {
                        self.checks.borrow_mut().push((session, token, check));
                        if let Some(waker) = self.checks_waker.borrow_mut().take() {
                            waker.wake();
                        }
                    }
                    Action::Metrics { request, shards } => self.metrics_answered(request, shards),
                }
            }
            if ended.is_empty() {
                self.kick_timer_if_earlier();
                return;
            }
            let now = self.now();
            let mut router = self.router.borrow_mut();
            for session in ended.drain(..) {
                router.close_session(session, now, actions);
            }
        }
    }

    /// Wakes the timer task when the router now has a deadline earlier than the one the task
    /// sleeps towards (checked after every router input; a heap peek).
    fn kick_timer_if_earlier(&self) {
        let next = self.router.borrow_mut().poll_timeout();
        let earlier = match (next, self.timer_armed.get()) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier && !self.timer_kicked.replace(true) {
            if let Some(waker) = self.timer_waker.borrow().as_ref() {
                waker.wake_by_ref();
            }
        }
    }

    /// The router's timers that are due fire.
    fn handle_timeout(&self) {
        let mut actions = self.spare_actions.take();
        let mut router = self.router.borrow_mut();
        let now = self.now_for_router(&mut router);
        router.handle_timeout(now, &mut actions);
        drop(router);
        self.perform(&mut actions);
        self.give_back_actions(actions);
    }

    /// Resolves when `kick_timer_if_earlier` found an earlier deadline.
    async fn timer_kicked(&self) {
        poll_fn(|cx| {
            if self.timer_kicked.replace(false) {
                return Poll::Ready(());
            }
            let mut slot = self.timer_waker.borrow_mut();
            match slot.as_ref() {
                Some(current) if current.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await
    }

    /// Runs the router's secret checks (argon2id: tens of milliseconds each) on glommio's
    /// blocking threads, so the shard keeps routing meanwhile, and hands each outcome back to
    /// the router. Ends when the shard terminates.
    pub(crate) async fn run_checks(self: Rc<Self>) {
        while !self.is_terminated() {
            let jobs = poll_fn(|cx| {
                let jobs = std::mem::take(&mut *self.checks.borrow_mut());
                if !jobs.is_empty() || self.is_terminated() {
                    return Poll::Ready(jobs);
                }
                *self.checks_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            for (session, token, check) in jobs {
                let shard = self.clone();
                glommio::spawn_local(async move {
                    let right = glommio::executor()
                        .spawn_blocking(move || check.run())
                        .await;
                    if shard.is_terminated() {
                        return;
                    }
                    let mut actions = shard.spare_actions.take();
                    let now = shard.now();
                    shard.router.borrow_mut().handle_checked(
                        session,
                        token,
                        right,
                        now,
                        &mut actions,
                    );
                    shard.perform(&mut actions);
                    shard.give_back_actions(actions);
                })
                .detach();
            }
        }
    }

    /// Hands memory freed by departed sessions back to the OS: mimalloc keeps a thread's free
    /// pages for reuse until told otherwise, so a shard that went quiet after a session with
    /// large tables left (here, or on another shard whose table updates this one applied)
    /// would hold that memory for good. Once per interval while sessions end or other shards
    /// send updates, and once more after that: the first collection hands the emptied pages
    /// to the arena, the next one purges them.
    pub(crate) async fn return_memory(self: Rc<Self>) {
        let activity = |shard: &Shard| {
            (
                shard.sessions_ended.get(),
                shard.metrics.borrow().shard_messages_received,
            )
        };
        let mut seen = activity(&self);
        let mut collections_due = 0;
        while !self.is_terminated() {
            glommio::timer::sleep(MEMORY_RETURN_INTERVAL).await;
            let now = activity(&self);
            if now != seen {
                seen = now;
                collections_due = 2;
            }
            if collections_due > 0 {
                collections_due -= 1;
                // SAFETY: mi_collect takes no pointers; it only walks this thread's own heap.
                unsafe {
                    mi_collect(true);
                    mi_collect(true);
                }
            }
        }
    }

    /// The shard's one timer (DESIGN.md "Time is an input"): sleeps until the router's next
    /// deadline, or until an input gave the router an earlier one, then lets due timers fire.
    /// Ends when the shard terminates.
    pub(crate) async fn run_timer(self: Rc<Self>) {
        while !self.is_terminated() {
            let next = self.router.borrow_mut().poll_timeout();
            self.timer_armed.set(next);
            let now = self.now();
            match next {
                Some(at) if at <= now => {}
                Some(at) => {
                    let sleep = async {
                        Timer::new(Duration::from_millis(at - now)).await;
                    };
                    futures_lite::future::or(sleep, self.timer_kicked()).await;
                }
                None => self.timer_kicked().await,
            }
            if !self.is_terminated() {
                self.handle_timeout();
            }
        }
    }

    /// Appends one frame to a session's output, by its listener's slow-consumer policy: an
    /// EVENT (`droppable`) is dropped past the soft mark under `drop_events`; past the hard
    /// mark (a full output) the session is disconnected rather than the queue growing.
    fn deliver(
        &self,
        session: SessionKey,
        frame: &Frame,
        droppable: bool,
        ended: &mut Vec<SessionKey>,
    ) {
        let conn = match self.sessions.borrow().get(session.0) {
            Some(Some(conn)) => conn.clone(),
            _ => {
                self.metrics.borrow_mut().undeliverable += 1;
                return;
            }
        };
        let result = {
            let mut transport = conn.transport.borrow_mut();
            if droppable
                && conn.slow_consumer.action == SlowConsumerAction::DropEvents
                && transport.outbound_len() >= conn.slow_consumer.soft_bytes
            {
                drop(transport);
                self.event_dropped(&conn, session);
                return;
            }
            transport.send_message_parts(&frame.parts())
        };
        match result {
            Ok(()) => {
                self.count_out(&conn, frame);
                conn.wake();
            }
            Err(SendError::Overflow) => self.disconnect_slow_consumer(&conn, session, ended),
            Err(SendError::TooLarge) => {
                self.metrics.borrow_mut().oversize_dropped += 1;
                if let Some(suppressed) = self.consumer_logs.borrow_mut().oversize.allow(self.now())
                {
                    warn!(
                        shard = self.id,
                        peer = %conn.peer,
                        suppressed,
                        "dropped a message of {} bytes for session {} on shard {}: larger than the peer accepts ({suppressed} more since the last such line)",
                        frame.len(),
                        self.wamp_id(session),
                        self.id,
                    );
                }
            }
            Err(SendError::NotOpen) => self.metrics.borrow_mut().undeliverable += 1,
        }
    }

    /// Counts one message queued for `conn`: by type, and an ERROR for a CALL by its URI.
    #[inline]
    fn count_out(&self, conn: &Connection, frame: &Frame) {
        let mut metrics = self.metrics.borrow_mut();
        metrics.messages_out += 1;
        let Some(ser) = conn.serializer.get() else {
            return;
        };
        let head = frame.parts()[0];
        let code = wire::peek_code(ser, head);
        metrics.traffic.count_out(code, frame.len());
        if code == Some(wire::code::ERROR as u8) {
            if let Some((wire::code::CALL, uri)) = wire::error_uri(ser, head) {
                metrics.call_errors.count(uri);
            }
        }
    }

    /// Asks every shard for its metrics snapshot (through the router's gather); `None` when
    /// the answer did not come within `wait` (a shard that does not answer is not healthy).
    pub(crate) async fn gather_metrics(&self, wait: Duration) -> Option<Vec<ShardSnapshot>> {
        let request = self.next_metrics_request.get();
        self.next_metrics_request.set(request + 1);
        let (sender, receiver) = glommio::channels::local_channel::new_bounded(1);
        self.metrics_waiters.borrow_mut().push((request, sender));
        let mut actions = self.spare_actions.take();
        self.router
            .borrow_mut()
            .handle_metrics_request(request, &mut actions);
        self.perform(&mut actions);
        self.give_back_actions(actions);
        let answer = futures_lite::future::or(receiver.recv(), async {
            Timer::new(wait).await;
            None
        })
        .await;
        // Gone if answered; a late answer then finds no waiter and is dropped.
        self.metrics_waiters
            .borrow_mut()
            .retain(|(waiting, _)| *waiting != request);
        answer
    }

    /// Lets the router's metrics snapshots read this shard's counters.
    pub(crate) fn lend_counters_to_router(self: &Rc<Self>) {
        // Weak: the router belongs to the shard; it must not keep it alive.
        let weak = Rc::downgrade(self);
        self.router
            .borrow_mut()
            .set_runtime_counters(Box::new(move || {
                weak.upgrade()
                    .map(|shard| shard.metrics_snapshot())
                    .unwrap_or_default()
            }));
    }

    fn metrics_answered(&self, request: u64, shards: Vec<ShardSnapshot>) {
        let waiters = self.metrics_waiters.borrow();
        if let Some((_, sender)) = waiters.iter().find(|(waiting, _)| *waiting == request) {
            let _ = sender.try_send(shards);
        }
    }

    /// The WAMP session id of `session` for logs (0 before WELCOME).
    fn wamp_id(&self, session: SessionKey) -> u64 {
        self.router.borrow().wamp_session_id(session).unwrap_or(0)
    }

    #[cold]
    fn event_dropped(&self, conn: &Connection, session: SessionKey) {
        self.metrics.borrow_mut().slow_consumer_events_dropped += 1;
        if let Some(suppressed) = self
            .consumer_logs
            .borrow_mut()
            .events_dropped
            .allow(self.now())
        {
            warn!(
                shard = self.id,
                peer = %conn.peer,
                suppressed,
                "dropping EVENTs for session {} on shard {}: slow consumer, over {} bytes queued ({suppressed} more dropped since the last such line)",
                self.wamp_id(session),
                self.id,
                conn.slow_consumer.soft_bytes,
            );
        }
    }

    /// Ends a session whose output reached the hard mark. Its ABORT and close frame go behind
    /// what it has not read yet, best effort: the connection lingers (bounded) for the peer to
    /// take them, and is dropped if it does not.
    #[cold]
    fn disconnect_slow_consumer(
        &self,
        conn: &Rc<Connection>,
        session: SessionKey,
        ended: &mut Vec<SessionKey>,
    ) {
        self.metrics.borrow_mut().slow_consumer_disconnects += 1;
        if let Some(suppressed) = self
            .consumer_logs
            .borrow_mut()
            .disconnected
            .allow(self.now())
        {
            warn!(
                shard = self.id,
                peer = %conn.peer,
                suppressed,
                "disconnecting session {} on shard {}: slow consumer: outbound queue over {} bytes ({suppressed} more since the last such line)",
                self.wamp_id(session),
                self.id,
                conn.slow_consumer.hard_bytes,
            );
        }
        self.detach(session, "slow consumer");
        {
            let mut transport = conn.transport.borrow_mut();
            if let Some(serializer) = transport.serializer() {
                let abort = Router::encode_abort(
                    uri::SLOW_CONSUMER,
                    "slow consumer: too much queued that this session did not read",
                    serializer,
                );
                // Refused only when not even the slack is left; the close frame must do then.
                let _ = transport.send_final_message(&abort);
            }
        }
        conn.start_close(close_code::POLICY_VIOLATION, "slow consumer");
        ended.push(session);
    }

    /// Shutdown: GOODBYE `wamp.close.system_shutdown` to every session (the router), then an
    /// orderly close of every connection: welcomed sessions' clients first get the chance to
    /// close themselves (`awaiting_peer_close`); connections still in their handshake, or
    /// whose session was never welcomed, are closed now (WebSocket 1001).
    pub(crate) fn begin_shutdown(&self) {
        if self.stopping.replace(true) {
            return;
        }
        self.stop_began.set(self.now());
        let mut actions = self.spare_actions.take();
        self.router.borrow_mut().shutdown(self.now(), &mut actions);
        self.perform(&mut actions);
        self.give_back_actions(actions);
        let connections: Vec<Rc<Connection>> = self
            .connections
            .borrow()
            .iter()
            .map(|(_, conn)| conn.clone())
            .collect();
        for conn in connections {
            // An HTTP long-poll request still waiting for its answer (a held `receive`) is
            // left open: its transport answers it with the GOODBYE, and its connection task
            // closes it once answered (`ConnectionTask::turn`).
            if conn.session.get().is_none()
                && !conn.awaiting_peer_close.get()
                && !conn.transport.borrow().awaits_http_answer()
            {
                conn.start_close(close_code::GOING_AWAY, "router shutting down");
            }
        }
        debug!(shard = self.id, "shutdown started");
    }

    /// Wakes every connection task (during shutdown, so each re-checks whether its peer has
    /// acknowledged the last bytes).
    pub(crate) fn wake_all(&self) {
        for (_, conn) in self.connections.borrow().iter() {
            conn.wake();
        }
    }

    /// The counters, with `connections_open` and the links' counters filled in.
    pub(crate) fn metrics_snapshot(&self) -> ShardMetrics {
        let mut metrics = *self.metrics.borrow();
        metrics.connections_open = self.connection_count() as u64;
        metrics.shard_backpressure_pauses = self.backpressure.pauses();
        for link in self.links.iter().flatten() {
            let stats = link.stats();
            metrics.shard_backlog += link.backlog_len() as u64;
            metrics.shard_messages_sent += stats.sent;
            metrics.shard_channel_full += stats.channel_full;
            metrics.shard_messages_to_stopped_shards += stats.dropped;
            metrics.shard_overflow_high_water = metrics
                .shard_overflow_high_water
                .max(stats.overflow_high_water);
        }
        metrics
    }

    /// Logs the router's own counters (at shutdown), as `key=value` pairs like the shard's.
    pub(crate) fn log_router_stats(&self) {
        let stats = format!("{:?}", self.router.borrow().stats());
        info!(
            shard = self.id,
            "shard {} router counters: {}",
            self.id,
            debug_struct_as_key_values(&stats)
        );
    }
}

/// `Name { a: 1, b: 2 }` (a derived `Debug` of a struct of numbers, the router's counters) as
/// `a=1 b=2`. The router's stats type is the router's to change; reading its `Debug` keeps this
/// line complete whatever counters it grows.
fn debug_struct_as_key_values(debug: &str) -> String {
    let inner = match (debug.find('{'), debug.rfind('}')) {
        (Some(open), Some(close)) if open < close => debug[open + 1..close].trim(),
        _ => return debug.to_string(),
    };
    inner
        .split(", ")
        .map(|pair| pair.replacen(": ", "=", 1))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::debug_struct_as_key_values;

    #[test]
    fn router_counters_are_logged_as_key_values() {
        let stats = crate::router::RouterStats {
            sessions_opened: 3,
            ..Default::default()
        };
        let line = debug_struct_as_key_values(&format!("{stats:?}"));
        assert!(line.starts_with("sessions_opened=3 "), "{line}");
        assert!(
            line.split(' ')
                .all(|pair| matches!(pair.split_once('='), Some((key, value))
                    if !key.is_empty() && value.parse::<u64>().is_ok())),
            "{line}"
        );
    }
}
