//! End to end: the real `mptcp-pmd` binary with the rtt-based policy, against the real kernel.
//!
//! One MPTCP connection from a two-link client (userspace PM, the daemon) to a sink server
//! carries a continuous bulk upload. Delay is made the only way this kernel allows (no netem):
//! a 2 mbit/s tbf on client link 1 queues the upload, which lifts that subflow's srtt from
//! ~0.05 ms to ~100 ms. What counts is what the kernel reports: the local backup flag (`b` in
//! `ss -tni`'s tcp-ulp-mptcp `flags:`) and the subflows' `rtt:`.
//!
//! What the kernel (6.18) does with a backup subflow decides how it is restored. Under a bulk
//! upload a subflow whose local backup flag is set keeps carrying data: the scheduler does not
//! pick it, but when its own ACKs free send space it pushes the next chunk on itself, so it
//! keeps running at its link's rate and its srtt stays *measured*. Without traffic on it (the
//! connection paused), its srtt is *stale* and only the probe can bring it back. The timeline
//! checked, with `hold_s: 2`, `probe_s: 4`, `poll.interval_ms: 200`:
//! 1. bulk on, shape link 1: its subflow gets the backup flag within hold + a margin;
//! 2. still shaped, bulk on: it keeps carrying data, measured slow, so it stays backup and is
//!    not probed (for longer than probe + hold);
//! 3. pause the upload, unshape: nothing measures the subflow any more; the probe clears its
//!    flag about `probe_s` after its last acknowledged data;
//! 4. resume: it carries data again with a low srtt and stays active;
//! 5. shape again (demoted again), unshape with the upload running: the fresh low srtt restores
//!    it by the restore rule, no probe needed.
//!
//! The link-0 subflow never gets the flag. The measured numbers are printed (`--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
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
    obs
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

/// The policy notes of the daemon's log (one line each).
fn notes(d: &Daemon) -> Vec<String> {
    d.log()
        .lines()
        .filter(|l| l.contains("policy note"))
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

    // 2. Still slow and still carrying data: measured, so neither restored nor probed.
    let phase2 = hold_steady(
        &t,
        &d,
        "2: shaped backup subflow under the upload",
        Duration::from_secs(PROBE_S + HOLD_S + 2),
        true,
    );
    let (backup_bytes, backup_kbps) = acked_span(&phase2);
    assert!(
        !notes(&d).iter().any(|n| n.contains("probe:")),
        "probed although measured: {:#?}",
        notes(&d)
    );

    // 3. Pause the upload; once the subflow's queue drained (still shaped, so its last srtt is
    //    slow), unshape: nothing measures it any more and only the probe can restore it.
    mode.store(PAUSE, Ordering::Relaxed);
    let mut last_acked = None;
    let mut last_move = Instant::now();
    let drained = wait_for(Duration::from_secs(20), || {
        let o = observe(&t);
        assert_eq!(
            o.backup[1],
            Some(true),
            "3: restored while draining: {o:?}\n{}",
            d.log()
        );
        if o.acked[1] != last_acked {
            last_acked = o.acked[1];
            last_move = Instant::now();
        }
        (last_move.elapsed() >= Duration::from_secs(1)).then_some(())
    });
    assert!(
        drained.is_some(),
        "3: the paused upload never drained from link 1"
    );
    t.unshape(1).unwrap();
    let mut stale_rtts = Vec::new();
    let (_, at_probe) = until(
        &t,
        &d,
        "3: probe of the stale backup subflow",
        Duration::from_secs(PROBE_S + 3),
        &mut stale_rtts,
        |o| o.backup[1] == Some(false),
    );
    // From the last acknowledged data on link 1 (as seen by polling ss every ~20 ms).
    let to_probe = last_move.elapsed();
    let n = notes(&d);
    let probe_note = n.iter().find(|n| n.contains("probe: backup for")).cloned();
    assert!(probe_note.is_some(), "restored without a probe: {n:#?}");
    assert!(
        to_probe >= Duration::from_secs(PROBE_S) - Duration::from_secs(1),
        "probed {to_probe:?} after the last data, before probe_s = {PROBE_S} s"
    );

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

    // 5. Demoted again, then fast again with the upload running: restored by measurement.
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
        "5: restore by fresh measurement",
        Duration::from_secs(HOLD_S + 3),
        &mut restore_rtts,
        |o| o.backup[1] == Some(false),
    );
    let n = notes(&d);
    assert_eq!(
        n.iter().filter(|n| n.contains("probe:")).count(),
        probes_before,
        "restored by a probe, not by measurement: {n:#?}"
    );
    let restore_note = n
        .iter()
        .rev()
        .find(|n| n.contains("clear backup 198.18.1.2"))
        .cloned()
        .unwrap_or_default();
    assert!(
        restore_note.contains("min_gap/2") || restore_note.contains("restore ratio"),
        "{restore_note}"
    );
    hold_steady(
        &t,
        &d,
        "5: restored subflow",
        Duration::from_secs(HOLD_S + 2),
        false,
    );

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
        "  2. backup + shaped + upload for {} s: still carried {:.0} kB ({backup_kbps:.0} kB/s), srtt {}; not probed",
        PROBE_S + HOLD_S + 2,
        backup_bytes as f64 / 1000.0,
        summary(&rtts(&phase2))
    );
    println!(
        "  3. paused, drained, unshaped -> probe cleared the flag {:.2} s after the last acked data (stale srtt {:?} ms)",
        to_probe.as_secs_f64(),
        at_probe.rtt_ms[1]
    );
    println!(
        "  4. resumed: active for {} s, carried {:.0} kB ({active_kbps:.0} kB/s), srtt {}",
        watch.as_secs(),
        active_bytes as f64 / 1000.0,
        summary(&fast)
    );
    println!(
        "  5. shape -> backup again: {:.2} s; unshape under upload -> restored by measurement: {:.2} s (srtt {})",
        to_backup2.as_secs_f64(),
        to_restore.as_secs_f64(),
        summary(&restore_rtts)
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
