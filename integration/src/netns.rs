//! A network namespace owned by a test: created on [`Netns::new`], deleted on drop. Commands run
//! inside it with `ip netns exec`; closures run inside it on a thread that `setns()`'d into it
//! (sockets created there stay in that namespace for their whole life).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A command could not be started.
    #[error("cannot run {cmd}: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        cmd: String,
        /// Exit status.
        status: String,
        /// Its standard error.
        stderr: String,
    },
    /// Entering a namespace failed.
    #[error("cannot enter netns {ns}: {source}")]
    Setns {
        /// Namespace name.
        ns: String,
        /// The cause.
        source: std::io::Error,
    },
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Prefix of every namespace this harness creates.
pub const PREFIX: &str = "mpt-";

/// A network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// Run a command in the root namespace, returning its stdout.
pub fn run(args: &[&str]) -> Result<String, HarnessError> {
    let cmd = args.join(" ");
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| HarnessError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(HarnessError::Failed {
            cmd,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Netns {
    /// Create a namespace named `mpt-<pid>-<n>-<role>` with `lo` up.
    pub fn new(role: &str) -> Result<Netns, HarnessError> {
        cleanup_stale();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{role}", std::process::id());
        run(&["ip", "netns", "add", &name])?;
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run a command inside the namespace, returning its stdout.
    pub fn run(&self, args: &[&str]) -> Result<String, HarnessError> {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full)
    }

    /// Set a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), HarnessError> {
        self.run(&["sysctl", "-q", "-w", &format!("{key}={value}")])
            .map(|_| ())
    }

    /// `ip mptcp limits set add_addr_accepted A subflows S`: what this namespace's in-kernel PM
    /// accepts from its peers.
    pub fn mptcp_limits(&self, add_addr_accepted: u32, subflows: u32) -> Result<(), HarnessError> {
        let (a, s) = (add_addr_accepted.to_string(), subflows.to_string());
        self.run(&[
            "ip",
            "mptcp",
            "limits",
            "set",
            "add_addr_accepted",
            &a,
            "subflows",
            &s,
        ])
        .map(|_| ())
    }

    /// A `Command` that runs `program` inside the namespace (not started yet).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Start `args` inside the namespace with piped stdout/stderr.
    pub fn spawn(&self, args: &[&str]) -> Result<Child, HarnessError> {
        let mut c = self.command(args[0]);
        c.args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c.spawn().map_err(|source| HarnessError::Spawn {
            cmd: args.join(" "),
            source,
        })
    }

    /// Run `f` on a fresh thread that has entered this namespace, and return its result.
    /// Sockets created by `f` belong to this namespace even after the thread ends.
    pub fn exec<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, HarnessError> {
        let handle = self.exec_bg(f)?;
        Ok(handle
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p)))
    }

    /// Like [`Netns::exec`] but leaves the thread running (e.g. a server loop).
    pub fn exec_bg<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<std::thread::JoinHandle<R>, HarnessError> {
        let ns = self.name.clone();
        let file =
            File::open(format!("/var/run/netns/{ns}")).map_err(|source| HarnessError::Setns {
                ns: ns.clone(),
                source,
            })?;
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            // SAFETY: setns on a valid fd of a netns file; affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            let ok = rc == 0;
            let _ = tx.send(if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            });
            if !ok {
                // Never run the closure in the wrong namespace.
                loop {
                    std::thread::park();
                }
            }
            f()
        });
        match rx.recv() {
            Ok(Ok(())) => Ok(h),
            Ok(Err(source)) => Err(HarnessError::Setns { ns, source }),
            Err(_) => Err(HarnessError::Setns {
                ns,
                source: std::io::Error::other("thread died"),
            }),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill whatever still runs in it, then delete it (veths inside go with it).
        if let Ok(pids) = run(&["ip", "netns", "pids", &self.name]) {
            for pid in pids.split_whitespace() {
                let _ = run(&["kill", "-9", pid]);
            }
        }
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

/// Delete namespaces left behind by test processes that no longer exist (e.g. killed by a
/// timeout before their drop ran).
pub fn cleanup_stale() {
    let Ok(list) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for entry in list.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", &name]);
        }
    }
}
