//! How long `PmClient::execute` and a GET_ADDR dump take on this kernel: the measurement behind
//! the transport's reply timeout (`transport::REPLY_TIMEOUT`; BENCHMARKS.md, "History", "The reply timeout").
//!
//! ```text
//! sudo cargo run --release -p mptcp-pmd-netlink --example execute-latency [-- N]
//! ```
//! As root. The process moves itself into a new, empty network namespace (only loopback,
//! nothing leaves it), selects the userspace path manager there, opens one MPTCP connection
//! 127.0.0.1 -> 127.0.0.1 and then, N times (default 10 000): SUBFLOW_CREATE from 127.0.0.2,
//! waits for its SUB_ESTABLISHED, SUBFLOW_DESTROY; then N GET_ADDR dumps of the connection.
//! It prints the distribution of each call's duration and how often a call found no reply
//! queued when `send` returned (and had to wait for it).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use mptcp_pmd_policies::{PmCommand, PmEvent, SubflowKey, Token};
use netlink_actor::genl::{PmClient, PmEventSocket};

const PORT: u16 = 4747;

type BoxError = Box<dyn std::error::Error>;

/// An MPTCP socket (IPPROTO_MPTCP), IPv4.
fn mptcp_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is checked and owned.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_MPTCP) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(a.ip().octets()),
        },
        sin_zero: [0; 8],
    }
}

/// bind(2) or connect(2) of `fd` to `a`.
fn with_addr(
    fd: &OwnedFd,
    a: SocketAddrV4,
    call: unsafe extern "C" fn(i32, *const libc::sockaddr, libc::socklen_t) -> i32,
) -> std::io::Result<()> {
    let sa = sockaddr(a);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sa` is a valid sockaddr_in of `len` bytes.
    if unsafe { call(fd.as_raw_fd(), std::ptr::from_ref(&sa).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Run a command line (words separated by spaces).
fn sh(line: &str) -> Result<(), BoxError> {
    let mut words = line.split(' ');
    let st = Command::new(words.next().unwrap_or_default())
        .args(words)
        .status()?;
    if !st.success() {
        return Err(format!("{line}: {st}").into());
    }
    Ok(())
}

/// The events until one matches `pred`.
fn wait_event<T>(
    ev: &mut PmEventSocket,
    mut pred: impl FnMut(&PmEvent) -> Option<T>,
) -> Result<T, BoxError> {
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        match ev.recv_batch() {
            Ok(batch) => {
                for e in batch.into_iter().flatten() {
                    if let Some(t) = pred(&e.event) {
                        return Ok(t);
                    }
                }
            }
            Err(e) if e.is_would_block() => std::thread::sleep(Duration::from_micros(50)),
            Err(e) => return Err(e.into()),
        }
    }
    Err("event not seen within 5 s".into())
}

#[derive(Default)]
struct Samples {
    name: &'static str,
    us: Vec<f64>,
    refused: usize,
}

impl Samples {
    fn time(&mut self, f: impl FnOnce() -> Result<(), netlink_actor::Error>) {
        let t0 = Instant::now();
        let r = f();
        self.us.push(t0.elapsed().as_secs_f64() * 1e6);
        if r.is_err() {
            self.refused += 1;
        }
    }

    fn report(&mut self) {
        self.us.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let i = ((self.us.len() as f64 - 1.0) * p).round() as usize;
            self.us.get(i).copied().unwrap_or(0.0)
        };
        println!(
            "{:<16} n={:<6} refused={:<4} p50={:>7.1} p90={:>7.1} p99={:>7.1} p99.9={:>7.1} max={:>8.1} (us)",
            self.name,
            self.us.len(),
            self.refused,
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            q(1.0)
        );
    }
}

fn run(n: usize) -> Result<(), BoxError> {
    // SAFETY: unshare(2) of the network namespace, before any thread exists: every thread
    // and child started later inherits the new namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {} (run as root)",
            std::io::Error::last_os_error()
        )
        .into());
    }
    sh("ip link set lo up")?;
    if std::fs::write("/proc/sys/net/mptcp/path_manager", "userspace").is_err() {
        std::fs::write("/proc/sys/net/mptcp/pm_type", "1")?;
    }
    sh("ip mptcp limits set subflows 8 add_addr_accepted 8")?;

    let mut ev = PmEventSocket::open(8 << 20)?;
    ev.set_nonblocking(true)?;
    let mut pm = PmClient::open()?;
    // Measure the whole distribution: no call may be cut short by the bound under test.
    pm.set_reply_timeout(Duration::from_secs(5));

    let server = SocketAddrV4::new(Ipv4Addr::LOCALHOST, PORT);
    let lfd = mptcp_socket()?;
    with_addr(&lfd, server, libc::bind)?;
    let listener = TcpListener::from(lfd);
    // SAFETY: listen(2) on a bound socket we own.
    if unsafe { libc::listen(listener.as_raw_fd(), 16) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut b = [0u8; 64];
        while let Ok(k) = s.read(&mut b) {
            if k == 0 || s.write_all(&b[..k]).is_err() {
                break;
            }
        }
    });
    let cfd = mptcp_socket()?;
    with_addr(&cfd, server, libc::connect)?;
    let mut conn = TcpStream::from(cfd);
    conn.write_all(b"hello")?;
    conn.read_exact(&mut [0u8; 5])?;
    let token: Token = wait_event(&mut ev, |e| match e {
        PmEvent::Established(c) if !c.flags.server_side => Some(c.token),
        _ => None,
    })?;

    let local = Ipv4Addr::new(127, 0, 0, 2);
    let remote = SocketAddr::V4(server);
    let mut create = Samples {
        name: "SUBFLOW_CREATE",
        ..Samples::default()
    };
    let mut destroy = Samples {
        name: "SUBFLOW_DESTROY",
        ..Samples::default()
    };
    let waited_before = pm.waited();
    for _ in 0..n {
        create.time(|| {
            pm.execute(&PmCommand::CreateSubflow {
                token,
                local: local.into(),
                local_id: 1,
                if_index: None,
                remote,
                backup: false,
            })
        });
        let key: SubflowKey = wait_event(&mut ev, |e| match e {
            PmEvent::SubEstablished(s) if s.token == token => Some(SubflowKey {
                local: s.local,
                remote: s.remote,
            }),
            _ => None,
        })?;
        destroy.time(|| pm.execute(&PmCommand::DestroySubflow { token, key }));
    }
    let waited_cmds = pm.waited() - waited_before;
    let mut get_addr = Samples {
        name: "GET_ADDR dump",
        ..Samples::default()
    };
    for _ in 0..n {
        get_addr.time(|| pm.get_addrs(Some(token)).map(drop));
    }
    let waited_dumps = pm.waited() - waited_before - waited_cmds;
    let tw = std::fs::read_to_string("/proc/net/sockstat")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .unwrap_or_default()
        .to_string();
    println!(
        "kernel {}",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")?.trim()
    );
    create.report();
    destroy.report();
    get_addr.report();
    println!(
        "calls that had to wait for their reply after send: {waited_cmds} of {} commands, \
         {waited_dumps} of {n} dumps; sockets at the end: {tw}",
        2 * n
    );
    Ok(())
}

fn main() -> ExitCode {
    let n = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 10_000,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("usage: execute-latency [N]");
            return ExitCode::from(2);
        }
    };
    match run(n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("execute-latency: {e}");
            ExitCode::FAILURE
        }
    }
}
