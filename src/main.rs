//! The `wampring` binary: command line, logging, signals. It reads the configuration (a file or
//! the embedded default), sets up logging, turns SIGINT/SIGTERM into a stop flag and SIGHUP
//! into a reload request (the file is read again, with the same command-line overrides), and
//! hands over to the shard runtime (`wampring::shard::serve`), which does the rest. Exit codes: 0 after a
//! clean shutdown or a successful `--check-config`; 1 when the configuration is invalid or the
//! router cannot start; 2 for command-line usage errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use tracing::info;
use tracing_subscriber::EnvFilter;

use wampring::config::{
    bounds, Config, ConfigSource, LogFormat, ShardPlacement, DEFAULT_CONFIG_TOML,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A thread-per-core WAMP v2 router (Dealer + Broker) on io_uring.
///
/// Without arguments it serves the built-in configuration: WebSocket at
/// ws://127.0.0.1:8080/ws and RawSocket at 127.0.0.1:8081 (JSON and MessagePack), realm
/// `realm1`, anonymous access.
#[derive(Parser, Debug)]
#[command(name = "wampring", version, about, long_about = None)]
struct Cli {
    /// Serve the configuration in this TOML file instead of the built-in default. SIGHUP reads
    /// it again and applies what can change without a restart (README: "Reloading the
    /// configuration").
    #[arg(long, value_name = "FILE", conflicts_with_all = ["print_default_config", "check_config"])]
    config: Option<PathBuf>,

    /// Print the built-in configuration (a commented TOML file) and exit.
    #[arg(long, conflicts_with = "check_config")]
    print_default_config: bool,

    /// Check a configuration file: print "ok" and exit 0, or name the bad key and exit 1.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,

    /// Log filter: error, warn, info, debug, trace, or an EnvFilter directive. Overrides
    /// RUST_LOG and the config's `log_level`. Default: info.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,

    /// Log line format: "text" (readable lines) or "json" (one JSON object per line, with
    /// timestamp, level, target and fields). Overrides the config's `log_format`.
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,

    /// Number of shards, one pinned to each of the first N CPUs the process may run on.
    /// Overrides the config's `cores`. Default: all of them.
    #[arg(long, value_name = "N")]
    cores: Option<usize>,

    /// How connections are spread over shards: "kernel" (SO_REUSEPORT hashing) or
    /// "round-robin" (shard 0 accepts and deals them out in turn). Overrides the config's
    /// `placement`.
    #[arg(long, value_name = "HOW", value_parser = ["kernel", "round-robin"])]
    placement: Option<String>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Make the secret material of a `[[realm.principal]]` (printed as TOML lines to paste),
    /// so that no secret is stored in the clear and nobody writes a hash by hand. The secret is
    /// read from the first line of standard input unless --secret is given (which leaves it
    /// in the shell's history).
    #[command(subcommand)]
    Auth(AuthCommand),
}

#[derive(clap::Subcommand, Debug)]
enum AuthCommand {
    /// A `ticket_hash` (argon2id) for a ticket.
    Ticket {
        #[arg(long)]
        secret: Option<String>,
    },
    /// A salted `wampcra` table (PBKDF2 key) for a WAMP-CRA secret.
    Wampcra {
        #[arg(long)]
        secret: Option<String>,
        /// Default: 16 random bytes, base64.
        #[arg(long)]
        salt: Option<String>,
        #[arg(long, default_value_t = wampring::credentials::wampcra::DEFAULT_ITERATIONS)]
        iterations: u32,
        #[arg(long, default_value_t = wampring::credentials::wampcra::DEFAULT_KEYLEN)]
        keylen: u32,
    },
    /// A `scram` table (StoredKey, ServerKey) for a WAMP-SCRAM password.
    Scram {
        #[arg(long)]
        secret: Option<String>,
        /// "argon2id-13" (what Autobahn clients compute) or "pbkdf2".
        #[arg(long, default_value = "argon2id-13")]
        kdf: String,
        /// Default: 4096 for argon2id-13 (Autobahn's), 100000 for pbkdf2.
        #[arg(long)]
        iterations: Option<u32>,
        /// argon2id-13 only, KiB.
        #[arg(long, default_value_t = 512)]
        memory: u32,
        /// Salt in hex. Default: 16 random bytes.
        #[arg(long)]
        salt: Option<String>,
    },
    /// A new Ed25519 key pair: the private key for the client, and the `cryptosign` line.
    Cryptosign,
}

fn main() -> ExitCode {
    let cli = Cli::parse();

    if let Some(Command::Auth(command)) = cli.command {
        return match auth_lines(command) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }

    if cli.print_default_config {
        print!("{DEFAULT_CONFIG_TOML}");
        return ExitCode::SUCCESS;
    }
    if let Some(path) = &cli.check_config {
        let loaded = Config::load(path).and_then(|config| {
            check_cores_here(&config)?;
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            Ok(())
        });
        return match loaded {
            Ok(()) => {
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }

    let mut config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::default_config(),
    };
    if let Some(cores) = cli.cores {
        if cores == 0 || cores > bounds::MAX_CORES {
            eprintln!(
                "error: --cores: {cores} is out of range (1 ..= {})",
                bounds::MAX_CORES
            );
            return ExitCode::from(2);
        }
    }
    // Kept for SIGHUP: a reload reads the same file and applies the same overrides.
    let source = ConfigSource {
        path: cli.config.clone(),
        cores: cli.cores,
        // clap has already restricted the value to the known names.
        placement: cli
            .placement
            .as_deref()
            .map(|name| ShardPlacement::from_name(name).unwrap_or_default()),
    };
    source.apply_overrides(&mut config);

    if let Some(name) = &cli.log_format {
        // clap has already restricted the value to the known names.
        config.log_format = LogFormat::from_name(name).unwrap_or_default();
    }

    if let Err(e) = init_logging(
        cli.log_level.as_deref(),
        config.log_level.as_deref(),
        config.log_format,
    ) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // A second signal while stopping exits at once (code 1); the first sets the flag the
        // shards poll.
        let registered = signal_hook::flag::register_conditional_shutdown(signal, 1, stop.clone())
            .and_then(|_| signal_hook::flag::register(signal, stop.clone()));
        if let Err(e) = registered {
            eprintln!("error: cannot install the handler for signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }

    // SIGHUP asks for a reload; `serve` polls the flag (a handler may do nothing more).
    let reload = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone()) {
        eprintln!("error: cannot install the handler for SIGHUP: {e}");
        return ExitCode::FAILURE;
    }
    let reload = wampring::shard::ReloadRequests {
        flag: reload,
        source,
    };

    info!("wampring {} starting", env!("CARGO_PKG_VERSION"));
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    match wampring::shard::serve(&config, stop, reload) {
        Ok(metrics) => {
            info!("stopped: {metrics}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // A log shipper reading JSON lines gets the reason as one of them too.
            if config.log_format == LogFormat::Json {
                tracing::error!("{e}");
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `--check-config` also answers "would it start here": `cores` must not exceed the CPUs this
/// process may run on, which `serve` refuses too.
fn check_cores_here(config: &Config) -> Result<(), wampring::config::ConfigError> {
    let Some(cores) = config.cores else {
        return Ok(());
    };
    let allowed = wampring::shard::cpus::allowed_cpus().map_err(|e| {
        wampring::config::ConfigError(format!(
            "cores: cannot read the CPUs this process may use: {e}"
        ))
    })?;
    if cores > allowed.len() {
        return Err(wampring::config::ConfigError(format!(
            "cores: {cores} shards, but this process may run on {} CPU{} ({})",
            allowed.len(),
            if allowed.len() == 1 { "" } else { "s" },
            wampring::shard::cpus::format_cpu_list(&allowed)
        )));
    }
    Ok(())
}

/// Logs to stderr, as text or JSON lines. Filter precedence: `--log-level`, then RUST_LOG, then
/// the config's `log_level`, then "info".
fn init_logging(
    flag: Option<&str>,
    from_config: Option<&str>,
    format: LogFormat,
) -> Result<(), String> {
    let filter = match (
        flag,
        std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()),
    ) {
        (Some(level), _) => EnvFilter::try_new(level)
            .map_err(|e| format!("--log-level: {level:?} is not a valid filter: {e}"))?,
        (None, Some(env)) => EnvFilter::try_new(&env)
            .map_err(|e| format!("RUST_LOG: {env:?} is not a valid filter: {e}"))?,
        (None, None) => EnvFilter::try_new(from_config.unwrap_or("info"))
            .map_err(|e| format!("log_level: not a valid filter: {e}"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            // Colours only for a terminal: logs redirected to a file or journald stay plain.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder.with_ansi(ansi).init();
        }
        // One object per line: {"timestamp","level","fields":{"message",...},"target"}. Span
        // context is left out: the router logs no spans, and empty span lists are noise.
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}

/// The TOML lines `wampring auth …` prints.
fn auth_lines(command: AuthCommand) -> Result<String, String> {
    use wampring::config::{cryptosign_lines, scram_line, ticket_hash_line, wampcra_line};
    use wampring::credentials::scram::Kdf;
    let secret = |given: Option<String>| -> Result<String, String> {
        let secret = match given {
            Some(secret) => secret,
            None => {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| format!("cannot read the secret from standard input: {e}"))?;
                line.trim_end_matches(['\r', '\n']).to_string()
            }
        };
        if secret.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(secret)
    };
    match command {
        AuthCommand::Ticket { secret: given } => Ok(ticket_hash_line(&secret(given)?)),
        AuthCommand::Wampcra {
            secret: given,
            salt,
            iterations,
            keylen,
        } => {
            if iterations == 0 || keylen == 0 || keylen > 1024 {
                return Err("--iterations must be at least 1 and --keylen 1 ..= 1024".into());
            }
            Ok(wampcra_line(
                &secret(given)?,
                salt.as_deref(),
                iterations,
                keylen,
            ))
        }
        AuthCommand::Scram {
            secret: given,
            kdf,
            iterations,
            memory,
            salt,
        } => {
            let kdf = match kdf.as_str() {
                "argon2id-13" | "argon2id13" => Kdf::Argon2id13 {
                    iterations: iterations.unwrap_or(4096),
                    memory,
                },
                "pbkdf2" => Kdf::Pbkdf2 {
                    iterations: iterations.unwrap_or(100_000),
                },
                other => return Err(format!("--kdf {other:?}: use argon2id-13 or pbkdf2")),
            };
            let salt = match salt {
                Some(text) => {
                    Some(hex::decode(&text).map_err(|e| format!("--salt: not hex: {e}"))?)
                }
                None => None,
            };
            scram_line(&secret(given)?, kdf, salt)
        }
        AuthCommand::Cryptosign => {
            let (private, line) = cryptosign_lines();
            Ok(format!(
                "# private key, for the client only (keep it secret):\n# {private}\n{line}"
            ))
        }
    }
}
