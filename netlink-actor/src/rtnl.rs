//! rtnetlink (`NETLINK_ROUTE`): the host's links and addresses, as a start-up dump and as a
//! stream of changes.
//!
//! Owns the codec for `RTM_NEWLINK`/`RTM_DELLINK` (`struct ifinfomsg` + `IFLA_*`) and
//! `RTM_NEWADDR`/`RTM_DELADDR` (`struct ifaddrmsg` + `IFA_*`), the `RTM_GETLINK`/`RTM_GETADDR`
//! dump requests, and a blocking [`RtnlSocket`]. Messages become [`RtnlEvent`]s; anything this
//! build does not know becomes [`RtnlEvent::Other`], never an error.
//!
//! Subscribe first, dump second, on two sockets: open the monitor ([`RtnlSocket::open_monitor`])
//! before dumping on a second socket ([`RtnlSocket::open`]) so that no change between the dump
//! and the subscription is lost (a change seen twice is harmless; the daemon's address set is
//! idempotent). A monitor that falls behind gets [`RtnlError::Overrun`] (ENOBUFS): events were
//! lost and the consumer must dump again. It does not decide which addresses are usable: that
//! is the daemon's filter.
//!
//! Layouts: `include/uapi/linux/rtnetlink.h`, `if_addr.h`, `if_link.h`, `if.h`.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use neli::consts::socket::{Msg, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;
use thiserror::Error;

use crate::dump::{Dump, DumpFault, DumpProgress};
use crate::error::DecodeError;
use crate::nlmsg::{attrs, messages, MsgBuilder, NlMsg, NLM_F_DUMP, NLM_F_REQUEST};

/// RTM_NEWLINK.
pub const RTM_NEWLINK: u16 = 16;
/// RTM_DELLINK.
pub const RTM_DELLINK: u16 = 17;
/// RTM_GETLINK.
pub const RTM_GETLINK: u16 = 18;
/// RTM_NEWADDR.
pub const RTM_NEWADDR: u16 = 20;
/// RTM_DELADDR.
pub const RTM_DELADDR: u16 = 21;
/// RTM_GETADDR.
pub const RTM_GETADDR: u16 = 22;

/// Multicast group RTNLGRP_LINK.
pub const RTNLGRP_LINK: u32 = 1;
/// Multicast group RTNLGRP_IPV4_IFADDR.
pub const RTNLGRP_IPV4_IFADDR: u32 = 5;
/// Multicast group RTNLGRP_IPV6_IFADDR.
pub const RTNLGRP_IPV6_IFADDR: u32 = 9;

/// IFA_ADDRESS: the address (IPv6) or the peer address of a point-to-point link (IPv4).
pub const IFA_ADDRESS: u16 = 1;
/// IFA_LOCAL: the local address (IPv4; IPv6 only on point-to-point links).
pub const IFA_LOCAL: u16 = 2;
/// IFA_LABEL: the IPv4 address label (interface name or alias).
pub const IFA_LABEL: u16 = 3;
/// IFA_FLAGS: u32 flags, superseding `ifa_flags`.
pub const IFA_FLAGS: u16 = 8;

/// IFLA_IFNAME: interface name.
pub const IFLA_IFNAME: u16 = 3;
/// IFLA_MTU.
pub const IFLA_MTU: u16 = 4;
/// IFLA_OPERSTATE (u8, RFC 2863 state).
pub const IFLA_OPERSTATE: u16 = 16;
/// IFLA_LINKINFO (nested).
pub const IFLA_LINKINFO: u16 = 18;
/// IFLA_INFO_KIND inside IFLA_LINKINFO (string: "veth", "bridge", ...).
pub const IFLA_INFO_KIND: u16 = 1;

/// IFF_UP: administratively up.
pub const IFF_UP: u32 = 0x1;
/// IFF_LOOPBACK.
pub const IFF_LOOPBACK: u32 = 0x8;
/// IFF_POINTOPOINT.
pub const IFF_POINTOPOINT: u32 = 0x10;
/// IFF_RUNNING: operationally up (RFC 2863 UP).
pub const IFF_RUNNING: u32 = 0x40;
/// IFF_LOWER_UP: carrier.
pub const IFF_LOWER_UP: u32 = 0x1_0000;

