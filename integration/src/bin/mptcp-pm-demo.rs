//! `mptcp-pm-demo`: see mptcp-pmd aggregate two links. Builds a throwaway client/router/server
//! topology with two client links shaped by tbf, starts mptcp-pmd (its default policy, one subflow per local x remote address) in the client
//! namespace, runs a timed MPTCP bulk transfer and then a single-path TCP transfer over one link,
//! prints the daemon's view of the subflows (`mptcp-pmd status`) and both throughputs with their
//! ratio. Exits 1 when the ratio is below `--min-ratio` (default 1.5), 130 when interrupted.
//! Everything is torn down on exit, also on Ctrl-C (SIGINT/SIGTERM set a flag; the transfers stop,
//! `main` returns, and the harness's `Drop` deletes the namespaces).
//!
//! Run as root: `cargo run --release -p integration --bin mptcp-pm-demo [-- --seconds 5
//! --rate-mbit 20 --min-ratio 1.5]`. The daemon is `$MPTCP_PMD_BIN`, else `mptcp-pmd` next to
//! this binary (built with `cargo build -p mptcp-pmd` in the same profile first, if missing).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a demo tool

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration::daemon::Daemon;
use integration::observe::subflows;
use integration::{mptcp, wait_for, Pm, Tbf, TopoOpts, Topology};

