//! The connection state machine, transition by transition, through its public API only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use mptcp_pmd_policies::conn::{FLAG_RETRY_AFTER, MAX_FLAG_RETRIES};
use mptcp_pmd_policies::{
    Action, AnnounceState, ConnTimers, Connection, Decision, KernelRefusal, KernelSubflow, Path,
    PmCommand, PmEvent, RefusalMeaning, SubflowSample, SubflowState, Token,
};

fn open(local: &str, remote: &str, backup: bool) -> Decision {
    d(Action::Open {
        local: ip(local),
        if_index: Some(3),
        remote: sa(remote),
        backup,
        timeout: None,
    })
}

/// A probe: an open with its own timeout.
fn probe(local: &str, remote: &str, timeout: Duration) -> Decision {
    d(Action::Open {
        local: ip(local),
        if_index: Some(3),
        remote: sa(remote),
        backup: true,
        timeout: Some(timeout),
    })
}

fn path(local: &str, remote: &str) -> Path {
    Path {
        local: ip(local),
        remote: sa(remote),
    }
}

fn state_of(c: &Connection, i: usize) -> SubflowState {
    c.subflows()[i].state.clone()
}

#[test]
fn created_records_the_initial_subflow_but_joins_wait_for_established() {
    let t0 = Instant::now();
    let mut c = Connection::new(T, ConnTimers::default());
    c.handle_event(t0, &PmEvent::Created(info(INIT_LOCAL, INIT_REMOTE, false)));
    assert_eq!(c.info().map(|i| i.remote), Some(sa(INIT_REMOTE)));
    assert!(!c.is_established());
    assert_eq!(c.subflows().len(), 1);
    let sf = &c.subflows()[0];
    assert!(sf.initial);
    assert_eq!(sf.key(), Some(key(INIT_LOCAL, INIT_REMOTE)));
    assert_eq!(sf.state, SubflowState::Established { since: t0 });

    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert!(drain(&mut c).is_empty(), "no join before ESTABLISHED");

    let t1 = t0 + ms(3);
    c.handle_event(
        t1,
        &PmEvent::Established(info(INIT_LOCAL, INIT_REMOTE, false)),
    );
    assert!(c.is_established());
    assert_eq!(
        c.subflows().len(),
        1,
        "ESTABLISHED does not duplicate the initial subflow"
    );
    assert_eq!(c.remotes(), vec![(0, sa(INIT_REMOTE))]);
}

#[test]
fn server_side_is_recorded() {
    let t0 = Instant::now();
    let mut c = Connection::new(T, ConnTimers::default());
    c.handle_event(t0, &PmEvent::Created(info(INIT_LOCAL, INIT_REMOTE, true)));
    assert!(c.is_server_side());
}

#[test]
fn open_queues_a_create_with_stable_fresh_ids() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(
        t0,
        vec![
            open("10.0.2.1", INIT_REMOTE, false),
            open("10.0.3.1", INIT_REMOTE, true),
            open("10.0.2.1", "10.0.8.1:80", false),
            open("10.0.1.1", "10.0.8.1:80", false),
        ],
    );
    let cmds = drain(&mut c);
    let ids: Vec<_> = cmds
        .iter()
        .map(|cmd| match cmd {
            PmCommand::CreateSubflow {
                token,
                local,
                local_id,
                if_index,
                backup,
                ..
            } => {
                assert_eq!(*token, T);
                assert_eq!(*if_index, Some(3));
                (*local, *local_id, *backup)
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            (ip("10.0.2.1"), 1, false),
            (ip("10.0.3.1"), 2, true),
            (ip("10.0.2.1"), 1, false),
            // The initial local address gets a fresh non-zero id too.
            (ip("10.0.1.1"), 3, false),
        ]
    );
    assert_eq!(c.local_id(ip("10.0.2.1")), Some(1));
    assert_eq!(c.local_id(ip("10.0.3.1")), Some(2));
    assert_eq!(c.local_id(ip("10.0.4.1")), None);
    assert_eq!(c.live_on(ip("10.0.2.1"), sa(INIT_REMOTE)), 1);
    assert!(matches!(
        state_of(&c, 1),
        SubflowState::Requested { since, attempt: 1 } if since == t0
    ));
}

#[test]
fn mixed_families_and_unknown_keys_are_ignored() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let before = c.ignored();
    c.handle_decisions(
        t0,
        vec![
            open("fd00::1", INIT_REMOTE, false),
            d(Action::Close {
                key: key("10.0.5.1:1", INIT_REMOTE),
            }),
            d(Action::SetBackup {
                key: key("10.0.5.1:1", INIT_REMOTE),
                backup: true,
            }),
        ],
    );
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.ignored(), before + 3);
    c.handle_event(t0, &PmEvent::Closed { token: Token(7) });
    assert!(!c.is_closed(), "another token's CLOSED is not ours");
    assert_eq!(c.ignored(), before + 4);
}

#[test]
fn sub_established_fills_the_requested_entry() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    let cmd = drain(&mut c).remove(0);
    c.handle_command_result(t0, &cmd, Ok(()));
    let t1 = t0 + ms(20);
    let mut s = sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false);
    s.if_idx = Some(3);
    c.handle_event(t1, &PmEvent::SubEstablished(s));
    assert_eq!(c.subflows().len(), 2);
    let sf = &c.subflows()[1];
    assert_eq!(sf.state, SubflowState::Established { since: t1 });
    assert_eq!(sf.key(), Some(key("10.0.2.1:50000", INIT_REMOTE)));
    assert_eq!((sf.loc_id, sf.rem_id, sf.if_index), (1, 0, Some(3)));
    assert!(!sf.initial);
    assert!(drain(&mut c).is_empty(), "backup already as wanted");
    assert_eq!(c.poll_timeout(), None, "nothing to wait for");
}

#[test]
fn the_events_backup_is_the_peers_and_a_create_that_carried_the_flag_needs_no_set_flags() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(
        t0,
        vec![
            open("10.0.2.1", INIT_REMOTE, true),
            open("10.0.3.1", INIT_REMOTE, false),
        ],
    );
    let cmds = drain(&mut c);
    assert!(matches!(
        cmds.as_slice(),
        [
            PmCommand::CreateSubflow { backup: true, .. },
            PmCommand::CreateSubflow { backup: false, .. }
        ]
    ));
    // Linux 6.18 reports in SUB_ESTABLISHED the flag the *peer* sent (none here), never the
    // one our create carried (kernel_pm.rs, `same_pair_three_times_gives_three_subflows`):
    // no SET_FLAGS, which the kernel would refuse anyway until the join is fully
    // established.
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false)),
    );
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub("10.0.3.1:50001", INIT_REMOTE, 2, 0, true)),
    );
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.poll_timeout(), None);
    let (ours, other) = (&c.subflows()[1], &c.subflows()[2]);
    assert!(ours.backup && ours.want_backup && !ours.peer_backup);
    assert!(!other.backup && !other.want_backup && other.peer_backup);
    // SUB_PRIORITY is the peer's MP_PRIO: its flag, not ours.
    c.handle_event(
        t0,
        &PmEvent::SubPriority(sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, true)),
    );
    assert!(c.subflows()[1].peer_backup && c.subflows()[1].backup);
    assert_eq!(drain(&mut c), vec![]);
}

/// The kernel's refusal of SET_FLAGS for a join that is not fully established yet.
fn not_ready() -> KernelRefusal {
    KernelRefusal {
        errno: 22,
        message: Some("subflow not found".into()),
    }
}

fn fully(backup: bool) -> SubflowSample {
    SubflowSample {
        tcp_state: 1,
        backup,
        fully_established: true,
        ..SubflowSample::default()
    }
}

#[test]
fn set_flags_refused_before_the_join_is_fully_established_is_sent_again_once_it_is() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, true)]);
    drain(&mut c);
    let k = key("10.0.2.1:50000", INIT_REMOTE);
    c.handle_event(
        t0 + ms(1),
        &PmEvent::SubEstablished(sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false)),
    );
    // The policy wants it active at once: refused, the join is one round trip from fully
    // established (kernel_pm.rs, `set_flags_waits_for_the_join_to_be_fully_established`).
    c.handle_decisions(
        t0 + ms(1),
        vec![d(Action::SetBackup {
            key: k,
            backup: false,
        })],
    );
    let cmds = drain(&mut c);
    assert_eq!(
        cmds,
        vec![PmCommand::SetBackup {
            token: T,
            key: k,
            backup: false
        }]
    );
    let refusal = not_ready();
    assert_eq!(refusal.meaning(&cmds[0]), RefusalMeaning::SubflowNotReady);
    assert!(refusal.meaning(&cmds[0]).is_race());
    c.handle_command_result(t0 + ms(1), &cmds[0], Err(refusal));
    assert!(c.subflows()[1].backup, "still backup in the kernel");
    // A sample that does not show it fully established changes nothing; one that does sends
    // the wish again, at once.
    c.handle_samples(
        t0 + ms(10),
        &[(
            k,
            SubflowSample {
                fully_established: false,
                ..fully(true)
            },
        )],
    );
    assert_eq!(drain(&mut c), vec![]);
    c.handle_samples(t0 + ms(20), &[(k, fully(true))]);
    let cmds = drain(&mut c);
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    c.handle_command_result(t0 + ms(20), &cmds[0], Ok(()));
    assert!(!c.subflows()[1].backup);
    // Done: no more samples or timers send it again.
    c.handle_samples(t0 + ms(40), &[(k, fully(false))]);
    assert_eq!(drain(&mut c), vec![]);
    assert_eq!(c.poll_timeout(), None);
    // A refusal that does not mean "not ready" is not retried.
    c.handle_decisions(
        t0 + ms(50),
        vec![d(Action::SetBackup {
            key: k,
            backup: true,
        })],
    );
    let cmds = drain(&mut c);
    let other = KernelRefusal {
        errno: 22,
        message: Some("invalid addr flags".into()),
    };
    assert_eq!(other.meaning(&cmds[0]), RefusalMeaning::Command);
    c.handle_command_result(t0 + ms(50), &cmds[0], Err(other));
    c.handle_samples(t0 + ms(60), &[(k, fully(false))]);
    assert_eq!(drain(&mut c), vec![]);
}

