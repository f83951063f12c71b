//! The serializer a session negotiated. Shared by `net` (which negotiates it: WebSocket
//! subprotocol or RawSocket serializer nibble) and `wire` (which speaks it), so neither has to
//! know the other.

use std::fmt;

/// A WAMP serializer wampring speaks.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// `wamp.2.json`, RawSocket serializer 1.
    Json,
    /// `wamp.2.msgpack`, RawSocket serializer 2.
    MsgPack,
    /// `wamp.2.cbor`, RawSocket serializer 3 (RFC 8949).
    Cbor,
}

impl Serializer {
    /// How many serializers there are: the length of tables indexed by [`Serializer::index`].
    pub const COUNT: usize = 3;

    /// Every serializer, for tables indexed by serializer.
    pub const ALL: [Serializer; Serializer::COUNT] =
        [Serializer::Json, Serializer::MsgPack, Serializer::Cbor];

    /// Dense index for per-serializer caches (`[T; Serializer::COUNT]`).
    pub fn index(self) -> usize {
        match self {
            Serializer::Json => 0,
            Serializer::MsgPack => 1,
            Serializer::Cbor => 2,
        }
    }

    /// The WebSocket subprotocol name.
    pub fn ws_subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
            Serializer::Cbor => "wamp.2.cbor",
        }
    }

    /// Parses a WebSocket subprotocol name (unbatched forms only).
    pub fn from_ws_subprotocol(name: &str) -> Option<Serializer> {
        match name {
            "wamp.2.json" => Some(Serializer::Json),
            "wamp.2.msgpack" => Some(Serializer::MsgPack),
            "wamp.2.cbor" => Some(Serializer::Cbor),
            _ => None,
        }
    }

    /// The RawSocket serializer nibble (digest §8.2).
    pub fn rawsocket_id(self) -> u8 {
        match self {
            Serializer::Json => 1,
            Serializer::MsgPack => 2,
            Serializer::Cbor => 3,
        }
    }

    /// Parses a RawSocket serializer nibble; `None` for ones wampring does not speak.
    pub fn from_rawsocket_id(id: u8) -> Option<Serializer> {
        match id {
            1 => Some(Serializer::Json),
            2 => Some(Serializer::MsgPack),
            3 => Some(Serializer::Cbor),
            _ => None,
        }
    }

    /// Short name used in config files and CLI flags.
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
            Serializer::Cbor => "cbor",
        }
    }
}

impl fmt::Display for Serializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
