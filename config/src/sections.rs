//! The core sections of the file, one struct each: `addresses`, `kernel`, `poll`, `subflow`,
//! `log`, `control`, `metrics`. Each struct is the one place its keys are written: the field
//! is the key, its comment is the key's documentation, `Default` holds the defaults (what
//! `packaging/mptcp-pm.yaml` spells out), the serde attributes hold each key's check (a range
//! for [`params::int`], a parser with its own message for text) and [`Section::validate`] the
//! checks across keys. They are read exactly like the policies' sections: deserialized from the
//! located tree with `params::from_node`, so every error says `file:line:col` and names the key.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use mptcp_pmd_policies::addrmatch::{glob_match, has_wildcard, interface_glob_problem};
use mptcp_pmd_policies::params::{self, Keys, Node, ParamError, Value, KEY};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A core section: its key at the top level of the file and its checks across keys.
pub(crate) trait Section: DeserializeOwned + Serialize + Default {
    /// The section's key in the file.
    const KEY: &'static str;

    /// Checks across the section's keys, after each passed its own. `written` is the section
    /// as the file has it, to point at the values concerned; `keys` spells full key names.
    fn validate(&self, _written: &Node, _keys: &Keys) -> Result<(), ParamError> {
        Ok(())
    }
}

/// An interface name or glob (`*`, `?`) that can match a valid Linux interface name, refused
/// with `invalid interface pattern "...": why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InterfacePattern(pub String);

impl<'de> Deserialize<'de> for InterfacePattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = String::deserialize(d)?;
        match interface_glob_problem(&p) {
            Some(why) => Err(params::refuse(format!(
                "invalid interface pattern {p:?}: {why}"
            ))),
            None => Ok(InterfacePattern(p)),
        }
    }
}

pub(crate) fn interface_patterns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = Vec::<InterfacePattern>::deserialize(d)?;
    Ok(v.into_iter().map(|p| p.0).collect())
}

/// Where element `i` of list `field` is in `written` (the section's own position if the list
/// is not written there).
fn element_at(written: &Node, field: &str, i: usize) -> params::Pos {
    match written.get(field).map(|(_, v)| &v.value) {
        Some(Value::Seq(items)) => items.get(i).map_or(written.at, |n| n.at),
        _ => written.at,
    }
}

/// `addresses:` section: which local addresses and interfaces subflows may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AddressFilter {
    /// Never use loopback addresses (127.0.0.0/8, ::1). Default true.
    #[serde(deserialize_with = "params::boolean")]
    pub skip_loopback: bool,
    /// Never use link-local addresses (169.254.0.0/16, fe80::/10). Default true.
    #[serde(deserialize_with = "params::boolean")]
    pub skip_link_local: bool,
    /// Glob patterns (`*`, `?`); if non-empty, only matching interfaces are used. Default [].
    #[serde(deserialize_with = "interface_patterns")]
    pub include_interfaces: Vec<String>,
    /// Glob patterns of interfaces never used, e.g. `docker*`. Wins over include. Default [].
    #[serde(deserialize_with = "interface_patterns")]
    pub exclude_interfaces: Vec<String>,
    /// Glob patterns; subflows from these interfaces get the backup flag. Default []. An
    /// interface named exactly here must not be excluded.
    #[serde(deserialize_with = "interface_patterns")]
    pub backup_interfaces: Vec<String>,
    /// Caps on a connection's live subflows per interface: the first entry whose globs match
    /// an interface applies there, whatever the policy asks. Default [] (no cap).
    pub max_subflows_per_interface: Vec<InterfaceCap>,
}

/// One entry of `addresses.max_subflows_per_interface`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceCap {
    /// Interface name globs (`["*"]`: every interface).
    #[serde(deserialize_with = "interface_patterns")]
    pub interfaces: Vec<String>,
    /// Live subflows (pending, requested or established) a connection may have on one such
    /// interface, the initial one included. 1..=64.
    #[serde(deserialize_with = "params::int::<_, _, 1, 64>")]
    pub max: u32,
}

