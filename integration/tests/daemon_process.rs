//! End to end, the real `mptcp-pmd` binary as a process: one daemon per network namespace
//! (issue 15 item 2: a second one exits 75 naming the first, whatever its control socket, and
//! makes no join; one in another namespace runs), a control socket file that a tmp cleaner
//! deletes is re-created and a path something else took is left alone; and the start-up
//! refusals (issue 15 item 7): exit 69 when MPTCP is disabled or missing, the userspace path
//! manager is not selected with `kernel.set_userspace_pm: false`, not offered, or cannot be
//! selected, the `pm_type` fallback of kernels before 6.15, and exit 73 for a metrics address
//! that cannot be bound.
//!
//! The kernel of this machine has MPTCP, offers both path managers and has
//! `net.mptcp.path_manager`, so "no MPTCP", "not offered", "cannot be selected" and "no
//! `path_manager` sysctl" are simulated: the daemon runs in a private mount namespace
//! (`unshare -m`) where /proc/sys/net/mptcp is hidden under an empty tmpfs, or one of its files
//! is covered by a bind mount (a file saying `kernel` for `available_path_managers`, a read-only
//! file for `path_manager`, a unix socket — which cannot be opened, as a missing file cannot —
//! for `path_manager`). Everything else is the real kernel: `pm_type` is really written and the
//! namespace's path manager really changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::daemon::{daemon_bin, Daemon, DaemonOpts};
use integration::observe::subflows;
use integration::{kernel_tests_enabled, wait_for, Netns, Pm, TopoOpts, Topology};

const PORT: u16 = 5501;

const FULLMESH: &str =
    "policy: fullmesh\nsubflow:\n  backoff_initial_ms: 200\n  backoff_max_ms: 1000\n";

fn topo() -> Topology {
    let t = Topology::build(TopoOpts {
        client_links: 2,
        server_links: 1,
        client_pm: Pm::Userspace,
        server_pm: Pm::Kernel,
        ..Default::default()
    })
    .expect("topology");
    t.serve_echo(PORT).expect("echo server");
    t
}

