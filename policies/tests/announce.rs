//! The announce policy against a server-side connection driven by simulated kernel events:
//! what it announces (filters, family, listeners, limit), the pacing, withdrawal order and
//! the ids the state machine gives the announcements.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::*;
use mptcp_pmd_policies::addrmatch::{Cidr, InterfaceGlob};
use mptcp_pmd_policies::announce::{Announce, AnnounceParams};
use mptcp_pmd_policies::{
    Action, AnnounceState, ConnTimers, Connection, Ctx, Decision, KernelRefusal, LocalAddr,
    PmCommand, PmEvent, Policy, Token,
};

/// The server's address the connection arrived on, and the client's.
const S_LOCAL: &str = "10.0.1.1:443";
const S_REMOTE: &str = "10.0.9.1:50000";

fn eth(n: u32) -> LocalAddr {
    local(&format!("10.0.{n}.1"), n, false)
}

fn server_info(local: &str) -> mptcp_pmd_policies::ConnInfo {
    info(local, S_REMOTE, true)
}

/// A server-side connection: CREATED and ESTABLISHED arrive together on this side.
fn accepted(now: Instant, local: &str) -> Connection {
    let mut c = Connection::new(T, ConnTimers::default());
    c.handle_event(now, &PmEvent::Created(server_info(local)));
    c.handle_event(now, &PmEvent::Established(server_info(local)));
    c
}

fn est(local: &str) -> PmEvent {
    PmEvent::Established(server_info(local))
}

fn policy(params: AnnounceParams) -> Announce {
    Announce::new(params)
}

fn with_listeners<'a>(
    now: Instant,
    c: &'a Connection,
    locals: &'a [LocalAddr],
    listeners: &'a [SocketAddr],
) -> Ctx<'a> {
    Ctx {
        listeners,
        ..ctx(now, c, locals)
    }
}

fn announced(ds: &[Decision]) -> Vec<std::net::IpAddr> {
    ds.iter()
        .filter_map(|d| match &d.action {
            Action::Announce { addr, port: None } => Some(*addr),
            _ => None,
        })
        .collect()
}

/// Apply decisions and let a healthy kernel acknowledge the commands; returns them.
fn run(c: &mut Connection, now: Instant, ds: Vec<Decision>) -> Vec<PmCommand> {
    let mut port = 40000;
    c.handle_decisions(now, ds);
    kernel_runs(c, now, &mut port)
}

/// The peer joins local address `addr` (the kernel reports the announced id as the local id).
fn join(c: &mut Connection, now: Instant, addr: &str, peer_port: u16) -> PmEvent {
    let id = c.announcement(ip(addr)).unwrap().id;
    let s = sub(
        &format!("{addr}:443"),
        &format!("10.0.9.1:{peer_port}"),
        id,
        0,
        false,
    );
    let ev = PmEvent::SubEstablished(s);
    c.handle_event(now, &ev);
    ev
}

fn state(c: &Connection, addr: &str) -> AnnounceState {
    c.announcement(ip(addr)).unwrap().state.clone()
}

#[test]
fn client_side_and_unestablished_connections_get_nothing() {
    let t0 = Instant::now();
    let mut p = policy(AnnounceParams::default());
    let locals = [eth(1), eth(2)];
    let client = established(t0, ConnTimers::default());
    assert!(p.on_tick(&ctx(t0, &client, &locals)).is_empty());
    assert!(p
        .on_event(
            &ctx(t0, &client, &locals),
            &PmEvent::Established(info(INIT_LOCAL, INIT_REMOTE, false))
        )
        .is_empty());
    let mut created = Connection::new(T, ConnTimers::default());
    created.handle_event(t0, &PmEvent::Created(server_info(S_LOCAL)));
    assert!(p.on_tick(&ctx(t0, &created, &locals)).is_empty());
    // Once established, the same object announces.
    let c = accepted(t0, S_LOCAL);
    assert_eq!(
        announced(&p.on_event(&ctx(t0, &c, &locals), &est(S_LOCAL))),
        vec![ip("10.0.2.1")]
    );
}

