//! The active-standby policy: its failure detector over synthetic sample series, then the
//! policy driving a real `Connection` against a simulated network (paths that die silently,
//! heal, flap) and kernel (creates that establish only on live paths, destroys that close).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{info, ip, key, sa, sub, INIT_LOCAL, INIT_REMOTE, T};
use mptcp_pmd_policies::active_standby::{
    ActiveStandby, ActiveStandbyParams, PathState, Tunables, Watch, PLUGIN, PROBE_LIFE,
};
use mptcp_pmd_policies::addrmatch::InterfaceGlob;
use mptcp_pmd_policies::params::{Key, Keys, Node, ParamError, Pos, Value};
use mptcp_pmd_policies::{
    Action, ConnTimers, Connection, Ctx, Decision, LocalAddr, Path, PmCommand, PmEvent, Policy,
    PolicyParams, SubflowKey, SubflowSample,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---- the detector ----

/// A healthy subflow's sample: srtt 3 ms, something acknowledged just now.
fn healthy(acked: u64) -> SubflowSample {
    SubflowSample {
        tcp_state: 1,
        srtt_us: 3_000,
        rttvar_us: 1_000,
        unacked: 0,
        bytes_acked: acked,
        last_ack_recv_ms: 2,
        last_data_sent_ms: 2,
        ..SubflowSample::default()
    }
}

/// Feeds `f(t)` every `step` ms over `from..to` (ms after `t0`); returns the first failure
/// and when.
fn first_failure(
    w: &mut Watch,
    t: &Tunables,
    t0: Instant,
    (from, to, step): (u64, u64, u64),
    mut f: impl FnMut(u64) -> SubflowSample,
) -> Option<(u64, String, String)> {
    (from..to).step_by(step as usize).find_map(|at| {
        w.observe(t, t0 + ms(at), &f(at))
            .map(|fail| (at, fail.code.to_owned(), fail.detail))
    })
}

#[test]
fn a_bulk_stall_is_detected_at_the_threshold_not_before() {
    let t = Tunables::default();
    let t0 = Instant::now();
    let mut w = Watch::default();
    // A bulk upload: data always outstanding, acked every sample until the path dies at
    // 1000 ms; afterwards nothing is acked and the sender keeps retransmitting.
    let bulk = |at: u64| {
        let dead = at >= 1000;
        let last_ack = if dead { 1000 } else { at };
        SubflowSample {
            unacked: 40,
            bytes_acked: last_ack * 2_500,
            last_ack_recv_ms: u32::try_from(at - last_ack).unwrap(),
            last_data_sent_ms: 3,
            ..healthy(0)
        }
    };
    let (at, code, detail) = first_failure(&mut w, &t, t0, (0, 3000, 10), bulk).expect("a failure");
    // Floor 100 ms (TCP's own tail-loss probe, 2 x 3 ms + 2 ms, then an RTT, 3 ms + 4 x
    // 1 ms, is less): no ACK for 100 ms is not yet a failure, the next sample is.
    assert_eq!(at, 1110, "{detail}");
    assert_eq!(code, "stalled");
    assert_eq!(
        detail,
        "no ack for 110 ms with 40 segments outstanding (threshold 100 ms = max(floor 100 ms, pto 8.0 ms + srtt 3.0 ms + 4 x rttvar 1.0 ms))"
    );
    assert_eq!(w.stalled_for(t0 + ms(1110)), Some(ms(110)));
}

#[test]
fn an_interactive_stall_is_timed_from_the_latest_it_can_have_started() {
    let t = Tunables::default();
    let t0 = Instant::now();
    let mut w = Watch::default();
    // 64-byte messages every 10 ms, each acked within the 20 ms sample period while healthy
    // (nothing outstanding at the samples). Dead from 1000 ms: messages pile up.
    let interactive = |at: u64| {
        if at <= 1000 {
            healthy(at * 3)
        } else {
            SubflowSample {
                unacked: u32::try_from((at - 1000) / 10).unwrap(),
                bytes_acked: 3000,
                last_ack_recv_ms: u32::try_from(at - 1000).unwrap(),
                last_data_sent_ms: 5,
                ..healthy(0)
            }
        }
    };
    let (at, _, detail) =
        first_failure(&mut w, &t, t0, (0, 3000, 20), interactive).expect("a failure");
    // The first sample after the death (1020) only proves 5 ms of waiting (the last send):
    // the stall counts from 1015, and exceeds 100 ms at the sample of 1120.
    assert_eq!(at, 1120, "{detail}");
    assert!(
        detail.starts_with("no ack for 105 ms with 12 segments"),
        "{detail}"
    );
}

#[test]
fn a_slow_or_queued_path_that_progresses_is_never_judged() {
    let t = Tunables::default();
    let t0 = Instant::now();
    let mut w = Watch::default();
    // srtt 300 ms behind a full queue: lots outstanding, but ACKs every few ms.
    let queued = |at: u64| SubflowSample {
        srtt_us: 300_000,
        rttvar_us: 50_000,
        rto_us: 500_000,
        unacked: 120,
        bytes_acked: at * 2_500,
        last_ack_recv_ms: 2,
        last_data_sent_ms: 1,
        ..healthy(0)
    };
    assert_eq!(first_failure(&mut w, &t, t0, (0, 10_000, 20), queued), None);
    // After an idle minute, one segment sent into the empty 300 ms path: its ACK takes one
    // RTT, far below the threshold: TCP would retransmit it at its RTO (500 ms, shorter than
    // the tail-loss probe's 2 x 300 + 200 ms for a single segment), then wait one RTT
    // (300 + 4 x 50 ms): 1 s.
    let mut w = Watch::default();
    let restart = |at: u64| {
        let (unacked, acked) = if (100..410).contains(&at) {
            (1, 0)
        } else if at >= 410 {
            (0, 1448)
        } else {
            (0, 0)
        };
        SubflowSample {
            srtt_us: 300_000,
            rttvar_us: 50_000,
            rto_us: 500_000,
            unacked,
            bytes_acked: acked,
            last_ack_recv_ms: if at < 410 { 60_000 } else { 1 },
            last_data_sent_ms: u32::try_from(at.saturating_sub(100)).unwrap(),
            ..healthy(0)
        }
    };
    assert_eq!(first_failure(&mut w, &t, t0, (0, 2000, 20), restart), None);
    let (threshold, how) = t.stall_threshold(&restart(200));
    assert_eq!(threshold, ms(1000));
    assert_eq!(
        how,
        "threshold 1000 ms = max(floor 100 ms, rto 500 ms + srtt 300 ms + 4 x rttvar 50 ms)"
    );
    // With two segments outstanding and a longer RTO (backed off once), the tail-loss probe
    // comes first (2 x 300 + 2 ms).
    let (threshold, how) = t.stall_threshold(&SubflowSample {
        unacked: 2,
        rto_us: 1_000_000,
        ..restart(200)
    });
    assert_eq!(threshold, ms(1102));
    assert_eq!(
        how,
        "threshold 1102 ms = max(floor 100 ms, pto 602 ms + srtt 300 ms + 4 x rttvar 50 ms)"
    );
}

#[test]
fn a_path_in_loss_recovery_that_returns_sacks_is_not_judged() {
    let t = Tunables::default();
    let t0 = Instant::now();
    let mut w = Watch::default();
    // A bulk upload in loss recovery (the numbers of a false failover on the hybrid bench:
    // 296 segments outstanding, srtt 13 ms): from 1000 ms to 1300 ms the cumulative ACK
    // stands at the first hole while duplicate ACKs with SACKs come back every few ms; then
    // the retransmission fills the hole and the cumulative ACK jumps.
    let recovering = |at: u64| {
        let acked = if (1000..1300).contains(&at) {
            1000 * 2_500
        } else {
            at * 2_500
        };
        SubflowSample {
            srtt_us: 13_000,
            rttvar_us: 700,
            unacked: 296,
            bytes_acked: acked,
            // An ACK 1-7 ms before each sample (each sample differs: new evidence).
            last_ack_recv_ms: u32::try_from(1 + at % 7).unwrap(),
            last_data_sent_ms: 1,
            ..healthy(0)
        }
    };
    assert_eq!(
        first_failure(&mut w, &t, t0, (0, 3000, 20), recovering),
        None
    );
    // The same cumulative ACK stuck with nothing coming back at all is a failure, at the
    // threshold.
    let mut w = Watch::default();
    let silent = |at: u64| SubflowSample {
        last_ack_recv_ms: u32::try_from(at.saturating_sub(1000).max(3)).unwrap(),
        ..recovering(at.min(1299))
    };
    let (at, code, _) = first_failure(&mut w, &t, t0, (0, 3000, 20), silent).expect("a failure");
    assert_eq!((at, code.as_str()), (1120, "stalled"));
}

#[test]
fn a_dead_path_with_nothing_outstanding_is_not_judged() {
    let t = Tunables::default();
    let t0 = Instant::now();
    let mut w = Watch::default();
    let idle = |_: u64| SubflowSample {
        unacked: 0,
        last_ack_recv_ms: 90_000,
        last_data_sent_ms: 90_000,
        ..healthy(7)
    };
    assert_eq!(first_failure(&mut w, &t, t0, (0, 5000, 20), idle), None);
}

#[test]
fn repeated_rtos_and_unanswered_probes_fail_but_a_closed_window_does_not() {
    let t = Tunables::default();
    let t0 = Instant::now();
    // A subflow first seen mid-outage: two RTOs of the head segment.
    let rto = SubflowSample {
        unacked: 2,
        retransmits: 2,
        backoff: 2,
        rto_us: 816_000,
        last_ack_recv_ms: 50,
        last_data_sent_ms: 10,
        ..healthy(0)
    };
    let f = Watch::default().observe(&t, t0, &rto).expect("rto");
    assert_eq!(f.code, "rto");
    assert_eq!(
        f.detail,
        "2 retransmission timeouts in a row without an ack (2 segments outstanding, rto 816 ms, backoff 2)"
    );
    // One RTO is not enough.
    let one = SubflowSample {
        retransmits: 1,
        ..rto
    };
    assert_eq!(Watch::default().observe(&t, t0, &one), None);
    // A zero window with its probes answered: the receiver is slow, not the path.
    let closed = SubflowSample {
        unacked: 0,
        snd_wnd: 0,
        probes: 1,
        last_ack_recv_ms: 400,
        ..healthy(0)
    };
    assert_eq!(Watch::default().observe(&t, t0, &closed), None);
    let unanswered = SubflowSample {
        probes: 2,
        ..closed
    };
    let f = Watch::default()
        .observe(&t, t0, &unanswered)
        .expect("probes");
    assert_eq!(f.code, "unanswered-probes");
    assert!(
        f.detail.contains(
            "2 zero-window or keepalive probes unanswered (peer window 0 bytes, no ack for 400 ms)"
        ),
        "{}",
        f.detail
    );
}

#[test]
fn a_sample_seen_again_is_no_new_evidence() {
    let t = Tunables::default();
    let t0 = Instant::now();
    let mut w = Watch::default();
    let stuck = SubflowSample {
        unacked: 3,
        last_ack_recv_ms: 60,
        last_data_sent_ms: 40,
        ..healthy(0)
    };
    assert_eq!(w.observe(&t, t0, &stuck), None);
    // No poll since: the same sample, a second later, proves no longer stall.
    assert_eq!(w.observe(&t, t0 + Duration::from_secs(1), &stuck), None);
    // A fresh one does.
    let later = SubflowSample {
        last_ack_recv_ms: 1060,
        ..stuck
    };
    assert!(w.observe(&t, t0 + Duration::from_secs(1), &later).is_some());
}

#[test]
fn the_hold_doubles_per_failure_and_is_capped() {
    let t = Tunables {
        hold: ms(400),
        hold_max: ms(3000),
        ..Tunables::default()
    };
    let holds: Vec<_> = (0..=6).map(|n| t.hold_for(n)).collect();
    assert_eq!(
        holds,
        vec![
            ms(400),
            ms(400),
            ms(800),
            ms(1600),
            ms(3000),
            ms(3000),
            ms(3000)
        ]
    );
    assert_eq!(t.hold_for(usize::MAX), ms(3000));
}

#[test]
fn the_hold_outlasts_the_longest_recent_spell_that_ended_in_a_failure() {
    let t = Tunables {
        hold: ms(400),
        hold_max: ms(3000),
        ..Tunables::default()
    };
    // No spell remembered: the doubling alone.
    assert_eq!(t.hold_after(2, None), ms(800));
    // Up 0.9 s after its first outage, then failed again: the second hold outlasts that.
    assert_eq!(t.hold_after(2, Some(ms(900))), ms(1300));
    // A short spell never shortens the doubling.
    assert_eq!(t.hold_after(3, Some(ms(100))), ms(1600));
    // Capped.
    assert_eq!(t.hold_after(2, Some(ms(10_000))), ms(3000));
}

#[test]
fn a_long_hold_is_verified_a_few_times_not_every_probe_period() {
    let t = Tunables::default();
    assert_eq!(t.probe, ms(200));
    assert_eq!(t.verify_every(ms(400)), ms(200));
    assert_eq!(t.verify_every(ms(1300)), ms(325));
    assert_eq!(t.verify_every(ms(12_800)), ms(3200));
}

// ---- the policy against a simulated network and kernel ----

// ---- the detector on real sample series ----

/// A series of `tcp_info` samples from `fixtures/active_standby/NAME` (see each file's header
/// for where it comes from): (ms, sample).
fn series(name: &str) -> Vec<(i64, SubflowSample)> {
    let path = format!(
        "{}/tests/fixtures/active_standby/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            let t: i64 = it.next().unwrap().parse().unwrap();
            let mut s = SubflowSample {
                tcp_state: 1,
                ..SubflowSample::default()
            };
            for kv in it {
                let (k, v) = kv.split_once('=').unwrap();
                let v: u64 = v.parse().unwrap();
                let u32v = u32::try_from(v).unwrap();
                match k {
                    "unacked" => s.unacked = u32v,
                    "bytes_acked" => s.bytes_acked = v,
                    "last_ack_recv_ms" => s.last_ack_recv_ms = u32v,
                    "last_data_sent_ms" => s.last_data_sent_ms = u32v,
                    "srtt_us" => s.srtt_us = u32v,
                    "rttvar_us" => s.rttvar_us = u32v,
                    "rto_us" => s.rto_us = u32v,
                    "retransmits" => s.retransmits = u8::try_from(v).unwrap(),
                    "backoff" => s.backoff = u8::try_from(v).unwrap(),
                    "probes" => s.probes = u8::try_from(v).unwrap(),
                    "lost" => s.lost = u32v,
                    other => panic!("unknown field {other} in {path}"),
                }
            }
            (t, s)
        })
        .collect()
}

