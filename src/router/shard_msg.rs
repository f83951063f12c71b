//! Messages between the routers of different shards (DESIGN.md "Ownership and routing across
//! shards") and the owner rule that decides which shard writes which table entry. Opaque to the
//! runtime, which only carries them over the channel mesh in FIFO order per ordered pair of
//! shards. Each kind is a named struct; the protocol is described in the module doc of
//! `router/mod.rs`; the handlers live in `cluster.rs` (table writes), `rpc.rs` (Invoke/Reply),
//! `pubsub.rs` (Publish), `retention.rs` (Retain), `history.rs` (HistoryAppend) and `gather.rs`
//! (Gather/Gathered).

use std::sync::Arc;

use super::dealer::{
    CalleeOptions, CancelMode, InvokePolicy, MatchPolicy, PendingKey, RegisterRefusal,
};
use super::gather::{Partial, Query};
use super::history::HistoryAppend;
use super::retention::{RetainPublication, RetainedUpdate};
use super::rpc::{Answer, Passthru};
use super::session::Identity;
use super::{SessionKey, ShardId};
use crate::serializer::Serializer;
use crate::wire::{Frame, OwnedPayload};

/// One message from one shard's router to another's. `Send` so it can cross threads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMsg {
    /// Boxed so that [`super::Action`] stays small: every routed message is one, and the
    /// largest variant sets the size of all.
    pub(crate) kind: Box<ShardMsgKind>,
}

impl ShardMsg {
    /// A short name of the message kind, for logs and the runtime's metrics.
    pub fn name(&self) -> &'static str {
        match &*self.kind {
            ShardMsgKind::Register(_) => "Register",
            ShardMsgKind::Unregister(_) => "Unregister",
            ShardMsgKind::Join(_) => "Join",
            ShardMsgKind::Leave(_) => "Leave",
            ShardMsgKind::RegisterRefused(_) => "RegisterRefused",
            ShardMsgKind::RegistrationAdded(_) => "RegistrationAdded",
            ShardMsgKind::RegistrationRemoved(_) => "RegistrationRemoved",
            ShardMsgKind::SubscriptionShards(_) => "SubscriptionShards",
            ShardMsgKind::Applied(_) => "Applied",
            ShardMsgKind::Invoke(_) => "Invoke",
            ShardMsgKind::Reply(_) => "Reply",
            ShardMsgKind::Interrupt(_) => "Interrupt",
            ShardMsgKind::InvokeChunk(_) => "InvokeChunk",
            ShardMsgKind::Publish(_) => "Publish",
            ShardMsgKind::Retain(_) => "Retain",
            ShardMsgKind::RetainedUpdate(_) => "RetainedUpdate",
            ShardMsgKind::HistoryAppend(_) => "HistoryAppend",
            ShardMsgKind::Gather(_) => "Gather",
            ShardMsgKind::Gathered(_) => "Gathered",
        }
    }
}

impl From<ShardMsgKind> for ShardMsg {
    fn from(kind: ShardMsgKind) -> ShardMsg {
        ShardMsg {
            kind: Box::new(kind),
        }
    }
}

/// A session somewhere in the router: global identity = (shard, slab key, WAMP session id). The
/// session id guards against a slab key reused by a newer session.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SessionRef {
    pub(crate) shard: ShardId,
    pub(crate) key: SessionKey,
    pub(crate) session_id: u64,
}

/// "When you have applied this update, tell shard `origin` about op `ticket`."
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct AckTo {
    pub(crate) origin: ShardId,
    pub(crate) ticket: u64,
}

