//! `--soak MINUTES`: a continuous churn (32 clients) against the daemon, its RSS, CPU, tracked
//! and live connections sampled every 10 s, and a summary; the table the command prints (and
//! writes to `--out` if given), not a section of the report.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bed::{bed, count_meshed, tracked, Mode};
use crate::churn::churn;
use crate::stats::pct;

/// Run for `minutes`; the table and the summary.
pub fn soak(minutes: u64) -> String {
    let b = Arc::new(bed(Mode::Pmd, 2, None, ""));
    let stop = Arc::new(AtomicBool::new(false));
    let (b2, st) = (b.clone(), stop.clone());
    let worker = std::thread::spawn(move || churn(&b2, 32, usize::MAX, Some(st)));
    let p = b.pmd.as_ref().unwrap();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| t (s) | daemon RSS (KiB) | tracked by the daemon (`status`) | live MPTCP conns (sock_diag) | of them meshed | daemon CPU user s | daemon CPU sys s | overruns | resyncs |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let started = Instant::now();
    let end = started + Duration::from_secs(minutes * 60);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_secs(10));
        let (live, meshed, _) = count_meshed(&b.t.client, 2);
        let tracked = tracked(p, &b.t.client);
        let line = format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} |",
            started.elapsed().as_secs(),
            p.status_kb("VmRSS"),
            tracked,
            live,
            meshed,
            p.cpu_split().0,
            p.cpu_split().1,
            p.count("events socket overrun"),
            p.count("resync from sock_diag")
        );
        eprintln!("{line}");
        let _ = writeln!(out, "{line}");
    }
    stop.store(true, Ordering::Relaxed);
    let r = worker.join().unwrap();
    let _ = writeln!(
        out,
        "\nconnections: {}, fully meshed within 2 s: {}, not meshed: {}, failed: {}; \
         join p50 {:.2} ms, p99 {:.2} ms; daemon CPU {:.1} us/connection; final RSS {} KiB, \
         peak (VmHWM) {} KiB",
        r.conns,
        r.meshed,
        r.lat.timeouts,
        r.failed,
        pct(&r.lat.sorted(), 0.5),
        pct(&r.lat.sorted(), 0.99),
        r.cpu_s / r.conns.max(1) as f64 * 1e6,
        p.status_kb("VmRSS"),
        p.status_kb("VmHWM"),
    );
    out
}
