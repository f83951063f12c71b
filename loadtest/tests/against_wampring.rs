//! End-to-end checks of the generator against a real wampring router, about a second each:
//! the counts a scenario reports must add up exactly (every call ends as one result or one
//! error; a lossless router delivers every expected event once), and the report carries the
//! documented keys.

mod common;

use common::{count, run_load, run_report, Router};
use std::time::Duration;

const SHORT: [&str; 4] = ["--duration", "1s", "--warmup", "300ms"];

fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter()
        .chain(SHORT.iter())
        .chain(extra.iter())
        .copied()
        .collect()
}

#[test]
fn rpc_closed_loop_counts_add_up() {
    let router = Router::start();
    let pid = router.pid().to_string();
    let report = run_report(
        &with(
            &["rpc", "--url", &router.ws_url],
            &[
                "--callers",
                "2",
                "--window",
                "4",
                "--payload",
                "100",
                "--router-pid",
                &pid,
            ],
        ),
        router.dir.path(),
    );
    let (sent, ok, errors) = (
        count(&report, "sent"),
        count(&report, "ok"),
        count(&report, "errors"),
    );
    assert!(sent > 0, "{report}");
    assert_eq!(sent, ok + errors, "{report}");
    assert_eq!(errors, 0, "{report}");
    assert_eq!(report["latency_samples"].as_u64().unwrap(), ok);
    assert!(count(&report, "invocations") >= ok);
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(report[key].as_f64().unwrap() > 0.0, "{key} in {report}");
    }
    assert!(report["p50"].as_f64() <= report["p99"].as_f64());
    assert!(report["p99"].as_f64() <= report["max"].as_f64());
    assert_eq!(report["scenario"], "rpc");
    assert_eq!(report["router_url"], router.ws_url.as_str());
    assert_eq!(report["serializer"], "json");
    assert_eq!(report["mode"], "closed");
    assert!(report["achieved"].as_f64().unwrap() > 0.0);
    assert!(report["offered"].as_f64().unwrap() >= report["achieved"].as_f64().unwrap());
    assert!(
        report["cpu"]["generator_us_per_op"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(report["cpu"]["router_cpu_s"].as_f64().is_some(), "{report}");
    let busy = report["cpu"]["generator_busy"].as_f64().unwrap();
    assert!(busy > 0.0 && busy < 1.5, "{report}");
    assert!(report["cpu"]["router_busy_cores"].as_f64().unwrap() > 0.0);
}

#[test]
fn rpc_with_several_callees_spreads_calls_over_a_shared_registration() {
    let router = Router::start();
    let report = run_report(
        &with(
            &["rpc", "--url", &router.ws_url],
            &["--callers", "2", "--callees", "3", "--window", "8"],
        ),
        router.dir.path(),
    );
    let (sent, ok, errors) = (
        count(&report, "sent"),
        count(&report, "ok"),
        count(&report, "errors"),
    );
    assert!(sent > 0, "{report}");
    assert_eq!((sent, errors), (ok, 0), "{report}");
    let per_callee: Vec<u64> = report["invocations_per_callee"]
        .as_array()
        .expect("invocations_per_callee")
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    assert_eq!(per_callee.len(), 3, "{report}");
    assert_eq!(
        per_callee.iter().sum::<u64>(),
        count(&report, "invocations")
    );
    // roundrobin: every callee answers, and none gets much more than its share.
    let (least, most) = (
        *per_callee.iter().min().unwrap(),
        *per_callee.iter().max().unwrap(),
    );
    assert!(least > 0 && most <= least * 2 + 16, "{per_callee:?}");
}

#[test]
fn rpc_open_loop_over_rawsocket_msgpack_counts_add_up() {
    let router = Router::start();
    let report = run_report(
        &with(
            &["rpc", "--url", &router.rs_url, "--serializer", "msgpack"],
            &["--callers", "2", "--rate", "300", "--threads", "2"],
        ),
        router.dir.path(),
    );
    let (sent, ok, errors, unsent) = (
        count(&report, "sent"),
        count(&report, "ok"),
        count(&report, "errors"),
        count(&report, "unsent"),
    );
    assert_eq!(sent, ok + errors, "{report}");
    assert_eq!(errors, 0, "{report}");
    // 2 callers x 300/s x 1 s are due in the window: all sent (none behind schedule) give or
    // take the one at the window's edge.
    assert!((599..=601).contains(&(sent + unsent)), "{report}");
    assert!(unsent <= 2, "{report}");
    assert_eq!(report["mode"], "open");
    assert_eq!(report["serializer"], "msgpack");
    assert_eq!(report["transport"], "rawsocket");
}

#[test]
fn rpc_errors_are_counted_by_uri() {
    let router = Router::start();
    let report = run_report(
        &with(
            &["rpc", "--url", &router.ws_url],
            &["--procedure", "com.example.missing", "--window", "2"],
        ),
        router.dir.path(),
    );
    let (sent, ok, errors) = (
        count(&report, "sent"),
        count(&report, "ok"),
        count(&report, "errors"),
    );
    assert!(sent > 0);
    assert_eq!(ok, 0, "{report}");
    assert_eq!(sent, errors, "{report}");
    assert_eq!(
        report["errors"]["wamp.error.no_such_procedure"].as_u64(),
        Some(errors),
        "{report}"
    );
}

#[test]
fn pubsub_acknowledged_fanout_is_lossless_and_without_duplicates() {
    let router = Router::start();
    let report = run_report(
        &with(
            &["pubsub", "--url", &router.ws_url],
            &[
                "--acknowledge",
                "--window",
                "8",
                "--subscribers",
                "3",
                "--payload",
                "64",
            ],
        ),
        router.dir.path(),
    );
    let sent = count(&report, "sent");
    assert!(sent > 0, "{report}");
    assert_eq!(
        count(&report, "ok"),
        sent,
        "every publish acknowledged: {report}"
    );
    assert_eq!(count(&report, "expected"), 3 * sent, "{report}");
    assert_eq!(
        count(&report, "received"),
        count(&report, "expected"),
        "{report}"
    );
    assert_eq!(count(&report, "lost"), 0, "{report}");
    assert_eq!(count(&report, "in_flight"), 0, "{report}");
    assert_eq!(count(&report, "duplicated"), 0, "{report}");
    assert_eq!(
        report["latency_samples"].as_u64().unwrap(),
        count(&report, "received")
    );
    assert_eq!(report["scenario"], "pubsub");
}

#[test]
fn pubsub_open_loop_without_acknowledge_is_lossless() {
    let router = Router::start();
    let report = run_report(
        &with(
            &["pubsub", "--url", &router.rs_url],
            &[
                "--rate",
                "400",
                "--publishers",
                "2",
                "--subscribers",
                "2",
                "--threads",
                "2",
            ],
        ),
        router.dir.path(),
    );
    let sent = count(&report, "sent");
    assert!(
        (799..=801).contains(&(sent + count(&report, "unsent"))),
        "{report}"
    );
    assert_eq!(count(&report, "expected"), 2 * sent, "{report}");
    assert_eq!(count(&report, "received"), 2 * sent, "{report}");
    assert_eq!(
        (
            count(&report, "lost"),
            count(&report, "in_flight"),
            count(&report, "duplicated")
        ),
        (0, 0, 0),
        "{report}"
    );
}

/// A router whose listeners speak CBOR only, so a session that opens is a CBOR one.
fn cbor_only_router() -> Router {
    Router::start_config("", "serializers = [\"cbor\"]", "")
}

/// RPC in CBOR (the CALL template, the YIELD echo, the padding string) over `url`: every call
/// completes, none fails.
fn assert_cbor_rpc_completes(router: &Router, url: &str, transport: &str, pacing: &[&str]) {
    let mut extra = vec!["--callers", "2", "--payload", "100", "--threads", "2"];
    extra.extend_from_slice(pacing);
    let report = run_report(
        &with(&["rpc", "--url", url, "--serializer", "cbor"], &extra),
        router.dir.path(),
    );
    let (sent, ok, errors) = (
        count(&report, "sent"),
        count(&report, "ok"),
        count(&report, "errors"),
    );
    assert!(sent > 0, "{report}");
    assert_eq!((ok, errors), (sent, 0), "{report}");
    assert_eq!(count(&report, "protocol_errors"), 0, "{report}");
    assert!(count(&report, "invocations") >= ok, "{report}");
    assert_eq!(report["latency_samples"].as_u64().unwrap(), ok, "{report}");
    assert_eq!(report["serializer"], "cbor");
    assert_eq!(report["transport"], transport);
}

#[test]
fn rpc_in_cbor_over_rawsocket_and_websocket_completes_every_call() {
    let router = cbor_only_router();
    assert_cbor_rpc_completes(&router, &router.rs_url, "rawsocket", &["--window", "16"]);
    assert_cbor_rpc_completes(&router, &router.ws_url, "websocket", &["--window", "16"]);
    // Open loop too: 2 callers x 300/s for 1 s.
    assert_cbor_rpc_completes(&router, &router.rs_url, "rawsocket", &["--rate", "300"]);
}

/// PubSub in CBOR (stamped payloads written and read back at the subscribers) over `url`:
/// every publish delivered to every subscriber once.
fn assert_cbor_pubsub_lossless(router: &Router, url: &str, pacing: &[&str]) {
    let mut extra = vec!["--subscribers", "3", "--payload", "64"];
    extra.extend_from_slice(pacing);
    let report = run_report(
        &with(&["pubsub", "--url", url, "--serializer", "cbor"], &extra),
        router.dir.path(),
    );
    let sent = count(&report, "sent");
    assert!(sent > 0, "{report}");
    assert_eq!(count(&report, "errors"), 0, "{report}");
    assert_eq!(count(&report, "protocol_errors"), 0, "{report}");
    assert_eq!(count(&report, "expected"), 3 * sent, "{report}");
    assert_eq!(count(&report, "received"), 3 * sent, "{report}");
    assert_eq!(
        (
            count(&report, "lost"),
            count(&report, "in_flight"),
            count(&report, "duplicated")
        ),
        (0, 0, 0),
        "{report}"
    );
    assert_eq!(
        report["latency_samples"].as_u64().unwrap(),
        count(&report, "received"),
        "every EVENT's stamp was read: {report}"
    );
    assert_eq!(report["serializer"], "cbor");
}

#[test]
fn pubsub_in_cbor_over_rawsocket_and_websocket_is_lossless() {
    let router = cbor_only_router();
    assert_cbor_pubsub_lossless(&router, &router.ws_url, &["--acknowledge", "--window", "8"]);
    assert_cbor_pubsub_lossless(&router, &router.rs_url, &["--acknowledge", "--window", "8"]);
    assert_cbor_pubsub_lossless(
        &router,
        &router.rs_url,
        &["--rate", "400", "--threads", "2"],
    );
}

#[test]
fn connect_cycles_and_held_sessions() {
    let router = Router::start();
    let pid = router.pid().to_string();
    let report = run_report(
        &with(
            &["connect", "--url", &router.ws_url],
            &["--connections", "2", "--hold", "20", "--router-pid", &pid],
        ),
        router.dir.path(),
    );
    let (sent, ok, errors) = (
        count(&report, "sent"),
        count(&report, "ok"),
        count(&report, "errors"),
    );
    assert!(ok > 0, "{report}");
    assert_eq!(sent, ok + errors, "{report}");
    assert_eq!(count(&report, "held"), 20, "{report}");
    let memory = &report["router_memory"];
    assert_eq!(memory["held_sessions"].as_u64(), Some(20), "{report}");
    assert!(memory["rss_held_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn unreachable_router_fails_setup_quickly_with_a_message() {
    let port = common::free_port();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let output = run_load(
        &[
            "rpc",
            "--url",
            &url,
            "--duration",
            "1s",
            "--setup-timeout",
            "2s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("setup failed") && stderr.contains("connect"),
        "{stderr}"
    );
}

/// The shutdown metrics of each shard in the router's log: (shard, sessions opened).
fn sessions_opened_per_shard(log: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter_map(|line| {
            let shard = line.split("shard=").nth(1)?.split_whitespace().next()?;
            let opened = line.split("sessions_opened=").nth(1)?;
            let opened: String = opened.chars().take_while(char::is_ascii_digit).collect();
            Some((shard.to_string(), opened.parse().ok()?))
        })
        .collect()
}

#[test]
fn session_list_answers_match_the_sessions_open_on_every_shard() {
    // round-robin placement: the sessions alternate over the shards (one per CPU), so the
    // answers must gather them from all of them.
    let mut router = Router::start_with("placement = \"round-robin\"");
    let report = run_report(
        &with(
            &["session-list", "--url", &router.ws_url],
            &[
                "--sessions",
                "40",
                "--callers",
                "2",
                "--window",
                "2",
                "--threads",
                "2",
            ],
        ),
        router.dir.path(),
    );
    let (sent, ok, errors) = (
        count(&report, "sent"),
        count(&report, "ok"),
        count(&report, "errors"),
    );
    assert!(sent > 0, "{report}");
    assert_eq!((sent, errors), (ok, 0), "{report}");
    assert_eq!(report["latency_samples"].as_u64().unwrap(), ok);
    assert_eq!(count(&report, "wrong_answers"), 0, "{report}");
    assert_eq!(count(&report, "held"), 40, "{report}");
    assert_eq!(count(&report, "sessions"), 42, "{report}");
    assert_eq!(report["scenario"], "session-list");
    assert_eq!(report["unit"], "lists");
    assert!(report["p50"].as_f64().unwrap() > 0.0, "{report}");
    let answers = &report["session_list"];
    assert_eq!(answers["expected_sessions"], 42, "{report}");
    for range in ["list_length", "count_value"] {
        assert!(answers[range]["answers"].as_u64().unwrap() > 0, "{report}");
        assert_eq!(answers[range]["min"], 42, "{range}: {report}");
        assert_eq!(answers[range]["max"], 42, "{range}: {report}");
    }
    let counts = &answers["count_calls"];
    assert_eq!(counts["operation"], "wamp.session.count");
    let (count_sent, count_ok) = (
        counts["sent"].as_u64().unwrap(),
        counts["ok"].as_u64().unwrap(),
    );
    assert!(count_sent > 0, "{report}");
    assert_eq!((count_ok, counts["errors"].as_u64()), (count_sent, Some(0)));
    assert_eq!(counts["latency_samples"].as_u64(), Some(count_ok));
    assert_eq!(report["errors"].as_object().map(|e| e.len()), Some(0));

    router.stop();
    let log = router.log();
    let shards = sessions_opened_per_shard(&log);
    assert!(!shards.is_empty(), "no shard metrics in the log:\n{log}");
    if shards.len() > 1 {
        assert!(
            shards.iter().all(|(_, opened)| *opened >= 10),
            "sessions not spread over the shards: {shards:?}"
        );
    }
}

#[test]
fn session_list_over_rawsocket_msgpack_without_count() {
    let router = Router::start();
    let report = run_report(
        &with(
            &[
                "session-list",
                "--url",
                &router.rs_url,
                "--serializer",
                "msgpack",
            ],
            &["--sessions", "25", "--count", "off"],
        ),
        router.dir.path(),
    );
    let (sent, ok) = (count(&report, "sent"), count(&report, "ok"));
    assert!(sent > 0, "{report}");
    assert_eq!((ok, count(&report, "errors")), (sent, 0), "{report}");
    let answers = &report["session_list"];
    assert!(answers["count_calls"].is_null(), "{report}");
    assert_eq!(answers["count_value"]["answers"], 0, "{report}");
    assert_eq!(answers["list_length"]["min"], 26, "{report}");
    assert_eq!(answers["list_length"]["max"], 26, "{report}");
    assert_eq!(report["transport"], "rawsocket");
}

#[test]
fn session_list_counts_a_wrong_answer_as_a_failure() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let router = Router::start();
    // Three sessions the scenario does not know of: every answer is off by three.
    let mut stranger = Command::new(env!("CARGO_BIN_EXE_wampring-load"))
        .args([
            "connect",
            "--url",
            &router.ws_url,
            "--connections",
            "0",
            "--hold",
            "3",
            "--warmup",
            "0s",
            "--duration",
            "30s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wampring-load connect");
    // Its first progress line comes once its sessions are all established.
    let mut progress = BufReader::new(stranger.stderr.take().unwrap());
    let mut first = String::new();
    progress.read_line(&mut first).unwrap();
    assert!(first.contains("sessions/s"), "{first}");
    let report = run_report(
        &with(
            &["session-list", "--url", &router.ws_url],
            &["--sessions", "5"],
        ),
        router.dir.path(),
    );
    let _ = stranger.kill(); // by PID: our own child
    let _ = stranger.wait();
    let (sent, ok, errors) = (
        count(&report, "sent"),
        count(&report, "ok"),
        count(&report, "errors"),
    );
    assert!(sent > 0, "{report}");
    assert_eq!((ok, errors), (0, sent), "{report}");
    assert_eq!(
        report["errors"]["wampload.wrong_session_count"].as_u64(),
        Some(sent),
        "{report}"
    );
    assert!(count(&report, "wrong_answers") >= sent, "{report}");
    assert_eq!(report["session_list"]["list_length"]["min"], 9, "{report}");
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("did not match")),
        "{report}"
    );
}

/// Every authentication method against wampring itself: `connect` sessions with each one get
/// in (the JSON report names the method, and no cycle failed), and a wrong secret fails the
/// setup naming wampring's one denial URI. The principals are made with `wampring auth`.
#[test]
fn every_authentication_method_connects_to_wampring_and_wrong_secrets_are_denied() {
    let listener =
        "authmethods = [\"anonymous\", \"ticket\", \"wampcra\", \"cryptosign\", \"wamp-scram\"]";
    let ticket_hash = wampring::config::ticket_hash_line("ann-ticket");
    let salted = wampring::config::wampcra_line("salty-secret", Some("pepper"), 100, 32);
    let (private, cryptosign) = wampring::config::cryptosign_lines();
    let scram = wampring::config::scram_line(
        "sam-password",
        wampring::credentials::scram::Kdf::Argon2id13 {
            iterations: 4,
            memory: 256,
        },
        None,
    )
    .unwrap();
    let realm = format!(
        "[[realm.principal]]\nauthid = \"joe\"\nrole = \"user\"\nticket = \"joe-ticket\"\n\
         [[realm.principal]]\nauthid = \"ann\"\nrole = \"user\"\n{ticket_hash}\n\
         [[realm.principal]]\nauthid = \"cra\"\nrole = \"user\"\nwampcra_secret = \"cra-secret\"\n\
         [[realm.principal]]\nauthid = \"salty\"\nrole = \"user\"\n{salted}\n\
         [[realm.principal]]\nauthid = \"dev\"\nrole = \"user\"\n{cryptosign}\n\
         [[realm.principal]]\nauthid = \"sam\"\nrole = \"user\"\n{scram}\n"
    );
    let router = Router::start_config("cores = 1", listener, &realm);
    let dir = tempfile::tempdir().unwrap();
    let methods: [&[&str]; 7] = [
        &["--authmethod", "anonymous"],
        &[
            "--authmethod",
            "ticket",
            "--authid",
            "joe",
            "--secret",
            "joe-ticket",
        ],
        &[
            "--authmethod",
            "ticket",
            "--authid",
            "ann",
            "--secret",
            "ann-ticket",
        ],
        &[
            "--authmethod",
            "wampcra",
            "--authid",
            "cra",
            "--secret",
            "cra-secret",
        ],
        &[
            "--authmethod",
            "wampcra",
            "--authid",
            "salty",
            "--secret",
            "salty-secret",
        ],
        &["--authmethod", "cryptosign", "--private-key", &private],
        &[
            "--authmethod",
            "scram",
            "--authid",
            "sam",
            "--secret",
            "sam-password",
        ],
    ];
    for (url, auth) in [&router.rs_url, &router.ws_url]
        .into_iter()
        .flat_map(|url| methods.iter().map(move |auth| (url, *auth)))
    {
        let report = common::run_connect_with_auth(url, auth, dir.path());
        let (sent, ok, errors) = (
            count(&report, "sent"),
            count(&report, "ok"),
            count(&report, "errors"),
        );
        assert!(
            ok > 0 && (sent, errors) == (ok, 0),
            "{url} {auth:?}: {report}"
        );
    }
    for auth in [
        &[
            "--authmethod",
            "ticket",
            "--authid",
            "joe",
            "--secret",
            "wrong",
        ][..],
        &[
            "--authmethod",
            "wampcra",
            "--authid",
            "nobody",
            "--secret",
            "x",
        ],
        &[
            "--authmethod",
            "cryptosign",
            "--private-key",
            &"11".repeat(32),
        ],
        &[
            "--authmethod",
            "scram",
            "--authid",
            "sam",
            "--secret",
            "wrong",
        ],
    ] {
        let stderr = common::connect_with_auth_fails(&router.rs_url, auth);
        assert!(
            stderr.contains("wamp.error.authentication_denied"),
            "{auth:?}: {stderr}"
        );
    }
}
