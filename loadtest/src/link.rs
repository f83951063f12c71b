//! One WAMP client session over one TCP or Unix socket connection, on the current glommio
//! executor: the transport handshake and framing come from `wampring::net::ClientConn` (behind
//! `wampring::net::tls::TlsFilter` for wss/rss targets), messages from `wampring::wire`. The scenario tasks drive it in turns: queue messages with
//! [`Link::send`], then [`Link::pump`] performs at most one socket write (everything queued
//! since the last turn goes out in that one write) and waits until bytes arrive, the write
//! completes, or a wake-up time passes; then [`Link::next_message`] hands out what arrived.
//!
//! Every wait is bounded by a deadline, and everything the router sends is untrusted: failures
//! come back as [`LinkError`]s that the scenarios count by URI; nothing here panics on input.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::{TcpStream, UnixStream};
use glommio::timer::Timer;
use wampring::net::tls::TlsFilter;
use wampring::net::{ClientConn, ConnEvent, Polled, SendError, TransportKind};
use wampring::serializer::Serializer;
use wampring::wire::{self, Dict, Message, Value};

use crate::auth::ClientAuth;
use crate::target::Target;

/// Bytes read from the socket per read call. Shared by all connections of a thread (a read
/// never spans an await), so ten thousand idle sessions do not hold ten thousand buffers.
const READ_CHUNK: usize = 256 * 1024;

/// Reads per [`Link::pump`] before it returns, so one busy connection cannot starve the others
/// on its thread.
const MAX_READS_PER_TURN: usize = 4;

thread_local! {
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// Why a session failed. [`LinkError::uri`] names it for the error table.
#[derive(Debug)]
pub enum LinkError {
    Connect(io::Error),
    Io(io::Error),
    /// The transport ended: peer closed, or a transport-level error (reason from `net`).
    TransportClosed(String),
    /// A bounded wait expired; the text says which.
    Timeout(&'static str),
    /// The router sent ABORT (reason URI).
    Abort(String),
    /// The router sent GOODBYE while the session was in use.
    Goodbye(String),
    /// The router asked for authentication and the run was given no `--authmethod`.
    AuthenticationRequired(String),
    /// The router sent ABORT in answer to HELLO or AUTHENTICATE of an authenticating session:
    /// the reason URI and the message, if any.
    AuthenticationRefused(String, String),
    /// The CHALLENGE could not be answered, or WELCOME did not prove the router (SCRAM).
    Authentication(String),
    /// An ERROR reply to a setup request (REGISTER, SUBSCRIBE): the error URI.
    Refused(String),
    /// The router sent something undecodable or out of place.
    Protocol(String),
    /// A message could not be queued (outbound bound hit, too large, transport not open).
    Send(SendError),
    Encode(String),
    /// The TLS session failed (untrusted certificate, bad record).
    Tls(String),
}

impl LinkError {
    /// The URI under which this failure is counted.
    pub fn uri(&self) -> String {
        match self {
            LinkError::Abort(reason)
            | LinkError::Refused(reason)
            | LinkError::AuthenticationRefused(reason, _) => reason.clone(),
            LinkError::Authentication(_) => "wampload.authentication_failed".into(),
            LinkError::Goodbye(_) => "wampload.router_goodbye".into(),
            LinkError::Connect(_) => "wampload.connect_failed".into(),
            LinkError::Io(_) => "wampload.io_error".into(),
            LinkError::TransportClosed(_) => "wampload.transport_closed".into(),
            LinkError::Timeout(_) => "wampload.timeout".into(),
            LinkError::AuthenticationRequired(_) => "wampload.authentication_required".into(),
            LinkError::Protocol(_) => "wampload.protocol_error".into(),
            LinkError::Send(_) => "wampload.send_failed".into(),
            LinkError::Encode(_) => "wampload.encode_failed".into(),
            LinkError::Tls(_) => "wampload.tls_failed".into(),
        }
    }
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Connect(e) => write!(f, "connect failed: {e}"),
            LinkError::Io(e) => write!(f, "socket error: {e}"),
            LinkError::TransportClosed(reason) => write!(f, "transport closed: {reason}"),
            LinkError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            LinkError::Abort(reason) => write!(f, "router sent ABORT {reason}"),
            LinkError::Goodbye(reason) => write!(f, "router sent GOODBYE {reason}"),
            LinkError::AuthenticationRequired(method) => {
                write!(f, "router requires authentication ({method}); give --authmethod and its credentials, or use a realm open to anonymous clients")
            }
            LinkError::AuthenticationRefused(reason, message) if message.is_empty() => {
                write!(f, "authentication failed: router sent ABORT {reason}")
            }
            LinkError::AuthenticationRefused(reason, message) => {
                write!(
                    f,
                    "authentication failed: router sent ABORT {reason} ({message})"
                )
            }
            LinkError::Authentication(what) => write!(f, "authentication failed: {what}"),
            LinkError::Refused(uri) => write!(f, "router refused the request: {uri}"),
            LinkError::Protocol(what) => write!(f, "protocol error: {what}"),
            LinkError::Send(e) => write!(f, "cannot queue message: {e:?}"),
            LinkError::Encode(e) => write!(f, "cannot encode message: {e}"),
            LinkError::Tls(e) => write!(f, "TLS failed: {e}"),
        }
    }
}