/// Replays a series through a fresh detector: the first failure (ms, code, detail), and the
/// largest stall seen as a share of its threshold before it.
fn replay(name: &str) -> (Option<(i64, &'static str, String)>, f64) {
    let t = Tunables::default();
    let t0 = Instant::now() + Duration::from_secs(10);
    let mut w = Watch::default();
    let mut worst: f64 = 0.0;
    for (at, sample) in series(name) {
        let now = t0.checked_add_signed(at).unwrap();
        if let Some(f) = w.observe(&t, now, &sample) {
            return (Some((at, f.code, f.detail)), worst);
        }
        if let Some(stalled) = w.stalled_for(now) {
            let (threshold, _) = t.stall_threshold(&sample);
            worst = worst.max(stalled.as_secs_f64() / threshold.as_secs_f64());
        }
    }
    (None, worst)
}

/// `Instant + signed ms`.
trait AddSigned {
    fn checked_add_signed(self, ms: i64) -> Option<Instant>;
}

impl AddSigned for Instant {
    fn checked_add_signed(self, ms: i64) -> Option<Instant> {
        let d = Duration::from_millis(ms.unsigned_abs());
        if ms >= 0 {
            self.checked_add(d)
        } else {
            self.checked_sub(d)
        }
    }
}

#[test]
fn real_healthy_cold_start_through_a_full_queue_is_never_judged() {
    // Slow start into a full 20 Mbit/s tbf queue: srtt climbs from 0.3 to 46 ms, up to 171
    // segments outstanding, losses; the ACKs keep coming.
    let (failure, worst) = replay("healthy_cold_start.txt");
    assert_eq!(failure, None);
    assert!(
        worst < 0.5,
        "largest stall {:.0} % of its threshold",
        worst * 100.0
    );
}

#[test]
fn real_cut_of_a_queued_bulk_path_is_detected_when_tcp_would_have_had_an_answer() {
    // srtt 41 ms behind the full queue, in loss recovery (43 segments marked lost) when the
    // cut comes: TCP's next move is its RTO (244 ms; no tail-loss probe in recovery), whose
    // answer would be due a round trip later, 294 ms in all. The first sample past it
    // (sampled every ~60 ms here: 240 ms without an ACK at 275 ms, 304 ms at 341) fails the
    // path, by the RTO before its backoff (the RTO fired at 244 ms: tcpi_rto shows 488 ms
    // then, backoff 1).
    let (failure, _) = replay("cut_queued_bulk.txt");
    let (at, code, detail) = failure.expect("the cut is a failure");
    assert_eq!(code, "stalled");
    assert_eq!(at, 341, "{detail}");
    assert_eq!(
        detail,
        "no ack for 304 ms with 133 segments outstanding (threshold 293 ms = max(floor 100 ms, in loss recovery: rto 244 ms + srtt 40 ms + 4 x rttvar 2.3 ms))"
    );
    let t = Tunables::default();
    let before = series("cut_queued_bulk.txt")
        .into_iter()
        .rfind(|(ms, _)| *ms < 341)
        .unwrap();
    assert_eq!((before.0, before.1.last_ack_recv_ms), (275, 240));
    assert_eq!(
        t.stall_threshold(&before.1).0,
        Duration::from_micros(293_957)
    );
    // Outside loss recovery the same path would have been judged by the tail-loss probe
    // (2 x srtt) instead: 133 ms.
    let open = SubflowSample {
        lost: 0,
        ..before.1
    };
    assert_eq!(t.stall_threshold(&open).0, Duration::from_micros(133_239));
}

#[test]
fn real_interactive_cut_is_detected_at_the_floor() {
    // srtt 38 us: the floor decides, as before; the interactive target (<= 250 ms
    // one-way, <= 5 messages over 200 ms) needs it.
    let (failure, worst) = replay("cut_interactive.txt");
    let (at, code, detail) = failure.expect("the cut is a failure");
    assert_eq!(code, "stalled");
    assert!(
        (100..=125).contains(&at),
        "failed {at} ms after the cut: {detail}"
    );
    assert!(
        detail.contains("(threshold 100 ms = max(floor 100 ms,"),
        "{detail}"
    );
    assert!(worst < 1.0);
}

#[test]
fn real_healthy_path_silent_in_loss_recovery_until_its_rto_is_never_judged() {
    // A healthy upload in loss recovery (107 of 173 segments marked lost: the full queue
    // dropped the retransmissions too) heard no ACK for 244 ms at srtt 43 ms, until its RTO
    // (244 ms) fired and the ACKs resumed. The tail-loss probe's 2 x srtt (87 ms) does not
    // apply in recovery (Linux sends none there): the RTO does, and the path is not failed.
    let (failure, worst) = replay("healthy_recovery_rto.txt");
    assert_eq!(failure, None);
    assert!(
        (0.7..1.0).contains(&worst),
        "largest stall {:.0} % of its threshold",
        worst * 100.0
    );
}

const PRIMARY: &str = "10.0.1.1";
const STANDBY: &str = "10.0.2.1";
const STEP: u64 = 20;

fn eth() -> LocalAddr {
    LocalAddr {
        addr: ip(PRIMARY),
        if_index: 1,
        if_name: "eth0".into(),
        backup: false,
    }
}

fn wwan() -> LocalAddr {
    LocalAddr {
        addr: ip(STANDBY),
        if_index: 2,
        if_name: "wwan0".into(),
        backup: false,
    }
}

fn primary_path() -> Path {
    Path {
        local: ip(PRIMARY),
        remote: sa(INIT_REMOTE),
    }
}

/// What one subflow's traffic looked like (the simulated TCP behind the samples).
#[derive(Debug, Clone, Copy)]
struct Flow {
    acked: u64,
    last_ack: Instant,
    stuck: bool,
}

/// The SYN times of a join, ms after its first, as Linux 6.18 sends them with the default
/// `tcp_syn_linear_timeouts = 4` (verified, `integration/tests/kernel_probe.rs`): every second
/// up to 5 s, then backing off.
const SYN_TIMES: [u64; 11] = [
    0, 1000, 2000, 3000, 4000, 5000, 7000, 11_000, 19_000, 35_000, 67_000,
];

/// A join whose SYN is not answered yet: the kernel's SYN_SENT socket.
#[derive(Debug, Clone, Copy)]
struct Syn {
    key: SubflowKey,
    local_id: u8,
    backup: bool,
    opened: Instant,
}

impl Syn {
    /// The SYNs sent so far after the first (`tcpi_retransmits`) at `now`.
    fn retransmits(&self, now: Instant) -> u64 {
        let age = u64::try_from(now.duration_since(self.opened).as_millis()).unwrap();
        SYN_TIMES.iter().filter(|t| **t > 0 && **t <= age).count() as u64
    }
}

/// A connection (initial subflow on the primary), the policy, and the network: paths whose
/// local address is in `dead` drop everything silently; an interactive flow sends on every
/// subflow that is not backup.
struct Sim {
    p: ActiveStandby,
    c: Connection,
    locals: Vec<LocalAddr>,
    t0: Instant,
    now: Instant,
    port: u16,
    dead: HashSet<IpAddr>,
    flows: HashMap<SubflowKey, Flow>,
    /// Joins in SYN_SENT.
    syns: Vec<Syn>,
    /// When a SYN went out on a path that dropped it (ms after `t0`).
    syn_log: Vec<u64>,
    /// Every decision, with its time in ms after `t0`.
    log: Vec<(u64, Decision)>,
    /// Every command the kernel got, with its time.
    cmds: Vec<(u64, PmCommand)>,
}

impl Sim {
    fn new(p: ActiveStandby) -> Sim {
        Sim::with(p, vec![eth(), wwan()], false)
    }

    fn with(p: ActiveStandby, locals: Vec<LocalAddr>, deny_join_id0: bool) -> Sim {
        let t0 = Instant::now();
        let mut c = Connection::new(T, ConnTimers::default());
        let mut i = info(INIT_LOCAL, INIT_REMOTE, false);
        i.flags.deny_join_id0 = deny_join_id0;
        c.handle_event(t0, &PmEvent::Created(i));
        let mut sim = Sim {
            p,
            c,
            locals,
            t0,
            now: t0,
            port: 50000,
            dead: HashSet::new(),
            flows: HashMap::new(),
            syns: Vec::new(),
            syn_log: Vec::new(),
            log: Vec::new(),
            cmds: Vec::new(),
        };
        sim.event(PmEvent::Established(i));
        sim
    }

    fn t(&self) -> u64 {
        u64::try_from(self.now.duration_since(self.t0).as_millis()).unwrap()
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            now: self.now,
            conn: &self.c,
            locals: &self.locals,
            listeners: &[],
        }
    }

    /// Runs one policy hook on the current connection (decisions returned, not applied).
    fn hook(
        &mut self,
        f: impl FnOnce(&mut ActiveStandby, &Ctx<'_>) -> Vec<Decision>,
    ) -> Vec<Decision> {
        let ctx = Ctx {
            now: self.now,
            conn: &self.c,
            locals: &self.locals,
            listeners: &[],
        };
        f(&mut self.p, &ctx)
    }

    fn apply(&mut self, ds: Vec<Decision>) {
        let t = self.t();
        self.log.extend(ds.iter().map(|d| (t, d.clone())));
        self.c.handle_decisions(self.now, ds);
        self.kernel();
    }

    fn event(&mut self, ev: PmEvent) {
        self.c.handle_event(self.now, &ev);
        let ctx = Ctx {
            now: self.now,
            conn: &self.c,
            locals: &self.locals,
            listeners: &[],
        };
        let ds = self.p.on_event(&ctx, &ev);
        self.apply(ds);
    }

    fn alive(&self, local: IpAddr) -> bool {
        !self.dead.contains(&local) && self.locals.iter().any(|l| l.addr == local)
    }

    /// The join of `syn` established: its SUB_ESTABLISHED (the event's BACKUP is the peer's
    /// flag: false).
    fn join(&mut self, syn: Syn) {
        let mut s = sub("0.0.0.0:1", "0.0.0.0:1", syn.local_id, 0, false);
        s.local = syn.key.local;
        s.remote = syn.key.remote;
        let _ = syn.backup;
        self.event(PmEvent::SubEstablished(s));
    }

    /// The kernel: a create sends its SYN at once, which joins unless its path is dead (then
    /// it is retransmitted, see [`SYN_TIMES`]); a destroy closes.
    fn kernel(&mut self) {
        let cmds: Vec<PmCommand> = std::iter::from_fn(|| self.c.poll_command()).collect();
        for cmd in cmds {
            self.cmds.push((self.t(), cmd.clone()));
            self.c.handle_command_result(self.now, &cmd, Ok(()));
            match cmd {
                PmCommand::CreateSubflow {
                    local,
                    local_id,
                    remote,
                    backup,
                    ..
                } => {
                    let syn = Syn {
                        key: SubflowKey {
                            local: std::net::SocketAddr::new(local, self.port),
                            remote,
                        },
                        local_id,
                        backup,
                        opened: self.now,
                    };
                    self.port += 1;
                    if self.alive(local) {
                        self.join(syn);
                    } else {
                        self.syn_log.push(self.t());
                        self.syns.push(syn);
                    }
                }
                PmCommand::DestroySubflow { key, .. } => {
                    let mut s = sub("0.0.0.0:1", "0.0.0.0:1", 0, 0, false);
                    s.local = key.local;
                    s.remote = key.remote;
                    if let Some(i) = self.syns.iter().position(|y| y.key == key) {
                        // A SYN_SENT socket is reported closed with remote port 0.
                        self.syns.remove(i);
                        s.remote.set_port(0);
                        s.error = Some(104);
                    }
                    self.event(PmEvent::SubClosed(s));
                }
                _ => {}
            }
        }
    }

    /// The SYNs due in `(from, to]` whose path works now join; the others are logged.
    fn retransmit_syns(&mut self, from: Instant, to: Instant) {
        for y in &self.syns {
            for t in SYN_TIMES {
                let at = y.opened + ms(t);
                if at > from && at <= to && !self.alive(y.key.local.ip()) {
                    self.syn_log
                        .push(u64::try_from(at.duration_since(self.t0).as_millis()).unwrap());
                }
            }
        }
        let due: Vec<Syn> = self
            .syns
            .iter()
            .filter(|y| self.alive(y.key.local.ip()))
            .filter(|y| {
                SYN_TIMES.iter().any(|t| {
                    let at = y.opened + ms(*t);
                    at > from && at <= to
                })
            })
            .copied()
            .collect();
        for y in due {
            self.syns.retain(|x| x.key != y.key);
            self.join(y);
        }
    }

    /// Destroys (SUBFLOW_DESTROY) sent in `from..to` ms, with their times.
    fn destroys(&self, from: u64, to: u64) -> Vec<u64> {
        self.cmds
            .iter()
            .filter(|(t, c)| (from..to).contains(t) && c.name() == "subflow_destroy")
            .map(|(t, _)| *t)
            .collect()
    }

    /// What sock_diag would say about `sf` now.
    fn sample(&mut self, key: SubflowKey, backup: bool) -> SubflowSample {
        let now = self.now;
        let alive = !self.dead.contains(&key.local.ip());
        let f = self.flows.entry(key).or_insert(Flow {
            acked: 0,
            last_ack: now,
            stuck: false,
        });
        if alive {
            // A carrying subflow's data is acked; so is what a healed backup subflow still
            // had stuck (the kernel retransmits it).
            if !backup || f.stuck {
                f.acked += 640;
            }
            f.last_ack = now.checked_sub(ms(2)).unwrap_or(now);
            f.stuck = false;
        } else if !backup {
            f.stuck = true;
        }
        SubflowSample {
            unacked: if f.stuck { 3 } else { 0 },
            bytes_acked: f.acked,
            last_ack_recv_ms: u32::try_from(now.duration_since(f.last_ack).as_millis()).unwrap(),
            last_data_sent_ms: if backup { 60_000 } else { 5 },
            backup,
            fully_established: true,
            ..healthy(0)
        }
    }

    /// One sample period: the kernel's SYN retransmissions, the connection's timers, then a
    /// sock_diag sample of every established subflow and of every SYN_SENT socket.
    fn step(&mut self) {
        let before = self.now;
        self.now += ms(STEP);
        self.retransmit_syns(before, self.now);
        if self.c.poll_timeout().is_some_and(|due| due <= self.now) {
            self.c.handle_timeout(self.now);
            self.kernel();
            let ds = self.hook(|p, ctx| p.on_tick(ctx));
            self.apply(ds);
        }
        let subs: Vec<(SubflowKey, bool)> = self
            .c
            .subflows()
            .iter()
            .filter(|sf| sf.is_established() && !sf.closing)
            .filter_map(|sf| Some((sf.key()?, sf.backup)))
            .collect();
        let mut samples: Vec<_> = subs
            .into_iter()
            .map(|(k, b)| (k, self.sample(k, b)))
            .collect();
        let now = self.now;
        samples.extend(self.syns.iter().map(|y| {
            let r = y.retransmits(now);
            (
                y.key,
                SubflowSample {
                    tcp_state: mptcp_pmd_policies::model::TCP_SYN_SENT,
                    retransmits: u8::try_from(r).unwrap(),
                    backoff: u8::try_from(r.saturating_sub(4)).unwrap(),
                    rto_us: 1_000_000 << r.saturating_sub(4),
                    unacked: 1,
                    backup: y.backup,
                    ..SubflowSample::default()
                },
            )
        }));
        self.c.handle_samples(self.now, &samples);
        self.kernel();
        let ds = self.hook(|p, ctx| p.on_samples(ctx));
        self.apply(ds);
    }

    fn run_until(&mut self, t: u64) {
        while self.t() + STEP <= t {
            self.step();
        }
    }

    /// Established subflows not being closed: (local address, backup flag).
    fn established(&self) -> Vec<(IpAddr, bool)> {
        let mut v: Vec<_> = self
            .c
            .subflows()
            .iter()
            .filter(|sf| sf.is_established() && !sf.closing)
            .map(|sf| (sf.path.local, sf.backup))
            .collect();
        v.sort();
        v
    }

    /// Decisions logged in `from..to` (ms).
    fn decisions(&self, from: u64, to: u64) -> Vec<(u64, Decision)> {
        self.log
            .iter()
            .filter(|(t, _)| (from..to).contains(t))
            .cloned()
            .collect()
    }

    /// The times (ms) of the creates towards the primary path in `from..to`.
    fn primary_creates(&self, from: u64, to: u64) -> Vec<u64> {
        self.cmds
            .iter()
            .filter(|(t, c)| {
                (from..to).contains(t)
                    && matches!(c, PmCommand::CreateSubflow { local, .. } if *local == ip(PRIMARY))
            })
            .map(|(t, _)| *t)
            .collect()
    }

    fn kill(&mut self, addr: &str) {
        self.dead.insert(ip(addr));
    }

    fn heal(&mut self, addr: &str) {
        self.dead.remove(&ip(addr));
    }
}

fn policy() -> ActiveStandby {
    ActiveStandby::new(vec![InterfaceGlob("wwan*".into())], Tunables::default())
}

fn codes(ds: &[(u64, Decision)]) -> Vec<(&'static str, &'static str)> {
    ds.iter()
        .map(|(_, d)| (d.action.name(), d.reason.code))
        .collect()
}

#[test]
fn healthy_steady_state_keeps_the_standby_backup() {
    let mut s = Sim::new(policy());
    // The standby is joined as backup right away; the primary carries.
    assert_eq!(
        s.established(),
        vec![(ip(PRIMARY), false), (ip(STANDBY), true)]
    );
    assert_eq!(codes(&s.log), vec![("open", "mesh")]);
    s.run_until(5000);
    assert_eq!(
        codes(&s.decisions(1, 5000)),
        vec![],
        "nothing to do while healthy"
    );
    assert_eq!(
        s.established(),
        vec![(ip(PRIMARY), false), (ip(STANDBY), true)]
    );
    let note = s.p.note(&s.ctx()).unwrap();
    assert_eq!(note.code, "active");
}

/// Runs healthy to 4000 ms, kills the primary path at 4000; returns the sim and the time of
/// the failover.
fn silent_outage() -> (Sim, u64) {
    let mut s = Sim::new(policy());
    s.run_until(4000);
    s.kill(PRIMARY);
    s.run_until(4400);
    let failover = s
        .log
        .iter()
        .find(|(_, d)| d.reason.code == "failover")
        .map(|(t, _)| *t)
        .expect("a failover");
    (s, failover)
}

#[test]
fn a_silent_primary_outage_fails_over_and_closes_the_stuck_subflow_at_the_threshold() {
    let (s, at) = silent_outage();
    // The first sample after the death (4020) proves 5 ms of waiting; 100 ms later it is a
    // failure: at the sample of 4120, not before, and within the floor plus two periods.
    assert_eq!(at, 4120);
    assert!(s.decisions(4000, at).is_empty());
    let ds = s.decisions(at, at + 1);
    assert_eq!(
        codes(&ds),
        vec![
            ("set_backup", "failover"),
            ("close", "stalled"),
            ("open", "probe")
        ],
        "the flag first, then the close, and the first probe at once: {ds:?}"
    );
    assert_eq!(
        ds[0].1.action,
        Action::SetBackup {
            key: s.c.subflows()[1].key().unwrap(),
            backup: false
        }
    );
    assert_eq!(
        ds[1].1.action,
        Action::Close {
            key: key(INIT_LOCAL, INIT_REMOTE)
        },
        "the initial subflow is closed too: it is the stuck one"
    );
    let why = &ds[1].1.reason.detail;
    assert!(
        why.contains("no ack for 105 ms with 3 segments outstanding (threshold 100 ms = max(floor 100 ms, pto 8.0 ms + srtt 3.0 ms + 4 x rttvar 1.0 ms))"),
        "{why}"
    );
    assert!(why.contains("1 failure in the last 60.0 s"), "{why}");
    assert!(
        ds[0].1.reason.detail.contains("no ack for 105 ms"),
        "{}",
        ds[0].1.reason.detail
    );
    // The commands reach the kernel in that order.
    let cmds: Vec<&str> = s
        .cmds
        .iter()
        .filter(|(t, _)| *t == at)
        .map(|(_, c)| c.name())
        .collect();
    assert_eq!(cmds, vec!["set_flags", "subflow_destroy", "subflow_create"]);
    assert_eq!(s.established(), vec![(ip(STANDBY), false)]);
    assert!(matches!(
        s.p.path_state(&primary_path()),
        PathState::Down {
            code: "stalled",
            ..
        }
    ));
    let note = s.p.note(&s.ctx()).unwrap();
    assert_eq!(note.code, "failover");
    assert!(note.detail.contains("down for"), "{}", note.detail);
}

#[test]
fn a_failed_path_gets_a_train_of_probes_left_to_their_syns_and_no_destroy_while_down() {
    let (mut s, at) = silent_outage();
    s.run_until(at + 12_000);
    // Five probes 200 ms apart from the failure on (a SYN every 200 ms: each SYN is sent
    // again every second), then nothing until the first one's SYN backs off (its sixth SYN,
    // at 5 s, is its last one a second apart), when the next of the train replaces it.
    let creates = s.primary_creates(at, at + 12_000);
    assert_eq!(&creates[..5], &[at, at + 200, at + 400, at + 600, at + 800]);
    assert_eq!(creates[5], at + 5000, "{creates:?}");
    assert!(
        creates[5..].windows(2).all(|w| w[1] - w[0] >= 200),
        "{creates:?}"
    );
    let probes: Vec<_> = s
        .log
        .iter()
        .filter(|(t, d)| *t >= at && d.reason.code == "probe")
        .collect();
    assert!(matches!(
        probes[0].1.action,
        Action::Open {
            backup: true,
            timeout: Some(t),
            ..
        } if t == PROBE_LIFE
    ));
    assert!(
        probes[2]
            .1
            .reason
            .detail
            .contains("probe 3, 3 in flight: a SYN on the path every 200 ms"),
        "{}",
        probes[2].1.reason.detail
    );
    // A SYN on the path every 200 ms (one sample period of slack), from the first probe on.
    let mut syns: Vec<u64> = s.syn_log.iter().copied().filter(|t| *t >= at).collect();
    syns.sort_unstable();
    let gap = syns.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        gap <= 200 + STEP,
        "largest gap between SYNs {gap} ms: {syns:?}"
    );
    // Not one destroy after the stuck subflow's close: each would make the kernel send its
    // retransmit queue again on the standby. The stale probes are still the kernel's.
    assert_eq!(s.destroys(at, at + 12_000), vec![at]);
    let stale =
        s.c.subflows()
            .iter()
            .filter(|sf| sf.is_lingering_probe())
            .count();
    assert!(stale >= 5, "{stale} stale probes");
    let in_flight =
        s.c.subflows()
            .iter()
            .filter(|sf| sf.is_probe_in_flight())
            .count();
    assert_eq!(in_flight, 5);
    assert_eq!(s.c.failures(&primary_path()), 0);
    assert_eq!(s.established(), vec![(ip(STANDBY), false)]);
    let note = s.p.note(&s.ctx()).unwrap();
    assert!(note.detail.contains("probes so far"), "{}", note.detail);
}

