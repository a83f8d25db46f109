//! What `mptcp-pmd status` and `mptcp-pmd addresses` show: the serialisable views built from
//! the connection state machines and the address monitor, and their table rendering. Pure: the
//! daemon builds these from actor snapshots; the client deserialises and prints them.

use std::fmt::Write as _;
use std::time::Instant;

use mptcp_pmd_policies::conn::{AnnounceState, Announcement, Connection, Subflow, SubflowState};
use mptcp_pmd_policies::LocalAddr;
use netlink_actor::actors::Skipped;

use crate::core::budget::{human, BudgetUse};
use serde::{Deserialize, Serialize};

/// Every tracked connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Daemon version.
    pub version: String,
    /// Daemon process id.
    pub pid: u32,
    /// Tracked connections, by token.
    pub connections: Vec<ConnStatus>,
    /// The metered budgets (`metered.budgets`) and their use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetUse>,
}

/// One connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnStatus {
    /// Local token, 8 hex digits (as `ss` prints it).
    pub token: String,
    /// Local address of the initial subflow, if known.
    pub local: Option<String>,
    /// Remote address of the initial subflow, if known.
    pub remote: Option<String>,
    /// MPTCP-level established.
    pub established: bool,
    /// We are the server side (accepted connection).
    pub server_side: bool,
    /// An operator holds it (`mptcp-pmd hold`): the policy does not act on it.
    #[serde(default)]
    pub held: bool,
    /// The policy serving it.
    pub policy: String,
    /// Which entry chose it: "default" or "rule N" (N = index in `rules:`).
    pub rule: String,
    /// What the policy says about the connection as a whole (`code: detail`), if anything:
    /// e.g. active-standby's state (active, failover, stalled) with every path that is down
    /// or held.
    #[serde(default)]
    pub note: Option<String>,
    /// Its subflows, as the state machine knows them (dead ones kept for a while).
    pub subflows: Vec<SubflowStatus>,
    /// Local addresses announced to the peer (active and withdrawn), in announce order.
    #[serde(default)]
    pub announced: Vec<AnnouncedStatus>,
    /// Addresses the peer announced to us and did not remove.
    #[serde(default)]
    pub peer_announced: Vec<PeerAddrStatus>,
}

/// One local address announced to the peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnouncedStatus {
    /// The address.
    pub addr: String,
    /// Its address id on the connection.
    pub id: u8,
    /// The port announced with it, if any.
    pub port: Option<u16>,
    /// sent (waiting for the peer's join), unjoined (no join within the pacing window: the
    /// peer may be at its add_addr_accepted limit), joined, refused or withdrawn.
    pub state: String,
    /// Seconds since it entered that state.
    pub age_s: f64,
    /// The kernel's refusal, for `refused`.
    pub error: Option<String>,
    /// Why the policy last acted on it (`code: detail`).
    pub why: Option<String>,
    /// An operator announced or withdrew it by hand.
    #[serde(default)]
    pub manual: bool,
}

/// One address the peer announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerAddrStatus {
    /// The peer's id for it.
    pub id: u8,
    /// The address.
    pub addr: String,
    /// The port it gave, if any (otherwise the connection's).
    pub port: Option<u16>,
}

/// One subflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubflowStatus {
    /// Local address and port (`addr:*` while the port is unknown).
    pub local: String,
    /// Remote address and port.
    pub remote: String,
    /// pending, requested, established, closed or failed.
    pub state: String,
    /// Backup flag as the kernel last reported it.
    pub backup: bool,
    /// The connection's initial subflow.
    pub initial: bool,
    /// Smoothed RTT in microseconds (established subflows with a sample).
    pub srtt_us: Option<u32>,
    /// Congestion window in segments.
    pub cwnd: Option<u32>,
    /// Total retransmitted segments.
    pub retransmits: Option<u32>,
    /// Seconds since the subflow entered its state (none while pending).
    pub age_s: Option<f64>,
    /// Why it closed or failed.
    pub error: Option<String>,
    /// Why the policy last acted on it (`code: detail`), if it did; `operator: uid U pid P`
    /// for one an operator acted on.
    #[serde(default)]
    pub why: Option<String>,
    /// An operator created it by hand (`mptcp-pmd subflow create`).
    #[serde(default)]
    pub manual: bool,
}

