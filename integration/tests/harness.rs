//! The harness itself against the real kernel: a topology forwards traffic over every client
//! link, MPTCP sockets connect through it, and the namespaces are gone after drop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::net::SocketAddr;
use std::time::Duration;

use integration::{kernel_tests_enabled, mptcp, Pm, TopoOpts, Topology};

#[test]
fn topology_carries_mptcp_over_every_link_and_cleans_up() {
    if !kernel_tests_enabled("topology_carries_mptcp_over_every_link_and_cleans_up") {
        return;
    }
    let names;
    {
        let topo = Topology::build(TopoOpts {
            client_links: 3,
            server_links: 2,
            client_pm: Pm::Kernel,
            ..Default::default()
        })
        .unwrap();
        names = [
            topo.client.name().to_string(),
            topo.router.name().to_string(),
            topo.server.name().to_string(),
        ];
        let srv: SocketAddr = SocketAddr::new(topo.server_addr(0), 5201);
        let l = topo
            .server
            .exec(move || mptcp::listen(srv))
            .unwrap()
            .unwrap();
        topo.server.exec_bg(move || mptcp::echo_server(l)).unwrap();
        let mut keep = Vec::new();
        for i in 0..3 {
            for v6 in [false, true] {
                let local = if v6 {
                    topo.client_addr6(i)
                } else {
                    topo.client_addr(i)
                };
                let dst = SocketAddr::new(
                    if v6 {
                        topo.server_addr6(1)
                    } else {
                        topo.server_addr(0)
                    },
                    5201,
                );
                if v6 {
                    // the listener is v4 only: open a v6 one on demand
                    let l6 = topo.server.exec(move || mptcp::listen(dst)).unwrap();
                    if let Ok(l6) = l6 {
                        topo.server.exec_bg(move || mptcp::echo_server(l6)).unwrap();
                    }
                }
                let mut s = topo
                    .client
                    .exec(move || mptcp::connect(dst, Some(local)))
                    .unwrap()
                    .unwrap_or_else(|e| panic!("connect from {local} to {dst}: {e}"));
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                mptcp::ping(&mut s, b"hello").unwrap();
                assert_eq!(s.local_addr().unwrap().ip(), local);
                keep.push(s);
            }
        }
        let ss = topo.client.run(&["ss", "-Mn"]).unwrap();
        assert!(ss.contains("ESTAB"), "ss -M shows MPTCP sockets: {ss}");
    }
    let list = integration::netns::run(&["ip", "netns", "list"]).unwrap();
    for n in names {
        assert!(!list.contains(&n), "{n} still exists after drop");
    }
}
