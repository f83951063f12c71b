//! Connections a shard cannot take, and failed accepts. A shard at its connection limit still
//! accepts each client and answers it at once in its transport's terms (HTTP 503; RawSocket
//! error 4, "maximum connection count reached"), then closes: a refused client learns it in a
//! round trip instead of waiting in the listen backlog until it gives up. Out of descriptors
//! (EMFILE/ENFILE) accept() itself fails; the shard then closes the spare descriptor it holds
//! for this moment, accepts the waiting clients with the freed slot one at a time, refuses
//! each, and takes the spare back. When that gets nowhere it backs off (1 ms doubling to
//! 100 ms, reset by the next accept) instead of retrying in a tight loop. Clients can cause
//! every log line here, so each cause is rate-limited (`router::LogLimit`).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use futures_lite::io::AsyncReadExt;
use glommio::net::TcpStream;
use glommio::timer::Timer;
use tracing::{debug, warn};

use crate::config::ListenerConfig;
use crate::net::ServerConn;
use crate::router::LogLimit;

use super::state::Shard;

/// Refused connections a shard keeps open at once to let the client read its answer (see
/// [`refuse`]); beyond it a refusal closes at once. The descriptor budget (`startup.rs`)
/// reserves this many per shard.
pub(crate) const MAX_REFUSALS_IN_FLIGHT: usize = 16;

/// How long a refused connection waits for the client's EOF. Closing a socket with unread
/// input sends a reset, which can destroy the answer before the client reads it; a client that
/// has its answer closes within a round trip, so this only bounds the ones that do not.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);

/// Clients refused through the spare descriptor per failed accept (bounds one turn's work).
const SPARE_REFUSALS_PER_ROUND: usize = 64;

const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(1);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(100);

/// Why accept() failed, as far as the log and the reaction care.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum AcceptCause {
    /// EMFILE: this process is at its RLIMIT_NOFILE.
    ProcessDescriptors,
    /// ENFILE: the system-wide file table is full.
    SystemDescriptors,
    /// ENOBUFS/ENOMEM.
    Memory,
    /// The client went away before it was accepted (ECONNABORTED and the like): nothing is
    /// wrong with the shard.
    PeerGone,
    Other,
}

impl AcceptCause {
    pub(crate) fn of(errno: Option<i32>) -> AcceptCause {
        match errno {
            Some(libc::EMFILE) => AcceptCause::ProcessDescriptors,
            Some(libc::ENFILE) => AcceptCause::SystemDescriptors,
            Some(libc::ENOBUFS | libc::ENOMEM) => AcceptCause::Memory,
            Some(libc::ECONNABORTED | libc::EPROTO | libc::EINTR) => AcceptCause::PeerGone,
            _ => AcceptCause::Other,
        }
    }

    const COUNT: usize = 5;

    fn out_of_descriptors(self) -> bool {
        matches!(
            self,
            AcceptCause::ProcessDescriptors | AcceptCause::SystemDescriptors
        )
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The pause after failed accepts: doubles from 1 ms up to 100 ms while accepts keep failing
/// without progress, back to 1 ms after one that got somewhere.
#[derive(Debug)]
pub(crate) struct AcceptBackoff {
    next: Duration,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff {
            next: ACCEPT_BACKOFF_MIN,
        }
    }
}

impl AcceptBackoff {
    /// An accept failed and nothing was refused: the pause to take now.
    pub(crate) fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(ACCEPT_BACKOFF_MAX);
        pause
    }

    pub(crate) fn progressed(&mut self) {
        self.next = ACCEPT_BACKOFF_MIN;
    }
}

/// Client-caused log lines of the runtime, each limited per cause.
#[derive(Default)]
struct LogLimits {
    refused: LogLimit,
    hand_off_failed: LogLimit,
    /// Index: [`AcceptCause::index`].
    accept_failed: [LogLimit; AcceptCause::COUNT],
}

/// One shard's refusal state: how many refusals are in flight, the spare descriptor, and the
/// log limits.
pub(crate) struct Refusals {
    in_flight: Cell<usize>,
    /// Opened at start so that a descriptor can be freed when there are none left.
    spare: RefCell<Option<File>>,
    logs: RefCell<LogLimits>,
}

impl Refusals {
    pub(crate) fn new() -> Refusals {
        Refusals {
            in_flight: Cell::new(0),
            spare: RefCell::new(open_spare()),
            logs: RefCell::new(LogLimits::default()),
        }
    }

