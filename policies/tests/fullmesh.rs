//! The fullmesh policy against a connection driven by simulated kernel events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use mptcp_pmd_policies::{
    fullmesh::Fullmesh, Action, ConnTimers, Connection, KernelRefusal, LocalAddr, PmEvent, Policy,
};

fn eth(n: u32) -> LocalAddr {
    local(&format!("10.0.{n}.1"), n, false)
}

fn established_event() -> PmEvent {
    PmEvent::Established(info(INIT_LOCAL, INIT_REMOTE, false))
}

/// A connection that saw ESTABLISHED, the policy's answer applied by a healthy fake kernel.
fn meshed(p: &mut Fullmesh, now: Instant, locals: &[LocalAddr], port: &mut u16) -> Connection {
    let mut c = established(now, ConnTimers::default());
    let ds = p.on_event(&ctx(now, &c, locals), &established_event());
    apply(&mut c, now, ds, port);
    c
}

#[test]
fn two_and_three_locals_open_the_missing_pairs() {
    let t0 = Instant::now();
    let mut p = Fullmesh::new(8);
    let c = established(t0, ConnTimers::default());
    let two = [eth(1), eth(2)];
    let ds = p.on_event(&ctx(t0, &c, &two), &established_event());
    assert_eq!(opens(&ds), vec![(ip("10.0.2.1"), sa(INIT_REMOTE), false)]);
    let three = [eth(1), eth(2), eth(3)];
    let ds = p.on_event(&ctx(t0, &c, &three), &established_event());
    assert_eq!(
        opens(&ds),
        vec![
            (ip("10.0.2.1"), sa(INIT_REMOTE), false),
            (ip("10.0.3.1"), sa(INIT_REMOTE), false)
        ]
    );
    assert!(ds.iter().all(|d| matches!(
        &d.action,
        Action::Open { if_index: Some(i), local, .. } if local.to_string() == format!("10.0.{i}.1")
    )));
}

#[test]
fn nothing_before_established_nor_on_server_side() {
    let t0 = Instant::now();
    let mut p = Fullmesh::new(8);
    let locals = [eth(1), eth(2)];
    let mut c = Connection::new(T, ConnTimers::default());
    c.handle_event(t0, &PmEvent::Created(info(INIT_LOCAL, INIT_REMOTE, false)));
    assert!(p.on_tick(&ctx(t0, &c, &locals)).is_empty());

    let mut s = Connection::new(T, ConnTimers::default());
    s.handle_event(
        t0,
        &PmEvent::Established(info(INIT_LOCAL, INIT_REMOTE, true)),
    );
    assert!(p
        .on_event(&ctx(t0, &s, &locals), &established_event())
        .is_empty());
    assert!(p
        .on_locals_changed(&ctx(t0, &s, &[eth(1), eth(2), eth(3)]))
        .is_empty());
}

#[test]
fn applied_mesh_is_stable() {
    let t0 = Instant::now();
    let mut p = Fullmesh::new(8);
    let locals = [eth(1), eth(2), eth(3)];
    let mut port = 50000;
    let c = meshed(&mut p, t0, &locals, &mut port);
    assert_eq!(c.live_count(), 3);
    assert!(p.on_tick(&ctx(t0, &c, &locals)).is_empty());
}

#[test]
fn address_added_then_removed() {
    let t0 = Instant::now();
    let mut p = Fullmesh::new(8);
    let mut port = 50000;
    let mut c = meshed(&mut p, t0, &[eth(1), eth(2)], &mut port);
    let three = [eth(1), eth(2), eth(3)];
    let ds = p.on_locals_changed(&ctx(t0, &c, &three));
    assert_eq!(opens(&ds), vec![(ip("10.0.3.1"), sa(INIT_REMOTE), false)]);
    apply(&mut c, t0, ds, &mut port);

    // eth2 goes away: its subflow is closed; nothing else.
    let ds = p.on_locals_changed(&ctx(t0, &c, &[eth(1), eth(3)]));
    assert_eq!(
        actions(&ds),
        vec![Action::Close {
            key: key("10.0.2.1:50000", INIT_REMOTE)
        }]
    );
    // eth1 (the initial subflow's) goes away too: the initial subflow is kept.
    apply(&mut c, t0, ds, &mut port);
    assert!(p.on_locals_changed(&ctx(t0, &c, &[eth(3)])).is_empty());
}

#[test]
fn announced_remote_gets_a_subflow_per_local_and_removal_closes_them() {
    let t0 = Instant::now();
    let mut p = Fullmesh::new(8);
    let locals = [eth(1), eth(2)];
    let mut port = 50000;
    let mut c = meshed(&mut p, t0, &locals, &mut port);
    let ev = PmEvent::Announced {
        token: T,
        rem_id: 4,
        addr: ip("10.0.8.1"),
        port: None,
    };
    c.handle_event(t0, &ev);
    let ds = p.on_event(&ctx(t0, &c, &locals), &ev);
    assert_eq!(
        opens(&ds),
        vec![
            (ip("10.0.1.1"), sa("10.0.8.1:80"), false),
            (ip("10.0.2.1"), sa("10.0.8.1:80"), false)
        ]
    );
    apply(&mut c, t0, ds, &mut port);
    assert_eq!(c.live_count(), 4);

    let ev = PmEvent::Removed {
        token: T,
        rem_id: 4,
    };
    c.handle_event(t0, &ev);
    let ds = p.on_event(&ctx(t0, &c, &locals), &ev);
    assert_eq!(
        closes(&ds),
        vec![
            key("10.0.1.1:50001", "10.0.8.1:80"),
            key("10.0.2.1:50002", "10.0.8.1:80")
        ]
    );
    assert!(opens(&ds).is_empty());
}