/// The cross-shard protocol. `realm`/`uri` strings are `Arc<str>` so a broadcast clones a
/// pointer, not the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ShardMsgKind {
    // ---- origin shard -> owner shard (table writes) ----
    Register(Register),
    Unregister(Unregister),
    Join(Join),
    Leave(Leave),
    // ---- owner shard -> origin shard ----
    RegisterRefused(RegisterRefused),
    // ---- owner shard -> every other shard (replica updates, in decision order) ----
    RegistrationAdded(RegistrationAdded),
    RegistrationRemoved(RegistrationRemoved),
    SubscriptionShards(SubscriptionShards),
    // ---- any shard -> origin shard ----
    Applied(Applied),
    // ---- caller's shard -> callee's shard ----
    Invoke(Invoke),
    Interrupt(Interrupt),
    InvokeChunk(InvokeChunk),
    // ---- callee's shard -> caller's shard ----
    Reply(Reply),
    // ---- publisher's shard -> each other shard with subscribers ----
    /// One `Arc` shared by the messages to all interested shards.
    Publish(Arc<RemotePublication>),
    // ---- publisher's shard -> the topic's owner shard ----
    /// A `retain: true` PUBLISH: the topic's retained event from now on, if it fits.
    Retain(Box<RetainPublication>),
    // ---- owner shard -> every other shard ----
    /// The owner's decision on a topic's retained event, in its order.
    RetainedUpdate(Box<RetainedUpdate>),
    // ---- publisher's shard -> the owner of history subscriptions ----
    /// A PUBLISH whose topic falls under history subscriptions that shard keeps.
    HistoryAppend(Box<HistoryAppend>),
    // ---- gathering shard -> every other shard, and back ----
    Gather(Gather),
    Gathered(Gathered),
}

/// A session of the sending shard asks to register `procedure` (or to join its shared
/// registration) with policy `invoke`; the owner answers with a broadcast `RegistrationAdded`
/// (acked to the origin) or `RegisterRefused`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Register {
    pub(crate) realm: Arc<str>,
    pub(crate) procedure: Arc<str>,
    pub(crate) matching: MatchPolicy,
    pub(crate) callee: SessionRef,
    pub(crate) invoke: InvokePolicy,
    pub(crate) options: CalleeOptions,
    pub(crate) ticket: u64,
}

/// Remove `callee` from registration `registration` (UNREGISTER with `ack`, or the callee left
/// without); the registration goes with its last callee. The owner always broadcasts
/// `RegistrationRemoved`, so an acked op completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unregister {
    pub(crate) realm: Arc<str>,
    pub(crate) registration: u64,
    pub(crate) callee: SessionRef,
    /// Who waits for every shard to apply the removal: the callee's shard (UNREGISTER), or
    /// the shard that asked for a revocation (`remove_callee`).
    pub(crate) ack: Option<AckTo>,
}

/// The sending shard's local subscriber count of `topic` went 0 -> 1 (its first subscriber waits
/// for SUBSCRIBED until every shard applied the resulting `SubscriptionShards`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Join {
    pub(crate) realm: Arc<str>,
    pub(crate) topic: Arc<str>,
    /// With `topic`, names the subscription: a topic may be subscribed exact and as patterns.
    pub(crate) matching: MatchPolicy,
    /// The WAMP session id of the first waiting subscriber (who caused a creation).
    pub(crate) session: u64,
    pub(crate) ticket: u64,
}

/// The sending shard's local subscriber count of `topic` went 1 -> 0. A later `Join` from the
/// same shard travels behind it on the same FIFO channel, so only an UNSUBSCRIBE asks for an
/// ack (`ack`, its op's ticket): UNSUBSCRIBED goes out once every shard applied the update, so
/// the meta API no longer lists a subscription its last subscriber was told is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Leave {
    pub(crate) realm: Arc<str>,
    pub(crate) topic: Arc<str>,
    pub(crate) matching: MatchPolicy,
    /// The WAMP session id of the last local subscriber (who caused a deletion).
    pub(crate) session: u64,
    /// Who waits for every shard to apply the update: this shard (UNSUBSCRIBE), or the shard
    /// that asked for a revocation (`remove_subscriber`).
    pub(crate) ack: Option<AckTo>,
}

/// The REGISTER of op `ticket` conflicts with an existing registration (`refusal` says how, for
/// the ERROR's message; `invoke` is the policy the REGISTER asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RegisterRefused {
    pub(crate) ticket: u64,
    pub(crate) procedure: Arc<str>,
    pub(crate) refusal: RegisterRefusal,
    pub(crate) invoke: InvokePolicy,
}

