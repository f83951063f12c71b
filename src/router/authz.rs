//! Authorization: what a session may do, decided by its role's permissions in its realm (the
//! last rule of the admission step, `admission.rs`). A realm that defines no roles authorizes
//! everything (the embedded default: one open realm); a realm that defines roles admits only
//! sessions whose role it defines, and each action (call, register, publish, subscribe) on a
//! URI only where a permission of that role allows it. The `wamp.*` meta procedures and
//! topics are URIs like any other here, so calling `wamp.session.kill` needs a permission.
//!
//! A permission names a URI with a match policy, as Crossbar.io's static authorization does:
//! `exact`, `prefix` (a string prefix; `""` covers every URI) or `wildcard` (empty components
//! match any one). The most specific permission that covers a URI decides, alone: an exact one,
//! else the longest prefix, else the best wildcard (the RPC precedence of `patterns.rs`). No
//! permission covers it: denied. A permission may also disclose the caller or the publisher of
//! what it allows (Crossbar.io's `disclose`).
//!
//! Decisions are cached per role on each shard (bounded; cleared when full), so the pattern
//! walk runs once per URI, not per message.
//!
//! A configuration reload (`reconfigure.rs`) replaces a realm's roles whole (their caches
//! start empty) and maps each established session to the new role of the same *name*; a
//! session whose role is gone holds [`RoleId::REVOKED`] and is denied whatever needs a
//! permission. The dynamic authorizer's answers each session kept are forgotten too.

use bytes::Bytes;

use super::admission::{Admitted, Asked};
use super::dealer::MatchPolicy;
use super::internal_caller::Purpose;
use super::patterns::PatternIndex;
use super::{fast_map, Action, FastMap, Router, SessionKey};
use crate::wire::{Dict, Message, Value};

/// Entries one role's decision cache holds before it is cleared.
const DECISION_CACHE_ENTRIES: usize = 4096;

/// What a permission allows, as bits.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Perms(u8);

impl Perms {
    pub const CALL: Perms = Perms(1);
    pub const REGISTER: Perms = Perms(2);
    pub const PUBLISH: Perms = Perms(4);
    pub const SUBSCRIBE: Perms = Perms(8);
    /// Callees of calls this permission allows learn who calls.
    pub const DISCLOSE_CALLER: Perms = Perms(16);
    /// Subscribers of events this permission allows learn who published.
    pub const DISCLOSE_PUBLISHER: Perms = Perms(32);
    pub const NONE: Perms = Perms(0);

    pub fn has(self, wanted: Perms) -> bool {
        self.0 & wanted.0 == wanted.0
    }

    #[must_use]
    pub fn with(self, more: Perms) -> Perms {
        Perms(self.0 | more.0)
    }

    /// The action bit of an action name in the config (`call`, `register`, `publish`,
    /// `subscribe`).
    pub fn of_action(name: &str) -> Option<Perms> {
        match name {
            "call" => Some(Perms::CALL),
            "register" => Some(Perms::REGISTER),
            "publish" => Some(Perms::PUBLISH),
            "subscribe" => Some(Perms::SUBSCRIBE),
            _ => None,
        }
    }
}

/// One permission of a role, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermissionConfig {
    pub uri: String,
    pub matching: MatchPolicy,
    pub allow: Perms,
}

/// One role of a realm, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleConfig {
    pub name: String,
    pub permissions: Vec<PermissionConfig>,
    /// A procedure of this realm that decides instead of the permissions (a dynamic
    /// authorizer): `authorize(session, uri, action, options)`, answered per session, action
    /// and URI, and cached for the session unless it says `cache: false`.
    pub authorizer: Option<String>,
}

/// Index of a role in its realm's [`Roles`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoleId(pub(crate) u32);

impl RoleId {
    /// A session's role in a realm without roles: everything is allowed. A sentinel rather than
    /// an `Option`, so that `Phase` keeps a plain tag: the established-phase check on every
    /// message stays two instructions, not a niche decode.
    pub(crate) const UNRESTRICTED: RoleId = RoleId(u32::MAX);

    /// The role of a session whose role a reload removed from its realm: nothing is allowed.
    /// Denying rather than closing the session keeps the reload's promise not to drop
    /// sessions, and is what a careful operator expects of a removed role: no rights, no
    /// surprise disconnect of a client that may be about to leave on its own (whoever wants
    /// them gone has `wamp.session.kill_by_authrole`). No role index reaches it: a realm has
    /// far fewer than 2^32 - 1 roles.
    pub(crate) const REVOKED: RoleId = RoleId(u32::MAX - 1);

    pub(crate) fn of(role: Option<RoleId>) -> RoleId {
        role.unwrap_or(RoleId::UNRESTRICTED)
    }

