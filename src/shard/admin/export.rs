//! Every shard's snapshot as the admin listener serves it: Prometheus text format for
//! `/metrics` (names by Prometheus conventions: `wampring_` prefix, `_total` on counters,
//! seconds and bytes as base units, one `shard` label, other labels from fixed sets so the
//! series count is bounded), and the JSON the status page polls. Per-shard values only: a
//! query sums them (`sum by (type) (rate(wampring_messages_received_total[1m]))`).
//! Registrations and subscriptions are replicated to every shard, so their gauges are the
//! same on each shard and must not be summed.

use std::fmt::Write;
use std::time::Duration;

use crate::metrics::{ShardSnapshot, CALL_ERROR_URIS, LATENCY_BOUNDS_US, MESSAGE_TYPES};

/// Facts of the process (not of a shard) that both formats carry.
pub(crate) struct Facts {
    pub(crate) uptime: Duration,
    pub(crate) ready: bool,
}

/// One metric family being written: its HELP and TYPE once, then its samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Family<'a> {
    fn new(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    /// A sample of one shard, with extra labels (`key="value"` pairs, already escaped).
    fn sample(&mut self, shard: usize, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{}{{shard=\"{shard}\"", self.name);
        for (key, value) in labels {
            let _ = write!(self.out, ",{key}=\"{value}\"");
        }
        let _ = writeln!(self.out, "}} {value}");
    }
}

/// A counter or gauge with one sample per shard, read from the snapshot by `value`.
fn per_shard(
    out: &mut String,
    shards: &[ShardSnapshot],
    (name, kind, help): (&'static str, &str, &str),
    value: impl Fn(&ShardSnapshot) -> u64,
) {
    let mut family = Family::new(out, name, kind, help);
    for snapshot in shards {
        family.sample(snapshot.shard, &[], value(snapshot));
    }
}

/// Seconds from microseconds, as Prometheus prints them.
fn seconds(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// The Prometheus text exposition (format 0.0.4) of `shards`.
pub(crate) fn prometheus(shards: &[ShardSnapshot], facts: &Facts) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let _ = writeln!(
        out,
        "# HELP wampring_build_info The running wampring's version.\n# TYPE wampring_build_info gauge\nwampring_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "# HELP wampring_uptime_seconds Time since the admin listener started.\n# TYPE wampring_uptime_seconds gauge\nwampring_uptime_seconds {:.3}",
        facts.uptime.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "# HELP wampring_ready 1 while the router takes new sessions, 0 once it shuts down.\n# TYPE wampring_ready gauge\nwampring_ready {}",
        u8::from(facts.ready)
    );
    let _ = writeln!(
        out,
        "# HELP wampring_shards Shards (pinned executors) the router runs.\n# TYPE wampring_shards gauge\nwampring_shards {}",
        shards.len()
    );

    let gauge = "gauge";
    let counter = "counter";
    per_shard(
        &mut out,
        shards,
        (
            "wampring_sessions",
            gauge,
            "Sessions open on the shard (any phase).",
        ),
        |s| s.router.sessions as u64,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_sessions_established_total",
            counter,
            "Sessions welcomed.",
        ),
        |s| s.router.sessions_established,
    );
    per_shard(
        &mut out,
        shards,
        ("wampring_sessions_closed_total", counter, "Sessions ended."),
        |s| s.router.sessions_closed,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_connections",
            gauge,
            "Connections open on the shard.",
        ),
        |s| s.runtime.connections_open,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_connections_accepted_total",
            counter,
            "Connections taken on.",
        ),
        |s| s.runtime.connections_accepted,
    );
    {
        let mut family = Family::new(
            &mut out,
            "wampring_refusals_total",
            counter,
            "Connections and sessions refused or ended by the router, by reason.",
        );
        for s in shards {
            let (r, t) = (&s.router, &s.runtime);
            for (reason, value) in [
                ("connection_limit", t.connections_refused),
                ("accept_failure", t.accept_failures),
                ("handshake_timeout", t.handshake_timeouts),
                ("tls_failure", t.tls_failures),
                ("hello_timeout", r.hello_timeouts),
                ("hello_rejected", r.hellos_rejected),
                ("authentication_denied", r.authentications_denied),
                ("not_authorized", r.authorizations_denied),
                ("session_limit", r.session_limit_refusals),
                ("protocol_violation", r.protocol_violations),
            ] {
                family.sample(s.shard, &[("reason", reason)], value);
            }
        }
    }
    for (name, help, pick) in [
        (
            "wampring_messages_received_total",
            "WAMP messages received from clients, by type.",
            0,
        ),
        (
            "wampring_received_bytes_total",
            "Bytes of the WAMP messages received from clients, by type.",
            1,
        ),
        (
            "wampring_messages_sent_total",
            "WAMP messages queued to clients, by type.",
            2,
        ),
        (
            "wampring_sent_bytes_total",
            "Bytes of the WAMP messages queued to clients, by type.",
            3,
        ),
    ] {
        let mut family = Family::new(&mut out, name, counter, help);
        for s in shards {
            let traffic = &s.runtime.traffic;
            let counts = match pick {
                0 => &traffic.messages_in,
                1 => &traffic.bytes_in,
                2 => &traffic.messages_out,
                _ => &traffic.bytes_out,
            };
            // Types never seen are left out: a series appears with its first message.
            for (slot, &(_, type_name)) in MESSAGE_TYPES.iter().enumerate() {
                if counts[slot] > 0 {
                    family.sample(s.shard, &[("type", type_name)], counts[slot]);
                }
            }
        }
    }
    per_shard(
        &mut out,
        shards,
        ("wampring_calls_total", counter, "CALLs routed to a callee."),
        |s| s.router.calls_routed,
    );
    {
        let mut family = Family::new(
            &mut out,
            "wampring_call_errors_total",
            counter,
            "ERRORs sent in answer to CALLs, by error URI (\"application\": any URI not the router's own).",
        );
        for s in shards {
            for (slot, uri) in CALL_ERROR_URIS.iter().enumerate() {
                let count = s.runtime.call_errors.0[slot];
                if count > 0 {
                    family.sample(s.shard, &[("error", uri)], count);
                }
            }
        }
    }
    per_shard(
        &mut out,
        shards,
        (
            "wampring_pending_calls",
            gauge,
            "Calls of the shard's sessions waiting for an answer.",
        ),
        |s| s.router.pending_calls as u64,
    );
    {
        let name = "wampring_call_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Router-side call latency: CALL received to its final RESULT or ERROR sent, on the caller's shard.\n# TYPE {name} histogram"
        );
        for s in shards {
            let mut cumulative = 0;
            for (slot, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
                cumulative += s.latency.buckets[slot];
                let _ = writeln!(
                    out,
                    "{name}_bucket{{shard=\"{}\",le=\"{}\"}} {cumulative}",
                    s.shard,
                    seconds(*bound)
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{shard=\"{}\",le=\"+Inf\"}} {}",
                s.shard, s.latency.count
            );
            let _ = writeln!(
                out,
                "{name}_sum{{shard=\"{}\"}} {}",
                s.shard,
                seconds(s.latency.sum_us)
            );
            let _ = writeln!(
                out,
                "{name}_count{{shard=\"{}\"}} {}",
                s.shard, s.latency.count
            );
        }
    }
    per_shard(
        &mut out,
        shards,
        (
            "wampring_registrations",
            gauge,
            "Registrations in the shard's replica (the same on every shard: do not sum).",
        ),
        |s| s.router.registrations as u64,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_subscriptions",
            gauge,
            "Subscriptions in the shard's replica (the same on every shard: do not sum).",
        ),
        |s| s.router.subscriptions as u64,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_events_published_total",
            counter,
            "PUBLISHes routed.",
        ),
        |s| s.router.publishes,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_events_delivered_total",
            counter,
            "EVENTs queued to subscribers.",
        ),
        |s| {
            let event = MESSAGE_TYPES
                .iter()
                .position(|&(code, _)| code == crate::wire::code::EVENT)
                .unwrap_or(0);
            s.runtime.traffic.messages_out[event]
        },
    );
    {
        let mut family = Family::new(
            &mut out,
            "wampring_events_dropped_total",
            counter,
            "EVENTs not delivered, by reason: slow_consumer (past the soft mark under drop_events), undeliverable (the subscriber's serializer cannot carry the payload).",
        );
        for s in shards {
            family.sample(
                s.shard,
                &[("reason", "slow_consumer")],
                s.runtime.slow_consumer_events_dropped,
            );
            family.sample(
                s.shard,
                &[("reason", "undeliverable")],
                s.router.events_undeliverable,
            );
        }
    }
    per_shard(
        &mut out,
        shards,
        (
            "wampring_slow_consumer_disconnects_total",
            counter,
            "Sessions disconnected because their outbound queue reached max_outbound_bytes.",
        ),
        |s| s.runtime.slow_consumer_disconnects,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_authentication_failures_total",
            counter,
            "Authentications that ended in ABORT (denied, refused, timed out).",
        ),
        |s| s.router.authentications_denied,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_log_lines_suppressed_total",
            counter,
            "Client-caused log lines not written (rate limits per cause).",
        ),
        |s| s.router.log_lines_suppressed,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_shard_channel_backlog",
            gauge,
            "Messages to other shards waiting in the shard's local overflow queues.",
        ),
        |s| s.runtime.shard_backlog,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_shard_messages_sent_total",
            counter,
            "Messages the shard sent to other shards.",
        ),
        |s| s.runtime.shard_messages_sent,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_shard_channel_full_total",
            counter,
            "Times a message found its shard-to-shard channel full and waited locally.",
        ),
        |s| s.runtime.shard_channel_full,
    );
    per_shard(
        &mut out,
        shards,
        (
            "wampring_shard_backpressure_pauses_total",
            counter,
            "Times the shard stopped reading its connections because a queue to another shard was full.",
        ),
        |s| s.runtime.shard_backpressure_pauses,
    );
    {
        let mut family = Family::new(
            &mut out,
            "wampring_messages_dropped_total",
            counter,
            "Messages for clients not queued, by reason: oversize (larger than the peer accepts), session_gone.",
        );
        for s in shards {
            family.sample(
                s.shard,
                &[("reason", "oversize")],
                s.runtime.oversize_dropped,
            );
            family.sample(
                s.shard,
                &[("reason", "session_gone")],
                s.runtime.undeliverable,
            );
        }
    }
    out
}

