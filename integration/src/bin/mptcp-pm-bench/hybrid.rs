//! g. Hybrid access (issue 17): a client with two 20 Mbit/s links (tbf), the primary and the
//! standby, and a router that silently drops everything it forwards on the primary's path
//! (nftables, [`PathCut`]; the link stays up): once from 4 s to 9 s, and flapping (1 s dropped,
//! 1 s open, from 4 s). The same runs, interleaved, for the in-kernel PM with the standby
//! endpoint `backup`, mptcp-pmd `fullmesh` with `addresses.backup_interfaces` = the standby,
//! and mptcp-pmd `active-standby` with the shipped `packaging/examples/hybrid-access.yaml`
//! (its `standby_interfaces` set to the standby). Each run is one fresh MPTCP connection from
//! the primary's address, either
//! - an **interactive** flow: 64-byte messages every 10 ms, TCP_NODELAY, each carrying its
//!   send time; the server takes the one-way delay as its receive time minus that (one
//!   process, one CLOCK_MONOTONIC for every namespace); or
//! - a **bulk** upload into a sink that time-stamps every read; the server's two links, one
//!   per client path ([`Topology::steer_client_link`]), count in their interface counters the
//!   bytes each path delivered after the router's drop.
//!
//! The numbers (pure functions of the records, unit-tested): the interactive flow's max delay
//! and the messages over 200 ms, from the first cut to the end of the run; the standby's share
//! of the bytes while the primary is healthy (1 s to the cut); the goodput during the outage;
//! the time until the primary carries the traffic again after it heals ([`back_on_primary`]);
//! the longest gap without goodput ([`longest_gap`]). For mptcp-pmd, the daemon's decisions
//! (its log lines, time-stamped on receipt) say what it did and when.
//!
//! `BENCH_HYBRID_POLL_MS=N` adds a setup: `active-standby` with `poll.interval_ms: N` (a
//! daemon that does not honour the policy's `sample_ms` samples every connection at that
//! period). `BENCH_HYBRID_DUMP=DIR` writes every run's records there.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use integration::daemon::{Daemon, DaemonOpts};
use integration::nft::PathCut;
use integration::observe::mib;
use integration::{mptcp, netdev, Pm, Tbf, TopoOpts, Topology};
use netlink_actor::sock_diag::{DiagSocket, SubflowDiag};

use crate::bed::{pmd_config, pmd_opts};
use crate::report::Section;
use crate::stats::{ms, verdict};

pub const SECTION: Section = Section::new(
    "hybrid",
    "## g.",
    "g. Hybrid access: a silent primary failure",
    |quick| render(&measure(quick)),
);

/// Both client links: tbf 20 mbit, burst 64 KiB, latency 20 ms.
const LINK: Tbf = Tbf {
    rate_kbit: 20_000,
    burst_bytes: 64 * 1024,
    latency_ms: 20,
};
const INTERACTIVE_PORT: u16 = 5210;
const BULK_PORT: u16 = 5211;
/// The interactive flow: a message this long every [`MSG_EVERY`].
const MSG_LEN: usize = 64;
const MSG_EVERY: Duration = Duration::from_millis(10);
/// A message later than this is "over 200 ms".
const LATE_MS: f64 = 200.0;
/// The router's interface of the primary (client link 0); the standby is client link 1.
const PRIMARY_RIF: &str = "rc0";
const STANDBY_IF: &str = "c1";
/// The first cut, and how long a run goes on after the last heal.
const FIRST_CUT: Duration = Duration::from_secs(4);
const TAIL: Duration = Duration::from_secs(4);
/// The primary is healthy from here to the first cut (the joins are done by then).
const HEALTHY_FROM_MS: f64 = 1000.0;
/// [`back_on_primary`]'s window, and the least a window must carry to count.
const BACK_WINDOW_MS: f64 = 50.0;
const BACK_MIN_BYTES: u64 = 16 * 1024;
/// The server's interface counters are sampled this often.
const DEV_EVERY: Duration = Duration::from_millis(10);
/// `BENCH_HYBRID_DUMP`: the client's subflows are sampled with sock_diag this often.
const DIAG_EVERY: Duration = Duration::from_millis(10);

// ------------------------------------------------------------------------------------------
// Setups.

/// The path manager of a run's client.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    /// In-kernel PM, the standby endpoint `subflow backup`.
    Kernel,
    /// mptcp-pmd fullmesh, the standby in `addresses.backup_interfaces`.
    Fullmesh,
    /// mptcp-pmd active-standby, the shipped example config; `Some(ms)`: with
    /// `poll.interval_ms: ms`.
    ActiveStandby(Option<u32>),
}

impl Setup {
    fn name(self) -> String {
        match self {
            Setup::Kernel => "in-kernel PM, standby endpoint `backup`".into(),
            Setup::Fullmesh => "mptcp-pmd fullmesh, `backup_interfaces` = standby".into(),
            Setup::ActiveStandby(None) => "mptcp-pmd active-standby (hybrid-access.yaml)".into(),
            Setup::ActiveStandby(Some(p)) => {
                format!("mptcp-pmd active-standby, `poll.interval_ms: {p}`")
            }
        }
    }

    fn short(self) -> String {
        match self {
            Setup::Kernel => "in-kernel".into(),
            Setup::Fullmesh => "fullmesh".into(),
            Setup::ActiveStandby(None) => "active-standby".into(),
            Setup::ActiveStandby(Some(p)) => format!("active-standby, poll {p} ms"),
        }
    }

