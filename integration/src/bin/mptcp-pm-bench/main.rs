//! `mptcp-pm-bench`: mptcp-pmd (fullmesh, userspace PM) against the in-kernel path manager on
//! the same namespace topology, runs interleaved. Measures join latency, churn, scale (RSS,
//! sock_diag poll time, idle wake-ups, what a metrics scrape and a status cost), shaped
//! throughput, the daemon's start-up and idle cost (cold start to `started` and READY=1, idle
//! RSS, binary sizes) and the server side (mptcp-pmd `announce` against an in-kernel `signal`
//! endpoint: announce-to-join latency and throughput over two shaped server links) and hybrid
//! access (a silent failure of the primary link, once and flapping: `active-standby` against
//! the in-kernel PM's and fullmesh's backup subflows), prints a table and writes BENCHMARKS.md, one section per benchmark. `--soak MINUTES` instead runs a
//! continuous churn against the daemon and samples its RSS, CPU and the live connections every
//! few seconds.
//!
//! Run as root, after `cargo build --release -p mptcp-pmd`:
//! `cargo run --release -p integration --bin mptcp-pm-bench -- [--quick] [--soak MINUTES]
//! [--out FILE] [--only join,churn,scale,tput,startup,server,hybrid]` (`--only` keeps the file's other
//! sections).
//!
//! Environment: `BENCH_DAEMON_WRAPPER` runs the daemon under a tool (e.g. `heaptrack -o F`; a
//! glibc daemon restarts itself once at start, which such a tool does not follow: add
//! `GLIBC_TUNABLES=glibc.malloc.tcache_count=0` to the bench's environment, the same settings
//! without the restart, docs/OPERATIONS.md "Memory");
//! `BENCH_PMD_CONFIG` appends YAML to the daemon's config (A/B runs, e.g. `kernel: {nice: 0}`);
//! `BENCH_BASELINE_BIN` adds a bed running another daemon binary (e.g. a build of main) to the
//! join and churn sections, interleaved with the others (before/after in one run);
//! `BENCH_CHURN_CONFIG` adds a churn bed with that YAML added to its config (e.g.
//! `kernel: {nice: -20}`);
//! `BENCH_KEEP_LOGS` keeps the daemons' directories (config, log).
//!
//! Join and churn also show where the daemon's time goes, from its own metrics (the
//! `event_to_*` and `command_seconds` histograms, read from its metrics endpoint) and its
//! event loop's run-queue wait (`/proc/<pid>/task/<pid>/schedstat`).
//!
//! # Layout
//! This file parses the command line and runs what it names. Each section of the report is a
//! module ([`join`], [`churn`], [`scale`] with [`scrape`], [`tput`], [`startup`], [`server`],
//! [`hybrid`])
//! that measures, renders its text and exports it as a [`Section`]; [`soak`] is the `--soak`
//! mode. What they share: [`bed`] (the daemon as the bench runs it, the test bed of one path
//! manager, one join), [`tracker`] (the event stopwatch), [`stages`] (the daemon's own
//! timings), [`stats`], and [`report`] (BENCHMARKS.md: header, order, sections kept).
//!
//! # Adding a section
//! Write `<name>.rs`: it measures, renders a text that starts with its heading (the next
//! letter, `## g. Title`) and ends with an empty line, and exports
//! `pub const SECTION: Section = Section::new("<name>", "## g.", "g. Title", |quick| ...)`
//! (its `--only` value, its heading's start, the value's help, how it runs). Then add
//! `mod <name>;` and `<name>::SECTION` at its place in [`SECTIONS`]: the `--only` value, the
//! report order and keeping the section when others are rerun follow from that line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test tool

use std::path::PathBuf;
use std::time::Instant;

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::Parser;
use integration::daemon::daemon_bin;

use report::Section;

mod bed;
mod churn;
mod hybrid;
mod join;
mod report;
mod scale;
mod scrape;
mod server;
mod soak;
mod stages;
mod startup;
mod stats;
mod tput;
mod tracker;

/// The report's sections, in report order.
const SECTIONS: &[Section] = &[
    join::SECTION,
    churn::SECTION,
    scale::SECTION,
    tput::SECTION,
    startup::SECTION,
    server::SECTION,
    hybrid::SECTION,
];

/// mptcp-pmd against the in-kernel path manager, runs interleaved; writes BENCHMARKS.md.
#[derive(Debug, Parser)]
#[command(name = "mptcp-pm-bench")]
struct Args {
    /// Reduced counts (a smoke run).
    #[arg(long)]
    quick: bool,
    /// Instead of the sections: a continuous churn against the daemon for MINUTES, sampling
    /// its RSS, CPU and the live connections.
    #[arg(long, value_name = "MINUTES")]
    soak: Option<u64>,
    /// The report file (default BENCHMARKS.md; with --soak, written only if given).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The sections to run, comma-separated (default: all). The file's other sections are
    /// kept, each naming the run it comes from.
    #[arg(long, value_delimiter = ',', value_name = "SECTIONS", value_parser = section_names())]
    only: Vec<String>,
    /// Internal: be the scale test's hold server on PORT (a process of its own).
    #[arg(long, value_name = "PORT", hide = true)]
    hold_server: Option<u16>,
}

/// `--only`'s values: the sections' names, each with its help.
fn section_names() -> PossibleValuesParser {
    PossibleValuesParser::new(
        SECTIONS
            .iter()
            .map(|s| PossibleValue::new(s.name).help(s.about)),
    )
}

fn main() {
    let args = Args::parse();
    if let Some(port) = args.hold_server {
        bed::raise_nofile();
        bed::hold_server(port);
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("mptcp-pm-bench needs root (network namespaces)");
        std::process::exit(77);
    }
    bed::raise_nofile();
    bed::daemon_next_to_bench();
    eprintln!("daemon: {}", daemon_bin().display());
    if let Some(minutes) = args.soak {
        let table = soak::soak(minutes);
        println!("{table}");
        if let Some(p) = &args.out {
            std::fs::write(p, &table).unwrap();
        }
        return;
    }
    let out_path = args.out.unwrap_or_else(|| PathBuf::from("BENCHMARKS.md"));
    let started = Instant::now();
    let fresh: Vec<(&Section, String)> = SECTIONS
        .iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s.name))
        .map(|s| (s, (s.run)(args.quick)))
        .collect();
    report::write(&out_path, SECTIONS, &fresh, args.quick, started);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_takes_a_comma_list() {
        let a = Args::try_parse_from(["b", "--quick", "--only", "join,startup", "--out", "x.md"])
            .unwrap();
        assert!(a.quick);
        assert_eq!(a.only, ["join", "startup"]);
        assert_eq!(a.out, Some(PathBuf::from("x.md")));
        assert!(Args::try_parse_from(["b", "--only", "nope"]).is_err());
        let h = Args::try_parse_from(["b", "--hold-server", "5202"]).unwrap();
        assert_eq!(h.hold_server, Some(5202));
    }

    #[test]
    fn sections_have_unique_names_and_headings_in_report_order() {
        let names: std::collections::BTreeSet<_> = SECTIONS.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), SECTIONS.len());
        let keys: Vec<_> = SECTIONS.iter().map(|s| s.key).collect();
        let mut in_order = keys.clone();
        in_order.sort_unstable();
        in_order.dedup();
        assert_eq!(keys, in_order, "headings unique and in report order");
        assert!(keys
            .iter()
            .all(|k| k.starts_with("## ") && k.ends_with('.')));
    }
}
