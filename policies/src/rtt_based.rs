//! The `rtt-based` policy: a full mesh of subflows whose members are demoted to backup while their
//! smoothed RTT is far worse than the best path's, restored when they catch up again, and
//! (optionally) closed while they lose packets and re-opened after a cooldown.
//!
//! The measurement logic lives in [`RttJudge`], a pure per-connection core that sees nothing but
//! `(key, backup flag, sample)` triples and the time: every rule is a unit test over a synthetic
//! sample series. [`RttBased`] is the [`Policy`] around it; it delegates subflow creation to the
//! fullmesh policy and turns the judge's [`Verdict`]s into [`Decision`]s.
//!
//! Rules (all thresholds in [`RttParams`]):
//! - `best` is the lowest srtt among *active* (non-backup, not being closed) subflows that have
//!   a measurement (`srtt_us > 0`).
//! - **Demote**: an active subflow whose srtt is above `backup_ratio x best` *and* at least
//!   `min_gap` above `best`, on every sample for `hold`, is marked backup. The gap rule keeps
//!   sub-millisecond LAN paths (0.02 ms vs 0.05 ms) from being judged by ratio alone. The last
//!   active subflow is never demoted.
//! - **Restore**: a subflow *this judge demoted* whose srtt stays below `restore_ratio x best`,
//!   *or* less than `min_gap / 2` above `best`, for `hold` gets its backup flag cleared. The two
//!   restore thresholds sit below the two demote thresholds (`restore_ratio < backup_ratio`,
//!   `min_gap / 2 < min_gap`): that is the hysteresis band in which nothing changes, so a path
//!   hovering around one threshold cannot flap. The gap half matters on fast paths, where a
//!   recovered subflow at 0.05 ms next to a best of 0.02 ms is still at ratio 2.5. A subflow that is
//!   backup for any other reason (a backup interface in the config, the peer, an operator) is
//!   never restored: the judge only undoes its own decisions. If no active subflow is left, the
//!   fastest subflow the judge demoted is restored at once.
//! - **Close on loss** (off by default): the retransmission rate between two consecutive samples,
//!   `delta(total_retrans) / delta(segs_out)`, above `loss_threshold` on every sample for `hold` closes the subflow (a window in which nothing was sent counts as lossy only while
//!   the subflow sits in retransmission timeout, i.e. `tcpi_retransmits > 0`; an idle window or a
//!   counter that went backwards breaks the streak); its path is then kept in a cooldown and re-opened after
//!   `cooldown`. The last active subflow is never closed.
//!
//! - **Probe** (`probe`, default 30 s): a subflow the judge demoted carries no data any more (the
//!   kernel's scheduler only uses backup subflows when nothing else is left), so its srtt is never
//!   measured again and the restore rule could never fire. Once the subflow has been backup-by-us
//!   for `probe` *and* its samples are stale, i.e. `bytes_acked` did not move for `probe` either,
//!   the judge clears its backup flag as a probe. A backup subflow that still carries data is
//!   measured and needs no probe. The probed subflow is then judged afresh: its demote timer
//!   starts only at the first sample showing newly acknowledged data (until then its stale srtt
//!   does not count as `best` either), so it is demoted again after `hold` if it is still slow,
//!   and stays active if it is fast. Every flag change the judge requests restarts the probe
//!   clock, so a slow path changes its flag at most twice per `probe + hold`, and two probes of
//!   one subflow are always at least `probe` apart.
//!
//! "On every sample" is literal: one sample that breaks a condition restarts its timer. A sample
//! without a measurement (`srtt_us == 0`) breaks the RTT conditions.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::conn::{Connection, Path};
use crate::fullmesh::Fullmesh;
use crate::model::{PmEvent, SubflowKey, SubflowSample, Token};
use crate::policy::{Ctx, Decision, Policy};

/// A backup-flag change the judge asked for is assumed lost (failed command, or a flag the kernel
/// refused) when the observed flag still disagrees after this long (at least `hold`).
const MIN_PENDING_TIMEOUT: Duration = Duration::from_secs(2);

/// Tunables of the rtt-based policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttParams {
    /// Maximum number of subflows per connection (passed to the fullmesh part).
    pub max_subflows: usize,
    /// Demote when `srtt > backup_ratio x best` (and the gap rule holds). Default 2.0.
    pub backup_ratio: f64,
    /// Demote only when `srtt - best >= min_gap`. Default 20 ms.
    pub min_gap: Duration,
    /// Restore when `srtt < restore_ratio x best`. Must be below `backup_ratio`. Default 1.5.
    pub restore_ratio: f64,
    /// How long a condition must hold on every sample before the judge acts. Default 5 s.
    pub hold: Duration,
    /// Close subflows that keep losing packets. Default false.
    pub close_on_loss: bool,
    /// Retransmission rate (0..=1) above which a subflow counts as lossy. Default 0.05.
    pub loss_threshold: f64,
    /// How long a path closed for loss stays closed before it is re-opened. Default 30 s.
    pub cooldown: Duration,
    /// A subflow this judge demoted whose samples stayed stale (no `bytes_acked` progress) for
    /// this long is made active again to be re-measured. `None`: never probe. Default 30 s.
    pub probe: Option<Duration>,
}

