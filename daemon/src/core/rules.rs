//! The policies of a configuration and the one policy object per connection: the default
//! policy and the `rules:` entries as factories ([`PolicySpec`]), the sticky choice of which
//! entry serves each connection (first matching rule on the initial subflow's remote address,
//! remote port, local port and local interface, and on which end of the connection this host
//! is; else the default), and the policy object built for each connection from that entry.
//! Pure.
//!
//! The objects live here, keyed by token, and go away in exactly one place, [`PolicyBook::closed`],
//! which the policy actor calls on `ConnectionGone`. A connection actor sends that from its
//! `stopped` hook, which actix runs whatever stopped the actor: a CLOSED event, the registry
//! retiring a connection that vanished from sock_diag, or a resync. So no object outlives its
//! connection (the real-kernel tests compare the `policy_objects` gauge with the tracked
//! connections after churn and resync).

use std::collections::HashMap;
use std::time::Duration;

use mptcp_pmd_config::{PolicySpec, Rule, RuleTarget, Side};
use mptcp_pmd_policies::conn::Connection;
use mptcp_pmd_policies::policy::{Ctx, Policy, Reason};
use mptcp_pmd_policies::{LocalAddr, Token};
use netlink_actor::actors::Pace;

/// A connection's policy object and the entry that built it.
#[derive(Debug)]
struct Chosen {
    entry: usize,
    policy: Box<dyn Policy>,
}

/// The policies of a configuration.
#[derive(Debug)]
pub struct PolicyBook {
    default: PolicySpec,
    rules: Vec<Rule>,
    chosen: HashMap<Token, Chosen>,
    /// How often a policy that reads samples without a period of its own gets them
    /// (`poll.interval_ms`).
    poll: Duration,
}

/// Index 0 is the default policy, i + 1 is rule i.
const DEFAULT: usize = 0;

/// How the subflows of a connection served by `spec` are sampled: at its own `sample_period`
/// (active-standby: tens of ms, for fast failure detection), every time; else, if it reads
/// samples (rtt-based), every `poll`, skipped while the connection is idle (nothing moved
/// since the last sampling, nothing outstanding: its subflows cannot show anything new);
/// else never.
fn pace_of(spec: &PolicySpec, poll: Duration) -> Option<Pace> {
    match spec.sample_period() {
        Some(period) => Some(Pace {
            period,
            skip_idle: false,
        }),
        None => spec.wants_samples().then_some(Pace {
            period: poll,
            skip_idle: true,
        }),
    }
}

fn spec_of<'a>(default: &'a PolicySpec, rules: &'a [Rule], entry: usize) -> &'a PolicySpec {
    match entry.checked_sub(1).and_then(|r| rules.get(r)) {
        Some(rule) => &rule.spec,
        None => default,
    }
}

/// What the policy serving a connection decided, and which policy that is.
#[derive(Debug)]
pub struct Served<T> {
    /// The hook's result.
    pub out: T,
    /// The policy's name.
    pub name: &'static str,
    /// Which entry chose it: "default" or "rule N".
    pub label: String,
    /// How the connection's subflows are to be sampled (`None`: not at all), see
    /// `pace_of`.
    pub sample_pace: Option<Pace>,
}

impl PolicyBook {
    /// The poll interval (`poll.interval_ms`): the sampling period of policies that read
    /// samples without a period of their own.
    pub fn poll(&self) -> Duration {
        self.poll
    }

    /// A book with a default policy and the rules (in config order); policies that read
    /// samples without a period of their own get them every `poll` (`poll.interval_ms`).
    pub fn new(default: PolicySpec, rules: Vec<Rule>, poll: Duration) -> Self {
        PolicyBook {
            default,
            rules,
            chosen: HashMap::new(),
            poll,
        }
    }

    /// Whether any policy of the book (default or rule) reads subflow samples.
    pub fn wants_samples(&self) -> bool {
        self.default.wants_samples() || self.rules.iter().any(|r| r.spec.wants_samples())
    }

