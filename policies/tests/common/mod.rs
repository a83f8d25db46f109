//! Helpers shared by the policies crate's tests: a fake connection driven through real events.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mptcp_pmd_policies::{
    Action, ConnFlags, ConnInfo, ConnTimers, Connection, Ctx, Decision, LocalAddr, PmCommand,
    PmEvent, Reason, SubflowInfo, SubflowKey, Token,
};

pub const T: Token = Token(0xabcd_0001);

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn key(local: &str, remote: &str) -> SubflowKey {
    SubflowKey {
        local: sa(local),
        remote: sa(remote),
    }
}

pub fn info(local: &str, remote: &str, server_side: bool) -> ConnInfo {
    ConnInfo {
        token: T,
        local: sa(local),
        remote: sa(remote),
        loc_id: 0,
        rem_id: 0,
        flags: ConnFlags {
            deny_join_id0: false,
            server_side,
        },
    }
}

pub fn sub(local: &str, remote: &str, loc_id: u8, rem_id: u8, backup: bool) -> SubflowInfo {
    SubflowInfo {
        token: T,
        local: sa(local),
        remote: sa(remote),
        loc_id,
        rem_id,
        backup,
        if_idx: None,
        error: None,
        reset_reason: None,
        reset_flags: None,
    }
}

pub fn local(addr: &str, if_index: u32, backup: bool) -> LocalAddr {
    LocalAddr {
        addr: ip(addr),
        if_index,
        if_name: format!("eth{if_index}"),
        backup,
    }
}

/// The initial subflow of every test connection.
pub const INIT_LOCAL: &str = "10.0.1.1:40000";
pub const INIT_REMOTE: &str = "10.0.9.1:80";

/// A client connection that saw CREATED and ESTABLISHED at `now`.
pub fn established(now: Instant, timers: ConnTimers) -> Connection {
    let mut c = Connection::new(T, timers);
    let i = info(INIT_LOCAL, INIT_REMOTE, false);
    c.handle_event(now, &PmEvent::Created(i));
    c.handle_event(now, &PmEvent::Established(i));
    c
}

pub fn drain(c: &mut Connection) -> Vec<PmCommand> {
    std::iter::from_fn(|| c.poll_command()).collect()
}

/// A fake kernel: answers every queued command the way a healthy kernel would (creates
/// establish with consecutive local ports starting at `*next_port`, destroys close).
pub fn kernel_runs(c: &mut Connection, now: Instant, next_port: &mut u16) -> Vec<PmCommand> {
    let cmds = drain(c);
    for cmd in &cmds {
        c.handle_command_result(now, cmd, Ok(()));
        match cmd {
            PmCommand::CreateSubflow {
                local,
                local_id,
                remote,
                backup,
                ..
            } => {
                let mut s = sub("0.0.0.0:1", "0.0.0.0:1", *local_id, 0, *backup);
                s.local = SocketAddr::new(*local, *next_port);
                s.remote = *remote;
                *next_port += 1;
                c.handle_event(now, &PmEvent::SubEstablished(s));
            }
            PmCommand::DestroySubflow { key, .. } => {
                let mut s = sub("0.0.0.0:1", "0.0.0.0:1", 0, 0, false);
                s.local = key.local;
                s.remote = key.remote;
                c.handle_event(now, &PmEvent::SubClosed(s));
            }
            _ => {}
        }
    }
    cmds
}

pub fn ctx<'a>(now: Instant, conn: &'a Connection, locals: &'a [LocalAddr]) -> Ctx<'a> {
    Ctx {
        now,
        conn,
        locals,
        listeners: &[],
    }
}

/// A decision for `action` (tests that feed the state machine directly).
pub fn d(action: Action) -> Decision {
    Decision::new(action, Reason::fixed("test", "decided by the test"))
}

/// The actions of some decisions, reasons left out.
pub fn actions(ds: &[Decision]) -> Vec<Action> {
    ds.iter().map(|d| d.action.clone()).collect()
}

pub fn opens(ds: &[Decision]) -> Vec<(IpAddr, SocketAddr, bool)> {
    let mut v: Vec<_> = ds
        .iter()
        .filter_map(|d| match &d.action {
            Action::Open {
                local,
                remote,
                backup,
                ..
            } => Some((*local, *remote, *backup)),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

pub fn closes(ds: &[Decision]) -> Vec<SubflowKey> {
    let mut v: Vec<_> = ds
        .iter()
        .filter_map(|d| match &d.action {
            Action::Close { key } => Some(*key),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

/// Runs a policy hook's decisions through the connection and the fake kernel.
pub fn apply(c: &mut Connection, now: Instant, ds: Vec<Decision>, next_port: &mut u16) {
    c.handle_decisions(now, ds);
    kernel_runs(c, now, next_port);
}
