//! The meter of metered interfaces (`metered.budgets`): how many bytes each budget's
//! interfaces carried in its current period, counted from the subflows' own `tcp_info`
//! counters, the period's calendar (day or month, a reset time, local time or UTC) and the
//! state a restart or reload continues from. Pure: the wall-clock time is an argument, the
//! time zone is a [`Zones`] the caller gives, the state file's bytes are the caller's
//! (`process/state_file.rs` reads and writes them).
//!
//! **What is counted.** A budget counts the IP bytes of the MPTCP subflows on its interfaces,
//! both directions: what a mobile operator bills. `tcp_info` gives each subflow's payload
//! (`bytes_sent`, retransmissions included, and `bytes_received`) and its segments
//! (`segs_out`/`segs_in`, of which `data_segs_out`/`data_segs_in` carried data); each segment
//! adds its headers, estimated per segment kind ([`DATA_HEADERS_V4`], [`CONTROL_HEADERS_V4`],
//! [`V6_EXTRA`]). Payload alone is 5-7 % below what the interface counts on a bulk transfer;
//! with the headers the estimate is within ~1 % of the IP bytes (the real-kernel test
//! `integration/tests/daemon_metered.rs` compares it with the interface's own counters, which
//! also count the 14-byte Ethernet header of each frame).
//!
//! **Deltas.** A subflow's counters only grow, so the meter keeps the last counters it counted
//! per subflow and adds the difference at each sample. A subflow seen for the first time counts
//! from zero (everything it carried), unless the state file holds its last counted counters
//! (it was counted before a restart): then from those. Counters that went *down* mean another
//! socket took the same 4-tuple: it counts from zero. What a subflow carries between its last
//! sample and its close is lost: at most one sample period of its traffic (the daemon samples
//! every `poll.interval_ms` while budgets are configured).
//!
//! **Periods.** A period runs from one reset to the next, computed on the budget's clock
//! ([`Zones`]); the meter rolls a budget over when the time reaches its period's end, and
//! only forward: a clock that goes back (an appliance without a battery-backed clock, before
//! time sync) never resets a count. A reset time that does not exist on a day (clocks go
//! forward) is the first minute after the gap; one that happens twice is the first.
//!
//! **Restarts and reloads** ([`Meter::new`] with a [`SavedState`], [`Meter::reconfigure`]): a
//! budget is known by its name (its interface globs). Its saved use carries over while the
//! period it was counted in is not over, also when the budget, period or reset changed: a
//! restart or a reload never resets what was used, only a rollover does.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use mptcp_pmd_config::{Budget, Period, WhenSpent, Zone};
use mptcp_pmd_policies::conn::{Subflow, SubflowState};
use mptcp_pmd_policies::{SubflowKey, SubflowSample, Token};
use serde::{Deserialize, Serialize};

/// Headers of an IPv4 MPTCP data segment: IP 20 + TCP 20 + options 40 (timestamps 12 and a
/// DSS with a 64-bit data ACK and a mapping, 26, padded). Measured on Linux 6.18: a bulk
/// transfer's data segments average 76-81 bytes of headers.
pub const DATA_HEADERS_V4: u64 = 80;
/// Headers of an IPv4 MPTCP control segment (an ACK without data): IP 20 + TCP 20 +
/// timestamps 12 + a DSS carrying the 64-bit data ACK, 12.
pub const CONTROL_HEADERS_V4: u64 = 64;
/// An IPv6 header is 20 bytes longer than an IPv4 one.
pub const V6_EXTRA: u64 = 20;

/// The version of [`SavedState`]'s layout.
pub const STATE_VERSION: u32 = 1;

/// How long the last counted counters of subflows from the state file wait for their
/// subflow to be seen again after a start (adoption samples them within a poll or two).
const BASELINE_TTL_S: i64 = 300;

/// The byte and segment counters of one subflow, as `tcp_info` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// `tcpi_bytes_sent`.
    pub bytes_sent: u64,
    /// `tcpi_bytes_received`.
    pub bytes_received: u64,
    /// `tcpi_segs_out`.
    pub segs_out: u32,
    /// `tcpi_segs_in`.
    pub segs_in: u32,
    /// `tcpi_data_segs_out`.
    pub data_segs_out: u32,
    /// `tcpi_data_segs_in`.
    pub data_segs_in: u32,
}

impl Counters {
    /// The counters of a sample.
    pub fn of(s: &SubflowSample) -> Counters {
        Counters {
            bytes_sent: s.bytes_sent,
            bytes_received: s.bytes_received,
            segs_out: s.segs_out,
            segs_in: s.segs_in,
            data_segs_out: s.data_segs_out,
            data_segs_in: s.data_segs_in,
        }
    }

    /// The IP bytes (payload and headers, both directions) these counters say were carried
    /// since `before` (another socket's counters if they went down: then all of these).
    pub fn wire_since(&self, before: &Counters, v6: bool) -> u64 {
        let before =
            if self.bytes_sent < before.bytes_sent || self.bytes_received < before.bytes_received {
                &Counters::default()
            } else {
                before
            };
        // Segment counters are 32 bits and wrap (after ~6 TB at full size): differences
        // modulo 2^32, while the 64-bit byte counters tell a new socket.
        let segs = |now: u32, was: u32| u64::from(now.wrapping_sub(was));
        let (data, control) = headers(v6);
        let data_segs = segs(self.data_segs_out, before.data_segs_out)
            + segs(self.data_segs_in, before.data_segs_in);
        let all_segs = segs(self.segs_out, before.segs_out) + segs(self.segs_in, before.segs_in);
        let payload =
            (self.bytes_sent - before.bytes_sent) + (self.bytes_received - before.bytes_received);
        payload
            .saturating_add(data_segs.saturating_mul(data))
            .saturating_add(all_segs.saturating_sub(data_segs).saturating_mul(control))
    }
}