#[test]
fn announces_one_address_at_a_time_the_next_after_the_join() {
    let t0 = Instant::now();
    let mut p = policy(AnnounceParams::default());
    let locals = [eth(1), eth(2), eth(3)];
    let mut c = accepted(t0, S_LOCAL);
    let ds = p.on_event(&ctx(t0, &c, &locals), &est(S_LOCAL));
    assert_eq!(announced(&ds), vec![ip("10.0.2.1")]);
    assert_eq!(ds[0].reason.code, "new-address");
    let cmds = run(&mut c, t0, ds);
    assert_eq!(
        cmds,
        vec![PmCommand::Announce {
            token: T,
            id: 255,
            addr: ip("10.0.2.1"),
            port: None
        }]
    );
    // Waiting for the join: nothing more, whatever the hook.
    assert!(p.on_tick(&ctx(t0, &c, &locals)).is_empty());
    assert!(p.on_locals_changed(&ctx(t0, &c, &locals)).is_empty());
    let t1 = t0 + ms(1);
    let ev = join(&mut c, t1, "10.0.2.1", 50001);
    assert!(matches!(
        state(&c, "10.0.2.1"),
        AnnounceState::Joined { .. }
    ));
    let ds = p.on_event(&ctx(t1, &c, &locals), &ev);
    assert_eq!(announced(&ds), vec![ip("10.0.3.1")]);
    let cmds = run(&mut c, t1, ds);
    assert_eq!(
        cmds,
        vec![PmCommand::Announce {
            token: T,
            id: 254,
            addr: ip("10.0.3.1"),
            port: None
        }]
    );
    let ev = join(&mut c, t1, "10.0.3.1", 50002);
    // Everything announced and joined: nothing left to do.
    assert!(p.on_event(&ctx(t1, &c, &locals), &ev).is_empty());
    assert_eq!(
        c.announced_locals().collect::<Vec<_>>(),
        vec![(ip("10.0.2.1"), 255), (ip("10.0.3.1"), 254)]
    );
}

#[test]
fn an_announcement_nobody_joins_lets_the_next_one_go_after_the_pace() {
    let t0 = Instant::now();
    let mut p = policy(AnnounceParams::default());
    let locals = [eth(1), eth(2), eth(3)];
    let mut c = accepted(t0, S_LOCAL);
    let ds = p.on_event(&ctx(t0, &c, &locals), &est(S_LOCAL));
    run(&mut c, t0, ds);
    let pace = c.timers().announce_pace;
    // The connection asks to be woken when the pace ends.
    assert_eq!(c.poll_timeout(), Some(t0 + pace));
    let early = t0 + pace / 2;
    c.handle_timeout(early);
    assert!(p.on_tick(&ctx(early, &c, &locals)).is_empty());
    let t1 = t0 + pace;
    c.handle_timeout(t1);
    assert!(matches!(
        state(&c, "10.0.2.1"),
        AnnounceState::Unjoined { .. }
    ));
    assert_eq!(c.poll_timeout(), None, "no wake-up for an unjoined one");
    let ds = p.on_tick(&ctx(t1, &c, &locals));
    assert_eq!(announced(&ds), vec![ip("10.0.3.1")]);
    run(&mut c, t1, ds);
    // A late join still counts.
    join(&mut c, t1 + ms(5), "10.0.2.1", 50001);
    assert!(matches!(
        state(&c, "10.0.2.1"),
        AnnounceState::Joined { .. }
    ));
}

