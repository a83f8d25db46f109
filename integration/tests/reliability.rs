//! Reliability under stress, against the real kernel and the real `mptcp-pmd` binary: event
//! overruns, a link failing under a transfer, a crash under load, kernel refusals. What counts
//! is what the kernel reports (`ss`), the bytes the server received and the daemon's log.
//! See docs/RELIABILITY.md for what each test proves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::daemon::Daemon;
use integration::observe::subflows;
use integration::transfer::payload;
use integration::{kernel_tests_enabled, mptcp, wait_for, Pm, Tbf, TopoOpts, Topology};

const PORT: u16 = 5301;

fn topo(client_links: usize, shaping: Vec<Option<Tbf>>) -> Topology {
    Topology::build(TopoOpts {
        client_links,
        server_links: 1,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        shaping,
    })
    .expect("topology")
}

fn echo(t: &Topology) {
    echo_on(t, std::net::Ipv4Addr::UNSPECIFIED.into());
}

/// Echo server on `ip` (`::` is dual-stack).
fn echo_on(t: &Topology, ip: IpAddr) {
    let addr = SocketAddr::new(ip, PORT);
    let l = t.server.exec(move || mptcp::listen(addr)).unwrap().unwrap();
    t.server.exec_bg(move || mptcp::echo_server(l)).unwrap();
}

/// A config with a private control socket (tests run in parallel) plus `extra` YAML.
fn config(extra: &str) -> String {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "policy: fullmesh\ncontrol:\n  socket: /tmp/mptcp-pmd-rel-{}-{}.sock\n{extra}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn connect_one(t: &Topology) -> TcpStream {
    let dst = SocketAddr::new(t.server_addr(0), PORT);
    let mut s = t
        .client
        .exec(move || mptcp::connect(dst, None))
        .unwrap()
        .expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    mptcp::ping(&mut s, b"establish").expect("ping");
    s
}

