//! f. Server side (announce): a server with two links announcing its second address, mptcp-pmd
//! `policy: announce` against the in-kernel PM's `signal` endpoint: the server's ESTABLISHED ->
//! the client's join towards the announced address, and throughput over two shaped server
//! links.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::daemon::Daemon;
use integration::{Pm, Tbf, TopoOpts, Topology};

use crate::bed::{
    connect_pinged, counting_sink, many_ports, start_pmd_with, Mode, ECHO_PORT, SINK_PORT,
};
use crate::report::Section;
use crate::stats::{interleaved, list, ms, pct, sorted, verdict, Lat};
use crate::tput::{goodput_to, three_ways, tput_tables, TputRow, SHAPED};
use crate::tracker::Tracker;

pub const SECTION: Section = Section::new(
    "server",
    "## f.",
    "f. Server side: announce latency and throughput",
    |quick| render(&measure(quick)),
);

/// A server with two links announcing its second address: mptcp-pmd `announce` on the
/// userspace PM, or the in-kernel PM with a `signal` endpoint. The client is the in-kernel PM
/// with no endpoint (it joins the announced address from its initial one).
struct ServerBed {
    mode: Mode,
    client_tracker: Arc<Tracker>,
    server_tracker: Arc<Tracker>,
    sink_bytes: Arc<AtomicU64>,
    _pmd: Option<Daemon>,
    t: Topology,
}

fn server_bed(mode: Mode, shaping: Option<Tbf>) -> ServerBed {
    let t = Topology::build(TopoOpts {
        client_links: 1,
        server_links: 2,
        client_pm: Pm::Kernel,
        server_pm: mode.pm(),
        ..Default::default()
    })
    .expect("topology");
    many_ports(&t);
    // The limits of issue 10's tests.
    t.client.mptcp_limits(2, 2).unwrap();
    if mode == Mode::Kernel {
        t.server_signal_endpoint(1).unwrap();
    }
    if let Some(tbf) = shaping {
        for j in 0..2 {
            t.shape_server(j, tbf).unwrap();
        }
    }
    t.serve_echo(ECHO_PORT).unwrap();
    let sink_bytes = counting_sink(&t.server);
    let client_tracker = Tracker::start(&t.client);
    let server_tracker = Tracker::start(&t.server);
    let pmd = (mode == Mode::Pmd).then(|| start_pmd_with(&t.server, "announce", ""));
    ServerBed {
        mode,
        client_tracker,
        server_tracker,
        sink_bytes,
        _pmd: pmd,
        t,
    }
}

/// One connection: (server ESTABLISHED -> client SUB_ESTABLISHED towards the announced
/// address, client connect() -> that SUB_ESTABLISHED), or None if it did not join in 5 s.
fn one_announce(b: &ServerBed) -> Option<(Duration, Duration)> {
    let dst = SocketAddr::new(b.t.server_addr(0), ECHO_PORT);
    let t0 = Instant::now();
    let (s, port) = connect_pinged(&b.t.client, dst)?;
    let joined = b
        .client_tracker
        .wait_sub(port, 1, Duration::from_secs(5))
        .map(|(_, sub)| sub);
    let accepted = b.server_tracker.wait_accepted(port, Duration::from_secs(1));
    drop(s);
    b.client_tracker.forget(port);
    b.server_tracker.forget(port);
    let (joined, accepted) = (joined?, accepted?);
    Some((
        joined.saturating_duration_since(accepted),
        joined.saturating_duration_since(t0),
    ))
}

struct ServerLatRow {
    mode: Mode,
    /// Server ESTABLISHED -> client SUB_ESTABLISHED, ms.
    lat: Lat,
    /// Client connect() -> client SUB_ESTABLISHED, ms.
    connect: Vec<f64>,
    batch_p50: Vec<f64>,
}

struct ServerRows {
    lat: Vec<ServerLatRow>,
    tput: Vec<TputRow>,
}

