//! The sock_diag poller: owns the NETLINK_SOCK_DIAG socket, on its own arbiter thread so that
//! no dump or lookup stalls the event loop. Two jobs:
//!
//! - **Connections.** While connections exist it lists them once per period (the MPTCP dumps
//!   alone) and hands the snapshot to the registry, which notices connections that vanished.
//!   With no connections it does not wake up at all. On-demand snapshots ([`TakeSnapshot`]:
//!   adoption, resync, status) are complete: every subflow with its `tcp_info`.
//! - **Subflow samples**, for the connections whose policy reads them, each at its own period
//!   ([`SampleConnection`]; the logic is [`super::sampler`]): batched exact lookups of their
//!   subflows by 4-tuple, in ticks of at most [`SLICE_SUBFLOWS`], spaced so that sampling
//!   takes at most half of this thread's time. A tick's samples leave as one [`FreshSamples`]
//!   for the registry, which hands each connection its own; while [`MAX_TICKS_IN_FLIGHT`]
//!   ticks are not consumed yet, the next one waits (the event loop is behind: periods
//!   stretch, nothing piles up). The cost follows the subflows sampled and their rate, not the
//!   host's socket count: no dump walks the kernel's table for samples, except the rare
//!   discovery dumps of the sampler.
//!
//! A failed dump or lookup is dropped (the next poll or tick tries again; an overrun only made
//! that one incomplete) unless the socket itself is unusable: that is reported to
//! [`Failures`]. Every snapshot leaves as domain data ([`MptcpSnapshot`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::VecDeque;

use actix::prelude::*;
use slog::{debug, info, warn, Logger};

use super::failure::{Failures, KernelSocket, SocketFailure};
use super::messages::{DiagSnapshot, FreshSamples, SampleConnection, SetPolling, TakeSnapshot};
use super::sampler::{Activity, Sample, Sampler, TickOut, TickReport, SLICE_SUBFLOWS};
use super::snapshot::MptcpSnapshot;
use super::stats::Stats;
use crate::sock_diag::{DiagSocket, LookupKey};
use crate::{Error as DiagError, Severity};

/// Sampling ticks whose samples may be unconsumed at once; the next tick waits for one of
/// them (the event loop is behind).
pub const MAX_TICKS_IN_FLIGHT: usize = 2;

/// How long a tick held back by [`MAX_TICKS_IN_FLIGHT`] waits before it looks again.
const HELD_BACK_RETRY: Duration = Duration::from_millis(5);

/// The achieved period above which sampling counts as behind: this many times the period
/// asked for (plus one tick of scheduling slack).
const BEHIND_FACTOR: u32 = 2;

/// Owner of the sock_diag socket.
pub struct DiagPoller {
    sock: DiagSocket,
    sink: Recipient<DiagSnapshot>,
    fresh: Recipient<FreshSamples>,
    interval: Duration,
    handle: Option<SpawnHandle>,
    sampler: Sampler,
    /// The sample lists of the ticks sent, oldest first, until consumed (no longer shared).
    in_flight: VecDeque<Arc<Vec<Sample>>>,
    /// The next sampling tick, if one is scheduled.
    tick: Option<(Instant, SpawnHandle)>,
    keys: Vec<LookupKey>,
    /// Whether the last ticks were behind (for the log: said once per episode).
    behind: bool,
    stats: Arc<dyn Stats>,
    failures: Failures,
    log: Logger,
}

impl DiagPoller {
    /// A poller sending snapshots of the connections to `sink` every `interval` while
    /// enabled and the subflow samples it is asked for to `fresh`, timing each poll into
    /// `stats`. A dead socket is reported to `failures`.
    pub fn new(
        sock: DiagSocket,
        sink: Recipient<DiagSnapshot>,
        fresh: Recipient<FreshSamples>,
        interval: Duration,
        stats: Arc<dyn Stats>,
        failures: Failures,
        log: Logger,
    ) -> Self {
        DiagPoller {
            sock,
            sink,
            fresh,
            interval,
            handle: None,
            sampler: Sampler::new(SLICE_SUBFLOWS),
            in_flight: VecDeque::new(),
            tick: None,
            keys: Vec::new(),
            behind: false,
            stats,
            failures,
            log,
        }
    }

    /// Report a dump's failure if the socket is unusable. An overrun is not: there is no
    /// stream of messages to lose, the incomplete dump is simply taken again.
    fn check(&self, e: &DiagError) {
        if e.severity() == Severity::Fatal {
            self.failures
                .report(SocketFailure::new(KernelSocket::SockDiag, e));
        }
    }

