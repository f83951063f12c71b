//! The results of one run: the [`Report`] (what `--json` writes and `compare` reads back) and
//! its text table. Rates are per second of the measured window; latencies are microseconds;
//! "per op" means per measured operation of the scenario's unit (call, delivered event,
//! session cycle).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use wampring::net::TransportKind;

use crate::scenario::{Outcome, Pacing, Run, Scenario};
use crate::stats::{AnswerRange, Counts, LatencySummary};
use crate::units::{format_micros, format_rate};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CpuReport {
    /// CPU seconds the generator process used during the measured window (all its threads:
    /// callers and callees, publishers and subscribers alike).
    pub generator_cpu_s: f64,
    pub generator_us_per_op: Option<f64>,
    /// Share of its threads' time the generator was busy in the measured window (1.0: every
    /// thread busy all the time). Near 1, the tool and not the router set the pace.
    #[serde(default)]
    pub generator_busy: f64,
    pub router_pid: Option<u32>,
    /// The router's utime + stime over the measured window, from /proc/PID/stat.
    pub router_cpu_s: Option<f64>,
    pub router_us_per_op: Option<f64>,
    /// The router's CPU time over the window's length: cores' worth it kept busy.
    #[serde(default)]
    pub router_busy_cores: Option<f64>,
}

/// Above this share of its threads' time the generator warns that it may be the bottleneck.
pub const GENERATOR_BUSY_WARNING: f64 = 0.9;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MemoryReport {
    pub rss_before_bytes: u64,
    pub rss_held_bytes: u64,
    pub held_sessions: u64,
    pub bytes_per_session: Option<f64>,
}

/// A second operation measured beside the scenario's main one: its measured counts and
/// latency percentiles (microseconds).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OperationReport {
    pub operation: String,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    pub latency_samples: u64,
}

