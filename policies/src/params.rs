//! A policy's configuration section as a located value tree ([`Node`]), and the serde
//! deserializer that turns it into the policy's own parameter struct with errors that say
//! *where* and *what* ([`ParamError`]).
//!
//! Why a tree of our own: the config crate reads YAML (with line and column of every value);
//! a policy only declares a plain serde struct. Handing the policy a [`Node`] keeps this crate
//! free of any YAML library, lets the config merge a rule's override section over the
//! top-level section key by key before the policy parses it, and lets every error carry the
//! position of the key or value it is about.
//!
//! Error positions follow one rule: a *shape* error (an unknown key, a list where a single
//! value belongs) points at the key whose value is wrong; a *value* error (out of range, the
//! wrong kind of scalar) points at the value. The helpers [`int`], [`float`] and [`boolean`]
//! (for `#[serde(deserialize_with = ...)]`) produce value errors that name the range; a type
//! that parses text with a message of its own refuses with [`refuse`] (also a value error).
//!
//! An empty or null value (`key:`, `key: ~`) is nothing: an `Option` reads it as `None`, a
//! section or a list as empty, and anything else refuses it (`needs a value`), so that `~` never
//! silently means a default.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};
use serde::Deserializer;

/// A 1-based line and column in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1 (0: unknown).
    pub line: u64,
    /// Column in characters, from 1 (0: unknown).
    pub col: u64,
}

/// A value of the configuration tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An empty value (`key:` with nothing after it, or `~`).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i128),
    /// A number with a fraction or exponent (also `.nan`, `.inf`).
    Float(f64),
    /// Any other scalar.
    Str(String),
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Key, Node)>),
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Its position.
    pub at: Pos,
}

/// A mapping key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key.
    pub name: String,
    /// Its position.
    pub at: Pos,
}

impl Node {
    /// An empty mapping at an unknown position (a section that was not written).
    pub fn empty() -> Node {
        Node {
            value: Value::Map(Vec::new()),
            at: Pos::default(),
        }
    }

    /// The entry `name` of a mapping node.
    pub fn get(&self, name: &str) -> Option<(&Key, &Node)> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(k, v)| (k, v)),
            _ => None,
        }
    }

    /// `over`'s entries on top of this mapping's: keys `over` sets replace this node's,
    /// the others are kept (a rule's override section over the top-level section). Where
    /// either side is not a mapping, `over` wins as a whole.
    pub fn merged(&self, over: &Node) -> Node {
        match (&self.value, &over.value) {
            (Value::Map(base), Value::Map(top)) => {
                let mut out: Vec<(Key, Node)> = base
                    .iter()
                    .filter(|(k, _)| !top.iter().any(|(t, _)| t.name == k.name))
                    .cloned()
                    .collect();
                out.extend(top.iter().cloned());
                Node {
                    value: Value::Map(out),
                    at: over.at,
                }
            }
            (Value::Map(_), Value::Null) => Node {
                value: self.value.clone(),
                at: over.at,
            },
            _ => over.clone(),
        }
    }
}

/// Spells full key names for messages: `keys.key("hold_s")` is `<section>.hold_s` at the top
/// level and `rules[2].<section>.hold_s` in a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (a section's dotted path, e.g. `rules[0].<section>`).
    pub fn new(prefix: impl Into<String>) -> Keys {
        Keys {
            prefix: prefix.into(),
        }
    }

    /// The dotted path of the section itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The full name of `key` (a field, or a path below the section such as `ports[1]`).
    pub fn key(&self, key: &str) -> String {
        match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => key.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{key}", self.prefix),
        }
    }
}

/// Why a policy's section was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The section's structure is wrong (unknown key, list where a single value belongs, ...).
    #[error("{msg}")]
    Shape {
        /// Where (the offending key, or the value that should have been a mapping or list).
        at: Option<Pos>,
        /// What was expected.
        msg: String,
    },
    /// One value is not acceptable. The message is complete (`<section>.max_subflows must
    /// be an integer between 1 and 64, got 0`).
    #[error("{msg}")]
    Value {
        /// The full dotted key of the value.
        key: String,
        /// Where the value is.
        at: Option<Pos>,
        /// The message.
        msg: String,
    },
    /// A check across values failed (from [`crate::plugin::PolicyParams::validate`]). The
    /// config points at the first of `fields` that the section sets.
    #[error("{msg}")]
    Check {
        /// The fields concerned (relative to the section), most specific first.
        fields: Vec<&'static str>,
        /// The complete message, keys spelled with [`Keys::key`].
        msg: String,
    },
}