    /// Run one poll of the socket, timed into the poll metric; a failure is logged and checked.
    fn timed<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&mut DiagSocket) -> Result<T, DiagError>,
    ) -> Option<T> {
        let t0 = Instant::now();
        let res = f(&mut self.sock);
        self.stats.poll_duration(t0.elapsed());
        match res {
            Ok(v) => {
                debug!(self.log, "sock_diag poll"; "what" => what, "us" => t0.elapsed().as_micros() as u64);
                Some(v)
            }
            Err(e) => {
                warn!(self.log, "sock_diag poll failed"; "what" => what, "error" => %e);
                self.check(&e);
                None
            }
        }
    }

    /// A period's poll: the connections. Their data counters tell the sampler which are idle.
    fn tick(&mut self) {
        if let Some(s) = self.timed("connections", DiagSocket::connections_snapshot) {
            if !self.sampler.is_empty() {
                for c in s.conns.iter().filter(|c| !c.conn.is_listener()) {
                    let d = &c.conn;
                    let a = Activity::of(d.bytes_sent, d.bytes_received, d.bytes_acked);
                    self.sampler.activity(d.token, a);
                }
            }
            self.sink.do_send(DiagSnapshot(s.into()));
        }
    }

    /// Schedule the next sampling tick: when the next connection is due, but not before
    /// `not_before` (the spacing that keeps sampling to half of this thread).
    fn schedule_sampling(&mut self, ctx: &mut Context<Self>, not_before: Instant) {
        let Some(due) = self.sampler.next_due() else {
            if let Some((_, h)) = self.tick.take() {
                ctx.cancel_future(h);
            }
            return;
        };
        let at = due.max(not_before);
        if let Some((when, h)) = self.tick {
            if when <= at {
                return;
            }
            ctx.cancel_future(h);
        }
        let wait = at.saturating_duration_since(Instant::now());
        let h = ctx.run_later(wait, |act, ctx| {
            act.tick = None;
            act.sample(ctx);
        });
        self.tick = Some((at, h));
    }

    /// One sampling tick: look up the due connections' subflows, run the discovery dump they
    /// need, deliver, and schedule the next tick.
    fn sample(&mut self, ctx: &mut Context<Self>) {
        let t0 = Instant::now();
        while self
            .in_flight
            .front()
            .is_some_and(|t| Arc::strong_count(t) == 1)
        {
            self.in_flight.pop_front();
        }
        if self.in_flight.len() >= MAX_TICKS_IN_FLIGHT {
            self.stats.sample_held_back();
            self.schedule_sampling(ctx, t0 + HELD_BACK_RETRY);
            return;
        }
        let mut keys = std::mem::take(&mut self.keys);
        if !self.sampler.plan(t0, &mut keys) {
            self.keys = keys;
            self.schedule_sampling(ctx, t0);
            return;
        }
        let sampler = &mut self.sampler;
        let res = self
            .sock
            .lookup_subflows(&keys, |i, a| sampler.answer(i, a));
        self.keys = keys;
        if let Err(e) = res {
            warn!(self.log, "sock_diag lookups failed"; "error" => %e);
            self.check(&e);
        }
        if let Some(d) = self.sampler.discovery(Instant::now()) {
            let found = self.timed("subflow discovery", |s| s.subflows_in_states(d.states()));
            if let Some(found) = found {
                self.sampler.discovered(Instant::now(), d, &found.items);
            }
        }
        let now = Instant::now();
        let took = now.saturating_duration_since(t0);
        self.stats.poll_duration(took);
        let mut out = TickOut::default();
        let report = self.sampler.finish(now, &mut out);
        if !out.conns.is_empty() {
            let samples = Arc::new(out.samples);
            self.fresh.do_send(FreshSamples {
                samples: samples.clone(),
                conns: out.conns,
            });
            self.in_flight.push_back(samples);
        }
        self.report(&report, took);
        // At most half of this thread's time goes to sampling.
        self.schedule_sampling(ctx, now + took);
    }

    /// Count a tick, and say when sampling falls behind the periods asked for (once per
    /// episode) and when it is back.
    fn report(&mut self, r: &TickReport, took: Duration) {
        self.stats.sample_tick(r, took);
        let behind = r
            .achieved
            .iter()
            .find(|(want, got)| *got > *want * BEHIND_FACTOR + took);
        match (behind, self.behind) {
            (Some((want, got)), false) => {
                self.behind = true;
                warn!(self.log, "subflow sampling falls behind: periods stretch";
                    "wanted_ms" => want.as_millis() as u64, "achieved_ms" => got.as_millis() as u64,
                    "connections" => self.sampler.len(), "subflows" => self.sampler.subflows(),
                    "tick_subflows" => r.subflows, "tick_ms" => took.as_secs_f64() * 1e3);
            }
            (None, true) if !r.achieved.is_empty() => {
                self.behind = false;
                info!(self.log, "subflow sampling keeps up again";
                    "connections" => self.sampler.len(), "subflows" => self.sampler.subflows());
            }
            _ => {}
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
                let h = ctx.run_interval(self.interval, |act, _ctx| act.tick());
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

impl Handler<SampleConnection> for DiagPoller {
    type Result = ();

    fn handle(&mut self, msg: SampleConnection, ctx: &mut Self::Context) {
        self.sampler.watch(Instant::now(), msg.token, msg.watch);
        if self.sampler.is_empty() {
            // Nothing left to sample: give back the buffers a large set grew.
            self.keys = Vec::new();
            self.in_flight = VecDeque::new();
            self.sock.release_lookup_buffers();
        }
        self.stats
            .sampled(self.sampler.len(), self.sampler.subflows());
        self.schedule_sampling(ctx, Instant::now());
    }
}

impl Handler<TakeSnapshot> for DiagPoller {
    type Result = Result<MptcpSnapshot, String>;

    fn handle(&mut self, _msg: TakeSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let t0 = Instant::now();
        let res = self.sock.snapshot();
        self.stats.poll_duration(t0.elapsed());
        match res {
            Ok(s) => Ok(s.into()),
            Err(e) => {
                self.check(&e);
                Err(e.to_string())
            }
        }
    }
}
