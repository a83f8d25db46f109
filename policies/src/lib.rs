//! mptcp-pmd's domain model and decision logic.
//!
//! This crate owns: the types every other crate speaks ([`model`]), the per-connection subflow
//! state machine ([`conn`]) and the operator commands it accepts ([`manual`]), the [`Policy`]
//! trait ([`policy`]) and what it answers ([`decision`]), the plugin API through which
//! the config and the daemon reach a policy without naming it ([`plugin`], [`params`]), one
//! module per policy, and the registry table below. It owns no I/O: no sockets, no clock
//! reads, no actix, no neli. Time comes in as an argument, so every decision is reproducible
//! in a unit test.
//!
//! # The registry
//! A policy is one file (`src/<name>.rs`, exporting a `PLUGIN`) plus one `mod` line and one
//! entry in [`REGISTRY`]; nothing else in the workspace names it. The first entry is the
//! default policy.

pub mod addrmatch;
pub mod conn;
pub mod decision;
pub mod manual;
pub mod mesh;
pub mod model;
pub mod params;
pub mod plugin;
pub mod policy;
pub mod stamp;

pub mod active_standby;
pub mod announce;
pub mod fullmesh;
pub mod ndiffports;
pub mod rtt_based;

/// Every compiled-in policy, in documentation order; the first is the default.
pub static REGISTRY: &[&plugin::Plugin] = &[
    &fullmesh::PLUGIN,
    &ndiffports::PLUGIN,
    &rtt_based::PLUGIN,
    &active_standby::PLUGIN,
    &announce::PLUGIN,
];

pub use conn::{
    AnnounceState, Announcement, ConnTimers, Connection, KernelRefusal, Path, RefusalMeaning,
    Subflow, SubflowState,
};
pub use manual::{Manual, ManualRefusal};
pub use model::*;
pub use plugin::{Plugin, PolicyParams, PolicySpec};
pub use policy::{Action, Ctx, Decision, Policy, Reason};
