//! Pure codec for the `mptcp_pm` generic netlink family: decoding `mptcp_pm_events` multicast
//! messages into [`PmEvent`]s, encoding userspace-PM [`PmCommand`]s, and the small GET_ADDR /
//! GET_LIMITS / SET_LIMITS exchanges. No sockets here (see [`crate::genl`]). neli frames the
//! messages and attributes and builds the requests ([`crate::wire`]); what is here is the
//! family's meaning: which attributes, which byte order, which domain value.
//!
//! Constant names follow the kernel uAPI (`include/uapi/linux/mptcp.h` and the generated
//! `mptcp_pm.h`). Two byte-order traps live here: event ports (`MPTCP_ATTR_SPORT/DPORT`) are
//! big-endian, command ports (`MPTCP_PM_ADDR_ATTR_PORT`) are host order. Unknown events and
//! attributes from newer kernels are carried, never fatal.

use std::net::{IpAddr, SocketAddr};

use mptcp_pmd_policies::{AddrId, ConnFlags, ConnInfo, PmCommand, PmEvent, SubflowInfo, Token};

use neli::consts::nl::NlmF;
use neli::genl::Nlattr;
use neli::types::Buffer;

use crate::error::{DecodeError, EncodeError};
use crate::wire::{attr, attrs, genl_header, genl_request, nest, Attr, GenlAttrs, Message};

/// Generic netlink family name.
pub const MPTCP_PM_NAME: &str = "mptcp_pm";
/// Family version spoken by this codec.
pub const MPTCP_PM_VER: u8 = 1;
/// Multicast group carrying PM events.
pub const MPTCP_PM_EV_GRP_NAME: &str = "mptcp_pm_events";
/// Multicast group echoing PM commands.
pub const MPTCP_PM_CMD_GRP_NAME: &str = "mptcp_pm_cmds";

/// `AF_INET` as carried in FAMILY attributes.
pub const AF_INET: u16 = 2;
/// `AF_INET6` as carried in FAMILY attributes.
pub const AF_INET6: u16 = 10;

// Commands (`MPTCP_PM_CMD_*`).
/// MPTCP_PM_CMD_ADD_ADDR (in-kernel PM endpoints).
pub const MPTCP_PM_CMD_ADD_ADDR: u8 = 1;
/// MPTCP_PM_CMD_DEL_ADDR (in-kernel PM endpoints).
pub const MPTCP_PM_CMD_DEL_ADDR: u8 = 2;
/// MPTCP_PM_CMD_GET_ADDR.
pub const MPTCP_PM_CMD_GET_ADDR: u8 = 3;
/// MPTCP_PM_CMD_FLUSH_ADDRS.
pub const MPTCP_PM_CMD_FLUSH_ADDRS: u8 = 4;
/// MPTCP_PM_CMD_SET_LIMITS.
pub const MPTCP_PM_CMD_SET_LIMITS: u8 = 5;
/// MPTCP_PM_CMD_GET_LIMITS.
pub const MPTCP_PM_CMD_GET_LIMITS: u8 = 6;
/// MPTCP_PM_CMD_SET_FLAGS.
pub const MPTCP_PM_CMD_SET_FLAGS: u8 = 7;
/// MPTCP_PM_CMD_ANNOUNCE.
pub const MPTCP_PM_CMD_ANNOUNCE: u8 = 8;
/// MPTCP_PM_CMD_REMOVE.
pub const MPTCP_PM_CMD_REMOVE: u8 = 9;
/// MPTCP_PM_CMD_SUBFLOW_CREATE.
pub const MPTCP_PM_CMD_SUBFLOW_CREATE: u8 = 10;
/// MPTCP_PM_CMD_SUBFLOW_DESTROY.
pub const MPTCP_PM_CMD_SUBFLOW_DESTROY: u8 = 11;

// Events (`MPTCP_EVENT_*`): their own number space, carried in the genl `cmd` field.
/// MPTCP_EVENT_CREATED.
pub const MPTCP_EVENT_CREATED: u8 = 1;
/// MPTCP_EVENT_ESTABLISHED.
pub const MPTCP_EVENT_ESTABLISHED: u8 = 2;
/// MPTCP_EVENT_CLOSED.
pub const MPTCP_EVENT_CLOSED: u8 = 3;
/// MPTCP_EVENT_ANNOUNCED.
pub const MPTCP_EVENT_ANNOUNCED: u8 = 6;
/// MPTCP_EVENT_REMOVED.
pub const MPTCP_EVENT_REMOVED: u8 = 7;
/// MPTCP_EVENT_SUB_ESTABLISHED.
pub const MPTCP_EVENT_SUB_ESTABLISHED: u8 = 10;
/// MPTCP_EVENT_SUB_CLOSED.
pub const MPTCP_EVENT_SUB_CLOSED: u8 = 11;
/// MPTCP_EVENT_SUB_PRIORITY.
pub const MPTCP_EVENT_SUB_PRIORITY: u8 = 13;
/// MPTCP_EVENT_LISTENER_CREATED.
pub const MPTCP_EVENT_LISTENER_CREATED: u8 = 15;
/// MPTCP_EVENT_LISTENER_CLOSED.
pub const MPTCP_EVENT_LISTENER_CLOSED: u8 = 16;

