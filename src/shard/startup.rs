//! Start-up checks and listening sockets: everything that must be true before a shard runs,
//! each failure turned into a [`StartError`] whose text names the fix. Checks the shard count
//! against the CPUs the process may use, raises RLIMIT_MEMLOCK (glommio refuses to build an
//! executor below 512 KiB; the check scales with the shards), raises RLIMIT_NOFILE and fits the
//! per-shard connection limit into it ([`FdBudget`]: a shard must refuse a connection while it
//! still has a descriptor to refuse it with), probes each listen address for another
//! process (glommio's listeners use SO_REUSEPORT, so a second router would otherwise silently
//! share the port), and binds the listening sockets themselves. A Unix socket listener
//! (`bind = "unix:PATH"`) is probed by connecting to its path: a socket file that nobody
//! answers on is a leftover of an earlier run and is removed; a live one stops the start.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::config::BindAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// What glommio 0.9 checks in `Reactor::new`: below this the executor does not start.
pub const GLOMMIO_MIN_MEMLOCK_BYTES: u64 = 512 * 1024;

/// Pending-connection queue of each listening socket (the kernel caps it at somaxconn).
const LISTEN_BACKLOG: i32 = 4096;

/// Why the router could not start. `Display` is the message printed before exiting non-zero.
#[derive(Debug)]
pub enum StartError {
    /// RLIMIT_MEMLOCK is still too low after raising the soft limit to the hard limit.
    MemlockTooLow { soft: u64, hard: u64, needed: u64 },
    /// Another socket already listens on this address.
    AddressInUse(SocketAddr),
    /// Binding or listening failed for another reason.
    Bind { addr: SocketAddr, error: io::Error },
    /// Another process listens on this Unix socket path.
    UnixInUse(PathBuf),
    /// A Unix socket path could not be used (not a socket, cannot remove, cannot bind).
    UnixBind { path: PathBuf, error: String },
    /// The io_uring executor could not be built.
    Executor { shard: usize, error: String },
    /// A shard thread died before it reported ready.
    ShardLost { shard: usize },
    /// More shards were asked for than the process may run on.
    TooManyCores {
        requested: usize,
        allowed: Vec<usize>,
    },
    /// The process's CPU affinity could not be read.
    Affinity(io::Error),
}

fn kib(bytes: u64) -> String {
    if bytes == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        format!("{} KiB", bytes / 1024)
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::MemlockTooLow { soft, hard, needed } => write!(
                f,
                "the locked-memory limit (RLIMIT_MEMLOCK) is {} (hard limit {}), but the io_uring \
                 runtime needs at least {}. Raise it: `ulimit -l 8192` in the starting shell \
                 (raising the hard limit needs root: `memlock` in /etc/security/limits.conf), \
                 `LimitMEMLOCK=8M` in a systemd unit, or `--ulimit memlock=8388608` for docker; \
                 see tuning/",
                kib(*soft),
                kib(*hard),
                kib(*needed)
            ),
            StartError::AddressInUse(addr) => write!(
                f,
                "address {addr} is already in use (another process listens on it; stop it or \
                 change `bind` in the config)"
            ),
            StartError::Bind { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
            StartError::UnixInUse(path) => write!(
                f,
                "Unix socket {} is in use (another process listens on it; stop it or change \
                 `bind` in the config)",
                path.display()
            ),
            StartError::UnixBind { path, error } => {
                write!(f, "cannot listen on Unix socket {}: {error}", path.display())
            }
            StartError::Executor { shard, error } => write!(
                f,
                "cannot start the io_uring executor of shard {shard}: {error}. wampring needs \
                 io_uring: Linux 5.8 or newer, not disabled by the sysctl kernel.io_uring_disabled, \
                 and allowed by the container's seccomp profile (docker: \
                 --security-opt seccomp=unconfined or a profile allowing io_uring_setup, \
                 io_uring_enter, io_uring_register); see tuning/"
            ),
            StartError::ShardLost { shard } => {
                write!(f, "shard {shard} stopped before it was ready (see the log above)")
            }
            StartError::TooManyCores { requested, allowed } => write!(
                f,
                "cores = {requested}, but this process may run on only {} CPU{} ({}; its \
                 affinity mask, see taskset or the container's cpuset): ask for at most {}, or \
                 leave `cores` unset to use them all",
                allowed.len(),
                if allowed.len() == 1 { "" } else { "s" },
                super::cpus::format_cpu_list(allowed),
                allowed.len()
            ),
            StartError::Affinity(error) => {
                write!(f, "cannot read the CPUs this process may run on: {error}")
            }
        }
    }
}

impl std::error::Error for StartError {}

