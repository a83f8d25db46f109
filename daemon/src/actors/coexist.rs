//! Coexistence with the in-kernel path manager's configuration: the endpoint watch. At start and
//! then every [`RECHECK`] it dumps the in-kernel PM's endpoints (GET_ADDR without a token, on a
//! `mptcp_pm` socket opened for the check and closed after it, so that the daemon keeps exactly
//! one command socket and a dump never waits behind a command) and reads which path manager
//! the namespace runs, and says what matters once, when it changes ([`Watch`], pure):
//!
//! - endpoints configured (by NetworkManager, mptcpd with the in-kernel PM, `ip mptcp endpoint`)
//!   while the userspace PM is selected: the kernel ignores them, so whoever configured them
//!   expects subflows or announcements that never come (a warning naming them);
//! - the namespace switched away from the userspace PM while the daemon runs: the kernel then
//!   refuses its commands (a warning).
//!
//! Why a period and not a notification: the kernel announces no endpoint change. The
//! `mptcp_pm_cmds` multicast group exists (`net/mptcp/pm_netlink.c` registers it), but nothing
//! is ever sent on it; checked on Linux 6.18 with a socket joined to both `mptcp_pm` groups
//! while `ip mptcp endpoint add` and `flush` ran: no datagram. A check (socket, family lookup,
//! dump of a few µs: BENCHMARKS.md, "History", "The reply timeout") every 30 s costs nothing
//! worth counting; what the period costs is up to 30 s before a new endpoint is reported.

use std::time::Duration;

use actix::prelude::*;
use netlink_actor::genl::PmClient;
use netlink_actor::mptcp_pm::{addr_flag_names, PmAddr, MPTCP_PM_ADDR_FLAG_IMPLICIT};
use slog::{debug, info, warn, Logger};

use crate::process::startup;

/// How often the endpoints and the path manager are checked again.
pub const RECHECK: Duration = Duration::from_secs(30);

/// One endpoint as `ip mptcp endpoint show` would list it.
pub fn describe(e: &PmAddr) -> String {
    let mut s = match e.port {
        Some(p) => format!("{} port {p}", e.addr),
        None => e.addr.to_string(),
    };
    s.push_str(&format!(" id {}", e.id));
    for f in addr_flag_names(e.flags) {
        s.push(' ');
        s.push_str(&f);
    }
    if let Some(i) = e.if_index.filter(|i| *i > 0) {
        s.push_str(&format!(" ifindex {i}"));
    }
    s
}

/// What the watch has to say after a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Endpoints that do nothing while the userspace PM is selected (new or changed set).
    Unused(Vec<String>),
    /// The endpoints that did nothing are gone.
    Cleared,
    /// The namespace's path manager is no longer the userspace one (`now`).
    Switched {
        /// The path manager in force now.
        now: String,
    },
    /// The namespace is back on the userspace PM.
    Back,
    /// Dry run on another path manager: its endpoints are in force (informational).
    InForce {
        /// The path manager.
        pm: String,
        /// Its endpoints.
        endpoints: Vec<String>,
    },
}

/// The pure part: remembers what was said, says what changed.
#[derive(Debug, Default)]
pub struct Watch {
    pm: Option<String>,
    endpoints: Option<Vec<String>>,
}

impl Watch {
    /// A check found path manager `pm` and `endpoints` (described, implicit ones left out by
    /// the caller); `dry_run`: the daemon does not expect the userspace PM.
    pub fn check(&mut self, pm: &str, mut endpoints: Vec<String>, dry_run: bool) -> Vec<Note> {
        endpoints.sort();
        let mut notes = Vec::new();
        let pm_changed = self.pm.as_deref() != Some(pm);
        let set_changed = self.endpoints.as_ref() != Some(&endpoints);
        let first = self.pm.is_none();
        if pm == "userspace" {
            if pm_changed && !first && !dry_run {
                notes.push(Note::Back);
            }
            if !endpoints.is_empty() && (set_changed || pm_changed) {
                notes.push(Note::Unused(endpoints.clone()));
            } else if endpoints.is_empty() && set_changed && !first {
                notes.push(Note::Cleared);
            }
        } else if dry_run {
            if (pm_changed || set_changed) && !endpoints.is_empty() {
                notes.push(Note::InForce {
                    pm: pm.to_string(),
                    endpoints: endpoints.clone(),
                });
            }
        } else if pm_changed {
            notes.push(Note::Switched {
                now: pm.to_string(),
            });
        }
        self.pm = Some(pm.to_string());
        self.endpoints = Some(endpoints);
        notes
    }
}

/// The actor that runs the checks on the event loop.
pub struct EndpointWatch {
    watch: Watch,
    dry_run: bool,
    log: Logger,
}

