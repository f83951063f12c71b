//! Shared support for the real-socket integration tests (`server_basic`, `server_bad_input`,
//! `server_throughput`, `server_fd_limit`). It owns:
//! * [`RouterProcess`]: starts the `wampring` binary on free 127.0.0.1 ports with a temporary
//!   TOML config (optionally with a low RLIMIT_NOFILE, set in the child before exec), waits
//!   (bounded) until both listeners accept, and on drop stops it by PID (SIGTERM, then
//!   SIGKILL), prints its log when the test failed, and fails the test when the router died on
//!   its own. For several shards it reads, from the router's log, which shard
//!   a session landed on ([`RouterProcess::shard_of`]) and joins clients on chosen shards
//!   ([`RouterProcess::join_on_shard`], with `placement = "round-robin"`).
//! * [`TestClient`]: a small blocking WAMP client over `std::net::TcpStream`, driven by the
//!   crate's own `net::ClientConn` (transport) and `wire` (messages). Every read has a deadline,
//!   so a hang becomes a test failure, never an infinite wait.
//! * [`RawWs`] and [`raw_tcp`]: hand-made bytes for the bad-input tests, where the crate's own
//!   client would refuse to produce the broken input.
//! * Value helpers (`s`, `u`, `i`, `bin`, `list`, `dict`) and order-insensitive payload asserts.
#![allow(dead_code)]

pub mod sock;
pub use sock::{ReadTimeout, Sock};

use std::borrow::Cow;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use wampring::net::{ClientConn, ConnEvent, TransportConfig, TransportKind};
use wampring::wire::{self, Dict, Message, OwnedPayload, Payload, Serializer, Value, MAX_ID};

/// Upper bound of any single wait for the router.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a negative check ("nothing arrives") listens.
pub const QUIET: Duration = Duration::from_millis(300);
/// The realm every test config defines.
pub const REALM: &str = "realm1";
/// `max_message_size` of both test listeners.
pub const MAX_MESSAGE_SIZE: usize = 65536;

/// The six transport x serializer combinations.
pub const COMBOS: [(TransportKind, Serializer); 6] = [
    (TransportKind::WebSocket, Serializer::Json),
    (TransportKind::WebSocket, Serializer::MsgPack),
    (TransportKind::WebSocket, Serializer::Cbor),
    (TransportKind::RawSocket, Serializer::Json),
    (TransportKind::RawSocket, Serializer::MsgPack),
    (TransportKind::RawSocket, Serializer::Cbor),
];

// ------------------------------------------------------------------------------------------
// wire adapter: the only place that names the codec's entry points.
// ------------------------------------------------------------------------------------------

/// Encodes one message in `ser`.
pub fn encode(msg: &Message<'_>, ser: Serializer) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode(msg, ser, &mut out)
        .unwrap_or_else(|e| panic!("test bug: cannot encode {msg:?} as {ser}: {e}"));
    out
}

/// Builds an application payload (Arguments, ArgumentsKw) in `ser`.
pub fn payload(ser: Serializer, args: &[Value<'_>], kwargs: Option<&Dict<'_>>) -> OwnedPayload {
    wire::payload_from_args(ser, args, kwargs)
        .unwrap_or_else(|e| panic!("test bug: cannot build a {ser} payload: {e}"))
}

/// Decodes a payload into (Arguments, ArgumentsKw); a missing Arguments is an empty list.
pub fn payload_values(p: &Payload<'_>) -> (Vec<Value<'static>>, Option<Dict<'static>>) {
    let (args, kwargs) = wire::decode_payload_values(p).unwrap_or_else(|e| {
        panic!(
            "payload does not decode: {e} (raw {:?})",
            show(p.ser, p.raw)
        )
    });
    (
        args.into_iter().map(Value::into_owned).collect(),
        kwargs.map(Dict::into_owned),
    )
}

/// Text for panic messages: JSON as text, MessagePack and CBOR as hex.
pub fn show(ser: Serializer, raw: &[u8]) -> String {
    const LIMIT: usize = 400;
    let cut = &raw[..raw.len().min(LIMIT)];
    let more = if raw.len() > LIMIT {
        format!("... ({} bytes)", raw.len())
    } else {
        String::new()
    };
    match ser {
        Serializer::Json => format!("{}{more}", String::from_utf8_lossy(cut)),
        Serializer::MsgPack => format!("msgpack {}{more}", hex::encode(cut)),
        Serializer::Cbor => format!("cbor {}{more}", hex::encode(cut)),
    }
}

// ------------------------------------------------------------------------------------------
// Values
// ------------------------------------------------------------------------------------------

pub fn s(v: &str) -> Value<'static> {
    Value::Str(Cow::Owned(v.to_string()))
}

pub fn u(v: u64) -> Value<'static> {
    Value::UInt(v)
}

/// A negative integer (non-negative ones decode as [`Value::UInt`]).
pub fn i(v: i64) -> Value<'static> {
    assert!(v < 0, "test bug: use u() for non-negative integers");
    Value::Int(v)
}

pub fn bin(v: &[u8]) -> Value<'static> {
    Value::Bin(Cow::Owned(v.to_vec()))
}

