//! The typed, validated configuration: what the rest of the daemon consumes.
//!
//! Every value here has already passed validation in [`crate::parse`]; the `Default`
//! impls are the documented defaults (and what `packaging/mptcp-pm.yaml` spells out).
//! These types only serialise (for `--check-config`); reading goes through the located,
//! validating path in `build.rs`.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::glob::glob_match;
use crate::net::{Cidr, PortRange};

/// Which path-management algorithm to run for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PolicyName {
    /// One subflow per usable (local address, remote address) pair, up to a limit.
    #[default]
    Fullmesh,
    /// N subflows over the initial address pair, from different source ports.
    Ndiffports,
    /// Opens subflows like fullmesh, then marks slow subflows backup and closes lossy ones.
    RttBased,
}

impl PolicyName {
    /// Every policy, in documentation order.
    pub const ALL: [PolicyName; 3] = [
        PolicyName::Fullmesh,
        PolicyName::Ndiffports,
        PolicyName::RttBased,
    ];

    /// The name used in YAML and logs: `fullmesh`, `ndiffports` or `rtt-based`.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::Fullmesh => "fullmesh",
            PolicyName::Ndiffports => "ndiffports",
            PolicyName::RttBased => "rtt-based",
        }
    }

    /// The name of this policy's parameter section (`fullmesh`, `ndiffports`, `rtt_based`).
    pub fn section(self) -> &'static str {
        match self {
            PolicyName::Fullmesh => "fullmesh",
            PolicyName::Ndiffports => "ndiffports",
            PolicyName::RttBased => "rtt_based",
        }
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for an unknown policy name; lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy {0:?}, expected one of fullmesh, ndiffports, rtt-based")]
pub struct UnknownPolicy(pub String);

impl FromStr for PolicyName {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PolicyName::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

impl Serialize for PolicyName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `fullmesh:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FullmeshConfig {
    /// Subflows per connection, counting the initial one. 1..=64, default 8.
    /// (The kernel's own accept limit is 8 subflows per connection; see `ip mptcp limits`.)
    pub max_subflows: u8,
}

impl Default for FullmeshConfig {
    fn default() -> Self {
        FullmeshConfig { max_subflows: 8 }
    }
}

/// `ndiffports:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NdiffportsConfig {
    /// Subflows per connection over the initial address pair, counting the initial one.
    /// 1..=64, default 2; 1 creates nothing.
    pub subflows: u8,
}

impl Default for NdiffportsConfig {
    fn default() -> Self {
        NdiffportsConfig { subflows: 2 }
    }
}

/// `rtt_based:` section (policy `rtt-based`).
///
/// Subflows are opened like fullmesh. A subflow whose smoothed RTT stays above
/// `backup_ratio` x the best active subflow's srtt *and* at least `min_gap_ms` above it
/// for `hold_s` seconds gets the backup flag; it is cleared when the srtt stays below
/// `restore_ratio` x best for `hold_s`. With `close_on_loss`, a subflow whose retransmission
/// rate over the poll window exceeds `loss_threshold` is closed and not re-opened for
/// `cooldown_s` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RttBasedConfig {
    /// Subflows per connection, counting the initial one. 1..=64, default 8.
    pub max_subflows: u8,
    /// Mark backup when srtt > this x best active srtt. 1.0 < x <= 100, default 2.0.
    pub backup_ratio: f64,
    /// ... and srtt exceeds the best by at least this many ms. 0..=60000, default 20.
    pub min_gap_ms: u32,
    /// Clear backup when srtt < this x best. 0 < x < `backup_ratio`, default 1.5.
    pub restore_ratio: f64,
    /// Seconds a condition must hold before acting (hysteresis). 0..=3600, default 5.
    pub hold_s: u32,
    /// Close subflows whose loss exceeds `loss_threshold`. Default false.
    pub close_on_loss: bool,
    /// Retransmission rate (retrans / segs_out over the window), 0 < x <= 1, default 0.05.
    pub loss_threshold: f64,
    /// Seconds before re-opening a closed lossy subflow. 0..=86400, default 30.
    pub cooldown_s: u32,
    /// A subflow this policy made backup carries no data, so its RTT is not measured again;
    /// after this many seconds in backup it is made active again to re-measure (and demoted
    /// again after `hold_s` if still slow). 0 = never probe. 0..=86400, default 30.
    pub probe_s: u32,
}

