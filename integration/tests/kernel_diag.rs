//! `netlink_actor::sock_diag` against the real kernel: in a client/router/server topology with
//! the in-kernel path manager (the client has a `subflow` endpoint on its second link, so the
//! kernel opens a join by itself), the snapshot shows each MPTCP connection with all its
//! subflows, their tokens agree across both dumps and both hosts, and the RTTs are plausible;
//! skipping the IPv6 subflow dump loses nothing; exact lookups find each subflow by its
//! 4-tuple.

// Test helpers outside #[test] functions may unwrap/panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use integration::{kernel_tests_enabled, mptcp, wait_for, Pm, TopoOpts, Topology};
use mptcp_pmd_policies::{SubflowKey, Token};
use netlink_actor::sock_diag::{
    tcpf, Answer, ConnSnapshot, DiagSocket, LookupKey, Snapshot, TcpState,
};

const WAIT: Duration = Duration::from_secs(10);
const PORT: u16 = 5201;

/// A two-link client whose kernel PM joins from link 1, and a server with an echo listener.
fn topology(v6: bool) -> (Topology, SocketAddr) {
    let topo = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        client_pm: Pm::Kernel,
        server_pm: Pm::Kernel,
        ..Default::default()
    })
    .unwrap();
    let (extra, srv_ip) = if v6 {
        (topo.client_addr6(1), topo.server_addr6(0))
    } else {
        (topo.client_addr(1), topo.server_addr(0))
    };
    topo.client
        .run(&[
            "ip",
            "mptcp",
            "endpoint",
            "add",
            &extra.to_string(),
            "dev",
            &topo.client_if(1),
            "subflow",
        ])
        .unwrap();
    let srv = SocketAddr::new(srv_ip, PORT);
    let l = topo
        .server
        .exec(move || mptcp::listen(srv))
        .unwrap()
        .unwrap();
    topo.server.exec_bg(move || mptcp::echo_server(l)).unwrap();
    (topo, srv)
}

