//! RPC routing (Dealer): REGISTER/UNREGISTER over the realm's [`Registry`], and the hot path
//! CALL -> INVOCATION, YIELD -> RESULT, callee ERROR -> caller ERROR over [`PendingCalls`].
//! Payloads are never decoded here: they travel as spans and `wire::encode` splices (same
//! serializer) or transcodes (different serializers) them.
//!
//! [`Registry`]: super::dealer::Registry
//! [`PendingCalls`]: super::dealer::PendingCalls

use std::borrow::Cow;

use super::dealer::RegisterRefusal;
use super::outbox;
use super::{uri, Action, Router, SessionKey};
use crate::wire::{code, Dict, Message, Payload, Value};

impl Router {
    pub(super) fn handle_register(
        &mut self,
        session: SessionKey,
        request: u64,
        options: &Dict<'_>,
        procedure: &str,
        out: &mut Vec<Action>,
    ) {
        if !self.accept_request_id(session, request, out) {
            return;
        }
        // Options first: a pattern URI (empty components) is only invalid because patterns are
        // not supported, and that is the more useful answer.
        let refusal = if let Some(pattern) = options.get_str("match").filter(|&m| m != "exact") {
            Some((
                uri::OPTION_NOT_ALLOWED,
                format!("pattern-based registration (match={pattern:?}) is not supported"),
            ))
        } else if let Some(policy) = options.get_str("invoke").filter(|&p| p != "single") {
            Some((
                uri::OPTION_NOT_ALLOWED,
                format!("shared registration (invoke={policy:?}) is not supported"),
            ))
        } else if !self.uri_is_valid(procedure) {
            Some((
                uri::INVALID_URI,
                format!("invalid procedure URI {procedure:?}"),
            ))
        } else if procedure == "wamp" || procedure.starts_with("wamp.") {
            Some((
                uri::INVALID_URI,
                format!("procedure {procedure:?}: the wamp. namespace is reserved for the router"),
            ))
        } else {
            None
        };
        let state = &self.sessions[session.0];
        let serializer = state.serializer;
        if let Some((error_uri, text)) = refusal {
            let error = outbox::error(code::REGISTER, request, error_uri, text, serializer);
            self.send(out, session, serializer, &error);
            return;
        }
        let realm = state
            .identity
            .as_ref()
            .expect("established session has an identity")
            .realm;
        let disclose_caller = options.get_bool("disclose_caller").unwrap_or(false);
        let registry = &mut self.realms.get_mut(realm).registry;
        match registry.register(&mut self.scoped_ids, procedure, session, disclose_caller) {
            Ok(registration) => {
                self.sessions[session.0].registrations.insert(registration);
                self.send(
                    out,
                    session,
                    serializer,
                    &Message::Registered {
                        request,
                        registration,
                    },
                );
            }
            Err(RegisterRefusal::ProcedureAlreadyExists) => {
                let text = format!("procedure {procedure:?} is already registered");
                let error = outbox::error(
                    code::REGISTER,
                    request,
                    uri::PROCEDURE_ALREADY_EXISTS,
                    text,
                    serializer,
                );
                self.send(out, session, serializer, &error);
            }
        }
    }

    pub(super) fn handle_unregister(
        &mut self,
        session: SessionKey,
        request: u64,
        registration: u64,
        out: &mut Vec<Action>,
    ) {
        if !self.accept_request_id(session, request, out) {
            return;
        }
        let state = &self.sessions[session.0];
        let serializer = state.serializer;
        let realm = state
            .identity
            .as_ref()
            .expect("established session has an identity")
            .realm;
        if self
            .realms
            .get_mut(realm)
            .registry
            .unregister(registration, session)
            .is_some()
        {
            self.sessions[session.0].registrations.remove(&registration);
            self.send(
                out,
                session,
                serializer,
                &Message::Unregistered {
                    request,
                    details: None,
                },
            );
        } else {
            let text = format!("no registration {registration} owned by this session");
            let error = outbox::error(
                code::UNREGISTER,
                request,
                uri::NO_SUCH_REGISTRATION,
                text,
                serializer,
            );
            self.send(out, session, serializer, &error);
        }
    }

    /// CALL -> INVOCATION to the registered callee (hot path).
    pub(super) fn handle_call(
        &mut self,
        caller: SessionKey,
        request: u64,
        options: &Dict<'_>,
        procedure: &str,
        payload: Payload<'_>,
        out: &mut Vec<Action>,
    ) {
        if !self.accept_request_id(caller, request, out) {
            return;
        }
        let caller_state = &self.sessions[caller.0];
        let caller_serializer = caller_state.serializer;
        let caller_identity = caller_state
            .identity
            .as_ref()
            .expect("established session has an identity");
        let refuse = |error_uri: &'static str, text: String| {
            outbox::error(code::CALL, request, error_uri, text, caller_serializer)
        };
        // Registered procedures passed the same URI check, so only a miss needs validating.
        let Some(registration) = self
            .realms
            .get(caller_identity.realm)
            .registry
            .lookup(procedure)
        else {
            let error = if self.uri_is_valid(procedure) {
                refuse(
                    uri::NO_SUCH_PROCEDURE,
                    format!("no callee registered {procedure:?}"),
                )
            } else {
                refuse(
                    uri::INVALID_URI,
                    format!("invalid procedure URI {procedure:?}"),
                )
            };
            self.send(out, caller, caller_serializer, &error);
            return;
        };
        if caller_state.calls_waiting.len() >= self.config.max_pending_calls_per_session {
            let limit = self.config.max_pending_calls_per_session;
            let error = refuse(
                uri::PENDING_CALL_LIMIT,
                format!("more than {limit} calls pending for this session"),
            );
            self.send(out, caller, caller_serializer, &error);
            return;
        }

