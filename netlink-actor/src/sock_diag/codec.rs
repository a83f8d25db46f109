//! The `inet_diag` codec (pure): the two dump requests and their replies.
//! - MPTCP connections (`IPPROTO_MPTCP`, which does not fit the request's u8 protocol field and
//!   travels in an `INET_DIAG_REQ_PROTOCOL` attribute); `INET_DIAG_INFO` carries
//!   `struct mptcp_info` → [`MptcpConnDiag`]. Listeners are included and marked by their state.
//! - TCP sockets with `INET_DIAG_INFO` (`struct tcp_info`), of which only those whose
//!   `INET_DIAG_ULP_INFO` names the `mptcp` ULP are kept → [`SubflowDiag`], whose token is the
//!   connection's *local* token.
//!
//! [`join`] pairs both by token into a [`Snapshot`]. Kernel structures grow between releases,
//! so fixed structs are parsed by length: a field beyond the end of what the kernel sent is
//! "absent" (0 or `None`), never an error.
//!
//! The structs are ours (neli has no sock_diag): `inet_diag_req_v2` is serialised by neli inside
//! its `Nlmsghdr` (`InetDiagReqV2` derives neli's `ToBytes`), `inet_diag_msg`, `tcp_info` and
//! `mptcp_info` are read at their offsets; the attributes around them are neli's `Rtattr`s
//! (sock_diag speaks the rtattr format), walked without copies ([`crate::wire`]).
//!
//! Layouts: `include/uapi/linux/inet_diag.h`, `tcp.h`, `mptcp.h`; offsets below were checked
//! against the 6.18 headers (mptcp_info 96 bytes, tcp_info 280 bytes on this kernel).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mptcp_pmd_policies::model::{SubflowKey, SubflowSample, Token};

use crate::dump::payload_of;
use crate::error::DecodeError;
use crate::error::EncodeError;
use crate::wire::{request, rtattr, rtattrs, Message, RtAttrs};

use neli::consts::nl::NlmF;
use neli::types::{Buffer, RtBuffer};

/// Netlink protocol number of sock_diag.
pub const NETLINK_SOCK_DIAG: i32 = libc::NETLINK_SOCK_DIAG;
/// `SOCK_DIAG_BY_FAMILY`: request and reply message type.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u8 = libc::IPPROTO_TCP as u8;
/// `IPPROTO_MPTCP` (does not fit `sdiag_protocol`).
pub const IPPROTO_MPTCP: u32 = libc::IPPROTO_MPTCP as u32;

/// Request attribute `INET_DIAG_REQ_PROTOCOL` (u32 protocol).
pub const INET_DIAG_REQ_PROTOCOL: u16 = 3;
/// Reply attribute `INET_DIAG_INFO` (`tcp_info` / `mptcp_info`).
pub const INET_DIAG_INFO: u16 = 2;
/// Reply attribute `INET_DIAG_ULP_INFO` (nested).
pub const INET_DIAG_ULP_INFO: u16 = 19;
/// `INET_ULP_INFO_NAME` inside `INET_DIAG_ULP_INFO` (string).
pub const INET_ULP_INFO_NAME: u16 = 1;
/// `INET_ULP_INFO_MPTCP` inside `INET_DIAG_ULP_INFO` (nested `MPTCP_SUBFLOW_ATTR_*`).
pub const INET_ULP_INFO_MPTCP: u16 = 3;

/// `MPTCP_SUBFLOW_ATTR_TOKEN_REM` (u32).
pub const MPTCP_SUBFLOW_ATTR_TOKEN_REM: u16 = 1;
/// `MPTCP_SUBFLOW_ATTR_TOKEN_LOC` (u32).
pub const MPTCP_SUBFLOW_ATTR_TOKEN_LOC: u16 = 2;
/// `MPTCP_SUBFLOW_ATTR_FLAGS` (u32).
pub const MPTCP_SUBFLOW_ATTR_FLAGS: u16 = 8;
/// `MPTCP_SUBFLOW_ATTR_ID_REM` (u8).
pub const MPTCP_SUBFLOW_ATTR_ID_REM: u16 = 9;
/// `MPTCP_SUBFLOW_ATTR_ID_LOC` (u8).
pub const MPTCP_SUBFLOW_ATTR_ID_LOC: u16 = 10;

/// TCP states as bit masks for `idiag_states` (`1 << TCP_*`).
pub mod tcpf {
    /// TCP_ESTABLISHED.
    pub const ESTABLISHED: u32 = 1 << 1;
    /// TCP_SYN_SENT.
    pub const SYN_SENT: u32 = 1 << 2;
    /// TCP_SYN_RECV.
    pub const SYN_RECV: u32 = 1 << 3;
    /// TCP_FIN_WAIT1.
    pub const FIN_WAIT1: u32 = 1 << 4;
    /// TCP_FIN_WAIT2.
    pub const FIN_WAIT2: u32 = 1 << 5;
    /// TCP_TIME_WAIT.
    pub const TIME_WAIT: u32 = 1 << 6;
    /// TCP_CLOSE.
    pub const CLOSE: u32 = 1 << 7;
    /// TCP_CLOSE_WAIT.
    pub const CLOSE_WAIT: u32 = 1 << 8;
    /// TCP_LAST_ACK.
    pub const LAST_ACK: u32 = 1 << 9;
    /// TCP_LISTEN.
    pub const LISTEN: u32 = 1 << 10;
    /// TCP_CLOSING.
    pub const CLOSING: u32 = 1 << 11;
    /// Every state up to TCP_CLOSING.
    pub const ALL: u32 = 0xFFF;
    /// States of a socket with a peer that can carry data or is closing: the default filter of
    /// the subflow dump (no listeners, no TIME_WAIT minisockets, which have no ULP info).
    pub const CONNECTED: u32 =
        ESTABLISHED | SYN_SENT | FIN_WAIT1 | FIN_WAIT2 | CLOSE_WAIT | LAST_ACK | CLOSING;
    /// The default filter of the MPTCP connection dump: everything but TIME_WAIT / SYN_RECV,
    /// which MPTCP sockets never use.
    pub const MPTCP_DEFAULT: u32 = ALL & !(TIME_WAIT | SYN_RECV);
}

/// Size of `struct inet_diag_req_v2`.
pub const INET_DIAG_REQ_V2_LEN: usize = 56;
/// Size of `struct inet_diag_msg`.
pub const INET_DIAG_MSG_LEN: usize = 72;
/// Bytes of `struct mptcp_info` up to and including `mptcpi_token`: less is unusable.
pub const MPTCP_INFO_MIN_LEN: usize = 16;

/// The address family of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// AF_INET.
    V4,
    /// AF_INET6.
    V6,
}

impl IpFamily {
    /// The `AF_*` value.
    pub fn af(self) -> u8 {
        match self {
            IpFamily::V4 => libc::AF_INET as u8,
            IpFamily::V6 => libc::AF_INET6 as u8,
        }
    }
}

