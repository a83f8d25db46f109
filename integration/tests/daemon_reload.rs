//! End to end: a SIGHUP while the configuration path is something that cannot be read like a
//! file (issue 15: a FIFO nobody writes to used to freeze the event loop in `open`). The
//! daemon must keep serving — `status` answers, new connections get their subflows — refuse
//! the new "configuration", and keep the old one in force.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::daemon::{daemon_bin, Daemon};
use integration::observe::subflows;
use integration::{kernel_tests_enabled, wait_for, Pm, TopoOpts, Topology};

const PORT: u16 = 5401;

/// Not the defaults (fullmesh): what new connections get shows which configuration is in force.
const OLD: &str = "policy: ndiffports\nndiffports:\n  subflows: 3\nsubflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\n";

fn topo() -> Topology {
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        ..Default::default()
    })
    .expect("topology");
    t.serve_echo(PORT).expect("echo server");
    t
}

fn connect(t: &Topology, n: usize) -> Vec<TcpStream> {
    t.connect_many(PORT, n).expect("connect")
}

/// Every connection towards PORT has 3 subflows from the first client address with distinct
/// source ports (ndiffports with `subflows: 3`; fullmesh would use both addresses).
fn ndiffports_3(t: &Topology, conns: usize) -> bool {
    let m = subflows(&t.client, PORT);
    m.len() == conns
        && m.values().all(|v| {
            let ports: BTreeSet<u16> = v.iter().map(|s| s.local.port()).collect();
            let locals: BTreeSet<IpAddr> = v.iter().map(|s| s.local.ip()).collect();
            v.len() == 3 && ports.len() == 3 && locals == BTreeSet::from([t.client_addr(0)])
        })
}

/// `mptcp-pmd status --json -s SOCK`, killed if it has not answered within 5 s (a frozen event
/// loop never answers). Exit code and stdout.
fn status(d: &Daemon) -> (Option<i32>, String) {
    let mut child = Command::new(daemon_bin())
        .args([
            "status",
            "--json",
            "-s",
            d.control_socket().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("status did not answer within 5 s:\n{}", d.log());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn sighup_with_a_fifo_as_config_keeps_serving_and_keeps_the_old_config() {
    if !kernel_tests_enabled("sighup_with_a_fifo_as_config_keeps_serving_and_keeps_the_old_config")
    {
        return;
    }
    let t = topo();
    let mut d = Daemon::start(&t.client, OLD);
    d.wait_ready();
    let _before = connect(&t, 2);
    assert!(
        wait_for(Duration::from_secs(15), || ndiffports_3(&t, 2)
            .then_some(()))
        .is_some(),
        "the old configuration was not applied: {:#?}\n{}",
        subflows(&t.client, PORT),
        d.log()
    );

    // As in the report: mv live.yaml live.bak; mkfifo live.yaml; kill -HUP. Nobody ever opens
    // the FIFO for writing, so a read of it would wait forever.
    let live = d.config_path();
    std::fs::rename(&live, live.with_extension("bak")).unwrap();
    let c = std::ffi::CString::new(live.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log("new configuration rejected", Duration::from_secs(5)),
        "no rejection logged:\n{}",
        d.log()
    );
    assert!(
        d.log()
            .contains("it is a FIFO (named pipe), not a regular file"),
        "the rejection says what the path is:\n{}",
        d.log()
    );
    // A second SIGHUP with the FIFO still there: the same, and the daemon goes on.
    d.signal(libc::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(5), || {
            (d.count("new configuration rejected") >= 2).then_some(())
        })
        .is_some(),
        "{}",
        d.log()
    );

    // The loop serves: status answers, with the old policy on every connection.
    let (code, out) = status(&d);
    assert_eq!(code, Some(0), "status failed:\n{}", d.log());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let conns = v["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2, "{out}");
    assert!(conns.iter().all(|c| c["policy"] == "ndiffports"), "{out}");

    // New connections get their subflows, by the old configuration (3 over the initial path).
    let _after = connect(&t, 3);
    assert!(
        wait_for(Duration::from_secs(15), || ndiffports_3(&t, 5)
            .then_some(()))
        .is_some(),
        "new connections not served by the old configuration: {:#?}\n{}",
        subflows(&t.client, PORT),
        d.log()
    );
    let (code, out) = status(&d);
    assert_eq!(code, Some(0), "status failed:\n{}", d.log());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["connections"].as_array().unwrap().len(), 5, "{out}");

    assert!(d.running(), "the daemon stopped:\n{}", d.log());
    // The FIFO was never written to: the stop is clean as well.
    assert_eq!(d.stop(Duration::from_secs(5)), Some(0), "{}", d.log());
}

/// Subflows of each connection towards PORT by local address: (count, whether one of them is
/// the initial subflow: MP_CAPABLE in its ss flags).
fn per_local(t: &Topology) -> Vec<std::collections::BTreeMap<IpAddr, (usize, bool)>> {
    subflows(&t.client, PORT)
        .values()
        .map(|v| {
            let mut m = std::collections::BTreeMap::new();
            for s in v {
                let e = m.entry(s.local.ip()).or_insert((0, false));
                e.0 += 1;
                e.1 |= s.flags.contains('M') || s.flags.contains('m');
            }
            m
        })
        .collect()
}

fn reload(d: &Daemon, yaml: &str) {
    let before = d.count("configuration reloaded");
    std::fs::write(d.config_path(), yaml).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(10), || (d
            .count("configuration reloaded")
            > before)
            .then_some(()))
        .is_some(),
        "no reload:\n{}",
        d.log()
    );
}

