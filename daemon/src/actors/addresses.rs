//! The address monitor: owns the rtnetlink sockets. It keeps the links and addresses of this
//! namespace ([`AddrSet`]), applies the `addresses:` filters and, whenever the usable set
//! changes, tells the policy actor and the registry (which tells every connection). An overrun of
//! the rtnetlink socket triggers a fresh dump.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use actix::prelude::*;
use mptcp_pmd_config::AddressFilter;
use mptcp_pmd_policies::LocalAddr;
use netlink_actor::rtnl::{AddrInfo, LinkInfo, RtnlEvent, RtnlSocket};
use netlink_actor::DecodeError;
use netlink_actor::Error as RtnlError;
use slog::{info, warn, Logger};

use super::messages::LocalsChanged;
use crate::addrset::{AddrSet, Link, Skipped};

/// Replace the address filter (SIGHUP reload).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetFilter(pub AddressFilter);

/// Ask for the usable and skipped addresses (status).
#[derive(Message)]
#[rtype(result = "(Vec<LocalAddr>, Vec<Skipped>)")]
pub struct GetAddresses;

/// A batch of rtnetlink events (reader task -> actor).
#[derive(Message)]
#[rtype(result = "()")]
struct RtnlBatch(Result<Vec<Result<RtnlEvent, DecodeError>>, RtnlError>);

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
    log: Logger,
}

impl AddressMonitor {
    /// `monitor` must have joined the groups before `set` was dumped through `dumper`.
    pub fn new(
        monitor: RtnlSocket,
        dumper: RtnlSocket,
        set: AddrSet,
        filter: AddressFilter,
        sinks: Vec<Recipient<LocalsChanged>>,
        log: Logger,
    ) -> Self {
        let usable = set.evaluate(&filter).0;
        AddressMonitor {
            monitor: Some(monitor),
            dumper,
            set,
            filter,
            usable,
            sinks,
            log,
        }
    }

    /// Re-evaluate the filters; notify if the usable set changed.
    fn refresh(&mut self) {
        let (usable, _) = self.set.evaluate(&self.filter);
        if usable == self.usable {
            return;
        }
        let before: BTreeSet<IpAddr> = self.usable.iter().map(|l| l.addr).collect();
        let after: BTreeSet<IpAddr> = usable.iter().map(|l| l.addr).collect();
        let added: Vec<IpAddr> = after.difference(&before).copied().collect();
        let removed: Vec<IpAddr> = before.difference(&after).copied().collect();
        info!(self.log, "usable local addresses changed"; "added" => ?added, "removed" => ?removed,
            "now" => ?after);
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
        let me = ctx.address();
        let log = self.log.clone();
        ctx.spawn(
            async move {
                if let Err(e) = sock.set_nonblocking(true) {
                    warn!(log, "rtnetlink: cannot set non-blocking; address changes will not be seen"; "error" => %e);
                    return;
                }
                let mut afd = match super::readable_fd(sock) {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(log, "rtnetlink: cannot register socket; address changes will not be seen"; "error" => %e);
                        return;
                    }
                };
                loop {
                    let Ok(mut guard) = afd.readable_mut().await else { return };
                    match guard.get_inner_mut().recv_batch() {
                        Err(e) if e.is_would_block() => guard.clear_ready(),
                        other => me.do_send(RtnlBatch(other)),
                    }
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<RtnlBatch> for AddressMonitor {
    type Result = ();

    fn handle(&mut self, msg: RtnlBatch, _ctx: &mut Self::Context) {
        match msg.0 {
            Ok(events) => {
                for ev in &events {
                    match ev {
                        Ok(ev) => apply(&mut self.set, ev),
                        Err(e) => {
                            warn!(self.log, "dropping malformed rtnetlink message"; "error" => %e)
                        }
                    }
                }
            }
            Err(RtnlError::Overrun) => {
                warn!(
                    self.log,
                    "rtnetlink overrun: re-reading links and addresses"
                );
                match dump(&mut self.dumper) {
                    Ok(set) => self.set = set,
                    Err(e) => warn!(self.log, "rtnetlink dump failed"; "error" => %e),
                }
            }
            Err(e) => warn!(self.log, "rtnetlink receive failed"; "error" => %e),
        }
        self.refresh();
    }
}

impl Handler<SetFilter> for AddressMonitor {
    type Result = ();

    fn handle(&mut self, msg: SetFilter, _ctx: &mut Self::Context) {
        self.filter = msg.0;
        self.refresh();
    }
}

impl Handler<GetAddresses> for AddressMonitor {
    type Result = MessageResult<GetAddresses>;

    fn handle(&mut self, _msg: GetAddresses, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.set.evaluate(&self.filter))
    }
}
