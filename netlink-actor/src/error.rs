//! The crate's errors: [`enum@Error`] for everything a socket operation can report (system calls,
//! truncated datagrams, timeouts, overruns, kernel refusals), [`DecodeError`] for bytes that
//! cannot be decoded and [`EncodeError`] for a request that could not be built. A codec is a
//! pure function and returns a [`DecodeError`] or [`EncodeError`], plain values (cloneable,
//! comparable, kept per skipped dump entry); the sockets wrap them in [`Error::Decode`] /
//! [`Error::Encode`] with the request they belong to. No neli error type appears here: the
//! codecs translate neli's into these. Nothing here panics on what the kernel sent.

use std::io;
use std::time::Duration;

use thiserror::Error;

/// A message or attribute from the kernel could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fewer bytes than a fixed structure needs.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A length field disagrees with the bytes available.
    #[error("bad {what} length {len} ({available} bytes available)")]
    BadLength {
        /// What was being decoded.
        what: &'static str,
        /// The length the field claimed.
        len: usize,
        /// Bytes available.
        available: usize,
    },
    /// An attribute has the wrong payload size for its type.
    #[error("attribute {what} (type {ty}) has {got} bytes, expected {expected}")]
    AttrSize {
        /// Attribute name.
        what: &'static str,
        /// Attribute type number.
        ty: u16,
        /// Expected payload size.
        expected: usize,
        /// Actual payload size.
        got: usize,
    },
    /// A required attribute is absent.
    #[error("{msg} lacks required attribute {what}")]
    Missing {
        /// The message kind.
        msg: &'static str,
        /// The missing attribute.
        what: &'static str,
    },
    /// A field holds a value that makes no sense (e.g. an unknown address family).
    #[error("invalid {what}: {value}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// An inner decoding error, with the message it happened in (e.g. the event name).
    #[error("{context}: {source}")]
    Context {
        /// The message being decoded (e.g. `MPTCP_EVENT_SUB_ESTABLISHED`).
        context: &'static str,
        /// What went wrong inside it.
        source: Box<DecodeError>,
    },
}

/// A request could not be built: neli's builders and serialisation are fallible in their
/// types (a missing builder field, a write that failed), though not with the requests this
/// crate builds. Reported instead of sending a half-built request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("building {what} failed: {reason}")]
pub struct EncodeError {
    /// The message being built (`MPTCP_PM_CMD_SUBFLOW_CREATE`, `RTM_GETLINK dump`, ...).
    pub what: &'static str,
    /// neli's explanation.
    pub reason: String,
}

/// Failure of a netlink socket operation, for every family (`mptcp_pm`, sock_diag,
/// rtnetlink). `what` names the socket or the request (`subflow_create`, `RTM_GETLINK dump`,
/// `MPTCP IPv4 sock_diag dump`, ...).
#[derive(Debug, Error)]
pub enum Error {
    /// A system call failed; `step` says which (socket, bind, setsockopt ..., send, recv).
    #[error("{what}: netlink {step} failed: {source}")]
    Io {
        /// The socket or request.
        what: &'static str,
        /// The failing step.
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A generic netlink family or one of its multicast groups does not exist in this kernel
    /// (e.g. `mptcp_pm` without MPTCP).
    #[error("generic netlink {what} not found ({reason})")]
    Unresolved {
        /// The family or group (`family mptcp_pm`, `group mptcp_pm_events`).
        what: &'static str,
        /// Why: the controller's answer.
        reason: String,
    },
    /// The receive queue overflowed (ENOBUFS): messages the kernel had for this socket were
    /// dropped. On a multicast socket events were lost and the owner must re-read the kernel's
    /// state; during a request its reply may be lost (a late one is never taken for another's).
    #[error("netlink receive queue overrun (ENOBUFS): messages were lost, the kernel's state must be read again")]
    Overrun,
    /// A non-blocking receive found nothing to read.
    #[error("no netlink message ready (would block)")]
    WouldBlock,
    /// A datagram was larger than the receive buffer: it was discarded whole (MSG_TRUNC) rather
    /// than decoded from its first `cap` bytes.
    #[error(
        "{what}: datagram of {len} bytes exceeds the {cap}-byte receive buffer and was discarded"
    )]
    Truncated {
        /// The socket or request.
        what: &'static str,
        /// The datagram's real length.
        len: usize,
        /// The receive buffer's size.
        cap: usize,
    },
    /// The kernel sent nothing for this request during the socket's reply timeout (see
    /// [`crate::transport::REPLY_TIMEOUT`]). A reply that comes later is skipped by the next
    /// request (its sequence number differs).
    #[error("no reply from the kernel to {what} within {after:?}")]
    Timeout {
        /// The request.
        what: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// The kernel refused a request (NLMSG_ERROR, or a failed dump's NLMSG_DONE).
    #[error("kernel refused {what}: {}", kernel_text(*.errno, .message.as_deref()))]
    Kernel {
        /// The request that was refused.
        what: &'static str,
        /// Positive errno.
        errno: i32,
        /// The kernel's extended-ACK text, when it gave one.
        message: Option<String>,
    },
    /// A reply could not be decoded (or a datagram could not be framed).
    #[error("decoding {what}: {source}")]
    Decode {
        /// The request or socket whose message was being decoded.
        what: &'static str,
        /// What was wrong.
        #[source]
        source: DecodeError,
    },
    /// A request could not be built (see [`EncodeError`], which names it); nothing was sent.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// A dump was asked of a monitoring socket, where its replies would be interleaved with
    /// (and could be confused with) events: dump on a second socket.
    #[error("dumps must use a separate socket from the monitor (RtnlSocket::open)")]
    DumpOnMonitor,
}

impl Error {
    /// A non-blocking receive found nothing.
    pub fn is_would_block(&self) -> bool {
        matches!(self, Error::WouldBlock)
    }

    /// Messages were lost before they could be read (an overrun, or a datagram too large for
    /// the buffer): a consumer of events must re-read the kernel's state.
    pub fn lost_messages(&self) -> bool {
        matches!(self, Error::Overrun | Error::Truncated { .. })
    }

    pub(crate) fn io(what: &'static str, step: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { what, step, source }
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

/// The symbolic name of the errnos the kernel commonly returns (for error messages).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_error_display_names_errno_and_text() {
        let e = Error::Kernel {
            errno: libc::EINVAL,
            message: Some("invalid token".into()),
            what: "subflow_create",
        };
        let s = e.to_string();
        assert!(s.contains("subflow_create"), "{s}");
        assert!(s.contains("EINVAL"), "{s}");
        assert!(s.contains("22"), "{s}");
        assert!(s.contains("invalid token"), "{s}");
        let e = Error::Kernel {
            errno: libc::ENOENT,
            message: None,
            what: "remove",
        };
        assert_eq!(
            e.to_string(),
            "kernel refused remove: ENOENT (errno 2, No such file or directory)"
        );
    }
}
