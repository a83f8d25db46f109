//! c. Scale (mptcp-pmd): 10 000 connections held open against the daemon: the time to open
//! and mesh them, its RSS, the sock_diag polls it runs (fullmesh, and rtt-based and
//! active-standby after a SIGHUP: their subflows sampled every second and every 20 ms, with
//! the daemon's CPU, RSS and achieved sampling period), its idle CPU and wake-ups, its RSS once
//! all are closed, the same fast sampling with 10 connections, and what reading it costs
//! ([`crate::scrape`]).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use integration::{mptcp, wait_for, Netns};
use netlink_actor::sock_diag::{
    port_windows, Answer, DiagSocket, LookupKey, PortPair, WINDOW_SUBFLOWS,
};

use crate::bed::{bed, count_meshed, pmd_config, Mode, HOLD_PORT, METRICS_PORT};
use crate::report::Section;
use crate::scrape::{self, Readings};
use crate::stats::{list, ms, pct, sorted, verdict};

pub const SECTION: Section = Section::new("scale", "## c.", "c. Scale", |quick| {
    render(&measure(quick))
});

/// The scale section's readings.
#[derive(Default)]
struct ScaleRow {
    conns: usize,
    opened_s: f64,
    meshed: usize,
    mesh_s: f64,
    rss_kb: u64,
    hwm_kb: u64,
    poll_ms: Vec<f64>,
    light_poll_ms: Vec<f64>,
    busy_cpu_pct: f64,
    rss_after_kb: u64,
    idle_switches: u64,
    idle_cpu_s: f64,
    baseline_rss_kb: u64,
    empty_poll_ms: Vec<f64>,
    /// Sampling rounds as the daemon runs them with rtt-based: each round's polls, ms.
    rounds_ms: Vec<Vec<f64>>,
    /// Every subflow looked up by 4-tuple: (wall, user, sys ms, found), three times.
    lookup_rounds: Vec<(f64, f64, f64, usize)>,
    /// The daemon itself on rtt-based: its polls over 5 s (count, mean ms, how many took over
    /// 25.6 ms by its histogram), RSS and CPU meanwhile.
    rtt_polls: (f64, f64, f64),
    rtt_rss_kb: u64,
    rtt_hwm_kb: u64,
    rtt_cpu_pct: f64,
    /// rtt-based's achieved sampling period (asked: `poll.interval_ms`, 1 s).
    rtt_period: Option<Periods>,
    /// The daemon on active-standby (SIGHUP) with all the connections, and later with 10.
    fast_big: Option<Fast>,
    fast_small: Option<Fast>,
    /// Reading the daemon (metrics, status) with the connections tracked, back on fullmesh.
    readings: Option<Readings>,
}

/// The daemon's achieved sampling period over a stretch of time, from its
/// `sample_period_seconds{wanted}` histogram: ticks observed, mean, median and 90th
/// percentile (the upper bound of the bucket holding it), ms.
#[derive(Debug, Clone, Copy)]
struct Periods {
    ticks: f64,
    mean_ms: f64,
    p50_ms: f64,
    p90_ms: f64,
}

/// The daemon sampling a set of connections fast (active-standby, 20 ms): its CPU and RSS over
/// 5 s, the connections and subflows it samples, the achieved period, samples it replaced
/// before their connection took them.
#[derive(Debug, Clone, Copy)]
struct Fast {
    conns: usize,
    cpu_pct: f64,
    rss_kb: u64,
    sampled: (f64, f64),
    periods: Option<Periods>,
    conflated: f64,
}

/// The daemon's metric samples.
fn metrics(ns: &Netns) -> std::collections::BTreeMap<String, f64> {
    integration::metrics::samples(&integration::metrics::scrape(ns, METRICS_PORT))
}