#[test]
fn filters_family_and_backup_order_choose_the_candidates() {
    let t0 = Instant::now();
    let c = accepted(t0, S_LOCAL);
    let v6 = local("2001:db8::1", 4, false);
    let mut wwan = local("10.0.5.1", 5, true);
    wwan.if_name = "wwan0".into();
    let locals = [eth(1), v6.clone(), wwan.clone(), eth(3), eth(2)];
    let first = |params: AnnounceParams| {
        let mut p = policy(params);
        announced(&p.on_event(&ctx(t0, &c, &locals), &est(S_LOCAL)))
    };
    // Same family only, non-backup interfaces first, then by address.
    assert_eq!(first(AnnounceParams::default()), vec![ip("10.0.2.1")]);
    let only = |globs: &[&str]| globs.iter().map(|g| InterfaceGlob(g.to_string())).collect();
    assert_eq!(
        first(AnnounceParams {
            interfaces: only(&["wwan*", "eth3"]),
            ..AnnounceParams::default()
        }),
        vec![ip("10.0.3.1")]
    );
    assert_eq!(
        first(AnnounceParams {
            exclude_interfaces: only(&["eth*"]),
            ..AnnounceParams::default()
        }),
        vec![ip("10.0.5.1")]
    );
    let cidr: Cidr = "10.0.4.0/22".parse().unwrap();
    assert_eq!(
        first(AnnounceParams {
            cidrs: vec![cidr],
            ..AnnounceParams::default()
        }),
        vec![ip("10.0.5.1")]
    );
    assert!(first(AnnounceParams {
        ipv4: false,
        ..AnnounceParams::default()
    })
    .is_empty());
    // An IPv6 connection gets the IPv6 address, and nothing with ipv6 off.
    let c6 = accepted(t0, "[2001:db8::9]:443");
    let mut p = policy(AnnounceParams::default());
    let ds = p.on_event(&ctx(t0, &c6, &locals), &est("[2001:db8::9]:443"));
    assert_eq!(announced(&ds), vec![v6.addr]);
    let mut p = policy(AnnounceParams {
        ipv6: false,
        ..AnnounceParams::default()
    });
    assert!(p.on_tick(&ctx(t0, &c6, &locals)).is_empty());
}

#[test]
fn a_dual_stack_connection_is_ipv4_and_skips_its_own_address() {
    let t0 = Instant::now();
    let mapped = "[::ffff:10.0.1.1]:443";
    let mut c = Connection::new(T, ConnTimers::default());
    c.handle_event(t0, &PmEvent::Established(server_info(mapped)));
    let mut p = policy(AnnounceParams::default());
    let locals = [eth(1), eth(2)];
    let ds = p.on_event(&ctx(t0, &c, &locals), &est(mapped));
    assert_eq!(announced(&ds), vec![ip("10.0.2.1")]);
    run(&mut c, t0, ds);
    // The join is reported v4-mapped; it is still the announced address.
    let s = sub(
        "[::ffff:10.0.2.1]:443",
        "[::ffff:10.0.9.1]:50001",
        255,
        0,
        false,
    );
    c.handle_event(t0, &PmEvent::SubEstablished(s));
    assert!(matches!(
        state(&c, "10.0.2.1"),
        AnnounceState::Joined { .. }
    ));
    // Gone: REMOVE, then the close of the subflow under the key the kernel reported.
    let ds = p.on_locals_changed(&ctx(t0, &c, &[eth(1)]));
    assert_eq!(
        actions(&ds),
        vec![
            Action::Remove {
                addr: ip("10.0.2.1")
            },
            Action::Close { key: s.key() }
        ]
    );
}

