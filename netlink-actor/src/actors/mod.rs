//! The kernel actors: each owns kernel sockets and speaks domain types only (see
//! docs/ARCHITECTURE.md, "The actors"):
//!
//! - [`events::EventActor`] owns the `mptcp_pm_events` socket and sends each decoded event as a
//!   [`KernelEvent`], and a [`Resync`] when events were lost;
//! - [`diag::DiagPoller`] owns the sock_diag socket: it polls the connections while some exist
//!   ([`DiagSnapshot`] of an [`MptcpSnapshot`]), samples the subflows of the connections that
//!   ask for it, each at its period ([`SampleConnection`], [`sampler`]; the samples leave as
//!   [`FreshSamples`]), and answers [`TakeSnapshot`];
//! - [`addresses::AddressMonitor`] owns the rtnetlink sockets and keeps the usable local
//!   addresses ([`addrset::AddrSet`], filtered by the `addresses:` config), sending
//!   [`LocalsChanged`];
//! - [`commands::CommandPath`] (not an actor) owns the command socket: the daemon's connection
//!   actors execute PM commands through it directly, on the event loop's thread.
//!
//! They reach the daemon's actors through actix `Recipient`s of the [`messages`] defined here,
//! count through the [`Stats`] trait the daemon implements for its metrics, and report a
//! socket that failed for good to [`Failures`]. What the daemon does then (stop, exit code 70)
//! is its business.

pub mod addresses;
pub mod addrset;
pub mod commands;
pub mod diag;
pub mod events;
pub mod failure;
pub mod messages;
mod reader;
pub mod sampler;
pub mod snapshot;
pub mod stats;

pub use addresses::{AddressMonitor, GetAddresses, RtnlSockets, SetFilter};
pub use addrset::{AddrSet, Skipped};
pub use commands::{Cause, CommandPath};
pub use diag::DiagPoller;
pub use events::{EventActor, EventSinks};
pub use failure::{Failures, KernelSocket, SocketFailure};
pub use messages::{
    DiagSnapshot, FreshSamples, KernelEvent, LocalsChanged, Resync, SampleConnection, SetPolling,
    TakeSnapshot,
};
pub use sampler::{Pace, Sample, SampleSet, Watch, WatchedSubflow};
pub use snapshot::{MptcpSnapshot, SnapshotConn};
pub use stats::{EventTrace, Stats};