pub fn list(v: Vec<Value<'static>>) -> Value<'static> {
    Value::List(v)
}

pub fn dict(entries: Vec<(&str, Value<'static>)>) -> Dict<'static> {
    let mut d = Dict::new();
    for (k, v) in entries {
        d.insert(Cow::Owned(k.to_string()), v);
    }
    d
}

/// Recursively sorts dict keys so comparisons ignore key order (WAMP dicts are unordered).
pub fn norm(v: &Value<'_>) -> Value<'static> {
    match v {
        Value::List(l) => Value::List(l.iter().map(norm).collect()),
        Value::Dict(d) => Value::Dict(norm_dict(d)),
        other => other.clone().into_owned(),
    }
}

pub fn norm_dict(d: &Dict<'_>) -> Dict<'static> {
    let mut entries: Vec<(String, Value<'static>)> =
        d.iter().map(|(k, v)| (k.to_string(), norm(v))).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Dict::with_capacity(entries.len());
    for (k, v) in entries {
        out.push_unchecked(Cow::Owned(k), v);
    }
    out
}

/// Asserts a received payload equals what was sent: same Arguments, same ArgumentsKw, key
/// order ignored. An absent ArgumentsKw and an empty one are the same thing, as are absent and
/// empty Arguments (receivers must accept all arities, digest §1).
pub fn assert_payload(
    what: &str,
    got: &(Vec<Value<'static>>, Option<Dict<'static>>),
    args: &[Value<'_>],
    kwargs: Option<&Dict<'_>>,
) {
    let got_args: Vec<Value<'static>> = got.0.iter().map(norm).collect();
    let want_args: Vec<Value<'static>> = args.iter().map(norm).collect();
    assert_eq!(got_args, want_args, "{what}: Arguments differ");
    let empty = Dict::new();
    let got_kw = norm_dict(got.1.as_ref().unwrap_or(&empty));
    let want_kw = norm_dict(kwargs.unwrap_or(&empty));
    assert_eq!(got_kw, want_kw, "{what}: ArgumentsKw differ");
}

/// A payload exercising every value kind both serializers share: strings (escapes, non-ASCII),
/// ints (negative, 2^53), a float, bool, null, binary, nested lists and dicts.
pub fn rich_payload() -> (Vec<Value<'static>>, Dict<'static>) {
    let args = vec![
        s("hello"),
        s("quote \" backslash \\ newline \n tab \t unicode é ✓ 漢字"),
        u(0),
        u(42),
        i(-7),
        u(MAX_ID),
        Value::Float(1.5),
        Value::Bool(true),
        Value::Bool(false),
        Value::Null,
        bin(&[0, 1, 2, 127, 128, 253, 254, 255]),
        list(vec![
            u(1),
            list(vec![]),
            Value::Dict(dict(vec![("x", s("y"))])),
        ]),
    ];
    let kwargs = dict(vec![
        ("name", s("wampring")),
        (
            "nested",
            Value::Dict(dict(vec![
                ("level", u(2)),
                ("blob", bin(b"\x00binary\xffdata")),
                (
                    "deeper",
                    Value::Dict(dict(vec![("list", list(vec![s("a"), i(-1)]))])),
                ),
            ])),
        ),
        ("empty", Value::Dict(Dict::new())),
    ]);
    (args, kwargs)
}

// ------------------------------------------------------------------------------------------
// Router process
// ------------------------------------------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A running `wampring` process on two free loopback ports (WebSocket and RawSocket).
pub struct RouterProcess {
    child: Child,
    /// The test stopped the router itself ([`RouterProcess::terminate`]).
    stopped_by_test: bool,
    dir: PathBuf,
    log_path: PathBuf,
    pub ws_port: u16,
    pub raw_port: u16,
    pub ws_url: String,
}

fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let b = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

impl RouterProcess {
    /// Starts the router with the standard two listeners and realm `realm1`, plus
    /// `extra_config_toml` appended to the config and `extra_args` on the command line.
    /// Panics (with the router's log) when it does not come up within ~10 s; retries twice with
    /// fresh ports first, in case another process grabbed a port in between.
    pub fn start(extra_config_toml: &str, extra_args: &[&str]) -> RouterProcess {
        Self::start_limited(extra_config_toml, extra_args, None)
    }

    /// [`RouterProcess::start`] with the router's RLIMIT_NOFILE set to `nofile` (soft and
    /// hard) before it runs, so it cannot raise it.
    pub fn start_with_nofile(
        extra_config_toml: &str,
        extra_args: &[&str],
        nofile: u64,
    ) -> RouterProcess {
        Self::start_limited(extra_config_toml, extra_args, Some(nofile))
    }

    fn start_limited(
        extra_config_toml: &str,
        extra_args: &[&str],
        nofile: Option<u64>,
    ) -> RouterProcess {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(extra_config_toml, extra_args, nofile) {
                Ok(r) => return r,
                Err(why) => last = why,
            }
        }
        panic!("the router did not start (3 tries); last try:\n{last}");
    }

    /// [`RouterProcess::start`] with no extras.
    pub fn default_start() -> RouterProcess {
        Self::start("", &[])
    }

    fn try_start(
        extra_config_toml: &str,
        extra_args: &[&str],
        nofile: Option<u64>,
    ) -> Result<RouterProcess, String> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wampring-it-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).expect("create temp dir");
        let (ws_port, raw_port) = free_ports();
        // Extra config goes first so its top-level keys (e.g. `cores`) stay top-level.
        let config = format!(
            r#"{extra_config_toml}

[[listener]]
kind = "websocket"
bind = "127.0.0.1:{ws_port}"
path = "/ws"
serializers = ["json", "msgpack", "cbor"]
max_message_size = {MAX_MESSAGE_SIZE}

[[listener]]
kind = "rawsocket"
bind = "127.0.0.1:{raw_port}"
serializers = ["json", "msgpack", "cbor"]
max_message_size = {MAX_MESSAGE_SIZE}

[[realm]]
name = "{REALM}"
"#
        );
        let config_path = dir.join("wampring.toml");
        fs::write(&config_path, config).expect("write config");
        let log_path = dir.join("router.log");
        let log = fs::File::create(&log_path).expect("create log file");
        let log2 = log.try_clone().expect("clone log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wampring"));
        cmd.arg("--config")
            .arg(&config_path)
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        if std::env::var_os("RUST_LOG").is_none() {
            // The per-session lines (debug) tell the multi-shard tests where a session lives.
            cmd.env("RUST_LOG", "info,wampring::session=debug");
        }
        // If the test binary dies without running Drop (e.g. killed), take the router with it.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some(nofile) = nofile {
                    let limit = libc::rlimit {
                        rlim_cur: nofile,
                        rlim_max: nofile,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| format!("spawn failed: {e}"))?;
        let mut router = RouterProcess {
            child,
            stopped_by_test: false,
            dir,
            log_path,
            ws_port,
            raw_port,
            ws_url: format!("ws://127.0.0.1:{ws_port}/ws"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = router.child.try_wait() {
                let why = format!(
                    "exited with {status} before listening; log:\n{}",
                    router.log()
                );
                let _ = fs::remove_dir_all(&router.dir);
                std::mem::forget(router); // already reaped; nothing left to stop
                return Err(why);
            }
            if accepts(ws_port) && accepts(raw_port) {
                return Ok(router);
            }
            if Instant::now() > deadline {
                let why = format!("ports not accepting after 10 s; log:\n{}", router.log());
                drop(router);
                return Err(why);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn ws_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ws_port))
    }

    pub fn raw_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.raw_port))
    }

    pub fn addr(&self, kind: TransportKind) -> SocketAddr {
        match kind {
            TransportKind::WebSocket => self.ws_addr(),
            TransportKind::RawSocket => self.raw_addr(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The router's stdout+stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_else(|e| format!("<log unreadable: {e}>"))
    }

    /// Panics (with the log) when the router process has exited.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the router process died ({status}); log:\n{}", self.log());
        }
    }

    /// Connects a client over `kind`/`ser` and joins `realm1`.
    pub fn join(&self, name: &str, kind: TransportKind, ser: Serializer) -> TestClient {
        let mut c = TestClient::connect(kind, ser, self.addr(kind));
        c.name = name.to_string();
        c.hello(REALM);
        c
    }

    /// Starts a router with `cores` shards and round-robin placement, so that consecutive
    /// connections land on consecutive shards.
    pub fn start_shards(cores: usize) -> RouterProcess {
        let cores = cores.to_string();
        Self::start("", &["--cores", &cores, "--placement", "round-robin"])
    }

    /// The shard the router reports for WAMP session `session` (its info line "session <id>
    /// opened on shard <k>", written before the WELCOME is sent).
    pub fn shard_of(&self, session: u64) -> Option<usize> {
        let needle = format!("session {session} opened on shard ");
        let log = self.log();
        let at = log.find(&needle)? + needle.len();
        let digits: String = log[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    }

    /// Joins a client that the router placed on shard `shard` (round-robin placement: at most
    /// one full turn of connections is needed; the ones that landed elsewhere are closed).
    /// The placement is checked in the router's log, not assumed.
    pub fn join_on_shard(
        &self,
        name: &str,
        kind: TransportKind,
        ser: Serializer,
        shard: usize,
    ) -> TestClient {
        const MAX_TRIES: usize = 16;
        for _ in 0..MAX_TRIES {
            let client = self.join(name, kind, ser);
            let landed = self.shard_of(client.session).unwrap_or_else(|| {
                panic!(
                    "{name}: no \"session {} opened on shard\" line in the log:\n{}",
                    client.session,
                    self.log()
                )
            });
            if landed == shard {
                return client;
            }
            client.disconnect();
        }
        panic!("{name}: could not place a session on shard {shard} in {MAX_TRIES} connections");
    }

    /// The config file the router was started with (a reload test rewrites it).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("wampring.toml")
    }

    /// Sends SIGHUP (reload the configuration) and waits at most `limit` until the log has
    /// one more occurrence of `marker` than before; false on timeout.
    pub fn reload(&self, marker: &str, limit: Duration) -> bool {
        let before = self.log().matches(marker).count();
        // SAFETY: plain kill(2) on our own, not yet reaped child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP);
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.log().matches(marker).count() > before {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends SIGTERM and waits at most `limit` for the exit; `None` if still running. The
    /// router then counts as stopped by the test (dropping it does not fail the test).
    pub fn terminate(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.stopped_by_test = true;
        // SAFETY: plain kill(2) on our own, not yet reaped child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let exited_on_its_own = self.child.try_wait().ok().flatten();
        if exited_on_its_own.is_none() {
            // The child is not reaped yet, so its PID cannot have been reused.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill(); // SIGKILL by PID
                let _ = self.child.wait();
            }
        }
        let log = self.log();
        let _ = fs::remove_dir_all(&self.dir);
        if std::thread::panicking() {
            eprintln!(
                "----- router log (pid {}) -----\n{log}\n----- end of router log -----",
                self.pid()
            );
        } else if let (Some(status), false) = (exited_on_its_own, self.stopped_by_test) {
            panic!("the router process exited during the test ({status}); log:\n{log}");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Test client
// ------------------------------------------------------------------------------------------

/// One received WAMP message: the frame bytes, decoded on access.
#[derive(Clone)]
pub struct Msg {
    pub ser: Serializer,
    pub frame: Bytes,
}

impl Msg {
    pub fn get(&self) -> Message<'_> {
        wire::decode(self.ser, &self.frame).unwrap_or_else(|e| {
            panic!(
                "router sent a message the codec rejects ({e}): {}",
                show(self.ser, &self.frame)
            )
        })
    }

    pub fn code(&self) -> u64 {
        self.get().code()
    }

    /// Arguments and ArgumentsKw of a message that carries a payload.
    pub fn payload(&self) -> (Vec<Value<'static>>, Option<Dict<'static>>) {
        let m = self.get();
        let p = m
            .payload()
            .unwrap_or_else(|| panic!("{} carries no payload", m.name()));
        payload_values(p)
    }
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&show(self.ser, &self.frame))
    }
}

/// What the next read produced.
#[derive(Debug)]
pub enum Incoming {
    Msg(Msg),
    /// The transport reported it is finished (close frame, transport error).
    Closed(String),
    /// TCP EOF.
    Eof,
    /// TCP error (reset).
    Reset(String),
    /// Nothing within the wait.
    Timeout,
}

/// An INVOCATION as the callee saw it.
#[derive(Debug)]
pub struct Invocation {
    pub request: u64,
    pub registration: u64,
    pub details: Dict<'static>,
    pub payload: (Vec<Value<'static>>, Option<Dict<'static>>),
}

/// An EVENT as the subscriber saw it.
#[derive(Debug)]
pub struct Event {
    pub subscription: u64,
    pub publication: u64,
    pub details: Dict<'static>,
    pub payload: (Vec<Value<'static>>, Option<Dict<'static>>),
}

/// An ERROR as the client saw it.
#[derive(Debug)]
pub struct ErrorReply {
    pub request_type: u64,
    pub request: u64,
    pub error: String,
    pub payload: (Vec<Value<'static>>, Option<Dict<'static>>),
}

/// A blocking WAMP client for tests.
pub struct TestClient {
    pub name: String,
    pub kind: TransportKind,
    pub ser: Serializer,
    /// The WELCOME session id once joined.
    pub session: u64,
    /// TCP, a Unix socket, or either behind TLS (`sock.rs`).
    stream: Sock,
    conn: ClientConn,
    next_request: u64,
    rbuf: Vec<u8>,
}

impl TestClient {
    /// Opens a TCP connection and completes the transport handshake for `serializer`.
    pub fn connect(kind: TransportKind, serializer: Serializer, addr: SocketAddr) -> TestClient {
        let stream = Sock::tcp(addr, IO_TIMEOUT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Self::connect_over(kind, serializer, stream, &addr.to_string())
    }

    /// Completes the transport handshake for `serializer` over an open socket (TCP, Unix,
    /// TLS); `host` is the WebSocket Host header.
    pub fn connect_over(
        kind: TransportKind,
        serializer: Serializer,
        stream: Sock,
        host: &str,
    ) -> TestClient {
        let config = TransportConfig {
            max_message_size: 16 * 1024 * 1024,
            max_outbound_bytes: 64 * 1024 * 1024,
            serializers: vec![serializer],
            ws_path: "/ws".to_string(),
            ws_host: host.to_string(),
            ..TransportConfig::default()
        };
        let conn = ClientConn::new(kind, serializer, &config);
        let mut c = TestClient {
            name: format!("{kind:?}/{serializer}"),
            kind,
            ser: serializer,
            session: 0,
            stream,
            conn,
            next_request: 1,
            rbuf: vec![0; 64 * 1024],
        };
        c.flush()
            .unwrap_or_else(|e| panic!("{}: writing the handshake: {e}", c.name));
        let deadline = Instant::now() + IO_TIMEOUT;
        match c.next_event(deadline) {
            Ev::Conn(ConnEvent::Opened { serializer: got }) => {
                assert_eq!(
                    got, serializer,
                    "{}: handshake negotiated another serializer",
                    c.name
                );
                c
            }
            other => panic!("{}: transport handshake failed: {other:?}", c.name),
        }
    }

    /// Writes everything the transport has queued.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.conn.output().is_empty() {
            let n = self.stream.write(self.conn.output())?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "socket wrote 0 bytes",
                ));
            }
            self.conn.consume_output(n);
        }
        Ok(())
    }

    fn next_event(&mut self, deadline: Instant) -> Ev {
        loop {
            if let Some(ev) = self.conn.poll_event() {
                let _ = self.flush(); // e.g. a pong or a close reply
                return Ev::Conn(ev);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ev::Timeout;
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(wait)).unwrap();
            match self.stream.read(&mut self.rbuf) {
                Ok(0) => return Ev::Eof,
                Ok(n) => {
                    let (conn, buf) = (&mut self.conn, &self.rbuf);
                    conn.receive(&buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Ev::Reset(e.to_string()),
            }
        }
    }

    /// The next thing that happens within `within`.
    pub fn next_incoming(&mut self, within: Duration) -> Incoming {
        let deadline = Instant::now() + within;
        loop {
            return match self.next_event(deadline) {
                Ev::Conn(ConnEvent::Message(frame)) => Incoming::Msg(Msg {
                    ser: self.ser,
                    frame,
                }),
                Ev::Conn(ConnEvent::Opened { .. }) => continue,
                Ev::Conn(ConnEvent::Closed { reason }) => Incoming::Closed(reason),
                Ev::Eof => Incoming::Eof,
                Ev::Reset(e) => Incoming::Reset(e),
                Ev::Timeout => Incoming::Timeout,
            };
        }
    }

    /// The next message; panics on close or after [`IO_TIMEOUT`].
    pub fn recv(&mut self) -> Msg {
        match self.next_incoming(IO_TIMEOUT) {
            Incoming::Msg(m) => m,
            Incoming::Timeout => panic!("{}: no message within {IO_TIMEOUT:?}", self.name),
            other => panic!(
                "{}: expected a message, the transport ended: {other:?}",
                self.name
            ),
        }
    }

    /// Asserts that nothing arrives (and the transport stays open) for `within`.
    pub fn expect_no_message(&mut self, within: Duration) {
        match self.next_incoming(within) {
            Incoming::Timeout => {}
            other => panic!(
                "{}: expected silence for {within:?}, got {other:?}",
                self.name
            ),
        }
    }

    /// Asserts the router closes the transport (close frame and/or TCP EOF/reset) within
    /// [`IO_TIMEOUT`] without sending another WAMP message first; then that TCP really ends.
    pub fn expect_closed(&mut self) {
        let deadline = Instant::now() + IO_TIMEOUT;
        match self.next_event(deadline) {
            Ev::Conn(ConnEvent::Message(frame)) => panic!(
                "{}: expected the transport to close, got message {}",
                self.name,
                show(self.ser, &frame)
            ),
            Ev::Conn(ConnEvent::Closed { .. }) => {}
            Ev::Eof | Ev::Reset(_) => return,
            Ev::Timeout => panic!("{}: transport still open after {IO_TIMEOUT:?}", self.name),
            Ev::Conn(ConnEvent::Opened { .. }) => panic!("{}: unexpected Opened", self.name),
        }
        // A close handshake happened; the router must now drop the TCP connection.
        assert!(
            wait_eof(&mut self.stream, deadline),
            "{}: the router sent a close but kept the TCP connection open",
            self.name
        );
    }

    fn next_req(&mut self) -> u64 {
        let r = self.next_request;
        self.next_request += 1;
        r
    }

    /// Sends one message; panics when the socket is gone.
    pub fn send(&mut self, msg: &Message<'_>) {
        let bytes = encode(msg, self.ser);
        self.send_raw(&bytes);
    }

    /// Sends one WAMP-message-sized frame of arbitrary bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes)
            .unwrap_or_else(|e| panic!("{}: send failed: {e}", self.name));
    }

    pub fn try_send_raw(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.conn
            .send_message(bytes)
            .map_err(|e| format!("transport refused: {e:?}"))?;
        self.flush().map_err(|e| e.to_string())
    }

    /// Closes the TCP connection abruptly (both directions), as a crashed client would.
    pub fn disconnect(mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    // ---- session ---------------------------------------------------------------------------

    pub fn hello_msg(realm: &str) -> Message<'_> {
        let features = |keys: &[&str]| {
            let mut f = Dict::new();
            for k in keys {
                f.insert(Cow::Owned(k.to_string()), true);
            }
            Value::Dict(dict(vec![("features", Value::Dict(f))]))
        };
        let roles = dict(vec![
            ("caller", features(&[])),
            ("callee", features(&[])),
            ("publisher", features(&["publisher_exclusion"])),
            ("subscriber", features(&[])),
        ]);
        let details = dict(vec![
            ("roles", Value::Dict(roles)),
            ("agent", s("wampring-tests")),
        ]);
        Message::Hello {
            realm: Cow::Borrowed(realm),
            details,
        }
    }

    /// Sends HELLO and returns the raw reply.
    pub fn hello_reply(&mut self, realm: &str) -> Msg {
        self.send(&Self::hello_msg(realm));
        self.recv()
    }

    /// Joins `realm`; returns (and stores) the session id. Panics unless WELCOME.
    pub fn hello(&mut self, realm: &str) -> u64 {
        let m = self.hello_reply(realm);
        let (session, _) = expect_welcome(&m, &self.name);
        self.session = session;
        session
    }

    /// The WELCOME details of a fresh join (for role checks).
    pub fn hello_details(&mut self, realm: &str) -> Dict<'static> {
        let m = self.hello_reply(realm);
        let (session, details) = expect_welcome(&m, &self.name);
        self.session = session;
        details
    }

    pub fn goodbye(&mut self) {
        self.send(&Message::Goodbye {
            details: Dict::new(),
            reason: Cow::Borrowed("wamp.close.close_realm"),
        });
    }

    // ---- requests --------------------------------------------------------------------------

    pub fn send_register(&mut self, procedure: &str) -> u64 {
        let request = self.next_req();
        self.send(&Message::Register {
            request,
            options: Dict::new(),
            procedure: Cow::Borrowed(procedure),
        });
        request
    }

    /// REGISTER and expect REGISTERED; returns the registration id.
    pub fn register(&mut self, procedure: &str) -> u64 {
        let request = self.send_register(procedure);
        let m = self.recv();
        match m.get() {
            Message::Registered {
                request: r,
                registration,
            } if r == request => {
                assert_id(registration, "registration id");
                registration
            }
            _ => panic!(
                "{}: REGISTER {procedure}: expected REGISTERED {request}, got {m:?}",
                self.name
            ),
        }
    }

    pub fn send_unregister(&mut self, registration: u64) -> u64 {
        let request = self.next_req();
        self.send(&Message::Unregister {
            request,
            registration,
        });
        request
    }

    pub fn send_subscribe(&mut self, topic: &str) -> u64 {
        let request = self.next_req();
        self.send(&Message::Subscribe {
            request,
            options: Dict::new(),
            topic: Cow::Borrowed(topic),
        });
        request
    }

    /// SUBSCRIBE and expect SUBSCRIBED; returns the subscription id.
    pub fn subscribe(&mut self, topic: &str) -> u64 {
        let request = self.send_subscribe(topic);
        let m = self.recv();
        match m.get() {
            Message::Subscribed {
                request: r,
                subscription,
            } if r == request => {
                assert_id(subscription, "subscription id");
                subscription
            }
            _ => panic!(
                "{}: SUBSCRIBE {topic}: expected SUBSCRIBED {request}, got {m:?}",
                self.name
            ),
        }
    }

    pub fn send_unsubscribe(&mut self, subscription: u64) -> u64 {
        let request = self.next_req();
        self.send(&Message::Unsubscribe {
            request,
            subscription,
        });
        request
    }

    /// UNSUBSCRIBE and expect UNSUBSCRIBED.
    pub fn unsubscribe(&mut self, subscription: u64) {
        let request = self.send_unsubscribe(subscription);
        let m = self.recv();
        match m.get() {
            Message::Unsubscribed {
                request: r,
                details: None,
            } if r == request => {}
            _ => panic!("{}: expected UNSUBSCRIBED {request}, got {m:?}", self.name),
        }
    }

    /// Sends CALL; returns its request id.
    pub fn call(&mut self, procedure: &str, args: &[Value<'_>], kwargs: Option<&Dict<'_>>) -> u64 {
        let request = self.next_req();
        let p = payload(self.ser, args, kwargs);
        self.send(&Message::Call {
            request,
            options: Dict::new(),
            procedure: Cow::Borrowed(procedure),
            payload: p.as_payload(),
        });
        request
    }

    /// Sends PUBLISH; returns its request id.
    pub fn publish(
        &mut self,
        topic: &str,
        options: Dict<'_>,
        args: &[Value<'_>],
        kwargs: Option<&Dict<'_>>,
    ) -> u64 {
        let request = self.next_req();
        let p = payload(self.ser, args, kwargs);
        self.send(&Message::Publish {
            request,
            options,
            topic: Cow::Borrowed(topic),
            payload: p.as_payload(),
        });
        request
    }

    /// YIELD for an INVOCATION.
    pub fn yield_(&mut self, invocation: u64, args: &[Value<'_>], kwargs: Option<&Dict<'_>>) {
        let p = payload(self.ser, args, kwargs);
        self.send(&Message::Yield {
            request: invocation,
            options: Dict::new(),
            payload: p.as_payload(),
        });
    }

    /// ERROR for an INVOCATION.
    pub fn error_invocation(
        &mut self,
        invocation: u64,
        error: &str,
        args: &[Value<'_>],
        kwargs: Option<&Dict<'_>>,
    ) {
        let p = payload(self.ser, args, kwargs);
        self.send(&Message::Error {
            request_type: wire::code::INVOCATION,
            request: invocation,
            details: Dict::new(),
            error: Cow::Borrowed(error),
            payload: p.as_payload(),
        });
    }

    // ---- expectations ----------------------------------------------------------------------

    pub fn expect_invocation(&mut self) -> Invocation {
        let m = self.recv();
        match m.get() {
            Message::Invocation {
                request,
                registration,
                details,
                ..
            } => Invocation {
                request,
                registration,
                details: details.into_owned(),
                payload: m.payload(),
            },
            _ => panic!("{}: expected INVOCATION, got {m:?}", self.name),
        }
    }

    /// Expects RESULT for `request`; returns its payload.
    pub fn expect_result(&mut self, request: u64) -> (Vec<Value<'static>>, Option<Dict<'static>>) {
        let m = self.recv();
        match m.get() {
            Message::Result { request: r, .. } if r == request => m.payload(),
            _ => panic!("{}: expected RESULT {request}, got {m:?}", self.name),
        }
    }

    /// Expects ERROR for (`request_type`, `request`).
    pub fn expect_error(&mut self, request_type: u64, request: u64) -> ErrorReply {
        let m = self.recv();
        match m.get() {
            Message::Error {
                request_type: t,
                request: r,
                error,
                ..
            } if t == request_type && r == request => ErrorReply {
                request_type: t,
                request: r,
                error: error.to_string(),
                payload: m.payload(),
            },
            _ => panic!(
                "{}: expected ERROR for {} {request}, got {m:?}",
                self.name,
                wire::code_name(request_type)
            ),
        }
    }

    /// Expects ERROR for (`request_type`, `request`) with URI `uri`.
    pub fn expect_error_uri(&mut self, request_type: u64, request: u64, uri: &str) -> ErrorReply {
        let e = self.expect_error(request_type, request);
        assert_eq!(e.error, uri, "{}: wrong error URI", self.name);
        e
    }

    pub fn expect_event(&mut self) -> Event {
        let m = self.recv();
        match m.get() {
            Message::Event {
                subscription,
                publication,
                details,
                ..
            } => Event {
                subscription,
                publication,
                details: details.into_owned(),
                payload: m.payload(),
            },
            _ => panic!("{}: expected EVENT, got {m:?}", self.name),
        }
    }

    /// Expects PUBLISHED for `request`; returns the publication id.
    pub fn expect_published(&mut self, request: u64) -> u64 {
        let m = self.recv();
        match m.get() {
            Message::Published {
                request: r,
                publication,
            } if r == request => {
                assert_id(publication, "publication id");
                publication
            }
            _ => panic!("{}: expected PUBLISHED {request}, got {m:?}", self.name),
        }
    }

    /// Expects ABORT; returns its reason URI.
    pub fn expect_abort(&mut self) -> String {
        let m = self.recv();
        match m.get() {
            Message::Abort { reason, .. } => reason.to_string(),
            _ => panic!("{}: expected ABORT, got {m:?}", self.name),
        }
    }
}

#[derive(Debug)]
enum Ev {
    Conn(ConnEvent),
    Eof,
    Reset(String),
    Timeout,
}

/// Reads and discards until TCP EOF/reset; false if the deadline passes first.
pub fn wait_eof(stream: &mut impl ReadTimeout, deadline: Instant) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        stream.set_read_timeout(Some(deadline - now)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

pub fn assert_id(id: u64, what: &str) {
    assert!(
        (1..=MAX_ID).contains(&id),
        "{what} {id} is outside [1, 2^53]"
    );
}

fn expect_welcome(m: &Msg, who: &str) -> (u64, Dict<'static>) {
    match m.get() {
        Message::Welcome { session, details } => {
            assert_id(session, "session id");
            (session, details.into_owned())
        }
        _ => panic!("{who}: expected WELCOME, got {m:?}"),
    }
}

// ------------------------------------------------------------------------------------------
// Witness: a well-behaved callee/caller pair that must keep working through bad input.
// ------------------------------------------------------------------------------------------

pub const WITNESS_PROCEDURE: &str = "com.witness.echo";

/// A registered callee (WebSocket JSON) and a caller (RawSocket MessagePack), joined before the
/// bad input; [`Witness::check`] makes one call through the router and asserts the RESULT.
pub struct Witness {
    pub callee: TestClient,
    pub caller: TestClient,
    calls: u64,
}

impl Witness {
    pub fn new(router: &RouterProcess) -> Witness {
        let mut callee = router.join("witness-callee", TransportKind::WebSocket, Serializer::Json);
        callee.register(WITNESS_PROCEDURE);
        let caller = router.join(
            "witness-caller",
            TransportKind::RawSocket,
            Serializer::MsgPack,
        );
        let mut w = Witness {
            callee,
            caller,
            calls: 0,
        };
        w.check("before the bad input");
        w
    }

    pub fn check(&mut self, when: &str) {
        self.calls += 1;
        let args = [u(self.calls), s("witness")];
        let req = self.caller.call(WITNESS_PROCEDURE, &args, None);
        let inv = self.callee.expect_invocation();
        assert_payload(
            &format!("witness INVOCATION {when}"),
            &inv.payload,
            &args,
            None,
        );
        let (a, k) = inv.payload;
        self.callee.yield_(inv.request, &a, k.as_ref());
        let got = self.caller.expect_result(req);
        assert_payload(&format!("witness RESULT {when}"), &got, &args, None);
    }
}

// ------------------------------------------------------------------------------------------
// Raw bytes: bad-input helpers
// ------------------------------------------------------------------------------------------

/// A plain TCP connection with a read timeout.
pub fn raw_tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Reads exactly `n` bytes within [`IO_TIMEOUT`]; `Err` describes EOF/timeout.
pub fn read_exact_timeout(stream: &mut TcpStream, n: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; n];
    let mut got = 0;
    let deadline = Instant::now() + IO_TIMEOUT;
    while got < n {
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("timeout after {got} of {n} bytes"));
        }
        stream.set_read_timeout(Some(deadline - now)).unwrap();
        match stream.read(&mut out[got..]) {
            Ok(0) => return Err(format!("EOF after {got} of {n} bytes: {:?}", &out[..got])),
            Ok(k) => got += k,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{e} after {got} of {n} bytes")),
        }
    }
    Ok(out)
}

/// Reads until `\r\n\r\n` (an HTTP response head) within [`IO_TIMEOUT`]; returns the head and
/// whatever followed it.
pub fn read_http_head(stream: &mut TcpStream) -> Result<(String, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos + 4]).to_string();
            return Ok((head, buf[pos + 4..].to_vec()));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "no complete HTTP head within {IO_TIMEOUT:?}: {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        stream.set_read_timeout(Some(deadline - now)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(format!(
                    "EOF before a complete HTTP head: {:?}",
                    String::from_utf8_lossy(&buf)
                ))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "{e} before a complete HTTP head: {:?}",
                    String::from_utf8_lossy(&buf)
                ))
            }
        }
    }
}

