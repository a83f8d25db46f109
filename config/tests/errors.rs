//! Every class of malformed configuration, with the exact error (and location) it gives.
//!
//! The same table generates `docs/CONFIG-ERRORS.md`: `MPTCP_PMD_BLESS=1 cargo test -p
//! mptcp-pmd-config --test errors` rewrites it from the actual outputs; without the
//! variable the test fails if the document is out of date.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use mptcp_pmd_config::{parse, ConfigError};

const FILE: &str = "/etc/mptcp-pm.yaml";

/// (what is wrong, YAML, expected `Display` of the error, expected kind and key).
struct Case {
    what: &'static str,
    yaml: &'static str,
    want: &'static str,
    /// `None` for `Parse` errors, `Some(key)` for `Invalid`.
    key: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        what: "unknown policy",
        yaml: "policy: fulmesh\n",
        want: r#"/etc/mptcp-pm.yaml:1:9: unknown policy "fulmesh", expected one of fullmesh, ndiffports, rtt-based, active-standby, announce"#,
        key: Some("policy"),
    },
    Case {
        what: "unknown top-level key",
        yaml: "policy: fullmesh\npolcy: fullmesh\n",
        want: "/etc/mptcp-pm.yaml:2:1: unknown field `polcy`, expected one of policy, fullmesh, ndiffports, rtt_based, active_standby, announce, addresses, kernel, poll, subflow, log, control, metrics, metered, rules",
        key: None,
    },
    Case {
        what: "unknown nested key",
        yaml: "fullmesh:\n  max_subflow: 4\n",
        want: "/etc/mptcp-pm.yaml:2:3: unknown field `max_subflow`, expected one of max_subflows",
        key: None,
    },
    Case {
        what: "unknown key in a rule's override",
        yaml: "rules:\n  - port: 443\n    policy: ndiffports\n    ndiffports: {subflow: 3}\n",
        want: "/etc/mptcp-pm.yaml:4:18: unknown field `subflow`, expected one of subflows",
        key: None,
    },
    Case {
        what: "integer out of range",
        yaml: "fullmesh:\n  max_subflows: 0\n",
        want: "/etc/mptcp-pm.yaml:2:17: fullmesh.max_subflows must be an integer between 1 and 64, got 0",
        key: Some("fullmesh.max_subflows"),
    },
    Case {
        what: "integer too large",
        yaml: "ndiffports:\n  subflows: 65\n",
        want: "/etc/mptcp-pm.yaml:2:13: ndiffports.subflows must be an integer between 1 and 64, got 65",
        key: Some("ndiffports.subflows"),
    },
    Case {
        what: "negative integer",
        yaml: "poll:\n  interval_ms: -5\n",
        want: "/etc/mptcp-pm.yaml:2:16: poll.interval_ms must be an integer between 10 and 3600000, got -5",
        key: Some("poll.interval_ms"),
    },
    Case {
        what: "string where an integer is expected",
        yaml: "fullmesh:\n  max_subflows: eight\n",
        want: r#"/etc/mptcp-pm.yaml:2:17: fullmesh.max_subflows must be an integer between 1 and 64, got "eight""#,
        key: Some("fullmesh.max_subflows"),
    },
    Case {
        what: "fraction where an integer is expected",
        yaml: "subflow:\n  max_retries: 1.5\n",
        want: "/etc/mptcp-pm.yaml:2:16: subflow.max_retries must be an integer between 0 and 1000, got 1.5",
        key: Some("subflow.max_retries"),
    },
    Case {
        what: "huge integer",
        yaml: "kernel:\n  events_rcvbuf: 99999999999\n",
        want: "/etc/mptcp-pm.yaml:2:18: kernel.events_rcvbuf must be an integer between 4096 and 2147483647, got 99999999999",
        key: Some("kernel.events_rcvbuf"),
    },
    Case {
        what: "nice value out of range",
        yaml: "kernel:\n  nice: -21\n",
        want: "/etc/mptcp-pm.yaml:2:9: kernel.nice must be an integer between -20 and 19, got -21",
        key: Some("kernel.nice"),
    },
    Case {
        what: "real-time priority out of range",
        yaml: "kernel:\n  realtime_priority: 100\n",
        want: "/etc/mptcp-pm.yaml:2:22: kernel.realtime_priority must be an integer between 0 and 99, got 100",
        key: Some("kernel.realtime_priority"),
    },
    Case {
        what: "list where a single value is expected",
        yaml: "fullmesh:\n  max_subflows: [1]\n",
        want: "/etc/mptcp-pm.yaml:2:3: invalid type: sequence, expected a single value (number, true/false or string)",
        key: None,
    },
    Case {
        what: "list where a policy name is expected",
        yaml: "policy: [fullmesh]\n",
        want: "/etc/mptcp-pm.yaml:1:9: expected a single value, not a list or mapping",
        key: None,
    },
    Case {
        what: "scalar where a section is expected",
        yaml: "fullmesh: 3\n",
        want: "/etc/mptcp-pm.yaml:1:11: expected a mapping (indented `key: value` lines or `{key: value}`)",
        key: None,
    },
    Case {
        what: "scalar where a list is expected",
        yaml: "addresses:\n  exclude_interfaces: docker*\n",
        want: "/etc/mptcp-pm.yaml:2:23: expected a list (`[a, b]` or `- a` lines)",
        key: None,
    },
    Case {
        what: "not a mapping at all",
        yaml: "- policy: fullmesh\n",
        want: "/etc/mptcp-pm.yaml:1:1: expected a mapping (indented `key: value` lines or `{key: value}`)",
        key: None,
    },
    Case {
        what: "yes/no are not booleans",
        yaml: "rtt_based:\n  close_on_loss: yes\n",
        want: r#"/etc/mptcp-pm.yaml:2:18: rtt_based.close_on_loss must be true or false, got "yes""#,
        key: Some("rtt_based.close_on_loss"),
    },
    Case {
        what: "number where a boolean is expected",
        yaml: "addresses:\n  skip_loopback: 0\n",
        want: "/etc/mptcp-pm.yaml:2:18: addresses.skip_loopback must be true or false, got 0",
        key: Some("addresses.skip_loopback"),
    },
    Case {
        what: "ratio out of range",
        yaml: "rtt_based:\n  backup_ratio: 0.5\n",
        want: "/etc/mptcp-pm.yaml:2:17: rtt_based.backup_ratio must be a number greater than 1 and at most 100, got 0.5",
        key: Some("rtt_based.backup_ratio"),
    },
    Case {
        what: "threshold out of range",
        yaml: "rtt_based:\n  loss_threshold: 1.5\n",
        want: "/etc/mptcp-pm.yaml:2:19: rtt_based.loss_threshold must be a number greater than 0 and at most 1, got 1.5",
        key: Some("rtt_based.loss_threshold"),
    },
    Case {
        what: "not-a-number float",
        yaml: "rtt_based:\n  backup_ratio: .nan\n",
        want: "/etc/mptcp-pm.yaml:2:17: value `.nan` is not a finite number",
        key: None,
    },
    Case {
        what: "restore_ratio >= backup_ratio",
        yaml: "rtt_based:\n  backup_ratio: 2.0\n  restore_ratio: 2.5\n",
        want: "/etc/mptcp-pm.yaml:3:18: rtt_based.restore_ratio (2.5) must be less than rtt_based.backup_ratio (2), or subflows would flap between backup and active",
        key: Some("rtt_based.restore_ratio"),
    },
    Case {
        what: "rule override breaks restore_ratio < backup_ratio",
        yaml: "rules:\n  - port: 443\n    policy: rtt-based\n    rtt_based:\n      backup_ratio: 1.2\n",
        want: "/etc/mptcp-pm.yaml:5:21: rules[0].rtt_based.restore_ratio (1.5) must be less than rules[0].rtt_based.backup_ratio (1.2), or subflows would flap between backup and active",
        key: Some("rules[0].rtt_based.backup_ratio"),
    },
    Case {
        what: "active_standby hold_max_ms < hold_ms",
        yaml: "active_standby:\n  hold_ms: 5000\n  hold_max_ms: 1000\n",
        want: "/etc/mptcp-pm.yaml:3:16: active_standby.hold_max_ms (1000) must be at least active_standby.hold_ms (5000): it caps the hold, which starts there",
        key: Some("active_standby.hold_max_ms"),
    },
    Case {
        what: "active_standby stall_floor_ms < sample_ms",
        yaml: "active_standby:\n  sample_ms: 200\n",
        want: "/etc/mptcp-pm.yaml:2:14: active_standby.stall_floor_ms (100) must be at least active_standby.sample_ms (200): a stall is only seen on a sample",
        key: Some("active_standby.sample_ms"),
    },
    Case {
        what: "active_standby standby interface that can never match",
        yaml: "active_standby:\n  standby_interfaces: [\"wwan 0\"]\n",
        want: "/etc/mptcp-pm.yaml:2:24: active_standby.standby_interfaces[0] must be an interface name or glob (interface names cannot contain '/', ':' or whitespace), got \"wwan 0\"",
        key: Some("active_standby.standby_interfaces[0]"),
    },
    Case {
        what: "backoff_max_ms < backoff_initial_ms",
        yaml: "subflow:\n  backoff_max_ms: 100\n",
        want: "/etc/mptcp-pm.yaml:2:19: subflow.backoff_max_ms (100) must not be less than subflow.backoff_initial_ms (500)",
        key: Some("subflow.backoff_max_ms"),
    },
    Case {
        what: "unknown log level",
        yaml: "log:\n  level: verbose\n",
        want: r#"/etc/mptcp-pm.yaml:2:10: unknown log level "verbose", expected one of critical, error, warning, info, debug, trace"#,
        key: Some("log.level"),
    },
    Case {
        what: "unknown log format",
        yaml: "log:\n  format: xml\n",
        want: r#"/etc/mptcp-pm.yaml:2:11: unknown log format "xml", expected one of term, json"#,
        key: Some("log.format"),
    },
    Case {
        what: "relative control socket path",
        yaml: "control:\n  socket: run/mptcp-pmd.sock\n",
        want: r#"/etc/mptcp-pm.yaml:2:11: invalid control.socket "run/mptcp-pmd.sock": expected an absolute path"#,
        key: Some("control.socket"),
    },
    Case {
        what: "control group with a colon",
        yaml: "control:\n  group: \"wheel:x\"\n",
        want: r#"/etc/mptcp-pm.yaml:2:10: invalid control.group "wheel:x": ':' cannot be part of a group name"#,
        key: Some("control.group"),
    },
    Case {
        what: "metrics listen address without a port",
        yaml: "metrics:\n  listen: 127.0.0.1\n",
        want: r#"/etc/mptcp-pm.yaml:2:11: invalid metrics.listen "127.0.0.1": expected an address and port such as "127.0.0.1:9464" or "[::1]:9464""#,
        key: Some("metrics.listen"),
    },
    Case {
        what: "probe interval out of range",
        yaml: "rtt_based:\n  probe_s: 100000\n",
        want: "/etc/mptcp-pm.yaml:2:12: rtt_based.probe_s must be an integer between 0 and 86400, got 100000",
        key: Some("rtt_based.probe_s"),
    },
    Case {
        what: "bad interface glob",
        yaml: "addresses:\n  exclude_interfaces:\n    - docker*\n    - \"eth 0\"\n",
        want: r#"/etc/mptcp-pm.yaml:4:7: invalid interface pattern "eth 0": interface names cannot contain '/', ':' or whitespace"#,
        key: Some("addresses.exclude_interfaces[1]"),
    },
    Case {
        what: "interface name too long",
        yaml: "addresses:\n  backup_interfaces: [averyveryverylongname0]\n",
        want: r#"/etc/mptcp-pm.yaml:2:23: invalid interface pattern "averyveryverylongname0": interface names are at most 15 bytes long"#,
        key: Some("addresses.backup_interfaces[0]"),
    },
    Case {
        what: "bad CIDR",
        yaml: "rules:\n  - remote: 198.51.100/24\n    policy: ndiffports\n",
        want: r#"/etc/mptcp-pm.yaml:2:13: invalid CIDR "198.51.100/24", expected an address with an optional prefix length, e.g. 198.51.100.0/24 or 2001:db8::/32"#,
        key: Some("rules[0].remote"),
    },
    Case {
        what: "bad prefix length (IPv4)",
        yaml: "rules:\n  - remote: 198.51.100.0/33\n    policy: ndiffports\n",
        want: r#"/etc/mptcp-pm.yaml:2:13: invalid prefix length in "198.51.100.0/33", expected 0..=32"#,
        key: Some("rules[0].remote"),
    },
    Case {
        what: "bad prefix length (IPv6)",
        yaml: "rules:\n  - remote: 2001:db8::/129\n    policy: ndiffports\n",
        want: r#"/etc/mptcp-pm.yaml:2:13: invalid prefix length in "2001:db8::/129", expected 0..=128"#,
        key: Some("rules[0].remote"),
    },
    Case {
        what: "CIDR with host bits set",
        yaml: "rules:\n  - remote: 198.51.100.7/24\n    policy: ndiffports\n",
        want: r#"/etc/mptcp-pm.yaml:2:13: "198.51.100.7/24" has host bits set, did you mean 198.51.100.0/24?"#,
        key: Some("rules[0].remote"),
    },
    Case {
        what: "reversed port range",
        yaml: "rules:\n  - port: \"9000-8000\"\n    policy: ndiffports\n",
        want: r#"/etc/mptcp-pm.yaml:2:11: invalid port range "9000-8000": the first port must not be greater than the second"#,
        key: Some("rules[0].port"),
    },
    Case {
        what: "port out of range",
        yaml: "rules:\n  - port: 70000\n    policy: ndiffports\n",
        want: r#"/etc/mptcp-pm.yaml:2:11: invalid port "70000", expected a port 1-65535 or a range "LO-HI" such as "8000-8100""#,
        key: Some("rules[0].port"),
    },
    Case {
        what: "unknown side",
        yaml: "rules:\n  - side: both\n    policy: announce\n",
        want: r#"/etc/mptcp-pm.yaml:2:11: unknown side "both", expected one of client, server"#,
        key: Some("rules[0].side"),
    },
    Case {
        what: "local port out of range",
        yaml: "rules:\n  - side: server\n    local_port: \"0-443\"\n    policy: announce\n",
        want: r#"/etc/mptcp-pm.yaml:3:17: invalid port "0-443", expected a port 1-65535 or a range "LO-HI" such as "8000-8100""#,
        key: Some("rules[0].local_port"),
    },
    Case {
        what: "announce: a port",
        yaml: "policy: announce\nannounce:\n  port: 6000\n",
        want: "/etc/mptcp-pm.yaml:3:9: announce.port (6000) is not supported: an announced port needs an MPTCP listener bound to exactly that address and port, which mptcp-pmd does not open, so every join to it would be refused; leave it out to announce the addresses on the connection's own port, where the application's wildcard listener accepts the joins",
        key: Some("announce.port"),
    },
    Case {
        what: "announce: a prefix with host bits",
        yaml: "announce:\n  cidrs: [198.51.100.0/24, 10.1.0.0/8]\n",
        want: r#"/etc/mptcp-pm.yaml:2:28: announce.cidrs[1] must be a prefix without host bits (did you mean 10.0.0.0/8?), got "10.1.0.0/8""#,
        key: Some("announce.cidrs[1]"),
    },
    Case {
        what: "announce: an interface pattern that cannot match",
        yaml: "announce:\n  exclude_interfaces: [\"wwan*\", \"eth 0\"]\n",
        want: r#"/etc/mptcp-pm.yaml:2:33: announce.exclude_interfaces[1] must be an interface name or glob (interface names cannot contain '/', ':' or whitespace), got "eth 0""#,
        key: Some("announce.exclude_interfaces[1]"),
    },
    Case {
        what: "announce: limit out of range",
        yaml: "announce:\n  max_per_connection: 9\n",
        want: "/etc/mptcp-pm.yaml:2:23: announce.max_per_connection must be an integer between 1 and 8, got 9",
        key: Some("announce.max_per_connection"),
    },
    Case {
        what: "rule without a matcher",
        yaml: "rules:\n  - port: 443\n    policy: fullmesh\n  - policy: ndiffports\n",
        want: "/etc/mptcp-pm.yaml:4:5: rules[1] matches every connection: give at least one of remote, port, interface, local_port, side (or set the top-level policy instead)",
        key: Some("rules[1]"),
    },
    Case {
        what: "rule without a policy",
        yaml: "rules:\n  - remote: 10.0.0.0/8\n",
        want: "/etc/mptcp-pm.yaml:2:5: rules[0] has no policy, expected policy: fullmesh, ndiffports, rtt-based, active-standby or announce",
        key: Some("rules[0].policy"),
    },
    Case {
        what: "rule with an unknown policy",
        yaml: "rules:\n  - remote: 10.0.0.0/8\n    policy: rtt\n",
        want: r#"/etc/mptcp-pm.yaml:3:13: unknown policy "rtt", expected one of fullmesh, ndiffports, rtt-based, active-standby, announce"#,
        key: Some("rules[0].policy"),
    },
    Case {
        what: "rule override for another policy",
        yaml: "rules:\n  - port: 443\n    policy: fullmesh\n    ndiffports: {subflows: 4}\n",
        want: "/etc/mptcp-pm.yaml:4:17: rules[0] sets ndiffports: parameters but its policy is fullmesh; use fullmesh: or change the policy",
        key: Some("rules[0].ndiffports"),
    },
    Case {
        what: "rule override out of range",
        yaml: "rules:\n  - port: 443\n    policy: ndiffports\n    ndiffports:\n      subflows: 0\n",
        want: "/etc/mptcp-pm.yaml:5:17: rules[0].ndiffports.subflows must be an integer between 1 and 64, got 0",
        key: Some("rules[0].ndiffports.subflows"),
    },
    Case {
        what: "duplicate key",
        yaml: "policy: fullmesh\npolicy: ndiffports\n",
        want: "/etc/mptcp-pm.yaml:2:1: duplicate mapping key `policy` is not allowed here",
        key: None,
    },
    Case {
        what: "malformed YAML: unclosed flow mapping",
        yaml: "fullmesh: {max_subflows: 4\npoll: {}\n",
        want: "/etc/mptcp-pm.yaml:2:5: while parsing a flow mapping, did not find expected ',' or '}'",
        key: None,
    },
    Case {
        what: "malformed YAML: tab indentation",
        yaml: "fullmesh:\n\tmax_subflows: 4\n",
        want: "/etc/mptcp-pm.yaml:2:2: tabs disallowed within this context (block indentation)",
        key: None,
    },
    Case {
        what: "malformed YAML: bad indentation",
        yaml: "fullmesh:\n    max_subflows: 4\n  poll: {}\n",
        want: "/etc/mptcp-pm.yaml:3:3: while parsing a block mapping, did not find expected key",
        key: None,
    },
    Case {
        what: "two documents",
        yaml: "policy: fullmesh\n---\npolicy: ndiffports\n",
        want: "/etc/mptcp-pm.yaml:3:1: only single YAML document expected but multiple found",
        key: None,
    },
    Case {
        what: "YAML tag",
        yaml: "policy: !custom fullmesh\n",
        want: "/etc/mptcp-pm.yaml:1:17: unsupported tag `!custom`",
        key: None,
    },
    Case {
        what: "control characters are escaped in messages",
        yaml: "policy: \"\\e[31mred\"\n",
        want: r#"/etc/mptcp-pm.yaml:1:9: unknown policy "\u{1b}[31mred", expected one of fullmesh, ndiffports, rtt-based, active-standby, announce"#,
        key: Some("policy"),
    },
    Case {
        what: "huge integer: quoted as written, not rounded",
        yaml: "kernel:\n  events_rcvbuf: 99999999999999999999999999999999999\n",
        want: "/etc/mptcp-pm.yaml:2:18: kernel.events_rcvbuf must be an integer between 4096 and 2147483647, got 99999999999999999999999999999999999",
        key: Some("kernel.events_rcvbuf"),
    },
    Case {
        what: "integer beyond any setting",
        yaml: "subflow:\n  max_retries: 1000000000000000000000000000000000000000000\n",
        want: "/etc/mptcp-pm.yaml:2:16: the integer 1000000000000000000000000000000000000000000 is too large for any setting",
        key: None,
    },
    Case {
        what: "huge number with an exponent",
        yaml: "rtt_based:\n  backup_ratio: 1e35\n",
        want: "/etc/mptcp-pm.yaml:2:17: rtt_based.backup_ratio must be a number greater than 1 and at most 100, got 1e35",
        key: Some("rtt_based.backup_ratio"),
    },
    Case {
        what: "hexadecimal number",
        yaml: "fullmesh:\n  max_subflows: 0x10\n",
        want: "/etc/mptcp-pm.yaml:2:17: 0x10 is not a decimal number (YAML would read it as 16): write numbers in decimal, or quote the value if it is text",
        key: None,
    },
    Case {
        what: "octal number",
        yaml: "kernel:\n  nice: 0o10\n",
        want: "/etc/mptcp-pm.yaml:2:9: 0o10 is not a decimal number (YAML would read it as 8): write numbers in decimal, or quote the value if it is text",
        key: None,
    },
    Case {
        what: "number with an underscore",
        yaml: "poll:\n  interval_ms: 1_000\n",
        want: "/etc/mptcp-pm.yaml:2:16: 1_000 is not a decimal number (YAML would read it as 1000): write numbers in decimal, or quote the value if it is text",
        key: None,
    },
    Case {
        what: "unquoted hexadecimal where text is expected",
        yaml: "rules:\n  - interface: 0x1\n    policy: fullmesh\n",
        want: "/etc/mptcp-pm.yaml:2:16: 0x1 is not a decimal number (YAML would read it as 1): write numbers in decimal, or quote the value if it is text",
        key: None,
    },
    Case {
        what: "a YAML tag: !!binary",
        yaml: "policy: !!binary ZnVsbG1lc2g=\n",
        want: "/etc/mptcp-pm.yaml:1:18: the YAML tag `!!binary` is not supported here: write the value itself (in quotes if it is text)",
        key: None,
    },
    Case {
        what: "a YAML tag: !!str",
        yaml: "ndiffports:\n  subflows: !!str 4\n",
        want: "/etc/mptcp-pm.yaml:2:19: the YAML tag `!!str` is not supported here: write the value itself (in quotes if it is text)",
        key: None,
    },
    Case {
        what: "null policy",
        yaml: "policy: ~\n",
        want: "/etc/mptcp-pm.yaml:1:9: policy: `~` or `null` names no policy: leave the key out for the default (fullmesh), or name one of fullmesh, ndiffports, rtt-based, active-standby, announce",
        key: Some("policy"),
    },
    Case {
        what: "null where a number is needed",
        yaml: "kernel:\n  nice: null\n",
        want: "/etc/mptcp-pm.yaml:2:9: kernel.nice must be an integer between -20 and 19, got nothing (leave the key out for its default)",
        key: Some("kernel.nice"),
    },
    Case {
        what: "null where text is needed",
        yaml: "control:\n  socket: ~\n",
        want: "/etc/mptcp-pm.yaml:2:11: control.socket needs a value (`~`, `null` and nothing are not values here); leave the key out for its default",
        key: Some("control.socket"),
    },
    Case {
        what: "brackets in an interface glob",
        yaml: "addresses:\n  include_interfaces: [\"eth[01]\"]\n",
        want: r#"/etc/mptcp-pm.yaml:2:24: invalid interface pattern "eth[01]": '[' and ']' are not wildcards here, only '*' and '?' are"#,
        key: Some("addresses.include_interfaces[0]"),
    },
    Case {
        what: "an interface both included and excluded",
        yaml: "addresses:\n  include_interfaces: [eth1, wlan0]\n  exclude_interfaces: [\"eth*\"]\n",
        want: r#"/etc/mptcp-pm.yaml:2:24: addresses.include_interfaces[0] "eth1" is excluded by addresses.exclude_interfaces[0] "eth*": exclude wins, so it is never used; remove it from one of the lists"#,
        key: Some("addresses.include_interfaces[0]"),
    },
    Case {
        what: "a backup interface that is excluded",
        yaml: "addresses:\n  exclude_interfaces: [wwan0]\n  backup_interfaces: [eth1, wwan0]\n",
        want: r#"/etc/mptcp-pm.yaml:3:29: addresses.backup_interfaces[1] "wwan0" is excluded by addresses.exclude_interfaces[0] "wwan0": an excluded interface gets no subflows, so it cannot carry backup ones; remove it from one of the lists"#,
        key: Some("addresses.backup_interfaces[1]"),
    },
    Case {
        what: "announce for client-side connections",
        yaml: "rules:\n  - side: client\n    policy: announce\n",
        want: "/etc/mptcp-pm.yaml:3:13: rules[0] gives side: client connections the policy announce, which acts only on connections accepted here (side: server): they would get no path management at all; use fullmesh, ndiffports, rtt-based or active-standby for side: client, or side: server",
        key: Some("rules[0].policy"),
    },
    Case {
        what: "metrics on port 0",
        yaml: "metrics:\n  listen: \"[::1]:0\"\n",
        want: r#"/etc/mptcp-pm.yaml:2:11: invalid metrics.listen "[::1]:0": port 0 would make the kernel pick a port, which no scraper could know; give the port to serve on"#,
        key: Some("metrics.listen"),
    },
    Case {
        what: "metered budget with an unknown unit",
        yaml: "metered:\n  budgets:\n    - {interfaces: [wwan0], budget: 10 gigabytes, period: month}\n",
        want: r#"/etc/mptcp-pm.yaml:3:37: invalid metered.budgets[0].budget "10 gigabytes": expected a number of bytes, or a number and a unit (B, kB, KB, MB, GB, TB, KiB, MiB, GiB, TiB) such as "10GiB""#,
        key: Some("metered.budgets[0].budget"),
    },
    Case {
        what: "metered budget of 0 bytes",
        yaml: "metered:\n  budgets:\n    - {interfaces: [wwan0], budget: 0, period: day}\n",
        want: "/etc/mptcp-pm.yaml:3:37: invalid metered.budgets[0].budget 0: a budget of 0 bytes is spent before it starts; give at least 1",
        key: Some("metered.budgets[0].budget"),
    },
    Case {
        what: "metered monthly reset without a day",
        yaml: "metered:\n  budgets:\n    - interfaces: [\"wwan*\"]\n      budget: 10GiB\n      period: month\n      reset: \"04:00\"\n",
        want: r#"/etc/mptcp-pm.yaml:6:14: metered.budgets[0].reset "04:00" has no day, but the period is month: write "day D 04:00" (D 1-31)"#,
        key: Some("metered.budgets[0].reset"),
    },
    Case {
        what: "metered budget without a period",
        yaml: "metered:\n  budgets:\n    - {interfaces: [wwan0], budget: 1GB}\n",
        want: "/etc/mptcp-pm.yaml:3:7: missing field `period`",
        key: None,
    },
    Case {
        what: "two metered budgets with the same interfaces",
        yaml: "metered:\n  budgets:\n    - {interfaces: [wwan0], budget: 1GB, period: day}\n    - {interfaces: [wwan0], budget: 9GB, period: month}\n",
        want: "/etc/mptcp-pm.yaml:4:20: metered.budgets[1].interfaces are the same as those of metered.budgets[0]: a budget is known by its interfaces; merge the two",
        key: Some("metered.budgets[1].interfaces"),
    },
    Case {
        what: "a subflow cap of 0",
        yaml: "addresses:\n  max_subflows_per_interface: [{interfaces: [\"wwan*\"], max: 0}]\n",
        want: "/etc/mptcp-pm.yaml:2:61: addresses.max_subflows_per_interface[0].max must be an integer between 1 and 64, got 0",
        key: Some("addresses.max_subflows_per_interface[0].max"),
    },
    Case {
        what: "nested too deep",
        yaml: "rules: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
        want: "/etc/mptcp-pm.yaml:1:39: refused: it is nested more than 32 levels deep; a configuration is a few hundred short values",
        key: None,
    },
];

