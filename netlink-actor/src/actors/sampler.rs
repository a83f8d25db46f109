//! Subflow sampling for a set of connections, each at its own period (pure; the diag poller
//! drives it). A connection whose policy reads samples registers its subflows ([`Watch`]:
//! their 4-tuples and bound interfaces, whether it waits for joins whose port it does not
//! know yet) and a period; the [`Sampler`] says at each tick which subflows to look up
//! (batched exact lookups, [`crate::sock_diag::lookup`]), assembles the answers per
//! connection and hands them on, one list per tick.
//!
//! Why lookups and not dumps: a dump walks the kernel's whole TCP table whatever it returns,
//! so the cost of a dump every 20 ms follows the host's socket count; a lookup costs one hash
//! lookup and one reply (~2.3 µs of kernel time per subflow on Linux 6.18, bench scale
//! section), so sampling costs in proportion to the subflows sampled and their rate. Only two
//! things need a dump (one walk, shared by every connection of the tick): joins still in
//! SYN_SENT whose port nobody reported ([`Watch::discover`]; a SYN_SENT-only dump, which the
//! active-standby policy's probes need to be destroyed when abandoned), and a subflow its
//! lookups keep missing although the connection still lists it (e.g. bound to an interface
//! the connection does not know, after an adoption): a full dump at most once per
//! [`FULL_DISCOVERY_EVERY`] learns its interface, or that it is gone.
//!
//! **Scheduling, and what happens when it cannot keep up.** Each connection is due one period
//! after it was last due; a tick takes the due connections oldest first, at most
//! [`SLICE_SUBFLOWS`] subflows (a few ms of kernel time), so a large set is sampled in bounded
//! slices. A connection's next due time is one period after the last, or now if that has
//! passed: a connection is never owed more than one sampling, so nothing piles up. The driver
//! spaces ticks so that the sampling never takes more than half of its thread's time. When the
//! work exceeds that, every connection's achieved period stretches alike (oldest first); each
//! tick reports the achieved periods ([`TickReport`]) for the metrics and the log.
//!
//! **Idle connections.** A connection sampled at `poll.interval_ms` ([`Pace::skip_idle`]) whose
//! MPTCP counters show nothing sent, received or outstanding since its last sampling cannot
//! show anything new in its subflows: it is delivered again without being looked up (its
//! policy still runs on time, with the samples it has).
//!
//! **Delivery.** A tick's samples leave as one shared list with each connection's share
//! ([`TickOut`], [`SampleSet`]); the driver hands it to the event loop as one message and holds
//! the next tick back while too many are unconsumed (the list is shared until every share is
//! dropped), so however slow the consumers, a bounded number of ticks is in flight and
//! nothing piles up.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mptcp_pmd_policies::{SubflowKey, SubflowSample, Token};

use crate::sock_diag::{tcpf, Answer, LookupKey, SubflowDiag};

/// Subflows looked up in one tick at most: ~5 ms of kernel time at ~2.3 µs each (Linux 6.18,
/// bench scale section), the bound a sampling round of port windows had.
pub const SLICE_SUBFLOWS: usize = 2048;

/// A full discovery dump (every connected subflow of the namespace: one walk of the kernel's
/// table and `tcp_info` for each) runs at most this often.
pub const FULL_DISCOVERY_EVERY: Duration = Duration::from_secs(1);

/// Consecutive lookups that miss a subflow before a full discovery looks for it (one miss is
/// usually a subflow that just closed, whose connection has not updated its watch yet).
const MISSES_BEFORE_DISCOVERY: u8 = 2;

/// Hashes a token (a 32-bit value the kernel draws at random) with one multiplication
/// (Fibonacci hashing) instead of SipHash: the table is looked up once per subflow per tick,
/// and tokens are not chosen by an attacker who could aim at one bucket.
#[derive(Debug, Default)]
struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v);
    }

    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// One subflow to sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatchedSubflow {
    /// Its 4-tuple.
    pub key: SubflowKey,
    /// The interface it is bound to, if known (0: none or unknown).
    pub if_index: u32,
}

