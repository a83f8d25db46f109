//! The one netlink transport: every socket of the crate (`mptcp_pm` commands and events,
//! sock_diag, rtnetlink dumps and monitor) is a [`Transport`], and this is the only module that
//! makes socket system calls. The families above it are codecs plus a few lines of policy.
//!
//! The socket itself is neli's `NlSocket`: creation, bind, port id, non-blocking mode,
//! multicast membership, extended ACKs, the receive buffer and `send` are its calls. What
//! neli does not have is here, over its file descriptor:
//! - `connect` to the peer (the kernel, port 0): the kernel then refuses unicasts to the
//!   socket from any other process;
//! - the receives. neli's `recv` returns the length and the groups of a datagram but not its
//!   sender, and reads one datagram per call; here `recvfrom` checks the sender (a datagram
//!   from a port other than the peer's is dropped unread), and `recvmmsg` reads a batch of
//!   datagrams per call for the event socket ([`Transport::recv_datagrams`]);
//! - one receive buffer of [`RECV_BUF`] bytes, reused for every datagram. Each receive asks for
//!   the real length (`MSG_TRUNC`), so a larger datagram is reported as [`Error::Truncated`]
//!   instead of being decoded from its first bytes;
//! - the receive errors: EINTR is retried (without extending a deadline), ENOBUFS is
//!   [`Error::Overrun`], EAGAIN is [`Error::WouldBlock`];
//! - request/reply ([`Transport::request`], and dumps through it, [`crate::dump::run`]): the
//!   replies to a request are those with its sequence number, so a late reply to an earlier
//!   request that timed out is skipped, never taken for this one's; the wait for them is
//!   bounded by the reply timeout ([`REPLY_TIMEOUT`] unless changed); after a failure the
//!   replies still queued are read to their end, so that an abandoned dump does not keep the
//!   socket busy.
//!
//! neli's `NlRouter`, which also matches replies to requests, is not used: it is a second
//! transport that owns the socket from a thread of its own, with no bound on a reply's wait
//! and no batched receive (and the crate builds neli without it).
//!
//! The reply scanning itself is pure ([`Replies`], over neli's framing in [`crate::wire`]) and
//! tested on bytes; the real-socket behaviour is tested against a fake kernel
//! (`tests/fake_kernel.rs`, `NETLINK_USERSOCK`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use neli::consts::socket::{Msg, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;

use crate::error::{DecodeError, Error};
use crate::wire::{
    done_verdict, error_verdict, messages, Message, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDRLEN,
    NLMSG_MIN_TYPE,
};

/// Size of the receive buffer of every socket. The kernel's dump datagrams are at most 32 KiB
/// (`netlink_dump` caps its allocation there), events and ACKs are a few hundred bytes.
pub const RECV_BUF: usize = 64 * 1024;

/// How long a request waits for the end of its replies by default.
///
/// The kernel answers every request we send (mptcp_pm, sock_diag, rtnetlink) inside the
/// `sendmsg` that carries it: the ACK is queued before `send` returns. Measured on Linux 6.18
/// (`examples/execute-latency.rs`, 10 000 SUBFLOW_CREATE, 10 000 SUBFLOW_DESTROY and 10 000
/// GET_ADDR dumps): see BENCHMARKS.md, "History", "The reply timeout", for the distribution; the
/// bound is far above its tail, so that only a kernel that does not answer at all hits it, and
/// the daemon's event loop (which executes commands synchronously) stalls at most this long.
pub const REPLY_TIMEOUT: Duration = Duration::from_millis(100);

/// One message recorded by [`Transport::set_trace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Traced {
    /// A request as sent.
    Sent(Vec<u8>),
    /// A reply message (header included) with the request's sequence number.
    Received(Vec<u8>),
}

