//! b. Churn: short connections from 32 concurrent clients (connect, one echo, wait up to 2 s
//! for the mesh, close), in interleaved rounds per path manager: joins, daemon CPU per
//! connection, overruns and resyncs, and where mptcp-pmd's time goes. [`churn`] is also the
//! load of the soak and of the start-up section's idle-memory reading.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration::daemon::Daemon;
use integration::mptcp;

use crate::bed::{baseline_bed, bed, Bed, Mode, BASELINE_LABEL, ECHO_PORT};
use crate::report::Section;
use crate::stages::{bucket_ms, stages_row, Stages, STAGES_HEAD};
use crate::stats::{list, ms, pct, verdict, Lat};

pub const SECTION: Section = Section::new("churn", "## b.", "b. Churn", |quick| {
    render(&measure(quick))
});

/// One path manager's churn (summed over rounds).
#[derive(Default)]
pub struct ChurnRow {
    pub mode: Option<Mode>,
    pub conns: usize,
    pub meshed: usize,
    pub failed: usize,
    pub lat: Lat,
    pub cpu_s: f64,
    pub user_s: f64,
    pub overruns: usize,
    pub resyncs: usize,
    pub tracker_overruns: u64,
    pub wall_s: f64,
    /// p50 of each interleaved round.
    pub round_p50: Vec<f64>,
    /// What ran (path manager and, for mptcp-pmd, any non-default setting).
    pub label: String,
    /// The daemon's own timing, all rounds (mptcp-pmd only).
    pub stages: Option<Stages>,
    /// p50 of event read -> command sent in each round (mptcp-pmd only).
    pub round_sent_p50: Vec<f64>,
}

