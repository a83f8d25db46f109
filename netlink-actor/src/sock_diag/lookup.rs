//! Exact lookups of subflows by 4-tuple (pure): the requests and the matching of their
//! answers. A `SOCK_DIAG_BY_FAMILY` request *without* `NLM_F_DUMP` makes the kernel look one
//! socket up in its established hash (`inet_diag_find_one_icsk`) and answer with the same
//! reply a dump would carry for it (`tcp_info` and the MPTCP ULP info, [`parse_subflow`]), or
//! with an error (ENOENT when no such socket exists).
//!
//! Why: a dump walks the kernel's whole TCP hash table whatever its filter (11–18 ms with
//! 40 000 sockets in it on Linux 6.18, see BENCHMARKS.md, "History", "sock_diag at scale"), so a
//! dump every few tens of ms for a handful of connections would cost as much as the host's
//! socket count, not as much as those connections. A lookup costs one hash lookup and one
//! reply: the fast sampling of a set of connections costs in proportion to their subflows.
//!
//! Many requests travel in one datagram ([`LookupBatch`]): the kernel runs them one after the
//! other inside that `send` (`netlink_rcv_skb`), and queues exactly one message per request on
//! the socket (its reply, or an `NLMSG_ERROR`; no ACK is asked for), in order, before `send`
//! returns. [`LookupBatch::feed`] matches them by sequence number. A batch is sized so that its
//! replies fit the socket's receive buffer ([`LOOKUP_BATCH`]): a reply the kernel cannot queue
//! is lost (and the socket flags an overrun), which shows here as a request never answered.

use std::net::{IpAddr, SocketAddr};

use mptcp_pmd_policies::model::SubflowKey;

use super::codec::{
    lookup_request, parse_subflow, IpFamily, SubflowDiag, INET_DIAG_REQ_V2_LEN, SOCK_DIAG_BY_FAMILY,
};
use crate::error::{DecodeError, EncodeError};
use crate::wire::{error_verdict, messages, NLMSG_ERROR};

/// `INET_DIAG_NOCOOKIE`: look the socket up by its 4-tuple alone.
pub const INET_DIAG_NOCOOKIE: u32 = !0;

/// Requests per datagram. Each reply is one skb of ~1.3 KiB of the socket's receive buffer
/// (truesize of a ~600-byte `tcp_info` + ULP reply, measured on Linux 6.18: 64 replies fit the
/// default 208 KiB `rmem_default` with room to spare); the poller's socket asks for a larger
/// buffer ([`LOOKUP_RCVBUF`]) so that nothing is lost when the kernel rounds differently.
pub const LOOKUP_BATCH: usize = 64;

/// The receive buffer the sock_diag socket asks for (bytes): room for several batches of
/// replies, so a batch never overruns it.
pub const LOOKUP_RCVBUF: usize = 1 << 20;

/// One subflow to look up: its 4-tuple and the interface it is bound to (0: none). The kernel
/// matches a socket bound to an interface only when asked with that interface's index (a
/// dump reports it as `idiag_if`); an unbound socket matches any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupKey {
    /// The subflow's 4-tuple.
    pub key: SubflowKey,
    /// Its bound interface, 0 if none.
    pub if_index: u32,
}

/// The bytes of an address in `inet_diag_sockid` for a request of `family` (IPv4: the first
/// four of sixteen; IPv4 in an IPv6 request: mapped).
fn sockid_addr(family: IpFamily, ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match (family, ip) {
        (IpFamily::V4, IpAddr::V4(a)) => out[..4].copy_from_slice(&a.octets()),
        (_, IpAddr::V4(a)) => out = a.to_ipv6_mapped().octets(),
        (_, IpAddr::V6(a)) => out = a.octets(),
    }
    out
}

