//! The daemon's pure cores: the logic its actors drive, sans-IO (time is an argument, no
//! sockets, no actors), unit-tested on plain values.
//!
//! - [`registry_core`]: which connection an event, a snapshot or an adoption goes to, the
//!   retirement of connections that vanished, resync coalescing;
//! - [`adopt`]: which connections of a sock_diag snapshot a (re)started daemon adopts;
//! - [`listeners`]: the namespace's MPTCP listeners, as the policy actor tracks them;
//! - [`rules`]: the configured policies and the one policy object per connection;
//! - [`budget`]: the meter of metered interfaces (byte budgets, periods, the saved state);
//! - [`interface_limits`]: spent budgets and per-interface subflow caps over every policy's
//!   decisions;
//! - [`watch`]: what a connection asks the sock_diag poller to sample.

pub mod adopt;
pub mod budget;
pub mod interface_limits;
pub mod listeners;
pub mod registry_core;
pub mod rules;
pub mod watch;
