//! The registry actor: a thin driver around [`RegistryCore`] (token -> [`ConnectionActor`],
//! routing, retirement of connections that vanished from sock_diag, resync coalescing). It feeds
//! the core events, snapshots, adoptions and stopped connections, and carries out its outputs in
//! order: messages to connection actors, sock_diag requests, the poll switch, heap trims.
//! Local address changes are broadcast to every connection actor. Every kernel event is
//! published to the monitor here, before it is routed, so that it comes before what it causes.

use std::rc::Rc;
use std::time::Instant;

use actix::prelude::*;
use mptcp_pmd_policies::conn::{ConnTimers, Connection};
use mptcp_pmd_policies::{PmEvent, Token};
use netlink_actor::actors::{
    DiagPoller, DiagSnapshot, FreshSamples, KernelEvent, LocalsChanged, MptcpSnapshot, Resync,
    SampleSet, SetPolling, TakeSnapshot,
};
use slog::{debug, info, warn, Logger};

use super::connection::{ConnectionActor, Peers};
use super::messages::{ConnectionGone, Hook, Reconcile, Samples};
use super::policy::{ListenerChanged, ListenersSeen, PolicyActor};
use crate::core::adopt::Adoptable;
use crate::core::registry_core::{EventRoute, Output, RegistryCore};
use crate::endpoints::metrics::Metrics;
use crate::endpoints::protocol::{self, Kind};

/// Ask the registry for the tracked connection actors, ordered by token (status).
#[derive(Message)]
#[rtype(result = "Vec<(Token, Addr<ConnectionActor>)>")]
pub struct ListConnections;

/// Ask the registry for one connection's actor (operator commands).
#[derive(Message)]
#[rtype(result = "Option<Addr<ConnectionActor>>")]
pub struct GetConnectionActor(pub Token);

/// Adopt the connections of a fresh sock_diag snapshot now (start-up).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct AdoptExisting;

/// Drives the registry core.
pub struct Registry {
    core: RegistryCore<Addr<ConnectionActor>>,
    diag: Addr<DiagPoller>,
    /// Shared by every connection actor.
    peers: Rc<Peers>,
    metrics: Metrics,
    log: Logger,
}

/// Start a connection actor (the core's `start` function); `received`: when the kernel event
/// behind its first hook was read.
fn start_connection(
    peers: &Rc<Peers>,
    conn: Connection,
    first: Hook,
    received: Option<Instant>,
) -> Addr<ConnectionActor> {
    ConnectionActor::new(conn, peers.clone(), Some(first), received).start()
}

/// Start an adopted connection's actor; its first policy hook is a tick.
fn start_adopted(
    peers: &Rc<Peers>,
    log: &Logger,
    conn: Connection,
    c: &Adoptable,
) -> Addr<ConnectionActor> {
    info!(log, "adopting connection"; "token" => %c.token, "local" => %c.local, "remote" => %c.remote,
        "subflows" => c.subflows.len(), "server_side" => c.server_side);
    start_connection(peers, conn, Hook::Tick, None)
}

impl Registry {
    /// A registry whose connection actors share `peers` (whose `gone` is the registry's own
    /// address: connection actors report to it when they stop; its logger and metrics are the
    /// registry's too).
    pub fn new(peers: Peers, diag: Addr<DiagPoller>, timers: ConnTimers) -> Self {
        let (log, metrics) = (peers.log.clone(), peers.metrics.clone());
        let peers = Rc::new(peers);
        Registry {
            core: RegistryCore::new(timers),
            diag,
            peers,
            metrics,
            log,
        }
    }

    /// Adopt from `snap` (asked for at `taken_at`); returns how many were adopted.
    fn adopt(&mut self, snap: &MptcpSnapshot, taken_at: Instant) -> usize {
        tell_listeners(&self.peers.policy, snap);
        let (peers, log) = (&self.peers, &self.log);
        let adopted = self.core.adopt(Instant::now(), snap, taken_at, |conn, c| {
            start_adopted(peers, log, conn, c)
        });
        if adopted.ended > 0 {
            debug!(self.log, "not adopted: closed after the snapshot was asked for"; "connections" => adopted.ended);
        }
        adopted.started
    }

