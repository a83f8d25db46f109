//! YAML text -> the located tree that every section is read from (the policies' [`Node`]), and
//! what the YAML reader says -> one-line messages.
//!
//! serde-saphyr reads the text into [`Item`]s: every value with its position (`Spanned`) and
//! its explicit tag (`Tagged`). Converting an item to a [`Node`] is where this schema refuses
//! what YAML would accept but a reader of the file would misread, because only here is the text
//! as written still at hand (each value's span into the source):
//! - **tags** (`!!binary`, `!!str`, ...): a `!!binary` scalar would silently become its decoded
//!   text, `!!str 12` a string where every other `12` is a number. No value here needs a tag.
//! - **numbers not written in decimal**: YAML 1.2 reads `0x10`, `0o10` and `1_0` as 16, 8 and
//!   10; only decimal integers and decimal fractions (`[-+]?digits`, `1.5`, `2e3`) are numbers
//!   here, so a value means what it says to someone who does not know YAML's integer forms.
//! - **integers beyond what any key takes** are kept with all their digits (serde-saphyr gives
//!   anything past 64 bits as a rounded float), so a refusal quotes the value as written.
//! - **keys longer than [`MAX_KEY_CHARS`]** (YAML's own limit for a `key: value` key): the
//!   parser is told to look further so that such a key is read as a key and refused by its
//!   length, instead of the whole line becoming one string and the file "not a mapping".

use std::fmt;

use mptcp_pmd_policies::params::{Key, Node, Pos, Value};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::{Location, MessageFormatter, Spanned, Tagged, UserMessageFormatter};

use crate::error::ConfigError;
use crate::file::MAX_BYTES;

/// YAML limits implicit keys to 1024 characters; every key of this schema is a short name.
pub(crate) const MAX_KEY_CHARS: usize = 1024;

/// The YAML reader's limits. A configuration has a few hundred values, no anchors to speak of
/// and a nesting depth under ten; these leave ample room and keep a hostile file (an alias
/// bomb, a million-element list) from costing more than a few MB and milliseconds.
const MAX_NODES: usize = 50_000;
const MAX_DEPTH: usize = 32;
const MAX_REPLAYED_EVENTS: usize = 20_000;

/// A value as serde-saphyr gives it, with its position and tag.
pub(crate) type Item = Spanned<Tagged<Raw>>;

/// A mapping key as written, with its position and tag.
pub(crate) type RawKey = Spanned<Tagged<String>>;

/// A value as serde-saphyr resolved it (before this schema's checks).
#[derive(Debug)]
pub(crate) enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Item>),
    Map(Vec<(RawKey, Item)>),
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value, a list or a mapping")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Item>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<RawKey>()? {
            let value = map.next_value::<Item>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

/// The source text and its name, for converting items and locating errors.
pub(crate) struct Doc<'a> {
    /// The YAML text.
    pub src: &'a str,
    /// The source name for messages (usually the path).
    pub file: &'a str,
}

/// Reads `text` as one YAML document (`None`: empty, comments only, `~`).
pub(crate) fn yaml(doc: &Doc<'_>) -> Result<Option<Item>, ConfigError> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = MAX_NODES;
    budget.max_depth = MAX_DEPTH;
    // Long keys are read as keys, and refused by their length (see the module docs).
    budget.simple_key_max_lookahead = MAX_BYTES as usize;
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    let options = serde_saphyr::options! {
        // We render our own one-line `file:line:col: message`.
        with_snippet: false,
        // Only true/false: `close_on_loss: no` should not silently mean false.
        strict_booleans: true,
        // `!tag`s have no meaning in this schema (the known ones are refused in `Doc::node`).
        reject_unsupported_tags: true,
        budget: Some(budget),
        alias_limits: alias_limits,
    };
    serde_saphyr::from_str_with_options(doc.src, options).map_err(|e| doc.yaml_error(&e))
}

/// `tag:yaml.org,2002:binary` as a user writes it: `!!binary`.
fn short_tag(tag: &str) -> String {
    match tag.strip_prefix("tag:yaml.org,2002:") {
        Some(t) => format!("!!{t}"),
        None => tag.to_owned(),
    }
}

