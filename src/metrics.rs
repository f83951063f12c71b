//! Per-shard counters: what one shard accepted, moved and dropped, by message type, and how
//! long its calls took. Plain numbers in structs the shard owns (no atomics: one shard, one
//! thread); gathered across shards on demand (the admin listener's `/metrics`, through the
//! router's gather) and summed at shutdown. Every bound the runtime enforces (outbound queue,
//! handshake timeout, connection limit, full shard-to-shard channel) has a counter here, so a
//! policy that fires is visible. A leaf module: the runtime fills [`ShardMetrics`], the router
//! fills [`LatencyHistogram`] and carries both in a [`ShardSnapshot`].

use std::fmt;
use std::ops::AddAssign;

/// Counters of one shard (or, summed, of the process). All monotonic except
/// `connections_open`, which is the number open at the time of the snapshot, and
/// `shard_overflow_high_water`, a maximum (the process value is the largest of any shard).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardMetrics {
    /// Connections taken on (refused ones are counted in `connections_refused` only).
    pub connections_accepted: u64,
    /// Refused at the connection limit (`limits.max_connections_per_shard`, lowered to what
    /// fits RLIMIT_NOFILE) or, out of descriptors, through the spare descriptor.
    pub connections_refused: u64,
    /// accept() calls that failed (out of descriptors and the like).
    pub accept_failures: u64,
    pub connections_open: u64,
    /// Transport handshakes completed (a router session was opened).
    pub sessions_opened: u64,
    /// WAMP messages received from clients and handed to the router.
    pub messages_in: u64,
    /// WAMP messages queued to clients.
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Sessions disconnected because their outbound queue hit `max_outbound_bytes`.
    pub slow_consumer_disconnects: u64,
    /// EVENTs dropped for sessions past their soft mark (slow-consumer policy `drop_events`).
    pub slow_consumer_events_dropped: u64,
    /// Sessions the router closed (GOODBYE, ABORT, protocol violation, shutdown).
    pub protocol_closes: u64,
    /// Transports that ended on their own: peer close, EOF, or a transport-level error
    /// reported by the codec (bad handshake, bad frame).
    pub transport_closes: u64,
    /// Connections dropped for not completing the transport handshake in time.
    pub handshake_timeouts: u64,
    /// TLS sessions that failed (bad record, failed handshake, a plain-text client on a TLS
    /// listener); each is also counted in `transport_closes`.
    pub tls_failures: u64,
    /// Sessions closed because no HELLO came within `limits.hello_timeout_ms`.
    pub hello_timeouts: u64,
    /// Connections dropped because the peer did not finish the close handshake in time.
    pub close_timeouts: u64,
    /// Socket read/write errors (connection reset and the like).
    pub io_errors: u64,
    /// Messages dropped because they exceed what the receiving peer accepts.
    pub oversize_dropped: u64,
    /// Messages for sessions that were already closing or gone.
    pub undeliverable: u64,
    /// Connections this shard accepted and handed to another shard (`placement = "round-robin"`).
    pub connections_handed_off: u64,
    /// Messages this shard put on the mesh to other shards (router messages and connection
    /// hand-offs), including those that waited in the local overflow queue.
    pub shard_messages_sent: u64,
    /// Messages from other shards this shard handled (router messages and hand-offs).
    pub shard_messages_received: u64,
    /// Times a message found its shard-to-shard channel full and was queued locally instead.
    pub shard_channel_full: u64,
    /// Largest number of messages ever waiting in one local overflow queue (to one shard).
    pub shard_overflow_high_water: u64,
    /// Times this shard stopped reading from its connections because a queue to another shard
    /// reached `runtime.shard_backlog_limit`.
    pub shard_backpressure_pauses: u64,
    /// Messages to another shard that had already finished its shutdown, so they were not
    /// sent (only during a stop). Not a loss: a shard finishes only after every one of its
    /// sessions is closed, so what was addressed to it (replica updates, meta events and
    /// testaments for its sessions) had no reader left. Typically the table and meta-event
    /// updates of the last sessions leaving other shards.
    pub shard_messages_to_stopped_shards: u64,
    /// Messages waiting in this shard's local overflow queues (to every other shard) at the
    /// time of the snapshot: the channel backlog.
    pub shard_backlog: u64,
    /// Messages and bytes in and out, by WAMP message type.
    pub traffic: Traffic,
    /// ERRORs sent in answer to CALLs, by error URI.
    pub call_errors: CallErrors,
}

