//! The schema as written: every key optional and every leaf wrapped in [`Spanned`], so
//! validation in `build.rs` can point at the exact line and column of a bad value. The
//! policies' sections (at the top level and in rules) are not part of this schema: their keys
//! come from the policy registry, and their content is kept as a located tree ([`RawNode`])
//! that each policy parses itself.
//!
//! `deny_unknown_fields` everywhere makes misspelt keys errors (located by serde-saphyr).
//! Numeric and boolean leaves are read as an untyped [`Scalar`] so that type checks, like
//! range checks, happen in `build.rs` with the value's own position and the key's name.

use std::fmt;

use std::sync::OnceLock;

use mptcp_pmd_policies::params::{Key, Node, Pos, Value};
use mptcp_pmd_policies::plugin;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

/// A located optional value.
pub(crate) type Field<T> = Option<Spanned<T>>;

pub(crate) use mptcp_pmd_policies::params::Scalar;

/// A string-valued leaf; numbers keep their spelling (`port: 443` gives "443").
#[derive(Debug, Clone)]
pub(crate) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Text)
    }
}

/// A policy's section, kept as a located tree: the policy parses it itself (see
/// [`mptcp_pmd_policies::params`]).
#[derive(Debug, Clone)]
pub(crate) enum RawNode {
    Null,
    Scalar(Scalar),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<String>, Spanned<RawNode>)>),
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = RawNode;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value, a list or a mapping")
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Scalar::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Scalar::Int(v.into())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Scalar::Int(v.into())))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Scalar::Int(v)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(
            i128::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int),
        ))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Scalar::Float(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Scalar::Str(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Scalar(Scalar::Str(v)))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<RawNode>>()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            let value = map.next_value::<Spanned<RawNode>>()?;
            entries.push((key, value));
        }
        Ok(RawNode::Map(entries))
    }
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

fn pos(at: &Location) -> Pos {
    Pos {
        line: at.line(),
        col: at.column(),
    }
}

impl RawNode {
    /// The policies' located tree (positions from where each value is referenced).
    pub(crate) fn to_node(this: &Spanned<RawNode>) -> Node {
        let value = match &this.value {
            RawNode::Null | RawNode::Scalar(Scalar::Null) => Value::Null,
            RawNode::Scalar(Scalar::Int(n)) => Value::Int(*n),
            RawNode::Scalar(Scalar::Float(x)) => Value::Float(*x),
            RawNode::Scalar(Scalar::Bool(b)) => Value::Bool(*b),
            RawNode::Scalar(Scalar::Str(s)) => Value::Str(s.clone()),
            RawNode::Seq(items) => Value::Seq(items.iter().map(RawNode::to_node).collect()),
            RawNode::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        (
                            Key {
                                name: k.value.clone(),
                                at: pos(&k.referenced),
                            },
                            RawNode::to_node(v),
                        )
                    })
                    .collect(),
            ),
        };
        Node {
            value,
            at: pos(&this.referenced),
        }
    }
}

/// A policy parameter section as written: its key and its located value.
pub(crate) type RawSection = (String, Spanned<RawNode>);

/// The keys of the root mapping other than the policies' sections.
const ROOT_KEYS: [&str; 8] = [
    "addresses",
    "kernel",
    "poll",
    "subflow",
    "log",
    "control",
    "metrics",
    "rules",
];

/// The keys of a rule other than the policies' sections.
const RULE_KEYS: [&str; 6] = [
    "remote",
    "port",
    "interface",
    "local_port",
    "side",
    "policy",
];

/// `policy`, the registered policy sections, then `rest`: the order unknown-key messages list.
fn keys_with_sections(
    cell: &'static OnceLock<Vec<&'static str>>,
    head: &[&'static str],
    rest: &[&'static str],
) -> &'static [&'static str] {
    cell.get_or_init(|| {
        let mut v: Vec<&'static str> = head.to_vec();
        v.extend(plugin::all().iter().map(|p| p.section));
        v.extend_from_slice(rest);
        v
    })
}

fn root_keys() -> &'static [&'static str] {
    static K: OnceLock<Vec<&'static str>> = OnceLock::new();
    keys_with_sections(&K, &["policy"], &ROOT_KEYS)
}

