//! The router's configuration: the TOML file format, its embedded default
//! (`src/default-config.toml`), and validation. Parsing is strict — unknown keys are errors
//! (serde `deny_unknown_fields`) — and every bad value is reported with the key that holds it,
//! e.g. `listener[1].path: "ws" must start with '/'`. The result is a [`Config`] whose parts are
//! the plain configuration types of the lower layers ([`TransportConfig`], [`RouterConfig`]),
//! so nothing below this module sees TOML. `reload.rs`: what a reload (SIGHUP) re-reads and
//! which settings it may change in a running process.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

mod admin;
mod auth;
mod reload;

pub use admin::{AdminConfig, DEFAULT_ADMIN_BIND};

pub use auth::{cryptosign_lines, scram_line, ticket_hash_line, wampcra_line};
pub use reload::{plan_reload, ConfigSource, ReloadPlan};

use crate::net::{TransportConfig, TransportKind};
use crate::router::{
    HistoryConfig, ListenerAuth, MatchPolicy, RealmConfig, RouterConfig, UriCheck,
};
use crate::serializer::Serializer;

/// The embedded default configuration, served by `wampring` without arguments and printed by
/// `wampring --print-default-config`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../default-config.toml");

/// Bounds of the sizes and counts a config may set. They keep a typo (an extra zero) from
/// turning into an unbounded queue, and keep RawSocket within what its handshake can announce.
pub mod bounds {
    pub const MIN_MESSAGE_SIZE: usize = 512;
    /// RawSocket announces at most 2^24 bytes in its handshake.
    pub const MAX_RAWSOCKET_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
    pub const MAX_WEBSOCKET_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
    pub const MIN_OUTBOUND_BYTES: usize = 64 * 1024;
    pub const MAX_OUTBOUND_BYTES: usize = 1024 * 1024 * 1024;
    pub const MAX_PENDING_CALLS: usize = 1 << 20;
    pub const MIN_HANDSHAKE_TIMEOUT_MS: u64 = 100;
    pub const MAX_HANDSHAKE_TIMEOUT_MS: u64 = 600_000;
    /// The shutdown grace: long enough for a close handshake across a slow link, short enough
    /// that a supervisor's stop timeout (systemd's TimeoutStopSec, 90 s by default) is not hit.
    pub const MIN_SHUTDOWN_GRACE_MS: u64 = 100;
    pub const MAX_SHUTDOWN_GRACE_MS: u64 = 60_000;
    pub const MAX_CONNECTIONS_PER_SHARD: usize = 1_000_000;
    /// Long enough for any realistic URI (and for the spec's own), short enough that tables
    /// keyed by URIs stay small.
    pub const MIN_URI_LENGTH: usize = 16;
    pub const MAX_URI_LENGTH: usize = 65_536;
    pub const MAX_SPIN_BEFORE_PARK_US: u64 = 1_000_000;
    /// Registrations or subscriptions one session may hold.
    pub const MAX_TABLE_ENTRIES_PER_SESSION: usize = 1 << 20;
    /// Testaments one session may hold: each is up to one message, so this bounds the memory
    /// a session can pin until it leaves.
    pub const MAX_TESTAMENTS_PER_SESSION: usize = 4096;
    /// Retained-event bytes per realm (0 declines every retained event).
    pub const MAX_RETAINED_BYTES_PER_REALM: usize = 1 << 34;
    /// Shards the router supports (its subscription bitsets have one bit per shard).
    pub const MAX_CORES: usize = crate::router::MAX_SHARDS;
    /// Messages one shard-to-shard channel holds. A power of two (the ring's real size).
    pub const MIN_SHARD_CHANNEL_CAPACITY: usize = 16;
    pub const MAX_SHARD_CHANNEL_CAPACITY: usize = 1 << 20;
    pub const MAX_AUTO_CREATED_REALMS: usize = 1_000_000;
    /// Entries a request's Options may hold: enough for every option the spec defines.
    pub const MIN_OPTIONS_ENTRIES: usize = 16;
    pub const MAX_OPTIONS_ENTRIES: usize = 1 << 20;
    /// Frames one WebSocket message may come in.
    pub const MAX_WS_FRAGMENTS: usize = 1 << 20;
    /// Events one history subscription keeps, and the bytes they may hold.
    pub const MAX_HISTORY_LIMIT: usize = 1 << 24;
    pub const MIN_HISTORY_BYTES: usize = 1024;
    pub const MAX_HISTORY_BYTES: usize = 1 << 34;
    pub const MIN_SHARD_BACKLOG_LIMIT: usize = 256;
    pub const MAX_SHARD_BACKLOG_LIMIT: usize = 1 << 24;
}

// The config may never ask for more shards than the router can address.
const _: () = assert!(bounds::MAX_CORES <= crate::router::MAX_SHARDS);

/// A configuration that could not be read, parsed or validated. The text names the file and
/// the offending key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// One listening socket, validated.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    pub kind: TransportKind,
    pub bind: BindAddr,
    /// TLS in front of the transport (`tls_cert` + `tls_key`); `None`: plain.
    pub tls: Option<ListenerTls>,
    /// Transport limits and choices; `ws_path` is meaningful for WebSocket only.
    pub transport: TransportConfig,
    /// What happens to a session of this listener that does not read what it is sent.
    pub slow_consumer: SlowConsumerPolicy,
    /// The authentication methods its sessions may use.
    pub auth: ListenerAuth,
}

/// Where a listener listens: `bind = "IP:PORT"` or `bind = "unix:/path/to/socket"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BindAddr {
    Tcp(SocketAddr),
    /// A Unix domain stream socket at this path (absolute: relative paths in the file are
    /// resolved against the config file's directory).
    Unix(PathBuf),
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindAddr::Tcp(addr) => write!(f, "{addr}"),
            BindAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A listener's TLS: the files it came from and the rustls configuration built from them
/// (checked at load: readable, a certificate, a key, and the key fits the certificate).
#[derive(Clone, Debug)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// Longest Unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
const MAX_UNIX_PATH_BYTES: usize = 107;

/// What the router does with a session whose connection does not read its messages.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum SlowConsumerAction {
    /// Past the hard mark (`max_outbound_bytes`) the session is ended: an ABORT
    /// `wampring.error.slow_consumer` and a close frame are queued (best effort), the socket
    /// is dropped if the peer does not take them in time.
    #[default]
    Disconnect,
    /// Past the soft mark EVENTs for the session are dropped (and counted) while it catches
    /// up; everything else still queues, up to the hard mark, where it is disconnected.
    DropEvents,
}

impl SlowConsumerAction {
    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            SlowConsumerAction::Disconnect => "disconnect",
            SlowConsumerAction::DropEvents => "drop_events",
        }
    }
}

/// The slow-consumer policy of a listener: the action and its marks, in bytes queued for the
/// connection and not yet written.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SlowConsumerPolicy {
    pub action: SlowConsumerAction,
    /// `drop_events`: EVENTs are dropped while this much is queued.
    pub soft_bytes: usize,
    /// Past this the session is disconnected, whatever the action (`limits.max_outbound_bytes`).
    pub hard_bytes: usize,
}

impl Default for SlowConsumerPolicy {
    fn default() -> Self {
        SlowConsumerPolicy {
            action: SlowConsumerAction::Disconnect,
            soft_bytes: 4 * 1024 * 1024,
            hard_bytes: 16 * 1024 * 1024,
        }
    }
}

