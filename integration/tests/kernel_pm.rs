//! The `mptcp_pm` codec and sockets of `netlink-actor` against the real kernel, in namespaces
//! with the userspace path manager on both ends: every event the scenarios provoke decodes with
//! the right fields, and every command does what it says.
//!
//! Fixture capture: `MPTCP_PM_FIXTURE_DIR=$PWD/netlink-actor/tests/fixtures/mptcp_pm cargo test
//! -p integration --test kernel_pm -- --test-threads=1` writes the first wire message of every
//! (event, family, side), the kernel-accepted command requests and the GET_ADDR / GET_LIMITS
//! replies there, plus `ip mptcp monitor` output of the same run as an independent decoding.

// Test helpers outside #[test] functions may unwrap/panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use integration::{kernel_tests_enabled, mptcp, wait_for, Netns, Pm, TopoOpts, Topology};
use mptcp_pmd_policies::conn::{KernelRefusal, RefusalMeaning};
use mptcp_pmd_policies::{ConnInfo, PmCommand, PmEvent, SubflowInfo, SubflowKey, Token};
use netlink_actor::genl::{PmClient, PmEventSocket, RawEvent, Traced};
use netlink_actor::mptcp_pm::Limits;
use netlink_actor::sock_diag::{DiagSocket, SubflowDiag, TcpState};
use netlink_actor::Error as GenlError;

const WAIT: Duration = Duration::from_secs(5);

fn fixture_dir() -> Option<PathBuf> {
    std::env::var_os("MPTCP_PM_FIXTURE_DIR").map(PathBuf::from)
}

fn fam(a: &IpAddr) -> &'static str {
    if a.is_ipv4() {
        "v4"
    } else {
        "v6"
    }
}

/// The events of one namespace, read without blocking and kept until a test claims them.
struct Monitor {
    side: &'static str,
    /// Save fixtures from this monitor (only the lifecycle scenarios do, so that every
    /// captured file matches that run's `ip mptcp monitor` output).
    capture: bool,
    sock: PmEventSocket,
    pending: Vec<RawEvent>,
    saved: HashSet<String>,
}

impl Monitor {
    fn open(ns: &Netns, side: &'static str, capture: bool) -> Monitor {
        let sock = ns.exec(|| PmEventSocket::open(1 << 20)).unwrap().unwrap();
        sock.set_nonblocking(true).unwrap();
        Monitor {
            side,
            capture,
            sock,
            pending: Vec::new(),
            saved: HashSet::new(),
        }
    }

    fn drain(&mut self) {
        loop {
            match self.sock.recv_batch_raw() {
                Ok(batch) => {
                    for ev in batch {
                        let d = match &ev.decoded {
                            Ok(d) => d,
                            Err(e) => {
                                panic!("{}: undecodable event {e}: {:02x?}", self.side, ev.bytes)
                            }
                        };
                        assert!(
                            d.unknown_attrs.is_empty(),
                            "{}: attributes unknown to the codec {:?} in {:?}",
                            self.side,
                            d.unknown_attrs,
                            d.event
                        );
                        self.save(&ev);
                        self.pending.push(ev);
                    }
                }
                Err(GenlError::WouldBlock) => return,
                Err(e) => panic!("{}: {e}", self.side),
            }
        }
    }

    fn save(&mut self, ev: &RawEvent) {
        let (true, Some(dir), Ok(d)) = (self.capture, fixture_dir(), &ev.decoded) else {
            return;
        };
        let family = match &d.event {
            PmEvent::Created(c) | PmEvent::Established(c) => fam(&c.local.ip()),
            PmEvent::SubEstablished(s) | PmEvent::SubClosed(s) | PmEvent::SubPriority(s) => {
                fam(&s.local.ip())
            }
            PmEvent::Announced { addr, .. } => fam(addr),
            PmEvent::ListenerCreated { addr } | PmEvent::ListenerClosed { addr } => fam(&addr.ip()),
            // CLOSED / REMOVED carry no address: one file per side is enough.
            _ => "any",
        };
        let name = format!("ev_{}_{family}_{}.bin", d.event.name(), self.side);
        if self.saved.insert(name.clone()) {
            std::fs::write(dir.join(name), &ev.bytes).unwrap();
        }
    }

