//! `netlink_actor::rtnl` against the real kernel, in the client namespace of a topology: the
//! dumps list the links and addresses the harness configured, and the monitor reports an
//! address added and removed (IPv4 and IPv6), a link going down and up, and an overrun as the
//! distinct error it is.

// Test helpers outside #[test] functions may unwrap/panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::IpAddr;
use std::time::Duration;

use integration::{kernel_tests_enabled, wait_for, Netns, Pm, TopoOpts, Topology};
use netlink_actor::rtnl::{AddrScope, RtnlEvent, RtnlSocket};
use netlink_actor::Error as RtnlError;

const WAIT: Duration = Duration::from_secs(5);

fn topology() -> Topology {
    Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        client_pm: Pm::Kernel,
        server_pm: Pm::Kernel,
        ..Default::default()
    })
    .unwrap()
}

fn monitor(ns: &Netns) -> RtnlSocket {
    let m = ns.exec(RtnlSocket::open_monitor).unwrap().unwrap();
    m.set_nonblocking(true).unwrap();
    m
}

/// Read events until `pred` matches one (returning it) or the time is up.
fn expect_event(m: &mut RtnlSocket, what: &str, pred: impl Fn(&RtnlEvent) -> bool) -> RtnlEvent {
    let mut seen = Vec::new();
    let found = wait_for(WAIT, || loop {
        match m.recv_batch() {
            Ok(batch) => {
                for e in batch {
                    let e = e.unwrap();
                    if pred(&e) {
                        return Some(e);
                    }
                    seen.push(e);
                }
            }
            Err(e) if e.is_would_block() => return None,
            Err(e) => panic!("recv_batch: {e}"),
        }
    });
    found.unwrap_or_else(|| panic!("no event: {what}; saw {seen:#?}"))
}

#[test]
fn dumps_list_the_configured_links_and_addresses() {
    if !kernel_tests_enabled("dumps_list_the_configured_links_and_addresses") {
        return;
    }
    let topo = topology();
    let mut d = topo.client.exec(RtnlSocket::open).unwrap().unwrap();
    let links = d.dump_links().unwrap();
    assert_eq!(links.skipped, 0);
    let c0 = links.items.iter().find(|l| l.name == "c0").unwrap();
    let c1 = links.items.iter().find(|l| l.name == "c1").unwrap();
    let lo = links.items.iter().find(|l| l.name == "lo").unwrap();
    assert!(c0.usable() && c1.usable() && !c0.loopback);
    assert_eq!(c0.kind.as_deref(), Some("veth"));
    assert!(lo.loopback && lo.kind.is_none());
    assert_eq!(links.items.len(), 3, "{:?}", links.items);

    let addrs = d.dump_addrs().unwrap();
    assert_eq!(addrs.skipped, 0);
    for (ip, link) in [
        (topo.client_addr(0), c0),
        (topo.client_addr6(0), c0),
        (topo.client_addr(1), c1),
        (topo.client_addr6(1), c1),
    ] {
        let a = addrs
            .items
            .iter()
            .find(|a| a.addr == ip)
            .unwrap_or_else(|| panic!("{ip} not in dump: {:?}", addrs.items));
        assert_eq!(a.if_index, link.index);
        assert_eq!(a.scope, AddrScope::Universe);
        assert_eq!(a.prefix_len, if ip.is_ipv4() { 24 } else { 64 });
        assert!(!a.is_tentative(), "added with nodad");
    }
    assert!(addrs
        .items
        .iter()
        .any(|a| a.addr == IpAddr::from([127, 0, 0, 1]) && a.scope == AddrScope::Host));
    // A dumper is not a monitor, and a monitor refuses dumps.
    let mut m = monitor(&topo.client);
    assert!(matches!(m.dump_links(), Err(RtnlError::DumpOnMonitor)));
}

