//! The `rtt-based` policy: a full mesh of subflows whose members are demoted to backup while their
//! smoothed RTT is far worse than the best path's, restored when they catch up again, and
//! (optionally) closed while they lose packets and re-opened after a cooldown.
//!
//! The measurement logic lives in [`RttJudge`], a pure per-connection core that sees nothing but
//! `(key, backup flag, sample)` triples and the time: every rule is tested over a synthetic
//! sample series (`policies/tests/rtt_based.rs`). [`RttBased`] is the [`Policy`] around it; it
//! delegates subflow creation to the mesh ([`crate::mesh`]) and turns the judge's [`Verdict`]s into
//! [`Decision`]s.
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
//!   recovered subflow at 0.05 ms next to a best of 0.02 ms is still at ratio 2.5. A subflow that
//!   is backup for any other reason (a backup interface in the config, the peer, an operator) is
//!   never restored: the judge only undoes its own decisions. If no active subflow is left, the
//!   fastest subflow the judge demoted is restored at once.
//! - **Close on loss** (off by default): the retransmission rate between two consecutive samples,
//!   `delta(total_retrans) / delta(segs_out)`, above `loss_threshold` on every sample for `hold`
//!   closes the subflow (a window in which nothing was sent counts as lossy only while the
//!   subflow sits in retransmission timeout, i.e. `tcpi_retransmits > 0`; an idle window or a
//!   counter that went backwards breaks the streak); its path is then kept in a cooldown and
//!   re-opened after `cooldown`. The last active subflow is never closed.
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
//!
//! One round ([`RttJudge::evaluate`]) applies the rules in this order, and returns its verdicts
//! in the same order: the zero-active restore; close on loss; the RTT rules, subflow by subflow
//! in input order (a subflow the judge demoted is probed if that is due, else judged for
//! restore; an active one is judged for demotion; so at most one of the three per subflow);
//! re-opens last. `best` and the active count are taken once per round, and each flag change
//! moves the active count before the next subflow is judged. The RTT rules skip a subflow whose
//! flag change is still pending or whose close was requested, until that shows up (or the judge
//! gives up on it).
//!
//! Every decision carries a reason code naming its rule (`slow`, `recovered`, `probe`,
//! `last-active`, `lossy`, `cooldown-over`; the mesh's own decisions carry the mesh's codes) and
//! the numbers behind it.
//!
//! Config section `rtt_based:` ([`RttBasedParams`]; defaults in brackets): `max_subflows`
//! (1..=64) [8], `backup_ratio` (1 < x <= 100) [2.0], `min_gap_ms` (0..=60000) [20],
//! `restore_ratio` (0 < x < `backup_ratio`) [1.5], `hold_s` (0..=3600) [5], `close_on_loss`
//! [false], `loss_threshold` (0 < x <= 1) [0.05], `cooldown_s` (0..=86400) [30], `probe_s`
//! (0..=86400, 0 = never) [30].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize};

use crate::conn::Path;
use crate::mesh;
use crate::model::{PmEvent, SubflowKey, SubflowSample};
use crate::params::{self, Keys, ParamError};
use crate::plugin::{Plugin, PolicyParams};
use crate::policy::{Action, Ctx, Decision, Policy, Reason};
use crate::stamp::Stamp;

/// The registry entry.
pub static PLUGIN: Plugin = Plugin::new::<RttBasedParams>(
    "rtt-based",
    "rtt_based",
    "a mesh whose slow subflows become backup and (optionally) lossy ones are closed",
);