impl Default for RttParams {
    fn default() -> Self {
        RttParams {
            max_subflows: 8,
            backup_ratio: 2.0,
            min_gap: Duration::from_millis(20),
            restore_ratio: 1.5,
            hold: Duration::from_secs(5),
            close_on_loss: false,
            loss_threshold: 0.05,
            cooldown: Duration::from_secs(30),
            probe: Some(Duration::from_secs(30)),
        }
    }
}

/// Why a set of [`RttParams`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RttParamsError {
    /// `max_subflows` is 0.
    #[error("max_subflows must be at least 1")]
    NoSubflows,
    /// `backup_ratio` is below 1 or not a finite number.
    #[error("backup_ratio must be a finite number >= 1.0, got {0}")]
    BackupRatio(f64),
    /// `restore_ratio` is not positive, not finite, or not below `backup_ratio`.
    #[error(
        "restore_ratio must be a finite number in (0, backup_ratio = {backup}), got {restore}"
    )]
    RestoreRatio {
        /// The configured restore ratio.
        restore: f64,
        /// The configured backup ratio.
        backup: f64,
    },
    /// `loss_threshold` is outside `(0, 1]`.
    #[error("loss_threshold must be in (0, 1], got {0}")]
    LossThreshold(f64),
    /// `probe` is `Some(0)`: a demoted subflow would be restored at once (use `None` for never).
    #[error("probe must be longer than 0 (use no probe to never probe)")]
    ZeroProbe,
}

impl RttParams {
    /// Check the invariants the judge relies on (hysteresis needs `restore_ratio < backup_ratio`).
    pub fn validate(&self) -> Result<(), RttParamsError> {
        if self.max_subflows == 0 {
            return Err(RttParamsError::NoSubflows);
        }
        if !self.backup_ratio.is_finite() || self.backup_ratio < 1.0 {
            return Err(RttParamsError::BackupRatio(self.backup_ratio));
        }
        if !self.restore_ratio.is_finite()
            || self.restore_ratio <= 0.0
            || self.restore_ratio >= self.backup_ratio
        {
            return Err(RttParamsError::RestoreRatio {
                restore: self.restore_ratio,
                backup: self.backup_ratio,
            });
        }
        if !(self.loss_threshold > 0.0 && self.loss_threshold <= 1.0) {
            return Err(RttParamsError::LossThreshold(self.loss_threshold));
        }
        if self.probe.is_some_and(|p| p.is_zero()) {
            return Err(RttParamsError::ZeroProbe);
        }
        Ok(())
    }
}

/// A path to re-open: where a subflow closed for loss used to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubflowPath {
    /// Local address (the port is left to the kernel).
    pub local: IpAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// The subflow was backup for a reason other than this judge (e.g. a backup interface).
    pub backup: bool,
}

/// What the judge wants done to one subflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictKind {
    /// Set (`true`: demote) or clear (`false`: restore) the backup flag.
    SetBackup(bool),
    /// Close the subflow (too lossy).
    Close,
    /// Open a subflow on this path again (its cooldown is over).
    Reopen(SubflowPath),
}

/// One decision of the judge, with the numbers that led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The subflow concerned (for [`VerdictKind::Reopen`]: the one that was closed).
    pub key: SubflowKey,
    /// What to do.
    pub kind: VerdictKind,
    /// Human-readable reason with the measured values, for the daemon's log.
    pub reason: String,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            VerdictKind::SetBackup(true) => "set backup",
            VerdictKind::SetBackup(false) => "clear backup",
            VerdictKind::Close => "close",
            VerdictKind::Reopen(_) => "reopen",
        };
        write!(f, "{what} {}: {}", self.key, self.reason)
    }
}

/// The loss evidence carried by one sample, relative to the previous one.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LossObs {
    /// No baseline yet, a counter went backwards (a reset, or a new socket on the same
    /// 4-tuple), or nothing was sent: neither evidence for nor against loss.
    NoInfo,
    /// Nothing new was sent but the subflow sits in retransmission timeout (a dead path backs
    /// off exponentially, so whole sampling intervals pass without a segment).
    Stalled,
    /// `retrans` of `segs` segments sent since the previous sample were retransmissions.
    Rate {
        /// Retransmitted segments in the window.
        retrans: u32,
        /// Segments sent in the window (retransmissions included).
        segs: u32,
    },
}

impl LossObs {
    fn between(prev: Option<(u32, u32)>, sample: &SubflowSample) -> LossObs {
        let Some((prev_retrans, prev_segs)) = prev else {
            return LossObs::NoInfo;
        };
        let (Some(retrans), Some(segs)) = (
            sample.total_retrans.checked_sub(prev_retrans),
            sample.segs_out.checked_sub(prev_segs),
        ) else {
            return LossObs::NoInfo;
        };
        if segs == 0 {
            if sample.retransmits > 0 || retrans > 0 {
                LossObs::Stalled
            } else {
                LossObs::NoInfo
            }
        } else {
            LossObs::Rate { retrans, segs }
        }
    }

    /// The rate in `0..=1`, when the sample says anything.
    fn rate(self) -> Option<f64> {
        match self {
            LossObs::NoInfo => None,
            LossObs::Stalled => Some(1.0),
            LossObs::Rate { retrans, segs } => {
                Some((f64::from(retrans) / f64::from(segs)).min(1.0))
            }
        }
    }

