//! Real-socket tests of what one session can make the router hold: its registrations and
//! subscriptions are capped per session (`limits.max_*_per_session`, counted while SUBSCRIBEs
//! are still in flight), and when a session that held many leaves, the router's tables shrink
//! and the memory goes back to the OS (RSS read from /proc), at 1 and 2 cores.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wampring::net::TransportKind;
use wampring::router::uri;
use wampring::wire::{Message, Serializer};

/// SUBSCRIBEs sent back to back before their replies are read.
const BATCH: usize = 1000;

/// Subscribes `client` to `count` distinct topics, pipelined in batches; returns how many were
/// accepted and checks that every refusal is `wampring.error.too_many_subscriptions`.
fn subscribe_many(client: &mut TestClient, prefix: &str, count: usize) -> usize {
    let mut accepted = 0;
    let mut sent = 0;
    while sent < count {
        let batch = BATCH.min(count - sent);
        let requests: Vec<u64> = (0..batch)
            .map(|i| client.send_subscribe(&format!("{prefix}.{}", sent + i)))
            .collect();
        sent += batch;
        for request in requests {
            let reply = client.recv();
            match reply.get() {
                Message::Subscribed { request: r, .. } if r == request => accepted += 1,
                Message::Error {
                    request: r, error, ..
                } if r == request => assert_eq!(error, uri::TOO_MANY_SUBSCRIPTIONS),
                other => panic!("SUBSCRIBE {request}: unexpected {other:?}"),
            }
        }
    }
    accepted
}

/// Resident set size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}

fn per_session_limits_hold(cores: &str) {
    let router = RouterProcess::start(
        "[limits]\nmax_subscriptions_per_session = 2000\nmax_registrations_per_session = 50\n",
        &["--cores", cores],
    );
    let mut client = router.join("greedy", TransportKind::RawSocket, Serializer::MsgPack);
    assert_eq!(subscribe_many(&mut client, "com.greedy.topic", 2100), 2000);
    let mut registered = 0;
    for n in 0..60 {
        let request = client.send_register(&format!("com.greedy.proc.{n}"));
        match client.recv().get() {
            Message::Registered { request: r, .. } if r == request => registered += 1,
            Message::Error {
                request: r, error, ..
            } if r == request => assert_eq!(error, uri::TOO_MANY_REGISTRATIONS),
            other => panic!("REGISTER: unexpected {other:?}"),
        }
    }
    assert_eq!(registered, 50);
    // Refusals are answers, not a reason to end the session; others are not affected.
    let mut other = router.join("other", TransportKind::WebSocket, Serializer::Json);
    other.subscribe("com.greedy.topic.1");
    let request = client.publish(
        "com.greedy.topic.1",
        dict(vec![("acknowledge", wampring::wire::Value::Bool(true))]),
        &[],
        None,
    );
    client.expect_published(request);
    other.expect_event();
}

#[test]
fn per_session_limits_hold_at_1_core() {
    per_session_limits_hold("1");
}

#[test]
fn per_session_limits_hold_at_2_cores() {
    per_session_limits_hold("2");
}

fn memory_goes_back_when_a_greedy_session_leaves(cores: &str) {
    const TOPICS: usize = 60_000;
    let router = RouterProcess::start(
        "[limits]\nmax_subscriptions_per_session = 100000\n",
        &["--cores", cores],
    );
    let mut client = router.join("greedy", TransportKind::RawSocket, Serializer::MsgPack);
    let before = rss_kib(router.pid());
    assert_eq!(
        subscribe_many(&mut client, "com.greedy.topic", TOPICS),
        TOPICS
    );
    let held = rss_kib(router.pid());
    let growth = held.saturating_sub(before);
    assert!(
        growth > 10 * 1024,
        "{TOPICS} subscriptions grew RSS by only {growth} KiB"
    );
    client.disconnect();
    // Tables shrink at once; the shards return the freed pages within a few seconds. Not all
    // of it: the allocator keeps some partly used pages (about a quarter at 2 cores, where
    // table updates were allocated on one shard and freed on the other).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = rss_kib(router.pid());
    while after > before + growth / 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = rss_kib(router.pid());
    }
    eprintln!("RSS {before} KiB -> {held} KiB with {TOPICS} subscriptions -> {after} KiB after");
    assert!(
        after <= before + growth / 2,
        "RSS {before} KiB before, {held} KiB with {TOPICS} subscriptions, still {after} KiB after the session left\n{}", smaps(router.pid())
    );
    // The router is fine afterwards.
    let mut next = router.join("next", TransportKind::WebSocket, Serializer::Json);
    next.subscribe("com.greedy.topic.1");
}

#[test]
fn memory_goes_back_when_a_greedy_session_leaves_at_1_core() {
    memory_goes_back_when_a_greedy_session_leaves("1");
}

#[test]
fn memory_goes_back_when_a_greedy_session_leaves_at_2_cores() {
    memory_goes_back_when_a_greedy_session_leaves("2");
}

/// The mappings of process `pid` holding more than 1 MB, for a failure message: which memory
/// stayed (the allocator's arena, or something else).
fn smaps(pid: u32) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut out = Vec::new();
    let mut header = String::new();
    for line in text.lines() {
        if line.contains('-') && !line.starts_with(char::is_uppercase) {
            header = line.to_string();
        } else if let Some(rest) = line.strip_prefix("Rss:") {
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().unwrap();
            if kb > 1000 {
                out.push(format!("{kb} {header}"));
            }
        }
    }
    out.join("\n")
}