/// An established connection with a join on 10.0.2.1 that the policy then wants backup: its
/// SET_FLAGS is queued (not drained yet).
fn joined_then_made_backup() -> (Instant, Connection, mptcp_pmd_policies::SubflowKey) {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    drain(&mut c);
    let k = key("10.0.2.1:50000", INIT_REMOTE);
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false)),
    );
    c.handle_decisions(
        t0,
        vec![d(Action::SetBackup {
            key: k,
            backup: true,
        })],
    );
    (t0, c, k)
}

#[test]
fn a_resent_set_flags_refused_for_another_reason_is_not_sent_again() {
    let (t0, mut c, k) = joined_then_made_backup();
    let cmds = drain(&mut c);
    c.handle_command_result(t0, &cmds[0], Err(not_ready()));
    // Fully established: sent again, and refused with a meaning other than "not ready".
    c.handle_samples(t0 + ms(20), &[(k, fully(false))]);
    let cmds = drain(&mut c);
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    let other = KernelRefusal {
        errno: 22,
        message: Some("invalid addr flags".into()),
    };
    assert_eq!(other.meaning(&cmds[0]), RefusalMeaning::Command);
    c.handle_command_result(t0 + ms(20), &cmds[0], Err(other));
    // Neither the next samples nor the retry timer send it again.
    c.handle_samples(t0 + ms(40), &[(k, fully(false))]);
    assert_eq!(drain(&mut c), vec![]);
    c.handle_timeout(t0 + ms(20) + FLAG_RETRY_AFTER);
    assert_eq!(drain(&mut c), vec![]);
}

#[test]
fn without_samples_a_refused_set_flags_is_retried_after_the_least_rto_a_few_times() {
    let (t0, mut c, _) = joined_then_made_backup();
    let mut now = t0;
    let mut sent = 0;
    loop {
        let cmds = drain(&mut c);
        if cmds.is_empty() {
            break;
        }
        sent += 1;
        c.handle_command_result(now, &cmds[0], Err(not_ready()));
        let Some(due) = c.poll_timeout() else { break };
        assert_eq!(due, now + FLAG_RETRY_AFTER);
        now = due;
        c.handle_timeout(now);
    }
    assert_eq!(sent, 1 + MAX_FLAG_RETRIES, "the first and the retries");
    assert!(!c.subflows()[1].backup);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn several_requests_on_one_path_are_matched_oldest_first() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    for i in 0..3 {
        c.handle_decisions(t0 + ms(i), vec![open("10.0.1.1", INIT_REMOTE, false)]);
    }
    assert_eq!(drain(&mut c).len(), 3);
    assert_eq!(c.live_on(ip("10.0.1.1"), sa(INIT_REMOTE)), 4);
    let t1 = t0 + ms(50);
    c.handle_event(
        t1,
        &PmEvent::SubEstablished(sub("10.0.1.1:50007", INIT_REMOTE, 1, 0, false)),
    );
    assert_eq!(c.subflows()[1].local_port, Some(50007));
    assert_eq!(
        c.subflows()[1].state,
        SubflowState::Established { since: t1 }
    );
    assert!(
        matches!(state_of(&c, 2), SubflowState::Requested { since, .. } if since == t0 + ms(1))
    );
    assert!(
        matches!(state_of(&c, 3), SubflowState::Requested { since, .. } if since == t0 + ms(2))
    );
    c.handle_event(
        t1,
        &PmEvent::SubEstablished(sub("10.0.1.1:50003", INIT_REMOTE, 1, 0, false)),
    );
    assert_eq!(c.subflows()[2].local_port, Some(50003));
    assert!(matches!(state_of(&c, 3), SubflowState::Requested { .. }));
}