/// The achieved period for `wanted` (seconds, as the label prints it) between two readings of
/// the metrics.
fn periods(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    wanted: &str,
) -> Option<Periods> {
    let name = "mptcp_pmd_sample_period_seconds";
    let delta =
        |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let ticks = delta(&format!("{name}_count{{wanted=\"{wanted}\"}}"));
    if ticks <= 0.0 {
        return None;
    }
    let sum = delta(&format!("{name}_sum{{wanted=\"{wanted}\"}}"));
    let suffix = format!("\",wanted=\"{wanted}\"}}");
    let prefix = format!("{name}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = after
        .keys()
        .filter_map(|k| {
            let le = k.strip_prefix(&prefix)?.strip_suffix(&suffix)?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, delta(k)))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let q = |f: f64| {
        buckets
            .iter()
            .find(|(_, n)| *n >= f * ticks)
            .map_or(f64::NAN, |(b, _)| b * 1e3)
    };
    Some(Periods {
        ticks,
        mean_ms: sum / ticks * 1e3,
        p50_ms: q(0.5),
        p90_ms: q(0.9),
    })
}

/// The daemon (already sampling the connections at 20 ms) over 5 s.
fn fast_reading(ns: &Netns, p: &integration::daemon::Daemon, conns: usize) -> Fast {
    // CPU between the scrapes (a scrape builds the daemon's status, see the rtt-based row).
    let m0 = metrics(ns);
    let c0 = p.cpu_s();
    std::thread::sleep(Duration::from_secs(5));
    let cpu_pct = (p.cpu_s() - c0) / 5.0 * 100.0;
    let m1 = metrics(ns);
    let get = |k: &str| m1.get(k).copied().unwrap_or(0.0);
    let conflated = get("mptcp_pmd_samples_conflated_total")
        - m0.get("mptcp_pmd_samples_conflated_total")
            .copied()
            .unwrap_or(0.0);
    Fast {
        conns,
        cpu_pct,
        rss_kb: p.status_kb("VmRSS"),
        sampled: (
            get("mptcp_pmd_sampled_connections"),
            get("mptcp_pmd_sampled_subflows"),
        ),
        periods: periods(&m0, &m1, "0.02"),
        conflated,
    }
}

/// One sampling round as the daemon's poller runs it when a policy reads samples (rtt-based):
/// the connections, then the subflows in windows of `WINDOW_SUBFLOWS` cut from the last
/// dump's pairs; each poll's time in ms (connections first).
fn sampling_round(ns: &Netns) -> Vec<f64> {
    ns.exec(|| {
        let mut d = DiagSocket::open().expect("sock_diag");
        let mut pairs: Vec<PortPair> = d
            .subflows()
            .expect("subflows")
            .items
            .iter()
            .map(|s| (s.key.local.port(), s.key.remote.port()))
            .collect();
        let windows = port_windows(&mut pairs, WINDOW_SUBFLOWS);
        let mut out = Vec::new();
        let t0 = Instant::now();
        let (_, v6) = d.mptcp_connections_v6().expect("connections");
        out.push(ms(t0.elapsed()));
        if windows.len() <= 1 {
            // One window: the daemon takes a whole snapshot instead (connections included).
            let t0 = Instant::now();
            std::hint::black_box(d.snapshot().expect("snapshot").conns.len());
            return vec![ms(t0.elapsed())];
        }
        for w in &windows {
            let t0 = Instant::now();
            std::hint::black_box(d.subflows_in(w, v6).expect("window").items.len());
            out.push(ms(t0.elapsed()));
        }
        out
    })
    .unwrap()
}

/// One lookup round as the daemon's fast sampling runs it: every subflow of the namespace
/// looked up by its 4-tuple (batched exact lookups, no walk of the kernel's table). Returns
/// (wall ms, user ms, sys ms, found) of the lookups alone; the keys come from a dump first.
fn lookup_round(ns: &Netns) -> (f64, f64, f64, usize) {
    ns.exec(|| {
        let mut d = DiagSocket::open().expect("sock_diag");
        let keys: Vec<LookupKey> = d
            .subflows()
            .expect("subflows")
            .items
            .iter()
            .map(|s| LookupKey {
                key: s.key,
                if_index: s.if_index,
            })
            .collect();
        let (u0, s0) = thread_cpu_ms();
        let t0 = Instant::now();
        let mut found = 0;
        d.lookup_subflows(&keys, |_, a| {
            found += usize::from(matches!(a, Answer::Found(_)))
        })
        .expect("lookups");
        let wall = ms(t0.elapsed());
        let (u1, s1) = thread_cpu_ms();
        (wall, u1 - u0, s1 - s0, found)
    })
    .unwrap()
}

/// User and system CPU of the calling thread so far, ms.
fn thread_cpu_ms() -> (f64, f64) {
    // SAFETY: getrusage on the calling thread, into a zeroed struct it fills.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 * 1e3 + v.tv_usec as f64 / 1e3;
    (t(u.ru_utime), t(u.ru_stime))
}

/// The daemon's sock_diag polls so far: (count, sum s, polls of at most 25.6 ms) from its
/// `sock_diag_poll_seconds` histogram.
fn daemon_polls(ns: &Netns) -> (f64, f64, f64) {
    let body = integration::metrics::scrape(ns, METRICS_PORT);
    let m = integration::metrics::samples(&body);
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    (
        get("mptcp_pmd_sock_diag_poll_seconds_count"),
        get("mptcp_pmd_sock_diag_poll_seconds_sum"),
        get("mptcp_pmd_sock_diag_poll_seconds_bucket{le=\"0.0256\"}"),
    )
}

/// Time of the daemon's periodic poll when no policy reads samples (fullmesh, ndiffports): the
/// MPTCP dumps alone, as `DiagSocket::connections_snapshot` runs them.
fn light_poll(ns: &Netns) -> f64 {
    ns.exec(|| {
        let mut d = DiagSocket::open().expect("sock_diag");
        let t0 = Instant::now();
        let snap = d.connections_snapshot().expect("connections snapshot");
        std::hint::black_box(snap.conns.len());
        ms(t0.elapsed())
    })
    .unwrap()
}

/// Seven readings of `f`, sorted.
fn seven(f: impl FnMut() -> f64) -> Vec<f64> {
    sorted(&std::iter::repeat_with(f).take(7).collect::<Vec<_>>())
}

fn measure(quick: bool) -> ScaleRow {
    let n = if quick { 1000 } else { 10_000 };
    let b = bed(Mode::Pmd, 2, None, "");
    let p = b.pmd.as_ref().unwrap();
    let mut row = ScaleRow {
        conns: n,
        baseline_rss_kb: p.status_kb("VmRSS"),
        ..Default::default()
    };
    row.empty_poll_ms = seven(|| count_meshed(&b.t.client, 2).2);
    let started = Instant::now();
    let threads = 8;
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let dst = b.dst(HOLD_PORT);
            let per = n / threads + usize::from(k < n % threads);
            b.t.client
                .exec_bg(move || {
                    let mut v = Vec::with_capacity(per);
                    for _ in 0..per {
                        let one = || -> std::io::Result<TcpStream> {
                            let mut s = mptcp::connect(dst, None)?;
                            s.set_read_timeout(Some(Duration::from_secs(30)))?;
                            s.write_all(b"x")?;
                            let mut k = [0u8; 1];
                            s.read_exact(&mut k)?;
                            Ok(s)
                        };
                        match one() {
                            Ok(s) => v.push(s),
                            Err(e) => eprintln!("scale: a connection failed: {e}"),
                        }
                    }
                    v
                })
                .unwrap()
        })
        .collect();
    let mut conns: Vec<TcpStream> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    row.opened_s = started.elapsed().as_secs_f64();
    let n = conns.len();
    row.conns = n;
    let mut last = (0, 0, 0.0);
    let ok = wait_for(Duration::from_secs(180), || {
        last = count_meshed(&b.t.client, 2);
        (last.1 >= n).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    row.meshed = count_meshed(&b.t.client, 2).1;
    row.mesh_s = started.elapsed().as_secs_f64();
    if ok.is_none() {
        eprintln!("scale: only {} of {n} meshed ({last:?})", row.meshed);
    }
    std::thread::sleep(Duration::from_secs(3));
    row.rss_kb = p.status_kb("VmRSS");
    row.hwm_kb = p.status_kb("VmHWM");
    row.poll_ms = seven(|| count_meshed(&b.t.client, 2).2);
    row.light_poll_ms = seven(|| light_poll(&b.t.client));
    diag_breakdown(&b.t.client);
    smaps_summary(p.pid().unwrap_or(0));
    // The daemon's own cost with n connections open and idle (its sock_diag polling).
    let c0 = p.cpu_s();
    std::thread::sleep(Duration::from_secs(5));
    row.busy_cpu_pct = (p.cpu_s() - c0) / 5.0 * 100.0;
    for _ in 0..3 {
        let r = sampling_round(&b.t.client);
        eprintln!("scale: sampling round polls (ms): {r:.1?}");
        row.rounds_ms.push(r);
    }
    for _ in 0..3 {
        let l = lookup_round(&b.t.client);
        eprintln!(
            "scale: lookup round: {:.1} ms wall, {:.1} ms user, {:.1} ms sys, {} found",
            l.0, l.1, l.2, l.3
        );
        row.lookup_rounds.push(l);
    }
    // The daemon's policy, switched by a new config and SIGHUP.
    let reload = |policy: &str| {
        std::fs::write(p.config_path(), pmd_config(policy, "")).unwrap();
        p.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_secs(3));
    };
    // The daemon itself switched to rtt-based: its own polls, RSS and CPU.
    reload("rtt-based");
    // The CPU is read between the scrapes: a scrape of /metrics makes the daemon build its
    // status (hundreds of ms at this size), which is not the cost of sampling.
    let (polls0, m0) = (daemon_polls(&b.t.client), metrics(&b.t.client));
    let c0 = p.cpu_s();
    std::thread::sleep(Duration::from_secs(5));
    row.rtt_cpu_pct = (p.cpu_s() - c0) / 5.0 * 100.0;
    let polls1 = daemon_polls(&b.t.client);
    row.rtt_period = periods(&m0, &metrics(&b.t.client), "1");
    row.rtt_rss_kb = p.status_kb("VmRSS");
    let n_polls = polls1.0 - polls0.0;
    row.rtt_polls = (
        n_polls,
        (polls1.1 - polls0.1) / n_polls.max(1.0) * 1e3,
        n_polls - (polls1.2 - polls0.2),
    );
    row.rtt_hwm_kb = p.status_kb("VmHWM");
    // active-standby: every connection's subflows sampled every 20 ms (as many as the daemon
    // manages: the period stretches).
    reload("active-standby");
    let f = fast_reading(&b.t.client, p, n);
    eprintln!("scale: active-standby with {n}: {f:?}");
    row.fast_big = Some(f);
    // What reading the daemon costs with the connections tracked, on the default policy
    // (fullmesh), after the peaks above are read so that the readers' memory is not in them;
    // then rtt-based again, as the closes and the idle readings below have always run.
    reload("fullmesh");
    row.readings = Some(scrape::measure(&b, quick));
    reload("rtt-based");
    conns.clear();
    {
        let mut h = b.hold.lock().unwrap();
        let _ = h.kill();
        let _ = h.wait();
    }
    wait_for(Duration::from_secs(60), || {
        (count_meshed(&b.t.client, 2).0 == 0).then_some(())
    });
    // Let the daemon see the closes and its poller notice there is nothing left.
    std::thread::sleep(Duration::from_secs(4));
    row.rss_after_kb = p.status_kb("VmRSS");
    let (s0, c0) = (p.ctxt_switches(), p.cpu_s());
    std::thread::sleep(Duration::from_secs(5));
    row.idle_switches = p.ctxt_switches() - s0;
    row.idle_cpu_s = p.cpu_s() - c0;
    // Ten connections on active-standby (the daemon is back to rtt-based: switch again).
    row.fast_small = Some(fast_few(&b, p, 10));
    eprintln!("scale: done");
    row
}

