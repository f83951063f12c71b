//! Dealer tables: the registrations of one realm (exact, prefix or wildcard; one callee, or
//! several under a shared-registration policy) and the router's pending calls with what each
//! asked for (progress, timeout, cancel state, re-routing). With one shard the registry is the
//! table; with several it is this shard's read replica, written only by the owner's updates
//! (`cluster.rs`), and a pending call may have its caller or its callee on another shard.

use slab::Slab;

use super::ids::{RandomIds, ScopedIds};
use super::patterns::PatternIndex;
use super::rpc::Reroute;
use super::session::{IdMap, PeerFeatures};
use super::shard_msg::SessionRef;
use super::timers::TimerId;
use super::uri;
use super::{fast_map, is_sparse, FastMap, Millis, SessionKey, ShardId};
use crate::serializer::Serializer;

/// REGISTER.Options.invoke (shared_registration): how a CALL picks among the callees of one
/// registration. The first registrant fixes it; `Single` admits one callee only.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum InvokePolicy {
    #[default]
    Single,
    RoundRobin,
    Random,
    First,
    Last,
}

impl InvokePolicy {
    /// The policy named by the option value, `None` for anything else.
    pub(crate) fn parse(name: &str) -> Option<InvokePolicy> {
        Some(match name {
            "single" => InvokePolicy::Single,
            "roundrobin" => InvokePolicy::RoundRobin,
            "random" => InvokePolicy::Random,
            "first" => InvokePolicy::First,
            "last" => InvokePolicy::Last,
            _ => return None,
        })
    }

    /// The option value naming this policy.
    pub(crate) fn name(self) -> &'static str {
        match self {
            InvokePolicy::Single => "single",
            InvokePolicy::RoundRobin => "roundrobin",
            InvokePolicy::Random => "random",
            InvokePolicy::First => "first",
            InvokePolicy::Last => "last",
        }
    }
}

/// CANCEL.Options.mode (call_canceling). Absent means `killnowait`, as Crossbar.io does it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum CancelMode {
    /// ERROR to the caller now, nothing to the callee, its answer discarded.
    Skip,
    /// INTERRUPT to the callee, whose answer (an ERROR, or the RESULT it had ready) ends the call.
    Kill,
    /// ERROR to the caller now, INTERRUPT to the callee, its answer discarded.
    KillNoWait,
}

impl CancelMode {
    /// The mode of CANCEL.Options.mode (the codec admits only the three names).
    pub(crate) fn parse(mode: Option<&str>) -> CancelMode {
        match mode {
            Some("skip") => CancelMode::Skip,
            Some("kill") => CancelMode::Kill,
            _ => CancelMode::KillNoWait,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            CancelMode::Skip => "skip",
            CancelMode::Kill => "kill",
            CancelMode::KillNoWait => "killnowait",
        }
    }
}

/// REGISTER.Options.match (pattern_based_registration): how a registration's URI matches a
/// called procedure. (procedure, match) names a registration: `com.a` may be registered exact
/// and as a prefix at once, as two registrations.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatchPolicy {
    #[default]
    Exact,
    /// The URI is a string prefix of the procedure.
    Prefix,
    /// Empty components of the URI match any one component; same component count.
    Wildcard,
}

impl MatchPolicy {
    /// The policy of REGISTER.Options.match (the codec admits only the three names).
    pub(crate) fn parse(name: Option<&str>) -> MatchPolicy {
        match name {
            Some("prefix") => MatchPolicy::Prefix,
            Some("wildcard") => MatchPolicy::Wildcard,
            _ => MatchPolicy::Exact,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            MatchPolicy::Exact => "exact",
            MatchPolicy::Prefix => "prefix",
            MatchPolicy::Wildcard => "wildcard",
        }
    }
}

/// What one callee asked for in its REGISTER and announced in its HELLO: replicated with it, so
/// the caller's shard builds the INVOCATION and decides cancel modes without asking.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CalleeOptions {
    /// REGISTER.Options.disclose_caller: every INVOCATION to this callee carries the caller's
    /// identity.
    pub(crate) disclose_caller: bool,
    /// REGISTER.Options.forward_timeout: a CALL's `timeout` goes to this callee in
    /// INVOCATION.Details, and the callee, not the router, enforces it.
    pub(crate) forward_timeout: bool,
    /// What the callee's session announced (INTERRUPT, progressive results, ...).
    pub(crate) features: PeerFeatures,
}

