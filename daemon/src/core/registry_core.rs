//! The registry's logic, sans-IO: which connection an event, a sock_diag snapshot or an adoption
//! goes to, when a connection that vanished from sock_diag is retired, and how resyncs are
//! coalesced. [`RegistryCore`] never reads the clock or touches an actor: time is an argument,
//! effects are [`Output`]s drained with [`RegistryCore::poll_output`], and it is generic over the
//! handle `H` of a connection (an actix `Addr` in the daemon, a plain value in the tests). The
//! one effect it cannot defer is starting a connection's driver, whose handle it must store: the
//! driver passes that as a function to the calls that may create connections.
//!
//! A snapshot is a picture of the moment it was asked for: a connection that ends while it is
//! in flight (its CLOSED read, or its driver stopped) may still be listed as established. Such
//! connections are remembered until the snapshot is handed back and are not adopted from it
//! (re-adopting a closed connection made its policy ask for subflows the kernel could only
//! refuse: issue 15, item 5).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mptcp_pmd_policies::conn::{ConnTimers, Connection};
use mptcp_pmd_policies::{PmEvent, SubflowKey, SubflowSample, Token};
use netlink_actor::actors::MptcpSnapshot;

use super::adopt::{adoptable, Adoptable};
use crate::actors::messages::Hook;
use crate::process::trim::TrimGate;

/// Polls a tracked connection may be missing from sock_diag before it is retired.
pub const MISSING_POLLS: u32 = 3;
/// How long to wait before retrying a resync whose snapshot failed.
pub const RESYNC_RETRY: Duration = Duration::from_secs(1);

/// What the driver must do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Forward a kernel event to the tracked connection `token`.
    Deliver {
        /// The connection.
        token: Token,
        /// The event.
        event: PmEvent,
        /// When it was read from the events socket (the `now` of [`RegistryCore::handle_event`]).
        received: Instant,
    },
    /// Give the tracked connection `token` its subflows' samples.
    Samples {
        /// The connection.
        token: Token,
        /// Its subflows' samples.
        samples: Vec<(SubflowKey, SubflowSample)>,
    },
    /// Bring the tracked connection `token` in line with a snapshot asked for at `taken_at`.
    Reconcile {
        /// When the snapshot was asked for.
        taken_at: Instant,
        /// What the snapshot shows of the connection (its token included).
        conn: Adoptable,
    },
    /// `token` has been missing from [`MISSING_POLLS`] polls in a row: tell it it closed.
    Retire {
        /// The connection.
        token: Token,
    },
    /// Start a resync: take one complete sock_diag snapshot and hand the result to
    /// [`RegistryCore::resync_done`].
    TakeSnapshot {
        /// Why (for the log).
        reason: &'static str,
    },
    /// A resync failed: call [`RegistryCore::request_resync`] again after this long.
    ResyncAfter(Duration),
    /// Turn the periodic sock_diag poll on (the first connection) or off (the last one left).
    Polling(bool),
    /// Many connections closed: return freed heap to the kernel.
    Trim,
}

/// What [`RegistryCore::handle_event`] did with an event (for the log; the effects are outputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventRoute {
    /// Forwarded to its tracked connection.
    Delivered,
    /// A new connection (CREATED or ESTABLISHED): its driver was started.
    Started,
    /// The event names no connection (listener events).
    NoConnection,
    /// For a connection we do not track and need not learn (CLOSED, unknown event types).
    Untracked,
    /// For a connection we do not know but should: a resync was requested.
    Unknown,
}

/// What [`RegistryCore::adopt`] did with a snapshot's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Adopted {
    /// Unknown connections whose driver was started.
    pub started: usize,
    /// Connections listed as established that ended after the snapshot was asked for: not
    /// adopted.
    pub ended: usize,
}

/// Where a resync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resync {
    Idle,
    /// A snapshot asked for at `taken_at` is in flight; `again` if events were lost meanwhile
    /// (the snapshot may predate them).
    Running {
        taken_at: Instant,
        again: bool,
    },
}

#[derive(Debug)]
struct Tracked<H> {
    handle: H,
    /// Consecutive polls that did not list the connection.
    missing: u32,
}