fn connect(topo: &Topology, srv: SocketAddr, local: IpAddr) -> TcpStream {
    let mut s = topo
        .client
        .exec(move || mptcp::connect(srv, Some(local)))
        .unwrap()
        .unwrap_or_else(|e| panic!("connect {local} -> {srv}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Data makes the connection fully established, which is when the kernel PM joins.
    mptcp::ping(&mut s, b"hello").unwrap();
    s
}

fn find(snap: &Snapshot, local: SocketAddr) -> Option<&ConnSnapshot> {
    snap.conns.iter().find(|c| c.conn.local == local)
}

fn snapshot_shows_connection_with_all_subflows(v6: bool) {
    let (topo, srv) = topology(v6);
    let (first, extra) = if v6 {
        (topo.client_addr6(0), topo.client_addr6(1))
    } else {
        (topo.client_addr(0), topo.client_addr(1))
    };
    let mut stream = connect(&topo, srv, first);
    let local = stream.local_addr().unwrap();

    let mut cdiag = topo.client.exec(DiagSocket::open).unwrap().unwrap();
    let mut sdiag = topo.server.exec(DiagSocket::open).unwrap().unwrap();

    let conn = wait_for(WAIT, || {
        // Keep traffic flowing so every subflow has RTT samples.
        mptcp::ping(&mut stream, b"rtt").unwrap();
        let snap = cdiag.snapshot().unwrap();
        find(&snap, local)
            .filter(|c| c.subflows.len() == 2 && c.subflows.iter().all(|s| s.sample.srtt_us > 0))
            .cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "no connection with 2 measured subflows: {:#?}",
            cdiag.snapshot().unwrap()
        )
    });

    let c = &conn.conn;
    assert_ne!(c.token, Token(0));
    assert_eq!(c.state, TcpState::Established);
    assert_eq!(c.remote, srv);
    assert_eq!(c.subflows, 1);
    assert_eq!(c.subflows_total, Some(2));
    assert!(!c.flags.fallback());
    assert!(c.bytes_sent.unwrap() >= 8);
    let locals: BTreeSet<IpAddr> = conn.subflows.iter().map(|s| s.key.local.ip()).collect();
    assert_eq!(locals, BTreeSet::from([first, extra]));
    for s in &conn.subflows {
        assert_eq!(s.token, c.token, "subflow {} token", s.key);
        assert_eq!(s.key.remote, srv);
        assert_eq!(s.state, 1, "established");
        assert!(s.sample.fully_established);
        assert!(
            s.sample.srtt_us > 0 && s.sample.srtt_us < 1_000_000,
            "implausible srtt {} us on {}",
            s.sample.srtt_us,
            s.key
        );
        assert!(s.sample.min_rtt_us > 0 && s.sample.min_rtt_us < 1_000_000);
        assert!(s.sample.snd_cwnd > 0);
    }
    let initial = conn.subflows.iter().find(|s| s.key.local == local).unwrap();
    let join = conn
        .subflows
        .iter()
        .find(|s| s.key.local.ip() == extra)
        .unwrap();
    assert!(!initial.flags.is_join() && join.flags.is_join());
    assert_eq!(initial.loc_id, 0);
    assert_ne!(join.loc_id, 0, "the join uses the endpoint's id");

    // The server sees the same connection from the other side: same 4-tuples reversed, its own
    // local token, which is what the client's join learnt as the remote token.
    let snap = sdiag.snapshot().unwrap();
    let listener = snap
        .conns
        .iter()
        .find(|c| c.conn.is_listener())
        .expect("the listener is in the dump");
    assert_eq!(listener.conn.local, srv);
    assert!(listener.subflows.is_empty());
    let server_conn = snap
        .conns
        .iter()
        .find(|c| c.conn.remote == local)
        .expect("server side of the connection");
    assert_eq!(server_conn.subflows.len(), 2);
    assert_eq!(join.remote_token, server_conn.conn.token);
    let mut theirs: Vec<_> = server_conn
        .subflows
        .iter()
        .map(|s| (s.key.remote, s.key.local))
        .collect();
    let mut ours: Vec<_> = conn
        .subflows
        .iter()
        .map(|s| (s.key.local, s.key.remote))
        .collect();
    theirs.sort();
    ours.sort();
    assert_eq!(theirs, ours);
    assert!(snap.orphans.is_empty(), "{:?}", snap.orphans);

    // Gone once closed (the MPTCP socket leaves the connected states).
    drop(stream);
    cdiag.set_mptcp_states(tcpf::ESTABLISHED);
    let gone = wait_for(WAIT, || {
        let snap = cdiag.snapshot().unwrap();
        find(&snap, local).is_none().then_some(())
    });
    assert!(gone.is_some(), "connection still established after close");
}

#[test]
fn snapshot_ipv4_connection_with_kernel_join() {
    if !kernel_tests_enabled("snapshot_ipv4_connection_with_kernel_join") {
        return;
    }
    snapshot_shows_connection_with_all_subflows(false);
}

#[test]
fn snapshot_ipv6_connection_with_kernel_join() {
    if !kernel_tests_enabled("snapshot_ipv6_connection_with_kernel_join") {
        return;
    }
    snapshot_shows_connection_with_all_subflows(true);
}

/// `n` IPv4 connections from the client's first link, and a sock_diag socket in the client.
fn many_connections(n: usize) -> (Topology, Vec<TcpStream>, DiagSocket) {
    let (topo, srv) = topology(false);
    let first = topo.client_addr(0);
    let streams: Vec<TcpStream> = (0..n).map(|_| connect(&topo, srv, first)).collect();
    let diag = topo.client.exec(DiagSocket::open).unwrap().unwrap();
    (topo, streams, diag)
}

/// Enough connections that every dump spans several datagrams: nothing is lost or duplicated
/// between them.
#[test]
fn snapshot_of_many_connections_spans_datagrams() {
    if !kernel_tests_enabled("snapshot_of_many_connections_spans_datagrams") {
        return;
    }
    const N: usize = 200;
    let (_topo, mut streams, mut diag) = many_connections(N);
    let locals: BTreeSet<SocketAddr> = streams.iter().map(|s| s.local_addr().unwrap()).collect();
    let snap = wait_for(WAIT, || {
        for s in &mut streams {
            mptcp::ping(s, b"x").unwrap();
        }
        let snap = diag.snapshot().unwrap();
        let complete = snap
            .conns
            .iter()
            .filter(|c| locals.contains(&c.conn.local) && c.subflows.len() == 2)
            .count();
        (complete == N).then_some(snap)
    })
    .unwrap_or_else(|| panic!("not all {N} connections reached 2 subflows"));
    assert_eq!(snap.conns.len(), N, "no duplicates, no strangers");
    assert_eq!(snap.skipped, 0, "{:?}", snap.last_error);
    let tokens: BTreeSet<Token> = snap.conns.iter().map(|c| c.conn.token).collect();
    assert_eq!(tokens.len(), N, "tokens are unique");
    assert!(snap
        .conns
        .iter()
        .all(|c| c.subflows.iter().all(|s| s.token == c.conn.token)));
    // The raw dumps agree with the snapshot.
    let subs = diag.subflows().unwrap();
    assert_eq!(subs.items.len(), 2 * N);
    let conns = diag.mptcp_connections().unwrap();
    assert_eq!(conns.items.len(), N);
    // The connections-only snapshot (the daemon's poll when no policy reads samples): the same
    // connections and tokens, no subflows, and it says so.
    let light = diag.connections_snapshot().unwrap();
    assert!(snap.has_subflows && !light.has_subflows);
    let light_tokens: BTreeSet<Token> = light.conns.iter().map(|c| c.conn.token).collect();
    assert_eq!(light_tokens, tokens);
    assert!(light.conns.iter().all(|c| c.subflows.is_empty()));
    assert!(light.orphans.is_empty());
}

/// The IPv6 subflow dump is skipped only while there is no IPv6 connection, and then there
/// are no IPv6 subflows to miss: the snapshot holds exactly the subflows of the whole dump.
#[test]
fn skipping_the_ipv6_subflow_dump_loses_nothing() {
    if !kernel_tests_enabled("skipping_the_ipv6_subflow_dump_loses_nothing") {
        return;
    }
    const N: usize = 60;
    let (_topo, mut streams, mut diag) = many_connections(N);
    let all = wait_for(WAIT, || {
        for s in &mut streams {
            mptcp::ping(s, b"x").unwrap();
        }
        let subs = diag.subflows().unwrap();
        (subs.items.len() == 2 * N).then_some(subs)
    })
    .unwrap_or_else(|| panic!("not all {N} connections reached 2 subflows"));
    assert_eq!(all.skipped, 0);
    let keys: BTreeSet<_> = all.items.iter().map(|s| s.key).collect();
    assert_eq!(keys.len(), 2 * N, "no subflow listed twice");

    let (conns, v6) = diag.mptcp_connections_v6().unwrap();
    assert_eq!(conns.items.iter().filter(|c| !c.is_listener()).count(), N);
    assert!(!v6, "no IPv6 connection here");
    let snap = diag.snapshot().unwrap();
    let with_v6 = diag.subflows().unwrap();
    let snap_keys: BTreeSet<_> = snap
        .conns
        .iter()
        .flat_map(|c| c.subflows.iter().map(|s| s.key))
        .collect();
    let v6_keys: BTreeSet<_> = with_v6.items.iter().map(|s| s.key).collect();
    assert_eq!(snap_keys, v6_keys, "skipping the IPv6 dump lost nothing");
}

/// With an IPv6 connection, the IPv6 subflow dump is taken.
#[test]
fn an_ipv6_connection_keeps_the_ipv6_subflow_dump() {
    if !kernel_tests_enabled("an_ipv6_connection_keeps_the_ipv6_subflow_dump") {
        return;
    }
    let (topo, srv) = topology(true);
    let mut stream = connect(&topo, srv, topo.client_addr6(0));
    let mut diag = topo.client.exec(DiagSocket::open).unwrap().unwrap();
    let snap = wait_for(WAIT, || {
        mptcp::ping(&mut stream, b"x").unwrap();
        let snap = diag.snapshot().unwrap();
        snap.conns
            .iter()
            .any(|c| c.subflows.len() == 2)
            .then_some(snap)
    })
    .expect("the IPv6 connection's two subflows");
    let (_, v6) = diag.mptcp_connections_v6().unwrap();
    assert!(v6);
    assert!(snap
        .conns
        .iter()
        .flat_map(|c| c.subflows.iter())
        .all(|s| s.key.local.is_ipv6()));
}

/// Exact lookups as the kernel answers them: every subflow of many connections (more than one
/// batch) is found by its 4-tuple and bound interface with the same token and state as the
/// dump shows, a 4-tuple nobody uses is missing (ENOENT), and a join bound to its interface
/// is found only with that interface's index.
#[test]
fn lookups_find_each_subflow_by_its_4_tuple() {
    if !kernel_tests_enabled("lookups_find_each_subflow_by_its_4_tuple") {
        return;
    }
    const N: usize = 100;
    let (_topo, mut streams, mut diag) = many_connections(N);
    let all = wait_for(WAIT, || {
        for s in &mut streams {
            mptcp::ping(s, b"x").unwrap();
        }
        let subs = diag.subflows().unwrap();
        (subs.items.len() == 2 * N).then_some(subs)
    })
    .unwrap_or_else(|| panic!("not all {N} connections reached 2 subflows"));
    let mut keys: Vec<LookupKey> = all
        .items
        .iter()
        .map(|s| LookupKey {
            key: s.key,
            if_index: s.if_index,
        })
        .collect();
    let bound = all.items.iter().filter(|s| s.if_index != 0).count();
    assert_eq!(
        bound, N,
        "the kernel PM binds each join to its endpoint's device"
    );
    let nobody = LookupKey {
        key: SubflowKey {
            local: "198.18.0.2:1".parse().unwrap(),
            remote: "198.19.0.2:1".parse().unwrap(),
        },
        if_index: 0,
    };
    keys.insert(N / 2, nobody);
    let mut found = Vec::new();
    let mut missing = Vec::new();
    diag.lookup_subflows(&keys, |i, a| match a {
        Answer::Found(s) => found.push((i, *s)),
        Answer::Missing(e) => missing.push((i, *e)),
        other => panic!("key {i}: {other:?}"),
    })
    .unwrap();
    assert_eq!(missing, vec![(N / 2, libc::ENOENT)]);
    assert_eq!(found.len(), 2 * N);
    for (i, s) in &found {
        let want = all.items.iter().find(|d| d.key == s.key).unwrap();
        assert_eq!(keys[*i].key, s.key, "answers come back in request order");
        assert_eq!(
            (s.token, s.state, s.if_index),
            (want.token, want.state, want.if_index)
        );
        assert_eq!(s.loc_id, want.loc_id);
        assert!(s.sample.snd_cwnd > 0);
    }
    // A bound join without its interface index is not found; the unbound initial subflow is
    // found with or without one.
    let join = all.items.iter().find(|s| s.if_index != 0).unwrap();
    let initial = all.items.iter().find(|s| s.if_index == 0).unwrap();
    let mut answers = Vec::new();
    diag.lookup_subflows(
        &[
            LookupKey {
                key: join.key,
                if_index: 0,
            },
            LookupKey {
                key: initial.key,
                if_index: join.if_index,
            },
        ],
        |_, a| answers.push(matches!(a, Answer::Found(_))),
    )
    .unwrap();
    assert_eq!(answers, [false, true]);
}
