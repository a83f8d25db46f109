//! The file's top level and its rules -> [`Config`]. Every section, core or policy, is read the
//! same way: its located tree deserialized into the section's own struct (which holds the keys,
//! defaults and checks) and then checked across keys. What is left here is what no section
//! owns: which top-level key is which section, the `policy` name, and the rules (their matchers
//! are a serde struct too; a rule's `policy`, its override section merged over the top-level
//! one, and the checks that need the registry are read here). Every error carries the position
//! of what it is about.

use mptcp_pmd_policies::params::{from_node, Key, Keys, Node, ParamError, Pos, Value};
use mptcp_pmd_policies::plugin::{self, Plugin, Serves};
use serde::de::{self, Deserialize, Visitor};

use crate::error::ConfigError;
use crate::metered::MeteredConfig;
use crate::read::{Doc, Item, Raw};
use crate::sections::{
    AddressFilter, ControlConfig, KernelConfig, LogConfig, MetricsConfig, PollConfig, Section,
    SubflowConfig,
};
use crate::types::{find_policy, Config, Rule, Side, UnknownPolicy, RULES};

type Result<T> = std::result::Result<T, ConfigError>;

const EXPECT_MAP: &str = "expected a mapping (indented `key: value` lines or `{key: value}`)";
const EXPECT_SEQ: &str = "expected a list (`[a, b]` or `- a` lines)";
const EXPECT_SCALAR: &str = "expected a single value, not a list or mapping";

/// The key naming a connection's policy, at the top level and in a rule.
const POLICY: &str = "policy";

/// Validation context: the document being read.
pub(crate) struct Builder<'a> {
    pub doc: &'a Doc<'a>,
}

/// `"a.b"` for nested keys, `"b"` at the top.
fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn pos(item: &Item) -> Pos {
    Pos {
        line: item.referenced.line(),
        col: item.referenced.column(),
    }
}

/// The keys of the top level, in the order messages list them (and the example has them).
fn root_keys() -> Vec<&'static str> {
    let mut v = vec![POLICY];
    v.extend(plugin::all().iter().map(|p| p.section));
    v.extend([
        AddressFilter::KEY,
        KernelConfig::KEY,
        PollConfig::KEY,
        SubflowConfig::KEY,
        LogConfig::KEY,
        ControlConfig::KEY,
        MetricsConfig::KEY,
        MeteredConfig::KEY,
        RULES,
    ]);
    v
}

/// The keys of a rule: its matchers (the fields of [`Rule`]), `policy`, the policies' sections.
fn rule_keys() -> Vec<&'static str> {
    let mut v = fields_of::<Rule>().to_vec();
    v.push(POLICY);
    v.extend(plugin::all().iter().map(|p| p.section));
    v
}

/// `a, b or c` of every policy name that acts on connections of this side.
fn policies_serving(server_side: bool) -> String {
    let names: Vec<&str> = plugin::all()
        .iter()
        .filter(|p| p.serves.covers(server_side))
        .map(|p| p.name)
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => (*last).to_owned(),
        None => String::new(),
    }
}

