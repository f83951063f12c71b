//! Exact loss and duplicate accounting for PubSub. Every publish carries its publisher's id and
//! a sequence number; each subscriber keeps one [`SeqTracker`] per publisher, which tells a new
//! sequence number from a repeated one in bounded memory, and loss is what was expected minus
//! what arrived, per subscriber ([`delivery_accounting`]).

use std::collections::VecDeque;

/// How far (in sequence numbers) a delivery may trail the newest one seen and still be told
/// apart from a duplicate: 2^20 numbers, 128 KiB per (publisher, subscriber) pair at worst. The
/// WAMP ordering guarantee (digest §6) means a correct router never comes close.
pub const REORDER_WINDOW: u64 = 1 << 20;
const MAX_WORDS: usize = (REORDER_WINDOW / 64) as usize;

/// What a sequence number was.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    New,
    Duplicate,
    /// Older than the reorder window: cannot be told from a duplicate; counted apart.
    TooLate,
}

/// Received sequence numbers of one publisher, as seen by one subscriber.
#[derive(Clone, Debug)]
pub struct SeqTracker {
    /// Every number below `base` is settled: received, or given up when the window moved.
    base: u64,
    /// Numbers below this were given up (or precede the first one that counts): a repeat of
    /// one cannot be told from a late first delivery. Between it and `base` all were received.
    given_up_below: u64,
    /// Bit `i` of word `w`: number `base + 64 * w + i` was received.
    words: VecDeque<u64>,
}

impl SeqTracker {
    /// `first` is the first sequence number that counts (the publisher's first measured one).
    pub fn new(first: u64) -> SeqTracker {
        SeqTracker {
            base: first,
            given_up_below: first,
            words: VecDeque::new(),
        }
    }

    pub fn record(&mut self, seq: u64) -> Seen {
        if seq == self.base && self.words.is_empty() {
            // In order, nothing outstanding: the common case on a router that keeps order.
            self.base += 1;
            return Seen::New;
        }
        if seq < self.given_up_below {
            return Seen::TooLate;
        }
        if seq < self.base {
            return Seen::Duplicate;
        }
        let mut offset = seq - self.base;
        while offset / 64 >= MAX_WORDS as u64 {
            // Slide: the oldest word is given up (its holes are loss, counted by the caller as
            // expected minus received).
            if self.words.pop_front().is_none() {
                // Nothing buffered: jump straight to the number's word.
                let skip_words = offset / 64 - (MAX_WORDS as u64 - 1);
                self.base += skip_words * 64;
                offset -= skip_words * 64;
                self.given_up_below = self.base;
                continue;
            }
            self.base += 64;
            offset -= 64;
            self.given_up_below = self.base;
        }
        let word = (offset / 64) as usize;
        let bit = 1u64 << (offset % 64);
        while self.words.len() <= word {
            self.words.push_back(0);
        }
        if self.words[word] & bit != 0 {
            return Seen::Duplicate;
        }
        self.words[word] |= bit;
        while self.words.front() == Some(&u64::MAX) {
            self.words.pop_front();
            self.base += 64;
        }
        Seen::New
    }

    /// Words buffered (for tests of the memory bound).
    pub fn buffered_words(&self) -> usize {
        self.words.len()
    }
}

/// Delivery totals over all subscribers.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub expected: u64,
    pub received: u64,
    /// Expected but never received (summed per subscriber).
    pub lost: u64,
    /// Received more distinct measured events than were published (a tool or router bug).
    pub unexpected: u64,
}

/// `expected_per_subscriber` events should reach every subscriber; `received_unique[s]` distinct
/// ones reached subscriber `s`. Loss is counted per subscriber so one subscriber's surplus can
/// never hide another's loss.
pub fn delivery_accounting(expected_per_subscriber: u64, received_unique: &[u64]) -> Delivery {
    let mut delivery = Delivery::default();
    for &received in received_unique {
        delivery.expected += expected_per_subscriber;
        delivery.received += received;
        delivery.lost += expected_per_subscriber.saturating_sub(received);
        delivery.unexpected += received.saturating_sub(expected_per_subscriber);
    }
    delivery
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_delivery_stays_tiny() {
        let mut t = SeqTracker::new(100);
        for seq in 100..100_000 {
            assert_eq!(t.record(seq), Seen::New);
        }
        assert!(t.buffered_words() <= 1);
    }

    #[test]
    fn duplicates_are_exact() {
        let mut t = SeqTracker::new(0);
        assert_eq!(t.record(5), Seen::New);
        assert_eq!(t.record(5), Seen::Duplicate);
        assert_eq!(t.record(3), Seen::New); // reordered, not a duplicate
        assert_eq!(t.record(3), Seen::Duplicate);
        for seq in 0..200 {
            t.record(seq);
        }
        // 0..200 all seen: a repeat of an old, compacted number is still a duplicate.
        assert_eq!(t.record(7), Seen::Duplicate);
        assert_eq!(t.record(199), Seen::Duplicate);
        assert_eq!(t.record(200), Seen::New);
    }

    #[test]
    fn a_gap_is_not_forgotten_while_in_the_window() {
        let mut t = SeqTracker::new(0);
        t.record(0);
        for seq in 2..10_000 {
            t.record(seq);
        }
        // 1 is missing: the base stays at word 0, so a late 1 is still recognised as new.
        assert_eq!(t.record(1), Seen::New);
        assert!(t.buffered_words() <= 1);
        assert_eq!(t.record(1), Seen::Duplicate);
        assert_eq!(t.record(9_000), Seen::Duplicate);
    }

    #[test]
    fn memory_is_bounded_by_the_window() {
        let mut t = SeqTracker::new(0);
        t.record(1); // 0 never arrives: the window cannot compact
        t.record(REORDER_WINDOW * 3);
        assert!(t.buffered_words() <= MAX_WORDS);
        assert_eq!(t.record(0), Seen::TooLate);
        assert_eq!(SeqTracker::new(10).record(9), Seen::TooLate);
        assert_eq!(t.record(REORDER_WINDOW * 3), Seen::Duplicate);
        assert_eq!(t.record(REORDER_WINDOW * 3 - 5), Seen::New);
    }

    #[test]
    fn loss_is_per_subscriber() {
        let d = delivery_accounting(10, &[10, 7, 12]);
        assert_eq!(d.expected, 30);
        assert_eq!(d.received, 29);
        assert_eq!(d.lost, 3);
        assert_eq!(d.unexpected, 2);
        assert_eq!(delivery_accounting(5, &[]), Delivery::default());
    }
}