impl AddAssign for ShardMetrics {
    fn add_assign(&mut self, other: ShardMetrics) {
        self.connections_accepted += other.connections_accepted;
        self.connections_refused += other.connections_refused;
        self.accept_failures += other.accept_failures;
        self.connections_open += other.connections_open;
        self.sessions_opened += other.sessions_opened;
        self.messages_in += other.messages_in;
        self.messages_out += other.messages_out;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.slow_consumer_disconnects += other.slow_consumer_disconnects;
        self.slow_consumer_events_dropped += other.slow_consumer_events_dropped;
        self.protocol_closes += other.protocol_closes;
        self.transport_closes += other.transport_closes;
        self.handshake_timeouts += other.handshake_timeouts;
        self.tls_failures += other.tls_failures;
        self.hello_timeouts += other.hello_timeouts;
        self.close_timeouts += other.close_timeouts;
        self.io_errors += other.io_errors;
        self.oversize_dropped += other.oversize_dropped;
        self.undeliverable += other.undeliverable;
        self.connections_handed_off += other.connections_handed_off;
        self.shard_messages_sent += other.shard_messages_sent;
        self.shard_messages_received += other.shard_messages_received;
        self.shard_channel_full += other.shard_channel_full;
        self.shard_overflow_high_water = self
            .shard_overflow_high_water
            .max(other.shard_overflow_high_water);
        self.shard_messages_to_stopped_shards += other.shard_messages_to_stopped_shards;
        self.shard_backpressure_pauses += other.shard_backpressure_pauses;
        self.shard_backlog += other.shard_backlog;
        self.traffic += other.traffic;
        self.call_errors += other.call_errors;
    }
}

impl ShardMetrics {
    /// Every counter with its name, in a stable order: the final log line and the key=value
    /// form come from this one list, so a new counter cannot be left out of either. (By-type
    /// traffic and call errors are exported by the admin listener, not logged.)
    pub fn named(&self) -> [(&'static str, u64); 28] {
        [
            ("connections_accepted", self.connections_accepted),
            ("connections_refused", self.connections_refused),
            ("connections_open", self.connections_open),
            ("accept_failures", self.accept_failures),
            ("sessions_opened", self.sessions_opened),
            ("messages_in", self.messages_in),
            ("messages_out", self.messages_out),
            ("bytes_in", self.bytes_in),
            ("bytes_out", self.bytes_out),
            ("slow_consumer_disconnects", self.slow_consumer_disconnects),
            (
                "slow_consumer_events_dropped",
                self.slow_consumer_events_dropped,
            ),
            ("protocol_closes", self.protocol_closes),
            ("transport_closes", self.transport_closes),
            ("handshake_timeouts", self.handshake_timeouts),
            ("tls_failures", self.tls_failures),
            ("hello_timeouts", self.hello_timeouts),
            ("close_timeouts", self.close_timeouts),
            ("io_errors", self.io_errors),
            ("oversize_dropped", self.oversize_dropped),
            ("undeliverable", self.undeliverable),
            ("connections_handed_off", self.connections_handed_off),
            ("shard_messages_sent", self.shard_messages_sent),
            ("shard_messages_received", self.shard_messages_received),
            (
                "shard_messages_to_stopped_shards",
                self.shard_messages_to_stopped_shards,
            ),
            ("shard_channel_full", self.shard_channel_full),
            ("shard_overflow_high_water", self.shard_overflow_high_water),
            ("shard_backpressure_pauses", self.shard_backpressure_pauses),
            ("shard_backlog", self.shard_backlog),
        ]
    }
}

/// `key=value` pairs separated by spaces, the keys being the field names (what log shippers
/// and `grep key=` expect).
impl fmt::Display for ShardMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (name, value)) in self.named().iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

/// The WAMP message types, as counted: index 0 is anything else (a type a peer made up, or a
/// frame too broken to say).
pub const MESSAGE_TYPES: [(u64, &str); 25] = [
    (0, "OTHER"),
    (1, "HELLO"),
    (2, "WELCOME"),
    (3, "ABORT"),
    (4, "CHALLENGE"),
    (5, "AUTHENTICATE"),
    (6, "GOODBYE"),
    (8, "ERROR"),
    (16, "PUBLISH"),
    (17, "PUBLISHED"),
    (32, "SUBSCRIBE"),
    (33, "SUBSCRIBED"),
    (34, "UNSUBSCRIBE"),
    (35, "UNSUBSCRIBED"),
    (36, "EVENT"),
    (48, "CALL"),
    (49, "CANCEL"),
    (50, "RESULT"),
    (64, "REGISTER"),
    (65, "REGISTERED"),
    (66, "UNREGISTER"),
    (67, "UNREGISTERED"),
    (68, "INVOCATION"),
    (69, "INTERRUPT"),
    (70, "YIELD"),
];

