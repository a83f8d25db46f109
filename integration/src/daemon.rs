//! Running the real `mptcp-pmd` binary inside a namespace: write a config, start it with its log
//! captured to a file, wait for log lines, stop it (SIGTERM) or kill it (SIGKILL) on demand and
//! always on drop. [`DaemonOpts`] adds what the benchmark needs: a log level, a wrapper tool, a
//! direct `setns` start (no `ip netns exec` in the way), a `NOTIFY_SOCKET` listener that
//! timestamps `READY=1`, timestamped log lines, and the process's own counters from `/proc`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A `Command` for `program` that enters `ns` itself (`setns` between fork and exec), so that
/// nothing runs between the exec and `program`: for timing a start-up. (`Netns::command` goes
/// through `ip netns exec`, which first sets up a mount namespace of its own.)
pub fn setns_command(ns: &Netns, program: &str) -> std::io::Result<Command> {
    let file = std::fs::File::open(format!("/var/run/netns/{}", ns.name()))?;
    let mut c = Command::new(program);
    // SAFETY: setns(2) is async-signal-safe; the closure owns the namespace file, so its fd
    // is open in the child until exec (then closed by O_CLOEXEC).
    unsafe {
        c.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    Ok(c)
}

/// How [`Daemon::spawn`] starts the daemon. `Default` is what [`Daemon::start`] does.
#[derive(Debug, Clone)]
pub struct DaemonOpts {
    /// `--log-level` (default `debug`).
    pub log_level: String,
    /// Run the daemon under this tool (e.g. `["heaptrack", "-o", "/tmp/ht"]`).
    pub wrapper: Vec<String>,
    /// Enter the namespace with `setns` instead of `ip netns exec` (see [`setns_command`]).
    pub direct: bool,
    /// Listen on a `NOTIFY_SOCKET` and timestamp what the daemon sends ([`Daemon::ready_after`]).
    pub notify: bool,
    /// Timestamp each log line on receipt ([`Daemon::line_after`]); the log file still gets it.
    pub stamp_lines: bool,
    /// stdout and stderr into a pipe that nobody reads (a stalled log reader) until
    /// [`Daemon::read_output`]; the log file gets the lines from then on.
    pub unread_output: bool,
    /// On drop, SIGTERM the daemon and give it 5 s to exit (a wrapper tool then writes its
    /// report) before the SIGKILL.
    pub stop_on_drop: bool,
    /// Keep the daemon's directory (config, log) on drop.
    pub keep_dir: bool,
    /// More arguments after `-c` and `--log-level` (e.g. `--dry-run`).
    pub args: Vec<String>,
}

impl Default for DaemonOpts {
    fn default() -> Self {
        DaemonOpts {
            log_level: "debug".into(),
            wrapper: Vec::new(),
            direct: false,
            notify: false,
            stamp_lines: false,
            unread_output: false,
            stop_on_drop: false,
            keep_dir: false,
            args: Vec::new(),
        }
    }
}

/// What a receiving thread saw, each with the instant it arrived.
type Stamped = Arc<Mutex<Vec<(Instant, String)>>>;

/// A running daemon; killed on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    spawned: Instant,
    lines: Option<Stamped>,
    /// The read end of the pipe of [`DaemonOpts::unread_output`], until it is read.
    unread: Option<std::io::PipeReader>,
    notes: Option<Stamped>,
    stop_listener: Arc<AtomicBool>,
    opts: DaemonOpts,
}

fn tmpdir(tag: &str) -> PathBuf {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "mptcp-pmd-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).expect("tmpdir");
    d
}

/// Bind a `NOTIFY_SOCKET` at `path` and record every datagram on a thread until `stop`.
fn notify_listener(path: &Path, stop: Arc<AtomicBool>) -> Stamped {
    let sock = UnixDatagram::bind(path).expect("bind NOTIFY_SOCKET");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("SO_RCVTIMEO");
    let notes: Stamped = Arc::default();
    let n2 = notes.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(n) = sock.recv(&mut buf) {
                let now = Instant::now();
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                n2.lock().unwrap().push((now, msg));
            }
        }
    });
    notes
}

