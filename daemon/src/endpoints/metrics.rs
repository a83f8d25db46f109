//! In-process metrics: events by type, commands by type and errno, kernel refusals, overruns,
//! resyncs, the sock_diag poll duration, and the gauges (connections tracked, subflows by state,
//! announced addresses by state, policy objects). Cheap to clone and update from any actor or
//! thread; rendered as Prometheus/OpenMetrics text by [`Metrics::encode`] for the
//! `metrics.listen` endpoint (see `super::http`), and summarised in the stop log line.
//! The kernel actors of `netlink-actor` count into it through its [`Stats`] implementation.
//!
//! The gauges are kept current as state changes, so a scrape reads memory only: each connection
//! actor publishes its connection's [`Census`] after every input it applied, as the difference
//! from the census it published before ([`Metrics::shift`]), and withdraws it when it stops. A
//! gauge is therefore always the sum of the censuses of the live connection actors: there is
//! no second count that could drift from the first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mptcp_pmd_policies::conn::{AnnounceState, Connection, SubflowState};
use netlink_actor::actors::sampler::TickReport;
use netlink_actor::actors::{EventTrace, Stats};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

type Labels = Vec<(&'static str, String)>;

/// Converts `Instant`s to CLOCK_MONOTONIC nanoseconds (what `Instant` reads on Linux, the
/// same clock in every process), through one reading of both clocks: differences between the
/// converted instants are exact.
struct MonotonicNs {
    now: Instant,
    now_ns: i64,
}

impl MonotonicNs {
    // time_t and c_long are 32 bits on armv7, where the conversions are not useless.
    #[allow(clippy::useless_conversion)]
    fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec, which lives for the call.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        MonotonicNs {
            now: Instant::now(),
            now_ns: i64::from(ts.tv_sec)
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(ts.tv_nsec)),
        }
    }

    fn of(&self, at: Instant) -> i64 {
        let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        if at <= self.now {
            self.now_ns.saturating_sub(ns(self.now - at))
        } else {
            self.now_ns.saturating_add(ns(at - self.now))
        }
    }
}

/// `count` bucket bounds from `start`, each `factor` x the previous. The powers are multiplied
/// out rather than taken with `powf` (as `prometheus_client`'s `exponential_buckets` does): a
/// `pow` call made the binary load libm, 0.5 MB more resident at idle for 75 numbers.
fn exponential_buckets(start: f64, factor: f64, count: usize) -> impl Iterator<Item = f64> {
    std::iter::successors(Some(1.0_f64), move |p| Some(p * factor))
        .map(move |p| start * p)
        .take(count)
}

/// Buckets from 5 µs, each 1.25 x the previous, up to ~2.6 s: a quantile read off them is
/// within 25 %.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_005, 1.25, 60))
}

/// The stages of `mptcp_pmd_last_event_trace_monotonic_ns`, in order.
const TRACE_STAGES: [&str; 6] = [
    "event_read",
    "decided",
    "first_sent",
    "first_answered",
    "last_sent",
    "last_answered",
];

/// The instants of a trace in [`TRACE_STAGES`] order.
fn stages(t: &EventTrace) -> [Instant; TRACE_STAGES.len()] {
    [
        t.event_read,
        t.decided,
        t.first_sent,
        t.first_answered,
        t.last_sent,
        t.last_answered,
    ]
}

/// Shared metrics.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Mutex<Counters>>,
    registry: Arc<Registry>,
    events: Family<Labels, Counter>,
    commands: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    overruns: Counter,
    resyncs: Counter,
    connections: Gauge,
    /// The [`SUBFLOW_STATES`] gauges of `subflows`, resolved once (updated on every state
    /// change: no label allocation there).
    subflows: Arc<[Gauge; SUBFLOW_STATES.len()]>,
    poll: Histogram,
    decisions: Family<Labels, Counter>,
    policy_objects: Gauge,
    event_to_decision: Histogram,
    event_to_command: Histogram,
    command_time: Family<Labels, Histogram>,
    /// The [`TRACE_STAGES`] gauges of `last_event_trace_monotonic_ns`, resolved once (set per command, on the path
    /// between two sends: no label allocation there).
    trace_stages: Arc<[Gauge; TRACE_STAGES.len()]>,
    trace_in_calls: Gauge,
    trace_commands: Gauge,
    /// The [`ANNOUNCE_STATES`] gauges of `announced_addresses`, resolved once.
    announced: Arc<[Gauge; ANNOUNCE_STATES.len()]>,
    metered: MeteredGauges,
    operator: Family<Labels, Counter>,
    sampling: SamplingMetrics,
}

/// The metered budgets' gauges (`metered.budgets`), set from the budgets' use at each scrape.
#[derive(Clone)]
struct MeteredGauges {
    used: Family<Labels, Gauge>,
    budget: Family<Labels, Gauge>,
    spent: Family<Labels, Gauge>,
}

