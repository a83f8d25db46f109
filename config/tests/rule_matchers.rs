//! The `side` and `local_port` rule matchers and the `announce:` section: parsing, matching,
//! and the effective configuration's round trip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::net::IpAddr;

use mptcp_pmd_config::{parse, Config, PortRange, RuleTarget, Side};
use mptcp_pmd_policies::announce::{AnnounceParams, PLUGIN as ANNOUNCE};
use mptcp_pmd_policies::fullmesh::PLUGIN as FULLMESH;
use mptcp_pmd_policies::ndiffports::PLUGIN as NDIFFPORTS;

mod common;
use common::ok;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const ROLES: &str = r#"
policy: fullmesh
rules:
  - side: server
    local_port: "8000-8100"
    policy: ndiffports
  - side: server
    policy: announce
    announce: {max_per_connection: 2}
  - side: client
    local_port: 443
    policy: ndiffports
"#;

fn target(side: Option<Side>, local_port: Option<u16>) -> RuleTarget<'static> {
    RuleTarget {
        remote: ip("198.51.100.7"),
        port: 50000,
        local_port,
        interface: None,
        side,
    }
}

fn chosen(c: &Config, t: &RuleTarget<'_>) -> Option<usize> {
    c.rules.iter().position(|r| r.matches_target(t))
}

#[test]
fn side_and_local_port_are_parsed() {
    let c = ok(ROLES);
    assert_eq!(c.rules.len(), 3);
    assert_eq!(c.rules[0].side, Some(Side::Server));
    assert_eq!(
        c.rules[0].local_port,
        Some(PortRange::new(8000, 8100).unwrap())
    );
    assert_eq!(c.rules[1].side, Some(Side::Server));
    assert_eq!(c.rules[1].local_port, None);
    assert_eq!(c.rules[1].spec.plugin, &ANNOUNCE);
    assert_eq!(
        c.rules[1]
            .spec
            .params::<AnnounceParams>()
            .unwrap()
            .max_per_connection,
        2
    );
    assert_eq!(c.rules[2].side, Some(Side::Client));
    assert_eq!(c.rules[2].local_port, Some(PortRange::single(443).unwrap()));
}

#[test]
fn side_and_local_port_choose_the_rule() {
    let c = ok(ROLES);
    let server = Some(Side::Server);
    let client = Some(Side::Client);
    assert_eq!(chosen(&c, &target(server, Some(8080))), Some(0));
    assert_eq!(chosen(&c, &target(server, Some(8101))), Some(1));
    assert_eq!(chosen(&c, &target(server, None)), Some(1));
    assert_eq!(chosen(&c, &target(client, Some(443))), Some(2));
    assert_eq!(chosen(&c, &target(client, Some(8080))), None);
    // Unknown facts match no rule that asks for them.
    assert_eq!(chosen(&c, &target(None, Some(8080))), None);
    assert_eq!(chosen(&c, &target(None, Some(443))), None);
    // The older entry points know neither fact.
    assert_eq!(
        c.policy_for(ip("198.51.100.7"), 443, None).plugin,
        &FULLMESH
    );
    assert!(!c.rules[2].matches(ip("198.51.100.7"), 443, None));
}

#[test]
fn side_and_local_port_combine_with_the_other_matchers() {
    let c = ok(
        "rules:\n  - side: server\n    remote: 10.0.0.0/8\n    interface: \"eth*\"\n    policy: ndiffports\n",
    );
    let r = &c.rules[0];
    let t = RuleTarget {
        remote: ip("10.1.2.3"),
        port: 50000,
        local_port: Some(443),
        interface: Some("eth1"),
        side: Some(Side::Server),
    };
    assert!(r.matches_target(&t));
    assert!(!r.matches_target(&RuleTarget {
        side: Some(Side::Client),
        ..t
    }));
    assert!(!r.matches_target(&RuleTarget {
        remote: ip("192.0.2.1"),
        ..t
    }));
    assert!(!r.matches_target(&RuleTarget {
        interface: Some("wwan0"),
        ..t
    }));
    assert_eq!(r.spec.plugin, &NDIFFPORTS);
}

#[test]
fn a_rule_with_only_side_or_local_port_is_valid() {
    assert_eq!(
        ok("rules: [{side: client, policy: fullmesh}]").rules.len(),
        1
    );
    assert_eq!(
        ok("rules: [{local_port: 22, policy: fullmesh}]")
            .rules
            .len(),
        1
    );
}

#[test]
fn the_announce_section_and_the_new_matchers_round_trip() {
    let yaml = r#"
policy: announce
announce:
  interfaces: ["eth*", "ens?"]
  exclude_interfaces: ["wwan*"]
  cidrs: [198.51.100.0/24, "2001:db8::/32", 192.0.2.7]
  ipv4: true
  ipv6: false
  max_per_connection: 3
rules:
  - side: server
    local_port: "443-444"
    policy: announce
    announce: {cidrs: []}
  - side: client
    policy: fullmesh
"#;
    let c = ok(yaml);
    let a = c.params::<AnnounceParams>().unwrap();
    assert_eq!(a.cidrs.len(), 3);
    assert_eq!(a.cidrs[2].to_string(), "192.0.2.7/32");
    assert!(!a.ipv6);
    assert_eq!(a.interfaces[1].0, "ens?");
    // The rule's override keeps the top-level keys it does not set.
    let r0 = c.rules[0].spec.params::<AnnounceParams>().unwrap();
    assert!(r0.cidrs.is_empty());
    assert_eq!(r0.max_per_connection, 3);
    let out = c.effective_yaml();
    assert!(out.contains("side: server"), "{out}");
    assert!(out.contains("local_port: 443-444"), "{out}");
    assert!(!out.contains("port: null"), "{out}");
    let back = parse(&out, "effective").unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(back, c, "\n{out}");
}
