//! Session opening: HELLO -> WELCOME or ABORT, directly for anonymous sessions or after a
//! CHALLENGE (`authn.rs`) for the other methods; the method is the first one the client offers
//! that its listener accepts. Also the role/feature announcement of WELCOME: only features
//! that are implemented are announced.

use std::borrow::Cow;

use super::authn::{AuthMethod, Hello};
use super::facts::Fact;
use super::session::{Identity, PeerFeatures, Phase};
use super::{uri, Action, CloseReason, Router, SessionKey};
use crate::wire::{Dict, Message, Value};

/// Client roles a HELLO may announce (digest §5); at least one is required.
const CLIENT_ROLES: [&str; 4] = ["publisher", "subscriber", "caller", "callee"];

/// The agent string of WELCOME.
const AGENT: &str = concat!("wampring-", env!("CARGO_PKG_VERSION"));

/// Broker features implemented in `pubsub.rs`, `retention.rs`, `history.rs` and the meta API
/// (`internal.rs`, `meta.rs`).
const BROKER_FEATURES: [&str; 9] = [
    "event_history",
    "event_retention",
    "pattern_based_subscription",
    "publisher_exclusion",
    "publisher_identification",
    "session_meta_api",
    "subscriber_blackwhite_listing",
    "subscription_meta_api",
    "subscription_revocation",
];

/// Dealer features implemented in `rpc.rs`, and the meta API and testaments (`internal.rs`,
/// `meta.rs`, `testament.rs`).
const DEALER_FEATURES: [&str; 13] = [
    "call_canceling",
    "call_reroute",
    "call_timeout",
    "caller_identification",
    "pattern_based_registration",
    "payload_passthru_mode",
    "progressive_call_invocations",
    "progressive_call_results",
    "registration_meta_api",
    "registration_revocation",
    "session_meta_api",
    "shared_registration",
    "testament_meta_api",
];

