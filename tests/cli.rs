//! End-to-end tests of the `wampring` binary: the config commands (`--print-default-config`,
//! `--check-config`), start-up refusals (port in use, more cores than allowed CPUs), the shard
//! count (default: the CPUs the process may run on), and the running server over real
//! sockets — a WebSocket and a RawSocket client (built on `wampring::net::ClientConn`), the
//! handshake timeout, the slow-consumer disconnect, and SIGTERM (GOODBYE
//! `wamp.close.system_shutdown`, exit 0 within 2 s). Every wait is bounded; every started
//! process is killed by PID when its guard drops.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wampring::net::{ClientConn, ConnEvent, TransportConfig, TransportKind};
use wampring::serializer::Serializer;

const BIN: &str = env!("CARGO_BIN_EXE_wampring");

/// A fresh file path under the system temp dir, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn with_contents(contents: &str) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("wampring-cli-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run wampring")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config_text(ws_port: u16, rs_port: u16, extra: &str) -> String {
    format!(
        r#"
[[listener]]
kind = "websocket"
bind = "127.0.0.1:{ws_port}"
path = "/ws"
serializers = ["json", "msgpack"]
[[listener]]
kind = "rawsocket"
bind = "127.0.0.1:{rs_port}"
serializers = ["json", "msgpack"]
{extra}
[[realm]]
name = "realm1"
"#
    )
}

/// A running router, killed (by PID) when dropped. Its stderr goes to a file.
struct Server {
    child: Child,
    ws: SocketAddr,
    rs: SocketAddr,
    log: PathBuf,
    _config: TempFile,
}

impl Server {
    fn start(extra_config: &str) -> Server {
        Server::start_with_args(extra_config, &[])
    }

    fn start_with_args(extra_config: &str, args: &[&str]) -> Server {
        Server::start_under(&[], extra_config, args)
    }

    /// Starts the router with `top` (top-level keys) before the usual config.
    fn start_top(top: &str, args: &[&str]) -> Server {
        Server::start_config(&[], top, "", args)
    }

    /// Starts the router as an argument of `wrapper` (e.g. `["taskset", "-c", "1"]`).
    fn start_under(wrapper: &[&str], extra_config: &str, args: &[&str]) -> Server {
        Server::start_config(wrapper, "", extra_config, args)
    }

    fn start_config(wrapper: &[&str], top: &str, extra_config: &str, args: &[&str]) -> Server {
        let (ws_port, rs_port) = (free_port(), free_port());
        let config = TempFile::with_contents(&format!(
            "{top}{}",
            config_text(ws_port, rs_port, extra_config)
        ));
        let log = config.0.with_extension("log");
        let mut command = match wrapper {
            [program, wrapper_args @ ..] => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(BIN);
                command
            }
            [] => Command::new(BIN),
        };
        let child = command
            .arg("--config")
            .arg(&config.0)
            .args(
                (!args.contains(&"--log-level"))
                    .then_some(["--log-level", "info"])
                    .into_iter()
                    .flatten(),
            )
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn wampring");
        let server = Server {
            child,
            ws: SocketAddr::from(([127, 0, 0, 1], ws_port)),
            rs: SocketAddr::from(([127, 0, 0, 1], rs_port)),
            log,
            _config: config,
        };
        server.wait_listening();
        server
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(self.rs).is_ok() && TcpStream::connect(self.ws).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("router did not start listening; log:\n{}", self.log_text());
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child's PID.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    /// Waits for exit at most `limit`; `None` if still running.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A blocking WAMP client over `ClientConn`, JSON serializer.
struct Client {
    stream: TcpStream,
    conn: ClientConn,
    /// WAMP session id once joined.
    session: u64,
}

impl Client {
    fn connect(addr: SocketAddr, kind: TransportKind) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let config = TransportConfig {
            ws_host: addr.to_string(),
            ..TransportConfig::default()
        };
        let conn = ClientConn::new(kind, Serializer::Json, &config);
        let mut client = Client {
            stream,
            conn,
            session: 0,
        };
        client.flush();
        match client.next_event(Duration::from_secs(5)) {
            Some(ConnEvent::Opened { serializer }) => assert_eq!(serializer, Serializer::Json),
            other => panic!("expected the transport to open, got {other:?}"),
        }
        client
    }