impl ListenerConfig {
    /// How the listener is shown in logs: `ws://127.0.0.1:8080/ws`, `rs://127.0.0.1:8081`,
    /// with TLS `wss://…` and `rss://…`; on a Unix socket `ws+unix:/path` (`#/req-path` added
    /// when the WebSocket path is not `/ws`), `rs+unix:/path`, with TLS `wss+unix:`/`rss+unix:`.
    /// wampring-load takes the same forms.
    pub fn url(&self) -> String {
        let secure = if self.tls.is_some() { "s" } else { "" };
        let scheme = match self.kind {
            TransportKind::WebSocket => "ws",
            TransportKind::RawSocket => "rs",
        };
        match (&self.bind, self.kind) {
            (BindAddr::Tcp(addr), TransportKind::WebSocket) => {
                format!("{scheme}{secure}://{addr}{}", self.transport.ws_path)
            }
            (BindAddr::Tcp(addr), TransportKind::RawSocket) => format!("{scheme}{secure}://{addr}"),
            (BindAddr::Unix(path), TransportKind::WebSocket) if self.transport.ws_path != "/ws" => {
                format!(
                    "{scheme}{secure}+unix:{}#{}",
                    path.display(),
                    self.transport.ws_path
                )
            }
            (BindAddr::Unix(path), _) => format!("{scheme}{secure}+unix:{}", path.display()),
        }
    }
}

/// Per-connection limits the runtime enforces (the router's own limits are in
/// [`RouterConfig`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    pub max_outbound_bytes: usize,
    /// The default slow-consumer policy (each listener may set its own).
    pub slow_consumer: SlowConsumerPolicy,
    pub handshake_timeout_ms: u64,
    pub max_connections_per_shard: usize,
    /// How long a stop may take: each session gets GOODBYE, then its transport's close
    /// handshake; whatever has not finished by then is dropped. The first half is left to the
    /// clients to close (they answer GOODBYE by closing), the second to the router's own close.
    pub shutdown_grace_ms: u64,
    /// HTTP long-poll: how long a `receive` request is held without a message before it is
    /// answered 204 (the client then polls again).
    pub longpoll_poll_timeout_ms: u64,
    /// HTTP long-poll: a transport with no request for this long (and none held) is closed
    /// and its session ended, as if its connection dropped.
    pub longpoll_session_timeout_ms: u64,
}

/// How log lines are written to stderr (`log_format`, `--log-format`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event: timestamp, level, target, message, fields.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields with the message), for log
    /// shippers.
    Json,
}

impl LogFormat {
    /// The config/CLI spelling.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }

