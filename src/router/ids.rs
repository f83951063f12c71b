//! Id schemes of the router (digest §3): global random ids (session, publication), router-scoped
//! sequential ids (registration, subscription) and per-session sequential request ids.
//!
//! Everything is driven by one seeded RNG so a test or a simulation replays byte-for-byte.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::wire::MAX_ID;

/// Uniformly random ids in [1, 2^53] for session and publication ids.
pub(crate) struct RandomIds {
    rng: SmallRng,
}

impl RandomIds {
    pub(crate) fn new(seed: u64) -> RandomIds {
        RandomIds {
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.rng.gen_range(1..=MAX_ID)
    }
}

/// Router-scoped ids for registrations and subscriptions: sequential from 1, shared by both
/// kinds so an id names exactly one thing in this router. When shards arrive, the owner shard
/// will fold its index into these ids (DESIGN.md "Ownership"); nothing outside `router/` relies
/// on them being dense.
pub(crate) struct ScopedIds {
    last: u64,
}

impl ScopedIds {
    pub(crate) fn new() -> ScopedIds {
        ScopedIds { last: 0 }
    }

    /// The next id; `in_use` is consulted only after wrapping past 2^53, so the common path is
    /// one add.
    pub(crate) fn next_id(&mut self, in_use: impl Fn(u64) -> bool) -> u64 {
        loop {
            self.last = next_sequential(self.last);
            if !in_use(self.last) {
                return self.last;
            }
        }
    }
}

/// The id after `id` in a sequence that runs 1, 2, ..., 2^53, 1, ... (digest §3).
pub(crate) fn next_sequential(id: u64) -> u64 {
    if id >= MAX_ID {
        1
    } else {
        id + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_stay_in_range_and_replay_with_the_seed() {
        let mut a = RandomIds::new(7);
        let mut b = RandomIds::new(7);
        for _ in 0..10_000 {
            let id = a.next_id();
            assert!((1..=MAX_ID).contains(&id));
            assert_eq!(id, b.next_id());
        }
    }

    #[test]
    fn sequential_ids_wrap_to_one() {
        assert_eq!(next_sequential(0), 1);
        assert_eq!(next_sequential(41), 42);
        assert_eq!(next_sequential(MAX_ID), 1);
    }

    #[test]
    fn scoped_ids_skip_ids_in_use_after_wrapping() {
        let mut ids = ScopedIds { last: MAX_ID };
        assert_eq!(ids.next_id(|id| id == 1 || id == 2), 3);
    }
}