/// IFA_F_SECONDARY (IPv4) / IFA_F_TEMPORARY (IPv6).
pub const IFA_F_SECONDARY: u32 = 0x01;
/// IFA_F_NODAD.
pub const IFA_F_NODAD: u32 = 0x02;
/// IFA_F_OPTIMISTIC.
pub const IFA_F_OPTIMISTIC: u32 = 0x04;
/// IFA_F_DADFAILED.
pub const IFA_F_DADFAILED: u32 = 0x08;
/// IFA_F_DEPRECATED.
pub const IFA_F_DEPRECATED: u32 = 0x20;
/// IFA_F_TENTATIVE: duplicate address detection still running; not usable as a source yet.
pub const IFA_F_TENTATIVE: u32 = 0x40;
/// IFA_F_PERMANENT: configured (not autoconfigured).
pub const IFA_F_PERMANENT: u32 = 0x80;

/// Size of `struct ifinfomsg`.
pub const IFINFOMSG_LEN: usize = 16;
/// Size of `struct ifaddrmsg`.
pub const IFADDRMSG_LEN: usize = 8;

/// An address scope (`rt_scope_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrScope {
    /// RT_SCOPE_UNIVERSE (0): global.
    Universe,
    /// RT_SCOPE_SITE (200).
    Site,
    /// RT_SCOPE_LINK (253): link-local.
    Link,
    /// RT_SCOPE_HOST (254): loopback.
    Host,
    /// RT_SCOPE_NOWHERE (255).
    Nowhere,
    /// Another value.
    Other(u8),
}

impl From<u8> for AddrScope {
    fn from(v: u8) -> Self {
        match v {
            0 => AddrScope::Universe,
            200 => AddrScope::Site,
            253 => AddrScope::Link,
            254 => AddrScope::Host,
            255 => AddrScope::Nowhere,
            o => AddrScope::Other(o),
        }
    }
}

/// RFC 2863 operational state (`IF_OPER_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperState {
    /// IF_OPER_UNKNOWN (also what loopback and many virtual devices report).
    Unknown,
    /// IF_OPER_NOTPRESENT.
    NotPresent,
    /// IF_OPER_DOWN.
    Down,
    /// IF_OPER_LOWERLAYERDOWN.
    LowerLayerDown,
    /// IF_OPER_TESTING.
    Testing,
    /// IF_OPER_DORMANT.
    Dormant,
    /// IF_OPER_UP.
    Up,
    /// Another value.
    Other(u8),
}

impl From<u8> for OperState {
    fn from(v: u8) -> Self {
        match v {
            0 => OperState::Unknown,
            1 => OperState::NotPresent,
            2 => OperState::Down,
            3 => OperState::LowerLayerDown,
            4 => OperState::Testing,
            5 => OperState::Dormant,
            6 => OperState::Up,
            o => OperState::Other(o),
        }
    }
}

/// One interface address (from RTM_NEWADDR / RTM_DELADDR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// Interface index.
    pub if_index: u32,
    /// The local address (IFA_LOCAL if present, else IFA_ADDRESS).
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Scope.
    pub scope: AddrScope,
    /// IFA_F_* flags (IFA_FLAGS if present, else the header's 8 bits).
    pub flags: u32,
    /// IFA_LABEL (IPv4 only).
    pub label: Option<String>,
}

impl AddrInfo {
    /// DAD has not finished (IFA_F_TENTATIVE) or failed (IFA_F_DADFAILED): not usable.
    pub fn is_tentative(&self) -> bool {
        self.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) != 0
    }
    /// IFA_F_DEPRECATED: valid but should not be used for new connections.
    pub fn is_deprecated(&self) -> bool {
        self.flags & IFA_F_DEPRECATED != 0
    }
}

/// One interface (from RTM_NEWLINK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name (IFLA_IFNAME).
    pub name: String,
    /// IFF_* flags.
    pub flags: u32,
    /// IFF_UP.
    pub up: bool,
    /// IFF_RUNNING.
    pub running: bool,
    /// IFF_LOOPBACK.
    pub loopback: bool,
    /// IFF_LOWER_UP (carrier).
    pub lower_up: bool,
    /// IFLA_OPERSTATE, if reported.
    pub operstate: Option<OperState>,
    /// IFLA_MTU, if reported.
    pub mtu: Option<u32>,
    /// IFLA_LINKINFO/IFLA_INFO_KIND ("veth", "bridge", "wireguard", ...); None for physical
    /// devices and loopback.
    pub kind: Option<String>,
}

impl LinkInfo {
    /// Up and running: subflows can use it.
    pub fn usable(&self) -> bool {
        self.up && self.running
    }
}

