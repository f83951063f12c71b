//! shard: the runtime — the ONLY code that names glommio. [`serve`] runs the start-up checks,
//! starts one thread per shard, each with its own glommio `LocalExecutor` ([`run_shard`]), waits
//! until every shard listens, and returns the summed metrics once a stop was requested and the
//! shards drained. A shard binds its own SO_REUSEPORT listeners, runs one task per connection
//! (`connection.rs`) around a [`Router`] it owns (`state.rs`), and polls the process's stop flag
//! on a timer; on stop it has the router say GOODBYE `wamp.close.system_shutdown` to everyone,
//! flushes, and returns within [`SHUTDOWN_GRACE`].
//!
//! Today one shard runs (`cores` > 1 is accepted and reported by `main.rs`); running N means
//! starting N `run_shard`s with `cpu = Some(i)`, plus the channel mesh between them.

mod connection;
mod metrics;
pub mod startup;
mod state;

use std::os::fd::FromRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{debug, error, info, warn};

use crate::config::{Config, ListenerConfig};
use crate::net::{ServerConn, TransportKind};
use crate::router::Router;

use connection::ConnectionTask;
pub use metrics::ShardMetrics;
pub use startup::StartError;
use state::{Connection, Shard};

/// How often a shard looks at the stop flag (set from a signal handler).
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long a shard lets its connections finish (GOODBYE flushed, close handshakes) after a
/// stop was seen, before it drops whatever is left. Keeps exit within 2 s of the signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// How often connections re-check during shutdown whether their last bytes were acknowledged.
const SHUTDOWN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// glommio's registered I/O memory per executor. The router does no DMA file I/O, so keep the
/// locked-memory footprint small (glommio's default is 10 MiB).
const IO_MEMORY_BYTES: usize = 1 << 20;

/// io_uring submission ring depth per executor (glommio queues beyond it itself).
const RING_DEPTH: usize = 128;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(20);

/// Where and how one shard runs.
#[derive(Clone, Debug)]
pub struct ShardSpec {
    pub id: usize,
    /// Pin the executor to this CPU; `None` lets the OS place it.
    pub cpu: Option<usize>,
}

