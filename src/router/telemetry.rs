//! What the router measures for the operator beyond its counters: the call-latency histogram
//! (CALL in to its final answer out, timed on the caller's shard) and this shard's metrics
//! snapshot for a metrics gather. The runtime lends the clock (`set_clock_us`, microseconds on
//! the same monotonic clock as `now`) and its own counters (`set_runtime_counters`); the
//! router stays free of clocks and sockets. A gather of `Query::Metrics` collects every
//! shard's [`ShardSnapshot`] and answers with [`Action::Metrics`].

use crate::metrics::{LatencyHistogram, ShardMetrics, ShardSnapshot};

use super::gather::{Query, Then};
use super::{Action, Router};

/// Reads the runtime's counters of this shard when a snapshot is taken.
pub type RuntimeCounters = Box<dyn Fn() -> ShardMetrics>;

#[derive(Default)]
pub(crate) struct Telemetry {
    /// Microseconds of the input being handled (0 when the runtime does not say).
    pub(crate) now_us: u64,
    pub(crate) latency: LatencyHistogram,
    runtime_counters: Option<RuntimeCounters>,
}

impl Router {
    /// The time of the next input in microseconds (the clock of `now`, finer). Only the
    /// latency histogram reads it.
    #[inline]
    pub fn set_clock_us(&mut self, now_us: u64) {
        self.telemetry.now_us = now_us;
    }

    /// Where this shard's snapshots take the runtime's counters from.
    pub fn set_runtime_counters(&mut self, counters: RuntimeCounters) {
        self.telemetry.runtime_counters = Some(counters);
    }

    /// Asks every shard for its snapshot; [`Action::Metrics`] `request` carries them all.
    pub fn handle_metrics_request(&mut self, request: u64, out: &mut Vec<Action>) {
        self.gather(Query::Metrics, Then::Metrics { request }, out);
        self.settle(out);
    }

    /// One finished call of a local caller, started at `started_us`.
    #[inline]
    pub(super) fn time_call(&mut self, started_us: u64) {
        if self.config.measure_call_latency {
            let elapsed = self.telemetry.now_us.saturating_sub(started_us);
            self.telemetry.latency.record(elapsed);
        }
    }

    /// This shard's part of a metrics gather.
    pub(super) fn snapshot(&self) -> ShardSnapshot {
        ShardSnapshot {
            shard: self.cluster.shard,
            runtime: self
                .telemetry
                .runtime_counters
                .as_ref()
                .map_or_else(ShardMetrics::default, |counters| counters()),
            router: self.stats(),
            latency: self.telemetry.latency,
        }
    }

    /// The call latencies measured on this shard so far.
    pub fn call_latency(&self) -> LatencyHistogram {
        self.telemetry.latency
    }
}