#[test]
fn monitor_reports_address_and_link_changes() {
    if !kernel_tests_enabled("monitor_reports_address_and_link_changes") {
        return;
    }
    let topo = topology();
    // Subscribe first, then dump (on another socket): the order the daemon uses.
    let mut m = monitor(&topo.client);
    let mut d = topo.client.exec(RtnlSocket::open).unwrap().unwrap();
    let c0 = d
        .dump_links()
        .unwrap()
        .items
        .into_iter()
        .find(|l| l.name == "c0")
        .unwrap();
    let c1_index = d
        .dump_links()
        .unwrap()
        .items
        .into_iter()
        .find(|l| l.name == "c1")
        .unwrap()
        .index;

    for (cidr, ip) in [
        ("198.18.0.77/24", IpAddr::from([198, 18, 0, 77])),
        (
            "2001:db8:0:0::77/64",
            "2001:db8::77".parse::<IpAddr>().unwrap(),
        ),
    ] {
        let mut args = vec!["ip", "addr", "add", cidr, "dev", "c0"];
        if ip.is_ipv6() {
            args.push("nodad");
        }
        topo.client.run(&args).unwrap();
        let e = expect_event(
            &mut m,
            "address added",
            |e| matches!(e, RtnlEvent::AddrAdded(a) if a.addr == ip),
        );
        let RtnlEvent::AddrAdded(a) = e else {
            unreachable!()
        };
        assert_eq!(a.if_index, c0.index);
        assert_eq!(a.prefix_len, if ip.is_ipv4() { 24 } else { 64 });
        assert_eq!(a.scope, AddrScope::Universe);
        if ip.is_ipv4() {
            assert_eq!(a.label.as_deref(), Some("c0"));
        }

        topo.client
            .run(&["ip", "addr", "del", cidr, "dev", "c0"])
            .unwrap();
        expect_event(
            &mut m,
            "address removed",
            |e| matches!(e, RtnlEvent::AddrRemoved(a) if a.addr == ip && a.if_index == c0.index),
        );
    }

    topo.set_link(1, false).unwrap();
    expect_event(
        &mut m,
        "c1 down",
        |e| matches!(e, RtnlEvent::LinkChanged(l) if l.index == c1_index && l.name == "c1" && !l.up && !l.usable()),
    );
    // With the default keep_addr_on_down=0 the kernel deletes the link's global IPv6 address
    // (and does not restore it on up); the IPv4 one stays.
    let v6 = topo.client_addr6(1);
    expect_event(
        &mut m,
        "IPv6 address of the down link removed",
        |e| matches!(e, RtnlEvent::AddrRemoved(a) if a.addr == v6 && a.if_index == c1_index),
    );
    topo.set_link(1, true).unwrap();
    expect_event(
        &mut m,
        "c1 up and running",
        |e| matches!(e, RtnlEvent::LinkChanged(l) if l.index == c1_index && l.usable()),
    );
}

#[test]
fn monitor_overrun_is_a_distinct_error_and_recoverable() {
    if !kernel_tests_enabled("monitor_overrun_is_a_distinct_error_and_recoverable") {
        return;
    }
    let topo = topology();
    let mut m = monitor(&topo.client);
    // A tiny buffer (the kernel enforces a small minimum) that a burst of events overflows.
    m.set_recv_buffer_size(1024).unwrap();
    let batch = std::env::temp_dir().join(format!("rtnl-batch-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&batch).unwrap();
        for i in 0..600u32 {
            writeln!(f, "addr add 10.99.{}.{}/32 dev c0", i / 200, 1 + i % 200).unwrap();
        }
    }
    topo.client
        .run(&["ip", "-batch", batch.to_str().unwrap()])
        .unwrap();
    let _ = std::fs::remove_file(&batch);
    let mut overrun = false;
    let mut events = 0;
    let done = wait_for(WAIT, || loop {
        match m.recv_batch() {
            Ok(b) => events += b.len(),
            Err(RtnlError::Overrun) => overrun = true,
            Err(e) if e.is_would_block() => return Some(()),
            Err(e) => panic!("recv_batch: {e}"),
        }
    });
    assert!(done.is_some());
    assert!(
        overrun,
        "600 events into a tiny buffer must overrun ({events} read)"
    );
    assert!(events < 600, "events were lost: {events}");
    // The socket keeps working after the overrun.
    topo.client
        .run(&["ip", "addr", "add", "10.98.0.1/32", "dev", "c0"])
        .unwrap();
    expect_event(
        &mut m,
        "address after overrun",
        |e| matches!(e, RtnlEvent::AddrAdded(a) if a.addr == IpAddr::from([10, 98, 0, 1])),
    );
}
