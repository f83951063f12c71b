//! `wampring-load compare`: the same scenario against several routers, alternating A B A B ...
//! for `--repeat` rounds so drift (thermal, noisy neighbours) hits every router alike. Each run
//! is a child process of this same binary (a clean process per run: no state, memory or CPU
//! accounting shared between routers), writing its JSON report into `--out/raw/`. The summary
//! is the median of each figure over the rounds, as a markdown table with ratios to the first
//! router (`compare.md`) and an SVG bar chart (`compare.svg`). The chart is titled with what
//! was measured (scenario and pacing, measured time, serializer, transport, date in UTC, the
//! commit wampring-load was built from) and its axes carry units and grouped thousands, so it
//! still means something when it is pasted somewhere without the table.

use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

use crate::cli::{validate, Cli, Command, CommonArgs, CompareArgs};
use crate::clock::CLOSE_TIMEOUT;
use crate::procfs;
use crate::report::Report;
use crate::units::{format_micros, format_rate, format_thousands, format_utc_minute};

/// The git commit this binary was built from (`build.rs`; "unknown" outside a repository).
pub const BUILD_COMMIT: &str = env!("WAMPRING_LOAD_COMMIT");

/// The medians of one router over the rounds.
#[derive(Clone, Debug, PartialEq)]
pub struct RouterSummary {
    pub name: String,
    pub url: String,
    pub runs_ok: usize,
    pub runs_failed: usize,
    pub achieved: Option<f64>,
    pub offered: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
    pub errors: Option<f64>,
    pub generator_us_per_op: Option<f64>,
    pub router_us_per_op: Option<f64>,
}

impl RouterSummary {
    pub fn of(name: &str, url: &str, reports: &[Report], failed: usize) -> RouterSummary {
        let med =
            |f: &dyn Fn(&Report) -> Option<f64>| median(reports.iter().filter_map(f).collect());
        RouterSummary {
            name: name.to_string(),
            url: url.to_string(),
            runs_ok: reports.len(),
            runs_failed: failed,
            achieved: med(&|r| Some(r.achieved)),
            offered: med(&|r| Some(r.offered)),
            p50: med(&|r| (r.latency_samples > 0).then_some(r.p50)),
            p99: med(&|r| (r.latency_samples > 0).then_some(r.p99)),
            p999: med(&|r| (r.latency_samples > 0).then_some(r.p999)),
            max: med(&|r| (r.latency_samples > 0).then_some(r.max)),
            errors: med(&|r| Some(r.errors.values().sum::<u64>() as f64)),
            generator_us_per_op: med(&|r| r.cpu.generator_us_per_op),
            router_us_per_op: med(&|r| r.cpu.router_us_per_op),
        }
    }
}

/// The median (mean of the middle two for an even count); `None` for no values.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// `value / base` as "1.23×"; "-" when either is missing or the base is 0.
pub fn ratio(value: Option<f64>, base: Option<f64>) -> String {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}×", v / b),
        _ => "-".to_string(),
    }
}

fn cell(value: Option<f64>, format: fn(f64) -> String) -> String {
    value.map_or("-".to_string(), format)
}

/// The summary table. Ratios are to the first router: for rates above 1 is faster, for
/// latencies and CPU below 1 is better.
pub fn markdown(
    scenario_line: &str,
    unit: &str,
    rounds: usize,
    summaries: &[RouterSummary],
) -> String {
    let op = unit.trim_end_matches('s');
    let mut md = String::new();
    md.push_str("# wampring-load compare\n\n");
    md.push_str(&format!("Scenario: `{scenario_line}`\n\n"));
    md.push_str(&format!(
        "Medians over {rounds} round(s), routers alternating in the order listed. Ratios (×) are to \
         the first router: above 1 means more {unit}/s, or more latency / CPU.\n\n"
    ));
    md.push_str(&format!(
        "| router | achieved {unit}/s | × | p50 µs | × | p99 µs | × | p99.9 µs | × | max µs | router CPU µs/{op} | × | generator CPU µs/{op} | errors | runs ok/failed |\n"
    ));
    md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let base = summaries.first();
    for s in summaries {
        let b = |f: fn(&RouterSummary) -> Option<f64>| base.and_then(f);
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |\n",
            s.name,
            cell(s.achieved, format_rate),
            ratio(s.achieved, b(|x| x.achieved)),
            cell(s.p50, format_micros),
            ratio(s.p50, b(|x| x.p50)),
            cell(s.p99, format_micros),
            ratio(s.p99, b(|x| x.p99)),
            cell(s.p999, format_micros),
            ratio(s.p999, b(|x| x.p999)),
            cell(s.max, format_micros),
            cell(s.router_us_per_op, |v| format!("{v:.2}")),
            ratio(s.router_us_per_op, b(|x| x.router_us_per_op)),
            cell(s.generator_us_per_op, |v| format!("{v:.2}")),
            cell(s.errors, |v| format!("{v:.0}")),
            s.runs_ok,
            s.runs_failed,
        ));
    }
    md.push_str("\n| router | url |\n|---|---|\n");
    for s in summaries {
        md.push_str(&format!("| {} | {} |\n", s.name, s.url));
    }
    md
}

