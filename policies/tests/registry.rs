//! The registry table: every compiled-in policy is reachable by name and section, builds from
//! its defaults, and its defaults pass its own checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use mptcp_pmd_policies::params::{Keys, Node};
use mptcp_pmd_policies::plugin;

#[test]
fn names_and_sections_are_unique_and_found() {
    let all = plugin::all();
    assert!(!all.is_empty());
    let names: HashSet<_> = all.iter().map(|p| p.name).collect();
    let sections: HashSet<_> = all.iter().map(|p| p.section).collect();
    assert_eq!(names.len(), all.len());
    assert_eq!(sections.len(), all.len());
    for p in all {
        assert_eq!(plugin::find(p.name), Some(*p));
        assert_eq!(plugin::find_section(p.section), Some(*p));
        // The documented spelling: the section is the name with `_` for `-`.
        assert_eq!(p.section, p.name.replace('-', "_"));
        assert!(!p.about.is_empty());
    }
    assert_eq!(plugin::default_plugin(), all[0]);
    assert!(plugin::find("no-such-policy").is_none());
}

#[test]
fn every_policy_builds_from_an_empty_section_and_its_defaults() {
    for p in plugin::all() {
        let keys = Keys::new(p.section);
        let parsed = p.parse(&Node::empty(), &keys).unwrap();
        // An empty section is the defaults.
        assert_eq!(parsed, p.default_spec(), "{}", p.name);
        assert_eq!(parsed.name(), p.name);
        let _policy = parsed.build();
    }
}