// Top-level command attributes (`MPTCP_PM_ATTR_*`).
/// MPTCP_PM_ATTR_ADDR (nested `MPTCP_PM_ADDR_ATTR_*`).
pub const MPTCP_PM_ATTR_ADDR: u16 = 1;
/// MPTCP_PM_ATTR_RCV_ADD_ADDRS (u32).
pub const MPTCP_PM_ATTR_RCV_ADD_ADDRS: u16 = 2;
/// MPTCP_PM_ATTR_SUBFLOWS (u32).
pub const MPTCP_PM_ATTR_SUBFLOWS: u16 = 3;
/// MPTCP_PM_ATTR_TOKEN (u32).
pub const MPTCP_PM_ATTR_TOKEN: u16 = 4;
/// MPTCP_PM_ATTR_LOC_ID (u8).
pub const MPTCP_PM_ATTR_LOC_ID: u16 = 5;
/// MPTCP_PM_ATTR_ADDR_REMOTE (nested `MPTCP_PM_ADDR_ATTR_*`).
pub const MPTCP_PM_ATTR_ADDR_REMOTE: u16 = 6;

// Nested address attributes (`MPTCP_PM_ADDR_ATTR_*`).
/// MPTCP_PM_ADDR_ATTR_FAMILY (u16).
pub const MPTCP_PM_ADDR_ATTR_FAMILY: u16 = 1;
/// MPTCP_PM_ADDR_ATTR_ID (u8).
pub const MPTCP_PM_ADDR_ATTR_ID: u16 = 2;
/// MPTCP_PM_ADDR_ATTR_ADDR4 (4 bytes, network order).
pub const MPTCP_PM_ADDR_ATTR_ADDR4: u16 = 3;
/// MPTCP_PM_ADDR_ATTR_ADDR6 (16 bytes).
pub const MPTCP_PM_ADDR_ATTR_ADDR6: u16 = 4;
/// MPTCP_PM_ADDR_ATTR_PORT (u16, host order).
pub const MPTCP_PM_ADDR_ATTR_PORT: u16 = 5;
/// MPTCP_PM_ADDR_ATTR_FLAGS (u32, `MPTCP_PM_ADDR_FLAG_*`).
pub const MPTCP_PM_ADDR_ATTR_FLAGS: u16 = 6;
/// MPTCP_PM_ADDR_ATTR_IF_IDX (s32).
pub const MPTCP_PM_ADDR_ATTR_IF_IDX: u16 = 7;

// Address flags (`MPTCP_PM_ADDR_FLAG_*`).
/// MPTCP_PM_ADDR_FLAG_SIGNAL: announce the address.
pub const MPTCP_PM_ADDR_FLAG_SIGNAL: u32 = 1 << 0;
/// MPTCP_PM_ADDR_FLAG_SUBFLOW: create subflows from it (in-kernel PM).
pub const MPTCP_PM_ADDR_FLAG_SUBFLOW: u32 = 1 << 1;
/// MPTCP_PM_ADDR_FLAG_BACKUP.
pub const MPTCP_PM_ADDR_FLAG_BACKUP: u32 = 1 << 2;
/// MPTCP_PM_ADDR_FLAG_FULLMESH.
pub const MPTCP_PM_ADDR_FLAG_FULLMESH: u32 = 1 << 3;
/// MPTCP_PM_ADDR_FLAG_IMPLICIT.
pub const MPTCP_PM_ADDR_FLAG_IMPLICIT: u32 = 1 << 4;
/// MPTCP_PM_ADDR_FLAG_LAMINAR (6.18+).
pub const MPTCP_PM_ADDR_FLAG_LAMINAR: u32 = 1 << 5;

/// The names `ip mptcp endpoint show` uses for `MPTCP_PM_ADDR_FLAG_*` bits, unknown bits as
/// hex (for log lines about the in-kernel PM's endpoints).
pub fn addr_flag_names(flags: u32) -> Vec<String> {
    const NAMES: [(u32, &str); 6] = [
        (MPTCP_PM_ADDR_FLAG_SIGNAL, "signal"),
        (MPTCP_PM_ADDR_FLAG_SUBFLOW, "subflow"),
        (MPTCP_PM_ADDR_FLAG_BACKUP, "backup"),
        (MPTCP_PM_ADDR_FLAG_FULLMESH, "fullmesh"),
        (MPTCP_PM_ADDR_FLAG_IMPLICIT, "implicit"),
        (MPTCP_PM_ADDR_FLAG_LAMINAR, "laminar"),
    ];
    let mut out: Vec<String> = NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| (*n).to_string())
        .collect();
    let unknown = NAMES.iter().fold(flags, |f, (bit, _)| f & !bit);
    if unknown != 0 {
        out.push(format!("{unknown:#x}"));
    }
    out
}