/// How often a connection is sampled, and whether it is skipped while idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pace {
    /// The period.
    pub period: Duration,
    /// Skip a sampling when the connection moved no data since the last one and has nothing
    /// outstanding (see [`Activity`]): its subflows cannot show anything new.
    pub skip_idle: bool,
}

/// What a connection asks to be sampled: its pace, its subflows, and whether it waits for
/// joins whose port it does not know (found among the SYN_SENT sockets).
#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    /// How often, and whether idle samplings are skipped.
    pub pace: Pace,
    /// The subflows to look up.
    pub subflows: Vec<WatchedSubflow>,
    /// Look for its joins in SYN_SENT too.
    pub discover: bool,
}

/// A connection's data counters as the periodic connections poll reads them (`mptcp_info`:
/// bytes sent, received and acknowledged at the MPTCP level, Linux 6.5+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// The counters, folded.
    pub moved: u64,
    /// Data sent and not acknowledged yet.
    pub outstanding: bool,
}

impl Activity {
    /// From the three counters (`None` if the kernel does not report them: never idle).
    pub fn of(sent: Option<u64>, received: Option<u64>, acked: Option<u64>) -> Option<Self> {
        let (sent, received, acked) = (sent?, received?, acked?);
        let moved = sent.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(21)
            ^ received.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ acked.rotate_left(42);
        Some(Activity {
            moved,
            outstanding: sent > acked,
        })
    }
}

/// One subflow's sample of a tick, with its connection.
pub type Sampled = (Token, SubflowKey, SubflowSample);

/// A subflow's sample.
pub type Sample = (SubflowKey, SubflowSample);

/// One tick's samples: all of them, and each connection's share (an idle connection
/// delivered again has an empty one).
#[derive(Debug, Default)]
pub struct TickOut {
    /// Every sample of the tick, each connection's contiguous.
    pub samples: Vec<Sample>,
    /// Each connection of the tick and its range in `samples`.
    pub conns: Vec<(Token, Range<usize>)>,
}

/// One connection's samples: its share of a tick's list (shared, not copied), or a list of its
/// own.
#[derive(Debug, Clone)]
pub struct SampleSet {
    all: Arc<Vec<Sample>>,
    range: Range<usize>,
}

impl SampleSet {
    /// Samples of its own.
    pub fn owned(samples: Vec<Sample>) -> Self {
        let range = 0..samples.len();
        SampleSet {
            all: Arc::new(samples),
            range,
        }
    }

    /// `range` of a tick's list.
    pub fn shared(all: &Arc<Vec<Sample>>, range: Range<usize>) -> Self {
        SampleSet {
            all: all.clone(),
            range,
        }
    }

    /// The samples.
    pub fn as_slice(&self) -> &[Sample] {
        self.all.get(self.range.clone()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy)]
struct Key {
    key: SubflowKey,
    /// The interface the connection gave.
    if_index: u32,
    /// The interface a dump showed it bound to, if one was needed.
    seen_if: Option<u32>,
    /// Consecutive lookups that did not find it.
    misses: u8,
    /// A full dump did not show it either: not looked up until the connection's watch changes.
    gone: bool,
}

impl Key {
    fn lookup(&self) -> LookupKey {
        LookupKey {
            key: self.key,
            if_index: self.seen_if.unwrap_or(self.if_index),
        }
    }
}

#[derive(Debug)]
struct Watched {
    period: Duration,
    skip_idle: bool,
    /// The latest counters of the connections poll.
    activity: Option<Activity>,
    /// The counters when it was last sampled.
    sampled_at: Option<u64>,
    keys: Vec<Key>,
    discover: bool,
    due: Instant,
    last: Option<Instant>,
    /// Its place in the current tick.
    in_tick: Option<usize>,
}

/// One connection of the tick: its token and its keys' answers in `Sampler::answers`.
#[derive(Debug, Clone)]
struct Taken {
    token: Token,
    range: Range<usize>,
}

/// What one tick did, for the metrics and the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TickReport {
    /// Connections sampled.
    pub connections: usize,
    /// Subflows looked up.
    pub subflows: usize,
    /// For each period asked for among them: the longest time since a connection's previous
    /// sampling (only connections sampled before), i.e. the achieved period.
    pub achieved: Vec<(Duration, Duration)>,
    /// Connections due but skipped because they were idle.
    pub idle: usize,
}

