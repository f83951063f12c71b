//! Rate limits for log lines a client can cause: per cause, at most one line per interval, and
//! that line says how many were suppressed since the previous one, so no client can fill a disk
//! while the operator still sees that something keeps happening.

use super::Millis;

pub(crate) const LOG_INTERVAL_MS: Millis = 10_000;

#[derive(Default)]
pub(crate) struct LogLimit {
    /// When the last line was written (`None`: never).
    last: Option<Millis>,
    /// Not written since the last line.
    suppressed: u64,
    /// Not written, ever.
    suppressed_total: u64,
}

impl LogLimit {
    /// `Some(suppressed since the last line)` when a line may be written at `now`.
    pub(crate) fn allow(&mut self, now: Millis) -> Option<u64> {
        match self.last {
            Some(last) if now < last.saturating_add(LOG_INTERVAL_MS) => {
                self.suppressed += 1;
                self.suppressed_total += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    pub(crate) fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_suppressed_count() {
        let mut limit = LogLimit::default();
        assert_eq!(limit.allow(5), Some(0));
        assert_eq!(limit.allow(6), None);
        assert_eq!(limit.allow(LOG_INTERVAL_MS + 4), None);
        assert_eq!(limit.allow(LOG_INTERVAL_MS + 5), Some(2));
        assert_eq!(limit.allow(LOG_INTERVAL_MS + 6), None);
    }
}
