//! A log reader that stops reading (issue 15, item 3), against the real kernel and the real
//! `mptcp-pmd` binary: stderr into a pipe that nobody reads, `log.level: debug`. The daemon
//! must go on managing subflows (what counts is what the kernel reports, `ss`), answer
//! `status`, and count what it could not write; once the reader comes back the count is in the
//! log. See docs/OPERATIONS.md ("Logs").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration::daemon::{daemon_bin, Daemon, DaemonOpts};
use integration::observe::subflows;
use integration::{kernel_tests_enabled, mptcp, wait_for, Pm, TopoOpts, Topology};

const PORT: u16 = 5302;
const METRICS_PORT: u16 = 9464;

/// Open `total` connections from `parallel` threads at once (each pinged: fully established)
/// and keep them open.
fn open(t: &Topology, parallel: usize, total: usize) -> Vec<TcpStream> {
    let dst = SocketAddr::new(t.server_addr(0), PORT);
    let next = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..parallel)
        .map(|_| {
            let next = next.clone();
            t.client
                .exec_bg(move || {
                    let mut mine = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        let mut s = mptcp::connect(dst, None).expect("connect");
                        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        mptcp::ping(&mut s, b"x").expect("ping");
                        mine.push(s);
                    }
                    mine
                })
                .unwrap()
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect()
}

/// Wait until `conns` connections towards PORT exist, each with exactly one subflow per
/// address in `want`; on failure the last observation, summarised.
fn wait_mesh(t: &Topology, conns: usize, want: &[IpAddr], timeout: Duration) -> Result<(), String> {
    let want: BTreeSet<IpAddr> = want.iter().copied().collect();
    let mut last = String::new();
    wait_for(timeout, || {
        let m = subflows(&t.client, PORT);
        let bad = m
            .values()
            .filter(|v| {
                let locals: BTreeSet<IpAddr> = v.iter().map(|s| s.local.ip()).collect();
                locals != want || v.len() != want.len()
            })
            .count();
        let mut hist = BTreeMap::new();
        for v in m.values() {
            *hist.entry(v.len()).or_insert(0usize) += 1;
        }
        last = format!(
            "{} connections (want {conns}), {bad} not meshed as {want:?}; connections by subflow count: {hist:?}",
            m.len()
        );
        (m.len() == conns && bad == 0).then_some(())
    })
    .ok_or(last)
}

/// `mptcp-pmd status` answers (its client gives up after 10 s) and lists `n` connections.
fn assert_status_lists(d: &Daemon, n: usize) {
    let o = std::process::Command::new(daemon_bin())
        .args(["status", "--json", "-s"])
        .arg(d.control_socket())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "status with a stalled log reader: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["connections"].as_array().map(Vec::len), Some(n), "{v}");
}

fn dropped_metric(t: &Topology) -> f64 {
    let m = integration::metrics::samples(&integration::metrics::scrape(&t.client, METRICS_PORT));
    m.get("mptcp_pmd_log_lines_dropped_total")
        .copied()
        .expect("no mptcp_pmd_log_lines_dropped_total")
}

#[test]
fn a_log_reader_that_stops_reading_does_not_stall_the_daemon() {
    if !kernel_tests_enabled("a_log_reader_that_stops_reading_does_not_stall_the_daemon") {
        return;
    }
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        shaping: vec![],
    })
    .expect("topology");
    let addr = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), PORT);
    let l = t.server.exec(move || mptcp::listen(addr)).unwrap().unwrap();
    t.server.exec_bg(move || mptcp::echo_server(l)).unwrap();

    let mut d = Daemon::spawn(
        &t.client,
        &format!("policy: fullmesh\nlog:\n  level: debug\nmetrics:\n  listen: 127.0.0.1:{METRICS_PORT}\n"),
        DaemonOpts {
            log_level: "debug".into(),
            notify: true,
            unread_output: true,
            ..DaemonOpts::default()
        },
    );
    assert!(
        d.ready_after(Duration::from_secs(90)).is_some(),
        "no READY=1 within 90 s"
    );

    // 300 connections, 8 at a time, while nobody reads the log (the case: the pipe's
    // 64 KiB held ~340 lines and the daemon froze in `write`).
    let mut conns = open(&t, 8, 300);
    let both = [t.client_addr(0), t.client_addr(1)];
    if let Err(seen) = wait_mesh(&t, conns.len(), &both, Duration::from_secs(60)) {
        panic!("with a stalled log reader not every connection is meshed: {seen}");
    }
    assert_status_lists(&d, 300);
    // At debug level 300 connections log ~1 500 lines: the pipe and the daemon's queue
    // (logging::QUEUE_LINES) hold them. 300 more overflow the queue: lines must now be dropped
    // while the daemon goes on.
    conns.extend(open(&t, 8, 300));
    if let Err(seen) = wait_mesh(&t, conns.len(), &both, Duration::from_secs(60)) {
        panic!("with a full log queue not every connection is meshed: {seen}");
    }
    assert_status_lists(&d, 600);
    let dropped = dropped_metric(&t);
    assert!(
        dropped > 0.0,
        "no log line dropped with nobody reading 600 connections' lines"
    );

    // The reader comes back: what was queued is written, and the next line (here: a new
    // connection's) is preceded by the count of what was lost.
    d.read_output();
    std::thread::sleep(Duration::from_millis(1100));
    let _one_more = open(&t, 1, 1);
    assert!(
        d.wait_log("log lines dropped", Duration::from_secs(30)),
        "no `N log lines dropped` line after the reader came back:\n{}",
        d.log()
    );
    let log = d.log();
    let reported: u64 = log
        .lines()
        .filter(|l| l.contains("log lines dropped"))
        .map(|l| {
            let n = l.split(" WARN ").nth(1).and_then(|r| r.split(' ').next());
            n.and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no count in {l}"))
        })
        .sum();
    assert!(reported > 0, "{log}");
    assert!(
        reported as f64 <= dropped_metric(&t),
        "reported {reported} dropped lines, the metric says {}",
        dropped_metric(&t)
    );
    assert_eq!(d.stop(Duration::from_secs(20)), Some(0));
    assert!(
        d.log()
            .lines()
            .last()
            .is_some_and(|l| l.contains("stopped")),
        "the last lines before the exit are written:\n{}",
        d.log()
    );
}