    /// Wait for (and consume) the first event matching `pred`.
    fn wait(&mut self, what: &str, pred: impl Fn(&PmEvent) -> bool) -> PmEvent {
        let end = Instant::now() + WAIT;
        loop {
            self.drain();
            if let Some(i) = self
                .pending
                .iter()
                .position(|e| e.decoded.as_ref().is_ok_and(|d| pred(&d.event)))
            {
                let ev = self.pending.remove(i);
                return ev.decoded.unwrap().event;
            }
            if Instant::now() > end {
                let seen: Vec<_> = self
                    .pending
                    .iter()
                    .filter_map(|e| e.decoded.as_ref().ok().map(|d| &d.event))
                    .collect();
                panic!(
                    "{}: no {what} within {WAIT:?}; unclaimed: {seen:#?}",
                    self.side
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait for (and consume) the first ESTABLISHED event, of any token, and return its
    /// connection.
    fn established(&mut self) -> ConnInfo {
        is_conn(
            &self.wait("ESTABLISHED", |e| is_conn(e, true, None).is_some()),
            true,
            None,
        )
        .unwrap()
    }
}

fn client(ns: &Netns) -> PmClient {
    let mut c = ns.exec(PmClient::open).unwrap().unwrap();
    c.set_trace(fixture_dir().is_some());
    c
}

/// Save the traced requests/replies of `c` as `<prefix>_<n>.bin` in the fixture directory.
fn save_trace(c: &mut PmClient, sent: &str, received: Option<&str>) {
    let trace = c.take_trace();
    let Some(dir) = fixture_dir() else { return };
    for t in trace {
        match t {
            Traced::Sent(b) => std::fs::write(dir.join(format!("{sent}.bin")), b).unwrap(),
            Traced::Received(b) => {
                if let Some(r) = received {
                    // Keep the data message, not the ACK (2) or NLMSG_DONE (3).
                    if !matches!(b.get(4..6), Some([2 | 3, 0])) {
                        std::fs::write(dir.join(format!("{r}.bin")), b).unwrap();
                    }
                }
            }
        }
    }
}

/// One accepted connection, echoed on a plain thread. The listener is returned so the test
/// decides when it closes.
fn serve_one(ns: &Netns, addr: SocketAddr) -> TcpListener {
    let l = ns.exec(move || mptcp::listen(addr)).unwrap().unwrap();
    let l2 = l.try_clone().unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l2.accept() else { return };
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
    });
    l
}

fn connect(ns: &Netns, remote: SocketAddr, local: IpAddr) -> TcpStream {
    let mut s = ns
        .exec(move || mptcp::connect(remote, Some(local)))
        .unwrap()
        .unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    // Data makes the connection fully established (ESTABLISHED), which joins need.
    mptcp::ping(&mut s, b"hello").unwrap();
    s
}

fn topo(client_links: usize, server_links: usize) -> Topology {
    Topology::build(TopoOpts {
        client_links,
        server_links,
        client_pm: Pm::Userspace,
        server_pm: Pm::Userspace,
        ..Default::default()
    })
    .unwrap()
}

fn is_conn(e: &PmEvent, est: bool, token: Option<Token>) -> Option<ConnInfo> {
    match (e, est) {
        (PmEvent::Created(c), false) | (PmEvent::Established(c), true)
            if token.is_none_or(|t| t == c.token) =>
        {
            Some(*c)
        }
        _ => None,
    }
}

fn sub_established(e: &PmEvent) -> Option<SubflowInfo> {
    match e {
        PmEvent::SubEstablished(s) => Some(*s),
        _ => None,
    }
}

fn monitor_cmd(ns: &Netns) -> Option<Child> {
    fixture_dir().and_then(|_| ns.spawn(&["ip", "mptcp", "monitor"]).ok())
}

fn save_monitor(child: Option<Child>, name: &str) {
    let (Some(mut child), Some(dir)) = (child, fixture_dir()) else {
        return;
    };
    std::thread::sleep(Duration::from_millis(200));
    let _ = child.kill();
    if let Ok(out) = child.wait_with_output() {
        std::fs::write(dir.join(name), out.stdout).unwrap();
    }
}

/// The whole lifecycle on one address family: listener, connection, join, backup, announce,
/// remove, destroy, close - checking every field of every event on both ends.
fn lifecycle(v6: bool) {
    let t = topo(2, 2);
    let (caddr0, caddr1, saddr0, saddr1) = if v6 {
        (
            t.client_addr6(0),
            t.client_addr6(1),
            t.server_addr6(0),
            t.server_addr6(1),
        )
    } else {
        (
            t.client_addr(0),
            t.client_addr(1),
            t.server_addr(0),
            t.server_addr(1),
        )
    };
    let tag = if v6 { "v6" } else { "v4" };
    let mon_c = monitor_cmd(&t.client);
    let mon_s = monitor_cmd(&t.server);
    let mut cev = Monitor::open(&t.client, "client", true);
    let mut sev = Monitor::open(&t.server, "server", true);
    let mut cpm = client(&t.client);
    let mut spm = client(&t.server);

    let srv = SocketAddr::new(saddr0, 4242);
    let listener = serve_one(&t.server, srv);
    let ev = sev.wait("LISTENER_CREATED", |e| {
        matches!(e, PmEvent::ListenerCreated { .. })
    });
    assert_eq!(ev, PmEvent::ListenerCreated { addr: srv });

    let mut stream = connect(&t.client, srv, caddr0);
    let local0 = stream.local_addr().unwrap();
    assert_eq!(local0.ip(), caddr0);

    // Client side: CREATED then ESTABLISHED, same token, client's view of the 4-tuple.
    let created = cev.wait("CREATED", |e| is_conn(e, false, None).is_some());
    let c = is_conn(&created, false, None).unwrap();
    assert_eq!((c.local, c.remote), (local0, srv));
    assert_eq!((c.loc_id, c.rem_id), (0, 0));
    assert!(!c.flags.server_side);
    let est = cev.wait("ESTABLISHED", |e| is_conn(e, true, Some(c.token)).is_some());
    assert_eq!(is_conn(&est, true, None).unwrap(), c);
    let ctok = c.token;

    // Server side: mirrored 4-tuple, server_side set.
    let screated = sev.wait("server CREATED", |e| is_conn(e, false, None).is_some());
    let s = is_conn(&screated, false, None).unwrap();
    assert_eq!((s.local, s.remote), (srv, local0));
    assert!(s.flags.server_side, "{s:?}");
    let sest = sev.wait("server ESTABLISHED", |e| {
        is_conn(e, true, Some(s.token)).is_some()
    });
    assert_eq!(is_conn(&sest, true, None).unwrap(), s);
    let stok = s.token;

    // SUBFLOW_CREATE from the second client address -> SUB_ESTABLISHED on both ends.
    let create = PmCommand::CreateSubflow {
        token: ctok,
        local: caddr1,
        local_id: 1,
        if_index: None,
        remote: srv,
        backup: false,
    };
    cpm.execute(&create).unwrap();
    save_trace(&mut cpm, &format!("cmd_subflow_create_{tag}"), None);
    let sub = sub_established(&cev.wait("SUB_ESTABLISHED", |e| {
        sub_established(e).is_some_and(|s| s.local.ip() == caddr1)
    }))
    .unwrap();
    assert_eq!(sub.token, ctok);
    assert_eq!(sub.remote, srv);
    assert_eq!((sub.loc_id, sub.rem_id), (1, 0));
    assert!(!sub.backup);
    assert_ne!(sub.local.port(), 0);
    let ssub = sub_established(&sev.wait("server SUB_ESTABLISHED", |e| {
        sub_established(e).is_some_and(|s| s.remote == sub.local)
    }))
    .unwrap();
    assert_eq!((ssub.token, ssub.local), (stok, srv));
    assert_eq!((ssub.loc_id, ssub.rem_id), (0, 1));

    // SET_FLAGS backup -> SUB_PRIORITY with backup=1.
    let set = PmCommand::SetBackup {
        token: ctok,
        key: sub.key(),
        backup: true,
    };
    cpm.execute(&set).unwrap();
    save_trace(&mut cpm, &format!("cmd_set_flags_{tag}"), None);
    let prio = sev.wait(
        "server SUB_PRIORITY",
        |e| matches!(e, PmEvent::SubPriority(s) if s.remote == sub.local),
    );
    let PmEvent::SubPriority(p) = prio else {
        unreachable!()
    };
    assert!(p.backup, "{p:?}");
    assert_eq!((p.token, p.local), (stok, srv));

    // ANNOUNCE on the server -> ANNOUNCED on the client; REMOVE -> REMOVED.
    let announce = PmCommand::Announce {
        token: stok,
        id: 5,
        addr: saddr1,
        port: None,
    };
    spm.execute(&announce).unwrap();
    save_trace(&mut spm, &format!("cmd_announce_{tag}"), None);
    let ann = cev.wait("ANNOUNCED", |e| matches!(e, PmEvent::Announced { .. }));
    assert_eq!(
        ann,
        PmEvent::Announced {
            token: ctok,
            rem_id: 5,
            addr: saddr1,
            // Verified on 6.18: without a port in the ADD_ADDR the event still carries DPORT,
            // the connection's port.
            port: Some(srv.port())
        }
    );
    let remove = PmCommand::Remove { token: stok, id: 5 };
    spm.execute(&remove).unwrap();
    save_trace(&mut spm, &format!("cmd_remove_{tag}"), None);
    let rem = cev.wait("REMOVED", |e| matches!(e, PmEvent::Removed { .. }));
    assert_eq!(
        rem,
        PmEvent::Removed {
            token: ctok,
            rem_id: 5
        }
    );

    // SUBFLOW_DESTROY -> SUB_CLOSED for exactly that subflow.
    let destroy = PmCommand::DestroySubflow {
        token: ctok,
        key: sub.key(),
    };
    cpm.execute(&destroy).unwrap();
    save_trace(&mut cpm, &format!("cmd_subflow_destroy_{tag}"), None);
    let closed = cev.wait("SUB_CLOSED", |e| matches!(e, PmEvent::SubClosed(_)));
    let PmEvent::SubClosed(cl) = closed else {
        unreachable!()
    };
    assert_eq!((cl.token, cl.key()), (ctok, sub.key()));
    assert_eq!((cl.loc_id, cl.rem_id), (1, 0));
    sev.wait(
        "server SUB_CLOSED",
        |e| matches!(e, PmEvent::SubClosed(s) if s.remote == sub.local),
    );
    // The connection still works over the initial subflow.
    mptcp::ping(&mut stream, b"still there").unwrap();

    // Close everything: CLOSED on both ends, LISTENER_CLOSED on the server.
    drop(stream);
    cev.wait("CLOSED", |e| *e == PmEvent::Closed { token: ctok });
    sev.wait("server CLOSED", |e| *e == PmEvent::Closed { token: stok });
    drop(listener);
    let lc = sev.wait("LISTENER_CLOSED", |e| {
        matches!(e, PmEvent::ListenerClosed { .. })
    });
    assert_eq!(lc, PmEvent::ListenerClosed { addr: srv });

    // SET_FLAGS produces SUB_PRIORITY only on the peer that received MP_PRIO, never locally.
    cev.drain();
    assert!(
        !cev.pending.iter().any(|e| matches!(
            e.decoded.as_ref().map(|d| &d.event),
            Ok(PmEvent::SubPriority(_))
        )),
        "unexpected local SUB_PRIORITY"
    );

    save_monitor(mon_c, &format!("monitor_client_{tag}.txt"));
    save_monitor(mon_s, &format!("monitor_server_{tag}.txt"));
}

#[test]
fn lifecycle_events_ipv4() {
    if !kernel_tests_enabled("lifecycle_events_ipv4") {
        return;
    }
    lifecycle(false);
}

#[test]
fn lifecycle_events_ipv6() {
    if !kernel_tests_enabled("lifecycle_events_ipv6") {
        return;
    }
    lifecycle(true);
}

/// ndiffports' mechanism: the same (local, remote) pair created three times gives three
/// subflows with distinct source ports; GET_ADDR then lists the local address once.
#[test]
fn same_pair_three_times_gives_three_subflows() {
    if !kernel_tests_enabled("same_pair_three_times_gives_three_subflows") {
        return;
    }
    let t = topo(2, 1);
    let mut cev = Monitor::open(&t.client, "client", false);
    let mut sev = Monitor::open(&t.server, "server", false);
    let mut cpm = client(&t.client);
    let srv = SocketAddr::new(t.server_addr(0), 4243);
    let _l = serve_one(&t.server, srv);
    let mut stream = connect(&t.client, srv, t.client_addr(0));
    let c = cev.established();
    let mut ports = HashSet::new();
    for _ in 0..3 {
        cpm.execute(&PmCommand::CreateSubflow {
            token: c.token,
            local: t.client_addr(1),
            local_id: 7,
            if_index: None,
            remote: srv,
            backup: false,
        })
        .unwrap();
        let s = sub_established(&cev.wait("SUB_ESTABLISHED", |e| {
            sub_established(e).is_some_and(|s| s.local.ip() == t.client_addr(1))
        }))
        .unwrap();
        assert_eq!(s.loc_id, 7);
        assert!(ports.insert(s.local.port()), "port reused: {s:?}");
    }
    assert_eq!(ports.len(), 3);
    // The BACKUP flag in SUBFLOW_CREATE's local address makes the join a backup subflow: the
    // peer sees backup=1. Verified on 6.18: the creating side's own SUB_ESTABLISHED still says
    // backup=0 (the event's BACKUP is what the peer asked for, not our request).
    cpm.execute(&PmCommand::CreateSubflow {
        token: c.token,
        local: t.client_addr(1),
        local_id: 7,
        if_index: None,
        remote: srv,
        backup: true,
    })
    .unwrap();
    let b = sub_established(&cev.wait("backup SUB_ESTABLISHED", |e| {
        sub_established(e).is_some_and(|s| !ports.contains(&s.local.port()))
    }))
    .unwrap();
    assert_eq!(b.loc_id, 7);
    assert!(!b.backup, "local view: {b:?}");
    let sb = sub_established(&sev.wait("server backup SUB_ESTABLISHED", |e| {
        sub_established(e).is_some_and(|s| s.remote == b.local)
    }))
    .unwrap();
    assert!(sb.backup, "peer view: {sb:?}");
    mptcp::ping(&mut stream, b"x").unwrap();

    // GET_ADDR for the token: the userspace PM's local address list.
    let addrs = cpm.get_addrs(Some(c.token)).unwrap();
    save_trace(&mut cpm, "cmd_get_addr", Some("reply_get_addr"));
    let joined: Vec<_> = addrs.iter().filter(|a| a.id == 7).collect();
    assert_eq!(joined.len(), 1, "{addrs:?}");
    assert_eq!(joined[0].addr, t.client_addr(1));
    assert!(cev.pending.is_empty() || cev.pending.iter().all(|e| e.decoded.is_ok()));
}

/// The client's subflow `key` as the subflow dump shows it.
fn diag_subflow(diag: &mut DiagSocket, key: SubflowKey) -> Option<SubflowDiag> {
    diag.subflows()
        .unwrap()
        .items
        .into_iter()
        .find(|s| s.key == key)
}

/// SET_FLAGS on a join we created, right after its SUB_ESTABLISHED (verified on 6.18): the
/// kernel reports the join established on the SYN-ACK, but takes it as usable only once the
/// peer's fourth ACK made it fully established, and refuses SET_FLAGS until then with EINVAL
/// "subflow not found". The subflow dump shows which: no FULLY_ESTABLISHED flag before, the
/// flag after, when SET_FLAGS is accepted. The router holds the fourth ACK back (it drops
/// what the server sends to that address without SYN) to make the window as wide as needed;
/// without it the window is one round trip, which a daemon that answers SUB_ESTABLISHED at
/// once falls into. Also: the BACKUP flag of the create is the subflow's own at once (the
/// dump's BKUP_LOC), while SUB_ESTABLISHED's BACKUP field says what the peer sent (nothing).
#[test]
fn set_flags_waits_for_the_join_to_be_fully_established() {
    if !kernel_tests_enabled("set_flags_waits_for_the_join_to_be_fully_established") {
        return;
    }
    let t = topo(2, 1);
    let mut cev = Monitor::open(&t.client, "client", false);
    // The userspace PM on the server accepts joins only while someone listens to its events.
    let _sev = Monitor::open(&t.server, "server", false);
    let mut cpm = client(&t.client);
    let mut diag = t.client.exec(DiagSocket::open).unwrap().unwrap();
    let srv = SocketAddr::new(t.server_addr(0), 4252);
    let _l = serve_one(&t.server, srv);
    let _stream = connect(&t.client, srv, t.client_addr(0));
    let c = cev.established();
    let second = t.client_addr(1);
    t.router
        .run(&["nft", "add", "table", "inet", "hold4"])
        .unwrap();
    t.router
        .run(&[
            "nft",
            "add chain inet hold4 held { type filter hook forward priority 0; policy accept; }",
        ])
        .unwrap();
    t.router
        .run(&[
            "nft",
            &format!("add rule inet hold4 held ip daddr {second} tcp flags & syn == 0 drop"),
        ])
        .unwrap();
    cpm.execute(&PmCommand::CreateSubflow {
        token: c.token,
        local: second,
        local_id: 1,
        if_index: None,
        remote: srv,
        backup: true,
    })
    .unwrap();
    let sub = sub_established(&cev.wait("SUB_ESTABLISHED", |e| {
        sub_established(e).is_some_and(|s| s.local.ip() == second)
    }))
    .unwrap();
    assert!(
        !sub.backup,
        "the event's BACKUP is the peer's flag: {sub:?}"
    );
    let d = diag_subflow(&mut diag, sub.key()).expect("the join in the subflow dump");
    assert!(
        d.flags.backup_local(),
        "the create's flag is the subflow's: {d:?}"
    );
    assert!(!d.sample.fully_established, "{d:?}");
    let set = PmCommand::SetBackup {
        token: c.token,
        key: sub.key(),
        backup: false,
    };
    let refusal = match cpm.execute(&set) {
        Err(GenlError::Kernel { errno, message, .. }) => KernelRefusal { errno, message },
        other => panic!("SET_FLAGS before the fourth ACK: {other:?}"),
    };
    assert_eq!(
        (refusal.errno, refusal.message.as_deref()),
        (22, Some("subflow not found"))
    );
    assert_eq!(refusal.meaning(&set), RefusalMeaning::SubflowNotReady);
    // Still not fully established while the fourth ACK is held back.
    std::thread::sleep(Duration::from_millis(300));
    let d = diag_subflow(&mut diag, sub.key()).unwrap();
    assert!(
        !d.sample.fully_established && TcpState::from(d.state) == TcpState::Established,
        "{d:?}"
    );
    t.router
        .run(&["nft", "flush chain inet hold4 held"])
        .unwrap();
    // Our kernel retransmits its third ACK; the answer makes the join fully established.
    let d = wait_for(WAIT, || {
        diag_subflow(&mut diag, sub.key()).filter(|d| d.sample.fully_established)
    })
    .expect("fully established once the fourth ACK passes");
    assert!(d.flags.backup_local());
    cpm.execute(&set).unwrap();
    let d = diag_subflow(&mut diag, sub.key()).unwrap();
    assert!(!d.flags.backup_local(), "{d:?}");
}

/// SUBFLOW_CREATE from the address the connection already uses (ndiffports on a single-homed
/// host), and the kernel's refusals, each with its errno and text (verified on 6.18):
/// the first id used for an address sticks to it for the connection (id 0 works for the
/// initial address); another id for the same address is EINVAL "did not match address and id".
#[test]
fn subflow_create_id_rules_and_refusals() {
    if !kernel_tests_enabled("subflow_create_id_rules_and_refusals") {
        return;
    }
    let t = topo(1, 1);
    let mut cev = Monitor::open(&t.client, "client", false);
    let mut cpm = client(&t.client);
    let srv = SocketAddr::new(t.server_addr(0), 4244);
    let _l = serve_one(&t.server, srv);
    let _stream = connect(&t.client, srv, t.client_addr(0));
    let c = cev.established();
    let create = |id| PmCommand::CreateSubflow {
        token: c.token,
        local: t.client_addr(0),
        local_id: id,
        if_index: None,
        remote: srv,
        backup: false,
    };
    cpm.execute(&create(0)).unwrap();
    let s =
        sub_established(&cev.wait("SUB_ESTABLISHED", |e| sub_established(e).is_some())).unwrap();
    assert_eq!(s.local.ip(), t.client_addr(0));
    assert_ne!(s.local.port(), c.local.port());
    assert_eq!(s.loc_id, 0);

    let kernel_err = |r: Result<(), GenlError>| match r {
        Err(GenlError::Kernel { errno, message, .. }) => (errno, message.unwrap_or_default()),
        other => panic!("expected a kernel refusal, got {other:?}"),
    };
    let (errno, msg) = kernel_err(cpm.execute(&create(9)));
    assert_eq!(errno, libc::EINVAL);
    assert!(msg.contains("did not match address and id"), "{msg}");

    // GET_ADDR now lists the initial address under id 0.
    let addrs = cpm.get_addrs(Some(c.token)).unwrap();
    assert!(
        addrs
            .iter()
            .any(|a| a.id == 0 && a.addr == t.client_addr(0)),
        "{addrs:?}"
    );

    // SUBFLOW_DESTROY needs both ports.
    let (errno, msg) = kernel_err(cpm.execute(&PmCommand::DestroySubflow {
        token: c.token,
        key: SubflowKey {
            local: SocketAddr::new(t.client_addr(0), 0),
            remote: srv,
        },
    }));
    assert_eq!(errno, libc::EINVAL);
    assert!(msg.contains("missing local port"), "{msg}");

    // REMOVE of an id never announced.
    let (errno, msg) = kernel_err(cpm.execute(&PmCommand::Remove {
        token: c.token,
        id: 77,
    }));
    assert_eq!(errno, libc::EINVAL);
    assert!(msg.contains("not found"), "{msg}");

    // A local address the host does not have: the connect fails inside the kernel.
    let (errno, _) = kernel_err(cpm.execute(&PmCommand::CreateSubflow {
        token: c.token,
        local: "198.18.0.99".parse().unwrap(),
        local_id: 4,
        if_index: None,
        remote: srv,
        backup: false,
    }));
    assert_eq!(errno, libc::EADDRNOTAVAIL);
}

/// Commands for a token that does not exist fail with the kernel's errno and its text.
#[test]
fn unknown_token_is_a_kernel_error_with_message() {
    if !kernel_tests_enabled("unknown_token_is_a_kernel_error_with_message") {
        return;
    }
    let t = topo(1, 1);
    let mut cpm = client(&t.client);
    let err = cpm
        .execute(&PmCommand::Remove {
            token: Token(0x0bad_cafe),
            id: 1,
        })
        .unwrap_err();
    eprintln!("kernel said: {err}");
    match &err {
        GenlError::Kernel {
            errno,
            message,
            what: command,
        } => {
            assert_eq!(*command, "remove");
            assert_eq!(*errno, libc::EINVAL, "{err}");
            let m = message.as_deref().unwrap_or("");
            assert!(m.contains("token"), "kernel message: {m:?}");
        }
        other => panic!("expected a kernel error, got {other}"),
    }
    // The GET_ADDR dump for an unknown token fails too (in NLMSG_DONE, with extack text).
    let err = cpm.get_addrs(Some(Token(0x0bad_cafe))).unwrap_err();
    eprintln!("kernel said: {err}");
    match &err {
        GenlError::Kernel { errno, message, .. } => {
            assert_eq!(*errno, libc::EINVAL);
            assert_eq!(message.as_deref(), Some("invalid token"));
        }
        other => panic!("expected a kernel error, got {other}"),
    }
    // The client stays usable after an error (no stale reply confuses the next command).
    let limits = cpm.get_limits().unwrap();
    assert_eq!(limits.subflows, 8);
}

/// GET_LIMITS / SET_LIMITS round trip.
#[test]
fn limits_roundtrip() {
    if !kernel_tests_enabled("limits_roundtrip") {
        return;
    }
    let t = topo(1, 1);
    let mut cpm = client(&t.client);
    let before = cpm.get_limits().unwrap();
    save_trace(&mut cpm, "cmd_get_limits", Some("reply_get_limits"));
    assert_eq!(
        before,
        Limits {
            subflows: 8,
            add_addr_accepted: 8
        }
    );
    let want = Limits {
        subflows: 3,
        add_addr_accepted: 2,
    };
    cpm.set_limits(&want).unwrap();
    save_trace(&mut cpm, "cmd_set_limits", None);
    assert_eq!(cpm.get_limits().unwrap(), want);
    let out = t.client.run(&["ip", "mptcp", "limits", "show"]).unwrap();
    assert!(out.contains("subflows 3"), "{out}");
    assert!(out.contains("add_addr_accepted 2"), "{out}");
    // Out of range: the kernel refuses and says why.
    let err = cpm
        .set_limits(&Limits {
            subflows: 1000,
            add_addr_accepted: 1,
        })
        .unwrap_err();
    assert!(matches!(err, GenlError::Kernel { .. }), "{err}");
    eprintln!("kernel said: {err}");
}

/// A flood of events into a tiny receive buffer: the socket reports the loss as
/// `GenlError::Overrun` (ENOBUFS), distinct from an empty queue, and keeps working afterwards.
#[test]
fn overrun_is_reported_and_recoverable() {
    if !kernel_tests_enabled("overrun_is_reported_and_recoverable") {
        return;
    }
    let t = topo(1, 1);
    // The kernel rounds a tiny SO_RCVBUF up to its minimum (a few KiB): a handful of events.
    let mut sock = t.server.exec(|| PmEventSocket::open(1)).unwrap().unwrap();
    sock.set_nonblocking(true).unwrap();
    assert!(matches!(sock.recv_batch(), Err(GenlError::WouldBlock)));
    // Each listen() emits LISTENER_CREATED, each close LISTENER_CLOSED.
    let base = t.server_addr(0);
    t.server
        .exec(move || {
            for port in 0..200u16 {
                drop(mptcp::listen(SocketAddr::new(base, 20000 + port)).unwrap());
            }
        })
        .unwrap();
    let mut got = 0usize;
    let mut overrun = false;
    loop {
        match sock.recv_batch() {
            Ok(b) => got += b.len(),
            Err(GenlError::Overrun) => overrun = true,
            Err(GenlError::WouldBlock) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(overrun, "no overrun after 400 events, read {got}");
    assert!(got < 400, "read {got} events despite the overrun");
    // After the overrun the socket still delivers new events.
    let _l = t
        .server
        .exec(move || mptcp::listen(SocketAddr::new(base, 30000)))
        .unwrap()
        .unwrap();
    // (Late events of the flood may still trickle in first: look for ours.)
    let want = PmEvent::ListenerCreated {
        addr: SocketAddr::new(base, 30000),
    };
    let found = integration::wait_for(WAIT, || match sock.recv_batch() {
        Ok(b) => b
            .into_iter()
            .any(|e| e.as_ref().is_ok_and(|d| d.event == want))
            .then_some(()),
        _ => None,
    });
    assert!(found.is_some(), "no event after the overrun");

    // A batch that ends at EAGAIN says the socket is drained; the next call finds it empty.
    let l2 = t
        .server
        .exec(move || mptcp::listen(SocketAddr::new(base, 30001)))
        .unwrap()
        .unwrap();
    drop(l2);
    let two = integration::wait_for(WAIT, || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        match sock.recv_batch() {
            Ok(b) if !b.is_empty() => Some(b.len()),
            _ => None,
        }
    });
    assert!(two.is_some(), "no LISTENER events for port 30001");
    assert!(sock.drained(), "the batch read everything queued");
    assert!(matches!(sock.recv_batch(), Err(GenlError::WouldBlock)));
}

/// What each command gets for a connection that is closing or gone (verified on 6.18), and what
/// the daemon reads from it (`KernelRefusal::meaning`, issue 15 item 5): a token the kernel no
/// longer has is EINVAL "invalid token" for every command (`ConnectionGone`); a connection that
/// is not fully established — not yet, or no longer (closed by either side but still in the
/// kernel's table) — refuses SUBFLOW_CREATE with ENOTCONN (`NotJoinable`) and still accepts the
/// other commands.
#[test]
fn commands_on_closing_and_gone_connections() {
    if !kernel_tests_enabled("commands_on_closing_and_gone_connections") {
        return;
    }
    let t = topo(2, 1);
    let mut cev = Monitor::open(&t.client, "client", false);
    let mut cpm = client(&t.client);
    let srv = SocketAddr::new(t.server_addr(0), 4251);
    let l = t.server.exec(move || mptcp::listen(srv)).unwrap().unwrap();
    // Each accepted connection echoes one 5-byte ping on its own thread, then is handed to
    // the test, which decides when (and how) the server side closes.
    let (tx, rx) = std::sync::mpsc::channel::<TcpStream>();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { break };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut b = [0u8; 5];
                if s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {
                    let _ = tx.send(s);
                }
            });
        }
    });
    let other = t.client_addr(1);
    // Every command on `token`, and what the kernel answered: (name, errno or 0, message).
    let probe = |cpm: &mut PmClient, token: Token, key: SubflowKey| {
        let cmds = [
            PmCommand::CreateSubflow {
                token,
                local: other,
                local_id: 5,
                if_index: None,
                remote: srv,
                backup: false,
            },
            PmCommand::SetBackup {
                token,
                key,
                backup: true,
            },
            PmCommand::Announce {
                token,
                id: 6,
                addr: other,
                port: None,
            },
            PmCommand::Remove { token, id: 6 },
        ];
        cmds.iter()
            .map(|c| {
                let r = match cpm.execute(c) {
                    Ok(()) => KernelRefusal {
                        errno: 0,
                        message: None,
                    },
                    Err(GenlError::Kernel { errno, message, .. }) => {
                        KernelRefusal { errno, message }
                    }
                    Err(e) => panic!("{}: not a kernel answer: {e}", c.name()),
                };
                (c.clone(), r)
            })
            .collect::<Vec<_>>()
    };
    let all_gone = |answers: &[(PmCommand, KernelRefusal)], what: &str| {
        for (c, r) in answers {
            assert_eq!(
                (r.errno, r.message.as_deref()),
                (libc::EINVAL, Some("invalid token")),
                "{what}: {}",
                c.name()
            );
            assert_eq!(r.meaning(c), RefusalMeaning::ConnectionGone, "{what}");
        }
    };
    let not_joinable = |answers: &[(PmCommand, KernelRefusal)], what: &str| {
        let (create, r) = &answers[0];
        assert_eq!(
            (r.errno, r.message.as_deref()),
            (libc::ENOTCONN, Some("connect error: -107")),
            "{what}"
        );
        assert_eq!(r.meaning(create), RefusalMeaning::NotJoinable, "{what}");
        for (c, r) in &answers[1..] {
            assert_eq!(r.errno, 0, "{what}: {} is still accepted: {r:?}", c.name());
        }
    };
    let initial = |c: &ConnInfo| SubflowKey {
        local: c.local,
        remote: c.remote,
    };

    // 1. Not fully established yet: connected, nothing sent.
    let quiet = t
        .client
        .exec(move || mptcp::connect(srv, None))
        .unwrap()
        .unwrap();
    let c = is_conn(
        &cev.wait("CREATED", |e| is_conn(e, false, None).is_some()),
        false,
        None,
    )
    .unwrap();
    not_joinable(
        &probe(&mut cpm, c.token, initial(&c)),
        "not fully established yet",
    );
    drop(quiet);

    // 2. The peer closed (CLOSE_WAIT here, the application still holds the socket), then 3.
    // we close too: CLOSED is emitted, and the token is gone.
    let s = connect(&t.client, srv, t.client_addr(0));
    let c = cev.established();
    drop(rx.recv_timeout(WAIT).unwrap());
    wait_state(&t.client, c.local, "CLOSE-WAIT");
    not_joinable(&probe(&mut cpm, c.token, initial(&c)), "closed by the peer");
    drop(s);
    cev.wait("CLOSED", |e| *e == PmEvent::Closed { token: c.token });
    // Until the peer's last ACK the kernel may keep the token a moment.
    wait_token_gone(&mut cpm, c.token, "closed by both sides");
    all_gone(
        &probe(&mut cpm, c.token, initial(&c)),
        "closed by both sides",
    );

    // 4. We close first: CLOSED is emitted at once, while the kernel still has the token (the
    // connection waits for the peer's DATA_FIN).
    let s = connect(&t.client, srv, t.client_addr(0));
    let c = cev.established();
    let server_side = rx.recv_timeout(WAIT).unwrap();
    drop(s);
    cev.wait("CLOSED", |e| *e == PmEvent::Closed { token: c.token });
    not_joinable(&probe(&mut cpm, c.token, initial(&c)), "closed by us first");
    drop(server_side);

    // 5. Reset by the peer while the application still holds the socket: no CLOSED, and the
    // token is gone.
    let s = connect(&t.client, srv, t.client_addr(0));
    let c = cev.established();
    let server_side = rx.recv_timeout(WAIT).unwrap();
    socket2::SockRef::from(&server_side)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(server_side);
    wait_token_gone(&mut cpm, c.token, "reset by the peer");
    all_gone(&probe(&mut cpm, c.token, initial(&c)), "reset by the peer");
    drop(s);
}

/// Wait (at most [`WAIT`]) until the kernel no longer knows `token`, asked without side effects
/// (a GET_ADDR dump for it).
fn wait_token_gone(cpm: &mut PmClient, token: Token, what: &str) {
    let end = Instant::now() + WAIT;
    while cpm.get_addrs(Some(token)).is_ok() {
        assert!(
            Instant::now() < end,
            "{what}: the kernel still knows {token}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until `ss -M` shows the MPTCP socket at `local` in `state`.
fn wait_state(ns: &Netns, local: SocketAddr, state: &str) {
    let end = Instant::now() + WAIT;
    loop {
        let out = ns.run(&["ss", "-MaH"]).unwrap_or_default();
        if out
            .lines()
            .any(|l| l.starts_with(state) && l.contains(&local.to_string()))
        {
            return;
        }
        assert!(Instant::now() < end, "{local} never in {state}:\n{out}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
