//! What reading the daemon costs with many connections tracked (a part of the scale section):
//! `GET /metrics` on its metrics endpoint and `mptcp-pmd status --json` on its control socket,
//! each one at a time, and what clients scraping in a loop cost its event loop: joins of new
//! connections (as in a.) in interleaved batches, with nothing else going on and while
//! [`SCRAPERS`] clients scrape `/metrics`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use integration::daemon::daemon_bin;
use integration::Netns;

use crate::bed::{Bed, METRICS_PORT};
use crate::stats::{ms, Lat};

/// Readings of each kind taken one after the other.
const SEQUENTIAL: usize = 20;
/// Clients scraping `/metrics` at once, each in a loop.
const SCRAPERS: usize = 4;
/// Joins per batch, one every `JOIN_GAP` (paced, so that they meet the daemon at every point of
/// a scrape, and the scrapers run long enough to count); batches per kind (quiet, scraping) in
/// a full run, and with `--quick`.
const JOIN_BATCH: usize = 10;
const JOIN_GAP: Duration = Duration::from_millis(100);
const JOIN_ROUNDS: usize = 4;
const QUICK_JOIN_ROUNDS: usize = 2;

/// What reading the daemon cost.
#[derive(Default)]
pub struct Readings {
    /// The daemon's `mptcp_pmd_connections` in the last sequential scrape.
    tracked: Option<f64>,
    /// Sequential `GET /metrics`, ms (a failure: no 200 answer); the last body's bytes.
    scrape: Lat,
    body_bytes: usize,
    /// Sequential `mptcp-pmd status --json`, ms (exec to exit; a failure: a non-zero exit);
    /// the last output's bytes.
    status: Lat,
    status_bytes: usize,
    /// Every scrape of the concurrent scrapers, ms; how long they ran, s; the daemon's CPU
    /// time meanwhile, s.
    concurrent: Lat,
    concurrent_s: f64,
    concurrent_cpu_s: f64,
    /// Joins (ms; a failure: not meshed in 5 s) with nothing else going on, and while the
    /// scrapers run.
    quiet: Lat,
    scraping: Lat,
    /// Batches of joins of each kind.
    rounds: usize,
}

/// Take the readings on `b` (an mptcp-pmd bed whose daemon tracks the connections to read).
pub fn measure(b: &Bed, quick: bool) -> Readings {
    let p = b.pmd.as_ref().expect("an mptcp-pmd bed");
    let mut r = Readings {
        rounds: if quick {
            QUICK_JOIN_ROUNDS
        } else {
            JOIN_ROUNDS
        },
        ..Readings::default()
    };
    let (scrape, body) =
        b.t.client
            .exec(|| {
                let mut last = String::new();
                let lat = Lat::batch(SEQUENTIAL, || {
                    let (took, body) = scrape_once()?;
                    last = body;
                    Some(took)
                });
                (lat, last)
            })
            .unwrap();
    r.scrape = scrape;
    r.body_bytes = body.len();
    r.tracked = integration::metrics::samples(&body)
        .get("mptcp_pmd_connections")
        .copied();
    let sock = p.control_socket();
    r.status = Lat::batch(SEQUENTIAL, || {
        let (took, bytes) = status_once(&sock)?;
        r.status_bytes = bytes;
        Some(took)
    });
    eprintln!(
        "scale: {SEQUENTIAL} scrapes, {SEQUENTIAL} status --json: done ({} tracked)",
        r.tracked.unwrap_or(f64::NAN)
    );
    let _ = b.one_join(); // warm-up: the first connection to the echo server
    let paced_join = || {
        std::thread::sleep(JOIN_GAP);
        b.one_join().map(ms)
    };
    for _ in 0..r.rounds {
        r.quiet.absorb(Lat::batch(JOIN_BATCH, paced_join));
        let (c0, t0) = (p.cpu_s(), Instant::now());
        let scrapers = Scrapers::start(&b.t.client, SCRAPERS);
        r.scraping.absorb(Lat::batch(JOIN_BATCH, paced_join));
        r.concurrent.absorb(scrapers.stop());
        r.concurrent_s += t0.elapsed().as_secs_f64();
        r.concurrent_cpu_s += p.cpu_s() - c0;
    }
    eprintln!("scale: joins while scraping: done");
    r
}

