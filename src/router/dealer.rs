//! Dealer tables: the registrations of one realm (exact match, single callee per procedure) and
//! the router's pending calls. They are plain data with a small interface (register, unregister,
//! lookup; insert/get/remove a pending call) so that the multi-shard version can put an owner
//! shard behind the writes without touching the routing code in `rpc.rs`.

use slab::Slab;

use super::ids::ScopedIds;
use super::{fast_map, FastMap, SessionKey};

/// One registered procedure.
#[derive(Clone, Debug)]
pub(crate) struct Registration {
    pub(crate) id: u64,
    pub(crate) procedure: Box<str>,
    pub(crate) callee: SessionKey,
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
        callee: SessionKey,
        disclose_caller: bool,
    ) -> Result<u64, RegisterRefusal> {
        if self.by_procedure.contains_key(procedure) {
            return Err(RegisterRefusal::ProcedureAlreadyExists);
        }
        let id = ids.next_id(|id| self.by_id.contains_key(&id));
        let procedure: Box<str> = procedure.into();
        let index = self.entries.insert(Registration {
            id,
            procedure: procedure.clone(),
            callee,
            disclose_caller,
        });
        self.by_procedure.insert(procedure, index);
        self.by_id.insert(id, index);
        Ok(id)
    }

    /// Removes registration `id` when `callee` owns it.
    pub(crate) fn unregister(&mut self, id: u64, callee: SessionKey) -> Option<Registration> {
        let index = *self.by_id.get(&id)?;
        if self.entries[index].callee != callee {
            return None;
        }
        self.by_id.remove(&id);
        let registration = self.entries.remove(index);
        self.by_procedure.remove(&registration.procedure);
        Some(registration)
    }

    pub(crate) fn lookup(&self, procedure: &str) -> Option<&Registration> {
        self.by_procedure
            .get(procedure)
            .map(|&index| &self.entries[index])
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

/// A call forwarded to a callee and not answered yet.
#[derive(Clone, Debug)]
pub(crate) struct PendingCall {
    pub(crate) caller: SessionKey,
    /// The CALL's request id, mirrored in RESULT/ERROR.
    pub(crate) caller_request: u64,
    pub(crate) callee: SessionKey,
    /// The INVOCATION's request id (callee's sequence).
    pub(crate) invocation: u64,
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
        caller: SessionKey,
        caller_request: u64,
        callee: SessionKey,
        invocation: u64,
    ) -> PendingKey {
        self.next_generation += 1;
        let generation = self.next_generation;
        let index = self.calls.insert(PendingCall {
            caller,
            caller_request,
            callee,
            invocation,
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
        let mut ids = ScopedIds::new();
        let mut registry = Registry::new();
        let id = registry
            .register(&mut ids, "com.a", SessionKey(1), false)
            .unwrap();
        assert_eq!(
            registry.register(&mut ids, "com.a", SessionKey(2), false),
            Err(RegisterRefusal::ProcedureAlreadyExists)
        );
        assert!(registry.unregister(id, SessionKey(2)).is_none());
        assert_eq!(registry.lookup("com.a").unwrap().id, id);
        assert!(registry.unregister(id, SessionKey(1)).is_some());
        assert!(registry.lookup("com.a").is_none());
        assert_eq!(registry.len(), 0);
    }

    #[test]
    fn stale_pending_keys_miss() {
        let mut calls = PendingCalls::new();
        let first = calls.insert(SessionKey(1), 1, SessionKey(2), 1);
        calls.remove(first).unwrap();
        let second = calls.insert(SessionKey(1), 2, SessionKey(2), 2);
        assert!(
            calls.get(first).is_none(),
            "slot reused with a new generation"
        );
        assert!(calls.remove(first).is_none());
        assert_eq!(calls.get(second).unwrap().caller_request, 2);
    }
}