/// The `rtt_based:` section, as the configuration spells it (ms and s). The judge works on
/// [`RttParams`], built from it by [`RttBasedParams::judge_params`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RttBasedParams {
    /// Subflows per connection, counting the initial one. 1..=64, default 8.
    #[serde(deserialize_with = "params::int::<_, _, 1, 64>")]
    pub max_subflows: u8,
    /// Mark backup when srtt > this x best active srtt. 1 < x <= 100, default 2.0.
    #[serde(deserialize_with = "backup_ratio")]
    pub backup_ratio: f64,
    /// ... and srtt exceeds the best by at least this many ms. 0..=60000, default 20.
    #[serde(deserialize_with = "params::int::<_, _, 0, 60_000>")]
    pub min_gap_ms: u32,
    /// Clear backup when srtt < this x best. 0 < x < `backup_ratio`, default 1.5.
    #[serde(deserialize_with = "restore_ratio")]
    pub restore_ratio: f64,
    /// Seconds a condition must hold before acting (hysteresis). 0..=3600, default 5.
    #[serde(deserialize_with = "params::int::<_, _, 0, 3600>")]
    pub hold_s: u32,
    /// Close subflows whose loss exceeds `loss_threshold`. Default false.
    #[serde(deserialize_with = "params::boolean")]
    pub close_on_loss: bool,
    /// Retransmission rate (retrans / segs_out over the window), 0 < x <= 1, default 0.05.
    #[serde(deserialize_with = "loss_threshold")]
    pub loss_threshold: f64,
    /// Seconds before re-opening a closed lossy subflow. 0..=86400, default 30.
    #[serde(deserialize_with = "params::int::<_, _, 0, 86_400>")]
    pub cooldown_s: u32,
    /// After this many seconds in backup with no data acked, a subflow this policy demoted is
    /// made active again to re-measure. 0 = never probe. 0..=86400, default 30.
    #[serde(deserialize_with = "params::int::<_, _, 0, 86_400>")]
    pub probe_s: u32,
}

fn backup_ratio<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    params::float(
        d,
        |x| x > 1.0 && x <= 100.0,
        "greater than 1 and at most 100",
    )
}

fn restore_ratio<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    params::float(d, |x| x > 0.0, "greater than 0")
}

fn loss_threshold<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    params::float(d, |x| x > 0.0 && x <= 1.0, "greater than 0 and at most 1")
}

impl Default for RttBasedParams {
    fn default() -> Self {
        RttBasedParams {
            max_subflows: 8,
            backup_ratio: 2.0,
            min_gap_ms: 20,
            restore_ratio: 1.5,
            hold_s: 5,
            close_on_loss: false,
            loss_threshold: 0.05,
            cooldown_s: 30,
            probe_s: 30,
        }
    }
}

impl RttBasedParams {
    /// The judge's tunables.
    pub fn judge_params(&self) -> RttParams {
        RttParams {
            max_subflows: self.max_subflows.into(),
            backup_ratio: self.backup_ratio,
            min_gap: Duration::from_millis(self.min_gap_ms.into()),
            restore_ratio: self.restore_ratio,
            hold: Duration::from_secs(self.hold_s.into()),
            close_on_loss: self.close_on_loss,
            loss_threshold: self.loss_threshold,
            cooldown: Duration::from_secs(self.cooldown_s.into()),
            probe: (self.probe_s > 0).then(|| Duration::from_secs(self.probe_s.into())),
        }
    }
}

/// The judge's tunables for every connection, one copy while they do not change: a one-entry
/// cache by value (a reload with other values replaces it). At 10 000 connections a copy of
/// their own in each connection's policy and judge was ~2 MB.
fn shared_params(p: RttParams) -> Arc<RttParams> {
    static SHARED: Mutex<Option<Arc<RttParams>>> = Mutex::new(None);
    let mut cached = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match cached.as_ref() {
        Some(a) if **a == p => a.clone(),
        _ => cached.insert(Arc::new(p)).clone(),
    }
}

impl PolicyParams for RttBasedParams {
    /// Every field was checked on its own while it was read; what is left is the hysteresis.
    fn validate(&self, keys: &Keys) -> Result<(), ParamError> {
        if self.restore_ratio >= self.backup_ratio {
            return Err(ParamError::check(
                &["restore_ratio", "backup_ratio"],
                format!(
                    "{} ({}) must be less than {} ({}), or subflows would flap between backup and active",
                    keys.key("restore_ratio"),
                    self.restore_ratio,
                    keys.key("backup_ratio"),
                    self.backup_ratio
                ),
            ));
        }
        Ok(())
    }

    fn build(&self) -> Box<dyn Policy> {
        Box::new(RttBased::shared(shared_params(self.judge_params())))
    }

    fn wants_samples(&self) -> bool {
        true
    }
}

/// A backup-flag change the judge asked for is assumed lost (failed command, or a flag the kernel
/// refused) when the observed flag still disagrees after this long (at least `hold`).
const MIN_PENDING_TIMEOUT: Duration = Duration::from_secs(2);

