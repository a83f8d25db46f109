//! The policy actor's part that meters interfaces and limits them ([`Metering`]): it drives the
//! pure meter (`core/budget.rs`: counting, periods) with the connections' samples and the wall
//! clock, passes every policy's decisions through the per-interface limits
//! (`core/interface_limits.rs`: spent budgets, subflow caps), logs what happens to the budgets,
//! and saves their state through the state file's writer thread (`process/state_file.rs`): every
//! `metered.save_interval_s` while something changed, when a budget is spent or rolls over, at
//! a reload and at a clean stop. A plain struct the policy actor owns (every decision passes
//! there, one at a time), so the limits see the meter as it is at that decision.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mptcp_pmd_config::{AddressFilter, Config, MeteredConfig};
use mptcp_pmd_policies::conn::Connection;
use mptcp_pmd_policies::policy::{Action, Decision};
use mptcp_pmd_policies::{LocalAddr, Token};
use slog::{debug, error, info, warn, Logger};

use crate::core::budget::{human, BudgetUse, Meter, MeterEvent, SavedState};
use crate::core::interface_limits::{self, Limits};
use crate::process::state_file::{Loaded, StateError, StateFile, StateWriter};
use crate::process::wallclock::{self, SystemZones};

/// The state file as found at start-up (before any thread exists; see `service.rs`).
#[derive(Debug)]
pub struct Claimed {
    /// The file, its directory created and writable.
    pub file: StateFile,
    /// What it held.
    pub saved: Option<SavedState>,
}

/// Make the state directory of `config` usable and read its file, logging what was found. A
/// directory that cannot be created or written is an error (the caller decides what it means:
/// the daemon refuses to start); a file that cannot be used is logged and counting starts
/// from zero.
pub fn claim(config: &MeteredConfig, log: &Logger) -> Result<Claimed, StateError> {
    let file = StateFile::new(&config.state_directory);
    file.prepare()?;
    file.check_writable()?;
    let saved = match file.load() {
        Loaded::Found(s) => Some(s),
        Loaded::Missing => {
            info!(log, "no metered state file yet: budgets count from zero"; "path" => %file.path().display());
            None
        }
        Loaded::Corrupt { why, moved_to } => {
            error!(log, "the metered state file cannot be used: budgets count from zero";
                "path" => %file.path().display(), "why" => why,
                "moved_to" => moved_to.map_or_else(|| "(could not be moved)".to_owned(), |p| p.display().to_string()));
            None
        }
    };
    Ok(Claimed { file, saved })
}

/// Budgets, caps and the state file, for the policy actor.
pub struct Metering {
    meter: Meter,
    caps: AddressFilter,
    config: MeteredConfig,
    writer: Option<StateWriter>,
    last_save: Instant,
    log: Logger,
}

impl std::fmt::Debug for Metering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metering")
            .field("meter", &self.meter)
            .finish_non_exhaustive()
    }
}

/// The interface of local address `addr` among `locals`.
fn interface_of(locals: &[LocalAddr], addr: IpAddr) -> Option<String> {
    let addr = addr.to_canonical();
    locals
        .iter()
        .find(|l| l.addr.to_canonical() == addr)
        .map(|l| l.if_name.clone())
}

impl Metering {
    /// The metering of `config`, continuing from `claimed` (the state file found at start-up;
    /// `None` when nothing is metered). Starts the writer thread: call after the privilege
    /// drop.
    pub fn new(config: &Config, claimed: Option<Claimed>, log: Logger) -> Metering {
        let now = wallclock::now();
        let (file, saved) = match claimed {
            Some(c) => (Some(c.file), c.saved),
            None => (None, None),
        };
        let meter = Meter::new(Box::new(SystemZones), &config.metered.budgets, saved, now);
        let mut m = Metering {
            meter,
            caps: config.addresses.clone(),
            config: config.metered.clone(),
            writer: None,
            last_save: Instant::now(),
            log,
        };
        if let Some(f) = file {
            m.writer = m.start_writer(f);
        }
        for b in m.meter.usage() {
            info!(m.log, "metered budget"; "budget" => &b.name, "used" => human(b.used), "of" => human(b.budget),
                "period" => &b.period, "since" => &b.since, "resets" => &b.resets, "when_spent" => &b.when_spent);
        }
        m.log_events();
        m
    }

