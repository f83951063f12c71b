//! The `wampring` binary: command line, logging, signals. It reads the configuration (a file or
//! the embedded default), sets up logging, turns SIGINT/SIGTERM into a stop flag, and hands over
//! to the shard runtime (`wampring::shard::serve`), which does the rest. Exit codes: 0 after a
//! clean shutdown or a successful `--check-config`; 1 when the configuration is invalid or the
//! router cannot start; 2 for command-line usage errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Parser;
use tracing::info;
use tracing_subscriber::EnvFilter;

use wampring::config::{bounds, Config, ShardPlacement, DEFAULT_CONFIG_TOML};

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
    /// Serve the configuration in this TOML file instead of the built-in default.
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

    /// Number of shards, one pinned to each of the first N CPUs the process may run on.
    /// Overrides the config's `cores`. Default: all of them.
    #[arg(long, value_name = "N")]
    cores: Option<usize>,

    /// How connections are spread over shards: "kernel" (SO_REUSEPORT hashing) or
    /// "round-robin" (shard 0 accepts and deals them out in turn). Overrides the config's
    /// `placement`.
    #[arg(long, value_name = "HOW", value_parser = ["kernel", "round-robin"])]
    placement: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();

    if cli.print_default_config {
        print!("{DEFAULT_CONFIG_TOML}");
        return ExitCode::SUCCESS;
    }
    if let Some(path) = &cli.check_config {
        return match Config::load(path).and_then(|config| check_cores_here(&config)) {
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
        config.cores = Some(cores);
    }
    if let Some(name) = &cli.placement {
        // clap has already restricted the value to the known names.
        config.placement = ShardPlacement::from_name(name).unwrap_or_default();
    }

    if let Err(e) = init_logging(cli.log_level.as_deref(), config.log_level.as_deref()) {
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

    info!("wampring {} starting", env!("CARGO_PKG_VERSION"));
    match wampring::shard::serve(&config, stop) {
        Ok(metrics) => {
            info!("stopped: {metrics}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
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

/// Logs to stderr. Precedence: `--log-level`, then RUST_LOG, then the config's `log_level`,
/// then "info".
fn init_logging(flag: Option<&str>, from_config: Option<&str>) -> Result<(), String> {
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
    // Colours only for a terminal: logs redirected to a file or journald stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    Ok(())
}