#[test]
fn a_long_outage_closes_its_stale_probes_in_batches() {
    let (mut s, at) = silent_outage();
    s.run_until(at + 60_000);
    // One probe goes stale every ~1.2 s; past two trains' worth (10) they go together.
    let destroys = s.destroys(at + 1, at + 60_000);
    let mut batches = destroys.clone();
    batches.dedup();
    assert!(
        destroys.len() >= 3 * batches.len() && batches.len() <= 5,
        "destroys {destroys:?}"
    );
    assert!(
        s.log.iter().any(|(_, d)| d.reason.code == "stale-probes"
            && d.reason
                .detail
                .contains("stale probes (their SYNs in exponential backoff) closed together")),
        "{:?}",
        codes(&s.log)
    );
    let stale =
        s.c.subflows()
            .iter()
            .filter(|sf| sf.is_lingering_probe())
            .count();
    assert!(stale <= 2 * 5, "{stale}");
    // Still a SYN every 200 ms.
    let mut syns: Vec<u64> = s.syn_log.iter().copied().filter(|t| *t >= at).collect();
    syns.sort_unstable();
    let gap = syns.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(gap <= 200 + STEP, "largest gap between SYNs {gap} ms");
}

#[test]
fn the_primary_gets_the_traffic_back_after_the_hold() {
    let (mut s, at) = silent_outage();
    s.run_until(9000);
    s.heal(PRIMARY);
    s.run_until(10_000);
    let back = s
        .log
        .iter()
        .find(|(_, d)| d.reason.code == "handback")
        .map(|(t, _)| *t)
        .expect("a hand-back");
    // The first SYN after the heal joins: the train's next one, within 200 ms.
    let first_join = s
        .log
        .iter()
        .find(|(t, d)| *t >= 9000 && d.reason.code == "probe-batch")
        .map(|(t, _)| *t)
        .expect("the batch at the first join");
    assert!(first_join <= 9000 + 200 + STEP, "joined at {first_join}");
    // The hold (400 ms, one failure) passes; then the primary is active and the standby
    // backup again, in that order, in one batch.
    assert!(
        back >= first_join + 400 && back <= first_join + 400 + STEP,
        "back at {back}, joined at {first_join}"
    );
    assert!(
        back - 9000 <= 700,
        "traffic back {} ms after the heal",
        back - 9000
    );
    let ds = s.decisions(back, back + 1);
    assert_eq!(
        codes(&ds),
        vec![
            ("set_backup", "handback"),
            ("close", "probe-batch"),
            ("set_backup", "standby")
        ],
        "{ds:?}"
    );
    assert!(
        ds[0]
            .1
            .reason
            .detail
            .contains("hold 400 ms: 1 failure in the last 60.0 s"),
        "{}",
        ds[0].1.reason.detail
    );
    // While held, a fresh join re-proved the path (kept: at most two joins on the path).
    let held = s.decisions(first_join + 1, back);
    assert_eq!(codes(&held), vec![("open", "probe")], "{held:?}");
    // Destroys: the stuck subflow at the failure, then one batch at the first join (the rest
    // of the train) and one with the hand-back (the older join). Nothing while it was down.
    let mut batches = s.destroys(at, 10_000);
    batches.dedup();
    assert_eq!(batches, vec![at, first_join, back]);
    assert_eq!(s.destroys(first_join, first_join + 1).len(), 4);
    assert_eq!(
        s.established(),
        vec![(ip(PRIMARY), false), (ip(STANDBY), true)]
    );
    assert_eq!(s.p.path_state(&primary_path()), PathState::Up);
    // And it stays so: no late join of a probe, nothing else.
    let quiet = s.t();
    s.run_until(12_000);
    assert_eq!(codes(&s.decisions(quiet, 12_000)), vec![]);
    assert!(s.syns.is_empty());
}

