//! The command line (clap 4 derive). Without a subcommand the daemon runs (`mptcp-pmd -c FILE`,
//! optionally `--dry-run`); the subcommands are clients of a running daemon's control socket
//! (`status`, `addresses`, `monitor`, and the operator commands `subflow`, `announce`,
//! `withdraw`, `hold`, `release`) or print generated files (`completions`, `manpage`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mptcp_pmd_policies::Token;

use crate::endpoints::protocol::{Kind, TokenText};

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

    /// Run, track and decide as usual, but send no command to the kernel and leave the
    /// namespace's path manager as it is: every decision is logged (naming its addresses) and
    /// streamed to `monitor` as not carried out. For trying a configuration on a live host.
    #[arg(long)]
    pub dry_run: bool,

    /// What to do instead of running the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The control socket a client subcommand talks to.
#[derive(Debug, Clone, Args)]
pub struct SocketArg {
    /// The daemon's control socket (default: `control.socket` from the configuration).
    #[arg(short = 's', long = "socket", value_name = "SOCKET")]
    pub socket: Option<PathBuf>,
}

fn token(s: &str) -> Result<Token, String> {
    TokenText::parse(s)
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Set the flag.
    On,
    /// Clear it.
    Off,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show every tracked connection of the running daemon: its policy and its subflows.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The control socket.
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Show the local addresses the running daemon uses, and those it skips with the reason.
    Addresses {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The control socket.
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Stream what the running daemon sees, decides and does, as it happens.
    ///
    /// Kernel events, every decision with its reason, every command with the kernel's answer,
    /// local address changes. Runs until interrupted or the daemon stops.
    Monitor {
        /// One JSON object per line (docs/CONTROL.md) instead of columns.
        #[arg(long)]
        json: bool,
        /// Only this connection (its token, as `status` shows it).
        #[arg(long, value_name = "HEX", value_parser = token)]
        token: Option<Token>,
        /// Only these kinds of line (default: all).
        #[arg(long, value_name = "KIND", value_enum, value_delimiter = ',')]
        kind: Vec<Kind>,
        /// The control socket.
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Create, destroy or flag one subflow of a connection by hand.
    Subflow {
        /// What to do.
        #[command(subcommand)]
        action: SubflowCommand,
    },
    /// Announce a local address to a connection's peer (ADD_ADDR).
    Announce {
        /// The connection's token (as `status` shows it).
        #[arg(value_parser = token)]
        token: Token,
        /// The local address.
        addr: IpAddr,
        /// The address id (1..255; default: the one the connection picks).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..))]
        id: Option<u8>,
        /// The control socket.
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Withdraw an address announced on a connection, by its id (REMOVE).
    Withdraw {
        /// The connection's token.
        #[arg(value_parser = token)]
        token: Token,
        /// The address id (as `status` shows it).
        #[arg(value_parser = clap::value_parser!(u8).range(1..))]
        id: u8,
        /// The control socket.
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Stop the policy acting on a connection (operator commands still work).
    Hold {
        /// The connection's token.
        #[arg(value_parser = token)]
        token: Token,
        /// The control socket.
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Let the policy act on a held connection again.
    Release {
        /// The connection's token.
        #[arg(value_parser = token)]
        token: Token,
        /// The control socket.
        #[command(flatten)]
        socket: SocketArg,
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

/// `mptcp-pmd subflow ...`.
#[derive(Debug, Subcommand)]
pub enum SubflowCommand {
    /// Open a subflow from a local address (the kernel picks the port) to a remote address.
    Create {
        /// The connection's token (as `status` shows it).
        #[arg(value_parser = token)]
        token: Token,
        /// The local address.
        local: IpAddr,
        /// The remote address and port.
        remote: SocketAddr,
        /// Ask for the backup flag once it is established.
        #[arg(long)]
        backup: bool,
        /// The control socket.
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Close one subflow, named by both its ends (as `status` shows them).
    Destroy {
        /// The connection's token.
        #[arg(value_parser = token)]
        token: Token,
        /// The local address and port.
        local: SocketAddr,
        /// The remote address and port.
        remote: SocketAddr,
        /// The control socket.
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Set or clear the backup flag of one subflow.
    Backup {
        /// The connection's token.
        #[arg(value_parser = token)]
        token: Token,
        /// The local address and port.
        local: SocketAddr,
        /// The remote address and port.
        remote: SocketAddr,
        /// The flag.
        #[arg(value_enum)]
        state: OnOff,
        /// The control socket.
        #[command(flatten)]
        socket: SocketArg,
    },
}