/// The state name of a subflow.
pub fn state_name(s: &SubflowState) -> &'static str {
    match s {
        SubflowState::Pending { .. } => "pending",
        SubflowState::Requested { .. } => "requested",
        SubflowState::Established { .. } => "established",
        SubflowState::Closed { .. } => "closed",
        SubflowState::Failed { .. } => "failed",
    }
}

fn subflow(now: Instant, s: &Subflow) -> SubflowStatus {
    let since = match &s.state {
        SubflowState::Pending { .. } => None,
        SubflowState::Requested { since, .. } | SubflowState::Established { since } => Some(*since),
        SubflowState::Closed { at, .. } | SubflowState::Failed { at, .. } => Some(*at),
    };
    let error = match &s.state {
        SubflowState::Closed { error: Some(e), .. } => Some(format!("socket error {e}")),
        SubflowState::Failed { errno, message, .. } => Some(match message {
            Some(m) => format!("errno {errno}: {m}"),
            None => format!("errno {errno}"),
        }),
        _ => None,
    };
    let sample = s.sample.filter(|_| s.is_established());
    SubflowStatus {
        local: match s.local_port {
            Some(p) => std::net::SocketAddr::new(s.path.local, p).to_string(),
            None => match s.path.local {
                std::net::IpAddr::V4(a) => format!("{a}:*"),
                std::net::IpAddr::V6(a) => format!("[{a}]:*"),
            },
        },
        remote: s.path.remote.to_string(),
        state: state_name(&s.state).to_string(),
        backup: s.backup,
        initial: s.initial,
        srtt_us: sample.map(|x| x.srtt_us),
        cwnd: sample.map(|x| x.snd_cwnd),
        retransmits: sample.map(|x| x.total_retrans),
        age_s: since.map(|t| age(now, t)),
        error,
        why: s.reason.as_ref().map(ToString::to_string),
        manual: s.manual,
    }
}

/// The state name of an announcement.
pub fn announce_state_name(s: &AnnounceState) -> &'static str {
    match s {
        AnnounceState::Sent { .. } => "sent",
        AnnounceState::Unjoined { .. } => "unjoined",
        AnnounceState::Joined { .. } => "joined",
        AnnounceState::Refused { .. } => "refused",
        AnnounceState::Withdrawn { .. } => "withdrawn",
    }
}

fn age(now: Instant, t: Instant) -> f64 {
    let d = now.saturating_duration_since(t).as_secs_f64();
    (d * 10.0).round() / 10.0
}

fn announced(now: Instant, a: &Announcement) -> AnnouncedStatus {
    let (at, error) = match &a.state {
        AnnounceState::Sent { at }
        | AnnounceState::Unjoined { at }
        | AnnounceState::Joined { at }
        | AnnounceState::Withdrawn { at } => (*at, None),
        AnnounceState::Refused { at, errno, message } => (
            *at,
            Some(match message {
                Some(m) => format!("errno {errno}: {m}"),
                None => format!("errno {errno}"),
            }),
        ),
    };
    AnnouncedStatus {
        addr: a.addr.to_string(),
        id: a.id,
        port: a.port,
        state: announce_state_name(&a.state).to_string(),
        age_s: age(now, at),
        error,
        why: a.reason.as_ref().map(ToString::to_string),
        manual: a.manual,
    }
}

/// The status view of one connection served by `policy` chosen by `rule`.
pub fn connection(now: Instant, conn: &Connection, policy: &str, rule: &str) -> ConnStatus {
    let info = conn.info();
    ConnStatus {
        token: format!("{:08x}", conn.token().0),
        local: info.map(|i| i.local.to_string()),
        remote: info.map(|i| i.remote.to_string()),
        established: conn.is_established(),
        server_side: conn.is_server_side(),
        held: conn.is_held(),
        policy: policy.to_string(),
        rule: rule.to_string(),
        note: None,
        subflows: conn.subflows().iter().map(|s| subflow(now, s)).collect(),
        announced: conn
            .announcements()
            .iter()
            .map(|a| announced(now, a))
            .collect(),
        peer_announced: conn
            .peer_announced()
            .map(|(id, addr, port)| PeerAddrStatus {
                id,
                addr: addr.to_string(),
                port,
            })
            .collect(),
    }
}

