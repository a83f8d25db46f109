//! `mptcp-pm-bench`: mptcp-pmd (fullmesh, userspace PM) against the in-kernel path manager on
//! the same namespace topology, runs interleaved. Measures join latency, churn, scale (RSS,
//! sock_diag poll time, idle wake-ups) and shaped throughput, prints a table and writes
//! BENCHMARKS.md. `--soak MINUTES` instead runs a continuous churn against the daemon and
//! samples its RSS, CPU and the live connections every few seconds.
//!
//! Run as root, after `cargo build --release -p mptcp-pmd`:
//! `cargo run --release -p integration --bin mptcp-pm-bench -- [--quick] [--soak MINUTES]
//! [--out FILE] [--only join,churn,scale,tput]`
//!
//! Environment: `BENCH_DAEMON_WRAPPER` runs the daemon under a tool (e.g. `heaptrack -o F`);
//! `BENCH_PMD_CONFIG` appends YAML to the daemon's config (A/B runs, e.g. `kernel: {nice: 0}`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test tool

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use integration::daemon::daemon_bin;
use integration::{mptcp, wait_for, Netns, Pm, Tbf, TopoOpts, Topology};
use mptcp_pmd_policies::model::PmEvent;
use netlink_actor::genl::PmEventSocket;
use netlink_actor::sock_diag::DiagSocket;
use netlink_actor::Error as GenlError;

const ECHO_PORT: u16 = 5201;
const HOLD_PORT: u16 = 5202;
const SINK_PORT: u16 = 5203;

// ------------------------------------------------------------------------------------------
// The daemon, started with its default log level (info), log in a file.

struct Pmd {
    child: Child,
    dir: PathBuf,
}

