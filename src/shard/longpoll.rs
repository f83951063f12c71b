//! HTTP long-poll transports (digest §8.3), the runtime part. A long-poll transport is a
//! virtual connection on the shard that answered its `open`: a [`Connection`] whose transport
//! is a long-poll [`ServerConn`] (messages queued in its bounded output, as for any
//! connection, so delivery, slow-consumer policy and metrics are the same), with its router
//! session, and one task ([`LongPollTask`]) that routes what `send` bodies brought in, answers
//! the held `receive`, and enforces the timeouts. It counts as a connection of the shard (the
//! connection limit, `connections_open`).
//!
//! The HTTP requests are ordinary connections of the WebSocket listener (`connection.rs`),
//! on whatever shard the kernel or round-robin placement put them; their transport reports
//! each request as `ConnEvent::LongPoll` and waits for its answer ([`handle_request`]). A
//! request for a transport of another shard (the id names its shard) is handed there: the
//! socket and the bytes of the request travel in `MeshMsg::AdoptRequest`, and the owner parses
//! the request again and serves the connection from then on (over TLS the bytes read are
//! already decrypted and the TLS session cannot move: such a request is answered 503, so
//! long-poll over TLS needs `cores = 1`).
//!
//! Bounds: the outbound queue is the listener's `max_outbound_bytes` (overflow: the session
//! is closed as a slow consumer); bodies are at most `max_message_size` (413) and HTTP heads
//! 8 KiB (431), both in `net`; at most one `receive` is held per transport — a second one
//! answers the first 204 and takes its place (the client only ever has one outstanding, so
//! the older is a leftover of a connection it gave up); a held `receive` is answered 204
//! after `limits.longpoll_poll_timeout_ms`; a transport with no request for
//! `limits.longpoll_session_timeout_ms` (and none held) is closed and its session ended, as
//! if its connection dropped. A transport whose session ended stays [`LINGER`] for its client
//! to take the last messages (the GOODBYE answer) and say `close`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use glommio::net::TcpStream;
use glommio::timer::Timer;
use tracing::debug;

use crate::net::batched;
use crate::net::longpoll::{self, LpAction, LpRequest};
use crate::net::{ConnEvent, ServerConn};
use crate::router::{Millis, TransportInfo};
use crate::serializer::Serializer;

use super::mesh::MeshMsg;
use super::state::{Connection, Shard};

/// How long a transport whose session ended is kept for its client's last `receive` and
/// `close`.
pub(crate) const LINGER: Millis = 5_000;

/// A `receive` request waiting for a message.
struct Held {
    http: Rc<Connection>,
    origin: Option<String>,
    keep_alive: bool,
}

/// One long-poll transport (see the module text).
pub(crate) struct LongPollTransport {
    id: String,
    pub(crate) conn: Rc<Connection>,
    /// Content type of `receive` bodies.
    content_type: &'static str,
    held: RefCell<Option<Held>>,
    receive_deadline: Cell<Millis>,
    last_activity: Cell<Millis>,
    /// When its session was seen ended.
    ended_at: Cell<Option<Millis>>,
    /// Closed (client `close`, idle timeout, lingered out): its task ends.
    removed: Cell<bool>,
}

impl LongPollTransport {
    fn session_over(&self) -> bool {
        !self.conn.has_session()
    }

    fn take_body(&self) -> Option<Vec<u8>> {
        self.conn.transport.borrow_mut().take_longpoll_body()
    }

    /// Answers the held `receive` with what is queued, if both exist.
    fn flush_to_held(&self, now: Millis) {
        let mut held = self.held.borrow_mut();
        if held.as_ref().is_some_and(|h| h.http.gone.get()) {
            // Its client went away: nothing is taken out of the queue for it.
            *held = None;
            return;
        }
        if held.is_none() {
            return;
        }
        if let Some(body) = self.take_body() {
            let h = held.take().expect("checked above");
            answer(
                &h.http,
                200,
                self.content_type,
                &body,
                h.origin.as_deref(),
                h.keep_alive,
            );
            self.last_activity.set(now);
        }
    }