/// `callee` is the newest callee of `registration` (created with policy `invoke` if the replica
/// does not have it yet; a shared registration's later callees repeat the policy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RegistrationAdded {
    pub(crate) realm: Arc<str>,
    pub(crate) procedure: Arc<str>,
    pub(crate) matching: MatchPolicy,
    pub(crate) registration: u64,
    pub(crate) callee: SessionRef,
    pub(crate) invoke: InvokePolicy,
    pub(crate) options: CalleeOptions,
    /// When the owner created the registration (Unix ms).
    pub(crate) created: u64,
    pub(crate) ack: Option<AckTo>,
}

/// Replicas remove `callee` from the registration's callees (the registration with its last
/// callee); nothing if it is not one of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RegistrationRemoved {
    pub(crate) realm: Arc<str>,
    pub(crate) registration: u64,
    pub(crate) callee: SessionRef,
    pub(crate) ack: Option<AckTo>,
}

/// The complete set of shards with local subscribers of `topic` (bit k = shard k); 0 means the
/// subscription is gone everywhere. Carrying the whole set makes applying idempotent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SubscriptionShards {
    pub(crate) realm: Arc<str>,
    pub(crate) topic: Arc<str>,
    pub(crate) matching: MatchPolicy,
    pub(crate) subscription: u64,
    pub(crate) shards: u64,
    /// When the owner created the subscription (Unix ms).
    pub(crate) created: u64,
    /// The shard whose `Join` or `Leave` made this update, and the session that caused it (the
    /// first waiting or the last leaving subscriber there). That shard records a creation or
    /// deletion, so every meta event about one session leaves from the session's own shard.
    pub(crate) cause: (ShardId, u64),
    pub(crate) ack: Option<AckTo>,
}

/// This shard applied the update of op `ticket`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) ticket: u64,
}

/// An answer to call `call` (RESULT or ERROR), already encoded for the caller with its request
/// id, so the caller's shard only checks the handle and forwards the bytes. A progressive RESULT
/// leaves the call pending; `wamp.error.unavailable` makes the caller's shard re-route the call
/// (the frame is then not forwarded); any other answer ends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) call: PendingKey,
    pub(crate) frame: Frame,
    pub(crate) answer: Answer,
}

/// The next chunk of streamed call `call` (progressive_call_invocations): the callee's shard
/// sends it as INVOCATION under the call's invocation id, with Details.progress while `progress`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InvokeChunk {
    pub(crate) call: PendingKey,
    pub(crate) progress: bool,
    pub(crate) payload: OwnedPayload,
}

/// The caller's shard cancels call `call` (CANCEL in mode `kill` or `killnowait`, a timeout, or
/// the caller left): the callee's shard sends INTERRUPT with `mode` (and `reason`, when given)
/// to the callee. With `killnowait` it forgets the invocation (the callee's answer is
/// discarded); with `kill` the answer still comes back as a `Reply`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Interrupt {
    pub(crate) call: PendingKey,
    pub(crate) mode: CancelMode,
    pub(crate) reason: Option<&'static str>,
}

/// "Answer `query` from your own tables and send the partial result back under `ticket`."
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gather {
    pub(crate) ticket: u64,
    pub(crate) query: Arc<Query>,
}

/// One shard's part of the answer to gather `ticket`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Gathered {
    pub(crate) ticket: u64,
    pub(crate) partial: Partial,
}

/// A CALL whose callee lives on the receiving shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invoke {
    /// The caller-side pending entry; echoed in the `Reply`.
    pub(crate) call: PendingKey,
    pub(crate) caller_request: u64,
    pub(crate) caller_serializer: Serializer,
    pub(crate) registration: u64,
    pub(crate) callee: SessionRef,
    /// The caller's identity, present only when the INVOCATION must disclose it.
    pub(crate) disclose: Option<PublicIdentity>,
    /// The called procedure, for INVOCATION.Details.procedure when a pattern matched it.
    pub(crate) procedure: Option<Box<str>>,
    /// The CALL's `ppt_*` options, for INVOCATION.Details (payload_passthru_mode).
    pub(crate) passthru: Option<Passthru>,
    /// INVOCATION.Details.receive_progress (the caller asked and the callee can).
    pub(crate) receive_progress: bool,
    /// The first chunk of a streamed call (progressive_call_invocations): more follow.
    pub(crate) progress: bool,
    /// INVOCATION.Details.timeout (the callee registered with forward_timeout), 0 for none.
    pub(crate) timeout: u64,
    pub(crate) payload: OwnedPayload,
}

