//! RPC routing (Dealer): REGISTER/UNREGISTER over the realm's [`Registry`], and the hot path
//! CALL -> INVOCATION, YIELD -> RESULT, callee ERROR -> caller ERROR over [`PendingCalls`],
//! with the Advanced Profile around it: progressive results and invocations, timeouts,
//! CANCEL and INTERRUPT, re-routing on `wamp.error.unavailable`, caller disclosure, pattern
//! matches and pass-through options (the rules: "Choices" in `router/mod.rs`). Payloads are
//! never decoded here: they travel as spans and `wire::encode` splices (same serializer) or
//! transcodes (different serializers) them.
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
use super::dealer::{
    CallFlags, Callee, CalleeOptions, Caller, CancelMode, FinishedCall, MatchPolicy, PendingKey,
    Registrant, RemoteCaller,
};
use super::outbox;
use super::session::PeerFeatures;
use super::shard_msg::{
    Disclosed, Interrupt, Invoke, InvokeChunk, PublicIdentity, Reply, SessionRef, ShardMsgKind,
};
use super::timers::Timeout;
use super::{uri, Action, Millis, Router, SessionKey, ShardId};
use crate::wire::{code, Dict, EncodeError, Frame, Message, OwnedPayload, Payload, Value};

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
            options: CalleeOptions {
                disclose_caller: options.get_bool("disclose_caller") == Some(true),
                forward_timeout: options.get_bool("forward_timeout") == Some(true),
                features: self.sessions[me.key].features,
            },
            ready: false,
        };
        let matching = MatchPolicy::parse(options.get_str("match"));
        self.start_register(request, me.realm, procedure, matching, callee, invoke, out);
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
        // The caller's role may disclose it (a permission's `disclose_caller`).
        let asked = CallAsk::read(options, me.disclose);
        if asked.passthru
            && !self.sessions[caller]
                .features
                .has(PeerFeatures::CALLER_PASSTHRU)
        {
            let text = "ppt_* options from a caller that did not announce payload_passthru_mode";
            return self.protocol_violation(caller, text, out);
        }
        let refuse = |error_uri: &'static str, text: String| {
            outbox::error(code::CALL, request, error_uri, text, caller_serializer)
        };
        // The replica may list a local callee whose REGISTERED has not gone out yet, or who is
        // unregistering or gone (the owner's removal is on its way): only the session's own set
        // says it may be invoked, so such a callee is skipped. A remote callee's shard makes the
        // same check when the `Invoke` arrives.
        let shard = self.cluster.shard;
        let sessions = &self.sessions;
        let realm = self.realms.get_mut(me.realm);
        let realm_discloses = realm.disclose_caller;
        let route = match realm.registry.route_mut(procedure) {
            None => Route::Unknown,
            Some((registration, by_pattern)) => {
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
                let shared = registration.callees.len() > 1;
                match registration.pick(&mut self.random_ids, usable) {
                    Some(index) => Route::To(Target {
                        registration: id,
                        callee: registration.callees[index],
                        disclose: false,
                        procedure: by_pattern.then_some(procedure),
                        passthru: None,
                        shared,
                    }),
                    None => Route::NoUsableCallee,
                }
            }
        };
        let mut target = match route {
            Route::To(target) => target,
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
        let callee = target.callee;
        if (asked.passthru || asked.progress)
            && !self.prepare_advanced_call(&mut target, &asked, options, caller, request, out)
        {
            return;
        }
        target.disclose = callee.options.disclose_caller || realm_discloses || asked.disclose_me;
        let flags = CallFlags::default()
            .with(CallFlags::RECEIVE_PROGRESS, asked.receive_progress)
            .with(CallFlags::MORE_CHUNKS, asked.progress)
            .with(
                CallFlags::CALLEE_CANCELS,
                callee.options.features.has(PeerFeatures::CALLEE_CANCELING),
            );
        let router_timeout = asked.router_timeout(callee.options);
        if callee.session.shard != self.cluster.shard {
            let call = NewCall {
                caller,
                request,
                flags,
                router_timeout,
            };
            return self.call_remote(call, &target, &asked, payload, out);
        }
        let sent = self.send_invocation(caller, &target, &asked, payload, source, out);
        let invocation = match sent {
            Ok(invocation) => invocation,
            Err(error) => {
                let text =
                    format!("the arguments cannot be sent to the callee's serializer: {error}");
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
        };
        let key = self.pending.insert(
            Caller::Local(caller),
            request,
            Callee::Local {
                session: callee.session.key,
                invocation,
            },
            flags,
            self.telemetry.now_us,
        );
        self.sessions[callee.session.key]
            .invocations
            .insert(invocation, key);
        self.sessions[caller].calls_waiting.insert(request, key);
        self.arm_call_timeout(key, router_timeout);
        if asked.progress {
            self.note_stream(key, target.registration);
        }
        if target.shared {
            self.keep_for_reroute(key, &target, &asked, payload);
        }
        self.stats.calls_routed += 1;
    }

    /// The checks and options of a CALL using progressive invocations or pass-through payloads
    /// (the callee must take them); false when the CALL was answered here.
    #[cold]
    fn prepare_advanced_call(
        &mut self,
        target: &mut Target<'_>,
        asked: &CallAsk,
        options: &Dict<'_>,
        caller: SessionKey,
        request: u64,
        out: &mut Vec<Action>,
    ) -> bool {
        let features = target.callee.options.features;
        if asked.passthru {
            if !features.has(PeerFeatures::CALLEE_PASSTHRU) {
                let text = "the callee does not take pass-through payloads (payload_passthru_mode)";
                self.send_error(
                    out,
                    caller,
                    code::CALL,
                    request,
                    uri::FEATURE_NOT_SUPPORTED,
                    text,
                );
                return false;
            }
            target.passthru = Some(passthru_options(options));
        }
        if asked.progress {
            // A streamed call goes to one callee for all its chunks: never re-routed.
            target.shared = false;
            if !features.has(PeerFeatures::CALLEE_PROGRESSIVE_INVOCATIONS)
                || !features.has(PeerFeatures::CALLEE_CANCELING)
            {
                self.refuse_stream(caller, request, out);
                return false;
            }
        }
        true
    }

    /// A CALL whose callee lives on another shard: the caller's entry here, one `Invoke` there.
    #[inline(never)]
    fn call_remote(
        &mut self,
        call: NewCall,
        target: &Target<'_>,
        asked: &CallAsk,
        payload: Payload<'_>,
        out: &mut Vec<Action>,
    ) {
        let NewCall {
            caller,
            request,
            flags,
            router_timeout,
        } = call;
        let key = self.pending.insert(
            Caller::Local(caller),
            request,
            Callee::Remote {
                shard: target.callee.session.shard,
            },
            flags,
            self.telemetry.now_us,
        );
        self.sessions[caller].calls_waiting.insert(request, key);
        self.arm_call_timeout(key, router_timeout);
        if asked.progress {
            self.note_stream(key, target.registration);
        }
        if target.shared {
            self.keep_for_reroute(key, target, asked, payload);
        }
        self.send_invoke(key, caller, target, asked, payload.to_owned_payload(), out);
    }

    /// INVOCATION to `target`'s callee, a session of this shard, for a call of `caller` (also
    /// of this shard); returns its invocation id, which the callee's session has consumed, or
    /// why the payload cannot be sent in the callee's serializer (counted).
    #[inline]
    fn send_invocation(
        &mut self,
        caller: SessionKey,
        target: &Target<'_>,
        asked: &CallAsk,
        payload: Payload<'_>,
        source: &Bytes,
        out: &mut Vec<Action>,
    ) -> Result<u64, EncodeError> {
        let caller_identity = if target.disclose {
            self.sessions[caller].identity()
        } else {
            None
        };
        let callee = target.callee;
        let callee_key = callee.session.key;
        let callee_state = &self.sessions[callee_key];
        let callee_serializer = callee_state.serializer;
        let invocation = callee_state.peek_invocation_id();
        let mut message = Message::Invocation {
            request: invocation,
            registration: target.registration,
            details: Dict::new(),
            payload,
        };
        // The Details are filled inside the message: a Dict built beside it and moved in is
        // copied with wider loads than it was stored with, a store-forwarding stall per call.
        if let Message::Invocation { details, .. } = &mut message {
            invocation_details(
                details,
                caller_identity,
                asked.receive_progress,
                asked.forwarded_timeout(callee.options),
                target.procedure,
                asked.progress,
                callee_state.features,
            );
            add_passthru(details, target.passthru.as_deref());
        }
        let frame = self
            .outbox
            .frame_forwarding(&message, callee_serializer, source);
        // Only the Details own memory: dropping them alone spares the generic drop of every
        // message type.
        if let Message::Invocation { details, .. } = message {
            drop(details);
        }
        match frame {
            Ok(frame) => {
                out.push(Action::Send {
                    session: callee_key,
                    frame,
                });
                self.sessions[callee_key].consume_invocation_id(invocation);
                Ok(invocation)
            }
            Err(error) => {
                self.stats.encode_errors += 1;
                Err(error)
            }
        }
    }

    /// The `Invoke` for the call behind `key` to the shard of `target`'s callee.
    fn send_invoke(
        &mut self,
        key: PendingKey,
        caller: SessionKey,
        target: &Target<'_>,
        asked: &CallAsk,
        payload: OwnedPayload,
        out: &mut Vec<Action>,
    ) {
        let caller_state = &self.sessions[caller];
        let identity = caller_state.identity().expect("callers are established");
        let disclose = target.disclose.then(|| PublicIdentity::of(identity));
        let callee = target.callee;
        let invoke = Invoke {
            call: key,
            caller_request: self.pending.get(key).map_or(0, |call| call.caller_request),
            caller_serializer: caller_state.serializer,
            registration: target.registration,
            callee: callee.session,
            disclose,
            procedure: target.procedure.map(Box::from),
            passthru: target.passthru.clone(),
            receive_progress: asked.receive_progress,
            progress: asked.progress,
            timeout: asked.forwarded_timeout(callee.options),
            payload,
        };
        out.push(Action::ToShard {
            to: callee.session.shard,
            msg: ShardMsgKind::Invoke(invoke).into(),
        });
    }

    /// Keeps what re-routing the call behind `key` to another callee of its shared
    /// registration needs (call_reroute): the arguments, the asked options, who was tried.
    #[cold]
    fn keep_for_reroute(
        &mut self,
        key: PendingKey,
        target: &Target<'_>,
        asked: &CallAsk,
        payload: Payload<'_>,
    ) {
        if let Some(call) = self.pending.get_mut(key) {
            call.set_reroute(Reroute {
                payload: payload.to_owned_payload(),
                registration: target.registration,
                procedure: target.procedure.map(Box::from),
                passthru: target.passthru.clone(),
                asked: *asked,
                tried: vec![target.callee.session],
            });
        }
    }

    /// The callee of the call behind `key` answered `wamp.error.unavailable`: the call goes to
    /// the next callee of its registration by the registration's policy, skipping those tried;
    /// with none left (or a registration of one callee) the caller gets
    /// `wamp.error.no_available_callee`.
    fn reroute(&mut self, key: PendingKey, out: &mut Vec<Action>) {
        let Some(call) = self.pending.get_mut(key) else {
            return;
        };
        let Caller::Local(caller) = call.caller else {
            debug_assert!(false, "re-routing happens on the caller's shard");
            return;
        };
        let Some(mut reroute) = call.take_reroute() else {
            return self.no_available_callee(key, out);
        };
        let Some(realm) = self.sessions[caller].identity().map(|i| i.realm) else {
            return;
        };
        let shard = self.cluster.shard;
        let sessions = &self.sessions;
        let realm = self.realms.get_mut(realm);
        let realm_discloses = realm.disclose_caller;
        let Some(registration) = realm.registry.get_mut(reroute.registration) else {
            return self.no_available_callee(key, out);
        };
        let id = registration.id;
        let usable = |candidate: &Registrant| {
            !reroute.tried.contains(&candidate.session)
                && (candidate.session.shard != shard
                    || (candidate.ready
                        && sessions
                            .get(candidate.session.key)
                            .is_some_and(|state| state.registrations.contains(&id))))
        };
        let Some(index) = registration.pick(&mut self.random_ids, usable) else {
            return self.no_available_callee(key, out);
        };
        let callee = registration.callees[index];
        reroute.tried.push(callee.session);
        self.stats.calls_rerouted += 1;
        let asked = reroute.asked;
        let procedure = reroute.procedure.clone();
        let passthru = reroute.passthru.clone();
        if passthru.is_some() && !callee.options.features.has(PeerFeatures::CALLEE_PASSTHRU) {
            let text = "the next callee does not take pass-through payloads";
            return self.abandon_call(key, uri::FEATURE_NOT_SUPPORTED, text, None, None, out);
        }
        let target = Target {
            registration: id,
            callee,
            disclose: callee.options.disclose_caller || realm_discloses || asked.disclose_me,
            procedure: procedure.as_deref(),
            passthru,
            shared: true,
        };
        let flags_cancel = callee.options.features.has(PeerFeatures::CALLEE_CANCELING);
        if callee.session.shard != shard {
            let payload = reroute.payload.clone();
            if let Some(call) = self.pending.get_mut(key) {
                call.callee = Callee::Remote {
                    shard: callee.session.shard,
                };
                call.flags.set(CallFlags::CALLEE_CANCELS, flags_cancel);
                call.set_reroute(reroute);
            }
            return self.send_invoke(key, caller, &target, &asked, payload, out);
        }
        let payload = reroute.payload.clone();
        let sent = self.send_invocation(
            caller,
            &target,
            &asked,
            payload.as_payload(),
            &payload.raw,
            out,
        );
        let invocation = match sent {
            Ok(invocation) => invocation,
            Err(error) => {
                let text = format!(
                    "the arguments cannot be sent to the next callee's serializer: {error}"
                );
                self.abandon_call(key, uri::INVALID_ARGUMENT, text, None, None, out);
                return;
            }
        };
        self.sessions[callee.session.key]
            .invocations
            .insert(invocation, key);
        if let Some(call) = self.pending.get_mut(key) {
            call.callee = Callee::Local {
                session: callee.session.key,
                invocation,
            };
            call.flags.set(CallFlags::CALLEE_CANCELS, flags_cancel);
            call.set_reroute(reroute);
        }
    }

    /// The callee of the call behind `key` (on this shard) answered `wamp.error.unavailable`:
    /// re-routed here when the caller is here too, else by the caller's shard.
    #[cold]
    fn callee_unavailable(&mut self, key: PendingKey, out: &mut Vec<Action>) {
        let caller = self.pending.get(key).map(|call| call.caller);
        match caller {
            Some(Caller::Local(_)) => self.reroute(key, out),
            Some(Caller::Remote(remote)) => {
                let call = self.finish_call(key).expect("looked up above");
                let error = outbox::error(
                    code::CALL,
                    call.caller_request,
                    uri::UNAVAILABLE,
                    "the callee is unavailable",
                    remote.serializer,
                );
                self.reply_to_shard(remote, &error, &Bytes::new(), Answer::Unavailable, out);
            }
            None => {}
        }
    }

    /// Every callee of the call behind `key` said `wamp.error.unavailable`.
    fn no_available_callee(&mut self, key: PendingKey, out: &mut Vec<Action>) {
        let text = "every callee of the procedure answered wamp.error.unavailable";
        self.abandon_call(key, uri::NO_AVAILABLE_CALLEE, text, None, None, out);
    }

    /// Arms the router-side timeout of the call behind caller entry `key` (0: none).
    #[inline]
    fn arm_call_timeout(&mut self, key: PendingKey, timeout: Millis) {
        if timeout > 0 {
            self.rearm_call_timeout(key, timeout);
        }
    }

    /// (Re)starts the timeout of `key`: at the CALL, and after every progressive result, since
    /// the timeout bounds each gap, not the whole call (digest §9.2).
    #[cold]
    fn rearm_call_timeout(&mut self, key: PendingKey, timeout: Millis) {
        let at = self.now.saturating_add(timeout);
        let timer = self.timers.arm(at, Timeout::Call { call: key });
        if let Some(call) = self.pending.get_mut(key) {
            if let Some((old, _)) = call.set_timeout(Some((timer, timeout))) {
                self.timers.cancel(old);
            }
        }
    }

    /// Keeps the registration of streamed call `key` for its later chunks.
    #[cold]
    fn note_stream(&mut self, key: PendingKey, registration: u64) {
        if let Some(call) = self.pending.get_mut(key) {
            call.set_registration(registration);
        }
    }

    /// Removes a pending call the caller has read, with its timer.
    #[inline]
    fn end_call(&mut self, key: PendingKey) {
        if let Some((call, timer)) = self.pending.remove(key) {
            if let Some(timer) = timer {
                self.timers.cancel(timer);
            }
            if let Caller::Local(_) = call.caller {
                self.time_call(call.started_us);
            }
        }
    }

    /// Takes a pending call out, with its timer.
    #[inline]
    pub(super) fn finish_call(&mut self, key: PendingKey) -> Option<FinishedCall> {
        let (call, timer) = self.pending.remove(key)?;
        if let Some(timer) = timer {
            self.timers.cancel(timer);
        }
        if let Caller::Local(_) = call.caller {
            self.time_call(call.started_us);
        }
        Some(call)
    }

    /// The first chunk of a streamed call for a callee that did not announce
    /// progressive_call_invocations (and call_canceling, which the spec requires with it).
    #[cold]
    fn refuse_stream(&mut self, caller: SessionKey, request: u64, out: &mut Vec<Action>) {
        let text = "the callee does not take progressive call invocations";
        self.send_error(
            out,
            caller,
            code::CALL,
            request,
            uri::FEATURE_NOT_SUPPORTED,
            text,
        );
    }

    /// The next chunk of the streamed call `request` of the caller (admission found it
    /// pending): to the callee the first chunk went to, under the same invocation id.
    #[cold]
    pub(super) fn handle_call_chunk(
        &mut self,
        me: Admitted,
        request: u64,
        options: &Dict<'_>,
        carried: Carried<'_>,
        out: &mut Vec<Action>,
    ) {
        let progress = options.get_bool("progress") == Some(true);
        let Some(&key) = self.sessions[me.key].calls_waiting.get(&request) else {
            return;
        };
        let Some(call) = self.pending.get_mut(key) else {
            return;
        };
        call.flags.set(CallFlags::MORE_CHUNKS, progress);
        let registration = call.registration();
        match call.callee {
            Callee::Local {
                session,
                invocation,
            } => {
                let chunk = Chunk {
                    registration,
                    invocation,
                    progress,
                };
                self.send_chunk(key, session, chunk, carried.payload, carried.source, out);
            }
            Callee::Remote { shard } => {
                out.push(Action::ToShard {
                    to: shard,
                    msg: ShardMsgKind::InvokeChunk(InvokeChunk {
                        call: key,
                        progress,
                        payload: carried.payload.to_owned_payload(),
                    })
                    .into(),
                });
                self.stats.call_chunks_routed += 1;
            }
        }
    }

    /// `InvokeChunk` from the caller's shard: the next chunk for the callee here, unless the
    /// invocation is over.
    pub(super) fn handle_remote_chunk(
        &mut self,
        from: ShardId,
        msg: InvokeChunk,
        out: &mut Vec<Action>,
    ) {
        let Some(key) = self.pending.find_remote(from, msg.call) else {
            self.stats.late_call_chunks_discarded += 1;
            return;
        };
        let Some(call) = self.pending.get(key) else {
            return;
        };
        let Callee::Local {
            session,
            invocation,
        } = call.callee
        else {
            return;
        };
        let chunk = Chunk {
            registration: call.registration(),
            invocation,
            progress: msg.progress,
        };
        let payload = msg.payload;
        self.send_chunk(key, session, chunk, payload.as_payload(), &payload.raw, out);
    }

    /// One chunk of a streamed call as INVOCATION to `callee`; a chunk the callee's serializer
    /// cannot carry ends the call with `wamp.error.invalid_argument`.
    fn send_chunk(
        &mut self,
        key: PendingKey,
        callee: SessionKey,
        chunk: Chunk,
        payload: Payload<'_>,
        source: &Bytes,
        out: &mut Vec<Action>,
    ) {
        let mut details = Dict::new();
        if chunk.progress {
            details.insert("progress", true);
        }
        let message = Message::Invocation {
            request: chunk.invocation,
            registration: chunk.registration,
            details,
            payload,
        };
        let serializer = self.sessions[callee].serializer;
        match self.outbox.frame_forwarding(&message, serializer, source) {
            Ok(frame) => {
                out.push(Action::Send {
                    session: callee,
                    frame,
                });
                self.stats.call_chunks_routed += 1;
            }
            Err(error) => {
                let what = "a chunk cannot be sent to the callee's serializer";
                self.abandon_unencodable(key, what, &error, out);
            }
        }
    }

    /// YIELD -> RESULT to the caller (hot path). A progressive YIELD becomes a progressive
    /// RESULT and leaves the call pending.
    pub(super) fn handle_yield(
        &mut self,
        me: Admitted,
        invocation: u64,
        options: &Dict<'_>,
        payload: Payload<'_>,
        source: &Bytes,
        out: &mut Vec<Action>,
    ) {
        // Most YIELDs carry no options at all: their RESULT is built with empty Details, so
        // the closure owns nothing that needs dropping.
        if options.is_empty() {
            return self.route_reply(me.key, invocation, Answer::Final, source, out, |request| {
                Message::Result {
                    request,
                    details: Dict::new(),
                    payload,
                }
            });
        }
        self.yield_with_options(me, invocation, options, payload, source, out);
    }

    /// A YIELD with options (`progress`, `ppt_*`).
    #[cold]
    fn yield_with_options(
        &mut self,
        me: Admitted,
        invocation: u64,
        options: &Dict<'_>,
        payload: Payload<'_>,
        source: &Bytes,
        out: &mut Vec<Action>,
    ) {
        let Some((details, progress)) = self.yield_details(me.key, options, out) else {
            return;
        };
        let answer = if progress {
            Answer::Progress
        } else {
            Answer::Final
        };
        self.route_reply(me.key, invocation, answer, source, out, |request| {
            Message::Result {
                request,
                details,
                payload,
            }
        });
    }

    /// RESULT.Details from YIELD.Options (`progress`, `ppt_*`), and whether it is progressive;
    /// `None` after a violation (pass-through options from a callee that did not announce it).
    #[cold]
    fn yield_details<'o>(
        &mut self,
        callee: SessionKey,
        options: &Dict<'o>,
        out: &mut Vec<Action>,
    ) -> Option<(Dict<'o>, bool)> {
        let mut details = Dict::new();
        let mut progress = false;
        for (key, value) in options.iter() {
            if key == "progress" {
                progress = value.as_bool() == Some(true);
            } else if key.starts_with("ppt_") {
                details.insert(key.to_string(), value.clone());
            }
        }
        if !details.is_empty()
            && !self.sessions[callee]
                .features
                .has(PeerFeatures::CALLEE_PASSTHRU)
        {
            let text = "ppt_* options from a callee that did not announce payload_passthru_mode";
            self.protocol_violation(callee, text, out);
            return None;
        }
        if progress {
            details.insert("progress", true);
        }
        Some((details, progress))
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
        let answer = if error == uri::UNAVAILABLE {
            Answer::Unavailable
        } else {
            Answer::Final
        };
        self.route_reply(me.key, invocation, answer, source, out, |request| {
            Message::Error {
                request_type: code::CALL,
                request,
                details,
                error: Cow::Borrowed(error),
                payload,
            }
        });
    }

    /// Sends the answer built by `reply` (given the caller's request id) for the call behind
    /// `invocation` to its caller; a final answer ends the call. Late answers are dropped;
    /// unknown ones are violations.
    fn route_reply<'m>(
        &mut self,
        callee: SessionKey,
        invocation: u64,
        answer: Answer,
        source: &Bytes,
        out: &mut Vec<Action>,
        reply: impl FnOnce(u64) -> Message<'m>,
    ) {
        let callee_state = &mut self.sessions[callee];
        let found = match answer {
            Answer::Progress => callee_state.invocations.get(&invocation).copied(),
            Answer::Final | Answer::Canceled | Answer::Unavailable => {
                callee_state.invocations.remove(&invocation)
            }
        };
        let Some(key) = found else {
            // A progressive answer leaves the id remembered for the final one.
            let late = match answer {
                Answer::Progress => callee_state.discarded_invocations.contains(invocation),
                Answer::Final | Answer::Canceled | Answer::Unavailable => {
                    callee_state.discarded_invocations.take(invocation)
                }
            };
            if late {
                self.stats.late_replies_discarded += 1;
            } else {
                let what = answer.name();
                let text = format!("{what} for unknown INVOCATION request id {invocation}");
                self.protocol_violation(callee, text, out);
            }
            return;
        };
        if answer == Answer::Progress {
            return self.route_progress(key, source, out, reply);
        }
        if answer == Answer::Unavailable {
            let call = self.pending.get(key).expect("listed by its callee");
            // A call being killed takes the callee's answer, whatever it is.
            if !call.flags.has(CallFlags::KILLING) {
                return self.callee_unavailable(key, out);
            }
        }
        // Read in place, then removed: the entry is not moved through the stack on the
        // hot path (measured: a stall of the store buffer, see the commit).
        let Some(call) = self.pending.get(key) else {
            debug_assert!(
                false,
                "callee listed invocation {invocation} without a pending call"
            );
            tracing::error!(?callee, invocation, "pending call missing; reply dropped");
            return;
        };
        let (caller, caller_request) = (call.caller, call.caller_request);
        self.end_call(key);
        let caller = match caller {
            Caller::Local(caller) => caller,
            Caller::Remote(remote) => {
                let message = reply(caller_request);
                self.reply_to_shard(remote, &message, source, Answer::Final, out);
                return;
            }
        };
        let caller_state = &mut self.sessions[caller];
        caller_state.calls_waiting.remove(&caller_request);
        let caller_serializer = caller_state.serializer;
        let message = reply(caller_request);
        let frame = self
            .outbox
            .frame_forwarding(&message, caller_serializer, source);
        // As in `send_invocation`: a RESULT drops its Details alone.
        if let Message::Result { details, .. } = message {
            drop(details);
        }
        match frame {
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
                    caller_request,
                    uri::INVALID_ARGUMENT,
                    text,
                );
            }
        }
    }

    /// A progressive result of the call behind `key` (its callee is on this shard): to the
    /// caller if it asked for them and has not asked to kill the call, else dropped.
    #[cold]
    fn route_progress<'m>(
        &mut self,
        key: PendingKey,
        source: &Bytes,
        out: &mut Vec<Action>,
        reply: impl FnOnce(u64) -> Message<'m>,
    ) {
        let call = self.pending.get(key).expect("listed by its callee");
        if !call.flags.has(CallFlags::RECEIVE_PROGRESS) || call.flags.has(CallFlags::KILLING) {
            self.stats.progress_results_dropped += 1;
            return;
        }
        let (caller, request, timeout) = (call.caller, call.caller_request, call.timeout());
        let message = reply(request);
        let what = "a progressive result cannot be sent in the caller's serializer";
        let caller = match caller {
            Caller::Remote(remote) => {
                // Encoded here, where the call can still be ended for both sides; the caller's
                // shard counts what it forwards and rearms the call's timeout.
                match self
                    .outbox
                    .frame_forwarding(&message, remote.serializer, source)
                {
                    Ok(frame) => self.push_reply(remote, frame, Answer::Progress, out),
                    Err(error) => self.abandon_unencodable(key, what, &error, out),
                }
                return;
            }
            Caller::Local(caller) => caller,
        };
        let serializer = self.sessions[caller].serializer;
        match self.outbox.frame_forwarding(&message, serializer, source) {
            Ok(frame) => {
                out.push(Action::Send {
                    session: caller,
                    frame,
                });
                self.stats.progress_results_routed += 1;
                if let Some((_, gap)) = timeout {
                    self.rearm_call_timeout(key, gap);
                }
            }
            Err(error) => self.abandon_unencodable(key, what, &error, out),
        }
    }

    /// A part of the call behind `key` that one side's serializer cannot carry (`what`) ends
    /// the call: ERROR `wamp.error.invalid_argument` to the caller, INTERRUPT to the callee.
    #[cold]
    fn abandon_unencodable(
        &mut self,
        key: PendingKey,
        what: &str,
        error: &EncodeError,
        out: &mut Vec<Action>,
    ) {
        self.stats.encode_errors += 1;
        let text = format!("{what}: {error}");
        let interrupt = Some(CancelMode::KillNoWait);
        self.abandon_call(key, uri::INVALID_ARGUMENT, text, interrupt, None, out);
    }

    /// CANCEL (call_canceling) of the caller's pending call `request`, by the mode the caller
    /// asked (absent: `killnowait`; a callee that did not announce call_canceling: `skip`). A
    /// CANCEL for a finished call, or repeated while a `kill` is under way, is ignored.
    pub(super) fn handle_cancel(
        &mut self,
        me: Admitted,
        request: u64,
        options: &Dict<'_>,
        out: &mut Vec<Action>,
    ) {
        let Some(&key) = self.sessions[me.key].calls_waiting.get(&request) else {
            return;
        };
        let Some(call) = self.pending.get_mut(key) else {
            debug_assert!(false, "a waiting call without its entry");
            return;
        };
        if call.flags.has(CallFlags::KILLING) {
            return;
        }
        let mode = match CancelMode::parse(options.get_str("mode")) {
            _ if !call.flags.has(CallFlags::CALLEE_CANCELS) => CancelMode::Skip,
            mode => mode,
        };
        self.stats.calls_canceled += 1;
        match mode {
            CancelMode::Kill => {
                call.flags.set(CallFlags::KILLING, true);
                self.interrupt_callee(key, CancelMode::Kill, None, out);
            }
            CancelMode::Skip => {
                let text = "canceled by the caller (mode skip)";
                self.abandon_call(key, uri::CANCELED, text, None, None, out);
            }
            CancelMode::KillNoWait => {
                let text = "canceled by the caller";
                let interrupt = Some(CancelMode::KillNoWait);
                self.abandon_call(key, uri::CANCELED, text, interrupt, None, out);
            }
        }
    }

    /// The router-side timeout of the call behind `key` passed: ERROR `wamp.error.timeout` to
    /// the caller and INTERRUPT to the callee, as a `killnowait` cancel (digest §9.2).
    pub(super) fn call_timed_out(&mut self, key: PendingKey, out: &mut Vec<Action>) {
        let Some(call) = self.pending.get_mut(key) else {
            return;
        };
        let Some((_, timeout)) = call.set_timeout(None) else {
            return;
        };
        self.stats.calls_timed_out += 1;
        let text = format!("the callee did not answer within the call's timeout of {timeout} ms");
        let interrupt = Some(CancelMode::KillNoWait);
        self.abandon_call(key, uri::TIMEOUT, text, interrupt, Some(uri::TIMEOUT), out);
    }

    /// Ends the call behind `key` now: ERROR `error_uri` to its caller, the callee's later
    /// answer discarded, and INTERRUPT in `interrupt` mode to the callee when one is given and
    /// the callee can take it.
    fn abandon_call(
        &mut self,
        key: PendingKey,
        error_uri: &'static str,
        text: impl Into<Cow<'static, str>>,
        interrupt: Option<CancelMode>,
        reason: Option<&'static str>,
        out: &mut Vec<Action>,
    ) {
        if let Some(mode) = interrupt {
            self.interrupt_callee(key, mode, reason, out);
        }
        let Some(call) = self.finish_call(key) else {
            return;
        };
        if let Callee::Local {
            session: callee,
            invocation,
        } = call.callee
        {
            let callee_state = &mut self.sessions[callee];
            callee_state.invocations.remove(&invocation);
            callee_state.discarded_invocations.remember(invocation);
        }
        match call.caller {
            Caller::Local(caller) => {
                self.sessions[caller]
                    .calls_waiting
                    .remove(&call.caller_request);
                self.send_error(
                    out,
                    caller,
                    code::CALL,
                    call.caller_request,
                    error_uri,
                    text,
                );
            }
            Caller::Remote(remote) => {
                let error = outbox::error(
                    code::CALL,
                    call.caller_request,
                    error_uri,
                    text,
                    remote.serializer,
                );
                self.reply_to_shard(remote, &error, &Bytes::new(), Answer::Final, out);
            }
        }
    }

    /// Sends INTERRUPT for the call behind `key` to its callee (through the callee's shard when
    /// it lives elsewhere), if the callee announced call_canceling.
    pub(super) fn interrupt_callee(
        &mut self,
        key: PendingKey,
        mode: CancelMode,
        reason: Option<&'static str>,
        out: &mut Vec<Action>,
    ) {
        let Some(call) = self.pending.get(key) else {
            return;
        };
        if !call.flags.has(CallFlags::CALLEE_CANCELS) {
            return;
        }
        match call.callee {
            Callee::Local {
                session,
                invocation,
            } => {
                if self
                    .sessions
                    .get(session)
                    .is_some_and(|s| s.is_established())
                {
                    let serializer = self.sessions[session].serializer;
                    let message = interrupt(invocation, mode, reason);
                    self.send(out, session, serializer, &message);
                }
            }
            Callee::Remote { shard } => out.push(Action::ToShard {
                to: shard,
                msg: ShardMsgKind::Interrupt(Interrupt {
                    call: key,
                    mode,
                    reason,
                })
                .into(),
            }),
        }
    }

    /// `Interrupt` from the caller's shard for a call whose callee lives here: INTERRUPT to the
    /// callee; with `killnowait` (or `skip`) the invocation is forgotten and its answer will be
    /// discarded. Nothing when the callee has answered already (the answer is on its way).
    pub(super) fn handle_remote_interrupt(
        &mut self,
        from: ShardId,
        msg: Interrupt,
        out: &mut Vec<Action>,
    ) {
        let Some(key) = self.pending.find_remote(from, msg.call) else {
            return;
        };
        self.interrupt_callee(key, msg.mode, msg.reason, out);
        match msg.mode {
            CancelMode::Kill => {
                if let Some(call) = self.pending.get_mut(key) {
                    call.flags.set(CallFlags::KILLING, true);
                }
            }
            CancelMode::KillNoWait | CancelMode::Skip => {
                let Some(call) = self.finish_call(key) else {
                    return;
                };
                if let Callee::Local {
                    session,
                    invocation,
                } = call.callee
                {
                    let callee_state = &mut self.sessions[session];
                    callee_state.invocations.remove(&invocation);
                    callee_state.discarded_invocations.remember(invocation);
                }
            }
        }
    }

    /// Encodes an answer of a call from another shard for its caller and sends it back as a
    /// `Reply`. An answer the caller's serializer cannot carry becomes ERROR
    /// `wamp.error.invalid_argument`, as locally. (Progressive results do not come here: one
    /// that cannot be encoded ends the call for both sides, see `route_progress`.)
    pub(super) fn reply_to_shard(
        &mut self,
        to: RemoteCaller,
        message: &Message<'_>,
        source: &Bytes,
        answer: Answer,
        out: &mut Vec<Action>,
    ) {
        let serializer = to.serializer;
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
        self.push_reply(to, frame, answer, out);
    }

    /// Sends an encoded answer to the shard of the remote caller `to`.
    fn push_reply(
        &mut self,
        to: RemoteCaller,
        frame: Frame,
        answer: Answer,
        out: &mut Vec<Action>,
    ) {
        out.push(Action::ToShard {
            to: to.shard,
            msg: ShardMsgKind::Reply(Reply {
                call: to.call,
                frame,
                answer,
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
            procedure,
            passthru,
            receive_progress,
            progress,
            timeout,
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
            return self.reply_to_shard(caller, &error, &Bytes::new(), Answer::Final, out);
        }
        let callee_state = &self.sessions[callee];
        let mut details = Dict::new();
        invocation_details(
            &mut details,
            disclose.as_ref(),
            receive_progress,
            timeout,
            procedure.as_deref(),
            progress,
            callee_state.features,
        );
        add_passthru(&mut details, passthru.as_deref());
        let callee_serializer = callee_state.serializer;
        let flags = CallFlags::default()
            .with(CallFlags::RECEIVE_PROGRESS, receive_progress)
            .with(
                CallFlags::CALLEE_CANCELS,
                callee_state.features.has(PeerFeatures::CALLEE_CANCELING),
            );
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
                return self.reply_to_shard(caller, &error, &Bytes::new(), Answer::Final, out);
            }
        }
        let key = self.pending.insert(
            Caller::Remote(caller),
            caller_request,
            Callee::Local {
                session: callee,
                invocation,
            },
            flags,
            self.telemetry.now_us,
        );
        if progress {
            self.note_stream(key, registration);
        }
        let callee_state = &mut self.sessions[callee];
        callee_state.consume_invocation_id(invocation);
        callee_state.invocations.insert(invocation, key);
        self.stats.calls_routed += 1;
    }

    /// `Reply` from the callee's shard: forward the frame if the caller still waits for it; a
    /// final answer ends the call, a progressive one restarts its timeout.
    pub(super) fn handle_remote_reply(
        &mut self,
        from: ShardId,
        reply: Reply,
        out: &mut Vec<Action>,
    ) {
        let Reply {
            call,
            frame,
            answer,
        } = reply;
        let (caller, flags, timeout) = match self.pending.get(call) {
            Some(pending) => match (&pending.caller, &pending.callee) {
                (Caller::Local(caller), Callee::Remote { shard }) if *shard == from => {
                    (*caller, pending.flags, pending.timeout())
                }
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
        if answer == Answer::Unavailable && !flags.has(CallFlags::KILLING) {
            return self.reroute(call, out);
        }
        if answer == Answer::Progress {
            if flags.has(CallFlags::KILLING) {
                self.stats.progress_results_dropped += 1;
                return;
            }
            out.push(Action::Send {
                session: caller,
                frame,
            });
            self.stats.progress_results_routed += 1;
            if let Some((_, gap)) = timeout {
                self.rearm_call_timeout(call, gap);
            }
            return;
        }
        let finished = self.finish_call(call).expect("looked up above");
        self.sessions[caller]
            .calls_waiting
            .remove(&finished.caller_request);
        out.push(Action::Send {
            session: caller,
            frame,
        });
        if answer == Answer::Canceled {
            self.stats.calls_canceled += 1;
        } else {
            self.stats.replies_routed += 1;
        }
    }
}

/// Where one CALL goes: the registration and its chosen callee, and what its INVOCATION says.
struct Target<'p> {
    registration: u64,
    callee: Registrant,
    /// INVOCATION.Details carries the caller's identity.
    disclose: bool,
    /// The called procedure, when a pattern registration matched it.
    procedure: Option<&'p str>,
    /// The CALL's `ppt_*` options (payload_passthru_mode), for INVOCATION.Details.
    passthru: Option<Passthru>,
    /// The registration has other callees (the call may be re-routed).
    shared: bool,
}

/// One chunk of a streamed call, addressed to its invocation.
#[derive(Copy, Clone)]
struct Chunk {
    registration: u64,
    invocation: u64,
    /// More chunks follow.
    progress: bool,
}

/// A CALL about to get its pending entry.
struct NewCall {
    caller: SessionKey,
    request: u64,
    flags: CallFlags,
    router_timeout: Millis,
}

/// What a CALL's Options ask of the dealer, read once.
#[derive(Copy, Clone, Debug)]
pub(super) struct CallAsk {
    receive_progress: bool,
    /// The first chunk of a streamed call (progressive_call_invocations).
    progress: bool,
    /// `ppt_*` options are present (payload_passthru_mode).
    passthru: bool,
    disclose_me: bool,
    /// CALL.Options.timeout in ms; 0 for none.
    timeout: Millis,
}

impl CallAsk {
    /// The options of a CALL; `role_discloses`: the caller's role discloses it, as if it had
    /// asked with `disclose_me` (an explicit `disclose_me: false` cannot undo that).
    #[inline]
    fn read(options: &Dict<'_>, role_discloses: bool) -> CallAsk {
        let mut asked = CallAsk {
            receive_progress: false,
            progress: false,
            passthru: false,
            disclose_me: role_discloses,
            timeout: 0,
        };
        if options.is_empty() {
            return asked;
        }
        // One pass: most CALLs carry no options at all.
        for (key, value) in options.iter() {
            match key {
                "receive_progress" => asked.receive_progress = value.as_bool() == Some(true),
                "progress" => asked.progress = value.as_bool() == Some(true),
                "disclose_me" => asked.disclose_me |= value.as_bool() == Some(true),
                "timeout" => asked.timeout = value.as_u64().unwrap_or(0),
                key if key.starts_with("ppt_") => asked.passthru = true,
                _ => {}
            }
        }
        asked
    }

    /// The timeout the router enforces for a call to a callee with `options` (0: none):
    /// with forward_timeout the callee enforces it instead.
    #[inline]
    fn router_timeout(&self, options: CalleeOptions) -> Millis {
        if self.timeout == 0 || options.forward_timeout {
            0
        } else {
            self.timeout
        }
    }

    /// INVOCATION.Details.timeout for a callee with `options` (0: none).
    #[inline]
    fn forwarded_timeout(&self, options: CalleeOptions) -> Millis {
        if self.timeout != 0 && options.forward_timeout {
            self.timeout
        } else {
            0
        }
    }
}

/// What re-routing a call to a shared registration needs (kept only for those).
#[derive(Clone, Debug)]
pub(crate) struct Reroute {
    pub(super) payload: OwnedPayload,
    pub(super) registration: u64,
    /// The called procedure when a pattern registration matched it.
    pub(super) procedure: Option<Box<str>>,
    /// The CALL's `ppt_*` options.
    pub(super) passthru: Option<Passthru>,
    pub(super) asked: CallAsk,
    /// The callees tried so far, the current one last.
    pub(super) tried: Vec<SessionRef>,
}

/// The kind of answer a callee gave.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A final YIELD or ERROR: the call ends.
    Final,
    /// A progressive YIELD: the call stays pending.
    Progress,
    /// The router's own ERROR `wamp.error.canceled` because the callee left.
    Canceled,
    /// ERROR `wamp.error.unavailable`: the call goes to another callee (call_reroute).
    Unavailable,
}

