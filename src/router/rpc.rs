//! RPC routing (Dealer): REGISTER/UNREGISTER over the realm's [`Registry`], and the hot path
//! CALL -> INVOCATION, YIELD -> RESULT, callee ERROR -> caller ERROR over [`PendingCalls`].
//! Payloads are never decoded here: they travel as spans and `wire::encode` splices (same
//! serializer) or transcodes (different serializers) them.
//!
//! Across shards: a CALL whose callee lives on shard B becomes one `Invoke` to B (payload as
//! shared `Bytes`); B owns the invocation (id, pending entry) and answers with a `Reply` that
//! already holds the RESULT/ERROR frame encoded for the caller; the caller's shard forwards it
//! if its pending entry (slab key + generation) is still alive, else discards it.
//!
//! [`Registry`]: super::dealer::Registry
//! [`PendingCalls`]: super::dealer::PendingCalls

use std::borrow::Cow;

use bytes::Bytes;

use super::admission::{invoke_policy, Admitted};
use super::dealer::{Callee, Caller, Registrant, RemoteCaller};
use super::outbox;
use super::shard_msg::{Invoke, PublicIdentity, Reply, SessionRef, ShardMsgKind};
use super::{uri, Action, Router, SessionKey, ShardId};
use crate::wire::{code, Dict, Message, Payload, Value};

impl Router {
    /// REGISTER (admitted: options and URI are valid) goes to the owner of the procedure.
    pub(super) fn handle_register(
        &mut self,
        me: Admitted,
        request: u64,
        options: &Dict<'_>,
        procedure: &str,
        out: &mut Vec<Action>,
    ) {
        // Admission checked the per-session bound; until answered this one counts against it.
        self.sessions[me.key].registers_pending += 1;
        let invoke = invoke_policy(options).unwrap_or_default();
        let callee = Registrant {
            session: SessionRef {
                shard: self.cluster.shard,
                key: me.key,
                session_id: me.id,
            },
            disclose_caller: options.get_bool("disclose_caller").unwrap_or(false),
            ready: false,
        };
        self.start_register(request, me.realm, procedure, callee, invoke, out);
    }

    pub(super) fn handle_unregister(
        &mut self,
        me: Admitted,
        request: u64,
        registration: u64,
        out: &mut Vec<Action>,
    ) {
        // Leaving the session's set first stops this shard routing to it at once; the
        // replicas follow through the owner, and UNREGISTERED waits for all of them.
        if self.sessions[me.key].registrations.remove(&registration) {
            return self.start_unregister(me.key, me.id, request, me.realm, registration, out);
        }
        let text = format!("no registration {registration} owned by this session");
        self.send_error(
            out,
            me.key,
            code::UNREGISTER,
            request,
            uri::NO_SUCH_REGISTRATION,
            text,
        );
    }

