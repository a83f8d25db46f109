//! Running the real `mptcp-pmd` binary inside a namespace: write a config, start it with its log
//! captured to a file, wait for log lines, stop it (SIGTERM) or kill it (SIGKILL) on demand and
//! always on drop.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::netns::Netns;

/// The daemon binary: `$MPTCP_PMD_BIN`, or `mptcp-pmd` next to the test executable's directory
/// (`target/<profile>/`), where `cargo test --workspace` builds it.
pub fn daemon_bin() -> PathBuf {
    if let Ok(p) = std::env::var("MPTCP_PMD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("mptcp-pmd");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (`cargo build -p mptcp-pmd`, or run the whole workspace's tests)",
        bin.display()
    );
    bin
}

/// A running daemon; killed on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
}

fn tmpdir(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "mptcp-pmd-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

impl Daemon {
    /// Start `mptcp-pmd -c <config>` in `ns` with `config_yaml` as its configuration.
    pub fn start(ns: &Netns, config_yaml: &str) -> Daemon {
        let dir = tmpdir("daemon");
        let cfg = dir.join("mptcp-pm.yaml");
        // The control socket lives in the (shared) filesystem, not in the namespace: give each
        // test daemon its own unless the test chose one.
        let mut yaml = config_yaml.to_string();
        if !yaml.lines().any(|l| l.starts_with("control:")) {
            yaml.push_str(&format!(
                "\ncontrol:\n  socket: {}\n",
                dir.join("control.sock").display()
            ));
        }
        std::fs::write(&cfg, yaml).expect("write config");
        let log = std::fs::File::create(dir.join("log")).expect("log file");
        let bin = daemon_bin();
        let child = ns
            .command(bin.to_str().expect("utf8 path"))
            .args([
                "-c",
                cfg.to_str().expect("utf8 path"),
                "--log-level",
                "debug",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn mptcp-pmd");
        Daemon {
            child: Some(child),
            dir,
        }
    }

    /// The control socket path given to this daemon (unless the test's config set its own).
    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// The config file the daemon was started with (rewrite it, then SIGHUP, to test reloads).
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("mptcp-pm.yaml")
    }

    /// The log so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Wait until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        crate::wait_for(timeout, || self.log().contains(needle).then_some(())).is_some()
    }

    /// Wait until the daemon finished start-up (adoption done).
    pub fn wait_ready(&self) {
        // A start-up failure is logged at CRIT before the process exits: stop waiting then.
        // The daemon itself starts in milliseconds; the generous limit is for the machine: while
        // the kernel tears down namespaces full of MPTCP sockets (parallel tests), this 2-CPU VM
        // has stalled for up to a minute ("BUG: workqueue lockup ... stuck for 58s" in dmesg),
        // and once a restarted daemon's `ip netns exec` took 30 s to reach its first log line.
        let ready = crate::wait_for(Duration::from_secs(90), || {
            let log = self.log();
            if log.contains(" CRIT ") {
                return Some(false);
            }
            log.contains("started").then_some(true)
        });
        assert_eq!(ready, Some(true), "daemon did not start:\n{}", self.log());
    }

    /// Send a signal to the daemon process (`ip netns exec` execs it, so the pid is the daemon's).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as libc::pid_t, sig) };
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the exit code (None if it had to be killed after `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> Option<i32> {
        self.signal(libc::SIGTERM);
        let mut c = self.child.take()?;
        let r = crate::wait_for(timeout, || c.try_wait().ok().flatten());
        match r {
            Some(status) => status.code(),
            None => {
                let _ = c.kill();
                let _ = c.wait();
                None
            }
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- mptcp-pmd log ----\n{}\n-----------------------",
                self.log()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