impl MeteredGauges {
    fn register(registry: &mut Registry) -> MeteredGauges {
        MeteredGauges {
            used: registered(
                registry,
                "metered_bytes",
                "Bytes counted against a metered budget in its current period, by budget (its interface globs) and interface: IP bytes of the MPTCP subflows, both directions",
                Family::<Labels, Gauge>::default(),
            ),
            budget: registered(
                registry,
                "metered_budget_bytes",
                "Bytes a metered budget allows per period, by budget",
                Family::<Labels, Gauge>::default(),
            ),
            spent: registered(
                registry,
                "metered_spent",
                "1 while a metered budget is spent (its interfaces' subflows are backup or closed), by budget",
                Family::<Labels, Gauge>::default(),
            ),
        }
    }

    fn set(&self, budgets: &[crate::core::budget::BudgetUse]) {
        // Only the budgets and interfaces of now: a reload removes budgets, a rollover
        // empties a period (scrapes run on the same loop, after this).
        self.used.clear();
        self.budget.clear();
        self.spent.clear();
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for b in budgets {
            let by = vec![("budget", b.name.clone())];
            self.budget.get_or_create(&by).set(gauge(b.budget));
            self.spent.get_or_create(&by).set(i64::from(b.spent));
            for (interface, n) in &b.interfaces {
                let l = vec![("budget", b.name.clone()), ("interface", interface.clone())];
                self.used.get_or_create(&l).set(gauge(*n));
            }
        }
    }
}

/// Subflow sampling by the sock_diag poller's sampler (`netlink_actor::actors::sampler`): the
/// set being sampled, the period each tick achieved against the one asked for, the time of
/// the ticks, and ticks held back because the event loop had not consumed the previous ones.
#[derive(Clone)]
struct SamplingMetrics {
    connections: Gauge,
    subflows: Gauge,
    period: Family<Labels, Histogram>,
    tick: Histogram,
    held_back: Counter,
    idle: Counter,
}

/// Buckets from 5 ms, each 1.5 x the previous, up to ~11 s: sampling periods from the
/// active-standby policy's tens of ms to a slow `poll.interval_ms`.
fn period_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 1.5, 20))
}

impl SamplingMetrics {
    fn register(registry: &mut Registry) -> Self {
        SamplingMetrics {
            connections: registered(
                registry,
                "sampled_connections",
                "Connections whose subflows are sampled (their policy reads samples)",
                Gauge::default(),
            ),
            subflows: registered(
                registry,
                "sampled_subflows",
                "Subflows sampled (looked up by 4-tuple each period)",
                Gauge::default(),
            ),
            period: registered(
                registry,
                "sample_period_seconds",
                "Achieved sampling period: per sampling tick and period asked for (label wanted, seconds), the longest time since one of its connections was sampled before; above wanted when sampling cannot keep up",
                Family::<Labels, Histogram>::new_with_constructor(
                    period_histogram as fn() -> Histogram,
                ),
            ),
            tick: registered(
                registry,
                "sample_tick_seconds",
                "One sampling tick: the lookups of up to 2048 subflows and the discovery dump it needed",
                latency_histogram(),
            ),
            idle: registered(
                registry,
                "samples_skipped_idle",
                "Samplings skipped because the connection was idle (policies sampled at poll.interval_ms: nothing sent, received or outstanding since its last sampling, by its MPTCP counters)",
                Counter::default(),
            ),
            held_back: registered(
                registry,
                "sample_ticks_held_back",
                "Sampling ticks postponed because the event loop had not consumed the samples of the previous ones yet (it is behind; periods stretch)",
                Counter::default(),
            ),
        }
    }

    fn tick(&self, r: &TickReport, took: Duration) {
        self.tick.observe(took.as_secs_f64());
        for (wanted, achieved) in &r.achieved {
            self.period
                .get_or_create(&vec![("wanted", wanted.as_secs_f64().to_string())])
                .observe(achieved.as_secs_f64());
        }
        self.idle.inc_by(r.idle as u64);
    }

