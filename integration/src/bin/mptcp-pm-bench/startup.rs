//! e. Start-up and idle cost (mptcp-pmd): cold starts to the `started` line and READY=1
//! against the in-kernel PM's two `ip mptcp endpoint add`, idle RSS before and after
//! connections came and went, and the sizes of the static binaries.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use integration::daemon::{daemon_bin, setns_command, Daemon, DaemonOpts};
use integration::{wait_for, Pm, TopoOpts, Topology};

use crate::bed::{bed, count_meshed, pmd_config, pmd_opts, Mode};
use crate::churn::churn;
use crate::report::Section;
use crate::stats::{mb, ms, pct, sorted, verdict};

// `--quick` changes nothing here (the counts are small already).
pub const SECTION: Section =
    Section::new("startup", "## e.", "e. Start-up and idle cost", |_quick| {
        render(&measure())
    });

/// Cold starts measured, each path manager.
const STARTUP_RUNS: usize = 20;
/// Connections that come and go before the second RSS reading.
const IDLE_CHURN: usize = 1000;
/// The static targets `packaging/build-static.sh --all` builds.
const STATIC_TARGETS: [&str; 3] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "armv7-unknown-linux-musleabihf",
];

#[derive(Default)]
struct StartupRow {
    /// exec -> the `started` log line, ms.
    started_ms: Vec<f64>,
    /// exec -> READY=1 on the NOTIFY_SOCKET, ms.
    ready_ms: Vec<f64>,
    /// exec of the first `ip mptcp endpoint add` -> exit of the second, ms.
    kernel_ms: Vec<f64>,
    /// Daemon runs that did not reach both within 10 s.
    failed: usize,
    idle_rss_kb: u64,
    churned: usize,
    churn_meshed: usize,
    after_rss_kb: u64,
    after_hwm_kb: u64,
    /// (what, path, size in bytes if the file exists).
    sizes: Vec<(String, PathBuf, Option<u64>)>,
}

fn measure() -> StartupRow {
    let mut row = StartupRow::default();
    // target/<profile>/mptcp-pm-bench -> target/
    let target_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target"));
    for t in STATIC_TARGETS {
        let p = target_dir.join(t).join("release").join("mptcp-pmd");
        let size = std::fs::metadata(&p).ok().map(|m| m.len());
        row.sizes.push((t.to_string(), p, size));
    }
    let host = daemon_bin();
    let size = std::fs::metadata(&host).ok().map(|m| m.len());
    row.sizes
        .push(("the daemon this run started".into(), host, size));

    // Cold start: a fresh process each time, started with setns (no `ip netns exec` in the
    // way) in a namespace already on the userspace PM, its two links' addresses to adopt;
    // interleaved with the in-kernel PM's equivalent, two `ip mptcp endpoint add`.
    let topo = |pm| {
        Topology::build(TopoOpts {
            client_links: 2,
            server_links: 1,
            client_pm: pm,
            server_pm: Pm::Kernel,
            shaping: vec![],
        })
        .expect("topology")
    };
    let (upm, kpm) = (topo(Pm::Userspace), topo(Pm::Kernel));
    let opts = DaemonOpts {
        // A wrapper tool would be timed too: cold starts are the daemon's alone.
        wrapper: Vec::new(),
        direct: true,
        notify: true,
        stamp_lines: true,
        ..pmd_opts()
    };
    let endpoints: Vec<(String, String)> = (0..2)
        .map(|i| (kpm.client_addr(i).to_string(), kpm.client_if(i)))
        .collect();
    for _ in 0..STARTUP_RUNS {
        let d = Daemon::spawn(&upm.client, &pmd_config("fullmesh", ""), opts.clone());
        let limit = Duration::from_secs(10);
        match (d.line_after("started", limit), d.ready_after(limit)) {
            (Some(s), Some(r)) => {
                row.started_ms.push(ms(s));
                row.ready_ms.push(ms(r));
            }
            _ => {
                row.failed += 1;
                eprintln!("startup: a daemon did not start within 10 s:\n{}", d.log());
            }
        }
        drop(d);
        let t0 = Instant::now();
        for (addr, dev) in &endpoints {
            let st = setns_command(&kpm.client, "ip")
                .expect("open the namespace")
                .args(["mptcp", "endpoint", "add", addr, "dev", dev, "subflow"])
                .stdin(Stdio::null())
                .status()
                .expect("run ip");
            assert!(st.success(), "ip mptcp endpoint add {addr} dev {dev}: {st}");
        }
        row.kernel_ms.push(ms(t0.elapsed()));
        kpm.client
            .run(&["ip", "mptcp", "endpoint", "flush"])
            .expect("endpoint flush");
    }
    drop((upm, kpm));
    eprintln!("startup: cold starts done");

    // Idle memory: a daemon with nothing to do, then after connections came and went.
    let b = bed(Mode::Pmd, 2, None, "");
    let p = b.pmd.as_ref().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    row.idle_rss_kb = p.status_kb("VmRSS");
    let r = churn(&b, 32, IDLE_CHURN, None);
    row.churned = r.conns;
    row.churn_meshed = r.meshed;
    wait_for(Duration::from_secs(60), || {
        (count_meshed(&b.t.client, 2).0 == 0).then_some(())
    });
    // As in the scale test: let the daemon see the closes and its poller stop.
    std::thread::sleep(Duration::from_secs(4));
    row.after_rss_kb = p.status_kb("VmRSS");
    row.after_hwm_kb = p.status_kb("VmHWM");
    eprintln!("startup: idle memory done");
    row
}

