//! net: byte streams <-> message frames, sans-IO. WebSocket (RFC 6455, server and client side)
//! and RawSocket (digest §8.2), as incremental parsers over a byte buffer: feed whatever the
//! socket returned, take out complete WAMP messages; queue messages to send, take out the bytes
//! to write. TLS (`tls.rs`) is a byte filter of the same shape in front of either. Knows
//! nothing of WAMP semantics; the shard runtime and the load generator drive it.

pub mod batched;
pub mod conn;
pub mod longpoll;
pub mod rawsocket;
pub mod tls;
pub mod websocket;

pub use crate::serializer::Serializer;
pub use conn::{
    ClientConn, ConnEvent, Polled, SendError, ServerConn, TransportConfig, TransportKind,
    DEFAULT_MAX_WS_FRAGMENTS,
};