/// `WELCOME.Details.roles`: `{broker: {features: {..}}, dealer: {features: {..}}}`.
pub(crate) fn welcome_roles() -> Dict<'static> {
    fn role(features: &[&'static str]) -> Value<'static> {
        let mut flags = Dict::with_capacity(features.len());
        for &feature in features {
            flags.insert(feature, true);
        }
        let mut role = Dict::with_capacity(1);
        role.insert("features", flags);
        Value::Dict(role)
    }
    let mut roles = Dict::with_capacity(2);
    roles.insert("broker", role(&BROKER_FEATURES));
    roles.insert("dealer", role(&DEALER_FEATURES));
    roles
}

impl Router {
    pub(super) fn handle_hello(
        &mut self,
        session: SessionKey,
        realm_name: &str,
        details: &Dict<'_>,
        out: &mut Vec<Action>,
    ) {
        if self.shutting_down {
            return self.reject_hello(
                session,
                uri::CLOSE_SYSTEM_SHUTDOWN,
                "the router is shutting down".into(),
                out,
            );
        }
        let features = match details.get_dict("roles") {
            None => return self.protocol_violation(session, "HELLO.Details.roles is missing", out),
            Some(roles) if !roles.iter().any(|(role, _)| CLIENT_ROLES.contains(&role)) => {
                return self.protocol_violation(
                    session,
                    "HELLO.Details.roles announces none of publisher, subscriber, caller, callee",
                    out,
                )
            }
            Some(roles) => PeerFeatures::from_roles(roles),
        };
        if realm_name.len() > self.config.max_uri_length {
            let text = self.uri_too_long("realm", realm_name);
            return self.reject_hello(session, uri::INVALID_URI, text.into(), out);
        }
        if !self.uri_is_valid(realm_name) {
            return self.reject_hello(
                session,
                uri::INVALID_URI,
                format!("invalid realm URI {realm_name:?}").into(),
                out,
            );
        }
        let offered: Vec<&str> = match details.get("authmethods") {
            None => vec!["anonymous"],
            Some(Value::List(methods)) => methods.iter().filter_map(Value::as_str).collect(),
            Some(_) => {
                return self.protocol_violation(
                    session,
                    "HELLO.Details.authmethods must be a list",
                    out,
                )
            }
        };
        let listener = self.sessions[session].transport.listener;
        let accepted = self
            .config
            .listeners
            .get(listener)
            .cloned()
            .unwrap_or_default();
        let chosen = offered.iter().find_map(|&name| {
            AuthMethod::from_name(name)
                .filter(|method| accepted.methods.contains(method))
                .map(|method| (method, name))
        });
        let Some((method, method_name)) = chosen else {
            let names: Vec<&str> = accepted
                .methods
                .iter()
                .map(|method| method.name())
                .collect();
            return self.reject_hello(
                session,
                uri::NO_MATCHING_AUTH_METHOD,
                format!(
                    "none of the offered authmethods {offered:?} is accepted here; this listener accepts {names:?}"
                )
                .into(),
                out,
            );
        };

        if self.config.auto_create_realms
            && self.realms.auto_created() >= self.config.max_auto_created_realms
            && self.realms.find(realm_name).is_none()
        {
            // At the bound: first drop the realms that became unused since the last sweep.
            self.remove_unused_realms();
        }
        let realm = match self.realms.find(realm_name) {
            Some(realm) if self.realms.get(realm).retired => {
                // Removed by a reload: its sessions stay, nobody new joins (`reconfigure.rs`).
                return self.reject_hello(
                    session,
                    uri::NO_SUCH_REALM,
                    format!("no realm {realm_name:?} on this router (it was removed from the configuration)").into(),
                    out,
                );
            }
            // Auto-created (by another shard's update, or before a reload turned
            // `auto_create_realms` off): not a realm a HELLO may join unless creating is on.
            Some(realm)
                if self.realms.get(realm).auto_created && !self.config.auto_create_realms =>
            {
                return self.reject_hello(
                    session,
                    uri::NO_SUCH_REALM,
                    format!("no realm {realm_name:?} on this router").into(),
                    out,
                );
            }
            Some(realm) => realm,
            None if self.config.auto_create_realms
                && self.realms.auto_created() < self.config.max_auto_created_realms =>
            {
                self.realms.get_or_create(realm_name)
            }
            None if self.config.auto_create_realms => {
                return self.reject_hello(
                    session,
                    uri::NO_SUCH_REALM,
                    format!(
                        "no realm {realm_name:?} on this router, and no more may be created now (router.max_auto_created_realms = {})",
                        self.config.max_auto_created_realms
                    )
                    .into(),
                    out,
                )
            }
            None => {
                return self.reject_hello(
                    session,
                    uri::NO_SUCH_REALM,
                    format!("no realm {realm_name:?} on this router").into(),
                    out,
                )
            }
        };

        if method != AuthMethod::Anonymous {
            let hello = Hello {
                realm,
                features,
                details,
                method_name,
            };
            return self.challenge(session, method, hello, out);
        }
        let Some(role) = self.role_of(session, realm, &accepted.anonymous_role, out) else {
            return;
        };
        let id = self.new_session_id();
        let identity = Identity {
            id,
            realm,
            authid: id.to_string().into(),
            authrole: accepted.anonymous_role.into(),
            role: super::authz::RoleId::of(role),
            authmethod: AuthMethod::Anonymous.name(),
            authprovider: "static",
        };
        self.welcome(session, identity, features, None, out);
    }

    /// A session id no local session holds.
    pub(super) fn new_session_id(&mut self) -> u64 {
        loop {
            let id = self.random_ids.next_id();
            if !self.sessions.id_in_use(id) {
                break id;
            }
        }
    }

    /// WELCOME: the session is established as `identity`. `authextra` goes into
    /// `WELCOME.Details.authextra` (WAMP-SCRAM's server signature).
    pub(super) fn welcome(
        &mut self,
        session: SessionKey,
        identity: Identity,
        features: PeerFeatures,
        authextra: Option<Dict<'static>>,
        out: &mut Vec<Action>,
    ) {
        let serializer = self.sessions[session].serializer;
        let id = identity.id;
        let realm = identity.realm;
        let mut welcome_details = Dict::with_capacity(8);
        welcome_details.insert("roles", self.welcome_roles.clone());
        welcome_details.insert(
            "realm",
            Value::Str(Cow::Borrowed(&self.realms.get(realm).name)),
        );
        welcome_details.insert("authid", Value::Str(Cow::Borrowed(&identity.authid)));
        welcome_details.insert("authrole", Value::Str(Cow::Borrowed(&identity.authrole)));
        welcome_details.insert("authmethod", identity.authmethod);
        welcome_details.insert("authprovider", identity.authprovider);
        if let Some(authextra) = authextra {
            welcome_details.insert("authextra", Value::Dict(authextra));
        }
        welcome_details.insert("agent", AGENT);
        let welcome = Message::Welcome {
            session: id,
            details: welcome_details,
        };
        if let Err(error) = self.outbox.send(out, session, serializer, &welcome) {
            // Cannot happen for a router-built message; never leave the client hanging.
            self.note_encode_error(session, "WELCOME", &error);
            self.stop_waiting(session);
            out.push(Action::Close {
                session,
                reason: CloseReason::Done,
            });
            return;
        }

        self.facts.push(Fact::SessionJoined {
            realm: self.realms.get(realm).name.clone(),
            session: id,
            authid: identity.authid.clone(),
            authrole: identity.authrole.clone(),
            authmethod: identity.authmethod,
            authprovider: identity.authprovider,
            transport: self.sessions[session].transport.clone(),
        });
        let state = &mut self.sessions[session];
        match std::mem::replace(&mut state.phase, Phase::Established(identity)) {
            Phase::ExpectHello { deadline } => self.timers.cancel(deadline),
            Phase::Authenticating(auth) => self.timers.cancel(auth.deadline),
            Phase::Established(_) | Phase::Closing => {}
        }
        state.features = features;
        self.sessions.claim_id(id, session);
        self.realms.get_mut(realm).sessions += 1;
        self.stats.sessions_established += 1;
    }

    /// ABORT with `reason`, then Close: a HELLO the router will not accept.
    fn reject_hello(
        &mut self,
        session: SessionKey,
        reason: &'static str,
        text: Cow<'static, str>,
        out: &mut Vec<Action>,
    ) {
        let state = &self.sessions[session];
        if let Some(suppressed) = self.logs.hello_rejected.allow(self.now) {
            let peer = &state.transport.peer;
            tracing::info!(%peer, reason, suppressed, "HELLO rejected: {text}");
        }
        self.stats.hellos_rejected += 1;
        self.abort_before_welcome(session, reason, text, out);
    }
}
