//! Operator commands through the connection state machine (`Connection::handle_manual`,
//! `set_held`): what they queue, how the state machine learns of what they made, what it
//! refuses before anything reaches the kernel, and how a policy and a hold treat them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use mptcp_pmd_policies::fullmesh::FullmeshParams;
use mptcp_pmd_policies::{
    Action, AnnounceState, ConnTimers, Connection, Manual, ManualRefusal, PmCommand, PmEvent,
    PolicyParams, Reason, SubflowState,
};

fn by_hand() -> Reason {
    Reason::new("operator", "uid 0 pid 42".into())
}

const SECOND: &str = "10.0.2.1";

#[test]
fn manual_create_is_queued_at_once_and_learnt_like_a_policy_subflow() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let cmd = c
        .handle_manual(
            t0,
            &Manual::Create {
                local: ip(SECOND),
                remote: sa(INIT_REMOTE),
                backup: true,
            },
            by_hand(),
        )
        .unwrap();
    let PmCommand::CreateSubflow {
        local: from,
        local_id,
        remote,
        backup,
        ..
    } = cmd.clone()
    else {
        panic!("{cmd:?}")
    };
    assert_eq!((from, remote, backup), (ip(SECOND), sa(INIT_REMOTE), true));
    assert_ne!(local_id, 0, "a fresh address gets a fresh id");
    // The command is the one queued (the driver sends it like any other).
    assert_eq!(drain(&mut c), vec![cmd.clone()]);
    let sf = c.subflows().last().unwrap();
    assert!(sf.manual && matches!(sf.state, SubflowState::Requested { .. }));
    assert_eq!(sf.reason.as_ref().unwrap().code, "operator");
    c.handle_command_result(t0, &cmd, Ok(()));
    // The kernel reports it established: the manual entry, not a new one.
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub("10.0.2.1:41000", INIT_REMOTE, local_id, 0, false)),
    );
    assert_eq!(c.subflows().len(), 2);
    let sf = &c.subflows()[1];
    assert!(sf.manual && sf.is_established());
    // It asked for backup, and its create carried the flag, which the kernel gives the join
    // itself: the event's BACKUP (false) is the peer's, so no SET_FLAGS follows.
    assert!(sf.backup && !sf.peer_backup);
    assert_eq!(drain(&mut c), vec![]);

    // fullmesh counts it: with two locals and one remote there is nothing left to open.
    let mut policy = FullmeshParams::default().build();
    let locals = [local("10.0.1.1", 1, false), local(SECOND, 2, false)];
    let ds = policy.on_locals_changed(&ctx(t0, &c, &locals));
    assert!(
        opens(&ds).is_empty(),
        "no duplicate of the manual subflow: {ds:?}"
    );
}

#[test]
fn manual_create_ignores_backoff_and_given_up_paths() {
    let t0 = Instant::now();
    let timers = ConnTimers {
        max_retries: 1,
        ..ConnTimers::default()
    };
    let mut c = established(t0, timers);
    c.handle_decisions(t0, vec![open_decision(SECOND)]);
    let cmds = drain(&mut c);
    c.handle_command_result(
        t0,
        &cmds[0],
        Err(mptcp_pmd_policies::KernelRefusal {
            errno: 99,
            message: None,
        }),
    );
    // The path is given up for the policy ...
    c.handle_decisions(t0, vec![open_decision(SECOND)]);
    assert!(drain(&mut c).is_empty(), "given up for the policy");
    // ... not for the operator.
    let cmd = c
        .handle_manual(
            t0,
            &Manual::Create {
                local: ip(SECOND),
                remote: sa(INIT_REMOTE),
                backup: false,
            },
            by_hand(),
        )
        .unwrap();
    assert_eq!(drain(&mut c), vec![cmd]);
}

fn open_decision(local: &str) -> mptcp_pmd_policies::Decision {
    d(Action::Open {
        local: ip(local),
        if_index: None,
        remote: sa(INIT_REMOTE),
        backup: false,
        timeout: None,
    })
}

