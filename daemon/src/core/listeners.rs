//! The MPTCP listening sockets of this namespace, as the daemon learns them: from sock_diag at
//! start-up and after every resync (which replaces the whole set: events may have been lost),
//! and from LISTENER_CREATED / LISTENER_CLOSED in between (the kernel emits them for every
//! MPTCP listener, whoever opens it). Pure: the policy actor feeds it, hands its list to the
//! policies (`Ctx::listeners`), logs the listeners that confine joins and shows them in
//! `mptcp-pmd addresses`.
//!
//! Why it matters: a peer's join towards one of this host's addresses is accepted only by a
//! listener of the connection's port bound to that address or to the wildcard address. An
//! application listening on `198.19.0.2:443` alone makes every join towards another address
//! fail with a RST (and no event on this host), so announcing other addresses to its
//! connections is pointless; listening on `0.0.0.0`/`[::]` fixes it.

use std::net::SocketAddr;

/// The listeners known, as a sorted multiset (several sockets may listen on one address and
/// port with SO_REUSEPORT; each LISTENER_CLOSED takes one away).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listeners {
    all: Vec<SocketAddr>,
}

impl Listeners {
    /// Every listener known, sorted (what `Ctx::listeners` gets).
    pub fn all(&self) -> &[SocketAddr] {
        &self.all
    }

    /// LISTENER_CREATED.
    pub fn created(&mut self, addr: SocketAddr) {
        let i = self.all.partition_point(|l| *l < addr);
        self.all.insert(i, addr);
    }

    /// LISTENER_CLOSED (of a listener not known: nothing happens).
    pub fn closed(&mut self, addr: SocketAddr) {
        if let Ok(i) = self.all.binary_search(&addr) {
            self.all.remove(i);
        }
    }

    /// The listeners of a sock_diag snapshot replace the set; returns those that were not
    /// known before.
    pub fn replace(&mut self, mut addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
        addrs.sort();
        let new = addrs
            .iter()
            .filter(|a| self.all.binary_search(a).is_err())
            .copied()
            .collect();
        self.all = addrs;
        new
    }

    /// Whether `listener` (one of the set) confines the joins of its connections to its own
    /// address: it is bound to one address and no wildcard listener of its port and family
    /// (`[::]` also takes IPv4) exists.
    pub fn confines_joins(&self, listener: SocketAddr) -> bool {
        if listener.ip().is_unspecified() {
            return false;
        }
        let v4 = listener.ip().to_canonical().is_ipv4();
        !self
            .all
            .iter()
            .any(|o| o.port() == listener.port() && o.ip().is_unspecified() && (o.is_ipv6() || v4))
    }
}

/// What `mptcp-pmd addresses` and the log say about a listener that confines joins.
pub const CONFINED: &str = "bound to one address: peers cannot join its connections at other local addresses (the kernel answers with a RST); listen on 0.0.0.0 or [::] to accept joins";

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn created_closed_and_replaced() {
        let mut l = Listeners::default();
        l.created(sa("0.0.0.0:80"));
        l.created(sa("198.19.0.2:443"));
        l.created(sa("198.19.0.2:443"));
        assert_eq!(l.all().len(), 3);
        l.closed(sa("198.19.0.2:443"));
        assert_eq!(l.all(), &[sa("0.0.0.0:80"), sa("198.19.0.2:443")]);
        l.closed(sa("10.0.0.1:1"));
        assert_eq!(l.all().len(), 2);
        let new = l.replace(vec![sa("[::]:8080"), sa("0.0.0.0:80")]);
        assert_eq!(new, vec![sa("[::]:8080")]);
        assert_eq!(l.all(), &[sa("0.0.0.0:80"), sa("[::]:8080")]);
    }

    #[test]
    fn bound_listeners_confine_joins_unless_a_wildcard_shares_the_port() {
        let mut l = Listeners::default();
        l.created(sa("198.19.0.2:443"));
        l.created(sa("[2001:db8:10::2]:443"));
        assert!(l.confines_joins(sa("198.19.0.2:443")));
        assert!(l.confines_joins(sa("[2001:db8:10::2]:443")));
        // An IPv4 wildcard takes IPv4 joins only.
        l.created(sa("0.0.0.0:443"));
        assert!(!l.confines_joins(sa("198.19.0.2:443")));
        assert!(l.confines_joins(sa("[2001:db8:10::2]:443")));
        // A dual-stack [::] takes both.
        l.created(sa("[::]:443"));
        assert!(!l.confines_joins(sa("[2001:db8:10::2]:443")));
        // Wildcards never confine; other ports do not count.
        assert!(!l.confines_joins(sa("0.0.0.0:443")));
        l.created(sa("198.19.1.2:80"));
        assert!(l.confines_joins(sa("198.19.1.2:80")));
    }
}
