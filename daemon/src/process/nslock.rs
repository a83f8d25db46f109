//! One path manager per network namespace, enforced: the namespace's lock is an abstract unix
//! socket with a fixed name ([`LOCK_NAME`], `@mptcp-pmd` in `ss -xl`), whatever
//! `control.socket` says. Abstract names belong to the network namespace of the socket that
//! binds them, not to the filesystem, and vanish with the last descriptor: a daemon in another
//! namespace has its own, and a crashed daemon leaves nothing stale behind (no file to clean,
//! no pid file to trust).
//!
//! Owns: taking the lock at start, before any kernel state is touched ([`NsLock::acquire`]);
//! naming the holder when it is taken (its pid from `SO_PEERCRED` of a connection to the lock,
//! which the kernel fills in, and its control socket from the one line it answers with); and
//! answering such probes while the daemon runs ([`NsLock::answer_probes`]).
//! Two daemons in one namespace would both act on every connection (duplicate joins, as
//! issue 15 found: 17 of 20 connections got a third subflow).

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slog::{debug, Logger};
use tokio::io::AsyncWriteExt;

/// The abstract name of the lock (shown by `ss -xl` as `@mptcp-pmd`).
pub const LOCK_NAME: &str = "mptcp-pmd";

/// How long a probe waits for the holder's answer line (the pid does not depend on it).
const ANSWER_WAIT: Duration = Duration::from_millis(300);

/// The lock is taken, or could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another mptcp-pmd already manages this network namespace ({holder}): it holds the \
         abstract unix socket @{name}. Only one path manager may run per network namespace; stop \
         that one first"
    )]
    Held {
        /// The lock's name.
        name: String,
        /// Who holds it, as far as we could learn.
        holder: Holder,
    },
    /// The socket could not be created or bound for another reason.
    #[error("cannot take the network namespace's lock (abstract unix socket @{name}): {source}")]
    Io {
        /// The lock's name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The process holding the lock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    /// Its pid, from `SO_PEERCRED` (`None`: unknown, e.g. in another pid namespace, or its
    /// queue was full).
    pub pid: Option<u32>,
    /// What it answered (its control socket and version), if it did.
    pub answer: Option<Answer>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "pid {pid}")?,
            None => write!(f, "pid unknown")?,
        }
        if let Some(a) = &self.answer {
            write!(f, ", control socket {}, version {}", a.control, a.version)?;
        }
        Ok(())
    }
}

/// The line a running daemon answers a probe of its lock with (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Its pid as it sees it.
    pub pid: u32,
    /// Its control socket path.
    pub control: String,
    /// Its version.
    pub version: String,
}

