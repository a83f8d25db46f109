//! End to end: the real `mptcp-pmd` binary with the rtt-based policy, against the real kernel.
//!
//! One MPTCP connection from a two-link client (userspace PM, the daemon) to a sink server
//! carries a continuous bulk upload. Delay is made the only way this kernel allows (no netem):
//! a 2 mbit/s tbf on client link 1 queues the upload, which lifts that subflow's srtt from
//! ~0.05 ms to ~100-300 ms. What counts is what the kernel reports: the local backup flag (`b` in
//! `ss -tni`'s tcp-ulp-mptcp `flags:`) and the subflows' `rtt:`.
//!
//! What the kernel (6.18) does with a backup subflow varies, and decides how it comes back.
//! Under a bulk upload a subflow whose local backup flag is set sometimes keeps carrying data
//! (the scheduler does not pick it, but when its own ACKs free send space it pushes the next
//! chunk on itself), so its srtt stays *measured*; sometimes it stops, and its srtt goes
//! *stale*: then only the probe can bring it back. The test does not assume either: it checks
//! the daemon against what `ss` shows. With `hold_s: 2`, `probe_s: 4`, `poll.interval_ms: 200`:
//! 1. bulk on, shape link 1: its subflow gets the backup flag within hold + a margin;
//! 2. still shaped, bulk on, for probe + hold + 2 s: whenever it is active again (a probe), it
//!    is demoted again within hold + a margin, and it ends backup;
//! 3. pause the upload, let link 1 drain, unshape: restored within probe + a margin (by the
//!    probe if the drain's last samples were slow, by the restore rule if they were fast);
//! 4. resume: it carries data with a low srtt and stays active for 3 x (probe + hold);
//! 5. shape again: demoted again; unshape with the upload running: restored within probe + a
//!    margin (by measurement if it kept carrying data, else by the probe), stays active;
//! 6. every restore note of the daemon matches one flag change seen by `ss`, and every probe
//!    hit a subflow on which `ss` had seen no acknowledged data for about `probe_s`.
//!
//! The link-0 subflow never gets the flag. The measured numbers are printed (`--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration::daemon::Daemon;
use integration::observe::parse_ss;
use integration::{kernel_tests_enabled, mptcp, wait_for, Tbf, TopoOpts, Topology};

const PORT: u16 = 5301;
const HOLD_S: u64 = 2;
const PROBE_S: u64 = 4;

const CONFIG: &str = "policy: rtt-based
rtt_based:
  hold_s: 2
  probe_s: 4
poll:
  interval_ms: 200
";

/// 2 mbit/s; the queue may hold 300 ms of data, so a bulk upload sits in it.
const SLOW: Tbf = Tbf {
    rate_kbit: 2000,
    burst_bytes: 5000,
    latency_ms: 300,
};

/// One look at the connection's two subflows.
#[derive(Debug, Clone, Copy)]
struct Obs {
    /// Local backup flag of the link-0 / link-1 subflow (None: that subflow is not there).
    backup: [Option<bool>; 2],
    /// srtt in ms of the link-0 / link-1 subflow, as `ss` prints it.
    rtt_ms: [Option<f64>; 2],
    /// `bytes_acked` of the link-0 / link-1 subflow.
    acked: [Option<u64>; 2],
}

/// The value of `<key>:` in the tcp_info line of the subflow whose local address is `local`, from
/// `ss -tniH` output (e.g. `rtt` gives `<srtt>/<rttvar>`).
fn ss_field(out: &str, local: IpAddr, key: &str) -> Option<String> {
    let mut mine = false;
    for line in out.lines() {
        if !line.starts_with(char::is_whitespace) {
            mine = line
                .split_whitespace()
                .nth(2)
                .and_then(|l| l.rsplit_once(':'))
                .is_some_and(|(host, _)| host.split('%').next() == Some(&local.to_string()));
            continue;
        }
        if mine && line.contains("tcp-ulp-mptcp") {
            let prefix = format!("{key}:");
            return line
                .split_whitespace()
                .find_map(|w| w.strip_prefix(prefix.as_str()))
                .map(str::to_string);
        }
    }
    None
}

