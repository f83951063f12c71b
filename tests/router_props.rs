//! Property test of the sans-IO router: random sequences of client operations (valid, invalid
//! and garbage) from several JSON and MessagePack sessions never panic, never send to a session
//! after its Close or after `close_session`, every frame sent decodes, and once everyone has
//! left the registration, subscription and pending-call tables are empty again.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use wampring::router::{Action, Router, RouterConfig, SessionKey, TransportInfo};
use wampring::wire::{self, Dict, Frame, Message, Payload, Serializer, Value};

/// One step of the simulation: which session slot acts, what it does, and a small argument.
#[derive(Clone, Debug)]
struct Step {
    slot: usize,
    op: u8,
    arg: u64,
}

fn step() -> impl Strategy<Value = Step> {
    (0usize..6, 0u8..18, 0u64..8).prop_map(|(slot, op, arg)| Step { slot, op, arg })
}

struct Slot {
    key: SessionKey,
    ser: Serializer,
    /// Invocation ids received (candidates for YIELD/ERROR).
    invocations: Vec<u64>,
    /// Registration/subscription ids received (candidates for UNREGISTER/UNSUBSCRIBE).
    ids: Vec<u64>,
    /// CALL request ids sent (candidates for CANCEL).
    calls: Vec<u64>,
}

struct Sim {
    router: Router,
    out: Vec<Action>,
    slots: Vec<Option<Slot>>,
    closed: HashSet<SessionKey>,
    serializers: HashMap<SessionKey, Serializer>,
    request: u64,
    now: u64,
}

impl Sim {
    fn new(config: RouterConfig) -> Sim {
        Sim {
            router: Router::new(config, 7),
            out: Vec::new(),
            slots: (0..6).map(|_| None).collect(),
            closed: HashSet::new(),
            serializers: HashMap::new(),
            request: 0,
            now: 0,
        }
    }

    /// A frame the router sent to `session`: the ids it carries are remembered for later steps.
    fn receive(&mut self, session: SessionKey, frame: &Frame) {
        assert!(
            !self.closed.contains(&session),
            "Send to {session:?} after its Close"
        );
        let ser = self.serializers[&session];
        let frame = frame.to_bytes();
        let message = wire::decode(ser, &frame).expect("router frames decode");
        let Some(slot) = self
            .slots
            .iter_mut()
            .flatten()
            .find(|slot| slot.key == session)
        else {
            panic!("Send to {session:?}, which is not open");
        };
        match message {
            Message::Invocation { request, .. } => slot.invocations.push(request),
            Message::Registered { registration, .. } => slot.ids.push(registration),
            Message::Subscribed { subscription, .. } => slot.ids.push(subscription),
            _ => {}
        }
    }

    fn deliver(&mut self) {
        for action in std::mem::take(&mut self.out) {
            match action {
                Action::Send { session, frame } | Action::SendEvent { session, frame } => {
                    self.receive(session, &frame)
                }
                Action::SendEach { sessions, frame } => {
                    for session in sessions {
                        self.receive(session, &frame);
                    }
                }
                Action::Close { session, .. } => {
                    assert!(self.closed.insert(session), "second Close")
                }
                Action::ToShard { to, .. } => {
                    panic!("a single-shard router addressed shard {to}")
                }
                Action::Check { .. } => panic!("a secret check without any principal"),
                Action::Metrics { .. } => panic!("metrics nobody asked for"),
            }
        }
    }

    fn send(&mut self, index: usize, message: &Message<'_>) {
        let slot = self.slots[index].as_ref().unwrap();
        let mut frame = Vec::new();
        wire::encode(message, slot.ser, &mut frame).unwrap();
        let key = slot.key;
        self.now += 1;
        self.router
            .handle_message(key, frame.into(), self.now, &mut self.out);
        self.deliver();
    }

    fn disconnect(&mut self, index: usize) {
        if let Some(slot) = self.slots[index].take() {
            self.now += 1;
            self.router.close_session(slot.key, self.now, &mut self.out);
            self.deliver();
            self.closed.remove(&slot.key);
            self.serializers.remove(&slot.key);
        }
    }

