//! The command line: one subcommand per scenario (`rpc`, `pubsub`, `connect`, `session-list`)
//! sharing the [`CommonArgs`], plus `compare`, which runs a scenario against several routers.
//! Validation beyond what clap checks lives in [`validate`], so every bound is refused up front
//! with a message instead of being hit mid-run.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use wampring::serializer::Serializer;

use crate::units::{parse_cpu_list, parse_duration, parse_name_value, parse_on_off, CpuList};

#[derive(Parser, Debug)]
#[command(
    name = "wampring-load",
    version,
    about = "Thread-per-core load generator for any WAMP v2 router (WebSocket or RawSocket)",
    after_help = "Examples:\n  \
      wampring-load rpc --url ws://127.0.0.1:8080/ws --window 100\n  \
      wampring-load rpc --url rs://127.0.0.1:8081 --serializer msgpack --rate 50000 --callers 4\n  \
      wampring-load pubsub --subscribers 1000 --acknowledge --window 10\n  \
      wampring-load connect --hold 10000 --router-pid $(pidof wampring)\n  \
      wampring-load session-list --sessions 10000 --url rs://127.0.0.1:8081 --serializer msgpack\n  \
      wampring-load compare --router wampring=ws://127.0.0.1:8080/ws \
      --router crossbar=ws://127.0.0.1:9080/ws --repeat 3 --out results rpc --window 100"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Calls: C caller sessions call an echo procedure registered by K callee sessions.
    Rpc(RpcArgs),
    /// Events: P publishers publish to one topic that S subscribers receive.
    Pubsub(PubsubArgs),
    /// Sessions: open, HELLO/WELCOME, GOODBYE, close, repeated; optionally hold N idle sessions.
    Connect(ConnectArgs),
    /// The session meta API under many sessions: N idle sessions are held while C sessions call
    /// wamp.session.list (and wamp.session.count) and check every answer.
    SessionList(SessionListArgs),
    /// Runs one scenario against several routers, alternating, and writes a markdown table of
    /// medians and an SVG bar chart.
    Compare(CompareArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SerializerArg {
    Json,
    Msgpack,
    Cbor,
}

impl From<SerializerArg> for Serializer {
    fn from(arg: SerializerArg) -> Serializer {
        match arg {
            SerializerArg::Json => Serializer::Json,
            SerializerArg::Msgpack => Serializer::MsgPack,
            SerializerArg::Cbor => Serializer::Cbor,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMethodArg {
    Anonymous,
    Ticket,
    Wampcra,
    Cryptosign,
    /// WAMP-SCRAM (offered in HELLO as wamp-scram).
    Scram,
}

/// How every session of the run authenticates. Without `--authmethod` HELLO carries no
/// authentication details at all, as before these flags existed.
#[derive(Args, Debug, Clone, Default)]
pub struct AuthArgs {
    /// Offer this authentication method in HELLO (default: none offered; the router decides,
    /// usually anonymous).
    #[arg(long, value_enum, help_heading = "Authentication")]
    pub authmethod: Option<AuthMethodArg>,
    /// The name HELLO offers for --authmethod, when the router spells it differently from
    /// the standard (anonymous, ticket, wampcra, cryptosign, wamp-scram): Crossbar.io and
    /// Autobahn call SCRAM `scram`.
    #[arg(long, value_name = "NAME", help_heading = "Authentication")]
    pub hello_authmethod: Option<String>,
    /// The authid sent in HELLO (required by ticket, wampcra and scram).
    #[arg(long, help_heading = "Authentication")]
    pub authid: Option<String>,
    /// The authrole asked for in HELLO (optional; the router may ignore it).
    #[arg(long, help_heading = "Authentication")]
    pub authrole: Option<String>,
    /// The ticket, WAMP-CRA secret or SCRAM password (visible in `ps`: prefer --secret-file).
    #[arg(long, conflicts_with = "secret_file", help_heading = "Authentication")]
    pub secret: Option<String>,
    /// Read the secret from the first line of this file.
    #[arg(long, help_heading = "Authentication")]
    pub secret_file: Option<PathBuf>,
    /// Cryptosign: the 32-byte Ed25519 private key (seed) in hex (prefer --private-key-file).
    #[arg(
        long,
        conflicts_with = "private_key_file",
        help_heading = "Authentication"
    )]
    pub private_key: Option<String>,
    /// Cryptosign: read the private key (hex) from the first line of this file.
    #[arg(long, help_heading = "Authentication")]
    pub private_key_file: Option<PathBuf>,
}

/// Flags every scenario takes.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Router URL: ws://HOST:PORT/PATH (WebSocket) or rs://HOST:PORT (RawSocket); over TLS
    /// wss://HOST:PORT/PATH or rss://HOST:PORT; on a Unix socket ws+unix:/path/to.sock
    /// (request path /ws; ws+unix:/path/to.sock#/other for another) or rs+unix:/path/to.sock.
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    pub url: String,
    /// wss/rss: trust the certificates in this PEM file (the router's CA, or its self-signed
    /// certificate). The server name checked is the URL's host.
    #[arg(long, value_name = "FILE", conflicts_with = "tls_insecure")]
    pub tls_ca: Option<PathBuf>,
    /// wss/rss: accept any server certificate (benchmarks against a test certificate only).
    #[arg(long)]
    pub tls_insecure: bool,
    /// WAMP serializer: json, msgpack or cbor (WebSocket subprotocol wamp.2.json /
    /// wamp.2.msgpack / wamp.2.cbor; RawSocket serializer id 1 / 2 / 3).
    #[arg(long, value_enum, default_value_t = SerializerArg::Json)]
    pub serializer: SerializerArg,
    /// Realm to join.
    #[arg(long, default_value = "realm1")]
    pub realm: String,
    /// Measured time, after the warmup (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Load before measuring, excluded from the results.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Executor threads (default: the number of --cpus, else 1).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Pin executor threads to these CPUs, e.g. 2,3 or 4-7 (thread i -> i-th CPU).
    #[arg(long, value_parser = parse_cpu_list)]
    pub cpus: Option<CpuList>,
    /// The router's process id: report its CPU µs per operation (and RSS per session for
    /// connect --hold).
    #[arg(long)]
    pub router_pid: Option<u32>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Bound on connecting and joining all sessions before the load starts.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub setup_timeout: Duration,
    /// After the measured time, how long operations in flight may take to complete before they
    /// count as timeouts (wampload.timeout).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub drain: Duration,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Spin this long before an idle executor thread sleeps: lower latency at low load for
    /// CPU burnt (only with cores to spare for it; e.g. 50us).
    #[arg(long, value_parser = parse_duration)]
    pub spin_before_park: Option<Duration>,
    #[command(flatten)]
    pub auth: AuthArgs,
}

#[derive(Args, Debug, Clone)]
pub struct RpcArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Caller sessions.
    #[arg(long, default_value_t = 1)]
    pub callers: usize,
    /// Echo callee sessions (default 1; 0 with --procedure). More than one registers with
    /// invoke=roundrobin (shared registration).
    #[arg(long)]
    pub callees: Option<usize>,
    /// Call this existing procedure instead of registering an echo procedure.
    #[arg(long)]
    pub procedure: Option<String>,
    /// Payload bytes per call (one string argument; 0 = no arguments).
    #[arg(long, default_value_t = 0)]
    pub payload: usize,
    /// Closed loop: calls in flight per caller (default 1 unless --rate is given).
    #[arg(long, conflicts_with = "rate")]
    pub window: Option<usize>,
    /// Open loop: calls per second per caller, on a fixed clock (latency from the intended send
    /// time: coordinated omission corrected).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: bound on calls in flight per caller; due calls wait (and their latency grows)
    /// while it is reached.
    #[arg(long, default_value_t = 10_000)]
    pub max_in_flight: usize,
}