#[test]
fn refusals_leave_the_connection_unchanged() {
    let t0 = Instant::now();
    let mut fresh = Connection::new(T, ConnTimers::default());
    fresh.handle_event(t0, &PmEvent::Created(info(INIT_LOCAL, INIT_REMOTE, false)));
    let create = Manual::Create {
        local: ip(SECOND),
        remote: sa(INIT_REMOTE),
        backup: false,
    };
    assert_eq!(
        fresh.handle_manual(t0, &create, by_hand()),
        Err(ManualRefusal::NotEstablished)
    );

    let mut c = established(t0, ConnTimers::default());
    let before = c.subflows().to_vec();
    let v6 = Manual::Create {
        local: ip("2001:db8::1"),
        remote: sa(INIT_REMOTE),
        backup: false,
    };
    assert!(matches!(
        c.handle_manual(t0, &v6, by_hand()),
        Err(ManualRefusal::FamilyMismatch { .. })
    ));
    let unknown = key("10.0.2.1:1234", INIT_REMOTE);
    assert_eq!(
        c.handle_manual(t0, &Manual::Destroy { key: unknown }, by_hand()),
        Err(ManualRefusal::NoSuchSubflow { key: unknown })
    );
    assert_eq!(
        c.handle_manual(
            t0,
            &Manual::SetBackup {
                key: unknown,
                backup: true
            },
            by_hand()
        ),
        Err(ManualRefusal::NoSuchSubflow { key: unknown })
    );
    assert_eq!(
        c.handle_manual(t0, &Manual::Withdraw { id: 7 }, by_hand()),
        Err(ManualRefusal::NoSuchAnnouncement(7))
    );
    assert_eq!(
        c.handle_manual(t0, &Manual::Withdraw { id: 0 }, by_hand()),
        Err(ManualRefusal::IdZero)
    );
    assert_eq!(
        c.handle_manual(
            t0,
            &Manual::Announce {
                addr: sa(INIT_LOCAL).ip(),
                id: None
            },
            by_hand()
        ),
        Err(ManualRefusal::InitialAddress(sa(INIT_LOCAL).ip()))
    );
    assert!(drain(&mut c).is_empty(), "a refusal queues nothing");
    assert_eq!(c.subflows(), &before[..]);

    c.handle_event(t0, &PmEvent::Closed { token: T });
    assert_eq!(
        c.handle_manual(t0, &create, by_hand()),
        Err(ManualRefusal::Closed)
    );
}

#[test]
fn destroy_and_backup_of_an_established_subflow() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let initial = key(INIT_LOCAL, INIT_REMOTE);
    let cmd = c
        .handle_manual(
            t0,
            &Manual::SetBackup {
                key: initial,
                backup: true,
            },
            by_hand(),
        )
        .unwrap();
    assert_eq!(
        cmd,
        PmCommand::SetBackup {
            token: T,
            key: initial,
            backup: true
        }
    );
    assert_eq!(drain(&mut c), vec![cmd.clone()]);
    c.handle_command_result(t0, &cmd, Ok(()));
    assert!(c.subflows()[0].backup, "the ACK is the confirmation");

    let cmd = c
        .handle_manual(t0, &Manual::Destroy { key: initial }, by_hand())
        .unwrap();
    assert_eq!(
        cmd,
        PmCommand::DestroySubflow {
            token: T,
            key: initial
        }
    );
    assert_eq!(drain(&mut c), vec![cmd]);
    assert!(c.subflows()[0].closing);
    // Twice is refused: it is being closed already.
    assert!(c
        .handle_manual(t0, &Manual::Destroy { key: initial }, by_hand())
        .is_err());
}

