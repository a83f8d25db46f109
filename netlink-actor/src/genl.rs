//! Blocking sockets for the `mptcp_pm` generic netlink family: the multicast event socket
//! ([`PmEventSocket`]) and the command socket ([`PmClient`]).
//!
//! Family and group ids are resolved at run time through neli's `NlRouter` (never hard-coded),
//! then plain `neli::socket::NlSocket`s carry raw bytes encoded/decoded by
//! [`crate::mptcp_pm`]. A socket belongs to the network namespace of the thread that opened it.
//! No neli type appears in this module's public API.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use neli::consts::socket::{Msg, NlFamily};
use neli::router::synchronous::NlRouter;
use neli::socket::NlSocket;
use neli::utils::Groups;
use thiserror::Error;

use mptcp_pmd_policies::{PmCommand, Token};

use crate::error::DecodeError;
use crate::mptcp_pm::{
    decode_addr, decode_event, decode_limits, encode_command, encode_get_addrs, encode_get_limits,
    encode_set_limits, DecodedEvent, Limits, PmAddr, MPTCP_PM_EV_GRP_NAME, MPTCP_PM_NAME,
};
use crate::nlmsg::{
    attrs, messages, parse_error, NlMsg, NLMSGERR_ATTR_MSG, NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK_TLVS,
};

/// Receive buffer for one datagram. The kernel never sends a genl datagram larger than this to
/// us (events are ~100 bytes, dump parts are at most a page or two).
const RECV_BUF: usize = 64 * 1024;
/// How long [`PmClient`] waits for a reply before giving up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// At most this many datagrams are drained by one [`PmEventSocket::recv_batch`].
const MAX_BATCH: usize = 256;

/// Failure of a socket operation or a kernel refusal.
#[derive(Debug, Error)]
pub enum GenlError {
    /// The `mptcp_pm` family or its events group could not be resolved (no MPTCP in this
    /// kernel, or the controller did not answer).
    #[error("resolving generic netlink {what}: {message}")]
    Resolve {
        /// What was being resolved (`family mptcp_pm`, `group mptcp_pm_events`).
        what: &'static str,
        /// neli's description of the failure.
        message: String,
    },
    /// A system call failed; `step` says which (socket, bind, setsockopt ..., send, recv).
    #[error("netlink {step} failed: {source}")]
    Io {
        /// The failing step.
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The event socket's receive queue overflowed (ENOBUFS): events were lost, the caller must
    /// rebuild its view from the kernel (sock_diag) before trusting events again.
    #[error("mptcp_pm event socket overrun (ENOBUFS): events were lost, resync required")]
    Overrun,
    /// A non-blocking receive found nothing to read.
    #[error("no mptcp_pm event ready (would block)")]
    WouldBlock,
    /// No reply to a command within [`REPLY_TIMEOUT`].
    #[error("no reply from the kernel to {command} within {after:?}")]
    Timeout {
        /// The command.
        command: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// The kernel refused a command (NLMSG_ERROR with a non-zero errno).
    #[error("kernel refused {command}: {}", kernel_text(*.errno, .message.as_deref()))]
    Kernel {
        /// Positive errno.
        errno: i32,
        /// The kernel's extended-ACK text, when it gave one.
        message: Option<String>,
        /// The command that was refused.
        command: &'static str,
    },
    /// A reply could not be decoded.
    #[error("decoding the kernel's reply to {command}: {source}")]
    Decode {
        /// The command whose reply was being decoded.
        command: &'static str,
        /// What was wrong.
        #[source]
        source: DecodeError,
    },
}

impl GenlError {
    fn io(step: &'static str) -> impl FnOnce(io::Error) -> GenlError {
        move |source| GenlError::Io { step, source }
    }
}

/// "EINVAL (errno 22): invalid token", or with the libc description when the kernel gave no
/// text: "ENOENT (errno 2, No such file or directory)".
fn kernel_text(errno: i32, message: Option<&str>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!("{} (errno {errno}): {m}", errno_name(errno)),
        _ => {
            let desc = io::Error::from_raw_os_error(errno).to_string();
            let desc = desc.split(" (os error").next().unwrap_or_default();
            format!("{} (errno {errno}, {desc})", errno_name(errno))
        }
    }
}

/// The symbolic name of the errnos the PM commonly returns (for error messages).
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTO => "EPROTO",
        libc::ENOTSUP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        _ => "E?",
    }
}

/// Resolved ids of the `mptcp_pm` family in the current network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmFamily {
    /// Generic netlink family id (the `nlmsg_type` of every message).
    pub id: u16,
    /// Multicast group id of `mptcp_pm_events`.
    pub events_group: u32,
}

