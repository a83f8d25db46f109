//! a. Join latency: sequential connections on 2 and 4 links, each pinged then closed, client
//! ESTABLISHED -> last SUB_ESTABLISHED, mptcp-pmd against the in-kernel PM in interleaved
//! batches; where mptcp-pmd's time goes (its stage histograms), and joins traced on both sides
//! (the bench's event receipts against the daemon's `last_event_trace` gauges).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::bed::{
    baseline_bed, bed, connect_pinged, Bed, Mode, BASELINE_LABEL, ECHO_PORT, METRICS_PORT,
};
use crate::report::Section;
use crate::stages::{stages_row, Stages, STAGES_HEAD};
use crate::stats::{interleaved, list, ms, pct, sorted, verdict, Lat};

pub const SECTION: Section = Section::new("join", "## a.", "a. Join latency", |quick| {
    render(&measure(quick))
});

/// CLOCK_MONOTONIC ns of an `Instant` (the clock the daemon's trace gauges use).
fn monotonic_ns(at: Instant) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let now = Instant::now();
    let now_ns = ts.tv_sec * 1_000_000_000 + ts.tv_nsec;
    if at <= now {
        now_ns - (now - at).as_nanos() as i64
    } else {
        now_ns + (at - now).as_nanos() as i64
    }
}

/// One join seen from both sides, in CLOCK_MONOTONIC ns: the bench's ESTABLISHED and first
/// and last SUB_ESTABLISHED, and the daemon's trace of the commands that event caused.
#[derive(Debug, Clone, Copy)]
struct TracedJoin {
    est: i64,
    first_sub: i64,
    last_sub: i64,
    read: i64,
    decided: i64,
    first_sent: i64,
    last_sent: i64,
    last_answered: i64,
    /// Inside the daemon's send and answer calls for this event's commands, summed (ns).
    in_calls: i64,
    commands: i64,
}

/// The daemon's own time between its first send and its last (outside its send and answer
/// calls), in ns: first send .. last send, less every call but the last.
fn between_calls(t: &TracedJoin) -> i64 {
    let last_call = t.last_answered - t.last_sent;
    (t.last_sent - t.first_sent) - (t.in_calls - last_call)
}

/// A join as in [`Bed::one_join`], then the daemon's `last_event_trace` gauges, which describe this
/// connection's ESTABLISHED when nothing else happened meanwhile (checked: read after it).
fn traced_join(b: &Bed) -> Option<TracedJoin> {
    let (s, port) = connect_pinged(&b.t.client, b.dst(ECHO_PORT))?;
    let wait = Duration::from_secs(5);
    let last = b.tracker.wait_sub(port, b.links - 1, wait);
    let first = b.tracker.wait_sub(port, 1, wait);
    // The last create's answer comes after its SUB_ESTABLISHED: let the daemon finish.
    std::thread::sleep(Duration::from_millis(5));
    let body = integration::metrics::scrape(&b.t.client, METRICS_PORT);
    drop(s);
    b.tracker.forget(port);
    let ((est, last), (_, first)) = last.zip(first)?;
    let m = integration::metrics::samples(&body);
    let gauge = |name: &str| m.get(name).map(|v| *v as i64);
    let stage = |name: &str| {
        gauge(&format!(
            "mptcp_pmd_last_event_trace_monotonic_ns{{stage=\"{name}\"}}"
        ))
    };
    let t = TracedJoin {
        est: monotonic_ns(est),
        first_sub: monotonic_ns(first),
        last_sub: monotonic_ns(last),
        read: stage("event_read")?,
        decided: stage("decided")?,
        first_sent: stage("first_sent")?,
        last_sent: stage("last_sent")?,
        last_answered: stage("last_answered")?,
        in_calls: gauge("mptcp_pmd_last_event_trace_in_calls_ns")?,
        commands: gauge("mptcp_pmd_last_event_trace_commands")?,
    };
    // A trace older than this ESTABLISHED is another connection's.
    // A trace of another count of commands is not this join's.
    let links = i64::try_from(b.links).unwrap_or(i64::MAX);
    (t.read >= t.est && t.first_sent <= t.first_sub && t.commands == links - 1).then_some(t)
}

struct JoinRow {
    links: usize,
    /// What ran ("mptcp-pmd", "in-kernel PM", or the baseline build).
    label: String,
    lat: Lat,
    /// p50 of each interleaved batch, to show the spread between batches.
    batch_p50: Vec<f64>,
    /// The daemon's own timing of the measured batches (mptcp-pmd only).
    stages: Option<Stages>,
    /// Joins traced on both sides after the measured ones (mptcp-pmd only).
    traced: Vec<TracedJoin>,
}

/// Joins traced on both sides per link count.
const TRACED_JOINS: usize = 40;

