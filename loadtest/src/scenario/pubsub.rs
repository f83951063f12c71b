//! The PubSub scenario. Publishers publish to one topic; every subscriber receives every
//! event. Each event carries (publisher, sequence number, send time) — see `payload` — so
//! subscribers count distinct deliveries and duplicates exactly (`seqtrack`) and time each
//! delivery from its (intended) publish time on the shared process clock.
//!
//! Pacing: with `--acknowledge`, `--window W` keeps W unacknowledged publishes in flight per
//! publisher (closed loop on PUBLISHED) and `--rate R` publishes on a fixed clock, bounded by
//! `--max-in-flight` unacknowledged. Without acknowledgements there is no reply to close a
//! loop on, so either `--rate R` (open loop) or `--window W` meaning "W publishes per loop
//! turn, the next turn once the previous write completed": a saturating mode where TCP
//! backpressure is the only brake and a router may legitimately drop events for slow
//! subscribers (reported as lost).
//!
//! A publish is measured when its (intended) send time is in the measured window; each
//! subscriber expects every measured publish that the router did not refuse with ERROR. After
//! the window a subscriber keeps reading until everything expected arrived, or until it was
//! quiet for [`QUIET`] once every publisher finished, or until the drain ends. What is then
//! missing is split per publisher by `seqtrack::classify`: holes below the highest sequence
//! number received are lost, the tail above it is in flight. Nothing is inferred from rates.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use wampring::wire::{Dict, Message, Payload};

use super::rpc::session_end;
use super::{Fairness, Pacing, Scenario, ThreadCtx};
use crate::clock;
use crate::incoming::{self, ToPublisher, ToSubscriber};
use crate::inflight::{InFlight, InFlightRing};
use crate::link::{LinkError, Roles};
use crate::payload::{self, Stamp};
use crate::schedule::{corrected_latency, staggered_start, OpenLoopSchedule};
use crate::seqtrack::{delivery_accounting, Got, Published, Seen, SeqTracker};
use crate::stats::ThreadStats;

/// A subscriber that received nothing for this long after every publisher finished stops
/// listening (bounded by `--drain`): a router that delivers what it accepted does so well
/// within it, and waiting out the whole drain for events a router dropped would only make
/// every lossy run slow. Whatever is then missing past the last event received is reported
/// as in flight, not lost.
pub const QUIET: std::time::Duration = std::time::Duration::from_millis(500);

