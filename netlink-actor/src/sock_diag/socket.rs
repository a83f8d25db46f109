//! The sock_diag socket: a [`Transport`] of protocol `NETLINK_SOCK_DIAG` that runs the MPTCP
//! and subflow dumps of [`super::codec`] and joins them into a [`Snapshot`], and the batched
//! exact lookups of [`super::lookup`].

use std::os::fd::{AsRawFd, RawFd};

use crate::dump::{self, Dump};
use crate::error::Error;
use crate::transport::{RecvSlots, Transport};

use super::codec::{
    join, mptcp_dump_request, parse_mptcp_reply, parse_subflow_reply, tcp_dump_request, tcpf,
    IpFamily, MptcpConnDiag, Snapshot, SubflowDiag, NETLINK_SOCK_DIAG,
};
use super::lookup::{push_lookup, Answer, LookupBatch, LookupKey, LOOKUP_BATCH, LOOKUP_RCVBUF};

const WHAT_SOCKET: &str = "NETLINK_SOCK_DIAG socket";
const WHAT_MPTCP4: &str = "MPTCP IPv4 sock_diag dump";
const WHAT_MPTCP6: &str = "MPTCP IPv6 sock_diag dump";
const WHAT_TCP4: &str = "TCP IPv4 subflow sock_diag dump";
const WHAT_TCP6: &str = "TCP IPv6 subflow sock_diag dump";
const WHAT_LOOKUP: &str = "sock_diag subflow lookup";

/// The largest lookup reply (an `inet_diag_msg` with `tcp_info`, the ULP info and the other
/// attributes is ~600 bytes on Linux 6.18); a larger one is reported truncated and its
/// subflow counts as not answered.
const LOOKUP_REPLY_MAX: usize = 4096;

/// A NETLINK_SOCK_DIAG socket that runs the MPTCP and subflow dumps, with one receive buffer
/// reused for every dump.
#[derive(Debug)]
pub struct DiagSocket {
    t: Transport,
    mptcp_states: u32,
    /// Receive slots and the request buffer of [`DiagSocket::lookup_subflows`], made on first
    /// use (a poller that never looks up does not pay for them).
    lookup: Option<(RecvSlots, Vec<u8>)>,
}

impl DiagSocket {
    /// Open and bind the socket (in the caller's network namespace).
    pub fn open() -> Result<Self, Error> {
        Ok(DiagSocket {
            t: Transport::open(NETLINK_SOCK_DIAG, WHAT_SOCKET)?,
            mptcp_states: tcpf::MPTCP_DEFAULT,
            lookup: None,
        })
    }

    /// Change the states the MPTCP dump asks for (default [`tcpf::MPTCP_DEFAULT`]; leave out
    /// [`tcpf::LISTEN`] to skip listeners).
    pub fn set_mptcp_states(&mut self, states: u32) {
        self.mptcp_states = states;
    }

