//! The admin listener (`[admin]`): a small HTTP/1.1 server on shard 0 for operators.
//!
//! * `GET /metrics`: Prometheus text format (`export.rs`), every shard's counters gathered
//!   through the router's gather primitive at the moment of the scrape; nothing is shared
//!   between shards and nothing on the routing path takes a lock.
//! * `GET /healthz`: 200 when every shard answers a metrics gather within a second, else 503
//!   naming the problem: a stuck shard fails it.
//! * `GET /readyz`: 200 while the router takes sessions, 503 once it shuts down.
//! * `GET /`: the live status page (`status.html`, embedded), which polls
//!   `GET /status.json` every second.
//!
//! One request per connection (the response closes it), at most [`MAX_ADMIN_CONNECTIONS`]
//! at once, each bounded to [`MAX_REQUEST_HEAD`] bytes and [`REQUEST_TIMEOUT`]. With a token
//! configured, every path but `/healthz` and `/readyz` needs `Authorization: Bearer <token>`
//! (compared in constant time); the status page takes the token from its URL fragment
//! (`/#token=…`, which browsers never send to the server) and sends it with its polls. TLS
//! (`tls_cert`/`tls_key`) goes through the same sans-IO filter as the WAMP listeners.

mod export;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::timer::Timer;
use subtle::ConstantTimeEq;
use tracing::{debug, info, warn};

use crate::config::AdminConfig;
use crate::net::tls::TlsFilter;
use crate::router::LogLimit;

use super::state::Shard;

/// Admin connections served at once; more are answered 503 at once.
pub(crate) const MAX_ADMIN_CONNECTIONS: usize = 32;
/// Largest request head (request line and headers) read.
pub(crate) const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head (and, with TLS, finish its handshake).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time the shards have to answer a metrics gather.
const GATHER_WAIT: Duration = Duration::from_secs(1);

const STATUS_PAGE: &str = include_str!("status.html");

/// What the admin server knows besides the shard.
pub(crate) struct Admin {
    config: AdminConfig,
    started: Instant,
    shards: usize,
    open: Cell<usize>,
    refused_log: std::cell::RefCell<LogLimit>,
}

/// Serves the admin listener until the task is dropped.
pub(crate) async fn serve(shard: Rc<Shard>, listener: TcpListener, config: AdminConfig) {
    let admin = Rc::new(Admin {
        shards: shard.shard_count(),
        config,
        started: Instant::now(),
        open: Cell::new(0),
        refused_log: Default::default(),
    });
    info!("admin listener on {}", admin.config.url());
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                warn!("admin listener: accept failed: {e}");
                Timer::new(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (shard, admin) = (shard.clone(), admin.clone());
        glommio::spawn_local(async move {
            if admin.open.get() >= MAX_ADMIN_CONNECTIONS {
                admin.refuse_busy(stream, shard.now()).await;
                return;
            }
            admin.open.set(admin.open.get() + 1);
            let peer = stream.peer_addr().ok();
            if let Err(e) = admin.serve_connection(&shard, stream).await {
                debug!(?peer, "admin connection: {e}");
            }
            admin.open.set(admin.open.get() - 1);
        })
        .detach();
    }
}

/// One HTTP response.
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    extra_headers: &'static str,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
            extra_headers: "",
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Error",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{}\r\n",
            self.status,
            self.content_type,
            self.body.len(),
            self.extra_headers,
        )
        .into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// A connection's byte stream, in the clear or through TLS.
struct AdminStream {
    tcp: TcpStream,
    tls: Option<Box<TlsFilter>>,
}

impl AdminStream {
    /// Reads until a whole request head is in `head` (or it is too long, or the peer is done).
    async fn read_head(&mut self, head: &mut Vec<u8>) -> std::io::Result<()> {
        let mut buffer = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() <= MAX_REQUEST_HEAD {
            let n = self.tcp.read(&mut buffer).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            match &mut self.tls {
                None => head.extend_from_slice(&buffer[..n]),
                Some(tls) => {
                    let received = tls.receive(&buffer[..n], |plain| head.extend_from_slice(plain));
                    // Handshake records (or an alert) go out before anything else is read.
                    let records = tls.ciphertext().to_vec();
                    tls.consume_ciphertext(records.len());
                    self.tcp.write_all(&records).await?;
                    received.map_err(|e| std::io::Error::other(e.0))?;
                }
            }
        }
        Ok(())
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.tls {
            None => self.tcp.write_all(bytes).await?,
            Some(tls) => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let taken = tls.send(rest);
                    rest = &rest[taken..];
                    let records = tls.ciphertext().to_vec();
                    tls.consume_ciphertext(records.len());
                    self.tcp.write_all(&records).await?;
                }
                tls.close();
                let records = tls.ciphertext().to_vec();
                tls.consume_ciphertext(records.len());
                self.tcp.write_all(&records).await?;
            }
        }
        self.tcp.flush().await
    }
}