/// The discovery dump a tick needs, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// SYN_SENT sockets only (joins whose port is unknown).
    SynSent,
    /// Every connected subflow (a subflow the lookups keep missing).
    Full,
}

impl Discovery {
    /// The `idiag_states` of the dump.
    pub fn states(self) -> u32 {
        match self {
            Discovery::SynSent => tcpf::SYN_SENT,
            Discovery::Full => tcpf::CONNECTED,
        }
    }
}

/// The watched connections and their schedule. See the module docs.
#[derive(Debug)]
pub struct Sampler {
    /// Boxed: a table sized for 10 000 connections has ~16 000 slots, and an empty slot of
    /// a pointer costs 8 bytes where one of a `Watched` cost ~140 (0.6 MB at 10 000).
    conns: HashMap<Token, Box<Watched>, BuildHasherDefault<TokenHasher>>,
    due: BTreeSet<(Instant, Token)>,
    slice: usize,
    tick: Vec<Taken>,
    /// For each lookup of the tick: its connection (index into `tick`) and key (index into
    /// that connection's keys; gone keys are not looked up).
    key_of: Vec<(usize, usize)>,
    answers: Vec<Option<(SubflowKey, SubflowSample)>>,
    extra: Vec<Sampled>,
    /// Idle connections the current tick delivers again without lookups.
    idle: Vec<Token>,
    last_full: Option<Instant>,
    subflows: usize,
}

impl Sampler {
    /// No connection watched; ticks of at most `slice` subflows.
    pub fn new(slice: usize) -> Self {
        Sampler {
            conns: HashMap::default(),
            due: BTreeSet::new(),
            slice: slice.max(1),
            tick: Vec::new(),
            key_of: Vec::new(),
            answers: Vec::new(),
            extra: Vec::new(),
            idle: Vec::new(),
            last_full: None,
            subflows: 0,
        }
    }

    /// Connections watched.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Subflows watched.
    pub fn subflows(&self) -> usize {
        self.subflows
    }

    /// When the next connection is due, if any is watched.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// The connections poll read `token`'s counters (`None`: not reported, so never idle).
    pub fn activity(&mut self, token: Token, activity: Option<Activity>) {
        if let Some(c) = self.conns.get_mut(&token) {
            c.activity = activity;
        }
    }

    /// Sample `token` as `watch` says from now on; `None` stops. A new connection is due at
    /// once; a changed one keeps its schedule (a shorter period takes effect from its next
    /// sampling) and what was learnt about subflows it still lists, and is sampled at its next
    /// due time even if idle.
    pub fn watch(&mut self, now: Instant, token: Token, watch: Option<Watch>) {
        let Some(w) = watch else {
            if let Some(old) = self.conns.remove(&token) {
                self.due.remove(&(old.due, token));
                self.subflows -= old.keys.len();
            }
            if self.conns.is_empty() {
                // Give back what a burst grew.
                self.conns.shrink_to_fit();
                self.tick = Vec::new();
                self.key_of = Vec::new();
                self.answers = Vec::new();
                self.extra = Vec::new();
                self.idle = Vec::new();
            }
            return;
        };
        let old = self.conns.remove(&token);
        let keys: Vec<Key> = w
            .subflows
            .iter()
            .map(|s| {
                let kept = old
                    .as_ref()
                    .and_then(|o| o.keys.iter().find(|k| k.key == s.key))
                    .filter(|k| k.if_index == s.if_index);
                kept.copied().unwrap_or(Key {
                    key: s.key,
                    if_index: s.if_index,
                    seen_if: None,
                    misses: 0,
                    gone: false,
                })
            })
            .collect();
        let period = w.pace.period;
        let (due, last, activity) = match &old {
            Some(o) => {
                self.due.remove(&(o.due, token));
                self.subflows -= o.keys.len();
                let sooner = o.last.map_or(now, |l| l + period);
                (o.due.min(sooner.max(now)), o.last, o.activity)
            }
            None => (now, None, None),
        };
        self.subflows += keys.len();
        self.due.insert((due, token));
        self.conns.insert(
            token,
            Box::new(Watched {
                period,
                skip_idle: w.pace.skip_idle,
                activity,
                sampled_at: None,
                keys,
                discover: w.discover,
                due,
                last,
                in_tick: None,
            }),
        );
    }