impl Builder<'_> {
    fn invalid(&self, at: Pos, key: &str, msg: String) -> ConfigError {
        let (line, col) = self.at(Some(at));
        ConfigError::Invalid {
            file: self.doc.file.to_owned(),
            line,
            col,
            key: key.to_owned(),
            msg,
        }
    }

    fn at(&self, at: Option<Pos>) -> (u64, u64) {
        match at {
            Some(p) if p.line > 0 => (p.line, p.col),
            _ => (1, 1),
        }
    }

    fn unknown_key(&self, key: &Key, expected: &[&str]) -> ConfigError {
        self.doc.error(
            key.at,
            format!(
                "unknown field `{}`, expected one of {}",
                key.name,
                expected.join(", ")
            ),
        )
    }

    /// A section's error, located: shape errors are parse errors, value errors point at the
    /// value, check errors at the first of their fields that `written` (the section as the
    /// file has it) sets, else at the section.
    fn param_error(&self, e: ParamError, keys: &Keys, written: &Node) -> ConfigError {
        match e {
            ParamError::Shape { at, msg } => {
                let (line, col) = self.at(at);
                ConfigError::Parse {
                    file: self.doc.file.to_owned(),
                    line,
                    col,
                    msg,
                }
            }
            ParamError::Value { key, at, msg } => {
                let (line, col) = self.at(at);
                ConfigError::Invalid {
                    file: self.doc.file.to_owned(),
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
                self.invalid(at, &keys.key(field), msg)
            }
        }
    }

    /// Reads the core section `S` into `slot` if `name` is its key.
    fn section<S: Section>(&self, name: &str, value: &Item, slot: &mut S) -> Result<bool> {
        if name != S::KEY {
            return Ok(false);
        }
        let node = self.doc.node(value)?;
        let keys = Keys::new(S::KEY);
        let section: S = from_node(&node, &keys).map_err(|e| self.param_error(e, &keys, &node))?;
        section
            .validate(&node, &keys)
            .map_err(|e| self.param_error(e, &keys, &node))?;
        *slot = section;
        Ok(true)
    }

    /// A policy name; `None` for `policy:` with nothing after it (the default).
    fn policy_name(&self, value: &Item, key: &str) -> Result<Option<&'static Plugin>> {
        if let (Raw::Null, None) = (&value.value.0, &value.value.1) {
            if self.doc.is_empty(value) {
                return Ok(None);
            }
            return Err(self.invalid(
                pos(value),
                key,
                format!(
                    "{key}: `~` or `null` names no policy: leave the key out for the default ({}), or name one of {}",
                    plugin::default_plugin(),
                    plugin::names()
                ),
            ));
        }
        let node = self.doc.node(value)?;
        let name = match &node.value {
            Value::Str(s) => s.clone(),
            Value::Int(n) => n.to_string(),
            Value::Float(x) => x.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null | Value::Seq(_) | Value::Map(_) => {
                return Err(self.doc.error(node.at, EXPECT_SCALAR))
            }
        };
        find_policy(&name)
            .map(Some)
            .map_err(|e: UnknownPolicy| self.invalid(node.at, key, e.to_string()))
    }

    pub(crate) fn config(&self, root: Option<Item>) -> Result<Config> {
        let mut config = Config::default();
        let Some(root) = root else {
            return Ok(config);
        };
        let entries = match self.doc.untagged(&root)? {
            Raw::Null => return Ok(config),
            Raw::Map(entries) => entries,
            _ => return Err(self.doc.error(pos(&root), EXPECT_MAP)),
        };
        // The policies' top-level sections as written: a rule's override is merged over them.
        let mut written: Vec<(&'static Plugin, Node)> = Vec::new();
        let mut rules = None;
        for (k, value) in entries {
            let key = self.doc.key(k)?;
            let name = key.name.as_str();
            if name == POLICY {
                if let Some(p) = self.policy_name(value, POLICY)? {
                    config.policy = p;
                }
            } else if name == RULES {
                rules = Some(value);
            } else if let Some(p) = plugin::find_section(name) {
                let node = self.doc.node(value)?;
                let keys = Keys::new(p.section);
                let spec = p
                    .parse(&node, &keys)
                    .map_err(|e| self.param_error(e, &keys, &node))?;
                if let Some(slot) = config.policies.iter_mut().find(|s| s.plugin == p) {
                    *slot = spec;
                }
                written.push((p, node));
            } else {
                let c = &mut config;
                let known = self.section(name, value, &mut c.addresses)?
                    || self.section(name, value, &mut c.kernel)?
                    || self.section(name, value, &mut c.poll)?
                    || self.section(name, value, &mut c.subflow)?
                    || self.section(name, value, &mut c.log)?
                    || self.section(name, value, &mut c.control)?
                    || self.section(name, value, &mut c.metrics)?
                    || self.section(name, value, &mut c.metered)?;
                if !known {
                    return Err(self.unknown_key(&key, &root_keys()));
                }
            }
        }
        if let Some(value) = rules {
            let items: &[Item] = match self.doc.untagged(value)? {
                Raw::Null => &[],
                Raw::Seq(items) => items,
                _ => return Err(self.doc.error(pos(value), EXPECT_SEQ)),
            };
            for (i, item) in items.iter().enumerate() {
                let rule = self.rule(&config, &written, item, &format!("{RULES}[{i}]"))?;
                config.rules.push(rule);
            }
        }
        Ok(config)
    }

    fn rule(
        &self,
        config: &Config,
        top: &[(&'static Plugin, Node)],
        item: &Item,
        path: &str,
    ) -> Result<Rule> {
        let Raw::Map(entries) = self.doc.untagged(item)? else {
            return Err(self.doc.error(pos(item), EXPECT_MAP));
        };
        let matcher_keys = fields_of::<Rule>();
        let mut matchers = Vec::new();
        let mut policy_item = None;
        let mut sections = Vec::new();
        for (k, value) in entries {
            let key = self.doc.key(k)?;
            if key.name == POLICY {
                policy_item = Some(value);
            } else if let Some(p) = plugin::find_section(&key.name) {
                sections.push((p, key, self.doc.node(value)?));
            } else if matcher_keys.contains(&key.name.as_str()) {
                let node = self.doc.node(value)?;
                matchers.push((key, node));
            } else {
                return Err(self.unknown_key(&key, &rule_keys()));
            }
        }
        let written = Node {
            value: Value::Map(matchers),
            at: pos(item),
        };
        let keys = Keys::new(path);
        let mut rule: Rule =
            from_node(&written, &keys).map_err(|e| self.param_error(e, &keys, &written))?;
        if rule.remote.is_none()
            && rule.port.is_none()
            && rule.interface.is_none()
            && rule.local_port.is_none()
            && rule.side.is_none()
        {
            return Err(self.invalid(
                pos(item),
                path,
                format!("{path} matches every connection: give at least one of {} (or set the top-level policy instead)", matcher_keys.join(", ")),
            ));
        }
        let policy_key = join(path, POLICY);
        let chosen = match policy_item {
            Some(value) => self.policy_name(value, &policy_key)?,
            None => None,
        };
        let Some(policy) = chosen else {
            return Err(self.invalid(
                pos(item),
                &policy_key,
                format!("{path} has no policy, expected policy: {}", one_of()),
            ));
        };
        if let Some(side) = rule.side {
            let server_side = side == Side::Server;
            if !policy.serves.covers(server_side) {
                let (serves, other) = match policy.serves {
                    Serves::Server => ("accepted here (side: server)", Side::Server),
                    _ => ("dialled from here (side: client)", Side::Client),
                };
                let at = policy_item.map_or(pos(item), pos);
                return Err(self.invalid(
                    at,
                    &policy_key,
                    format!(
                        "{path} gives side: {side} connections the policy {policy}, which acts only on connections {serves}: they would get no path management at all; use {} for side: {side}, or side: {other}",
                        policies_serving(server_side)
                    ),
                ));
            }
        }

        // An override section must belong to the rule's own policy.
        for (p, key, value) in &sections {
            if *p != policy {
                let section = p.section;
                return Err(self.invalid(
                    value.at,
                    &join(path, &key.name),
                    format!(
                        "{path} sets {section}: parameters but its policy is {policy}; use {}: or change the policy",
                        policy.section
                    ),
                ));
            }
        }

        // The rule's section over the top-level one, key by key; the policy parses the result.
        rule.spec = match sections.first() {
            None => config
                .policies
                .iter()
                .find(|s| s.plugin == policy)
                .cloned()
                .unwrap_or_else(|| policy.default_spec()),
            Some((_, _, over)) => {
                let keys = Keys::new(join(path, policy.section));
                let base = top
                    .iter()
                    .find(|(p, _)| *p == policy)
                    .map_or_else(Node::empty, |(_, n)| n.clone());
                policy
                    .parse(&base.merged(over), &keys)
                    .map_err(|e| self.param_error(e, &keys, over))?
            }
        };
        Ok(rule)
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

/// The keys a derived `Deserialize` struct reads (serde passes them to `deserialize_struct`),
/// so that a list of a struct's keys is not written a second time by hand.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    /// Ends the probe: the fields, or none if `T` is not a struct.
    #[derive(Debug)]
    struct Fields(&'static [&'static str]);

    impl std::fmt::Display for Fields {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fields {:?}", self.0)
        }
    }
    impl std::error::Error for Fields {}
    impl de::Error for Fields {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Fields(&[])
        }
    }

    struct Probe;
    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Fields;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, Fields> {
            Err(Fields(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> std::result::Result<V::Value, Fields> {
            Err(Fields(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Fields(f)) => f,
        Ok(_) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_matchers_are_the_fields_of_rule() {
        assert_eq!(
            fields_of::<Rule>(),
            ["remote", "port", "interface", "local_port", "side"]
        );
    }
}