    /// The MPTCP dumps (IPv4, then IPv6) into `out`; whether the IPv6 one listed a connection
    /// (not a listener). Only then can there be IPv6 subflows: an IPv4 MPTCP socket has IPv4
    /// subflows only (`mptcp_pm_addr_families_match` in the kernel), and v4-mapped subflows of
    /// an IPv6 socket belong to that IPv6 socket.
    fn mptcp_into(&mut self, out: &mut Dump<MptcpConnDiag>) -> Result<bool, Error> {
        let mut v6_conns = false;
        for (fam, what) in [(IpFamily::V4, WHAT_MPTCP4), (IpFamily::V6, WHAT_MPTCP6)] {
            let before = out.items.len();
            let seq = self.t.next_seq();
            let req = mptcp_dump_request(fam, self.mptcp_states, seq)?;
            dump::run(&mut self.t, what, seq, &req, parse_mptcp_reply, out)?;
            if fam == IpFamily::V6 {
                v6_conns = out
                    .items
                    .get(before..)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| !c.is_listener());
            }
        }
        Ok(v6_conns)
    }

    /// The subflows in `states` (see [`tcpf`]; IPv4, then IPv6 if `v6`) into `out`.
    fn subflows_into(
        &mut self,
        out: &mut Dump<SubflowDiag>,
        states: u32,
        v6: bool,
    ) -> Result<(), Error> {
        for (fam, what) in [(IpFamily::V4, WHAT_TCP4), (IpFamily::V6, WHAT_TCP6)] {
            if fam == IpFamily::V6 && !v6 {
                continue;
            }
            let seq = self.t.next_seq();
            let req = tcp_dump_request(fam, states, seq)?;
            dump::run(&mut self.t, what, seq, &req, parse_subflow_reply, out)?;
        }
        Ok(())
    }

    /// Dump the MPTCP sockets (IPv4 then IPv6), listeners included.
    pub fn mptcp_connections(&mut self) -> Result<Dump<MptcpConnDiag>, Error> {
        let mut out = Dump::default();
        self.mptcp_into(&mut out)?;
        Ok(out)
    }

    /// [`DiagSocket::mptcp_connections`], and whether any of them is an IPv6 connection (else
    /// there are no IPv6 subflows to dump, see [`DiagSocket::snapshot`]).
    pub fn mptcp_connections_v6(&mut self) -> Result<(Dump<MptcpConnDiag>, bool), Error> {
        let mut out = Dump::default();
        let v6 = self.mptcp_into(&mut out)?;
        Ok((out, v6))
    }

    /// Dump the MPTCP subflows (TCP sockets with the mptcp ULP in a connected state, see
    /// [`tcpf::CONNECTED`]; IPv4 then IPv6).
    pub fn subflows(&mut self) -> Result<Dump<SubflowDiag>, Error> {
        let mut out = Dump::default();
        self.subflows_into(&mut out, tcpf::CONNECTED, true)?;
        Ok(out)
    }

    /// The MPTCP dumps, then the subflow dumps, joined by token. The IPv6 subflow dump is left
    /// out when the MPTCP dump lists no IPv6 connection (it would walk the kernel's whole TCP
    /// table to find nothing).
    pub fn snapshot(&mut self) -> Result<Snapshot, Error> {
        let (conns, v6) = self.mptcp_connections_v6()?;
        let mut subs = Dump::default();
        self.subflows_into(&mut subs, tcpf::CONNECTED, v6)?;
        let mut snap = join(conns.items, subs.items);
        snap.skipped = conns.skipped + subs.skipped;
        snap.last_error = subs.last_error.or(conns.last_error);
        Ok(snap)
    }

    /// The subflows in `states` (see [`tcpf`]) of both families, all of them (one walk of the
    /// kernel's table; `tcp_info` only for those in `states`). With [`tcpf::SYN_SENT`] alone:
    /// the joins still waiting for their SYN-ACK, whose ports nobody else reports.
    pub fn subflows_in_states(&mut self, states: u32) -> Result<Dump<SubflowDiag>, Error> {
        let mut out = Dump::default();
        self.subflows_into(&mut out, states, true)?;
        Ok(out)
    }

    /// Look each of `keys` up by its 4-tuple (batched exact lookups, see [`super::lookup`]:
    /// no walk of the kernel's table, one reply per subflow) and call `answer(i, a)` for key
    /// `i` with what the kernel said: [`Answer::Found`], [`Answer::Missing`] (no such
    /// subflow), [`Answer::Undecodable`], or [`Answer::Waiting`] when its answer was lost (an
    /// overrun of the receive buffer; the next lookup may find it).
    ///
    /// Errors: the socket's (a failed send or receive); the answers of the batches before the
    /// failure have been given.
    pub fn lookup_subflows(
        &mut self,
        keys: &[LookupKey],
        mut answer: impl FnMut(usize, &Answer),
    ) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        let (mut slots, mut req) = match self.lookup.take() {
            Some(l) => l,
            None => {
                // A failure leaves the default buffer, which holds one batch: not fatal.
                let _ = self.t.set_recv_buffer(LOOKUP_RCVBUF);
                (
                    RecvSlots::with_size(LOOKUP_BATCH, LOOKUP_REPLY_MAX),
                    Vec::with_capacity(LOOKUP_BATCH * 72),
                )
            }
        };
        let res = (|| {
            for (c, chunk) in keys.chunks(LOOKUP_BATCH).enumerate() {
                let first = self.consecutive_seqs(chunk.len());
                req.clear();
                for (i, k) in chunk.iter().enumerate() {
                    push_lookup(&mut req, k, first.wrapping_add(i as u32))?;
                }
                self.t.send(WHAT_LOOKUP, &req)?;
                let mut batch = LookupBatch::new(first, chunk.len());
                // The kernel answers inside the send: every answer is queued by now, and a
                // receive that returns fewer than it could take has emptied the queue.
                while !batch.complete() {
                    match self.t.recv_datagrams(&mut slots, true) {
                        Ok(()) => {}
                        Err(Error::WouldBlock) => break,
                        // Some answers were lost; those still queued are read on.
                        Err(Error::Overrun) => continue,
                        Err(e) => return Err(e),
                    }
                    for d in slots.datagrams(WHAT_LOOKUP).flatten() {
                        batch.feed(d);
                    }
                    if slots.filled() < slots.capacity() {
                        break;
                    }
                }
                for (i, a) in batch.answers().iter().enumerate() {
                    answer(c * LOOKUP_BATCH + i, a);
                }
            }
            Ok(())
        })();
        self.lookup = Some((slots, req));
        res
    }

    /// Drop the buffers of [`DiagSocket::lookup_subflows`] (made again on the next lookup).
    pub fn release_lookup_buffers(&mut self) {
        self.lookup = None;
    }

    /// `n` consecutive sequence numbers (none of them 0); the first is returned.
    fn consecutive_seqs(&mut self, n: usize) -> u32 {
        loop {
            let first = self.t.next_seq();
            let mut last = first;
            for _ in 1..n {
                last = self.t.next_seq();
            }
            if last.wrapping_sub(first) as usize == n.saturating_sub(1) {
                return first;
            }
        }
    }

    /// The MPTCP dumps alone (v4/v6), without subflows ([`Snapshot::has_subflows`] is false).
    /// Enough to tell which connections exist; at 10 000 connections about a fifth of the cost
    /// of [`DiagSocket::snapshot`], which builds `tcp_info` for every subflow.
    pub fn connections_snapshot(&mut self) -> Result<Snapshot, Error> {
        let conns = self.mptcp_connections()?;
        let mut snap = join(conns.items, Vec::new());
        snap.has_subflows = false;
        snap.skipped = conns.skipped;
        snap.last_error = conns.last_error;
        Ok(snap)
    }
}

impl AsRawFd for DiagSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.t.as_raw_fd()
    }
}