/// The slot of each message code 0..=70 in [`MESSAGE_TYPES`] (0 for codes that are no type).
const TYPE_SLOT: [u8; 71] = {
    let mut slots = [0u8; 71];
    let mut i = 1;
    while i < MESSAGE_TYPES.len() {
        slots[MESSAGE_TYPES[i].0 as usize] = i as u8;
        i += 1;
    }
    slots
};

/// Messages and bytes by type and direction. Fixed arrays: counting is an index and an add.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub messages_in: [u64; MESSAGE_TYPES.len()],
    pub bytes_in: [u64; MESSAGE_TYPES.len()],
    pub messages_out: [u64; MESSAGE_TYPES.len()],
    pub bytes_out: [u64; MESSAGE_TYPES.len()],
}

impl Traffic {
    /// The slot of message code `code` (from [`crate::wire::peek_code`]; `None`: unreadable).
    #[inline]
    pub fn slot(code: Option<u8>) -> usize {
        code.and_then(|code| TYPE_SLOT.get(usize::from(code)))
            .map_or(0, |&slot| usize::from(slot))
    }

    #[inline]
    pub fn count_in(&mut self, code: Option<u8>, bytes: usize) {
        let slot = Traffic::slot(code);
        self.messages_in[slot] += 1;
        self.bytes_in[slot] += bytes as u64;
    }

    #[inline]
    pub fn count_out(&mut self, code: Option<u8>, bytes: usize) {
        let slot = Traffic::slot(code);
        self.messages_out[slot] += 1;
        self.bytes_out[slot] += bytes as u64;
    }
}

impl AddAssign for Traffic {
    fn add_assign(&mut self, other: Traffic) {
        for (mine, theirs) in [
            (&mut self.messages_in, &other.messages_in),
            (&mut self.bytes_in, &other.bytes_in),
            (&mut self.messages_out, &other.messages_out),
            (&mut self.bytes_out, &other.bytes_out),
        ] {
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a += b;
            }
        }
    }
}

/// The error URIs counted one by one; any other (an application's own error) is counted as
/// "application", so a callee inventing URIs cannot grow the label set.
pub const CALL_ERROR_URIS: [&str; 17] = [
    "application",
    "wamp.error.no_such_procedure",
    "wamp.error.canceled",
    "wamp.error.timeout",
    "wamp.error.not_authorized",
    "wamp.error.authorization_failed",
    "wamp.error.invalid_argument",
    "wamp.error.invalid_uri",
    "wamp.error.unavailable",
    "wamp.error.no_available_callee",
    "wamp.error.feature_not_supported",
    "wamp.error.option_not_allowed",
    "wamp.error.no_such_session",
    "wamp.error.no_such_subscription",
    "wamp.error.no_such_registration",
    "wampring.error.pending_call_limit_exceeded",
    "wamp.error.runtime_error",
];

/// ERRORs for CALLs by [`CALL_ERROR_URIS`] slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallErrors(pub [u64; CALL_ERROR_URIS.len()]);

impl CallErrors {
    /// Counts one ERROR with this URI (its raw bytes).
    pub fn count(&mut self, uri: &[u8]) {
        let slot = CALL_ERROR_URIS
            .iter()
            .skip(1)
            .position(|known| known.as_bytes() == uri)
            .map_or(0, |index| index + 1);
        self.0[slot] += 1;
    }
}

impl AddAssign for CallErrors {
    fn add_assign(&mut self, other: CallErrors) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// Upper bounds (µs) of the call-latency buckets, 1-2.5-5 steps from 5 µs to 10 s; the last
/// bucket (+Inf) takes the rest.
pub const LATENCY_BOUNDS_US: [u64; 20] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Router-side call latency (CALL in to its final RESULT or ERROR out, on the caller's shard)
/// as a Prometheus histogram: a count per bucket (not cumulative; the export adds them up),
/// the sum and the count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    pub buckets: [u64; LATENCY_BOUNDS_US.len() + 1],
    pub sum_us: u64,
    pub count: u64,
}

impl LatencyHistogram {
    #[inline]
    pub fn record(&mut self, micros: u64) {
        // Most calls land in the first few buckets, so a scan beats a binary search.
        let slot = LATENCY_BOUNDS_US
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[slot] += 1;
        self.sum_us += micros;
        self.count += 1;
    }

