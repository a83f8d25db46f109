//! The `metered:` section and `addresses.max_subflows_per_interface`: what a file gives, the
//! defaults, and that the effective configuration reads back the same.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use mptcp_pmd_config::{parse, Config, Period, WhenSpent, Zone};

fn ok(yaml: &str) -> Config {
    parse(yaml, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
}

const FILE: &str = r#"
addresses:
  max_subflows_per_interface:
    - {interfaces: ["wwan*"], max: 1}
    - {interfaces: ["*"], max: 4}
metered:
  state_directory: /srv/state
  save_interval_s: 10
  budgets:
    - interfaces: ["wwan*", "usb0"]
      budget: 10GiB
      period: month
      reset: "day 15 04:30"
      timezone: utc
      when_spent: close
    - interfaces: [eth9]
      budget: 500000000
      period: day
"#;

#[test]
fn budgets_and_caps_as_written_and_their_defaults() {
    let c = ok(FILE);
    let m = &c.metered;
    assert_eq!(m.state_directory.to_str(), Some("/srv/state"));
    assert_eq!(m.save_interval_s, 10);
    assert!(m.is_active());
    let b = &m.budgets[0];
    assert_eq!(b.budget.0, 10 << 30);
    assert_eq!(
        (b.period, b.timezone, b.when_spent),
        (Period::Month, Zone::Utc, WhenSpent::Close)
    );
    assert_eq!(b.reset.to_string(), "day 15 04:30");
    assert_eq!(b.name(), "wwan*,usb0");
    let d = &m.budgets[1];
    assert_eq!(d.budget.0, 500_000_000);
    assert_eq!(
        (d.timezone, d.when_spent),
        (Zone::Local, WhenSpent::Backup),
        "the defaults"
    );
    assert_eq!(
        d.reset.to_string(),
        "00:00",
        "a daily budget resets at midnight"
    );
    assert_eq!(m.budget_of("wwan3").map(|(i, _)| i), Some(0));
    assert_eq!(m.budget_of("usb0").map(|(i, _)| i), Some(0));
    assert_eq!(m.budget_of("eth9").map(|(i, _)| i), Some(1));
    assert_eq!(m.budget_of("eth0"), None);

    let a = &c.addresses;
    assert_eq!(
        a.subflow_cap("wwan0"),
        Some(1),
        "the first matching entry wins"
    );
    assert_eq!(a.subflow_cap("eth0"), Some(4));
    assert_eq!(Config::default().addresses.subflow_cap("eth0"), None);
}

#[test]
fn a_monthly_budget_resets_on_the_first_at_midnight_unless_told() {
    let c = ok("metered:\n  budgets: [{interfaces: [wwan0], budget: 1GB, period: month}]\n");
    assert_eq!(c.metered.budgets[0].reset.to_string(), "day 1 00:00");
    let d = Config::default();
    assert!(!d.metered.is_active());
    assert_eq!(
        d.metered.state_directory.to_str(),
        Some("/var/lib/mptcp-pmd")
    );
    assert_eq!(d.metered.save_interval_s, 60);
}

#[test]
fn the_effective_configuration_reads_back_the_same() {
    let c = ok(FILE);
    let text = c.effective_yaml();
    assert!(
        text.contains("reset: day 15 04:30") || text.contains("reset: \"day 15 04:30\""),
        "{text}"
    );
    assert!(text.contains("budget: 10737418240"), "{text}");
    assert_eq!(ok(&text), c, "{text}");
    // The default reset is written out.
    let c = ok("metered:\n  budgets: [{interfaces: [wwan0], budget: 1GB, period: day}]\n");
    let text = c.effective_yaml();
    assert!(text.contains("00:00"), "{text}");
    assert_eq!(ok(&text), c, "{text}");
}

#[test]
fn the_shipped_example_budget_parses_when_uncommented() {
    let shipped = include_str!("../../packaging/mptcp-pm.yaml");
    let mut lines = shipped.lines().skip_while(|l| *l != "  #budgets:");
    let mut text = String::from("metered:\n");
    for l in lines.by_ref() {
        match l.strip_prefix("  #") {
            Some(rest) if rest.starts_with("budgets:") || rest.starts_with("  ") => {
                text.push_str("  ");
                text.push_str(rest);
                text.push('\n');
            }
            _ => break,
        }
    }
    let c = ok(&text);
    let b = &c.metered.budgets[0];
    assert_eq!((b.budget.0, b.period), (10 << 30, Period::Month), "{text}");
}
