//! The `active-standby` policy (hybrid access): subflows on every usable path, but the
//! *standby* interfaces (a metered mobile link, typically) carry the backup flag while an
//! *active* path (the fixed line) carries the traffic. When the active path fails, the standby
//! subflows lose the backup flag and the failed path's subflows are closed at once, so the
//! kernel sends their unacknowledged data again on the standby; the failed path is probed with
//! a train of joins whose SYNs reach it at a short fixed period, none of them destroyed while
//! it is down, and handed the traffic back once it has been healthy for a hold time that
//! grows with every recent failure (a flapping path is not trusted again soon).
//!
//! # Why closing, not only the flag
//! Measured on Linux 6.18 (docs/POLICIES.md, `active-standby`; the kernel facts of the
//! project): with the primary silently dropped, a flag change alone leaves the data already
//! sent on the dead subflow blocking in-order delivery until the kernel reinjects it on its own
//! schedule (~800 ms); SET_FLAGS *and then* SUBFLOW_DESTROY of the dead subflow makes the kernel
//! reinject at once. So the delay an application sees is the detection time plus a few tens of
//! ms, and detection is what this policy makes fast and safe.
//!
//! # Failure signals, and why these
//! The kernel's own word first: a path is down when its local address leaves the usable set
//! (address removed, link down), or when one of its subflows is closed by the kernel or the
//! peer (SUB_CLOSED for a subflow this policy did not close). Then the measurements, from
//! each subflow's `tcp_info` sampled every `sample_ms` ([`Watch`]):
//! - **stalled** (the fast one): data outstanding (`tcpi_unacked > 0`), no acknowledgment
//!   progress (`tcpi_bytes_acked` unchanged) and no ACK received at all, not even a
//!   duplicate or a SACK (`tcpi_last_ack_recv`), for longer than TCP itself would wait
//!   for an answer ([`Tunables::stall_threshold`]): `max(stall_floor_ms, timer + srtt +
//!   4 x rttvar)`. This is "no ACK progress while data is outstanding", not "the RTT
//!   is high": a path that is merely slow or queued (a bulk upload through a full tbf queue,
//!   srtt hundreds of ms) still has its ACKs flowing every few segments and is never judged,
//!   whatever its RTT. The threshold is TCP's own: with data outstanding and nothing
//!   acknowledged, Linux sends a tail-loss probe after `pto = 2 x srtt` (+ TCP_RTO_MIN,
//!   200 ms, when a single segment is outstanding: the receiver may delay that ACK), or
//!   retransmits at its RTO (`tcpi_rto`, before its backoff) if that comes first, and in
//!   loss recovery (`tcpi_lost > 0`) only at its RTO: Linux sends no tail-loss probe there;
//!   a working path answers one round trip later, which RFC 6298 bounds by `srtt + 4 x
//!   rttvar`. Silence beyond that is what a dead path looks like. Real sample series in
//!   `policies/tests/fixtures/active_standby/` test both sides: the former `2 x srtt + 4 x
//!   rttvar` failed a healthy bulk upload 0.6 s into slow start behind a full queue (no ACK
//!   for 120 ms at srtt 44 ms, 2.7 x srtt, within the tail-loss probe's own time), and a
//!   healthy upload in loss recovery was silent for 244 ms at srtt 43 ms, until its RTO.
//!   On a 20 Mbit/s line with a healthy srtt of a few ms the floor (100 ms) decides:
//!   detection 100 ms after the last ACK, plus at most two sample periods; at srtt 40 ms
//!   behind a full queue, ~135 ms, or ~295 ms when the cut finds the path in loss recovery.
//!   The stall's start is estimated conservatively (never earlier than it can have been):
//!   `tcpi_last_ack_recv` and `tcpi_last_data_sent` bound it from one sample
//!   (the oldest unacknowledged data cannot have waited less than the smaller of the two), and
//!   consecutive samples with data outstanding and `bytes_acked` unchanged carry it forward,
//!   but never to before the last ACK received: a path in loss recovery (its cumulative ACK
//!   held at a hole while SACKs keep coming) answers, so it is alive; a silently dropped one
//!   returns nothing at all.
//!   A subflow with nothing outstanding is never judged: an idle path proves nothing either
//!   way (its failure shows when data is next sent).
//! - **rto**: `tcpi_retransmits >= 2` with data outstanding: two retransmission timeouts of the
//!   same segment without an ACK. Slower than the stall (the kernel's RTO is >= 200 ms and
//!   doubles), it covers what the stall estimate cannot see, e.g. a subflow first sampled
//!   mid-outage.
//! - **unanswered-probes**: `tcpi_probes >= 2`: zero-window (or keepalive) probes that got no
//!   ACK. A closed receive window itself (`tcpi_snd_wnd == 0`) is *not* a failure: MPTCP's
//!   receive window belongs to the connection, so it means the receiving application is slow,
//!   and the standby would see the same window. Only probes the peer does not answer are.
//!
//! A measured failure is acted on only when another established subflow can take the data (a
//! standby, another active path): with none, closing the stuck subflow would strand its data,
//! and [`Policy::note`] says the path is stalled with nowhere to go.
//!
//! # On failure, at once (one decision batch, in this order)
//! 1. every standby subflow loses the backup flag (`failover`), unless another active path
//!    still carries traffic;
//! 2. every subflow of the failed path that carries data is closed (reason: the signal, with
//!    the numbers), so that the kernel reinjects its unacknowledged data (an idle backup one
//!    goes with the path's next batch, see below). Never the connection's last established
//!    subflow. A path towards the peer's initial address when the peer set
//!    `deny_join_id0` cannot be re-joined, so its subflow is kept as backup instead (it counts
//!    as healed when its data is acknowledged again).
//!
//! # Failback
//! A join proves the path works. While it is down, the path gets a *train* of probes
//! (`Action::Open` with a timeout: a *probe* in the connection state machine): one opened
//! every `probe_ms` while fewer than `ceil(1 s / probe_ms)` are in flight (five with the
//! default 200 ms), each left to the kernel, which sends its SYN again every second
//! ([`SYN_RTO`]) for 5 s (Linux 6.18 with the default `net.ipv4.tcp_syn_linear_timeouts = 4`;
//! verified, `integration/tests/kernel_probe.rs`). So a SYN goes out on the path every
//! `probe_ms`, and a healed path is joined within `probe_ms` plus a round trip, while no
//! probe is destroyed: every SUBFLOW_DESTROY, even of a socket still in SYN_SENT, makes the
//! kernel send the connection's whole MPTCP-level retransmit queue again
//! (`__mptcp_close_ssk` -> `__mptcp_retransmit_pending_data`), which costs the standby a
//! window of duplicate data each time; a batch of destroys sent back to back costs about
//! what one does (measured, docs/POLICIES.md). A probe whose SYN backs off exponentially
//! (a sample of its SYN_SENT socket shows `tcpi_backoff > 0`, or [`PROBE_LIFE`] passed) is
//! *stale*: no longer counted in flight, replaced by the next of the train, and left to
//! linger; past [`LINGER_TRAINS`] trains' worth on a path, the stale probes are closed
//! together (`stale-probes`). No path backoff applies, and a SYN never sits in its own
//! exponential backoff while the path may have healed.
//!
//! The first join ends the outage: the path is *held*, its subflow kept backup, for
//! `max(hold_ms x 2^(n-1), s + hold_ms)` (at most `hold_max_ms`), n = its failures within
//! the last `flap_window_s`, s the longest *spell* it stayed up within that window, from a
//! join that ended an outage to its next failure ([`Tunables::hold_after`]: a path that
//! came back, stayed up for a while and failed again is not trusted for as long again),
//! and in the same round everything else of the outage on the path (the
//! other probes, stale or in flight, and idle subflows left from an earlier hold) is closed
//! in one batch (`probe-batch`). An idle backup subflow gives no measurement, so while held
//! the path is re-verified with a fresh join every `max(probe_ms, hold / 4)` (each that joins
//! replaces an older one, a close, which costs a resend); the two newest joins are kept
//! (a spare within the peer's subflow limit), an older one closes (`reprobe`); a
//! verification probe that has not joined within `probe_ms` is a new failure
//! (`probe-failed`; it stays, as the first of the next train). When the hold is over, the
//! newest join is made active (`handback`), the path's other probes close in the same batch
//! (`probe-batch`), and the standby subflows are made backup again (`standby`). Failures
//! older than the window are forgotten, so the hold decays back to `hold_ms` on a path that
//! stays stable. A failed path's idle backup subflows are not closed at the failure (that
//! would only resend the retransmit queue): they go with its next batch.
//!
//! Invariant: whenever the connection has an established subflow, at least one of them is not
//! backup (`last-active` restores one if nothing else would carry the traffic).
//!
//! Subflows are opened like `fullmesh` (the mesh, [`crate::mesh`]: one per usable local x
//! joinable remote, up to `max_subflows`, no join towards the initial address of a peer that
//! set `deny_join_id0`); the failed active paths are this policy's to probe, and the backup
//! flags are its own (`addresses.backup_interfaces` interfaces are standby interfaces here).
//!
//! # The daemon's part
//! The policy's clock is its samples: the daemon samples the connections of this policy every
//! [`PolicyParams::sample_period`] (`sample_ms`) and feeds them through `on_samples`, as it does
//! for every sampling policy, and those of its probes' SYN_SENT sockets, which give the
//! probes their ports (to close them) and their backoff. Probe timeouts are the connection's
//! own timers (its `on_tick`).
//!
//! Config section `active_standby:` ([`ActiveStandbyParams`]; defaults in brackets):
//! - `standby_interfaces` [[]]: interface globs of the standby links. Empty: the interfaces
//!   `addresses.backup_interfaces` names (their addresses are flagged backup); those count as
//!   standby in any case. Every other usable interface is active. With no standby interface
//!   at all, every path is active and a failed one is closed and probed all the same.
//! - `max_subflows` (1..=64) [8]: live subflows per connection, the initial one and probes
//!   included.
//! - `sample_ms` (10..=1000) [20]: how often the daemon samples these connections; the
//!   detection granularity.
//! - `stall_floor_ms` (10..=60000, >= `sample_ms`) [100]: the least stall threshold (above).
//! - `probe_ms` (20..=60000) [200]: a failed path gets a SYN this often (the train above),
//!   and a held one a fresh join.
//! - `hold_ms` (0..=3600000) [400], `hold_max_ms` (>= `hold_ms`, ..=86400000) [60000],
//!   `flap_window_s` (1..=86400) [60]: the hold before hand-back, doubled per failure within
//!   the window, capped.
//!
//! With the defaults, traffic is back on a healed primary within `probe_ms + RTT + hold_ms +
//! sample_ms` (~620 ms), and a path flapping every second (1 s dropped, 1 s open) is handed
//! back after its first failure only (hold 400 ms): it then stays up ~0.9 s from its join
//! and fails again, so its second hold is ~1.3 s (the doubling alone, 800 ms, would end
//! just before the next drop and hand the traffic back into it), the third 1.6 s, each
//! longer than the open second.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::addrmatch::InterfaceGlob;
use crate::conn::{Path, Subflow, SubflowState};
use crate::mesh;
use crate::model::{LocalAddr, PmEvent, SubflowKey, SubflowSample, TCP_SYN_SENT};
use crate::params::{self, Keys, ParamError};
use crate::plugin::{Plugin, PolicyParams};
use crate::policy::{Action, Ctx, Decision, Policy, Reason};

