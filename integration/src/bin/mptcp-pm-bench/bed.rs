//! What the sections share: the daemon as the bench runs it (options, config, its metrics
//! port), the test bed of one path manager (a topology with an echo server, a hold server, a
//! counting sink, an event tracker and, for mptcp-pmd, the daemon), one measured join, the
//! MPTCP connections of a namespace by sock_diag, and the process set-up (descriptor limit,
//! the hold server's process, which daemon binary).

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration::daemon::{daemon_bin, Daemon, DaemonOpts};
use integration::{mptcp, wait_for, Netns, Pm, Tbf, TopoOpts, Topology};
use netlink_actor::sock_diag::DiagSocket;

use crate::stats::ms;
use crate::tracker::Tracker;

/// The echo server's port (joins, churn, announce).
pub const ECHO_PORT: u16 = 5201;
/// The hold server's port (scale: it answers one byte and keeps the connection).
pub const HOLD_PORT: u16 = 5202;
/// The counting sink's port (throughput).
pub const SINK_PORT: u16 = 5203;
/// The daemon's metrics port inside its namespace.
pub const METRICS_PORT: u16 = 9464;

// ------------------------------------------------------------------------------------------
// The daemon: `integration::daemon::Daemon`, with its default log level (info), log in a file.

/// Options of every daemon the bench starts: log level info, the environment's wrapper tool
/// (`BENCH_DAEMON_WRAPPER`, e.g. "heaptrack -o /tmp/ht") and its logs kept on request
/// (`BENCH_KEEP_LOGS`); a clean SIGTERM on drop, so a wrapper writes its report.
pub fn pmd_opts() -> DaemonOpts {
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
pub fn pmd_config(policy: &str, extra: &str) -> String {
    let more = std::env::var("BENCH_PMD_CONFIG").unwrap_or_default();
    format!("policy: {policy}\nmetrics:\n  listen: \"127.0.0.1:{METRICS_PORT}\"\n{extra}\n{more}\n")
}

/// Start the daemon with `policy` in `ns` and wait for its `started` line.
pub fn start_pmd_with(ns: &Netns, policy: &str, extra: &str) -> Daemon {
    let d = Daemon::spawn(ns, &pmd_config(policy, extra), pmd_opts());
    d.wait_ready();
    d
}

/// Connections the daemon tracks, from `mptcp-pmd status` over its control socket
/// ("?" when the daemon has no control socket).
pub fn tracked(d: &Daemon, ns: &Netns) -> String {
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
// Test beds: one topology per path manager.

/// The path manager of a bed's client (or, in the server section, server) namespace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Pmd,
    Kernel,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Pmd => "mptcp-pmd",
            Mode::Kernel => "in-kernel PM",
        }
    }

    /// Its `net.mptcp.path_manager`.
    pub fn pm(self) -> Pm {
        match self {
            Mode::Pmd => Pm::Userspace,
            Mode::Kernel => Pm::Kernel,
        }
    }
}

/// A client with `links` links on one path manager, a server with an echo server, a hold
/// server and a counting sink, the client's event tracker and, for mptcp-pmd, its daemon.
pub struct Bed {
    pub mode: Mode,
    pub links: usize,
    pub tracker: Arc<Tracker>,
    pub pmd: Option<Daemon>,
    pub sink_bytes: Arc<AtomicU64>,
    pub hold: Mutex<Child>,
    pub t: Topology,
}