/// A TCP (or MPTCP socket) state as sock_diag reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// TCP_ESTABLISHED.
    Established,
    /// TCP_SYN_SENT.
    SynSent,
    /// TCP_SYN_RECV.
    SynRecv,
    /// TCP_FIN_WAIT1.
    FinWait1,
    /// TCP_FIN_WAIT2.
    FinWait2,
    /// TCP_TIME_WAIT.
    TimeWait,
    /// TCP_CLOSE.
    Close,
    /// TCP_CLOSE_WAIT.
    CloseWait,
    /// TCP_LAST_ACK.
    LastAck,
    /// TCP_LISTEN.
    Listen,
    /// TCP_CLOSING.
    Closing,
    /// A value this build does not know.
    Other(u8),
}

impl From<u8> for TcpState {
    fn from(v: u8) -> Self {
        match v {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 => TcpState::SynRecv,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Close,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            o => TcpState::Other(o),
        }
    }
}

impl From<TcpState> for u8 {
    fn from(s: TcpState) -> u8 {
        match s {
            TcpState::Established => 1,
            TcpState::SynSent => 2,
            TcpState::SynRecv => 3,
            TcpState::FinWait1 => 4,
            TcpState::FinWait2 => 5,
            TcpState::TimeWait => 6,
            TcpState::Close => 7,
            TcpState::CloseWait => 8,
            TcpState::LastAck => 9,
            TcpState::Listen => 10,
            TcpState::Closing => 11,
            TcpState::Other(v) => v,
        }
    }
}

/// The fixed header of every sock_diag reply (`struct inet_diag_msg`), decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InetDiagMsg {
    /// Address family (AF_INET / AF_INET6).
    pub family: u8,
    /// Socket state.
    pub state: TcpState,
    /// Pending timer (idiag_timer).
    pub timer: u8,
    /// Retransmit count of that timer (idiag_retrans).
    pub retrans: u8,
    /// Local address and port. IPv4-mapped IPv6 addresses are reported as IPv4, as the PM
    /// events do, so that keys from both sources compare equal.
    pub local: SocketAddr,
    /// Remote address and port (unspecified, port 0 for listeners).
    pub remote: SocketAddr,
    /// Bound interface index (0 = none).
    pub if_index: u32,
    /// The socket cookie.
    pub cookie: u64,
    /// Receive queue (bytes) or, for listeners, accept backlog.
    pub rqueue: u32,
    /// Send queue (bytes).
    pub wqueue: u32,
    /// Owner uid.
    pub uid: u32,
    /// Inode of the socket (0 for kernel-internal sockets such as joined subflows).
    pub inode: u32,
}

/// The first `N` bytes of an `inet_diag_sockid` address field.
fn addr_bytes<const N: usize>(raw: &[u8]) -> Result<[u8; N], DecodeError> {
    raw.get(..N)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::Truncated {
            what: "inet_diag_sockid address",
            need: N,
            have: raw.len(),
        })
}

fn sock_ip(family: u8, raw: &[u8]) -> Result<IpAddr, DecodeError> {
    if family == libc::AF_INET as u8 {
        Ok(IpAddr::V4(Ipv4Addr::from(addr_bytes::<4>(raw)?)))
    } else if family == libc::AF_INET6 as u8 {
        Ok(IpAddr::V6(Ipv6Addr::from(addr_bytes::<16>(raw)?)).to_canonical())
    } else {
        Err(DecodeError::Invalid {
            what: "inet_diag_msg family",
            value: u64::from(family),
        })
    }
}

/// Decode `struct inet_diag_msg` at the start of a reply payload; returns it and the attribute
/// bytes that follow.
pub fn parse_inet_diag_msg(payload: &[u8]) -> Result<(InetDiagMsg, &[u8]), DecodeError> {
    let (h, rest) = match (
        payload.get(..INET_DIAG_MSG_LEN),
        payload.get(INET_DIAG_MSG_LEN..),
    ) {
        (Some(h), Some(rest)) => (h, rest),
        _ => {
            return Err(DecodeError::Truncated {
                what: "inet_diag_msg",
                need: INET_DIAG_MSG_LEN,
                have: payload.len(),
            })
        }
    };
    let family = h[0];
    // The length check above makes every fixed-offset read below succeed.
    let sport = be_u16(h, 4).unwrap_or(0);
    let dport = be_u16(h, 6).unwrap_or(0);
    let local = SocketAddr::new(sock_ip(family, &h[8..24])?, sport);
    let remote = SocketAddr::new(sock_ip(family, &h[24..40])?, dport);
    let cookie_lo = ne_u32(h, 44).unwrap_or(0);
    let cookie_hi = ne_u32(h, 48).unwrap_or(0);
    let msg = InetDiagMsg {
        family,
        state: TcpState::from(h[1]),
        timer: h[2],
        retrans: h[3],
        local,
        remote,
        if_index: ne_u32(h, 40).unwrap_or(0),
        cookie: u64::from(cookie_lo) | (u64::from(cookie_hi) << 32),
        rqueue: ne_u32(h, 56).unwrap_or(0),
        wqueue: ne_u32(h, 60).unwrap_or(0),
        uid: ne_u32(h, 64).unwrap_or(0),
        inode: ne_u32(h, 68).unwrap_or(0),
    };
    Ok((msg, rest))
}

/// `struct inet_diag_req_v2` and the attributes after it: the payload of a dump request.
#[derive(Debug, neli::Size, neli::ToBytes)]
struct InetDiagReqV2 {
    sdiag_family: u8,
    sdiag_protocol: u8,
    idiag_ext: u8,
    pad: u8,
    idiag_states: u32,
    /// `struct inet_diag_sockid`: all zero in a dump (no filter on addresses, ports,
    /// interface, cookie); the socket's 4-tuple in a lookup.
    id: [u8; INET_DIAG_REQ_V2_LEN - 8],
    attrs: RtBuffer<u16, Buffer>,
}

fn dump_request(
    family: IpFamily,
    proto: u8,
    proto_attr: Option<u32>,
    states: u32,
    seq: u32,
) -> Result<Vec<u8>, EncodeError> {
    const WHAT: &str = "SOCK_DIAG_BY_FAMILY dump";
    let mut attrs = RtAttrs::new();
    if let Some(p) = proto_attr {
        attrs.push(rtattr(WHAT, INET_DIAG_REQ_PROTOCOL, p)?);
    }
    let req = InetDiagReqV2 {
        sdiag_family: family.af(),
        sdiag_protocol: proto,
        idiag_ext: 1 << (INET_DIAG_INFO - 1),
        pad: 0,
        idiag_states: states,
        id: [0; INET_DIAG_REQ_V2_LEN - 8],
        attrs,
    };
    request(
        WHAT,
        SOCK_DIAG_BY_FAMILY,
        NlmF::REQUEST | NlmF::DUMP,
        seq,
        req,
    )
}