    /// Answers the held `receive` (if any) with an empty 204, or 404 once the session ended
    /// and nothing is left to take.
    fn release_held(&self, now: Millis) {
        if let Some(h) = self.held.borrow_mut().take() {
            if self.session_over() {
                let text = longpoll::error_response(
                    404,
                    "long-poll transport closed",
                    h.origin.as_deref(),
                    h.keep_alive,
                    "",
                );
                respond(&h.http, &text, h.keep_alive);
            } else {
                answer(&h.http, 204, "", b"", h.origin.as_deref(), h.keep_alive);
            }
            self.last_activity.set(now);
        }
    }

    /// Ends the transport: its session, the held request, its entry. Its task ends.
    fn remove(&self, shard: &Shard) {
        if self.removed.replace(true) {
            return;
        }
        shard.end_session(&self.conn);
        self.release_held(shard.now());
        let mut map = shard.longpolls.borrow_mut();
        if map
            .get(&self.id)
            .is_some_and(|lp| Rc::ptr_eq(&lp.conn, &self.conn))
        {
            map.remove(&self.id);
        }
        drop(map);
        self.conn.wake();
    }
}

/// Queues an HTTP answer on a request's connection and wakes its task.
fn respond(http: &Connection, response: &[u8], keep_alive: bool) {
    http.transport
        .borrow_mut()
        .respond_http(response, keep_alive);
    http.wake();
}

fn answer(
    http: &Connection,
    status: u16,
    content_type: &str,
    body: &[u8],
    origin: Option<&str>,
    keep_alive: bool,
) {
    let response = longpoll::response(status, content_type, body, origin, keep_alive, "");
    respond(http, &response, keep_alive);
}

fn fail(http: &Connection, request: &LpRequest, status: u16, reason: &str) {
    let response = longpoll::error_response(
        status,
        reason,
        request.origin.as_deref(),
        request.keep_alive,
        "",
    );
    respond(http, &response, request.keep_alive);
}

/// What the connection task must do after [`handle_request`].
pub(crate) enum Routed {
    /// Answered, or held for a later answer.
    Done,
    /// The transport lives on shard `target`: hand the connection there with `request.raw`.
    HandOff { target: usize, raw: Bytes },
}

/// One long-poll request from `http` (a connection of listener `listener`).
pub(crate) fn handle_request(
    shard: &Rc<Shard>,
    http: &Rc<Connection>,
    listener: usize,
    secure: bool,
    request: LpRequest,
) -> Routed {
    let now = shard.now();
    let lp = match request.action.transport_id() {
        None => {
            open(shard, http, listener, secure, &request);
            return Routed::Done;
        }
        Some(id) => {
            let owner = longpoll::transport_shard(id).unwrap_or(usize::MAX);
            if owner != shard.id {
                if owner < shard.shard_count() {
                    return Routed::HandOff {
                        target: owner,
                        raw: request.raw.clone(),
                    };
                }
                fail(http, &request, 404, "no such long-poll transport");
                return Routed::Done;
            }
            match shard.longpolls.borrow().get(id) {
                Some(lp) => lp.clone(),
                None => {
                    fail(http, &request, 404, "no such long-poll transport");
                    return Routed::Done;
                }
            }
        }
    };
    lp.last_activity.set(now);
    match &request.action {
        LpAction::Open => unreachable!("open names no transport"),
        LpAction::Send(_) => {
            let taken = lp
                .conn
                .transport
                .borrow_mut()
                .receive_longpoll_body(&request.body);
            match taken {
                Ok(()) => {
                    lp.conn.wake();
                    answer(
                        http,
                        204,
                        "",
                        b"",
                        request.origin.as_deref(),
                        request.keep_alive,
                    );
                }
                Err(reason) => {
                    // A bad message fails the transport, as on WebSocket. Client-caused: debug.
                    debug!(shard = shard.id, peer = %http.peer, reason, "long-poll send refused; closing the transport");
                    shard.metrics.borrow_mut().transport_closes += 1;
                    lp.remove(shard);
                    fail(http, &request, 400, reason);
                }
            }
        }
        LpAction::Receive(_) => {
            if let Some(body) = lp.take_body() {
                answer(
                    http,
                    200,
                    lp.content_type,
                    &body,
                    request.origin.as_deref(),
                    request.keep_alive,
                );
            } else if lp.session_over() {
                fail(http, &request, 404, "long-poll transport closed");
            } else {
                // At most one held: the older one is answered 204 (see the module text).
                lp.release_held(now);
                *lp.held.borrow_mut() = Some(Held {
                    http: http.clone(),
                    origin: request.origin.clone(),
                    keep_alive: request.keep_alive,
                });
                let poll = shard.limits.borrow().longpoll_poll_timeout_ms;
                lp.receive_deadline.set(now + poll);
                lp.conn.wake();
            }
        }
        LpAction::Close(_) => {
            lp.remove(shard);
            answer(
                http,
                204,
                "",
                b"",
                request.origin.as_deref(),
                request.keep_alive,
            );
        }
    }
    Routed::Done
}

