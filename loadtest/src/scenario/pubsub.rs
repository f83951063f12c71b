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
//! subscriber expects every measured publish that the router did not refuse with ERROR. Loss
//! is expected minus distinct received, per subscriber; nothing is inferred from rates.

use std::borrow::Cow;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use wampring::wire::{Dict, Message, Payload};

use super::rpc::session_end;
use super::{Fairness, Pacing, Scenario, Shared, ThreadCtx};
use crate::clock;
use crate::incoming::{self, ToPublisher, ToSubscriber};
use crate::inflight::{InFlight, InFlightRing};
use crate::link::{LinkError, Roles};
use crate::payload::{self, Stamp};
use crate::schedule::{corrected_latency, staggered_start, OpenLoopSchedule};
use crate::seqtrack::{delivery_accounting, Seen, SeqTracker};
use crate::stats::ThreadStats;

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
    let mut first_measured_published = false;
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
                if measured && !first_measured_published {
                    // Before this publish can reach anyone, so subscribers find it set.
                    ctx.shared.first_measured_seq[index].store(seq, Ordering::Release);
                    first_measured_published = true;
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
                        refused_measured += u64::from(publish.measured);
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
    'run: loop {
        let now = clock::now_ns();
        if now >= phases.drain_end {
            break;
        }
        if now >= phases.measure_end
            && ctx.shared.publishers_done.load(Ordering::Acquire) == plan.publishers
            && received >= ctx.shared.expected_per_subscriber.load(Ordering::Acquire)
        {
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
        stats.subscriber_received.push(received);
        if let Some(e) = &failure {
            stats.record_error(&format!("{} (subscriber)", e.uri()));
        }
    }
    if failure.is_none() {
        ctx.close_session(link, phases.close_end).await;
    }
}

/// After all threads finished: expected, received and lost over all subscribers.
pub fn finish_accounting(stats: &mut ThreadStats, shared: &Shared) {
    let expected_per_subscriber = shared.expected_per_subscriber.load(Ordering::Acquire);
    let delivery = delivery_accounting(expected_per_subscriber, &stats.subscriber_received);
    stats.counts.expected = delivery.expected;
    stats.counts.received = delivery.received;
    stats.counts.lost = delivery.lost;
    stats.counts.unexpected = delivery.unexpected;
}

fn unexpected(stats: &mut ThreadStats, uri: &str) {
    stats.counts.protocol_errors += 1;
    stats.record_error(uri);
}