impl Admin {
    async fn refuse_busy(&self, mut stream: TcpStream, now: crate::router::Millis) {
        if let Some(suppressed) = self.refused_log.borrow_mut().allow(now) {
            warn!(
                suppressed,
                "admin listener: {MAX_ADMIN_CONNECTIONS} connections open; refusing more"
            );
        }
        if self.config.tls.is_none() {
            let busy = Response::text(503, "busy: too many admin connections\n");
            let _ = stream.write_all(&busy.bytes()).await;
        }
    }

    async fn serve_connection(&self, shard: &Shard, tcp: TcpStream) -> std::io::Result<()> {
        let tls = match &self.config.tls {
            None => None,
            Some(tls) => Some(Box::new(
                TlsFilter::server(tls.server_config.clone())
                    .map_err(|e| std::io::Error::other(e.0))?,
            )),
        };
        let mut stream = AdminStream { tcp, tls };
        let mut head = Vec::with_capacity(1024);
        let read =
            futures_lite::future::or(async { Some(stream.read_head(&mut head).await) }, async {
                Timer::new(REQUEST_TIMEOUT).await;
                None
            })
            .await;
        let response = match read {
            None => return Err(std::io::ErrorKind::TimedOut.into()),
            Some(Err(e)) => return Err(e),
            Some(Ok(())) => self.respond(shard, &head).await,
        };
        stream.write_all(&response.bytes()).await
    }

    async fn respond(&self, shard: &Shard, head: &[u8]) -> Response {
        if head.len() > MAX_REQUEST_HEAD {
            return Response::text(431, "request head too large\n");
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return Response::text(400, "malformed request\n"),
        }
        let method = request.method.unwrap_or("");
        let path = request.path.unwrap_or("/");
        let path = path.split('?').next().unwrap_or(path);
        if method != "GET" {
            let mut response = Response::text(405, "only GET\n");
            response.extra_headers = "Allow: GET\r\n";
            return response;
        }
        let open = matches!(path, "/healthz" | "/readyz" | "/");
        if !open && !self.authorized(request.headers) {
            let mut response = Response::text(401, "a bearer token is required\n");
            response.extra_headers = "WWW-Authenticate: Bearer realm=\"wampring\"\r\n";
            return response;
        }
        match path {
            "/" => Response {
                status: 200,
                content_type: "text/html; charset=utf-8",
                body: STATUS_PAGE.as_bytes().to_vec(),
                extra_headers: "",
            },
            "/readyz" => {
                if shard.is_stopping() {
                    Response::text(503, "shutting down\n")
                } else {
                    Response::text(200, "ready\n")
                }
            }
            "/healthz" => match shard.gather_metrics(GATHER_WAIT).await {
                Some(snapshots) if snapshots.len() == self.shards => {
                    Response::text(200, format!("ok: {} shards answered\n", snapshots.len()))
                }
                Some(snapshots) => Response::text(
                    503,
                    format!("{} of {} shards answered\n", snapshots.len(), self.shards),
                ),
                None => Response::text(
                    503,
                    format!("the shards did not answer within {GATHER_WAIT:?}\n"),
                ),
            },
            "/metrics" | "/status.json" => match shard.gather_metrics(GATHER_WAIT).await {
                None => Response::text(
                    503,
                    format!("the shards did not answer within {GATHER_WAIT:?}\n"),
                ),
                Some(snapshots) => {
                    let facts = export::Facts {
                        uptime: self.started.elapsed(),
                        ready: !shard.is_stopping(),
                    };
                    if path == "/metrics" {
                        Response {
                            status: 200,
                            content_type: "text/plain; version=0.0.4; charset=utf-8",
                            body: export::prometheus(&snapshots, &facts).into_bytes(),
                            extra_headers: "",
                        }
                    } else {
                        Response {
                            status: 200,
                            content_type: "application/json",
                            body: export::status_json(&snapshots, &facts).into_bytes(),
                            extra_headers: "",
                        }
                    }
                }
            },
            _ => Response::text(404, "not found: try /, /metrics, /healthz, /readyz\n"),
        }
    }

    fn authorized(&self, headers: &[httparse::Header<'_>]) -> bool {
        let Some(token) = &self.config.token else {
            return true;
        };
        headers
            .iter()
            .filter(|header| header.name.eq_ignore_ascii_case("authorization"))
            .filter_map(|header| std::str::from_utf8(header.value).ok())
            .filter_map(|value| value.trim().strip_prefix("Bearer "))
            .any(|given| bool::from(given.trim().as_bytes().ct_eq(token.0.as_bytes())))
    }
}
