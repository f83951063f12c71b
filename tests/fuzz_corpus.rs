//! Replays the committed fuzz seed corpus on stable: every file of `fuzz/corpus/<target>/`
//! through its target body in `wampring::fuzz_targets` (the same code the cargo-fuzz binaries in
//! `fuzz/` run), so the seeds — valid messages and streams, and every input a fuzzer ever
//! crashed the code with — stay regression tests in `cargo test`. A target without seeds fails.
//! Running the fuzzers themselves is `fuzz/run.sh` (nightly), never part of the test command.

use std::path::{Path, PathBuf};

use wampring::fuzz_targets::TARGETS;

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no seeds", dir.display());
    files
}

fn replay(target: &str) {
    let (_, body) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    for path in corpus_files(target) {
        let data = std::fs::read(&path).expect("a readable seed");
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target} failed on {}", path.display());
    }
}

#[test]
fn json_decode() {
    replay("json_decode");
}

#[test]
fn msgpack_decode() {
    replay("msgpack_decode");
}

#[test]
fn cbor_decode() {
    replay("cbor_decode");
}

#[test]
fn websocket_server() {
    replay("websocket_server");
}

#[test]
fn rawsocket_server() {
    replay("rawsocket_server");
}

#[test]
fn router() {
    replay("router");
}

/// Every target has its test above and its corpus directory.
#[test]
fn every_target_is_replayed() {
    let names: Vec<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "json_decode",
            "msgpack_decode",
            "cbor_decode",
            "websocket_server",
            "rawsocket_server",
            "router"
        ]
    );
    for name in names {
        corpus_files(name);
    }
}
