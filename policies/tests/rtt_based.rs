//! The rtt-based policy: its pure judge over synthetic sample series, then the policy around it
//! driven through a real `Connection`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{actions, ctx, local, sub};
use mptcp_pmd_policies::mesh;
use mptcp_pmd_policies::params::{Key, Keys, Node, ParamError, Pos, Value};
use mptcp_pmd_policies::rtt_based::{
    RttBased, RttBasedParams, RttJudge, RttParams, SubflowPath, Verdict, VerdictKind, PLUGIN,
};
use mptcp_pmd_policies::{
    Action, Connection, Decision, KernelSubflow, LocalAddr, PmEvent, Policy, PolicyParams,
    SubflowKey, SubflowSample, Token,
};

fn key(net: u8, port: u16) -> SubflowKey {
    SubflowKey {
        local: SocketAddr::from(([10, 0, net, 1], port)),
        remote: SocketAddr::from(([10, 0, 0, 2], 80)),
    }
}

fn rtt(ms: u32) -> SubflowSample {
    SubflowSample {
        srtt_us: ms * 1000,
        ..SubflowSample::default()
    }
}

/// The defaults without probing: most tests are about the other rules and run past the
/// default probe interval. The probe tests set `probe` themselves.
fn params() -> RttParams {
    RttParams {
        probe: None,
        ..RttParams::default()
    }
}

/// Drives a judge over simulated seconds, playing the kernel: a requested flag change shows
/// up in the next round (when `apply`), closed subflows vanish, re-opened paths come back on
/// a new source port.
struct Sim {
    judge: RttJudge,
    t0: Instant,
    subs: Vec<(SubflowKey, bool)>,
    apply: bool,
    next_port: u16,
    log: Vec<(u64, Verdict)>,
}

impl Sim {
    fn new(params: RttParams, subs: &[(SubflowKey, bool)]) -> Self {
        Sim {
            judge: RttJudge::new(params),
            t0: Instant::now(),
            subs: subs.to_vec(),
            apply: true,
            next_port: 50000,
            log: Vec::new(),
        }
    }

    /// One round per second for t in `from..to`; `f(t, key)` gives the sample.
    fn run(&mut self, from: u64, to: u64, mut f: impl FnMut(u64, &SubflowKey) -> SubflowSample) {
        self.run_flagged(from, to, |t, k, _| f(t, k));
    }

    /// Like [`Sim::run`], but `f(t, key, backup)` also sees the subflow's current flag.
    fn run_flagged(
        &mut self,
        from: u64,
        to: u64,
        mut f: impl FnMut(u64, &SubflowKey, bool) -> SubflowSample,
    ) {
        for t in from..to {
            let input: Vec<_> = self
                .subs
                .iter()
                .map(|(k, b)| (*k, *b, f(t, k, *b)))
                .collect();
            let verdicts = self
                .judge
                .evaluate(self.t0 + Duration::from_secs(t), &input);
            for v in verdicts {
                if self.apply {
                    match v.kind {
                        VerdictKind::SetBackup(b) => {
                            for s in self.subs.iter_mut().filter(|s| s.0 == v.key) {
                                s.1 = b;
                            }
                        }
                        VerdictKind::Close => self.subs.retain(|s| s.0 != v.key),
                        VerdictKind::Reopen(p) => {
                            self.next_port += 1;
                            let k = SubflowKey {
                                local: SocketAddr::new(p.local, self.next_port),
                                remote: p.remote,
                            };
                            self.subs.push((k, p.backup));
                        }
                    }
                }
                self.log.push((t, v));
            }
        }
    }

    /// (second, third octet of the local address, kind) of every verdict so far.
    fn decisions(&self) -> Vec<(u64, u8, VerdictKind)> {
        self.log
            .iter()
            .map(|(t, v)| (*t, net(&v.key), v.kind))
            .collect()
    }
}

fn net(k: &SubflowKey) -> u8 {
    match k.local.ip() {
        IpAddr::V4(a) => a.octets()[2],
        IpAddr::V6(_) => 0,
    }
}

/// The `rtt_based:` section with these keys set, as the config hands it over.
fn section(pairs: &[(&str, Value)]) -> Node {
    let at = Pos { line: 1, col: 1 };
    Node {
        value: Value::Map(
            pairs
                .iter()
                .map(|(k, v)| {
                    (
                        Key {
                            name: (*k).to_owned(),
                            at,
                        },
                        Node {
                            value: v.clone(),
                            at,
                        },
                    )
                })
                .collect(),
        ),
        at,
    }
}

fn parse(pairs: &[(&str, Value)]) -> Result<RttBasedParams, ParamError> {
    let spec = PLUGIN.parse(&section(pairs), &Keys::new("rtt_based"))?;
    Ok(*spec.params::<RttBasedParams>().unwrap())
}

