//! RawSocket handshake and framing (digest §8.2).
