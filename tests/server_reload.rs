//! Reloading the configuration of the real binary (SIGHUP): a router with two shards is
//! started from a config file with sessions on both shards; the file is rewritten (a realm
//! added, a realm removed, a setting that needs a restart changed) and SIGHUP sent. The new
//! realm then accepts HELLOs on every shard, the removed one refuses them, the old sessions are
//! still up and calling, and the log names what changed and what needs a restart. Then a
//! broken file is written and SIGHUP sent again: the log names the error, and the router
//! serves on with the configuration it had. A connection limit lowered by a reload refuses
//! newcomers and keeps the connections already open.

mod common;

use std::fs;
use std::time::Duration;

use common::*;
use wampring::net::TransportKind;
use wampring::wire::{code, Message, Serializer};

const WS: TransportKind = TransportKind::WebSocket;
const RAW: TransportKind = TransportKind::RawSocket;
const JSON: Serializer = Serializer::Json;

/// How long a reload may take to show in the log (the runtime polls every 100 ms).
const RELOAD_WAIT: Duration = Duration::from_secs(10);

/// A call from `caller` answered by `callee`.
fn call_answered(caller: &mut TestClient, callee: &mut TestClient, procedure: &str) {
    let request = caller.call(procedure, &[s("ping")], None);
    let invocation = callee.expect_invocation();
    callee.yield_(invocation.request, &[s("pong")], None);
    let (args, _) = caller.expect_result(request);
    assert_eq!(args, vec![s("pong")]);
}

/// The session id of a WELCOME (panics on anything else).
fn welcome_session(reply: &Msg, who: &str) -> u64 {
    match reply.get() {
        Message::Welcome { session, .. } => session,
        other => panic!("{who}: expected WELCOME, got {other:?}"),
    }
}

/// Connects over `kind` and says HELLO to `realm`; the raw reply.
fn hello_reply(router: &RouterProcess, kind: TransportKind, realm: &str) -> (TestClient, Msg) {
    let mut client = TestClient::connect(kind, JSON, router.addr(kind));
    client.name = format!("hello-{realm}");
    let reply = client.hello_reply(realm);
    (client, reply)
}