/// The HTTP status code of a response head.
pub fn http_status(head: &str) -> (u16, String) {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    assert!(
        version.starts_with("HTTP/1."),
        "not an HTTP response: {line:?}"
    );
    let code = parts
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status code: {line:?}"));
    (code, parts.next().unwrap_or("").trim().to_string())
}

pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub fn ws_upgrade_request(port: u16, protocol: Option<&str>) -> String {
    let proto = protocol
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n{proto}\r\n"
    )
}

/// A frame the server sent.
#[derive(Debug)]
pub struct WsFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// A hand-rolled WebSocket client that can send broken frames.
pub struct RawWs {
    pub stream: TcpStream,
    pending: Vec<u8>,
}

impl RawWs {
    /// Upgrades with subprotocol `protocol`; asserts 101 and the right accept key.
    pub fn connect(port: u16, protocol: &str) -> RawWs {
        let mut stream = raw_tcp(SocketAddr::from(([127, 0, 0, 1], port)));
        stream
            .write_all(ws_upgrade_request(port, Some(protocol)).as_bytes())
            .unwrap();
        let (head, rest) =
            read_http_head(&mut stream).unwrap_or_else(|e| panic!("raw ws upgrade: {e}"));
        let (code, _) = http_status(&head);
        assert_eq!(code, 101, "raw ws upgrade refused: {head}");
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains(&WS_ACCEPT.to_ascii_lowercase()),
            "bad Sec-WebSocket-Accept: {head}"
        );
        assert!(
            lower.contains(&format!("sec-websocket-protocol: {protocol}")),
            "subprotocol not echoed: {head}"
        );
        RawWs {
            stream,
            pending: rest,
        }
    }

    /// Encodes one masked client frame.
    pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        out.push(if fin { 0x80 } else { 0 } | opcode);
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let mask = [0x37, 0xFA, 0x21, 0x3D];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// Writes bytes; errors (the router may already have closed) are returned, not panicked.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.write(&Self::frame(fin, opcode, payload))
    }

    fn fill(&mut self, n: usize, deadline: Instant) -> Result<(), String> {
        let mut chunk = [0u8; 8192];
        while self.pending.len() < n {
            let now = Instant::now();
            if now >= deadline {
                return Err("timeout".into());
            }
            self.stream.set_read_timeout(Some(deadline - now)).unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("EOF".into()),
                Ok(k) => self.pending.extend_from_slice(&chunk[..k]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// The next server frame within [`IO_TIMEOUT`]; `Err` says EOF/timeout/reset.
    pub fn read_frame(&mut self) -> Result<WsFrame, String> {
        let deadline = Instant::now() + IO_TIMEOUT;
        self.fill(2, deadline)?;
        let (b0, b1) = (self.pending[0], self.pending[1]);
        assert_eq!(b1 & 0x80, 0, "server frames must not be masked");
        let (len, hdr) = match b1 & 0x7F {
            126 => {
                self.fill(4, deadline)?;
                (
                    u16::from_be_bytes([self.pending[2], self.pending[3]]) as usize,
                    4,
                )
            }
            127 => {
                self.fill(10, deadline)?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.pending[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            n => (n as usize, 2),
        };
        self.fill(hdr + len, deadline)?;
        let payload = self.pending[hdr..hdr + len].to_vec();
        self.pending.drain(..hdr + len);
        Ok(WsFrame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0F,
            payload,
        })
    }

    /// Reads frames until a close frame; returns its status code (None for an empty close).
    /// Panics on EOF/timeout before the close frame.
    pub fn expect_close_frame(&mut self) -> Option<u16> {
        loop {
            let f = self
                .read_frame()
                .unwrap_or_else(|e| panic!("expected a WebSocket close frame, got {e}"));
            if f.opcode == 0x8 {
                if f.payload.len() >= 2 {
                    return Some(u16::from_be_bytes([f.payload[0], f.payload[1]]));
                }
                return None;
            }
        }
    }

    /// Asserts TCP ends within [`IO_TIMEOUT`] (after a close handshake: we echo the close).
    pub fn expect_eof(&mut self) {
        let _ = self.send_frame(true, 0x8, &1000u16.to_be_bytes());
        let deadline = Instant::now() + IO_TIMEOUT;
        assert!(
            wait_eof(&mut self.stream, deadline),
            "the router kept the TCP connection open"
        );
    }
}