/// What ended one [`Link::pump`] turn.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Pumped {
    /// Bytes arrived; call [`Link::next_message`] until it returns `None`.
    Data,
    /// The turn's write went out (completely or partly) and nothing arrived yet.
    Wrote,
    /// The wake-up time passed.
    Woke,
}

/// The roles a session announces in HELLO.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Roles {
    Caller,
    /// A callee; `shared` asks for the shared_registration feature (several echo callees).
    Callee {
        shared: bool,
    },
    Publisher,
    Subscriber,
    /// Every client role (connect scenario: what a typical client library announces).
    All,
}

/// The socket under a link.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// TCP to `address`, or the target's Unix socket, within `budget`.
    async fn connect(
        target: &Target,
        address: SocketAddr,
        budget: Duration,
    ) -> Result<Stream, LinkError> {
        let connect_error = |e: glommio::GlommioError<()>| LinkError::Connect(io::Error::from(e));
        match &target.unix {
            Some(path) => {
                // A local connect completes at once or fails at once (a full backlog refuses).
                let stream = UnixStream::connect(path).await.map_err(connect_error)?;
                Ok(Stream::Unix(stream))
            }
            None => {
                let stream = TcpStream::connect_timeout(address, budget)
                    .await
                    .map_err(connect_error)?;
                // Small WAMP messages must not wait for Nagle; batching is done by one write
                // per turn.
                stream
                    .set_nodelay(true)
                    .map_err(|e| LinkError::Io(io::Error::from(e)))?;
                Ok(Stream::Tcp(stream))
            }
        }
    }

    fn poll_read(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }

    fn poll_write(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    async fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Both).await,
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Both).await,
        };
    }
}

/// One established WAMP client connection.
pub struct Link {
    stream: Stream,
    /// wss/rss: the TLS filter between the socket and `conn`.
    tls: Option<Box<TlsFilter>>,
    kind: TransportKind,
    conn: ClientConn,
    serializer: Serializer,
    encode_buffer: Vec<u8>,
    /// The wake-up timer, re-armed only when the wake-up time changes.
    timer: Option<(Instant, Timer)>,
    next_request: u64,
    /// The WAMP session id from WELCOME (0 until joined).
    session: u64,
    /// The peer closed its side (EOF): nothing more will arrive.
    eof: bool,
}