#[test]
fn sighup_applies_a_new_config_keeps_sessions_and_refuses_a_broken_file() {
    // Two shards, connections dealt in turn: consecutive sessions land on different shards.
    let mut router = RouterProcess::start(
        "[[realm]]\nname = \"old\"\n",
        &["--cores", "2", "--placement", "round-robin"],
    );
    let mut callee = router.join_on_shard("callee", WS, JSON, 0);
    let mut caller = router.join_on_shard("caller", RAW, JSON, 1);
    callee.register("com.echo");
    let (mut old_realm, reply) = hello_reply(&router, WS, "old");
    assert!(matches!(reply.get(), Message::Welcome { .. }), "{reply:?}");
    let fresh = hello_reply(&router, WS, "fresh").1;
    assert!(matches!(fresh.get(), Message::Abort { .. }), "{fresh:?}");
    call_answered(&mut caller, &mut callee, "com.echo");

    // Realm "old" goes, realm "fresh" comes, and a runtime setting that needs a restart.
    let path = router.config_path();
    let original = fs::read_to_string(&path).unwrap();
    let rewritten = original.replace("name = \"old\"", "name = \"fresh\"")
        + "\n[runtime]\nshard_channel_capacity = 1024\n";
    fs::write(&path, &rewritten).unwrap();
    assert!(
        router.reload("configuration reloaded", RELOAD_WAIT),
        "no reload line; log:\n{}",
        router.log()
    );
    let log = router.log();
    assert!(log.contains("realms added: \"fresh\""), "{log}");
    assert!(log.contains("realms removed"), "{log}");
    assert!(
        log.contains("needs a restart, kept as it runs: runtime.shard_channel_capacity"),
        "{log}"
    );

    // The new realm is served on both shards (two connections in a row: one per shard).
    let mut sessions = Vec::new();
    for kind in [WS, RAW] {
        let (mut client, reply) = hello_reply(&router, kind, "fresh");
        let session = welcome_session(&reply, "fresh");
        client.session = session;
        sessions.push((client, session));
    }
    let shards: Vec<Option<usize>> = sessions
        .iter()
        .map(|(_, session)| router.shard_of(*session))
        .collect();
    assert!(
        shards.contains(&Some(0)) && shards.contains(&Some(1)),
        "{shards:?}"
    );
    let (mut fresh_callee, _) = sessions.remove(0);
    let (mut fresh_caller, _) = sessions.remove(0);
    fresh_callee.register("com.fresh");
    call_answered(&mut fresh_caller, &mut fresh_callee, "com.fresh");

    // The removed realm refuses newcomers; its session and the old ones are still up.
    let (_, reply) = hello_reply(&router, RAW, "old");
    assert!(
        matches!(reply.get(), Message::Abort { reason, .. } if reason == "wamp.error.no_such_realm"),
        "{reply:?}"
    );
    let request = old_realm.call("com.nobody", &[], None);
    old_realm.expect_error_uri(code::CALL, request, "wamp.error.no_such_procedure");
    call_answered(&mut caller, &mut callee, "com.echo");

    // A broken file: refused, named in the log, the running configuration stays.
    fs::write(&path, "[[listener]]\nkind = \"websocket\"\n").unwrap();
    assert!(
        router.reload("reload refused", RELOAD_WAIT),
        "no refusal line; log:\n{}",
        router.log()
    );
    let log = router.log();
    let refusal = log
        .lines()
        .find(|line| line.contains("reload refused"))
        .unwrap();
    assert!(refusal.contains("ERROR"), "{refusal}");
    assert!(refusal.contains(&path.display().to_string()), "{refusal}");
    assert!(refusal.contains("missing field `bind`"), "{refusal}");
    router.assert_alive();
    call_answered(&mut caller, &mut callee, "com.echo");
    call_answered(&mut fresh_caller, &mut fresh_callee, "com.fresh");
    let (_, reply) = hello_reply(&router, WS, "fresh");
    welcome_session(&reply, "fresh after a refused reload");

    // And a good file again (the one before) reloads once more.
    fs::write(&path, &rewritten).unwrap();
    assert!(router.reload("configuration reloaded", RELOAD_WAIT));
    assert!(router.log().contains("nothing that applies changed"));

    let status = router.terminate(Duration::from_secs(5)).expect("exits");
    assert!(status.success(), "{status}; log:\n{}", router.log());
}

/// A RawSocket handshake (JSON); true when accepted, false when refused with error 4
/// (connection limit). Panics on anything else.
fn rawsocket_accepted(router: &RouterProcess) -> bool {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(router.raw_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(&[0x7F, 0xF1, 0, 0]).unwrap();
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply[0], 0x7F, "not a RawSocket handshake reply: {reply:?}");
    if reply[1] & 0x0F != 0 {
        return true;
    }
    assert_eq!(reply[1] >> 4, 4, "RawSocket error {reply:?}, want 4");
    false
}

#[test]
fn a_reloaded_connection_limit_applies_to_new_connections_and_keeps_the_open_ones() {
    let router = RouterProcess::start("", &["--cores", "1"]);
    let mut held = router.join("held", RAW, JSON);
    assert!(rawsocket_accepted(&router));

    let path = router.config_path();
    let original = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        format!("{original}\n[limits]\nmax_connections_per_shard = 1\n"),
    )
    .unwrap();
    assert!(router.reload("configuration reloaded", RELOAD_WAIT));
    assert!(
        router.log().contains("limits.max_connections_per_shard"),
        "{}",
        router.log()
    );
    // The held connection is the one allowed: newcomers are refused, it keeps working.
    assert!(!rawsocket_accepted(&router));
    let request = held.call("wamp.session.count", &[], None);
    let (count, _) = held.expect_result(request);
    assert_eq!(count, vec![u(1)]);

    fs::write(&path, &original).unwrap();
    assert!(router.reload("configuration reloaded", RELOAD_WAIT));
    assert!(rawsocket_accepted(&router));
    let mut second = router.join("second", WS, JSON);
    let request = second.call("wamp.session.count", &[], None);
    assert_eq!(second.expect_result(request).0, vec![u(2)]);
}
