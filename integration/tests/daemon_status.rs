//! End to end: operating the real `mptcp-pmd` — the control socket (`status`, `addresses`,
//! mode 0600, stale file replaced, a second daemon refused), the Prometheus endpoint, the
//! capability drop, sd_notify and JSON logs — against connections the kernel reports with `ss`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use integration::daemon::{daemon_bin, Daemon};
use integration::observe::subflows;
use integration::{kernel_tests_enabled, mptcp, wait_for, Pm, TopoOpts, Topology};

const PORT: u16 = 5301;

const METRICS_PORT: u16 = 9464;

fn topo() -> Topology {
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        ..Default::default()
    })
    .expect("topology");
    let addr = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), PORT);
    let l = t.server.exec(move || mptcp::listen(addr)).unwrap().unwrap();
    t.server.exec_bg(move || mptcp::echo_server(l)).unwrap();
    t
}

fn tmp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mptcp-pmd-status-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(sock: &Path, extra: &str) -> String {
    format!(
        "policy: fullmesh\nsubflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\ncontrol:\n  socket: {}\n{extra}",
        sock.display()
    )
}

fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let o = std::process::Command::new(daemon_bin())
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn connect(t: &Topology, n: usize) -> Vec<std::net::TcpStream> {
    let dst = SocketAddr::new(t.server_addr(0), PORT);
    (0..n)
        .map(|_| {
            let mut s = t
                .client
                .exec(move || mptcp::connect(dst, None))
                .unwrap()
                .expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            mptcp::ping(&mut s, b"establish").expect("ping");
            s
        })
        .collect()
}