    /// The latency below which `q` (0..=1) of the calls fall, as the upper bound of the
    /// bucket that holds that call (µs); `None` without calls or when it is in the +Inf bucket.
    pub fn quantile_bound_us(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (slot, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return LATENCY_BOUNDS_US.get(slot).copied();
            }
        }
        None
    }
}

impl AddAssign for LatencyHistogram {
    fn add_assign(&mut self, other: LatencyHistogram) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.sum_us += other.sum_us;
        self.count += other.count;
    }
}

/// What one shard reports to a metrics gather: its runtime's counters, its router's, and its
/// call latencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub runtime: ShardMetrics,
    pub router: crate::router::RouterStats,
    pub latency: LatencyHistogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_key_value_pairs_named_after_the_fields() {
        let metrics = ShardMetrics {
            connections_accepted: 3,
            shard_messages_to_stopped_shards: 4,
            ..ShardMetrics::default()
        };
        let line = metrics.to_string();
        assert!(
            line.starts_with("connections_accepted=3 connections_refused=0 "),
            "{line}"
        );
        assert!(
            line.contains(" shard_messages_to_stopped_shards=4 "),
            "{line}"
        );
        assert_eq!(line.split(' ').count(), metrics.named().len());
        assert!(
            line.split(' ').all(|pair| pair.split_once('=').is_some()),
            "{line}"
        );
    }

    #[test]
    fn each_type_has_its_own_slot_and_strangers_share_slot_zero() {
        let mut traffic = Traffic::default();
        traffic.count_in(Some(48), 100);
        traffic.count_in(Some(48), 20);
        traffic.count_out(Some(50), 7);
        traffic.count_in(Some(7), 1); // no such type
        traffic.count_in(None, 3);
        let call = MESSAGE_TYPES.iter().position(|t| t.1 == "CALL").unwrap();
        let result = MESSAGE_TYPES.iter().position(|t| t.1 == "RESULT").unwrap();
        assert_eq!(
            (traffic.messages_in[call], traffic.bytes_in[call]),
            (2, 120)
        );
        assert_eq!(
            (traffic.messages_out[result], traffic.bytes_out[result]),
            (1, 7)
        );
        assert_eq!((traffic.messages_in[0], traffic.bytes_in[0]), (2, 4));
        let mut sum = traffic;
        sum += traffic;
        assert_eq!(sum.bytes_in[call], 240);
    }

    #[test]
    fn call_errors_count_known_uris_apart_and_the_rest_as_application() {
        let mut errors = CallErrors::default();
        errors.count(b"wamp.error.no_such_procedure");
        errors.count(b"com.example.oops");
        errors.count(b"wamp.error.no_such_procedure");
        assert_eq!(errors.0[1], 2);
        assert_eq!(errors.0[0], 1);
    }

    #[test]
    fn latencies_land_in_their_buckets_and_quantiles_name_bounds() {
        let mut histogram = LatencyHistogram::default();
        for micros in [3, 5, 6, 40, 40, 40, 900, 20_000_000] {
            histogram.record(micros);
        }
        assert_eq!(histogram.buckets[0], 2); // <= 5 µs
        assert_eq!(histogram.buckets[1], 1); // <= 10 µs
        assert_eq!(histogram.buckets[3], 3); // <= 50 µs
        assert_eq!(histogram.buckets[7], 1); // <= 1 ms
        assert_eq!(histogram.buckets[20], 1); // +Inf
        assert_eq!(histogram.count, 8);
        assert_eq!(histogram.sum_us, 3 + 5 + 6 + 120 + 900 + 20_000_000);
        assert_eq!(histogram.quantile_bound_us(0.5), Some(50));
        assert_eq!(histogram.quantile_bound_us(0.8), Some(1_000));
        assert_eq!(histogram.quantile_bound_us(1.0), None);
        assert_eq!(LatencyHistogram::default().quantile_bound_us(0.5), None);
    }
}