#[derive(Args, Debug, Clone)]
pub struct PubsubArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Publisher sessions.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Subscriber sessions (all subscribe to the one topic).
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// Topic to use (default: a unique topic per run).
    #[arg(long)]
    pub topic: Option<String>,
    /// Padding bytes per event, after the 3-integer header (publisher, sequence, send time).
    #[arg(long, default_value_t = 0)]
    pub payload: usize,
    /// Ask for PUBLISHED acknowledgements (on/off; bare flag = on).
    #[arg(long, num_args = 0..=1, default_value = "off", default_missing_value = "on", value_parser = parse_on_off)]
    pub acknowledge: bool,
    /// With --acknowledge: unacknowledged publishes in flight per publisher (closed loop,
    /// default 1). Without: publishes per loop turn per publisher, the next turn starting once
    /// the previous write completed (a saturating mode; subscribers may fall behind).
    #[arg(long, conflicts_with = "rate")]
    pub window: Option<usize>,
    /// Open loop: publishes per second per publisher (needed without --acknowledge unless
    /// --window is given).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop with --acknowledge: bound on unacknowledged publishes per publisher.
    #[arg(long, default_value_t = 10_000)]
    pub max_in_flight: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Concurrent open/HELLO/GOODBYE/close loops (0: only hold sessions).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Idle sessions opened before the load and held open for the duration.
    #[arg(long, default_value_t = 0)]
    pub hold: usize,
    /// Bound on one session cycle; slower cycles count as wampload.timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub op_timeout: Duration,
}