#[test]
fn max_subflows_counts_the_initial_one_and_serves_non_backup_first() {
    let t0 = Instant::now();
    let mut p = Fullmesh::new(3);
    let locals = [local("10.0.2.1", 2, true), eth(1), eth(3)];
    let mut c = established(t0, ConnTimers::default());
    c.handle_event(
        t0,
        &PmEvent::Announced {
            token: T,
            rem_id: 4,
            addr: ip("10.0.8.1"),
            port: None,
        },
    );
    let ds = p.on_tick(&ctx(t0, &c, &locals));
    assert_eq!(ds.len(), 2, "1 initial + 2 = 3");
    assert!(opens(&ds)
        .iter()
        .all(|(l, _, backup)| !backup && *l != ip("10.0.2.1")));
    let mut port = 50000;
    apply(&mut c, t0, ds, &mut port);
    assert!(
        p.on_tick(&ctx(t0, &c, &locals)).is_empty(),
        "budget used up"
    );
}

#[test]
fn backup_interface_opens_backup_subflows_and_flag_changes_follow() {
    let t0 = Instant::now();
    let mut p = Fullmesh::new(8);
    let locals = [eth(1), local("10.0.2.1", 2, true)];
    let mut port = 50000;
    let mut c = established(t0, ConnTimers::default());
    let ds = p.on_event(&ctx(t0, &c, &locals), &established_event());
    assert_eq!(opens(&ds), vec![(ip("10.0.2.1"), sa(INIT_REMOTE), true)]);
    apply(&mut c, t0, ds, &mut port);
    assert!(c.subflows()[1].backup);
    // eth2 stops being backup (config reload).
    let ds = p.on_locals_changed(&ctx(t0, &c, &[eth(1), eth(2)]));
    assert_eq!(
        actions(&ds),
        vec![Action::SetBackup {
            key: key("10.0.2.1:50000", INIT_REMOTE),
            backup: false
        }]
    );
}

#[test]
fn closed_subflow_is_reopened_but_not_on_a_given_up_path() {
    let t0 = Instant::now();
    let mut p = Fullmesh::new(8);
    let locals = [eth(1), eth(2)];
    let mut port = 50000;
    let timers = ConnTimers {
        max_retries: 2,
        ..ConnTimers::default()
    };
    let mut c = established(t0, timers);
    let ds = p.on_event(&ctx(t0, &c, &locals), &established_event());
    apply(&mut c, t0, ds, &mut port);

    let ev = PmEvent::SubClosed(sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false));
    let t1 = t0 + ms(100);
    c.handle_event(t1, &ev);
    let ds = p.on_event(&ctx(t1, &c, &locals), &ev);
    assert_eq!(opens(&ds), vec![(ip("10.0.2.1"), sa(INIT_REMOTE), false)]);
    c.handle_decisions(t1, ds);
    // Backoff: the create waits 500ms, and the policy does not ask twice meanwhile.
    assert_eq!(c.poll_command(), None);
    assert!(p.on_tick(&ctx(t1, &c, &locals)).is_empty());
    let t2 = t1 + ms(500);
    c.handle_timeout(t2);
    let cmd = c.poll_command().unwrap();
    c.handle_command_result(
        t2,
        &cmd,
        Err(KernelRefusal {
            errno: 101,
            message: None,
        }),
    );
    assert!(c.given_up(&mptcp_pmd_policies::Path {
        local: ip("10.0.2.1"),
        remote: sa(INIT_REMOTE)
    }));
    assert!(p
        .on_tick(&ctx(t2 + Duration::from_secs(60), &c, &locals))
        .is_empty());
    // The address returns: the path is tried again.
    c.local_addr_returned(ip("10.0.2.1"));
    assert_eq!(opens(&p.on_locals_changed(&ctx(t2, &c, &locals))).len(), 1);
}

#[test]
fn address_families_are_not_mixed() {
    let t0 = Instant::now();
    let mut p = Fullmesh::new(8);
    let locals = [eth(1), local("fd00::2", 2, false)];
    let mut c = established(t0, ConnTimers::default());
    assert!(p.on_tick(&ctx(t0, &c, &locals)).is_empty());
    c.handle_event(
        t0,
        &PmEvent::Announced {
            token: T,
            rem_id: 1,
            addr: ip("fd00::9"),
            port: None,
        },
    );
    let ds = p.on_tick(&ctx(t0, &c, &locals));
    assert_eq!(opens(&ds), vec![(ip("fd00::2"), sa("[fd00::9]:80"), false)]);
}

