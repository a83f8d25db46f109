//! The daemon run in-process (`service::run`) in a client namespace of a real topology: it
//! starts, meshes a connection, applies a reload, stops when told and releases everything (a
//! second daemon re-adopts the connection); each of its five kernel sockets, made unusable,
//! stops it with exit code 70 naming that socket instead of leaving it half-blind; an overrun of
//! the rtnetlink monitor makes it re-dump addresses so that no change is lost.
//!
//! A socket is broken the way a dying one looks from user space: `dup2` of a pipe over its
//! descriptor (every later system call on it fails with ENOTSOCK). A `dup` of the original
//! keeps the socket alive, so the event loop still wakes up when the kernel queues a message.
//! The daemon's sockets are found among this process's descriptors, so these tests run one at
//! a time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use integration::observe::subflows;
use integration::{kernel_tests_enabled, wait_for, Netns, TopoOpts, Topology};
use mptcp_pmd::service::{self, Env, RunError};
use slog::Drain;
use tokio::sync::{mpsc, oneshot};

const PORT: u16 = 5601;

/// One daemon at a time in this process (see the module docs).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A log sink the test can read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A daemon running on a thread of this process, inside a namespace.
struct InProcess {
    log: Captured,
    stop: Option<oneshot::Sender<()>>,
    reloads: mpsc::UnboundedSender<mptcp_pmd_config::Config>,
    thread: Option<JoinHandle<Result<(), RunError>>>,
    /// The kernel's id of the thread `run` runs on (its event loop).
    tid: Arc<AtomicI32>,
    dir: PathBuf,
}

fn tmpdir(tag: &str) -> PathBuf {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "mptcp-pmd-inproc-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(dir: &Path, yaml: &str) -> mptcp_pmd_config::Config {
    let text = format!(
        "{yaml}\ncontrol:\n  socket: {}\n",
        dir.join("control.sock").display()
    );
    mptcp_pmd_config::parse(&text, "test.yaml").unwrap()
}

impl InProcess {
    fn start(ns: &Netns, yaml: &str) -> InProcess {
        let dir = tmpdir("daemon");
        let cfg = config(&dir, yaml);
        let log = Captured::default();
        let decorator = slog_term::PlainSyncDecorator::new(log.clone());
        let drain = slog_term::FullFormat::new(decorator).build().fuse();
        let logger = slog::Logger::root(drain, slog::o!());
        let (stop, stopped) = oneshot::channel::<()>();
        let (reloads, rx) = mpsc::unbounded_channel();
        let tid = Arc::new(AtomicI32::new(0));
        let my_tid = tid.clone();
        let thread = ns
            .exec_bg(move || {
                // SAFETY: gettid has no preconditions.
                my_tid.store(unsafe { libc::gettid() }, Ordering::Relaxed);
                let env = Env {
                    log: logger,
                    reloads: rx,
                    dry_run: false,
                };
                let shutdown = async {
                    let _ = stopped.await;
                };
                actix::System::new().block_on(service::run(cfg, env, shutdown))
            })
            .unwrap();
        InProcess {
            log,
            stop: Some(stop),
            reloads,
            thread: Some(thread),
            tid,
            dir,
        }
    }

    fn log(&self) -> String {
        self.log.text()
    }

    fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.log().contains(needle).then_some(())).is_some()
    }

    fn wait_ready(&self) {
        let ok = wait_for(Duration::from_secs(60), || {
            let log = self.log();
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                return Some(false);
            }
            log.contains("started").then_some(true)
        });
        assert_eq!(ok, Some(true), "daemon did not start:\n{}", self.log());
    }

    fn control_socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// One request on the control socket; the reply as JSON.
    fn request(&self, req: &str) -> serde_json::Value {
        let mut s = UnixStream::connect(self.control_socket()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(format!("{req}\n").as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Send a request and do not wait for the answer (the daemon may stop meanwhile).
    fn poke(&self, req: &str) {
        if let Ok(mut s) = UnixStream::connect(self.control_socket()) {
            let _ = s.write_all(format!("{req}\n").as_bytes());
        }
    }

    /// Wait until `run` returned on its own (or was stopped), and return what it returned.
    fn wait_exit(&mut self, timeout: Duration) -> Option<Result<(), RunError>> {
        let done = wait_for(timeout, || {
            self.thread
                .as_ref()
                .is_some_and(|t| t.is_finished())
                .then_some(())
        });
        done?;
        let t = self.thread.take()?;
        Some(t.join().unwrap())
    }

    /// Resolve the shutdown future and wait for `run` to return.
    fn stop(&mut self) -> Option<Result<(), RunError>> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.wait_exit(Duration::from_secs(20))
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
        if std::thread::panicking() {
            eprintln!("---- in-process mptcp-pmd log ----\n{}\n----", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn topo() -> Topology {
    // Two client links, one server link, the userspace PM on the client.
    let t = Topology::build(TopoOpts::default()).expect("topology");
    t.serve_echo(PORT).expect("echo server");
    t
}

const FULLMESH: &str = "policy: fullmesh\nsubflow:\n  backoff_initial_ms: 200\n";

/// Wait until the one connection to PORT has a subflow from each of `want`.
fn wait_meshed(t: &Topology, want: &[IpAddr]) -> bool {
    let want: BTreeSet<IpAddr> = want.iter().copied().collect();
    wait_for(Duration::from_secs(15), || {
        let m = subflows(&t.client, PORT);
        let ok = m.len() == 1
            && m.values().all(|v| {
                v.len() == want.len()
                    && v.iter().map(|s| s.local.ip()).collect::<BTreeSet<_>>() == want
            });
        ok.then_some(())
    })
    .is_some()
}

/// Names of this process's threads started by actix arbiters (`actix-rt|system:N|arbiter:M`,
/// cut to 15 characters by the kernel).
fn arbiter_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("actix-rt|"))
        })
        .count()
}

#[test]
fn starts_meshes_reloads_and_stops_in_process() {
    if !kernel_tests_enabled("starts_meshes_reloads_and_stops_in_process") {
        return;
    }
    let _one = serial();
    let t = topo();
    assert_eq!(arbiter_threads(), 0);
    let mut d = InProcess::start(&t.client, FULLMESH);
    d.wait_ready();
    assert_eq!(
        arbiter_threads(),
        1,
        "the sock_diag poller has its own thread"
    );
    let _conn = t.connect_many(PORT, 1).unwrap();
    let links = [t.client_addr(0), t.client_addr(1)];
    assert!(
        wait_meshed(&t, &links),
        "not meshed: {:?}\n{}",
        subflows(&t.client, PORT),
        d.log()
    );
    let status = d.request("status");
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(status["status"]["connections"][0]["policy"], "fullmesh");

    // A reload from the channel switches the policy (as SIGHUP does in `main`).
    d.reloads
        .send(config(&d.dir, "policy: ndiffports\n"))
        .unwrap();
    let switched = wait_for(Duration::from_secs(5), || {
        let s = d.request("status");
        (s["status"]["connections"][0]["policy"] == "ndiffports").then_some(())
    });
    assert!(
        switched.is_some(),
        "reload not applied: {}",
        d.request("status")
    );

    assert_eq!(d.stop(), Some(Ok(())), "{}", d.log());
    assert!(d.log().contains("stopped"), "{}", d.log());
    assert!(
        !d.control_socket().exists(),
        "the control socket is removed on stop"
    );
    assert_eq!(arbiter_threads(), 0, "the sock_diag thread is joined");

    // Everything was released: a second daemon in the same namespace starts and adopts the
    // connection the first one meshed.
    let mut again = InProcess::start(&t.client, FULLMESH);
    again.wait_ready();
    assert!(
        again.log().contains("adopted_connections: 1"),
        "{}",
        again.log()
    );
    assert_eq!(again.stop(), Some(Ok(())), "{}", again.log());
}

/// The daemon's netlink sockets, by what they are.
#[derive(Debug, Default)]
struct DaemonSockets {
    events: Vec<i32>,
    commands: Vec<i32>,
    diag: Vec<i32>,
    monitor: Vec<i32>,
    dumper: Vec<i32>,
}

fn sockopt_int(fd: i32, level: i32, opt: i32) -> Option<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a live c_int and its size.
    let rc =
        unsafe { libc::getsockopt(fd, level, opt, std::ptr::from_mut(&mut v).cast(), &mut len) };
    (rc == 0).then_some(v)
}

