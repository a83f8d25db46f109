//! The `ndiffports` policy: `subflows` subflows (the initial one included) over the initial
//! (local address, remote address and port) pair, with different source ports. Lost ones are
//! re-opened; the state machine applies the path's backoff and stops on a given-up path.
//!
//! It does not consult the usable local addresses except for the interface index: the initial
//! path is the application's choice (it may well be on a filtered interface such as loopback).
//! If the address vanishes, creates fail, back off and give up until the address returns.
//! Nothing before ESTABLISHED, nothing on server-side connections, nothing for `subflows <= 1`.
//! Extra subflows on the path (peer-initiated) are left alone.

use crate::conn::Path;
use crate::model::PmEvent;
use crate::policy::{Ctx, Decision, Policy};

/// The ndiffports policy. See the module docs.
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
            .map(|_| Decision::Open {
                local: path.local,
                if_index,
                remote: path.remote,
                backup: false,
            })
            .collect()
    }
}

impl Policy for Ndiffports {
    fn name(&self) -> &'static str {
        "ndiffports"
    }

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
}