/// Copy the daemon's output to `log` line by line, recording when each line arrived.
fn line_stamper(out: std::io::PipeReader, mut log: std::fs::File) -> Stamped {
    let lines: Stamped = Arc::default();
    let l2 = lines.clone();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        // Ends at EOF: when the daemon (and a wrapper) exited.
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            let now = Instant::now();
            let _ = log.write_all(line.as_bytes());
            l2.lock().unwrap().push((now, std::mem::take(&mut line)));
        }
    });
    lines
}

impl Daemon {
    /// Start `mptcp-pmd -c <config>` in `ns` with `config_yaml` as its configuration.
    pub fn start(ns: &Netns, config_yaml: &str) -> Daemon {
        Daemon::spawn(ns, config_yaml, DaemonOpts::default())
    }

    /// Start the daemon as `opts` say (without waiting for it: see [`Daemon::wait_ready`]).
    pub fn spawn(ns: &Netns, config_yaml: &str, opts: DaemonOpts) -> Daemon {
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
        let mut argv: Vec<String> = opts.wrapper.clone();
        argv.push(bin.to_str().expect("utf8 path").to_string());
        argv.extend(
            [
                "-c",
                cfg.to_str().expect("utf8 path"),
                "--log-level",
                &opts.log_level,
            ]
            .map(String::from),
        );
        argv.extend(opts.args.iter().cloned());
        let mut cmd = if opts.direct {
            setns_command(ns, &argv[0]).expect("open the namespace")
        } else {
            ns.command(&argv[0])
        };
        cmd.args(&argv[1..]).stdin(Stdio::null());
        let stop_listener = Arc::new(AtomicBool::new(false));
        let notes = opts.notify.then(|| {
            let path = dir.join("notify.sock");
            let notes = notify_listener(&path, stop_listener.clone());
            cmd.env("NOTIFY_SOCKET", &path);
            notes
        });
        let mut pipe = None;
        let mut unread = None;
        if opts.unread_output {
            let (r, w) = std::io::pipe().expect("pipe");
            cmd.stdout(w.try_clone().expect("dup")).stderr(w);
            unread = Some(r);
        } else if opts.stamp_lines {
            let (r, w) = std::io::pipe().expect("pipe");
            cmd.stdout(w.try_clone().expect("dup")).stderr(w);
            pipe = Some(r);
        } else {
            cmd.stdout(log.try_clone().expect("dup"))
                .stderr(log.try_clone().expect("dup"));
        }
        let spawned = Instant::now();
        let child = cmd.spawn().expect("spawn mptcp-pmd");
        // The parent's copies of the pipe's write end go with `cmd`, so the stamper sees EOF
        // once the daemon exits.
        drop(cmd);
        let lines = pipe.map(|r| line_stamper(r, log));
        Daemon {
            child: Some(child),
            dir,
            spawned,
            lines,
            unread,
            notes,
            stop_listener,
            opts,
        }
    }

