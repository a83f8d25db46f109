//! Messages between the daemon's actors (the kernel actors' own are
//! `netlink_actor::actors::messages`). Domain types only: no netlink type crosses an actor
//! boundary.

use std::sync::Arc;

use actix::prelude::*;
use mptcp_pmd_policies::conn::Connection;
use mptcp_pmd_policies::policy::Decision;
use mptcp_pmd_policies::{PmEvent, Token};
use netlink_actor::actors::{Pace, SampleSet};

/// Health samples of one connection's subflows (registry -> connection actor): its share of a
/// sampling tick (held until consumed, see `netlink_actor::actors::FreshSamples`; empty for
/// an idle connection, due again) or of a snapshot.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Samples(pub SampleSet);

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
    /// The connection's state machine as it is now. Shared, not copied: the connection actor
    /// copies it only if it must change it while the policy still holds it
    /// (`Arc::make_mut`), which one outstanding decision per connection makes rare.
    pub conn: Arc<Connection>,
    /// Where the decisions go: the connection actor's, made once (making a `Recipient` from
    /// an actor's address allocates three times).
    pub reply: Arc<Recipient<Decided>>,
}

/// The policy's answer (policy actor -> connection actor), and how the connection's subflows
/// are to be sampled for its policy (`None`: not at all; it changes on a reload).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Decided(pub Vec<Decision>, pub Option<Pace>);

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