#[derive(Args, Debug, Clone)]
pub struct SessionListArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Idle sessions opened before the load and held open until it ends (one connection
    /// each, so a router spreading connections over its cores spreads them too).
    #[arg(long, default_value_t = 10_000)]
    pub sessions: usize,
    /// Measuring sessions, each calling in a closed loop.
    #[arg(long, default_value_t = 1)]
    pub callers: usize,
    /// Calls in flight per measuring session.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Also call wamp.session.count, alternating with wamp.session.list (on/off; bare flag =
    /// on).
    #[arg(long, num_args = 0..=1, default_value = "on", default_missing_value = "on", value_parser = parse_on_off)]
    pub count: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// A router to compare: NAME=URL (repeat; the first is the baseline of the ratios).
    #[arg(long = "router", value_parser = parse_name_value, required = true)]
    pub routers: Vec<(String, String)>,
    /// Rounds; each round runs every router once, in the order given (A B A B ...).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Directory for compare.md, compare.svg and the raw JSON of every run.
    #[arg(long, default_value = "compare-results")]
    pub out: PathBuf,
    /// A router's process id, NAME=PID, for its CPU µs per operation (repeatable, optional).
    #[arg(long = "router-pid-of", value_parser = parse_name_value)]
    pub router_pids: Vec<(String, String)>,
    /// Before each run, wait up to this long until every router given by --router-pid-of has
    /// been idle for a second (0: do not wait). Routers on one CPU take turns: one still
    /// working off the previous run (queued events, garbage collection) would slow the next.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub settle_timeout: Duration,
    /// The scenario and its flags, e.g. `rpc --window 100 --duration 5s` (without --url,
    /// --json and --router-pid, which compare sets per router).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "SCENARIO"
    )]
    pub scenario: Vec<String>,
}

/// Largest counts accepted, so a typo cannot ask for millions of sessions or threads.
pub const MAX_THREADS: usize = 256;
pub const MAX_SESSIONS: usize = 200_000;
pub const MAX_WINDOW: usize = 1_000_000;
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;
pub const MAX_RATE: f64 = 100_000_000.0;
pub const MAX_REPEAT: usize = 100;

impl CommonArgs {
    /// How a wss/rss target's certificate is checked (`None`: neither flag given).
    pub fn tls_trust(&self) -> Option<wampring::net::tls::ServerTrust> {
        use wampring::net::tls::ServerTrust;
        match (&self.tls_ca, self.tls_insecure) {
            (Some(path), _) => Some(ServerTrust::CaFile(path.clone())),
            (None, true) => Some(ServerTrust::Insecure),
            (None, false) => None,
        }
    }

    pub fn thread_count(&self) -> usize {
        self.threads
            .unwrap_or_else(|| self.cpus.as_ref().map_or(1, |c| c.0.len()))
    }
}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(message())
    }
}

fn validate_common(c: &CommonArgs) -> Result<(), String> {
    check(c.duration > Duration::ZERO, || {
        "--duration must be more than 0".into()
    })?;
    let threads = c.thread_count();
    check((1..=MAX_THREADS).contains(&threads), || {
        format!("--threads must be 1..={MAX_THREADS}")
    })?;
    check(!c.realm.is_empty(), || "--realm must not be empty".into())?;
    check(c.setup_timeout > Duration::ZERO, || {
        "--setup-timeout must be more than 0".into()
    })?;
    validate_auth(&c.auth)
}

