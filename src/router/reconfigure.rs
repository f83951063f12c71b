//! Reconfiguration: a new [`RouterConfig`] (a reloaded configuration file) taking effect on a
//! running shard, without dropping a session. Every shard is handed the same config and
//! applies it on its own ([`Router::handle_reconfigure`]); no message between shards is needed,
//! because nothing here is decided by one shard for the others. Shards take it at slightly
//! different moments (the runtime: within one stop-flag poll of each other), so for a moment a
//! new realm may be configured on some shards only: table updates about it apply everywhere
//! (a shard without it holds it as an auto-created replica, adopted as configured when its
//! reload comes), and a HELLO to it is refused on a shard that does not have it yet.
//!
//! What changes, from the input on:
//! * Realms added are served at once (an auto-created realm of that name becomes a configured
//!   one). A realm removed refuses new HELLOs with `wamp.error.no_such_realm`; its sessions keep
//!   working (calls, events, their roles) until they leave (`realm.rs`).
//! * Roles are replaced whole, with empty decision caches. Each established session keeps its
//!   authrole *name* and gets the permissions the new config gives that name; a session whose
//!   role no longer exists is denied everything that needs a permission
//!   (`authz::RoleId::REVOKED`, where the choice of denying over closing is explained). What a
//!   session registered or subscribed before stays: permissions are checked per request. The
//!   answers of a dynamic authorizer each session kept are forgotten.
//! * Principals are replaced: new HELLOs authenticate against the new ones. A session in the
//!   middle of a challenge finishes against what it was challenged with (its CHALLENGE holds
//!   the secret material, or the dynamic authenticator that judges its ticket); its role is
//!   looked up in the new roles at WELCOME. Sessions of a principal that was removed stay
//!   (`wamp.session.kill_by_authid` ends them).
//! * Limits and rules the router holds (`max_uri_length`, per-session bounds, timeouts,
//!   `strict_request_ids`, `uri_check`, `auto_create_realms`, per-listener authentication
//!   methods) apply to every check made from then on; what was admitted before stays. A timer
//!   already armed (a HELLO or authentication deadline) keeps its deadline.
//!
//! What does not change: a realm's `[[realm.history]]` entries. Their subscription ids are
//! derived from the configuration at start by every shard alike (`history::reserve_ids`), so
//! the loader keeps the running ones and warns that they need a restart. The decoy key of
//! unknown principals (`authn::decoy_key`) stays too: were it derived anew, an unknown authid's
//! challenge would change across a reload while a real principal's would not, telling them
//! apart.

use super::session::Phase;
use super::{Action, Millis, RealmConfig, Router, RouterConfig};

impl Router {
    /// Applies a reloaded configuration (see the module text). The runtime calls it on every
    /// shard with the same `config`; it may push actions (none today, but the settle step runs,
    /// as after every input).
    pub fn handle_reconfigure(&mut self, config: RouterConfig, now: Millis, out: &mut Vec<Action>) {
        self.now = now;
        for realm in &config.realms {
            self.realms.configure(realm);
        }
        let removed: Vec<_> = self
            .realms
            .configured()
            .filter(|(_, realm)| !config.realms.iter().any(|c| *c.name == *realm.name))
            .map(|(id, _)| id)
            .collect();
        for id in removed {
            self.realms.retire(id);
        }

        // Established sessions: the role of the same name in the new roles (internal callers
        // are the router itself and stay unrestricted).
        for (key, session) in self.sessions.iter_mut() {
            if self.internal.is_internal(key) {
                continue;
            }
            if let Phase::Established(identity) = &mut session.phase {
                identity.role = self
                    .realms
                    .get(identity.realm)
                    .roles
                    .remap(&identity.authrole);
            }
            if let Some(authz) = session.authz.as_mut() {
                authz.forget_decisions();
            }
        }

        let callers = internal_caller_realms(&config.realms);
        self.config = config;
        // A realm newly hosting an authenticator or authorizer needs the router's session there.
        self.open_internal_callers(&callers);
        self.settle(out);
    }
}

/// The realms whose router-side caller session is needed: those named by an authenticator, and
/// those with a role that has a dynamic authorizer.
pub(super) fn internal_caller_realms(realms: &[RealmConfig]) -> Vec<String> {
    realms
        .iter()
        .flat_map(|realm| {
            let authenticator = realm.authenticator.as_ref().map(|a| a.realm.clone());
            let authorizer = realm
                .roles
                .iter()
                .any(|role| role.authorizer.is_some())
                .then(|| realm.name.clone());
            authenticator.into_iter().chain(authorizer)
        })
        .collect()
}
