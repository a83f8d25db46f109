//! The transport's receive path against a fake kernel: a `NETLINK_USERSOCK` socket in this
//! process answers (or does not answer) the requests of a client socket connected to its port
//! id, and multicasts "events" to a group the client joined. Verified on Linux 6.18 before
//! building on it: USERSOCK delivers unicasts and group sends between two sockets of one
//! process, `recv` with MSG_TRUNC returns a datagram's real length, a socket connected to a
//! peer makes the kernel refuse unicasts from anyone else (ECONNREFUSED), and a full receive
//! queue on a group send gives the receiver ENOBUFS. None of it needs privileges.
//!
//! Shown here: an oversized genl reply is a typed error, not a mis-parse; a request never
//! answered times out after the bound; a slow answer within the bound is taken; a late ACK
//! is never taken for the next command's answer; EINTR neither fails a request nor extends its
//! bound; ENOBUFS is an overrun on the command and the event path; a batch of events larger
//! than one receive call is read whole and knows when the queue is empty.

// Test helpers outside #[test] functions may unwrap/panic too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::Cell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mptcp_pmd_policies::{PmCommand, PmEvent, Token};
use netlink_actor::genl::{PmClient, PmEventSocket, PmFamily};
use netlink_actor::mptcp_pm::{MPTCP_ATTR_TOKEN, MPTCP_EVENT_CLOSED, MPTCP_PM_VER};
use netlink_actor::transport::{Transport, RECV_BUF, REPLY_TIMEOUT};
use netlink_actor::wire::message;
use netlink_actor::Error;

mod common;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = libc::NLMSG_NOOP as u16;
const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
const NLM_F_CAPPED: u16 = libc::NLM_F_CAPPED as u16;
const NLM_F_ACK_TLVS: u16 = libc::NLM_F_ACK_TLVS as u16;
/// NLMSGERR_ATTR_MSG: the kernel's text in an extended ACK.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Any id: the fake kernel answers whatever it is sent.
const FAMILY: PmFamily = PmFamily {
    id: 0x1c,
    events_group: 3,
};

/// Slack for a loaded machine (the CPUs are shared) on top of a deadline.
const SLACK: Duration = Duration::from_millis(400);

/// A request as the fake kernel received it.
struct Request {
    bytes: Vec<u8>,
    seq: u32,
    from: u32,
}

/// The kernel's role, played by a NETLINK_USERSOCK socket.
struct Fake {
    fd: OwnedFd,
    port: u32,
}

fn sockaddr_nl(pid: u32, groups: u32) -> libc::sockaddr_nl {
    // SAFETY: plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa.nl_pid = pid;
    sa.nl_groups = groups;
    sa
}

const SA_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;

impl Fake {
    fn new() -> Fake {
        // SAFETY: plain system calls on a socket this function creates and owns.
        unsafe {
            let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_USERSOCK);
            assert!(fd >= 0, "{}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(fd);
            let sa = sockaddr_nl(0, 0);
            assert_eq!(
                libc::bind(fd.as_raw_fd(), std::ptr::from_ref(&sa).cast(), SA_LEN),
                0
            );
            let mut bound = sockaddr_nl(0, 0);
            let mut len = SA_LEN;
            assert_eq!(
                libc::getsockname(
                    fd.as_raw_fd(),
                    std::ptr::from_mut(&mut bound).cast(),
                    &mut len
                ),
                0
            );
            // A test that goes wrong must fail, not hang.
            let tv = libc::timeval {
                tv_sec: 5,
                tv_usec: 0,
            };
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::from_ref(&tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
            Fake {
                fd,
                port: bound.nl_pid,
            }
        }
    }

    /// The next request: its bytes, sequence number and sender's port (where to answer).
    fn recv(&self) -> Request {
        let mut bytes = vec![0u8; 65536];
        let mut from = sockaddr_nl(0, 0);
        let mut from_len = SA_LEN;
        // SAFETY: the buffer and `from` are writable for the lengths passed.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                bytes.as_mut_ptr().cast(),
                bytes.len(),
                0,
                std::ptr::from_mut(&mut from).cast(),
                &mut from_len,
            )
        };
        assert!(
            n > 0,
            "fake kernel: no request: {}",
            std::io::Error::last_os_error()
        );
        bytes.truncate(n as usize);
        let seq = message(&bytes).unwrap().seq();
        Request {
            bytes,
            seq,
            from: from.nl_pid,
        }
    }

    fn sendto(&self, sa: &libc::sockaddr_nl, bytes: &[u8]) -> std::io::Result<()> {
        // SAFETY: bytes and sa are valid for the lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                std::ptr::from_ref(sa).cast(),
                SA_LEN,
            )
        };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Unicast one datagram to `port`.
    fn send(&self, port: u32, bytes: &[u8]) {
        self.sendto(&sockaddr_nl(port, 0), bytes).unwrap();
    }

    /// Send one datagram to multicast group `group`.
    fn multicast(&self, group: u32, bytes: &[u8]) {
        match self.sendto(&sockaddr_nl(0, 1 << (group - 1)), bytes) {
            // The group got it; the unicast netlink adds to port 0 (no USERSOCK kernel
            // socket) is refused.
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {}
            other => other.unwrap(),
        }
    }
}