/// Header bytes of a (data, control) segment.
fn headers(v6: bool) -> (u64, u64) {
    let extra = if v6 { V6_EXTRA } else { 0 };
    (DATA_HEADERS_V4 + extra, CONTROL_HEADERS_V4 + extra)
}

/// The UTC offset of the clocks a budget can be read on: UTC and the host's local time.
/// The daemon's implementation asks the system's time zone; tests give their own.
pub trait Zones: Send {
    /// Seconds east of UTC of `zone` at instant `at`.
    fn offset_s(&self, zone: Zone, at: DateTime<Utc>) -> i32;
}

/// The civil (wall-clock) time of `at` in `zone`.
fn civil(zones: &dyn Zones, zone: Zone, at: DateTime<Utc>) -> NaiveDateTime {
    at.naive_utc() + chrono::Duration::seconds(zones.offset_s(zone, at).into())
}

/// The instant of civil time `t` in `zone`: the earlier of two (clocks went back), the first
/// minute after a gap (clocks went forward).
fn instant(zones: &dyn Zones, zone: Zone, t: NaiveDateTime) -> DateTime<Utc> {
    let day = chrono::Duration::days(1);
    for step in 0..=(24 * 60) {
        let t = t + chrono::Duration::minutes(step);
        // The offsets in force around t: a zone changes offset at most once within a day.
        let guesses = [t - day, t + day].map(|g| zones.offset_s(zone, g.and_utc()));
        let found = guesses
            .iter()
            .map(|o| (t - chrono::Duration::seconds((*o).into())).and_utc())
            .filter(|u| civil(zones, zone, *u) == t)
            .min();
        if let Some(u) = found {
            return u;
        }
    }
    // No zone has a gap of a day; should one, read the time as UTC.
    t.and_utc()
}

/// The last day of month `m` of year `y`.
fn last_day(y: i32, m: u32) -> u32 {
    NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.checked_add_months(Months::new(1)))
        .and_then(|d| d.pred_opt())
        .map_or(28, |d| d.day())
}

/// The civil time of the reset of `budget` in the month of `date` (monthly) or on `date`.
fn reset_on(budget: &Budget, date: NaiveDate) -> NaiveDateTime {
    let r = budget.reset;
    let time = NaiveTime::from_hms_opt(r.hour.into(), r.minute.into(), 0).unwrap_or_default();
    let date = match (budget.period, r.day) {
        (Period::Month, Some(d)) => {
            let d = u32::from(d).min(last_day(date.year(), date.month()));
            date.with_day(d).unwrap_or(date)
        }
        _ => date,
    };
    date.and_time(time)
}

/// The period of `budget` that contains `now`: (start, end).
pub fn period_at(
    zones: &dyn Zones,
    budget: &Budget,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let zone = budget.timezone;
    let today = civil(zones, zone, now).date();
    let at = |d: NaiveDate| instant(zones, zone, reset_on(budget, d));
    type Step = fn(NaiveDate) -> Option<NaiveDate>;
    let (prev, next): (Step, Step) = match budget.period {
        Period::Day => (
            |d| d.checked_sub_days(Days::new(1)),
            |d| d.checked_add_days(Days::new(1)),
        ),
        Period::Month => (
            |d| d.with_day(1)?.checked_sub_months(Months::new(1)),
            |d| d.with_day(1)?.checked_add_months(Months::new(1)),
        ),
    };
    let mut base = match budget.period {
        Period::Day => today,
        Period::Month => today.with_day(1).unwrap_or(today),
    };
    if at(base) > now {
        base = prev(base).unwrap_or(base);
    }
    let end = next(base).map_or(now, at);
    (at(base), end)
}

/// `1.5 GiB`: bytes in binary units, one decimal.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut x = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if x < 1024.0 {
            break;
        }
        x /= 1024.0;
        unit = u;
    }
    format!("{x:.1} {unit}")
}

/// One budget's account in its current period.
#[derive(Debug, Clone)]
struct Account {
    budget: Budget,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    used: u64,
    by_interface: BTreeMap<String, u64>,
    spent_at: Option<DateTime<Utc>>,
}

impl Account {
    fn fresh(zones: &dyn Zones, budget: &Budget, now: DateTime<Utc>) -> Account {
        let (start, end) = period_at(zones, budget, now);
        Account {
            budget: budget.clone(),
            start,
            end,
            used: 0,
            by_interface: BTreeMap::new(),
            spent_at: None,
        }
    }

    fn is_spent(&self) -> bool {
        self.used >= self.budget.budget.0
    }
}

/// A subflow on a metered interface being counted.
#[derive(Debug, Clone)]
struct Track {
    key: SubflowKey,
    account: usize,
    interface: String,
    last: Counters,
}

/// Something worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeterEvent {
    /// A budget is spent: its interfaces' subflows are made backup or closed.
    Spent {
        /// The budget's name.
        budget: String,
        /// Why, as the decisions say it.
        detail: String,
    },
    /// A period ended: counting starts again, and the interfaces are used again.
    RolledOver {
        /// The budget's name.
        budget: String,
        /// What was used in the period that ended.
        used: u64,
        /// The new period's end.
        next_reset: String,
    },
    /// Use carried over from the state file (start-up) or the previous configuration.
    Restored {
        /// The budget's name.
        budget: String,
        /// The use carried over.
        used: u64,
    },
    /// A saved budget's period was over: it starts from 0.
    Expired {
        /// The budget's name.
        budget: String,
        /// The use that was saved for the period that is over.
        used: u64,
    },
}

