//! One task per connection: the only code that touches a connection's socket. Each turn it
//! reads what the socket has (up to a budget), feeds it to the transport state machine and the
//! router, then writes everything queued for the connection — its own replies and what other
//! sessions' actions appended — in ONE write call. Other tasks never write to this socket; they
//! append to the transport's bounded output and wake this task.
//!
//! Life of a connection: handshake (bounded by `handshake_timeout_ms`) -> open -> closing (the
//! router or the peer started it; the WebSocket close handshake is bounded by a linger timer)
//! -> flush the output -> shut down our sending side -> read and discard until the peer's EOF
//! (so unread input does not turn our close into a reset that destroys the last frames) ->
//! drop. A slow consumer gets the same orderly close (its ABORT and close frame queued behind
//! what it has not read), bounded by the same linger timer.
//!
//! Shutdown: a welcomed session gets GOODBYE `wamp.close.system_shutdown` and its client has
//! the first half of `limits.shutdown_grace_ms` to close the transport itself (WebSocket Close,
//! which is echoed; RawSocket EOF), as WAMP clients do after GOODBYE; then the router starts
//! the close (WebSocket 1001). Either way the sequence above runs to the peer's EOF, so the
//! client sees a complete close handshake and no reset; the shard drops whatever is left when
//! the grace ends.
//!
//! TLS: when the listener has TLS, the task owns a [`TlsFilter`] and every byte passes
//! through it — socket bytes are decrypted into the transport's input, the transport's output
//! is encrypted into the filter, and the turn's one write takes the filter's ciphertext. Same
//! task, same turn, same close sequence (close_notify queued after the last plaintext, before
//! our FIN); the filter is simply absent on plain listeners. A TLS error (bad record, failed
//! handshake) ends the connection like a transport error: the alert rustls queued is flushed,
//! then the socket is closed. The TLS handshake counts towards `handshake_timeout_ms` (the
//! deadline ends at the transport's `Opened`, which comes after it).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use tracing::debug;

use crate::net::longpoll::LpRequest;
use crate::net::tls::TlsFilter;
use crate::net::websocket::close_code;
use crate::net::{ConnEvent, TransportKind};
use crate::router::TransportInfo;

use super::longpoll;
use super::state::{Connection, Shard};

// Reads go into the shard's one scratch buffer and are then appended to the transport's input
// (`receive`): the copy is of the bytes read only. Reading straight into the transport's
// `BytesMut` would save it, but glommio reads into an initialized `&mut [u8]`, and zeroing the
// spare room before every read costs more than copying what a read returns.

/// Reads per turn before the task yields to others (each up to the shard's read scratch size),
/// so one busy connection cannot starve the shard.
const READS_PER_TURN: usize = 8;

/// How long an orderly close may take (close handshake, flush, the peer's EOF) before the
/// socket is dropped anyway.
const CLOSE_LINGER: Duration = Duration::from_secs(3);

/// Read-route-write rounds per turn before the task yields (a peer that reads as fast as we
/// write could otherwise keep one turn going).
const ROUNDS_PER_TURN: usize = 4;

/// Why the task's deadline timer is armed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Deadline {
    Handshake,
    Close,
}

/// The connection task's future, polled by hand so that reading, writing and the deadline
/// share one task and one waker.
pub(crate) struct ConnectionTask {
    shard: Rc<Shard>,
    conn: Rc<Connection>,
    stream: TcpStream,
    kind: TransportKind,
    /// Index of the listener the connection came in on (`TransportInfo::listener`).
    listener: usize,
    /// The TLS filter between the socket and the transport (TLS listeners only).
    tls: Option<Box<TlsFilter>>,
    /// TLS is over: close_notify queued, or the session failed. Nothing more is encrypted.
    tls_done: bool,
    /// `TransportInfo::secure`: TLS, or a Unix socket (never leaves the machine).
    secure: bool,
    /// Slot in the shard's live-connection set.
    slot: usize,
    deadline: Option<(Deadline, Timer)>,
    /// The transport finished (closed event or EOF): nothing more is fed to it.
    transport_done: bool,
    /// The peer sent EOF.
    eof: bool,
    /// Our sending side is shut down (everything was flushed).
    write_shut: bool,
}

