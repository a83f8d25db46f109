//! Raw (located) schema -> validated [`Config`]: defaults, ranges, cross-field checks,
//! CIDRs, ports and globs. Every error carries the location of the value it is about.

use std::path::PathBuf;

use serde_saphyr::{Location, Spanned};

use crate::error::ConfigError;
use crate::net::PortRange;
use crate::raw::{
    Field, RawAddresses, RawConfig, RawControl, RawKernel, RawLog, RawMetrics, RawNode, RawPoll,
    RawRule, RawSection, RawSubflow, Scalar, Text,
};
use crate::types::{
    find_policy, AddressFilter, Config, ControlConfig, KernelConfig, LogConfig, LogFormat,
    LogLevel, MetricsConfig, PollConfig, Rule, Side, SubflowConfig, UnknownPolicy,
};
use mptcp_pmd_policies::addrmatch::{interface_glob_problem, Cidr};
use mptcp_pmd_policies::params::{Keys, Node, ParamError, Pos};
use mptcp_pmd_policies::plugin::{self, Plugin, PolicySpec};

/// Longest path a unix socket address can hold (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

type Result<T> = std::result::Result<T, ConfigError>;

/// Validation context: the source name to put in errors.
pub(crate) struct Builder<'a> {
    pub file: &'a str,
}

/// `"a.b"` for nested keys, `"b"` at the top.
fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

