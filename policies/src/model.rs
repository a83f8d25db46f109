//! The domain model shared by every crate: connection tokens, endpoints, path-manager events as
//! the daemon sees them, subflow health samples, local addresses and the actions a policy asks
//! for. Nothing here knows about netlink byte layouts; `netlink-actor` converts to and from these.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The kernel's local token of an MPTCP connection: its identity for every PM command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u32);

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// An MPTCP address id (0 is the initial subflow's address; 1..=255 are announced/joined ones).
pub type AddrId = u8;

/// Flags of an MPTCP connection as the kernel reports them in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnFlags {
    /// The peer refuses joins towards its initial address (MPTCP_PM_EV_FLAG_DENY_JOIN_ID0).
    pub deny_join_id0: bool,
    /// This host accepted the connection (we are the server).
    pub server_side: bool,
}

/// The description of a connection carried by CREATED and ESTABLISHED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// Connection token.
    pub token: Token,
    /// Local address and port of the initial subflow.
    pub local: SocketAddr,
    /// Remote address and port of the initial subflow.
    pub remote: SocketAddr,
    /// Local address id of the initial subflow (normally 0).
    pub loc_id: AddrId,
    /// Remote address id of the initial subflow (normally 0).
    pub rem_id: AddrId,
    /// Connection flags.
    pub flags: ConnFlags,
}

/// The description of one subflow carried by SUB_ESTABLISHED, SUB_CLOSED and SUB_PRIORITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubflowInfo {
    /// Connection token.
    pub token: Token,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// Local address id.
    pub loc_id: AddrId,
    /// Remote address id.
    pub rem_id: AddrId,
    /// Backup flag as the kernel sees it.
    pub backup: bool,
    /// Interface index, when the kernel reports it.
    pub if_idx: Option<i32>,
    /// Socket error (errno) that closed the subflow, when reported (0 = none).
    pub error: Option<u8>,
    /// MPTCP reset reason (MP_TCPRST), when reported.
    pub reset_reason: Option<u32>,
    /// MPTCP reset flags, when reported.
    pub reset_flags: Option<u32>,
}

impl SubflowInfo {
    /// The (local, remote) 4-tuple naming this subflow.
    pub fn key(&self) -> SubflowKey {
        SubflowKey {
            local: self.local,
            remote: self.remote,
        }
    }
}

/// A subflow's identity: its 4-tuple. Unique among the live subflows of one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubflowKey {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
}

impl fmt::Display for SubflowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.local, self.remote)
    }
}

/// A path-manager event from the kernel (`mptcp_pm_events`), in domain terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmEvent {
    /// MPTCP_EVENT_CREATED: a connection exists (not yet fully established).
    Created(ConnInfo),
    /// MPTCP_EVENT_ESTABLISHED: the connection is fully established; joins are now possible.
    Established(ConnInfo),
    /// MPTCP_EVENT_CLOSED: the connection is gone.
    Closed {
        /// Connection token.
        token: Token,
    },
    /// MPTCP_EVENT_ANNOUNCED: the peer announced an address (ADD_ADDR).
    Announced {
        /// Connection token.
        token: Token,
        /// The peer's id for that address.
        rem_id: AddrId,
        /// The announced address.
        addr: IpAddr,
        /// The announced port, if any (otherwise the connection's port applies).
        port: Option<u16>,
    },
    /// MPTCP_EVENT_REMOVED: the peer removed an address (RM_ADDR).
    Removed {
        /// Connection token.
        token: Token,
        /// The peer's id of the removed address.
        rem_id: AddrId,
    },
    /// MPTCP_EVENT_SUB_ESTABLISHED: a subflow joined.
    SubEstablished(SubflowInfo),
    /// MPTCP_EVENT_SUB_CLOSED: a subflow closed (or failed to join).
    SubClosed(SubflowInfo),
    /// MPTCP_EVENT_SUB_PRIORITY: a subflow's backup flag changed.
    SubPriority(SubflowInfo),
    /// MPTCP_EVENT_LISTENER_CREATED.
    ListenerCreated {
        /// Listening address and port.
        addr: SocketAddr,
    },
    /// MPTCP_EVENT_LISTENER_CLOSED.
    ListenerClosed {
        /// Listening address and port.
        addr: SocketAddr,
    },
    /// An event type this build does not know (a newer kernel); carried, never fatal.
    Unknown {
        /// The raw event (genl command) number.
        kind: u8,
        /// The token, if the message had one.
        token: Option<Token>,
    },
}