    /// Start a tick at `now`: the connections due, oldest first, up to the slice; their
    /// subflows to look up go into `keys` (cleared first). Due connections that are idle (and
    /// may be skipped) are rescheduled instead, counted in the tick's report. `false`: nothing
    /// was due.
    pub fn plan(&mut self, now: Instant, keys: &mut Vec<LookupKey>) -> bool {
        keys.clear();
        self.tick.clear();
        self.key_of.clear();
        self.answers.clear();
        self.extra.clear();
        self.idle.clear();
        while let Some(&(due, token)) = self.due.first() {
            if due > now {
                break;
            }
            let Some(c) = self.conns.get_mut(&token) else {
                self.due.pop_first();
                continue;
            };
            let idle = c.skip_idle
                && c.activity
                    .is_some_and(|a| !a.outstanding && c.sampled_at == Some(a.moved));
            if idle {
                self.due.pop_first();
                c.due = (c.due + c.period).max(now);
                self.due.insert((c.due, token));
                self.idle.push(token);
                continue;
            }
            let live = c.keys.iter().filter(|k| !k.gone).count();
            if !self.tick.is_empty() && keys.len() + live > self.slice {
                break;
            }
            self.due.pop_first();
            c.sampled_at = c.activity.map(|a| a.moved);
            let start = keys.len();
            let ti = self.tick.len();
            for (ki, k) in c.keys.iter().enumerate().filter(|(_, k)| !k.gone) {
                keys.push(k.lookup());
                self.key_of.push((ti, ki));
            }
            c.in_tick = Some(ti);
            self.tick.push(Taken {
                token,
                range: start..keys.len(),
            });
        }
        self.answers.resize(keys.len(), None);
        !self.tick.is_empty() || !self.idle.is_empty()
    }

    /// The kernel's answer to lookup `i` of the tick.
    pub fn answer(&mut self, i: usize, a: &Answer) {
        let Some(&(ti, ki)) = self.key_of.get(i) else {
            return;
        };
        let Some(t) = self.tick.get(ti) else { return };
        let Some(k) = self
            .conns
            .get_mut(&t.token)
            .and_then(|c| c.keys.get_mut(ki))
        else {
            return;
        };
        match a {
            Answer::Found(s) if s.token == t.token => {
                k.misses = 0;
                if let Some(slot) = self.answers.get_mut(i) {
                    *slot = Some((s.key, s.sample));
                }
            }
            // Another connection's socket on a reused 4-tuple is this one's missing subflow.
            Answer::Found(_) | Answer::Missing(_) => k.misses = k.misses.saturating_add(1),
            // Lost or undecodable: no news.
            Answer::Waiting | Answer::Undecodable => {}
        }
    }

    /// The discovery dump this tick needs after its lookups, if any.
    pub fn discovery(&self, now: Instant) -> Option<Discovery> {
        let conns = || self.tick.iter().filter_map(|t| self.conns.get(&t.token));
        let full_allowed = self
            .last_full
            .is_none_or(|at| now.saturating_duration_since(at) >= FULL_DISCOVERY_EVERY);
        if full_allowed
            && conns().any(|c| {
                c.keys
                    .iter()
                    .any(|k| !k.gone && k.misses >= MISSES_BEFORE_DISCOVERY)
            })
        {
            return Some(Discovery::Full);
        }
        conns().any(|c| c.discover).then_some(Discovery::SynSent)
    }

