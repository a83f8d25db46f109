//! Per-interface limits over every policy: a spent byte budget (`metered.budgets`, counted by
//! [`crate::core::budget::Meter`]) and the cap on a connection's subflows per interface
//! (`addresses.max_subflows_per_interface`). The policy actor passes each policy's decisions
//! through [`apply`] before they reach the connection, whatever the policy, so no policy
//! implements either and each one's decisions stay its own. Pure.
//!
//! What it does, on one connection, in this order:
//! 1. **The policy's decisions**: an `Open` on an interface at its cap (live subflows there,
//!    the ones opened by this batch included) is refused; on a spent interface it becomes a
//!    backup open (`when_spent: backup`) or is refused (`close`). A `SetBackup` clearing the
//!    flag of a subflow on a spent interface is refused: the budget wins.
//! 2. **Spent budgets**: every established subflow on a spent interface gets the backup flag
//!    (`backup`), or is closed (`close`) unless it is the connection's last established
//!    subflow, which gets the flag instead (the connection must live; the kernel still sends
//!    on a backup subflow when nothing else is up).
//! 3. **Caps**: a connection with more established subflows on an interface than its cap
//!    (after a reload lowered it, or joins the peer opened) has its newest ones there closed,
//!    never the initial subflow nor the last one.
//! 4. **Restores**: a subflow this module made backup gets the flag cleared once its budget
//!    is no longer spent (the period rolled over, a reload raised or removed the budget);
//!    after a restart, the meter's saved flagged paths tell which adopted subflows those are.
//!
//! Every decision of its own carries a reason (`budget`, `budget-restored`, `interface-cap`)
//! with the numbers: the log, `status` and the decision metrics show it like a policy's.

use std::net::IpAddr;

use mptcp_pmd_config::{AddressFilter, WhenSpent};
use mptcp_pmd_policies::conn::{Connection, Subflow};
use mptcp_pmd_policies::policy::{Action, Decision, Reason};
use mptcp_pmd_policies::{LocalAddr, SubflowKey};

use crate::core::budget::Meter;

/// The reason code of a decision made for a spent budget.
pub const BUDGET: &str = "budget";
/// The reason code of a flag cleared because a budget is no longer spent.
pub const BUDGET_RESTORED: &str = "budget-restored";
/// The reason code of a subflow closed over an interface's cap.
pub const INTERFACE_CAP: &str = "interface-cap";

/// The policy's decisions after the limits, and how many of its opens were refused.
#[derive(Debug, Default)]
pub struct Limited {
    /// The decisions to apply.
    pub out: Vec<Decision>,
    /// Opens refused (at a cap, or on a spent interface that closes).
    pub refused: usize,
}

/// What the limits look at: the interfaces of the usable addresses, the meter, the caps.
#[derive(Clone, Copy)]
pub struct Limits<'a> {
    /// The usable local addresses (their interfaces).
    pub locals: &'a [LocalAddr],
    /// The budgets.
    pub meter: &'a Meter,
    /// `addresses.max_subflows_per_interface`.
    pub caps: &'a AddressFilter,
}

impl Limits<'_> {
    /// Whether any limit is configured at all (else [`apply`] passes decisions through).
    pub fn any(&self) -> bool {
        self.meter.is_active() || !self.caps.max_subflows_per_interface.is_empty()
    }

    fn interface(&self, addr: IpAddr) -> Option<&str> {
        let addr = addr.to_canonical();
        self.locals
            .iter()
            .find(|l| l.addr.to_canonical() == addr)
            .map(|l| l.if_name.as_str())
    }
}

/// Established and not being closed.
fn up(sf: &Subflow) -> bool {
    sf.is_established() && !sf.closing
}

