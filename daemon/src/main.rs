//! `mptcp-pmd`: the Multipath TCP userspace path manager daemon. `main` is thin: parse the
//! command line, run a client subcommand or load the config, check privileges, hand over to
//! [`service::run`], and map every failure to a documented exit code (see README.md).

mod actors;
mod addrset;
mod adopt;
mod cli;
mod control;
mod exit;
mod http;
mod logging;
mod metrics;
mod notify;
mod privs;
mod registry_core;
mod rules;
mod server;
mod service;
mod startup;
mod status;
mod trim;
mod wiring;

use std::path::PathBuf;

use clap::{CommandFactory, Parser};

fn main() {
    std::process::exit(real_main());
}

/// The control socket a client subcommand talks to: `-s`, else the config's, else the default.
fn socket_path(cli: &cli::Cli, given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| match mptcp_pmd_config::load(&cli.config) {
        Ok(c) => c.control.socket,
        Err(_) => mptcp_pmd_config::ControlConfig::default().socket,
    })
}

fn client(path: &std::path::Path, req: &str, json: bool) -> i32 {
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

fn real_main() -> i32 {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Some(cli::Command::Status { json, ref socket }) => {
            return client(&socket_path(&cli, socket.clone()), "status", json)
        }
        Some(cli::Command::Addresses { json, ref socket }) => {
            return client(&socket_path(&cli, socket.clone()), "addresses", json)
        }
        Some(cli::Command::Completions { shell }) => {
            let mut cmd = cli::Cli::command();
            clap_complete::generate(shell, &mut cmd, "mptcp-pmd", &mut std::io::stdout());
            return exit::OK;
        }
        Some(cli::Command::Manpage) => {
            let man = clap_mangen::Man::new(cli::Cli::command());
            return match man.render(&mut std::io::stdout()) {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("mptcp-pmd: cannot write the man page: {e}");
                    exit::SOFTWARE
                }
            };
        }
        None => {}
    }
    let config = match mptcp_pmd_config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mptcp-pmd: {e}");
            return exit::CONFIG;
        }
    };
    if cli.check_config {
        print!("{}", config.effective_yaml());
        return exit::OK;
    }
    let level_name = cli
        .log_level
        .clone()
        .unwrap_or_else(|| config.log.level.as_str().to_string());
    let level = logging::parse_level(&level_name).unwrap_or(slog::Level::Info);
    let (log, handle) = logging::init(level, config.log.format);
    if let Err(e) = startup::check_net_admin() {
        slog::crit!(log, "{}", e.message);
        eprintln!("mptcp-pmd: {}", e.message);
        return e.code;
    }
    slog::info!(log, "mptcp-pmd starting"; "version" => env!("CARGO_PKG_VERSION"), "config" => %cli.config.display());
    match service::run(config, cli.config, log.clone(), handle) {
        Ok(code) => code,
        Err(e) => {
            slog::crit!(log, "{}", e.message);
            e.code
        }
    }
}
