//! The one admission step in front of every handler of an established session (DESIGN.md "The
//! router kernel"). In order:
//! 1. the phase: an established session may send only the client-to-router routing messages,
//!    GOODBYE and ABORT; anything else (HELLO again, AUTHENTICATE without CHALLENGE, router-only
//!    messages, ERROR other than for INVOCATION, EVENT_RECEIVED, which needs a feature this
//!    router does not announce) is a protocol violation;
//! 2. request-id rules: a CALL under the request id of the session's pending streamed call is
//!    that call's next chunk (progressive_call_invocations; chunks of a finished stream are
//!    dropped); a CALL under the id of another pending call is a violation; otherwise, with
//!    `strict_request_ids`, a new request must carry the previous id + 1;
//! 3. URI and option rules: the URI of a CALL, PUBLISH, REGISTER or SUBSCRIBE is at most
//!    `max_uri_length` bytes; REGISTER (invoke, procedure URI or pattern, the reserved `wamp.`
//!    namespace), SUBSCRIBE (match, topic URI). The URI of a CALL or PUBLISH is validated by
//!    its handler only when it matches nothing: every registered or subscribed URI passed this
//!    step already, so the hot path skips the scan;
//! 4. per-session bounds: pending calls per caller, registrations and subscriptions per session
//!    (those still being answered included);
//! 5. authorization (`authz.rs`): in a realm with roles, the session's role must allow the
//!    action (call, register, publish, subscribe) on the URI, else ERROR
//!    `wamp.error.not_authorized`; the permission may disclose the caller or publisher.
//!
//! A refusal is answered here (ERROR to the request, or ABORT for a violation); the handler is
//! then not called.

use std::borrow::Cow;

use bytes::Bytes;

use super::authz::{Perms, RoleId};
use super::dealer::{CallFlags, InvokePolicy, MatchPolicy};
use super::pubsub::PublishRefusal;
use super::realm::RealmId;
use super::session::{PeerFeatures, Phase};
use super::{ids, uri, Action, Router, SessionKey, UriCheck};
use crate::serializer::Serializer;
use crate::wire::{self, code, code_name, Dict, Message, Value};

/// A session that passed admission: established, with what handlers need at hand.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Admitted {
    pub(crate) key: SessionKey,
    /// The WAMP session id.
    pub(crate) id: u64,
    pub(crate) realm: RealmId,
    pub(crate) serializer: Serializer,
    /// A CALL that continues a pending streamed call (progressive_call_invocations: a later
    /// chunk under the first chunk's request id), found in `calls_waiting` under its id.
    pub(crate) continues: bool,
    /// The role's permission discloses this CALL's caller or this PUBLISH's publisher.
    pub(crate) disclose: bool,
}

/// A request that needs an authorization decision, and what replaying it later takes.
#[derive(Copy, Clone)]
pub(crate) struct Asked<'m, 'a> {
    pub(crate) message: &'m Message<'a>,
    pub(crate) uri: &'m str,
    /// The frame it came in, kept while the dynamic authorizer decides.
    pub(crate) frame: &'m Bytes,
    /// The session's last request id before this one (restored while it waits, so that its
    /// replay passes the request-id rule again).
    pub(crate) last_request_id: u64,
}

