//! What one executor thread measured, and how the threads' measurements are merged.
//!
//! Tasks on a thread share one [`ThreadStats`] (no atomics on the hot path); every 200 ms the
//! thread copies its live totals and the latencies recorded since the last copy into its
//! [`ThreadProgress`] cell, which the main thread reads for the once-a-second progress line.
//! Each latency is recorded once (a histogram record is a visible share of the generator's
//! cost per event): measured ones into the result histogram, whose growth since the last copy
//! is the interval's share, the others into a warmup/drain histogram. At the end each thread
//! hands its `ThreadStats` back and the main thread merges them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::seqtrack::{Got, Published};

/// Latencies are recorded in nanoseconds, 3 significant digits, up to one minute (longer ones
/// are clamped to the maximum and still counted).
pub const HISTOGRAM_MAX_NS: u64 = 60_000_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, 3).expect("valid histogram bounds")
}

/// Merges `from` into `into`; both come from [`new_histogram`], so merging cannot fail, but a
/// failure would only lose samples, never crash a run.
pub fn merge_histogram(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if into.add(from).is_err() {
        for value in from.iter_recorded() {
            into.saturating_record_n(value.value_iterated_to(), value.count_at_value());
        }
    }
}

/// Operation counts. Which fields a scenario uses is listed in the README; unused ones stay 0
/// and are left out of the text report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Measured operations sent: CALLs (rpc), PUBLISHes (pubsub), session attempts (connect).
    pub sent: u64,
    /// Measured operations that succeeded: RESULTs, PUBLISHED acks, completed session cycles.
    pub ok: u64,
    /// Measured operations that failed, timeouts and lost sessions included; by URI in
    /// `errors`. For every scenario `sent == ok + errors` (pubsub without acknowledge: `ok` and
    /// `errors` stay 0).
    pub errors: u64,
    /// Open loop: measured operations that were due but never sent (the generator or the
    /// router fell behind the schedule).
    pub unsent: u64,
    /// rpc: INVOCATIONs the echo callees answered (whole run).
    pub invocations: u64,
    /// pubsub: events that should have reached the subscribers (measured publishes that were
    /// not refused, times the number of subscribers).
    pub expected: u64,
    /// pubsub: distinct measured events received.
    pub received: u64,
    /// pubsub: expected events that never arrived although a later event of the same publisher
    /// did (holes below the highest sequence number received), per subscriber.
    pub lost: u64,
    /// pubsub: expected events not received when the subscriber stopped listening, with
    /// nothing later of the same publisher received: still on their way (or dropped at the
    /// very end, which cannot be told apart).
    #[serde(default)]
    pub in_flight: u64,
    /// pubsub: measured events received more than once.
    pub duplicated: u64,
    /// pubsub: events that arrived too far out of order to be told from duplicates.
    pub too_late: u64,
    /// pubsub: more distinct events than published (never expected).
    pub unexpected: u64,
    /// Messages the router sent that the generator could not match or decode.
    pub protocol_errors: u64,
    /// Sessions established during setup (callers, callees, publishers, subscribers, holds).
    pub sessions: u64,
    /// connect, session-list: idle sessions held open during the run.
    pub held: u64,
    /// session-list: answers (list or count, whole run) that did not match the sessions open.
    #[serde(default)]
    pub wrong_answers: u64,
}

impl Counts {
    pub fn merge(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.ok += other.ok;
        self.errors += other.errors;
        self.unsent += other.unsent;
        self.invocations += other.invocations;
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.in_flight += other.in_flight;
        self.duplicated += other.duplicated;
        self.too_late += other.too_late;
        self.unexpected += other.unexpected;
        self.protocol_errors += other.protocol_errors;
        self.sessions += other.sessions;
        self.held += other.held;
        self.wrong_answers += other.wrong_answers;
    }
}

/// The smallest and largest of the numbers an operation answered, and how many answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRange {
    pub answers: u64,
    pub min: u64,
    pub max: u64,
}

