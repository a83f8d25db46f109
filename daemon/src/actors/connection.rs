//! The connection actor: one per MPTCP connection (token). A thin driver around the pure
//! [`Connection`] state machine: it feeds inputs (events, samples, address changes, command
//! results, timers, operator commands), then drains outputs in a fixed order — kernel commands
//! first, then at most one outstanding policy request, then the next timer, then what it asks
//! the sock_diag poller to sample. One policy request at a time per connection means a
//! decision is never computed from a snapshot that misses our own requests; a held connection
//! sends none. Every command it sends is published to the monitor with the kernel's answer;
//! with `--dry-run` it sends none (the policy actor then hands it no decision to apply, and
//! operator commands are refused).
//!
//! It also keeps the metrics gauges current: every input ends in [`ConnectionActor::pump`]
//! (or in the actor stopping), which publishes the connection's [`Census`] (itself, its
//! subflows and announcements by state) as a difference from the last one published; the
//! `stopped` hook withdraws it. A new handler that changes the state machine must end in a
//! pump too.
//!
//! **Sampling.** Each decision says how often the connection's policy wants its subflows
//! sampled ([`Decided`]); while it does, the actor keeps the poller's sampler told which
//! subflows to look up ([`crate::core::watch`], sent again only when that changes). Samples
//! that arrive while a decision is in flight wait for its answer (the latest only): the policy
//! still shares the state machine then, which would have to be copied to change it.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use mptcp_pmd_policies::conn::Connection;
use mptcp_pmd_policies::policy::Reason;
use mptcp_pmd_policies::{KernelRefusal, Manual, ManualRefusal, PmCommand, PmEvent};
use mptcp_pmd_policies::{SubflowKey, SubflowSample};
use netlink_actor::actors::{
    Cause, CommandPath, DiagPoller, KernelEvent, LocalsChanged, Pace, SampleConnection,
};
use slog::{debug, info, warn, Logger};

use super::messages::{ConnectionGone, Decide, Decided, Hook, Reconcile, Samples};
use super::policy::PolicyActor;
use crate::core::watch;
use crate::endpoints::metrics::{Census, Metrics};
use crate::endpoints::monitor::Monitor;
use crate::endpoints::protocol::{self, Kind, Origin};

/// Ask a connection actor for a copy of its state machine (status).
#[derive(Message)]
#[rtype(result = "Box<Connection>")]
pub struct GetConnection;

/// What an operator asks of a connection (control socket -> connection actor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// A PM command by hand, through the state machine.
    Manual(Manual),
    /// Hold (`true`: the policy stops acting on the connection) or release it.
    Hold(bool),
}

/// An operator's command for this connection, from the caller `uid`/`pid`.
#[derive(Message, Debug)]
#[rtype(result = "Operated")]
pub struct Operate {
    /// What to do.
    pub op: Operation,
    /// The caller's uid (SO_PEERCRED).
    pub uid: u32,
    /// The caller's pid.
    pub pid: u32,
}

/// What came of an operator's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operated {
    /// Sent and acknowledged by the kernel (`command`: what was sent), or a hold/release
    /// (`changed`: whether it changed anything).
    Done {
        /// The kernel command sent, for a manual command.
        command: Option<PmCommand>,
        /// For hold/release.
        changed: Option<bool>,
    },
    /// The state machine refused it: nothing was sent.
    Refused(ManualRefusal),
    /// The kernel refused it.
    Kernel(KernelRefusal),
    /// `--dry-run`: nothing is sent.
    DryRun,
}

/// The actors every connection actor talks to, shared by all of them: an actix `Addr` clone
/// allocates, and tens of thousands of connection actors each holding their own would cost
/// ~150 bytes apiece. They all live on the registry's arbiter thread, hence `Rc`.
pub struct Peers {
    /// The policy actor.
    pub policy: Addr<PolicyActor>,
    /// The command path (the command socket).
    pub cmds: CommandPath,
    /// Told when a connection actor stops (the registry).
    pub gone: Recipient<ConnectionGone>,
    /// The registry's logger; connection log lines add the token themselves (a logger per
    /// connection would allocate).
    pub log: Logger,
    /// Latency metrics and the gauges.
    pub metrics: Metrics,
    /// Where commands are published for `mptcp-pmd monitor`.
    pub stream: Monitor,
    /// `--dry-run`: no command is sent.
    pub dry_run: bool,
    /// The sock_diag poller, which samples the connections whose policy reads samples.
    pub diag: Addr<DiagPoller>,
}

/// A connection's sampling: its pace and what the sampler was last told.
struct Sampling {
    pace: Pace,
    told: Option<u64>,
}

