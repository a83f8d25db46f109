//! The events actor: owns the `mptcp_pm_events` multicast socket. It reads every datagram as
//! soon as the socket is readable (tokio `AsyncFd`, no extra thread), forwards each decoded event
//! to the registry, logs and drops undecodable messages (the rest of the batch still counts),
//! and turns a receive overrun (ENOBUFS: events were lost) into a [`Resync`] request. Any other
//! failure of the socket, or of the event loop polling it, is fatal ([`crate::failure`]): the
//! daemon stops rather than run without events.

use actix::prelude::*;
use netlink_actor::genl::PmEventSocket;
use netlink_actor::Error as GenlError;
use slog::{debug, warn, Logger};

use super::messages::{KernelEvent, Resync};
use super::registry::Registry;
use crate::failure::{self, Failures, KernelSocket, SocketFailure, Verdict};
use crate::metrics::Metrics;

/// Owner of the events socket.
pub struct EventActor {
    sock: Option<PmEventSocket>,
    registry: Addr<Registry>,
    metrics: Metrics,
    failures: Failures,
    log: Logger,
}

impl EventActor {
    /// An actor for an already-subscribed socket (subscribe before reading any kernel state, so
    /// nothing falls between the start-up dump and the first event). A dead socket is reported
    /// to `failures`.
    pub fn new(
        sock: PmEventSocket,
        registry: Addr<Registry>,
        metrics: Metrics,
        failures: Failures,
        log: Logger,
    ) -> Self {
        EventActor {
            sock: Some(sock),
            registry,
            metrics,
            failures,
            log,
        }
    }
}

/// Read events until the socket fails for good; returns that failure.
async fn read_events(
    sock: PmEventSocket,
    registry: Addr<Registry>,
    metrics: Metrics,
    log: Logger,
) -> SocketFailure {
    let set_nonblocking = |s: &PmEventSocket| s.set_nonblocking(true);
    super::read_until_dead(sock, set_nonblocking, KernelSocket::Events, |guard| {
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
                match failure::stream(&e) {
                    Verdict::Lost => {
                        metrics.overrun();
                        warn!(log, "events socket overrun (ENOBUFS): events were lost, resyncing from sock_diag"; "error" => %e);
                        registry.do_send(Resync {
                            reason: "event overrun",
                        });
                    }
                    Verdict::Transient => {
                        if !matches!(e, GenlError::WouldBlock) {
                            warn!(log, "events socket receive failed, waiting for the next datagram"; "error" => %e);
                        }
                        guard.clear_ready();
                    }
                    Verdict::Fatal => return Err(e),
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
                    metrics.event(ev.event.name());
                    registry.do_send(KernelEvent {
                        event: ev.event,
                        received,
                    });
                }
                Err(e) => {
                    metrics.event("malformed");
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
            self.registry.clone(),
            self.metrics.clone(),
            self.log.clone(),
        );
        let failures = self.failures.clone();
        ctx.spawn(async move { failures.report(reader.await) }.into_actor(self));
    }
}
