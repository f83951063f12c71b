//! The session-list scenario: how long the session meta API takes to answer when the realm
//! holds many sessions. `--sessions N` idle sessions (one connection each, so a router that
//! spreads connections over its cores spreads them too) are opened during setup and held; then
//! each of `--callers` measuring sessions calls `wamp.session.list` in a closed loop
//! (`--window` calls in flight), alternating with `wamp.session.count` unless `--count off`.
//!
//! Every answer is checked: the list must hold exactly the sessions open (the idle ones plus
//! the measuring ones, caller included), as ids in strictly ascending order, the caller's own
//! among them; the count must equal the same number. An answer that does not is a failed
//! operation (`wampload.wrong_session_count`, ...) and is counted in `wrong_answers`. Latency
//! runs from the CALL's send to its RESULT's arrival (before the answer is read); the list's
//! is the report's latency, the count's is reported beside it.
//!
//! The idle sessions, and the measuring sessions themselves, leave only once every measuring
//! session is done (or the drain ended), so no answer can see a session going.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use wampring::wire::{Dict, Message, Payload};

use super::rpc::session_end;
use super::{Fairness, Scenario, SessionListPlan, ThreadCtx};
use crate::clock;
use crate::incoming::{self, MetaAnswer, ToMetaCaller};
use crate::inflight::{InFlight, InFlightRing};
use crate::link::{LinkError, Roles};
use crate::outgoing::CallTemplate;
use crate::stats::ThreadStats;

pub const LIST: &str = "wamp.session.list";
pub const COUNT: &str = "wamp.session.count";

/// Which procedure a request called: with `--count on` odd request ids list and even ones
/// count (request ids are sequential per session), so the kind needs no bookkeeping.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    List,
    Count,
}

pub fn kind_of(request: u64, with_count: bool) -> Kind {
    if with_count && request.is_multiple_of(2) {
        Kind::Count
    } else {
        Kind::List
    }
}

/// Why an answer is wrong, as the error URI it is counted under; `None` when it is right.
pub fn check_answer(kind: Kind, answer: &MetaAnswer, expected: u64) -> Option<&'static str> {
    match (kind, answer) {
        (
            Kind::List,
            MetaAnswer::Ids {
                len,
                ascending,
                includes_own,
            },
        ) => {
            if *len != expected {
                Some("wampload.wrong_session_count")
            } else if !ascending {
                Some("wampload.list_not_ascending")
            } else if !includes_own {
                Some("wampload.list_without_caller")
            } else {
                None
            }
        }
        (Kind::Count, MetaAnswer::Count(n)) if *n == expected => None,
        (Kind::Count, MetaAnswer::Count(_)) => Some("wampload.wrong_session_count"),
        _ => Some("wampload.malformed_answer"),
    }
}

/// The URI a failure of a `kind` call is listed under: list failures as they are, count
/// failures marked with the procedure.
fn error_uri(kind: Kind, uri: &str) -> String {
    match kind {
        Kind::List => uri.to_string(),
        Kind::Count => format!("{uri} ({COUNT})"),
    }
}

fn call_template(
    ser: wampring::serializer::Serializer,
    procedure: &str,
) -> Result<CallTemplate, LinkError> {
    CallTemplate::new(
        ser,
        &Message::Call {
            request: 1,
            options: Dict::new(),
            procedure: Cow::Borrowed(procedure),
            payload: Payload::empty(ser),
        },
    )
    .map_err(|e| LinkError::Encode(e.to_string()))
}

/// One answered call: its latency, or its failure, into the stats of its kind.
fn settle(
    stats: &mut ThreadStats,
    kind: Kind,
    call: InFlight,
    received_at: u64,
    answer: &MetaAnswer,
    expected: u64,
) {
    match (kind, answer) {
        (Kind::List, MetaAnswer::Ids { len, .. }) => stats.list_lengths.add(*len),
        (Kind::Count, MetaAnswer::Count(n)) => stats.count_values.add(*n),
        _ => {}
    }
    let latency = received_at.saturating_sub(call.intended);
    match (check_answer(kind, answer, expected), kind) {
        (None, Kind::List) => {
            stats.record_latency(latency, call.measured);
            stats.counts.ok += u64::from(call.measured);
        }
        (None, Kind::Count) => stats.record_secondary_latency(latency, call.measured),
        (Some(uri), kind) => {
            stats.counts.wrong_answers += 1;
            fail(stats, kind, uri, call.measured);
        }
    }
}

fn fail(stats: &mut ThreadStats, kind: Kind, uri: &str, measured: bool) {
    match kind {
        Kind::List => stats.record_op_error(uri, measured),
        Kind::Count => stats.record_secondary_error(&error_uri(kind, uri), measured),
    }
}