/// session-list: what the answers said.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SessionListReport {
    /// Sessions open while measuring, idle plus measuring: what every answer must say.
    pub expected_sessions: u64,
    pub idle_sessions: u64,
    pub measuring_sessions: u64,
    /// Lengths of the `wamp.session.list` answers (whole run, warmup included).
    pub list_length: AnswerRange,
    /// Values of the `wamp.session.count` answers (whole run).
    pub count_value: AnswerRange,
    /// Answers (list or count, whole run) that did not match: a wrong length or count, a list
    /// not in ascending order or without the caller, a malformed answer.
    pub wrong_answers: u64,
    /// The `wamp.session.count` calls (`None` with `--count off`).
    pub count_calls: Option<OperationReport>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub tool: String,
    pub scenario: String,
    pub router_url: String,
    pub transport: String,
    pub serializer: String,
    pub realm: String,
    /// The authentication method every session used (`--authmethod`; `None`: HELLO offered
    /// none, the router chose, usually anonymous) and the authid it gave.
    #[serde(default)]
    pub authmethod: Option<String>,
    #[serde(default)]
    pub authid: Option<String>,
    pub threads: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// "closed" (window), "open" (rate) or "batch" (pubsub without acknowledge, window).
    pub mode: String,
    pub window: Option<usize>,
    /// Per caller / publisher, operations per second.
    pub rate: Option<f64>,
    /// Scenario sizes: callers, callees, procedure, publishers, subscribers, topic, payload,
    /// acknowledge, connections, hold.
    pub params: BTreeMap<String, Json>,
    /// What one operation is: calls, events, sessions.
    pub unit: String,
    /// Operations per second the generator tried (open loop: due ones, sent or not).
    pub offered: f64,
    /// Operations per second that completed (RESULTs, distinct events delivered, sessions).
    pub achieved: f64,
    /// pubsub: publishes per second.
    pub publish_rate: Option<f64>,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    pub latency_samples: u64,
    pub counts: Counts,
    /// rpc: INVOCATIONs each echo callee answered (whole run), in callee order; shows how a
    /// shared registration spread the calls.
    #[serde(default)]
    pub invocations_per_callee: Vec<u64>,
    pub errors: BTreeMap<String, u64>,
    pub cpu: CpuReport,
    pub router_memory: Option<MemoryReport>,
    /// session-list: the answers and the `wamp.session.count` calls.
    #[serde(default)]
    pub session_list: Option<SessionListReport>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn build(run: &Run, outcome: &Outcome) -> Report {
        let seconds = outcome.phases.measured_seconds().max(1e-9);
        let counts = outcome.stats.counts.clone();
        let latency = LatencySummary::of(&outcome.stats.latency);
        let (mode, window, rate, mut params) = describe(&run.scenario);
        params.insert("payload_bytes".into(), json!(payload_of(&run.scenario)));
        let (offered_ops, achieved_ops, publish_rate) = match &run.scenario {
            Scenario::Rpc(_) => (counts.sent + counts.unsent, counts.ok, None),
            Scenario::Pubsub(p) => (
                (counts.sent + counts.unsent) * p.subscribers as u64,
                counts.received,
                Some(counts.sent as f64 / seconds),
            ),
            Scenario::Connect(_) | Scenario::SessionList(_) => (counts.sent, counts.ok, None),
        };
        let per_op = |cpu_s: f64| (achieved_ops > 0).then(|| cpu_s * 1e6 / achieved_ops as f64);
        let generator_cpu_s = (outcome
            .cpu_at_measure_end
            .generator
            .saturating_sub(outcome.cpu_at_warmup_end.generator))
        .as_secs_f64();
        let router_cpu_s = match (
            outcome.cpu_at_warmup_end.router,
            outcome.cpu_at_measure_end.router,
        ) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
            _ => None,
        };
        let generator_busy = generator_cpu_s / (seconds * run.threads.max(1) as f64);
        let mut warnings = outcome.warnings.clone();
        warnings.extend(busy_warning(generator_busy, run.threads));
        warnings.extend(in_flight_warning(&counts));
        let router_memory = match (
            &run.scenario,
            outcome.router_rss_before,
            outcome.router_rss_held,
        ) {
            (Scenario::Connect(c), Some(before), Some(held)) if c.hold > 0 => Some(MemoryReport {
                rss_before_bytes: before,
                rss_held_bytes: held,
                held_sessions: c.hold as u64,
                bytes_per_session: Some(held.saturating_sub(before) as f64 / c.hold as f64),
            }),
            _ => None,
        };
        let session_list = match &run.scenario {
            Scenario::SessionList(p) => {
                let stats = &outcome.stats;
                let count = LatencySummary::of(&stats.secondary.latency);
                if counts.wrong_answers > 0 {
                    warnings.push(format!(
                        "{} answers did not match the {} sessions open (see errors)",
                        counts.wrong_answers,
                        p.expected_sessions()
                    ));
                }
                Some(SessionListReport {
                    expected_sessions: p.expected_sessions(),
                    idle_sessions: p.sessions as u64,
                    measuring_sessions: p.callers as u64,
                    list_length: stats.list_lengths.clone(),
                    count_value: stats.count_values.clone(),
                    wrong_answers: counts.wrong_answers,
                    count_calls: p.count.then(|| OperationReport {
                        operation: crate::scenario::session_list::COUNT.into(),
                        sent: stats.secondary.sent,
                        ok: stats.secondary.ok,
                        errors: stats.secondary.errors,
                        p50: count.p50,
                        p90: count.p90,
                        p99: count.p99,
                        p999: count.p999,
                        max: count.max,
                        mean: count.mean,
                        latency_samples: count.count,
                    }),
                })
            }
            _ => None,
        };
        Report {
            tool: concat!("wampring-load ", env!("CARGO_PKG_VERSION")).into(),
            scenario: run.scenario.name().into(),
            router_url: run.target.url.clone(),
            transport: match run.target.kind {
                TransportKind::WebSocket => "websocket".into(),
                TransportKind::RawSocket => "rawsocket".into(),
            },
            serializer: run.serializer.name().into(),
            realm: run.realm.clone(),
            authmethod: run.auth.as_ref().map(|a| a.method.name().to_string()),
            authid: run.auth.as_ref().and_then(|a| a.authid.clone()),
            threads: run.threads,
            warmup_s: run.warmup.as_secs_f64(),
            duration_s: seconds,
            mode: mode.into(),
            window,
            rate,
            params,
            unit: run.scenario.unit().into(),
            offered: offered_ops as f64 / seconds,
            achieved: achieved_ops as f64 / seconds,
            publish_rate,
            p50: latency.p50,
            p90: latency.p90,
            p99: latency.p99,
            p999: latency.p999,
            max: latency.max,
            mean: latency.mean,
            latency_samples: latency.count,
            counts,
            invocations_per_callee: outcome.stats.callee_invocations_in_order(),
            errors: outcome.stats.errors.clone(),
            cpu: CpuReport {
                generator_cpu_s,
                generator_us_per_op: per_op(generator_cpu_s),
                generator_busy,
                router_pid: run.router_pid,
                router_cpu_s,
                router_us_per_op: router_cpu_s.and_then(per_op),
                router_busy_cores: router_cpu_s.map(|cpu_s| cpu_s / seconds),
            },
            router_memory,
            session_list,
            warnings,
        }
    }

    pub fn write_json(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The human-readable table printed at the end of a run.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        let pacing = match (self.mode.as_str(), self.window, self.rate) {
            ("open", _, Some(rate)) => format!("open loop, {} /s per sender", format_rate(rate)),
            ("batch", Some(w), _) => format!("batch of {w} per loop turn, no acknowledge"),
            (_, Some(w), _) => format!("closed loop, window {w}"),
            _ => "closed loop".to_string(),
        };
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", plain(v)))
            .collect();
        let auth = match (&self.authmethod, &self.authid) {
            (Some(method), Some(authid)) => format!("  auth {method} as {authid}"),
            (Some(method), None) => format!("  auth {method}"),
            (None, _) => String::new(),
        };
        line(format!(
            "wampring-load {}  {}  {} over {}  realm {}{auth}  threads {}",
            self.scenario,
            self.router_url,
            self.serializer,
            self.transport,
            self.realm,
            self.threads
        ));
        line(format!("{pacing}; {}", params.join(" ")));
        line(format!(
            "measured {:.1} s after {:.1} s warmup",
            self.duration_s, self.warmup_s
        ));
        line(String::new());
        line(format!("{:<22}{:>14}{:>14}", "", "offered", "achieved"));
        line(format!(
            "{:<22}{:>14}{:>14}",
            format!("{}/s", self.unit),
            format_rate(self.offered),
            format_rate(self.achieved)
        ));
        if let Some(rate) = self.publish_rate {
            line(format!(
                "{:<22}{:>14}{:>14}",
                "publishes/s",
                "",
                format_rate(rate)
            ));
        }
        line(String::new());
        line(format!(
            "{:<22}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "latency µs", "p50", "p90", "p99", "p99.9", "max", "mean"
        ));
        let samples = match &self.session_list {
            Some(_) => format!("list ({} samples)", self.latency_samples),
            None => format!("({} samples)", self.latency_samples),
        };
        line(format!(
            "{:<22}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            samples,
            format_micros(self.p50),
            format_micros(self.p90),
            format_micros(self.p99),
            format_micros(self.p999),
            format_micros(self.max),
            format_micros(self.mean)
        ));
        if let Some(count) = self
            .session_list
            .as_ref()
            .and_then(|s| s.count_calls.as_ref())
        {
            line(format!(
                "{:<22}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
                format!("count ({} samples)", count.latency_samples),
                format_micros(count.p50),
                format_micros(count.p90),
                format_micros(count.p99),
                format_micros(count.p999),
                format_micros(count.max),
                format_micros(count.mean)
            ));
        }
        line(String::new());
        line(format!(
            "counts                {}",
            counts_line(&self.scenario, &self.counts)
        ));
        if let Some(s) = &self.session_list {
            if let Some(c) = &s.count_calls {
                line(format!(
                    "count calls           sent {}  ok {}  errors {}",
                    c.sent, c.ok, c.errors
                ));
            }
            let range = |r: &AnswerRange| match r.answers {
                0 => "none".to_string(),
                n => format!("{}..{} ({n} answers)", r.min, r.max),
            };
            line(format!(
                "sessions open         {} ({} idle + {} measuring)",
                s.expected_sessions, s.idle_sessions, s.measuring_sessions
            ));
            line(format!(
                "answers               list length {}  count {}  wrong {}",
                range(&s.list_length),
                range(&s.count_value),
                s.wrong_answers
            ));
        }
        if self.invocations_per_callee.len() > 1 {
            let per_callee: Vec<String> = self
                .invocations_per_callee
                .iter()
                .map(u64::to_string)
                .collect();
            line(format!("per callee            {}", per_callee.join(" ")));
        }
        if self.errors.is_empty() {
            line("errors                none".into());
        } else {
            line("errors by URI".into());
            for (uri, n) in &self.errors {
                line(format!("  {n:>12}  {uri}"));
            }
        }
        let cpu = &self.cpu;
        let per_op = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        line(format!(
            "cpu µs per {:<11}generator {} ({:.2} s, busy {:.0}% of {} thread{})",
            self.unit.trim_end_matches('s'),
            per_op(cpu.generator_us_per_op),
            cpu.generator_cpu_s,
            cpu.generator_busy * 100.0,
            self.threads,
            if self.threads == 1 { "" } else { "s" }
        ));
        match (cpu.router_pid, cpu.router_cpu_s) {
            (Some(pid), Some(s)) => line(format!(
                "{:<22}router {} ({s:.2} s, {:.2} cores busy, pid {pid})",
                "",
                per_op(cpu.router_us_per_op),
                cpu.router_busy_cores.unwrap_or(0.0)
            )),
            (Some(pid), None) => line(format!("{:<22}router: pid {pid} not readable", "")),
            (None, _) => line(format!("{:<22}router: give --router-pid PID", "")),
        }
        if let Some(m) = &self.router_memory {
            line(format!(
                "router RSS            {:.1} MiB before, {:.1} MiB with {} sessions held: {} bytes per session",
                m.rss_before_bytes as f64 / 1048576.0,
                m.rss_held_bytes as f64 / 1048576.0,
                m.held_sessions,
                m.bytes_per_session.map_or("-".into(), |b| format!("{b:.0}"))
            ));
        }
        for warning in &self.warnings {
            line(format!("warning: {warning}"));
        }
        out
    }
}