fn rule_keys() -> &'static [&'static str] {
    static K: OnceLock<Vec<&'static str>> = OnceLock::new();
    keys_with_sections(&K, &RULE_KEYS, &[])
}

/// Root mapping.
#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub policy: Field<Text>,
    /// The policies' sections present, in file order.
    pub sections: Vec<RawSection>,
    pub addresses: Field<RawAddresses>,
    pub kernel: Field<RawKernel>,
    pub poll: Field<RawPoll>,
    pub subflow: Field<RawSubflow>,
    pub log: Field<RawLog>,
    pub control: Field<RawControl>,
    pub metrics: Field<RawMetrics>,
    pub rules: Option<Vec<Spanned<RawRule>>>,
}

struct RootVisitor;

impl<'de> Visitor<'de> for RootVisitor {
    type Value = RawConfig;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the configuration mapping")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawConfig, A::Error> {
        let mut c = RawConfig::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "policy" => c.policy = map.next_value()?,
                "addresses" => c.addresses = map.next_value()?,
                "kernel" => c.kernel = map.next_value()?,
                "poll" => c.poll = map.next_value()?,
                "subflow" => c.subflow = map.next_value()?,
                "log" => c.log = map.next_value()?,
                "control" => c.control = map.next_value()?,
                "metrics" => c.metrics = map.next_value()?,
                "rules" => c.rules = map.next_value()?,
                s if plugin::find_section(s).is_some() => c.sections.push((key, map.next_value()?)),
                s => return Err(de::Error::unknown_field(s, root_keys())),
            }
        }
        Ok(c)
    }
}

impl<'de> Deserialize<'de> for RawConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("RawConfig", root_keys(), RootVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAddresses {
    pub skip_loopback: Field<Scalar>,
    pub skip_link_local: Field<Scalar>,
    pub include_interfaces: Option<Vec<Spanned<Text>>>,
    pub exclude_interfaces: Option<Vec<Spanned<Text>>>,
    pub backup_interfaces: Option<Vec<Spanned<Text>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKernel {
    pub set_userspace_pm: Field<Scalar>,
    pub events_rcvbuf: Field<Scalar>,
    pub nice: Field<Scalar>,
    pub realtime_priority: Field<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoll {
    pub interval_ms: Field<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubflow {
    pub request_timeout_ms: Field<Scalar>,
    pub backoff_initial_ms: Field<Scalar>,
    pub backoff_max_ms: Field<Scalar>,
    pub max_retries: Field<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub level: Field<Text>,
    pub format: Field<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    pub socket: Field<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub listen: Field<Text>,
}

/// One entry of `rules:`.
#[derive(Debug, Default)]
pub(crate) struct RawRule {
    pub remote: Field<Text>,
    pub port: Field<Text>,
    pub interface: Field<Text>,
    pub local_port: Field<Text>,
    pub side: Field<Text>,
    pub policy: Field<Text>,
    /// The policies' override sections present, in file order.
    pub sections: Vec<RawSection>,
}

struct RuleVisitor;

impl<'de> Visitor<'de> for RuleVisitor {
    type Value = RawRule;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rule mapping")
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawRule, A::Error> {
        let mut r = RawRule::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "remote" => r.remote = map.next_value()?,
                "port" => r.port = map.next_value()?,
                "interface" => r.interface = map.next_value()?,
                "local_port" => r.local_port = map.next_value()?,
                "side" => r.side = map.next_value()?,
                "policy" => r.policy = map.next_value()?,
                s if plugin::find_section(s).is_some() => r.sections.push((key, map.next_value()?)),
                s => return Err(de::Error::unknown_field(s, rule_keys())),
            }
        }
        Ok(r)
    }
}

impl<'de> Deserialize<'de> for RawRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("RawRule", rule_keys(), RuleVisitor)
    }
}