/// A bed of `mode` with `links` client links, each shaped with `shaping`; `pmd_extra` is
/// added to the daemon's config.
pub fn bed(mode: Mode, links: usize, shaping: Option<Tbf>, pmd_extra: &str) -> Bed {
    let t = Topology::build(TopoOpts {
        client_links: links,
        server_links: 1,
        client_pm: mode.pm(),
        server_pm: Pm::Kernel,
        shaping: vec![shaping; if shaping.is_some() { links } else { 0 }],
    })
    .expect("topology");
    many_ports(&t);
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
    t.serve_echo(ECHO_PORT).unwrap();
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
    let pmd = (mode == Mode::Pmd).then(|| start_pmd_with(&t.client, "fullmesh", pmd_extra));
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

/// Both ends of `t` may open many connections quickly: a wide local port range and reuse of
/// TIME_WAIT ports.
pub fn many_ports(t: &Topology) {
    for ns in [&t.client, &t.server] {
        ns.sysctl("net.ipv4.ip_local_port_range", "10000 65000")
            .unwrap();
        ns.sysctl("net.ipv4.tcp_tw_reuse", "1").unwrap();
    }
}

/// An MPTCP sink on `0.0.0.0:SINK_PORT` in `server` that counts the bytes it reads.
pub fn counting_sink(server: &Netns) -> Arc<AtomicU64> {
    let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), SINK_PORT);
    let sink_bytes = Arc::new(AtomicU64::new(0));
    let l = server.exec(move || mptcp::listen(any)).unwrap().unwrap();
    let sb = sink_bytes.clone();
    server
        .exec_bg(move || mptcp::counting_server(l, sb))
        .unwrap();
    sink_bytes
}

/// How the baseline bed is labelled in the tables.
pub const BASELINE_LABEL: &str = "mptcp-pmd baseline (BENCH_BASELINE_BIN)";

/// `BENCH_BASELINE_BIN=/path/to/mptcp-pmd`: one more mptcp-pmd bed running that binary (e.g. a
/// build of main), interleaved with the others, so that a change is measured before/after in
/// one run under the same load.
pub fn baseline_bed(links: usize, pmd_extra: &str) -> Option<Bed> {
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
    /// The first server address, port `port`.
    pub fn dst(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.t.server_addr(0), port)
    }

    /// One join: a connection to the echo server, pinged, until its last subflow joined
    /// (ESTABLISHED -> last SUB_ESTABLISHED; None if not meshed within 5 s), then closed.
    pub fn one_join(&self) -> Option<Duration> {
        let (s, port) = connect_pinged(&self.t.client, self.dst(ECHO_PORT))?;
        let r = self
            .tracker
            .wait_joins(port, self.links - 1, Duration::from_secs(5));
        drop(s);
        self.tracker.forget(port);
        r
    }
}

/// An MPTCP connection from `client` to `dst`, pinged (so it is fully established), and its
/// local port.
pub fn connect_pinged(client: &Netns, dst: SocketAddr) -> Option<(TcpStream, u16)> {
    let mut s = client
        .exec(move || mptcp::connect(dst, None))
        .unwrap()
        .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    mptcp::ping(&mut s, b"join").ok()?;
    let port = s.local_addr().ok()?.port();
    Some((s, port))
}

/// The MPTCP connections in `ns` by one sock_diag snapshot: (connections, of them with at
/// least `links` subflows, the snapshot's time in ms).
pub fn count_meshed(ns: &Netns, links: usize) -> (usize, usize, f64) {
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

// ------------------------------------------------------------------------------------------
// The process.

/// Raise this process's descriptor limit (to 65536 where allowed, else to the hard limit).
pub fn raise_nofile() {
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

/// `--hold-server PORT`: accept MPTCP connections, answer each with one byte, keep them open.
pub fn hold_server(port: u16) {
    let l = mptcp::listen(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port)).expect("listen");
    let mut held = Vec::new();
    for c in l.incoming() {
        let Ok(mut s) = c else { continue };
        let _ = s.write_all(b"k");
        held.push(s);
    }
}

/// The daemon next to this binary (target/<profile>/), unless `MPTCP_PMD_BIN` says otherwise.
pub fn daemon_next_to_bench() {
    if std::env::var_os("MPTCP_PMD_BIN").is_none() {
        if let Some(bin) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("mptcp-pmd")))
            .filter(|b| b.exists())
        {
            std::env::set_var("MPTCP_PMD_BIN", bin);
        }
    }
}