/// An NLMSG_ERROR answering request `seq`: errno 0 is an ACK.
fn ack(seq: u32, errno: i32, text: Option<&str>) -> Vec<u8> {
    let flags = NLM_F_CAPPED | if text.is_some() { NLM_F_ACK_TLVS } else { 0 };
    let mut body = (-errno).to_ne_bytes().to_vec();
    body.extend_from_slice(&common::message(FAMILY.id, 5, seq, &[])[..NLMSG_HDRLEN]);
    if let Some(t) = text {
        let mut z = t.as_bytes().to_vec();
        z.push(0);
        body.extend(common::attr(NLMSGERR_ATTR_MSG, &z));
    }
    common::message(NLMSG_ERROR, flags, seq, &body)
}

/// A client socket talking to `fake` instead of the kernel.
fn client_transport(fake: &Fake) -> Transport {
    let mut t = Transport::open(libc::NETLINK_USERSOCK, "test client").unwrap();
    t.connect(fake.port).unwrap();
    t
}

fn client(fake: &Fake) -> PmClient {
    PmClient::with_transport(client_transport(fake), FAMILY).unwrap()
}

/// A client of a fake kernel that plays `script` on its own thread.
fn scripted<T: Send + 'static>(
    script: impl FnOnce(&Fake) -> T + Send + 'static,
) -> (PmClient, thread::JoinHandle<T>) {
    let fake = Fake::new();
    let c = client(&fake);
    (c, thread::spawn(move || script(&fake)))
}

fn remove(id: u8) -> PmCommand {
    PmCommand::Remove {
        token: Token(0x1234_5678),
        id,
    }
}

fn closed_event(token: u32) -> Vec<u8> {
    assert_eq!(MPTCP_PM_VER, 1, "common::genl sends version 1");
    common::genl(
        FAMILY.id,
        MPTCP_EVENT_CLOSED,
        &[(MPTCP_ATTR_TOKEN, token.to_ne_bytes().to_vec())],
    )
}

