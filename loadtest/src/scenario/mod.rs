//! The scenarios and the machinery they share: the immutable [`Run`] description, the
//! cross-thread coordination in [`Shared`] (setup barrier, start time, completion counters),
//! the per-thread [`ThreadCtx`], and [`execute`], which runs the executor threads through
//! setup -> warmup -> measured window -> drain -> close, prints the live progress line and
//! samples CPU time at the window's edges.
//!
//! Sessions are distributed over threads round-robin in role order (callers then callees,
//! publishers then subscribers), so both sides spread over all threads.

pub mod connect;
pub mod pubsub;
pub mod rpc;
pub mod session_list;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glommio::sync::Semaphore;
use wampring::serializer::Serializer;

use crate::auth::ClientAuth;
use crate::clock::{self, Phases};
use crate::incoming::EventCache;
use crate::link::{Link, LinkError, Roles};
use crate::procfs;
use crate::runtime::{self, Watchdog};
use crate::stats::{merge_histogram, new_histogram, LatencySummary, ThreadProgress, ThreadStats};
use crate::target::Target;
use crate::units::{format_micros, format_rate};

/// How an operation stream is paced.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Pacing {
    /// Closed loop: `n` operations in flight (pubsub without acknowledge: `n` per loop turn).
    Window(usize),
    /// Open loop: operations per second per sender, on a fixed clock.
    Rate(f64),
}

#[derive(Clone, Debug)]
pub struct RpcPlan {
    pub callers: usize,
    pub callees: usize,
    pub procedure: String,
    pub payload: usize,
    pub pacing: Pacing,
    pub max_in_flight: usize,
}

#[derive(Clone, Debug)]
pub struct PubsubPlan {
    pub publishers: usize,
    pub subscribers: usize,
    pub topic: String,
    pub payload: usize,
    pub acknowledge: bool,
    pub pacing: Pacing,
    pub max_in_flight: usize,
}

#[derive(Clone, Debug)]
pub struct ConnectPlan {
    pub connections: usize,
    pub hold: usize,
    pub op_timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct SessionListPlan {
    /// Idle sessions held during the run.
    pub sessions: usize,
    /// Measuring sessions.
    pub callers: usize,
    /// Calls in flight per measuring session.
    pub window: usize,
    /// Alternate wamp.session.count with wamp.session.list.
    pub count: bool,
}

impl SessionListPlan {
    /// What every answer must say: the idle sessions plus the measuring ones (the caller is
    /// included in `wamp.session.list`).
    pub fn expected_sessions(&self) -> u64 {
        (self.sessions + self.callers) as u64
    }
}

#[derive(Clone, Debug)]
pub enum Scenario {
    Rpc(RpcPlan),
    Pubsub(PubsubPlan),
    Connect(ConnectPlan),
    SessionList(SessionListPlan),
}

/// One session's job.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Caller(usize),
    Callee(usize),
    Publisher(usize),
    Subscriber(usize),
    /// connect: an open/close loop.
    Cycler(usize),
    /// connect: an idle held session.
    Holder(usize),
    /// session-list: a session calling the meta procedures.
    Lister(usize),
    /// session-list: an idle session, counted by the answers.
    Idle(usize),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Rpc(_) => "rpc",
            Scenario::Pubsub(_) => "pubsub",
            Scenario::Connect(_) => "connect",
            Scenario::SessionList(_) => "session-list",
        }
    }

    /// What one measured operation is, for rates in tables ("calls/s").
    pub fn unit(&self) -> &'static str {
        match self {
            Scenario::Rpc(_) => "calls",
            Scenario::Pubsub(_) => "events",
            Scenario::Connect(_) => "sessions",
            Scenario::SessionList(_) => "lists",
        }
    }

    /// Every session of the run, in distribution order.
    pub fn roles(&self) -> Vec<Role> {
        match self {
            Scenario::Rpc(p) => (0..p.callers)
                .map(Role::Caller)
                .chain((0..p.callees).map(Role::Callee))
                .collect(),
            Scenario::Pubsub(p) => (0..p.publishers)
                .map(Role::Publisher)
                .chain((0..p.subscribers).map(Role::Subscriber))
                .collect(),
            Scenario::Connect(p) => (0..p.hold)
                .map(Role::Holder)
                .chain((0..p.connections).map(Role::Cycler))
                .collect(),
            Scenario::SessionList(p) => (0..p.callers)
                .map(Role::Lister)
                .chain((0..p.sessions).map(Role::Idle))
                .collect(),
        }
    }

    /// The sessions of thread `thread` out of `threads`.
    pub fn roles_for_thread(&self, thread: usize, threads: usize) -> Vec<Role> {
        self.roles()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % threads == thread)
            .map(|(_, r)| r)
            .collect()
    }

    /// Sessions that must be established before the load starts (cyclers open theirs later).
    pub fn sessions_in_setup(&self) -> usize {
        self.roles()
            .iter()
            .filter(|r| !matches!(r, Role::Cycler(_)))
            .count()
    }

    fn publishers(&self) -> usize {
        match self {
            Scenario::Pubsub(p) => p.publishers,
            _ => 0,
        }
    }
}

