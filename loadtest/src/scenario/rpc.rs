//! The RPC scenario. Callers call one procedure and time each call from its (intended) send to
//! its RESULT; echo callees answer every INVOCATION with a YIELD carrying the same arguments.
//!
//! Closed loop (`--window W`): each caller keeps W calls in flight, sending the next as soon as
//! a reply frees a slot; latency is from the actual send. Open loop (`--rate R`): each caller
//! sends on a fixed clock of R calls per second (callers staggered over one period); a call
//! that could not leave on time (in-flight bound hit, generator or router stalled) leaves late
//! but is timed from its due time (see `schedule`). Calls are measured when their (intended)
//! send time is inside the measured window; after it, callers stop sending and wait up to
//! `--drain` for the calls in flight, the rest counting as `wampload.timeout`. Every measured
//! call ends as exactly one RESULT or one error, so `sent == ok + errors`.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::atomic::Ordering;

use wampring::wire::{Dict, Message, Payload};

use super::{Fairness, Pacing, Scenario, ThreadCtx};
use crate::clock;
use crate::incoming::{self, Other, ToCallee, ToCaller};
use crate::inflight::{InFlight, InFlightRing};
use crate::link::{LinkError, Roles};
use crate::outgoing::CallTemplate;
use crate::payload;
use crate::schedule::{corrected_latency, staggered_start, OpenLoopSchedule};

