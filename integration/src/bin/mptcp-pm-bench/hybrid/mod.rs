//! g. Hybrid access (issue 17): a client with two 20 Mbit/s links (tbf), the primary and the
//! standby, and a router that silently drops everything it forwards on the primary's path
//! (nftables, [`PathCut`]; the link stays up): once from 4 s to 9 s, and flapping (1 s dropped,
//! 1 s open, from 4 s). The same runs, interleaved, for the in-kernel PM with the standby
//! endpoint `backup`, mptcp-pmd `fullmesh` with `addresses.backup_interfaces` = the standby,
//! and mptcp-pmd `active-standby` with the shipped `packaging/examples/hybrid-access.yaml`
//! (its `standby_interfaces` set to the standby). Each run is one fresh MPTCP connection from
//! the primary's address, either
//! - an **interactive** flow: 64-byte messages every 10 ms, TCP_NODELAY, each carrying its
//!   send time; the server takes the one-way delay as its receive time minus that (one
//!   process, one CLOCK_MONOTONIC for every namespace); or
//! - a **bulk** upload into a sink that time-stamps every read; the server's two links, one
//!   per client path ([`Topology::steer_client_link`]), count in their interface counters the
//!   bytes each path delivered after the router's drop.
//!
//! The numbers (pure functions of the records, unit-tested): the interactive flow's max delay
//! and the messages over 200 ms, from the first cut to the end of the run; the standby's share
//! of the bytes while the primary is healthy (1 s to the cut); the goodput during the outage;
//! the time until the primary carries the traffic again after it heals ([`back_on_primary`]);
//! the longest gap without goodput ([`longest_gap`]). For mptcp-pmd, the daemon's decisions
//! (its log lines, time-stamped on receipt) say what it did and when.
//!
//! `BENCH_HYBRID_POLL_MS=N` adds a setup: `active-standby` with `poll.interval_ms: N` (a
//! daemon that does not honour the policy's `sample_ms` samples every connection at that
//! period). `BENCH_HYBRID_DUMP=DIR` writes every run's records there.
//!
//! The parts: [`run`] sets a run up and records it (the namespaces, the daemon, the flows, the
//! cut), [`numbers`] turns records into the numbers (pure), [`table`] renders them and the
//! targets; this module holds the setups and runs the cases.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use integration::nft::PathCut;
use integration::Topology;

mod numbers;
mod run;
mod table;

use numbers::*;
use run::*;
use table::*;

use crate::bed::pmd_config;
use crate::report::Section;
use crate::stats::{ms, verdict};

pub const SECTION: Section = Section::new(
    "hybrid",
    "## g.",
    "g. Hybrid access: a silent primary failure",
    |quick| render(&measure(quick)),
);

const INTERACTIVE_PORT: u16 = 5210;
const BULK_PORT: u16 = 5211;
/// The interactive flow: a message this long every [`MSG_EVERY`].
const MSG_LEN: usize = 64;
const MSG_EVERY: Duration = Duration::from_millis(10);
/// A message later than this is "over 200 ms".
const LATE_MS: f64 = 200.0;
/// The router's interface of the primary (client link 0); the standby is client link 1.
const PRIMARY_RIF: &str = "rc0";
const STANDBY_IF: &str = "c1";
/// The first cut, and how long a run goes on after the last heal.
const FIRST_CUT: Duration = Duration::from_secs(4);
const TAIL: Duration = Duration::from_secs(4);
/// The primary is healthy from here to the first cut (the joins are done by then).
const HEALTHY_FROM_MS: f64 = 1000.0;
/// [`back_on_primary`]'s window, and the least a window must carry to count.
const BACK_WINDOW_MS: f64 = 50.0;
const BACK_MIN_BYTES: u64 = 16 * 1024;
/// The server's interface counters are sampled this often.
const DEV_EVERY: Duration = Duration::from_millis(10);
/// `BENCH_HYBRID_DUMP`: the client's subflows are sampled with sock_diag this often.
const DIAG_EVERY: Duration = Duration::from_millis(10);