    /// Takes the spare descriptor back if it was lost (another thread took the freed slot
    /// before it could be reopened). Called after a successful accept: descriptors are free.
    pub(crate) fn restore_spare(&self) {
        let mut spare = self.spare.borrow_mut();
        if spare.is_none() {
            *spare = open_spare();
        }
    }
}

fn open_spare() -> Option<File> {
    match File::open("/dev/null") {
        Ok(file) => Some(file),
        Err(e) => {
            debug!("cannot open the spare descriptor: {e}");
            None
        }
    }
}

/// What a refused client of `config`'s transport is sent.
fn answer(config: &ListenerConfig) -> Vec<u8> {
    if config.tls.is_some() {
        // A TLS client cannot read a plain answer, and a handshake costs more than the
        // refusal saves: it gets the bare close.
        return Vec::new();
    }
    let mut transport = ServerConn::new(config.kind, &config.transport);
    transport.refuse_overloaded();
    transport.output().to_vec()
}

/// Refuses a connection the shard has no room for: answers at once, then lets the client read
/// the answer for up to [`REFUSAL_LINGER`] (at most [`MAX_REFUSALS_IN_FLIGHT`] at a time;
/// beyond, it closes at once).
pub(crate) fn refuse(shard: &Rc<Shard>, stream: TcpStream, config: &ListenerConfig, peer: &str) {
    shard.metrics.borrow_mut().connections_refused += 1;
    if let Some(suppressed) = shard.refusals.logs.borrow_mut().refused.allow(shard.now()) {
        warn!(
            shard = shard.id,
            %peer,
            suppressed,
            "connection refused: at the limit of {} connections ({suppressed} more since the last such line)",
            shard.limits.borrow().max_connections_per_shard
        );
    }
    let answered = answer_now(stream.as_raw_fd(), &answer(config));
    let refusals = &shard.refusals;
    if !answered || refusals.in_flight.get() >= MAX_REFUSALS_IN_FLIGHT {
        return;
    }
    refusals.in_flight.set(refusals.in_flight.get() + 1);
    let shard = shard.clone();
    glommio::spawn_local(async move {
        linger(stream).await;
        let refusals = &shard.refusals;
        refusals.in_flight.set(refusals.in_flight.get() - 1);
    })
    .detach();
}

/// Reads and discards until the client's EOF, for at most [`REFUSAL_LINGER`].
async fn linger(mut stream: TcpStream) {
    let to_eof = async {
        let mut discard = [0u8; 1024];
        while let Ok(1..) = stream.read(&mut discard).await {}
    };
    futures_lite::future::or(to_eof, async {
        Timer::new(REFUSAL_LINGER).await;
    })
    .await;
}