#[test]
fn a_flapping_primary_is_not_handed_back_until_it_stays_healthy_for_the_longer_hold() {
    let mut s = Sim::new(policy());
    s.run_until(4000);
    // 1 s dropped, 1 s open, ten times.
    for cycle in 0..10 {
        let t = 4000 + cycle * 2000;
        s.kill(PRIMARY);
        s.run_until(t + 1000);
        s.heal(PRIMARY);
        s.run_until(t + 2000);
    }
    let handbacks: Vec<u64> = s
        .log
        .iter()
        .filter(|(_, d)| d.reason.code == "handback")
        .map(|(t, _)| *t)
        .collect();
    let failovers: Vec<u64> = s
        .log
        .iter()
        .filter(|(_, d)| d.reason.code == "failover")
        .map(|(t, _)| *t)
        .collect();
    // Handed back after the first outage only (hold 400 ms): the path then stayed up for
    // under a second and failed again, so from its second recovery on the hold outlasts
    // that spell (and the doubling the third one), longer than every open second; the
    // re-verifying probes catch each drop while held. Without the spell the second hold
    // (800 ms) would end just before the next drop and hand the traffic back into it.
    assert_eq!(handbacks.len(), 1, "hand-backs at {handbacks:?}");
    assert_eq!(failovers.len(), 2, "failovers at {failovers:?}");
    assert!(
        handbacks.iter().all(|t| *t < 4000 + 2 * 2000),
        "{handbacks:?}"
    );

    // The traffic stayed on the standby through the rest of the flapping.
    assert_eq!(s.established().iter().filter(|(_, b)| !b).count(), 1);
    assert!(s.established().contains(&(ip(STANDBY), false)));
    // The holds grew with the failures in the window.
    assert!(
        s.p.failures(&primary_path()) >= 4,
        "{}",
        s.p.failures(&primary_path())
    );
    // Once it stays up, it is handed back after its (long, capped) hold.
    let stable_from = s.t();
    s.run_until(stable_from + 70_000);
    let late: Vec<_> = s
        .decisions(stable_from, stable_from + 70_000)
        .into_iter()
        .filter(|(_, d)| d.reason.code == "handback")
        .collect();
    assert_eq!(late.len(), 1, "{late:?}");
    assert!(
        late[0].0 - stable_from > 10_000,
        "hand-back {} ms after it stabilised",
        late[0].0 - stable_from
    );
    // That long hold was verified a few times (every quarter of it), not every 200 ms: each
    // verification that joins closes an older join, and every close costs a resend.
    let verifications: Vec<u64> = s
        .decisions(stable_from, late[0].0)
        .into_iter()
        .filter(|(_, d)| d.reason.code == "probe" && d.reason.detail.contains(" held for "))
        .map(|(t, _)| t)
        .collect();
    assert!(
        (1..=5).contains(&verifications.len()),
        "verifications at {verifications:?}"
    );
    assert_eq!(
        s.established(),
        vec![(ip(PRIMARY), false), (ip(STANDBY), true)]
    );
}

