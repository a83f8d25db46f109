//! What an operator asks of one connection by hand (`mptcp-pmd subflow create`, `announce`, ...):
//! a [`Manual`] command, and why the connection state machine may refuse it before anything is
//! sent to the kernel ([`ManualRefusal`]). The state machine applies them
//! ([`crate::conn::Connection::handle_manual`]) like a policy's decisions, but at once (no
//! backoff, no given-up paths: the operator asked for this path now) and marks what they made as
//! made by hand, so the policy counts a manual subflow like one of its own and `status` can say
//! which ones were. Holding a connection (the policy stops acting on it) is
//! [`crate::conn::Connection::set_held`]; it needs no command of its own.

use std::net::{IpAddr, SocketAddr};

use crate::model::{AddrId, SubflowKey};

/// One operator command for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manual {
    /// SUBFLOW_CREATE from `local` to `remote`.
    Create {
        /// Local address (the kernel picks the port).
        local: IpAddr,
        /// Remote address and port.
        remote: SocketAddr,
        /// Ask for the backup flag once established.
        backup: bool,
    },
    /// SUBFLOW_DESTROY of one established subflow.
    Destroy {
        /// The subflow.
        key: SubflowKey,
    },
    /// SET_FLAGS: the backup flag of one established subflow.
    SetBackup {
        /// The subflow.
        key: SubflowKey,
        /// The new flag.
        backup: bool,
    },
    /// ANNOUNCE a local address, with the id given (or the one the connection picks).
    Announce {
        /// The address.
        addr: IpAddr,
        /// The address id to use (1..=255), if the operator chose one.
        id: Option<AddrId>,
    },
    /// REMOVE an announced address by its id.
    Withdraw {
        /// The id.
        id: AddrId,
    },
}

impl Manual {
    /// A short stable name (`subflow_create`, `subflow_destroy`, `subflow_backup`, `announce`,
    /// `withdraw`) for logs, metrics and the control protocol.
    pub fn name(&self) -> &'static str {
        match self {
            Manual::Create { .. } => "subflow_create",
            Manual::Destroy { .. } => "subflow_destroy",
            Manual::SetBackup { .. } => "subflow_backup",
            Manual::Announce { .. } => "announce",
            Manual::Withdraw { .. } => "withdraw",
        }
    }
}

/// Why the state machine refused an operator command (nothing was sent to the kernel).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManualRefusal {
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
    /// Joins and announcements need a fully established connection.
    #[error("the connection is not fully established yet (no MPTCP ESTABLISHED event)")]
    NotEstablished,
    /// The local and remote addresses are of different families.
    #[error("{local} and {remote} are of different address families")]
    FamilyMismatch {
        /// Local address.
        local: IpAddr,
        /// Remote address.
        remote: SocketAddr,
    },
    /// No established subflow has that 4-tuple (or it is being closed already).
    #[error("no established subflow {key} on this connection (see `mptcp-pmd status`)")]
    NoSuchSubflow {
        /// The 4-tuple asked for.
        key: SubflowKey,
    },
    /// Every local address id is taken.
    #[error("no free local address id on this connection")]
    NoFreeId,
    /// Id 0 names the initial subflow's address and cannot be announced or removed.
    #[error("address id 0 is the initial subflow's; use 1..255")]
    IdZero,
    /// The address already has another id on this connection (the kernel binds one id to
    /// one address for the connection's life).
    #[error("{addr} already has address id {has} on this connection, not {asked}")]
    AddressHasId {
        /// The address.
        addr: IpAddr,
        /// Its id.
        has: AddrId,
        /// The id asked for.
        asked: AddrId,
    },
    /// The id is another address's on this connection.
    #[error("address id {id} is {other}'s on this connection")]
    IdTaken {
        /// The id.
        id: AddrId,
        /// The address holding it.
        other: IpAddr,
    },
    /// The address is the initial subflow's, which the peer knows already (id 0).
    #[error("{0} is the initial subflow's address, which the peer knows already")]
    InitialAddress(IpAddr),
    /// The address is announced already.
    #[error("{addr} is announced already (id {id})")]
    AlreadyAnnounced {
        /// The address.
        addr: IpAddr,
        /// Its id.
        id: AddrId,
    },
    /// No active announcement has that id.
    #[error("no active announcement with id {0} on this connection (see `mptcp-pmd status`)")]
    NoSuchAnnouncement(AddrId),
}
