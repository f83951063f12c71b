//! Exact loss, in-flight and duplicate accounting for PubSub. Every publish carries its
//! publisher's id and a sequence number; each subscriber keeps one [`SeqTracker`] per publisher,
//! which tells a new sequence number from a repeated one in bounded memory and remembers how
//! many arrived and the highest one. Each publisher reports which of its sequence numbers were
//! measured and which the router refused ([`Published`]). At the end [`classify`] splits what a
//! subscriber is missing of one publisher: numbers *above* the highest that arrived are still in
//! flight (nothing later from that publisher came, so the router may simply not have delivered
//! them yet), holes *below* it are lost (a later event overtook them, which a router that keeps
//! publication order — digest §6 — only does by dropping them). [`delivery_accounting`] sums
//! that over every (subscriber, publisher) pair.

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
    /// Distinct numbers received ([`Seen::New`]) and the highest of them: what [`classify`]
    /// needs to tell loss from events still in flight.
    received: u64,
    highest: Option<u64>,
}

impl SeqTracker {
    /// `first` is the first sequence number that counts (the publisher's first measured one).
    pub fn new(first: u64) -> SeqTracker {
        SeqTracker {
            base: first,
            given_up_below: first,
            words: VecDeque::new(),
            received: 0,
            highest: None,
        }
    }

    pub fn record(&mut self, seq: u64) -> Seen {
        let seen = self.record_bits(seq);
        if seen == Seen::New {
            self.received += 1;
            // `max` on Option: None < Some, so the first number sets it.
            self.highest = self.highest.max(Some(seq));
        }
        seen
    }

    fn record_bits(&mut self, seq: u64) -> Seen {
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
            // Slide: the oldest word is given up (its holes lie below a number received, so
            // `classify` counts them as lost).
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

    /// What arrived, for [`classify`].
    pub fn got(&self) -> Got {
        Got {
            received: self.received,
            highest: self.highest,
        }
    }
}

/// What one subscriber received of one publisher's measured events.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Got {
    /// Distinct sequence numbers received.
    pub received: u64,
    /// The highest of them (`None`: nothing arrived).
    pub highest: Option<u64>,
}

/// The measured publishes of one publisher: sequence numbers `first..end` (a publisher's
/// intended send times only grow, so its measured numbers are one run), minus those the router
/// refused with ERROR (never delivered, so never expected).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub first: u64,
    pub end: u64,
    /// Refused numbers as ascending, disjoint, non-adjacent `[start, end)` runs: refusals come
    /// in runs (a router refusing one publish usually refuses the next), so this stays small.
    refused: Vec<(u64, u64)>,
}

impl Published {
    pub fn new(first: u64, end: u64) -> Published {
        Published {
            first,
            end: end.max(first),
            refused: Vec::new(),
        }
    }

    /// Marks `seq` refused. ERRORs usually come back in publish order (an append or an
    /// extension of the last run); any order is handled.
    pub fn refuse(&mut self, seq: u64) {
        if let Some(last) = self.refused.last_mut() {
            if seq == last.1 {
                last.1 += 1;
                return;
            }
            if seq > last.1 {
                self.refused.push((seq, seq + 1));
                return;
            }
        } else {
            self.refused.push((seq, seq + 1));
            return;
        }
        // Out of order: the first run ending after `seq`.
        let i = self.refused.partition_point(|&(_, end)| end <= seq);
        if self.refused[i].0 <= seq {
            return; // already refused
        }
        self.refused.insert(i, (seq, seq + 1));
        // Join with the neighbours it now touches.
        if self.refused[i].1 == self.refused[i + 1].0 {
            self.refused[i].1 = self.refused[i + 1].1;
            self.refused.remove(i + 1);
        }
        if i > 0 && self.refused[i - 1].1 == self.refused[i].0 {
            self.refused[i - 1].1 = self.refused[i].1;
            self.refused.remove(i);
        }
    }

    /// Expected (measured, not refused) numbers at or above `from`.
    pub fn expected_from(&self, from: u64) -> u64 {
        let from = from.max(self.first);
        if from >= self.end {
            return 0;
        }
        let refused: u64 = self
            .refused
            .iter()
            .map(|&(start, end)| end.min(self.end).saturating_sub(start.max(from)))
            .sum();
        (self.end - from).saturating_sub(refused)
    }

    /// Expected numbers: measured and not refused.
    pub fn expected(&self) -> u64 {
        self.expected_from(self.first)
    }
}

/// What one subscriber is missing of one publisher's expected events.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Missing {
    /// Holes below the highest number received: a later event arrived, these never did.
    pub lost: u64,
    /// Expected numbers above the highest received (all of them when nothing arrived): not
    /// delivered by the time the subscriber stopped listening.
    pub in_flight: u64,
    /// Received beyond what could be expected up to the highest (a refused publish delivered
    /// after all, or a tool bug).
    pub unexpected: u64,
}

pub fn classify(published: &Published, got: Got) -> Missing {
    let expected = published.expected();
    let in_flight = match got.highest {
        Some(highest) => published.expected_from(highest.saturating_add(1)),
        None => expected,
    };
    let expected_up_to_highest = expected - in_flight;
    Missing {
        lost: expected_up_to_highest.saturating_sub(got.received),
        in_flight,
        unexpected: got.received.saturating_sub(expected_up_to_highest),
    }
}