/// The meter's state as the state file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// When it was saved, Unix seconds.
    pub saved_at: i64,
    /// Every budget's account.
    pub budgets: Vec<SavedBudget>,
    /// The last counted counters of every subflow being counted, so that after a restart an
    /// adopted subflow continues from them (its bytes while the daemon was down are counted,
    /// none twice).
    pub subflows: Vec<SavedSubflow>,
    /// The paths (local address, remote address and port) whose subflows a spent budget made
    /// backup, so that a restarted daemon clears the flag of the ones it adopts once the budget
    /// is no longer spent.
    #[serde(default)]
    pub flagged: Vec<(IpAddr, SocketAddr)>,
}

/// One budget in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedBudget {
    /// Its name (interface globs, comma-separated): its identity.
    pub name: String,
    /// Its period, Unix seconds.
    pub period_start: i64,
    /// Its period's end, Unix seconds.
    pub period_end: i64,
    /// Bytes used in the period.
    pub used: u64,
    /// Of them, by interface.
    pub interfaces: BTreeMap<String, u64>,
    /// When it was spent, Unix seconds.
    pub spent_at: Option<i64>,
}

/// One counted subflow in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedSubflow {
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port.
    pub remote: SocketAddr,
    /// The counters counted so far.
    pub counters: Counters,
}

/// A spent budget, as the enforcement needs it.
#[derive(Debug, Clone, Copy)]
pub struct Spent<'a> {
    /// What to do with the interface's subflows.
    pub when_spent: WhenSpent,
    meter: &'a Meter,
    account: usize,
}

impl Spent<'_> {
    /// `budget wwan*: 10.0 GiB of 10.0 GiB used this month, resets 2027-01-01 00:00`.
    pub fn detail(&self) -> String {
        self.meter.detail(self.account)
    }
}

/// A budget's use, for `status`, `addresses` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetUse {
    /// Its name (interface globs, comma-separated).
    pub name: String,
    /// Bytes per period.
    pub budget: u64,
    /// Bytes used in the current period.
    pub used: u64,
    /// Of them, by interface.
    pub interfaces: BTreeMap<String, u64>,
    /// `day` or `month`.
    pub period: String,
    /// When the period started, civil time on the budget's clock (`2026-12-01 00:00`).
    pub since: String,
    /// When it ends (the next reset), likewise.
    pub resets: String,
    /// `local` or `utc`.
    pub timezone: String,
    /// The budget is spent.
    pub spent: bool,
    /// `backup` or `close`.
    pub when_spent: String,
}

/// The meter of every configured budget. See the module docs.
pub struct Meter {
    zones: Box<dyn Zones>,
    accounts: Vec<Account>,
    tracks: HashMap<Token, Vec<Track>>,
    /// Which account (and interface) a local address counts against, cached per address (a
    /// glob match per subflow per sample otherwise); `None`: not metered.
    by_addr: HashMap<IpAddr, Option<(usize, String)>>,
    /// Counters from the state file, waiting for their subflow to be seen again, and until
    /// when they wait.
    baselines: HashMap<SubflowKey, Counters>,
    baselines_until: DateTime<Utc>,
    /// Paths whose subflows a spent budget made backup (see [`SavedState::flagged`]).
    flagged: std::collections::BTreeSet<(IpAddr, SocketAddr)>,
    events: Vec<MeterEvent>,
    /// Something changed since the last save.
    dirty: bool,
}

impl fmt::Debug for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meter")
            .field("accounts", &self.accounts)
            .field(
                "tracked",
                &self.tracks.values().map(Vec::len).sum::<usize>(),
            )
            .finish_non_exhaustive()
    }
}

fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn from_unix(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap_or_default()
}

impl Meter {
    /// A meter of `budgets` at `now`, continuing from `saved` (the state file) where it has
    /// the same budget and the period it counted is not over.
    pub fn new(
        zones: Box<dyn Zones>,
        budgets: &[Budget],
        saved: Option<SavedState>,
        now: DateTime<Utc>,
    ) -> Meter {
        let mut m = Meter {
            zones,
            accounts: Vec::new(),
            tracks: HashMap::new(),
            by_addr: HashMap::new(),
            baselines: HashMap::new(),
            baselines_until: now + chrono::Duration::seconds(BASELINE_TTL_S),
            flagged: Default::default(),
            events: Vec::new(),
            dirty: false,
        };
        let saved = saved.unwrap_or(SavedState {
            version: STATE_VERSION,
            saved_at: unix(now),
            budgets: Vec::new(),
            subflows: Vec::new(),
            flagged: Vec::new(),
        });
        m.accounts = budgets
            .iter()
            .map(|b| m.continued(b, saved.budgets.iter().find(|s| s.name == b.name()), now))
            .collect();
        if !budgets.is_empty() {
            m.flagged = saved.flagged.into_iter().collect();
            m.baselines = saved
                .subflows
                .into_iter()
                .map(|s| {
                    (
                        SubflowKey {
                            local: s.local,
                            remote: s.remote,
                        },
                        s.counters,
                    )
                })
                .collect();
        }
        m
    }

    /// The account of `budget` at `now`, continuing `saved` if its period is not over.
    fn continued(
        &mut self,
        budget: &Budget,
        saved: Option<&SavedBudget>,
        now: DateTime<Utc>,
    ) -> Account {
        let mut a = Account::fresh(self.zones.as_ref(), budget, now);
        let Some(s) = saved else { return a };
        let (start, end) = (from_unix(s.period_start), from_unix(s.period_end));
        if now >= end {
            if s.used > 0 {
                self.events.push(MeterEvent::Expired {
                    budget: budget.name(),
                    used: s.used,
                });
            }
            self.dirty = true;
            return a;
        }
        if now < start {
            // The clock is behind the saved period: trust the period, not the clock.
            (a.start, a.end) = (start, end);
        }
        a.used = s.used;
        a.by_interface = s.interfaces.clone();
        a.spent_at = s.spent_at.map(from_unix).filter(|_| a.is_spent());
        if a.is_spent() && a.spent_at.is_none() {
            a.spent_at = Some(now);
        }
        if s.used > 0 {
            self.events.push(MeterEvent::Restored {
                budget: budget.name(),
                used: s.used,
            });
        }
        a
    }