/// `POST <path>/open`: a new transport with the first offered protocol the listener speaks.
fn open(
    shard: &Rc<Shard>,
    http: &Rc<Connection>,
    listener: usize,
    secure: bool,
    request: &LpRequest,
) {
    if shard.is_stopping() || shard.at_connection_limit() {
        fail(http, request, 503, "router at its connection limit");
        return;
    }
    let configs = shard.listener_configs.borrow().clone();
    let Some(config) = configs.get(listener) else {
        fail(http, request, 503, "unknown listener");
        return;
    };
    let Some(offered) = longpoll::parse_open_body(&request.body) else {
        fail(
            http,
            request,
            400,
            "the open body must be {\"protocols\": [\"wamp.2.json\", ...]}",
        );
        return;
    };
    let chosen = offered.iter().find_map(|name| {
        batched::parse_subprotocol(name).filter(|(s, _)| config.transport.serializers.contains(s))
    });
    let Some((serializer, is_batched)) = chosen else {
        fail(http, request, 400, "no acceptable protocol offered");
        return;
    };
    let protocol = batched::subprotocol_name(serializer, is_batched);
    let id = longpoll::new_transport_id(shard.id);
    let transport = ServerConn::new_longpoll(serializer, is_batched, &config.transport);
    let conn = Rc::new(Connection::new(
        transport,
        http.peer.clone(),
        config.slow_consumer,
    ));
    let now = shard.now();
    let lp = Rc::new(LongPollTransport {
        id: id.clone(),
        conn: conn.clone(),
        content_type: if serializer == Serializer::Json {
            "application/json"
        } else {
            "application/octet-stream"
        },
        held: RefCell::new(None),
        receive_deadline: Cell::new(now),
        last_activity: Cell::new(now),
        ended_at: Cell::new(None),
        removed: Cell::new(false),
    });
    shard.metrics.borrow_mut().connections_accepted += 1;
    let slot = shard.register_connection(conn.clone());
    shard.longpolls.borrow_mut().insert(id.clone(), lp.clone());
    shard.open_session(
        &conn,
        TransportInfo {
            serializer,
            kind: "longpoll",
            peer: http.peer.clone(),
            listener,
            secure,
        },
    );
    debug!(shard = shard.id, peer = %http.peer, %protocol, "long-poll transport opened");
    glommio::spawn_local(LongPollTask {
        shard: shard.clone(),
        lp,
        slot,
        timer: None,
    })
    .detach();
    answer(
        http,
        200,
        "application/json",
        &longpoll::open_answer(&protocol, &id),
        request.origin.as_deref(),
        request.keep_alive,
    );
}

/// Hands the connection `stream` (whose request `raw` and following bytes `rest` were read
/// here) to shard `target`. False when the descriptor could not be duplicated.
pub(crate) fn hand_off(
    shard: &Shard,
    stream: &TcpStream,
    target: usize,
    listener: usize,
    raw: &Bytes,
    rest: &[u8],
) -> bool {
    // SAFETY: the descriptor belongs to `stream`, which outlives this borrow.
    let borrowed = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    match borrowed.try_clone_to_owned() {
        Ok(socket) => {
            let mut prefix = Vec::with_capacity(raw.len() + rest.len());
            prefix.extend_from_slice(raw);
            prefix.extend_from_slice(rest);
            shard.metrics.borrow_mut().connections_handed_off += 1;
            debug!(
                shard = shard.id,
                target, "long-poll request handed to its transport's shard"
            );
            shard.send_to_shard(
                target,
                MeshMsg::AdoptRequest {
                    socket,
                    listener,
                    prefix: Bytes::from(prefix),
                },
            );
            true
        }
        Err(e) => {
            debug!(shard = shard.id, target, "long-poll hand-off failed: {e}");
            false
        }
    }
}

