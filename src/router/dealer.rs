//! Dealer tables: the registrations of one realm (exact match, single callee per procedure) and
//! the router's pending calls. With one shard the registry is the table; with several it is
//! this shard's read replica, written only by the owner's updates (`replication.rs`), and a
//! pending call may have its caller or its callee on another shard.

use slab::Slab;

use super::ids::ScopedIds;
use super::peer::SessionRef;
use super::{fast_map, FastMap, SessionKey, ShardId};
use crate::serializer::Serializer;

/// One registered procedure.
#[derive(Clone, Debug)]
pub(crate) struct Registration {
    pub(crate) id: u64,
    pub(crate) procedure: Box<str>,
    /// The callee; on another shard when `callee.shard` is not this one.
    pub(crate) callee: SessionRef,
    /// REGISTER.Options.disclose_caller: every INVOCATION carries the caller's identity.
    pub(crate) disclose_caller: bool,
}

/// Why a REGISTER was refused by the table.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum RegisterRefusal {
    ProcedureAlreadyExists,
}

/// The registrations of one realm.
pub(crate) struct Registry {
    entries: Slab<Registration>,
    by_procedure: FastMap<Box<str>, usize>,
    by_id: FastMap<u64, usize>,
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            entries: Slab::new(),
            by_procedure: fast_map(),
            by_id: fast_map(),
        }
    }

    pub(crate) fn register(
        &mut self,
        ids: &mut ScopedIds,
        procedure: &str,
        callee: SessionRef,
        disclose_caller: bool,
    ) -> Result<u64, RegisterRefusal> {
        if self.by_procedure.contains_key(procedure) {
            return Err(RegisterRefusal::ProcedureAlreadyExists);
        }
        let id = ids.next_id(|id| self.by_id.contains_key(&id));
        self.insert(id, procedure, callee, disclose_caller);
        Ok(id)
    }

    /// Applies a registration the owner decided (replica write). A stale entry for the same
    /// procedure or id cannot exist when the owner's updates arrive in order; should one exist
    /// anyway it is replaced, so the replica converges on the owner's table.
    pub(crate) fn insert(
        &mut self,
        id: u64,
        procedure: &str,
        callee: SessionRef,
        disclose_caller: bool,
    ) {
        if let Some(&index) = self.by_procedure.get(procedure) {
            tracing::error!(procedure, id, "replica already had the procedure; replaced");
            let old = self.entries.remove(index);
            self.by_id.remove(&old.id);
            self.by_procedure.remove(&old.procedure);
        }
        if self.by_id.contains_key(&id) {
            tracing::error!(
                procedure,
                id,
                "replica already had the registration id; replaced"
            );
            self.remove(id);
        }
        let procedure: Box<str> = procedure.into();
        let index = self.entries.insert(Registration {
            id,
            procedure: procedure.clone(),
            callee,
            disclose_caller,
        });
        self.by_procedure.insert(procedure, index);
        self.by_id.insert(id, index);
    }

    /// Removes registration `id` when `callee` owns it.
    pub(crate) fn unregister(&mut self, id: u64, callee: SessionRef) -> Option<Registration> {
        let index = *self.by_id.get(&id)?;
        if self.entries[index].callee != callee {
            return None;
        }
        self.remove(id)
    }

    /// Removes registration `id` whoever owns it (replica write).
    pub(crate) fn remove(&mut self, id: u64) -> Option<Registration> {
        let index = self.by_id.remove(&id)?;
        let registration = self.entries.remove(index);
        self.by_procedure.remove(&registration.procedure);
        Some(registration)
    }

    pub(crate) fn lookup(&self, procedure: &str) -> Option<&Registration> {
        self.by_procedure
            .get(procedure)
            .map(|&index| &self.entries[index])
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Registration> {
        self.by_id.get(&id).map(|&index| &self.entries[index])
    }

    pub(crate) fn len(&self) -> usize {
        debug_assert_eq!(self.entries.len(), self.by_id.len());
        debug_assert_eq!(self.entries.len(), self.by_procedure.len());
        self.entries.len()
    }
}