#[test]
fn request_timeouts_retry_with_exact_backoff_then_give_up() {
    let t0 = Instant::now();
    let timers = ConnTimers::default();
    let mut c = established(t0, timers);
    let p = path("10.0.2.1", INIT_REMOTE);
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert_eq!(drain(&mut c).len(), 1);

    let mut now = t0;
    let mut delays = Vec::new();
    for attempt in 1..=6u32 {
        assert!(matches!(
            state_of(&c, 1),
            SubflowState::Requested { attempt: a, .. } if a == attempt
        ));
        let deadline = c.poll_timeout().unwrap();
        assert_eq!(deadline, now + Duration::from_secs(5));
        // Not a moment early.
        c.handle_timeout(deadline - ms(1));
        assert!(matches!(state_of(&c, 1), SubflowState::Requested { .. }));
        now = deadline;
        c.handle_timeout(now);
        assert_eq!(c.failures(&p), attempt);
        if attempt == 6 {
            break;
        }
        let SubflowState::Pending { due } = state_of(&c, 1) else {
            panic!("expected pending after timeout {attempt}");
        };
        assert_eq!(c.poll_timeout(), Some(due));
        delays.push(due - now);
        assert!(drain(&mut c).is_empty(), "nothing sent during backoff");
        now = due;
        c.handle_timeout(now);
        assert_eq!(drain(&mut c).len(), 1, "retry sent when due");
    }
    assert_eq!(
        delays,
        vec![ms(500), ms(1000), ms(2000), ms(4000), ms(8000)]
    );
    assert!(matches!(
        state_of(&c, 1),
        SubflowState::Failed { errno: 110, .. }
    ));
    assert!(c.given_up(&p));
    assert_eq!(c.poll_timeout(), None);
    c.handle_decisions(now, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert!(drain(&mut c).is_empty(), "given-up path gets no create");
    assert_eq!(c.live_on(ip("10.0.2.1"), sa(INIT_REMOTE)), 0);
}

#[test]
fn backoff_is_capped() {
    let timers = ConnTimers {
        backoff_max: ms(1500),
        ..ConnTimers::default()
    };
    let got: Vec<_> = (0..=6).map(|f| timers.backoff(f)).collect();
    assert_eq!(
        got,
        vec![
            ms(0),
            ms(500),
            ms(1000),
            ms(1500),
            ms(1500),
            ms(1500),
            ms(1500)
        ]
    );
    // No overflow for absurd counts.
    assert_eq!(ConnTimers::default().backoff(400), Duration::from_secs(30));
}

#[test]
fn local_addr_returned_forgives_the_path_and_hurries_pending_creates() {
    let t0 = Instant::now();
    let timers = ConnTimers {
        max_retries: 2,
        ..ConnTimers::default()
    };
    let mut c = established(t0, timers);
    let p = path("10.0.2.1", INIT_REMOTE);
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    let refused = KernelRefusal {
        errno: 99,
        message: None,
    };
    let cmd = drain(&mut c).remove(0);
    c.handle_command_result(t0, &cmd, Err(refused.clone()));
    // A second try is pending (backoff 500ms).
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert!(matches!(state_of(&c, 2), SubflowState::Pending { due } if due == t0 + ms(500)));
    let t1 = t0 + ms(100);
    c.handle_timeout(t1);
    c.local_addr_returned(ip("10.0.2.1"));
    assert_eq!(c.failures(&p), 0);
    assert_eq!(c.poll_timeout(), Some(t1), "pending create due at once");
    c.handle_timeout(t1);
    let cmd = drain(&mut c).remove(0);
    assert!(matches!(
        state_of(&c, 2),
        SubflowState::Requested { attempt: 1, .. }
    ));

    // Refusals until given up, then the address returns.
    c.handle_command_result(t1, &cmd, Err(refused.clone()));
    c.handle_decisions(t1 + ms(600), vec![open("10.0.2.1", INIT_REMOTE, false)]);
    let cmd = drain(&mut c).remove(0);
    c.handle_command_result(t1 + ms(600), &cmd, Err(refused));
    assert!(c.given_up(&p));
    c.local_addr_returned(ip("10.0.2.1"));
    assert!(!c.given_up(&p));
    c.handle_decisions(t1 + ms(700), vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert_eq!(drain(&mut c).len(), 1, "opens immediately again");
}

#[test]
fn refused_create_fails_with_errno_and_message_and_backs_off() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(
        t0,
        vec![
            open("10.0.2.1", INIT_REMOTE, false),
            open("10.0.2.1", INIT_REMOTE, false),
        ],
    );
    let cmds = drain(&mut c);
    c.handle_command_result(t0, &cmds[0], Ok(()));
    c.handle_command_result(
        t0,
        &cmds[1],
        Err(KernelRefusal {
            errno: -22,
            message: Some("did not match address and id".into()),
        }),
    );
    assert!(
        matches!(state_of(&c, 1), SubflowState::Requested { .. }),
        "the acked one"
    );
    assert_eq!(
        state_of(&c, 2),
        SubflowState::Failed {
            at: t0,
            errno: 22,
            message: Some("did not match address and id".into())
        }
    );
    let (n, last) = c.refusals();
    assert_eq!(n, 1);
    assert_eq!(
        last.map(|(name, r)| (name, r.errno)),
        Some(("subflow_create", -22))
    );
    assert_eq!(c.failures(&path("10.0.2.1", INIT_REMOTE)), 1);
    let t1 = t0 + ms(100);
    c.handle_decisions(t1, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert!(drain(&mut c).is_empty());
    assert!(matches!(state_of(&c, 3), SubflowState::Pending { due } if due == t0 + ms(500)));
}

fn refusal(errno: i32, message: &str) -> KernelRefusal {
    KernelRefusal {
        errno,
        message: Some(message.into()),
    }
}

#[test]
fn what_a_refusal_says_about_the_connection() {
    let k = key(INIT_LOCAL, INIT_REMOTE);
    let create = PmCommand::CreateSubflow {
        token: T,
        local: ip("10.0.2.1"),
        local_id: 1,
        if_index: None,
        remote: sa(INIT_REMOTE),
        backup: false,
    };
    let destroy = PmCommand::DestroySubflow { token: T, key: k };
    let flags = PmCommand::SetBackup {
        token: T,
        key: k,
        backup: true,
    };
    let announce = PmCommand::Announce {
        token: T,
        id: 9,
        addr: ip("10.0.2.1"),
        port: None,
    };
    let remove = PmCommand::Remove { token: T, id: 9 };
    // The texts and errnos of Linux 6.18 (integration/tests/kernel_pm.rs checks them).
    for cmd in [&create, &destroy, &flags, &announce, &remove] {
        assert_eq!(
            refusal(22, "invalid token").meaning(cmd),
            RefusalMeaning::ConnectionGone,
            "{cmd:?}"
        );
        assert_eq!(
            refusal(-22, "invalid token").meaning(cmd),
            RefusalMeaning::ConnectionGone,
            "a negative errno is the same"
        );
        // Another EINVAL, or the text without EINVAL, is about the command.
        assert_eq!(
            refusal(22, "did not match address and id").meaning(cmd),
            RefusalMeaning::Command
        );
        assert_eq!(
            refusal(1, "invalid token").meaning(cmd),
            RefusalMeaning::Command
        );
        let no_text = KernelRefusal {
            errno: 22,
            message: None,
        };
        assert_eq!(no_text.meaning(cmd), RefusalMeaning::Command);
    }
    assert_eq!(
        refusal(107, "connect error: -107").meaning(&create),
        RefusalMeaning::NotJoinable
    );
    assert_eq!(
        refusal(107, "x").meaning(&flags),
        RefusalMeaning::Command,
        "ENOTCONN is only SUBFLOW_CREATE's answer"
    );
    assert_eq!(
        refusal(3, "").meaning(&destroy),
        RefusalMeaning::SubflowGone
    );
    assert_eq!(refusal(3, "").meaning(&create), RefusalMeaning::Command);
    assert_eq!(
        refusal(98, "connect error: -98").meaning(&create),
        RefusalMeaning::Command
    );
    assert!(RefusalMeaning::ConnectionGone.is_race());
    assert!(RefusalMeaning::NotJoinable.is_race());
    assert!(RefusalMeaning::SubflowGone.is_race());
    assert!(!RefusalMeaning::Command.is_race());
}

#[test]
fn a_refusal_saying_the_connection_is_gone_closes_it_at_once() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(
        t0,
        vec![
            open("10.0.2.1", INIT_REMOTE, false),
            open("10.0.3.1", INIT_REMOTE, false),
        ],
    );
    let cmds = drain(&mut c);
    assert_eq!(cmds.len(), 2);
    c.handle_command_result(t0, &cmds[0], Err(refusal(22, "invalid token")));
    assert!(c.is_closed() && c.is_gone_in_kernel());
    assert_eq!(c.poll_command(), None, "nothing else is sent");
    assert_eq!(c.poll_timeout(), None, "no timer: no retry");
    assert!(
        c.subflows().iter().all(|s| s.is_dead()),
        "{:?}",
        c.subflows()
    );
    assert_eq!(
        c.failures(&path("10.0.2.1", INIT_REMOTE)),
        0,
        "not a path failure"
    );
    assert_eq!(c.refusals().0, 1);
    // The second create's answer (had it been sent) and later decisions change nothing.
    c.handle_command_result(t0, &cmds[1], Err(refusal(22, "invalid token")));
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert_eq!(c.poll_command(), None);
    assert_eq!(c.refusals().0, 1, "answers after the close are ignored");

    // The same for SET_FLAGS; and an ordinary refusal does not close.
    let mut c = established(t0, ConnTimers::default());
    let k = key(INIT_LOCAL, INIT_REMOTE);
    let flags = PmCommand::SetBackup {
        token: T,
        key: k,
        backup: true,
    };
    c.handle_command_result(t0, &flags, Err(refusal(22, "no subflow")));
    assert!(!c.is_closed());
    c.handle_command_result(t0, &flags, Err(refusal(22, "invalid token")));
    assert!(c.is_closed() && c.is_gone_in_kernel());
    // A CLOSED event is not "gone in the kernel".
    let mut c = established(t0, ConnTimers::default());
    c.handle_event(t0, &PmEvent::Closed { token: T });
    assert!(c.is_closed() && !c.is_gone_in_kernel());
}

#[test]
fn a_create_refused_as_not_joinable_waits_for_established_without_a_path_failure() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(
        t0,
        vec![
            open("10.0.2.1", INIT_REMOTE, false),
            open("10.0.3.1", INIT_REMOTE, false),
        ],
    );
    let first = c.poll_command().unwrap();
    c.handle_command_result(t0, &first, Err(refusal(107, "connect error: -107")));
    assert!(!c.is_closed(), "the kernel still has the connection");
    assert!(!c.is_established(), "joins wait for ESTABLISHED");
    assert_eq!(c.poll_command(), None, "the second create is dropped too");
    for i in [1, 2] {
        assert!(
            matches!(state_of(&c, i), SubflowState::Failed { errno: 107, .. }),
            "{:?}",
            c.subflows()
        );
    }
    assert!(matches!(state_of(&c, 0), SubflowState::Established { .. }));
    assert_eq!(c.failures(&path("10.0.2.1", INIT_REMOTE)), 0);
    assert_eq!(c.failures(&path("10.0.3.1", INIT_REMOTE)), 0);
    assert_eq!(
        c.poll_timeout().filter(|t| *t < t0 + ms(5000)),
        None,
        "no retry timer"
    );
    // Decisions before ESTABLISHED are ignored ...
    let t1 = t0 + ms(10);
    c.handle_decisions(t1, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert_eq!(c.poll_command(), None);
    // ... and work again once the kernel says ESTABLISHED (a connection that was not fully
    // established yet), at once: no backoff.
    let i = info(INIT_LOCAL, INIT_REMOTE, false);
    c.handle_event(t1, &PmEvent::Established(i));
    assert!(c.is_established());
    c.handle_decisions(t1, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert!(matches!(
        c.poll_command(),
        Some(PmCommand::CreateSubflow { .. })
    ));
}

#[test]
fn failed_join_reported_by_sub_closed_fails_the_request() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    drain(&mut c);
    let mut s = sub("10.0.2.1:51000", INIT_REMOTE, 1, 0, false);
    s.error = Some(111);
    s.reset_reason = Some(1);
    c.handle_event(t0 + ms(30), &PmEvent::SubClosed(s));
    let SubflowState::Failed { errno, message, .. } = state_of(&c, 1) else {
        panic!("expected failed");
    };
    assert_eq!(errno, 111);
    assert!(message.unwrap().contains("reset reason 1"));
    assert_eq!(c.failures(&path("10.0.2.1", INIT_REMOTE)), 1);
    assert_eq!(c.live_on(ip("10.0.2.1"), sa(INIT_REMOTE)), 0);
}

#[test]
fn short_lived_subflows_count_as_failures_and_stable_ones_reset() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let p = path("10.0.2.1", INIT_REMOTE);
    let mut port = 50000;
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    kernel_runs(&mut c, t0, &mut port);
    // Dies after 2s: a failure.
    let t1 = t0 + Duration::from_secs(2);
    let mut s = sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false);
    s.error = Some(104);
    c.handle_event(t1, &PmEvent::SubClosed(s));
    assert_eq!(
        state_of(&c, 1),
        SubflowState::Closed {
            at: t1,
            error: Some(104)
        }
    );
    assert_eq!(c.failures(&p), 1);

    // Re-opened after the backoff; once it lived stable_after, the path is forgiven.
    c.handle_decisions(t1, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert_eq!(c.poll_timeout(), Some(t1 + ms(500)));
    let t2 = t1 + ms(500);
    c.handle_timeout(t2);
    kernel_runs(&mut c, t2, &mut port);
    assert_eq!(c.poll_timeout(), Some(t2 + Duration::from_secs(10)));
    c.handle_timeout(t2 + Duration::from_secs(10));
    assert_eq!(c.failures(&p), 0);
    assert_eq!(c.poll_timeout(), None);

    // A long-lived subflow that closes is not a failure.
    c.handle_event(
        t2 + Duration::from_secs(60),
        &PmEvent::SubClosed(sub("10.0.2.1:50001", INIT_REMOTE, 1, 0, false)),
    );
    assert_eq!(c.failures(&p), 0);
}