impl ParamError {
    /// A cross-field check error (for `validate`).
    pub fn check(fields: &[&'static str], msg: impl Into<String>) -> ParamError {
        ParamError::Check {
            fields: fields.to_vec(),
            msg: msg.into(),
        }
    }
}

/// The error type of the [`Node`] deserializer. Kept apart from [`ParamError`] because serde
/// builds it bottom-up: the key path and positions are filled in on the way out.
#[derive(Debug, Clone, PartialEq)]
pub struct DeError {
    kind: DeKind,
    /// Path below the section (`max_subflows`, `interfaces[1]`), built on the way out.
    path: Vec<String>,
    at: Option<Pos>,
}

#[derive(Debug, Clone, PartialEq)]
enum DeKind {
    Shape(String),
    /// `must be <expected>, got <value>`: the key is prepended when the path is known.
    Value(String),
    /// A value error with a complete message (from [`refuse`]); [`KEY`] in it stands for the key.
    Complete(String),
}

/// In a [`refuse`] message, stands for the full dotted key of the refused value.
pub const KEY: &str = "{key}";

/// What [`refuse`] puts before its message so that [`DeError::custom`] tells it from a shape
/// error. Only our deserializer sees it: another one shows the message with this prefix.
const COMPLETE: &str = "\u{1}complete:";

/// A value error with a message of its own, for a parameter type that parses text (an address,
/// a name from a list, a path): `refuse(format!("invalid {KEY} {text:?}: expected ..."))`.
/// Located at the value like a range error; [`KEY`] in the message is replaced by the value's
/// full dotted key (`rules[0].remote`), and a message without it is shown as it is.
pub fn refuse<E: de::Error>(msg: impl fmt::Display) -> E {
    E::custom(format_args!("{COMPLETE}{msg}"))
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DeKind::Shape(m) => f.write_str(m),
            DeKind::Value(m) => write!(f, "{} {m}", self.path.join(".")),
            DeKind::Complete(m) => {
                f.write_str(&m.replace(KEY, &self.path.join(".").replace(".[", "[")))
            }
        }
    }
}

impl std::error::Error for DeError {}

/// How a scalar is quoted back in messages: strings quoted, numbers and booleans as written.
struct Got<'a>(Unexpected<'a>);

impl fmt::Display for Got<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Bool(b) => write!(f, "{b}"),
            Unexpected::Signed(n) => write!(f, "{n}"),
            Unexpected::Unsigned(n) => write!(f, "{n}"),
            Unexpected::Float(x) => write!(f, "{}", Number(x)),
            Unexpected::Str(s) => write!(f, "{s:?}"),
            Unexpected::Other(s) => f.write_str(s),
            ref other => write!(f, "{other}"),
        }
    }
}

/// A float as it was most likely written: `1e35`, not 36 digits of which 35 are made up.
struct Number(f64);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_finite() && self.0.abs() >= 1e16 {
            write!(f, "{:e}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let msg = msg.to_string();
        match msg.strip_prefix(COMPLETE) {
            Some(m) => DeError {
                kind: DeKind::Complete(m.to_owned()),
                path: Vec::new(),
                at: None,
            },
            None => DeError::shape(msg),
        }
    }

    /// A scalar parameter that does not fit (wrong kind of scalar, or out of range): a value
    /// error, located at the value.
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError {
            kind: DeKind::Value(format!("must be {exp}, got {}", Got(unexp))),
            path: Vec::new(),
            at: None,
        }
    }

    /// Same wording as the YAML reader's own, so every unknown key reads alike.
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::shape(format!(
            "unknown field `{field}`, expected one of {}",
            expected.join(", ")
        ))
    }
}

impl DeError {
    fn shape(msg: impl Into<String>) -> DeError {
        DeError {
            kind: DeKind::Shape(msg.into()),
            path: Vec::new(),
            at: None,
        }
    }

    /// The error came out of the value of entry `key`: record the path and, if no inner
    /// position was set, the key's position (shape) or the value's (value errors).
    fn within(mut self, key: &str, key_at: Pos, value_at: Pos) -> DeError {
        self.path.insert(0, key.to_owned());
        if self.at.is_none() {
            self.at = Some(match self.kind {
                DeKind::Shape(_) => key_at,
                DeKind::Value(_) | DeKind::Complete(_) => value_at,
            });
        }
        self
    }

