//! The events actor: owns the `mptcp_pm_events` multicast socket. It reads every datagram as
//! soon as the socket is readable (tokio `AsyncFd`, no extra thread), forwards each decoded event
//! to the registry, logs and drops undecodable messages (the rest of the batch still counts),
//! and turns a receive overrun (ENOBUFS: events were lost) into a [`Resync`] request.

use actix::prelude::*;
use netlink_actor::genl::PmEventSocket;
use netlink_actor::Error as GenlError;
use slog::{debug, error, warn, Logger};

use super::messages::{KernelEvent, Resync};
use super::registry::Registry;
use crate::metrics::Metrics;

/// Owner of the events socket.
pub struct EventActor {
    sock: Option<PmEventSocket>,
    registry: Addr<Registry>,
    metrics: Metrics,
    log: Logger,
}

impl EventActor {
    /// An actor for an already-subscribed socket (subscribe before reading any kernel state, so
    /// nothing falls between the start-up dump and the first event).
    pub fn new(
        sock: PmEventSocket,
        registry: Addr<Registry>,
        metrics: Metrics,
        log: Logger,
    ) -> Self {
        EventActor {
            sock: Some(sock),
            registry,
            metrics,
            log,
        }
    }
}

impl Actor for EventActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(sock) = self.sock.take() else { return };
        let registry = self.registry.clone();
        let log = self.log.clone();
        let metrics = self.metrics.clone();
        ctx.spawn(
            async move {
                if let Err(e) = sock.set_nonblocking(true) {
                    error!(log, "events socket: cannot set non-blocking"; "error" => %e);
                    System::current().stop_with_code(crate::exit::SOFTWARE);
                    return;
                }
                let mut afd = match super::readable_fd(sock) {
                    Ok(a) => a,
                    Err(e) => {
                        error!(log, "events socket: cannot register with the event loop"; "error" => %e);
                        System::current().stop_with_code(crate::exit::SOFTWARE);
                        return;
                    }
                };
                loop {
                    let mut guard = match afd.readable_mut().await {
                        Ok(g) => g,
                        Err(e) => {
                            error!(log, "events socket: poll failed"; "error" => %e);
                            System::current().stop_with_code(crate::exit::SOFTWARE);
                            return;
                        }
                    };
                    let res = guard.get_inner_mut().recv_batch();
                    if res.is_ok() && guard.get_inner().drained() {
                        // The batch ended at EAGAIN: wait for the next wake-up instead of a
                        // recv that would only find the socket empty.
                        guard.clear_ready();
                    }
                    match res {
                        Ok(batch) => {
                            for item in batch {
                                match item {
                                    Ok(ev) => {
                                        if !ev.unknown_attrs.is_empty() {
                                            debug!(log, "event carries unknown attributes";
                                                "event" => ev.event.name(), "attrs" => ?ev.unknown_attrs);
                                        }
                                        metrics.event(ev.event.name());
                                        registry.do_send(KernelEvent(ev.event));
                                    }
                                    Err(e) => {
                                        metrics.event("malformed");
                                        warn!(log, "dropping malformed PM event"; "error" => %e);
                                    }
                                }
                            }
                        }
                        Err(GenlError::WouldBlock) => guard.clear_ready(),
                        Err(GenlError::Overrun) => {
                            metrics.overrun();
                            warn!(log, "events socket overrun (ENOBUFS): events were lost, resyncing from sock_diag");
                            registry.do_send(Resync { reason: "event overrun" });
                        }
                        Err(e) => {
                            warn!(log, "events socket receive failed"; "error" => %e);
                            guard.clear_ready();
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }
}
