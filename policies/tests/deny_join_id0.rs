//! Every client policy honours the peer's `deny_join_id0`: no subflow towards the connection's
//! initial remote address and port, joins to the addresses the peer announced still made, and
//! a note that says why (for `mptcp-pmd status`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use mptcp_pmd_policies::fullmesh::Fullmesh;
use mptcp_pmd_policies::ndiffports::Ndiffports;
use mptcp_pmd_policies::rtt_based::{RttBased, RttParams};
use mptcp_pmd_policies::{ConnTimers, Connection, LocalAddr, PmEvent, Policy};

const ANNOUNCED: &str = "10.0.8.1:80";

fn locals() -> [LocalAddr; 2] {
    [local("10.0.1.1", 1, false), local("10.0.2.1", 2, false)]
}

/// A client connection established with a peer that set (or not) `deny_join_id0`.
fn conn(now: Instant, deny: bool) -> (Connection, PmEvent) {
    let mut c = Connection::new(T, ConnTimers::default());
    let mut i = info(INIT_LOCAL, INIT_REMOTE, false);
    i.flags.deny_join_id0 = deny;
    c.handle_event(now, &PmEvent::Created(i));
    c.handle_event(now, &PmEvent::Established(i));
    (c, PmEvent::Established(i))
}

fn announce(c: &mut Connection, now: Instant) -> PmEvent {
    let ev = PmEvent::Announced {
        token: T,
        rem_id: 3,
        addr: ip("10.0.8.1"),
        port: None,
    };
    c.handle_event(now, &ev);
    ev
}

/// The checks every mesh policy must pass: nothing towards the initial address, the
/// announced one joined from every local, the note with the numbers, and no note (and the
/// initial address joined) without the flag.
fn mesh_policy_honours_the_flag(mut p: impl Policy) {
    let t0 = Instant::now();
    let locals = locals();
    let (mut c, est) = conn(t0, true);
    // Only the initial remote is known: nothing can be opened, and the note says why.
    let ds = p.on_event(&ctx(t0, &c, &locals), &est);
    assert!(opens(&ds).is_empty(), "{ds:?}");
    let note = p.note(&ctx(t0, &c, &locals)).expect("a note");
    assert_eq!(note.code, "deny-join-id0");
    assert!(note.detail.contains(INIT_REMOTE), "{}", note.detail);
    assert!(
        note.detail.contains("announced no other address"),
        "{}",
        note.detail
    );

    // The peer announces another address: it is joined from both locals, still nothing
    // towards the initial one.
    let ev = announce(&mut c, t0);
    let ds = p.on_event(&ctx(t0, &c, &locals), &ev);
    assert_eq!(
        opens(&ds),
        vec![
            (ip("10.0.1.1"), sa(ANNOUNCED), false),
            (ip("10.0.2.1"), sa(ANNOUNCED), false)
        ]
    );
    let mut port = 50000;
    apply(&mut c, t0, ds, &mut port);
    assert!(p.on_tick(&ctx(t0, &c, &locals)).is_empty(), "settled");
    let note = p.note(&ctx(t0, &c, &locals)).unwrap();
    assert!(
        note.detail.contains("the 1 address it announced"),
        "{}",
        note.detail
    );
    assert_eq!(c.live_on(ip("10.0.2.1"), sa(INIT_REMOTE)), 0);

    // The same policy without the flag joins the initial address too, and has nothing to say.
    let (c, est) = conn(t0, false);
    let ds = p.on_event(&ctx(t0, &c, &locals), &est);
    assert_eq!(opens(&ds), vec![(ip("10.0.2.1"), sa(INIT_REMOTE), false)]);
    assert_eq!(p.note(&ctx(t0, &c, &locals)), None);
}

#[test]
fn fullmesh_never_joins_the_initial_address_of_a_denying_peer() {
    mesh_policy_honours_the_flag(Fullmesh::new(8));
}

#[test]
fn rtt_based_never_joins_the_initial_address_of_a_denying_peer() {
    mesh_policy_honours_the_flag(RttBased::new(RttParams::default()));
}

#[test]
fn ndiffports_opens_nothing_for_a_denying_peer_and_says_why() {
    let t0 = Instant::now();
    let locals = locals();
    let mut p = Ndiffports::new(4);
    let (mut c, est) = conn(t0, true);
    assert!(p.on_event(&ctx(t0, &c, &locals), &est).is_empty());
    let ev = announce(&mut c, t0);
    // Its subflows are all joins to the initial address: an announcement changes nothing.
    assert!(p.on_event(&ctx(t0, &c, &locals), &ev).is_empty());
    assert!(p.on_tick(&ctx(t0, &c, &locals)).is_empty());
    let note = p.note(&ctx(t0, &c, &locals)).expect("a note");
    assert_eq!(note.code, "deny-join-id0");
    assert!(note.detail.contains(INIT_REMOTE), "{}", note.detail);
    assert!(note.detail.contains("none is opened"), "{}", note.detail);

    let (c, est) = conn(t0, false);
    assert_eq!(p.on_event(&ctx(t0, &c, &locals), &est).len(), 3);
    assert_eq!(p.note(&ctx(t0, &c, &locals)), None);
    // Nothing to say either where it would not act anyway.
    assert_eq!(
        Ndiffports::new(1).note(&ctx(t0, &conn(t0, true).0, &locals)),
        None
    );
}