impl Default for RttBasedConfig {
    fn default() -> Self {
        RttBasedConfig {
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

impl RttBasedConfig {
    /// `min_gap_ms` as a duration.
    pub fn min_gap(&self) -> Duration {
        Duration::from_millis(self.min_gap_ms.into())
    }
    /// `hold_s` as a duration.
    pub fn hold(&self) -> Duration {
        Duration::from_secs(self.hold_s.into())
    }
    /// `cooldown_s` as a duration.
    pub fn cooldown(&self) -> Duration {
        Duration::from_secs(self.cooldown_s.into())
    }
    /// `probe_s` as a duration (`None`: never probe).
    pub fn probe(&self) -> Option<Duration> {
        (self.probe_s > 0).then(|| Duration::from_secs(self.probe_s.into()))
    }
}

/// A policy together with its parameters, as resolved for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum PolicySpec {
    /// `fullmesh`.
    Fullmesh(FullmeshConfig),
    /// `ndiffports`.
    Ndiffports(NdiffportsConfig),
    /// `rtt-based`.
    RttBased(RttBasedConfig),
}

impl PolicySpec {
    /// Which policy this is.
    pub fn name(&self) -> PolicyName {
        match self {
            PolicySpec::Fullmesh(_) => PolicyName::Fullmesh,
            PolicySpec::Ndiffports(_) => PolicyName::Ndiffports,
            PolicySpec::RttBased(_) => PolicyName::RttBased,
        }
    }
}

/// `addresses:` section: which local addresses and interfaces subflows may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressFilter {
    /// Never use loopback addresses (127.0.0.0/8, ::1). Default true.
    pub skip_loopback: bool,
    /// Never use link-local addresses (169.254.0.0/16, fe80::/10). Default true.
    pub skip_link_local: bool,
    /// Glob patterns (`*`, `?`); if non-empty, only matching interfaces are used. Default [].
    pub include_interfaces: Vec<String>,
    /// Glob patterns of interfaces never used, e.g. `docker*`. Wins over include. Default [].
    pub exclude_interfaces: Vec<String>,
    /// Glob patterns; subflows from these interfaces get the backup flag. Default [].
    pub backup_interfaces: Vec<String>,
}

impl Default for AddressFilter {
    fn default() -> Self {
        AddressFilter {
            skip_loopback: true,
            skip_link_local: true,
            include_interfaces: Vec::new(),
            exclude_interfaces: Vec::new(),
            backup_interfaces: Vec::new(),
        }
    }
}

impl AddressFilter {
    /// True if interface `name` passes the include and exclude lists.
    pub fn interface_allowed(&self, name: &str) -> bool {
        let included = self.include_interfaces.is_empty()
            || self.include_interfaces.iter().any(|p| glob_match(p, name));
        included && !self.exclude_interfaces.iter().any(|p| glob_match(p, name))
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KernelConfig {
    /// Switch this network namespace to the userspace path manager at start
    /// (`net.mptcp.path_manager=userspace`). Default true.
    pub set_userspace_pm: bool,
    /// Receive buffer (bytes) for the genl events socket. 4096..=2147483647, default 4 MiB.
    pub events_rcvbuf: u32,
    /// Scheduling priority (nice value) the daemon gives itself at start, while it still may
    /// (CAP_SYS_NICE). -20..=19, default -10: joins are created from the daemon's thread, so
    /// on a host whose CPUs are busy with the applications the path manager serves, a
    /// normal-priority daemon waits for a time slice before each connection gets its subflows.
    /// 0 leaves the priority alone.
    pub nice: i8,
    /// SCHED_FIFO priority (1..=99) for the threads that handle events and send commands; 0
    /// (default) keeps the normal scheduler. Under heavy CPU contention it brings join latency
    /// close to the in-kernel PM's (whose joins run in kernel context). The sock_diag thread
    /// stays on the normal scheduler.
    pub realtime_priority: u8,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            set_userspace_pm: true,
            events_rcvbuf: 4 * 1024 * 1024,
            nice: -10,
            realtime_priority: 0,
        }
    }
}

/// `poll:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PollConfig {
    /// sock_diag poll period while connections exist, ms. 10..=3600000, default 1000.
    pub interval_ms: u32,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig { interval_ms: 1000 }
    }
}

impl PollConfig {
    /// `interval_ms` as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.into())
    }
}

/// `subflow:` section: retry behaviour for subflow creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SubflowConfig {
    /// A requested subflow that neither establishes nor fails within this many ms is
    /// treated as failed and retried. 100..=600000, default 5000.
    pub request_timeout_ms: u32,
    /// First retry delay, ms; doubles per failure. 1..=3600000, default 500.
    pub backoff_initial_ms: u32,
    /// Retry delay cap, ms. `backoff_initial_ms`..=3600000, default 30000.
    pub backoff_max_ms: u32,
    /// Consecutive failures of one path before giving up until its address changes.
    /// 0..=1000 (0: never retry), default 6.
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
                format!(
                    "unknown log level {s:?}, expected one of critical, error, warning, info, debug, trace"
                )
            })
    }
}

impl Serialize for LogLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

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

impl Serialize for LogFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `log:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct LogConfig {
    /// Default `info`.
    pub level: LogLevel,
    /// Default `term`.
    pub format: LogFormat,
}

/// `control:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControlConfig {
    /// Absolute path of the control socket. Default `/run/mptcp-pmd.sock`.
    pub socket: PathBuf,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: PathBuf::from("/run/mptcp-pmd.sock"),
        }
    }
}

