//! The mesh of subflows shared by the policies that open one subflow per (usable local address
//! × known remote address) pair: [`reconcile`] computes what a connection lacks or has too much
//! of. Not a policy itself; policies call it.
//!
//! Everything goes through one idempotent computation, run on ESTABLISHED, ANNOUNCED, REMOVED,
//! SUB_CLOSED, local address changes and timer ticks, so a missed trigger is repaired by the
//! next one. Choices:
//! - Nothing before the connection is established, nothing on server-side connections.
//! - The initial subflow is never closed, even if its local address is filtered out or gone:
//!   the application chose it, and the kernel closes it when it really dies. Its local address
//!   is *not* used for new subflows unless it is in the usable set.
//! - A subflow whose local address left the usable set, or whose remote the peer removed, is
//!   closed. Pending ones need no action (the state machine drops creates towards removed
//!   remotes; creates from a vanished address fail and back off).
//! - Re-opening after a close is immediate from the policy's view; the state machine delays it
//!   by the path's backoff and a given-up path is skipped.
//! - When the budget is short, non-backup local addresses are served first.
//! - A subflow's backup flag follows its local address's `backup` setting.
//! - What the mesh would not have opened is closed ([`trim`]): a second live subflow on an
//!   address pair that already has one (keeping the initial subflow, else the oldest established
//!   one), and established subflows beyond `max_subflows` (the newest first; never the initial
//!   one). The mesh itself never opens either, so they come from elsewhere: another policy before
//!   a reload (ndiffports' subflows over the initial pair), or a lower `max_subflows` after one.
//! - **deny_join_id0**: when the peer set it, no subflow is opened towards its initial address
//!   and port (the connection's remote, id 0): behind a layer-4 load balancer such a join
//!   reaches another backend and is reset. Joins to the addresses it announced still happen.
//!   [`note`] says so for `status`, and that nothing can be added when it announced nothing.
//!
//! The pieces ([`closes`], [`backup_changes`], [`opens`], [`joinable_remotes`]) are public for
//! policies that build on the mesh but own some paths themselves (e.g. paths they probe after
//! a failure, or backup flags they set by their own rules).

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::conn::{Connection, Path};
use crate::model::{LocalAddr, SubflowKey};
use crate::policy::{Action, Ctx, Decision, Reason};

const GONE: Reason = Reason::fixed("address-gone", "its local address is no longer usable");
const REMOVED: Reason = Reason::fixed("peer-removed", "the peer removed its remote address");
const BACKUP_ON: Reason = Reason::fixed("backup-config", "its interface is a backup interface");
const BACKUP_OFF: Reason = Reason::fixed(
    "backup-config",
    "its interface is no longer a backup interface",
);
const MISSING: Reason = Reason::fixed("mesh", "no live subflow on this path of the mesh");
const DUPLICATE: Reason = Reason::fixed(
    "duplicate",
    "another subflow serves this (local, remote) pair; the mesh keeps one per pair",
);
const OVER_LIMIT: Reason = Reason::fixed(
    "over-limit",
    "more live subflows than max_subflows; the newest are closed",
);

/// What the connection needs to match the mesh, with at most `max_subflows` live subflows
/// (the initial one included): closes first, then backup changes, then opens.
pub fn reconcile(ctx: &Ctx<'_>, max_subflows: usize) -> Vec<Decision> {
    if !acts_on(ctx.conn) {
        return Vec::new();
    }
    let mut out = closes(ctx);
    trim(ctx.conn, max_subflows, &mut out);
    let flags: Vec<Decision> = backup_changes(ctx)
        .into_iter()
        .filter(|d| !matches!(d.action, Action::SetBackup { key, .. } if closed(&out, key)))
        .collect();
    out.extend(flags);
    let budget = budget(ctx.conn, max_subflows, &out);
    let mut locals: Vec<&LocalAddr> = ctx.locals.iter().collect();
    locals.sort_by_key(|l| l.backup);
    out.extend(opens(ctx, locals, budget, |local, _| Some(local.backup)));
    out
}

/// Whether `out` already closes `key`.
fn closed(out: &[Decision], key: SubflowKey) -> bool {
    out.iter()
        .any(|d| matches!(d.action, Action::Close { key: k } if k == key))
}

/// Close what the mesh would not have opened (see the module docs): duplicates on a pair,
/// then established subflows beyond `max_subflows`, newest first. `out` holds the closes
/// decided so far; what they close no longer counts.
pub fn trim(conn: &Connection, max_subflows: usize, out: &mut Vec<Decision>) {
    // One per pair: the initial subflow's pair is taken by it; otherwise the first established
    // subflow in creation order (the oldest) keeps the pair.
    let mut kept: Vec<Path> = conn
        .subflows()
        .iter()
        .filter(|sf| sf.initial && sf.is_live())
        .map(|sf| sf.path)
        .collect();
    for sf in conn.subflows() {
        if !sf.is_live() || !sf.is_established() || sf.initial {
            continue;
        }
        let Some(key) = sf.key() else { continue };
        if closed(out, key) {
            continue;
        }
        if kept.contains(&sf.path) {
            out.push(Decision::new(Action::Close { key }, DUPLICATE));
        } else {
            kept.push(sf.path);
        }
    }
    // Only established subflows count here: a pending request is no reason to close a
    // working subflow (once established, it is the newest and goes first).
    let established = conn
        .subflows()
        .iter()
        .filter(|sf| sf.is_live() && sf.is_established())
        .filter(|sf| sf.key().is_none_or(|key| !closed(out, key)))
        .count();
    let mut excess = established.saturating_sub(max_subflows);
    for sf in conn.subflows().iter().rev() {
        if excess == 0 {
            break;
        }
        if !sf.is_live() || !sf.is_established() || sf.initial {
            continue;
        }
        let Some(key) = sf.key() else { continue };
        if closed(out, key) {
            continue;
        }
        out.push(Decision::new(Action::Close { key }, OVER_LIMIT));
        excess -= 1;
    }
}