/// A netlink socket with its receive buffer; see the module docs.
pub struct Transport {
    sock: NlSocket,
    /// Names the socket in errors that concern no particular request.
    what: &'static str,
    port: u32,
    peer: u32,
    seq: u32,
    buf: Vec<u8>,
    reply_timeout: Duration,
    /// Requests that found no reply queued after `send` and had to wait (diagnostics).
    waited: u64,
    trace: Option<Vec<Traced>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("what", &self.what)
            .field("fd", &self.sock.as_raw_fd())
            .field("port", &self.port)
            .field("peer", &self.peer)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// Pass a plain C value to `setsockopt`.
fn setsockopt<T>(fd: RawFd, level: i32, opt: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live, initialised `T` and we pass its exact size; the kernel only
    // reads that many bytes. An invalid fd or option is reported as an error, not UB.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            std::ptr::from_ref(value).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The error of a receive call that just failed (from `errno`), or `None` for EINTR (retry):
/// ENOBUFS is [`Error::Overrun`], EAGAIN [`Error::WouldBlock`], anything else [`Error::Io`].
fn receive_failed(what: &'static str, step: &'static str) -> Option<Error> {
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINTR) => None,
        Some(libc::ENOBUFS) => Some(Error::Overrun),
        _ if e.kind() == io::ErrorKind::WouldBlock => Some(Error::WouldBlock),
        _ => Some(Error::Io {
            what,
            step,
            source: e,
        }),
    }
}

fn sockaddr_nl(port: u32) -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value (family fixed below).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa.nl_pid = port;
    sa
}

const SOCKADDR_NL_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_nl>() as _;

impl Transport {
    /// Open a netlink socket of `protocol` (`libc::NETLINK_GENERIC`, `NETLINK_ROUTE`, ...) in
    /// the calling thread's network namespace, bound to a port id of the kernel's choice and
    /// connected to the kernel. `what` names the socket in errors.
    pub fn open(protocol: i32, what: &'static str) -> Result<Self, Error> {
        let sock = NlSocket::new(NlFamily::from(protocol)).map_err(Error::io(what, "socket"))?;
        sock.bind(None, Groups::empty())
            .map_err(Error::io(what, "bind"))?;
        let port = sock.pid().map_err(Error::io(what, "getsockname"))?;
        let mut t = Transport {
            sock,
            what,
            port,
            peer: 0,
            seq: 0,
            buf: vec![0; RECV_BUF],
            reply_timeout: REPLY_TIMEOUT,
            waited: 0,
            trace: None,
        };
        t.connect(0)?;
        Ok(t)
    }

    /// Talk to the socket with port id `peer` instead of the kernel (port 0): requests go
    /// there, and only its datagrams are received (the kernel refuses unicasts from others).
    /// For tests, where a `NETLINK_USERSOCK` socket plays the kernel.
    pub fn connect(&mut self, peer: u32) -> Result<(), Error> {
        let sa = sockaddr_nl(peer);
        // SAFETY: `sa` is a valid sockaddr_nl of the size we pass.
        let rc = unsafe {
            libc::connect(
                self.sock.as_raw_fd(),
                std::ptr::from_ref(&sa).cast(),
                SOCKADDR_NL_LEN,
            )
        };
        if rc != 0 {
            return Err(Error::io(self.what, "connect")(io::Error::last_os_error()));
        }
        self.peer = peer;
        Ok(())
    }

    /// This socket's port id (the `nl_pid` the kernel assigned at bind).
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Join multicast group `group` (a group number, not a bit mask).
    pub fn join_group(&self, group: u32) -> Result<(), Error> {
        self.sock
            .add_mcast_membership(Groups::new_groups(&[group]))
            .map_err(Error::io(self.what, "setsockopt NETLINK_ADD_MEMBERSHIP"))
    }

    /// Ask the kernel to explain its refusals (NETLINK_EXT_ACK): the text and the offending
    /// attribute's offset come back as extended-ACK attributes ([`crate::wire::Verdict`]).
    pub fn enable_ext_ack(&self) -> Result<(), Error> {
        self.sock
            .enable_ext_ack(true)
            .map_err(Error::io(self.what, "setsockopt NETLINK_EXT_ACK"))
    }

    /// Set an integer socket option; `step` names it in the error.
    pub fn set_option(
        &self,
        level: i32,
        opt: i32,
        value: i32,
        step: &'static str,
    ) -> Result<(), Error> {
        setsockopt(self.sock.as_raw_fd(), level, opt, &value).map_err(Error::io(self.what, step))
    }

