//! shard: the runtime — the ONLY code that names glommio. [`serve`] runs the start-up checks,
//! starts one thread per shard, each with its own glommio `LocalExecutor` pinned to one of the
//! CPUs the process may run on (`run_shard`, CPU list from `cpus.rs`), builds the channel mesh
//! between the shards (`mesh.rs`), waits until every shard listens and is connected to every
//! other, and returns the summed metrics once a stop was requested and the shards drained.
//!
//! Placement (config `placement`): "kernel" — every shard binds its own SO_REUSEPORT listeners
//! on the same ports and the kernel spreads connections; "round-robin" — only shard 0 binds and
//! accepts, and hands the N-th accepted connection (0-based, counted over all its listeners in
//! accept order; one listen queue per port keeps that order equal to connect order) to shard
//! N % cores: the socket is duplicated (`F_DUPFD_CLOEXEC`) into an owned descriptor, sent over
//! the mesh channel to that shard, and wrapped there in a glommio `TcpStream` bound to the
//! receiving executor. A session lives on the shard that serves its connection, for its life.
//!
//! Unix socket listeners (`bind = "unix:PATH"`): SO_REUSEPORT does not spread Unix sockets,
//! so whatever the placement, only shard 0 binds and accepts them, and deals them round-robin
//! to all shards with the same hand-off (a Unix stream descriptor travels like a TCP one; the
//! listener index in the hand-off says which kind it is). glommio 0.9's Unix types expose no
//! descriptor (needed for the hand-off, the spare-descriptor refusal and SIOCOUTQ), so a Unix
//! socket is driven through glommio's TCP types, which are thin descriptor wrappers whose I/O
//! (io_uring accept, recv, send, shutdown) does not depend on the address family; only the
//! address calls differ (peer address, TCP_NODELAY), and those are skipped for Unix sockets.
//! The socket file is created at start (a stale one is removed first, a live one stops the
//! start) and removed at a clean exit.
//!
//! Start-up is two-phase so that a shard that cannot start (executor, bind) cannot leave the
//! others waiting for the rest of the mesh forever: every shard reports "bound", then all get "go" (or
//! "give up"), then they connect the mesh and report "running".
//!
//! Each shard runs one task per connection (`connection.rs`) around the [`Router`] it owns
//! (`state.rs`); a connection over the shard's limit (the configured one, lowered at start to
//! what fits RLIMIT_NOFILE: `startup.rs`) is answered and closed by `refusal.rs`, which also
//! handles failed accepts. It runs one drain task per inbound mesh channel and one flusher
//! task per outbound one (`mesh.rs`), and polls the process's stop flag on a timer; on stop it
//! has its router say GOODBYE `wamp.close.system_shutdown` to its own sessions, flushes, and
//! returns within `limits.shutdown_grace_ms`, still handling what other shards send meanwhile.
//!
//! Shard 0 also binds and serves the admin listener (`admin/`: metrics, health, the status
//! page) when `[admin]` is configured; it answers until the shard terminates, so `/readyz`
//! says 503 during the shutdown grace.
//!
//! Reload (SIGHUP): once the shards run, `serve`'s thread polls the reload flag
//! ([`RELOAD_POLL_INTERVAL`]); on a request it reads the configuration again the way it was
//! read at start (`ConfigSource`), refuses a bad one (logged, the running one stays), keeps
//! what needs a restart (`config::plan_reload`), logs what changes, and sends the result (one
//! `Arc`) to every shard over a channel of its own. Each shard takes it in the same loop that
//! polls the stop flag (`Shard::reconfigure`), so the message paths never look for it, and
//! confirms; the "configuration reloaded" line is written once every shard has applied it.

#[doc(hidden)]
mod admin;
pub mod bench_support;
mod connection;
pub mod cpus;
mod longpoll;
mod mesh;
mod refusal;
pub mod startup;
mod state;

use std::cell::Cell;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{debug, error, info, warn};

