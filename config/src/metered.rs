//! The `metered:` section: byte budgets per interface glob and period, and where their use is
//! kept across restarts. Like every core section it is one serde struct holding its keys,
//! defaults, checks and docs ([`MeteredConfig`], [`Budget`]); the daemon's pure meter
//! (`daemon/src/core/budget.rs`) does the counting and the calendar.
//!
//! ```yaml
//! metered:
//!   state_directory: /var/lib/mptcp-pmd
//!   save_interval_s: 60
//!   budgets:
//!     - interfaces: ["wwan*"]
//!       budget: 10GiB          # or a plain number of bytes
//!       period: month          # day | month
//!       reset: "day 1 00:00"   # month: "day D HH:MM"; day: "HH:MM"
//!       timezone: local        # local | utc
//!       when_spent: backup     # backup | close
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use mptcp_pmd_policies::addrmatch::glob_match;
use mptcp_pmd_policies::params::{self, Keys, Node, ParamError, Scalar, Value};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sections::{interface_patterns, Section};

/// A number of bytes: a plain integer in the file, or a number with a unit (`10GiB`,
/// `500 MB`, `1.5GiB`). Units: `B`; `kB`/`KB`, `MB`, `GB`, `TB` (powers of 1000); `KiB`,
/// `MiB`, `GiB`, `TiB` (powers of 1024). Displays as the plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// The largest budget: 2^62 bytes (4 EiB), far beyond any contract, and room to add to.
const MAX_BYTES: u64 = 1 << 62;

const UNITS: [(&str, u64); 10] = [
    ("B", 1),
    ("kB", 1000),
    ("KB", 1000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "invalid byte size {s:?}: expected a number of bytes, or a number and a unit ({}) such as \"10GiB\"",
                UNITS.map(|u| u.0).join(", ")
            )
        };
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim();
        let mult = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(u, _)| *u == unit)
                .map(|(_, m)| *m)
                .ok_or_else(bad)?
        };
        if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
            return Err(bad());
        }
        let bytes = if num.contains('.') {
            let x: f64 = num.parse().map_err(|_| bad())?;
            let b = (x * mult as f64).round();
            if !(b.is_finite() && b >= 0.0 && b <= MAX_BYTES as f64) {
                return Err(too_large(s));
            }
            b as u64
        } else {
            let n: u64 = num.parse().map_err(|_| too_large(s))?;
            n.checked_mul(mult).ok_or_else(|| too_large(s))?
        };
        ByteSize::checked(bytes).map_err(|e| format!("invalid byte size {s:?}: {e}"))
    }
}

fn too_large(s: &str) -> String {
    format!("invalid byte size {s:?}: at most {MAX_BYTES} bytes (4 EiB)")
}

impl ByteSize {
    fn checked(bytes: u64) -> Result<ByteSize, String> {
        match bytes {
            0 => Err("a budget of 0 bytes is spent before it starts; give at least 1".to_owned()),
            b if b > MAX_BYTES => Err(format!("at most {MAX_BYTES} bytes (4 EiB)")),
            b => Ok(ByteSize(b)),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Scalar::deserialize(d)? {
            Scalar::Int(n) => u64::try_from(n)
                .map_err(|_| "must not be negative".to_owned())
                .and_then(ByteSize::checked)
                .map_err(|e| params::refuse(format!("invalid {} {n}: {e}", params::KEY))),
            Scalar::Str(s) => s
                .parse()
                .map_err(|e: String| params::refuse(e.replacen("byte size", params::KEY, 1))),
            other => Err(params::refuse(format!(
                "invalid {} {other}: expected a number of bytes, or a number and a unit such as \"10GiB\"",
                params::KEY
            ))),
        }
    }
}

/// How long a budget lasts before it starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// `day`: resets every day at `reset` (`"HH:MM"`).
    Day,
    /// `month`: resets every month at `reset` (`"day D HH:MM"`).
    Month,
}

impl Period {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The reset when none is written: midnight, on the first of the month for `month`.
    pub fn default_reset(self) -> ResetAt {
        ResetAt {
            day: (self == Period::Month).then_some(1),
            hour: 0,
            minute: 0,
        }
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(Period::Day),
            "month" => Ok(Period::Month),
            _ => Err(format!("unknown period {s:?}, expected one of day, month")),
        }
    }
}

/// Which clock the reset time is read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Zone {
    /// `local`: the host's time zone (`/etc/localtime`, or `TZ`), daylight saving included:
    /// what a carrier's billing day usually follows.
    #[default]
    Local,
    /// `utc`.
    Utc,
}

impl Zone {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Local => "local",
            Zone::Utc => "utc",
        }
    }
}

impl FromStr for Zone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(Zone::Local),
            "utc" | "UTC" => Ok(Zone::Utc),
            _ => Err(format!(
                "unknown timezone {s:?}, expected one of local, utc"
            )),
        }
    }
}