    /// CALL -> INVOCATION to the registered callee (hot path); `wamp.*` procedures go to the
    /// router's internal callee.
    pub(super) fn handle_call(
        &mut self,
        me: Admitted,
        request: u64,
        options: &Dict<'_>,
        procedure: &str,
        carried: Carried<'_>,
        out: &mut Vec<Action>,
    ) {
        let Carried { payload, source } = carried;
        let (caller, caller_serializer) = (me.key, me.serializer);
        let refuse = |error_uri: &'static str, text: String| {
            outbox::error(code::CALL, request, error_uri, text, caller_serializer)
        };
        // The replica may list a local callee whose REGISTERED has not gone out yet, or who is
        // unregistering or gone (the owner's removal is on its way): only the session's own set
        // says it may be invoked, so such a callee is skipped. A remote callee's shard makes the
        // same check when the `Invoke` arrives.
        let shard = self.cluster.shard;
        let sessions = &self.sessions;
        let route = match self.realms.get_mut(me.realm).registry.lookup_mut(procedure) {
            None => Route::Unknown,
            Some(registration) => {
                let id = registration.id;
                let usable = |callee: &Registrant| {
                    debug_assert_eq!(
                        callee.session.shard == shard && callee.ready,
                        callee.session.shard == shard
                            && sessions.get(callee.session.key).is_some_and(|state| {
                                state.is(callee.session.session_id)
                                    && state.registrations.contains(&id)
                            }),
                        "a local callee is ready exactly while its session may be invoked"
                    );
                    callee.session.shard != shard || callee.ready
                };
                match registration.pick(&mut self.random_ids, usable) {
                    Some(callee) => Route::To(id, callee),
                    None => Route::NoUsableCallee,
                }
            }
        };
        let (registration_id, callee) = match route {
            Route::To(id, callee) => (id, callee),
            // Clients cannot register in `wamp.`: these are the router's own.
            Route::Unknown if procedure.starts_with("wamp.") => {
                return self.call_internal(me, request, procedure, payload, out);
            }
            // Registered procedures passed admission's URI check, so only a miss needs it.
            Route::Unknown if !self.uri_is_valid(procedure) => {
                let text = format!("invalid procedure URI {procedure:?}");
                self.send(
                    out,
                    caller,
                    caller_serializer,
                    &refuse(uri::INVALID_URI, text),
                );
                return;
            }
            Route::Unknown | Route::NoUsableCallee => {
                let text = format!("no callee registered {procedure:?}");
                let error = refuse(uri::NO_SUCH_PROCEDURE, text);
                self.send(out, caller, caller_serializer, &error);
                return;
            }
        };
        let callee_ref = callee.session;
        let disclose = callee.disclose_caller || options.get_bool("disclose_me") == Some(true);
        let caller_identity = self.sessions[caller]
            .identity()
            .expect("admitted sessions are established");
        if callee_ref.shard != self.cluster.shard {
            let disclose = disclose.then(|| PublicIdentity {
                session_id: caller_identity.id,
                authid: caller_identity.authid.clone(),
                authrole: caller_identity.authrole.clone(),
            });
            let key = self.pending.insert(
                Caller::Local(caller),
                request,
                Callee::Remote {
                    shard: callee_ref.shard,
                },
            );
            self.sessions[caller].calls_waiting.insert(key);
            let invoke = Invoke {
                call: key,
                caller_request: request,
                caller_serializer,
                registration: registration_id,
                callee: callee_ref,
                disclose,
                payload: payload.to_owned_payload(),
            };
            out.push(Action::ToShard {
                to: callee_ref.shard,
                msg: ShardMsgKind::Invoke(invoke).into(),
            });
            return;
        }
        let callee = callee_ref.key;
        let mut details = Dict::new();
        if disclose {
            details.insert("caller", caller_identity.id);
            details.insert(
                "caller_authid",
                Value::Str(Cow::Borrowed(&caller_identity.authid)),
            );
            details.insert(
                "caller_authrole",
                Value::Str(Cow::Borrowed(&caller_identity.authrole)),
            );
        }
        let callee_state = &self.sessions[callee];
        let callee_serializer = callee_state.serializer;
        let invocation = callee_state.peek_invocation_id();
        let frame = {
            let message = Message::Invocation {
                request: invocation,
                registration: registration_id,
                details,
                payload,
            };
            self.outbox
                .frame_forwarding(&message, callee_serializer, source)
        };
        match frame {
            Ok(frame) => out.push(Action::Send {
                session: callee,
                frame,
            }),
            Err(encode_error) => {
                self.stats.encode_errors += 1;
                let text = format!(
                    "the arguments cannot be sent to the callee's serializer: {encode_error}"
                );
                self.send_error(
                    out,
                    caller,
                    code::CALL,
                    request,
                    uri::INVALID_ARGUMENT,
                    text,
                );
                return;
            }
        }