    /// Ask for a receive buffer of `bytes`: SO_RCVBUFFORCE when privileged (beyond
    /// `net.core.rmem_max`), else SO_RCVBUF (capped by it). The kernel doubles the value for
    /// its bookkeeping and enforces a small minimum.
    pub fn set_recv_buffer(&self, bytes: usize) -> Result<(), Error> {
        let bytes = bytes.min(i32::MAX as usize);
        // neli has SO_RCVBUF only; SO_RCVBUFFORCE is ours.
        let size = i32::try_from(bytes).unwrap_or(i32::MAX);
        let forced = setsockopt(
            self.sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size,
        );
        if forced.is_ok() {
            return Ok(());
        }
        self.sock
            .set_recv_buffer_size(bytes)
            .map_err(Error::io(self.what, "setsockopt SO_RCVBUF"))
    }

    /// Switch between blocking (the default) and non-blocking receives of
    /// [`Transport::recv_datagram`]. Requests never block beyond their reply timeout either way.
    pub fn set_nonblocking(&self, nonblocking: bool) -> Result<(), Error> {
        if nonblocking {
            self.sock.nonblock()
        } else {
            self.sock.block()
        }
        .map_err(Error::io(self.what, "fcntl O_NONBLOCK"))
    }

    /// How long [`Transport::request`] waits for the end of the replies
    /// (default [`REPLY_TIMEOUT`]).
    pub fn set_reply_timeout(&mut self, after: Duration) {
        self.reply_timeout = after;
    }

    /// The current reply timeout.
    pub fn reply_timeout(&self) -> Duration {
        self.reply_timeout
    }

    /// How many waits [`Transport::request`] made for a reply that was not queued yet (the
    /// kernel queues its answers inside `send`, so this stays 0 unless it is slow or silent).
    pub fn waited(&self) -> u64 {
        self.waited
    }