/// Runs the router until `stop` turns true: start-up checks, shards, shutdown. Returns the
/// metrics summed over shards, or why it could not start.
pub fn serve(config: &Config, stop: Arc<AtomicBool>) -> Result<ShardMetrics, StartError> {
    let shard_specs = vec![ShardSpec { id: 0, cpu: None }];

    let memlock = startup::raise_memlock_limit(shard_specs.len())?;
    debug!(memlock_bytes = memlock, "RLIMIT_MEMLOCK");
    for listener in &config.listeners {
        startup::probe_address_free(listener.bind)?;
    }

    let config = Arc::new(config.clone());
    let epoch = Instant::now();
    let (ready_tx, ready_rx) = mpsc::channel::<(usize, Result<(), StartError>)>();
    let mut threads = Vec::new();
    for spec in shard_specs {
        let (config, stop, ready) = (config.clone(), stop.clone(), ready_tx.clone());
        let id = spec.id;
        let thread = std::thread::Builder::new()
            .name(format!("wampring-shard-{id}"))
            .spawn(move || run_shard(spec, config, stop, epoch, ready))
            .map_err(|e| StartError::Executor {
                shard: id,
                error: format!("cannot start its thread: {e}"),
            })?;
        threads.push((id, thread));
    }
    drop(ready_tx);

    let mut start_error = None;
    for _ in 0..threads.len() {
        match ready_rx.recv() {
            Ok((_, Ok(()))) => {}
            Ok((_, Err(e))) => {
                start_error.get_or_insert(e);
            }
            Err(_) => {
                // A shard thread ended without reporting: it panicked.
                start_error.get_or_insert(StartError::ShardLost { shard: 0 });
                break;
            }
        }
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

    let mut total = ShardMetrics::default();
    for (id, thread) in threads {
        match thread.join() {
            Ok(metrics) => total += metrics,
            Err(_) => {
                error!(shard = id, "shard thread panicked");
                start_error.get_or_insert(StartError::ShardLost { shard: id });
            }
        }
    }
    match start_error {
        Some(e) => Err(e),
        None => Ok(total),
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

/// One shard: builds its executor on the calling thread, binds its listeners, reports
/// readiness (or the start-up error) on `ready`, serves until `stop`, and returns its metrics.
pub fn run_shard(
    spec: ShardSpec,
    config: Arc<Config>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    ready: mpsc::Sender<(usize, Result<(), StartError>)>,
) -> ShardMetrics {
    let placement = match spec.cpu {
        Some(cpu) => Placement::Fixed(cpu),
        None => Placement::Unbound,
    };
    let mut builder = LocalExecutorBuilder::new(placement)
        .name(&format!("wampring-shard-{}", spec.id))
        .io_memory(IO_MEMORY_BYTES)
        .ring_depth(RING_DEPTH);
    if config.runtime.spin_before_park_us > 0 {
        builder =
            builder.spin_before_park(Duration::from_micros(config.runtime.spin_before_park_us));
    }
    let executor = match builder.make() {
        Ok(executor) => executor,
        Err(e) => {
            let _ = ready.send((
                spec.id,
                Err(StartError::Executor {
                    shard: spec.id,
                    error: e.to_string(),
                }),
            ));
            return ShardMetrics::default();
        }
    };

    executor.run(async move {
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for listener in &config.listeners {
            match startup::bind_listener(listener.bind) {
                // SAFETY: the descriptor is a bound, listening, non-blocking TCP socket that
                // nothing else owns; glommio's listener takes it over.
                Ok(fd) => {
                    listeners.push((unsafe { TcpListener::from_raw_fd(fd) }, listener.clone()))
                }
                Err(e) => {
                    let _ = ready.send((spec.id, Err(e)));
                    return ShardMetrics::default();
                }
            }
        }
        let seed = rand::random::<u64>();
        let router = Router::new(config.router.clone(), seed);
        let shard = Rc::new(Shard::new(spec.id, router, config.limits.clone(), epoch));
        let _ = ready.send((spec.id, Ok(())));
        drop(ready);
        shard_main(shard, listeners, stop).await
    })
}

/// The shard's main loop: accept tasks run until a stop is seen, then the shard shuts down.
async fn shard_main(
    shard: Rc<Shard>,
    listeners: Vec<(TcpListener, ListenerConfig)>,
    stop: Arc<AtomicBool>,
) -> ShardMetrics {
    let accept_tasks: Vec<glommio::Task<()>> = listeners
        .into_iter()
        .map(|(listener, config)| {
            glommio::spawn_local(accept_loop(shard.clone(), listener, Rc::new(config)))
        })
        .collect();

    while !stop.load(Ordering::Relaxed) {
        glommio::timer::sleep(STOP_POLL_INTERVAL).await;
    }
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    info!(
        shard = shard.id,
        connections = shard.connection_count(),
        "shutting down"
    );

    // Dropping a glommio task cancels it: the listeners close and no one new gets in.
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
    shard.log_router_stats();
    let metrics = shard.metrics_snapshot();
    info!(shard = shard.id, "{metrics}");
    metrics
}

/// Accepts connections on one listener and spawns a task for each.
async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, config: Rc<ListenerConfig>) {
    loop {
        match listener.accept().await {
            Ok(stream) => adopt_connection(&shard, stream, &config),
            Err(e) => {
                warn!(shard = shard.id, listener = %config.url(), "accept failed: {e}");
                glommio::timer::sleep(ACCEPT_ERROR_BACKOFF).await;
            }
        }
    }
}

fn adopt_connection(shard: &Rc<Shard>, stream: TcpStream, config: &ListenerConfig) {
    shard.metrics.borrow_mut().connections_accepted += 1;
    // Frames are batched per turn by the connection task; Nagle would only add latency.
    if let Err(e) = stream.set_nodelay(true) {
        debug!(shard = shard.id, "TCP_NODELAY failed: {e}");
    }
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "unknown".to_string());
    let mut transport = ServerConn::new(config.kind, &config.transport);
    if shard.at_connection_limit() {
        // Answer in the transport's own terms (HTTP 503 / RawSocket error 4), then close.
        transport.refuse_overloaded();
        shard.metrics.borrow_mut().connections_refused += 1;
        warn!(shard = shard.id, %peer, "connection refused: at the limit of {} connections", shard.limits.max_connections_per_shard);
    }
    debug!(shard = shard.id, %peer, kind = kind_name(config.kind), "accepted");
    let conn = Rc::new(Connection::new(transport, peer));
    glommio::spawn_local(ConnectionTask::new(
        shard.clone(),
        conn,
        stream,
        config.kind,
    ))
    .detach();
}

fn kind_name(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::WebSocket => "websocket",
        TransportKind::RawSocket => "rawsocket",
    }
}
