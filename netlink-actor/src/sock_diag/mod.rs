//! `NETLINK_SOCK_DIAG`: the periodic view of every MPTCP connection and subflow on the host.
//!
//! [`codec`] is the pure `inet_diag` codec (requests, replies, [`join`] into a [`Snapshot`]),
//! tested on bytes captured from the kernel; [`filter`] the pure port-window filters that split
//! the subflow dump into bounded shares; [`socket`] is the [`DiagSocket`] that runs the dumps
//! over the crate's transport. Both are re-exported here. It does not decide anything
//! from the numbers; that is the policies' job.

pub mod codec;
pub mod filter;
pub mod socket;

pub use codec::*;
pub use filter::{port_windows, PortPair, PortWindow, WINDOW_SUBFLOWS};
pub use socket::DiagSocket;
