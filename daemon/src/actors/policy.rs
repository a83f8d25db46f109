//! The policy actor: holds the configured policies (the [`PolicyBook`]: the default and the
//! rules as factories, and one policy object per connection, all trait objects), the current
//! usable local addresses and the MPTCP listeners of the namespace ([`Listeners`]), and answers
//! each connection's [`Decide`] with [`Decided`]. All decisions of the daemon pass through
//! here, one at a time, so a policy needs no locking. Every decision is logged and counted
//! here, with the reason the policy gave; so is every listener that confines joins to its own
//! address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use mptcp_pmd_policies::policy::Ctx;
use mptcp_pmd_policies::LocalAddr;
use netlink_actor::actors::LocalsChanged;
use slog::{debug, info, warn, Logger};

use super::messages::{ConnectionGone, Decide, Decided, Hook};
use crate::core::listeners::{self, Listeners};
use crate::core::rules::PolicyBook;
use crate::endpoints::metrics::Metrics;

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
    metrics: Metrics,
    log: Logger,
}

impl PolicyActor {
    /// A policy actor starting with `locals` as the usable addresses.
    pub fn new(
        book: PolicyBook,
        locals: Arc<Vec<LocalAddr>>,
        metrics: Metrics,
        log: Logger,
    ) -> Self {
        PolicyActor {
            book,
            locals,
            listeners: Listeners::default(),
            metrics,
            log,
        }
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
}

impl Handler<Decide> for PolicyActor {
    type Result = ();

    fn handle(&mut self, msg: Decide, _ctx: &mut Self::Context) {
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
        for d in &served.out {
            self.metrics
                .decision(served.name, d.action.name(), d.reason.code);
            info!(self.log, "decision"; "policy" => served.name, "rule" => &served.label,
                "token" => %msg.conn.token(), "action" => %d.action, "reason" => d.reason.code,
                "why" => %d.reason.detail);
        }
        self.metrics.set_policy_objects(self.book.objects());
        msg.reply.do_send(Decided(served.out, served.sample_pace));
    }
}

impl Handler<LocalsChanged> for PolicyActor {
    type Result = ();

    fn handle(&mut self, msg: LocalsChanged, _ctx: &mut Self::Context) {
        self.locals = msg.locals;
    }
}

impl Handler<ConnectionGone> for PolicyActor {
    type Result = ();

    fn handle(&mut self, msg: ConnectionGone, _ctx: &mut Self::Context) {
        self.book.closed(msg.0);
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