#[test]
fn an_older_subflow_does_not_forgive_a_newer_failure() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let p = path("10.0.1.1", INIT_REMOTE);
    let mut port = 50000;
    c.handle_decisions(t0, vec![open("10.0.1.1", INIT_REMOTE, false)]);
    kernel_runs(&mut c, t0, &mut port);
    let t1 = t0 + Duration::from_secs(30);
    c.handle_event(
        t1,
        &PmEvent::SubClosed(sub("10.0.1.1:50000", INIT_REMOTE, 1, 0, false)),
    );
    assert_eq!(c.failures(&p), 0, "lived long");
    c.handle_decisions(t1, vec![open("10.0.1.1", INIT_REMOTE, false)]);
    kernel_runs(&mut c, t1, &mut port);
    c.handle_event(
        t1 + ms(10),
        &PmEvent::SubClosed(sub("10.0.1.1:50001", INIT_REMOTE, 1, 0, false)),
    );
    assert_eq!(c.failures(&p), 1);
    // The initial subflow on that path is old: it gives no timer and forgives nothing.
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(t1 + Duration::from_secs(60));
    assert_eq!(c.failures(&p), 1);
}

#[test]
fn establishing_un_gives_up_a_path() {
    let t0 = Instant::now();
    let timers = ConnTimers {
        max_retries: 1,
        ..ConnTimers::default()
    };
    let mut c = established(t0, timers);
    let p = path("10.0.2.1", INIT_REMOTE);
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    drain(&mut c);
    c.handle_timeout(t0 + Duration::from_secs(5));
    assert!(c.given_up(&p));
    // The slow SYN made it after all.
    c.handle_event(
        t0 + Duration::from_secs(6),
        &PmEvent::SubEstablished(sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false)),
    );
    assert!(!c.given_up(&p));
    assert_eq!(c.live_on(ip("10.0.2.1"), sa(INIT_REMOTE)), 1);
}

#[test]
fn close_marks_closing_once_and_closes_on_sub_closed_without_a_failure() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let mut port = 50000;
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    kernel_runs(&mut c, t0, &mut port);
    let k = key("10.0.2.1:50000", INIT_REMOTE);
    c.handle_decisions(
        t0,
        vec![d(Action::Close { key: k }), d(Action::Close { key: k })],
    );
    assert_eq!(
        drain(&mut c),
        vec![PmCommand::DestroySubflow { token: T, key: k }],
        "one destroy only"
    );
    assert!(c.subflows()[1].closing);
    assert!(!c.subflows()[1].is_live());
    c.handle_event(
        t0 + ms(1),
        &PmEvent::SubClosed(sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false)),
    );
    assert_eq!(
        state_of(&c, 1),
        SubflowState::Closed {
            at: t0 + ms(1),
            error: None
        }
    );
    assert!(!c.subflows()[1].closing);
    assert_eq!(c.failures(&path("10.0.2.1", INIT_REMOTE)), 0);
}

#[test]
fn destroy_answered_esrch_closes_the_entry() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let k = key(INIT_LOCAL, INIT_REMOTE);
    c.handle_decisions(t0, vec![d(Action::Close { key: k })]);
    let cmd = drain(&mut c).remove(0);
    c.handle_command_result(
        t0,
        &cmd,
        Err(KernelRefusal {
            errno: 3,
            message: Some("subflow not found".into()),
        }),
    );
    assert!(matches!(state_of(&c, 0), SubflowState::Closed { .. }));
    // A late SUB_CLOSED for it fails nothing else.
    c.handle_event(
        t0,
        &PmEvent::SubClosed(sub(INIT_LOCAL, INIT_REMOTE, 0, 0, false)),
    );
    assert_eq!(c.subflows().len(), 1);
}

#[test]
fn set_backup_is_sent_once_per_change() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let k = key(INIT_LOCAL, INIT_REMOTE);
    let wish = d(Action::SetBackup {
        key: k,
        backup: true,
    });
    c.handle_decisions(t0, vec![wish.clone(), wish.clone()]);
    let cmds = drain(&mut c);
    assert_eq!(
        cmds,
        vec![PmCommand::SetBackup {
            token: T,
            key: k,
            backup: true
        }]
    );
    // A refusal is recorded, and the same wish is not re-sent.
    c.handle_command_result(
        t0,
        &cmds[0],
        Err(KernelRefusal {
            errno: 22,
            message: None,
        }),
    );
    c.handle_decisions(t0, vec![wish]);
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.refusals().0, 1);
    c.handle_decisions(
        t0,
        vec![d(Action::SetBackup {
            key: k,
            backup: false,
        })],
    );
    assert_eq!(drain(&mut c).len(), 1);
}

#[test]
fn set_backup_ack_confirms_the_flag_without_sub_priority() {
    // The kernel sends SUB_PRIORITY only to the peer: the ACK must update our view.
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let k = key(INIT_LOCAL, INIT_REMOTE);
    c.handle_decisions(
        t0,
        vec![d(Action::SetBackup {
            key: k,
            backup: true,
        })],
    );
    let cmds = drain(&mut c);
    assert_eq!(cmds.len(), 1);
    let sf = |c: &Connection| {
        c.subflows()
            .iter()
            .find(|s| s.key() == Some(k))
            .map(|s| s.backup)
    };
    assert_eq!(sf(&c), Some(false), "not backup before the kernel said yes");
    c.handle_command_result(t0, &cmds[0], Ok(()));
    assert_eq!(sf(&c), Some(true));
    assert!(drain(&mut c).is_empty());
}

#[test]
fn announce_and_remove_use_the_address_id() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    drain(&mut c);
    let announce = |a: &str| {
        d(Action::Announce {
            addr: ip(a),
            port: None,
        })
    };
    c.handle_decisions(
        t0,
        vec![
            announce("10.0.3.1"),
            announce("10.0.2.1"),
            announce("10.0.2.1"),
        ],
    );
    // A new address takes the highest free id (clear of the kernel's bottom-up implicit ids);
    // an address the connection already uses keeps its id.
    assert_eq!(
        drain(&mut c),
        vec![
            PmCommand::Announce {
                token: T,
                id: 255,
                addr: ip("10.0.3.1"),
                port: None
            },
            PmCommand::Announce {
                token: T,
                id: 1,
                addr: ip("10.0.2.1"),
                port: None
            },
        ]
    );
    c.handle_decisions(
        t0,
        vec![
            d(Action::Remove {
                addr: ip("10.0.3.1"),
            }),
            d(Action::Remove {
                addr: ip("10.0.3.1"),
            }),
        ],
    );
    assert_eq!(drain(&mut c), vec![PmCommand::Remove { token: T, id: 255 }]);
    // A refused announce can be tried again.
    let cmd = PmCommand::Announce {
        token: T,
        id: 1,
        addr: ip("10.0.2.1"),
        port: None,
    };
    c.handle_command_result(
        t0,
        &cmd,
        Err(KernelRefusal {
            errno: 22,
            message: None,
        }),
    );
    c.handle_decisions(t0, vec![announce("10.0.2.1")]);
    assert_eq!(drain(&mut c), vec![cmd]);
    assert_eq!(
        c.announced_locals().collect::<Vec<_>>(),
        vec![(ip("10.0.2.1"), 1)]
    );
}

/// A server-side connection accepted on 10.0.1.1:443 (CREATED and ESTABLISHED at once).
fn accepted(now: Instant, local: &str) -> Connection {
    let mut c = Connection::new(T, ConnTimers::default());
    let i = info(local, "10.0.9.1:50000", true);
    c.handle_event(now, &PmEvent::Created(i));
    c.handle_event(now, &PmEvent::Established(i));
    c
}

fn announce_cmd(id: u8, addr: &str) -> PmCommand {
    PmCommand::Announce {
        token: T,
        id,
        addr: ip(addr),
        port: None,
    }
}

#[test]
fn announce_ids_come_from_the_top_and_respect_the_kernels_ids() {
    let t0 = Instant::now();
    let mut c = accepted(t0, "10.0.1.1:443");
    let announce = |a: &str| {
        d(Action::Announce {
            addr: ip(a),
            port: None,
        })
    };
    // The peer joined 10.0.2.1 before we announced it: the kernel gave that join the lowest
    // free id (an implicit one), 1, and binds it to the address.
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub("10.0.2.1:443", "10.0.9.1:50001", 1, 0, false)),
    );
    // And one at 255 (another daemon's, before a restart): not ours to reuse for another
    // address.
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub("10.0.7.1:443", "10.0.9.1:50002", 255, 0, false)),
    );
    c.handle_decisions(
        t0,
        vec![
            announce("10.0.2.1"),
            announce("10.0.3.1"),
            announce("10.0.7.1"),
        ],
    );
    assert_eq!(
        drain(&mut c),
        vec![
            announce_cmd(1, "10.0.2.1"),
            announce_cmd(254, "10.0.3.1"),
            announce_cmd(255, "10.0.7.1"),
        ]
    );
    // The address the connection arrived on is id 0, which cannot be announced.
    let ignored = c.ignored();
    c.handle_decisions(t0, vec![announce("10.0.1.1")]);
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.ignored(), ignored + 1);
}