#[test]
fn oversized_genl_reply_is_reported_not_truncated() {
    let (mut c, script) = scripted(move |f| {
        // Request 1: sixteen 4 KiB NOOPs fill exactly the client's buffer, and the kernel's
        // verdict (EINVAL) comes after them. Cut at the buffer size, the datagram would frame
        // cleanly and hold no answer at all.
        let r = f.recv();
        let mut dgram = Vec::new();
        while dgram.len() < RECV_BUF {
            dgram.extend(common::message(
                NLMSG_NOOP,
                0,
                r.seq,
                &[0u8; 4096 - NLMSG_HDRLEN],
            ));
        }
        assert_eq!(dgram.len(), RECV_BUF);
        dgram.extend(ack(r.seq, libc::EINVAL, Some("the verdict")));
        f.send(r.from, &dgram);
        // Request 2: answered normally.
        let r = f.recv();
        f.send(r.from, &ack(r.seq, 0, None));
        dgram.len()
    });
    let t0 = Instant::now();
    let err = c.execute(&remove(1)).unwrap_err();
    let took = t0.elapsed();
    // The socket is in sync: the next command gets its own answer.
    c.execute(&remove(2)).unwrap();
    let sent = script.join().unwrap();
    match err {
        Error::Truncated { what, len, cap } => {
            assert_eq!(what, "remove");
            assert_eq!(cap, RECV_BUF);
            assert_eq!(len, sent);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    // Reported at once, not after waiting for a verdict that was in the discarded datagram.
    assert!(took < REPLY_TIMEOUT, "{took:?}");
}

#[test]
fn a_request_never_answered_times_out_after_the_bound() {
    let fake = Fake::new();
    let mut c = client(&fake);
    let t0 = Instant::now();
    let err = c.execute(&remove(1)).unwrap_err();
    let took = t0.elapsed();
    assert!(
        matches!(err, Error::Timeout { what: "remove", after } if after == REPLY_TIMEOUT),
        "{err:?}"
    );
    assert!(took >= REPLY_TIMEOUT, "gave up early: {took:?}");
    assert!(took < REPLY_TIMEOUT + SLACK, "waited too long: {took:?}");
    // The fake did receive the command: silence, not a lost request.
    let r = fake.recv();
    assert_eq!(message(&r.bytes).unwrap().ty(), FAMILY.id);
}

#[test]
fn a_slow_answer_within_the_bound_is_taken() {
    let delay = REPLY_TIMEOUT / 2;
    let (mut c, script) = scripted(move |f| {
        let r = f.recv();
        thread::sleep(delay);
        f.send(r.from, &ack(r.seq, 0, None));
    });
    let t0 = Instant::now();
    c.execute(&remove(1)).unwrap();
    assert!(t0.elapsed() >= delay);
    assert_eq!(c.waited(), 1, "the one wait for the slow answer");
    script.join().unwrap();
}

#[test]
fn a_late_ack_is_not_taken_for_the_next_commands_answer() {
    let (mut c, script) = scripted(move |f| {
        let r1 = f.recv();
        // Command 1 is left unanswered until command 2 arrives (the client timed out by then);
        // then its ACK comes, late, just before command 2's refusal.
        let r2 = f.recv();
        assert_eq!(r2.seq, r1.seq.wrapping_add(1));
        assert_eq!(r1.from, r2.from);
        f.send(r1.from, &ack(r1.seq, 0, None));
        f.send(
            r1.from,
            &ack(r2.seq, libc::EPERM, Some("second command refused")),
        );
        // Command 3: its ACK shares a datagram with another (refusing) answer to command 1.
        let r3 = f.recv();
        let mut d = ack(r1.seq, libc::EINVAL, None);
        d.extend(ack(r3.seq, 0, None));
        f.send(r1.from, &d);
    });
    assert!(matches!(c.execute(&remove(1)), Err(Error::Timeout { .. })));
    match c.execute(&remove(2)) {
        Err(Error::Kernel {
            what,
            errno,
            message,
        }) => {
            assert_eq!(what, "remove");
            assert_eq!(errno, libc::EPERM);
            assert_eq!(message.as_deref(), Some("second command refused"));
        }
        other => panic!("command 2 took another answer: {other:?}"),
    }
    c.execute(&remove(3)).unwrap();
    script.join().unwrap();
}

#[test]
fn a_datagram_from_another_socket_never_reaches_the_client() {
    let intruder = Fake::new();
    let (mut c, script) = scripted(move |f| {
        let r = f.recv();
        // A forged ACK with the right sequence number, from a socket the client is not
        // connected to: the kernel refuses it.
        let forged = intruder.sendto(&sockaddr_nl(r.from, 0), &ack(r.seq, 0, None));
        assert_eq!(
            forged.map_err(|e| e.raw_os_error()),
            Err(Some(libc::ECONNREFUSED))
        );
        f.send(r.from, &ack(r.seq, libc::EACCES, None));
    });
    assert!(matches!(
        c.execute(&remove(1)),
        Err(Error::Kernel { errno, .. }) if errno == libc::EACCES
    ));
    script.join().unwrap();
}

thread_local! {
    /// Signals handled by this thread (the handler runs in the thread signalled; a const
    /// thread-local without destructor is a plain TLS access, safe in a handler).
    static SIGNALS: Cell<usize> = const { Cell::new(0) };
}

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.with(|n| n.set(n.get() + 1));
}

fn signals_here() -> usize {
    SIGNALS.with(Cell::get)
}

/// A SIGUSR1 handler without SA_RESTART, so that blocking calls in a signalled thread fail with
/// EINTR instead of being restarted.
fn install_eintr_handler() {
    // SAFETY: sigaction with a handler that only touches an atomic (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

/// Signal the calling thread every 5 ms until the returned flag is set (for 2 s at most, so
/// that a wait which signals keep extending ends in a failed assertion, not a hung test).
fn pester_me() -> (Arc<AtomicBool>, thread::JoinHandle<()>) {
    install_eintr_handler();
    // The calling thread by its kernel ids (plain integers, so they cross to the pestering
    // thread on every libc: musl's `pthread_t` is a pointer, which is not `Send`).
    // SAFETY: getpid and gettid have no preconditions.
    let (pid, me) = unsafe { (libc::getpid(), libc::syscall(libc::SYS_gettid)) };
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let h = thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(2);
        while !s.load(Ordering::Relaxed) && Instant::now() < until {
            // SAFETY: tgkill only sends a signal; thread `me` lives until `stop` is set (the
            // test joins this thread first), so its id is not reused meanwhile.
            unsafe { libc::syscall(libc::SYS_tgkill, pid, me, libc::SIGUSR1) };
            thread::sleep(Duration::from_millis(5));
        }
    });
    (stop, h)
}