/// Drives one connection.
pub struct ConnectionActor {
    /// Shared with the policy actor while it decides (see [`Decide`]).
    conn: Arc<Connection>,
    peers: Rc<Peers>,
    hooks: VecDeque<Hook>,
    deciding: bool,
    timer: Option<(Instant, SpawnHandle)>,
    /// When the oldest kernel event queued as a hook was read (latency metrics).
    event_at: Option<Instant>,
    /// When the kernel event behind the decision in flight was read.
    decision_cause: Option<Instant>,
    /// What this connection last added to the gauges.
    published: Census,
    /// While the policy reads samples.
    sampling: Option<Sampling>,
    /// Its own address for the policy's answers, made when it starts.
    reply: Option<Arc<Recipient<Decided>>>,
    /// Samples that arrived while a decision was in flight (the latest, with their tick's
    /// guard: not consumed yet), fed when it returns.
    waiting: Option<Samples>,
}

impl ConnectionActor {
    /// A driver for `conn`; `initial` is the first policy hook to run (e.g. Tick for an adopted
    /// connection), `received` when the kernel event behind it was read, if one was.
    pub fn new(
        conn: Connection,
        peers: Rc<Peers>,
        initial: Option<Hook>,
        received: Option<Instant>,
    ) -> Self {
        ConnectionActor {
            conn: Arc::new(conn),
            peers,
            hooks: initial.into_iter().collect(),
            deciding: false,
            timer: None,
            event_at: received,
            decision_cause: None,
            published: Census::default(),
            sampling: None,
            reply: None,
            waiting: None,
        }
    }

    /// The state machine, to change it (copied only if the policy still holds it).
    fn conn_mut(&mut self) -> &mut Connection {
        Arc::make_mut(&mut self.conn)
    }

    /// Follow the pace the policy asked for (`None`: stop sampling).
    fn set_sample_pace(&mut self, pace: Option<Pace>) {
        match (pace, self.sampling.as_mut()) {
            (None, None) => {}
            (None, Some(_)) => {
                self.sampling = None;
                self.unwatch();
            }
            (Some(p), Some(s)) => {
                if s.pace != p {
                    s.pace = p;
                    s.told = None;
                }
            }
            (Some(p), None) => {
                self.sampling = Some(Sampling {
                    pace: p,
                    told: None,
                });
            }
        }
    }

    /// Feed samples to the state machine and queue the policy's samples hook.
    fn feed_samples(&mut self, samples: &[(SubflowKey, SubflowSample)]) {
        self.conn_mut().handle_samples(Instant::now(), samples);
        self.push_hook(Hook::Samples);
    }

    /// Tell the poller what to sample if that changed.
    fn watch(&mut self) {
        let Some(s) = self.sampling.as_mut() else {
            return;
        };
        if self.conn.is_closed() {
            return;
        }
        let print = watch::fingerprint(&self.conn, s.pace);
        if s.told == Some(print) {
            return;
        }
        s.told = Some(print);
        self.peers.diag.do_send(SampleConnection {
            token: self.conn.token(),
            watch: Some(watch::watch_of(&self.conn, s.pace)),
        });
    }

    /// Tell the poller to stop sampling this connection.
    fn unwatch(&self) {
        self.peers.diag.do_send(SampleConnection {
            token: self.conn.token(),
            watch: None,
        });
    }

    fn log(&self) -> &Logger {
        &self.peers.log
    }

    fn push_hook(&mut self, hook: Hook) {
        // Samples, locals and ticks carry no payload: one queued is as good as many.
        let dup = matches!(
            (&hook, self.hooks.back()),
            (Hook::Samples, Some(Hook::Samples))
                | (Hook::Locals, Some(Hook::Locals))
                | (Hook::Tick, Some(Hook::Tick))
        );
        if !dup {
            self.hooks.push_back(hook);
        }
    }

