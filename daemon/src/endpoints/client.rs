//! The subcommands that do not run the daemon: `status` and `addresses` (clients of a running
//! daemon's control socket), `completions` and `manpage`. Each returns its exit code.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::{control, status};
use crate::cli::{Cli, Command};
use crate::process::exit;

/// Run `command`; `cli` gives the config file whose `control.socket` a client talks to when
/// `-s` is not given.
pub fn run(cli: &Cli, command: &Command) -> i32 {
    match command {
        Command::Status { json, socket } => {
            request(&socket_path(cli, socket.clone()), "status", *json)
        }
        Command::Addresses { json, socket } => {
            request(&socket_path(cli, socket.clone()), "addresses", *json)
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "mptcp-pmd", &mut std::io::stdout());
            exit::OK
        }
        Command::Manpage => {
            let man = clap_mangen::Man::new(Cli::command());
            match man.render(&mut std::io::stdout()) {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("mptcp-pmd: cannot write the man page: {e}");
                    exit::SOFTWARE
                }
            }
        }
    }
}

/// The control socket a client subcommand talks to: `-s`, else the config's, else the default.
fn socket_path(cli: &Cli, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| match mptcp_pmd_config::load(&cli.config) {
        Ok(c) => c.control.socket,
        Err(_) => mptcp_pmd_config::ControlConfig::default().socket,
    })
}

fn request(path: &Path, req: &str, json: bool) -> i32 {
    match control::request(path, req) {
        Ok((reply, _)) => {
            let text = match (req, json) {
                ("status", false) => reply.status.as_ref().map(status::render_status),
                ("addresses", false) => reply.addresses.as_ref().map(status::render_addresses),
                ("status", true) => reply
                    .status
                    .as_ref()
                    .and_then(|s| serde_json::to_string_pretty(s).ok()),
                _ => reply
                    .addresses
                    .as_ref()
                    .and_then(|a| serde_json::to_string_pretty(a).ok()),
            };
            match text {
                Some(t) => {
                    print!("{t}");
                    if json {
                        println!();
                    }
                    exit::OK
                }
                None => {
                    eprintln!("mptcp-pmd: the daemon's reply has no {req} data");
                    exit::SOFTWARE
                }
            }
        }
        Err(e @ control::ClientError::Connect { .. }) => {
            eprintln!("mptcp-pmd: {e}");
            exit::UNAVAILABLE
        }
        Err(e) => {
            eprintln!("mptcp-pmd: {e}");
            exit::SOFTWARE
        }
    }
}
