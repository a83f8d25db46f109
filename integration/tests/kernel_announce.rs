//! The server side of the userspace path manager on the real kernel: what ANNOUNCE and REMOVE
//! do, what a server needs for a client's join to an announced address to be accepted, and how
//! the kernel refuses bad requests. The groundwork of issue 10; the findings, with the
//! reasoning and the timing numbers, are in `docs/KERNEL-SERVER-SIDE.md`.
//!
//! Every scenario: a server namespace on the userspace PM with two links (`s0`, `s1`), a client
//! on the **in-kernel** PM with `ip mptcp limits set add_addr_accepted 2 subflows 2` and no
//! endpoints, the commands sent with `netlink-actor`'s `PmClient` exactly as the daemon sends
//! them, and both ends watched through their `mptcp_pm` events and `ss`.
//!
//! The latency comparison with the in-kernel PM's `signal` endpoint is a measurement, not a
//! test: `cargo test -p integration --release --test kernel_announce -- --ignored --nocapture`.

// Test helpers outside #[test] functions may unwrap/panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::observe::{self, EventLog, SsSubflow, Stamped};
use integration::transfer::{payload, receive_one, send_and_wait, sha256sum};
use integration::{kernel_tests_enabled, mptcp, Netns, Pm, TopoOpts, Topology};
use mptcp_pmd_policies::{AddrId, ConnInfo, PmCommand, PmEvent, SubflowInfo, Token};
use netlink_actor::genl::PmClient;
use netlink_actor::mptcp_pm::{MPTCP_PM_ADDR_FLAG_IMPLICIT, MPTCP_PM_ADDR_FLAG_SIGNAL};
use netlink_actor::Error as GenlError;

const WAIT: Duration = Duration::from_secs(5);
/// How long "nothing more happens" is watched for. The in-kernel PM client reacts to an
/// ADD_ADDR within a millisecond here, and the kernel re-sends an unacknowledged ADD_ADDR after
/// about 200 ms: 600 ms covers both.
const QUIET: Duration = Duration::from_millis(600);

/// The addresses of one address family in the topology.
#[derive(Clone, Copy, Debug)]
struct Fam {
    v6: bool,
    /// The client's first address (its only one in use: it has no endpoints).
    c0: IpAddr,
    /// The server's initial address (link s0).
    s0: IpAddr,
    /// The server's second address (link s1), the one announced.
    s1: IpAddr,
    /// The wildcard a listener binds to.
    any: IpAddr,
}

impl Fam {
    fn of(t: &Topology, v6: bool) -> Fam {
        if v6 {
            Fam {
                v6,
                c0: t.client_addr6(0),
                s0: t.server_addr6(0),
                s1: t.server_addr6(1),
                any: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            }
        } else {
            Fam {
                v6,
                c0: t.client_addr(0),
                s0: t.server_addr(0),
                s1: t.server_addr(1),
                any: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            }
        }
    }

    /// `ip addr` prefix notation of the second server address.
    fn s1_cidr(&self) -> String {
        format!("{}/{}", self.s1, if self.v6 { 64 } else { 24 })
    }

    /// One more address on link s1 (for the limit scenario).
    fn extra(&self, n: u8) -> IpAddr {
        match self.s1 {
            IpAddr::V4(a) => {
                let o = a.octets();
                IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], 2 + n))
            }
            IpAddr::V6(a) => {
                let mut s = a.segments();
                s[7] = 2 + u16::from(n);
                IpAddr::V6(Ipv6Addr::from(s))
            }
        }
    }

    fn tag(&self) -> &'static str {
        if self.v6 {
            "IPv6"
        } else {
            "IPv4"
        }
    }
}

/// The server (userspace PM, two links) and the in-kernel-PM client with the limits of the
/// issue's tests.
fn topo() -> Topology {
    let t = Topology::build(TopoOpts {
        client_links: 1,
        server_links: 2,
        client_pm: Pm::Kernel,
        server_pm: Pm::Userspace,
        ..Default::default()
    })
    .unwrap();
    t.client.mptcp_limits(2, 2).unwrap();
    t
}

/// The three things every scenario watches.
struct Ends {
    cev: EventLog,
    sev: EventLog,
    spm: PmClient,
}

fn ends(t: &Topology) -> Ends {
    Ends {
        cev: EventLog::open(&t.client, "client"),
        sev: EventLog::open(&t.server, "server"),
        spm: t.server.exec(PmClient::open).unwrap().unwrap(),
    }
}

/// An MPTCP listener in `ns` whose connections are echoed; the listener itself is returned so
/// that the test decides when it closes.
fn serve(ns: &Netns, addr: SocketAddr) -> TcpListener {
    let l = ns.exec(move || mptcp::listen(addr)).unwrap().unwrap();
    let l2 = l.try_clone().unwrap();
    std::thread::spawn(move || mptcp::echo_server(l2));
    l
}

/// An MPTCP listener that never accepts: what a daemon would hold open for an announced port.
fn listen_only(ns: &Netns, addr: SocketAddr) -> TcpListener {
    ns.exec(move || mptcp::listen(addr)).unwrap().unwrap()
}

/// Connect from `from` and exchange data, so that both ends are fully established.
fn connect(t: &Topology, remote: SocketAddr, from: IpAddr) -> TcpStream {
    let mut s = t
        .client
        .exec(move || mptcp::connect(remote, Some(from)))
        .unwrap()
        .unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    mptcp::ping(&mut s, b"hello").unwrap();
    s
}

/// One connection as both ends know it.
struct Conn {
    stream: TcpStream,
    /// The client's token.
    ctok: Token,
    /// The server's token (the one every server-side command names).
    stok: Token,
    /// The server's view of the connection (ESTABLISHED).
    server: ConnInfo,
}

/// Connect and claim both ends' ESTABLISHED events of this connection.
fn open_conn(t: &Topology, e: &mut Ends, remote: SocketAddr, from: IpAddr) -> Conn {
    let stream = connect(t, remote, from);
    let local = stream.local_addr().unwrap();
    let c = est_of(&e.cev.wait("client ESTABLISHED", WAIT, |ev| {
        established(ev).is_some_and(|c| c.local == local)
    }));
    let s = est_of(&e.sev.wait("server ESTABLISHED", WAIT, |ev| {
        established(ev).is_some_and(|c| unmap(c.remote) == local)
    }));
    assert!(s.flags.server_side, "{s:?}");
    assert!(!c.flags.server_side, "{c:?}");
    Conn {
        stream,
        ctok: c.token,
        stok: s.token,
        server: s,
    }
}