        let key = self.pending.insert(
            Caller::Local(caller),
            request,
            Callee::Local {
                session: callee,
                invocation,
            },
        );
        let callee_state = &mut self.sessions[callee];
        callee_state.last_invocation_id = invocation;
        callee_state.invocations.insert(invocation, key);
        self.sessions[caller].calls_waiting.insert(key);
        self.stats.calls_routed += 1;
    }

    /// YIELD -> RESULT to the caller (hot path).
    pub(super) fn handle_yield(
        &mut self,
        me: Admitted,
        invocation: u64,
        payload: Payload<'_>,
        source: &Bytes,
        out: &mut Vec<Action>,
    ) {
        let details = Dict::new();
        self.route_reply(me.key, invocation, "YIELD", source, out, |request| {
            Message::Result {
                request,
                details,
                payload,
            }
        });
    }

    /// Callee ERROR for an INVOCATION -> ERROR for the CALL, Details/URI/payload passed through.
    pub(super) fn handle_invocation_error(
        &mut self,
        me: Admitted,
        invocation: u64,
        details: Dict<'_>,
        error: &str,
        carried: Carried<'_>,
        out: &mut Vec<Action>,
    ) {
        let Carried { payload, source } = carried;
        self.route_reply(me.key, invocation, "ERROR", source, out, |request| {
            Message::Error {
                request_type: code::CALL,
                request,
                details,
                error: Cow::Borrowed(error),
                payload,
            }
        });
    }

    /// Ends the pending call behind `invocation` and sends the reply built by `reply` (given the
    /// caller's request id) to the caller. Late answers are dropped; unknown ones are violations.
    fn route_reply<'m>(
        &mut self,
        callee: SessionKey,
        invocation: u64,
        what: &'static str,
        source: &Bytes,
        out: &mut Vec<Action>,
        reply: impl FnOnce(u64) -> Message<'m>,
    ) {
        let callee_state = &mut self.sessions[callee];
        let Some(key) = callee_state.invocations.remove(&invocation) else {
            if callee_state.discarded_invocations.take(invocation) {
                self.stats.late_replies_discarded += 1;
            } else {
                let text = format!("{what} for unknown INVOCATION request id {invocation}");
                self.protocol_violation(callee, text, out);
            }
            return;
        };
        let Some(call) = self.pending.remove(key) else {
            debug_assert!(
                false,
                "callee listed invocation {invocation} without a pending call"
            );
            tracing::error!(?callee, invocation, "pending call missing; reply dropped");
            return;
        };
        let caller = match call.caller {
            Caller::Local(caller) => caller,
            Caller::Remote(remote) => {
                let message = reply(call.caller_request);
                self.reply_to_shard(remote, &message, source, false, out);
                return;
            }
        };
        let caller_state = &mut self.sessions[caller];
        caller_state.calls_waiting.remove(&key);
        let caller_serializer = caller_state.serializer;
        let message = reply(call.caller_request);
        match self
            .outbox
            .frame_forwarding(&message, caller_serializer, source)
        {
            Ok(frame) => {
                out.push(Action::Send {
                    session: caller,
                    frame,
                });
                self.stats.replies_routed += 1;
            }
            Err(encode_error) => {
                self.stats.encode_errors += 1;
                let text = format!(
                    "the callee's answer cannot be sent in the caller's serializer: {encode_error}"
                );
                self.send_error(
                    out,
                    caller,
                    code::CALL,
                    call.caller_request,
                    uri::INVALID_ARGUMENT,
                    text,
                );
            }
        }
    }

    /// CANCEL, honoured in mode `skip` whatever the requested mode (call_canceling is not
    /// announced, so there is no INTERRUPT): the caller gets ERROR `wamp.error.canceled` now and
    /// the callee's eventual answer is discarded. A CANCEL for a finished call is ignored.
    pub(super) fn handle_cancel(&mut self, me: Admitted, request: u64, out: &mut Vec<Action>) {
        let caller = me.key;
        let caller_state = &self.sessions[caller];
        let pending = &self.pending;
        let Some(key) = caller_state.calls_waiting.iter().copied().find(|&key| {
            pending
                .get(key)
                .is_some_and(|call| call.caller_request == request)
        }) else {
            return;
        };
        let call = self.pending.remove(key).expect("found just above");
        self.sessions[caller].calls_waiting.remove(&key);
        // A callee on another shard keeps its invocation; its `Reply` will find no pending
        // entry here and be discarded.
        if let Callee::Local {
            session: callee,
            invocation,
        } = call.callee
        {
            let callee_state = &mut self.sessions[callee];
            callee_state.invocations.remove(&invocation);
            callee_state.discarded_invocations.remember(invocation);
        }
        self.stats.calls_canceled += 1;
        self.send_error(
            out,
            caller,
            code::CALL,
            request,
            uri::CANCELED,
            "canceled by the caller",
        );
    }

    /// Encodes the final answer of a call from another shard for its caller and sends it back
    /// as a `Reply`. An answer the caller's serializer cannot carry becomes ERROR
    /// `wamp.error.invalid_argument`, as locally.
    pub(super) fn reply_to_shard(
        &mut self,
        to: RemoteCaller,
        message: &Message<'_>,
        source: &Bytes,
        canceled: bool,
        out: &mut Vec<Action>,
    ) {
        let RemoteCaller {
            shard,
            call,
            serializer,
        } = to;
        let frame = match self.outbox.frame_forwarding(message, serializer, source) {
            Ok(frame) => frame,
            Err(encode_error) => {
                self.stats.encode_errors += 1;
                let request = match message {
                    Message::Result { request, .. } | Message::Error { request, .. } => *request,
                    _ => 0,
                };
                let text = format!(
                    "the callee's answer cannot be sent in the caller's serializer: {encode_error}"
                );
                let error =
                    outbox::error(code::CALL, request, uri::INVALID_ARGUMENT, text, serializer);
                match self.outbox.frame(&error, serializer) {
                    Ok(frame) => frame,
                    Err(_) => return,
                }
            }
        };
        out.push(Action::ToShard {
            to: shard,
            msg: ShardMsgKind::Reply(Reply {
                call,
                frame,
                canceled,
            })
            .into(),
        });
    }

    /// `Invoke` from the caller's shard: this shard owns the invocation from here on. A callee
    /// that is gone, unregistering, or not yet announced as registered gets the call answered
    /// with `wamp.error.no_such_procedure` (the CALL raced with REGISTER/UNREGISTER/leave).
    pub(super) fn handle_remote_invoke(
        &mut self,
        from: ShardId,
        invoke: Invoke,
        out: &mut Vec<Action>,
    ) {
        let Invoke {
            call,
            caller_request,
            caller_serializer,
            registration,
            callee: callee_ref,
            disclose,
            payload,
        } = invoke;
        let caller = RemoteCaller {
            shard: from,
            call,
            serializer: caller_serializer,
        };
        let callee = callee_ref.key;
        let routable = callee_ref.shard == self.cluster.shard
            && self.sessions.get(callee).is_some_and(|state| {
                state.is(callee_ref.session_id) && state.registrations.contains(&registration)
            });
        if !routable {
            let error = outbox::error(
                code::CALL,
                caller_request,
                uri::NO_SUCH_PROCEDURE,
                "the callee is gone or no longer registered",
                caller_serializer,
            );
            return self.reply_to_shard(caller, &error, &Bytes::new(), false, out);
        }
        let mut details = Dict::new();
        if let Some(identity) = &disclose {
            details.insert("caller", identity.session_id);
            details.insert("caller_authid", Value::Str(Cow::Borrowed(&identity.authid)));
            details.insert(
                "caller_authrole",
                Value::Str(Cow::Borrowed(&identity.authrole)),
            );
        }
        let callee_state = &self.sessions[callee];
        let callee_serializer = callee_state.serializer;
        let invocation = callee_state.peek_invocation_id();
        let message = Message::Invocation {
            request: invocation,
            registration,
            details,
            payload: payload.as_payload(),
        };
        match self
            .outbox
            .frame_forwarding(&message, callee_serializer, &payload.raw)
        {
            Ok(frame) => out.push(Action::Send {
                session: callee,
                frame,
            }),
            Err(encode_error) => {
                self.stats.encode_errors += 1;
                let text = format!(
                    "the arguments cannot be sent to the callee's serializer: {encode_error}"
                );
                let error = outbox::error(
                    code::CALL,
                    caller_request,
                    uri::INVALID_ARGUMENT,
                    text,
                    caller_serializer,
                );
                return self.reply_to_shard(caller, &error, &Bytes::new(), false, out);
            }
        }
        let key = self.pending.insert(
            Caller::Remote(caller),
            caller_request,
            Callee::Local {
                session: callee,
                invocation,
            },
        );
        let callee_state = &mut self.sessions[callee];
        callee_state.last_invocation_id = invocation;
        callee_state.invocations.insert(invocation, key);
        self.stats.calls_routed += 1;
    }

    /// `Reply` from the callee's shard: forward the frame if the caller still waits for it.
    pub(super) fn handle_remote_reply(
        &mut self,
        from: ShardId,
        reply: Reply,
        out: &mut Vec<Action>,
    ) {
        let Reply {
            call,
            frame,
            canceled,
        } = reply;
        let caller = match self.pending.get(call) {
            Some(pending) => match (&pending.caller, &pending.callee) {
                (Caller::Local(caller), Callee::Remote { shard }) if *shard == from => *caller,
                _ => {
                    self.stats.shard_messages_ignored += 1;
                    tracing::warn!(from, "Reply for a call that shard does not own");
                    return;
                }
            },
            // The caller left or canceled: late answer.
            None => {
                self.stats.late_replies_discarded += 1;
                return;
            }
        };
        self.pending.remove(call);
        self.sessions[caller].calls_waiting.remove(&call);
        out.push(Action::Send {
            session: caller,
            frame,
        });
        if canceled {
            self.stats.calls_canceled += 1;
        } else {
            self.stats.replies_routed += 1;
        }
    }
}

/// A received payload and the frame it lies in (a forwarded payload is sliced from it).
#[derive(Copy, Clone)]
pub(super) struct Carried<'m> {
    pub(super) payload: Payload<'m>,
    pub(super) source: &'m Bytes,
}

/// How a CALL is routed, decided while the registry is borrowed.
enum Route {
    To(u64, Registrant),
    Unknown,
    NoUsableCallee,
}