// Event attributes (`MPTCP_ATTR_*`).
/// MPTCP_ATTR_TOKEN (u32).
pub const MPTCP_ATTR_TOKEN: u16 = 1;
/// MPTCP_ATTR_FAMILY (u16).
pub const MPTCP_ATTR_FAMILY: u16 = 2;
/// MPTCP_ATTR_LOC_ID (u8).
pub const MPTCP_ATTR_LOC_ID: u16 = 3;
/// MPTCP_ATTR_REM_ID (u8).
pub const MPTCP_ATTR_REM_ID: u16 = 4;
/// MPTCP_ATTR_SADDR4 (be32).
pub const MPTCP_ATTR_SADDR4: u16 = 5;
/// MPTCP_ATTR_SADDR6 (16 bytes).
pub const MPTCP_ATTR_SADDR6: u16 = 6;
/// MPTCP_ATTR_DADDR4 (be32).
pub const MPTCP_ATTR_DADDR4: u16 = 7;
/// MPTCP_ATTR_DADDR6 (16 bytes).
pub const MPTCP_ATTR_DADDR6: u16 = 8;
/// MPTCP_ATTR_SPORT (be16).
pub const MPTCP_ATTR_SPORT: u16 = 9;
/// MPTCP_ATTR_DPORT (be16).
pub const MPTCP_ATTR_DPORT: u16 = 10;
/// MPTCP_ATTR_BACKUP (u8).
pub const MPTCP_ATTR_BACKUP: u16 = 11;
/// MPTCP_ATTR_ERROR (u8).
pub const MPTCP_ATTR_ERROR: u16 = 12;
/// MPTCP_ATTR_FLAGS (u16, `MPTCP_PM_EV_FLAG_*`).
pub const MPTCP_ATTR_FLAGS: u16 = 13;
/// MPTCP_ATTR_TIMEOUT (u32).
pub const MPTCP_ATTR_TIMEOUT: u16 = 14;
/// MPTCP_ATTR_IF_IDX (s32).
pub const MPTCP_ATTR_IF_IDX: u16 = 15;
/// MPTCP_ATTR_RESET_REASON (u32).
pub const MPTCP_ATTR_RESET_REASON: u16 = 16;
/// MPTCP_ATTR_RESET_FLAGS (u32).
pub const MPTCP_ATTR_RESET_FLAGS: u16 = 17;
/// MPTCP_ATTR_SERVER_SIDE (u8; superseded by the FLAGS bit on newer kernels).
pub const MPTCP_ATTR_SERVER_SIDE: u16 = 18;

/// MPTCP_PM_EV_FLAG_DENY_JOIN_ID0 (bit of MPTCP_ATTR_FLAGS).
pub const MPTCP_PM_EV_FLAG_DENY_JOIN_ID0: u16 = 1 << 0;
/// MPTCP_PM_EV_FLAG_SERVER_SIDE (bit of MPTCP_ATTR_FLAGS).
pub const MPTCP_PM_EV_FLAG_SERVER_SIDE: u16 = 1 << 1;

/// A decoded event plus the attribute types this build did not recognise (kept for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedEvent {
    /// The event in domain terms.
    pub event: PmEvent,
    /// Attribute types present in the message but unknown to this codec.
    pub unknown_attrs: Vec<u16>,
}

/// One entry of a GET_ADDR reply: an address the PM knows for a connection (userspace PM) or
/// an endpoint (in-kernel PM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmAddr {
    /// Address id.
    pub id: AddrId,
    /// The address.
    pub addr: IpAddr,
    /// Port, if the entry has one.
    pub port: Option<u16>,
    /// `MPTCP_PM_ADDR_FLAG_*` bits.
    pub flags: u32,
    /// Interface index, if the entry has one.
    pub if_index: Option<i32>,
}

/// Path-manager limits of a network namespace (GET_LIMITS / SET_LIMITS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum number of additional subflows per connection.
    pub subflows: u32,
    /// Maximum number of ADD_ADDRs accepted per connection.
    pub add_addr_accepted: u32,
}

/// The kernel name of an event number (for error messages).
pub fn event_name(cmd: u8) -> &'static str {
    match cmd {
        MPTCP_EVENT_CREATED => "MPTCP_EVENT_CREATED",
        MPTCP_EVENT_ESTABLISHED => "MPTCP_EVENT_ESTABLISHED",
        MPTCP_EVENT_CLOSED => "MPTCP_EVENT_CLOSED",
        MPTCP_EVENT_ANNOUNCED => "MPTCP_EVENT_ANNOUNCED",
        MPTCP_EVENT_REMOVED => "MPTCP_EVENT_REMOVED",
        MPTCP_EVENT_SUB_ESTABLISHED => "MPTCP_EVENT_SUB_ESTABLISHED",
        MPTCP_EVENT_SUB_CLOSED => "MPTCP_EVENT_SUB_CLOSED",
        MPTCP_EVENT_SUB_PRIORITY => "MPTCP_EVENT_SUB_PRIORITY",
        MPTCP_EVENT_LISTENER_CREATED => "MPTCP_EVENT_LISTENER_CREATED",
        MPTCP_EVENT_LISTENER_CLOSED => "MPTCP_EVENT_LISTENER_CLOSED",
        _ => "MPTCP_EVENT_UNKNOWN",
    }
}

