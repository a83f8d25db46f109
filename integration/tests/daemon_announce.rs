//! End to end: the real `mptcp-pmd` with the `announce` policy on a server namespace (the
//! userspace PM, two links `s0`/`s1`), against clients on the in-kernel PM or running mptcp-pmd
//! themselves. What counts is what both kernels report: their `mptcp_pm` events and `ss`.
//!
//! The kernel facts these rely on (wildcard listeners accept joins to announced addresses,
//! REMOVE before SUBFLOW_DESTROY, v4-mapped server events) are pinned in
//! `kernel_announce.rs` and explained in docs/KERNEL-SERVER-SIDE.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use integration::daemon::{daemon_bin, Daemon};
use integration::observe::{subflows, EventLog, SsSubflow};
use integration::transfer::{payload, receive_one, send_and_wait, sha256sum};
use integration::{kernel_tests_enabled, mptcp, wait_for, Netns, Pm, TopoOpts, Topology};
use mptcp_pmd_policies::PmEvent;

const WAIT: Duration = Duration::from_secs(15);

/// A pure server: every accepted connection gets the other addresses announced.
const SERVER: &str = "policy: announce\n";
/// Dials out with a mesh, announces on what it accepts.
const BOTH: &str = "policy: fullmesh\nsubflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\nrules:\n  - side: server\n    policy: announce\n";
const FULLMESH: &str =
    "policy: fullmesh\nsubflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\n";

/// The server with two links on the userspace PM; the client on `client_pm`. An in-kernel-PM
/// client gets the limits (`add_addr_accepted 2 subflows 2`) and no endpoint.
fn topo(client_pm: Pm, client_links: usize) -> Topology {
    let t = Topology::build(TopoOpts {
        client_links,
        server_links: 2,
        client_pm,
        server_pm: Pm::Userspace,
        ..Default::default()
    })
    .expect("topology");
    if client_pm == Pm::Kernel {
        t.client.mptcp_limits(2, 2).unwrap();
    }
    t
}

fn daemon(ns: &Netns, config: &str) -> Daemon {
    let d = Daemon::start(ns, config);
    d.wait_ready();
    d
}

/// An MPTCP echo server on `addr` in `ns` (kept open by its thread).
fn echo(ns: &Netns, addr: SocketAddr) {
    let l = ns.exec(move || mptcp::listen(addr)).unwrap().unwrap();
    ns.exec_bg(move || mptcp::echo_server(l)).unwrap();
}

/// `n` connections from `from` to `to`, each pinged so both ends are fully established.
fn connect(ns: &Netns, to: SocketAddr, from: IpAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = ns
                .exec(move || mptcp::connect(to, Some(from)))
                .unwrap()
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            mptcp::ping(&mut s, b"establish").unwrap();
            s
        })
        .collect()
}

fn ips(v: &[SsSubflow], local: bool) -> BTreeSet<IpAddr> {
    v.iter()
        .map(|s| if local { s.local } else { s.remote }.ip().to_canonical())
        .collect()
}

/// Wait until `ns` shows `conns` connections on `port` whose subflows satisfy `ok`; the
/// last observation otherwise.
fn wait_ss(
    ns: &Netns,
    port: u16,
    conns: usize,
    ok: impl Fn(&[SsSubflow]) -> bool,
) -> Result<(), String> {
    let mut last = String::new();
    wait_for(WAIT, || {
        let m = subflows(ns, port);
        last = format!("{m:#?}");
        (m.len() == conns && m.values().all(|v| ok(v))).then_some(())
    })
    .ok_or(last)
}

