//! The `fullmesh` policy: one live subflow per (usable local address × known remote address)
//! pair of the same family, up to `max_subflows` per connection (the initial subflow counts).
//!
//! Everything goes through one idempotent [`Fullmesh::reconcile`], run on ESTABLISHED,
//! ANNOUNCED, REMOVED, SUB_CLOSED, local address changes and timer ticks, so a missed trigger is
//! repaired by the next one. Choices:
//! - Nothing before the connection is established, nothing on server-side connections.
//! - The initial subflow is never closed by this policy, even if its local address is filtered
//!   out or gone: the application chose it, and the kernel closes it when it really dies. Its
//!   local address is *not* used for new subflows unless it is in the usable set.
//! - A subflow whose local address left the usable set, or whose remote the peer removed, is
//!   closed. Pending ones need no action (the state machine drops creates towards removed remotes;
//!   creates from a vanished address fail and back off).
//! - Re-opening after a close is immediate from the policy's view; the state machine delays it by
//!   the path's backoff and a given-up path is skipped.
//! - When the budget is short, non-backup local addresses are served first.
//! - A subflow's backup flag follows its local address's `backup` setting.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::conn::Path;
use crate::model::{LocalAddr, PmEvent, Token};
use crate::policy::{Ctx, Decision, Policy};

/// The fullmesh policy. See the module docs.
#[derive(Debug, Clone)]
pub struct Fullmesh {
    /// Most live subflows per connection, the initial one included.
    pub max_subflows: usize,
}

impl Fullmesh {
    /// A fullmesh policy with this many subflows at most per connection.
    pub fn new(max_subflows: usize) -> Self {
        Fullmesh { max_subflows }
    }

    /// What the connection needs to match the mesh: closes first, then backup changes, then opens.
    pub fn reconcile(&self, ctx: &Ctx<'_>) -> Vec<Decision> {
        let conn = ctx.conn;
        if conn.is_closed() || !conn.is_established() || conn.is_server_side() {
            return Vec::new();
        }
        let remotes: Vec<SocketAddr> = conn.remotes().into_iter().map(|(_, r)| r).collect();
        let usable: BTreeSet<_> = ctx.locals.iter().map(|l| l.addr).collect();
        let mut out = Vec::new();

        for sf in conn.subflows() {
            if !sf.is_live() || !sf.is_established() || sf.initial {
                continue;
            }
            let Some(key) = sf.key() else { continue };
            if !usable.contains(&sf.path.local) || !remotes.contains(&sf.path.remote) {
                out.push(Decision::Close { key });
            }
        }

        for sf in conn.subflows() {
            if !sf.is_live() || !sf.is_established() {
                continue;
            }
            let Some(key) = sf.key() else { continue };
            let wanted = ctx.locals.iter().find(|l| l.addr == sf.path.local);
            if let Some(local) = wanted {
                if local.backup != sf.want_backup {
                    out.push(Decision::SetBackup {
                        key,
                        backup: local.backup,
                    });
                }
            }
        }

        let closing = out
            .iter()
            .filter(|d| matches!(d, Decision::Close { .. }))
            .count();
        let live = conn.live_count().saturating_sub(closing);
        let mut budget = self.max_subflows.saturating_sub(live);

        let mut locals: Vec<&LocalAddr> = ctx.locals.iter().collect();
        locals.sort_by_key(|l| l.backup);
        for local in locals {
            for remote in &remotes {
                if budget == 0 {
                    return out;
                }
                if local.addr.is_ipv4() != remote.is_ipv4() {
                    continue;
                }
                let path = Path {
                    local: local.addr,
                    remote: *remote,
                };
                if conn.live_on(local.addr, *remote) > 0 || conn.given_up(&path) {
                    continue;
                }
                out.push(Decision::Open {
                    local: local.addr,
                    if_index: Some(local.if_index),
                    remote: *remote,
                    backup: local.backup,
                });
                budget -= 1;
            }
        }
        out
    }
}

impl Policy for Fullmesh {
    fn name(&self) -> &'static str {
        "fullmesh"
    }

    fn on_event(&mut self, ctx: &Ctx<'_>, event: &PmEvent) -> Vec<Decision> {
        match event {
            PmEvent::Established(_)
            | PmEvent::Announced { .. }
            | PmEvent::Removed { .. }
            | PmEvent::SubClosed(_) => self.reconcile(ctx),
            _ => Vec::new(),
        }
    }

    fn on_locals_changed(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        self.reconcile(ctx)
    }

    fn on_tick(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        self.reconcile(ctx)
    }

    fn on_closed(&mut self, _token: Token) {}
}