#[test]
fn a_vanished_local_address_fails_over_at_once() {
    let mut s = Sim::new(policy());
    s.run_until(1000);
    s.locals.retain(|l| l.addr != ip(PRIMARY));
    let ds = s.hook(|p, ctx| p.on_locals_changed(ctx));
    let got: Vec<_> = ds
        .iter()
        .map(|d| (d.action.name(), d.reason.code))
        .collect();
    assert_eq!(
        got,
        vec![("set_backup", "failover"), ("close", "address-gone")]
    );
    assert!(ds[1]
        .reason
        .detail
        .contains("its local address 10.0.1.1 is no longer usable"));
    s.apply(ds);
    assert_eq!(s.established(), vec![(ip(STANDBY), false)]);
    // No probe while the address is gone; one as soon as it is back.
    s.run_until(2000);
    assert!(s.primary_creates(1000, 2000).is_empty());
    s.locals.push(eth());
    let ds = s.hook(|p, ctx| p.on_locals_changed(ctx));
    assert_eq!(
        ds.iter().map(|d| d.reason.code).collect::<Vec<_>>(),
        vec!["probe"]
    );
}

#[test]
fn a_subflow_closed_by_the_kernel_fails_over_at_once() {
    let mut s = Sim::new(policy());
    s.run_until(1000);
    let mut closed = sub(INIT_LOCAL, INIT_REMOTE, 0, 0, false);
    closed.error = Some(104);
    s.event(PmEvent::SubClosed(closed));
    let ds = s.decisions(1000, 1001);
    assert_eq!(
        codes(&ds),
        vec![("set_backup", "failover"), ("open", "probe")]
    );
    assert!(
        ds[0]
            .1
            .reason
            .detail
            .contains("was closed by the kernel (error 104)"),
        "{}",
        ds[0].1.reason.detail
    );
    assert!(matches!(
        s.p.path_state(&primary_path()),
        PathState::Down { code: "closed", .. }
    ));
    // The first probe goes at once, the next one a period later.
    s.run_until(1300);
    assert_eq!(s.primary_creates(1000, 1300), vec![1000, 1200]);
}

