//! One run of the hybrid section: its bed (namespaces, links, the PM under test), its schedule
//! of cuts, the interactive or bulk flow, and the record of what happened (messages, reads,
//! interface counters, the daemon's decisions, optional sock_diag samples).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use integration::daemon::{Daemon, DaemonOpts};
use integration::observe::mib;
use integration::{mptcp, netdev, Pm, Tbf, TopoOpts};
use netlink_actor::sock_diag::{DiagSocket, SubflowDiag};

use super::*;
use crate::bed::pmd_opts;

pub(super) struct HBed {
    pub(super) setup: Setup,
    pub(super) cut: PathCut,
    pub(super) pmd: Option<Daemon>,
    pub(super) interactive: TcpListener,
    pub(super) bulk: TcpListener,
    pub(super) t: Topology,
}

pub(super) fn hbed(setup: Setup) -> HBed {
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 2,
        client_pm: if setup == Setup::Kernel {
            Pm::Kernel
        } else {
            Pm::Userspace
        },
        server_pm: Pm::Kernel,
        shaping: vec![Some(Tbf::HYBRID); 2],
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
pub(super) struct Schedule {
    /// (cut, heal) offsets.
    pub(super) cuts: Vec<(Duration, Duration)>,
}

impl Schedule {
    /// One outage, 4 s to 9 s.
    pub(super) fn single() -> Schedule {
        Schedule {
            cuts: vec![(FIRST_CUT, FIRST_CUT + Duration::from_secs(5))],
        }
    }

    /// `n` cycles of 1 s dropped, 1 s open, from 4 s.
    pub(super) fn flapping(n: u32) -> Schedule {
        Schedule {
            cuts: (0..n)
                .map(|k| {
                    let cut = FIRST_CUT + Duration::from_secs(2 * u64::from(k));
                    (cut, cut + Duration::from_secs(1))
                })
                .collect(),
        }
    }

    pub(super) fn end(&self) -> Duration {
        self.cuts.last().map_or(FIRST_CUT, |c| c.1) + TAIL
    }
}

/// What a run measured, every time in ms from its start.
#[derive(Clone, Debug, Default)]
pub(super) struct Record {
    /// (cut sent, heal sent) per cycle: when the commands went to nft; each took effect
    /// within the command's time ([`Record::cmd_ms`]).
    pub(super) cuts: Vec<(f64, f64)>,
    /// How long the cut and heal commands took, ms (the uncertainty of those instants).
    pub(super) cmd_ms: Vec<f64>,
    /// Interactive: (sent, one-way delay) per message received, and how many were sent.
    pub(super) msgs: Vec<(f64, f64)>,
    pub(super) sent: usize,
    /// Bulk: (time, bytes) of every read of the sink.
    pub(super) reads: Vec<(f64, u64)>,
    /// Bulk: (time, bytes received on the server's primary link, on its standby link).
    pub(super) dev: Vec<(f64, u64, u64)>,
    /// The daemon's decisions: (time, reason code).
    pub(super) decisions: Vec<(f64, String)>,
    /// Packets the router dropped.
    pub(super) dropped: u64,
    /// Data the server's MPTCP received twice (`MPTcpExtDuplicateData`, segments): what the
    /// client sent again at the MPTCP level.
    pub(super) dup: u64,
    /// Subflows the client's kernel removed on a SUBFLOW_DESTROY (`MPTcpExtRmSubflow`) while
    /// the primary was cut (summed over the cuts), and how long the cuts lasted, ms.
    pub(super) destroys_cut: u64,
    pub(super) cut_ms: f64,
    /// `BENCH_HYBRID_DUMP` only: the daemon's log lines of the run, and the client's subflows
    /// sampled with sock_diag every [`DIAG_EVERY`] (what the daemon's detector sees).
    pub(super) log: Vec<(f64, String)>,
    pub(super) samples: Vec<(f64, String)>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Flow {
    Interactive,
    Bulk,
}

pub(super) fn since(t0: Instant, t: Instant) -> f64 {
    ms(t.saturating_duration_since(t0))
}

/// One run: a fresh connection carrying `flow`, the primary cut and healed as `sched` says.
pub(super) fn run(b: &mut HBed, flow: Flow, sched: &Schedule) -> Record {
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
pub(super) fn sample_line(d: &SubflowDiag) -> String {
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

pub(super) fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// The reason code of a daemon `decision` log line ("..., reason: failover, ...").
pub(super) fn decision_reason(line: &str) -> Option<String> {
    if !line.contains("decision") {
        return None;
    }
    let rest = line.split("reason: ").nth(1)?;
    let code = rest.split([',', ' ', '\n']).next()?;
    (!code.is_empty()).then(|| code.to_string())
}

/// What the server received, in ms on the shared clock ([`clock_ms`]).
pub(super) enum Got {
    /// (sent, received) per message.
    Msgs(Vec<(f64, f64)>),
    /// (time, bytes) per read.
    Reads(Vec<(f64, u64)>),
}

/// Accept one connection and record it until its end (or 10 s of silence).
pub(super) fn receive(l: TcpListener, flow: Flow) -> Got {
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
pub(super) fn send(
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
pub(super) fn stamp_ns(t: Instant) -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(t.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX)
}

/// [`stamp_ns`] in ms.
pub(super) fn clock_ms(t: Instant) -> f64 {
    stamp_ns(t) as f64 / 1e6
}