#[test]
fn announce_with_and_without_an_id_then_withdraw() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let cmd = c
        .handle_manual(
            t0,
            &Manual::Announce {
                addr: ip(SECOND),
                id: Some(9),
            },
            by_hand(),
        )
        .unwrap();
    assert_eq!(
        cmd,
        PmCommand::Announce {
            token: T,
            id: 9,
            addr: ip(SECOND),
            port: None
        }
    );
    assert_eq!(drain(&mut c), vec![cmd.clone()]);
    c.handle_command_result(t0, &cmd, Ok(()));
    let a = c.announcement(ip(SECOND)).unwrap();
    assert!(a.manual && a.is_active() && a.id == 9);
    assert_eq!(
        c.handle_manual(
            t0,
            &Manual::Announce {
                addr: ip(SECOND),
                id: None
            },
            by_hand()
        ),
        Err(ManualRefusal::AlreadyAnnounced {
            addr: ip(SECOND),
            id: 9
        })
    );
    // Id 9 is taken by SECOND; another address may not have it.
    assert_eq!(
        c.handle_manual(
            t0,
            &Manual::Announce {
                addr: ip("10.0.3.1"),
                id: Some(9)
            },
            by_hand()
        ),
        Err(ManualRefusal::IdTaken {
            id: 9,
            other: ip(SECOND)
        })
    );
    // Without an id: the highest free one, as the policies' announcements.
    let cmd = c
        .handle_manual(
            t0,
            &Manual::Announce {
                addr: ip("10.0.3.1"),
                id: None,
            },
            by_hand(),
        )
        .unwrap();
    assert!(
        matches!(cmd, PmCommand::Announce { id: 255, .. }),
        "{cmd:?}"
    );
    drain(&mut c);

    let cmd = c
        .handle_manual(t0, &Manual::Withdraw { id: 9 }, by_hand())
        .unwrap();
    assert_eq!(cmd, PmCommand::Remove { token: T, id: 9 });
    assert_eq!(drain(&mut c), vec![cmd]);
    assert!(matches!(
        c.announcement(ip(SECOND)).unwrap().state,
        AnnounceState::Withdrawn { .. }
    ));
    // Re-announced later, the address keeps its id; another id is refused.
    assert_eq!(
        c.handle_manual(
            t0,
            &Manual::Announce {
                addr: ip(SECOND),
                id: Some(10)
            },
            by_hand()
        ),
        Err(ManualRefusal::AddressHasId {
            addr: ip(SECOND),
            has: 9,
            asked: 10
        })
    );
}

#[test]
fn a_policy_does_not_close_reflag_or_withdraw_what_an_operator_made() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let cmd = c
        .handle_manual(
            t0,
            &Manual::Create {
                local: ip(SECOND),
                remote: sa(INIT_REMOTE),
                backup: false,
            },
            by_hand(),
        )
        .unwrap();
    drain(&mut c);
    c.handle_command_result(t0, &cmd, Ok(()));
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub("10.0.2.1:41000", INIT_REMOTE, 1, 0, false)),
    );
    let manual_key = key("10.0.2.1:41000", INIT_REMOTE);
    let ann = c
        .handle_manual(
            t0,
            &Manual::Announce {
                addr: ip("10.0.3.1"),
                id: None,
            },
            by_hand(),
        )
        .unwrap();
    drain(&mut c);
    c.handle_command_result(t0, &ann, Ok(()));

    c.handle_decisions(
        t0,
        vec![
            d(Action::Close { key: manual_key }),
            d(Action::SetBackup {
                key: manual_key,
                backup: true,
            }),
            d(Action::Remove {
                addr: ip("10.0.3.1"),
            }),
        ],
    );
    assert!(drain(&mut c).is_empty());
    assert!(c.subflows()[1].is_live());
    assert!(c.announcement(ip("10.0.3.1")).unwrap().is_active());
    // The policy's own subflow is still the policy's.
    c.handle_decisions(
        t0,
        vec![d(Action::Close {
            key: key(INIT_LOCAL, INIT_REMOTE),
        })],
    );
    assert_eq!(drain(&mut c).len(), 1);
}

#[test]
fn a_held_connection_applies_no_decision_until_released() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    assert!(c.set_held(true));
    assert!(!c.set_held(true), "holding twice changes nothing");
    assert!(c.is_held());
    c.handle_decisions(t0, vec![open_decision(SECOND)]);
    assert!(
        drain(&mut c).is_empty(),
        "held: the decision is not applied"
    );
    assert_eq!(c.subflows().len(), 1);
    // The operator still can.
    let cmd = c
        .handle_manual(
            t0,
            &Manual::Destroy {
                key: key(INIT_LOCAL, INIT_REMOTE),
            },
            by_hand(),
        )
        .unwrap();
    assert_eq!(drain(&mut c), vec![cmd]);
    assert!(c.set_held(false));
    c.handle_decisions(t0, vec![open_decision(SECOND)]);
    assert_eq!(drain(&mut c).len(), 1, "released: decisions apply again");
}
