//! The `ndiffports` policy: `subflows` subflows (the initial one included) over the initial
//! (local address, remote address and port) pair, with different source ports. Lost ones are
//! re-opened; the state machine applies the path's backoff and stops on a given-up path.
//!
//! It does not consult the usable local addresses except for the interface index: the initial
//! path is the application's choice (it may well be on a filtered interface such as loopback).
//! If the address vanishes, creates fail, back off and give up until the address returns.
//! Nothing before ESTABLISHED, nothing on server-side connections, nothing for `subflows <= 1`.
//! Nothing either when the peer set `deny_join_id0`: every subflow of this policy is a join
//! towards the peer's initial address and port, which such a peer refuses (behind a layer-4
//! load balancer the join reaches another backend and is reset); [`Policy::note`] says why.
//! Extra subflows on the path (peer-initiated) are left alone.
//!
//! Config section `ndiffports:`
//! - `subflows` (1..=64, default 2): subflows per connection over the initial address pair,
//!   counting the initial one; 1 creates nothing.

use serde::{Deserialize, Serialize};

use crate::conn::Path;
use crate::mesh;
use crate::model::PmEvent;
use crate::params;
use crate::plugin::{Plugin, PolicyParams};
use crate::policy::{Action, Ctx, Decision, Policy, Reason};

/// The registry entry.
pub static PLUGIN: Plugin = Plugin::new::<NdiffportsParams>(
    "ndiffports",
    "ndiffports",
    "several subflows over the initial address pair, from different ports",
);

/// The `ndiffports:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NdiffportsParams {
    /// Subflows per connection over the initial address pair, counting the initial one.
    /// 1..=64, default 2.
    #[serde(deserialize_with = "params::int::<_, _, 1, 64>")]
    pub subflows: u8,
}

impl Default for NdiffportsParams {
    fn default() -> Self {
        NdiffportsParams { subflows: 2 }
    }
}

impl PolicyParams for NdiffportsParams {
    fn build(&self) -> Box<dyn Policy> {
        Box::new(Ndiffports::new(self.subflows.into()))
    }
}

const MISSING: Reason = Reason::fixed(
    "ports",
    "fewer live subflows on the initial path than wanted",
);

/// The ndiffports policy for one connection. See the module docs.
#[derive(Debug, Clone)]
pub struct Ndiffports {
    /// Subflows wanted over the initial path, the initial one included.
    pub subflows: usize,
}

impl Ndiffports {
    /// An ndiffports policy with `subflows` subflows per connection.
    pub fn new(subflows: usize) -> Self {
        Ndiffports { subflows }
    }

    /// The opens that bring the initial path to `subflows` live subflows.
    pub fn reconcile(&self, ctx: &Ctx<'_>) -> Vec<Decision> {
        let conn = ctx.conn;
        if self.subflows <= 1 || conn.is_closed() || !conn.is_established() || conn.is_server_side()
        {
            return Vec::new();
        }
        let Some(info) = conn.info() else {
            return Vec::new();
        };
        if conn.join_denied(info.remote) {
            return Vec::new();
        }
        let path = Path {
            local: info.local.ip(),
            remote: info.remote,
        };
        if conn.given_up(&path) {
            return Vec::new();
        }
        let live = conn.live_on(path.local, path.remote);
        let if_index = ctx
            .locals
            .iter()
            .find(|l| l.addr == path.local)
            .map(|l| l.if_index);
        (live..self.subflows)
            .map(|_| {
                let open = Action::Open {
                    local: path.local,
                    if_index,
                    remote: path.remote,
                    backup: false,
                    timeout: None,
                };
                Decision::new(open, MISSING)
            })
            .collect()
    }
}

impl Policy for Ndiffports {
    fn on_event(&mut self, ctx: &Ctx<'_>, event: &PmEvent) -> Vec<Decision> {
        match event {
            PmEvent::Established(_) | PmEvent::SubClosed(_) => self.reconcile(ctx),
            _ => Vec::new(),
        }
    }

    fn on_locals_changed(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        self.reconcile(ctx)
    }

    fn on_tick(&mut self, ctx: &Ctx<'_>) -> Vec<Decision> {
        self.reconcile(ctx)
    }

    /// Why it opens nothing on a connection whose peer set `deny_join_id0`.
    fn note(&self, ctx: &Ctx<'_>) -> Option<Reason> {
        let conn = ctx.conn;
        let info = conn.info()?;
        let acts = self.subflows > 1
            && !conn.is_closed()
            && conn.is_established()
            && !conn.is_server_side();
        (acts && conn.join_denied(info.remote)).then(|| {
            Reason::new(
                mesh::DENY_JOIN_ID0,
                format!(
                    "the peer denies joins to its initial address {} (deny_join_id0), and every ndiffports subflow would join it: none is opened",
                    info.remote
                ),
            )
        })
    }
}