#[test]
fn defaults_validate_and_bad_params_are_refused() {
    assert_eq!(parse(&[]), Ok(RttBasedParams::default()));
    assert_eq!(
        RttBasedParams::default().validate(&Keys::new("rtt_based")),
        Ok(())
    );
    assert_eq!(
        RttBasedParams::default().judge_params(),
        RttParams::default()
    );
    assert!(matches!(
        parse(&[("restore_ratio", Value::Float(2.0))]),
        Err(ParamError::Check { .. })
    ));
    assert!(matches!(
        parse(&[("backup_ratio", Value::Float(f64::NAN))]),
        Err(ParamError::Value { .. })
    ));
    assert!(matches!(
        parse(&[("loss_threshold", Value::Float(0.0))]),
        Err(ParamError::Value { .. })
    ));
    assert!(matches!(
        parse(&[("max_subflows", Value::Int(0))]),
        Err(ParamError::Value { .. })
    ));
}

#[test]
fn steady_paths_give_no_decisions() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    sim.run(0, 120, |t, k| {
        rtt(if net(k) == 1 { 10 } else { 12 + (t % 3) as u32 })
    });
    assert_eq!(sim.decisions(), vec![]);
}

#[test]
fn spike_shorter_than_hold_gives_nothing() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    // 4 samples at 100 ms (t = 10..=13): 3 s of condition, hold is 5 s.
    sim.run(0, 60, |t, k| {
        rtt(if net(k) == 2 && (10..14).contains(&t) {
            100
        } else {
            10
        })
    });
    assert_eq!(sim.decisions(), vec![]);
}

#[test]
fn slow_drift_demotes_exactly_at_hold() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    // B drifts up 5 ms per second from 10 ms; it crosses 2 x 10 ms with a gap >= 20 ms
    // first at 30 ms (t = 4: ratio 3.0, gap 20 ms) and stays above.
    sim.run(0, 40, |t, k| {
        rtt(if net(k) == 2 { 10 + 5 * t as u32 } else { 10 })
    });
    assert_eq!(sim.decisions(), vec![(9, 2, VerdictKind::SetBackup(true))]);
    let reason = &sim.log[0].1.reason;
    assert!(reason.contains("srtt 55.0ms"), "{reason}");
    assert!(reason.contains("best 10.0ms"), "{reason}");
    assert!(reason.contains("for 5.0s"), "{reason}");
    assert!(sim.judge.demoted_by_us(&key(2, 1001)));
}

#[test]
fn ratio_exceeded_but_gap_too_small_gives_nothing() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    // 1 ms vs 15 ms: ratio 15, gap 14 ms < 20 ms.
    sim.run(0, 60, |_, k| rtt(if net(k) == 2 { 15 } else { 1 }));
    assert_eq!(sim.decisions(), vec![]);
    // One more millisecond of gap would do it.
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    sim.run(0, 60, |_, k| rtt(if net(k) == 2 { 21 } else { 1 }));
    assert_eq!(sim.decisions(), vec![(5, 2, VerdictKind::SetBackup(true))]);
}

#[test]
fn flapping_around_the_backup_threshold_never_changes_anything() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    // best 30 ms; B alternates 65 ms (ratio 2.17) and 55 ms (1.83) every second.
    sim.run(0, 200, |t, k| {
        rtt(if net(k) == 1 {
            30
        } else if t % 2 == 0 {
            65
        } else {
            55
        })
    });
    assert_eq!(sim.decisions(), vec![]);
}

#[test]
fn hysteresis_band_after_demotion_never_restores() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    // B at 70 ms for 10 s (demoted at t = 5), then oscillates between 50 and 65 ms: above
    // 1.5 x 30 = 45 ms all the time, so it stays backup.
    sim.run(0, 200, |t, k| {
        rtt(match (net(k), t) {
            (1, _) => 30,
            (_, 0..10) => 70,
            (_, t) if t % 2 == 0 => 65,
            _ => 50,
        })
    });
    assert_eq!(sim.decisions(), vec![(5, 2, VerdictKind::SetBackup(true))]);
}

#[test]
fn recovery_below_restore_ratio_for_hold_restores() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    // B at 80 ms until t = 20, then 40 ms (< 1.5 x 30 ms), with one 50 ms sample at t = 23
    // that restarts the restore timer.
    sim.run(0, 60, |t, k| {
        rtt(match (net(k), t) {
            (1, _) => 30,
            (_, 0..20) => 80,
            (_, 23) => 50,
            _ => 40,
        })
    });
    assert_eq!(
        sim.decisions(),
        vec![
            (5, 2, VerdictKind::SetBackup(true)),
            (29, 2, VerdictKind::SetBackup(false)),
        ]
    );
    assert!(sim.log[1]
        .1
        .reason
        .contains("ratio 1.33 < restore ratio 1.50"));
    assert!(!sim.judge.demoted_by_us(&key(2, 1001)));
}

