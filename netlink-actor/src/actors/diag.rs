//! The sock_diag poller: owns the NETLINK_SOCK_DIAG socket. While connections exist it takes one
//! snapshot per period and hands it to the registry, which notices connections that vanished and
//! routes per-subflow samples to the connection actors. The periodic snapshot includes the
//! subflows (`tcp_info` of every subflow socket, the expensive part) only while sampling is on,
//! i.e. while some configured policy reads samples; otherwise it lists the connections alone.
//! On-demand snapshots ([`TakeSnapshot`]: adoption, resync, status) are always complete. With no
//! connections it does not wake up at all. It runs on its own arbiter thread so a large dump
//! never stalls the event loop. A failed dump is dropped (the next poll or the caller tries
//! again; an overrun only made that dump incomplete) unless the socket itself is unusable:
//! that is reported to [`Failures`]. Every snapshot leaves as domain data ([`MptcpSnapshot`]).
//!
//! **Sampling rounds.** The kernel builds `tcp_info` for every subflow a dump returns, so with
//! tens of thousands of subflows one dump would hold this thread (and a CPU) for most of a
//! 100 ms. When the last snapshot had more than [`WINDOW_SUBFLOWS`] subflows, a sampling period
//! is a round of bounded polls spread evenly over it: first the connections (the MPTCP dumps),
//! then the subflows in [`PortWindow`]s of about [`WINDOW_SUBFLOWS`] each, cut from the last
//! round's port pairs (the kernel filters, so each poll only pays for its share). At the end of
//! the round the parts are joined into one snapshot, as if taken at once: every subflow is
//! still sampled once per period and the registry and the policies see what they saw before,
//! each sample at most one period old. Below that size a period is one snapshot, as before.
//! Either way the IPv6 subflow dump is skipped while no IPv6 connection exists.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use slog::{debug, warn, Logger};

use super::failure::{Failures, KernelSocket, SocketFailure};
use super::messages::{DiagSnapshot, SetPolling, SetSampling, TakeSnapshot};
use super::snapshot::MptcpSnapshot;
use super::stats::Stats;
use crate::dump::Dump;
use crate::sock_diag::{
    join, port_windows, DiagSocket, MptcpConnDiag, PortPair, PortWindow, Snapshot, SubflowDiag,
    WINDOW_SUBFLOWS,
};
use crate::{Error as DiagError, Severity};

/// One sampling round in progress: the connections dumped at its start and the subflows of the
/// windows dumped so far (pure; the poller drives it).
#[derive(Debug)]
struct Round {
    id: u64,
    started: Instant,
    conns: Dump<MptcpConnDiag>,
    v6: bool,
    windows: Vec<PortWindow>,
    subflows: Dump<SubflowDiag>,
    next: usize,
}

impl Round {
    /// When the next window is due: the round's polls (connections, then each window) spread
    /// evenly over `interval`.
    fn due(&self, interval: Duration) -> Instant {
        let parts = u32::try_from(self.windows.len() + 1).unwrap_or(u32::MAX);
        let k = u32::try_from(self.next + 1).unwrap_or(u32::MAX);
        self.started + interval / parts * k
    }

    /// The window to dump next, if any is left.
    fn window(&self) -> Option<PortWindow> {
        self.windows.get(self.next).copied()
    }

    /// One more window's subflows.
    fn add(&mut self, part: Dump<SubflowDiag>) {
        self.subflows.skipped += part.skipped;
        self.subflows.last_error = part.last_error.or(self.subflows.last_error.take());
        self.subflows.items.extend(part.items);
        self.next += 1;
    }

    /// The round as one snapshot.
    fn finish(self) -> Snapshot {
        let mut snap = join(self.conns.items, self.subflows.items);
        snap.skipped = self.conns.skipped + self.subflows.skipped;
        snap.last_error = self.subflows.last_error.or(self.conns.last_error);
        snap
    }
}