/// An exact-lookup request (no `NLM_F_DUMP`, no ACK asked for: exactly one reply or error per
/// request) for the TCP socket whose `struct inet_diag_sockid` is `sockid`, with
/// `INET_DIAG_INFO` (see [`super::lookup`]).
pub fn lookup_request(
    family: IpFamily,
    sockid: [u8; INET_DIAG_REQ_V2_LEN - 8],
    seq: u32,
) -> Result<Vec<u8>, EncodeError> {
    let req = InetDiagReqV2 {
        sdiag_family: family.af(),
        sdiag_protocol: IPPROTO_TCP,
        idiag_ext: 1 << (INET_DIAG_INFO - 1),
        pad: 0,
        idiag_states: u32::MAX,
        id: sockid,
        attrs: RtAttrs::new(),
    };
    request(
        "SOCK_DIAG_BY_FAMILY lookup",
        SOCK_DIAG_BY_FAMILY,
        NlmF::REQUEST,
        seq,
        req,
    )
}

/// A dump request for the MPTCP sockets of one family, with `INET_DIAG_INFO`
/// (`struct mptcp_info`), in the states of `states` (see [`tcpf`]).
pub fn mptcp_dump_request(family: IpFamily, states: u32, seq: u32) -> Result<Vec<u8>, EncodeError> {
    // sdiag_protocol must be 0 here: the real protocol is the INET_DIAG_REQ_PROTOCOL attribute.
    dump_request(family, 0, Some(IPPROTO_MPTCP), states, seq)
}

/// A dump request for the TCP sockets of one family in `states`, with `INET_DIAG_INFO`
/// (`struct tcp_info`; the kernel adds `INET_DIAG_ULP_INFO` by itself for ULP sockets).
pub fn tcp_dump_request(family: IpFamily, states: u32, seq: u32) -> Result<Vec<u8>, EncodeError> {
    dump_request(family, IPPROTO_TCP, None, states, seq)
}

/// `mptcpi_flags` of `struct mptcp_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MptcpInfoFlags(pub u32);

impl MptcpInfoFlags {
    /// MPTCP_INFO_FLAG_FALLBACK: the connection fell back to plain TCP.
    pub fn fallback(self) -> bool {
        self.0 & 1 != 0
    }
    /// MPTCP_INFO_FLAG_REMOTE_KEY_RECEIVED.
    pub fn remote_key_received(self) -> bool {
        self.0 & 2 != 0
    }
}

/// One MPTCP socket (connection or listener) from the MPTCP dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MptcpConnDiag {
    /// The connection's local token (`mptcpi_token`; 0 for listeners).
    pub token: Token,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// State of the MPTCP socket; [`TcpState::Listen`] for listeners.
    pub state: TcpState,
    /// Inode of the MPTCP socket.
    pub inode: u32,
    /// Additional subflows (`mptcpi_subflows`, the initial one not counted).
    pub subflows: u8,
    /// ADD_ADDRs sent (`mptcpi_add_addr_signal`).
    pub add_addr_signal: u8,
    /// ADD_ADDRs accepted (`mptcpi_add_addr_accepted`).
    pub add_addr_accepted: u8,
    /// Limit of additional subflows (`mptcpi_subflows_max`).
    pub subflows_max: u8,
    /// `mptcpi_add_addr_signal_max`.
    pub add_addr_signal_max: u8,
    /// `mptcpi_add_addr_accepted_max`.
    pub add_addr_accepted_max: u8,
    /// `mptcpi_flags`.
    pub flags: MptcpInfoFlags,
    /// Local addresses used (`mptcpi_local_addr_used`, 5.12+, else 0).
    pub local_addr_used: u8,
    /// `mptcpi_local_addr_max` (5.12+, else 0).
    pub local_addr_max: u8,
    /// MPTCP-level retransmissions (6.5+).
    pub retransmits: Option<u32>,
    /// Bytes retransmitted at the MPTCP level (6.5+).
    pub bytes_retrans: Option<u64>,
    /// Bytes sent (6.5+).
    pub bytes_sent: Option<u64>,
    /// Bytes received (6.5+).
    pub bytes_received: Option<u64>,
    /// Bytes acked by the peer (6.5+).
    pub bytes_acked: Option<u64>,
    /// All subflows, the initial one included (6.8+).
    pub subflows_total: Option<u8>,
    /// Milliseconds since data was last sent (6.10+).
    pub last_data_sent_ms: Option<u32>,
    /// Milliseconds since data was last received (6.10+).
    pub last_data_recv_ms: Option<u32>,
    /// Milliseconds since the last data ACK (6.10+).
    pub last_ack_recv_ms: Option<u32>,
}

impl MptcpConnDiag {
    /// A listening socket rather than a connection.
    pub fn is_listener(&self) -> bool {
        self.state == TcpState::Listen
    }
}

/// Decode one MPTCP dump reply (`inet_diag_msg` + attributes with `INET_DIAG_INFO` holding
/// `struct mptcp_info`). Fields the kernel's struct is too short for are absent, not errors.
pub fn parse_mptcp_conn(payload: &[u8]) -> Result<MptcpConnDiag, DecodeError> {
    let (msg, rest) = parse_inet_diag_msg(payload)?;
    let mut info = None;
    for a in rtattrs(rest) {
        let a = a?;
        if a.ty() == INET_DIAG_INFO {
            info = Some(a.payload());
        }
    }
    let info = info.ok_or(DecodeError::Missing {
        msg: "MPTCP sock_diag reply",
        what: "INET_DIAG_INFO",
    })?;
    if info.len() < MPTCP_INFO_MIN_LEN {
        return Err(DecodeError::Truncated {
            what: "mptcp_info",
            need: MPTCP_INFO_MIN_LEN,
            have: info.len(),
        });
    }
    let u8_at = |at: usize| info.get(at).copied();
    let u32_at = |at: usize| ne_u32(info, at);
    let u64_at = |at: usize| ne_u64(info, at);
    Ok(MptcpConnDiag {
        token: Token(u32_at(12).unwrap_or(0)),
        local: msg.local,
        remote: msg.remote,
        state: msg.state,
        inode: msg.inode,
        subflows: info[0],
        add_addr_signal: info[1],
        add_addr_accepted: info[2],
        subflows_max: info[3],
        add_addr_signal_max: info[4],
        add_addr_accepted_max: info[5],
        flags: MptcpInfoFlags(u32_at(8).unwrap_or(0)),
        local_addr_used: u8_at(40).unwrap_or(0),
        local_addr_max: u8_at(41).unwrap_or(0),
        retransmits: u32_at(44),
        bytes_retrans: u64_at(48),
        bytes_sent: u64_at(56),
        bytes_received: u64_at(64),
        bytes_acked: u64_at(72),
        subflows_total: u8_at(80),
        last_data_sent_ms: u32_at(84),
        last_data_recv_ms: u32_at(88),
        last_ack_recv_ms: u32_at(92),
    })
}