/// The ESTABLISHED a wait returned.
fn est_of(s: &Stamped) -> ConnInfo {
    established(&s.event).unwrap_or_else(|| panic!("not ESTABLISHED: {s:?}"))
}

fn established(e: &PmEvent) -> Option<ConnInfo> {
    match e {
        PmEvent::Established(c) => Some(*c),
        _ => None,
    }
}

fn sub_established(e: &PmEvent) -> Option<SubflowInfo> {
    match e {
        PmEvent::SubEstablished(s) => Some(*s),
        _ => None,
    }
}

fn sub_closed(e: &PmEvent) -> Option<SubflowInfo> {
    match e {
        PmEvent::SubClosed(s) => Some(*s),
        _ => None,
    }
}

fn info(s: &Stamped) -> SubflowInfo {
    match &s.event {
        PmEvent::SubEstablished(i) | PmEvent::SubClosed(i) => *i,
        other => panic!("not a subflow event: {other:?}"),
    }
}

/// The address with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned back into IPv4.
fn unmap(sa: SocketAddr) -> SocketAddr {
    match sa.ip() {
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), sa.port()),
            None => sa,
        },
        IpAddr::V4(_) => sa,
    }
}

fn announce(token: Token, id: AddrId, addr: IpAddr, port: Option<u16>) -> PmCommand {
    PmCommand::Announce {
        token,
        id,
        addr,
        port,
    }
}

/// The kernel's refusal of `r`: (errno, extack text).
fn refusal(r: Result<(), GenlError>) -> (i32, String) {
    match r {
        Err(GenlError::Kernel { errno, message, .. }) => (errno, message.unwrap_or_default()),
        other => panic!("expected a kernel refusal, got {other:?}"),
    }
}

/// The established subflows `ss` lists in `ns` from or to `addr` (any port).
fn ss_with(ns: &Netns, addr: IpAddr) -> Vec<SsSubflow> {
    let out = ns
        .run(&["ss", "-tniH", "state", "established"])
        .unwrap_or_default();
    observe::parse_ss(&out)
        .into_values()
        .flatten()
        .filter(|s| s.local.ip() == addr || s.remote.ip() == addr)
        .collect()
}

/// The client's view of the announced address: ANNOUNCED with the server's id, the address and
/// (verified on 6.18, also without a port in the ADD_ADDR) the connection's port.
fn wait_announced(cev: &mut EventLog, ctok: Token, id: AddrId, addr: IpAddr, port: u16) {
    let a = cev.wait("client ANNOUNCED", WAIT, |e| {
        matches!(e, PmEvent::Announced { token, rem_id, .. } if *token == ctok && *rem_id == id)
    });
    assert_eq!(
        a.event,
        PmEvent::Announced {
            token: ctok,
            rem_id: id,
            addr,
            port: Some(port),
        }
    );
}

/// The join to the announced address, on both ends: the in-kernel PM client opens it from its
/// initial address (id 0: no endpoint is needed), and the server's event names the announced
/// id as the local id. Returns (client view, server view).
fn wait_join(
    e: &mut Ends,
    c: &Conn,
    id: AddrId,
    to: SocketAddr,
    from: IpAddr,
) -> (SubflowInfo, SubflowInfo) {
    let cj = info(&e.cev.wait("client SUB_ESTABLISHED", WAIT, |ev| {
        sub_established(ev).is_some_and(|s| s.token == c.ctok && s.rem_id == id)
    }));
    assert_eq!(cj.remote, to, "{cj:?}");
    assert_eq!(cj.local.ip(), from, "{cj:?}");
    assert_eq!(cj.loc_id, 0, "{cj:?}");
    let sj = info(&e.sev.wait("server SUB_ESTABLISHED", WAIT, |ev| {
        sub_established(ev).is_some_and(|s| s.token == c.stok && unmap(s.remote) == cj.local)
    }));
    assert_eq!(unmap(sj.local), to, "{sj:?}");
    assert_eq!((sj.loc_id, sj.rem_id), (id, 0), "{sj:?}");
    (cj, sj)
}

/// Where `MPTCP_PM_FIXTURE_DIR` points, the scenarios save the kernel-accepted requests they
/// capture for `netlink-actor/tests/mptcp_pm_fixtures.rs` (see there for the command).
fn fixture_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("MPTCP_PM_FIXTURE_DIR").map(std::path::PathBuf::from)
}

fn fam(f: &Fam) -> &'static str {
    if f.v6 {
        "v6"
    } else {
        "v4"
    }
}

/// Save the first request `pm` traced as `cmd_<name>.bin` and the first data reply (a GET_ADDR
/// entry; not the ACKs) as `reply_get_addr_<name>.bin`, plus `ss -tni` of `ns`: iproute2's
/// view of the token the bytes carry.
fn save_capture(ns: &Netns, pm: &mut PmClient, name: &str) {
    use netlink_actor::genl::Traced;
    let trace = pm.take_trace();
    let Some(dir) = fixture_dir() else { return };
    let sent = trace.iter().find_map(|t| match t {
        Traced::Sent(b) => Some(b),
        Traced::Received(_) => None,
    });
    // NLMSG_ERROR (2, the ACK) and NLMSG_DONE (3) are not kept.
    let reply = trace.iter().find_map(|t| match t {
        Traced::Received(b) if !matches!(b.get(4..6), Some([2 | 3, 0])) => Some(b),
        _ => None,
    });
    std::fs::write(dir.join(format!("cmd_{name}.bin")), sent.unwrap()).unwrap();
    std::fs::write(
        dir.join(format!("reply_get_addr_{name}.bin")),
        reply.unwrap(),
    )
    .unwrap();
    let ss = ns.run(&["ss", "-tniH", "state", "established"]).unwrap();
    std::fs::write(dir.join(format!("ss_{name}.txt")), ss).unwrap();
}

