//! router: the sans-IO WAMP state machine of one shard — sessions, realms, dealer, broker.
//!
//! Driven by plain calls (`open_session`, `handle_message`, `close_session`, `shutdown`) with
//! `now` passed in; it answers by pushing [`Action`]s that the runtime performs. No sockets, no
//! executors, no clocks: every routing rule is testable by calling it directly.

use bytes::Bytes;

use crate::serializer::Serializer;

/// A session's handle inside one router (a slab key; never sent on the wire).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub usize);

/// Milliseconds on the runtime's monotonic clock.
pub type Millis = u64;

/// What the runtime must do on the router's behalf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write this encoded WAMP message to the session's transport. For fan-out the same
    /// `Bytes` is shared by every recipient.
    Send { session: SessionKey, frame: Bytes },
    /// Flush what was queued for the session, then close its transport. The router has already
    /// forgotten the session (or will ignore anything more from it).
    Close { session: SessionKey },
}

/// URI validation strictness (digest §4).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum UriCheck {
    #[default]
    Loose,
    Strict,
}

/// One realm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealmConfig {
    pub name: String,
}

/// Router configuration (built by `config.rs` from TOML).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterConfig {
    pub realms: Vec<RealmConfig>,
    /// Create unknown realms on first HELLO instead of ABORT `wamp.error.no_such_realm`.
    pub auto_create_realms: bool,
    pub uri_check: UriCheck,
    /// Pending (unanswered) calls a caller may have; more get `wamp.error.limit_exceeded`-style
    /// ERROR (see router docs).
    pub max_pending_calls_per_session: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            realms: vec![RealmConfig { name: "realm1".to_string() }],
            auto_create_realms: false,
            uri_check: UriCheck::Loose,
            max_pending_calls_per_session: 65_536,
        }
    }
}

/// Facts about the transport a session arrived on (shown in meta API later, logged now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportInfo {
    pub serializer: Serializer,
    /// e.g. "websocket" or "rawsocket".
    pub kind: &'static str,
    /// Peer address as text, e.g. "127.0.0.1:50312".
    pub peer: String,
}
