//! What happens when a kernel socket fails: one rule for all five of them (the `mptcp_pm`
//! events and command sockets, sock_diag, the rtnetlink monitor and its dump socket), documented
//! in docs/ARCHITECTURE.md ("When a kernel socket fails").
//!
//! - **Transient** (EINTR, EAGAIN, a timeout, a kernel refusal, a message that does not decode):
//!   nothing is wrong with the socket; the operation is dropped or retried.
//! - **Lost** (ENOBUFS, or a datagram larger than the buffer): the kernel dropped messages. The
//!   owner rebuilds its view: a resync from sock_diag for events, a re-dump of links and
//!   addresses for rtnetlink.
//! - **Fatal** (any other errno, or the event loop cannot poll the socket): the socket is
//!   unusable. Its owner reports a [`SocketFailure`] through [`Failures`]; `service::run` then
//!   stops and returns exit code 70, so systemd restarts the daemon and the new one re-adopts
//!   every connection from sock_diag. A daemon that keeps running without seeing events or
//!   address changes would be broken without saying so.
//!
//! The classification functions are pure; they are the only place that looks inside the
//! netlink crate's error type.

use std::fmt;

use netlink_actor::Error;
use tokio::sync::mpsc;

/// The daemon's kernel sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelSocket {
    /// The `mptcp_pm_events` multicast socket.
    Events,
    /// The `mptcp_pm` command socket.
    Commands,
    /// The NETLINK_SOCK_DIAG socket.
    SockDiag,
    /// The rtnetlink socket joined to the link and address groups.
    RtnlMonitor,
    /// The rtnetlink socket that dumps links and addresses.
    RtnlDump,
}

impl fmt::Display for KernelSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KernelSocket::Events => "mptcp_pm events",
            KernelSocket::Commands => "mptcp_pm command",
            KernelSocket::SockDiag => "sock_diag",
            KernelSocket::RtnlMonitor => "rtnetlink monitor",
            KernelSocket::RtnlDump => "rtnetlink dump",
        })
    }
}

/// What a failed socket operation means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing was lost and the socket works: drop or retry the operation.
    Transient,
    /// The kernel dropped messages: rebuild the view from a dump.
    Lost,
    /// The socket is unusable: stop the daemon (exit 70).
    Fatal,
}

/// The verdict for an errno returned by a system call on a socket.
pub fn errno_verdict(errno: Option<i32>) -> Verdict {
    match errno {
        Some(libc::EINTR) | Some(libc::EAGAIN) => Verdict::Transient,
        Some(libc::ENOBUFS) => Verdict::Lost,
        _ => Verdict::Fatal,
    }
}

/// The verdict for an error of a socket that carries a stream of messages (the `mptcp_pm`
/// events and command sockets, the rtnetlink monitor and its dump socket).
pub fn stream(e: &Error) -> Verdict {
    match e {
        e if e.lost_messages() => Verdict::Lost,
        Error::WouldBlock | Error::Timeout { .. } | Error::Kernel { .. } | Error::Decode { .. } => {
            Verdict::Transient
        }
        // A request neli could not build: nothing was sent and the socket is fine.
        Error::Encode(_) => Verdict::Transient,
        Error::Io { source, .. } => errno_verdict(source.raw_os_error()),
        // Only at start-up (resolving the family), or a programming error (a dump asked of
        // the monitor): a socket that worked cannot produce them, and no retry fixes them.
        Error::Unresolved { .. } | Error::DumpOnMonitor => Verdict::Fatal,
        // Covered by `lost_messages` above.
        Error::Overrun | Error::Truncated { .. } => Verdict::Lost,
    }
}

/// The verdict for a sock_diag socket error. A dump that came back incomplete is simply
/// taken again (the next poll, or the caller's retry): there is no stream of messages to lose.
pub fn diag(e: &Error) -> Verdict {
    match stream(e) {
        Verdict::Lost => Verdict::Transient,
        v => v,
    }
}

/// The errno inside an error, when a system call produced it (for the failure report).
pub fn errno_of(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        cur = err.source();
    }
    None
}

/// A kernel socket failed for good: the daemon stops (exit 70).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {socket} socket failed{}: {detail}; stopping so that a restarted daemon re-adopts every connection",
    .errno.map(|e| format!(" (errno {e})")).unwrap_or_default())]
pub struct SocketFailure {
    /// Which socket.
    pub socket: KernelSocket,
    /// The errno of the failing system call, if there was one.
    pub errno: Option<i32>,
    /// What failed.
    pub detail: String,
}

impl SocketFailure {
    /// A failure of `socket` described by `error` (its errno is looked up in its sources).
    pub fn new(socket: KernelSocket, error: &(dyn std::error::Error + 'static)) -> Self {
        SocketFailure {
            socket,
            errno: errno_of(error),
            detail: error.to_string(),
        }
    }
}

/// Where socket owners report fatal failures (cloneable, usable from any thread). The first
/// report stops `service::run`.
#[derive(Debug, Clone)]
pub struct Failures(mpsc::UnboundedSender<SocketFailure>);

/// The receiving end of [`Failures`], held by `service::run`.
#[derive(Debug)]
pub struct FailureWatch(mpsc::UnboundedReceiver<SocketFailure>);

/// A connected pair.
pub fn channel() -> (Failures, FailureWatch) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Failures(tx), FailureWatch(rx))
}

