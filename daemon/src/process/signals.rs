//! The daemon's signals, as `main` hands them to [`crate::service::run`]: SIGTERM and SIGINT
//! make the shutdown future resolve; SIGHUP reloads the configuration file — the new log level
//! is set here (the logger is `main`'s), the rest is sent to the service; a file that does not
//! load is logged with its location and the old configuration stays in force.

use std::path::PathBuf;

use mptcp_pmd_config::Config;
use slog::{error, info, Logger};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

use crate::logging::LevelHandle;

/// The stop and reload signals, installed (their default actions replaced) once created.
#[derive(Debug)]
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Install the handlers. Needs a running tokio runtime (inside the actix `System`).
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Resolves at SIGTERM or SIGINT. Meanwhile each SIGHUP reloads `path` and sends the new
    /// configuration on `reloads`.
    pub async fn until_stop(
        self,
        path: PathBuf,
        level: LevelHandle,
        reloads: mpsc::UnboundedSender<Config>,
        log: Logger,
    ) {
        let Signals {
            mut term,
            mut int,
            mut hup,
        } = self;
        loop {
            tokio::select! {
                _ = term.recv() => { info!(log, "SIGTERM: stopping"); return; }
                _ = int.recv() => { info!(log, "SIGINT: stopping"); return; }
                _ = hup.recv() => match mptcp_pmd_config::load(&path) {
                    Ok(new) => {
                        info!(log, "SIGHUP: configuration reloaded"; "file" => %path.display(), "policy" => new.policy.to_string());
                        if let Some(l) = crate::logging::parse_level(new.log.level.as_str()) {
                            level.set(l);
                        }
                        // The service stops reading only while it stops.
                        let _ = reloads.send(new);
                    }
                    Err(e) => error!(log, "SIGHUP: new configuration rejected, keeping the old one"; "error" => %e),
                },
            }
        }
    }
}
