//! Valid configurations: defaults, the shipped example, rules, round trips, helpers,
//! `load`, and robustness against garbage input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::net::IpAddr;
use std::path::PathBuf;

use mptcp_pmd_config::{
    find_policy, load, parse, AddressFilter, Cidr, Config, ConfigError, LogFormat, LogLevel,
    PolicySpec, PortRange,
};
use mptcp_pmd_policies::fullmesh::{FullmeshParams as FullmeshConfig, PLUGIN as FULLMESH};
use mptcp_pmd_policies::ndiffports::{NdiffportsParams as NdiffportsConfig, PLUGIN as NDIFFPORTS};
use mptcp_pmd_policies::plugin;
use mptcp_pmd_policies::rtt_based::{RttBasedParams as RttBasedConfig, PLUGIN as RTT_BASED};

/// The top-level section of the policy whose parameters are `P`.
fn params<P: mptcp_pmd_policies::PolicyParams + Copy>(c: &Config) -> P {
    *c.params::<P>().unwrap()
}

const SHIPPED: &str = include_str!("../../packaging/mptcp-pm.yaml");

mod common;
use common::ok;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn documented_defaults() {
    let c = Config::default();
    assert_eq!(c.policy, &FULLMESH);
    assert_eq!(params::<FullmeshConfig>(&c).max_subflows, 8);
    assert_eq!(params::<NdiffportsConfig>(&c).subflows, 2);
    let r = params::<RttBasedConfig>(&c);
    assert_eq!(r.max_subflows, 8);
    assert_eq!(r.backup_ratio, 2.0);
    assert_eq!(r.min_gap_ms, 20);
    assert_eq!(r.restore_ratio, 1.5);
    assert_eq!(r.hold_s, 5);
    assert!(!r.close_on_loss);
    assert_eq!(r.loss_threshold, 0.05);
    assert_eq!(r.cooldown_s, 30);
    assert!(c.addresses.skip_loopback && c.addresses.skip_link_local);
    assert!(c.addresses.include_interfaces.is_empty());
    assert!(c.addresses.exclude_interfaces.is_empty());
    assert!(c.addresses.backup_interfaces.is_empty());
    assert!(c.kernel.set_userspace_pm);
    assert_eq!(c.kernel.events_rcvbuf, 4_194_304);
    assert_eq!(c.kernel.nice, -20);
    assert_eq!(c.kernel.realtime_priority, 0);
    assert_eq!(c.poll.interval_ms, 1000);
    assert_eq!(c.poll.interval(), std::time::Duration::from_secs(1));
    assert_eq!(c.subflow.request_timeout_ms, 5000);
    assert_eq!(c.subflow.backoff_initial_ms, 500);
    assert_eq!(c.subflow.backoff_max_ms, 30_000);
    assert_eq!(c.subflow.max_retries, 6);
    assert_eq!(c.log.level, LogLevel::Info);
    assert_eq!(c.log.format, LogFormat::Term);
    assert_eq!(c.control.socket, PathBuf::from("/run/mptcp-pmd.sock"));
    assert_eq!(c.metrics.listen, None);
    assert!(c.rules.is_empty());
}

#[test]
fn only_policy_is_a_complete_config() {
    assert_eq!(ok("policy: fullmesh\n"), Config::default());
    assert_eq!(ok("policy: fullmesh"), Config::default());
    let c = ok("policy: rtt-based\n");
    assert_eq!(c.policy, &RTT_BASED);
    assert_eq!(
        Config {
            policy: &FULLMESH,
            ..c
        },
        Config::default()
    );
    assert_eq!(ok("policy: ndiffports").policy, &NDIFFPORTS);
}

#[test]
fn empty_inputs_mean_defaults() {
    for yaml in [
        "",
        "\n",
        "   \n\n",
        "# only a comment\n",
        "---\n",
        "---\n...\n",
        "~\n",
        "null\n",
        "{}\n",
    ] {
        assert_eq!(ok(yaml), Config::default(), "{yaml:?}");
    }
    // An empty section or key keeps that section's defaults.
    assert_eq!(
        ok("fullmesh:\nrtt_based: {}\nrules:\npolicy:\n"),
        Config::default()
    );
}