/// The windows for the next round, from the subflows of a complete snapshot.
fn windows_after(snap: &Snapshot) -> Vec<PortWindow> {
    if !snap.has_subflows {
        return vec![PortWindow::ALL];
    }
    let mut pairs: Vec<PortPair> = snap
        .conns
        .iter()
        .flat_map(|c| c.subflows.iter())
        .chain(snap.orphans.iter())
        .map(|s| (s.key.local.port(), s.key.remote.port()))
        .collect();
    port_windows(&mut pairs, WINDOW_SUBFLOWS)
}

/// Owner of the sock_diag socket.
pub struct DiagPoller {
    sock: DiagSocket,
    sink: Recipient<DiagSnapshot>,
    interval: Duration,
    sampling: bool,
    handle: Option<SpawnHandle>,
    /// The windows of the next sampling round (one: no round, a plain snapshot).
    windows: Vec<PortWindow>,
    round: Option<Round>,
    rounds: u64,
    stats: Arc<dyn Stats>,
    failures: Failures,
    log: Logger,
}

impl DiagPoller {
    /// A poller sending snapshots to `sink` every `interval` while enabled, with the subflows'
    /// samples if `sampling`, timing each poll into `stats`. A dead socket is reported to
    /// `failures`.
    pub fn new(
        sock: DiagSocket,
        sink: Recipient<DiagSnapshot>,
        interval: Duration,
        sampling: bool,
        stats: Arc<dyn Stats>,
        failures: Failures,
        log: Logger,
    ) -> Self {
        DiagPoller {
            sock,
            sink,
            interval,
            sampling,
            handle: None,
            windows: vec![PortWindow::ALL],
            round: None,
            rounds: 0,
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

    /// A period's poll: the connections alone, a complete snapshot, or the start of a round.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if !self.sampling {
            if let Some(s) = self.timed("connections", DiagSocket::connections_snapshot) {
                self.sink.do_send(DiagSnapshot(s.into()));
            }
            return;
        }
        if self.round.is_some() {
            // The last round is still running (a slow machine): it delivers first.
            return;
        }
        if self.windows.len() <= 1 {
            if let Some(s) = self.timed("snapshot", DiagSocket::snapshot) {
                self.windows = windows_after(&s);
                self.sink.do_send(DiagSnapshot(s.into()));
            }
            return;
        }
        let Some((conns, v6)) = self.timed("connections", DiagSocket::mptcp_connections_v6) else {
            return;
        };
        self.rounds += 1;
        self.round = Some(Round {
            id: self.rounds,
            started: Instant::now(),
            conns,
            v6,
            windows: self.windows.clone(),
            subflows: Dump::default(),
            next: 0,
        });
        self.schedule_window(ctx);
    }

    /// Queue the round's next window at its due time.
    fn schedule_window(&mut self, ctx: &mut Context<Self>) {
        let Some(r) = &self.round else { return };
        let (id, wait) = (
            r.id,
            r.due(self.interval)
                .saturating_duration_since(Instant::now()),
        );
        ctx.run_later(wait, move |act, ctx| act.window_poll(id, ctx));
    }

    /// Dump the next window of round `id` (unless that round was abandoned); deliver the
    /// snapshot after the last one.
    fn window_poll(&mut self, id: u64, ctx: &mut Context<Self>) {
        let Some((window, v6)) = self
            .round
            .as_ref()
            .filter(|r| r.id == id)
            .and_then(|r| Some((r.window()?, r.v6)))
        else {
            return;
        };
        let Some(part) = self.timed("subflow window", |s| s.subflows_in(&window, v6)) else {
            // A window missing would look like subflows gone: drop the round, the next
            // period starts a new one.
            self.round = None;
            return;
        };
        let done = match self.round.as_mut() {
            Some(r) => {
                r.add(part);
                r.window().is_none()
            }
            None => return,
        };
        if !done {
            self.schedule_window(ctx);
            return;
        }
        if let Some(r) = self.round.take() {
            let snap = r.finish();
            self.windows = windows_after(&snap);
            debug!(self.log, "sampling round done"; "conns" => snap.conns.len(), "windows" => self.windows.len());
            self.sink.do_send(DiagSnapshot(snap.into()));
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
                let h = ctx.run_interval(self.interval, |act, ctx| act.tick(ctx));
                self.handle = Some(h);
            }
            (false, true) => {
                if let Some(h) = self.handle.take() {
                    ctx.cancel_future(h);
                }
                self.round = None;
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
        if !self.sampling {
            self.round = None;
        }
    }
}

impl Handler<TakeSnapshot> for DiagPoller {
    type Result = Result<MptcpSnapshot, String>;

