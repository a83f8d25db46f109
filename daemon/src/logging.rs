//! slog set-up: lines on stderr (journald keeps stderr) — terminal-style with structured
//! key-values by default (`log.format: term`), or one JSON object per line (`log.format: json`:
//! `ts` (Unix seconds), `level`, `msg`, then every key-value) — and a level that a SIGHUP reload
//! can change at run time. The format is fixed at start.

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
        use std::io::Write;
        let mut line = json_line(record, values);
        line.push('\n');
        // One write per line keeps lines whole across threads; a failed stderr is not fatal.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        Ok(())
    }
}

/// The root logger, writing to stderr in `format`, and the handle to change its level.
pub fn init(level: Level, format: mptcp_pmd_config::LogFormat) -> (Logger, LevelHandle) {
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
            let decorator = slog_term::PlainSyncDecorator::new(std::io::stderr());
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
