//! How the kernel actors report a socket that failed for good: which socket
//! ([`KernelSocket`]), the errno and what failed ([`SocketFailure`]), sent through
//! [`Failures`], a callback the daemon gives every actor. What follows (the daemon stops with
//! exit code 70 so that a restarted one re-adopts every connection) is the daemon's rule, not
//! this crate's. Which errors are fatal is [`crate::Error::severity`]'s answer.

use std::fmt;
use std::sync::Arc;

/// The kernel sockets the actors own.
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

/// A kernel socket failed for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {socket} socket failed{}: {detail}",
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

/// Where the actors report fatal socket failures: a callback, cloneable and callable from any
/// thread (the sock_diag poller has its own). The daemon's callback hands the failure to its `run`.
#[derive(Clone)]
pub struct Failures(Arc<dyn Fn(SocketFailure) + Send + Sync>);

impl fmt::Debug for Failures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Failures").finish_non_exhaustive()
    }
}

impl Failures {
    /// Failures go to `report`.
    pub fn new(report: impl Fn(SocketFailure) + Send + Sync + 'static) -> Self {
        Failures(Arc::new(report))
    }

    /// Report a fatal failure.
    pub fn report(&self, failure: SocketFailure) {
        (self.0)(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use std::io;

    fn io_err(errno: i32) -> io::Error {
        io::Error::from_raw_os_error(errno)
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
    fn reports_reach_the_callback() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let failures = Failures::new(move |f: SocketFailure| {
            if let Ok(mut v) = sink.lock() {
                v.push(f.socket);
            }
        });
        let other = failures.clone();
        let f = |socket| SocketFailure {
            socket,
            errno: None,
            detail: "x".into(),
        };
        other.report(f(KernelSocket::SockDiag));
        failures.report(f(KernelSocket::Events));
        let got = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(got, [KernelSocket::SockDiag, KernelSocket::Events]);
    }
}