/// The raw attributes of an event, each validated for size when present.
#[derive(Default)]
struct EvAttrs<'a> {
    token: Option<Attr<'a>>,
    family: Option<Attr<'a>>,
    loc_id: Option<Attr<'a>>,
    rem_id: Option<Attr<'a>>,
    saddr4: Option<Attr<'a>>,
    saddr6: Option<Attr<'a>>,
    daddr4: Option<Attr<'a>>,
    daddr6: Option<Attr<'a>>,
    sport: Option<Attr<'a>>,
    dport: Option<Attr<'a>>,
    backup: Option<Attr<'a>>,
    error: Option<Attr<'a>>,
    flags: Option<Attr<'a>>,
    if_idx: Option<Attr<'a>>,
    reset_reason: Option<Attr<'a>>,
    reset_flags: Option<Attr<'a>>,
    server_side: Option<Attr<'a>>,
}

/// Which side of the 4-tuple to read.
#[derive(Clone, Copy)]
enum Side {
    Src,
    Dst,
}

impl<'a> EvAttrs<'a> {
    fn parse(buf: &'a [u8], unknown: &mut Vec<u16>) -> Result<Self, DecodeError> {
        let mut ev = EvAttrs::default();
        for a in attrs(buf) {
            let a = a?;
            let slot = match a.ty() {
                MPTCP_ATTR_TOKEN => &mut ev.token,
                MPTCP_ATTR_FAMILY => &mut ev.family,
                MPTCP_ATTR_LOC_ID => &mut ev.loc_id,
                MPTCP_ATTR_REM_ID => &mut ev.rem_id,
                MPTCP_ATTR_SADDR4 => &mut ev.saddr4,
                MPTCP_ATTR_SADDR6 => &mut ev.saddr6,
                MPTCP_ATTR_DADDR4 => &mut ev.daddr4,
                MPTCP_ATTR_DADDR6 => &mut ev.daddr6,
                MPTCP_ATTR_SPORT => &mut ev.sport,
                MPTCP_ATTR_DPORT => &mut ev.dport,
                MPTCP_ATTR_BACKUP => &mut ev.backup,
                MPTCP_ATTR_ERROR => &mut ev.error,
                MPTCP_ATTR_FLAGS => &mut ev.flags,
                MPTCP_ATTR_IF_IDX => &mut ev.if_idx,
                MPTCP_ATTR_RESET_REASON => &mut ev.reset_reason,
                MPTCP_ATTR_RESET_FLAGS => &mut ev.reset_flags,
                MPTCP_ATTR_SERVER_SIDE => &mut ev.server_side,
                // Known but unused by the domain model.
                MPTCP_ATTR_TIMEOUT => continue,
                other => {
                    unknown.push(other);
                    continue;
                }
            };
            *slot = Some(a);
        }
        Ok(ev)
    }

    fn token(&self, msg: &'static str) -> Result<Token, DecodeError> {
        let a = self.token.ok_or(DecodeError::Missing {
            msg,
            what: "MPTCP_ATTR_TOKEN",
        })?;
        Ok(Token(a.u32("MPTCP_ATTR_TOKEN")?))
    }

    fn opt_u8(a: Option<Attr<'_>>, what: &'static str) -> Result<Option<u8>, DecodeError> {
        a.map(|a| a.u8(what)).transpose()
    }

    fn opt_u32(a: Option<Attr<'_>>, what: &'static str) -> Result<Option<u32>, DecodeError> {
        a.map(|a| a.u32(what)).transpose()
    }

    fn req_u8(
        a: Option<Attr<'_>>,
        msg: &'static str,
        what: &'static str,
    ) -> Result<u8, DecodeError> {
        a.ok_or(DecodeError::Missing { msg, what })?.u8(what)
    }

    fn family(&self, msg: &'static str) -> Result<u16, DecodeError> {
        let f = self
            .family
            .ok_or(DecodeError::Missing {
                msg,
                what: "MPTCP_ATTR_FAMILY",
            })?
            .u16("MPTCP_ATTR_FAMILY")?;
        match f {
            AF_INET | AF_INET6 => Ok(f),
            other => Err(DecodeError::Invalid {
                what: "MPTCP_ATTR_FAMILY",
                value: u64::from(other),
            }),
        }
    }

