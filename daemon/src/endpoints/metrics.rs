//! In-process metrics: events by type, commands by type and errno, kernel refusals, overruns,
//! resyncs, the sock_diag poll duration, and the gauges (connections tracked, subflows by state,
//! announced addresses by state) that the front ends refresh from the actors just before they
//! render. Cheap to clone and update
//! from any actor or thread; rendered as Prometheus/OpenMetrics text by [`Metrics::encode`] for
//! the `metrics.listen` endpoint (see `crate::http`), and summarised in the stop log line.
//! The kernel actors of `netlink-actor` count into it through its [`Stats`] implementation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    subflows: Family<Labels, Gauge>,
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
    announced: Family<Labels, Gauge>,
    sampling: SamplingMetrics,
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

/// The subflow states reported by the `subflows` gauge (every state always present).
pub const SUBFLOW_STATES: [&str; 5] = ["pending", "requested", "established", "closed", "failed"];

/// The announcement states reported by the `announced_addresses` gauge (every state always
/// present).
pub const ANNOUNCE_STATES: [&str; 5] = ["sent", "unjoined", "joined", "withdrawn", "refused"];

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
        // 50 µs .. ~0.8 s.
        let poll = registered(
            &mut registry,
            "sock_diag_poll_seconds",
            "Duration of one sock_diag snapshot (two dumps)",
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
        // The path from a kernel event to the commands it causes (docs/ARCHITECTURE.md,
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
        let sampling = SamplingMetrics::register(&mut registry);
        registry.register(
            "log_lines_dropped",
            "Log lines dropped: the log writer's queue was full (stderr not read fast enough) or the write failed",
            ReadCounter(crate::logging::dropped_lines),
        );
        Metrics {
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

/// Every state of `states` gets its count (0 if absent), so a state that empties reads 0.
fn set_by_state(
    family: &Family<Labels, Gauge>,
    states: &[&'static str],
    counts: &BTreeMap<&'static str, usize>,
) {
    for state in states {
        let n = counts.get(state).copied().unwrap_or(0);
        family
            .get_or_create(&vec![("state", (*state).to_string())])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
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
    /// Set the number of live per-connection policy objects.
    pub fn set_policy_objects(&self, n: usize) {
        self.policy_objects
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    /// Record how long one sock_diag snapshot took.
    pub fn poll_duration(&self, d: Duration) {
        self.poll.observe(d.as_secs_f64());
    }
    /// Set the gauges from a fresh view: connections tracked and subflows per state name.
    pub fn set_gauges(&self, connections: usize, subflows: &BTreeMap<&'static str, usize>) {
        self.connections
            .set(i64::try_from(connections).unwrap_or(i64::MAX));
        set_by_state(&self.subflows, &SUBFLOW_STATES, subflows);
    }
    /// Set the announced-addresses gauge from a fresh view (announcements per state name).
    pub fn set_announced(&self, by_state: &BTreeMap<&'static str, usize>) {
        set_by_state(&self.announced, &ANNOUNCE_STATES, by_state);
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
        let mut subs = BTreeMap::new();
        subs.insert("established", 3);
        m.set_gauges(2, &subs);
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
        let mut announced = BTreeMap::new();
        announced.insert("joined", 2);
        m.set_announced(&announced);
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