    fn describe(self) -> String {
        match self {
            LossObs::NoInfo => "no data".to_string(),
            LossObs::Stalled => "stalled in retransmission timeout".to_string(),
            LossObs::Rate { retrans, segs } => format!(
                "{retrans}/{segs} segments retransmitted ({:.1}%)",
                f64::from(retrans) * 100.0 / f64::from(segs)
            ),
        }
    }
}

/// Per-subflow memory of the judge.
#[derive(Debug, Clone, Default)]
struct SubState {
    /// This judge set the backup flag (and so may clear it).
    demoted_by_us: bool,
    /// A backup-flag change was requested and not yet observed: (wanted, when).
    pending: Option<(bool, Instant)>,
    /// Since when the demote condition holds.
    slow_since: Option<Instant>,
    /// Since when the restore condition holds.
    fast_since: Option<Instant>,
    /// Since when the loss condition holds.
    lossy_since: Option<Instant>,
    /// (total_retrans, segs_out) of the previous sample.
    counters: Option<(u32, u32)>,
    /// A close was requested at this time (the subflow may linger until SUB_CLOSED).
    closing: Option<Instant>,
    /// When the judge last asked for a backup-flag change: the probe clock.
    flag_changed: Option<Instant>,
    /// `bytes_acked` of the previous sample.
    acked: Option<u64>,
    /// When `bytes_acked` last grew.
    acked_moved: Option<Instant>,
    /// Set by a probe: `bytes_acked` at that time. Until a sample shows more, the subflow's
    /// srtt is the stale one from before its demotion and is not judged.
    probe_acked: Option<u64>,
}

impl SubState {
    /// Record a backup-flag change requested now.
    fn request(&mut self, backup: bool, now: Instant) {
        self.pending = Some((backup, now));
        self.flag_changed = Some(now);
        self.slow_since = None;
        self.fast_since = None;
    }

    /// Whether this sample is still the stale one a probe started from.
    fn awaiting_fresh(&self, sample: &SubflowSample) -> bool {
        self.probe_acked
            .is_some_and(|acked| sample.bytes_acked <= acked)
    }
}

/// A closed path waiting for its cooldown to end.
#[derive(Debug, Clone, Copy)]
struct Cooldown {
    key: SubflowKey,
    path: SubflowPath,
    closed_at: Instant,
}

/// The pure RTT/loss judge of one connection. Feed it every sample round with
/// [`RttJudge::evaluate`]; it answers with the [`Verdict`]s to carry out.
#[derive(Debug, Clone)]
pub struct RttJudge {
    params: RttParams,
    subflows: HashMap<SubflowKey, SubState>,
    /// Paths closed for loss, by (local address, remote): ordered for reproducible output.
    cooldowns: BTreeMap<(IpAddr, SocketAddr), Cooldown>,
}

/// Format microseconds as milliseconds for reasons (sub-millisecond values with 3 decimals,
/// LAN paths are in the tens of microseconds).
fn ms(us: u32) -> String {
    fmt_ms(f64::from(us) / 1000.0)
}

fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.3}ms")
    } else {
        format!("{ms:.1}ms")
    }
}