/// Decode the fields of `struct tcp_info` the policies use, by length: a field beyond the end
/// of `info` (an older kernel) reads as 0. `backup` / `fully_established` are left false (they
/// come from the ULP info, see [`parse_subflow`]).
pub fn parse_tcp_info(info: &[u8]) -> SubflowSample {
    let u32_at = |at: usize| ne_u32(info, at).unwrap_or(0);
    let u64_at = |at: usize| ne_u64(info, at).unwrap_or(0);
    // tcp_min_rtt() is ~0U until the first RTT sample.
    let min_rtt = match u32_at(148) {
        u32::MAX => 0,
        v => v,
    };
    let u8_at = |at: usize| info.get(at).copied().unwrap_or(0);
    SubflowSample {
        tcp_state: u8_at(0),
        retransmits: u8_at(2),
        probes: u8_at(3),
        backoff: u8_at(4),
        rto_us: u32_at(8),
        unacked: u32_at(24),
        lost: u32_at(32),
        last_data_sent_ms: u32_at(44),
        last_ack_recv_ms: u32_at(56),
        srtt_us: u32_at(68),
        rttvar_us: u32_at(72),
        snd_cwnd: u32_at(80),
        total_retrans: u32_at(100),
        bytes_acked: u64_at(120),
        bytes_received: u64_at(128),
        segs_out: u32_at(136),
        segs_in: u32_at(140),
        data_segs_in: u32_at(152),
        data_segs_out: u32_at(156),
        bytes_sent: u64_at(200),
        min_rtt_us: min_rtt,
        delivery_rate: u64_at(160),
        snd_wnd: u32_at(228),
        backup: false,
        fully_established: false,
    }
}

/// `MPTCP_SUBFLOW_ATTR_FLAGS` of a subflow (bits `MPTCP_SUBFLOW_FLAG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubflowFlags(pub u32);

impl SubflowFlags {
    /// MCAP_REM: the peer sent MP_CAPABLE.
    pub const MCAP_REM: u32 = 1 << 0;
    /// MCAP_LOC: we sent MP_CAPABLE.
    pub const MCAP_LOC: u32 = 1 << 1;
    /// JOIN_REM: the peer sent MP_JOIN.
    pub const JOIN_REM: u32 = 1 << 2;
    /// JOIN_LOC: we sent MP_JOIN.
    pub const JOIN_LOC: u32 = 1 << 3;
    /// BKUP_REM: the peer marked the subflow backup.
    pub const BKUP_REM: u32 = 1 << 4;
    /// BKUP_LOC: we marked the subflow backup.
    pub const BKUP_LOC: u32 = 1 << 5;
    /// FULLY_ESTABLISHED.
    pub const FULLY_ESTABLISHED: u32 = 1 << 6;
    /// CONNECTED.
    pub const CONNECTED: u32 = 1 << 7;
    /// MAPVALID: a DSS mapping is in use.
    pub const MAPVALID: u32 = 1 << 8;

    /// Local backup flag (BKUP_LOC).
    pub fn backup_local(self) -> bool {
        self.0 & Self::BKUP_LOC != 0
    }
    /// Peer's backup flag (BKUP_REM).
    pub fn backup_remote(self) -> bool {
        self.0 & Self::BKUP_REM != 0
    }
    /// FULLY_ESTABLISHED.
    pub fn fully_established(self) -> bool {
        self.0 & Self::FULLY_ESTABLISHED != 0
    }
    /// The subflow was created by MP_JOIN (either side), not the initial MP_CAPABLE one.
    pub fn is_join(self) -> bool {
        self.0 & (Self::JOIN_LOC | Self::JOIN_REM) != 0
    }
}

/// One MPTCP subflow (a TCP socket with the `mptcp` ULP) from the TCP dump.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubflowDiag {
    /// The local token of the connection it belongs to (MPTCP_SUBFLOW_ATTR_TOKEN_LOC).
    pub token: Token,
    /// The peer's token (MPTCP_SUBFLOW_ATTR_TOKEN_REM).
    pub remote_token: Token,
    /// Its 4-tuple.
    pub key: SubflowKey,
    /// The interface it is bound to (`idiag_if`, 0: none): an exact lookup must name it.
    pub if_index: u32,
    /// TCP state (raw `TCP_*` value).
    pub state: u8,
    /// Local address id.
    pub loc_id: u8,
    /// Remote address id.
    pub rem_id: u8,
    /// Subflow flags.
    pub flags: SubflowFlags,
    /// Health numbers from `tcp_info`, with `backup` = BKUP_LOC and `fully_established`.
    pub sample: SubflowSample,
}

/// Decode one TCP dump reply; `Ok(None)` for TCP sockets that are not MPTCP subflows (no ULP
/// info, another ULP such as kTLS, or a subflow whose context the kernel did not report).
pub fn parse_subflow(payload: &[u8]) -> Result<Option<SubflowDiag>, DecodeError> {
    let (msg, rest) = parse_inet_diag_msg(payload)?;
    let mut tcp_info: &[u8] = &[];
    let mut ulp = None;
    for a in rtattrs(rest) {
        let a = a?;
        match a.ty() {
            INET_DIAG_INFO => tcp_info = a.payload(),
            INET_DIAG_ULP_INFO => ulp = Some(a),
            _ => {}
        }
    }
    let Some(ulp) = ulp else { return Ok(None) };
    let mut is_mptcp = false;
    let mut sub = None;
    for a in ulp.rtattrs() {
        let a = a?;
        match a.ty() {
            INET_ULP_INFO_NAME => {
                is_mptcp = a.payload().split(|&c| c == 0).next() == Some(b"mptcp")
            }
            INET_ULP_INFO_MPTCP => sub = Some(a),
            _ => {}
        }
    }
    let (true, Some(sub)) = (is_mptcp, sub) else {
        return Ok(None);
    };
    let (mut token, mut remote_token, mut flags, mut loc_id, mut rem_id) = (None, 0, 0, 0, 0);
    for a in sub.rtattrs() {
        let a = a?;
        match a.ty() {
            MPTCP_SUBFLOW_ATTR_TOKEN_LOC => token = Some(a.u32("MPTCP_SUBFLOW_ATTR_TOKEN_LOC")?),
            MPTCP_SUBFLOW_ATTR_TOKEN_REM => remote_token = a.u32("MPTCP_SUBFLOW_ATTR_TOKEN_REM")?,
            MPTCP_SUBFLOW_ATTR_FLAGS => flags = a.u32("MPTCP_SUBFLOW_ATTR_FLAGS")?,
            MPTCP_SUBFLOW_ATTR_ID_LOC => loc_id = a.u8("MPTCP_SUBFLOW_ATTR_ID_LOC")?,
            MPTCP_SUBFLOW_ATTR_ID_REM => rem_id = a.u8("MPTCP_SUBFLOW_ATTR_ID_REM")?,
            _ => {}
        }
    }
    let token = token.ok_or(DecodeError::Missing {
        msg: "MPTCP subflow ULP info",
        what: "MPTCP_SUBFLOW_ATTR_TOKEN_LOC",
    })?;
    let flags = SubflowFlags(flags);
    let mut sample = parse_tcp_info(tcp_info);
    sample.backup = flags.backup_local();
    sample.fully_established = flags.fully_established();
    Ok(Some(SubflowDiag {
        token: Token(token),
        remote_token: Token(remote_token),
        key: SubflowKey {
            local: msg.local,
            remote: msg.remote,
        },
        if_index: msg.if_index,
        state: u8::from(msg.state),
        loc_id,
        rem_id,
        flags,
        sample,
    }))
}