#[test]
fn shipped_example_is_the_defaults() {
    assert_eq!(ok(SHIPPED), Config::default());
}

#[test]
fn shipped_example_rules_parse_when_uncommented() {
    // Uncomment the example `rules:` block, dropping the active `rules: []`.
    let mut text = String::new();
    let mut in_example = false;
    for line in SHIPPED.lines() {
        if line == "rules: []" {
            continue;
        }
        if line == "#rules:" {
            in_example = true;
        }
        if in_example {
            text.push_str(line.strip_prefix('#').unwrap_or(line));
        } else {
            text.push_str(line);
        }
        text.push('\n');
    }
    let c = ok(&text);
    assert_eq!(c.rules.len(), 2);
    let r0 = &c.rules[0];
    assert_eq!(r0.remote, Some("198.51.100.0/24".parse().unwrap()));
    assert_eq!(r0.port, Some(PortRange::single(443).unwrap()));
    assert_eq!(r0.interface.as_deref(), Some("wwan0"));
    assert_eq!(
        r0.spec,
        PolicySpec::with(&NDIFFPORTS, NdiffportsConfig { subflows: 4 })
    );
    let r1 = &c.rules[1];
    assert_eq!(r1.port, Some(PortRange::new(8000, 8100).unwrap()));
    assert_eq!(
        r1.spec,
        PolicySpec::with(
            &RTT_BASED,
            RttBasedConfig {
                close_on_loss: true,
                ..RttBasedConfig::default()
            }
        )
    );
}

const FULL: &str = r#"
policy: ndiffports
fullmesh: {max_subflows: 4}
ndiffports:
  subflows: 3
rtt_based:
  max_subflows: 6
  backup_ratio: 3
  min_gap_ms: 0
  restore_ratio: 1.25
  hold_s: 10
  close_on_loss: true
  loss_threshold: 0.1
  cooldown_s: 60
  probe_s: 20
addresses:
  skip_loopback: false
  skip_link_local: true
  include_interfaces: ["eth*", wlan?]
  exclude_interfaces:
    - docker*
  backup_interfaces: [wwan0]
kernel: {set_userspace_pm: false, events_rcvbuf: 65536, nice: 5, realtime_priority: 20, restore_path_manager_on_exit: true}
poll: {interval_ms: 250}
subflow: {request_timeout_ms: 2000, backoff_initial_ms: 100, backoff_max_ms: 100, max_retries: 0}
log: {level: trace, format: json}
control: {socket: /tmp/pmd.sock, group: mptcp-readers}
metrics: {listen: "127.0.0.1:9464"}
rules:
  - remote: 198.51.100.0/24
    port: 443
    interface: wwan*
    policy: fullmesh
  - remote: 2001:db8::/32
    port: "8000-8100"
    policy: ndiffports
    ndiffports: {subflows: 5}
  - port: 22
    policy: rtt-based
    rtt_based: {close_on_loss: false}
  - remote: 203.0.113.9
    policy: fullmesh
    fullmesh: {}
"#;