#[test]
fn recovered_fast_path_is_restored_by_the_gap_rule() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    // Sub-millisecond paths: A at 0.02 ms; B queued at 100 ms until t = 20, then 0.05 ms:
    // ratio 2.5 (above even backup_ratio), but only 0.03 ms above best.
    sim.run(0, 60, |t, k| SubflowSample {
        srtt_us: match (net(k), t) {
            (1, _) => 20,
            (_, 0..20) => 100_000,
            _ => 50,
        },
        ..SubflowSample::default()
    });
    assert_eq!(
        sim.decisions(),
        vec![
            (5, 2, VerdictKind::SetBackup(true)),
            (25, 2, VerdictKind::SetBackup(false)),
        ]
    );
    assert!(
        sim.log[1]
            .1
            .reason
            .contains("srtt 0.050ms vs best 0.020ms: gap 0.030ms < min_gap/2 10.0ms"),
        "{}",
        sim.log[1].1.reason
    );
    // 15 ms above a 1 ms best: in the band (not demoted, but not restored either).
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    sim.run(0, 60, |t, k| {
        rtt(match (net(k), t) {
            (1, _) => 1,
            (_, 0..20) => 100,
            _ => 16,
        })
    });
    assert_eq!(sim.decisions(), vec![(5, 2, VerdictKind::SetBackup(true))]);
}

#[test]
fn configured_backup_is_never_restored() {
    // B is backup from the start (a backup interface) and much faster than A.
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), true)]);
    sim.run(0, 100, |_, k| rtt(if net(k) == 1 { 50 } else { 10 }));
    assert_eq!(sim.decisions(), vec![]);
    assert!(!sim.judge.demoted_by_us(&key(2, 1001)));
}

#[test]
fn demotion_is_retried_when_the_kernel_never_applies_it() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    sim.apply = false;
    sim.run(0, 22, |_, k| rtt(if net(k) == 1 { 10 } else { 100 }));
    // Requested at 5; given up at 10 (pending timeout = hold); condition held again 10..=15.
    assert_eq!(
        sim.decisions(),
        vec![
            (5, 2, VerdictKind::SetBackup(true)),
            (15, 2, VerdictKind::SetBackup(true)),
        ]
    );
}

// ---- probing ----

fn probing(probe_s: u64) -> RttParams {
    RttParams {
        probe: Some(Duration::from_secs(probe_s)),
        ..RttParams::default()
    }
}

/// A bulk sender as the kernel's scheduler runs it: every active subflow gets 1000 more
/// bytes acknowledged per second, a backup one none. `srtt(t, key)` is the measured srtt.
struct Bulk {
    acked: HashMap<SubflowKey, u64>,
}

impl Bulk {
    fn new() -> Self {
        Bulk {
            acked: HashMap::new(),
        }
    }

    fn sample(&mut self, k: &SubflowKey, backup: bool, srtt_ms: u32) -> SubflowSample {
        let acked = self.acked.entry(*k).or_insert(0);
        if !backup {
            *acked += 1000;
        }
        SubflowSample {
            bytes_acked: *acked,
            ..rtt(srtt_ms)
        }
    }
}

#[test]
fn default_probe_is_30s_and_zero_is_never() {
    assert_eq!(RttParams::default().probe, Some(Duration::from_secs(30)));
    // A zero probe cannot reach the judge: `probe_s: 0` means "never probe".
    let p = parse(&[("probe_s", Value::Int(0))]).unwrap();
    assert_eq!(p.judge_params().probe, None);
    assert_eq!(probing(1).probe, Some(Duration::from_secs(1)));
}

#[test]
fn still_slow_path_is_probed_every_probe_interval_and_demoted_again_after_hold() {
    let mut sim = Sim::new(probing(30), &[(key(1, 1000), false), (key(2, 1001), false)]);
    let mut bulk = Bulk::new();
    sim.run_flagged(0, 110, |_, k, b| {
        bulk.sample(k, b, if net(k) == 1 { 10 } else { 100 })
    });
    // Demoted at 5 (hold); probed exactly 30 s later; measured again from 36 (the first
    // round with fresh data), so demoted again at 41; the next probe 30 s after that, etc.
    assert_eq!(
        sim.decisions(),
        vec![
            (5, 2, VerdictKind::SetBackup(true)),
            (35, 2, VerdictKind::SetBackup(false)),
            (41, 2, VerdictKind::SetBackup(true)),
            (71, 2, VerdictKind::SetBackup(false)),
            (77, 2, VerdictKind::SetBackup(true)),
            (107, 2, VerdictKind::SetBackup(false)),
        ]
    );
    let probe = &sim.log[1].1.reason;
    assert!(
        probe.starts_with("probe: backup for 30.0s with no data acked (srtt 100.0ms is stale"),
        "{probe}"
    );
    assert!(sim.log[2].1.reason.contains("for 5.0s (hold 5.0s)"));
    // Never faster than once per probe interval: probes are probe + hold + 1 round apart.
    let probes: Vec<u64> = sim
        .decisions()
        .iter()
        .filter(|d| d.2 == VerdictKind::SetBackup(false))
        .map(|d| d.0)
        .collect();
    assert!(probes.windows(2).all(|w| w[1] - w[0] >= 30), "{probes:?}");
}