    /// The daemon's config (None: the in-kernel PM).
    fn config(self) -> Option<String> {
        match self {
            Setup::Kernel => None,
            Setup::Fullmesh => Some(pmd_config(
                "fullmesh",
                &format!("addresses:\n  backup_interfaces: [\"{STANDBY_IF}\"]\n"),
            )),
            Setup::ActiveStandby(poll) => {
                let mut c = example_config();
                if let Some(p) = poll {
                    let _ = writeln!(c, "poll:\n  interval_ms: {p}");
                }
                Some(c)
            }
        }
    }
}

/// `packaging/examples/hybrid-access.yaml` with its `standby_interfaces` set to the standby,
/// the bench's metrics endpoint and `BENCH_PMD_CONFIG` added.
fn example_config() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/examples/hybrid-access.yaml"
    );
    let text = std::fs::read_to_string(path).expect("packaging/examples/hybrid-access.yaml");
    let mut replaced = 0;
    let mut out: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("standby_interfaces:") {
                replaced += 1;
                format!("  standby_interfaces: [\"{STANDBY_IF}\"]\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_eq!(replaced, 1, "one standby_interfaces line in {path}");
    // The bench's additions, as `pmd_config` makes them (the example has no `policy:`-less
    // variant, and no metrics section that is not commented out).
    let extra = pmd_config("active-standby", "");
    out.extend(extra.lines().skip(1).map(|l| format!("{l}\n")));
    out
}

// ------------------------------------------------------------------------------------------
// The test bed of one setup.

struct HBed {
    setup: Setup,
    cut: PathCut,
    pmd: Option<Daemon>,
    interactive: TcpListener,
    bulk: TcpListener,
    t: Topology,
}

fn hbed(setup: Setup) -> HBed {
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 2,
        client_pm: if setup == Setup::Kernel {
            Pm::Kernel
        } else {
            Pm::Userspace
        },
        server_pm: Pm::Kernel,
        shaping: vec![Some(LINK); 2],
    })
    .expect("topology");
    t.steer_client_link(0, 0).unwrap();
    t.steer_client_link(1, 1).unwrap();
    if setup == Setup::Kernel {
        t.client
            .run(&[
                "ip",
                "mptcp",
                "endpoint",
                "add",
                &t.client_addr(1).to_string(),
                "dev",
                STANDBY_IF,
                "subflow",
                "backup",
            ])
            .unwrap();
    }
    let cut = PathCut::install(&t.router).expect("nft in the router (package nftables)");
    let listen = |port| {
        let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port);
        t.server.exec(move || mptcp::listen(any)).unwrap().unwrap()
    };
    let (interactive, bulk) = (listen(INTERACTIVE_PORT), listen(BULK_PORT));
    let pmd = setup.config().map(|cfg| {
        let d = Daemon::spawn(
            &t.client,
            &cfg,
            DaemonOpts {
                stamp_lines: true,
                ..pmd_opts()
            },
        );
        d.wait_ready();
        d
    });
    HBed {
        setup,
        cut,
        pmd,
        interactive,
        bulk,
        t,
    }
}

// ------------------------------------------------------------------------------------------
// Runs.

/// When the primary is cut and healed, from the start of a run.
#[derive(Clone, Debug)]
struct Schedule {
    /// (cut, heal) offsets.
    cuts: Vec<(Duration, Duration)>,
}

impl Schedule {
    /// One outage, 4 s to 9 s.
    fn single() -> Schedule {
        Schedule {
            cuts: vec![(FIRST_CUT, FIRST_CUT + Duration::from_secs(5))],
        }
    }

    /// `n` cycles of 1 s dropped, 1 s open, from 4 s.
    fn flapping(n: u32) -> Schedule {
        Schedule {
            cuts: (0..n)
                .map(|k| {
                    let cut = FIRST_CUT + Duration::from_secs(2 * u64::from(k));
                    (cut, cut + Duration::from_secs(1))
                })
                .collect(),
        }
    }

    fn end(&self) -> Duration {
        self.cuts.last().map_or(FIRST_CUT, |c| c.1) + TAIL
    }
}

