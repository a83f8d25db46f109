//! The daemon's actors and the messages between them (see docs/ARCHITECTURE.md); the kernel
//! actors that own the sockets (events, sock_diag poller, address monitor, command path) are
//! `netlink_actor::actors`, whose messages these handle:
//!
//! - [`registry::Registry`] maps tokens to [`connection::ConnectionActor`]s and routes to them;
//! - [`connection::ConnectionActor`] drives one connection's pure state machine;
//! - [`policy::PolicyActor`] holds the configured `Box<dyn Policy>` and answers with decisions,
//!   after the per-interface limits of [`metering::Metering`] (byte budgets, subflow caps);
//! - [`coexist::EndpointWatch`] watches the in-kernel PM's endpoints and the namespace's path
//!   manager, and warns when they conflict with this daemon.

pub mod coexist;
pub mod connection;
pub mod messages;
pub mod metering;
pub mod policy;
pub mod registry;