/// What a chart's title says about the run.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartContext {
    /// The scenario and its pacing: "rpc, window 100", "pubsub, 2 → 4, rate 1,000/s".
    pub scenario: String,
    /// Measured seconds per run.
    pub measured_s: f64,
    pub serializer: String,
    /// "websocket", "rawsocket", or both when the routers differ ("rawsocket / websocket").
    pub transport: String,
    /// When the comparison ran, `YYYY-MM-DD HH:MM UTC`.
    pub date_utc: String,
    /// The commit wampring-load was built from.
    pub commit: String,
}

impl ChartContext {
    /// The context of a comparison of `command` over `router_urls`, run now (`None` for a
    /// command that is no scenario).
    pub fn of(command: &Command, router_urls: &[String]) -> Option<ChartContext> {
        let (scenario, common) = match command {
            Command::Rpc(a) => (
                format!(
                    "rpc, {}{}",
                    pacing_text(a.window, a.rate, "window"),
                    plural_sessions(a.callers, "caller")
                ),
                &a.common,
            ),
            Command::Pubsub(a) => (
                format!(
                    "pubsub, {} → {}, {}{}",
                    plural(a.publishers, "publisher"),
                    plural(a.subscribers, "subscriber"),
                    pacing_text(
                        a.window,
                        a.rate,
                        if a.acknowledge { "window" } else { "batch" }
                    ),
                    if a.acknowledge { ", acknowledged" } else { "" }
                ),
                &a.common,
            ),
            Command::Connect(a) => (
                format!(
                    "connect, {}{}",
                    plural(a.connections, "loop"),
                    if a.hold > 0 {
                        format!(", {} held", format_thousands(a.hold as f64, 0))
                    } else {
                        String::new()
                    }
                ),
                &a.common,
            ),
            Command::SessionList(a) => (
                format!(
                    "session-list, {} idle sessions, window {}{}",
                    format_thousands(a.sessions as f64, 0),
                    a.window,
                    plural_sessions(a.callers, "caller")
                ),
                &a.common,
            ),
            Command::Compare(_) => return None,
        };
        let mut transports: Vec<&str> = router_urls
            .iter()
            .filter_map(|url| crate::target::Target::parse(url).ok())
            .map(|t| match (t.kind, t.secure) {
                (wampring::net::TransportKind::WebSocket, false) => "websocket",
                (wampring::net::TransportKind::WebSocket, true) => "websocket+tls",
                (wampring::net::TransportKind::RawSocket, false) => "rawsocket",
                (wampring::net::TransportKind::RawSocket, true) => "rawsocket+tls",
            })
            .collect();
        transports.sort_unstable();
        transports.dedup();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Some(ChartContext {
            scenario,
            measured_s: common.duration.as_secs_f64(),
            serializer: match common.serializer {
                crate::cli::SerializerArg::Json => "json".into(),
                crate::cli::SerializerArg::Msgpack => "msgpack".into(),
                crate::cli::SerializerArg::Cbor => "cbor".into(),
            },
            transport: transports.join(" / "),
            date_utc: format_utc_minute(now),
            commit: BUILD_COMMIT.to_string(),
        })
    }

    /// One line: "rpc, window 100 · 10 s measured · json over websocket · 2026-12-02 23:40 UTC
    /// · wampring-load ea9ba99".
    pub fn title(&self) -> String {
        format!(
            "{} · {} s measured · {} over {} · {} · wampring-load {}",
            self.scenario,
            format_thousands(
                self.measured_s,
                if self.measured_s.fract() == 0.0 { 0 } else { 1 }
            ),
            self.serializer,
            self.transport,
            self.date_utc,
            self.commit
        )
    }
}