/// The authentication flags each method needs, and those it would silently ignore.
fn validate_auth(a: &AuthArgs) -> Result<(), String> {
    let has_secret = a.secret.is_some() || a.secret_file.is_some();
    let has_key = a.private_key.is_some() || a.private_key_file.is_some();
    let Some(method) = a.authmethod else {
        check(
            a.authid.is_none()
                && a.authrole.is_none()
                && a.hello_authmethod.is_none()
                && !has_secret
                && !has_key,
            || {
                "--authid, --authrole, --hello-authmethod, --secret and --private-key need \
                 --authmethod (anonymous, ticket, wampcra, cryptosign or scram)"
                    .into()
            },
        )?;
        return Ok(());
    };
    let name = method
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_string());
    check(a.authid.as_deref() != Some(""), || {
        "--authid must not be empty".into()
    })?;
    check(a.authrole.as_deref() != Some(""), || {
        "--authrole must not be empty".into()
    })?;
    check(a.hello_authmethod.as_deref() != Some(""), || {
        "--hello-authmethod must not be empty".into()
    })?;
    check(a.secret.as_deref() != Some(""), || {
        "--secret must not be empty".into()
    })?;
    match method {
        AuthMethodArg::Anonymous => {
            check(!has_secret && !has_key, || {
                "--authmethod anonymous takes no --secret or --private-key".into()
            })?;
        }
        AuthMethodArg::Ticket | AuthMethodArg::Wampcra | AuthMethodArg::Scram => {
            check(has_secret, || {
                format!("--authmethod {name} needs --secret TEXT or --secret-file PATH")
            })?;
            check(a.authid.is_some(), || {
                format!("--authmethod {name} needs --authid")
            })?;
            check(!has_key, || {
                format!("--authmethod {name} takes no --private-key (that is cryptosign's)")
            })?;
        }
        AuthMethodArg::Cryptosign => {
            check(has_key, || {
                "--authmethod cryptosign needs --private-key HEX or --private-key-file PATH".into()
            })?;
            check(!has_secret, || {
                "--authmethod cryptosign takes no --secret (it signs with --private-key)".into()
            })?;
            if let Some(key) = &a.private_key {
                wampring::credentials::cryptosign::parse_private_key(key).map_err(|e| {
                    format!("--private-key must be 64 hex digits (an Ed25519 seed): {e}")
                })?;
            }
        }
    }
    Ok(())
}

fn validate_rate(rate: Option<f64>) -> Result<(), String> {
    if let Some(rate) = rate {
        check(rate > 0.0 && rate <= MAX_RATE && rate.is_finite(), || {
            format!("--rate must be more than 0 and at most {MAX_RATE}")
        })?;
    }
    Ok(())
}

fn validate_window(window: Option<usize>) -> Result<(), String> {
    if let Some(window) = window {
        check((1..=MAX_WINDOW).contains(&window), || {
            format!("--window must be 1..={MAX_WINDOW}")
        })?;
    }
    Ok(())
}

