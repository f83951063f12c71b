//! Operations in flight on one session (calls awaiting RESULT, publishes awaiting PUBLISHED),
//! keyed by request id. WAMP request ids are sequential per session (digest §3), so a ring
//! indexed by `id mod capacity` finds an entry without hashing or allocating.

/// One operation in flight.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct InFlight {
    /// 0 marks a free slot (request ids start at 1).
    pub request: u64,
    /// When it was due (open loop) or sent (closed loop), process-clock ns.
    pub intended: u64,
    /// Whether its send time falls in the measured window.
    pub measured: bool,
}

/// A bounded set of in-flight operations.
pub struct InFlightRing {
    slots: Vec<InFlight>,
    mask: u64,
    len: usize,
    limit: usize,
}

impl InFlightRing {
    /// Holds up to `limit` operations. The ring is larger than the limit so that replies arriving
    /// out of order rarely leave the next id's slot taken.
    pub fn new(limit: usize) -> InFlightRing {
        let limit = limit.max(1);
        let capacity = (limit * 2).next_power_of_two().max(64);
        InFlightRing {
            slots: vec![InFlight::default(); capacity],
            mask: capacity as u64 - 1,
            len: 0,
            limit,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether an operation with this request id may be added now: below the limit, and its
    /// slot not still held by a much older operation.
    pub fn has_room_for(&self, request: u64) -> bool {
        self.len < self.limit && self.slots[(request & self.mask) as usize].request == 0
    }

    /// Adds an operation; the caller checked [`InFlightRing::has_room_for`].
    pub fn insert(&mut self, entry: InFlight) {
        let slot = &mut self.slots[(entry.request & self.mask) as usize];
        debug_assert!(slot.request == 0 && entry.request != 0);
        *slot = entry;
        self.len += 1;
    }

    /// Removes and returns the operation with this request id, or `None` for an id not in
    /// flight (a reply the router should not have sent).
    pub fn take(&mut self, request: u64) -> Option<InFlight> {
        let slot = &mut self.slots[(request & self.mask) as usize];
        if request == 0 || slot.request != request {
            return None;
        }
        self.len -= 1;
        Some(std::mem::take(slot))
    }

    /// Removes every operation still in flight (at the end of a run, or when the session died).
    pub fn drain(&mut self) -> Vec<InFlight> {
        let taken: Vec<InFlight> = self
            .slots
            .iter_mut()
            .filter(|s| s.request != 0)
            .map(std::mem::take)
            .collect();
        self.len = 0;
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(request: u64) -> InFlight {
        InFlight {
            request,
            intended: request * 10,
            measured: true,
        }
    }

    #[test]
    fn insert_take_and_limit() {
        let mut ring = InFlightRing::new(2);
        assert!(ring.has_room_for(1));
        ring.insert(op(1));
        ring.insert(op(2));
        assert!(!ring.has_room_for(3));
        assert_eq!(ring.take(1), Some(op(1)));
        assert_eq!(ring.take(1), None);
        assert!(ring.has_room_for(3));
        assert_eq!(ring.len(), 1);
    }

    #[test]
    fn unknown_and_colliding_ids() {
        let mut ring = InFlightRing::new(1);
        ring.insert(op(5));
        assert_eq!(ring.take(0), None);
        assert_eq!(ring.take(5 + 64), None); // same slot, different id
        assert_eq!(ring.len(), 1);
        let mut ring = InFlightRing::new(64); // capacity 128
        ring.insert(op(1));
        assert!(!ring.has_room_for(1 + 128)); // slot still held by the old call
    }

    #[test]
    fn drain_empties() {
        let mut ring = InFlightRing::new(8);
        for id in 1..=5 {
            ring.insert(op(id));
        }
        ring.take(3);
        let mut left: Vec<u64> = ring.drain().iter().map(|e| e.request).collect();
        left.sort();
        assert_eq!(left, vec![1, 2, 4, 5]);
        assert!(ring.is_empty());
        assert!(ring.drain().is_empty());
    }
}