    /// The subflows a discovery dump of kind `d` listed (at `now`). Those of the tick's
    /// connections are added to their samples; a full dump also teaches the interface of a
    /// missed subflow, or that it is gone.
    pub fn discovered(&mut self, now: Instant, d: Discovery, subflows: &[SubflowDiag]) {
        for s in subflows {
            let Some(c) = self.conns.get_mut(&s.token) else {
                continue;
            };
            let Some(t) = c.in_tick.and_then(|i| self.tick.get(i)) else {
                continue;
            };
            let key_of = &self.key_of;
            let known = t.range.clone().find(|&i| {
                key_of
                    .get(i)
                    .and_then(|&(_, ki)| c.keys.get(ki))
                    .is_some_and(|k| k.key == s.key)
            });
            match known {
                Some(i) => {
                    let ki = key_of[i].1;
                    let k = &mut c.keys[ki];
                    k.misses = 0;
                    if s.if_index != k.lookup().if_index {
                        k.seen_if = Some(s.if_index);
                    }
                    if let Some(a) = self.answers.get_mut(i) {
                        a.get_or_insert((s.key, s.sample));
                    }
                }
                None => {
                    if c.discover || d == Discovery::Full {
                        self.extra.push((s.token, s.key, s.sample));
                    }
                }
            }
        }
        if d == Discovery::Full {
            self.last_full = Some(now);
            for t in &self.tick {
                if let Some(c) = self.conns.get_mut(&t.token) {
                    for k in c.keys.iter_mut() {
                        if k.misses >= MISSES_BEFORE_DISCOVERY {
                            k.gone = true;
                        }
                    }
                }
            }
        }
    }

