//! The sock_diag view of the MPTCP sockets in domain terms, as it leaves this crate: the
//! sock_diag poller turns each codec [`Snapshot`] into an [`MptcpSnapshot`] (tokens,
//! addresses, [`KernelSubflow`]s) before sending it, so no codec struct crosses an actor
//! boundary. Pure.

use std::net::SocketAddr;

use mptcp_pmd_policies::{KernelSubflow, SubflowKey, SubflowSample, Token};

use crate::sock_diag::{ConnSnapshot, Snapshot, TcpState};

/// One MPTCP socket (a connection or a listener) and its subflows.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotConn {
    /// Its local token (0 for a listener).
    pub token: Token,
    /// The MPTCP socket's local address (a listener's: the address and port it listens on).
    pub local: SocketAddr,
    /// The MPTCP socket's remote address.
    pub remote: SocketAddr,
    /// A listening socket rather than a connection.
    pub listener: bool,
    /// In TCP_ESTABLISHED.
    pub established: bool,
    /// Fell back to plain TCP.
    pub fallback: bool,
    /// Its subflows, sorted by 4-tuple (empty for listeners, and when the subflows were not
    /// dumped).
    pub subflows: Vec<KernelSubflow>,
}

impl SnapshotConn {
    /// Each subflow's 4-tuple with its health sample, as the connection state machine takes
    /// them (`Connection::handle_samples`).
    pub fn samples(&self) -> Vec<(SubflowKey, SubflowSample)> {
        self.subflows.iter().map(|s| (s.key, s.sample)).collect()
    }
}

/// The host's MPTCP sockets with their subflows at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MptcpSnapshot {
    /// Every MPTCP socket, listeners included, in dump order.
    pub conns: Vec<SnapshotConn>,
    /// Whether the subflows were dumped: `false` for a periodic poll while no policy reads
    /// samples, where every `subflows` list is empty because nobody asked.
    pub has_subflows: bool,
}

impl MptcpSnapshot {
    /// The MPTCP listening sockets (address and port).
    pub fn listeners(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.conns.iter().filter(|c| c.listener).map(|c| c.local)
    }
}

impl From<ConnSnapshot> for SnapshotConn {
    fn from(c: ConnSnapshot) -> Self {
        SnapshotConn {
            token: c.conn.token,
            local: c.conn.local,
            remote: c.conn.remote,
            listener: c.conn.is_listener(),
            established: c.conn.state == TcpState::Established,
            fallback: c.conn.flags.fallback(),
            subflows: c
                .subflows
                .into_iter()
                .map(|s| KernelSubflow {
                    key: s.key,
                    loc_id: s.loc_id,
                    rem_id: s.rem_id,
                    backup: s.sample.backup,
                    sample: s.sample,
                })
                .collect(),
        }
    }
}

impl From<Snapshot> for MptcpSnapshot {
    /// Subflows of no listed connection (orphans) and the count of undecodable replies stay
    /// behind: nothing outside the poller reads them.
    fn from(s: Snapshot) -> Self {
        MptcpSnapshot {
            conns: s.conns.into_iter().map(SnapshotConn::from).collect(),
            has_subflows: s.has_subflows,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sock_diag::{join, MptcpConnDiag, MptcpInfoFlags, SubflowDiag, SubflowFlags};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// An MPTCP connection (or listener) as the MPTCP dump lists it (also for the poller's
    /// tests).
    pub(crate) fn diag(token: u32, state: TcpState, local: &str) -> MptcpConnDiag {
        MptcpConnDiag {
            token: Token(token),
            local: addr(local),
            remote: if state == TcpState::Listen {
                addr("0.0.0.0:0")
            } else {
                addr("10.9.0.1:80")
            },
            state,
            inode: 0,
            subflows: 0,
            add_addr_signal: 0,
            add_addr_accepted: 0,
            subflows_max: 0,
            add_addr_signal_max: 0,
            add_addr_accepted_max: 0,
            flags: MptcpInfoFlags::default(),
            local_addr_used: 0,
            local_addr_max: 0,
            retransmits: None,
            bytes_retrans: None,
            bytes_sent: None,
            bytes_received: None,
            bytes_acked: None,
            subflows_total: None,
            last_data_sent_ms: None,
            last_data_recv_ms: None,
            last_ack_recv_ms: None,
        }
    }

    /// A subflow of connection `token` from local port `sport`.
    pub(crate) fn sub(token: u32, sport: u16) -> SubflowDiag {
        SubflowDiag {
            token: Token(token),
            remote_token: Token(0),
            key: SubflowKey {
                local: addr(&format!("10.0.0.1:{sport}")),
                remote: addr("10.0.9.1:5201"),
            },
            if_index: 0,
            state: 1,
            loc_id: 0,
            rem_id: 0,
            flags: SubflowFlags(0),
            sample: SubflowSample::default(),
        }
    }

    #[test]
    fn a_codec_snapshot_becomes_domain_data() {
        let mut fallback = diag(4, TcpState::Established, "10.0.0.1:40004");
        fallback.flags = MptcpInfoFlags(1);
        let mut s1 = sub(1, 20_000);
        s1.loc_id = 2;
        s1.rem_id = 3;
        s1.sample.backup = true;
        s1.sample.srtt_us = 1234;
        let raw = join(
            vec![
                diag(0, TcpState::Listen, "0.0.0.0:80"),
                diag(1, TcpState::Established, "10.0.0.1:40000"),
                fallback,
                diag(5, TcpState::SynSent, "10.0.0.1:40005"),
            ],
            vec![s1, sub(9, 20_001)],
        );
        let snap = MptcpSnapshot::from(raw);
        assert!(snap.has_subflows);
        assert_eq!(snap.listeners().collect::<Vec<_>>(), [addr("0.0.0.0:80")]);
        let flags: Vec<(u32, bool, bool, bool)> = snap
            .conns
            .iter()
            .map(|c| (c.token.0, c.listener, c.established, c.fallback))
            .collect();
        assert_eq!(
            flags,
            [
                (0, true, false, false),
                (1, false, true, false),
                (4, false, true, true),
                (5, false, false, false)
            ]
        );
        let c1 = &snap.conns[1];
        assert_eq!(c1.remote, addr("10.9.0.1:80"));
        assert_eq!(c1.subflows.len(), 1, "the orphan of token 9 stays behind");
        let k = c1.subflows[0];
        assert_eq!((k.loc_id, k.rem_id, k.backup), (2, 3, true));
        assert_eq!(k.key.local, addr("10.0.0.1:20000"));
        assert_eq!(c1.samples(), vec![(k.key, k.sample)]);
        assert_eq!(c1.samples()[0].1.srtt_us, 1234);
    }
}