        let (registration_id, callee) = (registration.id, registration.callee);
        let disclose =
            registration.disclose_caller || options.get_bool("disclose_me") == Some(true);
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
        let callee_state = &self.sessions[callee.0];
        let callee_serializer = callee_state.serializer;
        let invocation = callee_state.peek_invocation_id();
        let frame = {
            let message = Message::Invocation {
                request: invocation,
                registration: registration_id,
                details,
                payload,
            };
            self.outbox.frame(&message, callee_serializer)
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
                let error = outbox::error(
                    code::CALL,
                    request,
                    uri::INVALID_ARGUMENT,
                    text,
                    caller_serializer,
                );
                self.send(out, caller, caller_serializer, &error);
                return;
            }
        }

        let key = self.pending.insert(caller, request, callee, invocation);
        let callee_state = &mut self.sessions[callee.0];
        callee_state.last_invocation_id = invocation;
        callee_state.invocations.insert(invocation, key);
        self.sessions[caller.0].calls_waiting.insert(key);
        self.stats.calls_routed += 1;
    }

    /// YIELD -> RESULT to the caller (hot path).
    pub(super) fn handle_yield(
        &mut self,
        callee: SessionKey,
        invocation: u64,
        options: &Dict<'_>,
        payload: Payload<'_>,
        out: &mut Vec<Action>,
    ) {
        if options.get_bool("progress") == Some(true) {
            let text = "YIELD.Options.progress needs progressive_call_results, which this router does not announce";
            return self.protocol_violation(callee, text, out);
        }
        let details = Dict::new();
        self.route_reply(callee, invocation, "YIELD", out, |request| {
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
        callee: SessionKey,
        invocation: u64,
        details: Dict<'_>,
        error: &str,
        payload: Payload<'_>,
        out: &mut Vec<Action>,
    ) {
        self.route_reply(callee, invocation, "ERROR", out, |request| Message::Error {
            request_type: code::CALL,
            request,
            details,
            error: Cow::Borrowed(error),
            payload,
        });
    }

    /// Ends the pending call behind `invocation` and sends the reply built by `reply` (given the
    /// caller's request id) to the caller. Late answers are dropped; unknown ones are violations.
    fn route_reply<'m>(
        &mut self,
        callee: SessionKey,
        invocation: u64,
        what: &'static str,
        out: &mut Vec<Action>,
        reply: impl FnOnce(u64) -> Message<'m>,
    ) {
        let callee_state = &mut self.sessions[callee.0];
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
        let caller_state = &mut self.sessions[call.caller.0];
        caller_state.calls_waiting.remove(&key);
        let caller_serializer = caller_state.serializer;
        let message = reply(call.caller_request);
        match self.outbox.frame(&message, caller_serializer) {
            Ok(frame) => {
                out.push(Action::Send {
                    session: call.caller,
                    frame,
                });
                self.stats.replies_routed += 1;
            }
            Err(encode_error) => {
                self.stats.encode_errors += 1;
                let text = format!(
                    "the callee's answer cannot be sent in the caller's serializer: {encode_error}"
                );
                let error = outbox::error(
                    code::CALL,
                    call.caller_request,
                    uri::INVALID_ARGUMENT,
                    text,
                    caller_serializer,
                );
                self.send(out, call.caller, caller_serializer, &error);
            }
        }
    }

    /// CANCEL, honoured in mode `skip` whatever the requested mode (call_canceling is not
    /// announced, so there is no INTERRUPT): the caller gets ERROR `wamp.error.canceled` now and
    /// the callee's eventual answer is discarded. A CANCEL for a finished call is ignored.
    pub(super) fn handle_cancel(
        &mut self,
        caller: SessionKey,
        request: u64,
        out: &mut Vec<Action>,
    ) {
        let caller_state = &self.sessions[caller.0];
        let serializer = caller_state.serializer;
        let pending = &self.pending;
        let Some(key) = caller_state.calls_waiting.iter().copied().find(|&key| {
            pending
                .get(key)
                .is_some_and(|call| call.caller_request == request)
        }) else {
            return;
        };
        let call = self.pending.remove(key).expect("found just above");
        self.sessions[caller.0].calls_waiting.remove(&key);
        let callee_state = &mut self.sessions[call.callee.0];
        callee_state.invocations.remove(&call.invocation);
        callee_state.discarded_invocations.remember(call.invocation);
        self.stats.calls_canceled += 1;
        let error = outbox::error(
            code::CALL,
            request,
            uri::CANCELED,
            "canceled by the caller",
            serializer,
        );
        self.send(out, caller, serializer, &error);
    }
}
