//! `NETLINK_SOCK_DIAG`: the periodic view of every MPTCP connection and subflow on the host.
//!
//! [`codec`] is the pure `inet_diag` codec (requests, replies, [`join`] into a [`Snapshot`]),
//! tested on bytes captured from the kernel; [`socket`] is the [`DiagSocket`] that runs the
//! dumps over the crate's transport. Both are re-exported here. It does not decide anything
//! from the numbers; that is the policies' job.

pub mod codec;
pub mod socket;

pub use codec::*;
pub use socket::DiagSocket;
