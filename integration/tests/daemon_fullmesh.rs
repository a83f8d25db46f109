//! End to end: the real `mptcp-pmd` binary with the fullmesh policy, in a client namespace on
//! the userspace PM, against the real kernel. What counts is what the kernel reports (`ss`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use integration::daemon::Daemon;
use integration::observe::subflows;
use integration::{kernel_tests_enabled, wait_for, Pm, TopoOpts, Topology};

const PORT: u16 = 5201;

fn topo(client_links: usize, server_links: usize) -> Topology {
    let t = Topology::build(TopoOpts {
        client_links,
        server_links,
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

/// Wait until every connection towards PORT has exactly one subflow per address in `want`
/// (and `conns` connections exist); return the last observation on failure.
fn wait_mesh(t: &Topology, conns: usize, want: &[IpAddr], timeout: Duration) -> Result<(), String> {
    let want: BTreeSet<IpAddr> = want.iter().copied().collect();
    let mut last = String::new();
    let ok = wait_for(timeout, || {
        let m = subflows(&t.client, PORT);
        last = format!("{m:#?}");
        let good = m.len() == conns
            && m.values().all(|v| {
                let locals: Vec<IpAddr> = v.iter().map(|s| s.local.ip()).collect();
                let set: BTreeSet<IpAddr> = locals.iter().copied().collect();
                set == want && locals.len() == want.len()
            });
        good.then_some(())
    });
    ok.ok_or(last)
}

const FULLMESH: &str =
    "policy: fullmesh\nsubflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\n";

#[test]
fn two_and_three_links_are_meshed_on_every_connection() {
    if !kernel_tests_enabled("two_and_three_links_are_meshed_on_every_connection") {
        return;
    }
    for links in [2usize, 3] {
        let t = topo(links, 1);
        let d = Daemon::start(&t.client, FULLMESH);
        d.wait_ready();
        let _conns = connect(&t, 10);
        let want: Vec<IpAddr> = (0..links).map(|i| t.client_addr(i)).collect();
        if let Err(seen) = wait_mesh(&t, 10, &want, Duration::from_secs(15)) {
            panic!(
                "{links} links: not meshed; kernel shows {seen}\nlog:\n{}",
                d.log()
            );
        }
    }
}

#[test]
fn address_added_gets_subflow_and_removed_loses_it() {
    if !kernel_tests_enabled("address_added_gets_subflow_and_removed_loses_it") {
        return;
    }
    let t = topo(2, 1);
    let a1 = t.client_addr(1);
    t.client
        .run(&["ip", "addr", "del", &format!("{a1}/24"), "dev", "c1"])
        .unwrap();
    let d = Daemon::start(&t.client, FULLMESH);
    d.wait_ready();
    let _conns = connect(&t, 3);
    wait_mesh(&t, 3, &[t.client_addr(0)], Duration::from_secs(5))
        .unwrap_or_else(|s| panic!("single path expected: {s}"));
    t.client
        .run(&["ip", "addr", "add", &format!("{a1}/24"), "dev", "c1"])
        .unwrap();
    // The per-link rule survives; the table-101 route went with the address: restore it.
    let _ = t.client.run(&[
        "ip",
        "route",
        "replace",
        "default",
        "via",
        "198.18.1.1",
        "dev",
        "c1",
        "table",
        "101",
    ]);
    wait_mesh(&t, 3, &[t.client_addr(0), a1], Duration::from_secs(15))
        .unwrap_or_else(|s| panic!("added address not meshed: {s}\nlog:\n{}", d.log()));
    t.client
        .run(&["ip", "addr", "del", &format!("{a1}/24"), "dev", "c1"])
        .unwrap();
    wait_mesh(&t, 3, &[t.client_addr(0)], Duration::from_secs(15))
        .unwrap_or_else(|s| panic!("removed address kept its subflow: {s}\nlog:\n{}", d.log()));
}

#[test]
fn server_announced_address_is_meshed_from_both_client_addresses() {
    if !kernel_tests_enabled("server_announced_address_is_meshed_from_both_client_addresses") {
        return;
    }
    let t = topo(2, 2);
    // The server (in-kernel PM) announces its second address on every connection.
    t.server
        .run(&[
            "ip",
            "mptcp",
            "endpoint",
            "add",
            &t.server_addr(1).to_string(),
            "dev",
            "s1",
            "signal",
        ])
        .unwrap();
    let d = Daemon::start(&t.client, FULLMESH);
    d.wait_ready();
    let _conns = connect(&t, 4);
    let ok = wait_for(Duration::from_secs(15), || {
        let m = subflows(&t.client, PORT);
        (m.len() == 4
            && m.values().all(|v| {
                let pairs: BTreeSet<(IpAddr, IpAddr)> =
                    v.iter().map(|s| (s.local.ip(), s.remote.ip())).collect();
                v.len() == 4 && pairs.len() == 4
            }))
        .then_some(())
    });
    assert!(
        ok.is_some(),
        "not meshed 2x2: {:#?}\nlog:\n{}",
        subflows(&t.client, PORT),
        d.log()
    );
}

#[test]
fn link_down_and_up_gets_its_subflow_back() {
    if !kernel_tests_enabled("link_down_and_up_gets_its_subflow_back") {
        return;
    }
    let t = topo(2, 1);
    let d = Daemon::start(&t.client, FULLMESH);
    d.wait_ready();
    let _conns = connect(&t, 2);
    let both = [t.client_addr(0), t.client_addr(1)];
    wait_mesh(&t, 2, &both, Duration::from_secs(15))
        .unwrap_or_else(|s| panic!("not meshed: {s}\n{}", d.log()));
    t.set_link(1, false).unwrap();
    wait_mesh(&t, 2, &both[..1], Duration::from_secs(15))
        .unwrap_or_else(|s| panic!("subflow on the dead link stayed: {s}\n{}", d.log()));
    t.set_link(1, true).unwrap();
    wait_mesh(&t, 2, &both, Duration::from_secs(20))
        .unwrap_or_else(|s| panic!("subflow not re-created after link up: {s}\n{}", d.log()));
}

#[test]
fn restarted_daemon_adopts_and_completes_the_mesh() {
    if !kernel_tests_enabled("restarted_daemon_adopts_and_completes_the_mesh") {
        return;
    }
    let t = topo(3, 1);
    let all: Vec<IpAddr> = (0..3).map(|i| t.client_addr(i)).collect();
    // Connections opened while no daemon runs: only their initial subflow.
    let _early = connect(&t, 3);
    wait_mesh(&t, 3, &all[..1], Duration::from_secs(5)).unwrap();
    let mut d = Daemon::start(&t.client, FULLMESH);
    d.wait_ready();
    wait_mesh(&t, 3, &all, Duration::from_secs(15))
        .unwrap_or_else(|s| panic!("adopted connections not meshed: {s}\n{}", d.log()));
    // Kill -9 mid-connection; while it is dead two more connections open (initial subflow
    // only). The restarted daemon adopts all five, completes the two new meshes and does not
    // duplicate the existing subflows.
    d.kill();
    let _late = connect(&t, 2);
    let d2 = Daemon::start(&t.client, FULLMESH);
    d2.wait_ready();
    assert!(d2.log().contains("adopted_connections: 5"), "{}", d2.log());
    wait_mesh(&t, 5, &all, Duration::from_secs(20))
        .unwrap_or_else(|s| panic!("restart did not complete the mesh: {s}\n{}", d2.log()));
    std::thread::sleep(Duration::from_secs(2));
    wait_mesh(&t, 5, &all, Duration::from_secs(1))
        .unwrap_or_else(|s| panic!("mesh not stable after restart: {s}\n{}", d2.log()));
}

#[test]
fn sigterm_stops_cleanly_and_sighup_with_bad_config_keeps_running() {
    if !kernel_tests_enabled("sigterm_stops_cleanly_and_sighup_with_bad_config_keeps_running") {
        return;
    }
    let t = topo(1, 1);
    let mut d = Daemon::start(&t.client, FULLMESH);
    d.wait_ready();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log("configuration reloaded", Duration::from_secs(5)),
        "{}",
        d.log()
    );
    assert!(d.running());
    std::fs::write(d.config_path(), "policy: fulmesh\n").unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log("new configuration rejected", Duration::from_secs(5)),
        "{}",
        d.log()
    );
    assert!(
        d.log().contains(":1:9"),
        "the rejection names line:col: {}",
        d.log()
    );
    assert!(d.running(), "a bad reload must not stop the daemon");
    assert_eq!(d.stop(Duration::from_secs(5)), Some(0), "{}", d.log());
}

/// Issue 15 item 7: `addresses.include_interfaces` and `backup_interfaces` end to end, with the
/// kernel's word for it: of three links only the included c0 and c2 get subflows, c2's with
/// the backup flag (`b`, BKUP_LOC, in `ss`'s MPTCP subflow flags: this host asked for it);
/// a reload that drops c2 from `backup_interfaces` clears the flag on the open connections
/// (SET_FLAGS) and one that includes c1 meshes it.
#[test]
fn include_and_backup_interfaces_as_the_kernel_shows_them() {
    if !kernel_tests_enabled("include_and_backup_interfaces_as_the_kernel_shows_them") {
        return;
    }
    let t = topo(3, 1);
    let cfg = |include: &str, backup: &str| {
        format!("{FULLMESH}addresses:\n  include_interfaces: {include}\n  backup_interfaces: {backup}\n")
    };
    let d = Daemon::start(&t.client, &cfg("[c0, c2]", "[c2]"));
    d.wait_ready();
    let n = 3;
    let _conns = connect(&t, n);
    let (a0, a1, a2) = (t.client_addr(0), t.client_addr(1), t.client_addr(2));
    // (local address, backup as the kernel says) of each subflow, per connection.
    let seen = |t: &Topology| -> Vec<BTreeSet<(IpAddr, bool)>> {
        subflows(&t.client, PORT)
            .values()
            .map(|v| {
                v.iter()
                    .map(|s| (s.local.ip(), s.flags.contains('b')))
                    .collect()
            })
            .collect()
    };
    let wait_all = |want: BTreeSet<(IpAddr, bool)>, what: &str| {
        let ok = wait_for(Duration::from_secs(15), || {
            let s = seen(&t);
            (s.len() == n && s.iter().all(|c| *c == want)).then_some(())
        });
        assert!(
            ok.is_some(),
            "{what}: want {want:?} on every connection, kernel shows {:?}\n{}",
            seen(&t),
            d.log()
        );
    };
    wait_all(
        [(a0, false), (a2, true)].into(),
        "include c0, c2; backup c2",
    );
    std::thread::sleep(Duration::from_secs(1));
    wait_all([(a0, false), (a2, true)].into(), "stable");

    std::fs::write(d.config_path(), cfg("[c0, c2]", "[]")).unwrap();
    d.signal(libc::SIGHUP);
    wait_all(
        [(a0, false), (a2, false)].into(),
        "backup cleared by a reload",
    );

    std::fs::write(d.config_path(), cfg("[c0, c1, c2]", "[c1]")).unwrap();
    d.signal(libc::SIGHUP);
    wait_all(
        [(a0, false), (a1, true), (a2, false)].into(),
        "c1 included as a backup interface by a reload",
    );
}