    /// The role to check, `None` when everything is allowed.
    #[inline]
    pub(crate) fn restricted(self) -> Option<RoleId> {
        (self != RoleId::UNRESTRICTED).then_some(self)
    }
}

/// One role, compiled for lookups.
struct Role {
    name: Box<str>,
    authorizer: Option<Box<str>>,
    exact: FastMap<Box<str>, Perms>,
    patterns: PatternIndex<Perms>,
    decisions: FastMap<Box<str>, Perms>,
}

impl Role {
    fn new(config: &RoleConfig) -> Role {
        let mut role = Role {
            name: config.name.as_str().into(),
            authorizer: config.authorizer.as_deref().map(Into::into),
            exact: fast_map(),
            patterns: PatternIndex::new(),
            decisions: fast_map(),
        };
        for permission in &config.permissions {
            // Two permissions of one (uri, match): the config loader refuses it; here the later
            // one wins rather than panicking.
            match permission.matching {
                MatchPolicy::Exact => {
                    role.exact
                        .insert(permission.uri.as_str().into(), permission.allow);
                }
                MatchPolicy::Prefix => {
                    role.patterns
                        .insert_prefix(&permission.uri, permission.allow);
                }
                MatchPolicy::Wildcard => {
                    role.patterns
                        .insert_wildcard(&permission.uri, permission.allow);
                }
            }
        }
        role
    }

    /// The permissions of the most specific entry covering `uri` (none: [`Perms::NONE`]).
    fn decide(&mut self, uri: &str) -> Perms {
        if let Some(&perms) = self.decisions.get(uri) {
            return perms;
        }
        let perms = match self.exact.get(uri) {
            Some(&perms) => perms,
            None => self
                .patterns
                .best(uri)
                .map_or(Perms::NONE, |(perms, _)| perms),
        };
        if self.decisions.len() >= DECISION_CACHE_ENTRIES {
            self.decisions.clear();
        }
        self.decisions.insert(uri.into(), perms);
        perms
    }
}

/// The roles of one realm on one shard.
#[derive(Default)]
pub(crate) struct Roles {
    /// `None`: the realm defines no roles and authorizes everything.
    roles: Option<Vec<Role>>,
}

impl Roles {
    pub(crate) fn new(configured: &[RoleConfig]) -> Roles {
        if configured.is_empty() {
            return Roles { roles: None };
        }
        Roles {
            roles: Some(configured.iter().map(Role::new).collect()),
        }
    }

    /// The role called `name`: `Ok(None)` when the realm authorizes everything, `Err(())` when
    /// it defines roles and not this one.
    pub(crate) fn find(&self, name: &str) -> Result<Option<RoleId>, ()> {
        let Some(roles) = &self.roles else {
            return Ok(None);
        };
        match roles.iter().position(|role| &*role.name == name) {
            Some(index) => Ok(Some(RoleId(index as u32))),
            None => Err(()),
        }
    }

    /// The role to hold after a reload for a session whose role is called `name`: the new
    /// role of that name, [`RoleId::UNRESTRICTED`] when the realm now defines no roles, or
    /// [`RoleId::REVOKED`] when it defines roles and not this one.
    pub(crate) fn remap(&self, name: &str) -> RoleId {
        match self.find(name) {
            Ok(role) => RoleId::of(role),
            Err(()) => RoleId::REVOKED,
        }
    }

    /// The dynamic authorizer of `role`, if it has one (its permissions then do not count).
    pub(crate) fn authorizer(&self, role: RoleId) -> Option<&str> {
        self.roles
            .as_ref()?
            .get(role.0 as usize)?
            .authorizer
            .as_deref()
    }

    /// What `role` may do on `uri` ([`RoleId::REVOKED`]: nothing).
    pub(crate) fn decide(&mut self, role: RoleId, uri: &str) -> Perms {
        match self
            .roles
            .as_mut()
            .and_then(|roles| roles.get_mut(role.0 as usize))
        {
            Some(role) => role.decide(uri),
            // A session of a realm without roles holds no RoleId; a revoked one is no index.
            None => Perms::NONE,
        }
    }
}

/// Messages one session may send while its first one waits for the dynamic authorizer; one
/// more closes the session (a client that floods an authorizer that does not answer).
pub(crate) const MAX_HELD_MESSAGES: usize = 256;

/// Decisions of the dynamic authorizer one session keeps before they are forgotten.
const SESSION_DECISIONS: usize = 1024;

/// One answer of the dynamic authorizer.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Decided {
    /// The action (and disclosure) allowed, or nothing.
    pub(crate) perms: Perms,
    /// `cache: false`: good for the message that asked only.
    pub(crate) once: bool,
    /// The authorizer failed (no callee, timeout, unusable answer): the message gets
    /// `wamp.error.authorization_failed`.
    pub(crate) failed: bool,
}

