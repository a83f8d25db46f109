//! Build script: records which binary this is, for `mptcp-pmd --version` (a field report then
//! names the exact build). Sets `MPTCP_PMD_GIT_COMMIT` (the short commit, or "unknown" when not
//! built from this project's git checkout, e.g. from a crate tarball or without git) and
//! `MPTCP_PMD_TARGET` (the target triple). Never fails the build.

use std::path::Path;
use std::process::Command;

/// `git <args>` in `dir`, its trimmed stdout if it succeeded.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(std::path::PathBuf::from);
    // Only trust git when this very manifest is tracked by the repository git finds: a tarball
    // unpacked inside some other checkout must not report that checkout's commit.
    let commit = dir
        .as_deref()
        .filter(|d| git(d, &["ls-files", "--error-unmatch", "Cargo.toml"]).is_some())
        .and_then(|d| {
            // Rebuild when HEAD moves (a commit, a checkout): HEAD itself and the ref it names.
            for what in ["HEAD", "packed-refs"] {
                if let Some(p) = git(d, &["rev-parse", "--git-path", what]) {
                    println!("cargo:rerun-if-changed={}", d.join(p).display());
                }
            }
            if let Some(r) = git(d, &["symbolic-ref", "-q", "HEAD"]) {
                if let Some(p) = git(d, &["rev-parse", "--git-path", &r]) {
                    println!("cargo:rerun-if-changed={}", d.join(p).display());
                }
            }
            git(d, &["rev-parse", "--short=7", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_string());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=MPTCP_PMD_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=MPTCP_PMD_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