/// Format a duration in seconds for reasons.
fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl RttJudge {
    /// A judge with no memory yet. `params` should have passed [`RttParams::validate`].
    pub fn new(params: RttParams) -> Self {
        RttJudge {
            params,
            subflows: HashMap::new(),
            cooldowns: BTreeMap::new(),
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &RttParams {
        &self.params
    }

    /// Whether this judge demoted `key` (and so may restore it).
    pub fn demoted_by_us(&self, key: &SubflowKey) -> bool {
        self.subflows.get(key).is_some_and(|s| s.demoted_by_us)
    }

    /// Whether the path from `local` to `remote` was closed for loss and is still cooling down:
    /// nobody should open it again before the judge says [`VerdictKind::Reopen`].
    pub fn in_cooldown(&self, local: IpAddr, remote: SocketAddr) -> bool {
        self.cooldowns.contains_key(&(local, remote))
    }

    /// Forget that this judge demoted `key`: its backup flag is someone else's now (e.g. its
    /// interface became a backup interface), so the judge will not restore it.
    pub fn disown(&mut self, key: &SubflowKey) {
        if let Some(st) = self.subflows.get_mut(key) {
            st.demoted_by_us = false;
            st.pending = None;
            st.fast_since = None;
        }
    }

    fn pending_timeout(&self) -> Duration {
        self.params.hold.max(MIN_PENDING_TIMEOUT)
    }

    /// Judge one round of samples.
    ///
    /// `subflows` lists the connection's established subflows as `(key, backup flag as observed,
    /// latest sample)`; a subflow without a measurement yet is passed with a default sample
    /// (`srtt_us == 0`) so that it still counts as active. Subflows missing from the list are
    /// forgotten. The verdicts come in input order, re-opens last.
    pub fn evaluate(
        &mut self,
        now: Instant,
        subflows: &[(SubflowKey, bool, SubflowSample)],
    ) -> Vec<Verdict> {
        let present: HashSet<SubflowKey> = subflows.iter().map(|(k, _, _)| *k).collect();
        self.subflows.retain(|k, _| present.contains(k));
        let pending_timeout = self.pending_timeout();
        let cooldown = self.params.cooldown;

        // Sync every subflow's memory with what is observed, and read the loss window.
        let mut loss = Vec::with_capacity(subflows.len());
        for (key, observed_backup, sample) in subflows {
            let st = self.subflows.entry(*key).or_default();
            if let Some((want, at)) = st.pending {
                if want == *observed_backup {
                    st.pending = None;
                } else if now.saturating_duration_since(at) >= pending_timeout {
                    // The change never showed up: the flag is still what it was before, and so
                    // is its ownership (a failed restore leaves the subflow ours to restore).
                    st.pending = None;
                    st.demoted_by_us = *observed_backup;
                }
            }
            if st.pending.is_none() && !observed_backup {
                // Active as observed: whatever we did before, there is nothing of ours to undo.
                st.demoted_by_us = false;
            }
            if st
                .closing
                .is_some_and(|at| now.saturating_duration_since(at) >= cooldown)
            {
                // The close did not take (the subflow is still here): judge it afresh.
                st.closing = None;
            }
            if st.acked.is_some_and(|prev| sample.bytes_acked > prev) {
                st.acked_moved = Some(now);
            }
            st.acked = Some(sample.bytes_acked);
            loss.push(LossObs::between(st.counters, sample));
            st.counters = Some((sample.total_retrans, sample.segs_out));
        }

        let mut out = Vec::new();
        self.rescue_zero_active(now, subflows, &mut out);
        if self.params.close_on_loss {
            self.judge_loss(now, subflows, &loss, &mut out);
        } else {
            for st in self.subflows.values_mut() {
                st.lossy_since = None;
            }
        }
        self.judge_rtt(now, subflows, &mut out);
        out.extend(self.reopens(now, &present));
        out
    }

    /// The backup flag the judge should reason with: a requested change counts as done.
    fn effective_backup(&self, key: &SubflowKey, observed: bool) -> bool {
        match self.subflows.get(key).and_then(|s| s.pending) {
            Some((want, _)) => want,
            None => observed,
        }
    }

    fn is_closing(&self, key: &SubflowKey) -> bool {
        self.subflows.get(key).is_some_and(|s| s.closing.is_some())
    }

    fn is_active(&self, key: &SubflowKey, observed: bool) -> bool {
        !self.effective_backup(key, observed) && !self.is_closing(key)
    }

    fn active_count(&self, subflows: &[(SubflowKey, bool, SubflowSample)]) -> usize {
        subflows
            .iter()
            .filter(|(k, b, _)| self.is_active(k, *b))
            .count()
    }

    /// Lowest srtt among active subflows with a measurement.
    fn best(&self, subflows: &[(SubflowKey, bool, SubflowSample)]) -> Option<u32> {
        subflows
            .iter()
            .filter(|(k, b, s)| {
                s.srtt_us > 0
                    && self.is_active(k, *b)
                    && !self.subflows.get(k).is_some_and(|st| st.awaiting_fresh(s))
            })
            .map(|(_, _, s)| s.srtt_us)
            .min()
    }

    /// Never leave a connection without an active subflow because of us: if none is active,
    /// restore the fastest subflow we demoted, without waiting for `hold`.
    fn rescue_zero_active(
        &mut self,
        now: Instant,
        subflows: &[(SubflowKey, bool, SubflowSample)],
        out: &mut Vec<Verdict>,
    ) {
        if self.active_count(subflows) > 0 {
            return;
        }
        let candidate = subflows
            .iter()
            .filter(|(k, b, _)| {
                self.effective_backup(k, *b)
                    && !self.is_closing(k)
                    && self.subflows.get(k).is_some_and(|s| s.demoted_by_us)
            })
            // Unmeasured subflows sort last.
            .min_by_key(|(k, _, s)| (s.srtt_us == 0, s.srtt_us, *k));
        let Some((key, _, sample)) = candidate else {
            return;
        };
        if let Some(st) = self.subflows.get_mut(key) {
            st.demoted_by_us = false;
            st.request(false, now);
        }
        out.push(Verdict {
            key: *key,
            kind: VerdictKind::SetBackup(false),
            reason: format!(
                "no active subflow left; restoring the fastest one we demoted (srtt {})",
                ms(sample.srtt_us)
            ),
        });
    }

    fn judge_loss(
        &mut self,
        now: Instant,
        subflows: &[(SubflowKey, bool, SubflowSample)],
        loss: &[LossObs],
        out: &mut Vec<Verdict>,
    ) {
        let hold = self.params.hold;
        let threshold = self.params.loss_threshold;
        let mut active = self.active_count(subflows);
        for ((key, observed_backup, _), obs) in subflows.iter().zip(loss) {
            let is_active = self.is_active(key, *observed_backup);
            let Some(st) = self.subflows.get_mut(key) else {
                continue;
            };
            if st.closing.is_some() {
                continue;
            }
            // No evidence (idle, no baseline, counter reset) breaks the streak like a clean
            // window: a dead path is `Stalled`, never silent, so it keeps its streak.
            if obs.rate().is_none_or(|rate| rate <= threshold) {
                st.lossy_since = None;
                continue;
            }
            let since = *st.lossy_since.get_or_insert(now);
            let held = now.saturating_duration_since(since);
            // Closing a backup subflow keeps the active count; closing an active one lowers it.
            let remaining = active - usize::from(is_active);
            if held < hold || remaining == 0 {
                continue;
            }
            let path = SubflowPath {
                local: key.local.ip(),
                remote: key.remote,
                backup: *observed_backup && !st.demoted_by_us,
            };
            st.closing = Some(now);
            st.lossy_since = None;
            st.slow_since = None;
            st.fast_since = None;
            active = remaining;
            self.cooldowns.insert(
                (path.local, path.remote),
                Cooldown {
                    key: *key,
                    path,
                    closed_at: now,
                },
            );
            out.push(Verdict {
                key: *key,
                kind: VerdictKind::Close,
                reason: format!(
                    "{} > loss threshold {:.1}% for {} (hold {}); reopen after {}",
                    obs.describe(),
                    threshold * 100.0,
                    secs(held),
                    secs(hold),
                    secs(self.params.cooldown)
                ),
            });
        }
    }

    fn judge_rtt(
        &mut self,
        now: Instant,
        subflows: &[(SubflowKey, bool, SubflowSample)],
        out: &mut Vec<Verdict>,
    ) {
        let p = self.params;
        let best = self.best(subflows);
        let mut active = self.active_count(subflows);
        for (key, observed_backup, sample) in subflows {
            let effective_backup = self.effective_backup(key, *observed_backup);
            let Some(st) = self.subflows.get_mut(key) else {
                continue;
            };
            if st.closing.is_some() || st.pending.is_some() {
                // Wait until the last change is observed (or given up) before judging again.
                st.slow_since = None;
                st.fast_since = None;
                continue;
            }
            if effective_backup && st.demoted_by_us {
                if let Some(probe) = p.probe {
                    // Stale since the later of our last flag change and the last acked data.
                    let changed = *st.flag_changed.get_or_insert(now);
                    let base = st.acked_moved.map_or(changed, |moved| moved.max(changed));
                    let stale = now.saturating_duration_since(base);
                    if stale >= probe {
                        st.demoted_by_us = false;
                        st.probe_acked = Some(sample.bytes_acked);
                        st.request(false, now);
                        active += 1;
                        out.push(Verdict {
                            key: *key,
                            kind: VerdictKind::SetBackup(false),
                            reason: format!(
                                "probe: backup for {} with no data acked (srtt {} is stale, \
                                 probe {}); active again to re-measure, demoted again after \
                                 hold {} if still slow",
                                secs(stale),
                                ms(sample.srtt_us),
                                secs(probe),
                                secs(p.hold)
                            ),
                        });
                        continue;
                    }
                }
            }
            let srtt = sample.srtt_us;
            let Some(best) = best.filter(|_| srtt > 0) else {
                st.slow_since = None;
                st.fast_since = None;
                continue;
            };
            let ratio = f64::from(srtt) / f64::from(best);
            if !effective_backup {
                st.fast_since = None;
                if st.awaiting_fresh(sample) {
                    // Probed and not measured since: the srtt is the stale one.
                    st.slow_since = None;
                    continue;
                }
                st.probe_acked = None;
                let gap = Duration::from_micros(u64::from(srtt.saturating_sub(best)));
                if !(ratio > p.backup_ratio && gap >= p.min_gap) {
                    st.slow_since = None;
                    continue;
                }
                let since = *st.slow_since.get_or_insert(now);
                let held = now.saturating_duration_since(since);
                // `active >= 2` keeps at least one active subflow; the timer keeps running so
                // that the demotion happens as soon as another path becomes active.
                if held < p.hold || active < 2 {
                    continue;
                }
                st.demoted_by_us = true;
                st.request(true, now);
                active -= 1;
                out.push(Verdict {
                    key: *key,
                    kind: VerdictKind::SetBackup(true),
                    reason: format!(
                        "srtt {} vs best {}: ratio {:.2} > {:.2} and gap {} >= {} for {} \
                         (hold {})",
                        ms(srtt),
                        ms(best),
                        ratio,
                        p.backup_ratio,
                        ms(srtt - best),
                        ms_dur(p.min_gap),
                        secs(held),
                        secs(p.hold)
                    ),
                });
            } else {
                st.slow_since = None;
                if !st.demoted_by_us {
                    // Backup by configuration, the peer or an operator: not ours to undo.
                    st.fast_since = None;
                    continue;
                }
                let gap = Duration::from_micros(u64::from(srtt.saturating_sub(best)));
                let by_ratio = ratio < p.restore_ratio;
                if !by_ratio && gap >= p.min_gap / 2 {
                    st.fast_since = None;
                    continue;
                }
                let since = *st.fast_since.get_or_insert(now);
                let held = now.saturating_duration_since(since);
                if held < p.hold {
                    continue;
                }
                st.demoted_by_us = false;
                st.request(false, now);
                active += 1;
                out.push(Verdict {
                    key: *key,
                    kind: VerdictKind::SetBackup(false),
                    reason: format!(
                        "srtt {} vs best {}: {} for {} (hold {})",
                        ms(srtt),
                        ms(best),
                        if by_ratio {
                            format!("ratio {ratio:.2} < restore ratio {:.2}", p.restore_ratio)
                        } else {
                            format!("gap {} < min_gap/2 {}", ms_dur(gap), ms_dur(p.min_gap / 2))
                        },
                        secs(held),
                        secs(p.hold)
                    ),
                });
            }
        }
    }

    /// Paths whose cooldown is over: re-open them, unless a subflow on the same path is already
    /// back (then the cooldown entry is simply dropped). Also usable from a timer tick, with the
    /// keys of the connection's current subflows.
    pub fn reopens(&mut self, now: Instant, present: &HashSet<SubflowKey>) -> Vec<Verdict> {
        let cooldown = self.params.cooldown;
        let due: Vec<(IpAddr, SocketAddr)> = self
            .cooldowns
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.closed_at) >= cooldown)
            .map(|(k, _)| *k)
            .collect();
        let mut out = Vec::new();
        for path_key in due {
            let Some(c) = self.cooldowns.remove(&path_key) else {
                continue;
            };
            let live = present
                .iter()
                .any(|k| k.local.ip() == c.path.local && k.remote == c.path.remote);
            if live {
                continue;
            }
            out.push(Verdict {
                key: c.key,
                kind: VerdictKind::Reopen(c.path),
                reason: format!(
                    "closed for loss {} ago (cooldown {})",
                    secs(now.saturating_duration_since(c.closed_at)),
                    secs(cooldown)
                ),
            });
        }
        out
    }
}