/// What a run measured, every time in ms from its start.
#[derive(Clone, Debug, Default)]
struct Record {
    /// (cut sent, heal sent) per cycle: when the commands went to nft; each took effect
    /// within the command's time ([`Record::cmd_ms`]).
    cuts: Vec<(f64, f64)>,
    /// How long the cut and heal commands took, ms (the uncertainty of those instants).
    cmd_ms: Vec<f64>,
    /// Interactive: (sent, one-way delay) per message received, and how many were sent.
    msgs: Vec<(f64, f64)>,
    sent: usize,
    /// Bulk: (time, bytes) of every read of the sink.
    reads: Vec<(f64, u64)>,
    /// Bulk: (time, bytes received on the server's primary link, on its standby link).
    dev: Vec<(f64, u64, u64)>,
    /// The daemon's decisions: (time, reason code).
    decisions: Vec<(f64, String)>,
    /// Packets the router dropped.
    dropped: u64,
    /// Data the server's MPTCP received twice (`MPTcpExtDuplicateData`, segments): what the
    /// client sent again at the MPTCP level.
    dup: u64,
    /// Subflows the client's kernel removed on a SUBFLOW_DESTROY (`MPTcpExtRmSubflow`) while
    /// the primary was cut (summed over the cuts), and how long the cuts lasted, ms.
    destroys_cut: u64,
    cut_ms: f64,
    /// `BENCH_HYBRID_DUMP` only: the daemon's log lines of the run, and the client's subflows
    /// sampled with sock_diag every [`DIAG_EVERY`] (what the daemon's detector sees).
    log: Vec<(f64, String)>,
    samples: Vec<(f64, String)>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flow {
    Interactive,
    Bulk,
}

fn since(t0: Instant, t: Instant) -> f64 {
    ms(t.saturating_duration_since(t0))
}

/// One run: a fresh connection carrying `flow`, the primary cut and healed as `sched` says.
fn run(b: &mut HBed, flow: Flow, sched: &Schedule) -> Record {
    let end = sched.end();
    let (dst, src) = (
        SocketAddr::new(
            b.t.server_addr(0),
            match flow {
                Flow::Interactive => INTERACTIVE_PORT,
                Flow::Bulk => BULK_PORT,
            },
        ),
        b.t.client_addr(0),
    );
    let dup_mib = |t: &Topology| mib(&t.server, "MPTcpExt", "DuplicateData").unwrap_or(0);
    let rm_mib = |t: &Topology| mib(&t.client, "MPTcpExt", "RmSubflow").unwrap_or(0);
    let dup_before = dup_mib(&b.t);
    let dumping = std::env::var_os("BENCH_HYBRID_DUMP").is_some();
    let listener = match flow {
        Flow::Interactive => b.interactive.try_clone(),
        Flow::Bulk => b.bulk.try_clone(),
    }
    .unwrap();
    // The server: one connection, recorded on the shared clock.
    let server = b.t.server.exec_bg(move || receive(listener, flow)).unwrap();
    // The server's link counters (bulk).
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let dev =
        b.t.server
            .exec_bg(move || {
                let mut v = Vec::new();
                while !st.load(Ordering::Relaxed) {
                    if let Ok(m) = netdev::read_here() {
                        let rx = |d: &str| m.get(d).map_or(0, |c| c.rx);
                        v.push((Instant::now(), rx("s0"), rx("s1")));
                    }
                    std::thread::sleep(DEV_EVERY);
                }
                v
            })
            .unwrap();
    // BENCH_HYBRID_DUMP: the client's subflows as sock_diag shows them.
    let st = stop.clone();
    let diag = dumping.then(|| {
        b.t.client
            .exec_bg(move || {
                let mut v = Vec::new();
                let Ok(mut d) = DiagSocket::open() else {
                    return v;
                };
                while !st.load(Ordering::Relaxed) {
                    if let Ok(subs) = d.subflows() {
                        for s in subs.items {
                            v.push((Instant::now(), sample_line(&s)));
                        }
                    }
                    std::thread::sleep(DIAG_EVERY);
                }
                v
            })
            .unwrap()
    });
    // The client: connect, report the start, send until the end.
    let (tx, rx) = mpsc::channel();
    let client =
        b.t.client
            .exec_bg(move || send(dst, src, flow, end, &tx))
            .unwrap();
    let t0 = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the run's connection");
    let lines_before = b.pmd.as_ref().map_or(0, |d| d.stamped_lines().len());
    let mut rec = Record::default();
    for &(cut, heal) in &sched.cuts {
        sleep_until(t0 + cut);
        let (sent, applied) = b.cut.timed(Some(PRIMARY_RIF)).unwrap();
        rec.cmd_ms.push(ms(applied - sent));
        let cut_at = since(t0, sent);
        // Read after the cut (a process start): what came before it is not counted.
        let rm_cut = rm_mib(&b.t);
        sleep_until(t0 + heal);
        rec.dropped += b.cut.dropped_packets().unwrap_or(0);
        let rm_heal = rm_mib(&b.t);
        let (sent, applied) = b.cut.timed(None).unwrap();
        rec.cmd_ms.push(ms(applied - sent));
        rec.cuts.push((cut_at, since(t0, sent)));
        rec.destroys_cut += rm_heal.saturating_sub(rm_cut);
        rec.cut_ms += since(t0, sent) - cut_at;
    }
    let sent = client.join().expect("client thread");
    let got = server.join().expect("server thread");
    stop.store(true, Ordering::Relaxed);
    let dev = dev.join().expect("counter thread");
    let base_ms = clock_ms(t0);
    rec.sent = sent;
    match got {
        Got::Msgs(m) => {
            rec.msgs = m
                .into_iter()
                .map(|(sent, recv)| (sent - base_ms, recv - sent))
                .collect();
        }
        Got::Reads(r) => rec.reads = r.into_iter().map(|(t, n)| (t - base_ms, n)).collect(),
    }
    rec.dev = dev
        .into_iter()
        .map(|(t, a, b)| (since(t0, t), a, b))
        .collect();
    if let Some(d) = &b.pmd {
        let lines: Vec<(f64, String)> = d
            .stamped_lines()
            .into_iter()
            .skip(lines_before)
            .map(|(t, l)| (since(t0, t), l))
            .collect();
        rec.decisions = lines
            .iter()
            .filter_map(|(t, l)| Some((*t, decision_reason(l)?)))
            .collect();
        if dumping {
            rec.log = lines;
        }
    }
    if let Some(diag) = diag {
        rec.samples = diag
            .join()
            .expect("sock_diag thread")
            .into_iter()
            .map(|(t, l)| (since(t0, t), l))
            .collect();
    }
    rec.dup = dup_mib(&b.t).saturating_sub(dup_before);
    // Let the queues drain and the connection go before the next run.
    std::thread::sleep(Duration::from_millis(500));
    rec
}

/// One subflow as the dump shows it: the fields the active-standby detector reads, in the
/// order of `SubflowSample` (a line per subflow and sample, `key=value`).
fn sample_line(d: &SubflowDiag) -> String {
    let s = &d.sample;
    format!(
        "{} -> {} state={} flags={:#x} unacked={} bytes_acked={} last_ack_recv_ms={} last_data_sent_ms={} srtt_us={} rttvar_us={} rto_us={} retransmits={} backoff={} probes={} snd_cwnd={} total_retrans={} lost={} snd_wnd={}",
        d.key.local,
        d.key.remote,
        d.state,
        d.flags.0,
        s.unacked,
        s.bytes_acked,
        s.last_ack_recv_ms,
        s.last_data_sent_ms,
        s.srtt_us,
        s.rttvar_us,
        s.rto_us,
        s.retransmits,
        s.backoff,
        s.probes,
        s.snd_cwnd,
        s.total_retrans,
        s.lost,
        s.snd_wnd
    )
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// The reason code of a daemon `decision` log line ("..., reason: failover, ...").
fn decision_reason(line: &str) -> Option<String> {
    if !line.contains("decision") {
        return None;
    }
    let rest = line.split("reason: ").nth(1)?;
    let code = rest.split([',', ' ', '\n']).next()?;
    (!code.is_empty()).then(|| code.to_string())
}

/// What the server received, in ms on the shared clock ([`clock_ms`]).
enum Got {
    /// (sent, received) per message.
    Msgs(Vec<(f64, f64)>),
    /// (time, bytes) per read.
    Reads(Vec<(f64, u64)>),
}

/// Accept one connection and record it until its end (or 10 s of silence).
fn receive(l: TcpListener, flow: Flow) -> Got {
    let (mut s, _) = l.accept().expect("accept");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match flow {
        Flow::Interactive => {
            let mut v = Vec::new();
            let mut m = [0u8; MSG_LEN];
            while s.read_exact(&mut m).is_ok() {
                let now = clock_ms(Instant::now());
                let stamp = u64::from_le_bytes(m[8..16].try_into().unwrap());
                v.push((stamp as f64 / 1e6, now));
            }
            Got::Msgs(v)
        }
        Flow::Bulk => {
            let mut v = Vec::new();
            let mut buf = vec![0u8; 256 * 1024];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                v.push((clock_ms(Instant::now()), n as u64));
            }
            Got::Reads(v)
        }
    }
}

/// Connect from `src`, send `t0` (the run's start) on `start`, then send `flow` until
/// `t0 + end`; returns the messages sent (interactive) or 0.
fn send(
    dst: SocketAddr,
    src: std::net::IpAddr,
    flow: Flow,
    end: Duration,
    start: &mpsc::Sender<Instant>,
) -> usize {
    let mut s = mptcp::connect(dst, Some(src)).expect("mptcp connect");
    s.set_nodelay(true).unwrap();
    // A write blocked by a stuck path must still see the end.
    s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let t0 = Instant::now();
    start.send(t0).unwrap();
    let deadline = t0 + end;
    let mut sent = 0;
    match flow {
        Flow::Interactive => {
            // Each message: its number and its send time on the shared clock.
            let mut m = [0u8; MSG_LEN];
            for k in 0u64.. {
                let at = t0 + MSG_EVERY * u32::try_from(k).unwrap_or(u32::MAX);
                if at >= deadline {
                    break;
                }
                sleep_until(at);
                m[..8].copy_from_slice(&k.to_le_bytes());
                let now = Instant::now();
                m[8..16].copy_from_slice(&stamp_ns(now).to_le_bytes());
                if s.write_all(&m).is_err() {
                    break;
                }
                sent += 1;
            }
        }
        Flow::Bulk => {
            let buf = vec![0x5au8; 64 * 1024];
            while Instant::now() < deadline {
                match s.write(&buf) {
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    sent
}

/// The clock every thread shares, whatever its namespace (CLOCK_MONOTONIC, which network
/// namespaces share): ns since the process's first use of it.
fn stamp_ns(t: Instant) -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(t.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
}

/// [`stamp_ns`] in ms.
fn clock_ms(t: Instant) -> f64 {
    stamp_ns(t) as f64 / 1e6
}

// ------------------------------------------------------------------------------------------
// The numbers: pure functions of a run's records (ms from its start).

/// Among the messages sent from `from` on: the largest one-way delay and how many took more
/// than [`LATE_MS`] (NaN and 0 for none).
fn delays(msgs: &[(f64, f64)], from: f64) -> (f64, usize) {
    let after = msgs.iter().filter(|(sent, _)| *sent >= from);
    after.fold((f64::NAN, 0), |(max, late), (_, d)| {
        (
            if max.is_nan() { *d } else { max.max(*d) },
            late + usize::from(*d > LATE_MS),
        )
    })
}

/// Mbit/s read by the sink in `[from, to)`.
fn goodput_mbit(reads: &[(f64, u64)], from: f64, to: f64) -> f64 {
    let bytes: u64 = reads
        .iter()
        .filter(|(t, _)| (from..to).contains(t))
        .map(|(_, n)| n)
        .sum();
    bytes as f64 * 8.0 / ((to - from) / 1e3) / 1e6
}

/// The longest time in `[from, to]` without a read by the sink: between two reads, or from
/// `from` to the first, or from the last to `to`.
fn longest_gap(reads: &[(f64, u64)], from: f64, to: f64) -> f64 {
    let mut last = from;
    let mut gap: f64 = 0.0;
    for (t, _) in reads.iter().filter(|(t, _)| (from..=to).contains(t)) {
        gap = gap.max(t - last);
        last = *t;
    }
    gap.max(to - last)
}

/// The standby link's share of what the server's two links received in `[from, to]`, from
/// their counter samples `(t, primary, standby)` (None without two samples or bytes there).
fn standby_share(dev: &[(f64, u64, u64)], from: f64, to: f64) -> Option<f64> {
    let first = dev.iter().find(|d| d.0 >= from)?;
    let last = dev.iter().rev().find(|d| d.0 <= to)?;
    let p = last.1.checked_sub(first.1)?;
    let s = last.2.checked_sub(first.2)?;
    (p + s > 0).then(|| s as f64 / (p + s) as f64)
}

/// Mbit/s the standby link received in `[from, to]`, from the counter samples `(t, primary,
/// standby)` nearest inside the window (None without two samples).
fn standby_mbit(dev: &[(f64, u64, u64)], from: f64, to: f64) -> Option<f64> {
    let first = dev.iter().find(|d| d.0 >= from)?;
    let last = dev.iter().rev().find(|d| d.0 <= to)?;
    let bytes = last.2.checked_sub(first.2)?;
    (last.0 > first.0).then(|| bytes as f64 * 8.0 / ((last.0 - first.0) / 1e3) / 1e6)
}

/// How long after `heal` the primary carries the traffic again: the end of the first window
/// of [`BACK_WINDOW_MS`] starting at a counter sample after `heal` in which the primary link
/// received more than half of the bytes, and the two links at least [`BACK_MIN_BYTES`]
/// together. None if no such window within the samples.
fn back_on_primary(dev: &[(f64, u64, u64)], heal: f64) -> Option<f64> {
    let after: Vec<&(f64, u64, u64)> = dev.iter().filter(|d| d.0 >= heal).collect();
    for (i, a) in after.iter().enumerate() {
        let Some(b) = after[i..].iter().find(|b| b.0 >= a.0 + BACK_WINDOW_MS) else {
            break;
        };
        let p = b.1.saturating_sub(a.1);
        let s = b.2.saturating_sub(a.2);
        if p + s >= BACK_MIN_BYTES && p > s {
            return Some(b.0 - heal);
        }
    }
    None
}

/// What one setup did in one case.
#[derive(Clone, Debug)]
struct Summary {
    /// Interactive, from the first cut: max one-way delay, messages over 200 ms, lost.
    max_delay: f64,
    late: usize,
    lost: usize,
    /// Interactive, before the first cut: max one-way delay.
    calm_delay: f64,
    /// Bulk: the standby's share while the primary is healthy (1 s to the first cut).
    share: Option<f64>,
    /// Bulk: goodput from the first cut to the last heal, Mbit/s.
    goodput: f64,
    /// Bulk: from the last heal to the primary carrying the traffic (None: not in the run).
    back: Option<f64>,
    /// Bulk: the longest time without goodput from the first cut to the end.
    stall: f64,
    /// How long the run went on after the last heal (what `back` was given).
    tail: f64,
    /// The daemon's decisions in the interactive and the bulk run.
    decisions: [Vec<(f64, String)>; 2],
    /// Cut and heal instants of the bulk run.
    cuts: [Vec<(f64, f64)>; 2],
    /// Nft command times of both runs, ms.
    cmd_ms: Vec<f64>,
    /// Packets the router dropped in both runs.
    dropped: u64,
    /// Bulk: segments the server's MPTCP received twice.
    dup: u64,
    /// Bulk: what the standby link carried from the first cut to the last heal (its interface
    /// counter at the server: IP packets, headers included), Mbit/s.
    link: Option<f64>,
    /// Bulk: subflows destroyed per second while the primary was cut.
    destroys: f64,
}

fn summarize(i: &Record, b: &Record, sched: &Schedule) -> Summary {
    let end = ms(sched.end());
    let first_cut = |r: &Record| r.cuts.first().map_or(f64::NAN, |c| c.0);
    let last_heal = |r: &Record| r.cuts.last().map_or(f64::NAN, |c| c.1);
    let (max_delay, late) = delays(&i.msgs, first_cut(i));
    let (calm_delay, _) = delays(
        &i.msgs
            .iter()
            .copied()
            .filter(|m| m.0 < first_cut(i))
            .collect::<Vec<_>>(),
        0.0,
    );
    Summary {
        max_delay,
        late,
        lost: i.sent.saturating_sub(i.msgs.len()),
        calm_delay,
        share: standby_share(&b.dev, HEALTHY_FROM_MS, first_cut(b)),
        goodput: goodput_mbit(&b.reads, first_cut(b), last_heal(b)),
        back: back_on_primary(&b.dev, last_heal(b)),
        stall: longest_gap(&b.reads, first_cut(b), end),
        tail: end - last_heal(b),
        decisions: [i.decisions.clone(), b.decisions.clone()],
        cuts: [i.cuts.clone(), b.cuts.clone()],
        cmd_ms: i.cmd_ms.iter().chain(&b.cmd_ms).copied().collect(),
        dropped: i.dropped + b.dropped,
        dup: b.dup,
        link: standby_mbit(&b.dev, first_cut(b), last_heal(b)),
        destroys: b.destroys_cut as f64 / (b.cut_ms / 1e3),
    }
}

// ------------------------------------------------------------------------------------------
// The section.

/// A case: its title, its schedule, and each setup's summary.
struct Case {
    title: String,
    key: &'static str,
    sched: Schedule,
    rows: Vec<(Setup, Summary)>,
}

struct Results {
    cases: Vec<Case>,
    load: String,
}

fn measure(quick: bool) -> Results {
    stamp_ns(Instant::now());
    // The bench's own threads (senders, receivers, counters) and the router's nft run at the
    // daemon's default priority (kernel.nice -20), so that other work on the machine delays
    // neither the measured traffic nor the cut more than it delays the daemon. Linux's nice
    // is per thread: every thread and process started from here on inherits it.
    // SAFETY: setpriority on the calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -20) } != 0 {
        eprintln!(
            "hybrid: cannot raise the bench's priority: {}",
            std::io::Error::last_os_error()
        );
    }
    let mut setups = vec![Setup::Kernel, Setup::Fullmesh, Setup::ActiveStandby(None)];
    if let Some(p) = std::env::var("BENCH_HYBRID_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        setups.push(Setup::ActiveStandby(Some(p)));
    }
    let mut beds: Vec<HBed> = setups.iter().map(|s| hbed(*s)).collect();
    let mut plan = vec![
        (
            "Single outage: the primary's path dropped from 4 s to 9 s".to_string(),
            "single",
            Schedule::single(),
        ),
        (
            "Flapping primary: 1 s dropped / 1 s open, 3 cycles from 4 s".to_string(),
            "flap3",
            Schedule::flapping(3),
        ),
    ];
    if !quick {
        plan.push((
            "Flapping primary (stress): 1 s dropped / 1 s open, 10 cycles from 4 s".to_string(),
            "flap10",
            Schedule::flapping(10),
        ));
    }
    let mut cases = Vec::new();
    for (title, key, sched) in plan {
        let mut recs: Vec<[Record; 2]> = vec![Default::default(); beds.len()];
        for (k, flow) in [Flow::Interactive, Flow::Bulk].into_iter().enumerate() {
            // Interleaved: every setup's run of this flow, then the next flow.
            for (b, r) in beds.iter_mut().zip(recs.iter_mut()) {
                eprintln!("hybrid: {key} {flow:?} {}", b.setup.short());
                r[k] = run(b, flow, &sched);
            }
        }
        if let Some(dir) = std::env::var_os("BENCH_HYBRID_DUMP") {
            for (b, r) in beds.iter().zip(&recs) {
                dump(std::path::Path::new(&dir), key, b.setup, r);
            }
        }
        let rows = beds
            .iter()
            .zip(&recs)
            .map(|(b, [i, bu])| (b.setup, summarize(i, bu, &sched)))
            .collect();
        cases.push(Case {
            title,
            key,
            sched,
            rows,
        });
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!("hybrid: done");
    Results { cases, load }
}

/// `BENCH_HYBRID_DUMP=DIR`: a run's records as text files, for a closer look (one per case,
/// setup and flow: the cuts, the messages, the reads, the link counters, the decisions).
fn dump(dir: &std::path::Path, case: &str, setup: Setup, r: &[Record; 2]) {
    let _ = std::fs::create_dir_all(dir);
    let name = setup.short().replace([' ', ','], "");
    for (rec, flow) in r.iter().zip(["interactive", "bulk"]) {
        let mut t = String::new();
        let _ = writeln!(t, "# cuts (applied, heal sent) ms: {:?}", rec.cuts);
        let _ = writeln!(t, "# nft command ms: {:?}", rec.cmd_ms);
        for (at, code) in &rec.decisions {
            let _ = writeln!(t, "decision {at:.1} {code}");
        }
        for (sent, d) in &rec.msgs {
            let _ = writeln!(t, "msg {sent:.1} {d:.1}");
        }
        for (at, n) in &rec.reads {
            let _ = writeln!(t, "read {at:.1} {n}");
        }
        for (at, p, s) in &rec.dev {
            let _ = writeln!(t, "dev {at:.1} {p} {s}");
        }
        for (at, l) in &rec.log {
            let _ = writeln!(t, "log {at:.1} {l}");
        }
        for (at, l) in &rec.samples {
            let _ = writeln!(t, "sample {at:.1} {l}");
        }
        let _ = std::fs::write(dir.join(format!("{case}-{flow}-{name}.txt")), t);
    }
}

fn opt_ms(v: Option<f64>, tail: f64) -> String {
    v.map_or_else(
        || format!("> {:.0} (not in the run)", tail),
        |v| format!("{v:.0}"),
    )
}

/// The daemon's decisions of a run: the count of each reason, and when the key ones came
/// (`failover` and `stalled` after the first cut, `handback` after the last heal).
fn decisions_cell(d: &[(f64, String)], cuts: &[(f64, f64)]) -> String {
    if d.is_empty() {
        return "none".into();
    }
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, r) in d {
        *counts.entry(r.as_str()).or_default() += 1;
    }
    let mut cell: Vec<String> = counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let first_cut = cuts.first().map_or(f64::NAN, |c| c.0);
    let last_heal = cuts.last().map_or(f64::NAN, |c| c.1);
    let first = |code: &str, from: f64| {
        d.iter()
            .find(|(t, r)| r == code && *t >= from)
            .map(|(t, _)| t - from)
    };
    for (code, from, what) in [
        ("stalled", first_cut, "cut"),
        ("failover", first_cut, "cut"),
        ("handback", last_heal, "last heal"),
    ] {
        if let Some(t) = first(code, from) {
            cell.push(format!("first {code} {what} + {t:.0} ms"));
        }
    }
    cell.join(", ")
}

fn render(r: &Results) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## g. Hybrid access: a silent primary failure\n\n\
         Issue 17's scenario. The client has two links shaped with tbf 20 mbit (burst 64 KiB, \
         latency 20 ms): the primary (link 0, where every connection starts) and the standby \
         (link 1). The router silently drops everything it forwards from or to the primary's \
         link (nftables; the link stays up); the server's two links each receive what one \
         client path delivered (a route by source on the router), and their byte counters, \
         sampled every 10 ms, split the bulk bytes by path. Setups, interleaved run by run: \
         the in-kernel PM with the standby endpoint `subflow backup`; mptcp-pmd `fullmesh` with \
         `addresses.backup_interfaces: [c1]`; mptcp-pmd `active-standby` with the shipped \
         `packaging/examples/hybrid-access.yaml` (`standby_interfaces: [c1]`). Each run is a \
         fresh connection:\n\n\
         - **interactive**: a 64-byte message every 10 ms (TCP_NODELAY) carrying its send time; \
         one-way delay = receive time - send time (one CLOCK_MONOTONIC for all namespaces); max \
         and count over 200 ms among the messages sent from the first cut to the end of the run \
         (4 s after the last heal); *lost*: sent but never received;\n\
         - **bulk** upload into a sink that time-stamps every read: the standby's share of the \
         bytes from 1 s to the first cut; goodput from the first cut to the last heal, next to \
         what the standby link carried meanwhile (its counter at the server, headers included; \
         in the single outage all the goodput crosses it, so the difference is headers and data \
         sent twice) and the subflows the client destroyed per second \
         while the primary was cut (`MPTcpExtRmSubflow`: each destroy makes the kernel resend \
         its whole MPTCP-level retransmit queue); *back on \
         primary*: from the last heal to the end of the first 50 ms window in which the \
         primary's link received more than half of the bytes (and both together at least \
         16 KiB); *longest stall*: the longest time without a read from the first cut to the \
         end; *data sent twice*: the server's `MPTcpExtDuplicateData` over the bulk run \
         (segments its MPTCP received again: what the client re-sent at the MPTCP level).\n\n\
         Cut and heal = when the command went to the router's nft (it took effect within the \
         command's time, given under each table; every window starts there, so neither the \
         outage's delays nor *back on primary* are under-estimated). The bench's threads and \
         nft run at nice -20, as the daemon does. Load average at the end: {}.\n",
        r.load
    );
    for c in &r.cases {
        let _ = writeln!(md, "### {}\n", c.title);
        let _ = writeln!(
            md,
            "| setup | max delay before the cut (ms) | max delay (ms) | messages > 200 ms | lost | standby share while healthy | goodput, cut to heal (Mbit/s) | standby link, cut to heal (Mbit/s) | destroys per s while cut | back on primary after the {}heal (ms) | longest stall (ms) | data sent twice (segments) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            if c.sched.cuts.len() > 1 { "last " } else { "" }
        );
        for (setup, s) in &c.rows {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.0} | {} | {} | {} | {:.1} | {} | {:.1} | {} | {:.0} | {} |",
                setup.name(),
                s.calm_delay,
                s.max_delay,
                s.late,
                s.lost,
                s.share
                    .map_or_else(|| "?".into(), |v| format!("{:.1} %", v * 100.0)),
                s.goodput,
                s.link.map_or_else(|| "?".into(), |v| format!("{v:.1}")),
                s.destroys,
                opt_ms(s.back, s.tail),
                s.stall,
                s.dup
            );
        }
        let mut cmd: Vec<f64> = c.rows.iter().flat_map(|(_, s)| s.cmd_ms.clone()).collect();
        cmd.sort_by(f64::total_cmp);
        let dropped: u64 = c.rows.iter().map(|(_, s)| s.dropped).sum();
        let _ = writeln!(
            md,
            "\nThe daemon's decisions (reason: count, and when; from its log, time-stamped on \
             receipt). nft cut/heal commands took {:.1}-{:.1} ms; the router dropped {dropped} \
             packets in these runs.\n\n| setup | interactive run | bulk run |\n|---|---|---|",
            cmd.first().copied().unwrap_or(f64::NAN),
            cmd.last().copied().unwrap_or(f64::NAN)
        );
        for (setup, s) in c.rows.iter().filter(|(s, _)| *s != Setup::Kernel) {
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                setup.short(),
                decisions_cell(&s.decisions[0], &s.cuts[0]),
                decisions_cell(&s.decisions[1], &s.cuts[1])
            );
        }
        let _ = writeln!(md);
    }
    md.push_str(&targets(r));
    md
}