/// The family of the lookup for `key`: IPv4 when both ends are IPv4 (keys are canonical, so a
/// v4-mapped IPv6 subflow is found this way too: the kernel looks both up in one table).
fn family_of(key: &SubflowKey) -> IpFamily {
    match (key.local, key.remote) {
        (SocketAddr::V4(_), SocketAddr::V4(_)) => IpFamily::V4,
        _ => IpFamily::V6,
    }
}

/// Append one exact-lookup request for `k` with sequence number `seq` to `buf`, asking for
/// `INET_DIAG_INFO` (`tcp_info`; the kernel adds the ULP info by itself).
pub fn push_lookup(buf: &mut Vec<u8>, k: &LookupKey, seq: u32) -> Result<(), EncodeError> {
    let family = family_of(&k.key);
    // struct inet_diag_sockid: ports (network order), addresses, interface, cookie (none).
    let mut id = [0u8; INET_DIAG_REQ_V2_LEN - 8];
    id[0..2].copy_from_slice(&k.key.local.port().to_be_bytes());
    id[2..4].copy_from_slice(&k.key.remote.port().to_be_bytes());
    id[4..20].copy_from_slice(&sockid_addr(family, k.key.local.ip()));
    id[20..36].copy_from_slice(&sockid_addr(family, k.key.remote.ip()));
    id[36..40].copy_from_slice(&k.if_index.to_ne_bytes());
    id[40..44].copy_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    id[44..48].copy_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    buf.extend_from_slice(&lookup_request(family, id, seq)?);
    Ok(())
}

/// What one request of a batch got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    /// Not answered (yet).
    Waiting,
    /// The subflow.
    Found(SubflowDiag),
    /// The kernel's error (ENOENT: no such socket; or a TCP socket that is no MPTCP subflow).
    Missing(i32),
    /// A reply that did not decode.
    Undecodable,
}

/// The answers to one batch of lookups with consecutive sequence numbers `first..first + n`
/// (wrapping), fed datagram by datagram. Pure.
#[derive(Debug)]
pub struct LookupBatch {
    first: u32,
    answers: Vec<Answer>,
    answered: usize,
    /// The last reply that did not decode.
    pub last_error: Option<DecodeError>,
}

impl LookupBatch {
    /// Expect `n` answers, to sequence numbers `first`, `first + 1`, ...
    pub fn new(first: u32, n: usize) -> Self {
        LookupBatch {
            first,
            answers: vec![Answer::Waiting; n],
            answered: 0,
            last_error: None,
        }
    }

    /// The request index of sequence number `seq`, if it is one of the batch's.
    fn index(&self, seq: u32) -> Option<usize> {
        let i = usize::try_from(seq.wrapping_sub(self.first)).ok()?;
        (i < self.answers.len()).then_some(i)
    }

    /// Whether every request has its answer.
    pub fn complete(&self) -> bool {
        self.answered == self.answers.len()
    }

    /// Feed one received datagram; messages of other sequence numbers (a late answer to an
    /// earlier batch) and repeated answers are ignored. A datagram that cannot be framed
    /// answers nothing (its requests stay [`Answer::Waiting`]).
    pub fn feed(&mut self, datagram: &[u8]) {
        for m in messages(datagram) {
            let Ok(m) = m else { return };
            let Some(i) = self.index(m.seq()) else {
                continue;
            };
            if self.answers[i] != Answer::Waiting {
                continue;
            }
            let answer = match m.ty() {
                NLMSG_ERROR => {
                    let errno = error_verdict(&m).map(|v| v.errno).unwrap_or(0);
                    Answer::Missing(errno)
                }
                SOCK_DIAG_BY_FAMILY => match parse_subflow(m.payload()) {
                    Ok(Some(s)) => Answer::Found(s),
                    Ok(None) => Answer::Missing(0),
                    Err(e) => {
                        self.last_error = Some(e);
                        Answer::Undecodable
                    }
                },
                _ => continue,
            };
            self.answers[i] = answer;
            self.answered += 1;
        }
    }