/// Token -> connection handle, plus the bookkeeping around it. See the module docs.
#[derive(Debug)]
pub struct RegistryCore<H> {
    conns: HashMap<Token, Tracked<H>>,
    /// Shared by every connection it starts.
    timers: Arc<ConnTimers>,
    resync: Resync,
    /// Snapshots asked for (start-up adoption, resyncs) and not handed back yet.
    in_flight: u32,
    /// Connections that ended while a snapshot was in flight, and when: such a snapshot may
    /// still list them. Emptied when no snapshot is in flight.
    ended: HashMap<Token, Instant>,
    trim: TrimGate,
    out: VecDeque<Output>,
}

impl<H> RegistryCore<H> {
    /// An empty registry; new connections get `timers`.
    pub fn new(timers: ConnTimers) -> Self {
        RegistryCore {
            conns: HashMap::new(),
            timers: Arc::new(timers),
            resync: Resync::Idle,
            in_flight: 0,
            ended: HashMap::new(),
            trim: TrimGate::default(),
            out: VecDeque::new(),
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The handle of a tracked connection.
    pub fn get(&self, token: Token) -> Option<&H> {
        self.conns.get(&token).map(|t| &t.handle)
    }

    /// How many connections are tracked.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Every tracked handle, in no particular order.
    pub fn handles(&self) -> impl Iterator<Item = &H> {
        self.conns.values().map(|t| &t.handle)
    }

    /// Every tracked connection, ordered by token.
    pub fn sorted(&self) -> Vec<(Token, &H)> {
        let mut v: Vec<(Token, &H)> = self.conns.iter().map(|(t, c)| (*t, &c.handle)).collect();
        v.sort_by_key(|(t, _)| *t);
        v
    }

    fn track(&mut self, token: Token, handle: H) {
        if self.conns.is_empty() {
            self.out.push_back(Output::Polling(true));
        }
        self.conns.insert(token, Tracked { handle, missing: 0 });
        self.trim.observe(self.conns.len());
    }

    /// A kernel event, read from the events socket at `now`. A CREATED or ESTABLISHED of a new
    /// token starts its connection through `start(connection, first hook)`; any other event of
    /// an unknown token means we missed the connection's start, so a resync is requested.
    pub fn handle_event(
        &mut self,
        now: Instant,
        event: PmEvent,
        start: impl FnOnce(Connection, Hook) -> H,
    ) -> EventRoute {
        let Some(token) = event.token() else {
            return EventRoute::NoConnection;
        };
        if matches!(event, PmEvent::Closed { .. }) {
            self.note_ended(token, now);
        }
        if self.conns.contains_key(&token) {
            self.out.push_back(Output::Deliver {
                token,
                event,
                received: now,
            });
            return EventRoute::Delivered;
        }
        match event {
            PmEvent::Closed { .. } | PmEvent::Unknown { .. } => EventRoute::Untracked,
            PmEvent::Created(_) | PmEvent::Established(_) => {
                let mut conn = Connection::new(token, self.timers.clone());
                conn.handle_event(now, &event);
                let handle = start(conn, Hook::Event(event));
                self.track(token, handle);
                EventRoute::Started
            }
            _ => {
                self.request_resync(now, "event for an unknown connection");
                EventRoute::Unknown
            }
        }
    }

    /// A connection ended at `at` (CLOSED read, or its driver stopped): a snapshot in flight
    /// must not bring it back.
    fn note_ended(&mut self, token: Token, at: Instant) {
        if self.in_flight > 0 {
            self.ended.entry(token).or_insert(at);
        }
    }

    /// A snapshot is being asked for at `now` outside a resync (start-up adoption): until it is
    /// handed to [`RegistryCore::adopt`], connections that end are remembered. Returns `now`,
    /// the `taken_at` to pass to `adopt`.
    pub fn snapshot_requested(&mut self, now: Instant) -> Instant {
        self.in_flight += 1;
        now
    }

    /// The snapshot of [`RegistryCore::snapshot_requested`] failed: nothing to adopt from it.
    pub fn snapshot_failed(&mut self) {
        self.snapshot_returned();
    }

    /// A snapshot asked for came back (or failed).
    fn snapshot_returned(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            self.ended = HashMap::new();
        }
    }

    /// Adopt the connections of `snap` (asked for at `taken_at`, see
    /// [`RegistryCore::snapshot_requested`]) that are not tracked, starting each through
    /// `start(connection, what the snapshot showed)` (its first hook is a tick), and reconcile
    /// those that are. A connection that ended after `taken_at` is left alone.
    pub fn adopt(
        &mut self,
        now: Instant,
        snap: &MptcpSnapshot,
        taken_at: Instant,
        start: impl FnMut(Connection, &Adoptable) -> H,
    ) -> Adopted {
        let adopted = self.adopt_from(now, snap, taken_at, start);
        self.snapshot_returned();
        adopted
    }

    fn adopt_from(
        &mut self,
        now: Instant,
        snap: &MptcpSnapshot,
        taken_at: Instant,
        mut start: impl FnMut(Connection, &Adoptable) -> H,
    ) -> Adopted {
        let mut adopted = Adopted::default();
        // A dump can list a socket twice when the table changes under it: adopt it once.
        let mut seen = HashSet::new();
        for c in adoptable(snap) {
            if !seen.insert(c.token) {
                continue;
            }
            if self.ended.get(&c.token).is_some_and(|at| *at >= taken_at) {
                adopted.ended += 1;
                continue;
            }
            if self.conns.contains_key(&c.token) {
                self.out.push_back(Output::Reconcile { taken_at, conn: c });
                continue;
            }
            let conn = Connection::adopt(now, c.token, c.local, c.remote, c.subflows.clone())
                .with_timers(self.timers.clone())
                .with_server_side(c.server_side);
            let handle = start(conn, &c);
            self.track(c.token, handle);
            adopted.started += 1;
        }
        adopted
    }

    /// A periodic snapshot: route the subflows' samples (when it has them) and retire the
    /// connections it has not listed [`MISSING_POLLS`] times in a row (closed without a CLOSED
    /// event, e.g. lost in an overrun).
    pub fn handle_snapshot(&mut self, snap: &MptcpSnapshot) {
        let mut seen = HashSet::with_capacity(snap.conns.len());
        for c in &snap.conns {
            let token = c.token;
            seen.insert(token);
            if snap.has_subflows && self.conns.contains_key(&token) {
                self.out.push_back(Output::Samples {
                    token,
                    samples: c.samples(),
                });
            }
        }
        for (token, t) in &mut self.conns {
            if seen.contains(token) {
                t.missing = 0;
                continue;
            }
            t.missing += 1;
            if t.missing >= MISSING_POLLS {
                t.missing = 0;
                self.out.push_back(Output::Retire { token: *token });
            }
        }
    }

    /// Events were lost (or an event named a connection we do not know): rebuild the view from
    /// one snapshot. A request while a snapshot is in flight runs one more resync after it,
    /// since that snapshot may predate what was just lost; any number of such requests
    /// coalesce into that one.
    pub fn request_resync(&mut self, now: Instant, reason: &'static str) {
        match &mut self.resync {
            Resync::Running { again, .. } => *again = true,
            Resync::Idle => {
                self.resync = Resync::Running {
                    taken_at: now,
                    again: false,
                };
                self.in_flight += 1;
                self.out.push_back(Output::TakeSnapshot { reason });
            }
        }
    }

    /// The snapshot of the resync in flight arrived (`None`: it failed). Adopts and reconciles
    /// from it, routes its samples; returns what was adopted, `None` if there was no snapshot
    /// (a retry is scheduled unless another resync is due anyway) or no resync was running.
    pub fn resync_done(
        &mut self,
        now: Instant,
        snap: Option<&MptcpSnapshot>,
        start: impl FnMut(Connection, &Adoptable) -> H,
    ) -> Option<Adopted> {
        let Resync::Running { taken_at, again } = self.resync else {
            return None;
        };
        self.resync = Resync::Idle;
        if again {
            self.request_resync(now, "events lost during a resync");
        }
        let adopted = snap.map(|snap| self.adopt_from(now, snap, taken_at, start));
        self.snapshot_returned();
        let Some(snap) = snap else {
            if !again {
                self.out.push_back(Output::ResyncAfter(RESYNC_RETRY));
            }
            return None;
        };
        self.handle_snapshot(snap);
        adopted
    }

    /// A connection's driver stopped: forget it. Turns polling off after the last one and
    /// trims the heap after many closed.
    pub fn gone(&mut self, now: Instant, token: Token) {
        if self.conns.remove(&token).is_none() {
            return;
        }
        self.note_ended(token, now);
        if self.conns.is_empty() {
            // Give back the table a burst grew.
            self.conns.shrink_to_fit();
        }
        if self.trim.observe(self.conns.len()) {
            self.out.push_back(Output::Trim);
        }
        if self.conns.is_empty() {
            self.out.push_back(Output::Polling(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use mptcp_pmd_policies::{ConnFlags, ConnInfo, KernelSubflow, SubflowInfo};
    use netlink_actor::actors::SnapshotConn;

    use super::*;

    /// A handle that says which start it came from.
    type Id = u32;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn info(token: u32) -> ConnInfo {
        ConnInfo {
            token: Token(token),
            local: addr("10.0.0.1:40000"),
            remote: addr("10.9.0.1:80"),
            loc_id: 0,
            rem_id: 0,
            flags: ConnFlags::default(),
        }
    }

    fn sub(token: u32, local: &str) -> SubflowInfo {
        SubflowInfo {
            token: Token(token),
            local: addr(local),
            remote: addr("10.9.0.1:80"),
            loc_id: 1,
            rem_id: 0,
            backup: false,
            if_idx: None,
            error: None,
            reset_reason: None,
            reset_flags: None,
        }
    }

    /// The TCP states of the sockets the tests list.
    #[derive(Clone, Copy, PartialEq)]
    enum TcpState {
        Established,
        SynSent,
        Listen,
    }

    /// An MPTCP connection (or listener) as sock_diag shows it, without subflows.
    fn diag(token: u32, state: TcpState, local: &str) -> SnapshotConn {
        SnapshotConn {
            token: Token(token),
            local: addr(local),
            remote: if state == TcpState::Listen {
                addr("0.0.0.0:0")
            } else {
                addr("10.9.0.1:80")
            },
            listener: state == TcpState::Listen,
            established: state == TcpState::Established,
            fallback: false,
            subflows: Vec::new(),
        }
    }

    /// A snapshot of established connections `tokens`, each with one subflow whose srtt is
    /// the token (so routed samples can be told apart), with or without the subflows dumped.
    fn snap(tokens: &[u32], has_subflows: bool) -> MptcpSnapshot {
        let conns = tokens
            .iter()
            .map(|&t| {
                let mut conn = diag(t, TcpState::Established, "10.0.0.1:40000");
                if has_subflows {
                    let sample = SubflowSample {
                        srtt_us: t,
                        ..SubflowSample::default()
                    };
                    conn.subflows = vec![KernelSubflow {
                        key: SubflowKey {
                            local: conn.local,
                            remote: conn.remote,
                        },
                        loc_id: 0,
                        rem_id: 0,
                        backup: sample.backup,
                        sample,
                    }];
                }
                conn
            })
            .collect();
        MptcpSnapshot {
            conns,
            has_subflows,
        }
    }

    fn drain(core: &mut RegistryCore<Id>) -> Vec<Output> {
        std::iter::from_fn(|| core.poll_output()).collect()
    }

    /// A start function handing out ids 1, 2, ... and recording what it started.
    struct Starts {
        next: Id,
        started: Vec<(Token, Option<Hook>)>,
    }

    impl Starts {
        fn new() -> Self {
            Starts {
                next: 1,
                started: Vec::new(),
            }
        }
        fn event(&mut self) -> impl FnOnce(Connection, Hook) -> Id + '_ {
            |c, h| {
                self.started.push((c.token(), Some(h)));
                self.next += 1;
                self.next - 1
            }
        }
        fn adopt(&mut self) -> impl FnMut(Connection, &Adoptable) -> Id + '_ {
            |c, a| {
                assert_eq!(c.token(), a.token);
                self.started.push((c.token(), None));
                self.next += 1;
                self.next - 1
            }
        }
    }

    fn started(n: usize) -> Adopted {
        Adopted {
            started: n,
            ended: 0,
        }
    }

    fn fresh() -> (RegistryCore<Id>, Starts) {
        (RegistryCore::new(ConnTimers::default()), Starts::new())
    }

    /// A registry tracking connections `tokens`, started by their ESTABLISHED, outputs drained.
    fn tracking(now: Instant, tokens: &[u32]) -> (RegistryCore<Id>, Starts) {
        let (mut core, mut s) = fresh();
        for t in tokens {
            core.handle_event(now, PmEvent::Established(info(*t)), s.event());
        }
        drain(&mut core);
        (core, s)
    }

    #[test]
    fn routes_events_by_token_and_starts_new_connections() {
        let now = Instant::now();
        let (mut core, mut s) = fresh();
        let ev = PmEvent::Created(info(7));
        assert_eq!(
            core.handle_event(now, ev.clone(), s.event()),
            EventRoute::Started
        );
        assert_eq!(s.started.len(), 1);
        assert!(matches!(&s.started[0], (Token(7), Some(Hook::Event(e))) if *e == ev));
        assert_eq!(
            drain(&mut core),
            vec![Output::Polling(true)],
            "the first connection starts polling"
        );
        assert_eq!(core.get(Token(7)), Some(&1));

        let est = PmEvent::SubEstablished(sub(7, "10.0.1.1:5000"));
        assert_eq!(
            core.handle_event(now, est.clone(), s.event()),
            EventRoute::Delivered
        );
        assert_eq!(
            drain(&mut core),
            vec![Output::Deliver {
                token: Token(7),
                event: est,
                received: now,
            }]
        );
        // ESTABLISHED of a tracked token goes to it; it does not start a second driver.
        let e = PmEvent::Established(info(7));
        assert_eq!(core.handle_event(now, e, s.event()), EventRoute::Delivered);
        assert_eq!(s.started.len(), 1);
        drain(&mut core);

        // A second connection: no second Polling(true).
        let e = PmEvent::Established(info(8));
        assert_eq!(core.handle_event(now, e, s.event()), EventRoute::Started);
        assert_eq!(drain(&mut core), vec![]);
        assert_eq!(core.get(Token(8)), Some(&2));
        assert_eq!(
            core.sorted(),
            vec![(Token(7), &1), (Token(8), &2)],
            "listed in token order"
        );
    }

    #[test]
    fn events_of_untracked_connections() {
        let now = Instant::now();
        let (mut core, mut s) = fresh();
        let listener = PmEvent::ListenerCreated {
            addr: addr("0.0.0.0:80"),
        };
        assert_eq!(
            core.handle_event(now, listener, s.event()),
            EventRoute::NoConnection
        );
        let closed = PmEvent::Closed { token: Token(3) };
        assert_eq!(
            core.handle_event(now, closed, s.event()),
            EventRoute::Untracked
        );
        let unknown = PmEvent::Unknown {
            kind: 99,
            token: Some(Token(3)),
        };
        assert_eq!(
            core.handle_event(now, unknown, s.event()),
            EventRoute::Untracked
        );
        assert_eq!(drain(&mut core), vec![]);
        assert!(core.len() == 0 && s.started.is_empty());

        // A subflow event of a connection we never saw: we missed its start, learn it.
        let sub_ev = PmEvent::SubEstablished(sub(3, "10.0.1.1:5000"));
        assert_eq!(
            core.handle_event(now, sub_ev, s.event()),
            EventRoute::Unknown
        );
        assert_eq!(
            drain(&mut core),
            vec![Output::TakeSnapshot {
                reason: "event for an unknown connection"
            }]
        );
        assert!(core.len() == 0 && s.started.is_empty());
    }

    #[test]
    fn adoption_starts_unknown_and_reconciles_tracked_connections() {
        let t0 = Instant::now();
        let (mut core, mut s) = tracking(t0, &[1]);

        let mut sn = snap(&[1, 2, 3], true);
        // Listeners, fallback and not-yet-established connections are not adopted.
        sn.conns.push(diag(0, TcpState::Listen, "0.0.0.0:80"));
        let mut fallback = diag(4, TcpState::Established, "10.0.0.1:40004");
        fallback.fallback = true;
        sn.conns.push(fallback);
        sn.conns.push(diag(5, TcpState::SynSent, "10.0.0.1:40005"));
        // The same socket listed twice by a dump that raced a change.
        let dup = sn.conns[2].clone();
        sn.conns.push(dup);

        let taken_at = t0 + Duration::from_millis(5);
        let n = core.adopt(t0 + Duration::from_millis(9), &sn, taken_at, s.adopt());
        assert_eq!(n, started(2));
        let started: Vec<Token> = s.started.iter().map(|(t, _)| *t).collect();
        assert_eq!(
            started,
            vec![Token(1), Token(2), Token(3)],
            "1 by its event, 2 and 3 adopted once"
        );
        let out = drain(&mut core);
        assert_eq!(out.len(), 1, "{out:?}");
        match &out[0] {
            Output::Reconcile { taken_at: at, conn } => {
                assert_eq!(*at, taken_at);
                assert_eq!(conn.token, Token(1));
                assert_eq!(conn.subflows.len(), 1);
            }
            other => panic!("expected a reconcile, got {other:?}"),
        }
        assert_eq!(core.len(), 3);
    }

    #[test]
    fn adopting_into_an_empty_registry_starts_polling() {
        let now = Instant::now();
        let (mut core, mut s) = fresh();
        assert_eq!(
            core.adopt(now, &snap(&[], true), now, s.adopt()),
            started(0)
        );
        assert_eq!(drain(&mut core), vec![]);
        assert_eq!(
            core.adopt(now, &snap(&[4, 5], true), now, s.adopt()),
            started(2)
        );
        assert_eq!(drain(&mut core), vec![Output::Polling(true)]);
    }

    #[test]
    fn samples_go_to_tracked_connections_only_when_dumped() {
        let now = Instant::now();
        let (mut core, _) = tracking(now, &[1, 2]);

        core.handle_snapshot(&snap(&[1, 2, 9], true));
        let mut out = drain(&mut core);
        out.sort_by_key(|o| match o {
            Output::Samples { token, .. } => token.0,
            _ => u32::MAX,
        });
        assert_eq!(out.len(), 2, "none for the untracked 9: {out:?}");
        for (o, want) in out.iter().zip([1u32, 2]) {
            match o {
                Output::Samples { token, samples } => {
                    assert_eq!(token.0, want);
                    assert_eq!(samples.len(), 1);
                    assert_eq!(samples[0].1.srtt_us, want, "each gets its own samples");
                }
                other => panic!("{other:?}"),
            }
        }
        // A connections-only poll still counts as seeing them, with nothing to route.
        core.handle_snapshot(&snap(&[1, 2], false));
        assert_eq!(drain(&mut core), vec![]);
    }

    #[test]
    fn a_connection_missing_from_three_polls_in_a_row_is_retired() {
        let now = Instant::now();
        let (mut core, _) = tracking(now, &[1, 2]);

        // 2 is missing twice, seen once (the count restarts), then missing three times.
        let polls: [&[u32]; 6] = [&[1], &[1], &[1, 2], &[1], &[1], &[1]];
        let mut retired_at = Vec::new();
        for (i, p) in polls.iter().enumerate() {
            core.handle_snapshot(&snap(p, false));
            for o in drain(&mut core) {
                match o {
                    Output::Retire { token } => retired_at.push((i, token)),
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(retired_at, vec![(5, Token(2))]);
        // Still tracked until its driver stops; if it lingers, it is retired again three
        // polls later, not at every poll.
        assert_eq!(core.len(), 2);
        for i in 0..3 {
            core.handle_snapshot(&snap(&[1], false));
            let out = drain(&mut core);
            if i < 2 {
                assert_eq!(out, vec![]);
            } else {
                assert_eq!(out, vec![Output::Retire { token: Token(2) }]);
            }
        }
        core.gone(now, Token(2));
        assert_eq!(drain(&mut core), vec![]);
        core.gone(now, Token(2));
        core.gone(now, Token(1));
        assert_eq!(
            drain(&mut core),
            vec![Output::Polling(false)],
            "once, after the last one"
        );
    }

    #[test]
    fn resyncs_coalesce_and_one_more_follows_a_request_during_one() {
        let t0 = Instant::now();
        let (mut core, mut s) = fresh();
        core.request_resync(t0, "event overrun");
        assert_eq!(
            drain(&mut core),
            vec![Output::TakeSnapshot {
                reason: "event overrun"
            }]
        );
        // Three more overruns while the snapshot is in flight: nothing now ...
        for _ in 0..3 {
            core.request_resync(t0 + Duration::from_millis(1), "event overrun");
        }
        assert_eq!(drain(&mut core), vec![]);
        // ... and exactly one more resync once it is done.
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(
            core.resync_done(t1, Some(&snap(&[6], true)), s.adopt()),
            Some(started(1))
        );
        let out = drain(&mut core);
        assert_eq!(
            out[0],
            Output::TakeSnapshot {
                reason: "events lost during a resync"
            }
        );
        assert!(out.contains(&Output::Polling(true)), "{out:?}");
        assert_eq!(core.len(), 1);
        // That one finds the adopted connection tracked: reconciled with its own snapshot
        // time (when it was asked for, t1), not the first one's.
        let t2 = t1 + Duration::from_millis(10);
        assert_eq!(
            core.resync_done(t2, Some(&snap(&[6], true)), s.adopt()),
            Some(started(0))
        );
        let out = drain(&mut core);
        assert!(
            matches!(&out[0], Output::Reconcile { taken_at, conn } if *taken_at == t1 && conn.token == Token(6)),
            "{out:?}"
        );
        assert_eq!(drain(&mut core), vec![]);
        // Nothing running: a stray completion does nothing.
        assert_eq!(
            core.resync_done(t2, Some(&snap(&[7], true)), s.adopt()),
            None
        );
        assert_eq!(core.len(), 1);
    }

    #[test]
    fn a_resync_does_not_bring_back_connections_that_closed_while_it_ran() {
        let t0 = Instant::now();
        // 1 and 2 tracked; 3 never seen (its events were lost).
        let (mut core, mut s) = tracking(t0, &[1, 2]);
        core.request_resync(t0, "event overrun");
        drain(&mut core);
        // While the snapshot is in flight: 1 closes (CLOSED delivered, then its driver stops),
        // 2's driver stops (retired: the kernel no longer knew it), 3's CLOSED arrives untracked.
        let t1 = t0 + Duration::from_millis(2);
        let closed = |t| PmEvent::Closed { token: Token(t) };
        assert_eq!(
            core.handle_event(t1, closed(1), s.event()),
            EventRoute::Delivered
        );
        core.gone(t1, Token(1));
        core.gone(t1, Token(2));
        assert_eq!(
            core.handle_event(t1, closed(3), s.event()),
            EventRoute::Untracked
        );
        drain(&mut core);
        // The snapshot, dumped before those closes, lists all three (and a live 4) established.
        let done = core.resync_done(t1, Some(&snap(&[1, 2, 3, 4], true)), s.adopt());
        assert_eq!(
            done,
            Some(Adopted {
                started: 1,
                ended: 3
            })
        );
        let tokens: Vec<Token> = s.started.iter().map(|(t, _)| *t).collect();
        assert_eq!(tokens, vec![Token(1), Token(2), Token(4)], "only 4 adopted");
        assert_eq!(core.len(), 1);
        assert!(core.get(Token(4)).is_some());
        assert!(
            !drain(&mut core)
                .iter()
                .any(|o| matches!(o, Output::Reconcile { .. })),
            "nothing reconciled for the closed ones"
        );

        // With no snapshot in flight nothing is remembered: a later snapshot (which cannot list
        // a connection closed before it was asked for, except under a reused token) adopts.
        let t2 = t1 + Duration::from_millis(10);
        assert_eq!(
            core.handle_event(t2, closed(9), s.event()),
            EventRoute::Untracked
        );
        core.request_resync(t2, "event overrun");
        drain(&mut core);
        let done = core.resync_done(t2, Some(&snap(&[4, 9], true)), s.adopt());
        assert_eq!(
            done,
            Some(started(1)),
            "9 closed before the snapshot was asked for"
        );
    }

    #[test]
    fn a_close_just_before_the_snapshot_was_asked_for_does_not_block_adoption() {
        let t0 = Instant::now();
        let (mut core, mut s) = fresh();
        // Two snapshots in flight: the start-up adoption (t0) and a resync asked for at t2.
        let taken_at = core.snapshot_requested(t0);
        let t1 = t0 + Duration::from_millis(1);
        core.handle_event(t1, PmEvent::Closed { token: Token(5) }, s.event());
        let t2 = t0 + Duration::from_millis(2);
        core.request_resync(t2, "event overrun");
        drain(&mut core);
        // The start-up snapshot (asked before 5 closed) does not adopt it ...
        let a = core.adopt(t2, &snap(&[5, 6], true), taken_at, s.adopt());
        assert_eq!(
            a,
            Adopted {
                started: 1,
                ended: 1
            }
        );
        // ... the resync's, asked for after it closed, would: the close predates it (a listed
        // 5 is then a new connection that reuses the token).
        core.gone(t2, Token(6));
        let done = core.resync_done(t2, Some(&snap(&[5], true)), s.adopt());
        assert_eq!(done, Some(started(1)));
        // A failed start-up snapshot releases what it held.
        let taken_at = core.snapshot_requested(t2);
        core.handle_event(t2, PmEvent::Closed { token: Token(7) }, s.event());
        core.snapshot_failed();
        let a = core.adopt(t2, &snap(&[7], true), taken_at, s.adopt());
        assert_eq!(a, started(1), "nothing in flight: nothing remembered");
    }

    #[test]
    fn connections_in_a_closing_state_are_not_adopted() {
        let now = Instant::now();
        let (mut core, mut s) = fresh();
        let mut sn = snap(&[1], true);
        // FIN_WAIT / CLOSE_WAIT / LAST_ACK: listed by sock_diag, not established.
        for t in 2..5 {
            let mut c = diag(t, TcpState::SynSent, "10.0.0.1:40002");
            c.established = false;
            c.subflows = sn.conns[0].subflows.clone();
            sn.conns.push(c);
        }
        assert_eq!(core.adopt(now, &sn, now, s.adopt()), started(1));
        assert_eq!(core.len(), 1);
    }

    #[test]
    fn a_failed_resync_is_retried() {
        let t0 = Instant::now();
        let (mut core, mut s) = fresh();
        core.request_resync(t0, "event overrun");
        drain(&mut core);
        assert_eq!(core.resync_done(t0, None, s.adopt()), None);
        assert_eq!(drain(&mut core), vec![Output::ResyncAfter(RESYNC_RETRY)]);
        // When a new request came in meanwhile, that one is the retry.
        core.request_resync(t0, "retry");
        drain(&mut core);
        core.request_resync(t0, "event overrun");
        assert_eq!(core.resync_done(t0, None, s.adopt()), None);
        assert_eq!(
            drain(&mut core),
            vec![Output::TakeSnapshot {
                reason: "events lost during a resync"
            }]
        );
    }

    #[test]
    fn trims_after_many_connections_closed() {
        let now = Instant::now();
        let (mut core, mut s) = fresh();
        let tokens: Vec<u32> = (1..=2000).collect();
        core.adopt(now, &snap(&tokens, false), now, s.adopt());
        drain(&mut core);
        let mut trims = 0;
        for t in 1..=1000 {
            core.gone(now, Token(t));
            trims += drain(&mut core)
                .iter()
                .filter(|o| **o == Output::Trim)
                .count();
        }
        assert_eq!(trims, 1, "one trim when half of the 2000 are gone");
        for t in 1001..=2000 {
            core.gone(now, Token(t));
            trims += drain(&mut core)
                .iter()
                .filter(|o| **o == Output::Trim)
                .count();
        }
        assert_eq!(trims, 3, "at 500 left, and when the last is gone");
        assert_eq!(core.conns.capacity(), 0, "the table is given back");
    }
}
