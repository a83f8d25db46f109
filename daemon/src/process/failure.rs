//! The process-level rule for a kernel socket that failed for good (docs/ARCHITECTURE.md,
//! "When a kernel socket fails"): the kernel actors (`netlink-actor`) report a
//! [`SocketFailure`] through the [`Failures`] callback made here, and `service::run` stops at
//! the first one with exit code 70 and [`stop_message`], so that systemd restarts the daemon
//! and the new one re-adopts every connection from sock_diag. A daemon that keeps running
//! without seeing events or address changes would be broken without saying so.
//!
//! Which errors are fatal is not decided here: `netlink_actor::Error::severity` says it.

use netlink_actor::actors::{Failures, SocketFailure};
use tokio::sync::mpsc;

/// The receiving end of the [`Failures`] given to the kernel actors, held by `service::run`.
#[derive(Debug)]
pub struct FailureWatch(mpsc::UnboundedReceiver<SocketFailure>);

/// A connected pair. A report made after the daemon has begun to stop is dropped: nobody
/// listens any more, and there is nothing left to stop.
pub fn channel() -> (Failures, FailureWatch) {
    let (tx, rx) = mpsc::unbounded_channel();
    let failures = Failures::new(move |f| {
        let _ = tx.send(f);
    });
    (failures, FailureWatch(rx))
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

/// What `run` stops with (exit code 70, logged at CRIT by `main`).
pub fn stop_message(f: &SocketFailure) -> String {
    format!("{f}; stopping so that a restarted daemon re-adopts every connection")
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_actor::actors::KernelSocket;

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

    #[test]
    fn the_stop_message_names_the_socket_the_errno_and_why() {
        let f = SocketFailure {
            socket: KernelSocket::Events,
            errno: Some(libc::EBADF),
            detail: "mptcp_pm events: netlink recv failed".into(),
        };
        assert_eq!(
            stop_message(&f),
            "the mptcp_pm events socket failed (errno 9): mptcp_pm events: netlink recv failed; \
             stopping so that a restarted daemon re-adopts every connection"
        );
    }
}