fn measure(quick: bool) -> Vec<JoinRow> {
    let total = if quick { 40 } else { 200 };
    let batch = 20;
    let mut out = Vec::new();
    for links in [2usize, 4] {
        let mut beds = vec![
            bed(Mode::Pmd, links, None, ""),
            bed(Mode::Kernel, links, None, ""),
        ];
        let mut labels = vec![
            Mode::Pmd.name().to_string(),
            Mode::Kernel.name().to_string(),
        ];
        if let Some(b) = baseline_bed(links, "") {
            beds.push(b);
            labels.push(BASELINE_LABEL.to_string());
        }
        // Warm-up (ARP/ND, first-connection costs), not measured.
        for b in &beds {
            let _ = b.one_join();
        }
        let before: Vec<Option<Stages>> = beds
            .iter()
            .map(|b| b.pmd.as_ref().map(|p| Stages::read(p, &b.t.client)))
            .collect();
        let lats = interleaved(beds.len(), total, batch, |i| beds[i].one_join().map(ms));
        for (((b, (l, p)), before), label) in beds.iter().zip(lats).zip(before).zip(labels) {
            let stages = b
                .pmd
                .as_ref()
                .zip(before)
                .map(|(pmd, was)| Stages::read(pmd, &b.t.client).since(&was));
            // Traced joins, after the measured ones (each is followed by a scrape).
            let traced = if label == Mode::Pmd.name() {
                (0..TRACED_JOINS).filter_map(|_| traced_join(b)).collect()
            } else {
                Vec::new()
            };
            out.push(JoinRow {
                links,
                label,
                lat: l,
                batch_p50: p,
                stages,
                traced,
            });
        }
        eprintln!("join latency, {links} links: done");
    }
    out
}

fn render(joins: &[JoinRow]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## a. Join latency\n\nClient ESTABLISHED event -> last SUB_ESTABLISHED event (the client namespace's `mptcp_pm_events`, timestamped on receipt), sequential connections, each pinged then closed.\n");
    let _ = writeln!(
        md,
        "| links | path manager | connections | p50 ms | p90 ms | max ms | not meshed in 5 s |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|");
    for r in joins {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.links,
            r.label,
            r.lat.cells(),
            r.lat.timeouts
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "p50 of each batch of 20, in run order (the spread is the VM's noise):\n"
    );
    for r in joins {
        let _ = writeln!(
            md,
            "- {} links, {}: {}",
            r.links,
            r.label,
            list(&r.batch_p50, 3)
        );
    }
    let _ = writeln!(md, "\nWhere mptcp-pmd's time goes, from its own timestamps (metrics histograms over the measured connections). The rest of a join is the daemon's wake-up before it reads the event, and the part of the join's handshake that the kernel runs inside the SUBFLOW_CREATE send before it reports SUB_ESTABLISHED:\n");
    let _ = writeln!(md, "{STAGES_HEAD}");
    for r in joins {
        if let Some(st) = r.stages.as_ref().filter(|st| !st.sent.is_empty()) {
            let _ = writeln!(
                md,
                "{}",
                stages_row(&format!("{}, {} links", r.label, r.links), st)
            );
        }
    }
    let _ = writeln!(md, "\nOne join, timestamped on both sides ({TRACED_JOINS} joins per link count after the measured ones, each followed by a read of the daemon's `last_event_trace` gauges; CLOCK_MONOTONIC in both processes), medians in ms. *Wake-up*: ESTABLISHED reaching the bench's listener until the daemon has read it; *user space*: from there to the first SUBFLOW_CREATE's send; *kernel*: from that send to SUB_ESTABLISHED, all inside the daemon's send system calls (the kernel runs the join's handshake there); *first send -> last send*: the further SUBFLOW_CREATEs, one after the other's answer, and of that the daemon's own time between its calls (the rest is inside the sends and reads of the answers):\n");
    let _ = writeln!(md, "| links | joins | wake-up | user space: read -> first send (of it read -> decided) | kernel: first send -> its SUB_ESTABLISHED | first send -> last send (of it user space between the calls) | kernel: last send -> last SUB_ESTABLISHED | total | in-kernel PM total (p50 above) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in joins.iter().filter(|r| !r.traced.is_empty()) {
        let med = |f: &dyn Fn(&TracedJoin) -> i64| {
            let v: Vec<f64> = r.traced.iter().map(|t| f(t) as f64 / 1e6).collect();
            pct(&sorted(&v), 0.5)
        };
        let kernel = joins
            .iter()
            .find(|k| k.links == r.links && k.label == Mode::Kernel.name())
            .map_or(f64::NAN, |k| pct(&k.lat.sorted(), 0.5));
        let _ = writeln!(
            md,
            "| {} | {} | {:.3} | {:.3} ({:.3}) | {:.3} | {:.3} ({:.3}) | {:.3} | {:.3} | {kernel:.3} |",
            r.links,
            r.traced.len(),
            med(&|t| t.read - t.est),
            med(&|t| t.first_sent - t.read),
            med(&|t| t.decided - t.read),
            med(&|t| t.first_sub - t.first_sent),
            med(&|t| t.last_sent - t.first_sent),
            med(&|t| between_calls(t)),
            med(&|t| t.last_sub - t.last_sent),
            med(&|t| t.last_sub - t.est),
        );
    }
    let _ = writeln!(
        md,
        "\n| links | p50 mptcp-pmd / in-kernel | target | verdict |\n|---:|---:|---:|---|"
    );
    for links in [2usize, 4] {
        let p = |label: &str| {
            joins
                .iter()
                .find(|r| r.links == links && r.label == label)
                .map(|r| pct(&r.lat.sorted(), 0.5))
        };
        let kernel = p(Mode::Kernel.name());
        if let Some((b, k)) = p(BASELINE_LABEL).zip(kernel) {
            let _ = writeln!(md, "| {links} ({BASELINE_LABEL}) | {:.2} x | | |", b / k);
        }
        if let Some((a, k)) = p(Mode::Pmd.name()).zip(kernel) {
            let ratio = a / k;
            let target = if links == 2 { 1.15 } else { 1.25 };
            let _ = writeln!(
                md,
                "| {links} | {ratio:.2} x | <= {target:.2} x | {} |",
                verdict(ratio <= target)
            );
        }
    }
    let _ = writeln!(md);
    md
}
