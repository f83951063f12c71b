//! Realms: the configured ones plus those auto-created on first HELLO (or on the first update
//! from another shard about them), which go again once nothing of them is left on the shard.
//! Each realm owns its dealer and broker tables; sessions refer to their realm by a dense
//! [`RealmId`], which is local to the shard (other shards name realms).
//!
//! A configuration reload (`reconfigure.rs`) adds realms ([`Realms::configure`], which also
//! adopts an auto-created realm of that name) and retires those no longer configured
//! ([`Realms::retire`]): a retired realm refuses new HELLOs, keeps serving the sessions it has,
//! and stays in the table (empty once they left) until the process restarts, so no `RealmId`
//! held anywhere (a session, an op in flight, an internal caller) can dangle.

use std::sync::Arc;

use slab::Slab;

use super::authn::Principals;
use super::authz::Roles;
use super::broker::Subscriptions;
use super::cluster::PendingJoins;
use super::dealer::Registry;
use super::history::HistoryTopics;
use super::retention::RetainedEvents;
use super::{fast_map, FastMap, RealmConfig, ShardId};

/// Index of a realm in [`Realms`] (never leaves the process).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RealmId(pub(crate) u32);

pub(crate) struct Realm {
    /// Shared with the messages to other shards, which name realms by text.
    pub(crate) name: Arc<str>,
    pub(crate) registry: Registry,
    pub(crate) subscriptions: Subscriptions,
    /// Topics whose first local subscribers wait for this shard's Join (several shards only).
    pub(crate) joins: PendingJoins,
    /// Established sessions in this realm.
    pub(crate) sessions: usize,
    /// Not in the configuration: created by a HELLO (`auto_create_realms`) or by another
    /// shard's update, and removed again once nothing of it is left here.
    pub(crate) auto_created: bool,
    /// Every INVOCATION discloses its caller (`RealmConfig::disclose_caller`).
    pub(crate) disclose_caller: bool,
    /// Every EVENT discloses its publisher (`RealmConfig::disclose_publisher`).
    pub(crate) disclose_publisher: bool,
    /// The realm's retained events, this shard's copy (`retention.rs`).
    pub(crate) retained: RetainedEvents,
    /// The realm's history subscriptions, with the events of those this shard owns
    /// (`history.rs`; configured realms only).
    pub(crate) history: HistoryTopics,
    /// Roles and permissions (`authz.rs`): every session of a realm without roles may do
    /// everything.
    pub(crate) roles: Roles,
    /// Who may authenticate into this realm (`authn.rs`).
    pub(crate) principals: Principals,
    /// Removed from the configuration by a reload: new HELLOs are refused, its sessions stay
    /// (see the module text). Configuring it again un-retires it.
    pub(crate) retired: bool,
    /// Listed in `Realms::candidates`.
    candidate: bool,
}

impl Realm {
    /// Nothing of this realm is left on this shard (the router also checks its in-flight ops).
    pub(crate) fn is_unused(&self) -> bool {
        self.is_unused_but_retained() && self.retained.len() == 0
    }

    /// Nothing but retained events is left of this realm here: they stay until replaced by
    /// one that does not fit, so a sweep need not look again before that.
    pub(crate) fn is_unused_but_retained(&self) -> bool {
        self.sessions == 0
            && self.registry.len() == 0
            && self.subscriptions.len() == 0
            && self.joins.is_empty()
    }
}

/// The realms of one shard. Auto-created realms are removed when unused (see
/// `Router::sweep_realms`), so ids are slab keys that may be reused: a [`RealmId`] is only
/// held where the realm is in use (an established session, an in-flight op), which keeps it
/// from being removed.
pub(crate) struct Realms {
    realms: Slab<Realm>,
    by_name: FastMap<Box<str>, RealmId>,
    /// Auto-created realms now.
    auto_created: usize,
    /// Auto-created realms that may have become unused.
    candidates: Vec<RealmId>,
}

impl Realms {
    /// The configured realms, with the ids of their history subscriptions (per realm, in
    /// configuration order).
    pub(crate) fn new(configured: &[RealmConfig], history_ids: &[Vec<(u64, ShardId)>]) -> Realms {
        let mut realms = Realms {
            realms: Slab::new(),
            by_name: fast_map(),
            auto_created: 0,
            candidates: Vec::new(),
        };
        for (config, history_ids) in configured.iter().zip(history_ids) {
            let id = realms.configure(config);
            realms.get_mut(id).history = HistoryTopics::new(&config.history, history_ids);
        }
        realms
    }