    /// The error came out of list element `i` (an element has no key: both kinds point at it).
    fn at_index(mut self, i: usize, at: Pos) -> DeError {
        self.path.insert(0, format!("[{i}]"));
        if self.at.is_none() {
            self.at = Some(at);
        }
        self
    }

    fn into_param(self, keys: &Keys, section_at: Pos) -> ParamError {
        let at = Some(self.at.unwrap_or(section_at));
        // `a.[1].b` -> `a[1].b`
        let rel = self.path.join(".").replace(".[", "[");
        match self.kind {
            DeKind::Shape(msg) => ParamError::Shape { at, msg },
            DeKind::Value(msg) => {
                let key = keys.key(&rel);
                ParamError::Value {
                    msg: format!("{key} {msg}"),
                    key,
                    at,
                }
            }
            DeKind::Complete(msg) => {
                let key = keys.key(&rel);
                ParamError::Value {
                    msg: msg.replace(KEY, &key),
                    key,
                    at,
                }
            }
        }
    }
}

/// Deserializes a policy's parameter struct from its section. `keys` spells full key names
/// in messages.
pub fn from_node<T: DeserializeOwned>(node: &Node, keys: &Keys) -> Result<T, ParamError> {
    T::deserialize(NodeDe(node)).map_err(|e| e.into_param(keys, node.at))
}

/// The deserializer over one [`Node`].
struct NodeDe<'a>(&'a Node);

const EXPECT_MAP: &str = "expected a mapping (indented `key: value` lines or `{key: value}`)";
const EXPECT_SEQ: &str = "expected a list (`[a, b]` or `- a` lines)";
const EXPECT_SCALAR: &str = "expected a single value, not a list or mapping";
/// For a value that is nothing where an `Option` would have taken it as `None`.
const NEEDS_VALUE: &str =
    "{key} needs a value (`~`, `null` and nothing are not values here); leave the key out for its default";

impl NodeDe<'_> {
    fn here(&self, msg: &str) -> DeError {
        DeError {
            kind: DeKind::Shape(msg.to_owned()),
            path: Vec::new(),
            at: Some(self.0.at),
        }
    }
}

