//! The events actor: owns the `mptcp_pm_events` multicast socket. It reads every datagram as
//! soon as the socket is readable (tokio `AsyncFd`, no extra thread), forwards each decoded event
//! as a [`KernelEvent`], logs and drops undecodable messages (the rest of the batch still
//! counts), and turns a receive overrun (ENOBUFS: events were lost) into a [`Resync`] request.
//! Any other failure of the socket, or of the event loop polling it, is fatal: it is reported
//! to [`Failures`] rather than running on without events.

use std::sync::Arc;

use actix::prelude::*;
use slog::{debug, warn, Logger};

use super::failure::{Failures, KernelSocket, SocketFailure};
use super::messages::{KernelEvent, Resync};
use super::reader::read_until_dead;
use super::stats::Stats;
use crate::genl::PmEventSocket;
use crate::{Error as GenlError, Severity};

/// Where the events actor sends what it reads (the daemon's registry).
#[derive(Clone)]
pub struct EventSinks {
    /// Every decoded event.
    pub events: Recipient<KernelEvent>,
    /// A request to rebuild the view after events were lost.
    pub resync: Recipient<Resync>,
}

/// Owner of the events socket.
pub struct EventActor {
    sock: Option<PmEventSocket>,
    sinks: EventSinks,
    stats: Arc<dyn Stats>,
    failures: Failures,
    log: Logger,
}

impl EventActor {
    /// An actor for an already-subscribed socket (subscribe before reading any kernel state, so
    /// nothing falls between the start-up dump and the first event), sending to `sinks` and
    /// counting into `stats`. A dead socket is reported to `failures`.
    pub fn new(
        sock: PmEventSocket,
        sinks: EventSinks,
        stats: Arc<dyn Stats>,
        failures: Failures,
        log: Logger,
    ) -> Self {
        EventActor {
            sock: Some(sock),
            sinks,
            stats,
            failures,
            log,
        }
    }
}

/// Read events until the socket fails for good; returns that failure.
async fn read_events(
    sock: PmEventSocket,
    sinks: EventSinks,
    stats: Arc<dyn Stats>,
    log: Logger,
) -> SocketFailure {
    let set_nonblocking = |s: &PmEventSocket| s.set_nonblocking(true);
    read_until_dead(sock, set_nonblocking, KernelSocket::Events, |guard| {
        let res = guard.get_inner_mut().recv_batch();
        let received = std::time::Instant::now();
        if res.is_ok() && guard.get_inner().drained() {
            // The batch emptied the socket: wait for the next wake-up instead of a recv that
            // would only find the socket empty.
            guard.clear_ready();
        }
        let batch = match res {
            Ok(batch) => batch,
            Err(e) => {
                match e.severity() {
                    Severity::Overrun => {
                        stats.overrun();
                        warn!(log, "events socket overrun (ENOBUFS): events were lost, resyncing from sock_diag"; "error" => %e);
                        sinks.resync.do_send(Resync {
                            reason: "event overrun",
                        });
                    }
                    Severity::Transient => {
                        if !matches!(e, GenlError::WouldBlock) {
                            warn!(log, "events socket receive failed, waiting for the next datagram"; "error" => %e);
                        }
                        guard.clear_ready();
                    }
                    Severity::Fatal => return Err(e),
                }
                return Ok(());
            }
        };
        for item in batch {
            match item {
                Ok(ev) => {
                    if !ev.unknown_attrs.is_empty() {
                        debug!(log, "event carries unknown attributes";
                            "event" => ev.event.name(), "attrs" => ?ev.unknown_attrs);
                    }
                    stats.event(ev.event.name());
                    sinks.events.do_send(KernelEvent {
                        event: ev.event,
                        received,
                    });
                }
                Err(e) => {
                    stats.event("malformed");
                    warn!(log, "dropping malformed PM event"; "error" => %e);
                }
            }
        }
        Ok(())
    })
    .await
}

impl Actor for EventActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(sock) = self.sock.take() else { return };
        let reader = read_events(
            sock,
            self.sinks.clone(),
            self.stats.clone(),
            self.log.clone(),
        );
        let failures = self.failures.clone();
        ctx.spawn(async move { failures.report(reader.await) }.into_actor(self));
    }
}