    fn set(&self, connections: usize, subflows: usize) {
        self.connections
            .set(i64::try_from(connections).unwrap_or(i64::MAX));
        self.subflows
            .set(i64::try_from(subflows).unwrap_or(i64::MAX));
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// A copy of the counters (for the stop log line and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events received, by type name.
    pub events: BTreeMap<String, u64>,
    /// Commands, by (type name, errno; 0 = success).
    pub commands: BTreeMap<(String, i32), u64>,
    /// Event socket overruns.
    pub overruns: u64,
    /// Resyncs from sock_diag.
    pub resyncs: u64,
}

/// The subflow states reported by the `subflows` gauge (every state always present), in the
/// order of [`subflow_slot`].
pub const SUBFLOW_STATES: [&str; 5] = ["pending", "requested", "established", "closed", "failed"];

/// The announcement states reported by the `announced_addresses` gauge (every state always
/// present), in the order of [`announce_slot`].
pub const ANNOUNCE_STATES: [&str; 5] = ["sent", "unjoined", "joined", "withdrawn", "refused"];

/// The index of a subflow's state in [`SUBFLOW_STATES`].
fn subflow_slot(s: &SubflowState) -> usize {
    match s {
        SubflowState::Pending { .. } => 0,
        SubflowState::Requested { .. } => 1,
        SubflowState::Established { .. } => 2,
        SubflowState::Closed { .. } => 3,
        SubflowState::Failed { .. } => 4,
    }
}

/// The index of an announcement's state in [`ANNOUNCE_STATES`].
fn announce_slot(s: &AnnounceState) -> usize {
    match s {
        AnnounceState::Sent { .. } => 0,
        AnnounceState::Unjoined { .. } => 1,
        AnnounceState::Joined { .. } => 2,
        AnnounceState::Withdrawn { .. } => 3,
        AnnounceState::Refused { .. } => 4,
    }
}

/// What one connection adds to the gauges: itself, its subflows by state (the dead ones its
/// state machine still keeps included, as `status` lists them) and its announcements by state.
/// 22 bytes, kept by every connection actor. A count saturates at 65,535, far above what a
/// connection holds (the kernel caps subflows at 8 and address ids at 255; the state machine
/// keeps at most `keep_closed` dead entries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    connections: u16,
    subflows: [u16; SUBFLOW_STATES.len()],
    announced: [u16; ANNOUNCE_STATES.len()],
}

impl Census {
    /// The census of a live connection.
    pub fn of(conn: &Connection) -> Census {
        let mut c = Census {
            connections: 1,
            ..Census::default()
        };
        for s in conn.subflows() {
            if let Some(n) = c.subflows.get_mut(subflow_slot(&s.state)) {
                *n = n.saturating_add(1);
            }
        }
        for a in conn.announcements() {
            if let Some(n) = c.announced.get_mut(announce_slot(&a.state)) {
                *n = n.saturating_add(1);
            }
        }
        c
    }
}

/// Move a gauge by `to - from`.
fn shift_gauge(gauge: &Gauge, from: u16, to: u16) {
    if from != to {
        gauge.inc_by(i64::from(to) - i64::from(from));
    }
}

/// A counter kept elsewhere (the log writer's dropped lines), read when rendered.
#[derive(Debug)]
struct ReadCounter(fn() -> u64);

impl prometheus_client::encoding::EncodeMetric for ReadCounter {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    ) -> std::fmt::Result {
        encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&(self.0)(), None)
    }

    fn metric_type(&self) -> prometheus_client::metrics::MetricType {
        prometheus_client::metrics::MetricType::Counter
    }
}

