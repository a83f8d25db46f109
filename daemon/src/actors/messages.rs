//! Messages exchanged by the actors. Domain types only: no neli type crosses an actor boundary.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use mptcp_pmd_policies::conn::Connection;
use mptcp_pmd_policies::policy::Decision;
use mptcp_pmd_policies::{LocalAddr, PmEvent, SubflowKey, SubflowSample, Token};
use netlink_actor::sock_diag::Snapshot;

/// A kernel PM event (events actor -> registry -> connection actor).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct KernelEvent {
    /// The event.
    pub event: PmEvent,
    /// When the events actor read it from the socket: where the latency of the commands it
    /// causes is counted from (metrics).
    pub received: Instant,
}

/// Events were lost (ENOBUFS): rebuild the view from sock_diag.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Resync {
    /// Why.
    pub reason: &'static str,
}

/// A sock_diag snapshot (diag poller -> registry).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct DiagSnapshot(pub Snapshot);

/// Ask the diag poller for one snapshot now.
#[derive(Message, Debug)]
#[rtype(result = "Result<Snapshot, String>")]
pub struct TakeSnapshot;

/// Tell the diag poller whether connections exist (it polls only while they do).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetPolling(pub bool);

/// Include the subflows' samples in the periodic snapshots, or not (a policy reads them).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetSampling(pub bool);

/// Health samples of one connection's subflows (registry -> connection actor).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Samples(pub Vec<(SubflowKey, SubflowSample)>);

/// The usable local addresses changed (address monitor -> policy actor, registry, connections).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LocalsChanged {
    /// The new usable set.
    pub locals: Arc<Vec<LocalAddr>>,
    /// Addresses that were not usable before.
    pub added: Vec<IpAddr>,
}

/// Which policy hook a decision request is for.
#[derive(Debug, Clone)]
pub enum Hook {
    /// A kernel event.
    Event(PmEvent),
    /// Local addresses changed.
    Locals,
    /// New samples.
    Samples,
    /// Timer or adoption.
    Tick,
}

/// Ask the policy what to do with a connection (connection actor -> policy actor).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Decide {
    /// The hook to call.
    pub hook: Hook,
    /// A snapshot of the connection's state machine.
    pub conn: Box<Connection>,
    /// Where the decisions go.
    pub reply: Recipient<Decided>,
}

/// The policy's answer (policy actor -> connection actor).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Decided(pub Vec<Decision>);

/// A connection is gone (connection actor -> policy actor, registry).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ConnectionGone(pub Token);

/// Bring a tracked connection in line with a sock_diag snapshot (registry -> connection actor,
/// after events were lost).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reconcile {
    /// When the snapshot was requested.
    pub taken_at: std::time::Instant,
    /// The MPTCP socket's local address.
    pub local: std::net::SocketAddr,
    /// The MPTCP socket's remote address.
    pub remote: std::net::SocketAddr,
    /// The kernel's subflows.
    pub subflows: Vec<mptcp_pmd_policies::KernelSubflow>,
}
