//! `mptcp-pm-bench`: mptcp-pmd (fullmesh, userspace PM) against the in-kernel path manager on
//! the same namespace topology, runs interleaved. Measures join latency, churn, scale (RSS,
//! sock_diag poll time, idle wake-ups), shaped throughput, the daemon's start-up and idle
//! cost (cold start to `started` and READY=1, idle RSS, binary sizes) and the server side
//! (mptcp-pmd `announce` against an in-kernel `signal` endpoint: announce-to-join latency and
//! throughput over two shaped server links), prints a table and writes BENCHMARKS.md, one
//! section per benchmark. `--soak MINUTES` instead runs a continuous
//! churn against the daemon and samples its RSS, CPU and the live connections every few seconds.
//!
//! Run as root, after `cargo build --release -p mptcp-pmd`:
//! `cargo run --release -p integration --bin mptcp-pm-bench -- [--quick] [--soak MINUTES]
//! [--out FILE] [--only join,churn,scale,tput,startup,server]` (`--only` keeps the file's other
//! sections).
//!
//! Environment: `BENCH_DAEMON_WRAPPER` runs the daemon under a tool (e.g. `heaptrack -o F`);
//! `BENCH_PMD_CONFIG` appends YAML to the daemon's config (A/B runs, e.g. `kernel: {nice: 0}`);
//! `BENCH_BASELINE_BIN` adds a bed running another daemon binary (e.g. a build of main) to the
//! join and churn sections, interleaved with the others (before/after in one run);
//! `BENCH_CHURN_CONFIG` adds a churn bed with that YAML added to its config (e.g.
//! `kernel: {nice: -20}`);
//! `BENCH_KEEP_LOGS` keeps the daemons' directories (config, log).
//!
//! Join and churn also show where the daemon's time goes, from its own metrics (the
//! `event_to_*` and `command_seconds` histograms, read from its metrics endpoint) and its
//! event loop's run-queue wait (`/proc/<pid>/task/<pid>/schedstat`).

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

use clap::{Parser, ValueEnum};
use integration::daemon::{daemon_bin, setns_command, Daemon, DaemonOpts};
use integration::{mptcp, wait_for, Netns, Pm, Tbf, TopoOpts, Topology};
use mptcp_pmd_policies::model::PmEvent;
use netlink_actor::genl::PmEventSocket;
use netlink_actor::sock_diag::{port_windows, DiagSocket, PortPair, WINDOW_SUBFLOWS};
use netlink_actor::Error as GenlError;

const ECHO_PORT: u16 = 5201;
const HOLD_PORT: u16 = 5202;
const SINK_PORT: u16 = 5203;

// ------------------------------------------------------------------------------------------
// The daemon: `integration::daemon::Daemon`, with its default log level (info), log in a file.

/// Options of every daemon the bench starts: log level info, the environment's wrapper tool
/// (`BENCH_DAEMON_WRAPPER`, e.g. "heaptrack -o /tmp/ht") and its logs kept on request
/// (`BENCH_KEEP_LOGS`); a clean SIGTERM on drop, so a wrapper writes its report.
fn pmd_opts() -> DaemonOpts {
    DaemonOpts {
        log_level: "info".into(),
        wrapper: std::env::var("BENCH_DAEMON_WRAPPER")
            .unwrap_or_default()
            .split_whitespace()
            .map(String::from)
            .collect(),
        stop_on_drop: true,
        keep_dir: std::env::var_os("BENCH_KEEP_LOGS").is_some(),
        ..DaemonOpts::default()
    }
}

/// The bench's daemon config: `policy`, the metrics endpoint (where the bench reads the
/// daemon's own timings), `extra`, then `BENCH_PMD_CONFIG` (more top-level YAML for an A/B
/// run, e.g. "kernel: {nice: 0}").
fn pmd_config(policy: &str, extra: &str) -> String {
    let more = std::env::var("BENCH_PMD_CONFIG").unwrap_or_default();
    format!("policy: {policy}\nmetrics:\n  listen: \"127.0.0.1:{METRICS_PORT}\"\n{extra}\n{more}\n")
}

/// Start the daemon with `policy` in `ns` and wait for its `started` line.
fn start_pmd_with(ns: &Netns, policy: &str, extra: &str) -> Daemon {
    let d = Daemon::spawn(ns, &pmd_config(policy, extra), pmd_opts());
    d.wait_ready();
    d
}

/// Start the client-side daemon (fullmesh) in `ns`.
fn start_pmd(ns: &Netns, extra: &str) -> Daemon {
    start_pmd_with(ns, "fullmesh", extra)
}

/// Connections the daemon tracks, from `mptcp-pmd status` over its control socket
/// ("?" when the daemon has no control socket).
fn tracked(d: &Daemon, ns: &Netns) -> String {
    let sock = d.control_socket();
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
// ------------------------------------------------------------------------------------------
// Where a join's time goes, from the daemon's own timestamps: its stage histograms (metrics
// endpoint, in the client namespace; serving them changes nothing on the event path, the
// daemon keeps them either way) and its event-loop thread's run-queue wait
// (`/proc/<pid>/task/<pid>/schedstat`: time runnable but not running, and timeslices run).

/// The daemon's metrics port inside its namespace.
const METRICS_PORT: u16 = 9464;

/// The daemon's latency histograms of one stage, as cumulative (upper bound s, count) pairs.
type Buckets = Vec<(f64, f64)>;

/// A reading of the daemon's timing counters; [`Stages::since`] gives what happened between two.
#[derive(Clone, Default)]
struct Stages {
    /// Kernel event read -> policy decisions applied (decisions that asked for something).
    decided: Buckets,
    /// Kernel event read -> send of each command it caused.
    sent: Buckets,
    /// SUBFLOW_CREATE: send -> the kernel's answer read.
    create: Buckets,
    /// Event-loop thread: ns runnable but waiting for a CPU, and timeslices run.
    rq_wait_ns: f64,
    slices: f64,
}

/// The cumulative buckets of histogram `name` whose labels contain `labels` (e.g.
/// `command="subflow_create"`; empty for an unlabelled one).
fn buckets(body: &str, name: &str, labels: &str) -> Buckets {
    let prefix = format!("{name}_bucket{{");
    body.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter(|l| l.contains(labels))
        .filter_map(|l| {
            let (lbl, v) = l.rsplit_once(' ')?;
            let le = lbl.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, v.parse().ok()?))
        })
        .collect()
}

impl Stages {
    fn read(pmd: &Daemon, ns: &Netns) -> Stages {
        let body = integration::metrics::scrape(ns, METRICS_PORT);
        let sched = pmd
            .pid()
            .and_then(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/schedstat")).ok()
            })
            .unwrap_or_default();
        let f: Vec<f64> = sched
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        Stages {
            decided: buckets(&body, "mptcp_pmd_event_to_decision_seconds", ""),
            sent: buckets(&body, "mptcp_pmd_event_to_command_seconds", ""),
            create: buckets(
                &body,
                "mptcp_pmd_command_seconds",
                "command=\"subflow_create\"",
            ),
            rq_wait_ns: f.get(1).copied().unwrap_or(0.0),
            slices: f.get(2).copied().unwrap_or(0.0),
        }
    }

    /// What was counted after `before`.
    fn since(&self, before: &Stages) -> Stages {
        let d = |a: &Buckets, b: &Buckets| -> Buckets {
            a.iter()
                .map(|&(le, n)| {
                    let was = b.iter().find(|x| x.0 == le).map_or(0.0, |x| x.1);
                    (le, n - was)
                })
                .collect()
        };
        Stages {
            decided: d(&self.decided, &before.decided),
            sent: d(&self.sent, &before.sent),
            create: d(&self.create, &before.create),
            rq_wait_ns: self.rq_wait_ns - before.rq_wait_ns,
            slices: self.slices - before.slices,
        }
    }

    /// Sum of two readings' differences (rounds added up).
    fn add(&mut self, o: &Stages) {
        let a = |x: &mut Buckets, y: &Buckets| {
            if x.is_empty() {
                *x = y.clone();
            } else {
                for (i, v) in x.iter_mut().enumerate() {
                    v.1 += y.get(i).map_or(0.0, |b| b.1);
                }
            }
        };
        a(&mut self.decided, &o.decided);
        a(&mut self.sent, &o.sent);
        a(&mut self.create, &o.create);
        self.rq_wait_ns += o.rq_wait_ns;
        self.slices += o.slices;
    }
}