/// "window 100" (closed loop; `closed` names it: "window" or "batch"), "rate 1,000/s" (open).
fn pacing_text(window: Option<usize>, rate: Option<f64>, closed: &str) -> String {
    match rate {
        Some(rate) => format!(
            "rate {}/s",
            format_thousands(rate, if rate.fract() == 0.0 { 0 } else { 2 })
        ),
        None => format!(
            "{closed} {}",
            format_thousands(window.unwrap_or(1) as f64, 0)
        ),
    }
}

fn plural(n: usize, what: &str) -> String {
    format!(
        "{} {what}{}",
        format_thousands(n as f64, 0),
        if n == 1 { "" } else { "s" }
    )
}

/// ", 4 callers" when there is more than one session of the kind.
fn plural_sessions(n: usize, what: &str) -> String {
    if n > 1 {
        format!(", {}", plural(n, what))
    } else {
        String::new()
    }
}

/// Two bar panels under a title line: achieved rate (higher is better) and p99 latency (lower
/// is better), each with its unit on the y axis and thousands grouped in every figure.
pub fn write_svg(
    path: &Path,
    context: &ChartContext,
    unit: &str,
    summaries: &[RouterSummary],
) -> Result<(), String> {
    use plotters::prelude::*;
    let names: Vec<String> = summaries.iter().map(|s| s.name.clone()).collect();
    let achieved: Vec<f64> = summaries
        .iter()
        .map(|s| s.achieved.unwrap_or(0.0))
        .collect();
    let p99: Vec<f64> = summaries.iter().map(|s| s.p99.unwrap_or(0.0)).collect();
    let width = 560 * 2;
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root
        .titled(&context.title(), ("sans-serif", 17))
        .map_err(|e| e.to_string())?;
    let (left, right) = panels.split_horizontally(width / 2);
    bar_panel(
        &left,
        &format!("achieved {unit}/s (higher is better)"),
        &format!("{unit}/s"),
        &names,
        &achieved,
        &RGBColor(0x33, 0x66, 0xcc),
        |v| format_thousands(v, if v >= 100.0 { 0 } else { 2 }),
    )?;
    bar_panel(
        &right,
        "p99 latency (lower is better)",
        "latency (µs)",
        &names,
        &p99,
        &RGBColor(0xcc, 0x55, 0x33),
        |v| format_thousands(v, if v >= 10_000.0 { 0 } else { 1 }),
    )?;
    root.present().map_err(|e| e.to_string())
}