pub async fn lister(ctx: Rc<ThreadCtx>, index: usize) {
    let Scenario::SessionList(plan) = &ctx.run.scenario else {
        return;
    };
    let plan = plan.clone();
    let done = || {
        ctx.shared.callers_done.fetch_add(1, Ordering::AcqRel);
    };
    let Some(link) = ctx
        .open_setup_session(Roles::Caller, &format!("measuring session {index}"))
        .await
    else {
        done();
        return;
    };
    let Some((mut link, phases)) = ctx.ready_or_leave(link).await else {
        done();
        return;
    };
    let serializer = link.serializer();
    let templates = call_template(serializer, LIST)
        .and_then(|list| Ok((list, call_template(serializer, COUNT)?)));
    let (list, count) = match templates {
        Ok(templates) => templates,
        Err(e) => {
            ctx.stats.borrow_mut().record_error(&e.uri());
            done();
            ctx.close_session(link, phases.close_end).await;
            return;
        }
    };
    let (failure, in_flight) = call_loop(&ctx, &plan, &mut link, &list, &count).await;
    {
        let mut stats = ctx.stats.borrow_mut();
        let unfinished = if failure.is_some() {
            "wampload.session_lost"
        } else {
            "wampload.timeout"
        };
        for call in in_flight {
            fail(
                &mut stats,
                kind_of(call.request, plan.count),
                unfinished,
                call.measured,
            );
        }
        if let Some(e) = &failure {
            stats.record_error(&e.uri());
        }
    }
    done();
    if failure.is_none() {
        // Stay joined until every measuring session is done: one that left early would make
        // the others' last answers (still in flight) one session short.
        let _ = ctx.load_over.acquire(1).await;
        ctx.close_session(link, phases.close_end).await;
    }
}

/// The measuring loop of one session: returns why it ended early (if it did) and the calls
/// still in flight.
async fn call_loop(
    ctx: &ThreadCtx,
    plan: &SessionListPlan,
    link: &mut crate::link::Link,
    list: &CallTemplate,
    count: &CallTemplate,
) -> (Option<LinkError>, Vec<InFlight>) {
    let phases = ctx.phases();
    let serializer = link.serializer();
    let own = link.session_id();
    let expected = plan.expected_sessions();
    let mut frame = Vec::with_capacity(64);
    let mut in_flight = InFlightRing::new(plan.window);
    let mut fairness = Fairness::new();
    let failure = 'run: loop {
        let now = clock::now_ns();
        let sending = now < phases.measure_end;
        if !sending && (in_flight.is_empty() || now >= phases.drain_end) {
            break None;
        }
        if sending {
            let (mut lists, mut counts) = (0, 0);
            while in_flight.has_room_for(link.peek_request_id()) {
                let request = link.next_request_id();
                let kind = kind_of(request, plan.count);
                match kind {
                    Kind::List => list.write(request, &mut frame),
                    Kind::Count => count.write(request, &mut frame),
                }
                if let Err(e) = link.send_encoded(&frame) {
                    break 'run Some(e);
                }
                let measured = phases.is_measured(now);
                match kind {
                    Kind::List => lists += u64::from(measured),
                    Kind::Count => counts += u64::from(measured),
                }
                in_flight.insert(InFlight {
                    request,
                    intended: now,
                    measured,
                });
            }
            let mut stats = ctx.stats.borrow_mut();
            stats.counts.sent += lists;
            stats.secondary.sent += counts;
        }
        let wake = if sending {
            phases.measure_end
        } else {
            phases.drain_end
        };
        if let Err(e) = link.pump(Some(clock::instant_of(wake))).await {
            break Some(e);
        }
        let received_at = clock::now_ns();
        loop {
            let reply = match link
                .next_message_with(|frame| incoming::to_meta_caller(serializer, frame, own))
            {
                Ok(Some(reply)) => reply,
                Ok(None) => break,
                Err(e) => break 'run Some(e),
            };
            let mut stats = ctx.stats.borrow_mut();
            match reply {
                ToMetaCaller::Result { request, answer } => match in_flight.take(request) {
                    Some(call) => settle(
                        &mut stats,
                        kind_of(request, plan.count),
                        call,
                        received_at,
                        &answer,
                        expected,
                    ),
                    None => unexpected(&mut stats, "wampload.unexpected_result"),
                },
                ToMetaCaller::Progress => {}
                ToMetaCaller::Error { request, error } => match in_flight.take(request) {
                    Some(call) => fail(
                        &mut stats,
                        kind_of(request, plan.count),
                        &error,
                        call.measured,
                    ),
                    None => unexpected(&mut stats, "wampload.unexpected_error"),
                },
                ToMetaCaller::Other(message) => {
                    if let Some(end) = session_end(message, &mut stats) {
                        break 'run Some(end);
                    }
                }
            }
        }
        fairness.turn().await;
    };
    (failure, in_flight.drain())
}

fn unexpected(stats: &mut ThreadStats, uri: &str) {
    stats.counts.protocol_errors += 1;
    stats.record_error(uri);
}