/// One callee of a registration, with its own REGISTER options.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Registrant {
    /// On another shard when `session.shard` is not this one.
    pub(crate) session: SessionRef,
    pub(crate) options: CalleeOptions,
    /// Set only in the replica of the callee's own shard, while the callee may be invoked:
    /// from the moment its REGISTERED goes out until its UNREGISTER or leave starts. Other
    /// shards route to the callee's shard, which checks the session itself.
    pub(crate) ready: bool,
}

/// One registered procedure and its callees.
#[derive(Clone, Debug)]
pub(crate) struct Registration {
    pub(crate) id: u64,
    pub(crate) procedure: Box<str>,
    pub(crate) matching: MatchPolicy,
    pub(crate) invoke: InvokePolicy,
    /// When the owner created it (Unix ms), for the registration meta API; every replica has
    /// the owner's value (`RegistrationAdded`).
    pub(crate) created: u64,
    /// In registration order (oldest first); never empty while the registration exists.
    pub(crate) callees: Vec<Registrant>,
    /// RoundRobin: index of the callee to try next. Local to this replica (see `router/mod.rs`).
    cursor: usize,
}

impl Registration {
    /// Chooses the callee of one CALL by the policy, among the callees `usable` accepts (a local
    /// callee whose REGISTERED has not gone out yet or who is leaving is skipped). Only
    /// RoundRobin (cursor) and Random (`rng`) change state. Returns the callee's index in
    /// `callees` (an index, not a copy: the hot path copies the callee once, from the table).
    /// The one-callee case, the common one, is inlined into the CALL path; the policies are
    /// not.
    #[inline(always)]
    pub(crate) fn pick(
        &mut self,
        rng: &mut RandomIds,
        usable: impl Fn(&Registrant) -> bool,
    ) -> Option<usize> {
        if self.callees.len() == 1 {
            return usable(&self.callees[0]).then_some(0);
        }
        self.pick_by_policy(rng, usable)
    }

    #[inline(never)]
    fn pick_by_policy(
        &mut self,
        rng: &mut RandomIds,
        usable: impl Fn(&Registrant) -> bool,
    ) -> Option<usize> {
        let len = self.callees.len();
        let at = |index: usize| &self.callees[index % len];
        match self.invoke {
            InvokePolicy::Single | InvokePolicy::First => (0..len).find(|&index| usable(at(index))),
            InvokePolicy::Last => (0..len).rev().find(|&index| usable(at(index))),
            InvokePolicy::RoundRobin => {
                let start = self.cursor;
                let found = (start..start + len)
                    .find(|&index| usable(at(index)))
                    .map(|index| index % len);
                if let Some(index) = found {
                    self.cursor = (index + 1) % len;
                }
                found
            }
            InvokePolicy::Random => {
                // Uniform when every callee is usable (the common case); a skipped callee's
                // share goes to its successor, which keeps this allocation-free.
                let start = rng.below(len);
                (start..start + len)
                    .find(|&index| usable(at(index)))
                    .map(|index| index % len)
            }
        }
    }

    fn position(&self, session: SessionRef) -> Option<usize> {
        self.callees
            .iter()
            .position(|callee| callee.session == session)
    }

    /// Removes one callee, keeping the round-robin order of the others.
    fn remove_callee(&mut self, index: usize) {
        self.callees.remove(index);
        if index < self.cursor {
            self.cursor -= 1;
        }
        if self.cursor >= self.callees.len() {
            self.cursor = 0;
        }
    }
}

/// Why a REGISTER was refused by the table (all answered `wamp.error.procedure_already_exists`;
/// the kind only chooses the ERROR's message).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum RegisterRefusal {
    /// Registered with `single`, or this REGISTER asks for `single`.
    ProcedureAlreadyExists,
    /// Shared with another policy than the one this REGISTER asks for.
    PolicyMismatch(InvokePolicy),
    /// The session is already one of the callees.
    AlreadyCallee,
}

impl RegisterRefusal {
    pub(crate) fn text(self, procedure: &str, asked: InvokePolicy) -> String {
        match self {
            RegisterRefusal::ProcedureAlreadyExists => {
                format!("procedure {procedure:?} is already registered")
            }
            RegisterRefusal::PolicyMismatch(existing) => format!(
                "procedure {procedure:?} is already registered with invoke={:?}, not {:?}",
                existing.name(),
                asked.name()
            ),
            RegisterRefusal::AlreadyCallee => {
                format!("this session already registered procedure {procedure:?}")
            }
        }
    }
}

/// What `Registry::unregister` took out.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unregistered {
    /// The callee was the last one: the registration (and its id) is gone.
    pub(crate) deleted: bool,
}