/// A decoded rtnetlink message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtnlEvent {
    /// RTM_NEWADDR: an address appeared or changed (flags, e.g. DAD finished).
    AddrAdded(AddrInfo),
    /// RTM_DELADDR.
    AddrRemoved(AddrInfo),
    /// RTM_NEWLINK: a link appeared or changed state.
    LinkChanged(LinkInfo),
    /// RTM_DELLINK.
    LinkRemoved {
        /// Interface index.
        index: u32,
        /// Interface name (empty if the kernel did not say).
        name: String,
    },
    /// A message type (or an address family) this module does not decode.
    Other {
        /// nlmsg_type.
        ty: u16,
    },
}

fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decode the payload of RTM_NEWADDR / RTM_DELADDR; `Ok(None)` for a family other than
/// IPv4/IPv6.
pub fn parse_addr(payload: &[u8]) -> Result<Option<AddrInfo>, DecodeError> {
    let (Some(h), Some(rest)) = (payload.get(..IFADDRMSG_LEN), payload.get(IFADDRMSG_LEN..)) else {
        return Err(DecodeError::Truncated {
            what: "ifaddrmsg",
            need: IFADDRMSG_LEN,
            have: payload.len(),
        });
    };
    let family = i32::from(h[0]);
    if family != libc::AF_INET && family != libc::AF_INET6 {
        return Ok(None);
    }
    let ip = |a: &crate::nlmsg::Attr<'_>, what| -> Result<IpAddr, DecodeError> {
        if family == libc::AF_INET {
            a.ipv4(what).map(IpAddr::V4)
        } else {
            a.ipv6(what).map(IpAddr::V6)
        }
    };
    let (mut address, mut local, mut label, mut flags) = (None, None, None, None);
    for a in attrs(rest) {
        let a = a?;
        match a.ty {
            IFA_ADDRESS => address = Some(ip(&a, "IFA_ADDRESS")?),
            IFA_LOCAL => local = Some(ip(&a, "IFA_LOCAL")?),
            IFA_LABEL => label = Some(a.string()),
            IFA_FLAGS => flags = Some(a.u32("IFA_FLAGS")?),
            _ => {}
        }
    }
    let addr = local.or(address).ok_or(DecodeError::Missing {
        msg: "RTM_NEWADDR/RTM_DELADDR",
        what: "IFA_LOCAL or IFA_ADDRESS",
    })?;
    Ok(Some(AddrInfo {
        if_index: ne_u32(h, 4).unwrap_or(0),
        addr,
        prefix_len: h[1],
        scope: AddrScope::from(h[3]),
        flags: flags.unwrap_or(u32::from(h[2])),
        label,
    }))
}