/// Why a request is refused with an ERROR (not a violation): the error URI and the message.
type Refusal = (&'static str, String);

impl Router {
    /// Admits one message of an established session, or answers it and returns `None`. Its
    /// one caller is the per-message path: inlined there, as it was before authorization
    /// grew it.
    #[inline(always)]
    pub(super) fn admit(
        &mut self,
        key: SessionKey,
        message: &Message<'_>,
        frame: &Bytes,
        out: &mut Vec<Action>,
    ) -> Option<Admitted> {
        let strict = self.config.strict_request_ids;
        let session = &mut self.sessions[key];
        let Phase::Established(identity) = &session.phase else {
            debug_assert!(false, "admission of a session that is not established");
            return None;
        };
        let me = Admitted {
            key,
            id: identity.id,
            realm: identity.realm,
            serializer: session.serializer,
            continues: false,
            disclose: false,
        };
        let role = identity.role.restricted();

        // One pass over the message: whether the phase accepts it, the request id it opens,
        // the URI it names, and which rule applies to it.
        let (request, uri, options, rule) = match message {
            Message::Call {
                request,
                procedure,
                options,
                ..
            } => (*request, procedure, options, Rule::PendingCallBound),
            Message::Publish {
                request,
                topic,
                options,
                ..
            } => (*request, topic, options, Rule::None),
            Message::Unsubscribe { request, .. } | Message::Unregister { request, .. } => {
                (*request, &NO_URI, &NO_OPTIONS, Rule::None)
            }
            Message::Register {
                request,
                procedure,
                options,
            } => (*request, procedure, options, Rule::Register),
            Message::Subscribe {
                request,
                topic,
                options,
            } => (*request, topic, options, Rule::Subscribe),
            Message::Yield { .. }
            | Message::Error {
                request_type: code::INVOCATION,
                ..
            }
            | Message::Cancel { .. }
            | Message::Goodbye { .. }
            | Message::Abort { .. } => return Some(me),
            other => {
                let text = not_accepted_when_established(other);
                self.protocol_violation(key, text, out);
                return None;
            }
        };

        let mut me = me;
        if let (Message::Call { options, .. }, Rule::PendingCallBound) = (message, rule) {
            match self.call_chunk_rule(key, request, options, out) {
                ChunkRule::NewCall => {}
                ChunkRule::Continues => me.continues = true,
                ChunkRule::Refused => return None,
            }
        }
        let session = &mut self.sessions[key];
        let (last, calls_waiting) = (session.last_request_id, session.calls_waiting.len());
        let registrations_held = session.registrations.len() + session.registers_pending as usize;
        let subscriptions_held = session.subscriptions.len() + session.subscribes_pending as usize;
        // A chunk reuses its call's request id: it opens no new request.
        if !me.continues && !session.accept_request_id(request, strict) {
            let expected = ids::next_sequential(last);
            let text = format!("request id {request} is not sequential (expected {expected})");
            self.protocol_violation(key, text, out);
            return None;
        }

        if uri.len() > self.config.max_uri_length {
            let text = self.uri_too_long("the", uri);
            let Message::Publish { options, .. } = message else {
                self.send_error(out, key, message.code(), request, uri::INVALID_URI, text);
                return None;
            };
            // An unacknowledged PUBLISH gets no ERROR.
            let acknowledge = options.get_bool("acknowledge") == Some(true);
            let refusal = (PublishRefusal::InvalidTopic, uri::INVALID_URI, text);
            self.refuse_publish(me, request, acknowledge, refusal, out);
            return None;
        }

        if !options.is_empty() {
            let limit = self.config.max_options_entries;
            if options.entries_deep(limit) > limit {
                return self.refuse_large_options(me, message, request, limit, out);
            }
        }

        let refusal = match (rule, message) {
            (Rule::None, _) => None,
            (Rule::PendingCallBound, _) if me.continues => None,
            (Rule::PendingCallBound, _) => self.call_bound_refusal(calls_waiting),
            (
                Rule::Register,
                Message::Register {
                    options, procedure, ..
                },
            ) => self
                .register_refusal(options, procedure)
                .or_else(|| self.table_bound_refusal(Table::Registrations, registrations_held)),
            (Rule::Subscribe, Message::Subscribe { options, topic, .. }) => self
                .subscribe_refusal(options, topic)
                .or_else(|| self.table_bound_refusal(Table::Subscriptions, subscriptions_held)),
            (Rule::Register | Rule::Subscribe, _) => None,
        };
        if let Some((error_uri, text)) = refusal {
            if matches!(
                error_uri,
                uri::TOO_MANY_REGISTRATIONS | uri::TOO_MANY_SUBSCRIPTIONS
            ) {
                self.stats.session_limit_refusals += 1;
            }
            self.send_error(out, key, message.code(), request, error_uri, text);
            return None;
        }

        match role {
            // A realm without roles authorizes everything.
            None => Some(me),
            Some(role) => self.authorize(me, role, (message, request, uri), (frame, last), out),
        }
    }

    /// Step 5: the session's role must allow the action on the URI. A refused PUBLISH gets an
    /// ERROR only when acknowledged, as every refused PUBLISH.
    #[cold]
    fn authorize(
        &mut self,
        mut me: Admitted,
        role: RoleId,
        (message, request, uri): (&Message<'_>, u64, &str),
        (frame, last_request_id): (&Bytes, u64),
        out: &mut Vec<Action>,
    ) -> Option<Admitted> {
        let asked = Asked {
            message,
            uri,
            frame,
            last_request_id,
        };
        let (action, disclose, name) = match message {
            Message::Call { .. } if me.continues => return Some(me),
            Message::Call { .. } => (Perms::CALL, Perms::DISCLOSE_CALLER, "call"),
            Message::Publish { .. } => (Perms::PUBLISH, Perms::DISCLOSE_PUBLISHER, "publish"),
            Message::Register { .. } => (Perms::REGISTER, Perms::NONE, "register"),
            Message::Subscribe { .. } => (Perms::SUBSCRIBE, Perms::NONE, "subscribe"),
            _ => return Some(me),
        };
        let perms = match self.realms.get(me.realm).roles.authorizer(role) {
            None => self.realms.get_mut(me.realm).roles.decide(role, uri),
            Some(procedure) => {
                let procedure = procedure.to_string();
                let decided = self.sessions[me.key]
                    .authz
                    .get_or_insert_with(Default::default)
                    .decided(action, uri);
                match decided {
                    None => {
                        self.ask_authorizer(me, &procedure, action, name, asked, out);
                        return None;
                    }
                    Some(decided) if decided.failed => {
                        let text = format!("the authorizer of this role could not decide whether it may {name} {uri:?}");
                        self.send_error(
                            out,
                            me.key,
                            message.code(),
                            request,
                            uri::AUTHORIZATION_FAILED,
                            text,
                        );
                        return None;
                    }
                    Some(decided) => decided.perms,
                }
            }
        };
        if perms.has(action) {
            me.disclose = disclose != Perms::NONE && perms.has(disclose);
            return Some(me);
        }
        self.stats.authorizations_denied += 1;
        let identity = self.sessions[me.key].identity();
        let authrole = identity.map_or("", |identity| &identity.authrole);
        let text = if role == RoleId::REVOKED {
            format!(
                "role {authrole:?} is no longer defined in this realm: it may not {name} {uri:?}"
            )
        } else {
            format!("role {authrole:?} may not {name} {uri:?}")
        };
        if let Message::Publish { options, .. } = message {
            let acknowledge = options.get_bool("acknowledge") == Some(true);
            let refusal = (PublishRefusal::NotAuthorized, uri::NOT_AUTHORIZED, text);
            self.refuse_publish(me, request, acknowledge, refusal, out);
            return None;
        }
        if let Some(suppressed) = self.logs.authorization_denied.allow(self.now) {
            tracing::info!(wamp_session = me.id, suppressed, "not authorized: {text}");
        }
        self.send_error(
            out,
            me.key,
            message.code(),
            request,
            uri::NOT_AUTHORIZED,
            text,
        );
        None
    }

    /// progressive_call_invocations (digest §9.2): a CALL under the request id of a call the
    /// session is still streaming is that call's next chunk; one under the id of a streamed
    /// call that is over is dropped silently (as is, with `strict_request_ids`, any CALL at or
    /// below the highest id seen: the watermark rule); `progress` from a caller that did not
    /// announce the feature is a violation, and so is any CALL under the id of an ordinary
    /// pending call (whether or not the caller streams).
    #[inline(always)]
    fn call_chunk_rule(
        &mut self,
        key: SessionKey,
        request: u64,
        options: &Dict<'_>,
        out: &mut Vec<Action>,
    ) -> ChunkRule {
        let session = &self.sessions[key];
        let streams = session
            .features
            .has(PeerFeatures::CALLER_PROGRESSIVE_INVOCATIONS);
        // A caller with no call pending (the common case) needs no lookup for a reused id.
        let waiting = &session.calls_waiting;
        if !streams && options.is_empty() && (waiting.is_empty() || !waiting.contains_key(&request))
        {
            return ChunkRule::NewCall;
        }
        self.call_chunk_rule_slow(key, request, options, streams, out)
    }

    /// `call_chunk_rule` for a CALL with options or from a caller that streams (`streams`).
    #[cold]
    fn call_chunk_rule_slow(
        &mut self,
        key: SessionKey,
        request: u64,
        options: &Dict<'_>,
        streams: bool,
        out: &mut Vec<Action>,
    ) -> ChunkRule {
        let session = &self.sessions[key];
        let progress = options.get_bool("progress") == Some(true);
        if !streams {
            if progress {
                let text = "CALL.Options.progress from a caller that did not announce progressive_call_invocations";
                self.protocol_violation(key, text, out);
                return ChunkRule::Refused;
            }
            // Two pending calls under one request id: the second would hide the first from
            // `calls_waiting`, and its answer would reach a caller that is gone.
            if session.calls_waiting.contains_key(&request) {
                let text = format!("CALL request id {request} is already in use by a pending call");
                self.protocol_violation(key, text, out);
                return ChunkRule::Refused;
            }
            return ChunkRule::NewCall;
        }
        if let Some(&call) = session.calls_waiting.get(&request) {
            let streaming = self
                .pending
                .get(call)
                .is_some_and(|pending| pending.flags.has(CallFlags::MORE_CHUNKS));
            if streaming {
                return ChunkRule::Continues;
            }
            let text = format!("CALL request id {request} is already in use by a pending call");
            self.protocol_violation(key, text, out);
            return ChunkRule::Refused;
        }
        let below_watermark = self.config.strict_request_ids && request <= session.last_request_id;
        if below_watermark || session.finished_streams.contains(request) {
            self.stats.late_call_chunks_discarded += 1;
            return ChunkRule::Refused;
        }
        if progress {
            // Remembered from the first chunk on: once the call is over, however it ended
            // (even refused right here or by its handler), later chunks are dropped. While
            // it is pending, `calls_waiting` finds it first.
            self.sessions[key].finished_streams.remember(request);
        }
        ChunkRule::NewCall
    }

    fn register_refusal(&self, options: &Dict<'_>, procedure: &str) -> Option<Refusal> {
        if let Err(text) = invoke_policy(options) {
            return Some((uri::INVALID_ARGUMENT, text));
        }
        // A pattern's empty components are its wildcards (and a prefix may end in a dot).
        let matching = MatchPolicy::parse(options.get_str("match"));
        let pattern = matching != MatchPolicy::Exact;
        let strict = self.config.uri_check == UriCheck::Strict;
        if procedure.is_empty() || !wire::validate_uri(procedure, strict, pattern) {
            let text = format!(
                "invalid procedure URI {procedure:?} for match={:?}",
                matching.name()
            );
            return Some((uri::INVALID_URI, text));
        }
        if uri::is_reserved(procedure) {
            let text =
                format!("procedure {procedure:?}: the wamp. namespace is reserved for the router");
            return Some((uri::INVALID_URI, text));
        }
        None
    }

    fn subscribe_refusal(&self, options: &Dict<'_>, topic: &str) -> Option<Refusal> {
        // A pattern's empty components are its wildcards (and a prefix may end in a dot), as
        // for REGISTER.
        let matching = MatchPolicy::parse(options.get_str("match"));
        let valid = match matching {
            MatchPolicy::Exact => self.uri_is_valid(topic),
            MatchPolicy::Prefix | MatchPolicy::Wildcard => {
                let strict = self.config.uri_check == UriCheck::Strict;
                !topic.is_empty() && wire::validate_uri(topic, strict, true)
            }
        };
        if !valid {
            let text = format!(
                "invalid topic URI {topic:?} for match={:?}",
                matching.name()
            );
            return Some((uri::INVALID_URI, text));
        }
        None
    }

    /// ERROR `wamp.error.invalid_argument` for a request whose Options hold more than `limit`
    /// entries (an unacknowledged PUBLISH is dropped and counted).
    #[cold]
    fn refuse_large_options(
        &mut self,
        me: Admitted,
        message: &Message<'_>,
        request: u64,
        limit: usize,
        out: &mut Vec<Action>,
    ) -> Option<Admitted> {
        let text = format!(
            "{}.Options holds more than {limit} entries (limits.max_options_entries)",
            message.name()
        );
        if let Message::Publish { options, .. } = message {
            let acknowledge = options.get_bool("acknowledge") == Some(true);
            let refusal = (PublishRefusal::InvalidOptions, uri::INVALID_ARGUMENT, text);
            self.refuse_publish(me, request, acknowledge, refusal, out);
        } else {
            self.send_error(
                out,
                me.key,
                message.code(),
                request,
                uri::INVALID_ARGUMENT,
                text,
            );
        }
        None
    }

    /// The text refusing a URI over `max_uri_length` (its start only: it may be huge).
    #[cold]
    pub(super) fn uri_too_long(&self, what: &str, uri: &str) -> String {
        let start: String = uri.chars().take(40).collect();
        format!(
            "{what} URI is {} bytes, longer than the limit of {} ({start:?}...)",
            uri.len(),
            self.config.max_uri_length
        )
    }

    /// A session holding (or waiting for) `held` registrations or subscriptions may not ask
    /// for one more past `limits.max_<what>_per_session`.
    fn table_bound_refusal(&self, table: Table, held: usize) -> Option<Refusal> {
        let (limit, error_uri, what) = match table {
            Table::Registrations => (
                self.config.max_registrations_per_session,
                uri::TOO_MANY_REGISTRATIONS,
                "registrations",
            ),
            Table::Subscriptions => (
                self.config.max_subscriptions_per_session,
                uri::TOO_MANY_SUBSCRIPTIONS,
                "subscriptions",
            ),
        };
        (held >= limit).then(|| {
            let text = format!(
                "this session holds {held} {what}, the most one may (limits.max_{what}_per_session)"
            );
            (error_uri, text)
        })
    }

    #[inline(always)]
    fn call_bound_refusal(&self, calls_waiting: usize) -> Option<Refusal> {
        let limit = self.config.max_pending_calls_per_session;
        (calls_waiting >= limit).then(|| {
            let text = format!("more than {limit} calls pending for this session");
            (uri::PENDING_CALL_LIMIT, text)
        })
    }
}

/// The Options of a request that has none (UNSUBSCRIBE, UNREGISTER).
static NO_OPTIONS: Dict<'static> = Dict::new();

/// What a CALL is under progressive_call_invocations.
enum ChunkRule {
    NewCall,
    /// The next chunk of a pending call.
    Continues,
    /// Answered or dropped here.
    Refused,
}

/// The per-session tables a session's requests grow.
#[derive(Copy, Clone)]
enum Table {
    Registrations,
    Subscriptions,
}

/// What a request without a URI is checked against.
static NO_URI: Cow<'static, str> = Cow::Borrowed("");

/// The checks of step 3 and 4 a new request gets.
#[derive(Copy, Clone)]
enum Rule {
    None,
    PendingCallBound,
    Register,
    Subscribe,
}

/// The text of the violation for a message an established session may not send.
#[cold]
fn not_accepted_when_established(message: &Message<'_>) -> Cow<'static, str> {
    match message {
        Message::Error { request_type, .. } => format!(
            "ERROR for {} ({request_type}): only ERROR for INVOCATION may come from a client",
            code_name(*request_type)
        )
        .into(),
        Message::Hello { .. } => "HELLO received after the session was established".into(),
        Message::Authenticate { .. } => "AUTHENTICATE received without a pending CHALLENGE".into(),
        Message::EventReceived { .. } => {
            "EVENT_RECEIVED needs acknowledged event delivery, which this router does not announce"
                .into()
        }
        other => format!("{} is only sent by routers", other.name()).into(),
    }
}

/// REGISTER.Options.invoke: absent means `single`; a value that is not one of the five policy
/// names (or not a string) is refused with the text of the ERROR.
pub(super) fn invoke_policy(options: &Dict<'_>) -> Result<InvokePolicy, String> {
    match options.get("invoke") {
        None => Ok(InvokePolicy::Single),
        Some(Value::Str(name)) => InvokePolicy::parse(name).ok_or_else(|| {
            format!(
                "REGISTER.Options.invoke {name:?} is not one of single, roundrobin, random, first, last"
            )
        }),
        Some(other) => Err(format!(
            "REGISTER.Options.invoke must be a string, got {other:?}"
        )),
    }
}
