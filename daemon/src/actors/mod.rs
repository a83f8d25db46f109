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

/// Register a netlink socket with the tokio reactor for readability.
pub(crate) fn readable_fd<T: std::os::fd::AsRawFd>(
    sock: T,
) -> std::io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: our socket types own their descriptor (closed only on drop) and always return the
    // same one, so it stays open and unchanged for the AsyncFd's whole life.
    let r = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE)
    };
    r.map_err(std::io::Error::from)
}