    /// A reload: the new `budgets` take over, each continuing the use of the budget of the
    /// same name (see [`Meter::new`]); subflows go on being counted where still metered.
    pub fn reconfigure(&mut self, budgets: &[Budget], now: DateTime<Utc>) {
        let saved = self.save(now);
        let old = std::mem::take(&mut self.accounts);
        self.accounts = budgets
            .iter()
            .map(|b| self.continued(b, saved.budgets.iter().find(|s| s.name == b.name()), now))
            .collect();
        // Reloads are not restarts: only a use that changed is worth a line.
        self.events.retain(|e| match e {
            MeterEvent::Restored { budget, used } => old
                .iter()
                .find(|a| a.budget.name() == *budget)
                .is_none_or(|a| a.used != *used),
            _ => true,
        });
        self.by_addr.clear();
        let accounts = &self.accounts;
        for tracks in self.tracks.values_mut() {
            tracks.retain_mut(|t| {
                match accounts.iter().position(|a| a.budget.matches(&t.interface)) {
                    Some(i) => {
                        t.account = i;
                        true
                    }
                    None => false,
                }
            });
        }
        self.tracks.retain(|_, v| !v.is_empty());
        if budgets.is_empty() {
            self.tracks.clear();
            self.baselines.clear();
            self.flagged.clear();
        }
        self.dirty = true;
    }

    /// Whether any budget is configured.
    pub fn is_active(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// The usable addresses changed: which interface an address is on is looked up again.
    pub fn locals_changed(&mut self) {
        self.by_addr.clear();
    }

    /// The budget account and interface of local address `addr`, if metered.
    fn account_of(
        &mut self,
        addr: IpAddr,
        interface_of: &dyn Fn(IpAddr) -> Option<String>,
    ) -> Option<(usize, String)> {
        let accounts = &self.accounts;
        self.by_addr
            .entry(addr)
            .or_insert_with(|| {
                let name = interface_of(addr)?;
                let i = accounts.iter().position(|a| a.budget.matches(&name))?;
                Some((i, name))
            })
            .clone()
    }

    /// The subflows of connection `token` as its state machine holds them (with their last
    /// samples) at `now`: each subflow on a metered interface adds what it carried since it
    /// was last counted. `interface_of` names the interface of a local address.
    pub fn observe(
        &mut self,
        now: DateTime<Utc>,
        token: Token,
        subflows: &[Subflow],
        interface_of: &dyn Fn(IpAddr) -> Option<String>,
    ) {
        if self.accounts.is_empty() {
            return;
        }
        let mut tracks = self.tracks.remove(&token).unwrap_or_default();
        let mut seen = 0usize;
        for sf in subflows {
            let (Some(key), Some(sample)) = (sf.key(), sf.sample.as_ref()) else {
                continue;
            };
            let counted = matches!(
                sf.state,
                SubflowState::Established { .. } | SubflowState::Closed { .. }
            );
            if !counted {
                continue;
            }
            let now_counters = Counters::of(sample);
            let v6 = key.local.ip().to_canonical().is_ipv6();
            let i = match tracks.iter().position(|t| t.key == key) {
                // Counted in this pass already (a closed entry of an earlier socket on the
                // same 4-tuple): the established one's counters are the ones that count.
                Some(i) if i < seen => continue,
                Some(i) => i,
                None => {
                    if !sf.is_established() {
                        continue;
                    }
                    let Some((account, interface)) = self.account_of(key.local.ip(), interface_of)
                    else {
                        continue;
                    };
                    let last = self.baselines.remove(&key).unwrap_or_default();
                    tracks.push(Track {
                        key,
                        account,
                        interface,
                        last,
                    });
                    tracks.len() - 1
                }
            };
            let t = &mut tracks[i];
            let carried = now_counters.wire_since(&t.last, v6);
            t.last = now_counters;
            let (account, interface) = (t.account, t.interface.clone());
            if sf.is_established() {
                // Keep established ones first: the rest are dropped below.
                tracks.swap(seen, i);
                seen += 1;
            }
            self.add(now, account, &interface, carried);
        }
        // Closed subflows were counted one last time; vanished ones are gone.
        tracks.truncate(seen);
        if !tracks.is_empty() {
            self.tracks.insert(token, tracks);
        }
        if now > self.baselines_until && !self.baselines.is_empty() {
            self.baselines = HashMap::new();
        }
    }

    /// Connection `token` is gone: its subflows are no longer counted.
    pub fn gone(&mut self, token: Token) {
        self.tracks.remove(&token);
    }

    fn add(&mut self, now: DateTime<Utc>, account: usize, interface: &str, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let Some(a) = self.accounts.get_mut(account) else {
            return;
        };
        a.used = a.used.saturating_add(bytes);
        match a.by_interface.get_mut(interface) {
            Some(n) => *n = n.saturating_add(bytes),
            None => {
                a.by_interface.insert(interface.to_owned(), bytes);
            }
        }
        self.dirty = true;
        if a.spent_at.is_none() && a.is_spent() {
            a.spent_at = Some(now);
            let budget = a.budget.name();
            let detail = self.detail(account);
            self.events.push(MeterEvent::Spent { budget, detail });
        }
    }

    /// Roll over every budget whose period ended by `now`. Returns whether one did.
    pub fn roll(&mut self, now: DateTime<Utc>) -> bool {
        let mut rolled = false;
        for i in 0..self.accounts.len() {
            if now < self.accounts[i].end {
                continue;
            }
            let fresh = Account::fresh(self.zones.as_ref(), &self.accounts[i].budget, now);
            let old = std::mem::replace(&mut self.accounts[i], fresh);
            let next_reset = self.civil_text(i, self.accounts[i].end);
            self.events.push(MeterEvent::RolledOver {
                budget: old.budget.name(),
                used: old.used,
                next_reset,
            });
            rolled = true;
            self.dirty = true;
        }
        rolled
    }

    /// The earliest end of a period: when [`Meter::roll`] has something to do.
    #[cfg(test)]
    pub fn next_rollover(&self) -> Option<DateTime<Utc>> {
        self.accounts.iter().map(|a| a.end).min()
    }

    /// The spent budget interface `name` counts against, if it is spent.
    pub fn spent_on(&self, name: &str) -> Option<Spent<'_>> {
        let i = self.accounts.iter().position(|a| a.budget.matches(name))?;
        let a = &self.accounts[i];
        a.is_spent().then_some(Spent {
            when_spent: a.budget.when_spent,
            meter: self,
            account: i,
        })
    }