#[test]
fn every_key_is_read() {
    let c = ok(FULL);
    assert_eq!(c.policy, &NDIFFPORTS);
    assert_eq!(
        params::<FullmeshConfig>(&c),
        FullmeshConfig { max_subflows: 4 }
    );
    assert_eq!(
        params::<NdiffportsConfig>(&c),
        NdiffportsConfig { subflows: 3 }
    );
    assert_eq!(
        params::<RttBasedConfig>(&c),
        RttBasedConfig {
            max_subflows: 6,
            backup_ratio: 3.0,
            min_gap_ms: 0,
            restore_ratio: 1.25,
            hold_s: 10,
            close_on_loss: true,
            loss_threshold: 0.1,
            cooldown_s: 60,
            probe_s: 20,
        }
    );
    assert_eq!(
        c.addresses,
        AddressFilter {
            skip_loopback: false,
            skip_link_local: true,
            include_interfaces: vec!["eth*".into(), "wlan?".into()],
            exclude_interfaces: vec!["docker*".into()],
            backup_interfaces: vec!["wwan0".into()],
            max_subflows_per_interface: Vec::new(),
        }
    );
    assert!(!c.kernel.set_userspace_pm);
    assert_eq!(c.kernel.events_rcvbuf, 65536);
    assert_eq!(c.kernel.nice, 5);
    assert_eq!(c.kernel.realtime_priority, 20);
    assert!(c.kernel.restore_path_manager_on_exit);
    assert_eq!(c.control.group.as_deref(), Some("mptcp-readers"));
    assert_eq!(c.poll.interval_ms, 250);
    assert_eq!(c.subflow.request_timeout_ms, 2000);
    assert_eq!(c.subflow.backoff_initial_ms, 100);
    assert_eq!(c.subflow.backoff_max_ms, 100);
    assert_eq!(c.subflow.max_retries, 0);
    assert_eq!(c.log.level, LogLevel::Trace);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.control.socket, PathBuf::from("/tmp/pmd.sock"));
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(c.rules.len(), 4);
    // Overrides merge over the top-level section of the same policy.
    assert_eq!(
        c.rules[0].spec,
        PolicySpec::with(&FULLMESH, FullmeshConfig { max_subflows: 4 })
    );
    assert_eq!(
        c.rules[1].spec,
        PolicySpec::with(&NDIFFPORTS, NdiffportsConfig { subflows: 5 })
    );
    assert_eq!(
        c.rules[2].spec,
        PolicySpec::with(
            &RTT_BASED,
            RttBasedConfig {
                close_on_loss: false,
                ..params::<RttBasedConfig>(&c)
            }
        )
    );
    assert_eq!(c.rules[3].remote, Some("203.0.113.9/32".parse().unwrap()));
    assert_eq!(
        c.rules[3].spec,
        PolicySpec::with(&FULLMESH, params::<FullmeshConfig>(&c))
    );
}

#[test]
fn policy_for_first_match_wins() {
    let c = ok(FULL);
    let default = PolicySpec::with(&NDIFFPORTS, NdiffportsConfig { subflows: 3 });
    // Rule 0 needs the remote, the port and an interface matching wwan*.
    assert_eq!(
        c.policy_for(ip("198.51.100.7"), 443, Some("wwan1")),
        c.rules[0].spec
    );
    assert_eq!(c.policy_for(ip("198.51.100.7"), 443, Some("eth0")), default);
    assert_eq!(c.policy_for(ip("198.51.100.7"), 443, None), default);
    assert_eq!(c.policy_for(ip("198.51.100.7"), 80, Some("wwan1")), default);
    // Port ranges are inclusive; IPv6 prefixes work.
    assert_eq!(c.policy_for(ip("2001:db8::5"), 8100, None), c.rules[1].spec);
    assert_eq!(c.policy_for(ip("2001:db8::5"), 8101, None), default);
    // Rule 2 matches any remote on port 22, and is before rule 3.
    assert_eq!(c.policy_for(ip("203.0.113.9"), 22, None).plugin, &RTT_BASED);
    assert_eq!(c.policy_for(ip("203.0.113.9"), 23, None).plugin, &FULLMESH);
    // IPv4-mapped IPv6 remotes match IPv4 rules.
    assert_eq!(
        c.policy_for(ip("::ffff:203.0.113.9"), 23, None).plugin,
        &FULLMESH
    );
    assert_eq!(
        c.matching_rule(ip("203.0.113.9"), 23, None).map(|(i, _)| i),
        Some(3)
    );
    assert_eq!(
        c.matching_rule(ip("192.0.2.1"), 23, None).map(|(i, _)| i),
        None
    );
    assert_eq!(c.default_spec(), default);
}

#[test]
fn effective_yaml_round_trips() {
    let tricky = [
        "",
        SHIPPED,
        FULL,
        "policy: rtt-based\nrtt_based: {backup_ratio: 1.1, restore_ratio: 0.3, loss_threshold: 0.0001}\n",
        // Names YAML would read as something else unless the emitter quotes them.
        r##"addresses: {include_interfaces: ["*", "?x", "null", "yes", "1", "-", "#a", "&b", "!c", "'", "\"", "{", "~", "%", "@", "0x1", "1e3", ".inf", "a#b", "true", "no", "off"]}"##,
        r#"rules: [{interface: "*", policy: fullmesh}, {remote: "::/0", policy: fullmesh}]"#,
    ];
    for yaml in tricky {
        let c = ok(yaml);
        let out = c.effective_yaml();
        let back = match parse(&out, "effective") {
            Ok(b) => b,
            Err(e) => panic!("effective YAML does not parse: {e}\n{out}"),
        };
        assert_eq!(back, c, "\n{out}");
    }
}

