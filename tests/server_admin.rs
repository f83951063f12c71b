//! The admin listener of the real `wampring` binary, at 1 and 2 shards: `/metrics` counts what
//! clients did (messages by type, call errors by URI, call latencies, sessions, registrations)
//! summed over every shard's series; `/healthz`, `/readyz`, `/status.json` and the status page
//! answer; wrong methods and paths get their status codes; a bearer token guards everything
//! but the health checks; the listener speaks TLS when given a certificate. Every router is
//! stopped by PID.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use wampring::net::TransportKind;
use wampring::wire::{code, Serializer, Value};

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An HTTP answer: status and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

fn parse_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn request_text(method: &str, path: &str, token: Option<&str>) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n")
}

/// One request over plain TCP; the server closes after its answer.
fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> Answer {
    let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(request_text(method, path, token).as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_answer(&raw)
}

fn get(port: u16, path: &str) -> Answer {
    http(port, "GET", path, None)
}

/// The value of every sample of `family` with `labels` (all of them must match), summed over
/// shards.
fn sum(metrics: &str, family: &str, labels: &[(&str, &str)]) -> f64 {
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
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

fn start(cores: usize, admin: &str) -> (RouterProcess, u16) {
    let port = free_port();
    let config = format!("cores = {cores}\n[admin]\nbind = \"127.0.0.1:{port}\"\n{admin}\n");
    let router = RouterProcess::start(&config, &[]);
    // The WAMP ports may accept (another shard's SO_REUSEPORT socket) a moment before shard 0
    // has bound the admin port.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let admin = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&admin, Duration::from_millis(200)).is_err() {
        assert!(
            std::time::Instant::now() < until,
            "the admin port never accepted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (router, port)
}

/// A callee and a caller (on different shards when there are two, with kernel placement
/// deciding), five answered calls and one to a missing procedure.
fn some_calls(router: &RouterProcess) -> (TestClient, TestClient) {
    let mut callee = router.join("callee", TransportKind::RawSocket, Serializer::MsgPack);
    let mut caller = router.join("caller", TransportKind::WebSocket, Serializer::Json);
    callee.register("com.example.add");
    for i in 0..5u64 {
        let request = caller.call("com.example.add", &[Value::UInt(i)], None);
        let invocation = callee.expect_invocation();
        callee.yield_(invocation.request, &[Value::UInt(i + 1)], None);
        caller.expect_result(request);
    }
    let missing = caller.call("com.example.missing", &[], None);
    caller.expect_error_uri(code::CALL, missing, "wamp.error.no_such_procedure");
    (callee, caller)
}

fn metrics_count_what_clients_did(cores: usize) {
    let (mut router, port) = start(cores, "");
    let _clients = some_calls(&router);
    let answer = get(port, "/metrics");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .head
            .contains("Content-Type: text/plain; version=0.0.4"),
        "{}",
        answer.head
    );
    let m = &answer.body;
    assert_eq!(sum(m, "wampring_shards", &[]), cores as f64);
    assert_eq!(
        sum(m, "wampring_messages_received_total", &[("type", "CALL")]),
        6.0
    );
    assert_eq!(
        sum(m, "wampring_messages_received_total", &[("type", "YIELD")]),
        5.0
    );
    assert_eq!(
        sum(m, "wampring_messages_sent_total", &[("type", "RESULT")]),
        5.0
    );
    assert_eq!(
        sum(m, "wampring_messages_sent_total", &[("type", "INVOCATION")]),
        5.0
    );
    assert!(sum(m, "wampring_received_bytes_total", &[("type", "CALL")]) > 6.0 * 10.0);
    assert_eq!(
        sum(
            m,
            "wampring_call_errors_total",
            &[("error", "wamp.error.no_such_procedure")]
        ),
        1.0
    );
    assert_eq!(sum(m, "wampring_call_latency_seconds_count", &[]), 5.0);
    assert_eq!(
        sum(m, "wampring_call_latency_seconds_bucket", &[("le", "+Inf")]),
        5.0
    );
    let latency = sum(m, "wampring_call_latency_seconds_sum", &[]);
    assert!(latency > 0.0 && latency < 5.0, "{latency}");
    assert_eq!(sum(m, "wampring_sessions", &[]), 2.0);
    assert_eq!(sum(m, "wampring_sessions_established_total", &[]), 2.0);
    assert_eq!(sum(m, "wampring_connections", &[]), 2.0);
    assert_eq!(
        sum(m, "wampring_registrations", &[("shard", "0")]),
        1.0,
        "every shard's replica holds the registration"
    );
    assert_eq!(sum(m, "wampring_calls_total", &[]), 5.0);
    assert_eq!(sum(m, "wampring_ready", &[]), 1.0);

    let health = get(port, "/healthz");
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, format!("ok: {cores} shards answered\n").as_str())
    );
    assert_eq!(get(port, "/readyz").status, 200);
    let status = get(port, "/status.json");
    assert_eq!(status.status, 200);
    assert!(status.head.contains("application/json"));
    assert_eq!(status.body.matches("\"shard\":").count(), cores);
    assert!(status.body.contains("\"ready\":true"));
    let page = get(port, "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>wampring status</title>"));
    assert_eq!(get(port, "/nope").status, 404);
    let post = http(port, "POST", "/metrics", None);
    assert_eq!(post.status, 405);
    assert!(post.head.contains("Allow: GET"));
    let log = router.log();
    assert!(
        log.contains(&format!("admin listener on http://127.0.0.1:{port}/")),
        "{log}"
    );
    router.terminate(Duration::from_secs(10));
}