impl Failures {
    /// Report a fatal failure. After the daemon has begun to stop nobody listens: the report is
    /// dropped, as there is nothing left to stop.
    pub fn report(&self, failure: SocketFailure) {
        let _ = self.0.send(failure);
    }
}

impl FailureWatch {
    /// The first failure reported. Pending forever if every [`Failures`] is gone without a
    /// report (the actors stopped on their own, which only happens while stopping).
    pub async fn first(&mut self) -> SocketFailure {
        match self.0.recv().await {
            Some(f) => f,
            None => std::future::pending().await,
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
        assert_eq!(errno_verdict(Some(libc::EINTR)), Verdict::Transient);
        assert_eq!(errno_verdict(Some(libc::EAGAIN)), Verdict::Transient);
        assert_eq!(errno_verdict(Some(libc::ENOBUFS)), Verdict::Lost);
        for e in [
            libc::EBADF,
            libc::ENOTSOCK,
            libc::EINVAL,
            libc::ECONNREFUSED,
        ] {
            assert_eq!(errno_verdict(Some(e)), Verdict::Fatal, "errno {e}");
        }
        assert_eq!(errno_verdict(None), Verdict::Fatal);
    }

    #[test]
    fn stream_errors() {
        assert_eq!(stream(&Error::Overrun), Verdict::Lost);
        assert_eq!(stream(&Error::WouldBlock), Verdict::Transient);
        let big = Error::Truncated {
            what: "rtnetlink events",
            len: 70_000,
            cap: 65_536,
        };
        assert_eq!(
            stream(&big),
            Verdict::Lost,
            "a truncated datagram lost its messages"
        );
        let refused = Error::Kernel {
            errno: libc::EINVAL,
            message: None,
            what: "subflow_create",
        };
        assert_eq!(
            stream(&refused),
            Verdict::Transient,
            "a kernel refusal is never fatal"
        );
        let timeout = Error::Timeout {
            what: "announce",
            after: std::time::Duration::from_millis(100),
        };
        assert_eq!(stream(&timeout), Verdict::Transient);
        let dead = Error::Io {
            what: "mptcp_pm events",
            step: "recv",
            source: io_err(libc::ENOTSOCK),
        };
        assert_eq!(stream(&dead), Verdict::Fatal);
        let bad_fd = Error::Io {
            what: "rtnetlink events",
            step: "recv",
            source: io_err(libc::EBADF),
        };
        assert_eq!(stream(&bad_fd), Verdict::Fatal);
        let interrupted = Error::Io {
            what: "mptcp_pm commands",
            step: "send",
            source: io_err(libc::EINTR),
        };
        assert_eq!(stream(&interrupted), Verdict::Transient);
        assert_eq!(stream(&Error::DumpOnMonitor), Verdict::Fatal);
    }

    #[test]
    fn diag_errors() {
        let refused = Error::Kernel {
            what: "MPTCP IPv4 sock_diag dump",
            errno: libc::ENOENT,
            message: None,
        };
        assert_eq!(diag(&refused), Verdict::Transient);
        let overrun = Error::Io {
            what: "MPTCP IPv4 sock_diag dump",
            step: "recv",
            source: io_err(libc::ENOBUFS),
        };
        assert_eq!(
            diag(&overrun),
            Verdict::Transient,
            "an incomplete dump is taken again"
        );
        assert_eq!(diag(&Error::Overrun), Verdict::Transient);
        let dead = Error::Io {
            what: "MPTCP IPv4 sock_diag dump",
            step: "send",
            source: io_err(libc::ENOTSOCK),
        };
        assert_eq!(diag(&dead), Verdict::Fatal);
    }

    #[test]
    fn a_failure_names_the_socket_and_the_errno() {
        let e = Error::Io {
            what: "mptcp_pm events",
            step: "recv",
            source: io_err(libc::EBADF),
        };
        let f = SocketFailure::new(KernelSocket::Events, &e);
        assert_eq!(f.errno, Some(libc::EBADF));
        let text = f.to_string();
        assert!(
            text.starts_with(
                "the mptcp_pm events socket failed (errno 9): mptcp_pm events: netlink recv failed"
            ),
            "{text}"
        );
        let no_errno = SocketFailure::new(KernelSocket::RtnlDump, &Error::DumpOnMonitor);
        assert_eq!(no_errno.errno, None);
        assert!(no_errno
            .to_string()
            .starts_with("the rtnetlink dump socket failed: dumps must"));
    }

    #[test]
    fn the_first_report_is_seen() {
        let (tx, mut rx) = channel();
        let other = tx.clone();
        other.report(SocketFailure {
            socket: KernelSocket::SockDiag,
            errno: Some(libc::ENOTSOCK),
            detail: "x".into(),
        });
        tx.report(SocketFailure {
            socket: KernelSocket::Events,
            errno: None,
            detail: "y".into(),
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| e.to_string());
        let first = rt.map(|rt| rt.block_on(rx.first()).socket);
        assert_eq!(first, Ok(KernelSocket::SockDiag));
    }
}