#[test]
fn an_address_keeps_its_id_across_remove_and_reannounce_and_in_mapped_form() {
    let t0 = Instant::now();
    let mut c = accepted(t0, "[::ffff:10.0.1.1]:443");
    let announce = |a: &str| {
        d(Action::Announce {
            addr: ip(a),
            port: None,
        })
    };
    let remove = |a: &str| d(Action::Remove { addr: ip(a) });
    c.handle_decisions(t0, vec![announce("10.0.2.1"), announce("10.0.3.1")]);
    assert_eq!(
        drain(&mut c),
        vec![announce_cmd(255, "10.0.2.1"), announce_cmd(254, "10.0.3.1")]
    );
    // The join is reported v4-mapped (dual-stack listener): same address, same id.
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub(
            "[::ffff:10.0.2.1]:443",
            "[::ffff:10.0.9.1]:50001",
            255,
            0,
            false,
        )),
    );
    assert_eq!(c.local_id(ip("10.0.2.1")), Some(255));
    assert_eq!(c.local_id(ip("::ffff:10.0.2.1")), Some(255));
    // The initial address in its mapped form is still the initial address.
    c.handle_decisions(t0, vec![announce("::ffff:10.0.1.1")]);
    assert!(drain(&mut c).is_empty());
    c.handle_decisions(t0, vec![remove("::ffff:10.0.2.1"), remove("10.0.2.1")]);
    assert_eq!(drain(&mut c), vec![PmCommand::Remove { token: T, id: 255 }]);
    // A new address after the REMOVE does not take the freed id: it stays 10.0.2.1's.
    c.handle_decisions(t0, vec![announce("10.0.4.1"), announce("10.0.2.1")]);
    assert_eq!(
        drain(&mut c),
        vec![announce_cmd(253, "10.0.4.1"), announce_cmd(255, "10.0.2.1")]
    );
}

#[test]
fn announcement_states_follow_the_join_the_pace_and_the_kernel() {
    let t0 = Instant::now();
    let mut c = accepted(t0, "10.0.1.1:443");
    let pace = c.timers().announce_pace;
    let announce = |a: &str| {
        d(Action::Announce {
            addr: ip(a),
            port: None,
        })
    };
    let state = |c: &Connection, a: &str| c.announcement(ip(a)).map(|x| x.state.clone());
    c.handle_decisions(t0, vec![announce("10.0.2.1"), announce("10.0.3.1")]);
    for cmd in drain(&mut c) {
        c.handle_command_result(t0, &cmd, Ok(()));
    }
    assert_eq!(
        state(&c, "10.0.2.1"),
        Some(mptcp_pmd_policies::AnnounceState::Sent { at: t0 })
    );
    assert_eq!(c.poll_timeout(), Some(t0 + pace));
    let t1 = t0 + ms(1);
    c.handle_event(
        t1,
        &PmEvent::SubEstablished(sub("10.0.2.1:443", "10.0.9.1:50001", 255, 0, false)),
    );
    assert_eq!(
        state(&c, "10.0.2.1"),
        Some(mptcp_pmd_policies::AnnounceState::Joined { at: t1 })
    );
    c.handle_timeout(t0 + pace);
    assert_eq!(
        state(&c, "10.0.3.1"),
        Some(mptcp_pmd_policies::AnnounceState::Unjoined { at: t0 })
    );
    assert_eq!(c.poll_timeout(), None);
    // A refusal is recorded with the kernel's words; an acknowledged re-send resets the count.
    let cmd = announce_cmd(254, "10.0.3.1");
    c.handle_command_result(
        t1,
        &cmd,
        Err(KernelRefusal {
            errno: -22,
            message: Some("did not match address and id".into()),
        }),
    );
    let a = c.announcement(ip("10.0.3.1")).unwrap();
    assert_eq!(a.refusals, 1);
    assert_eq!(
        a.state,
        mptcp_pmd_policies::AnnounceState::Refused {
            at: t1,
            errno: 22,
            message: Some("did not match address and id".into())
        }
    );
    assert_eq!(c.refusals().0, 1);
    c.handle_decisions(t1, vec![announce("10.0.3.1")]);
    assert_eq!(drain(&mut c), vec![cmd.clone()]);
    c.handle_command_result(t1, &cmd, Ok(()));
    assert_eq!(c.announcement(ip("10.0.3.1")).unwrap().refusals, 0);
    assert_eq!(
        c.announced_locals().collect::<Vec<_>>(),
        vec![(ip("10.0.2.1"), 255), (ip("10.0.3.1"), 254)]
    );
}

#[test]
fn announced_and_removed_update_the_remotes() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_event(
        t0,
        &PmEvent::Announced {
            token: T,
            rem_id: 5,
            addr: ip("10.0.8.1"),
            port: None,
        },
    );
    c.handle_event(
        t0,
        &PmEvent::Announced {
            token: T,
            rem_id: 2,
            addr: ip("10.0.7.1"),
            port: Some(8080),
        },
    );
    assert_eq!(
        c.remotes(),
        vec![
            (0, sa(INIT_REMOTE)),
            (2, sa("10.0.7.1:8080")),
            (5, sa("10.0.8.1:80"))
        ]
    );
    // A create towards 5 waiting in backoff is dropped when 5 is removed.
    let p = path("10.0.2.1", "10.0.8.1:80");
    c.handle_decisions(t0, vec![open("10.0.2.1", "10.0.8.1:80", false)]);
    let cmd = drain(&mut c).remove(0);
    c.handle_command_result(
        t0,
        &cmd,
        Err(KernelRefusal {
            errno: 113,
            message: None,
        }),
    );
    assert_eq!(c.failures(&p), 1);
    c.handle_decisions(t0, vec![open("10.0.2.1", "10.0.8.1:80", false)]);
    assert_eq!(c.live_on(ip("10.0.2.1"), sa("10.0.8.1:80")), 1);
    c.handle_event(
        t0 + ms(1),
        &PmEvent::Removed {
            token: T,
            rem_id: 5,
        },
    );
    assert_eq!(
        c.remotes(),
        vec![(0, sa(INIT_REMOTE)), (2, sa("10.0.7.1:8080"))]
    );
    assert_eq!(c.live_on(ip("10.0.2.1"), sa("10.0.8.1:80")), 0);
    c.handle_event(
        t0,
        &PmEvent::Removed {
            token: T,
            rem_id: 0,
        },
    );
    assert_eq!(c.remotes(), vec![(2, sa("10.0.7.1:8080"))]);
}

#[test]
fn unmatched_sub_established_is_a_new_entry_and_teaches_the_id() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub("10.0.4.1:443", "10.0.9.9:5000", 7, 3, false)),
    );
    assert_eq!(c.subflows().len(), 2);
    assert!(c.subflows()[1].is_established());
    assert_eq!(c.local_id(ip("10.0.4.1")), Some(7));
    c.handle_decisions(t0, vec![open("10.0.4.1", INIT_REMOTE, false)]);
    assert!(matches!(
        drain(&mut c).as_slice(),
        [PmCommand::CreateSubflow { local_id: 7, .. }]
    ));
}

#[test]
fn adopt_rebuilds_an_established_connection() {
    let t0 = Instant::now();
    let sample = SubflowSample {
        srtt_us: 1234,
        fully_established: true,
        ..SubflowSample::default()
    };
    let mut c = Connection::adopt(
        t0,
        T,
        sa(INIT_LOCAL),
        sa(INIT_REMOTE),
        vec![
            KernelSubflow {
                key: key(INIT_LOCAL, INIT_REMOTE),
                loc_id: 0,
                rem_id: 0,
                backup: false,
                sample,
            },
            KernelSubflow {
                key: key("10.0.2.1:50000", "10.0.8.1:80"),
                loc_id: 4,
                rem_id: 2,
                backup: true,
                sample,
            },
        ],
    )
    .with_timers(ConnTimers {
        keep_closed: 1,
        ..ConnTimers::default()
    });
    assert!(c.is_established());
    assert!(!c.is_server_side());
    assert_eq!(c.timers().keep_closed, 1);
    assert_eq!(c.subflows().len(), 2);
    assert!(c.subflows()[0].initial);
    assert!(!c.subflows()[1].initial);
    assert!(c.subflows()[1].backup);
    assert_eq!(c.subflows()[1].sample.map(|s| s.srtt_us), Some(1234));
    assert_eq!(
        c.remotes(),
        vec![(0, sa(INIT_REMOTE)), (2, sa("10.0.8.1:80"))]
    );
    assert_eq!(c.local_id(ip("10.0.2.1")), Some(4));
    c.handle_decisions(t0, vec![open("10.0.3.1", INIT_REMOTE, false)]);
    // Id 4 is taken: the next fresh one is 1.
    assert!(matches!(
        drain(&mut c).as_slice(),
        [PmCommand::CreateSubflow { local_id: 1, .. }]
    ));
    let server = Connection::adopt(t0, T, sa(INIT_LOCAL), sa(INIT_REMOTE), Vec::new())
        .with_server_side(true);
    assert!(server.is_server_side());
}

