//! The router as a caller (DESIGN.md "The router is a peer of itself"): dynamic authenticators
//! and authorizers are procedures of the application, which the router CALLs like any client
//! would. Each shard holds one internal session per realm that hosts such a procedure,
//! established from the start, JSON-encoded, unseen by the meta API (not listed, not counted,
//! not killable), and never authorized (it is the router). Its CALLs go through the ordinary
//! path — admission, the dealer, `Invoke` to the callee's shard — and the RESULT or ERROR that
//! comes back for it is taken out of the actions in `settle` before the runtime sees them, then
//! handed to whoever asked ([`Purpose`]). Nothing here costs anything when no authenticator or
//! authorizer is configured: `settle` checks one emptiness.

use bytes::Bytes;

use super::authz::{Perms, RoleId};
use super::realm::RealmId;
use super::session::{Identity, Phase, Session};
use super::{Action, FastMap, Router, SessionKey, TransportInfo};
use crate::serializer::Serializer;
use crate::wire::{self, Dict, Message, Value};

/// Why the router called.
#[derive(Clone, Debug)]
pub(crate) enum Purpose {
    /// The authenticator's answer about the challenged `session`, asked under `token`.
    Authenticate { session: SessionKey, token: u64 },
    /// The authorizer's answer about `action` on `uri` for `session` (while it is still the
    /// session `session_id`).
    Authorize {
        session: SessionKey,
        session_id: u64,
        action: Perms,
        uri: Box<str>,
    },
}

/// The internal sessions of one shard and the calls they wait on.
#[derive(Default)]
pub(crate) struct InternalCallers {
    /// The caller session of each realm (by name) hosting an authenticator or authorizer.
    by_realm: FastMap<Box<str>, SessionKey>,
    keys: Vec<SessionKey>,
    /// (internal session, CALL request id) -> why.
    pending: FastMap<(SessionKey, u64), Purpose>,
    last_request: u64,
}

impl InternalCallers {
    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The internal sessions' keys (some may be gone after a shutdown).
    pub(crate) fn keys(&self) -> impl Iterator<Item = &SessionKey> {
        self.keys.iter()
    }

    pub(crate) fn is_internal(&self, session: SessionKey) -> bool {
        self.keys.contains(&session)
    }
}

impl Router {
    /// Opens the internal session of each realm in `realms` (configured realms only).
    pub(super) fn open_internal_callers(&mut self, realms: &[String]) {
        for name in realms {
            if self.internal.by_realm.contains_key(name.as_str()) {
                continue;
            }
            let Some(realm) = self.realms.find(name) else {
                continue;
            };
            let key = self.open_internal_session(realm);
            self.internal.by_realm.insert(name.as_str().into(), key);
            self.internal.keys.push(key);
        }
    }

    fn open_internal_session(&mut self, realm: RealmId) -> SessionKey {
        let transport = TransportInfo {
            serializer: Serializer::Json,
            kind: "internal",
            peer: "router".into(),
            listener: usize::MAX,
            secure: true,
        };
        let id = self.new_session_id();
        let identity = Identity {
            id,
            realm,
            authid: "wampring".into(),
            authrole: "wampring.router".into(),
            role: RoleId::UNRESTRICTED,
            authmethod: "internal",
            authprovider: "wampring",
        };
        self.sessions
            .insert(Session::internal(transport, Phase::Established(identity)))
    }

    /// CALLs `procedure` in realm `realm` with `args` from the router; the answer goes to
    /// `purpose`'s handler. Without an internal session there (not a configured realm; the
    /// config loader prevents it), the answer is `wamp.error.no_such_procedure` at once.
    pub(super) fn call_from_router(
        &mut self,
        realm: &str,
        procedure: &str,
        args: Vec<Value<'static>>,
        purpose: Purpose,
        out: &mut Vec<Action>,
    ) {
        let Some(&key) = self.internal.by_realm.get(realm) else {
            let error = super::uri::NO_SUCH_PROCEDURE.to_string();
            return self.answer_purpose(purpose, Err(error), out);
        };
        self.internal.last_request += 1;
        let request = self.internal.last_request;
        let mut options = Dict::new();
        // The dealer ends the call if nobody answers: the waiting session's own deadline
        // would end it anyway, this frees the pending call too.
        options.insert("timeout", self.config.authenticate_timeout_ms);
        let payload = match wire::payload_from_args(Serializer::Json, &args, None) {
            Ok(payload) => payload,
            Err(error) => {
                return self.answer_purpose(purpose, Err(format!("unencodable: {error:?}")), out)
            }
        };
        let call = Message::Call {
            request,
            options,
            procedure: procedure.to_string().into(),
            payload: payload.as_payload(),
        };
        let mut frame = Vec::new();
        if let Err(error) = wire::encode(&call, Serializer::Json, &mut frame) {
            return self.answer_purpose(purpose, Err(format!("unencodable: {error:?}")), out);
        }
        self.internal.pending.insert((key, request), purpose);
        if let Some(state) = self.sessions.get_mut(key) {
            state.last_request_id = request.saturating_sub(1);
        }
        let now = self.now;
        self.handle_message(key, Bytes::from(frame), now, out);
    }

    /// Takes the frames meant for internal sessions out of `out` and hands each answer to its
    /// purpose; answers may produce more such frames, so until none is left.
    pub(super) fn take_internal_frames(&mut self, out: &mut Vec<Action>) {
        loop {
            let mut frames = Vec::new();
            out.retain(|action| match action {
                Action::Send { session, frame } | Action::SendEvent { session, frame }
                    if self.internal.is_internal(*session) =>
                {
                    frames.push((*session, frame.to_bytes()));
                    false
                }
                Action::Close { session, .. } if self.internal.is_internal(*session) => false,
                _ => true,
            });
            if frames.is_empty() {
                return;
            }
            for (session, frame) in frames {
                self.internal_frame(session, &frame, out);
            }
        }
    }

    fn internal_frame(&mut self, session: SessionKey, frame: &[u8], out: &mut Vec<Action>) {
        let Ok(message) = wire::decode(Serializer::Json, frame) else {
            return;
        };
        let (request, answer) = match message {
            Message::Result {
                request, payload, ..
            } => {
                let values = wire::decode_payload_values(&payload)
                    .map(|(args, _)| args.into_iter().map(Value::into_owned).collect())
                    .map_err(|e| format!("undecodable RESULT: {}", e.message));
                (request, values)
            }
            Message::Error { request, error, .. } => (request, Err(error.into_owned())),
            _ => return,
        };
        if let Some(purpose) = self.internal.pending.remove(&(session, request)) {
            self.answer_purpose(purpose, answer, out);
        }
    }

    fn answer_purpose(
        &mut self,
        purpose: Purpose,
        answer: Result<Vec<Value<'static>>, String>,
        out: &mut Vec<Action>,
    ) {
        match purpose {
            Purpose::Authenticate { session, token } => {
                self.authenticator_answered(session, token, answer, out)
            }
            Purpose::Authorize {
                session,
                session_id,
                action,
                uri,
            } => self.authorizer_answered(session, session_id, action, &uri, answer, out),
        }
    }
}
