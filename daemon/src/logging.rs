//! slog set-up: terminal-style lines on stderr with structured key-values (journald keeps
//! stderr), and a level that a SIGHUP reload can change at run time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use slog::{Drain, Level, Logger, OwnedKVList, Record};

/// Parse a level name as used in the config and on the command line.
pub fn parse_level(name: &str) -> Option<Level> {
    match name {
        "critical" => Some(Level::Critical),
        "error" => Some(Level::Error),
        "warning" | "warn" => Some(Level::Warning),
        "info" => Some(Level::Info),
        "debug" => Some(Level::Debug),
        "trace" => Some(Level::Trace),
        _ => None,
    }
}

/// A handle to change the level of a running logger.
#[derive(Debug, Clone)]
pub struct LevelHandle(Arc<AtomicUsize>);

impl LevelHandle {
    /// Set the most verbose level that is logged.
    pub fn set(&self, level: Level) {
        self.0.store(level.as_usize(), Ordering::Relaxed);
    }
}

struct DynLevel<D> {
    inner: D,
    level: Arc<AtomicUsize>,
}

impl<D: Drain> Drain for DynLevel<D> {
    type Ok = Option<D::Ok>;
    type Err = D::Err;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<Self::Ok, Self::Err> {
        if record.level().as_usize() <= self.level.load(Ordering::Relaxed) {
            self.inner.log(record, values).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The root logger, writing to stderr, and the handle to change its level.
pub fn init(level: Level) -> (Logger, LevelHandle) {
    let decorator = slog_term::PlainSyncDecorator::new(std::io::stderr());
    let drain = slog_term::FullFormat::new(decorator).build().fuse();
    let handle = Arc::new(AtomicUsize::new(level.as_usize()));
    let drain = DynLevel {
        inner: drain,
        level: handle.clone(),
    }
    .fuse();
    (Logger::root(drain, slog::o!()), LevelHandle(handle))
}