/// The registrations of one realm: exact ones in a hash map (the hot path's one lookup),
/// prefix and wildcard ones in a [`PatternIndex`] consulted only when no exact one matches.
pub(crate) struct Registry {
    entries: Slab<Registration>,
    by_procedure: FastMap<Box<str>, usize>,
    patterns: PatternIndex<usize>,
    by_id: FastMap<u64, usize>,
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            entries: Slab::new(),
            by_procedure: fast_map(),
            patterns: PatternIndex::new(),
            by_id: fast_map(),
        }
    }

    /// The entry index of the registration (`procedure`, `matching`).
    fn find(&self, procedure: &str, matching: MatchPolicy) -> Option<usize> {
        match matching {
            MatchPolicy::Exact => self.by_procedure.get(procedure).copied(),
            MatchPolicy::Prefix => self.patterns.get_prefix(procedure),
            MatchPolicy::Wildcard => self.patterns.get_wildcard(procedure),
        }
    }

    /// Decides a REGISTER (single shard, or the owner shard): a new registration with a fresh
    /// id, or one more callee of a shared one (same id).
    pub(crate) fn register(
        &mut self,
        ids: &mut ScopedIds,
        procedure: &str,
        matching: MatchPolicy,
        invoke: InvokePolicy,
        callee: Registrant,
    ) -> Result<u64, RegisterRefusal> {
        if let Some(index) = self.find(procedure, matching) {
            let existing = &mut self.entries[index];
            if existing.invoke == InvokePolicy::Single || invoke == InvokePolicy::Single {
                return Err(RegisterRefusal::ProcedureAlreadyExists);
            }
            if existing.invoke != invoke {
                return Err(RegisterRefusal::PolicyMismatch(existing.invoke));
            }
            if existing.position(callee.session).is_some() {
                return Err(RegisterRefusal::AlreadyCallee);
            }
            existing.callees.push(callee);
            return Ok(existing.id);
        }
        let id = ids.next_id(|id| self.by_id.contains_key(&id));
        self.insert(id, procedure, matching, invoke, callee);
        Ok(id)
    }

    /// Applies a registration the owner decided (replica write): adds `callee` to registration
    /// `id`, creating it if needed. A stale entry (same procedure under another id, same id
    /// under another procedure or policy) cannot exist when the owner's updates arrive in
    /// order; should one exist anyway it is replaced, so the replica converges on the owner's
    /// table. False when something had to be replaced or the callee was already there.
    pub(crate) fn insert(
        &mut self,
        id: u64,
        procedure: &str,
        matching: MatchPolicy,
        invoke: InvokePolicy,
        callee: Registrant,
    ) -> bool {
        let mut clean = true;
        if let Some(&index) = self.by_id.get(&id) {
            let existing = &mut self.entries[index];
            if &*existing.procedure == procedure
                && existing.matching == matching
                && existing.invoke == invoke
            {
                if let Some(at) = existing.position(callee.session) {
                    tracing::error!(procedure, id, "replica already had the callee; updated");
                    existing.callees[at] = callee;
                    return false;
                }
                existing.callees.push(callee);
                return true;
            }
            tracing::error!(
                procedure,
                id,
                "replica had the registration id for another procedure or policy; replaced"
            );
            self.remove(id);
            clean = false;
        }
        if let Some(index) = self.find(procedure, matching) {
            let old = self.entries[index].id;
            tracing::error!(
                procedure,
                id,
                old,
                "replica had the procedure under another id; replaced"
            );
            self.remove(old);
            clean = false;
        }
        let index = self.entries.insert(Registration {
            id,
            procedure: procedure.into(),
            matching,
            invoke,
            created: 0,
            callees: vec![callee],
            cursor: 0,
        });
        match matching {
            MatchPolicy::Exact => {
                self.by_procedure.insert(procedure.into(), index);
            }
            MatchPolicy::Prefix => {
                self.patterns.insert_prefix(procedure, index);
            }
            MatchPolicy::Wildcard => {
                self.patterns.insert_wildcard(procedure, index);
            }
        }
        self.by_id.insert(id, index);
        clean
    }

    /// Marks this shard's own callee `callee` of registration `id` invocable or not; false when
    /// it is not one of the callees.
    pub(crate) fn set_ready(&mut self, id: u64, callee: SessionRef, ready: bool) -> bool {
        let Some(&index) = self.by_id.get(&id) else {
            return false;
        };
        let registration = &mut self.entries[index];
        match registration.position(callee) {
            Some(at) => {
                registration.callees[at].ready = ready;
                true
            }
            None => false,
        }
    }

    /// Removes `callee` from registration `id` (the whole registration with its last callee);
    /// `None` when `callee` is not one of its callees.
    pub(crate) fn unregister(&mut self, id: u64, callee: SessionRef) -> Option<Unregistered> {
        let index = *self.by_id.get(&id)?;
        let registration = &mut self.entries[index];
        let at = registration.position(callee)?;
        if registration.callees.len() > 1 {
            registration.remove_callee(at);
            return Some(Unregistered { deleted: false });
        }
        self.remove(id);
        Some(Unregistered { deleted: true })
    }

    /// Removes registration `id` with all its callees.
    fn remove(&mut self, id: u64) -> Option<Registration> {
        let index = self.by_id.remove(&id)?;
        let registration = self.entries.remove(index);
        match registration.matching {
            MatchPolicy::Exact => {
                self.by_procedure.remove(&registration.procedure);
            }
            MatchPolicy::Prefix => {
                self.patterns.remove_prefix(&registration.procedure);
            }
            MatchPolicy::Wildcard => {
                self.patterns.remove_wildcard(&registration.procedure);
            }
        }
        if is_sparse(self.by_id.len(), self.by_id.capacity()) {
            self.shrink();
        }
        Some(registration)
    }

    /// Gives memory back once the table is mostly empty (see `Subscriptions::shrink`).
    #[cold]
    fn shrink(&mut self) {
        let keep = self.by_id.len() * 2;
        self.by_id.shrink_to(keep);
        self.by_procedure.shrink_to(keep);
        self.entries.shrink_to_fit();
    }

    /// The registration (`procedure`, `matching`) itself (not what a call of it would reach).
    pub(crate) fn lookup(&self, procedure: &str, matching: MatchPolicy) -> Option<&Registration> {
        self.find(procedure, matching)
            .map(|index| &self.entries[index])
    }

    /// The registration a CALL of `procedure` reaches, and whether a pattern matched: the exact
    /// registration, else the longest prefix, else the most specific wildcard (digest §9.2).
    /// Patterns never match the router's own `wamp.` procedures.
    #[inline]
    pub(crate) fn route_mut(&mut self, procedure: &str) -> Option<(&mut Registration, bool)> {
        if let Some(&index) = self.by_procedure.get(procedure) {
            return Some((&mut self.entries[index], false));
        }
        if self.patterns.is_empty() {
            return None;
        }
        let index = self.route_pattern(procedure)?;
        Some((&mut self.entries[index], true))
    }

    /// The entry a pattern routes `procedure` to (never a `wamp.` procedure).
    #[inline(never)]
    fn route_pattern(&self, procedure: &str) -> Option<usize> {
        if uri::is_reserved(procedure) {
            return None;
        }
        self.patterns.best(procedure).map(|(index, _)| index)
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Registration> {
        self.by_id.get(&id).map(|&index| &self.entries[index])
    }

    /// The registration a CALL of `procedure` would reach (`wamp.registration.match`), without
    /// touching any policy state.
    pub(crate) fn route(&self, procedure: &str) -> Option<&Registration> {
        if let Some(&index) = self.by_procedure.get(procedure) {
            return Some(&self.entries[index]);
        }
        if self.patterns.is_empty() {
            return None;
        }
        self.route_pattern(procedure)
            .map(|index| &self.entries[index])
    }

    /// Every registration, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.entries.iter().map(|(_, registration)| registration)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Registration> {
        self.by_id.get(&id).map(|&index| &mut self.entries[index])
    }

    /// Registrations (not callees).
    pub(crate) fn len(&self) -> usize {
        debug_assert_eq!(self.entries.len(), self.by_id.len());
        debug_assert_eq!(
            self.entries.len(),
            self.by_procedure.len() + self.patterns.len()
        );
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

impl PendingKey {
    #[cfg(test)]
    pub(crate) fn for_tests(index: usize) -> PendingKey {
        PendingKey {
            index,
            generation: 0,
        }
    }
}

/// Who waits for a pending call's answer.
#[derive(Copy, Clone, Debug)]
pub(crate) enum Caller {
    Local(SessionKey),
    Remote(RemoteCaller),
}

/// A caller on another shard: on shard `shard`, whose own pending entry is `call`; the answer
/// goes back as a `Reply` encoded in `serializer`.
#[derive(Copy, Clone, Debug)]
pub(crate) struct RemoteCaller {
    pub(crate) shard: ShardId,
    pub(crate) call: PendingKey,
    pub(crate) serializer: Serializer,
}

/// Who owes a pending call's answer.
#[derive(Copy, Clone, Debug)]
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
/// the entry lives on the caller's shard, the callee's shard, or both (one entry each). The
/// caller's entry (`Caller::Local`) owns the call's timeout; the callee's entry
/// (`Callee::Local`) owns its INVOCATION id.
#[derive(Clone, Debug)]
pub(crate) struct PendingCall {
    pub(crate) caller: Caller,
    /// The CALL's request id, mirrored in RESULT/ERROR.
    pub(crate) caller_request: u64,
    pub(crate) callee: Callee,
    pub(crate) flags: CallFlags,
    /// When the CALL came in (`Router::set_clock_us`), for the latency histogram.
    started_us: u64,
    /// What only some calls need, out of line so the common call's entry stays small.
    extras: Option<Box<CallExtras>>,
    generation: u64,
}

/// The parts of a pending call that only calls using an advanced feature have.
#[derive(Clone, Debug, Default)]
struct CallExtras {
    /// The router-side timeout (call_timeout), on the caller's entry only: the armed timer and
    /// the gap it allows, re-armed by every progressive result.
    timeout: Option<(TimerId, Millis)>,
    /// On the caller's entry of a call to a shared registration: what re-routing needs.
    reroute: Option<Reroute>,
    /// The registration invoked, for a streamed call's later chunks (both entries).
    registration: u64,
}

/// A pending call taken out of the table: what its last handler needs (its rare extras were
/// dropped out of line, so the hot paths carry no drop code for them).
#[derive(Copy, Clone, Debug)]
pub(crate) struct FinishedCall {
    pub(crate) caller: Caller,
    pub(crate) caller_request: u64,
    pub(crate) callee: Callee,
    pub(crate) started_us: u64,
}

impl PendingCall {
    fn extras(&mut self) -> &mut CallExtras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// The router-side timeout: its armed timer and the gap it allows.
    #[inline]
    pub(crate) fn timeout(&self) -> Option<(TimerId, Millis)> {
        self.extras.as_ref().and_then(|extras| extras.timeout)
    }

    /// Replaces the timeout; returns the one replaced.
    pub(crate) fn set_timeout(
        &mut self,
        timeout: Option<(TimerId, Millis)>,
    ) -> Option<(TimerId, Millis)> {
        if timeout.is_none() && self.extras.is_none() {
            return None;
        }
        std::mem::replace(&mut self.extras().timeout, timeout)
    }

    pub(crate) fn take_reroute(&mut self) -> Option<Reroute> {
        self.extras.as_mut()?.reroute.take()
    }

    pub(crate) fn set_reroute(&mut self, reroute: Reroute) {
        self.extras().reroute = Some(reroute);
    }

    /// The registration of a streamed call (0 for others: only their chunks need it).
    pub(crate) fn registration(&self) -> u64 {
        self.extras.as_ref().map_or(0, |extras| extras.registration)
    }

    pub(crate) fn set_registration(&mut self, registration: u64) {
        self.extras().registration = registration;
    }
}

/// What one pending call was asked for and where its cancellation stands.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CallFlags(u8);

impl CallFlags {
    /// CALL.Options.receive_progress: progressive RESULTs go to the caller.
    pub(crate) const RECEIVE_PROGRESS: CallFlags = CallFlags(1);
    /// The callee announced call_canceling: a cancel or timeout sends it INTERRUPT.
    pub(crate) const CALLEE_CANCELS: CallFlags = CallFlags(2);
    /// A CANCEL in mode `kill` went to the callee: its final answer is awaited and forwarded,
    /// progressive results no longer are, and a second CANCEL changes nothing.
    pub(crate) const KILLING: CallFlags = CallFlags(4);
    /// The caller streams this call's arguments (progressive_call_invocations) and has not
    /// sent the last chunk yet.
    pub(crate) const MORE_CHUNKS: CallFlags = CallFlags(8);

    pub(crate) fn has(self, flag: CallFlags) -> bool {
        self.0 & flag.0 == flag.0
    }

    pub(crate) fn set(&mut self, flag: CallFlags, on: bool) {
        if on {
            self.0 |= flag.0;
        } else {
            self.0 &= !flag.0;
        }
    }

    pub(crate) fn with(mut self, flag: CallFlags, on: bool) -> CallFlags {
        self.set(flag, on);
        self
    }
}

/// Drops a finished call's extras; returns the timer of its timeout, if one is armed.
#[cold]
#[inline(never)]
#[allow(clippy::boxed_local)] // the box is what is dropped here, out of the hot path
fn drop_extras(extras: Box<CallExtras>) -> Option<TimerId> {
    extras.timeout.map(|(timer, _)| timer)
}

/// All pending calls of the router, and for calls from other shards the way from the caller's
/// handle to the entry here (a CANCEL or timeout arrives under the caller's handle).
pub(crate) struct PendingCalls {
    /// The entries by index; a free slot has generation 0 (generations start at 1), so no key
    /// finds it. Not a `Slab`: its out-of-line insert takes the new entry by pointer from the
    /// caller's stack and reads it back with wider loads than it was written with, which
    /// stalls store forwarding on every call (measured); here the entry is written in place.
    slots: Vec<PendingCall>,
    /// Indexes of the free slots, reused last-freed first.
    free: Vec<usize>,
    len: usize,
    by_remote_caller: IdMap<(ShardId, PendingKey), PendingKey>,
    next_generation: u64,
}

impl PendingCalls {
    pub(crate) fn new() -> PendingCalls {
        PendingCalls {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            by_remote_caller: IdMap::default(),
            next_generation: 0,
        }
    }

    #[inline(always)]
    pub(crate) fn insert(
        &mut self,
        caller: Caller,
        caller_request: u64,
        callee: Callee,
        flags: CallFlags,
        started_us: u64,
    ) -> PendingKey {
        self.next_generation += 1;
        let generation = self.next_generation;
        let remote = match &caller {
            Caller::Remote(remote) => Some((remote.shard, remote.call)),
            Caller::Local(_) => None,
        };
        let call = PendingCall {
            caller,
            caller_request,
            callee,
            flags,
            started_us,
            extras: None,
            generation,
        };
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = call;
                index
            }
            None => {
                self.slots.push(call);
                self.slots.len() - 1
            }
        };
        self.len += 1;
        let key = PendingKey { index, generation };
        if let Some(remote) = remote {
            self.by_remote_caller.insert(remote, key);
        }
        key
    }

    #[inline]
    pub(crate) fn get(&self, key: PendingKey) -> Option<&PendingCall> {
        self.slots
            .get(key.index)
            .filter(|call| call.generation == key.generation)
    }

    pub(crate) fn get_mut(&mut self, key: PendingKey) -> Option<&mut PendingCall> {
        self.slots
            .get_mut(key.index)
            .filter(|call| call.generation == key.generation)
    }

    /// The entry of the call that shard `shard` knows as `call`.
    pub(crate) fn find_remote(&self, shard: ShardId, call: PendingKey) -> Option<PendingKey> {
        self.by_remote_caller.get(&(shard, call)).copied()
    }

    /// Takes the entry out, and the timer of its timeout if it had one (the router's to
    /// cancel: see `Router::finish_call`).
    #[inline(always)]
    pub(crate) fn remove(&mut self, key: PendingKey) -> Option<(FinishedCall, Option<TimerId>)> {
        let call = self.get_mut(key)?;
        call.generation = 0;
        let extras = call.extras.take();
        let finished = FinishedCall {
            caller: call.caller,
            caller_request: call.caller_request,
            callee: call.callee,
            started_us: call.started_us,
        };
        self.free.push(key.index);
        self.len -= 1;
        if let Caller::Remote(remote) = finished.caller {
            self.forget_remote(remote);
        }
        let timer = match extras {
            None => None,
            Some(extras) => drop_extras(extras),
        };
        Some((finished, timer))
    }

    #[inline(never)]
    fn forget_remote(&mut self, remote: RemoteCaller) {
        let map = &mut self.by_remote_caller;
        map.remove(&(remote.shard, remote.call));
        if is_sparse(map.len(), map.capacity()) {
            map.shrink_to(map.len() * 2);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(key: usize) -> SessionRef {
        SessionRef {
            shard: 0,
            key: SessionKey(key),
            session_id: key as u64,
        }
    }

    fn callee(key: usize) -> Registrant {
        Registrant {
            session: session(key),
            options: CalleeOptions::default(),
            ready: false,
        }
    }

    #[test]
    fn one_callee_per_procedure_and_only_the_owner_unregisters() {
        let mut registry = Registry::new();
        let mut ids = ScopedIds::new(0, 1);
        let single = InvokePolicy::Single;
        let id = registry
            .register(&mut ids, "com.a", MatchPolicy::Exact, single, callee(1))
            .unwrap();
        assert_eq!(
            registry.register(&mut ids, "com.a", MatchPolicy::Exact, single, callee(2)),
            Err(RegisterRefusal::ProcedureAlreadyExists)
        );
        assert_eq!(
            registry.register(
                &mut ids,
                "com.a",
                MatchPolicy::Exact,
                InvokePolicy::RoundRobin,
                callee(2)
            ),
            Err(RegisterRefusal::ProcedureAlreadyExists),
            "a single registration admits no second callee whatever its policy"
        );
        assert!(registry.unregister(id, session(2)).is_none());
        assert_eq!(registry.lookup("com.a", MatchPolicy::Exact).unwrap().id, id);
        assert_eq!(
            registry.unregister(id, session(1)),
            Some(Unregistered { deleted: true })
        );
        assert!(registry.lookup("com.a", MatchPolicy::Exact).is_none());
        assert_eq!(registry.len(), 0);
    }

    #[test]
    fn shared_registration_has_one_id_and_dies_with_its_last_callee() {
        let mut registry = Registry::new();
        let mut ids = ScopedIds::new(0, 1);
        let rr = InvokePolicy::RoundRobin;
        let id = registry
            .register(&mut ids, "com.s", MatchPolicy::Exact, rr, callee(1))
            .unwrap();
        assert_eq!(
            registry.register(&mut ids, "com.s", MatchPolicy::Exact, rr, callee(2)),
            Ok(id)
        );
        assert_eq!(
            registry.register(&mut ids, "com.s", MatchPolicy::Exact, rr, callee(2)),
            Err(RegisterRefusal::AlreadyCallee)
        );
        assert_eq!(
            registry.register(
                &mut ids,
                "com.s",
                MatchPolicy::Exact,
                InvokePolicy::Last,
                callee(3)
            ),
            Err(RegisterRefusal::PolicyMismatch(rr))
        );
        assert_eq!(
            registry.register(
                &mut ids,
                "com.s",
                MatchPolicy::Exact,
                InvokePolicy::Single,
                callee(3)
            ),
            Err(RegisterRefusal::ProcedureAlreadyExists)
        );
        assert_eq!(registry.len(), 1);
        assert_eq!(
            registry.unregister(id, session(1)),
            Some(Unregistered { deleted: false })
        );
        assert_eq!(
            registry
                .lookup("com.s", MatchPolicy::Exact)
                .unwrap()
                .callees,
            [callee(2)]
        );
        assert_eq!(
            registry.unregister(id, session(2)),
            Some(Unregistered { deleted: true })
        );
        assert_eq!(registry.len(), 0);
    }

    #[test]
    fn policies_pick_in_registration_order_and_skip_unusable_callees() {
        let mut rng = RandomIds::new(1);
        let picks = |invoke, usable: &dyn Fn(usize) -> bool, rng: &mut RandomIds| {
            let mut registry = Registry::new();
            let mut ids = ScopedIds::new(0, 1);
            for key in 1..=3 {
                registry
                    .register(&mut ids, "com.p", MatchPolicy::Exact, invoke, callee(key))
                    .unwrap();
            }
            let registration = registry.route_mut("com.p").unwrap().0;
            (0..6)
                .map(|_| {
                    registration
                        .pick(rng, |c| usable(c.session.key.0))
                        .map_or(0, |index| registration.callees[index].session.key.0)
                })
                .collect::<Vec<_>>()
        };
        let all = |_| true;
        let not_2 = |key| key != 2;
        let none = |_| false;
        assert_eq!(
            picks(InvokePolicy::RoundRobin, &all, &mut rng),
            [1, 2, 3, 1, 2, 3]
        );
        assert_eq!(
            picks(InvokePolicy::RoundRobin, &not_2, &mut rng),
            [1, 3, 1, 3, 1, 3]
        );
        assert_eq!(picks(InvokePolicy::First, &all, &mut rng), [1; 6]);
        assert_eq!(picks(InvokePolicy::Last, &all, &mut rng), [3; 6]);
        assert_eq!(picks(InvokePolicy::Last, &|key| key != 3, &mut rng), [2; 6]);
        assert_eq!(picks(InvokePolicy::First, &none, &mut rng), [0; 6]);
        let random = picks(InvokePolicy::Random, &not_2, &mut rng);
        assert!(random.iter().all(|&key| key == 1 || key == 3), "{random:?}");
    }

    #[test]
    fn round_robin_keeps_its_place_when_a_callee_leaves() {
        let mut registry = Registry::new();
        let mut ids = ScopedIds::new(0, 1);
        let mut rng = RandomIds::new(1);
        let rr = InvokePolicy::RoundRobin;
        let mut id = 0;
        for key in 1..=4 {
            id = registry
                .register(&mut ids, "com.p", MatchPolicy::Exact, rr, callee(key))
                .unwrap();
        }
        let mut next = |registry: &mut Registry| {
            let registration = registry.route_mut("com.p").unwrap().0;
            let index = registration.pick(&mut rng, |_| true).unwrap();
            registration.callees[index].session.key.0
        };
        assert_eq!((next(&mut registry), next(&mut registry)), (1, 2));
        // Removing one already served this round: the next is still 3.
        registry.unregister(id, session(1)).unwrap();
        assert_eq!(next(&mut registry), 3);
        // Removing the one that would be next: its successor follows.
        registry.unregister(id, session(4)).unwrap();
        assert_eq!((next(&mut registry), next(&mut registry)), (2, 3));
    }

    #[test]
    fn replica_insert_joins_callees_and_replaces_stale_entries() {
        let mut registry = Registry::new();
        let rr = InvokePolicy::RoundRobin;
        assert!(registry.insert(7, "com.p", MatchPolicy::Exact, rr, callee(1)));
        assert!(registry.insert(7, "com.p", MatchPolicy::Exact, rr, callee(2)));
        assert!(
            !registry.insert(7, "com.p", MatchPolicy::Exact, rr, callee(2)),
            "duplicate callee"
        );
        assert_eq!(registry.get(7).unwrap().callees.len(), 2);
        assert!(
            !registry.insert(9, "com.p", MatchPolicy::Exact, rr, callee(3)),
            "stale id replaced"
        );
        assert!(registry.get(7).is_none());
        assert_eq!(
            registry
                .lookup("com.p", MatchPolicy::Exact)
                .unwrap()
                .callees,
            [callee(3)]
        );
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn stale_pending_keys_miss() {
        let mut calls = PendingCalls::new();
        let callee = |invocation| Callee::Local {
            session: SessionKey(2),
            invocation,
        };
        let flags = CallFlags::default();
        let first = calls.insert(Caller::Local(SessionKey(1)), 1, callee(1), flags, 0);
        calls.remove(first).unwrap();
        let second = calls.insert(Caller::Local(SessionKey(1)), 2, callee(2), flags, 0);
        assert!(
            calls.get(first).is_none(),
            "slot reused with a new generation"
        );
        assert!(calls.remove(first).is_none());
        assert_eq!(calls.get(second).unwrap().caller_request, 2);
        assert_eq!(first.index, second.index, "the freed slot is reused");
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn pending_calls_count_and_reuse_slots_and_forget_remote_callers() {
        let mut calls = PendingCalls::new();
        let flags = CallFlags::default();
        let remote = RemoteCaller {
            shard: 1,
            call: PendingKey {
                index: 7,
                generation: 9,
            },
            serializer: Serializer::Json,
        };
        let keys: Vec<PendingKey> = (1..=3)
            .map(|request| {
                let callee = Callee::Local {
                    session: SessionKey(2),
                    invocation: request,
                };
                calls.insert(Caller::Remote(remote), request, callee, flags, 0)
            })
            .collect();
        assert_eq!(calls.len(), 3);
        // Only the last insert holds the remote caller's handle (one call per handle).
        assert_eq!(calls.find_remote(1, remote.call), Some(keys[2]));
        let (finished, timer) = calls.remove(keys[2]).unwrap();
        assert_eq!(finished.caller_request, 3);
        assert!(timer.is_none());
        assert_eq!(calls.find_remote(1, remote.call), None);
        assert_eq!(calls.len(), 2);
        calls.remove(keys[0]).unwrap();
        calls.remove(keys[1]).unwrap();
        assert_eq!(calls.len(), 0);
        let again: Vec<PendingKey> = (0..3)
            .map(|_| {
                calls.insert(
                    Caller::Local(SessionKey(1)),
                    1,
                    Callee::Remote { shard: 1 },
                    flags,
                    0,
                )
            })
            .collect();
        let mut slots: Vec<usize> = again.iter().map(|key| key.index).collect();
        slots.sort_unstable();
        assert_eq!(slots, vec![0, 1, 2], "no new slots while free ones remain");
        assert!(keys.iter().all(|key| calls.get(*key).is_none()));
        assert!(again.iter().all(|key| calls.get(*key).is_some()));
    }
}
