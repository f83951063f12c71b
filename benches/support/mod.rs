//! What the router benchmarks (`router.rs`, `router_instructions.rs`) share: the binary's
//! allocator, a transport-like input buffer, and sessions joined, registered or subscribed on a
//! single-shard router, so each benchmark measures only its own loop.

#![allow(dead_code)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use wampring::router::{Action, Router, RouterConfig, SessionKey, TransportInfo};
use wampring::wire::{self, Dict, Message, Serializer};

/// The allocator of the `wampring` binary, so allocation costs are the production ones.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A transport's input buffer: each frame is copied in and split off as `Bytes`; once the
/// router dropped it, the next frame reuses the same memory (no allocation per frame).
pub struct FrameBuf(BytesMut);

impl FrameBuf {
    pub fn new() -> FrameBuf {
        // Room for a CALL and a YIELD of the largest payload: like a transport's buffer, whose
        // frames are dropped before it needs the room again.
        FrameBuf(BytesMut::with_capacity(256 * 1024))
    }

    pub fn frame(&mut self, bytes: &[u8]) -> Bytes {
        self.0.reserve(bytes.len());
        self.0.extend_from_slice(bytes);
        self.0.split().freeze()
    }
}

pub fn encode(message: &Message<'_>, ser: Serializer) -> Vec<u8> {
    let mut frame = Vec::new();
    wire::encode(message, ser, &mut frame).unwrap();
    frame
}

/// A session joined to `realm1` with all four roles.
pub fn join(router: &mut Router, ser: Serializer, out: &mut Vec<Action>) -> SessionKey {
    let transport = TransportInfo {
        serializer: ser,
        kind: "bench",
        peer: "bench".into(),
        listener: 0,
        secure: false,
    };
    let key = router.open_session(transport, 0, out);
    let mut roles = Dict::new();
    for role in ["caller", "callee", "publisher", "subscriber"] {
        roles.insert(role, Dict::new());
    }
    let mut details = Dict::new();
    details.insert("roles", roles);
    let hello = Message::Hello {
        realm: "realm1".into(),
        details,
    };
    router.handle_message(key, encode(&hello, ser).into(), 0, out);
    assert!(matches!(out.last(), Some(Action::Send { .. })), "WELCOME");
    out.clear();
    key
}

/// A single-shard router with a caller and a callee that registered `procedure`.
pub fn caller_and_callee(ser: Serializer, procedure: &str) -> (Router, SessionKey, SessionKey) {
    let mut router = Router::new(RouterConfig::default(), 1);
    let mut out = Vec::new();
    let caller = join(&mut router, ser, &mut out);
    let callee = join(&mut router, ser, &mut out);
    let register = Message::Register {
        request: 1,
        options: Dict::new(),
        procedure: procedure.into(),
    };
    router.handle_message(callee, encode(&register, ser).into(), 0, &mut out);
    assert!(
        matches!(out.last(), Some(Action::Send { .. })),
        "REGISTERED"
    );
    (router, caller, callee)
}

/// A single-shard router with a publisher and `subscribers` subscribers of `topic`.
pub fn publisher_and_subscribers(
    ser: Serializer,
    topic: &str,
    subscribers: usize,
) -> (Router, SessionKey) {
    let mut router = Router::new(RouterConfig::default(), 1);
    let mut out = Vec::new();
    let publisher = join(&mut router, ser, &mut out);
    for _ in 0..subscribers {
        let subscriber = join(&mut router, ser, &mut out);
        let subscribe = Message::Subscribe {
            request: 1,
            options: Dict::new(),
            topic: topic.into(),
        };
        router.handle_message(subscriber, encode(&subscribe, ser).into(), 0, &mut out);
        out.clear();
    }
    (router, publisher)
}

/// Carries the router's actions out as the shard runtime does (`perform`: each action taken
/// apart by value, its frame handed on and dropped), so a benchmark counts what a server pays
/// and not the generic drop of a whole `Action`. Leaves `out` empty.
pub fn perform(out: &mut Vec<Action>) {
    for action in out.drain(..) {
        match action {
            Action::Send { session, frame } | Action::SendEvent { session, frame } => {
                black_box((session, frame));
            }
            Action::SendEach { sessions, frame } => {
                black_box((sessions, frame));
            }
            Action::Close { session, reason } => {
                black_box((session, reason));
            }
            Action::ToShard { to, msg } => {
                black_box((to, msg));
            }
            Action::Check { session, token, .. } => {
                black_box((session, token));
            }
            Action::Metrics { request, .. } => {
                black_box(request);
            }
        }
    }
}

/// How many messages `out` sends (a fan-out's `SendEach` counts once per recipient).
pub fn messages_sent(out: &[Action]) -> usize {
    out.iter()
        .map(|action| match action {
            Action::Send { .. } | Action::SendEvent { .. } => 1,
            Action::SendEach { sessions, .. } => sessions.len(),
            Action::Close { .. }
            | Action::ToShard { .. }
            | Action::Check { .. }
            | Action::Metrics { .. } => 0,
        })
        .sum()
}