/// Ask the genl controller for the `mptcp_pm` family and events group ids.
pub fn resolve_family() -> Result<PmFamily, GenlError> {
    let (router, _multicast) = NlRouter::connect(NlFamily::Generic, None, Groups::empty())
        .map_err(|e| GenlError::Resolve {
            what: "controller socket",
            message: e.to_string(),
        })?;
    let id = router
        .resolve_genl_family(MPTCP_PM_NAME)
        .map_err(|e| GenlError::Resolve {
            what: "family mptcp_pm",
            message: e.to_string(),
        })?;
    let events_group = router
        .resolve_nl_mcast_group(MPTCP_PM_NAME, MPTCP_PM_EV_GRP_NAME)
        .map_err(|e| GenlError::Resolve {
            what: "group mptcp_pm_events",
            message: e.to_string(),
        })?;
    Ok(PmFamily { id, events_group })
}

/// The extended-ACK text of a failed dump's NLMSG_DONE (errno, then TLVs; verified on 6.18
/// for GET_ADDR with an unknown token).
fn done_message(m: &NlMsg<'_>) -> Option<String> {
    if m.header.flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    attrs(m.payload.get(4..)?)
        .flatten()
        .find(|a| a.ty == NLMSGERR_ATTR_MSG)
        .map(|a| a.string())
}

fn setsockopt_int(fd: RawFd, level: i32, opt: i32, value: i32) -> io::Result<()> {
    // SAFETY: fd is an open socket owned by the caller; the option value is a live c_int whose
    // size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_rcvtimeo(fd: RawFd, after: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(after.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(after.subsec_micros() as i32),
    };
    // SAFETY: as above, with a live timeval.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&tv).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn open_socket() -> Result<NlSocket, GenlError> {
    NlSocket::connect(NlFamily::Generic, None, Groups::empty())
        .map_err(GenlError::io("socket/bind"))
}

/// The `mptcp_pm_events` multicast subscriber.
pub struct PmEventSocket {
    sock: NlSocket,
    family: PmFamily,
    buf: Vec<u8>,
    /// An ENOBUFS seen after some events were already read: reported on the next call.
    overrun_pending: bool,
    /// The last batch ended because the socket had nothing more queued.
    drained: bool,
}

