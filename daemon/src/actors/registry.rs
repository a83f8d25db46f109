//! The registry: the map from connection token to its [`ConnectionActor`]. It creates a
//! connection actor on the first event of a new token, routes events and sock_diag samples by
//! token, broadcasts local address changes, adopts connections found by sock_diag (at start-up and
//! after an event overrun) and retires connections that vanished without a CLOSED event.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use actix::prelude::*;
use mptcp_pmd_policies::conn::{ConnTimers, Connection};
use mptcp_pmd_policies::{PmEvent, Token};
use netlink_actor::sock_diag::Snapshot;
use slog::{debug, info, warn, Logger};

use super::commands::CommandPath;
use super::connection::{ConnectionActor, Peers};
use super::diag::DiagPoller;
use super::messages::{
    ConnectionGone, DiagSnapshot, Hook, KernelEvent, LocalsChanged, Reconcile, Resync, Samples,
    SetPolling, TakeSnapshot,
};
use super::policy::PolicyActor;
use crate::metrics::Metrics;
use crate::trim::TrimGate;

/// Polls a tracked connection may be missing from sock_diag before it is dropped.
const MISSING_POLLS: u32 = 3;

/// Ask the registry for the tracked tokens (status, tests).
#[derive(Message)]
#[rtype(result = "Vec<Token>")]
pub struct ListTokens;

/// Ask the registry for the tracked connection actors, ordered by token (status).
#[derive(Message)]
#[rtype(result = "Vec<(Token, Addr<ConnectionActor>)>")]
pub struct ListConnections;

/// Adopt the connections of a fresh sock_diag snapshot now (start-up).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct AdoptExisting;

/// Token -> connection actor.
pub struct Registry {
    conns: HashMap<Token, Addr<ConnectionActor>>,
    missing: HashMap<Token, u32>,
    diag: Addr<DiagPoller>,
    /// Shared by every connection actor.
    peers: Rc<Peers>,
    timers: ConnTimers,
    resyncing: bool,
    resync_again: bool,
    trim: TrimGate,
    metrics: Metrics,
    log: Logger,
}

impl Registry {
    /// A registry wired to its peers; `ctx` is the registry's own context (from
    /// `Registry::create`): connection actors report to it when they stop.
    pub fn new(
        policy: Addr<PolicyActor>,
        cmds: CommandPath,
        diag: Addr<DiagPoller>,
        timers: ConnTimers,
        metrics: Metrics,
        log: Logger,
        ctx: &mut Context<Self>,
    ) -> Self {
        let peers = Rc::new(Peers {
            policy,
            cmds,
            gone: ctx.address().recipient(),
            log: log.clone(),
        });
        Registry {
            conns: HashMap::new(),
            missing: HashMap::new(),
            diag,
            peers,
            timers,
            resyncing: false,
            resync_again: false,
            trim: TrimGate::default(),
            metrics,
            log,
        }
    }

    fn spawn(&mut self, conn: Connection, initial: Option<Hook>) -> Addr<ConnectionActor> {
        let token = conn.token();
        let actor = ConnectionActor::new(conn, self.peers.clone(), initial).start();
        if self.conns.is_empty() {
            self.diag.do_send(SetPolling(true));
        }
        self.conns.insert(token, actor.clone());
        self.trim.observe(self.conns.len());
        actor
    }

    /// Adopt every MPTCP connection of `snap` we do not track; returns how many.
    /// Adopt the connections of `snap` (taken at `taken_at`) we do not track, and reconcile
    /// those we do (their events may have been lost). Returns how many were adopted.
    fn adopt(&mut self, snap: &Snapshot, taken_at: Instant) -> usize {
        let now = Instant::now();
        let mut adopted = 0;
        for c in crate::adopt::adoptable(snap) {
            if let Some(actor) = self.conns.get(&c.token) {
                actor.do_send(Reconcile {
                    taken_at,
                    local: c.local,
                    remote: c.remote,
                    subflows: c.subflows,
                });
                continue;
            }
            info!(self.log, "adopting connection"; "token" => %c.token, "local" => %c.local, "remote" => %c.remote,
                "subflows" => c.subflows.len(), "server_side" => c.server_side);
            let conn = Connection::adopt(now, c.token, c.local, c.remote, c.subflows)
                .with_timers(self.timers)
                .with_server_side(c.server_side);
            self.spawn(conn, Some(Hook::Tick));
            adopted += 1;
        }
        adopted
    }