/// The registry entry.
pub static PLUGIN: Plugin = Plugin::new::<ActiveStandbyParams>(
    "active-standby",
    "active_standby",
    "standby interfaces stay backup while an active path works; fast failover and failback",
);

/// Two RTOs of the same segment without an ACK fail a path (see the module docs).
pub const RTO_LIMIT: u8 = 2;
/// Two unanswered zero-window or keepalive probes fail a path (see the module docs).
pub const PROBES_LIMIT: u8 = 2;
/// Linux's least retransmission timeout, which its tail-loss probe adds to `2 x srtt` when a
/// single segment is outstanding (the receiver may delay that ACK).
pub use crate::model::TCP_RTO_MIN;
/// What Linux's tail-loss probe adds to `2 x srtt` otherwise (TCP_TIMEOUT_MIN, 2 jiffies).
pub const TCP_TIMEOUT_MIN: Duration = Duration::from_millis(2);
/// The period of a join SYN's retransmissions while they are linear: the kernel's initial
/// retransmission timeout for a SYN (TCP_TIMEOUT_INIT, 1 s).
pub const SYN_RTO: Duration = Duration::from_secs(1);
/// How long a probe's SYN counts as in flight at most: with the kernel's default
/// `net.ipv4.tcp_syn_linear_timeouts = 4` a join SYN is sent at 0, 1, 2, 3, 4 and 5 s, then
/// backs off (7, 11, 19 s, ...). Verified on Linux 6.18 (`integration/tests/kernel_probe.rs`).
/// A sample of the probe's SYN_SENT socket that shows the backoff (`tcpi_backoff > 0`, from
/// the SYN at 5 s) ends it first, on any kernel.
pub const PROBE_LIFE: Duration = Duration::from_secs(5);
/// Stale probes (their SYN in exponential backoff) a path keeps, in trains, before they are
/// closed together.
pub const LINGER_TRAINS: usize = 2;

/// The `active_standby:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActiveStandbyParams {
    /// Interface globs of the standby links; empty: the `addresses.backup_interfaces` ones.
    /// Default [].
    pub standby_interfaces: Vec<InterfaceGlob>,
    /// Live subflows per connection, counting the initial one and probes. 1..=64, default 8.
    #[serde(deserialize_with = "params::int::<_, _, 1, 64>")]
    pub max_subflows: u8,
    /// Sampling period the daemon uses for these connections, ms. 10..=1000, default 20.
    #[serde(deserialize_with = "params::int::<_, _, 10, 1000>")]
    pub sample_ms: u32,
    /// The least time without ACK progress that fails a path with data outstanding, ms.
    /// 10..=60000 and at least `sample_ms`, default 100.
    #[serde(deserialize_with = "params::int::<_, _, 10, 60_000>")]
    pub stall_floor_ms: u32,
    /// A failed path gets a fresh join every this many ms, each abandoned after as long.
    /// 20..=60000, default 200.
    #[serde(deserialize_with = "params::int::<_, _, 20, 60_000>")]
    pub probe_ms: u32,
    /// How long a joined probe must stay healthy before the path gets the traffic back, ms,
    /// after its first failure within the window (doubled per further failure). 0..=3600000,
    /// default 400.
    #[serde(deserialize_with = "params::int::<_, _, 0, 3_600_000>")]
    pub hold_ms: u32,
    /// The longest hold, ms. At least `hold_ms`, at most 86400000, default 60000.
    #[serde(deserialize_with = "params::int::<_, _, 0, 86_400_000>")]
    pub hold_max_ms: u32,
    /// Failures older than this many seconds no longer lengthen the hold. 1..=86400,
    /// default 60.
    #[serde(deserialize_with = "params::int::<_, _, 1, 86_400>")]
    pub flap_window_s: u32,
}