/// Format a duration as milliseconds for reasons.
fn ms_dur(d: Duration) -> String {
    fmt_ms(d.as_secs_f64() * 1000.0)
}

/// The `rtt-based` policy: fullmesh's subflows, judged by RTT and loss. See the module docs.
///
/// Subflow creation, the closing of subflows whose addresses went away and the backup flag of
/// backup interfaces are the embedded [`Fullmesh`]'s; its decisions pass through two filters:
/// no `Open` on a path cooling down after a loss close (its re-open is this policy's), and no
/// clearing of a backup flag this policy set for RTT (fullmesh would undo every demotion on its
/// next tick). A subflow whose interface is (or becomes) a backup interface is the
/// configuration's: the judge lets go of it and never restores it.
///
/// The judge works on both sides of a connection (the backup flag steers what this host sends),
/// but closes for loss only on the client side: a server does not open subflows, so it could not
/// re-open the path.
#[derive(Debug)]
pub struct RttBased {
    params: RttParams,
    mesh: Fullmesh,
    judges: HashMap<Token, RttJudge>,
    notes: Vec<String>,
}

impl RttBased {
    /// The policy with these parameters (check them with [`RttParams::validate`] first).
    pub fn new(params: RttParams) -> Self {
        RttBased {
            params,
            mesh: Fullmesh::new(params.max_subflows),
            judges: HashMap::new(),
            notes: Vec::new(),
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &RttParams {
        &self.params
    }

    /// The judge of one connection, if it has seen samples.
    pub fn judge(&self, token: Token) -> Option<&RttJudge> {
        self.judges.get(&token)
    }

    fn judge_mut(&mut self, conn: &Connection) -> &mut RttJudge {
        let params = RttParams {
            close_on_loss: self.params.close_on_loss && !conn.is_server_side(),
            ..self.params
        };
        self.judges
            .entry(conn.token())
            .or_insert_with(|| RttJudge::new(params))
    }

    /// Applies the two filters (see the type docs) to fullmesh's decisions.
    fn filter_mesh(&mut self, ctx: &Ctx<'_>, decisions: Vec<Decision>) -> Vec<Decision> {
        let token = ctx.conn.token();
        let Some(judge) = self.judges.get_mut(&token) else {
            return decisions;
        };
        decisions
            .into_iter()
            .filter(|d| match *d {
                Decision::Open { local, remote, .. } => !judge.in_cooldown(local, remote),
                Decision::SetBackup { key, backup } => {
                    if !judge.demoted_by_us(&key) {
                        true
                    } else if backup {
                        judge.disown(&key);
                        true
                    } else {
                        false
                    }
                }
                _ => true,
            })
            .collect()
    }

    /// Turns verdicts into decisions, noting each with its reason. A re-open is dropped (with a
    /// note) when the path is live again, its local address is no longer usable, the peer
    /// removed the remote, or the subflow budget is spent: fullmesh owns the path again then.
    fn decide(&mut self, ctx: &Ctx<'_>, verdicts: Vec<Verdict>) -> Vec<Decision> {
        let conn = ctx.conn;
        let token = conn.token();
        let mut out = Vec::new();
        let mut opened = 0;
        for v in verdicts {
            let decision = match v.kind {
                VerdictKind::SetBackup(backup) => Decision::SetBackup { key: v.key, backup },
                VerdictKind::Close => Decision::Close { key: v.key },
                VerdictKind::Reopen(path) => match self.reopen(ctx, path, opened) {
                    Ok(decision) => {
                        opened += 1;
                        decision
                    }
                    Err(why) => {
                        self.notes.push(format!(
                            "{token} not reopening {} -> {}: {why}",
                            path.local, path.remote
                        ));
                        continue;
                    }
                },
            };
            self.notes.push(format!("{token} {v}"));
            out.push(decision);
        }
        out
    }
}

impl RttBased {
    /// The `Open` that re-opens `path`, or why not. `opened`: re-opens already decided in this
    /// round (they count against the budget).
    fn reopen(
        &self,
        ctx: &Ctx<'_>,
        path: SubflowPath,
        opened: usize,
    ) -> Result<Decision, &'static str> {
        let conn = ctx.conn;
        if conn.is_closed() || !conn.is_established() {
            return Err("the connection cannot take joins");
        }
        if conn.live_on(path.local, path.remote) > 0 {
            return Err("the path is live again");
        }
        let Some(local) = ctx.locals.iter().find(|l| l.addr == path.local) else {
            return Err("its local address is no longer usable");
        };
        if !conn.remotes().iter().any(|(_, r)| *r == path.remote) {
            return Err("the peer removed the remote address");
        }
        let conn_path = Path {
            local: path.local,
            remote: path.remote,
        };
        if conn.given_up(&conn_path) {
            return Err("the connection gave the path up");
        }
        if conn.live_count() + opened >= self.params.max_subflows {
            return Err("the subflow budget is spent");
        }
        Ok(Decision::Open {
            local: path.local,
            if_index: Some(local.if_index),
            remote: path.remote,
            backup: local.backup,
        })
    }
}

impl Policy for RttBased {
    fn wants_samples(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "rtt-based"
    }