/// Inputs too long to show whole: (what is wrong, what the input is, the input, expected).
struct LongCase {
    what: &'static str,
    input: &'static str,
    yaml: fn() -> String,
    want: &'static str,
}

const LONG_CASES: &[LongCase] = &[
    LongCase {
        what: "a 100 KB key",
        input: "a line of 100,000 `k` then `: 1`",
        yaml: || format!("{}: 1\n", "k".repeat(100_000)),
        want: r#"/etc/mptcp-pm.yaml:1:1: this key ("kkkkkkkkkkkkkkkkkkkk"...) is 100000 characters long: YAML keys are at most 1024 characters, and every key of this configuration is a short name"#,
    },
    LongCase {
        what: "too many values",
        input: "`addresses: {include_interfaces: [a, a, ...]}` with 60,000 entries",
        yaml: || format!("addresses: {{include_interfaces: [{}]}}\n", vec!["a"; 60_000].join(", ")),
        want: "/etc/mptcp-pm.yaml:1:150019: refused: it holds more than 50000 values; a configuration is a few hundred short values",
    },
    LongCase {
        what: "an alias bomb",
        input: "`a: &a [x, x, ...]` then nine levels of ten aliases each to the level below",
        yaml: || {
            let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
            for i in 1..10 {
                let below = if i == 1 { "*a".to_string() } else { format!("*b{}", i - 1) };
                bomb.push_str(&format!("b{i}: &b{i} [{}]\n", vec![below; 10].join(", ")));
            }
            bomb
        },
        want: "/etc/mptcp-pm.yaml:5:10: refused: its aliases (`*name`) expand to more than 20000 values; a configuration needs few if any",
    },
];