fn tmp(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "mptcp-pmd-process-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Started without `ip netns exec` in between (its mount-namespace set-up is not the
/// daemon's time).
fn direct() -> DaemonOpts {
    DaemonOpts {
        direct: true,
        ..DaemonOpts::default()
    }
}

/// `mptcp-pmd status --json -s SOCK`, killed after 5 s: exit code and stdout.
fn status(sock: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(daemon_bin())
        .args(["status", "--json", "-s", sock.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, String::new());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// Every connection towards PORT has exactly one subflow from each client address (fullmesh
/// over 2 links: no duplicate join), `conns` of them.
fn meshed_once(t: &Topology, conns: usize) -> Result<(), String> {
    let want: BTreeSet<IpAddr> = [t.client_addr(0), t.client_addr(1)].into();
    let m = subflows(&t.client, PORT);
    let ok = m.len() == conns
        && m.values().all(|v| {
            let locals: BTreeSet<IpAddr> = v.iter().map(|s| s.local.ip()).collect();
            v.len() == 2 && locals == want
        });
    if ok {
        Ok(())
    } else {
        let mut hist = std::collections::BTreeMap::new();
        for v in m.values() {
            *hist.entry(v.len()).or_insert(0usize) += 1;
        }
        Err(format!(
            "{} connections (want {conns}); by subflow count: {hist:?}",
            m.len()
        ))
    }
}

#[test]
fn a_second_daemon_in_the_namespace_exits_75_naming_the_first_and_makes_no_join() {
    if !kernel_tests_enabled(
        "a_second_daemon_in_the_namespace_exits_75_naming_the_first_and_makes_no_join",
    ) {
        return;
    }
    let t = topo();
    let first = Daemon::start(&t.client, FULLMESH);
    first.wait_ready();
    let first_pid = first.pid().expect("first daemon's pid");
    let first_sock = first.control_socket();

    // As in the report: a second daemon with its own control socket (the harness gives each
    // daemon its own) and the same policy.
    let mut second = Daemon::spawn(&t.client, FULLMESH, direct());
    let (code, after) = second
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the second daemon kept running:\n{}", second.log()));
    let log = second.log();
    assert_eq!(code, Some(75), "{log}");
    eprintln!("the second daemon exited {after:?} after its start");
    assert!(
        after < Duration::from_secs(1),
        "refused after {after:?}, not within a second:\n{log}"
    );
    assert!(
        log.contains("already manages this network namespace")
            && log.contains(&format!("pid {first_pid}"))
            && log.contains(&format!("control socket {}", first_sock.display())),
        "the message names the first daemon (pid {first_pid}, {}):\n{log}",
        first_sock.display()
    );
    assert!(
        !log.contains("kernel ready"),
        "refused before touching the kernel's PM state:\n{log}"
    );

    // The same with the first daemon's own control socket path: refused by the lock (75),
    // and the first daemon's socket is untouched.
    let same_sock = format!("{FULLMESH}control:\n  socket: {}\n", first_sock.display());
    let mut third = Daemon::spawn(&t.client, &same_sock, direct());
    let exited = third.wait_exit(Duration::from_secs(10));
    assert!(
        matches!(exited, Some((Some(75), _))),
        "{exited:?}\n{}",
        third.log()
    );
    assert_eq!(status(&first_sock).0, Some(0), "the first still answers");

    // `--check-config` does not take the lock.
    let o = t
        .client
        .command(daemon_bin().to_str().unwrap())
        .args([
            "-c",
            first.config_path().to_str().unwrap(),
            "--check-config",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // No duplicate join: 20 connections, each with exactly one subflow per address, stable.
    let _conns = t.connect_many(PORT, 20).expect("connect");
    wait_for(Duration::from_secs(20), || meshed_once(&t, 20).ok())
        .unwrap_or_else(|| panic!("{:?}\n{}", meshed_once(&t, 20), first.log()));
    std::thread::sleep(Duration::from_secs(1));
    meshed_once(&t, 20).unwrap();
}

#[test]
fn a_daemon_in_another_namespace_runs_beside_the_first() {
    if !kernel_tests_enabled("a_daemon_in_another_namespace_runs_beside_the_first") {
        return;
    }
    let a = Netns::new("lock-a").unwrap();
    let b = Netns::new("lock-b").unwrap();
    let mut da = Daemon::start(&a, FULLMESH);
    da.wait_ready();
    let mut db = Daemon::start(&b, FULLMESH);
    db.wait_ready();
    // Each holds its own namespace's lock.
    for ns in [&a, &b] {
        let out = ns.run(&["ss", "-xlH"]).unwrap();
        assert!(out.contains("@mptcp-pmd "), "{}: {out}", ns.name());
    }
    assert!(da.running() && db.running());
    assert_eq!(da.stop(Duration::from_secs(10)), Some(0), "{}", da.log());
    // The lock goes with the process: a new daemon takes it at once.
    let mut again = Daemon::start(&a, FULLMESH);
    again.wait_ready();
    assert_eq!(db.stop(Duration::from_secs(10)), Some(0), "{}", db.log());
    // And after a SIGKILL too (nothing stale is left behind).
    again.kill();
    let d = Daemon::start(&a, FULLMESH);
    d.wait_ready();
}

#[test]
fn a_deleted_control_socket_is_recreated_and_a_taken_path_left_alone() {
    if !kernel_tests_enabled("a_deleted_control_socket_is_recreated_and_a_taken_path_left_alone") {
        return;
    }
    let ns = Netns::new("ctl").unwrap();
    let dir = tmp("ctl");
    let sock = dir.join("c.sock");
    let cfg = format!("{FULLMESH}control:\n  socket: {}\n", sock.display());
    let mut d = Daemon::start(&ns, &cfg);
    d.wait_ready();
    assert_eq!(status(&sock).0, Some(0));
    let back_within = |what: &str, d: &Daemon| {
        let t0 = Instant::now();
        let ok = wait_for(Duration::from_secs(5), || {
            (status(&sock).0 == Some(0)).then_some(())
        });
        assert!(
            ok.is_some(),
            "{what}: status never answered again:\n{}",
            d.log()
        );
        t0.elapsed()
    };

    // A tmp cleaner deletes the file; a second daemon started meanwhile with the same
    // configuration is refused by the namespace's lock (it used to start).
    std::fs::remove_file(&sock).unwrap();
    let mut second = Daemon::spawn(&ns, &cfg, direct());
    let exited = second.wait_exit(Duration::from_secs(10));
    assert!(
        matches!(exited, Some((Some(75), _))),
        "{exited:?}\n{}",
        second.log()
    );
    let took = back_within("deleted", &d);
    eprintln!("status answered again {took:?} after the deletion");
    assert!(
        d.log()
            .contains("the control socket file was gone (deleted?): re-created it"),
        "{}",
        d.log()
    );

    // Something else takes the path: a regular file, renamed over the socket (a remove and a
    // write would race the daemon, which re-creates its socket as soon as the file is gone).
    // Left alone, logged once.
    let tmp_file = dir.join("other.tmp");
    std::fs::write(&tmp_file, "not yours").unwrap();
    std::fs::rename(&tmp_file, &sock).unwrap();
    assert!(
        d.wait_log(
            "the control socket path is taken by something else",
            Duration::from_secs(5)
        ),
        "{}",
        d.log()
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        d.count("the control socket path is taken by something else"),
        1,
        "logged once:\n{}",
        d.log()
    );
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "not yours");
    assert_ne!(status(&sock).0, Some(0));
    // Freed again: re-created.
    std::fs::remove_file(&sock).unwrap();
    let took = back_within("freed", &d);
    eprintln!("status answered again {took:?} after the path was freed");

    // Another process's live socket: left alone; once that process is gone (a stale file),
    // taken over.
    let other_path = dir.join("other.sock");
    let other = UnixListener::bind(&other_path).unwrap();
    std::fs::rename(&other_path, &sock).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || {
            (d.count("the control socket path is taken by something else") == 2).then_some(())
        })
        .is_some(),
        "{}",
        d.log()
    );
    assert!(d.log().contains("already running"), "{}", d.log());
    drop(other);
    let took = back_within("stale", &d);
    eprintln!("status answered again {took:?} after the other socket went stale");
    assert_eq!(
        d.count("re-created it"),
        3,
        "deleted, freed, stale:\n{}",
        d.log()
    );

    // A clean stop removes the (re-created) file.
    assert_eq!(d.stop(Duration::from_secs(10)), Some(0), "{}", d.log());
    assert!(!sock.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The daemon in `ns` with `yaml`, started through `wrapper` (if any); its exit code and log.
fn refused(ns: &Netns, yaml: &str, wrapper: Vec<String>) -> (Option<i32>, String) {
    let mut d = Daemon::spawn(
        ns,
        yaml,
        DaemonOpts {
            wrapper,
            ..DaemonOpts::default()
        },
    );
    match d.wait_exit(Duration::from_secs(30)) {
        Some((code, _)) => (code, d.log()),
        None => panic!("the daemon did not exit:\n{}", d.log()),
    }
}

/// Run the daemon in a private mount namespace where the sysctl file `name` of
/// /proc/sys/net/mptcp is covered by `cover` (a bind mount, read-only if asked).
fn masked(name: &str, cover: &Path, read_only: bool) -> Vec<String> {
    let target = format!("/proc/sys/net/mptcp/{name}");
    let mut script = format!("mount --bind {} {target}", cover.display());
    if read_only {
        script.push_str(&format!(" && mount -o remount,ro,bind {target}"));
    }
    script.push_str(" && exec \"$0\" \"$@\"");
    ["unshare", "-m", "--", "sh", "-c", &script]
        .map(String::from)
        .to_vec()
}

fn pm(ns: &Netns) -> String {
    ns.run(&["sysctl", "-n", "net.mptcp.path_manager"])
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn startup_refusals_exit_69_with_the_fix_in_the_message() {
    if !kernel_tests_enabled("startup_refusals_exit_69_with_the_fix_in_the_message") {
        return;
    }
    let dir = tmp("refusals");

    // MPTCP disabled in the namespace (real).
    let ns = Netns::new("off").unwrap();
    ns.sysctl("net.mptcp.enabled", "0").unwrap();
    let (code, log) = refused(&ns, FULLMESH, vec![]);
    assert_eq!(code, Some(69), "{log}");
    assert!(
        log.contains("MPTCP is disabled in this network namespace: sysctl -w net.mptcp.enabled=1"),
        "{log}"
    );

    // No MPTCP in the kernel (simulated: /proc/sys/net/mptcp hidden under an empty tmpfs).
    let hide = [
        "unshare",
        "-m",
        "--",
        "sh",
        "-c",
        "mount -t tmpfs none /proc/sys/net/mptcp && exec \"$0\" \"$@\"",
    ]
    .map(String::from)
    .to_vec();
    let (code, log) = refused(&ns, FULLMESH, hide);
    assert_eq!(code, Some(69), "{log}");
    assert!(
        log.contains("this kernel has no MPTCP support (/proc/sys/net/mptcp is missing)"),
        "{log}"
    );

    // The userspace PM not selected, and the daemon told not to select it (real).
    let ns = Netns::new("kpm").unwrap();
    assert_eq!(pm(&ns), "kernel");
    let no_set = format!("{FULLMESH}kernel:\n  set_userspace_pm: false\n");
    let (code, log) = refused(&ns, &no_set, vec![]);
    assert_eq!(code, Some(69), "{log}");
    assert!(
        log.contains("kernel.set_userspace_pm is false")
            && log.contains("sysctl -w net.mptcp.path_manager=userspace"),
        "{log}"
    );
    assert_eq!(pm(&ns), "kernel", "left as it was");

    // Not offered (simulated: available_path_managers says only `kernel`).
    let only_kernel = dir.join("available");
    std::fs::write(&only_kernel, "kernel\n").unwrap();
    let (code, log) = refused(
        &ns,
        FULLMESH,
        masked("available_path_managers", &only_kernel, false),
    );
    assert_eq!(code, Some(69), "{log}");
    assert!(
        log.contains("this kernel offers no userspace path manager") && log.contains("\"kernel\""),
        "{log}"
    );
    assert_eq!(pm(&ns), "kernel");

    // Offered but the write does not take (simulated: path_manager read-only).
    let ro = dir.join("path_manager");
    std::fs::write(&ro, "kernel\n").unwrap();
    let (code, log) = refused(&ns, FULLMESH, masked("path_manager", &ro, true));
    assert_eq!(code, Some(69), "{log}");
    assert!(
        log.contains("cannot select the userspace path manager"),
        "{log}"
    );
    assert_eq!(pm(&ns), "kernel");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_path_manager_the_pm_type_fallback_selects_the_userspace_pm() {
    if !kernel_tests_enabled("without_path_manager_the_pm_type_fallback_selects_the_userspace_pm") {
        return;
    }
    let dir = tmp("pm-type");
    // A unix socket cannot be opened (ENXIO): to the daemon, `path_manager` does not exist, as
    // on kernels before 6.15.
    let gone = dir.join("no-path-manager");
    let _sock = UnixListener::bind(&gone).unwrap();
    let ns = Netns::new("pmtype").unwrap();
    assert_eq!(pm(&ns), "kernel");
    let pm_type = || {
        ns.run(&["sysctl", "-n", "net.mptcp.pm_type"])
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(pm_type(), "0");

    // Told not to select it: refused, naming the old sysctl too.
    let no_set = format!("{FULLMESH}kernel:\n  set_userspace_pm: false\n");
    let (code, log) = refused(&ns, &no_set, masked("path_manager", &gone, false));
    assert_eq!(code, Some(69), "{log}");
    assert!(log.contains("net.mptcp.pm_type=1"), "{log}");
    assert_eq!(pm_type(), "0");

    // Allowed: it writes pm_type=1, which the real kernel takes (path_manager follows).
    let mut d = Daemon::spawn(
        &ns,
        FULLMESH,
        DaemonOpts {
            wrapper: masked("path_manager", &gone, false),
            ..DaemonOpts::default()
        },
    );
    d.wait_ready();
    assert!(
        d.log().contains("kernel ready") && d.log().contains("path_manager: userspace"),
        "{}",
        d.log()
    );
    assert_eq!(pm_type(), "1");
    assert_eq!(pm(&ns), "userspace");
    assert_eq!(d.stop(Duration::from_secs(10)), Some(0), "{}", d.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_metrics_address_that_cannot_be_bound_exits_73_before_touching_the_kernel() {
    if !kernel_tests_enabled(
        "a_metrics_address_that_cannot_be_bound_exits_73_before_touching_the_kernel",
    ) {
        return;
    }
    let ns = Netns::new("metrics").unwrap();
    // In use by another process in the namespace.
    let port = 9471;
    let _taken = ns
        .exec(move || std::net::TcpListener::bind(("127.0.0.1", port)))
        .unwrap()
        .unwrap();
    let cfg = format!("{FULLMESH}metrics:\n  listen: 127.0.0.1:{port}\n");
    let (code, log) = refused(&ns, &cfg, vec![]);
    assert_eq!(code, Some(73), "{log}");
    assert!(
        log.contains(&format!("cannot listen on metrics.listen 127.0.0.1:{port}"))
            && log.contains("Address already in use"),
        "{log}"
    );
    // An address this host does not have.
    let cfg = format!("{FULLMESH}metrics:\n  listen: 192.0.2.1:{port}\n");
    let (code, log) = refused(&ns, &cfg, vec![]);
    assert_eq!(code, Some(73), "{log}");
    assert!(
        log.contains("cannot listen on metrics.listen 192.0.2.1")
            && log.contains("Cannot assign requested address"),
        "{log}"
    );
    assert_eq!(
        pm(&ns),
        "kernel",
        "refused before selecting the userspace PM"
    );
}

/// `GLIBC_TUNABLES` of a running process.
fn tunables_of(pid: u32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    env.split(|&b| b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("GLIBC_TUNABLES=").map(String::from))
}

/// A glibc build restarts itself once, before anything else, with glibc's per-thread malloc
/// cache off (`glibc.malloc.tcache_count=0`; daemon/src/process/trim.rs says why): same
/// process name (what `pgrep`/`killall` match), one start-up, and the malloc settings made.
/// When the operator set `GLIBC_TUNABLES`, malloc is theirs: no restart, no setting made.
#[test]
fn a_glibc_build_restarts_with_the_malloc_cache_off_and_keeps_an_operators_settings() {
    if !kernel_tests_enabled(
        "a_glibc_build_restarts_with_the_malloc_cache_off_and_keeps_an_operators_settings",
    ) {
        return;
    }
    if !cfg!(target_env = "gnu") {
        eprintln!("skipped: not a glibc build (the re-exec is glibc's only)");
        return;
    }
    let ns = Netns::new("reexec").unwrap();
    let mut d = Daemon::start(&ns, FULLMESH);
    d.wait_ready();
    let pid = d.pid().unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "mptcp-pmd");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        daemon_bin().canonicalize().unwrap()
    );
    assert_eq!(
        tunables_of(pid).as_deref(),
        Some("glibc.malloc.tcache_count=0")
    );
    assert_eq!(d.count("mptcp-pmd starting"), 1, "{}", d.log());
    assert_eq!(d.count("allocator_tuned: true"), 1, "{}", d.log());
    assert_eq!(d.stop(Duration::from_secs(10)), Some(0), "{}", d.log());

    let own = "glibc.malloc.tcache_count=3:glibc.malloc.arena_max=2";
    let mut d = Daemon::spawn(
        &ns,
        FULLMESH,
        DaemonOpts {
            wrapper: vec!["env".into(), format!("GLIBC_TUNABLES={own}")],
            ..DaemonOpts::default()
        },
    );
    d.wait_ready();
    let pid = d.pid().unwrap();
    // glibc 2.36 leaves only the first tunable visible in /proc/PID/environ once it read
    // them all (the process still sees the whole list).
    let seen = tunables_of(pid).unwrap();
    assert!(own.starts_with(&seen) && !seen.is_empty(), "{seen}");
    assert_eq!(d.count("allocator_tuned: false"), 1, "{}", d.log());
    assert_eq!(d.stop(Duration::from_secs(10)), Some(0), "{}", d.log());
}
