//! `NETLINK_SOCK_DIAG`: the periodic view of every MPTCP connection and subflow on the host.
//!
//! [`codec`] is the pure `inet_diag` codec (requests, replies, [`join`] into a [`Snapshot`]),
//! tested on bytes captured from the kernel; [`lookup`] the pure exact lookups of subflows by
//! 4-tuple (fast sampling of a few connections without walking the kernel's table); [`socket`]
//! is the [`DiagSocket`] that runs dumps and lookups over the crate's transport. The main types
//! are re-exported here. It does not decide anything from the numbers; that is the policies'
//! job.

pub mod codec;
pub mod lookup;
pub mod socket;

pub use codec::*;
pub use lookup::{Answer, LookupKey};
pub use socket::DiagSocket;