/// One connection and its subflows.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnSnapshot {
    /// The connection (or listener).
    pub conn: MptcpConnDiag,
    /// Its subflows, sorted by 4-tuple (empty for listeners).
    pub subflows: Vec<SubflowDiag>,
}

impl ConnSnapshot {
    /// Each subflow's 4-tuple with its health sample, as the connection state machine takes
    /// them (`Connection::handle_samples`).
    pub fn samples(&self) -> Vec<(SubflowKey, SubflowSample)> {
        self.subflows.iter().map(|s| (s.key, s.sample)).collect()
    }
}

/// The host's MPTCP connections with their subflows at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// Every MPTCP socket, listeners included, in dump order.
    pub conns: Vec<ConnSnapshot>,
    /// Subflows whose token matched no connection (a connection that appeared or closed
    /// between the dumps).
    pub orphans: Vec<SubflowDiag>,
    /// Replies that could not be decoded and were left out.
    pub skipped: usize,
    /// Whether the subflows were dumped. `false` for
    /// [`DiagSocket::connections_snapshot`](super::DiagSocket::connections_snapshot):
    /// every `subflows` list is then empty because nobody asked, not because there are none.
    pub has_subflows: bool,
    /// The last decode error among those.
    pub last_error: Option<DecodeError>,
}

/// Pair connections and subflows by the connection's local token. Listeners and token-0
/// sockets never receive subflows. Pure; [`DiagSocket::snapshot`](super::DiagSocket::snapshot)
/// is this over four dumps.
pub fn join(conns: Vec<MptcpConnDiag>, subflows: Vec<SubflowDiag>) -> Snapshot {
    let mut out = Snapshot {
        conns: conns
            .into_iter()
            .map(|conn| ConnSnapshot {
                conn,
                subflows: Vec::new(),
            })
            .collect(),
        has_subflows: true,
        ..Snapshot::default()
    };
    let mut by_token: HashMap<Token, usize> = HashMap::with_capacity(out.conns.len());
    for (i, c) in out.conns.iter().enumerate() {
        if !c.conn.is_listener() && c.conn.token.0 != 0 {
            by_token.entry(c.conn.token).or_insert(i);
        }
    }
    for sf in subflows {
        match by_token.get(&sf.token).and_then(|&i| out.conns.get_mut(i)) {
            Some(c) => c.subflows.push(sf),
            None => out.orphans.push(sf),
        }
    }
    for c in &mut out.conns {
        c.subflows.sort_by_key(|s| s.key);
    }
    out
}

/// Decode one reply of the MPTCP dump: SOCK_DIAG_BY_FAMILY messages through
/// [`parse_mptcp_conn`], anything else is not for us.
pub fn parse_mptcp_reply(m: &Message<'_>) -> Result<Option<MptcpConnDiag>, DecodeError> {
    payload_of(m, SOCK_DIAG_BY_FAMILY, |p| parse_mptcp_conn(p).map(Some))
}

/// Decode one reply of the TCP dump: SOCK_DIAG_BY_FAMILY messages through [`parse_subflow`],
/// anything else is not for us.
pub fn parse_subflow_reply(m: &Message<'_>) -> Result<Option<SubflowDiag>, DecodeError> {
    payload_of(m, SOCK_DIAG_BY_FAMILY, parse_subflow)
}

// Fixed-offset reads of the kernel's structs (`inet_diag_msg`, `tcp_info`, `mptcp_info`):
// `None` past the end of what the kernel sent.

