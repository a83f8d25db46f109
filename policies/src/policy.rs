//! The [`Policy`] trait: the pluggable decision maker. A policy is pure: it reads a connection's
//! state ([`Connection`]) and the usable local addresses, and answers with [`Decision`]s. It never
//! performs I/O and never reads the clock (time arrives in [`Ctx::now`]).
//!
//! One policy object serves one connection (built by its plugin's factory, see
//! [`crate::plugin`]) and is dropped with it, so per-connection memory is plain fields.
//!
//! Every decision carries its [`Reason`]: the daemon's log line, `mptcp-pmd status` and the
//! metrics all read it from there.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::conn::Connection;
use crate::model::{LocalAddr, PmEvent, SubflowKey};

/// What a policy wants done on one connection. The connection state machine turns actions into
/// kernel commands, assigning address ids and applying retry backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
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
        /// `None`: the connection's usual request handling (`ConnTimers::request_timeout`,
        /// retried with the path's backoff, given up after `max_retries`). `Some(t)`: a
        /// *probe*: sent at once whatever the path's backoff, and abandoned if it has not
        /// established within `t` (the entry fails with ETIMEDOUT and the kernel's socket is
        /// destroyed once its port is known); none of its failures count against the path.
        /// The policy re-opens at its own pace, so a join SYN never sits in its own
        /// exponential backoff on a path that may have healed.
        timeout: Option<Duration>,
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

impl Action {
    /// A short stable name (`open`, `close`, `set_backup`, `announce`, `remove`) for metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Open { .. } => "open",
            Action::Close { .. } => "close",
            Action::SetBackup { .. } => "set_backup",
            Action::Announce { .. } => "announce",
            Action::Remove { .. } => "remove",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Open {
                local,
                remote,
                backup,
                timeout,
                ..
            } => {
                write!(f, "open {local} -> {remote}")?;
                match (backup, timeout) {
                    (false, None) => Ok(()),
                    (true, None) => f.write_str(" (backup)"),
                    (false, Some(t)) => write!(f, " (probe, {} ms)", t.as_millis()),
                    (true, Some(t)) => write!(f, " (backup, probe, {} ms)", t.as_millis()),
                }
            }
            Action::Close { key } => write!(f, "close {key}"),
            Action::SetBackup { key, backup: true } => write!(f, "set backup {key}"),
            Action::SetBackup { key, backup: false } => write!(f, "clear backup {key}"),
            Action::Announce {
                addr,
                port: Some(p),
            } => write!(f, "announce {addr} port {p}"),
            Action::Announce { addr, port: None } => write!(f, "announce {addr}"),
            Action::Remove { addr } => write!(f, "remove {addr}"),
        }
    }
}

/// Why a policy decided something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// A short stable cause (`mesh`, `slow`, `recovered`, `probe`, `lossy`, ...): a metrics
    /// label, so it comes from a small fixed set per policy.
    pub code: &'static str,
    /// The explanation with the numbers behind it, for the log and `status`. Borrowed when the
    /// policy has nothing to add, so common decisions allocate nothing.
    pub detail: Cow<'static, str>,
}

impl Reason {
    /// A reason with a fixed explanation.
    pub const fn fixed(code: &'static str, detail: &'static str) -> Reason {
        Reason {
            code,
            detail: Cow::Borrowed(detail),
        }
    }

    /// A reason with a computed explanation.
    pub fn new(code: &'static str, detail: String) -> Reason {
        Reason {
            code,
            detail: Cow::Owned(detail),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

/// One decision: an action and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    /// `action` because of `reason`.
    pub fn new(action: Action, reason: Reason) -> Decision {
        Decision { action, reason }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.action, self.reason)
    }
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