/// Sends `answer` and our FIN on a fresh connection without waiting (it fits the empty send
/// buffer). Input already there is read first, so that an immediate close ends with a FIN, not
/// a reset. False when the answer could not be sent.
fn answer_now(fd: RawFd, answer: &[u8]) -> bool {
    let mut discard = [0u8; 4096];
    for _ in 0..4 {
        // SAFETY: recv writes at most discard.len() bytes into the live buffer.
        let n = unsafe {
            libc::recv(
                fd,
                discard.as_mut_ptr().cast(),
                discard.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            break;
        }
    }
    // SAFETY: send reads answer.len() bytes from the live slice.
    let sent = unsafe {
        libc::send(
            fd,
            answer.as_ptr().cast(),
            answer.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    // SAFETY: shutdown on a socket descriptor the caller owns.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
    sent == answer.len() as isize
}

/// accept() on `listener_fd` failed with `error`: logs it (rate-limited per cause), and when
/// the process is out of descriptors refuses the waiting clients through the spare
/// descriptor. True when the caller may accept again at once (clients were refused, or only a
/// client went away); false: back off.
pub(crate) fn accept_failed(
    shard: &Rc<Shard>,
    listener_fd: RawFd,
    config: &ListenerConfig,
    error: &glommio::GlommioError<()>,
) -> bool {
    shard.metrics.borrow_mut().accept_failures += 1;
    let cause = AcceptCause::of(error.raw_os_error());
    if cause == AcceptCause::PeerGone {
        debug!(shard = shard.id, listener = %config.url(), "accept failed: {error}");
        return true;
    }
    let refused = if cause.out_of_descriptors() {
        refuse_with_spare(shard, listener_fd, config)
    } else {
        0
    };
    let allowed = shard.refusals.logs.borrow_mut().accept_failed[cause.index()].allow(shard.now());
    if let Some(suppressed) = allowed {
        let what = if cause.out_of_descriptors() {
            "out of file descriptors: waiting clients are refused through a spare descriptor \
             (raise RLIMIT_NOFILE or lower limits.max_connections_per_shard; see tuning/)"
        } else {
            "retrying with a back-off"
        };
        warn!(
            shard = shard.id,
            listener = %config.url(),
            suppressed,
            "accept failed: {error}; {what} ({suppressed} more since the last such line)"
        );
    }
    refused > 0
}

/// Frees the spare descriptor, accepts and refuses waiting clients with the freed slot (each
/// closed at once: there is no descriptor to keep it open with), and takes the spare back.
/// Without a spare (lost to another thread) it still tries: a connection may have closed since.
fn refuse_with_spare(shard: &Rc<Shard>, listener_fd: RawFd, config: &ListenerConfig) -> usize {
    drop(shard.refusals.spare.borrow_mut().take());
    let answer = answer(config);
    let mut refused = 0;
    while refused < SPARE_REFUSALS_PER_ROUND {
        // SAFETY: accept4 on the listening socket this shard owns; no address is asked for.
        let fd = unsafe {
            libc::accept4(
                listener_fd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            break;
        }
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        answer_now(socket.as_raw_fd(), &answer);
        drop(socket);
        refused += 1;
    }
    *shard.refusals.spare.borrow_mut() = open_spare();
    shard.metrics.borrow_mut().connections_refused += refused as u64;
    refused
}

/// A round-robin hand-off failed (duplicating the descriptor); the connection is served here.
pub(crate) fn hand_off_failed(shard: &Shard, target: usize, error: &std::io::Error) {
    let allowed = shard
        .refusals
        .logs
        .borrow_mut()
        .hand_off_failed
        .allow(shard.now());
    if let Some(suppressed) = allowed {
        warn!(
            shard = shard.id,
            target,
            suppressed,
            "cannot hand a connection off ({error}); serving it here ({suppressed} more since the last such line)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets_on_progress() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<u64> = (0..9)
            .map(|_| backoff.failed().as_millis() as u64)
            .collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 64, 100, 100]);
        backoff.progressed();
        assert_eq!(backoff.failed(), ACCEPT_BACKOFF_MIN);
    }

    #[test]
    fn accept_causes_by_errno() {
        assert_eq!(
            AcceptCause::of(Some(libc::EMFILE)),
            AcceptCause::ProcessDescriptors
        );
        assert_eq!(
            AcceptCause::of(Some(libc::ENFILE)),
            AcceptCause::SystemDescriptors
        );
        assert_eq!(AcceptCause::of(Some(libc::ENOBUFS)), AcceptCause::Memory);
        assert_eq!(
            AcceptCause::of(Some(libc::ECONNABORTED)),
            AcceptCause::PeerGone
        );
        assert_eq!(AcceptCause::of(Some(libc::EBADF)), AcceptCause::Other);
        assert_eq!(AcceptCause::of(None), AcceptCause::Other);
        assert_eq!(AcceptCause::Other.index(), AcceptCause::COUNT - 1);
        assert!(AcceptCause::ProcessDescriptors.out_of_descriptors());
        assert!(!AcceptCause::Memory.out_of_descriptors());
    }

    #[test]
    fn answers_are_the_transports_overload_refusals() {
        let config = crate::config::Config::default_config();
        let mut kinds = Vec::new();
        for listener in &config.listeners {
            let bytes = answer(listener);
            match listener.kind {
                crate::net::TransportKind::RawSocket => {
                    assert_eq!(bytes, [0x7F, 0x40, 0, 0], "RawSocket error 4")
                }
                crate::net::TransportKind::WebSocket => {
                    assert!(bytes.starts_with(b"HTTP/1.1 503 "), "{bytes:?}")
                }
            }
            kinds.push(listener.kind);
        }
        assert_eq!(
            kinds.len(),
            2,
            "the default config has one listener of each kind"
        );
    }

    #[test]
    fn an_immediate_answer_reaches_the_client_before_its_eof() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let (server, _) = listener.accept().unwrap();
        // Let the request arrive, as it has for a client that waited in the backlog.
        std::thread::sleep(Duration::from_millis(20));
        assert!(answer_now(server.as_raw_fd(), b"refused"));
        drop(server);
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"refused");
    }
}
