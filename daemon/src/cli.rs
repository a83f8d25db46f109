//! The command line (clap 4 derive). Without a subcommand the daemon runs (`mptcp-pmd -c FILE`);
//! the subcommands are clients of a running daemon (`status`, `addresses`) or print generated
//! files (`completions`, `manpage`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `-V/--version`: the version, the git commit and the target triple (recorded by `build.rs`), so
/// that a field report names the exact binary: `mptcp-pmd 0.1.0 (abc1234, aarch64-unknown-linux-musl)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("MPTCP_PMD_GIT_COMMIT"),
    ", ",
    env!("MPTCP_PMD_TARGET"),
    ")"
);

/// Multipath TCP userspace path manager.
#[derive(Debug, Parser)]
#[command(name = "mptcp-pmd", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        short = 'c',
        long = "config",
        value_name = "FILE",
        default_value = "/etc/mptcp-pm.yaml",
        global = true
    )]
    pub config: PathBuf,

    /// Validate the configuration, print the effective configuration (defaults filled in) and exit.
    #[arg(long)]
    pub check_config: bool,

    /// Log level, overriding `log.level` from the file (critical, error, warning, info, debug, trace).
    #[arg(long, value_name = "LEVEL", value_parser = ["critical", "error", "warning", "info", "debug", "trace"])]
    pub log_level: Option<String>,

    /// What to do instead of running the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show every tracked connection of the running daemon: its policy and its subflows.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The daemon's control socket (default: `control.socket` from the configuration).
        #[arg(short = 's', long = "socket", value_name = "SOCKET")]
        socket: Option<PathBuf>,
    },
    /// Show the local addresses the running daemon uses, and those it skips with the reason.
    Addresses {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The daemon's control socket (default: `control.socket` from the configuration).
        #[arg(short = 's', long = "socket", value_name = "SOCKET")]
        socket: Option<PathBuf>,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Manpage,
}
