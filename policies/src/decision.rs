//! What a policy answers: a [`Decision`] is an [`Action`] on one connection and the
//! [`Reason`] for it. The policies produce them ([`crate::policy::Policy`]) and the connection
//! state machine applies them ([`crate::conn::Connection::handle_decisions`]); they live here,
//! apart from both, so neither of the two imports the other for them.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::model::SubflowKey;

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
        /// *probe*: sent at once whatever the path's backoff, never retried, none of its
        /// failures counted against the path; it counts as in flight for at most `t` (less
        /// once its SYN backs off exponentially), then is *stale*, its socket left to the
        /// kernel until the policy closes it (see [`crate::conn`]). The policy re-opens at
        /// its own pace, so a join SYN never sits in its own exponential backoff on a path
        /// that may have healed.
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
