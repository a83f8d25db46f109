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
use netlink_actor::actors::sampler::SLICE_SUBFLOWS;
use netlink_actor::sock_diag::{Answer, DiagSocket, LookupKey};

use crate::bed::{bed, count_meshed, pmd_config, Mode, HOLD_PORT, METRICS_PORT};
use crate::report::Section;
use crate::scrape::{self, Readings};
use crate::stats::{ms, pct, sorted, verdict};

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
    /// Every subflow looked up by 4-tuple: (wall, user, sys ms, found), three times.
    lookup_rounds: Vec<(f64, f64, f64, usize)>,
    /// The daemon's sampling ticks on rtt-based and active-standby (they are read once, after
    /// both): count, mean ms, ticks held back.
    ticks: (f64, f64, f64),
    /// The daemon itself on rtt-based: RSS and CPU.
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
/// 5 s, the connections and subflows it samples, the achieved period, the ticks it held back
/// because the event loop had not consumed the previous ones.
#[derive(Debug, Clone, Copy, Default)]
struct Fast {
    conns: usize,
    cpu_pct: f64,
    rss_kb: u64,
    sampled: (f64, f64),
    periods: Option<Periods>,
    held_back: f64,
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

/// The daemon's CPU over 5 s and then its RSS. No /metrics scrape in between: a scrape
/// makes the daemon build its whole status (at 10 000 connections a sock_diag snapshot of
/// every subflow and a copy of every connection, ~25 MB allocated for a moment), whose cost
/// and heap fragmentation are not those of sampling.
fn cpu_and_rss(p: &integration::daemon::Daemon) -> (f64, u64) {
    let c0 = p.cpu_s();
    std::thread::sleep(Duration::from_secs(5));
    let cpu = (p.cpu_s() - c0) / 5.0 * 100.0;
    (cpu, p.status_kb("VmRSS"))
}

/// The fast-sampling figures of the metrics `m1` (since `m0`, if given).
fn fast_of(
    conns: usize,
    (cpu_pct, rss_kb): (f64, u64),
    m0: Option<&std::collections::BTreeMap<String, f64>>,
    m1: &std::collections::BTreeMap<String, f64>,
) -> Fast {
    let empty = std::collections::BTreeMap::new();
    let m0 = m0.unwrap_or(&empty);
    let get =
        |m: &std::collections::BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0);
    Fast {
        conns,
        cpu_pct,
        rss_kb,
        sampled: (
            get(m1, "mptcp_pmd_sampled_connections"),
            get(m1, "mptcp_pmd_sampled_subflows"),
        ),
        periods: periods(m0, m1, "0.02"),
        held_back: get(m1, "mptcp_pmd_sample_ticks_held_back_total")
            - get(m0, "mptcp_pmd_sample_ticks_held_back_total"),
    }
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
    // The daemon itself switched to rtt-based (every subflow sampled each second), then to
    // active-standby (every 20 ms, as far as it manages: the period stretches): CPU and RSS of
    // each, then one scrape for what its metrics say of both (see `cpu_and_rss`).
    reload("rtt-based");
    (row.rtt_cpu_pct, row.rtt_rss_kb) = cpu_and_rss(p);
    row.rtt_hwm_kb = p.status_kb("VmHWM");
    reload("active-standby");
    let fast = cpu_and_rss(p);
    let m = metrics(&b.t.client);
    row.rtt_period = periods(&std::collections::BTreeMap::new(), &m, "1");
    let f = fast_of(n, fast, None, &m);
    eprintln!("scale: active-standby with {n}: {f:?}");
    row.fast_big = Some(f);
    let ticks = m
        .get("mptcp_pmd_sample_tick_seconds_count")
        .copied()
        .unwrap_or(0.0);
    row.ticks = (
        ticks,
        m.get("mptcp_pmd_sample_tick_seconds_sum")
            .copied()
            .unwrap_or(0.0)
            / ticks.max(1.0)
            * 1e3,
        f.held_back,
    );
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
    // Ten connections: a scrape costs little, the readings are taken between two.
    let m0 = metrics(&b.t.client);
    let cr = cpu_and_rss(p);
    let f = fast_of(conns.len(), cr, Some(&m0), &metrics(&b.t.client));
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
            let _ = writeln!(md, "| achieved sampling period, {} connections (asked 20 ms; per tick, the longest since a connection's previous sampling; its histogram since the switch): mean, median, p90 (bucket bounds); ticks held back (event loop behind) | {:.1} ms, {:.1} ms, {:.1} ms ({:.0} ticks); {:.0} held back | | |", f.conns, pr.mean_ms, pr.p50_ms, pr.p90_ms, pr.ticks, f.held_back);
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
    let walls: Vec<f64> = sorted(&s.lookup_rounds.iter().map(|l| l.0).collect::<Vec<_>>());
    let sys: Vec<f64> = sorted(&s.lookup_rounds.iter().map(|l| l.2).collect::<Vec<_>>());
    let found = s.lookup_rounds.first().map_or(0, |l| l.3);
    let per_us = pct(&sys, 0.5) * 1e3 / found.max(1) as f64;
    let _ = writeln!(md, "| every subflow looked up by 4-tuple (the sampler's batched exact lookups, {found} found; no walk of the kernel's table), median of 3: wall, kernel time, kernel time per subflow | {:.1} ms, {:.1} ms, {per_us:.2} µs | | |", pct(&walls, 0.5), pct(&sys, 0.5));
    let (ticks, tick_ms, held) = s.ticks;
    let _ = writeln!(md, "| one sampling tick of the daemon (<= {SLICE_SUBFLOWS} lookups), on rtt-based and active-standby: mean of its sample_tick_seconds; ticks held back because the event loop had not consumed the previous ones | {tick_ms:.1} ms ({ticks:.0} ticks); {held:.0} held back | <= 25 ms | {} |", verdict(ticks > 0.0 && tick_ms <= 25.0));
    let rtt_rss = s.rtt_rss_kb as f64 / 1024.0;
    let _ = writeln!(
        md,
        "| daemon RSS and CPU on rtt-based (SIGHUP; every subflow sampled each second), {} tracked, over 5 s from 3 s after the switch | {:.1} MiB (peak {:.1}), {:.1} % | <= 40 MiB, <= 8 % | {} |",
        s.conns,
        rtt_rss,
        s.rtt_hwm_kb as f64 / 1024.0,
        s.rtt_cpu_pct,
        verdict(rtt_rss <= 40.0 && s.rtt_cpu_pct <= 8.0),
    );
    if let Some(pr) = &s.rtt_period {
        let _ = writeln!(md, "| rtt-based's achieved sampling period (asked 1 s; per tick, the longest since a connection's previous sampling; its histogram over the phase): mean, median, p90 (bucket bounds) | {:.0} ms, {:.0} ms, {:.0} ms ({:.0} ticks) | | |", pr.mean_ms, pr.p50_ms, pr.p90_ms, pr.ticks);
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
