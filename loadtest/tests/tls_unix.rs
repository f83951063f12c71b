//! The generator's TLS and Unix socket targets against a real wampring router: rpc and pubsub
//! over `rss://`, `wss://`, `rs+unix:` and `ws+unix:` add up exactly as over plain TCP, and a
//! router certificate the generator does not trust fails the setup with a TLS message. The
//! certificates are fixed test files (`tests/fixtures/`).

mod common;

use common::{count, run_load, run_report, Router};
use std::path::Path;
use std::time::Duration;

const SHORT: [&str; 4] = ["--duration", "1s", "--warmup", "300ms"];

/// Copies the test certificates (`tests/fixtures/`, see its README) into `dir`: cert.pem and
/// key.pem for the router, other.pem that it does not use.
fn certificates(dir: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (from, to) in [
        ("router-cert.pem", "cert.pem"),
        ("router-key.pem", "key.pem"),
        ("other-cert.pem", "other.pem"),
    ] {
        std::fs::copy(fixtures.join(from), dir.join(to)).unwrap();
    }
}

struct Urls {
    wss: String,
    rss: String,
    ws_unix: String,
    rs_unix: String,
}

/// A router with TLS listeners (wss, rss) and Unix socket listeners (ws, rs) besides its
/// plain ones; the certificates live in `pki`.
fn start(pki: &Path) -> (Router, Urls) {
    let (wss, rss) = (common::free_port(), common::free_port());
    let tls = format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        pki.join("cert.pem").display().to_string(),
        pki.join("key.pem").display().to_string()
    );
    let (ws_sock, rs_sock) = (pki.join("ws.sock"), pki.join("rs.sock"));
    let top = format!(
        "[[listener]]\nkind = \"websocket\"\nbind = \"127.0.0.1:{wss}\"\n{tls}\
         [[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:{rss}\"\n{tls}\
         [[listener]]\nkind = \"websocket\"\nbind = \"unix:{}\"\n\
         [[listener]]\nkind = \"rawsocket\"\nbind = \"unix:{}\"\n",
        ws_sock.display(),
        rs_sock.display()
    );
    let router = Router::start_with(&top);
    let urls = Urls {
        wss: format!("wss://127.0.0.1:{wss}/ws"),
        rss: format!("rss://127.0.0.1:{rss}"),
        ws_unix: format!("ws+unix:{}", ws_sock.display()),
        rs_unix: format!("rs+unix:{}", rs_sock.display()),
    };
    (router, urls)
}

#[test]
fn rpc_and_pubsub_over_tls_and_unix_sockets_add_up() {
    let pki = tempfile::tempdir().unwrap();
    certificates(pki.path());
    let (router, urls) = start(pki.path());
    let ca = pki.path().join("cert.pem").display().to_string();
    for (url, serializer) in [
        (&urls.rss, "msgpack"),
        (&urls.wss, "json"),
        (&urls.rs_unix, "msgpack"),
        (&urls.ws_unix, "json"),
    ] {
        let mut args = vec!["rpc", "--url", url, "--serializer", serializer];
        args.extend(["--window", "8", "--tls-ca", &ca]);
        args.extend(SHORT);
        let report = run_report(&args, router.dir.path());
        let (sent, ok) = (count(&report, "sent"), count(&report, "ok"));
        assert!(sent > 0 && sent == ok, "{url}: {report}");
        assert_eq!(count(&report, "errors"), 0, "{url}: {report}");
        assert_eq!(report["router_url"], url.as_str());
    }
    for url in [&urls.wss, &urls.rs_unix] {
        let mut args = vec!["pubsub", "--url", url, "--subscribers", "2"];
        args.extend(["--tls-insecure", "--acknowledge", "--window", "8"]);
        args.extend(SHORT);
        let report = run_report(&args, router.dir.path());
        let sent = count(&report, "sent");
        assert!(sent > 0 && count(&report, "ok") == sent, "{url}: {report}");
        assert_eq!(count(&report, "received"), 2 * sent, "{url}: {report}");
        assert_eq!(count(&report, "lost"), 0, "{url}: {report}");
    }
}

#[test]
fn an_untrusted_router_certificate_fails_the_setup() {
    let pki = tempfile::tempdir().unwrap();
    certificates(pki.path());
    let (_router, urls) = start(pki.path());
    let other = pki.path().join("other.pem").display().to_string();
    let output = run_load(
        &[
            "rpc",
            "--url",
            &urls.rss,
            "--tls-ca",
            &other,
            "--duration",
            "1s",
            "--setup-timeout",
            "3s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("setup failed") && stderr.contains("TLS"),
        "{stderr}"
    );
    // A TLS URL without a trust choice is refused before anything starts.
    let output = run_load(&["rpc", "--url", &urls.wss], Duration::from_secs(30));
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls-ca"));
}
