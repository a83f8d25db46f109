//! Which connections of a sock_diag snapshot a (re)started daemon adopts, in domain terms. Pure.

use std::collections::HashSet;
use std::net::SocketAddr;

use mptcp_pmd_policies::{KernelSubflow, Token};
use netlink_actor::sock_diag::{Snapshot, TcpState};

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
pub fn adoptable(snap: &Snapshot) -> Vec<Adoptable> {
    let listen_ports: HashSet<u16> = snap
        .conns
        .iter()
        .filter(|c| c.conn.is_listener())
        .map(|c| c.conn.local.port())
        .collect();
    snap.conns
        .iter()
        .filter(|c| c.conn.state == TcpState::Established && !c.conn.flags.fallback())
        .map(|c| Adoptable {
            token: c.conn.token,
            local: c.conn.local,
            remote: c.conn.remote,
            server_side: listen_ports.contains(&c.conn.local.port()),
            subflows: c
                .subflows
                .iter()
                .map(|s| KernelSubflow {
                    key: s.key,
                    loc_id: s.loc_id,
                    rem_id: s.rem_id,
                    backup: s.sample.backup,
                    sample: s.sample,
                })
                .collect(),
        })
        .collect()
}
