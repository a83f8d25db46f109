//! The schema as written: every key optional and every leaf wrapped in [`Spanned`], so
//! validation in `build.rs` can point at the exact line and column of a bad value.
//!
//! `deny_unknown_fields` everywhere makes misspelt keys errors (located by serde-saphyr).
//! Numeric and boolean leaves are read as an untyped [`Scalar`] so that type checks, like
//! range checks, happen in `build.rs` with the value's own position and the key's name.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// A located optional value.
pub(crate) type Field<T> = Option<Spanned<T>>;

/// Any scalar value, as YAML typed it. Leaves are read as this (not as `u32`, `f64`,
/// `bool`) so a type mismatch becomes a validation error located at the *value*, with
/// the key's name in the message; serde's own type errors are located at the key.
#[derive(Debug, Clone)]
pub(crate) enum Scalar {
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl fmt::Display for Scalar {
    /// How the value is quoted back in error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Int(n) => write!(f, "{n}"),
            Scalar::Float(x) => write!(f, "{x}"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// A string-valued leaf; numbers keep their spelling (`port: 443` gives "443").
#[derive(Debug, Clone)]
pub(crate) struct Text(pub String);

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
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
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Text)
    }
}

/// Root mapping.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub policy: Field<Text>,
    pub fullmesh: Field<RawFullmesh>,
    pub ndiffports: Field<RawNdiffports>,
    pub rtt_based: Field<RawRttBased>,
    pub addresses: Field<RawAddresses>,
    pub kernel: Field<RawKernel>,
    pub poll: Field<RawPoll>,
    pub subflow: Field<RawSubflow>,
    pub log: Field<RawLog>,
    pub control: Field<RawControl>,
    pub metrics: Field<RawMetrics>,
    pub rules: Option<Vec<Spanned<RawRule>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFullmesh {
    pub max_subflows: Field<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNdiffports {
    pub subflows: Field<Scalar>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRttBased {
    pub max_subflows: Field<Scalar>,
    pub backup_ratio: Field<Scalar>,
    pub min_gap_ms: Field<Scalar>,
    pub restore_ratio: Field<Scalar>,
    pub hold_s: Field<Scalar>,
    pub close_on_loss: Field<Scalar>,
    pub loss_threshold: Field<Scalar>,
    pub cooldown_s: Field<Scalar>,
    pub probe_s: Field<Scalar>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub remote: Field<Text>,
    pub port: Field<Text>,
    pub interface: Field<Text>,
    pub policy: Field<Text>,
    pub fullmesh: Field<RawFullmesh>,
    pub ndiffports: Field<RawNdiffports>,
    pub rtt_based: Field<RawRttBased>,
}
