//! The sock_diag poller: owns the NETLINK_SOCK_DIAG socket. While connections exist it takes one
//! snapshot per period and hands it to the registry, which notices connections that vanished and
//! routes per-subflow samples to the connection actors. The periodic snapshot includes the
//! subflows (`tcp_info` of every subflow socket, the expensive part) only while sampling is on,
//! i.e. while some configured policy reads samples; otherwise it lists the connections alone.
//! On-demand snapshots ([`TakeSnapshot`]: adoption, resync, status) are always complete. With no
//! connections it does not wake up at all. It runs on its own arbiter thread so a large dump
//! never stalls the event loop. A failed dump is dropped (the next poll or the caller tries
//! again) unless the socket itself is unusable: that is reported as fatal ([`crate::failure`]).

use std::time::{Duration, Instant};

use actix::prelude::*;
use netlink_actor::sock_diag::{DiagSocket, Snapshot};
use netlink_actor::Error as DiagError;
use slog::{debug, warn, Logger};

use super::messages::{DiagSnapshot, SetPolling, SetSampling, TakeSnapshot};
use crate::failure::{self, Failures, KernelSocket, SocketFailure, Verdict};
use crate::metrics::Metrics;

/// Owner of the sock_diag socket.
pub struct DiagPoller {
    sock: DiagSocket,
    sink: Recipient<DiagSnapshot>,
    interval: Duration,
    sampling: bool,
    handle: Option<SpawnHandle>,
    metrics: Metrics,
    failures: Failures,
    log: Logger,
}

impl DiagPoller {
    /// A poller sending snapshots to `sink` every `interval` while enabled, with the subflows'
    /// samples if `sampling`. A dead socket is reported to `failures`.
    pub fn new(
        sock: DiagSocket,
        sink: Recipient<DiagSnapshot>,
        interval: Duration,
        sampling: bool,
        metrics: Metrics,
        failures: Failures,
        log: Logger,
    ) -> Self {
        DiagPoller {
            sock,
            sink,
            interval,
            sampling,
            handle: None,
            metrics,
            failures,
            log,
        }
    }

    /// Report a dump's failure as fatal if the socket is unusable (see [`crate::failure`]).
    fn check(&self, e: &DiagError) {
        if failure::diag(e) == Verdict::Fatal {
            self.failures
                .report(SocketFailure::new(KernelSocket::SockDiag, e));
        }
    }

    fn poll(&mut self) -> Option<Snapshot> {
        let t0 = Instant::now();
        let res = if self.sampling {
            self.sock.snapshot()
        } else {
            self.sock.connections_snapshot()
        };
        self.metrics.poll_duration(t0.elapsed());
        match res {
            Ok(s) => {
                debug!(self.log, "sock_diag poll"; "conns" => s.conns.len(), "subflows" => s.has_subflows,
                    "us" => t0.elapsed().as_micros() as u64);
                Some(s)
            }
            Err(e) => {
                warn!(self.log, "sock_diag poll failed"; "error" => %e);
                self.check(&e);
                None
            }
        }
    }
}

impl Actor for DiagPoller {
    type Context = Context<Self>;
}

impl Handler<SetPolling> for DiagPoller {
    type Result = ();

    fn handle(&mut self, msg: SetPolling, ctx: &mut Self::Context) {
        match (msg.0, self.handle.is_some()) {
            (true, false) => {
                let h = ctx.run_interval(self.interval, |act, _ctx| {
                    if let Some(s) = act.poll() {
                        act.sink.do_send(DiagSnapshot(s));
                    }
                });
                self.handle = Some(h);
            }
            (false, true) => {
                if let Some(h) = self.handle.take() {
                    ctx.cancel_future(h);
                }
            }
            _ => {}
        }
    }
}

impl Handler<SetSampling> for DiagPoller {
    type Result = ();

    fn handle(&mut self, msg: SetSampling, _ctx: &mut Self::Context) {
        if self.sampling != msg.0 {
            debug!(self.log, "subflow sampling"; "on" => msg.0);
        }
        self.sampling = msg.0;
    }
}

impl Handler<TakeSnapshot> for DiagPoller {
    type Result = Result<Snapshot, String>;

    fn handle(&mut self, _msg: TakeSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let t0 = Instant::now();
        let res = self.sock.snapshot();
        self.metrics.poll_duration(t0.elapsed());
        res.map_err(|e| {
            self.check(&e);
            e.to_string()
        })
    }
}