/// `k` connections to the echo server, meshed, the daemon switched to active-standby: its
/// fast sampling over 5 s.
fn fast_few(b: &crate::bed::Bed, p: &integration::daemon::Daemon, k: usize) -> Fast {
    let dst = b.dst(crate::bed::ECHO_PORT);
    let conns: Vec<TcpStream> = (0..k)
        .filter_map(|_| {
            b.t.client
                .exec(move || {
                    let mut s = mptcp::connect(dst, None)?;
                    s.set_read_timeout(Some(Duration::from_secs(5)))?;
                    mptcp::ping(&mut s, b"x")?;
                    Ok::<_, std::io::Error>(s)
                })
                .ok()?
                .ok()
        })
        .collect();
    wait_for(Duration::from_secs(30), || {
        (count_meshed(&b.t.client, 2).1 >= conns.len()).then_some(())
    });
    std::fs::write(p.config_path(), pmd_config("active-standby", "")).unwrap();
    p.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_secs(3));
    let f = fast_reading(&b.t.client, p, conns.len());
    eprintln!("scale: active-standby with {k}: {f:?}");
    f
}

/// Where the time of one snapshot goes: each dump alone, and user vs system CPU of the thread
/// (printed to stderr; for the analysis in BENCHMARKS.md).
fn diag_breakdown(ns: &Netns) {
    let lines = ns
        .exec(|| {
            fn cpu() -> (f64, f64) {
                // SAFETY: getrusage on the calling thread.
                let mut u: libc::rusage = unsafe { std::mem::zeroed() };
                unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
                let t = |v: libc::timeval| v.tv_sec as f64 * 1e3 + v.tv_usec as f64 / 1e3;
                (t(u.ru_utime), t(u.ru_stime))
            }
            let mut d = DiagSocket::open().expect("sock_diag");
            let mut out = Vec::new();
            for what in ["mptcp (v4+v6)", "tcp subflows (v4+v6)", "snapshot"] {
                let (u0, s0) = cpu();
                let t0 = Instant::now();
                let n = match what {
                    "mptcp (v4+v6)" => d.mptcp_connections().map(|x| x.items.len()).unwrap_or(0),
                    "tcp subflows (v4+v6)" => d.subflows().map(|x| x.items.len()).unwrap_or(0),
                    _ => d.snapshot().map(|x| x.conns.len()).unwrap_or(0),
                };
                let wall = ms(t0.elapsed());
                let (u1, s1) = cpu();
                out.push(format!(
                    "diag {what}: {n} items, {wall:.1} ms wall, {:.1} ms user, {:.1} ms sys",
                    u1 - u0,
                    s1 - s0
                ));
            }
            out
        })
        .unwrap();
    for l in lines {
        eprintln!("{l}");
    }
}