/// One `GET /metrics` from the calling thread (in the daemon's namespace): its time in ms and
/// its body, or None if it failed or was not answered 200.
fn scrape_once() -> Option<(f64, String)> {
    let t0 = Instant::now();
    let response = integration::metrics::get(METRICS_PORT).ok()?;
    let took = ms(t0.elapsed());
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| (took, body.to_string()))
}

/// One `mptcp-pmd status --json -s SOCK`, as an operator runs it: exec to exit in ms, and the
/// bytes it printed, or None if it failed.
fn status_once(sock: &Path) -> Option<(f64, usize)> {
    let t0 = Instant::now();
    let out = Command::new(daemon_bin())
        .args(["status", "--json", "-s"])
        .arg(sock)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let took = ms(t0.elapsed());
    out.status.success().then_some((took, out.stdout.len()))
}

/// Clients in a namespace, each scraping `/metrics` in a loop until [`Scrapers::stop`].
struct Scrapers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Lat>>,
}

impl Scrapers {
    fn start(ns: &Netns, n: usize) -> Scrapers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                ns.exec_bg(move || {
                    let mut lat = Lat::default();
                    while !stop.load(Ordering::Relaxed) {
                        match scrape_once() {
                            Some((took, _)) => lat.samples.push(took),
                            None => {
                                lat.timeouts += 1;
                                // Not a busy loop against an endpoint that refuses.
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                    lat
                })
                .unwrap()
            })
            .collect();
        Scrapers { stop, threads }
    }

    /// Stop them (each finishes the scrape it is in); every scrape's time.
    fn stop(self) -> Lat {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Lat::default();
        for t in self.threads {
            all.absorb(t.join().unwrap());
        }
        all
    }
}

/// The readings as a paragraph and a table, appended to the scale section.
pub fn render(r: &Readings, md: &mut String) {
    let tracked = r
        .tracked
        .map_or_else(|| "?".to_string(), |n| format!("{n:.0}"));
    let _ = writeln!(
        md,
        "\nReading the daemon with {tracked} connections tracked (its `mptcp_pmd_connections`), \
         back on fullmesh (SIGHUP) after the rtt-based readings: `GET /metrics` on its metrics \
         endpoint and `mptcp-pmd status --json -s SOCKET` (the command as an operator runs it, \
         exec to exit), {SEQUENTIAL} of each, one after the other. Then joins of new \
         connections (as in a., one every {} ms) in {} interleaved batches of {JOIN_BATCH}: with \
         nothing else going on, and while {SCRAPERS} clients scrape `/metrics` in a loop \
         (scrapes/s and the daemon's CPU over the time they ran). Failed: no 200 answer, a \
         non-zero exit, a join not meshed in 5 s.\n",
        JOIN_GAP.as_millis(),
        r.rounds
    );
    let _ = writeln!(
        md,
        "| reading | runs | p50 ms | p90 ms | max ms | failed | |\n|---|---:|---:|---:|---:|---:|---|"
    );
    let kib = |b: usize| b as f64 / 1024.0;
    let per_s = r.concurrent.samples.len() as f64 / r.concurrent_s.max(1e-9);
    let cpu = r.concurrent_cpu_s / r.concurrent_s.max(1e-9) * 100.0;
    let rows: [(String, &Lat, String); 5] = [
        (
            "`GET /metrics`, one at a time".into(),
            &r.scrape,
            format!("body {:.0} KiB", kib(r.body_bytes)),
        ),
        (
            "`mptcp-pmd status --json`, one at a time".into(),
            &r.status,
            format!("output {:.0} KiB", kib(r.status_bytes)),
        ),
        (
            format!("`GET /metrics`, {SCRAPERS} clients in a loop"),
            &r.concurrent,
            format!("{per_s:.1} scrapes/s; daemon CPU {cpu:.0} % of a core"),
        ),
        (
            "join, nothing else going on".into(),
            &r.quiet,
            String::new(),
        ),
        (
            format!("join, while {SCRAPERS} clients scrape"),
            &r.scraping,
            String::new(),
        ),
    ];
    for (what, lat, note) in rows {
        let _ = writeln!(
            md,
            "| {what} | {} | {} | {note} |",
            lat.cells(),
            lat.timeouts
        );
    }
}
