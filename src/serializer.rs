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
}

impl Serializer {
    /// Both serializers, for tables indexed by serializer.
    pub const ALL: [Serializer; 2] = [Serializer::Json, Serializer::MsgPack];

    /// Dense index for per-serializer caches (`[T; 2]`).
    pub fn index(self) -> usize {
        match self {
            Serializer::Json => 0,
            Serializer::MsgPack => 1,
        }
    }

    /// The WebSocket subprotocol name.
    pub fn ws_subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
        }
    }

    /// Parses a WebSocket subprotocol name (unbatched forms only).
    pub fn from_ws_subprotocol(name: &str) -> Option<Serializer> {
        match name {
            "wamp.2.json" => Some(Serializer::Json),
            "wamp.2.msgpack" => Some(Serializer::MsgPack),
            _ => None,
        }
    }

    /// The RawSocket serializer nibble (digest §8.2).
    pub fn rawsocket_id(self) -> u8 {
        match self {
            Serializer::Json => 1,
            Serializer::MsgPack => 2,
        }
    }

    /// Parses a RawSocket serializer nibble; `None` for ones wampring does not speak.
    pub fn from_rawsocket_id(id: u8) -> Option<Serializer> {
        match id {
            1 => Some(Serializer::Json),
            2 => Some(Serializer::MsgPack),
            _ => None,
        }
    }

    /// Short name used in config files and CLI flags.
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
        }
    }
}

impl fmt::Display for Serializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