fn reasons(ds: &[mptcp_pmd_policies::Decision]) -> Vec<&'static str> {
    ds.iter().map(|d| d.reason.code).collect()
}

/// Issue 15 item 6: after a reload from ndiffports (3) to fullmesh, a connection had 4
/// subflows, 3 on the initial pair. The mesh keeps one per pair: the initial one.
#[test]
fn a_reload_from_ndiffports_trims_to_one_subflow_per_pair_keeping_the_initial() {
    let t0 = Instant::now();
    let locals = [eth(1), eth(2)];
    let mut port = 50000;
    let mut c = established(t0, ConnTimers::default());
    let mut nd = mptcp_pmd_policies::ndiffports::Ndiffports::new(3);
    let ds = nd.on_event(&ctx(t0, &c, &locals), &established_event());
    apply(&mut c, t0, ds, &mut port);
    assert_eq!(c.live_on(ip("10.0.1.1"), sa(INIT_REMOTE)), 3);

    // The reload: the new policy object decides at the next hook.
    let mut p = Fullmesh::new(8);
    let t1 = t0 + Duration::from_secs(1);
    let ds = p.on_tick(&ctx(t1, &c, &locals));
    assert_eq!(
        closes(&ds),
        vec![
            key("10.0.1.1:50000", INIT_REMOTE),
            key("10.0.1.1:50001", INIT_REMOTE)
        ],
        "the two extras, not the initial"
    );
    assert_eq!(opens(&ds), vec![(ip("10.0.2.1"), sa(INIT_REMOTE), false)]);
    assert_eq!(reasons(&ds), vec!["duplicate", "duplicate", "mesh"]);
    apply(&mut c, t1, ds, &mut port);
    assert_eq!(c.live_on(ip("10.0.1.1"), sa(INIT_REMOTE)), 1);
    assert_eq!(c.live_on(ip("10.0.2.1"), sa(INIT_REMOTE)), 1);
    assert!(c.subflows().iter().any(|s| s.initial && s.is_live()));
    assert!(p.on_tick(&ctx(t1, &c, &locals)).is_empty(), "stable");
}

#[test]
fn a_duplicate_on_another_pair_keeps_the_oldest() {
    let t0 = Instant::now();
    let locals = [eth(1), eth(2)];
    let mut port = 50000;
    let mut p = Fullmesh::new(8);
    let mut c = meshed(&mut p, t0, &locals, &mut port);
    // A second subflow on (10.0.2.1, remote), e.g. opened by the policy in force before.
    let mut s = sub("10.0.2.1:60000", INIT_REMOTE, 1, 0, false);
    s.token = T;
    c.handle_event(t0, &PmEvent::SubEstablished(s));
    assert_eq!(c.live_on(ip("10.0.2.1"), sa(INIT_REMOTE)), 2);
    let ds = p.on_tick(&ctx(t0, &c, &locals));
    assert_eq!(closes(&ds), vec![key("10.0.2.1:60000", INIT_REMOTE)]);
    assert_eq!(reasons(&ds), vec!["duplicate"]);
    assert!(opens(&ds).is_empty());
}

#[test]
fn a_lower_max_subflows_closes_the_newest_and_never_the_initial() {
    let t0 = Instant::now();
    let locals = [eth(1), eth(2), eth(3), eth(4)];
    let mut port = 50000;
    let mut p = Fullmesh::new(8);
    let mut c = meshed(&mut p, t0, &locals, &mut port);
    assert_eq!(c.live_count(), 4);
    // Reloaded with max_subflows 2: the two newest go.
    let mut p = Fullmesh::new(2);
    let ds = p.on_tick(&ctx(t0, &c, &locals));
    assert_eq!(
        closes(&ds),
        vec![
            key("10.0.3.1:50001", INIT_REMOTE),
            key("10.0.4.1:50002", INIT_REMOTE)
        ]
    );
    assert_eq!(reasons(&ds), vec!["over-limit", "over-limit"]);
    apply(&mut c, t0, ds, &mut port);
    assert_eq!(c.live_count(), 2);
    assert!(p.on_tick(&ctx(t0, &c, &locals)).is_empty(), "stable");
    // max 1: only the initial subflow remains.
    let mut p = Fullmesh::new(1);
    let ds = p.on_tick(&ctx(t0, &c, &locals));
    assert_eq!(closes(&ds), vec![key("10.0.2.1:50000", INIT_REMOTE)]);
}

#[test]
fn pending_requests_are_no_reason_to_close_a_working_subflow() {
    let t0 = Instant::now();
    let locals = [eth(1), eth(2), eth(3)];
    let mut p = Fullmesh::new(8);
    let mut c = established(t0, ConnTimers::default());
    // Both joins requested, not established yet.
    let ds = p.on_event(&ctx(t0, &c, &locals), &established_event());
    c.handle_decisions(t0, ds);
    let _ = drain(&mut c);
    assert_eq!(c.live_count(), 3);
    let mut small = Fullmesh::new(2);
    let ds = small.on_tick(&ctx(t0, &c, &locals));
    assert!(closes(&ds).is_empty(), "{ds:?}");
    assert!(opens(&ds).is_empty(), "{ds:?}");
}