#[test]
fn a_stall_with_nowhere_to_go_closes_nothing_and_says_so() {
    // The standby link comes up dead: its join never establishes.
    let mut s = Sim::with(policy(), vec![eth()], false);
    s.run_until(1000);
    s.locals.push(wwan());
    s.kill(STANDBY);
    let ds = s.hook(|p, ctx| p.on_locals_changed(ctx));
    s.apply(ds);
    assert_eq!(s.established(), vec![(ip(PRIMARY), false)]);
    s.kill(PRIMARY);
    s.run_until(3000);
    assert!(
        s.log
            .iter()
            .all(|(_, d)| !matches!(d.action, Action::Close { .. })),
        "{:?}",
        s.log
    );
    assert_eq!(s.established(), vec![(ip(PRIMARY), false)]);
    let note = s.p.note(&s.ctx()).unwrap();
    assert_eq!(note.code, "stalled");
    assert!(
        note.detail.contains("no other subflow can take its data"),
        "{}",
        note.detail
    );
}

#[test]
fn a_late_probe_that_joins_a_trusted_path_is_closed_as_a_duplicate() {
    let mut s = Sim::new(policy());
    s.run_until(1000);
    // An abandoned probe's SYN establishes long after (its port was never learnt).
    s.event(PmEvent::SubEstablished(sub(
        "10.0.1.1:49999",
        INIT_REMOTE,
        1,
        0,
        true,
    )));
    let ds = s.decisions(1000, 1001);
    assert_eq!(codes(&ds), vec![("close", "duplicate")]);
    assert_eq!(
        ds[0].1.action,
        Action::Close {
            key: key("10.0.1.1:49999", INIT_REMOTE)
        }
    );
    // Its close (ours) is no failure.
    s.run_until(2000);
    assert_eq!(s.p.path_state(&primary_path()), PathState::Up);
    assert_eq!(
        s.established(),
        vec![(ip(PRIMARY), false), (ip(STANDBY), true)]
    );
}