    /// End the tick at `now`: each connection's samples into `out` (appended, in tick order;
    /// the idle ones delivered again with none) and its next sampling scheduled.
    pub fn finish(&mut self, now: Instant, out: &mut TickOut) -> TickReport {
        let mut report = TickReport {
            idle: self.idle.len(),
            ..TickReport::default()
        };
        for token in self.idle.drain(..) {
            let at = out.samples.len();
            out.conns.push((token, at..at));
        }
        for t in std::mem::take(&mut self.tick) {
            let Some(c) = self.conns.get_mut(&t.token) else {
                continue;
            };
            c.in_tick = None;
            report.connections += 1;
            report.subflows += t.range.len();
            let start = out.samples.len();
            out.samples.extend(
                self.answers
                    .get(t.range.clone())
                    .unwrap_or_default()
                    .iter()
                    .flatten(),
            );
            out.samples.extend(
                self.extra
                    .iter()
                    .filter(|(tok, _, _)| *tok == t.token)
                    .map(|(_, k, s)| (*k, *s)),
            );
            if out.samples.len() > start {
                out.conns.push((t.token, start..out.samples.len()));
            }
            if let Some(last) = c.last {
                let took = now.saturating_duration_since(last);
                match report.achieved.iter_mut().find(|(p, _)| *p == c.period) {
                    Some((_, worst)) => *worst = (*worst).max(took),
                    None => report.achieved.push((c.period, took)),
                }
            }
            c.last = Some(now);
            c.due = (c.due + c.period).max(now);
            self.due.insert((c.due, t.token));
        }
        self.answers.clear();
        self.extra.clear();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::actors::snapshot::tests::sub;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn watched(token: u32, ports: &[u16]) -> Vec<WatchedSubflow> {
        ports
            .iter()
            .map(|&p| WatchedSubflow {
                key: sub(token, p).key,
                if_index: 0,
            })
            .collect()
    }

    fn watch(period: u64, subflows: Vec<WatchedSubflow>, discover: bool) -> Option<Watch> {
        Some(Watch {
            pace: Pace {
                period: ms(period),
                skip_idle: false,
            },
            subflows,
            discover,
        })
    }

    /// The local ports of `token`'s samples in a tick's output.
    fn ports(out: &TickOut, token: u32) -> Vec<u16> {
        out.conns
            .iter()
            .filter(|(t, _)| *t == Token(token))
            .flat_map(|(_, r)| out.samples[r.clone()].iter().map(|(k, _)| k.local.port()))
            .collect()
    }

    /// Whether `token` is delivered in a tick's output (with samples or, idle, without).
    fn delivered(out: &TickOut, token: u32) -> bool {
        out.conns.iter().any(|(t, _)| *t == Token(token))
    }

    /// One tick at `now` answering every lookup with the subflow `found` says, or ENOENT.
    fn run(
        s: &mut Sampler,
        now: Instant,
        found: impl Fn(&LookupKey) -> Option<SubflowDiag>,
    ) -> (Vec<LookupKey>, TickOut, TickReport) {
        let mut keys = Vec::new();
        let mut out = TickOut::default();
        if !s.plan(now, &mut keys) {
            return (keys, out, TickReport::default());
        }
        for (i, k) in keys.iter().enumerate() {
            let a = found(k).map_or(Answer::Missing(libc::ENOENT), Answer::Found);
            s.answer(i, &a);
        }
        let r = s.finish(now, &mut out);
        (keys, out, r)
    }

    fn diag_of(token: u32, k: &LookupKey) -> SubflowDiag {
        let mut d = sub(token, k.key.local.port());
        d.key = k.key;
        d.sample.srtt_us = u32::from(k.key.local.port());
        d
    }

    #[test]
    fn each_connection_is_sampled_at_its_own_period_and_gets_its_own_samples() {
        let t0 = Instant::now();
        let mut s = Sampler::new(SLICE_SUBFLOWS);
        s.watch(t0, Token(1), watch(20, watched(1, &[1000, 1001]), false));
        s.watch(t0, Token(2), watch(1000, watched(2, &[2000]), false));
        assert_eq!((s.len(), s.subflows()), (2, 3));
        let token_of = |k: &LookupKey| if k.key.local.port() < 2000 { 1 } else { 2 };
        let (mut looked, mut fast, mut slow) = (0, 0, 0);
        for step in 0..=50u64 {
            let (keys, out, _) = run(&mut s, t0 + ms(step * 20), |k| {
                Some(diag_of(token_of(k), k))
            });
            looked += keys.len();
            if step == 0 {
                assert_eq!(ports(&out, 1), [1000, 1001]);
            }
            fast += usize::from(!ports(&out, 1).is_empty());
            slow += usize::from(!ports(&out, 2).is_empty());
            if let Some((_, r)) = out.conns.iter().find(|(t, _)| *t == Token(2)) {
                assert_eq!(out.samples[r.start].1.srtt_us, 2000);
            }
        }
        // 51 ticks of the fast connection (2 subflows), 2 of the slow one (at 0 and 1000 ms).
        assert_eq!((fast, slow), (51, 2));
        assert_eq!(looked, 51 * 2 + 2);
        assert_eq!(s.next_due(), Some(t0 + ms(1020)));
        // Stopped: never again.
        s.watch(t0, Token(1), None);
        s.watch(t0, Token(2), None);
        assert!(s.is_empty() && s.next_due().is_none() && s.subflows() == 0);
    }

    #[test]
    fn a_large_set_is_taken_in_slices_oldest_first_and_the_period_stretches() {
        let t0 = Instant::now();
        let mut s = Sampler::new(10);
        for t in 0..20u32 {
            let p = 1000 + 2 * t as u16;
            s.watch(t0, Token(t), watch(20, watched(t, &[p, p + 1]), false));
        }
        // 20 connections x 2 subflows, 10 subflows per tick: four ticks per round. Ticks every
        // 10 ms (as a driver that is behind would run them): each connection is sampled every
        // 40 ms, not 20, and never twice while others wait.
        let mut worst = Duration::ZERO;
        let mut times = [0usize; 20];
        for step in 0..12u64 {
            let (keys, out, r) = run(&mut s, t0 + ms(step * 10), |k| {
                Some(diag_of(u32::from((k.key.local.port() - 1000) / 2), k))
            });
            assert_eq!(keys.len(), 10, "step {step}");
            assert_eq!(r.connections, 5);
            for (t, r) in &out.conns {
                assert_eq!(r.len(), 2);
                times[t.0 as usize] += 1;
            }
            if let Some((p, a)) = r.achieved.first() {
                assert_eq!(*p, ms(20));
                worst = worst.max(*a);
            }
        }
        assert_eq!(worst, ms(40), "achieved period");
        assert_eq!(times, [3; 20], "each sampled 3 times in 12 ticks");
        // Each connection is owed one sampling at most: no burst to catch up.
        assert_eq!(s.due.len(), 20);
    }

    #[test]
    fn a_sample_set_is_its_share_of_the_ticks_list() {
        let k = sub(1, 1000).key;
        let smp = |v| {
            (
                k,
                SubflowSample {
                    srtt_us: v,
                    ..SubflowSample::default()
                },
            )
        };
        let all = Arc::new(vec![smp(1), smp(2), smp(3)]);
        let share = SampleSet::shared(&all, 1..3);
        let got: Vec<u32> = share.as_slice().iter().map(|s| s.1.srtt_us).collect();
        assert_eq!(got, [2, 3]);
        assert_eq!(Arc::strong_count(&all), 2, "shared, not copied");
        drop(share);
        assert_eq!(Arc::strong_count(&all), 1);
        assert_eq!(SampleSet::owned(vec![smp(7)]).as_slice()[0].1.srtt_us, 7);
        assert!(SampleSet::shared(&all, 5..9).as_slice().is_empty());
    }

    #[test]
    fn syn_sent_joins_are_discovered_for_connections_that_wait_for_them() {
        let t0 = Instant::now();
        let mut s = Sampler::new(SLICE_SUBFLOWS);
        s.watch(t0, Token(1), watch(20, watched(1, &[1000]), true));
        s.watch(t0, Token(2), watch(20, watched(2, &[2000]), false));
        let mut keys = Vec::new();
        assert!(s.plan(t0, &mut keys));
        for (i, k) in keys.iter().enumerate() {
            let t = if k.key.local.port() == 1000 { 1 } else { 2 };
            s.answer(i, &Answer::Found(diag_of(t, k)));
        }
        assert_eq!(s.discovery(t0), Some(Discovery::SynSent));
        let mut probe = sub(1, 1500);
        probe.sample.tcp_state = mptcp_pmd_policies::model::TCP_SYN_SENT;
        let strangers = sub(2, 2500);
        let unwatched = sub(9, 9000);
        s.discovered(t0, Discovery::SynSent, &[probe, strangers, unwatched]);
        let mut out = TickOut::default();
        s.finish(t0, &mut out);
        assert_eq!(
            ports(&out, 1),
            [1000, 1500],
            "its subflow and its SYN_SENT join"
        );
        assert_eq!(
            ports(&out, 2),
            [2000],
            "a connection that waits for no join gets none"
        );
        assert!(ports(&out, 9).is_empty());
        // Nobody waits: no dump.
        s.watch(t0, Token(1), watch(20, watched(1, &[1000, 1500]), false));
        assert!(s.plan(t0 + ms(20), &mut keys));
        assert_eq!(s.discovery(t0 + ms(20)), None);
    }

    #[test]
    fn a_subflow_the_lookups_keep_missing_is_looked_for_by_a_full_dump_then_given_up() {
        let t0 = Instant::now();
        let mut s = Sampler::new(SLICE_SUBFLOWS);
        s.watch(
            t0,
            Token(1),
            watch(20, watched(1, &[1000, 1001, 1002]), false),
        );
        // Port 1001 is bound to interface 5 (the connection did not know), 1002 is gone.
        let kernel = |k: &LookupKey| match (k.key.local.port(), k.if_index) {
            (1000, _) | (1001, 5) => Some(diag_of(1, k)),
            _ => None,
        };
        let tick = |s: &mut Sampler, at: Instant| {
            let mut keys = Vec::new();
            assert!(s.plan(at, &mut keys));
            for (i, k) in keys.iter().enumerate() {
                s.answer(
                    i,
                    &kernel(k).map_or(Answer::Missing(libc::ENOENT), Answer::Found),
                );
            }
            let d = s.discovery(at);
            if d == Some(Discovery::Full) {
                let mut bound = diag_of(
                    1,
                    &LookupKey {
                        key: sub(1, 1001).key,
                        if_index: 5,
                    },
                );
                bound.if_index = 5;
                s.discovered(at, Discovery::Full, &[diag_of(1, &keys[0]), bound]);
            }
            let mut out = TickOut::default();
            s.finish(at, &mut out);
            (keys, d, ports(&out, 1))
        };
        // First miss: no dump yet (a subflow that just closed is usually dropped by then).
        let (_, d, got) = tick(&mut s, t0);
        assert_eq!((d, got), (None, vec![1000]));
        // Second miss: one full dump; it learns 1001's interface and that 1002 is gone.
        let (_, d, got) = tick(&mut s, t0 + ms(20));
        assert_eq!((d, got), (Some(Discovery::Full), vec![1000, 1001]));
        let (keys, d, got) = tick(&mut s, t0 + ms(40));
        assert_eq!((d, got), (None, vec![1000, 1001]));
        let asked: Vec<(u16, u32)> = keys
            .iter()
            .map(|k| (k.key.local.port(), k.if_index))
            .collect();
        assert_eq!(asked, [(1000, 0), (1001, 5)], "1002 no longer looked up");
        // The connection lists it again (e.g. with its interface now): looked up again, and
        // what was learnt about the others is kept.
        let mut w = watched(1, &[1000, 1001, 1002]);
        w[2].if_index = 7;
        s.watch(t0 + ms(50), Token(1), watch(20, w, false));
        let mut keys = Vec::new();
        assert!(s.plan(t0 + ms(60), &mut keys));
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[1].if_index, 5);
    }