/// Whether a netlink socket joined any multicast group (NETLINK_LIST_MEMBERSHIPS).
fn has_groups(fd: i32) -> bool {
    let mut groups = [0u32; 8];
    let mut len = std::mem::size_of_val(&groups) as libc::socklen_t;
    // SAFETY: a live buffer and its size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_NETLINK,
            libc::NETLINK_LIST_MEMBERSHIPS,
            groups.as_mut_ptr().cast(),
            &mut len,
        )
    };
    rc == 0 && groups.iter().any(|g| *g != 0)
}

fn netlink_fds() -> BTreeSet<i32> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|fd| sockopt_int(*fd, libc::SOL_SOCKET, libc::SO_DOMAIN) == Some(libc::AF_NETLINK))
        .collect()
}

/// The netlink sockets opened since `before`.
fn daemon_sockets(before: &BTreeSet<i32>) -> DaemonSockets {
    let mut s = DaemonSockets::default();
    for fd in netlink_fds().difference(before).copied() {
        let proto = sockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL);
        let list = match (proto, has_groups(fd)) {
            (Some(libc::NETLINK_GENERIC), true) => &mut s.events,
            (Some(libc::NETLINK_GENERIC), false) => &mut s.commands,
            (Some(libc::NETLINK_SOCK_DIAG), _) => &mut s.diag,
            (Some(libc::NETLINK_ROUTE), true) => &mut s.monitor,
            (Some(libc::NETLINK_ROUTE), false) => &mut s.dumper,
            _ => continue,
        };
        list.push(fd);
    }
    s
}

fn one(fds: &[i32], what: &str) -> i32 {
    assert_eq!(fds.len(), 1, "expected one {what} socket, found {fds:?}");
    fds[0]
}

/// `fd` made unusable as described in the module docs; undone on drop.
struct Broken {
    keep: i32,
    pipe: [i32; 2],
}

fn break_fd(fd: i32) -> Broken {
    let mut pipe = [0; 2];
    // SAFETY: plain descriptor calls on descriptors this process owns.
    unsafe {
        assert_eq!(libc::pipe(pipe.as_mut_ptr()), 0);
        let keep = libc::dup(fd);
        assert!(keep >= 0);
        assert_eq!(libc::dup2(pipe[0], fd), fd);
        Broken { keep, pipe }
    }
}

impl Drop for Broken {
    fn drop(&mut self) {
        // SAFETY: descriptors created by `break_fd`.
        unsafe {
            libc::close(self.keep);
            libc::close(self.pipe[0]);
            libc::close(self.pipe[1]);
        }
    }
}

/// Force a receive buffer this small onto `fd` (root: SO_RCVBUFFORCE; the kernel's minimum
/// applies), so that a burst of messages overruns it.
fn shrink_rcvbuf(fd: i32) {
    let size: libc::c_int = 1;
    // SAFETY: a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            std::ptr::from_ref(&size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
}