/// What happens to the subflows of an interface whose budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WhenSpent {
    /// `backup`: they get the backup flag (the kernel sends on them only when no other
    /// subflow can), new ones are opened as backup.
    #[default]
    Backup,
    /// `close`: they are closed and none is opened, except a connection's last subflow, which
    /// is made backup instead.
    Close,
}

impl WhenSpent {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            WhenSpent::Backup => "backup",
            WhenSpent::Close => "close",
        }
    }
}

impl FromStr for WhenSpent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "backup" => Ok(WhenSpent::Backup),
            "close" => Ok(WhenSpent::Close),
            _ => Err(format!(
                "unknown when_spent {s:?}, expected one of backup, close"
            )),
        }
    }
}

/// When a period starts: `"HH:MM"` each day, or `"day D HH:MM"` each month (D 1..=31; a
/// month shorter than D resets on its last day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResetAt {
    /// Day of the month (monthly periods only).
    pub day: Option<u8>,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
}

impl FromStr for ResetAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("invalid reset {s:?}: expected \"HH:MM\" (daily) or \"day D HH:MM\" (monthly, D 1-31), e.g. \"day 1 00:00\"")
        };
        let words: Vec<&str> = s.split_whitespace().collect();
        let (day, time) = match words.as_slice() {
            [time] => (None, *time),
            ["day", d, time] => {
                let d: u8 = d.parse().map_err(|_| bad())?;
                if !(1..=31).contains(&d) {
                    return Err(bad());
                }
                (Some(d), *time)
            }
            _ => return Err(bad()),
        };
        let (h, m) = time.split_once(':').ok_or_else(bad)?;
        let two = |x: &str, max: u8| -> Result<u8, String> {
            if x.len() != 2 || !x.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            x.parse::<u8>().ok().filter(|v| *v <= max).ok_or_else(bad)
        };
        Ok(ResetAt {
            day,
            hour: two(h, 23)?,
            minute: two(m, 59)?,
        })
    }
}

impl fmt::Display for ResetAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = self.day {
            write!(f, "day {d} ")?;
        }
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// The YAML spelling of a type that parses from text and displays back the same.
macro_rules! spelled {
    ($t:ty, $show:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let show: fn(&$t) -> String = $show;
                s.serialize_str(&show(self))
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(params::refuse)
            }
        }
    };
}

spelled!(Period, |p| p.as_str().to_owned());
spelled!(Zone, |z| z.as_str().to_owned());
spelled!(WhenSpent, |w| w.as_str().to_owned());
spelled!(ResetAt, |r| r.to_string());

/// One entry of `metered.budgets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WrittenBudget")]
pub struct Budget {
    /// Interface name globs this budget counts (required, non-empty). An interface matching
    /// several budgets counts against the first.
    pub interfaces: Vec<String>,
    /// Bytes allowed per period (required): the IP bytes of the MPTCP subflows on these
    /// interfaces, both directions.
    pub budget: ByteSize,
    /// `day` or `month` (required).
    pub period: Period,
    /// When a period starts; default midnight (`"00:00"`), on the first (`"day 1 00:00"`) for
    /// monthly periods.
    pub reset: ResetAt,
    /// `local` (default) or `utc`.
    pub timezone: Zone,
    /// `backup` (default) or `close`.
    pub when_spent: WhenSpent,
}

/// A budget as written: the reset's default depends on the period.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenBudget {
    #[serde(deserialize_with = "interface_patterns")]
    interfaces: Vec<String>,
    budget: ByteSize,
    period: Period,
    #[serde(default)]
    reset: Option<ResetAt>,
    #[serde(default)]
    timezone: Zone,
    #[serde(default)]
    when_spent: WhenSpent,
}

impl From<WrittenBudget> for Budget {
    fn from(w: WrittenBudget) -> Budget {
        Budget {
            reset: w.reset.unwrap_or_else(|| w.period.default_reset()),
            interfaces: w.interfaces,
            budget: w.budget,
            period: w.period,
            timezone: w.timezone,
            when_spent: w.when_spent,
        }
    }
}

impl Budget {
    /// True if the budget counts interface `name`'s bytes (it may still be an earlier
    /// budget's: see [`MeteredConfig::budget_of`]).
    pub fn matches(&self, name: &str) -> bool {
        self.interfaces.iter().any(|p| glob_match(p, name))
    }

    /// How the budget is named in logs, status and metrics: its globs, comma-separated. Also
    /// its identity in the state file: a budget keeps its use across a reload or restart
    /// as long as its `interfaces` stay the same.
    pub fn name(&self) -> String {
        self.interfaces.join(",")
    }
}

/// An absolute path.
fn absolute_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let p = String::deserialize(d)?;
    if !p.starts_with('/') || p.contains('\0') {
        return Err(params::refuse(format!(
            "invalid {} {p:?}: expected an absolute path",
            params::KEY
        )));
    }
    Ok(PathBuf::from(p))
}

