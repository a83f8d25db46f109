//! The [`Policy`] trait: the pluggable decision maker. A policy is pure: it reads a connection's
//! state ([`Connection`]) and the usable local addresses, and answers with [`Decision`]s. It never
//! performs I/O and never reads the clock (time arrives in [`Ctx::now`]).
//!
//! One policy object serves one connection (built by its plugin's factory, see
//! [`crate::plugin`]) and is dropped with it, so per-connection memory is plain fields.
//!
//! Every decision carries its [`Reason`]: the daemon's log line, `mptcp-pmd status` and the
//! metrics all read it from there. [`Action`], [`Reason`] and [`Decision`] live in
//! [`crate::decision`] (the connection state machine applies them, and the trait hands it to
//! policies) and are re-exported here.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::conn::Connection;
use crate::model::{LocalAddr, PmEvent};

pub use crate::decision::{Action, Decision, Reason};

/// Everything a policy may look at when it decides.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The current time (from the caller; policies never read the clock).
    pub now: Instant,
    /// The connection, as its state machine sees it.
    pub conn: &'a Connection,
    /// Usable local addresses, after the daemon's filters.
    pub locals: &'a [LocalAddr],
    /// The MPTCP listening sockets of the namespace (address and port; the wildcard address
    /// for a socket listening on every address), as the daemon learnt them from sock_diag and
    /// LISTENER_CREATED / LISTENER_CLOSED. Empty if none is known. See [`Ctx::join_listener`].
    pub listeners: &'a [SocketAddr],
}

impl Ctx<'_> {
    /// On a server-side connection: whether a peer's join to local address `addr` would reach
    /// a listener of the connection's port (see [`join_reaches_listener`]). `None` if the
    /// connection's port is not known yet or no listener of it is known.
    pub fn join_listener(&self, addr: IpAddr) -> Option<bool> {
        let port = self.conn.info()?.local.port();
        join_reaches_listener(self.listeners, port, addr)
    }
}

/// Whether a join to `addr`:`port` reaches one of `listeners` (MPTCP listening sockets):
/// `Some(true)` if a listener of `port` is bound to `addr` or to the wildcard address of a
/// family that accepts it (`0.0.0.0` takes IPv4, `[::]` takes IPv6 and, dual-stack, IPv4);
/// `Some(false)` if `port` has listeners but all of them are bound to other addresses: the
/// kernel answers such a join with a RST, so announcing `addr` is pointless; `None` if `port`
/// has no known listener. IPv4-mapped addresses count as IPv4.
pub fn join_reaches_listener(listeners: &[SocketAddr], port: u16, addr: IpAddr) -> Option<bool> {
    let addr = addr.to_canonical();
    let mut any = false;
    for l in listeners.iter().filter(|l| l.port() == port) {
        any = true;
        let reaches = match l.ip().to_canonical() {
            IpAddr::V4(a) if a.is_unspecified() => addr.is_ipv4(),
            IpAddr::V6(a) if a.is_unspecified() => true,
            bound => bound == addr,
        };
        if reaches {
            return Some(true);
        }
    }
    any.then_some(false)
}

/// A path-management policy for one connection. Every hook has a default that decides nothing.
pub trait Policy: Send + fmt::Debug {
    /// A kernel event for this connection, after the connection state machine applied it.
    fn on_event(&mut self, _ctx: &Ctx<'_>, _event: &PmEvent) -> Vec<Decision> {
        Vec::new()
    }

    /// The set of usable local addresses changed (`ctx.locals` is the new set), or a reload
    /// replaced the policies (every connection decides again).
    fn on_locals_changed(&mut self, _ctx: &Ctx<'_>) -> Vec<Decision> {
        Vec::new()
    }

    /// New subflow samples were stored in the connection (see `Subflow::sample`).
    fn on_samples(&mut self, _ctx: &Ctx<'_>) -> Vec<Decision> {
        Vec::new()
    }

    /// A timer of the connection fired, or the connection was adopted at start-up: a chance to
    /// reconcile.
    fn on_tick(&mut self, _ctx: &Ctx<'_>) -> Vec<Decision> {
        Vec::new()
    }

    /// What the policy has to say about the connection as a whole right now, when no
    /// subflow's last decision says it: why it opens nothing (the peer denies joins to its
    /// initial address), which path carries the traffic and why. For `mptcp-pmd status`, next
    /// to the policy's name. Pure and cheap: it is asked on every status request.
    fn note(&self, _ctx: &Ctx<'_>) -> Option<Reason> {
        None
    }
}