/// ANNOUNCE → ANNOUNCED → the in-kernel PM client joins → a wildcard listener accepts; a repeated
/// ANNOUNCE is re-sent but opens nothing; REMOVE → REMOVED and the client closes its subflow,
/// which closes the server's end too; the same id is accepted again afterwards.
fn announce_join_remove(v6: bool) {
    let t = topo();
    let f = Fam::of(&t, v6);
    let mut e = ends(&t);
    let port = 4300;
    let _l = serve(&t.server, SocketAddr::new(f.any, port));
    let lc = e.sev.wait("LISTENER_CREATED", WAIT, |ev| {
        matches!(ev, PmEvent::ListenerCreated { .. })
    });
    assert_eq!(
        lc.event,
        PmEvent::ListenerCreated {
            addr: SocketAddr::new(f.any, port)
        }
    );
    let mut c = open_conn(&t, &mut e, SocketAddr::new(f.s0, port), f.c0);
    let to = SocketAddr::new(f.s1, port);

    e.spm.execute(&announce(c.stok, 1, f.s1, None)).unwrap();
    wait_announced(&mut e.cev, c.ctok, 1, f.s1, port);
    let (cj, sj) = wait_join(&mut e, &c, 1, to, f.c0);
    // `ss` (iproute2's decoder, not ours) shows the subflow on both ends.
    let on_client = ss_with(&t.client, f.s1);
    assert_eq!(on_client.len(), 1, "{on_client:?}");
    assert_eq!((on_client[0].local, on_client[0].remote), (cj.local, to));
    let on_server = ss_with(&t.server, f.s1);
    assert_eq!(on_server.len(), 1, "{on_server:?}");
    assert_eq!(on_server[0].remote, cj.local);
    // The kernel keeps the announced address in the connection's local address list.
    let addrs = e.spm.get_addrs(Some(c.stok)).unwrap();
    assert!(
        addrs
            .iter()
            .any(|a| a.id == 1 && a.addr == f.s1 && a.flags & MPTCP_PM_ADDR_FLAG_SIGNAL != 0),
        "{addrs:?}"
    );
    mptcp::ping(&mut c.stream, b"two subflows").unwrap();

    // The same ANNOUNCE again: accepted, sent again (the client reports it again), no new join.
    e.spm.execute(&announce(c.stok, 1, f.s1, None)).unwrap();
    wait_announced(&mut e.cev, c.ctok, 1, f.s1, port);
    assert!(
        e.cev
            .try_wait(QUIET, |ev| sub_established(ev).is_some())
            .is_none(),
        "a repeated ANNOUNCE opened another subflow"
    );
    assert_eq!(ss_with(&t.client, f.s1).len(), 1);

    // REMOVE: the client gets REMOVED and (in-kernel PM) closes its subflow to that address;
    // the server's end closes because the client closed it.
    e.spm
        .execute(&PmCommand::Remove {
            token: c.stok,
            id: 1,
        })
        .unwrap();
    let r = e.cev.wait("client REMOVED", WAIT, |ev| {
        matches!(ev, PmEvent::Removed { .. })
    });
    assert_eq!(
        r.event,
        PmEvent::Removed {
            token: c.ctok,
            rem_id: 1
        }
    );
    let cc = info(&e.cev.wait("client SUB_CLOSED", WAIT, |ev| {
        sub_closed(ev).is_some_and(|s| s.local == cj.local)
    }));
    assert_eq!(cc.rem_id, 1);
    let sc = info(&e.sev.wait("server SUB_CLOSED", WAIT, |ev| {
        sub_closed(ev).is_some_and(|s| s.local == sj.local && s.remote == sj.remote)
    }));
    assert_eq!(sc.loc_id, 1);
    assert!(ss_with(&t.client, f.s1).is_empty());
    assert!(ss_with(&t.server, f.s1).is_empty());
    // REMOVE forgets the address: GET_ADDR no longer lists it.
    let addrs = e.spm.get_addrs(Some(c.stok)).unwrap();
    assert!(!addrs.iter().any(|a| a.addr == f.s1), "{addrs:?}");

    // The same id for the same address is accepted again, and the join comes back.
    e.spm.execute(&announce(c.stok, 1, f.s1, None)).unwrap();
    wait_announced(&mut e.cev, c.ctok, 1, f.s1, port);
    wait_join(&mut e, &c, 1, to, f.c0);
    mptcp::ping(&mut c.stream, b"still there").unwrap();
}

#[test]
fn announce_join_remove_reannounce_ipv4() {
    if !kernel_tests_enabled("announce_join_remove_reannounce_ipv4") {
        return;
    }
    announce_join_remove(false);
}

#[test]
fn announce_join_remove_reannounce_ipv6() {
    if !kernel_tests_enabled("announce_join_remove_reannounce_ipv6") {
        return;
    }
    announce_join_remove(true);
}

/// A listener bound to the server's first address does not accept the join to the second: the
/// SYN is answered with a RST (the server emits no event at all, only `TcpOutRsts` counts it), the
/// client reports SUB_CLOSED with ECONNREFUSED and does not try again.
#[test]
fn bound_listener_refuses_the_join() {
    if !kernel_tests_enabled("bound_listener_refuses_the_join") {
        return;
    }
    let t = topo();
    let mut e = ends(&t);
    // Both connections stay open to the end, so that no CLOSED falls into the second's watch.
    let mut keep = Vec::new();
    for (i, v6) in [false, true].into_iter().enumerate() {
        let f = Fam::of(&t, v6);
        let port = 4310 + i as u16;
        let l = serve(&t.server, SocketAddr::new(f.s0, port));
        let c = open_conn(&t, &mut e, SocketAddr::new(f.s0, port), f.c0);
        e.sev.clear();
        let rsts = observe::mib(&t.server, "Tcp", "OutRsts").unwrap();
        e.spm.execute(&announce(c.stok, 1, f.s1, None)).unwrap();
        wait_announced(&mut e.cev, c.ctok, 1, f.s1, port);
        let cl = info(&e.cev.wait("client SUB_CLOSED", WAIT, |ev| {
            sub_closed(ev).is_some_and(|s| s.token == c.ctok)
        }));
        assert_eq!(
            cl.remote,
            SocketAddr::new(f.s1, port),
            "{}: {cl:?}",
            f.tag()
        );
        assert_eq!(
            cl.error,
            Some(libc::ECONNREFUSED as u8),
            "{}: {cl:?}",
            f.tag()
        );
        assert!(
            e.cev
                .try_wait(QUIET, |ev| sub_established(ev).is_some()
                    || sub_closed(ev).is_some())
                .is_none(),
            "{}: the client tried again",
            f.tag()
        );
        assert_eq!(e.sev.unclaimed(), vec![], "{}", f.tag());
        assert!(observe::mib(&t.server, "Tcp", "OutRsts").unwrap() > rsts);
        assert!(ss_with(&t.client, f.s1).is_empty());
        keep.push((l, c));
    }
}