/// Every look taken, in order: the kernel's side of the story, checked against the daemon's
/// notes at the end.
static TIMELINE: Mutex<Vec<(Instant, Obs)>> = Mutex::new(Vec::new());

fn observe(t: &Topology) -> Obs {
    let out = t
        .client
        .run(&["ss", "-tniH", "state", "established"])
        .unwrap_or_default();
    let conns = parse_ss(&out);
    let mut obs = Obs {
        backup: [None; 2],
        rtt_ms: [None; 2],
        acked: [None; 2],
    };
    for sfs in conns.values() {
        for sf in sfs.iter().filter(|s| s.remote.port() == PORT) {
            for i in 0..2 {
                if sf.local.ip() == t.client_addr(i) {
                    obs.backup[i] = Some(sf.flags.contains('b'));
                    let a = t.client_addr(i);
                    obs.rtt_ms[i] =
                        ss_field(&out, a, "rtt").and_then(|v| v.split('/').next()?.parse().ok());
                    obs.acked[i] = ss_field(&out, a, "bytes_acked").and_then(|v| v.parse().ok());
                }
            }
        }
    }
    TIMELINE.lock().unwrap().push((Instant::now(), obs));
    obs
}

/// Every backup -> active transition of the link-1 subflow seen so far, with how long `ss` had
/// shown no `bytes_acked` progress on it at that moment.
fn restores() -> Vec<(Instant, Duration)> {
    let tl = TIMELINE.lock().unwrap();
    let mut out = Vec::new();
    let mut last_move: Option<Instant> = None;
    let mut prev: Option<&Obs> = None;
    for (at, o) in tl.iter() {
        if let Some(p) = prev {
            // Data acknowledged in the very look that shows the flag cleared may have been sent
            // after the clear: only earlier progress counts against staleness.
            if p.backup[1] == Some(true) && o.backup[1] == Some(false) {
                let since = last_move.unwrap_or(tl[0].0);
                out.push((*at, at.saturating_duration_since(since)));
            }
            if p.acked[1] != o.acked[1] {
                last_move = Some(*at);
            }
        }
        prev = Some(o);
    }
    out
}

/// Polls until `cond` holds on an observation, checking on every one that the link-0 subflow
/// is there and never backup. Returns the time it took and the matching observation; records
/// every link-1 srtt seen into `rtts`.
fn until(
    t: &Topology,
    d: &Daemon,
    what: &str,
    timeout: Duration,
    rtts: &mut Vec<f64>,
    cond: impl Fn(&Obs) -> bool,
) -> (Duration, Obs) {
    let start = Instant::now();
    let mut last = None;
    let found = wait_for(timeout, || {
        let o = observe(t);
        assert_eq!(
            o.backup[0],
            Some(false),
            "{what}: the link-0 subflow must stay there and active: {o:?}\n{}",
            d.log()
        );
        rtts.extend(o.rtt_ms[1]);
        last = Some(o);
        cond(&o).then_some(o)
    });
    match found {
        Some(o) => (start.elapsed(), o),
        None => panic!(
            "{what}: not within {timeout:?}; last seen {last:?}\nlog:\n{}",
            d.log()
        ),
    }
}

/// The rtt-based judge's decisions in the daemon's log (one line each, with their reason).
fn notes(d: &Daemon) -> Vec<String> {
    const JUDGE: [&str; 6] = [
        "slow",
        "recovered",
        "probe",
        "last-active",
        "lossy",
        "cooldown-over",
    ];
    d.log()
        .lines()
        .filter(|l| l.contains(" decision"))
        .filter(|l| JUDGE.iter().any(|c| l.contains(&format!("reason: {c}"))))
        .map(str::to_string)
        .collect()
}

fn summary(rtts: &[f64]) -> String {
    if rtts.is_empty() {
        return "none".into();
    }
    let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
    let max = rtts.iter().copied().fold(0.0, f64::max);
    format!("min {min:.3} ms, max {max:.3} ms over {} looks", rtts.len())
}

/// What the bulk writer does.
const RUN: u8 = 0;
const PAUSE: u8 = 1;
const STOP: u8 = 2;