/// The held lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct NsLock {
    listener: Option<UnixListener>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl NsLock {
    /// Take the namespace's lock ([`LOCK_NAME`]) in the network namespace of the calling
    /// thread.
    pub fn acquire() -> Result<NsLock, LockError> {
        NsLock::acquire_named(LOCK_NAME)
    }

    /// Take the lock under another name (tests, which share one namespace).
    pub fn acquire_named(name: &str) -> Result<NsLock, LockError> {
        let io = |source| LockError::Io {
            name: name.to_string(),
            source,
        };
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).map_err(io)?;
        match UnixListener::bind_addr(&addr) {
            Ok(listener) => Ok(NsLock {
                listener: Some(listener),
                server: None,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(LockError::Held {
                name: name.to_string(),
                holder: probe(&addr),
            }),
            Err(e) => Err(io(e)),
        }
    }

    /// Answer every connection to the lock with `answer` (one JSON line) and close it, on the
    /// current actix/tokio loop: a second daemon learns whom to name, and probes never pile up
    /// in the listen queue. Stops when the lock is dropped.
    pub fn answer_probes(&mut self, answer: &Answer, log: Logger) -> std::io::Result<()> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        let mut line = serde_json::to_string(answer).map_err(std::io::Error::other)?;
        line.push('\n');
        listener.set_nonblocking(true)?;
        let listener = tokio::net::UnixListener::from_std(listener)?;
        self.server = Some(actix::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((mut s, _)) => {
                        // A local peer reading one short line: never blocks in practice, and a
                        // failure concerns only that peer.
                        let _ =
                            tokio::time::timeout(ANSWER_WAIT, s.write_all(line.as_bytes())).await;
                        debug!(log, "answered a probe of the namespace lock");
                    }
                    Err(e) => {
                        debug!(log, "namespace lock: accept failed"; "error" => %e);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
        Ok(())
    }
}

impl Drop for NsLock {
    fn drop(&mut self) {
        // The listener is owned by the task once served: end it (the name is freed when the
        // runtime drops the task, at the latest when the process exits).
        if let Some(t) = self.server.take() {
            t.abort();
        }
    }
}

/// Who holds the lock at `addr`: connect without blocking (a full listen queue answers EAGAIN
/// instead of waiting), read the peer's credentials, then its answer line if one comes within
/// [`ANSWER_WAIT`].
fn probe(addr: &SocketAddr) -> Holder {
    let Some(stream) = connect_nonblocking(addr) else {
        return Holder::default();
    };
    let pid = peer_pid(&stream);
    let answer = read_answer(stream);
    Holder { pid, answer }
}

fn connect_nonblocking(addr: &SocketAddr) -> Option<UnixStream> {
    let name = addr.as_abstract_name()?;
    // SAFETY: socket(2) with constant arguments; the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // Abstract: sun_path[0] is NUL, the name follows (not NUL-terminated).
    if name.len() + 1 > sun.sun_path.len() {
        return None;
    }
    for (dst, src) in sun.sun_path[1..].iter_mut().zip(name) {
        *dst = *src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
    // SAFETY: `sun` is a valid sockaddr_un and `len` does not exceed its size.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sun as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    if rc != 0 {
        return None;
    }
    Some(UnixStream::from(fd))
}

/// The pid of the process that called `listen` on the peer (`SO_PEERCRED`); `None` if it is
/// not visible from our pid namespace (0).
fn peer_pid(stream: &UnixStream) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which lives for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (rc == 0 && cred.pid > 0).then_some(cred.pid as u32)
}

fn read_answer(stream: UnixStream) -> Option<Answer> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(ANSWER_WAIT)).ok()?;
    let mut buf = Vec::with_capacity(256);
    stream.take(4096).read_to_end(&mut buf).ok()?;
    let line = std::str::from_utf8(&buf).ok()?.lines().next()?;
    serde_json::from_str(line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(tag: &str) -> String {
        format!("mptcp-pmd-test-{}-{tag}", std::process::id())
    }

    #[test]
    fn a_second_lock_names_the_holder_by_pid() {
        let n = name("pid");
        let first = NsLock::acquire_named(&n).unwrap();
        match NsLock::acquire_named(&n) {
            Err(LockError::Held { name, holder }) => {
                assert_eq!(name, n);
                // The holder is this process (it called listen); it does not answer (not served).
                assert_eq!(holder.pid, Some(std::process::id()));
                assert_eq!(holder.answer, None);
                let msg = LockError::Held { name, holder }.to_string();
                assert!(
                    msg.contains(&format!("pid {}", std::process::id())),
                    "{msg}"
                );
                assert!(msg.contains(&format!("@{n}")), "{msg}");
            }
            other => panic!("expected Held, got {other:?}"),
        }
        // Probes do not take the lock or break it: still held.
        assert!(matches!(
            NsLock::acquire_named(&n),
            Err(LockError::Held { .. })
        ));
        drop(first);
        // Released with the descriptor: no stale state.
        let again = NsLock::acquire_named(&n).unwrap();
        drop(again);
    }

    #[test]
    fn a_served_lock_answers_with_its_control_socket_and_survives_many_probes() {
        let n = name("served");
        let sys = actix::System::new();
        let answer = Answer {
            pid: 4242,
            control: "/run/x.sock".into(),
            version: "9.9.9".into(),
        };
        let log = Logger::root(slog::Discard, slog::o!());
        let mut lock = NsLock::acquire_named(&n).unwrap();
        sys.block_on(async {
            lock.answer_probes(&answer, log).unwrap();
            // More probes than any listen queue holds: each is answered and closed.
            for _ in 0..300 {
                let n2 = n.clone();
                let r = tokio::task::spawn_blocking(move || NsLock::acquire_named(&n2))
                    .await
                    .unwrap();
                match r {
                    Err(LockError::Held { holder, .. }) => {
                        assert_eq!(holder.pid, Some(std::process::id()));
                        assert_eq!(holder.answer.as_ref(), Some(&answer));
                        let text = holder.to_string();
                        assert!(text.contains("control socket /run/x.sock"), "{text}");
                    }
                    other => panic!("expected Held, got {other:?}"),
                }
            }
        });
        drop(lock);
        drop(sys);
        NsLock::acquire_named(&n).unwrap();
    }

    #[test]
    fn an_answer_that_is_not_ours_is_ignored() {
        let n = name("garbage");
        let addr = SocketAddr::from_abstract_name(n.as_bytes()).unwrap();
        let l = UnixListener::bind_addr(&addr).unwrap();
        let t = std::thread::spawn(move || {
            use std::io::Write;
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"\xff\xfe not json\n").unwrap();
        });
        let holder = probe(&addr);
        t.join().unwrap();
        assert_eq!(holder.pid, Some(std::process::id()));
        assert_eq!(holder.answer, None);
    }
}