/// Raises the RLIMIT_MEMLOCK soft limit to the hard limit and checks it against what the io
/// runtime needs: glommio's 512 KiB per executor. Returns the soft limit now in force.
pub fn raise_memlock_limit(shards: usize) -> Result<u64, StartError> {
    let needed = GLOMMIO_MIN_MEMLOCK_BYTES.saturating_mul(shards.max(1) as u64);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        // Cannot even read it: let glommio decide and report.
        return Ok(0);
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        }
    }
    let (soft, hard) = (limit.rlim_cur, limit.rlim_max);
    if soft < needed {
        return Err(StartError::MemlockTooLow { soft, hard, needed });
    }
    Ok(soft)
}

/// Descriptors the process holds whatever its shard count: stdio, the signal pipe, a log file,
/// the start-up probe, and slack for what libraries open. Measured: 5 at start.
const FD_RESERVE_PROCESS: u64 = 32;

/// Descriptors each shard holds besides its connections and listeners: glommio's three
/// io_uring rings and its eventfd (measured: 4), the spare descriptor of `refusal.rs`, slack.
const FD_RESERVE_PER_SHARD: u64 = 8;

/// RLIMIT_NOFILE after [`raise_nofile_limit`].
#[derive(Debug)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
    /// Why the soft limit could not be raised to the hard limit (`None`: raised, or already
    /// there).
    pub raise_error: Option<io::Error>,
}

/// Raises the RLIMIT_NOFILE soft limit to the hard limit: the soft default (often 1024) is far
/// below what a router with many connections needs, and raising it needs no privilege.
pub fn raise_nofile_limit() -> NofileLimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return NofileLimit {
            soft: libc::RLIM_INFINITY,
            hard: libc::RLIM_INFINITY,
            raise_error: Some(io::Error::last_os_error()),
        };
    }
    let mut raise_error = None;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            // E.g. a hard limit of "unlimited" above fs.nr_open: keep the soft one.
            raise_error = Some(io::Error::last_os_error());
        }
    }
    NofileLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
        raise_error,
    }
}

/// How many connections per shard fit into the descriptor limit. Past the limit accept()
/// fails and clients wait in the backlog unanswered; below it a shard at its connection limit
/// still has descriptors to accept a client and answer it (HTTP 503, RawSocket error 4). So
/// the limit a shard enforces is the configured one, lowered to what fits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft RLIMIT_NOFILE in force.
    pub nofile: u64,
    pub shards: usize,
    /// Descriptors kept for everything but connections.
    pub reserve: u64,
    /// `limits.max_connections_per_shard` from the config.
    pub configured: usize,
    /// The per-shard connection limit the shards enforce: `configured`, or less when that does
    /// not fit (at least 1).
    pub effective: usize,
}

impl FdBudget {
    pub fn new(nofile: u64, shards: usize, listeners: usize, configured: usize) -> FdBudget {
        let shards = shards.max(1);
        let per_shard =
            FD_RESERVE_PER_SHARD + listeners as u64 + super::refusal::MAX_REFUSALS_IN_FLIGHT as u64;
        let reserve = FD_RESERVE_PROCESS + per_shard * shards as u64;
        let fits = nofile.saturating_sub(reserve) / shards as u64;
        let effective = (configured as u64).min(fits).max(1) as usize;
        FdBudget {
            nofile,
            shards,
            reserve,
            configured,
            effective,
        }
    }

    /// Descriptors the configured limit needs: every shard full, plus the reserve.
    pub fn needed(&self) -> u64 {
        (self.configured as u64)
            .saturating_mul(self.shards as u64)
            .saturating_add(self.reserve)
    }

    /// The start-up warning when the configured limit does not fit, naming the fixes.
    pub fn warning(&self, hard: u64) -> Option<String> {
        if self.effective >= self.configured {
            return None;
        }
        Some(format!(
            "the file-descriptor limit (RLIMIT_NOFILE) is {} (hard limit {}), but \
             limits.max_connections_per_shard = {} on {} shard{} needs {} ({} for listeners, \
             io_uring and refusals): each shard takes at most {} connections and refuses more \
             (HTTP 503, RawSocket error 4) while it still has descriptors to answer with. To \
             serve {} per shard, raise the hard limit (`ulimit -Hn {}` as root or `nofile` in \
             /etc/security/limits.conf, `LimitNOFILE={}` in a systemd unit, \
             `--ulimit nofile={}:{}` for docker; see tuning/), or lower \
             limits.max_connections_per_shard to silence this",
            limit_text(self.nofile),
            limit_text(hard),
            self.configured,
            self.shards,
            if self.shards == 1 { "" } else { "s" },
            self.needed(),
            self.reserve,
            self.effective,
            self.configured,
            self.needed(),
            self.needed(),
            self.needed(),
            self.needed(),
        ))
    }
}

fn limit_text(limit: u64) -> String {
    if limit == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        limit.to_string()
    }
}

