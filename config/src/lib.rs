//! mptcp-pmd's configuration: YAML text -> typed, validated [`Config`].
//!
//! What this crate owns: the schema (one struct per YAML section, every key with a
//! documented default), validation (ranges, CIDRs, port ranges, interface globs,
//! cross-field rules) and errors that always say `file:line:col: what was expected`,
//! for deserialisation and validation errors alike. It also resolves per-destination
//! [`Rule`]s ([`Config::policy_for`]) and renders the effective configuration
//! ([`Config::effective_yaml`]) for `mptcp-pmd --check-config`.
//!
//! What it does not own: the policies' parameter sections. Each compiled-in policy (the
//! registry of `mptcp-pmd-policies`) declares its section's keys, defaults and checks; this
//! crate reads the YAML with positions, hands each policy its section as a located tree, and
//! turns the policy's error into `file:line:col: message`. So the config depends on the
//! policies crate (which depends on nothing of ours), and adding a policy changes nothing
//! here. The only I/O is [`load`] reading the file; [`parse`] is pure.
//!
//! How locations are kept: the YAML is first read into a private mirror of the schema
//! whose leaves are `serde_saphyr::Spanned` (position-carrying) values and whose keys are
//! all optional. Unknown keys, wrong types and YAML syntax errors are located by
//! serde-saphyr; the validation pass then fills defaults and checks values with the
//! positions it kept, so no second search of the text is needed.
//!
//! Empty input: a file that is empty, holds only comments, or is an explicit empty
//! document (`---` or `~`) gives [`Config::default()`]. So does a section left empty
//! (`poll:` with nothing under it) for that section.

mod build;
mod error;
mod net;
mod raw;
mod types;

use std::path::Path;

use serde_saphyr::{MessageFormatter, UserMessageFormatter};

pub use error::ConfigError;
pub use mptcp_pmd_policies::addrmatch::{glob_match, Cidr, CidrError};
pub use mptcp_pmd_policies::plugin::{Plugin, PolicySpec};
pub use net::{PortRange, PortRangeError};
pub use types::{
    find_policy, AddressFilter, Config, ControlConfig, KernelConfig, LogConfig, LogFormat,
    LogLevel, MetricsConfig, PollConfig, Rule, RuleTarget, Side, SubflowConfig, UnknownPolicy,
};

/// Where the daemon looks for its configuration when `-c` is not given.
pub const DEFAULT_PATH: &str = "/etc/mptcp-pm.yaml";

/// Parses and validates configuration `text`. `source_name` (usually the path) is only
/// used in error messages.
pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigError> {
    let options = serde_saphyr::options! {
        // We render our own one-line `file:line:col: message`.
        with_snippet: false,
        // Only true/false: `close_on_loss: no` should not silently mean false.
        strict_booleans: true,
        // `!tag`s have no meaning in this schema.
        reject_unsupported_tags: true,
    };
    let raw: Option<raw::RawConfig> = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| parse_error(&e, source_name))?;
    build::Builder { file: source_name }.config(raw.unwrap_or_default())
}

/// Reads and parses the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    let name = path.display().to_string();
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let (line, col) = line_col(&bytes[..e.valid_up_to()]);
        ConfigError::Parse {
            file: name.clone(),
            line,
            col,
            msg: "the file is not valid UTF-8".to_owned(),
        }
    })?;
    parse(text, &name)
}

/// 1-based line and character column just after `prefix`.
fn line_col(prefix: &[u8]) -> (u64, u64) {
    let text = String::from_utf8_lossy(prefix);
    let line = text.matches('\n').count() + 1;
    let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line as u64, col as u64)
}

fn parse_error(e: &serde_saphyr::Error, file: &str) -> ConfigError {
    let (line, col) = e
        .location()
        .filter(|l| l.line() > 0)
        .map_or((1, 1), |l| (l.line(), l.column()));
    let inner = e.without_snippet();
    // serde-saphyr names parser events; say what the user has to write instead.
    let msg = match inner {
        serde_saphyr::Error::Unexpected { expected, .. } => match *expected {
            "mapping start" => {
                "expected a mapping (indented `key: value` lines or `{key: value}`)".into()
            }
            "sequence start" => "expected a list (`[a, b]` or `- a` lines)".into(),
            "string scalar" => "expected a single value, not a list or mapping".into(),
            _ => UserMessageFormatter.format_message(inner),
        },
        _ => UserMessageFormatter.format_message(inner),
    };
    // The message may quote the input; keep it on one line and free of terminal escapes.
    let mut clean = String::with_capacity(msg.len());
    for c in msg.chars() {
        if c.is_control() {
            clean.extend(c.escape_debug());
        } else {
            clean.push(c);
        }
    }
    ConfigError::Parse {
        file: file.to_owned(),
        line,
        col,
        msg: clean,
    }
}