    fn on_event(&mut self, ctx: &Ctx<'_>, event: &PmEvent) -> Vec<Decision> {
        let mesh = self.mesh.on_event(ctx, event);
        self.filter_mesh(ctx, mesh)
    }

    fn on_locals_changed(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        let mesh = self.mesh.on_locals_changed(ctx);
        self.filter_mesh(ctx, mesh)
    }

    /// Runs the judge over the connection's established subflows that are not being closed. The
    /// backup flag it sees is `want_backup || backup`: our own wish counts as soon as the state
    /// machine took it, a flag the kernel or the peer reported counts too.
    fn on_samples(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        let conn = ctx.conn;
        if conn.is_closed() {
            return Vec::new();
        }
        let input: Vec<(SubflowKey, bool, SubflowSample)> = conn
            .subflows()
            .iter()
            .filter(|sf| sf.is_established() && !sf.closing)
            .filter_map(|sf| {
                let key = sf.key()?;
                Some((
                    key,
                    sf.want_backup || sf.backup,
                    sf.sample.unwrap_or_default(),
                ))
            })
            .collect();
        let judge = self.judge_mut(conn);
        // A subflow on a backup interface is the configuration's, whoever flagged it first.
        for (key, _, _) in &input {
            if ctx
                .locals
                .iter()
                .any(|l| l.backup && l.addr == key.local.ip())
            {
                judge.disown(key);
            }
        }
        let verdicts = judge.evaluate(ctx.now, &input);
        self.decide(ctx, verdicts)
    }

