//! The ndiffports policy against a connection driven by simulated kernel events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use mptcp_pmd_policies::ndiffports::Ndiffports;
use mptcp_pmd_policies::{ConnTimers, Connection, Path, PmCommand, PmEvent, Policy};

fn established_event() -> PmEvent {
    PmEvent::Established(info(INIT_LOCAL, INIT_REMOTE, false))
}

#[test]
fn n_subflows_over_the_initial_path() {
    let t0 = Instant::now();
    let locals = [local("10.0.1.1", 4, false), local("10.0.2.1", 5, false)];
    for (n, expected) in [(0usize, 0usize), (1, 0), (2, 1), (4, 3)] {
        let mut p = Ndiffports::new(n);
        let mut c = established(t0, ConnTimers::default());
        let ds = p.on_event(&ctx(t0, &c, &locals), &established_event());
        assert_eq!(ds.len(), expected, "n = {n}");
        assert!(opens(&ds)
            .iter()
            .all(|o| *o == (ip("10.0.1.1"), sa(INIT_REMOTE), false)));
        let mut port = 50000;
        apply(&mut c, t0, ds, &mut port);
        assert_eq!(c.live_on(ip("10.0.1.1"), sa(INIT_REMOTE)), n.max(1));
        assert!(
            p.on_tick(&ctx(t0, &c, &locals)).is_empty(),
            "n = {n} settled"
        );
        // Distinct source ports, all sharing one local id.
        let ports: std::collections::BTreeSet<_> =
            c.subflows().iter().filter_map(|s| s.local_port).collect();
        assert_eq!(ports.len(), n.max(1));
    }
}

#[test]
fn creates_carry_the_interface_and_one_id() {
    let t0 = Instant::now();
    let mut p = Ndiffports::new(3);
    let c0 = established(t0, ConnTimers::default());
    let ds = p.on_tick(&ctx(t0, &c0, &[local("10.0.1.1", 4, false)]));
    let mut c = c0;
    c.handle_decisions(t0, ds);
    let cmds = drain(&mut c);
    assert_eq!(cmds.len(), 2);
    for cmd in cmds {
        assert!(matches!(
            cmd,
            PmCommand::CreateSubflow {
                local_id: 1,
                if_index: Some(4),
                ..
            }
        ));
    }
}

#[test]
fn lost_subflows_are_reopened_unless_the_path_is_given_up() {
    let t0 = Instant::now();
    let mut p = Ndiffports::new(3);
    let timers = ConnTimers {
        max_retries: 1,
        ..ConnTimers::default()
    };
    let mut c = established(t0, timers);
    let mut port = 50000;
    let ds = p.on_event(&ctx(t0, &c, &[]), &established_event());
    apply(&mut c, t0, ds, &mut port);
    let t1 = t0 + std::time::Duration::from_secs(60);
    let ev = PmEvent::SubClosed(sub("10.0.1.1:50001", INIT_REMOTE, 1, 0, false));
    c.handle_event(t1, &ev);
    let ds = p.on_event(&ctx(t1, &c, &[]), &ev);
    assert_eq!(opens(&ds), vec![(ip("10.0.1.1"), sa(INIT_REMOTE), false)]);
    c.handle_decisions(t1, ds);
    let _create = drain(&mut c);
    // It never answers: with max_retries 1 the path is given up and nothing is reopened.
    c.handle_timeout(t1 + c.timers().request_timeout);
    let path = Path {
        local: ip("10.0.1.1"),
        remote: sa(INIT_REMOTE),
    };
    assert!(c.given_up(&path));
    assert!(p.on_tick(&ctx(t1, &c, &[])).is_empty());
}

#[test]
fn server_side_and_unestablished_get_nothing() {
    let t0 = Instant::now();
    let mut p = Ndiffports::new(4);
    let mut s = Connection::new(T, ConnTimers::default());
    s.handle_event(
        t0,
        &PmEvent::Established(info(INIT_LOCAL, INIT_REMOTE, true)),
    );
    assert!(p.on_tick(&ctx(t0, &s, &[])).is_empty());
    let mut c = Connection::new(T, ConnTimers::default());
    c.handle_event(t0, &PmEvent::Created(info(INIT_LOCAL, INIT_REMOTE, false)));
    assert!(p.on_tick(&ctx(t0, &c, &[])).is_empty());
}