/// A session's dealings with its role's dynamic authorizer: the answers it got, and the
/// messages waiting (in arrival order) while a question is out.
#[derive(Default)]
pub(crate) struct SessionAuthz {
    decisions: FastMap<Box<str>, Decided>,
    pub(crate) held: std::collections::VecDeque<bytes::Bytes>,
}

impl SessionAuthz {
    fn key(action: Perms, uri: &str) -> String {
        format!("{}\0{uri}", action.0)
    }

    /// The decision for `action` on `uri`, if known (a one-time one is used up).
    pub(crate) fn decided(&mut self, action: Perms, uri: &str) -> Option<Decided> {
        let key = SessionAuthz::key(action, uri);
        let decided = *self.decisions.get(key.as_str())?;
        if decided.once {
            self.decisions.remove(key.as_str());
        }
        Some(decided)
    }

    /// Forgets every answer (a reload may have changed the role's authorizer); the messages
    /// waiting stay, in order.
    pub(crate) fn forget_decisions(&mut self) {
        self.decisions.clear();
    }

    pub(crate) fn remember(&mut self, action: Perms, uri: &str, decided: Decided) {
        if self.decisions.len() >= SESSION_DECISIONS {
            self.decisions.clear();
        }
        self.decisions
            .insert(SessionAuthz::key(action, uri).into(), decided);
    }
}

impl Router {
    /// Asks the role's authorizer whether `me` may `action` (`name`) the request's URI: the
    /// CALL `procedure(session, uri, action, options)` from the router (Crossbar.io's
    /// signature), `session` being a dict of the session's identity. The request waits, and
    /// every later message of the session behind it, until the answer comes.
    pub(super) fn ask_authorizer(
        &mut self,
        me: Admitted,
        procedure: &str,
        action: Perms,
        name: &str,
        asked: Asked<'_, '_>,
        out: &mut Vec<Action>,
    ) {
        let state = &mut self.sessions[me.key];
        let Some(identity) = state.identity() else {
            return;
        };
        let mut session = Dict::new();
        session.insert("session", identity.id);
        session.insert(
            "realm",
            Value::from(self.realms.get(me.realm).name.to_string()),
        );
        session.insert("authid", Value::from(identity.authid.to_string()));
        session.insert("authrole", Value::from(identity.authrole.to_string()));
        session.insert("authmethod", identity.authmethod);
        session.insert("authprovider", identity.authprovider);
        let options = match asked.message {
            Message::Call { options, .. }
            | Message::Publish { options, .. }
            | Message::Register { options, .. }
            | Message::Subscribe { options, .. } => options.clone().into_owned(),
            _ => Dict::new(),
        };
        state.last_request_id = asked.last_request_id;
        state.held = true;
        state
            .authz
            .get_or_insert_with(Default::default)
            .held
            .push_front(asked.frame.clone());
        let args = vec![
            Value::Dict(session),
            Value::from(asked.uri.to_string()),
            Value::from(name.to_string()),
            Value::Dict(options),
        ];
        let purpose = Purpose::Authorize {
            session: me.key,
            session_id: me.id,
            action,
            uri: asked.uri.into(),
        };
        let realm = self.realms.get(me.realm).name.to_string();
        self.call_from_router(&realm, procedure, args, purpose, out);
    }

    /// A message of a session waiting for its authorizer: it waits too, in order.
    #[cold]
    pub(super) fn hold(&mut self, session: SessionKey, frame: Bytes, out: &mut Vec<Action>) {
        let authz = self.sessions[session]
            .authz
            .get_or_insert_with(Default::default);
        if authz.held.len() >= MAX_HELD_MESSAGES {
            let text = format!(
                "more than {MAX_HELD_MESSAGES} messages waited for the authorizer of this session's role"
            );
            self.protocol_violation(session, text, out);
        } else {
            authz.held.push_back(frame);
        }
        self.settle(out);
    }

