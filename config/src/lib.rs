//! mptcp-pmd's configuration: YAML text -> typed, validated [`Config`].
//!
//! What this crate owns: the schema (one struct per YAML section, every key with a
//! documented default), validation (ranges, CIDRs, port ranges, interface globs,
//! cross-field rules) and errors that always say `file:line:col: what was expected`,
//! for deserialisation and validation errors alike. It also resolves per-destination
//! [`Rule`]s ([`Config::policy_for`]) and renders the effective configuration
//! ([`Config::effective_yaml`]) for `mptcp-pmd --check-config`.
//!
//! One way to read a section: every section, the core ones (`sections.rs`: `kernel`, `poll`,
//! ...) like the policies' (each policy's file, through the registry of
//! `mptcp-pmd-policies`), is a serde struct that holds its keys, their defaults, their checks
//! and their docs, and is deserialized from a located tree of the YAML ([`params::Node`]) with
//! errors that name the key and point at the value. A key is written once, in its struct. So
//! the config depends on the policies crate (which depends on nothing of ours), and adding a
//! policy changes nothing here.
//!
//! The pipeline: `read.rs` reads the text with serde-saphyr into position- and tag-carrying
//! items and converts them to the located tree, refusing what the text as written shows to be
//! misleading (tags, numbers not written in decimal, overlong keys); `build.rs` walks the top
//! level and the rules and hands each section its tree; `types.rs` holds the result. The only
//! I/O is [`load`] reading the file (`file.rs`: never blocks, never reads more than
//! [`MAX_FILE_BYTES`]); [`parse`] is pure.
//!
//! Empty input: a file that is empty, holds only comments, or is an explicit empty
//! document (`---` or `~`) gives [`Config::default()`]. So does a section left empty
//! (`poll:` with nothing under it, or `~`) for that section, and `policy:` with nothing after
//! it. A key whose value is needed is refused when it is empty or null (`nice: ~`): `~` never
//! silently means a default; keys whose value is optional (`metrics.listen`) take it as none.
//!
//! [`params::Node`]: mptcp_pmd_policies::params::Node

mod build;
mod error;
mod file;
mod metered;
mod net;
mod read;
mod sections;
mod types;

use std::path::Path;

pub use error::ConfigError;
pub use file::MAX_BYTES as MAX_FILE_BYTES;
pub use metered::{Budget, ByteSize, MeteredConfig, Period, ResetAt, WhenSpent, Zone};
pub use mptcp_pmd_policies::addrmatch::{glob_match, Cidr, CidrError};
pub use mptcp_pmd_policies::plugin::{Plugin, PolicySpec};
pub use net::{PortRange, PortRangeError};
pub use sections::{
    AddressFilter, ControlConfig, InterfaceCap, KernelConfig, LogConfig, LogFormat, LogLevel,
    MetricsConfig, PollConfig, SubflowConfig,
};
pub use types::{find_policy, Config, Rule, RuleTarget, Side, UnknownPolicy};

/// Where the daemon looks for its configuration when `-c` is not given.
pub const DEFAULT_PATH: &str = "/etc/mptcp-pm.yaml";

/// Parses and validates configuration `text`. `source_name` (usually the path) is only
/// used in error messages.
pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigError> {
    let doc = read::Doc {
        src: text,
        file: source_name,
    };
    let root = read::yaml(&doc)?;
    build::Builder { doc: &doc }.config(root)
}

/// Reads and parses the file at `path`: a regular file (or a symlink to one) of at most
/// [`MAX_FILE_BYTES`]; a FIFO, a device or a directory is refused without waiting or reading.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = file::read(path)?;
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