impl Answer {
    fn name(self) -> &'static str {
        match self {
            Answer::Final | Answer::Canceled | Answer::Unavailable => "YIELD/ERROR",
            Answer::Progress => "progressive YIELD",
        }
    }
}

/// INVOCATION.Details: the caller when disclosed, `receive_progress` when the caller asked and
/// the callee announced progressive results, `timeout` when forwarded to the callee, and the
/// called `procedure` when a pattern registration matched it.
#[inline]
fn invocation_details<'a>(
    details: &mut Dict<'a>,
    caller: Option<&'a impl Disclosed>,
    receive_progress: bool,
    timeout: Millis,
    procedure: Option<&'a str>,
    progress: bool,
    callee_features: PeerFeatures,
) {
    if let Some(caller) = caller {
        let (id, authid, authrole) = caller.parts();
        details.insert("caller", id);
        details.insert("caller_authid", Value::Str(Cow::Borrowed(authid)));
        details.insert("caller_authrole", Value::Str(Cow::Borrowed(authrole)));
    }
    if receive_progress && callee_features.has(PeerFeatures::CALLEE_PROGRESSIVE_RESULTS) {
        details.insert("receive_progress", true);
    }
    if timeout > 0 {
        details.insert("timeout", timeout);
    }
    if let Some(procedure) = procedure {
        details.insert("procedure", Value::Str(Cow::Borrowed(procedure)));
    }
    if progress {
        details.insert("progress", true);
    }
}