#[test]
fn eintr_neither_fails_a_request_nor_extends_its_bound() {
    let delay = REPLY_TIMEOUT / 2;
    let (mut c, script) = scripted(move |f| {
        let r = f.recv();
        thread::sleep(delay);
        f.send(r.from, &ack(r.seq, 0, None));
        // The second request is never answered.
        let _ = f.recv();
    });
    let before = signals_here();
    let (stop, pest) = pester_me();
    let answered = c.execute(&remove(1));
    let t0 = Instant::now();
    let silent = c.execute(&remove(2));
    let took = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    pest.join().unwrap();
    let signals = signals_here() - before;
    assert!(signals >= 5, "only {signals} signals arrived");
    answered.unwrap();
    assert!(matches!(silent, Err(Error::Timeout { .. })), "{silent:?}");
    assert!(took >= REPLY_TIMEOUT, "{took:?}");
    assert!(
        took < REPLY_TIMEOUT + SLACK,
        "signals extended the bound: {took:?}"
    );
    script.join().unwrap();
}

#[test]
fn eintr_during_a_blocking_event_receive_is_retried() {
    let fake = Arc::new(Fake::new());
    let t = client_transport(&fake);
    t.join_group(FAMILY.events_group).unwrap();
    let mut ev = PmEventSocket::with_transport(t, FAMILY);
    let f = Arc::clone(&fake);
    let script = thread::spawn(move || {
        thread::sleep(Duration::from_millis(60));
        f.multicast(FAMILY.events_group, &closed_event(7));
    });
    let before = signals_here();
    let (stop, pest) = pester_me();
    let batch = ev.recv_batch();
    stop.store(true, Ordering::Relaxed);
    pest.join().unwrap();
    assert!(signals_here() - before >= 2);
    let batch = batch.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(
        batch[0].as_ref().unwrap().event,
        PmEvent::Closed { token: Token(7) }
    );
    script.join().unwrap();
}

/// Flood `group` until the client's small queue overflows.
fn flood(fake: &Fake, group: u32) {
    for i in 0..200 {
        fake.multicast(group, &closed_event(1000 + i));
    }
}