/// A session's public identity, for caller/publisher disclosure and authid/authrole filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PublicIdentity {
    pub(crate) session_id: u64,
    pub(crate) authid: Box<str>,
    pub(crate) authrole: Box<str>,
}

impl PublicIdentity {
    /// The public part of a local session's identity, to send along.
    pub(crate) fn of(identity: &Identity) -> PublicIdentity {
        PublicIdentity {
            session_id: identity.id,
            authid: identity.authid.clone(),
            authrole: identity.authrole.clone(),
        }
    }
}

/// An identity a message may disclose (caller, publisher): a local session's or one sent
/// along.
pub(crate) trait Disclosed {
    fn parts(&self) -> (u64, &str, &str);
}

impl Disclosed for Identity {
    fn parts(&self) -> (u64, &str, &str) {
        (self.id, &self.authid, &self.authrole)
    }
}

impl Disclosed for PublicIdentity {
    fn parts(&self) -> (u64, &str, &str) {
        (self.session_id, &self.authid, &self.authrole)
    }
}

/// A PUBLISH to be fanned out on the receiving shard to its local subscribers of each
/// subscription it matched: one message per shard, however many subscriptions match there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemotePublication {
    pub(crate) realm: Arc<str>,
    /// The exact-match subscription of the topic; 0 when there is none.
    pub(crate) subscription: u64,
    /// The prefix and wildcard subscriptions the topic matched (empty: no allocation).
    pub(crate) patterns: Box<[u64]>,
    /// The topic, for `EVENT.Details.topic` of pattern subscriptions; only with `patterns`.
    pub(crate) topic: Option<Box<str>>,
    pub(crate) publication: u64,
    /// Present only with `disclose_me`.
    pub(crate) publisher: Option<PublicIdentity>,
    /// Present only when the PUBLISH had black/white lists.
    pub(crate) filters: Option<OwnedFilters>,
    pub(crate) payload: OwnedPayload,
}

/// The subscriber black/white lists of a PUBLISH, detached from its frame. `None` = list absent;
/// a list of the wrong type arrives as an empty list (admits nobody / excludes nobody, as
/// locally). Non-integer (non-string) list items can never match, so they are dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OwnedFilters {
    pub(crate) exclude: Option<Vec<u64>>,
    pub(crate) eligible: Option<Vec<u64>>,
    pub(crate) exclude_authid: Option<Vec<Box<str>>>,
    pub(crate) eligible_authid: Option<Vec<Box<str>>>,
    pub(crate) exclude_authrole: Option<Vec<Box<str>>>,
    pub(crate) eligible_authrole: Option<Vec<Box<str>>>,
}

/// The shard that decides REGISTER/SUBSCRIBE for (`realm`, `uri`) among `shards`: FNV-1a over
/// both strings (a fixed function, so every shard and every build agrees).
pub fn owner_shard(realm: &str, uri: &str, shards: usize) -> ShardId {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut hash = OFFSET;
    // The 0xff separator cannot occur in UTF-8, so ("ab", "c") and ("a", "bc") differ.
    for &byte in realm.as_bytes().iter().chain(&[0xff]).chain(uri.as_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    (hash % shards as u64) as ShardId
}

/// The largest shard count the subscription bitsets (`u64`) support.
pub const MAX_SHARDS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_is_stable_and_in_range() {
        assert_eq!(owner_shard("realm1", "com.a", 1), 0);
        for shards in 1..=8 {
            let owner = owner_shard("realm1", "com.example.proc", shards);
            assert!(owner < shards);
            assert_eq!(owner, owner_shard("realm1", "com.example.proc", shards));
        }
        assert_ne!(
            (0..64)
                .map(|i| owner_shard("realm1", &format!("t.{i}"), 4))
                .collect::<std::collections::HashSet<_>>()
                .len(),
            1,
            "uris spread over shards"
        );
    }

    #[test]
    fn shard_msg_crosses_threads() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<ShardMsg>();
    }
}
