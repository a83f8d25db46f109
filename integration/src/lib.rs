//! The namespace test harness of mptcp-pmd and its real-kernel end-to-end tests.
//!
//! Owns: building throwaway network topologies out of network namespaces and veth links
//! ([`Topology`]), running commands or closures inside a namespace ([`Netns`]), opening real
//! MPTCP sockets ([`mptcp`]) and small polling helpers. Every topology gets unique namespace
//! names, so tests run in parallel, and is torn down on drop, also when a test panics.
//!
//! It does not own any product logic; the tests in `tests/` exercise the other crates and the
//! `mptcp-pmd` binary against the kernel of the machine they run on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod daemon;
pub mod link;
pub mod metrics;
pub mod mptcp;
pub mod netdev;
pub mod netns;
pub mod nft;
pub mod observe;
pub mod topo;
pub mod transfer;

pub use netns::{HarnessError, Netns};
pub use topo::{Pm, Tbf, TopoOpts, Topology};

use std::time::{Duration, Instant};

/// Whether real-kernel tests can run here. Returns `false` (after printing why) when they must
/// be skipped; under `CI=true` a missing requirement is a test failure, never a silent skip.
pub fn kernel_tests_enabled(test: &str) -> bool {
    let mut why = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        why.push("not running as root (namespaces and the userspace PM need CAP_NET_ADMIN/CAP_SYS_ADMIN)");
    }
    if std::process::Command::new("ip").arg("-V").output().is_err() {
        why.push("the `ip` command (iproute2) is missing");
    }
    if !std::path::Path::new("/proc/sys/net/mptcp/enabled").exists() {
        why.push("this kernel has no MPTCP (/proc/sys/net/mptcp missing)");
    }
    if why.is_empty() {
        return true;
    }
    let msg = format!("{test}: real-kernel test cannot run: {}", why.join("; "));
    if std::env::var("CI").map(|v| v == "true").unwrap_or(false) {
        panic!("{msg} (CI=true: real-kernel tests must run)");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// Poll `f` every 20 ms until it returns `Some`, or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
