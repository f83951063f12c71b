//! Start-up checks and listening sockets: everything that must be true before a shard runs,
//! each failure turned into a [`StartError`] whose text names the fix. Checks the shard count
//! against the CPUs the process may use, raises RLIMIT_MEMLOCK (glommio refuses to build an
//! executor below 512 KiB; the check scales with the shards), probes each listen address for another
//! process (glommio's listeners use SO_REUSEPORT, so a second router would otherwise silently
//! share the port), and binds the listening sockets themselves.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::IntoRawFd;

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
    fn memlock_check_passes_here_or_names_the_fix() {
        match raise_memlock_limit(1) {
            Ok(soft) => assert!(soft >= GLOMMIO_MIN_MEMLOCK_BYTES),
            Err(error) => assert!(error.to_string().contains("ulimit -l")),
        }
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