/// Checks the bounds clap cannot express.
pub fn validate(command: &Command) -> Result<(), String> {
    match command {
        Command::Rpc(a) => {
            validate_common(&a.common)?;
            validate_rate(a.rate)?;
            validate_window(a.window)?;
            let callees = a
                .callees
                .unwrap_or(if a.procedure.is_some() { 0 } else { 1 });
            check(a.callers >= 1, || "--callers must be at least 1".into())?;
            check(a.callers + callees <= MAX_SESSIONS, || {
                format!("at most {MAX_SESSIONS} sessions")
            })?;
            check(a.procedure.is_some() || callees >= 1, || {
                "--callees 0 needs --procedure URI (a procedure that already exists)".into()
            })?;
            check(a.payload <= MAX_PAYLOAD, || {
                format!("--payload must be at most {MAX_PAYLOAD}")
            })?;
            check((1..=MAX_WINDOW).contains(&a.max_in_flight), || {
                format!("--max-in-flight must be 1..={MAX_WINDOW}")
            })?;
            if let Some(p) = &a.procedure {
                check(wampring::wire::validate_uri(p, false, false), || {
                    format!("--procedure `{p}` is not a valid URI")
                })?;
            }
        }
        Command::Pubsub(a) => {
            validate_common(&a.common)?;
            validate_rate(a.rate)?;
            validate_window(a.window)?;
            check(a.publishers >= 1 && a.subscribers >= 1, || {
                "--publishers and --subscribers must be at least 1".into()
            })?;
            check(a.publishers + a.subscribers <= MAX_SESSIONS, || {
                format!("at most {MAX_SESSIONS} sessions")
            })?;
            check(a.payload <= MAX_PAYLOAD, || {
                format!("--payload must be at most {MAX_PAYLOAD}")
            })?;
            check((1..=MAX_WINDOW).contains(&a.max_in_flight), || {
                format!("--max-in-flight must be 1..={MAX_WINDOW}")
            })?;
            check(
                a.acknowledge || a.rate.is_some() || a.window.is_some(),
                || {
                    "without --acknowledge give --rate R (publishes per second per publisher) or \
                 --window W (W publishes per loop turn, saturating)"
                        .into()
                },
            )?;
            if let Some(t) = &a.topic {
                check(wampring::wire::validate_uri(t, false, false), || {
                    format!("--topic `{t}` is not a valid URI")
                })?;
            }
        }
        Command::Connect(a) => {
            validate_common(&a.common)?;
            check(a.connections + a.hold >= 1, || {
                "give --connections and/or --hold".into()
            })?;
            check(a.connections + a.hold <= MAX_SESSIONS, || {
                format!("at most {MAX_SESSIONS} sessions")
            })?;
            check(a.op_timeout > Duration::ZERO, || {
                "--op-timeout must be more than 0".into()
            })?;
        }
        Command::SessionList(a) => {
            validate_common(&a.common)?;
            validate_window(Some(a.window))?;
            check(a.callers >= 1, || "--callers must be at least 1".into())?;
            check(a.sessions + a.callers <= MAX_SESSIONS, || {
                format!("at most {MAX_SESSIONS} sessions")
            })?;
        }
        Command::Compare(a) => {
            check((1..=MAX_REPEAT).contains(&a.repeat), || {
                format!("--repeat must be 1..={MAX_REPEAT}")
            })?;
            let mut names: Vec<&str> = a.routers.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            check(names.len() == a.routers.len(), || {
                "router names must be unique".into()
            })?;
            for (name, pid) in &a.router_pids {
                check(a.routers.iter().any(|(n, _)| n == name), || {
                    format!("--router-pid-of {name}: no --router {name}=URL")
                })?;
                check(pid.parse::<u32>().is_ok(), || {
                    format!("--router-pid-of {name}={pid}: not a process id")
                })?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        let cli = Cli::try_parse_from(std::iter::once("wampring-load").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        validate(&cli.command)?;
        Ok(cli.command)
    }

    #[test]
    fn rpc_defaults() {
        let Command::Rpc(a) = parse(&["rpc"]).unwrap() else {
            panic!()
        };
        assert_eq!(a.common.url, "ws://127.0.0.1:8080/ws");
        assert_eq!(a.common.duration, Duration::from_secs(10));
        assert_eq!(a.common.warmup, Duration::from_secs(2));
        assert_eq!(a.common.realm, "realm1");
        assert_eq!(
            (a.callers, a.callees, a.window, a.rate),
            (1, None, None, None)
        );
        assert_eq!(a.common.thread_count(), 1);
        assert_eq!(Serializer::from(a.common.serializer), Serializer::Json);
    }

    #[test]
    fn serializer_flag_names_every_serializer() {
        for ser in Serializer::ALL {
            let Command::Rpc(a) = parse(&["rpc", "--serializer", ser.name()]).unwrap() else {
                panic!()
            };
            assert_eq!(Serializer::from(a.common.serializer), ser);
        }
        assert!(parse(&["rpc", "--serializer", "ubjson"]).is_err());
    }

    #[test]
    fn conflicting_and_out_of_range_flags_are_refused() {
        assert!(parse(&["rpc", "--window", "2", "--rate", "10"]).is_err());
        assert!(parse(&["rpc", "--window", "0"]).is_err());
        assert!(parse(&["rpc", "--rate", "0"]).is_err());
        assert!(parse(&["rpc", "--callees", "0"]).is_err());
        assert!(parse(&["rpc", "--callees", "0", "--procedure", "com.example.echo"]).is_ok());
        assert!(parse(&["rpc", "--duration", "0s"]).is_err());
        assert!(parse(&["rpc", "--threads", "0"]).is_err());
        assert!(parse(&["pubsub"]).is_err()); // no ack, no rate, no window
        assert!(parse(&["pubsub", "--acknowledge"]).is_ok());
        assert!(parse(&["pubsub", "--acknowledge", "off", "--rate", "100"]).is_ok());
        assert!(parse(&["connect", "--connections", "0"]).is_err());
        assert!(parse(&["session-list", "--callers", "0"]).is_err());
        assert!(parse(&["session-list", "--window", "0"]).is_err());
        assert!(parse(&["session-list", "--sessions", "300000"]).is_err());
        assert!(parse(&["session-list", "--sessions", "0"]).is_ok());
    }

    const KEY: &str = "4d57d97a68f555696620a6d849c0ce582568518d729eb753dc7c732de2804510";

    fn auth_of(command: Command) -> AuthArgs {
        match command {
            Command::Rpc(a) => a.common.auth,
            Command::Pubsub(a) => a.common.auth,
            Command::Connect(a) => a.common.auth,
            Command::SessionList(a) => a.common.auth,
            Command::Compare(_) => panic!("compare has no auth flags"),
        }
    }

    #[test]
    fn auth_flags_are_common_to_every_scenario() {
        for scenario in ["rpc", "connect", "session-list"] {
            let auth = auth_of(
                parse(&[
                    scenario,
                    "--authmethod",
                    "wampcra",
                    "--authid",
                    "joe",
                    "--authrole",
                    "user",
                    "--secret",
                    "s3cret",
                ])
                .unwrap(),
            );
            assert_eq!(auth.authmethod, Some(AuthMethodArg::Wampcra));
            assert_eq!(auth.authid.as_deref(), Some("joe"));
            assert_eq!(auth.authrole.as_deref(), Some("user"));
            assert_eq!(auth.secret.as_deref(), Some("s3cret"));
        }
        let auth = auth_of(
            parse(&[
                "pubsub",
                "--acknowledge",
                "--authmethod",
                "cryptosign",
                "--private-key",
                KEY,
            ])
            .unwrap(),
        );
        assert_eq!(auth.authmethod, Some(AuthMethodArg::Cryptosign));
        assert_eq!(auth.authid, None);
        let auth = auth_of(parse(&["rpc"]).unwrap());
        assert_eq!(auth.authmethod, None);
        let auth = auth_of(
            parse(&[
                "connect",
                "--authmethod",
                "scram",
                "--authid",
                "a",
                "--secret-file",
                "/some/file",
            ])
            .unwrap(),
        );
        assert_eq!(auth.authmethod, Some(AuthMethodArg::Scram));
        assert_eq!(auth.secret_file, Some(PathBuf::from("/some/file")));
        let auth = auth_of(
            parse(&[
                "rpc",
                "--authmethod",
                "scram",
                "--hello-authmethod",
                "scram",
                "--authid",
                "a",
                "--secret",
                "pw",
            ])
            .unwrap(),
        );
        assert_eq!(auth.hello_authmethod.as_deref(), Some("scram"));
        assert!(parse(&["connect", "--authmethod", "anonymous"]).is_ok());
        assert!(parse(&[
            "connect",
            "--authmethod",
            "ticket",
            "--authid",
            "a",
            "--secret",
            "t"
        ])
        .is_ok());
    }

    #[test]
    fn auth_flag_combinations_are_checked() {
        let refused = |args: &[&str], needle: &str| {
            let error = parse(args).unwrap_err();
            assert!(error.contains(needle), "{args:?}: {error}");
        };
        refused(
            &["connect", "--authmethod", "ticket", "--authid", "a"],
            "needs --secret",
        );
        refused(
            &["connect", "--authmethod", "ticket", "--secret", "t"],
            "needs --authid",
        );
        refused(
            &["connect", "--authmethod", "wampcra", "--authid", "a"],
            "needs --secret",
        );
        refused(
            &["connect", "--authmethod", "scram", "--secret", "pw"],
            "needs --authid",
        );
        refused(
            &["connect", "--authmethod", "cryptosign"],
            "needs --private-key",
        );
        refused(
            &[
                "connect",
                "--authmethod",
                "cryptosign",
                "--private-key",
                "abcd",
            ],
            "64 hex digits",
        );
        refused(
            &[
                "connect",
                "--authmethod",
                "cryptosign",
                "--private-key",
                KEY,
                "--secret",
                "x",
            ],
            "takes no --secret",
        );
        refused(
            &[
                "connect",
                "--authmethod",
                "ticket",
                "--authid",
                "a",
                "--secret",
                "t",
                "--private-key",
                KEY,
            ],
            "takes no --private-key",
        );
        refused(
            &["connect", "--authmethod", "anonymous", "--secret", "x"],
            "takes no --secret",
        );
        refused(&["connect", "--authid", "a"], "need --authmethod");
        refused(&["connect", "--secret", "a"], "need --authmethod");
        refused(
            &["connect", "--hello-authmethod", "scram"],
            "need --authmethod",
        );
        refused(
            &[
                "connect",
                "--authmethod",
                "ticket",
                "--authid",
                "",
                "--secret",
                "t",
            ],
            "empty",
        );
        refused(
            &[
                "connect",
                "--authmethod",
                "ticket",
                "--authid",
                "a",
                "--secret",
                "",
            ],
            "empty",
        );
        refused(
            &[
                "connect",
                "--authmethod",
                "ticket",
                "--authid",
                "a",
                "--secret",
                "t",
                "--secret-file",
                "f",
            ],
            "cannot be used with",
        );
        refused(
            &[
                "connect",
                "--authmethod",
                "cryptosign",
                "--private-key",
                KEY,
                "--private-key-file",
                "f",
            ],
            "cannot be used with",
        );
        refused(&["connect", "--authmethod", "kerberos"], "invalid value");
    }

    #[test]
    fn session_list_defaults() {
        let Command::SessionList(a) = parse(&["session-list"]).unwrap() else {
            panic!()
        };
        assert_eq!(
            (a.sessions, a.callers, a.window, a.count),
            (10_000, 1, 1, true)
        );
        let Command::SessionList(a) = parse(&["session-list", "--count", "off"]).unwrap() else {
            panic!()
        };
        assert!(!a.count);
    }

    #[test]
    fn cpus_imply_threads() {
        let Command::Rpc(a) = parse(&["rpc", "--cpus", "0-1"]).unwrap() else {
            panic!()
        };
        assert_eq!(a.common.thread_count(), 2);
    }

    #[test]
    fn acknowledge_switch_forms() {
        let Command::Pubsub(a) = parse(&["pubsub", "--acknowledge", "--subscribers", "3"]).unwrap()
        else {
            panic!()
        };
        assert!(a.acknowledge);
        assert_eq!(a.subscribers, 3);
        let Command::Pubsub(a) = parse(&["pubsub", "--acknowledge=on"]).unwrap() else {
            panic!()
        };
        assert!(a.acknowledge);
        let Command::Pubsub(a) = parse(&["pubsub", "--rate", "5"]).unwrap() else {
            panic!()
        };
        assert!(!a.acknowledge);
    }

    #[test]
    fn compare_takes_the_scenario_as_trailing_arguments() {
        let Command::Compare(a) = parse(&[
            "compare",
            "--router",
            "a=ws://h:1/ws",
            "--router",
            "b=rs://h:2",
            "--repeat",
            "1",
            "rpc",
            "--window",
            "4",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.routers.len(), 2);
        assert_eq!(a.scenario, vec!["rpc", "--window", "4"]);
        assert!(parse(&[
            "compare",
            "--router",
            "a=ws://h:1/ws",
            "--router",
            "a=ws://h:2/ws",
            "rpc"
        ])
        .is_err());
        assert!(parse(&[
            "compare",
            "--router",
            "a=ws://h:1/ws",
            "--router-pid-of",
            "b=1",
            "rpc"
        ])
        .is_err());
    }
}