impl Link {
    /// Opens the TCP or Unix socket connection and completes the TLS (wss, rss) and WebSocket
    /// or RawSocket handshakes (`address` is unused for a Unix socket target).
    pub async fn connect(
        target: &Target,
        address: SocketAddr,
        serializer: Serializer,
        deadline: Instant,
    ) -> Result<Link, LinkError> {
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        let stream = Stream::connect(target, address, budget).await?;
        let tls = match &target.tls {
            Some(client) => Some(Box::new(
                TlsFilter::client(client.config.clone(), client.server_name.clone())
                    .map_err(|e| LinkError::Tls(e.to_string()))?,
            )),
            None if target.secure => {
                return Err(LinkError::Tls("a TLS URL without TLS settings".into()))
            }
            None => None,
        };
        let conn = ClientConn::new(
            target.kind,
            serializer,
            &target.transport_config(serializer),
        );
        let mut link = Link {
            stream,
            tls,
            kind: target.kind,
            conn,
            serializer,
            encode_buffer: Vec::with_capacity(256),
            timer: None,
            next_request: 1,
            session: 0,
            eof: false,
        };
        loop {
            if let Some(event) = link.conn.poll_event() {
                match event {
                    ConnEvent::Opened { serializer: chosen } if chosen == serializer => {
                        return Ok(link)
                    }
                    ConnEvent::Opened { serializer: chosen } => {
                        return Err(LinkError::Protocol(format!(
                            "router chose {chosen}, {serializer} was offered"
                        )))
                    }
                    ConnEvent::Message(_) => {
                        return Err(LinkError::Protocol(
                            "message before the transport opened".into(),
                        ))
                    }
                    ConnEvent::Closed { reason } => return Err(LinkError::TransportClosed(reason)),
                }
            }
            if link.eof {
                return Err(LinkError::TransportClosed(
                    "the router closed the connection during the handshake".into(),
                ));
            }
            if link.pump(Some(deadline)).await? == Pumped::Woke && Instant::now() >= deadline {
                return Err(LinkError::Timeout(match target.kind {
                    TransportKind::WebSocket => "the WebSocket handshake",
                    TransportKind::RawSocket => "the RawSocket handshake",
                }));
            }
        }
    }

    /// Sends HELLO for `realm` and waits for WELCOME; returns the session id. With `auth`,
    /// HELLO offers its method and credentials and a CHALLENGE is answered with AUTHENTICATE.
    pub async fn join(
        &mut self,
        realm: &str,
        roles: Roles,
        auth: Option<&ClientAuth>,
        deadline: Instant,
    ) -> Result<u64, LinkError> {
        let mut handshake = auth.map(ClientAuth::start);
        let mut details = hello_details(roles);
        if let Some(handshake) = &handshake {
            handshake.hello_details(&mut details);
        }
        let hello = Message::Hello {
            realm: realm.into(),
            details,
        };
        self.send(&hello)?;
        loop {
            if let Some(frame) = self.next_message()? {
                match wire::decode(self.serializer, &frame) {
                    Ok(Message::Welcome { session, details }) => {
                        if let Some(handshake) = &handshake {
                            handshake
                                .check_welcome(&details)
                                .map_err(LinkError::Authentication)?;
                        }
                        self.session = session;
                        return Ok(session);
                    }
                    Ok(Message::Abort {
                        reason, details, ..
                    }) => {
                        return Err(match handshake {
                            Some(_) => LinkError::AuthenticationRefused(
                                reason.into_owned(),
                                details.get_str("message").unwrap_or("").to_string(),
                            ),
                            None => LinkError::Abort(reason.into_owned()),
                        })
                    }
                    Ok(Message::Challenge { method, extra }) => {
                        let Some(handshake) = handshake.as_mut() else {
                            return Err(LinkError::AuthenticationRequired(method.into_owned()));
                        };
                        let answer = handshake
                            .answer(&method, &extra)
                            .map_err(LinkError::Authentication)?;
                        self.send(&Message::Authenticate {
                            signature: answer.signature.into(),
                            extra: answer.extra,
                        })?;
                    }
                    Ok(other) => {
                        return Err(LinkError::Protocol(format!(
                            "{} instead of WELCOME",
                            other.name()
                        )))
                    }
                    Err(e) => {
                        return Err(LinkError::Protocol(format!(
                            "undecodable reply to HELLO: {e}"
                        )))
                    }
                }
                continue;
            }
            self.wait(deadline, "WELCOME").await?;
        }
    }