/// Local addresses, usable and skipped, and the MPTCP listeners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Addresses {
    /// Addresses subflows may use.
    pub usable: Vec<UsableAddr>,
    /// Addresses left out, with the reason.
    pub skipped: Vec<SkippedAddr>,
    /// The MPTCP listening sockets of the namespace.
    #[serde(default)]
    pub listeners: Vec<ListenerStatus>,
    /// The metered budgets and their use (the usable addresses name theirs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetUse>,
}

/// One MPTCP listening socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerStatus {
    /// Address and port (the wildcard address for every address).
    pub addr: String,
    /// Peers can join its connections at any local address (false: only at its own).
    pub joins_anywhere: bool,
    /// What that means, when joins are confined.
    pub note: Option<String>,
}

/// A usable local address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsableAddr {
    /// The address.
    pub addr: String,
    /// Its interface.
    pub interface: String,
    /// Its interface index.
    pub if_index: u32,
    /// Subflows over it are opened as backup.
    pub backup: bool,
    /// The metered budget its interface counts against, if any (its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
}

/// A skipped local address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedAddr {
    /// The address.
    pub addr: String,
    /// Its interface.
    pub interface: String,
    /// Why it is not used.
    pub reason: String,
}

/// The addresses view; `listeners` with whether each confines joins to its own address.
pub fn addresses(
    usable: &[LocalAddr],
    skipped: &[Skipped],
    listeners: &[(std::net::SocketAddr, bool)],
    budgets: Vec<BudgetUse>,
) -> Addresses {
    let budget_of = |name: &str| {
        budgets
            .iter()
            .find(|b| {
                b.name
                    .split(',')
                    .any(|g| mptcp_pmd_config::glob_match(g, name))
            })
            .map(|b| b.name.clone())
    };
    Addresses {
        usable: usable
            .iter()
            .map(|l| UsableAddr {
                addr: l.addr.to_string(),
                interface: l.if_name.clone(),
                if_index: l.if_index,
                backup: l.backup,
                budget: budget_of(&l.if_name),
            })
            .collect(),
        skipped: skipped
            .iter()
            .map(|s| SkippedAddr {
                addr: s.addr.to_string(),
                interface: s.if_name.clone(),
                reason: s.reason.to_string(),
            })
            .collect(),
        listeners: listeners
            .iter()
            .map(|(addr, confined)| ListenerStatus {
                addr: addr.to_string(),
                joins_anywhere: !confined,
                note: confined.then(|| crate::core::listeners::CONFINED.to_string()),
            })
            .collect(),
        budgets,
    }
}

/// The metered budgets as a table: use, budget, period, and how their interfaces are used.
fn render_budgets(out: &mut String, budgets: &[BudgetUse]) {
    if budgets.is_empty() {
        return;
    }
    out.push_str("metered budgets:\n");
    let rows: Vec<Vec<String>> = budgets
        .iter()
        .map(|b| {
            let pct = if b.budget > 0 {
                b.used as f64 * 100.0 / b.budget as f64
            } else {
                0.0
            };
            let by_if: Vec<String> = b
                .interfaces
                .iter()
                .map(|(i, n)| format!("{i} {}", human(*n)))
                .collect();
            vec![
                b.name.clone(),
                format!("{} ({pct:.1}%)", human(b.used)),
                human(b.budget),
                format!("{} since {}", b.period, b.since),
                b.resets.clone(),
                if b.spent {
                    format!("spent: {}", b.when_spent)
                } else {
                    "ok".to_owned()
                },
                by_if.join(", "),
            ]
        })
        .collect();
    table(
        out,
        &[
            "BUDGET",
            "USED",
            "OF",
            "PERIOD",
            "RESETS",
            "STATE",
            "BY INTERFACE",
        ],
        &rows,
        "  ",
    );
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], indent: &str) {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.len());
            }
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::from(indent);
        for (i, c) in cells.enumerate() {
            let width = w.get(i).copied().unwrap_or(0);
            let _ = write!(s, "{c:<width$}  ");
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(out, &mut header.iter().copied());
    for r in rows {
        line(out, &mut r.iter().map(String::as_str));
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |x| x.to_string())
}