impl PmEventSocket {
    /// Resolve the family, open a socket, enlarge its receive buffer to `rcvbuf_bytes`
    /// (SO_RCVBUFFORCE when privileged, else SO_RCVBUF capped by `rmem_max`) and join
    /// `mptcp_pm_events` (needs CAP_NET_ADMIN in the namespace).
    pub fn open(rcvbuf_bytes: usize) -> Result<Self, GenlError> {
        let family = resolve_family()?;
        let sock = open_socket()?;
        let fd = sock.as_raw_fd();
        let size = i32::try_from(rcvbuf_bytes).unwrap_or(i32::MAX);
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size).is_err() {
            setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, size)
                .map_err(GenlError::io("setsockopt SO_RCVBUF"))?;
        }
        sock.add_mcast_membership(Groups::new_groups(&[family.events_group]))
            .map_err(GenlError::io("join group mptcp_pm_events"))?;
        Ok(PmEventSocket {
            sock,
            family,
            buf: vec![0; RECV_BUF],
            overrun_pending: false,
            drained: false,
        })
    }

    /// The resolved family and group ids.
    pub fn family(&self) -> PmFamily {
        self.family
    }

    /// Switch between blocking (default) and non-blocking reads.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<(), GenlError> {
        if nonblocking {
            self.sock.nonblock()
        } else {
            self.sock.block()
        }
        .map_err(GenlError::io("fcntl O_NONBLOCK"))
    }

    /// Receive one datagram into the internal buffer; returns its length.
    fn recv_one(&mut self, flags: Msg) -> Result<usize, GenlError> {
        loop {
            match self.sock.recv(&mut self.buf[..], flags) {
                Ok((n, _groups)) => return Ok(n),
                Err(e) => match e.raw_os_error() {
                    Some(libc::ENOBUFS) => return Err(GenlError::Overrun),
                    Some(libc::EINTR) => continue,
                    _ if e.kind() == io::ErrorKind::WouldBlock => {
                        return Err(GenlError::WouldBlock)
                    }
                    _ => {
                        return Err(GenlError::Io {
                            step: "recv",
                            source: e,
                        })
                    }
                },
            }
        }
    }

    /// Frame one received datagram: every message of our family is decoded, the others
    /// (NOOP, ERROR) skipped. `keep_raw` also keeps each event's wire bytes.
    fn decode_into(&self, n: usize, keep_raw: bool, out: &mut Vec<RawEvent>) {
        let dgram = self.buf.get(..n).unwrap_or(&[]);
        let mut offset = 0;
        for m in messages(dgram) {
            match m {
                Ok(m) => {
                    let len = m.header.len as usize;
                    let start = offset;
                    offset += crate::nlmsg::align(len);
                    if m.header.ty != self.family.id {
                        continue;
                    }
                    let bytes = if keep_raw {
                        dgram.get(start..start + len).unwrap_or(&[]).to_vec()
                    } else {
                        Vec::new()
                    };
                    out.push(RawEvent {
                        bytes,
                        decoded: decode_event(&m),
                    });
                }
                Err(e) => out.push(RawEvent {
                    bytes: if keep_raw {
                        dgram.get(offset..).unwrap_or(&[]).to_vec()
                    } else {
                        Vec::new()
                    },
                    decoded: Err(e),
                }),
            }
        }
    }

    fn recv_batch_inner(&mut self, keep_raw: bool) -> Result<Vec<RawEvent>, GenlError> {
        if std::mem::take(&mut self.overrun_pending) {
            return Err(GenlError::Overrun);
        }
        let mut out = Vec::new();
        self.drained = false;
        let n = self.recv_one(Msg::empty())?;
        self.decode_into(n, keep_raw, &mut out);
        for _ in 1..MAX_BATCH {
            match self.recv_one(Msg::DONTWAIT) {
                Ok(n) => self.decode_into(n, keep_raw, &mut out),
                Err(GenlError::WouldBlock) => {
                    self.drained = true;
                    break;
                }
                Err(GenlError::Overrun) => {
                    self.overrun_pending = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Receive the events that are ready: blocks for the first datagram (unless non-blocking),
    /// then drains what is queued without blocking. Each event decodes independently.
    ///
    /// Errors: [`GenlError::Overrun`] (events lost: resync; if some events were read first they
    /// are returned and the overrun is reported by the next call), [`GenlError::WouldBlock`]
    /// (non-blocking and nothing queued), [`GenlError::Io`].
    pub fn recv_batch(&mut self) -> Result<Vec<Result<DecodedEvent, DecodeError>>, GenlError> {
        Ok(self
            .recv_batch_inner(false)?
            .into_iter()
            .map(|r| r.decoded)
            .collect())
    }

    /// Whether the last successful [`PmEventSocket::recv_batch`] emptied the socket (it stopped
    /// at EAGAIN, not at its batch limit or an overrun): a readiness-driven caller can wait for
    /// the next wake-up without another `recv` that would only find nothing.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Like [`PmEventSocket::recv_batch`], also returning each event's netlink message bytes
    /// (for captures, fixtures and debugging).
    pub fn recv_batch_raw(&mut self) -> Result<Vec<RawEvent>, GenlError> {
        self.recv_batch_inner(true)
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
        self.sock.as_raw_fd()
    }
}

/// The command socket: sends userspace-PM commands and waits for each ACK.
pub struct PmClient {
    sock: NlSocket,
    family: PmFamily,
    seq: u32,
    buf: Vec<u8>,
    trace: Option<Vec<Traced>>,
}

/// One message recorded by [`PmClient::set_trace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Traced {
    /// A request as sent.
    Sent(Vec<u8>),
    /// A reply message (header included) with the request's sequence number.
    Received(Vec<u8>),
}

impl PmClient {
    /// Resolve the family and open a command socket with extended ACKs and a receive timeout
    /// of [`REPLY_TIMEOUT`].
    pub fn open() -> Result<Self, GenlError> {
        let family = resolve_family()?;
        let sock = open_socket()?;
        sock.enable_ext_ack(true)
            .map_err(GenlError::io("setsockopt NETLINK_EXT_ACK"))?;
        // Only the request header is echoed back in errors: smaller replies, same information.
        setsockopt_int(
            sock.as_raw_fd(),
            libc::SOL_NETLINK,
            libc::NETLINK_CAP_ACK,
            1,
        )
        .map_err(GenlError::io("setsockopt NETLINK_CAP_ACK"))?;
        set_rcvtimeo(sock.as_raw_fd(), REPLY_TIMEOUT)
            .map_err(GenlError::io("setsockopt SO_RCVTIMEO"))?;
        Ok(PmClient {
            sock,
            family,
            seq: 0,
            buf: vec![0; RECV_BUF],
            trace: None,
        })
    }

    /// The resolved family and group ids.
    pub fn family(&self) -> PmFamily {
        self.family
    }

    /// Record (or stop recording) the raw bytes of requests and replies, for captures and
    /// debugging; see [`PmClient::take_trace`].
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    /// The messages recorded since the last call (empty when tracing is off).
    pub fn take_trace(&mut self) -> Vec<Traced> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Send `req` (sequence `seq`) and feed every reply message with that sequence number to
    /// `on_msg` until the ACK (or NLMSG_DONE for dumps).
    fn transact(
        &mut self,
        command: &'static str,
        seq: u32,
        req: &[u8],
        mut on_msg: impl FnMut(&NlMsg<'_>) -> Result<(), DecodeError>,
    ) -> Result<(), GenlError> {
        self.sock
            .send(req, Msg::empty())
            .map_err(GenlError::io("send"))?;
        if let Some(t) = self.trace.as_mut() {
            t.push(Traced::Sent(req.to_vec()));
        }
        loop {
            let n = match self.sock.recv(&mut self.buf[..], Msg::empty()) {
                Ok((n, _)) => n,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(GenlError::Timeout {
                        command,
                        after: REPLY_TIMEOUT,
                    })
                }
                Err(e) => {
                    return Err(GenlError::Io {
                        step: "recv",
                        source: e,
                    })
                }
            };
            let decode = |source| GenlError::Decode { command, source };
            let dgram = self.buf.get(..n).unwrap_or(&[]);
            let mut offset = 0;
            for m in messages(dgram) {
                let m = m.map_err(decode)?;
                let start = offset;
                offset += crate::nlmsg::align(m.header.len as usize);
                if m.header.seq != seq {
                    // A late reply to an earlier request that timed out.
                    continue;
                }
                if let Some(t) = self.trace.as_mut() {
                    let end = start + m.header.len as usize;
                    t.push(Traced::Received(
                        dgram.get(start..end).unwrap_or(&[]).to_vec(),
                    ));
                }
                match m.header.ty {
                    NLMSG_ERROR => {
                        let err = parse_error(&m.header, m.payload).map_err(decode)?;
                        if err.errno == 0 {
                            return Ok(());
                        }
                        return Err(GenlError::Kernel {
                            errno: err.errno,
                            message: err.message,
                            command,
                        });
                    }
                    NLMSG_DONE => {
                        // A dump that fails after its first part ends with a negative errno in
                        // the DONE payload.
                        let code = m
                            .payload
                            .get(..4)
                            .and_then(|b| <[u8; 4]>::try_from(b).ok())
                            .map(i32::from_ne_bytes)
                            .unwrap_or(0);
                        if code < 0 {
                            return Err(GenlError::Kernel {
                                errno: code.saturating_neg(),
                                message: done_message(&m),
                                command,
                            });
                        }
                        return Ok(());
                    }
                    ty if ty == self.family.id => on_msg(&m).map_err(decode)?,
                    _ => {}
                }
            }
        }
    }

    /// Send one userspace-PM command and wait for the kernel's ACK.
    pub fn execute(&mut self, cmd: &PmCommand) -> Result<(), GenlError> {
        let seq = self.next_seq();
        let req = encode_command(self.family.id, seq, cmd);
        self.transact(cmd.name(), seq, &req, |_| Ok(()))
    }

    /// GET_ADDR dump: with a token, the userspace PM's local addresses of that connection;
    /// without, the in-kernel PM's endpoints.
    pub fn get_addrs(&mut self, token: Option<Token>) -> Result<Vec<PmAddr>, GenlError> {
        let seq = self.next_seq();
        let req = encode_get_addrs(self.family.id, seq, token);
        let mut out = Vec::new();
        self.transact("get_addr", seq, &req, |m| {
            out.push(decode_addr(m)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// GET_LIMITS of the socket's namespace.
    pub fn get_limits(&mut self) -> Result<Limits, GenlError> {
        let seq = self.next_seq();
        let req = encode_get_limits(self.family.id, seq);
        let mut limits = None;
        self.transact("get_limits", seq, &req, |m| {
            limits = Some(decode_limits(m)?);
            Ok(())
        })?;
        limits.ok_or(GenlError::Decode {
            command: "get_limits",
            source: DecodeError::Missing {
                msg: "MPTCP_PM_CMD_GET_LIMITS",
                what: "reply message",
            },
        })
    }

    /// SET_LIMITS of the socket's namespace.
    pub fn set_limits(&mut self, limits: &Limits) -> Result<(), GenlError> {
        let seq = self.next_seq();
        let req = encode_set_limits(self.family.id, seq, limits);
        self.transact("set_limits", seq, &req, |_| Ok(()))
    }
}

impl AsRawFd for PmClient {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_error_display_names_errno_and_text() {
        let e = GenlError::Kernel {
            errno: libc::EINVAL,
            message: Some("invalid token".into()),
            command: "subflow_create",
        };
        let s = e.to_string();
        assert!(s.contains("subflow_create"), "{s}");
        assert!(s.contains("EINVAL"), "{s}");
        assert!(s.contains("22"), "{s}");
        assert!(s.contains("invalid token"), "{s}");
        let e = GenlError::Kernel {
            errno: libc::ENOENT,
            message: None,
            command: "remove",
        };
        assert_eq!(
            e.to_string(),
            "kernel refused remove: ENOENT (errno 2, No such file or directory)"
        );
    }
}