/// Quantile `q` of cumulative buckets in ms, interpolated linearly inside its bucket (the
/// buckets are 1.25 x apart, so within 25 %).
fn bucket_ms(b: &[(f64, f64)], q: f64) -> f64 {
    let total = b.last().map_or(0.0, |x| x.1);
    if total <= 0.0 {
        return f64::NAN;
    }
    let want = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, n) in b {
        if n >= want {
            if !le.is_finite() {
                return prev.0 * 1e3;
            }
            let frac = if n > prev.1 {
                (want - prev.1) / (n - prev.1)
            } else {
                1.0
            };
            return (prev.0 + (le - prev.0) * frac) * 1e3;
        }
        prev = (le, n);
    }
    f64::NAN
}

/// One table row of the breakdown: `label`, how many commands, p50/p99 of each stage, the
/// event-loop thread's mean wait for a CPU per timeslice.
fn stages_row(label: &str, s: &Stages) -> String {
    let n = s.sent.last().map_or(0.0, |x| x.1);
    format!(
        "| {label} | {n:.0} | {:.3} / {:.3} | {:.3} / {:.3} | {:.3} / {:.3} | {:.3} ({:.0} timeslices) |",
        bucket_ms(&s.decided, 0.5),
        bucket_ms(&s.decided, 0.99),
        bucket_ms(&s.sent, 0.5),
        bucket_ms(&s.sent, 0.99),
        bucket_ms(&s.create, 0.5),
        bucket_ms(&s.create, 0.99),
        if s.slices > 0.0 { s.rq_wait_ns / s.slices / 1e6 } else { f64::NAN },
        s.slices
    )
}

/// The header of [`stages_row`]'s table.
const STAGES_HEAD: &str = "| daemon | commands | event read -> decided, p50 / p99 ms | event read -> command sent, p50 / p99 ms | SUBFLOW_CREATE send -> answer, p50 / p99 ms | event loop: mean wait for a CPU per timeslice, ms |\n|---|---:|---:|---:|---:|---:|";

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
    /// Server-side ESTABLISHED, by the peer's (client's) port.
    accepted: HashMap<u16, Instant>,
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
                                PmEvent::Established(c) => {
                                    st.accepted.insert(c.remote.port(), now);
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

    /// Wait until `found` finds something in the state, or `timeout` passes.
    fn wait<T>(&self, timeout: Duration, found: impl Fn(&TrackState) -> Option<T>) -> Option<T> {
        let end = Instant::now() + timeout;
        let mut st = self.st.lock().unwrap();
        loop {
            if let Some(v) = found(&st) {
                return Some(v);
            }
            let now = Instant::now();
            if now >= end {
                return None;
            }
            st = self.cv.wait_timeout(st, end - now).unwrap().0;
        }
    }

    /// Wait until the connection with local port `port` has `subs` joined subflows; returns
    /// (its ESTABLISHED, the `subs`-th SUB_ESTABLISHED).
    fn wait_sub(&self, port: u16, subs: usize, timeout: Duration) -> Option<(Instant, Instant)> {
        self.wait(timeout, |st| {
            let c = st.by_port.get(&port).and_then(|t| st.by_token.get(t))?;
            Some((c.established?, *c.subs.get(subs.checked_sub(1)?)?))
        })
    }

    /// Wait until the connection with local port `port` has `subs` joined subflows; returns
    /// ESTABLISHED -> last SUB_ESTABLISHED.
    fn wait_joins(&self, port: u16, subs: usize, timeout: Duration) -> Option<Duration> {
        self.wait_sub(port, subs, timeout)
            .map(|(est, last)| last.saturating_duration_since(est))
    }

    /// When this (server) namespace reported ESTABLISHED for the connection from peer port
    /// `peer_port`.
    fn wait_accepted(&self, peer_port: u16, timeout: Duration) -> Option<Instant> {
        self.wait(timeout, |st| st.accepted.get(&peer_port).copied())
    }

    fn forget(&self, port: u16) {
        let mut st = self.st.lock().unwrap();
        st.accepted.remove(&port);
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
    pmd: Option<Daemon>,
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
    let sink_bytes = counting_sink(&t.server);
    let tracker = Tracker::start(&t.client);
    let pmd = (mode == Mode::Pmd).then(|| start_pmd(&t.client, pmd_extra));
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

/// An MPTCP sink on `0.0.0.0:SINK_PORT` in `server` that counts the bytes it reads.
fn counting_sink(server: &Netns) -> Arc<AtomicU64> {
    let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), SINK_PORT);
    let sink_bytes = Arc::new(AtomicU64::new(0));
    let l = server.exec(move || mptcp::listen(any)).unwrap().unwrap();
    let sb = sink_bytes.clone();
    server
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
    sink_bytes
}

/// How the baseline bed is labelled in the tables.
const BASELINE_LABEL: &str = "mptcp-pmd baseline (BENCH_BASELINE_BIN)";

/// `BENCH_BASELINE_BIN=/path/to/mptcp-pmd`: one more mptcp-pmd bed running that binary (e.g. a
/// build of main), interleaved with the others, so that a change is measured before/after in
/// one run under the same load.
fn baseline_bed(links: usize, pmd_extra: &str) -> Option<Bed> {
    let bin = std::env::var_os("BENCH_BASELINE_BIN")?;
    let current = std::env::var_os("MPTCP_PMD_BIN");
    // Single-threaded here: the beds are built before any client thread starts.
    std::env::set_var("MPTCP_PMD_BIN", bin);
    let b = bed(Mode::Pmd, links, None, pmd_extra);
    match current {
        Some(c) => std::env::set_var("MPTCP_PMD_BIN", c),
        None => std::env::remove_var("MPTCP_PMD_BIN"),
    }
    Some(b)
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
        sorted(&self.samples)
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

// ------------------------------------------------------------------------------------------
// a. Join latency.

/// An MPTCP connection from `client` to `dst`, pinged (so it is fully established), and its
/// local port.
fn connect_pinged(client: &Netns, dst: SocketAddr) -> Option<(TcpStream, u16)> {
    let mut s = client
        .exec(move || mptcp::connect(dst, None))
        .unwrap()
        .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    mptcp::ping(&mut s, b"join").ok()?;
    let port = s.local_addr().ok()?.port();
    Some((s, port))
}

fn one_join(b: &Bed) -> Option<Duration> {
    let (s, port) = connect_pinged(&b.t.client, b.dst(ECHO_PORT))?;
    let r = b
        .tracker
        .wait_joins(port, b.links - 1, Duration::from_secs(5));
    drop(s);
    b.tracker.forget(port);
    r
}

/// CLOCK_MONOTONIC ns of an `Instant` (the clock the daemon's trace gauges use).
fn monotonic_ns(at: Instant) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now = Instant::now();
    let now_ns = ts.tv_sec * 1_000_000_000 + ts.tv_nsec;
    if at <= now {
        now_ns - (now - at).as_nanos() as i64
    } else {
        now_ns + (at - now).as_nanos() as i64
    }
}

/// One join seen from both sides, in CLOCK_MONOTONIC ns: the bench's ESTABLISHED and first
/// and last SUB_ESTABLISHED, and the daemon's trace of the commands that event caused.
#[derive(Debug, Clone, Copy)]
struct TracedJoin {
    est: i64,
    first_sub: i64,
    last_sub: i64,
    read: i64,
    decided: i64,
    first_sent: i64,
    last_sent: i64,
    last_answered: i64,
    /// Inside the daemon's send and answer calls for this event's commands, summed (ns).
    in_calls: i64,
    commands: i64,
}

/// The daemon's own time between its first send and its last (outside its send and answer
/// calls), in ns: first send .. last send, less every call but the last.
fn between_calls(t: &TracedJoin) -> i64 {
    let last_call = t.last_answered - t.last_sent;
    (t.last_sent - t.first_sent) - (t.in_calls - last_call)
}

