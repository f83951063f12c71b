//! Realms: the configured ones plus those auto-created on first HELLO (or on the first update
//! from another shard about them). Each realm owns its dealer and broker tables; sessions refer
//! to their realm by a dense [`RealmId`], which is local to the shard (other shards name realms).

use std::sync::Arc;

use super::broker::Subscriptions;
use super::cluster::PendingJoin;
use super::dealer::Registry;
use super::{fast_map, FastMap};

/// Index of a realm in [`Realms`] (never leaves the process).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct RealmId(pub(crate) u32);

pub(crate) struct Realm {
    /// Shared with the messages to other shards, which name realms by text.
    pub(crate) name: Arc<str>,
    pub(crate) registry: Registry,
    pub(crate) subscriptions: Subscriptions,
    /// Topics whose first local subscribers wait for this shard's Join (several shards only).
    pub(crate) joins: FastMap<Box<str>, PendingJoin>,
    /// Established sessions in this realm.
    pub(crate) sessions: usize,
}

pub(crate) struct Realms {
    realms: Vec<Realm>,
    by_name: FastMap<Box<str>, RealmId>,
}

impl Realms {
    pub(crate) fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Realms {
        let mut realms = Realms {
            realms: Vec::new(),
            by_name: fast_map(),
        };
        for name in names {
            realms.get_or_create(name);
        }
        realms
    }

    pub(crate) fn find(&self, name: &str) -> Option<RealmId> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn get_or_create(&mut self, name: &str) -> RealmId {
        if let Some(id) = self.find(name) {
            return id;
        }
        let id = RealmId(u32::try_from(self.realms.len()).expect("fewer than 2^32 realms"));
        self.realms.push(Realm {
            name: name.into(),
            registry: Registry::new(),
            subscriptions: Subscriptions::new(),
            joins: fast_map(),
            sessions: 0,
        });
        self.by_name.insert(name.into(), id);
        id
    }

    pub(crate) fn get(&self, id: RealmId) -> &Realm {
        &self.realms[id.0 as usize]
    }

    pub(crate) fn get_mut(&mut self, id: RealmId) -> &mut Realm {
        &mut self.realms[id.0 as usize]
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Realm> {
        self.realms.iter()
    }
}
