//! Per-destination policies: the default policy plus one policy object per `rules:` entry, and
//! the sticky choice of which one serves each connection (first matching rule on the initial
//! subflow's remote address, remote port and local interface; else the default). Pure.

use std::collections::HashMap;

use mptcp_pmd_config::Rule;
use mptcp_pmd_policies::conn::Connection;
use mptcp_pmd_policies::policy::Policy;
use mptcp_pmd_policies::{LocalAddr, Token};

/// The policies of a configuration.
#[derive(Debug)]
pub struct PolicyBook {
    default: Box<dyn Policy>,
    rules: Vec<(Rule, Box<dyn Policy>)>,
    chosen: HashMap<Token, usize>,
}

/// Index 0 is the default policy, i + 1 is rule i.
const DEFAULT: usize = 0;

impl PolicyBook {
    /// A book with a default policy and one policy per rule (in config order).
    pub fn new(default: Box<dyn Policy>, rules: Vec<(Rule, Box<dyn Policy>)>) -> Self {
        PolicyBook {
            default,
            rules,
            chosen: HashMap::new(),
        }
    }

    /// Whether any policy of the book (default or rule) reads subflow samples.
    pub fn wants_samples(&self) -> bool {
        self.default.wants_samples() || self.rules.iter().any(|(_, p)| p.wants_samples())
    }

    /// Which entry serves `conn` (0 = default, i + 1 = rule i). The choice is made once the
    /// connection's initial subflow is known and kept for the connection's life.
    pub fn choose(&mut self, conn: &Connection, locals: &[LocalAddr]) -> usize {
        if let Some(&i) = self.chosen.get(&conn.token()) {
            return i;
        }
        let Some(info) = conn.info() else {
            return DEFAULT;
        };
        let iface = locals
            .iter()
            .find(|l| l.addr == info.local.ip())
            .map(|l| l.if_name.as_str());
        let i = self
            .rules
            .iter()
            .position(|(r, _)| r.matches(info.remote.ip(), info.remote.port(), iface))
            .map_or(DEFAULT, |i| i + 1);
        self.chosen.insert(conn.token(), i);
        i
    }

    /// The policy for `conn`, and a label for logs ("default" or "rule N").
    pub fn policy_for(
        &mut self,
        conn: &Connection,
        locals: &[LocalAddr],
    ) -> (&mut dyn Policy, String) {
        let i = self.choose(conn, locals);
        match i.checked_sub(1).and_then(|r| self.rules.get_mut(r)) {
            Some((_, p)) => (p.as_mut(), format!("rule {}", i - 1)),
            None => (self.default.as_mut(), "default".to_string()),
        }
    }

    /// The connection is gone: tell its policy and forget the choice.
    pub fn closed(&mut self, token: Token) {
        let i = self.chosen.remove(&token).unwrap_or(DEFAULT);
        match i.checked_sub(1).and_then(|r| self.rules.get_mut(r)) {
            Some((_, p)) => p.on_closed(token),
            None => self.default.on_closed(token),
        }
    }

    /// The default policy's name.
    pub fn default_name(&self) -> &'static str {
        self.default.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcp_pmd_policies::conn::ConnTimers;
    use mptcp_pmd_policies::{ConnFlags, ConnInfo, PmEvent};
    use std::time::Instant;

    fn book(yaml: &str) -> PolicyBook {
        crate::wiring::build_book(&mptcp_pmd_config::parse(yaml, "t.yaml").unwrap())
    }

    fn conn(token: u32, local: &str, remote: &str) -> Connection {
        let mut c = Connection::new(Token(token), ConnTimers::default());
        let info = ConnInfo {
            token: Token(token),
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            loc_id: 0,
            rem_id: 0,
            flags: ConnFlags::default(),
        };
        c.handle_event(Instant::now(), &PmEvent::Established(info));
        c
    }

    fn locals() -> Vec<LocalAddr> {
        vec![
            LocalAddr {
                addr: "192.0.2.1".parse().unwrap(),
                if_index: 2,
                if_name: "eth0".into(),
                backup: false,
            },
            LocalAddr {
                addr: "192.0.2.9".parse().unwrap(),
                if_index: 3,
                if_name: "wwan0".into(),
                backup: false,
            },
        ]
    }

    const RULES: &str = "policy: fullmesh\nrules:\n  - remote: 198.51.100.0/24\n    port: \"8000-8100\"\n    policy: ndiffports\n  - interface: \"wwan*\"\n    policy: rtt-based\n  - port: 443\n    policy: ndiffports\n    ndiffports: {subflows: 4}\n";

    #[test]
    fn first_matching_rule_wins_else_default() {
        let mut b = book(RULES);
        let l = locals();
        let (p, label) = b.policy_for(&conn(1, "192.0.2.1:40000", "198.51.100.7:8080"), &l);
        assert_eq!((p.name(), label.as_str()), ("ndiffports", "rule 0"));
        let (p, label) = b.policy_for(&conn(2, "192.0.2.9:40000", "203.0.113.1:80"), &l);
        assert_eq!((p.name(), label.as_str()), ("rtt-based", "rule 1"));
        let (p, label) = b.policy_for(&conn(3, "192.0.2.1:40000", "203.0.113.1:443"), &l);
        assert_eq!((p.name(), label.as_str()), ("ndiffports", "rule 2"));
        let (p, label) = b.policy_for(&conn(4, "192.0.2.1:40000", "203.0.113.1:80"), &l);
        assert_eq!((p.name(), label.as_str()), ("fullmesh", "default"));
        // Port in range but address outside the CIDR: rule 0 does not match.
        let (p, _) = b.policy_for(&conn(5, "192.0.2.1:40000", "203.0.113.1:8080"), &l);
        assert_eq!(p.name(), "fullmesh");
    }

    #[test]
    fn choice_is_sticky_and_forgotten_on_close() {
        let mut b = book(RULES);
        let c = conn(1, "192.0.2.9:40000", "203.0.113.1:80");
        assert_eq!(b.choose(&c, &locals()), 2);
        // The interface is no longer usable: the connection keeps its policy.
        assert_eq!(b.choose(&c, &[]), 2);
        b.closed(Token(1));
        assert_eq!(b.choose(&c, &[]), 0);
    }

    #[test]
    fn unknown_connection_info_uses_default_without_caching() {
        let mut b = book(RULES);
        let c = Connection::new(Token(9), ConnTimers::default());
        assert_eq!(b.choose(&c, &locals()), 0);
        assert!(b.chosen.is_empty());
    }

    #[test]
    fn samples_wanted_only_if_some_policy_reads_them() {
        assert!(!book("policy: fullmesh\n").wants_samples());
        assert!(!book("policy: ndiffports\n").wants_samples());
        assert!(book("policy: rtt-based\n").wants_samples());
        // A rule's rtt-based counts as much as the default's.
        assert!(book(RULES).wants_samples());
        assert!(
            !book("policy: fullmesh\nrules:\n  - port: 443\n    policy: ndiffports\n")
                .wants_samples()
        );
    }
}
