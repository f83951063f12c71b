//! The router under test, named by URL: `ws://HOST:PORT/PATH` (WebSocket) or `rs://HOST:PORT`
//! (RawSocket), over TLS `wss://HOST:PORT/PATH` and `rss://HOST:PORT`, on a Unix domain socket
//! `ws+unix:/path/to.sock` (WebSocket request path `/ws`; `ws+unix:/path/to.sock#/other`
//! requests `/other`) and `rs+unix:/path/to.sock`, over TLS on a Unix socket `wss+unix:` and
//! `rss+unix:` (server name `localhost`). The same forms as the router's listener log lines.
//! Owns URL parsing, address resolution, the TLS client settings and the transport settings a
//! client connection to it uses.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use wampring::net::tls::{self, ServerTrust};
use wampring::net::{TransportConfig, TransportKind};
use wampring::serializer::Serializer;

/// The TLS client settings of a target: shared by all its connections.
#[derive(Clone, Debug)]
pub struct TlsClient {
    pub config: Arc<rustls::ClientConfig>,
    /// Presented (SNI) and checked against the certificate: the URL's host.
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl PartialEq for TlsClient {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

impl Eq for TlsClient {}

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
    /// WebSocket request path, `/` when the URL has none (`/ws` on a Unix socket); empty for
    /// RawSocket.
    pub path: String,
    /// `wss`, `rss` (and their `+unix` forms): connections run through a TLS client filter.
    pub secure: bool,
    /// The Unix socket path (`ws+unix:`, `rs+unix:`); `host` and `port` are then unused.
    pub unix: Option<PathBuf>,
    /// Set by [`Target::with_tls`] for secure targets.
    pub tls: Option<TlsClient>,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let url = url.trim();
        if let Some(target) = Target::parse_unix(url)? {
            return Ok(target);
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("`{url}`: expected ws://HOST:PORT/PATH or rs://HOST:PORT"))?;
        let (kind, secure) = match scheme.to_ascii_lowercase().as_str() {
            "ws" => (TransportKind::WebSocket, false),
            "wss" => (TransportKind::WebSocket, true),
            "rs" | "rawsocket" | "tcp" => (TransportKind::RawSocket, false),
            "rss" => (TransportKind::RawSocket, true),
            other => {
                return Err(format!(
                    "`{url}`: unknown scheme `{other}` (use ws, wss, rs, rss, ws+unix or rs+unix)"
                ))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, ""),
        };
        let (host, port) = split_host_port(authority, url)?;
        let port = match (port, kind) {
            (Some(port), _) => port,
            (None, TransportKind::WebSocket) if secure => 443,
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
            secure,
            unix: None,
            tls: None,
        })
    }

    /// The `ws+unix:PATH[#REQUEST-PATH]`, `rs+unix:PATH` forms (and `wss+unix:`, `rss+unix:`);
    /// `None` for other URLs.
    fn parse_unix(url: &str) -> Result<Option<Target>, String> {
        let Some((scheme, rest)) = url.split_once("+unix:") else {
            return Ok(None);
        };
        let (kind, secure) = match scheme.to_ascii_lowercase().as_str() {
            "ws" => (TransportKind::WebSocket, false),
            "wss" => (TransportKind::WebSocket, true),
            "rs" => (TransportKind::RawSocket, false),
            "rss" => (TransportKind::RawSocket, true),
            _ => return Ok(None),
        };
        let (socket, path) = match (kind, rest.split_once('#')) {
            (TransportKind::WebSocket, Some((socket, path))) if path.starts_with('/') => {
                (socket, path.to_string())
            }
            (_, Some(_)) => {
                return Err(format!(
                    "`{url}`: only ws+unix takes a request path, as #/PATH after the socket path"
                ))
            }
            (TransportKind::WebSocket, None) => (rest, "/ws".to_string()),
            (TransportKind::RawSocket, None) => (rest, String::new()),
        };
        if socket.is_empty() {
            return Err(format!(
                "`{url}`: missing the socket path ({scheme}+unix:/path/to.sock)"
            ));
        }
        Ok(Some(Target {
            url: url.to_string(),
            kind,
            host: "localhost".to_string(),
            port: 0,
            path,
            secure,
            unix: Some(PathBuf::from(socket)),
            tls: None,
        }))
    }

    /// Sets up TLS for a secure target (`wss`, `rss`): `trust` says how the server's
    /// certificate is checked (`None`: a secure URL without --tls-ca or --tls-insecure is an
    /// error). A plain target ignores it.
    pub fn with_tls(mut self, trust: Option<&ServerTrust>) -> Result<Target, String> {
        if !self.secure {
            return Ok(self);
        }
        let trust = trust.ok_or_else(|| {
            format!(
                "`{}`: a TLS URL needs --tls-ca FILE (the router's CA or self-signed certificate) or --tls-insecure",
                self.url
            )
        })?;
        self.tls = Some(TlsClient {
            config: tls::client_config(trust)?,
            server_name: tls::server_name(&self.host)?,
        });
        Ok(self)
    }

    /// Resolves the host once, before the run, so no task ever blocks on DNS. A Unix socket
    /// target has no address: it answers 0.0.0.0:0, which the link does not use.
    pub fn resolve(&self) -> Result<SocketAddr, String> {
        if self.unix.is_some() {
            return Ok(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        }
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
        if self.port == 80 || self.unix.is_some() || (self.secure && self.port == 443) {
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
            "rs://h",
            "rss://h",
            "rs+unix:",
            "rs+unix:/a.sock#/x",
            "ws+unix:/a.sock#x",
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
    fn tls_and_unix_urls() {
        let t = Target::parse("wss://127.0.0.1:8443/ws").unwrap();
        assert_eq!(t.kind, TransportKind::WebSocket);
        assert!(t.secure && t.unix.is_none());
        assert_eq!((t.port, t.path.as_str()), (8443, "/ws"));
        assert_eq!(Target::parse("wss://h/ws").unwrap().port, 443);
        let t = Target::parse("rss://localhost:9444").unwrap();
        assert_eq!((t.kind, t.secure), (TransportKind::RawSocket, true));

        let t = Target::parse("ws+unix:/tmp/w.sock").unwrap();
        assert_eq!(t.kind, TransportKind::WebSocket);
        assert_eq!(t.unix.as_deref(), Some(std::path::Path::new("/tmp/w.sock")));
        assert_eq!((t.path.as_str(), t.secure), ("/ws", false));
        assert_eq!(t.host_header(), "localhost");
        let t = Target::parse("ws+unix:/tmp/w.sock#/other").unwrap();
        assert_eq!(t.path, "/other");
        let t = Target::parse("rs+unix:relative.sock").unwrap();
        assert_eq!((t.kind, t.path.as_str()), (TransportKind::RawSocket, ""));
        assert!(Target::parse("rss+unix:/tmp/r.sock").unwrap().secure);
        assert!(Target::parse("rs+unix:/tmp/r.sock")
            .unwrap()
            .resolve()
            .is_ok());

        // A secure URL needs a trust choice; a plain one ignores it.
        let secure = Target::parse("wss://127.0.0.1:8443/ws").unwrap();
        assert!(secure
            .clone()
            .with_tls(None)
            .unwrap_err()
            .contains("--tls-ca"));
        let with = secure.with_tls(Some(&ServerTrust::Insecure)).unwrap();
        assert!(with.tls.is_some());
        let plain = Target::parse("ws://127.0.0.1:8080/ws").unwrap();
        assert!(plain.with_tls(None).unwrap().tls.is_none());
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
