//! Open-loop scheduling and coordinated-omission correction.
//!
//! An open-loop sender does not wait for replies before sending: operation `i` is due at the
//! fixed time `first + i / rate`, whatever happened before. When the sender falls behind (the
//! router stalled, the in-flight bound was hit), the late operations are still sent, in order,
//! and their latency is measured from the time they were *due*, not from when they finally left.
//! So a stall shows up as high latency for every operation it delayed instead of as a quietly
//! lower rate — the coordinated-omission correction. Operations still not sent when sending
//! stops are counted as unsent, and the offered rate includes them.

/// The fixed send clock of one open-loop sender.
#[derive(Clone, Debug)]
pub struct OpenLoopSchedule {
    first: u64,
    period_ns: f64,
    next: u64,
}

impl OpenLoopSchedule {
    /// Operation 0 is due at `first` (process-clock ns), then one every `1 / rate` seconds.
    pub fn new(first: u64, rate_per_second: f64) -> OpenLoopSchedule {
        assert!(
            rate_per_second > 0.0 && rate_per_second.is_finite(),
            "rate must be positive"
        );
        OpenLoopSchedule {
            first,
            period_ns: 1e9 / rate_per_second,
            next: 0,
        }
    }

    /// The time operation `index` is due.
    pub fn due_time(&self, index: u64) -> u64 {
        self.first + (index as f64 * self.period_ns) as u64
    }

    /// When the next operation not yet taken is due.
    pub fn next_due(&self) -> u64 {
        self.due_time(self.next)
    }

    /// Takes the next operation if it is due at `now` and due before `end`; returns its intended
    /// send time. Call repeatedly to catch up after a stall.
    pub fn take_due(&mut self, now: u64, end: u64) -> Option<u64> {
        let due = self.next_due();
        if due <= now && due < end {
            self.next += 1;
            Some(due)
        } else {
            None
        }
    }

    /// How many operations due in `[low, high)` have not been taken: the unsent ones.
    pub fn untaken_in(&self, low: u64, high: u64) -> u64 {
        let from = self.first_index_at_or_after(low).max(self.next);
        let to = self.first_index_at_or_after(high);
        to.saturating_sub(from)
    }

    /// The smallest index whose due time is `>= t`. The float estimate is corrected by stepping,
    /// so the answer is exact under the same rounding `due_time` uses.
    fn first_index_at_or_after(&self, t: u64) -> u64 {
        if t <= self.first {
            return 0;
        }
        let mut index = ((t - self.first) as f64 / self.period_ns).ceil() as u64;
        while self.due_time(index) < t {
            index += 1;
        }
        while index > 0 && self.due_time(index - 1) >= t {
            index -= 1;
        }
        index
    }
}

/// Latency of an operation measured from its intended send time (open loop) or its actual send
/// time (closed loop, where the two are equal).
pub fn corrected_latency(intended: u64, completed: u64) -> u64 {
    completed.saturating_sub(intended)
}

/// Spreads `senders` open-loop schedules over one period so their operations interleave
/// instead of leaving together: sender `index` starts `index / senders` of a period late.
pub fn staggered_start(start: u64, rate_per_sender: f64, index: usize, senders: usize) -> u64 {
    let period_ns = 1e9 / rate_per_sender;
    start + (period_ns * index as f64 / senders.max(1) as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn operations_are_due_on_a_fixed_clock() {
        let mut s = OpenLoopSchedule::new(1_000 * MS, 1000.0); // one per ms
        assert_eq!(s.take_due(1_000 * MS - 1, u64::MAX), None);
        assert_eq!(s.take_due(1_000 * MS, u64::MAX), Some(1_000 * MS));
        assert_eq!(s.take_due(1_000 * MS, u64::MAX), None);
        assert_eq!(s.next_due(), 1_001 * MS);
    }

    #[test]
    fn a_stall_is_caught_up_with_the_original_due_times() {
        // The sender stalls 5 ms: on waking it sends the five overdue operations, each keeping
        // its own due time, so each is charged the full delay it suffered.
        let mut s = OpenLoopSchedule::new(0, 1000.0);
        let now = 5 * MS;
        let due: Vec<u64> = std::iter::from_fn(|| s.take_due(now, u64::MAX)).collect();
        assert_eq!(due, vec![0, MS, 2 * MS, 3 * MS, 4 * MS, 5 * MS]);
        // Replies all arrive at 5.1 ms: latencies 5.1, 4.1, ... 0.1 ms, not six times 0.1 ms.
        let done = 5 * MS + MS / 10;
        let latencies: Vec<u64> = due.iter().map(|&t| corrected_latency(t, done)).collect();
        assert_eq!(latencies[0], 5 * MS + MS / 10);
        assert_eq!(latencies[5], MS / 10);
    }

    #[test]
    fn sending_stops_at_the_end_and_the_rest_is_unsent() {
        let mut s = OpenLoopSchedule::new(0, 1000.0);
        let end = 10 * MS;
        // The sender only managed to take 4 operations before the end.
        for _ in 0..4 {
            assert!(s.take_due(end, end).is_some());
        }
        assert_eq!(s.untaken_in(0, end), 6);
        // Measured window [2 ms, 10 ms): operations 2..10 are measured, 2 and 3 were sent.
        assert_eq!(s.untaken_in(2 * MS, end), 6);
        assert_eq!(s.untaken_in(5 * MS, end), 5);
        // Nothing due at or after the end is ever taken.
        while s.take_due(u64::MAX - 1, end).is_some() {}
        assert_eq!(s.next_due(), end);
        assert_eq!(s.untaken_in(0, end), 0);
    }

    #[test]
    fn fractional_rates_count_exactly() {
        let s = OpenLoopSchedule::new(7, 3.0); // due at 7, 7+333333333, 7+666666666, ...
        assert_eq!(s.untaken_in(0, 1_000_000_007), 3);
        assert_eq!(s.untaken_in(8, 1_000_000_008), 3);
        assert_eq!(s.untaken_in(0, 7), 0);
        assert_eq!(s.untaken_in(0, 8), 1);
    }

    #[test]
    fn staggering_spreads_senders_over_one_period() {
        assert_eq!(staggered_start(100, 1000.0, 0, 4), 100);
        assert_eq!(staggered_start(100, 1000.0, 2, 4), 100 + MS / 2);
    }
}