    fn spec(&self, entry: usize) -> &PolicySpec {
        spec_of(&self.default, &self.rules, entry)
    }

    fn label(entry: usize) -> String {
        match entry.checked_sub(1) {
            Some(r) => format!("rule {r}"),
            None => "default".to_string(),
        }
    }

    /// Which entry serves `conn` (0 = default, i + 1 = rule i), without building anything.
    pub fn entry_for(&self, conn: &Connection, locals: &[LocalAddr]) -> Option<usize> {
        if let Some(c) = self.chosen.get(&conn.token()) {
            return Some(c.entry);
        }
        let info = conn.info()?;
        // A dual-stack listener's connections report IPv4 as `::ffff:a.b.c.d`.
        let local = info.local.ip().to_canonical();
        let target = RuleTarget {
            remote: info.remote.ip(),
            port: info.remote.port(),
            local_port: Some(info.local.port()),
            interface: locals
                .iter()
                .find(|l| l.addr == local)
                .map(|l| l.if_name.as_str()),
            side: Some(if conn.is_server_side() {
                Side::Server
            } else {
                Side::Client
            }),
        };
        Some(
            self.rules
                .iter()
                .position(|r| r.matches_target(&target))
                .map_or(DEFAULT, |i| i + 1),
        )
    }

    /// Runs `hook` on the policy object of `conn`. The entry is chosen, and the object built,
    /// once the connection's initial subflow is known; both are kept for the connection's
    /// life. Before that, a throwaway object of the default policy answers (every policy
    /// waits for ESTABLISHED, so it decides nothing and nothing is lost).
    pub fn serve<T>(
        &mut self,
        conn: &Connection,
        locals: &[LocalAddr],
        hook: impl FnOnce(&mut dyn Policy) -> T,
    ) -> Served<T> {
        let Some(entry) = self.entry_for(conn, locals) else {
            return Served {
                out: hook(self.default.build().as_mut()),
                name: self.default.name(),
                label: Self::label(DEFAULT),
                sample_pace: None,
            };
        };
        let spec = spec_of(&self.default, &self.rules, entry);
        let sample_pace = pace_of(spec, self.poll);
        let c = self.chosen.entry(conn.token()).or_insert_with(|| Chosen {
            entry,
            policy: spec.build(),
        });
        Served {
            out: hook(c.policy.as_mut()),
            name: spec.name(),
            label: Self::label(entry),
            sample_pace,
        }
    }

    /// What the policy object of `ctx.conn` says about the connection as a whole
    /// ([`Policy::note`]), if it has an object and something to say (status).
    pub fn note(&self, ctx: &Ctx<'_>) -> Option<Reason> {
        self.chosen.get(&ctx.conn.token())?.policy.note(ctx)
    }

    /// (policy name, label) for `conn`, as [`PolicyBook::serve`] would choose (status).
    pub fn describe(&self, conn: &Connection, locals: &[LocalAddr]) -> (&'static str, String) {
        let entry = self.entry_for(conn, locals).unwrap_or(DEFAULT);
        (self.spec(entry).name(), Self::label(entry))
    }

    /// The connection is gone: drop its policy object and forget the choice (and the table
    /// a burst grew, once empty).
    pub fn closed(&mut self, token: Token) {
        self.chosen.remove(&token);
        if self.chosen.is_empty() {
            self.chosen.shrink_to_fit();
        }
    }

    /// Policy objects alive (one per connection that has one).
    pub fn objects(&self) -> usize {
        self.chosen.len()
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
    use mptcp_pmd_policies::{plugin, ConnFlags, ConnInfo, PmEvent};
    use std::time::Instant;

    impl PolicyBook {
        fn serve_name(&mut self, c: &Connection, l: &[LocalAddr]) -> Served<()> {
            self.serve(c, l, |_| ())
        }
    }

    fn book(yaml: &str) -> PolicyBook {
        crate::wiring::build_book(&mptcp_pmd_config::parse(yaml, "t.yaml").unwrap())
    }

    /// The registry's policy names: the tests pick policies by position, so they hold for
    /// whichever policies are compiled in.
    fn name(i: usize) -> &'static str {
        plugin::all()[i % plugin::all().len()].name
    }

