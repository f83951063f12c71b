//! File-descriptor limits over real sockets. This file owns the router's behaviour at its
//! RLIMIT_NOFILE: started with a low limit (set in the child before exec, so it cannot raise
//! it), the router warns that `max_connections_per_shard × cores` does not fit and enforces the
//! per-shard limit lowered to what fits, so clients over it get their refusal (HTTP 503;
//! RawSocket error 4, "maximum connection count reached") instead of waiting in the backlog;
//! with the limit lowered further while it runs (prlimit), accept() fails with EMFILE and the
//! spare descriptor still answers every client. In both cases each answer must arrive within
//! [`ANSWER_WITHIN`] (a deadline on a blocking read), the log gets a few rate-limited lines,
//! the router lives on, and clients are served again once the held connections close. The
//! refusal times are printed for the record (median of 20):
//! `cargo test --test server_fd_limit -- --nocapture`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use wampring::net::TransportKind;

/// RLIMIT_NOFILE the router starts with: room for a few dozen connections per shard.
const NOFILE: u64 = 128;
/// Every client must have its answer (handshake or refusal) by then.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// Refused clients timed per test.
const PROBES: usize = 20;
/// Held connections must not be closed by the router's deadlines while a test runs.
const CONFIG: &str = "[limits]\nhandshake_timeout_ms = 60000\nhello_timeout_ms = 60000\n";

const KINDS: [TransportKind; 2] = [TransportKind::WebSocket, TransportKind::RawSocket];

/// What one client got.
enum Outcome {
    /// The transport handshake completed; the connection is held open.
    Open(TcpStream),
    /// Refused; the time from the start of the connect to the answer.
    Refused(Duration),
}

/// Connects over `kind` and does the transport handshake (WebSocket upgrade offering
/// wamp.2.json; RawSocket JSON, 16 MiB). Panics when no answer arrives within
/// [`ANSWER_WITHIN`] or the answer is anything but success or the overload refusal.
fn attempt(router: &RouterProcess, kind: TransportKind) -> Outcome {
    let start = Instant::now();
    let deadline = start + ANSWER_WITHIN;
    let mut stream = TcpStream::connect_timeout(&router.addr(kind), ANSWER_WITHIN)
        .unwrap_or_else(|e| panic!("{kind:?}: connect: {e}"));
    stream.set_nodelay(true).unwrap();
    match kind {
        TransportKind::WebSocket => {
            let request = ws_upgrade_request(router.ws_port, Some("wamp.2.json"));
            stream.write_all(request.as_bytes()).unwrap();
            let head = read_until(&mut stream, deadline, |got| {
                got.windows(4).any(|w| w == b"\r\n\r\n")
            });
            let head = String::from_utf8_lossy(&head).to_string();
            match http_status(&head).0 {
                101 => Outcome::Open(stream),
                503 => Outcome::Refused(start.elapsed()),
                code => panic!("WebSocket: HTTP {code}, want 101 or 503: {head}"),
            }
        }
        TransportKind::RawSocket => {
            stream.write_all(&[0x7F, 0xF1, 0, 0]).unwrap();
            let reply = read_until(&mut stream, deadline, |got| got.len() >= 4);
            assert_eq!(
                reply[0], 0x7F,
                "RawSocket: not a handshake reply: {reply:?}"
            );
            if reply[1] & 0x0F != 0 {
                Outcome::Open(stream)
            } else {
                assert_eq!(
                    reply[1] >> 4,
                    4,
                    "RawSocket: error {}, want 4 (maximum connection count reached)",
                    reply[1] >> 4
                );
                Outcome::Refused(start.elapsed())
            }
        }
    }
}

/// Reads until `done` says the bytes are complete; panics at `deadline`, EOF or a reset.
fn read_until(stream: &mut TcpStream, deadline: Instant, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while !done(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no answer by the deadline (got {:?})",
            String::from_utf8_lossy(&got)
        );
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => panic!("EOF before the answer (got {got:?})"),
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("{e} before the answer (got {got:?})"),
        }
    }
    got
}

/// [`PROBES`] clients, alternating transports, each of which must be refused; returns the
/// refusal times. `idle` spaces them (a client that arrives after a quiet spell, not right
/// behind another).
fn probe_refusals(
    router: &RouterProcess,
    when: &str,
    idle: impl Fn(usize) -> Duration,
) -> Vec<Duration> {
    (0..PROBES)
        .map(|i| {
            std::thread::sleep(idle(i));
            match attempt(router, KINDS[i % 2]) {
                Outcome::Refused(took) => took,
                Outcome::Open(_) => panic!("{when}: client {i} ({:?}) was served", KINDS[i % 2]),
            }
        })
        .collect()
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what}: refusal median {:.2} ms, max {:.2} ms over {} clients (connect to answer)",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        times.len()
    );
}