pub async fn caller(ctx: Rc<ThreadCtx>, index: usize) {
    let Scenario::Rpc(plan) = &ctx.run.scenario else {
        return;
    };
    let plan = plan.clone();
    let Some(link) = ctx
        .open_setup_session(Roles::Caller, &format!("caller {index}"))
        .await
    else {
        return;
    };
    let Some((mut link, phases)) = ctx.ready_or_leave(link).await else {
        return;
    };
    let serializer = link.serializer();
    let mut args = Vec::new();
    let arg_count = payload::write_padding_args(serializer, plan.payload, &mut args);
    let template = CallTemplate::new(
        serializer,
        &Message::Call {
            request: 1,
            options: Dict::new(),
            procedure: Cow::Borrowed(&plan.procedure),
            payload: Payload {
                ser: serializer,
                count: arg_count,
                raw: &args,
            },
        },
    );
    let template = match template {
        Ok(template) => template,
        Err(e) => {
            ctx.stats
                .borrow_mut()
                .record_error(&LinkError::Encode(e.to_string()).uri());
            ctx.shared.callers_done.fetch_add(1, Ordering::AcqRel);
            ctx.close_session(link, phases.close_end).await;
            return;
        }
    };
    let mut call = Vec::with_capacity(plan.payload + plan.procedure.len() + 32);
    let limit = match plan.pacing {
        Pacing::Window(window) => window,
        Pacing::Rate(_) => plan.max_in_flight,
    };
    let mut in_flight = InFlightRing::new(limit);
    let mut schedule = match plan.pacing {
        Pacing::Rate(rate) => Some(OpenLoopSchedule::new(
            staggered_start(phases.start, rate, index, plan.callers),
            rate,
        )),
        Pacing::Window(_) => None,
    };
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
        let mut sent_measured = 0;
        if sending {
            while in_flight.has_room_for(link.peek_request_id()) {
                let intended = match &mut schedule {
                    Some(schedule) => match schedule.take_due(now, phases.measure_end) {
                        Some(due) => due,
                        None => break,
                    },
                    None => now,
                };
                let request = link.next_request_id();
                template.write(request, &mut call);
                if let Err(e) = link.send_encoded(&call) {
                    failure = Some(e);
                    break 'run;
                }
                let measured = phases.is_measured(intended);
                sent_measured += u64::from(measured);
                in_flight.insert(InFlight {
                    request,
                    intended,
                    measured,
                });
            }
        }
        if sent_measured > 0 {
            ctx.stats.borrow_mut().counts.sent += sent_measured;
        }
        // Wake for the next due call only when it could be sent; otherwise a reply wakes us.
        let wake = match &schedule {
            Some(s) if sending && in_flight.has_room_for(link.peek_request_id()) => {
                s.next_due().min(phases.measure_end)
            }
            _ if now < phases.measure_end => phases.measure_end,
            _ => phases.drain_end,
        };
        if let Err(e) = link.pump(Some(clock::instant_of(wake))).await {
            failure = Some(e);
            break;
        }
        let received_at = clock::now_ns();
        loop {
            let reply = match link.next_message_with(|frame| incoming::to_caller(serializer, frame))
            {
                Ok(Some(reply)) => reply,
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break 'run;
                }
            };
            let mut stats = ctx.stats.borrow_mut();
            match reply {
                ToCaller::Result(request) => match in_flight.take(request) {
                    Some(call) => {
                        stats.record_latency(
                            corrected_latency(call.intended, received_at),
                            call.measured,
                        );
                        stats.counts.ok += u64::from(call.measured);
                    }
                    None => unexpected(&mut stats, "wampload.unexpected_result"),
                },
                ToCaller::Progress => {} // progressive results are not final
                ToCaller::Error { request, error } => match in_flight.take(request) {
                    Some(call) => stats.record_op_error(&error, call.measured),
                    None => unexpected(&mut stats, "wampload.unexpected_error"),
                },
                ToCaller::Other(message) => {
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
        let unfinished = if failure.is_some() {
            "wampload.session_lost"
        } else {
            "wampload.timeout"
        };
        for call in in_flight.drain() {
            stats.record_op_error(unfinished, call.measured);
        }
        if let Some(schedule) = &schedule {
            stats.counts.unsent += schedule.untaken_in(phases.warmup_end, phases.measure_end);
        }
        if let Some(e) = &failure {
            stats.record_error(&e.uri());
        }
    }
    ctx.shared.callers_done.fetch_add(1, Ordering::AcqRel);
    if failure.is_none() {
        ctx.close_session(link, phases.close_end).await;
    }
}

pub async fn callee(ctx: Rc<ThreadCtx>, index: usize) {
    let Scenario::Rpc(plan) = &ctx.run.scenario else {
        return;
    };
    let plan = plan.clone();
    let shared_registration = plan.callees > 1;
    let Some(mut link) = ctx
        .open_setup_session(
            Roles::Callee {
                shared: shared_registration,
            },
            &format!("callee {index}"),
        )
        .await
    else {
        return;
    };
    let mut options = Dict::new();
    if shared_registration {
        options.insert("invoke", "roundrobin");
    }
    let register = Message::Register {
        request: link.next_request_id(),
        options,
        procedure: Cow::Borrowed(&plan.procedure),
    };
    if let Err(e) = link
        .request(&register, clock::instant_of(ctx.shared.setup_deadline))
        .await
    {
        ctx.setup_failed(
            &format!("callee {index} registering {}", plan.procedure),
            &e,
        );
        return;
    }
    let Some((mut link, phases)) = ctx.ready_or_leave(link).await else {
        return;
    };
    let serializer = link.serializer();
    let mut reply = Vec::with_capacity(plan.payload + 32);
    let mut answered_in_run: u64 = 0;
    let mut fairness = Fairness::new();
    let mut failure: Option<LinkError> = None;
    // Checks whether the callers are done on a coarse tick, so the wake-up time (and the
    // timer) changes only every 50 ms.
    let tick = 50_000_000;
    'run: loop {
        let now = clock::now_ns();
        if now >= phases.drain_end
            || ctx.shared.callers_done.load(Ordering::Acquire) == plan.callers
        {
            break;
        }
        let wake = ((now / tick + 1) * tick).min(phases.drain_end);
        if let Err(e) = link.pump(Some(clock::instant_of(wake))).await {
            failure = Some(e);
            break;
        }
        let mut answered = 0;
        loop {
            let received =
                link.next_message_with(|frame| incoming::to_callee(serializer, frame, &mut reply));
            match received {
                Ok(Some(ToCallee::Invocation)) => {
                    if let Err(e) = link.send_encoded(&reply) {
                        failure = Some(e);
                        break 'run;
                    }
                    answered += 1;
                }
                // INTERRUPT (a caller went away) and anything else: nothing to answer.
                Ok(Some(ToCallee::Ignored)) => {}
                Ok(Some(ToCallee::Other(message))) => {
                    if let Some(end) = session_end(message, &mut ctx.stats.borrow_mut()) {
                        failure = Some(end);
                        break 'run;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break 'run;
                }
            }
        }
        if answered > 0 {
            ctx.stats.borrow_mut().counts.invocations += answered;
            answered_in_run += answered;
        }
        fairness.turn().await;
    }
    ctx.stats
        .borrow_mut()
        .callee_invocations
        .push((index, answered_in_run));
    // YIELDs still queued leave before the GOODBYE, in the same write.
    match failure {
        Some(e) => ctx
            .stats
            .borrow_mut()
            .record_error(&format!("{} (callee)", e.uri())),
        None => ctx.close_session(link, phases.close_end).await,
    }
}

/// A message the generator cannot attribute to an operation: counted, never fatal.
fn unexpected(stats: &mut crate::stats::ThreadStats, uri: &str) {
    stats.counts.protocol_errors += 1;
    stats.record_error(uri);
}

/// ABORT and GOODBYE end the session (returned as its failure); anything else unexpected is
/// counted and the session goes on.
pub(super) fn session_end(
    message: Other,
    stats: &mut crate::stats::ThreadStats,
) -> Option<LinkError> {
    match message {
        Other::Abort(reason) => Some(LinkError::Abort(reason)),
        Other::Goodbye(reason) => Some(LinkError::Goodbye(reason)),
        Other::Unexpected => {
            unexpected(stats, "wampload.unexpected_message");
            None
        }
        Other::Undecodable => {
            unexpected(stats, "wampload.decode_error");
            None
        }
    }
}
