//! The policy actor: holds the configured policies (the [`PolicyBook`]: the default and the
//! rules as factories, and one policy object per connection, all trait objects), the current
//! usable local addresses and the MPTCP listeners of the namespace ([`Listeners`]), and answers
//! each connection's [`Decide`] with [`Decided`]. All decisions of the daemon pass through
//! here, one at a time, so a policy needs no locking. Every decision is logged and counted
//! here, with the reason the policy gave, and published to the monitor; so is every listener
//! that confines joins to its own address, and every change of the usable local addresses.
//! The per-interface limits (spent byte budgets, subflow caps) act here too, on every policy's
//! decisions alike, and the meter counts each connection's samples before its policy decides
//! ([`Metering`]). With `--dry-run` the decisions are logged and published as not carried out,
//! and the connection gets none to apply.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use mptcp_pmd_policies::policy::Ctx;
use mptcp_pmd_policies::LocalAddr;
use netlink_actor::actors::{LocalsChanged, Pace};
use slog::{debug, info, warn, Logger};

use super::messages::{ConnectionGone, Decide, Decided, Hook};
use super::metering::{self, Metering};
use crate::core::budget::BudgetUse;
use crate::core::listeners::{self, Listeners};
use crate::core::rules::PolicyBook;
use crate::endpoints::metrics::Metrics;
use crate::endpoints::monitor::Monitor;
use crate::endpoints::protocol::{self, Kind};

/// An MPTCP listener appeared (LISTENER_CREATED) or went away (LISTENER_CLOSED).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ListenerChanged {
    /// Its address and port.
    pub addr: SocketAddr,
    /// Created (true) or closed.
    pub created: bool,
}

/// The MPTCP listeners of a sock_diag snapshot (start-up, resync): they replace the set.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ListenersSeen(pub Vec<SocketAddr>);

/// The known listeners, each with whether it confines joins to its own address (addresses
/// view).
#[derive(Message)]
#[rtype(result = "Vec<(SocketAddr, bool)>")]
pub struct GetListeners;

/// Replace the policies (SIGHUP reload). Every connection gets a new policy object of the
/// new configuration at its next decision.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPolicy(pub PolicyBook);

/// Which policy serves each of these connections, and what it says about it, in the same
/// order (status).
#[derive(Message)]
#[rtype(result = "Vec<Described>")]
pub struct Describe(pub Vec<mptcp_pmd_policies::conn::Connection>);

/// Replace the per-interface limits (SIGHUP reload): budgets, caps, state directory.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetLimits(pub Box<mptcp_pmd_config::Config>);

/// Every metered budget's use (status, addresses, metrics).
#[derive(Message)]
#[rtype(result = "Vec<BudgetUse>")]
pub struct GetBudgets;

/// Save the metered state now and wait for it (a clean stop).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SaveState;

/// A connection as its policy describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    /// The policy's name.
    pub policy: &'static str,
    /// Which entry chose it: "default" or "rule N".
    pub rule: String,
    /// The policy's note on the connection as a whole (`code: detail`), if it has one.
    pub note: Option<String>,
}

/// Holder of the policies.
pub struct PolicyActor {
    book: PolicyBook,
    locals: Arc<Vec<LocalAddr>>,
    listeners: Listeners,
    metering: Metering,
    metering_timer: Option<SpawnHandle>,
    metrics: Metrics,
    stream: Monitor,
    dry_run: bool,
    log: Logger,
}

impl PolicyActor {
    /// A policy actor starting with `locals` as the usable addresses, publishing to `stream`;
    /// `dry_run`: decisions are logged and published, never handed back to be carried out.
    pub fn new(
        book: PolicyBook,
        locals: Arc<Vec<LocalAddr>>,
        metering: Metering,
        metrics: Metrics,
        stream: Monitor,
        dry_run: bool,
        log: Logger,
    ) -> Self {
        PolicyActor {
            book,
            locals,
            listeners: Listeners::default(),
            metering,
            metering_timer: None,
            metrics,
            stream,
            dry_run,
            log,
        }
    }

    /// Tick the metering once a second while budgets are configured (no timer otherwise).
    fn arm_metering(&mut self, ctx: &mut Context<Self>) {
        match (self.metering.is_active(), self.metering_timer.is_some()) {
            (true, false) => {
                let h = ctx.run_interval(metering::TICK, |act, _| {
                    act.metering.tick();
                    // The metered gauges follow the meter here, so a scrape reads them as
                    // they are (no round trip to this actor per scrape).
                    act.metrics.set_metered(&act.metering.usage());
                });
                self.metering_timer = Some(h);
            }
            (false, true) => {
                if let Some(h) = self.metering_timer.take() {
                    ctx.cancel_future(h);
                }
            }
            _ => {}
        }
        // At once too: after a reload the budgets may be others (or none).
        self.metrics.set_metered(&self.metering.usage());
    }

    /// Say once, when it appears, that a listener keeps peers from joining other addresses.
    fn note_listener(&self, addr: SocketAddr) {
        if self.listeners.confines_joins(addr) {
            warn!(self.log, "MPTCP listener {}", listeners::CONFINED; "listener" => %addr);
        } else {
            debug!(self.log, "MPTCP listener"; "listener" => %addr);
        }
    }
}

impl Actor for PolicyActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.arm_metering(ctx);
    }
}

impl Handler<Decide> for PolicyActor {
    type Result = ();