/// An announced port different from the listener's: the userspace PM creates no listener for
/// it (the in-kernel PM does, for `signal` endpoints with a port); a wildcard listener on that
/// port does not do either (the kernel checks that the listener's own address and port were
/// announced: `MPTcpExtMismatchPortSynRx`); a listener bound to exactly the announced address
/// and port does, without ever calling accept(). LISTENER_CREATED / LISTENER_CLOSED tell the
/// daemon about every MPTCP listener in the namespace, its own included.
fn announced_port(v6: bool) {
    let t = topo();
    let f = Fam::of(&t, v6);
    let mut e = ends(&t);
    let app = 4320;
    let _l = serve(&t.server, SocketAddr::new(f.any, app));
    let base = if v6 { 6100 } else { 6000 };

    if v6 {
        // An IPv6 ADD_ADDR with a port (30 bytes) does not fit in a segment's option space
        // next to TCP timestamps: ANNOUNCE succeeds, the kernel drops the option
        // (`MPTcpExtAddAddrTxDrop`) and the client never hears of the address.
        let drops = observe::mib(&t.server, "MPTcpExt", "AddAddrTxDrop").unwrap();
        let c = open_conn(&t, &mut e, SocketAddr::new(f.s0, app), f.c0);
        e.spm
            .execute(&announce(c.stok, 1, f.s1, Some(base + 9)))
            .unwrap();
        assert!(
            e.cev
                .try_wait(QUIET, |ev| matches!(ev, PmEvent::Announced { .. }))
                .is_none(),
            "an IPv6 ADD_ADDR with a port arrived despite TCP timestamps"
        );
        assert_eq!(
            observe::mib(&t.server, "MPTcpExt", "AddAddrTxDrop").unwrap(),
            drops + 1
        );
        // Without timestamps (a per-namespace sysctl, for new connections) it fits.
        for ns in [&t.server, &t.client] {
            ns.sysctl("net.ipv4.tcp_timestamps", "0").unwrap();
        }
    }

    // 1. Nobody listens on the announced port.
    let c = open_conn(&t, &mut e, SocketAddr::new(f.s0, app), f.c0);
    e.spm.set_trace(fixture_dir().is_some());
    e.spm
        .execute(&announce(c.stok, 1, f.s1, Some(base)))
        .unwrap();
    wait_announced(&mut e.cev, c.ctok, 1, f.s1, base);
    let cl = info(&e.cev.wait("client SUB_CLOSED", WAIT, |ev| {
        sub_closed(ev).is_some_and(|s| s.token == c.ctok)
    }));
    assert_eq!(cl.remote, SocketAddr::new(f.s1, base));
    assert_eq!(cl.error, Some(libc::ECONNREFUSED as u8));
    let listeners = t.server.run(&["ss", "-Mltn"]).unwrap();
    assert!(!listeners.contains(&format!(":{base}")), "{listeners}");
    // The kernel read the port as sent: GET_ADDR gives it back.
    let addrs = e.spm.get_addrs(Some(c.stok)).unwrap();
    assert!(
        addrs
            .iter()
            .any(|a| a.id == 1 && a.addr == f.s1 && a.port == Some(base)),
        "{addrs:?}"
    );
    save_capture(&t.server, &mut e.spm, &format!("announce_port_{}", fam(&f)));

    // 2. A wildcard MPTCP listener on the announced port.
    let wild = SocketAddr::new(f.any, base + 1);
    let lw = listen_only(&t.server, wild);
    e.sev.wait("LISTENER_CREATED of the wildcard", WAIT, |ev| {
        *ev == PmEvent::ListenerCreated { addr: wild }
    });
    let mismatch = observe::mib(&t.server, "MPTcpExt", "MismatchPortSynRx").unwrap();
    let c = open_conn(&t, &mut e, SocketAddr::new(f.s0, app), f.c0);
    e.spm
        .execute(&announce(c.stok, 1, f.s1, Some(base + 1)))
        .unwrap();
    wait_announced(&mut e.cev, c.ctok, 1, f.s1, base + 1);
    let cl = info(&e.cev.wait("client SUB_CLOSED", WAIT, |ev| {
        sub_closed(ev).is_some_and(|s| s.token == c.ctok)
    }));
    assert_eq!(cl.remote, SocketAddr::new(f.s1, base + 1));
    assert_eq!(cl.error, Some(libc::ECONNREFUSED as u8));
    assert_eq!(
        observe::mib(&t.server, "MPTcpExt", "MismatchPortSynRx").unwrap(),
        mismatch + 1
    );

    // 3. A listener bound to the announced address and port, never accepting.
    let bound = SocketAddr::new(f.s1, base + 2);
    let lb = listen_only(&t.server, bound);
    e.sev
        .wait("LISTENER_CREATED of the bound listener", WAIT, |ev| {
            *ev == PmEvent::ListenerCreated { addr: bound }
        });
    let c = open_conn(&t, &mut e, SocketAddr::new(f.s0, app), f.c0);
    e.spm
        .execute(&announce(c.stok, 1, f.s1, Some(base + 2)))
        .unwrap();
    wait_announced(&mut e.cev, c.ctok, 1, f.s1, base + 2);
    wait_join(&mut e, &c, 1, bound, f.c0);

    // 4. The application's own port announced explicitly works like no port at all.
    let c = open_conn(&t, &mut e, SocketAddr::new(f.s0, app), f.c0);
    e.spm
        .execute(&announce(c.stok, 1, f.s1, Some(app)))
        .unwrap();
    wait_announced(&mut e.cev, c.ctok, 1, f.s1, app);
    wait_join(&mut e, &c, 1, SocketAddr::new(f.s1, app), f.c0);

    // Closing a listener: LISTENER_CLOSED with the same address; established joins stay.
    drop(lw);
    drop(lb);
    for addr in [wild, bound] {
        e.sev.wait("LISTENER_CLOSED", WAIT, |ev| {
            *ev == PmEvent::ListenerClosed { addr }
        });
    }
    assert_eq!(ss_with(&t.server, f.s1).len(), 2);
}

#[test]
fn announced_port_needs_a_listener_on_that_address_and_port_ipv4() {
    if !kernel_tests_enabled("announced_port_needs_a_listener_on_that_address_and_port_ipv4") {
        return;
    }
    announced_port(false);
}

#[test]
fn announced_port_needs_a_listener_on_that_address_and_port_ipv6() {
    if !kernel_tests_enabled("announced_port_needs_a_listener_on_that_address_and_port_ipv6") {
        return;
    }
    announced_port(true);
}

/// How an announced address stops being usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gone {
    /// `ip addr del`.
    Deleted,
    /// `ip link set s1 down` (the IPv4 address stays, the IPv6 one goes with the link).
    LinkDown,
}

