//! Interop tests against real third-party WAMP clients: Autobahn|Python and Autobahn|JS.
//!
//! Owned by the interop test harness (this file and `tests/interop/**`). Each `#[test]` starts
//! its own `wampring` (the binary built by cargo) on free 127.0.0.1 ports with a temporary TOML
//! config (two realms: `realm1`, which the clients join, and `realm1.disclosed`, which discloses
//! every caller and every publisher; see [`router_config`]), waits (bounded) until both listeners accept, then runs
//! one client script (`tests/interop/client.py` or `client.js`) for one transport x serializer
//! combination and asserts that it exits 0. On failure the panic message carries the client's
//! output (each scenario step prints `ok <step>` or `FAIL <step>: ...`) and the router's log.
//! The clients are installed on first use by `tests/interop/setup.sh` into git-ignored folders
//! (`tests/interop/.venv`, `tests/interop/node_modules`); it needs `python3` (3.11), `node` (20),
//! `npm` and access to PyPI and the npm registry.
//!
//! Processes: the router and the clients are killed by PID when their guard drops (also on
//! panic), and they get `PR_SET_PDEATHSIG` so that not even a killed test binary leaves them
//! behind. Every wait is bounded.
//!
//! To change the config format, edit [`router_config`]; to start the router with extra
//! arguments (e.g. `--cores 2`), pass them in the last argument of `interop_test!`.
//!
//! Shutdown: [`run_shutdown`] starts a router, has a client join two sessions in
//! `--mode shutdown`, sends the router SIGTERM, and asserts that the router exits 0 within
//! [`SHUTDOWN_EXIT_BOUND`] having closed every connection in time, and that the client saw
//! GOODBYE `wamp.close.system_shutdown` and a clean transport close on each session.
//!
//! TLS and Unix sockets: [`run_secure`] starts a router that also has TLS listeners (wss, rss;
//! certificate made by rcgen into the router's temporary directory, passed to the clients with
//! `--tls-ca`) and Unix socket listeners (`ws+unix:`, `rs+unix:`) beside the plain ones, and
//! runs one client over one of them ([`SecureUrl`]).

use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the router may take until both listeners accept connections.
const ROUTER_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the router may take to exit after SIGTERM before it gets SIGKILL.
const ROUTER_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for one client run (the scripts have their own 30 s hard timeout).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(75);
/// Upper bound for `setup.sh` (a first install downloads from PyPI and npm).
const SETUP_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// How long the router may take to exit after SIGTERM with clients connected: its
/// `limits.shutdown_grace_ms` (1 s by default) plus start-up of the stop and teardown.
const SHUTDOWN_EXIT_BOUND: Duration = Duration::from_secs(3);
/// How long the shutdown client may take to join its sessions (and print `ready`).
const SHUTDOWN_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts to start the router (a free port can be taken by someone else between our probe
/// and the router's bind).
const ROUTER_START_ATTEMPTS: usize = 3;
/// The realm the clients join.
const REALM: &str = "realm1";
/// A second realm, configured with `disclose_caller = true` and `disclose_publisher = true`: every
/// INVOCATION there carries the caller's identity whatever caller and callee asked, and every
/// EVENT the publisher's whatever the publisher asked (the clients' `realm_discloses_callers` and
/// `realm_discloses_publishers` steps, which get its name with `--disclosed-realm`).
const DISCLOSED_REALM: &str = "realm1.disclosed";

// ------------------------------------------------------------------------------------------
// Router config: the one place that knows wampring's config format.
// ------------------------------------------------------------------------------------------

/// The TOML config for a router with a WebSocket listener at `ws` (path `/ws`), a RawSocket
/// listener at `rs`, both with JSON, MessagePack and CBOR, the subscription limit
/// [`SUBSCRIPTION_LIMIT`], and two realms: [`REALM`] (`realm1`, default settings: a caller is
/// disclosed only when it or the callee asks, a publisher only when it asks) and
/// [`DISCLOSED_REALM`] (`realm1.disclosed`, with `disclose_caller = true` and
/// `disclose_publisher = true`). `realm1` keeps the event history of three topics (the clients'
/// `event_history` step): `com.interop.history.exact`, the prefix `com.interop.history.pfx` and
/// the wildcard `com.interop.history..wild` (its newest 3 events). The admin listener at
/// `admin` serves the metrics each run checks afterwards ([`check_metrics`]).
fn router_config(ws: SocketAddr, rs: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"# written by tests/interop.rs
[admin]
bind = "{admin}"

[[listener]]
kind = "websocket"
bind = "{ws}"
path = "/ws"
serializers = ["json", "msgpack", "cbor"]
authmethods = {AUTHMETHODS}

[[listener]]
kind = "rawsocket"
bind = "{rs}"
serializers = ["json", "msgpack", "cbor"]
authmethods = {AUTHMETHODS}

[limits]
max_subscriptions_per_session = {SUBSCRIPTION_LIMIT}

[[realm]]
name = "{REALM}"

[[realm.history]]
uri = "com.interop.history.exact"

[[realm.history]]
uri = "com.interop.history.pfx"
match = "prefix"

[[realm.history]]
uri = "com.interop.history..wild"
match = "wildcard"
limit = 3

{PRINCIPALS}
[[realm]]
name = "{DISCLOSED_REALM}"
disclose_caller = true
disclose_publisher = true

[[realm]]
name = "{SECURED_REALM}"
{PRINCIPALS}
[[realm.role]]
name = "user"
[[realm.role.permission]]
uri = "com.secured.user."
match = "prefix"
allow = ["call", "subscribe"]

[[realm.role]]
name = "backend"
[[realm.role.permission]]
uri = "com.secured."
match = "prefix"
allow = ["register", "call", "publish", "subscribe"]
disclose_caller = true

[[realm.role]]
name = "admin"
[[realm.role.permission]]
uri = "wamp.session."
match = "prefix"
allow = ["call"]

[[realm.role]]
name = "anonymous"

[[realm]]
name = "{DYNAMIC_REALM}"

[realm.authenticator]
procedure = "com.interop.authenticate"
realm = "{REALM}"
methods = ["ticket"]

[[realm.role]]
name = "checked"
authorizer = "com.interop.authorize"

[[realm.role]]
name = "anonymous"
[[realm.role.permission]]
uri = "com.interop."
match = "prefix"
allow = ["register"]
"#
    )
}