impl AnswerRange {
    pub fn add(&mut self, value: u64) {
        if self.answers == 0 {
            (self.min, self.max) = (value, value);
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.answers += 1;
    }

    pub fn merge(&mut self, other: &AnswerRange) {
        if other.answers == 0 {
            return;
        }
        if self.answers == 0 {
            *self = other.clone();
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
            self.answers += other.answers;
        }
    }
}

/// A second kind of operation a scenario measures beside its main one (session-list:
/// `wamp.session.count` beside `wamp.session.list`): its own counts and latencies.
pub struct SecondaryStats {
    /// Latencies of measured operations, ns.
    pub latency: Histogram<u64>,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
}

impl Default for SecondaryStats {
    fn default() -> Self {
        SecondaryStats {
            latency: new_histogram(),
            sent: 0,
            ok: 0,
            errors: 0,
        }
    }
}

impl SecondaryStats {
    pub fn merge(&mut self, other: &SecondaryStats) {
        merge_histogram(&mut self.latency, &other.latency);
        self.sent += other.sent;
        self.ok += other.ok;
        self.errors += other.errors;
    }
}

/// Everything one thread measured.
pub struct ThreadStats {
    /// Latencies of measured operations, ns.
    pub latency: Histogram<u64>,
    pub counts: Counts,
    /// Failures by URI: the router's error URI, or a `wampload.*` URI for the generator's own
    /// observations (timeouts, lost sessions, undecodable messages). Operations' failures are
    /// listed when the operation was measured; other failures whenever they happened.
    pub errors: BTreeMap<String, u64>,
    /// pubsub: what each subscriber on this thread got of each publisher (indexed by
    /// publisher).
    pub subscriber_got: Vec<Vec<Got>>,
    /// pubsub: (publisher index, its measured publishes) for the publishers on this thread.
    pub published: Vec<(usize, Published)>,
    /// rpc: (callee index, INVOCATIONs it answered) for the callees on this thread.
    pub callee_invocations: Vec<(usize, u64)>,
    /// session-list: the lengths of the `wamp.session.list` answers and the values of the
    /// `wamp.session.count` answers (whole run).
    pub list_lengths: AnswerRange,
    pub count_values: AnswerRange,
    /// session-list: the `wamp.session.count` calls.
    pub secondary: SecondaryStats,
    /// Live figures for the progress line: all operations, measured or not.
    pub live_ops: u64,
    pub live_errors: u64,
    /// Latencies of operations outside the measured window since the last progress copy.
    pub live_latency: Histogram<u64>,
    /// `latency` as it was at the last progress copy.
    latency_published: Histogram<u64>,
    /// A run of equal measured latencies not yet in `latency` (value, count): events of one
    /// publish batch reaching a subscriber in one read share their latency, and one
    /// `record_n` per run costs less than one record per event. Flushed before `latency` is
    /// read ([`ThreadStats::flush`]).
    pending: (u64, u64),
}

impl Default for ThreadStats {
    fn default() -> Self {
        ThreadStats {
            latency: new_histogram(),
            counts: Counts::default(),
            errors: BTreeMap::new(),
            subscriber_got: Vec::new(),
            published: Vec::new(),
            callee_invocations: Vec::new(),
            list_lengths: AnswerRange::default(),
            count_values: AnswerRange::default(),
            secondary: SecondaryStats::default(),
            live_ops: 0,
            live_errors: 0,
            live_latency: new_histogram(),
            latency_published: new_histogram(),
            pending: (0, 0),
        }
    }
}

impl ThreadStats {
    /// Records one completed operation: `measured` ones go into the result, all into the live
    /// view.
    pub fn record_latency(&mut self, latency_ns: u64, measured: bool) {
        let value = latency_ns.clamp(1, HISTOGRAM_MAX_NS);
        if measured {
            if self.pending.0 == value {
                self.pending.1 += 1;
            } else {
                self.flush();
                self.pending = (value, 1);
            }
        } else {
            self.live_latency.saturating_record(value);
        }
        self.live_ops += 1;
    }

    /// Moves the pending run of latencies into `latency`; call before reading it.
    pub fn flush(&mut self) {
        let (value, count) = std::mem::take(&mut self.pending);
        if count > 0 {
            self.latency.saturating_record_n(value, count);
        }
    }

    /// Invocations answered per callee, ordered by callee index.
    pub fn callee_invocations_in_order(&self) -> Vec<u64> {
        let mut per_callee = self.callee_invocations.clone();
        per_callee.sort_unstable();
        per_callee.into_iter().map(|(_, n)| n).collect()
    }

