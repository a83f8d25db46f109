//! The `fullmesh` policy: one live subflow per (usable local address × known remote address)
//! pair of the same family, up to `max_subflows` per connection (the initial subflow counts).
//! Remote addresses are the connection's destination plus every address the peer announced,
//! minus removed ones. The mesh rules are in [`crate::mesh`]; among them, a peer that set
//! `deny_join_id0` gets no subflow towards its initial address (its announced ones are joined),
//! and [`Policy::note`] says so.
//!
//! Config section `fullmesh:`
//! - `max_subflows` (1..=64, default 8): live subflows per connection, counting the initial
//!   one. The peer must accept them (`ip mptcp limits` on the peer; the kernel caps accepted
//!   subflows at 8).

use serde::{Deserialize, Serialize};

use crate::mesh;
use crate::model::PmEvent;
use crate::params;
use crate::plugin::{Plugin, PolicyParams};
use crate::policy::{Ctx, Decision, Policy, Reason};

/// The registry entry.
pub static PLUGIN: Plugin = Plugin::new::<FullmeshParams>(
    "fullmesh",
    "fullmesh",
    "one subflow per usable (local address, remote address) pair",
);

/// The `fullmesh:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FullmeshParams {
    /// Subflows per connection, counting the initial one. 1..=64, default 8.
    #[serde(deserialize_with = "params::int::<_, _, 1, 64>")]
    pub max_subflows: u8,
}

impl Default for FullmeshParams {
    fn default() -> Self {
        FullmeshParams { max_subflows: 8 }
    }
}

impl PolicyParams for FullmeshParams {
    fn build(&self) -> Box<dyn Policy> {
        Box::new(Fullmesh::new(self.max_subflows.into()))
    }
}

/// The fullmesh policy for one connection. See the module docs.
#[derive(Debug, Clone)]
pub struct Fullmesh {
    /// Most live subflows per connection, the initial one included.
    pub max_subflows: usize,
}

impl Fullmesh {
    /// A fullmesh policy with this many subflows at most per connection.
    pub fn new(max_subflows: usize) -> Self {
        Fullmesh { max_subflows }
    }

    fn reconcile(&self, ctx: &Ctx<'_>) -> Vec<Decision> {
        mesh::reconcile(ctx, self.max_subflows)
    }
}

impl Policy for Fullmesh {
    fn on_event(&mut self, ctx: &Ctx<'_>, event: &PmEvent) -> Vec<Decision> {
        match event {
            PmEvent::Established(_)
            | PmEvent::Announced { .. }
            | PmEvent::Removed { .. }
            | PmEvent::SubClosed(_) => self.reconcile(ctx),
            _ => Vec::new(),
        }
    }

    fn on_locals_changed(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        self.reconcile(ctx)
    }

    fn on_tick(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        self.reconcile(ctx)
    }

    fn note(&self, ctx: &Ctx<'_>) -> Option<Reason> {
        mesh::note(ctx)
    }
}
