//! Sockets of the `mptcp_pm` generic netlink family: the multicast event socket
//! ([`PmEventSocket`]) and the command socket ([`PmClient`]), both a
//! [`Transport`](crate::transport::Transport) carrying bytes encoded and decoded by
//! [`crate::mptcp_pm`].
//!
//! Family and group ids are resolved at run time through the generic netlink controller
//! ([`resolve_family`], codec in [`crate::genl_ctrl`]), never hard-coded. A socket belongs to
//! the network namespace of the thread that opened it.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use mptcp_pmd_policies::{PmCommand, Token};

use crate::error::{DecodeError, Error};
use crate::genl_ctrl::{decode_family, encode_get_family, GenlFamilyInfo};
use crate::mptcp_pm::{
    decode_addr, decode_event, decode_limits, encode_command, encode_get_addrs, encode_get_limits,
    encode_set_limits, DecodedEvent, Limits, PmAddr, MPTCP_PM_EV_GRP_NAME, MPTCP_PM_NAME,
};
pub use crate::transport::Traced;
use crate::transport::{RecvSlots, Transport};
use crate::wire::messages;

/// At most this many datagrams are drained by one [`PmEventSocket::recv_batch`].
const MAX_BATCH: usize = 256;
/// Datagrams read per system call by [`PmEventSocket::recv_batch`].
const PER_CALL: usize = 16;

const WHAT_EVENTS: &str = "mptcp_pm events socket";
const WHAT_COMMANDS: &str = "mptcp_pm command socket";
const WHAT_CTRL: &str = "generic netlink controller";

/// Resolved ids of the `mptcp_pm` family in the current network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmFamily {
    /// Generic netlink family id (the `nlmsg_type` of every message).
    pub id: u16,
    /// Multicast group id of `mptcp_pm_events`.
    pub events_group: u32,
}

/// Ask the generic netlink controller for the `mptcp_pm` family and events group ids.
pub fn resolve_family() -> Result<PmFamily, Error> {
    let mut ctrl = Transport::open(libc::NETLINK_GENERIC, WHAT_CTRL)?;
    let seq = ctrl.next_seq();
    let mut info: Option<GenlFamilyInfo> = None;
    let res = ctrl.request(
        "CTRL_CMD_GETFAMILY mptcp_pm",
        seq,
        &encode_get_family(MPTCP_PM_NAME, seq)?,
        |m| {
            info = Some(decode_family(m)?);
            Ok(())
        },
    );
    match res {
        Err(Error::Kernel { errno, .. }) if errno == libc::ENOENT => {
            return Err(Error::Unresolved {
                what: "family mptcp_pm",
                reason: "the kernel has no such family: is MPTCP built in?".into(),
            })
        }
        other => other?,
    }
    let info = info.ok_or(Error::Unresolved {
        what: "family mptcp_pm",
        reason: "the controller acknowledged without describing it".into(),
    })?;
    let events_group = info
        .group(MPTCP_PM_EV_GRP_NAME)
        .ok_or_else(|| Error::Unresolved {
            what: "group mptcp_pm_events",
            reason: format!("family mptcp_pm lists only {:?}", info.groups),
        })?;
    Ok(PmFamily {
        id: info.id,
        events_group,
    })
}

/// The `mptcp_pm_events` multicast subscriber.
pub struct PmEventSocket {
    t: Transport,
    slots: RecvSlots,
    family: PmFamily,
    /// An overrun seen after some events were already read: reported on the next call.
    lost_pending: Option<Error>,
    /// The last batch ended because the socket had nothing more queued.
    drained: bool,
}

impl std::fmt::Debug for PmEventSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PmEventSocket")
            .field("transport", &self.t)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

impl PmEventSocket {
    /// Resolve the family, open a socket, enlarge its receive buffer to `rcvbuf_bytes`
    /// (SO_RCVBUFFORCE when privileged, else SO_RCVBUF capped by `rmem_max`) and join
    /// `mptcp_pm_events` (needs CAP_NET_ADMIN in the namespace).
    pub fn open(rcvbuf_bytes: usize) -> Result<Self, Error> {
        let family = resolve_family()?;
        let t = Transport::open(libc::NETLINK_GENERIC, WHAT_EVENTS)?;
        t.set_recv_buffer(rcvbuf_bytes)?;
        t.join_group(family.events_group)?;
        Ok(Self::with_transport(t, family))
    }