/// The connection's decisions from its policy, limited. See the module docs.
pub fn apply(conn: &Connection, limits: &Limits<'_>, decisions: Vec<Decision>) -> Limited {
    if !limits.any() {
        return Limited {
            out: decisions,
            refused: 0,
        };
    }
    let subflows = conn.subflows();
    let iface_of = |sf: &Subflow| limits.interface(sf.path.local);
    let mut out = Vec::with_capacity(decisions.len());
    let mut refused = 0;
    // Opens accepted in this batch, by interface.
    let mut opened: Vec<&str> = Vec::new();
    // Keys the batch closes, and keys whose flag it sets (with the value).
    let mut closing: Vec<SubflowKey> = Vec::new();
    let mut flagged: Vec<(SubflowKey, bool)> = Vec::new();

    // 1. The policy's decisions.
    for d in decisions {
        match &d.action {
            Action::Open { local, backup, .. } => {
                let Some(name) = limits.interface(*local) else {
                    out.push(d);
                    continue;
                };
                if let Some(cap) = limits.caps.subflow_cap(name) {
                    let live = subflows
                        .iter()
                        .filter(|sf| sf.is_live() && iface_of(sf) == Some(name))
                        .count()
                        + opened.iter().filter(|n| **n == name).count();
                    if live >= cap as usize {
                        refused += 1;
                        continue;
                    }
                }
                match limits.meter.spent_on(name) {
                    None => {}
                    Some(s) if s.when_spent == WhenSpent::Close => {
                        refused += 1;
                        continue;
                    }
                    Some(_) if *backup => {}
                    Some(s) => {
                        let Decision { action, reason } = d;
                        let Action::Open {
                            local,
                            if_index,
                            remote,
                            timeout,
                            ..
                        } = action
                        else {
                            continue;
                        };
                        opened.push(name);
                        out.push(Decision::new(
                            Action::Open {
                                local,
                                if_index,
                                remote,
                                backup: true,
                                timeout,
                            },
                            Reason::new(
                                BUDGET,
                                format!(
                                    "{}: opened as backup (the policy's reason: {}: {})",
                                    s.detail(),
                                    reason.code,
                                    reason.detail
                                ),
                            ),
                        ));
                        continue;
                    }
                }
                opened.push(name);
                out.push(d);
            }
            Action::SetBackup { key, backup } => {
                let spent = limits
                    .interface(key.local.ip())
                    .and_then(|n| limits.meter.spent_on(n));
                if !backup && spent.is_some() {
                    refused += 1;
                    continue;
                }
                flagged.push((*key, *backup));
                out.push(d);
            }
            Action::Close { key } => {
                closing.push(*key);
                out.push(d);
            }
            Action::Announce { .. } | Action::Remove { .. } => out.push(d),
        }
    }

    let stays = |sf: &Subflow, closing: &[SubflowKey]| {
        up(sf) && sf.key().is_some_and(|k| !closing.contains(&k))
    };
    let wants_backup = |sf: &Subflow, key: SubflowKey, flagged: &[(SubflowKey, bool)]| {
        flagged
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map_or(sf.want_backup, |(_, b)| *b)
    };

    // 2. Spent budgets.
    for sf in subflows {
        let (Some(key), Some(name)) = (sf.key(), iface_of(sf)) else {
            continue;
        };
        if !stays(sf, &closing) {
            continue;
        }
        let Some(spent) = limits.meter.spent_on(name) else {
            continue;
        };
        let others = subflows
            .iter()
            .filter(|o| o.key() != Some(key) && stays(o, &closing))
            .count();
        if spent.when_spent == WhenSpent::Close && others > 0 {
            closing.push(key);
            out.push(Decision::new(
                Action::Close { key },
                Reason::new(BUDGET, format!("{}: closed", spent.detail())),
            ));
        } else if !wants_backup(sf, key, &flagged) {
            let why = if spent.when_spent == WhenSpent::Close {
                "made backup: the connection's last subflow is not closed"
            } else {
                "made backup"
            };
            flagged.push((key, true));
            out.push(Decision::new(
                Action::SetBackup { key, backup: true },
                Reason::new(BUDGET, format!("{}: {why}", spent.detail())),
            ));
        }
    }

    // 3. Caps.
    for sf in subflows.iter().rev() {
        let (Some(key), Some(name)) = (sf.key(), iface_of(sf)) else {
            continue;
        };
        if sf.initial || !stays(sf, &closing) {
            continue;
        }
        let Some(cap) = limits.caps.subflow_cap(name) else {
            continue;
        };
        let on_it = subflows
            .iter()
            .filter(|o| stays(o, &closing) && iface_of(o) == Some(name))
            .count();
        let others = subflows
            .iter()
            .filter(|o| o.key() != Some(key) && stays(o, &closing))
            .count();
        if on_it > cap as usize && others > 0 {
            closing.push(key);
            out.push(Decision::new(
                Action::Close { key },
                Reason::new(
                    INTERFACE_CAP,
                    format!(
                        "{on_it} subflows on {name}, cap {cap} (addresses.max_subflows_per_interface): the newest closed"
                    ),
                ),
            ));
        }
    }

    // 4. Restores.
    for sf in subflows {
        let Some(key) = sf.key() else { continue };
        // Ours: flagged for a budget by this daemon, or (adopted after a restart, with no
        // reason of its own) by the one before, as the state file says.
        let ours = match &sf.reason {
            Some(r) => r.code == BUDGET,
            None => limits.meter.was_flagged((sf.path.local, sf.path.remote)),
        };
        if !stays(sf, &closing)
            || !sf.want_backup
            || !ours
            || flagged.iter().any(|(k, _)| *k == key)
        {
            continue;
        }
        let name = iface_of(sf);
        if name.is_some_and(|n| limits.meter.spent_on(n).is_some()) {
            continue;
        }
        let why = match name {
            Some(n) if limits.meter.is_metered(n) => format!(
                "{}: no longer spent, active again",
                limits.meter.detail_of(n).unwrap_or_default()
            ),
            _ => "no budget applies to its interface any more: active again".to_owned(),
        };
        out.push(Decision::new(
            Action::SetBackup { key, backup: false },
            Reason::new(BUDGET_RESTORED, why),
        ));
    }
    Limited { out, refused }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::budget::Zones;
    use chrono::{DateTime, TimeZone, Utc};
    use mptcp_pmd_config::{Budget, ByteSize, InterfaceCap, Period, Zone};
    use mptcp_pmd_policies::{KernelSubflow, SubflowSample, Token};
    use std::net::SocketAddr;
    use std::time::Instant;

    struct UtcOnly;
    impl Zones for UtcOnly {
        fn offset_s(&self, _: Zone, _: DateTime<Utc>) -> i32 {
            0
        }
    }

    const ETH: &str = "10.0.1.1";
    const WWAN: &str = "10.0.2.1";

    fn locals() -> Vec<LocalAddr> {
        [(ETH, "eth0"), (WWAN, "wwan0")]
            .iter()
            .enumerate()
            .map(|(i, (a, n))| LocalAddr {
                addr: a.parse().unwrap(),
                if_index: i as u32 + 2,
                if_name: (*n).into(),
                backup: false,
            })
            .collect()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 10, 10, 0, 0).unwrap()
    }

    fn key(local: &str, port: u16) -> SubflowKey {
        SubflowKey {
            local: SocketAddr::new(local.parse().unwrap(), port),
            remote: "10.0.9.1:80".parse().unwrap(),
        }
    }

    fn conn(keys: &[SubflowKey]) -> Connection {
        Connection::adopt(
            Instant::now(),
            Token(1),
            keys[0].local,
            keys[0].remote,
            keys.iter().map(|k| KernelSubflow {
                key: *k,
                loc_id: 0,
                rem_id: 0,
                backup: false,
                sample: SubflowSample::default(),
            }),
        )
    }

    /// A meter whose wwan budget is spent (`bytes` of it used by one sample).
    fn meter(when: WhenSpent, spent: bool) -> Meter {
        let b = Budget {
            interfaces: vec!["wwan*".into()],
            budget: ByteSize(1000),
            period: Period::Month,
            reset: "day 1 00:00".parse().unwrap(),
            timezone: Zone::Utc,
            when_spent: when,
        };
        let mut m = Meter::new(Box::new(UtcOnly), &[b], None, now());
        if spent {
            let c = conn(&[key(WWAN, 9)]);
            let mut c2 = c.clone();
            let s = SubflowSample {
                bytes_sent: 5000,
                ..SubflowSample::default()
            };
            c2.handle_samples(Instant::now(), &[(key(WWAN, 9), s)]);
            let l = locals();
            let of = |a: IpAddr| l.iter().find(|x| x.addr == a).map(|x| x.if_name.clone());
            m.observe(now(), Token(99), c2.subflows(), &of);
        }
        m
    }

    fn open(local: &str) -> Decision {
        Decision::new(
            Action::Open {
                local: local.parse().unwrap(),
                if_index: None,
                remote: "10.0.9.1:80".parse().unwrap(),
                backup: false,
                timeout: None,
            },
            Reason::fixed("mesh", "missing pair"),
        )
    }

    fn run(c: &Connection, m: &Meter, caps: &AddressFilter, d: Vec<Decision>) -> Limited {
        let l = locals();
        apply(
            c,
            &Limits {
                locals: &l,
                meter: m,
                caps,
            },
            d,
        )
    }

    #[test]
    fn nothing_configured_passes_everything() {
        let m = meter(WhenSpent::Backup, false);
        let m0 = Meter::new(Box::new(UtcOnly), &[], None, now());
        let c = conn(&[key(ETH, 1)]);
        let d = vec![open(WWAN), open(ETH)];
        let r = run(&c, &m0, &AddressFilter::default(), d.clone());
        assert_eq!(r.out, d);
        let r = run(&c, &m, &AddressFilter::default(), d.clone());
        assert_eq!(r.out, d, "a budget not spent changes nothing");
    }

    #[test]
    fn a_spent_budget_opens_as_backup_and_flags_what_is_there() {
        let m = meter(WhenSpent::Backup, true);
        let c = conn(&[key(ETH, 1), key(WWAN, 2)]);
        let r = run(
            &c,
            &m,
            &AddressFilter::default(),
            vec![open(WWAN), open(ETH)],
        );
        let actions: Vec<String> = r.out.iter().map(|d| d.action.to_string()).collect();
        assert_eq!(
            actions,
            [
                "open 10.0.2.1 -> 10.0.9.1:80 (backup)",
                "open 10.0.1.1 -> 10.0.9.1:80",
                "set backup 10.0.2.1:2 -> 10.0.9.1:80",
            ]
        );
        assert_eq!(r.out[0].reason.code, BUDGET);
        assert!(
            r.out[0].reason.detail.starts_with(
                "budget wwan*: 4.9 KiB of 1000 B used this month, resets 2027-01-01 00:00 UTC: opened as backup (the policy's reason: mesh: missing pair)"
            ),
            "{}",
            r.out[0].reason.detail
        );
        // The policy clearing the flag is refused.
        let clear = Decision::new(
            Action::SetBackup {
                key: key(WWAN, 2),
                backup: false,
            },
            Reason::fixed("failover", "x"),
        );
        let r = run(&c, &m, &AddressFilter::default(), vec![clear]);
        assert_eq!(r.refused, 1);
        assert_eq!(r.out.len(), 1, "{:?}", r.out);
        assert_eq!(
            r.out[0].action.to_string(),
            "set backup 10.0.2.1:2 -> 10.0.9.1:80"
        );
    }

    #[test]
    fn close_mode_closes_but_never_the_last_subflow() {
        let m = meter(WhenSpent::Close, true);
        let c = conn(&[key(ETH, 1), key(WWAN, 2)]);
        let r = run(&c, &m, &AddressFilter::default(), vec![open(WWAN)]);
        assert_eq!(r.refused, 1);
        let actions: Vec<String> = r.out.iter().map(|d| d.action.to_string()).collect();
        assert_eq!(actions, ["close 10.0.2.1:2 -> 10.0.9.1:80"]);
        let alone = conn(&[key(WWAN, 2)]);
        let r = run(&alone, &m, &AddressFilter::default(), vec![]);
        let actions: Vec<String> = r.out.iter().map(|d| d.action.to_string()).collect();
        assert_eq!(actions, ["set backup 10.0.2.1:2 -> 10.0.9.1:80"]);
        assert!(r.out[0].reason.detail.contains("last subflow"));
    }

    #[test]
    fn restored_when_no_longer_spent() {
        let spent = meter(WhenSpent::Backup, true);
        let mut c = conn(&[key(ETH, 1), key(WWAN, 2)]);
        let r = run(&c, &spent, &AddressFilter::default(), vec![]);
        c.handle_decisions(Instant::now(), r.out);
        while c.poll_command().is_some() {}
        assert!(c.subflows()[1].want_backup);
        // Spent still: nothing more.
        assert!(run(&c, &spent, &AddressFilter::default(), vec![])
            .out
            .is_empty());
        // A new period.
        let fresh = meter(WhenSpent::Backup, false);
        let r = run(&c, &fresh, &AddressFilter::default(), vec![]);
        let actions: Vec<String> = r.out.iter().map(|d| d.action.to_string()).collect();
        assert_eq!(actions, ["clear backup 10.0.2.1:2 -> 10.0.9.1:80"]);
        assert_eq!(r.out[0].reason.code, BUDGET_RESTORED);
        // A subflow backup for another reason is left alone.
        let mut other = conn(&[key(ETH, 1), key(WWAN, 3)]);
        other.handle_decisions(
            Instant::now(),
            vec![Decision::new(
                Action::SetBackup {
                    key: key(WWAN, 3),
                    backup: true,
                },
                Reason::fixed("standby", "x"),
            )],
        );
        assert!(run(&other, &fresh, &AddressFilter::default(), vec![])
            .out
            .is_empty());
    }

    #[test]
    fn after_a_restart_only_the_paths_a_budget_flagged_are_restored() {
        // Adopted as backup: the connection knows no reason.
        let adopted = Connection::adopt(
            Instant::now(),
            Token(1),
            key(ETH, 1).local,
            key(ETH, 1).remote,
            [key(ETH, 1), key(WWAN, 2)].map(|k| KernelSubflow {
                key: k,
                loc_id: 0,
                rem_id: 0,
                backup: k.local.port() == 2,
                sample: SubflowSample::default(),
            }),
        );
        let mut m = meter(WhenSpent::Backup, false);
        assert!(run(&adopted, &m, &AddressFilter::default(), vec![])
            .out
            .is_empty());
        let path = (key(WWAN, 2).local.ip(), key(WWAN, 2).remote);
        m.flag(path, true);
        // Through the state file, as a restart reads it.
        let saved = m.save(now());
        assert_eq!(
            saved.flagged,
            vec![],
            "no subflow counted on it yet: not kept"
        );
        let saved = crate::core::budget::SavedState {
            flagged: vec![path],
            ..saved
        };
        let budgets = vec![Budget {
            interfaces: vec!["wwan*".into()],
            budget: ByteSize(1000),
            period: Period::Month,
            reset: "day 1 00:00".parse().unwrap(),
            timezone: Zone::Utc,
            when_spent: WhenSpent::Backup,
        }];
        let m = Meter::new(Box::new(UtcOnly), &budgets, Some(saved), now());
        assert!(m.was_flagged(path));
        let r = run(&adopted, &m, &AddressFilter::default(), vec![]);
        let actions: Vec<String> = r.out.iter().map(|d| d.action.to_string()).collect();
        assert_eq!(actions, ["clear backup 10.0.2.1:2 -> 10.0.9.1:80"]);
    }

    #[test]
    fn caps_refuse_opens_and_close_the_newest_extra() {
        let m = Meter::new(Box::new(UtcOnly), &[], None, now());
        let caps = AddressFilter {
            max_subflows_per_interface: vec![InterfaceCap {
                interfaces: vec!["wwan*".into()],
                max: 1,
            }],
            ..AddressFilter::default()
        };
        let c = conn(&[key(ETH, 1), key(WWAN, 2)]);
        let r = run(&c, &m, &caps, vec![open(WWAN), open(ETH), open(ETH)]);
        assert_eq!(r.refused, 1);
        assert_eq!(r.out.len(), 2, "eth0 has no cap");
        // Two opens in one batch on a capped interface with none yet: the first only.
        let c = conn(&[key(ETH, 1)]);
        let r = run(&c, &m, &caps, vec![open(WWAN), open(WWAN)]);
        assert_eq!((r.out.len(), r.refused), (1, 1));
        // Over the cap (a reload lowered it): the newest goes, never the initial one.
        let c = conn(&[key(WWAN, 1), key(WWAN, 2), key(WWAN, 3)]);
        let r = run(&c, &m, &caps, vec![]);
        let actions: Vec<String> = r.out.iter().map(|d| d.action.to_string()).collect();
        assert_eq!(
            actions,
            [
                "close 10.0.2.1:3 -> 10.0.9.1:80",
                "close 10.0.2.1:2 -> 10.0.9.1:80"
            ]
        );
        assert_eq!(r.out[0].reason.code, INTERFACE_CAP);
    }
}