#[test]
fn effective_yaml_fills_every_key() {
    let out = ok("policy: fullmesh").effective_yaml();
    for key in [
        "policy:",
        "max_subflows:",
        "subflows:",
        "backup_ratio:",
        "min_gap_ms:",
        "restore_ratio:",
        "hold_s:",
        "close_on_loss:",
        "loss_threshold:",
        "cooldown_s:",
        "probe_s:",
        "skip_loopback:",
        "skip_link_local:",
        "include_interfaces:",
        "exclude_interfaces:",
        "backup_interfaces:",
        "max_subflows_per_interface:",
        "set_userspace_pm:",
        "events_rcvbuf:",
        "nice:",
        "realtime_priority:",
        "restore_path_manager_on_exit:",
        "interval_ms:",
        "request_timeout_ms:",
        "backoff_initial_ms:",
        "backoff_max_ms:",
        "max_retries:",
        "level:",
        "format:",
        "socket:",
        "metered:",
        "state_directory:",
        "save_interval_s:",
        "budgets:",
        "rules:",
    ] {
        assert!(out.contains(key), "{key} missing from\n{out}");
    }
    // Rules render their resolved parameters; port ranges as strings, single ports as ints.
    let out = ok(FULL).effective_yaml();
    assert!(out.contains("port: 443\n"), "{out}");
    assert!(out.contains("port: 8000-8100\n"), "{out}");
    assert!(out.contains("policy: rtt-based\n"), "{out}");
}

#[test]
fn address_filter() {
    let f = ok(FULL).addresses;
    assert!(f.interface_allowed("eth0"));
    assert!(f.interface_allowed("wlan1"));
    assert!(!f.interface_allowed("wlan12"));
    assert!(!f.interface_allowed("docker0"), "not included");
    assert!(!f.interface_allowed("wwan0"), "not included");
    assert!(f.is_backup("wwan0") && !f.is_backup("eth0"));
    let f = AddressFilter {
        exclude_interfaces: vec!["eth1".into()],
        ..AddressFilter::default()
    };
    assert!(f.interface_allowed("anything"));
    assert!(!f.interface_allowed("eth1"));
    assert!(!f.address_allowed(ip("127.0.0.1")));
    assert!(!f.address_allowed(ip("::1")));
    assert!(!f.address_allowed(ip("169.254.1.1")));
    assert!(!f.address_allowed(ip("fe80::1")));
    assert!(!f.address_allowed(ip("febf::1")));
    assert!(f.address_allowed(ip("fec0::1")));
    assert!(f.address_allowed(ip("10.0.0.1")));
    assert!(f.address_allowed(ip("2001:db8::1")));
    assert!(f.allows("eth0", ip("10.0.0.1")) && !f.allows("eth1", ip("10.0.0.1")));
    let open = AddressFilter {
        skip_loopback: false,
        skip_link_local: false,
        ..f
    };
    assert!(open.address_allowed(ip("127.0.0.1")) && open.address_allowed(ip("fe80::1")));
}

#[test]
fn policy_names() {
    for p in plugin::all() {
        assert_eq!(find_policy(p.name), Ok(*p));
        assert_eq!(p.to_string(), p.name);
    }
    assert_eq!(RTT_BASED.to_string(), "rtt-based");
    assert_eq!(RTT_BASED.section, "rtt_based");
    assert!(find_policy("rtt_based").is_err());
    let c: Cidr = "::/0".parse().unwrap();
    assert_eq!(c.to_string(), "::/0");
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mptcp-pmd-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn load_reads_files_and_names_them_in_errors() {
    let good = temp_file("good.yaml", b"policy: ndiffports\n");
    assert_eq!(load(&good).unwrap().policy, &NDIFFPORTS);

    let bad = temp_file("bad.yaml", b"policy: ndiffports\npoll:\n  interval_ms: 1\n");
    let e = load(&bad).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3:16: poll.interval_ms must be an integer between 10 and 3600000, got 1",
            bad.display()
        )
    );

    let latin1 = temp_file("latin1.yaml", b"policy: fullmesh\n# caf\xe9\n");
    let e = load(&latin1).unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::Parse {
                line: 2,
                col: 6,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("{}:2:6: the file is not valid UTF-8", latin1.display())
    );

    let missing = good.with_file_name("missing.yaml");
    let e = load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(
        e.to_string().starts_with(&format!(
            "{}: cannot read configuration: ",
            missing.display()
        )),
        "{e}"
    );
    assert_eq!(e.location(), None);
    let _ = std::fs::remove_dir_all(good.parent().unwrap());
}