/// A handle on a pending call: slab index plus the generation it was created with, so a stale
/// handle (slot reused by a newer call) never reaches the wrong call.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PendingKey {
    index: usize,
    generation: u64,
}

/// Who waits for a pending call's answer.
#[derive(Clone, Debug)]
pub(crate) enum Caller {
    Local(SessionKey),
    /// On shard `shard`, whose own pending entry is `call`; the answer goes back as a `Reply`
    /// encoded in `serializer`.
    Remote {
        shard: ShardId,
        call: PendingKey,
        serializer: Serializer,
    },
}

/// Who owes a pending call's answer.
#[derive(Clone, Debug)]
pub(crate) enum Callee {
    /// On this shard, as INVOCATION `invocation` (the callee's sequence).
    Local {
        session: SessionKey,
        invocation: u64,
    },
    /// On shard `shard`, which owns the invocation (and its id).
    Remote { shard: ShardId },
}

/// A call forwarded to a callee and not answered yet. Caller and callee are never both remote:
/// the entry lives on the caller's shard, the callee's shard, or both (one entry each).
#[derive(Clone, Debug)]
pub(crate) struct PendingCall {
    pub(crate) caller: Caller,
    /// The CALL's request id, mirrored in RESULT/ERROR.
    pub(crate) caller_request: u64,
    pub(crate) callee: Callee,
    generation: u64,
}

/// All pending calls of the router.
pub(crate) struct PendingCalls {
    calls: Slab<PendingCall>,
    next_generation: u64,
}

impl PendingCalls {
    pub(crate) fn new() -> PendingCalls {
        PendingCalls {
            calls: Slab::new(),
            next_generation: 0,
        }
    }

    pub(crate) fn insert(
        &mut self,
        caller: Caller,
        caller_request: u64,
        callee: Callee,
    ) -> PendingKey {
        self.next_generation += 1;
        let generation = self.next_generation;
        let index = self.calls.insert(PendingCall {
            caller,
            caller_request,
            callee,
            generation,
        });
        PendingKey { index, generation }
    }

    pub(crate) fn get(&self, key: PendingKey) -> Option<&PendingCall> {
        self.calls
            .get(key.index)
            .filter(|call| call.generation == key.generation)
    }

    pub(crate) fn remove(&mut self, key: PendingKey) -> Option<PendingCall> {
        self.get(key)?;
        Some(self.calls.remove(key.index))
    }

    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_callee_per_procedure_and_only_the_owner_unregisters() {
        let mut registry = Registry::new();
        let mut ids = ScopedIds::new(0, 1);
        let session = |key| SessionRef {
            shard: 0,
            key: SessionKey(key),
            session_id: key as u64,
        };
        let id = registry
            .register(&mut ids, "com.a", session(1), false)
            .unwrap();
        assert_eq!(
            registry.register(&mut ids, "com.a", session(2), false),
            Err(RegisterRefusal::ProcedureAlreadyExists)
        );
        assert!(registry.unregister(id, session(2)).is_none());
        assert_eq!(registry.lookup("com.a").unwrap().id, id);
        assert!(registry.unregister(id, session(1)).is_some());
        assert!(registry.lookup("com.a").is_none());
        assert_eq!(registry.len(), 0);
    }

    #[test]
    fn stale_pending_keys_miss() {
        let mut calls = PendingCalls::new();
        let callee = |invocation| Callee::Local {
            session: SessionKey(2),
            invocation,
        };
        let first = calls.insert(Caller::Local(SessionKey(1)), 1, callee(1));
        calls.remove(first).unwrap();
        let second = calls.insert(Caller::Local(SessionKey(1)), 2, callee(2));
        assert!(
            calls.get(first).is_none(),
            "slot reused with a new generation"
        );
        assert!(calls.remove(first).is_none());
        assert_eq!(calls.get(second).unwrap().caller_request, 2);
    }
}
