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

use super::dealer::MatchPolicy;
use super::patterns::PatternIndex;
use super::{fast_map, FastMap};

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
}

/// Index of a role in its realm's [`Roles`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoleId(pub(crate) u32);

/// One role, compiled for lookups.
struct Role {
    name: Box<str>,
    exact: FastMap<Box<str>, Perms>,
    patterns: PatternIndex<Perms>,
    decisions: FastMap<Box<str>, Perms>,
}

impl Role {
    fn new(config: &RoleConfig) -> Role {
        let mut role = Role {
            name: config.name.as_str().into(),
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

    /// What `role` may do on `uri`.
    pub(crate) fn decide(&mut self, role: RoleId, uri: &str) -> Perms {
        match &mut self.roles {
            Some(roles) => roles[role.0 as usize].decide(uri),
            // A session of a realm without roles holds no RoleId.
            None => Perms::NONE,
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
