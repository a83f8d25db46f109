//! mptcp-pmd's domain model and decision logic.
//!
//! This crate owns: the types every other crate speaks ([`model`]), the per-connection subflow
//! state machine, the [`Policy`] trait, one module per policy and the registry
//! that builds a policy by name. It owns no I/O: no sockets, no clock reads, no actix, no neli.
//! Time comes in as an argument, so every decision is reproducible in a unit test.

pub mod conn;
pub mod fullmesh;
pub mod model;
pub mod ndiffports;
pub mod policy;
pub mod registry;
pub mod rtt_based;

pub use conn::{ConnTimers, Connection, KernelRefusal, Path, Subflow, SubflowState};
pub use fullmesh::Fullmesh;
pub use model::*;
pub use ndiffports::Ndiffports;
pub use policy::{Ctx, Decision, Policy};
pub use registry::{build, PolicyParams, NAMES};
pub use rtt_based::{RttBased, RttParams};