/// `cli status|addresses --json` of the daemon, parsed.
fn view(d: &Daemon, what: &str) -> serde_json::Value {
    let sock = d.control_socket();
    let o = std::process::Command::new(daemon_bin())
        .args([what, "--json", "-s", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The server's addresses of one family, and the wildcard its listener binds.
struct Fam {
    c0: IpAddr,
    s0: IpAddr,
    s1: IpAddr,
    any: IpAddr,
}

fn fam(t: &Topology, v6: bool) -> Fam {
    if v6 {
        Fam {
            c0: t.client_addr6(0),
            s0: t.server_addr6(0),
            s1: t.server_addr6(1),
            any: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    } else {
        Fam {
            c0: t.client_addr(0),
            s0: t.server_addr(0),
            s1: t.server_addr(1),
            any: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        }
    }
}

fn sub_established_to(ev: &PmEvent, remote: IpAddr) -> bool {
    matches!(ev, PmEvent::SubEstablished(s) if s.remote.ip().to_canonical() == remote)
}

/// Every connection from an in-kernel-PM client gets a subflow to the announced address: the
/// client hears ANNOUNCED and joins it (its events), both kernels list the subflow (`ss`), and
/// `mptcp-pmd status` shows the announcement joined. A listener bound to one address gets no
/// announcements, and the daemon says why (log, `mptcp-pmd addresses`).
fn kernel_client_joins(v6: bool) {
    let t = topo(Pm::Kernel, 1);
    let f = fam(&t, v6);
    let port = 5401;
    echo(&t.server, SocketAddr::new(f.any, port));
    let d = daemon(&t.server, SERVER);
    let mut cev = EventLog::open(&t.client, "client");
    let n = 3;
    let _conns = connect(&t.client, SocketAddr::new(f.s0, port), f.c0, n);
    for i in 0..n {
        cev.wait(
            &format!("client ANNOUNCED #{i}"),
            WAIT,
            |ev| matches!(ev, PmEvent::Announced { addr, rem_id: 255, .. } if *addr == f.s1),
        );
        cev.wait(&format!("client SUB_ESTABLISHED #{i}"), WAIT, |ev| {
            sub_established_to(ev, f.s1)
        });
    }
    let both = BTreeSet::from([f.s0, f.s1]);
    wait_ss(&t.client, port, n, |v| {
        v.len() == 2 && ips(v, false) == both
    })
    .unwrap_or_else(|s| panic!("client: {s}\nlog:\n{}", d.log()));
    wait_ss(&t.server, port, n, |v| v.len() == 2 && ips(v, true) == both)
        .unwrap_or_else(|s| panic!("server: {s}\nlog:\n{}", d.log()));

    let status = wait_for(WAIT, || {
        let v = view(&d, "status");
        let all_joined = v["connections"].as_array().is_some_and(|cs| {
            cs.len() == n
                && cs.iter().all(|c| {
                    c["announced"].as_array().is_some_and(|a| {
                        a.len() == 1
                            && a[0]["state"] == "joined"
                            && a[0]["addr"] == f.s1.to_string()
                            && a[0]["id"] == 255
                    })
                })
        });
        all_joined.then_some(v)
    })
    .unwrap_or_else(|| panic!("status: {}", view(&d, "status")));
    for c in status["connections"].as_array().unwrap() {
        assert_eq!(c["server_side"], true);
        assert_eq!(c["policy"], "announce");
    }

    if v6 {
        return;
    }
    // A listener bound to s0 only: the kernel would refuse joins to s1, so nothing is
    // announced to its connections, and the daemon says so once.
    let bound = 5402;
    echo(&t.server, SocketAddr::new(f.s0, bound));
    let line = format!("listener: {}", SocketAddr::new(f.s0, bound));
    assert!(d.wait_log(&line, WAIT), "no listener line:\n{}", d.log());
    assert!(d.log().contains("MPTCP listener bound to one address"));
    cev.clear();
    let _b = connect(&t.client, SocketAddr::new(f.s0, bound), f.c0, 1);
    assert!(
        cev.try_wait(Duration::from_millis(600), |ev| matches!(
            ev,
            PmEvent::Announced { .. }
        ))
        .is_none(),
        "announced to a bound listener's connection"
    );
    let a = view(&d, "addresses");
    let l = a["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["addr"] == SocketAddr::new(f.s0, bound).to_string())
        .unwrap_or_else(|| panic!("listener missing: {a}"));
    assert_eq!(l["joins_anywhere"], false);
    assert!(a["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["addr"] == SocketAddr::new(f.any, port).to_string()
            && l["joins_anywhere"] == true));
}

#[test]
fn kernel_pm_clients_join_the_announced_address_ipv4() {
    if !kernel_tests_enabled("kernel_pm_clients_join_the_announced_address_ipv4") {
        return;
    }
    kernel_client_joins(false);
}

#[test]
fn kernel_pm_clients_join_the_announced_address_ipv6() {
    if !kernel_tests_enabled("kernel_pm_clients_join_the_announced_address_ipv6") {
        return;
    }
    kernel_client_joins(true);
}

/// A client running mptcp-pmd fullmesh meshes its two addresses with the dialled and the
/// announced server address: four subflows per connection.
fn fullmesh_client(v6: bool) {
    let t = topo(Pm::Userspace, 2);
    let f = fam(&t, v6);
    let c1 = if v6 {
        t.client_addr6(1)
    } else {
        t.client_addr(1)
    };
    let port = 5411;
    echo(&t.server, SocketAddr::new(f.any, port));
    let server = daemon(&t.server, SERVER);
    let client = daemon(&t.client, FULLMESH);
    let n = 2;
    let _conns = connect(&t.client, SocketAddr::new(f.s0, port), f.c0, n);
    let want: BTreeSet<(IpAddr, IpAddr)> = [f.c0, c1]
        .iter()
        .flat_map(|c| [(*c, f.s0), (*c, f.s1)])
        .collect();
    wait_ss(&t.client, port, n, |v| {
        let pairs: BTreeSet<_> = v
            .iter()
            .map(|s| (s.local.ip(), s.remote.ip().to_canonical()))
            .collect();
        v.len() == 4 && pairs == want
    })
    .unwrap_or_else(|s| {
        panic!(
            "client not meshed over the announced address: {s}\nserver log:\n{}\nclient log:\n{}",
            server.log(),
            client.log()
        )
    });
}

#[test]
fn fullmesh_client_meshes_the_dialled_and_announced_addresses_ipv4() {
    if !kernel_tests_enabled("fullmesh_client_meshes_the_dialled_and_announced_addresses_ipv4") {
        return;
    }
    fullmesh_client(false);
}

#[test]
fn fullmesh_client_meshes_the_dialled_and_announced_addresses_ipv6() {
    if !kernel_tests_enabled("fullmesh_client_meshes_the_dialled_and_announced_addresses_ipv6") {
        return;
    }
    fullmesh_client(true);
}

/// The server's second address is deleted: the daemon withdraws it (the client hears
/// REMOVED, its subflow closes) and closes the server's end, which the kernel leaves
/// established. Added back, it is announced again under the same id and the subflow returns.
/// The IPv4 run uses a dual-stack `[::]` listener, whose server-side events carry
/// IPv4-mapped addresses.
fn withdrawn_and_back(v6: bool) {
    let t = topo(Pm::Kernel, 1);
    let f = fam(&t, v6);
    let port = 5421;
    echo(
        &t.server,
        SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
    );
    let d = daemon(&t.server, SERVER);
    let mut cev = EventLog::open(&t.client, "client");
    let n = 2;
    let _conns = connect(&t.client, SocketAddr::new(f.s0, port), f.c0, n);
    let both = BTreeSet::from([f.s0, f.s1]);
    wait_ss(&t.server, port, n, |v| ips(v, true) == both)
        .unwrap_or_else(|s| panic!("not joined: {s}\nlog:\n{}", d.log()));
    cev.clear();

    let (cidr, dev) = (
        format!("{}/{}", f.s1, if v6 { 64 } else { 24 }),
        t.server_if(1),
    );
    t.server
        .run(&["ip", "addr", "del", &cidr, "dev", &dev])
        .unwrap();
    for i in 0..n {
        cev.wait(&format!("client REMOVED #{i}"), WAIT, |ev| {
            matches!(ev, PmEvent::Removed { rem_id: 255, .. })
        });
        cev.wait(
            &format!("client SUB_CLOSED #{i}"),
            WAIT,
            |ev| matches!(ev, PmEvent::SubClosed(s) if s.remote.ip() == f.s1),
        );
    }
    let only = BTreeSet::from([f.s0]);
    wait_ss(&t.client, port, n, |v| ips(v, false) == only)
        .unwrap_or_else(|s| panic!("client kept a subflow to the withdrawn address: {s}"));
    // The server's end is closed by the daemon (REMOVE alone leaves it up).
    wait_ss(&t.server, port, n, |v| ips(v, true) == only).unwrap_or_else(|s| {
        panic!(
            "server kept its end of the withdrawn subflow: {s}\nlog:\n{}",
            d.log()
        )
    });
    let log = d.log();
    assert!(log.contains("reason: address-gone"), "{log}");
    assert!(log.contains("reason: withdrawn"), "{log}");

    let mut add = vec!["ip", "addr", "add", cidr.as_str(), "dev", dev.as_str()];
    if v6 {
        add.push("nodad");
    }
    t.server.run(&add).unwrap();
    t.set_server_link(1, true).unwrap();
    for i in 0..n {
        cev.wait(
            &format!("client ANNOUNCED again #{i}"),
            WAIT,
            |ev| matches!(ev, PmEvent::Announced { addr, rem_id: 255, .. } if *addr == f.s1),
        );
        cev.wait(&format!("client SUB_ESTABLISHED again #{i}"), WAIT, |ev| {
            sub_established_to(ev, f.s1)
        });
    }
    wait_ss(&t.client, port, n, |v| ips(v, false) == both)
        .unwrap_or_else(|s| panic!("the subflow did not come back: {s}\nlog:\n{}", d.log()));

    // A reload whose announce filters exclude s1 withdraws it at once, with no address change.
    cev.clear();
    let path = d.config_path();
    let old = std::fs::read_to_string(&path).unwrap();
    let new = format!("announce:\n  exclude_interfaces: [\"{dev}\"]\n{old}");
    std::fs::write(&path, new).unwrap();
    d.signal(libc::SIGHUP);
    for i in 0..n {
        cev.wait(
            &format!("client REMOVED after the reload #{i}"),
            WAIT,
            |ev| matches!(ev, PmEvent::Removed { rem_id: 255, .. }),
        );
    }
    wait_ss(&t.server, port, n, |v| ips(v, true) == only)
        .unwrap_or_else(|s| panic!("filtered address kept: {s}\nlog:\n{}", d.log()));
    assert!(d.log().contains("reason: not-announced"), "{}", d.log());
}

#[test]
fn a_removed_address_is_withdrawn_and_announced_again_when_it_returns_ipv4() {
    if !kernel_tests_enabled(
        "a_removed_address_is_withdrawn_and_announced_again_when_it_returns_ipv4",
    ) {
        return;
    }
    withdrawn_and_back(false);
}

#[test]
fn a_removed_address_is_withdrawn_and_announced_again_when_it_returns_ipv6() {
    if !kernel_tests_enabled(
        "a_removed_address_is_withdrawn_and_announced_again_when_it_returns_ipv6",
    ) {
        return;
    }
    withdrawn_and_back(true);
}

/// A bulk transfer, checked with `sha256sum`, completes over the announced address after the
/// link of the address the client dialled goes down.
#[test]
fn bulk_transfer_completes_over_the_announced_address_after_the_initial_link_fails() {
    if !kernel_tests_enabled(
        "bulk_transfer_completes_over_the_announced_address_after_the_initial_link_fails",
    ) {
        return;
    }
    let t = topo(Pm::Kernel, 1);
    let f = fam(&t, false);
    let port = 5431;
    let l = t
        .server
        .exec(move || mptcp::listen(SocketAddr::new(f.any, port)))
        .unwrap()
        .unwrap();
    let sink = receive_one(l, Duration::from_secs(60));
    let d = daemon(&t.server, SERVER);
    let (dst, from) = (SocketAddr::new(f.s0, port), f.c0);
    let mut stream = t
        .client
        .exec(move || mptcp::connect(dst, Some(from)))
        .unwrap()
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // Some data makes the client fully established; then wait for the join.
    let payload = payload(12 << 20);
    let (first, rest) = payload.split_at(1 << 20);
    stream.write_all(first).unwrap();
    let both = BTreeSet::from([f.s0, f.s1]);
    wait_ss(&t.server, port, 1, |v| ips(v, true) == both)
        .unwrap_or_else(|s| panic!("no join: {s}\nlog:\n{}", d.log()));
    t.set_server_link(0, false).unwrap();
    let started = Instant::now();
    send_and_wait(&mut stream, rest).unwrap();
    let got = sink.join().unwrap();
    eprintln!(
        "12 MiB, the last 11 after s0 went down, in {:?}",
        started.elapsed()
    );
    assert_eq!(got.len(), payload.len());
    assert_eq!(sha256sum(&got), sha256sum(&payload));
}

/// Two hosts, each running mptcp-pmd as client and server at once (`policy: fullmesh`, and
/// `announce` for what it accepts): a connection from either side ends up meshed over both
/// hosts' two addresses, the accepting daemon having announced its second address.
#[test]
fn two_daemons_in_both_roles_mesh_both_directions() {
    if !kernel_tests_enabled("two_daemons_in_both_roles_mesh_both_directions") {
        return;
    }
    let t = topo(Pm::Userspace, 2);
    let (to_server, to_client) = (5441, 5442);
    echo(
        &t.server,
        SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), to_server),
    );
    echo(
        &t.client,
        SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), to_client),
    );
    let s = daemon(&t.server, BOTH);
    let c = daemon(&t.client, BOTH);
    let (c0, c1, s0, s1) = (
        t.client_addr(0),
        t.client_addr(1),
        t.server_addr(0),
        t.server_addr(1),
    );
    let mesh: BTreeSet<(IpAddr, IpAddr)> = [(c0, s0), (c0, s1), (c1, s0), (c1, s1)].into();
    let flipped: BTreeSet<(IpAddr, IpAddr)> = mesh.iter().map(|(a, b)| (*b, *a)).collect();
    let pairs = |v: &[SsSubflow]| -> BTreeSet<(IpAddr, IpAddr)> {
        v.iter()
            .map(|x| (x.local.ip().to_canonical(), x.remote.ip().to_canonical()))
            .collect()
    };
    let _out = connect(&t.client, SocketAddr::new(s0, to_server), c0, 1);
    let _back = connect(&t.server, SocketAddr::new(c0, to_client), s0, 1);
    let logs = || format!("server log:\n{}\nclient log:\n{}", s.log(), c.log());
    // Dialled by the client: the client's view is (client, server) pairs.
    wait_ss(&t.client, to_server, 1, |v| {
        v.len() == 4 && pairs(v) == mesh
    })
    .unwrap_or_else(|x| panic!("client -> server not meshed: {x}\n{}", logs()));
    // Dialled by the server: its view is (server, client) pairs.
    wait_ss(&t.server, to_client, 1, |v| {
        v.len() == 4 && pairs(v) == flipped
    })
    .unwrap_or_else(|x| panic!("server -> client not meshed: {x}\n{}", logs()));
    // Each side's status: the connection it accepted is announce's (rule 0), the one it
    // dialled is fullmesh's (default).
    for d in [&s, &c] {
        let v = view(d, "status");
        let mut seen: Vec<(bool, String, String)> = v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["server_side"].as_bool().unwrap(),
                    x["policy"].as_str().unwrap().to_string(),
                    x["rule"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![
                (false, "fullmesh".to_string(), "default".to_string()),
                (true, "announce".to_string(), "rule 0".to_string()),
            ],
            "{v}"
        );
    }
}

/// Issue 15 item 7: the server-side daemon is killed (SIGKILL) and started again while its
/// connections live on. The new daemon adopts them from sock_diag with the ids the kernel
/// reports: the announced address keeps its id (the client hears no ANNOUNCED under another
/// id, for another address, or at all), no subflow is duplicated on either side, and the
/// status shows each announcement joined under its id. New connections are served as before.
#[test]
fn a_restarted_server_readopts_its_announced_connections_with_their_ids() {
    if !kernel_tests_enabled("a_restarted_server_readopts_its_announced_connections_with_their_ids")
    {
        return;
    }
    let t = topo(Pm::Kernel, 1);
    let f = fam(&t, false);
    let port = 5431;
    echo(
        &t.server,
        SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
    );
    let mut d = daemon(&t.server, SERVER);
    let mut cev = EventLog::open(&t.client, "client");
    let n = 3;
    let _conns = connect(&t.client, SocketAddr::new(f.s0, port), f.c0, n);
    let both = BTreeSet::from([f.s0, f.s1]);
    let two_once = |v: &[SsSubflow], local: bool| v.len() == 2 && ips(v, local) == both;
    wait_ss(&t.server, port, n, |v| two_once(v, true))
        .unwrap_or_else(|s| panic!("not joined: {s}\nlog:\n{}", d.log()));
    let mut ids = BTreeSet::new();
    for i in 0..n {
        let ev = cev.wait(
            &format!("client ANNOUNCED #{i}"),
            WAIT,
            |ev| matches!(ev, PmEvent::Announced { addr, .. } if *addr == f.s1),
        );
        if let PmEvent::Announced { rem_id, .. } = ev.event {
            ids.insert(rem_id);
        }
    }
    assert_eq!(ids, BTreeSet::from([255]), "announced under the top id");
    cev.clear();

    d.kill();
    let d2 = daemon(&t.server, SERVER);
    assert!(
        d2.log().contains(&format!("adopted_connections: {n}")),
        "{}",
        d2.log()
    );
    // The status shows every adopted connection's announcement joined under its id.
    let joined = wait_for(WAIT, || {
        let v = view(&d2, "status");
        v["connections"]
            .as_array()
            .is_some_and(|cs| {
                cs.len() == n
                    && cs.iter().all(|c| {
                        c["server_side"] == true
                            && c["announced"].as_array().is_some_and(|a| {
                                a.len() == 1
                                    && a[0]["addr"] == f.s1.to_string()
                                    && a[0]["id"] == 255
                                    && a[0]["state"] == "joined"
                            })
                    })
            })
            .then_some(())
    });
    assert!(
        joined.is_some(),
        "status after the restart: {}\nlog:\n{}",
        view(&d2, "status"),
        d2.log()
    );
    // Give the adopted connections time to act (ticks, the pace): nothing is announced again,
    // nothing duplicated.
    std::thread::sleep(Duration::from_secs(2));
    let heard: Vec<PmEvent> = cev
        .unclaimed()
        .into_iter()
        .filter(|e| matches!(e, PmEvent::Announced { .. } | PmEvent::Removed { .. }))
        .collect();
    assert!(
        heard.is_empty(),
        "the client heard: {heard:?}\nlog:\n{}",
        d2.log()
    );
    wait_ss(&t.server, port, n, |v| two_once(v, true))
        .unwrap_or_else(|s| panic!("server after the restart: {s}\nlog:\n{}", d2.log()));
    wait_ss(&t.client, port, n, |v| two_once(v, false))
        .unwrap_or_else(|s| panic!("client after the restart: {s}\nlog:\n{}", d2.log()));
    assert!(
        !d2.log().contains("action: announce"),
        "no announce decision for the adopted connections:\n{}",
        d2.log()
    );

    // A new connection still gets the address announced (same id: it is per connection).
    let _more = connect(&t.client, SocketAddr::new(f.s0, port), f.c0, 1);
    let ev = cev.wait(
        "client ANNOUNCED for the new connection",
        WAIT,
        |ev| matches!(ev, PmEvent::Announced { addr, .. } if *addr == f.s1),
    );
    assert!(matches!(ev.event, PmEvent::Announced { rem_id: 255, .. }));
    wait_ss(&t.server, port, n + 1, |v| two_once(v, true))
        .unwrap_or_else(|s| panic!("new connection: {s}\nlog:\n{}", d2.log()));
}