#[test]
fn empty_standby_interfaces_mean_the_backup_interfaces() {
    let backup_wwan = LocalAddr {
        backup: true,
        ..wwan()
    };
    let p = ActiveStandby::new(Vec::new(), Tunables::default());
    let mut s = Sim::with(p, vec![eth(), backup_wwan], false);
    assert_eq!(
        s.established(),
        vec![(ip(PRIMARY), false), (ip(STANDBY), true)]
    );
    s.run_until(1000);
    s.kill(PRIMARY);
    s.run_until(1400);
    assert!(s.log.iter().any(|(_, d)| d.reason.code == "failover"));
    assert!(s.established().contains(&(ip(STANDBY), false)));
    // And with no standby interface at all, the second interface is active too.
    let p = ActiveStandby::new(Vec::new(), Tunables::default());
    let s = Sim::with(p, vec![eth(), wwan()], false);
    assert_eq!(
        s.established(),
        vec![(ip(PRIMARY), false), (ip(STANDBY), false)]
    );
}

#[test]
fn a_peer_that_denies_joins_to_its_initial_address_gets_none() {
    let mut s = Sim::with(policy(), vec![eth(), wwan()], true);
    // Only the initial remote is known: the standby cannot be joined; nothing opens.
    assert!(s.log.is_empty(), "{:?}", s.log);
    let note = s.p.note(&s.ctx()).unwrap();
    assert!(note.detail.contains("deny_join_id0"), "{}", note.detail);
    s.event(PmEvent::Announced {
        token: T,
        rem_id: 4,
        addr: ip("10.0.8.1"),
        port: None,
    });
    let opens: Vec<_> = s
        .log
        .iter()
        .filter_map(|(_, d)| match d.action {
            Action::Open {
                local,
                remote,
                backup,
                ..
            } => Some((local, remote, backup)),
            _ => None,
        })
        .collect();
    assert_eq!(
        opens,
        vec![
            (ip(PRIMARY), sa("10.0.8.1:80"), false),
            (ip(STANDBY), sa("10.0.8.1:80"), true)
        ]
    );
    assert!(s.cmds.iter().all(
        |(_, c)| !matches!(c, PmCommand::CreateSubflow { remote, .. } if *remote == sa(INIT_REMOTE))
    ));
}

#[test]
fn nothing_on_server_side_or_before_established() {
    let t0 = Instant::now();
    let mut p = policy();
    let locals = [eth(), wwan()];
    let mut c = Connection::new(T, ConnTimers::default());
    c.handle_event(t0, &PmEvent::Created(info(INIT_LOCAL, INIT_REMOTE, false)));
    let ctx = Ctx {
        now: t0,
        conn: &c,
        locals: &locals,
        listeners: &[],
    };
    assert!(p.on_tick(&ctx).is_empty());
    assert!(p.note(&ctx).is_none());
    let mut c = Connection::new(T, ConnTimers::default());
    c.handle_event(
        t0,
        &PmEvent::Established(info(INIT_LOCAL, INIT_REMOTE, true)),
    );
    let ctx = Ctx {
        now: t0,
        conn: &c,
        locals: &locals,
        listeners: &[],
    };
    assert!(p.on_samples(&ctx).is_empty());
}