impl Default for AddressFilter {
    fn default() -> Self {
        AddressFilter {
            skip_loopback: true,
            skip_link_local: true,
            include_interfaces: Vec::new(),
            exclude_interfaces: Vec::new(),
            backup_interfaces: Vec::new(),
            max_subflows_per_interface: Vec::new(),
        }
    }
}

impl Section for AddressFilter {
    const KEY: &'static str = "addresses";

    /// Refuses lists that contradict each other: an interface named exactly in
    /// `include_interfaces` or `backup_interfaces` that `exclude_interfaces` excludes (exclude
    /// wins, so the other list's entry could never take effect).
    fn validate(&self, written: &Node, keys: &Keys) -> Result<(), ParamError> {
        let excluded = |name: &str| {
            self.exclude_interfaces
                .iter()
                .enumerate()
                .find(|(_, p)| glob_match(p, name))
        };
        let lists = [
            (
                "include_interfaces",
                &self.include_interfaces,
                "exclude wins, so it is never used",
            ),
            (
                "backup_interfaces",
                &self.backup_interfaces,
                "an excluded interface gets no subflows, so it cannot carry backup ones",
            ),
        ];
        for (field, list, why) in lists {
            for (i, name) in list.iter().enumerate() {
                if has_wildcard(name) {
                    continue;
                }
                if let Some((j, pattern)) = excluded(name) {
                    let key = keys.key(&format!("{field}[{i}]"));
                    let by = keys.key(&format!("exclude_interfaces[{j}]"));
                    return Err(ParamError::Value {
                        msg: format!(
                            "{key} {name:?} is excluded by {by} {pattern:?}: {why}; remove it from one of the lists"
                        ),
                        key,
                        at: Some(element_at(written, field, i)),
                    });
                }
            }
        }
        if let Some(i) = self
            .max_subflows_per_interface
            .iter()
            .position(|c| c.interfaces.is_empty())
        {
            let key = keys.key(&format!("max_subflows_per_interface[{i}].interfaces"));
            return Err(ParamError::Value {
                msg: format!(
                    "{key} is empty: name the interfaces the cap applies to (\"*\" for all)"
                ),
                key,
                at: Some(element_at(written, "max_subflows_per_interface", i)),
            });
        }
        Ok(())
    }
}

impl AddressFilter {
    /// True if interface `name` passes the include and exclude lists.
    pub fn interface_allowed(&self, name: &str) -> bool {
        let included = self.include_interfaces.is_empty()
            || self.include_interfaces.iter().any(|p| glob_match(p, name));
        included && !self.exclude_interfaces.iter().any(|p| glob_match(p, name))
    }

    /// The cap on a connection's live subflows on interface `name`, if any (the first entry
    /// of `max_subflows_per_interface` that matches it).
    pub fn subflow_cap(&self, name: &str) -> Option<u32> {
        self.max_subflows_per_interface
            .iter()
            .find(|c| c.interfaces.iter().any(|p| glob_match(p, name)))
            .map(|c| c.max)
    }

    /// True if subflows from interface `name` should carry the backup flag.
    pub fn is_backup(&self, name: &str) -> bool {
        self.backup_interfaces.iter().any(|p| glob_match(p, name))
    }

    /// True if `addr` passes the loopback and link-local filters.
    pub fn address_allowed(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        if self.skip_loopback && addr.is_loopback() {
            return false;
        }
        let link_local = match addr {
            IpAddr::V4(a) => a.is_link_local(),
            // fe80::/10
            IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
        };
        !(self.skip_link_local && link_local)
    }

    /// Both filters: the address may be used on this interface.
    pub fn allows(&self, interface: &str, addr: IpAddr) -> bool {
        self.interface_allowed(interface) && self.address_allowed(addr)
    }
}

