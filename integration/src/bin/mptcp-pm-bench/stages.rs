//! Where a join's time goes, from the daemon's own timestamps: its stage histograms (metrics
//! endpoint, in the client namespace; serving them changes nothing on the event path, the
//! daemon keeps them either way) and its event-loop thread's run-queue wait
//! (`/proc/<pid>/task/<pid>/schedstat`: time runnable but not running, and timeslices run).
//! Read before and after a measured stretch; [`Stages::since`] is what happened in it.

use integration::daemon::Daemon;
use integration::Netns;

use crate::bed::METRICS_PORT;

/// The daemon's latency histograms of one stage, as cumulative (upper bound s, count) pairs.
pub type Buckets = Vec<(f64, f64)>;

/// A reading of the daemon's timing counters; [`Stages::since`] gives what happened between two.
#[derive(Clone, Default)]
pub struct Stages {
    /// Kernel event read -> policy decisions applied (decisions that asked for something).
    pub decided: Buckets,
    /// Kernel event read -> send of each command it caused.
    pub sent: Buckets,
    /// SUBFLOW_CREATE: send -> the kernel's answer read.
    pub create: Buckets,
    /// Event-loop thread: ns runnable but waiting for a CPU, and timeslices run.
    pub rq_wait_ns: f64,
    pub slices: f64,
}

/// The cumulative buckets of histogram `name` whose labels contain `labels` (e.g.
/// `command="subflow_create"`; empty for an unlabelled one).
pub fn buckets(body: &str, name: &str, labels: &str) -> Buckets {
    let prefix = format!("{name}_bucket{{");
    body.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter(|l| l.contains(labels))
        .filter_map(|l| {
            let (lbl, v) = l.rsplit_once(' ')?;
            let le = lbl.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, v.parse().ok()?))
        })
        .collect()
}

impl Stages {
    /// Read them now.
    pub fn read(pmd: &Daemon, ns: &Netns) -> Stages {
        let body = integration::metrics::scrape(ns, METRICS_PORT);
        let sched = pmd
            .pid()
            .and_then(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/schedstat")).ok()
            })
            .unwrap_or_default();
        let f: Vec<f64> = sched
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        Stages {
            decided: buckets(&body, "mptcp_pmd_event_to_decision_seconds", ""),
            sent: buckets(&body, "mptcp_pmd_event_to_command_seconds", ""),
            create: buckets(
                &body,
                "mptcp_pmd_command_seconds",
                "command=\"subflow_create\"",
            ),
            rq_wait_ns: f.get(1).copied().unwrap_or(0.0),
            slices: f.get(2).copied().unwrap_or(0.0),
        }
    }

    /// What was counted after `before`.
    pub fn since(&self, before: &Stages) -> Stages {
        let d = |a: &Buckets, b: &Buckets| -> Buckets {
            a.iter()
                .map(|&(le, n)| {
                    let was = b.iter().find(|x| x.0 == le).map_or(0.0, |x| x.1);
                    (le, n - was)
                })
                .collect()
        };
        Stages {
            decided: d(&self.decided, &before.decided),
            sent: d(&self.sent, &before.sent),
            create: d(&self.create, &before.create),
            rq_wait_ns: self.rq_wait_ns - before.rq_wait_ns,
            slices: self.slices - before.slices,
        }
    }

    /// Sum of two readings' differences (rounds added up).
    pub fn add(&mut self, o: &Stages) {
        let a = |x: &mut Buckets, y: &Buckets| {
            if x.is_empty() {
                *x = y.clone();
            } else {
                for (i, v) in x.iter_mut().enumerate() {
                    v.1 += y.get(i).map_or(0.0, |b| b.1);
                }
            }
        };
        a(&mut self.decided, &o.decided);
        a(&mut self.sent, &o.sent);
        a(&mut self.create, &o.create);
        self.rq_wait_ns += o.rq_wait_ns;
        self.slices += o.slices;
    }
}