impl PmEvent {
    /// The connection this event is about, if any.
    pub fn token(&self) -> Option<Token> {
        match self {
            PmEvent::Created(c) | PmEvent::Established(c) => Some(c.token),
            PmEvent::Closed { token }
            | PmEvent::Announced { token, .. }
            | PmEvent::Removed { token, .. } => Some(*token),
            PmEvent::SubEstablished(s) | PmEvent::SubClosed(s) | PmEvent::SubPriority(s) => {
                Some(s.token)
            }
            PmEvent::ListenerCreated { .. } | PmEvent::ListenerClosed { .. } => None,
            PmEvent::Unknown { token, .. } => *token,
        }
    }

    /// A short stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            PmEvent::Created(_) => "created",
            PmEvent::Established(_) => "established",
            PmEvent::Closed { .. } => "closed",
            PmEvent::Announced { .. } => "announced",
            PmEvent::Removed { .. } => "removed",
            PmEvent::SubEstablished(_) => "sub_established",
            PmEvent::SubClosed(_) => "sub_closed",
            PmEvent::SubPriority(_) => "sub_priority",
            PmEvent::ListenerCreated { .. } => "listener_created",
            PmEvent::ListenerClosed { .. } => "listener_closed",
            PmEvent::Unknown { .. } => "unknown",
        }
    }
}

/// A usable local address, after the daemon's filters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalAddr {
    /// The address.
    pub addr: IpAddr,
    /// Interface index.
    pub if_index: u32,
    /// Interface name.
    pub if_name: String,
    /// Subflows from this address get the backup flag.
    pub backup: bool,
}

/// One measurement of one subflow's health, from a sock_diag poll.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SubflowSample {
    /// The socket's TCP state (tcpi_state: 1 ESTABLISHED, 2 SYN_SENT, ...; 0 if unknown).
    pub tcp_state: u8,
    /// Smoothed RTT in microseconds (tcpi_rtt).
    pub srtt_us: u32,
    /// RTT variance in microseconds (tcpi_rttvar).
    pub rttvar_us: u32,
    /// Minimum RTT seen, in microseconds (tcpi_min_rtt), 0 if unknown.
    pub min_rtt_us: u32,
    /// Congestion window in segments.
    pub snd_cwnd: u32,
    /// Retransmission timeouts of the oldest unacknowledged segment in a row, without an ACK
    /// in between (tcpi_retransmits; 0 again once data is acknowledged).
    pub retransmits: u8,
    /// Unanswered zero-window or keepalive probes (tcpi_probes; any ACK resets it).
    pub probes: u8,
    /// Exponential backoffs of the retransmission (or zero-window probe) timer
    /// (tcpi_backoff).
    pub backoff: u8,
    /// The current retransmission timeout in microseconds (tcpi_rto), 0 if unknown.
    pub rto_us: u32,
    /// Segments sent and not yet acknowledged (tcpi_unacked): data outstanding.
    pub unacked: u32,
    /// Milliseconds since data was last sent, retransmissions included (tcpi_last_data_sent).
    pub last_data_sent_ms: u32,
    /// Milliseconds since an ACK was last received (tcpi_last_ack_recv).
    pub last_ack_recv_ms: u32,
    /// The peer's advertised receive window in bytes (tcpi_snd_wnd), 0 if the kernel does
    /// not report it (before Linux 6.2) or the window is closed.
    pub snd_wnd: u32,
    /// Total retransmitted segments (tcpi_total_retrans).
    pub total_retrans: u32,
    /// Segments counted lost (tcpi_lost).
    pub lost: u32,
    /// Segments sent (tcpi_segs_out), 0 if the kernel does not report it.
    pub segs_out: u32,
    /// Delivery rate estimate in bytes per second (0 if unknown).
    pub delivery_rate: u64,
    /// Bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Payload bytes sent, retransmissions included (tcpi_bytes_sent, Linux 4.19+; 0 before).
    pub bytes_sent: u64,
    /// Segments received (tcpi_segs_in), 0 if the kernel does not report it.
    pub segs_in: u32,
    /// Segments sent that carried data (tcpi_data_segs_out); the rest of `segs_out` are
    /// control segments (ACKs, SYN, FIN).
    pub data_segs_out: u32,
    /// Segments received that carried data (tcpi_data_segs_in).
    pub data_segs_in: u32,
    /// The subflow's backup flag as the kernel reports it in the ULP info (local side).
    pub backup: bool,
    /// MPTCP says the subflow is fully established.
    pub fully_established: bool,
}