impl Default for ActiveStandbyParams {
    fn default() -> Self {
        ActiveStandbyParams {
            standby_interfaces: Vec::new(),
            max_subflows: 8,
            sample_ms: 20,
            stall_floor_ms: 100,
            probe_ms: 200,
            hold_ms: 400,
            hold_max_ms: 60_000,
            flap_window_s: 60,
        }
    }
}

impl ActiveStandbyParams {
    /// The tunables in the units the policy computes with.
    pub fn tunables(&self) -> Tunables {
        let ms = |v: u32| Duration::from_millis(v.into());
        Tunables {
            max_subflows: self.max_subflows.into(),
            stall_floor: ms(self.stall_floor_ms),
            probe: ms(self.probe_ms),
            hold: ms(self.hold_ms),
            hold_max: ms(self.hold_max_ms),
            flap_window: Duration::from_secs(self.flap_window_s.into()),
        }
    }
}

impl PolicyParams for ActiveStandbyParams {
    fn validate(&self, keys: &Keys) -> Result<(), ParamError> {
        if self.hold_max_ms < self.hold_ms {
            return Err(ParamError::check(
                &["hold_max_ms", "hold_ms"],
                format!(
                    "{} ({}) must be at least {} ({}): it caps the hold, which starts there",
                    keys.key("hold_max_ms"),
                    self.hold_max_ms,
                    keys.key("hold_ms"),
                    self.hold_ms
                ),
            ));
        }
        if self.stall_floor_ms < self.sample_ms {
            return Err(ParamError::check(
                &["stall_floor_ms", "sample_ms"],
                format!(
                    "{} ({}) must be at least {} ({}): a stall is only seen on a sample",
                    keys.key("stall_floor_ms"),
                    self.stall_floor_ms,
                    keys.key("sample_ms"),
                    self.sample_ms
                ),
            ));
        }
        Ok(())
    }

    fn build(&self) -> Box<dyn Policy> {
        Box::new(ActiveStandby::new(
            self.standby_interfaces.clone(),
            self.tunables(),
        ))
    }

    fn wants_samples(&self) -> bool {
        true
    }

    fn sample_period(&self) -> Option<Duration> {
        Some(Duration::from_millis(self.sample_ms.into()))
    }
}

/// The policy's tunables ([`ActiveStandbyParams::tunables`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tunables {
    /// Live subflows per connection.
    pub max_subflows: usize,
    /// The least stall that fails a path.
    pub stall_floor: Duration,
    /// Probe period and timeout.
    pub probe: Duration,
    /// The hold after the first failure within the window.
    pub hold: Duration,
    /// The longest hold.
    pub hold_max: Duration,
    /// How long a failure counts for the hold.
    pub flap_window: Duration,
}

impl Default for Tunables {
    fn default() -> Self {
        ActiveStandbyParams::default().tunables()
    }
}

/// The terms of a stall threshold (see [`Tunables::stall_threshold`]).
struct StallParts {
    threshold: Duration,
    timer_name: &'static str,
    timer: Duration,
    srtt: Duration,
    rttvar: Duration,
}

impl Tunables {
    /// The stall threshold for this sample, with how it was reached (for the reason): the
    /// longest a working path leaves data unacknowledged before TCP itself would have had an
    /// answer, `max(stall_floor, timer + srtt + 4 x rttvar)`, `timer` being what TCP sends
    /// first into the silence:
    /// - outside loss recovery (`tcpi_lost == 0`), `min(pto, rto)`: `pto` is Linux's
    ///   tail-loss probe timer, `2 x srtt` (plus TCP_RTO_MIN, 200 ms, when a single segment
    ///   is outstanding: the receiver may delay its ACK that long; else plus 2 ms,
    ///   TCP_TIMEOUT_MIN), `rto` the retransmission timeout, which fires instead when it is
    ///   the shorter;
    /// - in loss recovery (segments marked lost), `rto`: Linux sends no tail-loss probe
    ///   outside the Open and CWR states, and a path whose retransmissions were lost too (a
    ///   full queue's tail drop) is silent until its RTO. Seen on a healthy bulk upload
    ///   (`fixtures/active_standby/healthy_recovery_rto.txt`): 244 ms without an ACK at srtt
    ///   43 ms, 107 segments lost, ended by the RTO (244 ms).
    ///
    /// `rto` is the timer before its exponential backoff (`tcpi_rto >> tcpi_backoff`): once
    /// it has fired, the answer to that first retransmission was due one round trip later,
    /// and the backed-off timer is no reason to wait longer. The answer takes a round trip,
    /// bounded as RFC 6298 bounds an RTT sample, `srtt + 4 x rttvar`.
    pub fn stall_threshold(&self, s: &SubflowSample) -> (Duration, String) {
        let p = self.stall_parts(s);
        let how = format!(
            "threshold {} = max(floor {}, {} {} + srtt {} + 4 x rttvar {})",
            fmt_dur(p.threshold),
            fmt_dur(self.stall_floor),
            p.timer_name,
            fmt_dur(p.timer),
            fmt_dur(p.srtt),
            fmt_dur(p.rttvar)
        );
        (p.threshold, how)
    }

    /// [`Tunables::stall_threshold`] without its explanation: it allocates nothing, for the
    /// check every sample with data outstanding makes.
    pub fn stall_limit(&self, s: &SubflowSample) -> Duration {
        self.stall_parts(s).threshold
    }

    fn stall_parts(&self, s: &SubflowSample) -> StallParts {
        let srtt = Duration::from_micros(s.srtt_us.into());
        let rttvar = Duration::from_micros(s.rttvar_us.into());
        let rto = Duration::from_micros(
            s.rto_us
                .checked_shr(u32::from(s.backoff))
                .unwrap_or(0)
                .into(),
        );
        let pto = srtt * 2
            + if s.unacked == 1 {
                TCP_RTO_MIN
            } else {
                TCP_TIMEOUT_MIN
            };
        let (timer_name, timer) = if rto.is_zero() {
            ("pto", pto)
        } else if s.lost > 0 {
            ("in loss recovery: rto", rto)
        } else if pto <= rto {
            ("pto", pto)
        } else {
            ("rto", rto)
        };
        let by_tcp = timer + srtt + rttvar * 4;
        StallParts {
            threshold: by_tcp.max(self.stall_floor),
            timer_name,
            timer,
            srtt,
            rttvar,
        }
    }

    /// How many probes in flight give the path a SYN every `probe`: the SYN is retransmitted
    /// every [`SYN_RTO`] while linear, so `ceil(SYN_RTO / probe)` started `probe` apart.
    pub fn train(&self) -> usize {
        let probe = self.probe.as_micros().max(1);
        let n = SYN_RTO.as_micros().div_ceil(probe);
        usize::try_from(n).unwrap_or(usize::MAX).max(1)
    }