/// Quantile `q` of cumulative buckets in ms, interpolated linearly inside its bucket (the
/// buckets are 1.25 x apart, so within 25 %).
pub fn bucket_ms(b: &[(f64, f64)], q: f64) -> f64 {
    let total = b.last().map_or(0.0, |x| x.1);
    if total <= 0.0 {
        return f64::NAN;
    }
    let want = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, n) in b {
        if n >= want {
            if !le.is_finite() {
                return prev.0 * 1e3;
            }
            let frac = if n > prev.1 {
                (want - prev.1) / (n - prev.1)
            } else {
                1.0
            };
            return (prev.0 + (le - prev.0) * frac) * 1e3;
        }
        prev = (le, n);
    }
    f64::NAN
}

/// One table row of the breakdown: `label`, how many commands, p50/p99 of each stage, the
/// event-loop thread's mean wait for a CPU per timeslice.
pub fn stages_row(label: &str, s: &Stages) -> String {
    let n = s.sent.last().map_or(0.0, |x| x.1);
    format!(
        "| {label} | {n:.0} | {:.3} / {:.3} | {:.3} / {:.3} | {:.3} / {:.3} | {:.3} ({:.0} timeslices) |",
        bucket_ms(&s.decided, 0.5),
        bucket_ms(&s.decided, 0.99),
        bucket_ms(&s.sent, 0.5),
        bucket_ms(&s.sent, 0.99),
        bucket_ms(&s.create, 0.5),
        bucket_ms(&s.create, 0.99),
        if s.slices > 0.0 { s.rq_wait_ns / s.slices / 1e6 } else { f64::NAN },
        s.slices
    )
}

/// The header of [`stages_row`]'s table.
pub const STAGES_HEAD: &str = "| daemon | commands | event read -> decided, p50 / p99 ms | event read -> command sent, p50 / p99 ms | SUBFLOW_CREATE send -> answer, p50 / p99 ms | event loop: mean wait for a CPU per timeslice, ms |\n|---|---:|---:|---:|---:|---:|";

#[cfg(test)]
mod tests {
    use super::*;

    const HIST: &str = "# TYPE x histogram\n\
        mptcp_pmd_command_seconds_bucket{command=\"subflow_create\",le=\"0.001\"} 0\n\
        mptcp_pmd_command_seconds_bucket{command=\"subflow_create\",le=\"0.002\"} 10\n\
        mptcp_pmd_command_seconds_bucket{command=\"subflow_create\",le=\"0.004\"} 20\n\
        mptcp_pmd_command_seconds_bucket{command=\"subflow_create\",le=\"+Inf\"} 20\n\
        mptcp_pmd_command_seconds_bucket{command=\"remove\",le=\"0.001\"} 7\n\
        mptcp_pmd_command_seconds_count{command=\"subflow_create\"} 20\n";

    #[test]
    fn quantiles_come_from_the_buckets_of_one_label() {
        let b = buckets(
            HIST,
            "mptcp_pmd_command_seconds",
            "command=\"subflow_create\"",
        );
        assert_eq!(
            b,
            [
                (0.001, 0.0),
                (0.002, 10.0),
                (0.004, 20.0),
                (f64::INFINITY, 20.0)
            ]
        );
        // Half of them are at most 2 ms; the 75th percentile is halfway into 2..4 ms.
        assert!((bucket_ms(&b, 0.5) - 2.0).abs() < 1e-9);
        assert!((bucket_ms(&b, 0.75) - 3.0).abs() < 1e-9);
        assert!(bucket_ms(&[], 0.5).is_nan());
        let none = buckets(HIST, "mptcp_pmd_event_to_command_seconds", "");
        assert!(none.is_empty());
    }

    #[test]
    fn stages_of_a_round_are_the_difference_of_two_readings() {
        let at = |n: f64| Stages {
            sent: vec![(0.001, n), (f64::INFINITY, 2.0 * n)],
            rq_wait_ns: 1000.0 * n,
            slices: n,
            ..Stages::default()
        };
        let d = at(5.0).since(&at(2.0));
        assert_eq!(d.sent, [(0.001, 3.0), (f64::INFINITY, 6.0)]);
        assert_eq!((d.rq_wait_ns, d.slices), (3000.0, 3.0));
        let mut sum = Stages::default();
        sum.add(&d);
        sum.add(&d);
        assert_eq!(sum.sent, [(0.001, 6.0), (f64::INFINITY, 12.0)]);
    }
}