    /// Counts the failure of one operation under `uri`. A measured one goes into the result
    /// (`errors` by URI and `counts.errors`, so `sent == ok + errors` holds); one sent during
    /// the warmup only shows in the live progress line.
    pub fn record_op_error(&mut self, uri: &str, measured: bool) {
        if measured {
            self.add_to_error_table(uri);
            self.counts.errors += 1;
        }
        self.live_errors += 1;
    }

    /// Records one completed secondary operation (session-list: `wamp.session.count`); only
    /// measured ones are kept. The progress line shows the main operation alone.
    pub fn record_secondary_latency(&mut self, latency_ns: u64, measured: bool) {
        if measured {
            self.secondary
                .latency
                .saturating_record(latency_ns.clamp(1, HISTOGRAM_MAX_NS));
            self.secondary.ok += 1;
        }
    }

    /// Counts the failure of one secondary operation under `uri` (listed with the main
    /// operation's errors; the URI should say which operation it was).
    pub fn record_secondary_error(&mut self, uri: &str, measured: bool) {
        if measured {
            self.add_to_error_table(uri);
            self.secondary.errors += 1;
        }
        self.live_errors += 1;
    }

    /// Counts a failure that is not one operation's (a session lost, an unexpected message, a
    /// failed GOODBYE): always reported, whenever it happened.
    pub fn record_error(&mut self, uri: &str) {
        self.add_to_error_table(uri);
        self.live_errors += 1;
    }

    fn add_to_error_table(&mut self, uri: &str) {
        match self.errors.get_mut(uri) {
            Some(count) => *count += 1,
            None => {
                // Bound the table: a router answering with ever-new URIs cannot grow it forever.
                let key = if self.errors.len() < 256 {
                    uri
                } else {
                    "wampload.other_error"
                };
                *self.errors.entry(key.to_string()).or_insert(0) += 1;
            }
        }
    }

