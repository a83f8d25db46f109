//! End to end: ndiffports, and per-destination rules choosing different policies for different
//! destinations on one host.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use integration::daemon::Daemon;
use integration::observe::subflows;
use integration::{kernel_tests_enabled, wait_for, TopoOpts, Topology};

fn serve(t: &Topology, port: u16) {
    t.serve_echo(port).expect("echo server");
}

fn connect(t: &Topology, port: u16, n: usize) -> Vec<TcpStream> {
    t.connect_many(port, n).expect("connect")
}

/// Every connection towards `port` has exactly `n` subflows, all from `local`, with distinct
/// source ports.
fn ndiff_ok(t: &Topology, port: u16, conns: usize, n: usize, local: IpAddr) -> bool {
    let m = subflows(&t.client, port);
    m.len() == conns
        && m.values().all(|v| {
            let ports: BTreeSet<u16> = v.iter().map(|s| s.local.port()).collect();
            v.len() == n && ports.len() == n && v.iter().all(|s| s.local.ip() == local)
        })
}

#[test]
fn ndiffports_opens_n_subflows_over_the_initial_pair() {
    if !kernel_tests_enabled("ndiffports_opens_n_subflows_over_the_initial_pair") {
        return;
    }
    let t = Topology::build(TopoOpts {
        client_links: 2,
        ..Default::default()
    })
    .unwrap();
    serve(&t, 5201);
    let d = Daemon::start(
        &t.client,
        "policy: ndiffports\nndiffports:\n  subflows: 3\n",
    );
    d.wait_ready();
    let _c = connect(&t, 5201, 4);
    let ok = wait_for(Duration::from_secs(15), || {
        ndiff_ok(&t, 5201, 4, 3, t.client_addr(0)).then_some(())
    });
    assert!(
        ok.is_some(),
        "not 3 subflows each: {:#?}\n{}",
        subflows(&t.client, 5201),
        d.log()
    );
}

#[test]
fn rules_give_each_destination_its_policy() {
    if !kernel_tests_enabled("rules_give_each_destination_its_policy") {
        return;
    }
    let t = Topology::build(TopoOpts {
        client_links: 2,
        ..Default::default()
    })
    .unwrap();
    serve(&t, 5201);
    serve(&t, 5202);
    let cfg = "policy: fullmesh\nrules:\n  - remote: 198.19.0.0/16\n    port: 5202\n    policy: ndiffports\n    ndiffports: {subflows: 4}\n";
    let d = Daemon::start(&t.client, cfg);
    d.wait_ready();
    let _a = connect(&t, 5201, 3);
    let _b = connect(&t, 5202, 3);
    let want: BTreeSet<IpAddr> = [t.client_addr(0), t.client_addr(1)].into_iter().collect();
    let ok = wait_for(Duration::from_secs(15), || {
        let mesh = subflows(&t.client, 5201);
        let meshed = mesh.len() == 3
            && mesh.values().all(|v| {
                v.len() == 2 && v.iter().map(|s| s.local.ip()).collect::<BTreeSet<_>>() == want
            });
        (meshed && ndiff_ok(&t, 5202, 3, 4, t.client_addr(0))).then_some(())
    });
    assert!(
        ok.is_some(),
        "port 5201 (fullmesh): {:#?}\nport 5202 (ndiffports 4): {:#?}\n{}",
        subflows(&t.client, 5201),
        subflows(&t.client, 5202),
        d.log()
    );
}
