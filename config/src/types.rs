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

use mptcp_pmd_policies::plugin::{self, Plugin, PolicyParams, PolicySpec};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use mptcp_pmd_policies::addrmatch::{glob_match, Cidr};

use crate::net::PortRange;

/// Error for an unknown policy name; lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy {0:?}, expected one of {names}", names = plugin::names())]
pub struct UnknownPolicy(pub String);

/// The compiled-in policy `policy:` names `name`.
pub fn find_policy(name: &str) -> Result<&'static Plugin, UnknownPolicy> {
    plugin::find(name).ok_or_else(|| UnknownPolicy(name.to_owned()))
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
    /// (CAP_SYS_NICE). -20..=19, default -20: joins are created from the daemon's thread, so
    /// on a host whose CPUs are busy with the applications the path manager serves, a
    /// normal-priority daemon waits for a time slice before each connection gets its subflows
    /// (BENCHMARKS.md, churn: -20 brings the join p50 within 2 x the in-kernel PM's, -10 did
    /// not). 0 leaves the priority alone.
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
            nice: -20,
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

/// Which end of a connection this host is: the `side` matcher of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// This host dialled the connection (`side: client`).
    Client,
    /// This host accepted it on a listening socket (`side: server`).
    Server,
}

impl Side {
    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client" => Ok(Side::Client),
            "server" => Ok(Side::Server),
            _ => Err(format!(
                "unknown side {s:?}, expected one of client, server"
            )),
        }
    }
}

impl Serialize for Side {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What rules look at in a connection: its initial subflow and which end we are. Facts the
/// caller does not know are `None`; a rule that sets a matcher for an unknown fact does not
/// match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleTarget<'a> {
    /// Remote address of the initial subflow.
    pub remote: IpAddr,
    /// Remote port of the initial subflow.
    pub port: u16,
    /// Local port of the initial subflow: the listening port on the server side.
    pub local_port: Option<u16>,
    /// Interface of the initial subflow's local address.
    pub interface: Option<&'a str>,
    /// Which end of the connection this host is.
    pub side: Option<Side>,
}

/// One entry of `rules:`: a per-connection policy. At least one matcher is set.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Remote address prefix of the connection.
    pub remote: Option<Cidr>,
    /// Remote port or port range.
    pub port: Option<PortRange>,
    /// Glob pattern for the interface of the initial subflow.
    pub interface: Option<String>,
    /// Local port or port range of the initial subflow (on the server side: the listening
    /// port).
    pub local_port: Option<PortRange>,
    /// Which end of the connection this host is.
    pub side: Option<Side>,
    /// The policy and its parameters: the rule's override section merged over the
    /// top-level section of that policy (keys missing in the override keep the top-level
    /// values).
    pub spec: PolicySpec,
}

impl Rule {
    /// True if every matcher the rule sets accepts the connection to `remote:port` whose
    /// initial subflow uses `interface`, of which nothing else is known (a rule with an
    /// `interface`, `local_port` or `side` matcher needs that fact: see
    /// [`Rule::matches_target`]).
    pub fn matches(&self, remote: IpAddr, port: u16, interface: Option<&str>) -> bool {
        self.matches_target(&RuleTarget {
            remote,
            port,
            local_port: None,
            interface,
            side: None,
        })
    }

    /// True if every matcher the rule sets accepts the connection. A matcher whose fact is
    /// unknown (`None`) does not.
    pub fn matches_target(&self, t: &RuleTarget<'_>) -> bool {
        fn known<W, H>(want: &Option<W>, have: Option<H>, ok: impl Fn(&W, H) -> bool) -> bool {
            match (want, have) {
                (None, _) => true,
                (Some(w), Some(h)) => ok(w, h),
                (Some(_), None) => false,
            }
        }
        self.remote.is_none_or(|c| c.contains(t.remote))
            && self.port.is_none_or(|p| p.contains(t.port))
            && known(&self.interface, t.interface, |p, name| glob_match(p, name))
            && known(&self.local_port, t.local_port, |r, p| r.contains(p))
            && known(&self.side, t.side, |w, h| *w == h)
    }
}

/// Matchers, `policy:` and the policy's section (always written, with the resolved values).
impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(remote) = &self.remote {
            m.serialize_entry("remote", remote)?;
        }
        if let Some(port) = &self.port {
            m.serialize_entry("port", port)?;
        }
        if let Some(interface) = &self.interface {
            m.serialize_entry("interface", interface)?;
        }
        if let Some(local_port) = &self.local_port {
            m.serialize_entry("local_port", local_port)?;
        }
        if let Some(side) = &self.side {
            m.serialize_entry("side", side)?;
        }
        m.serialize_entry("policy", self.spec.plugin)?;
        m.serialize_entry(self.spec.plugin.section, &self.spec)?;
        m.end()
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Default policy for connections no rule matches. Default: the registry's first policy.
    pub policy: &'static Plugin,
    /// The top-level parameter section of every compiled-in policy, in registry order (its
    /// defaults where the file has no section).
    pub policies: Vec<PolicySpec>,
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

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: plugin::default_plugin(),
            policies: plugin::all().iter().map(|p| p.default_spec()).collect(),
            addresses: AddressFilter::default(),
            kernel: KernelConfig::default(),
            poll: PollConfig::default(),
            subflow: SubflowConfig::default(),
            log: LogConfig::default(),
            control: ControlConfig::default(),
            metrics: MetricsConfig::default(),
            rules: Vec::new(),
        }
    }
}

/// In the order of the shipped example: `policy`, the policies' sections, the rest.
impl Serialize for Config {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("policy", self.policy)?;
        for spec in &self.policies {
            m.serialize_entry(spec.plugin.section, spec)?;
        }
        m.serialize_entry("addresses", &self.addresses)?;
        m.serialize_entry("kernel", &self.kernel)?;
        m.serialize_entry("poll", &self.poll)?;
        m.serialize_entry("subflow", &self.subflow)?;
        m.serialize_entry("log", &self.log)?;
        m.serialize_entry("control", &self.control)?;
        m.serialize_entry("metrics", &self.metrics)?;
        m.serialize_entry("rules", &self.rules)?;
        m.end()
    }
}

impl Config {
    /// The top-level parameters of the policy named `name`.
    pub fn spec_of(&self, name: &str) -> Option<&PolicySpec> {
        self.policies.iter().find(|s| s.name() == name)
    }

    /// The top-level parameters of the policy whose parameter type is `P` (typed access).
    pub fn params<P: PolicyParams>(&self) -> Option<&P> {
        self.policies.iter().find_map(|s| s.params::<P>())
    }

    /// The default policy with its top-level parameters.
    pub fn default_spec(&self) -> PolicySpec {
        self.spec_of(self.policy.name)
            .cloned()
            .unwrap_or_else(|| self.policy.default_spec())
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
            .map_or_else(|| self.default_spec(), |(_, r)| r.spec.clone())
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