    /// A spent budget made the subflows of `path` (local address, remote) backup (`true`), or
    /// that was undone (`false`).
    pub fn flag(&mut self, path: (IpAddr, SocketAddr), on: bool) {
        let changed = if on {
            self.flagged.insert(path)
        } else {
            self.flagged.remove(&path)
        };
        self.dirty |= changed;
    }

    /// Whether a spent budget made the subflows of `path` backup (before a restart, too).
    pub fn was_flagged(&self, path: (IpAddr, SocketAddr)) -> bool {
        self.flagged.contains(&path)
    }

    /// Whether interface `name` is metered.
    pub fn is_metered(&self, name: &str) -> bool {
        self.accounts.iter().any(|a| a.budget.matches(name))
    }

    /// The use of the budget interface `name` counts against, as [`Spent::detail`] says it.
    pub fn detail_of(&self, name: &str) -> Option<String> {
        let i = self.accounts.iter().position(|a| a.budget.matches(name))?;
        Some(self.detail(i))
    }

    /// The civil time `t` on account `i`'s clock, `2027-01-01 00:00` (`... UTC` for UTC).
    fn civil_text(&self, i: usize, t: DateTime<Utc>) -> String {
        let Some(a) = self.accounts.get(i) else {
            return String::new();
        };
        let zone = a.budget.timezone;
        let c = civil(self.zones.as_ref(), zone, t).format("%Y-%m-%d %H:%M");
        match zone {
            Zone::Utc => format!("{c} UTC"),
            Zone::Local => c.to_string(),
        }
    }

    fn detail(&self, i: usize) -> String {
        let Some(a) = self.accounts.get(i) else {
            return String::new();
        };
        let when = match a.budget.period {
            Period::Day => "today",
            Period::Month => "this month",
        };
        format!(
            "budget {}: {} of {} used {when}, resets {}",
            a.budget.name(),
            human(a.used),
            human(a.budget.budget.0),
            self.civil_text(i, a.end)
        )
    }

    /// Every budget's use.
    pub fn usage(&self) -> Vec<BudgetUse> {
        self.accounts
            .iter()
            .enumerate()
            .map(|(i, a)| BudgetUse {
                name: a.budget.name(),
                budget: a.budget.budget.0,
                used: a.used,
                interfaces: a.by_interface.clone(),
                period: a.budget.period.as_str().to_owned(),
                since: self.civil_text(i, a.start),
                resets: self.civil_text(i, a.end),
                timezone: a.budget.timezone.as_str().to_owned(),
                spent: a.is_spent(),
                when_spent: a.budget.when_spent.as_str().to_owned(),
            })
            .collect()
    }

    /// The next thing worth a log line.
    pub fn poll_event(&mut self) -> Option<MeterEvent> {
        if self.events.is_empty() {
            return None;
        }
        Some(self.events.remove(0))
    }

    /// Whether anything changed since the last [`Meter::saved`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The state was written: nothing to save until the next change.
    pub fn saved(&mut self) {
        self.dirty = false;
    }

