//! The wall clock and the host's time zone, for the metered budgets' calendar: the one place
//! the daemon reads either (the meter, `core/budget.rs`, takes both as arguments). The local
//! zone is chrono's reading of `TZ` or `/etc/localtime`, daylight saving included.

use chrono::{DateTime, Offset, TimeZone, Utc};
use mptcp_pmd_config::Zone;

use crate::core::budget::Zones;

/// The system's zones.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemZones;

impl Zones for SystemZones {
    fn offset_s(&self, zone: Zone, at: DateTime<Utc>) -> i32 {
        match zone {
            Zone::Utc => 0,
            Zone::Local => chrono::Local
                .offset_from_utc_datetime(&at.naive_utc())
                .fix()
                .local_minus_utc(),
        }
    }
}

/// The wall-clock time now.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}