/// A realm whose tickets a Python callee checks (`com.interop.authenticate`, registered in
/// `realm1`) and whose role `checked` a Python callee authorizes (`com.interop.authorize`,
/// registered in this realm by an anonymous session): the client's `--dynamic-realm` steps.
const DYNAMIC_REALM: &str = "realm1.dynamic";

/// Every method the clients' authentication steps use (`--auth`).
const AUTHMETHODS: &str = r#"["anonymous", "ticket", "wampcra", "cryptosign", "wamp-scram"]"#;

/// A realm with roles (the clients' authorization steps): `user` may call and subscribe under
/// `com.secured.user.`, `backend` may do everything under `com.secured.` and discloses its
/// callers, `admin` may call the session meta API, `anonymous` may do nothing.
const SECURED_REALM: &str = "realm1.secured";

/// The principals of `realm1` and [`SECURED_REALM`], as the clients' `--auth` steps know them:
/// joe (ticket in the clear), ann (ticket as an argon2id hash), cra (WAMP-CRA secret in the
/// clear), salty (salted WAMP-CRA), dev (Cryptosign; the private key is in the scripts), sam
/// (WAMP-SCRAM, argon2id with a small cost so that the client's derivation is quick). Made
/// with `wampring auth …`.
const PRINCIPALS: &str = r#"
[[realm.principal]]
authid = "joe"
role = "user"
ticket = "joe-ticket"

[[realm.principal]]
authid = "ann"
role = "user"
ticket_hash = "$argon2id$v=19$m=19456,t=2,p=1$Dn/fh0gWS40ZY3bIYByVgg$eeX379+F4GmrWgXybz3W7sZwPAnHX8Cd3Q4S/r6ERCw"

[[realm.principal]]
authid = "cra"
role = "backend"
wampcra_secret = "cra-secret"

[[realm.principal]]
authid = "salty"
role = "backend"
wampcra = { salt = "pepper", iterations = 100, keylen = 32, key = "ZLUmZZGU7WwaGPCX68RSiaDdwFSL9uHJZNFtaWzTn5E=" }

[[realm.principal]]
authid = "dev"
role = "backend"
cryptosign = ["beccd2f146fdd5a9ff5dad42c054a3780af028f9d2ac01a543358e839d62395d"]

[[realm.principal]]
authid = "sam"
role = "admin"
scram = { kdf = "argon2id-13", iterations = 16, memory = 512, salt = "73616d2073616c74203136627974657321", stored_key = "c799ba7f538e383c761bc6d60dc779f221af5a4220ad581a4a42046535fcbf28", server_key = "649fd22e7b761d7dc60e3c44482e6b1232b17df6de705f12dafc961a6e08fc41" }
"#;

/// The interop router's `limits.max_subscriptions_per_session`, which the clients test (their
/// other steps hold fewer subscriptions per session).
const SUBSCRIPTION_LIMIT: usize = 20;