    /// Sends one request (REGISTER, SUBSCRIBE) and waits for its reply: returns the id in the
    /// expected reply (`registration`, `subscription`). Messages for other purposes arriving
    /// meanwhile are ignored: nothing else is in flight during setup.
    pub async fn request(
        &mut self,
        message: &Message<'_>,
        deadline: Instant,
    ) -> Result<u64, LinkError> {
        self.send(message)?;
        let (request, what) = match message {
            Message::Register { request, .. } => (*request, "REGISTERED"),
            Message::Subscribe { request, .. } => (*request, "SUBSCRIBED"),
            _ => return Err(LinkError::Protocol("not a setup request".into())),
        };
        loop {
            while let Some(frame) = self.next_message()? {
                match wire::decode(self.serializer, &frame) {
                    Ok(Message::Registered {
                        request: r,
                        registration,
                    }) if r == request => return Ok(registration),
                    Ok(Message::Subscribed {
                        request: r,
                        subscription,
                    }) if r == request => return Ok(subscription),
                    Ok(Message::Error {
                        request: r, error, ..
                    }) if r == request => return Err(LinkError::Refused(error.into_owned())),
                    Ok(Message::Abort { reason, .. }) => {
                        return Err(LinkError::Abort(reason.into_owned()))
                    }
                    Ok(Message::Goodbye { reason, .. }) => {
                        return Err(LinkError::Goodbye(reason.into_owned()))
                    }
                    Ok(_) => {}
                    Err(e) => return Err(LinkError::Protocol(format!("undecodable reply: {e}"))),
                }
            }
            self.wait(deadline, what).await?;
        }
    }

    /// The next request id of this session (sequential from 1, as the spec requires).
    pub fn next_request_id(&mut self) -> u64 {
        let id = self.next_request;
        self.next_request = if id >= wire::MAX_ID { 1 } else { id + 1 };
        id
    }

    /// The request id [`Link::next_request_id`] will return next.
    pub fn peek_request_id(&self) -> u64 {
        self.next_request
    }

    pub fn serializer(&self) -> Serializer {
        self.serializer
    }

    /// The WAMP session id the router gave in WELCOME (0 before [`Link::join`]).
    pub fn session_id(&self) -> u64 {
        self.session
    }

    /// Encodes and queues one message; it leaves with the next [`Link::pump`].
    pub fn send(&mut self, message: &Message<'_>) -> Result<(), LinkError> {
        self.encode_buffer.clear();
        wire::encode(message, self.serializer, &mut self.encode_buffer)
            .map_err(|e| LinkError::Encode(e.to_string()))?;
        self.conn
            .send_message(&self.encode_buffer)
            .map_err(LinkError::Send)
    }

    /// Queues one message already encoded in this session's serializer.
    pub fn send_encoded(&mut self, message: &[u8]) -> Result<(), LinkError> {
        self.conn.send_message(message).map_err(LinkError::Send)
    }

    /// Bytes queued and not yet written (with TLS: plaintext not yet encrypted plus
    /// ciphertext not yet written).
    pub fn queued_bytes(&self) -> usize {
        self.conn.output().len() + self.tls.as_ref().map_or(0, |tls| tls.ciphertext().len())
    }

    /// The next complete message received, `Ok(None)` when more bytes are needed, or the
    /// transport's end.
    pub fn next_message(&mut self) -> Result<Option<Bytes>, LinkError> {
        match self.conn.poll_event() {
            Some(ConnEvent::Message(frame)) => Ok(Some(frame)),
            Some(ConnEvent::Closed { reason }) => Err(LinkError::TransportClosed(reason)),
            Some(ConnEvent::Opened { .. }) => {
                Err(LinkError::Protocol("transport opened twice".into()))
            }
            None if self.eof => Err(LinkError::TransportClosed(
                "the router closed the connection".into(),
            )),
            None => Ok(None),
        }
    }

