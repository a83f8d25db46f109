//! Config -> runtime parameters: the policies to build (default and per rule) and the
//! connection timers.

use std::time::Duration;

use mptcp_pmd_config::{Config, PolicySpec};
use mptcp_pmd_policies::conn::ConnTimers;
use mptcp_pmd_policies::registry::{self, PolicyParams};
use mptcp_pmd_policies::rtt_based::RttParams;

use crate::rules::PolicyBook;

/// The registry parameters for one policy spec from the config.
pub fn params(spec: &PolicySpec) -> PolicyParams {
    match spec {
        PolicySpec::Fullmesh(c) => PolicyParams::Fullmesh {
            max_subflows: usize::from(c.max_subflows),
        },
        PolicySpec::Ndiffports(c) => PolicyParams::Ndiffports {
            subflows: usize::from(c.subflows),
        },
        PolicySpec::RttBased(c) => PolicyParams::RttBased(RttParams {
            max_subflows: usize::from(c.max_subflows),
            backup_ratio: c.backup_ratio,
            min_gap: c.min_gap(),
            restore_ratio: c.restore_ratio,
            hold: c.hold(),
            close_on_loss: c.close_on_loss,
            loss_threshold: c.loss_threshold,
            cooldown: c.cooldown(),
            probe: c.probe(),
        }),
    }
}

/// The default policy and one policy per rule.
pub fn build_book(config: &Config) -> PolicyBook {
    let default = registry::build(&params(&config.default_spec()));
    let rules = config
        .rules
        .iter()
        .map(|r| (r.clone(), registry::build(&params(&r.spec))))
        .collect();
    PolicyBook::new(default, rules)
}

/// Subflow request timers from the `subflow:` section.
pub fn timers(config: &Config) -> ConnTimers {
    let s = &config.subflow;
    ConnTimers {
        request_timeout: s.request_timeout(),
        backoff_initial: s.backoff_initial(),
        backoff_max: s.backoff_max(),
        max_retries: s.max_retries,
        ..ConnTimers::default()
    }
}

/// The sock_diag poll period.
pub fn poll_interval(config: &Config) -> Duration {
    config.poll.interval().max(Duration::from_millis(10))
}