/// The daemon's largest memory mappings by RSS, its thread count (stderr).
fn smaps_summary(pid: u32) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut maps: Vec<(u64, String)> = Vec::new();
    let mut cur = String::new();
    for l in s.lines() {
        if l.split_whitespace().next().is_some_and(|w| {
            w.contains('-') && w.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        }) {
            cur = l.to_string();
        } else if let Some(v) = l.strip_prefix("Rss:") {
            let kb: u64 = v
                .split_whitespace()
                .next()
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            maps.push((kb, cur.clone()));
        }
    }
    maps.sort_by_key(|m| std::cmp::Reverse(m.0));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    eprintln!("daemon threads: {threads}; largest mappings by RSS:");
    for (kb, m) in maps.iter().take(8) {
        eprintln!("  {kb} kB  {m}");
    }
}

/// The rows of one fast-sampling reading.
fn render_fast(md: &mut String, f: &Fast) {
    let _ = writeln!(
        md,
        "| daemon on active-standby (SIGHUP), {} connections ({:.0} connections, {:.0} subflows sampled, asked every 20 ms): CPU, RSS | {:.1} %, {:.1} MiB | | |",
        f.conns,
        f.sampled.0,
        f.sampled.1,
        f.cpu_pct,
        f.rss_kb as f64 / 1024.0
    );
    match &f.periods {
        Some(pr) => {
            let _ = writeln!(md, "| achieved sampling period, {} connections (asked 20 ms; per tick, the longest since a connection's previous sampling; its histogram over 5 s): mean, median, p90; samples replaced before taken | {:.1} ms, {:.1} ms, {:.1} ms ({:.0} ticks); {:.0} replaced | | |", f.conns, pr.mean_ms, pr.p50_ms, pr.p90_ms, pr.ticks, f.conflated);
        }
        None => {
            let _ = writeln!(
                md,
                "| achieved sampling period, {} connections (asked 20 ms) | no tick observed | | |",
                f.conns
            );
        }
    }
}