/// Watches for `dur`: the link-0 subflow stays active, the link-1 one keeps `backup1`.
/// Returns the link-1 observations.
fn hold_steady(t: &Topology, d: &Daemon, what: &str, dur: Duration, backup1: bool) -> Vec<Obs> {
    let end = Instant::now() + dur;
    let mut seen = Vec::new();
    while Instant::now() < end {
        let o = observe(t);
        assert_eq!(
            o.backup[0],
            Some(false),
            "{what}: link 0: {o:?}\n{}",
            d.log()
        );
        assert_eq!(
            o.backup[1],
            Some(backup1),
            "{what}: link 1: {o:?}\n{}",
            d.log()
        );
        seen.push(o);
        std::thread::sleep(Duration::from_millis(100));
    }
    seen
}

/// Bytes acknowledged on link 1 between the first and last observation, and the rate.
fn acked_span(seen: &[Obs]) -> (u64, f64) {
    let first = seen.first().and_then(|o| o.acked[1]).unwrap_or(0);
    let last = seen.last().and_then(|o| o.acked[1]).unwrap_or(0);
    let bytes = last.saturating_sub(first);
    let secs = (seen.len().max(2) - 1) as f64 * 0.1;
    (bytes, bytes as f64 / secs / 1000.0)
}

fn rtts(seen: &[Obs]) -> Vec<f64> {
    seen.iter().filter_map(|o| o.rtt_ms[1]).collect()
}