/// Issue 15 item 7: a restarted server re-adopts a connection whose peer joined an address
/// the old daemon announced. The join shows the announcement (under the kernel's id), so the
/// address is not announced again; a join to the initial address is no announcement.
#[test]
fn adopting_a_server_connection_learns_its_joined_announcements() {
    let t0 = Instant::now();
    let sub = |local: &str, remote: &str, loc_id: u8| KernelSubflow {
        key: key(local, remote),
        loc_id,
        rem_id: 0,
        backup: false,
        sample: SubflowSample::default(),
    };
    let subflows = vec![
        sub(INIT_LOCAL, INIT_REMOTE, 0),
        // The peer joined our announced 10.0.2.1 (id 255) ...
        sub("10.0.2.1:40000", "10.0.9.1:50001", 255),
        // ... and our initial address from another of its addresses.
        sub(INIT_LOCAL, "10.0.9.2:50002", 0),
    ];
    let c = Connection::adopt(t0, T, sa(INIT_LOCAL), sa(INIT_REMOTE), subflows.clone())
        .with_server_side(true);
    let a: Vec<_> = c
        .announcements()
        .iter()
        .map(|a| (a.addr, a.id, a.state.clone()))
        .collect();
    assert_eq!(
        a,
        vec![(ip("10.0.2.1"), 255, AnnounceState::Joined { at: t0 })]
    );
    assert_eq!(c.local_id(ip("10.0.2.1")), Some(255));
    let mut c = c;
    c.handle_decisions(
        t0,
        vec![d(Action::Announce {
            addr: ip("10.0.2.1"),
            port: None,
        })],
    );
    assert!(drain(&mut c).is_empty(), "active: not announced again");
    // A client-side connection learns ids, not announcements.
    let client =
        Connection::adopt(t0, T, sa(INIT_LOCAL), sa(INIT_REMOTE), subflows).with_server_side(false);
    assert!(client.announcements().is_empty());
}

#[test]
fn samples_land_on_established_subflows_only() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let s = SubflowSample {
        srtt_us: 777,
        ..SubflowSample::default()
    };
    let before = c.ignored();
    c.handle_samples(
        t0,
        &[
            (key(INIT_LOCAL, INIT_REMOTE), s),
            (key("10.0.5.5:1", INIT_REMOTE), s),
        ],
    );
    assert_eq!(c.subflows()[0].sample.map(|s| s.srtt_us), Some(777));
    assert_eq!(c.ignored(), before + 1);
}

#[test]
fn dead_entries_are_bounded() {
    let t0 = Instant::now();
    let timers = ConnTimers {
        keep_closed: 3,
        ..ConnTimers::default()
    };
    let mut c = established(t0, timers);
    let mut port = 50000;
    for i in 0..10u64 {
        let now = t0 + Duration::from_secs(100 * i);
        c.handle_decisions(now, vec![open("10.0.2.1", INIT_REMOTE, false)]);
        kernel_runs(&mut c, now, &mut port);
        let k = c
            .subflows()
            .iter()
            .rev()
            .find(|s| s.is_live())
            .and_then(|s| s.key())
            .unwrap();
        c.handle_decisions(now, vec![d(Action::Close { key: k })]);
        kernel_runs(&mut c, now + ms(1), &mut port);
    }
    let dead: Vec<_> = c.subflows().iter().filter(|s| s.is_dead()).collect();
    assert_eq!(dead.len(), 3);
    // The newest three stay.
    let ports: Vec<_> = dead.iter().map(|s| s.local_port.unwrap()).collect();
    assert_eq!(ports, vec![50007, 50008, 50009]);
    assert!(c.subflows()[0].initial, "live entries are never dropped");
}

#[test]
fn closed_connection_sends_and_waits_for_nothing() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(
        t0,
        vec![
            open("10.0.2.1", INIT_REMOTE, false),
            open("10.0.3.1", INIT_REMOTE, false),
        ],
    );
    assert!(c.poll_timeout().is_some());
    c.handle_event(t0, &PmEvent::Closed { token: T });
    assert!(c.is_closed());
    assert_eq!(c.poll_command(), None, "queued commands are dropped");
    assert_eq!(c.poll_timeout(), None);
    assert!(c.subflows().iter().all(|s| s.is_dead()));
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    c.handle_timeout(t0 + Duration::from_secs(60));
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false)),
    );
    assert_eq!(c.poll_command(), None);
    assert_eq!(c.poll_timeout(), None);
    assert!(c.subflows().iter().all(|s| !s.is_live()));
}

/// A subflow as sock_diag lists it, fully established (ss: `e`).
fn kernel_sub(local: &str, remote: &str, loc_id: u8) -> KernelSubflow {
    KernelSubflow {
        key: key(local, remote),
        loc_id,
        rem_id: 0,
        backup: false,
        sample: SubflowSample {
            fully_established: true,
            ..SubflowSample::default()
        },
    }
}

/// Issue 15 item 5: a connection caught by a resync between its TCP handshake and full MPTCP
/// establishment (a client that has not sent data yet: ss `Mmc`) was taken as established, and
/// its join was refused with ENOTCONN.
#[test]
fn adopt_and_reconcile_wait_for_full_establishment() {
    let t0 = Instant::now();
    let mut early = kernel_sub(INIT_LOCAL, INIT_REMOTE, 0);
    early.sample.fully_established = false;
    // Adopted: not established, so no join is asked for ...
    let mut c = Connection::adopt(t0, T, sa(INIT_LOCAL), sa(INIT_REMOTE), vec![early]);
    assert!(!c.is_established());
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert!(drain(&mut c).is_empty());
    // ... until its ESTABLISHED event.
    c.handle_event(
        t0,
        &PmEvent::Established(info(INIT_LOCAL, INIT_REMOTE, false)),
    );
    assert!(c.is_established());
    // No subflow listed tells nothing: adopted as established (as before).
    assert!(Connection::adopt(t0, T, sa(INIT_LOCAL), sa(INIT_REMOTE), vec![]).is_established());

    // Reconciled: the same.
    let mut c = Connection::new(T, ConnTimers::default());
    c.handle_event(t0, &PmEvent::Created(info(INIT_LOCAL, INIT_REMOTE, false)));
    c.reconcile(t0, t0, sa(INIT_LOCAL), sa(INIT_REMOTE), &[early]);
    assert!(!c.is_established());
    c.reconcile(
        t0,
        t0,
        sa(INIT_LOCAL),
        sa(INIT_REMOTE),
        &[kernel_sub(INIT_LOCAL, INIT_REMOTE, 0)],
    );
    assert!(c.is_established());

    // A completed join proves full establishment when the ESTABLISHED event was lost.
    let mut c = Connection::new(T, ConnTimers::default());
    c.handle_event(t0, &PmEvent::Created(info(INIT_LOCAL, INIT_REMOTE, false)));
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false)),
    );
    assert!(c.is_established());
}

#[test]
fn reconcile_establishes_a_connection_whose_established_event_was_lost() {
    let t0 = Instant::now();
    let mut c = Connection::new(T, ConnTimers::default());
    c.handle_event(t0, &PmEvent::Created(info(INIT_LOCAL, INIT_REMOTE, false)));
    assert!(!c.is_established());
    let t1 = t0 + ms(100);
    let changed = c.reconcile(
        t1,
        t1,
        sa(INIT_LOCAL),
        sa(INIT_REMOTE),
        &[kernel_sub(INIT_LOCAL, INIT_REMOTE, 0)],
    );
    assert!(changed);
    assert!(c.is_established());
    assert_eq!(
        c.subflows().iter().filter(|s| s.is_established()).count(),
        1,
        "no duplicate initial subflow"
    );
    // Now joins are possible.
    c.handle_decisions(t1, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert_eq!(drain(&mut c).len(), 1);
}

#[test]
fn reconcile_answers_a_request_whose_sub_established_was_lost() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    let cmd = drain(&mut c).remove(0);
    c.handle_command_result(t0, &cmd, Ok(()));
    let t1 = t0 + ms(50);
    let kernel = [
        kernel_sub(INIT_LOCAL, INIT_REMOTE, 0),
        kernel_sub("10.0.2.1:50000", INIT_REMOTE, 1),
    ];
    assert!(c.reconcile(t1, t1, sa(INIT_LOCAL), sa(INIT_REMOTE), &kernel));
    assert_eq!(c.subflows().len(), 2, "matched the request, no new entry");
    assert!(c.subflows().iter().all(|s| s.is_established()));
    assert_eq!(
        c.poll_timeout(),
        None,
        "no request left to time out (and so no duplicate retry)"
    );
    // A second identical snapshot changes nothing but the samples.
    c.reconcile(t1, t1, sa(INIT_LOCAL), sa(INIT_REMOTE), &kernel);
    assert_eq!(c.subflows().len(), 2);
    assert!(drain(&mut c).is_empty());
}

#[test]
fn reconcile_closes_subflows_the_kernel_no_longer_lists_but_not_newer_ones() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_event(
        t0,
        &PmEvent::SubEstablished(sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false)),
    );
    let taken_at = t0 + ms(100);
    // Established after the snapshot was taken: the snapshot cannot know it.
    c.handle_event(
        taken_at + ms(1),
        &PmEvent::SubEstablished(sub("10.0.3.1:50001", INIT_REMOTE, 2, 0, false)),
    );
    let now = taken_at + ms(5);
    assert!(c.reconcile(
        now,
        taken_at,
        sa(INIT_LOCAL),
        sa(INIT_REMOTE),
        &[kernel_sub(INIT_LOCAL, INIT_REMOTE, 0)]
    ));
    let state = |k: &str| {
        c.subflows()
            .iter()
            .find(|s| s.key() == Some(key(k, INIT_REMOTE)))
            .map(|s| s.is_established())
    };
    assert_eq!(
        state("10.0.2.1:50000"),
        Some(false),
        "lost SUB_CLOSED applied"
    );
    assert_eq!(
        state("10.0.3.1:50001"),
        Some(true),
        "newer than the snapshot: kept"
    );
    assert_eq!(state(INIT_LOCAL), Some(true));
}