    /// Fullmesh's reconcile (filtered), then the re-opens whose cooldown ended.
    fn on_tick(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        let mesh = self.mesh.on_tick(ctx);
        let mut out = self.filter_mesh(ctx, mesh);
        let present: HashSet<SubflowKey> = ctx
            .conn
            .subflows()
            .iter()
            .filter(|sf| sf.is_established() && !sf.closing)
            .filter_map(|sf| sf.key())
            .collect();
        if let Some(judge) = self.judges.get_mut(&ctx.conn.token()) {
            let verdicts = judge.reopens(ctx.now, &present);
            out.extend(self.decide(ctx, verdicts));
        }
        out
    }

    fn on_closed(&mut self, token: Token) {
        self.mesh.on_closed(token);
        self.judges.remove(&token);
    }

    fn drain_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        fn run(
            &mut self,
            from: u64,
            to: u64,
            mut f: impl FnMut(u64, &SubflowKey) -> SubflowSample,
        ) {
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
                .map(|(t, v)| {
                    let net = match v.key.local.ip() {
                        IpAddr::V4(a) => a.octets()[2],
                        IpAddr::V6(_) => 0,
                    };
                    (*t, net, v.kind)
                })
                .collect()
        }
    }

    fn net(k: &SubflowKey) -> u8 {
        match k.local.ip() {
            IpAddr::V4(a) => a.octets()[2],
            IpAddr::V6(_) => 0,
        }
    }

    #[test]
    fn defaults_validate_and_bad_params_are_refused() {
        assert_eq!(params().validate(), Ok(()));
        let p = RttParams {
            restore_ratio: 2.0,
            ..params()
        };
        assert!(matches!(
            p.validate(),
            Err(RttParamsError::RestoreRatio { .. })
        ));
        let p = RttParams {
            backup_ratio: f64::NAN,
            ..params()
        };
        assert!(matches!(p.validate(), Err(RttParamsError::BackupRatio(_))));
        let p = RttParams {
            loss_threshold: 0.0,
            ..params()
        };
        assert!(matches!(
            p.validate(),
            Err(RttParamsError::LossThreshold(_))
        ));
        let p = RttParams {
            max_subflows: 0,
            ..params()
        };
        assert_eq!(p.validate(), Err(RttParamsError::NoSubflows));
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
    fn default_probe_is_30s_and_zero_is_refused() {
        assert_eq!(RttParams::default().probe, Some(Duration::from_secs(30)));
        let p = RttParams {
            probe: Some(Duration::ZERO),
            ..RttParams::default()
        };
        assert_eq!(p.validate(), Err(RttParamsError::ZeroProbe));
        assert_eq!(probing(1).validate(), Ok(()));
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
            reason: "x".into(),
        };
        assert_eq!(v.to_string(), "set backup 10.0.2.1:1001 -> 10.0.0.2:80: x");
    }

    // ---- the policy around the judge, driven through a real `Connection` ----

    use crate::conn::Connection;
    use crate::model::{LocalAddr, SubflowInfo};

    const REMOTE: ([u8; 4], u16) = ([10, 0, 0, 2], 80);

    fn locals(b_backup: bool) -> Vec<LocalAddr> {
        vec![
            LocalAddr {
                addr: IpAddr::from([10, 0, 1, 1]),
                if_index: 2,
                if_name: "a".into(),
                backup: false,
            },
            LocalAddr {
                addr: IpAddr::from([10, 0, 2, 1]),
                if_index: 3,
                if_name: "b".into(),
                backup: b_backup,
            },
        ]
    }

