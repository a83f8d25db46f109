//! The `announce` policy: the server half of path management. On every connection this host
//! accepted (the kernel's SERVER_SIDE flag), once it is established, it announces
//! (`MPTCP_PM_CMD_ANNOUNCE`) the usable local addresses other than the one the connection
//! arrived on, so that the peer can join them; an announced address that stops qualifying is
//! withdrawn (`MPTCP_PM_CMD_REMOVE`) and its subflows are closed. A client-side connection
//! gets nothing from it: with both roles on one host, `rules:` gives server-side connections
//! this policy (`side: server`) and the others a client policy.
//!
//! Everything goes through one idempotent computation ([`Announce::reconcile`]) run on
//! ESTABLISHED, SUB_ESTABLISHED, SUB_CLOSED, local address changes and timer ticks:
//! - **Candidates**: the usable local addresses (after the daemon's `addresses:` filters) of the
//!   connection's own family (the initial subflow's, IPv4-mapped counting as IPv4: a peer
//!   cannot join an address of the other family from the address it dialled from), enabled by
//!   `ipv4` / `ipv6`, on an interface `interfaces` allows and `exclude_interfaces` does not,
//!   inside one of `cidrs` if any are given, other than the initial subflow's address, and
//!   reachable for a join: an address is left out when the listening port's MPTCP listeners
//!   are all bound to other addresses (the kernel would answer the join with a RST; the daemon
//!   logs such listeners and `mptcp-pmd addresses` shows them). Non-backup interfaces first.
//! - **Withdraw** every active announcement that is no longer a candidate: REMOVE first, then
//!   a Close for each of its established subflows. The order matters on this kernel: REMOVE
//!   only sends RM_ADDR and leaves the server's subflows up (when the address is gone, the
//!   peer's FIN never arrives), and a SUBFLOW_DESTROY before the REMOVE drops the address from
//!   the connection's list so that the REMOVE fails and no RM_ADDR is sent.
//! - **Announce** the first candidate not announced yet, at most `max_per_connection` active
//!   announcements per connection, **one at a time**: while an announcement waits for the
//!   peer's join (`AnnounceState::Sent`, at most `ConnTimers::announce_pace`), nothing new is
//!   announced. An in-kernel-PM peer drops an ADD_ADDR that arrives while it still handles the
//!   previous one, and the kernel re-sends it only ~200 ms later; waiting for the join (or the
//!   pace) is faster. The peer's `add_addr_accepted` limit is invisible to the server: an
//!   announcement it does not join stays `Unjoined`, and `mptcp-pmd status` shows it.
//! - A withdrawn address that qualifies again is announced again under the same id (the
//!   connection keeps one id per address); one the kernel refused repeatedly is given up for the
//!   connection (see `conn::MAX_ANNOUNCE_REFUSALS`).
//!
//! Config section `announce:` ([`AnnounceParams`]; defaults in brackets):
//! - `interfaces` [[]]: interface globs (`*`, `?`); if non-empty, only addresses on matching
//!   interfaces are announced.
//! - `exclude_interfaces` [[]]: addresses on matching interfaces are never announced (wins).
//! - `cidrs` [[]]: address prefixes; if non-empty, only addresses inside one are announced.
//! - `ipv4` [true], `ipv6` [true]: announce on connections of that family.
//! - `max_per_connection` (1..=8) [8]: active announcements per connection (the peer accepts
//!   at most 8, its `add_addr_accepted` limit, often less).
//! - `port`: not supported; a value is a configuration error that says why. An announced port
//!   needs an MPTCP listener bound to exactly that address and port, which the kernel does not
//!   open for the userspace PM and mptcp-pmd does not open either, so every join to it would be
//!   refused. Addresses are announced on the connection's own port, where the application's
//!   wildcard listener accepts the joins.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::addrmatch::{Cidr, InterfaceGlob};
use crate::model::{LocalAddr, PmEvent};
use crate::params::{self, Keys, ParamError};
use crate::plugin::{Plugin, PolicyParams, Serves};
use crate::policy::{Action, Ctx, Decision, Policy, Reason};

/// The registry entry.
pub static PLUGIN: Plugin = Plugin::new::<AnnounceParams>(
    "announce",
    "announce",
    "announce the other usable local addresses to the peers of connections accepted here",
)
.serving(Serves::Server);

/// The `announce:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnnounceParams {
    /// Interface globs; if non-empty, only addresses on matching interfaces. Default [].
    pub interfaces: Vec<InterfaceGlob>,
    /// Interface globs never announced (wins over `interfaces`). Default [].
    pub exclude_interfaces: Vec<InterfaceGlob>,
    /// Prefixes; if non-empty, only addresses inside one. Default [].
    pub cidrs: Vec<Cidr>,
    /// Announce on IPv4 connections. Default true.
    #[serde(deserialize_with = "params::boolean")]
    pub ipv4: bool,
    /// Announce on IPv6 connections. Default true.
    #[serde(deserialize_with = "params::boolean")]
    pub ipv6: bool,
    /// Active announcements per connection. 1..=8, default 8.
    #[serde(deserialize_with = "params::int::<_, _, 1, 8>")]
    pub max_per_connection: u8,
    /// Refused by [`PolicyParams::validate`] when set: see the module docs.
    #[serde(
        deserialize_with = "optional_port",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u16>,
}

impl Default for AnnounceParams {
    fn default() -> Self {
        AnnounceParams {
            interfaces: Vec::new(),
            exclude_interfaces: Vec::new(),
            cidrs: Vec::new(),
            ipv4: true,
            ipv6: true,
            max_per_connection: 8,
            port: None,
        }
    }
}

