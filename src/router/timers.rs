//! The router's timer table: time is an input (DESIGN.md "The router kernel"). Features arm a
//! deadline with what should happen then ([`Timeout`]); the runtime asks for the earliest
//! deadline ([`Timers::next_deadline`], surfaced as `Router::poll_timeout`), arms ONE timer of
//! its own for it, and calls `Router::handle_timeout(now)` when it fires. Cancelling is O(1):
//! the entry leaves the live map and its heap slot is skipped when it surfaces; the heap is
//! rebuilt when skipped slots outnumber live ones, so it stays bounded by the live timers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::dealer::PendingKey;
use super::{fast_map, FastMap, Millis, SessionKey};

/// A handle on an armed timer (never reused within one router).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TimerId(u64);

impl TimerId {
    #[cfg(test)]
    pub(crate) fn for_tests(id: u64) -> TimerId {
        TimerId(id)
    }

    /// An id no armed timer ever has (ids start at 1): for a phase that has no deadline.
    pub(crate) const NONE: TimerId = TimerId(0);
}

/// What happens when a deadline passes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// The session opened by the runtime has not sent HELLO in time.
    Hello { session: SessionKey },
    /// The challenged session has not sent AUTHENTICATE in time.
    Authenticate { session: SessionKey },
    /// Time to remove the auto-created realms that are no longer used.
    RealmSweep,
    /// The router-side timeout (call_timeout) of a pending call, on its caller's entry.
    Call { call: PendingKey },
}

/// Heap slots below this are never worth a rebuild.
const COMPACT_FLOOR: usize = 64;

pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Millis, TimerId)>>,
    live: FastMap<TimerId, (Millis, Timeout)>,
    last_id: u64,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            heap: BinaryHeap::new(),
            live: fast_map(),
            last_id: 0,
        }
    }

    pub(crate) fn arm(&mut self, at: Millis, timeout: Timeout) -> TimerId {
        self.last_id += 1;
        let id = TimerId(self.last_id);
        self.live.insert(id, (at, timeout));
        self.heap.push(Reverse((at, id)));
        id
    }

    /// Forgets a timer; cancelling one that fired or was cancelled already is harmless.
    pub(crate) fn cancel(&mut self, id: TimerId) {
        if self.live.remove(&id).is_some()
            && self.heap.len() > COMPACT_FLOOR.max(2 * self.live.len())
        {
            self.heap = self
                .live
                .iter()
                .map(|(&id, &(at, _))| Reverse((at, id)))
                .collect();
        }
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Millis> {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if self.live.contains_key(&id) {
                return Some(at);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes one timer whose deadline is at or before `now`, earliest first.
    pub(crate) fn pop_expired(&mut self, now: Millis) -> Option<(TimerId, Timeout)> {
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if at > now {
                return None;
            }
            self.heap.pop();
            if let Some((_, timeout)) = self.live.remove(&id) {
                return Some((id, timeout));
            }
        }
        None
    }

    /// Armed timers.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(key: usize) -> Timeout {
        Timeout::Hello {
            session: SessionKey(key),
        }
    }

    #[test]
    fn timers_fire_in_deadline_order_and_cancelled_ones_never() {
        let mut timers = Timers::new();
        let late = timers.arm(30, hello(1));
        let early = timers.arm(10, hello(2));
        let cancelled = timers.arm(5, hello(3));
        timers.cancel(cancelled);
        assert_eq!(timers.next_deadline(), Some(10));
        assert_eq!(timers.pop_expired(9), None);
        assert_eq!(timers.pop_expired(30), Some((early, hello(2))));
        assert_eq!(timers.pop_expired(30), Some((late, hello(1))));
        assert_eq!(timers.pop_expired(u64::MAX), None);
        assert_eq!(timers.next_deadline(), None);
        timers.cancel(late);
        assert_eq!(timers.len(), 0);
    }

    #[test]
    fn cancelled_slots_do_not_pile_up() {
        let mut timers = Timers::new();
        let keep = timers.arm(1_000_000, hello(0));
        for key in 1..10_000 {
            let id = timers.arm(key as Millis, hello(key));
            timers.cancel(id);
        }
        assert!(
            timers.heap.len() <= COMPACT_FLOOR + 1,
            "{}",
            timers.heap.len()
        );
        assert_eq!(timers.next_deadline(), Some(1_000_000));
        assert_eq!(timers.pop_expired(u64::MAX), Some((keep, hello(0))));
    }
}