    /// A client connection with A (initial, 10.0.1.1:1000) and B (10.0.2.1:1001) established.
    fn conn(now: Instant, b_backup: bool) -> Connection {
        Connection::adopt(
            now,
            Token(7),
            key(1, 1000).local,
            SocketAddr::from(REMOTE),
            [
                (key(1, 1000), 0, 0, false, rtt(10)),
                (key(2, 1001), 1, 0, b_backup, rtt(10)),
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
        let ctx = Ctx { now, conn, locals };
        let d = policy.on_samples(&ctx);
        conn.handle_decisions(now, d.clone());
        d
    }

    fn sub_closed(k: SubflowKey) -> PmEvent {
        PmEvent::SubClosed(SubflowInfo {
            token: Token(7),
            local: k.local,
            remote: k.remote,
            loc_id: 1,
            rem_id: 0,
            backup: false,
            if_idx: None,
            error: None,
            reset_reason: None,
            reset_flags: None,
        })
    }

    #[test]
    fn policy_demotes_and_keeps_fullmesh_from_undoing_it() {
        let t0 = Instant::now();
        let at = |t: u64| t0 + Duration::from_secs(t);
        let locals = locals(false);
        let mut c = conn(t0, false);
        let mut policy = RttBased::new(params());
        assert_eq!(policy.name(), "rtt-based");
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
            all,
            vec![Decision::SetBackup {
                key: key(2, 1001),
                backup: true
            }]
        );
        let notes = policy.drain_notes();
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with("0x00000007 set backup 10.0.2.1:1001"),
            "{}",
            notes[0]
        );
        assert!(
            notes[0].contains("srtt 100.0ms vs best 10.0ms"),
            "{}",
            notes[0]
        );
        assert!(policy.drain_notes().is_empty());

        // Plain fullmesh would clear the flag again on its next tick; rtt-based does not.
        let ctx = Ctx {
            now: at(6),
            conn: &c,
            locals: &locals,
        };
        let undo = Decision::SetBackup {
            key: key(2, 1001),
            backup: false,
        };
        assert!(Fullmesh::new(8).reconcile(&ctx).contains(&undo));
        assert_eq!(policy.on_tick(&ctx), vec![]);

        // B recovers (10 ms < 1.5 x 10 ms) for hold: restored.
        let mut all = Vec::new();
        for t in 6..=11 {
            all.extend(round(&mut policy, &mut c, &locals, at(t), rtt(10), rtt(10)));
        }
        assert_eq!(all, vec![undo]);
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
        let flag = |backup| Decision::SetBackup {
            key: key(2, 1001),
            backup,
        };
        assert_eq!(all, vec![flag(true), flag(false)]);
        let notes = policy.drain_notes();
        assert_eq!(notes.len(), 2);
        assert!(
            notes[1].starts_with(
                "0x00000007 clear backup 10.0.2.1:1001 -> 10.0.0.2:80: probe: backup for 10.0s"
            ),
            "{}",
            notes[1]
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
        assert_eq!(all, vec![flag(true)]);
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
            .judge(Token(7))
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
            .judge(Token(7))
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
        assert_eq!(all, vec![Decision::Close { key: key(2, 1001) }]);
        assert!(policy.drain_notes()[0].contains("30/100 segments retransmitted"));

        // The kernel confirms; fullmesh alone would re-open at once, rtt-based waits.
        let ev = sub_closed(key(2, 1001));
        c.handle_event(at(7), &ev);
        let ctx = Ctx {
            now: at(7),
            conn: &c,
            locals: &locals,
        };
        assert!(Fullmesh::new(8)
            .reconcile(&ctx)
            .iter()
            .any(|d| matches!(d, Decision::Open { .. })));
        assert_eq!(policy.on_event(&ctx, &ev), vec![]);
        for t in [8, 20, 35] {
            let ctx = Ctx {
                now: at(t),
                conn: &c,
                locals: &locals,
            };
            assert_eq!(policy.on_tick(&ctx), vec![], "t = {t}");
        }
        let ctx = Ctx {
            now: at(36),
            conn: &c,
            locals: &locals,
        };
        assert_eq!(
            policy.on_tick(&ctx),
            vec![Decision::Open {
                local: IpAddr::from([10, 0, 2, 1]),
                if_index: Some(3),
                remote: SocketAddr::from(REMOTE),
                backup: false,
            }]
        );
        assert!(policy.drain_notes()[0].contains("reopen 10.0.2.1:1001"));

        policy.on_closed(Token(7));
        assert!(policy.judge(Token(7)).is_none());
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
        policy.drain_notes();
        let only_a = &all_locals[..1];
        let ctx = Ctx {
            now: at(40),
            conn: &c,
            locals: only_a,
        };
        assert_eq!(policy.on_tick(&ctx), vec![]);
        let notes = policy.drain_notes();
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("not reopening 10.0.2.1 -> 10.0.0.2:80: its local address"));
        // The cooldown is over: when the address returns, fullmesh opens the path again.
        let ctx = Ctx {
            now: at(41),
            conn: &c,
            locals: &all_locals,
        };
        assert!(policy
            .on_locals_changed(&ctx)
            .iter()
            .any(|d| matches!(d, Decision::Open { remote, .. } if *remote == key(2, 1001).remote)));
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
}