#[test]
fn an_unanswered_create_stays_requested_until_its_timeout() {
    // ETIMEDOUT from the command path means "no answer in time": the kernel may have applied
    // it, so no retry yet (it could open the path twice); the request timeout decides.
    let t0 = Instant::now();
    let timers = ConnTimers::default();
    let mut c = established(t0, timers);
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    let cmd = drain(&mut c).remove(0);
    c.handle_command_result(
        t0,
        &cmd,
        Err(KernelRefusal {
            errno: 110,
            message: Some("no reply".into()),
        }),
    );
    assert!(matches!(
        c.subflows()[1].state,
        SubflowState::Requested { .. }
    ));
    assert!(drain(&mut c).is_empty());
    // The late SUB_ESTABLISHED is matched to it: one subflow, no duplicate.
    c.handle_event(
        t0 + ms(10),
        &PmEvent::SubEstablished(sub("10.0.2.1:50000", INIT_REMOTE, 1, 0, false)),
    );
    assert_eq!(c.subflows().len(), 2);
    assert!(c.subflows()[1].is_established());
    // Without an answer at all the request times out and is retried as usual.
    let mut c = established(t0, timers);
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    let cmd = drain(&mut c).remove(0);
    c.handle_command_result(
        t0,
        &cmd,
        Err(KernelRefusal {
            errno: 110,
            message: None,
        }),
    );
    assert_eq!(c.poll_timeout(), Some(t0 + timers.request_timeout));
}

// ---- probes: opens with their own timeout ----

fn syn_sent() -> SubflowSample {
    SubflowSample {
        tcp_state: mptcp_pmd_policies::model::TCP_SYN_SENT,
        ..SubflowSample::default()
    }
}

#[test]
fn a_probe_turns_stale_at_its_own_timeout_and_is_left_to_the_kernel() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    let p = path("10.0.2.1", INIT_REMOTE);
    c.handle_decisions(t0, vec![probe("10.0.2.1", INIT_REMOTE, ms(5000))]);
    let cmds = drain(&mut c);
    assert!(matches!(
        cmds.as_slice(),
        [PmCommand::CreateSubflow { backup: true, .. }]
    ));
    assert_eq!(c.subflows()[1].timeout, Some(ms(5000)));
    assert!(c.subflows()[1].is_probe_in_flight());
    // Its own deadline, not the connection's 5 s request timeout (equal here by chance).
    assert_eq!(c.poll_timeout(), Some(t0 + ms(5000)));
    c.handle_timeout(t0 + ms(4999));
    assert!(c.subflows()[1].is_probe_in_flight());
    c.handle_timeout(t0 + ms(5000));
    let sf = &c.subflows()[1];
    // Still the kernel's (its SYN goes on backing off): requested, stale, no longer live,
    // never destroyed or retried by the state machine, and no failure of its path.
    assert!(matches!(sf.state, SubflowState::Requested { .. }));
    assert!(sf.stale && sf.is_lingering_probe() && !sf.is_probe_in_flight());
    assert!(!sf.is_live());
    assert_eq!(c.live_on(ip("10.0.2.1"), sa(INIT_REMOTE)), 0);
    assert_eq!(c.failures(&p), 0);
    assert_eq!(c.poll_timeout(), None);
    assert!(drain(&mut c).is_empty());
    // The next probe goes out at once.
    c.handle_decisions(
        t0 + ms(5000),
        vec![probe("10.0.2.1", INIT_REMOTE, ms(5000))],
    );
    assert_eq!(drain(&mut c).len(), 1);
    assert!(c.subflows()[2].is_probe_in_flight());
}

#[test]
fn a_probe_whose_syn_backs_off_is_stale_at_once() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![probe("10.0.2.1", INIT_REMOTE, ms(6000))]);
    drain(&mut c);
    // Linux 6.18 (kernel_probe.rs): the SYN is sent again every second while
    // `tcpi_backoff` is 0, then at 7 s, 11 s...: the fifth retransmission shows backoff 1.
    let k = key("10.0.2.1:50001", INIT_REMOTE);
    let syn = |retransmits: u8, backoff: u8| SubflowSample {
        retransmits,
        backoff,
        ..syn_sent()
    };
    c.handle_samples(t0 + ms(4100), &[(k, syn(4, 0))]);
    assert!(c.subflows()[1].is_probe_in_flight());
    assert_eq!(c.subflows()[1].key(), Some(k), "its port, from the sample");
    assert_eq!(c.subflows()[1].sample.map(|s| s.retransmits), Some(4));
    c.handle_samples(t0 + ms(5100), &[(k, syn(5, 1))]);
    assert!(c.subflows()[1].is_lingering_probe());
    assert_eq!(c.poll_timeout(), None);
    // An ordinary request is never stale, whatever its SYN does.
    c.handle_decisions(t0, vec![open("10.0.3.1", INIT_REMOTE, false)]);
    drain(&mut c);
    c.handle_samples(
        t0 + ms(5200),
        &[(key("10.0.3.1:50002", INIT_REMOTE), syn(5, 1))],
    );
    assert!(!c.subflows()[2].stale && c.subflows()[2].is_live());
}

#[test]
fn a_stale_probe_that_joins_later_is_adopted_with_its_request_intent() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![probe("10.0.2.1", INIT_REMOTE, ms(5000))]);
    drain(&mut c);
    c.handle_timeout(t0 + ms(5000));
    assert!(c.subflows()[1].stale);
    // Its SYN at 7 s is answered (the path healed): the same entry establishes, backup as it
    // was requested, although the event says backup=0 (the peer's flag); no SET_FLAGS.
    c.handle_event(
        t0 + ms(7000),
        &PmEvent::SubEstablished(sub("10.0.2.1:50123", INIT_REMOTE, 1, 0, false)),
    );
    let sf = &c.subflows()[1];
    assert_eq!(
        sf.state,
        SubflowState::Established {
            since: t0 + ms(7000)
        }
    );
    assert!(sf.want_backup && sf.backup && !sf.stale && sf.is_live());
    assert_eq!(sf.reason.as_ref().map(|r| r.code), Some("test"));
    assert_eq!(c.subflows().len(), 2, "no unknown subflow learnt");
    assert_eq!(drain(&mut c), vec![]);
}

#[test]
fn a_probes_syn_sent_sample_is_not_kept_once_it_establishes() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![probe("10.0.2.1", INIT_REMOTE, ms(5000))]);
    drain(&mut c);
    let k = key("10.0.2.1:50001", INIT_REMOTE);
    // A SYN_SENT socket's tcp_info: no ACK ever (last_ack_recv counts from boot), one
    // segment outstanding. Kept on the request while it is one...
    let syn = SubflowSample {
        unacked: 1,
        last_ack_recv_ms: 14_076_000,
        rttvar_us: 250_000,
        ..syn_sent()
    };
    c.handle_samples(t0 + ms(20), &[(k, syn)]);
    assert_eq!(c.subflows()[1].sample, Some(syn));
    // ...never taken for the established subflow's (a failure detector would read it as a
    // silence of hours).
    c.handle_event(
        t0 + ms(30),
        &PmEvent::SubEstablished(sub("10.0.2.1:50001", INIT_REMOTE, 1, 0, false)),
    );
    assert_eq!(c.subflows()[1].sample, None);
}

#[test]
fn a_probe_ignores_the_paths_backoff_and_given_up_state_and_its_failures_do_not_count() {
    let t0 = Instant::now();
    let timers = ConnTimers {
        max_retries: 2,
        ..ConnTimers::default()
    };
    let mut c = established(t0, timers);
    let p = path("10.0.2.1", INIT_REMOTE);
    // Two refused ordinary creates: the path is given up.
    for n in 0..2 {
        // A second apart: past the first failure's backoff.
        let now = t0 + Duration::from_secs(n);
        c.handle_decisions(now, vec![open("10.0.2.1", INIT_REMOTE, false)]);
        let cmds = drain(&mut c);
        assert_eq!(cmds.len(), 1);
        for cmd in cmds {
            c.handle_command_result(
                now,
                &cmd,
                Err(KernelRefusal {
                    errno: 101,
                    message: None,
                }),
            );
        }
    }
    assert!(c.given_up(&p));
    // Inside the last failure's backoff (1 s after it), too.
    let t0 = t0 + ms(1001);
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert!(drain(&mut c).is_empty(), "an ordinary open is refused");
    // A probe still goes out; refused, it counts nothing.
    c.handle_decisions(t0, vec![probe("10.0.2.1", INIT_REMOTE, ms(100))]);
    let cmds = drain(&mut c);
    assert_eq!(cmds.len(), 1);
    c.handle_command_result(
        t0,
        &cmds[0],
        Err(KernelRefusal {
            errno: 101,
            message: None,
        }),
    );
    assert_eq!(c.failures(&p), 2);
    // A probe whose join the kernel reports failed (SUB_CLOSED with its port) neither.
    c.handle_decisions(t0, vec![probe("10.0.2.1", INIT_REMOTE, ms(100))]);
    assert_eq!(drain(&mut c).len(), 1);
    c.handle_event(
        t0 + ms(5),
        &PmEvent::SubClosed(sub("10.0.2.1:50123", INIT_REMOTE, 1, 0, true)),
    );
    assert!(matches!(
        c.subflows().last().unwrap().state,
        SubflowState::Failed { .. }
    ));
    assert_eq!(c.failures(&p), 2);
    // One that joins makes the path usable again, as any join does.
    c.handle_decisions(t0 + ms(10), vec![probe("10.0.2.1", INIT_REMOTE, ms(100))]);
    assert_eq!(drain(&mut c).len(), 1);
    c.handle_event(
        t0 + ms(12),
        &PmEvent::SubEstablished(sub("10.0.2.1:50124", INIT_REMOTE, 1, 0, true)),
    );
    assert!(c.subflows().last().unwrap().is_established());
    assert!(!c.given_up(&p));
}