    /// Record (or stop recording) the bytes of requests and of their replies, for captures and
    /// debugging; see [`Transport::take_trace`].
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    /// The messages recorded since the last call (empty when tracing is off).
    pub fn take_trace(&mut self) -> Vec<Traced> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The next sequence number for a request (never 0, which multicast messages carry).
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Send one datagram to the peer.
    pub fn send(&mut self, what: &'static str, datagram: &[u8]) -> Result<(), Error> {
        loop {
            match self.sock.send(datagram, Msg::empty()) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Io {
                        what,
                        step: "send",
                        source,
                    })
                }
            }
        }
        if let Some(t) = self.trace.as_mut() {
            t.push(Traced::Sent(datagram.to_vec()));
        }
        Ok(())
    }

    /// Receive one datagram from the peer into the buffer; returns its length. EINTR is
    /// retried, datagrams from other senders are dropped.
    fn recv(&mut self, what: &'static str, flags: i32) -> Result<usize, Error> {
        loop {
            let mut from = sockaddr_nl(0);
            let mut from_len = SOCKADDR_NL_LEN;
            // SAFETY: the buffer pointer and length describe `self.buf`, `from` is writable
            // storage of `from_len` bytes; the kernel writes at most that much into each.
            let rc = unsafe {
                libc::recvfrom(
                    self.sock.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    flags | libc::MSG_TRUNC,
                    std::ptr::from_mut(&mut from).cast(),
                    &mut from_len,
                )
            };
            let Ok(len) = usize::try_from(rc) else {
                match receive_failed(what, "recv") {
                    Some(e) => return Err(e),
                    None => continue,
                }
            };
            if from.nl_pid != self.peer {
                continue;
            }
            // With MSG_TRUNC, netlink returns the datagram's real length, not what was copied.
            if len > self.buf.len() {
                return Err(Error::Truncated {
                    what,
                    len,
                    cap: self.buf.len(),
                });
            }
            return Ok(len);
        }
    }

    /// Receive one datagram (blocking unless the socket is non-blocking, or `dont_wait`) and
    /// return its bytes. For multicast subscribers; requests use [`Transport::request`].
    ///
    /// Errors: [`Error::WouldBlock`], [`Error::Overrun`] (ENOBUFS: messages were lost),
    /// [`Error::Truncated`] (a datagram larger than [`RECV_BUF`], discarded), [`Error::Io`].
    pub fn recv_datagram(&mut self, dont_wait: bool) -> Result<&[u8], Error> {
        let flags = if dont_wait { libc::MSG_DONTWAIT } else { 0 };
        let len = self.recv(self.what, flags)?;
        Ok(self.buf.get(..len).unwrap_or_default())
    }

    /// Receive as many datagrams as `slots` holds, in one system call (`recvmmsg`): blocking
    /// for the first one unless the socket is non-blocking or `dont_wait`, then only what is
    /// queued. Read them with [`RecvSlots::datagrams`]; fewer than [`RecvSlots::capacity`]
    /// means the queue was empty when the call returned. For multicast subscribers: one wake-up
    /// costs one system call, not one per datagram plus one that finds the socket empty.
    ///
    /// Errors (before any datagram was read): [`Error::WouldBlock`], [`Error::Overrun`]
    /// (ENOBUFS: messages were lost), [`Error::Io`]. An error after some datagrams were read
    /// is kept by the kernel and returned by the next call.
    pub fn recv_datagrams(&mut self, slots: &mut RecvSlots, dont_wait: bool) -> Result<(), Error> {
        slots.filled = 0;
        let count = slots.lens.len();
        let size = slots.size;
        let mut iov: Vec<libc::iovec> = slots
            .bufs
            .chunks_mut(size)
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let mut hdrs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .zip(slots.from.iter_mut())
            .map(|(v, from)| {
                // SAFETY: msghdr and mmsghdr are plain old data; zero is a valid value for
                // every field (no control data, no flags).
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = std::ptr::from_mut(from).cast();
                h.msg_hdr.msg_namelen = SOCKADDR_NL_LEN;
                h.msg_hdr.msg_iov = v;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        let flags = libc::MSG_TRUNC
            | if dont_wait {
                libc::MSG_DONTWAIT
            } else {
                libc::MSG_WAITFORONE
            };
        let n = loop {
            // SAFETY: `hdrs` holds `count` headers, each pointing at one live iovec over its own
            // `size`-byte slice of `slots.bufs` and at its own sockaddr_nl; all outlive the call
            // and the kernel writes at most their stated sizes. No timeout.
            let rc = unsafe {
                libc::recvmmsg(
                    self.sock.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    count as libc::c_uint,
                    // c_int in glibc, c_uint in musl; the flags are small and positive.
                    flags as _,
                    std::ptr::null_mut(),
                )
            };
            if let Ok(n) = usize::try_from(rc) {
                break n;
            }
            if let Some(e) = receive_failed(self.what, "recvmmsg") {
                return Err(e);
            }
        };
        for (i, h) in hdrs.iter().take(n).enumerate() {
            // With MSG_TRUNC, netlink reports each datagram's real length.
            slots.lens[i] = h.msg_len as usize;
            slots.foreign[i] = slots.from[i].nl_pid != self.peer;
        }
        slots.filled = n;
        Ok(())
    }

    /// Wait until the socket is readable or `deadline` passes (EINTR: `Ok`, the caller looks
    /// again). `Ok(false)` is the deadline.
    fn wait_readable(&self, what: &'static str, deadline: Instant) -> Result<bool, Error> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let ts = libc::timespec {
            // `time_t` by inference (libc deprecates naming it on musl); i32::MAX s is ~68 years.
            tv_sec: left.as_secs().try_into().unwrap_or(i32::MAX.into()),
            tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
        };
        let mut pfd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd and a valid timespec, both live for the call; no signal mask.
        let rc = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
        match rc {
            0 => Ok(false),
            r if r > 0 => Ok(true),
            _ => {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    Ok(true)
                } else {
                    Err(Error::Io {
                        what,
                        step: "poll",
                        source: e,
                    })
                }
            }
        }
    }

    /// Send `req` (built with sequence number `seq`, from [`Transport::next_seq`]) and feed
    /// every reply message of that sequence number to `on_msg`, until the ACK, NLMSG_DONE or
    /// the kernel's error. `req` must be a dump or carry NLM_F_ACK, so that its end is marked.
    ///
    /// The replies are read without blocking as long as some are queued (the kernel queues
    /// them inside `send`, and builds each dump part inside the `recv` of the previous one);
    /// only when none is there does it wait, at most the reply timeout without a message of
    /// this request ([`Error::Timeout`]; signals do not extend it). After a failure (a datagram too large, a reply `on_msg` cannot decode) the
    /// replies already queued are still read, so that an abandoned dump does not keep the
    /// socket busy (the kernel would refuse the next dump with EBUSY); the first failure is
    /// returned.
    pub fn request(
        &mut self,
        what: &'static str,
        seq: u32,
        req: &[u8],
        mut on_msg: impl FnMut(&Message<'_>) -> Result<(), DecodeError>,
    ) -> Result<(), Error> {
        self.send(what, req)?;
        let mut replies = Replies::new(what, seq);
        let mut deadline = None;
        loop {
            let len = match self.recv(what, libc::MSG_DONTWAIT) {
                Ok(len) => len,
                Err(Error::WouldBlock) if replies.failed() => return replies.finish(),
                Err(Error::WouldBlock) => {
                    self.waited += 1;
                    let at = *deadline.get_or_insert_with(|| Instant::now() + self.reply_timeout);
                    if !self.wait_readable(what, at)? {
                        return Err(Error::Timeout {
                            what,
                            after: self.reply_timeout,
                        });
                    }
                    continue;
                }
                Err(e @ Error::Truncated { .. }) => {
                    replies.fail(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let before = replies.matched();
            let datagram = self.buf.get(..len).unwrap_or_default();
            if replies.feed(datagram, &mut on_msg, self.trace.as_mut()) == Step::Done {
                return replies.finish();
            }
            if replies.matched() != before {
                // The kernel is answering: the bound is on silence, not on a long dump.
                deadline = None;
            }
        }
    }
}

impl AsRawFd for Transport {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl AsFd for Transport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the NlSocket owns this fd and closes it only when dropped, which the borrow
        // of `self` prevents while the BorrowedFd lives.
        unsafe { BorrowedFd::borrow_raw(self.sock.as_raw_fd()) }
    }
}

/// Buffers for [`Transport::recv_datagrams`]: `capacity` datagrams of up to [`RECV_BUF`]
/// bytes each (memory is only touched where datagrams land).
pub struct RecvSlots {
    bufs: Vec<u8>,
    size: usize,
    from: Vec<libc::sockaddr_nl>,
    lens: Vec<usize>,
    foreign: Vec<bool>,
    filled: usize,
}

impl std::fmt::Debug for RecvSlots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvSlots")
            .field("capacity", &self.lens.len())
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

impl RecvSlots {
    /// Room for `capacity` (at least 1) datagrams.
    pub fn new(capacity: usize) -> Self {
        Self::with_size(capacity, RECV_BUF)
    }

    /// Room for `capacity` (at least 1) datagrams of up to `size` bytes each (a larger one is
    /// reported as [`Error::Truncated`]): for replies known to be small, such as sock_diag
    /// lookups.
    pub fn with_size(capacity: usize, size: usize) -> Self {
        let (capacity, size) = (capacity.max(1), size.max(NLMSG_HDRLEN));
        RecvSlots {
            bufs: vec![0; capacity * size],
            size,
            from: vec![sockaddr_nl(0); capacity],
            lens: vec![0; capacity],
            foreign: vec![false; capacity],
            filled: 0,
        }
    }

    /// How many datagrams one call can receive.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// How many the last call received (datagrams from other senders included).
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// The datagrams of the last call, in order: their bytes, or [`Error::Truncated`] for one
    /// larger than a slot (discarded by the kernel). Datagrams from a sender other than the
    /// peer are left out.
    pub fn datagrams<'a>(
        &'a self,
        what: &'static str,
    ) -> impl Iterator<Item = Result<&'a [u8], Error>> + 'a {
        (0..self.filled)
            .filter(|&i| !self.foreign[i])
            .map(move |i| {
                let len = self.lens[i];
                if len > self.size {
                    return Err(Error::Truncated {
                        what,
                        len,
                        cap: self.size,
                    });
                }
                let start = i * self.size;
                Ok(self.bufs.get(start..start + len).unwrap_or_default())
            })
    }
}

/// Whether the replies to a request are complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Its end (ACK, NLMSG_DONE or error) is not seen yet.
    More,
    /// Its end was seen: [`Replies::finish`] has the outcome.
    Done,
}

