//! What a failed socket operation means for the socket's owner: [`Error::severity`] classifies
//! every [`Error`] as [`Severity::Transient`], [`Severity::Overrun`] or [`Severity::Fatal`], one
//! rule for all five kernel sockets (docs/ARCHITECTURE.md, "When a kernel socket fails"). Pure.
//!
//! - **Transient** (EINTR, EAGAIN, a timeout, a kernel refusal, a message that does not decode):
//!   nothing is wrong with the socket; the operation is dropped or retried.
//! - **Overrun** (ENOBUFS, or a datagram larger than the buffer): the kernel dropped messages.
//!   A consumer of a stream of messages rebuilds its view from a dump; a dump or a request
//!   simply fails and is taken again.
//! - **Fatal** (any other errno, a family that cannot be resolved, a dump asked of a monitor):
//!   the socket is unusable and no retry fixes it.

use crate::error::Error;

/// What a failed socket operation means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Nothing was lost and the socket works: drop or retry the operation.
    Transient,
    /// The kernel dropped messages: rebuild the view from a dump.
    Overrun,
    /// The socket is unusable.
    Fatal,
}

/// The severity of an errno returned by a system call on a socket (`None`: no errno).
pub fn errno_severity(errno: Option<i32>) -> Severity {
    match errno {
        Some(libc::EINTR) | Some(libc::EAGAIN) => Severity::Transient,
        Some(libc::ENOBUFS) => Severity::Overrun,
        _ => Severity::Fatal,
    }
}

impl Error {
    /// Whether this error is transient, an overrun or fatal for the socket that reported it
    /// (see the module docs).
    pub fn severity(&self) -> Severity {
        match self {
            e if e.lost_messages() => Severity::Overrun,
            Error::WouldBlock
            | Error::Timeout { .. }
            | Error::Kernel { .. }
            | Error::Decode { .. } => Severity::Transient,
            // A request neli could not build: nothing was sent and the socket is fine.
            Error::Encode(_) => Severity::Transient,
            Error::Io { source, .. } => errno_severity(source.raw_os_error()),
            // Only at start-up (resolving the family), or a programming error (a dump asked of
            // the monitor): a socket that worked cannot produce them, and no retry fixes them.
            Error::Unresolved { .. } | Error::DumpOnMonitor => Severity::Fatal,
            // Covered by `lost_messages` above.
            Error::Overrun | Error::Truncated { .. } => Severity::Overrun,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn io_err(errno: i32) -> io::Error {
        io::Error::from_raw_os_error(errno)
    }

    #[test]
    fn errnos_follow_one_rule() {
        assert_eq!(errno_severity(Some(libc::EINTR)), Severity::Transient);
        assert_eq!(errno_severity(Some(libc::EAGAIN)), Severity::Transient);
        assert_eq!(errno_severity(Some(libc::ENOBUFS)), Severity::Overrun);
        for e in [
            libc::EBADF,
            libc::ENOTSOCK,
            libc::EINVAL,
            libc::ECONNREFUSED,
        ] {
            assert_eq!(errno_severity(Some(e)), Severity::Fatal, "errno {e}");
        }
        assert_eq!(errno_severity(None), Severity::Fatal);
    }

    #[test]
    fn every_error_says_what_it_means() {
        assert_eq!(Error::Overrun.severity(), Severity::Overrun);
        assert_eq!(Error::WouldBlock.severity(), Severity::Transient);
        let big = Error::Truncated {
            what: "rtnetlink events",
            len: 70_000,
            cap: 65_536,
        };
        assert_eq!(
            big.severity(),
            Severity::Overrun,
            "a truncated datagram lost its messages"
        );
        let refused = Error::Kernel {
            errno: libc::EINVAL,
            message: None,
            what: "subflow_create",
        };
        assert_eq!(
            refused.severity(),
            Severity::Transient,
            "a kernel refusal is never fatal"
        );
        let timeout = Error::Timeout {
            what: "announce",
            after: std::time::Duration::from_millis(100),
        };
        assert_eq!(timeout.severity(), Severity::Transient);
        let dead = Error::Io {
            what: "mptcp_pm events",
            step: "recv",
            source: io_err(libc::ENOTSOCK),
        };
        assert_eq!(dead.severity(), Severity::Fatal);
        let bad_fd = Error::Io {
            what: "rtnetlink events",
            step: "recv",
            source: io_err(libc::EBADF),
        };
        assert_eq!(bad_fd.severity(), Severity::Fatal);
        let interrupted = Error::Io {
            what: "mptcp_pm commands",
            step: "send",
            source: io_err(libc::EINTR),
        };
        assert_eq!(interrupted.severity(), Severity::Transient);
        let no_buffer = Error::Io {
            what: "MPTCP IPv4 sock_diag dump",
            step: "recv",
            source: io_err(libc::ENOBUFS),
        };
        assert_eq!(no_buffer.severity(), Severity::Overrun);
        assert_eq!(Error::DumpOnMonitor.severity(), Severity::Fatal);
        let unresolved = Error::Unresolved {
            what: "family mptcp_pm",
            reason: "ENOENT".into(),
        };
        assert_eq!(unresolved.severity(), Severity::Fatal);
    }
}