/// The announced address goes away (deleted, or its link down): the kernel does nothing by
/// itself (no event, the subflow stays established on both ends). REMOVE then makes the client
/// close its subflow, but the server's end stays: REMOVE only sends RM_ADDR, and the client's
/// FIN/RST cannot reach the server any more. SUBFLOW_DESTROY closes it. After the address comes
/// back, the same id is announced again and the join returns.
fn address_goes_away(v6: bool, how: Gone) {
    let t = topo();
    let f = Fam::of(&t, v6);
    let mut e = ends(&t);
    let port = 4330;
    let _l = serve(&t.server, SocketAddr::new(f.any, port));
    let mut c = open_conn(&t, &mut e, SocketAddr::new(f.s0, port), f.c0);
    let to = SocketAddr::new(f.s1, port);
    e.spm.execute(&announce(c.stok, 1, f.s1, None)).unwrap();
    let (cj, sj) = wait_join(&mut e, &c, 1, to, f.c0);

    e.cev.clear();
    e.sev.clear();
    let dev = t.server_if(1);
    match how {
        Gone::Deleted => {
            t.server
                .run(&["ip", "addr", "del", &f.s1_cidr(), "dev", &dev])
                .unwrap();
        }
        Gone::LinkDown => t.set_server_link(1, false).unwrap(),
    }
    assert!(e.cev.try_wait(QUIET, |_| true).is_none());
    assert_eq!(e.sev.unclaimed(), vec![]);
    assert_eq!(ss_with(&t.client, f.s1).len(), 1);
    assert_eq!(ss_with(&t.server, f.s1).len(), 1);
    mptcp::ping(&mut c.stream, b"over the first subflow").unwrap();

    // REMOVE works for an address the host no longer has.
    e.spm
        .execute(&PmCommand::Remove {
            token: c.stok,
            id: 1,
        })
        .unwrap();
    e.cev.wait("client REMOVED", WAIT, |ev| {
        *ev == PmEvent::Removed {
            token: c.ctok,
            rem_id: 1,
        }
    });
    e.cev.wait("client SUB_CLOSED", WAIT, |ev| {
        sub_closed(ev).is_some_and(|s| s.local == cj.local)
    });
    assert!(ss_with(&t.client, f.s1).is_empty());
    assert!(
        e.sev
            .try_wait(QUIET, |ev| sub_closed(ev).is_some())
            .is_none(),
        "the server's end closed by itself"
    );
    let left = ss_with(&t.server, f.s1);
    assert_eq!(left.len(), 1, "{left:?}");
    e.spm
        .execute(&PmCommand::DestroySubflow {
            token: c.stok,
            key: sj.key(),
        })
        .unwrap();
    let sc = info(&e.sev.wait("server SUB_CLOSED", WAIT, |ev| {
        sub_closed(ev).is_some_and(|s| s.local == sj.local)
    }));
    assert_eq!(sc.loc_id, 1);
    assert!(ss_with(&t.server, f.s1).is_empty());

    // The address comes back: the same id is accepted and the join returns.
    if how == Gone::Deleted {
        let cidr = f.s1_cidr();
        let mut add = vec!["ip", "addr", "add", cidr.as_str(), "dev", dev.as_str()];
        if v6 {
            add.push("nodad");
        }
        t.server.run(&add).unwrap();
    }
    // Restores the link's routes (a deleted address takes its table's default route along).
    t.set_server_link(1, true).unwrap();
    e.spm.execute(&announce(c.stok, 1, f.s1, None)).unwrap();
    wait_announced(&mut e.cev, c.ctok, 1, f.s1, port);
    wait_join(&mut e, &c, 1, to, f.c0);
    mptcp::ping(&mut c.stream, b"back").unwrap();
}

#[test]
fn address_removed_without_remove_then_remove_destroy_and_readd_ipv4() {
    if !kernel_tests_enabled("address_removed_without_remove_then_remove_destroy_and_readd_ipv4") {
        return;
    }
    address_goes_away(false, Gone::Deleted);
}

#[test]
fn address_removed_without_remove_then_remove_destroy_and_readd_ipv6() {
    if !kernel_tests_enabled("address_removed_without_remove_then_remove_destroy_and_readd_ipv6") {
        return;
    }
    address_goes_away(true, Gone::Deleted);
}

#[test]
fn announced_link_down_then_remove_destroy_and_up_ipv4() {
    if !kernel_tests_enabled("announced_link_down_then_remove_destroy_and_up_ipv4") {
        return;
    }
    address_goes_away(false, Gone::LinkDown);
}

/// SUBFLOW_DESTROY of the server's subflow from an announced address *before* REMOVE also
/// drops the address from the connection's list: the REMOVE that follows fails and no RM_ADDR
/// reaches the client, whose subflow-less announcement then lingers. The order is REMOVE first.
#[test]
fn destroy_before_remove_loses_the_rm_addr() {
    if !kernel_tests_enabled("destroy_before_remove_loses_the_rm_addr") {
        return;
    }
    let t = topo();
    let f = Fam::of(&t, false);
    let mut e = ends(&t);
    let port = 4340;
    let _l = serve(&t.server, SocketAddr::new(f.any, port));
    let c = open_conn(&t, &mut e, SocketAddr::new(f.s0, port), f.c0);
    e.spm.execute(&announce(c.stok, 1, f.s1, None)).unwrap();
    let (_, sj) = wait_join(&mut e, &c, 1, SocketAddr::new(f.s1, port), f.c0);
    e.spm
        .execute(&PmCommand::DestroySubflow {
            token: c.stok,
            key: sj.key(),
        })
        .unwrap();
    e.sev
        .wait("server SUB_CLOSED", WAIT, |ev| sub_closed(ev).is_some());
    let (errno, msg) = refusal(e.spm.execute(&PmCommand::Remove {
        token: c.stok,
        id: 1,
    }));
    assert_eq!(errno, libc::EINVAL);
    assert_eq!(msg, "address with id 1 not found");
    assert!(
        e.cev
            .try_wait(QUIET, |ev| matches!(ev, PmEvent::Removed { .. }))
            .is_none(),
        "an RM_ADDR reached the client"
    );
}