/// `metered:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeteredConfig {
    /// Where the use of every budget is kept across restarts (absolute path; the daemon
    /// creates it if missing). Default `/var/lib/mptcp-pmd` (the systemd unit's
    /// `StateDirectory=`). Only used when `budgets` is not empty.
    #[serde(deserialize_with = "absolute_path")]
    pub state_directory: PathBuf,
    /// How often the state file is written while bytes are counted, s. 1..=86400, default 60.
    /// It is also written at a clean stop, a reload, a rollover and when a budget is spent; a
    /// crash loses at most this long of counting.
    #[serde(deserialize_with = "params::int::<_, _, 1, 86400>")]
    pub save_interval_s: u32,
    /// The budgets. Default []: nothing is metered.
    pub budgets: Vec<Budget>,
}

impl Default for MeteredConfig {
    fn default() -> Self {
        MeteredConfig {
            state_directory: PathBuf::from("/var/lib/mptcp-pmd"),
            save_interval_s: 60,
            budgets: Vec::new(),
        }
    }
}

/// Where element `i` of `budgets` is, and its key `field` there.
fn budget_at(written: &Node, i: usize, field: &str) -> Option<params::Pos> {
    let Some((_, list)) = written.get("budgets") else {
        return Some(written.at);
    };
    let Value::Seq(items) = &list.value else {
        return Some(list.at);
    };
    let item = items.get(i)?;
    Some(item.get(field).map_or(item.at, |(_, v)| v.at))
}

impl Section for MeteredConfig {
    const KEY: &'static str = "metered";

    /// Refuses a budget without interfaces, a reset that does not fit its period, and two
    /// budgets with the same interfaces (their use could not be told apart in the state file).
    fn validate(&self, written: &Node, keys: &Keys) -> Result<(), ParamError> {
        for (i, b) in self.budgets.iter().enumerate() {
            let err = |field: &str, msg: String| ParamError::Value {
                key: keys.key(&format!("budgets[{i}].{field}")),
                at: budget_at(written, i, field),
                msg,
            };
            if b.interfaces.is_empty() {
                let key = keys.key(&format!("budgets[{i}].interfaces"));
                return Err(err(
                    "interfaces",
                    format!(
                        "{key} is empty: name the interfaces this budget counts, e.g. [\"wwan*\"]"
                    ),
                ));
            }
            {
                let r = b.reset;
                let key = keys.key(&format!("budgets[{i}].reset"));
                match (b.period, r.day) {
                    (Period::Month, None) => {
                        return Err(err(
                            "reset",
                            format!("{key} \"{r}\" has no day, but the period is month: write \"day D {r}\" (D 1-31)"),
                        ))
                    }
                    (Period::Day, Some(_)) => {
                        return Err(err(
                            "reset",
                            format!("{key} \"{r}\" names a day of the month, but the period is day: write only \"HH:MM\""),
                        ))
                    }
                    _ => {}
                }
            }
            if let Some(j) = self.budgets[..i]
                .iter()
                .position(|e| e.interfaces == b.interfaces)
            {
                let key = keys.key(&format!("budgets[{i}].interfaces"));
                return Err(err(
                    "interfaces",
                    format!(
                        "{key} are the same as those of {}: a budget is known by its interfaces; merge the two",
                        keys.key(&format!("budgets[{j}]"))
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl MeteredConfig {
    /// The budget that counts interface `name`: the first whose globs match it.
    pub fn budget_of(&self, name: &str) -> Option<(usize, &Budget)> {
        self.budgets
            .iter()
            .enumerate()
            .find(|(_, b)| b.matches(name))
    }

    /// Whether anything is metered.
    pub fn is_active(&self) -> bool {
        !self.budgets.is_empty()
    }

    /// `save_interval_s` as a duration.
    pub fn save_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.save_interval_s.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        let ok = |s: &str| s.parse::<ByteSize>().map(|b| b.0);
        assert_eq!(ok("10GiB"), Ok(10 << 30));
        assert_eq!(ok("10 GiB"), Ok(10 << 30));
        assert_eq!(ok("500MB"), Ok(500_000_000));
        assert_eq!(ok("1.5GiB"), Ok(3 << 29));
        assert_eq!(ok("1234"), Ok(1234));
        assert_eq!(ok("2kB"), Ok(2000));
        assert!(ok("0").is_err());
        assert!(ok("10 gigabytes").is_err());
        assert!(ok("GiB").is_err());
        assert!(ok("1.GiB").is_err());
        assert!(ok("99999999999TiB").is_err());
    }

    #[test]
    fn resets() {
        let r: ResetAt = "day 31 23:59".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.day, r.hour, r.minute), (Some(31), 23, 59));
        assert_eq!(r.to_string(), "day 31 23:59");
        let r: ResetAt = "04:30".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.day, r.hour, r.minute), (None, 4, 30));
        for bad in [
            "day 0 00:00",
            "day 32 00:00",
            "24:00",
            "4:30",
            "day 1",
            "00:60",
            "",
        ] {
            assert!(bad.parse::<ResetAt>().is_err(), "{bad}");
        }
    }
}