    /// Makes `config` a configured realm: created if missing, adopted if it was auto-created
    /// (it is no longer removed when unused), un-retired if a reload had removed it; its
    /// policies, roles and principals become the configured ones. History is not touched: its
    /// subscription ids are reserved from the configuration at start (`history::reserve_ids`),
    /// so history entries change only with a restart.
    pub(crate) fn configure(&mut self, config: &RealmConfig) -> RealmId {
        let id = self.get_or_insert(&config.name, false);
        let realm = &mut self.realms[id.0 as usize];
        if realm.auto_created {
            realm.auto_created = false;
            self.auto_created -= 1;
            if realm.candidate {
                realm.candidate = false;
                self.candidates.retain(|&candidate| candidate != id);
            }
        }
        realm.retired = false;
        realm.disclose_caller = config.disclose_caller;
        realm.disclose_publisher = config.disclose_publisher;
        realm.roles = Roles::new(&config.roles);
        realm.principals = Principals::new(&config.principals);
        id
    }

    /// A reload removed configured realm `id` from the configuration: it refuses new HELLOs.
    /// Its roles stay, for the sessions it still has; its principals go (nobody can
    /// authenticate into it any more).
    pub(crate) fn retire(&mut self, id: RealmId) {
        let realm = &mut self.realms[id.0 as usize];
        debug_assert!(!realm.auto_created);
        realm.retired = true;
        realm.principals = Principals::default();
    }

    /// The configured (not auto-created) realms that are not retired, with their ids.
    pub(crate) fn configured(&self) -> impl Iterator<Item = (RealmId, &Realm)> {
        self.realms
            .iter()
            .filter(|(_, realm)| !realm.auto_created && !realm.retired)
            .map(|(key, realm)| (RealmId(key as u32), realm))
    }

    pub(crate) fn find(&self, name: &str) -> Option<RealmId> {
        self.by_name.get(name).copied()
    }

    /// The realm `name`, created if it does not exist: another shard's update is about it, or
    /// a HELLO asks for it under `auto_create_realms` (the caller checked the bound).
    pub(crate) fn get_or_create(&mut self, name: &str) -> RealmId {
        self.get_or_insert(name, true)
    }

    fn get_or_insert(&mut self, name: &str, auto_created: bool) -> RealmId {
        if let Some(id) = self.find(name) {
            return id;
        }
        let id = RealmId(u32::try_from(self.realms.vacant_key()).expect("fewer than 2^32 realms"));
        self.realms.insert(Realm {
            name: name.into(),
            registry: Registry::new(),
            subscriptions: Subscriptions::new(),
            joins: PendingJoins::default(),
            sessions: 0,
            auto_created,
            disclose_caller: false,
            disclose_publisher: false,
            retained: RetainedEvents::new(),
            history: HistoryTopics::default(),
            roles: Roles::default(),
            principals: Principals::default(),
            retired: false,
            candidate: false,
        });
        self.by_name.insert(name.into(), id);
        if auto_created {
            self.auto_created += 1;
            // Created for another shard's update, it may never get a session here.
            self.mark_candidate(id);
        }
        id
    }

    /// Auto-created realms on this shard now.
    pub(crate) fn auto_created(&self) -> usize {
        self.auto_created
    }

    pub(crate) fn len(&self) -> usize {
        self.realms.len()
    }

    /// Notes that `id` may have become unused (its last local session left).
    pub(crate) fn mark_candidate(&mut self, id: RealmId) {
        let realm = &mut self.realms[id.0 as usize];
        if realm.auto_created && !realm.candidate {
            realm.candidate = true;
            self.candidates.push(id);
        }
    }

    /// True when some auto-created realm may have become unused.
    #[inline]
    pub(crate) fn has_candidates(&self) -> bool {
        !self.candidates.is_empty()
    }

    /// The candidates, handed over to be checked; the ones still waiting are given back with
    /// [`Realms::mark_candidate`].
    pub(crate) fn take_candidates(&mut self) -> Vec<RealmId> {
        for id in &self.candidates {
            self.realms[id.0 as usize].candidate = false;
        }
        std::mem::take(&mut self.candidates)
    }

    /// Forgets an unused auto-created realm (the caller checked it is unused).
    pub(crate) fn remove(&mut self, id: RealmId) {
        let realm = self.realms.remove(id.0 as usize);
        debug_assert!(realm.auto_created && realm.is_unused());
        if realm.candidate {
            // The id may be reused by the next realm; it must not be a candidate then.
            self.candidates.retain(|&candidate| candidate != id);
        }
        self.by_name.remove(&*realm.name);
        self.auto_created -= 1;
    }

    pub(crate) fn get(&self, id: RealmId) -> &Realm {
        &self.realms[id.0 as usize]
    }

    pub(crate) fn get_mut(&mut self, id: RealmId) -> &mut Realm {
        &mut self.realms[id.0 as usize]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Realm> {
        self.realms.iter().map(|(_, realm)| realm)
    }
}