#[test]
fn metrics_count_what_clients_did_on_one_shard() {
    metrics_count_what_clients_did(1);
}

#[test]
fn metrics_count_what_clients_did_on_two_shards() {
    metrics_count_what_clients_did(2);
}

#[test]
fn a_bearer_token_guards_all_but_the_health_checks_and_the_page() {
    let token = "0123456789abcdef-secret";
    let (mut router, port) = start(2, &format!("token = \"{token}\""));
    let refused = get(port, "/metrics");
    assert_eq!(refused.status, 401);
    assert!(refused.head.contains("WWW-Authenticate: Bearer"));
    assert!(!refused.body.contains(token));
    assert_eq!(get(port, "/status.json").status, 401);
    assert_eq!(
        http(port, "GET", "/metrics", Some("0123456789abcdef-wrong!")).status,
        401
    );
    assert_eq!(http(port, "GET", "/metrics", Some(token)).status, 200);
    assert_eq!(http(port, "GET", "/status.json", Some(token)).status, 200);
    assert_eq!(get(port, "/healthz").status, 200);
    assert_eq!(get(port, "/readyz").status, 200);
    assert_eq!(get(port, "/").status, 200);
    router.terminate(Duration::from_secs(10));
}

#[test]
fn the_admin_listener_speaks_tls_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let (mut router, port) = start(
        2,
        &format!(
            "tls_cert = {:?}\ntls_key = {:?}",
            cert.display().to_string(),
            key.display().to_string()
        ),
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(connection, socket);
    tls.write_all(request_text("GET", "/metrics", None).as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    // The server ends with close_notify; a reset after it is not a failure of the answer.
    let _ = tls.read_to_end(&mut raw);
    let answer = parse_answer(&raw);
    assert_eq!(answer.status, 200);
    assert_eq!(sum(&answer.body, "wampring_shards", &[]), 2.0);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(request_text("GET", "/metrics", None).as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw);
    assert!(!String::from_utf8_lossy(&raw).starts_with("HTTP/1.1"));
    let log = router.log();
    assert!(
        log.contains(&format!("admin listener on https://127.0.0.1:{port}/")),
        "{log}"
    );
    router.terminate(Duration::from_secs(10));
}

#[test]
fn a_bad_admin_table_is_named_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:18181\"\n[[realm]]\nname = \"realm1\"\n[admin]\nbind = \"127.0.0.1:18181\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wampring"))
        .arg("--check-config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("admin.bind: 127.0.0.1:18181 is already used by a listener"),
        "{stderr}"
    );
}

/// Raw bytes to the admin port; what comes back before the server closes.
fn raw_exchange(port: u16, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn bad_requests_get_their_status_and_idle_clients_block_nobody() {
    let (mut router, port) = start(2, "");
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).unwrap())
        .collect();
    assert!(raw_exchange(port, b"NONSENSE\r\n\r\n").starts_with("HTTP/1.1 400 "));
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.extend_from_slice(&[b'a'; 9000]);
    huge.extend_from_slice(b"\r\n\r\n");
    assert!(raw_exchange(port, &huge).starts_with("HTTP/1.1 431 "));
    assert_eq!(
        get(port, "/healthz").status,
        200,
        "idle clients hold no one up"
    );
    drop(idle);
    router.assert_alive();
    router.terminate(Duration::from_secs(10));
}
