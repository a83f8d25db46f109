//! What probing a dead path costs on the real kernel, the facts `active-standby`'s probe
//! train stands on (`policies/src/active_standby.rs`, "Failback"): a join SYN left alone is
//! sent again every second for 5 s, then backs off, and sock_diag shows which
//! (`tcpi_backoff`); destroying a probe still in SYN_SENT makes the kernel resend the
//! connection's retransmit queue, once per batch of destroys, and leaving it costs nothing.
//!
//! Two measurements run by hand (ignored; they print numbers, they assert nothing about
//! timing, see docs/POLICIES.md, `active-standby`, "Measured"):
//! - `destroy_cost`: during a bulk upload on the standby, what destroying SYN_SENT probes
//!   costs: one at a time every 200 ms against all at once (every SUBFLOW_DESTROY makes the
//!   kernel send the whole MPTCP-level retransmit queue again, `__mptcp_close_ssk` ->
//!   `__mptcp_retransmit_pending_data`);
//!   `cargo test --release -p integration --test kernel_probe -- --ignored --nocapture destroy_cost`
//! - `healthy_series`: sock_diag samples of healthy bulk uploads from a cold start through a
//!   20 Mbit/s tbf, the raw material of `policies/tests/fixtures/active_standby/`:
//!   `SERIES_OUT=/tmp/series cargo test --release -p integration --test kernel_probe --
//!   --ignored --nocapture healthy_series`.

// Test helpers outside #[test] functions may unwrap/panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::nft::PathCut;
use integration::observe::{mib, EventLog};
use integration::{kernel_tests_enabled, mptcp, Pm, Tbf, TopoOpts, Topology};
use mptcp_pmd_policies::{PmCommand, PmEvent, SubflowKey, Token};
use netlink_actor::genl::PmClient;
use netlink_actor::sock_diag::{DiagSocket, SubflowDiag, TcpState};

const WAIT: Duration = Duration::from_secs(5);

/// The client's SYN_SENT subflows from `local`.
fn syn_sent(diag: &mut DiagSocket, local: IpAddr) -> Vec<SubflowDiag> {
    diag.subflows()
        .unwrap()
        .items
        .into_iter()
        .filter(|s| TcpState::from(s.state) == TcpState::SynSent && s.key.local.ip() == local)
        .collect()
}

fn established(ev: &mut EventLog) -> (Token, SubflowKey) {
    let est = ev.wait("ESTABLISHED", WAIT, |e| {
        matches!(e, PmEvent::Established(_))
    });
    let PmEvent::Established(c) = est.event else {
        unreachable!()
    };
    (
        c.token,
        SubflowKey {
            local: c.local,
            remote: c.remote,
        },
    )
}

