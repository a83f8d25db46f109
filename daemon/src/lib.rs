//! `mptcp-pmd`, the Multipath TCP userspace path manager daemon, as a library: the binary
//! (`main.rs`) parses the command line, loads the configuration, builds the shutdown future from
//! signals and calls [`service::run`]; tests run the same daemon in-process.
//!
//! Owns: start-up checks and order, the privilege drop, the actors that own the kernel sockets
//! and the per-connection state machines, the rule for socket failures ([`failure`]), the
//! control socket and metrics endpoint, signals and exit codes. It does not own the domain
//! logic (`policies`), the netlink codecs and sockets (`netlink-actor`) or the configuration
//! format (`config`).

mod actors;
mod adopt;
pub mod cli;
pub mod client;
mod control;
pub mod exit;
pub mod failure;
mod http;
mod listeners;
pub mod logging;
mod metrics;
mod notify;
mod privs;
mod registry_core;
mod rules;
mod server;
pub mod service;
pub mod signals;
pub mod startup;
mod status;
mod trim;
mod wiring;