    /// The address of one side. FAMILY decides between the v4 and v6 attribute when present;
    /// ANNOUNCED carries no FAMILY (verified on 6.18), then whichever address attribute exists
    /// decides.
    fn addr(&self, msg: &'static str, side: Side) -> Result<IpAddr, DecodeError> {
        let (a4, a6, what4, what6, either) = match side {
            Side::Src => (
                self.saddr4,
                self.saddr6,
                "MPTCP_ATTR_SADDR4",
                "MPTCP_ATTR_SADDR6",
                "MPTCP_ATTR_SADDR4/SADDR6",
            ),
            Side::Dst => (
                self.daddr4,
                self.daddr6,
                "MPTCP_ATTR_DADDR4",
                "MPTCP_ATTR_DADDR6",
                "MPTCP_ATTR_DADDR4/DADDR6",
            ),
        };
        let family = if self.family.is_some() {
            Some(self.family(msg)?)
        } else {
            None
        };
        match (family, a4, a6) {
            (Some(AF_INET), Some(a), _) | (None, Some(a), _) => Ok(IpAddr::V4(a.ipv4(what4)?)),
            (Some(AF_INET), None, _) => Err(DecodeError::Missing { msg, what: what4 }),
            (_, _, Some(a)) => Ok(IpAddr::V6(a.ipv6(what6)?)),
            (Some(_), _, None) => Err(DecodeError::Missing { msg, what: what6 }),
            (None, None, None) => Err(DecodeError::Missing { msg, what: either }),
        }
    }

    /// A port attribute: big-endian in events.
    fn port(&self, msg: &'static str, side: Side) -> Result<u16, DecodeError> {
        let (attr, what) = match side {
            Side::Src => (self.sport, "MPTCP_ATTR_SPORT"),
            Side::Dst => (self.dport, "MPTCP_ATTR_DPORT"),
        };
        attr.ok_or(DecodeError::Missing { msg, what })?.u16_be(what)
    }

    fn sockaddr(&self, msg: &'static str, side: Side) -> Result<SocketAddr, DecodeError> {
        Ok(SocketAddr::new(
            self.addr(msg, side)?,
            self.port(msg, side)?,
        ))
    }

    fn conn(&self, msg: &'static str) -> Result<ConnInfo, DecodeError> {
        let flags = self
            .flags
            .map(|a| a.u16("MPTCP_ATTR_FLAGS"))
            .transpose()?
            .unwrap_or(0);
        let server_side_attr = Self::opt_u8(self.server_side, "MPTCP_ATTR_SERVER_SIDE")?;
        Ok(ConnInfo {
            token: self.token(msg)?,
            local: self.sockaddr(msg, Side::Src)?,
            remote: self.sockaddr(msg, Side::Dst)?,
            loc_id: Self::opt_u8(self.loc_id, "MPTCP_ATTR_LOC_ID")?.unwrap_or(0),
            rem_id: Self::opt_u8(self.rem_id, "MPTCP_ATTR_REM_ID")?.unwrap_or(0),
            flags: ConnFlags {
                deny_join_id0: flags & MPTCP_PM_EV_FLAG_DENY_JOIN_ID0 != 0,
                server_side: flags & MPTCP_PM_EV_FLAG_SERVER_SIDE != 0
                    || server_side_attr.is_some_and(|v| v != 0),
            },
        })
    }

    fn subflow(&self, msg: &'static str) -> Result<SubflowInfo, DecodeError> {
        Ok(SubflowInfo {
            token: self.token(msg)?,
            local: self.sockaddr(msg, Side::Src)?,
            remote: self.sockaddr(msg, Side::Dst)?,
            loc_id: Self::req_u8(self.loc_id, msg, "MPTCP_ATTR_LOC_ID")?,
            rem_id: Self::req_u8(self.rem_id, msg, "MPTCP_ATTR_REM_ID")?,
            backup: Self::opt_u8(self.backup, "MPTCP_ATTR_BACKUP")?.is_some_and(|b| b != 0),
            if_idx: self
                .if_idx
                .map(|a| a.i32("MPTCP_ATTR_IF_IDX"))
                .transpose()?,
            error: Self::opt_u8(self.error, "MPTCP_ATTR_ERROR")?,
            reset_reason: Self::opt_u32(self.reset_reason, "MPTCP_ATTR_RESET_REASON")?,
            reset_flags: Self::opt_u32(self.reset_flags, "MPTCP_ATTR_RESET_FLAGS")?,
        })
    }
}