const MPTCP_PORT: u16 = 5401;
const TCP_PORT: u16 = 5402;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with an async-signal-safe handler (one atomic store).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Sleep up to `d`, returning early (false) when interrupted.
fn nap(d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stopped() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[derive(Debug, Clone)]
struct Opts {
    seconds: u64,
    rate_mbit: u32,
    min_ratio: f64,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        seconds: 5,
        rate_mbit: 20,
        min_ratio: 1.5,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--seconds" => {
                o.seconds = val("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?
            }
            "--rate-mbit" => {
                o.rate_mbit = val("--rate-mbit")?
                    .parse()
                    .map_err(|e| format!("--rate-mbit: {e}"))?
            }
            "--min-ratio" => {
                o.min_ratio = val("--min-ratio")?
                    .parse()
                    .map_err(|e| format!("--min-ratio: {e}"))?
            }
            "-h" | "--help" => {
                println!("usage: mptcp-pm-demo [--seconds N] [--rate-mbit R] [--min-ratio X]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.seconds == 0 || o.rate_mbit == 0 {
        return Err("--seconds and --rate-mbit must be positive".into());
    }
    Ok(o)
}

/// The daemon binary: `$MPTCP_PMD_BIN`, else next to this one (built on demand under cargo).
fn find_daemon() -> Result<PathBuf, String> {
    if let Ok(p) = std::env::var("MPTCP_PMD_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe.parent().ok_or("no exe dir")?.to_path_buf();
    let bin = dir.join("mptcp-pmd");
    if !bin.exists() {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!(
            "building mptcp-pmd ({})...",
            if release { "release" } else { "dev" }
        );
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-p", "mptcp-pmd"]);
        if release {
            cmd.arg("--release");
        }
        let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
        if !ok || !bin.exists() {
            return Err(format!(
                "{} is missing: run `cargo build --release -p mptcp-pmd` or set MPTCP_PMD_BIN",
                bin.display()
            ));
        }
    }
    Ok(bin)
}

/// Keep writing to `s` until `done` or an interrupt.
fn blast(mut s: TcpStream, done: Arc<AtomicBool>) {
    let buf = vec![0x5au8; 1 << 16];
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    while !done.load(Ordering::Relaxed) && !stopped() {
        if let Err(e) = s.write(&buf) {
            if !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                break;
            }
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
}

/// Measure the receive rate on `count` over `secs` while `s` is blasting. Returns Mbit/s, or
/// None when interrupted.
fn measure(s: TcpStream, count: &AtomicU64, secs: u64, during: impl FnOnce()) -> Option<f64> {
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let h = std::thread::spawn(move || blast(s, d2));
    // One second of warm-up (slow start, scheduler), then the timed window.
    let ok = nap(Duration::from_secs(1));
    let (c0, t0) = (count.load(Ordering::Relaxed), Instant::now());
    let ok = ok && nap(Duration::from_secs(secs) / 2);
    if ok {
        during();
    }
    let ok = ok && nap((Duration::from_secs(secs) / 2).saturating_sub(Duration::from_millis(1)));
    let (c1, t1) = (count.load(Ordering::Relaxed), Instant::now());
    done.store(true, Ordering::Relaxed);
    let _ = h.join();
    ok.then(|| (c1 - c0) as f64 * 8.0 / t1.duration_since(t0).as_secs_f64() / 1e6)
}

/// A directory removed on drop (also on an early return).
struct TmpDir(PathBuf);

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(o: &Opts) -> Result<i32, String> {
    let bin = find_daemon()?;
    std::env::set_var("MPTCP_PMD_BIN", &bin);
    let tbf = Tbf {
        rate_kbit: o.rate_mbit * 1000,
        burst_bytes: 32 * 1024,
        latency_ms: 50,
    };
    println!(
        "topology: client with 2 links of {} Mbit/s (tbf) -> router -> server",
        o.rate_mbit
    );
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        shaping: vec![Some(tbf), Some(tbf)],
    })
    .map_err(|e| format!("topology: {e}"))?;
    let mptcp_count = Arc::new(AtomicU64::new(0));
    let tcp_count = Arc::new(AtomicU64::new(0));
    for (port, count) in [(MPTCP_PORT, &mptcp_count), (TCP_PORT, &tcp_count)] {
        let addr = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port);
        let l = t
            .server
            .exec(move || mptcp::listen(addr))
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("listen: {e}"))?;
        let c = count.clone();
        t.server
            .exec_bg(move || mptcp::counting_server(l, c))
            .map_err(|e| e.to_string())?;
    }
    let dir = TmpDir(std::env::temp_dir().join(format!("mptcp-pm-demo-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(|e| e.to_string())?;
    let sock = dir.0.join("control.sock");
    let cfg = format!(
        "subflow:\n  backoff_initial_ms: 200\ncontrol:\n  socket: {}\n",
        sock.display()
    );
    let d = Daemon::start(&t.client, &cfg);
    if !d.wait_log("started", Duration::from_secs(10)) {
        return Err(format!("mptcp-pmd did not start:\n{}", d.log()));
    }
    println!(
        "mptcp-pmd started ({}), control socket {}",
        mptcp_pmd_policies::plugin::default_plugin().name,
        sock.display()
    );

    // MPTCP: connect, let the daemon add the second subflow, then measure.
    let dst = SocketAddr::new(t.server_addr(0), MPTCP_PORT);
    let mut s = t
        .client
        .exec(move || mptcp::connect(dst, None))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("MPTCP connect: {e}"))?;
    s.write_all(b"hello").map_err(|e| e.to_string())?;
    let meshed = wait_for(Duration::from_secs(5), || {
        if stopped() {
            return Some(false);
        }
        let m = subflows(&t.client, MPTCP_PORT);
        m.values().any(|v| v.len() >= 2).then_some(true)
    });
    if meshed != Some(true) {
        if stopped() {
            return Ok(130);
        }
        return Err(format!("no second subflow within 5 s:\n{}", d.log()));
    }
    println!("\nMPTCP transfer ({} s)...", o.seconds);
    let status_bin = bin.clone();
    let status_sock = sock.clone();
    let Some(mptcp_mbit) = measure(s, &mptcp_count, o.seconds, move || {
        let out = std::process::Command::new(&status_bin)
            .args(["status", "-s"])
            .arg(&status_sock)
            .output();
        match out {
            Ok(o) => print!(
                "\n$ mptcp-pmd status\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => println!("mptcp-pmd status: {e}"),
        }
    }) else {
        return Ok(130);
    };

    // Single-path TCP over link 0 (the main table's default route).
    let tdst = SocketAddr::new(t.server_addr(0), TCP_PORT);
    let s = t
        .client
        .exec(move || TcpStream::connect_timeout(&tdst, Duration::from_secs(5)))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("TCP connect: {e}"))?;
    let local = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
    println!("\nTCP transfer over one link ({local}, {} s)...", o.seconds);
    let Some(tcp_mbit) = measure(s, &tcp_count, o.seconds, || {}) else {
        return Ok(130);
    };

    let ratio = if tcp_mbit > 0.0 {
        mptcp_mbit / tcp_mbit
    } else {
        0.0
    };
    println!("\nMPTCP (2 subflows): {mptcp_mbit:7.1} Mbit/s");
    println!("TCP   (1 path):     {tcp_mbit:7.1} Mbit/s");
    println!("ratio:              {ratio:7.2} (want >= {})", o.min_ratio);
    // Machine-readable summary for scripts and the integration test.
    println!("RESULT mptcp_mbit={mptcp_mbit:.2} tcp_mbit={tcp_mbit:.2} ratio={ratio:.3}");
    Ok(if ratio >= o.min_ratio { 0 } else { 1 })
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("mptcp-pm-demo: {e}");
            std::process::exit(64);
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("mptcp-pm-demo: run as root (it creates network namespaces)");
        std::process::exit(77);
    }
    install_handlers();
    // `run` owns the topology and the daemon: both are torn down when it returns.
    let code = match run(&o) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mptcp-pm-demo: {e}");
            if stopped() {
                130
            } else {
                2
            }
        }
    };
    if code == 130 {
        eprintln!("mptcp-pm-demo: interrupted; namespaces removed");
    }
    std::process::exit(code);
}