    fn handle(&mut self, _msg: TakeSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        let t0 = Instant::now();
        let res = self.sock.snapshot();
        self.stats.poll_duration(t0.elapsed());
        match res {
            Ok(s) => {
                // Adoption at start-up sees every connection first: the first round already
                // knows how to split them.
                self.windows = windows_after(&s);
                Ok(s.into())
            }
            Err(e) => {
                self.check(&e);
                Err(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::snapshot::tests::{diag, sub};
    use crate::sock_diag::TcpState;
    use mptcp_pmd_policies::Token;

    fn conn(token: u32) -> MptcpConnDiag {
        diag(token, TcpState::Established, "10.0.0.1:40000")
    }

    fn dump<T>(items: Vec<T>) -> Dump<T> {
        Dump {
            items,
            ..Dump::default()
        }
    }

    #[test]
    fn a_round_spreads_its_polls_over_the_period_and_joins_them_as_one_snapshot() {
        let t0 = Instant::now();
        let windows = vec![
            PortWindow {
                from: (0, 0),
                to: Some((30_000, 0)),
            },
            PortWindow {
                from: (30_000, 0),
                to: None,
            },
        ];
        let mut r = Round {
            id: 1,
            started: t0,
            conns: dump(vec![conn(1), conn(2)]),
            v6: false,
            windows,
            subflows: Dump::default(),
            next: 0,
        };
        let period = Duration::from_millis(900);
        // Connections at the start, then each window a third of the period later.
        assert_eq!(r.due(period), t0 + Duration::from_millis(300));
        assert_eq!(r.window().map(|w| w.to), Some(Some((30_000, 0))));
        r.add(dump(vec![sub(1, 20_000), sub(2, 25_000)]));
        assert_eq!(r.due(period), t0 + Duration::from_millis(600));
        r.add(dump(vec![sub(1, 50_000), sub(3, 60_000)]));
        assert_eq!(r.window(), None, "done after the last window");
        let snap = r.finish();
        assert!(snap.has_subflows);
        let ports = |t: u32| -> Vec<u16> {
            snap.conns
                .iter()
                .find(|c| c.conn.token == Token(t))
                .map(|c| c.subflows.iter().map(|s| s.key.local.port()).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            ports(1),
            [20_000, 50_000],
            "both windows' subflows of one connection"
        );
        assert_eq!(ports(2), [25_000]);
        assert_eq!(
            snap.orphans.len(),
            1,
            "a subflow of a connection not listed"
        );
    }

    #[test]
    fn the_next_round_is_cut_from_the_subflows_seen() {
        let few = join(vec![conn(1)], vec![sub(1, 20_000), sub(1, 20_001)]);
        assert_eq!(windows_after(&few), vec![PortWindow::ALL]);
        let many: Vec<SubflowDiag> = (0..10_000u32)
            .map(|i| sub(i / 2, 10_000 + (i * 5) as u16))
            .collect();
        let snap = join((0..5_000).map(conn).collect(), many);
        let w = windows_after(&snap);
        assert_eq!(w.len(), 10_000usize.div_ceil(WINDOW_SUBFLOWS));
        let mut connections_only = snap.clone();
        connections_only.has_subflows = false;
        assert_eq!(windows_after(&connections_only), vec![PortWindow::ALL]);
    }
}