/// Everything about a run that does not change while it runs.
#[derive(Clone, Debug)]
pub struct Run {
    pub scenario: Scenario,
    pub target: Target,
    pub address: SocketAddr,
    pub serializer: Serializer,
    pub realm: String,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    pub setup_timeout: Duration,
    pub threads: usize,
    pub cpus: Option<Vec<usize>>,
    pub router_pid: Option<u32>,
    pub quiet: bool,
    pub spin_before_park: Option<Duration>,
    /// How every session authenticates (`None`: HELLO offers nothing).
    pub auth: Option<Arc<ClientAuth>>,
}

impl Run {
    /// Sessions the setup barrier waits for: the scenario's, plus connect's authentication
    /// check (see `connect::cycler`).
    pub fn sessions_in_setup(&self) -> usize {
        self.scenario.sessions_in_setup() + usize::from(self.checks_auth_in_setup())
    }

    /// connect with cyclers and authentication: one session authenticates during setup, so
    /// wrong credentials fail the run up front and the keys derived once per run are derived
    /// before the load, not in the first cycles.
    pub fn checks_auth_in_setup(&self) -> bool {
        matches!(&self.scenario, Scenario::Connect(c) if c.connections > 0) && self.auth.is_some()
    }
}

/// Coordination between the threads of one run.
pub struct Shared {
    /// Sessions established during setup.
    pub ready: AtomicUsize,
    pub setup_failures: AtomicUsize,
    pub first_failure: Mutex<Option<String>>,
    /// Process-clock ns when the load starts; 0 until setup completed.
    pub start: AtomicU64,
    /// Setup failed: every task leaves at once.
    pub aborted: AtomicBool,
    /// End of setup, process-clock ns.
    pub setup_deadline: u64,
    /// rpc and session-list: calling sessions that finished their load.
    pub callers_done: AtomicUsize,
    pub publishers_done: AtomicUsize,
    /// pubsub: measured publishes not refused, summed as publishers finish.
    pub expected_per_subscriber: AtomicU64,
    /// pubsub: each publisher's first measured sequence number (u64::MAX until known).
    pub first_measured_seq: Vec<AtomicU64>,
    pub progress: Vec<ThreadProgress>,
    pub threads_done: AtomicUsize,
}

impl Shared {
    fn new(run: &Run, setup_deadline: u64) -> Shared {
        Shared {
            ready: AtomicUsize::new(0),
            setup_failures: AtomicUsize::new(0),
            first_failure: Mutex::new(None),
            start: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            setup_deadline,
            callers_done: AtomicUsize::new(0),
            publishers_done: AtomicUsize::new(0),
            expected_per_subscriber: AtomicU64::new(0),
            first_measured_seq: (0..run.scenario.publishers())
                .map(|_| AtomicU64::new(u64::MAX))
                .collect(),
            progress: (0..run.threads)
                .map(|_| ThreadProgress::default())
                .collect(),
            threads_done: AtomicUsize::new(0),
        }
    }
}