/// The host-order u32 at `at`, if `b` is long enough.
fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The host-order u64 at `at`, if `b` is long enough.
fn ne_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The big-endian u16 at `at`, if `b` is long enough.
fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    //! Fixtures: real dump replies captured from a 6.18 kernel by
    //! `tests/fixtures/sock_diag/capture.sh` (two namespaces, in-kernel PM, one IPv4 and one
    //! IPv6 connection, each with one kernel-created join from the client's second link;
    //! client 10.77.{1,2}.1 / fd77:{1,2}::1, server 10.77.{1,2}.2 / fd77:{1,2}::2, port 5201).
    use super::*;
    use crate::dump::{self, Dump};
    use crate::error::Error;
    use crate::transport::Step;
    use crate::wire::{
        message, messages, test_message, Attr, NLA_F_NESTED, NLMSG_ERROR, NLMSG_HDRLEN,
    };

    const CLIENT_MPTCP_V4: &[u8] =
        include_bytes!("../../tests/fixtures/sock_diag/client_mptcp_v4.bin");
    const CLIENT_MPTCP_V6: &[u8] =
        include_bytes!("../../tests/fixtures/sock_diag/client_mptcp_v6.bin");
    const CLIENT_TCP_V4: &[u8] = include_bytes!("../../tests/fixtures/sock_diag/client_tcp_v4.bin");
    const CLIENT_TCP_V6: &[u8] = include_bytes!("../../tests/fixtures/sock_diag/client_tcp_v6.bin");
    const SERVER_MPTCP_V4: &[u8] =
        include_bytes!("../../tests/fixtures/sock_diag/server_mptcp_v4.bin");
    const SERVER_MPTCP_V6: &[u8] =
        include_bytes!("../../tests/fixtures/sock_diag/server_mptcp_v6.bin");
    const SERVER_TCP_V4: &[u8] = include_bytes!("../../tests/fixtures/sock_diag/server_tcp_v4.bin");
    const SERVER_TCP_V6: &[u8] = include_bytes!("../../tests/fixtures/sock_diag/server_tcp_v6.bin");

    /// The capture script sent every request with sequence number 1.
    const SEQ: u32 = 1;

    fn conns(bytes: &[u8]) -> Vec<MptcpConnDiag> {
        let mut d = Dump::default();
        let p = dump::feed(bytes, SEQ, "t", parse_mptcp_reply, &mut d).unwrap();
        assert_eq!(p, Step::Done);
        assert_eq!(d.skipped, 0, "{:?}", d.last_error);
        d.items
    }

    fn subs(bytes: &[u8]) -> Vec<SubflowDiag> {
        let mut d = Dump::default();
        let p = dump::feed(bytes, SEQ, "t", parse_subflow_reply, &mut d).unwrap();
        assert_eq!(p, Step::Done);
        assert_eq!(d.skipped, 0, "{:?}", d.last_error);
        d.items
    }

    /// Payloads of the SOCK_DIAG_BY_FAMILY messages of a fixture.
    fn payloads(bytes: &[u8]) -> Vec<Vec<u8>> {
        messages(bytes)
            .map(|m| m.unwrap())
            .filter(|m| m.ty() == SOCK_DIAG_BY_FAMILY)
            .map(|m| m.payload().to_vec())
            .collect()
    }

    /// Re-emit a run of attributes: `f` gives each one's new payload, `None` leaves it out.
    fn reemit(run: &[u8], f: impl Fn(&Attr<'_>) -> Option<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        for a in rtattrs(run) {
            let a = a.unwrap();
            let Some(p) = f(&a) else { continue };
            let nested = if a.nested() { NLA_F_NESTED } else { 0 };
            out.extend_from_slice(&((p.len() + 4) as u16).to_ne_bytes());
            out.extend_from_slice(&(a.ty() | nested).to_ne_bytes());
            out.extend_from_slice(&p);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        }
        out
    }

    /// Re-emit a reply payload with attribute `ty`'s payload replaced by `f(old)`.
    fn with_attr(payload: &[u8], ty: u16, f: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let mut out = payload[..INET_DIAG_MSG_LEN].to_vec();
        out.extend(reemit(&payload[INET_DIAG_MSG_LEN..], |a| {
            Some(if a.ty() == ty {
                f(a.payload())
            } else {
                a.payload().to_vec()
            })
        }));
        out
    }

    fn v4(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn request_bytes_are_inet_diag_req_v2_with_protocol_attr() {
        let r = mptcp_dump_request(IpFamily::V6, tcpf::MPTCP_DEFAULT, 7).unwrap();
        assert_eq!(r.len(), NLMSG_HDRLEN + INET_DIAG_REQ_V2_LEN + 8);
        let m = message(&r).unwrap();
        assert_eq!(m.bytes().len(), r.len());
        assert_eq!(m.ty(), SOCK_DIAG_BY_FAMILY);
        assert_eq!(m.flags(), (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16);
        assert_eq!(m.seq(), 7);
        let p = m.payload();
        assert_eq!(p[0], libc::AF_INET6 as u8);
        assert_eq!(p[1], 0, "u8 protocol must be 0 for MPTCP");
        assert_eq!(p[2], 1 << (INET_DIAG_INFO - 1));
        assert_eq!(
            u32::from_ne_bytes(p[4..8].try_into().unwrap()),
            0xFFF & !(1 << 6) & !(1 << 3)
        );
        assert!(p[8..56].iter().all(|&b| b == 0), "no sockid filter");
        let a: Vec<_> = rtattrs(&p[56..]).map(|a| a.unwrap()).collect();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].ty(), INET_DIAG_REQ_PROTOCOL);
        assert_eq!(a[0].u32("proto").unwrap(), 262);

        let r = tcp_dump_request(IpFamily::V4, tcpf::CONNECTED, 9).unwrap();
        assert_eq!(r.len(), NLMSG_HDRLEN + INET_DIAG_REQ_V2_LEN);
        assert_eq!(r[NLMSG_HDRLEN], libc::AF_INET as u8);
        assert_eq!(r[NLMSG_HDRLEN + 1], 6);
        assert_eq!(
            u32::from_ne_bytes(r[NLMSG_HDRLEN + 4..NLMSG_HDRLEN + 8].try_into().unwrap()),
            0b1011_0011_0110
        );
    }

    #[test]
    fn client_mptcp_v4_connection() {
        let c = conns(CLIENT_MPTCP_V4);
        assert_eq!(c.len(), 1);
        let c = c[0];
        assert_eq!(c.state, TcpState::Established);
        assert!(!c.is_listener());
        assert_eq!(c.local.ip(), v4("10.77.1.1:0").ip());
        assert_eq!(c.remote, v4("10.77.1.2:5201"));
        assert_ne!(c.token.0, 0);
        assert_ne!(c.inode, 0);
        assert_eq!(c.subflows, 1, "one join besides the initial subflow");
        assert_eq!(c.subflows_total, Some(2));
        assert_eq!(c.subflows_max, 4);
        assert_eq!(c.local_addr_used, 2);
        assert_eq!(c.local_addr_max, 2);
        assert!(!c.flags.fallback());
        assert!(c.flags.remote_key_received());
        assert!(c.bytes_sent.unwrap() > 0);
        assert!(c.bytes_received.unwrap() > 0);
        assert!(c.bytes_acked.unwrap() > 0);
        assert!(c.last_ack_recv_ms.is_some());
    }

    #[test]
    fn client_subflows_v4_carry_the_connection_token() {
        let conn = conns(CLIENT_MPTCP_V4)[0];
        let s = subs(CLIENT_TCP_V4);
        assert_eq!(s.len(), 2);
        for sf in &s {
            assert_eq!(sf.token, conn.token);
            assert_eq!(sf.state, 1);
            assert_eq!(
                sf.sample.tcp_state, sf.state,
                "tcpi_state is the diag state"
            );
            assert_eq!(sf.key.remote, v4("10.77.1.2:5201"));
            assert!(sf.flags.fully_established());
            assert!(sf.sample.fully_established);
            assert!(!sf.sample.backup);
            assert!(
                sf.sample.srtt_us > 0 && sf.sample.srtt_us < 1_000_000,
                "{:?}",
                sf.sample
            );
            assert!(sf.sample.min_rtt_us > 0 && sf.sample.min_rtt_us <= sf.sample.srtt_us * 4);
            assert!(sf.sample.snd_cwnd >= 1);
            assert!(sf.sample.segs_out > 0);
        }
        let initial = s.iter().find(|sf| !sf.flags.is_join()).unwrap();
        let join = s.iter().find(|sf| sf.flags.is_join()).unwrap();
        assert_eq!(initial.key.local, conn.local);
        assert_eq!((initial.loc_id, initial.rem_id), (0, 0));
        assert_eq!(join.key.local.ip(), v4("10.77.2.1:0").ip());
        assert_eq!(join.loc_id, 1, "the endpoint's id");
        // Only a join learns the peer's token (from its MP_JOIN SYN-ACK).
        assert_eq!(initial.remote_token, Token(0));
        assert_ne!(join.remote_token.0, 0);
        assert_ne!(join.remote_token, join.token);
        assert!(join.flags.0 & SubflowFlags::JOIN_LOC != 0);
        assert!(initial.flags.0 & SubflowFlags::MCAP_LOC != 0);
        // The initial subflow carried the bulk of the echo traffic before the join came up.
        assert!(initial.sample.bytes_acked > 0);
    }

    #[test]
    fn ipv6_connection_and_subflows() {
        let c = conns(CLIENT_MPTCP_V6);
        assert_eq!(c.len(), 1);
        let c = c[0];
        assert_eq!(c.remote, "[fd77:1::2]:5201".parse().unwrap());
        let s = subs(CLIENT_TCP_V6);
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|sf| sf.token == c.token));
        let locals: Vec<IpAddr> = s.iter().map(|sf| sf.key.local.ip()).collect();
        assert!(locals.contains(&"fd77:1::1".parse().unwrap()));
        assert!(locals.contains(&"fd77:2::1".parse().unwrap()));
    }

    #[test]
    fn client_snapshot_joins_both_families() {
        let mut cs = conns(CLIENT_MPTCP_V4);
        cs.extend(conns(CLIENT_MPTCP_V6));
        let mut ss = subs(CLIENT_TCP_V4);
        ss.extend(subs(CLIENT_TCP_V6));
        let snap = join(cs, ss);
        assert_eq!(snap.conns.len(), 2);
        assert!(snap.orphans.is_empty());
        for c in &snap.conns {
            assert_eq!(
                c.subflows.len(),
                usize::from(c.conn.subflows_total.unwrap())
            );
            assert!(c.subflows.iter().all(|s| s.token == c.conn.token));
            assert!(c.subflows.windows(2).all(|w| w[0].key <= w[1].key));
        }
    }

    #[test]
    fn server_side_listener_is_kept_and_gets_no_subflows() {
        let mut cs = conns(SERVER_MPTCP_V4);
        cs.extend(conns(SERVER_MPTCP_V6));
        assert_eq!(cs.len(), 4);
        let listeners: Vec<_> = cs.iter().filter(|c| c.is_listener()).collect();
        assert_eq!(listeners.len(), 2);
        for l in &listeners {
            assert_eq!(l.local.port(), 5201);
            assert_eq!(l.remote.port(), 0);
            assert!(l.remote.ip().is_unspecified());
        }
        let mut ss = subs(SERVER_TCP_V4);
        ss.extend(subs(SERVER_TCP_V6));
        assert_eq!(ss.len(), 4);
        // The server's subflows were joined by the peer: JOIN_REM on the joins.
        assert_eq!(
            ss.iter()
                .filter(|s| s.flags.0 & SubflowFlags::JOIN_REM != 0)
                .count(),
            2
        );
        let snap = join(cs, ss);
        assert!(snap.orphans.is_empty());
        for c in &snap.conns {
            if c.conn.is_listener() {
                assert!(c.subflows.is_empty());
            } else {
                assert_eq!(c.subflows.len(), 2);
                assert!(c.subflows.iter().all(|s| s.key.local.port() == 5201));
            }
        }
    }

    #[test]
    fn join_sends_unknown_tokens_to_orphans() {
        let c = conns(CLIENT_MPTCP_V4)[0];
        let mut s = subs(CLIENT_TCP_V4);
        s[1].token = Token(c.token.0 ^ 1);
        let snap = join(vec![c], s);
        assert_eq!(snap.conns[0].subflows.len(), 1);
        assert_eq!(snap.orphans.len(), 1);
        // A listener with token 0 never adopts token-0 subflows.
        let l = conns(SERVER_MPTCP_V4)
            .into_iter()
            .find(|c| c.is_listener())
            .unwrap();
        assert_eq!(l.token, Token(0));
        let mut s0 = subs(CLIENT_TCP_V4);
        s0.iter_mut().for_each(|s| s.token = Token(0));
        let snap = join(vec![l], s0);
        assert!(snap.conns[0].subflows.is_empty());
        assert_eq!(snap.orphans.len(), 2);
    }

    #[test]
    fn truncated_inet_diag_msg_is_an_error() {
        let p = &payloads(CLIENT_MPTCP_V4)[0];
        assert!(matches!(
            parse_mptcp_conn(&p[..40]),
            Err(DecodeError::Truncated {
                what: "inet_diag_msg",
                need: 72,
                have: 40
            })
        ));
        assert!(matches!(
            parse_subflow(&p[..71]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn bad_family_is_an_error() {
        let mut p = payloads(CLIENT_MPTCP_V4)[0].clone();
        p[0] = 99;
        assert!(matches!(
            parse_mptcp_conn(&p),
            Err(DecodeError::Invalid { value: 99, .. })
        ));
    }

    #[test]
    fn short_mptcp_info_takes_only_what_is_there() {
        let p = &payloads(CLIENT_MPTCP_V4)[0];
        let full = parse_mptcp_conn(p).unwrap();
        // A 5.9-era struct (up to mptcpi_rcv_nxt): counters present, later fields absent.
        let old = parse_mptcp_conn(&with_attr(p, INET_DIAG_INFO, |b| b[..40].to_vec())).unwrap();
        assert_eq!(old.token, full.token);
        assert_eq!(old.subflows, full.subflows);
        assert_eq!(old.local_addr_used, 0);
        assert_eq!(old.bytes_sent, None);
        assert_eq!(old.subflows_total, None);
        // 6.5-era (up to bytes_acked): no subflows_total yet.
        let mid = parse_mptcp_conn(&with_attr(p, INET_DIAG_INFO, |b| b[..80].to_vec())).unwrap();
        assert_eq!(mid.bytes_acked, full.bytes_acked);
        assert_eq!(mid.subflows_total, None);
        assert_eq!(mid.last_data_sent_ms, None);
        // Too short for the token: an error, not a connection with token 0.
        assert!(matches!(
            parse_mptcp_conn(&with_attr(p, INET_DIAG_INFO, |b| b[..12].to_vec())),
            Err(DecodeError::Truncated {
                what: "mptcp_info",
                ..
            })
        ));
        // No INET_DIAG_INFO at all.
        let mut bare = p[..INET_DIAG_MSG_LEN].to_vec();
        bare.extend_from_slice(&[8, 0, 15, 0, 0, 0, 0, 0]);
        assert!(matches!(
            parse_mptcp_conn(&bare),
            Err(DecodeError::Missing { .. })
        ));
    }

    #[test]
    fn short_tcp_info_reads_absent_fields_as_zero() {
        let p = &payloads(CLIENT_TCP_V4)[0];
        let full = parse_subflow(p).unwrap().unwrap();
        assert!(full.sample.delivery_rate > 0);
        // An old kernel's tcp_info ending after tcpi_total_retrans (offset 104).
        let old = parse_subflow(&with_attr(p, INET_DIAG_INFO, |b| b[..104].to_vec()))
            .unwrap()
            .unwrap();
        assert_eq!(old.sample.srtt_us, full.sample.srtt_us);
        assert_eq!(old.sample.snd_cwnd, full.sample.snd_cwnd);
        assert_eq!(old.sample.min_rtt_us, 0);
        assert_eq!(old.sample.delivery_rate, 0);
        assert_eq!(old.sample.bytes_acked, 0);
        assert_eq!(old.sample.segs_out, 0);
        assert!(full.sample.rto_us > 0 && full.sample.snd_wnd > 0);
        assert_eq!(old.sample.rto_us, full.sample.rto_us);
        assert_eq!(old.sample.last_ack_recv_ms, full.sample.last_ack_recv_ms);
        assert_eq!(old.sample.snd_wnd, 0);
        assert_eq!(old.token, full.token);
        // And none at all: still a subflow, with an empty sample.
        let none = parse_subflow(&with_attr(p, INET_DIAG_INFO, |_| Vec::new()))
            .unwrap()
            .unwrap();
        assert_eq!(none.sample.srtt_us, 0);
        assert!(none.sample.fully_established);
    }

    #[test]
    fn tcp_state_roundtrips() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(TcpState::from(v)), v);
        }
        assert_eq!(TcpState::from(10), TcpState::Listen);
        assert_eq!(TcpState::from(12), TcpState::Other(12));
    }

    #[test]
    fn tcp_info_offsets() {
        let mut b = vec![0u8; 232];
        b[2] = 3;
        let put32 =
            |b: &mut Vec<u8>, at: usize, v: u32| b[at..at + 4].copy_from_slice(&v.to_ne_bytes());
        put32(&mut b, 32, 5);
        put32(&mut b, 68, 1234);
        put32(&mut b, 72, 56);
        put32(&mut b, 80, 10);
        put32(&mut b, 100, 7);
        put32(&mut b, 136, 99);
        put32(&mut b, 148, u32::MAX);
        b[120..128].copy_from_slice(&1000u64.to_ne_bytes());
        b[128..136].copy_from_slice(&2000u64.to_ne_bytes());
        b[160..168].copy_from_slice(&3000u64.to_ne_bytes());
        // The fields a failure detector reads (include/uapi/linux/tcp.h).
        b[0] = 2;
        b[3] = 2;
        b[4] = 4;
        put32(&mut b, 8, 408_000);
        put32(&mut b, 24, 6);
        put32(&mut b, 44, 11);
        put32(&mut b, 56, 182);
        put32(&mut b, 228, 65_535);
        let s = parse_tcp_info(&b);
        assert_eq!(
            (s.tcp_state, s.probes, s.backoff, s.rto_us, s.unacked),
            (2, 2, 4, 408_000, 6)
        );
        assert_eq!(
            (s.last_data_sent_ms, s.last_ack_recv_ms, s.snd_wnd),
            (11, 182, 65_535)
        );
        // A tcp_info that ends before tcpi_snd_wnd (Linux < 6.2) reads it as 0.
        assert_eq!(parse_tcp_info(&b[..228]).snd_wnd, 0);
        assert_eq!(parse_tcp_info(&b[..228]).last_ack_recv_ms, 182);
        assert_eq!(
            (
                s.retransmits,
                s.lost,
                s.srtt_us,
                s.rttvar_us,
                s.snd_cwnd,
                s.total_retrans
            ),
            (3, 5, 1234, 56, 10, 7)
        );
        assert_eq!((s.segs_out, s.min_rtt_us), (99, 0));
        assert_eq!(
            (s.bytes_acked, s.bytes_received, s.delivery_rate),
            (1000, 2000, 3000)
        );
        // The counters a metered budget reads (tcpi_segs_in, tcpi_data_segs_in/out,
        // tcpi_bytes_sent).
        let mut m = b.clone();
        put32(&mut m, 140, 41);
        put32(&mut m, 152, 17);
        put32(&mut m, 156, 88);
        m[200..208].copy_from_slice(&123_456u64.to_ne_bytes());
        let s = parse_tcp_info(&m);
        assert_eq!(
            (s.segs_in, s.data_segs_in, s.data_segs_out, s.bytes_sent),
            (41, 17, 88, 123_456)
        );
        assert_eq!(parse_tcp_info(&m[..200]).bytes_sent, 0, "before Linux 4.19");
    }

    #[test]
    fn non_mptcp_tcp_sockets_are_skipped_silently() {
        let p = &payloads(CLIENT_TCP_V4)[0];
        // Without ULP info: a plain TCP socket.
        let mut plain = p[..INET_DIAG_MSG_LEN].to_vec();
        plain.extend(reemit(&p[INET_DIAG_MSG_LEN..], |a| {
            (a.ty() != INET_DIAG_ULP_INFO).then(|| a.payload().to_vec())
        }));
        assert_eq!(parse_subflow(&plain).unwrap(), None);
        // Another ULP (kTLS).
        let mut tls = Vec::new();
        tls.extend_from_slice(&8u16.to_ne_bytes());
        tls.extend_from_slice(&INET_ULP_INFO_NAME.to_ne_bytes());
        tls.extend_from_slice(b"tls\0");
        let other = with_attr(p, INET_DIAG_ULP_INFO, |_| tls.clone());
        assert_eq!(parse_subflow(&other).unwrap(), None);
    }

    #[test]
    fn bad_attribute_length_is_skipped_and_counted() {
        let p = payloads(CLIENT_TCP_V4)[0].clone();
        // Make the first attribute claim more bytes than the message has.
        let mut bad = p.clone();
        let at = INET_DIAG_MSG_LEN;
        bad[at..at + 2].copy_from_slice(&4000u16.to_ne_bytes());
        assert!(matches!(
            parse_subflow(&bad),
            Err(DecodeError::BadLength { what: "nlattr", .. })
        ));
        // A token attribute of the wrong size inside the nest.
        let wrong = with_attr(&p, INET_DIAG_ULP_INFO, |ulp| {
            reemit(ulp, |a| {
                Some(if a.ty() == INET_ULP_INFO_MPTCP {
                    let mut inner = Vec::new();
                    inner.extend_from_slice(&6u16.to_ne_bytes());
                    inner.extend_from_slice(&MPTCP_SUBFLOW_ATTR_TOKEN_LOC.to_ne_bytes());
                    inner.extend_from_slice(&[1, 2, 0, 0]);
                    inner
                } else {
                    a.payload().to_vec()
                })
            })
        });
        assert!(matches!(
            parse_subflow(&wrong),
            Err(DecodeError::AttrSize { got: 2, .. })
        ));
        // In a dump, both are counted and the good reply still comes through.
        let mut dgram = test_message(SOCK_DIAG_BY_FAMILY, 2, SEQ, &bad);
        dgram.extend(test_message(SOCK_DIAG_BY_FAMILY, 2, SEQ, &wrong));
        dgram.extend_from_slice(CLIENT_TCP_V4);
        let mut d = Dump::default();
        assert_eq!(
            dump::feed(&dgram, SEQ, "t", parse_subflow_reply, &mut d).unwrap(),
            Step::Done
        );
        assert_eq!(d.items.len(), 2);
        assert_eq!(d.skipped, 2);
        assert!(d.last_error.is_some());
    }

    #[test]
    fn kernel_error_ends_the_dump_with_errno() {
        // What an unsupported protocol (no mptcp_diag) looks like: NLMSG_ERROR, -ENOENT.
        let req = mptcp_dump_request(IpFamily::V4, tcpf::ALL, 5).unwrap();
        let mut body = (-libc::ENOENT).to_ne_bytes().to_vec();
        body.extend_from_slice(&req[..NLMSG_HDRLEN]);
        let dgram = test_message(NLMSG_ERROR, 0x100, 5, &body);
        let mut d: Dump<MptcpConnDiag> = Dump::default();
        let e = dump::feed(&dgram, 5, "MPTCP IPv4 dump", parse_mptcp_reply, &mut d).unwrap_err();
        assert!(
            matches!(e, Error::Kernel { errno, .. } if errno == libc::ENOENT),
            "{e}"
        );
        assert!(e.to_string().contains("MPTCP IPv4 dump"), "{e}");
    }

    #[test]
    fn other_sequence_numbers_are_ignored() {
        let mut d: Dump<MptcpConnDiag> = Dump::default();
        let p = dump::feed(CLIENT_MPTCP_V4, SEQ + 1, "t", parse_mptcp_reply, &mut d).unwrap();
        assert_eq!(p, Step::More);
        assert!(d.items.is_empty());
    }

    #[test]
    fn truncated_datagram_is_a_framing_error() {
        let mut d: Dump<MptcpConnDiag> = Dump::default();
        let e =
            dump::feed(&CLIENT_MPTCP_V4[..100], SEQ, "t", parse_mptcp_reply, &mut d).unwrap_err();
        assert!(matches!(e, Error::Decode { .. }), "{e}");
    }
}