    /// Drain the state machine's outputs: commands, then a policy request, then the timer;
    /// then publish the census.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        self.pump_after(ctx, None);
    }

    /// [`Self::pump`], for commands that a kernel event led to (`cause`).
    fn pump_after(&mut self, ctx: &mut Context<Self>, cause: Option<Cause>) {
        self.send_commands(ctx, cause, None);
        if self.conn.is_gone_in_kernel() {
            // Retired (see `send_commands`): nothing more to ask or arm.
            return;
        }
        self.decide_and_arm(ctx);
    }

    /// Send the queued commands in order and publish each with the kernel's answer. `operator`:
    /// the command an operator asked for and who asked; its answer is returned. A command
    /// refused because the kernel no longer knows the connection retires it (`ctx.stop()`).
    fn send_commands(
        &mut self,
        ctx: &mut Context<Self>,
        cause: Option<Cause>,
        operator: Option<(&PmCommand, (u32, u32))>,
    ) -> Option<Result<(), KernelRefusal>> {
        let mut answer = None;
        // While the policy shares the state machine nothing changed it since its commands
        // were drained (any change goes through `conn_mut`, which makes it ours again): no
        // command can be waiting, and looking must not copy it.
        while let Some(cmd) = Arc::get_mut(&mut self.conn).and_then(Connection::poll_command) {
            debug!(self.log(), "command"; "token" => %self.conn.token(), "cmd" => ?cmd);
            if self.peers.dry_run {
                // Nothing queues commands in a dry run (no decision is applied, operator
                // commands are refused); should something, it is not sent.
                warn!(self.log(), "dry run: command not sent"; "token" => %self.conn.token(), "cmd" => ?cmd);
                continue;
            }
            let res = self.peers.cmds.execute(&cmd, cause);
            let by = operator
                .filter(|(c, _)| answer.is_none() && **c == cmd)
                .map(|(_, who)| who);
            self.peers
                .stream
                .publish(Kind::Command, Some(cmd.token()), |t| {
                    let origin = if by.is_some() {
                        Origin::Operator
                    } else {
                        Origin::Policy
                    };
                    protocol::command_line(t, &cmd, origin, by, &res)
                });
            if by.is_some() {
                answer = Some(res.clone());
            }
            let refused = res.is_err();
            self.conn_mut()
                .handle_command_result(Instant::now(), &cmd, res);
            if self.conn.is_gone_in_kernel() {
                // The kernel no longer knows the token: retired at once, as by CLOSED (whose
                // event was lost, or which came before an adoption from an older snapshot).
                debug!(self.log(), "the kernel no longer knows the connection, retiring it"; "token" => %self.conn.token(), "cmd" => cmd.name());
                ctx.stop();
                return answer;
            }
            if refused {
                // A refused request is Failed and not retried by the state machine: let the
                // policy decide again (the path's backoff delays the new attempt).
                self.push_hook(Hook::Tick);
            }
        }
        answer
    }

    /// At most one policy request (none while held or closed), then the timer.
    fn decide_and_arm(&mut self, ctx: &mut Context<Self>) {
        if self.conn.is_held() {
            // The policy does not act on a held connection: nothing to ask it now; a release
            // asks again.
            self.hooks = VecDeque::new();
        }
        if !self.deciding && !self.conn.is_closed() && !self.conn.is_held() {
            if let Some(hook) = self.hooks.pop_front() {
                if self.hooks.is_empty() {
                    // Keep no queue allocated while idle (see `Peers`).
                    self.hooks = VecDeque::new();
                }
                self.deciding = true;
                if matches!(hook, Hook::Event(_)) {
                    self.decision_cause = self.event_at.take();
                }
                let reply = self
                    .reply
                    .get_or_insert_with(|| Arc::new(ctx.address().recipient()))
                    .clone();
                self.peers.policy.do_send(Decide {
                    hook,
                    conn: self.conn.clone(),
                    reply,
                });
            }
        }
        self.arm_timer(ctx);
        self.publish();
        self.watch();
    }

    /// Bring the gauges in line with the state machine: the census now, less the one published
    /// before (nothing to do when no state changed, the common case).
    fn publish(&mut self) {
        let now = Census::of(&self.conn);
        if now != self.published {
            self.peers.metrics.shift(&self.published, &now);
            self.published = now;
        }
    }

    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let next = self.conn.poll_timeout();
        if self.timer.as_ref().map(|(t, _)| *t) == next {
            return;
        }
        if let Some((_, h)) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = next {
            let delay = at.saturating_duration_since(Instant::now());
            let h = ctx.run_later(delay, |act, ctx| {
                act.timer = None;
                act.conn_mut().handle_timeout(Instant::now());
                act.push_hook(Hook::Tick);
                act.pump(ctx);
            });
            self.timer = Some((at, h));
        }
    }
}

impl Actor for ConnectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.pump(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.peers
            .metrics
            .shift(&self.published, &Census::default());
        self.published = Census::default();
        if self.sampling.take().is_some() {
            self.unwatch();
        }
        let token = self.conn.token();
        self.peers.policy.do_send(ConnectionGone(token));
        self.peers.gone.do_send(ConnectionGone(token));
    }
}