/// Register `metric` under `name` and hand it back (the registry keeps a clone sharing it).
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mptcp_pmd");
        let events = registered(
            &mut registry,
            "events",
            "mptcp_pm events received, by type",
            Family::<Labels, Counter>::default(),
        );
        let commands = registered(
            &mut registry,
            "commands",
            "PM commands executed, by command and result (ok or the errno name/number)",
            Family::<Labels, Counter>::default(),
        );
        let refusals = registered(
            &mut registry,
            "kernel_refusals",
            "PM commands the kernel refused, by command and errno",
            Family::<Labels, Counter>::default(),
        );
        let overruns = registered(
            &mut registry,
            "event_overruns",
            "Overruns (ENOBUFS) of the mptcp_pm events socket",
            Counter::default(),
        );
        let resyncs = registered(
            &mut registry,
            "resyncs",
            "Full resyncs of the connection table from sock_diag",
            Counter::default(),
        );
        let connections = registered(
            &mut registry,
            "connections",
            "MPTCP connections tracked",
            Gauge::default(),
        );
        let subflows = registered(
            &mut registry,
            "subflows",
            "Subflows of the tracked connections, by state",
            Family::<Labels, Gauge>::default(),
        );
        let subflows = Arc::new(SUBFLOW_STATES.map(|state| {
            subflows
                .get_or_create(&vec![("state", state.to_string())])
                .clone()
        }));
        // 50 µs .. ~0.8 s.
        let poll = registered(
            &mut registry,
            "sock_diag_poll_seconds",
            "Duration of one sock_diag request burst: a poll of the connections, a sampling tick (lookups and the discovery dump it needed), or a whole snapshot",
            Histogram::new(exponential_buckets(0.000_05, 2.0, 15)),
        );
        let decisions = registered(
            &mut registry,
            "decisions",
            "Policy decisions, by policy, action and reason code",
            Family::<Labels, Counter>::default(),
        );
        let policy_objects = registered(
            &mut registry,
            "policy_objects",
            "Per-connection policy objects alive (one per tracked connection with a policy)",
            Gauge::default(),
        );
        // The path from a kernel event to the commands it causes (BENCHMARKS.md, "History",
        // "Where a join's time goes"), fine-grained enough to read a median off the buckets.
        let event_to_decision = registered(
            &mut registry,
            "event_to_decision_seconds",
            "From reading a kernel event to the policy's decisions (that asked for something) being applied to its connection",
            latency_histogram(),
        );
        let event_to_command = registered(
            &mut registry,
            "event_to_command_seconds",
            "From reading a kernel event to the send of each command its decisions caused",
            latency_histogram(),
        );
        let trace = registered(
            &mut registry,
            "last_event_trace_monotonic_ns",
            "The last kernel event that caused commands: when it was read, its decision applied, its first and last command sent and answered (CLOCK_MONOTONIC ns, comparable with other processes' timestamps; for per-connection breakdowns such as the bench's)",
            Family::<Labels, Gauge>::default(),
        );
        let trace_stages = Arc::new(TRACE_STAGES.map(|stage| {
            trace
                .get_or_create(&vec![("stage", stage.to_string())])
                .clone()
        }));
        let trace_in_calls = registered(
            &mut registry,
            "last_event_trace_in_calls_ns",
            "The last kernel event that caused commands: the time inside its commands' send and answer system calls, summed (ns; the rest of first_sent .. last_answered is the daemon's own work between them)",
            Gauge::default(),
        );
        let trace_commands = registered(
            &mut registry,
            "last_event_trace_commands",
            "The last kernel event that caused commands: how many",
            Gauge::default(),
        );
        let command_time = registered(
            &mut registry,
            "command_seconds",
            "One PM command: its send until the kernel's answer is read (the kernel does the work inside the send)",
            Family::<Labels, Histogram>::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            ),
        );
        // Accepted ANNOUNCE / REMOVE commands are `commands{command="announce"|"remove",
        // result="ok"}`; what this adds is whether the peers joined them, the only sign of a
        // peer's add_addr_accepted limit (the kernel reports none).
        let announced = registered(
            &mut registry,
            "announced_addresses",
            "Local addresses announced to the peers of the tracked connections, by state (sent: waiting for a join; unjoined: none within the pacing window; joined; withdrawn; refused)",
            Family::<Labels, Gauge>::default(),
        );
        let announced = Arc::new(ANNOUNCE_STATES.map(|state| {
            announced
                .get_or_create(&vec![("state", state.to_string())])
                .clone()
        }));
        let sampling = SamplingMetrics::register(&mut registry);
        registry.register(
            "log_lines_dropped",
            "Log lines dropped: the log writer's queue was full (stderr not read fast enough) or the write failed",
            ReadCounter(crate::logging::dropped_lines),
        );
        let operator = registered(
            &mut registry,
            "operator_commands",
            "Operator commands on the control socket (subflow_create, hold, ...), by command and result (ok or the protocol's error code)",
            Family::<Labels, Counter>::default(),
        );
        let metered = MeteredGauges::register(&mut registry);
        Metrics {
            metered,
            operator,
            event_to_decision,
            event_to_command,
            command_time,
            trace_stages,
            trace_in_calls,
            trace_commands,
            decisions,
            policy_objects,
            announced,
            sampling,
            inner: Arc::default(),
            registry: Arc::new(registry),
            events,
            commands,
            refusals,
            overruns,
            resyncs,
            connections,
            subflows,
            poll,
        }
    }
}

