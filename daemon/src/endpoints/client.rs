//! The subcommands that do not run the daemon: the clients of a running daemon's control
//! socket (`status`, `addresses`, `monitor`, and the operator commands `subflow`, `announce`,
//! `withdraw`, `hold`, `release`), each one request of the documented protocol
//! ([`super::protocol`]), and `completions` and `manpage`. Each returns its exit code
//! (README.md, "Exit codes").

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use mptcp_pmd_policies::{Manual, SubflowKey, Token};

use super::protocol::{self, ErrorCode, MonitorFilter, MonitorLine, Op, Reply, Request};
use super::{control, status};
use crate::cli::{Cli, Command, OnOff, SocketArg, SubflowCommand};
use crate::process::exit;

/// Run `command`; `cli` gives the config file whose `control.socket` a client talks to when
/// `-s` is not given.
pub fn run(cli: &Cli, command: &Command) -> i32 {
    let path = |s: &SocketArg| socket_path(cli, s.socket.clone());
    match command {
        Command::Status { json, socket } => show(&path(socket), &Request::Status, *json),
        Command::Addresses { json, socket } => show(&path(socket), &Request::Addresses, *json),
        Command::Monitor {
            json,
            token,
            kind,
            socket,
        } => monitor(
            &path(socket),
            &Request::Monitor(MonitorFilter::new(kind, *token)),
            *json,
        ),
        Command::Subflow { action } => {
            let (token, m, socket) = match action {
                SubflowCommand::Create {
                    token,
                    local,
                    remote,
                    backup,
                    socket,
                } => (
                    *token,
                    Manual::Create {
                        local: *local,
                        remote: *remote,
                        backup: *backup,
                    },
                    socket,
                ),
                SubflowCommand::Destroy {
                    token,
                    local,
                    remote,
                    socket,
                } => (
                    *token,
                    Manual::Destroy {
                        key: SubflowKey {
                            local: *local,
                            remote: *remote,
                        },
                    },
                    socket,
                ),
                SubflowCommand::Backup {
                    token,
                    local,
                    remote,
                    state,
                    socket,
                } => (
                    *token,
                    Manual::SetBackup {
                        key: SubflowKey {
                            local: *local,
                            remote: *remote,
                        },
                        backup: *state == OnOff::On,
                    },
                    socket,
                ),
            };
            operate(&path(socket), token, Op::Manual(m))
        }
        Command::Announce {
            token,
            addr,
            id,
            socket,
        } => operate(
            &path(socket),
            *token,
            Op::Manual(Manual::Announce {
                addr: *addr,
                id: *id,
            }),
        ),
        Command::Withdraw { token, id, socket } => operate(
            &path(socket),
            *token,
            Op::Manual(Manual::Withdraw { id: *id }),
        ),
        Command::Hold { token, socket } => operate(&path(socket), *token, Op::Hold),
        Command::Release { token, socket } => operate(&path(socket), *token, Op::Release),
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

/// The exit code for an error reply.
pub fn exit_code(code: Option<ErrorCode>) -> i32 {
    match code {
        Some(ErrorCode::Forbidden) => exit::NOPERM,
        Some(ErrorCode::Busy) => exit::TEMPFAIL,
        Some(ErrorCode::Unavailable) => exit::UNAVAILABLE,
        Some(
            ErrorCode::NoConnection
            | ErrorCode::Refused
            | ErrorCode::KernelRefused
            | ErrorCode::DryRun,
        ) => exit::REFUSED,
        Some(
            ErrorCode::BadRequest
            | ErrorCode::TooLarge
            | ErrorCode::UnsupportedVersion
            | ErrorCode::UnknownCommand
            | ErrorCode::Other,
        )
        | None => exit::PROTOCOL,
    }
}

/// Say why a request failed; its exit code.
fn failed(reply: &Reply) -> i32 {
    eprintln!(
        "mptcp-pmd: {}",
        reply
            .error
            .as_deref()
            .unwrap_or("the daemon refused the request")
    );
    exit_code(reply.code)
}

fn client_error(e: &control::ClientError) -> i32 {
    eprintln!("mptcp-pmd: {e}");
    match e {
        control::ClientError::Connect { .. } => exit::UNAVAILABLE,
        _ => exit::SOFTWARE,
    }
}

fn show(path: &Path, req: &Request, json: bool) -> i32 {
    let reply = match control::request(path, req) {
        Ok(r) => r,
        Err(e) => return client_error(&e),
    };
    if !reply.ok {
        return failed(&reply);
    }
    let text = match (req, json) {
        (Request::Status, false) => reply.status.as_ref().map(status::render_status),
        (Request::Status, true) => reply
            .status
            .as_ref()
            .and_then(|s| serde_json::to_string_pretty(s).ok()),
        (_, false) => reply.addresses.as_ref().map(status::render_addresses),
        (_, true) => reply
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
            eprintln!("mptcp-pmd: the daemon's reply has no {} data", req.name());
            exit::SOFTWARE
        }
    }
}

fn operate(path: &Path, token: Token, op: Op) -> i32 {
    let req = Request::Command { token, op };
    match control::request(path, &req) {
        Ok(reply) if reply.ok => {
            match &reply.done {
                Some(d) => println!("{} {}: {}", d.command, d.token, d.detail),
                None => println!("{} {}: done", req.name(), protocol::token_text(token)),
            }
            exit::OK
        }
        Ok(reply) => failed(&reply),
        Err(e) => client_error(&e),
    }
}

fn monitor(path: &Path, req: &Request, json: bool) -> i32 {
    let mut out = std::io::stdout().lock();
    let mut first = true;
    let res = control::monitor(path, req, |line| {
        if first && !json {
            first = false;
            if writeln!(
                out,
                "TIME         KIND     TOKEN    NAME             DETAIL"
            )
            .is_err()
            {
                return false;
            }
        }
        let text = if json {
            line.to_string()
        } else {
            match serde_json::from_str::<MonitorLine>(line) {
                Ok(l) => protocol::render_line(&l),
                // A line of a newer daemon this client cannot read: shown as it came.
                Err(_) => line.to_string(),
            }
        };
        // Stdout is line-buffered: each line reaches a pipe at once. A closed stdout ends it.
        writeln!(out, "{text}").is_ok()
    });
    match res {
        Ok(reply) if reply.ok => {
            eprintln!("mptcp-pmd: the daemon closed the stream (it stopped?)");
            exit::OK
        }
        Ok(reply) => failed(&reply),
        Err(e) => client_error(&e),
    }
}
