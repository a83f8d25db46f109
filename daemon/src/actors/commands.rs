//! The command actor: owns the `mptcp_pm` command socket (NETLINK_EXT_ACK on) and executes one
//! PM command at a time, returning the kernel's verdict; commands from one connection keep their
//! order. It runs on the event loop's thread: the kernel handles a request inside the sendmsg
//! and its ACK is waiting when recv is called, so the round trip is one short system call pair,
//! and handing it to another thread cost more (a wake-up per join) than it spared.

use actix::prelude::*;
use mptcp_pmd_policies::conn::KernelRefusal;
use netlink_actor::genl::{GenlError, PmClient};
use slog::{debug, warn, Logger};

use super::messages::Execute;
use crate::metrics::Metrics;

/// Owner of the command socket.
pub struct CommandActor {
    client: PmClient,
    metrics: Metrics,
    log: Logger,
}

impl CommandActor {
    /// Wrap an opened client.
    pub fn new(client: PmClient, metrics: Metrics, log: Logger) -> Self {
        CommandActor {
            client,
            metrics,
            log,
        }
    }
}

impl Actor for CommandActor {
    type Context = Context<Self>;
}

impl Handler<Execute> for CommandActor {
    type Result = Result<(), KernelRefusal>;

    fn handle(&mut self, msg: Execute, _ctx: &mut Self::Context) -> Self::Result {
        let cmd = msg.0;
        let res = self.client.execute(&cmd);
        match res {
            Ok(()) => {
                self.metrics.command(cmd.name(), 0);
                debug!(self.log, "command done"; "cmd" => cmd.name(), "token" => %cmd.token());
                Ok(())
            }
            Err(GenlError::Kernel { errno, message, .. }) => {
                self.metrics.command(cmd.name(), errno);
                self.metrics.refusal(cmd.name(), errno);
                warn!(self.log, "kernel refused command"; "cmd" => cmd.name(), "token" => %cmd.token(),
                    "errno" => errno, "kernel_msg" => message.as_deref().unwrap_or("-"), "detail" => ?cmd);
                Err(KernelRefusal { errno, message })
            }
            Err(e) => {
                self.metrics.command(cmd.name(), libc::EIO);
                warn!(self.log, "command failed"; "cmd" => cmd.name(), "token" => %cmd.token(), "error" => %e);
                Err(KernelRefusal {
                    errno: libc::EIO,
                    message: Some(e.to_string()),
                })
            }
        }
    }
}