pub async fn publisher(ctx: Rc<ThreadCtx>, index: usize) {
    let Scenario::Pubsub(plan) = &ctx.run.scenario else {
        return;
    };
    let plan = plan.clone();
    let Some(link) = ctx
        .open_setup_session(Roles::Publisher, &format!("publisher {index}"))
        .await
    else {
        return;
    };
    let Some((mut link, phases)) = ctx.ready_or_leave(link).await else {
        return;
    };
    let serializer = link.serializer();
    let mut options: Dict<'static> = Dict::new();
    if plan.acknowledge {
        options.insert("acknowledge", true);
    }
    let limit = match plan.pacing {
        Pacing::Window(window) if plan.acknowledge => window,
        _ => plan.max_in_flight,
    };
    let mut in_flight = InFlightRing::new(limit);
    let mut schedule = match plan.pacing {
        Pacing::Rate(rate) => Some(OpenLoopSchedule::new(
            staggered_start(phases.start, rate, index, plan.publishers),
            rate,
        )),
        Pacing::Window(_) => None,
    };
    let mut args = Vec::with_capacity(plan.payload + 64);
    let mut seq: u64 = 0;
    // Request ids and sequence numbers advance together (one of each per PUBLISH, nothing else
    // is sent meanwhile), so a refused request id names its sequence number.
    let request_of_seq_0 = link.peek_request_id();
    // The measured sequence numbers (one run: intended send times only grow) and refusals.
    let mut published: Option<Published> = None;
    let mut sent_measured: u64 = 0;
    let mut refused_measured: u64 = 0;
    let mut fairness = Fairness::new();
    let mut failure: Option<LinkError> = None;

    'run: loop {
        let now = clock::now_ns();
        // Open loop: operations that fell due before the end are still sent after it (late,
        // and timed from their due time); only those never sent by the drain end are unsent.
        let sending = now < phases.measure_end
            || (now < phases.drain_end
                && schedule
                    .as_ref()
                    .is_some_and(|s| s.next_due() < phases.measure_end));
        if !sending && (in_flight.is_empty() || now >= phases.drain_end) {
            break;
        }
        if sending {
            let mut batch = 0;
            loop {
                if plan.acknowledge && !in_flight.has_room_for(link.peek_request_id()) {
                    break;
                }
                let intended = match (&mut schedule, plan.pacing) {
                    (Some(schedule), _) => match schedule.take_due(now, phases.measure_end) {
                        Some(due) => due,
                        None => break,
                    },
                    (None, Pacing::Window(window)) if !plan.acknowledge => {
                        // Batch mode: a new batch only once the previous one was written.
                        if batch >= window || (batch == 0 && link.queued_bytes() > 0) {
                            break;
                        }
                        now
                    }
                    (None, _) => now,
                };
                batch += 1;
                let measured = phases.is_measured(intended);
                if measured && published.is_none() {
                    // Before this publish can reach anyone, so subscribers find it set.
                    ctx.shared.first_measured_seq[index].store(seq, Ordering::Release);
                    published = Some(Published::new(seq, seq));
                }
                payload::write_stamped_args(
                    serializer,
                    Stamp {
                        publisher: index as u64,
                        seq,
                        sent_ns: intended,
                    },
                    plan.payload,
                    &mut args,
                );
                let request = link.next_request_id();
                debug_assert_eq!(request - request_of_seq_0, seq);
                let publish = Message::Publish {
                    request,
                    // Empty without acknowledge (no allocation); one small entry with it.
                    options: options.clone(),
                    topic: Cow::Borrowed(&plan.topic),
                    payload: Payload {
                        ser: serializer,
                        count: 1,
                        raw: &args,
                    },
                };
                if let Err(e) = link.send(&publish) {
                    failure = Some(e);
                    break 'run;
                }
                seq += 1;
                if measured {
                    if let Some(published) = &mut published {
                        published.end = seq;
                    }
                }
                sent_measured += u64::from(measured);
                if plan.acknowledge {
                    in_flight.insert(InFlight {
                        request,
                        intended,
                        measured,
                    });
                }
            }
        }
        let can_send_more = !plan.acknowledge || in_flight.has_room_for(link.peek_request_id());
        let wake = match &schedule {
            Some(s) if sending && can_send_more => s.next_due().min(phases.measure_end),
            _ if now < phases.measure_end => phases.measure_end,
            _ => phases.drain_end,
        };
        if let Err(e) = link.pump(Some(clock::instant_of(wake))).await {
            failure = Some(e);
            break;
        }
        loop {
            let reply =
                match link.next_message_with(|frame| incoming::to_publisher(serializer, frame)) {
                    Ok(Some(reply)) => reply,
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(e);
                        break 'run;
                    }
                };
            let mut stats = ctx.stats.borrow_mut();
            match reply {
                ToPublisher::Published(request) => match in_flight.take(request) {
                    Some(publish) => stats.counts.ok += u64::from(publish.measured),
                    None => unexpected(&mut stats, "wampload.unexpected_published"),
                },
                ToPublisher::Error { request, error } => match in_flight.take(request) {
                    Some(publish) => {
                        stats.record_op_error(&error, publish.measured);
                        if publish.measured {
                            refused_measured += 1;
                            if let Some(published) = &mut published {
                                published.refuse(request - request_of_seq_0);
                            }
                        }
                    }
                    None => unexpected(&mut stats, "wampload.unexpected_error"),
                },
                ToPublisher::Other(message) => {
                    if let Some(end) = session_end(message, &mut stats) {
                        failure = Some(end);
                        break 'run;
                    }
                }
            }
        }
        fairness.turn().await;
    }

    {
        let mut stats = ctx.stats.borrow_mut();
        stats.counts.sent += sent_measured;
        let unfinished = if failure.is_some() {
            "wampload.session_lost"
        } else {
            "wampload.timeout"
        };
        for publish in in_flight.drain() {
            // Unacknowledged, not refused: it may still have been delivered, so it stays expected.
            stats.record_op_error(unfinished, publish.measured);
        }
        if let Some(schedule) = &schedule {
            stats.counts.unsent += schedule.untaken_in(phases.warmup_end, phases.measure_end);
        }
        if let Some(e) = &failure {
            stats.record_error(&e.uri());
        }
        let published = published.unwrap_or_else(|| Published::new(seq, seq));
        stats.published.push((index, published));
    }
    ctx.shared.expected_per_subscriber.fetch_add(
        sent_measured.saturating_sub(refused_measured),
        Ordering::AcqRel,
    );
    ctx.shared.publishers_done.fetch_add(1, Ordering::AcqRel);
    if failure.is_none() {
        ctx.close_session(link, phases.close_end).await;
    }
}

