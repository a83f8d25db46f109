//! In-process counters (events by type, commands by type and errno, overruns, resyncs). Cheap to
//! clone and update from any actor; read by the status/metrics front ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Shared counters.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<Counters>>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events received, by type name.
    pub events: BTreeMap<String, u64>,
    /// Commands, by (type name, errno; 0 = success).
    pub commands: BTreeMap<(String, i32), u64>,
    /// Event socket overruns.
    pub overruns: u64,
    /// Resyncs from sock_diag.
    pub resyncs: u64,
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Counters)) {
        // A poisoned lock only means another thread panicked mid-update; counters stay usable.
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g);
    }
    /// Count an event.
    pub fn event(&self, name: &str) {
        self.with(|c| *c.events.entry(name.to_string()).or_default() += 1);
    }
    /// Count a command result.
    pub fn command(&self, name: &str, errno: i32) {
        self.with(|c| *c.commands.entry((name.to_string(), errno)).or_default() += 1);
    }
    /// Count an overrun.
    pub fn overrun(&self) {
        self.with(|c| c.overruns += 1);
    }
    /// Count a resync.
    pub fn resync(&self) {
        self.with(|c| c.resyncs += 1);
    }
    /// A copy of the counters.
    pub fn snapshot(&self) -> Counters {
        let mut out = Counters::default();
        self.with(|c| out = c.clone());
        out
    }
}