#[test]
fn probed_path_that_got_fast_stays_active() {
    let mut sim = Sim::new(probing(30), &[(key(1, 1000), false), (key(2, 1001), false)]);
    let mut bulk = Bulk::new();
    // B is slow until t = 20, then as fast as A: while backup it carries nothing, so its
    // srtt stays at the stale 100 ms until the probe lets it carry data again.
    sim.run_flagged(0, 200, |t, k, b| {
        let srtt = match (net(k), b, t) {
            (1, _, _) => 10,
            (_, false, 21..) => 12,
            _ => 100,
        };
        bulk.sample(k, b, srtt)
    });
    assert_eq!(
        sim.decisions(),
        vec![
            (5, 2, VerdictKind::SetBackup(true)),
            (35, 2, VerdictKind::SetBackup(false)),
        ]
    );
    assert!(!sim.judge.demoted_by_us(&key(2, 1001)));
}

#[test]
fn without_probe_a_stale_backup_is_never_restored() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    let mut bulk = Bulk::new();
    sim.run_flagged(0, 200, |t, k, b| {
        let srtt = match (net(k), b, t) {
            (1, _, _) => 10,
            (_, false, 21..) => 12,
            _ => 100,
        };
        bulk.sample(k, b, srtt)
    });
    assert_eq!(sim.decisions(), vec![(5, 2, VerdictKind::SetBackup(true))]);
}

#[test]
fn backup_that_still_carries_data_is_measured_not_probed() {
    let mut sim = Sim::new(probing(30), &[(key(1, 1000), false), (key(2, 1001), false)]);
    // B keeps getting data acknowledged while backup until t = 50 (and stays slow): its
    // samples are fresh, so no probe until 30 s after the last progress.
    sim.run(0, 100, |t, k| SubflowSample {
        bytes_acked: if net(k) == 1 {
            1000 * t
        } else {
            1000 * t.min(50)
        },
        ..rtt(if net(k) == 1 { 10 } else { 100 })
    });
    assert_eq!(
        sim.decisions(),
        vec![
            (5, 2, VerdictKind::SetBackup(true)),
            (80, 2, VerdictKind::SetBackup(false)),
        ]
    );
}

#[test]
fn probed_path_on_an_idle_connection_is_not_judged_on_its_stale_srtt() {
    let mut sim = Sim::new(probing(30), &[(key(1, 1000), false), (key(2, 1001), false)]);
    let mut bulk = Bulk::new();
    // Bulk until t = 30, then idle: after the probe B has no fresh measurement, so it is
    // neither demoted again nor probed again (and its stale srtt is not anyone's best).
    sim.run_flagged(0, 200, |t, k, b| {
        let srtt = if net(k) == 1 { 10 } else { 100 };
        if t < 30 {
            bulk.sample(k, b, srtt)
        } else {
            SubflowSample {
                bytes_acked: bulk.acked.get(k).copied().unwrap_or(0),
                ..rtt(srtt)
            }
        }
    });
    assert_eq!(
        sim.decisions(),
        vec![
            (5, 2, VerdictKind::SetBackup(true)),
            (35, 2, VerdictKind::SetBackup(false)),
        ]
    );
}

#[test]
fn probe_the_kernel_never_applies_is_retried_once_per_probe_interval() {
    let mut sim = Sim::new(probing(30), &[(key(1, 1000), false), (key(2, 1001), false)]);
    let mut bulk = Bulk::new();
    sim.run_flagged(0, 35, |_, k, b| {
        bulk.sample(k, b, if net(k) == 1 { 10 } else { 100 })
    });
    sim.apply = false;
    sim.run_flagged(35, 100, |_, k, b| {
        bulk.sample(k, b, if net(k) == 1 { 10 } else { 100 })
    });
    // The probe at 35 never shows up; given up at 40; the next probe is due 30 s after the
    // last request, not 30 s after the demotion.
    assert_eq!(
        sim.decisions(),
        vec![
            (5, 2, VerdictKind::SetBackup(true)),
            (35, 2, VerdictKind::SetBackup(false)),
            (65, 2, VerdictKind::SetBackup(false)),
            (95, 2, VerdictKind::SetBackup(false)),
        ]
    );
}

