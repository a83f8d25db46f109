//! The whole configuration ([`Config`]) and its per-connection [`Rule`]s: what the rest of the
//! daemon consumes. The core sections are in `sections.rs`, the policies' in their own files;
//! `build.rs` reads the file's top level and its rules into these types.
//!
//! Every value here has already passed validation in [`crate::parse`]. The rule matchers, like
//! the sections, are read with serde from the located tree and checked as they are read.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use mptcp_pmd_policies::addrmatch::{glob_match, Cidr};
use mptcp_pmd_policies::params;
use mptcp_pmd_policies::plugin::{self, Plugin, PolicyParams, PolicySpec};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::metered::MeteredConfig;
use crate::net::PortRange;
use crate::sections::{
    AddressFilter, ControlConfig, InterfacePattern, KernelConfig, LogConfig, MetricsConfig,
    PollConfig, Section, SubflowConfig,
};

/// Error for an unknown policy name; lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy {0:?}, expected one of {names}", names = plugin::names())]
pub struct UnknownPolicy(pub String);

/// The compiled-in policy `policy:` names `name`.
pub fn find_policy(name: &str) -> Result<&'static Plugin, UnknownPolicy> {
    plugin::find(name).ok_or_else(|| UnknownPolicy(name.to_owned()))
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

impl<'de> Deserialize<'de> for Side {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(params::refuse)
    }
}

/// Rule matchers parsed from text with the type's own message (`invalid CIDR ...`), or nothing.
fn matcher<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    Option::<String>::deserialize(d)?
        .map(|text| text.parse().map_err(params::refuse))
        .transpose()
}

fn interface_matcher<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<InterfacePattern>::deserialize(d)?.map(|p| p.0))
}

/// `policy: <name>` and `<section>: <parameters>`, in the rule's mapping.
fn spec_entries<S: Serializer>(spec: &PolicySpec, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("policy", spec.plugin)?;
    m.serialize_entry(spec.plugin.section, spec)?;
    m.end()
}

/// Stands in for a rule's spec until `build.rs` has read the rule's policy.
fn no_spec() -> PolicySpec {
    plugin::default_plugin().default_spec()
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
///
/// Its mapping holds the matchers (the fields here, read by serde), `policy` and the policy's
/// override section (read by `build.rs`, which knows the registry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Remote address prefix of the connection (`198.51.100.0/24`; a bare address is a host).
    #[serde(
        default,
        deserialize_with = "matcher",
        skip_serializing_if = "Option::is_none"
    )]
    pub remote: Option<Cidr>,
    /// Remote port or port range (`443`, `"8000-8100"`).
    #[serde(
        default,
        deserialize_with = "matcher",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<PortRange>,
    /// Glob pattern for the interface of the initial subflow.
    #[serde(
        default,
        deserialize_with = "interface_matcher",
        skip_serializing_if = "Option::is_none"
    )]
    pub interface: Option<String>,
    /// Local port or port range of the initial subflow (on the server side: the listening
    /// port).
    #[serde(
        default,
        deserialize_with = "matcher",
        skip_serializing_if = "Option::is_none"
    )]
    pub local_port: Option<PortRange>,
    /// Which end of the connection this host is (`client`, `server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// The policy and its parameters: the rule's override section merged over the
    /// top-level section of that policy (keys missing in the override keep the top-level
    /// values). Written as `policy:` and the policy's section, always with every value.
    #[serde(
        flatten,
        serialize_with = "spec_entries",
        skip_deserializing,
        default = "no_spec"
    )]
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

/// The key of the list of rules.
pub(crate) const RULES: &str = "rules";

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
    /// Byte budgets of metered interfaces (none by default).
    pub metered: MeteredConfig,
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
            metered: MeteredConfig::default(),
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
        m.serialize_entry(AddressFilter::KEY, &self.addresses)?;
        m.serialize_entry(KernelConfig::KEY, &self.kernel)?;
        m.serialize_entry(PollConfig::KEY, &self.poll)?;
        m.serialize_entry(SubflowConfig::KEY, &self.subflow)?;
        m.serialize_entry(LogConfig::KEY, &self.log)?;
        m.serialize_entry(ControlConfig::KEY, &self.control)?;
        m.serialize_entry(MetricsConfig::KEY, &self.metrics)?;
        m.serialize_entry(MeteredConfig::KEY, &self.metered)?;
        m.serialize_entry(RULES, &self.rules)?;
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