/// Open `threads * per_thread` connections as fast as possible, from `threads` threads in the
/// client namespace at once; every one is pinged (fully established) and kept open.
fn storm(t: &Topology, threads: usize, per_thread: usize) -> Vec<TcpStream> {
    let dst = SocketAddr::new(t.server_addr(0), PORT);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            t.client
                .exec_bg(move || {
                    (0..per_thread)
                        .map(|_| {
                            let mut s = mptcp::connect(dst, None).expect("connect");
                            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                            mptcp::ping(&mut s, b"x").expect("ping");
                            s
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap()
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("storm thread"))
        .collect()
}

/// Wait until `conns` connections towards PORT exist and each has exactly one established
/// subflow per address in `want`; on failure return the last observation (summarised).
fn wait_mesh(t: &Topology, conns: usize, want: &[IpAddr], timeout: Duration) -> Result<(), String> {
    let want: BTreeSet<IpAddr> = want.iter().copied().collect();
    let mut last = String::new();
    wait_for(timeout, || {
        let m = subflows(&t.client, PORT);
        let bad: Vec<_> = m
            .iter()
            .filter(|(_, v)| {
                let locals: BTreeSet<IpAddr> = v.iter().map(|s| s.local.ip()).collect();
                locals != want || v.len() != want.len()
            })
            .collect();
        let mut hist = std::collections::BTreeMap::new();
        for v in m.values() {
            *hist.entry(v.len()).or_insert(0usize) += 1;
        }
        last = format!(
            "{} connections (want {conns}), {} not meshed as {want:?}; connections by subflow \
             count: {hist:?}; not meshed (token: locals): {:?}",
            m.len(),
            bad.len(),
            bad.iter()
                .take(12)
                .map(|(t, v)| format!("{t}: {:?}", v.iter().map(|s| s.local).collect::<Vec<_>>()))
                .collect::<Vec<_>>()
        );
        (m.len() == conns && bad.is_empty()).then_some(())
    })
    .ok_or(last)
}

/// Seconds since midnight of a slog term line ("Nov 28 04:19:08.389 ...").
fn log_time_s(line: &str) -> f64 {
    let t = line.split_whitespace().nth(2).unwrap_or("0:0:0");
    t.split(':')
        .map(|x| x.parse::<f64>().unwrap_or(0.0))
        .fold(0.0, |acc, x| acc * 60.0 + x)
}

/// `count` of `needle` in the log.
fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

// Found the resync bug fixed in 3044b01 (docs/RELIABILITY.md "Findings").
#[test]
fn event_overrun_triggers_resync_and_every_connection_is_meshed() {
    if !kernel_tests_enabled("event_overrun_triggers_resync_and_every_connection_is_meshed") {
        return;
    }
    let t = topo(2, vec![]);
    echo(&t);
    let mut d = Daemon::start(
        &t.client,
        &config("kernel:\n  events_rcvbuf: 4096\nsubflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\nmetrics:\n  listen: 127.0.0.1:9464\n"),
    );
    d.wait_ready();
    // Several storms until the tiny buffer overflows (each one is 150 connections from 6
    // threads); the first one practically always does it.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.extend(storm(&t, 6, 25));
        if d.wait_log("events socket overrun", Duration::from_secs(1)) {
            break;
        }
    }
    let log = d.log();
    assert!(
        log.contains("events socket overrun (ENOBUFS)"),
        "no overrun provoked with {} connections and a 4096-byte events buffer:\n{log}",
        conns.len()
    );
    assert!(
        d.wait_log("resync done", Duration::from_secs(10)),
        "overrun without a completed resync:\n{}",
        d.log()
    );
    assert!(d.log().contains("resync from sock_diag"));
    let both = [t.client_addr(0), t.client_addr(1)];
    if let Err(seen) = wait_mesh(&t, conns.len(), &both, Duration::from_secs(40)) {
        panic!("after the overrun not every connection is meshed: {seen}");
    }
    // Nothing half-done stays behind: stable a second later, and the daemon still runs.
    std::thread::sleep(Duration::from_secs(1));
    wait_mesh(&t, conns.len(), &both, Duration::from_secs(1))
        .unwrap_or_else(|s| panic!("mesh not stable after resync: {s}"));
    assert!(d.running(), "daemon died");
    // One policy object per tracked connection, through the overrun and the resync; none left
    // once the connections are gone (closed, or retired when their CLOSED was lost too).
    let objects = || {
        let m = integration::metrics::samples(&integration::metrics::scrape(&t.client, 9464));
        (
            m.get("mptcp_pmd_policy_objects").copied(),
            m.get("mptcp_pmd_connections").copied(),
        )
    };
    let (objs, tracked) = objects();
    assert_eq!(
        objs,
        Some(conns.len() as f64),
        "policy objects vs {} connections",
        conns.len()
    );
    assert_eq!(tracked, objs, "policy objects vs tracked connections");
    drop(conns);
    let gone = wait_for(Duration::from_secs(20), || {
        (objects().0 == Some(0.0)).then_some(())
    });
    assert!(
        gone.is_some(),
        "policy objects left after every connection closed: {:?}",
        objects()
    );
    assert_eq!(d.stop(Duration::from_secs(10)), Some(0));
    let log = d.log();
    let stopped = log.lines().find(|l| l.contains("stopped")).unwrap_or("");
    assert!(
        !stopped.contains("overruns: 0") && !stopped.contains("resyncs: 0"),
        "the stop line must count the overruns and resyncs: {stopped}"
    );
}

/// What one round of [`churn`] did.
#[derive(Debug, Default)]
struct Churned {
    /// Connections opened (and closed).
    opened: usize,
    /// Of them, closed without their join (none came within the wait).
    unjoined: usize,
}

/// `threads` clients in the client namespace, each for `run`: connect, ping, wait (at most 5 s)
/// until the kernel shows the connection's join established (`MPTCP_TCPINFO`), close.
/// Each connection closes only once it is meshed, so no create for it is doomed by the close
/// itself: what the daemon sends afterwards for a closed connection comes from a stale view.
fn churn(t: &Topology, threads: usize, run: Duration) -> Churned {
    let dst = SocketAddr::new(t.server_addr(0), PORT);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            t.client
                .exec_bg(move || {
                    let mut c = Churned::default();
                    let end = Instant::now() + run;
                    while Instant::now() < end {
                        let mut s = mptcp::connect(dst, None).expect("connect");
                        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        mptcp::ping(&mut s, b"x").expect("ping");
                        c.opened += 1;
                        let joined = wait_for(Duration::from_secs(5), || {
                            (mptcp::established_subflows(&s).unwrap_or(0) >= 2).then_some(())
                        });
                        if joined.is_none() {
                            c.unjoined += 1;
                        }
                    }
                    c
                })
                .unwrap()
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("churn thread"))
        .fold(Churned::default(), |a, b| Churned {
            opened: a.opened + b.opened,
            unjoined: a.unjoined + b.unjoined,
        })
}

// Issue 15 item 5: a resync during a close storm re-adopted 10 already-closed connections and
// sent 79 doomed SUBFLOW_CREATEs, each a WARN line, until the next polls dropped them.
#[test]
fn a_close_storm_through_resyncs_sends_no_doomed_command_and_warns_nothing() {
    if !kernel_tests_enabled(
        "a_close_storm_through_resyncs_sends_no_doomed_command_and_warns_nothing",
    ) {
        return;
    }
    let t = topo(2, vec![]);
    echo(&t);
    let metrics_port = 9467;
    let d = Daemon::start(
        &t.client,
        &config(&format!(
            "kernel:\n  events_rcvbuf: 4096\nsubflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\nmetrics:\n  listen: 127.0.0.1:{metrics_port}\n"
        )),
    );
    d.wait_ready();
    // Rounds of churn (8 clients, 3 s) until the tiny events buffer overran and a resync
    // completed while connections were closing; the first round practically always does it.
    let mut total = Churned::default();
    for _ in 0..4 {
        let c = churn(&t, 8, Duration::from_secs(3));
        total.opened += c.opened;
        total.unjoined += c.unjoined;
        if d.count("events socket overrun") > 0 && d.count("resync done") > 0 {
            break;
        }
    }
    assert!(
        d.count("events socket overrun") > 0 && d.count("resync done") > 0,
        "no overrun and resync provoked by {} connections",
        total.opened
    );
    // Let the polls retire whatever a lost CLOSED left behind (3 polls of 1 s).
    std::thread::sleep(Duration::from_secs(4));
    let log = d.log();
    let metrics =
        integration::metrics::samples(&integration::metrics::scrape(&t.client, metrics_port));
    let refusals: Vec<(&String, &f64)> = metrics
        .iter()
        .filter(|(k, v)| k.starts_with("mptcp_pmd_kernel_refusals_total") && **v > 0.0)
        .collect();
    let warned = log
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("kernel refused command"))
        .count();
    let quiet = count(&log, "connection or subflow gone");
    let skipped: usize = log
        .lines()
        .filter(|l| l.contains("resync done"))
        .filter_map(|l| {
            l.split("closed_meanwhile: ")
                .nth(1)?
                .split(',')
                .next()?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .sum();
    eprintln!(
        "{} connections, {} not joined within 5 s; overruns: {}, resyncs done: {}, not adopted \
         because closed meanwhile: {skipped}; refusals: {refusals:?}, warned: {warned}, quiet: {quiet}",
        total.opened,
        total.unjoined,
        d.count("events socket overrun"),
        d.count("resync done"),
    );
    assert_eq!(
        total.unjoined, 0,
        "every connection gets its join before it closes"
    );
    assert_eq!(warned, 0, "a WARN per refused command:\n{log}");
    // What the issue ruled out is re-adopting closed connections (79 doomed SUBFLOW_CREATEs in
    // ~2 s in the report). A command can still meet a connection that closed a moment before:
    // the events socket is made to overrun here, so a SUB_ESTABLISHED or CLOSED can be lost
    // and a request time out and be retried as its connection goes; on the merged tree of
    // 2026-12-07 that was 1 command in about 1 of 10 runs of this file. Such a refusal must be
    // rare and every one the quiet "gone" kind (counted, never warned).
    let doomed: f64 = refusals.iter().map(|(_, v)| **v).sum();
    assert!(
        doomed == quiet as f64 && doomed * 500.0 <= total.opened.max(500) as f64,
        "doomed commands: {refusals:?} for {} connections, {quiet} quiet refusals:\n{log}",
        total.opened
    );
    assert_eq!(
        metrics.get("mptcp_pmd_connections").copied(),
        Some(0.0),
        "every closed connection is forgotten"
    );
}

// ---- a tiny SHA-256 (FIPS 180-4), enough to compare what was sent with what arrived ----

struct Sha256 {
    h: [u32; 8],
    buf: Vec<u8>,
    len: u64,
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

impl Sha256 {
    fn new() -> Self {
        Sha256 {
            h: [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ],
            buf: Vec::with_capacity(64),
            len: 0,
        }
    }

    fn block(&mut self, b: &[u8]) {
        let mut w = [0u32; 64];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b_, mut c, mut d, mut e, mut f, mut g, mut h] = self.h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b_) ^ (a & c) ^ (b_ & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b_;
            b_ = a;
            a = t1.wrapping_add(t2);
        }
        for (x, y) in self.h.iter_mut().zip([a, b_, c, d, e, f, g, h]) {
            *x = x.wrapping_add(y);
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.buf.is_empty() {
            let take = (64 - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == 64 {
                let b = std::mem::take(&mut self.buf);
                self.block(&b);
            }
        }
        while data.len() >= 64 {
            self.block(&data[..64]);
            data = &data[64..];
        }
        self.buf.extend_from_slice(data);
    }

    fn finish(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let mut pad = vec![0x80u8];
        while (self.buf.len() + pad.len()) % 64 != 56 {
            pad.push(0);
        }
        pad.extend_from_slice(&bits.to_be_bytes());
        let len = self.len;
        self.update(&pad);
        self.len = len;
        let mut out = [0u8; 32];
        for (i, v) in self.h.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&v.to_be_bytes());
        }
        out
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn sha256_matches_known_vectors() {
    let mut h = Sha256::new();
    h.update(b"abc");
    assert_eq!(
        hex(&h.finish()),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    // Split updates and a two-block message.
    let mut h = Sha256::new();
    for part in [
        &b"abcdbcdecdefdefgefghfghighij"[..],
        b"hijkijkljklmklmnlmnomnopnopq",
    ] {
        h.update(part);
    }
    assert_eq!(
        hex(&h.finish()),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    );
}

#[test]
fn transfer_survives_link_failure_and_the_subflow_returns() {
    if !kernel_tests_enabled("transfer_survives_link_failure_and_the_subflow_returns") {
        return;
    }
    // Both client links at 16 mbit: 8 MB take ~2 s on two paths, ~4 s on one, so the link
    // fails mid-transfer.
    let tbf = Tbf {
        rate_kbit: 16_000,
        burst_bytes: 32_000,
        latency_ms: 50,
    };
    let t = topo(2, vec![Some(tbf), Some(tbf)]);
    // Server: read an 8-byte length, then that many bytes, answer their SHA-256; keep the
    // connection open until the test ends (so its subflows can be observed afterwards).
    let addr = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), PORT);
    let l = t.server.exec(move || mptcp::listen(addr)).unwrap().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let rx = received.clone();
    t.server
        .exec_bg(move || {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut len = [0u8; 8];
            s.read_exact(&mut len).unwrap();
            let mut left = u64::from_be_bytes(len);
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 65536];
            while left > 0 {
                let want = buf.len().min(left as usize);
                let n = s.read(&mut buf[..want]).unwrap();
                assert!(n > 0, "EOF with {left} bytes missing");
                h.update(&buf[..n]);
                left -= n as u64;
                rx.fetch_add(n as u64, Ordering::Relaxed);
            }
            s.write_all(&h.finish()).unwrap();
            // Hold the connection until the client closes it.
            let _ = s.read(&mut buf);
        })
        .unwrap();
    let d = Daemon::start(
        &t.client,
        &config("subflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\n"),
    );
    d.wait_ready();

    const LEN: usize = 8 << 20;
    let data = payload(LEN);
    let mut want = Sha256::new();
    want.update(&data);
    let want = want.finish();
    let dst = SocketAddr::new(t.server_addr(0), PORT);
    let sender = t
        .client
        .exec_bg(move || {
            let mut s = mptcp::connect(dst, None).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let started = Instant::now();
            s.write_all(&(LEN as u64).to_be_bytes()).unwrap();
            for chunk in data.chunks(64 * 1024) {
                s.write_all(chunk).unwrap();
            }
            let mut digest = [0u8; 32];
            s.read_exact(&mut digest).unwrap();
            (s, digest, started.elapsed())
        })
        .unwrap();
    let both = [t.client_addr(0), t.client_addr(1)];
    wait_mesh(&t, 1, &both, Duration::from_secs(10))
        .unwrap_or_else(|s| panic!("transfer not meshed: {s}\n{}", d.log()));
    // Fail link 1 once a real part of the data went through, well before the end.
    wait_for(Duration::from_secs(10), || {
        (received.load(Ordering::Relaxed) > (LEN / 8) as u64).then_some(())
    })
    .expect("transfer does not progress");
    let at_failure = received.load(Ordering::Relaxed);
    assert!(
        at_failure < LEN as u64 * 3 / 4,
        "transfer too fast to fail mid-way ({at_failure} of {LEN} bytes already received)"
    );
    t.set_link(1, false).unwrap();
    wait_mesh(&t, 1, &both[..1], Duration::from_secs(10))
        .unwrap_or_else(|s| panic!("subflow on the failed link stayed: {s}\n{}", d.log()));
    let (stream, digest, took) = sender.join().expect("sender thread");
    assert_eq!(
        hex(&digest),
        hex(&want),
        "server's SHA-256 of the {LEN} bytes differs from the sender's"
    );
    assert_eq!(received.load(Ordering::Relaxed), LEN as u64);
    eprintln!("8 MB with a link failure at {at_failure} bytes took {took:?}");
    t.set_link(1, true).unwrap();
    wait_mesh(&t, 1, &both, Duration::from_secs(20))
        .unwrap_or_else(|s| panic!("subflow not re-created after link up: {s}\n{}", d.log()));
    drop(stream);
}

#[test]
fn crash_under_load_then_restart_adopts_and_meshes_every_connection() {
    if !kernel_tests_enabled("crash_under_load_then_restart_adopts_and_meshes_every_connection") {
        return;
    }
    let t = topo(2, vec![]);
    echo(&t);
    let cfg = config("subflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\n");
    let mut d = Daemon::start(&t.client, &cfg);
    d.wait_ready();
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let rounds = Arc::new(AtomicU64::new(0));
    // Each connection carries traffic (4 KB echoed in a loop) on its own thread.
    let load = |s: TcpStream| {
        let (stop, errors, rounds) = (stop.clone(), errors.clone(), rounds.clone());
        std::thread::spawn(move || {
            let mut s = s;
            let msg = payload(4096);
            while !stop.load(Ordering::Relaxed) {
                if mptcp::ping(&mut s, &msg).is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut threads: Vec<_> = (0..20).map(|_| load(connect_one(&t))).collect();
    let both = [t.client_addr(0), t.client_addr(1)];
    wait_mesh(&t, 20, &both, Duration::from_secs(15))
        .unwrap_or_else(|s| panic!("not meshed before the crash: {s}\n{}", d.log()));
    d.kill();
    // While no daemon runs, five more connections open (initial subflow only) and traffic
    // goes on.
    threads.extend((0..5).map(|_| load(connect_one(&t))));
    std::thread::sleep(Duration::from_millis(500));
    let before = rounds.load(Ordering::Relaxed);
    let d2 = Daemon::start(&t.client, &cfg);
    d2.wait_ready();
    assert!(
        d2.log().contains("adopted_connections: 25"),
        "restart must adopt all 25 live connections:\n{}",
        d2.log()
    );
    wait_mesh(&t, 25, &both, Duration::from_secs(20))
        .unwrap_or_else(|s| panic!("restart did not mesh every connection: {s}\n{}", d2.log()));
    std::thread::sleep(Duration::from_secs(1));
    wait_mesh(&t, 25, &both, Duration::from_secs(1))
        .unwrap_or_else(|s| panic!("mesh not stable (duplicates?): {s}\n{}", d2.log()));
    assert!(
        rounds.load(Ordering::Relaxed) > before,
        "traffic stalled after the restart"
    );
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        th.join().unwrap();
    }
    assert_eq!(
        errors.load(Ordering::Relaxed),
        0,
        "connections broke during crash/restart"
    );
}

#[test]
fn kernel_refusals_are_logged_bounded_and_not_fatal() {
    if !kernel_tests_enabled("kernel_refusals_are_logged_bounded_and_not_fatal") {
        return;
    }
    let t = topo(2, vec![]);
    echo(&t);
    // Three connections open before the daemon runs. Then the client's ephemeral port range
    // shrinks to two ports, both bound on link 1's address: the kernel can no longer bind a
    // join there, so every SUBFLOW_CREATE from it is refused ("connect error: -98",
    // EADDRINUSE) while the address stays usable in the daemon's eyes.
    let conns: Vec<TcpStream> = (0..3).map(|_| connect_one(&t)).collect();
    t.client
        .sysctl("net.ipv4.ip_local_port_range", "50000 50001")
        .unwrap();
    let a1 = t.client_addr(1);
    let blockers = t
        .client
        .exec(move || {
            [50000u16, 50001]
                .map(|p| std::net::TcpListener::bind(SocketAddr::new(a1, p)).expect("bind blocker"))
        })
        .unwrap();
    let max_retries = 3;
    let mut d = Daemon::start(
        &t.client,
        &config(&format!(
            "subflow:\n  backoff_initial_ms: 100\n  backoff_max_ms: 400\n  max_retries: {max_retries}\n"
        )),
    );
    d.wait_ready();
    assert!(d.log().contains("adopted_connections: 3"), "{}", d.log());
    assert!(
        d.wait_log("kernel refused command", Duration::from_secs(10)),
        "no refusal provoked:\n{}",
        d.log()
    );
    // Let every backoff run out: 100+200+400+400 ms plus slack.
    std::thread::sleep(Duration::from_secs(4));
    let log = d.log();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("kernel refused command"))
        .collect();
    eprintln!(
        "{} refusals, e.g.:\n{}",
        refusals.len(),
        refusals
            .iter()
            .take(4)
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for r in &refusals {
        assert!(
            r.contains("errno") && r.contains("kernel_msg") && !r.contains("kernel_msg: -"),
            "refusal logged without the kernel's message: {r}"
        );
    }
    // Bounded: at most 1 + max_retries attempts per connection, and no new ones later.
    let bound = conns.len() * (1 + max_retries);
    assert!(
        refusals.len() <= bound,
        "{} refusals for {} connections exceed 1 + max_retries each:\n{log}",
        refusals.len(),
        conns.len()
    );
    // Per connection: retried (with at least the initial backoff between the first two
    // attempts), and given up after at most 1 + max_retries attempts.
    let mut per_token: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for r in &refusals {
        let token = r
            .split("token: 0x")
            .nth(1)
            .and_then(|t| t.split(',').next())
            .unwrap_or("?");
        per_token.entry(token).or_default().push(log_time_s(r));
    }
    assert_eq!(
        per_token.len(),
        conns.len(),
        "every connection is tried: {per_token:?}"
    );
    for (token, times) in &per_token {
        assert!(
            (2..=1 + max_retries).contains(&times.len()),
            "token {token}: {} attempts, want 2..={} (retried, then given up)",
            times.len(),
            1 + max_retries
        );
        let gap = times[1] - times[0];
        assert!(
            gap >= 0.09,
            "token {token}: retried after {gap:.3} s, before backoff_initial_ms (100 ms)"
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    let later = count(&d.log(), "kernel refused command");
    assert_eq!(
        later,
        refusals.len(),
        "the daemon keeps retrying a refused subflow after max_retries:\n{}",
        d.log()
    );
    assert!(d.running(), "a kernel refusal must not stop the daemon");
    // Still doing its job: with ports available again a new connection gets its mesh.
    drop(blockers);
    t.client
        .sysctl("net.ipv4.ip_local_port_range", "32768 60999")
        .unwrap();
    echo_v4_mesh(&t, &d);
    assert_eq!(d.stop(Duration::from_secs(10)), Some(0));
    drop(conns);
}

fn echo_v4_mesh(t: &Topology, d: &Daemon) {
    let s = connect_one(t);
    let both = [t.client_addr(0), t.client_addr(1)];
    let ok = wait_for(Duration::from_secs(10), || {
        let m = subflows(&t.client, PORT);
        m.values()
            .any(|v| {
                v.iter().all(|s| s.local.is_ipv4())
                    && v.iter().map(|s| s.local.ip()).collect::<BTreeSet<_>>()
                        == both.iter().copied().collect()
            })
            .then_some(())
    });
    assert!(
        ok.is_some(),
        "daemon stopped meshing after refusals:\n{}",
        d.log()
    );
    drop(s);
}