    /// The authorizer answered about `action` on `uri` for `session`: `true`/`false`, or a dict
    /// with `allow`, `disclose` and `cache` (default true). The waiting messages go on, the first
    /// one with this answer, until one needs another answer.
    pub(super) fn authorizer_answered(
        &mut self,
        session: SessionKey,
        session_id: u64,
        action: Perms,
        uri: &str,
        answer: Result<Vec<Value<'_>>, String>,
        out: &mut Vec<Action>,
    ) {
        if !self
            .sessions
            .get(session)
            .is_some_and(|state| state.is(session_id))
        {
            return;
        }
        let disclose = if action == Perms::CALL {
            Perms::DISCLOSE_CALLER
        } else if action == Perms::PUBLISH {
            Perms::DISCLOSE_PUBLISHER
        } else {
            Perms::NONE
        };
        let decided = match answer.as_deref().map(<[Value<'_>]>::first) {
            Ok(Some(Value::Bool(allow))) => Some(Decided {
                perms: if *allow { action } else { Perms::NONE },
                once: false,
                failed: false,
            }),
            Ok(Some(Value::Dict(answer))) => answer.get_bool("allow").map(|allow| {
                let mut perms = if allow { action } else { Perms::NONE };
                if allow && answer.get_bool("disclose") == Some(true) {
                    perms = perms.with(disclose);
                }
                Decided {
                    perms,
                    once: answer.get_bool("cache") == Some(false),
                    failed: false,
                }
            }),
            Ok(_) | Err(_) => None,
        };
        let decided = decided.unwrap_or_else(|| {
            if let Some(suppressed) = self.logs.authorization_denied.allow(self.now) {
                tracing::warn!(
                    uri,
                    suppressed,
                    "the dynamic authorizer failed or answered something unusable: {answer:?}"
                );
            }
            Decided {
                perms: Perms::NONE,
                once: true,
                failed: true,
            }
        });
        if let Some(authz) = self.sessions[session].authz.as_mut() {
            authz.remember(action, uri, decided);
        }
        self.release_held(session, out);
    }

    /// Replays the held messages of `session` in order, until none is left or one waits for
    /// the authorizer again (it goes back to the front).
    fn release_held(&mut self, session: SessionKey, out: &mut Vec<Action>) {
        loop {
            let Some(state) = self.sessions.get_mut(session) else {
                return;
            };
            if !state.is_established() {
                return;
            }
            let serializer = state.serializer;
            let next = state
                .authz
                .as_mut()
                .and_then(|authz| authz.held.pop_front());
            state.held = false;
            let Some(frame) = next else {
                return;
            };
            self.route_frame(session, serializer, frame, out);
            if self.sessions.get(session).map_or(true, |state| state.held) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permission(uri: &str, matching: MatchPolicy, allow: Perms) -> PermissionConfig {
        PermissionConfig {
            uri: uri.into(),
            matching,
            allow,
        }
    }

    #[test]
    fn the_most_specific_permission_decides_alone() {
        let config = RoleConfig {
            name: "user".into(),
            authorizer: None,
            permissions: vec![
                permission("", MatchPolicy::Prefix, Perms::SUBSCRIBE),
                permission(
                    "com.app.",
                    MatchPolicy::Prefix,
                    Perms::CALL.with(Perms::SUBSCRIBE),
                ),
                permission("com.app.admin", MatchPolicy::Exact, Perms::NONE),
                permission("com..public", MatchPolicy::Wildcard, Perms::PUBLISH),
            ],
        };
        let mut roles = Roles::new(&[config]);
        let user = roles.find("user").unwrap().unwrap();
        assert!(roles.find("admin").is_err());
        assert_eq!(
            roles.decide(user, "com.app.add"),
            Perms::CALL.with(Perms::SUBSCRIBE)
        );
        // Cached answers are the same answers.
        assert_eq!(
            roles.decide(user, "com.app.add"),
            Perms::CALL.with(Perms::SUBSCRIBE)
        );
        assert_eq!(roles.decide(user, "com.app.admin"), Perms::NONE);
        assert_eq!(roles.decide(user, "com.x.public"), Perms::SUBSCRIBE);
        assert_eq!(roles.decide(user, "org.x.public"), Perms::SUBSCRIBE);
        assert_eq!(roles.decide(user, "wamp.session.kill"), Perms::SUBSCRIBE);
    }

    #[test]
    fn a_wildcard_decides_where_no_prefix_covers() {
        let config = RoleConfig {
            name: "r".into(),
            authorizer: None,
            permissions: vec![permission(
                "com..public",
                MatchPolicy::Wildcard,
                Perms::PUBLISH,
            )],
        };
        let mut roles = Roles::new(&[config]);
        let role = roles.find("r").unwrap().unwrap();
        assert_eq!(roles.decide(role, "com.x.public"), Perms::PUBLISH);
        assert_eq!(roles.decide(role, "com.x.y.public"), Perms::NONE);
    }

    #[test]
    fn a_realm_without_roles_enforces_nothing() {
        let roles = Roles::new(&[]);
        assert_eq!(roles.find("anything"), Ok(None));
        assert_eq!(roles.find(""), Ok(None));
    }

    #[test]
    fn the_decision_cache_stays_bounded() {
        let config = RoleConfig {
            name: "r".into(),
            authorizer: None,
            permissions: vec![permission("", MatchPolicy::Prefix, Perms::CALL)],
        };
        let mut roles = Roles::new(&[config]);
        let role = roles.find("r").unwrap().unwrap();
        for n in 0..DECISION_CACHE_ENTRIES * 2 + 5 {
            assert_eq!(roles.decide(role, &format!("com.{n}")), Perms::CALL);
        }
        let cached = roles.roles.as_ref().unwrap()[0].decisions.len();
        assert!(cached <= DECISION_CACHE_ENTRIES, "{cached}");
    }
}