    /// A connection this host dialled.
    fn conn(token: u32, local: &str, remote: &str) -> Connection {
        conn_on(token, local, remote, false)
    }

    /// A connection this host accepted.
    fn accepted(token: u32, local: &str, remote: &str) -> Connection {
        conn_on(token, local, remote, true)
    }

    fn conn_on(token: u32, local: &str, remote: &str, server_side: bool) -> Connection {
        let mut c = Connection::new(Token(token), ConnTimers::default());
        let info = ConnInfo {
            token: Token(token),
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            loc_id: 0,
            rem_id: 0,
            flags: ConnFlags {
                server_side,
                ..ConnFlags::default()
            },
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

    fn rules() -> String {
        format!(
            "policy: {}\nrules:\n  - remote: 198.51.100.0/24\n    port: \"8000-8100\"\n    policy: {}\n  - interface: \"wwan*\"\n    policy: {}\n  - port: 443\n    policy: {}\n",
            name(0),
            name(1),
            name(2),
            name(1)
        )
    }

    #[test]
    fn first_matching_rule_wins_else_default() {
        let mut b = book(&rules());
        let l = locals();
        let s = b.serve_name(&conn(1, "192.0.2.1:40000", "198.51.100.7:8080"), &l);
        assert_eq!((s.name, s.label.as_str()), (name(1), "rule 0"));
        let s = b.serve_name(&conn(2, "192.0.2.9:40000", "203.0.113.1:80"), &l);
        assert_eq!((s.name, s.label.as_str()), (name(2), "rule 1"));
        let s = b.serve_name(&conn(3, "192.0.2.1:40000", "203.0.113.1:443"), &l);
        assert_eq!((s.name, s.label.as_str()), (name(1), "rule 2"));
        let s = b.serve_name(&conn(4, "192.0.2.1:40000", "203.0.113.1:80"), &l);
        assert_eq!((s.name, s.label.as_str()), (name(0), "default"));
        // Port in range but address outside the CIDR: rule 0 does not match.
        let s = b.serve_name(&conn(5, "192.0.2.1:40000", "203.0.113.1:8080"), &l);
        assert_eq!(s.name, name(0));
    }

    #[test]
    fn side_and_listening_port_choose_the_entry() {
        let yaml = format!(
            "policy: {}
rules:
  - side: server
    local_port: 443
    policy: {}
  - side: server
    policy: {}
  - interface: \"eth*\"
    local_port: \"40000-40010\"
    policy: {}
",
            name(0),
            name(1),
            name(2),
            name(1)
        );
        let mut b = book(&yaml);
        let l = locals();
        // Accepted on 443 / on another port; dialled from 40000 on eth0; dialled elsewhere.
        let s = b.serve_name(&accepted(1, "192.0.2.1:443", "198.51.100.7:50000"), &l);
        assert_eq!((s.name, s.label.as_str()), (name(1), "rule 0"));
        let s = b.serve_name(&accepted(2, "192.0.2.1:22", "198.51.100.7:50001"), &l);
        assert_eq!((s.name, s.label.as_str()), (name(2), "rule 1"));
        let s = b.serve_name(&conn(3, "192.0.2.1:40000", "198.51.100.7:443"), &l);
        assert_eq!((s.name, s.label.as_str()), (name(1), "rule 2"));
        let s = b.serve_name(&conn(4, "192.0.2.1:50000", "198.51.100.7:443"), &l);
        assert_eq!((s.name, s.label.as_str()), (name(0), "default"));
        // A dual-stack listener's connection: its IPv4-mapped local address still finds the
        // interface.
        let s = b.serve_name(
            &conn(5, "[::ffff:192.0.2.1]:40001", "[::ffff:198.51.100.7]:443"),
            &l,
        );
        assert_eq!(s.label, "rule 2");
    }

    #[test]
    fn choice_is_sticky_and_forgotten_on_close() {
        let mut b = book(&rules());
        let c = conn(1, "192.0.2.9:40000", "203.0.113.1:80");
        assert_eq!(b.serve_name(&c, &locals()).label, "rule 1");
        // The interface is no longer usable: the connection keeps its policy.
        assert_eq!(b.serve_name(&c, &[]).label, "rule 1");
        assert_eq!(b.describe(&c, &[]).1, "rule 1");
        b.closed(Token(1));
        assert_eq!(b.serve_name(&c, &[]).label, "default");
    }

    #[test]
    fn one_object_per_connection_dropped_on_close() {
        let mut b = book(&rules());
        let l = locals();
        for t in 1..=5 {
            b.serve_name(&conn(t, "192.0.2.1:40000", "203.0.113.1:80"), &l);
            // Asking again for the same connection builds nothing new.
            b.serve_name(&conn(t, "192.0.2.1:40000", "203.0.113.1:80"), &l);
        }
        assert_eq!(b.objects(), 5);
        for t in 1..=5 {
            b.closed(Token(t));
        }
        assert_eq!(b.objects(), 0);
        // A close for a connection the book never saw is harmless.
        b.closed(Token(99));
        assert_eq!(b.objects(), 0);
    }

    #[test]
    fn unknown_connection_info_uses_default_without_caching() {
        let mut b = book(&rules());
        let c = Connection::new(Token(9), ConnTimers::default());
        assert_eq!(b.serve_name(&c, &locals()).label, "default");
        assert!(b.chosen.is_empty());
    }

    #[test]
    fn sampled_at_the_policys_own_period_else_the_poll_interval_if_it_reads_samples() {
        let poll = Duration::from_millis(700);
        let l = locals();
        for p in plugin::all() {
            let spec = p.default_spec();
            let want = match (spec.sample_period(), spec.wants_samples()) {
                (Some(own), _) => Some(Pace {
                    period: own,
                    skip_idle: false,
                }),
                (None, true) => Some(Pace {
                    period: poll,
                    skip_idle: true,
                }),
                (None, false) => None,
            };
            let mut b = book(&format!("policy: {}\npoll: {{interval_ms: 700}}\n", p.name));
            let c = conn(1, "192.0.2.1:40000", "203.0.113.1:80");
            assert_eq!(b.serve_name(&c, &l).sample_pace, want, "{}", p.name);
            // Before the initial subflow is known nothing is sampled.
            let unknown = Connection::new(Token(2), ConnTimers::default());
            assert_eq!(b.serve_name(&unknown, &l).sample_pace, None);
        }
        // Some compiled-in policy has its own period, another reads samples at the poll's.
        assert!(plugin::all()
            .iter()
            .any(|p| p.default_spec().sample_period().is_some()));
        assert!(plugin::all().iter().any(|p| {
            let s = p.default_spec();
            s.wants_samples() && s.sample_period().is_none()
        }));
    }

    #[test]
    fn samples_wanted_only_if_some_policy_reads_them() {
        let wanting: Vec<&str> = plugin::all()
            .iter()
            .filter(|p| p.default_spec().wants_samples())
            .map(|p| p.name)
            .collect();
        for p in plugin::all() {
            let b = book(&format!("policy: {}\n", p.name));
            assert_eq!(b.wants_samples(), wanting.contains(&p.name), "{}", p.name);
        }
        // A rule's policy counts as much as the default's.
        for w in &wanting {
            for p in plugin::all().iter().filter(|p| !wanting.contains(&p.name)) {
                let yaml = format!(
                    "policy: {}\nrules:\n  - port: 443\n    policy: {w}\n",
                    p.name
                );
                assert!(book(&yaml).wants_samples(), "{yaml}");
            }
        }
    }
}