/// Delivery totals over all subscribers.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    pub expected: u64,
    pub received: u64,
    /// Expected, never received, and overtaken by a later event of the same publisher.
    pub lost: u64,
    /// Expected, not received when the subscriber stopped listening, nothing later arrived.
    pub in_flight: u64,
    /// Received more distinct measured events than were published (a tool or router bug).
    pub unexpected: u64,
}

/// `published[p]` is publisher `p`'s measured run; `subscribers[s][p]` is what subscriber `s`
/// got of publisher `p` (a shorter list: nothing from the rest). Every (subscriber, publisher)
/// pair is classified on its own, so one pair's surplus can never hide another's loss, and
/// `expected == received + lost + in_flight - unexpected`.
pub fn delivery_accounting(published: &[Published], subscribers: &[Vec<Got>]) -> Delivery {
    let mut delivery = Delivery::default();
    for got in subscribers {
        for (p, published) in published.iter().enumerate() {
            let got = got.get(p).copied().unwrap_or_default();
            let missing = classify(published, got);
            delivery.expected += published.expected();
            delivery.received += got.received;
            delivery.lost += missing.lost;
            delivery.in_flight += missing.in_flight;
            delivery.unexpected += missing.unexpected;
        }
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

    fn saw(first: u64, seqs: impl IntoIterator<Item = u64>) -> Got {
        let mut t = SeqTracker::new(first);
        for seq in seqs {
            t.record(seq);
        }
        t.got()
    }

    #[test]
    fn a_missing_tail_is_in_flight_not_lost() {
        // 1..=12 published, 1..=10 arrived: the last two may still be on their way.
        let published = Published::new(1, 13);
        let got = saw(1, 1..=10);
        assert_eq!(
            got,
            Got {
                received: 10,
                highest: Some(10)
            }
        );
        assert_eq!(
            classify(&published, got),
            Missing {
                lost: 0,
                in_flight: 2,
                unexpected: 0
            }
        );
        // Everything arrived: nothing missing.
        assert_eq!(classify(&published, saw(1, 1..=12)), Missing::default());
    }

    #[test]
    fn a_hole_overtaken_by_a_later_event_is_lost() {
        // 1, 2, 4 of 1..=4: 3 was overtaken by 4, so it is lost, and nothing is in flight.
        let published = Published::new(1, 5);
        assert_eq!(
            classify(&published, saw(1, [1, 2, 4])),
            Missing {
                lost: 1,
                in_flight: 0,
                unexpected: 0
            }
        );
        // 1, 2, 4 of 1..=6: 3 lost, 5 and 6 in flight; duplicates change nothing.
        let published = Published::new(1, 7);
        assert_eq!(
            classify(&published, saw(1, [1, 2, 4, 4, 2])),
            Missing {
                lost: 1,
                in_flight: 2,
                unexpected: 0
            }
        );
        // Nothing arrived: all in flight (nothing overtook them).
        assert_eq!(
            classify(&published, Got::default()),
            Missing {
                lost: 0,
                in_flight: 6,
                unexpected: 0
            }
        );
    }

    #[test]
    fn refused_publishes_are_neither_lost_nor_in_flight() {
        let mut published = Published::new(0, 10);
        for seq in [2, 3, 9, 5, 4] {
            published.refuse(seq);
        }
        published.refuse(3); // twice: no change
        assert_eq!(published.refused, vec![(2, 6), (9, 10)]);
        assert_eq!(published.expected(), 5); // 0, 1, 6, 7, 8
        assert_eq!(published.expected_from(6), 3);
        // 0, 1, 6 arrived: 7 and 8 in flight; the refused 2..=5 are not holes.
        assert_eq!(
            classify(&published, saw(0, [0, 1, 6])),
            Missing {
                lost: 0,
                in_flight: 2,
                unexpected: 0
            }
        );
        // 0 and 8 arrived: 1, 6, 7 lost; 9 was refused, so nothing is in flight.
        assert_eq!(
            classify(&published, saw(0, [0, 8])),
            Missing {
                lost: 3,
                in_flight: 0,
                unexpected: 0
            }
        );
        // A refused publish delivered anyway is unexpected.
        assert_eq!(
            classify(&published, saw(0, [0, 1, 2, 6, 7, 8])),
            Missing {
                lost: 0,
                in_flight: 0,
                unexpected: 1
            }
        );
        let mut joined = Published::new(0, 10);
        for seq in [1, 5, 3, 4, 2] {
            joined.refuse(seq);
        }
        assert_eq!(joined.refused, vec![(1, 6)]);
    }

    #[test]
    fn delivery_is_classified_per_subscriber_and_publisher() {
        let published = [Published::new(0, 10), Published::new(5, 9)];
        let subscribers = vec![
            // everything
            vec![saw(0, 0..10), saw(5, 5..9)],
            // publisher 0: 0..=6 without 3 (1 lost, 3 in flight); publisher 1: nothing (4)
            vec![saw(0, [0, 1, 2, 4, 5, 6])],
            // publisher 0: 0..=9; publisher 1: 5, 8 (6 and 7 lost)
            vec![saw(0, 0..10), saw(5, [5, 8])],
        ];
        let d = delivery_accounting(&published, &subscribers);
        assert_eq!(d.expected, 3 * 14);
        assert_eq!(d.received, 14 + 6 + 12);
        assert_eq!(d.lost, 1 + 2);
        assert_eq!(d.in_flight, 3 + 4);
        assert_eq!(d.unexpected, 0);
        assert_eq!(d.expected, d.received + d.lost + d.in_flight - d.unexpected);
        assert_eq!(delivery_accounting(&published, &[]), Delivery::default());
    }
}