    fn run(&mut self, step: &Step) {
        let index = step.slot;
        if self.slots[index].is_none() {
            let ser = Serializer::ALL[step.arg as usize % Serializer::COUNT];
            let key = self.router.open_session(
                TransportInfo {
                    serializer: ser,
                    kind: "test",
                    peer: "sim".into(),
                    listener: 0,
                    secure: false,
                },
                self.now,
                &mut self.out,
            );
            self.serializers.insert(key, ser);
            self.slots[index] = Some(Slot {
                key,
                ser,
                invocations: Vec::new(),
                ids: Vec::new(),
                calls: Vec::new(),
            });
        }
        self.request += 1;
        let request = self.request;
        let slot = self.slots[index].as_ref().unwrap();
        let ser = slot.ser;
        let procedure: Cow<'static, str> = format!("com.p{}", step.arg % 3).into();
        let topic: Cow<'static, str> = format!("com.t{}", step.arg % 3).into();
        let pick = |list: &[u64]| {
            list.get(step.arg as usize % list.len().max(1))
                .copied()
                .unwrap_or(step.arg + 1)
        };
        let invocation = pick(&slot.invocations);
        let id = pick(&slot.ids);
        let call = pick(&slot.calls);
        let payload = wire::payload_from_args(
            ser,
            &[Value::UInt(step.arg), Value::Bin(Cow::Borrowed(b"\x00b"))],
            None,
        )
        .unwrap();
        let payload = payload.as_payload();
        let empty = Payload::empty(ser);
        match step.op {
            0 | 1 => {
                let mut roles = Dict::new();
                roles.insert("caller", Dict::new());
                roles.insert("callee", Dict::new());
                let mut details = Dict::new();
                details.insert("roles", roles);
                let realm = if step.arg == 7 { "nowhere" } else { "realm1" };
                self.send(
                    index,
                    &Message::Hello {
                        realm: realm.into(),
                        details,
                    },
                );
            }
            2 => self.send(
                index,
                &Message::Register {
                    request,
                    options: Dict::new(),
                    procedure,
                },
            ),
            3 => self.send(
                index,
                &Message::Unregister {
                    request,
                    registration: id,
                },
            ),
            4 | 5 => {
                self.send(
                    index,
                    &Message::Call {
                        request,
                        options: Dict::new(),
                        procedure,
                        payload,
                    },
                );
                if let Some(slot) = self.slots[index].as_mut() {
                    slot.calls.push(request);
                }
            }
            6 | 7 => self.send(
                index,
                &Message::Yield {
                    request: invocation,
                    options: Dict::new(),
                    payload,
                },
            ),
            8 => self.send(
                index,
                &Message::Error {
                    request_type: 68,
                    request: invocation,
                    details: Dict::new(),
                    error: "com.e".into(),
                    payload,
                },
            ),
            9 => self.send(
                index,
                &Message::Subscribe {
                    request,
                    options: Dict::new(),
                    topic,
                },
            ),
            10 => self.send(
                index,
                &Message::Unsubscribe {
                    request,
                    subscription: id,
                },
            ),
            11 | 12 => {
                let mut options = Dict::new();
                options.insert("exclude_me", step.arg % 2 == 0);
                options.insert("acknowledge", step.arg % 3 == 0);
                self.send(
                    index,
                    &Message::Publish {
                        request,
                        options,
                        topic,
                        payload,
                    },
                );
            }
            13 => self.send(
                index,
                &Message::Cancel {
                    request: call,
                    options: Dict::new(),
                },
            ),
            14 => self.send(
                index,
                &Message::Goodbye {
                    details: Dict::new(),
                    reason: "wamp.close.close_realm".into(),
                },
            ),
            15 => match step.arg {
                0 => self.send(
                    index,
                    &Message::Abort {
                        details: Dict::new(),
                        reason: "wamp.error.x".into(),
                        payload: empty,
                    },
                ),
                1 => self.send(
                    index,
                    &Message::Event {
                        subscription: 1,
                        publication: 1,
                        details: Dict::new(),
                        payload: empty,
                    },
                ),
                _ => {
                    let key = self.slots[index].as_ref().unwrap().key;
                    self.router.handle_message(
                        key,
                        bytes::Bytes::from_static(&[0x93, 0xff, b'[', 0]),
                        self.now,
                        &mut self.out,
                    );
                    self.deliver();
                }
            },
            _ => self.disconnect(index),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_sessions_never_break_the_router(steps in prop::collection::vec(step(), 1..200), strict in any::<bool>()) {
        let config = RouterConfig {
            max_pending_calls_per_session: 3,
            strict_request_ids: strict,
            ..RouterConfig::default()
        };
        let mut sim = Sim::new(config);
        for step in &steps {
            sim.run(step);
        }
        for index in 0..sim.slots.len() {
            sim.disconnect(index);
        }
        let stats = sim.router.stats();
        prop_assert_eq!(sim.router.session_count(), 0);
        prop_assert_eq!(stats.registrations, 0);
        prop_assert_eq!(stats.subscriptions, 0);
        prop_assert_eq!(stats.pending_calls, 0);
        prop_assert_eq!(stats.sessions_opened, stats.sessions_closed);
    }
}