fn spell(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(n) => Some(n.to_string()),
        Value::Float(x) => Some(x.to_string()),
        Value::Str(s) => Some(s.clone()),
        Value::Null | Value::Seq(_) | Value::Map(_) => None,
    }
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.0.value {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(*b),
            Value::Int(n) => match (i64::try_from(*n), u64::try_from(*n)) {
                (Ok(i), _) => v.visit_i64(i),
                (_, Ok(u)) => v.visit_u64(u),
                _ => v.visit_i128(*n),
            },
            Value::Float(x) => v.visit_f64(*x),
            Value::Str(s) => v.visit_str(s),
            Value::Seq(items) => v.visit_seq(SeqAccess {
                items: items.iter().enumerate(),
            }),
            Value::Map(entries) => v.visit_map(MapAccess {
                entries: entries.iter(),
                value: None,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match self.0.value {
            Value::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match spell(&self.0.value) {
            Some(s) => v.visit_string(s),
            None if self.0.value == Value::Null => Err(DeError {
                kind: DeKind::Complete(NEEDS_VALUE.to_owned()),
                path: Vec::new(),
                at: Some(self.0.at),
            }),
            None => Err(self.here(EXPECT_SCALAR)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        self.deserialize_str(v)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.0.value {
            Value::Seq(items) => v.visit_seq(SeqAccess {
                items: items.iter().enumerate(),
            }),
            Value::Null => v.visit_seq(SeqAccess {
                items: [].iter().enumerate(),
            }),
            _ => Err(self.here(EXPECT_SEQ)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        match &self.0.value {
            Value::Map(entries) => v.visit_map(MapAccess {
                entries: entries.iter(),
                value: None,
            }),
            // An empty section means its defaults.
            Value::Null => v.visit_map(MapAccess {
                entries: [].iter(),
                value: None,
            }),
            _ => Err(self.here(EXPECT_MAP)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        v: V,
    ) -> Result<V::Value, DeError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, DeError> {
        // Unit variants only (`mode: strict`): a string names the variant.
        match &self.0.value {
            Value::Str(s) => v.visit_enum(s.as_str().into_deserializer()),
            Value::Null => Err(DeError {
                kind: DeKind::Complete(NEEDS_VALUE.to_owned()),
                path: Vec::new(),
                at: Some(self.0.at),
            }),
            _ => Err(self.here(EXPECT_SCALAR)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, DeError> {
        v.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char
        bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

struct SeqAccess<'a> {
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, node)) => seed
                .deserialize(NodeDe(node))
                .map(Some)
                .map_err(|e| e.at_index(i, node.at)),
            None => Ok(None),
        }
    }
}

struct MapAccess<'a> {
    entries: std::slice::Iter<'a, (Key, Node)>,
    value: Option<&'a (Key, Node)>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        let (key, _) = entry;
        let de: de::value::StrDeserializer<'_, DeError> = key.name.as_str().into_deserializer();
        seed.deserialize(de).map(Some).map_err(|mut e| {
            // An unknown key: point at it.
            e.at.get_or_insert(key.at);
            e
        })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, node)) = self.value.take() else {
            return Err(DeError::shape("a value without a key"));
        };
        seed.deserialize(NodeDe(node))
            .map_err(|e| e.within(&key.name, key.at, node.at))
    }
}

/// Any scalar, as YAML typed it: what [`int`], [`float`] and [`boolean`] read before they
/// check it, and what the config reads its own numeric and boolean keys as (so that a wrong
/// kind of scalar is a value error located at the value, like a range error). Lists and
/// mappings are shape errors, with the message the YAML reader gives for other single values.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// An integer.
    Int(i128),
    /// A number with a fraction or exponent (an integer beyond i128 too).
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// Any other scalar.
    Str(String),
    /// An empty value.
    Null,
}

impl fmt::Display for Scalar {
    /// How the value is quoted back in messages: strings quoted, the rest as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(x) => write!(f, "{}", Number(*x)),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Null => f.write_str("nothing"),
        }
    }
}

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

impl Scalar {
    /// The value error `must be <exp>, got <this value>`, an integer with all its digits.
    fn refused<E: de::Error>(&self, exp: &dyn de::Expected) -> E {
        let digits;
        let unexp = match self {
            Scalar::Int(n) => match i64::try_from(*n) {
                Ok(i) => Unexpected::Signed(i),
                Err(_) => {
                    digits = n.to_string();
                    Unexpected::Other(&digits)
                }
            },
            Scalar::Float(x) => Unexpected::Float(*x),
            Scalar::Bool(b) => Unexpected::Bool(*b),
            Scalar::Str(s) => Unexpected::Str(s),
            Scalar::Null => Unexpected::Other("nothing (leave the key out for its default)"),
        };
        E::invalid_value(unexp, exp)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a single value (number, true/false or string)")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
        // Beyond i128 it is out of every range anyway; keep it as a float for the message.
        Ok(i128::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
}

fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar, D::Error> {
    d.deserialize_any(ScalarVisitor)
}

/// What an [`int`] accepts, for the message.
struct IntIn(i128, i128);

impl de::Expected for IntIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer between {} and {}", self.0, self.1)
    }
}

/// An integer parameter in `LO..=HI`:
/// `#[serde(deserialize_with = "params::int::<_, _, 1, 64>")]`. Anything else (a fraction, a
/// string, out of range) is a value error naming the range.
pub fn int<'de, D, T, const LO: i128, const HI: i128>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    let s = scalar(d)?;
    let bad = || s.refused::<D::Error>(&IntIn(LO, HI));
    match s {
        Scalar::Int(n) if (LO..=HI).contains(&n) => T::try_from(n).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// What a [`float`] accepts, for the message.
struct NumberIn<'a>(&'a str);

impl de::Expected for NumberIn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a number {}", self.0)
    }
}

/// A finite number for which `ok` holds; `expected` completes "must be a number ..." (e.g.
/// "greater than 0 and at most 1"). Integers are accepted where a number is expected.
pub fn float<'de, D>(d: D, ok: impl Fn(f64) -> bool, expected: &str) -> Result<f64, D::Error>
where
    D: Deserializer<'de>,
{
    let s = scalar(d)?;
    let x = match s {
        Scalar::Float(x) => x,
        Scalar::Int(n) => n as f64,
        _ => f64::NAN,
    };
    if x.is_finite() && ok(x) {
        Ok(x)
    } else {
        Err(s.refused::<D::Error>(&NumberIn(expected)))
    }
}

/// `true` or `false` (only those: `yes`/`no` are not booleans here).
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match scalar(d)? {
        Scalar::Bool(b) => Ok(b),
        s => Err(s.refused::<D::Error>(&"true or false")),
    }
}
