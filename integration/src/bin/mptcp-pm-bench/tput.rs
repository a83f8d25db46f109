//! d. Throughput: bulk over two client links shaped with tbf, mptcp-pmd against the in-kernel
//! PM and single-path TCP, interleaved rounds. [`goodput_to`], [`three_ways`] and
//! [`tput_tables`] also serve the server section's throughput.

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::{mptcp, Netns, Tbf};

use crate::bed::{bed, Bed, Mode, SINK_PORT};
use crate::report::Section;
use crate::stats::{list, mean, verdict};

pub const SECTION: Section = Section::new("tput", "## d.", "d. Throughput", |quick| {
    render(&measure(quick))
});

/// The shaping of every shaped link: tbf 50 mbit, burst 64 KiB, latency 20 ms.
pub const SHAPED: Tbf = Tbf {
    rate_kbit: 50_000,
    burst_bytes: 64 * 1024,
    latency_ms: 20,
};

/// Goodput of one bulk connection from `b`'s first client address to its sink.
fn goodput(b: &Bed, plain_tcp: bool, secs: u64) -> f64 {
    let (dst, src) = (b.dst(SINK_PORT), b.t.client_addr(0));
    goodput_to(&b.t.client, dst, src, &b.sink_bytes, plain_tcp, secs)
}

/// Bulk from `src` in `client` to `dst` (MPTCP, or plain TCP), counted by `sink` after a 2 s
/// warm-up: Mbit/s over `secs`.
pub fn goodput_to(
    client: &Netns,
    dst: SocketAddr,
    src: std::net::IpAddr,
    sink: &AtomicU64,
    plain_tcp: bool,
    secs: u64,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let h = client
        .exec_bg(move || {
            let mut s = if plain_tcp {
                let sock = std::net::TcpStream::connect_timeout(&dst, Duration::from_secs(5));
                sock.expect("tcp connect")
            } else {
                mptcp::connect(dst, Some(src)).expect("mptcp connect")
            };
            let buf = vec![0x5au8; 128 * 1024];
            while !st.load(Ordering::Relaxed) {
                if s.write_all(&buf).is_err() {
                    break;
                }
            }
        })
        .unwrap();
    std::thread::sleep(Duration::from_secs(2)); // warm-up: joins, slow start
    let (c0, t0) = (sink.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(secs));
    let (c1, t1) = (sink.load(Ordering::Relaxed), Instant::now());
    stop.store(true, Ordering::Relaxed);
    let _ = h.join();
    (c1 - c0) as f64 * 8.0 / (t1 - t0).as_secs_f64() / 1e6
}

/// One setup's throughput runs.
pub struct TputRow {
    pub what: &'static str,
    /// Mbit/s of each run.
    pub mbit: Vec<f64>,
}

/// Rounds of `[mptcp-pmd, in-kernel PM, single-path TCP]`, named `what`, interleaved: 3 of
/// 10 s (1 of 4 s when `quick`); `goodput(i, secs)` measures setup `i` once.
pub fn three_ways(
    quick: bool,
    what: [&'static str; 3],
    mut goodput: impl FnMut(usize, u64) -> f64,
) -> Vec<TputRow> {
    let (rounds, secs) = if quick { (1, 4) } else { (3, 10) };
    let mut rows: Vec<TputRow> = what
        .into_iter()
        .map(|what| TputRow { what, mbit: vec![] })
        .collect();
    for _ in 0..rounds {
        for (i, r) in rows.iter_mut().enumerate() {
            r.mbit.push(goodput(i, secs));
        }
    }
    rows
}

fn measure(quick: bool) -> Vec<TputRow> {
    let beds = [
        bed(Mode::Pmd, 2, Some(SHAPED), ""),
        bed(Mode::Kernel, 2, Some(SHAPED), ""),
    ];
    let rows = three_ways(
        quick,
        [
            "mptcp-pmd fullmesh (2 x 50 mbit)",
            "in-kernel PM (2 x 50 mbit)",
            "single-path TCP (link 0, 50 mbit)",
        ],
        // The single path runs on the in-kernel PM's bed.
        |i, secs| goodput(&beds[i.min(1)], i == 2, secs),
    );
    eprintln!("throughput: done");
    rows
}

fn render(tput: &[TputRow]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## d. Throughput\n\nTwo client links shaped with tbf 50 mbit (burst 64 KiB, latency 20 ms) in both directions; bulk client -> server, goodput counted by the server after a 2 s warm-up.\n");
    md.push_str(&tput_tables(tput));
    md
}

/// The runs of `[mptcp-pmd, in-kernel PM, single-path TCP]` and the targets they meet.
pub fn tput_tables(tput: &[TputRow]) -> String {
    let mut md = String::new();
    let pmd = mean(&tput[0].mbit);
    let ker = mean(&tput[1].mbit);
    let tcp = mean(&tput[2].mbit);
    let _ = writeln!(
        md,
        "| setup | runs (Mbit/s) | mean Mbit/s |\n|---|---|---:|"
    );
    for r in tput {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} |",
            r.what,
            list(&r.mbit, 1),
            mean(&r.mbit)
        );
    }
    let _ = writeln!(md, "\n| target | value | verdict |\n|---|---:|---|");
    let _ = writeln!(
        md,
        "| mptcp-pmd >= 95 % of in-kernel PM | {:.1} % | {} |",
        pmd / ker * 100.0,
        verdict(pmd >= 0.95 * ker)
    );
    let _ = writeln!(
        md,
        "| mptcp-pmd >= 1.8 x single path | {:.2} x | {} |",
        pmd / tcp,
        verdict(pmd >= 1.8 * tcp)
    );
    let _ = writeln!(
        md,
        "| in-kernel PM >= 1.8 x single path | {:.2} x | {} |",
        ker / tcp,
        verdict(ker >= 1.8 * tcp)
    );
    let _ = writeln!(md);
    md
}