impl ConnectionTask {
    pub(crate) fn new(
        shard: Rc<Shard>,
        conn: Rc<Connection>,
        stream: TcpStream,
        kind: TransportKind,
        listener: usize,
        tls: Option<TlsFilter>,
        secure: bool,
    ) -> Self {
        let slot = shard.register_connection(conn.clone());
        let handshake_timeout = Duration::from_millis(shard.limits.borrow().handshake_timeout_ms);
        ConnectionTask {
            shard,
            conn,
            stream,
            kind,
            listener,
            tls: tls.map(Box::new),
            tls_done: false,
            secure,
            slot,
            deadline: Some((Deadline::Handshake, Timer::new(handshake_timeout))),
            transport_done: false,
            eof: false,
            write_shut: false,
        }
    }

    /// Reads the socket up to the per-turn budget and routes what arrived. `Ready(true)`: the
    /// connection is over. `Ready(false)`: the budget is used up and the task has already asked
    /// to be polled again. `Pending`: nothing more to read now (or reading is paused).
    fn read_turn(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        for _ in 0..READS_PER_TURN {
            if self.conn.aborted.get() {
                return Poll::Pending;
            }
            // A queue to another shard is full: take no more requests until it drains. Checked
            // before EOF: a peer that sent its last requests and shut down still has them
            // waiting in the transport, and needs the wake-up at the resume.
            if self.shard.backpressure.paused() && !self.transport_done {
                self.shard
                    .backpressure
                    .wait(&self.conn.backpressure_wait, cx.waker());
                return Poll::Pending;
            }
            if self.eof {
                return Poll::Pending;
            }
            // Our own queue is large: stop taking requests until the peer reads its replies
            // (TCP backpressure instead of a self-inflicted slow-consumer disconnect). The
            // pending write wakes us when the socket drains.
            if !self.transport_done
                && self.conn.transport.borrow().outbound_len() >= self.conn.slow_consumer.soft_bytes
            {
                return Poll::Pending;
            }
            let mut tls_outcome = None;
            let read = {
                let mut scratch = self.shard.read_scratch.borrow_mut();
                match Pin::new(&mut self.stream).poll_read(cx, &mut scratch) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0)) => Ok(None),
                    Poll::Ready(Ok(n)) => {
                        self.shard.metrics.borrow_mut().bytes_in += n as u64;
                        if !self.transport_done {
                            let mut transport = self.conn.transport.borrow_mut();
                            match self.tls.as_mut() {
                                None => transport.receive(&scratch[..n]),
                                Some(tls) if !self.tls_done => {
                                    tls_outcome =
                                        Some(tls.receive(&scratch[..n], |plain| {
                                            transport.receive(plain)
                                        }));
                                }
                                Some(_) => {}
                            }
                        }
                        Ok(Some(n))
                    }
                    Poll::Ready(Err(error)) => Err(error),
                }
            };
            match tls_outcome {
                Some(Err(error)) => self.tls_failed(&error),
                // The peer's close_notify: its last plaintext is in the transport; what follows
                // is handled as the end of its stream.
                Some(Ok(received)) if received.peer_closed => {
                    self.handle_events();
                    if !self.transport_done {
                        debug!(shard = self.shard.id, peer = %self.conn.peer, "peer sent TLS close_notify");
                        self.transport_finished();
                    }
                }
                _ => {}
            }
            let read = match read {
                Ok(read) => read,
                Err(error) => {
                    self.io_error("read", &error);
                    return Poll::Ready(true);
                }
            };
            match read {
                None => {
                    self.eof = true;
                    if !self.transport_done {
                        debug!(shard = self.shard.id, peer = %self.conn.peer, "peer closed the connection");
                        self.transport_finished();
                    }
                }
                Some(_) => self.handle_events(),
            }
        }
        // Budget used up with data still flowing: yield, and come back.
        cx.waker().wake_by_ref();
        Poll::Ready(false)
    }

    /// Takes every event the transport has and hands it to the router.
    fn handle_events(&mut self) {
        while !self.transport_done && !self.conn.aborted.get() {
            if self.shard.backpressure.paused() {
                // The rest of what was read waits in the transport; read_turn registers the
                // wake-up for the resume, and the next turn starts here.
                return;
            }
            let event = self.conn.transport.borrow_mut().poll_event();
            match event {
                None => {
                    let request = self.conn.transport.borrow_mut().take_http_request();
                    match request {
                        Some(request) => self.long_poll_request(request),
                        None => return,
                    }
                }
                Some(ConnEvent::Opened { serializer }) => {
                    if matches!(self.deadline, Some((Deadline::Handshake, _))) {
                        self.deadline = None;
                    }
                    if self.shard.is_stopping() {
                        // Accepted just before shutdown: nothing to serve it with.
                        self.conn.close_started.set(true);
                        self.conn
                            .transport
                            .borrow_mut()
                            .close(close_code::GOING_AWAY, "router shutting down");
                        continue;
                    }
                    let transport = TransportInfo {
                        serializer,
                        kind: match self.kind {
                            TransportKind::WebSocket => "websocket",
                            TransportKind::RawSocket => "rawsocket",
                        },
                        peer: self.conn.peer.clone(),
                        listener: self.listener,
                        secure: self.secure,
                    };
                    self.shard.open_session(&self.conn, transport);
                    debug!(shard = self.shard.id, peer = %self.conn.peer, %serializer, "transport open");
                }
                Some(ConnEvent::Message(frame)) => self.shard.handle_message(&self.conn, frame),
                Some(ConnEvent::Closed { reason }) => {
                    if !self.conn.close_started.get() {
                        debug!(shard = self.shard.id, peer = %self.conn.peer, %reason, "transport closed");
                        self.shard.metrics.borrow_mut().transport_closes += 1;
                    }
                    self.transport_finished();
                }
            }
        }
    }

    /// An HTTP long-poll request (`longpoll.rs`): answered here, held, or (its transport lives
    /// on another shard) the connection is handed there.
    fn long_poll_request(&mut self, request: LpRequest) {
        // An HTTP connection has no handshake to finish: its deadline becomes an idle bound
        // that leaves room for a held `receive`.
        let idle = {
            let limits = self.shard.limits.borrow();
            Duration::from_millis(limits.handshake_timeout_ms + limits.longpoll_poll_timeout_ms)
        };
        self.deadline = Some((Deadline::Handshake, Timer::new(idle)));
        let routed =
            longpoll::handle_request(&self.shard, &self.conn, self.listener, self.secure, request);
        let longpoll::Routed::HandOff { target, raw } = routed else {
            return;
        };
        let handed = self.tls.is_none() && {
            let transport = self.conn.transport.borrow();
            longpoll::hand_off(
                &self.shard,
                &self.stream,
                target,
                self.listener,
                &raw,
                transport.unparsed_input(),
            )
        };
        if handed {
            // The other shard serves the socket now: drop ours without a shutdown (that would
            // end the connection for both) and without flushing.
            self.conn.aborted.set(true);
            self.transport_done = true;
            self.conn.gone.set(true);
            return;
        }
        let response = crate::net::longpoll::error_response(
            503,
            "this long-poll transport lives on another shard, and this connection cannot move there (TLS)",
            None,
            false,
            "",
        );
        self.conn
            .transport
            .borrow_mut()
            .respond_http(&response, false);
    }

    /// The transport will carry no more messages: end the session and start lingering.
    fn transport_finished(&mut self) {
        self.conn.gone.set(true);
        self.transport_done = true;
        self.shard.end_session(&self.conn);
        self.arm_close_deadline();
    }

    fn arm_close_deadline(&mut self) {
        if !matches!(self.deadline, Some((Deadline::Close, _))) {
            self.deadline = Some((Deadline::Close, Timer::new(CLOSE_LINGER)));
        }
    }

    /// The TLS session failed (bad record, failed handshake, untrusted peer): nothing more is
    /// decrypted or encrypted; the alert rustls queued is flushed, then the socket closes.
    fn tls_failed(&mut self, error: &crate::net::tls::TlsError) {
        // Client-caused, so debug level (as other transport errors): no client fills a log.
        debug!(shard = self.shard.id, peer = %self.conn.peer, %error, "TLS failed; closing");
        self.tls_done = true;
        self.shard.metrics.borrow_mut().tls_failures += 1;
        if !self.transport_done {
            self.shard.metrics.borrow_mut().transport_closes += 1;
            self.transport_finished();
        }
        // Its plaintext can no longer be sent.
        let mut transport = self.conn.transport.borrow_mut();
        let queued = transport.output().len();
        transport.consume_output(queued);
    }

    /// True when nothing is left to write: the transport's queue and the TLS ciphertext.
    fn output_flushed(&self) -> bool {
        self.conn.transport.borrow().output().is_empty()
            && self
                .tls
                .as_ref()
                .map_or(true, |tls| tls.ciphertext().is_empty())
    }

    /// TLS: moves the transport's queued plaintext into the filter (as far as its bound
    /// allows), and once the transport is finished and drained, queues close_notify.
    fn encrypt_output(&mut self) {
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        if self.tls_done {
            return;
        }
        let mut transport = self.conn.transport.borrow_mut();
        let taken = tls.send(transport.output());
        transport.consume_output(taken);
        if self.transport_done && transport.output().is_empty() {
            tls.close();
            self.tls_done = true;
        }
    }

    fn io_error(&mut self, what: &str, error: &io::Error) {
        debug!(shard = self.shard.id, peer = %self.conn.peer, %error, "socket {what} failed");
        self.shard.metrics.borrow_mut().io_errors += 1;
        self.conn.gone.set(true);
        self.transport_done = true;
        self.shard.end_session(&self.conn);
    }

    /// Writes everything queued, in one call.
    fn write_turn(&mut self, cx: &mut Context<'_>) -> WriteOutcome {
        if self.write_shut {
            return WriteOutcome::Idle;
        }
        self.encrypt_output();
        let result = {
            let transport = self.conn.transport.borrow();
            let output = match &self.tls {
                Some(tls) => tls.ciphertext(),
                None => transport.output(),
            };
            if output.is_empty() {
                return WriteOutcome::Idle;
            }
            Pin::new(&mut self.stream).poll_write(cx, output)
        };
        match result {
            Poll::Pending => WriteOutcome::Blocked,
            Poll::Ready(Ok(written)) => {
                match self.tls.as_mut() {
                    Some(tls) => tls.consume_ciphertext(written),
                    None => self.conn.transport.borrow_mut().consume_output(written),
                }
                self.shard.metrics.borrow_mut().bytes_out += written as u64;
                WriteOutcome::Wrote
            }
            Poll::Ready(Err(error)) => {
                self.io_error("write", &error);
                WriteOutcome::Failed
            }
        }
    }

    /// Polls the deadline; true when it expired (the connection is then over).
    fn deadline_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some((kind, timer)) = self.deadline.as_mut() else {
            return false;
        };
        if Pin::new(timer).poll(cx).is_pending() {
            return false;
        }
        let kind = *kind;
        {
            let mut metrics = self.shard.metrics.borrow_mut();
            match kind {
                Deadline::Handshake => metrics.handshake_timeouts += 1,
                Deadline::Close if !self.write_shut => metrics.close_timeouts += 1,
                Deadline::Close => {}
            }
        }
        debug!(shard = self.shard.id, peer = %self.conn.peer, ?kind, "connection deadline expired");
        self.transport_done = true;
        self.shard.end_session(&self.conn);
        true
    }

    /// One turn of the connection: read, route, write once. `Ready(())` when the connection is
    /// over and the socket can be dropped.
    fn turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..ROUNDS_PER_TURN {
            // Another task may have started our close or aborted us since the last turn, and
            // the transport may report a close it decided on its own.
            self.handle_events();
            if self.conn.aborted.get() {
                return Poll::Ready(());
            }
            if self.conn.awaiting_peer_close.get()
                && !self.conn.close_started.get()
                && !self.transport_done
                && self.shard.peer_close_window_over()
            {
                // Told GOODBYE, and the client has not closed in its window: we close.
                self.conn
                    .start_close(close_code::GOING_AWAY, "router shutting down");
            }
            if self.shard.is_stopping()
                && !self.conn.close_started.get()
                && !self.transport_done
                && !self.conn.has_session()
                && !self.conn.awaiting_peer_close.get()
                && !self.conn.transport.borrow().awaits_http_answer()
            {
                // An HTTP long-poll connection whose pending request was answered during the
                // shutdown (see `Shard::begin_shutdown`): nothing more is served on it.
                self.conn
                    .start_close(close_code::GOING_AWAY, "router shutting down");
            }
            if self.conn.close_started.get() {
                self.arm_close_deadline();
            }

            let read_budget_used = match self.read_turn(cx) {
                Poll::Ready(true) => return Poll::Ready(()),
                Poll::Ready(false) => true,
                Poll::Pending => false,
            };
            if self.conn.aborted.get() {
                return Poll::Ready(());
            }
            let write = self.write_turn(cx);
            if write == WriteOutcome::Failed {
                return Poll::Ready(());
            }

            let flushed = self.output_flushed();
            if self.transport_done && flushed && !self.write_shut {
                // Everything is out: send our FIN, then wait for the peer's.
                self.write_shut = true;
                if let Poll::Ready(Err(error)) = Pin::new(&mut self.stream).poll_close(cx) {
                    self.io_error("shutdown", &error);
                    return Poll::Ready(());
                }
                continue;
            }
            if self.write_shut && self.eof {
                return Poll::Ready(());
            }
            if self.deadline_expired(cx) {
                return Poll::Ready(());
            }
            if read_budget_used {
                // read_turn asked to be polled again; let other tasks run first.
                return Poll::Pending;
            }
            if write == WriteOutcome::Wrote {
                // The socket took bytes: there may be room for the rest, and reading may have
                // been paused for a full queue. Go round again; a round that does nothing
                // leaves wake-ups registered (read, write or timer) and returns.
                continue;
            }
            return Poll::Pending;
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// What one write attempt did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum WriteOutcome {
    /// Nothing to write (or the sending side is already shut).
    Idle,
    Wrote,
    /// The socket is full; the task is woken when it drains.
    Blocked,
    Failed,
}

impl Future for ConnectionTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.conn.register_waker(cx.waker());
        this.conn.polling.set(true);
        let result = this.turn(cx);
        this.conn.polling.set(false);
        result
    }
}

impl Drop for ConnectionTask {
    fn drop(&mut self) {
        // Whatever ended the task (done, error, or the executor dropping it at shutdown), the
        // session must not outlive its connection. Once the shard has terminated, the router
        // is not driven any more (it would wake tasks of an executor being torn down).
        self.conn.aborted.set(true);
        self.conn.gone.set(true);
        if !self.shard.is_terminated() {
            self.shard.end_session(&self.conn);
        }
        self.shard.unregister_connection(self.slot);
    }
}
