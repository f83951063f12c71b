//! TLS and Unix socket listeners against the real `wampring` binary: WAMP sessions (call and
//! publish round trips) over wss, RawSocket over TLS, and Unix sockets of both kinds (plain and
//! TLS); Unix connections dealt to every shard; a client that does not trust the certificate
//! fails its handshake; a plain-text client on a TLS port is closed while TLS sessions go on;
//! stale and live socket files at start; `--check-config` naming a bad certificate key. The
//! certificate is made by rcgen into a temporary directory; every router is stopped by PID.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use wampring::net::TransportKind;
use wampring::wire::{Serializer, Value};

/// Certificate, key and socket paths in one temporary directory.
struct Setup {
    dir: tempfile::TempDir,
    wss_port: u16,
    rss_port: u16,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let certified =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .unwrap();
        std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            certified.key_pair.serialize_pem(),
        )
        .unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        std::fs::write(dir.path().join("other.pem"), other.cert.pem()).unwrap();
        let (wss_port, rss_port) = (free_port(), free_port());
        Setup {
            dir,
            wss_port,
            rss_port,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Listeners for the router's config: wss, rss, and Unix sockets (ws, rs, rss).
    fn listeners(&self) -> String {
        let (cert, key) = (self.path("cert.pem"), self.path("key.pem"));
        let tls = format!(
            "tls_cert = {:?}\ntls_key = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        );
        let unix = |name: &str| format!("unix:{}", self.path(name).display());
        format!(
            "[[listener]]\nkind = \"websocket\"\nbind = \"127.0.0.1:{}\"\n{tls}\
             [[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:{}\"\n{tls}\
             [[listener]]\nkind = \"websocket\"\nbind = {:?}\n\
             [[listener]]\nkind = \"rawsocket\"\nbind = {:?}\n\
             [[listener]]\nkind = \"rawsocket\"\nbind = {:?}\n{tls}",
            self.wss_port,
            self.rss_port,
            unix("ws.sock"),
            unix("rs.sock"),
            unix("rss.sock"),
        )
    }

    fn tls_addr(&self, kind: TransportKind) -> SocketAddr {
        let port = match kind {
            TransportKind::WebSocket => self.wss_port,
            TransportKind::RawSocket => self.rss_port,
        };
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A client over TLS (trusting our certificate) on the wss or rss port.
    fn tls_client(&self, kind: TransportKind, ser: Serializer) -> TestClient {
        let addr = self.tls_addr(kind);
        let sock = Sock::tcp(addr, IO_TIMEOUT)
            .unwrap()
            .tls(Some(&self.path("cert.pem")), "127.0.0.1");
        let mut client = TestClient::connect_over(kind, ser, sock, &addr.to_string());
        client.name = format!("tls {kind:?}/{ser}");
        client
    }

    /// A client on one of the Unix sockets, optionally over TLS.
    fn unix_client(&self, socket: &str, kind: TransportKind, ser: Serializer) -> TestClient {
        let mut sock = Sock::unix(&self.path(socket), IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect {socket}: {e}"));
        if socket.starts_with("rss") {
            sock = sock.tls(Some(&self.path("cert.pem")), "localhost");
        }
        let mut client = TestClient::connect_over(kind, ser, sock, "localhost");
        client.name = format!("{socket} {kind:?}/{ser}");
        client
    }
}

/// Waits (bounded) until the router's log has `needle` (the listening lines come just after
/// the ports accept).
fn assert_logged(router: &RouterProcess, needle: &str) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while !router.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "{needle} not in the log:\n{}",
            router.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A callee and subscriber on `a`, a caller and publisher on `b`: one call and one publish
/// make their round trips. Joins the clients that have not joined yet.
fn round_trips(mut a: TestClient, mut b: TestClient) {
    for client in [&mut a, &mut b] {
        if client.session == 0 {
            client.hello(REALM);
        }
    }
    let procedure = format!("com.tls.echo.{}", a.session);
    let topic = format!("com.tls.news.{}", a.session);
    a.register(&procedure);
    a.subscribe(&topic);
    let call = b.call(&procedure, &[s("ping")], None);
    let invocation = a.expect_invocation();
    a.yield_(invocation.request, &[s("pong")], None);
    let (args, _) = b.expect_result(call);
    assert_eq!(args, vec![s("pong")], "{} -> {}", b.name, a.name);
    let publication = b.publish(
        &topic,
        dict(vec![("acknowledge", Value::Bool(true))]),
        &[u(7)],
        None,
    );
    b.expect_published(publication);
    let event = a.expect_event();
    assert_eq!(event.payload.0, vec![u(7)]);
    a.goodbye();
    b.goodbye();
}

#[test]
fn wss_and_rawsocket_tls_sessions_call_and_publish() {
    let setup = Setup::new();
    let router = RouterProcess::start(&setup.listeners(), &[]);
    for url in [
        format!("wss://127.0.0.1:{}/ws", setup.wss_port),
        format!("rss://127.0.0.1:{}", setup.rss_port),
    ] {
        assert_logged(&router, &url);
    }
    for (kind, ser) in COMBOS {
        round_trips(setup.tls_client(kind, ser), setup.tls_client(kind, ser));
    }
    // TLS and plain sessions meet in one realm.
    round_trips(
        setup.tls_client(TransportKind::RawSocket, Serializer::MsgPack),
        router.join("plain", TransportKind::WebSocket, Serializer::Json),
    );
    // A large message crosses TLS records in both directions.
    let mut a = setup.tls_client(TransportKind::WebSocket, Serializer::MsgPack);
    let mut b = setup.tls_client(TransportKind::RawSocket, Serializer::Json);
    a.hello(REALM);
    b.hello(REALM);
    a.register("com.tls.big");
    let blob = "x".repeat(60_000);
    let call = b.call("com.tls.big", &[s(&blob)], None);
    let invocation = a.expect_invocation();
    assert_eq!(invocation.payload.0, vec![s(&blob)]);
    a.yield_(invocation.request, &[s(&blob)], None);
    assert_eq!(b.expect_result(call).0, vec![s(&blob)]);
}

#[test]
fn unix_socket_sessions_of_both_kinds_call_and_publish() {
    let setup = Setup::new();
    // A socket file left by an earlier run (nobody listens on it) is removed at start.
    drop(std::os::unix::net::UnixListener::bind(setup.path("rs.sock")).unwrap());
    assert!(setup.path("rs.sock").exists());
    let router = RouterProcess::start(&setup.listeners(), &[]);
    for url in [
        format!("ws+unix:{}", setup.path("ws.sock").display()),
        format!("rs+unix:{}", setup.path("rs.sock").display()),
        format!("rss+unix:{}", setup.path("rss.sock").display()),
    ] {
        assert_logged(&router, &url);
    }
    for ser in Serializer::ALL {
        round_trips(
            setup.unix_client("ws.sock", TransportKind::WebSocket, ser),
            setup.unix_client("rs.sock", TransportKind::RawSocket, ser),
        );
        round_trips(
            setup.unix_client("rss.sock", TransportKind::RawSocket, ser),
            router.join("tcp", TransportKind::RawSocket, ser),
        );
    }
    drop(router);
    // A clean exit removes the socket files.
    for name in ["ws.sock", "rs.sock", "rss.sock"] {
        assert!(!setup.path(name).exists(), "{name} left behind");
    }
}

#[test]
fn unix_connections_are_dealt_to_every_shard() {
    let setup = Setup::new();
    let router = RouterProcess::start(&setup.listeners(), &["--cores", "2"]);
    let mut shards = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut client = setup.unix_client("rs.sock", TransportKind::RawSocket, Serializer::Json);
        let session = client.hello(REALM);
        let deadline = Instant::now() + IO_TIMEOUT;
        let shard = loop {
            if let Some(shard) = router.shard_of(session) {
                break shard;
            }
            assert!(Instant::now() < deadline, "no shard line for {session}");
            std::thread::sleep(Duration::from_millis(10));
        };
        shards.push(shard);
        clients.push(client);
    }
    shards.sort_unstable();
    shards.dedup();
    assert_eq!(shards, vec![0, 1], "Unix connections all on one shard");
    // Sessions on both shards reach each other.
    let (b, a) = (clients.pop().unwrap(), clients.pop().unwrap());
    drop(clients);
    let (mut a, mut b) = (a, b);
    a.register("com.unix.cross");
    let call = b.call("com.unix.cross", &[u(1)], None);
    let invocation = a.expect_invocation();
    a.yield_(invocation.request, &[u(2)], None);
    assert_eq!(b.expect_result(call).0, vec![u(2)]);
}

#[test]
fn an_untrusted_certificate_fails_the_client_handshake() {
    let setup = Setup::new();
    let mut router = RouterProcess::start(&setup.listeners(), &[]);
    for kind in [TransportKind::WebSocket, TransportKind::RawSocket] {
        let mut sock = Sock::tcp(setup.tls_addr(kind), IO_TIMEOUT)
            .unwrap()
            .tls(Some(&setup.path("other.pem")), "127.0.0.1");
        let error = sock.handshake(IO_TIMEOUT).unwrap_err();
        assert!(error.to_string().contains("certificate"), "{error}");
        // The right certificate, the wrong name.
        let mut sock = Sock::tcp(setup.tls_addr(kind), IO_TIMEOUT)
            .unwrap()
            .tls(Some(&setup.path("cert.pem")), "example.com");
        assert!(sock.handshake(IO_TIMEOUT).is_err());
    }
    router.assert_alive();
    round_trips(
        setup.tls_client(TransportKind::WebSocket, Serializer::Json),
        setup.tls_client(TransportKind::RawSocket, Serializer::Json),
    );
}

#[test]
fn a_plain_client_on_a_tls_port_is_closed_without_harming_others() {
    let setup = Setup::new();
    let mut router = RouterProcess::start(&setup.listeners(), &[]);
    let mut a = setup.tls_client(TransportKind::WebSocket, Serializer::Json);
    let mut b = setup.tls_client(TransportKind::RawSocket, Serializer::MsgPack);
    a.hello(REALM);
    b.hello(REALM);
    a.register("com.tls.survivor");

    for kind in [TransportKind::WebSocket, TransportKind::RawSocket] {
        // The plain handshake (HTTP upgrade / RawSocket octets) is not a TLS record.
        let mut plain = Sock::tcp(setup.tls_addr(kind), IO_TIMEOUT).unwrap();
        let hello: &[u8] = match kind {
            TransportKind::WebSocket => {
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                  Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n"
            }
            TransportKind::RawSocket => &[0x7f, 0xf1, 0x00, 0x00],
        };
        std::io::Write::write_all(&mut plain, hello).unwrap();
        assert!(
            wait_eof(&mut plain, Instant::now() + IO_TIMEOUT),
            "{kind:?}: the router kept a plain-text client on its TLS port"
        );
    }
    // Garbage after a good TLS start does not hurt either.
    let mut half = Sock::tcp(setup.tls_addr(TransportKind::RawSocket), IO_TIMEOUT).unwrap();
    std::io::Write::write_all(&mut half, &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]).unwrap();
    assert!(wait_eof(&mut half, Instant::now() + IO_TIMEOUT));

    router.assert_alive();
    let call = b.call("com.tls.survivor", &[u(3)], None);
    let invocation = a.expect_invocation();
    a.yield_(invocation.request, &[u(4)], None);
    assert_eq!(b.expect_result(call).0, vec![u(4)]);
    drop((a, b));
    // The three failures are counted (the shutdown line sums the shards).
    let mut router = router;
    router.terminate(Duration::from_secs(5));
    let log = router.log();
    assert!(log.contains("tls_failures=3"), "{log}");
}

/// Runs the binary with `args` and the config `text` (written next to the certificate);
/// returns its exit code and stderr. Stopped by PID if it runs past 10 s.
fn run_router(dir: &Path, text: &str, args: &[&str]) -> (Option<i32>, String) {
    let config = dir.join(format!("run-{}.toml", free_port()));
    std::fs::write(&config, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wampring"))
        .args(args)
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            // SAFETY: kill on the PID of our own child, which has not been reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status, stderr)
}

#[test]
fn a_live_unix_socket_stops_a_second_router_and_bad_certificates_are_named() {
    let setup = Setup::new();
    let router = RouterProcess::start(&setup.listeners(), &[]);
    let dir = setup.dir.path();
    let second =
        "[[listener]]\nkind = \"rawsocket\"\nbind = \"unix:rs.sock\"\n[[realm]]\nname = \"r\"\n";
    let (code, stderr) = run_router(dir, second, &["--config"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("rs.sock is in use"), "{stderr}");
    drop(router);

    let listener = |tls: &str| {
        format!("[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:{}\"\n{tls}[[realm]]\nname = \"r\"\n", free_port())
    };
    std::fs::write(dir.join("garbage.pem"), "not a pem file").unwrap();
    for (tls, wanted) in [
        (
            "tls_cert = \"nope.pem\"\ntls_key = \"key.pem\"\n",
            "listener[0].tls_cert: cannot read",
        ),
        (
            "tls_cert = \"cert.pem\"\ntls_key = \"garbage.pem\"\n",
            "listener[0].tls_key:",
        ),
        (
            "tls_cert = \"garbage.pem\"\ntls_key = \"key.pem\"\n",
            "listener[0].tls_cert:",
        ),
        ("tls_cert = \"cert.pem\"\n", "listener[0].tls_key: missing"),
    ] {
        for args in [&["--check-config"][..], &["--config"][..]] {
            let (code, stderr) = run_router(dir, &listener(tls), args);
            assert_eq!(code, Some(1), "{args:?} {tls}: {stderr}");
            assert!(
                stderr.contains(wanted),
                "{args:?}: {wanted:?} not in {stderr}"
            );
        }
    }
    let (code, stderr) = run_router(
        dir,
        &listener("tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n"),
        &["--check-config"],
    );
    assert_eq!(code, Some(0), "{stderr}");
}
