//! WebSocket (RFC 6455): HTTP/1.1 upgrade and frame codec.