    /// The hold of a path with `failures` failures within the window:
    /// `hold x 2^(failures-1)`, at most `hold_max`.
    pub fn hold_for(&self, failures: usize) -> Duration {
        let doublings = u32::try_from(failures.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(31);
        self.hold
            .checked_mul(1 << doublings)
            .unwrap_or(self.hold_max)
            .min(self.hold_max)
    }

    /// How often a held path is re-verified with a fresh join: every `probe`, or every
    /// quarter of its hold when that is longer. Each verification that joins replaces an
    /// older join, and that close makes the kernel resend its retransmit queue (see the
    /// module docs): a long hold (a flapping path's) is verified a few times, not every
    /// `probe`.
    pub fn verify_every(&self, hold: Duration) -> Duration {
        self.probe.max(hold / 4)
    }

    /// The hold of a path with `failures` failures within the window whose longest
    /// remembered healthy *spell* (from a join that ended an outage to its next failure,
    /// within the window) was `spell`: `max(hold_for(failures), spell + hold)`, at most
    /// `hold_max`. A path that came back, stayed up for a while and failed again has shown
    /// that staying up that long proves nothing: its next hold outlasts that spell (a path
    /// flapping 1 s down / 1 s up is not handed back at its second recovery, when the
    /// doubling alone, 800 ms, would end its hold just before the next drop).
    pub fn hold_after(&self, failures: usize, spell: Option<Duration>) -> Duration {
        let by_spell = spell.map_or(Duration::ZERO, |s| s.saturating_add(self.hold));
        self.hold_for(failures).max(by_spell).min(self.hold_max)
    }
}

/// What the samples say about a path: a failure, with the rule (`stalled`, `rto`,
/// `unanswered-probes`: a reason code) and the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The rule that fired: the decision's reason code.
    pub code: &'static str,
    /// The numbers behind it.
    pub detail: String,
}

/// The failure detector of one subflow (module docs, "Failure signals"): fed its samples in
/// order with the time they were taken, it says when they prove the path dead. Pure.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// The last sample observed and when.
    last: Option<(Instant, SubflowSample)>,
    /// The latest the current stall can have started (data outstanding, no ACK progress).
    stall_start: Option<Instant>,
    /// The last time a sample showed acknowledged data moving.
    progress_at: Option<Instant>,
}

impl Watch {
    /// Observes the sample `s` taken at `now`; returns the failure it proves, if any. A sample
    /// equal to the last one observed is not new (no sock_diag poll since) and changes
    /// nothing.
    pub fn observe(&mut self, t: &Tunables, now: Instant, s: &SubflowSample) -> Option<Failure> {
        if let Some((at, last)) = self.last {
            if last == *s {
                // Judged as of when it was taken: no new evidence, no longer stall.
                return self.judge(t, at, s);
            }
        }
        let prev = self.last.replace((now, *s)).map(|(_, p)| p);
        if prev.is_some_and(|p| p.bytes_acked != s.bytes_acked) {
            self.progress_at = Some(now);
        }
        if s.unacked == 0 {
            self.stall_start = None;
        } else {
            // The oldest outstanding data was sent no later than the last send, and was not
            // acknowledged since the last ACK: it has waited at least the smaller of the two.
            let waited = Duration::from_millis(s.last_ack_recv_ms.min(s.last_data_sent_ms).into());
            let latest = now.checked_sub(waited).unwrap_or(now);
            let continued = prev.is_some_and(|p| p.unacked > 0 && p.bytes_acked == s.bytes_acked);
            let start = match (continued, self.stall_start) {
                (true, Some(start)) => start.min(latest),
                _ => latest,
            };
            // Any ACK the path brought back, a duplicate or a SACK too, proves it alive when
            // it came: a stall cannot have started before it. (In loss recovery the
            // cumulative ACK stands at the first hole for rounds while SACKs keep coming.)
            let last_ack = Duration::from_millis(s.last_ack_recv_ms.into());
            let alive_at = now.checked_sub(last_ack).unwrap_or(now);
            self.stall_start = Some(start.max(alive_at));
        }
        self.judge(t, now, s)
    }

    /// How long data has been outstanding without acknowledgment progress, as of `now`.
    pub fn stalled_for(&self, now: Instant) -> Option<Duration> {
        self.stall_start
            .map(|start| now.saturating_duration_since(start))
    }

    /// Whether a sample showed acknowledged data moving after `t`.
    pub fn progressed_since(&self, t: Instant) -> bool {
        self.progress_at.is_some_and(|p| p > t)
    }

    fn judge(&self, t: &Tunables, now: Instant, s: &SubflowSample) -> Option<Failure> {
        if let Some(stalled) = self.stalled_for(now) {
            if stalled > t.stall_limit(s) {
                let (_, how) = t.stall_threshold(s);
                return Some(Failure {
                    code: "stalled",
                    detail: format!(
                        "no ack for {} with {} segment{} outstanding ({how})",
                        fmt_dur(stalled),
                        s.unacked,
                        if s.unacked == 1 { "" } else { "s" }
                    ),
                });
            }
        }
        if s.retransmits >= RTO_LIMIT && s.unacked > 0 {
            return Some(Failure {
                code: "rto",
                detail: format!(
                    "{} retransmission timeouts in a row without an ack ({} segments outstanding, rto {}, backoff {})",
                    s.retransmits,
                    s.unacked,
                    fmt_dur(Duration::from_micros(s.rto_us.into())),
                    s.backoff
                ),
            });
        }
        if s.probes >= PROBES_LIMIT {
            return Some(Failure {
                code: "unanswered-probes",
                detail: format!(
                    "{} zero-window or keepalive probes unanswered (peer window {} bytes, no ack for {})",
                    s.probes,
                    s.snd_wnd,
                    fmt_dur(Duration::from_millis(s.last_ack_recv_ms.into()))
                ),
            });
        }
        None
    }
}

/// Where an active path is. A path without an entry (or `Up`) is trusted.
#[derive(Debug, Clone, PartialEq)]
pub enum PathState {
    /// Trusted: its subflows carry traffic.
    Up,
    /// Failed at `since`; probed.
    Down {
        /// When it failed.
        since: Instant,
        /// The signal (a reason code).
        code: &'static str,
        /// The numbers.
        why: String,
    },
    /// A join proved it works at `since`; its subflow stays backup until `hold` has passed.
    Holding {
        /// When the join that proved it established.
        since: Instant,
        /// The hold for this path now.
        hold: Duration,
    },
}

/// What the policy remembers of one active path.
#[derive(Debug, Clone)]
struct PathMem {
    state: PathState,
    /// Failures within the flap window, oldest first: when, and the healthy spell it ended
    /// (how long the path had been up since a join ended its previous outage), if a join
    /// had.
    failures: VecDeque<(Instant, Option<Duration>)>,
    /// When a join last ended an outage of this path (the start of its current spell).
    rejoined: Option<Instant>,
    /// When the last probe was opened.
    probe_at: Option<Instant>,
    /// Probes opened since the path last went down.
    probes: u32,
}

impl PathMem {
    /// The longest healthy spell within the window that ended in a failure.
    fn longest_spell(&self) -> Option<Duration> {
        self.failures.iter().filter_map(|(_, spell)| *spell).max()
    }

    fn new() -> Self {
        PathMem {
            state: PathState::Up,
            failures: VecDeque::new(),
            rejoined: None,
            probe_at: None,
            probes: 0,
        }
    }
}

/// What the policy remembers of one established subflow.
#[derive(Debug, Clone)]
struct SubMem {
    path: Path,
    watch: Watch,
    verdict: Option<Failure>,
    closed_by_us: bool,
}

/// One established subflow as this round sees it.
#[derive(Debug, Clone, Copy)]
struct Live {
    key: SubflowKey,
    path: Path,
    since: Instant,
    want_backup: bool,
    initial: bool,
    standby: bool,
}

/// The decisions of one round, in the order they must reach the kernel: flags cleared (so
/// that something carries traffic), closes (the kernel reinjects their data on what is not
/// backup), flags set, opens.
#[derive(Default)]
struct Out {
    clear: Vec<Decision>,
    close: Vec<Decision>,
    set: Vec<Decision>,
    open: Vec<Decision>,
    closing: Vec<SubflowKey>,
}

impl Out {
    fn close(&mut self, key: SubflowKey, reason: Reason) {
        if !self.closing.contains(&key) {
            self.closing.push(key);
            self.close
                .push(Decision::new(Action::Close { key }, reason));
        }
    }