    /// Adds `other` (flushed by its thread's last [`ThreadProgress::publish`]) into `self`.
    pub fn merge(&mut self, other: &ThreadStats) {
        self.flush();
        merge_histogram(&mut self.latency, &other.latency);
        if other.pending.1 > 0 {
            self.latency
                .saturating_record_n(other.pending.0, other.pending.1);
        }
        self.counts.merge(&other.counts);
        for (uri, n) in &other.errors {
            *self.errors.entry(uri.clone()).or_insert(0) += n;
        }
        self.subscriber_got.extend_from_slice(&other.subscriber_got);
        self.published.extend_from_slice(&other.published);
        self.callee_invocations
            .extend_from_slice(&other.callee_invocations);
        self.list_lengths.merge(&other.list_lengths);
        self.count_values.merge(&other.count_values);
        self.secondary.merge(&other.secondary);
        self.live_ops += other.live_ops;
        self.live_errors += other.live_errors;
    }
}

/// The live view one thread publishes for the progress line.
pub struct ThreadProgress {
    pub ops: AtomicU64,
    pub errors: AtomicU64,
    pub interval: Mutex<Histogram<u64>>,
}

impl Default for ThreadProgress {
    fn default() -> Self {
        ThreadProgress {
            ops: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            interval: Mutex::new(new_histogram()),
        }
    }
}

impl ThreadProgress {
    /// Publishes the thread's live totals and moves its interval latencies over.
    pub fn publish(&self, stats: &mut ThreadStats) {
        self.ops.store(stats.live_ops, Ordering::Relaxed);
        self.errors.store(stats.live_errors, Ordering::Relaxed);
        stats.flush();
        let mut measured_since = stats.latency.clone();
        // Cannot fail: the last copy is an earlier state of the same histogram.
        let _ = measured_since.subtract(&stats.latency_published);
        if let Ok(mut interval) = self.interval.lock() {
            merge_histogram(&mut interval, &stats.live_latency);
            merge_histogram(&mut interval, &measured_since);
        }
        stats.live_latency.reset();
        stats.latency_published.clone_from(&stats.latency);
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencySummary {
    pub fn of(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        let micros = |ns: u64| ns as f64 / 1e3;
        LatencySummary {
            count: histogram.len(),
            p50: micros(histogram.value_at_quantile(0.50)),
            p90: micros(histogram.value_at_quantile(0.90)),
            p99: micros(histogram.value_at_quantile(0.99)),
            p999: micros(histogram.value_at_quantile(0.999)),
            max: micros(histogram.max()),
            mean: histogram.mean() / 1e3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_histograms_merge_into_one_distribution() {
        let mut a = ThreadStats::default();
        let mut b = ThreadStats::default();
        for _ in 0..900 {
            a.record_latency(10_000, true); // 10 us
        }
        for _ in 0..100 {
            b.record_latency(1_000_000, true); // 1 ms
        }
        b.record_latency(5_000_000, false); // warmup: not in the result
        a.merge(&b);
        let s = LatencySummary::of(&a.latency);
        assert_eq!(s.count, 1000);
        assert!((s.p50 - 10.0).abs() < 0.1, "{s:?}");
        assert!((s.p90 - 10.0).abs() < 0.1, "{s:?}");
        assert!((s.p99 - 1000.0).abs() < 1.0, "{s:?}");
        assert!((s.max - 1000.0).abs() < 1.0, "{s:?}");
        assert_eq!(a.live_ops, 1001);
    }

    #[test]
    fn huge_and_zero_latencies_are_clamped_not_lost() {
        let mut s = ThreadStats::default();
        s.record_latency(0, true);
        s.record_latency(u64::MAX, true);
        s.flush();
        assert_eq!(s.latency.len(), 2);
        assert!(LatencySummary::of(&s.latency).max >= 59_000_000.0);
    }

    #[test]
    fn errors_count_by_uri_and_stay_bounded() {
        let mut s = ThreadStats::default();
        s.record_op_error("wamp.error.no_such_procedure", true);
        s.record_op_error("wamp.error.no_such_procedure", true);
        s.record_op_error("wamp.error.no_such_procedure", false); // warmup: live only
        s.record_error("wampload.decode_error");
        assert_eq!(s.errors["wamp.error.no_such_procedure"], 2);
        assert_eq!(s.counts.errors, 2);
        assert_eq!(s.errors["wampload.decode_error"], 1);
        assert_eq!(s.live_errors, 4);
        for i in 0..1000 {
            s.record_error(&format!("x.{i}"));
        }
        assert!(s.errors.len() <= 257);
        assert!(s.errors["wampload.other_error"] > 0);
    }

    #[test]
    fn runs_of_equal_latencies_are_all_counted() {
        let mut a = ThreadStats::default();
        let mut b = ThreadStats::default();
        for value in [5_000, 5_000, 5_000, 7_000, 7_000, 5_000] {
            a.record_latency(value, true);
            b.record_latency(value, true);
        }
        // `b` still holds its last run: merging must not lose it.
        a.merge(&b);
        a.flush();
        assert_eq!(a.latency.len(), 12);
        assert_eq!(a.latency.count_at(7_000), 4);
        assert_eq!(a.latency.count_at(5_000), 8);
    }

    #[test]
    fn answer_ranges_and_secondary_stats_merge() {
        let mut a = ThreadStats::default();
        let mut b = ThreadStats::default();
        a.list_lengths.add(7);
        a.list_lengths.add(5);
        b.list_lengths.add(9);
        b.secondary.sent = 2;
        b.secondary.latency.saturating_record(1_000);
        a.merge(&b);
        assert_eq!(
            a.list_lengths,
            AnswerRange {
                answers: 3,
                min: 5,
                max: 9
            }
        );
        assert_eq!(a.count_values, AnswerRange::default());
        assert_eq!((a.secondary.sent, a.secondary.latency.len()), (2, 1));
        let mut empty = AnswerRange::default();
        empty.merge(&a.list_lengths);
        assert_eq!(empty, a.list_lengths);
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(
            LatencySummary::of(&new_histogram()),
            LatencySummary::default()
        );
    }

    #[test]
    fn progress_moves_interval_latencies() {
        let progress = ThreadProgress::default();
        let mut s = ThreadStats::default();
        s.record_latency(1000, false);
        s.record_latency(2000, true);
        progress.publish(&mut s);
        assert_eq!(progress.ops.load(Ordering::Relaxed), 2);
        assert_eq!(progress.interval.lock().unwrap().len(), 2);
        assert!(s.live_latency.is_empty());
        progress.interval.lock().unwrap().reset();
        // Only what was recorded since the last copy is new; the result keeps everything.
        s.record_latency(3000, true);
        progress.publish(&mut s);
        let interval = progress.interval.lock().unwrap();
        assert_eq!(interval.len(), 1);
        assert!(interval.max() >= 2990);
        assert_eq!(s.latency.len(), 2);
    }
}