/// What ANNOUNCE and REMOVE refuse, with the kernel's errno and text (6.18), and what they
/// accept without checking.
#[test]
fn announce_and_remove_refusals() {
    if !kernel_tests_enabled("announce_and_remove_refusals") {
        return;
    }
    let t = topo();
    let f = Fam::of(&t, false);
    let mut e = ends(&t);
    let port = 4350;
    let _l = serve(&t.server, SocketAddr::new(f.any, port));
    let c = open_conn(&t, &mut e, SocketAddr::new(f.s0, port), f.c0);
    let other = f.extra(1);

    let cases: Vec<(&str, PmCommand, &str)> = vec![
        ("id 0", announce(c.stok, 0, f.s1, None), "invalid addr id"),
        (
            "unknown token",
            announce(Token(c.stok.0 ^ 0x5a5a_5a5a), 1, f.s1, None),
            "invalid token",
        ),
        (
            "REMOVE of an id never announced",
            PmCommand::Remove {
                token: c.stok,
                id: 42,
            },
            "address with id 42 not found",
        ),
    ];
    for (what, cmd, text) in cases {
        let (errno, msg) = refusal(e.spm.execute(&cmd));
        assert_eq!((errno, msg.as_str()), (libc::EINVAL, text), "{what}");
    }

    // Once an id names an address on a connection, neither may be paired with another.
    e.spm.execute(&announce(c.stok, 1, f.s1, None)).unwrap();
    wait_join(&mut e, &c, 1, SocketAddr::new(f.s1, port), f.c0);
    for (what, cmd) in [
        ("same address, other id", announce(c.stok, 2, f.s1, None)),
        ("other address, same id", announce(c.stok, 1, other, None)),
    ] {
        let (errno, msg) = refusal(e.spm.execute(&cmd));
        assert_eq!(
            (errno, msg.as_str()),
            (libc::EINVAL, "did not match address and id"),
            "{what}"
        );
    }

    // Not checked: an IPv6 address on an IPv4 connection. The client reports it and does not
    // even try to join (an AF_INET socket cannot have IPv6 subflows).
    let syns = observe::mib(&t.client, "MPTcpExt", "MPJoinSynTx").unwrap();
    let v6 = t.server_addr6(1);
    e.spm.execute(&announce(c.stok, 10, v6, None)).unwrap();
    wait_announced(&mut e.cev, c.ctok, 10, v6, port);
    assert!(e
        .cev
        .try_wait(QUIET, |ev| sub_established(ev).is_some()
            || sub_closed(ev).is_some())
        .is_none());
    assert_eq!(
        observe::mib(&t.client, "MPTcpExt", "MPJoinSynTx").unwrap(),
        syns
    );
    // Not checked either: an address this host does not have. The client tries it (one join
    // SYN, unanswered here) and reports nothing while the SYN is retried.
    let absent: IpAddr = "198.19.1.99".parse().unwrap();
    e.spm.execute(&announce(c.stok, 9, absent, None)).unwrap();
    wait_announced(&mut e.cev, c.ctok, 9, absent, port);
    assert!(e
        .cev
        .try_wait(QUIET, |ev| sub_established(ev).is_some()
            || sub_closed(ev).is_some())
        .is_none());
    assert_eq!(
        observe::mib(&t.client, "MPTcpExt", "MPJoinSynTx").unwrap(),
        syns + 1
    );
}

/// A join to a server address that was never announced (a userspace-PM client that knows it)
/// gets an implicit local id, the lowest free one: that id is then taken for the connection,
/// and the address may only be announced under it.
#[test]
fn implicit_id_of_an_unannounced_join_reserves_that_id() {
    if !kernel_tests_enabled("implicit_id_of_an_unannounced_join_reserves_that_id") {
        return;
    }
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 2,
        client_pm: Pm::Userspace,
        server_pm: Pm::Userspace,
        ..Default::default()
    })
    .unwrap();
    let f = Fam::of(&t, false);
    let mut e = ends(&t);
    let mut cpm = t.client.exec(PmClient::open).unwrap().unwrap();
    let port = 4360;
    let _l = serve(&t.server, SocketAddr::new(f.any, port));
    let c = open_conn(&t, &mut e, SocketAddr::new(f.s0, port), f.c0);
    cpm.execute(&PmCommand::CreateSubflow {
        token: c.ctok,
        local: t.client_addr(1),
        local_id: 3,
        if_index: None,
        remote: SocketAddr::new(f.s1, port),
        backup: false,
    })
    .unwrap();
    let sj = info(&e.sev.wait("server SUB_ESTABLISHED", WAIT, |ev| {
        sub_established(ev).is_some()
    }));
    assert_eq!(unmap(sj.local), SocketAddr::new(f.s1, port));
    assert_eq!((sj.loc_id, sj.rem_id), (1, 3));
    let addrs = e.spm.get_addrs(Some(c.stok)).unwrap();
    assert!(
        addrs
            .iter()
            .any(|a| a.id == 1 && a.addr == f.s1 && a.flags == MPTCP_PM_ADDR_FLAG_IMPLICIT),
        "{addrs:?}"
    );
    for cmd in [
        announce(c.stok, 1, f.extra(1), None),
        announce(c.stok, 2, f.s1, None),
    ] {
        let (errno, msg) = refusal(e.spm.execute(&cmd));
        assert_eq!(
            (errno, msg.as_str()),
            (libc::EINVAL, "did not match address and id"),
            "{cmd:?}"
        );
    }
    e.spm.execute(&announce(c.stok, 1, f.s1, None)).unwrap();
    wait_announced(&mut e.cev, c.ctok, 1, f.s1, port);
}

/// More announcements than the client's `add_addr_accepted` (2): every ANNOUNCE succeeds and the
/// client reports every one (ANNOUNCED) but joins only two; the server is told nothing (no
/// errno, no event). Two announcements back to back are both joined, though the in-kernel PM
/// may drop the second ADD_ADDR while it still handles the first (`MPTcpExtAddAddrDrop`): the
/// kernel re-sends an ADD_ADDR that was not echoed, about 200 ms later.
#[test]
fn announcing_over_the_clients_limit_is_silent() {
    if !kernel_tests_enabled("announcing_over_the_clients_limit_is_silent") {
        return;
    }
    let t = topo();
    let f = Fam::of(&t, false);
    let dev = t.server_if(1);
    let extra = [f.extra(1), f.extra(2)];
    for a in extra {
        t.server
            .run(&["ip", "addr", "add", &format!("{a}/24"), "dev", &dev])
            .unwrap();
    }
    let mut e = ends(&t);
    let port = 4370;
    let _l = serve(&t.server, SocketAddr::new(f.any, port));
    let c = open_conn(&t, &mut e, SocketAddr::new(f.s0, port), f.c0);
    e.sev.clear();
    for (id, a) in [(1, f.s1), (2, extra[0])] {
        e.spm.execute(&announce(c.stok, id, a, None)).unwrap();
    }
    for (id, a) in [(1, f.s1), (2, extra[0])] {
        wait_announced(&mut e.cev, c.ctok, id, a, port);
        wait_join(&mut e, &c, id, SocketAddr::new(a, port), f.c0);
    }
    let drops = observe::mib(&t.client, "MPTcpExt", "AddAddrDrop").unwrap();
    e.spm.execute(&announce(c.stok, 3, extra[1], None)).unwrap();
    wait_announced(&mut e.cev, c.ctok, 3, extra[1], port);
    assert!(
        e.cev
            .try_wait(QUIET, |ev| sub_established(ev).is_some())
            .is_none(),
        "a join beyond add_addr_accepted 2"
    );
    assert_eq!(e.sev.unclaimed(), vec![]);
    eprintln!(
        "AddAddrDrop on the client: {drops} after the first two, {:?} after the third",
        observe::mib(&t.client, "MPTcpExt", "AddAddrDrop")
    );
}