pub async fn subscriber(ctx: Rc<ThreadCtx>, index: usize) {
    let Scenario::Pubsub(plan) = &ctx.run.scenario else {
        return;
    };
    let plan = plan.clone();
    let Some(mut link) = ctx
        .open_setup_session(Roles::Subscriber, &format!("subscriber {index}"))
        .await
    else {
        return;
    };
    let subscribe = Message::Subscribe {
        request: link.next_request_id(),
        options: Dict::new(),
        topic: Cow::Borrowed(&plan.topic),
    };
    let subscription = match link
        .request(&subscribe, clock::instant_of(ctx.shared.setup_deadline))
        .await
    {
        Ok(id) => id,
        Err(e) => {
            ctx.setup_failed(
                &format!("subscriber {index} subscribing to {}", plan.topic),
                &e,
            );
            return;
        }
    };
    let Some((mut link, phases)) = ctx.ready_or_leave(link).await else {
        return;
    };
    let serializer = link.serializer();
    let mut trackers: Vec<Option<SeqTracker>> = vec![None; plan.publishers];
    let mut received: u64 = 0;
    let mut fairness = Fairness::new();
    let mut failure: Option<LinkError> = None;
    let tick = 10_000_000;
    let mut listening = Listening::new(phases.measure_end, phases.drain_end, QUIET);
    'run: loop {
        let now = clock::now_ns();
        // The shared counters matter only after the window (no loads on the measured path);
        // the expectation is complete only once every publisher is done.
        let publishers_done = now >= phases.measure_end
            && ctx.shared.publishers_done.load(Ordering::Acquire) == plan.publishers;
        let all_arrived = publishers_done
            && received >= ctx.shared.expected_per_subscriber.load(Ordering::Acquire);
        if listening.over(now, publishers_done, all_arrived) {
            break;
        }
        let wake = if now < phases.measure_end {
            phases.measure_end
        } else {
            ((now / tick + 1) * tick).min(phases.drain_end)
        };
        if let Err(e) = link.pump(Some(clock::instant_of(wake))).await {
            failure = Some(e);
            break;
        }
        let received_at = clock::now_ns();
        let (walked, ended) = {
            let mut stats = ctx.stats.borrow_mut();
            let mut events = ctx.event_cache.borrow_mut();
            let mut ended: Option<LinkError> = None;
            let walked = link.for_each_message(|frame| {
                match events.to_subscriber(serializer, frame) {
                    ToSubscriber::Event {
                        subscription: s,
                        stamp,
                    } if s == subscription => {
                        listening.event(received_at);
                        let Some(stamp) = stamp.filter(|s| s.publisher < plan.publishers as u64)
                        else {
                            unexpected(&mut stats, "wampload.bad_payload");
                            return ControlFlow::Continue(());
                        };
                        let latency = corrected_latency(stamp.sent_ns, received_at);
                        if !phases.is_measured(stamp.sent_ns) {
                            stats.record_latency(latency, false);
                            return ControlFlow::Continue(());
                        }
                        let publisher = stamp.publisher as usize;
                        let tracker = trackers[publisher].get_or_insert_with(|| {
                            let first =
                                ctx.shared.first_measured_seq[publisher].load(Ordering::Acquire);
                            SeqTracker::new(if first == u64::MAX { stamp.seq } else { first })
                        });
                        match tracker.record(stamp.seq) {
                            Seen::New => {
                                received += 1;
                                stats.record_latency(latency, true);
                            }
                            Seen::Duplicate => stats.counts.duplicated += 1,
                            Seen::TooLate => stats.counts.too_late += 1,
                        }
                    }
                    ToSubscriber::Event { .. } => {
                        unexpected(&mut stats, "wampload.unexpected_message")
                    }
                    ToSubscriber::Other(message) => {
                        if let Some(end) = session_end(message, &mut stats) {
                            ended = Some(end);
                            return ControlFlow::Break(());
                        }
                    }
                }
                ControlFlow::Continue(())
            });
            (walked, ended)
        };
        if let Some(e) = ended.or(walked.err()) {
            failure = Some(e);
            break 'run;
        }
        fairness.turn().await;
    }
    {
        let mut stats = ctx.stats.borrow_mut();
        let got = trackers
            .iter()
            .map(|t| t.as_ref().map_or(Got::default(), SeqTracker::got))
            .collect();
        stats.subscriber_got.push(got);
        if let Some(e) = &failure {
            stats.record_error(&format!("{} (subscriber)", e.uri()));
        }
    }
    if failure.is_none() {
        ctx.close_session(link, phases.close_end).await;
    }
}