/// Whether a client policy acts on the connection at all: established, not closed, not
/// accepted by this host.
pub fn acts_on(conn: &Connection) -> bool {
    !conn.is_closed() && conn.is_established() && !conn.is_server_side()
}

/// The peer's addresses a subflow may be opened towards: every known remote but its initial
/// address and port when the peer set `deny_join_id0`.
pub fn joinable_remotes(conn: &Connection) -> Vec<SocketAddr> {
    conn.remotes()
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| !conn.join_denied(*r))
        .collect()
}

/// Closes of established subflows (the initial one excepted) whose local address is no
/// longer usable or whose remote the peer removed.
pub fn closes(ctx: &Ctx<'_>) -> Vec<Decision> {
    let conn = ctx.conn;
    let remotes: Vec<SocketAddr> = conn.remotes().into_iter().map(|(_, r)| r).collect();
    let usable: BTreeSet<_> = ctx.locals.iter().map(|l| l.addr).collect();
    let mut out = Vec::new();
    for sf in conn.subflows() {
        if !sf.is_live() || !sf.is_established() || sf.initial {
            continue;
        }
        let Some(key) = sf.key() else { continue };
        if !usable.contains(&sf.path.local) {
            out.push(Decision::new(Action::Close { key }, GONE));
        } else if !remotes.contains(&sf.path.remote) {
            out.push(Decision::new(Action::Close { key }, REMOVED));
        }
    }
    out
}

/// Backup flags that disagree with their local address's `backup` setting.
pub fn backup_changes(ctx: &Ctx<'_>) -> Vec<Decision> {
    let mut out = Vec::new();
    for sf in ctx.conn.subflows() {
        if !sf.is_live() || !sf.is_established() {
            continue;
        }
        let Some(key) = sf.key() else { continue };
        let wanted = ctx.locals.iter().find(|l| l.addr == sf.path.local);
        if let Some(local) = wanted {
            if local.backup != sf.want_backup {
                let why = if local.backup { BACKUP_ON } else { BACKUP_OFF };
                let backup = local.backup;
                out.push(Decision::new(Action::SetBackup { key, backup }, why));
            }
        }
    }
    out
}

/// How many more subflows `max_subflows` allows once the closes among `decided` are done.
pub fn budget(conn: &Connection, max_subflows: usize, decided: &[Decision]) -> usize {
    let closing = decided
        .iter()
        .filter(|d| matches!(d.action, Action::Close { .. }))
        .count();
    let live = conn.live_count().saturating_sub(closing);
    max_subflows.saturating_sub(live)
}

/// Opens for the (local, joinable remote) pairs of the same family that have no live subflow
/// and are not given up, in the order of `locals` then of the remotes, at most `budget`.
/// `wanted(local, remote)` says whether to open the pair (`None`: it is not the mesh's to
/// open) and with which backup flag.
pub fn opens<'a>(
    ctx: &Ctx<'_>,
    locals: impl IntoIterator<Item = &'a LocalAddr>,
    mut budget: usize,
    mut wanted: impl FnMut(&LocalAddr, SocketAddr) -> Option<bool>,
) -> Vec<Decision> {
    let conn = ctx.conn;
    let remotes = joinable_remotes(conn);
    let mut out = Vec::new();
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
            let Some(backup) = wanted(local, *remote) else {
                continue;
            };
            let open = Action::Open {
                local: local.addr,
                if_index: Some(local.if_index),
                remote: *remote,
                backup,
                timeout: None,
            };
            out.push(Decision::new(open, MISSING));
            budget -= 1;
        }
    }
    out
}

/// Why the mesh leaves out the peer's initial address, when it does (for `status`): the peer
/// set `deny_join_id0` on a connection the mesh acts on.
pub fn note(ctx: &Ctx<'_>) -> Option<Reason> {
    let conn = ctx.conn;
    let info = conn.info()?;
    if !info.flags.deny_join_id0 || !acts_on(conn) {
        return None;
    }
    let others = joinable_remotes(conn).len();
    let rest = match others {
        0 => "it announced no other address, so no subflow can be added".to_owned(),
        1 => "joins go to the 1 address it announced".to_owned(),
        n => format!("joins go to the {n} addresses it announced"),
    };
    Some(Reason::new(
        DENY_JOIN_ID0,
        format!(
            "the peer denies joins to its initial address {} (deny_join_id0): no subflow is opened towards it; {rest}",
            info.remote
        ),
    ))
}

/// The reason code of [`note`] (and of every policy's note about `deny_join_id0`).
pub const DENY_JOIN_ID0: &str = "deny-join-id0";
