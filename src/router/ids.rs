//! Id schemes of the router (digest §3): global random ids (session, publication), router-scoped
//! sequential ids (registration, subscription, with the owner shard folded in) and per-session
//! sequential request ids; the same seeded RNG also draws the callee of `invoke: random`.
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

    /// A uniform index in `0..n` (`n > 0`), for the `random` invoke policy: the same seeded
    /// stream, so a test replays its choices too.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n)
    }
}

/// Router-scoped ids for registrations and subscriptions, shared by both kinds so an id names
/// exactly one thing in the whole router. The owner shard folds its index in (id = n * shards +
/// shard + 1 for n = 0, 1, ...), so ids decided by different shards never collide; with one
/// shard this is 1, 2, 3, ... Nothing outside `router/` relies on them being dense.
pub(crate) struct ScopedIds {
    /// The n of the last id handed out (`None` before the first).
    last: Option<u64>,
    shard: u64,
    shards: u64,
}

impl ScopedIds {
    pub(crate) fn new(shard: usize, shards: usize) -> ScopedIds {
        ScopedIds {
            last: None,
            shard: shard as u64,
            shards: shards as u64,
        }
    }

    /// Continues after the first `count` ids of this shard, handed out before it started
    /// (the reserved ids of event history).
    pub(crate) fn skip(&mut self, count: u64) {
        self.last = count.checked_sub(1);
    }

    /// The next id; `in_use` is consulted only after wrapping past 2^53, so the common path is
    /// an add and a multiply.
    pub(crate) fn next_id(&mut self, in_use: impl Fn(u64) -> bool) -> u64 {
        loop {
            let n = self.last.map_or(0, |n| n + 1);
            let id = n * self.shards + self.shard + 1;
            if id > MAX_ID {
                self.last = None;
                continue;
            }
            self.last = Some(n);
            if !in_use(id) {
                return id;
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
        let mut ids = ScopedIds::new(0, 1);
        ids.last = Some(MAX_ID - 1);
        assert_eq!(ids.next_id(|id| id == 1 || id == 2), 3);
    }

    #[test]
    fn scoped_ids_of_different_shards_never_collide() {
        let mut a = ScopedIds::new(0, 3);
        let mut c = ScopedIds::new(2, 3);
        assert_eq!((a.next_id(|_| false), a.next_id(|_| false)), (1, 4));
        assert_eq!((c.next_id(|_| false), c.next_id(|_| false)), (3, 6));
        let mut last = ScopedIds::new(2, 3);
        last.last = Some((MAX_ID - 3) / 3 - 1);
        let id = last.next_id(|_| false);
        assert!(id <= MAX_ID, "{id}");
        assert_eq!(last.next_id(|_| false), 3, "wraps to the shard's first id");
    }
}
