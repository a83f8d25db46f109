//! The crate's error type: every failure names the file, and every parse or validation
//! failure also names the line and column it refers to.

use std::path::PathBuf;

/// Why a configuration could not be loaded.
///
/// `Parse` and `Invalid` display as `file:line:col: message` (lines and columns are
/// 1-based, columns count characters), the format editors and CI annotators understand.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read configuration: {source}", path.display())]
    Io {
        /// The file we tried to read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML, or does not have the shape of the schema (unknown key,
    /// wrong type, duplicate key, bad indentation, ...).
    #[error("{file}:{line}:{col}: {msg}")]
    Parse {
        /// Source name given to [`crate::parse`] (usually the path).
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column (in characters).
        col: u64,
        /// What went wrong and what was expected.
        msg: String,
    },
    /// Well-formed YAML with a value the daemon cannot use (out of range, bad CIDR, ...).
    #[error("{file}:{line}:{col}: {msg}")]
    Invalid {
        /// Source name given to [`crate::parse`] (usually the path).
        file: String,
        /// 1-based line.
        line: u64,
        /// 1-based column (in characters).
        col: u64,
        /// Dotted path of the offending key, e.g. `rules[0].remote`.
        key: String,
        /// What went wrong and what was expected.
        msg: String,
    },
}

impl ConfigError {
    /// `(line, col)` the error points at, if it is located.
    pub fn location(&self) -> Option<(u64, u64)> {
        match self {
            ConfigError::Io { .. } => None,
            ConfigError::Parse { line, col, .. } | ConfigError::Invalid { line, col, .. } => {
                Some((*line, *col))
            }
        }
    }
}
