//! wampring: a thread-per-core WAMP v2 router. See `DESIGN.md` in the steering repo and the
//! README for the layer map: `net` (frames) -> `wire` (messages) -> `router` (sans-IO routing
//! of one shard) -> `shard` (the glommio runtime, the only code that names glommio).

pub mod config;
pub mod credentials;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod metrics;
pub mod net;
pub mod router;
pub mod serializer;
pub mod shard;
pub mod wire;
