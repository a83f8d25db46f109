//! The command line (clap 4 derive).

use std::path::PathBuf;

use clap::Parser;

/// Multipath TCP userspace path manager.
#[derive(Debug, Parser)]
#[command(name = "mptcp-pmd", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        default_value = "/etc/mptcp-pm.yaml"
    )]
    pub config: PathBuf,

    /// Validate the configuration, print the effective configuration (defaults filled in) and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Log level, overriding `log.level` from the file (critical, error, warning, info, debug, trace).
    #[arg(long, value_name = "LEVEL", value_parser = ["critical", "error", "warning", "info", "debug", "trace"])]
    pub log_level: Option<String>,
}