    /// The state to write, at `now`.
    pub fn save(&self, now: DateTime<Utc>) -> SavedState {
        let budgets = self
            .accounts
            .iter()
            .map(|a| SavedBudget {
                name: a.budget.name(),
                period_start: unix(a.start),
                period_end: unix(a.end),
                used: a.used,
                interfaces: a.by_interface.clone(),
                spent_at: a.spent_at.map(unix),
            })
            .collect();
        let live = self.tracks.values().flatten().map(|t| (t.key, t.last));
        let waiting = self.baselines.iter().map(|(k, c)| (*k, *c));
        let mut subflows: Vec<SavedSubflow> = live
            .chain(waiting)
            .map(|(key, counters)| SavedSubflow {
                local: key.local,
                remote: key.remote,
                counters,
            })
            .collect();
        subflows.sort_by_key(|s| (s.local, s.remote));
        // Only the paths of subflows still counted: the others are gone.
        let flagged = self
            .flagged
            .iter()
            .filter(|(local, remote)| {
                subflows
                    .iter()
                    .any(|s| s.local.ip() == *local && s.remote == *remote)
            })
            .copied()
            .collect();
        SavedState {
            version: STATE_VERSION,
            saved_at: unix(now),
            budgets,
            subflows,
            flagged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use mptcp_pmd_config::{ByteSize, ResetAt};
    use mptcp_pmd_policies::conn::{ConnTimers, Connection};
    use mptcp_pmd_policies::{KernelSubflow, TCP_SYN_SENT};
    use std::time::Instant;

    /// UTC, and for `local` a Central European zone: +1, +2 from the last Sunday of March
    /// 01:00 UTC to the last Sunday of October 01:00 UTC (the EU rule).
    struct TestZones;

    fn last_sunday(y: i32, m: u32) -> NaiveDate {
        let mut d = NaiveDate::from_ymd_opt(y, m, last_day(y, m)).unwrap();
        while d.weekday() != chrono::Weekday::Sun {
            d = d.pred_opt().unwrap();
        }
        d
    }

    impl Zones for TestZones {
        fn offset_s(&self, zone: Zone, at: DateTime<Utc>) -> i32 {
            match zone {
                Zone::Utc => 0,
                Zone::Local => {
                    let y = at.year();
                    let on = last_sunday(y, 3).and_hms_opt(1, 0, 0).unwrap().and_utc();
                    let off = last_sunday(y, 10).and_hms_opt(1, 0, 0).unwrap().and_utc();
                    if at >= on && at < off {
                        7200
                    } else {
                        3600
                    }
                }
            }
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        Utc.from_utc_datetime(&NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap())
    }

    fn budget(globs: &[&str], bytes: u64, period: Period, reset: &str, zone: Zone) -> Budget {
        Budget {
            interfaces: globs.iter().map(|g| g.to_string()).collect(),
            budget: ByteSize(bytes),
            period,
            reset: reset.parse::<ResetAt>().unwrap(),
            timezone: zone,
            when_spent: WhenSpent::Backup,
        }
    }

    fn monthly(bytes: u64) -> Budget {
        budget(&["wwan*"], bytes, Period::Month, "day 1 00:00", Zone::Utc)
    }

    fn period(b: &Budget, now: &str) -> (String, String) {
        let (s, e) = period_at(&TestZones, b, utc(now));
        let f = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M").to_string();
        (f(s), f(e))
    }

    fn p(a: &str, b: &str) -> (String, String) {
        (a.to_owned(), b.to_owned())
    }

    #[test]
    fn monthly_periods_at_month_ends() {
        let b = budget(&["x"], 1, Period::Month, "day 31 23:00", Zone::Utc);
        // A month shorter than 31 days resets on its last day.
        assert_eq!(
            period(&b, "2027-02-10 12:00"),
            p("2027-01-31 23:00", "2027-02-28 23:00")
        );
        assert_eq!(
            period(&b, "2028-02-29 23:30"),
            p("2028-02-29 23:00", "2028-03-31 23:00"),
            "a leap year's February"
        );
        assert_eq!(
            period(&b, "2026-12-31 23:00"),
            p("2026-12-31 23:00", "2027-01-31 23:00"),
            "the reset instant starts the new period"
        );
        assert_eq!(
            period(&b, "2026-12-31 22:59"),
            p("2026-11-30 23:00", "2026-12-31 23:00"),
            "across the year"
        );
        let first = budget(&["x"], 1, Period::Month, "day 1 00:00", Zone::Utc);
        assert_eq!(
            period(&first, "2026-12-15 08:00"),
            p("2026-12-01 00:00", "2027-01-01 00:00")
        );
    }

    #[test]
    fn daily_periods() {
        let b = budget(&["x"], 1, Period::Day, "04:30", Zone::Utc);
        assert_eq!(
            period(&b, "2027-03-01 04:29"),
            p("2027-02-28 04:30", "2027-03-01 04:30")
        );
        assert_eq!(
            period(&b, "2027-03-01 04:30"),
            p("2027-03-01 04:30", "2027-03-02 04:30")
        );
    }

    #[test]
    fn local_periods_follow_daylight_saving() {
        // Berlin-like: midnight is 23:00 UTC in winter, 22:00 UTC in summer.
        let b = budget(&["x"], 1, Period::Month, "day 1 00:00", Zone::Local);
        assert_eq!(
            period(&b, "2027-03-15 12:00"),
            p("2027-02-28 23:00", "2027-03-31 22:00"),
            "March starts in winter time and ends in summer time"
        );
        let d = budget(&["x"], 1, Period::Day, "00:00", Zone::Local);
        // 2027-03-28: clocks go forward at 02:00 local: the day has 23 hours.
        assert_eq!(
            period(&d, "2027-03-28 12:00"),
            p("2027-03-27 23:00", "2027-03-28 22:00")
        );
        // 2027-10-31: back at 03:00 local: 25 hours.
        assert_eq!(
            period(&d, "2027-10-31 12:00"),
            p("2027-10-30 22:00", "2027-10-31 23:00")
        );
        // A reset in the gap (02:30 does not exist on 2027-03-28): the first minute after it
        // (03:00 CEST = 01:00 UTC); one that happens twice (02:30 on 2027-10-31): the first.
        let gap = budget(&["x"], 1, Period::Day, "02:30", Zone::Local);
        assert_eq!(period(&gap, "2027-03-28 12:00").0, "2027-03-28 01:00");
        assert_eq!(period(&gap, "2027-10-31 12:00").0, "2027-10-31 00:30");
    }

    // ---- counting ----

    const WWAN: &str = "10.0.2.1";
    const ETH: &str = "10.0.1.1";

    fn iface(a: IpAddr) -> Option<String> {
        match a.to_string().as_str() {
            WWAN => Some("wwan0".into()),
            ETH => Some("eth0".into()),
            _ => None,
        }
    }

    fn key(local: &str, port: u16) -> SubflowKey {
        SubflowKey {
            local: SocketAddr::new(local.parse().unwrap(), port),
            remote: "10.0.9.1:80".parse().unwrap(),
        }
    }

    /// A sample that carried `payload` bytes out in full-size data segments, each answered
    /// by one ACK.
    fn carried(payload: u64) -> SubflowSample {
        let segs = u32::try_from(payload / 1400).unwrap();
        SubflowSample {
            bytes_sent: payload,
            segs_out: segs,
            data_segs_out: segs,
            segs_in: segs,
            ..SubflowSample::default()
        }
    }

    fn wire(payload: u64) -> u64 {
        let segs = payload / 1400;
        payload + segs * (DATA_HEADERS_V4 + CONTROL_HEADERS_V4)
    }

    /// A connection with established subflows (key, sample).
    fn conn(token: u32, subflows: &[(SubflowKey, SubflowSample)]) -> Connection {
        let first = subflows[0].0;
        Connection::adopt(
            Instant::now(),
            Token(token),
            first.local,
            first.remote,
            subflows.iter().map(|(k, s)| KernelSubflow {
                key: *k,
                loc_id: 0,
                rem_id: 0,
                backup: false,
                sample: *s,
            }),
        )
    }

    fn meter(budgets: &[Budget], saved: Option<SavedState>, now: &str) -> Meter {
        Meter::new(Box::new(TestZones), budgets, saved, utc(now))
    }

    fn observe(m: &mut Meter, now: &str, c: &Connection) {
        m.observe(utc(now), c.token(), c.subflows(), &iface);
    }

    fn used(m: &Meter) -> u64 {
        m.usage()[0].used
    }

    #[test]
    fn counts_the_deltas_of_metered_subflows_only() {
        let mut m = meter(&[monthly(1 << 30)], None, "2026-12-01 10:00");
        let (w, e) = (key(WWAN, 40000), key(ETH, 40001));
        observe(
            &mut m,
            "2026-12-01 10:00",
            &conn(1, &[(e, carried(14_000)), (w, carried(14_000))]),
        );
        assert_eq!(
            used(&m),
            wire(14_000),
            "a new subflow counts what it carried"
        );
        observe(
            &mut m,
            "2026-12-01 10:01",
            &conn(1, &[(e, carried(28_000)), (w, carried(28_000))]),
        );
        assert_eq!(
            used(&m),
            wire(28_000),
            "then the difference; eth0 is not metered"
        );
        assert_eq!(m.usage()[0].interfaces.get("wwan0"), Some(&wire(28_000)));
        // The same sample again adds nothing.
        observe(
            &mut m,
            "2026-12-01 10:02",
            &conn(1, &[(w, carried(28_000))]),
        );
        assert_eq!(used(&m), wire(28_000));
        assert!(m.is_dirty());
    }

    #[test]
    fn a_counter_that_goes_down_is_a_new_socket_and_a_vanished_subflow_is_forgotten() {
        let mut m = meter(&[monthly(1 << 30)], None, "2026-12-01 10:00");
        let w = key(WWAN, 40000);
        observe(
            &mut m,
            "2026-12-01 10:00",
            &conn(1, &[(w, carried(140_000))]),
        );
        // Another socket on the same 4-tuple: its counters start again.
        observe(
            &mut m,
            "2026-12-01 10:01",
            &conn(1, &[(w, carried(14_000))]),
        );
        assert_eq!(used(&m), wire(140_000) + wire(14_000));
        // The subflow vanished from the connection, then a subflow with the same key shows
        // up with larger counters: it is new, so everything it carried counts.
        observe(
            &mut m,
            "2026-12-01 10:02",
            &conn(1, &[(key(ETH, 1), carried(0))]),
        );
        observe(
            &mut m,
            "2026-12-01 10:03",
            &conn(1, &[(w, carried(28_000))]),
        );
        assert_eq!(used(&m), wire(140_000) + wire(14_000) + wire(28_000));
        // A connection that is gone takes its subflows with it.
        m.gone(Token(1));
        observe(
            &mut m,
            "2026-12-01 10:04",
            &conn(1, &[(w, carried(42_000))]),
        );
        assert_eq!(
            used(&m),
            wire(140_000) + wire(14_000) + wire(28_000) + wire(42_000)
        );
    }

    #[test]
    fn a_closed_subflow_is_counted_a_last_time() {
        let mut m = meter(&[monthly(1 << 30)], None, "2026-12-01 10:00");
        let w = key(WWAN, 40000);
        let mut c = conn(7, &[(key(ETH, 40001), carried(0)), (w, carried(14_000))]);
        observe(&mut m, "2026-12-01 10:00", &c);
        c.handle_samples(Instant::now(), &[(w, carried(42_000))]);
        let closed = mptcp_pmd_policies::SubflowInfo {
            token: Token(7),
            local: w.local,
            remote: w.remote,
            loc_id: 0,
            rem_id: 0,
            backup: false,
            if_idx: None,
            error: None,
            reset_reason: None,
            reset_flags: None,
        };
        c.handle_event(
            Instant::now(),
            &mptcp_pmd_policies::PmEvent::SubClosed(closed),
        );
        observe(&mut m, "2026-12-01 10:01", &c);
        assert_eq!(used(&m), wire(42_000));
        assert!(!m.tracks.contains_key(&Token(7)), "no longer tracked");
        observe(&mut m, "2026-12-01 10:02", &c);
        assert_eq!(used(&m), wire(42_000), "and not counted twice");
    }

    #[test]
    fn wire_bytes_by_family_and_segment_kind() {
        let s = SubflowSample {
            bytes_sent: 10_000,
            bytes_received: 500,
            segs_out: 10,
            data_segs_out: 8,
            segs_in: 6,
            data_segs_in: 1,
            ..SubflowSample::default()
        };
        let c = Counters::of(&s);
        // 9 data segments, 7 control ones.
        assert_eq!(
            c.wire_since(&Counters::default(), false),
            10_500 + 9 * 80 + 7 * 64
        );
        assert_eq!(
            c.wire_since(&Counters::default(), true),
            10_500 + 9 * 100 + 7 * 84
        );
        // Segment counters wrap at 2^32; the byte counters tell a new socket.
        let before = Counters {
            segs_out: u32::MAX,
            data_segs_out: u32::MAX,
            ..Counters::default()
        };
        let after = Counters {
            bytes_sent: 1400,
            segs_out: 0,
            data_segs_out: 0,
            ..Counters::default()
        };
        assert_eq!(after.wire_since(&before, false), 1400 + 80);
    }

    #[test]
    fn spending_and_rolling_over() {
        let b = monthly(wire(140_000));
        let mut m = meter(&[b], None, "2026-12-31 23:00");
        let w = key(WWAN, 40000);
        observe(
            &mut m,
            "2026-12-31 23:00",
            &conn(1, &[(w, carried(70_000))]),
        );
        assert!(m.spent_on("wwan0").is_none());
        assert_eq!(m.poll_event(), None);
        observe(
            &mut m,
            "2026-12-31 23:10",
            &conn(1, &[(w, carried(140_000))]),
        );
        let spent = m.spent_on("wwan0").expect("spent");
        assert_eq!(spent.when_spent, WhenSpent::Backup);
        assert_eq!(
            spent.detail(),
            "budget wwan*: 150.8 KiB of 150.8 KiB used this month, resets 2027-01-01 00:00 UTC"
        );
        assert!(matches!(m.poll_event(), Some(MeterEvent::Spent { .. })));
        assert!(m.spent_on("eth0").is_none(), "not metered");
        assert_eq!(m.next_rollover(), Some(utc("2027-01-01 00:00")));
        assert!(!m.roll(utc("2026-12-31 23:59")));
        assert!(m.roll(utc("2027-01-01 00:00")));
        assert!(m.spent_on("wwan0").is_none(), "a new period");
        assert_eq!(used(&m), 0);
        assert_eq!(
            m.poll_event(),
            Some(MeterEvent::RolledOver {
                budget: "wwan*".into(),
                used: wire(140_000),
                next_reset: "2027-02-01 00:00 UTC".into()
            })
        );
        // The subflow goes on being counted from where it was.
        observe(
            &mut m,
            "2027-01-01 00:01",
            &conn(1, &[(w, carried(154_000))]),
        );
        assert_eq!(used(&m), wire(154_000) - wire(140_000));
    }

    #[test]
    fn a_restart_continues_from_the_saved_state() {
        let b = monthly(1 << 30);
        let mut m = meter(std::slice::from_ref(&b), None, "2026-12-10 10:00");
        let w = key(WWAN, 40000);
        observe(
            &mut m,
            "2026-12-10 10:00",
            &conn(1, &[(w, carried(140_000))]),
        );
        let saved = m.save(utc("2026-12-10 10:00"));
        // Through the state file's text, as a restart reads it.
        let text = serde_json::to_string(&saved).unwrap();
        let saved: SavedState = serde_json::from_str(&text).unwrap();

        // The daemon was down while the subflow carried 14 000 more bytes; the new one
        // adopts it and counts those, and nothing twice.
        let mut m = meter(
            std::slice::from_ref(&b),
            Some(saved.clone()),
            "2026-12-10 10:05",
        );
        assert_eq!(used(&m), wire(140_000));
        assert_eq!(
            m.poll_event(),
            Some(MeterEvent::Restored {
                budget: "wwan*".into(),
                used: wire(140_000)
            })
        );
        observe(
            &mut m,
            "2026-12-10 10:05",
            &conn(1, &[(w, carried(154_000))]),
        );
        assert_eq!(used(&m), wire(154_000));

        // Saved in a period that is over by the time the daemon starts: from 0.
        let m = meter(
            std::slice::from_ref(&b),
            Some(saved.clone()),
            "2027-01-02 00:00",
        );
        assert_eq!(used(&m), 0);
        // A clock that is behind the saved period (no time sync yet) does not reset it.
        let m = meter(
            std::slice::from_ref(&b),
            Some(saved.clone()),
            "1970-01-01 00:10",
        );
        assert_eq!(used(&m), wire(140_000));
        assert_eq!(m.next_rollover(), Some(utc("2027-01-01 00:00")));
        // A budget of other interfaces does not take it.
        let other = budget(&["usb*"], 1 << 30, Period::Month, "day 1 00:00", Zone::Utc);
        let m = meter(&[other], Some(saved), "2026-12-10 10:05");
        assert_eq!(used(&m), 0);
    }

    #[test]
    fn a_reload_changing_the_budget_keeps_what_was_used() {
        let w = key(WWAN, 40000);
        let mut m = meter(&[monthly(1 << 30)], None, "2026-12-10 10:00");
        observe(
            &mut m,
            "2026-12-10 10:00",
            &conn(1, &[(w, carried(140_000))]),
        );
        assert!(m.spent_on("wwan0").is_none());
        // Lowered below what was used: spent at once. Another reset day: the use stays.
        let mut lower = budget(&["wwan*"], 1000, Period::Month, "day 15 00:00", Zone::Utc);
        m.reconfigure(std::slice::from_ref(&lower), utc("2026-12-10 10:01"));
        assert_eq!(used(&m), wire(140_000));
        assert!(m.spent_on("wwan0").is_some());
        assert_eq!(m.usage()[0].resets, "2026-12-15 00:00 UTC");
        // Raised again: not spent; the subflow goes on counting from where it was.
        lower.budget = ByteSize(1 << 30);
        m.reconfigure(&[lower], utc("2026-12-10 10:02"));
        assert!(m.spent_on("wwan0").is_none());
        observe(
            &mut m,
            "2026-12-10 10:03",
            &conn(1, &[(w, carried(154_000))]),
        );
        assert_eq!(used(&m), wire(154_000));
        // The budget removed: nothing is metered.
        m.reconfigure(&[], utc("2026-12-10 10:04"));
        assert!(!m.is_active());
        assert!(m.spent_on("wwan0").is_none());
    }

    #[test]
    fn syn_sent_and_unsampled_subflows_are_not_counted() {
        let mut m = meter(&[monthly(1 << 30)], None, "2026-12-01 10:00");
        let mut s = carried(14_000);
        s.tcp_state = TCP_SYN_SENT;
        let mut c = Connection::new(Token(3), ConnTimers::default());
        c.handle_samples(Instant::now(), &[(key(WWAN, 1), s)]);
        observe(&mut m, "2026-12-01 10:00", &c);
        assert_eq!(used(&m), 0);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(10 << 30), "10.0 GiB");
        assert_eq!(human(1536), "1.5 KiB");
    }
}