/// Parsing must return (Ok or a located error) for anything, never panic or hang.
fn survives(input: &str) {
    if let Err(e) = parse(input, "fuzz") {
        let (line, col) = e.location().expect("parse errors are located");
        assert!(line >= 1 && col >= 1, "{input:?}: {e}");
        assert!(!e.to_string().contains('\n'), "{input:?}: {e}");
    }
}

#[test]
fn garbage_does_not_panic() {
    let nasty = [
        "\0",
        "\u{feff}",
        "\u{feff}\u{feff}",
        "{",
        "}",
        "[",
        "]",
        ":",
        "- - -",
        "? ? ?",
        "&",
        "*",
        "*a",
        "&a",
        "&a [*a]",
        "!!",
        "!<tag:yaml.org,2002:str> x",
        "%YAML 1.1\n---\n",
        "%TAG ! x\n",
        "'",
        "\"",
        "\"\\",
        "'''",
        "|",
        ">",
        "|-\n x",
        "key: |\n\t",
        "\t",
        "\r\r\r",
        "\r\n:",
        "policy: fullmesh\0",
        "policy: *",
        "policy: &a\n",
        "<<: *a",
        "<<: {policy: fullmesh}",
        "rules: [[[[[]]]]]",
        "rules: {a: b}",
        "rules: [1, 2]",
        "rules: [{port: [1]}]",
        "rules:\n  - port: -1\n    policy: fullmesh",
        "rules:\n- port: 0x1BB\n  policy: fullmesh",
        "fullmesh: {max_subflows: 0x10}",
        "fullmesh: {max_subflows: 1e2}",
        "fullmesh: {max_subflows: .inf}",
        "rtt_based: {backup_ratio: -.inf}",
        "rtt_based: {backup_ratio: 1e999}",
        "rtt_based: {backup_ratio: 1_0}",
        "\u{202e}policy: fullmesh",
        "policy: \"\u{7}\u{1b}\"",
        "? [a]\n: b",
        "[a]: b",
        "{a: b}: c",
        "1: 2",
        "~: x",
        "null: null",
        ".inf: 1",
        "policy: fullmesh\n...\n---\n",
        "--- |\n  text",
        "--- 5",
    ];
    for input in nasty {
        survives(input);
    }
    // Deep nesting and alias expansion bombs are refused by the parser's budgets.
    survives(&"[".repeat(100_000));
    survives(&format!(
        "rules: {}{}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    ));
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        bomb.push_str(&format!(
            "b{i}: &b{i} [{}]\n",
            vec![
                if i == 1 {
                    "*a".to_string()
                } else {
                    format!("*b{}", i - 1)
                };
                10
            ]
            .join(", ")
        ));
    }
    survives(&bomb);
    // Prefixes of the shipped file (truncated mid-token, mid-comment, mid-line); every
    // third one keeps the debug-build test fast.
    for (i, _) in SHIPPED.char_indices().step_by(3) {
        survives(&SHIPPED[..i]);
    }
    // Pseudo-random printable soup, deterministic (xorshift), biased toward YAML syntax.
    let alphabet: Vec<char> = "abcpolicyfullmesh:- \n\t[]{},&*!|>'\"#?%@`~0123456789.\\\u{e9}"
        .chars()
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut s = String::new();
        let len = (state % 64) as usize;
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            s.push(alphabet[(state % alphabet.len() as u64) as usize]);
        }
        survives(&s);
    }
}