/// Four paths on which probe, restore and demote all fall due in the same round (t = 15): A is
/// the best at 10 ms; B and D are slow and demoted at 5; B recovers to 12 ms from 10 (restore
/// due at 15) and carried data until 10 (so its probe is not due before 20); D never gets data
/// acknowledged (probe due at 15); C turns slow at 10 (demote due at 15).
fn three_rules_at_once(t: u64, k: &SubflowKey) -> SubflowSample {
    let (srtt, acked) = match net(k) {
        1 => (10, 1000 * t),
        2 => (if t < 10 { 100 } else { 12 }, 1000 * t.min(10)),
        3 => (if t < 10 { 10 } else { 100 }, 1000 * t),
        _ => (100, 0),
    };
    SubflowSample {
        bytes_acked: acked,
        ..rtt(srtt)
    }
}

#[test]
fn verdicts_of_one_round_come_in_input_order_whatever_the_rule() {
    let paths = [
        (key(1, 1000), false),
        (key(2, 1001), false),
        (key(3, 1002), false),
        (key(4, 1003), false),
    ];
    let mut sim = Sim::new(probing(10), &paths);
    sim.run(0, 16, three_rules_at_once);
    assert_eq!(
        sim.decisions(),
        vec![
            (5, 2, VerdictKind::SetBackup(true)),
            (5, 4, VerdictKind::SetBackup(true)),
            (15, 2, VerdictKind::SetBackup(false)),
            (15, 3, VerdictKind::SetBackup(true)),
            (15, 4, VerdictKind::SetBackup(false)),
        ]
    );
    let reasons: Vec<&str> = sim.log[2..]
        .iter()
        .map(|(_, v)| v.reason.as_str())
        .collect();
    assert!(
        reasons[0].contains("ratio 1.20 < restore ratio 1.50"),
        "{}",
        reasons[0]
    );
    assert!(reasons[1].contains("ratio 10.00 > 2.00"), "{}", reasons[1]);
    assert!(
        reasons[2].starts_with("probe: backup for 10.0s"),
        "{}",
        reasons[2]
    );

    // The same paths listed the other way round: the same verdicts, in the new order.
    let mut reversed = paths;
    reversed.reverse();
    let mut sim = Sim::new(probing(10), &reversed);
    sim.run(0, 16, three_rules_at_once);
    assert_eq!(
        sim.decisions(),
        vec![
            (5, 4, VerdictKind::SetBackup(true)),
            (5, 2, VerdictKind::SetBackup(true)),
            (15, 4, VerdictKind::SetBackup(false)),
            (15, 3, VerdictKind::SetBackup(true)),
            (15, 2, VerdictKind::SetBackup(false)),
        ]
    );
}

#[test]
fn last_active_subflow_is_never_closed_and_zero_active_is_rescued() {
    let p = RttParams {
        close_on_loss: true,
        ..params()
    };
    // A is the only active subflow (B is a configured backup) and loses 50 %.
    let mut sim = Sim::new(p, &[(key(1, 1000), false), (key(2, 1001), true)]);
    sim.run(0, 60, |t, k| SubflowSample {
        segs_out: 100 * t as u32,
        total_retrans: if net(k) == 1 { 50 * t as u32 } else { 0 },
        ..rtt(10)
    });
    assert_eq!(sim.decisions(), vec![]);

    // We demoted B; then A vanishes (closed by the peer): B comes back at once.
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    sim.run(0, 10, |_, k| rtt(if net(k) == 1 { 10 } else { 100 }));
    sim.subs.retain(|s| net(&s.0) != 1);
    sim.run(10, 20, |_, _| rtt(100));
    assert_eq!(
        sim.decisions(),
        vec![
            (5, 2, VerdictKind::SetBackup(true)),
            (10, 2, VerdictKind::SetBackup(false)),
        ]
    );
    assert!(sim.log[1].1.reason.contains("no active subflow left"));
}

#[test]
fn two_lossy_active_subflows_only_one_is_closed() {
    let p = RttParams {
        close_on_loss: true,
        ..params()
    };
    let mut sim = Sim::new(p, &[(key(1, 1000), false), (key(2, 1001), false)]);
    sim.run(0, 20, |t, _| SubflowSample {
        segs_out: 100 * t as u32,
        total_retrans: 10 * t as u32,
        ..rtt(10)
    });
    // First informative sample at t = 1, closed at t = 6; B stays (last active).
    assert_eq!(sim.decisions(), vec![(6, 1, VerdictKind::Close)]);
}

/// A path that starts losing 20 % at t = 10 and is fine again from t = 30.
fn dying_path(t: u64, k: &SubflowKey) -> SubflowSample {
    let lossy = net(k) == 2 && (10..30).contains(&t);
    let retrans = if net(k) == 2 && t >= 10 {
        20 * (t.min(29) - 9)
    } else {
        0
    };
    SubflowSample {
        segs_out: 100 * t as u32,
        total_retrans: retrans as u32,
        retransmits: u8::from(lossy),
        ..rtt(10)
    }
}

