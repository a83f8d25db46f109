//! The kernel bridge of mptcp-pmd.
//!
//! Owns everything that touches the kernel's netlink interfaces: pure codecs for the `mptcp_pm`
//! generic netlink family ([`mptcp_pm`]), `NETLINK_SOCK_DIAG` ([`sock_diag`]) and rtnetlink
//! ([`rtnl`]) over shared framing ([`nlmsg`]), plus the sockets (opened with neli) and the small
//! actors that turn them into streams of domain types from `mptcp-pmd-policies`. No neli type
//! leaves this crate. It does not own decisions: what to do with an event is the daemon's and the
//! policies' business.

pub mod dump;
pub mod error;
pub mod genl;
pub mod mptcp_pm;
pub mod nlmsg;
pub mod rtnl;
pub mod sock_diag;

pub use error::DecodeError;