    fn route_samples(&mut self, snap: &Snapshot) {
        let mut seen = std::collections::HashSet::new();
        for c in &snap.conns {
            let token = c.conn.token;
            seen.insert(token);
            if !snap.has_subflows {
                continue;
            }
            if let Some(actor) = self.conns.get(&token) {
                actor.do_send(Samples(c.samples()));
            }
        }
        // Connections that vanished without a CLOSED event (e.g. lost in an overrun).
        let tracked: Vec<Token> = self.conns.keys().copied().collect();
        for token in tracked {
            if seen.contains(&token) {
                self.missing.remove(&token);
                continue;
            }
            let n = self.missing.entry(token).or_default();
            *n += 1;
            if *n >= MISSING_POLLS {
                info!(self.log, "connection gone from sock_diag, dropping it"; "token" => %token);
                if let Some(actor) = self.conns.get(&token) {
                    actor.do_send(KernelEvent(PmEvent::Closed { token }));
                }
                self.missing.remove(&token);
            }
        }
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<KernelEvent> for Registry {
    type Result = ();

    fn handle(&mut self, msg: KernelEvent, ctx: &mut Self::Context) {
        let ev = msg.0;
        let Some(token) = ev.token() else {
            debug!(self.log, "event without connection"; "event" => ev.name(), "detail" => ?ev);
            return;
        };
        if let Some(actor) = self.conns.get(&token) {
            actor.do_send(KernelEvent(ev));
            return;
        }
        match ev {
            PmEvent::Closed { .. } | PmEvent::Unknown { .. } => {
                debug!(self.log, "event for an untracked connection"; "event" => ev.name(), "token" => %token);
            }
            PmEvent::Created(_) | PmEvent::Established(_) => {
                let mut conn = Connection::new(token, self.timers);
                conn.handle_event(Instant::now(), &ev);
                let actor = self.spawn(conn, Some(Hook::Event(ev)));
                let _ = actor;
            }
            _ => {
                // We missed this connection's start (it predates us, or events were lost):
                // learn it from sock_diag.
                debug!(self.log, "event for an unknown connection, resyncing"; "event" => ev.name(), "token" => %token);
                ctx.notify(Resync {
                    reason: "event for an unknown connection",
                });
            }
        }
    }
}

impl Handler<Resync> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Resync, ctx: &mut Self::Context) {
        if self.resyncing {
            // The snapshot in flight may predate what was just lost: take one more after it.
            self.resync_again = true;
            return;
        }
        self.resyncing = true;
        self.metrics.resync();
        info!(self.log, "resync from sock_diag"; "reason" => msg.reason);
        let taken_at = Instant::now();
        ctx.spawn(self.diag.send(TakeSnapshot).into_actor(self).map(move |res, act, ctx| {
            act.resyncing = false;
            if std::mem::take(&mut act.resync_again) {
                ctx.notify(Resync { reason: "events lost during a resync" });
            }
            match res {
                Ok(Ok(snap)) => {
                    let n = act.adopt(&snap, taken_at);
                    act.route_samples(&snap);
                    info!(act.log, "resync done"; "adopted" => n, "tracked" => act.conns.len());
                }
                Ok(Err(e)) => warn!(act.log, "resync: sock_diag failed"; "error" => e),
                Err(e) => warn!(act.log, "resync: diag poller unavailable"; "error" => %e),
            }
        }));
    }
}

impl Handler<AdoptExisting> for Registry {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, _msg: AdoptExisting, _ctx: &mut Self::Context) -> Self::Result {
        let taken_at = Instant::now();
        Box::pin(self.diag.send(TakeSnapshot).into_actor(self).map(
            move |res, act, _ctx| match res {
                Ok(Ok(snap)) => act.adopt(&snap, taken_at),
                Ok(Err(e)) => {
                    warn!(act.log, "start-up adoption: sock_diag failed"; "error" => e);
                    0
                }
                Err(e) => {
                    warn!(act.log, "start-up adoption: diag poller unavailable"; "error" => %e);
                    0
                }
            },
        ))
    }
}

impl Handler<DiagSnapshot> for Registry {
    type Result = ();

    fn handle(&mut self, msg: DiagSnapshot, _ctx: &mut Self::Context) {
        self.route_samples(&msg.0);
    }
}

impl Handler<LocalsChanged> for Registry {
    type Result = ();

    fn handle(&mut self, msg: LocalsChanged, _ctx: &mut Self::Context) {
        for actor in self.conns.values() {
            actor.do_send(msg.clone());
        }
    }
}

impl Handler<ConnectionGone> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ConnectionGone, _ctx: &mut Self::Context) {
        self.conns.remove(&msg.0);
        self.missing.remove(&msg.0);
        if self.trim.observe(self.conns.len()) {
            debug!(self.log, "returning freed heap to the kernel"; "tracked" => self.conns.len());
            crate::trim::release_free_memory();
        }
        if self.conns.is_empty() {
            self.diag.do_send(SetPolling(false));
        }
    }
}

impl Handler<ListTokens> for Registry {
    type Result = Vec<Token>;

    fn handle(&mut self, _msg: ListTokens, _ctx: &mut Self::Context) -> Vec<Token> {
        let mut v: Vec<Token> = self.conns.keys().copied().collect();
        v.sort();
        v
    }
}

impl Handler<ListConnections> for Registry {
    type Result = MessageResult<ListConnections>;

    fn handle(&mut self, _msg: ListConnections, _ctx: &mut Self::Context) -> Self::Result {
        let mut v: Vec<(Token, Addr<ConnectionActor>)> =
            self.conns.iter().map(|(t, a)| (*t, a.clone())).collect();
        v.sort_by_key(|(t, _)| *t);
        MessageResult(v)
    }
}