#[test]
fn dying_path_is_closed_after_hold_and_reopened_after_cooldown() {
    let p = RttParams {
        close_on_loss: true,
        ..params()
    };
    let mut sim = Sim::new(p, &[(key(1, 1000), false), (key(2, 1001), false)]);
    sim.run(0, 100, dying_path);
    let d = sim.decisions();
    assert_eq!(
        d.iter()
            .map(|(t, n, k)| (*t, *n, matches!(k, VerdictKind::Close)))
            .collect::<Vec<_>>(),
        vec![(15, 2, true), (45, 2, false)]
    );
    assert_eq!(
        d[1].2,
        VerdictKind::Reopen(SubflowPath {
            local: IpAddr::from([10, 0, 2, 1]),
            remote: SocketAddr::from(([10, 0, 0, 2], 80)),
            backup: false,
        })
    );
    assert!(sim.log[0]
        .1
        .reason
        .contains("20/100 segments retransmitted (20.0%)"));
    // During the cooldown the path is blocked for whoever opens subflows.
    let mut judge = RttJudge::new(p);
    let now = Instant::now();
    let input = |t: u64| {
        vec![
            (key(1, 1000), false, dying_path(t, &key(1, 1000))),
            (key(2, 1001), false, dying_path(t, &key(2, 1001))),
        ]
    };
    for t in 0..=15 {
        judge.evaluate(now + Duration::from_secs(t), &input(t));
    }
    assert!(judge.in_cooldown(IpAddr::from([10, 0, 2, 1]), key(2, 1001).remote));
    assert!(!judge.in_cooldown(IpAddr::from([10, 0, 1, 1]), key(1, 1000).remote));
}

#[test]
fn dying_path_is_left_alone_without_close_on_loss() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    sim.run(0, 100, dying_path);
    assert_eq!(sim.decisions(), vec![]);
}

#[test]
fn idle_windows_and_counter_resets_are_no_evidence() {
    let p = RttParams {
        close_on_loss: true,
        ..params()
    };
    let mut sim = Sim::new(p, &[(key(1, 1000), false), (key(2, 1001), false)]);
    // B: a loss burst at t = 1, then idle (no segments, not in RTO), a counter reset at
    // t = 20, and lossy again from t = 25: closed 5 s after that, not at once.
    sim.run(0, 40, |t, k| {
        let (segs, retrans) = match (net(k), t) {
            (1, t) => (100 * t as u32, 0),
            (_, 0) => (100, 0),
            (_, 1..20) => (200, 50),
            (_, 20..25) => (10, 0),
            (_, t) => (10 + 100 * (t as u32 - 24), 50 * (t as u32 - 24)),
        };
        SubflowSample {
            segs_out: segs,
            total_retrans: retrans,
            ..rtt(10)
        }
    });
    assert_eq!(sim.decisions(), vec![(30, 2, VerdictKind::Close)]);
}

#[test]
fn missing_measurement_restarts_the_timer() {
    let mut sim = Sim::new(params(), &[(key(1, 1000), false), (key(2, 1001), false)]);
    sim.run(0, 30, |t, k| {
        rtt(if net(k) == 1 {
            10
        } else if t == 4 {
            0
        } else {
            100
        })
    });
    // Slow from 0, broken at 4, slow again from 5: demoted at 10.
    assert_eq!(sim.decisions(), vec![(10, 2, VerdictKind::SetBackup(true))]);
}

#[test]
fn forgotten_subflows_and_verdict_display() {
    let mut judge = RttJudge::new(params());
    let now = Instant::now();
    for t in 0..6 {
        judge.evaluate(
            now + Duration::from_secs(t),
            &[
                (key(1, 1000), false, rtt(10)),
                (key(2, 1001), false, rtt(100)),
            ],
        );
    }
    assert!(judge.demoted_by_us(&key(2, 1001)));
    judge.evaluate(
        now + Duration::from_secs(6),
        &[(key(1, 1000), false, rtt(10))],
    );
    assert!(!judge.demoted_by_us(&key(2, 1001)));
    let v = Verdict {
        key: key(2, 1001),
        kind: VerdictKind::SetBackup(true),
        code: "slow",
        reason: "x".into(),
    };
    assert_eq!(v.to_string(), "set backup 10.0.2.1:1001 -> 10.0.0.2:80: x");
}

// ---- the policy around the judge, driven through a real `Connection` ----

const REMOTE: ([u8; 4], u16) = ([10, 0, 0, 2], 80);

fn locals(b_backup: bool) -> Vec<LocalAddr> {
    vec![local("10.0.1.1", 2, false), local("10.0.2.1", 3, b_backup)]
}