    /// Carry out the core's outputs, in order.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Deliver {
                    token,
                    event,
                    received,
                } => {
                    if let Some(a) = self.core.get(token) {
                        a.do_send(KernelEvent { event, received });
                    }
                }
                Output::Samples { token, samples } => {
                    if let Some(a) = self.core.get(token) {
                        a.do_send(Samples(SampleSet::owned(samples)));
                    }
                }
                Output::Reconcile { taken_at, conn } => {
                    if let Some(a) = self.core.get(conn.token) {
                        a.do_send(Reconcile {
                            taken_at,
                            local: conn.local,
                            remote: conn.remote,
                            subflows: conn.subflows,
                        });
                    }
                }
                Output::Retire { token } => {
                    info!(self.log, "connection gone from sock_diag, dropping it"; "token" => %token);
                    if let Some(a) = self.core.get(token) {
                        a.do_send(KernelEvent {
                            event: PmEvent::Closed { token },
                            received: Instant::now(),
                        });
                    }
                }
                Output::TakeSnapshot { reason } => self.take_resync_snapshot(reason, ctx),
                Output::ResyncAfter(after) => {
                    ctx.run_later(after, |_act, ctx| {
                        ctx.notify(Resync {
                            reason: "retry after a failed resync",
                        });
                    });
                }
                Output::Polling(on) => self.diag.do_send(SetPolling(on)),
                Output::Trim => {
                    debug!(self.log, "returning freed heap to the kernel"; "tracked" => self.core.len());
                    crate::process::trim::release_free_memory();
                    if self.core.len() == 0 {
                        // Once more when the other actors have dropped what the last closes
                        // freed (one timer, not a periodic one).
                        ctx.run_later(crate::process::trim::SETTLE, |act, _| {
                            if act.core.len() == 0 {
                                crate::process::trim::release_free_memory();
                            }
                        });
                    }
                }
            }
        }
    }

    fn take_resync_snapshot(&mut self, reason: &'static str, ctx: &mut Context<Self>) {
        self.metrics.resync();
        info!(self.log, "resync from sock_diag"; "reason" => reason);
        ctx.spawn(
            self.diag
                .send(TakeSnapshot)
                .into_actor(self)
                .map(|res, act, ctx| {
                    let snap = match res {
                        Ok(Ok(snap)) => Some(snap),
                        Ok(Err(e)) => {
                            warn!(act.log, "resync: sock_diag failed"; "error" => e);
                            None
                        }
                        Err(e) => {
                            warn!(act.log, "resync: diag poller unavailable"; "error" => %e);
                            None
                        }
                    };
                    if let Some(snap) = &snap {
                        tell_listeners(&act.peers.policy, snap);
                    }
                    let (peers, log) = (&act.peers, &act.log);
                    let adopted = act
                        .core
                        .resync_done(Instant::now(), snap.as_ref(), |conn, c| {
                            start_adopted(peers, log, conn, c)
                        });
                    if let Some(n) = adopted {
                        info!(act.log, "resync done"; "adopted" => n.started, "closed_meanwhile" => n.ended,
                            "tracked" => act.core.len());
                    }
                    act.drain(ctx);
                }),
        );
    }
}

/// The MPTCP listeners of a full snapshot replace the policy actor's (events may have been
/// lost before it).
fn tell_listeners(policy: &Addr<PolicyActor>, snap: &MptcpSnapshot) {
    policy.do_send(ListenersSeen(snap.listeners().collect()));
}

fn token_text(token: Option<Token>) -> String {
    token.map(|t| t.to_string()).unwrap_or_default()
}

impl Actor for Registry {
    type Context = Context<Self>;
}

impl Handler<KernelEvent> for Registry {
    type Result = ();