/// Issue 17's targets for each active-standby setup, next to every setup's value.
fn targets(r: &Results) -> String {
    let mut md = String::new();
    let Some(first) = r.cases.first() else {
        return md;
    };
    let setups: Vec<Setup> = first.rows.iter().map(|(s, _)| *s).collect();
    let judged: Vec<Setup> = setups
        .iter()
        .copied()
        .filter(|s| matches!(s, Setup::ActiveStandby(_)))
        .collect();
    let _ = write!(md, "### Targets (issue 17)\n\n| target |");
    for s in &setups {
        let _ = write!(md, " {} |", s.short());
    }
    for s in &judged {
        let _ = write!(md, " verdict: {} |", s.short());
    }
    let _ = write!(md, "\n|---|");
    for _ in 0..setups.len() + judged.len() {
        let _ = write!(md, "---|");
    }
    let _ = writeln!(md);
    fn kernel(c: &Case) -> Option<&Summary> {
        c.rows
            .iter()
            .find(|(s, _)| *s == Setup::Kernel)
            .map(|x| &x.1)
    }
    let mut line = |what: String,
                    cell: &dyn Fn(&Summary) -> String,
                    ok: &dyn Fn(&Summary, Option<&Summary>) -> bool,
                    c: &Case| {
        let _ = write!(md, "| {what} |");
        for (_, s) in &c.rows {
            let _ = write!(md, " {} |", cell(s));
        }
        for j in &judged {
            if let Some((_, s)) = c.rows.iter().find(|(x, _)| x == j) {
                let _ = write!(md, " {} |", verdict(ok(s, kernel(c))));
            }
        }
        let _ = writeln!(md);
    };
    for c in &r.cases {
        line(
            format!("{}: max one-way delay <= 250 ms", c.key),
            &|s| format!("{:.0} ms", s.max_delay),
            &|s, _| s.max_delay <= 250.0 && s.lost == 0,
            c,
        );
        line(
            format!("{}: <= 5 messages over 200 ms", c.key),
            &|s| s.late.to_string(),
            &|s, _| s.late <= 5 && s.lost == 0,
            c,
        );
        if c.key == "single" {
            line(
                "standby <= 2 % of the bulk bytes while healthy".into(),
                &|s| {
                    s.share
                        .map_or_else(|| "?".into(), |v| format!("{:.1} %", v * 100.0))
                },
                &|s, _| s.share.is_some_and(|v| v <= 0.02),
                c,
            );
            line(
                "traffic back on the primary <= 700 ms after it heals".into(),
                &|s| {
                    s.back
                        .map_or_else(|| "never".into(), |v| format!("{v:.0} ms"))
                },
                &|s, _| s.back.is_some_and(|v| v <= 700.0),
                c,
            );
        }
        line(
            format!("{}: bulk stall no worse than the in-kernel PM's", c.key),
            &|s| format!("{:.0} ms", s.stall),
            &|s, k| k.is_some_and(|k| s.stall <= k.stall),
            c,
        );
    }
    let _ = writeln!(
        md,
        "\nA lost message fails the delay targets. The bulk-stall comparison is within this \
         run (the in-kernel PM's stall on the same machine at the same time).\n"
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_count_from_the_cut() {
        let m = [
            (0.0, 900.0),
            (4000.0, 5.0),
            (4010.0, 250.0),
            (4020.0, 201.0),
            (4030.0, 200.0),
        ];
        assert_eq!(delays(&m, 4000.0), (250.0, 2));
        let (max, late) = delays(&m, 9000.0);
        assert!(max.is_nan() && late == 0);
    }

    #[test]
    fn gaps_include_the_edges() {
        let r = [(100.0, 1), (150.0, 1), (400.0, 1), (410.0, 1)];
        assert_eq!(longest_gap(&r, 0.0, 500.0), 250.0);
        assert_eq!(longest_gap(&r, 0.0, 1000.0), 590.0);
        assert_eq!(longest_gap(&[], 0.0, 10.0), 10.0);
        // 1 MB in half a second: 16 Mbit/s.
        assert_eq!(
            goodput_mbit(&[(0.0, 500_000), (499.0, 500_000), (600.0, 9)], 0.0, 500.0),
            16.0
        );
    }

    #[test]
    fn the_standby_share_and_the_return_to_the_primary() {
        // 10 ms samples: the standby carries everything until 1000 ms, the primary after.
        let dev: Vec<(f64, u64, u64)> = (0..200u64)
            .map(|k| {
                let t = k * 10;
                let primary = t.saturating_sub(1000) * 2500;
                let standby = t.min(1000) * 2500 + t;
                (t as f64, primary, standby)
            })
            .collect();
        let share = standby_share(&dev, 0.0, 900.0).unwrap();
        assert!(share > 0.99, "{share}");
        let share = standby_share(&dev, 1500.0, 1990.0).unwrap();
        assert!(share < 0.01, "{share}");
        // Healed at 700: the first 50 ms window in which the primary has the majority is
        // 980..1030 (primary 30 ms x 2500, standby 20 ms x 2500); 970..1020 is not.
        let back = back_on_primary(&dev, 700.0).unwrap();
        assert_eq!(back, 1030.0 - 700.0);
        // Never back: the standby keeps it all.
        let stuck: Vec<(f64, u64, u64)> = (0..100u64)
            .map(|k| ((k * 10) as f64, 7, k * 25_000))
            .collect();
        assert_eq!(back_on_primary(&stuck, 0.0), None);
        // The standby link: 2500 bytes per ms until 1000 ms (and 1 per ms) = 20 Mbit/s.
        let mbit = standby_mbit(&dev, 100.0, 900.0).unwrap();
        assert!((mbit - 20.008).abs() < 0.001, "{mbit}");
        assert_eq!(standby_mbit(&dev, 5000.0, 6000.0), None);
        // Too little traffic in a window does not count.
        let idle: Vec<(f64, u64, u64)> = (0..100u64).map(|k| ((k * 10) as f64, k, 0)).collect();
        assert_eq!(back_on_primary(&idle, 0.0), None);
    }

    #[test]
    fn decision_lines_give_their_reason() {
        let l = "Dec 01 12:00:00.000 INFO decision, why: path ..., reason: failover, action: clear backup 1.2.3.4:5 -> 6.7.8.9:10, token: 0x1, rule: default, policy: active-standby";
        assert_eq!(decision_reason(l).as_deref(), Some("failover"));
        assert_eq!(decision_reason("INFO subflow created, reason: x"), None);
        let d = vec![
            (100.0, "stalled".to_string()),
            (4200.0, "failover".into()),
            (9500.0, "handback".into()),
        ];
        assert_eq!(
            decisions_cell(&d, &[(4000.0, 9000.0)]),
            "failover 1, handback 1, stalled 1, first failover cut + 200 ms, first handback last heal + 500 ms"
        );
    }

    #[test]
    fn schedules() {
        assert_eq!(Schedule::single().end(), Duration::from_secs(13));
        let f = Schedule::flapping(3);
        assert_eq!(
            f.cuts,
            [(4, 5), (6, 7), (8, 9)].map(|(a, b)| (Duration::from_secs(a), Duration::from_secs(b)))
        );
        assert_eq!(f.end(), Duration::from_secs(13));
        assert_eq!(Schedule::flapping(10).end(), Duration::from_secs(27));
    }

    #[test]
    fn the_example_config_gets_the_standby() {
        let c = example_config();
        assert!(c.contains("policy: active-standby"));
        assert!(c.contains("standby_interfaces: [\"c1\"]"));
        assert!(c.contains("metrics:"));
        assert_eq!(c.matches("policy:").count(), 1, "{c}");
    }
}