fn error_of(yaml: &str) -> ConfigError {
    match parse(yaml, FILE) {
        Ok(c) => panic!("{yaml:?} parsed: {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_error_has_its_exact_message_and_location() {
    let mut failures = Vec::new();
    for case in CASES {
        let err = error_of(case.yaml);
        let got = err.to_string();
        if got != case.want {
            failures.push(format!(
                "{}:\n   want {}\n    got {}",
                case.what, case.want, got
            ));
        }
        let key = match &err {
            ConfigError::Invalid { key, .. } => Some(key.as_str()),
            ConfigError::Parse { .. } => None,
            ConfigError::Io { .. } => panic!("parse() returned an I/O error"),
        };
        if key != case.key {
            failures.push(format!(
                "{}: key want {:?} got {:?}",
                case.what, case.key, key
            ));
        }
        // The `file:line:col:` prefix agrees with the structured location.
        let (line, col) = err.location().unwrap_or((0, 0));
        assert!(got.starts_with(&format!("{FILE}:{line}:{col}: ")), "{got}");
        assert!(line >= 1 && col >= 1, "{}: unlocated: {got}", case.what);
        assert!(
            !got.contains('\n'),
            "{}: multi-line message: {got:?}",
            case.what
        );
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn long_inputs_get_their_exact_message() {
    for case in LONG_CASES {
        let got = error_of(&(case.yaml)()).to_string();
        assert_eq!(got, case.want, "{}", case.what);
    }
}

fn markdown() -> String {
    let mut out = String::from(
        "# Configuration errors\n\n\
         What `mptcp-pmd --check-config` (and start-up) prints for malformed configurations.\n\
         Every error is one line, `file:line:col: message`; lines and columns are 1-based and\n\
         columns count characters.\n\n\
         Generated from `config/tests/errors.rs` by\n\
         `MPTCP_PMD_BLESS=1 cargo test -p mptcp-pmd-config --test errors`; the test fails when\n\
         this file and the actual outputs differ. Two kinds of error exist: *parse* errors\n\
         (YAML syntax, unknown keys, structure; located by the YAML parser) and *invalid*\n\
         errors (values checked after parsing; they also carry the dotted key, shown here).\n\n\
         Decisions worth knowing: an empty file, a comments-only file, or an empty section\n\
         (`fullmesh:` with nothing under it) means the defaults, and so does `policy:` with\n\
         nothing after it; a key that needs a value refuses `~`/`null` (and nothing), while an\n\
         optional one (`metrics.listen`) takes it as none; booleans are only `true`/`false`;\n\
         numbers are decimal only (`16`, `1.5`, `2e3`; not `0x10`, `0o20`, `1_000`), and an\n\
         integer is quoted back with every digit; YAML tags (`!!binary`, `!!str`, `!custom`)\n\
         are refused; interface globs know `*` and `?` only; a list or mapping given where a\n\
         single value belongs is located at its key rather than at the value.\n\n\
         The file itself must be a regular file (a symlink to one is fine) of at most 1 MiB:\n\
         a FIFO, a device, a directory or a larger file is refused before it is read, as\n\
         `FILE: cannot read configuration: it is a FIFO (named pipe), not a regular file (a\n\
         symlink to a regular file is fine)` or `FILE: cannot read configuration: it is larger\n\
         than 1048576 bytes (1 MiB), the limit for a configuration file` (exit 78). The YAML\n\
         reader refuses more than 50,000 values, nesting deeper than 32 levels, aliases that\n\
         expand to more than 20,000 values and keys longer than 1,024 characters (see the end).\n\n\
         Each case shows the configuration, then the error.\n",
    );
    for case in CASES {
        let err = error_of(case.yaml);
        let kind = match &err {
            ConfigError::Invalid { key, .. } => format!("invalid value, key `{key}`"),
            _ => "parse error".to_owned(),
        };
        out.push_str(&format!(
            "\n## {}\n\n```yaml\n{}\n```\n\n```text\n{}\n```\n\n({kind})\n",
            case.what,
            case.yaml.trim_end(),
            err
        ));
    }
    out.push_str(
        "\n# Inputs too long to show\n\n\
         The same, for inputs described rather than shown.\n",
    );
    for case in LONG_CASES {
        out.push_str(&format!(
            "\n## {}\n\nInput: {}.\n\n```text\n{}\n```\n",
            case.what,
            case.input,
            error_of(&(case.yaml)())
        ));
    }
    out
}

#[test]
fn config_errors_doc_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIG-ERRORS.md");
    let want = markdown();
    if std::env::var_os("MPTCP_PMD_BLESS").is_some() {
        std::fs::write(path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        have == want,
        "docs/CONFIG-ERRORS.md is stale: run MPTCP_PMD_BLESS=1 cargo test -p mptcp-pmd-config --test errors"
    );
}
