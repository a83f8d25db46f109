//! The registry of compiled-in policies: their names as the config spells them and one builder.
//!
//! Adding a policy = one file with a `Policy` implementation + one variant in [`PolicyParams`]
//! (its parameters) + one arm in [`build`] + its name in [`NAMES`]. The config crate maps its
//! YAML sections to [`PolicyParams`]; this crate depends on nothing of ours.

use crate::fullmesh::Fullmesh;
use crate::ndiffports::Ndiffports;
use crate::policy::Policy;
use crate::rtt_based::{RttBased, RttParams};

/// Every policy name the daemon knows, as written in the config.
pub const NAMES: &[&str] = &["fullmesh", "ndiffports", "rtt-based"];

/// A policy's name and parameters: everything needed to build it.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyParams {
    /// `fullmesh`: one subflow per local × remote address pair.
    Fullmesh {
        /// Most live subflows per connection, the initial one included.
        max_subflows: usize,
    },
    /// `ndiffports`: several subflows over the initial path.
    Ndiffports {
        /// Subflows wanted, the initial one included.
        subflows: usize,
    },
    /// `rtt-based`: fullmesh whose subflows are demoted to backup (or closed) by measured RTT
    /// and loss. Check the parameters with [`RttParams::validate`] before building.
    RttBased(RttParams),
}

impl PolicyParams {
    /// The policy's name, one of [`NAMES`].
    pub fn name(&self) -> &'static str {
        match self {
            PolicyParams::Fullmesh { .. } => "fullmesh",
            PolicyParams::Ndiffports { .. } => "ndiffports",
            PolicyParams::RttBased(_) => "rtt-based",
        }
    }
}

/// Builds the policy these parameters describe.
pub fn build(params: &PolicyParams) -> Box<dyn Policy> {
    match params {
        PolicyParams::Fullmesh { max_subflows } => Box::new(Fullmesh::new(*max_subflows)),
        PolicyParams::Ndiffports { subflows } => Box::new(Ndiffports::new(*subflows)),
        PolicyParams::RttBased(params) => Box::new(RttBased::new(*params)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_policies_carry_their_registered_names() {
        let all = [
            PolicyParams::Fullmesh { max_subflows: 8 },
            PolicyParams::Ndiffports { subflows: 2 },
            PolicyParams::RttBased(RttParams::default()),
        ];
        for p in &all {
            let policy = build(p);
            assert_eq!(policy.name(), p.name());
            assert!(NAMES.contains(&policy.name()));
        }
        // Every registered name is buildable.
        let built: Vec<_> = all.iter().map(|p| p.name()).collect();
        assert_eq!(built, NAMES);
    }
}