/// What the tasks of one executor thread share.
pub struct ThreadCtx {
    pub run: Arc<Run>,
    pub shared: Arc<Shared>,
    pub stats: RefCell<ThreadStats>,
    /// The thread's subscribers' recent EVENTs (pubsub; see `incoming::EventCache`).
    pub event_cache: RefCell<EventCache>,
    /// Bounds concurrent connection setups per thread, so thousands of sessions do not
    /// overflow the router's accept backlog all at once.
    setup_gate: Semaphore,
    /// Closed (by [`watch_start`]) once the load started, the run was aborted, or the wait
    /// timed out: one task per thread polls for that, so ten thousand waiting sessions do not
    /// each wake every millisecond.
    start_gate: Semaphore,
    /// session-list: closed once every measuring session finished (or the drain ended), so the
    /// idle sessions leave only after the last answer that counts them.
    pub load_over: Semaphore,
}

/// Connection setups in progress per thread at most.
const SETUP_CONCURRENCY: u64 = 128;

impl ThreadCtx {
    pub fn phases(&self) -> Phases {
        let start = self.shared.start.load(Ordering::Acquire);
        Phases::new(start, self.run.warmup, self.run.duration, self.run.drain)
    }

    /// Connects and joins one session during setup; failures are recorded and abort the run.
    pub async fn open_setup_session(&self, roles: Roles, what: &str) -> Option<Link> {
        let deadline = clock::instant_of(self.shared.setup_deadline);
        let permit = self.setup_gate.acquire_permit(1).await;
        let result = async {
            let mut link = Link::connect(
                &self.run.target,
                self.run.address,
                self.run.serializer,
                deadline,
            )
            .await?;
            link.join(&self.run.realm, roles, self.run.auth.as_deref(), deadline)
                .await?;
            Ok::<Link, LinkError>(link)
        }
        .await;
        drop(permit);
        match result {
            Ok(link) => Some(link),
            Err(e) => {
                self.setup_failed(what, &e);
                None
            }
        }
    }

    /// Records a setup failure: the run is aborted with this message.
    pub fn setup_failed(&self, what: &str, error: &LinkError) {
        self.stats.borrow_mut().record_error(&error.uri());
        self.shared.setup_failures.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut first) = self.shared.first_failure.lock() {
            first.get_or_insert_with(|| format!("{what}: {error}"));
        }
    }

    /// Reports this session ready and waits for the load to start; `None` when the run was
    /// aborted (the caller then leaves).
    /// Reports the session ready and waits for the start; when the run is aborted instead,
    /// leaves the session (bounded to a second) and returns `None`.
    pub async fn ready_or_leave(&self, link: Link) -> Option<(Link, Phases)> {
        self.shared.ready.fetch_add(1, Ordering::AcqRel);
        self.stats.borrow_mut().counts.sessions += 1;
        match self.wait_for_start().await {
            Some(phases) => Some((link, phases)),
            None => {
                self.close_session(link, clock::now_ns() + 1_000_000_000)
                    .await;
                None
            }
        }
    }

    pub async fn wait_for_start(&self) -> Option<Phases> {
        // Err once closed: the gate is never signalled, only closed.
        let _ = self.start_gate.acquire(1).await;
        if self.shared.aborted.load(Ordering::Acquire) {
            return None;
        }
        (self.shared.start.load(Ordering::Acquire) != 0).then(|| self.phases())
    }

    /// Leaves a session at the end of the run, bounded by the close phase; a failure to leave
    /// cleanly is counted but changes no operation count.
    pub async fn close_session(&self, link: Link, close_end: u64) {
        let deadline =
            clock::instant_of(close_end).max(Instant::now() + Duration::from_millis(100));
        if let Err(e) = link.leave(deadline).await {
            self.stats
                .borrow_mut()
                .record_error(&format!("{} (leaving)", e.uri()));
        }
    }
}