/// Fails when another socket already listens on `addr`. The probe binds WITHOUT SO_REUSEPORT
/// (std's listener sets only SO_REUSEADDR, so connections of a previous run in TIME_WAIT do
/// not count as "in use"), then closes again at once.
pub fn probe_address_free(addr: SocketAddr) -> Result<(), StartError> {
    match std::net::TcpListener::bind(addr) {
        Ok(probe) => {
            drop(probe);
            Ok(())
        }
        Err(error) if error.kind() == io::ErrorKind::AddrInUse => {
            Err(StartError::AddressInUse(addr))
        }
        Err(error) => Err(StartError::Bind { addr, error }),
    }
}

/// Fails when another process listens at `bind`; for a Unix socket, removes a stale socket
/// file (one nobody accepts on) so that binding can succeed.
pub fn probe_listener(bind: &BindAddr) -> Result<(), StartError> {
    match bind {
        BindAddr::Tcp(addr) => probe_address_free(*addr),
        BindAddr::Unix(path) => clear_stale_unix_socket(path),
    }
}

/// A Unix socket path is free when nothing is there; a socket file there is connected to: a
/// listener answers (in use), a refused connection means its process is gone (stale: removed).
/// Anything else at the path is left alone and reported.
pub fn clear_stale_unix_socket(path: &Path) -> Result<(), StartError> {
    let unix_error = |error: String| StartError::UnixBind {
        path: path.to_path_buf(),
        error,
    };
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(unix_error(e.to_string())),
    };
    if !metadata.file_type().is_socket() {
        return Err(unix_error(
            "the path exists and is not a socket; remove it or choose another".to_string(),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(StartError::UnixInUse(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|e| unix_error(format!("cannot remove the stale socket file: {e}"))),
        Err(e) => Err(unix_error(e.to_string())),
    }
}

/// Binds the listening socket of `bind` for one shard: [`bind_listener`] for TCP,
/// [`bind_unix_listener`] for a Unix socket.
pub fn bind_any(bind: &BindAddr) -> Result<std::os::fd::RawFd, StartError> {
    match bind {
        BindAddr::Tcp(addr) => bind_listener(*addr),
        BindAddr::Unix(path) => bind_unix_listener(path),
    }
}

/// Binds a non-blocking Unix stream listener at `path` (which [`clear_stale_unix_socket`] has
/// cleared) with the same deep backlog as TCP. The file gets the process's umask.
pub fn bind_unix_listener(path: &Path) -> Result<std::os::fd::RawFd, StartError> {
    let unix_error = |error: io::Error| {
        if error.kind() == io::ErrorKind::AddrInUse {
            StartError::UnixInUse(path.to_path_buf())
        } else {
            StartError::UnixBind {
                path: path.to_path_buf(),
                error: error.to_string(),
            }
        }
    };
    let address = socket2::SockAddr::unix(path).map_err(unix_error)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(unix_error)?;
    socket.set_nonblocking(true).map_err(unix_error)?;
    socket.bind(&address).map_err(unix_error)?;
    socket.listen(LISTEN_BACKLOG).map_err(unix_error)?;
    Ok(socket.into_raw_fd())
}

/// Binds one listening socket for one shard: SO_REUSEADDR (restart with connections in
/// TIME_WAIT) and SO_REUSEPORT (one listener per shard on the same port; the kernel spreads
/// connections), non-blocking, with a deep backlog. Returns the raw descriptor, which the shard
/// hands to its executor.
pub fn bind_listener(addr: SocketAddr) -> Result<std::os::fd::RawFd, StartError> {
    let bind_error = |error: io::Error| {
        if error.kind() == io::ErrorKind::AddrInUse {
            StartError::AddressInUse(addr)
        } else {
            StartError::Bind { addr, error }
        }
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_error)?;
    socket.set_reuse_address(true).map_err(bind_error)?;
    set_reuse_port(&socket).map_err(bind_error)?;
    socket.set_nonblocking(true).map_err(bind_error)?;
    socket.bind(&addr.into()).map_err(bind_error)?;
    socket.listen(LISTEN_BACKLOG).map_err(bind_error)?;
    Ok(socket.into_raw_fd())
}

/// SO_REUSEPORT via libc (socket2 exposes it only with its "all" feature).
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let enable: libc::c_int = 1;
    // SAFETY: valid socket descriptor; the option value is a live c_int of the stated size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&enable as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::FromRawFd;

    #[test]
    fn probe_sees_a_listener_of_this_process() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap();
        let error = probe_address_free(addr).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(&format!("address {addr} is already in use")),
            "{error}"
        );
        drop(held);
        probe_address_free(addr).unwrap();
    }

    #[test]
    fn probe_sees_a_reuseport_listener() {
        // What a running wampring holds: the probe must still fail.
        let fd = bind_listener("127.0.0.1:0".parse().unwrap()).unwrap();
        // SAFETY: fd is ours, from bind_listener.
        let socket = unsafe { Socket::from_raw_fd(fd) };
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        assert!(matches!(
            probe_address_free(addr),
            Err(StartError::AddressInUse(_))
        ));
    }

    #[test]
    fn a_stale_unix_socket_is_removed_and_a_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.sock");
        clear_stale_unix_socket(&path).unwrap(); // nothing there
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(matches!(
            clear_stale_unix_socket(&path),
            Err(StartError::UnixInUse(_))
        ));
        drop(live); // the file stays, nobody listens: stale
        assert!(path.exists());
        clear_stale_unix_socket(&path).unwrap();
        assert!(!path.exists());
        let fd = bind_unix_listener(&path).unwrap();
        // SAFETY: fd is ours, from bind_unix_listener.
        let held = unsafe { Socket::from_raw_fd(fd) };
        assert!(matches!(
            probe_listener(&BindAddr::Unix(path.clone())),
            Err(StartError::UnixInUse(_))
        ));
        drop(held);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not a socket").unwrap();
        let error = clear_stale_unix_socket(&path).unwrap_err().to_string();
        assert!(error.contains("not a socket"), "{error}");
    }

    #[test]
    fn memlock_check_passes_here_or_names_the_fix() {
        match raise_memlock_limit(1) {
            Ok(soft) => assert!(soft >= GLOMMIO_MIN_MEMLOCK_BYTES),
            Err(error) => assert!(error.to_string().contains("ulimit -l")),
        }
    }

    #[test]
    fn nofile_raise_reaches_the_hard_limit_or_says_why() {
        let limit = raise_nofile_limit();
        assert!(
            limit.soft == limit.hard || limit.raise_error.is_some(),
            "{limit:?}"
        );
    }

    #[test]
    fn a_configured_limit_that_fits_is_kept() {
        let budget = FdBudget::new(1_048_576, 2, 2, 100_000);
        assert_eq!(budget.effective, 100_000);
        assert_eq!(budget.warning(1_048_576), None);
        // Unlimited (as getrlimit may report it) fits anything.
        assert_eq!(
            FdBudget::new(libc::RLIM_INFINITY, 64, 4, 1_000_000).effective,
            1_000_000
        );
    }

    #[test]
    fn the_reserve_covers_process_shards_listeners_and_refusals() {
        let one = FdBudget::new(65_536, 1, 2, 10);
        let per_shard =
            FD_RESERVE_PER_SHARD + 2 + crate::shard::refusal::MAX_REFUSALS_IN_FLIGHT as u64;
        assert_eq!(one.reserve, FD_RESERVE_PROCESS + per_shard);
        assert_eq!(
            FdBudget::new(65_536, 3, 2, 10).reserve,
            FD_RESERVE_PROCESS + 3 * per_shard
        );
        assert_eq!(one.needed(), 10 + one.reserve);
    }

    #[test]
    fn a_limit_that_does_not_fit_is_lowered_to_what_fits_per_shard() {
        // The finding: 100,000 per shard against 20,000 descriptors.
        let budget = FdBudget::new(20_000, 2, 2, 100_000);
        assert_eq!(budget.effective as u64, (20_000 - budget.reserve) / 2);
        assert!(budget.effective as u64 * 2 + budget.reserve <= 20_000);
        let text = budget.warning(20_000).unwrap();
        for needle in [
            "is 20000 (hard limit 20000)",
            "max_connections_per_shard = 100000 on 2 shards",
            &format!("needs {}", 200_000 + budget.reserve),
            &format!("at most {} connections", budget.effective),
            "HTTP 503",
            "ulimit -Hn",
            "LimitNOFILE=",
            "lower limits.max_connections_per_shard",
        ] {
            assert!(text.contains(needle), "{needle:?} missing: {text}");
        }
        // A limit exactly at what fits is not lowered and not warned about.
        let exact = FdBudget::new(20_000, 2, 2, budget.effective);
        assert_eq!(exact.effective, budget.effective);
        assert_eq!(exact.warning(20_000), None);
    }

    #[test]
    fn a_limit_below_the_reserve_still_leaves_one_connection_per_shard() {
        let budget = FdBudget::new(16, 2, 2, 100);
        assert_eq!(budget.effective, 1);
        assert!(budget
            .warning(16)
            .unwrap()
            .contains("at most 1 connections"));
    }

    #[test]
    fn memlock_message_names_the_fixes() {
        let text = StartError::MemlockTooLow {
            soft: 64 * 1024,
            hard: 64 * 1024,
            needed: 512 * 1024,
        }
        .to_string();
        assert!(
            text.contains("64 KiB") && text.contains("512 KiB"),
            "{text}"
        );
        assert!(
            text.contains("ulimit -l") && text.contains("LimitMEMLOCK") && text.contains("tuning/")
        );
    }
}