use crate::config::{self, BindAddr, Config, ConfigSource, ListenerConfig, ShardPlacement};
use crate::net::tls::TlsFilter;
use crate::net::{ServerConn, TransportKind};
use crate::router::{Router, ShardId, MAX_SHARDS};

pub use crate::metrics::ShardMetrics;
use connection::ConnectionTask;
use mesh::{Backpressure, MeshEnds, MeshMsg, ShardLink};
pub use startup::StartError;
use state::{Connection, Shard};

/// How often a shard looks at the stop flag (set from a signal handler).
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How often connections re-check during shutdown whether their last bytes were acknowledged.
const SHUTDOWN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// glommio's registered I/O memory per executor. The router does no DMA file I/O, so keep the
/// locked-memory footprint small (glommio's default is 10 MiB).
const IO_MEMORY_BYTES: usize = 1 << 20;

/// io_uring submission ring depth per executor (glommio queues beyond it itself).
const RING_DEPTH: usize = 128;

/// How often `serve` checks, while waiting for start-up reports, whether a shard thread died.
const STARTUP_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How often `serve`'s thread looks for a reload request (and whether the shards are done).
pub const RELOAD_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long `serve` waits for every shard to confirm a reload before it logs the outcome anyway
/// (a shard that is stopping may never take it).
const RELOAD_APPLY_WAIT: Duration = Duration::from_secs(5);

/// A reloaded configuration on its way to one shard, and where the shard confirms it applied
/// it (so that the reload's log line comes once the new config is in effect everywhere).
struct Reconfigure {
    config: Arc<Config>,
    applied: mpsc::Sender<ShardId>,
}

/// How `serve` learns that the configuration should be read again.
pub struct ReloadRequests {
    /// Set (SIGHUP) to ask for a reload; `serve` clears it when it starts one.
    pub flag: Arc<AtomicBool>,
    /// Where the running configuration came from, and the command-line overrides.
    pub source: ConfigSource,
}

/// Where and how one shard runs.
#[derive(Clone, Debug)]
pub struct ShardSpec {
    pub id: ShardId,
    /// Pin the executor to this CPU; `None` lets the OS place it.
    pub cpu: Option<usize>,
    /// How many shards the process runs.
    pub shards: usize,
}

/// What a shard thread tells `serve` during start-up.
enum StartupReport {
    /// Executor built and listeners bound (or why not); the shard now waits for "go".
    Bound(Result<(), StartError>),
    /// Mesh connected, accepting.
    Running,
}