/// `kernel:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KernelConfig {
    /// Switch this network namespace to the userspace path manager at start
    /// (`net.mptcp.path_manager=userspace`). Default true.
    #[serde(deserialize_with = "params::boolean")]
    pub set_userspace_pm: bool,
    /// Receive buffer (bytes) for the genl events socket. 4096..=2147483647 (SO_RCVBUF takes
    /// an int), default 4 MiB.
    #[serde(deserialize_with = "params::int::<_, _, 4096, 2147483647>")]
    pub events_rcvbuf: u32,
    /// Scheduling priority (nice value) the daemon gives itself at start, while it still may
    /// (CAP_SYS_NICE). -20..=19, default -20: joins are created from the daemon's thread, so
    /// on a host whose CPUs are busy with the applications the path manager serves, a
    /// normal-priority daemon waits for a time slice before each connection gets its subflows
    /// (BENCHMARKS.md, churn: -20 brings the join p50 within 2 x the in-kernel PM's, -10 did
    /// not). 0 leaves the priority alone.
    #[serde(deserialize_with = "params::int::<_, _, -20, 19>")]
    pub nice: i8,
    /// SCHED_FIFO priority (1..=99) for the threads that handle events and send commands; 0
    /// (default) keeps the normal scheduler. Under heavy CPU contention it brings join latency
    /// close to the in-kernel PM's (whose joins run in kernel context). The sock_diag thread
    /// stays on the normal scheduler.
    #[serde(deserialize_with = "params::int::<_, _, 0, 99>")]
    pub realtime_priority: u8,
    /// On a clean stop (SIGTERM/SIGINT), put back the path manager the namespace had before the
    /// daemon selected the userspace one (only if the daemon switched it). Default false: the
    /// namespace stays on the userspace PM, whose connections then get no path management
    /// until a daemon runs again, rather than switch under them.
    #[serde(deserialize_with = "params::boolean")]
    pub restore_path_manager_on_exit: bool,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            set_userspace_pm: true,
            events_rcvbuf: 4 * 1024 * 1024,
            nice: -20,
            realtime_priority: 0,
            restore_path_manager_on_exit: false,
        }
    }
}

impl Section for KernelConfig {
    const KEY: &'static str = "kernel";
}

/// `poll:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollConfig {
    /// sock_diag poll period while connections exist, ms. 10..=3600000, default 1000.
    #[serde(deserialize_with = "params::int::<_, _, 10, 3_600_000>")]
    pub interval_ms: u32,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig { interval_ms: 1000 }
    }
}

impl Section for PollConfig {
    const KEY: &'static str = "poll";
}

impl PollConfig {
    /// `interval_ms` as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.into())
    }
}

/// `subflow:` section: retry behaviour for subflow creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubflowConfig {
    /// A requested subflow that neither establishes nor fails within this many ms is
    /// treated as failed and retried. 100..=600000, default 5000.
    #[serde(deserialize_with = "params::int::<_, _, 100, 600_000>")]
    pub request_timeout_ms: u32,
    /// First retry delay, ms; doubles per failure. 1..=3600000, default 500.
    #[serde(deserialize_with = "params::int::<_, _, 1, 3_600_000>")]
    pub backoff_initial_ms: u32,
    /// Retry delay cap, ms. `backoff_initial_ms`..=3600000, default 30000.
    #[serde(deserialize_with = "params::int::<_, _, 1, 3_600_000>")]
    pub backoff_max_ms: u32,
    /// Consecutive failures of one path before giving up until its address changes.
    /// 0..=1000 (0: never retry), default 6.
    #[serde(deserialize_with = "params::int::<_, _, 0, 1000>")]
    pub max_retries: u32,
}

impl Default for SubflowConfig {
    fn default() -> Self {
        SubflowConfig {
            request_timeout_ms: 5000,
            backoff_initial_ms: 500,
            backoff_max_ms: 30_000,
            max_retries: 6,
        }
    }
}

impl Section for SubflowConfig {
    const KEY: &'static str = "subflow";

    fn validate(&self, _written: &Node, keys: &Keys) -> Result<(), ParamError> {
        if self.backoff_max_ms < self.backoff_initial_ms {
            return Err(ParamError::check(
                &["backoff_max_ms", "backoff_initial_ms"],
                format!(
                    "{} ({}) must not be less than {} ({})",
                    keys.key("backoff_max_ms"),
                    self.backoff_max_ms,
                    keys.key("backoff_initial_ms"),
                    self.backoff_initial_ms
                ),
            ));
        }
        Ok(())
    }
}