/// A client connection with A (initial, 10.0.1.1:1000) and B (10.0.2.1:1001) established.
fn conn(now: Instant, b_backup: bool) -> Connection {
    Connection::adopt(
        now,
        Token(7),
        key(1, 1000).local,
        SocketAddr::from(REMOTE),
        [
            KernelSubflow {
                key: key(1, 1000),
                loc_id: 0,
                rem_id: 0,
                backup: false,
                // Fully established (ss `e`): joins allowed.
                sample: SubflowSample {
                    fully_established: true,
                    ..rtt(10)
                },
            },
            KernelSubflow {
                key: key(2, 1001),
                loc_id: 1,
                rem_id: 0,
                backup: b_backup,
                sample: rtt(10),
            },
        ],
    )
}

/// Feeds one sample round at `now` and hands the decisions to the connection.
fn round(
    policy: &mut RttBased,
    conn: &mut Connection,
    locals: &[LocalAddr],
    now: Instant,
    a: SubflowSample,
    b: SubflowSample,
) -> Vec<Decision> {
    conn.handle_samples(now, &[(key(1, 1000), a), (key(2, 1001), b)]);
    let cx = ctx(now, conn, locals);
    let d = policy.on_samples(&cx);
    conn.handle_decisions(now, d.clone());
    d
}

fn sub_closed(k: SubflowKey) -> PmEvent {
    let mut s = sub(&k.local.to_string(), &k.remote.to_string(), 1, 0, false);
    s.token = Token(7);
    PmEvent::SubClosed(s)
}

#[test]
fn policy_demotes_and_keeps_fullmesh_from_undoing_it() {
    let t0 = Instant::now();
    let at = |t: u64| t0 + Duration::from_secs(t);
    let locals = locals(false);
    let mut c = conn(t0, false);
    let mut policy = RttBased::new(params());
    assert_eq!(PLUGIN.name, "rtt-based");
    let mut all = Vec::new();
    for t in 0..=5 {
        all.extend(round(
            &mut policy,
            &mut c,
            &locals,
            at(t),
            rtt(10),
            rtt(100),
        ));
    }
    assert_eq!(
        actions(&all),
        vec![Action::SetBackup {
            key: key(2, 1001),
            backup: true
        }]
    );
    // The decision carries its reason, with the numbers.
    let why = all[0].to_string();
    assert!(why.starts_with("set backup 10.0.2.1:1001"), "{why}");
    assert_eq!(all[0].reason.code, "slow");
    assert!(why.contains("srtt 100.0ms vs best 10.0ms"), "{why}");

    // The plain mesh would clear the flag again on its next tick; rtt-based does not.
    let cx = ctx(at(6), &c, &locals);
    let undo = Action::SetBackup {
        key: key(2, 1001),
        backup: false,
    };
    assert!(actions(&mesh::reconcile(&cx, 8)).contains(&undo));
    assert_eq!(policy.on_tick(&cx), vec![]);

    // B recovers (10 ms < 1.5 x 10 ms) for hold: restored.
    let mut all = Vec::new();
    for t in 6..=11 {
        all.extend(round(&mut policy, &mut c, &locals, at(t), rtt(10), rtt(10)));
    }
    assert_eq!(actions(&all), vec![undo]);
    assert_eq!(all[0].reason.code, "recovered");
}

#[test]
fn policy_probes_a_stale_demoted_subflow_with_a_note() {
    let t0 = Instant::now();
    let at = |t: u64| t0 + Duration::from_secs(t);
    let locals = locals(false);
    let mut c = conn(t0, false);
    let mut policy = RttBased::new(probing(10));
    let sample = |ms: u32, acked: u64| SubflowSample {
        bytes_acked: acked,
        ..rtt(ms)
    };
    let mut all = Vec::new();
    for t in 0..=15 {
        // B carries data until its demotion at t = 5, none after.
        let b_acked = 1000 * t.min(5);
        all.extend(round(
            &mut policy,
            &mut c,
            &locals,
            at(t),
            sample(10, 1000 * t),
            sample(100, b_acked),
        ));
    }
    let flag = |backup| Action::SetBackup {
        key: key(2, 1001),
        backup,
    };
    assert_eq!(actions(&all), vec![flag(true), flag(false)]);
    let why = all[1].to_string();
    assert!(
        why.starts_with(
            "clear backup 10.0.2.1:1001 -> 10.0.0.2:80 (probe: probe: backup for 10.0s"
        ),
        "{why}"
    );
    // Judged afresh: still slow on fresh data, so demoted again after hold.
    let mut all = Vec::new();
    for t in 16..=21 {
        all.extend(round(
            &mut policy,
            &mut c,
            &locals,
            at(t),
            sample(10, 1000 * t),
            sample(100, 1000 * t),
        ));
    }
    assert_eq!(actions(&all), vec![flag(true)]);
}