/// A join whose SYNs are dropped: with the default `net.ipv4.tcp_syn_linear_timeouts = 4`
/// its SYN is sent again 1, 2, 3, 4 and 5 s after the first (`tcpi_backoff` 0 until the
/// fifth retransmission, then 1 with a 2 s timeout: the next one at 7 s). The subflow dump
/// lists it in SYN_SENT under its connection's token from the start.
#[test]
fn a_join_syn_is_sent_every_second_for_five_seconds_then_backs_off() {
    if !kernel_tests_enabled("a_join_syn_is_sent_every_second_for_five_seconds_then_backs_off") {
        return;
    }
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        ..Default::default()
    })
    .unwrap();
    let linear = t
        .client
        .run(&["sysctl", "-n", "net.ipv4.tcp_syn_linear_timeouts"])
        .unwrap();
    assert_eq!(
        linear.trim(),
        "4",
        "the kernel default the probe train is sized for"
    );
    let mut cut = PathCut::install(&t.router).unwrap();
    let mut ev = EventLog::open(&t.client, "client");
    let mut cpm = t.client.exec(PmClient::open).unwrap().unwrap();
    let mut diag = t.client.exec(DiagSocket::open).unwrap().unwrap();
    t.serve_echo(5301).unwrap();
    let srv = SocketAddr::new(t.server_addr(0), 5301);
    let (p0, p1) = (t.client_addr(0), t.client_addr(1));
    let mut s = t
        .client
        .exec(move || mptcp::connect(srv, Some(p0)))
        .unwrap()
        .unwrap();
    mptcp::ping(&mut s, b"hello").unwrap();
    let (token, _) = established(&mut ev);
    cut.cut("rc1").unwrap();
    cpm.execute(&PmCommand::CreateSubflow {
        token,
        local: p1,
        local_id: 1,
        if_index: None,
        remote: srv,
        backup: true,
    })
    .unwrap();
    let t0 = Instant::now();
    // (retransmits, backoff, rto) and when each was first seen.
    let mut seen: Vec<(u8, u8, u32, Duration)> = Vec::new();
    while t0.elapsed() < Duration::from_millis(5600) {
        let socks = syn_sent(&mut diag, p1);
        assert_eq!(socks.len(), 1, "{socks:?}");
        let d = socks[0];
        assert_eq!(d.token, token);
        let s = d.sample;
        if seen.last().map(|x| (x.0, x.1, x.2)) != Some((s.retransmits, s.backoff, s.rto_us)) {
            seen.push((s.retransmits, s.backoff, s.rto_us, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let states: Vec<(u8, u8, u32)> = seen.iter().map(|x| (x.0, x.1, x.2)).collect();
    assert_eq!(
        states,
        vec![
            (0, 0, 1_000_000),
            (1, 0, 1_000_000),
            (2, 0, 1_000_000),
            (3, 0, 1_000_000),
            (4, 0, 1_000_000),
            (5, 1, 2_000_000)
        ],
        "{seen:?}"
    );
    for (k, x) in seen.iter().enumerate().skip(1) {
        let at = x.3.as_millis();
        let k = u128::try_from(k).unwrap();
        assert!(
            (k * 1000..k * 1000 + 400).contains(&at),
            "retransmission {k} seen at {at} ms: {seen:?}"
        );
    }
}

/// A bulk upload carried by the standby alone (the primary cut, its initial subflow
/// destroyed), and SYN_SENT probes on the primary whose destroy costs are counted in data
/// the server received twice (`MPTcpExtDuplicateData`) and goodput, per 3 s window.
struct StandbyUpload {
    t: Topology,
    _cut: PathCut,
    cpm: PmClient,
    diag: DiagSocket,
    token: Token,
    srv: SocketAddr,
    p0: IpAddr,
    read: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl StandbyUpload {
    fn start(port: u16) -> StandbyUpload {
        let t = Topology::build(TopoOpts {
            client_links: 2,
            server_links: 2,
            client_pm: Pm::Userspace,
            server_pm: Pm::Kernel,
            shaping: vec![Some(Tbf::HYBRID); 2],
        })
        .unwrap();
        t.steer_client_link(0, 0).unwrap();
        t.steer_client_link(1, 1).unwrap();
        let mut cut = PathCut::install(&t.router).unwrap();
        let mut ev = EventLog::open(&t.client, "client");
        let mut cpm = t.client.exec(PmClient::open).unwrap().unwrap();
        let diag = t.client.exec(DiagSocket::open).unwrap().unwrap();
        let srv = SocketAddr::new(t.server_addr(0), port);
        let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port);
        let l = t.server.exec(move || mptcp::listen(any)).unwrap().unwrap();
        let read = Arc::new(AtomicU64::new(0));
        let r2 = read.clone();
        t.server
            .exec_bg(move || mptcp::counting_server(l, r2))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let (p0, p1) = (t.client_addr(0), t.client_addr(1));
        t.client
            .exec_bg(move || {
                let mut s = mptcp::connect(srv, Some(p0)).unwrap();
                s.set_write_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let buf = vec![0x5au8; 64 * 1024];
                while !st.load(Ordering::Relaxed) {
                    let _ = s.write(&buf);
                }
            })
            .unwrap();
        let (token, initial) = established(&mut ev);
        cpm.execute(&PmCommand::CreateSubflow {
            token,
            local: p1,
            local_id: 1,
            if_index: None,
            remote: srv,
            backup: false,
        })
        .unwrap();
        ev.wait(
            "SUB_ESTABLISHED",
            WAIT,
            |e| matches!(e, PmEvent::SubEstablished(s) if s.local.ip() == p1),
        );
        std::thread::sleep(Duration::from_secs(1));
        cut.cut("rc0").unwrap();
        std::thread::sleep(Duration::from_millis(150));
        cpm.execute(&PmCommand::DestroySubflow {
            token,
            key: initial,
        })
        .unwrap();
        // The destroy's own resend, then the standby alone at its pace.
        std::thread::sleep(Duration::from_secs(2));
        StandbyUpload {
            t,
            _cut: cut,
            cpm,
            diag,
            token,
            srv,
            p0,
            read,
            stop,
        }
    }

    fn dup(&self) -> u64 {
        mib(&self.t.server, "MPTcpExt", "DuplicateData").unwrap_or(0)
    }

    /// Opens `n` probes on the cut primary, then over a 3 s window destroys them as `how`
    /// says ("none", "spread": 200 ms apart, "batch": back to back); returns (segments the
    /// server received twice, goodput in Mbit/s). Probes left ("none") are destroyed after the
    /// window, outside it.
    fn window(&mut self, n: usize, how: &str) -> (u64, f64) {
        for _ in 0..n {
            self.cpm
                .execute(&PmCommand::CreateSubflow {
                    token: self.token,
                    local: self.p0,
                    local_id: 10,
                    if_index: None,
                    remote: self.srv,
                    backup: true,
                })
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        let probes = syn_sent(&mut self.diag, self.p0);
        assert_eq!(probes.len(), n, "{probes:?}");
        let (d0, b0, t0) = (
            self.dup(),
            self.read.load(Ordering::Relaxed),
            Instant::now(),
        );
        for (i, p) in probes.iter().enumerate() {
            if how == "spread" && i > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            if how != "none" {
                self.cpm
                    .execute(&PmCommand::DestroySubflow {
                        token: self.token,
                        key: p.key,
                    })
                    .unwrap();
            }
        }
        std::thread::sleep(Duration::from_secs(3).saturating_sub(t0.elapsed()));
        let secs = t0.elapsed().as_secs_f64();
        let bytes = self.read.load(Ordering::Relaxed) - b0;
        let dup = self.dup() - d0;
        let goodput = bytes as f64 * 8.0 / secs / 1e6;
        eprintln!(
            "{n:2} SYN_SENT probes, destroyed {how:>6}: data sent twice {dup:4} segments, goodput {goodput:.1} Mbit/s over {secs:.1} s"
        );
        if how == "none" {
            for p in &probes {
                self.cpm
                    .execute(&PmCommand::DestroySubflow {
                        token: self.token,
                        key: p.key,
                    })
                    .unwrap();
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        (dup, goodput)
    }
}

impl Drop for StandbyUpload {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The fact the probe train stands on: destroying a join still in SYN_SENT, which never
/// carried a byte, makes the kernel send the connection's whole MPTCP-level retransmit queue
/// again (`__mptcp_close_ssk` -> `__mptcp_retransmit_pending_data`): with a bulk upload on
/// the standby, the server receives a window of data twice, where probes left alone cost
/// nothing. Destroys sent back to back cost one resend, not one each. (Counts, not timing:
/// the resend is a window of tens of segments, 80-150 in the runs of `destroy_cost`.)
#[test]
fn destroying_a_syn_sent_probe_resends_the_retransmit_queue_once_per_batch() {
    if !kernel_tests_enabled(
        "destroying_a_syn_sent_probe_resends_the_retransmit_queue_once_per_batch",
    ) {
        return;
    }
    let mut up = StandbyUpload::start(5304);
    let (left, _) = up.window(4, "none");
    assert_eq!(left, 0, "probes left alone resend nothing");
    let (one, _) = up.window(1, "batch");
    assert!(one >= 20, "one destroy: {one} segments received twice");
    let (eight, _) = up.window(8, "batch");
    assert!(
        eight >= 20 && eight < 3 * one,
        "eight destroys back to back: {eight} segments received twice, one alone {one}"
    );
}

/// What SUBFLOW_DESTROY of SYN_SENT probes costs, one at a time every 200 ms against all at
/// once. Prints numbers.
#[test]
#[ignore]
fn destroy_cost() {
    let mut up = StandbyUpload::start(5300);
    up.window(0, "none");
    for _ in 0..2 {
        up.window(5, "none");
        up.window(5, "spread");
        up.window(5, "batch");
        up.window(1, "batch");
        up.window(12, "batch");
    }
}

/// Healthy bulk uploads from a cold start through a 20 Mbit/s tbf, single path: the client's
/// subflow sampled with sock_diag as fast as it goes (a few ms), one file per run in
/// `$SERIES_OUT` (default /tmp/series), `$SERIES_RUNS` runs (default 10).
#[test]
#[ignore]
fn healthy_series() {
    let out = std::env::var("SERIES_OUT").unwrap_or_else(|_| "/tmp/series".into());
    let runs: usize = std::env::var("SERIES_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    std::fs::create_dir_all(&out).unwrap();
    let t = Topology::build(TopoOpts {
        client_links: 1,
        server_links: 1,
        client_pm: Pm::Kernel,
        server_pm: Pm::Kernel,
        shaping: vec![Some(Tbf::HYBRID)],
    })
    .unwrap();
    let srv = SocketAddr::new(t.server_addr(0), 5303);
    let any = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 5303);
    let l = t.server.exec(move || mptcp::listen(any)).unwrap().unwrap();
    t.server.exec_bg(move || mptcp::sink_server(l)).unwrap();
    let p0 = t.client_addr(0);
    for run in 0..runs {
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let sampler = t
            .client
            .exec_bg(move || {
                let mut d = DiagSocket::open().unwrap();
                let t0 = Instant::now();
                let mut v = String::new();
                while !st.load(Ordering::Relaxed) {
                    if let Ok(subs) = d.subflows() {
                        let at = t0.elapsed().as_secs_f64() * 1e3;
                        for s in subs.items.iter().filter(|s| s.key.remote.port() == 5303) {
                            let x = &s.sample;
                            v.push_str(&format!(
                                "{at:.1} state={} unacked={} bytes_acked={} last_ack_recv_ms={} last_data_sent_ms={} srtt_us={} rttvar_us={} rto_us={} retransmits={} probes={} backoff={} lost={}\n",
                                s.state, x.unacked, x.bytes_acked, x.last_ack_recv_ms, x.last_data_sent_ms, x.srtt_us, x.rttvar_us, x.rto_us, x.retransmits, x.probes, x.backoff, x.lost
                            ));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                v
            })
            .unwrap();
        let mut s = t
            .client
            .exec(move || mptcp::connect(srv, Some(p0)))
            .unwrap()
            .unwrap();
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let buf = vec![0x5au8; 64 * 1024];
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(3) {
            let _ = s.write(&buf);
        }
        drop(s);
        stop.store(true, Ordering::Relaxed);
        let v = sampler.join().unwrap();
        std::fs::write(format!("{out}/run{run}.txt"), v).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
}
