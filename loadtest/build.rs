//! Build script of wampring-load: it owns the one build-time fact the tool embeds, the git
//! commit it was built from (`WAMPRING_LOAD_COMMIT`, `git rev-parse --short HEAD`), which its
//! charts name so a picture can be traced to the code that measured it. wampring-load lives
//! in wampring's repository, so this is also the router's commit when both were built from
//! one checkout. Without git or without a repository (a source tarball, a vendored copy) the
//! value is "unknown": the build must never fail for want of version control.

use std::path::Path;
use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let commit = git(&dir, &["rev-parse", "--short", "HEAD"])
        .filter(|c| !c.is_empty() && c.len() <= 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=WAMPRING_LOAD_COMMIT={commit}");
    println!("cargo:rerun-if-changed=build.rs");
    // Rebuild when HEAD moves: HEAD itself (a branch switch), the branch's ref (a commit) and
    // packed-refs. Only existing files are named: Cargo reruns the script on every build for a
    // path that does not exist.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&dir, &["rev-parse", "--git-path", &name]) {
            let path = Path::new(&dir).join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}

/// One git query's trimmed output, or `None` when git is missing or the query fails.
fn git(dir: &str, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_string())
}