#[test]
fn slow_link_is_demoted_then_restored_by_probe_or_fresh_measurement() {
    if !kernel_tests_enabled("slow_link_is_demoted_then_restored_by_probe_or_fresh_measurement") {
        return;
    }
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        ..Default::default()
    })
    .expect("topology");
    let any = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), PORT);
    let l = t.server.exec(move || mptcp::listen(any)).unwrap().unwrap();
    t.server.exec_bg(move || mptcp::sink_server(l)).unwrap();

    let d = Daemon::start(&t.client, CONFIG);
    d.wait_ready();

    let dst = SocketAddr::new(t.server_addr(0), PORT);
    let mut s = t
        .client
        .exec(move || mptcp::connect(dst, None))
        .unwrap()
        .expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"hello").unwrap();
    let mut k = [0u8; 1];
    s.read_exact(&mut k)
        .expect("the sink answers the first bytes");
    assert_eq!(&k, b"k");

    let mut scratch = Vec::new();
    until(&t, &d, "mesh", Duration::from_secs(15), &mut scratch, |o| {
        o.backup == [Some(false), Some(false)]
    });

    // Bulk upload, paused or stopped on request (bounded: at most 150 s whatever happens).
    let mode = Arc::new(AtomicU8::new(RUN));
    let sent = Arc::new(AtomicU64::new(0));
    let mut w = s.try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let writer = {
        let (mode, sent) = (mode.clone(), sent.clone());
        std::thread::spawn(move || {
            let buf = vec![0x5au8; 64 * 1024];
            let end = Instant::now() + Duration::from_secs(150);
            while Instant::now() < end {
                match mode.load(Ordering::Relaxed) {
                    STOP => break,
                    PAUSE => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    _ => {}
                }
                match w.write(&buf) {
                    Ok(n) => {
                        sent.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("bulk write failed: {e}"),
                }
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let unshaped = observe(&t);
    assert_eq!(unshaped.backup, [Some(false), Some(false)], "{unshaped:?}");

    // 1. Slow link 1 under the upload: demoted within hold + margin (srtt climbs first).
    t.shape(1, SLOW).unwrap();
    let mut shaped_rtts = Vec::new();
    let (to_backup, at_backup) = until(
        &t,
        &d,
        "1: demotion of the shaped subflow",
        Duration::from_secs(HOLD_S + 4),
        &mut shaped_rtts,
        |o| o.backup[1] == Some(true),
    );
    let n = notes(&d);
    assert!(
        n.iter()
            .any(|n| n.contains("set backup 198.18.1.2") && n.contains("vs best")),
        "{n:#?}"
    );

    // 2. Still slow. Under the upload the kernel may keep sending on the backup subflow
    //    (then it is measured slow and stays backup), or stop (then it goes stale, is probed,
    //    measured slow again and demoted again within hold). Either way it is never active for
    //    longer than a probe needs, and never restored for being fast.
    let p2_end = Instant::now() + Duration::from_secs(PROBE_S + HOLD_S + 2);
    let mut phase2 = Vec::new();
    let mut active_since: Option<Instant> = None;
    let mut probes2 = 0;
    while Instant::now() < p2_end {
        let o = observe(&t);
        assert_eq!(o.backup[0], Some(false), "2: link 0: {o:?}\n{}", d.log());
        match (o.backup[1], active_since) {
            (Some(false), None) => {
                active_since = Some(Instant::now());
                probes2 += 1;
            }
            (Some(false), Some(since)) => assert!(
                since.elapsed() <= Duration::from_secs(HOLD_S + 3),
                "2: probed subflow not demoted again although still slow: {o:?}\n{}",
                d.log()
            ),
            (Some(true), _) => active_since = None,
            (None, _) => panic!("2: link-1 subflow gone: {o:?}\n{}", d.log()),
        }
        phase2.push(o);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (backup_bytes, backup_kbps) = acked_span(&phase2);
    until(
        &t,
        &d,
        "2: backup at the end of the slow phase",
        Duration::from_secs(HOLD_S + 3),
        &mut scratch,
        |o| o.backup[1] == Some(true),
    );

    // 3. Pause the upload and let link 1 drain (still shaped), then unshape. If the drain's
    //    last samples were slow, nothing measures the subflow any more and the probe restores
    //    it about probe_s after its last acknowledged data. If they were fast (once the queue
    //    is empty a lone packet passes the refilled tbf bucket unqueued), the restore rule
    //    rightly restores it from that measurement. Which one happens is the kernel's timing;
    //    both are checked against what ss saw at the end.
    let probes_before3 = notes(&d).iter().filter(|n| n.contains("probe:")).count();
    mode.store(PAUSE, Ordering::Relaxed);
    let mut last_acked = None;
    let mut last_move = Instant::now();
    wait_for(Duration::from_secs(20), || {
        let o = observe(&t);
        if o.acked[1] != last_acked {
            last_acked = o.acked[1];
            last_move = Instant::now();
        }
        (o.backup[1] == Some(false) || last_move.elapsed() >= Duration::from_millis(1500))
            .then_some(())
    });
    t.unshape(1).unwrap();
    let mut stale_rtts = Vec::new();
    let (_, at_restore3) = until(
        &t,
        &d,
        "3: restore of the paused, unshaped subflow",
        Duration::from_secs(PROBE_S + 3),
        &mut stale_rtts,
        |o| o.backup[1] == Some(false),
    );
    let probed3 = notes(&d).iter().filter(|n| n.contains("probe:")).count() > probes_before3;
    // Since the last acknowledged data on link 1 (as seen by polling ss).
    let stale3 = restores().last().map(|r| r.1).unwrap_or_default();

    // 4. Resume: carries data again with a low srtt and stays active.
    mode.store(RUN, Ordering::Relaxed);
    let watch = Duration::from_secs(3 * (PROBE_S + HOLD_S));
    let phase4 = hold_steady(&t, &d, "4: probed, fast subflow", watch, false);
    let (active_bytes, active_kbps) = acked_span(&phase4);
    assert!(
        active_bytes > 0,
        "the probed subflow carried nothing: {phase4:?}"
    );
    let fast = rtts(&phase4);
    assert!(
        fast.last().is_some_and(|r| *r < 20.0),
        "link-1 srtt still high after the probe: {}",
        summary(&fast)
    );

    // 5. Demoted again, then fast again with the upload running: restored (measured or probed).
    t.shape(1, SLOW).unwrap();
    let (to_backup2, _) = until(
        &t,
        &d,
        "5: second demotion",
        Duration::from_secs(HOLD_S + 4),
        &mut shaped_rtts,
        |o| o.backup[1] == Some(true),
    );
    let probes_before = notes(&d).iter().filter(|n| n.contains("probe:")).count();
    t.unshape(1).unwrap();
    let mut restore_rtts = Vec::new();
    let (to_restore, _) = until(
        &t,
        &d,
        "5: restore after unshaping under the upload",
        Duration::from_secs(PROBE_S + 3),
        &mut restore_rtts,
        |o| o.backup[1] == Some(false),
    );
    hold_steady(
        &t,
        &d,
        "5: restored subflow",
        Duration::from_secs(HOLD_S + 2),
        false,
    );
    let n = notes(&d);
    let how5 = if n.iter().filter(|n| n.contains("probe:")).count() > probes_before {
        "probe (the kernel had stopped sending on it)"
    } else {
        "measurement (it kept carrying data)"
    };

    // 6. The daemon's restores match the kernel's flag changes one to one, and every probe hit a
    // subflow on which `ss` had seen no acknowledged data for about probe_s.
    let clears: Vec<&String> = n.iter().filter(|n| n.contains("clear backup")).collect();
    let seen = restores();
    assert_eq!(
        clears.len(),
        seen.len(),
        "notes {clears:#?} vs kernel flag changes {seen:?}"
    );
    for (note, (_, stale)) in clears.iter().zip(&seen) {
        if note.contains("probe:") {
            assert!(
                *stale >= Duration::from_secs(PROBE_S) - Duration::from_millis(500),
                "probe of a subflow that carried data {stale:?} before: {note}"
            );
        } else {
            assert!(
                note.contains("min_gap/2") || note.contains("restore ratio"),
                "{note}"
            );
        }
    }

    let before = sent.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    assert!(sent.load(Ordering::Relaxed) > before, "the upload stalled");
    mode.store(STOP, Ordering::Relaxed);
    writer.join().expect("writer thread");

    println!(
        "rtt-based e2e (hold_s {HOLD_S}, probe_s {PROBE_S}, poll 200 ms, tbf 2 mbit/s on link 1):"
    );
    println!(
        "  unshaped: srtt link0 {:?} ms, link1 {:?} ms",
        unshaped.rtt_ms[0], unshaped.rtt_ms[1]
    );
    println!(
        "  1. shape -> backup flag: {:.2} s (link1 srtt {:?} ms, link0 {:?} ms at that look)",
        to_backup.as_secs_f64(),
        at_backup.rtt_ms[1],
        at_backup.rtt_ms[0]
    );
    println!(
        "  2. backup + shaped + upload for {} s: link 1 carried {:.0} kB ({backup_kbps:.0} kB/s), srtt {}; probes: {probes2}",
        PROBE_S + HOLD_S + 2,
        backup_bytes as f64 / 1000.0,
        summary(&rtts(&phase2))
    );
    println!(
        "  3. paused, drained, unshaped -> restored by {} {:.2} s after the last acked data on link 1 (its srtt then {:?} ms)",
        if probed3 { "probe" } else { "measurement" },
        stale3.as_secs_f64(),
        at_restore3.rtt_ms[1]
    );
    println!(
        "  4. resumed: active for {} s, carried {:.0} kB ({active_kbps:.0} kB/s), srtt {}",
        watch.as_secs(),
        active_bytes as f64 / 1000.0,
        summary(&fast)
    );
    println!(
        "  5. shape -> backup again: {:.2} s; unshape under upload -> restored by {how5}: {:.2} s (srtt {})",
        to_backup2.as_secs_f64(),
        to_restore.as_secs_f64(),
        summary(&restore_rtts)
    );
    println!(
        "  kernel flag clears (time since ss last saw link-1 data acked): {:?}",
        seen.iter()
            .map(|(_, s)| s.as_secs_f64())
            .collect::<Vec<_>>()
    );
    println!(
        "  link1 srtt between shaping and demotion (climbing): {}",
        summary(&shaped_rtts)
    );
    println!(
        "  bulk data sent: {:.1} MB",
        sent.load(Ordering::Relaxed) as f64 / 1e6
    );
    println!("  daemon policy notes:");
    for n in notes(&d) {
        let note = n.split("note: ").nth(1).unwrap_or(&n);
        println!("    {note}");
    }
}