fn render(s: &ScaleRow) -> String {
    let mut md = String::new();
    let poll = pct(&s.poll_ms, 0.5);
    let _ = writeln!(md, "## c. Scale (mptcp-pmd)\n\n{} MPTCP connections opened from 8 threads (2 links: {} subflows in the client namespace) and held open.\n", s.conns, 2 * s.conns);
    let _ = writeln!(
        md,
        "| metric | value | target | verdict |\n|---|---:|---:|---|"
    );
    let _ = writeln!(md, "| connections opened in | {:.1} s | | |", s.opened_s);
    let _ = writeln!(
        md,
        "| fully meshed (sock_diag) | {} of {} after {:.1} s | all | {} |",
        s.meshed,
        s.conns,
        s.mesh_s,
        verdict(s.meshed >= s.conns)
    );
    let _ = writeln!(
        md,
        "| daemon RSS at start | {:.1} MiB | | |",
        s.baseline_rss_kb as f64 / 1024.0
    );
    let _ = writeln!(
        md,
        "| daemon RSS, {} tracked | {:.1} MiB (peak {:.1}) | <= 32 MiB | {} |",
        s.conns,
        s.rss_kb as f64 / 1024.0,
        s.hwm_kb as f64 / 1024.0,
        verdict(s.rss_kb <= 32 * 1024)
    );
    let light = pct(&s.light_poll_ms, 0.5);
    let _ = writeln!(md, "| one periodic poll, fullmesh/ndiffports (MPTCP dumps only), median of 7 | {:.1} ms (min {:.1}, max {:.1}) | <= 25 ms | {} |", light, s.light_poll_ms.first().unwrap_or(&f64::NAN), s.light_poll_ms.last().unwrap_or(&f64::NAN), verdict(light <= 25.0));
    let slowest: Vec<f64> = sorted(
        &s.rounds_ms
            .iter()
            .map(|r| r.iter().copied().fold(0.0, f64::max))
            .collect::<Vec<_>>(),
    );
    let totals: Vec<f64> = sorted(
        &s.rounds_ms
            .iter()
            .map(|r| r.iter().sum())
            .collect::<Vec<_>>(),
    );
    let polls = s.rounds_ms.first().map_or(0, Vec::len);
    let worst = pct(&slowest, 0.5);
    let _ = writeln!(md, "| one poll with rtt-based: slowest poll of a sampling round ({polls} polls: the connections, then {} subflow windows of <= {WINDOW_SUBFLOWS}), median of 3 rounds | {worst:.1} ms (rounds {}) | <= 25 ms | {} |", polls.saturating_sub(1), list(&slowest, 1), verdict(worst <= 25.0));
    let _ = writeln!(md, "| one sampling round (every subflow once, spread over the period), all its polls, median of 3 | {:.1} ms of polls | | |", pct(&totals, 0.5));
    let (n_polls, mean_ms, over) = s.rtt_polls;
    let _ = writeln!(md, "| the daemon itself on rtt-based (SIGHUP): its polls over 5 s, their mean, how many took over 25.6 ms (its histogram) | {n_polls:.0} polls, mean {mean_ms:.1} ms, {over:.0} over | | |");
    let rtt_rss = s.rtt_rss_kb as f64 / 1024.0;
    let _ = writeln!(
        md,
        "| daemon RSS and CPU on rtt-based (every subflow sampled each second), {} tracked | {:.1} MiB (peak {:.1}), {:.1} % | <= 40 MiB, <= 8 % | {} |",
        s.conns,
        rtt_rss,
        s.rtt_hwm_kb as f64 / 1024.0,
        s.rtt_cpu_pct,
        verdict(rtt_rss <= 40.0 && s.rtt_cpu_pct <= 8.0),
    );
    if let Some(pr) = &s.rtt_period {
        let _ = writeln!(md, "| rtt-based's achieved sampling period (asked 1 s; per tick, the longest since a connection's previous sampling; its histogram over 5 s): mean, median, p90 | {:.0} ms, {:.0} ms, {:.0} ms ({:.0} ticks) | | |", pr.mean_ms, pr.p50_ms, pr.p90_ms, pr.ticks);
    }
    for f in [&s.fast_big, &s.fast_small].into_iter().flatten() {
        render_fast(&mut md, f);
    }
    let _ = writeln!(md, "| one full snapshot (MPTCP dumps, then every subflow at once: adoption, resync, status), median of 7 | {:.1} ms (min {:.1}, max {:.1}) | | |", poll, s.poll_ms.first().unwrap_or(&f64::NAN), s.poll_ms.last().unwrap_or(&f64::NAN));
    let _ = writeln!(
        md,
        "| full snapshot with no connection in the namespace, median of 7 | {:.1} ms | | |",
        pct(&s.empty_poll_ms, 0.5)
    );
    let _ = writeln!(
        md,
        "| daemon CPU with {} idle connections (fullmesh, 1 s poll) | {:.1} % | | |",
        s.conns, s.busy_cpu_pct
    );
    let after = s.rss_after_kb as f64 / 1024.0;
    let start = s.baseline_rss_kb as f64 / 1024.0;
    let _ = writeln!(
        md,
        "| daemon RSS 4 s after all closed (on rtt-based) | {after:.1} MiB | <= {:.1} MiB (start + 2) | {} |",
        start + 2.0,
        verdict(after <= start + 2.0)
    );
    let _ = writeln!(
        md,
        "| context switches over 5 s idle, no connections | {} (CPU {:.2} s) | 0 periodic | {} |",
        s.idle_switches,
        s.idle_cpu_s,
        verdict(s.idle_switches <= 2)
    );
    if let Some(r) = &s.readings {
        scrape::render(r, &mut md);
    }
    let _ = writeln!(md);
    md
}