fn bar_panel<DB: plotters::prelude::DrawingBackend>(
    area: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    y_unit: &str,
    names: &[String],
    values: &[f64],
    color: &plotters::prelude::RGBColor,
    label: fn(f64) -> String,
) -> Result<(), String> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let top = values.iter().copied().fold(0.0, f64::max).max(1.0) * 1.15;
    // Bar i is centred on x = i; the band below 0 holds the router names.
    let bottom = -top * 0.07;
    let right = names.len().max(1) as f64 - 0.5;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(24)
        .y_label_area_size(90)
        .build_cartesian_2d(-0.5f64..right, bottom..top)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc("router")
        .y_desc(y_unit)
        .y_label_formatter(&|v| match *v {
            v if v < 0.0 => String::new(),
            v if top > 10.0 => format_thousands(v, 0),
            v => format_thousands(v, 2),
        })
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(values.iter().enumerate().map(|(i, v)| {
            let x = i as f64;
            Rectangle::new([(x - 0.32, 0.0), (x + 0.32, *v)], color.filled())
        }))
        .map_err(|e| e.to_string())?;
    let centred = |v: VPos| {
        ("sans-serif", 14)
            .into_font()
            .into_text_style(area)
            .pos(Pos::new(HPos::Center, v))
    };
    chart
        .draw_series(values.iter().enumerate().map(|(i, v)| {
            Text::new(
                label(*v),
                (i as f64, *v + top * 0.01),
                centred(VPos::Bottom),
            )
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(names.iter().enumerate().map(|(i, name)| {
            Text::new(
                name.clone(),
                (i as f64, bottom / 2.0),
                centred(VPos::Center),
            )
        }))
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Flags compare sets itself for every run.
const RESERVED_FLAGS: [&str; 3] = ["--url", "--json", "--router-pid"];

fn scenario_common(command: &Command) -> Option<&CommonArgs> {
    match command {
        Command::Rpc(a) => Some(&a.common),
        Command::Pubsub(a) => Some(&a.common),
        Command::Connect(a) => Some(&a.common),
        Command::SessionList(a) => Some(&a.common),
        Command::Compare(_) => None,
    }
}

/// Runs the comparison; prints the markdown table and where the files went.
pub fn run(args: &CompareArgs) -> Result<(), String> {
    for arg in &args.scenario {
        if RESERVED_FLAGS
            .iter()
            .any(|flag| arg == flag || arg.starts_with(&format!("{flag}=")))
        {
            return Err(format!(
                "compare sets {arg} per router; leave it out of the scenario flags"
            ));
        }
    }
    // Parse the scenario as the children will, to fail now and not after N runs.
    let probe = Cli::try_parse_from(
        std::iter::once("wampring-load".to_string())
            .chain(args.scenario.iter().cloned())
            .chain(["--url".to_string(), args.routers[0].1.clone()]),
    )
    .map_err(|e| format!("scenario flags: {e}"))?;
    validate(&probe.command)?;
    let common = scenario_common(&probe.command)
        .ok_or("compare needs a scenario (rpc, pubsub, connect, session-list)")?;
    for (_, url) in &args.routers {
        crate::target::Target::parse(url)?;
    }
    let child_budget = common.setup_timeout
        + common.warmup
        + common.duration
        + common.drain
        + CLOSE_TIMEOUT
        + Duration::from_secs(15);

    let raw = args.out.join("raw");
    std::fs::create_dir_all(&raw).map_err(|e| format!("{}: {e}", raw.display()))?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let mut reports: Vec<(Vec<Report>, usize)> = vec![(Vec::new(), 0); args.routers.len()];
    let mut unit = String::from("ops");
    let router_pids: Vec<u32> = args
        .router_pids
        .iter()
        .filter_map(|(_, pid)| pid.parse().ok())
        .collect();
    for round in 1..=args.repeat {
        for (index, (name, url)) in args.routers.iter().enumerate() {
            let json = raw.join(format!("{name}-{round}.json"));
            let text = raw.join(format!("{name}-{round}.txt"));
            let _ = std::fs::remove_file(&json);
            let pid = args
                .router_pids
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, p)| p.clone());
            if !router_pids.is_empty() && !args.settle_timeout.is_zero() {
                let sample = || {
                    router_pids
                        .iter()
                        .filter_map(|&pid| procfs::process_cpu(pid).ok())
                        .sum::<Duration>()
                };
                if !wait_until_idle(sample, Duration::from_secs(1), args.settle_timeout) {
                    eprintln!(
                        "compare: the routers were still busy after {:?}; running anyway",
                        args.settle_timeout
                    );
                }
            }
            eprintln!("compare: round {round}/{}: {name} ({url})", args.repeat);
            match run_child(
                &exe,
                &args.scenario,
                url,
                &json,
                &text,
                pid.as_deref(),
                child_budget,
            ) {
                Ok(report) => {
                    eprintln!(
                        "compare:   {} {}/s, p99 {} µs",
                        format_rate(report.achieved),
                        report.unit,
                        format_micros(report.p99)
                    );
                    unit = report.unit.clone();
                    reports[index].0.push(report);
                }
                Err(e) => {
                    eprintln!("compare:   run failed: {e}");
                    reports[index].1 += 1;
                }
            }
        }
    }
    let summaries: Vec<RouterSummary> = args
        .routers
        .iter()
        .zip(&reports)
        .map(|((name, url), (ok, failed))| RouterSummary::of(name, url, ok, *failed))
        .collect();
    let scenario_line = args.scenario.join(" ");
    let md = markdown(&scenario_line, &unit, args.repeat, &summaries);
    let md_path = args.out.join("compare.md");
    std::fs::write(&md_path, &md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    let svg_path = args.out.join("compare.svg");
    let urls: Vec<String> = args.routers.iter().map(|(_, url)| url.clone()).collect();
    let context = ChartContext::of(&probe.command, &urls)
        .ok_or("compare needs a scenario (rpc, pubsub, connect, session-list)")?;
    write_svg(&svg_path, &context, &unit, &summaries)?;
    print!("{md}");
    eprintln!(
        "compare: wrote {} and {}",
        md_path.display(),
        svg_path.display()
    );
    if summaries.iter().all(|s| s.runs_ok == 0) {
        return Err("every run failed".into());
    }
    Ok(())
}

/// One child run; returns its report. The child is killed (by its PID) if it outlives
/// `budget`, which cannot happen unless its own watchdog failed.
/// Most CPU the routers may use in one `interval` and still count as idle (timers, clocks).
const IDLE_CPU_PER_INTERVAL: Duration = Duration::from_millis(20);

/// Samples the routers' total CPU time every `interval` until one interval used at most
/// [`IDLE_CPU_PER_INTERVAL`]; gives up after `budget`. True when they went idle.
fn wait_until_idle(
    mut sample: impl FnMut() -> Duration,
    interval: Duration,
    budget: Duration,
) -> bool {
    let start = Instant::now();
    let mut before = sample();
    loop {
        std::thread::sleep(interval);
        let now = sample();
        if now.saturating_sub(before) <= IDLE_CPU_PER_INTERVAL {
            return true;
        }
        if start.elapsed() >= budget {
            return false;
        }
        before = now;
    }
}

fn run_child(
    exe: &Path,
    scenario: &[String],
    url: &str,
    json: &PathBuf,
    text: &PathBuf,
    router_pid: Option<&str>,
    budget: Duration,
) -> Result<Report, String> {
    let stdout = std::fs::File::create(text).map_err(|e| format!("{}: {e}", text.display()))?;
    let mut command = Process::new(exe);
    command
        .args(scenario)
        .arg("--url")
        .arg(url)
        .arg("--json")
        .arg(json)
        .arg("--quiet");
    if let Some(pid) = router_pid {
        command.arg("--router-pid").arg(pid);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > budget => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("run exceeded {budget:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for the run: {e}")),
        }
    };
    if !status.success() {
        return Err(format!(
            "exited with {status} (details above and in {})",
            text.display()
        ));
    }
    let body = std::fs::read_to_string(json).map_err(|e| format!("{}: {e}", json.display()))?;
    serde_json::from_str(&body).map_err(|e| format!("{}: {e}", json.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settling_waits_for_an_idle_interval_and_gives_up_at_the_budget() {
        // CPU totals (ms) as sampled: busy, busy, then idle.
        let mut totals = [0u64, 500, 900, 905, 905].into_iter();
        let mut samples = 0;
        let idle = wait_until_idle(
            || {
                samples += 1;
                Duration::from_millis(totals.next().unwrap_or(905))
            },
            Duration::from_millis(1),
            Duration::from_secs(5),
        );
        assert!(idle);
        assert_eq!(samples, 4);
        let mut busy = 0u64;
        let gave_up = wait_until_idle(
            || {
                busy += 100;
                Duration::from_millis(busy)
            },
            Duration::from_millis(1),
            Duration::from_millis(20),
        );
        assert!(!gave_up);
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0]), Some(3.0));
        assert_eq!(median(vec![5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![f64::NAN, 2.0]), Some(2.0));
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(Some(150.0), Some(100.0)), "1.50×");
        assert_eq!(ratio(Some(100.0), Some(100.0)), "1.00×");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "-");
        assert_eq!(ratio(None, Some(1.0)), "-");
        assert_eq!(ratio(Some(1.0), None), "-");
    }

    fn summary(name: &str, achieved: f64, p99: f64) -> RouterSummary {
        RouterSummary {
            name: name.into(),
            url: format!("ws://{name}:1/ws"),
            runs_ok: 3,
            runs_failed: 0,
            achieved: Some(achieved),
            offered: Some(achieved),
            p50: Some(p99 / 2.0),
            p99: Some(p99),
            p999: Some(p99 * 2.0),
            max: Some(p99 * 3.0),
            errors: Some(0.0),
            generator_us_per_op: Some(3.0),
            router_us_per_op: None,
        }
    }

    #[test]
    fn markdown_has_a_row_per_router_with_ratios_to_the_first() {
        let md = markdown(
            "rpc --window 1",
            "calls",
            3,
            &[summary("a", 1000.0, 50.0), summary("b", 500.0, 100.0)],
        );
        let rows: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| a |") || l.starts_with("| b |"))
            .collect();
        assert_eq!(rows.len(), 4, "{md}"); // summary rows and url rows
        assert!(rows[0].contains("| 1000 | 1.00× |"), "{}", rows[0]);
        assert!(rows[1].contains("| 500 | 0.50× |"), "{}", rows[1]);
        assert!(rows[1].contains("| 100.0 | 2.00× |"), "{}", rows[1]);
        assert!(rows[0].ends_with("| 3/0 |"));
        // every table row has the header's column count
        let header = md
            .lines()
            .find(|l| l.starts_with("| router | achieved"))
            .unwrap();
        assert_eq!(header.matches('|').count(), rows[0].matches('|').count());
        assert!(md.contains("achieved calls/s") && md.contains("µs/call"));
    }

    fn context() -> ChartContext {
        ChartContext {
            scenario: "rpc, window 100".into(),
            measured_s: 10.0,
            serializer: "json".into(),
            transport: "websocket".into(),
            date_utc: "2026-12-02 23:40 UTC".into(),
            commit: "abc1234".into(),
        }
    }

    #[test]
    fn svg_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        write_svg(
            &path,
            &context(),
            "calls",
            &[
                summary("alpha", 123_456.0, 50.0),
                summary("beta", 700.0, 80.0),
            ],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"));
        let lines: Vec<&str> = svg.lines().map(str::trim).collect();
        assert!(lines.contains(&"alpha") && lines.contains(&"beta"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        // The title names the run; the axes their units; figures group thousands.
        assert!(
            lines.contains(
                &"rpc, window 100 · 10 s measured · json over websocket · 2026-12-02 23:40 UTC · wampring-load abc1234"
            ),
            "{svg}"
        );
        for label in ["calls/s", "latency (µs)", "router", "123,456"] {
            assert!(lines.contains(&label), "no {label:?} in {svg}");
        }
        // A y tick label of the rate panel (its top is 123,456 × 1.15) is grouped too.
        assert!(
            lines.iter().any(|l| l.len() > 4
                && l.contains(',')
                && l.chars().all(|c| c.is_ascii_digit() || c == ',')
                && *l != "123,456"),
            "{svg}"
        );
    }

    #[test]
    fn chart_titles_name_the_run() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("wampring-load").chain(args.iter().copied()))
                .unwrap()
                .command
        };
        let urls = [
            "ws://127.0.0.1:1/ws".to_string(),
            "rs://127.0.0.1:2".to_string(),
        ];
        let rpc = ChartContext::of(
            &parse(&[
                "rpc",
                "--window",
                "100",
                "--duration",
                "5s",
                "--callers",
                "4",
            ]),
            &urls[..1],
        )
        .unwrap();
        assert_eq!(rpc.scenario, "rpc, window 100, 4 callers");
        assert_eq!((rpc.measured_s, rpc.transport.as_str()), (5.0, "websocket"));
        assert_eq!(rpc.serializer, "json");
        assert_eq!(rpc.commit, BUILD_COMMIT);
        assert!(
            rpc.date_utc.ends_with(" UTC") && rpc.date_utc.len() == 20,
            "{}",
            rpc.date_utc
        );
        let pubsub = ChartContext::of(
            &parse(&[
                "pubsub",
                "--rate",
                "12000",
                "--subscribers",
                "3",
                "--serializer",
                "msgpack",
            ]),
            &urls,
        )
        .unwrap();
        assert_eq!(
            pubsub.scenario,
            "pubsub, 1 publisher → 3 subscribers, rate 12,000/s"
        );
        assert_eq!(pubsub.transport, "rawsocket / websocket");
        assert_eq!(pubsub.serializer, "msgpack");
        let title = pubsub.title();
        assert!(
            title.contains(" · msgpack over rawsocket / websocket · "),
            "{title}"
        );
        assert!(title.contains(" · 10 s measured · "), "{title}");
        let cbor = ChartContext::of(
            &parse(&["rpc", "--window", "100", "--serializer", "cbor"]),
            &urls[1..],
        )
        .unwrap();
        assert_eq!(cbor.serializer, "cbor");
        assert!(
            cbor.title().contains(" · cbor over rawsocket · "),
            "{}",
            cbor.title()
        );
        assert!(
            title.ends_with(&format!("· wampring-load {BUILD_COMMIT}")),
            "{title}"
        );
    }
}