// ------------------------------------------------------------------------------------------
// Setups.

/// The path manager of a run's client.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    /// In-kernel PM, the standby endpoint `subflow backup`.
    Kernel,
    /// mptcp-pmd fullmesh, the standby in `addresses.backup_interfaces`.
    Fullmesh,
    /// mptcp-pmd active-standby, the shipped example config; `Some(ms)`: with
    /// `poll.interval_ms: ms`.
    ActiveStandby(Option<u32>),
}

impl Setup {
    fn name(self) -> String {
        match self {
            Setup::Kernel => "in-kernel PM, standby endpoint `backup`".into(),
            Setup::Fullmesh => "mptcp-pmd fullmesh, `backup_interfaces` = standby".into(),
            Setup::ActiveStandby(None) => "mptcp-pmd active-standby (hybrid-access.yaml)".into(),
            Setup::ActiveStandby(Some(p)) => {
                format!("mptcp-pmd active-standby, `poll.interval_ms: {p}`")
            }
        }
    }

    fn short(self) -> String {
        match self {
            Setup::Kernel => "in-kernel".into(),
            Setup::Fullmesh => "fullmesh".into(),
            Setup::ActiveStandby(None) => "active-standby".into(),
            Setup::ActiveStandby(Some(p)) => format!("active-standby, poll {p} ms"),
        }
    }

    /// The daemon's config (None: the in-kernel PM).
    fn config(self) -> Option<String> {
        match self {
            Setup::Kernel => None,
            Setup::Fullmesh => Some(pmd_config(
                "fullmesh",
                &format!("addresses:\n  backup_interfaces: [\"{STANDBY_IF}\"]\n"),
            )),
            Setup::ActiveStandby(poll) => {
                let mut c = example_config();
                if let Some(p) = poll {
                    let _ = writeln!(c, "poll:\n  interval_ms: {p}");
                }
                Some(c)
            }
        }
    }
}

