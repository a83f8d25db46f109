//! Config -> runtime parameters: the policies to build (default and per rule), the
//! connection timers and whether the poller samples subflows.

use std::time::Duration;

use mptcp_pmd_config::Config;
use mptcp_pmd_policies::conn::ConnTimers;

use crate::core::rules::PolicyBook;

/// The default policy and one policy per rule; sampling policies without a period of their
/// own are sampled every `poll.interval_ms`.
pub fn build_book(config: &Config) -> PolicyBook {
    PolicyBook::new(
        config.default_spec(),
        config.rules.clone(),
        poll_interval(config),
    )
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

/// The sock_diag poll period (its range is the config's to check: `poll.interval_ms`).
pub fn poll_interval(config: &Config) -> Duration {
    config.poll.interval()
}

/// Whether the sock_diag poller dumps the subflows' `tcp_info` each period: a policy reads the
/// samples, or a metered budget counts the subflows' bytes from them.
pub fn sampling(config: &Config, book: &PolicyBook) -> bool {
    book.wants_samples() || config.metered.is_active()
}
