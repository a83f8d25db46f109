//! The daemon's signals, as `main` hands them to [`crate::service::run`]: SIGTERM and SIGINT
//! make the shutdown future resolve; SIGHUP reloads the configuration file — the new log level
//! is set here (the logger is `main`'s), the rest is sent to the service; a file that does not
//! load is logged with its location and the old configuration stays in force.
//!
//! The file is read and parsed off the event loop, on a short-lived helper thread whose result
//! comes back over a channel ([`Reloader`]): the loop must never wait on a file, and a path can
//! take arbitrarily long to read (a hung network file system; a FIFO or a device is refused at
//! once by `mptcp_pmd_config::load`, but only after it is opened). One read runs at a time. A
//! SIGHUP that arrives while one is running is remembered, and once it finishes the file is
//! read once more, however many SIGHUPs came meanwhile ([`ReloadQueue`]): what is applied in
//! the end is the file as it was at or after the last SIGHUP, and a read that never finishes
//! costs one parked thread, not the loop.

use std::path::{Path, PathBuf};
use std::time::Instant;

use mptcp_pmd_config::{Config, ConfigError};
use slog::{error, info, warn, Logger};
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

    /// Resolves at SIGTERM or SIGINT. Meanwhile each SIGHUP reloads `path` (off the loop, see
    /// the module docs) and sends the new configuration on `reloads`.
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
        let mut reloader = Reloader::new(path, |p: &Path| mptcp_pmd_config::load(p));
        loop {
            tokio::select! {
                _ = term.recv() => { info!(log, "SIGTERM: stopping"); return; }
                _ = int.recv() => { info!(log, "SIGINT: stopping"); return; }
                _ = hup.recv() => reloader.hup(&log),
                loaded = reloader.loaded() => {
                    match loaded {
                        Ok(new) => {
                            info!(log, "SIGHUP: configuration reloaded"; "file" => %reloader.path.display(), "policy" => new.policy.to_string());
                            if let Some(l) = crate::logging::parse_level(new.log.level.as_str()) {
                                level.set(l);
                            }
                            // The service stops reading only while it stops.
                            let _ = reloads.send(new);
                        }
                        Err(e) => error!(log, "SIGHUP: new configuration rejected, keeping the old one"; "error" => %e),
                    }
                    reloader.finished(&log);
                }
            }
        }
    }
}

/// What the loop does next about the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Start a read of the file.
    Read,
    /// Nothing now (a read is running, or nothing is asked for).
    Wait,
}

/// When to read the file, as SIGHUPs and finished reads arrive (pure; see the module docs):
/// at most one read at a time, and one more after it if a SIGHUP came while it ran.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReloadQueue {
    running: bool,
    again: bool,
}

impl ReloadQueue {
    /// A SIGHUP arrived.
    pub fn on_hup(&mut self) -> Next {
        if self.running {
            self.again = true;
            Next::Wait
        } else {
            self.running = true;
            Next::Read
        }
    }

    /// The running read finished (applied or rejected).
    pub fn on_finished(&mut self) -> Next {
        if self.again {
            self.again = false;
            Next::Read
        } else {
            self.running = false;
            Next::Wait
        }
    }

    /// Whether a read is running.
    pub fn running(&self) -> bool {
        self.running
    }
}

/// Reads and parses the configuration file on helper threads, one at a time
/// ([`ReloadQueue`]), and hands the results to the loop.
pub struct Reloader<L> {
    path: PathBuf,
    load: L,
    queue: ReloadQueue,
    /// When the running read started (for the log line of a SIGHUP that has to wait).
    since: Option<Instant>,
    done_tx: mpsc::UnboundedSender<Result<Config, ConfigError>>,
    done_rx: mpsc::UnboundedReceiver<Result<Config, ConfigError>>,
}