/// A port (1..=65535), or nothing for `port: ~`.
fn optional_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    struct Port(u16);
    impl<'de> Deserialize<'de> for Port {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            params::int::<_, u16, 1, 65535>(d).map(Port)
        }
    }
    Ok(Option::<Port>::deserialize(d)?.map(|p| p.0))
}

impl PolicyParams for AnnounceParams {
    fn validate(&self, keys: &Keys) -> Result<(), ParamError> {
        if let Some(port) = self.port {
            return Err(ParamError::check(
                &["port"],
                format!(
                    "{} ({port}) is not supported: an announced port needs an MPTCP listener bound to exactly that address and port, which mptcp-pmd does not open, so every join to it would be refused; leave it out to announce the addresses on the connection's own port, where the application's wildcard listener accepts the joins",
                    keys.key("port")
                ),
            ));
        }
        Ok(())
    }

    fn build(&self) -> Box<dyn Policy> {
        Box::new(Announce::new(self.clone()))
    }
}

const NEW: Reason = Reason::fixed(
    "new-address",
    "a usable local address the peer has not been told about",
);
const GONE: Reason = Reason::fixed("address-gone", "the address is no longer usable");
const FILTERED: Reason = Reason::fixed(
    "not-announced",
    "the address no longer passes the announce filters (interfaces, cidrs, family, listener, limit)",
);
const WITHDRAWN: Reason =
    Reason::fixed("withdrawn", "its local address was withdrawn from the peer");

/// The announce policy for one connection. See the module docs.
#[derive(Debug, Clone)]
pub struct Announce {
    params: AnnounceParams,
}

impl Announce {
    /// An announce policy with these parameters.
    pub fn new(params: AnnounceParams) -> Self {
        Announce { params }
    }

    /// Whether `l` may be announced on a connection whose initial local address is `initial`
    /// (canonical), leaving out the listener check and the limit.
    fn qualifies(&self, l: &LocalAddr, initial: IpAddr) -> bool {
        let p = &self.params;
        let addr = l.addr.to_canonical();
        let family_on = if addr.is_ipv4() { p.ipv4 } else { p.ipv6 };
        family_on
            && addr.is_ipv4() == initial.is_ipv4()
            && addr != initial
            && (p.interfaces.is_empty() || p.interfaces.iter().any(|g| g.matches(&l.if_name)))
            && !p.exclude_interfaces.iter().any(|g| g.matches(&l.if_name))
            && (p.cidrs.is_empty() || p.cidrs.iter().any(|c| c.contains(addr)))
    }

    /// The local addresses this connection should have announced, best first: non-backup
    /// interfaces, then address order. Canonical forms.
    fn candidates(&self, ctx: &Ctx<'_>, initial: IpAddr) -> Vec<IpAddr> {
        let mut out: Vec<&LocalAddr> = ctx
            .locals
            .iter()
            .filter(|l| self.qualifies(l, initial))
            .filter(|l| ctx.join_listener(l.addr) != Some(false))
            .collect();
        out.sort_by_key(|l| (l.backup, l.addr.to_canonical()));
        let mut addrs: Vec<IpAddr> = out.iter().map(|l| l.addr.to_canonical()).collect();
        addrs.dedup();
        addrs
    }

    /// What the connection needs: withdrawals (each REMOVE followed by the closes of its
    /// subflows), then at most one new announcement.
    pub fn reconcile(&self, ctx: &Ctx<'_>) -> Vec<Decision> {
        let conn = ctx.conn;
        if conn.is_closed() || !conn.is_established() || !conn.is_server_side() {
            return Vec::new();
        }
        let Some(info) = conn.info() else {
            return Vec::new();
        };
        let initial = info.local.ip().to_canonical();
        let wanted = self.candidates(ctx, initial);
        let max = usize::from(self.params.max_per_connection);
        let mut out = Vec::new();

        // Withdraw what no longer qualifies, and what is over the limit (a reload lowered it).
        let mut kept = 0usize;
        for a in conn.announcements().iter().filter(|a| a.is_active()) {
            let keep = wanted.contains(&a.addr) && kept < max;
            if keep {
                kept += 1;
                continue;
            }
            let usable = ctx.locals.iter().any(|l| l.addr.to_canonical() == a.addr);
            let why = if usable { FILTERED } else { GONE };
            out.push(Decision::new(Action::Remove { addr: a.addr }, why));
            for sf in conn.subflows() {
                if !sf.is_live() || !sf.is_established() || sf.initial {
                    continue;
                }
                if sf.path.local.to_canonical() != a.addr {
                    continue;
                }
                if let Some(key) = sf.key() {
                    out.push(Decision::new(Action::Close { key }, WITHDRAWN));
                }
            }
        }

        // One new announcement at a time, once the previous one was joined or its pace passed.
        let in_flight = conn
            .announcements()
            .iter()
            .any(|a| a.in_flight() && wanted.contains(&a.addr));
        if in_flight || kept >= max {
            return out;
        }
        let next = wanted.iter().find(|addr| {
            conn.announcement(**addr)
                .is_none_or(|a| !a.is_active() && !a.given_up())
        });
        if let Some(addr) = next {
            let announce = Action::Announce {
                addr: *addr,
                port: None,
            };
            out.push(Decision::new(announce, NEW));
        }
        out
    }
}

impl Policy for Announce {
    fn on_event(&mut self, ctx: &Ctx<'_>, event: &PmEvent) -> Vec<Decision> {
        match event {
            PmEvent::Established(_) | PmEvent::SubEstablished(_) | PmEvent::SubClosed(_) => {
                self.reconcile(ctx)
            }
            _ => Vec::new(),
        }
    }

    fn on_locals_changed(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        self.reconcile(ctx)
    }

    fn on_tick(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        self.reconcile(ctx)
    }
}