/// `[-+]?[0-9]+`: a YAML 1.2 decimal integer.
fn is_decimal_int(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`: a YAML 1.2 core-schema decimal
/// number with a fraction or an exponent.
fn is_decimal_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        None => !int.is_empty() && digits(int),
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
    };
    let exponent_ok = exponent.is_none_or(is_decimal_int);
    mantissa_ok && exponent_ok
}

fn pos(at: &Location) -> Pos {
    Pos {
        line: at.line(),
        col: at.column(),
    }
}

impl Doc<'_> {
    /// A parse error at `at` (a position before the first line is the file's start).
    pub(crate) fn error(&self, at: Pos, msg: impl Into<String>) -> ConfigError {
        let (line, col) = if at.line == 0 {
            (1, 1)
        } else {
            (at.line, at.col)
        };
        ConfigError::Parse {
            file: self.file.to_owned(),
            line,
            col,
            msg: msg.into(),
        }
    }

    /// The text the value at `at` was written as (its definition, for an alias).
    fn written(&self, at: &Location) -> Option<&str> {
        let span = at.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        self.src.get(start..start.checked_add(len)?)
    }

    /// True for a value written as nothing at all (`key:`), not as `~` or `null`.
    pub(crate) fn is_empty(&self, item: &Item) -> bool {
        matches!(item.value.0, Raw::Null)
            && self
                .written(&item.defined)
                .is_none_or(|t| t.trim().is_empty())
    }

    /// A mapping key: no tag, at most [`MAX_KEY_CHARS`] characters.
    pub(crate) fn key(&self, k: &RawKey) -> Result<Key, ConfigError> {
        let at = pos(&k.referenced);
        if let Some(tag) = &k.value.1 {
            return Err(self.error(at, tag_refusal(tag)));
        }
        let name = &k.value.0;
        let chars = name.chars().count();
        if chars > MAX_KEY_CHARS {
            let head: String = name.chars().take(20).collect();
            return Err(self.error(
                at,
                format!(
                    "this key ({head:?}...) is {chars} characters long: YAML keys are at most {MAX_KEY_CHARS} characters, and every key of this configuration is a short name"
                ),
            ));
        }
        Ok(Key {
            name: name.clone(),
            at,
        })
    }

    /// The value of `item`, refused if it carries a tag.
    pub(crate) fn untagged<'i>(&self, item: &'i Item) -> Result<&'i Raw, ConfigError> {
        match &item.value {
            Tagged(raw, None) => Ok(raw),
            Tagged(_, Some(tag)) => Err(self.error(pos(&item.referenced), tag_refusal(tag))),
        }
    }

    /// The located tree of `item`, refusing tags and numbers not written in decimal.
    pub(crate) fn node(&self, item: &Item) -> Result<Node, ConfigError> {
        let at = pos(&item.referenced);
        let raw = self.untagged(item)?;
        let value = match raw {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(*b),
            Raw::Str(s) => Value::Str(s.clone()),
            Raw::Int(_) | Raw::Float(_) => self.number(item, raw, at)?,
            Raw::Seq(items) => Value::Seq(
                items
                    .iter()
                    .map(|i| self.node(i))
                    .collect::<Result<_, _>>()?,
            ),
            Raw::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((self.key(k)?, self.node(v)?)))
                    .collect::<Result<_, ConfigError>>()?,
            ),
        };
        Ok(Node { value, at })
    }

    /// A plain scalar YAML read as a number: decimal only, integers with all their digits.
    fn number(&self, item: &Item, raw: &Raw, at: Pos) -> Result<Value, ConfigError> {
        let resolved = match raw {
            Raw::Int(n) => Value::Int(*n),
            Raw::Float(x) => Value::Float(*x),
            _ => Value::Null,
        };
        // Without the source span (not expected for text input) the value stands as resolved.
        let Some(text) = self.written(&item.defined).map(str::trim) else {
            return Ok(resolved);
        };
        if is_decimal_int(text) {
            return text.parse::<i128>().map(Value::Int).map_err(|_| {
                self.error(
                    at,
                    format!("the integer {text} is too large for any setting"),
                )
            });
        }
        if is_decimal_float(text) {
            return Ok(resolved);
        }
        let reads_as = match raw {
            Raw::Int(n) => n.to_string(),
            Raw::Float(x) => x.to_string(),
            _ => String::new(),
        };
        Err(self.error(
            at,
            format!(
                "{text} is not a decimal number (YAML would read it as {reads_as}): write numbers in decimal, or quote the value if it is text"
            ),
        ))
    }

    /// What the YAML reader said, as one line at its location.
    fn yaml_error(&self, e: &serde_saphyr::Error) -> ConfigError {
        let at = e.location().map(|l| pos(&l)).unwrap_or_default();
        // The error behind alias and snippet wrappers (its own location stays the outer one's).
        let mut inner = e.without_snippet();
        while let serde_saphyr::Error::AliasError { error, .. }
        | serde_saphyr::Error::WithSnippet { error, .. } = inner
        {
            inner = error;
        }
        // serde-saphyr names parser events and prints its limits as Rust structs; say what the
        // user has to know instead.
        let msg = match inner {
            serde_saphyr::Error::Unexpected { expected, .. } => match *expected {
                "mapping start" => {
                    "expected a mapping (indented `key: value` lines or `{key: value}`)".into()
                }
                "sequence start" => "expected a list (`[a, b]` or `- a` lines)".into(),
                "string scalar" => "expected a single value, not a list or mapping".into(),
                _ => UserMessageFormatter.format_message(inner).into_owned(),
            },
            serde_saphyr::Error::Budget { breach, .. } => budget_message(breach),
            serde_saphyr::Error::AliasReplayLimitExceeded { .. }
            | serde_saphyr::Error::AliasExpansionLimitExceeded { .. }
            | serde_saphyr::Error::AliasReplayStackDepthExceeded { .. }
            | serde_saphyr::Error::AliasReplayCounterOverflow { .. } => format!(
                "refused: its aliases (`*name`) expand to more than {MAX_REPLAYED_EVENTS} values; a configuration needs few if any"
            ),
            _ => UserMessageFormatter.format_message(inner).into_owned(),
        };
        self.error(at, clean(&msg))
    }
}

/// Why a tagged value or key is refused.
fn tag_refusal(tag: &str) -> String {
    format!(
        "the YAML tag `{}` is not supported here: write the value itself (in quotes if it is text)",
        short_tag(tag)
    )
}

/// One sentence per limit of the YAML reader (instead of serde-saphyr's debug output).
fn budget_message(breach: &BudgetBreach) -> String {
    let what = match breach {
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => {
            format!("it holds more than {MAX_NODES} values")
        }
        BudgetBreach::Depth { .. } => format!("it is nested more than {MAX_DEPTH} levels deep"),
        BudgetBreach::ScalarBytes { .. } => "its values hold too much text".to_owned(),
        BudgetBreach::CommentBytes { .. } => "its comments hold too much text".to_owned(),
        BudgetBreach::InputBytes { .. } => format!("it is larger than {MAX_BYTES} bytes"),
        BudgetBreach::Documents { .. } => "it holds too many YAML documents".to_owned(),
        BudgetBreach::Aliases { .. }
        | BudgetBreach::Anchors { .. }
        | BudgetBreach::AliasAnchorRatio { .. }
        | BudgetBreach::RecordedAnchorEvents { .. }
        | BudgetBreach::RecordedAnchorBytes { .. } => {
            "it uses too many anchors (`&name`) or aliases (`*name`)".to_owned()
        }
        BudgetBreach::MergeKeys { .. } => "it uses too many merge keys (`<<`)".to_owned(),
        BudgetBreach::SequenceUnbalanced => "its lists and mappings are not closed".to_owned(),
        _ => "it exceeds a limit of the YAML reader".to_owned(),
    };
    format!("refused: {what}; a configuration is a few hundred short values")
}

/// The message may quote the input: keep it on one line and free of terminal escapes.
fn clean(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for c in msg.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_forms() {
        for s in [
            "0",
            "7",
            "-7",
            "+7",
            "007",
            "123456789012345678901234567890",
        ] {
            assert!(is_decimal_int(s), "{s}");
        }
        for s in ["", "-", "0x10", "0o10", "1_0", "1.0", "1e3", " 1"] {
            assert!(!is_decimal_int(s), "{s}");
        }
        for s in ["1.5", ".5", "5.", "-1.5e3", "2E-3", "1e3", "+0.0"] {
            assert!(is_decimal_float(s), "{s}");
        }
        for s in [
            ".", "e3", "1e", "1_0.5", "0x1p3", "1.5e+", ".inf", "1..2", "1e3.5",
        ] {
            assert!(!is_decimal_float(s), "{s}");
        }
    }

    #[test]
    fn tags_are_spelled_as_written() {
        assert_eq!(short_tag("tag:yaml.org,2002:binary"), "!!binary");
        assert_eq!(short_tag("!custom"), "!custom");
    }
}