/// Yields to the other tasks of the thread every few turns of a busy loop.
pub struct Fairness(u32);

impl Fairness {
    pub fn new() -> Fairness {
        Fairness(0)
    }

    pub async fn turn(&mut self) {
        self.0 += 1;
        if self.0.is_multiple_of(8) {
            futures_lite::future::yield_now().await;
        }
    }
}

impl Default for Fairness {
    fn default() -> Self {
        Fairness::new()
    }
}

async fn role_task(ctx: Rc<ThreadCtx>, role: Role) {
    match role {
        Role::Caller(i) => rpc::caller(ctx, i).await,
        Role::Callee(i) => rpc::callee(ctx, i).await,
        Role::Publisher(i) => pubsub::publisher(ctx, i).await,
        Role::Subscriber(i) => pubsub::subscriber(ctx, i).await,
        Role::Cycler(i) => connect::cycler(ctx, i).await,
        Role::Holder(i) => connect::holder(ctx, i).await,
        Role::Lister(i) => session_list::lister(ctx, i).await,
        Role::Idle(i) => session_list::idle(ctx, i).await,
    }
}

/// Closes the thread's start gate once the load started or the run was aborted, or a second
/// after the setup deadline (the main thread either starts or aborts within the setup timeout;
/// the extra second only covers its polling interval).
async fn watch_start(ctx: Rc<ThreadCtx>) {
    let give_up = ctx.shared.setup_deadline + 1_000_000_000;
    while !ctx.shared.aborted.load(Ordering::Acquire)
        && ctx.shared.start.load(Ordering::Acquire) == 0
        && clock::now_ns() <= give_up
    {
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    ctx.start_gate.close();
}

async fn thread_main(index: usize, run: Arc<Run>, shared: Arc<Shared>) -> ThreadStats {
    let roles = run.scenario.roles_for_thread(index, run.threads);
    let event_cache = match run.scenario {
        Scenario::Pubsub(_) => EventCache::new(),
        _ => EventCache::empty(),
    };
    let ctx = Rc::new(ThreadCtx {
        run,
        shared: shared.clone(),
        stats: RefCell::new(ThreadStats::default()),
        event_cache: RefCell::new(event_cache),
        setup_gate: Semaphore::new(SETUP_CONCURRENCY),
        start_gate: Semaphore::new(0),
        load_over: Semaphore::new(0),
    });
    let start_watcher = glommio::spawn_local(watch_start(ctx.clone()));
    let load_watcher = match &ctx.run.scenario {
        Scenario::SessionList(_) => {
            Some(glommio::spawn_local(session_list::watch_load(ctx.clone())))
        }
        _ => None,
    };
    let tasks: Vec<_> = roles
        .into_iter()
        .map(|role| glommio::spawn_local(role_task(ctx.clone(), role)))
        .collect();
    let flusher = {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_millis(200)).await;
                ctx.shared.progress[index].publish(&mut ctx.stats.borrow_mut());
            }
        })
    };
    for task in tasks {
        task.await;
    }
    drop(start_watcher); // cancels them, if the run ended without them
    drop(load_watcher);
    drop(flusher); // cancels it
    shared.progress[index].publish(&mut ctx.stats.borrow_mut());
    shared.threads_done.fetch_add(1, Ordering::AcqRel);
    let stats = std::mem::take(&mut *ctx.stats.borrow_mut());
    stats
}

/// CPU time consumed by the generator and (when its PID is known) the router.
#[derive(Copy, Clone, Debug, Default)]
pub struct CpuSample {
    pub generator: Duration,
    pub router: Option<Duration>,
}

fn sample_cpu(router_pid: Option<u32>) -> CpuSample {
    CpuSample {
        generator: procfs::self_cpu(),
        router: router_pid.and_then(|pid| procfs::process_cpu(pid).ok()),
    }
}