impl<L> Reloader<L>
where
    L: Fn(&Path) -> Result<Config, ConfigError> + Clone + Send + 'static,
{
    /// Reads `path` with `load` (`mptcp_pmd_config::load`; tests give a slow one).
    pub fn new(path: PathBuf, load: L) -> Self {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Reloader {
            path,
            load,
            queue: ReloadQueue::default(),
            since: None,
            done_tx,
            done_rx,
        }
    }

    /// A SIGHUP: start a read, or remember to read again after the running one.
    pub fn hup(&mut self, log: &Logger) {
        match self.queue.on_hup() {
            Next::Read => self.start(log),
            Next::Wait => {
                let ms = self.since.map_or(0, |t| t.elapsed().as_millis() as u64);
                warn!(log, "SIGHUP: the previous reload is still reading the file; it will be read again once that read finishes";
                    "file" => %self.path.display(), "reading_for_ms" => ms);
            }
        }
    }

    /// The next finished read's result. Pending while none is running or it has not finished.
    pub async fn loaded(&mut self) -> Result<Config, ConfigError> {
        loop {
            // The reloader keeps a sender, so the channel never closes.
            if let Some(r) = self.done_rx.recv().await {
                return r;
            }
        }
    }

    /// The result of [`Reloader::loaded`] was handled: start the read a SIGHUP asked for
    /// meanwhile, if any.
    pub fn finished(&mut self, log: &Logger) {
        self.since = None;
        if self.queue.on_finished() == Next::Read {
            info!(log, "SIGHUP came during the reload: reading the file again"; "file" => %self.path.display());
            self.start(log);
        }
    }

    /// Whether a read is running.
    pub fn reading(&self) -> bool {
        self.queue.running()
    }

    fn start(&mut self, log: &Logger) {
        let (path, load, tx) = (self.path.clone(), self.load.clone(), self.done_tx.clone());
        self.since = Some(Instant::now());
        let spawned = std::thread::Builder::new()
            .name("config-reload".into())
            .spawn(move || {
                // Threads inherit SCHED_FIFO (`kernel.realtime_priority`): parsing is not
                // real-time work. Leaving it needs no privilege; if it fails, the read still runs.
                let _ = crate::process::privs::set_normal_scheduler();
                let _ = tx.send(load(&path));
            });
        if let Err(e) = spawned {
            error!(log, "SIGHUP: cannot start the thread that reads the configuration, keeping the old one"; "error" => %e);
            // Nothing runs now; the next SIGHUP tries again.
            self.since = None;
            self.queue = ReloadQueue::default();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_read_at_a_time_and_one_more_for_hups_during_it() {
        let mut q = ReloadQueue::default();
        assert_eq!(q.on_hup(), Next::Read);
        // Any number of SIGHUPs during the read: one more read afterwards.
        assert_eq!(q.on_hup(), Next::Wait);
        assert_eq!(q.on_hup(), Next::Wait);
        assert_eq!(q.on_finished(), Next::Read);
        assert!(q.running());
        assert_eq!(q.on_finished(), Next::Wait);
        assert!(!q.running());
        // Idle again: the next SIGHUP reads at once.
        assert_eq!(q.on_hup(), Next::Read);
        assert_eq!(q.on_finished(), Next::Wait);
    }

    fn log() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    /// A read that does not finish leaves the loop free: timers still fire, a second SIGHUP
    /// starts no second read, and once the read finishes the file is read once more.
    #[tokio::test]
    async fn a_slow_read_does_not_block_the_loop() {
        let calls = Arc::new(AtomicUsize::new(0));
        // Each read waits for a release from the test.
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let (c, r) = (calls.clone(), release_rx.clone());
        let load = move |_: &Path| {
            c.fetch_add(1, Ordering::SeqCst);
            let _ = r.lock().unwrap().recv();
            Ok(Config::default())
        };
        let log = log();
        let mut reloader = Reloader::new(PathBuf::from("/slow.yaml"), load);
        reloader.hup(&log);
        // The loop goes on: a timer fires while the read hangs.
        let waited = tokio::time::timeout(Duration::from_millis(100), reloader.loaded()).await;
        assert!(waited.is_err(), "the slow read returned");
        assert!(reloader.reading());
        reloader.hup(&log);
        reloader.hup(&log);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a second read while one runs"
        );
        release_tx.send(()).unwrap();
        assert!(reloader.loaded().await.is_ok());
        reloader.finished(&log);
        // The SIGHUPs during the read: one more read.
        assert!(reloader.reading());
        release_tx.send(()).unwrap();
        assert!(reloader.loaded().await.is_ok());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        reloader.finished(&log);
        assert!(!reloader.reading());
    }

    /// The real loader on a FIFO: refused, and the loop gets the refusal.
    #[tokio::test]
    async fn a_fifo_is_rejected_through_the_reloader() {
        let dir = std::env::temp_dir().join(format!("mptcp-pmd-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("live.yaml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let log = log();
        let mut reloader = Reloader::new(fifo, |p: &Path| mptcp_pmd_config::load(p));
        reloader.hup(&log);
        let r = tokio::time::timeout(Duration::from_secs(1), reloader.loaded())
            .await
            .expect("the FIFO read returned within a second");
        let e = r.expect_err("a FIFO is not a configuration");
        assert!(e.to_string().contains("it is a FIFO"), "{e}");
        reloader.finished(&log);
        assert!(!reloader.reading());
        let _ = std::fs::remove_dir_all(dir);
    }
}
