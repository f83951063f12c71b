//! The generator's own thread-per-core runtime: one glommio `LocalExecutor` per thread, pinned
//! to a CPU when `--cpus` names them; the resource limits glommio and many connections need; and
//! the watchdog that ends the process at the hard deadline whatever the router does.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::clock;

/// io_uring buffer memory per executor: the generator does no file I/O, so 1 MiB is plenty and
/// keeps the locked-memory need small.
const IO_MEMORY: usize = 1024 * 1024;

/// Raises the soft limits glommio (RLIMIT_MEMLOCK) and many connections (RLIMIT_NOFILE) need to
/// their hard limits. Returns warnings to print; never fails (glommio reports its own errors).
pub fn raise_limits() -> Vec<String> {
    let mut warnings = Vec::new();
    for (resource, name) in [
        (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
    ] {
        // SAFETY: getrlimit/setrlimit read and write the struct we own.
        unsafe {
            let mut limit: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(resource, &mut limit) != 0 {
                warnings.push(format!("cannot read {name}"));
                continue;
            }
            if limit.rlim_cur < limit.rlim_max {
                limit.rlim_cur = limit.rlim_max;
                if libc::setrlimit(resource, &limit) != 0 {
                    warnings.push(format!("cannot raise {name} to its hard limit"));
                }
            }
        }
    }
    warnings
}

/// The current soft RLIMIT_NOFILE, to check a scenario's connection count against.
pub fn open_files_limit() -> u64 {
    // SAFETY: getrlimit writes into the struct we own.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur
        } else {
            1024
        }
    }
}

/// A running executor thread.
pub struct ExecutorThread<T: Send + 'static> {
    handle: glommio::ExecutorJoinHandle<T>,
}

impl<T: Send + 'static> ExecutorThread<T> {
    pub fn join(self) -> Result<T, String> {
        self.handle
            .join()
            .map_err(|e| format!("executor thread failed: {e}"))
    }
}

/// Starts `threads` executors; thread `i` runs `make(i)` and is pinned to `cpus[i % len]` when
/// CPUs are given; `spin` is glommio's spin-before-park.
pub fn spawn_executors<T, F, Fut>(
    threads: usize,
    cpus: Option<&[usize]>,
    spin: Option<Duration>,
    make: F,
) -> Result<Vec<ExecutorThread<T>>, String>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = T> + 'static,
{
    let mut started = Vec::with_capacity(threads);
    for index in 0..threads {
        let placement = match cpus {
            Some(cpus) if !cpus.is_empty() => Placement::Fixed(cpus[index % cpus.len()]),
            _ => Placement::Unbound,
        };
        let make = make.clone();
        let mut builder = LocalExecutorBuilder::new(placement)
            .name(&format!("wampload-{index}"))
            .io_memory(IO_MEMORY);
        if let Some(spin) = spin {
            builder = builder.spin_before_park(spin);
        }
        let handle = builder.spawn(move || make(index)).map_err(|e| {
            format!(
                "cannot start executor {index}: {e}. glommio needs RLIMIT_MEMLOCK of at least \
                     512 KiB per executor: raise it (ulimit -l, or memlock in \
                     /etc/security/limits.conf) and check the CPUs given to --cpus exist"
            )
        })?;
        started.push(ExecutorThread { handle });
    }
    Ok(started)
}

/// Ends the process with exit code 3 once its deadline (process-clock ns) passes. The deadline
/// can be moved while the run goes through its phases; 0 disarms it.
pub struct Watchdog {
    deadline: Arc<AtomicU64>,
}

impl Watchdog {
    pub fn start(deadline_ns: u64) -> Watchdog {
        let deadline = Arc::new(AtomicU64::new(deadline_ns));
        let watched = deadline.clone();
        std::thread::Builder::new()
            .name("wampload-watchdog".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_millis(100));
                let at = watched.load(Ordering::Relaxed);
                if at != 0 && clock::now_ns() >= at {
                    eprintln!("wampring-load: hard deadline reached, some sessions did not finish; exiting");
                    std::process::exit(3);
                }
            })
            .expect("spawn the watchdog thread");
        Watchdog { deadline }
    }

    pub fn set(&self, deadline_ns: u64) {
        self.deadline.store(deadline_ns, Ordering::Relaxed);
    }

    pub fn disarm(&self) {
        self.deadline.store(0, Ordering::Relaxed);
    }
}