/// `packaging/examples/hybrid-access.yaml` with its `standby_interfaces` set to the standby,
/// the bench's metrics endpoint and `BENCH_PMD_CONFIG` added.
fn example_config() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/examples/hybrid-access.yaml"
    );
    let text = std::fs::read_to_string(path).expect("packaging/examples/hybrid-access.yaml");
    let mut replaced = 0;
    let mut out: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("standby_interfaces:") {
                replaced += 1;
                format!("  standby_interfaces: [\"{STANDBY_IF}\"]\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_eq!(replaced, 1, "one standby_interfaces line in {path}");
    // The bench's additions, as `pmd_config` makes them (the example has no `policy:`-less
    // variant, and no metrics section that is not commented out).
    let extra = pmd_config("active-standby", "");
    out.extend(extra.lines().skip(1).map(|l| format!("{l}\n")));
    out
}

// ------------------------------------------------------------------------------------------
// The cases: measuring them, and dumping their records.

/// A case: its title, its schedule, and each setup's summary.
struct Case {
    title: String,
    key: &'static str,
    sched: Schedule,
    rows: Vec<(Setup, Summary)>,
}

struct Results {
    cases: Vec<Case>,
    load: String,
}

fn measure(quick: bool) -> Results {
    stamp_ns(Instant::now());
    // The bench's own threads (senders, receivers, counters) and the router's nft run at the
    // daemon's default priority (kernel.nice -20), so that other work on the machine delays
    // neither the measured traffic nor the cut more than it delays the daemon. Linux's nice
    // is per thread: every thread and process started from here on inherits it.
    // SAFETY: setpriority on the calling thread.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -20) } != 0 {
        eprintln!(
            "hybrid: cannot raise the bench's priority: {}",
            std::io::Error::last_os_error()
        );
    }
    let mut setups = vec![Setup::Kernel, Setup::Fullmesh, Setup::ActiveStandby(None)];
    if let Some(p) = std::env::var("BENCH_HYBRID_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        setups.push(Setup::ActiveStandby(Some(p)));
    }
    let mut beds: Vec<HBed> = setups.iter().map(|s| hbed(*s)).collect();
    let mut plan = vec![
        (
            "Single outage: the primary's path dropped from 4 s to 9 s".to_string(),
            "single",
            Schedule::single(),
        ),
        (
            "Flapping primary: 1 s dropped / 1 s open, 3 cycles from 4 s".to_string(),
            "flap3",
            Schedule::flapping(3),
        ),
    ];
    if !quick {
        plan.push((
            "Flapping primary (stress): 1 s dropped / 1 s open, 10 cycles from 4 s".to_string(),
            "flap10",
            Schedule::flapping(10),
        ));
    }
    let mut cases = Vec::new();
    for (title, key, sched) in plan {
        let mut recs: Vec<[Record; 2]> = vec![Default::default(); beds.len()];
        for (k, flow) in [Flow::Interactive, Flow::Bulk].into_iter().enumerate() {
            // Interleaved: every setup's run of this flow, then the next flow.
            for (b, r) in beds.iter_mut().zip(recs.iter_mut()) {
                eprintln!("hybrid: {key} {flow:?} {}", b.setup.short());
                r[k] = run(b, flow, &sched);
            }
        }
        if let Some(dir) = std::env::var_os("BENCH_HYBRID_DUMP") {
            for (b, r) in beds.iter().zip(&recs) {
                dump(std::path::Path::new(&dir), key, b.setup, r);
            }
        }
        let rows = beds
            .iter()
            .zip(&recs)
            .map(|(b, [i, bu])| (b.setup, summarize(i, bu, &sched)))
            .collect();
        cases.push(Case {
            title,
            key,
            sched,
            rows,
        });
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!("hybrid: done");
    Results { cases, load }
}

/// `BENCH_HYBRID_DUMP=DIR`: a run's records as text files, for a closer look (one per case,
/// setup and flow: the cuts, the messages, the reads, the link counters, the decisions).
fn dump(dir: &std::path::Path, case: &str, setup: Setup, r: &[Record; 2]) {
    let _ = std::fs::create_dir_all(dir);
    let name = setup.short().replace([' ', ','], "");
    for (rec, flow) in r.iter().zip(["interactive", "bulk"]) {
        let mut t = String::new();
        let _ = writeln!(t, "# cuts (applied, heal sent) ms: {:?}", rec.cuts);
        let _ = writeln!(t, "# nft command ms: {:?}", rec.cmd_ms);
        for (at, code) in &rec.decisions {
            let _ = writeln!(t, "decision {at:.1} {code}");
        }
        for (sent, d) in &rec.msgs {
            let _ = writeln!(t, "msg {sent:.1} {d:.1}");
        }
        for (at, n) in &rec.reads {
            let _ = writeln!(t, "read {at:.1} {n}");
        }
        for (at, p, s) in &rec.dev {
            let _ = writeln!(t, "dev {at:.1} {p} {s}");
        }
        for (at, l) in &rec.log {
            let _ = writeln!(t, "log {at:.1} {l}");
        }
        for (at, l) in &rec.samples {
            let _ = writeln!(t, "sample {at:.1} {l}");
        }
        let _ = std::fs::write(dir.join(format!("{case}-{flow}-{name}.txt")), t);
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_count_from_the_cut() {
        let m = [
            (0.0, 900.0),
            (4000.0, 5.0),
            (4010.0, 250.0),
            (4020.0, 201.0),
            (4030.0, 200.0),
        ];
        assert_eq!(delays(&m, 4000.0), (250.0, 2));
        let (max, late) = delays(&m, 9000.0);
        assert!(max.is_nan() && late == 0);
    }

    #[test]
    fn gaps_include_the_edges() {
        let r = [(100.0, 1), (150.0, 1), (400.0, 1), (410.0, 1)];
        assert_eq!(longest_gap(&r, 0.0, 500.0), 250.0);
        assert_eq!(longest_gap(&r, 0.0, 1000.0), 590.0);
        assert_eq!(longest_gap(&[], 0.0, 10.0), 10.0);
        // 1 MB in half a second: 16 Mbit/s.
        assert_eq!(
            goodput_mbit(&[(0.0, 500_000), (499.0, 500_000), (600.0, 9)], 0.0, 500.0),
            16.0
        );
    }

    #[test]
    fn the_standby_share_and_the_return_to_the_primary() {
        // 10 ms samples: the standby carries everything until 1000 ms, the primary after.
        let dev: Vec<(f64, u64, u64)> = (0..200u64)
            .map(|k| {
                let t = k * 10;
                let primary = t.saturating_sub(1000) * 2500;
                let standby = t.min(1000) * 2500 + t;
                (t as f64, primary, standby)
            })
            .collect();
        let share = standby_share(&dev, 0.0, 900.0).unwrap();
        assert!(share > 0.99, "{share}");
        let share = standby_share(&dev, 1500.0, 1990.0).unwrap();
        assert!(share < 0.01, "{share}");
        // Healed at 700: the first 50 ms window in which the primary has the majority is
        // 980..1030 (primary 30 ms x 2500, standby 20 ms x 2500); 970..1020 is not.
        let back = back_on_primary(&dev, 700.0).unwrap();
        assert_eq!(back, 1030.0 - 700.0);
        // Never back: the standby keeps it all.
        let stuck: Vec<(f64, u64, u64)> = (0..100u64)
            .map(|k| ((k * 10) as f64, 7, k * 25_000))
            .collect();
        assert_eq!(back_on_primary(&stuck, 0.0), None);
        // The standby link: 2500 bytes per ms until 1000 ms (and 1 per ms) = 20 Mbit/s.
        let mbit = standby_mbit(&dev, 100.0, 900.0).unwrap();
        assert!((mbit - 20.008).abs() < 0.001, "{mbit}");
        assert_eq!(standby_mbit(&dev, 5000.0, 6000.0), None);
        // Too little traffic in a window does not count.
        let idle: Vec<(f64, u64, u64)> = (0..100u64).map(|k| ((k * 10) as f64, k, 0)).collect();
        assert_eq!(back_on_primary(&idle, 0.0), None);
    }

    #[test]
    fn decision_lines_give_their_reason() {
        let l = "Dec 01 12:00:00.000 INFO decision, why: path ..., reason: failover, action: clear backup 1.2.3.4:5 -> 6.7.8.9:10, token: 0x1, rule: default, policy: active-standby";
        assert_eq!(decision_reason(l).as_deref(), Some("failover"));
        assert_eq!(decision_reason("INFO subflow created, reason: x"), None);
        let d = vec![
            (100.0, "stalled".to_string()),
            (4200.0, "failover".into()),
            (9500.0, "handback".into()),
        ];
        assert_eq!(
            decisions_cell(&d, &[(4000.0, 9000.0)]),
            "failover 1, handback 1, stalled 1, first failover cut + 200 ms, first handback last heal + 500 ms"
        );
    }

    #[test]
    fn schedules() {
        assert_eq!(Schedule::single().end(), Duration::from_secs(13));
        let f = Schedule::flapping(3);
        assert_eq!(
            f.cuts,
            [(4, 5), (6, 7), (8, 9)].map(|(a, b)| (Duration::from_secs(a), Duration::from_secs(b)))
        );
        assert_eq!(f.end(), Duration::from_secs(13));
        assert_eq!(Schedule::flapping(10).end(), Duration::from_secs(27));
    }

    #[test]
    fn the_example_config_gets_the_standby() {
        let c = example_config();
        assert!(c.contains("policy: active-standby"));
        assert!(c.contains("standby_interfaces: [\"c1\"]"));
        assert!(c.contains("metrics:"));
        assert_eq!(c.matches("policy:").count(), 1, "{c}");
    }
}
