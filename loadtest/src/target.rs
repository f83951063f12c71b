//! The router under test, named by URL: `ws://HOST:PORT/PATH` (WebSocket) or `rs://HOST:PORT`
//! (RawSocket). Owns URL parsing, address resolution and the transport settings a client
//! connection to it uses.

use std::net::{SocketAddr, ToSocketAddrs};

use wampring::net::{TransportConfig, TransportKind};
use wampring::serializer::Serializer;

/// Largest message the generator accepts or sends: the RawSocket maximum (2^24), which every
/// router announces at most.
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// Outbound bytes one connection may queue before sends fail. A window or rate keeps the queue
/// far below this; the bound only stops a runaway scenario from eating memory.
pub const MAX_OUTBOUND_BYTES: usize = 64 * 1024 * 1024;

/// A parsed router URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The URL as given, for reports.
    pub url: String,
    pub kind: TransportKind,
    /// Host name or IP literal, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// WebSocket request path, `/` when the URL has none; empty for RawSocket.
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let url = url.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("`{url}`: expected ws://HOST:PORT/PATH or rs://HOST:PORT"))?;
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "ws" => TransportKind::WebSocket,
            "rs" | "rawsocket" | "tcp" => TransportKind::RawSocket,
            "wss" | "rss" => {
                return Err(format!(
                    "`{url}`: TLS is not supported; benchmark the plain port"
                ))
            }
            other => return Err(format!("`{url}`: unknown scheme `{other}` (use ws or rs)")),
        };
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(authority, url)?;
        let port = match (port, kind) {
            (Some(port), _) => port,
            (None, TransportKind::WebSocket) => 80,
            (None, TransportKind::RawSocket) => {
                return Err(format!(
                    "`{url}`: RawSocket has no default port; write rs://HOST:PORT"
                ))
            }
        };
        let path = match kind {
            TransportKind::WebSocket if path.is_empty() => "/".to_string(),
            TransportKind::WebSocket => path.to_string(),
            TransportKind::RawSocket if path.is_empty() || path == "/" => String::new(),
            TransportKind::RawSocket => {
                return Err(format!("`{url}`: a RawSocket URL has no path"));
            }
        };
        Ok(Target {
            url: url.to_string(),
            kind,
            host,
            port,
            path,
        })
    }

    /// Resolves the host once, before the run, so no task ever blocks on DNS.
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{} resolves to no address", self.host))
    }

    /// The `Host` header value: host, plus the port unless it is the default 80.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Transport settings for one client connection speaking `serializer`.
    pub fn transport_config(&self, serializer: Serializer) -> TransportConfig {
        TransportConfig {
            max_message_size: MAX_MESSAGE_SIZE,
            max_outbound_bytes: MAX_OUTBOUND_BYTES,
            serializers: vec![serializer],
            ws_path: if self.path.is_empty() {
                "/".to_string()
            } else {
                self.path.clone()
            },
            ws_host: self.host_header(),
            ..TransportConfig::default()
        }
    }
}

fn split_host_port(authority: &str, url: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: unclosed `[` in the IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("`{url}`: bad port"))?,
            ),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{url}`: missing host"));
    }
    if host.contains(['@', ' ', '?', '#']) {
        return Err(format!(
            "`{url}`: user info, spaces, queries and fragments are not supported in the host"
        ));
    }
    let port = match port {
        None => None,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 => Some(port),
            _ => return Err(format!("`{url}`: `{text}` is not a port (1-65535)")),
        },
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_urls() {
        let t = Target::parse("ws://127.0.0.1:8080/ws").unwrap();
        assert_eq!(t.kind, TransportKind::WebSocket);
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8080, "/ws")
        );
        assert_eq!(t.host_header(), "127.0.0.1:8080");

        let t = Target::parse("ws://router.example").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        assert_eq!(t.host_header(), "router.example");

        let t = Target::parse("ws://[::1]:9080/deep/path?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 9080, "/deep/path?x=1")
        );
        assert_eq!(t.host_header(), "[::1]:9080");
    }

    #[test]
    fn rawsocket_urls() {
        let t = Target::parse("rs://127.0.0.1:8081").unwrap();
        assert_eq!(t.kind, TransportKind::RawSocket);
        assert_eq!((t.port, t.path.as_str()), (8081, ""));
        assert!(Target::parse("rs://127.0.0.1:8081/").is_ok());
        assert!(Target::parse("rawsocket://h:1").is_ok());
    }

    #[test]
    fn bad_urls_are_refused() {
        for bad in [
            "127.0.0.1:8080",
            "http://h:1/ws",
            "wss://h:443/ws",
            "rs://h",
            "rs://h:1/path",
            "ws://:8080/ws",
            "ws://h:0/ws",
            "ws://h:70000/ws",
            "ws://h:port/ws",
            "ws://[::1/ws",
            "ws://user@h:1/ws",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn transport_config_carries_path_and_host() {
        let t = Target::parse("ws://localhost:9080/ws").unwrap();
        let cfg = t.transport_config(Serializer::MsgPack);
        assert_eq!(cfg.ws_path, "/ws");
        assert_eq!(cfg.ws_host, "localhost:9080");
        assert_eq!(cfg.serializers, vec![Serializer::MsgPack]);
    }
}