impl SubflowConfig {
    /// `request_timeout_ms` as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.into())
    }
    /// `backoff_initial_ms` as a duration.
    pub fn backoff_initial(&self) -> Duration {
        Duration::from_millis(self.backoff_initial_ms.into())
    }
    /// `backoff_max_ms` as a duration.
    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.backoff_max_ms.into())
    }
}

/// Log verbosity, most to least severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum LogLevel {
    /// `critical`
    Critical,
    /// `error`
    Error,
    /// `warning`
    Warning,
    /// `info` (default)
    #[default]
    Info,
    /// `debug`
    Debug,
    /// `trace`
    Trace,
}

impl LogLevel {
    /// Every level, most severe first.
    pub const ALL: [LogLevel; 6] = [
        LogLevel::Critical,
        LogLevel::Error,
        LogLevel::Warning,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Critical => "critical",
            LogLevel::Error => "error",
            LogLevel::Warning => "warning",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = LogLevel::ALL.iter().map(|l| l.as_str()).collect();
                format!(
                    "unknown log level {s:?}, expected one of {}",
                    all.join(", ")
                )
            })
    }
}

/// The YAML spelling of a type that parses from it (`FromStr`, displays back the same).
macro_rules! spelled {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(params::refuse)
            }
        }
    };
}

spelled!(LogLevel);
spelled!(LogFormat);

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Term,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Term => "term",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "term" => Ok(LogFormat::Term),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "unknown log format {s:?}, expected one of term, json"
            )),
        }
    }
}

/// `log:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Default `info`.
    pub level: LogLevel,
    /// Default `term`.
    pub format: LogFormat,
}

impl Section for LogConfig {
    const KEY: &'static str = "log";
}

/// Longest path a unix socket address can hold (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// An absolute path that fits a unix socket address.
fn socket_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let p = String::deserialize(d)?;
    let why = if !p.starts_with('/') {
        "expected an absolute path".to_owned()
    } else if p.contains('\0') {
        "it contains a NUL byte".to_owned()
    } else if p.len() > MAX_SOCKET_PATH {
        format!("unix socket paths are at most {MAX_SOCKET_PATH} bytes")
    } else {
        return Ok(PathBuf::from(p));
    };
    Err(params::refuse(format!("invalid {KEY} {p:?}: {why}")))
}

/// A group name (as in /etc/group) or a group id, or nothing.
fn group_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(g) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let why = if g.is_empty() {
        "expected a group name or a group id".to_owned()
    } else if g.len() > 64 {
        "group names are at most 64 bytes".to_owned()
    } else if let Some(c) = g
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, ':' | '/' | ','))
    {
        format!("{c:?} cannot be part of a group name")
    } else {
        return Ok(Some(g));
    };
    Err(params::refuse(format!("invalid {KEY} {g:?}: {why}")))
}

/// `control:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Absolute path of the control socket (at most 107 bytes). Default `/run/mptcp-pmd.sock`.
    #[serde(deserialize_with = "socket_path")]
    pub socket: PathBuf,
    /// A group (name or id) whose members may read through the control socket (status,
    /// addresses, monitor) but never command: the socket becomes mode 0660 and that group's.
    /// Default: none (mode 0600, root only). The daemon resolves the name at start.
    #[serde(
        deserialize_with = "group_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub group: Option<String>,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from("/run/mptcp-pmd.sock"),
            group: None,
        }
    }
}

impl Section for ControlConfig {
    const KEY: &'static str = "control";
}

/// An address and a port other than 0, or nothing.
fn listen_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    match text.parse::<SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok(Some(a)),
        Ok(_) => Err(params::refuse(format!(
            "invalid {KEY} {text:?}: port 0 would make the kernel pick a port, which no scraper could know; give the port to serve on"
        ))),
        Err(_) => Err(params::refuse(format!(
            "invalid {KEY} {text:?}: expected an address and port such as \"127.0.0.1:9464\" or \"[::1]:9464\""
        ))),
    }
}

/// `metrics:` section: the optional Prometheus text endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address and port to serve `/metrics` on (HTTP). Default: none (off).
    #[serde(
        deserialize_with = "listen_address",
        skip_serializing_if = "Option::is_none"
    )]
    pub listen: Option<SocketAddr>,
}

impl Section for MetricsConfig {
    const KEY: &'static str = "metrics";
}