/// `metrics:` section: the optional Prometheus text endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct MetricsConfig {
    /// Address and port to serve `/metrics` on (HTTP). Default: none (off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<std::net::SocketAddr>,
}

/// One entry of `rules:`: a per-destination policy. At least one matcher is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Remote address prefix of the connection.
    pub remote: Option<Cidr>,
    /// Remote port or port range.
    pub port: Option<PortRange>,
    /// Glob pattern for the interface of the initial subflow.
    pub interface: Option<String>,
    /// The policy and its parameters: the rule's override section merged over the
    /// top-level section of that policy (keys missing in the override keep the top-level
    /// values).
    pub spec: PolicySpec,
}

impl Rule {
    /// True if every matcher the rule sets accepts the connection. A rule with an
    /// `interface` pattern never matches when the interface is unknown.
    pub fn matches(&self, remote: IpAddr, port: u16, interface: Option<&str>) -> bool {
        self.remote.is_none_or(|c| c.contains(remote))
            && self.port.is_none_or(|p| p.contains(port))
            && match (&self.interface, interface) {
                (None, _) => true,
                (Some(pattern), Some(name)) => glob_match(pattern, name),
                (Some(_), None) => false,
            }
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            remote: Option<&'a Cidr>,
            #[serde(skip_serializing_if = "Option::is_none")]
            port: Option<&'a PortRange>,
            #[serde(skip_serializing_if = "Option::is_none")]
            interface: Option<&'a str>,
            policy: PolicyName,
            #[serde(skip_serializing_if = "Option::is_none")]
            fullmesh: Option<&'a FullmeshConfig>,
            #[serde(skip_serializing_if = "Option::is_none")]
            ndiffports: Option<&'a NdiffportsConfig>,
            #[serde(skip_serializing_if = "Option::is_none")]
            rtt_based: Option<&'a RttBasedConfig>,
        }
        let mut out = Out {
            remote: self.remote.as_ref(),
            port: self.port.as_ref(),
            interface: self.interface.as_deref(),
            policy: self.spec.name(),
            fullmesh: None,
            ndiffports: None,
            rtt_based: None,
        };
        match &self.spec {
            PolicySpec::Fullmesh(c) => out.fullmesh = Some(c),
            PolicySpec::Ndiffports(c) => out.ndiffports = Some(c),
            PolicySpec::RttBased(c) => out.rtt_based = Some(c),
        }
        out.serialize(s)
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Config {
    /// Default policy for connections no rule matches. Default `fullmesh`.
    pub policy: PolicyName,
    /// Parameters of `fullmesh`.
    pub fullmesh: FullmeshConfig,
    /// Parameters of `ndiffports`.
    pub ndiffports: NdiffportsConfig,
    /// Parameters of `rtt-based`.
    pub rtt_based: RttBasedConfig,
    /// Local address and interface selection.
    pub addresses: AddressFilter,
    /// Kernel set-up.
    pub kernel: KernelConfig,
    /// sock_diag polling.
    pub poll: PollConfig,
    /// Subflow creation retries.
    pub subflow: SubflowConfig,
    /// Logging.
    pub log: LogConfig,
    /// Control socket.
    pub control: ControlConfig,
    /// Prometheus endpoint (off by default).
    pub metrics: MetricsConfig,
    /// Per-destination policies; the first matching rule wins. Default [].
    pub rules: Vec<Rule>,
}

impl Config {
    /// The top-level parameters of `policy`.
    pub fn spec_of(&self, policy: PolicyName) -> PolicySpec {
        match policy {
            PolicyName::Fullmesh => PolicySpec::Fullmesh(self.fullmesh),
            PolicyName::Ndiffports => PolicySpec::Ndiffports(self.ndiffports),
            PolicyName::RttBased => PolicySpec::RttBased(self.rtt_based),
        }
    }

    /// The default policy with its top-level parameters.
    pub fn default_spec(&self) -> PolicySpec {
        self.spec_of(self.policy)
    }

    /// The first rule matching the connection, with its index in `rules`.
    pub fn matching_rule(
        &self,
        remote: IpAddr,
        port: u16,
        interface: Option<&str>,
    ) -> Option<(usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(remote, port, interface))
    }

    /// The policy and parameters for a connection to `remote:port` whose initial subflow
    /// uses `interface`: the first matching rule's, else the default.
    pub fn policy_for(&self, remote: IpAddr, port: u16, interface: Option<&str>) -> PolicySpec {
        self.matching_rule(remote, port, interface)
            .map_or_else(|| self.default_spec(), |(_, r)| r.spec)
    }

    /// This configuration as YAML with every default filled in (for `--check-config`).
    /// Parsing the result gives back an equal `Config`.
    pub fn effective_yaml(&self) -> String {
        match serde_saphyr::to_string(self) {
            Ok(s) => s,
            // Serialising plain structs of numbers and strings cannot fail in practice;
            // still, never panic: say what happened in a YAML comment.
            Err(e) => format!("# cannot serialise the configuration: {e}\n"),
        }
    }
}
