//! fuzz_targets: the bodies of the fuzz targets, written once and run from two places — the
//! cargo-fuzz binaries in `fuzz/fuzz_targets/` (libFuzzer, nightly) and the stable replay of the
//! committed seed corpus in `tests/fuzz_corpus.rs` (part of `cargo test`). Each target takes
//! arbitrary bytes, drives one layer exactly as the network would (codec, transport framing,
//! router), and panics only when an invariant is broken; every `assert!` here states a property
//! that must hold for ANY input. Not part of the router's API: hidden from the docs, no
//! dependency of its own (inputs are shaped by the small byte-driven `Cursor`, not by
//! `arbitrary`).
//!
//! Targets: [`json_decode`], [`msgpack_decode`] and [`cbor_decode`] (`codec.rs`), [`websocket_server`] and
//! [`rawsocket_server`] (`transport.rs`), `router` (`router.rs`). [`TARGETS`] lists them by
//! the names the fuzz binaries and the corpus directories use.

mod codec;
mod router;
mod transport;

use crate::net::TransportKind;
use crate::serializer::Serializer;

/// One WAMP message in JSON through the router's decoder (`wire::decode`), the header peek,
/// the payload readers, re-encoding (must be a fixed point) and transcoding to MessagePack.
pub fn json_decode(data: &[u8]) {
    codec::check(Serializer::Json, data);
}

/// As [`json_decode`], for MessagePack.
pub fn msgpack_decode(data: &[u8]) {
    codec::check(Serializer::MsgPack, data);
}

/// As [`json_decode`], for CBOR.
pub fn cbor_decode(data: &[u8]) {
    codec::check(Serializer::Cbor, data);
}

/// A WebSocket server connection (`net::ServerConn`) fed an upgrade request and frames, split
/// into chunks at points the input chooses, answering messages so the outbound path runs.
pub fn websocket_server(data: &[u8]) {
    transport::check(TransportKind::WebSocket, data);
}

/// As [`websocket_server`], for RawSocket.
pub fn rawsocket_server(data: &[u8]) {
    transport::check(TransportKind::RawSocket, data);
}

/// 1 to 3 router shards (sans-IO) fed sessions, mostly well-formed WAMP messages with random
/// ids, URIs and options, raw garbage, timer ticks and shard-message deliveries in an order the
/// input chooses; afterwards every session is closed and every table must be empty.
pub fn router(data: &[u8]) {
    router::check(data);
}

/// A target body: takes any bytes, panics only on a broken invariant.
pub type Target = fn(&[u8]);

/// Every target by name (the cargo-fuzz binary and `fuzz/corpus/<name>/` use the same name).
pub const TARGETS: [(&str, Target); 6] = [
    ("json_decode", json_decode),
    ("msgpack_decode", msgpack_decode),
    ("cbor_decode", cbor_decode),
    ("websocket_server", websocket_server),
    ("rawsocket_server", rawsocket_server),
    ("router", router),
];

/// Reads the fuzz input front to back as small decisions; past the end every read is 0, so any
/// input (even empty) is a complete, valid program.
pub(crate) struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// A number in `0..n` (`n` in 1..=256).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        debug_assert!((1..=256).contains(&n));
        usize::from(self.byte()) % n
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// True for roughly `percent` out of 100 bytes.
    pub(crate) fn chance(&mut self, percent: u8) -> bool {
        u16::from(self.byte()) * 100 < u16::from(percent) * 256
    }

    /// One element of `items` (which must not be empty).
    pub(crate) fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.below(items.len())]
    }

    /// The next `n` bytes (fewer at the end of the input).
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}