fn errno_label(errno: i32) -> String {
    if errno == 0 {
        "ok".to_string()
    } else {
        errno.to_string()
    }
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Counters)) {
        // A poisoned lock only means another thread panicked mid-update; counters stay usable.
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g);
    }
    /// Count an event.
    pub fn event(&self, name: &str) {
        self.events
            .get_or_create(&vec![("event", name.to_string())])
            .inc();
        self.with(|c| *c.events.entry(name.to_string()).or_default() += 1);
    }
    /// Count a command result (errno 0 = success) and how long it took (send to answer).
    pub fn command_timed(&self, name: &str, errno: i32, took: Duration) {
        self.command_time
            .get_or_create(&vec![("command", name.to_string())])
            .observe(took.as_secs_f64());
        self.command(name, errno);
    }
    /// Record the time from reading a kernel event to its decisions (that asked for something).
    pub fn event_to_decision(&self, d: Duration) {
        self.event_to_decision.observe(d.as_secs_f64());
    }
    /// Record the time from reading a kernel event to the send of a command it caused.
    pub fn event_to_command(&self, d: Duration) {
        self.event_to_command.observe(d.as_secs_f64());
    }
    /// Publish the trace of the last event that caused commands.
    pub fn last_event_trace(&self, t: &EventTrace) {
        let clock = MonotonicNs::now();
        for (gauge, at) in self.trace_stages.iter().zip(stages(t)) {
            gauge.set(clock.of(at));
        }
        self.trace_in_calls
            .set(i64::try_from(t.in_calls.as_nanos()).unwrap_or(i64::MAX));
        self.trace_commands.set(i64::from(t.commands));
    }
    /// Count a command result (errno 0 = success; negative errnos are not used).
    pub fn command(&self, name: &str, errno: i32) {
        self.commands
            .get_or_create(&vec![
                ("command", name.to_string()),
                ("result", errno_label(errno)),
            ])
            .inc();
        self.with(|c| *c.commands.entry((name.to_string(), errno)).or_default() += 1);
    }
    /// Count a command the kernel itself refused (as opposed to a local I/O failure).
    pub fn refusal(&self, name: &str, errno: i32) {
        self.refusals
            .get_or_create(&vec![
                ("command", name.to_string()),
                ("errno", errno.to_string()),
            ])
            .inc();
    }
    /// Count an overrun.
    pub fn overrun(&self) {
        self.overruns.inc();
        self.with(|c| c.overruns += 1);
    }
    /// Count a resync.
    pub fn resync(&self) {
        self.resyncs.inc();
        self.with(|c| c.resyncs += 1);
    }
    /// Count an operator's command and its result (`ok` or the protocol's error code).
    pub fn operator_command(&self, command: &str, result: &str) {
        self.operator
            .get_or_create(&vec![
                ("command", command.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }
    /// Count a policy decision.
    pub fn decision(&self, policy: &str, action: &str, reason: &str) {
        self.decisions
            .get_or_create(&vec![
                ("policy", policy.to_string()),
                ("action", action.to_string()),
                ("reason", reason.to_string()),
            ])
            .inc();
    }
    /// Set the metered budgets' gauges.
    pub fn set_metered(&self, budgets: &[crate::core::budget::BudgetUse]) {
        self.metered.set(budgets);
    }
    /// Set the number of live per-connection policy objects.
    pub fn set_policy_objects(&self, n: usize) {
        self.policy_objects
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    /// Record how long one sock_diag snapshot took.
    pub fn poll_duration(&self, d: Duration) {
        self.poll.observe(d.as_secs_f64());
    }
    /// Move one connection's share of the gauges from the census it published before (`from`;
    /// the default census for a new connection) to its census now (`to`; the default census
    /// when it goes).
    pub fn shift(&self, from: &Census, to: &Census) {
        if from == to {
            return;
        }
        shift_gauge(&self.connections, from.connections, to.connections);
        for (g, (f, t)) in self
            .subflows
            .iter()
            .zip(from.subflows.iter().zip(&to.subflows))
        {
            shift_gauge(g, *f, *t);
        }
        for (g, (f, t)) in self
            .announced
            .iter()
            .zip(from.announced.iter().zip(&to.announced))
        {
            shift_gauge(g, *f, *t);
        }
    }
    /// A copy of the counters.
    pub fn snapshot(&self) -> Counters {
        let mut out = Counters::default();
        self.with(|c| out = c.clone());
        out
    }
    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut buf = String::new();
        prometheus_client::encoding::text::encode(&mut buf, &self.registry)?;
        Ok(buf)
    }
}

/// What the kernel actors report (`netlink_actor::actors`), into the same families as before
/// they moved there.
impl Stats for Metrics {
    fn event(&self, name: &str) {
        Metrics::event(self, name);
    }
    fn overrun(&self) {
        Metrics::overrun(self);
    }
    fn poll_duration(&self, took: Duration) {
        Metrics::poll_duration(self, took);
    }
    fn event_to_command(&self, since_event: Duration) {
        Metrics::event_to_command(self, since_event);
    }
    fn command(&self, name: &str, errno: i32, took: Duration) {
        self.command_timed(name, errno, took);
    }
    fn refusal(&self, name: &str, errno: i32) {
        Metrics::refusal(self, name, errno);
    }
    fn last_event_trace(&self, trace: &EventTrace) {
        Metrics::last_event_trace(self, trace);
    }
    fn sample_tick(&self, report: &TickReport, took: Duration) {
        self.sampling.tick(report, took);
    }
    fn sampled(&self, connections: usize, subflows: usize) {
        self.sampling.set(connections, subflows);
    }
    fn sample_held_back(&self) {
        self.sampling.held_back.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_those_of_the_library_without_pow() {
        for (start, factor, count) in [(0.000_005, 1.25, 60), (0.000_05, 2.0, 15)] {
            let ours: Vec<f64> = exponential_buckets(start, factor, count).collect();
            let lib: Vec<f64> = prometheus_client::metrics::histogram::exponential_buckets(
                start,
                factor,
                u16::try_from(count).unwrap_or(u16::MAX),
            )
            .collect();
            assert_eq!(ours.len(), lib.len());
            for (a, b) in ours.iter().zip(&lib) {
                assert!((a - b).abs() <= b * 1e-12, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn text_has_every_family_and_counts() {
        let m = Metrics::default();
        m.event("created");
        m.event("created");
        m.command("subflow_create", 0);
        m.command("subflow_create", 110);
        m.refusal("subflow_create", 110);
        m.overrun();
        m.poll_duration(Duration::from_millis(2));
        let three_established = Census {
            connections: 1,
            subflows: [0, 0, 3, 0, 0],
            announced: [0, 0, 2, 0, 0],
        };
        m.shift(&Census::default(), &three_established);
        m.shift(
            &Census::default(),
            &Census {
                connections: 1,
                ..Census::default()
            },
        );
        m.decision("mesh-x", "open", "mesh");
        m.set_policy_objects(2);
        m.command_timed("subflow_destroy", 0, Duration::from_micros(100));
        m.event_to_decision(Duration::from_micros(20));
        m.event_to_command(Duration::from_micros(30));
        m.event_to_command(Duration::from_secs(9));
        let read = Instant::now();
        let us = |n| read + Duration::from_micros(n);
        m.last_event_trace(&EventTrace {
            event_read: read,
            decided: us(10),
            first_sent: us(20),
            first_answered: us(30),
            last_sent: us(50),
            last_answered: us(70),
            in_calls: Duration::from_micros(30),
            commands: 2,
        });
        let t = m.encode().unwrap();
        for line in [
            "mptcp_pmd_events_total{event=\"created\"} 2",
            "mptcp_pmd_commands_total{command=\"subflow_create\",result=\"ok\"} 1",
            "mptcp_pmd_commands_total{command=\"subflow_create\",result=\"110\"} 1",
            "mptcp_pmd_kernel_refusals_total{command=\"subflow_create\",errno=\"110\"} 1",
            "mptcp_pmd_event_overruns_total 1",
            "mptcp_pmd_resyncs_total 0",
            "mptcp_pmd_connections 2",
            "mptcp_pmd_subflows{state=\"established\"} 3",
            "mptcp_pmd_subflows{state=\"failed\"} 0",
            "mptcp_pmd_sock_diag_poll_seconds_count 1",
            "mptcp_pmd_decisions_total{policy=\"mesh-x\",action=\"open\",reason=\"mesh\"} 1",
            "mptcp_pmd_policy_objects 2",
            "mptcp_pmd_log_lines_dropped_total 0",
            "mptcp_pmd_commands_total{command=\"subflow_destroy\",result=\"ok\"} 1",
            "mptcp_pmd_command_seconds_count{command=\"subflow_destroy\"} 1",
            "mptcp_pmd_event_to_decision_seconds_count 1",
            "mptcp_pmd_event_to_command_seconds_count 2",
            // 20 µs is in the bucket up to 5 µs x 1.25^7 = 23.8 µs, not the one before.
            "mptcp_pmd_event_to_decision_seconds_bucket{le=\"0.000019073486328125\"} 0",
            // Beyond the last bound (2.6 s): only +Inf holds it.
            "mptcp_pmd_event_to_command_seconds_bucket{le=\"+Inf\"} 2",
            "mptcp_pmd_announced_addresses{state=\"joined\"} 2",
            "mptcp_pmd_announced_addresses{state=\"unjoined\"} 0",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
        }
        let bucket = |name: &str, bound: &str| {
            t.lines()
                .find(|l| l.starts_with(&format!("{name}_bucket{{le=\"{bound}")))
                .and_then(|l| l.rsplit_once(' '))
                .map(|(_, v)| v.to_string())
        };
        let trace = |stage: &str| -> i64 {
            let k = format!("mptcp_pmd_last_event_trace_monotonic_ns{{stage=\"{stage}\"}} ");
            t.lines()
                .find_map(|l| l.strip_prefix(&k))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no trace {stage} in\n{t}"))
        };
        // The stages keep their order and distance, on the clock other processes read.
        assert_eq!(trace("last_sent") - trace("event_read"), 50_000);
        assert_eq!(trace("last_answered") - trace("first_answered"), 40_000);
        assert!(t
            .lines()
            .any(|l| l == "mptcp_pmd_last_event_trace_in_calls_ns 30000"));
        assert!(t
            .lines()
            .any(|l| l == "mptcp_pmd_last_event_trace_commands 2"));
        let now = MonotonicNs::now().now_ns;
        assert!((0..1_000_000_000).contains(&(now - trace("event_read"))));
        let d = "mptcp_pmd_event_to_decision_seconds";
        assert_eq!(bucket(d, "0.0000238").as_deref(), Some("1"), "{t}");
        let c = "mptcp_pmd_event_to_command_seconds";
        assert_eq!(bucket(c, "0.0000298").as_deref(), Some("0"), "{t}");
        assert_eq!(bucket(c, "0.0000372").as_deref(), Some("1"), "{t}");
        assert_eq!(m.snapshot().events["created"], 2);
    }

    /// The gauges as the endpoint shows them: (connections, subflows by state, announced by
    /// state).
    type Shown = (i64, BTreeMap<String, i64>, BTreeMap<String, i64>);

    fn shown(m: &Metrics) -> Shown {
        let text = m.encode().unwrap();
        let value = |l: &str| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<i64>().ok());
        let by_state = |family: &str| -> BTreeMap<String, i64> {
            text.lines()
                .filter_map(|l| {
                    let rest = l.strip_prefix(&format!("{family}{{state=\""))?;
                    let (state, _) = rest.split_once('"')?;
                    Some((state.to_string(), value(l)?))
                })
                .collect()
        };
        let conns = text
            .lines()
            .find(|l| l.starts_with("mptcp_pmd_connections "))
            .and_then(value)
            .unwrap();
        (
            conns,
            by_state("mptcp_pmd_subflows"),
            by_state("mptcp_pmd_announced_addresses"),
        )
    }

    /// What `status` would count over `conns`, through its own state names.
    fn recount<'a>(conns: impl Iterator<Item = &'a Connection>) -> Shown {
        use crate::endpoints::status::{announce_state_name, state_name};
        let mut subflows: BTreeMap<String, i64> =
            SUBFLOW_STATES.iter().map(|s| (s.to_string(), 0)).collect();
        let mut announced: BTreeMap<String, i64> =
            ANNOUNCE_STATES.iter().map(|s| (s.to_string(), 0)).collect();
        let mut n = 0;
        for c in conns {
            n += 1;
            for s in c.subflows() {
                *subflows
                    .entry(state_name(&s.state).to_string())
                    .or_default() += 1;
            }
            for a in c.announcements() {
                *announced
                    .entry(announce_state_name(&a.state).to_string())
                    .or_default() += 1;
            }
        }
        (n, subflows, announced)
    }

    /// A connection as its actor drives it: the state machine and the census it published.
    struct Driven {
        conn: Connection,
        published: Census,
    }

    impl Driven {
        /// What the actor does after applying an input.
        fn publish(&mut self, m: &Metrics) {
            let now = Census::of(&self.conn);
            m.shift(&self.published, &now);
            self.published = now;
        }
    }

    #[test]
    fn gauges_equal_a_recount_after_churn() {
        use mptcp_pmd_policies::conn::{ConnTimers, KernelRefusal};
        use mptcp_pmd_policies::policy::{Action, Decision, Reason};
        use mptcp_pmd_policies::{ConnFlags, ConnInfo, PmEvent, SubflowInfo, Token};
        use std::net::{IpAddr, SocketAddr};

        // xorshift64: a fixed, reproducible churn.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let m = Metrics::default();
        let remote: SocketAddr = "198.51.100.7:443".parse().unwrap();
        let local = |i: u64| -> IpAddr { format!("192.0.2.{}", 1 + i % 3).parse().unwrap() };
        let why = Reason::fixed("test", "churn");
        let timers = ConnTimers {
            keep_closed: 4,
            ..ConnTimers::default()
        };
        let mut now = Instant::now();
        let mut live: Vec<Driven> = Vec::new();
        let mut next_token = 1u32;
        let mut seen_subflows = [false; SUBFLOW_STATES.len()];
        let mut seen_announced = [false; ANNOUNCE_STATES.len()];
        let mut closed = 0;
        for step in 0..20_000 {
            now += Duration::from_millis(rnd(400));
            if live.is_empty() || rnd(8) == 0 {
                // A new connection, as the registry starts its actor.
                let token = Token(next_token);
                next_token += 1;
                let info = ConnInfo {
                    token,
                    local: SocketAddr::new(local(0), 40_000),
                    remote,
                    loc_id: 0,
                    rem_id: 0,
                    flags: ConnFlags::default(),
                };
                let mut conn = Connection::new(token, timers);
                conn.handle_event(now, &PmEvent::Created(info));
                if rnd(4) != 0 {
                    conn.handle_event(now, &PmEvent::Established(info));
                }
                let mut d = Driven {
                    conn,
                    published: Census::default(),
                };
                d.publish(&m);
                live.push(d);
                continue;
            }
            let i = usize::try_from(rnd(live.len() as u64)).unwrap();
            let token = live[i].conn.token();
            let sub = |local_ip: IpAddr, port: u16, error: Option<u8>| SubflowInfo {
                token,
                local: SocketAddr::new(local_ip, port),
                remote,
                loc_id: 1,
                rem_id: 0,
                backup: false,
                if_idx: None,
                error,
                reset_reason: None,
                reset_flags: None,
            };
            let d = &mut live[i];
            match rnd(9) {
                0 | 1 => {
                    let open = Action::Open {
                        local: local(rnd(3)),
                        if_index: None,
                        remote,
                        backup: false,
                        timeout: None,
                    };
                    d.conn
                        .handle_decisions(now, vec![Decision::new(open, why.clone())]);
                }
                2 => {
                    let addr = local(rnd(3));
                    let action = if rnd(3) == 0 {
                        Action::Remove { addr }
                    } else {
                        Action::Announce { addr, port: None }
                    };
                    d.conn
                        .handle_decisions(now, vec![Decision::new(action, why.clone())]);
                }
                3 => {
                    let port = 50_000 + u16::try_from(rnd(4)).unwrap();
                    let ev = PmEvent::SubEstablished(sub(local(rnd(3)), port, None));
                    d.conn.handle_event(now, &ev);
                }
                4 => {
                    let port = 50_000 + u16::try_from(rnd(4)).unwrap();
                    let ev = PmEvent::SubClosed(sub(local(rnd(3)), port, Some(104)));
                    d.conn.handle_event(now, &ev);
                }
                5 => d.conn.handle_timeout(now + Duration::from_secs(rnd(30))),
                6 => {
                    // The closed connection's actor stops: it withdraws its census.
                    d.conn.handle_event(now, &PmEvent::Closed { token });
                    let gone = live.swap_remove(i);
                    m.shift(&gone.published, &Census::default());
                    closed += 1;
                    continue;
                }
                _ => {}
            }
            // The actor's pump: commands answered (some refused), then the census published.
            while let Some(cmd) = d.conn.poll_command() {
                let res = if rnd(4) == 0 {
                    Err(KernelRefusal {
                        errno: 22,
                        message: None,
                    })
                } else {
                    Ok(())
                };
                d.conn.handle_command_result(now, &cmd, res);
            }
            d.publish(&m);
            if step % 500 == 0 {
                let want = recount(live.iter().map(|d| &d.conn));
                assert_eq!(shown(&m), want, "step {step}");
                for (seen, state) in seen_subflows.iter_mut().zip(SUBFLOW_STATES) {
                    *seen |= want.1.get(state).is_some_and(|n| *n > 0);
                }
                for (seen, state) in seen_announced.iter_mut().zip(ANNOUNCE_STATES) {
                    *seen |= want.2.get(state).is_some_and(|n| *n > 0);
                }
            }
        }
        assert_eq!(shown(&m), recount(live.iter().map(|d| &d.conn)));
        // The churn went through every state it counts, and closed connections.
        assert!(seen_subflows.iter().all(|s| *s), "{seen_subflows:?}");
        assert!(seen_announced.iter().all(|s| *s), "{seen_announced:?}");
        assert!(
            closed > 100 && live.len() > 10,
            "{closed} closed, {} live",
            live.len()
        );
        // Every actor stops: nothing is left.
        for d in live.drain(..) {
            m.shift(&d.published, &Census::default());
        }
        let (conns, subflows, announced) = shown(&m);
        assert_eq!(conns, 0);
        assert!(subflows.values().chain(announced.values()).all(|n| *n == 0));
    }

    #[test]
    fn slots_are_the_status_names() {
        use crate::endpoints::status::{announce_state_name, state_name};
        let at = Instant::now();
        for s in [
            SubflowState::Pending { due: at },
            SubflowState::Requested {
                since: at,
                attempt: 1,
            },
            SubflowState::Established { since: at },
            SubflowState::Closed { at, error: None },
            SubflowState::Failed {
                at,
                errno: 1,
                message: None,
            },
        ] {
            assert_eq!(SUBFLOW_STATES.get(subflow_slot(&s)), Some(&state_name(&s)));
        }
        for s in [
            AnnounceState::Sent { at },
            AnnounceState::Unjoined { at },
            AnnounceState::Joined { at },
            AnnounceState::Withdrawn { at },
            AnnounceState::Refused {
                at,
                errno: 22,
                message: None,
            },
        ] {
            assert_eq!(
                ANNOUNCE_STATES.get(announce_slot(&s)),
                Some(&announce_state_name(&s))
            );
        }
    }

    #[test]
    fn sampling_block_shows_the_set_and_the_achieved_period_per_wanted_period() {
        let m = Metrics::default();
        Stats::sampled(&m, 10, 20);
        let report = TickReport {
            connections: 10,
            subflows: 20,
            achieved: vec![
                (Duration::from_millis(20), Duration::from_millis(21)),
                (Duration::from_secs(1), Duration::from_millis(1500)),
            ],
            idle: 4,
        };
        Stats::sample_tick(&m, &report, Duration::from_micros(80));
        Stats::sample_held_back(&m);
        let t = m.encode().unwrap();
        for line in [
            "mptcp_pmd_sampled_connections 10",
            "mptcp_pmd_sampled_subflows 20",
            "mptcp_pmd_sample_ticks_held_back_total 1",
            "mptcp_pmd_samples_skipped_idle_total 4",
            "mptcp_pmd_sample_tick_seconds_count 1",
            "mptcp_pmd_sample_period_seconds_count{wanted=\"0.02\"} 1",
            "mptcp_pmd_sample_period_seconds_count{wanted=\"1\"} 1",
            // 21 ms: above 0.005 x 1.5^3 = 16.9 ms, within 0.005 x 1.5^4 = 25.3 ms.
            "mptcp_pmd_sample_period_seconds_bucket{le=\"0.016875\",wanted=\"0.02\"} 0",
            "mptcp_pmd_sample_period_seconds_bucket{le=\"0.0253125\",wanted=\"0.02\"} 1",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
        }
    }
}
