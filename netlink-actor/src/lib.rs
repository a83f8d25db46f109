//! The kernel bridge of mptcp-pmd: everything that speaks netlink.
//!
//! It owns
//! - one netlink transport ([`transport`]): the only code that makes socket system calls;
//!   receive with truncation detection, EINTR / EAGAIN / ENOBUFS handling, batched receive of
//!   events, request/reply and dumps ([`dump`]) matched by sequence number and sender, with a
//!   bounded wait;
//! - pure codecs, tested on bytes captured from the kernel: the `mptcp_pm` generic netlink
//!   family ([`mptcp_pm`]) and the controller that resolves it ([`genl_ctrl`]),
//!   `NETLINK_SOCK_DIAG` ([`sock_diag`]) and rtnetlink ([`rtnl`]);
//! - the sockets of each family, built on the transport, that turn bytes into domain types of
//!   `mptcp-pmd-policies`: [`genl::PmEventSocket`], [`genl::PmClient`],
//!   [`sock_diag::DiagSocket`], [`rtnl::RtnlSocket`];
//! - one error type for socket operations ([`Error`]), which says itself whether a failure is
//!   transient, an overrun or fatal ([`Error::severity`]), one for undecodable bytes
//!   ([`DecodeError`]) and one for requests that could not be built ([`EncodeError`]);
//! - the kernel actors ([`actors`]), on the daemon's actix event loop: the events actor, the
//!   sock_diag poller (on its own arbiter), the address monitor with the usable-address set it
//!   keeps, and the command path the connection actors call. They own the sockets above, speak
//!   domain types only (events, an [`actors::MptcpSnapshot`], local addresses), reach the
//!   daemon's actors through `Recipient`s of messages defined here, count through a
//!   [`actors::Stats`] trait and report a dead socket through [`actors::Failures`]; they log
//!   with `slog`.
//!
//! The netlink wire format is neli's: its `NlSocket` is the transport's socket, and its
//! header, attribute, extended-ACK and generic netlink controller types parse and build every
//! message ([`wire`] is where the crate meets them). What neli 0.7 lacks is ours: the
//! transport's receive path and reply matching (neli's `recv` does not report the sender, and
//! its `NlRouter` is a second transport on a thread of its own, without a bound on a reply's
//! wait or batched receive), zero-copy attribute payloads and length checks in [`wire`], and
//! the sock_diag structs (neli has no sock_diag). No neli type appears in the public API:
//! the codecs take and give bytes, [`wire::Message`] / [`wire::Attr`] views and domain types.
//!
//! It does not own the registry, the connection actors, the policy actor or the process (what
//! to do with an event, and what happens when a socket dies, are the daemon's and the
//! policies' business), nor the metrics registry. Nothing of the daemon is a dependency: the
//! dependencies are `neli`, `libc`, `thiserror`, `actix`, `tokio` (the reactor's `AsyncFd`), `slog`,
//! `mptcp-pmd-policies` (the domain types) and `mptcp-pmd-config` (the `addresses:` filter).

pub mod actors;
pub mod dump;
pub mod error;
pub mod genl;
pub mod genl_ctrl;
pub mod mptcp_pm;
pub mod rtnl;
pub mod severity;
pub mod sock_diag;
pub mod transport;
pub mod wire;

pub use error::{DecodeError, EncodeError, Error};
pub use severity::Severity;
