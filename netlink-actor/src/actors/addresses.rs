//! The address monitor: owns the rtnetlink sockets. It keeps the links and addresses of this
//! namespace ([`AddrSet`]), applies the `addresses:` filters and, whenever the usable set
//! changes, tells the policy actor and the registry (which tells every connection). An overrun of
//! the monitor socket (ENOBUFS: changes were lost) triggers a fresh dump of links and addresses;
//! a dump that fails for a transient reason is retried until it succeeds. Any other failure of
//! either socket is fatal: it is reported to [`Failures`] rather than keep using an address set
//! that can no longer be updated.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use mptcp_pmd_config::AddressFilter;
use mptcp_pmd_policies::LocalAddr;
use slog::{debug, info, warn, Logger};

use super::addrset::{AddrSet, Link, Skipped};
use super::failure::{Failures, KernelSocket, SocketFailure};
use super::messages::LocalsChanged;
use super::reader::read_until_dead;
use crate::rtnl::{AddrInfo, LinkInfo, RtnlEvent, RtnlSocket};
use crate::{DecodeError, Error as RtnlError, Severity};

/// How long to wait before retrying a re-dump that failed for a transient reason.
const REDUMP_RETRY: Duration = Duration::from_millis(500);

/// Replace the address filter (SIGHUP reload).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetFilter(pub AddressFilter);

/// Ask for the usable and skipped addresses (status).
#[derive(Message)]
#[rtype(result = "(Vec<LocalAddr>, Vec<Skipped>)")]
pub struct GetAddresses;

/// What the reader task saw on the monitor socket (reader task -> actor).
#[derive(Message)]
#[rtype(result = "()")]
enum RtnlBatch {
    /// A datagram of events.
    Events(Vec<Result<RtnlEvent, DecodeError>>),
    /// Changes were lost (why): dump links and addresses again.
    Lost(String),
}

/// Apply one rtnetlink event to the set.
pub fn apply(set: &mut AddrSet, ev: &RtnlEvent) {
    match ev {
        RtnlEvent::AddrAdded(a) => add_addr(set, a),
        RtnlEvent::AddrRemoved(a) => set.addr_removed(a.if_index, a.addr),
        RtnlEvent::LinkChanged(l) => add_link(set, l),
        RtnlEvent::LinkRemoved { index, .. } => set.link_removed(*index),
        RtnlEvent::Other { .. } => {}
    }
}

fn add_addr(set: &mut AddrSet, a: &AddrInfo) {
    // An address still in duplicate address detection cannot carry a subflow yet; the
    // RTM_NEWADDR that ends DAD adds it.
    if a.is_tentative() {
        set.addr_removed(a.if_index, a.addr);
    } else {
        set.addr_added(a.if_index, a.addr);
    }
}

fn add_link(set: &mut AddrSet, l: &LinkInfo) {
    let link = Link {
        name: l.name.clone(),
        up: l.up,
        running: l.running,
        loopback: l.loopback,
    };
    set.link_changed(l.index, link);
}

/// Dump links and addresses into a fresh set.
pub fn dump(sock: &mut RtnlSocket) -> Result<AddrSet, RtnlError> {
    let mut set = AddrSet::default();
    for l in &sock.dump_links()?.items {
        add_link(&mut set, l);
    }
    for a in &sock.dump_addrs()?.items {
        add_addr(&mut set, a);
    }
    Ok(set)
}

/// Owner of the rtnetlink sockets.
pub struct AddressMonitor {
    monitor: Option<RtnlSocket>,
    dumper: RtnlSocket,
    set: AddrSet,
    filter: AddressFilter,
    usable: Vec<LocalAddr>,
    sinks: Vec<Recipient<LocalsChanged>>,
    failures: Failures,
    /// A re-dump retry is scheduled.
    redump_pending: bool,
    log: Logger,
}

/// The rtnetlink sockets and what was dumped through them at start-up.
pub struct RtnlSockets {
    /// Joined to the link and address groups before `set` was dumped.
    pub monitor: RtnlSocket,
    /// The socket the dumps go through.
    pub dumper: RtnlSocket,
    /// The links and addresses dumped at start-up.
    pub set: AddrSet,
}

impl AddressMonitor {
    /// A monitor applying `filter`, telling `sinks` about changes; a dead socket is reported to
    /// `failures`.
    pub fn new(
        sockets: RtnlSockets,
        filter: AddressFilter,
        sinks: Vec<Recipient<LocalsChanged>>,
        failures: Failures,
        log: Logger,
    ) -> Self {
        let RtnlSockets {
            monitor,
            dumper,
            set,
        } = sockets;
        let usable = set.evaluate(&filter).0;
        AddressMonitor {
            monitor: Some(monitor),
            dumper,
            set,
            filter,
            usable,
            sinks,
            failures,
            redump_pending: false,
            log,
        }
    }