    fn flush(&mut self) {
        let out = self.conn.output().to_vec();
        self.stream.write_all(&out).unwrap();
        self.conn.consume_output(out.len());
    }

    fn send(&mut self, json: &str) {
        self.conn.send_message(json.as_bytes()).unwrap();
        self.flush();
    }

    /// The next transport event, or `None` on timeout or when the socket ends without one.
    fn next_event(&mut self, limit: Duration) -> Option<ConnEvent> {
        let deadline = Instant::now() + limit;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(event) = self.conn.poll_event() {
                self.flush_quietly();
                return Some(event);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return self.conn.poll_event(),
                Ok(n) => self.conn.receive(&buf[..n]),
                Err(_) => return self.conn.poll_event(),
            }
        }
    }

    /// Pongs and close replies the codec queued; the socket may already be gone.
    fn flush_quietly(&mut self) {
        let out = self.conn.output().to_vec();
        if self.stream.write_all(&out).is_ok() {
            self.conn.consume_output(out.len());
        }
    }

    /// The next WAMP message as JSON, or `None` if the transport ended or nothing came.
    fn recv(&mut self, limit: Duration) -> Option<serde_json::Value> {
        match self.next_event(limit)? {
            ConnEvent::Message(bytes) => {
                Some(serde_json::from_slice(&bytes).expect("valid JSON from router"))
            }
            ConnEvent::Closed { .. } | ConnEvent::Opened { .. } => None,
        }
    }

    fn expect(&mut self, code: u64) -> serde_json::Value {
        let message = self
            .recv(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("expected message {code}, got nothing"));
        assert_eq!(message[0], code, "unexpected message {message}");
        message
    }

    fn join(addr: SocketAddr, kind: TransportKind) -> Client {
        let mut client = Client::connect(addr, kind);
        client.send(
            r#"[1,"realm1",{"roles":{"caller":{},"callee":{},"publisher":{},"subscriber":{}}}]"#,
        );
        let welcome = client.expect(2);
        client.session = welcome[1].as_u64().expect("WELCOME.Session");
        client
    }
}

#[test]
fn print_default_config_prints_the_embedded_file_which_checks_ok() {
    let printed = run(&["--print-default-config"]);
    assert!(printed.status.success());
    let text = String::from_utf8(printed.stdout).unwrap();
    let embedded = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/default-config.toml"
    ))
    .unwrap();
    assert_eq!(text, embedded);
    assert!(
        text.contains("ws")
            && text.contains("8080")
            && text.contains("8081")
            && text.contains("realm1")
    );

    let file = TempFile::with_contents(&text);
    let checked = run(&["--check-config", file.0.to_str().unwrap()]);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert_eq!(String::from_utf8(checked.stdout).unwrap().trim(), "ok");
}