    /// The answers, in request order.
    pub fn answers(&self) -> &[Answer] {
        &self.answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_message as msg;

    const NLM_F_REQUEST: u16 = libc::NLM_F_REQUEST as u16;

    fn key(local: &str, remote: &str) -> SubflowKey {
        SubflowKey {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
        }
    }

    #[test]
    fn a_lookup_request_names_the_socket_by_its_4_tuple() {
        let k = LookupKey {
            key: key("10.0.1.2:40000", "10.0.9.1:5201"),
            if_index: 7,
        };
        let mut buf = Vec::new();
        push_lookup(&mut buf, &k, 42).unwrap();
        assert_eq!(buf.len(), 72);
        assert_eq!(u32::from_ne_bytes(buf[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes(buf[4..6].try_into().unwrap()), 20);
        assert_eq!(
            u16::from_ne_bytes(buf[6..8].try_into().unwrap()),
            NLM_F_REQUEST,
            "no NLM_F_DUMP: an exact lookup; no NLM_F_ACK: one message per request"
        );
        assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 42);
        let req = &buf[16..];
        assert_eq!(req[0], libc::AF_INET as u8);
        assert_eq!(req[1], 6);
        assert_eq!(req[2], 1 << 1, "INET_DIAG_INFO");
        assert_eq!(&req[8..10], &40000u16.to_be_bytes());
        assert_eq!(&req[10..12], &5201u16.to_be_bytes());
        assert_eq!(&req[12..16], &[10, 0, 1, 2]);
        assert_eq!(&req[16..28], &[0; 12]);
        assert_eq!(&req[28..32], &[10, 0, 9, 1]);
        assert_eq!(u32::from_ne_bytes(req[44..48].try_into().unwrap()), 7);
        assert_eq!(&req[48..56], &[0xff; 8], "no cookie");
        // Two requests in one datagram, each aligned.
        push_lookup(&mut buf, &k, 43).unwrap();
        assert_eq!(buf.len(), 144);
    }

    #[test]
    fn ipv6_lookups_carry_sixteen_bytes() {
        let k = LookupKey {
            key: key("[2001:db8::2]:40000", "[2001:db8:10::2]:80"),
            if_index: 0,
        };
        let mut buf = Vec::new();
        push_lookup(&mut buf, &k, 1).unwrap();
        let req = &buf[16..];
        assert_eq!(req[0], libc::AF_INET6 as u8);
        assert_eq!(
            &req[12..28],
            &"2001:db8::2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
    }

    fn error(seq: u32, errno: i32) -> Vec<u8> {
        let mut body = (-errno).to_ne_bytes().to_vec();
        body.extend_from_slice(&msg(20, NLM_F_REQUEST, seq, &[])[..16]);
        msg(NLMSG_ERROR, 0, seq, &body)
    }

    #[test]
    fn answers_are_matched_by_sequence_number_and_errors_mean_missing() {
        let mut b = LookupBatch::new(u32::MAX, 3);
        assert!(!b.complete());
        // A late answer to another batch, then the second request's ENOENT (seq wraps to 0).
        b.feed(&error(7, libc::ENOENT));
        b.feed(&error(0, libc::ENOENT));
        assert_eq!(b.answers()[1], Answer::Missing(libc::ENOENT));
        assert_eq!(b.answers()[0], Answer::Waiting);
        // A reply that is not a subflow (no ULP info) counts as missing; undecodable too.
        let mut diag = [0u8; 72];
        diag[0] = libc::AF_INET as u8;
        b.feed(&msg(SOCK_DIAG_BY_FAMILY, 0, u32::MAX, &diag));
        assert_eq!(b.answers()[0], Answer::Missing(0));
        b.feed(&msg(SOCK_DIAG_BY_FAMILY, 0, 1, &[0u8; 8]));
        assert_eq!(b.answers()[2], Answer::Undecodable);
        assert!(b.last_error.is_some());
        assert!(b.complete());
        // Repeats change nothing.
        b.feed(&error(1, libc::ENOENT));
        assert_eq!(b.answers()[2], Answer::Undecodable);
    }
}