/// What a finished run hands to the report.
pub struct Outcome {
    pub phases: Phases,
    pub stats: ThreadStats,
    pub cpu_at_warmup_end: CpuSample,
    pub cpu_at_measure_end: CpuSample,
    /// connect: the router's RSS before any session and with the held sessions open.
    pub router_rss_before: Option<u64>,
    pub router_rss_held: Option<u64>,
    pub warnings: Vec<String>,
}

/// Runs the scenario to completion. Errors are setup failures (nothing measured).
pub fn execute(run: Run) -> Result<Outcome, String> {
    let mut warnings = runtime::raise_limits();
    let sessions = run.scenario.roles().len() as u64;
    let files = runtime::open_files_limit();
    if sessions + 64 > files {
        return Err(format!(
            "{sessions} sessions need more file descriptors than RLIMIT_NOFILE allows ({files}); raise it with ulimit -n"
        ));
    }
    let setup_deadline = clock::now_ns() + clock::nanos(run.setup_timeout);
    let watchdog = Watchdog::start(setup_deadline + 5_000_000_000);
    let router_rss_before = run.router_pid.and_then(|pid| procfs::process_rss(pid).ok());
    if let Some(pid) = run.router_pid {
        if let Err(e) = procfs::process_cpu(pid) {
            warnings.push(format!("--router-pid {pid}: {e}; router CPU not reported"));
        }
    }
    let run = Arc::new(run);
    let shared = Arc::new(Shared::new(&run, setup_deadline));
    let threads = {
        let (run, shared) = (run.clone(), shared.clone());
        runtime::spawn_executors(
            run.threads,
            run.cpus.clone().as_deref(),
            run.spin_before_park,
            move |index| thread_main(index, run.clone(), shared.clone()),
        )?
    };

    // Setup barrier: every session established, or a failure, or the timeout.
    let needed = run.sessions_in_setup();
    loop {
        let ready = shared.ready.load(Ordering::Acquire);
        let failed = shared.setup_failures.load(Ordering::Acquire);
        if ready >= needed || failed > 0 || clock::now_ns() >= setup_deadline {
            break;
        }
        if shared.threads_done.load(Ordering::Acquire) == run.threads {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let ready = shared.ready.load(Ordering::Acquire);
    if ready < needed {
        shared.aborted.store(true, Ordering::Release);
        let failed = shared.setup_failures.load(Ordering::Acquire);
        let first = shared.first_failure.lock().ok().and_then(|f| f.clone());
        watchdog.set(clock::now_ns() + clock::nanos(clock::CLOSE_TIMEOUT) + 5_000_000_000);
        for thread in threads {
            let _ = thread.join();
        }
        return Err(match first {
            Some(first) => format!("setup failed: {ready} of {needed} sessions ready, {failed} failed; first failure: {first}"),
            None => format!(
                "setup timed out: {ready} of {needed} sessions ready after {:?} (--setup-timeout)",
                run.setup_timeout
            ),
        });
    }
    let router_rss_held = run.router_pid.and_then(|pid| procfs::process_rss(pid).ok());

    // Start: a moment ahead so every task sees the same start time.
    let start = clock::now_ns() + 1_000_000;
    let phases = Phases::new(start, run.warmup, run.duration, run.drain);
    shared.start.store(start, Ordering::Release);
    watchdog.set(phases.close_end + 5_000_000_000);

    let mut cpu_at_warmup_end = None;
    let mut cpu_at_measure_end = None;
    let mut progress = ProgressLine::new(&run, phases);
    loop {
        let now = clock::now_ns();
        if cpu_at_warmup_end.is_none() && now >= phases.warmup_end {
            cpu_at_warmup_end = Some(sample_cpu(run.router_pid));
        }
        if cpu_at_measure_end.is_none() && now >= phases.measure_end {
            cpu_at_measure_end = Some(sample_cpu(run.router_pid));
        }
        if shared.threads_done.load(Ordering::Acquire) == run.threads {
            break;
        }
        progress.maybe_print(now, &shared);
        // Sleep to the next event, at most 20 ms so the end of the run is noticed promptly.
        let mut next = now + 20_000_000;
        for edge in [phases.warmup_end, phases.measure_end, progress.next_tick] {
            if edge > now {
                next = next.min(edge);
            }
        }
        std::thread::sleep(Duration::from_nanos(next.saturating_sub(clock::now_ns())));
    }
    let end_sample = sample_cpu(run.router_pid);
    let cpu_at_warmup_end = cpu_at_warmup_end.unwrap_or(end_sample);
    let cpu_at_measure_end = cpu_at_measure_end.unwrap_or(end_sample);

    let mut stats = ThreadStats::default();
    for thread in threads {
        stats.merge(&thread.join()?);
    }
    stats.flush();
    watchdog.disarm();
    if let Scenario::Pubsub(_) = run.scenario {
        pubsub::finish_accounting(&mut stats);
    }
    Ok(Outcome {
        phases,
        stats,
        cpu_at_warmup_end,
        cpu_at_measure_end,
        router_rss_before,
        router_rss_held,
        warnings,
    })
}

/// The once-a-second progress line on stderr.
struct ProgressLine {
    enabled: bool,
    phases: Phases,
    unit: &'static str,
    next_tick: u64,
    last_ops: u64,
    last_tick: u64,
}

impl ProgressLine {
    fn new(run: &Run, phases: Phases) -> ProgressLine {
        ProgressLine {
            enabled: !run.quiet,
            phases,
            unit: run.scenario.unit(),
            next_tick: phases.start + 1_000_000_000,
            last_ops: 0,
            last_tick: phases.start,
        }
    }

    fn maybe_print(&mut self, now: u64, shared: &Shared) {
        if now < self.next_tick {
            return;
        }
        self.next_tick += 1_000_000_000;
        let ops: u64 = shared
            .progress
            .iter()
            .map(|p| p.ops.load(Ordering::Relaxed))
            .sum();
        let errors: u64 = shared
            .progress
            .iter()
            .map(|p| p.errors.load(Ordering::Relaxed))
            .sum();
        let mut interval = new_histogram();
        for p in &shared.progress {
            if let Ok(mut h) = p.interval.lock() {
                merge_histogram(&mut interval, &h);
                h.reset();
            }
        }
        let seconds = (now - self.last_tick) as f64 / 1e9;
        let rate = (ops - self.last_ops.min(ops)) as f64 / seconds.max(1e-9);
        self.last_ops = ops;
        self.last_tick = now;
        if !self.enabled {
            return;
        }
        // The phase the reported second was mostly in.
        let middle = now.saturating_sub(500_000_000);
        let phase = if middle < self.phases.warmup_end {
            "warmup"
        } else if middle < self.phases.measure_end {
            "measure"
        } else {
            "drain"
        };
        let p99 = LatencySummary::of(&interval).p99;
        eprintln!(
            "[{:>5.1}s {phase:<7}] {:>10} {}/s  p99 {:>8} µs  errors {errors}",
            (now - self.phases.start) as f64 / 1e9,
            format_rate(rate),
            self.unit,
            format_micros(p99),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_spread_over_threads_in_role_order() {
        let s = Scenario::Rpc(RpcPlan {
            callers: 1,
            callees: 1,
            procedure: "p".into(),
            payload: 0,
            pacing: Pacing::Window(1),
            max_in_flight: 1,
        });
        assert_eq!(s.roles_for_thread(0, 2), vec![Role::Caller(0)]);
        assert_eq!(s.roles_for_thread(1, 2), vec![Role::Callee(0)]);
        assert_eq!(
            s.roles_for_thread(0, 1),
            vec![Role::Caller(0), Role::Callee(0)]
        );
        let c = Scenario::Connect(ConnectPlan {
            connections: 3,
            hold: 2,
            op_timeout: Duration::from_secs(1),
        });
        assert_eq!(c.sessions_in_setup(), 2);
        let all: usize = (0..3).map(|t| c.roles_for_thread(t, 3).len()).sum();
        assert_eq!(all, 5);
    }
}