impl Handler<KernelEvent> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, msg: KernelEvent, ctx: &mut Self::Context) {
        let ev = msg.event;
        self.conn_mut().handle_event(Instant::now(), &ev);
        if matches!(ev, PmEvent::Closed { .. }) {
            info!(self.log(), "connection closed"; "token" => %self.conn.token());
            ctx.stop();
            return;
        }
        if let PmEvent::SubEstablished(s) | PmEvent::SubClosed(s) = &ev {
            info!(self.log(), "subflow {}", ev.name(); "token" => %self.conn.token(), "local" => %s.local, "remote" => %s.remote, "backup" => s.backup,
                "error" => s.error.unwrap_or(0));
        }
        self.event_at.get_or_insert(msg.received);
        self.push_hook(Hook::Event(ev));
        self.pump(ctx);
    }
}

impl Handler<Reconcile> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, msg: Reconcile, ctx: &mut Self::Context) {
        let changed = self.conn_mut().reconcile(
            Instant::now(),
            msg.taken_at,
            msg.local,
            msg.remote,
            &msg.subflows,
        );
        if changed {
            info!(self.log(), "reconciled with sock_diag"; "token" => %self.conn.token(), "subflows" => msg.subflows.len());
            self.push_hook(Hook::Tick);
        }
        self.pump(ctx);
    }
}

impl Handler<Samples> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, msg: Samples, ctx: &mut Self::Context) {
        if self.deciding {
            // A newer set replaces one still waiting (releasing its tick).
            self.waiting = Some(msg);
            return;
        }
        self.feed_samples(msg.0.as_slice());
        self.pump(ctx);
    }
}

impl Handler<LocalsChanged> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, msg: LocalsChanged, ctx: &mut Self::Context) {
        for a in &msg.added {
            self.conn_mut().local_addr_returned(*a);
        }
        self.push_hook(Hook::Locals);
        self.pump(ctx);
    }
}

impl Handler<Decided> for ConnectionActor {
    type Result = ();

    fn handle(&mut self, msg: Decided, ctx: &mut Self::Context) {
        self.deciding = false;
        let now = Instant::now();
        let cause = self
            .decision_cause
            .take()
            .map(|read| Cause { read, decided: now });
        if !msg.0.is_empty() {
            if let Some(c) = cause {
                self.peers
                    .metrics
                    .event_to_decision(now.saturating_duration_since(c.read));
            }
            debug!(self.log(), "policy decided"; "token" => %self.conn.token(), "decisions" => ?msg.0);
        }
        self.set_sample_pace(msg.1);
        self.conn_mut().handle_decisions(now, msg.0);
        if let Some(Samples(samples)) = self.waiting.take() {
            self.feed_samples(samples.as_slice());
        }
        self.pump_after(ctx, cause);
    }
}

impl Handler<Operate> for ConnectionActor {
    type Result = MessageResult<Operate>;

    fn handle(&mut self, msg: Operate, ctx: &mut Self::Context) -> Self::Result {
        let token = self.conn.token();
        let out = match msg.op {
            Operation::Hold(on) => {
                let changed = self.conn_mut().set_held(on);
                if changed && !on {
                    // Released: the policy looks at the connection afresh.
                    self.push_hook(Hook::Tick);
                }
                self.peers.stream.publish(Kind::Command, Some(token), |t| {
                    protocol::hold_line(t, token, on, (msg.uid, msg.pid))
                });
                Operated::Done {
                    command: None,
                    changed: Some(changed),
                }
            }
            Operation::Manual(_) if self.peers.dry_run => Operated::DryRun,
            Operation::Manual(m) => {
                let reason = Reason::new("operator", format!("uid {} pid {}", msg.uid, msg.pid));
                match self.conn_mut().handle_manual(Instant::now(), &m, reason) {
                    Err(r) => Operated::Refused(r),
                    Ok(cmd) => {
                        match self.send_commands(ctx, None, Some((&cmd, (msg.uid, msg.pid)))) {
                            Some(Ok(())) => Operated::Done {
                                command: Some(cmd),
                                changed: None,
                            },
                            Some(Err(r)) => Operated::Kernel(r),
                            // The state machine queued it: unreachable; said rather than assumed.
                            None => Operated::Kernel(KernelRefusal {
                                errno: libc::EIO,
                                message: Some(format!("{} was not sent", cmd.name())),
                            }),
                        }
                    }
                }
            }
        };
        debug!(self.log(), "operator command"; "token" => %token, "result" => ?out);
        if !self.conn.is_gone_in_kernel() {
            self.decide_and_arm(ctx);
        }
        MessageResult(out)
    }
}

impl Handler<GetConnection> for ConnectionActor {
    type Result = MessageResult<GetConnection>;

    fn handle(&mut self, _msg: GetConnection, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(Box::new((*self.conn).clone()))
    }
}