    /// Parses the config/CLI spelling.
    pub fn from_name(name: &str) -> Option<LogFormat> {
        match name {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Executor tuning knobs (see `tuning/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Microseconds an idle executor busy-polls before sleeping; 0 disables spinning. Takes
    /// effect because shards are pinned (glommio ignores it for unpinned executors).
    pub spin_before_park_us: u64,
    /// Messages each channel between two shards holds before the sender queues them locally.
    /// A power of two.
    pub shard_channel_capacity: usize,
    /// Messages that may wait locally for one shard before this shard stops reading from its
    /// connections (backpressure); reading resumes at half.
    pub shard_backlog_limit: usize,
}

/// How accepted connections are spread over the shards.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ShardPlacement {
    /// Every shard listens on every port (SO_REUSEPORT); the kernel hashes each connection to
    /// one of them. No hand-off, no single accepting core.
    #[default]
    Kernel,
    /// Shard 0 alone accepts and hands the N-th accepted connection (0-based, over all
    /// listeners, in accept order) to shard N % cores. Deterministic: for tests and operators
    /// who want sessions on chosen shards.
    RoundRobin,
}

impl ShardPlacement {
    /// The config/CLI spelling.
    pub fn name(self) -> &'static str {
        match self {
            ShardPlacement::Kernel => "kernel",
            ShardPlacement::RoundRobin => "round-robin",
        }
    }

    /// Parses the config/CLI spelling.
    pub fn from_name(name: &str) -> Option<ShardPlacement> {
        match name {
            "kernel" => Some(ShardPlacement::Kernel),
            "round-robin" => Some(ShardPlacement::RoundRobin),
            _ => None,
        }
    }
}

/// A complete, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Shard count; `None`: one per CPU this process may run on (its affinity mask).
    pub cores: Option<usize>,
    /// How connections are spread over the shards.
    pub placement: ShardPlacement,
    /// Log filter from the file, used when neither `--log-level` nor `RUST_LOG` is set.
    pub log_level: Option<String>,
    /// Log line format; `--log-format` overrides it.
    pub log_format: LogFormat,
    pub listeners: Vec<ListenerConfig>,
    pub limits: LimitsConfig,
    pub router: RouterConfig,
    pub runtime: RuntimeConfig,
    /// The operator's HTTP listener (`[admin]`): metrics, health, status page; `None`: off.
    pub admin: Option<AdminConfig>,
}

impl Config {
    /// The embedded default configuration.
    pub fn default_config() -> Config {
        // The embedded file is checked by a unit test; failing here is a build defect.
        Config::from_toml_str(DEFAULT_CONFIG_TOML).expect("embedded default config is valid")
    }

    /// Reads and validates a config file; errors name the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        // Files the config names (certificates, keys, Unix sockets) are relative to it.
        let base = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        Config::from_toml_str_at(&text, base)
            .map_err(|ConfigError(e)| ConfigError(format!("{}: {e}", path.display())))
    }

    /// What an operator should hear about before exposing this config: anonymous access, or
    /// tickets in the clear, on a listener that is reachable from other machines.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for (index, listener) in self.listeners.iter().enumerate() {
            let anonymous = listener
                .auth
                .methods
                .contains(&crate::router::AuthMethod::Anonymous);
            let exposed = match &listener.bind {
                BindAddr::Tcp(addr) => !addr.ip().is_loopback(),
                BindAddr::Unix(_) => false,
            };
            if anonymous && exposed {
                warnings.push(format!(
                    "listener[{index}] ({}) accepts anonymous sessions on a non-loopback address: \
                     anyone who can reach it may join as role {:?}; set its authmethods to require \
                     authentication",
                    listener.url(),
                    listener.auth.anonymous_role
                ));
            }
            let ticket = listener
                .auth
                .methods
                .contains(&crate::router::AuthMethod::Ticket);
            if ticket && exposed && listener.tls.is_none() {
                warnings.push(format!(
                    "listener[{index}] ({}) accepts tickets without TLS on a non-loopback address: \
                     they travel in the clear; give it tls_cert and tls_key",
                    listener.url()
                ));
            }
        }
        if let Some(admin) = &self.admin {
            warnings.extend(admin.warnings());
        }
        warnings
    }

    /// Parses and validates TOML text; relative file paths in it are taken from the current
    /// directory.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str_at(text, Path::new("."))
    }

    /// Parses and validates TOML text whose relative file paths are relative to `base`.
    pub fn from_toml_str_at(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError(describe_toml_error(&e)))?;
        raw.validate(base)
    }
}

/// toml's messages already name the key (unknown field, bad variant, wrong type) and quote the
/// offending line with its number; only the trailing newline goes.
fn describe_toml_error(error: &toml::de::Error) -> String {
    error.to_string().trim_end().to_string()
}

// ----- the file format, as serde reads it -----

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cores: Option<usize>,
    #[serde(default)]
    placement: RawPlacement,
    log_level: Option<String>,
    log_format: Option<String>,
    #[serde(default, rename = "listener")]
    listeners: Vec<RawListener>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    router: RawRouter,
    #[serde(default)]
    runtime: RawRuntime,
    #[serde(default, rename = "realm")]
    realms: Vec<RawRealm>,
    admin: Option<admin::RawAdmin>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
enum RawPlacement {
    #[default]
    Kernel,
    RoundRobin,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    WebSocket,
    RawSocket,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawSerializer {
    Json,
    MsgPack,
    Cbor,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawListener {
    kind: RawKind,
    bind: String,
    path: Option<String>,
    serializers: Option<Vec<RawSerializer>>,
    max_message_size: Option<usize>,
    max_fragments: Option<usize>,
    slow_consumer: Option<RawSlowConsumer>,
    outbound_soft_bytes: Option<usize>,
    authmethods: Option<Vec<String>>,
    anonymous_role: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
enum RawSlowConsumer {
    #[default]
    Disconnect,
    DropEvents,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_outbound_bytes: usize,
    max_pending_calls_per_session: usize,
    handshake_timeout_ms: u64,
    hello_timeout_ms: u64,
    authenticate_timeout_ms: u64,
    max_connections_per_shard: usize,
    shutdown_grace_ms: u64,
    max_uri_length: usize,
    max_registrations_per_session: usize,
    max_subscriptions_per_session: usize,
    max_testaments_per_session: usize,
    max_options_entries: usize,
    max_retained_bytes_per_realm: usize,
    slow_consumer: RawSlowConsumer,
    /// Default: a quarter of `max_outbound_bytes`.
    outbound_soft_bytes: Option<usize>,
    longpoll_poll_timeout_ms: u64,
    longpoll_session_timeout_ms: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_outbound_bytes: 16 * 1024 * 1024,
            max_pending_calls_per_session: 65_536,
            handshake_timeout_ms: 10_000,
            hello_timeout_ms: 10_000,
            authenticate_timeout_ms: 10_000,
            max_connections_per_shard: 100_000,
            shutdown_grace_ms: 1000,
            max_uri_length: 1024,
            max_registrations_per_session: 10_000,
            max_subscriptions_per_session: 10_000,
            max_testaments_per_session: 64,
            max_options_entries: 256,
            max_retained_bytes_per_realm: 16 * 1024 * 1024,
            slow_consumer: RawSlowConsumer::Disconnect,
            outbound_soft_bytes: None,
            // Crossbar's defaults; Autobahn|JS's request timeout (12 s) is above the first.
            longpoll_poll_timeout_ms: 10_000,
            longpoll_session_timeout_ms: 30_000,
        }
    }
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
enum RawUriCheck {
    #[default]
    Loose,
    Strict,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawRouter {
    auto_create_realms: bool,
    max_auto_created_realms: usize,
    uri_check: RawUriCheck,
    strict_request_ids: bool,
}

impl Default for RawRouter {
    fn default() -> Self {
        RawRouter {
            auto_create_realms: false,
            max_auto_created_realms: 1000,
            uri_check: RawUriCheck::Loose,
            strict_request_ids: false,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, default)]
struct RawRuntime {
    spin_before_park_us: u64,
    /// Called `peer_channel_capacity` before 0.1 (still accepted).
    #[serde(alias = "peer_channel_capacity")]
    shard_channel_capacity: usize,
    shard_backlog_limit: usize,
}

impl Default for RawRuntime {
    fn default() -> Self {
        RawRuntime {
            spin_before_park_us: 0,
            shard_channel_capacity: 4096,
            shard_backlog_limit: 65_536,
        }
    }
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawRealm {
    name: String,
    #[serde(default)]
    disclose_caller: bool,
    #[serde(default)]
    disclose_publisher: bool,
    #[serde(default)]
    history: Vec<RawHistory>,
    #[serde(default, rename = "role")]
    roles: Vec<auth::RawRole>,
    #[serde(default, rename = "principal")]
    principals: Vec<auth::RawPrincipal>,
    authenticator: Option<auth::RawAuthenticator>,
}

/// One `[[realm.history]]` table: a topic (or pattern) whose events are kept.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    uri: String,
    #[serde(default, rename = "match")]
    matching: Option<String>,
    #[serde(default = "default_history_limit")]
    limit: usize,
    #[serde(default = "default_history_bytes")]
    max_bytes: usize,
}

fn default_history_limit() -> usize {
    1000
}

fn default_history_bytes() -> usize {
    1024 * 1024
}

/// The `[[realm.history]]` entries of realm `index`, checked: valid URIs for their match
/// policy, each (uri, match) once, bounds in range.
fn history_config(
    index: usize,
    raw: Vec<RawHistory>,
    uri_check: UriCheck,
) -> Result<Vec<HistoryConfig>, ConfigError> {
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(raw.len());
    for (entry_index, entry) in raw.into_iter().enumerate() {
        let key = |name: &str| format!("realm[{index}].history[{entry_index}].{name}");
        let matching = match entry.matching.as_deref() {
            None | Some("exact") => MatchPolicy::Exact,
            Some("prefix") => MatchPolicy::Prefix,
            Some("wildcard") => MatchPolicy::Wildcard,
            Some(other) => {
                return Err(ConfigError(format!(
                    "{}: {other:?} is not a match policy (exact, prefix or wildcard)",
                    key("match")
                )))
            }
        };
        let valid = match matching {
            MatchPolicy::Exact => uri_problem(&entry.uri, uri_check).is_none(),
            MatchPolicy::Prefix | MatchPolicy::Wildcard => {
                !entry.uri.is_empty()
                    && crate::wire::validate_uri(&entry.uri, uri_check == UriCheck::Strict, true)
            }
        };
        if !valid {
            return Err(ConfigError(format!(
                "{}: {:?} is not a valid topic URI for match = {:?}",
                key("uri"),
                entry.uri,
                matching.name()
            )));
        }
        if !seen.insert((entry.uri.clone(), matching)) {
            return Err(ConfigError(format!(
                "{}: {:?} (match = {:?}) keeps history twice",
                key("uri"),
                entry.uri,
                matching.name()
            )));
        }
        let limit = check_range(&key("limit"), entry.limit, 1, bounds::MAX_HISTORY_LIMIT)?;
        let max_bytes = check_range(
            &key("max_bytes"),
            entry.max_bytes,
            bounds::MIN_HISTORY_BYTES,
            bounds::MAX_HISTORY_BYTES,
        )?;
        entries.push(HistoryConfig {
            uri: entry.uri,
            matching,
            limit,
            max_bytes,
        });
    }
    Ok(entries)
}

fn check_range<T: PartialOrd + fmt::Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError(format!(
            "{key}: {value} is out of range ({min} ..= {max})"
        )));
    }
    Ok(value)
}

/// Loose WAMP URI (digest §4): dot-separated, non-empty components without whitespace or '#'.
/// Strict additionally limits components to `[0-9a-z_]`.
fn uri_problem(uri: &str, check: UriCheck) -> Option<&'static str> {
    if uri.is_empty() {
        return Some("is empty");
    }
    for component in uri.split('.') {
        if component.is_empty() {
            return Some("has an empty component (leading, trailing or double '.')");
        }
        if component.chars().any(|c| c.is_whitespace() || c == '#') {
            return Some("contains whitespace or '#'");
        }
        if check == UriCheck::Strict
            && !component
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'_')
        {
            return Some("is not a strict URI (components of [0-9a-z_] only)");
        }
    }
    None
}

impl RawConfig {
    fn validate(self, base: &Path) -> Result<Config, ConfigError> {
        let cores = match self.cores {
            Some(cores) => Some(check_range("cores", cores, 1, bounds::MAX_CORES)?),
            None => None,
        };
        let placement = match self.placement {
            RawPlacement::Kernel => ShardPlacement::Kernel,
            RawPlacement::RoundRobin => ShardPlacement::RoundRobin,
        };

        if let Some(level) = &self.log_level {
            if let Err(e) = tracing_subscriber::EnvFilter::try_new(level) {
                return Err(ConfigError(format!(
                    "log_level: {level:?} is not a valid filter: {e}"
                )));
            }
        }
        let log_format = match self.log_format.as_deref() {
            None => LogFormat::default(),
            Some(name) => LogFormat::from_name(name).ok_or_else(|| {
                ConfigError(format!(
                    "log_format: {name:?} is not a log format (use \"text\" or \"json\")"
                ))
            })?,
        };

        let max_outbound_bytes = check_range(
            "limits.max_outbound_bytes",
            self.limits.max_outbound_bytes,
            bounds::MIN_OUTBOUND_BYTES,
            bounds::MAX_OUTBOUND_BYTES,
        )?;
        let limits = LimitsConfig {
            max_outbound_bytes,
            slow_consumer: slow_consumer_policy(
                "limits",
                self.limits.slow_consumer,
                self.limits
                    .outbound_soft_bytes
                    .unwrap_or(max_outbound_bytes / 4),
                max_outbound_bytes,
            )?,
            handshake_timeout_ms: check_range(
                "limits.handshake_timeout_ms",
                self.limits.handshake_timeout_ms,
                bounds::MIN_HANDSHAKE_TIMEOUT_MS,
                bounds::MAX_HANDSHAKE_TIMEOUT_MS,
            )?,
            max_connections_per_shard: check_range(
                "limits.max_connections_per_shard",
                self.limits.max_connections_per_shard,
                1,
                bounds::MAX_CONNECTIONS_PER_SHARD,
            )?,
            shutdown_grace_ms: check_range(
                "limits.shutdown_grace_ms",
                self.limits.shutdown_grace_ms,
                bounds::MIN_SHUTDOWN_GRACE_MS,
                bounds::MAX_SHUTDOWN_GRACE_MS,
            )?,
            longpoll_poll_timeout_ms: check_range(
                "limits.longpoll_poll_timeout_ms",
                self.limits.longpoll_poll_timeout_ms,
                100,
                600_000,
            )?,
            longpoll_session_timeout_ms: check_range(
                "limits.longpoll_session_timeout_ms",
                self.limits.longpoll_session_timeout_ms,
                100,
                3_600_000,
            )?,
        };
        let max_pending_calls = check_range(
            "limits.max_pending_calls_per_session",
            self.limits.max_pending_calls_per_session,
            1,
            bounds::MAX_PENDING_CALLS,
        )?;
        let runtime = RuntimeConfig {
            spin_before_park_us: check_range(
                "runtime.spin_before_park_us",
                self.runtime.spin_before_park_us,
                0,
                bounds::MAX_SPIN_BEFORE_PARK_US,
            )?,
            shard_channel_capacity: check_range(
                "runtime.shard_channel_capacity",
                self.runtime.shard_channel_capacity,
                bounds::MIN_SHARD_CHANNEL_CAPACITY,
                bounds::MAX_SHARD_CHANNEL_CAPACITY,
            )?,
            shard_backlog_limit: check_range(
                "runtime.shard_backlog_limit",
                self.runtime.shard_backlog_limit,
                bounds::MIN_SHARD_BACKLOG_LIMIT,
                bounds::MAX_SHARD_BACKLOG_LIMIT,
            )?,
        };
        if !runtime.shard_channel_capacity.is_power_of_two() {
            return Err(ConfigError(format!(
                "runtime.shard_channel_capacity: {} is not a power of two (e.g. 4096)",
                runtime.shard_channel_capacity
            )));
        }

        if self.listeners.is_empty() {
            return Err(ConfigError(
                "listener: at least one [[listener]] table is required".to_string(),
            ));
        }
        let mut listeners = Vec::with_capacity(self.listeners.len());
        let mut seen_binds = HashSet::new();
        for (index, raw) in self.listeners.into_iter().enumerate() {
            let listener = raw.validate(index, &limits, base)?;
            if !seen_binds.insert(listener.bind.clone()) {
                return Err(ConfigError(format!(
                    "listener[{index}].bind: {} is already used by another listener",
                    listener.bind
                )));
            }
            listeners.push(listener);
        }

        let admin = match self.admin {
            Some(raw) => {
                let admin = raw.validate(base)?;
                if seen_binds.contains(&BindAddr::Tcp(admin.bind)) {
                    return Err(ConfigError(format!(
                        "admin.bind: {} is already used by a listener",
                        admin.bind
                    )));
                }
                Some(admin)
            }
            None => None,
        };

        let uri_check = match self.router.uri_check {
            RawUriCheck::Loose => UriCheck::Loose,
            RawUriCheck::Strict => UriCheck::Strict,
        };
        if self.realms.is_empty() && !self.router.auto_create_realms {
            return Err(ConfigError(
                "realm: at least one [[realm]] table is required (or set router.auto_create_realms = true)"
                    .to_string(),
            ));
        }
        let mut realms = Vec::with_capacity(self.realms.len());
        let mut seen_realms = HashSet::new();
        let realm_names: Vec<String> = self.realms.iter().map(|realm| realm.name.clone()).collect();
        for (index, realm) in self.realms.into_iter().enumerate() {
            if let Some(problem) = uri_problem(&realm.name, uri_check) {
                return Err(ConfigError(format!(
                    "realm[{index}].name: {:?} is not a valid realm URI: it {problem}",
                    realm.name
                )));
            }
            if !seen_realms.insert(realm.name.clone()) {
                return Err(ConfigError(format!(
                    "realm[{index}].name: realm {:?} is defined twice",
                    realm.name
                )));
            }
            let history = history_config(index, realm.history, uri_check)?;
            let roles = auth::roles(index, realm.roles)?;
            let principals = auth::principals(index, realm.principals, &roles)?;
            let authenticator =
                auth::authenticator(index, &realm.name, realm.authenticator, &realm_names)?;
            realms.push(RealmConfig {
                authenticator,
                name: realm.name,
                disclose_caller: realm.disclose_caller,
                disclose_publisher: realm.disclose_publisher,
                history,
                roles,
                principals,
            });
        }
        let listener_auths: Vec<(usize, &ListenerAuth)> = listeners
            .iter()
            .enumerate()
            .map(|(index, listener)| (index, &listener.auth))
            .collect();
        auth::check_methods_have_principals(&listener_auths, &realms)?;

        // The router owner may add fields; they keep their defaults until configurable here.
        #[allow(clippy::needless_update)]
        let router = RouterConfig {
            listeners: listeners
                .iter()
                .map(|listener| listener.auth.clone())
                .collect(),
            authenticate_timeout_ms: check_range(
                "limits.authenticate_timeout_ms",
                self.limits.authenticate_timeout_ms,
                bounds::MIN_HANDSHAKE_TIMEOUT_MS,
                bounds::MAX_HANDSHAKE_TIMEOUT_MS,
            )?,
            realms,
            auto_create_realms: self.router.auto_create_realms,
            max_auto_created_realms: check_range(
                "router.max_auto_created_realms",
                self.router.max_auto_created_realms,
                1,
                bounds::MAX_AUTO_CREATED_REALMS,
            )?,
            uri_check,
            measure_call_latency: admin.is_some(),
            max_pending_calls_per_session: max_pending_calls,
            strict_request_ids: self.router.strict_request_ids,
            hello_timeout_ms: check_range(
                "limits.hello_timeout_ms",
                self.limits.hello_timeout_ms,
                bounds::MIN_HANDSHAKE_TIMEOUT_MS,
                bounds::MAX_HANDSHAKE_TIMEOUT_MS,
            )?,
            max_uri_length: check_range(
                "limits.max_uri_length",
                self.limits.max_uri_length,
                bounds::MIN_URI_LENGTH,
                bounds::MAX_URI_LENGTH,
            )?,
            max_registrations_per_session: check_range(
                "limits.max_registrations_per_session",
                self.limits.max_registrations_per_session,
                1,
                bounds::MAX_TABLE_ENTRIES_PER_SESSION,
            )?,
            max_subscriptions_per_session: check_range(
                "limits.max_subscriptions_per_session",
                self.limits.max_subscriptions_per_session,
                1,
                bounds::MAX_TABLE_ENTRIES_PER_SESSION,
            )?,
            max_testaments_per_session: check_range(
                "limits.max_testaments_per_session",
                self.limits.max_testaments_per_session,
                0,
                bounds::MAX_TESTAMENTS_PER_SESSION,
            )?,
            max_options_entries: check_range(
                "limits.max_options_entries",
                self.limits.max_options_entries,
                bounds::MIN_OPTIONS_ENTRIES,
                bounds::MAX_OPTIONS_ENTRIES,
            )?,
            max_retained_bytes_per_realm: check_range(
                "limits.max_retained_bytes_per_realm",
                self.limits.max_retained_bytes_per_realm,
                0,
                bounds::MAX_RETAINED_BYTES_PER_REALM,
            )?,
            ..RouterConfig::default()
        };

        Ok(Config {
            cores,
            placement,
            log_level: self.log_level,
            log_format,
            listeners,
            limits,
            router,
            runtime,
            admin,
        })
    }
}

/// The slow-consumer policy from its two keys under `section`, checked against the hard mark.
fn slow_consumer_policy(
    section: &str,
    action: RawSlowConsumer,
    soft_bytes: usize,
    hard_bytes: usize,
) -> Result<SlowConsumerPolicy, ConfigError> {
    let action = match action {
        RawSlowConsumer::Disconnect => SlowConsumerAction::Disconnect,
        RawSlowConsumer::DropEvents => SlowConsumerAction::DropEvents,
    };
    let soft_bytes = check_range(
        &format!("{section}.outbound_soft_bytes"),
        soft_bytes,
        bounds::MIN_OUTBOUND_BYTES / 4,
        hard_bytes,
    )?;
    Ok(SlowConsumerPolicy {
        action,
        soft_bytes,
        hard_bytes,
    })
}

impl RawListener {
    fn validate(
        self,
        index: usize,
        limits: &LimitsConfig,
        base: &Path,
    ) -> Result<ListenerConfig, ConfigError> {
        let max_outbound_bytes = limits.max_outbound_bytes;
        let key = |field: &str| format!("listener[{index}].{field}");
        let bind = parse_bind(&key("bind"), &self.bind, base)?;
        let tls = listener_tls(
            &format!("listener[{index}]"),
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            base,
        )?;

        let (kind, max_size_bound) = match self.kind {
            RawKind::WebSocket => (TransportKind::WebSocket, bounds::MAX_WEBSOCKET_MESSAGE_SIZE),
            RawKind::RawSocket => (TransportKind::RawSocket, bounds::MAX_RAWSOCKET_MESSAGE_SIZE),
        };
        let max_message_size = check_range(
            &key("max_message_size"),
            self.max_message_size.unwrap_or(16 * 1024 * 1024),
            bounds::MIN_MESSAGE_SIZE,
            max_size_bound,
        )?;

        let ws_path = match (kind, self.path) {
            (TransportKind::WebSocket, None) => "/ws".to_string(),
            (TransportKind::WebSocket, Some(path)) => {
                if !path.starts_with('/') {
                    return Err(ConfigError(format!(
                        "{}: {path:?} must start with '/'",
                        key("path")
                    )));
                }
                if path
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
                {
                    return Err(ConfigError(format!(
                        "{}: {path:?} must not contain whitespace or control characters",
                        key("path")
                    )));
                }
                path
            }
            (TransportKind::RawSocket, None) => String::new(),
            (TransportKind::RawSocket, Some(_)) => {
                return Err(ConfigError(format!(
                    "{}: only websocket listeners have a path (this one is rawsocket)",
                    key("path")
                )));
            }
        };

        let max_ws_fragments = match (kind, self.max_fragments) {
            (_, None) => crate::net::conn::DEFAULT_MAX_WS_FRAGMENTS,
            (TransportKind::WebSocket, Some(fragments)) => check_range(
                &key("max_fragments"),
                fragments,
                1,
                bounds::MAX_WS_FRAGMENTS,
            )?,
            (TransportKind::RawSocket, Some(_)) => {
                return Err(ConfigError(format!(
                    "{}: only websocket messages come in fragments (this listener is rawsocket)",
                    key("max_fragments")
                )));
            }
        };

        let mut serializers = Vec::new();
        for serializer in self.serializers.unwrap_or_else(|| {
            vec![
                RawSerializer::Json,
                RawSerializer::MsgPack,
                RawSerializer::Cbor,
            ]
        }) {
            let serializer = match serializer {
                RawSerializer::Json => Serializer::Json,
                RawSerializer::MsgPack => Serializer::MsgPack,
                RawSerializer::Cbor => Serializer::Cbor,
            };
            if serializers.contains(&serializer) {
                return Err(ConfigError(format!(
                    "{}: {serializer} is listed twice",
                    key("serializers")
                )));
            }
            serializers.push(serializer);
        }
        if serializers.is_empty() {
            return Err(ConfigError(format!(
                "{}: at least one serializer is required",
                key("serializers")
            )));
        }

        let slow_consumer = slow_consumer_policy(
            &format!("listener[{index}]"),
            match self.slow_consumer {
                Some(action) => action,
                None => match limits.slow_consumer.action {
                    SlowConsumerAction::Disconnect => RawSlowConsumer::Disconnect,
                    SlowConsumerAction::DropEvents => RawSlowConsumer::DropEvents,
                },
            },
            self.outbound_soft_bytes
                .unwrap_or(limits.slow_consumer.soft_bytes),
            max_outbound_bytes,
        )?;

        let auth = auth::listener_auth(index, self.authmethods, self.anonymous_role)?;
        Ok(ListenerConfig {
            kind,
            bind,
            tls,
            slow_consumer,
            auth,
            transport: TransportConfig {
                max_message_size,
                max_outbound_bytes,
                max_ws_fragments,
                serializers,
                ws_path,
                ..TransportConfig::default()
            },
        })
    }
}

/// `bind`: `IP:PORT` (port not 0), or `unix:PATH` (relative to `base`, within the kernel's
/// length limit).
fn parse_bind(key: &str, text: &str, base: &Path) -> Result<BindAddr, ConfigError> {
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() || path.contains('\0') {
            return Err(ConfigError(format!(
                "{key}: {text:?} names no socket path (e.g. \"unix:/run/wampring/wamp.sock\")"
            )));
        }
        let path = base.join(path);
        let path = if path.is_absolute() {
            path
        } else {
            std::env::current_dir()
                .map(|dir| dir.join(&path))
                .unwrap_or(path)
        };
        if path.as_os_str().len() > MAX_UNIX_PATH_BYTES {
            return Err(ConfigError(format!(
                "{key}: {} is longer than the {MAX_UNIX_PATH_BYTES} bytes a Unix socket path may have",
                path.display()
            )));
        }
        return Ok(BindAddr::Unix(path));
    }
    let addr: SocketAddr = text.parse().map_err(|_| {
        ConfigError(format!(
            "{key}: {text:?} is not an IP:PORT socket address (e.g. \"127.0.0.1:8080\"; host names are not resolved) or unix:PATH"
        ))
    })?;
    if addr.port() == 0 {
        return Err(ConfigError(format!(
            "{key}: port 0 is not allowed; name a port"
        )));
    }
    Ok(BindAddr::Tcp(addr))
}

/// `tls_cert` and `tls_key` of `table` (`listener[i]`, `admin`): both or neither; the files are read and
/// checked now, so a bad one stops `--check-config` and start-up with the key named.
fn listener_tls(
    table: &str,
    cert: Option<&str>,
    key: Option<&str>,
    base: &Path,
) -> Result<Option<ListenerTls>, ConfigError> {
    use crate::net::tls::{load_server_config, TlsConfigError};
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (base.join(cert), base.join(key)),
        (Some(_), None) => {
            return Err(ConfigError(format!(
                "{table}.tls_key: missing; tls_cert needs its private key"
            )))
        }
        (None, Some(_)) => {
            return Err(ConfigError(format!(
                "{table}.tls_cert: missing; tls_key needs its certificate"
            )))
        }
    };
    let server_config = load_server_config(&cert, &key).map_err(|e| {
        ConfigError(match e {
            TlsConfigError::Cert(why) => format!("{table}.tls_cert: {why}"),
            TlsConfigError::Key(why) => format!("{table}.tls_key: {why}"),
            TlsConfigError::Pair(why) => format!("{table}.tls_key: {why}"),
        })
    })?;
    Ok(Some(ListenerTls {
        cert,
        key,
        server_config,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        match Config::from_toml_str(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(ConfigError(e)) => e,
        }
    }

    const MINIMAL: &str =
        "[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:9000\"\n[[realm]]\nname = \"r\"\n";

    #[test]
    fn embedded_default_parses_to_the_documented_setup() {
        let config = Config::from_toml_str(DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(config.cores, None);
        assert_eq!(config.placement, ShardPlacement::Kernel);
        assert_eq!(config.runtime.shard_channel_capacity, 4096);
        assert_eq!(config.listeners.len(), 2);
        let ws = &config.listeners[0];
        assert_eq!(ws.kind, TransportKind::WebSocket);
        assert_eq!(ws.url(), "ws://127.0.0.1:8080/ws");
        assert_eq!(ws.transport.serializers, Serializer::ALL.to_vec());
        assert_eq!(ws.transport.max_message_size, 16 * 1024 * 1024);
        let rs = &config.listeners[1];
        assert_eq!(rs.kind, TransportKind::RawSocket);
        assert_eq!(rs.url(), "rs://127.0.0.1:8081");
        assert_eq!(config.router.realms, vec![RealmConfig::new("realm1")]);
        assert!(!config.router.auto_create_realms);
        assert_eq!(config.router.uri_check, UriCheck::Loose);
        assert_eq!(config.router.max_pending_calls_per_session, 65_536);
        assert_eq!(config.router.max_uri_length, 1024);
        assert!(!config.router.strict_request_ids);
        assert_eq!(config.limits.max_outbound_bytes, 16 * 1024 * 1024);
        assert_eq!(config.limits.handshake_timeout_ms, 10_000);
        assert_eq!(config.runtime.spin_before_park_us, 0);
    }

    #[test]
    fn default_config_helper_matches_embedded_text() {
        let config = Config::default_config();
        assert_eq!(config.listeners.len(), 2);
    }

    #[test]
    fn optional_sections_take_defaults() {
        let config = Config::from_toml_str(MINIMAL).unwrap();
        assert_eq!(
            config.listeners[0].transport.serializers,
            Serializer::ALL.to_vec()
        );
        assert_eq!(config.limits.max_outbound_bytes, 16 * 1024 * 1024);
        assert_eq!(config.limits.handshake_timeout_ms, 10_000);
        assert_eq!(config.router.max_pending_calls_per_session, 65_536);
        assert_eq!(config.log_level, None);
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.limits.shutdown_grace_ms, 1000);
    }

    #[test]
    fn log_format_and_shutdown_grace_are_read() {
        let text = format!("log_format = \"json\"\n{MINIMAL}[limits]\nshutdown_grace_ms = 5000\n");
        let config = Config::from_toml_str(&text).unwrap();
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.limits.shutdown_grace_ms, 5000);
        let text = format!("log_format = \"text\"\n{MINIMAL}");
        assert_eq!(
            Config::from_toml_str(&text).unwrap().log_format,
            LogFormat::Text
        );
    }

    #[test]
    fn brief_format_example_parses() {
        let text = r#"
cores = 1
log_level = "info"
[[listener]]
kind = "websocket"
bind = "127.0.0.1:8080"
path = "/ws"
serializers = ["json", "msgpack"]
max_message_size = 16777216
[[listener]]
kind = "rawsocket"
bind = "127.0.0.1:8081"
serializers = ["json", "msgpack"]
[limits]
max_outbound_bytes = 16777216
max_pending_calls_per_session = 65536
handshake_timeout_ms = 10000
[router]
auto_create_realms = false
uri_check = "strict"
strict_request_ids = true
[[realm]]
name = "realm1"
"#;
        let config = Config::from_toml_str(text).unwrap();
        assert_eq!(config.router.uri_check, UriCheck::Strict);
        assert!(config.router.strict_request_ids);
        assert_eq!(config.log_level.as_deref(), Some("info"));
    }

    #[test]
    fn a_realm_may_disclose_every_caller_and_every_publisher() {
        let text = format!(
            "{MINIMAL}[[realm]]\nname = \"open\"\ndisclose_caller = true\n\
             [[realm]]\nname = \"news\"\ndisclose_publisher = true\n[[realm]]\nname = \"quiet\"\n"
        );
        let config = Config::from_toml_str(&text).unwrap();
        let disclosing: Vec<(&str, bool, bool)> = config
            .router
            .realms
            .iter()
            .map(|realm| {
                let name = realm.name.as_str();
                (name, realm.disclose_caller, realm.disclose_publisher)
            })
            .collect();
        assert!(
            disclosing.contains(&("open", true, false)),
            "{disclosing:?}"
        );
        assert!(
            disclosing.contains(&("news", false, true)),
            "{disclosing:?}"
        );
        assert!(
            disclosing.contains(&("quiet", false, false)),
            "{disclosing:?}"
        );
        for key in ["disclose_caller", "disclose_publisher"] {
            let e = error_of(&format!(
                "{MINIMAL}[[realm]]\nname = \"x\"\n{key} = \"yes\"\n"
            ));
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn a_realm_may_keep_event_history() {
        let text = format!(
            "{MINIMAL}[[realm]]\nname = \"h\"\n\
             [[realm.history]]\nuri = \"com.a\"\n\
             [[realm.history]]\nuri = \"com.a\"\nmatch = \"prefix\"\nlimit = 5\nmax_bytes = 4096\n\
             [[realm.history]]\nuri = \"com..x\"\nmatch = \"wildcard\"\n"
        );
        let config = Config::from_toml_str(&text).unwrap();
        let realm = config.router.realms.iter().find(|r| r.name == "h").unwrap();
        let entries: Vec<(&str, MatchPolicy, usize, usize)> = realm
            .history
            .iter()
            .map(|e| (e.uri.as_str(), e.matching, e.limit, e.max_bytes))
            .collect();
        assert_eq!(
            entries,
            [
                ("com.a", MatchPolicy::Exact, 1000, 1 << 20),
                ("com.a", MatchPolicy::Prefix, 5, 4096),
                ("com..x", MatchPolicy::Wildcard, 1000, 1 << 20),
            ]
        );
        for (entry, wanted) in [
            ("uri = \"com..x\"\n", "realm[1].history[0].uri"),
            (
                "uri = \"a\"\nmatch = \"glob\"\n",
                "realm[1].history[0].match",
            ),
            ("uri = \"a\"\nlimit = 0\n", "realm[1].history[0].limit"),
            (
                "uri = \"a\"\nmax_bytes = 10\n",
                "realm[1].history[0].max_bytes",
            ),
            (
                "uri = \"a\"\n[[realm.history]]\nuri = \"a\"\n",
                "keeps history twice",
            ),
            ("uri = \"a\"\nkeep = 1\n", "unknown field `keep`"),
        ] {
            let e = error_of(&format!(
                "{MINIMAL}[[realm]]\nname = \"x\"\n[[realm.history]]\n{entry}"
            ));
            assert!(e.contains(wanted), "{entry:?}: {e}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        assert!(error_of(&format!("{MINIMAL}prot = 1\n")).contains("unknown field `prot`"));
        let e = error_of(&format!("{MINIMAL}[limits]\nmax_outbound = 5\n"));
        assert!(e.contains("unknown field `max_outbound`"), "{e}");
        let e = error_of(&format!("{MINIMAL}[router]\nuricheck = \"loose\"\n"));
        assert!(e.contains("unknown field `uricheck`"), "{e}");
        let e = error_of("[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:9000\"\nport = 1\n[[realm]]\nname = \"r\"\n");
        assert!(e.contains("unknown field `port`"), "{e}");
        let e = error_of(&format!("{MINIMAL}[[realm]]\nname = \"x\"\nauth = 1\n"));
        assert!(e.contains("unknown field `auth`"), "{e}");
        let e = error_of(&format!("{MINIMAL}[misc]\n"));
        assert!(e.contains("unknown field `misc`"), "{e}");
    }

    #[test]
    fn bad_enum_values_are_named() {
        let e = error_of("[[listener]]\nkind = \"websockets\"\nbind = \"127.0.0.1:9000\"\n[[realm]]\nname = \"r\"\n");
        assert!(e.contains("websockets") && e.contains("kind"), "{e}");
        let e = error_of("[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:9000\"\nserializers = [\"ubjson\"]\n[[realm]]\nname = \"r\"\n");
        assert!(e.contains("ubjson") && e.contains("serializers"), "{e}");
        let e = error_of(&format!("{MINIMAL}[router]\nuri_check = \"lax\"\n"));
        assert!(e.contains("lax") && e.contains("uri_check"), "{e}");
    }

    #[test]
    fn missing_required_keys_are_named() {
        let e = error_of("[[listener]]\nkind = \"rawsocket\"\n[[realm]]\nname = \"r\"\n");
        assert!(e.contains("missing field `bind`"), "{e}");
        let e = error_of("[[realm]]\nname = \"r\"\n");
        assert!(e.starts_with("listener:"), "{e}");
        let e = error_of("[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:9000\"\n");
        assert!(e.starts_with("realm:"), "{e}");
    }

    #[test]
    fn bad_values_are_named() {
        let listener = |extra: &str| {
            format!("[[listener]]\nkind = \"websocket\"\nbind = \"127.0.0.1:9000\"\n{extra}\n[[realm]]\nname = \"r\"\n")
        };
        let cases: Vec<(String, &str)> = vec![
            (listener("path = \"ws\""), "listener[0].path"),
            (listener("path = \"/a b\""), "listener[0].path"),
            (listener("serializers = []"), "listener[0].serializers"),
            (listener("serializers = [\"json\", \"json\"]"), "listener[0].serializers"),
            (listener("max_message_size = 10"), "listener[0].max_message_size"),
            (listener("max_message_size = 1000000000"), "listener[0].max_message_size"),
            (
                "[[listener]]\nkind = \"websocket\"\nbind = \"localhost:80\"\n[[realm]]\nname = \"r\"\n".into(),
                "listener[0].bind",
            ),
            (
                "[[listener]]\nkind = \"websocket\"\nbind = \"127.0.0.1:0\"\n[[realm]]\nname = \"r\"\n".into(),
                "listener[0].bind",
            ),
            (
                "[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:1\"\npath = \"/ws\"\n[[realm]]\nname = \"r\"\n"
                    .into(),
                "listener[0].path",
            ),
            (
                "[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:1\"\nmax_message_size = 33554432\n[[realm]]\nname = \"r\"\n"
                    .into(),
                "listener[0].max_message_size",
            ),
            (format!("{MINIMAL}[[listener]]\nkind = \"websocket\"\nbind = \"127.0.0.1:9000\"\n"), "listener[1].bind"),
            (format!("{MINIMAL}[limits]\nmax_outbound_bytes = 10\n"), "limits.max_outbound_bytes"),
            (format!("{MINIMAL}[limits]\nhandshake_timeout_ms = 0\n"), "limits.handshake_timeout_ms"),
            (format!("{MINIMAL}[limits]\nmax_pending_calls_per_session = 0\n"), "limits.max_pending_calls_per_session"),
            (format!("{MINIMAL}[limits]\nmax_uri_length = 8\n"), "limits.max_uri_length"),
            (
                "[[listener]]\nkind = \"websocket\"\nbind = \"127.0.0.1:9001\"\nmax_fragments = 0\n[[realm]]\nname = \"r\"\n".to_string(),
                "listener[0].max_fragments",
            ),
            (
                "[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:9001\"\nmax_fragments = 10\n[[realm]]\nname = \"r\"\n".to_string(),
                "listener[0].max_fragments",
            ),
            (
                format!("{MINIMAL}[limits]\nmax_subscriptions_per_session = 0\n"),
                "limits.max_subscriptions_per_session",
            ),
            (
                format!("{MINIMAL}[limits]\nmax_registrations_per_session = 0\n"),
                "limits.max_registrations_per_session",
            ),
            (
                format!("{MINIMAL}[limits]\nmax_testaments_per_session = 100000\n"),
                "limits.max_testaments_per_session",
            ),
            (
                format!("{MINIMAL}[limits]\nmax_outbound_bytes = 65536\noutbound_soft_bytes = 65537\n"),
                "limits.outbound_soft_bytes",
            ),
            (format!("{MINIMAL}[limits]\nmax_connections_per_shard = 0\n"), "limits.max_connections_per_shard"),
            (format!("{MINIMAL}[runtime]\nspin_before_park_us = 5000000\n"), "runtime.spin_before_park_us"),
            (format!("cores = 0\n{MINIMAL}"), "cores"),
            (format!("cores = 1025\n{MINIMAL}"), "cores"),
            (format!("{MINIMAL}[runtime]\nshard_channel_capacity = 8\n"), "runtime.shard_channel_capacity"),
            (format!("{MINIMAL}[runtime]\nshard_channel_capacity = 2097152\n"), "runtime.shard_channel_capacity"),
            (format!("{MINIMAL}[runtime]\nshard_channel_capacity = 5000\n"), "runtime.shard_channel_capacity"),
            (format!("log_level = \"info,,=[\"\n{MINIMAL}"), "log_level"),
            (format!("log_format = \"xml\"\n{MINIMAL}"), "log_format"),
            (format!("{MINIMAL}[limits]\nshutdown_grace_ms = 10\n"), "limits.shutdown_grace_ms"),
            (format!("{MINIMAL}[[realm]]\nname = \"r\"\n"), "realm[1].name"),
            (format!("{MINIMAL}[[realm]]\nname = \"a..b\"\n"), "realm[1].name"),
            (format!("{MINIMAL}[[realm]]\nname = \"a b\"\n"), "realm[1].name"),
            (format!("{MINIMAL}[[realm]]\nname = \"\"\n"), "realm[1].name"),
            ("[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:1\"\n[router]\nuri_check = \"strict\"\n[[realm]]\nname = \"Realm\"\n".into(), "realm[0].name"),
        ];
        for (text, key) in cases {
            let e = error_of(&text);
            assert!(
                e.starts_with(&format!("{key}:")),
                "expected {key} in {e:?} for:\n{text}"
            );
        }
    }

    /// A self-signed certificate for 127.0.0.1 as cert.pem and key.pem in a temporary dir.
    fn pki() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            certified.key_pair.serialize_pem(),
        )
        .unwrap();
        dir
    }

    #[test]
    fn tls_and_unix_listeners_parse_and_name_themselves() {
        let dir = pki();
        let text = "[[listener]]\nkind = \"websocket\"\nbind = \"127.0.0.1:9443\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n\
             [[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:9444\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n\
             [[listener]]\nkind = \"websocket\"\nbind = \"unix:w.sock\"\n\
             [[listener]]\nkind = \"rawsocket\"\nbind = \"unix:/tmp/r.sock\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n\
             [[listener]]\nkind = \"websocket\"\nbind = \"unix:/tmp/p.sock\"\npath = \"/x\"\n\
             [[realm]]\nname = \"r\"\n";
        let config = Config::from_toml_str_at(text, dir.path()).unwrap();
        let urls: Vec<String> = config.listeners.iter().map(|l| l.url()).collect();
        let socket = dir.path().join("w.sock");
        assert_eq!(
            urls,
            [
                "wss://127.0.0.1:9443/ws".to_string(),
                "rss://127.0.0.1:9444".to_string(),
                format!("ws+unix:{}", socket.display()),
                "rss+unix:/tmp/r.sock".to_string(),
                "ws+unix:/tmp/p.sock#/x".to_string(),
            ]
        );
        let tls = config.listeners[0].tls.as_ref().unwrap();
        assert_eq!(tls.cert, dir.path().join("cert.pem"));
        assert!(config.listeners[2].tls.is_none());
        assert_eq!(config.listeners[2].bind, BindAddr::Unix(socket));

        // Through a file: relative to its directory.
        let file = dir.path().join("wampring.toml");
        std::fs::write(&file, text).unwrap();
        assert_eq!(Config::load(&file).unwrap().listeners.len(), 5);
    }

    #[test]
    fn bad_tls_and_unix_settings_are_named() {
        let dir = pki();
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        let other = pki();
        let other_key = other.path().join("key.pem");
        let listener = |extra: &str| {
            format!("[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:9000\"\n{extra}\n[[realm]]\nname = \"r\"\n")
        };
        let cases = [
            (listener("tls_cert = \"cert.pem\""), "listener[0].tls_key: missing"),
            (listener("tls_key = \"key.pem\""), "listener[0].tls_cert: missing"),
            (listener("tls_cert = \"nope.pem\"\ntls_key = \"key.pem\""), "listener[0].tls_cert: cannot read"),
            (listener("tls_cert = \"cert.pem\"\ntls_key = \"nope.pem\""), "listener[0].tls_key: cannot read"),
            (listener("tls_cert = \"empty.pem\"\ntls_key = \"key.pem\""), "listener[0].tls_cert:"),
            (listener("tls_cert = \"cert.pem\"\ntls_key = \"cert.pem\""), "listener[0].tls_key:"),
            (
                listener(&format!("tls_cert = \"cert.pem\"\ntls_key = {:?}", other_key.display().to_string())),
                "listener[0].tls_key:",
            ),
            (
                "[[listener]]\nkind = \"rawsocket\"\nbind = \"unix:\"\n[[realm]]\nname = \"r\"\n".to_string(),
                "listener[0].bind:",
            ),
            (
                format!("[[listener]]\nkind = \"rawsocket\"\nbind = \"unix:/{}\"\n[[realm]]\nname = \"r\"\n", "x".repeat(120)),
                "listener[0].bind:",
            ),
            (
                "[[listener]]\nkind = \"rawsocket\"\nbind = \"unix:/tmp/a.sock\"\n[[listener]]\nkind = \"websocket\"\nbind = \"unix:/tmp/a.sock\"\n[[realm]]\nname = \"r\"\n".to_string(),
                "listener[1].bind:",
            ),
        ];
        for (text, wanted) in cases {
            match Config::from_toml_str_at(&text, dir.path()) {
                Ok(_) => panic!("accepted:\n{text}"),
                Err(ConfigError(e)) => assert!(e.starts_with(wanted), "{wanted:?} not in {e:?}"),
            }
        }
    }

    #[test]
    fn auto_create_realms_allows_no_realm() {
        let config = Config::from_toml_str(
            "[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:1\"\n[router]\nauto_create_realms = true\n",
        )
        .unwrap();
        assert!(config.router.realms.is_empty());
        assert!(config.router.auto_create_realms);
    }

    #[test]
    fn type_errors_are_named() {
        let e = error_of(&format!(
            "{MINIMAL}[limits]\nmax_outbound_bytes = \"big\"\n"
        ));
        assert!(e.contains("max_outbound_bytes"), "{e}");
        let e = error_of(&format!("{MINIMAL}[limits]\nmax_outbound_bytes = -1\n"));
        assert!(e.contains("max_outbound_bytes"), "{e}");
    }

    #[test]
    fn shard_keys_parse() {
        let config = Config::from_toml_str(&format!(
            "cores = 2\nplacement = \"round-robin\"\n{MINIMAL}[runtime]\nshard_channel_capacity = 1024\nspin_before_park_us = 50\n"
        ))
        .unwrap();
        assert_eq!(config.cores, Some(2));
        assert_eq!(config.placement, ShardPlacement::RoundRobin);
        assert_eq!(config.runtime.shard_channel_capacity, 1024);
        assert_eq!(config.runtime.spin_before_park_us, 50);
        let config = Config::from_toml_str(&format!("placement = \"kernel\"\n{MINIMAL}")).unwrap();
        assert_eq!(config.placement, ShardPlacement::Kernel);
        assert_eq!(config.cores, None);
    }

    #[test]
    fn bad_placement_is_named() {
        let e = error_of(&format!("placement = \"roundrobin\"\n{MINIMAL}"));
        assert!(e.contains("placement") && e.contains("roundrobin"), "{e}");
        assert!(e.contains("round-robin") && e.contains("kernel"), "{e}");
    }

    #[test]
    fn placement_names_round_trip() {
        for placement in [ShardPlacement::Kernel, ShardPlacement::RoundRobin] {
            assert_eq!(ShardPlacement::from_name(placement.name()), Some(placement));
        }
        assert_eq!(ShardPlacement::from_name("random"), None);
    }

    #[test]
    fn slow_consumer_policy_defaults_and_per_listener_overrides() {
        let config = Config::from_toml_str(&format!(
            "[[listener]]\nkind = \"websocket\"\nbind = \"127.0.0.1:9001\"\nslow_consumer = \"drop_events\"\noutbound_soft_bytes = 100000\n{MINIMAL}[limits]\nmax_outbound_bytes = 1000000\n"
        ))
        .unwrap();
        let default = SlowConsumerPolicy {
            action: SlowConsumerAction::Disconnect,
            soft_bytes: 250_000,
            hard_bytes: 1_000_000,
        };
        assert_eq!(config.limits.slow_consumer, default);
        assert_eq!(
            config.listeners[0].slow_consumer,
            SlowConsumerPolicy {
                action: SlowConsumerAction::DropEvents,
                soft_bytes: 100_000,
                ..default
            }
        );
        assert_eq!(config.listeners[1].slow_consumer, default);
        let e = error_of(&format!("{MINIMAL}[limits]\nslow_consumer = \"drop\"\n"));
        assert!(e.contains("drop_events") && e.contains("disconnect"), "{e}");
        let e = error_of(&format!(
            "[[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:9001\"\noutbound_soft_bytes = 99999999\n{MINIMAL}"
        ));
        assert!(e.contains("listener[0].outbound_soft_bytes"), "{e}");
    }
}