/// `total` short connections from `clients` threads: connect, ping, wait (<= 2 s) for the
/// mesh, close.
pub fn churn(b: &Bed, clients: usize, total: usize, stop: Option<Arc<AtomicBool>>) -> ChurnRow {
    let next = Arc::new(AtomicUsize::new(0));
    let res = Arc::new(Mutex::new(ChurnRow::default()));
    let cpu0 = b.pmd.as_ref().map(Daemon::cpu_s).unwrap_or(0.0);
    let user0 = b.pmd.as_ref().map(|p| p.cpu_split().0).unwrap_or(0.0);
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (next, res, tr, dst, subs) = (
                next.clone(),
                res.clone(),
                b.tracker.clone(),
                b.dst(ECHO_PORT),
                b.links - 1,
            );
            let stop = stop.clone();
            b.t.client
                .exec_bg(move || loop {
                    if let Some(s) = &stop {
                        if s.load(Ordering::Relaxed) {
                            break;
                        }
                    } else if next.fetch_add(1, Ordering::Relaxed) >= total {
                        break;
                    }
                    let r = (|| {
                        let mut s = mptcp::connect(dst, None).ok()?;
                        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                        mptcp::ping(&mut s, b"churn").ok()?;
                        let port = s.local_addr().ok()?.port();
                        let l = tr.wait_joins(port, subs, Duration::from_secs(2));
                        tr.forget(port);
                        Some(l)
                    })();
                    let mut r2 = res.lock().unwrap();
                    r2.conns += 1;
                    match r {
                        None => r2.failed += 1,
                        Some(None) => r2.lat.timeouts += 1,
                        Some(Some(d)) => {
                            r2.meshed += 1;
                            r2.lat.samples.push(ms(d));
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut r = std::mem::take(&mut *res.lock().unwrap());
    r.wall_s = started.elapsed().as_secs_f64();
    r.mode = Some(b.mode);
    r.cpu_s = b.pmd.as_ref().map(Daemon::cpu_s).unwrap_or(0.0) - cpu0;
    r.user_s = b.pmd.as_ref().map(|p| p.cpu_split().0).unwrap_or(0.0) - user0;
    r
}

/// Interleaved churn rounds per path manager.
const CHURN_ROUNDS: usize = 5;

fn measure(quick: bool) -> Vec<ChurnRow> {
    let total = if quick { 1000 } else { 5000 };
    // The default config, the opt-in real-time scheduling, and the in-kernel PM.
    let rt = "kernel:\n  realtime_priority: 10\n";
    let labels = [
        "mptcp-pmd (default config)",
        "mptcp-pmd, kernel.realtime_priority: 10",
        "in-kernel PM",
    ];
    let mut beds = vec![
        bed(Mode::Pmd, 2, None, ""),
        bed(Mode::Pmd, 2, None, rt),
        bed(Mode::Kernel, 2, None, ""),
    ];
    let mut labels: Vec<String> = labels.into_iter().map(String::from).collect();
    if let Some(b) = baseline_bed(2, "") {
        beds.insert(1, b);
        labels.insert(1, format!("{BASELINE_LABEL}, default config"));
    }
    // BENCH_CHURN_CONFIG: one more mptcp-pmd bed with that YAML added (an A/B of a setting).
    if let Ok(extra) = std::env::var("BENCH_CHURN_CONFIG") {
        let at = beds.len() - 1;
        beds.insert(at, bed(Mode::Pmd, 2, None, &extra));
        labels.insert(
            at,
            format!("mptcp-pmd, {}", extra.trim().replace('\n', " ")),
        );
    }
    let mut rows: Vec<ChurnRow> = Vec::new();
    let mut base = vec![(0usize, 0usize); beds.len()];
    for (i, b) in beds.iter().enumerate() {
        if let Some(p) = &b.pmd {
            base[i] = (
                p.count("events socket overrun"),
                p.count("resync from sock_diag"),
            );
        }
    }
    // Interleaved rounds per path manager: a busy VM's noise then hits both alike.
    for _ in 0..CHURN_ROUNDS {
        for (i, b) in beds.iter().enumerate() {
            let was = b.pmd.as_ref().map(|p| Stages::read(p, &b.t.client));
            let mut r = churn(b, 32, total / CHURN_ROUNDS, None);
            let st = b
                .pmd
                .as_ref()
                .zip(was)
                .map(|(p, was)| Stages::read(p, &b.t.client).since(&was))
                .filter(|st| !st.sent.is_empty());
            let p50 = pct(&r.lat.sorted(), 0.5);
            match rows.get_mut(i) {
                None => {
                    r.round_p50.push(p50);
                    r.label = labels[i].to_string();
                    if let Some(st) = st {
                        r.round_sent_p50.push(bucket_ms(&st.sent, 0.5));
                        r.stages = Some(st);
                    }
                    rows.push(r)
                }
                Some(acc) => {
                    acc.round_p50.push(p50);
                    if let Some(st) = st {
                        acc.round_sent_p50.push(bucket_ms(&st.sent, 0.5));
                        acc.stages.get_or_insert_with(Stages::default).add(&st);
                    }
                    acc.conns += r.conns;
                    acc.meshed += r.meshed;
                    acc.failed += r.failed;
                    acc.lat.absorb(r.lat);
                    acc.cpu_s += r.cpu_s;
                    acc.user_s += r.user_s;
                    acc.wall_s += r.wall_s;
                }
            }
        }
    }
    for (i, b) in beds.iter().enumerate() {
        if let Some(p) = &b.pmd {
            rows[i].overruns = p.count("events socket overrun") - base[i].0;
            rows[i].resyncs = p.count("resync from sock_diag") - base[i].1;
        }
        rows[i].tracker_overruns = b.tracker.overruns();
    }
    eprintln!("churn: done");
    rows
}

fn render(churn_rows: &[ChurnRow]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## b. Churn\n\nShort connections from 32 concurrent clients (2 links): connect, one echo, wait up to 2 s for the join, close.\n");
    let _ = writeln!(md, "| path manager | connections | fully meshed | not meshed in 2 s | failed | join p50 ms | join p99 ms | conn/s | daemon CPU us/conn (of it user space) | overruns | resyncs | bench listener overruns |");
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in churn_rows {
        let s = r.lat.sorted();
        let is_pmd = r.mode == Some(Mode::Pmd);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {:.0} | {} | {} | {} | {} |",
            r.label,
            r.conns,
            r.meshed,
            r.lat.timeouts,
            r.failed,
            pct(&s, 0.5),
            pct(&s, 0.99),
            r.conns as f64 / r.wall_s.max(1e-9),
            if is_pmd {
                format!(
                    "{:.1} (user {:.1})",
                    r.cpu_s / r.conns.max(1) as f64 * 1e6,
                    r.user_s / r.conns.max(1) as f64 * 1e6
                )
            } else {
                "n/a (in kernel)".into()
            },
            if is_pmd {
                r.overruns.to_string()
            } else {
                "n/a".into()
            },
            if is_pmd {
                r.resyncs.to_string()
            } else {
                "n/a".into()
            },
            r.tracker_overruns
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Join p50 of each of the {CHURN_ROUNDS} interleaved rounds, in run order:\n"
    );
    for r in churn_rows {
        let _ = writeln!(md, "- {}: {}", r.label, list(&r.round_p50, 3));
    }
    let _ = writeln!(
        md,
        "\nWhere mptcp-pmd's time goes (as in a., all rounds):\n"
    );
    let _ = writeln!(md, "{STAGES_HEAD}");
    for r in churn_rows {
        if let Some(st) = &r.stages {
            let _ = writeln!(md, "{}", stages_row(&r.label, st));
        }
    }
    let _ = writeln!(
        md,
        "\nEvent read -> command sent, p50 of each round, in run order:\n"
    );
    for r in churn_rows.iter().filter(|r| !r.round_sent_p50.is_empty()) {
        let _ = writeln!(md, "- {}: {}", r.label, list(&r.round_sent_p50, 3));
    }
    let in_kernel = churn_rows.iter().find(|r| r.mode == Some(Mode::Kernel));
    let kernel = in_kernel.map(|r| pct(&r.lat.sorted(), 0.5));
    let kernel99 = in_kernel.map(|r| pct(&r.lat.sorted(), 0.99));
    let ok = churn_rows.iter().all(|r| r.meshed == r.conns);
    let _ = writeln!(md, "\n| target | value | verdict |\n|---|---:|---|");
    let _ = writeln!(
        md,
        "| every connection fully meshed | {} | {} |",
        if ok { "yes" } else { "no" },
        verdict(ok)
    );
    for r in churn_rows.iter().filter(|r| r.mode == Some(Mode::Pmd)) {
        for (name, q, k) in [("p50", 0.5, kernel), ("p99", 0.99, kernel99)] {
            if let Some(k) = k {
                let ratio = pct(&r.lat.sorted(), q) / k;
                let _ = writeln!(
                    md,
                    "| join {name} {} <= 2 x in-kernel | {ratio:.2} x | {} |",
                    r.label,
                    verdict(ratio <= 2.0)
                );
            }
        }
    }
    let _ = writeln!(md);
    md
}