/// Decode one message of the `mptcp_pm_events` group (genl header, then `MPTCP_ATTR_*`).
///
/// The caller has already checked that `msg.ty()` is the resolved `mptcp_pm` family id.
/// Unknown event numbers become [`PmEvent::Unknown`]; unknown attributes are listed in
/// [`DecodedEvent::unknown_attrs`]. Missing required attributes or wrong sizes are errors that
/// name the attribute and the event.
pub fn decode_event(msg: &Message<'_>) -> Result<DecodedEvent, DecodeError> {
    let (cmd, body) = genl_header(msg)?;
    let name = event_name(cmd);
    let ctx = |e: DecodeError| match e {
        // Missing already names the event.
        DecodeError::Missing { .. } => e,
        other => DecodeError::Context {
            context: name,
            source: Box::new(other),
        },
    };
    let mut unknown_attrs = Vec::new();
    let ev = EvAttrs::parse(body, &mut unknown_attrs).map_err(ctx)?;
    let event = (|| {
        Ok(match cmd {
            MPTCP_EVENT_CREATED => PmEvent::Created(ev.conn(name)?),
            MPTCP_EVENT_ESTABLISHED => PmEvent::Established(ev.conn(name)?),
            MPTCP_EVENT_CLOSED => PmEvent::Closed {
                token: ev.token(name)?,
            },
            MPTCP_EVENT_ANNOUNCED => PmEvent::Announced {
                token: ev.token(name)?,
                rem_id: EvAttrs::req_u8(ev.rem_id, name, "MPTCP_ATTR_REM_ID")?,
                addr: ev.addr(name, Side::Dst)?,
                // 6.18 always adds DPORT (the connection's port when the ADD_ADDR had none);
                // 0 means "no port".
                port: ev
                    .dport
                    .map(|a| a.u16_be("MPTCP_ATTR_DPORT"))
                    .transpose()?
                    .filter(|&p| p != 0),
            },
            MPTCP_EVENT_REMOVED => PmEvent::Removed {
                token: ev.token(name)?,
                rem_id: EvAttrs::req_u8(ev.rem_id, name, "MPTCP_ATTR_REM_ID")?,
            },
            MPTCP_EVENT_SUB_ESTABLISHED => PmEvent::SubEstablished(ev.subflow(name)?),
            MPTCP_EVENT_SUB_CLOSED => PmEvent::SubClosed(ev.subflow(name)?),
            MPTCP_EVENT_SUB_PRIORITY => PmEvent::SubPriority(ev.subflow(name)?),
            MPTCP_EVENT_LISTENER_CREATED => PmEvent::ListenerCreated {
                addr: ev.sockaddr(name, Side::Src)?,
            },
            MPTCP_EVENT_LISTENER_CLOSED => PmEvent::ListenerClosed {
                addr: ev.sockaddr(name, Side::Src)?,
            },
            kind => PmEvent::Unknown {
                kind,
                token: ev
                    .token
                    .and_then(|a| a.u32("MPTCP_ATTR_TOKEN").ok())
                    .map(Token),
            },
        })
    })()
    .map_err(ctx)?;
    Ok(DecodedEvent {
        event,
        unknown_attrs,
    })
}