    #[test]
    fn another_connections_socket_on_a_reused_tuple_is_not_a_sample() {
        let t0 = Instant::now();
        let mut s = Sampler::new(SLICE_SUBFLOWS);
        s.watch(t0, Token(1), watch(20, watched(1, &[1000]), false));
        let (_, out, _) = run(&mut s, t0, |k| Some(diag_of(2, k)));
        assert!(out.samples.is_empty() && !delivered(&out, 1));
    }

    #[test]
    fn an_idle_connection_is_skipped_only_if_it_may_be_and_nothing_moved_or_waits() {
        let t0 = Instant::now();
        let mut s = Sampler::new(SLICE_SUBFLOWS);
        let pace = |skip_idle| Pace {
            period: ms(1000),
            skip_idle,
        };
        for (t, skip) in [(1u32, true), (2, false)] {
            let w = Watch {
                pace: pace(skip),
                subflows: watched(t, &[1000 + t as u16]),
                discover: false,
            };
            s.watch(t0, Token(t), Some(w));
        }
        let quiet = Activity::of(Some(100), Some(50), Some(100));
        for t in [1, 2] {
            s.activity(Token(t), quiet);
        }
        let all = |k: &LookupKey| Some(diag_of(u32::from(k.key.local.port() - 1000), k));
        // First sampling: both (nothing sampled yet).
        let (_, out, r) = run(&mut s, t0, all);
        assert_eq!(
            (ports(&out, 1).len(), ports(&out, 2).len(), r.idle),
            (1, 1, 0)
        );
        // A period later, nothing moved: only the one that may not skip is looked up; the
        // other is delivered again, with no new samples.
        let (keys, out, r) = run(&mut s, t0 + ms(1000), all);
        assert_eq!(
            (ports(&out, 1).len(), ports(&out, 2).len(), r.idle),
            (0, 1, 1)
        );
        assert_eq!(keys.len(), 1);
        assert!(delivered(&out, 1));
        // Data moved: sampled again.
        s.activity(Token(1), Activity::of(Some(200), Some(50), Some(200)));
        let (_, out, _) = run(&mut s, t0 + ms(2000), all);
        assert_eq!(ports(&out, 1).len(), 1);
        // Nothing moved since, but data is outstanding: sampled every period.
        s.activity(Token(1), Activity::of(Some(300), Some(50), Some(200)));
        for k in 3..6u64 {
            let (_, out, _) = run(&mut s, t0 + ms(k * 1000), all);
            assert_eq!(ports(&out, 1).len(), 1, "period {k}");
        }
        // Counters the kernel does not report: never idle.
        s.activity(Token(1), Activity::of(None, Some(50), Some(200)));
        let (_, out, _) = run(&mut s, t0 + ms(6000), all);
        assert_eq!(ports(&out, 1).len(), 1);
        // A new watch (e.g. a subflow joined) is sampled at its next due time even if idle.
        s.activity(Token(1), quiet);
        let (_, out, _) = run(&mut s, t0 + ms(7000), all);
        assert_eq!(ports(&out, 1).len(), 1, "the first look at these counters");
        let (_, out, _) = run(&mut s, t0 + ms(8000), all);
        assert!(ports(&out, 1).is_empty());
        let w = Watch {
            pace: pace(true),
            subflows: watched(1, &[1001, 1500]),
            discover: false,
        };
        s.watch(t0 + ms(8500), Token(1), Some(w));
        let (_, out, _) = run(&mut s, t0 + ms(9000), all);
        assert_eq!(
            ports(&out, 1).len(),
            1,
            "1500 is another connection's port here"
        );
    }
}