/// The task of one long-poll transport (see the module text).
pub(crate) struct LongPollTask {
    shard: Rc<Shard>,
    lp: Rc<LongPollTransport>,
    /// Slot in the shard's live-connection set.
    slot: usize,
    /// The armed deadline and its timer.
    timer: Option<(Millis, Timer)>,
}

impl LongPollTask {
    /// Routes the messages `send` brought in.
    fn route(&mut self, cx: &mut Context<'_>) {
        loop {
            if self.shard.backpressure.paused() {
                self.shard
                    .backpressure
                    .wait(&self.lp.conn.backpressure_wait, cx.waker());
                return;
            }
            let event = self.lp.conn.transport.borrow_mut().poll_event();
            match event {
                None => return,
                Some(ConnEvent::Message(frame)) => self.shard.handle_message(&self.lp.conn, frame),
                Some(ConnEvent::Closed { .. }) => self.shard.end_session(&self.lp.conn),
                Some(_) => {}
            }
        }
    }

    /// One turn; `Ready` when the transport is over.
    fn turn(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        for _ in 0..4 {
            if self.lp.removed.get() || self.shard.is_terminated() {
                return Poll::Ready(());
            }
            self.route(cx);
            let shard = &self.shard;
            let lp = &self.lp;
            let now = shard.now();
            lp.flush_to_held(now);
            let idle_ms = shard.limits.borrow().longpoll_session_timeout_ms;
            let over = lp.session_over();
            if over && lp.ended_at.get().is_none() {
                lp.ended_at.set(Some(now));
            }
            let drained = lp.conn.transport.borrow().outbound_len() == 0;
            let mut next: Option<Millis> = None;
            let mut consider = |at: Millis| next = Some(next.map_or(at, |n: Millis| n.min(at)));
            if lp.held.borrow().is_some() {
                if now >= lp.receive_deadline.get() || (over && drained) {
                    lp.release_held(now);
                } else {
                    consider(lp.receive_deadline.get());
                }
            }
            if lp.held.borrow().is_none() {
                let idle_at = lp.last_activity.get() + idle_ms;
                if now >= idle_at {
                    debug!(shard = shard.id, peer = %lp.conn.peer, "long-poll transport idle for {idle_ms} ms; closed");
                    shard.metrics.borrow_mut().transport_closes += 1;
                    lp.remove(shard);
                    return Poll::Ready(());
                }
                consider(idle_at);
            }
            if let Some(ended) = lp.ended_at.get() {
                let linger_end = ended + LINGER;
                let stop_over = shard.is_stopping() && (drained || shard.peer_close_window_over());
                if now >= linger_end || stop_over {
                    lp.remove(shard);
                    return Poll::Ready(());
                }
                consider(linger_end);
            }
            let Some(at) = next else {
                return Poll::Pending;
            };
            if self.timer.as_ref().map(|(armed, _)| *armed) != Some(at) {
                let wait = Duration::from_millis(at.saturating_sub(now));
                self.timer = Some((at, Timer::new(wait)));
            }
            let (_, timer) = self.timer.as_mut().expect("armed above");
            if Pin::new(timer).poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.timer = None;
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Future for LongPollTask {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.lp.conn.register_waker(cx.waker());
        this.lp.conn.polling.set(true);
        let result = this.turn(cx);
        this.lp.conn.polling.set(false);
        result
    }
}

impl Drop for LongPollTask {
    fn drop(&mut self) {
        self.lp.conn.aborted.set(true);
        if !self.shard.is_terminated() {
            self.lp.remove(&self.shard);
        } else {
            self.lp.removed.set(true);
        }
        self.shard.unregister_connection(self.slot);
    }
}