fn plain(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn counts_line(scenario: &str, c: &Counts) -> String {
    let mut parts = vec![format!("sent {}", c.sent)];
    match scenario {
        "pubsub" => {
            if c.ok + c.errors > 0 {
                parts.push(format!("acknowledged {}", c.ok));
                parts.push(format!("refused/unacknowledged {}", c.errors));
            }
            parts.push(format!("expected {}", c.expected));
            parts.push(format!("received {}", c.received));
            parts.push(format!("lost {}", c.lost));
            parts.push(format!("in flight {}", c.in_flight));
            parts.push(format!("duplicated {}", c.duplicated));
            if c.too_late > 0 {
                parts.push(format!("too late {}", c.too_late));
            }
            if c.unexpected > 0 {
                parts.push(format!("unexpected {}", c.unexpected));
            }
        }
        _ => {
            parts.push(format!("ok {}", c.ok));
            parts.push(format!("errors {}", c.errors));
        }
    }
    if c.unsent > 0 {
        parts.push(format!("unsent {}", c.unsent));
    }
    if c.invocations > 0 {
        parts.push(format!("invocations {}", c.invocations));
    }
    if c.held > 0 {
        parts.push(format!("held {}", c.held));
    }
    if c.protocol_errors > 0 {
        parts.push(format!("protocol errors {}", c.protocol_errors));
    }
    parts.join("  ")
}

/// The warning printed when pubsub events were still missing at the end without a later event
/// having overtaken them: not loss, but not delivered within the drain either.
fn in_flight_warning(counts: &Counts) -> Option<String> {
    (counts.in_flight > 0).then(|| {
        format!(
            "{} events were still in flight when the subscribers stopped listening (nothing \
             later from their publishers arrived within the drain): not counted as lost; a \
             longer --drain gives the router more time to deliver them",
            counts.in_flight
        )
    })
}

/// The warning printed when the generator itself was (nearly) saturated.
fn busy_warning(generator_busy: f64, threads: usize) -> Option<String> {
    (generator_busy >= GENERATOR_BUSY_WARNING).then(|| {
        format!(
            "the generator was busy {:.0}% of its {threads} thread(s)' time: these figures may \
             measure the tool, not the router; give it more threads and CPUs (--threads, --cpus)",
            generator_busy * 100.0
        )
    })
}

fn payload_of(scenario: &Scenario) -> usize {
    match scenario {
        Scenario::Rpc(p) => p.payload,
        Scenario::Pubsub(p) => p.payload,
        Scenario::Connect(_) | Scenario::SessionList(_) => 0,
    }
}

fn describe(
    scenario: &Scenario,
) -> (
    &'static str,
    Option<usize>,
    Option<f64>,
    BTreeMap<String, Json>,
) {
    let mut params = BTreeMap::new();
    let (mode, window, rate) = match scenario {
        Scenario::Rpc(p) => {
            params.insert("callers".into(), json!(p.callers));
            params.insert("callees".into(), json!(p.callees));
            params.insert("procedure".into(), json!(p.procedure));
            pacing(p.pacing, false)
        }
        Scenario::Pubsub(p) => {
            params.insert("publishers".into(), json!(p.publishers));
            params.insert("subscribers".into(), json!(p.subscribers));
            params.insert("topic".into(), json!(p.topic));
            params.insert("acknowledge".into(), json!(p.acknowledge));
            pacing(p.pacing, !p.acknowledge)
        }
        Scenario::Connect(p) => {
            params.insert("connections".into(), json!(p.connections));
            params.insert("hold".into(), json!(p.hold));
            ("closed", None, None)
        }
        Scenario::SessionList(p) => {
            params.insert("sessions".into(), json!(p.sessions));
            params.insert("callers".into(), json!(p.callers));
            params.insert("count".into(), json!(p.count));
            ("closed", Some(p.window), None)
        }
    };
    (mode, window, rate, params)
}

fn pacing(pacing: Pacing, batch: bool) -> (&'static str, Option<usize>, Option<f64>) {
    match pacing {
        Pacing::Window(w) if batch => ("batch", Some(w), None),
        Pacing::Window(w) => ("closed", Some(w), None),
        Pacing::Rate(r) => ("open", None, Some(r)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pubsub_counts_name_lost_and_in_flight_apart() {
        let counts = Counts {
            sent: 12,
            expected: 24,
            received: 21,
            lost: 1,
            in_flight: 2,
            ..Counts::default()
        };
        let line = counts_line("pubsub", &counts);
        assert!(line.contains("lost 1  in flight 2"), "{line}");
        let warning = in_flight_warning(&counts).unwrap();
        assert!(
            warning.starts_with("2 events were still in flight"),
            "{warning}"
        );
        assert_eq!(in_flight_warning(&Counts::default()), None);
        // Reports written before `in_flight` existed still load.
        let old: Counts = serde_json::from_str(
            r#"{"sent":1,"ok":0,"errors":0,"unsent":0,"invocations":0,"expected":1,
                "received":1,"lost":0,"duplicated":0,"too_late":0,"unexpected":0,
                "protocol_errors":0,"sessions":2,"held":0}"#,
        )
        .unwrap();
        assert_eq!((old.in_flight, old.received), (0, 1));
    }

    #[test]
    fn a_saturated_generator_says_so() {
        assert_eq!(busy_warning(0.5, 1), None);
        let warning = busy_warning(0.95, 2).unwrap();
        assert!(
            warning.contains("95%") && warning.contains("2 thread"),
            "{warning}"
        );
    }
}
