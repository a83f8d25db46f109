//! The messages the kernel actors send and answer. Domain types only (`mptcp-pmd-policies`
//! and [`MptcpSnapshot`]): no codec struct and no socket error crosses an actor boundary. The
//! daemon's actors handle the outgoing ones; the kernel actors reach them through actix
//! `Recipient`s, so this crate does not know the daemon.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use mptcp_pmd_policies::{LocalAddr, PmEvent, Token};

use super::sampler::{Sample, Watch};
use super::snapshot::MptcpSnapshot;

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

/// A periodic sock_diag snapshot (diag poller -> registry).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct DiagSnapshot(pub MptcpSnapshot);

/// Ask the diag poller for one complete snapshot now (connections and subflows); the error is
/// the failed dump's text.
#[derive(Message, Debug)]
#[rtype(result = "Result<MptcpSnapshot, String>")]
pub struct TakeSnapshot;

/// Tell the diag poller whether connections exist (it polls only while they do).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetPolling(pub bool);

/// Sample one connection's subflows at its period from now on, or stop (`watch: None`; also
/// when the connection is gone). Connection actor -> diag poller, whenever what it asks
/// changes.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SampleConnection {
    /// The connection.
    pub token: Token,
    /// What to sample.
    pub watch: Option<Watch>,
}

/// One sampling tick's samples (diag poller -> registry, which hands each connection its
/// share as a [`super::sampler::SampleSet`]). The list stays shared until every share is
/// consumed: the poller starts no new tick while too many are in flight.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FreshSamples {
    /// Every sample of the tick.
    pub samples: Arc<Vec<Sample>>,
    /// Each connection and its range in `samples` (empty: an idle connection, due again).
    pub conns: Vec<(Token, std::ops::Range<usize>)>,
}

/// The usable local addresses changed (address monitor -> policy actor, registry, connections).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LocalsChanged {
    /// The new usable set.
    pub locals: Arc<Vec<LocalAddr>>,
    /// Addresses that were not usable before.
    pub added: Vec<IpAddr>,
}
