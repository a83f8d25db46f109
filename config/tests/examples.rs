//! The ready-made configurations in `packaging/examples/` are valid, and give each kind of
//! connection the policy their comments promise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::net::IpAddr;

use mptcp_pmd_config::{load, Config, RuleTarget, Side};
use mptcp_pmd_policies::active_standby::{ActiveStandbyParams, PLUGIN as ACTIVE_STANDBY};
use mptcp_pmd_policies::addrmatch::InterfaceGlob;
use mptcp_pmd_policies::announce::PLUGIN as ANNOUNCE;
use mptcp_pmd_policies::fullmesh::PLUGIN as FULLMESH;
use mptcp_pmd_policies::plugin::Plugin;

fn example(name: &str) -> Config {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/examples")
        .join(name);
    load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The policy a connection on `side` (local port 443) gets: the first matching rule's, else
/// the default.
fn policy_of(c: &Config, side: Side) -> &'static Plugin {
    let remote: IpAddr = "198.51.100.7".parse().unwrap();
    let t = RuleTarget {
        remote,
        port: 50000,
        local_port: Some(443),
        interface: Some("eth0"),
        side: Some(side),
    };
    c.rules
        .iter()
        .find(|r| r.matches_target(&t))
        .map_or(c.policy, |r| r.spec.plugin)
}

#[test]
fn every_example_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 2, "examples missing in {}", dir.display());
}

#[test]
fn server_announces_on_accepted_connections() {
    let c = example("server.yaml");
    assert_eq!(c.policy, &ANNOUNCE);
    assert_eq!(policy_of(&c, Side::Server), &ANNOUNCE);
    assert!(c
        .addresses
        .exclude_interfaces
        .contains(&"docker*".to_string()));
}

#[test]
fn both_roles_mesh_dialled_connections_and_announce_on_accepted_ones() {
    let c = example("both-roles.yaml");
    assert_eq!(policy_of(&c, Side::Client), &FULLMESH);
    assert_eq!(policy_of(&c, Side::Server), &ANNOUNCE);
}

#[test]
fn hybrid_access_keeps_the_mobile_link_standby() {
    let c = example("hybrid-access.yaml");
    assert_eq!(c.policy, &ACTIVE_STANDBY);
    assert_eq!(policy_of(&c, Side::Client), &ACTIVE_STANDBY);
    let spec = c.spec_of(ACTIVE_STANDBY.name).unwrap();
    let p = spec.params::<ActiveStandbyParams>().unwrap();
    assert!(p
        .standby_interfaces
        .iter()
        .any(|g: &InterfaceGlob| g.matches("wwan0")));
    assert!(!p.standby_interfaces.iter().any(|g| g.matches("eth0")));
    assert!(spec.wants_samples());
    assert_eq!(
        spec.sample_period(),
        Some(std::time::Duration::from_millis(20))
    );
    let _policy = spec.build();
}