/// Tunables of the judge, in the units it computes with. Built from the validated config
/// section ([`RttBasedParams::judge_params`]), so `restore_ratio < backup_ratio`, both finite,
/// and `probe` is never `Some(0)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttParams {
    /// Maximum number of subflows per connection (for the mesh).
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
    /// Which rule decided (`slow`, `recovered`, `probe`, `last-active`, `lossy`,
    /// `cooldown-over`): the decision's reason code.
    pub code: &'static str,
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

/// Per-subflow memory of the judge. Its times are [`Stamp`]s (8 bytes where an
/// `Option<Instant>` takes 16): 20 000 subflows keep 2.2 MB instead of 3.4 MB.
#[derive(Debug, Clone, Default)]
struct SubState {
    /// This judge set the backup flag (and so may clear it).
    demoted_by_us: bool,
    /// A backup-flag change was requested and not yet observed: (wanted, when).
    pending: Option<(bool, Stamp)>,
    /// Since when the demote condition holds.
    slow_since: Option<Stamp>,
    /// Since when the restore condition holds.
    fast_since: Option<Stamp>,
    /// Since when the loss condition holds.
    lossy_since: Option<Stamp>,
    /// (total_retrans, segs_out) of the previous sample.
    counters: Option<(u32, u32)>,
    /// A close was requested at this time (the subflow may linger until SUB_CLOSED).
    closing: Option<Stamp>,
    /// When the judge last asked for a backup-flag change: the probe clock.
    flag_changed: Option<Stamp>,
    /// `bytes_acked` of the previous sample.
    acked: Option<u64>,
    /// When `bytes_acked` last grew.
    acked_moved: Option<Stamp>,
    /// Set by a probe: `bytes_acked` at that time. Until a sample shows more, the subflow's
    /// srtt is the stale one from before its demotion and is not judged.
    probe_acked: Option<u64>,
}

impl SubState {
    /// Record a backup-flag change requested now.
    fn request(&mut self, backup: bool, now: Instant) {
        self.pending = Some((backup, Stamp::of(now)));
        self.flag_changed = Some(Stamp::of(now));
        self.stop_rtt_timers();
    }

    /// Ask for a backup-flag change now. A demotion is this judge's to undo; a restore or a
    /// probe gives the flag back.
    fn set_backup(
        &mut self,
        key: SubflowKey,
        backup: bool,
        now: Instant,
        code: &'static str,
        reason: String,
    ) -> Verdict {
        self.demoted_by_us = backup;
        self.request(backup, now);
        Verdict {
            key,
            kind: VerdictKind::SetBackup(backup),
            code,
            reason,
        }
    }

    /// Restart the demote and restore conditions: something broke both.
    fn stop_rtt_timers(&mut self) {
        self.slow_since = None;
        self.fast_since = None;
    }

    /// Whether this sample is still the stale one a probe started from.
    fn awaiting_fresh(&self, sample: &SubflowSample) -> bool {
        self.probe_acked
            .is_some_and(|acked| sample.bytes_acked <= acked)
    }
}

/// How long a condition has held on every sample, starting its timer now if it was not running.
fn held(since: &mut Option<Stamp>, now: Instant) -> Duration {
    now.saturating_duration_since(since.get_or_insert(Stamp::of(now)).instant())
}

/// What the RTT rules share in one round, computed once by `RttJudge::judge_rtt`.
#[derive(Debug, Clone, Copy)]
struct RttRound {
    params: RttParams,
    now: Instant,
    /// The lowest srtt among active subflows with a measurement.
    best: Option<u32>,
    /// Active subflows at this point of the round (each flag change moves it).
    active: usize,
}

/// One subflow's srtt against the round's best, as the demote and restore rules compare them.
#[derive(Debug, Clone, Copy)]
struct Measure {
    /// The subflow's srtt in microseconds (> 0).
    srtt: u32,
    /// The round's best srtt in microseconds (> 0).
    best: u32,
    /// `srtt / best`.
    ratio: f64,
    /// How far `srtt` is above `best` (zero when below).
    gap: Duration,
}

impl Measure {
    /// `None` when the subflow or the round has no measurement: that breaks both conditions.
    fn of(srtt: u32, best: Option<u32>) -> Option<Measure> {
        let best = best.filter(|_| srtt > 0)?;
        Some(Measure {
            srtt,
            best,
            ratio: f64::from(srtt) / f64::from(best),
            gap: Duration::from_micros(u64::from(srtt.saturating_sub(best))),
        })
    }
}

