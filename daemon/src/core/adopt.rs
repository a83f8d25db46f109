//! Which connections of a sock_diag snapshot a (re)started daemon adopts, in domain terms. Pure.

use std::collections::HashSet;
use std::net::SocketAddr;

use mptcp_pmd_policies::{KernelSubflow, Token};
use netlink_actor::actors::MptcpSnapshot;

/// A connection to adopt.
#[derive(Debug, Clone, PartialEq)]
pub struct Adoptable {
    /// Its token.
    pub token: Token,
    /// Local address of the MPTCP socket (the initial subflow's).
    pub local: SocketAddr,
    /// Remote address of the MPTCP socket.
    pub remote: SocketAddr,
    /// Accepted by a local listener.
    pub server_side: bool,
    /// Its live subflows.
    pub subflows: Vec<KernelSubflow>,
}

/// The established, non-fallback MPTCP connections of `snap`. A connection whose local port is
/// that of a local MPTCP listener was accepted here, so it is server side.
pub fn adoptable(snap: &MptcpSnapshot) -> Vec<Adoptable> {
    let listen_ports: HashSet<u16> = snap.listeners().map(|l| l.port()).collect();
    snap.conns
        .iter()
        .filter(|c| c.established && !c.fallback)
        .map(|c| Adoptable {
            token: c.token,
            local: c.local,
            remote: c.remote,
            server_side: listen_ports.contains(&c.local.port()),
            subflows: c.subflows.clone(),
        })
        .collect()
}