/// A join as in [`one_join`], then the daemon's `last_event_trace` gauges, which describe this
/// connection's ESTABLISHED when nothing else happened meanwhile (checked: read after it).
fn traced_join(b: &Bed) -> Option<TracedJoin> {
    let (s, port) = connect_pinged(&b.t.client, b.dst(ECHO_PORT))?;
    let wait = Duration::from_secs(5);
    let last = b.tracker.wait_sub(port, b.links - 1, wait);
    let first = b.tracker.wait_sub(port, 1, wait);
    // The last create's answer comes after its SUB_ESTABLISHED: let the daemon finish.
    std::thread::sleep(Duration::from_millis(5));
    let body = integration::metrics::scrape(&b.t.client, METRICS_PORT);
    drop(s);
    b.tracker.forget(port);
    let ((est, last), (_, first)) = last.zip(first)?;
    let m = integration::metrics::samples(&body);
    let gauge = |name: &str| m.get(name).map(|v| *v as i64);
    let stage = |name: &str| {
        gauge(&format!(
            "mptcp_pmd_last_event_trace_monotonic_ns{{stage=\"{name}\"}}"
        ))
    };
    let t = TracedJoin {
        est: monotonic_ns(est),
        first_sub: monotonic_ns(first),
        last_sub: monotonic_ns(last),
        read: stage("event_read")?,
        decided: stage("decided")?,
        first_sent: stage("first_sent")?,
        last_sent: stage("last_sent")?,
        last_answered: stage("last_answered")?,
        in_calls: gauge("mptcp_pmd_last_event_trace_in_calls_ns")?,
        commands: gauge("mptcp_pmd_last_event_trace_commands")?,
    };
    // A trace older than this ESTABLISHED is another connection's.
    // A trace of another count of commands is not this join's.
    let links = i64::try_from(b.links).unwrap_or(i64::MAX);
    (t.read >= t.est && t.first_sent <= t.first_sub && t.commands == links - 1).then_some(t)
}

struct JoinRow {
    links: usize,
    /// What ran ("mptcp-pmd", "in-kernel PM", or the baseline build).
    label: String,
    lat: Lat,
    /// p50 of each interleaved batch, to show the spread between batches.
    batch_p50: Vec<f64>,
    /// The daemon's own timing of the measured batches (mptcp-pmd only).
    stages: Option<Stages>,
    /// Joins traced on both sides after the measured ones (mptcp-pmd only).
    traced: Vec<TracedJoin>,
}

/// Joins traced on both sides per link count.
const TRACED_JOINS: usize = 40;