const FULLMESH: &str =
    "policy: fullmesh\nsubflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\n";

/// Issue 15 item 6: a reload from ndiffports (3) to fullmesh used to leave every connection
/// with 4 subflows, 3 on the initial pair. What a reload does (README "Signals",
/// docs/POLICIES.md): the new policy takes over every open connection; fullmesh keeps one
/// subflow per (local, remote) pair — the initial one on its pair — and opens the missing
/// pairs. Back to ndiffports, the initial pair gets its 3 subflows again and the other pair's
/// subflow is left alone (ndiffports never closes subflows). Verdicts from the kernel (`ss`).
#[test]
fn a_reload_changes_the_kernels_subflows_of_open_connections() {
    if !kernel_tests_enabled("a_reload_changes_the_kernels_subflows_of_open_connections") {
        return;
    }
    let t = topo();
    let mut d = Daemon::start(&t.client, OLD);
    d.wait_ready();
    let n = 3;
    let _conns = connect(&t, n);
    assert!(
        wait_for(Duration::from_secs(15), || ndiffports_3(&t, n)
            .then_some(()))
        .is_some(),
        "{:#?}\n{}",
        subflows(&t.client, PORT),
        d.log()
    );
    let (a0, a1) = (t.client_addr(0), t.client_addr(1));

    reload(&d, FULLMESH);
    let meshed = |t: &Topology| {
        let p = per_local(t);
        p.len() == n
            && p.iter().all(|m| {
                m.get(&a0) == Some(&(1, true)) && m.get(&a1) == Some(&(1, false)) && m.len() == 2
            })
    };
    assert!(
        wait_for(Duration::from_secs(15), || meshed(&t).then_some(())).is_some(),
        "after the reload to fullmesh: {:?}\n{}",
        per_local(&t),
        d.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(meshed(&t), "not stable: {:?}", per_local(&t));
    assert_eq!(d.count("reason: duplicate"), 2 * n, "{}", d.log());

    reload(&d, OLD);
    let ndiff_again = |t: &Topology| {
        let p = per_local(t);
        p.len() == n
            && p.iter()
                .all(|m| m.get(&a0) == Some(&(3, true)) && m.get(&a1) == Some(&(1, false)))
    };
    assert!(
        wait_for(Duration::from_secs(15), || ndiff_again(&t).then_some(())).is_some(),
        "after the reload back to ndiffports: {:?}\n{}",
        per_local(&t),
        d.log()
    );
    assert_eq!(d.stop(Duration::from_secs(5)), Some(0), "{}", d.log());
}

/// Issue 15 item 7: a reload changes the log level and the address filters at once. At
/// `warning`, the closes that an excluded interface causes happen (the kernel shows them) and
/// log nothing below a warning; back at `debug` with the interface allowed again, its
/// subflows return and the debug lines with them.
#[test]
fn a_reload_changes_the_log_level_and_the_address_filters() {
    if !kernel_tests_enabled("a_reload_changes_the_log_level_and_the_address_filters") {
        return;
    }
    let t = topo();
    let mut d = Daemon::start(&t.client, &format!("{FULLMESH}log:\n  level: debug\n"));
    d.wait_ready();
    let n = 2;
    let _conns = connect(&t, n);
    let (a0, a1) = (t.client_addr(0), t.client_addr(1));
    let locals = |t: &Topology| -> Vec<BTreeSet<IpAddr>> {
        subflows(&t.client, PORT)
            .values()
            .map(|v| v.iter().map(|s| s.local.ip()).collect())
            .collect()
    };
    let all_are = |want: BTreeSet<IpAddr>| {
        let t = &t;
        move || {
            let l = locals(t);
            (l.len() == n && l.iter().all(|s| *s == want)).then_some(())
        }
    };
    assert!(
        wait_for(Duration::from_secs(15), all_are([a0, a1].into())).is_some(),
        "{}",
        d.log()
    );

    reload(
        &d,
        &format!("{FULLMESH}log:\n  level: warning\naddresses:\n  exclude_interfaces: [c1]\n"),
    );
    let quiet_from = d.log().len();
    assert!(
        wait_for(Duration::from_secs(15), all_are([a0].into())).is_some(),
        "the excluded interface kept its subflows: {:?}\n{}",
        locals(&t),
        d.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let quiet = d.log()[quiet_from..].to_string();
    assert!(
        !quiet
            .lines()
            .any(|l| l.contains(" INFO ") || l.contains(" DEBG ")),
        "lines below warning after the reload to warning:\n{quiet}"
    );

    // The reload line itself is at info: at warning it is not written. Wait for its effect.
    std::fs::write(d.config_path(), format!("{FULLMESH}log:\n  level: debug\n")).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(15), all_are([a0, a1].into())).is_some(),
        "the interface's subflows did not return: {:?}\n{}",
        locals(&t),
        d.log()
    );
    let loud = d.log()[quiet_from..].to_string();
    assert!(
        loud.lines()
            .any(|l| l.contains(" DEBG ") && l.contains("command")),
        "no debug lines after the reload to debug:\n{loud}"
    );
    assert!(
        loud.lines()
            .filter(|l| l.contains(" INFO decision") && l.contains("reason: mesh"))
            .count()
            >= n,
        "{loud}"
    );
    assert_eq!(d.stop(Duration::from_secs(5)), Some(0), "{}", d.log());
}
