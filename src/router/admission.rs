//! The one admission step in front of every handler of an established session (DESIGN.md "The
//! router kernel"). In order:
//! 1. the phase: an established session may send only the client-to-router routing messages,
//!    GOODBYE and ABORT; anything else (HELLO again, AUTHENTICATE without CHALLENGE, router-only
//!    messages, ERROR other than for INVOCATION, EVENT_RECEIVED, which needs a feature this
//!    router does not announce) is a protocol violation;
//! 2. request-id rules: with `strict_request_ids`, a new request must carry the previous id + 1;
//! 3. URI and option rules: REGISTER (match, invoke, procedure URI, the reserved `wamp.`
//!    namespace), SUBSCRIBE (match, topic URI), YIELD (`progress`, not announced). The URI of
//!    a CALL or PUBLISH is validated by its handler only when it matches nothing: every
//!    registered or subscribed URI passed this step already, so the hot path skips the scan;
//! 4. per-session bounds: pending calls per caller;
//! 5. authorization: the place where role permissions will be checked (step 6/8 of the plan);
//!    today every session is anonymous and may do everything its realm offers.
//!
//! A refusal is answered here (ERROR to the request, or ABORT for a violation); the handler is
//! then not called.

use std::borrow::Cow;

use super::dealer::InvokePolicy;
use super::realm::RealmId;
use super::session::Phase;
use super::{ids, uri, Action, Router, SessionKey};
use crate::serializer::Serializer;
use crate::wire::{code, code_name, Dict, Message, Value};

/// A session that passed admission: established, with what handlers need at hand.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Admitted {
    pub(crate) key: SessionKey,
    /// The WAMP session id.
    pub(crate) id: u64,
    pub(crate) realm: RealmId,
    pub(crate) serializer: Serializer,
}

/// Why a request is refused with an ERROR (not a violation).
struct Refusal {
    request_type: u64,
    request: u64,
    uri: &'static str,
    text: String,
}

impl Router {
    /// Admits one message of an established session, or answers it and returns `None`.
    pub(super) fn admit(
        &mut self,
        key: SessionKey,
        message: &Message<'_>,
        out: &mut Vec<Action>,
    ) -> Option<Admitted> {
        let session = &self.sessions[key];
        let Phase::Established(identity) = &session.phase else {
            debug_assert!(false, "admission of a session that is not established");
            return None;
        };
        let me = Admitted {
            key,
            id: identity.id,
            realm: identity.realm,
            serializer: session.serializer,
        };

        if let Some(text) = not_accepted_when_established(message) {
            self.protocol_violation(key, text, out);
            return None;
        }

        if let Some(request) = new_request_id(message) {
            let strict = self.config.strict_request_ids;
            let state = &mut self.sessions[key];
            let expected = ids::next_sequential(state.last_request_id);
            if !state.accept_request_id(request, strict) {
                let text = format!("request id {request} is not sequential (expected {expected})");
                self.protocol_violation(key, text, out);
                return None;
            }
        }

        let refusal = match message {
            Message::Register {
                request,
                options,
                procedure,
            } => self.register_refusal(*request, options, procedure),
            Message::Subscribe {
                request,
                options,
                topic,
            } => self.subscribe_refusal(*request, options, topic),
            Message::Yield { options, .. } if options.get_bool("progress") == Some(true) => {
                let text = "YIELD.Options.progress needs progressive_call_results, which this router does not announce";
                self.protocol_violation(key, text, out);
                return None;
            }
            Message::Call { request, .. } => self.call_bound_refusal(key, *request),
            _ => None,
        };
        if let Some(refusal) = refusal {
            self.send_error(
                out,
                key,
                refusal.request_type,
                refusal.request,
                refusal.uri,
                refusal.text,
            );
            return None;
        }

        // Authorization goes here (role permissions on the URI, cached per shard); every
        // session is anonymous with all permissions until authentication lands.
        Some(me)
    }

    fn register_refusal(
        &self,
        request: u64,
        options: &Dict<'_>,
        procedure: &str,
    ) -> Option<Refusal> {
        let refuse = |uri, text| {
            Some(Refusal {
                request_type: code::REGISTER,
                request,
                uri,
                text,
            })
        };
        // Options first: a pattern URI (empty components) is only invalid because patterns are
        // not supported, and that is the more useful answer.
        if let Some(pattern) = options.get_str("match").filter(|&m| m != "exact") {
            return refuse(
                uri::OPTION_NOT_ALLOWED,
                format!("pattern-based registration (match={pattern:?}) is not supported"),
            );
        }
        if let Err(text) = invoke_policy(options) {
            return refuse(uri::INVALID_ARGUMENT, text);
        }
        if !self.uri_is_valid(procedure) {
            return refuse(
                uri::INVALID_URI,
                format!("invalid procedure URI {procedure:?}"),
            );
        }
        if procedure == "wamp" || procedure.starts_with("wamp.") {
            return refuse(
                uri::INVALID_URI,
                format!("procedure {procedure:?}: the wamp. namespace is reserved for the router"),
            );
        }
        None
    }

    fn subscribe_refusal(&self, request: u64, options: &Dict<'_>, topic: &str) -> Option<Refusal> {
        let refuse = |uri, text| {
            Some(Refusal {
                request_type: code::SUBSCRIBE,
                request,
                uri,
                text,
            })
        };
        if let Some(pattern) = options.get_str("match").filter(|&m| m != "exact") {
            return refuse(
                uri::OPTION_NOT_ALLOWED,
                format!("pattern-based subscription (match={pattern:?}) is not supported"),
            );
        }
        if !self.uri_is_valid(topic) {
            return refuse(uri::INVALID_URI, format!("invalid topic URI {topic:?}"));
        }
        None
    }

    fn call_bound_refusal(&self, key: SessionKey, request: u64) -> Option<Refusal> {
        let limit = self.config.max_pending_calls_per_session;
        (self.sessions[key].calls_waiting.len() >= limit).then(|| Refusal {
            request_type: code::CALL,
            request,
            uri: uri::PENDING_CALL_LIMIT,
            text: format!("more than {limit} calls pending for this session"),
        })
    }
}

/// The text of the violation when an established session may not send `message`.
fn not_accepted_when_established(message: &Message<'_>) -> Option<Cow<'static, str>> {
    Some(match message {
        Message::Publish { .. }
        | Message::Call { .. }
        | Message::Yield { .. }
        | Message::Subscribe { .. }
        | Message::Unsubscribe { .. }
        | Message::Register { .. }
        | Message::Unregister { .. }
        | Message::Cancel { .. }
        | Message::Goodbye { .. }
        | Message::Abort { .. } => return None,
        Message::Error {
            request_type: code::INVOCATION,
            ..
        } => return None,
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
        other @ (Message::Welcome { .. }
        | Message::Challenge { .. }
        | Message::Published { .. }
        | Message::Subscribed { .. }
        | Message::Unsubscribed { .. }
        | Message::Event { .. }
        | Message::Result { .. }
        | Message::Registered { .. }
        | Message::Unregistered { .. }
        | Message::Invocation { .. }
        | Message::Interrupt { .. }) => format!("{} is only sent by routers", other.name()).into(),
    })
}

/// The request id a message opens a new request with (digest §3), if it does.
fn new_request_id(message: &Message<'_>) -> Option<u64> {
    match message {
        Message::Publish { request, .. }
        | Message::Subscribe { request, .. }
        | Message::Unsubscribe { request, .. }
        | Message::Call { request, .. }
        | Message::Register { request, .. }
        | Message::Unregister { request, .. } => Some(*request),
        _ => None,
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