    fn start_writer(&self, file: StateFile) -> Option<StateWriter> {
        match StateWriter::start(file, self.log.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                error!(self.log, "cannot start the state writer thread: budgets are counted but not saved"; "error" => %e);
                None
            }
        }
    }

    /// Whether anything is metered (the actor's save timer runs only then).
    pub fn is_active(&self) -> bool {
        self.meter.is_active()
    }

    /// Count what `conn`'s subflows carried (from the samples it holds), rolling periods over
    /// first: before its policy decides.
    pub fn observe(&mut self, conn: &Connection, locals: &[LocalAddr]) {
        if !self.meter.is_active() {
            return;
        }
        let now = wallclock::now();
        let rolled = self.meter.roll(now);
        self.meter
            .observe(now, conn.token(), conn.subflows(), &|a| {
                interface_of(locals, a)
            });
        if self.log_events() || rolled {
            self.save(now, false);
        }
    }

    /// The policy's `decisions` for `conn`, after the per-interface limits.
    pub fn limit(
        &mut self,
        conn: &Connection,
        locals: &[LocalAddr],
        decisions: Vec<Decision>,
    ) -> Vec<Decision> {
        let limits = Limits {
            locals,
            meter: &self.meter,
            caps: &self.caps,
        };
        let limited = interface_limits::apply(conn, &limits, decisions);
        if limited.refused > 0 {
            debug!(self.log, "decisions refused by the interface limits"; "token" => %conn.token(), "refused" => limited.refused);
        }
        // Which paths a budget flagged, for a restart to know (the state file keeps them).
        for d in &limited.out {
            let code = d.reason.code;
            match &d.action {
                Action::SetBackup { key, backup } if code == interface_limits::BUDGET => {
                    self.meter.flag((key.local.ip(), key.remote), *backup);
                }
                Action::SetBackup { key, .. } if code == interface_limits::BUDGET_RESTORED => {
                    self.meter.flag((key.local.ip(), key.remote), false);
                }
                Action::Open { local, remote, .. } if code == interface_limits::BUDGET => {
                    self.meter.flag((*local, *remote), true);
                }
                _ => {}
            }
        }
        limited.out
    }

    /// The usable addresses changed.
    pub fn locals_changed(&mut self) {
        self.meter.locals_changed();
    }

    /// A connection is gone.
    pub fn gone(&mut self, token: Token) {
        self.meter.gone(token);
    }

    /// Once a second while active: roll periods over, log, save when due.
    pub fn tick(&mut self) {
        let now = wallclock::now();
        let rolled = self.meter.roll(now);
        let logged = self.log_events();
        let due = self.last_save.elapsed() >= self.config.save_interval();
        if rolled || logged || (due && self.meter.is_dirty()) {
            self.save(now, false);
        }
    }

    /// A reload: the new budgets, caps and state directory.
    pub fn reload(&mut self, config: &Config) {
        let now = wallclock::now();
        let was_active = self.meter.is_active();
        self.caps = config.addresses.clone();
        let new = &config.metered;
        let dir_changed =
            self.writer.as_ref().map(|w| w.file().dir()) != Some(new.state_directory.as_path());
        let mut rebuilt = false;
        if new.is_active() && dir_changed {
            match claim(new, &self.log) {
                Ok(c) => {
                    if !was_active {
                        // Nothing counted in memory: what the file holds is the truth.
                        self.meter = Meter::new(Box::new(SystemZones), &new.budgets, c.saved, now);
                        rebuilt = true;
                    }
                    self.writer = self.start_writer(c.file);
                }
                Err(e) => {
                    error!(self.log, "reload: cannot use metered.state_directory: budgets are counted but not saved"; "error" => %e);
                    self.writer = None;
                }
            }
        }
        if !rebuilt {
            self.meter.reconfigure(&new.budgets, now);
        }
        self.config = new.clone();
        self.log_events();
        if self.meter.is_active() || was_active {
            self.save(now, true);
        }
    }

    /// A clean stop: write the state and wait for it.
    pub fn stop(&mut self) {
        if self.meter.is_active() {
            self.save(wallclock::now(), true);
        }
    }

    /// Every budget's use (status, addresses, metrics).
    pub fn usage(&self) -> Vec<BudgetUse> {
        self.meter.usage()
    }

    /// Log the meter's events; whether there were any.
    fn log_events(&mut self) -> bool {
        let mut any = false;
        while let Some(e) = self.meter.poll_event() {
            any = true;
            match e {
                MeterEvent::Spent { budget, detail } => {
                    warn!(self.log, "metered budget spent: its interfaces' subflows are limited until the period rolls over"; "budget" => budget, "why" => detail)
                }
                MeterEvent::RolledOver {
                    budget,
                    used,
                    next_reset,
                } => {
                    info!(self.log, "metered budget rolled over: counting from zero"; "budget" => budget, "used_last_period" => human(used), "next_reset" => next_reset)
                }
                MeterEvent::Restored { budget, used } => {
                    info!(self.log, "metered budget continues from the saved state"; "budget" => budget, "used" => human(used))
                }
                MeterEvent::Expired { budget, used } => {
                    info!(self.log, "metered budget's saved period is over: counting from zero"; "budget" => budget, "used_saved_period" => human(used))
                }
            }
        }
        any
    }

    /// Write the state: queued for the writer thread, or (`wait`) written before returning.
    fn save(&mut self, now: DateTime<Utc>, wait: bool) {
        let Some(w) = &self.writer else { return };
        let state = self.meter.save(now);
        let bytes = match serde_json::to_vec(&state) {
            Ok(b) => b,
            Err(e) => {
                error!(self.log, "cannot encode the metered state"; "error" => %e);
                return;
            }
        };
        let written = if wait {
            match w.write_now(bytes) {
                Ok(()) => {
                    info!(self.log, "metered state saved"; "path" => %w.file().path().display(),
                        "used" => state.budgets.iter().map(|b| format!("{}={}", b.name, b.used)).collect::<Vec<_>>().join(" "));
                    true
                }
                Err(e) => {
                    error!(self.log, "cannot save the metered state"; "error" => %e);
                    false
                }
            }
        } else {
            // A write still waiting: this state goes with the next save.
            w.submit(bytes)
        };
        if written {
            self.meter.saved();
            self.last_save = Instant::now();
        }
    }
}

/// How often the policy actor ticks [`Metering::tick`] while budgets are configured.
pub const TICK: Duration = Duration::from_secs(1);