#[test]
fn listeners_bound_to_one_address_stop_the_announcements() {
    let t0 = Instant::now();
    let c = accepted(t0, S_LOCAL);
    let locals = [eth(1), eth(2), eth(3)];
    let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let first = |listeners: &[SocketAddr]| {
        let mut p = policy(AnnounceParams::default());
        announced(&p.on_tick(&with_listeners(t0, &c, &locals, listeners)))
    };
    assert!(first(&[sa("10.0.1.1:443")]).is_empty());
    // Listeners of other ports do not matter; a wildcard or [::] of the port does.
    assert!(first(&[sa("10.0.1.1:443"), sa("0.0.0.0:80")]).is_empty());
    assert_eq!(
        first(&[sa("10.0.1.1:443"), sa("0.0.0.0:443")]),
        vec![ip("10.0.2.1")]
    );
    assert_eq!(first(&[sa("[::]:443")]), vec![ip("10.0.2.1")]);
    // An IPv6-only wildcard... is still [::]; an IPv4 wildcard does not take IPv6 joins.
    // A listener bound to another address of the port makes that one reachable.
    assert_eq!(
        first(&[sa("10.0.1.1:443"), sa("10.0.3.1:443")]),
        vec![ip("10.0.3.1")]
    );
    // No listener known (closed, or not seen yet): announce.
    assert_eq!(first(&[]), vec![ip("10.0.2.1")]);
}

#[test]
fn a_vanished_address_is_removed_first_then_its_subflows_closed_and_comes_back_with_its_id() {
    let t0 = Instant::now();
    let mut p = policy(AnnounceParams::default());
    let all = [eth(1), eth(2)];
    let mut c = accepted(t0, S_LOCAL);
    let ds = p.on_event(&ctx(t0, &c, &all), &est(S_LOCAL));
    run(&mut c, t0, ds);
    let j1 = join(&mut c, t0, "10.0.2.1", 50001);
    let j2 = join(&mut c, t0, "10.0.2.1", 50002);
    let keys: Vec<_> = [&j1, &j2]
        .iter()
        .map(|e| match e {
            PmEvent::SubEstablished(s) => s.key(),
            _ => unreachable!(),
        })
        .collect();
    let ds = p.on_locals_changed(&ctx(t0, &c, &[eth(1)]));
    assert_eq!(
        actions(&ds),
        vec![
            Action::Remove {
                addr: ip("10.0.2.1")
            },
            Action::Close { key: keys[0] },
            Action::Close { key: keys[1] },
        ]
    );
    assert_eq!(ds[0].reason.code, "address-gone");
    assert_eq!(ds[1].reason.code, "withdrawn");
    // The state machine sends them in that order.
    let cmds = run(&mut c, t0, ds);
    assert_eq!(cmds[0], PmCommand::Remove { token: T, id: 255 });
    assert!(matches!(cmds[1], PmCommand::DestroySubflow { .. }));
    assert_eq!(cmds.len(), 3);
    assert!(matches!(
        state(&c, "10.0.2.1"),
        AnnounceState::Withdrawn { .. }
    ));
    // Nothing more while it is gone.
    assert!(p.on_tick(&ctx(t0, &c, &[eth(1)])).is_empty());
    // It returns: announced again under the same id.
    let ds = p.on_locals_changed(&ctx(t0, &c, &all));
    assert_eq!(announced(&ds), vec![ip("10.0.2.1")]);
    assert_eq!(
        run(&mut c, t0, ds),
        vec![PmCommand::Announce {
            token: T,
            id: 255,
            addr: ip("10.0.2.1"),
            port: None
        }]
    );
}

