//! rtnetlink (`NETLINK_ROUTE`): the host's links and addresses, as a start-up dump and as a
//! stream of changes.
//!
//! Owns the codec for `RTM_NEWLINK`/`RTM_DELLINK` (`struct ifinfomsg` + `IFLA_*`) and
//! `RTM_NEWADDR`/`RTM_DELADDR` (`struct ifaddrmsg` + `IFA_*`), the `RTM_GETLINK`/`RTM_GETADDR`
//! dump requests, and [`RtnlSocket`], a [`Transport`] of protocol `NETLINK_ROUTE`. Messages
//! become [`RtnlEvent`]s; anything this build does not know becomes [`RtnlEvent::Other`], never
//! an error. The headers are neli's (`Ifinfomsg`, `Ifaddrmsg`, parsed without their attribute
//! lists), the attributes neli's `Rtattr`s walked without copies ([`crate::wire`]).
//!
//! Subscribe first, dump second, on two sockets: open the monitor ([`RtnlSocket::open_monitor`])
//! before dumping on a second socket ([`RtnlSocket::open`]) so that no change between the dump
//! and the subscription is lost (a change seen twice is harmless; the daemon's address set is
//! idempotent). A monitor that falls behind gets [`Error::Overrun`] (ENOBUFS): events were
//! lost and the consumer must dump again. It does not decide which addresses are usable: that
//! is the daemon's filter.
//!
//! Layouts: `include/uapi/linux/rtnetlink.h`, `if_addr.h`, `if_link.h`, `if.h`.

use std::io::Cursor;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};

use neli::consts::nl::NlmF;
use neli::consts::rtnl::{RtAddrFamily, RtScope};
use neli::rtnl::{Ifaddrmsg, IfaddrmsgBuilder, Ifinfomsg, IfinfomsgBuilder};
use neli::FromBytesWithInput;

use crate::dump::{self, payload_of, Dump};
use crate::error::{DecodeError, EncodeError, Error};
use crate::transport::Transport;
use crate::wire::{encode_error, messages, request, rtattrs, Attr, Message, NLMSG_MIN_TYPE};

/// RTM_NEWLINK.
pub const RTM_NEWLINK: u16 = libc::RTM_NEWLINK;
/// RTM_DELLINK.
pub const RTM_DELLINK: u16 = libc::RTM_DELLINK;
/// RTM_GETLINK.
pub const RTM_GETLINK: u16 = libc::RTM_GETLINK;
/// RTM_NEWADDR.
pub const RTM_NEWADDR: u16 = libc::RTM_NEWADDR;
/// RTM_DELADDR.
pub const RTM_DELADDR: u16 = libc::RTM_DELADDR;
/// RTM_GETADDR.
pub const RTM_GETADDR: u16 = libc::RTM_GETADDR;

/// Multicast group RTNLGRP_LINK.
pub const RTNLGRP_LINK: u32 = libc::RTNLGRP_LINK;
/// Multicast group RTNLGRP_IPV4_IFADDR.
pub const RTNLGRP_IPV4_IFADDR: u32 = libc::RTNLGRP_IPV4_IFADDR;
/// Multicast group RTNLGRP_IPV6_IFADDR.
pub const RTNLGRP_IPV6_IFADDR: u32 = libc::RTNLGRP_IPV6_IFADDR;

/// IFA_ADDRESS: the address (IPv6) or the peer address of a point-to-point link (IPv4).
pub const IFA_ADDRESS: u16 = libc::IFA_ADDRESS;
/// IFA_LOCAL: the local address (IPv4; IPv6 only on point-to-point links).
pub const IFA_LOCAL: u16 = libc::IFA_LOCAL;
/// IFA_LABEL: the IPv4 address label (interface name or alias).
pub const IFA_LABEL: u16 = libc::IFA_LABEL;
/// IFA_FLAGS: u32 flags, superseding `ifa_flags` (not in libc).
pub const IFA_FLAGS: u16 = 8;

