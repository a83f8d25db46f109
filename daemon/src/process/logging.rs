//! slog set-up: lines on stderr (journald keeps stderr) — terminal-style with structured
//! key-values by default (`log.format: term`), or one JSON object per line (`log.format: json`:
//! `ts` (Unix seconds), `level`, `msg`, then every key-value) — and a level that a SIGHUP reload
//! can change at run time. The format is fixed at start.
//!
//! Writes from the event loop's thread are deferred ([`defer_writes`]): a line is formatted at
//! once but kept in memory, and everything the thread logged is written with one `write` when
//! the loop has run what was ready (a task spawned behind it), so the `write` system calls of
//! `decision` and `subflow` lines never sit between reading a kernel event and sending the
//! command it causes (docs/ARCHITECTURE.md, "Where a join's time goes"). Warnings and worse,
//! lines of other threads, a full buffer ([`DEFER_LIMIT`]), the end of [`defer_writes`]' guard
//! and a panic write out at once, in order.

use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
            let r = self.inner.log(record, values).map(Some);
            if record.level().is_at_least(Level::Warning) {
                // Trouble is reported at once, after what led to it.
                flush();
            }
            r
        } else {
            Ok(None)
        }
    }
}

/// At most this many bytes wait for a deferred write; a line that would make more is written
/// out with everything before it.
pub const DEFER_LIMIT: usize = 256 * 1024;

/// Lines waiting to be written (event loop thread, see the module docs).
static DEFERRED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

thread_local! {
    /// This thread's writes are deferred.
    static DEFER: Cell<bool> = const { Cell::new(false) };
    /// A flush task is queued on this thread's event loop.
    static FLUSH_QUEUED: Cell<bool> = const { Cell::new(false) };
}

fn deferred() -> std::sync::MutexGuard<'static, Vec<u8>> {
    // A poisoned lock only means a thread panicked while appending: the bytes are still valid.
    match DEFERRED.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Write out every deferred line now.
pub fn flush() {
    let mut buf = deferred();
    if !buf.is_empty() {
        // A failed stderr is not fatal; there is nowhere else to say so.
        let _ = std::io::stderr().lock().write_all(&buf);
        buf.clear();
        if buf.capacity() > DEFER_LIMIT {
            buf.shrink_to(DEFER_LIMIT);
        }
    }
}

/// Keeps the calling thread's log writes deferred until dropped (then writes them out).
#[derive(Debug)]
pub struct DeferGuard(());

/// Defer the calling thread's log writes to the end of each round of its event loop (see the
/// module docs). The thread must be running a tokio `LocalSet` (an actix `System` or arbiter)
/// for as long as the guard lives: the write is a task spawned on it.
pub fn defer_writes() -> DeferGuard {
    DEFER.with(|d| d.set(true));
    // A flush task left queued by an earlier loop on this thread died with that loop.
    FLUSH_QUEUED.with(|q| q.set(false));
    DeferGuard(())
}

impl Drop for DeferGuard {
    fn drop(&mut self) {
        DEFER.with(|d| d.set(false));
        flush();
    }
}

/// Where every line goes: stderr, through the deferral of the module docs.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if !DEFER.with(Cell::get) {
            flush();
            return std::io::stderr().lock().write(bytes);
        }
        let mut buf = deferred();
        if buf.len() + bytes.len() > DEFER_LIMIT {
            let _ = std::io::stderr().lock().write_all(&buf);
            buf.clear();
        }
        buf.extend_from_slice(bytes);
        drop(buf);
        if !FLUSH_QUEUED.with(|q| q.replace(true)) {
            // Behind every task that is ready now, and after the loop has looked at its
            // sockets once (yield_now defers the wake-up until then).
            tokio::task::spawn_local(async {
                tokio::task::yield_now().await;
                FLUSH_QUEUED.with(|q| q.set(false));
                flush();
            });
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if DEFER.with(Cell::get) {
            return Ok(());
        }
        std::io::stderr().lock().flush()
    }
}

/// Collects a record's key-values as JSON values.
struct JsonKv<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl slog::Serializer for JsonKv<'_> {
    fn emit_arguments(&mut self, key: slog::Key, val: &std::fmt::Arguments<'_>) -> slog::Result {
        self.0.insert(key.to_string(), val.to_string().into());
        Ok(())
    }
    fn emit_bool(&mut self, key: slog::Key, val: bool) -> slog::Result {
        self.0.insert(key.to_string(), val.into());
        Ok(())
    }
    fn emit_u64(&mut self, key: slog::Key, val: u64) -> slog::Result {
        self.0.insert(key.to_string(), val.into());
        Ok(())
    }
    fn emit_i64(&mut self, key: slog::Key, val: i64) -> slog::Result {
        self.0.insert(key.to_string(), val.into());
        Ok(())
    }
    fn emit_u32(&mut self, key: slog::Key, val: u32) -> slog::Result {
        self.emit_u64(key, val.into())
    }
    fn emit_i32(&mut self, key: slog::Key, val: i32) -> slog::Result {
        self.emit_i64(key, val.into())
    }
    fn emit_usize(&mut self, key: slog::Key, val: usize) -> slog::Result {
        self.emit_u64(key, val as u64)
    }
    fn emit_f64(&mut self, key: slog::Key, val: f64) -> slog::Result {
        self.0.insert(key.to_string(), val.into());
        Ok(())
    }
    fn emit_none(&mut self, key: slog::Key) -> slog::Result {
        self.0.insert(key.to_string(), serde_json::Value::Null);
        Ok(())
    }
}