impl EndpointWatch {
    /// A watch; `dry_run`: the daemon does not expect the userspace PM.
    pub fn new(dry_run: bool, log: Logger) -> Self {
        EndpointWatch {
            watch: Watch::default(),
            dry_run,
            log,
        }
    }

    fn check(&mut self) {
        let endpoints = match PmClient::open().and_then(|mut c| c.get_addrs(None)) {
            Ok(e) => e,
            Err(e) => {
                debug!(self.log, "cannot list the in-kernel PM's endpoints; trying again later"; "error" => %e);
                return;
            }
        };
        let pm = startup::path_manager().unwrap_or_else(|| "unknown".into());
        let described = endpoints
            .iter()
            .filter(|e| e.flags & MPTCP_PM_ADDR_FLAG_IMPLICIT == 0)
            .map(describe)
            .collect();
        for note in self.watch.check(&pm, described, self.dry_run) {
            match note {
                Note::Unused(list) => warn!(self.log,
                    "the in-kernel path manager has endpoints configured, which do nothing while the userspace path manager is selected (another tool - NetworkManager, mptcpd with the in-kernel PM, `ip mptcp endpoint add` - expects them to create subflows or announce addresses; remove them with `ip mptcp endpoint flush`, or let this daemon's policy and `addresses:` filters do the work)";
                    "endpoints" => list.join("; "), "count" => list.len()),
                Note::Cleared => info!(self.log, "the in-kernel path manager's endpoints are gone"),
                Note::Switched { now } => warn!(self.log,
                    "the namespace's path manager is no longer the userspace one: the kernel refuses this daemon's commands until `sysctl -w net.mptcp.path_manager=userspace`";
                    "path_manager" => now),
                Note::Back => info!(
                    self.log,
                    "the namespace's path manager is the userspace one again"
                ),
                Note::InForce { pm, endpoints } => info!(self.log,
                    "dry run: the namespace's path manager and its endpoints stay in force";
                    "path_manager" => pm, "endpoints" => endpoints.join("; ")),
            }
        }
    }
}

impl Actor for EndpointWatch {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.check();
        ctx.run_interval(RECHECK, |act, _| act.check());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn warns_once_per_set_of_unused_endpoints() {
        let mut w = Watch::default();
        assert!(
            w.check("userspace", vec![], false).is_empty(),
            "nothing to say"
        );
        let n = w.check("userspace", eps(&["10.0.0.2 id 1 signal"]), false);
        assert_eq!(n, vec![Note::Unused(eps(&["10.0.0.2 id 1 signal"]))]);
        assert!(
            w.check("userspace", eps(&["10.0.0.2 id 1 signal"]), false)
                .is_empty(),
            "said once"
        );
        let n = w.check(
            "userspace",
            eps(&["10.0.0.3 id 2 subflow", "10.0.0.2 id 1 signal"]),
            false,
        );
        assert_eq!(
            n,
            vec![Note::Unused(eps(&[
                "10.0.0.2 id 1 signal",
                "10.0.0.3 id 2 subflow"
            ]))],
            "a changed set, sorted"
        );
        assert_eq!(w.check("userspace", vec![], false), vec![Note::Cleared]);
    }

    #[test]
    fn warns_at_start_and_when_the_pm_is_switched_away() {
        let mut w = Watch::default();
        assert_eq!(
            w.check("userspace", eps(&["a"]), false),
            vec![Note::Unused(eps(&["a"]))],
            "at start"
        );
        assert_eq!(
            w.check("kernel", eps(&["a"]), false),
            vec![Note::Switched {
                now: "kernel".into()
            }]
        );
        assert!(w.check("kernel", eps(&["a"]), false).is_empty());
        assert_eq!(
            w.check("userspace", eps(&["a"]), false),
            vec![Note::Back, Note::Unused(eps(&["a"]))]
        );
    }

    #[test]
    fn a_dry_run_on_the_kernel_pm_only_informs() {
        let mut w = Watch::default();
        assert_eq!(
            w.check("kernel", eps(&["a"]), true),
            vec![Note::InForce {
                pm: "kernel".into(),
                endpoints: eps(&["a"])
            }]
        );
        assert!(w.check("kernel", eps(&["a"]), true).is_empty());
        assert!(Watch::default().check("kernel", vec![], true).is_empty());
    }

    #[test]
    fn endpoints_described_like_ip_mptcp() {
        let e = PmAddr {
            id: 3,
            addr: "10.0.0.2".parse().unwrap(),
            port: None,
            flags: 1 | 2 | 4 | 1 << 20,
            if_index: Some(4),
        };
        assert_eq!(
            describe(&e),
            "10.0.0.2 id 3 signal subflow backup 0x100000 ifindex 4"
        );
    }
}
