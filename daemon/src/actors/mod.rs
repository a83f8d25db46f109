//! The daemon's actors and the messages between them (see docs/ARCHITECTURE.md):
//!
//! - [`events::EventActor`] owns the `mptcp_pm_events` socket and forwards decoded events;
//! - [`commands::CommandPath`] owns the command socket; connection actors execute PM commands
//!   through it directly (synchronous, on the event loop's thread);
//! - [`addresses::AddressMonitor`] owns the rtnetlink socket and keeps the usable local addresses;
//! - [`diag::DiagPoller`] owns the sock_diag socket and polls subflow health while connections exist;
//! - [`registry::Registry`] maps tokens to [`connection::ConnectionActor`]s and routes to them;
//! - [`connection::ConnectionActor`] drives one connection's pure state machine;
//! - [`policy::PolicyActor`] holds the configured `Box<dyn Policy>` and answers with decisions.

pub mod addresses;
pub mod commands;
pub mod connection;
pub mod diag;
pub mod events;
pub mod messages;
pub mod policy;
pub mod registry;

/// Drive a socket from the event loop until it fails for good: switch it to non-blocking reads
/// (`set_nonblocking`), register it, and call `on_ready` each time it is readable. `on_ready`
/// reads, clears the readiness when the socket is drained, and returns `Err` for a fatal error.
/// Any failure — setting up, polling or reading — is returned as a failure of socket `which`
/// (see [`crate::failure`]).
pub(crate) async fn read_until_dead<T, E>(
    sock: T,
    set_nonblocking: impl FnOnce(&T) -> Result<(), E>,
    which: crate::failure::KernelSocket,
    mut on_ready: impl FnMut(&mut tokio::io::unix::AsyncFdReadyMutGuard<'_, T>) -> Result<(), E>,
) -> crate::failure::SocketFailure
where
    T: std::os::fd::AsRawFd,
    E: std::error::Error + 'static,
{
    use crate::failure::SocketFailure;
    if let Err(e) = set_nonblocking(&sock) {
        return SocketFailure::new(which, &e);
    }
    let mut afd = match readable_fd(sock) {
        Ok(a) => a,
        Err(e) => return SocketFailure::new(which, &e),
    };
    loop {
        let mut guard = match afd.readable_mut().await {
            Ok(g) => g,
            Err(e) => return SocketFailure::new(which, &e),
        };
        if let Err(e) = on_ready(&mut guard) {
            return SocketFailure::new(which, &e);
        }
    }
}

/// Register a netlink socket with the tokio reactor for readability.
fn readable_fd<T: std::os::fd::AsRawFd>(sock: T) -> std::io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: our socket types own their descriptor (closed only on drop) and always return the
    // same one, so it stays open and unchanged for the AsyncFd's whole life.
    let r = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE)
    };
    r.map_err(std::io::Error::from)
}