/// Decode the payload of RTM_NEWLINK / RTM_DELLINK.
pub fn parse_link(payload: &[u8]) -> Result<LinkInfo, DecodeError> {
    let (Some(h), Some(rest)) = (payload.get(..IFINFOMSG_LEN), payload.get(IFINFOMSG_LEN..)) else {
        return Err(DecodeError::Truncated {
            what: "ifinfomsg",
            need: IFINFOMSG_LEN,
            have: payload.len(),
        });
    };
    // ifi_index is an int, but indexes are always positive.
    let index = ne_u32(h, 4).unwrap_or(0);
    let flags = ne_u32(h, 8).unwrap_or(0);
    let (mut name, mut operstate, mut mtu, mut kind) = (None, None, None, None);
    for a in attrs(rest) {
        let a = a?;
        match a.ty {
            IFLA_IFNAME => name = Some(a.string()),
            IFLA_OPERSTATE => operstate = Some(OperState::from(a.u8("IFLA_OPERSTATE")?)),
            IFLA_MTU => mtu = Some(a.u32("IFLA_MTU")?),
            IFLA_LINKINFO => {
                for i in a.attrs() {
                    let i = i?;
                    if i.ty == IFLA_INFO_KIND {
                        kind = Some(i.string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(LinkInfo {
        index,
        name: name.unwrap_or_default(),
        flags,
        up: flags & IFF_UP != 0,
        running: flags & IFF_RUNNING != 0,
        loopback: flags & IFF_LOOPBACK != 0,
        lower_up: flags & IFF_LOWER_UP != 0,
        operstate,
        mtu,
        kind,
    })
}

/// Decode one rtnetlink message into an event.
pub fn parse_event(msg: &NlMsg<'_>) -> Result<RtnlEvent, DecodeError> {
    let ty = msg.header.ty;
    Ok(match ty {
        RTM_NEWADDR | RTM_DELADDR => match parse_addr(msg.payload)? {
            Some(a) if ty == RTM_NEWADDR => RtnlEvent::AddrAdded(a),
            Some(a) => RtnlEvent::AddrRemoved(a),
            None => RtnlEvent::Other { ty },
        },
        RTM_NEWLINK => RtnlEvent::LinkChanged(parse_link(msg.payload)?),
        RTM_DELLINK => {
            let l = parse_link(msg.payload)?;
            RtnlEvent::LinkRemoved {
                index: l.index,
                name: l.name,
            }
        }
        _ => RtnlEvent::Other { ty },
    })
}

/// RTM_GETLINK dump request (all links).
pub fn getlink_dump_request(seq: u32) -> Vec<u8> {
    let mut b = MsgBuilder::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq);
    b.bytes(&[0u8; IFINFOMSG_LEN]);
    b.finish()
}

/// RTM_GETADDR dump request (IPv4 and IPv6: family AF_UNSPEC).
pub fn getaddr_dump_request(seq: u32) -> Vec<u8> {
    let mut b = MsgBuilder::new(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq);
    b.bytes(&[0u8; IFADDRMSG_LEN]);
    b.finish()
}

/// Errors of the rtnetlink socket.
#[derive(Debug, Error)]
pub enum RtnlError {
    /// The NETLINK_ROUTE socket could not be opened or bound.
    #[error("cannot open NETLINK_ROUTE socket: {source}")]
    Open {
        /// The OS error.
        source: io::Error,
    },
    /// Setting a socket option failed.
    #[error("setting {what} on the NETLINK_ROUTE socket: {source}")]
    SockOpt {
        /// Which option.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Joining the link / address multicast groups failed.
    #[error("cannot join rtnetlink groups (link, IPv4/IPv6 addresses): {source}")]
    Membership {
        /// The OS error.
        source: io::Error,
    },
    /// Sending a request failed.
    #[error("sending {what}: {source}")]
    Send {
        /// Which request.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Receiving failed (including WouldBlock on a non-blocking socket, see
    /// [`RtnlError::is_would_block`]).
    #[error("receiving {what}: {source}")]
    Recv {
        /// What was being received.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// ENOBUFS: the monitor fell behind and the kernel dropped events. Dump links and
    /// addresses again.
    #[error("rtnetlink monitor overrun (ENOBUFS): events were lost, links and addresses must be dumped again")]
    Overrun,
    /// A datagram was larger than the receive buffer.
    #[error("{what} datagram of {len} bytes exceeds the {cap}-byte receive buffer")]
    Oversized {
        /// What was being received.
        what: &'static str,
        /// Datagram length.
        len: usize,
        /// Buffer size.
        cap: usize,
    },
    /// A datagram could not be framed.
    #[error("framing {what}: {source}")]
    Framing {
        /// What was being received.
        what: &'static str,
        /// The decode failure.
        source: DecodeError,
    },
    /// The kernel refused a dump.
    #[error("kernel refused {what}: {}{}", io::Error::from_raw_os_error(*errno), message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kernel {
        /// Which request.
        what: &'static str,
        /// Positive errno.
        errno: i32,
        /// Extended-ACK text, if any.
        message: Option<String>,
    },
    /// A dump was asked of a monitoring socket, where its replies would be interleaved with
    /// (and could be confused with) events: dump on a second socket from [`RtnlSocket::open`].
    #[error("dumps must use a separate socket from the monitor (RtnlSocket::open)")]
    DumpOnMonitor,
}

impl RtnlError {
    /// A non-blocking receive found nothing.
    pub fn is_would_block(&self) -> bool {
        matches!(self, RtnlError::Recv { source, .. } if source.kind() == io::ErrorKind::WouldBlock)
    }
}

/// Receive buffer: rtnetlink dump datagrams are at most 32 KiB.
const RECV_BUF: usize = 64 * 1024;
/// SO_RCVBUF asked for the monitor (capped by net.core.rmem_max).
const MONITOR_RCVBUF: usize = 4 * 1024 * 1024;

/// A blocking NETLINK_ROUTE socket: either a monitor of link and address changes
/// ([`RtnlSocket::open_monitor`]) or a dumper ([`RtnlSocket::open`]).
pub struct RtnlSocket {
    sock: NlSocket,
    buf: Vec<u8>,
    seq: u32,
    monitor: bool,
}

impl std::fmt::Debug for RtnlSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtnlSocket")
            .field("fd", &self.sock.as_raw_fd())
            .field("monitor", &self.monitor)
            .finish_non_exhaustive()
    }
}

const WHAT_EVENTS: &str = "rtnetlink events";
const WHAT_LINKS: &str = "RTM_GETLINK dump";
const WHAT_ADDRS: &str = "RTM_GETADDR dump";

impl RtnlSocket {
    /// A socket for dumps (no multicast groups).
    pub fn open() -> Result<Self, RtnlError> {
        let sock = NlSocket::connect(NlFamily::Route, None, Groups::empty())
            .map_err(|source| RtnlError::Open { source })?;
        Ok(RtnlSocket {
            sock,
            buf: vec![0; RECV_BUF],
            seq: 0,
            monitor: false,
        })
    }

    /// A socket joined to RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR and RTNLGRP_IPV6_IFADDR, with a
    /// large receive buffer. Open it before dumping, on another socket, what exists already.
    pub fn open_monitor() -> Result<Self, RtnlError> {
        let mut s = Self::open()?;
        // Best effort: a larger buffer makes overruns rarer; its absence is not fatal.
        let _ = s.sock.set_recv_buffer_size(MONITOR_RCVBUF);
        s.sock
            .add_mcast_membership(Groups::new_groups(&[
                RTNLGRP_LINK,
                RTNLGRP_IPV4_IFADDR,
                RTNLGRP_IPV6_IFADDR,
            ]))
            .map_err(|source| RtnlError::Membership { source })?;
        s.monitor = true;
        Ok(s)
    }

    /// Ask for a receive buffer of `bytes` (SO_RCVBUF; the kernel doubles it and caps it at
    /// net.core.rmem_max). The monitor asks for 4 MiB by itself.
    pub fn set_recv_buffer_size(&self, bytes: usize) -> Result<(), RtnlError> {
        self.sock
            .set_recv_buffer_size(bytes)
            .map_err(|source| RtnlError::SockOpt {
                what: "SO_RCVBUF",
                source,
            })
    }

    /// Switch the socket between blocking (default) and non-blocking mode.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<(), RtnlError> {
        let r = if nonblocking {
            self.sock.nonblock()
        } else {
            self.sock.block()
        };
        r.map_err(|source| RtnlError::SockOpt {
            what: "O_NONBLOCK",
            source,
        })
    }

    fn recv_datagram(&mut self, what: &'static str) -> Result<usize, RtnlError> {
        loop {
            match self.sock.recv(&mut self.buf[..], Msg::TRUNC) {
                Ok((len, _)) if len > self.buf.len() => {
                    return Err(RtnlError::Oversized {
                        what,
                        len,
                        cap: self.buf.len(),
                    })
                }
                Ok((len, _)) => return Ok(len),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Err(RtnlError::Overrun)
                }
                Err(source) => return Err(RtnlError::Recv { what, source }),
            }
        }
    }

    /// Receive one datagram of events (blocking unless non-blocking mode is set) and decode
    /// it. A message that cannot be decoded is an `Err` entry; the others still come through.
    pub fn recv_batch(&mut self) -> Result<Vec<Result<RtnlEvent, DecodeError>>, RtnlError> {
        let len = self.recv_datagram(WHAT_EVENTS)?;
        Ok(decode_events(&self.buf[..len]))
    }

    fn dump<T>(
        &mut self,
        req: Vec<u8>,
        what: &'static str,
        parse: impl Fn(&NlMsg<'_>) -> Result<Option<T>, DecodeError>,
    ) -> Result<Dump<T>, RtnlError> {
        if self.monitor {
            return Err(RtnlError::DumpOnMonitor);
        }
        let seq = self.seq;
        self.sock
            .send(&req, Msg::empty())
            .map_err(|source| RtnlError::Send { what, source })?;
        let mut out = Dump::default();
        loop {
            let len = self.recv_datagram(what)?;
            if feed_dump(&self.buf[..len], seq, what, &parse, &mut out)? {
                return Ok(out);
            }
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Dump every link. Links that cannot be decoded are counted in `skipped`.
    pub fn dump_links(&mut self) -> Result<Dump<LinkInfo>, RtnlError> {
        let req = getlink_dump_request(self.next_seq());
        self.dump(req, WHAT_LINKS, |m| {
            if m.header.ty == RTM_NEWLINK {
                parse_link(m.payload).map(Some)
            } else {
                Ok(None)
            }
        })
    }

    /// Dump every IPv4 and IPv6 address.
    pub fn dump_addrs(&mut self) -> Result<Dump<AddrInfo>, RtnlError> {
        let req = getaddr_dump_request(self.next_seq());
        self.dump(req, WHAT_ADDRS, |m| {
            if m.header.ty == RTM_NEWADDR {
                parse_addr(m.payload)
            } else {
                Ok(None)
            }
        })
    }
}

impl AsRawFd for RtnlSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// Decode every message of a datagram of multicast events (or several concatenated).
/// Control messages (NLMSG_DONE, NOOP, ERROR) are skipped; a framing failure ends the list
/// with one `Err`.
pub fn decode_events(datagram: &[u8]) -> Vec<Result<RtnlEvent, DecodeError>> {
    let mut out = Vec::new();
    for m in messages(datagram) {
        match m {
            Ok(m) if m.header.ty < 16 => {}
            Ok(m) => out.push(parse_event(&m)),
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

/// Feed one datagram of the dump with sequence number `seq`; `Ok(true)` once NLMSG_DONE is
/// seen (see [`crate::dump::feed`]). Messages of other sequence numbers are ignored.
pub fn feed_dump<T>(
    datagram: &[u8],
    seq: u32,
    what: &'static str,
    parse: impl Fn(&NlMsg<'_>) -> Result<Option<T>, DecodeError>,
    out: &mut Dump<T>,
) -> Result<bool, RtnlError> {
    match crate::dump::feed(datagram, seq, parse, out) {
        Ok(p) => Ok(p == DumpProgress::Done),
        Err(DumpFault::Framing(source)) => Err(RtnlError::Framing { what, source }),
        Err(DumpFault::Kernel { errno, message }) => Err(RtnlError::Kernel {
            what,
            errno,
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    //! Fixtures: real messages captured from a 6.18 kernel by
    //! `tests/fixtures/rtnl/capture.py` (namespace "rtnlcap", veth v0 (index 3) / v1 (index 2);
    //! 10.78.0.1/24 and 2001:db8:78::1/64 added to and removed from v0; v0 set down; v0 deleted;
    //! dumps taken while both addresses were present; dump requests with sequence number 1).
    use super::*;
    use crate::nlmsg::NLMSG_ERROR;
    use crate::nlmsg::NLMSG_HDRLEN;

    const ADDR4_ADD: &[u8] = include_bytes!("../tests/fixtures/rtnl/addr4_add.bin");
    const ADDR4_DEL: &[u8] = include_bytes!("../tests/fixtures/rtnl/addr4_del.bin");
    const ADDR6_ADD: &[u8] = include_bytes!("../tests/fixtures/rtnl/addr6_add.bin");
    const ADDR6_DEL: &[u8] = include_bytes!("../tests/fixtures/rtnl/addr6_del.bin");
    const LINK_UP: &[u8] = include_bytes!("../tests/fixtures/rtnl/link_up.bin");
    const LINK_DOWN: &[u8] = include_bytes!("../tests/fixtures/rtnl/link_down.bin");
    const LINK_DEL: &[u8] = include_bytes!("../tests/fixtures/rtnl/link_del.bin");
    const DUMP_LINKS: &[u8] = include_bytes!("../tests/fixtures/rtnl/dump_links.bin");
    const DUMP_ADDRS: &[u8] = include_bytes!("../tests/fixtures/rtnl/dump_addrs.bin");

    fn events(b: &[u8]) -> Vec<RtnlEvent> {
        decode_events(b).into_iter().map(|e| e.unwrap()).collect()
    }

    fn only(b: &[u8]) -> RtnlEvent {
        let e = events(b);
        assert_eq!(e.len(), 1, "{e:?}");
        e.into_iter().next().unwrap()
    }

    #[test]
    fn dump_requests() {
        let r = getlink_dump_request(3);
        assert_eq!(r.len(), NLMSG_HDRLEN + IFINFOMSG_LEN);
        let m = messages(&r).next().unwrap().unwrap();
        assert_eq!(
            (m.header.ty, m.header.flags, m.header.seq),
            (RTM_GETLINK, 0x301, 3)
        );
        assert!(m.payload.iter().all(|&b| b == 0));
        let r = getaddr_dump_request(4);
        assert_eq!(r.len(), NLMSG_HDRLEN + IFADDRMSG_LEN);
        let m = messages(&r).next().unwrap().unwrap();
        assert_eq!((m.header.ty, m.header.seq), (RTM_GETADDR, 4));
    }

    #[test]
    fn ipv4_address_added_and_removed() {
        let want = AddrInfo {
            if_index: 3,
            addr: "10.78.0.1".parse().unwrap(),
            prefix_len: 24,
            scope: AddrScope::Universe,
            flags: IFA_F_PERMANENT,
            label: Some("v0".into()),
        };
        assert_eq!(only(ADDR4_ADD), RtnlEvent::AddrAdded(want.clone()));
        assert_eq!(only(ADDR4_DEL), RtnlEvent::AddrRemoved(want));
    }

    #[test]
    fn ipv6_address_added_and_removed() {
        let RtnlEvent::AddrAdded(a) = only(ADDR6_ADD) else {
            panic!("not an add")
        };
        assert_eq!(a.addr, "2001:db8:78::1".parse::<IpAddr>().unwrap());
        assert_eq!((a.if_index, a.prefix_len), (3, 64));
        assert_eq!(a.scope, AddrScope::Universe);
        assert!(a.flags & IFA_F_PERMANENT != 0);
        assert!(
            a.flags & IFA_F_NODAD != 0,
            "added with nodad: {:#x}",
            a.flags
        );
        assert!(!a.is_tentative());
        assert_eq!(a.label, None, "IPv6 addresses have no label");
        let RtnlEvent::AddrRemoved(r) = only(ADDR6_DEL) else {
            panic!("not a removal")
        };
        assert_eq!(r.addr, a.addr);
    }

    #[test]
    fn link_up_down_and_removed() {
        let up: Vec<LinkInfo> = events(LINK_UP)
            .into_iter()
            .filter_map(|e| match e {
                RtnlEvent::LinkChanged(l) if l.name == "v0" => Some(l),
                _ => None,
            })
            .collect();
        assert!(up.len() >= 2);
        let last = up.last().unwrap();
        assert_eq!(last.index, 3);
        assert!(last.up && last.running && last.lower_up && last.usable());
        assert!(!last.loopback);
        assert_eq!(last.operstate, Some(OperState::Up));
        assert_eq!(last.kind.as_deref(), Some("veth"));
        assert_eq!(last.mtu, Some(1500));
        // The peer's carrier and a link-local IPv6 address came up with it.
        assert!(events(LINK_UP).iter().any(|e| matches!(e,
            RtnlEvent::AddrAdded(a) if a.if_index == 3 && a.scope == AddrScope::Link)));

        let down = events(LINK_DOWN);
        let v0 = down
            .iter()
            .find_map(|e| match e {
                RtnlEvent::LinkChanged(l) if l.index == 3 => Some(l),
                _ => None,
            })
            .unwrap();
        assert!(!v0.up && !v0.running && !v0.usable());
        assert_eq!(v0.operstate, Some(OperState::Down));

        let del = events(LINK_DEL);
        assert!(del.contains(&RtnlEvent::LinkRemoved {
            index: 3,
            name: "v0".into()
        }));
        assert!(del.contains(&RtnlEvent::LinkRemoved {
            index: 2,
            name: "v1".into()
        }));
    }

    #[test]
    fn link_dump() {
        let mut d = Dump::default();
        let done = feed_dump(
            DUMP_LINKS,
            1,
            "t",
            |m| {
                if m.header.ty == RTM_NEWLINK {
                    parse_link(m.payload).map(Some)
                } else {
                    Ok(None)
                }
            },
            &mut d,
        )
        .unwrap();
        assert!(done);
        assert_eq!(d.skipped, 0);
        let names: Vec<&str> = d.items.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "v1", "v0"]);
        let lo = &d.items[0];
        assert!(lo.loopback && lo.up && lo.running);
        assert_eq!(lo.kind, None);
        assert_eq!(lo.operstate, Some(OperState::Unknown));
        assert!(d.items[1..].iter().all(|l| l.usable() && !l.loopback));
    }

    #[test]
    fn addr_dump() {
        let mut d = Dump::default();
        let done = feed_dump(DUMP_ADDRS, 1, "t", |m| parse_addr(m.payload), &mut d).unwrap();
        assert!(done);
        let find = |s: &str| {
            let ip: IpAddr = s.parse().unwrap();
            d.items.iter().find(|a| a.addr == ip).cloned().unwrap()
        };
        let lo4 = find("127.0.0.1");
        assert_eq!(
            (lo4.scope, lo4.prefix_len, lo4.if_index),
            (AddrScope::Host, 8, 1)
        );
        assert_eq!(lo4.label.as_deref(), Some("lo"));
        assert_eq!(find("::1").scope, AddrScope::Host);
        assert_eq!(find("10.78.0.1").prefix_len, 24);
        assert_eq!(find("2001:db8:78::1").if_index, 3);
        let ll: Vec<_> = d
            .items
            .iter()
            .filter(|a| a.scope == AddrScope::Link)
            .collect();
        assert_eq!(ll.len(), 2);
        assert!(ll
            .iter()
            .all(|a| matches!(a.addr, IpAddr::V6(v) if v.segments()[0] == 0xfe80)));
        assert_eq!(d.items.len(), 6);
    }

    fn first_payload(b: &[u8]) -> Vec<u8> {
        messages(b).next().unwrap().unwrap().payload.to_vec()
    }

    #[test]
    fn truncated_headers_are_errors() {
        let p = first_payload(ADDR4_ADD);
        assert!(matches!(
            parse_addr(&p[..5]),
            Err(DecodeError::Truncated {
                what: "ifaddrmsg",
                ..
            })
        ));
        let p = first_payload(LINK_DOWN);
        assert!(matches!(
            parse_link(&p[..10]),
            Err(DecodeError::Truncated {
                what: "ifinfomsg",
                ..
            })
        ));
        // In a datagram: the event list carries the error and the rest still decodes.
        let mut b = MsgBuilder::new(RTM_NEWADDR, 0, 0);
        b.bytes(&p[..4]);
        let mut dgram = b.finish();
        dgram.extend_from_slice(ADDR4_DEL);
        let ev = decode_events(&dgram);
        assert_eq!(ev.len(), 2);
        assert!(ev[0].is_err());
        assert!(matches!(ev[1], Ok(RtnlEvent::AddrRemoved(_))));
    }

    #[test]
    fn bad_attribute_length_and_size() {
        let mut p = first_payload(ADDR4_ADD);
        // First attribute claims more than there is.
        p[IFADDRMSG_LEN..IFADDRMSG_LEN + 2].copy_from_slice(&500u16.to_ne_bytes());
        assert!(matches!(
            parse_addr(&p),
            Err(DecodeError::BadLength { what: "nlattr", .. })
        ));
        // An IPv6 family with a 4-byte IFA_ADDRESS.
        let mut p = first_payload(ADDR4_ADD);
        p[0] = libc::AF_INET6 as u8;
        assert!(matches!(
            parse_addr(&p),
            Err(DecodeError::AttrSize { got: 4, .. })
        ));
        // No address at all.
        let p = first_payload(ADDR4_ADD);
        assert!(matches!(
            parse_addr(&p[..IFADDRMSG_LEN]),
            Err(DecodeError::Missing { .. })
        ));
    }

    #[test]
    fn other_families_and_types_are_other() {
        let mut p = first_payload(ADDR4_ADD);
        p[0] = 45; // AF_MCTP
        assert_eq!(parse_addr(&p).unwrap(), None);
        let mut b = MsgBuilder::new(RTM_NEWADDR, 0, 0);
        b.bytes(&p);
        assert_eq!(only(&b.finish()), RtnlEvent::Other { ty: RTM_NEWADDR });
        let mut b = MsgBuilder::new(24, 0, 0); // RTM_NEWROUTE
        b.bytes(&[0u8; 12]);
        assert_eq!(only(&b.finish()), RtnlEvent::Other { ty: 24 });
    }

    #[test]
    fn dump_error_and_foreign_sequence() {
        let mut d: Dump<LinkInfo> = Dump::default();
        assert!(!feed_dump(DUMP_LINKS, 2, "t", |_| Ok(None), &mut d).unwrap());
        let mut b = MsgBuilder::new(NLMSG_ERROR, 0x100, 9);
        let mut body = (-libc::EPERM).to_ne_bytes().to_vec();
        body.extend_from_slice(&getlink_dump_request(9)[..NLMSG_HDRLEN]);
        b.bytes(&body);
        let e = feed_dump(
            &b.finish(),
            9,
            "RTM_GETLINK dump",
            |_| Ok(None::<()>),
            &mut Dump::default(),
        )
        .unwrap_err();
        assert!(matches!(e, RtnlError::Kernel { errno, .. } if errno == libc::EPERM));
        assert!(e.to_string().contains("RTM_GETLINK"), "{e}");
    }
}