/// When a subscriber stops listening: at the drain's end at the latest; after the measured
/// window, once every publisher finished, as soon as everything expected arrived or nothing
/// arrived for the quiet interval (counted from the later of the last event and the moment the
/// publishers were seen done, so a publisher's last late sends are waited for too).
#[derive(Clone, Debug)]
struct Listening {
    measure_end: u64,
    drain_end: u64,
    quiet_ns: u64,
    last_event_ns: u64,
    publishers_done_ns: Option<u64>,
}

impl Listening {
    fn new(measure_end: u64, drain_end: u64, quiet: std::time::Duration) -> Listening {
        Listening {
            measure_end,
            drain_end,
            quiet_ns: clock::nanos(quiet),
            last_event_ns: 0,
            publishers_done_ns: None,
        }
    }

    /// One of the subscriber's events arrived at `at`.
    fn event(&mut self, at: u64) {
        self.last_event_ns = self.last_event_ns.max(at);
    }

    fn over(&mut self, now: u64, publishers_done: bool, all_arrived: bool) -> bool {
        if now >= self.drain_end {
            return true;
        }
        if now < self.measure_end || !publishers_done {
            return false;
        }
        let done_ns = *self.publishers_done_ns.get_or_insert(now);
        all_arrived
            || now
                >= done_ns
                    .max(self.last_event_ns)
                    .saturating_add(self.quiet_ns)
    }
}

/// After all threads finished: expected, received, lost and in flight over all subscribers.
pub fn finish_accounting(stats: &mut ThreadStats) {
    let mut published = std::mem::take(&mut stats.published);
    published.sort_unstable_by_key(|(index, _)| *index);
    let published: Vec<Published> = published.into_iter().map(|(_, p)| p).collect();
    let delivery = delivery_accounting(&published, &stats.subscriber_got);
    stats.counts.expected = delivery.expected;
    stats.counts.received = delivery.received;
    stats.counts.lost = delivery.lost;
    stats.counts.in_flight = delivery.in_flight;
    stats.counts.unexpected = delivery.unexpected;
}

fn unexpected(stats: &mut ThreadStats, uri: &str) {
    stats.counts.protocol_errors += 1;
    stats.record_error(uri);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    #[test]
    fn listening_ends_when_all_arrived_or_quiet_or_at_the_drain_end() {
        // Window ends at 1000 ms, drain at 3000 ms, quiet 500 ms.
        let new = || Listening::new(1000 * MS, 3000 * MS, Duration::from_millis(500));
        let mut l = new();
        assert!(!l.over(900 * MS, true, true), "never inside the window");
        assert!(l.over(1000 * MS, true, true), "everything arrived");

        let mut l = new();
        assert!(
            !l.over(1100 * MS, false, false),
            "a publisher still sending"
        );
        assert!(!l.over(2900 * MS, false, false));
        assert!(l.over(3000 * MS, false, false), "the drain ended");

        // Publishers seen done at 1200 ms, events until 1400 ms: quiet from 1400 ms on.
        let mut l = new();
        l.event(1050 * MS);
        assert!(!l.over(1200 * MS, true, false));
        l.event(1400 * MS);
        assert!(!l.over(1899 * MS, true, false));
        assert!(l.over(1900 * MS, true, false));

        // No event after the publishers finished: quiet from the moment they were seen done.
        let mut l = new();
        l.event(900 * MS);
        assert!(!l.over(1300 * MS, true, false));
        assert!(!l.over(1799 * MS, true, false));
        assert!(l.over(1800 * MS, true, false));
    }
}
