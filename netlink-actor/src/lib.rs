//! The kernel bridge of mptcp-pmd: everything that speaks netlink.
//!
//! It owns
//! - one netlink transport ([`transport`]): the only code that makes socket system calls;
//!   receive with truncation detection, EINTR / EAGAIN / ENOBUFS handling, request/reply and
//!   dumps matched by sequence number and sender, with a bounded wait;
//! - pure codecs over shared framing ([`nlmsg`], [`dump`]), tested on bytes captured from the
//!   kernel: the `mptcp_pm` generic netlink family ([`mptcp_pm`]) and the controller that
//!   resolves it ([`genl_ctrl`]), `NETLINK_SOCK_DIAG` ([`sock_diag`]) and rtnetlink ([`rtnl`]);
//! - the sockets of each family, built on the transport, that turn bytes into domain types of
//!   `mptcp-pmd-policies`: [`genl::PmEventSocket`], [`genl::PmClient`],
//!   [`sock_diag::DiagSocket`], [`rtnl::RtnlSocket`];
//! - one error type for socket operations ([`Error`]) and one for undecodable bytes
//!   ([`DecodeError`]).
//!
//! It does not own actors, threads, event loops or logging (the daemon drives these sockets,
//! blocking or through their file descriptors), nor decisions: what to do with an event is the
//! daemon's and the policies' business.

pub mod dump;
pub mod error;
pub mod genl;
pub mod genl_ctrl;
pub mod mptcp_pm;
pub mod nlmsg;
pub mod rtnl;
pub mod sock_diag;
pub mod transport;

pub use error::{DecodeError, Error};