#[test]
fn shipped_example_documents_and_builds_every_registered_policy() {
    let c = ok(SHIPPED);
    for p in plugin::all() {
        // Its section is in the example, with every key it renders (so every key is documented).
        let header = format!("\n{}:\n", p.section);
        assert!(
            SHIPPED.contains(&header),
            "{} has no section in the example",
            p.name
        );
        let spec = c.spec_of(p.name).unwrap();
        assert_eq!(spec.plugin, *p);
        let rendered = serde_saphyr::to_string(spec).unwrap();
        for line in rendered.lines().filter(|l| l.contains(':')) {
            let key = line.split(':').next().unwrap().trim();
            assert!(
                SHIPPED.contains(&format!("  {key}:")),
                "{}.{key} is not in the shipped example",
                p.section
            );
        }
        // And the policy builds from it, as the daemon builds it per connection.
        let _policy = spec.build();
        // `policy: <name>` alone selects it.
        assert_eq!(ok(&format!("policy: {}\n", p.name)).policy, *p);
    }
}

#[test]
fn null_is_none_where_a_value_is_optional_and_empty_sections_are_defaults() {
    // Optional values, sections and lists take `~` as none / empty / defaults ...
    for yaml in [
        "metrics: {listen: ~}\n",
        "metrics: {listen: null}\n",
        "kernel: ~\n",
        "addresses: {include_interfaces: ~}\n",
        "rules: ~\n",
        "policy:\n",
    ] {
        assert_eq!(ok(yaml), Config::default(), "{yaml:?}");
    }
    // ... a value that is needed does not (errors.rs has the messages).
    for yaml in [
        "policy: ~\n",
        "policy: null\n",
        "kernel: {nice: ~}\n",
        "kernel: {nice:}\n",
        "log: {format: null}\n",
        "control: {socket:}\n",
        "ndiffports: {subflows: ~}\n",
        "rules: [{port: 443, policy: ~}]\n",
    ] {
        assert!(parse(yaml, "t").is_err(), "{yaml:?} was accepted");
    }
}

#[test]
fn decimal_numbers_and_quoted_text_are_read_as_written() {
    // Leading zeros and a plus sign are still decimal (YAML 1.2).
    assert_eq!(ok("kernel: {nice: +5}").kernel.nice, 5);
    assert_eq!(ok("poll: {interval_ms: 0250}").poll.interval_ms, 250);
    assert_eq!(
        ok("rtt_based: {backup_ratio: 3e0}")
            .params::<RttBasedConfig>()
            .unwrap()
            .backup_ratio,
        3.0
    );
    // Quoted, a non-decimal spelling is text, kept as written.
    let c = ok(r#"addresses: {include_interfaces: ["0x1", "1_0", '0o7']}"#);
    assert_eq!(c.addresses.include_interfaces, ["0x1", "1_0", "0o7"]);
    // A plain decimal number where text is expected is the number's text (YAML reads `007` as
    // the number 7): quote it to keep the leading zeros.
    assert_eq!(
        ok("rules: [{interface: 007, policy: fullmesh}]").rules[0]
            .interface
            .as_deref(),
        Some("7")
    );
}

#[test]
fn a_rule_may_give_announce_the_server_side_and_client_policies_any_side() {
    let c = ok("rules: [{side: server, policy: announce}, {side: client, policy: fullmesh}]");
    assert_eq!(c.rules.len(), 2);
    assert!(parse("rules: [{side: client, policy: announce}]", "t").is_err());
    // Without a side matcher the rule may match either side: not refused.
    assert_eq!(ok("rules: [{port: 443, policy: announce}]").rules.len(), 1);
}

#[test]
fn interface_lists_that_agree_are_accepted() {
    // Excluding one of an included glob, and a backup that is included: both meaningful.
    let c = ok(
        r#"addresses: {include_interfaces: ["eth*"], exclude_interfaces: [eth1], backup_interfaces: [eth2, "wwan*"]}"#,
    );
    assert!(c.addresses.interface_allowed("eth0") && !c.addresses.interface_allowed("eth1"));
    // A backup glob overlapping an exclude glob is not a contradiction for every name.
    assert!(parse(
        r#"addresses: {exclude_interfaces: ["wwan1"], backup_interfaces: ["wwan*"]}"#,
        "t"
    )
    .is_ok());
}