/// The `ppt_*` options of a CALL (payload_passthru_mode), detached from its frame: the codec
/// admits only strings under those keys.
pub(crate) type Passthru = Box<[(Box<str>, Box<str>)]>;

#[cold]
fn passthru_options(options: &Dict<'_>) -> Passthru {
    options
        .iter()
        .filter(|(key, _)| key.starts_with("ppt_"))
        .filter_map(|(key, value)| Some((Box::from(key), Box::from(value.as_str()?))))
        .collect()
}

/// Adds the pass-through options to `details`, unchanged (digest §9.4).
#[inline]
fn add_passthru<'a>(details: &mut Dict<'a>, passthru: Option<&'a [(Box<str>, Box<str>)]>) {
    for (key, value) in passthru.into_iter().flatten() {
        details.insert(&**key, Value::Str(Cow::Borrowed(value)));
    }
}

/// INTERRUPT for `invocation` in `mode`, with the reason when the router has one (a timeout).
fn interrupt(invocation: u64, mode: CancelMode, reason: Option<&'static str>) -> Message<'static> {
    let mut options = Dict::with_capacity(2);
    options.insert("mode", mode.name());
    if let Some(reason) = reason {
        options.insert("reason", reason);
    }
    Message::Interrupt {
        request: invocation,
        options,
    }
}

/// A received payload and the frame it lies in (a forwarded payload is sliced from it).
#[derive(Copy, Clone)]
pub(super) struct Carried<'m> {
    pub(super) payload: Payload<'m>,
    pub(super) source: &'m Bytes,
}

/// How a CALL is routed, decided while the registry is borrowed.
enum Route<'p> {
    To(Target<'p>),
    Unknown,
    NoUsableCallee,
}