/// Address families: an IPv6 connection (AF_INET6 sockets on both ends) may be announced an
/// IPv4 address and joins it; a v4 connection accepted by a `[::]` listener is AF_INET6 on the
/// server, and every server event of it carries IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`),
/// which the daemon must map back before comparing with its IPv4 local addresses.
#[test]
fn mixed_families_and_v4_mapped_server_events() {
    if !kernel_tests_enabled("mixed_families_and_v4_mapped_server_events") {
        return;
    }
    let t = topo();
    let v4 = Fam::of(&t, false);
    let v6 = Fam::of(&t, true);
    let mut e = ends(&t);
    let port = 4380;
    let _l = serve(&t.server, SocketAddr::new(v6.any, port));

    let c = open_conn(&t, &mut e, SocketAddr::new(v6.s0, port), v6.c0);
    e.spm.execute(&announce(c.stok, 2, v4.s1, None)).unwrap();
    wait_announced(&mut e.cev, c.ctok, 2, v4.s1, port);
    let cj = info(&e.cev.wait("client SUB_ESTABLISHED", WAIT, |ev| {
        sub_established(ev).is_some_and(|s| s.rem_id == 2)
    }));
    assert_eq!(cj.remote, SocketAddr::new(v4.s1, port));
    assert_eq!(cj.local.ip(), v4.c0);
    let sj = info(&e.sev.wait("server SUB_ESTABLISHED", WAIT, |ev| {
        sub_established(ev).is_some()
    }));
    assert_eq!(sj.local.ip(), mapped(v4.s1), "{sj:?}");
    assert_eq!(sj.remote.ip(), mapped(v4.c0), "{sj:?}");
    assert_eq!(sj.loc_id, 2);

    // IPv4 into the [::] listener.
    let c = open_conn(&t, &mut e, SocketAddr::new(v4.s0, port), v4.c0);
    assert_eq!(c.server.local.ip(), mapped(v4.s0), "{:?}", c.server);
    e.spm.execute(&announce(c.stok, 1, v4.s1, None)).unwrap();
    wait_announced(&mut e.cev, c.ctok, 1, v4.s1, port);
    let (_, sj) = wait_join(&mut e, &c, 1, SocketAddr::new(v4.s1, port), v4.c0);
    assert_eq!(sj.local.ip(), mapped(v4.s1), "{sj:?}");
}

fn mapped(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

/// The server side is fully established at the handshake: ESTABLISHED follows CREATED even if
/// the client never sends data, and an ANNOUNCE issued right then is joined (the ADD_ADDR itself
/// makes the client fully established).
#[test]
fn server_established_without_client_data_and_announce_right_away() {
    if !kernel_tests_enabled("server_established_without_client_data_and_announce_right_away") {
        return;
    }
    let t = topo();
    let f = Fam::of(&t, false);
    let mut e = ends(&t);
    let port = 4390;
    let _l = serve(&t.server, SocketAddr::new(f.any, port));
    let dst = SocketAddr::new(f.s0, port);
    let from = f.c0;
    let _silent = t
        .client
        .exec(move || mptcp::connect(dst, Some(from)))
        .unwrap()
        .unwrap();
    let s = est_of(
        &e.sev
            .wait("server ESTABLISHED", WAIT, |ev| established(ev).is_some()),
    );
    e.spm.execute(&announce(s.token, 1, f.s1, None)).unwrap();
    let cj = info(&e.cev.wait("client SUB_ESTABLISHED", WAIT, |ev| {
        sub_established(ev).is_some()
    }));
    assert_eq!(cj.remote, SocketAddr::new(f.s1, port));
    assert_eq!(cj.rem_id, 1);
}

/// Nobody subscribed to `mptcp_pm_events` in the server's namespace (the daemon stopped) and
/// the server's `ip mptcp limits` at 0: joins to an announced address are still accepted, for
/// connections the kernel already handed to the userspace PM.
#[test]
fn joins_are_accepted_with_no_event_listener_and_zero_limits() {
    if !kernel_tests_enabled("joins_are_accepted_with_no_event_listener_and_zero_limits") {
        return;
    }
    let t = topo();
    let f = Fam::of(&t, false);
    let mut e = ends(&t);
    let group = e.spm.family().events_group;
    // The server's own limits do not apply to the userspace PM either.
    t.server
        .run(&[
            "ip",
            "mptcp",
            "limits",
            "set",
            "subflows",
            "0",
            "add_addr_accepted",
            "0",
        ])
        .unwrap();
    let port = 4395;
    let _l = serve(&t.server, SocketAddr::new(f.any, port));
    let c = open_conn(&t, &mut e, SocketAddr::new(f.s0, port), f.c0);
    drop(e.sev);
    // /proc/net/netlink: no generic netlink socket (protocol 16) left in the events group.
    let members = integration::wait_for(WAIT, || {
        let table = t.server.run(&["cat", "/proc/net/netlink"]).unwrap();
        (events_members(&table, group) == 0).then_some(())
    });
    assert!(members.is_some(), "the events socket is still subscribed");
    e.spm.execute(&announce(c.stok, 1, f.s1, None)).unwrap();
    let cj = info(&e.cev.wait("client SUB_ESTABLISHED", WAIT, |ev| {
        sub_established(ev).is_some()
    }));
    assert_eq!(cj.remote, SocketAddr::new(f.s1, port));
    assert_eq!(ss_with(&t.server, f.s1).len(), 1);
}

/// Sockets of generic netlink (16) subscribed to multicast group `group` (1-based; the Groups
/// column is the bitmask of groups 1..32).
fn events_members(table: &str, group: u32) -> usize {
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let mask = f.get(3).and_then(|g| u32::from_str_radix(g, 16).ok());
            f.get(1) == Some(&"16")
                && mask.is_some_and(|m| group >= 1 && m & (1 << (group - 1)) != 0)
        })
        .count()
}

