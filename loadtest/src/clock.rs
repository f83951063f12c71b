//! The process clock and the phases of a run. Every timestamp the tool handles (intended send
//! times, payload stamps, phase boundaries) is nanoseconds since one process-wide monotonic
//! base, so publisher and subscriber tasks on different threads compare them directly.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static BASE: OnceLock<Instant> = OnceLock::new();

fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since the process clock's base (fixed at the first call).
pub fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}

/// The `Instant` of a process-clock timestamp, for timers.
pub fn instant_of(ns: u64) -> Instant {
    base() + Duration::from_nanos(ns)
}

pub fn nanos(duration: Duration) -> u64 {
    duration.as_nanos().min(u64::MAX as u128) as u64
}

/// Phase boundaries of one run, in process-clock nanoseconds.
///
/// `start..warmup_end` runs load that is not measured; operations whose (intended) send time is
/// in `warmup_end..measure_end` are measured; after `measure_end` nothing new is sent and the
/// operations in flight get until `drain_end` to complete (later ones count as timeouts);
/// sessions then close with GOODBYE, bounded by `close_end`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Phases {
    pub start: u64,
    pub warmup_end: u64,
    pub measure_end: u64,
    pub drain_end: u64,
    pub close_end: u64,
}

/// How long GOODBYE and the transport close may take at the end of a run.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

impl Phases {
    pub fn new(start: u64, warmup: Duration, duration: Duration, drain: Duration) -> Phases {
        let warmup_end = start + nanos(warmup);
        let measure_end = warmup_end + nanos(duration);
        let drain_end = measure_end + nanos(drain);
        let close_end = drain_end + nanos(CLOSE_TIMEOUT);
        Phases {
            start,
            warmup_end,
            measure_end,
            drain_end,
            close_end,
        }
    }

    /// Whether an operation sent (or intended to be sent) at `t` is measured.
    pub fn is_measured(&self, t: u64) -> bool {
        t >= self.warmup_end && t < self.measure_end
    }

    pub fn measured_seconds(&self) -> f64 {
        (self.measure_end - self.warmup_end) as f64 / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_follow_each_other() {
        let p = Phases::new(
            1_000,
            Duration::from_secs(2),
            Duration::from_secs(10),
            Duration::from_secs(1),
        );
        assert_eq!(p.warmup_end, 1_000 + 2_000_000_000);
        assert_eq!(p.measure_end, p.warmup_end + 10_000_000_000);
        assert_eq!(p.drain_end, p.measure_end + 1_000_000_000);
        assert!(p.close_end > p.drain_end);
        assert!(!p.is_measured(p.warmup_end - 1));
        assert!(p.is_measured(p.warmup_end));
        assert!(!p.is_measured(p.measure_end));
        assert_eq!(p.measured_seconds(), 10.0);
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
        assert!(instant_of(b) >= instant_of(a));
    }
}