#[test]
fn a_reload_that_filters_an_address_or_lowers_the_limit_withdraws() {
    let t0 = Instant::now();
    let locals = [eth(1), eth(2), eth(3)];
    let mut c = accepted(t0, S_LOCAL);
    let mut p = policy(AnnounceParams::default());
    let ds = p.on_event(&ctx(t0, &c, &locals), &est(S_LOCAL));
    run(&mut c, t0, ds);
    let ev = join(&mut c, t0, "10.0.2.1", 50001);
    let ds = p.on_event(&ctx(t0, &c, &locals), &ev);
    run(&mut c, t0, ds);
    join(&mut c, t0, "10.0.3.1", 50002);
    // A new object after a reload, excluding eth3.
    let mut p = policy(AnnounceParams {
        exclude_interfaces: vec![InterfaceGlob("eth3".into())],
        ..AnnounceParams::default()
    });
    let ds = p.on_locals_changed(&ctx(t0, &c, &locals));
    assert_eq!(
        actions(&ds)[0],
        Action::Remove {
            addr: ip("10.0.3.1")
        }
    );
    assert_eq!(ds[0].reason.code, "not-announced");
    assert_eq!(closes(&ds).len(), 1);
    // Limit 1: the second of two active ones goes.
    let mut c2 = accepted(t0, S_LOCAL);
    let mut p = policy(AnnounceParams::default());
    let ds = p.on_event(&ctx(t0, &c2, &locals), &est(S_LOCAL));
    run(&mut c2, t0, ds);
    let ev = join(&mut c2, t0, "10.0.2.1", 50001);
    let ds = p.on_event(&ctx(t0, &c2, &locals), &ev);
    run(&mut c2, t0, ds);
    let mut p = policy(AnnounceParams {
        max_per_connection: 1,
        ..AnnounceParams::default()
    });
    let ds = p.on_tick(&ctx(t0, &c2, &locals));
    assert_eq!(
        actions(&ds),
        vec![Action::Remove {
            addr: ip("10.0.3.1")
        }]
    );
}

#[test]
fn the_limit_counts_active_announcements() {
    let t0 = Instant::now();
    let locals = [eth(1), eth(2), eth(3), eth(4)];
    let mut c = accepted(t0, S_LOCAL);
    let mut p = policy(AnnounceParams {
        max_per_connection: 2,
        ..AnnounceParams::default()
    });
    let mut ev = est(S_LOCAL);
    let mut joined = Vec::new();
    for peer_port in 50001..50010 {
        let ds = p.on_event(&ctx(t0, &c, &locals), &ev);
        let got = announced(&ds);
        run(&mut c, t0, ds);
        let Some(addr) = got.first() else { break };
        joined.push(*addr);
        ev = join(&mut c, t0, &addr.to_string(), peer_port);
    }
    assert_eq!(joined, vec![ip("10.0.2.1"), ip("10.0.3.1")]);
}

#[test]
fn a_refused_announcement_is_given_up_after_a_few_attempts() {
    let t0 = Instant::now();
    let locals = [eth(1), eth(2), eth(3)];
    let mut c = accepted(t0, S_LOCAL);
    let mut p = policy(AnnounceParams::default());
    let refusal = KernelRefusal {
        errno: 22,
        message: Some("did not match address and id".into()),
    };
    let mut sent = 0;
    for _ in 0..10 {
        let ds = p.on_tick(&ctx(t0, &c, &locals));
        c.handle_decisions(t0, ds);
        while let Some(cmd) = c.poll_command() {
            if matches!(&cmd, PmCommand::Announce { addr, .. } if *addr == ip("10.0.2.1")) {
                sent += 1;
                c.handle_command_result(t0, &cmd, Err(refusal.clone()));
            } else {
                c.handle_command_result(t0, &cmd, Ok(()));
            }
        }
    }
    assert_eq!(sent, mptcp_pmd_policies::conn::MAX_ANNOUNCE_REFUSALS);
    let a = c.announcement(ip("10.0.2.1")).unwrap();
    assert!(a.given_up());
    assert!(matches!(
        &a.state,
        AnnounceState::Refused { errno: 22, message: Some(m), .. } if m == "did not match address and id"
    ));
    // The refused one did not block the others.
    assert!(c
        .announcement(ip("10.0.3.1"))
        .is_some_and(|a| a.is_active()));
}

#[test]
fn closed_connections_get_nothing_and_tokens_do_not_mix() {
    let t0 = Instant::now();
    let mut p = policy(AnnounceParams::default());
    let locals = [eth(1), eth(2)];
    let mut c = accepted(t0, S_LOCAL);
    c.handle_event(t0, &PmEvent::Closed { token: T });
    assert!(p.on_tick(&ctx(t0, &c, &locals)).is_empty());
    let other = Connection::new(Token(7), ConnTimers::default());
    assert!(p.on_tick(&ctx(t0, &other, &locals)).is_empty());
}