/// The replies to one request, fed datagram by datagram: the pure core of
/// [`Transport::request`], tested on captured bytes.
///
/// A message belongs to the request if it carries its sequence number; others (late replies
/// to an earlier request, leftovers of an abandoned dump) are skipped. Control messages other
/// than ACK / error / NLMSG_DONE are skipped. A datagram that cannot be framed, or a reply
/// `on_msg` cannot decode, is a failure, but the replies are still read to their end.
#[derive(Debug)]
pub struct Replies {
    what: &'static str,
    seq: u32,
    matched: usize,
    failure: Option<Error>,
}

impl Replies {
    /// Expect the replies to request `seq`; `what` names it in errors.
    pub fn new(what: &'static str, seq: u32) -> Self {
        Replies {
            what,
            seq,
            matched: 0,
            failure: None,
        }
    }

    /// Record a failure; the first one is what [`Replies::finish`] reports.
    pub fn fail(&mut self, e: Error) {
        self.failure.get_or_insert(e);
    }

    /// How many messages of the request were seen so far (progress, for a waiting caller).
    pub fn matched(&self) -> usize {
        self.matched
    }

    /// Whether something failed already.
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// The outcome: `Ok` if nothing failed.
    pub fn finish(self) -> Result<(), Error> {
        self.failure.map_or(Ok(()), Err)
    }

