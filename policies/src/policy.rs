//! The [`Policy`] trait: the pluggable decision maker. A policy is pure: it reads a connection's
//! state ([`Connection`]) and the usable local addresses, and answers with [`Decision`]s. It never
//! performs I/O and never reads the clock (time arrives in [`Ctx::now`]).
//!
//! One policy object serves every connection of the daemon; a policy that needs per-connection
//! memory keys it by [`Token`] and drops it in [`Policy::on_closed`].

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::conn::Connection;
use crate::model::{LocalAddr, PmEvent, SubflowKey, Token};

/// What a policy wants done on one connection. The connection state machine turns decisions into
/// kernel commands, assigning address ids and applying retry backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Open a subflow from `local` to `remote`.
    Open {
        /// Local address.
        local: IpAddr,
        /// Interface of the local address, if known.
        if_index: Option<u32>,
        /// Remote address and port.
        remote: SocketAddr,
        /// Mark it backup.
        backup: bool,
    },
    /// Close one subflow.
    Close {
        /// The subflow.
        key: SubflowKey,
    },
    /// Set or clear one subflow's backup flag.
    SetBackup {
        /// The subflow.
        key: SubflowKey,
        /// New value.
        backup: bool,
    },
    /// Announce a local address to the peer.
    Announce {
        /// Address.
        addr: IpAddr,
        /// Port, if any.
        port: Option<u16>,
    },
    /// Withdraw an announced local address.
    Remove {
        /// Address.
        addr: IpAddr,
    },
}

/// Everything a policy may look at when it decides.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    /// The current time (from the caller; policies never read the clock).
    pub now: Instant,
    /// The connection, as its state machine sees it.
    pub conn: &'a Connection,
    /// Usable local addresses, after the daemon's filters.
    pub locals: &'a [LocalAddr],
}

/// A path-management policy. Every hook has a default that decides nothing.
pub trait Policy: Send + std::fmt::Debug {
    /// The policy's name as written in the config.
    fn name(&self) -> &'static str;

    /// Whether the policy reads subflow health samples ([`Policy::on_samples`],
    /// `Subflow::sample`). The daemon dumps every subflow's `tcp_info` each poll only while some
    /// configured policy says yes; otherwise it polls the (much cheaper) connection list alone.
    fn wants_samples(&self) -> bool {
        false
    }

    /// A kernel event for this connection, after the connection state machine applied it.
    fn on_event(&mut self, _ctx: &Ctx<'_>, _event: &PmEvent) -> Vec<Decision> {
        Vec::new()
    }

    /// The set of usable local addresses changed (`ctx.locals` is the new set).
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

    /// The connection is gone: forget anything kept for it.
    fn on_closed(&mut self, _token: Token) {}

    /// Explanations of the decisions just returned (with the numbers that caused them), for the
    /// daemon's log. Drained after every hook call.
    fn drain_notes(&mut self) -> Vec<String> {
        Vec::new()
    }
}