    fn into_vec(self) -> Vec<Decision> {
        let mut v = self.clear;
        v.extend(self.close);
        v.extend(self.set);
        v.extend(self.open);
        v
    }
}

/// The active-standby policy for one connection. See the module docs.
#[derive(Debug)]
pub struct ActiveStandby {
    standby: Vec<InterfaceGlob>,
    t: Tunables,
    /// Whether each local address seen is a standby one (remembered for addresses that went).
    classes: BTreeMap<IpAddr, bool>,
    paths: BTreeMap<Path, PathMem>,
    subs: HashMap<SubflowKey, SubMem>,
    /// The last failure, "path: why", for the failover reason and the note.
    last_failure: Option<String>,
    /// A measured failure with nowhere to fail over to (for the note).
    stuck: Option<String>,
}

impl ActiveStandby {
    /// The policy with these standby interface globs and tunables.
    pub fn new(standby: Vec<InterfaceGlob>, t: Tunables) -> Self {
        ActiveStandby {
            standby,
            t,
            classes: BTreeMap::new(),
            paths: BTreeMap::new(),
            subs: HashMap::new(),
            last_failure: None,
            stuck: None,
        }
    }

    /// The tunables in use.
    pub fn tunables(&self) -> &Tunables {
        &self.t
    }

    /// Where an active path is (`Up` when the policy remembers nothing of it).
    pub fn path_state(&self, path: &Path) -> PathState {
        self.paths
            .get(path)
            .map_or(PathState::Up, |m| m.state.clone())
    }

    /// The path's failures within the flap window (as of the last decision).
    pub fn failures(&self, path: &Path) -> usize {
        self.paths.get(path).map_or(0, |m| m.failures.len())
    }

    fn is_standby_local(&self, l: &LocalAddr) -> bool {
        l.backup || self.standby.iter().any(|g| g.matches(&l.if_name))
    }

    fn is_standby(&self, addr: IpAddr) -> bool {
        self.classes.get(&addr).copied().unwrap_or(false)
    }

    fn state_of(&self, path: &Path) -> &PathState {
        const UP: &PathState = &PathState::Up;
        self.paths.get(path).map_or(UP, |m| &m.state)
    }

    /// Feeds the samples to the detectors of the subflows already known; true when that is all
    /// this round has to do (see `on_samples`). Allocates nothing: it runs for every
    /// connection of this policy every `sample_ms`.
    fn quiet(&mut self, ctx: &Ctx<'_>) -> bool {
        if !mesh::acts_on(ctx.conn)
            || self.stuck.is_some()
            || self.paths.values().any(|m| m.state != PathState::Up)
        {
            return false;
        }
        let mut live = 0;
        for sf in ctx.conn.subflows() {
            if !sf.is_established() || sf.closing {
                continue;
            }
            let Some(m) = sf.key().and_then(|k| self.subs.get_mut(&k)) else {
                return false;
            };
            live += 1;
            if let Some(s) = sf.sample.filter(|s| s.tcp_state != TCP_SYN_SENT) {
                m.verdict = m.watch.observe(&self.t, ctx.now, &s);
            }
            if m.verdict.is_some() {
                return false;
            }
        }
        live == self.subs.len()
    }