    /// An event socket over an already configured transport (subscribed to the events group
    /// of `family`): for a socket opened elsewhere, or a test's fake kernel.
    pub fn with_transport(t: Transport, family: PmFamily) -> Self {
        PmEventSocket {
            t,
            slots: RecvSlots::new(PER_CALL),
            family,
            lost_pending: None,
            drained: false,
        }
    }

    /// The resolved family and group ids.
    pub fn family(&self) -> PmFamily {
        self.family
    }

    /// Switch between blocking (default) and non-blocking reads.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<(), Error> {
        self.t.set_nonblocking(nonblocking)
    }

    /// Receive what is ready into `out`: blocks for the first datagram (unless non-blocking),
    /// then drains without blocking, [`PER_CALL`] datagrams per system call; `push` decodes one
    /// message (`raw` its bytes).
    fn recv_batch_into<T>(
        &mut self,
        out: &mut Vec<T>,
        push: impl Fn(&[u8], Result<DecodedEvent, DecodeError>) -> T,
    ) -> Result<(), Error> {
        if let Some(e) = self.lost_pending.take() {
            return Err(e);
        }
        self.drained = false;
        let family = self.family.id;
        let mut read = 0;
        let mut first = true;
        while read < MAX_BATCH {
            match self.t.recv_datagrams(&mut self.slots, !first) {
                Ok(()) => {}
                Err(Error::WouldBlock) if !first => {
                    self.drained = true;
                    break;
                }
                Err(e) if !first && e.lost_messages() => {
                    self.lost_pending = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
            for d in self.slots.datagrams(WHAT_EVENTS) {
                match d {
                    Ok(d) => decode_datagram(d, family, out, &push),
                    // A datagram too large for its slot: events were lost. The others of the
                    // call still count; the loss is reported with them or by the next call.
                    Err(e) => {
                        self.lost_pending.get_or_insert(e);
                    }
                }
            }
            read += self.slots.filled();
            first = false;
            if self.lost_pending.is_some() {
                break;
            }
            if self.slots.filled() < self.slots.capacity() {
                // The call returned fewer than it could take: the queue was empty.
                self.drained = true;
                break;
            }
        }
        if out.is_empty() {
            if let Some(e) = self.lost_pending.take() {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Receive the events that are ready: blocks for the first datagram (unless non-blocking),
    /// then drains what is queued without blocking. Each event decodes independently.
    ///
    /// Errors: [`Error::Overrun`] (events lost: resync; if some events were read first they
    /// are returned and the overrun is reported by the next call), [`Error::Truncated`] (a
    /// datagram too large for the buffer was discarded: events lost, reported the same way),
    /// [`Error::WouldBlock`] (non-blocking and nothing queued), [`Error::Io`].
    pub fn recv_batch(&mut self) -> Result<Vec<Result<DecodedEvent, DecodeError>>, Error> {
        let mut out = Vec::new();
        self.recv_batch_into(&mut out, |_, decoded| decoded)?;
        Ok(out)
    }

    /// Whether the last successful [`PmEventSocket::recv_batch`] emptied the socket (a receive
    /// call returned fewer datagrams than it could take, or EAGAIN; not its batch limit or an
    /// overrun): a readiness-driven caller can wait for the next wake-up without another
    /// `recv` that would only find nothing.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Like [`PmEventSocket::recv_batch`], also returning each event's netlink message bytes
    /// (for captures, fixtures and debugging).
    pub fn recv_batch_raw(&mut self) -> Result<Vec<RawEvent>, Error> {
        let mut out = Vec::new();
        self.recv_batch_into(&mut out, |raw, decoded| RawEvent {
            bytes: raw.to_vec(),
            decoded,
        })?;
        Ok(out)
    }
}

/// Frame one received datagram: every message of family `family` is decoded, the others
/// (NOOP, ERROR) skipped; a framing error is one `Err` entry with the rest of the datagram.
fn decode_datagram<T>(
    dgram: &[u8],
    family: u16,
    out: &mut Vec<T>,
    push: impl Fn(&[u8], Result<DecodedEvent, DecodeError>) -> T,
) {
    let mut it = messages(dgram);
    while let Some(m) = it.next() {
        match m {
            Ok(m) if m.ty() == family => out.push(push(m.bytes(), decode_event(&m))),
            Ok(_) => {}
            Err(e) => out.push(push(it.rest(), Err(e))),
        }
    }
}

/// One received event with its wire bytes.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// The complete netlink message (header included) as received.
    pub bytes: Vec<u8>,
    /// Its decoding.
    pub decoded: Result<DecodedEvent, DecodeError>,
}

impl AsRawFd for PmEventSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.t.as_raw_fd()
    }
}

/// The command socket: sends userspace-PM commands and waits for each ACK, at most the reply
/// timeout ([`crate::transport::REPLY_TIMEOUT`] by default).
#[derive(Debug)]
pub struct PmClient {
    t: Transport,
    family: PmFamily,
}

impl PmClient {
    /// Resolve the family and open a command socket with extended ACKs.
    pub fn open() -> Result<Self, Error> {
        let family = resolve_family()?;
        Self::with_transport(
            Transport::open(libc::NETLINK_GENERIC, WHAT_COMMANDS)?,
            family,
        )
    }

    /// A client over an already opened transport, for `family`: for a socket opened elsewhere,
    /// or a test's fake kernel. Turns on extended ACKs.
    pub fn with_transport(t: Transport, family: PmFamily) -> Result<Self, Error> {
        t.enable_ext_ack()?;
        // Only the request header is echoed back in errors: smaller replies, same information.
        t.set_option(
            libc::SOL_NETLINK,
            libc::NETLINK_CAP_ACK,
            1,
            "setsockopt NETLINK_CAP_ACK",
        )?;
        Ok(PmClient { t, family })
    }

    /// The resolved family and group ids.
    pub fn family(&self) -> PmFamily {
        self.family
    }

    /// Change how long a command waits for the kernel's answer.
    pub fn set_reply_timeout(&mut self, after: Duration) {
        self.t.set_reply_timeout(after);
    }

    /// How many times a request found no reply queued after `send` and had to wait for it
    /// (see [`Transport::waited`]).
    pub fn waited(&self) -> u64 {
        self.t.waited()
    }

    /// Record (or stop recording) the raw bytes of requests and replies, for captures and
    /// debugging; see [`PmClient::take_trace`].
    pub fn set_trace(&mut self, on: bool) {
        self.t.set_trace(on);
    }

    /// The messages recorded since the last call (empty when tracing is off).
    pub fn take_trace(&mut self) -> Vec<Traced> {
        self.t.take_trace()
    }

    /// Send one userspace-PM command and wait for the kernel's ACK.
    ///
    /// Errors: [`Error::Kernel`] (refused, with the kernel's text), [`Error::Timeout`] (no
    /// answer within the reply timeout: the command may or may not have been carried out; a
    /// late ACK is never taken for a later command's), [`Error::Overrun`], [`Error::Io`].
    pub fn execute(&mut self, cmd: &PmCommand) -> Result<(), Error> {
        let seq = self.t.next_seq();
        let req = encode_command(self.family.id, seq, cmd)?;
        self.t.request(cmd.name(), seq, &req, |_| Ok(()))
    }

    /// GET_ADDR dump: with a token, the userspace PM's local addresses of that connection;
    /// without, the in-kernel PM's endpoints.
    pub fn get_addrs(&mut self, token: Option<Token>) -> Result<Vec<PmAddr>, Error> {
        let seq = self.t.next_seq();
        let req = encode_get_addrs(self.family.id, seq, token)?;
        let family = self.family.id;
        let mut out = Vec::new();
        self.t.request("get_addr", seq, &req, |m| {
            if m.ty() == family {
                out.push(decode_addr(m)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// GET_LIMITS of the socket's namespace.
    pub fn get_limits(&mut self) -> Result<Limits, Error> {
        let seq = self.t.next_seq();
        let req = encode_get_limits(self.family.id, seq)?;
        let family = self.family.id;
        let mut limits = None;
        self.t.request("get_limits", seq, &req, |m| {
            if m.ty() == family {
                limits = Some(decode_limits(m)?);
            }
            Ok(())
        })?;
        limits.ok_or(Error::Decode {
            what: "get_limits",
            source: DecodeError::Missing {
                msg: "MPTCP_PM_CMD_GET_LIMITS",
                what: "reply message",
            },
        })
    }

    /// SET_LIMITS of the socket's namespace.
    pub fn set_limits(&mut self, limits: &Limits) -> Result<(), Error> {
        let seq = self.t.next_seq();
        let req = encode_set_limits(self.family.id, seq, limits)?;
        self.t.request("set_limits", seq, &req, |_| Ok(()))
    }
}

impl AsRawFd for PmClient {
    fn as_raw_fd(&self) -> RawFd {
        self.t.as_raw_fd()
    }
}