/// The human-readable status.
pub fn render_status(s: &Status) -> String {
    let mut out = format!(
        "mptcp-pmd {} (pid {}): {} connection(s)\n",
        s.version,
        s.pid,
        s.connections.len()
    );
    render_budgets(&mut out, &s.budgets);
    for c in &s.connections {
        let _ = writeln!(
            out,
            "\nconnection {}  {} -> {}  policy {} ({}){}{}{}",
            c.token,
            c.local.as_deref().unwrap_or("?"),
            c.remote.as_deref().unwrap_or("?"),
            c.policy,
            c.rule,
            if c.established {
                ""
            } else {
                "  not established"
            },
            if c.server_side { "  server side" } else { "" },
            if c.held {
                "  HELD (the policy does not act on it)"
            } else {
                ""
            },
        );
        if let Some(n) = &c.note {
            let _ = writeln!(out, "  note: {n}");
        }
        let rows: Vec<Vec<String>> = c
            .subflows
            .iter()
            .map(|f| {
                vec![
                    f.local.clone(),
                    f.remote.clone(),
                    f.state.clone(),
                    if f.backup { "yes" } else { "no" }.to_string(),
                    f.srtt_us
                        .map_or_else(|| "-".into(), |u| format!("{:.1}ms", f64::from(u) / 1000.0)),
                    opt(f.cwnd),
                    opt(f.retransmits),
                    f.age_s.map_or_else(|| "-".into(), |a| format!("{a:.1}s")),
                    f.error.clone().unwrap_or_default(),
                    match (&f.why, f.manual) {
                        (Some(w), true) => format!("[by hand] {w}"),
                        (None, true) => "[by hand]".to_string(),
                        (w, false) => w.clone().unwrap_or_default(),
                    },
                ]
            })
            .collect();
        table(
            &mut out,
            &[
                "LOCAL", "REMOTE", "STATE", "BACKUP", "SRTT", "CWND", "RETRANS", "AGE", "ERROR",
                "WHY",
            ],
            &rows,
            "  ",
        );
        if !c.announced.is_empty() {
            out.push_str("  announced to the peer:\n");
            let rows: Vec<Vec<String>> = c
                .announced
                .iter()
                .map(|a| {
                    vec![
                        a.addr.clone(),
                        a.id.to_string(),
                        opt(a.port),
                        a.state.clone(),
                        format!("{:.1}s", a.age_s),
                        a.error.clone().unwrap_or_default(),
                        a.why.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["ADDRESS", "ID", "PORT", "STATE", "AGE", "ERROR", "WHY"],
                &rows,
                "    ",
            );
        }
        if !c.peer_announced.is_empty() {
            out.push_str("  announced by the peer:\n");
            let rows: Vec<Vec<String>> = c
                .peer_announced
                .iter()
                .map(|p| vec![p.addr.clone(), p.id.to_string(), opt(p.port)])
                .collect();
            table(&mut out, &["ADDRESS", "ID", "PORT"], &rows, "    ");
        }
    }
    out
}

/// The human-readable address list.
pub fn render_addresses(a: &Addresses) -> String {
    let mut out = String::from("usable:\n");
    let rows: Vec<Vec<String>> = a
        .usable
        .iter()
        .map(|u| {
            vec![
                u.addr.clone(),
                u.interface.clone(),
                u.if_index.to_string(),
                if u.backup { "backup" } else { "" }.to_string(),
                u.budget.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &mut out,
        &["ADDRESS", "INTERFACE", "INDEX", "FLAGS", "BUDGET"],
        &rows,
        "  ",
    );
    out.push_str("skipped:\n");
    let rows: Vec<Vec<String>> = a
        .skipped
        .iter()
        .map(|s| vec![s.addr.clone(), s.interface.clone(), s.reason.clone()])
        .collect();
    table(&mut out, &["ADDRESS", "INTERFACE", "REASON"], &rows, "  ");
    out.push_str("MPTCP listeners:\n");
    let rows: Vec<Vec<String>> = a
        .listeners
        .iter()
        .map(|l| {
            vec![
                l.addr.clone(),
                if l.joins_anywhere {
                    "any local address"
                } else {
                    "its own address only"
                }
                .to_string(),
                l.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&mut out, &["ADDRESS", "JOINS", "NOTE"], &rows, "  ");
    render_budgets(&mut out, &a.budgets);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mptcp_pmd_policies::conn::ConnTimers;
    use mptcp_pmd_policies::{ConnFlags, ConnInfo, PmEvent, Token};

    #[test]
    fn connection_view_and_table() {
        let mut c = Connection::new(Token(0xab), ConnTimers::default());
        let info = ConnInfo {
            token: Token(0xab),
            local: "192.0.2.1:40000".parse().unwrap(),
            remote: "198.51.100.7:443".parse().unwrap(),
            loc_id: 0,
            rem_id: 0,
            flags: ConnFlags::default(),
        };
        c.handle_event(Instant::now(), &PmEvent::Established(info));
        let mut v = connection(Instant::now(), &c, "mesh-x", "default");
        assert_eq!(v.note, None);
        v.note = Some("active: path 192.0.2.1 -> 198.51.100.7:443 carries the traffic".into());
        assert_eq!(v.token, "000000ab");
        assert_eq!(v.remote.as_deref(), Some("198.51.100.7:443"));
        let s = Status {
            budgets: Vec::new(),
            version: "0".into(),
            pid: 1,
            connections: vec![v.clone()],
        };
        let text = render_status(&s);
        assert!(text.contains("connection 000000ab"), "{text}");
        assert!(text.contains("policy mesh-x (default)"), "{text}");
        assert!(
            text.contains("\n  note: active: path 192.0.2.1 -> 198.51.100.7:443 carries"),
            "{text}"
        );
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"note\":\"active: path"), "{json}");
        let back: Status = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        for f in &v.subflows {
            assert!(text.contains(&f.local), "{text}");
        }
    }

    #[test]
    fn announcements_both_ways_in_json_and_table() {
        use mptcp_pmd_policies::policy::{Action, Decision, Reason};
        let t0 = Instant::now();
        let mut c = Connection::new(Token(0xcd), ConnTimers::default());
        let info = ConnInfo {
            token: Token(0xcd),
            local: "192.0.2.1:443".parse().unwrap(),
            remote: "198.51.100.7:50000".parse().unwrap(),
            loc_id: 0,
            rem_id: 0,
            flags: ConnFlags {
                server_side: true,
                ..ConnFlags::default()
            },
        };
        c.handle_event(t0, &PmEvent::Established(info));
        c.handle_event(
            t0,
            &PmEvent::Announced {
                token: Token(0xcd),
                rem_id: 3,
                addr: "198.51.100.9".parse().unwrap(),
                port: None,
            },
        );
        let why = Reason::fixed("new-address", "told");
        let announce = |a: &str| {
            Decision::new(
                Action::Announce {
                    addr: a.parse().unwrap(),
                    port: None,
                },
                why.clone(),
            )
        };
        c.handle_decisions(t0, vec![announce("192.0.2.9"), announce("192.0.2.10")]);
        while let Some(cmd) = c.poll_command() {
            let refused = matches!(
                &cmd,
                mptcp_pmd_policies::PmCommand::Announce { id: 254, .. }
            );
            let res = if refused {
                Err(mptcp_pmd_policies::KernelRefusal {
                    errno: 22,
                    message: Some("did not match address and id".into()),
                })
            } else {
                Ok(())
            };
            c.handle_command_result(t0, &cmd, res);
        }
        let v = connection(t0, &c, "announce", "default");
        assert_eq!(v.announced.len(), 2);
        assert_eq!(
            (v.announced[0].addr.as_str(), v.announced[0].id),
            ("192.0.2.9", 255)
        );
        assert_eq!(v.announced[0].state, "sent");
        assert_eq!(v.announced[0].why.as_deref(), Some("new-address: told"));
        assert_eq!(v.announced[1].state, "refused");
        assert_eq!(
            v.announced[1].error.as_deref(),
            Some("errno 22: did not match address and id")
        );
        assert_eq!(
            v.peer_announced,
            vec![PeerAddrStatus {
                id: 3,
                addr: "198.51.100.9".into(),
                port: None
            }]
        );
        let s = Status {
            budgets: Vec::new(),
            version: "0".into(),
            pid: 1,
            connections: vec![v.clone()],
        };
        let text = render_status(&s);
        assert!(text.contains("announced to the peer:"), "{text}");
        assert!(text.contains("192.0.2.10"), "{text}");
        assert!(text.contains("announced by the peer:"), "{text}");
        assert!(text.contains("198.51.100.9"), "{text}");
        let back: Status = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn held_connections_and_manual_subflows_are_shown() {
        use mptcp_pmd_policies::policy::Reason;
        use mptcp_pmd_policies::Manual;
        let t0 = Instant::now();
        let mut c = Connection::new(Token(0xef), ConnTimers::default());
        let info = ConnInfo {
            token: Token(0xef),
            local: "192.0.2.1:40000".parse().unwrap(),
            remote: "198.51.100.7:443".parse().unwrap(),
            loc_id: 0,
            rem_id: 0,
            flags: ConnFlags::default(),
        };
        c.handle_event(t0, &PmEvent::Established(info));
        c.handle_manual(
            t0,
            &Manual::Create {
                local: "192.0.2.2".parse().unwrap(),
                remote: "198.51.100.7:443".parse().unwrap(),
                backup: false,
            },
            Reason::new("operator", "uid 0 pid 9".into()),
        )
        .unwrap();
        c.set_held(true);
        let v = connection(t0, &c, "fullmesh", "default");
        assert!(v.held);
        assert_eq!(
            v.subflows.iter().map(|f| f.manual).collect::<Vec<_>>(),
            [false, true]
        );
        let text = render_status(&Status {
            version: "0".into(),
            pid: 1,
            connections: vec![v.clone()],
            budgets: Vec::new(),
        });
        assert!(text.contains("HELD"), "{text}");
        assert!(text.contains("[by hand] operator: uid 0 pid 9"), "{text}");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["held"], true);
        assert_eq!(json["subflows"][1]["manual"], true);
    }

    #[test]
    fn listeners_in_the_addresses_view() {
        let l: Vec<(std::net::SocketAddr, bool)> = vec![
            ("0.0.0.0:80".parse().unwrap(), false),
            ("192.0.2.1:443".parse().unwrap(), true),
        ];
        let a = addresses(&[], &[], &l, Vec::new());
        assert!(a.listeners[0].joins_anywhere && a.listeners[0].note.is_none());
        assert!(!a.listeners[1].joins_anywhere);
        let text = render_addresses(&a);
        assert!(
            text.contains("192.0.2.1:443  its own address only"),
            "{text}"
        );
        assert!(text.contains("listen on 0.0.0.0 or [::]"), "{text}");
    }

    #[test]
    fn budgets_in_status_and_addresses() {
        let b = BudgetUse {
            name: "wwan*".into(),
            budget: 10 << 30,
            used: 5 << 30,
            interfaces: [("wwan0".to_string(), 5u64 << 30)].into(),
            period: "month".into(),
            since: "2026-12-01 00:00".into(),
            resets: "2027-01-01 00:00".into(),
            timezone: "local".into(),
            spent: false,
            when_spent: "backup".into(),
        };
        let s = Status {
            version: "0".into(),
            pid: 1,
            connections: Vec::new(),
            budgets: vec![b.clone()],
        };
        let text = render_status(&s);
        assert!(text.contains("metered budgets:"), "{text}");
        assert!(text.contains("5.0 GiB (50.0%)"), "{text}");
        assert!(text.contains("wwan0 5.0 GiB"), "{text}");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), s);
        let locals = vec![
            LocalAddr {
                addr: "10.0.2.1".parse().unwrap(),
                if_index: 3,
                if_name: "wwan0".into(),
                backup: false,
            },
            LocalAddr {
                addr: "10.0.1.1".parse().unwrap(),
                if_index: 2,
                if_name: "eth0".into(),
                backup: false,
            },
        ];
        let a = addresses(&locals, &[], &[], vec![b]);
        assert_eq!(a.usable[0].budget.as_deref(), Some("wwan*"));
        assert_eq!(a.usable[1].budget, None);
        let text = render_addresses(&a);
        assert!(
            text.contains("BUDGET") && text.contains("metered budgets:"),
            "{text}"
        );
    }
}