/// One JSON object per record, one line each, on stderr.
struct JsonDrain;

/// The JSON object for one record.
fn json_line(record: &Record<'_>, values: &OwnedKVList) -> String {
    use slog::KV;
    let mut map = serde_json::Map::new();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
        .unwrap_or(0.0);
    map.insert("ts".into(), ts.into());
    let level = match record.level() {
        Level::Critical => "critical",
        Level::Error => "error",
        Level::Warning => "warning",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    };
    map.insert("level".into(), level.into());
    map.insert("msg".into(), record.msg().to_string().into());
    // Logger-wide values first, then the record's (which win on a clash).
    let _ = values.serialize(record, &mut JsonKv(&mut map));
    let _ = record.kv().serialize(record, &mut JsonKv(&mut map));
    serde_json::Value::Object(map).to_string()
}

impl Drain for JsonDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let mut line = json_line(record, values);
        line.push('\n');
        // One write per line keeps lines whole across threads; a failed stderr is not fatal.
        let _ = Stderr.write_all(line.as_bytes());
        Ok(())
    }
}

/// The root logger, writing to stderr in `format`, and the handle to change its level.
pub fn init(level: Level, format: mptcp_pmd_config::LogFormat) -> (Logger, LevelHandle) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Deferred lines first (what led to the panic), unless the panic is inside a write.
        if let Ok(mut buf) = DEFERRED.try_lock() {
            let _ = std::io::stderr().lock().write_all(&buf);
            buf.clear();
        }
        previous(info);
    }));
    let handle = Arc::new(AtomicUsize::new(level.as_usize()));
    let logger = match format {
        mptcp_pmd_config::LogFormat::Json => {
            let drain = DynLevel {
                inner: JsonDrain,
                level: handle.clone(),
            }
            .fuse();
            Logger::root(drain, slog::o!())
        }
        mptcp_pmd_config::LogFormat::Term => {
            let decorator = slog_term::PlainSyncDecorator::new(Stderr);
            let drain = slog_term::FullFormat::new(decorator).build().fuse();
            let drain = DynLevel {
                inner: drain,
                level: handle.clone(),
            }
            .fuse();
            Logger::root(drain, slog::o!())
        }
    };
    (logger, LevelHandle(handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(needle: &str) -> bool {
        String::from_utf8_lossy(&deferred()).contains(needle)
    }

    #[test]
    fn the_loop_thread_writes_at_the_end_of_its_round_and_warnings_at_once() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            let guard = defer_writes();
            Stderr.write_all(b"deferred-line-1\n").unwrap();
            Stderr.flush().unwrap();
            assert!(waiting("deferred-line-1"), "written before the round ended");
            // The round ends once every ready task ran and the loop polled its sockets.
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            assert!(!waiting("deferred-line-1"), "still waiting after the round");

            let log = Logger::root(
                DynLevel {
                    inner: slog_term::FullFormat::new(slog_term::PlainSyncDecorator::new(Stderr))
                        .build()
                        .fuse(),
                    level: Arc::new(AtomicUsize::new(Level::Info.as_usize())),
                }
                .fuse(),
                slog::o!(),
            );
            slog::info!(log, "deferred-line-2");
            assert!(waiting("deferred-line-2"));
            slog::warn!(log, "deferred-line-3");
            assert!(
                !waiting("deferred-line-2") && !waiting("deferred-line-3"),
                "a warning writes out itself and what came before it"
            );
            slog::info!(log, "deferred-line-4");
            drop(guard);
            assert!(!waiting("deferred-line-4"), "the guard writes out the rest");
            // Not deferred any more: straight through.
            Stderr.write_all(b"deferred-line-5\n").unwrap();
            assert!(!waiting("deferred-line-5"));
        });
    }

    #[test]
    fn json_line_has_level_msg_and_kvs() {
        use std::sync::Mutex;
        struct Capture(Arc<Mutex<Vec<String>>>);
        impl Drain for Capture {
            type Ok = ();
            type Err = slog::Never;
            fn log(&self, r: &Record<'_>, v: &OwnedKVList) -> Result<(), slog::Never> {
                self.0.lock().unwrap().push(json_line(r, v));
                Ok(())
            }
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        let log = Logger::root(Capture(lines.clone()).fuse(), slog::o!("actor" => "x"));
        slog::warn!(log, "hello \"world\""; "n" => 3u32, "ok" => true, "addr" => %"1.2.3.4");
        let line = lines.lock().unwrap()[0].clone();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "warning");
        assert_eq!(v["msg"], "hello \"world\"");
        assert_eq!(v["n"], 3);
        assert_eq!(v["ok"], true);
        assert_eq!(v["addr"], "1.2.3.4");
        assert_eq!(v["actor"], "x");
        assert!(v["ts"].as_f64().unwrap() > 1.6e9);
    }
}