impl Pmd {
    fn start(ns: &Netns, extra: &str) -> Pmd {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mptcp-pm-bench-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("mptcp-pm.yaml");
        // BENCH_PMD_CONFIG (e.g. "kernel: {nice: 0}"): more top-level config for an A/B run.
        let more = std::env::var("BENCH_PMD_CONFIG").unwrap_or_default();
        std::fs::write(
            &cfg,
            format!(
                "policy: fullmesh\ncontrol:\n  socket: {}\n{extra}\n{more}\n",
                dir.join("ctl.sock").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("log")).unwrap();
        // BENCH_DAEMON_WRAPPER (e.g. "heaptrack -o /tmp/ht"): run the daemon under a tool.
        let bin = daemon_bin().to_str().unwrap().to_string();
        let wrapper = std::env::var("BENCH_DAEMON_WRAPPER").unwrap_or_default();
        let mut argv: Vec<String> = wrapper.split_whitespace().map(String::from).collect();
        argv.push(bin);
        argv.extend(["-c", cfg.to_str().unwrap(), "--log-level", "info"].map(String::from));
        let child = ns
            .command(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn mptcp-pmd");
        let p = Pmd { child, dir };
        assert!(
            wait_for(Duration::from_secs(10), || p
                .log()
                .contains("started")
                .then_some(()))
            .is_some(),
            "daemon did not start:\n{}",
            p.log()
        );
        p
    }

    /// The daemon's pid (a descendant named mptcp-pmd when it runs under a wrapper).
    fn pid(&self) -> u32 {
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
        find(self.child.id(), 3).unwrap_or(self.child.id())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Connections the daemon tracks, from `mptcp-pmd status` over its control socket
    /// ("?" when the daemon has no control socket).
    fn tracked(&self, ns: &Netns) -> String {
        let sock = self.dir.join("ctl.sock");
        ns.run(&[
            daemon_bin().to_str().unwrap(),
            "status",
            "-s",
            sock.to_str().unwrap(),
        ])
        .ok()
        .and_then(|out| {
            // "mptcp-pmd 0.1.0 (pid N): K connection(s)"
            let first = out.lines().next()?.to_string();
            let n = first
                .rsplit_once("): ")?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(n)
        })
        .unwrap_or_else(|| "?".into())
    }

    fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// utime + stime in seconds.
    fn cpu_s(&self) -> f64 {
        let (u, s) = self.cpu_split();
        u + s
    }

    /// (utime, stime) in seconds: user space vs. the kernel working on the daemon's behalf
    /// (its netlink commands run the kernel's subflow connect in its context).
    fn cpu_split(&self) -> (f64, f64) {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the comm: state is field 3, utime 14, stime 15 (1-based) -> indexes 11, 12.
        let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        (field(11) as f64 / hz, field(12) as f64 / hz)
    }

    fn status_kb(&self, key: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Context switches (voluntary + involuntary) summed over every thread.
    fn ctxt_switches(&self) -> u64 {
        let mut n = 0;
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) {
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
}

impl Drop for Pmd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child (or the daemon under its wrapper).
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        let c = &mut self.child;
        if wait_for(Duration::from_secs(5), || c.try_wait().ok().flatten()).is_none() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::env::var_os("BENCH_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Event tracking: the client namespace's mptcp_pm events, timestamped on receipt.

#[derive(Default)]
struct ConnTrack {
    established: Option<Instant>,
    subs: Vec<Instant>,
}

#[derive(Default)]
struct TrackState {
    by_token: HashMap<u32, ConnTrack>,
    by_port: HashMap<u16, u32>,
    overruns: u64,
}

struct Tracker {
    st: Mutex<TrackState>,
    cv: Condvar,
    stop: AtomicBool,
}

impl Tracker {
    fn start(ns: &Netns) -> Arc<Tracker> {
        let tr = Arc::new(Tracker {
            st: Mutex::new(TrackState::default()),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let t2 = tr.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        ns.exec_bg(move || {
            let mut sock = PmEventSocket::open(64 << 20).expect("events socket");
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 200_000,
            };
            // SAFETY: valid fd and option buffer.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&sock),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    &tv as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                );
            }
            // The tracker is the stopwatch: it timestamps events on receipt, so it must read them
            // the moment they arrive, not when the scheduler gets to it among 32 busy client
            // threads (which would compress or stretch both path managers' numbers at random).
            // SCHED_FIFO makes it run as soon as an event wakes it; its work per wake is tiny.
            let param = libc::sched_param { sched_priority: 50 };
            // SAFETY: sched_setscheduler on the calling thread with a valid parameter.
            let rt = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            if rt != 0 {
                eprintln!(
                    "bench: event tracker not real-time ({}); timestamps may lag under load",
                    std::io::Error::last_os_error()
                );
            }
            let _ = tx.send(());
            while !t2.stop.load(Ordering::Relaxed) {
                match sock.recv_batch() {
                    Ok(evs) => {
                        let now = Instant::now();
                        let mut st = t2.st.lock().unwrap();
                        for ev in evs.into_iter().flatten() {
                            match ev.event {
                                PmEvent::Established(c) if !c.flags.server_side => {
                                    st.by_port.insert(c.local.port(), c.token.0);
                                    st.by_token.entry(c.token.0).or_default().established =
                                        Some(now);
                                }
                                PmEvent::SubEstablished(s) => {
                                    st.by_token.entry(s.token.0).or_default().subs.push(now);
                                }
                                _ => {}
                            }
                        }
                        drop(st);
                        t2.cv.notify_all();
                    }
                    Err(GenlError::Overrun) => t2.st.lock().unwrap().overruns += 1,
                    Err(_) => {}
                }
            }
        })
        .unwrap();
        rx.recv().unwrap();
        tr
    }

    /// Wait until the connection with local port `port` has `subs` joined subflows; returns
    /// ESTABLISHED -> last SUB_ESTABLISHED.
    fn wait_joins(&self, port: u16, subs: usize, timeout: Duration) -> Option<Duration> {
        let end = Instant::now() + timeout;
        let mut st = self.st.lock().unwrap();
        loop {
            if let Some(c) = st.by_port.get(&port).and_then(|t| st.by_token.get(t)) {
                if c.subs.len() >= subs {
                    let est = c.established?;
                    let last = *c.subs.get(subs - 1)?;
                    return Some(last.saturating_duration_since(est));
                }
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            st = self.cv.wait_timeout(st, end - now).unwrap().0;
        }
    }

    fn forget(&self, port: u16) {
        let mut st = self.st.lock().unwrap();
        if let Some(t) = st.by_port.remove(&port) {
            st.by_token.remove(&t);
        }
    }

    fn overruns(&self) -> u64 {
        self.st.lock().unwrap().overruns
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ------------------------------------------------------------------------------------------
// Test beds: one topology per path manager.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Pmd,
    Kernel,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Pmd => "mptcp-pmd",
            Mode::Kernel => "in-kernel PM",
        }
    }
}

struct Bed {
    mode: Mode,
    links: usize,
    tracker: Arc<Tracker>,
    pmd: Option<Pmd>,
    sink_bytes: Arc<AtomicU64>,
    hold: Mutex<Child>,
    t: Topology,
}

fn bed(mode: Mode, links: usize, shaping: Option<Tbf>, pmd_extra: &str) -> Bed {
    let t = Topology::build(TopoOpts {
        client_links: links,
        server_links: 1,
        client_pm: if mode == Mode::Pmd {
            Pm::Userspace
        } else {
            Pm::Kernel
        },
        server_pm: Pm::Kernel,
        shaping: vec![shaping; if shaping.is_some() { links } else { 0 }],
    })
    .expect("topology");
    for ns in [&t.client, &t.server] {
        ns.sysctl("net.ipv4.ip_local_port_range", "10000 65000")
            .unwrap();
        ns.sysctl("net.ipv4.tcp_tw_reuse", "1").unwrap();
    }
    if mode == Mode::Kernel {
        for i in 1..links {
            t.client
                .run(&[
                    "ip",
                    "mptcp",
                    "endpoint",
                    "add",
                    &t.client_addr(i).to_string(),
                    "dev",
                    &t.client_if(i),
                    "subflow",
                ])
                .unwrap();
        }
    }
    let any = |p| SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), p);
    let l = t
        .server
        .exec(move || mptcp::listen(any(ECHO_PORT)))
        .unwrap()
        .unwrap();
    t.server.exec_bg(move || mptcp::echo_server(l)).unwrap();
    // Hold server (scale test): a child process of its own, so its 10 000 sockets do not
    // count against this process's descriptor limit; it answers one byte and keeps the socket.
    let hold = t
        .server
        .command(std::env::current_exe().unwrap().to_str().unwrap())
        .args(["--hold-server", &HOLD_PORT.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .expect("hold server");
    wait_for(Duration::from_secs(5), || {
        t.server
            .run(&["ss", "-Mltn"])
            .ok()
            .filter(|o| o.contains(&format!(":{HOLD_PORT}")))
    });
    // Counting sink (throughput).
    let sink_bytes = Arc::new(AtomicU64::new(0));
    let l = t
        .server
        .exec(move || mptcp::listen(any(SINK_PORT)))
        .unwrap()
        .unwrap();
    let sb = sink_bytes.clone();
    t.server
        .exec_bg(move || {
            for c in l.incoming() {
                let Ok(mut s) = c else { break };
                let sb = sb.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 256 * 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        sb.fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
            }
        })
        .unwrap();
    let tracker = Tracker::start(&t.client);
    let pmd = (mode == Mode::Pmd).then(|| Pmd::start(&t.client, pmd_extra));
    Bed {
        mode,
        links,
        tracker,
        pmd,
        sink_bytes,
        hold: Mutex::new(hold),
        t,
    }
}

impl Bed {
    fn dst(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.t.server_addr(0), port)
    }
}

// ------------------------------------------------------------------------------------------
// Statistics.

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[derive(Default, Clone)]
struct Lat {
    samples: Vec<f64>,
    timeouts: usize,
}

impl Lat {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.samples.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    }
}

// ------------------------------------------------------------------------------------------
// a. Join latency.

fn one_join(b: &Bed) -> Option<Duration> {
    let dst = b.dst(ECHO_PORT);
    let mut s =
        b.t.client
            .exec(move || mptcp::connect(dst, None))
            .unwrap()
            .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    mptcp::ping(&mut s, b"join").ok()?;
    let port = s.local_addr().ok()?.port();
    let r = b
        .tracker
        .wait_joins(port, b.links - 1, Duration::from_secs(5));
    drop(s);
    b.tracker.forget(port);
    r
}

struct JoinRow {
    links: usize,
    mode: Mode,
    lat: Lat,
    /// p50 of each interleaved batch, to show the spread between batches.
    batch_p50: Vec<f64>,
}

fn bench_join(quick: bool, out: &mut Vec<JoinRow>) {
    let total = if quick { 40 } else { 200 };
    let batch = 20;
    for links in [2usize, 4] {
        let beds = [
            bed(Mode::Pmd, links, None, ""),
            bed(Mode::Kernel, links, None, ""),
        ];
        let mut lats = [Lat::default(), Lat::default()];
        let mut p50s: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        // Warm-up (ARP/ND, first-connection costs), not measured.
        for b in &beds {
            let _ = one_join(b);
        }
        for _ in 0..total / batch {
            for ((b, l), p) in beds.iter().zip(lats.iter_mut()).zip(p50s.iter_mut()) {
                let mut this = Lat::default();
                for _ in 0..batch {
                    match one_join(b) {
                        Some(d) => this.samples.push(ms(d)),
                        None => this.timeouts += 1,
                    }
                }
                p.push(pct(&this.sorted(), 0.5));
                l.samples.extend(this.samples);
                l.timeouts += this.timeouts;
            }
        }
        for ((b, l), p) in beds.iter().zip(lats).zip(p50s) {
            out.push(JoinRow {
                links,
                mode: b.mode,
                lat: l,
                batch_p50: p,
            });
        }
        eprintln!("join latency, {links} links: done");
    }
}

// ------------------------------------------------------------------------------------------
// b. Churn.

#[derive(Default)]
struct ChurnRow {
    mode: Option<Mode>,
    conns: usize,
    meshed: usize,
    failed: usize,
    lat: Lat,
    cpu_s: f64,
    user_s: f64,
    overruns: usize,
    resyncs: usize,
    tracker_overruns: u64,
    wall_s: f64,
    /// p50 of each interleaved round.
    round_p50: Vec<f64>,
    /// What ran (path manager and, for mptcp-pmd, any non-default setting).
    label: String,
}

/// `total` short connections from `clients` threads: connect, ping, wait (<= 2 s) for the
/// mesh, close.
fn churn(b: &Bed, clients: usize, total: usize, stop: Option<Arc<AtomicBool>>) -> ChurnRow {
    let next = Arc::new(AtomicUsize::new(0));
    let res = Arc::new(Mutex::new(ChurnRow::default()));
    let cpu0 = b.pmd.as_ref().map(Pmd::cpu_s).unwrap_or(0.0);
    let user0 = b.pmd.as_ref().map(|p| p.cpu_split().0).unwrap_or(0.0);
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (next, res, tr, dst, subs) = (
                next.clone(),
                res.clone(),
                b.tracker.clone(),
                b.dst(ECHO_PORT),
                b.links - 1,
            );
            let stop = stop.clone();
            b.t.client
                .exec_bg(move || loop {
                    if let Some(s) = &stop {
                        if s.load(Ordering::Relaxed) {
                            break;
                        }
                    } else if next.fetch_add(1, Ordering::Relaxed) >= total {
                        break;
                    }
                    let r = (|| {
                        let mut s = mptcp::connect(dst, None).ok()?;
                        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                        mptcp::ping(&mut s, b"churn").ok()?;
                        let port = s.local_addr().ok()?.port();
                        let l = tr.wait_joins(port, subs, Duration::from_secs(2));
                        tr.forget(port);
                        Some(l)
                    })();
                    let mut r2 = res.lock().unwrap();
                    r2.conns += 1;
                    match r {
                        None => r2.failed += 1,
                        Some(None) => r2.lat.timeouts += 1,
                        Some(Some(d)) => {
                            r2.meshed += 1;
                            r2.lat.samples.push(ms(d));
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut r = std::mem::take(&mut *res.lock().unwrap());
    r.wall_s = started.elapsed().as_secs_f64();
    r.mode = Some(b.mode);
    r.cpu_s = b.pmd.as_ref().map(Pmd::cpu_s).unwrap_or(0.0) - cpu0;
    r.user_s = b.pmd.as_ref().map(|p| p.cpu_split().0).unwrap_or(0.0) - user0;
    r
}

/// Interleaved churn rounds per path manager.
const CHURN_ROUNDS: usize = 5;

fn bench_churn(quick: bool) -> Vec<ChurnRow> {
    let total = if quick { 1000 } else { 5000 };
    // The default config, the opt-in real-time scheduling, and the in-kernel PM.
    let rt = "kernel:\n  realtime_priority: 10\n";
    let labels = [
        "mptcp-pmd (default config)",
        "mptcp-pmd, kernel.realtime_priority: 10",
        "in-kernel PM",
    ];
    let beds = [
        bed(Mode::Pmd, 2, None, ""),
        bed(Mode::Pmd, 2, None, rt),
        bed(Mode::Kernel, 2, None, ""),
    ];
    let mut rows: Vec<ChurnRow> = Vec::new();
    let mut base = [(0usize, 0usize); 3];
    for (i, b) in beds.iter().enumerate() {
        if let Some(p) = &b.pmd {
            base[i] = (
                p.count("events socket overrun"),
                p.count("resync from sock_diag"),
            );
        }
    }
    // Interleaved rounds per path manager: a busy VM's noise then hits both alike.
    for _ in 0..CHURN_ROUNDS {
        for (i, b) in beds.iter().enumerate() {
            let mut r = churn(b, 32, total / CHURN_ROUNDS, None);
            let p50 = pct(&r.lat.sorted(), 0.5);
            match rows.get_mut(i) {
                None => {
                    r.round_p50.push(p50);
                    r.label = labels[i].to_string();
                    rows.push(r)
                }
                Some(acc) => {
                    acc.round_p50.push(p50);
                    acc.conns += r.conns;
                    acc.meshed += r.meshed;
                    acc.failed += r.failed;
                    acc.lat.samples.extend(r.lat.samples);
                    acc.lat.timeouts += r.lat.timeouts;
                    acc.cpu_s += r.cpu_s;
                    acc.user_s += r.user_s;
                    acc.wall_s += r.wall_s;
                }
            }
        }
    }
    for (i, b) in beds.iter().enumerate() {
        if let Some(p) = &b.pmd {
            rows[i].overruns = p.count("events socket overrun") - base[i].0;
            rows[i].resyncs = p.count("resync from sock_diag") - base[i].1;
        }
        rows[i].tracker_overruns = b.tracker.overruns();
    }
    eprintln!("churn: done");
    rows
}

// ------------------------------------------------------------------------------------------
// c. Scale.

#[derive(Default)]
struct ScaleRow {
    conns: usize,
    opened_s: f64,
    meshed: usize,
    mesh_s: f64,
    rss_kb: u64,
    hwm_kb: u64,
    poll_ms: Vec<f64>,
    light_poll_ms: Vec<f64>,
    busy_cpu_pct: f64,
    rss_after_kb: u64,
    idle_switches: u64,
    idle_cpu_s: f64,
    baseline_rss_kb: u64,
    empty_poll_ms: Vec<f64>,
}

fn count_meshed(ns: &Netns, links: usize) -> (usize, usize, f64) {
    ns.exec(move || {
        let mut d = DiagSocket::open().expect("sock_diag");
        let t0 = Instant::now();
        let snap = d.snapshot().expect("snapshot");
        let took = ms(t0.elapsed());
        let conns: Vec<_> = snap
            .conns
            .iter()
            .filter(|c| !c.conn.is_listener())
            .collect();
        let meshed = conns.iter().filter(|c| c.subflows.len() >= links).count();
        (conns.len(), meshed, took)
    })
    .unwrap()
}

/// Time of the daemon's periodic poll when no policy reads samples (fullmesh, ndiffports): the
/// MPTCP dumps alone, as `DiagSocket::connections_snapshot` runs them.
fn light_poll(ns: &Netns) -> f64 {
    ns.exec(|| {
        let mut d = DiagSocket::open().expect("sock_diag");
        let t0 = Instant::now();
        let snap = d.connections_snapshot().expect("connections snapshot");
        std::hint::black_box(snap.conns.len());
        ms(t0.elapsed())
    })
    .unwrap()
}

fn bench_scale(quick: bool) -> ScaleRow {
    let n = if quick { 1000 } else { 10_000 };
    let b = bed(Mode::Pmd, 2, None, "");
    let p = b.pmd.as_ref().unwrap();
    let mut row = ScaleRow {
        conns: n,
        baseline_rss_kb: p.status_kb("VmRSS"),
        ..Default::default()
    };
    for _ in 0..7 {
        row.empty_poll_ms.push(count_meshed(&b.t.client, 2).2);
    }
    row.empty_poll_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let started = Instant::now();
    let threads = 8;
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let dst = b.dst(HOLD_PORT);
            let per = n / threads + usize::from(k < n % threads);
            b.t.client
                .exec_bg(move || {
                    let mut v = Vec::with_capacity(per);
                    for _ in 0..per {
                        let one = || -> std::io::Result<TcpStream> {
                            let mut s = mptcp::connect(dst, None)?;
                            s.set_read_timeout(Some(Duration::from_secs(30)))?;
                            s.write_all(b"x")?;
                            let mut k = [0u8; 1];
                            s.read_exact(&mut k)?;
                            Ok(s)
                        };
                        match one() {
                            Ok(s) => v.push(s),
                            Err(e) => eprintln!("scale: a connection failed: {e}"),
                        }
                    }
                    v
                })
                .unwrap()
        })
        .collect();
    let mut conns: Vec<TcpStream> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    row.opened_s = started.elapsed().as_secs_f64();
    let n = conns.len();
    row.conns = n;
    let mut last = (0, 0, 0.0);
    let ok = wait_for(Duration::from_secs(180), || {
        last = count_meshed(&b.t.client, 2);
        (last.1 >= n).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    row.meshed = count_meshed(&b.t.client, 2).1;
    row.mesh_s = started.elapsed().as_secs_f64();
    if ok.is_none() {
        eprintln!("scale: only {} of {n} meshed ({last:?})", row.meshed);
    }
    std::thread::sleep(Duration::from_secs(3));
    row.rss_kb = p.status_kb("VmRSS");
    row.hwm_kb = p.status_kb("VmHWM");
    for _ in 0..7 {
        row.poll_ms.push(count_meshed(&b.t.client, 2).2);
    }
    row.poll_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    for _ in 0..7 {
        row.light_poll_ms.push(light_poll(&b.t.client));
    }
    row.light_poll_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    diag_breakdown(&b.t.client);
    smaps_summary(p.pid());
    // The daemon's own cost with n connections open and idle (its sock_diag polling).
    let c0 = p.cpu_s();
    std::thread::sleep(Duration::from_secs(5));
    row.busy_cpu_pct = (p.cpu_s() - c0) / 5.0 * 100.0;
    conns.clear();
    {
        let mut h = b.hold.lock().unwrap();
        let _ = h.kill();
        let _ = h.wait();
    }
    wait_for(Duration::from_secs(60), || {
        (count_meshed(&b.t.client, 2).0 == 0).then_some(())
    });
    // Let the daemon see the closes and its poller notice there is nothing left.
    std::thread::sleep(Duration::from_secs(4));
    row.rss_after_kb = p.status_kb("VmRSS");
    let (s0, c0) = (p.ctxt_switches(), p.cpu_s());
    std::thread::sleep(Duration::from_secs(5));
    row.idle_switches = p.ctxt_switches() - s0;
    row.idle_cpu_s = p.cpu_s() - c0;
    eprintln!("scale: done");
    row
}

/// Where the time of one snapshot goes: each dump alone, and user vs system CPU of the thread
/// (printed to stderr; for the analysis in BENCHMARKS.md).
fn diag_breakdown(ns: &Netns) {
    let lines = ns
        .exec(|| {
            fn cpu() -> (f64, f64) {
                // SAFETY: getrusage on the calling thread.
                let mut u: libc::rusage = unsafe { std::mem::zeroed() };
                unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
                let t = |v: libc::timeval| v.tv_sec as f64 * 1e3 + v.tv_usec as f64 / 1e3;
                (t(u.ru_utime), t(u.ru_stime))
            }
            let mut d = DiagSocket::open().expect("sock_diag");
            let mut out = Vec::new();
            for what in ["mptcp (v4+v6)", "tcp subflows (v4+v6)", "snapshot"] {
                let (u0, s0) = cpu();
                let t0 = Instant::now();
                let n = match what {
                    "mptcp (v4+v6)" => d.mptcp_connections().map(|x| x.items.len()).unwrap_or(0),
                    "tcp subflows (v4+v6)" => d.subflows().map(|x| x.items.len()).unwrap_or(0),
                    _ => d.snapshot().map(|x| x.conns.len()).unwrap_or(0),
                };
                let wall = ms(t0.elapsed());
                let (u1, s1) = cpu();
                out.push(format!(
                    "diag {what}: {n} items, {wall:.1} ms wall, {:.1} ms user, {:.1} ms sys",
                    u1 - u0,
                    s1 - s0
                ));
            }
            out
        })
        .unwrap();
    for l in lines {
        eprintln!("{l}");
    }
}

/// The daemon's largest memory mappings by RSS, its thread count (stderr).
fn smaps_summary(pid: u32) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut maps: Vec<(u64, String)> = Vec::new();
    let mut cur = String::new();
    for l in s.lines() {
        if l.split_whitespace().next().is_some_and(|w| {
            w.contains('-') && w.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        }) {
            cur = l.to_string();
        } else if let Some(v) = l.strip_prefix("Rss:") {
            let kb: u64 = v
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            maps.push((kb, cur.clone()));
        }
    }
    maps.sort_by_key(|m| std::cmp::Reverse(m.0));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    eprintln!("daemon threads: {threads}; largest mappings by RSS:");
    for (kb, m) in maps.iter().take(8) {
        eprintln!("  {kb} kB  {m}");
    }
}

// ------------------------------------------------------------------------------------------
// d. Throughput.

fn goodput(b: &Bed, plain_tcp: bool, secs: u64) -> f64 {
    let dst = b.dst(SINK_PORT);
    let src = b.t.client_addr(0);
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let h =
        b.t.client
            .exec_bg(move || {
                let mut s = if plain_tcp {
                    let sock = std::net::TcpStream::connect_timeout(&dst, Duration::from_secs(5));
                    sock.expect("tcp connect")
                } else {
                    mptcp::connect(dst, Some(src)).expect("mptcp connect")
                };
                let buf = vec![0x5au8; 128 * 1024];
                while !st.load(Ordering::Relaxed) {
                    if s.write_all(&buf).is_err() {
                        break;
                    }
                }
            })
            .unwrap();
    std::thread::sleep(Duration::from_secs(2)); // warm-up: joins, slow start
    let (c0, t0) = (b.sink_bytes.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, t1) = (b.sink_bytes.load(Ordering::Relaxed), Instant::now());
    stop.store(true, Ordering::Relaxed);
    let _ = h.join();
    (c1 - c0) as f64 * 8.0 / (t1 - t0).as_secs_f64() / 1e6
}

struct TputRow {
    what: &'static str,
    mbit: Vec<f64>,
}

fn bench_tput(quick: bool) -> Vec<TputRow> {
    let tbf = Tbf {
        rate_kbit: 50_000,
        burst_bytes: 64 * 1024,
        latency_ms: 20,
    };
    let beds = [
        bed(Mode::Pmd, 2, Some(tbf), ""),
        bed(Mode::Kernel, 2, Some(tbf), ""),
    ];
    let (rounds, secs) = if quick { (1, 4) } else { (3, 10) };
    let mut rows = vec![
        TputRow {
            what: "mptcp-pmd fullmesh (2 x 50 mbit)",
            mbit: vec![],
        },
        TputRow {
            what: "in-kernel PM (2 x 50 mbit)",
            mbit: vec![],
        },
        TputRow {
            what: "single-path TCP (link 0, 50 mbit)",
            mbit: vec![],
        },
    ];
    for _ in 0..rounds {
        rows[0].mbit.push(goodput(&beds[0], false, secs));
        rows[1].mbit.push(goodput(&beds[1], false, secs));
        rows[2].mbit.push(goodput(&beds[1], true, secs));
    }
    eprintln!("throughput: done");
    rows
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

// ------------------------------------------------------------------------------------------
// Soak.

fn soak(minutes: u64) -> String {
    let b = Arc::new(bed(Mode::Pmd, 2, None, ""));
    let stop = Arc::new(AtomicBool::new(false));
    let (b2, st) = (b.clone(), stop.clone());
    let worker = std::thread::spawn(move || churn(&b2, 32, usize::MAX, Some(st)));
    let p = b.pmd.as_ref().unwrap();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| t (s) | daemon RSS (KiB) | tracked by the daemon (`status`) | live MPTCP conns (sock_diag) | of them meshed | daemon CPU user s | daemon CPU sys s | overruns | resyncs |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let started = Instant::now();
    let end = started + Duration::from_secs(minutes * 60);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(10));
        let (live, meshed, _) = count_meshed(&b.t.client, 2);
        let tracked = p.tracked(&b.t.client);
        let line = format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} |",
            started.elapsed().as_secs(),
            p.status_kb("VmRSS"),
            tracked,
            live,
            meshed,
            p.cpu_split().0,
            p.cpu_split().1,
            p.count("events socket overrun"),
            p.count("resync from sock_diag")
        );
        eprintln!("{line}");
        let _ = writeln!(out, "{line}");
    }
    stop.store(true, Ordering::Relaxed);
    let r = worker.join().unwrap();
    let _ = writeln!(
        out,
        "\nconnections: {}, fully meshed within 2 s: {}, not meshed: {}, failed: {}; \
         join p50 {:.2} ms, p99 {:.2} ms; daemon CPU {:.1} us/connection; final RSS {} KiB, \
         peak (VmHWM) {} KiB",
        r.conns,
        r.meshed,
        r.lat.timeouts,
        r.failed,
        pct(&r.lat.sorted(), 0.5),
        pct(&r.lat.sorted(), 0.99),
        r.cpu_s / r.conns.max(1) as f64 * 1e6,
        p.status_kb("VmRSS"),
        p.status_kb("VmHWM"),
    );
    out
}

// ------------------------------------------------------------------------------------------

fn raise_nofile() {
    let want: libc::rlim_t = 65536;
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        let mut up = r;
        up.rlim_max = r.rlim_max.max(want);
        up.rlim_cur = up.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &up) != 0 {
            // Not allowed to raise the hard limit (no CAP_SYS_RESOURCE): use all of it.
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn sh(cmd: &[&str]) -> String {
    integration::netns::run(cmd)
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// `--hold-server PORT`: accept MPTCP connections, answer each with one byte, keep them open.
fn hold_server(port: u16) {
    let l = mptcp::listen(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)).expect("listen");
    let mut held = Vec::new();
    for c in l.incoming() {
        let Ok(mut s) = c else { continue };
        let _ = s.write_all(b"k");
        held.push(s);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--hold-server") {
        raise_nofile();
        hold_server(
            args.get(1)
                .and_then(|p| p.parse().ok())
                .expect("--hold-server PORT"),
        );
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let out_path = PathBuf::from(opt("--out").unwrap_or_else(|| "BENCHMARKS.md".into()));
    let only = opt("--only").unwrap_or_else(|| "join,churn,scale,tput".into());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("mptcp-pm-bench needs root (network namespaces)");
        std::process::exit(77);
    }
    raise_nofile();
    // The daemon next to this binary (target/<profile>/), unless MPTCP_PMD_BIN says otherwise.
    if std::env::var_os("MPTCP_PMD_BIN").is_none() {
        if let Some(bin) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("mptcp-pmd")))
            .filter(|b| b.exists())
        {
            std::env::set_var("MPTCP_PMD_BIN", bin);
        }
    }
    eprintln!("daemon: {}", daemon_bin().display());
    if let Some(m) = opt("--soak") {
        let minutes: u64 = m.parse().expect("--soak MINUTES");
        let table = soak(minutes);
        println!("{table}");
        if let Some(p) = opt("--out") {
            std::fs::write(p, &table).unwrap();
        }
        return;
    }
    let started = Instant::now();
    let mut joins = Vec::new();
    if only.contains("join") {
        bench_join(quick, &mut joins);
    }
    let churn_rows = if only.contains("churn") {
        bench_churn(quick)
    } else {
        vec![]
    };
    let scale = only.contains("scale").then(|| bench_scale(quick));
    let tput = if only.contains("tput") {
        bench_tput(quick)
    } else {
        vec![]
    };

    let mut md = String::new();
    let cmd = format!(
        "cargo run --release -p integration --bin mptcp-pm-bench --{}",
        if args.is_empty() {
            String::new()
        } else {
            format!(" {}", args.join(" "))
        }
    );
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `integration/src/bin/mptcp-pm-bench.rs` (run as root after \
         `cargo build --release -p mptcp-pmd`):\n\n```\n{cmd}\n```\n"
    );
    let _ =
        writeln!(
        md,
        "- date: {}\n- kernel: {}\n- machine: {} CPUs, {}\n- mode: {}; total run time {:.0} s\n",
        sh(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]),
        sh(&["uname", "-sr"]),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        sh(&["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]),
        if quick { "--quick (reduced counts)" } else { "full" },
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        md,
        "Topology: client (2 or 4 links) -- router -- server (1 link), veth pairs in three \
         network namespaces. mptcp-pmd: client namespace on the userspace PM, the daemon \
         (release build, fullmesh, default config, log level info). In-kernel PM: client \
         namespace on the kernel PM with one `subflow` endpoint per extra client address. The \
         server runs the in-kernel PM in both cases. Runs of the two are interleaved.\n"
    );
    if !joins.is_empty() {
        let _ = writeln!(md, "## a. Join latency\n\nClient ESTABLISHED event -> last SUB_ESTABLISHED event (the client namespace's `mptcp_pm_events`, timestamped on receipt), sequential connections, each pinged then closed.\n");
        let _ = writeln!(
            md,
            "| links | path manager | connections | p50 ms | p90 ms | max ms | not meshed in 5 s |"
        );
        let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|");
        for r in &joins {
            let s = r.lat.sorted();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {} |",
                r.links,
                r.mode.name(),
                s.len() + r.lat.timeouts,
                pct(&s, 0.5),
                pct(&s, 0.9),
                s.last().copied().unwrap_or(f64::NAN),
                r.lat.timeouts
            );
        }
        let _ = writeln!(md);
        let _ = writeln!(
            md,
            "p50 of each batch of 20, in run order (the spread is the VM's noise):\n"
        );
        for r in &joins {
            let v: Vec<String> = r.batch_p50.iter().map(|x| format!("{x:.3}")).collect();
            let _ = writeln!(
                md,
                "- {} links, {}: {}",
                r.links,
                r.mode.name(),
                v.join(", ")
            );
        }
        let _ = writeln!(
            md,
            "\n| links | p50 mptcp-pmd / in-kernel | target | verdict |\n|---:|---:|---:|---|"
        );
        for links in [2usize, 4] {
            let p = |m: Mode| {
                joins
                    .iter()
                    .find(|r| r.links == links && r.mode == m)
                    .map(|r| pct(&r.lat.sorted(), 0.5))
            };
            if let (Some(a), Some(k)) = (p(Mode::Pmd), p(Mode::Kernel)) {
                let ratio = a / k;
                let _ = writeln!(
                    md,
                    "| {links} | {ratio:.2} x | <= 1.10 x | {} |",
                    verdict(ratio <= 1.10)
                );
            }
        }
        let _ = writeln!(md);
    }
    if !churn_rows.is_empty() {
        let _ = writeln!(md, "## b. Churn\n\nShort connections from 32 concurrent clients (2 links): connect, one echo, wait up to 2 s for the join, close.\n");
        let _ = writeln!(md, "| path manager | connections | fully meshed | not meshed in 2 s | failed | join p50 ms | join p99 ms | conn/s | daemon CPU us/conn (of it user space) | overruns | resyncs | bench listener overruns |");
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &churn_rows {
            let s = r.lat.sorted();
            let is_pmd = r.mode == Some(Mode::Pmd);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.0} | {} | {} | {} | {} |",
                r.label,
                r.conns,
                r.meshed,
                r.lat.timeouts,
                r.failed,
                pct(&s, 0.5),
                pct(&s, 0.99),
                r.conns as f64 / r.wall_s.max(1e-9),
                if is_pmd {
                    format!(
                        "{:.1} (user {:.1})",
                        r.cpu_s / r.conns.max(1) as f64 * 1e6,
                        r.user_s / r.conns.max(1) as f64 * 1e6
                    )
                } else {
                    "n/a (in kernel)".into()
                },
                if is_pmd {
                    r.overruns.to_string()
                } else {
                    "n/a".into()
                },
                if is_pmd {
                    r.resyncs.to_string()
                } else {
                    "n/a".into()
                },
                r.tracker_overruns
            );
        }
        let _ = writeln!(md);
        let _ = writeln!(
            md,
            "Join p50 of each of the {CHURN_ROUNDS} interleaved rounds, in run order:\n"
        );
        for r in &churn_rows {
            let v: Vec<String> = r.round_p50.iter().map(|x| format!("{x:.3}")).collect();
            let _ = writeln!(md, "- {}: {}", r.label, v.join(", "));
        }
        let kernel = churn_rows
            .iter()
            .find(|r| r.mode == Some(Mode::Kernel))
            .map(|r| pct(&r.lat.sorted(), 0.5));
        let ok = churn_rows.iter().all(|r| r.meshed == r.conns);
        let _ = writeln!(md, "\n| target | value | verdict |\n|---|---:|---|");
        let _ = writeln!(
            md,
            "| every connection fully meshed | {} | {} |",
            if ok { "yes" } else { "no" },
            verdict(ok)
        );
        for r in churn_rows.iter().filter(|r| r.mode == Some(Mode::Pmd)) {
            if let Some(k) = kernel {
                let ratio = pct(&r.lat.sorted(), 0.5) / k;
                let _ = writeln!(
                    md,
                    "| join p50 {} <= 2 x in-kernel | {ratio:.2} x | {} |",
                    r.label,
                    verdict(ratio <= 2.0)
                );
            }
        }
        let _ = writeln!(md);
    }
    if let Some(s) = &scale {
        let poll = pct(&s.poll_ms, 0.5);
        let _ = writeln!(md, "## c. Scale (mptcp-pmd)\n\n{} MPTCP connections opened from 8 threads (2 links: {} subflows in the client namespace) and held open.\n", s.conns, 2 * s.conns);
        let _ = writeln!(
            md,
            "| metric | value | target | verdict |\n|---|---:|---:|---|"
        );
        let _ = writeln!(md, "| connections opened in | {:.1} s | | |", s.opened_s);
        let _ = writeln!(
            md,
            "| fully meshed (sock_diag) | {} of {} after {:.1} s | all | {} |",
            s.meshed,
            s.conns,
            s.mesh_s,
            verdict(s.meshed >= s.conns)
        );
        let _ = writeln!(
            md,
            "| daemon RSS at start | {:.1} MiB | | |",
            s.baseline_rss_kb as f64 / 1024.0
        );
        let _ = writeln!(
            md,
            "| daemon RSS, {} tracked | {:.1} MiB (peak {:.1}) | <= 32 MiB | {} |",
            s.conns,
            s.rss_kb as f64 / 1024.0,
            s.hwm_kb as f64 / 1024.0,
            verdict(s.rss_kb <= 32 * 1024)
        );
        let light = pct(&s.light_poll_ms, 0.5);
        let _ = writeln!(md, "| one periodic poll, fullmesh/ndiffports (MPTCP dumps only), median of 7 | {:.1} ms (min {:.1}, max {:.1}) | <= 25 ms | {} |", light, s.light_poll_ms.first().unwrap_or(&f64::NAN), s.light_poll_ms.last().unwrap_or(&f64::NAN), verdict(light <= 25.0));
        let _ = writeln!(md, "| one full snapshot (4 dumps: periodic poll with rtt-based; adoption, resync, status), median of 7 | {:.1} ms (min {:.1}, max {:.1}) | <= 25 ms | {} |", poll, s.poll_ms.first().unwrap_or(&f64::NAN), s.poll_ms.last().unwrap_or(&f64::NAN), verdict(poll <= 25.0));
        let _ = writeln!(
            md,
            "| full snapshot with no connection in the namespace, median of 7 | {:.1} ms | | |",
            pct(&s.empty_poll_ms, 0.5)
        );
        let _ = writeln!(
            md,
            "| daemon CPU with {} idle connections (fullmesh, 1 s poll) | {:.1} % | | |",
            s.conns, s.busy_cpu_pct
        );
        let _ = writeln!(
            md,
            "| daemon RSS after all closed | {:.1} MiB | | |",
            s.rss_after_kb as f64 / 1024.0
        );
        let _ = writeln!(md, "| context switches over 5 s idle, no connections | {} (CPU {:.2} s) | 0 periodic | {} |", s.idle_switches, s.idle_cpu_s, verdict(s.idle_switches <= 2));
        let _ = writeln!(md);
    }
    if !tput.is_empty() {
        let pmd = mean(&tput[0].mbit);
        let ker = mean(&tput[1].mbit);
        let tcp = mean(&tput[2].mbit);
        let _ = writeln!(md, "## d. Throughput\n\nTwo client links shaped with tbf 50 mbit (burst 64 KiB, latency 20 ms) in both directions; bulk client -> server, goodput counted by the server after a 2 s warm-up.\n");
        let _ = writeln!(
            md,
            "| setup | runs (Mbit/s) | mean Mbit/s |\n|---|---|---:|"
        );
        for r in &tput {
            let runs: Vec<String> = r.mbit.iter().map(|v| format!("{v:.1}")).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {:.1} |",
                r.what,
                runs.join(", "),
                mean(&r.mbit)
            );
        }
        let _ = writeln!(md, "\n| target | value | verdict |\n|---|---:|---|");
        let _ = writeln!(
            md,
            "| mptcp-pmd >= 95 % of in-kernel PM | {:.1} % | {} |",
            pmd / ker * 100.0,
            verdict(pmd >= 0.95 * ker)
        );
        let _ = writeln!(
            md,
            "| mptcp-pmd >= 1.8 x single path | {:.2} x | {} |",
            pmd / tcp,
            verdict(pmd >= 1.8 * tcp)
        );
        let _ = writeln!(
            md,
            "| in-kernel PM >= 1.8 x single path | {:.2} x | {} |",
            ker / tcp,
            verdict(ker >= 1.8 * tcp)
        );
        let _ = writeln!(md);
    }
    // A hand-written analysis after the marker survives regeneration.
    const MARKER: &str = "<!-- analysis: kept by mptcp-pm-bench -->";
    if let Some(i) = std::fs::read_to_string(&out_path)
        .ok()
        .and_then(|old| old.find(MARKER).map(|i| old[i..].to_string()))
    {
        md.push_str(&i);
    }
    println!("{md}");
    std::fs::write(&out_path, &md).unwrap();
    eprintln!("wrote {}", out_path.display());
}
