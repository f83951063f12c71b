//! The connect scenario: how fast a router opens and closes sessions, and what an idle session
//! costs it. Each cycler loops over one full session life — TCP connect, transport handshake,
//! HELLO/WELCOME, GOODBYE/GOODBYE, close — and times it (closed loop, `--connections` loops at
//! once). Holders open `--hold` sessions during setup and keep them idle until the end; with
//! `--router-pid` the report divides the router's RSS growth by the sessions held. With
//! `--authmethod`, every cycle authenticates, and one session authenticates during setup first:
//! wrong credentials then fail the run before the load, and keys derived once per run are ready
//! before the first measured cycle.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use wampring::wire::{self, Message};

use super::{Scenario, ThreadCtx};
use crate::clock;
use crate::link::{Link, LinkError, Roles};

pub async fn cycler(ctx: Rc<ThreadCtx>, index: usize) {
    let Scenario::Connect(plan) = &ctx.run.scenario else {
        return;
    };
    let op_timeout = clock::nanos(plan.op_timeout);
    if index == 0 && ctx.run.checks_auth_in_setup() {
        let Some(link) = ctx
            .open_setup_session(Roles::All, "authentication check")
            .await
        else {
            return;
        };
        ctx.close_session(link, ctx.shared.setup_deadline).await;
        ctx.shared.ready.fetch_add(1, Ordering::AcqRel);
    }
    let Some(phases) = ctx.wait_for_start().await else {
        return;
    };
    let run = ctx.run.clone();
    loop {
        let began = clock::now_ns();
        if began >= phases.measure_end {
            break;
        }
        let measured = phases.is_measured(began);
        let deadline = clock::instant_of((began + op_timeout).min(phases.drain_end));
        let result = async {
            let mut link =
                Link::connect(&run.target, run.address, run.serializer, deadline).await?;
            link.join(&run.realm, Roles::All, run.auth.as_deref(), deadline)
                .await?;
            link.leave(deadline).await
        }
        .await;
        let ended = clock::now_ns();
        let failed = result.is_err();
        {
            let mut stats = ctx.stats.borrow_mut();
            stats.counts.sent += u64::from(measured);
            match result {
                Ok(()) => {
                    stats.record_latency(ended - began, measured);
                    stats.counts.ok += u64::from(measured);
                }
                Err(e) => stats.record_op_error(&e.uri(), measured),
            }
        }
        if failed {
            // A router refusing connections answers in microseconds; pause so a failing run
            // counts errors instead of spinning a core.
            glommio::timer::sleep(Duration::from_millis(1)).await;
        } else {
            futures_lite::future::yield_now().await;
        }
    }
}

pub async fn holder(ctx: Rc<ThreadCtx>, index: usize) {
    let Some(link) = ctx
        .open_setup_session(Roles::All, &format!("held session {index}"))
        .await
    else {
        return;
    };
    let Some((mut link, phases)) = ctx.ready_or_leave(link).await else {
        return;
    };
    ctx.stats.borrow_mut().counts.held += 1;
    let serializer = link.serializer();
    let mut failure: Option<LinkError> = None;
    'run: while clock::now_ns() < phases.measure_end {
        if let Err(e) = link.pump(Some(clock::instant_of(phases.measure_end))).await {
            failure = Some(e);
            break;
        }
        loop {
            match link.next_message() {
                Ok(Some(frame)) => match wire::decode(serializer, &frame) {
                    Ok(Message::Abort { reason, .. }) => {
                        failure = Some(LinkError::Abort(reason.into_owned()));
                        break 'run;
                    }
                    Ok(Message::Goodbye { reason, .. }) => {
                        failure = Some(LinkError::Goodbye(reason.into_owned()));
                        break 'run;
                    }
                    _ => {}
                },
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break 'run;
                }
            }
        }
    }
    match failure {
        Some(e) => ctx
            .stats
            .borrow_mut()
            .record_error(&format!("{} (held session)", e.uri())),
        None => ctx.close_session(link, phases.close_end).await,
    }
}