#[test]
fn policy_leaves_backup_interfaces_alone() {
    let t0 = Instant::now();
    let at = |t: u64| t0 + Duration::from_secs(t);
    let mut c = conn(t0, false);
    let mut policy = RttBased::new(params());
    for t in 0..=5 {
        round(
            &mut policy,
            &mut c,
            &locals(false),
            at(t),
            rtt(10),
            rtt(100),
        );
    }
    assert!(policy
        .judge()
        .is_some_and(|j| j.demoted_by_us(&key(2, 1001))));
    // B's interface becomes a backup interface; B gets fast again: it stays backup.
    let mut all = Vec::new();
    for t in 6..60 {
        all.extend(round(
            &mut policy,
            &mut c,
            &locals(true),
            at(t),
            rtt(10),
            rtt(5),
        ));
    }
    assert_eq!(all, vec![]);
    assert!(!policy
        .judge()
        .is_some_and(|j| j.demoted_by_us(&key(2, 1001))));
}

fn lossy(t: u64, rate_pct: u32) -> SubflowSample {
    SubflowSample {
        segs_out: 100 * t as u32,
        total_retrans: rate_pct * t as u32,
        ..rtt(10)
    }
}

#[test]
fn policy_closes_a_lossy_path_and_reopens_it_after_cooldown() {
    let t0 = Instant::now();
    let at = |t: u64| t0 + Duration::from_secs(t);
    let locals = locals(false);
    let mut c = conn(t0, false);
    let p = RttParams {
        close_on_loss: true,
        ..params()
    };
    let mut policy = RttBased::new(p);
    let mut all = Vec::new();
    for t in 0..=6 {
        all.extend(round(
            &mut policy,
            &mut c,
            &locals,
            at(t),
            lossy(t, 0),
            lossy(t, 30),
        ));
    }
    assert_eq!(actions(&all), vec![Action::Close { key: key(2, 1001) }]);
    assert!(all[0]
        .reason
        .detail
        .contains("30/100 segments retransmitted"));

    // The kernel confirms; fullmesh alone would re-open at once, rtt-based waits.
    let ev = sub_closed(key(2, 1001));
    c.handle_event(at(7), &ev);
    let cx = ctx(at(7), &c, &locals);
    assert!(mesh::reconcile(&cx, 8)
        .iter()
        .any(|d| matches!(d.action, Action::Open { .. })));
    assert_eq!(policy.on_event(&cx, &ev), vec![]);
    for t in [8, 20, 35] {
        let cx = ctx(at(t), &c, &locals);
        assert_eq!(policy.on_tick(&cx), vec![], "t = {t}");
    }
    let cx = ctx(at(36), &c, &locals);
    let reopen = policy.on_tick(&cx);
    assert_eq!(
        actions(&reopen),
        vec![Action::Open {
            local: IpAddr::from([10, 0, 2, 1]),
            if_index: Some(3),
            remote: SocketAddr::from(REMOTE),
            backup: false,
            timeout: None,
        }]
    );
    assert_eq!(reopen[0].reason.code, "cooldown-over");
    assert!(reopen[0].reason.detail.contains("closed for loss"));
}

#[test]
fn policy_does_not_reopen_from_an_address_that_went_away() {
    let t0 = Instant::now();
    let at = |t: u64| t0 + Duration::from_secs(t);
    let all_locals = locals(false);
    let mut c = conn(t0, false);
    let p = RttParams {
        close_on_loss: true,
        ..params()
    };
    let mut policy = RttBased::new(p);
    for t in 0..=6 {
        round(
            &mut policy,
            &mut c,
            &all_locals,
            at(t),
            lossy(t, 0),
            lossy(t, 30),
        );
    }
    c.handle_event(at(7), &sub_closed(key(2, 1001)));
    let only_a = &all_locals[..1];
    let cx = ctx(at(40), &c, only_a);
    // Nothing is decided, so nothing is logged: the path is the mesh's again.
    assert_eq!(policy.on_tick(&cx), vec![]);
    assert!(!policy
        .judge()
        .is_some_and(|j| j.in_cooldown(IpAddr::from([10, 0, 2, 1]), key(2, 1001).remote)));
    // The cooldown is over: when the address returns, fullmesh opens the path again.
    let cx = ctx(at(41), &c, &all_locals);
    assert!(policy
        .on_locals_changed(&cx)
        .iter()
        .any(|d| matches!(d.action, Action::Open { remote, .. } if remote == key(2, 1001).remote)));
}

#[test]
fn policy_never_closes_for_loss_on_the_server_side() {
    let t0 = Instant::now();
    let at = |t: u64| t0 + Duration::from_secs(t);
    let locals = locals(false);
    let mut c = conn(t0, false).with_server_side(true);
    let p = RttParams {
        close_on_loss: true,
        ..params()
    };
    let mut policy = RttBased::new(p);
    let mut all = Vec::new();
    for t in 0..30 {
        all.extend(round(
            &mut policy,
            &mut c,
            &locals,
            at(t),
            lossy(t, 0),
            lossy(t, 30),
        ));
    }
    assert_eq!(all, vec![]);
}