fn render(s: &StartupRow) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## e. Start-up and idle cost (mptcp-pmd)\n\nCold start: {STARTUP_RUNS} runs, each a new \
         daemon process (default config, fullmesh) started with `setns` + `exec` in a namespace \
         on the userspace PM with two links; the bench timestamps its `started` log line (from \
         the daemon's stderr pipe) and `READY=1` (on a `NOTIFY_SOCKET` it listens on) on \
         receipt. Each run is followed by the in-kernel PM's equivalent in a namespace of its \
         own: two `ip mptcp endpoint add ADDR dev IF subflow`, exec of the first to exit of the \
         second. The page cache is warm (the binary was run before).\n"
    );
    let _ = writeln!(
        md,
        "| metric | median ms | min | p90 | max | target | verdict |\n|---|---:|---:|---:|---:|---:|---|"
    );
    let rows: [(&str, &[f64], bool); 3] = [
        ("mptcp-pmd: exec -> `started` line", &s.started_ms, true),
        ("mptcp-pmd: exec -> READY=1", &s.ready_ms, true),
        (
            "in-kernel PM: two `ip mptcp endpoint add`",
            &s.kernel_ms,
            false,
        ),
    ];
    for (what, v, target) in rows {
        let v = sorted(v);
        let med = pct(&v, 0.5);
        let _ = writeln!(
            md,
            "| {what} | {med:.2} | {:.2} | {:.2} | {:.2} | {} | {} |",
            v.first().copied().unwrap_or(f64::NAN),
            pct(&v, 0.9),
            v.last().copied().unwrap_or(f64::NAN),
            if target { "< 50 ms" } else { "" },
            if target {
                verdict(med < 50.0 && s.failed == 0)
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        md,
        "\nREADY=1 median / in-kernel median: {:.1} x; daemon runs that did not start within \
         10 s: {}.\n",
        pct(&sorted(&s.ready_ms), 0.5) / pct(&sorted(&s.kernel_ms), 0.5),
        s.failed
    );
    let _ = writeln!(
        md,
        "Memory: the daemon of a two-link client namespace with no connection (2 s after start), \
         then after {IDLE_CHURN} connections came and went (32 clients: connect, echo, mesh, \
         close; {} of {} fully meshed), 4 s after the last one closed.\n",
        s.churn_meshed, s.churned
    );
    let _ = writeln!(
        md,
        "| metric | value | target | verdict |\n|---|---:|---:|---|"
    );
    let idle = s.idle_rss_kb as f64 * 1024.0;
    let _ = writeln!(
        md,
        "| idle RSS, no connections | {:.2} MB | <= 8 MB | {} |",
        mb(idle),
        verdict(s.idle_rss_kb > 0 && idle <= 8e6)
    );
    let _ = writeln!(
        md,
        "| RSS after {IDLE_CHURN} connections came and went | {:.2} MB (peak {:.2}) | | |",
        mb(s.after_rss_kb as f64 * 1024.0),
        mb(s.after_hwm_kb as f64 * 1024.0)
    );
    let _ = writeln!(
        md,
        "\nBinary sizes: the files `packaging/build-static.sh --all` leaves (static musl, \
         stripped, release profile), read by this run:\n"
    );
    let _ = writeln!(
        md,
        "| binary | bytes | MB | target | verdict |\n|---|---:|---:|---:|---|"
    );
    for (i, (what, path, size)) in s.sizes.iter().enumerate() {
        let is_static = i < STATIC_TARGETS.len();
        let name = if is_static {
            format!("`{what}`")
        } else {
            format!("{what} (`{}`)", path.display())
        };
        match size {
            Some(b) => {
                let _ = writeln!(
                    md,
                    "| {name} | {b} | {:.2} | {} | {} |",
                    mb(*b as f64),
                    if is_static { "<= 6 MB" } else { "" },
                    if is_static {
                        verdict(*b as f64 <= 6e6)
                    } else {
                        ""
                    }
                );
            }
            None => {
                let _ = writeln!(md, "| {name} | not built | | | |");
            }
        }
    }
    let _ = writeln!(md);
    md
}