/// Linux's least retransmission timeout (TCP_RTO_MIN).
pub const TCP_RTO_MIN: std::time::Duration = std::time::Duration::from_millis(200);

/// `tcpi_state` of a socket whose join SYN is still unanswered (TCP_SYN_SENT).
pub const TCP_SYN_SENT: u8 = 2;

/// One subflow of a connection as sock_diag lists it (adoption at start-up, resync).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KernelSubflow {
    /// The subflow's 4-tuple.
    pub key: SubflowKey,
    /// Local address id.
    pub loc_id: AddrId,
    /// Remote address id.
    pub rem_id: AddrId,
    /// The local backup flag.
    pub backup: bool,
    /// Its health sample.
    pub sample: SubflowSample,
}

/// A userspace-PM command for the kernel, fully specified (token, address ids). The connection
/// state machine turns a policy's decisions into these; `netlink-actor` encodes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmCommand {
    /// SUBFLOW_CREATE from `local` (address id `local_id`) to `remote`.
    CreateSubflow {
        /// Connection token.
        token: Token,
        /// Local address.
        local: IpAddr,
        /// Local address id to use (the connection assigns one per local address).
        local_id: AddrId,
        /// Interface to bind to, if known.
        if_index: Option<u32>,
        /// Remote address and port.
        remote: SocketAddr,
        /// Ask for the backup flag once established.
        backup: bool,
    },
    /// SUBFLOW_DESTROY of one subflow.
    DestroySubflow {
        /// Connection token.
        token: Token,
        /// The subflow.
        key: SubflowKey,
    },
    /// SET_FLAGS: backup on or off for one subflow.
    SetBackup {
        /// Connection token.
        token: Token,
        /// The subflow.
        key: SubflowKey,
        /// New backup flag.
        backup: bool,
    },
    /// ANNOUNCE a local address to the peer.
    Announce {
        /// Connection token.
        token: Token,
        /// Local address id (1..=255).
        id: AddrId,
        /// Address.
        addr: IpAddr,
        /// Port, if any.
        port: Option<u16>,
    },
    /// REMOVE an announced address id.
    Remove {
        /// Connection token.
        token: Token,
        /// Local address id.
        id: AddrId,
    },
}

impl PmCommand {
    /// The connection the action is for.
    pub fn token(&self) -> Token {
        match self {
            PmCommand::CreateSubflow { token, .. }
            | PmCommand::DestroySubflow { token, .. }
            | PmCommand::SetBackup { token, .. }
            | PmCommand::Announce { token, .. }
            | PmCommand::Remove { token, .. } => *token,
        }
    }

    /// A short stable name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            PmCommand::CreateSubflow { .. } => "subflow_create",
            PmCommand::DestroySubflow { .. } => "subflow_destroy",
            PmCommand::SetBackup { .. } => "set_flags",
            PmCommand::Announce { .. } => "announce",
            PmCommand::Remove { .. } => "remove",
        }
    }
}
