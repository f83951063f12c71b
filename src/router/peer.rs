//! Messages between the routers of different shards (DESIGN.md "Ownership and routing across
//! shards"). Opaque to the runtime, which only carries them over the channel mesh in FIFO order
//! per ordered pair of shards.

/// One message from one shard's router to another's. `Send` so it can cross threads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMsg {
    pub(crate) kind: PeerMsg,
}

/// The cross-shard protocol (filled in by the shards step).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PeerMsg {}