    fn handle(&mut self, msg: Decide, _ctx: &mut Self::Context) {
        self.metering.observe(&msg.conn, &self.locals);
        let ctx = Ctx {
            now: Instant::now(),
            conn: &msg.conn,
            locals: &self.locals,
            listeners: self.listeners.all(),
        };
        let served = self
            .book
            .serve(&msg.conn, &self.locals, |policy| match &msg.hook {
                Hook::Event(ev) => policy.on_event(&ctx, ev),
                Hook::Locals => policy.on_locals_changed(&ctx),
                Hook::Samples => policy.on_samples(&ctx),
                Hook::Tick => policy.on_tick(&ctx),
            });
        let served = crate::core::rules::Served {
            out: self.metering.limit(&msg.conn, &self.locals, served.out),
            ..served
        };
        let token = msg.conn.token();
        for d in &served.out {
            self.metrics
                .decision(served.name, d.action.name(), d.reason.code);
            if self.dry_run {
                info!(self.log, "decision (dry run: not carried out)"; "policy" => served.name,
                    "rule" => &served.label, "token" => %token, "action" => %d.action,
                    "reason" => d.reason.code, "why" => %d.reason.detail);
            } else {
                info!(self.log, "decision"; "policy" => served.name, "rule" => &served.label,
                    "token" => %token, "action" => %d.action, "reason" => d.reason.code,
                    "why" => %d.reason.detail);
            }
            self.stream.publish(Kind::Decision, Some(token), |t| {
                protocol::decision_line(t, token, served.name, &served.label, d, self.dry_run)
            });
        }
        self.metrics.set_policy_objects(self.book.objects());
        // A metered budget counts bytes from the samples: while one is active, connections
        // whose policy reads none are sampled at the poll interval too (skipped while idle:
        // an idle connection's counters do not move).
        let pace = served.sample_pace.or_else(|| {
            self.metering.is_active().then_some(Pace {
                period: self.book.poll(),
                skip_idle: true,
            })
        });
        let out = if self.dry_run { Vec::new() } else { served.out };
        msg.reply.do_send(Decided(out, pace));
    }
}

impl Handler<LocalsChanged> for PolicyActor {
    type Result = ();

    fn handle(&mut self, msg: LocalsChanged, _ctx: &mut Self::Context) {
        let (old, new) = (&self.locals, &msg.locals);
        self.stream.publish(Kind::Address, None, |t| {
            let ips = |v: &[LocalAddr]| v.iter().map(|l| l.addr).collect::<Vec<_>>();
            let (before, now) = (ips(old), ips(new));
            let added: Vec<_> = now
                .iter()
                .filter(|a| !before.contains(a))
                .copied()
                .collect();
            let removed: Vec<_> = before
                .iter()
                .filter(|a| !now.contains(a))
                .copied()
                .collect();
            protocol::address_line(t, &added, &removed, &now)
        });
        self.locals = msg.locals;
        self.metering.locals_changed();
    }
}

impl Handler<ConnectionGone> for PolicyActor {
    type Result = ();

    fn handle(&mut self, msg: ConnectionGone, _ctx: &mut Self::Context) {
        self.book.closed(msg.0);
        self.metering.gone(msg.0);
        self.metrics.set_policy_objects(self.book.objects());
    }
}

impl Handler<SetPolicy> for PolicyActor {
    type Result = ();

    fn handle(&mut self, msg: SetPolicy, _ctx: &mut Self::Context) {
        info!(self.log, "policies replaced"; "old_default" => self.book.default_name(), "new_default" => msg.0.default_name());
        self.book = msg.0;
        self.metrics.set_policy_objects(self.book.objects());
    }
}

impl Handler<Describe> for PolicyActor {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, msg: Describe, _ctx: &mut Self::Context) -> Self::Result {
        let now = Instant::now();
        let out = msg
            .0
            .iter()
            .map(|c| {
                let (policy, rule) = self.book.describe(c, &self.locals);
                let ctx = Ctx {
                    now,
                    conn: c,
                    locals: &self.locals,
                    listeners: self.listeners.all(),
                };
                Described {
                    policy,
                    rule,
                    note: self.book.note(&ctx).map(|r| r.to_string()),
                }
            })
            .collect();
        MessageResult(out)
    }
}

impl Handler<ListenerChanged> for PolicyActor {
    type Result = ();

    fn handle(&mut self, msg: ListenerChanged, _ctx: &mut Self::Context) {
        if msg.created {
            self.listeners.created(msg.addr);
            self.note_listener(msg.addr);
        } else {
            self.listeners.closed(msg.addr);
            debug!(self.log, "MPTCP listener closed"; "listener" => %msg.addr);
        }
    }
}

impl Handler<ListenersSeen> for PolicyActor {
    type Result = ();

    fn handle(&mut self, msg: ListenersSeen, _ctx: &mut Self::Context) {
        for addr in self.listeners.replace(msg.0) {
            self.note_listener(addr);
        }
    }
}

impl Handler<GetListeners> for PolicyActor {
    type Result = MessageResult<GetListeners>;

    fn handle(&mut self, _msg: GetListeners, _ctx: &mut Self::Context) -> Self::Result {
        let l = &self.listeners;
        MessageResult(l.all().iter().map(|a| (*a, l.confines_joins(*a))).collect())
    }
}

impl Handler<SetLimits> for PolicyActor {
    type Result = ();

    fn handle(&mut self, msg: SetLimits, ctx: &mut Self::Context) {
        self.metering.reload(&msg.0);
        self.arm_metering(ctx);
    }
}

impl Handler<GetBudgets> for PolicyActor {
    type Result = MessageResult<GetBudgets>;

    fn handle(&mut self, _msg: GetBudgets, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.metering.usage())
    }
}

impl Handler<SaveState> for PolicyActor {
    type Result = ();

    fn handle(&mut self, _msg: SaveState, _ctx: &mut Self::Context) {
        self.metering.stop();
    }
}