#[test]
fn a_probe_closed_by_the_policy_is_destroyed_without_failing_its_path() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![probe("10.0.2.1", INIT_REMOTE, ms(5000))]);
    assert_eq!(drain(&mut c).len(), 1);
    // sock_diag lists the join's socket in SYN_SENT: the request learns its port. An
    // established socket the connection does not know teaches nothing.
    let before = c.ignored();
    c.handle_samples(
        t0 + ms(20),
        &[
            (key("10.0.2.1:50001", INIT_REMOTE), syn_sent()),
            (key("10.0.2.1:50002", INIT_REMOTE), SubflowSample::default()),
        ],
    );
    assert_eq!(c.ignored(), before + 1);
    let k = key("10.0.2.1:50001", INIT_REMOTE);
    assert_eq!(c.subflows()[1].key(), Some(k));
    assert!(matches!(state_of(&c, 1), SubflowState::Requested { .. }));
    c.handle_decisions(t0 + ms(30), vec![d(Action::Close { key: k })]);
    assert_eq!(
        drain(&mut c),
        vec![PmCommand::DestroySubflow { token: T, key: k }]
    );
    let SubflowState::Failed { errno, message, .. } = state_of(&c, 1) else {
        panic!("expected the probe failed: {:?}", state_of(&c, 1));
    };
    assert_eq!(errno, 125);
    assert_eq!(
        message.as_deref(),
        Some("probe closed before it established")
    );
    assert_eq!(
        c.subflows()[1].reason.as_ref().map(|r| r.code),
        Some("test")
    );
    assert_eq!(c.failures(&path("10.0.2.1", INIT_REMOTE)), 0);
    // The kernel reports a SYN_SENT socket's close with remote port 0: nothing else fails,
    // and a newer probe on the path is left alone.
    c.handle_decisions(t0 + ms(200), vec![probe("10.0.2.1", INIT_REMOTE, ms(5000))]);
    assert_eq!(drain(&mut c).len(), 1);
    c.handle_event(
        t0 + ms(201),
        &PmEvent::SubClosed(sub("10.0.2.1:50001", "10.0.9.1:0", 1, 0, true)),
    );
    assert!(matches!(state_of(&c, 2), SubflowState::Requested { .. }));
    // Closing a probe whose port is unknown, or one twice, does nothing.
    let before = c.ignored();
    c.handle_decisions(t0 + ms(210), vec![d(Action::Close { key: k })]);
    assert_eq!(c.ignored(), before + 1);
    assert_eq!(drain(&mut c), vec![]);
}

#[test]
fn a_probe_whose_syn_gives_up_is_failed_by_its_local_port() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![probe("10.0.2.1", INIT_REMOTE, ms(5000))]);
    c.handle_decisions(t0 + ms(200), vec![probe("10.0.2.1", INIT_REMOTE, ms(5000))]);
    drain(&mut c);
    c.handle_samples(
        t0 + ms(20),
        &[(key("10.0.2.1:50001", INIT_REMOTE), syn_sent())],
    );
    c.handle_samples(
        t0 + ms(220),
        &[(key("10.0.2.1:50002", INIT_REMOTE), syn_sent())],
    );
    // The kernel gave up on the second one's SYNs (remote port 0 in the event).
    c.handle_event(
        t0 + ms(300),
        &PmEvent::SubClosed(sub("10.0.2.1:50002", "10.0.9.1:0", 1, 0, true)),
    );
    assert!(matches!(state_of(&c, 1), SubflowState::Requested { .. }));
    assert!(matches!(state_of(&c, 2), SubflowState::Failed { .. }));
    assert_eq!(c.failures(&path("10.0.2.1", INIT_REMOTE)), 0);
}

#[test]
fn a_join_is_matched_to_the_request_whose_port_it_has() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![probe("10.0.2.1", INIT_REMOTE, ms(150))]);
    c.handle_decisions(t0 + ms(1), vec![open("10.0.2.1", INIT_REMOTE, false)]);
    assert_eq!(drain(&mut c).len(), 2);
    // Both SYNs are sampled; the oldest request takes the first port seen.
    c.handle_samples(
        t0 + ms(2),
        &[(key("10.0.2.1:50001", INIT_REMOTE), syn_sent())],
    );
    c.handle_samples(
        t0 + ms(2),
        &[(key("10.0.2.1:50002", INIT_REMOTE), syn_sent())],
    );
    assert_eq!(c.subflows()[1].local_port, Some(50001));
    assert_eq!(c.subflows()[2].local_port, Some(50002));
    // The younger SYN establishes first: it fills its own entry, not the oldest.
    c.handle_event(
        t0 + ms(3),
        &PmEvent::SubEstablished(sub("10.0.2.1:50002", INIT_REMOTE, 1, 0, false)),
    );
    assert!(matches!(state_of(&c, 2), SubflowState::Established { .. }));
    assert!(matches!(state_of(&c, 1), SubflowState::Requested { .. }));
    // And the older one's failure fails the older one.
    c.handle_event(
        t0 + ms(4),
        &PmEvent::SubClosed(sub("10.0.2.1:50001", INIT_REMOTE, 1, 0, false)),
    );
    assert!(matches!(state_of(&c, 1), SubflowState::Failed { .. }));
    assert!(matches!(state_of(&c, 2), SubflowState::Established { .. }));
}

#[test]
fn a_closed_probe_that_establishes_before_its_destroy_is_closing_with_its_intent() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![probe("10.0.2.1", INIT_REMOTE, ms(5000))]);
    drain(&mut c);
    let k = key("10.0.2.1:50001", INIT_REMOTE);
    c.handle_samples(t0 + ms(20), &[(k, syn_sent())]);
    c.handle_decisions(t0 + ms(150), vec![d(Action::Close { key: k })]);
    assert_eq!(drain(&mut c).len(), 1, "the destroy");
    c.handle_event(
        t0 + ms(151),
        &PmEvent::SubEstablished(sub("10.0.2.1:50001", INIT_REMOTE, 1, 0, false)),
    );
    // The same entry (no unknown subflow learnt), closing: the destroy is on its way.
    assert_eq!(c.subflows().len(), 2);
    let sf = &c.subflows()[1];
    assert!(sf.is_established() && sf.closing && !sf.is_live());
    assert!(
        sf.want_backup,
        "the request's intent, not the event's backup=0"
    );
    assert_eq!(c.live_on(ip("10.0.2.1"), sa(INIT_REMOTE)), 0);
    assert_eq!(drain(&mut c), vec![], "no SET_FLAGS for what is closing");
    // Its SUB_CLOSED (from our destroy) is no failure of the path.
    c.handle_event(
        t0 + ms(152),
        &PmEvent::SubClosed(sub("10.0.2.1:50001", INIT_REMOTE, 1, 0, true)),
    );
    assert!(matches!(state_of(&c, 1), SubflowState::Closed { .. }));
    assert_eq!(c.failures(&path("10.0.2.1", INIT_REMOTE)), 0);
}

#[test]
fn no_join_towards_the_initial_address_of_a_peer_that_denies_it() {
    let t0 = Instant::now();
    let mut c = Connection::new(T, ConnTimers::default());
    let mut i = info(INIT_LOCAL, INIT_REMOTE, false);
    i.flags.deny_join_id0 = true;
    c.handle_event(t0, &PmEvent::Created(i));
    c.handle_event(t0, &PmEvent::Established(i));
    assert!(c.join_denied(sa(INIT_REMOTE)));
    // Same address, another port: an announced endpoint, not id 0.
    assert!(!c.join_denied(sa("10.0.9.1:81")));
    let before = c.ignored();
    c.handle_decisions(
        t0,
        vec![
            open("10.0.2.1", INIT_REMOTE, false),
            probe("10.0.2.1", INIT_REMOTE, ms(100)),
        ],
    );
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.ignored(), before + 2);
    c.handle_event(
        t0,
        &PmEvent::Announced {
            token: T,
            rem_id: 5,
            addr: ip("10.0.8.1"),
            port: None,
        },
    );
    c.handle_decisions(t0, vec![open("10.0.2.1", "10.0.8.1:80", false)]);
    assert_eq!(drain(&mut c).len(), 1, "its announced address is joined");
    // Without the flag, the initial address is joinable.
    assert!(!established(t0, ConnTimers::default()).join_denied(sa(INIT_REMOTE)));
}

#[test]
fn a_retried_request_forgets_the_port_of_its_earlier_socket() {
    let t0 = Instant::now();
    let mut c = established(t0, ConnTimers::default());
    c.handle_decisions(t0, vec![open("10.0.2.1", INIT_REMOTE, false)]);
    drain(&mut c);
    c.handle_samples(
        t0 + ms(20),
        &[(key("10.0.2.1:50001", INIT_REMOTE), syn_sent())],
    );
    assert_eq!(c.subflows()[1].local_port, Some(50001));
    // The ordinary request times out, backs off and is sent again: a new socket.
    c.handle_timeout(t0 + Duration::from_secs(5));
    let SubflowState::Pending { due } = state_of(&c, 1) else {
        panic!("expected a retry: {:?}", state_of(&c, 1));
    };
    c.handle_timeout(due);
    assert_eq!(drain(&mut c).len(), 1);
    assert!(matches!(
        state_of(&c, 1),
        SubflowState::Requested { attempt: 2, .. }
    ));
    assert_eq!(c.subflows()[1].local_port, None);
}