/// A closed path waiting for its cooldown to end.
#[derive(Debug, Clone, Copy)]
struct Cooldown {
    key: SubflowKey,
    path: SubflowPath,
    closed_at: Instant,
}

/// The judge's memory per subflow: a list, not a hash map. A connection has a handful of
/// subflows, so a linear search is as fast as hashing a 4-tuple, and 10 000 connections keep
/// ~0.5 KiB each instead of a table of four buckets (~1 KiB; bench scale section, heaptrack).
#[derive(Debug, Clone, Default)]
struct SubStates(Vec<(SubflowKey, SubState)>);

impl SubStates {
    fn get(&self, key: &SubflowKey) -> Option<&SubState> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, s)| s)
    }

    fn get_mut(&mut self, key: &SubflowKey) -> Option<&mut SubState> {
        self.0.iter_mut().find(|(k, _)| k == key).map(|(_, s)| s)
    }

    fn get_or_default(&mut self, key: SubflowKey) -> &mut SubState {
        let i = match self.0.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                self.0.reserve_exact(1);
                self.0.push((key, SubState::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    fn retain(&mut self, mut keep: impl FnMut(&SubflowKey) -> bool) {
        self.0.retain(|(k, _)| keep(k));
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut SubState> {
        self.0.iter_mut().map(|(_, s)| s)
    }
}

/// The pure RTT/loss judge of one connection. Feed it every sample round with
/// [`RttJudge::evaluate`]; it answers with the [`Verdict`]s to carry out.
#[derive(Debug, Clone)]
pub struct RttJudge {
    params: Arc<RttParams>,
    /// `params.close_on_loss`, unless this judge is a server side's (which never closes for
    /// loss): kept here so that every connection shares one copy of `params`.
    close_on_loss: bool,
    subflows: SubStates,
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
    /// A judge with no memory yet.
    pub fn new(params: RttParams) -> Self {
        RttJudge::shared(Arc::new(params))
    }

    /// A judge with no memory yet, on tunables shared with other connections.
    pub fn shared(params: Arc<RttParams>) -> Self {
        RttJudge {
            close_on_loss: params.close_on_loss,
            params,
            subflows: SubStates::default(),
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
    /// forgotten. The verdicts come in the order the module docs give (each rule in input order,
    /// re-opens last).
    pub fn evaluate(
        &mut self,
        now: Instant,
        subflows: &[(SubflowKey, bool, SubflowSample)],
    ) -> Vec<Verdict> {
        let present = |k: &SubflowKey| subflows.iter().any(|(x, _, _)| x == k);
        self.subflows.retain(present);
        let pending_timeout = self.pending_timeout();
        let cooldown = self.params.cooldown;

        // Sync every subflow's memory with what is observed, and read the loss window.
        let mut loss = Vec::with_capacity(subflows.len());
        for (key, observed_backup, sample) in subflows {
            let st = self.subflows.get_or_default(*key);
            if let Some((want, at)) = st.pending {
                if want == *observed_backup {
                    st.pending = None;
                } else if now.saturating_duration_since(at.instant()) >= pending_timeout {
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
                .is_some_and(|at| now.saturating_duration_since(at.instant()) >= cooldown)
            {
                // The close did not take (the subflow is still here): judge it afresh.
                st.closing = None;
            }
            if st.acked.is_some_and(|prev| sample.bytes_acked > prev) {
                st.acked_moved = Some(Stamp::of(now));
            }
            st.acked = Some(sample.bytes_acked);
            loss.push(LossObs::between(st.counters, sample));
            st.counters = Some((sample.total_retrans, sample.segs_out));
        }

        let mut out = Vec::new();
        self.rescue_zero_active(now, subflows, &mut out);
        if self.close_on_loss {
            self.judge_loss(now, subflows, &loss, &mut out);
        } else {
            for st in self.subflows.values_mut() {
                st.lossy_since = None;
            }
        }
        self.judge_rtt(now, subflows, &mut out);
        self.reopen_due(
            now,
            |path| {
                subflows
                    .iter()
                    .any(|(k, _, _)| k.local.ip() == path.local && k.remote == path.remote)
            },
            &mut out,
        );
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
            code: "last-active",
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
            let held = held(&mut st.lossy_since, now);
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
            st.closing = Some(Stamp::of(now));
            st.lossy_since = None;
            st.stop_rtt_timers();
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
                code: "lossy",
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

    /// The RTT rules, subflow by subflow in input order. A subflow the judge demoted is probed
    /// if that is due, else judged for restore; an active one is judged for demotion. What the
    /// rules share (the best srtt, the active count) is computed once for the round, and every
    /// flag change moves the active count before the next subflow is judged.
    fn judge_rtt(
        &mut self,
        now: Instant,
        subflows: &[(SubflowKey, bool, SubflowSample)],
        out: &mut Vec<Verdict>,
    ) {
        let mut round = RttRound {
            params: *self.params,
            now,
            best: self.best(subflows),
            active: self.active_count(subflows),
        };
        for (key, observed_backup, sample) in subflows {
            let backup = self.effective_backup(key, *observed_backup);
            let Some(st) = self.subflows.get_mut(key) else {
                continue;
            };
            if st.closing.is_some() || st.pending.is_some() {
                // Wait until the last change is observed (or given up) before judging again.
                st.stop_rtt_timers();
                continue;
            }
            let probed = if backup {
                Self::probe(&round, key, st, sample)
            } else {
                None
            };
            let verdict = match (probed, Measure::of(sample.srtt_us, round.best)) {
                (Some(probe), _) => Some(probe),
                (None, None) => {
                    st.stop_rtt_timers();
                    None
                }
                (None, Some(m)) if backup => Self::restore(&round, key, st, m),
                (None, Some(m)) => Self::demote(&round, key, st, sample, m),
            };
            if let Some(v) = verdict {
                match v.kind {
                    VerdictKind::SetBackup(true) => round.active = round.active.saturating_sub(1),
                    VerdictKind::SetBackup(false) => round.active += 1,
                    VerdictKind::Close | VerdictKind::Reopen(_) => {}
                }
                out.push(v);
            }
        }
    }

    /// **Probe** (module docs): a subflow this judge demoted whose samples stayed stale for
    /// `probe` is made active again, to be re-measured.
    fn probe(
        round: &RttRound,
        key: &SubflowKey,
        st: &mut SubState,
        sample: &SubflowSample,
    ) -> Option<Verdict> {
        let probe = round.params.probe?;
        if !st.demoted_by_us {
            return None;
        }
        // Stale since the later of our last flag change and the last acked data.
        let changed = st
            .flag_changed
            .get_or_insert(Stamp::of(round.now))
            .instant();
        let base = st
            .acked_moved
            .map_or(changed, |moved| moved.instant().max(changed));
        let stale = round.now.saturating_duration_since(base);
        if stale < probe {
            return None;
        }
        st.probe_acked = Some(sample.bytes_acked);
        Some(st.set_backup(
            *key,
            false,
            round.now,
            "probe",
            format!(
                "probe: backup for {} with no data acked (srtt {} is stale, probe {}); active \
                 again to re-measure, demoted again after hold {} if still slow",
                secs(stale),
                ms(sample.srtt_us),
                secs(probe),
                secs(round.params.hold)
            ),
        ))
    }

    /// **Demote** (module docs): an active subflow above both demote thresholds on every sample
    /// for `hold` is marked backup, unless it is the last active one.
    fn demote(
        round: &RttRound,
        key: &SubflowKey,
        st: &mut SubState,
        sample: &SubflowSample,
        m: Measure,
    ) -> Option<Verdict> {
        let p = &round.params;
        st.fast_since = None;
        if st.awaiting_fresh(sample) {
            // Probed and not measured since: the srtt is the stale one.
            st.slow_since = None;
            return None;
        }
        st.probe_acked = None;
        if !(m.ratio > p.backup_ratio && m.gap >= p.min_gap) {
            st.slow_since = None;
            return None;
        }
        let held = held(&mut st.slow_since, round.now);
        // `active >= 2` keeps at least one active subflow; the timer keeps running so that the
        // demotion happens as soon as another path becomes active.
        if held < p.hold || round.active < 2 {
            return None;
        }
        Some(st.set_backup(
            *key,
            true,
            round.now,
            "slow",
            format!(
                "srtt {} vs best {}: ratio {:.2} > {:.2} and gap {} >= {} for {} (hold {})",
                ms(m.srtt),
                ms(m.best),
                m.ratio,
                p.backup_ratio,
                ms(m.srtt.saturating_sub(m.best)),
                ms_dur(p.min_gap),
                secs(held),
                secs(p.hold)
            ),
        ))
    }

    /// **Restore** (module docs): a subflow this judge demoted that stays below either restore
    /// threshold on every sample for `hold` gets its backup flag cleared.
    fn restore(
        round: &RttRound,
        key: &SubflowKey,
        st: &mut SubState,
        m: Measure,
    ) -> Option<Verdict> {
        let p = &round.params;
        st.slow_since = None;
        if !st.demoted_by_us {
            // Backup by configuration, the peer or an operator: not ours to undo.
            st.fast_since = None;
            return None;
        }
        let by_ratio = m.ratio < p.restore_ratio;
        if !by_ratio && m.gap >= p.min_gap / 2 {
            st.fast_since = None;
            return None;
        }
        let held = held(&mut st.fast_since, round.now);
        if held < p.hold {
            return None;
        }
        Some(st.set_backup(
            *key,
            false,
            round.now,
            "recovered",
            format!(
                "srtt {} vs best {}: {} for {} (hold {})",
                ms(m.srtt),
                ms(m.best),
                if by_ratio {
                    format!(
                        "ratio {:.2} < restore ratio {:.2}",
                        m.ratio, p.restore_ratio
                    )
                } else {
                    format!(
                        "gap {} < min_gap/2 {}",
                        ms_dur(m.gap),
                        ms_dur(p.min_gap / 2)
                    )
                },
                secs(held),
                secs(p.hold)
            ),
        ))
    }

    /// Paths whose cooldown is over: re-open them, unless a subflow on the same path is already
    /// back (then the cooldown entry is simply dropped). Also usable from a timer tick, with the
    /// keys of the connection's current subflows.
    pub fn reopens(&mut self, now: Instant, present: &HashSet<SubflowKey>) -> Vec<Verdict> {
        let mut out = Vec::new();
        self.reopen_due(
            now,
            |path| {
                present
                    .iter()
                    .any(|k| k.local.ip() == path.local && k.remote == path.remote)
            },
            &mut out,
        );
        out
    }

    /// [`RttJudge::reopens`] into `out`, `live(path)` saying whether a subflow runs on a path.
    fn reopen_due(
        &mut self,
        now: Instant,
        live: impl Fn(&SubflowPath) -> bool,
        out: &mut Vec<Verdict>,
    ) {
        if self.cooldowns.is_empty() {
            return;
        }
        let cooldown = self.params.cooldown;
        let due: Vec<(IpAddr, SocketAddr)> = self
            .cooldowns
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.closed_at) >= cooldown)
            .map(|(k, _)| *k)
            .collect();
        for path_key in due {
            let Some(c) = self.cooldowns.remove(&path_key) else {
                continue;
            };
            if live(&c.path) {
                continue;
            }
            out.push(Verdict {
                key: c.key,
                kind: VerdictKind::Reopen(c.path),
                code: "cooldown-over",
                reason: format!(
                    "closed for loss {} ago (cooldown {})",
                    secs(now.saturating_duration_since(c.closed_at)),
                    secs(cooldown)
                ),
            });
        }
    }
}

/// Format a duration as milliseconds for reasons.
fn ms_dur(d: Duration) -> String {
    fmt_ms(d.as_secs_f64() * 1000.0)
}

/// The `rtt-based` policy for one connection: the mesh's subflows, judged by RTT and loss. See
/// the module docs.
///
/// Subflow creation, the closing of subflows whose addresses went away and the backup flag of
/// backup interfaces are the mesh's ([`crate::mesh`]); its decisions pass through two filters:
/// no `Open` on a path cooling down after a loss close (its re-open is this policy's), and no
/// clearing of a backup flag this policy set for RTT (the mesh would undo every demotion on its
/// next tick). A subflow whose interface is (or becomes) a backup interface is the
/// configuration's: the judge lets go of it and never restores it.
///
/// The judge works on both sides of a connection (the backup flag steers what this host sends),
/// but closes for loss only on the client side: a server does not open subflows, so it could not
/// re-open the path.
#[derive(Debug)]
pub struct RttBased {
    params: Arc<RttParams>,
    /// Created with the first samples (it needs to know the connection's side).
    judge: Option<RttJudge>,
}

impl RttBased {
    /// The policy with these parameters.
    pub fn new(params: RttParams) -> Self {
        RttBased::shared(Arc::new(params))
    }

    /// The policy on tunables shared with other connections.
    pub fn shared(params: Arc<RttParams>) -> Self {
        RttBased {
            params,
            judge: None,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &RttParams {
        &self.params
    }

    /// The connection's judge, once it has seen samples.
    pub fn judge(&self) -> Option<&RttJudge> {
        self.judge.as_ref()
    }

    fn judge_mut(&mut self, server_side: bool) -> &mut RttJudge {
        let params = &self.params;
        self.judge.get_or_insert_with(|| {
            let mut judge = RttJudge::shared(params.clone());
            // The server side never closes for loss (the client's to decide).
            judge.close_on_loss &= !server_side;
            judge
        })
    }

    fn mesh(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        let decisions = mesh::reconcile(ctx, self.params.max_subflows);
        self.filter_mesh(decisions)
    }

    /// Applies the two filters (see the type docs) to the mesh's decisions.
    fn filter_mesh(&mut self, decisions: Vec<Decision>) -> Vec<Decision> {
        let Some(judge) = self.judge.as_mut() else {
            return decisions;
        };
        decisions
            .into_iter()
            .filter(|d| match d.action {
                Action::Open { local, remote, .. } => !judge.in_cooldown(local, remote),
                Action::SetBackup { key, backup } => {
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

    /// Turns verdicts into decisions, each carrying the verdict's rule and numbers. A re-open
    /// is dropped when the path is live again, its local address is no longer usable, the peer
    /// removed the remote, or the subflow budget is spent: the mesh owns the path again then.
    fn decide(&self, ctx: &Ctx<'_>, verdicts: Vec<Verdict>) -> Vec<Decision> {
        let mut out = Vec::new();
        let mut opened = 0;
        for v in verdicts {
            let action = match v.kind {
                VerdictKind::SetBackup(backup) => Action::SetBackup { key: v.key, backup },
                VerdictKind::Close => Action::Close { key: v.key },
                VerdictKind::Reopen(path) => match self.reopen(ctx, path, opened) {
                    Some(open) => {
                        opened += 1;
                        open
                    }
                    None => continue,
                },
            };
            out.push(Decision::new(action, Reason::new(v.code, v.reason)));
        }
        out
    }

    /// The `Open` that re-opens `path`, if it is still wanted. `opened`: re-opens already
    /// decided in this round (they count against the budget).
    fn reopen(&self, ctx: &Ctx<'_>, path: SubflowPath, opened: usize) -> Option<Action> {
        let conn = ctx.conn;
        let local = ctx.locals.iter().find(|l| l.addr == path.local)?;
        let conn_path = Path {
            local: path.local,
            remote: path.remote,
        };
        let wanted = !conn.is_closed()
            && conn.is_established()
            && conn.live_on(path.local, path.remote) == 0
            && mesh::joinable_remotes(conn).contains(&path.remote)
            && !conn.given_up(&conn_path)
            && conn.live_count() + opened < self.params.max_subflows;
        wanted.then_some(Action::Open {
            local: path.local,
            if_index: Some(local.if_index),
            remote: path.remote,
            backup: local.backup,
            timeout: None,
        })
    }
}

impl Policy for RttBased {
    fn on_event(&mut self, ctx: &Ctx<'_>, event: &PmEvent) -> Vec<Decision> {
        match event {
            PmEvent::Established(_)
            | PmEvent::Announced { .. }
            | PmEvent::Removed { .. }
            | PmEvent::SubClosed(_) => self.mesh(ctx),
            _ => Vec::new(),
        }
    }

    fn on_locals_changed(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        self.mesh(ctx)
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
        let judge = self.judge_mut(conn.is_server_side());
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

    /// The mesh's note: why the peer's initial address gets no subflow, if it does not.
    fn note(&self, ctx: &Ctx<'_>) -> Option<Reason> {
        mesh::note(ctx)
    }

    /// The mesh's reconcile (filtered), then the re-opens whose cooldown ended.
    fn on_tick(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        let mut out = self.mesh(ctx);
        let present: HashSet<SubflowKey> = ctx
            .conn
            .subflows()
            .iter()
            .filter(|sf| sf.is_established() && !sf.closing)
            .filter_map(|sf| sf.key())
            .collect();
        if let Some(judge) = self.judge.as_mut() {
            let verdicts = judge.reopens(ctx.now, &present);
            out.extend(self.decide(ctx, verdicts));
        }
        out
    }
}
