//! wampring-load: a thread-per-core WAMP load generator. It drives any WAMP v2 router over
//! WebSocket or RawSocket with the RPC, PubSub and connect scenarios, measures throughput,
//! latency (coordinated-omission corrected in open loop), delivery loss and duplication, and the
//! CPU both the router and the generator spent, and compares routers side by side.
//!
//! Layout: `cli` (flags) -> `scenario` (what each session does, on glommio executors from
//! `runtime`) over `link` (one WAMP client session on a TCP stream, reusing wampring's `net` and
//! `wire`; `incoming` and `outgoing` are the hot paths' readers and writers) -> `stats` + `report`
//! (results) ; `compare` runs the tool itself against several
//! routers. The pure parts (`units`, `target`, `schedule`, `seqtrack`, `inflight`, `payload`)
//! carry the unit tests.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod incoming;
pub mod inflight;
pub mod link;
pub mod outgoing;
pub mod payload;
pub mod procfs;
pub mod report;
pub mod runtime;
pub mod scenario;
pub mod schedule;
pub mod seqtrack;
pub mod stats;
pub mod target;
pub mod units;