fn bench_join(quick: bool, out: &mut Vec<JoinRow>) {
    let total = if quick { 40 } else { 200 };
    let batch = 20;
    for links in [2usize, 4] {
        let mut beds = vec![
            bed(Mode::Pmd, links, None, ""),
            bed(Mode::Kernel, links, None, ""),
        ];
        let mut labels = vec![
            Mode::Pmd.name().to_string(),
            Mode::Kernel.name().to_string(),
        ];
        if let Some(b) = baseline_bed(links, "") {
            beds.push(b);
            labels.push(BASELINE_LABEL.to_string());
        }
        let mut lats = vec![Lat::default(); beds.len()];
        let mut p50s: Vec<Vec<f64>> = vec![Vec::new(); beds.len()];
        // Warm-up (ARP/ND, first-connection costs), not measured.
        for b in &beds {
            let _ = one_join(b);
        }
        let before: Vec<Option<Stages>> = beds
            .iter()
            .map(|b| b.pmd.as_ref().map(|p| Stages::read(p, &b.t.client)))
            .collect();
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
        for ((((b, l), p), before), label) in
            beds.iter().zip(lats).zip(p50s).zip(before).zip(labels)
        {
            let stages = b
                .pmd
                .as_ref()
                .zip(before)
                .map(|(pmd, was)| Stages::read(pmd, &b.t.client).since(&was));
            // Traced joins, after the measured ones (each is followed by a scrape).
            let traced = if label == Mode::Pmd.name() {
                (0..TRACED_JOINS).filter_map(|_| traced_join(b)).collect()
            } else {
                Vec::new()
            };
            out.push(JoinRow {
                links,
                label,
                lat: l,
                batch_p50: p,
                stages,
                traced,
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
    /// The daemon's own timing, all rounds (mptcp-pmd only).
    stages: Option<Stages>,
    /// p50 of event read -> command sent in each round (mptcp-pmd only).
    round_sent_p50: Vec<f64>,
}

/// `total` short connections from `clients` threads: connect, ping, wait (<= 2 s) for the
/// mesh, close.
fn churn(b: &Bed, clients: usize, total: usize, stop: Option<Arc<AtomicBool>>) -> ChurnRow {
    let next = Arc::new(AtomicUsize::new(0));
    let res = Arc::new(Mutex::new(ChurnRow::default()));
    let cpu0 = b.pmd.as_ref().map(Daemon::cpu_s).unwrap_or(0.0);
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
    r.cpu_s = b.pmd.as_ref().map(Daemon::cpu_s).unwrap_or(0.0) - cpu0;
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
    let mut beds = vec![
        bed(Mode::Pmd, 2, None, ""),
        bed(Mode::Pmd, 2, None, rt),
        bed(Mode::Kernel, 2, None, ""),
    ];
    let mut labels: Vec<String> = labels.into_iter().map(String::from).collect();
    if let Some(b) = baseline_bed(2, "") {
        beds.insert(1, b);
        labels.insert(1, format!("{BASELINE_LABEL}, default config"));
    }
    // BENCH_CHURN_CONFIG: one more mptcp-pmd bed with that YAML added (an A/B of a setting).
    if let Ok(extra) = std::env::var("BENCH_CHURN_CONFIG") {
        let at = beds.len() - 1;
        beds.insert(at, bed(Mode::Pmd, 2, None, &extra));
        labels.insert(
            at,
            format!("mptcp-pmd, {}", extra.trim().replace('\n', " ")),
        );
    }
    let mut rows: Vec<ChurnRow> = Vec::new();
    let mut base = vec![(0usize, 0usize); beds.len()];
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
            let was = b.pmd.as_ref().map(|p| Stages::read(p, &b.t.client));
            let mut r = churn(b, 32, total / CHURN_ROUNDS, None);
            let st = b
                .pmd
                .as_ref()
                .zip(was)
                .map(|(p, was)| Stages::read(p, &b.t.client).since(&was))
                .filter(|st| !st.sent.is_empty());
            let p50 = pct(&r.lat.sorted(), 0.5);
            match rows.get_mut(i) {
                None => {
                    r.round_p50.push(p50);
                    r.label = labels[i].to_string();
                    if let Some(st) = st {
                        r.round_sent_p50.push(bucket_ms(&st.sent, 0.5));
                        r.stages = Some(st);
                    }
                    rows.push(r)
                }
                Some(acc) => {
                    acc.round_p50.push(p50);
                    if let Some(st) = st {
                        acc.round_sent_p50.push(bucket_ms(&st.sent, 0.5));
                        acc.stages.get_or_insert_with(Stages::default).add(&st);
                    }
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
    /// Sampling rounds as the daemon runs them with rtt-based: each round's polls, ms.
    rounds_ms: Vec<Vec<f64>>,
    /// The daemon itself on rtt-based: its polls over 5 s (count, mean ms, how many took over
    /// 25.6 ms by its histogram), RSS and CPU meanwhile.
    rtt_polls: (f64, f64, f64),
    rtt_rss_kb: u64,
    rtt_hwm_kb: u64,
    rtt_cpu_pct: f64,
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

/// One sampling round as the daemon's poller runs it when a policy reads samples (rtt-based):
/// the connections, then the subflows in windows of `WINDOW_SUBFLOWS` cut from the last
/// dump's pairs; each poll's time in ms (connections first).
fn sampling_round(ns: &Netns) -> Vec<f64> {
    ns.exec(|| {
        let mut d = DiagSocket::open().expect("sock_diag");
        let mut pairs: Vec<PortPair> = d
            .subflows()
            .expect("subflows")
            .items
            .iter()
            .map(|s| (s.key.local.port(), s.key.remote.port()))
            .collect();
        let windows = port_windows(&mut pairs, WINDOW_SUBFLOWS);
        let mut out = Vec::new();
        let t0 = Instant::now();
        let (_, v6) = d.mptcp_connections_v6().expect("connections");
        out.push(ms(t0.elapsed()));
        if windows.len() <= 1 {
            // One window: the daemon takes a whole snapshot instead (connections included).
            let t0 = Instant::now();
            std::hint::black_box(d.snapshot().expect("snapshot").conns.len());
            return vec![ms(t0.elapsed())];
        }
        for w in &windows {
            let t0 = Instant::now();
            std::hint::black_box(d.subflows_in(w, v6).expect("window").items.len());
            out.push(ms(t0.elapsed()));
        }
        out
    })
    .unwrap()
}

/// The daemon's sock_diag polls so far: (count, sum s, polls of at most 25.6 ms) from its
/// `sock_diag_poll_seconds` histogram.
fn daemon_polls(ns: &Netns) -> (f64, f64, f64) {
    let body = integration::metrics::scrape(ns, METRICS_PORT);
    let m = integration::metrics::samples(&body);
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    (
        get("mptcp_pmd_sock_diag_poll_seconds_count"),
        get("mptcp_pmd_sock_diag_poll_seconds_sum"),
        get("mptcp_pmd_sock_diag_poll_seconds_bucket{le=\"0.0256\"}"),
    )
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
    smaps_summary(p.pid().unwrap_or(0));
    // The daemon's own cost with n connections open and idle (its sock_diag polling).
    let c0 = p.cpu_s();
    std::thread::sleep(Duration::from_secs(5));
    row.busy_cpu_pct = (p.cpu_s() - c0) / 5.0 * 100.0;
    for _ in 0..3 {
        let r = sampling_round(&b.t.client);
        eprintln!("scale: sampling round polls (ms): {r:.1?}");
        row.rounds_ms.push(r);
    }
    // The daemon itself switched to rtt-based (SIGHUP): its own polls, RSS and CPU.
    std::fs::write(p.config_path(), pmd_config("rtt-based", "")).unwrap();
    p.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_secs(3));
    let (polls0, c0) = (daemon_polls(&b.t.client), p.cpu_s());
    std::thread::sleep(Duration::from_secs(5));
    let polls1 = daemon_polls(&b.t.client);
    row.rtt_cpu_pct = (p.cpu_s() - c0) / 5.0 * 100.0;
    row.rtt_rss_kb = p.status_kb("VmRSS");
    let n_polls = polls1.0 - polls0.0;
    row.rtt_polls = (
        n_polls,
        (polls1.1 - polls0.1) / n_polls.max(1.0) * 1e3,
        n_polls - (polls1.2 - polls0.2),
    );
    row.rtt_hwm_kb = p.status_kb("VmHWM");
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
    let (dst, src) = (b.dst(SINK_PORT), b.t.client_addr(0));
    goodput_to(&b.t.client, dst, src, &b.sink_bytes, plain_tcp, secs)
}

/// Bulk from `src` in `client` to `dst` (MPTCP, or plain TCP), counted by `sink` after a 2 s
/// warm-up: Mbit/s over `secs`.
fn goodput_to(
    client: &Netns,
    dst: SocketAddr,
    src: std::net::IpAddr,
    sink: &AtomicU64,
    plain_tcp: bool,
    secs: u64,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let h = client
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
    let (c0, t0) = (sink.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, t1) = (sink.load(Ordering::Relaxed), Instant::now());
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
// f. Server side: announce.

/// A server with two links announcing its second address: mptcp-pmd `announce` on the
/// userspace PM, or the in-kernel PM with a `signal` endpoint. The client is the in-kernel PM
/// with no endpoint (it joins the announced address from its initial one).
struct ServerBed {
    mode: Mode,
    client_tracker: Arc<Tracker>,
    server_tracker: Arc<Tracker>,
    sink_bytes: Arc<AtomicU64>,
    _pmd: Option<Daemon>,
    t: Topology,
}

fn server_bed(mode: Mode, shaping: Option<Tbf>) -> ServerBed {
    let t = Topology::build(TopoOpts {
        client_links: 1,
        server_links: 2,
        client_pm: Pm::Kernel,
        server_pm: if mode == Mode::Pmd {
            Pm::Userspace
        } else {
            Pm::Kernel
        },
        ..Default::default()
    })
    .expect("topology");
    for ns in [&t.client, &t.server] {
        ns.sysctl("net.ipv4.ip_local_port_range", "10000 65000")
            .unwrap();
        ns.sysctl("net.ipv4.tcp_tw_reuse", "1").unwrap();
    }
    // The limits of issue 10's tests.
    t.client.mptcp_limits(2, 2).unwrap();
    if mode == Mode::Kernel {
        t.server_signal_endpoint(1).unwrap();
    }
    if let Some(tbf) = shaping {
        for j in 0..2 {
            shape_server_link(&t, j, tbf);
        }
    }
    let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), ECHO_PORT);
    let l = t.server.exec(move || mptcp::listen(any)).unwrap().unwrap();
    t.server.exec_bg(move || mptcp::echo_server(l)).unwrap();
    let sink_bytes = counting_sink(&t.server);
    let client_tracker = Tracker::start(&t.client);
    let server_tracker = Tracker::start(&t.server);
    let pmd = (mode == Mode::Pmd).then(|| start_pmd_with(&t.server, "announce", ""));
    ServerBed {
        mode,
        client_tracker,
        server_tracker,
        sink_bytes,
        _pmd: pmd,
        t,
    }
}

/// tbf on server link `j`, both directions (the server's end and the router's).
fn shape_server_link(t: &Topology, j: usize, tbf: Tbf) {
    let rate = format!("{}kbit", tbf.rate_kbit);
    let burst = tbf.burst_bytes.to_string();
    let lat = format!("{}ms", tbf.latency_ms);
    for (ns, dev) in [(&t.server, format!("s{j}")), (&t.router, format!("rs{j}"))] {
        ns.run(&[
            "tc", "qdisc", "replace", "dev", &dev, "root", "tbf", "rate", &rate, "burst", &burst,
            "latency", &lat,
        ])
        .unwrap();
    }
}

/// One connection: (server ESTABLISHED -> client SUB_ESTABLISHED towards the announced
/// address, client connect() -> that SUB_ESTABLISHED), or None if it did not join in 5 s.
fn one_announce(b: &ServerBed) -> Option<(Duration, Duration)> {
    let dst = SocketAddr::new(b.t.server_addr(0), ECHO_PORT);
    let t0 = Instant::now();
    let (s, port) = connect_pinged(&b.t.client, dst)?;
    let joined = b
        .client_tracker
        .wait_sub(port, 1, Duration::from_secs(5))
        .map(|(_, sub)| sub);
    let accepted = b.server_tracker.wait_accepted(port, Duration::from_secs(1));
    drop(s);
    b.client_tracker.forget(port);
    b.server_tracker.forget(port);
    let (joined, accepted) = (joined?, accepted?);
    Some((
        joined.saturating_duration_since(accepted),
        joined.saturating_duration_since(t0),
    ))
}

struct ServerLatRow {
    mode: Mode,
    /// Server ESTABLISHED -> client SUB_ESTABLISHED, ms.
    lat: Lat,
    /// Client connect() -> client SUB_ESTABLISHED, ms.
    connect: Vec<f64>,
    batch_p50: Vec<f64>,
}

struct ServerRows {
    lat: Vec<ServerLatRow>,
    tput: Vec<TputRow>,
}

fn bench_server(quick: bool) -> ServerRows {
    let (total, batch) = if quick { (40, 10) } else { (200, 20) };
    let beds = [server_bed(Mode::Pmd, None), server_bed(Mode::Kernel, None)];
    let mut rows: Vec<ServerLatRow> = beds
        .iter()
        .map(|b| ServerLatRow {
            mode: b.mode,
            lat: Lat::default(),
            connect: Vec::new(),
            batch_p50: Vec::new(),
        })
        .collect();
    for b in &beds {
        let _ = one_announce(b); // warm-up (ARP, first-connection costs)
    }
    for _ in 0..total / batch {
        for (b, r) in beds.iter().zip(rows.iter_mut()) {
            let mut this = Lat::default();
            for _ in 0..batch {
                match one_announce(b) {
                    Some((lat, connect)) => {
                        this.samples.push(ms(lat));
                        r.connect.push(ms(connect));
                    }
                    None => this.timeouts += 1,
                }
            }
            r.batch_p50.push(pct(&this.sorted(), 0.5));
            r.lat.samples.extend(this.samples);
            r.lat.timeouts += this.timeouts;
        }
    }
    drop(beds);
    eprintln!("server: announce latency done");

    let tbf = Tbf {
        rate_kbit: 50_000,
        burst_bytes: 64 * 1024,
        latency_ms: 20,
    };
    let beds = [
        server_bed(Mode::Pmd, Some(tbf)),
        server_bed(Mode::Kernel, Some(tbf)),
    ];
    let (rounds, secs) = if quick { (1, 4) } else { (3, 10) };
    let mut tput = vec![
        TputRow {
            what: "mptcp-pmd announce (2 x 50 mbit server links)",
            mbit: vec![],
        },
        TputRow {
            what: "in-kernel PM, signal endpoint (2 x 50 mbit)",
            mbit: vec![],
        },
        TputRow {
            what: "single-path TCP (server link 0, 50 mbit)",
            mbit: vec![],
        },
    ];
    let run = |b: &ServerBed, plain: bool| {
        let dst = SocketAddr::new(b.t.server_addr(0), SINK_PORT);
        goodput_to(
            &b.t.client,
            dst,
            b.t.client_addr(0),
            &b.sink_bytes,
            plain,
            secs,
        )
    };
    for _ in 0..rounds {
        tput[0].mbit.push(run(&beds[0], false));
        tput[1].mbit.push(run(&beds[1], false));
        tput[2].mbit.push(run(&beds[1], true));
    }
    eprintln!("server: throughput done");
    ServerRows { lat: rows, tput }
}

fn render_server(r: &ServerRows) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## f. Server side (announce)\n\nServer with two links, announcing its second address \
         to every connection: mptcp-pmd `policy: announce` (server namespace on the userspace \
         PM, release build, default config) against the in-kernel PM with a `signal` endpoint \
         for that address. The client is the in-kernel PM with `add_addr_accepted 2 subflows \
         2` and no endpoint (it joins the announced address from its initial one). Latency: the \
         server's ESTABLISHED event -> the client's SUB_ESTABLISHED towards the announced \
         address (both namespaces' `mptcp_pm_events` on one clock), sequential connections, \
         each pinged then closed, interleaved batches.\n"
    );
    let _ = writeln!(
        md,
        "| server PM | connections | p50 ms | p90 ms | max ms | batch p50s ms | not joined in 5 s | connect -> join p50 ms |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|---:|---:|");
    for row in &r.lat {
        let s = row.lat.sorted();
        let batches: Vec<String> = row.batch_p50.iter().map(|v| format!("{v:.2}")).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {:.3} | {:.3} | {:.3} | {} | {} | {:.3} |",
            if row.mode == Mode::Pmd {
                "mptcp-pmd announce"
            } else {
                "in-kernel PM, signal endpoint"
            },
            s.len() + row.lat.timeouts,
            pct(&s, 0.5),
            pct(&s, 0.9),
            s.last().copied().unwrap_or(f64::NAN),
            batches.join(", "),
            row.lat.timeouts,
            pct(&sorted(&row.connect), 0.5),
        );
    }
    let p50 = |i: usize| pct(&r.lat[i].lat.sorted(), 0.5);
    let c50 = |i: usize| pct(&sorted(&r.lat[i].connect), 0.5);
    let ratio = p50(0) / p50(1);
    let _ = writeln!(md, "\n| target | value | verdict |\n|---|---:|---|");
    let _ = writeln!(
        md,
        "| announce p50 <= 1.25 x in-kernel PM (server ESTABLISHED -> join) | {ratio:.2} x | {} |",
        verdict(ratio <= 1.25)
    );
    let _ = writeln!(
        md,
        "| end to end, connect -> join p50 (for reference) | {:.2} x | |",
        c50(0) / c50(1)
    );
    let _ = writeln!(
        md,
        "\nThroughput: both server links shaped with tbf 50 mbit (burst 64 KiB, latency 20 ms) in \
         both directions, the client's link unshaped; bulk client -> server towards the first \
         server address, goodput counted by the server after a 2 s warm-up.\n"
    );
    md.push_str(&tput_tables(&r.tput));
    md
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
        let tracked = tracked(p, &b.t.client);
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

// ------------------------------------------------------------------------------------------
// The report: one section per benchmark.

fn render_join(joins: &[JoinRow]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## a. Join latency\n\nClient ESTABLISHED event -> last SUB_ESTABLISHED event (the client namespace's `mptcp_pm_events`, timestamped on receipt), sequential connections, each pinged then closed.\n");
    let _ = writeln!(
        md,
        "| links | path manager | connections | p50 ms | p90 ms | max ms | not meshed in 5 s |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|");
    for r in joins {
        let s = r.lat.sorted();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {} |",
            r.links,
            r.label,
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
    for r in joins {
        let v: Vec<String> = r.batch_p50.iter().map(|x| format!("{x:.3}")).collect();
        let _ = writeln!(md, "- {} links, {}: {}", r.links, r.label, v.join(", "));
    }
    let _ = writeln!(md, "\nWhere mptcp-pmd's time goes, from its own timestamps (metrics histograms over the measured connections). The rest of a join is the daemon's wake-up before it reads the event, and the part of the join's handshake that the kernel runs inside the SUBFLOW_CREATE send before it reports SUB_ESTABLISHED:\n");
    let _ = writeln!(md, "{STAGES_HEAD}");
    for r in joins {
        if let Some(st) = r.stages.as_ref().filter(|st| !st.sent.is_empty()) {
            let _ = writeln!(
                md,
                "{}",
                stages_row(&format!("{}, {} links", r.label, r.links), st)
            );
        }
    }
    let _ = writeln!(md, "\nOne join, timestamped on both sides ({TRACED_JOINS} joins per link count after the measured ones, each followed by a read of the daemon's `last_event_trace` gauges; CLOCK_MONOTONIC in both processes), medians in ms. *Wake-up*: ESTABLISHED reaching the bench's listener until the daemon has read it; *user space*: from there to the first SUBFLOW_CREATE's send; *kernel*: from that send to SUB_ESTABLISHED, all inside the daemon's send system calls (the kernel runs the join's handshake there); *first send -> last send*: the further SUBFLOW_CREATEs, one after the other's answer, and of that the daemon's own time between its calls (the rest is inside the sends and reads of the answers):\n");
    let _ = writeln!(md, "| links | joins | wake-up | user space: read -> first send (of it read -> decided) | kernel: first send -> its SUB_ESTABLISHED | first send -> last send (of it user space between the calls) | kernel: last send -> last SUB_ESTABLISHED | total | in-kernel PM total (p50 above) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in joins.iter().filter(|r| !r.traced.is_empty()) {
        let med = |f: &dyn Fn(&TracedJoin) -> i64| {
            let v: Vec<f64> = r.traced.iter().map(|t| f(t) as f64 / 1e6).collect();
            pct(&sorted(&v), 0.5)
        };
        let kernel = joins
            .iter()
            .find(|k| k.links == r.links && k.label == Mode::Kernel.name())
            .map_or(f64::NAN, |k| pct(&k.lat.sorted(), 0.5));
        let _ = writeln!(
            md,
            "| {} | {} | {:.3} | {:.3} ({:.3}) | {:.3} | {:.3} ({:.3}) | {:.3} | {:.3} | {kernel:.3} |",
            r.links,
            r.traced.len(),
            med(&|t| t.read - t.est),
            med(&|t| t.first_sent - t.read),
            med(&|t| t.decided - t.read),
            med(&|t| t.first_sub - t.first_sent),
            med(&|t| t.last_sent - t.first_sent),
            med(&|t| between_calls(t)),
            med(&|t| t.last_sub - t.last_sent),
            med(&|t| t.last_sub - t.est),
        );
    }
    let _ = writeln!(
        md,
        "\n| links | p50 mptcp-pmd / in-kernel | target | verdict |\n|---:|---:|---:|---|"
    );
    for links in [2usize, 4] {
        let p = |label: &str| {
            joins
                .iter()
                .find(|r| r.links == links && r.label == label)
                .map(|r| pct(&r.lat.sorted(), 0.5))
        };
        let kernel = p(Mode::Kernel.name());
        if let Some((b, k)) = p(BASELINE_LABEL).zip(kernel) {
            let _ = writeln!(md, "| {links} ({BASELINE_LABEL}) | {:.2} x | | |", b / k);
        }
        if let Some((a, k)) = p(Mode::Pmd.name()).zip(kernel) {
            let ratio = a / k;
            let target = if links == 2 { 1.15 } else { 1.25 };
            let _ = writeln!(
                md,
                "| {links} | {ratio:.2} x | <= {target:.2} x | {} |",
                verdict(ratio <= target)
            );
        }
    }
    let _ = writeln!(md);
    md
}

fn render_churn(churn_rows: &[ChurnRow]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## b. Churn\n\nShort connections from 32 concurrent clients (2 links): connect, one echo, wait up to 2 s for the join, close.\n");
    let _ = writeln!(md, "| path manager | connections | fully meshed | not meshed in 2 s | failed | join p50 ms | join p99 ms | conn/s | daemon CPU us/conn (of it user space) | overruns | resyncs | bench listener overruns |");
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in churn_rows {
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
    for r in churn_rows {
        let v: Vec<String> = r.round_p50.iter().map(|x| format!("{x:.3}")).collect();
        let _ = writeln!(md, "- {}: {}", r.label, v.join(", "));
    }
    let _ = writeln!(
        md,
        "\nWhere mptcp-pmd's time goes (as in a., all rounds):\n"
    );
    let _ = writeln!(md, "{STAGES_HEAD}");
    for r in churn_rows {
        if let Some(st) = &r.stages {
            let _ = writeln!(md, "{}", stages_row(&r.label, st));
        }
    }
    let _ = writeln!(
        md,
        "\nEvent read -> command sent, p50 of each round, in run order:\n"
    );
    for r in churn_rows.iter().filter(|r| !r.round_sent_p50.is_empty()) {
        let v: Vec<String> = r.round_sent_p50.iter().map(|x| format!("{x:.3}")).collect();
        let _ = writeln!(md, "- {}: {}", r.label, v.join(", "));
    }
    let in_kernel = churn_rows.iter().find(|r| r.mode == Some(Mode::Kernel));
    let kernel = in_kernel.map(|r| pct(&r.lat.sorted(), 0.5));
    let kernel99 = in_kernel.map(|r| pct(&r.lat.sorted(), 0.99));
    let ok = churn_rows.iter().all(|r| r.meshed == r.conns);
    let _ = writeln!(md, "\n| target | value | verdict |\n|---|---:|---|");
    let _ = writeln!(
        md,
        "| every connection fully meshed | {} | {} |",
        if ok { "yes" } else { "no" },
        verdict(ok)
    );
    for r in churn_rows.iter().filter(|r| r.mode == Some(Mode::Pmd)) {
        for (name, q, k) in [("p50", 0.5, kernel), ("p99", 0.99, kernel99)] {
            if let Some(k) = k {
                let ratio = pct(&r.lat.sorted(), q) / k;
                let _ = writeln!(
                    md,
                    "| join {name} {} <= 2 x in-kernel | {ratio:.2} x | {} |",
                    r.label,
                    verdict(ratio <= 2.0)
                );
            }
        }
    }
    let _ = writeln!(md);
    md
}

fn render_scale(s: &ScaleRow) -> String {
    let mut md = String::new();
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
    let slowest: Vec<f64> = sorted(
        &s.rounds_ms
            .iter()
            .map(|r| r.iter().copied().fold(0.0, f64::max))
            .collect::<Vec<_>>(),
    );
    let totals: Vec<f64> = sorted(
        &s.rounds_ms
            .iter()
            .map(|r| r.iter().sum())
            .collect::<Vec<_>>(),
    );
    let polls = s.rounds_ms.first().map_or(0, Vec::len);
    let worst = pct(&slowest, 0.5);
    let _ = writeln!(md, "| one poll with rtt-based: slowest poll of a sampling round ({polls} polls: the connections, then {} subflow windows of <= {WINDOW_SUBFLOWS}), median of 3 rounds | {worst:.1} ms (rounds {}) | <= 25 ms | {} |", polls.saturating_sub(1), slowest.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(", "), verdict(worst <= 25.0));
    let _ = writeln!(md, "| one sampling round (every subflow once, spread over the period), all its polls, median of 3 | {:.1} ms of polls | | |", pct(&totals, 0.5));
    let (n_polls, mean_ms, over) = s.rtt_polls;
    let _ = writeln!(md, "| the daemon itself on rtt-based (SIGHUP): its polls over 5 s, their mean, how many took over 25.6 ms (its histogram) | {n_polls:.0} polls, mean {mean_ms:.1} ms, {over:.0} over | | |");
    let _ = writeln!(
        md,
        "| daemon RSS and CPU on rtt-based, {} tracked | {:.1} MiB (peak {:.1}), {:.1} % | | |",
        s.conns,
        s.rtt_rss_kb as f64 / 1024.0,
        s.rtt_hwm_kb as f64 / 1024.0,
        s.rtt_cpu_pct,
    );
    let _ = writeln!(md, "| one full snapshot (MPTCP dumps, then every subflow at once: adoption, resync, status), median of 7 | {:.1} ms (min {:.1}, max {:.1}) | | |", poll, s.poll_ms.first().unwrap_or(&f64::NAN), s.poll_ms.last().unwrap_or(&f64::NAN));
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
    let _ = writeln!(
        md,
        "| context switches over 5 s idle, no connections | {} (CPU {:.2} s) | 0 periodic | {} |",
        s.idle_switches,
        s.idle_cpu_s,
        verdict(s.idle_switches <= 2)
    );
    let _ = writeln!(md);
    md
}

fn render_tput(tput: &[TputRow]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## d. Throughput\n\nTwo client links shaped with tbf 50 mbit (burst 64 KiB, latency 20 ms) in both directions; bulk client -> server, goodput counted by the server after a 2 s warm-up.\n");
    md.push_str(&tput_tables(tput));
    md
}

/// The runs of `[mptcp-pmd, in-kernel PM, single-path TCP]` and the targets they meet.
fn tput_tables(tput: &[TputRow]) -> String {
    let mut md = String::new();
    let pmd = mean(&tput[0].mbit);
    let ker = mean(&tput[1].mbit);
    let tcp = mean(&tput[2].mbit);
    let _ = writeln!(
        md,
        "| setup | runs (Mbit/s) | mean Mbit/s |\n|---|---|---:|"
    );
    for r in tput {
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
    md
}

// ------------------------------------------------------------------------------------------
// e. Start-up and idle cost.

/// Cold starts measured, each path manager.
const STARTUP_RUNS: usize = 20;
/// Connections that come and go before the second RSS reading.
const IDLE_CHURN: usize = 1000;
/// The static targets `packaging/build-static.sh --all` builds.
const STATIC_TARGETS: [&str; 3] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "armv7-unknown-linux-musleabihf",
];

#[derive(Default)]
struct StartupRow {
    /// exec -> the `started` log line, ms.
    started_ms: Vec<f64>,
    /// exec -> READY=1 on the NOTIFY_SOCKET, ms.
    ready_ms: Vec<f64>,
    /// exec of the first `ip mptcp endpoint add` -> exit of the second, ms.
    kernel_ms: Vec<f64>,
    /// Daemon runs that did not reach both within 10 s.
    failed: usize,
    idle_rss_kb: u64,
    churned: usize,
    churn_meshed: usize,
    after_rss_kb: u64,
    after_hwm_kb: u64,
    /// (what, path, size in bytes if the file exists).
    sizes: Vec<(String, PathBuf, Option<u64>)>,
}

fn bench_startup() -> StartupRow {
    let mut row = StartupRow::default();
    // target/<profile>/mptcp-pm-bench -> target/
    let target_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"));
    for t in STATIC_TARGETS {
        let p = target_dir.join(t).join("release").join("mptcp-pmd");
        let size = std::fs::metadata(&p).ok().map(|m| m.len());
        row.sizes.push((t.to_string(), p, size));
    }
    let host = daemon_bin();
    let size = std::fs::metadata(&host).ok().map(|m| m.len());
    row.sizes
        .push(("the daemon this run started".into(), host, size));

    // Cold start: a fresh process each time, started with setns (no `ip netns exec` in the
    // way) in a namespace already on the userspace PM, its two links' addresses to adopt;
    // interleaved with the in-kernel PM's equivalent, two `ip mptcp endpoint add`.
    let topo = |pm| {
        Topology::build(TopoOpts {
            client_links: 2,
            server_links: 1,
            client_pm: pm,
            server_pm: Pm::Kernel,
            shaping: vec![],
        })
        .expect("topology")
    };
    let (upm, kpm) = (topo(Pm::Userspace), topo(Pm::Kernel));
    let opts = DaemonOpts {
        // A wrapper tool would be timed too: cold starts are the daemon's alone.
        wrapper: Vec::new(),
        direct: true,
        notify: true,
        stamp_lines: true,
        ..pmd_opts()
    };
    let endpoints: Vec<(String, String)> = (0..2)
        .map(|i| (kpm.client_addr(i).to_string(), kpm.client_if(i)))
        .collect();
    for _ in 0..STARTUP_RUNS {
        let d = Daemon::spawn(&upm.client, &pmd_config("fullmesh", ""), opts.clone());
        let limit = Duration::from_secs(10);
        match (d.line_after("started", limit), d.ready_after(limit)) {
            (Some(s), Some(r)) => {
                row.started_ms.push(ms(s));
                row.ready_ms.push(ms(r));
            }
            _ => {
                row.failed += 1;
                eprintln!("startup: a daemon did not start within 10 s:\n{}", d.log());
            }
        }
        drop(d);
        let t0 = Instant::now();
        for (addr, dev) in &endpoints {
            let st = setns_command(&kpm.client, "ip")
                .expect("open the namespace")
                .args(["mptcp", "endpoint", "add", addr, "dev", dev, "subflow"])
                .stdin(Stdio::null())
                .status()
                .expect("run ip");
            assert!(st.success(), "ip mptcp endpoint add {addr} dev {dev}: {st}");
        }
        row.kernel_ms.push(ms(t0.elapsed()));
        kpm.client
            .run(&["ip", "mptcp", "endpoint", "flush"])
            .expect("endpoint flush");
    }
    drop((upm, kpm));
    eprintln!("startup: cold starts done");

    // Idle memory: a daemon with nothing to do, then after connections came and went.
    let b = bed(Mode::Pmd, 2, None, "");
    let p = b.pmd.as_ref().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    row.idle_rss_kb = p.status_kb("VmRSS");
    let r = churn(&b, 32, IDLE_CHURN, None);
    row.churned = r.conns;
    row.churn_meshed = r.meshed;
    wait_for(Duration::from_secs(60), || {
        (count_meshed(&b.t.client, 2).0 == 0).then_some(())
    });
    // As in the scale test: let the daemon see the closes and its poller stop.
    std::thread::sleep(Duration::from_secs(4));
    row.after_rss_kb = p.status_kb("VmRSS");
    row.after_hwm_kb = p.status_kb("VmHWM");
    eprintln!("startup: idle memory done");
    row
}

fn mb(bytes: f64) -> f64 {
    bytes / 1e6
}

fn render_startup(s: &StartupRow) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## e. Start-up and idle cost (mptcp-pmd)\n\nCold start: {STARTUP_RUNS} runs, each a new \
         daemon process (default config, fullmesh) started with `setns` + `exec` in a namespace \
         on the userspace PM with two links; the bench timestamps its `started` log line (from \
         the daemon's stderr pipe) and `READY=1` (on a `NOTIFY_SOCKET` it listens on) on \
         receipt. Each run is followed by the in-kernel PM's equivalent in a namespace of its \
         own: two `ip mptcp endpoint add ADDR dev IF subflow`, exec of the first to exit of the \
         second. The page cache is warm (the binary was run before).\n"
    );
    let _ = writeln!(
        md,
        "| metric | median ms | min | p90 | max | target | verdict |\n|---|---:|---:|---:|---:|---:|---|"
    );
    let rows: [(&str, &[f64], bool); 3] = [
        ("mptcp-pmd: exec -> `started` line", &s.started_ms, true),
        ("mptcp-pmd: exec -> READY=1", &s.ready_ms, true),
        (
            "in-kernel PM: two `ip mptcp endpoint add`",
            &s.kernel_ms,
            false,
        ),
    ];
    for (what, v, target) in rows {
        let v = sorted(v);
        let med = pct(&v, 0.5);
        let _ = writeln!(
            md,
            "| {what} | {med:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            v.first().copied().unwrap_or(f64::NAN),
            pct(&v, 0.9),
            v.last().copied().unwrap_or(f64::NAN),
            if target { "< 50 ms" } else { "" },
            if target {
                verdict(med < 50.0 && s.failed == 0)
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        md,
        "\nREADY=1 median / in-kernel median: {:.1} x; daemon runs that did not start within \
         10 s: {}.\n",
        pct(&sorted(&s.ready_ms), 0.5) / pct(&sorted(&s.kernel_ms), 0.5),
        s.failed
    );
    let _ = writeln!(
        md,
        "Memory: the daemon of a two-link client namespace with no connection (2 s after start), \
         then after {IDLE_CHURN} connections came and went (32 clients: connect, echo, mesh, \
         close; {} of {} fully meshed), 4 s after the last one closed.\n",
        s.churn_meshed, s.churned
    );
    let _ = writeln!(
        md,
        "| metric | value | target | verdict |\n|---|---:|---:|---|"
    );
    let idle = s.idle_rss_kb as f64 * 1024.0;
    let _ = writeln!(
        md,
        "| idle RSS, no connections | {:.2} MB | <= 8 MB | {} |",
        mb(idle),
        verdict(s.idle_rss_kb > 0 && idle <= 8e6)
    );
    let _ = writeln!(
        md,
        "| RSS after {IDLE_CHURN} connections came and went | {:.2} MB (peak {:.2}) | | |",
        mb(s.after_rss_kb as f64 * 1024.0),
        mb(s.after_hwm_kb as f64 * 1024.0)
    );
    let _ = writeln!(
        md,
        "\nBinary sizes: the files `packaging/build-static.sh --all` leaves (static musl, \
         stripped, release profile), read by this run:\n"
    );
    let _ = writeln!(
        md,
        "| binary | bytes | MB | target | verdict |\n|---|---:|---:|---:|---|"
    );
    for (i, (what, path, size)) in s.sizes.iter().enumerate() {
        let is_static = i < STATIC_TARGETS.len();
        let name = if is_static {
            format!("`{what}`")
        } else {
            format!("{what} (`{}`)", path.display())
        };
        match size {
            Some(b) => {
                let _ = writeln!(
                    md,
                    "| {name} | {b} | {:.2} | {} | {} |",
                    mb(*b as f64),
                    if is_static { "<= 6 MB" } else { "" },
                    if is_static {
                        verdict(*b as f64 <= 6e6)
                    } else {
                        ""
                    }
                );
            }
            None => {
                let _ = writeln!(md, "| {name} | not built | | | |");
            }
        }
    }
    let _ = writeln!(md);
    md
}

// ------------------------------------------------------------------------------------------
// The command line and the report file.

/// mptcp-pmd against the in-kernel path manager, runs interleaved; writes BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "mptcp-pm-bench")]
struct Args {
    /// Reduced counts (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Instead of the sections: a continuous churn against the daemon for MINUTES, sampling
    /// its RSS, CPU and the live connections.
    #[arg(long, value_name = "MINUTES")]
    soak: Option<u64>,
    /// The report file (default BENCHMARKS.md; with --soak, written only if given).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The sections to run, comma-separated (default: all). The file's other sections are
    /// kept, each naming the run it comes from.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SECTIONS")]
    only: Vec<Section>,
    /// Internal: be the scale test's hold server on PORT (a process of its own).
    #[arg(long, value_name = "PORT", hide = true)]
    hold_server: Option<u16>,
}

/// A section of the report, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Section {
    /// a. Join latency.
    Join,
    /// b. Churn.
    Churn,
    /// c. Scale.
    Scale,
    /// d. Throughput.
    Tput,
    /// e. Start-up and idle cost.
    Startup,
    /// f. Server side: announce latency and throughput.
    Server,
}

impl Section {
    const ALL: [Section; 6] = [
        Section::Join,
        Section::Churn,
        Section::Scale,
        Section::Tput,
        Section::Startup,
        Section::Server,
    ];

    /// The start of the section's heading ("## a." ...), which identifies it in the file.
    fn key(self) -> &'static str {
        match self {
            Section::Join => "## a.",
            Section::Churn => "## b.",
            Section::Scale => "## c.",
            Section::Tput => "## d.",
            Section::Startup => "## e.",
            Section::Server => "## f.",
        }
    }
}

/// A hand-written analysis after the marker survives regeneration.
const MARKER: &str = "<!-- analysis: kept by mptcp-pm-bench -->";
/// The line under a section's heading that names the run it comes from.
const FROM: &str = "_From the run of `";

/// The sections of an existing report (before the analysis marker), each with its provenance:
/// its own `_From ..._` line or, in a file written before sections had one, the header's run.
fn old_sections(old: &str) -> Vec<(Section, String)> {
    let body = old.find(MARKER).map_or(old, |i| &old[..i]);
    let header_end = body.find("\n## ").map_or(body.len(), |i| i + 1);
    let header = &body[..header_end];
    let cmd = header
        .split_once("```\n")
        .and_then(|(_, r)| r.split_once("\n```"))
        .map_or("?", |(c, _)| c);
    let field = |name: &str| {
        header
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    let prov = provenance(cmd, &field("- date: "), &field("- mode: "));
    let mut out = Vec::new();
    let mut rest = &body[header_end..];
    while !rest.is_empty() {
        let end = rest[1..].find("\n## ").map_or(rest.len(), |i| i + 2);
        let text = &rest[..end];
        if let Some(s) = Section::ALL.iter().find(|s| text.starts_with(s.key())) {
            let text = if text.contains(FROM) {
                text.to_string()
            } else {
                with_provenance(text, &prov)
            };
            out.push((*s, text));
        }
        rest = &rest[end..];
    }
    out
}

fn provenance(cmd: &str, date: &str, mode: &str) -> String {
    format!("{FROM}{cmd}` on {date} ({mode})._")
}

/// `## heading\n\nbody` -> `## heading\n\n_From ..._\n\nbody`.
fn with_provenance(section: &str, prov: &str) -> String {
    match section.split_once('\n') {
        Some((head, body)) => format!("{head}\n\n{prov}\n{body}"),
        None => format!("{section}\n\n{prov}\n"),
    }
}

fn main() {
    let args = Args::parse();
    if let Some(port) = args.hold_server {
        raise_nofile();
        hold_server(port);
        return;
    }
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
    if let Some(minutes) = args.soak {
        let table = soak(minutes);
        println!("{table}");
        if let Some(p) = &args.out {
            std::fs::write(p, &table).unwrap();
        }
        return;
    }
    let out_path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("BENCHMARKS.md"));
    let run: Vec<Section> = if args.only.is_empty() {
        Section::ALL.to_vec()
    } else {
        args.only.clone()
    };
    let quick = args.quick;
    let started = Instant::now();
    let mut fresh: Vec<(Section, String)> = Vec::new();
    for s in Section::ALL.into_iter().filter(|s| run.contains(s)) {
        let text = match s {
            Section::Join => {
                let mut joins = Vec::new();
                bench_join(quick, &mut joins);
                render_join(&joins)
            }
            Section::Churn => render_churn(&bench_churn(quick)),
            Section::Scale => render_scale(&bench_scale(quick)),
            Section::Tput => render_tput(&bench_tput(quick)),
            Section::Startup => render_startup(&bench_startup()),
            Section::Server => render_server(&bench_server(quick)),
        };
        fresh.push((s, text));
    }

    let raw: Vec<String> = std::env::args().skip(1).collect();
    let cmd = format!(
        "cargo run --release -p integration --bin mptcp-pm-bench --{}",
        if raw.is_empty() {
            String::new()
        } else {
            format!(" {}", raw.join(" "))
        }
    );
    let date = sh(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]);
    let mode = if quick {
        "--quick (reduced counts)"
    } else {
        "full"
    };
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `integration/src/bin/mptcp-pm-bench.rs` (run as root after \
         `cargo build --release -p mptcp-pmd`). Latest run:\n\n```\n{cmd}\n```\n"
    );
    let _ =
        writeln!(
        md,
        "- date: {date}\n- kernel: {}\n- machine: {} CPUs, {}\n- mode: {mode}; total run time {:.0} s\n",
        sh(&["uname", "-sr"]),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        sh(&["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"]),
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        md,
        "Each section names the run it comes from: `--only SECTIONS` regenerates those and keeps \
         the file's others.\n"
    );
    let _ = writeln!(
        md,
        "Topology: client (2 or 4 links) -- router -- server (1 link), veth pairs in three \
         network namespaces. mptcp-pmd: client namespace on the userspace PM, the daemon \
         (release build, fullmesh, default config, log level info; its metrics endpoint on, \
         where the bench reads the daemon's own timings). In-kernel PM: client \
         namespace on the kernel PM with one `subflow` endpoint per extra client address. The \
         server runs the in-kernel PM in both cases. Runs of the two are interleaved.\n"
    );
    let old = std::fs::read_to_string(&out_path).unwrap_or_default();
    let kept = old_sections(&old);
    let prov = provenance(&cmd, &date, if quick { "--quick" } else { "full" });
    for s in Section::ALL {
        if let Some((_, text)) = fresh.iter().find(|(f, _)| *f == s) {
            md.push_str(&with_provenance(text, &prov));
        } else if let Some((_, text)) = kept.iter().find(|(k, _)| *k == s) {
            md.push_str(text);
        }
    }
    if let Some(i) = old.find(MARKER) {
        md.push_str(&old[i..]);
    }
    println!("{md}");
    std::fs::write(&out_path, &md).unwrap();
    eprintln!("wrote {}", out_path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "# Benchmarks\n\nGenerated by x:\n\n```\ncargo run -- --out B.md\n```\n\n\
        - date: 2026-11-28 12:10 UTC\n- kernel: Linux\n- mode: full; total run time 137 s\n\n\
        Topology: ...\n\n## a. Join latency\n\nbody a\n\n## c. Scale (mptcp-pmd)\n\nbody c\n\n\
        <!-- analysis: kept by mptcp-pm-bench -->\nanalysis\n";

    #[test]
    fn old_sections_carry_the_header_run() {
        let s = old_sections(OLD);
        assert_eq!(
            s.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [Section::Join, Section::Scale]
        );
        assert_eq!(
            s[0].1,
            "## a. Join latency\n\n_From the run of `cargo run -- --out B.md` on 2026-11-28 12:10 UTC (full)._\n\nbody a\n\n"
        );
        assert!(s[1].1.ends_with("body c\n\n"), "{:?}", s[1].1);
    }

    #[test]
    fn a_section_keeps_its_own_provenance() {
        let once = with_provenance(
            "## a. Join latency\n\nbody a\n\n",
            &provenance("c1", "d1", "m1"),
        );
        let doc = format!("# Benchmarks\n\n```\nc2\n```\n- date: d2\n\n{once}");
        let s = old_sections(&doc);
        assert_eq!(s.len(), 1);
        assert!(
            s[0].1.contains("`c1` on d1 (m1)") && !s[0].1.contains("c2"),
            "{}",
            s[0].1
        );
    }

    const HIST: &str = "# TYPE x histogram\n\
        mptcp_pmd_command_seconds_bucket{command=\"subflow_create\",le=\"0.001\"} 0\n\
        mptcp_pmd_command_seconds_bucket{command=\"subflow_create\",le=\"0.002\"} 10\n\
        mptcp_pmd_command_seconds_bucket{command=\"subflow_create\",le=\"0.004\"} 20\n\
        mptcp_pmd_command_seconds_bucket{command=\"subflow_create\",le=\"+Inf\"} 20\n\
        mptcp_pmd_command_seconds_bucket{command=\"remove\",le=\"0.001\"} 7\n\
        mptcp_pmd_command_seconds_count{command=\"subflow_create\"} 20\n";

    #[test]
    fn quantiles_come_from_the_buckets_of_one_label() {
        let b = buckets(
            HIST,
            "mptcp_pmd_command_seconds",
            "command=\"subflow_create\"",
        );
        assert_eq!(
            b,
            [
                (0.001, 0.0),
                (0.002, 10.0),
                (0.004, 20.0),
                (f64::INFINITY, 20.0)
            ]
        );
        // Half of them are at most 2 ms; the 75th percentile is halfway into 2..4 ms.
        assert!((bucket_ms(&b, 0.5) - 2.0).abs() < 1e-9);
        assert!((bucket_ms(&b, 0.75) - 3.0).abs() < 1e-9);
        assert!(bucket_ms(&[], 0.5).is_nan());
        let none = buckets(HIST, "mptcp_pmd_event_to_command_seconds", "");
        assert!(none.is_empty());
    }

    #[test]
    fn stages_of_a_round_are_the_difference_of_two_readings() {
        let at = |n: f64| Stages {
            sent: vec![(0.001, n), (f64::INFINITY, 2.0 * n)],
            rq_wait_ns: 1000.0 * n,
            slices: n,
            ..Stages::default()
        };
        let d = at(5.0).since(&at(2.0));
        assert_eq!(d.sent, [(0.001, 3.0), (f64::INFINITY, 6.0)]);
        assert_eq!((d.rq_wait_ns, d.slices), (3000.0, 3.0));
        let mut sum = Stages::default();
        sum.add(&d);
        sum.add(&d);
        assert_eq!(sum.sent, [(0.001, 6.0), (f64::INFINITY, 12.0)]);
    }

    #[test]
    fn only_takes_a_comma_list() {
        let a = Args::try_parse_from(["b", "--quick", "--only", "join,startup", "--out", "x.md"])
            .unwrap();
        assert!(a.quick);
        assert_eq!(a.only, [Section::Join, Section::Startup]);
        assert_eq!(a.out, Some(PathBuf::from("x.md")));
        assert!(Args::try_parse_from(["b", "--only", "nope"]).is_err());
        let h = Args::try_parse_from(["b", "--hold-server", "5202"]).unwrap();
        assert_eq!(h.hold_server, Some(5202));
    }
}