/// Once the held connections are gone, both transports are served again: a client completes
/// its transport handshake and gets WELCOME for its HELLO on the same connection (bounded
/// wait: the shards see the closes asynchronously, each at its own pace).
fn served_again(router: &RouterProcess) {
    for kind in KINDS {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            match attempt(router, kind) {
                Outcome::Open(stream) => {
                    welcomed(stream, kind);
                    break;
                }
                Outcome::Refused(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Outcome::Refused(_) => panic!("{kind:?}: still refused {IO_TIMEOUT:?} later"),
            }
        }
    }
}

/// Says HELLO (JSON) on a connection whose transport handshake completed; panics unless a
/// WELCOME comes back.
fn welcomed(mut stream: TcpStream, kind: TransportKind) {
    let hello = format!(r#"[1,"{REALM}",{{"roles":{{"caller":{{}}}}}}]"#);
    let frame = match kind {
        TransportKind::WebSocket => RawWs::frame(true, 0x1, hello.as_bytes()),
        TransportKind::RawSocket => {
            // Regular message, 24-bit big-endian length.
            let mut frame = vec![0, 0, 0, hello.len() as u8];
            frame.extend_from_slice(hello.as_bytes());
            frame
        }
    };
    stream.write_all(&frame).unwrap();
    let deadline = Instant::now() + IO_TIMEOUT;
    read_until(&mut stream, deadline, |got| {
        got.windows(3).any(|w| w == b"[2,")
    });
}

/// The number right after `needle` in `log`.
fn number_after(log: &str, needle: &str) -> Option<u64> {
    let at = log.find(needle)? + needle.len();
    let digits: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Stops the router and returns its final "stopped: ..." metrics line.
fn stop(router: &mut RouterProcess) -> String {
    let status = router
        .terminate(IO_TIMEOUT)
        .expect("router stops on SIGTERM");
    assert!(status.success(), "router exit status {status}");
    let log = router.log();
    log.lines()
        .find(|line| line.contains("stopped: "))
        .unwrap_or_else(|| panic!("no final metrics line:\n{log}"))
        .to_string()
}

/// The configured limit (default 100,000 per shard) does not fit 128 descriptors: the router
/// says so at start, fills each shard to the limit that fits, and refuses every client beyond
/// it at once, with one log line per shard instead of one per client.
fn configured_limit_over_the_fd_limit(cores: usize) {
    let cores_arg = cores.to_string();
    let mut router = RouterProcess::start_with_nofile(CONFIG, &["--cores", &cores_arg], NOFILE);
    let log = router.log();
    let plural = if cores == 1 { "" } else { "s" };
    assert!(
        log.contains(&format!(
            "max_connections_per_shard = 100000 on {cores} shard{plural}"
        )),
        "no start-up warning about the descriptor limit:\n{log}"
    );
    let effective = number_after(&log, "each shard takes at most ")
        .unwrap_or_else(|| panic!("the warning names no effective limit:\n{log}"))
        as usize;
    assert!(
        (4..NOFILE as usize / cores).contains(&effective),
        "effective limit {effective}"
    );

    // Fill every shard (the kernel spreads connections over the shards; the bound allows for
    // refusals by a full shard while another still has room).
    let capacity = effective * cores;
    let mut held = Vec::new();
    for i in 0..capacity + 200 {
        if held.len() == capacity {
            break;
        }
        if let Outcome::Open(stream) = attempt(&router, KINDS[i % 2]) {
            held.push(stream);
        }
    }
    assert_eq!(
        held.len(),
        capacity,
        "connections held before all shards were full"
    );

    let times = probe_refusals(&router, "at the effective limit", |_| Duration::ZERO);
    report(
        &format!("{cores} core(s), at the connection limit fitted to RLIMIT_NOFILE {NOFILE}"),
        times,
    );
    router.assert_alive();

    let log = router.log();
    let refused_lines = log
        .matches(&format!(
            "connection refused: at the limit of {effective} connections"
        ))
        .count();
    assert!(
        (1..=2 * cores).contains(&refused_lines),
        "{refused_lines} \"connection refused\" lines for {PROBES}+ refusals, want one per shard per 10 s:\n{log}"
    );
    assert!(
        !log.contains("accept failed"),
        "the fitted limit must refuse before descriptors run out:\n{log}"
    );

    drop(held);
    served_again(&router);
    let metrics = stop(&mut router);
    let refused = number_after(&metrics, "connections_refused=").unwrap();
    assert!(refused >= PROBES as u64, "{metrics}");
}

#[test]
fn configured_limit_over_the_fd_limit_is_lowered_and_enforced_at_1_core() {
    configured_limit_over_the_fd_limit(1);
}

#[test]
fn configured_limit_over_the_fd_limit_is_lowered_and_enforced_at_2_cores() {
    configured_limit_over_the_fd_limit(2);
}

fn open_fds(pid: u32) -> std::collections::BTreeSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/<pid>/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The smallest descriptor number `pid` does not use (the next one it would get), once its
/// set of descriptors has stopped changing: connections that ended (the start-up probes)
/// close shortly after, and would leave a hole under the limit.
fn lowest_free_fd_when_settled(pid: u32) -> u64 {
    let mut last = open_fds(pid);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = open_fds(pid);
        if now == last {
            return (0..).find(|fd| !now.contains(fd)).unwrap();
        }
        last = now;
    }
    panic!("the router's descriptors did not settle in 5 s: {last:?}");
}

/// Sets the soft RLIMIT_NOFILE of process `pid` (ours: same user, no privilege needed).
fn set_soft_nofile(pid: u32, soft: u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reads the soft/hard pair of our own child; only `old` is written.
    let got = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(got, 0, "prlimit get: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above; the kernel only reads `new`.
    let set = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(set, 0, "prlimit set: {}", std::io::Error::last_os_error());
}

/// Out of descriptors while running (the limit lowered under the router, as when something
/// else used them up): accept() fails with EMFILE, and the spare descriptor still answers every
/// waiting client; the failure is logged once, not every few milliseconds. accept() fails with
/// EMFILE even when no client waits, so the shard retries with a back-off (up to 100 ms): a
/// client right behind a refused one is answered at once, one after a quiet spell within the
/// back-off. `idle` spaces the clients.
fn out_of_descriptors_at_runtime(args: &[&str], idle: impl Fn(usize) -> Duration) {
    const HELD: usize = 10;
    let mut router = RouterProcess::start_with_nofile(CONFIG, args, 256);
    let mut held: Vec<TcpStream> = (0..HELD)
        .map(|i| match attempt(&router, KINDS[i % 2]) {
            Outcome::Open(stream) => stream,
            Outcome::Refused(_) => panic!("refused below every limit"),
        })
        .collect();
    set_soft_nofile(router.pid(), lowest_free_fd_when_settled(router.pid()));
    // An accept already waiting in io_uring read RLIMIT_NOFILE when it was submitted, so the
    // first client of each listener may still be served (and is held: it uses a descriptor
    // over the new limit); every accept after it sees the lowered limit.
    for kind in KINDS {
        if let Outcome::Open(stream) = attempt(&router, kind) {
            held.push(stream);
        }
    }

    let times = probe_refusals(&router, "out of descriptors", &idle);
    let spacing = if idle(1).is_zero() {
        "back to back"
    } else {
        "after quiet spells"
    };
    report(
        &format!("{args:?}, out of descriptors (EMFILE, spare descriptor), clients {spacing}"),
        times,
    );
    router.assert_alive();

    let log = router.log();
    let lines = log.matches("accept failed").count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} \"accept failed\" lines for {PROBES} failed accepts, want one per 10 s:\n{log}"
    );
    assert!(log.contains("Too many open files"), "{log}");

    drop(held);
    served_again(&router);
    let metrics = stop(&mut router);
    assert!(
        number_after(&metrics, "connections_refused=").unwrap() >= PROBES as u64,
        "{metrics}"
    );
    assert!(
        number_after(&metrics, "accept_failures=").unwrap() >= 1,
        "{metrics}"
    );
}

/// Clients 250..350 ms apart, spread over the back-off's 100 ms cycle.
#[test]
fn out_of_descriptors_every_client_is_still_answered_at_1_core() {
    out_of_descriptors_at_runtime(&["--cores", "1"], |i| {
        Duration::from_millis(250 + (i as u64 * 37) % 100)
    });
}

/// Round-robin: only shard 0 accepts, and hands connections to shard 1 by duplicating them.
#[test]
fn out_of_descriptors_every_client_is_still_answered_at_2_cores_round_robin() {
    out_of_descriptors_at_runtime(&["--cores", "2", "--placement", "round-robin"], |_| {
        Duration::ZERO
    });
}