/// A veth pair `b0`/`b1` (both ends up, so `b0` is usable) with `n` addresses of
/// 198.18.200.0/24 on `b0`: the primary .1 and `n - 1` secondaries, set up by one `ip -batch`.
fn veth_with_addresses(ns: &Netns, n: u8) {
    let mut batch =
        String::from("link add b0 type veth peer name b1\nlink set b0 up\nlink set b1 up\n");
    for i in 1..=n {
        batch.push_str(&format!("address add 198.18.200.{i}/24 dev b0\n"));
    }
    let path = tmpdir("batch").join("addrs");
    std::fs::write(&path, batch).unwrap();
    ns.sysctl("net.ipv4.conf.all.promote_secondaries", "0")
        .unwrap();
    ns.run(&["ip", "-batch", path.to_str().unwrap()]).unwrap();
}

/// Put thread `tid` on the CPUs of `cpus` only.
fn set_affinity(tid: i32, cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity get a live set and
    // its size.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in cpus {
            libc::CPU_SET(*c, &mut set);
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Delete the primary address of `b0` while the daemon cannot read: the kernel deletes every
/// secondary of its subnet with it and announces each removal back to back within that one
/// system call. `ip` runs at real-time priority on the CPU the daemon's event loop is pinned
/// to, so the daemon reads nothing before the system call returns, and a small receive
/// buffer overflows. The link itself does not change.
fn delete_primary_while_daemon_waits(ns: &Netns, d: &InProcess) {
    let tid = d.tid.load(Ordering::Relaxed);
    assert!(tid > 0);
    set_affinity(tid, &[0]).unwrap();
    let res = ns.run(&[
        "chrt",
        "-f",
        "10",
        "taskset",
        "-c",
        "0",
        "ip",
        "address",
        "del",
        "198.18.200.1/24",
        "dev",
        "b0",
    ]);
    let all: Vec<usize> =
        (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    // The thread is gone if the deletion made the daemon stop (a dead dump socket).
    let _ = set_affinity(tid, &all);
    res.unwrap();
}

fn usable_addresses(d: &InProcess) -> BTreeSet<String> {
    let r = d.request("addresses");
    r["addresses"]["usable"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .filter_map(|u| u["addr"].as_str().map(str::to_string))
        .collect()
}

/// How each socket is broken and what then makes the daemon use it.
#[derive(Debug, Clone, Copy)]
enum Case {
    Events,
    Commands,
    SockDiag,
    RtnlMonitor,
    RtnlDump,
}

#[test]
fn a_dead_kernel_socket_stops_the_daemon_with_exit_70() {
    if !kernel_tests_enabled("a_dead_kernel_socket_stops_the_daemon_with_exit_70") {
        return;
    }
    let _one = serial();
    let t = topo();
    let cases = [
        (Case::Events, "mptcp_pm events"),
        (Case::Commands, "mptcp_pm command"),
        (Case::SockDiag, "sock_diag"),
        (Case::RtnlMonitor, "rtnetlink monitor"),
        (Case::RtnlDump, "rtnetlink dump"),
    ];
    let mut conns: Vec<TcpStream> = Vec::new();
    for (case, name) in cases {
        let before = netlink_fds();
        let mut d = InProcess::start(&t.client, FULLMESH);
        d.wait_ready();
        let s = daemon_sockets(&before);
        let _broken = match case {
            Case::Events => {
                let b = break_fd(one(&s.events, "events"));
                // CREATED of a new connection wakes the events socket.
                conns.extend(t.connect_many(PORT, 1).unwrap());
                b
            }
            Case::Commands => {
                let b = break_fd(one(&s.commands, "command"));
                // The fullmesh's SUBFLOW_CREATE for the second link.
                conns.extend(t.connect_many(PORT, 1).unwrap());
                b
            }
            Case::SockDiag => {
                let b = break_fd(one(&s.diag, "sock_diag"));
                // A status takes a sock_diag snapshot (so does the periodic poll, while the
                // connections of the earlier cases exist).
                d.poke("status");
                b
            }
            Case::RtnlMonitor => {
                let b = break_fd(one(&s.monitor, "rtnetlink monitor"));
                t.client
                    .run(&["ip", "address", "add", "198.18.201.1/32", "dev", "lo"])
                    .unwrap();
                b
            }
            Case::RtnlDump => {
                veth_with_addresses(&t.client, 100);
                let b = break_fd(one(&s.dumper, "rtnetlink dump"));
                // An overrun of the monitor makes the daemon dump again, on the dead socket.
                shrink_rcvbuf(one(&s.monitor, "rtnetlink monitor"));
                delete_primary_while_daemon_waits(&t.client, &d);
                b
            }
        };
        let res = d.wait_exit(Duration::from_secs(20));
        let Some(Err(e)) = res else {
            panic!(
                "{case:?}: the daemon did not stop on its own: {res:?}\n{}",
                d.log()
            );
        };
        assert_eq!(e.code, 70, "{case:?}: {e}");
        let want = format!("the {name} socket failed (errno 88)");
        assert!(
            e.message.starts_with(&want),
            "{case:?}: {e:?}, want {want:?}"
        );
        assert!(d.log().contains("stopped"), "{case:?}:\n{}", d.log());
        assert!(!d.control_socket().exists(), "{case:?}");
        assert_eq!(
            arbiter_threads(),
            0,
            "{case:?}: the sock_diag thread is joined"
        );
        if matches!(case, Case::RtnlDump) {
            assert!(d.log().contains("rtnetlink overrun"), "{}", d.log());
        }
    }
}

#[test]
fn an_rtnetlink_overrun_is_recovered_by_a_dump() {
    if !kernel_tests_enabled("an_rtnetlink_overrun_is_recovered_by_a_dump") {
        return;
    }
    let _one = serial();
    let t = topo();
    let before = netlink_fds();
    let d = InProcess::start(&t.client, FULLMESH);
    d.wait_ready();
    let s = daemon_sockets(&before);
    let links: BTreeSet<String> = [t.client_addr(0), t.client_addr(1)]
        .iter()
        .map(|a| a.to_string())
        .collect();
    let ipv4 = |d: &InProcess| -> BTreeSet<String> {
        usable_addresses(d)
            .into_iter()
            .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
            .collect()
    };
    // 200 addresses on a new link, seen one by one (the buffer is still large).
    veth_with_addresses(&t.client, 200);
    let with_veth: BTreeSet<String> = (1..=200u8)
        .map(|i| format!("198.18.200.{i}"))
        .chain(links.iter().cloned())
        .collect();
    let mut seen = BTreeSet::new();
    let all = wait_for(Duration::from_secs(10), || {
        seen = ipv4(&d);
        (seen == with_veth).then_some(())
    });
    assert!(
        all.is_some(),
        "additions not seen: {} of {}\n{}",
        seen.len(),
        with_veth.len(),
        d.log()
    );
    assert!(
        !d.log().contains("rtnetlink overrun"),
        "an overrun before the test made one:\n{}",
        d.log()
    );

    // Now a buffer that holds two or three messages, and the 200 addresses deleted in one go:
    // most removals are lost, and only a dump can tell (the link stays as it was).
    shrink_rcvbuf(one(&s.monitor, "rtnetlink monitor"));
    delete_primary_while_daemon_waits(&t.client, &d);
    assert!(
        d.wait_log(
            "rtnetlink overrun: re-reading links and addresses",
            Duration::from_secs(10)
        ),
        "no overrun:\n{}",
        d.log()
    );
    let back = wait_for(Duration::from_secs(10), || {
        seen = ipv4(&d);
        (seen == links).then_some(())
    });
    assert!(
        back.is_some(),
        "removed addresses still usable: {:?}",
        seen.difference(&links).collect::<Vec<_>>()
    );
    // The monitor still works after the overrun.
    t.client
        .run(&["ip", "address", "add", "198.18.0.3/24", "dev", "c0"])
        .unwrap();
    let added = wait_for(Duration::from_secs(10), || {
        ipv4(&d).contains("198.18.0.3").then_some(())
    });
    assert!(
        added.is_some(),
        "an address added after the overrun was not seen\n{}",
        d.log()
    );
}