fn measure(quick: bool) -> ServerRows {
    let (total, batch) = if quick { (40, 10) } else { (200, 20) };
    let beds = [server_bed(Mode::Pmd, None), server_bed(Mode::Kernel, None)];
    for b in &beds {
        let _ = one_announce(b); // warm-up (ARP, first-connection costs)
    }
    let mut connect = vec![Vec::new(); beds.len()];
    let lats = interleaved(beds.len(), total, batch, |i| {
        let (lat, c) = one_announce(&beds[i])?;
        connect[i].push(ms(c));
        Some(ms(lat))
    });
    let rows = beds
        .iter()
        .zip(lats)
        .zip(connect)
        .map(|((b, (lat, batch_p50)), connect)| ServerLatRow {
            mode: b.mode,
            lat,
            connect,
            batch_p50,
        })
        .collect();
    drop(beds);
    eprintln!("server: announce latency done");

    let beds = [
        server_bed(Mode::Pmd, Some(SHAPED)),
        server_bed(Mode::Kernel, Some(SHAPED)),
    ];
    let tput = three_ways(
        quick,
        [
            "mptcp-pmd announce (2 x 50 mbit server links)",
            "in-kernel PM, signal endpoint (2 x 50 mbit)",
            "single-path TCP (server link 0, 50 mbit)",
        ],
        // The single path runs on the in-kernel PM's bed.
        |i, secs| {
            let b = &beds[i.min(1)];
            let dst = SocketAddr::new(b.t.server_addr(0), SINK_PORT);
            goodput_to(
                &b.t.client,
                dst,
                b.t.client_addr(0),
                &b.sink_bytes,
                i == 2,
                secs,
            )
        },
    );
    eprintln!("server: throughput done");
    ServerRows { lat: rows, tput }
}

fn render(r: &ServerRows) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## f. Server side (announce)\n\nServer with two links, announcing its second address \
         to every connection: mptcp-pmd `policy: announce` (server namespace on the userspace \
         PM, release build, default config) against the in-kernel PM with a `signal` endpoint \
         for that address. The client is the in-kernel PM with `add_addr_accepted 2 subflows \
         2` and no endpoint (it joins the announced address from its initial one). Latency: the \
         server's ESTABLISHED event -> the client's SUB_ESTABLISHED towards the announced \
         address (both namespaces' `mptcp_pm_events` on one clock), sequential connections, \
         each pinged then closed, interleaved batches.\n"
    );
    let _ = writeln!(
        md,
        "| server PM | connections | p50 ms | p90 ms | max ms | batch p50s ms | not joined in 5 s | connect -> join p50 ms |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|---:|---:|");
    for row in &r.lat {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.3} |",
            if row.mode == Mode::Pmd {
                "mptcp-pmd announce"
            } else {
                "in-kernel PM, signal endpoint"
            },
            row.lat.cells(),
            list(&row.batch_p50, 2),
            row.lat.timeouts,
            pct(&sorted(&row.connect), 0.5),
        );
    }
    let p50 = |i: usize| pct(&r.lat[i].lat.sorted(), 0.5);
    let c50 = |i: usize| pct(&sorted(&r.lat[i].connect), 0.5);
    let ratio = p50(0) / p50(1);
    let _ = writeln!(md, "\n| target | value | verdict |\n|---|---:|---|");
    let _ = writeln!(
        md,
        "| announce p50 <= 1.25 x in-kernel PM (server ESTABLISHED -> join) | {ratio:.2} x | {} |",
        verdict(ratio <= 1.25)
    );
    let _ = writeln!(
        md,
        "| end to end, connect -> join p50 (for reference) | {:.2} x | |",
        c50(0) / c50(1)
    );
    let _ = writeln!(
        md,
        "\nThroughput: both server links shaped with tbf 50 mbit (burst 64 KiB, latency 20 ms) in \
         both directions, the client's link unshaped; bulk client -> server towards the first \
         server address, goodput counted by the server after a 2 s warm-up.\n"
    );
    md.push_str(&tput_tables(&r.tput));
    md
}