// ------------------------------------------------------------------------------------------
// Paths, temp dirs, processes
// ------------------------------------------------------------------------------------------

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "wampring-interop-{}-{}-{}",
            std::process::id(),
            n,
            tag
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Makes the child get SIGKILL when the thread that spawned it dies, so a killed or crashed
/// test binary cannot leave it running; and puts it into its own process group, so that a
/// timeout can kill everything it started.
fn guard_child(cmd: &mut Command) -> &mut Command {
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

fn signal_group(child: &Child, sig: libc::c_int) {
    // The child leads its own process group (guard_child), so -pid is exactly its group.
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain syscall on a group we created.
    unsafe {
        libc::kill(-pid, sig);
    }
}

/// Waits for `child` at most `timeout`; None when it is still running.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

/// Runs a command to completion with a bounded wait, stdout+stderr into `log`. On timeout the
/// whole process group is killed. Returns the status (None on timeout) and the output.
fn run_bounded(cmd: &mut Command, log: &Path, timeout: Duration) -> (Option<ExitStatus>, String) {
    let out = fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let err = out.try_clone().expect("dup log file");
    let mut child = guard_child(cmd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        signal_group(&child, libc::SIGKILL);
        let _ = child.wait();
    }
    (status, read_lossy(log))
}

fn read_lossy(path: &Path) -> String {
    let mut buf = Vec::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

// ------------------------------------------------------------------------------------------
// Client installation (once per test binary; setup.sh itself flocks across processes)
// ------------------------------------------------------------------------------------------

fn setup_clients() {
    static SETUP: OnceLock<Result<(), String>> = OnceLock::new();
    let result = SETUP.get_or_init(|| {
        let tmp = TempDir::new("setup");
        let log = tmp.path().join("setup.log");
        let mut cmd = Command::new("bash");
        cmd.arg(interop_dir().join("setup.sh"));
        let (status, output) = run_bounded(&mut cmd, &log, SETUP_TIMEOUT);
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(format!("tests/interop/setup.sh failed ({s}):\n{output}")),
            None => Err(format!(
                "tests/interop/setup.sh did not finish within {SETUP_TIMEOUT:?}:\n{output}"
            )),
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ------------------------------------------------------------------------------------------
// The router under test
// ------------------------------------------------------------------------------------------

/// A running `wampring`; stopped (SIGTERM, then SIGKILL) and reaped on drop.
struct Router {
    child: Child,
    ws: SocketAddr,
    rs: SocketAddr,
    /// The admin listener (metrics, status page).
    admin: SocketAddr,
    log: PathBuf,
    /// The TLS and Unix socket listeners, when started with them ([`Router::start_secure`]).
    secure: Option<SecureListeners>,
    _dir: TempDir,
}

/// The extra listeners of [`Router::start_secure`].
struct SecureListeners {
    wss: SocketAddr,
    rss: SocketAddr,
    ws_unix: PathBuf,
    rs_unix: PathBuf,
    /// The router's (self-signed) certificate, which the clients trust.
    cert: PathBuf,
}

impl SecureListeners {
    /// Writes a certificate for 127.0.0.1 and localhost into `dir` and returns the listeners'
    /// TOML with the addresses they will have.
    fn create(dir: &Path) -> (SecureListeners, String) {
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .expect("generate a test certificate");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        fs::write(&cert, certified.cert.pem()).expect("write cert.pem");
        fs::write(&key, certified.key_pair.serialize_pem()).expect("write key.pem");
        let [wss, rss] = free_ports();
        let listeners = SecureListeners {
            wss,
            rss,
            ws_unix: dir.join("ws.sock"),
            rs_unix: dir.join("rs.sock"),
            cert,
        };
        let toml = format!(
            r#"
[[listener]]
kind = "websocket"
bind = "{wss}"
tls_cert = "cert.pem"
tls_key = "key.pem"
authmethods = {AUTHMETHODS}

[[listener]]
kind = "rawsocket"
bind = "{rss}"
tls_cert = "cert.pem"
tls_key = "key.pem"
authmethods = {AUTHMETHODS}

[[listener]]
kind = "websocket"
bind = "unix:{}"
authmethods = {AUTHMETHODS}

[[listener]]
kind = "rawsocket"
bind = "unix:{}"
authmethods = {AUTHMETHODS}
"#,
            listeners.ws_unix.display(),
            listeners.rs_unix.display()
        );
        (listeners, toml)
    }
}

impl Router {
    /// Starts the router with `extra_args` after `--config FILE` and waits until both
    /// listeners accept connections.
    fn start(extra_args: &[&str]) -> Router {
        Router::start_with(extra_args, false)
    }

    /// [`Router::start`] with the TLS and Unix socket listeners of [`SecureListeners`] too.
    fn start_secure(extra_args: &[&str]) -> Router {
        Router::start_with(extra_args, true)
    }

    fn start_with(extra_args: &[&str], secure: bool) -> Router {
        let mut last_err = String::new();
        for attempt in 1..=ROUTER_START_ATTEMPTS {
            match Router::try_start(extra_args, secure) {
                Ok(r) => return r,
                Err(e) => {
                    eprintln!("router start attempt {attempt} failed: {e}");
                    last_err = e;
                }
            }
        }
        panic!("could not start wampring after {ROUTER_START_ATTEMPTS} attempts:\n{last_err}");
    }

    fn try_start(extra_args: &[&str], secure: bool) -> Result<Router, String> {
        let dir = TempDir::new("router");
        let [ws, rs, admin] = free_ports();
        let config = dir.path().join("wampring.toml");
        let mut text = router_config(ws, rs, admin);
        let secure = secure.then(|| {
            let (listeners, toml) = SecureListeners::create(dir.path());
            text.push_str(&toml);
            listeners
        });
        fs::write(&config, text).map_err(|e| format!("write config: {e}"))?;
        let log = dir.path().join("router.log");
        let out = fs::File::create(&log).map_err(|e| format!("create log: {e}"))?;
        let err = out.try_clone().map_err(|e| format!("dup log: {e}"))?;
        let child = guard_child(
            Command::new(env!("CARGO_BIN_EXE_wampring"))
                .arg("--config")
                .arg(&config)
                .args(extra_args)
                .env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
                )
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        )
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", env!("CARGO_BIN_EXE_wampring")))?;
        let mut router = Router {
            child,
            ws,
            rs,
            admin,
            log,
            secure,
            _dir: dir,
        };

        let deadline = Instant::now() + ROUTER_START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = router.child.try_wait() {
                return Err(format!(
                    "wampring exited during startup ({status}); args {extra_args:?}; log:\n{}",
                    router.log_text()
                ));
            }
            let up = [ws, rs, admin]
                .iter()
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok());
            if up {
                return Ok(router);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "wampring did not accept on {ws} and {rs} within {ROUTER_START_TIMEOUT:?}; \
                     log:\n{}",
                    router.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self, transport: Transport) -> String {
        match transport {
            Transport::WebSocket => format!("ws://{}/ws", self.ws),
            Transport::RawSocket => format!("rs://{}", self.rs),
        }
    }

    fn log_text(&self) -> String {
        tail(&read_lossy(&self.log), 200)
    }

    /// Whether the router is still running (it must not die during a test).
    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: plain syscall on our own child.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            if wait_timeout(&mut self.child, ROUTER_STOP_TIMEOUT).is_none() {
                eprintln!("wampring did not exit {ROUTER_STOP_TIMEOUT:?} after SIGTERM; SIGKILL");
                signal_group(&self.child, libc::SIGKILL);
                let _ = self.child.wait();
            }
        }
    }
}

/// `N` distinct free 127.0.0.1 ports (all probed while held, so they differ).
fn free_ports<const N: usize>() -> [SocketAddr; N] {
    let held: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind probe port"))
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap())
}

/// One GET to the router's admin listener: (status, body).
fn admin_get(router: &Router, path: &str) -> (u16, String) {
    use std::io::Write;
    let mut stream = TcpStream::connect_timeout(&router.admin, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to the admin listener {}: {e}", router.admin));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        router.admin
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// The samples of metric `family` whose labels include every one of `labels`, summed.
fn metric_sum(metrics: &str, family: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(family)
                && labels
                    .iter()
                    .all(|(key, value)| series.contains(&format!("{key}=\"{value}\"")))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

/// After a client's run: the admin listener's metrics count its work. Every HELLO came in as
/// a counted message and (bar the refused ones) became a session; its calls were received,
/// routed calls were timed, results went out; every shard answered.
fn check_metrics(router: &Router, what: &str) -> Result<(), String> {
    let (status, metrics) = admin_get(router, "/metrics");
    if status != 200 {
        return Err(format!("/metrics answered {status}: {metrics}"));
    }
    let received = |kind: &str| {
        metric_sum(
            &metrics,
            "wampring_messages_received_total",
            &[("type", kind)],
        )
    };
    let sent = |kind: &str| metric_sum(&metrics, "wampring_messages_sent_total", &[("type", kind)]);
    let hellos = received("HELLO");
    let established = metric_sum(&metrics, "wampring_sessions_established_total", &[]);
    let calls = received("CALL");
    let timed = metric_sum(&metrics, "wampring_call_latency_seconds_count", &[]);
    let checks = [
        ("HELLOs counted", hellos >= 1.0),
        (
            "every session came from a counted HELLO",
            established >= 1.0 && established <= hellos,
        ),
        (
            "WELCOMEs counted per session",
            sent("WELCOME") == established,
        ),
        ("CALLs counted", calls >= 1.0),
        (
            "routed calls timed, at most one per CALL",
            timed >= 1.0 && timed <= calls,
        ),
        ("RESULTs counted", sent("RESULT") >= 1.0),
        (
            "bytes counted",
            metric_sum(&metrics, "wampring_received_bytes_total", &[]) > calls,
        ),
        (
            "the application error counted",
            metric_sum(&metrics, "wampring_call_errors_total", &[]) >= 1.0,
        ),
    ];
    let failed: Vec<&str> = checks
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| *name)
        .collect();
    if failed.is_empty() {
        eprintln!("{what}: metrics agree ({hellos} HELLOs, {established} sessions, {calls} CALLs, {timed} timed)");
        Ok(())
    } else {
        Err(format!(
            "metrics disagree with the client's run: {failed:?}\n{metrics}"
        ))
    }
}

// ------------------------------------------------------------------------------------------
// One combination
// ------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum ClientKind {
    Python,
    Js,
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    WebSocket,
    RawSocket,
}

fn client_command(client: ClientKind) -> Command {
    let dir = interop_dir();
    match client {
        ClientKind::Python => {
            let mut c = Command::new(dir.join(".venv").join("bin").join("python"));
            c.arg(dir.join("client.py")).env("PYTHONUNBUFFERED", "1");
            c
        }
        ClientKind::Js => {
            let mut c = Command::new("node");
            c.arg(dir.join("client.js"));
            c
        }
    }
}

/// Installs the clients, starts a router with `router_args`, runs `client` over `transport`
/// with `serializer`, and fails with both sides' output unless the scenario passes.
fn run_combo(client: ClientKind, transport: Transport, serializer: &str, router_args: &[&str]) {
    setup_clients();
    let router = Router::start(router_args);
    let url = router.url(transport);
    run_client(client, router, url, &[], serializer, router_args);
}

/// The TLS and Unix socket URLs of [`Router::start_secure`].
#[derive(Clone, Copy, Debug)]
enum SecureUrl {
    Wss,
    Rss,
    WsUnix,
    RsUnix,
}

/// As [`run_combo`], over one of the TLS or Unix socket listeners; the clients trust the
/// router's certificate through `--tls-ca`.
fn run_secure(client: ClientKind, url: SecureUrl, serializer: &str, router_args: &[&str]) {
    setup_clients();
    let router = Router::start_secure(router_args);
    let listeners = router
        .secure
        .as_ref()
        .expect("started with the secure listeners");
    let address = match url {
        SecureUrl::Wss => format!("wss://{}/ws", listeners.wss),
        SecureUrl::Rss => format!("rss://{}", listeners.rss),
        SecureUrl::WsUnix => format!("ws+unix:{}", listeners.ws_unix.display()),
        SecureUrl::RsUnix => format!("rs+unix:{}", listeners.rs_unix.display()),
    };
    let ca = listeners.cert.display().to_string();
    run_client(
        client,
        router,
        address,
        &["--tls-ca".to_string(), ca],
        serializer,
        router_args,
    );
}

/// Runs `client` against `router` at `url` with `serializer` (and `client_args`), and fails
/// with both sides' output unless the scenario passes.
fn run_client(
    client: ClientKind,
    mut router: Router,
    url: String,
    client_args: &[String],
    serializer: &str,
    router_args: &[&str],
) {
    let tmp = TempDir::new("client");
    let log = tmp.path().join("client.log");
    let mut cmd = client_command(client);
    cmd.current_dir(interop_dir()).args([
        "--url",
        &url,
        "--serializer",
        serializer,
        "--realm",
        REALM,
        "--subscription-limit",
        &SUBSCRIPTION_LIMIT.to_string(),
        "--disclosed-realm",
        DISCLOSED_REALM,
        "--secured-realm",
        SECURED_REALM,
    ]);
    if matches!(client, ClientKind::Python) {
        // The dynamic authenticator and authorizer are Python callees.
        cmd.args(["--dynamic-realm", DYNAMIC_REALM]);
    }
    cmd.args(client_args);
    let started = Instant::now();
    let (status, output) = run_bounded(&mut cmd, &log, CLIENT_TIMEOUT);
    let elapsed = started.elapsed();
    let router_died = router.exit_status();

    let what = format!("{client:?} client, {url}, {serializer}, router args {router_args:?}");
    let passed = matches!(status, Some(s) if s.success())
        && output.lines().any(|l| l == "PASS")
        && router_died.is_none();
    if passed {
        eprintln!("{what}: passed in {elapsed:.1?}\n{output}");
        if let Err(e) = check_metrics(&router, &what) {
            panic!("interop failure: {what}: {e}");
        }
        return;
    }
    let verdict = match (status, router_died) {
        (_, Some(s)) => format!("the router exited during the test ({s})"),
        (None, _) => format!("the client did not finish within {CLIENT_TIMEOUT:?} (killed)"),
        (Some(s), _) if s.success() => "the client exited 0 without printing PASS".to_string(),
        (Some(s), _) => format!("the client failed ({s})"),
    };
    let first_fail = output
        .lines()
        .find(|l| l.starts_with("FAIL"))
        .unwrap_or("(no FAIL line)")
        .to_string();
    let router_log = router.log_text();
    drop(router);
    panic!(
        "interop failure: {what}: {verdict}\n  {first_fail}\n\
         ---- client output ----\n{output}\n\
         ---- router log (tail) ----\n{router_log}\n-----------------------"
    );
}

/// Starts a router with `router_args`, runs `client` in `--mode shutdown` over `transport` with
/// `serializer` until it has joined, then stops the router with SIGTERM: the router must exit 0
/// within [`SHUTDOWN_EXIT_BOUND`] without dropping a connection at the end of its grace, and
/// the client must pass (GOODBYE `wamp.close.system_shutdown` and a clean close on each of its
/// two sessions; see `shutdown` in client.py and `shutdownMode` in client.js).
fn run_shutdown(client: ClientKind, transport: Transport, serializer: &str, router_args: &[&str]) {
    setup_clients();
    let mut router = Router::start(router_args);
    let url = router.url(transport);
    let what = format!("{client:?} client, {url}, {serializer}, router args {router_args:?}");
    let tmp = TempDir::new("shutdown-client");
    let log = tmp.path().join("client.log");
    let out = fs::File::create(&log).expect("create the client log");
    let err = out.try_clone().expect("dup the client log");
    let mut cmd = client_command(client);
    cmd.current_dir(interop_dir()).args([
        "--url",
        &url,
        "--serializer",
        serializer,
        "--realm",
        REALM,
        "--mode",
        "shutdown",
    ]);
    let mut child = guard_child(&mut cmd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    // Kills the client's group if an assertion fails before it exits.
    struct Reap<'a>(&'a mut Child);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            if self.0.try_wait().ok().flatten().is_none() {
                signal_group(self.0, libc::SIGKILL);
                let _ = self.0.wait();
            }
        }
    }
    let child = Reap(&mut child);

    let ready_by = Instant::now() + SHUTDOWN_READY_TIMEOUT;
    while !read_lossy(&log).lines().any(|l| l == "ready") {
        let exited = child.0.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() >= ready_by {
            panic!(
                "{what}: the client did not join ({exited:?}):\n{}\n---- router log ----\n{}",
                read_lossy(&log),
                router.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let signalled = Instant::now();
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(router.child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = wait_timeout(&mut router.child, SHUTDOWN_EXIT_BOUND);
    let stopped_in = signalled.elapsed();
    let client_status = wait_timeout(child.0, CLIENT_TIMEOUT);
    let output = read_lossy(&log);
    let router_log = router.log_text();
    let context = format!(
        "---- client output ----\n{output}\n---- router log (tail) ----\n{router_log}\n-----"
    );
    let status = status.unwrap_or_else(|| {
        panic!("{what}: the router still ran {SHUTDOWN_EXIT_BOUND:?} after SIGTERM\n{context}")
    });
    assert!(
        status.success(),
        "{what}: router exit {status} after SIGTERM\n{context}"
    );
    eprintln!("{what}: router exited 0 in {stopped_in:.2?} after SIGTERM");
    assert!(
        !router_log.contains("did not finish closing in time"),
        "{what}: the router dropped connections at the end of its grace\n{context}"
    );
    let totals = router_log
        .lines()
        .find(|l| l.contains("stopped: "))
        .unwrap_or_else(|| panic!("{what}: no final counters line\n{context}"));
    assert!(
        totals.contains(" close_timeouts=0 ") && totals.contains(" io_errors=0 "),
        "{what}: a close handshake timed out or a socket failed\n{context}"
    );
    assert!(
        matches!(client_status, Some(s) if s.success()) && output.lines().any(|l| l == "PASS"),
        "{what}: the client failed ({client_status:?})\n{context}"
    );
    for broken in [
        "Broken pipe",
        "BrokenPipe",
        "ECONNRESET",
        "Connection reset",
    ] {
        assert!(
            !output.contains(broken),
            "{what}: the client saw {broken:?}\n{context}"
        );
    }
}

/// `shutdown_test!(name, Client, Transport, "serializer", ["--router", "args"])`
macro_rules! shutdown_test {
    ($name:ident, $client:ident, $transport:ident, $ser:literal, [$($arg:literal),*]) => {
        #[test]
        fn $name() {
            run_shutdown(ClientKind::$client, Transport::$transport, $ser, &[$($arg),*]);
        }
    };
}

// SIGTERM with sessions open, each client over each transport, at one and at two shards
// (round-robin placement puts the client's two sessions on different shards).
shutdown_test!(
    shutdown_python_ws,
    Python,
    WebSocket,
    "msgpack",
    ["--cores", "1"]
);
shutdown_test!(
    shutdown_python_rs,
    Python,
    RawSocket,
    "json",
    ["--cores", "1"]
);
shutdown_test!(shutdown_js_ws, Js, WebSocket, "json", ["--cores", "1"]);
shutdown_test!(shutdown_js_rs, Js, RawSocket, "json", ["--cores", "1"]);
shutdown_test!(
    shutdown_python_ws_cores2,
    Python,
    WebSocket,
    "json",
    ["--cores", "2", "--placement", "round-robin"]
);
shutdown_test!(
    shutdown_python_rs_cores2,
    Python,
    RawSocket,
    "msgpack",
    ["--cores", "2", "--placement", "round-robin"]
);
shutdown_test!(
    shutdown_js_ws_cores2,
    Js,
    WebSocket,
    "msgpack",
    ["--cores", "2", "--placement", "round-robin"]
);
shutdown_test!(
    shutdown_js_rs_cores2,
    Js,
    RawSocket,
    "json",
    ["--cores", "2", "--placement", "round-robin"]
);

/// `interop_test!(name, Client, Transport, "serializer" [, ["--router", "args"]])`
macro_rules! interop_test {
    ($name:ident, $client:ident, $transport:ident, $ser:literal) => {
        interop_test!($name, $client, $transport, $ser, []);
    };
    ($name:ident, $client:ident, $transport:ident, $ser:literal, [$($arg:literal),*]) => {
        #[test]
        fn $name() {
            run_combo(ClientKind::$client, Transport::$transport, $ser, &[$($arg),*]);
        }
    };
}

// Autobahn|Python (asyncio): every transport x serializer, on one core (one shard), whatever
// the machine (the router's default is every CPU).
interop_test!(python_ws_json, Python, WebSocket, "json", ["--cores", "1"]);
interop_test!(
    python_ws_msgpack,
    Python,
    WebSocket,
    "msgpack",
    ["--cores", "1"]
);
interop_test!(python_rs_json, Python, RawSocket, "json", ["--cores", "1"]);
interop_test!(
    python_rs_msgpack,
    Python,
    RawSocket,
    "msgpack",
    ["--cores", "1"]
);

// Autobahn|JS (Node): its RawSocket transport speaks JSON only.
interop_test!(js_ws_json, Js, WebSocket, "json", ["--cores", "1"]);
interop_test!(js_ws_msgpack, Js, WebSocket, "msgpack", ["--cores", "1"]);
interop_test!(js_rs_json, Js, RawSocket, "json", ["--cores", "1"]);

// Multi-core variants: two shards, and round-robin placement so that the client's consecutive
// sessions land on alternating shards (every scenario then crosses the shard channels).
interop_test!(
    python_ws_json_cores2,
    Python,
    WebSocket,
    "json",
    ["--cores", "2", "--placement", "round-robin"]
);
interop_test!(
    python_rs_msgpack_cores2,
    Python,
    RawSocket,
    "msgpack",
    ["--cores", "2", "--placement", "round-robin"]
);
interop_test!(
    js_ws_msgpack_cores2,
    Js,
    WebSocket,
    "msgpack",
    ["--cores", "2", "--placement", "round-robin"]
);
interop_test!(
    js_rs_json_cores2,
    Js,
    RawSocket,
    "json",
    ["--cores", "2", "--placement", "round-robin"]
);

// TLS (rustls) and Unix domain sockets: wss with both clients, RawSocket over TLS and both
// kinds of Unix socket with Autobahn|Python (Autobahn|JS has no Unix socket transport, and its
// RawSocket transport no TLS).
macro_rules! secure_test {
    ($name:ident, $client:ident, $url:ident, $ser:literal, [$($arg:literal),*]) => {
        #[test]
        fn $name() {
            run_secure(ClientKind::$client, SecureUrl::$url, $ser, &[$($arg),*]);
        }
    };
}

secure_test!(python_wss_json, Python, Wss, "json", ["--cores", "1"]);
secure_test!(python_rss_msgpack, Python, Rss, "msgpack", ["--cores", "1"]);
secure_test!(js_wss_msgpack, Js, Wss, "msgpack", ["--cores", "1"]);
secure_test!(
    python_ws_unix_msgpack,
    Python,
    WsUnix,
    "msgpack",
    ["--cores", "1"]
);
// Two shards: shard 0 accepts the Unix socket and deals its connections to both.
secure_test!(
    python_rs_unix_json_cores2,
    Python,
    RsUnix,
    "json",
    ["--cores", "2"]
);

// ------------------------------------------------------------------------------------------
// The admin listener's status page in headless Chromium
// ------------------------------------------------------------------------------------------

/// Installs Chromium when missing (`tests/interop/setup-chromium.sh`); its path.
fn setup_chromium() -> String {
    let tmp = TempDir::new("chromium-setup");
    let log = tmp.path().join("setup.log");
    let mut cmd = Command::new("bash");
    cmd.arg(interop_dir().join("setup-chromium.sh"));
    let (status, output) = run_bounded(&mut cmd, &log, SETUP_TIMEOUT);
    match status {
        Some(s) if s.success() => output
            .lines()
            .rfind(|line| line.starts_with('/'))
            .unwrap_or_else(|| panic!("setup-chromium.sh named no browser:\n{output}"))
            .to_string(),
        _ => panic!("tests/interop/setup-chromium.sh failed ({status:?}):\n{output}"),
    }
}

/// Waits (bounded) until `log` has a line `line`.
fn wait_for_line(log: &Path, line: &str, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if read_lossy(log).lines().any(|l| l == line) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A number as the status page prints it ("12,345"); `None` for "–" and the like.
fn shown_number(value: &serde_json::Value) -> Option<f64> {
    value.as_str()?.replace(',', "").parse().ok()
}

/// The status page, opened in headless Chromium while an Autobahn|JS client calls and
/// publishes: it loads, shows the router's shards, sessions and registration, and its numbers
/// move between two readings three seconds apart. The screenshot is kept in cargo's target
/// tmp directory (`status-page-<cores>-cores.png`).
fn status_page_in_chromium(cores: &str) {
    setup_clients();
    let chromium = setup_chromium();
    let router = Router::start(&["--cores", cores, "--placement", "round-robin"]);
    let tmp = TempDir::new("status-page");
    let load_log = tmp.path().join("load.log");
    let load_out = fs::File::create(&load_log).unwrap();
    let mut load = guard_child(
        Command::new("node")
            .arg(interop_dir().join("load.js"))
            .args([&router.url(Transport::WebSocket), REALM, "40"])
            .stdin(Stdio::null())
            .stdout(load_out.try_clone().unwrap())
            .stderr(load_out),
    )
    .spawn()
    .expect("spawn node load.js");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            signal_group(self.0, libc::SIGKILL);
            let _ = self.0.wait();
        }
    }
    let load = Kill(&mut load);
    assert!(
        wait_for_line(&load_log, "ready", Duration::from_secs(20)),
        "the load client did not start:\n{}",
        read_lossy(&load_log)
    );

    let screenshot =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("status-page-{cores}-cores.png"));
    let _ = fs::remove_file(&screenshot);
    let driver_log = tmp.path().join("driver.log");
    let url = format!("http://{}/", router.admin);
    let mut driver = Command::new("node");
    driver
        .arg(interop_dir().join("status_page.js"))
        .arg(&chromium)
        .arg(&url)
        .arg(&screenshot);
    let (status, output) = run_bounded(&mut driver, &driver_log, CLIENT_TIMEOUT);
    drop(load);
    assert!(
        matches!(status, Some(s) if s.success()),
        "status_page.js failed ({status:?}):\n{output}\n---- router log ----\n{}",
        router.log_text()
    );
    let result: serde_json::Value = output
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no JSON from status_page.js:\n{output}"));
    let (first, second) = (&result["first"], &result["second"]);
    eprintln!(
        "status page: {first}\nthen: {second}\nscreenshot: {}",
        screenshot.display()
    );
    for reading in [first, second] {
        assert_eq!(reading["title"], "wampring status", "{reading}");
        assert_eq!(reading["state"], "ready", "{reading}");
        assert_eq!(reading["shards"], cores, "{reading}");
        assert_eq!(reading["rows"], cores.parse::<u64>().unwrap(), "{reading}");
        assert_eq!(shown_number(&reading["sessions"]), Some(2.0), "{reading}");
        assert_eq!(
            shown_number(&reading["registrations"]),
            Some(1.0),
            "{reading}"
        );
        assert_eq!(reading["error"], "", "{reading}");
        assert!(
            shown_number(&reading["calls_rate"]).is_some_and(|rate| rate > 0.0),
            "calls per second while the client calls: {reading}"
        );
        assert!(
            shown_number(&reading["rate_in"]).is_some_and(|rate| rate > 0.0),
            "{reading}"
        );
        assert!(
            reading["latency_p50"]
                .as_str()
                .is_some_and(|shown| shown.starts_with("≤ ")
                    && (shown.ends_with(" µs") || shown.ends_with(" ms"))),
            "{reading}"
        );
        assert!(
            reading["canvases"]
                .as_array()
                .is_some_and(|drawn| drawn.len() == 3 && drawn.iter().all(|d| d == true)),
            "{reading}"
        );
    }
    let total = |reading: &serde_json::Value| shown_number(&reading["messages_total"]).unwrap();
    assert!(
        total(second) > total(first),
        "the message count moved: {first} then {second}"
    );
    assert!(second["polls"].as_u64() > first["polls"].as_u64());
    let png = fs::read(&screenshot).expect("the screenshot was saved");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
}

#[test]
fn status_page_in_chromium_one_shard() {
    status_page_in_chromium("1");
}

#[test]
fn status_page_in_chromium_two_shards() {
    status_page_in_chromium("2");
}

// ------------------------------------------------------------------------------------------
// CBOR (wamp.2.cbor, RawSocket serializer 3): Autobahn|Python and Autobahn|JS with
// `--serializer cbor`, the xconn client with its defaults (CBOR), and one router serving
// JSON, MessagePack and CBOR sessions at once (tests/interop/mixed.py).
//
// Kept together here: the scenarios' payloads include binary values and the edge cases of
// tests/interop/edge_values.py (integers past 2^53 up to 2^64 - 1 and down to -2^63, floats,
// unicode, empty and nested values), compared strictly by the clients.
// ------------------------------------------------------------------------------------------

// Autobahn|Python over both transports, Autobahn|JS over WebSocket (its RawSocket transport
// speaks JSON only), at one shard and at two (round-robin placement: the scenario's sessions
// alternate between the shards).
interop_test!(
    python_ws_cbor_one_core,
    Python,
    WebSocket,
    "cbor",
    ["--cores", "1"]
);
interop_test!(
    python_rs_cbor_one_core,
    Python,
    RawSocket,
    "cbor",
    ["--cores", "1"]
);
interop_test!(
    python_ws_cbor_two_cores,
    Python,
    WebSocket,
    "cbor",
    ["--cores", "2", "--placement", "round-robin"]
);
interop_test!(
    python_rs_cbor_two_cores,
    Python,
    RawSocket,
    "cbor",
    ["--cores", "2", "--placement", "round-robin"]
);
interop_test!(js_ws_cbor_one_core, Js, WebSocket, "cbor", ["--cores", "1"]);
interop_test!(
    js_ws_cbor_two_cores,
    Js,
    WebSocket,
    "cbor",
    ["--cores", "2", "--placement", "round-robin"]
);

// The graceful shutdown (GOODBYE wamp.close.system_shutdown, then a clean close) in CBOR, and CBOR
// over TLS (the TLS listeners list no serializers: wampring's default set, which has cbor).
shutdown_test!(
    shutdown_python_rs_cbor_two_cores,
    Python,
    RawSocket,
    "cbor",
    ["--cores", "2", "--placement", "round-robin"]
);
shutdown_test!(
    shutdown_js_ws_cbor_one_core,
    Js,
    WebSocket,
    "cbor",
    ["--cores", "1"]
);
secure_test!(
    python_rss_cbor_one_core,
    Python,
    Rss,
    "cbor",
    ["--cores", "1"]
);
secure_test!(
    js_wss_cbor_two_cores,
    Js,
    Wss,
    "cbor",
    ["--cores", "2", "--placement", "round-robin"]
);

/// Runs the Python script `script` (in `tests/interop/`, with the interop venv's Python) with
/// `args` against `router`, and fails with both sides' output unless it exits 0 having printed
/// `PASS` while the router kept running, or unless the router's metrics agree with the run
/// ([`check_metrics`]). Returns the script's output.
fn run_python_script(mut router: Router, script: &str, args: &[String], what: &str) -> String {
    let dir = interop_dir();
    let tmp = TempDir::new("script");
    let log = tmp.path().join("script.log");
    let mut cmd = Command::new(dir.join(".venv").join("bin").join("python"));
    cmd.arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .env("PYTHONUNBUFFERED", "1");
    let started = Instant::now();
    let (status, output) = run_bounded(&mut cmd, &log, CLIENT_TIMEOUT);
    let elapsed = started.elapsed();
    let router_died = router.exit_status();
    let passed = matches!(status, Some(s) if s.success())
        && output.lines().any(|l| l == "PASS")
        && router_died.is_none();
    if passed {
        eprintln!("{what}: passed in {elapsed:.1?}\n{output}");
        if let Err(e) = check_metrics(&router, what) {
            panic!("interop failure: {what}: {e}");
        }
        return output;
    }
    let verdict = match (status, router_died) {
        (_, Some(s)) => format!("the router exited during the test ({s})"),
        (None, _) => format!("{script} did not finish within {CLIENT_TIMEOUT:?} (killed)"),
        (Some(s), _) if s.success() => format!("{script} exited 0 without printing PASS"),
        (Some(s), _) => format!("{script} failed ({s})"),
    };
    let first_fail = output
        .lines()
        .find(|l| l.starts_with("FAIL"))
        .unwrap_or("(no FAIL line)")
        .to_string();
    let router_log = router.log_text();
    drop(router);
    panic!(
        "interop failure: {what}: {verdict}\n  {first_fail}\n\
         ---- {script} output ----\n{output}\n\
         ---- router log (tail) ----\n{router_log}\n-----------------------"
    );
}

/// The xconn client (tests/interop/xconn_client.py) with its defaults over `transport`: it
/// must pass, and both of its sessions must have used CBOR (it prints `serializer <name>` for
/// each: xconn's default, which the router must accept).
fn run_xconn_defaults(transport: Transport, router_args: &[&str]) {
    setup_clients();
    let router = Router::start(router_args);
    let url = router.url(transport);
    let what = format!("xconn (defaults), {url}, router args {router_args:?}");
    let output = run_python_script(
        router,
        "xconn_client.py",
        &["--url".into(), url, "--realm".into(), REALM.into()],
        &what,
    );
    let serializers: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("serializer "))
        .collect();
    assert_eq!(
        serializers,
        ["cbor", "cbor"],
        "{what}: the serializers xconn's two sessions used\n{output}"
    );
}

#[test]
fn xconn_defaults_ws_one_core() {
    run_xconn_defaults(Transport::WebSocket, &["--cores", "1"]);
}

#[test]
fn xconn_defaults_rs_one_core() {
    run_xconn_defaults(Transport::RawSocket, &["--cores", "1"]);
}

#[test]
fn xconn_defaults_ws_two_cores() {
    run_xconn_defaults(
        Transport::WebSocket,
        &["--cores", "2", "--placement", "round-robin"],
    );
}

#[test]
fn xconn_defaults_rs_two_cores() {
    run_xconn_defaults(
        Transport::RawSocket,
        &["--cores", "2", "--placement", "round-robin"],
    );
}

/// tests/interop/mixed.py: a callee and a caller per serializer (json, msgpack, cbor) on one
/// router; every call, application error, event, retained event and kept event (history)
/// crosses every serializer pair, with binary, unicode, integers, floats, nested values and
/// kwargs; what only CBOR carries passes untouched between CBOR sessions and is refused
/// (calls, acknowledged publications) or not delivered (events) where the other end cannot
/// take it. With `rawsocket`, the sessions alternate between the WebSocket and the RawSocket
/// listener.
/// `extra`: more of mixed.py's flags.
fn run_mixed(rawsocket: bool, extra: &[&str], router_args: &[&str]) {
    setup_clients();
    let router = Router::start(router_args);
    let mut args = vec![
        "--url".to_string(),
        router.url(Transport::WebSocket),
        "--realm".to_string(),
        REALM.to_string(),
    ];
    if rawsocket {
        args.extend(["--rs-url".to_string(), router.url(Transport::RawSocket)]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let what = format!("mixed serializers, {args:?}, router args {router_args:?}");
    let output = run_python_script(router, "mixed.py", &args, &what);
    for step in [
        "calls_across_serializers",
        "errors_across_serializers",
        "events_across_serializers",
        "progressive_across_serializers",
        "retained_events_across_serializers",
        "event_history_across_serializers",
        "cbor_only_values",
        "kept_cbor_only_event",
    ] {
        assert!(
            output.lines().any(|l| l == format!("ok {step}")),
            "{what}: no `ok {step}`\n{output}"
        );
    }
}

/// mixed.py's checks of what only CBOR carries: a progressive result that ends the call for a
/// JSON or MessagePack caller (ERROR to it, INTERRUPT to the callee), and an event that is
/// delivered but not kept in the history.
const CBOR_ONLY_CHECKS: [&str; 2] = ["--check-cbor-only-progress", "--check-kept-cbor-only"];

#[test]
fn mixed_serializers_one_core() {
    run_mixed(true, &CBOR_ONLY_CHECKS, &["--cores", "1"]);
}

// Round-robin placement over one listener: the callees land on one shard and the callers on the
// other, so every call, error and event crosses the shards as well as the serializers.
#[test]
fn mixed_serializers_ws_two_cores() {
    run_mixed(
        false,
        &CBOR_ONLY_CHECKS,
        &["--cores", "2", "--placement", "round-robin"],
    );
}

#[test]
fn mixed_serializers_ws_rs_two_cores() {
    run_mixed(
        true,
        &CBOR_ONLY_CHECKS,
        &["--cores", "2", "--placement", "round-robin"],
    );
}

// Batched WebSocket subprotocols (wamp.2.json.batched, wamp.2.msgpack.batched) with
// Autobahn|Python (Autobahn|JS has no batched serializer), on one and two shards.
interop_test!(
    python_ws_json_batched,
    Python,
    WebSocket,
    "json.batched",
    ["--cores", "1"]
);
interop_test!(
    python_ws_msgpack_batched,
    Python,
    WebSocket,
    "msgpack.batched",
    ["--cores", "1"]
);
interop_test!(
    python_ws_json_batched_cores2,
    Python,
    WebSocket,
    "json.batched",
    ["--cores", "2", "--placement", "round-robin"]
);
interop_test!(
    python_ws_cbor_batched,
    Python,
    WebSocket,
    "cbor.batched",
    ["--cores", "1"]
);
interop_test!(
    python_ws_msgpack_batched_cores2,
    Python,
    WebSocket,
    "msgpack.batched",
    ["--cores", "2"]
);

// ------------------------------------------------------------------------------------------
// HTTP long-poll with Autobahn|JS (tests/interop/longpoll.js; why a script of its own: there)
// ------------------------------------------------------------------------------------------

/// Starts a router with `router_args` and runs `longpoll.js` against its WebSocket listener's
/// long-poll path (`http://…/ws`), with a WebSocket session beside the long-poll ones.
fn run_longpoll_js(router_args: &[&str]) {
    setup_clients();
    let mut router = Router::start(router_args);
    let tmp = TempDir::new("longpoll");
    let log = tmp.path().join("client.log");
    let mut cmd = Command::new("node");
    cmd.current_dir(interop_dir())
        .arg(interop_dir().join("longpoll.js"))
        .args([
            "--url",
            &format!("http://{}/ws", router.ws),
            "--ws-url",
            &router.url(Transport::WebSocket),
            "--realm",
            REALM,
        ]);
    let (status, output) = run_bounded(&mut cmd, &log, CLIENT_TIMEOUT);
    let router_died = router.exit_status();
    let what = format!("Autobahn|JS long-poll, router args {router_args:?}");
    let passed = matches!(status, Some(s) if s.success())
        && output.lines().any(|l| l == "PASS")
        && router_died.is_none();
    if passed {
        eprintln!("{what}: passed\n{output}");
        return;
    }
    panic!(
        "interop failure: {what}: status {status:?}, router {router_died:?}\n\
         ---- client output ----\n{output}\n\
         ---- router log (tail) ----\n{}\n-----------------------",
        router.log_text()
    );
}

#[test]
fn js_longpoll_json() {
    run_longpoll_js(&["--cores", "1"]);
}

#[test]
fn js_longpoll_json_cores2_round_robin() {
    run_longpoll_js(&["--cores", "2", "--placement", "round-robin"]);
}

#[test]
fn js_longpoll_json_cores2_kernel() {
    run_longpoll_js(&["--cores", "2"]);
}