fn family_of(addr: &IpAddr) -> u16 {
    match addr {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

/// FAMILY and ADDR4/ADDR6 of an `MPTCP_PM_ADDR_ATTR_*` nest.
fn addr_attrs(what: &'static str, addr: &IpAddr) -> Result<[Nlattr<u16, Buffer>; 2], EncodeError> {
    Ok([
        attr(what, MPTCP_PM_ADDR_ATTR_FAMILY, family_of(addr))?,
        match addr {
            IpAddr::V4(a) => attr(what, MPTCP_PM_ADDR_ATTR_ADDR4, a.octets())?,
            IpAddr::V6(a) => attr(what, MPTCP_PM_ADDR_ATTR_ADDR6, a.octets())?,
        },
    ])
}

/// A nested address with family, address and a host-order port (and `flags`, if given).
fn sockaddr_nest(
    what: &'static str,
    ty: u16,
    sa: &SocketAddr,
    flags: Option<u32>,
) -> Result<Nlattr<u16, Buffer>, EncodeError> {
    let [family, addr] = addr_attrs(what, &sa.ip())?;
    let flags = flags
        .map(|f| attr(what, MPTCP_PM_ADDR_ATTR_FLAGS, f))
        .transpose()?;
    nest(
        what,
        ty,
        [
            Some(family),
            Some(addr),
            Some(attr(what, MPTCP_PM_ADDR_ATTR_PORT, sa.port())?),
            flags,
        ],
    )
}

/// The genl command number a [`PmCommand`] is sent as.
pub fn command_number(cmd: &PmCommand) -> u8 {
    match cmd {
        PmCommand::CreateSubflow { .. } => MPTCP_PM_CMD_SUBFLOW_CREATE,
        PmCommand::DestroySubflow { .. } => MPTCP_PM_CMD_SUBFLOW_DESTROY,
        PmCommand::SetBackup { .. } => MPTCP_PM_CMD_SET_FLAGS,
        PmCommand::Announce { .. } => MPTCP_PM_CMD_ANNOUNCE,
        PmCommand::Remove { .. } => MPTCP_PM_CMD_REMOVE,
    }
}

/// Encode a userspace-PM command as one `mptcp_pm` request (NLM_F_REQUEST | NLM_F_ACK,
/// genl version 1) for family id `family` with sequence number `seq`.
///
/// Layouts (what `net/mptcp/pm_userspace.c` reads):
/// - SUBFLOW_CREATE: TOKEN, ADDR{FAMILY, ID, ADDR4/6, [FLAGS=BACKUP], [IF_IDX]},
///   ADDR_REMOTE{FAMILY, ADDR4/6, PORT}
/// - SUBFLOW_DESTROY: TOKEN, ADDR{FAMILY, ADDR, PORT}, ADDR_REMOTE{FAMILY, ADDR, PORT}
/// - SET_FLAGS: TOKEN, ADDR{FAMILY, ADDR, PORT, FLAGS=BACKUP|0}, ADDR_REMOTE{FAMILY, ADDR, PORT}
/// - ANNOUNCE: TOKEN, ADDR{FAMILY, ID, ADDR, [PORT], FLAGS=SIGNAL}
/// - REMOVE: TOKEN, LOC_ID
///
/// Ports are host order here (unlike events).
pub fn encode_command(family: u16, seq: u32, cmd: &PmCommand) -> Result<Vec<u8>, EncodeError> {
    let what = cmd.name();
    let token = attr(what, MPTCP_PM_ATTR_TOKEN, cmd.token().0)?;
    // Built as arrays (no list grown attribute by attribute: this is the join's path).
    let list: GenlAttrs = match cmd {
        PmCommand::CreateSubflow {
            local,
            local_id,
            if_index,
            remote,
            backup,
            ..
        } => {
            let [family, addr] = addr_attrs(what, local)?;
            let flags = backup
                .then(|| attr(what, MPTCP_PM_ADDR_ATTR_FLAGS, MPTCP_PM_ADDR_FLAG_BACKUP))
                .transpose()?;
            let if_idx = if_index
                .and_then(|i| i32::try_from(i).ok())
                .map(|i| attr(what, MPTCP_PM_ADDR_ATTR_IF_IDX, i))
                .transpose()?;
            let local = nest(
                what,
                MPTCP_PM_ATTR_ADDR,
                [
                    Some(family),
                    Some(addr),
                    Some(attr(what, MPTCP_PM_ADDR_ATTR_ID, *local_id)?),
                    flags,
                    if_idx,
                ],
            )?;
            let remote = sockaddr_nest(what, MPTCP_PM_ATTR_ADDR_REMOTE, remote, None)?;
            [token, local, remote].into_iter().collect()
        }
        PmCommand::DestroySubflow { key, .. } => [
            token,
            sockaddr_nest(what, MPTCP_PM_ATTR_ADDR, &key.local, None)?,
            sockaddr_nest(what, MPTCP_PM_ATTR_ADDR_REMOTE, &key.remote, None)?,
        ]
        .into_iter()
        .collect(),
        PmCommand::SetBackup { key, backup, .. } => {
            let flags = if *backup {
                MPTCP_PM_ADDR_FLAG_BACKUP
            } else {
                0
            };
            [
                token,
                sockaddr_nest(what, MPTCP_PM_ATTR_ADDR, &key.local, Some(flags))?,
                sockaddr_nest(what, MPTCP_PM_ATTR_ADDR_REMOTE, &key.remote, None)?,
            ]
            .into_iter()
            .collect()
        }
        PmCommand::Announce { id, addr, port, .. } => {
            let [family, addr] = addr_attrs(what, addr)?;
            let port = port
                .map(|p| attr(what, MPTCP_PM_ADDR_ATTR_PORT, p))
                .transpose()?;
            let addr = nest(
                what,
                MPTCP_PM_ATTR_ADDR,
                [
                    Some(family),
                    Some(addr),
                    Some(attr(what, MPTCP_PM_ADDR_ATTR_ID, *id)?),
                    port,
                    Some(attr(
                        what,
                        MPTCP_PM_ADDR_ATTR_FLAGS,
                        MPTCP_PM_ADDR_FLAG_SIGNAL,
                    )?),
                ],
            )?;
            [token, addr].into_iter().collect()
        }
        PmCommand::Remove { id, .. } => [token, attr(what, MPTCP_PM_ATTR_LOC_ID, *id)?]
            .into_iter()
            .collect(),
    };
    genl_request(
        what,
        family,
        (command_number(cmd), MPTCP_PM_VER),
        NlmF::REQUEST | NlmF::ACK,
        seq,
        list,
    )
}

/// Encode a GET_ADDR dump request; with a token the userspace PM lists that connection's
/// local addresses, without one the in-kernel PM lists its endpoints.
pub fn encode_get_addrs(
    family: u16,
    seq: u32,
    token: Option<Token>,
) -> Result<Vec<u8>, EncodeError> {
    const WHAT: &str = "MPTCP_PM_CMD_GET_ADDR";
    let mut list = GenlAttrs::new();
    if let Some(t) = token {
        list.push(attr(WHAT, MPTCP_PM_ATTR_TOKEN, t.0)?);
    }
    genl_request(
        WHAT,
        family,
        (MPTCP_PM_CMD_GET_ADDR, MPTCP_PM_VER),
        NlmF::REQUEST | NlmF::DUMP,
        seq,
        list,
    )
}

/// Encode a GET_LIMITS request (answered by one reply message, then the ACK).
pub fn encode_get_limits(family: u16, seq: u32) -> Result<Vec<u8>, EncodeError> {
    genl_request(
        "MPTCP_PM_CMD_GET_LIMITS",
        family,
        (MPTCP_PM_CMD_GET_LIMITS, MPTCP_PM_VER),
        NlmF::REQUEST | NlmF::ACK,
        seq,
        GenlAttrs::new(),
    )
}

/// Encode a SET_LIMITS request.
pub fn encode_set_limits(family: u16, seq: u32, limits: &Limits) -> Result<Vec<u8>, EncodeError> {
    const WHAT: &str = "MPTCP_PM_CMD_SET_LIMITS";
    let mut list = GenlAttrs::new();
    list.push(attr(
        WHAT,
        MPTCP_PM_ATTR_RCV_ADD_ADDRS,
        limits.add_addr_accepted,
    )?);
    list.push(attr(WHAT, MPTCP_PM_ATTR_SUBFLOWS, limits.subflows)?);
    genl_request(
        WHAT,
        family,
        (MPTCP_PM_CMD_SET_LIMITS, MPTCP_PM_VER),
        NlmF::REQUEST | NlmF::ACK,
        seq,
        list,
    )
}

/// Decode the nested `MPTCP_PM_ADDR_ATTR_*` of one address.
fn decode_addr_nest(a: &Attr<'_>) -> Result<PmAddr, DecodeError> {
    const MSG: &str = "MPTCP_PM_ATTR_ADDR";
    let mut family = None;
    let mut id = None;
    let mut addr4 = None;
    let mut addr6 = None;
    let mut port = None;
    let mut flags = 0;
    let mut if_index = None;
    for n in a.attrs() {
        let n = n?;
        match n.ty() {
            MPTCP_PM_ADDR_ATTR_FAMILY => family = Some(n.u16("MPTCP_PM_ADDR_ATTR_FAMILY")?),
            MPTCP_PM_ADDR_ATTR_ID => id = Some(n.u8("MPTCP_PM_ADDR_ATTR_ID")?),
            MPTCP_PM_ADDR_ATTR_ADDR4 => addr4 = Some(n.ipv4("MPTCP_PM_ADDR_ATTR_ADDR4")?),
            MPTCP_PM_ADDR_ATTR_ADDR6 => addr6 = Some(n.ipv6("MPTCP_PM_ADDR_ATTR_ADDR6")?),
            MPTCP_PM_ADDR_ATTR_PORT => port = Some(n.u16("MPTCP_PM_ADDR_ATTR_PORT")?),
            MPTCP_PM_ADDR_ATTR_FLAGS => flags = n.u32("MPTCP_PM_ADDR_ATTR_FLAGS")?,
            MPTCP_PM_ADDR_ATTR_IF_IDX => if_index = Some(n.i32("MPTCP_PM_ADDR_ATTR_IF_IDX")?),
            _ => {}
        }
    }
    let family = family.ok_or(DecodeError::Missing {
        msg: MSG,
        what: "MPTCP_PM_ADDR_ATTR_FAMILY",
    })?;
    let addr = match family {
        AF_INET => IpAddr::V4(addr4.ok_or(DecodeError::Missing {
            msg: MSG,
            what: "MPTCP_PM_ADDR_ATTR_ADDR4",
        })?),
        AF_INET6 => IpAddr::V6(addr6.ok_or(DecodeError::Missing {
            msg: MSG,
            what: "MPTCP_PM_ADDR_ATTR_ADDR6",
        })?),
        other => {
            return Err(DecodeError::Invalid {
                what: "MPTCP_PM_ADDR_ATTR_FAMILY",
                value: u64::from(other),
            })
        }
    };
    Ok(PmAddr {
        id: id.unwrap_or(0),
        addr,
        port: port.filter(|&p| p != 0),
        flags,
        if_index: if_index.filter(|&i| i != 0),
    })
}

/// Decode one GET_ADDR reply message (genl header + nested MPTCP_PM_ATTR_ADDR).
pub fn decode_addr(msg: &Message<'_>) -> Result<PmAddr, DecodeError> {
    let (_, body) = genl_header(msg)?;
    for a in attrs(body) {
        let a = a?;
        if a.ty() == MPTCP_PM_ATTR_ADDR {
            return decode_addr_nest(&a).map_err(|e| DecodeError::Context {
                context: "MPTCP_PM_CMD_GET_ADDR reply",
                source: Box::new(e),
            });
        }
    }
    Err(DecodeError::Missing {
        msg: "MPTCP_PM_CMD_GET_ADDR reply",
        what: "MPTCP_PM_ATTR_ADDR",
    })
}

/// Decode a GET_LIMITS reply.
pub fn decode_limits(msg: &Message<'_>) -> Result<Limits, DecodeError> {
    const MSG: &str = "MPTCP_PM_CMD_GET_LIMITS reply";
    let (_, body) = genl_header(msg)?;
    let mut subflows = None;
    let mut accepted = None;
    for a in attrs(body) {
        let a = a?;
        match a.ty() {
            MPTCP_PM_ATTR_SUBFLOWS => subflows = Some(a.u32("MPTCP_PM_ATTR_SUBFLOWS")?),
            MPTCP_PM_ATTR_RCV_ADD_ADDRS => accepted = Some(a.u32("MPTCP_PM_ATTR_RCV_ADD_ADDRS")?),
            _ => {}
        }
    }
    Ok(Limits {
        subflows: subflows.ok_or(DecodeError::Missing {
            msg: MSG,
            what: "MPTCP_PM_ATTR_SUBFLOWS",
        })?,
        add_addr_accepted: accepted.ok_or(DecodeError::Missing {
            msg: MSG,
            what: "MPTCP_PM_ATTR_RCV_ADD_ADDRS",
        })?,
    })
}