/// IFLA_IFNAME: interface name.
pub const IFLA_IFNAME: u16 = libc::IFLA_IFNAME;
/// IFLA_MTU.
pub const IFLA_MTU: u16 = libc::IFLA_MTU;
/// IFLA_OPERSTATE (u8, RFC 2863 state).
pub const IFLA_OPERSTATE: u16 = libc::IFLA_OPERSTATE;
/// IFLA_LINKINFO (nested).
pub const IFLA_LINKINFO: u16 = libc::IFLA_LINKINFO;
/// IFLA_INFO_KIND inside IFLA_LINKINFO (string: "veth", "bridge", ...).
pub const IFLA_INFO_KIND: u16 = libc::IFLA_INFO_KIND;

/// IFF_UP: administratively up.
pub const IFF_UP: u32 = libc::IFF_UP as u32;
/// IFF_LOOPBACK.
pub const IFF_LOOPBACK: u32 = libc::IFF_LOOPBACK as u32;
/// IFF_POINTOPOINT.
pub const IFF_POINTOPOINT: u32 = libc::IFF_POINTOPOINT as u32;
/// IFF_RUNNING: operationally up (RFC 2863 UP).
pub const IFF_RUNNING: u32 = libc::IFF_RUNNING as u32;
/// IFF_LOWER_UP: carrier.
pub const IFF_LOWER_UP: u32 = libc::IFF_LOWER_UP as u32;

/// IFA_F_SECONDARY (IPv4) / IFA_F_TEMPORARY (IPv6).
pub const IFA_F_SECONDARY: u32 = libc::IFA_F_SECONDARY;
/// IFA_F_NODAD.
pub const IFA_F_NODAD: u32 = libc::IFA_F_NODAD;
/// IFA_F_OPTIMISTIC.
pub const IFA_F_OPTIMISTIC: u32 = libc::IFA_F_OPTIMISTIC;
/// IFA_F_DADFAILED.
pub const IFA_F_DADFAILED: u32 = libc::IFA_F_DADFAILED;
/// IFA_F_DEPRECATED.
pub const IFA_F_DEPRECATED: u32 = libc::IFA_F_DEPRECATED;
/// IFA_F_TENTATIVE: duplicate address detection still running; not usable as a source yet.
pub const IFA_F_TENTATIVE: u32 = libc::IFA_F_TENTATIVE;
/// IFA_F_PERMANENT: configured (not autoconfigured).
pub const IFA_F_PERMANENT: u32 = libc::IFA_F_PERMANENT;

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

/// Decode the payload of RTM_NEWADDR / RTM_DELADDR; `Ok(None)` for a family other than
/// IPv4/IPv6.
pub fn parse_addr(payload: &[u8]) -> Result<Option<AddrInfo>, DecodeError> {
    let truncated = DecodeError::Truncated {
        what: "ifaddrmsg",
        need: IFADDRMSG_LEN,
        have: payload.len(),
    };
    let (Some(head), Some(rest)) = (payload.get(..IFADDRMSG_LEN), payload.get(IFADDRMSG_LEN..))
    else {
        return Err(truncated);
    };
    // neli parses the header; its attribute list is left empty (the cursor ends with the
    // header) and walked below without copies.
    let h = Ifaddrmsg::from_bytes_with_input(&mut Cursor::new(head), IFADDRMSG_LEN)
        .map_err(|_| truncated)?;
    let family = i32::from(u8::from(*h.ifa_family()));
    if family != libc::AF_INET && family != libc::AF_INET6 {
        return Ok(None);
    }
    let ip = |a: &Attr<'_>, what| -> Result<IpAddr, DecodeError> {
        if family == libc::AF_INET {
            a.ipv4(what).map(IpAddr::V4)
        } else {
            a.ipv6(what).map(IpAddr::V6)
        }
    };
    let (mut address, mut local, mut label, mut flags) = (None, None, None, None);
    for a in rtattrs(rest) {
        let a = a?;
        match a.ty() {
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
        if_index: *h.ifa_index(),
        addr,
        prefix_len: *h.ifa_prefixlen(),
        scope: AddrScope::from(u8::from(*h.ifa_scope())),
        flags: flags.unwrap_or(u32::from(h.ifa_flags().bits())),
        label,
    }))
}