/// An idle session: joins, waits for the load to end (noticing an ABORT or GOODBYE from the
/// router meanwhile), then leaves.
pub async fn idle(ctx: Rc<ThreadCtx>, index: usize) {
    let Some(link) = ctx
        .open_setup_session(Roles::All, &format!("idle session {index}"))
        .await
    else {
        return;
    };
    let Some((mut link, phases)) = ctx.ready_or_leave(link).await else {
        return;
    };
    ctx.stats.borrow_mut().counts.held += 1;
    let serializer = link.serializer();
    let mut over = false;
    let failure = 'run: loop {
        if over || clock::now_ns() >= phases.drain_end {
            break None;
        }
        let load_over = async {
            // Err once closed: the gate is never signalled, only closed.
            let _ = ctx.load_over.acquire(1).await;
            None
        };
        let pumped = async { Some(link.pump(Some(clock::instant_of(phases.drain_end))).await) };
        match futures_lite::future::or(pumped, load_over).await {
            None => over = true,
            Some(Err(e)) => break Some(e),
            Some(Ok(_)) => {}
        }
        loop {
            match link.next_message_with(|frame| incoming::to_meta_caller(serializer, frame, 0)) {
                Ok(Some(ToMetaCaller::Other(message))) => {
                    if let Some(end) = session_end(message, &mut ctx.stats.borrow_mut()) {
                        break 'run Some(end);
                    }
                }
                // Nothing else is expected; an idle session has nothing in flight.
                Ok(Some(_)) => {
                    unexpected(&mut ctx.stats.borrow_mut(), "wampload.unexpected_message")
                }
                Ok(None) => break,
                Err(e) => break 'run Some(e),
            }
        }
    };
    match failure {
        Some(e) => ctx
            .stats
            .borrow_mut()
            .record_error(&format!("{} (idle session)", e.uri())),
        None => ctx.close_session(link, phases.close_end).await,
    }
}

/// Closes the thread's `load_over` gate once every measuring session is done or the drain
/// ended (checked every 10 ms: one task per thread, however many idle sessions wait).
pub async fn watch_load(ctx: Rc<ThreadCtx>) {
    let Scenario::SessionList(plan) = &ctx.run.scenario else {
        return;
    };
    if let Some(phases) = ctx.wait_for_start().await {
        while ctx.shared.callers_done.load(Ordering::Acquire) < plan.callers
            && clock::now_ns() < phases.drain_end
        {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }
    ctx.load_over.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_alternate_by_request_id() {
        let kinds: Vec<Kind> = (1..=4).map(|r| kind_of(r, true)).collect();
        assert_eq!(kinds, [Kind::List, Kind::Count, Kind::List, Kind::Count]);
        assert!((1..=4).all(|r| kind_of(r, false) == Kind::List));
    }

    #[test]
    fn answers_are_checked_against_the_sessions_open() {
        let ids = |len, ascending, includes_own| MetaAnswer::Ids {
            len,
            ascending,
            includes_own,
        };
        assert_eq!(check_answer(Kind::List, &ids(11, true, true), 11), None);
        assert_eq!(
            check_answer(Kind::List, &ids(10, true, true), 11),
            Some("wampload.wrong_session_count")
        );
        assert_eq!(
            check_answer(Kind::List, &ids(11, false, true), 11),
            Some("wampload.list_not_ascending")
        );
        assert_eq!(
            check_answer(Kind::List, &ids(11, true, false), 11),
            Some("wampload.list_without_caller")
        );
        assert_eq!(check_answer(Kind::Count, &MetaAnswer::Count(11), 11), None);
        assert_eq!(
            check_answer(Kind::Count, &MetaAnswer::Count(12), 11),
            Some("wampload.wrong_session_count")
        );
        assert_eq!(
            check_answer(Kind::List, &MetaAnswer::Count(11), 11),
            Some("wampload.malformed_answer")
        );
        assert_eq!(
            check_answer(Kind::Count, &MetaAnswer::Malformed, 11),
            Some("wampload.malformed_answer")
        );
    }

    #[test]
    fn a_wrong_answer_is_a_failed_operation() {
        let mut stats = ThreadStats::default();
        let call = |request| InFlight {
            request,
            intended: 1_000,
            measured: true,
        };
        let right = MetaAnswer::Ids {
            len: 3,
            ascending: true,
            includes_own: true,
        };
        settle(&mut stats, Kind::List, call(1), 5_000, &right, 3);
        settle(
            &mut stats,
            Kind::Count,
            call(2),
            3_000,
            &MetaAnswer::Count(3),
            3,
        );
        settle(&mut stats, Kind::List, call(3), 5_000, &right, 4);
        settle(
            &mut stats,
            Kind::Count,
            call(4),
            3_000,
            &MetaAnswer::Count(2),
            3,
        );
        stats.flush();
        assert_eq!((stats.counts.ok, stats.counts.errors), (1, 1));
        assert_eq!((stats.secondary.ok, stats.secondary.errors), (1, 1));
        assert_eq!(stats.counts.wrong_answers, 2);
        assert_eq!(stats.latency.len(), 1);
        assert_eq!(stats.secondary.latency.len(), 1);
        assert_eq!(stats.errors["wampload.wrong_session_count"], 1);
        assert_eq!(
            stats.errors["wampload.wrong_session_count (wamp.session.count)"],
            1
        );
        assert_eq!((stats.list_lengths.min, stats.list_lengths.max), (3, 3));
        assert_eq!((stats.count_values.min, stats.count_values.max), (2, 3));
    }
}
