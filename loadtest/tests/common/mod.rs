//! Test harness shared by the end-to-end tests: starts a wampring router on free ports with a
//! temporary TOML config, waits for its ports, kills it by PID on drop; runs the
//! `wampring-load` binary under test with a bound on its run time.
//!
//! The router binary: `$WAMPRING_BIN` when set, else `<workspace>/target/debug/wampring`,
//! built first with `cargo build -p wampring --bin wampring` (a no-op when it is up to date;
//! cargo releases the target-dir lock before it runs test binaries, so this does not deadlock).

#![allow(dead_code)] // each test file uses a different part

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("loadtest/ has a parent")
        .to_path_buf()
}

/// The wampring router binary, built once per test process.
pub fn wampring_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("WAMPRING_BIN") {
                return PathBuf::from(path);
            }
            let root = workspace_root();
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "wampring", "--bin", "wampring"])
                .current_dir(&root)
                .stdout(Stdio::null())
                .status()
                .expect("run cargo build -p wampring");
            assert!(
                status.success(),
                "cargo build -p wampring --bin wampring failed"
            );
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root.join("target"), PathBuf::from);
            target.join("debug").join("wampring")
        })
        .clone()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// A wampring router running for one test.
pub struct Router {
    child: Child,
    pub ws_url: String,
    pub rs_url: String,
    pub dir: tempfile::TempDir,
}

impl Router {
    pub fn start() -> Router {
        Router::start_with("")
    }

    /// As [`Router::start`], with `top` (top-level TOML keys such as
    /// `placement = "round-robin"`) at the head of the config.
    pub fn start_with(top: &str) -> Router {
        Router::start_config(top, "", "")
    }

    /// As [`Router::start_with`], with `listener` (keys such as `authmethods = [...]`) in
    /// both listeners' tables and `realm` (e.g. `[[realm.principal]]` tables) after realm1's.
    pub fn start_config(top: &str, listener: &str, realm: &str) -> Router {
        let binary = wampring_binary();
        let dir = tempfile::tempdir().expect("temp dir");
        let (ws_port, rs_port) = (free_port(), free_port());
        let config = dir.path().join("wampring.toml");
        std::fs::write(
            &config,
            format!(
                "{top}\n[[listener]]\nkind = \"websocket\"\nbind = \"127.0.0.1:{ws_port}\"\npath = \"/ws\"\n{listener}\n\
                 [[listener]]\nkind = \"rawsocket\"\nbind = \"127.0.0.1:{rs_port}\"\n{listener}\n\
                 [[realm]]\nname = \"realm1\"\n{realm}\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("router.log")).unwrap();
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut router = Router {
            child,
            ws_url: format!("ws://127.0.0.1:{ws_port}/ws"),
            rs_url: format!("rs://127.0.0.1:{rs_port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in [ws_port, rs_port] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Ok(Some(status)) = router.child.try_wait() {
                    panic!(
                        "wampring exited with {status} during start:\n{}",
                        router.log()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "wampring did not open port {port}:\n{}",
                    router.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        router
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the router with SIGTERM (by PID) and waits for it, bounded (SIGKILL after
    /// 10 s); its log then holds the shutdown metrics of every shard.
    pub fn stop(&mut self) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("router.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill(); // by PID: SIGKILL to this child only
        let _ = self.child.wait();
    }
}

/// Runs `wampring-load ARGS`, killing it if it outlives `limit`.
pub fn run_load(args: &[&str], limit: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wampring-load"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wampring-load");
    let started = Instant::now();
    // Drain the pipes in threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wampring-load {args:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs a scenario with `--json` and returns the parsed report; panics with both outputs
/// when it fails.
pub fn run_report(args: &[&str], dir: &Path) -> serde_json::Value {
    let json = dir.join(format!("report-{}.json", free_port()));
    let mut all: Vec<&str> = args.to_vec();
    let json_arg = json.to_str().unwrap().to_string();
    all.extend(["--json", &json_arg, "--quiet"]);
    let output = run_load(&all, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "wampring-load {all:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&json).expect("the JSON report was written");
    serde_json::from_str(&text).expect("the JSON report parses")
}

pub fn count(report: &serde_json::Value, name: &str) -> u64 {
    report["counts"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("counts.{name} missing in {report}"))
}

/// The flags of a short `connect` run: one open/close loop, no held sessions, about a second.
const SHORT_CONNECT: [&str; 7] = [
    "connect",
    "--connections",
    "1",
    "--duration",
    "700ms",
    "--warmup",
    "200ms",
];

/// Runs a short `connect` against `url` with the authentication flags `auth` (e.g.
/// `["--authmethod", "ticket", "--authid", "joe", "--secret", "t"]`) and returns its JSON
/// report; panics with both outputs when it fails. Every cycle and the setup check
/// authenticate, so `counts.errors == 0` means every session got in.
pub fn run_connect_with_auth(url: &str, auth: &[&str], dir: &Path) -> serde_json::Value {
    let mut args: Vec<&str> = SHORT_CONNECT.to_vec();
    args.extend(["--url", url]);
    args.extend_from_slice(auth);
    run_report(&args, dir)
}

/// As [`run_connect_with_auth`] for credentials the router must refuse: asserts the run
/// failed with exit code 1 (setup failed) and returns its stderr, which names the reason.
pub fn connect_with_auth_fails(url: &str, auth: &[&str]) -> String {
    let mut args: Vec<&str> = SHORT_CONNECT.to_vec();
    args.extend(["--url", url, "--quiet"]);
    args.extend_from_slice(auth);
    let output = run_load(&args, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "wampring-load {args:?} should have failed setup:\nstdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&output.stdout),
    );
    stderr
}