    /// One round: everything the policy decides, from whatever hook.
    fn evaluate(&mut self, ctx: &Ctx<'_>, sampled: bool) -> Vec<Decision> {
        let conn = ctx.conn;
        if !mesh::acts_on(conn) {
            return Vec::new();
        }
        let now = ctx.now;
        let usable = |addr: IpAddr| ctx.locals.iter().any(|l| l.addr == addr);
        let joinable = mesh::joinable_remotes(conn);
        let known: Vec<_> = conn.remotes().into_iter().map(|(_, r)| r).collect();
        // Addresses seen usable before this round: only those can be "gone" (the initial
        // subflow's address may never have been usable, e.g. on an excluded interface).
        let seen: Vec<IpAddr> = self.classes.keys().copied().collect();
        for l in ctx.locals {
            let standby = self.is_standby_local(l);
            self.classes.insert(l.addr, standby);
        }
        for m in self.paths.values_mut() {
            while m
                .failures
                .front()
                .is_some_and(|(f, _)| now.saturating_duration_since(*f) > self.t.flap_window)
            {
                m.failures.pop_front();
            }
            if m.rejoined
                .is_some_and(|r| now.saturating_duration_since(r) > self.t.flap_window)
            {
                // A spell longer than the window is no flapping.
                m.rejoined = None;
            }
        }
        // Forget paths the peer removed, and trusted ones with nothing to remember.
        self.paths.retain(|p, m| {
            known.contains(&p.remote) && !(m.state == PathState::Up && m.failures.is_empty())
        });

        let live = self.track(conn.subflows(), now, sampled);
        let mut out = Out::default();

        // Failures, kernel-signalled and measured.
        let mut failing: Vec<(Path, &'static str, String)> = Vec::new();
        for (path, key, error) in self.kernel_closed(conn.subflows()) {
            if !self.is_standby(path.local)
                && !matches!(self.state_of(&path), PathState::Down { .. })
            {
                let by = match error {
                    Some(e) => format!("closed by the kernel (error {e})"),
                    None => "closed by the peer or the kernel".to_owned(),
                };
                failing.push((path, "closed", format!("its subflow {key} was {by}")));
            }
        }
        let mut active_paths: Vec<Path> =
            live.iter().filter(|l| !l.standby).map(|l| l.path).collect();
        active_paths.extend(self.paths.keys().copied());
        active_paths.sort();
        active_paths.dedup();
        for path in &active_paths {
            if seen.contains(&path.local)
                && !usable(path.local)
                && !matches!(self.state_of(path), PathState::Down { .. })
            {
                failing.push((
                    *path,
                    "address-gone",
                    format!(
                        "its local address {} is no longer usable (removed, or its link is down)",
                        path.local
                    ),
                ));
            }
        }
        self.held_probe_failures(now, &live, &mut failing);
        let measured = self.measured(&live, &failing, &mut out);
        failing.extend(measured);
        let mut once: Vec<Path> = Vec::new();
        failing.retain(|(p, _, _)| {
            let first = !once.contains(p);
            once.push(*p);
            first
        });

        for (path, code, why) in failing {
            self.fail(path, code, why, now, &live, &joinable, &mut out);
        }

        // Down paths: recovery evidence, the probe train; held paths: verification, hand-back.
        let mut budget = mesh::budget(conn, self.t.max_subflows, &out.close);
        let mut handed_back: Vec<(Path, String)> = Vec::new();
        let paths: Vec<Path> = self.paths.keys().copied().collect();
        for path in paths {
            let on_path: Vec<Live> = live
                .iter()
                .filter(|l| l.path == path && !out.closing.contains(&l.key))
                .copied()
                .collect();
            let probes = Probes::of(conn.subflows(), &path);
            let Some(mem) = self.paths.get_mut(&path) else {
                continue;
            };
            match mem.state.clone() {
                PathState::Up => {}
                PathState::Down { since, code, why } => {
                    let proof = on_path
                        .iter()
                        .filter(|l| {
                            l.since > since
                                || self
                                    .subs
                                    .get(&l.key)
                                    .is_some_and(|m| m.watch.progressed_since(since))
                        })
                        .max_by_key(|l| l.since)
                        .copied();
                    if let Some(p) = proof {
                        let hold = self.t.hold_after(mem.failures.len(), mem.longest_spell());
                        let joined = p.since.max(since);
                        mem.rejoined = Some(joined);
                        mem.state = PathState::Holding {
                            since: joined,
                            hold,
                        };
                        // The hold's own verification probes come from here on.
                        mem.probe_at = None;
                        // Everything else of the outage goes now, in one batch: the kernel
                        // sends its retransmit queue again once per batch of destroys.
                        let detail = format!(
                            "path {} joined again after {} down: the other probes of its outage are closed together (one batch: the kernel sends its retransmit queue again once per batch)",
                            PathFmt(&path),
                            fmt_dur(joined.saturating_duration_since(since))
                        );
                        let keys: Vec<SubflowKey> = on_path
                            .iter()
                            .filter(|l| l.key != p.key)
                            .map(|l| l.key)
                            .chain(probes.all_keys())
                            .collect();
                        for key in keys {
                            self.close_as(key, "probe-batch", detail.clone(), &mut out);
                        }
                        continue;
                    }
                    // Stale probes (their SYN in exponential backoff) linger at no cost
                    // until they are too many: then they go together.
                    if probes.lingering.len() > LINGER_TRAINS * self.t.train() {
                        let detail = format!(
                            "path {} down for {}: {} stale probes (their SYNs in exponential backoff) closed together",
                            PathFmt(&path),
                            fmt_dur(now.saturating_duration_since(since)),
                            probes.lingering.len()
                        );
                        for key in probes.lingering.clone() {
                            self.close_as(key, "stale-probes", detail.clone(), &mut out);
                        }
                    }
                    let Some(mem) = self.paths.get_mut(&path) else {
                        continue;
                    };
                    // The train: a new probe every `probe_ms` while fewer than a train's
                    // worth have their SYN retransmitted every second. Each is left to its
                    // SYN retries, never destroyed while the path is down.
                    let due = mem.probe_at.map_or(since, |t| t + self.t.probe);
                    if usable(path.local)
                        && joinable.contains(&path.remote)
                        && probes.in_flight < self.t.train()
                        && now >= due
                        && budget > 0
                    {
                        mem.probe_at = Some(now);
                        mem.probes += 1;
                        budget -= 1;
                        let detail = format!(
                            "path {} down for {} ({code}: {why}); probe {}, {} in flight: a SYN on the path every {}",
                            PathFmt(&path),
                            fmt_dur(now.saturating_duration_since(since)),
                            mem.probes,
                            probes.in_flight + 1,
                            fmt_dur(self.t.probe)
                        );
                        out.open.push(probe_open(ctx, path, detail));
                    }
                }
                PathState::Holding { since, hold } => {
                    // The newest join is the proof; at most one older one is kept (a spare
                    // for the peer's subflow limit), the rest close.
                    let mut joined = on_path.clone();
                    joined.sort_by_key(|l| std::cmp::Reverse(l.since));
                    let newest = joined.first().copied();
                    let held = now.saturating_duration_since(since);
                    if held >= hold && newest.is_some() {
                        mem.state = PathState::Up;
                        let n = mem.failures.len();
                        let spell = mem.longest_spell().map_or(String::new(), |d| {
                            format!(", up for at most {} between them", fmt_dur(d))
                        });
                        let detail = format!(
                            "path {} healthy for {} since a probe joined (hold {}: {n} failure{} in the last {}{spell}); active again",
                            PathFmt(&path),
                            fmt_dur(held),
                            fmt_dur(hold),
                            if n == 1 { "" } else { "s" },
                            fmt_dur(self.t.flap_window)
                        );
                        // The other joins and probes go with the hand-back, in one batch.
                        let keys: Vec<SubflowKey> = joined
                            .iter()
                            .skip(1)
                            .map(|l| l.key)
                            .chain(probes.all_keys())
                            .collect();
                        for key in keys {
                            self.close_as(
                                key,
                                "probe-batch",
                                format!(
                                    "path {} handed back: its other probes are closed with the hand-back, in one batch",
                                    PathFmt(&path)
                                ),
                                &mut out,
                            );
                        }
                        handed_back.push((path, detail));
                        continue;
                    }
                    for l in joined.iter().skip(2) {
                        let newer = newest.map_or(Duration::ZERO, |n| {
                            n.since.saturating_duration_since(l.since)
                        });
                        self.close_as(
                            l.key,
                            "reprobe",
                            format!(
                                "path {} held: replaced by a fresh probe that joined {} later",
                                PathFmt(&path),
                                fmt_dur(newer)
                            ),
                            &mut out,
                        );
                    }
                    let Some(mem) = self.paths.get_mut(&path) else {
                        continue;
                    };
                    let due = mem.probe_at.filter(|t| *t > since).unwrap_or(since)
                        + self.t.verify_every(hold);
                    if usable(path.local)
                        && joinable.contains(&path.remote)
                        && probes.in_flight == 0
                        && now >= due
                        && budget > 0
                    {
                        mem.probe_at = Some(now);
                        mem.probes += 1;
                        budget -= 1;
                        let detail = format!(
                            "path {} held for {} of {}: a fresh join every {} proves it still works",
                            PathFmt(&path),
                            fmt_dur(held),
                            fmt_dur(hold),
                            fmt_dur(self.t.verify_every(hold))
                        );
                        out.open.push(probe_open(ctx, path, detail));
                    }
                }
            }
        }

        // Up paths: one subflow each (a late probe SYN may have joined too).
        let mut up_paths: Vec<Path> = live
            .iter()
            .filter(|l| !l.standby && *self.state_of(&l.path) == PathState::Up)
            .map(|l| l.path)
            .collect();
        up_paths.sort();
        up_paths.dedup();
        for path in up_paths {
            let mut on_path: Vec<Live> = live
                .iter()
                .filter(|l| l.path == path && !out.closing.contains(&l.key))
                .copied()
                .collect();
            if on_path.len() < 2 {
                continue;
            }
            on_path.sort_by_key(|l| (!l.initial, l.want_backup, l.since));
            for l in &on_path[1..] {
                let detail = format!(
                    "a second subflow on active path {} (a probe that joined late); {} carries it",
                    PathFmt(&path),
                    on_path[0].key
                );
                self.close_as(l.key, "duplicate", detail, &mut out);
            }
        }

        self.flags(&live, &handed_back, &mut out);

        // The mesh: closes for gone addresses and removed remotes, opens of missing pairs
        // (the failed active paths excepted: they are probed above).
        for d in mesh::closes(ctx) {
            if let Action::Close { key } = d.action {
                if let Some(m) = self.subs.get_mut(&key) {
                    m.closed_by_us = true;
                }
                out.close(key, d.reason);
            }
        }
        let budget =
            mesh::budget(conn, self.t.max_subflows, &out.close).saturating_sub(out.open.len());
        let carrying = self.carrying(&live, &out.closing);
        let mut locals: Vec<&LocalAddr> = ctx.locals.iter().collect();
        locals.sort_by_key(|l| self.is_standby(l.addr));
        let opens = mesh::opens(ctx, locals, budget, |local, remote| {
            let path = Path {
                local: local.addr,
                remote,
            };
            if self.is_standby(local.addr) {
                Some(carrying)
            } else {
                (*self.state_of(&path) == PathState::Up).then_some(false)
            }
        });
        out.open.extend(opens);
        out.into_vec()
    }

    /// Brings the subflow memory in line with the connection (and feeds new samples to the
    /// detectors when `sampled`); returns the established subflows not being closed.
    fn track(&mut self, subflows: &[Subflow], now: Instant, sampled: bool) -> Vec<Live> {
        let mut live = Vec::new();
        for sf in subflows {
            let Some(key) = sf.key() else { continue };
            if !sf.is_established() {
                continue;
            }
            if sf.closing {
                if let Some(m) = self.subs.get_mut(&key) {
                    m.closed_by_us = true;
                }
                continue;
            }
            let SubflowState::Established { since } = sf.state else {
                continue;
            };
            let m = self.subs.entry(key).or_insert_with(|| SubMem {
                path: sf.path,
                watch: Watch::default(),
                verdict: None,
                closed_by_us: false,
            });
            if sampled {
                if let Some(s) = sf.sample.filter(|s| s.tcp_state != TCP_SYN_SENT) {
                    m.verdict = m.watch.observe(&self.t, now, &s);
                }
            }
            live.push(Live {
                key,
                path: sf.path,
                since,
                want_backup: sf.want_backup,
                initial: sf.initial,
                standby: self.classes.get(&sf.path.local).copied().unwrap_or(false),
            });
        }
        live
    }

    /// The remembered subflows that are no longer established and that this policy did not
    /// close: (path, key, the socket error the kernel reported). They are forgotten.
    fn kernel_closed(&mut self, subflows: &[Subflow]) -> Vec<(Path, SubflowKey, Option<u8>)> {
        let mut gone = Vec::new();
        self.subs.retain(|key, m| {
            // An abandoned probe may have left a dead entry with the same key: the
            // established one counts first.
            let named = || subflows.iter().filter(|sf| sf.key() == Some(*key));
            let entry = named()
                .find(|sf| sf.is_established())
                .or_else(|| named().find(|sf| sf.is_dead()));
            if entry.is_some_and(|sf| sf.is_established() && !sf.closing) {
                return true;
            }
            if !m.closed_by_us {
                let error = entry.and_then(|sf| match sf.state {
                    SubflowState::Closed { error, .. } => error,
                    _ => None,
                });
                gone.push((m.path, *key, error));
            }
            false
        });
        gone.sort();
        gone
    }

    /// Held paths whose verification probe (opened after the hold began) has not joined within
    /// `probe_ms`: a new failure. (The probe itself is left to its SYN retries: it is the
    /// first of the path's new train.)
    fn held_probe_failures(
        &self,
        now: Instant,
        live: &[Live],
        failing: &mut Vec<(Path, &'static str, String)>,
    ) {
        for (path, mem) in &self.paths {
            let PathState::Holding { since, .. } = mem.state else {
                continue;
            };
            let Some(probe_at) = mem.probe_at.filter(|t| *t > since) else {
                continue;
            };
            let joined = live.iter().any(|l| l.path == *path && l.since >= probe_at);
            if !joined && now >= probe_at + self.t.probe {
                failing.push((
                    *path,
                    "probe-failed",
                    format!(
                        "a fresh join did not establish within {} while the path was held ({} after it was first joined again)",
                        fmt_dur(self.t.probe),
                        fmt_dur(probe_at.saturating_duration_since(since))
                    ),
                ));
            }
        }
    }

    /// Close `key` (an established subflow or a probe in flight) with this reason, once.
    fn close_as(&mut self, key: SubflowKey, code: &'static str, detail: String, out: &mut Out) {
        out.close(key, Reason::new(code, detail));
        if let Some(m) = self.subs.get_mut(&key) {
            m.closed_by_us = true;
        }
    }

    /// Failures the samples prove on active paths that are trusted or held, each acted on only
    /// when another subflow can take the data; a failed standby subflow that carries traffic
    /// is closed (when another can take it) and re-opened by the mesh.
    fn measured(
        &mut self,
        live: &[Live],
        failing: &[(Path, &'static str, String)],
        out: &mut Out,
    ) -> Vec<(Path, &'static str, String)> {
        let bad = |l: &Live, subs: &HashMap<SubflowKey, SubMem>| {
            subs.get(&l.key).is_some_and(|m| m.verdict.is_some())
        };
        let mut found = Vec::new();
        self.stuck = None;
        for l in live {
            let Some(f) = self.subs.get(&l.key).and_then(|m| m.verdict.clone()) else {
                continue;
            };
            let target = live.iter().any(|o| {
                o.path != l.path
                    && !bad(o, &self.subs)
                    && !failing.iter().any(|(p, _, _)| *p == o.path)
                    && !matches!(self.state_of(&o.path), PathState::Down { .. })
            });
            if l.standby {
                if !l.want_backup && target {
                    self.close_as(
                        l.key,
                        f.code,
                        format!("standby subflow failed: {}", f.detail),
                        out,
                    );
                }
                continue;
            }
            if matches!(self.state_of(&l.path), PathState::Down { .. }) {
                continue;
            }
            if target {
                found.push((l.path, f.code, f.detail));
            } else {
                self.stuck = Some(format!(
                    "path {} {}: {}, and no other subflow can take its data",
                    PathFmt(&l.path),
                    f.code,
                    f.detail
                ));
            }
        }
        found
    }

    /// Path `path` failed: remember it, and close its subflows (see the module docs).
    #[allow(clippy::too_many_arguments)]
    fn fail(
        &mut self,
        path: Path,
        code: &'static str,
        why: String,
        now: Instant,
        live: &[Live],
        joinable: &[std::net::SocketAddr],
        out: &mut Out,
    ) {
        let mem = self.paths.entry(path).or_insert_with(PathMem::new);
        let spell = mem
            .rejoined
            .take()
            .map(|r| now.saturating_duration_since(r));
        mem.failures.push_back((now, spell));
        mem.state = PathState::Down {
            since: now,
            code,
            why: why.clone(),
        };
        mem.probe_at = None;
        mem.probes = 0;
        let n = mem.failures.len();
        self.last_failure = Some(format!("path {} {code}: {why}", PathFmt(&path)));
        if !joinable.contains(&path.remote) {
            // It could never be joined again: keep its subflow, as backup (module docs).
            return;
        }
        for l in live.iter().filter(|l| l.path == path) {
            let others = live
                .iter()
                .filter(|o| o.key != l.key && !out.closing.contains(&o.key))
                .count();
            if others == 0 {
                continue;
            }
            let idle = self
                .subs
                .get(&l.key)
                .and_then(|m| m.watch.last)
                .is_none_or(|(_, s)| s.unacked == 0);
            if l.want_backup && idle {
                // It carries nothing: closing it would only make the kernel send its
                // retransmit queue again. It goes with the path's next batch (module docs).
                continue;
            }
            let then = "closed so that its unacknowledged data is sent again at once";
            self.close_as(
                l.key,
                code,
                format!(
                    "path {} failed ({n} failure{} in the last {}): {why}; {then}",
                    PathFmt(&path),
                    if n == 1 { "" } else { "s" },
                    fmt_dur(self.t.flap_window)
                ),
                out,
            );
        }
    }

    /// Whether an active path carries traffic: trusted, with an established subflow that
    /// stays.
    fn carrying(&self, live: &[Live], closing: &[SubflowKey]) -> bool {
        live.iter().any(|l| {
            !l.standby && !closing.contains(&l.key) && *self.state_of(&l.path) == PathState::Up
        })
    }

    /// The backup flag every remaining subflow should have, and the decisions that set it.
    fn flags(&self, live: &[Live], handed_back: &[(Path, String)], out: &mut Out) {
        let remaining: Vec<&Live> = live
            .iter()
            .filter(|l| !out.closing.contains(&l.key))
            .collect();
        let carrying = self.carrying(live, &out.closing);
        let mut wish: Vec<(&Live, bool)> = remaining
            .iter()
            .map(|l| {
                let backup = if l.standby {
                    carrying
                } else {
                    *self.state_of(&l.path) != PathState::Up
                };
                (*l, backup)
            })
            .collect();
        // Never nothing to carry the traffic: the standby first, then the newest held path,
        // then anything.
        let mut last_active = None;
        if !wish.is_empty() && wish.iter().all(|(_, b)| *b) {
            let pick = wish
                .iter()
                .enumerate()
                .max_by_key(|(_, (l, _))| {
                    let rank = match self.state_of(&l.path) {
                        _ if l.standby => 3,
                        PathState::Holding { .. } => 2,
                        PathState::Up => 1,
                        PathState::Down { .. } => 0,
                    };
                    (rank, l.since)
                })
                .map(|(i, _)| i);
            if let Some(i) = pick {
                wish[i].1 = false;
                last_active = Some(wish[i].0.key);
            }
        }
        let carrier = remaining
            .iter()
            .find(|l| !l.standby && *self.state_of(&l.path) == PathState::Up)
            .map(|l| l.path);
        for (l, backup) in wish {
            if l.want_backup == backup {
                continue;
            }
            let action = Action::SetBackup { key: l.key, backup };
            let reason = if Some(l.key) == last_active {
                Reason::fixed(
                    "last-active",
                    "no other subflow would carry the traffic: this one does",
                )
            } else if l.standby && !backup {
                Reason::new(
                    "failover",
                    format!(
                        "no active path carries the traffic ({}): the standby takes over",
                        self.last_failure
                            .as_deref()
                            .unwrap_or("none is established")
                    ),
                )
            } else if l.standby {
                let how = handed_back
                    .iter()
                    .find(|(p, _)| Some(*p) == carrier)
                    .map_or_else(|| "it is established".to_owned(), |(_, d)| d.clone());
                Reason::new(
                    "standby",
                    format!(
                        "active path {} carries the traffic ({how}): standby again",
                        carrier
                            .as_ref()
                            .map_or_else(String::new, |p| PathFmt(p).to_string())
                    ),
                )
            } else if !backup {
                match handed_back.iter().find(|(p, _)| *p == l.path) {
                    Some((_, detail)) => Reason::new("handback", detail.clone()),
                    None => Reason::fixed(
                        "active",
                        "a subflow of a trusted active path carries traffic",
                    ),
                }
            } else {
                let state = match self.state_of(&l.path) {
                    PathState::Holding { since: _, hold } => {
                        format!("held for {} after it failed", fmt_dur(*hold))
                    }
                    _ => "down".to_owned(),
                };
                Reason::new(
                    "holding",
                    format!(
                        "path {} is {state}: backup until it has been healthy for its hold",
                        PathFmt(&l.path)
                    ),
                )
            };
            if backup {
                out.set.push(Decision::new(action, reason));
            } else {
                out.clear.push(Decision::new(action, reason));
            }
        }
    }
}

/// A probe of `path`: backup, in flight for [`PROBE_LIFE`] at most (see the module docs).
fn probe_open(ctx: &Ctx<'_>, path: Path, detail: String) -> Decision {
    let if_index = ctx
        .locals
        .iter()
        .find(|l| l.addr == path.local)
        .map(|l| l.if_index);
    Decision::new(
        Action::Open {
            local: path.local,
            if_index,
            remote: path.remote,
            backup: true,
            timeout: Some(PROBE_LIFE),
        },
        Reason::new("probe", detail),
    )
}

/// The probes of one path that have not established: how many are in flight, and the keys
/// of those whose port is known (in flight or stale; only those can be closed).
struct Probes {
    in_flight: usize,
    in_flight_keys: Vec<SubflowKey>,
    lingering: Vec<SubflowKey>,
}

impl Probes {
    fn of(subflows: &[Subflow], path: &Path) -> Probes {
        let mut p = Probes {
            in_flight: 0,
            in_flight_keys: Vec::new(),
            lingering: Vec::new(),
        };
        for sf in subflows.iter().filter(|sf| sf.path == *path) {
            if sf.is_probe_in_flight() {
                p.in_flight += 1;
                p.in_flight_keys.extend(sf.key());
            } else if sf.is_lingering_probe() {
                p.lingering.extend(sf.key());
            }
        }
        p
    }

    fn all_keys(&self) -> impl Iterator<Item = SubflowKey> + '_ {
        self.in_flight_keys.iter().chain(&self.lingering).copied()
    }
}

impl Policy for ActiveStandby {
    fn on_event(&mut self, ctx: &Ctx<'_>, event: &PmEvent) -> Vec<Decision> {
        match event {
            PmEvent::Established(_)
            | PmEvent::Announced { .. }
            | PmEvent::Removed { .. }
            | PmEvent::SubEstablished(_)
            | PmEvent::SubClosed(_)
            | PmEvent::SubPriority(_) => self.evaluate(ctx, false),
            _ => Vec::new(),
        }
    }

    fn on_locals_changed(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        self.evaluate(ctx, false)
    }

    /// The samples are the policy's clock: every `sample_ms` the detectors see them, and the
    /// probes, holds and hand-backs advance. In the steady state (every path trusted, no
    /// sample proving a failure, no subflow the policy has not seen yet or lost) only the
    /// detectors run: nothing else can be due that an event or a tick would not bring.
    fn on_samples(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        if self.quiet(ctx) {
            return Vec::new();
        }
        self.evaluate(ctx, true)
    }

    fn on_tick(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        self.evaluate(ctx, false)
    }

    /// Which path carries the traffic, which are down or held and since when; a stall with
    /// nowhere to fail over to; and the mesh's `deny_join_id0` note.
    fn note(&self, ctx: &Ctx<'_>) -> Option<Reason> {
        let conn = ctx.conn;
        if !mesh::acts_on(conn) {
            return None;
        }
        let now = ctx.now;
        let mut parts: Vec<String> = Vec::new();
        for (path, mem) in &self.paths {
            match &mem.state {
                PathState::Up => {}
                PathState::Down { since, code, why } => parts.push(format!(
                    "path {} down for {} ({code}: {why}), {} probe{} so far",
                    PathFmt(path),
                    fmt_dur(now.saturating_duration_since(*since)),
                    mem.probes,
                    if mem.probes == 1 { "" } else { "s" }
                )),
                PathState::Holding { since, hold } => parts.push(format!(
                    "path {} held for {} of {} ({} failures in the last {})",
                    PathFmt(path),
                    fmt_dur(now.saturating_duration_since(*since)),
                    fmt_dur(*hold),
                    mem.failures.len(),
                    fmt_dur(self.t.flap_window)
                )),
            }
        }
        let carrying = conn.subflows().iter().any(|sf| {
            sf.is_established()
                && !sf.closing
                && !self.is_standby(sf.path.local)
                && *self.state_of(&sf.path) == PathState::Up
        });
        let (code, lead) = match (&self.stuck, carrying) {
            (Some(s), _) => ("stalled", s.clone()),
            (None, true) => (
                "active",
                "an active path carries the traffic, the standby is backup".to_owned(),
            ),
            (None, false) => (
                "failover",
                "no active path carries the traffic: the standby does".to_owned(),
            ),
        };
        let mut detail = lead;
        for p in parts {
            detail.push_str("; ");
            detail.push_str(&p);
        }
        if let Some(deny) = mesh::note(ctx) {
            detail.push_str("; ");
            detail.push_str(&deny.detail);
        }
        Some(Reason::new(code, detail))
    }
}

/// `local -> remote` of a path, for reasons.
struct PathFmt<'a>(&'a Path);

impl fmt::Display for PathFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.0.local, self.0.remote)
    }
}

/// A duration for reasons: `3.1 ms`, `182 ms`, `12.5 s`.
pub fn fmt_dur(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else if ms < 10_000.0 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
