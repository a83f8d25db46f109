//! The set of usable local addresses: links and addresses as rtnetlink reports them, filtered
//! by the `addresses:` config section. Pure: fed by the address monitor actor, unit-tested here.

use std::collections::BTreeMap;
use std::net::IpAddr;

use mptcp_pmd_config::AddressFilter;
use mptcp_pmd_policies::LocalAddr;

/// What rtnetlink told us about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface name.
    pub name: String,
    /// IFF_UP.
    pub up: bool,
    /// IFF_RUNNING (carrier).
    pub running: bool,
    /// IFF_LOOPBACK.
    pub loopback: bool,
}

/// An address that is not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The address.
    pub addr: IpAddr,
    /// Its interface name (or index if the link is unknown).
    pub if_name: String,
    /// Why it is not usable.
    pub reason: &'static str,
}

/// Links and addresses of this namespace.
#[derive(Debug, Clone, Default)]
pub struct AddrSet {
    links: BTreeMap<u32, Link>,
    addrs: BTreeMap<(u32, IpAddr), ()>,
}

impl AddrSet {
    /// Record a link (new or changed).
    pub fn link_changed(&mut self, index: u32, link: Link) {
        self.links.insert(index, link);
    }
    /// Forget a link and its addresses.
    pub fn link_removed(&mut self, index: u32) {
        self.links.remove(&index);
        self.addrs.retain(|(i, _), _| *i != index);
    }
    /// Record an address.
    pub fn addr_added(&mut self, index: u32, addr: IpAddr) {
        self.addrs.insert((index, addr), ());
    }
    /// Forget an address.
    pub fn addr_removed(&mut self, index: u32, addr: IpAddr) {
        self.addrs.remove(&(index, addr));
    }

    /// Classify every address: usable ones (sorted, stable) and skipped ones with the reason.
    pub fn evaluate(&self, filter: &AddressFilter) -> (Vec<LocalAddr>, Vec<Skipped>) {
        let mut usable = Vec::new();
        let mut skipped = Vec::new();
        for &(index, addr) in self.addrs.keys() {
            let link = self.links.get(&index);
            let if_name = link
                .map(|l| l.name.clone())
                .unwrap_or_else(|| format!("if{index}"));
            let reason = match link {
                None => Some("interface unknown"),
                Some(l) if filter.skip_loopback && (l.loopback || addr.is_loopback()) => {
                    Some("loopback")
                }
                Some(_) if filter.skip_link_local && is_link_local(addr) => Some("link-local"),
                Some(_) if addr.is_multicast() || addr.is_unspecified() => {
                    Some("not a unicast address")
                }
                Some(l) if !filter.interface_allowed(&l.name) => {
                    Some("interface filtered by include/exclude_interfaces")
                }
                Some(l) if !l.up => Some("interface down"),
                Some(l) if !l.running => Some("interface has no carrier"),
                Some(_) => None,
            };
            match reason {
                Some(reason) => skipped.push(Skipped {
                    addr,
                    if_name,
                    reason,
                }),
                None => usable.push(LocalAddr {
                    addr,
                    if_index: index,
                    backup: filter.is_backup(&if_name),
                    if_name,
                }),
            }
        }
        (usable, skipped)
    }
}

/// IPv4 169.254/16 or IPv6 fe80::/10.
pub fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, up: bool) -> Link {
        Link {
            name: name.into(),
            up,
            running: up,
            loopback: name == "lo",
        }
    }

    fn set() -> AddrSet {
        let mut s = AddrSet::default();
        s.link_changed(1, link("lo", true));
        s.link_changed(2, link("eth0", true));
        s.link_changed(3, link("wwan0", true));
        s.link_changed(4, link("docker0", true));
        s.link_changed(5, link("eth1", false));
        for (i, a) in [
            (1, "127.0.0.1"),
            (1, "::1"),
            (2, "192.0.2.1"),
            (2, "fe80::1"),
            (3, "198.51.100.7"),
            (4, "172.17.0.1"),
            (5, "203.0.113.9"),
        ] {
            s.addr_added(i, a.parse().unwrap());
        }
        s
    }

    fn filter(yaml: &str) -> AddressFilter {
        mptcp_pmd_config::parse(yaml, "test.yaml")
            .unwrap()
            .addresses
    }

    #[test]
    fn defaults_skip_loopback_link_local_and_down() {
        let (ok, skipped) = set().evaluate(&filter(""));
        let ok: Vec<String> = ok.iter().map(|l| l.addr.to_string()).collect();
        assert_eq!(ok, ["192.0.2.1", "198.51.100.7", "172.17.0.1"]);
        let reason = |a: &str| {
            skipped
                .iter()
                .find(|s| s.addr.to_string() == a)
                .map(|s| s.reason)
        };
        assert_eq!(reason("127.0.0.1"), Some("loopback"));
        assert_eq!(reason("::1"), Some("loopback"));
        assert_eq!(reason("fe80::1"), Some("link-local"));
        assert_eq!(reason("203.0.113.9"), Some("interface down"));
    }

    #[test]
    fn exclude_and_backup_globs() {
        let f = filter(
            "addresses:\n  exclude_interfaces: [\"docker*\"]\n  backup_interfaces: [\"wwan*\"]\n",
        );
        let (ok, skipped) = set().evaluate(&f);
        assert!(ok.iter().all(|l| l.if_name != "docker0"));
        assert!(skipped.iter().any(|s| s.if_name == "docker0"));
        let wwan = ok.iter().find(|l| l.if_name == "wwan0").unwrap();
        assert!(wwan.backup);
        assert!(!ok.iter().find(|l| l.if_name == "eth0").unwrap().backup);
    }

    #[test]
    fn link_removal_forgets_addresses() {
        let mut s = set();
        s.link_removed(2);
        let (ok, _) = s.evaluate(&filter("{}"));
        assert!(ok.iter().all(|l| l.if_index != 2));
        s.addr_removed(3, "198.51.100.7".parse().unwrap());
        let (ok, _) = s.evaluate(&filter("{}"));
        assert_eq!(ok.len(), 1);
    }
}