    /// Feed one datagram. Data messages of the request go to `on_msg`; each message of the
    /// request is appended to `trace` if given.
    pub fn feed(
        &mut self,
        datagram: &[u8],
        on_msg: &mut impl FnMut(&Message<'_>) -> Result<(), DecodeError>,
        mut trace: Option<&mut Vec<Traced>>,
    ) -> Step {
        let what = self.what;
        for m in messages(datagram) {
            let m = match m {
                Ok(m) => m,
                Err(source) => {
                    self.fail(Error::Decode { what, source });
                    return Step::More;
                }
            };
            if m.seq() != self.seq {
                continue;
            }
            self.matched += 1;
            if let Some(t) = trace.as_deref_mut() {
                t.push(Traced::Received(m.bytes().to_vec()));
            }
            match m.ty() {
                NLMSG_ERROR => {
                    match error_verdict(&m) {
                        Ok(v) if v.errno == 0 => {}
                        Ok(v) => self.fail(Error::Kernel {
                            what,
                            errno: v.errno,
                            message: v.message,
                        }),
                        Err(source) => self.fail(Error::Decode { what, source }),
                    }
                    return Step::Done;
                }
                NLMSG_DONE => {
                    let done = done_verdict(&m);
                    if done.errno != 0 {
                        self.fail(Error::Kernel {
                            what,
                            errno: done.errno,
                            message: done.message,
                        });
                    }
                    return Step::Done;
                }
                ty if ty < NLMSG_MIN_TYPE => {}
                _ => {
                    if let Err(source) = on_msg(&m) {
                        self.fail(Error::Decode { what, source });
                    }
                }
            }
        }
        Step::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_message as msg;

    const NLM_F_MULTI: u16 = libc::NLM_F_MULTI as u16;
    const NLM_F_CAPPED: u16 = libc::NLM_F_CAPPED as u16;
    const NLM_F_ACK_TLVS: u16 = libc::NLM_F_ACK_TLVS as u16;

    fn ack(seq: u32, errno: i32) -> Vec<u8> {
        let mut body = (-errno).to_ne_bytes().to_vec();
        body.extend_from_slice(&msg(0x1c, 0, seq, &[])[..NLMSG_HDRLEN]);
        msg(NLMSG_ERROR, NLM_F_CAPPED, seq, &body)
    }

    fn data(seq: u32, v: u32) -> Vec<u8> {
        msg(0x1c, NLM_F_MULTI, seq, &v.to_ne_bytes())
    }

    fn read_u32(m: &Message<'_>) -> Result<u32, DecodeError> {
        m.payload()
            .get(..4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_ne_bytes)
            .ok_or(DecodeError::Truncated {
                what: "test payload",
                need: 4,
                have: m.payload().len(),
            })
    }

    #[test]
    fn a_late_ack_of_another_request_is_skipped() {
        let mut dgram = ack(6, 0);
        dgram.extend(data(6, 1));
        dgram.extend(data(7, 42));
        dgram.extend(ack(7, 0));
        let mut r = Replies::new("t", 7);
        let mut got = Vec::new();
        let mut on = |m: &Message<'_>| read_u32(m).map(|v| got.push(v));
        assert_eq!(r.feed(&dgram, &mut on, None), Step::Done);
        assert!(r.finish().is_ok());
        assert_eq!(got, [42]);
    }

    #[test]
    fn a_refusal_ends_the_request_with_errno() {
        let mut r = Replies::new("remove", 3);
        let step = r.feed(&ack(3, libc::EINVAL), &mut |_| Ok(()), None);
        assert_eq!(step, Step::Done);
        assert!(matches!(
            r.finish(),
            Err(Error::Kernel { what: "remove", errno, .. }) if errno == libc::EINVAL
        ));
    }

    #[test]
    fn replies_continue_over_datagrams_until_done() {
        let mut r = Replies::new("t", 1);
        let mut got = Vec::new();
        let mut on = |m: &Message<'_>| read_u32(m).map(|v| got.push(v));
        assert_eq!(r.feed(&data(1, 5), &mut on, None), Step::More);
        let mut d = data(1, 6);
        d.extend(msg(NLMSG_DONE, NLM_F_MULTI, 1, &[]));
        assert_eq!(r.feed(&d, &mut on, None), Step::Done);
        assert!(r.finish().is_ok());
        assert_eq!(got, [5, 6]);
    }

    #[test]
    fn a_failed_dump_says_why_in_its_done() {
        // NLMSG_DONE carrying -EINVAL and an extack text (GET_ADDR with an unknown token).
        let mut body = (-libc::EINVAL).to_ne_bytes().to_vec();
        body.extend_from_slice(&[18, 0, 1, 0]);
        body.extend_from_slice(b"invalid token\0\0\0");
        let done = msg(NLMSG_DONE, NLM_F_MULTI | NLM_F_ACK_TLVS, 4, &body);
        let mut r = Replies::new("get_addr", 4);
        assert_eq!(r.feed(&done, &mut |_| Ok(()), None), Step::Done);
        match r.finish() {
            Err(Error::Kernel { errno, message, .. }) => {
                assert_eq!(errno, libc::EINVAL);
                assert_eq!(message.as_deref(), Some("invalid token"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_undecodable_reply_fails_but_reading_goes_on_to_the_end() {
        let mut dgram = msg(0x1c, 0, 2, &[]); // no payload: read_u32 fails
        dgram.extend(data(2, 9));
        dgram.extend(ack(2, 0));
        let mut r = Replies::new("t", 2);
        let mut got = Vec::new();
        let mut on = |m: &Message<'_>| read_u32(m).map(|v| got.push(v));
        let mut trace = Vec::new();
        assert_eq!(r.feed(&dgram, &mut on, Some(&mut trace)), Step::Done);
        assert_eq!(got, [9]);
        assert_eq!(trace.len(), 3);
        assert!(matches!(
            r.finish(),
            Err(Error::Decode {
                what: "t",
                source: DecodeError::Truncated { .. }
            })
        ));
    }

    #[test]
    fn an_unframeable_datagram_is_a_decode_failure() {
        let dgram = ack(1, 0);
        let mut r = Replies::new("t", 1);
        assert_eq!(r.feed(&dgram[..10], &mut |_| Ok(()), None), Step::More);
        assert!(r.failed());
        assert!(matches!(r.finish(), Err(Error::Decode { .. })));
    }
}