// ---- parameters ----

fn section(entries: &[(&str, Value)]) -> Node {
    let at = Pos { line: 1, col: 1 };
    Node {
        value: Value::Map(
            entries
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

fn parse(entries: &[(&str, Value)]) -> Result<ActiveStandbyParams, ParamError> {
    let spec = PLUGIN.parse(&section(entries), &Keys::new("active_standby"))?;
    Ok(spec.params::<ActiveStandbyParams>().unwrap().clone())
}

fn msg(e: ParamError) -> String {
    e.to_string()
}

#[test]
fn params_defaults_ranges_and_cross_checks() {
    let d = parse(&[]).unwrap();
    assert_eq!(d, ActiveStandbyParams::default());
    assert!(d.wants_samples());
    assert_eq!(d.sample_period(), Some(ms(20)));
    assert_eq!(PLUGIN.name, "active-standby");
    let p = parse(&[
        (
            "standby_interfaces",
            Value::Seq(vec![Node {
                value: Value::Str("wwan*".into()),
                at: Pos::default(),
            }]),
        ),
        ("sample_ms", Value::Int(50)),
        ("hold_ms", Value::Int(1000)),
    ])
    .unwrap();
    assert_eq!(p.standby_interfaces, vec![InterfaceGlob("wwan*".into())]);
    assert_eq!(p.tunables().hold, ms(1000));
    assert_eq!(p.sample_period(), Some(ms(50)));

    for (k, v, want) in [
        (
            "sample_ms",
            Value::Int(5),
            "active_standby.sample_ms must be an integer between 10 and 1000, got 5",
        ),
        (
            "probe_ms",
            Value::Int(10),
            "active_standby.probe_ms must be an integer between 20 and 60000, got 10",
        ),
        (
            "max_subflows",
            Value::Int(0),
            "active_standby.max_subflows must be an integer between 1 and 64, got 0",
        ),
        (
            "flap_window_s",
            Value::Int(0),
            "active_standby.flap_window_s must be an integer between 1 and 86400, got 0",
        ),
    ] {
        assert_eq!(msg(parse(&[(k, v)]).unwrap_err()), want);
    }
    assert_eq!(
        msg(parse(&[("hold_ms", Value::Int(5000)), ("hold_max_ms", Value::Int(1000))]).unwrap_err()),
        "active_standby.hold_max_ms (1000) must be at least active_standby.hold_ms (5000): it caps the hold, which starts there"
    );
    assert_eq!(
        msg(parse(&[("sample_ms", Value::Int(200)), ("stall_floor_ms", Value::Int(100))]).unwrap_err()),
        "active_standby.stall_floor_ms (100) must be at least active_standby.sample_ms (200): a stall is only seen on a sample"
    );
    let bad_glob = parse(&[(
        "standby_interfaces",
        Value::Seq(vec![Node {
            value: Value::Str("wwan 0".into()),
            at: Pos::default(),
        }]),
    )])
    .unwrap_err();
    assert!(msg(bad_glob)
        .starts_with("active_standby.standby_interfaces[0] must be an interface name or glob"));
    assert!(msg(parse(&[("nope", Value::Int(1))]).unwrap_err()).contains("unknown field `nope`"));
    // The stall threshold is TCP's own now (see `stall_threshold`): the factor is gone.
    assert!(
        msg(parse(&[("stall_rtt_factor", Value::Float(2.0))]).unwrap_err())
            .contains("unknown field `stall_rtt_factor`")
    );
}

#[test]
fn a_path_that_cannot_be_joined_again_is_kept_as_backup_and_trusted_when_it_acks_again() {
    // The peer denies joins to its initial address and announced another one: the initial
    // subflow (primary -> initial remote) could never be re-joined once closed.
    let mut s = Sim::with(policy(), vec![eth(), wwan()], true);
    s.event(PmEvent::Announced {
        token: T,
        rem_id: 4,
        addr: ip("10.0.8.1"),
        port: None,
    });
    let initial = primary_path();
    let other = Path {
        local: ip(PRIMARY),
        remote: sa("10.0.8.1:80"),
    };
    s.run_until(1000);
    s.kill(PRIMARY);
    s.run_until(1400);
    // Both primary paths failed; the joinable one is closed, the initial one kept as backup.
    let closes: Vec<_> = s
        .log
        .iter()
        .filter_map(|(_, d)| match d.action {
            Action::Close { key } => Some(key),
            _ => None,
        })
        .collect();
    assert_eq!(closes.len(), 1, "{closes:?}");
    assert_eq!(closes[0].remote, sa("10.0.8.1:80"));
    assert!(matches!(s.p.path_state(&initial), PathState::Down { .. }));
    assert!(matches!(s.p.path_state(&other), PathState::Down { .. }));
    let kept = s.c.subflows().iter().find(|sf| sf.initial).unwrap();
    assert!(kept.is_established() && kept.backup, "{kept:?}");
    // No probe towards the initial address, ever.
    assert!(s.cmds.iter().all(
        |(_, c)| !matches!(c, PmCommand::CreateSubflow { remote, .. } if *remote == sa(INIT_REMOTE))
    ));
    // Healed: the kept subflow's stuck data is acknowledged: held, then trusted again.
    s.heal(PRIMARY);
    s.run_until(2500);
    assert_eq!(s.p.path_state(&initial), PathState::Up);
    assert_eq!(s.p.path_state(&other), PathState::Up);
    let kept = s.c.subflows().iter().find(|sf| sf.initial).unwrap();
    assert!(kept.is_established() && !kept.backup, "{kept:?}");
}

#[test]
fn the_last_subflow_left_carries_the_traffic_even_while_held() {
    // Two active links, no standby: a failed one is still closed, probed and held.
    let eth1 = LocalAddr {
        addr: ip("10.0.3.1"),
        if_index: 3,
        if_name: "eth1".into(),
        backup: false,
    };
    let mut s = Sim::with(policy(), vec![eth(), eth1], false);
    assert_eq!(
        s.established(),
        vec![(ip(PRIMARY), false), (ip("10.0.3.1"), false)]
    );
    s.run_until(1000);
    s.kill(PRIMARY);
    s.run_until(1400);
    // The second active path carries on: no failover of a standby, just the close.
    assert_eq!(
        codes(&s.decisions(1000, 1400)).first(),
        Some(&("close", "stalled"))
    );
    assert_eq!(s.established(), vec![(ip("10.0.3.1"), false)]);
    s.heal(PRIMARY);
    s.run_until(1700);
    assert!(matches!(
        s.p.path_state(&primary_path()),
        PathState::Holding { .. }
    ));
    // The other link goes away (its address, then its subflow): the held probe is all that is
    // left, and carries the traffic before its hold is over.
    let other =
        s.c.subflows()
            .iter()
            .find(|sf| sf.is_established() && sf.path.local == ip("10.0.3.1"))
            .and_then(|sf| sf.key())
            .unwrap();
    let mut closed = sub("0.0.0.0:1", INIT_REMOTE, 0, 0, false);
    closed.local = other.local;
    s.locals.retain(|l| l.addr != ip("10.0.3.1"));
    s.event(PmEvent::SubClosed(closed));
    let ds = s.decisions(1700, 1701);
    assert_eq!(codes(&ds), vec![("set_backup", "last-active")], "{ds:?}");
    assert_eq!(s.established(), vec![(ip(PRIMARY), false)]);
}