/// Runs the router until `stop` turns true: start-up checks, shards, reloads when `reload`
/// asks (see the module text), shutdown. Returns the metrics summed over shards, or why it
/// could not start.
pub fn serve(
    config: &Config,
    stop: Arc<AtomicBool>,
    reload: ReloadRequests,
) -> Result<ShardMetrics, StartError> {
    let allowed = cpus::allowed_cpus().map_err(StartError::Affinity)?;
    let shards = match config.cores {
        None if allowed.len() > MAX_SHARDS => {
            warn!(
                "this process may run on {} CPUs; wampring runs at most {MAX_SHARDS} shards, so it uses the first {MAX_SHARDS} (set `cores` to choose fewer)",
                allowed.len()
            );
            MAX_SHARDS
        }
        None => allowed.len(),
        Some(requested) if requested > allowed.len() => {
            return Err(StartError::TooManyCores { requested, allowed })
        }
        Some(requested) => requested,
    };
    let shard_specs: Vec<ShardSpec> = allowed[..shards]
        .iter()
        .enumerate()
        .map(|(id, &cpu)| ShardSpec {
            id,
            cpu: Some(cpu),
            shards,
        })
        .collect();

    let memlock = startup::raise_memlock_limit(shards)?;
    debug!(memlock_bytes = memlock, "RLIMIT_MEMLOCK");
    let config = fit_connection_limit(config, shards);
    for listener in &config.listeners {
        startup::probe_listener(&listener.bind)?;
    }
    if let Some(admin) = &config.admin {
        startup::probe_address_free(admin.bind)?;
    }
    info!(
        "starting {shards} shard{} on CPU {} (placement {})",
        if shards == 1 { "" } else { "s" },
        cpus::format_cpu_list(&allowed[..shards]),
        config.placement.name()
    );

    let mesh = mesh::build_mesh::<MeshMsg>(shards, config.runtime.shard_channel_capacity);
    let config = Arc::new(config);
    let epoch = Instant::now();
    let (ready_tx, ready_rx) = mpsc::channel::<(ShardId, StartupReport)>();
    let mut threads: Vec<(ShardId, JoinHandle<ShardMetrics>)> = Vec::new();
    let mut go_senders = Vec::new();
    let mut reload_senders = Vec::new();
    let mut start_error = None;
    for (spec, ends) in shard_specs.into_iter().zip(mesh) {
        let (config, stop, ready) = (config.clone(), stop.clone(), ready_tx.clone());
        let (go_tx, go_rx) = mpsc::channel::<bool>();
        let (reload_tx, reload_rx) = mpsc::channel::<Reconfigure>();
        let id = spec.id;
        let spawned = std::thread::Builder::new()
            .name(format!("wampring-shard-{id}"))
            .spawn(move || run_shard(spec, config, stop, epoch, ready, go_rx, reload_rx, ends));
        match spawned {
            Ok(thread) => {
                threads.push((id, thread));
                go_senders.push(go_tx);
                reload_senders.push(reload_tx);
            }
            Err(e) => {
                start_error = Some(StartError::Executor {
                    shard: id,
                    error: format!("cannot start its thread: {e}"),
                });
                break;
            }
        }
    }
    drop(ready_tx);

    let mut bound = vec![false; threads.len()];
    await_reports(
        &ready_rx,
        &threads,
        &mut bound,
        &mut start_error,
        |report| match report {
            StartupReport::Bound(result) => Some(result),
            StartupReport::Running => None,
        },
    );
    let go = start_error.is_none();
    for go_sender in go_senders {
        let _ = go_sender.send(go);
    }
    if go {
        let mut running = vec![false; threads.len()];
        await_reports(
            &ready_rx,
            &threads,
            &mut running,
            &mut start_error,
            |report| match report {
                StartupReport::Running => Some(Ok(())),
                StartupReport::Bound(_) => None,
            },
        );
    }
    if start_error.is_some() {
        stop.store(true, Ordering::SeqCst);
    } else {
        for listener in &config.listeners {
            info!(
                "listening on {} ({})",
                listener.url(),
                serializer_list(listener)
            );
        }
    }

    // Until every shard is done (they watch `stop` themselves): reload when asked.
    let mut running = (*config).clone();
    while !threads.iter().all(|(_, thread)| thread.is_finished()) {
        std::thread::sleep(RELOAD_POLL_INTERVAL);
        if reload.flag.swap(false, Ordering::SeqCst)
            && start_error.is_none()
            && !stop.load(Ordering::SeqCst)
        {
            reload_config(&reload.source, &mut running, shards, &reload_senders);
        }
    }

    let mut total = ShardMetrics::default();
    let bound_here = go;
    for (id, thread) in threads {
        match thread.join() {
            Ok(metrics) => total += metrics,
            Err(_) => {
                error!(shard = id, "shard thread panicked");
                start_error.get_or_insert(StartError::ShardLost { shard: id });
            }
        }
    }
    if bound_here {
        // Our socket files: the next start should not find them (it would remove them as
        // stale anyway).
        for listener in &config.listeners {
            if let BindAddr::Unix(path) = &listener.bind {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    match start_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// One reload (see the module text): a bad file is refused with its error logged; otherwise
/// what needs a restart is named and kept, what changes is logged, and every shard is sent the
/// result, which becomes `running`.
fn reload_config(
    source: &ConfigSource,
    running: &mut Config,
    shards: usize,
    senders: &[mpsc::Sender<Reconfigure>],
) {
    let loaded = match source.load() {
        Ok(Some(config)) => config,
        Ok(None) => {
            info!("reload requested, but the built-in configuration is running (no --config file): nothing to re-read");
            return;
        }
        Err(e) => {
            // One line (TOML's messages quote the bad line over several), so that the whole
            // error stays in one journal entry and one grep.
            let text: Vec<&str> =
                e.0.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && *line != "|")
                    .collect();
            error!(
                "reload refused, the running configuration stays: {}",
                text.join(" / ")
            );
            return;
        }
    };
    let file = source
        .path
        .as_ref()
        .map_or_else(String::new, |path| path.display().to_string());
    // The same fitting as at start, so an unchanged limit does not read as a change.
    let loaded = fit_connection_limit(&loaded, shards);
    let plan = config::plan_reload(running, loaded);
    for setting in &plan.needs_restart {
        warn!("reload of {file}: needs a restart, kept as it runs: {setting}");
    }
    for warning in plan.config.warnings() {
        warn!("{warning}");
    }
    let config = Arc::new(plan.config);
    let (applied_tx, applied_rx) = mpsc::channel();
    let mut sent = 0;
    for sender in senders {
        let message = Reconfigure {
            config: config.clone(),
            applied: applied_tx.clone(),
        };
        // A shard that already ended has dropped its receiver: nothing to apply there.
        sent += usize::from(sender.send(message).is_ok());
    }
    drop(applied_tx);
    let deadline = Instant::now() + RELOAD_APPLY_WAIT;
    let mut applied = 0;
    while applied < sent {
        let left = deadline.saturating_duration_since(Instant::now());
        match applied_rx.recv_timeout(left) {
            Ok(_) => applied += 1,
            Err(_) => break,
        }
    }
    if applied < sent {
        warn!("reload: {applied} of {sent} shards confirmed the new configuration in time");
    }
    if plan.changes.is_empty() {
        info!("configuration reloaded from {file}: nothing that applies changed");
    } else {
        info!(
            "configuration reloaded from {file}: {}",
            plan.changes.join("; ")
        );
    }
    *running = (*config).clone();
}

/// Raises RLIMIT_NOFILE and returns the config with the per-shard connection limit lowered to
/// what fits it (warning once when it had to be lowered), so that a full shard refuses new
/// clients while it still has descriptors to answer them with.
fn fit_connection_limit(config: &Config, shards: usize) -> Config {
    let nofile = startup::raise_nofile_limit();
    if let Some(error) = &nofile.raise_error {
        warn!(
            "cannot raise the file-descriptor limit (RLIMIT_NOFILE) from {} to its hard limit {}: {error}",
            nofile.soft, nofile.hard
        );
    }
    let budget = startup::FdBudget::new(
        nofile.soft,
        shards,
        config.listeners.len(),
        config.limits.max_connections_per_shard,
    );
    debug!(
        nofile_soft = nofile.soft,
        nofile_hard = nofile.hard,
        reserve = budget.reserve,
        max_connections_per_shard = budget.effective,
        "RLIMIT_NOFILE"
    );
    if let Some(warning) = budget.warning(nofile.hard) {
        warn!("{warning}");
    }
    let mut config = config.clone();
    config.limits.max_connections_per_shard = budget.effective;
    config
}

/// Waits until every shard thread sent the report `accept` picks out (marking it in `seen`),
/// keeping the first error. A thread that ended without reporting counts as lost, so a panic
/// cannot leave `serve` waiting.
fn await_reports(
    ready: &mpsc::Receiver<(ShardId, StartupReport)>,
    threads: &[(ShardId, JoinHandle<ShardMetrics>)],
    seen: &mut [bool],
    start_error: &mut Option<StartError>,
    accept: impl Fn(StartupReport) -> Option<Result<(), StartError>>,
) {
    while seen.iter().any(|seen| !seen) {
        match ready.recv_timeout(STARTUP_POLL_INTERVAL) {
            Ok((id, report)) => {
                if let Some(result) = accept(report) {
                    if let Some(slot) = seen.get_mut(id) {
                        *slot = true;
                    }
                    if let Err(e) = result {
                        start_error.get_or_insert(e);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                for (index, (id, thread)) in threads.iter().enumerate() {
                    if !seen[index] && thread.is_finished() {
                        seen[index] = true;
                        start_error.get_or_insert(StartError::ShardLost { shard: *id });
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Some(index) = seen.iter().position(|seen| !seen) {
                    start_error.get_or_insert(StartError::ShardLost {
                        shard: threads[index].0,
                    });
                }
                return;
            }
        }
    }
}

fn serializer_list(listener: &ListenerConfig) -> String {
    let names: Vec<&str> = listener
        .transport
        .serializers
        .iter()
        .map(|s| s.name())
        .collect();
    names.join(", ")
}

/// One shard: builds its pinned executor on the calling thread, binds its listeners (all of
/// them with kernel placement; only shard 0 with round-robin), reports "bound", waits for
/// "go", connects its ends of the mesh, reports "running", serves until `stop` (applying the
/// reloaded configurations `reloads` brings), and returns its metrics.
#[allow(clippy::too_many_arguments)]
fn run_shard(
    spec: ShardSpec,
    config: Arc<Config>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    ready: mpsc::Sender<(ShardId, StartupReport)>,
    go: mpsc::Receiver<bool>,
    reloads: mpsc::Receiver<Reconfigure>,
    mesh_ends: MeshEnds<MeshMsg>,
) -> ShardMetrics {
    let id = spec.id;
    let placement = match spec.cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    let mut builder = LocalExecutorBuilder::new(placement)
        .name(&format!("wampring-shard-{id}"))
        .io_memory(IO_MEMORY_BYTES)
        .ring_depth(RING_DEPTH);
    if config.runtime.spin_before_park_us > 0 {
        // Effective because the executor is pinned (glommio ignores it otherwise).
        builder =
            builder.spin_before_park(Duration::from_micros(config.runtime.spin_before_park_us));
    }
    let executor = match builder.make() {
        Ok(executor) => executor,
        Err(e) => {
            let error = StartError::Executor {
                shard: id,
                error: e.to_string(),
            };
            let _ = ready.send((id, StartupReport::Bound(Err(error))));
            return ShardMetrics::default();
        }
    };

    executor.run(async move {
        let mut listeners = Vec::new();
        for (index, listener) in config.listeners.iter().enumerate() {
            let binds_here = match listener.bind {
                BindAddr::Tcp(_) => config.placement == ShardPlacement::Kernel || id == 0,
                BindAddr::Unix(_) => id == 0,
            };
            if !binds_here {
                continue;
            }
            match startup::bind_any(&listener.bind) {
                // SAFETY: the descriptor is a bound, listening, non-blocking stream socket (TCP
                // or Unix, see the module text) that nothing else owns; glommio's listener
                // takes it over.
                Ok(fd) => listeners.push((unsafe { TcpListener::from_raw_fd(fd) }, fd, index)),
                Err(e) => {
                    let _ = ready.send((id, StartupReport::Bound(Err(e))));
                    return ShardMetrics::default();
                }
            }
        }
        let admin = match (&config.admin, id) {
            (Some(admin), 0) => match startup::bind_listener(admin.bind) {
                // SAFETY: as for the listeners above.
                Ok(fd) => Some((unsafe { TcpListener::from_raw_fd(fd) }, admin.clone())),
                Err(e) => {
                    let _ = ready.send((id, StartupReport::Bound(Err(e))));
                    return ShardMetrics::default();
                }
            },
            _ => None,
        };
        let _ = ready.send((id, StartupReport::Bound(Ok(()))));
        // Blocking is fine here: nothing else runs on this executor yet.
        if !go.recv().unwrap_or(false) {
            return ShardMetrics::default();
        }

        let backpressure = Backpressure::new(config.runtime.shard_backlog_limit);
        let links: Vec<Option<Rc<ShardLink<MeshMsg>>>> = (0..spec.shards)
            .map(|to| {
                (to != id)
                    .then(|| Rc::new(ShardLink::with_backpressure(to, Some(backpressure.clone()))))
            })
            .collect();
        let seed = rand::random::<u64>();
        let mut router = Router::new_shard(config.router.clone(), seed, id, spec.shards);
        router.set_wall_clock_origin(wall_clock_at(epoch));
        let shard = Rc::new(Shard::new(
            id,
            router,
            config.limits.clone(),
            epoch,
            links.clone(),
            backpressure,
        ));
        shard.lend_counters_to_router();
        let listener_configs: Rc<[ListenerConfig]> = config.listeners.clone().into();
        *shard.listener_configs.borrow_mut() = listener_configs.clone();

        // Drain tasks first: each connects a receiving end, which the sending shard's connect
        // waits for; they run while this task waits for its own sending ends below.
        let mut mesh_tasks: Vec<glommio::Task<()>> = Vec::new();
        for (from, receiver) in mesh_ends.inbound.into_iter().enumerate() {
            if let Some(receiver) = receiver {
                let (shard, listener_configs) = (shard.clone(), listener_configs.clone());
                mesh_tasks.push(glommio::spawn_local(mesh::drain_inbound(
                    receiver,
                    move |msg| handle_mesh_msg(&shard, &listener_configs, from, msg),
                )));
            }
        }
        for (to, sender) in mesh_ends.outbound.into_iter().enumerate() {
            if let (Some(sender), Some(link)) = (sender, links[to].clone()) {
                link.connect(sender).await;
                mesh_tasks.push(glommio::spawn_local(link.run_flusher()));
            }
        }
        mesh_tasks.push(glommio::spawn_local(shard.clone().run_timer()));
        mesh_tasks.push(glommio::spawn_local(shard.clone().return_memory()));
        mesh_tasks.push(glommio::spawn_local(shard.clone().run_checks()));
        let _ = ready.send((id, StartupReport::Running));
        drop(ready);
        // Kernel placement deals out only Unix socket connections (see the module text).
        let round_robin = (spec.shards > 1).then(|| Rc::new(RoundRobin::default()));
        if let Some((listener, admin)) = admin {
            mesh_tasks.push(glommio::spawn_local(admin::serve(
                shard.clone(),
                listener,
                admin,
            )));
        }
        shard_main(
            shard,
            listeners,
            listener_configs,
            round_robin,
            config.placement,
            (stop, reloads),
            mesh_tasks,
        )
        .await
    })
}

/// One message from shard `from`, in channel order. False once this shard has terminated
/// (the drain task then ends).
fn handle_mesh_msg(
    shard: &Rc<Shard>,
    listeners: &[ListenerConfig],
    from: ShardId,
    msg: MeshMsg,
) -> bool {
    if shard.is_terminated() {
        return false;
    }
    match msg {
        MeshMsg::Router(msg) => shard.handle_shard_msg(from, msg),
        MeshMsg::Adopt { socket, listener } => adopt_from(shard, listeners, socket, listener, None),
        MeshMsg::AdoptRequest {
            socket,
            listener,
            prefix,
        } => adopt_from(shard, listeners, socket, listener, Some(prefix)),
    }
    true
}

/// Serves a connection another shard handed over (`prefix`: bytes it already read).
fn adopt_from(
    shard: &Rc<Shard>,
    listeners: &[ListenerConfig],
    socket: std::os::fd::OwnedFd,
    listener: usize,
    prefix: Option<bytes::Bytes>,
) {
    shard.metrics.borrow_mut().shard_messages_received += 1;
    match listeners.get(listener) {
        Some(config) => {
            // SAFETY: `socket` is an owned, connected stream socket, TCP or Unix (a duplicate
            // made by the accepting shard; see the module text for why a Unix one rides in
            // glommio's TCP type); the stream takes it over and closes it.
            let stream = unsafe { TcpStream::from_raw_fd(socket.into_raw_fd()) };
            adopt_connection(shard, stream, listener, config, prefix);
        }
        None => error!(
            shard = shard.id,
            listener, "hand-off names a listener that does not exist; closed"
        ),
    }
}

/// The accept order of round-robin placement (shard 0 only): the N-th accepted connection,
/// over all listeners, goes to shard N % shards.
#[derive(Default)]
struct RoundRobin {
    accepted: Cell<u64>,
}

impl RoundRobin {
    fn next_target(&self, shards: usize) -> ShardId {
        let n = self.accepted.get();
        self.accepted.set(n.wrapping_add(1));
        (n % shards as u64) as ShardId
    }
}

/// The shard's main loop: accept tasks run until a stop is seen (reloaded configurations are
/// applied meanwhile), then the shard shuts down.
async fn shard_main(
    shard: Rc<Shard>,
    listeners: Vec<(TcpListener, RawFd, usize)>,
    listener_configs: Rc<[ListenerConfig]>,
    round_robin: Option<Rc<RoundRobin>>,
    placement: ShardPlacement,
    (stop, reloads): (Arc<AtomicBool>, mpsc::Receiver<Reconfigure>),
    mesh_tasks: Vec<glommio::Task<()>>,
) -> ShardMetrics {
    let accept_tasks: Vec<glommio::Task<()>> = listeners
        .into_iter()
        .map(|(listener, fd, index)| {
            let deals = placement == ShardPlacement::RoundRobin
                || matches!(listener_configs[index].bind, BindAddr::Unix(_));
            glommio::spawn_local(accept_loop(
                shard.clone(),
                listener,
                fd,
                index,
                listener_configs.clone(),
                round_robin.clone().filter(|_| deals),
            ))
        })
        .collect();

    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(STOP_POLL_INTERVAL).await;
        // A reload is rare and goes through here, off the message paths.
        while let Ok(reload) = reloads.try_recv() {
            shard.reconfigure(&reload.config);
            let _ = reload.applied.send(shard.id);
        }
    }
    // How long connections may take to finish (GOODBYE, close handshakes) before whatever is
    // left is dropped.
    let deadline = Instant::now() + Duration::from_millis(shard.limits.borrow().shutdown_grace_ms);
    info!(
        shard = shard.id,
        connections = shard.connection_count(),
        "shutting down"
    );

    // Dropping a glommio task cancels it: the listeners close and no one new gets in. The
    // mesh tasks keep running: other shards' messages (replies, leaves) are still handled
    // while this shard's sessions say goodbye.
    drop(accept_tasks);
    shard.begin_shutdown();
    while shard.connection_count() > 0 && Instant::now() < deadline {
        glommio::timer::sleep(SHUTDOWN_POLL_INTERVAL).await;
        // Nothing else wakes a connection whose peer merely acknowledges our last bytes.
        shard.wake_all();
    }
    let left = shard.connection_count();
    if left > 0 {
        warn!(
            shard = shard.id,
            "{left} connections did not finish closing in time; dropping them"
        );
    }
    shard.terminate();
    drop(mesh_tasks);
    shard.log_router_stats();
    let metrics = shard.metrics_snapshot();
    info!(shard = shard.id, "{metrics}");
    metrics
}

/// Accepts connections on one listener: serves each here, or (round-robin) hands it to the
/// shard whose turn it is. `listener_fd` is the listener's descriptor (glommio's listener does
/// not expose it), for accepting through the spare descriptor when none are left.
async fn accept_loop(
    shard: Rc<Shard>,
    listener: TcpListener,
    listener_fd: RawFd,
    index: usize,
    configs: Rc<[ListenerConfig]>,
    round_robin: Option<Rc<RoundRobin>>,
) {
    let config = &configs[index];
    let mut backoff = refusal::AcceptBackoff::default();
    loop {
        match listener.accept().await {
            Ok(stream) => {
                backoff.progressed();
                shard.refusals.restore_spare();
                if let Some(round_robin) = &round_robin {
                    let target = round_robin.next_target(shard.shard_count());
                    if target != shard.id {
                        hand_off(&shard, stream, target, index, config);
                        continue;
                    }
                }
                adopt_connection(&shard, stream, index, config, None)
            }
            Err(e) => {
                if refusal::accept_failed(&shard, listener_fd, config, &e) {
                    backoff.progressed();
                } else {
                    glommio::timer::sleep(backoff.failed()).await;
                }
            }
        }
    }
}

/// Sends an accepted connection to shard `target` (round-robin placement). The descriptor is
/// duplicated into an owned one (glommio's stream has no `into_raw_fd`), and this shard's copy
/// is closed; if duplicating fails (out of descriptors), the connection is served here.
fn hand_off(
    shard: &Rc<Shard>,
    stream: TcpStream,
    target: ShardId,
    listener: usize,
    config: &ListenerConfig,
) {
    // SAFETY: the descriptor belongs to `stream`, which outlives this borrow.
    let borrowed = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    match borrowed.try_clone_to_owned() {
        Ok(socket) => {
            drop(stream);
            shard.metrics.borrow_mut().connections_handed_off += 1;
            debug!(shard = shard.id, target, "connection handed off");
            shard.send_to_shard(target, MeshMsg::Adopt { socket, listener });
        }
        Err(e) => {
            refusal::hand_off_failed(shard, target, &e);
            adopt_connection(shard, stream, listener, config, None);
        }
    }
}

/// Serves an accepted (or handed-over) connection on this shard; `prefix` holds bytes
/// another shard already read from it (a long-poll request, `longpoll.rs`).
fn adopt_connection(
    shard: &Rc<Shard>,
    stream: TcpStream,
    listener: usize,
    config: &ListenerConfig,
    prefix: Option<bytes::Bytes>,
) {
    if shard.is_stopping() {
        // Handed over just as this shard stops: nothing to serve it with.
        debug!(
            shard = shard.id,
            "connection arrived during shutdown; closed"
        );
        return;
    }
    let peer = match &config.bind {
        // Unix clients are usually unnamed: the listener's path says where they came in.
        BindAddr::Unix(path) => format!("unix:{}", path.display()),
        BindAddr::Tcp(_) => stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "unknown".to_string()),
    };
    if shard.at_connection_limit() {
        refusal::refuse(shard, stream, config, &peer);
        return;
    }
    let tls = match &config.tls {
        None => None,
        Some(tls) => match TlsFilter::server(tls.server_config.clone()) {
            Ok(filter) => Some(filter),
            Err(e) => {
                warn!(shard = shard.id, %peer, "cannot start a TLS session: {e}; closed");
                return;
            }
        },
    };
    shard.metrics.borrow_mut().connections_accepted += 1;
    // Frames are batched per turn by the connection task; Nagle would only add latency.
    if matches!(config.bind, BindAddr::Tcp(_)) {
        if let Err(e) = stream.set_nodelay(true) {
            debug!(shard = shard.id, "TCP_NODELAY failed: {e}");
        }
    }
    // TLS, or a socket that never leaves the machine.
    let secure = tls.is_some() || matches!(config.bind, BindAddr::Unix(_));
    let mut transport = ServerConn::new(config.kind, &config.transport);
    if let Some(prefix) = prefix {
        transport.receive(&prefix);
    }
    debug!(shard = shard.id, %peer, kind = kind_name(config.kind), "accepted");
    let conn = Rc::new(Connection::new(transport, peer, config.slow_consumer));
    glommio::spawn_local(ConnectionTask::new(
        shard.clone(),
        conn,
        stream,
        config.kind,
        listener,
        tls,
        secure,
    ))
    .detach();
}

fn kind_name(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::WebSocket => "websocket",
        TransportKind::RawSocket => "rawsocket",
    }
}

/// Unix time (ms) at `epoch`, the zero of the shards' monotonic clock.
fn wall_clock_at(epoch: Instant) -> u64 {
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    unix_now.saturating_sub(epoch.elapsed().as_millis() as u64)
}