/// A bulk transfer checked with `sha256sum` completes over the announced address after the link
/// of the server's initial address goes down.
#[test]
fn bulk_transfer_survives_the_initial_link_over_the_announced_address() {
    if !kernel_tests_enabled("bulk_transfer_survives_the_initial_link_over_the_announced_address") {
        return;
    }
    let t = topo();
    let f = Fam::of(&t, false);
    let mut e = ends(&t);
    let port = 4399;
    let l = t
        .server
        .exec(move || mptcp::listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)))
        .unwrap()
        .unwrap();
    let sink = receive_one(l, Duration::from_secs(30));
    let dst = SocketAddr::new(f.s0, port);
    let from = f.c0;
    let mut stream = t
        .client
        .exec(move || mptcp::connect(dst, Some(from)))
        .unwrap()
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let s = est_of(
        &e.sev
            .wait("server ESTABLISHED", WAIT, |ev| established(ev).is_some()),
    );
    e.spm.execute(&announce(s.token, 1, f.s1, None)).unwrap();
    e.sev.wait("server SUB_ESTABLISHED", WAIT, |ev| {
        sub_established(ev).is_some_and(|s| s.loc_id == 1)
    });

    let payload = payload(12 << 20);
    let (first, rest) = payload.split_at(2 << 20);
    stream.write_all(first).unwrap();
    t.set_server_link(0, false).unwrap();
    let started = Instant::now();
    send_and_wait(&mut stream, rest).unwrap();
    let got = sink.join().unwrap();
    eprintln!(
        "12 MiB, the last 10 after s0 went down, in {:?}",
        started.elapsed()
    );
    assert_eq!(got.len(), payload.len());
    // With s0 down, the announced address was the only way in.
    assert_eq!(sha256sum(&got), sha256sum(&payload));
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Measurement (run with `--ignored --nocapture`, as root): the time from the server's
/// ESTABLISHED to the client's SUB_ESTABLISHED on the announced address, with the userspace PM
/// announcing right at ESTABLISHED (from the event reader thread, like a daemon would), against
/// the in-kernel PM with a `signal` endpoint; plus connect() to that SUB_ESTABLISHED. Rounds of
/// `ANNOUNCE_ROUND` (default 50) connections alternate between the two, 4 rounds each.
#[test]
#[ignore = "a measurement, not a test: run with --ignored --nocapture"]
fn announce_join_latency_vs_in_kernel_signal_endpoint() {
    if !kernel_tests_enabled("announce_join_latency_vs_in_kernel_signal_endpoint") {
        return;
    }
    let t = topo();
    let f = Fam::of(&t, false);
    let announcing = Arc::new(AtomicBool::new(false));
    let on = Arc::clone(&announcing);
    let mut spm = t.server.exec(PmClient::open).unwrap().unwrap();
    let s1 = f.s1;
    let mut sev = EventLog::open_reacting(&t.server, "server", move |s| {
        if let PmEvent::Established(c) = &s.event {
            if c.flags.server_side && on.load(Ordering::Relaxed) {
                let _ = spm.execute(&announce(c.token, 1, s1, None));
            }
        }
    });
    let mut cev = EventLog::open(&t.client, "client");
    let port = 4400;
    let _l = serve(&t.server, SocketAddr::new(f.any, port));
    let dst = SocketAddr::new(f.s0, port);
    let from = f.c0;
    let n: usize = std::env::var("ANNOUNCE_ROUND")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let dev = t.server_if(1);
    let s1_text = s1.to_string();
    // (mode, server ESTABLISHED -> client SUB_ESTABLISHED, connect -> client SUB_ESTABLISHED)
    let mut samples: Vec<(&str, Vec<Duration>, Vec<Duration>)> = vec![
        ("userspace ANNOUNCE at ESTABLISHED", vec![], vec![]),
        ("in-kernel PM signal endpoint", vec![], vec![]),
    ];
    let mut failed = [0usize; 2];
    for round in 0..8 {
        let m = round % 2;
        if m == 0 {
            t.server.run(&["ip", "mptcp", "endpoint", "flush"]).unwrap();
            t.server
                .sysctl("net.mptcp.path_manager", "userspace")
                .unwrap();
            announcing.store(true, Ordering::Relaxed);
        } else {
            announcing.store(false, Ordering::Relaxed);
            t.server.sysctl("net.mptcp.path_manager", "kernel").unwrap();
            t.server
                .run(&[
                    "ip", "mptcp", "endpoint", "add", &s1_text, "dev", &dev, "signal",
                ])
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        sev.clear();
        cev.clear();
        for _ in 0..n {
            let t0 = Instant::now();
            let stream = t
                .client
                .exec(move || mptcp::connect(dst, Some(from)))
                .unwrap()
                .unwrap();
            let local = stream.local_addr().unwrap();
            let ctok = cev
                .try_wait(
                    WAIT,
                    |ev| matches!(ev, PmEvent::Created(c) if c.local == local),
                )
                .and_then(|s| match s.event {
                    PmEvent::Created(c) => Some(c.token),
                    _ => None,
                });
            let join = ctok.and_then(|tok| {
                cev.try_wait(WAIT, |ev| {
                    sub_established(ev).is_some_and(|s| s.token == tok && s.remote.ip() == s1)
                })
            });
            let est = sev.try_wait(WAIT, |ev| {
                established(ev).is_some_and(|c| unmap(c.remote) == local)
            });
            match (join, est) {
                (Some(j), Some(s)) => {
                    samples[m].1.push(j.at.saturating_duration_since(s.at));
                    samples[m].2.push(j.at - t0);
                }
                _ => failed[m] += 1,
            }
        }
    }
    println!("announce -> join latency, {n} connections x 4 rounds per mode, sequential:");
    for (m, (name, mut a, mut b)) in samples.into_iter().enumerate() {
        println!(
            "  {name}: {} joined, {} failed; server ESTABLISHED -> client SUB_ESTABLISHED p50 {:?} p90 {:?}; connect -> client SUB_ESTABLISHED p50 {:?} p90 {:?}",
            a.len(),
            failed[m],
            percentile(&mut a, 0.5),
            percentile(&mut a, 0.9),
            percentile(&mut b, 0.5),
            percentile(&mut b, 0.9),
        );
    }
}