/// The JSON the status page polls: per shard, the raw counters (the page turns them into
/// rates) and the latency histogram's buckets (it takes quantiles of the last second's).
pub(crate) fn status_json(shards: &[ShardSnapshot], facts: &Facts) -> String {
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "{{\"version\":\"{}\",\"uptime_seconds\":{:.3},\"ready\":{},\"latency_bounds_us\":[",
        env!("CARGO_PKG_VERSION"),
        facts.uptime.as_secs_f64(),
        facts.ready
    );
    for (i, bound) in LATENCY_BOUNDS_US.iter().enumerate() {
        let _ = write!(out, "{}{bound}", if i > 0 { "," } else { "" });
    }
    out.push_str("],\"shards\":[");
    for (i, s) in shards.iter().enumerate() {
        let (r, t) = (&s.router, &s.runtime);
        let call_errors: u64 = t.call_errors.0.iter().sum();
        let _ = write!(
            out,
            "{}{{\"shard\":{},\"sessions\":{},\"connections\":{},\"registrations\":{},\"subscriptions\":{},\"pending_calls\":{},\"messages_in\":{},\"messages_out\":{},\"bytes_in\":{},\"bytes_out\":{},\"calls\":{},\"call_errors\":{},\"publishes\":{},\"slow_consumer_disconnects\":{},\"events_dropped\":{},\"shard_backlog\":{},\"latency\":{{\"count\":{},\"sum_us\":{},\"buckets\":[",
            if i > 0 { "," } else { "" },
            s.shard,
            r.sessions,
            t.connections_open,
            r.registrations,
            r.subscriptions,
            r.pending_calls,
            t.messages_in,
            t.messages_out,
            t.bytes_in,
            t.bytes_out,
            r.calls_routed,
            call_errors,
            r.publishes,
            t.slow_consumer_disconnects,
            t.slow_consumer_events_dropped + r.events_undeliverable,
            t.shard_backlog,
            s.latency.count,
            s.latency.sum_us,
        );
        for (j, count) in s.latency.buckets.iter().enumerate() {
            let _ = write!(out, "{}{count}", if j > 0 { "," } else { "" });
        }
        out.push_str("]}}");
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{LatencyHistogram, ShardMetrics};
    use crate::router::RouterStats;

    fn snapshot(shard: usize) -> ShardSnapshot {
        let mut runtime = ShardMetrics::default();
        runtime.traffic.count_in(Some(48), 40);
        runtime.traffic.count_out(Some(50), 30);
        runtime.call_errors.count(b"wamp.error.no_such_procedure");
        runtime.connections_open = 3;
        let router = RouterStats {
            sessions: 2 + shard,
            calls_routed: 1,
            ..RouterStats::default()
        };
        let mut latency = LatencyHistogram::default();
        latency.record(7);
        latency.record(30_000_000);
        ShardSnapshot {
            shard,
            runtime,
            router,
            latency,
        }
    }

    fn facts() -> Facts {
        Facts {
            uptime: Duration::from_millis(1500),
            ready: true,
        }
    }

    #[test]
    fn prometheus_text_has_one_help_and_type_per_family_and_well_formed_samples() {
        let text = prometheus(&[snapshot(0), snapshot(1)], &facts());
        let mut families = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(families.insert(name.to_string()), "{name} typed twice");
                assert!(name.starts_with("wampring_"), "{name}");
                let kind = rest.split(' ').nth(1).unwrap();
                assert_eq!(
                    name.ends_with("_total"),
                    kind == "counter",
                    "{name} is a {kind}"
                );
            } else if !line.starts_with('#') {
                let (series, value) = line.rsplit_once(' ').unwrap();
                assert!(value.parse::<f64>().is_ok(), "{line}");
                let family = series.split('{').next().unwrap();
                let family = family
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count");
                assert!(families.contains(family), "{line} before its TYPE");
            }
        }
        for expected in [
            "wampring_sessions{shard=\"1\"} 3",
            "wampring_connections{shard=\"0\"} 3",
            "wampring_messages_received_total{shard=\"0\",type=\"CALL\"} 1",
            "wampring_received_bytes_total{shard=\"1\",type=\"CALL\"} 40",
            "wampring_messages_sent_total{shard=\"0\",type=\"RESULT\"} 1",
            "wampring_call_errors_total{shard=\"0\",error=\"wamp.error.no_such_procedure\"} 1",
            "wampring_call_latency_seconds_bucket{shard=\"0\",le=\"0.00001\"} 1",
            "wampring_call_latency_seconds_bucket{shard=\"0\",le=\"10\"} 1",
            "wampring_call_latency_seconds_bucket{shard=\"0\",le=\"+Inf\"} 2",
            "wampring_call_latency_seconds_count{shard=\"1\"} 2",
            "wampring_refusals_total{shard=\"0\",reason=\"connection_limit\"} 0",
            "wampring_shards 2",
            "wampring_ready 1",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        // Types never seen have no series.
        assert!(!text.contains("type=\"HELLO\""));
    }

    #[test]
    fn status_json_carries_every_shard() {
        let json = status_json(&[snapshot(0), snapshot(1)], &facts());
        assert!(json.starts_with("{\"version\":"), "{json}");
        assert!(json.contains("\"shard\":1,\"sessions\":3"), "{json}");
        assert!(
            json.contains("\"latency\":{\"count\":2,\"sum_us\":30000007,\"buckets\":[0,1,"),
            "{json}"
        );
        assert!(json.ends_with("]}}]}"), "{json}");
        // Balanced brackets (a cheap check that it is one JSON value).
        let depth = json.chars().fold(0i32, |depth, c| match c {
            '{' | '[' => depth + 1,
            '}' | ']' => depth - 1,
            _ => depth,
        });
        assert_eq!(depth, 0);
    }
}