    /// Start reading the output of [`DaemonOpts::unread_output`] (into the log file, each line
    /// stamped on receipt as with [`DaemonOpts::stamp_lines`]).
    pub fn read_output(&mut self) {
        if let Some(r) = self.unread.take() {
            let log = std::fs::OpenOptions::new()
                .append(true)
                .open(self.dir.join("log"))
                .expect("log file");
            self.lines = Some(line_stamper(r, log));
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

    /// Spawn -> the first log line containing `needle`, as received (needs
    /// [`DaemonOpts::stamp_lines`]; `None` if no such line came within `timeout`).
    pub fn line_after(&self, needle: &str, timeout: Duration) -> Option<Duration> {
        let lines = self.lines.as_ref()?;
        crate::wait_for(timeout, || {
            let l = lines.lock().unwrap();
            l.iter()
                .find(|(_, s)| s.contains(needle))
                .map(|(t, _)| t.saturating_duration_since(self.spawned))
        })
    }

    /// Every output line so far with the instant it arrived (needs
    /// [`DaemonOpts::stamp_lines`]; empty without).
    pub fn stamped_lines(&self) -> Vec<(Instant, String)> {
        self.lines
            .as_ref()
            .map(|l| l.lock().unwrap().clone())
            .unwrap_or_default()
    }

    /// Spawn -> the `READY=1` notification, as received (needs [`DaemonOpts::notify`]; `None`
    /// if none came within `timeout`).
    pub fn ready_after(&self, timeout: Duration) -> Option<Duration> {
        let notes = self.notes.as_ref()?;
        crate::wait_for(timeout, || {
            let n = notes.lock().unwrap();
            n.iter()
                .find(|(_, m)| m.lines().any(|l| l == "READY=1"))
                .map(|(t, _)| t.saturating_duration_since(self.spawned))
        })
    }

    /// The daemon's pid (a descendant named mptcp-pmd when it runs under a wrapper; `ip netns
    /// exec` execs it, so without one it is the child's).
    pub fn pid(&self) -> Option<u32> {
        fn find(pid: u32, depth: u32) -> Option<u32> {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "mptcp-pmd" {
                return Some(pid);
            }
            if depth == 0 {
                return None;
            }
            let kids = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            kids.split_whitespace()
                .filter_map(|k| k.parse().ok())
                .find_map(|k| find(k, depth - 1))
        }
        let c = self.child.as_ref()?.id();
        Some(find(c, 3).unwrap_or(c))
    }

    /// Log lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`, ...); 0 if unreadable.
    pub fn status_kb(&self, key: &str) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// (utime, stime) in seconds: user space vs. the kernel working on the daemon's behalf
    /// (its netlink commands run the kernel's subflow connect in its context).
    pub fn cpu_split(&self) -> (f64, f64) {
        let Some(pid) = self.pid() else {
            return (0.0, 0.0);
        };
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the comm: state is field 3, utime 14, stime 15 (1-based) -> indexes 11, 12.
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        (field(11) as f64 / hz, field(12) as f64 / hz)
    }

    /// utime + stime in seconds.
    pub fn cpu_s(&self) -> f64 {
        let (u, s) = self.cpu_split();
        u + s
    }

    /// Context switches (voluntary + involuntary) summed over every thread.
    pub fn ctxt_switches(&self) -> u64 {
        let Some(pid) = self.pid() else { return 0 };
        let mut n = 0;
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for e in dir.flatten() {
                let s = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
                for l in s.lines() {
                    if l.starts_with("voluntary_ctxt_switches")
                        || l.starts_with("nonvoluntary_ctxt_switches")
                    {
                        n += l
                            .split_whitespace()
                            .nth(1)
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0);
                    }
                }
            }
        }
        n
    }

    /// Send a signal to the daemon process (under a wrapper: to the daemon, not the wrapper).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own child or its descendant.
            unsafe { libc::kill(pid as libc::pid_t, sig) };
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

    /// Wait up to `timeout` for the daemon to exit on its own (a refused start): its exit code
    /// (`Some(None)`: killed by a signal) and the time from spawn to the moment it was seen
    /// gone (polled every 5 ms). `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<(Option<i32>, Duration)> {
        let c = self.child.as_mut()?;
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                let after = self.spawned.elapsed();
                self.child = None;
                return Some((status.code(), after));
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
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
        if self.opts.stop_on_drop {
            self.stop(Duration::from_secs(5));
        }
        self.kill();
        self.stop_listener.store(true, Ordering::Relaxed);
        if std::thread::panicking() {
            eprintln!(
                "---- mptcp-pmd log ----\n{}\n-----------------------",
                self.log()
            );
        }
        if !self.opts.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