/// (token, sorted (local, remote) of established subflows) from the daemon's JSON status.
fn daemon_view(v: &serde_json::Value) -> BTreeMap<String, Vec<(SocketAddr, SocketAddr)>> {
    let mut m = BTreeMap::new();
    for c in v["connections"].as_array().unwrap() {
        let mut subs: Vec<(SocketAddr, SocketAddr)> = c["subflows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] == "established")
            .map(|s| {
                (
                    s["local"].as_str().unwrap().parse().unwrap(),
                    s["remote"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();
        subs.sort();
        m.insert(c["token"].as_str().unwrap().to_string(), subs);
    }
    m
}

fn scrape(t: &Topology) -> String {
    integration::metrics::scrape(&t.client, METRICS_PORT)
}

fn caps_of(pid: u32) -> BTreeMap<String, u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.starts_with("Cap")
                .then(|| (k.to_string(), u64::from_str_radix(v.trim(), 16).unwrap()))
        })
        .collect()
}

#[test]
fn status_matches_ss_metrics_move_caps_dropped_second_daemon_refused() {
    if !kernel_tests_enabled("status_matches_ss_metrics_move_caps_dropped_second_daemon_refused") {
        return;
    }
    let t = topo();
    let dir = tmp("main");
    let sock = dir.join("ctl.sock");
    // A stale socket file, as a crashed daemon leaves it: bound, nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let cfg = config(
        &sock,
        &format!("metrics:\n  listen: 127.0.0.1:{METRICS_PORT}\n"),
    );
    let mut d = Daemon::start(&t.client, &cfg);
    d.wait_ready();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode");

    let _conns = connect(&t, 3);
    let want: BTreeSet<_> = [t.client_addr(0), t.client_addr(1)].into();
    let ss = wait_for(Duration::from_secs(15), || {
        let m = subflows(&t.client, PORT);
        (m.len() == 3
            && m.values().all(|v| {
                v.len() == 2 && v.iter().map(|s| s.local.ip()).collect::<BTreeSet<_>>() == want
            }))
        .then_some(m)
    })
    .unwrap_or_else(|| panic!("not meshed: {:#?}\n{}", subflows(&t.client, PORT), d.log()));
    let ss_view: BTreeMap<String, Vec<(SocketAddr, SocketAddr)>> = ss
        .iter()
        .map(|(tok, v)| {
            let mut s: Vec<_> = v.iter().map(|s| (s.local, s.remote)).collect();
            s.sort();
            (format!("{:0>8}", tok), s)
        })
        .collect();

    // JSON status: exactly the connections and established subflows ss shows (the state machine
    // may lag an event behind the kernel for a moment, so poll briefly).
    let s = sock.to_str().unwrap();
    let mut last = String::new();
    let json = wait_for(Duration::from_secs(5), || {
        let (code, out, err) = cli(&["status", "--json", "-s", s]);
        assert_eq!(code, Some(0), "status --json failed: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        last = out;
        (daemon_view(&v) == ss_view).then_some(v)
    })
    .unwrap_or_else(|| panic!("daemon status differs from ss {ss_view:#?}:\n{last}"));
    for c in json["connections"].as_array().unwrap() {
        assert_eq!(c["policy"], "fullmesh");
        assert_eq!(c["rule"], "default");
        for f in c["subflows"].as_array().unwrap() {
            if f["state"] == "established" {
                // fullmesh does not poll subflow samples: the status takes its own snapshot,
                // and every established subflow has an RTT from its handshake at least.
                assert!(
                    f["srtt_us"].as_u64().is_some_and(|v| v > 0),
                    "no srtt for an established subflow: {c:?}"
                );
                assert!(f["age_s"].as_f64().unwrap() >= 0.0);
            }
        }
    }

    // Table: every token and every subflow endpoint appears.
    let (code, table, err) = cli(&["status", "-s", s]);
    assert_eq!(code, Some(0), "{err}");
    for (tok, subs) in &ss_view {
        assert!(table.contains(&format!("connection {tok}")), "{table}");
        for (l, r) in subs {
            assert!(
                table.contains(&l.to_string()) && table.contains(&r.to_string()),
                "{table}"
            );
        }
    }
    assert!(table.contains("LOCAL") && table.contains("SRTT"), "{table}");

    // Addresses: both client addresses usable, loopback skipped with a reason.
    let (code, out, err) = cli(&["addresses", "--json", "-s", s]);
    assert_eq!(code, Some(0), "{err}");
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    let usable: BTreeSet<String> = a["usable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["addr"].as_str().unwrap().to_string())
        .collect();
    for ip in &want {
        assert!(usable.contains(&ip.to_string()), "{out}");
    }
    assert!(
        a["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["addr"] == "127.0.0.1" && !x["reason"].as_str().unwrap().is_empty()),
        "{out}"
    );

    // Metrics: counters moved as the connections went.
    let body = scrape(&t);
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    let m = integration::metrics::samples(&body);
    let get = |k: &str| m.get(k).copied().unwrap_or(-1.0);
    assert!(
        get("mptcp_pmd_events_total{event=\"created\"}") >= 3.0,
        "{body}"
    );
    assert!(
        get("mptcp_pmd_events_total{event=\"sub_established\"}") >= 3.0,
        "{body}"
    );
    assert!(
        get("mptcp_pmd_commands_total{command=\"subflow_create\",result=\"ok\"}") >= 3.0,
        "{body}"
    );
    assert_eq!(get("mptcp_pmd_connections"), 3.0, "{body}");
    assert_eq!(
        get("mptcp_pmd_subflows{state=\"established\"}"),
        6.0,
        "{body}"
    );
    assert!(
        get("mptcp_pmd_sock_diag_poll_seconds_count") >= 1.0,
        "{body}"
    );
    assert_eq!(get("mptcp_pmd_event_overruns_total"), 0.0, "{body}");
    let not_found = t
        .client
        .exec(|| {
            let mut s = TcpStream::connect(("127.0.0.1", METRICS_PORT)).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .unwrap();
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");

    // Capabilities: only CAP_NET_ADMIN (bit 12) is left.
    let pid = json["pid"].as_u64().unwrap() as u32;
    let caps = caps_of(pid);
    for k in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(caps[k], 1 << 12, "{k} = {:#x}", caps[k]);
    }
    assert_eq!(caps["CapInh"], 0);
    assert_eq!(caps["CapAmb"], 0);

    // kernel.nice (default -20) holds for every thread of the daemon, not just the first, but
    // the log writer's, which goes back to 0 (docs/OPERATIONS.md, "When the log reader stalls").
    let mut threads = 0;
    let mut writers = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
        // Fields after the parenthesised command name; nice is field 19 of stat(5).
        let comm = &stat[stat.find('(').unwrap() + 1..stat.rfind(')').unwrap()];
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let nice: i32 = rest.split(' ').nth(16).unwrap().parse().unwrap();
        if comm == "log-writer" {
            assert_eq!(nice, 0, "{stat}");
            writers += 1;
        } else {
            assert_eq!(nice, -20, "{stat}");
            threads += 1;
        }
    }
    assert!(
        threads >= 2,
        "the diag poller's thread is listed too ({threads})"
    );
    assert_eq!(writers, 1, "one log writer thread");

    // SIGHUP still works without the dropped capabilities.
    std::fs::write(
        d.config_path(),
        cfg.replace("backoff_max_ms: 1000", "backoff_max_ms: 2000"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log("configuration reloaded", Duration::from_secs(5)),
        "{}",
        d.log()
    );

    // A second daemon in the namespace refuses to start with exit code 75 (the namespace's
    // lock, before the control socket); one in another namespace on the same socket path gets
    // past the lock and refuses with 73 (the socket is live), before touching that
    // namespace's path manager.
    let mut second = Daemon::start(&t.client, &config(&sock, ""));
    let exited = second.wait_exit(Duration::from_secs(10));
    assert!(
        matches!(exited, Some((Some(75), _))),
        "second daemon in the namespace: {exited:?}\n{}",
        second.log()
    );
    assert!(
        second
            .log()
            .contains("already manages this network namespace"),
        "{}",
        second.log()
    );
    let router_pm = || {
        t.router
            .run(&["sysctl", "-n", "net.mptcp.path_manager"])
            .unwrap()
    };
    let pm_before = router_pm();
    let mut elsewhere = Daemon::start(&t.router, &config(&sock, ""));
    let exited = elsewhere.wait_exit(Duration::from_secs(10));
    assert!(
        matches!(exited, Some((Some(73), _))),
        "daemon in another namespace on the same socket: {exited:?}\n{}",
        elsewhere.log()
    );
    assert!(
        elsewhere.log().contains("already running"),
        "{}",
        elsewhere.log()
    );
    assert_eq!(router_pm(), pm_before, "refused before touching the kernel");
    assert!(
        d.running(),
        "first daemon must survive the others' attempts"
    );
    let (code, _, err) = cli(&["status", "-s", s]);
    assert_eq!(code, Some(0), "its socket still serves it: {err}");

    // A clean stop removes the file.
    assert_eq!(d.stop(Duration::from_secs(10)), Some(0));
    assert!(!sock.exists(), "socket removed on clean stop");
    let (code, _, err) = cli(&["status", "-s", s]);
    assert_eq!(code, Some(69), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn notifies_systemd_when_ready_and_logs_json() {
    if !kernel_tests_enabled("notifies_systemd_when_ready_and_logs_json") {
        return;
    }
    let t = topo();
    let dir = tmp("notify");
    let notify_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&notify_path);
    let nsock = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    nsock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let cfg = dir.join("cfg.yaml");
    std::fs::write(
        &cfg,
        config(
            &dir.join("ctl.sock"),
            "log:\n  format: json\nkernel:\n  realtime_priority: 10\n",
        ),
    )
    .unwrap();
    let log_path = dir.join("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = t
        .client
        .command(daemon_bin().to_str().unwrap())
        .args(["-c", cfg.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = nsock.recv(&mut buf).expect("no READY=1 within 10 s");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    let log_at_ready = std::fs::read_to_string(&log_path).unwrap();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    assert!(
        log_at_ready.contains("\"msg\":\"started\""),
        "READY=1 before the started line:\n{log_at_ready}"
    );
    // kernel.realtime_priority: the event/command thread runs SCHED_FIFO 10, the sock_diag
    // thread is back on the normal scheduler (stat(5): rt_priority and policy, fields 40-41).
    let pid = child.id();
    let mut policies = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let tid: u32 = path.file_name().unwrap().to_str().unwrap().parse().unwrap();
        let stat = std::fs::read_to_string(path.join("stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let (rt_prio, policy): (u32, u32) = (f[37].parse().unwrap(), f[38].parse().unwrap());
        policies.insert(tid, (rt_prio, policy));
    }
    assert_eq!(
        policies.get(&pid),
        Some(&(10, 1)),
        "main thread: {policies:?}"
    );
    assert!(
        policies.values().any(|p| *p == (0, 0)),
        "no thread on SCHED_OTHER (the sock_diag poller): {policies:?}"
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let n = nsock.recv(&mut buf).expect("no STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    // Every stderr line is one JSON object with level and msg.
    let text = std::fs::read_to_string(&log_path).unwrap();
    let mut lines = 0;
    for l in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["level"].is_string() && v["msg"].is_string(), "{l}");
        lines += 1;
    }
    assert!(lines >= 3, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_aggregates_two_links() {
    if !kernel_tests_enabled("demo_aggregates_two_links") {
        return;
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mptcp-pm-demo"))
        .args(["--seconds", "3"])
        .env("MPTCP_PMD_BIN", daemon_bin())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    let result = out
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line:\n{out}\n{err}"));
    let kv: BTreeMap<&str, f64> = result
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k, v.parse().unwrap()))
        .collect();
    assert!(kv["ratio"] > 1.5, "ratio too low:\n{out}\n{err}");
    assert!(kv["tcp_mbit"] > 5.0 && kv["tcp_mbit"] < 25.0, "{out}");
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    // The demo printed the daemon's status with both subflows established.
    assert!(out.contains("$ mptcp-pmd status"), "{out}");
    assert_eq!(out.matches("established").count(), 2, "{out}");
}