impl Builder<'_> {
    fn invalid(&self, at: &Location, key: &str, msg: String) -> ConfigError {
        // Values built by serde buffering can lack a position; point at the file start
        // rather than print an impossible 0:0.
        let (line, col) = if at.line() == 0 {
            (1, 1)
        } else {
            (at.line(), at.column())
        };
        ConfigError::Invalid {
            file: self.file.to_owned(),
            line,
            col,
            key: key.to_owned(),
            msg,
        }
    }

    fn int<T>(&self, v: &Field<Scalar>, key: &str, lo: T, hi: T, default: T) -> Result<T>
    where
        T: Copy + Into<i128> + TryFrom<i128> + std::fmt::Display,
    {
        let Some(v) = v else { return Ok(default) };
        let bad = || {
            self.invalid(
                &v.referenced,
                key,
                format!(
                    "{key} must be an integer between {lo} and {hi}, got {}",
                    v.value
                ),
            )
        };
        match v.value {
            Scalar::Int(n) if n >= lo.into() && n <= hi.into() => T::try_from(n).map_err(|_| bad()),
            _ => Err(bad()),
        }
    }

    fn boolean(&self, v: &Field<Scalar>, key: &str, default: bool) -> Result<bool> {
        match v {
            None => Ok(default),
            Some(Spanned {
                value: Scalar::Bool(b),
                ..
            }) => Ok(*b),
            Some(v) => Err(self.invalid(
                &v.referenced,
                key,
                format!("{key} must be true or false, got {}", v.value),
            )),
        }
    }

    fn policy_name(&self, v: &Spanned<Text>, key: &str) -> Result<&'static Plugin> {
        find_policy(&v.value.0)
            .map_err(|e: UnknownPolicy| self.invalid(&v.referenced, key, e.to_string()))
    }

    fn at(&self, at: Option<Pos>) -> (u64, u64) {
        match at {
            Some(p) if p.line > 0 => (p.line, p.col),
            _ => (1, 1),
        }
    }

    /// A policy's error, located: shape errors are parse errors, value errors point at the
    /// value, check errors at the first of their fields that `written` (the section as the
    /// file has it) sets, else at the section.
    fn param_error(&self, e: ParamError, keys: &Keys, written: &Node) -> ConfigError {
        match e {
            ParamError::Shape { at, msg } => {
                let (line, col) = self.at(at);
                ConfigError::Parse {
                    file: self.file.to_owned(),
                    line,
                    col,
                    msg,
                }
            }
            ParamError::Value { key, at, msg } => {
                let (line, col) = self.at(at);
                ConfigError::Invalid {
                    file: self.file.to_owned(),
                    line,
                    col,
                    key,
                    msg,
                }
            }
            ParamError::Check { fields, msg } => {
                let set = fields
                    .iter()
                    .find_map(|f| written.get(f).map(|(_, v)| (*f, v.at)));
                let (field, at) = match (set, fields.first()) {
                    (Some((f, at)), _) => (f, at),
                    (None, Some(f)) => (*f, written.at),
                    (None, None) => ("", written.at),
                };
                let (line, col) = self.at(Some(at));
                ConfigError::Invalid {
                    file: self.file.to_owned(),
                    line,
                    col,
                    key: keys.key(field),
                    msg,
                }
            }
        }
    }

    /// The top-level section of every registered policy (defaults where absent).
    fn policies(&self, sections: &[RawSection]) -> Result<Vec<PolicySpec>> {
        plugin::all()
            .iter()
            .map(|p| match sections.iter().find(|(k, _)| k == p.section) {
                Some((_, raw)) => {
                    let node = RawNode::to_node(raw);
                    let keys = Keys::new(p.section);
                    p.parse(&node, &keys)
                        .map_err(|e| self.param_error(e, &keys, &node))
                }
                None => Ok(p.default_spec()),
            })
            .collect()
    }

    /// A glob for interface names: must be able to match a valid Linux interface name.
    fn glob(&self, v: &Spanned<Text>, key: &str) -> Result<String> {
        let p = &v.value.0;
        let bad = |why: &str| {
            self.invalid(
                &v.referenced,
                key,
                format!("invalid interface pattern {p:?}: {why}"),
            )
        };
        if let Some(why) = interface_glob_problem(p) {
            return Err(bad(why));
        }
        Ok(p.clone())
    }

    fn globs(&self, v: &Option<Vec<Spanned<Text>>>, key: &str) -> Result<Vec<String>> {
        v.iter()
            .flatten()
            .enumerate()
            .map(|(i, g)| self.glob(g, &format!("{key}[{i}]")))
            .collect()
    }

    pub(crate) fn config(&self, raw: RawConfig) -> Result<Config> {
        let policy = match &raw.policy {
            Some(p) => self.policy_name(p, "policy")?,
            None => plugin::default_plugin(),
        };
        let policies = self.policies(&raw.sections)?;
        let mut config = Config {
            policy,
            policies,
            addresses: match &raw.addresses {
                Some(s) => self.addresses(&s.value)?,
                None => AddressFilter::default(),
            },
            kernel: match &raw.kernel {
                Some(s) => self.kernel(&s.value)?,
                None => KernelConfig::default(),
            },
            poll: match &raw.poll {
                Some(s) => self.poll(&s.value)?,
                None => PollConfig::default(),
            },
            subflow: match &raw.subflow {
                Some(s) => self.subflow(&s.value)?,
                None => SubflowConfig::default(),
            },
            log: match &raw.log {
                Some(s) => self.log(&s.value)?,
                None => LogConfig::default(),
            },
            control: match &raw.control {
                Some(s) => self.control(&s.value)?,
                None => ControlConfig::default(),
            },
            metrics: match &raw.metrics {
                Some(s) => self.metrics(&s.value)?,
                None => MetricsConfig::default(),
            },
            rules: Vec::new(),
        };
        for (i, rule) in raw.rules.iter().flatten().enumerate() {
            let rule = self.rule(&config, &raw.sections, rule, &format!("rules[{i}]"))?;
            config.rules.push(rule);
        }
        Ok(config)
    }

    fn addresses(&self, raw: &RawAddresses) -> Result<AddressFilter> {
        let d = AddressFilter::default();
        Ok(AddressFilter {
            skip_loopback: self.boolean(
                &raw.skip_loopback,
                "addresses.skip_loopback",
                d.skip_loopback,
            )?,
            skip_link_local: self.boolean(
                &raw.skip_link_local,
                "addresses.skip_link_local",
                d.skip_link_local,
            )?,
            include_interfaces: self
                .globs(&raw.include_interfaces, "addresses.include_interfaces")?,
            exclude_interfaces: self
                .globs(&raw.exclude_interfaces, "addresses.exclude_interfaces")?,
            backup_interfaces: self.globs(&raw.backup_interfaces, "addresses.backup_interfaces")?,
        })
    }

    fn kernel(&self, raw: &RawKernel) -> Result<KernelConfig> {
        let d = KernelConfig::default();
        Ok(KernelConfig {
            set_userspace_pm: self.boolean(
                &raw.set_userspace_pm,
                "kernel.set_userspace_pm",
                d.set_userspace_pm,
            )?,
            // SO_RCVBUF takes an int.
            events_rcvbuf: self.int(
                &raw.events_rcvbuf,
                "kernel.events_rcvbuf",
                4096,
                i32::MAX as u32,
                d.events_rcvbuf,
            )?,
            nice: self.int(&raw.nice, "kernel.nice", -20, 19, d.nice)?,
            realtime_priority: self.int(
                &raw.realtime_priority,
                "kernel.realtime_priority",
                0,
                99,
                d.realtime_priority,
            )?,
        })
    }

    fn poll(&self, raw: &RawPoll) -> Result<PollConfig> {
        let d = PollConfig::default();
        Ok(PollConfig {
            interval_ms: self.int(
                &raw.interval_ms,
                "poll.interval_ms",
                10,
                3_600_000,
                d.interval_ms,
            )?,
        })
    }

    fn subflow(&self, raw: &RawSubflow) -> Result<SubflowConfig> {
        let d = SubflowConfig::default();
        let c = SubflowConfig {
            request_timeout_ms: self.int(
                &raw.request_timeout_ms,
                "subflow.request_timeout_ms",
                100,
                600_000,
                d.request_timeout_ms,
            )?,
            backoff_initial_ms: self.int(
                &raw.backoff_initial_ms,
                "subflow.backoff_initial_ms",
                1,
                3_600_000,
                d.backoff_initial_ms,
            )?,
            backoff_max_ms: self.int(
                &raw.backoff_max_ms,
                "subflow.backoff_max_ms",
                1,
                3_600_000,
                d.backoff_max_ms,
            )?,
            max_retries: self.int(
                &raw.max_retries,
                "subflow.max_retries",
                0,
                1000,
                d.max_retries,
            )?,
        };
        if c.backoff_max_ms < c.backoff_initial_ms {
            let (k, at) = match (&raw.backoff_max_ms, &raw.backoff_initial_ms) {
                (Some(m), _) => ("subflow.backoff_max_ms", m.referenced),
                (None, Some(i)) => ("subflow.backoff_initial_ms", i.referenced),
                (None, None) => ("subflow.backoff_max_ms", Location::UNKNOWN),
            };
            return Err(self.invalid(
                &at,
                k,
                format!(
                    "subflow.backoff_max_ms ({}) must not be less than subflow.backoff_initial_ms ({})",
                    c.backoff_max_ms, c.backoff_initial_ms
                ),
            ));
        }
        Ok(c)
    }

    fn log(&self, raw: &RawLog) -> Result<LogConfig> {
        let level = match &raw.level {
            Some(v) => v
                .value
                .0
                .parse::<LogLevel>()
                .map_err(|m| self.invalid(&v.referenced, "log.level", m))?,
            None => LogLevel::default(),
        };
        let format = match &raw.format {
            Some(v) => v
                .value
                .0
                .parse::<LogFormat>()
                .map_err(|m| self.invalid(&v.referenced, "log.format", m))?,
            None => LogFormat::default(),
        };
        Ok(LogConfig { level, format })
    }

    fn control(&self, raw: &RawControl) -> Result<ControlConfig> {
        let Some(v) = &raw.socket else {
            return Ok(ControlConfig::default());
        };
        let p = &v.value.0;
        let bad = |why: String| {
            self.invalid(
                &v.referenced,
                "control.socket",
                format!("invalid control.socket {p:?}: {why}"),
            )
        };
        if !p.starts_with('/') {
            return Err(bad("expected an absolute path".into()));
        }
        if p.contains('\0') {
            return Err(bad("it contains a NUL byte".into()));
        }
        if p.len() > MAX_SOCKET_PATH {
            return Err(bad(format!(
                "unix socket paths are at most {MAX_SOCKET_PATH} bytes"
            )));
        }
        Ok(ControlConfig {
            socket: PathBuf::from(p),
        })
    }

    fn metrics(&self, raw: &RawMetrics) -> Result<MetricsConfig> {
        let Some(v) = &raw.listen else {
            return Ok(MetricsConfig::default());
        };
        let listen = v.value.0.parse::<std::net::SocketAddr>().map_err(|_| {
            self.invalid(
                &v.referenced,
                "metrics.listen",
                format!(
                    "invalid metrics.listen {:?}: expected an address and port such as \"127.0.0.1:9464\" or \"[::1]:9464\"",
                    v.value.0
                ),
            )
        })?;
        Ok(MetricsConfig {
            listen: Some(listen),
        })
    }

    /// A port or `"LO-HI"` range matcher, if written.
    fn port_range(&self, v: &Field<Text>, key: &str) -> Result<Option<PortRange>> {
        v.as_ref()
            .map(|v| {
                v.value
                    .0
                    .parse::<PortRange>()
                    .map_err(|e| self.invalid(&v.referenced, key, e.to_string()))
            })
            .transpose()
    }

    fn rule(
        &self,
        config: &Config,
        top: &[RawSection],
        rule: &Spanned<RawRule>,
        path: &str,
    ) -> Result<Rule> {
        let raw = &rule.value;
        let remote =
            match &raw.remote {
                Some(v) => Some(v.value.0.parse::<Cidr>().map_err(|e| {
                    self.invalid(&v.referenced, &join(path, "remote"), e.to_string())
                })?),
                None => None,
            };
        let port = self.port_range(&raw.port, &join(path, "port"))?;
        let interface = match &raw.interface {
            Some(v) => Some(self.glob(v, &join(path, "interface"))?),
            None => None,
        };
        let local_port = self.port_range(&raw.local_port, &join(path, "local_port"))?;
        let side = match &raw.side {
            Some(v) => Some(
                v.value
                    .0
                    .parse::<Side>()
                    .map_err(|e| self.invalid(&v.referenced, &join(path, "side"), e))?,
            ),
            None => None,
        };
        if remote.is_none()
            && port.is_none()
            && interface.is_none()
            && local_port.is_none()
            && side.is_none()
        {
            return Err(self.invalid(
                &rule.referenced,
                path,
                format!("{path} matches every connection: give at least one of remote, port, interface, local_port, side (or set the top-level policy instead)"),
            ));
        }
        let Some(policy_text) = &raw.policy else {
            return Err(self.invalid(
                &rule.referenced,
                &join(path, "policy"),
                format!("{path} has no policy, expected policy: {}", one_of()),
            ));
        };
        let policy = self.policy_name(policy_text, &join(path, "policy"))?;

        // An override section must belong to the rule's own policy.
        for (section, value) in &raw.sections {
            if section != policy.section {
                return Err(self.invalid(
                    &value.referenced,
                    &join(path, section),
                    format!(
                        "{path} sets {section}: parameters but its policy is {policy}; use {}: or change the policy",
                        policy.section
                    ),
                ));
            }
        }

        // The rule's section over the top-level one, key by key; the policy parses the result.
        let base = config
            .policies
            .iter()
            .find(|s| s.plugin == policy)
            .cloned()
            .unwrap_or_else(|| policy.default_spec());
        let spec = match raw.sections.iter().find(|(k, _)| k == policy.section) {
            None => base,
            Some((_, over)) => {
                let written = RawNode::to_node(over);
                let keys = Keys::new(join(path, policy.section));
                let top = top
                    .iter()
                    .find(|(k, _)| k == policy.section)
                    .map_or_else(Node::empty, |(_, n)| RawNode::to_node(n));
                policy
                    .parse(&top.merged(&written), &keys)
                    .map_err(|e| self.param_error(e, &keys, &written))?
            }
        };
        Ok(Rule {
            remote,
            port,
            interface,
            local_port,
            side,
            spec,
        })
    }
}

/// `a, b or c` of every policy name.
fn one_of() -> String {
    let names: Vec<&str> = plugin::all().iter().map(|p| p.name).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_owned(),
        None => String::new(),
    }
}