#[test]
fn enobufs_on_the_event_socket_is_an_overrun_and_events_flow_again() {
    let fake = Fake::new();
    let t = client_transport(&fake);
    t.set_recv_buffer(1).unwrap(); // the kernel's minimum: a few datagrams
    t.join_group(FAMILY.events_group).unwrap();
    let mut ev = PmEventSocket::with_transport(t, FAMILY);
    ev.set_nonblocking(true).unwrap();
    flood(&fake, FAMILY.events_group);
    let (mut got, mut overrun) = (0, false);
    loop {
        match ev.recv_batch() {
            Ok(b) => got += b.len(),
            Err(Error::Overrun) => overrun = true,
            Err(Error::WouldBlock) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(overrun, "no overrun after 200 events, read {got}");
    assert!(got < 200, "{got}");
    fake.multicast(FAMILY.events_group, &closed_event(42));
    let b = ev.recv_batch().unwrap();
    assert_eq!(
        b[0].as_ref().unwrap().event,
        PmEvent::Closed { token: Token(42) }
    );
}

/// A non-blocking event socket of `fake`'s events group with a 1 MiB receive buffer.
fn roomy_event_socket(fake: &Fake) -> PmEventSocket {
    let t = client_transport(fake);
    t.set_recv_buffer(1 << 20).unwrap();
    t.join_group(FAMILY.events_group).unwrap();
    let ev = PmEventSocket::with_transport(t, FAMILY);
    ev.set_nonblocking(true).unwrap();
    ev
}

#[test]
fn an_oversized_event_datagram_is_reported_as_lost_events() {
    let fake = Fake::new();
    let mut ev = roomy_event_socket(&fake);
    let mut big = Vec::new();
    while big.len() <= RECV_BUF {
        big.extend(closed_event(5));
    }
    fake.multicast(FAMILY.events_group, &big);
    let err = ev.recv_batch().unwrap_err();
    assert!(
        matches!(err, Error::Truncated { len, cap, .. } if len == big.len() && cap == RECV_BUF),
        "{err:?}"
    );
    assert!(err.lost_messages());
    fake.multicast(FAMILY.events_group, &closed_event(6));
    let b = ev.recv_batch().unwrap();
    assert_eq!(b.len(), 1, "nothing of the discarded datagram is decoded");
    assert_eq!(
        b[0].as_ref().unwrap().event,
        PmEvent::Closed { token: Token(6) }
    );
}

#[test]
fn enobufs_during_a_request_is_an_overrun_and_the_next_one_works() {
    let fake = Arc::new(Fake::new());
    let t = client_transport(&fake);
    t.set_recv_buffer(1).unwrap();
    // Only a group send can overflow a queue and raise ENOBUFS at the receiver (a unicast
    // from a user socket blocks its sender instead), so this command socket joins a group.
    t.join_group(5).unwrap();
    let mut c = PmClient::with_transport(t, FAMILY).unwrap();
    // Overflowed before the command goes out: its receive meets the ENOBUFS.
    flood(&fake, 5);
    let f = Arc::clone(&fake);
    let script = thread::spawn(move || {
        let r1 = f.recv();
        let r2 = f.recv();
        // Command 1's answer arrives after the client gave up on it: skipped by command 2.
        f.send(r1.from, &ack(r1.seq, libc::EINVAL, None));
        f.send(r2.from, &ack(r2.seq, 0, None));
    });
    let first = c.execute(&remove(1));
    assert!(matches!(first, Err(Error::Overrun)), "{first:?}");
    // The flood's leftovers (sequence 0) and the late answer are skipped; the ACK is matched.
    c.execute(&remove(2)).unwrap();
    script.join().unwrap();
}

#[test]
fn one_batch_reads_every_queued_event_in_order_and_knows_the_queue_is_empty() {
    let fake = Fake::new();
    let mut ev = roomy_event_socket(&fake);
    // More than one receive system call takes (16), and not a multiple of it.
    for i in 0..40 {
        fake.multicast(FAMILY.events_group, &closed_event(100 + i));
    }
    let b = ev.recv_batch().unwrap();
    let tokens: Vec<u32> = b
        .iter()
        .map(|e| match e.as_ref().unwrap().event {
            PmEvent::Closed { token } => token.0,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(tokens, (100..140).collect::<Vec<u32>>());
    assert!(ev.drained(), "40 of 40 read: the queue is empty");
    assert!(matches!(ev.recv_batch(), Err(Error::WouldBlock)));
    // Exactly one system call's worth: the batch cannot know the queue is empty until it
    // looks once more, and it says so only then.
    for i in 0..16 {
        fake.multicast(FAMILY.events_group, &closed_event(200 + i));
    }
    let b = ev.recv_batch().unwrap();
    assert_eq!(b.len(), 16);
    assert!(ev.drained());
}