    /// As [`Link::next_message`], but the message is shown to `visit` where it lies in the
    /// read buffer and `visit`'s answer is returned: no `Bytes` per message. The hot loops use
    /// this; `visit` must extract what it needs (it cannot keep the bytes).
    pub fn next_message_with<R>(
        &mut self,
        visit: impl FnOnce(&[u8]) -> R,
    ) -> Result<Option<R>, LinkError> {
        match self.conn.poll_with(visit) {
            Some(Polled::Message(answer)) => Ok(Some(answer)),
            Some(Polled::Event(ConnEvent::Closed { reason })) => {
                Err(LinkError::TransportClosed(reason))
            }
            Some(Polled::Event(_)) => Err(LinkError::Protocol("transport opened twice".into())),
            None if self.eof => Err(LinkError::TransportClosed(
                "the router closed the connection".into(),
            )),
            None => Ok(None),
        }
    }

    /// Shows every complete message received so far to `visit`, in order, where it lies in
    /// the read buffer, until `visit` breaks. The subscriber's loop: a burst of events is
    /// walked in one call. Fails when the transport ended.
    pub fn for_each_message(
        &mut self,
        visit: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> Result<(), LinkError> {
        match self.conn.poll_each(visit) {
            Some(ConnEvent::Closed { reason }) => Err(LinkError::TransportClosed(reason)),
            Some(_) => Err(LinkError::Protocol("transport opened twice".into())),
            None if self.eof => Err(LinkError::TransportClosed(
                "the router closed the connection".into(),
            )),
            None => Ok(()),
        }
    }

    /// One turn: at most one write of everything queued, then wait until bytes arrive, the
    /// write went out, or `wake_at` passes (`None`: no wake-up; only for callers that have
    /// another bound).
    pub async fn pump(&mut self, wake_at: Option<Instant>) -> Result<Pumped, LinkError> {
        if self.eof {
            return Ok(Pumped::Data); // next_message reports the end
        }
        match wake_at {
            Some(at) => match &mut self.timer {
                Some((armed, timer)) if *armed != at => {
                    timer.reset(at.saturating_duration_since(Instant::now()));
                    *armed = at;
                }
                Some(_) => {}
                None => {
                    self.timer =
                        Some((at, Timer::new(at.saturating_duration_since(Instant::now()))))
                }
            },
            None => self.timer = None,
        }
        let mut wrote = false;
        let Link {
            stream,
            tls,
            conn,
            timer,
            eof,
            ..
        } = self;
        std::future::poll_fn(|cx| {
            if let Some(tls) = tls.as_mut() {
                // Encrypt what the transport queued (as far as the filter's bound allows).
                let taken = tls.send(conn.output());
                conn.consume_output(taken);
            }
            let output = match tls.as_ref() {
                Some(tls) => tls.ciphertext(),
                None => conn.output(),
            };
            if !wrote && !output.is_empty() {
                match stream.poll_write(cx, output) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(LinkError::Io(io::ErrorKind::WriteZero.into())))
                    }
                    Poll::Ready(Ok(n)) => {
                        match tls.as_mut() {
                            Some(tls) => tls.consume_ciphertext(n),
                            None => conn.consume_output(n),
                        }
                        wrote = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(LinkError::Io(e))),
                    Poll::Pending => {}
                }
            }
            let read = READ_BUFFER.with(|buffer| {
                let mut buffer = buffer.borrow_mut();
                let mut got = false;
                for _ in 0..MAX_READS_PER_TURN {
                    match stream.poll_read(cx, &mut buffer[..]) {
                        Poll::Ready(Ok(0)) => {
                            *eof = true;
                            return Ok(true);
                        }
                        Poll::Ready(Ok(n)) => {
                            match tls.as_mut() {
                                Some(tls) => {
                                    let received = tls
                                        .receive(&buffer[..n], |plain| conn.receive(plain))
                                        .map_err(|e| LinkError::Tls(e.to_string()))?;
                                    if received.peer_closed {
                                        *eof = true;
                                        return Ok(true);
                                    }
                                }
                                None => conn.receive(&buffer[..n]),
                            }
                            got = true;
                            if n < buffer.len() {
                                break;
                            }
                        }
                        Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                        Poll::Ready(Err(e)) => return Err(LinkError::Io(e)),
                        Poll::Pending => break,
                    }
                }
                Ok(got)
            });
            match read {
                Ok(true) => return Poll::Ready(Ok(Pumped::Data)),
                Ok(false) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if wrote {
                return Poll::Ready(Ok(Pumped::Wrote));
            }
            if let Some((_, timer)) = timer.as_mut() {
                if Pin::new(timer).poll(cx).is_ready() {
                    return Poll::Ready(Ok(Pumped::Woke));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Pumps once with `deadline` as the wake-up; fails with a timeout once it has passed.
    async fn wait(&mut self, deadline: Instant, what: &'static str) -> Result<(), LinkError> {
        if Instant::now() >= deadline {
            return Err(LinkError::Timeout(what));
        }
        self.pump(Some(deadline)).await.map(drop)
    }

    /// Ends the session politely: GOODBYE, wait for the router's GOODBYE (discarding whatever
    /// else still arrives), close the transport (WebSocket close handshake), close the socket.
    /// Bounded by `deadline`; the socket is closed in every case.
    pub async fn leave(mut self, deadline: Instant) -> Result<(), LinkError> {
        let result = self.goodbye(deadline).await;
        self.conn.close(1000, "");
        // Flush the close frame and give the router a moment to answer it; bounded.
        let close_deadline = deadline.min(Instant::now() + Duration::from_millis(500));
        // RawSocket has no close frame: the socket is simply closed once GOODBYE went out.
        let wait_for_close = self.kind == TransportKind::WebSocket;
        while wait_for_close
            && !self.eof
            && !self.conn.wants_close()
            && Instant::now() < close_deadline
        {
            match self.pump(Some(close_deadline)).await {
                Ok(_) => {
                    if matches!(self.conn.poll_event(), Some(ConnEvent::Closed { .. })) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if let Some(tls) = self.tls.as_mut() {
            // close_notify goes out behind the transport's last bytes.
            let taken = tls.send(self.conn.output());
            self.conn.consume_output(taken);
            if self.conn.output().is_empty() {
                tls.close();
            }
        }
        while self.queued_bytes() > 0 && Instant::now() < close_deadline {
            if self.pump(Some(close_deadline)).await.is_err() {
                break;
            }
        }
        self.stream.shutdown().await;
        result
    }

    async fn goodbye(&mut self, deadline: Instant) -> Result<(), LinkError> {
        let goodbye = Message::Goodbye {
            details: Dict::new(),
            reason: "wamp.close.close_realm".into(),
        };
        self.send(&goodbye)?;
        loop {
            while let Some(frame) = self.next_message()? {
                match wire::decode(self.serializer, &frame) {
                    Ok(Message::Goodbye { .. }) => return Ok(()),
                    Ok(Message::Abort { reason, .. }) => {
                        return Err(LinkError::Abort(reason.into_owned()))
                    }
                    // Results, events, invocations still in the pipe: discarded.
                    Ok(_) => {}
                    Err(e) => {
                        return Err(LinkError::Protocol(format!(
                            "undecodable message while leaving: {e}"
                        )))
                    }
                }
            }
            self.wait(deadline, "the GOODBYE reply").await?;
        }
    }
}

/// HELLO.Details: the roles (with the features the scenario relies on) and the agent.
fn hello_details(roles: Roles) -> Dict<'static> {
    let role = |features: Dict<'static>| {
        let mut role = Dict::new();
        role.insert("features", features);
        Value::from(role)
    };
    let mut all = Dict::new();
    match roles {
        Roles::Caller => all.insert("caller", role(Dict::new())),
        Roles::Callee { shared } => {
            let mut features = Dict::new();
            if shared {
                features.insert("shared_registration", true);
            }
            all.insert("callee", role(features));
        }
        Roles::Publisher => all.insert("publisher", role(Dict::new())),
        Roles::Subscriber => all.insert("subscriber", role(Dict::new())),
        Roles::All => {
            for name in ["caller", "callee", "publisher", "subscriber"] {
                all.insert(name, role(Dict::new()));
            }
        }
    }
    let mut details = Dict::new();
    details.insert("roles", all);
    details.insert(
        "agent",
        concat!("wampring-load/", env!("CARGO_PKG_VERSION")),
    );
    details
}
