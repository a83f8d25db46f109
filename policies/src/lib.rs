//! mptcp-pmd's domain model and decision logic.
//!
//! This crate owns: the types every other crate speaks ([`model`]), the per-connection subflow
//! state machine, the [`Policy`](policy::Policy) trait, one module per policy and the registry
//! that builds a policy by name. It owns no I/O: no sockets, no clock reads, no actix, no neli.
//! Time comes in as an argument, so every decision is reproducible in a unit test.

pub mod model;

pub use model::*;