    /// Replace the set by a fresh dump. A transient failure is retried shortly (changes keep
    /// being applied meanwhile); a dead dump socket is fatal.
    fn redump(&mut self, ctx: &mut Context<Self>) {
        match dump(&mut self.dumper) {
            Ok(set) => self.set = set,
            Err(e) => {
                if e.severity() == Severity::Fatal {
                    self.failures
                        .report(SocketFailure::new(KernelSocket::RtnlDump, &e));
                    return;
                }
                warn!(self.log, "rtnetlink dump failed, retrying"; "error" => %e,
                    "retry_ms" => REDUMP_RETRY.as_millis() as u64);
                if !std::mem::replace(&mut self.redump_pending, true) {
                    ctx.run_later(REDUMP_RETRY, |act, ctx| {
                        act.redump_pending = false;
                        act.redump(ctx);
                        act.refresh();
                    });
                }
            }
        }
    }

    /// Re-evaluate the filters; notify if the usable set changed.
    fn refresh(&mut self) {
        let (usable, _) = self.set.evaluate(&self.filter);
        if usable == self.usable {
            return;
        }
        self.notify(usable);
    }

    /// Tell the sinks that `usable` is the usable set (also when it did not change: after a
    /// reload, every connection re-decides under the new policies).
    fn notify(&mut self, usable: Vec<LocalAddr>) {
        let before: BTreeSet<IpAddr> = self.usable.iter().map(|l| l.addr).collect();
        let after: BTreeSet<IpAddr> = usable.iter().map(|l| l.addr).collect();
        let added: Vec<IpAddr> = after.difference(&before).copied().collect();
        let removed: Vec<IpAddr> = before.difference(&after).copied().collect();
        if usable != self.usable {
            info!(self.log, "usable local addresses changed"; "added" => ?added, "removed" => ?removed,
                "now" => ?after);
        } else {
            debug!(
                self.log,
                "usable local addresses unchanged; every connection decides again"
            );
        }
        self.usable = usable;
        let msg = LocalsChanged {
            locals: Arc::new(self.usable.clone()),
            added,
        };
        for s in &self.sinks {
            s.do_send(msg.clone());
        }
    }
}

impl Actor for AddressMonitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(sock) = self.monitor.take() else {
            return;
        };
        let reader = read_changes(sock, ctx.address(), self.log.clone());
        let failures = self.failures.clone();
        ctx.spawn(async move { failures.report(reader.await) }.into_actor(self));
    }
}

/// Read the monitor socket until it fails for good; returns that failure.
async fn read_changes(sock: RtnlSocket, me: Addr<AddressMonitor>, log: Logger) -> SocketFailure {
    let set_nonblocking = |s: &RtnlSocket| s.set_nonblocking(true);
    read_until_dead(sock, set_nonblocking, KernelSocket::RtnlMonitor, |guard| {
        match guard.get_inner_mut().recv_batch() {
            Ok(events) => me.do_send(RtnlBatch::Events(events)),
            Err(e) => match e.severity() {
                Severity::Transient => {
                    if !e.is_would_block() {
                        warn!(log, "rtnetlink receive failed, waiting for the next datagram"; "error" => %e);
                    }
                    guard.clear_ready();
                }
                Severity::Overrun => me.do_send(RtnlBatch::Lost(e.to_string())),
                Severity::Fatal => return Err(e),
            },
        }
        Ok(())
    })
    .await
}

impl Handler<RtnlBatch> for AddressMonitor {
    type Result = ();

    fn handle(&mut self, msg: RtnlBatch, ctx: &mut Self::Context) {
        match msg {
            RtnlBatch::Events(events) => {
                for ev in &events {
                    match ev {
                        Ok(ev) => apply(&mut self.set, ev),
                        Err(e) => {
                            warn!(self.log, "dropping malformed rtnetlink message"; "error" => %e)
                        }
                    }
                }
            }
            RtnlBatch::Lost(why) => {
                warn!(self.log, "rtnetlink overrun: re-reading links and addresses"; "error" => why);
                self.redump(ctx);
            }
        }
        self.refresh();
    }
}

impl Handler<SetFilter> for AddressMonitor {
    type Result = ();

    fn handle(&mut self, msg: SetFilter, _ctx: &mut Self::Context) {
        self.filter = msg.0;
        // A reload may have changed the policies as well: have every connection decide again
        // (a policy withdraws what its new parameters exclude) even if the usable set
        // stays the same.
        let (usable, _) = self.set.evaluate(&self.filter);
        self.notify(usable);
    }
}

impl Handler<GetAddresses> for AddressMonitor {
    type Result = MessageResult<GetAddresses>;

    fn handle(&mut self, _msg: GetAddresses, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.set.evaluate(&self.filter))
    }
}