#[test]
fn check_config_names_the_bad_key() {
    let cases = [
        (
            config_text(9001, 9002, "[limits]\nmax_outbound = 1\n"),
            "max_outbound",
        ),
        (
            config_text(9001, 9002, "[router]\nuri_check = \"lax\"\n"),
            "uri_check",
        ),
        (
            config_text(9001, 9002, "[limits]\nhandshake_timeout_ms = 5\n"),
            "limits.handshake_timeout_ms",
        ),
        (config_text(9001, 9001, ""), "listener[1].bind"),
        (
            config_text(9001, 9002, "").replace("path = \"/ws\"", "path = \"ws\""),
            "listener[0].path",
        ),
        (
            config_text(9001, 9002, "").replace("name = \"realm1\"", "name = \"realm one\""),
            "realm[0].name",
        ),
        ("[[realm]]\nname = \"realm1\"\n".to_string(), "listener"),
        (
            format!("cores = 0\n{}", config_text(9001, 9002, "")),
            "cores",
        ),
        (
            format!("placement = \"random\"\n{}", config_text(9001, 9002, "")),
            "placement",
        ),
        (
            config_text(9001, 9002, "[runtime]\nshard_channel_capacity = 1000\n"),
            "runtime.shard_channel_capacity",
        ),
        (
            config_text(9001, 9002, "[limits]\nhello_timeout_ms = 0\n"),
            "limits.hello_timeout_ms",
        ),
        (
            format!("log_format = \"xml\"\n{}", config_text(9001, 9002, "")),
            "log_format",
        ),
        (
            config_text(9001, 9002, "[limits]\nshutdown_grace_ms = 0\n"),
            "limits.shutdown_grace_ms",
        ),
        // More shards than the router supports (64), or than this machine lets it run on.
        (
            format!("cores = 65\n{}", config_text(9001, 9002, "")),
            "cores",
        ),
        (
            format!(
                "cores = {}\n{}",
                wampring::shard::cpus::allowed_cpus().unwrap().len() + 1,
                config_text(9001, 9002, "")
            ),
            "cores",
        ),
    ];
    for (text, key) in cases {
        let file = TempFile::with_contents(&text);
        let output = run(&["--check-config", file.0.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{key}: {stderr}");
        assert!(stderr.contains(key), "expected {key:?} in: {stderr}");
        assert!(output.stdout.is_empty());
    }
    // The old name of the channel key still checks.
    let old = TempFile::with_contents(&config_text(
        9001,
        9002,
        "[runtime]\npeer_channel_capacity = 1024\n",
    ));
    let output = run(&["--check-config", old.0.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let missing = run(&["--check-config", "/nonexistent/wampring.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

/// `wampring auth …` prints principal lines that `--check-config` accepts (the secret read from
/// standard input), and `--check-config` names bad principals, a method nobody can use, and warns
/// about anonymous access on a non-loopback address.
#[test]
fn auth_lines_check_and_bad_principals_are_named() {
    use std::io::Write;
    let mut lines = Vec::new();
    for method in ["ticket", "wampcra", "scram", "cryptosign"] {
        // cryptosign makes a key pair and reads no secret: it may exit before a write to its
        // stdin, which would then fail with a broken pipe.
        let reads_secret = method != "cryptosign";
        let mut child = Command::new(BIN)
            .args(["auth", method])
            .stdin(if reads_secret {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if reads_secret {
            child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
        }
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "wampring auth {method}");
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(
            !text.contains("s3cret"),
            "the secret itself was printed: {text}"
        );
        lines.push(format!(
            "[[realm.principal]]\nauthid = \"{method}-user\"\nrole = \"user\"\n{text}"
        ));
    }
    let principals = lines.join("\n");
    let good = config_text(9001, 9002, "").replace(
        "serializers = [\"json\", \"msgpack\"]\n[[listener]]",
        "serializers = [\"json\", \"msgpack\"]\nauthmethods = [\"ticket\", \"wampcra\", \"wamp-scram\", \"cryptosign\"]\n[[listener]]",
    ) + &principals;
    let file = TempFile::with_contents(&good);
    let output = run(&["--check-config", file.0.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    for (text, key) in [
        (
            good.replace("role = \"user\"", "role = \"user\"\n")
                + "[[realm.role]]\nname = \"admin\"\n",
            "realm[0].principal[0].role",
        ),
        (
            good.replace("cryptosign = [\"", "cryptosign = [\"zz"),
            "cryptosign[0]",
        ),
        (
            config_text(9001, 9002, "").replace(
                "serializers = [\"json\", \"msgpack\"]\n[[listener]]",
                "serializers = [\"json\", \"msgpack\"]\nauthmethods = [\"wampcra\"]\n[[listener]]",
            ),
            "listener[0].authmethods",
        ),
    ] {
        let file = TempFile::with_contents(&text);
        let output = run(&["--check-config", file.0.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{key}: {stderr}");
        assert!(stderr.contains(key), "expected {key:?} in: {stderr}");
    }

    let open = config_text(9001, 9002, "").replace("127.0.0.1:9002", "0.0.0.0:9002");
    let file = TempFile::with_contents(&open);
    let output = run(&["--check-config", file.0.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: listener[1]") && stderr.contains("anonymous"),
        "{stderr}"
    );
}

#[test]
fn refuses_to_start_on_a_port_in_use() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let file = TempFile::with_contents(&config_text(port, free_port(), ""));
    let mut child = Command::new(BIN)
        .args(["--config", file.0.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("router started although the port is held");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("address 127.0.0.1:{port} is already in use")),
        "{stderr}"
    );
    drop(held);
}

/// With `--log-format json` a failed start is reported as a JSON line too (level ERROR), so a
/// log shipper sees why the router did not come up.
#[test]
fn json_log_format_reports_a_failed_start_as_a_json_line() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let file = TempFile::with_contents(&config_text(port, free_port(), ""));
    let mut child = Command::new(BIN)
        .args(["--config", file.0.to_str().unwrap(), "--log-format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("router started although the port is held");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let error = lines
        .iter()
        .find(|line| line["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no ERROR line in:\n{stderr}"));
    assert!(
        error["fields"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("address 127.0.0.1:{port} is already in use")),
        "{error}"
    );
    drop(held);
}

#[test]
fn sigterm_exits_zero_within_two_seconds() {
    let mut server = Server::start("");
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(2))
        .expect("still running 2 s after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    assert!(
        server.log_text().contains("stopped"),
        "{}",
        server.log_text()
    );
}

/// `log_format = "json"`: every line the router writes to stderr, from start to stop, is one
/// JSON object with a timestamp, a level, a target and the message among its fields; the lines
/// an operator needs are there (start, listening, stop with its counters, per-session lines at
/// debug under `wampring::session` with id, realm, authid, authrole and peer).
#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let mut server = Server::start_top(
        "log_format = \"json\"\n",
        &["--log-level", "info,wampring::session=debug"],
    );
    let mut client = Client::join(server.ws, TransportKind::WebSocket);
    let session = client.session;
    client.send(r#"[6,{},"wamp.close.close_realm"]"#);
    client.expect(6);
    drop(client);
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(3))
        .expect("still running 3 s after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    let log = server.log_text();
    let mut messages = Vec::new();
    for line in log.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{log}"));
        for key in ["timestamp", "level", "target"] {
            assert!(value[key].is_string(), "no {key} in {line}");
        }
        let message = value["fields"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no fields.message in {line}"));
        messages.push((value.clone(), message.to_string()));
    }
    let find = |what: &str| {
        messages
            .iter()
            .find(|(_, message)| message.contains(what))
            .unwrap_or_else(|| panic!("no line with {what:?} in:\n{log}"))
            .0
            .clone()
    };
    assert_eq!(find("starting")["level"], "INFO");
    assert_eq!(find("listening on ws://")["level"], "INFO");
    let stopped = find("stopped: ");
    assert_eq!(stopped["level"], "INFO");
    assert!(
        stopped["fields"]["message"]
            .as_str()
            .unwrap()
            .contains(" sessions_opened=1 "),
        "{stopped}"
    );
    for (event, why) in [("opened", None), ("closed", Some("closed by the router"))] {
        let line = find(&format!("session {session} {event} on shard"));
        assert_eq!(line["level"], "DEBUG", "{line}");
        assert_eq!(line["target"], "wampring::session", "{line}");
        let fields = &line["fields"];
        assert_eq!(fields["session_id"], session, "{line}");
        assert_eq!(fields["realm"], "realm1", "{line}");
        assert_eq!(fields["authrole"], "anonymous", "{line}");
        assert!(fields["authid"].is_string(), "{line}");
        assert!(
            fields["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{line}"
        );
        if let Some(why) = why {
            assert_eq!(fields["why"], why, "{line}");
        }
    }
}

/// `--log-format json` overrides the config's text format; a bad value is a usage error.
#[test]
fn log_format_flag_overrides_the_config() {
    let mut server = Server::start_with_args("", &["--log-format", "json"]);
    server.signal(libc::SIGTERM);
    server
        .wait_exit(Duration::from_secs(3))
        .expect("still running 3 s after SIGTERM");
    let log = server.log_text();
    assert!(!log.is_empty());
    for line in log.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    let bad = run(&["--log-format", "xml"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn sigint_with_idle_and_handshaking_connections_exits_zero_within_two_seconds() {
    let mut server = Server::start("");
    // A client that never finishes its handshake and one that never reads nor closes.
    let _silent = TcpStream::connect(server.ws).unwrap();
    let _joined = Client::join(server.rs, TransportKind::RawSocket);
    server.signal(libc::SIGINT);
    let status = server
        .wait_exit(Duration::from_secs(2))
        .expect("still running 2 s after SIGINT");
    assert!(status.success(), "{status:?}\n{}", server.log_text());
}

#[test]
fn websocket_session_gets_goodbye_system_shutdown_on_sigterm() {
    let mut server = Server::start("");
    let mut client = Client::join(server.ws, TransportKind::WebSocket);
    server.signal(libc::SIGTERM);
    let goodbye = client.expect(6);
    assert_eq!(goodbye[2], "wamp.close.system_shutdown");
    // Answer like a well-behaved client, then the router closes the WebSocket.
    client
        .conn
        .send_message(br#"[6,{},"wamp.close.goodbye_and_out"]"#)
        .ok();
    client.flush_quietly();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match client.next_event(Duration::from_millis(200)) {
            Some(ConnEvent::Closed { .. }) => break,
            Some(_) => continue,
            None => break,
        }
    }
    drop(client);
    let status = server
        .wait_exit(Duration::from_secs(2))
        .expect("still running 2 s after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", server.log_text());
}

#[test]
fn rpc_round_trip_over_rawsocket_and_websocket() {
    let server = Server::start("");
    let mut callee = Client::join(server.rs, TransportKind::RawSocket);
    callee.send(r#"[64,1,{},"com.example.add"]"#);
    let registered = callee.expect(65);
    let registration = registered[2].as_u64().unwrap();

    let mut caller = Client::join(server.ws, TransportKind::WebSocket);
    for request in 1..=20u64 {
        caller.send(&format!(
            r#"[48,{request},{{}},"com.example.add",[{request},2]]"#
        ));
        let invocation = callee.expect(68);
        assert_eq!(invocation[2], registration);
        let args = invocation[4].as_array().unwrap();
        let sum = args[0].as_u64().unwrap() + args[1].as_u64().unwrap();
        callee.send(&format!(r#"[70,{},{{}},[{sum}]]"#, invocation[1]));
        let result = caller.expect(50);
        assert_eq!(result[1], request);
        assert_eq!(result[3][0], request + 2);
    }
}

#[test]
fn a_connection_without_handshake_is_dropped_after_the_timeout() {
    let server = Server::start("[limits]\nhandshake_timeout_ms = 300\n");
    let mut silent = TcpStream::connect(server.rs).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let closed = matches!(silent.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "connection still open");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected_as_slow_consumer() {
    let server = Server::start("[limits]\nmax_outbound_bytes = 65536\n");
    // Subscriber: small receive buffer, joins, subscribes, then stops reading.
    let mut subscriber = Client::join(server.rs, TransportKind::RawSocket);
    subscriber.send(r#"[32,1,{},"com.example.flood"]"#);
    subscriber.expect(33);

    let mut publisher = Client::join(server.ws, TransportKind::WebSocket);
    let blob = "x".repeat(60_000);
    let message = format!(r#"[16,1,{{}},"com.example.flood",["{blob}"]]"#);
    // Loopback socket buffers hold a few MiB; 600 events of 60 kB (36 MB) overflow them and
    // then the 64 KiB outbound bound.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut disconnected = false;
    for _ in 0..600 {
        publisher.send(&message);
        if server.log_text().contains("slow consumer") {
            disconnected = true;
            break;
        }
        assert!(Instant::now() < deadline, "publishing took too long");
    }
    if !disconnected {
        std::thread::sleep(Duration::from_millis(300));
        disconnected = server.log_text().contains("slow consumer");
    }
    assert!(
        disconnected,
        "no slow-consumer disconnect; log:\n{}",
        server.log_text()
    );
    assert!(server
        .log_text()
        .contains("outbound queue over 65536 bytes"));

    // The log names the WAMP session and its shard, not a table slot.
    let log = server.log_text();
    let line = log
        .lines()
        .find(|line| line.contains("slow consumer"))
        .expect("found above");
    assert!(
        line.contains(&format!("session {} on shard ", subscriber.session)),
        "{line}"
    );

    // The subscriber reads what was already in flight, then its ABORT, then the end.
    let mut last = None;
    let mut ended = false;
    let end_deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end_deadline {
        match subscriber.next_event(Duration::from_millis(500)) {
            Some(ConnEvent::Message(message)) => last = Some(message),
            _ => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "subscriber connection still open");
    let last: serde_json::Value = serde_json::from_slice(&last.expect("some messages")).unwrap();
    assert_eq!(last[0], 3, "the last message is an ABORT: {last}");
    assert_eq!(last[2], "wampring.error.slow_consumer", "{last}");
    // The publisher is unaffected.
    publisher.send(r#"[16,2,{"acknowledge":true},"com.example.other",[]]"#);
    publisher.expect(17);
}

#[test]
fn a_subscriber_that_does_not_read_loses_events_under_drop_events_and_stays() {
    let server = Server::start(
        "[limits]\nmax_outbound_bytes = 1048576\noutbound_soft_bytes = 65536\nslow_consumer = \"drop_events\"\n",
    );
    let mut subscriber = Client::join(server.rs, TransportKind::RawSocket);
    subscriber.send(r#"[32,1,{},"com.example.flood"]"#);
    subscriber.expect(33);

    let mut publisher = Client::join(server.ws, TransportKind::WebSocket);
    let blob = "x".repeat(60_000);
    let message = format!(r#"[16,1,{{}},"com.example.flood",["{blob}"]]"#);
    // 600 events of 60 kB (36 MB) are far past the socket buffers and the 1 MiB hard mark.
    let mut published = 0;
    for _ in 0..600 {
        publisher.send(&message);
        published += 1;
        if server.log_text().contains("dropping EVENTs") {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let log = server.log_text();
    assert!(log.contains("dropping EVENTs"), "no drop; log:\n{log}");
    assert!(
        log.contains(&format!("session {} on shard ", subscriber.session)),
        "{log}"
    );
    assert!(!log.contains("disconnecting"), "{log}");

    // The subscriber catches up: it reads what was queued for it, fewer events than were
    // published, until nothing more comes. (A PUBLISH sent before that may itself be dropped,
    // as the subscriber may still be past the soft mark: whether it is depends on how much the
    // kernel's socket buffers took.)
    let mut events = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(event) = subscriber.recv(Duration::from_millis(500)) {
        assert!(Instant::now() < deadline, "the queued events never ended");
        assert_eq!(event[0], 36, "unexpected message {event}");
        events += 1;
    }
    assert!(events < published, "{events} of {published} delivered");
    // ... and it is still subscribed and served.
    publisher.send(r#"[16,2,{},"com.example.flood",["last"]]"#);
    let event = subscriber.expect(36);
    assert_eq!(event[4][0], "last", "{event}");
    subscriber.send(r#"[16,3,{"acknowledge":true},"com.example.other",[]]"#);
    subscriber.expect(17);
}

#[test]
fn too_low_memlock_limit_is_refused_naming_the_fix() {
    let file = TempFile::with_contents(&config_text(free_port(), free_port(), ""));
    // `ulimit -l` sets both the soft and the hard limit, so the router cannot raise it.
    let script = format!(
        "ulimit -l 256 && exec '{BIN}' --config '{}'",
        file.0.display()
    );
    let output = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("RLIMIT_MEMLOCK") && stderr.contains("256 KiB"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ulimit -l") && stderr.contains("LimitMEMLOCK"),
        "{stderr}"
    );
}

/// The CPUs this test process may run on (the router inherits the mask).
fn allowed_cpus() -> Vec<usize> {
    wampring::shard::cpus::allowed_cpus().expect("sched_getaffinity")
}

fn stop_cleanly(mut server: Server) -> String {
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(2))
        .expect("still running 2 s after SIGTERM");
    let log = server.log_text();
    assert!(status.success(), "{log}");
    log
}

#[test]
fn cores_default_to_the_cpus_the_process_may_run_on() {
    let allowed = allowed_cpus();
    let log = stop_cleanly(Server::start(""));
    let n = allowed.len();
    let expected = format!(
        "starting {n} shard{} on CPU {}",
        if n == 1 { "" } else { "s" },
        wampring::shard::cpus::format_cpu_list(&allowed)
    );
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");

    // A narrower affinity mask (taskset, a container cpuset) means fewer shards, pinned to
    // the allowed CPU rather than to CPU 0.
    let last = *allowed.last().unwrap();
    let cpu = last.to_string();
    let log = stop_cleanly(Server::start_under(&["taskset", "-c", &cpu], "", &[]));
    let expected = format!("starting 1 shard on CPU {last}");
    assert!(log.contains(&expected), "expected {expected:?} in:\n{log}");
}

#[test]
fn explicit_cores_and_placement_are_used() {
    let log = stop_cleanly(Server::start_with_args(
        "",
        &["--cores", "1", "--placement", "round-robin"],
    ));
    assert!(
        log.contains("starting 1 shard on CPU") && log.contains("placement round-robin"),
        "{log}"
    );
}

#[test]
fn more_cores_than_allowed_cpus_is_refused_naming_them() {
    let allowed = allowed_cpus();
    let too_many = (allowed.len() + 1).to_string();
    let file = TempFile::with_contents(&config_text(free_port(), free_port(), ""));
    let output = run(&["--config", file.0.to_str().unwrap(), "--cores", &too_many]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cores = {too_many}"))
            && stderr.contains(&format!("only {} CPU", allowed.len()))
            && stderr.contains("taskset"),
        "{stderr}"
    );

    // The same from the config file.
    let file = TempFile::with_contents(&format!(
        "cores = {too_many}\n{}",
        config_text(free_port(), free_port(), "")
    ));
    let output = run(&["--config", file.0.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cores = {too_many}")), "{stderr}");
}

#[test]
fn bad_command_line_values_are_usage_errors() {
    let output = run(&["--cores", "0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--cores"));
    let output = run(&["--cores", "1025"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--cores"));
    let output = run(&["--placement", "random"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--placement") && stderr.contains("round-robin"),
        "{stderr}"
    );
    let output = run(&["--check-config", "a.toml", "--print-default-config"]);
    assert_eq!(output.status.code(), Some(2));
}

/// Reads until the transport reports its close and the socket ends; true if both happened.
fn ends_cleanly(client: &mut Client) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut closed = false;
    while Instant::now() < deadline {
        match client.next_event(Duration::from_millis(500)) {
            Some(ConnEvent::Closed { .. }) => closed = true,
            Some(_) => {}
            None => break,
        }
    }
    let mut buf = [0u8; 64];
    client
        .stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let eof = matches!(client.stream.read(&mut buf), Ok(0));
    closed && eof
}

#[test]
fn goodbye_ends_the_websocket_with_a_close_handshake() {
    let server = Server::start("");
    let mut client = Client::join(server.ws, TransportKind::WebSocket);
    client.send(r#"[6,{},"wamp.close.close_realm"]"#);
    let goodbye = client.expect(6);
    assert_eq!(goodbye[2], "wamp.close.goodbye_and_out");
    assert!(
        ends_cleanly(&mut client),
        "no close handshake + EOF after GOODBYE"
    );
}

#[test]
fn a_protocol_violation_is_aborted_and_closed() {
    let server = Server::start("");
    let mut client = Client::join(server.ws, TransportKind::WebSocket);
    client.send(r#"[48,"not an id"]"#);
    let abort = client.expect(3);
    assert_eq!(abort[2], "wamp.error.protocol_violation");
    assert!(
        ends_cleanly(&mut client),
        "no close handshake + EOF after ABORT"
    );
    // The router still serves others.
    Client::join(server.rs, TransportKind::RawSocket);
}
