//! The command path: owns the `mptcp_pm` command socket (NETLINK_EXT_ACK on) and executes PM
//! commands, returning the kernel's verdict (errno and extended-ACK message on refusal), counting
//! them and logging refusals. The kernel handles a request inside the `sendmsg` and its ACK is
//! queued when `recv` is called, so a command is one short, synchronous system-call pair: the
//! connection actors call it directly on the event loop's thread, in the order they decided.
//! An actor of its own (on its own thread, or even on this one) cost a wake-up and a mailbox
//! round trip per join (sequential join p50 with 2 links: 0.176 ms with its own thread, 0.142 ms
//! on this thread as an actor; see BENCHMARKS.md for the direct call).
//! A kernel refusal is the command's result, never fatal; one that only says the connection or
//! the subflow ended meanwhile (`KernelRefusal::meaning`: an expected race) is logged at debug
//! level, any other as a warning. A command socket that is itself unusable is reported to
//! [`Failures`].

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Instant;

use mptcp_pmd_policies::conn::KernelRefusal;
use mptcp_pmd_policies::PmCommand;
use slog::{debug, warn, Logger};

use super::failure::{Failures, KernelSocket, SocketFailure};
use super::stats::{EventTrace, Stats};
use crate::genl::PmClient;
use crate::{Error as GenlError, Severity};

/// What led to a command: the kernel event behind it (when the events actor read it) and
/// when the policy's decision was applied (latency metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause {
    /// The event was read from the events socket.
    pub read: Instant,
    /// The decision was applied to the connection.
    pub decided: Instant,
}

/// Owner of the command socket. Lives on the event loop's thread (shared by the connection
/// actors through `Rc`), hence the `RefCell`: calls never nest.
pub struct CommandPath {
    client: RefCell<PmClient>,
    /// The commands of the last event that caused any (metrics: `last_event_trace`).
    trace: Cell<Option<EventTrace>>,
    stats: Arc<dyn Stats>,
    failures: Failures,
    log: Logger,
}

impl CommandPath {
    /// Wrap an opened client, counting into `stats`; a dead socket is reported to `failures`.
    pub fn new(client: PmClient, stats: Arc<dyn Stats>, failures: Failures, log: Logger) -> Self {
        CommandPath {
            client: RefCell::new(client),
            trace: Cell::new(None),
            stats,
            failures,
            log,
        }
    }

    /// Send `cmd` and wait for the kernel's answer. `cause`: the kernel event and decision
    /// behind the command, if any (latency metrics).
    pub fn execute(&self, cmd: &PmCommand, cause: Option<Cause>) -> Result<(), KernelRefusal> {
        let sent = Instant::now();
        if let Some(c) = cause {
            self.stats
                .event_to_command(sent.saturating_duration_since(c.read));
        }
        let res = match self.client.try_borrow_mut() {
            Ok(mut c) => c.execute(cmd),
            // Unreachable by construction (single thread, no re-entrant calls); answered
            // rather than panicking.
            Err(_) => {
                return Err(KernelRefusal {
                    errno: libc::EBUSY,
                    message: Some("command socket busy (re-entrant call)".into()),
                })
            }
        };
        let answered = Instant::now();
        let took = answered.saturating_duration_since(sent);
        if let Some(c) = cause {
            let t = match self.trace.get() {
                Some(t) if t.event_read == c.read && t.decided == c.decided => EventTrace {
                    last_sent: sent,
                    last_answered: answered,
                    in_calls: t.in_calls + took,
                    commands: t.commands.saturating_add(1),
                    ..t
                },
                _ => EventTrace {
                    event_read: c.read,
                    decided: c.decided,
                    first_sent: sent,
                    first_answered: answered,
                    last_sent: sent,
                    last_answered: answered,
                    in_calls: took,
                    commands: 1,
                },
            };
            self.trace.set(Some(t));
            self.stats.last_event_trace(&t);
        }
        match res {
            Ok(()) => {
                self.stats.command(cmd.name(), 0, took);
                debug!(self.log, "command done"; "cmd" => cmd.name(), "token" => %cmd.token());
                Ok(())
            }
            Err(GenlError::Kernel { errno, message, .. }) => {
                self.stats.command(cmd.name(), errno, took);
                self.stats.refusal(cmd.name(), errno);
                let refusal = KernelRefusal { errno, message };
                let meaning = refusal.meaning(cmd);
                let text = refusal.message.as_deref().unwrap_or("-");
                if meaning.is_race() {
                    // The connection or subflow ended under us (a close storm, a resync that
                    // caught a closing connection): counted, and the state machine acts on
                    // it, but not a warning per command.
                    debug!(self.log, "kernel refused command: connection or subflow gone"; "cmd" => cmd.name(),
                        "token" => %cmd.token(), "errno" => errno, "kernel_msg" => text, "meaning" => ?meaning);
                } else {
                    warn!(self.log, "kernel refused command"; "cmd" => cmd.name(), "token" => %cmd.token(),
                        "errno" => errno, "kernel_msg" => text, "detail" => ?cmd);
                }
                Err(refusal)
            }
            Err(e) => {
                // No answer within the bound: the outcome is unknown (ETIMEDOUT tells the state
                // machine so); any other local failure is EIO.
                let errno = if matches!(e, GenlError::Timeout { .. }) {
                    libc::ETIMEDOUT
                } else {
                    libc::EIO
                };
                self.stats.command(cmd.name(), errno, took);
                warn!(self.log, "command failed"; "cmd" => cmd.name(), "token" => %cmd.token(), "error" => %e);
                if e.severity() == Severity::Fatal {
                    self.failures
                        .report(SocketFailure::new(KernelSocket::Commands, &e));
                }
                Err(KernelRefusal {
                    errno,
                    message: Some(e.to_string()),
                })
            }
        }
    }
}