    fn handle(&mut self, msg: KernelEvent, ctx: &mut Self::Context) {
        let (ev, received) = (msg.event, msg.received);
        self.peers
            .stream
            .publish(Kind::Event, ev.token(), |t| protocol::event_line(t, &ev));
        if let PmEvent::ListenerCreated { addr } | PmEvent::ListenerClosed { addr } = ev {
            let created = matches!(ev, PmEvent::ListenerCreated { .. });
            self.peers.policy.do_send(ListenerChanged { addr, created });
        }
        let (name, token) = (ev.name(), ev.token());
        let peers = &self.peers;
        let route = self.core.handle_event(received, ev, |conn, first| {
            start_connection(peers, conn, first, Some(received))
        });
        match route {
            EventRoute::Delivered | EventRoute::Started => {}
            EventRoute::NoConnection => {
                debug!(self.log, "event without connection"; "event" => name)
            }
            EventRoute::Untracked => {
                debug!(self.log, "event for an untracked connection"; "event" => name, "token" => token_text(token))
            }
            EventRoute::Unknown => {
                // We missed this connection's start (it predates us, or events were lost):
                // learn it from sock_diag.
                debug!(self.log, "event for an unknown connection, resyncing"; "event" => name, "token" => token_text(token))
            }
        }
        self.drain(ctx);
    }
}

impl Handler<Resync> for Registry {
    type Result = ();

    fn handle(&mut self, msg: Resync, ctx: &mut Self::Context) {
        self.core.request_resync(Instant::now(), msg.reason);
        self.drain(ctx);
    }
}

impl Handler<AdoptExisting> for Registry {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, _msg: AdoptExisting, _ctx: &mut Self::Context) -> Self::Result {
        let taken_at = self.core.snapshot_requested(Instant::now());
        Box::pin(
            self.diag
                .send(TakeSnapshot)
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let n = match res {
                        Ok(Ok(snap)) => act.adopt(&snap, taken_at),
                        Ok(Err(e)) => {
                            warn!(act.log, "start-up adoption: sock_diag failed"; "error" => e);
                            act.core.snapshot_failed();
                            0
                        }
                        Err(e) => {
                            warn!(act.log, "start-up adoption: diag poller unavailable"; "error" => %e);
                            act.core.snapshot_failed();
                            0
                        }
                    };
                    act.drain(ctx);
                    n
                }),
        )
    }
}

impl Handler<DiagSnapshot> for Registry {
    type Result = ();

    fn handle(&mut self, msg: DiagSnapshot, ctx: &mut Self::Context) {
        self.core.handle_snapshot(&msg.0);
        self.drain(ctx);
    }
}

impl Handler<FreshSamples> for Registry {
    type Result = ();

    /// A sampling tick: each connection gets its share of the tick's list.
    fn handle(&mut self, msg: FreshSamples, _ctx: &mut Self::Context) {
        for (token, range) in msg.conns {
            if let Some(a) = self.core.get(token) {
                a.do_send(Samples(SampleSet::shared(&msg.samples, range)));
            }
        }
    }
}

impl Handler<LocalsChanged> for Registry {
    type Result = ();

    fn handle(&mut self, msg: LocalsChanged, _ctx: &mut Self::Context) {
        for actor in self.core.handles() {
            actor.do_send(msg.clone());
        }
    }
}

impl Handler<ConnectionGone> for Registry {
    type Result = ();

    fn handle(&mut self, msg: ConnectionGone, ctx: &mut Self::Context) {
        self.core.gone(Instant::now(), msg.0);
        self.drain(ctx);
    }
}

impl Handler<GetConnectionActor> for Registry {
    type Result = Option<Addr<ConnectionActor>>;

    fn handle(&mut self, msg: GetConnectionActor, _ctx: &mut Self::Context) -> Self::Result {
        self.core.get(msg.0).cloned()
    }
}

impl Handler<ListConnections> for Registry {
    type Result = MessageResult<ListConnections>;

    fn handle(&mut self, _msg: ListConnections, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.core
                .sorted()
                .into_iter()
                .map(|(t, a)| (t, a.clone()))
                .collect(),
        )
    }
}
