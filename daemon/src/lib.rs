//! `mptcp-pmd`, the Multipath TCP userspace path manager daemon, as a library: the binary
//! (`main.rs`) parses the command line, loads the configuration, builds the shutdown future from
//! signals and calls [`service::run`]; tests run the same daemon in-process.
//!
//! Owns: start-up checks and order ([`service`]), the registry, the per-connection actors and
//! the policy actor (`actors/`) with the pure cores they drive (`core/`), the control socket
//! and its protocol ([`protocol`], public for its fuzz target and other clients), the monitor
//! stream, the metrics endpoint and the client subcommands (`endpoints/`), and the process: privilege
//! drop, signals, exit codes, logging and the rule for kernel sockets that fail (`process/`).
//! It does not own the domain logic (`policies`), the netlink codecs, sockets and the kernel
//! actors that own them (`netlink-actor`) or the configuration format (`config`).

mod actors;
pub mod cli;
mod core;
mod endpoints;
mod process;
pub mod service;
mod wiring;

/// The metrics endpoint's request parser, public for its fuzz target.
pub use endpoints::http_request;
pub use endpoints::{client, protocol};
pub use process::{exit, failure, logging, signals, startup, trim};
