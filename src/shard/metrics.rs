//! Per-shard counters: what one shard accepted, moved and dropped. Plain numbers in a struct
//! the shard owns (no atomics: one shard, one thread); summed across shards and logged at
//! shutdown. Every bound the runtime enforces (outbound queue, handshake timeout, connection
//! limit, full shard-to-shard channel) has a counter here, so a policy that fires is visible.

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
    }
}

impl ShardMetrics {
    /// Every counter with its name, in a stable order: the final log line and the key=value
    /// form come from this one list, so a new counter cannot be left out of either.
    pub fn named(&self) -> [(&'static str, u64); 27] {
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
}