/// Decode the payload of RTM_NEWLINK / RTM_DELLINK.
pub fn parse_link(payload: &[u8]) -> Result<LinkInfo, DecodeError> {
    let truncated = DecodeError::Truncated {
        what: "ifinfomsg",
        need: IFINFOMSG_LEN,
        have: payload.len(),
    };
    let (Some(head), Some(rest)) = (payload.get(..IFINFOMSG_LEN), payload.get(IFINFOMSG_LEN..))
    else {
        return Err(truncated);
    };
    let h = Ifinfomsg::from_bytes_with_input(&mut Cursor::new(head), IFINFOMSG_LEN)
        .map_err(|_| truncated)?;
    // ifi_index is an int, but indexes are always positive.
    let index = u32::from_ne_bytes(h.ifi_index().to_ne_bytes());
    let flags = h.ifi_flags().bits();
    let (mut name, mut operstate, mut mtu, mut kind) = (None, None, None, None);
    for a in rtattrs(rest) {
        let a = a?;
        match a.ty() {
            IFLA_IFNAME => name = Some(a.string()),
            IFLA_OPERSTATE => operstate = Some(OperState::from(a.u8("IFLA_OPERSTATE")?)),
            IFLA_MTU => mtu = Some(a.u32("IFLA_MTU")?),
            IFLA_LINKINFO => {
                for i in a.rtattrs() {
                    let i = i?;
                    if i.ty() == IFLA_INFO_KIND {
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
pub fn parse_event(msg: &Message<'_>) -> Result<RtnlEvent, DecodeError> {
    let ty = msg.ty();
    Ok(match ty {
        RTM_NEWADDR | RTM_DELADDR => match parse_addr(msg.payload())? {
            Some(a) if ty == RTM_NEWADDR => RtnlEvent::AddrAdded(a),
            Some(a) => RtnlEvent::AddrRemoved(a),
            None => RtnlEvent::Other { ty },
        },
        RTM_NEWLINK => RtnlEvent::LinkChanged(parse_link(msg.payload())?),
        RTM_DELLINK => {
            let l = parse_link(msg.payload())?;
            RtnlEvent::LinkRemoved {
                index: l.index,
                name: l.name,
            }
        }
        _ => RtnlEvent::Other { ty },
    })
}

/// RTM_GETLINK dump request (all links).
pub fn getlink_dump_request(seq: u32) -> Result<Vec<u8>, EncodeError> {
    let header = IfinfomsgBuilder::default()
        .ifi_family(RtAddrFamily::Unspecified)
        .build()
        .map_err(encode_error(WHAT_LINKS))?;
    request(
        WHAT_LINKS,
        RTM_GETLINK,
        NlmF::REQUEST | NlmF::DUMP,
        seq,
        header,
    )
}

/// RTM_GETADDR dump request (IPv4 and IPv6: family AF_UNSPEC).
pub fn getaddr_dump_request(seq: u32) -> Result<Vec<u8>, EncodeError> {
    let header = IfaddrmsgBuilder::default()
        .ifa_family(RtAddrFamily::Unspecified)
        .ifa_prefixlen(0)
        .ifa_scope(RtScope::Universe)
        .ifa_index(0)
        .build()
        .map_err(encode_error(WHAT_ADDRS))?;
    request(
        WHAT_ADDRS,
        RTM_GETADDR,
        NlmF::REQUEST | NlmF::DUMP,
        seq,
        header,
    )
}

/// SO_RCVBUF asked for the monitor (SO_RCVBUFFORCE when privileged).
const MONITOR_RCVBUF: usize = 4 * 1024 * 1024;

/// A NETLINK_ROUTE socket: either a monitor of link and address changes
/// ([`RtnlSocket::open_monitor`]) or a dumper ([`RtnlSocket::open`]).
#[derive(Debug)]
pub struct RtnlSocket {
    t: Transport,
    monitor: bool,
}

const WHAT_SOCKET: &str = "NETLINK_ROUTE socket";
const WHAT_MONITOR: &str = "rtnetlink monitor";
const WHAT_LINKS: &str = "RTM_GETLINK dump";
const WHAT_ADDRS: &str = "RTM_GETADDR dump";

impl RtnlSocket {
    /// A socket for dumps (no multicast groups).
    pub fn open() -> Result<Self, Error> {
        Ok(RtnlSocket {
            t: Transport::open(libc::NETLINK_ROUTE, WHAT_SOCKET)?,
            monitor: false,
        })
    }

    /// A socket joined to RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR and RTNLGRP_IPV6_IFADDR, with a
    /// large receive buffer. Open it before dumping, on another socket, what exists already.
    pub fn open_monitor() -> Result<Self, Error> {
        let t = Transport::open(libc::NETLINK_ROUTE, WHAT_MONITOR)?;
        // Best effort: a larger buffer makes overruns rarer; its absence is not fatal.
        let _ = t.set_recv_buffer(MONITOR_RCVBUF);
        for g in [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR] {
            t.join_group(g)?;
        }
        Ok(RtnlSocket { t, monitor: true })
    }

    /// Ask for a receive buffer of `bytes` (SO_RCVBUFFORCE when privileged, else SO_RCVBUF
    /// capped by net.core.rmem_max; the kernel doubles it). The monitor asks for 4 MiB by
    /// itself.
    pub fn set_recv_buffer_size(&self, bytes: usize) -> Result<(), Error> {
        self.t.set_recv_buffer(bytes)
    }

    /// Switch the socket between blocking (default) and non-blocking mode.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<(), Error> {
        self.t.set_nonblocking(nonblocking)
    }

    /// Receive one datagram of events (blocking unless non-blocking mode is set) and decode
    /// it. A message that cannot be decoded is an `Err` entry; the others still come through.
    ///
    /// Errors: [`Error::Overrun`] (events were lost: dump again), [`Error::WouldBlock`],
    /// [`Error::Truncated`], [`Error::Io`].
    pub fn recv_batch(&mut self) -> Result<Vec<Result<RtnlEvent, DecodeError>>, Error> {
        Ok(decode_events(self.t.recv_datagram(false)?))
    }

    fn dump<T>(
        &mut self,
        what: &'static str,
        req_for: impl FnOnce(u32) -> Result<Vec<u8>, EncodeError>,
        parse: impl Fn(&Message<'_>) -> Result<Option<T>, DecodeError>,
    ) -> Result<Dump<T>, Error> {
        if self.monitor {
            return Err(Error::DumpOnMonitor);
        }
        let seq = self.t.next_seq();
        let mut out = Dump::default();
        dump::run(&mut self.t, what, seq, &req_for(seq)?, parse, &mut out)?;
        Ok(out)
    }

    /// Dump every link. Links that cannot be decoded are counted in `skipped`.
    pub fn dump_links(&mut self) -> Result<Dump<LinkInfo>, Error> {
        self.dump(WHAT_LINKS, getlink_dump_request, parse_link_reply)
    }

    /// Dump every IPv4 and IPv6 address.
    pub fn dump_addrs(&mut self) -> Result<Dump<AddrInfo>, Error> {
        self.dump(WHAT_ADDRS, getaddr_dump_request, parse_addr_reply)
    }
}

impl AsRawFd for RtnlSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.t.as_raw_fd()
    }
}

/// Decode one reply of the link dump: RTM_NEWLINK through [`parse_link`], anything else is not
/// for us.
pub fn parse_link_reply(m: &Message<'_>) -> Result<Option<LinkInfo>, DecodeError> {
    payload_of(m, RTM_NEWLINK, |p| parse_link(p).map(Some))
}

/// Decode one reply of the address dump: RTM_NEWADDR through [`parse_addr`], anything else is
/// not for us.
pub fn parse_addr_reply(m: &Message<'_>) -> Result<Option<AddrInfo>, DecodeError> {
    payload_of(m, RTM_NEWADDR, parse_addr)
}

/// Decode every message of a datagram of multicast events (or several concatenated).
/// Control messages (NLMSG_DONE, NOOP, ERROR) are skipped; a framing failure ends the list
/// with one `Err`.
pub fn decode_events(datagram: &[u8]) -> Vec<Result<RtnlEvent, DecodeError>> {
    let mut out = Vec::new();
    for m in messages(datagram) {
        match m {
            Ok(m) if m.ty() < NLMSG_MIN_TYPE => {}
            Ok(m) => out.push(parse_event(&m)),
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    //! Fixtures: real messages captured from a 6.18 kernel by
    //! `tests/fixtures/rtnl/capture.py` (namespace "rtnlcap", veth v0 (index 3) / v1 (index 2);
    //! 10.78.0.1/24 and 2001:db8:78::1/64 added to and removed from v0; v0 set down; v0 deleted;
    //! dumps taken while both addresses were present; dump requests with sequence number 1).
    use super::*;
    use crate::transport::Step;
    use crate::wire::{message, test_message, NLMSG_ERROR, NLMSG_HDRLEN};

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
        let r = getlink_dump_request(3).unwrap();
        assert_eq!(r.len(), NLMSG_HDRLEN + IFINFOMSG_LEN);
        let m = message(&r).unwrap();
        assert_eq!((m.ty(), m.flags(), m.seq()), (RTM_GETLINK, 0x301, 3));
        assert!(m.payload().iter().all(|&b| b == 0));
        let r = getaddr_dump_request(4).unwrap();
        assert_eq!(r.len(), NLMSG_HDRLEN + IFADDRMSG_LEN);
        let m = message(&r).unwrap();
        assert_eq!((m.ty(), m.seq()), (RTM_GETADDR, 4));
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
        let done = dump::feed(DUMP_LINKS, 1, "t", parse_link_reply, &mut d).unwrap();
        assert_eq!(done, Step::Done);
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
        let done = dump::feed(DUMP_ADDRS, 1, "t", parse_addr_reply, &mut d).unwrap();
        assert_eq!(done, Step::Done);
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
        message(b).unwrap().payload().to_vec()
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
        let mut dgram = test_message(RTM_NEWADDR, 0, 0, &p[..4]);
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
        assert_eq!(
            only(&test_message(RTM_NEWADDR, 0, 0, &p)),
            RtnlEvent::Other { ty: RTM_NEWADDR }
        );
        // RTM_NEWROUTE
        assert_eq!(
            only(&test_message(24, 0, 0, &[0u8; 12])),
            RtnlEvent::Other { ty: 24 }
        );
    }

    #[test]
    fn dump_error_and_foreign_sequence() {
        let mut d: Dump<LinkInfo> = Dump::default();
        assert_eq!(
            dump::feed(DUMP_LINKS, 2, "t", |_| Ok(None), &mut d).unwrap(),
            Step::More
        );
        let mut body = (-libc::EPERM).to_ne_bytes().to_vec();
        body.extend_from_slice(&getlink_dump_request(9).unwrap()[..NLMSG_HDRLEN]);
        let e = dump::feed(
            &test_message(NLMSG_ERROR, 0x100, 9, &body),
            9,
            "RTM_GETLINK dump",
            |_| Ok(None::<()>),
            &mut Dump::default(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Kernel { errno, .. } if errno == libc::EPERM));
        assert!(e.to_string().contains("RTM_GETLINK"), "{e}");
    }
}
